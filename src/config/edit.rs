//! Writing configuration text, for `psa-mail-agent setup`: JSON strings, and a mailbox added to
//! an existing file's `mailboxes` without reformatting the rest of it (comments in `_` keys,
//! order, indentation stay as the administrator wrote them).

use crate::error::{Error, ErrorKind, Result};

/// `s` as a JSON string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Byte positions of the `[` and `]` of the top-level `mailboxes` array.
fn mailboxes_array(text: &str) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut last_string: Option<(usize, usize)> = None;
    let mut key: Option<(usize, usize)> = None;
    let mut open: Option<usize> = None;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if depth == 1 {
                    last_string = Some((start, i.min(b.len())));
                }
            }
            b':' if depth == 1 => key = last_string.take(),
            b',' if depth == 1 => key = None,
            c @ (b'{' | b'[') => {
                let is_mailboxes = key.is_some_and(|(s, e)| &text[s..e] == "mailboxes");
                if depth == 1 && c == b'[' && is_mailboxes && open.is_none() {
                    open = Some(i);
                }
                depth += 1;
            }
            c @ (b'}' | b']') => {
                depth = depth.checked_sub(1)?;
                if depth == 1 && c == b']' {
                    if let Some(o) = open {
                        return Some((o, i));
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `config` with `mailbox` (a JSON object's text, possibly on several lines) appended to its
/// top-level `mailboxes` array, indented like the entries already there. The caller validates
/// the result by loading it.
pub fn append_mailbox(config: &str, mailbox: &str) -> Result<String> {
    let (open, close) = mailboxes_array(config).ok_or_else(|| {
        Error::new(
            ErrorKind::Config,
            "mailboxes: no top-level \"mailboxes\" array found to add the mailbox to",
        )
    })?;
    let inside = &config[open + 1..close];
    let first = inside.len() - inside.trim_start().len();
    let lead = &inside[..first];
    let indent = match lead.rfind('\n') {
        Some(nl) => lead[nl + 1..].to_string(),
        None => String::new(),
    };
    let body: Vec<String> = mailbox
        .lines()
        .enumerate()
        .map(|(n, line)| {
            if n == 0 || line.is_empty() {
                line.to_string()
            } else {
                format!("{indent}{line}")
            }
        })
        .collect();
    let body = body.join("\n");
    let mut out = String::with_capacity(config.len() + body.len() + 8);
    if inside.trim().is_empty() {
        out.push_str(&config[..=open]);
        out.push_str(&format!("\n{indent}{body}\n"));
        out.push_str(&config[close..]);
    } else {
        let last = open + 1 + inside.trim_end().len();
        out.push_str(&config[..last]);
        let sep = if lead.contains('\n') {
            format!(",\n{indent}")
        } else {
            ", ".to_string()
        };
        out.push_str(&sep);
        out.push_str(&body);
        out.push_str(&config[last..]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_json_strings() {
        assert_eq!(quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }

    #[test]
    fn appends_keeping_the_rest_as_written() {
        let config = "{\n  \"_comment\": \"mailboxes: [x]\",\n  \"mailboxes\": [\n    {\"name\": \"A\", \"x\": [1, {\"y\": \"]\"}]}\n  ],\n  \"state_dir\": \"s\"\n}\n";
        let out = append_mailbox(config, "{\n  \"name\": \"B\"\n}").unwrap();
        assert_eq!(
            out,
            "{\n  \"_comment\": \"mailboxes: [x]\",\n  \"mailboxes\": [\n    {\"name\": \"A\", \"x\": [1, {\"y\": \"]\"}]},\n    {\n      \"name\": \"B\"\n    }\n  ],\n  \"state_dir\": \"s\"\n}\n"
        );
        let one_line = r#"{"mailboxes": [{"name": "A"}]}"#;
        assert_eq!(
            append_mailbox(one_line, r#"{"name": "B"}"#).unwrap(),
            r#"{"mailboxes": [{"name": "A"}, {"name": "B"}]}"#
        );
        // A nested "mailboxes" key is not the top-level one.
        let nested = r#"{"x": {"mailboxes": []}, "mailboxes": [{"name": "A"}]}"#;
        assert_eq!(
            append_mailbox(nested, r#"{"name": "B"}"#).unwrap(),
            r#"{"x": {"mailboxes": []}, "mailboxes": [{"name": "A"}, {"name": "B"}]}"#
        );
        assert!(append_mailbox(r#"{"state_dir": "s"}"#, "{}").is_err());
        assert!(append_mailbox(r#"{"mailboxes": [{"#, "{}").is_err());
    }
}
