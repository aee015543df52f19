//! Issue 13, items 3-5 against the harness's identity endpoint and Dovecot: the tenant found
//! from the address (no `oauth.directory_id`), certificate credentials for app-only sign-in, and
//! the credential lifetimes `status` and `test` report.

mod support;

use psa_mail_agent::agent::{Agent, Report};
use psa_mail_agent::config::Mailbox;
use psa_mail_agent::ErrorKind;
use std::path::{Path, PathBuf};
use support::Harness;

/// The GUID of the identity endpoint's tenant (tools/test-idp/src/directory.rs).
const TENANT_GUID: &str = "5c8a3e1f-7b2d-4f60-9a41-0d6e2b8c7f35";

fn state_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pma-tenant-{tag}-{}", support::unique_user("s")));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A mailbox whose `oauth` object is `oauth` plus the harness's authority (no directory_id
/// unless `oauth` has one).
fn mailbox(h: &Harness, email: &str, username: &str, oauth: &str) -> Mailbox {
    let json = format!(
        r#"{{"name": "{email}", "email": "{email}", "username": "{username}", "password": "{pw}",
             "imap": {{"server": "127.0.0.1", "port": {port}, "ca_file": "{ca}", "timeout_secs": 5}},
             "oauth": {{"enabled": true, "authority": "{idp}", {oauth}}}}}"#,
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

fn step<'a>(report: &'a Report, name: &str) -> &'a psa_mail_agent::agent::Step {
    report
        .steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name}: {report:#?}"))
}

#[test]
fn a_mailbox_without_directory_id_signs_in_through_discovery_and_caches_the_tenant() {
    let h = Harness::get();
    let user = h.unique_user("disc");
    h.append(&user, "INBOX", &mail("discovered"), &[]);
    let dir = state_dir("disc");
    let mb = mailbox(h, &user, &user, r#""application_id": "app-public""#);
    assert!(mb.oauth.directory_id.is_empty());
    let mut agent = Agent::new(mb.clone(), dir.clone()).unwrap();
    let report = run(agent.test_connection());
    assert!(report.healthy(), "{report:#?}");
    assert_eq!(report.steps[0].name, "tenant");
    let tenant = step(&report, "tenant");
    assert!(
        tenant.detail.contains(TENANT_GUID) && tenant.detail.contains("contoso.test"),
        "{}",
        tenant.detail
    );
    let batch = run(agent.fetch(10)).unwrap();
    assert_eq!(batch.len(), 1);
    run(agent.ack(&batch)).unwrap();
    let token_url = agent.tokens().unwrap().token_url().to_string();
    assert!(token_url.contains(TENANT_GUID), "{token_url}");
    drop(agent);

    // The tenant is cached in the state directory, atomically written, private.
    let cache = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tenant.json"))
        .expect("tenant cache file");
    let text = std::fs::read_to_string(&cache).unwrap();
    assert!(
        text.contains(TENANT_GUID) && text.contains("contoso.test"),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // A restart reads it from the cache: the tenant is known before any request.
    let agent = Agent::new(mb, dir).unwrap();
    let mut agent = agent;
    let info = agent.tokens().unwrap().tenant_info().cloned().unwrap();
    assert!(info.from_cache);
    assert_eq!(info.tenant_id, TENANT_GUID);
    h.append(&user, "INBOX", &mail("second"), &[]);
    let batch = run(agent.fetch(10)).unwrap();
    assert_eq!(batch.len(), 1);
    run(agent.ack(&batch)).unwrap();
}

#[test]
fn app_only_discovery_uses_the_mailbox_address() {
    let h = Harness::get();
    let mailbox_addr = h.unique_user("disc-app");
    h.grant_full_access(&mailbox_addr, "app-confidential");
    h.append(&mailbox_addr, "INBOX", &mail("app-only"), &[]);
    // The username is not an address at all: only the mailbox's own address has a domain.
    let mb = mailbox(
        h,
        &mailbox_addr,
        "svc-agent",
        r#""application_id": "app-confidential", "flow": "client_credentials", "client_secret": "s3cret-app""#,
    );
    let mut agent = Agent::new(mb, state_dir("disc-app")).unwrap();
    let report = run(agent.test_connection());
    assert!(report.healthy(), "{report:#?}");
    assert!(step(&report, "tenant").detail.contains(TENANT_GUID));
    let batch = run(agent.fetch(10)).unwrap();
    assert_eq!(batch.len(), 1);
}

#[test]
fn a_domain_no_tenant_owns_is_a_clear_error_with_the_fix() {
    let h = Harness::get();
    let user = format!(
        "{}@fabrikam-unknown.example",
        h.unique_user("nodomain").split('@').next().unwrap()
    );
    let mb = mailbox(h, &user, &user, r#""application_id": "app-public""#);
    let mut agent = Agent::new(mb.clone(), state_dir("nodomain")).unwrap();
    let report = run(agent.test_connection());
    let f = report.failure().expect("a failure");
    assert_eq!(f.name, "tenant");
    assert_eq!(f.kind, Some(ErrorKind::TenantNotFound));
    assert!(
        f.detail.contains("fabrikam-unknown.example") && f.detail.contains("AADSTS90002"),
        "{}",
        f.detail
    );
    let fix = f.fix.clone().unwrap();
    assert!(
        fix.contains("oauth.directory_id") && fix.contains("oauth.cloud"),
        "{fix}"
    );
    // Every later step is skipped, none ran against the server.
    assert!(report.steps.iter().skip(1).all(|s| s.ok.is_none()));
    // fetch reports the same error.
    let e = run(agent.fetch(10)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TenantNotFound, "{e}");
}

fn parse(json: &str) -> psa_mail_agent::Result<Mailbox> {
    Mailbox::from_json(json, Path::new("/"))
}

#[test]
fn national_clouds_set_the_authority_and_imap_host_unless_given() {
    use psa_mail_agent::config::Cloud;
    let m = |oauth: &str, imap: &str| {
        parse(&format!(
            r#"{{"name": "A", "email": "a@contoso.us", "password": "p" {imap},
                 "oauth": {{"enabled": true, "application_id": "11111111-2222-3333-4444-555555555555" {oauth}}}}}"#
        ))
        .unwrap()
    };
    let global = m("", "");
    assert_eq!(global.oauth.cloud, Cloud::Global);
    assert_eq!(global.oauth.authority, "https://login.microsoftonline.com");
    assert_eq!(global.imap.server, "outlook.office365.com");
    let gov = m(r#", "cloud": "usgov""#, "");
    assert_eq!(gov.oauth.cloud, Cloud::UsGov);
    assert_eq!(gov.oauth.authority, "https://login.microsoftonline.us");
    assert_eq!(gov.imap.server, "outlook.office365.us");
    let cn = m(r#", "cloud": "china""#, "");
    assert_eq!(cn.oauth.authority, "https://login.chinacloudapi.cn");
    assert_eq!(cn.imap.server, "partner.outlook.cn");
    // An explicit authority and server win.
    let own = m(
        r#", "cloud": "china", "authority": "https://login.example.test/""#,
        r#", "imap": {"server": "imap.example.test"}"#,
    );
    assert_eq!(own.oauth.authority, "https://login.example.test");
    assert_eq!(own.imap.server, "imap.example.test");
    // A wrong cloud names the key and the choices.
    let e = parse(
        r#"{"name": "A", "email": "a@contoso.us", "password": "p",
            "oauth": {"enabled": true, "application_id": "11111111-2222-3333-4444-555555555555", "cloud": "gcc"}}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(
        e.message().contains("oauth.cloud") && e.message().contains("usgov"),
        "{e}"
    );
}

#[test]
fn usgov_cloud_asks_for_its_own_exchange_scope() {
    // The identity endpoint stands in for login.microsoftonline.us (explicit authority); the
    // scope is the US Government cloud's Exchange Online, which it grants for IMAP as well.
    let h = Harness::get();
    let user = h.unique_user("gov");
    h.append(&user, "INBOX", &mail("gov"), &[]);
    let mb = mailbox(
        h,
        &user,
        &user,
        r#""application_id": "app-public", "cloud": "usgov""#,
    );
    assert_eq!(mb.imap.server, "127.0.0.1", "explicit imap.server wins");
    let mut agent = Agent::new(mb, state_dir("gov")).unwrap();
    let report = run(agent.test_connection());
    assert!(report.healthy(), "{report:#?}");
    let token = step(&report, "token");
    assert!(token.ok == Some(true), "{token:?}");
    let body = h.idp(&format!("/_test/stats?user={user}"));
    assert!(body.contains("\"password\":1"), "{body}");
}

// ------------------------------------------------------------------ certificate credentials

/// A self-signed RSA certificate with its key in one PEM file, valid for `days` (openssl).
fn make_certificate(dir: &Path, name: &str, days: u32) -> PathBuf {
    let key = dir.join(format!("{name}.key"));
    let crt = dir.join(format!("{name}.crt"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days"])
        .arg(days.to_string())
        .args(["-subj", &format!("/CN={name}"), "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = dir.join(format!("{name}.pem"));
    let text = std::fs::read_to_string(&crt).unwrap() + &std::fs::read_to_string(&key).unwrap();
    std::fs::write(&pem, text).unwrap();
    pem
}

/// Registers the certificate of `pem` for app `client_id` at the identity endpoint; returns
/// the thumbprint it answers.
fn register_certificate(h: &Harness, client_id: &str, pem: &Path) -> String {
    let text = std::fs::read_to_string(pem).unwrap();
    let cert_only = &text[..text.find("-----END CERTIFICATE-----").unwrap() + 25];
    let (status, body) = h.idp_request(
        "POST",
        &format!("/_test/register_certificate?client_id={client_id}"),
        &format!("certificate={}", support::form_encode(cert_only)),
    );
    assert_eq!(status, 200, "{body}");
    support::json_field(&body, "thumbprint").unwrap()
}

fn cert_app(tag: &str) -> String {
    format!(
        "app-cert-{}",
        support::unique_user(tag).split('@').next().unwrap()
    )
}

fn cert_mailbox(h: &Harness, address: &str, app: &str, pem: &Path) -> Mailbox {
    mailbox(
        h,
        address,
        address,
        &format!(
            r#""application_id": "{app}", "flow": "client_credentials", "client_certificate_file": "{}""#,
            pem.display()
        ),
    )
}

#[test]
fn app_only_sign_in_with_a_certificate_end_to_end() {
    let h = Harness::get();
    let dir = state_dir("cert");
    let app = cert_app("cert");
    let pem = make_certificate(&dir, "agent", 365);
    let thumbprint = register_certificate(h, &app, &pem);
    let address = h.unique_user("cert-mb");
    h.grant_full_access(&address, &app);
    h.append(&address, "INBOX", &mail("certificate"), &[]);
    let mb = cert_mailbox(h, &address, &app, &pem);
    assert!(mb.oauth.client_secret.is_none());
    let mut agent = Agent::new(mb.clone(), dir.clone()).unwrap();
    let report = run(agent.test_connection());
    assert!(report.healthy(), "{report:#?}");
    let token = step(&report, "token");
    assert!(
        token.detail.contains("certificate") && token.detail.contains(&thumbprint),
        "{}",
        token.detail
    );
    assert!(step(&report, "tenant").detail.contains(TENANT_GUID));
    let batch = run(agent.fetch(10)).unwrap();
    assert_eq!(batch.len(), 1);
    assert!(batch.tickets[0].subject.contains("certificate"));
    run(agent.ack(&batch)).unwrap();
    // Every request carries a new assertion (a new jti): sign-ins keep working.
    let t = agent.tokens().unwrap();
    run(t.verify_credentials()).unwrap();
    run(t.verify_credentials()).unwrap();
    let stats = h.idp(&format!("/_test/stats?user={app}"));
    assert!(stats.contains("\"client_credentials\":3"), "{stats}");
    assert!(stats.contains("\"token_errors\":0"), "{stats}");
    drop(agent);

    // The token cache is bound to the certificate: another certificate does not reuse it.
    let other = make_certificate(&dir, "other", 365);
    register_certificate(h, &app, &other);
    let mut agent = Agent::new(cert_mailbox(h, &address, &app, &other), dir.clone()).unwrap();
    assert!(run(agent.fetch(10)).unwrap().is_empty());
    let stats = h.idp(&format!("/_test/stats?user={app}"));
    assert!(
        stats.contains("\"client_credentials\":4"),
        "a new sign-in with the other certificate: {stats}"
    );
}

#[test]
fn a_certificate_not_registered_on_the_app_is_refused_with_the_fix() {
    let h = Harness::get();
    let dir = state_dir("wrongkey");
    let app = cert_app("wrongkey");
    let registered = make_certificate(&dir, "registered", 365);
    register_certificate(h, &app, &registered);
    let wrong = make_certificate(&dir, "wrong", 365);
    let address = h.unique_user("wrongkey-mb");
    let mut agent = Agent::new(cert_mailbox(h, &address, &app, &wrong), dir).unwrap();
    let thumbprint = agent.tokens().unwrap().certificate().unwrap().thumbprint();
    let report = run(agent.test_connection());
    let f = report.failure().expect("refused");
    assert_eq!(f.name, "token");
    assert_eq!(f.kind, Some(ErrorKind::ClientCertificateRejected), "{f:?}");
    assert!(f.detail.contains("AADSTS700027"), "{}", f.detail);
    assert!(
        f.detail.contains(&thumbprint),
        "names the agent's certificate: {}",
        f.detail
    );
    let fix = f.fix.clone().unwrap();
    assert!(
        fix.contains("Certificates & secrets") && fix.contains("upload"),
        "{fix}"
    );
}

#[test]
fn an_assertion_outside_its_time_is_refused_with_the_clock_fix() {
    let h = Harness::get();
    let dir = state_dir("skew");
    let app = cert_app("skew");
    let pem = make_certificate(&dir, "agent", 365);
    register_certificate(h, &app, &pem);
    // The endpoint's clock runs 20 minutes ahead: this machine's clock is 20 minutes slow.
    h.idp(&format!("/_test/cert_clock?client_id={app}&skew=1200"));
    let address = h.unique_user("skew-mb");
    let mut agent = Agent::new(cert_mailbox(h, &address, &app, &pem), dir).unwrap();
    let report = run(agent.test_connection());
    let f = report.failure().expect("refused");
    assert_eq!(f.kind, Some(ErrorKind::ClientAssertionExpired), "{f:?}");
    assert!(f.detail.contains("AADSTS700024"), "{}", f.detail);
    assert!(f.fix.clone().unwrap().contains("clock"), "{f:?}");
}

#[test]
fn a_replayed_assertion_is_refused() {
    use psa_mail_agent::oauth::cert::ClientCertificate;
    let h = Harness::get();
    let dir = state_dir("replay");
    let app = cert_app("replay");
    let pem = make_certificate(&dir, "agent", 365);
    register_certificate(h, &app, &pem);
    let cert = ClientCertificate::load(&pem).unwrap();
    let path = format!("/{TENANT_GUID}/oauth2/v2.0/token");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let assertion = cert
        .assertion(&format!("{}{path}", h.idp_url), &app, now)
        .unwrap();
    let form = format!(
        "grant_type=client_credentials&client_id={app}&scope={}&client_assertion_type={}&client_assertion={}",
        support::form_encode("https://outlook.office365.com/.default"),
        support::form_encode("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        assertion.expose()
    );
    let (status, body) = h.idp_request("POST", &path, &form);
    assert_eq!(status, 200, "{body}");
    // The same assertion again: refused as a replay (what a proxy re-sending the POST causes).
    let (status, body) = h.idp_request("POST", &path, &form);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("already used"), "{body}");
    // The agent maps that answer to its own kind with the fix.
    let msg = psa_mail_agent::oauth::fuzz_token_endpoint_answer(body.as_bytes()).unwrap();
    assert!(
        msg.contains("the client assertion was used before"),
        "{msg}"
    );
    // A fresh assertion (new jti) is accepted again.
    let again = cert
        .assertion(&format!("{}{path}", h.idp_url), &app, now)
        .unwrap();
    let form2 = form.replace(assertion.expose(), again.expose());
    assert_eq!(h.idp_request("POST", &path, &form2).0, 200);
}

#[test]
fn certificate_files_are_checked_at_start_with_the_key_path() {
    let h = Harness::get();
    let dir = state_dir("certfile");
    let a = make_certificate(&dir, "a", 365);
    let b = make_certificate(&dir, "b", 365);
    let address = h.unique_user("certfile-mb");
    let check = |text: &str, want: &str| {
        let pem = dir.join("mixed.pem");
        std::fs::write(&pem, text).unwrap();
        let e = Agent::new(cert_mailbox(h, &address, "app-cert-x", &pem), dir.clone())
            .err()
            .expect("refused");
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(e.message().contains("oauth.client_certificate_file"), "{e}");
        assert!(e.message().contains(want), "{e}");
        assert!(e.fix().is_some());
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let (ta, tb) = (read(&a), read(&b));
    let cert_a = &ta[..ta.find("-----BEGIN PRIVATE KEY").unwrap()];
    let key_b = &tb[tb.find("-----BEGIN PRIVATE KEY").unwrap()..];
    check(
        &format!("{cert_a}{key_b}"),
        "does not belong to the certificate",
    );
    check(cert_a, "no private key");
    check(key_b, "no -----BEGIN CERTIFICATE-----");
    let e = Agent::new(
        cert_mailbox(h, &address, "app-cert-x", &dir.join("missing.pem")),
        dir.clone(),
    )
    .err()
    .unwrap();
    assert!(e.message().contains("cannot read"), "{e}");
    // A secret and a certificate at once: refused at load, naming both keys.
    let e = Mailbox::from_json(
        &format!(
            r#"{{"name": "A", "email": "a@contoso.test", "oauth": {{"enabled": true,
                "application_id": "11111111-2222-3333-4444-555555555555", "flow": "client_credentials", "client_secret": "s",
                "client_certificate_file": "{}"}}}}"#,
            a.display()
        ),
        Path::new("/"),
    )
    .unwrap_err();
    assert!(
        e.message().contains("oauth.client_certificate_file")
            && e.message().contains("oauth.client_secret"),
        "{e}"
    );
}

// ------------------------------------------------------------------ credential lifetimes

const DAY: u64 = 86_400;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `now + days` as an RFC 3339 date-time.
fn rfc3339_in(days: i64) -> String {
    let t = (now() as i64 + days * DAY as i64) as u64;
    let (d, rem) = (t / DAY, t % DAY);
    // Civil date from days (Howard Hinnant).
    let z = d as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[test]
fn refresh_token_renewal_is_reported_and_warned_14_days_before_90_days_of_inactivity() {
    use psa_mail_agent::oauth::lifetimes::{CredentialKind, LifetimeState};
    let h = Harness::get();
    let user = h.unique_user("renewal");
    let mb = mailbox(h, &user, &user, r#""application_id": "app-public""#);
    let mut agent = Agent::new(mb, state_dir("renewal")).unwrap();
    let before = now();
    let report = run(agent.test_connection());
    assert!(report.healthy(), "{report:#?}");
    // The report carries the refresh token's renewal.
    let c = report
        .credentials
        .iter()
        .find(|c| c.kind == CredentialKind::RefreshToken)
        .unwrap_or_else(|| panic!("{:#?}", report.credentials));
    let renewed = c.renewed_at.unwrap();
    assert!((before..=now()).contains(&renewed));
    assert_eq!(c.expires_at, Some(renewed + 90 * DAY));
    assert_eq!(c.state, LifetimeState::Ok);
    assert!(
        c.detail.contains("last renewed") && c.detail.contains(&user),
        "{}",
        c.detail
    );
    // The clock moved on without the agent renewing it.
    let at = |days: u64| {
        agent
            .credentials(renewed + days * DAY)
            .into_iter()
            .find(|c| c.kind == CredentialKind::RefreshToken)
            .unwrap()
    };
    assert_eq!(at(75).state, LifetimeState::Ok);
    let warned = at(77);
    assert_eq!(warned.state, LifetimeState::Expiring);
    assert!(warned.detail.contains("13 days left"), "{}", warned.detail);
    assert!(warned.fix.unwrap().contains("psa-mail-agent run"));
    let ended = at(91);
    assert_eq!(ended.state, LifetimeState::Expired);
    assert!(
        ended.detail.contains("unused for 90 days"),
        "{}",
        ended.detail
    );
    // A renewal (a refresh grant) moves the window: fresh again.
    h.idp(&format!("/_test/expire_access_tokens?user={user}"));
    run(agent.tokens().unwrap().invalidate_and_refresh()).unwrap();
    let c = agent
        .credentials(now())
        .into_iter()
        .find(|c| c.kind == CredentialKind::RefreshToken)
        .unwrap();
    assert!(c.renewed_at.unwrap() >= renewed);
    assert_eq!(c.state, LifetimeState::Ok);
}

#[test]
fn secrets_and_certificates_expiring_within_30_days_are_reported() {
    use psa_mail_agent::oauth::lifetimes::{credentials, CredentialKind, LifetimeState};
    let dir = state_dir("expiry");
    let cache = dir.join("none.token.json");
    let secret = |expires: &str| {
        parse(&format!(
            r#"{{"name": "A", "email": "a@contoso.test", "oauth": {{"enabled": true,
                "application_id": "11111111-2222-3333-4444-555555555555", "flow": "client_credentials", "client_secret": "s"{expires}}}}}"#
        ))
        .unwrap()
    };
    let state = |mb: &Mailbox| {
        let c = credentials(mb, &cache, now());
        assert_eq!(c.len(), 1, "{c:#?}");
        assert_eq!(c[0].kind, CredentialKind::ClientSecret);
        c.into_iter().next().unwrap()
    };
    assert_eq!(state(&secret("")).state, LifetimeState::Unknown);
    assert!(state(&secret("")).detail.contains("client_secret_expires"));
    let far = state(&secret(&format!(
        r#", "client_secret_expires": "{}""#,
        rfc3339_in(60)
    )));
    assert_eq!(far.state, LifetimeState::Ok, "{}", far.detail);
    let soon = state(&secret(&format!(
        r#", "client_secret_expires": "{}""#,
        rfc3339_in(20)
    )));
    assert_eq!(soon.state, LifetimeState::Expiring, "{}", soon.detail);
    assert!(soon.fix.unwrap().contains("Client secrets"));
    let date_only = &rfc3339_in(-3)[..10];
    let gone = state(&secret(&format!(
        r#", "client_secret_expires": "{date_only}""#
    )));
    assert_eq!(gone.state, LifetimeState::Expired, "{}", gone.detail);
    assert!(gone.detail.contains("expired on"), "{}", gone.detail);
    // A date that is not RFC 3339 is refused at load with the key path.
    let e = parse(
        r#"{"name": "A", "email": "a@contoso.test", "oauth": {"enabled": true,
            "application_id": "11111111-2222-3333-4444-555555555555", "client_secret": "s", "client_secret_expires": "31.03.2027"}}"#,
    )
    .unwrap_err();
    assert!(e.message().contains("oauth.client_secret_expires"), "{e}");

    // Certificates: their notAfter.
    let h = Harness::get();
    let cert = |days: u32| {
        let pem = make_certificate(&dir, &format!("c{days}"), days);
        let mb = cert_mailbox(h, "a@contoso.test", "app-cert-x", &pem);
        let c = credentials(&mb, &cache, now());
        assert_eq!(c.len(), 1, "{c:#?}");
        assert_eq!(c[0].kind, CredentialKind::Certificate);
        c.into_iter().next().unwrap()
    };
    assert_eq!(cert(365).state, LifetimeState::Ok);
    let soon = cert(20);
    assert_eq!(soon.state, LifetimeState::Expiring, "{}", soon.detail);
    assert!(soon.detail.contains("thumbprint") && soon.detail.contains("days left"));
    // The clock injected: the same certificate 21 days later has expired.
    let pem = dir.join("c20.pem");
    let mb = cert_mailbox(h, "a@contoso.test", "app-cert-x", &pem);
    let later = credentials(&mb, &cache, now() + 21 * DAY);
    assert_eq!(later[0].state, LifetimeState::Expired);
}

#[test]
fn status_shows_lifetimes_and_run_notifies_about_an_expiring_certificate() {
    let h = Harness::get();
    let dir = state_dir("notify");
    let app = cert_app("notify");
    let pem = make_certificate(&dir, "soon", 20);
    register_certificate(h, &app, &pem);
    let address = h.unique_user("notify-mb");
    h.grant_full_access(&address, &app);
    h.append(&address, "INBOX", &mail("notify"), &[]);
    let notified = dir.join("notified.txt");
    let script = dir.join("notify.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s|%s|%s\\n' \"$1\" \"$2\" \"$3\" >> {}\n",
            notified.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let config = dir.join("agent.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"state_dir": "{state}", "output": {{"kind": "spool", "dir": "{spool}"}},
                "notify_command": "{script}",
                "mailboxes": [{{"name": "Certs", "email": "{address}",
                  "imap": {{"server": "127.0.0.1", "port": {port}, "ca_file": "{ca}", "timeout_secs": 10}},
                  "oauth": {{"enabled": true, "authority": "{idp}", "application_id": "{app}",
                             "flow": "client_credentials", "client_certificate_file": "{pem}"}}}}]}}"#,
            state = dir.join("state").display(),
            spool = dir.join("spool").display(),
            script = script.display(),
            port = h.imaps_port,
            ca = h.ca_file.display(),
            idp = h.idp_url,
            pem = pem.display(),
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_psa-mail-agent");
    // `status` before any run: the certificate's expiry with the warning and the fix.
    let out = std::process::Command::new(bin)
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("WARNING: the certificate of application") && text.contains("days left"),
        "{text}"
    );
    assert!(text.contains("fix: create a new certificate"), "{text}");

    // `run` delivers the mail and notifies once about the certificate.
    let mut child = std::process::Command::new(bin)
        .args(["run", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("run.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let line = loop {
        let text = std::fs::read_to_string(&notified).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains("credential_expiring")) {
            break l.to_string();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "no notification; log:\n{}",
                std::fs::read_to_string(dir.join("run.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("Certs|credential_expiring|"), "{line}");
    assert!(
        line.contains("thumbprint") && line.contains("expires on"),
        "{line}"
    );
    let spooled = std::fs::read_dir(dir.join("spool"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(spooled, 1, "the mail was delivered too");
}
