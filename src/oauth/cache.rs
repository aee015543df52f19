//! The token cache file: the refresh token (Microsoft rotates it: every new one is stored), the
//! access token with its expiry, and the identity they belong to. Written atomically with mode
//! 0600; a cache written for another identity is ignored.

use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;
use serde::Deserialize;
use std::fmt::Write as _;
use std::path::Path;

/// Who the tokens belong to: a cache is used only when all of it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub authority: String,
    pub client_id: String,
    pub tenant: String,
    pub username: String,
    pub flow: &'static str,
}

/// Tokens held in memory and in the cache file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tokens {
    pub refresh_token: Option<Secret>,
    pub access_token: Option<Secret>,
    /// Unix seconds when the access token expires.
    pub expires_at: u64,
    /// Unix seconds from which the access token is renewed (`expires_at` minus a margin).
    pub renew_at: u64,
}

#[derive(Deserialize)]
struct CacheFile {
    version: u32,
    authority: String,
    client_id: String,
    tenant: String,
    username: String,
    flow: String,
    refresh_token: Option<String>,
    access_token: Option<String>,
    expires_at: u64,
    renew_at: u64,
}

const VERSION: u32 = 1;

/// The tokens cached at `path` for `identity`; empty when the file is absent, unreadable,
/// damaged or written for another identity (each logged, none fatal: the flow starts over).
pub(crate) fn load(path: &Path, identity: &Identity) -> Tokens {
    let text = match std::fs::read(path) {
        Ok(t) => zeroize::Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Tokens::default(),
        Err(e) => {
            log::warn!(
                "token cache {}: cannot read it ({e}); ignoring it",
                path.display()
            );
            return Tokens::default();
        }
    };
    let mut scratch = zeroize::Zeroizing::new(vec![0u8; text.len()]);
    let parsed = std::str::from_utf8(&text)
        .ok()
        .and_then(|t| serde_json_core::from_str_escaped::<CacheFile>(t, &mut scratch).ok());
    let Some((mut file, _)) = parsed else {
        log::warn!(
            "token cache {}: not a token cache; ignoring it",
            path.display()
        );
        return Tokens::default();
    };
    let tokens = Tokens {
        refresh_token: file.refresh_token.take().map(Secret::new),
        access_token: file.access_token.take().map(Secret::new),
        expires_at: file.expires_at,
        renew_at: file.renew_at,
    };
    let same = file.version == VERSION
        && file.authority == identity.authority
        && file.client_id == identity.client_id
        && file.tenant.eq_ignore_ascii_case(&identity.tenant)
        && file.username.eq_ignore_ascii_case(&identity.username)
        && file.flow == identity.flow;
    if !same {
        log::info!(
            "token cache {}: written for another application, tenant, user or flow; ignoring it",
            path.display()
        );
        return Tokens::default();
    }
    tokens
}

/// Writes `tokens` for `identity` to `path` atomically (temp file in the same directory, fsync,
/// rename, fsync of the directory), readable by the owner only.
pub(crate) fn store(path: &Path, identity: &Identity, tokens: &Tokens) -> Result<()> {
    let mut json = zeroize::Zeroizing::new(String::with_capacity(4096));
    json.push('{');
    let _ = write!(json, "\"version\":{VERSION}");
    for (key, value) in [
        ("authority", identity.authority.as_str()),
        ("client_id", &identity.client_id),
        ("tenant", &identity.tenant),
        ("username", &identity.username),
        ("flow", identity.flow),
    ] {
        let _ = write!(json, ",\"{key}\":");
        push_json_string(&mut json, value);
    }
    for (key, value) in [
        ("refresh_token", &tokens.refresh_token),
        ("access_token", &tokens.access_token),
    ] {
        let _ = write!(json, ",\"{key}\":");
        match value {
            Some(s) => push_json_string(&mut json, s.expose()),
            None => json.push_str("null"),
        }
    }
    let _ = writeln!(
        json,
        ",\"expires_at\":{},\"renew_at\":{}}}",
        tokens.expires_at, tokens.renew_at
    );
    crate::state::write_atomic(path, json.as_bytes()).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("token cache {}: {}", path.display(), e.message()),
        )
        .with_fix("make state_dir writable by the agent's user (the refresh token must be kept)")
    })
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            authority: "https://login.microsoftonline.com".into(),
            client_id: "app".into(),
            tenant: "contoso.onmicrosoft.com".into(),
            username: "alice@contoso.com".into(),
            flow: "password",
        }
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("pma-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip_with_odd_characters() {
        let dir = temp_dir("rt");
        let path = dir.join("Helpdesk.token.json");
        let mut id = identity();
        id.username = "al\"ice\\\u{1}@contoso.com".into();
        let tokens = Tokens {
            refresh_token: Some(Secret::new("0.AR/x\"y")),
            access_token: Some(Secret::new("eyJ0.a")),
            expires_at: 1_800_000_000,
            renew_at: 1_799_999_700,
        };
        store(&path, &id, &tokens).unwrap();
        assert_eq!(load(&path, &id), tokens);
        // Rewriting replaces the file and leaves no temp file behind.
        let mut rotated = tokens.clone();
        rotated.refresh_token = Some(Secret::new("0.rotated"));
        store(&path, &id, &rotated).unwrap();
        assert_eq!(load(&path, &id), rotated);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("Helpdesk.token.json")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn another_identity_or_damage_is_ignored() {
        let dir = temp_dir("other");
        let path = dir.join("t.json");
        let tokens = Tokens {
            refresh_token: Some(Secret::new("r")),
            ..Tokens::default()
        };
        store(&path, &identity(), &tokens).unwrap();
        let mut other = identity();
        other.client_id = "another-app".into();
        assert_eq!(load(&path, &other), Tokens::default());
        let mut other = identity();
        other.flow = "device_code";
        assert_eq!(load(&path, &other), Tokens::default());
        // User names and tenants compare case-insensitively.
        let mut same = identity();
        same.username = "ALICE@contoso.com".into();
        assert_eq!(load(&path, &same), tokens);
        std::fs::write(&path, b"{\"version\":1,").unwrap();
        assert_eq!(load(&path, &identity()), Tokens::default());
        assert_eq!(
            load(&dir.join("absent.json"), &identity()),
            Tokens::default()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_created() {
        let dir = temp_dir("mkdir");
        let path = dir.join("state/sub/x.token.json");
        store(&path, &identity(), &Tokens::default()).unwrap();
        assert_eq!(load(&path, &identity()), Tokens::default());
        assert!(path.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unwritable_directory_is_a_clear_io_error() {
        let path = Path::new("/proc/pma-no-such-dir/x.token.json");
        let e = store(path, &identity(), &Tokens::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(
            e.message().contains("/proc/pma-no-such-dir/x.token.json"),
            "{e}"
        );
        assert!(e.fix().unwrap().contains("state_dir"));
    }
}
