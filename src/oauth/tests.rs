//! TokenProvider against an in-process mock token endpoint.

use super::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// One request the mock received: its path and decoded form.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    form: HashMap<String, String>,
}

type Handler = dyn Fn(&Seen, usize) -> (u16, String) + Send + Sync;

/// A mock identity endpoint answering every connection with `handler(request, index)`.
struct MockIdp {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl MockIdp {
    fn start(handler: impl Fn(&Seen, usize) -> (u16, String) + Send + Sync + 'static) -> MockIdp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let handler: Arc<Handler> = Arc::new(handler);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                let req = read_request(&mut s);
                let index = {
                    let mut v = seen2.lock().unwrap();
                    v.push(req.clone());
                    v.len() - 1
                };
                let (status, body) = handler(&req, index);
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes());
            }
        });
        MockIdp { base, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn grants(&self) -> Vec<String> {
        self.seen()
            .iter()
            .map(|s| s.form.get("grant_type").cloned().unwrap_or_default())
            .collect()
    }
}

fn read_request(s: &mut std::net::TcpStream) -> Seen {
    let mut req = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, len) = loop {
        let n = s.read(&mut chunk).unwrap();
        req.extend_from_slice(&chunk[..n]);
        if let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().unwrap())
                .unwrap_or(0);
            break (end + 4, len);
        }
        assert!(n > 0, "client closed early");
    };
    while req.len() < head_end + len {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0);
        req.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&req[..head_end]).to_string();
    let path = head.split(' ').nth(1).unwrap().to_string();
    let body = String::from_utf8(req[head_end..].to_vec()).unwrap();
    let form = body
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    Seen { path, form }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn token_json(access: &str, refresh: Option<&str>, expires_in: u64) -> String {
    let refresh = refresh
        .map(|r| format!(",\"refresh_token\":\"{r}\""))
        .unwrap_or_default();
    format!(
        "{{\"token_type\":\"Bearer\",\"scope\":\"{DELEGATED_SCOPE}\",\"expires_in\":{expires_in},\"ext_expires_in\":{expires_in},\"access_token\":\"{access}\"{refresh}}}"
    )
}

fn error_json(error: &str, code: u64, text: &str) -> String {
    format!(
        "{{\"error\":\"{error}\",\"error_description\":\"AADSTS{code}: {text}\\r\\nTrace ID: 1\\r\\nCorrelation ID: 2\\r\\nTimestamp: 2026-11-28 18:00:00Z\",\"error_codes\":[{code}],\"timestamp\":\"2026-11-28 18:00:00Z\",\"trace_id\":\"1\",\"correlation_id\":\"2\"}}"
    )
}

fn oauth(base: &str, flow: Flow) -> OAuth {
    OAuth {
        enabled: true,
        application_id: "11111111-2222-3333-4444-555555555555".into(),
        directory_id: "contoso.onmicrosoft.com".into(),
        shared_mailbox: false,
        flow,
        client_secret: None,
        authority: base.to_string(),
        proxy: None,
        ..OAuth::default()
    }
}

fn options(cache: Option<PathBuf>) -> ProviderOptions {
    ProviderOptions {
        cache_path: cache,
        timeout: Duration::from_secs(5),
        sign_in_command: "psa-mail-agent login --config agent.json --mailbox Helpdesk".into(),
        ..ProviderOptions::default()
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pma-oauth-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn provider(
    base: &str,
    flow: Flow,
    password: Option<&str>,
    cache: Option<PathBuf>,
) -> TokenProvider {
    TokenProvider::new(
        &oauth(base, flow),
        "alice@contoso.com",
        password.map(Secret::new),
        options(cache),
    )
    .unwrap()
}

#[test]
fn password_grant_then_cached_token() {
    let idp = MockIdp::start(|_, _| (200, token_json("at-1", Some("rt-1"), 3600)));
    let mut p = provider(&idp.base, Flow::Password, Some("pa ss&w=rd"), None);
    let t = smol::block_on(p.access_token()).unwrap();
    assert_eq!(t.expose(), "at-1");
    let t = smol::block_on(p.access_token()).unwrap();
    assert_eq!(t.expose(), "at-1");
    let seen = idp.seen();
    assert_eq!(seen.len(), 1, "the second call used the cached token");
    assert_eq!(seen[0].path, "/contoso.onmicrosoft.com/oauth2/v2.0/token");
    let f = &seen[0].form;
    assert_eq!(f["grant_type"], "password");
    assert_eq!(f["client_id"], "11111111-2222-3333-4444-555555555555");
    assert_eq!(f["username"], "alice@contoso.com");
    assert_eq!(f["password"], "pa ss&w=rd");
    assert_eq!(f["scope"], DELEGATED_SCOPE);
    assert!(!f.contains_key("client_secret"));
    assert!(p.has_refresh_token());
}

#[test]
fn short_lived_tokens_are_not_always_expired() {
    // A 4 s token is renewed after 2 s, not considered expired at once by a 5 min margin.
    let idp = MockIdp::start(|_, _| (200, token_json("at-short", Some("rt"), 4)));
    let mut p = provider(&idp.base, Flow::Password, Some("pw"), None);
    smol::block_on(p.access_token()).unwrap();
    assert_eq!(p.tokens.renew_at - (p.tokens.expires_at - 4), 2);
}

#[test]
fn refresh_rotation_is_persisted_and_reused_without_the_password() {
    let dir = temp_dir("rotation");
    let cache = dir.join("Helpdesk.token.json");
    let idp = MockIdp::start(|req, i| {
        let n = i + 1;
        match req.form["grant_type"].as_str() {
            "password" => (
                200,
                token_json(&format!("at-{n}"), Some(&format!("rt-{n}")), 3600),
            ),
            "refresh_token" => (
                200,
                token_json(&format!("at-{n}"), Some(&format!("rt-{n}")), 3600),
            ),
            _ => (400, error_json("unsupported_grant_type", 70003, "no")),
        }
    });
    let mut p1 = provider(&idp.base, Flow::Password, Some("pw"), Some(cache.clone()));
    assert_eq!(smol::block_on(p1.access_token()).unwrap().expose(), "at-1");
    drop(p1);

    // A restart without the password: the cached access token is still good.
    let mut p2 = provider(&idp.base, Flow::Password, None, Some(cache.clone()));
    assert_eq!(smol::block_on(p2.access_token()).unwrap().expose(), "at-1");
    assert_eq!(idp.seen().len(), 1);
    // The server refused it: refresh with rt-1, which rotates to rt-2.
    assert_eq!(
        smol::block_on(p2.invalidate_and_refresh())
            .unwrap()
            .expose(),
        "at-2"
    );
    assert_eq!(idp.seen()[1].form["refresh_token"], "rt-1");
    assert_eq!(idp.seen()[1].form["scope"], DELEGATED_SCOPE);
    drop(p2);

    // Another restart uses the rotated refresh token.
    let mut p3 = provider(&idp.base, Flow::Password, None, Some(cache.clone()));
    assert_eq!(
        smol::block_on(p3.invalidate_and_refresh())
            .unwrap()
            .expose(),
        "at-3"
    );
    assert_eq!(idp.seen()[2].form["refresh_token"], "rt-2");
    assert_eq!(idp.grants(), ["password", "refresh_token", "refresh_token"]);

    // A cache from another user is ignored.
    let other = TokenProvider::new(
        &oauth(&idp.base, Flow::Password),
        "bob@contoso.com",
        None,
        options(Some(cache)),
    )
    .unwrap();
    assert!(!other.has_refresh_token());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn refused_refresh_falls_back_to_one_password_grant() {
    let idp = MockIdp::start(|req, _| match req.form["grant_type"].as_str() {
        "password" if req.form["password"] == "pw" => {
            (200, token_json("at-pw", Some("rt-pw"), 3600))
        }
        "password" => (
            400,
            error_json(
                "invalid_grant",
                50126,
                "Error validating credentials due to invalid username or password.",
            ),
        ),
        _ => (
            400,
            error_json(
                "invalid_grant",
                700082,
                "The refresh token has expired due to inactivity.",
            ),
        ),
    });
    let mut p = provider(&idp.base, Flow::Password, Some("pw"), None);
    p.tokens.refresh_token = Some(Secret::new("old"));
    assert_eq!(smol::block_on(p.access_token()).unwrap().expose(), "at-pw");
    assert_eq!(idp.grants(), ["refresh_token", "password"]);
}

#[test]
fn revoked_grant_and_changed_password_give_one_error_without_retry_storm() {
    let idp = MockIdp::start(|req, _| match req.form["grant_type"].as_str() {
        "password" => (
            400,
            error_json(
                "invalid_grant",
                50126,
                "Error validating credentials due to invalid username or password.",
            ),
        ),
        _ => (
            400,
            error_json(
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked.",
            ),
        ),
    });
    let mut p = provider(&idp.base, Flow::Password, Some("old-password"), None);
    p.tokens.refresh_token = Some(Secret::new("revoked"));
    let e = smol::block_on(p.access_token()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidCredentials, "{e}");
    assert!(e.message().contains("AADSTS50126"), "{e}");
    assert_eq!(idp.grants(), ["refresh_token", "password"]);
    assert!(
        !p.has_refresh_token(),
        "the revoked refresh token was dropped"
    );
    for _ in 0..5 {
        let again = smol::block_on(p.access_token()).unwrap_err();
        assert_eq!(again.kind(), ErrorKind::InvalidCredentials);
    }
    assert_eq!(
        idp.seen().len(),
        2,
        "no further sign-in attempts within the backoff"
    );
}

#[test]
fn revoked_grant_without_password_is_reported_as_such() {
    let idp = MockIdp::start(|_, _| {
        (
            400,
            error_json(
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked.",
            ),
        )
    });
    let mut p = provider(&idp.base, Flow::DeviceCode, None, None);
    p.tokens.refresh_token = Some(Secret::new("revoked"));
    let e = smol::block_on(p.access_token()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::GrantRevoked, "{e}");
    assert!(e.fix().unwrap().contains("--mailbox Helpdesk"), "{e}");
    assert_eq!(idp.grants(), ["refresh_token"]);
    // Without a refresh token the device-code flow needs a person.
    p.last_failure = None;
    let e = smol::block_on(p.access_token()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SignInRequired, "{e}");
    assert_eq!(
        e.fix(),
        Some("run `psa-mail-agent login --config agent.json --mailbox Helpdesk`")
    );
    assert_eq!(idp.seen().len(), 1);
}

#[test]
fn client_credentials_grant() {
    let idp = MockIdp::start(|_, _| (200, token_json("app-token", None, 3599)));
    let mut o = oauth(&idp.base, Flow::ClientCredentials);
    o.client_secret = Some(Secret::new("s3cr3t~value"));
    let mut p = TokenProvider::new(&o, "", None, options(None)).unwrap();
    assert_eq!(
        smol::block_on(p.access_token()).unwrap().expose(),
        "app-token"
    );
    let f = &idp.seen()[0].form;
    assert_eq!(f["grant_type"], "client_credentials");
    assert_eq!(f["client_secret"], "s3cr3t~value");
    assert_eq!(f["scope"], APP_SCOPE);
    assert!(!p.has_refresh_token());

    o.client_secret = None;
    let e = TokenProvider::new(&o, "", None, options(None)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.message().starts_with("oauth.client_secret"), "{e}");
}

#[test]
fn device_code_login_polls_until_signed_in() {
    let idp = MockIdp::start(|req, i| {
        if req.path.ends_with("/devicecode") {
            return (200, "{\"user_code\":\"ABCD-EFGH\",\"device_code\":\"dc-secret\",\"verification_uri\":\"https://microsoft.com/devicelogin\",\"expires_in\":900,\"interval\":1,\"message\":\"To sign in, enter ABCD-EFGH.\"}".into());
        }
        assert_eq!(req.form["device_code"], "dc-secret");
        if i < 2 {
            (
                400,
                error_json(
                    "authorization_pending",
                    70016,
                    "OAuth 2.0 device flow error. Authorization is pending.",
                ),
            )
        } else {
            (200, token_json("at-dev", Some("rt-dev"), 3600))
        }
    });
    let mut p = provider(&idp.base, Flow::DeviceCode, None, None);
    let mut shown = Vec::new();
    smol::block_on(p.device_login(|prompt| shown.push(prompt.clone()))).unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].user_code, "ABCD-EFGH");
    assert_eq!(
        shown[0].verification_uri,
        "https://microsoft.com/devicelogin"
    );
    assert_eq!(shown[0].expires_in, Duration::from_secs(900));
    let seen = idp.seen();
    assert_eq!(seen[0].form["scope"], DELEGATED_SCOPE);
    assert_eq!(seen[1].form["grant_type"], DEVICE_CODE_GRANT);
    assert_eq!(seen.len(), 3);
    assert_eq!(smol::block_on(p.access_token()).unwrap().expose(), "at-dev");
    assert!(p.has_refresh_token());
}

#[test]
fn device_code_slow_down_lengthens_the_interval() {
    let times = Arc::new(Mutex::new(Vec::new()));
    let t2 = times.clone();
    let idp = MockIdp::start(move |req, i| {
        if req.path.ends_with("/devicecode") {
            return (200, "{\"user_code\":\"U\",\"device_code\":\"D\",\"verification_uri\":\"https://microsoft.com/devicelogin\",\"expires_in\":60,\"interval\":1}".into());
        }
        t2.lock().unwrap().push(Instant::now());
        match i {
            1 => (400, error_json("slow_down", 70016, "slow down")),
            2 => (400, error_json("authorization_pending", 70016, "pending")),
            _ => (200, token_json("at", Some("rt"), 3600)),
        }
    });
    let mut p = provider(&idp.base, Flow::DeviceCode, None, None);
    smol::block_on(p.device_login(|_| {})).unwrap();
    let times = times.lock().unwrap();
    assert_eq!(times.len(), 3);
    // After slow_down the interval is 1 s + SLOW_DOWN_STEP: a lower bound, never flaky.
    assert!(times[1] - times[0] >= Duration::from_millis(1900));
    assert!(times[2] - times[1] >= Duration::from_millis(1900));
}

#[test]
fn device_code_declined_and_expired() {
    for (error, code, kind) in [
        (
            "authorization_declined",
            70016,
            ErrorKind::DeviceCodeDeclined,
        ),
        ("expired_token", 70020, ErrorKind::DeviceCodeExpired),
    ] {
        let idp = MockIdp::start(move |req, _| {
            if req.path.ends_with("/devicecode") {
                return (200, "{\"user_code\":\"U\",\"device_code\":\"D\",\"verification_uri\":\"https://microsoft.com/devicelogin\",\"expires_in\":60,\"interval\":1}".into());
            }
            (400, error_json(error, code, "device flow"))
        });
        let mut p = provider(&idp.base, Flow::DeviceCode, None, None);
        let e = smol::block_on(p.device_login(|_| {})).unwrap_err();
        assert_eq!(e.kind(), kind, "{e}");
        assert_eq!(idp.seen().len(), 2);
    }
}

#[test]
fn error_answers_map_to_kinds_end_to_end() {
    for (code, kind) in [
        (50126, ErrorKind::InvalidCredentials),
        (7000218, ErrorKind::PublicClientFlowsDisabled),
        (50076, ErrorKind::MfaRequired),
        (90002, ErrorKind::TenantNotFound),
    ] {
        let idp = MockIdp::start(move |_, _| (400, error_json("invalid_grant", code, "text")));
        let mut p = provider(&idp.base, Flow::Password, Some("pw"), None);
        let e = smol::block_on(p.access_token()).unwrap_err();
        assert_eq!(e.kind(), kind, "{e}");
        assert!(e.fix().is_some());
    }
}

#[test]
fn unusable_answers_are_clear_errors() {
    let idp = MockIdp::start(|_, i| match i {
        0 => (200, "<html>welcome to the proxy</html>".into()),
        1 => (502, "<html>bad gateway</html>".into()),
        2 => (404, "not found".into()),
        3 => (
            200,
            "{\"token_type\":\"Bearer\",\"expires_in\":3600}".into(),
        ),
        _ => (
            200,
            "{\"token_type\":\"mac\",\"access_token\":\"x\"}".into(),
        ),
    });
    let expect = [
        ErrorKind::Protocol,
        ErrorKind::ServerUnavailable,
        ErrorKind::Protocol,
        ErrorKind::Protocol,
        ErrorKind::Protocol,
    ];
    for kind in expect {
        let mut p = provider(&idp.base, Flow::Password, Some("pw"), None);
        let e = smol::block_on(p.access_token()).unwrap_err();
        assert_eq!(e.kind(), kind, "{e}");
        assert!(e.message().contains("127.0.0.1"), "{e}");
    }
}

#[test]
fn unreachable_endpoint_names_its_host() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut p = provider(
        &format!("http://127.0.0.1:{port}"),
        Flow::Password,
        Some("pw"),
        None,
    );
    let e = smol::block_on(p.access_token()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    assert!(
        e.message()
            .contains(&format!("token endpoint 127.0.0.1:{port}")),
        "{e}"
    );
    assert!(e.is_temporary());
    // Temporary failures are not remembered: the next call tries again.
    assert!(p.last_failure.is_none());
}

#[test]
fn settings_are_validated() {
    let mut o = oauth("http://login.example.com", Flow::Password);
    let e = TokenProvider::new(&o, "a", None, options(None)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.message().starts_with("oauth.authority"), "{e}");
    o.authority = "https://login.microsoftonline.com/".into();
    let p = TokenProvider::new(&o, "a", None, options(None)).unwrap();
    assert_eq!(
        p.token_url(),
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    o.directory_id = "contoso/../x".into();
    let e = TokenProvider::new(&o, "a", None, options(None)).unwrap_err();
    assert!(e.message().starts_with("oauth.directory_id"), "{e}");
    o.directory_id = "t".into();
    o.proxy = Some("http://user:pr0xy-pw@proxy.example:8080".into());
    let e = TokenProvider::new(&o, "a", None, options(None)).unwrap_err();
    assert!(e.message().starts_with("oauth.proxy"), "{e}");
    assert!(!e.message().contains("pr0xy-pw"), "{e}");
    o.proxy = Some("https://proxy.example:8443".into());
    let e = TokenProvider::new(&o, "a", None, options(None)).unwrap_err();
    assert!(e.message().starts_with("oauth.proxy"), "{e}");
    o.proxy = Some("http://proxy.example:8080".into());
    TokenProvider::new(&o, "a", None, options(None)).unwrap();
    o.application_id = " ".into();
    let e = TokenProvider::new(&o, "a", None, options(None)).unwrap_err();
    assert!(e.message().starts_with("oauth.application_id"), "{e}");
}

#[test]
fn password_flow_without_password_or_cache_is_a_config_error() {
    let idp = MockIdp::start(|_, _| (500, String::new()));
    let mut p = provider(&idp.base, Flow::Password, None, None);
    let e = smol::block_on(p.access_token()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.fix().unwrap().contains("password_env"));
    assert!(idp.seen().is_empty());
}

#[test]
fn secrets_stay_out_of_debug_and_errors() {
    let idp = MockIdp::start(|req, _| match req.form["grant_type"].as_str() {
        "client_credentials" => (
            400,
            error_json("invalid_client", 7000215, "Invalid client secret provided."),
        ),
        _ => (200, token_json("AT-SECRET-1", Some("RT-SECRET-1"), 3600)),
    });
    let mut p = provider(&idp.base, Flow::Password, Some("PW-SECRET-1"), None);
    smol::block_on(p.access_token()).unwrap();
    let debug = format!("{p:?}");
    for s in ["AT-SECRET-1", "RT-SECRET-1", "PW-SECRET-1"] {
        assert!(!debug.contains(s), "{s} in {debug}");
    }
    let mut o = oauth(&idp.base, Flow::ClientCredentials);
    o.client_secret = Some(Secret::new("CS-SECRET-1"));
    let mut p = TokenProvider::new(&o, "", None, options(None)).unwrap();
    let e = smol::block_on(p.access_token()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidClientSecret);
    let text = format!("{e} {e:?} {p:?}");
    assert!(!text.contains("CS-SECRET-1"), "{text}");
}

/// Every log record of this test binary, at trace level.
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
fn a_whole_run_logs_no_secret() {
    // A process has one logger, and other unit tests (the C API's log callback) install theirs:
    // run this test again in a child process where its capture logger is the only one.
    if std::env::var_os("PMA_LOG_CAPTURE_CHILD").is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "oauth::tests::a_whole_run_logs_no_secret",
                "--test-threads=1",
            ])
            .env("PMA_LOG_CAPTURE_CHILD", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child run failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    assert!(
        log::set_logger(&CAPTURE).is_ok(),
        "the child process has no other logger"
    );
    log::set_max_level(log::LevelFilter::Trace);
    let idp = MockIdp::start(|req, i| {
        if req.path.ends_with("/devicecode") {
            return (200, "{\"user_code\":\"UC-1\",\"device_code\":\"DC-SECRET-9\",\"verification_uri\":\"https://microsoft.com/devicelogin\",\"expires_in\":60,\"interval\":1}".into());
        }
        match req.form["grant_type"].as_str() {
            "password" if req.form["password"] == "PW-SECRET-9" => (
                200,
                token_json(
                    &format!("AT-SECRET-9-{i}"),
                    Some(&format!("RT-SECRET-9-{i}")),
                    3600,
                ),
            ),
            "refresh_token" if req.form["refresh_token"] == "RT-SECRET-9-0" => (
                200,
                token_json(
                    &format!("AT-SECRET-9-{i}"),
                    Some(&format!("RT-SECRET-9-{i}")),
                    3600,
                ),
            ),
            "client_credentials" => (
                401,
                error_json("invalid_client", 7000215, "Invalid client secret provided."),
            ),
            DEVICE_CODE_GRANT => (
                200,
                token_json("AT-SECRET-9-dev", Some("RT-SECRET-9-dev"), 3600),
            ),
            _ => (
                400,
                error_json(
                    "invalid_grant",
                    50173,
                    "The provided grant has expired due to it being revoked.",
                ),
            ),
        }
    });
    let dir = temp_dir("logs");
    let cache = dir.join("Helpdesk.token.json");
    let mut p = provider(
        &idp.base,
        Flow::Password,
        Some("PW-SECRET-9"),
        Some(cache.clone()),
    );
    smol::block_on(p.access_token()).unwrap();
    smol::block_on(p.invalidate_and_refresh()).unwrap();
    // The rotated refresh token is now refused: fallback to the password.
    smol::block_on(p.invalidate_and_refresh()).unwrap();
    smol::block_on(p.device_login(|_| {})).unwrap();
    let mut o = oauth(&idp.base, Flow::ClientCredentials);
    o.client_secret = Some(Secret::new("CS-SECRET-9"));
    let mut app = TokenProvider::new(&o, "", None, options(None)).unwrap();
    let _ = smol::block_on(app.access_token()).unwrap_err();

    let logs = LOGS.lock().unwrap().clone();
    assert!(
        logs.contains("HTTP POST 127.0.0.1"),
        "the logger captured the run"
    );
    assert!(logs.contains("refresh token of alice@contoso.com was refused"));
    for secret in [
        "PW-SECRET-9",
        "AT-SECRET-9",
        "RT-SECRET-9",
        "CS-SECRET-9",
        "DC-SECRET-9",
    ] {
        assert!(!logs.contains(secret), "{secret} logged");
    }
    let cached = std::fs::read_to_string(&cache).unwrap();
    assert!(
        cached.contains("RT-SECRET-9-dev"),
        "the cache holds the newest refresh token"
    );
    assert!(
        !cached.contains("PW-SECRET-9"),
        "the password is never cached"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn slow_identity_endpoint_times_out_naming_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (_s, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(2));
    });
    let mut p = TokenProvider::new(
        &oauth(&base, Flow::Password),
        "alice@contoso.com",
        Some(Secret::new("pw")),
        ProviderOptions {
            timeout: Duration::from_millis(300),
            ..options(None)
        },
    )
    .unwrap();
    let e = smol::block_on(p.access_token()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.message().contains("token endpoint 127.0.0.1"), "{e}");
    assert!(e.fix().is_some());
}

#[test]
fn provider_and_its_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let mut p = provider("http://127.0.0.1:9", Flow::Password, Some("pw"), None);
    send(&p);
    send(&p.access_token());
    send(&p.invalidate_and_refresh());
    send(&p.device_login(|_| {}));
}

#[test]
fn an_unwritable_cache_is_reported_not_hidden() {
    let idp = MockIdp::start(|req, _| {
        if req.path.ends_with("/devicecode") {
            return (200, "{\"user_code\":\"U\",\"device_code\":\"D\",\"verification_uri\":\"https://microsoft.com/devicelogin\",\"expires_in\":60,\"interval\":1}".into());
        }
        (200, token_json("at", Some("rt"), 3600))
    });
    let cache = PathBuf::from("/proc/pma-no-such-dir/Helpdesk.token.json");
    let mut p = provider(&idp.base, Flow::DeviceCode, None, Some(cache.clone()));
    let e = smol::block_on(p.device_login(|_| {})).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.message().contains("Helpdesk.token.json"), "{e}");
    assert_eq!(
        idp.seen().len(),
        2,
        "no polling after the code was redeemed"
    );
    // The token is usable in memory, but every use reports the unsaved refresh token.
    let e = smol::block_on(p.access_token()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert_eq!(idp.seen().len(), 2);

    let mut p = provider(&idp.base, Flow::Password, Some("pw"), Some(cache));
    let e = smol::block_on(p.access_token()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.fix().unwrap().contains("state_dir"));
}

#[test]
fn verify_credentials_asks_with_the_configured_password_even_with_a_cached_token() {
    let dir = temp_dir("verify");
    let cache = dir.join("Helpdesk.token.json");
    let idp = MockIdp::start(|req, i| match req.form["grant_type"].as_str() {
        "password" if req.form["password"] == "right" => (
            200,
            token_json(&format!("at-{i}"), Some(&format!("rt-{i}")), 3600),
        ),
        "password" => (
            400,
            error_json("invalid_grant", 50126, "Error validating credentials."),
        ),
        _ => (400, error_json("unsupported_grant_type", 70003, "no")),
    });
    let mut p = provider(
        &idp.base,
        Flow::Password,
        Some("right"),
        Some(cache.clone()),
    );
    smol::block_on(p.access_token()).unwrap();
    // A cached, valid token does not make the check pass by itself: a fresh grant is asked.
    let (token, what) = smol::block_on(p.verify_credentials()).unwrap();
    assert_eq!(token.expose(), "at-1");
    assert_eq!(what, "the password of alice@contoso.com");
    assert_eq!(idp.grants(), ["password", "password"]);
    drop(p);

    // The configured password changed to a wrong one: the cache (bound to the right one) is
    // not used, neither for the check nor for work; the failure names the credential.
    let mut p = provider(
        &idp.base,
        Flow::Password,
        Some("Wr0ng-Pa55"),
        Some(cache.clone()),
    );
    let e = smol::block_on(p.verify_credentials()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidCredentials, "{e}");
    assert!(
        e.message()
            .starts_with("the password of alice@contoso.com was refused: "),
        "{e}"
    );
    assert!(!e.to_string().contains("Wr0ng-Pa55"), "{e}");
    let mut p = provider(
        &idp.base,
        Flow::Password,
        Some("Wr0ng-Pa55"),
        Some(cache.clone()),
    );
    let e = smol::block_on(p.access_token()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidCredentials, "{e}");
    // Back to the right password: the (still right-bound) cache serves again, no request.
    let before = idp.seen().len();
    let mut p = provider(
        &idp.base,
        Flow::Password,
        Some("right"),
        Some(cache.clone()),
    );
    assert_eq!(smol::block_on(p.access_token()).unwrap().expose(), "at-1");
    assert_eq!(idp.seen().len(), before);
    // Replaced in a running provider: the tokens of the old password are dropped.
    p.set_password(Some(Secret::new("Wr0ng-Pa55")));
    let e = smol::block_on(p.access_token()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidCredentials, "{e}");
    p.set_password(Some(Secret::new("right")));
    assert!(
        smol::block_on(p.access_token()).is_ok(),
        "a new password is asked at once"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn verify_credentials_of_a_device_code_sign_in_redeems_the_refresh_token() {
    let idp = MockIdp::start(|req, _| match req.form["grant_type"].as_str() {
        "refresh_token" => (
            400,
            error_json(
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked.",
            ),
        ),
        _ => (400, error_json("unsupported_grant_type", 70003, "no")),
    });
    let mut p = provider(&idp.base, Flow::DeviceCode, None, None);
    let e = smol::block_on(p.verify_credentials()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SignInRequired, "{e}");
    p.tokens.refresh_token = Some(Secret::new("rt-old"));
    p.tokens.access_token = Some(Secret::new("cached"));
    p.tokens.renew_at = u64::MAX;
    let e = smol::block_on(p.verify_credentials()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::GrantRevoked, "{e}");
    assert!(
        e.message()
            .starts_with("the stored sign-in (refresh token) of alice@contoso.com was refused"),
        "{e}"
    );
    assert!(!p.has_refresh_token(), "a refused refresh token is dropped");
}

#[test]
fn device_login_in_two_halves_survives_an_interrupted_wait() {
    let idp = MockIdp::start(|req, i| {
        if req.path.ends_with("/devicecode") {
            return (200, "{\"user_code\":\"WXYZ\",\"device_code\":\"dc\",\"verification_uri\":\"https://microsoft.com/devicelogin\",\"expires_in\":600,\"interval\":1}".into());
        }
        if i < 3 {
            (400, error_json("authorization_pending", 70016, "pending"))
        } else {
            (200, token_json("at-dev", Some("rt-dev"), 3600))
        }
    });
    let mut p = provider(&idp.base, Flow::DeviceCode, None, None);
    let e = smol::block_on(p.device_login_complete()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SignInRequired, "nothing begun: {e}");
    let prompt = smol::block_on(p.device_login_begin()).unwrap();
    assert_eq!(prompt.user_code, "WXYZ");
    assert!(p.device_login_pending());
    // The wait is dropped after the first poll (a host's cancel): the sign-in stays pending.
    smol::block_on(async {
        let complete = p.device_login_complete();
        futures::pin_mut!(complete);
        let stop = smol::Timer::after(Duration::from_millis(1500));
        futures::future::select(complete, stop).await;
    });
    assert!(p.device_login_pending());
    smol::block_on(p.device_login_complete()).unwrap();
    assert!(!p.device_login_pending());
    assert_eq!(smol::block_on(p.access_token()).unwrap().expose(), "at-dev");
}
