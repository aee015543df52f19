//! Typed reading of one JSON object with errors that name the key path, what is allowed and
//! what was found: `mailboxes[0].imap.port: expected an integer 1..65535, found string "993"`.

use crate::error::{Error, Result};
use crate::json::{shorten, Value};

/// `prefix.key`, or `key` at the root.
pub(super) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// What was found, for "expected …, found …". With `redact`, only the type: the value may be a
/// secret.
pub(super) fn describe(value: &Value, redact: bool) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(_) if redact => "a number".to_string(),
        Value::Number(n) => format!("number {}", shorten(n.as_str())),
        Value::String(_) if redact => "a string".to_string(),
        Value::String(s) => format!("string \"{}\"", shorten(s)),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

/// One JSON object being read, with its own key path.
pub(super) struct Obj<'a> {
    /// Key path of this object; empty at the root.
    path: String,
    /// How the root is named in messages about the root itself ("config", "mailbox").
    root_label: &'static str,
    members: &'a [(String, Value)],
}

impl<'a> Obj<'a> {
    /// Reads `value` as an object, or says what `what` should have been.
    pub(super) fn new(
        value: &'a Value,
        path: &str,
        root_label: &'static str,
        what: &str,
    ) -> Result<Self> {
        match value {
            Value::Object(members) => Ok(Obj {
                path: path.to_string(),
                root_label,
                members,
            }),
            other => Err(Error::config(
                if path.is_empty() { root_label } else { path },
                format!("expected {what}, found {}", describe(other, false)),
            )),
        }
    }

    /// The path of `key` in this object.
    pub(super) fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Refuses keys outside `allowed`. Keys starting with `_` are comments and ignored, since
    /// JSON has no comments of its own.
    pub(super) fn check_keys(&self, allowed: &[&str]) -> Result<()> {
        for (key, _) in self.members {
            if key.starts_with('_') || allowed.contains(&key.as_str()) {
                continue;
            }
            let mut e = Error::config(
                self.key_path(&shorten(key)),
                format!(
                    "unknown key; allowed: {} (keys starting with _ are comments)",
                    allowed.join(", ")
                ),
            );
            if let Some(near) = closest(key, allowed) {
                e = e.with_fix(format!("did you mean \"{near}\"?"));
            }
            return Err(e);
        }
        Ok(())
    }

    /// The value of `key`; `null` counts as absent, so `"ca_file": null` means the default.
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .filter(|v| !matches!(v, Value::Null))
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &Value, redact: bool) -> Error {
        Error::config(
            self.key_path(key),
            format!("expected {expected}, found {}", describe(found, redact)),
        )
    }

    /// A required key is absent (or null).
    pub(super) fn missing(&self, key: &str, expected: &str) -> Error {
        Error::config(
            self.key_path(key),
            format!("required key missing; expected {expected}"),
        )
    }

    /// An optional string.
    pub(super) fn str_opt(&self, key: &str) -> Result<Option<&'a str>> {
        self.str_opt_as(key, "a string", false)
    }

    /// An optional string described as `expected` in errors, its value hidden with `redact`.
    pub(super) fn str_opt_as(
        &self,
        key: &str,
        expected: &str,
        redact: bool,
    ) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(key, expected, other, redact)),
        }
    }

    /// A required string.
    pub(super) fn str_req(&self, key: &str, expected: &str) -> Result<&'a str> {
        self.str_opt_as(key, expected, false)?
            .ok_or_else(|| self.missing(key, expected))
    }

    /// A boolean with a default.
    pub(super) fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.wrong_type(key, "true or false", other, false)),
        }
    }

    /// An integer in `min..=max` with a default.
    pub(super) fn int_or(&self, key: &str, min: u64, max: u64, default: u64) -> Result<u64> {
        let expected = format!("an integer {min}..{max}");
        match self.get(key) {
            None => Ok(default),
            Some(v @ Value::Number(n)) => match n.as_u64() {
                Some(i) if (min..=max).contains(&i) => Ok(i),
                _ => Err(self.wrong_type(key, &expected, v, false)),
            },
            Some(other) => Err(self.wrong_type(key, &expected, other, false)),
        }
    }

    /// One of `choices` (ASCII case ignored, as admins type "SSL"), with a default.
    pub(super) fn choice_or(
        &self,
        key: &str,
        choices: &[&'static str],
        default: &'static str,
    ) -> Result<&'static str> {
        let expected = format!(
            "one of {}",
            choices
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        match self.get(key) {
            None => Ok(default),
            Some(v @ Value::String(s)) => choices
                .iter()
                .find(|c| c.eq_ignore_ascii_case(s))
                .copied()
                .ok_or_else(|| self.wrong_type(key, &expected, v, false)),
            Some(other) => Err(self.wrong_type(key, &expected, other, false)),
        }
    }

    /// An optional nested object, described as `what` in errors.
    pub(super) fn obj_opt(&self, key: &str, what: &str) -> Result<Option<Obj<'a>>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => Obj::new(v, &self.key_path(key), self.root_label, what).map(Some),
        }
    }
}

/// The allowed key nearest to a misspelt one, if it is plausibly a typo.
fn closest<'k>(key: &str, allowed: &[&'k str]) -> Option<&'k str> {
    let key = key.to_ascii_lowercase();
    allowed
        .iter()
        .map(|a| (edit_distance(&key, a), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 4) && *d < a.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_suggestions() {
        let keys = ["server", "port", "encryption", "folder"];
        assert_eq!(closest("prot", &keys), Some("port"));
        assert_eq!(closest("Port", &keys), Some("port"));
        assert_eq!(closest("encyption", &keys), Some("encryption"));
        assert_eq!(closest("colour", &keys), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
