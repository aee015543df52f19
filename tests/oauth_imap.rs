//! OAuth 2.0 end to end: the agent gets tokens from the local identity endpoint (Microsoft's
//! protocol and error format) and authenticates IMAP on Dovecot with XOAUTH2, which verifies
//! every token by introspection. Shared mailboxes need a Full Access grant, as in Exchange.

mod support;

use psa_mail_agent::agent::{Agent, Report};
use psa_mail_agent::config::Mailbox;
use psa_mail_agent::ErrorKind;
use std::path::{Path, PathBuf};
use support::Harness;

fn state_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pma-oauth-{tag}-{}", support::unique_user("s")));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn mailbox(h: &Harness, email: &str, username: &str, oauth: &str) -> Mailbox {
    let json = format!(
        r#"{{"name": "{email}", "email": "{email}", "username": "{username}", "password": "{pw}",
             "imap": {{"server": "127.0.0.1", "port": {port}, "ca_file": "{ca}", "timeout_secs": 5}},
             "oauth": {{"enabled": true, "application_id": "app-public", "directory_id": "contoso-tenant",
                        "authority": "{idp}" {oauth}}}}}"#,
        pw = h.password,
        port = h.imaps_port,
        ca = h.ca_file.display(),
        idp = h.idp_url,
    );
    Mailbox::from_json(&json, Path::new("/")).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

fn mail(subject: &str) -> Vec<u8> {
    format!(
        "From: customer@fabrikam.test\r\nTo: helpdesk@contoso.test\r\nSubject: {subject}\r\nMessage-ID: <{}@fabrikam.test>\r\n\r\nbody of {subject}\r\n",
        support::unique_user("m").replace('@', ".")
    )
    .into_bytes()
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(f)
}

fn stat(h: &Harness, user: &str, key: &str) -> u64 {
    let body = h.idp(&format!("/_test/stats?user={user}"));
    let at = body
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key} in {body}"))
        + key.len()
        + 3;
    body[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

/// Approves the device-code sign-in of `user` shortly after (as the person at the browser would).
fn approve_later(user: &str, code: Option<&str>) -> std::thread::JoinHandle<()> {
    let path = match code {
        Some(c) => format!("/_test/approve_device?user={user}&user_code={c}"),
        None => format!("/_test/approve_device?user={user}"),
    };
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        Harness::get().idp(&path);
    })
}

fn failed(report: &Report) -> (String, ErrorKind, String) {
    let s = report
        .failure()
        .unwrap_or_else(|| panic!("expected a failure: {report:#?}"));
    (
        s.name.to_string(),
        s.kind.unwrap(),
        format!("{} | fix: {}", s.detail, s.fix.clone().unwrap_or_default()),
    )
}

#[test]
fn password_flow_end_to_end_never_sends_the_password_to_imap() {
    let h = Harness::get();
    let user = h.unique_user("own");
    h.append(&user, "INBOX", &mail("printer"), &[]);
    let log_path = h.dir.join("dovecot.log");
    let log_start = std::fs::metadata(&log_path)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let mut agent = Agent::new(mailbox(h, &user, &user, ""), state_dir("own")).unwrap();
    let report = run(agent.test_connection());
    assert!(report.healthy(), "{report:#?}");
    assert_eq!(report.steps[0].name, "token");
    assert!(report.steps.iter().any(|s| s.detail.contains("XOAUTH2")));
    let batch = run(agent.fetch(10)).unwrap();
    assert_eq!(batch.len(), 1);
    run(agent.ack(&batch)).unwrap();
    assert_eq!(
        stat(h, &user, "password"),
        1,
        "one password grant, token reused afterwards"
    );
    // Dovecot logs the mechanism of every login: since the harness seeded the mail (with LOGIN),
    // only XOAUTH2 for this user.
    let log = std::fs::read(&log_path).unwrap_or_default();
    let log = String::from_utf8_lossy(&log[log_start.min(log.len())..]).into_owned();
    let logins: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Login: user=<") && l.contains(&user))
        .collect();
    assert!(!logins.is_empty(), "dovecot logged the logins");
    assert!(
        logins.iter().all(|l| l.contains("method=XOAUTH2")),
        "{logins:#?}"
    );
}

#[test]
fn shared_mailbox_opens_with_the_delegates_token() {
    let h = Harness::get();
    let delegate = h.unique_user("alice");
    let shared = h.unique_user("helpdesk");
    h.append(&shared, "INBOX", &mail("shared one"), &[]);
    h.grant_full_access(&shared, &delegate);
    let mut agent = Agent::new(
        mailbox(h, &shared, &delegate, r#", "shared_mailbox": true"#),
        state_dir("shared"),
    )
    .unwrap();
    let report = run(agent.test_connection());
    assert!(report.healthy(), "{report:#?}");
    let batch = run(agent.fetch(10)).unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch.tickets[0].subject, "shared one");
    run(agent.ack(&batch)).unwrap();
    assert!(h.list_messages(&shared, "INBOX")[0]
        .1
        .iter()
        .any(|f| f.contains("Seen")));
    assert_eq!(stat(h, &delegate, "password"), 1);
}

#[test]
fn shared_mailbox_without_full_access_is_diagnosed() {
    let h = Harness::get();
    let delegate = h.unique_user("bob");
    let shared = h.unique_user("support");
    h.append(&shared, "INBOX", &mail("not for bob"), &[]);
    let mut agent = Agent::new(
        mailbox(h, &shared, &delegate, r#", "shared_mailbox": true"#),
        state_dir("denied"),
    )
    .unwrap();
    let (step, kind, text) = failed(&run(agent.test_connection()));
    // Dovecot refuses the sign-in; Exchange signs in and then will not open the mailbox.
    let expected_step = if h.exchange { "select" } else { "authenticate" };
    assert_eq!(step, expected_step, "{text}");
    assert_eq!(kind, ErrorKind::SharedMailboxDenied);
    assert!(
        text.contains(&delegate) && text.contains(&shared) && text.contains("Full Access"),
        "{text}"
    );
    // One renewal was tried, not a loop.
    assert!(stat(h, &delegate, "token_requests") <= 2, "no retry storm");
}

#[test]
fn client_credentials_end_to_end() {
    let h = Harness::get();
    let shared = h.unique_user("apponly");
    h.append(&shared, "INBOX", &mail("app only"), &[]);
    h.grant_full_access(&shared, "app-confidential");
    let json = format!(
        r#"{{"name": "{shared}", "email": "{shared}",
             "imap": {{"server": "127.0.0.1", "port": {}, "ca_file": "{}", "timeout_secs": 5}},
             "oauth": {{"enabled": true, "application_id": "app-confidential", "directory_id": "contoso-tenant",
                        "flow": "client_credentials", "client_secret": "s3cret-app", "authority": "{}"}}}}"#,
        h.imaps_port,
        h.ca_file.display(),
        h.idp_url
    );
    let mb = Mailbox::from_json(&json, Path::new("/")).unwrap();
    let mut agent = Agent::new(mb, state_dir("app")).unwrap();
    let report = run(agent.test_connection());
    assert!(report.healthy(), "{report:#?}");
    let batch = run(agent.fetch(10)).unwrap();
    assert_eq!(batch.tickets[0].subject, "app only");
}

#[test]
fn device_code_end_to_end_with_scripted_approval() {
    let h = Harness::get();
    let user = h.unique_user("mfa-dev");
    h.append(&user, "INBOX", &mail("device"), &[]);
    let dir = state_dir("device");
    let mb = mailbox(h, &user, &user, r#", "flow": "device_code""#);
    let mut agent = Agent::new(mb.clone(), dir.clone()).unwrap();
    // Before sign-in: a clear "sign in" error naming the command.
    let (step, kind, text) = failed(&run(agent.test_connection()));
    assert_eq!((step.as_str(), kind), ("token", ErrorKind::SignInRequired));
    assert!(text.contains("login"), "{text}");
    let mut code = String::new();
    let mut thread = None;
    run(agent.tokens().unwrap().device_login(|p| {
        code = p.user_code.clone();
        assert!(p.verification_uri.starts_with("http"));
        thread = Some(approve_later(&user, Some(&p.user_code)));
    }))
    .unwrap();
    thread.unwrap().join().unwrap();
    assert!(!code.is_empty());
    drop(agent);
    // A new agent (a restart) works from the stored tokens without a person.
    let mut agent = Agent::new(mb, dir).unwrap();
    let batch = run(agent.fetch(10)).unwrap();
    assert_eq!(batch.tickets[0].subject, "device");
}

#[test]
fn expired_access_token_is_renewed_without_a_new_password_grant() {
    let h = Harness::get();
    let user = h.unique_user("expiry");
    let mut agent = Agent::new(mailbox(h, &user, &user, ""), state_dir("expiry")).unwrap();
    h.append(&user, "INBOX", &mail("one"), &[]);
    let batch = run(agent.fetch(10)).unwrap();
    run(agent.ack(&batch)).unwrap();
    agent.release_unacked();
    run(agent.disconnect());
    // The server-side token dies mid-run (revoked session, clock skew): IMAP refuses it.
    h.idp(&format!("/_test/expire_access_tokens?user={user}"));
    h.append(&user, "INBOX", &mail("two"), &[]);
    let batch = run(agent.fetch(10)).unwrap();
    assert_eq!(batch.tickets[0].subject, "two");
    assert_eq!(stat(h, &user, "password"), 1);
    assert_eq!(stat(h, &user, "refresh_token"), 1);
}

#[test]
fn rotated_refresh_token_survives_a_restart_without_the_password() {
    let h = Harness::get();
    let user = h.unique_user("rotate");
    h.idp(&format!("/_test/set?strict_rotation=1&user={user}"));
    let dir = state_dir("rotate");
    let mb = mailbox(h, &user, &user, "");
    {
        // Working sessions (a connection test would sign in with the password afresh).
        let mut agent = Agent::new(mb.clone(), dir.clone()).unwrap();
        run(agent.connect()).unwrap();
        // Force a refresh: the rotated refresh token must be stored (the old one now fails).
        h.idp(&format!("/_test/expire_access_tokens?user={user}"));
        run(agent.disconnect());
        run(agent.connect()).unwrap();
    }
    let cache = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(".token.json"))
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            cache.metadata().unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let mut no_password = mb;
    no_password.password = None;
    h.idp(&format!("/_test/expire_access_tokens?user={user}"));
    let mut agent = Agent::new(no_password, dir).unwrap();
    let report = run(agent.test_connection());
    assert!(report.healthy(), "{report:#?}");
    assert_eq!(
        stat(h, &user, "password"),
        1,
        "the restart used the stored refresh token"
    );
    assert_eq!(stat(h, &user, "refresh_token"), 2);
}

#[test]
fn revoked_grant_is_reported_with_its_fix_and_no_retry_storm() {
    let h = Harness::get();
    let user = h.unique_user("revoked");
    let dir = state_dir("revoked");
    let mb = mailbox(h, &user, &user, r#", "flow": "device_code""#);
    let mut agent = Agent::new(mb.clone(), dir.clone()).unwrap();
    let mut t = None;
    run(agent
        .tokens()
        .unwrap()
        .device_login(|_| t = Some(approve_later(&user, None))))
    .unwrap();
    t.unwrap().join().unwrap();
    assert!(run(agent.test_connection()).healthy());
    // The user changes the password: Microsoft revokes the grant (AADSTS50173).
    h.idp(&format!("/_test/revoke?user={user}"));
    run(agent.disconnect());
    let before = stat(h, &user, "token_requests");
    for _ in 0..5 {
        let (_, kind, text) = failed(&run(agent.test_connection()));
        assert_eq!(kind, ErrorKind::GrantRevoked, "{text}");
        assert!(text.to_lowercase().contains("sign in again"), "{text}");
    }
    let asked = stat(h, &user, "token_requests") - before;
    assert!(
        asked <= 1,
        "five attempts asked the identity platform {asked} times"
    );
}

#[test]
fn identity_platform_errors_reach_the_report_with_their_fix() {
    let h = Harness::get();
    let cases = [
        (50126, ErrorKind::InvalidCredentials, "password"),
        (50057, ErrorKind::AccountDisabled, "delegate"),
        (50076, ErrorKind::MfaRequired, "device"),
        (65001, ErrorKind::ConsentRequired, "admin consent"),
        (
            7000218,
            ErrorKind::PublicClientFlowsDisabled,
            "Allow public client flows",
        ),
        (700016, ErrorKind::ApplicationNotFound, "Application ID"),
        (90002, ErrorKind::TenantNotFound, "Directory ID"),
        (50173, ErrorKind::GrantRevoked, "sign in again"),
    ];
    for (code, kind, fix_word) in cases {
        let user = h.unique_user("aad");
        h.idp(&format!("/_test/fail_next?code={code}&user={user}"));
        let mut agent = Agent::new(mailbox(h, &user, &user, ""), state_dir("aad")).unwrap();
        let (step, got, text) = failed(&run(agent.test_connection()));
        assert_eq!(step, "token", "{code}");
        assert_eq!(got, kind, "AADSTS{code}: {text}");
        assert!(text.contains(&code.to_string()), "{text}");
        assert!(
            text.to_lowercase().contains(&fix_word.to_lowercase()),
            "AADSTS{code}: {text}"
        );
    }
}

#[test]
fn identity_endpoint_down_slow_or_garbage_gives_a_bounded_clear_error() {
    let h = Harness::get();
    for (mode, kinds) in [
        (
            "down",
            &[
                ErrorKind::ConnectionClosed,
                ErrorKind::Connect,
                ErrorKind::Protocol,
            ][..],
        ),
        ("garbage", &[ErrorKind::Protocol][..]),
        ("slow", &[ErrorKind::Timeout][..]),
    ] {
        let user = h.unique_user("idpfault");
        h.idp(&format!("/_test/mode?m={mode}&user={user}"));
        let mut agent = Agent::new(mailbox(h, &user, &user, ""), state_dir("idpfault")).unwrap();
        let started = std::time::Instant::now();
        let (step, kind, text) = failed(&run(agent.test_connection()));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{mode} took {:?}",
            started.elapsed()
        );
        assert_eq!(step, "token", "{mode}");
        assert!(kinds.contains(&kind), "{mode}: {kind:?} {text}");
        assert!(text.contains("127.0.0.1"), "names the endpoint: {text}");
    }
}

#[test]
fn imap_unavailable_is_temporary() {
    let h = Harness::get();
    let user = h.unique_user("unavail");
    h.idp(&format!("/_test/introspect?m=error&user={user}"));
    let mut agent = Agent::new(mailbox(h, &user, &user, ""), state_dir("unavail")).unwrap();
    let (step, kind, _) = failed(&run(agent.test_connection()));
    assert_eq!(
        (step.as_str(), kind),
        ("authenticate", ErrorKind::ServerUnavailable)
    );
}

/// The JSON string value of `key` in `text` (enough for the token cache's flat object).
fn json_value(text: &str, key: &str) -> Option<String> {
    let at = text.find(&format!("\"{key}\":\""))? + key.len() + 4;
    Some(text[at..].split('"').next()?.to_string())
}

#[test]
fn a_trace_level_run_of_the_binary_logs_no_secret() {
    let h = Harness::get();
    let delegate = h.unique_user("tracer");
    let shared = h.unique_user("traced");
    h.grant_full_access(&shared, &delegate);
    h.append(&shared, "INBOX", &mail("trace me"), &[]);
    let dir = state_dir("trace");
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"state_dir": "state", "mailboxes": [{{"name": "Traced", "email": "{shared}", "username": "{delegate}",
                 "password_env": "PMA_TRACE_PASSWORD",
                 "imap": {{"server": "127.0.0.1", "port": {}, "ca_file": "{}"}},
                 "oauth": {{"enabled": true, "application_id": "app-public", "directory_id": "contoso-tenant",
                            "shared_mailbox": true, "authority": "{}"}}}}]}}"#,
            h.imaps_port,
            h.ca_file.display(),
            h.idp_url
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_psa-mail-agent");
    let mut stderr = String::new();
    for args in [&["test", "-vvv"][..], &["fetch", "-vvv"][..]] {
        let out = std::process::Command::new(bin)
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("PMA_TRACE_PASSWORD", &h.password)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stderr.push_str(&String::from_utf8_lossy(&out.stderr));
        stderr.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    // Renew once more so a rotated refresh token is in play too.
    h.idp(&format!("/_test/expire_access_tokens?user={delegate}"));
    let out = std::process::Command::new(bin)
        .args(["fetch", "-vvv", "--config"])
        .arg(&config)
        .env("PMA_TRACE_PASSWORD", &h.password)
        .output()
        .unwrap();
    stderr.push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(
        stderr.contains("TRACE") || stderr.contains("DEBUG"),
        "the run logged at trace level"
    );
    let cache = std::fs::read_to_string(dir.join("state").join("Traced.token.json")).unwrap();
    let access = json_value(&cache, "access_token").expect("access token cached");
    let refresh = json_value(&cache, "refresh_token").expect("refresh token cached");
    for secret in [h.password.as_str(), access.as_str(), refresh.as_str()] {
        assert!(secret.len() > 6);
        assert!(!stderr.contains(secret), "a secret leaked into the log");
    }
    // Nor a base64 XOAUTH2 initial response (it carries the token).
    assert!(
        !stderr.contains("AUTHENTICATE XOAUTH2 "),
        "raw AUTHENTICATE in the log"
    );
}

#[test]
fn imap_unavailable_is_retried_with_backoff_then_reported() {
    let h = Harness::get();
    let user = h.unique_user("unavail2");
    h.append(&user, "INBOX", &mail("after the outage"), &[]);
    h.idp(&format!("/_test/introspect?m=error&user={user}"));
    let mut agent = Agent::new(mailbox(h, &user, &user, ""), state_dir("unavail2")).unwrap();
    let e = run(agent.fetch(10)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ServerUnavailable, "{e}");
    assert!(e.is_temporary());
    assert!(stat(h, &user, "introspections") >= 3, "asked three times");
    // The back end recovers: the next fetch works without anybody changing anything.
    h.idp(&format!("/_test/introspect?m=normal&user={user}"));
    let batch = run(agent.fetch(10)).unwrap();
    assert_eq!(batch.tickets[0].subject, "after the outage");
}
