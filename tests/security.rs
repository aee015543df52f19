//! Security checks as tests: certificates that must be refused (self-signed, expired, wrong
//! host), STARTTLS stripping, plaintext LOGIN, plain-HTTP token endpoints, secrets kept out of
//! logs, errors, status files and Debug output, private file modes, and the warning for a config
//! file others can read.

mod support;

use psa_mail_agent::agent::Agent;
use psa_mail_agent::config::Mailbox;
use psa_mail_agent::ErrorKind;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::Harness;

const BIN: &str = env!("CARGO_BIN_EXE_psa-mail-agent");
/// Secrets used below; none may appear anywhere the tests look.
const PASSWORD_WRONG: &str = "Wr0ng-Pa55-Qx7Zk";
const CLIENT_SECRET: &str = "cs-Sekr1t-9fK2mPq";

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(f)
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "pma-sec-{tag}-{}",
        support::unique_user("d").replace('@', ".")
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn mailbox(json: &str) -> Mailbox {
    Mailbox::from_json(json, Path::new("/")).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

fn failing_step(mb: Mailbox, tag: &str) -> psa_mail_agent::agent::Step {
    let mut agent = Agent::new(mb, temp(tag)).unwrap();
    let report = run(agent.test_connection());
    report
        .failure()
        .cloned()
        .unwrap_or_else(|| panic!("expected a failure: {report:#?}"))
}

/// An expired certificate for 127.0.0.1 signed by a fresh CA, made with `openssl ca` (which,
/// unlike `openssl x509`, accepts start and end dates in the past). Returns (dir, CA file).
fn expired_certificate() -> (PathBuf, PathBuf) {
    let d = temp("expired");
    let sh = r#"set -e
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=expired test CA" \
  -keyout ca.key -out ca.pem -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr 2>/dev/null
mkdir -p db && : > db/index.txt && echo 01 > db/serial
cat > ca.cnf <<EOF
[ca]
default_ca = test
[test]
dir = .
database = db/index.txt
serial = db/serial
new_certs_dir = db
default_md = sha256
policy = any
copy_extensions = none
x509_extensions = leaf
[any]
commonName = supplied
[leaf]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
EOF
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in server.csr -out server.pem \
  -startdate 20200101000000Z -enddate 20210101000000Z 2>/dev/null
"#;
    let ok = Command::new("bash")
        .args(["-c", sh])
        .current_dir(&d)
        .status()
        .expect("bash")
        .success();
    assert!(ok, "openssl could not make the expired certificate");
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-enddate", "-in"])
        .arg(d.join("server.pem"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("2021"),
        "not the expired certificate"
    );
    let ca = d.join("ca.pem");
    (d, ca)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `openssl s_server` with the given certificate; killed when dropped.
struct TlsServer(std::process::Child, u16);

impl TlsServer {
    fn start(dir: &Path) -> TlsServer {
        let port = free_port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-accept"])
            .arg(port.to_string())
            .args(["-cert", "server.pem", "-key", "server.key"])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "s_server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsServer(child, port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn expired_self_signed_and_wrong_host_certificates_are_refused() {
    let h = Harness::get();
    let (dir, ca) = expired_certificate();
    let server = TlsServer::start(&dir);
    // The CA is trusted (ca_file): only the expiry is wrong.
    let step = failing_step(
        mailbox(&format!(
            r#"{{"name": "x", "email": "a@contoso.test", "password": "p",
                 "imap": {{"server": "127.0.0.1", "port": {}, "ca_file": "{}", "timeout_secs": 10}}}}"#,
            server.1,
            ca.display()
        )),
        "expired",
    );
    assert_eq!(step.name, "tls", "{step:?}");
    assert_eq!(step.kind, Some(ErrorKind::Certificate), "{step:?}");
    assert!(step.detail.to_lowercase().contains("expired"), "{step:?}");
    // Self-signed from the agent's view: the harness CA is not trusted without ca_file.
    let step = failing_step(
        mailbox(&format!(
            r#"{{"name": "x", "email": "a@contoso.test", "password": "p",
                 "imap": {{"server": "127.0.0.1", "port": {}, "timeout_secs": 10}}}}"#,
            h.imaps_port
        )),
        "selfsigned",
    );
    assert_eq!(step.kind, Some(ErrorKind::Certificate), "{step:?}");
    // A trusted certificate for another name.
    let step = failing_step(
        mailbox(&format!(
            r#"{{"name": "x", "email": "a@contoso.test", "password": "p",
                 "imap": {{"server": "{}", "port": {}, "ca_file": "{}", "timeout_secs": 10}}}}"#,
            h.wrong_host,
            h.imaps_port,
            h.ca_file.display()
        )),
        "wronghost",
    );
    assert_eq!(step.kind, Some(ErrorKind::Certificate), "{step:?}");
}

/// A man in the middle that removes STARTTLS from everything the server says; records what the
/// client sent.
fn stripping_proxy(target: u16) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let rec = sent.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = TcpStream::connect(("127.0.0.1", target)).unwrap();
            let (mut c_w, c_r) = (client.try_clone().unwrap(), client);
            let (mut s_w, s_r) = (server.try_clone().unwrap(), server);
            let rec = rec.clone();
            std::thread::spawn(move || {
                let mut c_r = c_r;
                let mut buf = [0u8; 4096];
                while let Ok(n) = c_r.read(&mut buf) {
                    if n == 0 || s_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    rec.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
            std::thread::spawn(move || {
                let mut lines = BufReader::new(s_r);
                let mut line = String::new();
                while lines.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    let stripped = line.replace(" STARTTLS", "");
                    if c_w.write_all(stripped.as_bytes()).is_err() {
                        break;
                    }
                    line.clear();
                }
            });
        }
    });
    (port, sent)
}

#[test]
fn stripped_starttls_is_refused_before_any_credential_is_sent() {
    let h = Harness::get();
    let (port, sent) = stripping_proxy(h.imap_port);
    let user = h.unique_user("strip");
    let step = failing_step(
        mailbox(&format!(
            r#"{{"name": "x", "email": "{user}", "password": "{pw}",
                 "imap": {{"server": "127.0.0.1", "port": {port}, "encryption": "starttls",
                          "ca_file": "{ca}", "timeout_secs": 10}}}}"#,
            pw = h.password,
            ca = h.ca_file.display()
        )),
        "strip",
    );
    assert_eq!(step.name, "tls", "{step:?}");
    assert_eq!(step.kind, Some(ErrorKind::StartTlsNotOffered), "{step:?}");
    let sent = String::from_utf8_lossy(&sent.lock().unwrap()).to_string();
    assert!(!sent.to_uppercase().contains("LOGIN"), "{sent}");
    assert!(!sent.contains(&h.password), "{sent}");
}

#[test]
fn plaintext_login_needs_allow_plaintext_and_http_authorities_need_loopback() {
    let h = Harness::get();
    let e = Mailbox::from_json(
        r#"{"name": "x", "email": "a@contoso.test", "password": "p",
            "imap": {"server": "imap.contoso.test", "port": 143, "encryption": "none"}}"#,
        Path::new("/"),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PlaintextRefused, "{e:?}");
    // Allowed on purpose: LOGIN travels in the clear to a server without STARTTLS.
    let user = h.unique_user("plain");
    let mut agent = Agent::new(
        mailbox(&format!(
            r#"{{"name": "x", "email": "{user}", "password": "{pw}",
                 "imap": {{"server": "{host}", "port": {port}, "encryption": "none",
                          "allow_plaintext": true, "timeout_secs": 10}}}}"#,
            pw = h.password,
            host = h.nostarttls_host,
            port = h.nostarttls_port
        )),
        temp("plain"),
    )
    .unwrap();
    assert!(run(agent.test_connection()).healthy());
    for authority in [
        "http://login.microsoftonline.com",
        "http://10.0.0.5:8080",
        "ftp://127.0.0.1",
    ] {
        let json = format!(
            r#"{{"name": "x", "email": "a@contoso.test", "username": "a@contoso.test", "password": "p",
                 "oauth": {{"enabled": true, "application_id": "11111111-2222-3333-4444-555555555555", "directory_id": "contoso.test",
                           "authority": "{authority}"}}}}"#
        );
        let e = Mailbox::from_json(&json, Path::new("/"))
            .err()
            .unwrap_or_else(|| panic!("{authority} accepted"));
        assert!(e.message().contains("authority"), "{authority}: {e}");
    }
    for authority in [
        "http://127.0.0.1:9",
        "http://localhost:9",
        "https://login.microsoftonline.com",
    ] {
        let json = format!(
            r#"{{"name": "x", "email": "a@contoso.test", "username": "a@contoso.test", "password": "p",
                 "oauth": {{"enabled": true, "application_id": "11111111-2222-3333-4444-555555555555", "directory_id": "contoso.test",
                           "authority": "{authority}"}}}}"#
        );
        Mailbox::from_json(&json, Path::new("/"))
            .unwrap_or_else(|e| panic!("{authority} refused: {e}"));
    }
}

fn assert_clean(what: &str, text: &str) {
    for secret in [PASSWORD_WRONG, CLIENT_SECRET, "Harness-Pa55!"] {
        assert!(!text.contains(secret), "{what} contains a secret:\n{text}");
    }
}

#[test]
fn secrets_stay_out_of_debug_output_errors_and_reports() {
    let h = Harness::get();
    let user = h.unique_user("debug");
    let json = format!(
        r#"{{"name": "x", "email": "{user}", "username": "{user}", "password": "{PASSWORD_WRONG}",
             "imap": {{"server": "127.0.0.1", "port": {port}, "ca_file": "{ca}", "timeout_secs": 10}},
             "oauth": {{"enabled": true, "application_id": "app-confidential", "directory_id": "contoso-tenant",
                       "flow": "client_credentials", "client_secret": "{CLIENT_SECRET}",
                       "authority": "{idp}"}}}}"#,
        port = h.imaps_port,
        ca = h.ca_file.display(),
        idp = h.idp_url,
    );
    let mb = mailbox(&json);
    assert_clean("Debug of Mailbox", &format!("{mb:?} {mb:#?}"));
    let config_json = format!(
        r#"{{"state_dir": "/tmp/x", "output": {{"kind": "webhook", "url": "https://psa.example/hook", "token_env": "PMA_SEC_TOKEN"}},
             "mailboxes": [{json}]}}"#
    );
    let config =
        psa_mail_agent::config::Config::from_json_with_env(&config_json, Path::new("/"), &|k| {
            (k == "PMA_SEC_TOKEN").then(|| "whk-T0ken-Zz91".into())
        })
        .unwrap();
    let debug = format!("{config:?} {config:#?}");
    assert_clean("Debug of Config", &debug);
    assert!(!debug.contains("whk-T0ken-Zz91"), "{debug}");
    let mut agent = Agent::new(mb, temp("debug")).unwrap();
    if let Some(t) = agent.tokens() {
        assert_clean("Debug of TokenProvider", &format!("{t:?}"));
    }
    // A wrong client secret: the refusal names the cause, never the secret.
    let report = run(agent.test_connection());
    let text = format!("{report:?}");
    assert!(!report.healthy());
    assert_clean("connection report", &text);
    // A wrong password over LOGIN.
    let mut mb = mailbox(&format!(
        r#"{{"name": "y", "email": "{user}", "password": "{PASSWORD_WRONG}",
             "imap": {{"server": "127.0.0.1", "port": {}, "ca_file": "{}", "timeout_secs": 10}}}}"#,
        h.imaps_port,
        h.ca_file.display()
    ));
    mb.password = Some(PASSWORD_WRONG.into());
    let mut agent = Agent::new(mb, temp("debug2")).unwrap();
    let e = run(agent.fetch(1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LoginFailed);
    assert_clean(
        "LOGIN error",
        &format!("{e} {e:?} {}", e.fix().unwrap_or_default()),
    );
}

fn write_config(dir: &Path, mailbox_json: &str, mode: u32) -> PathBuf {
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"state_dir": "{}", "mailboxes": [{mailbox_json}]}}"#,
            dir.join("state").display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    path
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[test]
fn state_and_token_cache_are_private_and_an_exposed_config_is_warned_about() {
    let h = Harness::get();
    let user = h.unique_user("modes");
    h.append(
        &user,
        "INBOX",
        b"From: a@fabrikam.test\r\nSubject: m\r\nMessage-ID: <modes@fabrikam.test>\r\n\r\nx\r\n",
        &[],
    );
    let dir = temp("modes");
    let mb = format!(
        r#"{{"name": "Helpdesk", "email": "{user}", "username": "{user}", "password": "{pw}",
             "imap": {{"server": "127.0.0.1", "port": {port}, "ca_file": "{ca}", "timeout_secs": 10}},
             "oauth": {{"enabled": true, "application_id": "app-public", "directory_id": "contoso-tenant",
                       "authority": "{idp}"}}}}"#,
        pw = h.password,
        port = h.imaps_port,
        ca = h.ca_file.display(),
        idp = h.idp_url,
    );
    // Readable by others, with an inline password: the binary warns, naming the fix.
    let config = write_config(&dir, &mb, 0o644);
    let out = Command::new(BIN)
        .args(["fetch", "--config"])
        .arg(&config)
        .env("PMA_LOG", "trace")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("readable by group or others") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert_clean("trace-level stderr", &stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("modes@fabrikam.test"), "{stdout}");
    let paths = psa_mail_agent::state::StatePaths::new(&dir.join("state"), "Helpdesk");
    assert_eq!(mode(&paths.state), 0o600, "state file");
    assert_eq!(mode(&paths.token_cache), 0o600, "token cache");
    let cache = std::fs::read_to_string(&paths.token_cache).unwrap();
    assert!(!cache.contains(&h.password), "the password is not cached");
    // Private: no warning.
    let config = write_config(&dir, &mb, 0o600);
    let out = Command::new(BIN)
        .args(["fetch", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("readable by group or others"), "{stderr}");
}

#[test]
fn the_daemon_status_file_holds_no_secret() {
    let h = Harness::get();
    let user = h.unique_user("status");
    let dir = temp("status");
    let mb = format!(
        r#"{{"name": "Helpdesk", "email": "{user}", "password": "{PASSWORD_WRONG}",
             "imap": {{"server": "127.0.0.1", "port": {}, "ca_file": "{}", "timeout_secs": 10}}}}"#,
        h.imaps_port,
        h.ca_file.display()
    );
    let config = write_config(&dir, &mb, 0o600);
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("PMA_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = psa_mail_agent::state::StatePaths::new(&dir.join("state"), "Helpdesk").status;
    let start = Instant::now();
    let text = loop {
        if let Ok(t) = std::fs::read_to_string(&status) {
            if t.contains("LOGIN") {
                break t;
            }
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!(
                "no status file with the login failure at {}",
                status.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert_clean("status file", &text);
    assert_clean("daemon log", &String::from_utf8_lossy(&out.stderr));
}
