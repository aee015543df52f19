//! The token cache file: the refresh token (Microsoft rotates it: every new one is stored), the
//! access token with its expiry, and the identity they belong to. Written atomically with mode
//! 0600; a cache written for another identity is ignored.
//!
//! The cache is also bound to the secrets that earned its tokens (the password, the client
//! secret): a keyed hash of them is stored beside the tokens — PBKDF2-HMAC-SHA256 under a random
//! salt of this cache file, never the secrets — and a cache whose hash does not match the
//! secrets configured now is ignored. So a changed (or mistyped) password or client secret is
//! noticed at once instead of being hidden behind a cached token for up to 90 days. The
//! iterations make guessing a weak password from a stolen cache file slow; the file's refresh
//! token is the bigger prize anyway, which is why it is private to the agent's user.

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
    /// Unix seconds when the refresh token was last renewed (issued); 0: unknown.
    pub refresh_renewed_at: u64,
}

/// The secrets a flow signs in with (what a cache is bound to). A flow that does not use the
/// password leaves it `None`.
#[derive(Clone, Copy, Default)]
pub(crate) struct Secrets<'a> {
    pub password: Option<&'a Secret>,
    pub client_secret: Option<&'a Secret>,
    /// The SHA-256 thumbprint of the client certificate (`client_certificate_file`).
    pub certificate: Option<&'a Secret>,
}

impl Secrets<'_> {
    /// What the log calls them.
    fn names(&self) -> String {
        let names: Vec<&str> = [
            (self.password.is_some(), "password"),
            (self.client_secret.is_some(), "client secret"),
            (self.certificate.is_some(), "client certificate"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        if names.is_empty() {
            "secret".into()
        } else {
            names.join(" or ")
        }
    }
}

/// The binding of a cache to the secrets configured when its tokens were obtained: one keyed
/// hash per secret, under the cache's random salt.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Binding {
    salt: [u8; SALT_LEN],
    password: Option<[u8; HASH_LEN]>,
    client_secret: Option<[u8; HASH_LEN]>,
    certificate: Option<[u8; HASH_LEN]>,
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Binding(…)")
    }
}

const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
/// PBKDF2 rounds: a few milliseconds per provider start (hashes are computed when the cache
/// is loaded, or once before the first write).
const ITERATIONS: u32 = 10_000;

fn keyed_hash(salt: &[u8; SALT_LEN], label: &str, secret: &Secret) -> [u8; HASH_LEN] {
    let mut material = zeroize::Zeroizing::new(Vec::with_capacity(label.len() + 1 + 64));
    material.extend_from_slice(label.as_bytes());
    material.push(0);
    material.extend_from_slice(secret.expose().as_bytes());
    let mut hash = [0u8; HASH_LEN];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(ITERATIONS).expect("non-zero"),
        salt,
        &material,
        &mut hash,
    );
    hash
}

/// Equality without early exit: comparison time says nothing about how much matched.
fn same(a: &[u8; HASH_LEN], b: &[u8; HASH_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Binding {
    /// A binding of `secrets` under a fresh random salt.
    pub(crate) fn new(secrets: Secrets<'_>) -> Result<Binding> {
        use ring::rand::SecureRandom;
        let mut salt = [0u8; SALT_LEN];
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| {
                Error::new(
                    ErrorKind::Internal,
                    "the system's random number generator failed",
                )
            })?;
        Ok(Binding {
            salt,
            password: secrets.password.map(|p| keyed_hash(&salt, "password", p)),
            client_secret: secrets
                .client_secret
                .map(|c| keyed_hash(&salt, "client secret", c)),
            certificate: secrets
                .certificate
                .map(|c| keyed_hash(&salt, "client certificate", c)),
        })
    }

    /// Whether every secret configured now (`secrets`) is the one the tokens were obtained
    /// with. A secret not configured now is not compared: tokens may outlive a password the
    /// administrator removed from the configuration, but never survive a changed or added one.
    fn matches(&self, secrets: Secrets<'_>) -> bool {
        let check = |label: &str, now: Option<&Secret>, stored: &Option<[u8; HASH_LEN]>| match (
            now, stored,
        ) {
            (None, _) => true,
            (Some(v), Some(h)) => same(&keyed_hash(&self.salt, label, v), h),
            (Some(_), None) => false,
        };
        check("password", secrets.password, &self.password)
            && check("client secret", secrets.client_secret, &self.client_secret)
            && check("client certificate", secrets.certificate, &self.certificate)
    }

    /// This binding reduced to the secrets configured now (what a write records).
    fn restricted_to(&self, secrets: Secrets<'_>) -> Binding {
        Binding {
            salt: self.salt,
            password: self.password.filter(|_| secrets.password.is_some()),
            client_secret: self
                .client_secret
                .filter(|_| secrets.client_secret.is_some()),
            certificate: self.certificate.filter(|_| secrets.certificate.is_some()),
        }
    }
}

/// What [`load`] found.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub tokens: Tokens,
    /// The file's binding, when it matched the secrets configured now (reused for writes).
    pub binding: Option<Binding>,
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
    /// When the refresh token was last renewed (absent in older caches).
    refresh_renewed_at: Option<u64>,
    /// Hex salt and keyed hashes of the [`Binding`] (absent in caches of version 1).
    secret_salt: Option<String>,
    password_hash: Option<String>,
    client_secret_hash: Option<String>,
    /// Keyed hash of the client certificate's thumbprint (absent before certificates).
    certificate_hash: Option<String>,
}

/// Version 2 added the binding to the secrets.
const VERSION: u32 = 2;

/// The tokens cached at `path` for `identity`, obtained with `secrets`; empty when the file is
/// absent, unreadable, damaged, written for another identity, or bound to other secrets (each
/// logged, none fatal: the flow starts over; see [`Binding::matches`]). A cache without a
/// binding (version 1) is kept only when no secret is configured (device code): it cannot
/// prove that its tokens came from the secrets configured now.
pub(crate) fn load(path: &Path, identity: &Identity, secrets: Secrets<'_>) -> Loaded {
    let text = match std::fs::read(path) {
        Ok(t) => zeroize::Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::default(),
        Err(e) => {
            log::warn!(
                "token cache {}: cannot read it ({e}); ignoring it",
                path.display()
            );
            return Loaded::default();
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
        return Loaded::default();
    };
    let tokens = Tokens {
        refresh_token: file.refresh_token.take().map(Secret::new),
        access_token: file.access_token.take().map(Secret::new),
        expires_at: file.expires_at,
        renew_at: file.renew_at,
        refresh_renewed_at: file.refresh_renewed_at.unwrap_or(0),
    };
    let same = (file.version == VERSION || file.version == 1)
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
        return Loaded::default();
    }
    let damaged = || {
        log::warn!(
            "token cache {}: damaged secret binding; ignoring it",
            path.display()
        );
        Loaded::default()
    };
    let stored = match file.secret_salt.as_deref() {
        None => None,
        Some(salt) => {
            let Some(salt) = unhex::<SALT_LEN>(salt) else {
                return damaged();
            };
            let hash = |h: Option<&str>| match h {
                None => Ok(None),
                Some(h) => unhex::<HASH_LEN>(h).map(Some).ok_or(()),
            };
            let (Ok(password), Ok(client_secret), Ok(certificate)) = (
                hash(file.password_hash.as_deref()),
                hash(file.client_secret_hash.as_deref()),
                hash(file.certificate_hash.as_deref()),
            ) else {
                return damaged();
            };
            Some(Binding {
                salt,
                password,
                client_secret,
                certificate,
            })
        }
    };
    let no_secret = secrets.password.is_none()
        && secrets.client_secret.is_none()
        && secrets.certificate.is_none();
    match stored {
        Some(b) if b.matches(secrets) => Loaded {
            tokens,
            binding: Some(b.restricted_to(secrets)),
        },
        None if no_secret => Loaded {
            tokens,
            binding: None,
        },
        _ => {
            log::info!(
                "token cache {}: its tokens were obtained with another {} than the one configured \
                 now; ignoring them (signing in again with the configured one)",
                path.display(),
                secrets.names()
            );
            Loaded::default()
        }
    }
}

/// Whether the cache at `path` holds a refresh token, and when it was last renewed (`None`
/// inside: unknown, a cache of an older version). Only for reports: no identity or binding is
/// checked and no token leaves this function.
pub(crate) fn refresh_token_renewed(path: &Path) -> Option<Option<u64>> {
    #[derive(Deserialize)]
    struct Peek {
        refresh_token: Option<serde::de::IgnoredAny>,
        refresh_renewed_at: Option<u64>,
    }
    let text = zeroize::Zeroizing::new(std::fs::read(path).ok()?);
    let text = std::str::from_utf8(&text).ok()?;
    let mut scratch = zeroize::Zeroizing::new(vec![0u8; text.len()]);
    let (peek, _) = serde_json_core::from_str_escaped::<Peek>(text, &mut scratch).ok()?;
    peek.refresh_token?;
    Some(peek.refresh_renewed_at.filter(|&t| t > 0))
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `tokens` for `identity`, bound by `binding` to the secrets that obtained them, to
/// `path` atomically (temp file in the same directory, fsync, rename, fsync of the directory),
/// readable by the owner only.
pub(crate) fn store(
    path: &Path,
    identity: &Identity,
    binding: &Binding,
    tokens: &Tokens,
) -> Result<()> {
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
    let _ = write!(
        json,
        ",\"expires_at\":{},\"renew_at\":{},\"refresh_renewed_at\":{},\"secret_salt\":\"{}\"",
        tokens.expires_at,
        tokens.renew_at,
        tokens.refresh_renewed_at,
        hex(&binding.salt)
    );
    for (key, hash) in [
        ("password_hash", &binding.password),
        ("client_secret_hash", &binding.client_secret),
        ("certificate_hash", &binding.certificate),
    ] {
        match hash {
            Some(h) => {
                let _ = write!(json, ",\"{key}\":\"{}\"", hex(h));
            }
            None => {
                let _ = write!(json, ",\"{key}\":null");
            }
        }
    }
    json.push_str("}\n");
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

    fn pw(p: &Secret) -> Secrets<'_> {
        Secrets {
            password: Some(p),
            client_secret: None,
            certificate: None,
        }
    }

    const NONE: Secrets<'static> = Secrets {
        password: None,
        client_secret: None,
        certificate: None,
    };

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("pma-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn bound(secrets: Secrets<'_>) -> Binding {
        Binding::new(secrets).unwrap()
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
            refresh_renewed_at: 1_799_990_000,
        };
        let p = Secret::new("correct horse");
        let b = bound(pw(&p));
        store(&path, &id, &b, &tokens).unwrap();
        let loaded = load(&path, &id, pw(&p));
        assert_eq!(loaded.tokens, tokens);
        assert_eq!(loaded.binding, Some(b.clone()));
        // Rewriting replaces the file and leaves no temp file behind.
        let mut rotated = tokens.clone();
        rotated.refresh_token = Some(Secret::new("0.rotated"));
        store(&path, &id, &b, &rotated).unwrap();
        assert_eq!(load(&path, &id, pw(&p)).tokens, rotated);
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
    fn a_cache_is_bound_to_its_secret_which_it_never_holds() {
        let dir = temp_dir("bind");
        let path = dir.join("t.json");
        let tokens = Tokens {
            refresh_token: Some(Secret::new("r")),
            ..Tokens::default()
        };
        let right = Secret::new("Right-Pa55word");
        store(&path, &identity(), &bound(pw(&right)), &tokens).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("Right-Pa55word"), "{text}");
        assert!(text.contains("\"password_hash\":\""), "{text}");
        assert_eq!(load(&path, &identity(), pw(&right)).tokens, tokens);
        // Another password, an added client secret: the cache is not used.
        let wrong = Secret::new("Wrong-Pa55word");
        assert_eq!(
            load(&path, &identity(), pw(&wrong)).tokens,
            Tokens::default()
        );
        let secret = Secret::new("s");
        let with_secret = Secrets {
            password: Some(&right),
            client_secret: Some(&secret),
            certificate: None,
        };
        assert_eq!(
            load(&path, &identity(), with_secret).tokens,
            Tokens::default()
        );
        // A certificate binds as a secret does: another thumbprint, the cache is not used.
        let (thumb_a, thumb_b) = (Secret::new("aa11"), Secret::new("bb22"));
        let with_cert = |t| Secrets {
            password: None,
            client_secret: None,
            certificate: Some(t),
        };
        let cert_cache = dir.join("cert.json");
        store(
            &cert_cache,
            &identity(),
            &bound(with_cert(&thumb_a)),
            &tokens,
        )
        .unwrap();
        assert_eq!(
            load(&cert_cache, &identity(), with_cert(&thumb_a)).tokens,
            tokens
        );
        assert_eq!(
            load(&cert_cache, &identity(), with_cert(&thumb_b)).tokens,
            Tokens::default()
        );
        assert!(!std::fs::read_to_string(&cert_cache)
            .unwrap()
            .contains("aa11"));
        // The password removed from the configuration: nothing to compare, the tokens stay.
        assert_eq!(load(&path, &identity(), NONE).tokens, tokens);
        // Two caches of the same password get different salts (and so different hashes).
        let other = dir.join("u.json");
        store(&other, &identity(), &bound(pw(&right)), &tokens).unwrap();
        let salt = |t: &str| t.split("\"secret_salt\":\"").nth(1).unwrap()[..32].to_string();
        assert_ne!(salt(&text), salt(&std::fs::read_to_string(&other).unwrap()));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unbound_cache_of_version_1_is_kept_only_without_secrets() {
        let dir = temp_dir("v1");
        let path = dir.join("t.json");
        let v1 = "{\"version\":1,\"authority\":\"https://login.microsoftonline.com\",\"client_id\":\"app\",\
                  \"tenant\":\"contoso.onmicrosoft.com\",\"username\":\"alice@contoso.com\",\"flow\":\"password\",\
                  \"refresh_token\":\"r1\",\"access_token\":null,\"expires_at\":0,\"renew_at\":0}\n";
        std::fs::write(&path, v1).unwrap();
        let loaded = load(&path, &identity(), NONE);
        assert_eq!(
            loaded.tokens.refresh_token.as_ref().map(Secret::expose),
            Some("r1")
        );
        assert_eq!(loaded.binding, None);
        let p = Secret::new("p");
        assert_eq!(load(&path, &identity(), pw(&p)).tokens, Tokens::default());
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
        store(&path, &identity(), &bound(NONE), &tokens).unwrap();
        let mut other = identity();
        other.client_id = "another-app".into();
        assert_eq!(load(&path, &other, NONE).tokens, Tokens::default());
        let mut other = identity();
        other.flow = "device_code";
        assert_eq!(load(&path, &other, NONE).tokens, Tokens::default());
        // User names and tenants compare case-insensitively.
        let mut same = identity();
        same.username = "ALICE@contoso.com".into();
        assert_eq!(load(&path, &same, NONE).tokens, tokens);
        let text = std::fs::read_to_string(&path).unwrap();
        let damaged = text.replace("\"secret_salt\":\"", "\"secret_salt\":\"zz");
        std::fs::write(&path, damaged).unwrap();
        assert_eq!(load(&path, &identity(), NONE).tokens, Tokens::default());
        std::fs::write(&path, b"{\"version\":1,").unwrap();
        assert_eq!(load(&path, &identity(), NONE).tokens, Tokens::default());
        assert_eq!(
            load(&dir.join("absent.json"), &identity(), NONE).tokens,
            Tokens::default()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_created() {
        let dir = temp_dir("mkdir");
        let path = dir.join("state/sub/x.token.json");
        store(&path, &identity(), &bound(NONE), &Tokens::default()).unwrap();
        assert_eq!(load(&path, &identity(), NONE).tokens, Tokens::default());
        assert!(path.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unwritable_directory_is_a_clear_io_error() {
        let path = Path::new("/proc/pma-no-such-dir/x.token.json");
        let e = store(path, &identity(), &bound(NONE), &Tokens::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(
            e.message().contains("/proc/pma-no-such-dir/x.token.json"),
            "{e}"
        );
        assert!(e.fix().unwrap().contains("state_dir"));
    }
}
