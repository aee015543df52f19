//! Secret indirection: every secret has three spellings, exactly one allowed — inline
//! (`password`), an environment variable's name (`password_env`) or a file's path
//! (`password_file`). This is the only place that reads the environment or secret files, once,
//! while the configuration is loaded.

use super::fields::Obj;
use super::Ctx;
use crate::error::{Error, Result};
use crate::secret::Secret;
use std::path::Path;

/// Resolves the secret named `base` (`password`, `client_secret`, `token`) in `obj`.
pub(super) fn resolve(obj: &Obj<'_>, base: &str, ctx: &Ctx<'_>) -> Result<Option<Secret>> {
    let env_key = format!("{base}_env");
    let file_key = format!("{base}_file");
    let spellings = [base, env_key.as_str(), file_key.as_str()];
    let present: Vec<&str> = spellings
        .iter()
        .copied()
        .filter(|k| obj.get(k).is_some())
        .collect();
    let choose = format!("set exactly one of {base}, {env_key}, {file_key}");
    let Some(&key) = present.first() else {
        return Ok(None);
    };
    if let Some(second) = present.get(1) {
        return Err(Error::config(
            obj.key_path(second),
            format!("conflicts with {}; {choose}", obj.key_path(key)),
        ));
    }
    let path = obj.key_path(key);
    if !ctx.resolve_secrets {
        // Offline: the spelling is checked, the value neither read nor required.
        if key == base {
            ctx.inline_secret_seen.set(true);
        }
        return Ok(None);
    }
    let secret = if key == base {
        let value = obj
            .str_opt_as(key, "a string", true)?
            .unwrap_or_default()
            .to_string();
        ctx.inline_secret_seen.set(true);
        if value.is_empty() {
            return Err(Error::config(path, format!("is empty; {choose}")));
        }
        Secret::new(value)
    } else if key == env_key {
        let name = obj
            .str_opt_as(key, "the name of an environment variable", false)?
            .unwrap_or_default();
        from_env(&path, name, ctx)?
    } else {
        let file = obj
            .str_opt_as(key, "a file path", false)?
            .unwrap_or_default();
        if file.is_empty() {
            return Err(Error::config(path, "expected a file path, found \"\""));
        }
        from_file(&path, &ctx.resolve(file))?
    };
    Ok(Some(secret))
}

fn from_env(path: &str, name: &str, ctx: &Ctx<'_>) -> Result<Secret> {
    // A value that cannot be a variable name is most likely the secret itself pasted into the
    // wrong key: say so without repeating it (it would end up in logs).
    let plausible = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plausible {
        return Err(Error::config(
            path,
            "is not an environment variable name (letters, digits and _ only); it must name the \
             variable that holds the secret, not hold the secret itself",
        ));
    }
    let value = (ctx.env)(name).ok_or_else(|| {
        Error::config(path, format!("environment variable {name} is not set")).with_fix(format!(
            "set {name} in the environment of the agent (service unit, container or shell)"
        ))
    })?;
    let value = value.into_string().map_err(|_| {
        Error::config(
            path,
            format!("environment variable {name} is not valid UTF-8"),
        )
    })?;
    if value.is_empty() {
        return Err(Error::config(
            path,
            format!("environment variable {name} is set but empty"),
        ));
    }
    Ok(Secret::new(value))
}

/// Secret files are small; the bound keeps a wrong path (a log file, /dev/zero) from eating
/// memory.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

fn from_file(path: &str, file: &Path) -> Result<Secret> {
    use std::io::Read;
    let cannot_read = |e: std::io::Error| {
        Error::config(path, format!("cannot read {}: {e}", file.display())).with_fix(
            "check the path (relative paths start at the config file's directory) and that the \
             agent's user may read the file",
        )
    };
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_SECRET_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(Error::config(
            path,
            format!(
                "{} is larger than {} KiB; expected a file holding only the secret",
                file.display(),
                MAX_SECRET_FILE_BYTES / 1024
            ),
        ));
    }
    let mut value = String::from_utf8(bytes)
        .map_err(|_| Error::config(path, format!("{} is not UTF-8 text", file.display())))?;
    // Editors end files with a newline; it is not part of the secret.
    let kept = value.trim_end_matches(['\r', '\n']).len();
    value.truncate(kept);
    if value.is_empty() {
        return Err(Error::config(path, format!("{} is empty", file.display())));
    }
    warn_if_exposed(file, "secret file");
    Ok(Secret::new(value))
}

/// Warns when a file holding secrets may be read by other users.
pub(super) fn warn_if_exposed(file: &Path, what: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(file) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o044 != 0 {
                log::warn!(
                    "{what} {} is readable by group or others (mode {mode:03o}) and holds \
                     secrets; restrict it with: chmod 600 {}",
                    file.display(),
                    file.display()
                );
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, what);
    }
}
