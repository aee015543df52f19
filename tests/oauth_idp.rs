//! TokenProvider against the harness's Microsoft-like identity endpoint (pma-test-idp), with the
//! tokens checked where they are used: XOAUTH2 at the harness's Dovecot.
//!
//! Every test works on its own users (`unique_user`), and fault injection is scoped to them, so
//! tests here and in other binaries run in parallel against the one shared endpoint.
mod support;

use psa_mail_agent::config::{Flow, OAuth};
use psa_mail_agent::oauth::{ProviderOptions, TokenProvider};
use psa_mail_agent::{ErrorKind, Secret};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use support::Harness;

const TENANT: &str = "contoso-tenant";
const CONFIDENTIAL_SECRET: &str = "s3cret-app";

fn oauth(h: &Harness, app: &str, flow: Flow) -> OAuth {
    OAuth {
        enabled: true,
        application_id: app.into(),
        directory_id: TENANT.into(),
        shared_mailbox: false,
        flow,
        client_secret: None,
        authority: h.idp_url.clone(),
        proxy: None,
        ..OAuth::default()
    }
}

fn options(cache: Option<PathBuf>) -> ProviderOptions {
    ProviderOptions {
        cache_path: cache,
        timeout: Duration::from_secs(10),
        sign_in_command: "psa-mail-agent login --config agent.json --mailbox Helpdesk".into(),
        ..ProviderOptions::default()
    }
}

fn password_provider(
    h: &Harness,
    user: &str,
    password: Option<&str>,
    cache: Option<PathBuf>,
) -> TokenProvider {
    TokenProvider::new(
        &oauth(h, "app-public", Flow::Password),
        user,
        password.map(Secret::new),
        options(cache),
    )
    .unwrap()
}

/// A fresh directory for token caches.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "pma-oauth-idp-{name}-{}-{}",
        std::process::id(),
        support::unique_user("d").split('@').next().unwrap()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The identity endpoint's counters for `user` (`{"token_requests":…,"password":…}`).
fn stat(h: &Harness, user: &str, counter: &str) -> u64 {
    let body = h.idp(&format!("/_test/stats?user={user}"));
    let key = format!("\"{counter}\":");
    let start = body
        .find(&key)
        .unwrap_or_else(|| panic!("{counter} in {body}"))
        + key.len();
    body[start..]
        .split([',', '}'])
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn imap_accepts(h: &Harness, user: &str, token: &Secret) -> bool {
    h.xoauth2_status(user, token.expose()).starts_with("OK ")
}

#[test]
fn password_flow_then_rotated_refresh_tokens_across_restarts() {
    let h = Harness::get();
    let user = h.unique_user("tp-rotation");
    // The endpoint refuses a refresh token once it was rotated out, so using a stale one fails.
    h.idp(&format!("/_test/set?strict_rotation=1&user={user}"));
    let dir = temp_dir("rotation");
    let cache = dir.join("Helpdesk.token.json");

    let mut p = password_provider(h, &user, Some(&h.password), Some(cache.clone()));
    let first = smol::block_on(p.access_token()).unwrap();
    assert!(imap_accepts(h, &user, &first));
    assert_eq!(smol::block_on(p.access_token()).unwrap(), first, "cached");
    drop(p);

    // A restart without the password reuses the cached access token.
    let mut p = password_provider(h, &user, None, Some(cache.clone()));
    assert_eq!(smol::block_on(p.access_token()).unwrap(), first);
    assert_eq!(stat(h, &user, "token_requests"), 1);

    // The token expires at the identity platform: IMAP refuses it, the agent asks for a new one.
    h.idp(&format!("/_test/expire_access_tokens?user={user}"));
    assert!(!imap_accepts(h, &user, &first));
    let second = smol::block_on(p.invalidate_and_refresh()).unwrap();
    assert_ne!(second, first);
    assert!(imap_accepts(h, &user, &second));
    drop(p);

    // Next restart: the rotated refresh token was stored (the first one is dead by now).
    let mut p = password_provider(h, &user, None, Some(cache.clone()));
    let third = smol::block_on(p.invalidate_and_refresh()).unwrap();
    assert!(imap_accepts(h, &user, &third));
    assert_eq!(stat(h, &user, "password"), 1);
    assert_eq!(stat(h, &user, "refresh_token"), 2);
    assert_eq!(stat(h, &user, "token_errors"), 0);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&cache).unwrap();
    assert!(text.contains(third.expose()));
    assert!(!text.contains(&h.password), "the password is never cached");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn short_lived_access_tokens_are_renewed_before_expiry() {
    let h = Harness::get();
    let user = h.unique_user("tp-ttl");
    h.idp(&format!("/_test/set?access_ttl=4&user={user}"));
    let mut p = password_provider(h, &user, Some(&h.password), None);
    let first = smol::block_on(p.access_token()).unwrap();
    // A 4 s token is renewed after half its life, not treated as always expired.
    assert_eq!(smol::block_on(p.access_token()).unwrap(), first);
    assert_eq!(stat(h, &user, "token_requests"), 1);
    std::thread::sleep(Duration::from_millis(2600));
    let second = smol::block_on(p.access_token()).unwrap();
    assert_ne!(second, first);
    assert!(imap_accepts(h, &user, &second));
    assert_eq!(stat(h, &user, "refresh_token"), 1);
}

#[test]
fn client_credentials_token_opens_a_granted_mailbox() {
    let h = Harness::get();
    let shared = h.unique_user("tp-app-shared");
    let mut o = oauth(h, "app-confidential", Flow::ClientCredentials);
    o.client_secret = Some(Secret::new(CONFIDENTIAL_SECRET));
    let mut p = TokenProvider::new(&o, "", None, options(None)).unwrap();
    let token = smol::block_on(p.access_token()).unwrap();
    assert!(!p.has_refresh_token());
    h.grant_full_access(&shared, "app-confidential");
    assert!(imap_accepts(h, &shared, &token));
}

#[test]
fn device_code_sign_in_approved_and_declined() {
    let h = Harness::get();
    let user = h.unique_user("tp-device");
    let dir = temp_dir("device");
    let cache = dir.join("Helpdesk.token.json");
    let mut p = TokenProvider::new(
        &oauth(h, "app-public", Flow::DeviceCode),
        &user,
        None,
        options(Some(cache.clone())),
    )
    .unwrap();
    let e = smol::block_on(p.access_token()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SignInRequired, "{e}");
    assert_eq!(
        e.fix(),
        Some("run `psa-mail-agent login --config agent.json --mailbox Helpdesk`")
    );

    let mut shown = Vec::new();
    smol::block_on(p.device_login(|prompt| {
        shown.push(prompt.clone());
        // The person signs in with MFA in a browser meanwhile.
        h.idp(&format!(
            "/_test/approve_device?user_code={}&user={user}",
            prompt.user_code
        ));
    }))
    .unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(
        shown[0].verification_uri,
        "https://microsoft.com/devicelogin"
    );
    assert!(shown[0].message.contains(&shown[0].user_code));
    // The tokens were stored: a restart refreshes without anybody.
    let mut p = TokenProvider::new(
        &oauth(h, "app-public", Flow::DeviceCode),
        &user,
        None,
        options(Some(cache)),
    )
    .unwrap();
    let token = smol::block_on(p.invalidate_and_refresh()).unwrap();
    assert!(imap_accepts(h, &user, &token));

    let e = smol::block_on(p.device_login(|prompt| {
        h.idp(&format!(
            "/_test/decline_device?user_code={}",
            prompt.user_code
        ));
    }))
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DeviceCodeDeclined, "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn device_code_slow_down_is_honoured() {
    let h = Harness::get();
    let user = h.unique_user("tp-slowdown");
    let mut p = TokenProvider::new(
        &oauth(h, "app-public", Flow::DeviceCode),
        &user,
        None,
        options(None),
    )
    .unwrap();
    smol::block_on(p.device_login(|prompt| {
        h.idp(&format!(
            "/_test/approve_device?user_code={}&user={user}",
            prompt.user_code
        ));
        h.idp(&format!("/_test/fail_next?code=70020&user={user}"));
    }))
    .unwrap();
    // One slow_down, then (5 s later than the interval) the token: no poll storm.
    assert_eq!(stat(h, &user, "slow_down"), 1);
    assert_eq!(stat(h, &user, "device_code"), 2);
}

#[test]
fn injected_aadsts_errors_map_to_kinds_with_fixes() {
    use ErrorKind::*;
    let h = Harness::get();
    let table: &[(u32, ErrorKind)] = &[
        (50126, InvalidCredentials),
        (50034, UserNotFound),
        (50053, AccountLocked),
        (50055, PasswordExpired),
        (50057, AccountDisabled),
        (50076, MfaRequired),
        (50079, MfaRequired),
        (53003, ConditionalAccess),
        (530035, SecurityDefaults),
        (65001, ConsentRequired),
        (7000218, PublicClientFlowsDisabled),
        (700016, ApplicationNotFound),
        (90002, TenantNotFound),
        (50194, SingleTenantApp),
        (7000215, InvalidClientSecret),
        (7000222, InvalidClientSecret),
        (70011, InvalidScope),
        (28000, InvalidScope),
        (1002012, InvalidScope),
        (700082, RefreshTokenExpired),
        (70008, RefreshTokenExpired),
        (50173, GrantRevoked),
        (9002313, InvalidRefreshToken),
        (70000, InvalidRefreshToken),
        (900144, MissingParameter),
    ];
    for &(code, kind) in table {
        let user = h.unique_user(&format!("tp-aadsts{code}"));
        h.idp(&format!("/_test/fail_next?code={code}&user={user}"));
        let mut p = password_provider(h, &user, Some(&h.password), None);
        let e = smol::block_on(p.access_token()).unwrap_err();
        assert_eq!(e.kind(), kind, "AADSTS{code}: {e}");
        assert!(e.message().contains(&format!("AADSTS{code}: ")), "{e}");
        assert!(!e.message().contains("Trace ID"), "{e}");
        assert!(e.fix().is_some(), "AADSTS{code} has a fix");
        assert_eq!(
            stat(h, &user, "token_requests"),
            1,
            "AADSTS{code}: one request"
        );
    }
}

#[test]
fn real_directory_conditions_map_to_kinds() {
    use ErrorKind::*;
    let h = Harness::get();
    let run =
        |app: &str, tenant: &str, prefix: &str, password: &str, secret: Option<&str>, flow| {
            let mut o = oauth(h, app, flow);
            o.directory_id = tenant.into();
            o.client_secret = secret.map(Secret::new);
            let user = h.unique_user(prefix);
            let mut p =
                TokenProvider::new(&o, &user, Some(Secret::new(password)), options(None)).unwrap();
            smol::block_on(p.access_token()).unwrap_err()
        };
    let pw = h.password.as_str();
    let cases = [
        (
            run(
                "app-public",
                TENANT,
                "tp-real",
                "wrong",
                None,
                Flow::Password,
            ),
            InvalidCredentials,
        ),
        (
            run("app-public", TENANT, "locked-tp", pw, None, Flow::Password),
            AccountLocked,
        ),
        (
            run(
                "app-public",
                TENANT,
                "disabled-tp",
                pw,
                None,
                Flow::Password,
            ),
            AccountDisabled,
        ),
        (
            run("app-public", TENANT, "expired-tp", pw, None, Flow::Password),
            PasswordExpired,
        ),
        (
            run("app-public", TENANT, "mfa-tp", pw, None, Flow::Password),
            MfaRequired,
        ),
        (
            run("app-public", TENANT, "blocked-tp", pw, None, Flow::Password),
            ConditionalAccess,
        ),
        (
            run(
                "app-public",
                TENANT,
                "secdefaults-tp",
                pw,
                None,
                Flow::Password,
            ),
            SecurityDefaults,
        ),
        (
            run(
                "app-public",
                "fabrikam",
                "tp-real",
                pw,
                None,
                Flow::Password,
            ),
            TenantNotFound,
        ),
        (
            run("app-public", "common", "tp-real", pw, None, Flow::Password),
            SingleTenantApp,
        ),
        (
            run("app-nobody", TENANT, "tp-real", pw, None, Flow::Password),
            ApplicationNotFound,
        ),
        (
            run("app-nopublic", TENANT, "tp-real", pw, None, Flow::Password),
            PublicClientFlowsDisabled,
        ),
        (
            run("app-noconsent", TENANT, "tp-real", pw, None, Flow::Password),
            ConsentRequired,
        ),
        (
            run(
                "app-confidential",
                TENANT,
                "tp-real",
                pw,
                Some("wrong-secret"),
                Flow::ClientCredentials,
            ),
            InvalidClientSecret,
        ),
        (
            run(
                "app-expiredsecret",
                TENANT,
                "tp-real",
                pw,
                Some("old-s3cret"),
                Flow::ClientCredentials,
            ),
            InvalidClientSecret,
        ),
    ];
    for (e, kind) in cases {
        assert_eq!(e.kind(), kind, "{e}");
        assert!(e.fix().is_some(), "{e}");
    }
    // A confidential app with its secret may use the password grant too.
    let mut o = oauth(h, "app-confidential", Flow::Password);
    o.client_secret = Some(Secret::new(CONFIDENTIAL_SECRET));
    let user = h.unique_user("tp-ropc-confidential");
    let mut p = TokenProvider::new(&o, &user, Some(Secret::new(pw)), options(None)).unwrap();
    let token = smol::block_on(p.access_token()).unwrap();
    assert!(imap_accepts(h, &user, &token));
}

#[test]
fn revoked_grant_recovers_with_the_password_or_fails_once_without_retry_storm() {
    let h = Harness::get();
    let dir = temp_dir("revoke");

    // Revoked, password unchanged in the config: one refresh, one password grant, working again.
    let user = h.unique_user("tp-revoke-ok");
    let mut p = password_provider(h, &user, Some(&h.password), None);
    smol::block_on(p.access_token()).unwrap();
    h.idp(&format!("/_test/revoke?user={user}"));
    let token = smol::block_on(p.invalidate_and_refresh()).unwrap();
    assert!(imap_accepts(h, &user, &token));
    assert_eq!(stat(h, &user, "refresh_token"), 1);
    assert_eq!(stat(h, &user, "password"), 2);

    // Revoked because the password changed: the agent still has the old one.
    let user = h.unique_user("tp-revoke-changed");
    let cache = dir.join("changed.token.json");
    let mut p = password_provider(h, &user, Some(&h.password), Some(cache.clone()));
    smol::block_on(p.access_token()).unwrap();
    h.idp(&format!("/_test/revoke?user={user}"));
    let mut p = password_provider(h, &user, Some("the-old-password"), Some(cache));
    let e = smol::block_on(p.invalidate_and_refresh()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidCredentials, "{e}");
    assert!(e.fix().unwrap().contains("password"));
    for _ in 0..10 {
        let again = smol::block_on(p.access_token()).unwrap_err();
        assert_eq!(again.kind(), ErrorKind::InvalidCredentials);
        let again = smol::block_on(p.invalidate_and_refresh()).unwrap_err();
        assert_eq!(again.kind(), ErrorKind::InvalidCredentials);
    }
    // The cache was earned with another password than the one configured now: it is not used
    // (no refresh request); the configured password is tried once and its refusal remembered.
    assert_eq!(stat(h, &user, "refresh_token"), 0);
    assert_eq!(
        stat(h, &user, "password"),
        2,
        "the first sign-in and one attempt with the configured password only"
    );

    // Revoked with the device-code flow: the kind says so and the fix names the sign-in command.
    let user = h.unique_user("tp-revoke-device");
    let cache = dir.join("device.token.json");
    let mut p = TokenProvider::new(
        &oauth(h, "app-public", Flow::DeviceCode),
        &user,
        None,
        options(Some(cache)),
    )
    .unwrap();
    smol::block_on(p.device_login(|prompt| {
        h.idp(&format!(
            "/_test/approve_device?user_code={}&user={user}",
            prompt.user_code
        ));
    }))
    .unwrap();
    h.idp(&format!("/_test/revoke?user={user}"));
    let e = smol::block_on(p.invalidate_and_refresh()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::GrantRevoked, "{e}");
    assert!(e.fix().unwrap().contains("--mailbox Helpdesk"), "{e}");
    assert!(!p.has_refresh_token());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn endpoint_down_slow_or_garbage_gives_bounded_clear_errors() {
    let h = Harness::get();
    let host = h.idp_url.trim_start_matches("http://").to_string();
    for (mode, kind) in [
        ("down", ErrorKind::ConnectionClosed),
        ("slow", ErrorKind::Timeout),
        ("garbage", ErrorKind::Protocol),
    ] {
        let user = h.unique_user(&format!("tp-mode-{mode}"));
        h.idp(&format!("/_test/mode?m={mode}&user={user}"));
        let mut p = TokenProvider::new(
            &oauth(h, "app-public", Flow::Password),
            &user,
            Some(Secret::new(h.password.clone())),
            ProviderOptions {
                timeout: Duration::from_secs(2),
                ..options(None)
            },
        )
        .unwrap();
        let e = smol::block_on(p.access_token()).unwrap_err();
        assert_eq!(e.kind(), kind, "{mode}: {e}");
        assert!(
            e.message().contains(&format!("token endpoint {host}")),
            "{e}"
        );
        assert!(e.fix().is_some(), "{mode}: {e}");
        // Back to normal: the same provider recovers (temporary failures are not remembered,
        // and garbage is answered again only after the backoff).
        h.idp(&format!("/_test/mode?m=normal&user={user}"));
        if kind != ErrorKind::Protocol {
            smol::block_on(p.access_token()).unwrap();
        }
    }
    // Nothing listening at all.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut o = oauth(h, "app-public", Flow::Password);
    o.authority = format!("http://127.0.0.1:{port}");
    let mut p =
        TokenProvider::new(&o, "a@contoso.test", Some(Secret::new("x")), options(None)).unwrap();
    let e = smol::block_on(p.access_token()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    assert!(e.is_temporary());
}

/// Every log record of this test binary.
static LOGS: Mutex<String> = Mutex::new(String::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = format!(
            "{} {}: {}\n",
            record.level(),
            record.target(),
            record.args()
        );
        LOGS.lock().unwrap().push_str(&line);
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

#[test]
fn a_whole_run_at_debug_level_logs_no_secret() {
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Trace);
    let h = Harness::get();
    let mut secrets: Vec<String> = vec![h.password.clone(), CONFIDENTIAL_SECRET.into()];
    let dir = temp_dir("logs");
    let user = h.unique_user("tp-logs");

    let mut p = password_provider(h, &user, Some(&h.password), Some(dir.join("t.json")));
    secrets.push(smol::block_on(p.access_token()).unwrap().expose().into());
    secrets.push(
        smol::block_on(p.invalidate_and_refresh())
            .unwrap()
            .expose()
            .into(),
    );
    h.idp(&format!("/_test/revoke?user={user}"));
    secrets.push(
        smol::block_on(p.invalidate_and_refresh())
            .unwrap()
            .expose()
            .into(),
    );
    let cached = std::fs::read_to_string(dir.join("t.json")).unwrap();
    let refresh = cached
        .split("\"refresh_token\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    secrets.push(refresh);

    let mut device = TokenProvider::new(
        &oauth(h, "app-public", Flow::DeviceCode),
        &user,
        None,
        options(None),
    )
    .unwrap();
    smol::block_on(device.device_login(|prompt| {
        h.idp(&format!(
            "/_test/approve_device?user_code={}&user={user}",
            prompt.user_code
        ));
    }))
    .unwrap();
    secrets.push(
        smol::block_on(device.access_token())
            .unwrap()
            .expose()
            .into(),
    );

    let mut o = oauth(h, "app-confidential", Flow::ClientCredentials);
    o.client_secret = Some(Secret::new(CONFIDENTIAL_SECRET));
    let mut app = TokenProvider::new(&o, "", None, options(None)).unwrap();
    secrets.push(smol::block_on(app.access_token()).unwrap().expose().into());
    o.client_secret = Some(Secret::new("wrong-secret-value"));
    secrets.push("wrong-secret-value".into());
    let mut bad = TokenProvider::new(&o, "", None, options(None)).unwrap();
    let e = smol::block_on(bad.access_token()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidClientSecret);

    let logs = LOGS.lock().unwrap().clone();
    assert!(logs.contains("DEBUG"), "debug records were captured");
    assert!(
        logs.contains("refresh token of"),
        "the revocation was logged"
    );
    for s in &secrets {
        assert!(s.len() >= 8);
        assert!(
            !logs.contains(s.as_str()),
            "a secret was logged: {}…",
            &s[..4]
        );
        // Not even a recognisable piece of a token.
        if s.len() > 64 {
            assert!(
                !logs.contains(&s[s.len() - 32..]),
                "a token tail was logged"
            );
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}
