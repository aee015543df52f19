//! Test support shared by the integration tests (`mod support;`): the real harness started by
//! `scripts/harness` (a rootless Dovecot and a Microsoft-like identity endpoint) and IMAP helpers to
//! set up and inspect mailboxes, independent of the code under test.
//!
//! The helpers panic with a message naming what failed: they are test setup, not the product.
#![allow(dead_code)]

pub mod fakeimap;
pub mod faultproxy;

use async_imap::imap_proto::rfc4315::UidSetMember;
use async_imap::imap_proto::{Response, ResponseCode, Status};
use async_imap::types::Flag;
use futures::{AsyncWriteExt, StreamExt};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long any single network step of a helper may take before the test fails.
const STEP: Duration = Duration::from_secs(20);

type Tls = futures_rustls::client::TlsStream<smol::net::TcpStream>;
/// A logged-in IMAP session over implicit TLS, for tests that need more than the helpers.
pub type Session = async_imap::Session<Tls>;

/// The running harness, as described by `$PMA_HARNESS_DIR/env`.
#[derive(Debug, Clone)]
pub struct Harness {
    /// Base directory (certificates, Dovecot config, mail, logs, `delegations`).
    pub dir: PathBuf,
    /// PEM file of the test CA that signed the server certificate.
    pub ca_file: PathBuf,
    /// IMAPS (implicit TLS) port on 127.0.0.1, 127.0.0.2 and 127.0.0.3 of the IMAP server under
    /// test: Dovecot's, or with `PMA_TEST_IMAP=exchange` the Exchange Online stand-in's
    /// (tools/test-exchange, which relays to Dovecot). The helpers below always use Dovecot.
    pub imaps_port: u16,
    /// Dovecot's own IMAPS port (the helpers' way in, whichever server is under test).
    pub dovecot_imaps_port: u16,
    /// The Exchange Online stand-in's IMAPS port (127.0.0.1-3), if the harness runs it.
    pub exchange_port: Option<u16>,
    /// Whether the tests talk to the Exchange stand-in (`PMA_TEST_IMAP=exchange`).
    pub exchange: bool,
    /// Plain IMAP port offering STARTTLS (on 127.0.0.2 it also announces LOGINDISABLED first).
    pub imap_port: u16,
    /// Host of an IMAP endpoint that offers no STARTTLS and allows plaintext LOGIN.
    pub nostarttls_host: String,
    /// Port of that endpoint.
    pub nostarttls_port: u16,
    /// A loopback address the server certificate does not cover (host-name mismatch tests).
    pub wrong_host: String,
    /// Base URL of the identity endpoint, e.g. `http://127.0.0.1:19980`.
    pub idp_url: String,
    /// Base URL of the Graph stand-in (tools/test-graph), e.g. `http://127.0.0.1:19990`.
    pub graph_url: String,
    /// The Graph stand-in over HTTPS (certificate of `ca_file`), e.g. `https://127.0.0.2:19990`.
    pub graph_tls_url: String,
    /// The password every `*@contoso.test` user logs in with.
    pub password: String,
    /// The mail domain of the test users (`contoso.test`).
    pub domain: String,
}

impl Harness {
    /// Starts the harness once per test binary (`scripts/harness start` is idempotent and locked,
    /// so concurrent test binaries are fine) and returns its description.
    pub fn get() -> &'static Harness {
        static HARNESS: OnceLock<Harness> = OnceLock::new();
        HARNESS.get_or_init(start)
    }

    /// A fresh user (and so a fresh, empty mailbox): unique per call, per process and per run.
    pub fn unique_user(&self, prefix: &str) -> String {
        unique_user(prefix)
    }

    /// Disables IMAP for `address` (a mailbox, `@domain` or `*`) on the Exchange stand-in, as
    /// `Set-CASMailbox -ImapEnabled $false` does: its sign-ins then answer
    /// `NO AUTHENTICATE failed.` however fresh the token.
    pub fn disable_imap(&self, address: &str) {
        use std::io::Write;
        let path = self.dir.join("exchange-imap-disabled");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("harness: open {}: {e}", path.display()));
        f.write_all(format!("{}\n", address.to_lowercase()).as_bytes())
            .unwrap_or_else(|e| panic!("harness: write {}: {e}", path.display()));
    }

    /// The host all helpers connect to (covered by the certificate).
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// Logs `user` in with LOGIN over implicit TLS; for tests that need a raw session.
    pub async fn login(&self, user: &str) -> Session {
        let tls = self.tls_stream().await;
        let mut client = async_imap::Client::new(tls);
        // Client::new does not consume the greeting.
        step("greeting", client.read_response())
            .await
            .unwrap_or_else(|e| panic!("harness: reading the greeting: {e}"))
            .unwrap_or_else(|| panic!("harness: connection closed before the greeting"));
        match step("LOGIN", client.login(user, &self.password)).await {
            Ok(session) => session,
            Err((e, _)) => panic!("harness: LOGIN as {user}: {e}"),
        }
    }

    /// Appends `raw` to `folder` of `user` with `flags` (e.g. `["\\Seen"]`); returns its UID.
    pub fn append(&self, user: &str, folder: &str, raw: &[u8], flags: &[&str]) -> u32 {
        smol::block_on(async {
            let mut s = self.login(user).await;
            let uid = append_raw(&mut s, folder, raw, flags).await;
            let _ = step("LOGOUT", s.logout()).await;
            uid
        })
    }

    /// Creates `name` for `user` (fails the test if it cannot, e.g. because it exists).
    pub fn create_folder(&self, user: &str, name: &str) {
        smol::block_on(async {
            let mut s = self.login(user).await;
            step("CREATE", s.create(name))
                .await
                .unwrap_or_else(|e| panic!("harness: CREATE {name} for {user}: {e}"));
            let _ = step("LOGOUT", s.logout()).await;
        })
    }

    /// Every message in `folder` of `user`, by UID: (uid, flags such as `\Seen` `\Deleted`, raw
    /// bytes). Reads without setting \Seen.
    pub fn list_messages(&self, user: &str, folder: &str) -> Vec<(u32, Vec<String>, Vec<u8>)> {
        smol::block_on(async {
            let mut s = self.login(user).await;
            let mailbox = step("SELECT", s.select(folder))
                .await
                .unwrap_or_else(|e| panic!("harness: SELECT {folder} for {user}: {e}"));
            let mut out = Vec::new();
            if mailbox.exists > 0 {
                let fetches: Vec<_> = step("UID FETCH", async {
                    let stream = s.uid_fetch("1:*", "(UID FLAGS BODY.PEEK[])").await?;
                    // The stream borrows the session: drain it before the next command.
                    let all: Vec<_> = stream.collect().await;
                    Ok::<_, async_imap::error::Error>(all)
                })
                .await
                .unwrap_or_else(|e| panic!("harness: UID FETCH in {folder} for {user}: {e}"));
                // The server may interleave unsolicited FETCH responses (flag updates made by
                // another session, e.g. a daemon that was just killed), with or without a UID
                // and without a body: they update the flags of a message listed by its own
                // answer, and never add one.
                let mut by_uid: std::collections::BTreeMap<u32, (Vec<String>, Option<Vec<u8>>)> =
                    std::collections::BTreeMap::new();
                for f in fetches {
                    let f = f.unwrap_or_else(|e| panic!("harness: FETCH response: {e}"));
                    let Some(uid) = f.uid else { continue };
                    let entry = by_uid.entry(uid).or_default();
                    let flags: Vec<String> = f.flags().map(flag_name).collect();
                    if !flags.is_empty() || f.body().is_some() {
                        entry.0 = flags;
                    }
                    if let Some(body) = f.body() {
                        entry.1 = Some(body.to_vec());
                    }
                }
                for (uid, (flags, body)) in by_uid {
                    if let Some(body) = body {
                        out.push((uid, flags, body));
                    }
                }
            }
            let _ = step("LOGOUT", s.logout()).await;
            out.sort_by_key(|m| m.0);
            out
        })
    }

    /// Number of messages in `folder` of `user` (STATUS MESSAGES); panics if it does not exist.
    pub fn count(&self, user: &str, folder: &str) -> u32 {
        smol::block_on(async {
            let mut s = self.login(user).await;
            let mailbox = step("STATUS", s.status(folder, "(MESSAGES)"))
                .await
                .unwrap_or_else(|e| panic!("harness: STATUS {folder} for {user}: {e}"));
            let _ = step("LOGOUT", s.logout()).await;
            mailbox.exists
        })
    }

    /// Whether `folder` exists for `user`.
    pub fn folder_exists(&self, user: &str, folder: &str) -> bool {
        smol::block_on(async {
            let mut s = self.login(user).await;
            let exists = step("STATUS", s.status(folder, "(MESSAGES)")).await.is_ok();
            let _ = step("LOGOUT", s.logout()).await;
            exists
        })
    }

    /// Sends a POST to the identity endpoint (e.g. `/_test/reset`, `/_test/stats`) and returns the
    /// response body; panics unless the answer is 200.
    pub fn idp(&self, path: &str) -> String {
        let (status, body) = self.idp_request("POST", path, "");
        assert_eq!(status, 200, "harness: idp {path} answered {status}: {body}");
        body
    }

    /// One HTTP/1.1 request to the identity endpoint (form body); returns (status, body).
    pub fn idp_request(&self, method: &str, path: &str, form_body: &str) -> (u16, String) {
        let addr = self
            .idp_url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("harness: idp url {} is not http://", self.idp_url));
        http_request(addr, method, path, form_body)
    }

    /// Lets the owner of `principal`'s tokens (a user, or an app's client id for app-only tokens)
    /// open `mailbox` with XOAUTH2, like Exchange's `Add-MailboxPermission -AccessRights
    /// FullAccess`. Every user may always open its own mailbox without a grant.
    ///
    /// Dovecot re-reads the delegations file at most once per second, so this returns only after
    /// the next second began: the grant is then visible to the very next login.
    pub fn grant_full_access(&self, mailbox: &str, principal: &str) {
        use std::io::Write;
        let line = format!(
            "{}/{}::::::nopassword\n",
            mailbox.to_lowercase(),
            principal.to_lowercase()
        );
        let path = self.dir.join("delegations");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("harness: open {}: {e}", path.display()));
        // One write of one short line: appends from parallel tests do not interleave.
        f.write_all(line.as_bytes())
            .unwrap_or_else(|e| panic!("harness: write {}: {e}", path.display()));
        let into_second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_millis();
        std::thread::sleep(Duration::from_millis(u64::from(1000 - into_second) + 50));
    }

    /// Sends a control command to the Graph stand-in (e.g. `/_test/fail_next?status=429&mailbox=M`)
    /// and returns the answer; panics unless it is 200.
    pub fn graph(&self, path: &str) -> String {
        let addr = self
            .graph_url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("harness: graph url {} is not http://", self.graph_url));
        let (status, body) = http_request(addr, "POST", path, "");
        assert_eq!(
            status, 200,
            "harness: graph {path} answered {status}: {body}"
        );
        body
    }

    /// A delegated Graph token of `user` (password grant, app-public) for `scope`, e.g.
    /// `https://graph.microsoft.com/Mail.ReadWrite.Shared offline_access`.
    pub fn graph_user_token(&self, user: &str, scope: &str) -> String {
        let form = format!(
            "grant_type=password&client_id=app-public&username={}&password={}&scope={}",
            form_encode(user),
            form_encode(&self.password),
            form_encode(scope)
        );
        let (status, body) = self.idp_request("POST", "/contoso-tenant/oauth2/v2.0/token", &form);
        assert_eq!(
            status, 200,
            "harness: Graph password grant for {user}: {body}"
        );
        json_field(&body, "access_token")
            .unwrap_or_else(|| panic!("harness: no access_token in {body}"))
    }

    /// An app-only Graph token (client credentials, `https://graph.microsoft.com/.default`) of a
    /// confidential app (`app-confidential`, or `app-confidential-b` for tests that change an
    /// app's roles or access policy).
    pub fn graph_app_token(&self, client_id: &str) -> String {
        let form = format!(
            "grant_type=client_credentials&client_id={client_id}&client_secret=s3cret-app&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
        );
        let (status, body) = self.idp_request("POST", "/contoso-tenant/oauth2/v2.0/token", &form);
        assert_eq!(
            status, 200,
            "harness: Graph client credentials for {client_id}: {body}"
        );
        json_field(&body, "access_token")
            .unwrap_or_else(|| panic!("harness: no access_token in {body}"))
    }

    /// The token endpoint URL of the test tenant (`{idp}/contoso-tenant/oauth2/v2.0/token`).
    pub fn token_url(&self) -> String {
        format!("{}/contoso-tenant/oauth2/v2.0/token", self.idp_url)
    }

    /// Gets tokens for `user` with the password grant (app-public, IMAP scope, offline access):
    /// (access token, refresh token). Panics unless the identity endpoint issues them.
    pub fn password_token(&self, user: &str) -> (String, String) {
        let form = format!(
            "grant_type=password&client_id=app-public&username={}&password={}&scope=https%3A%2F%2Foutlook.office.com%2FIMAP.AccessAsUser.All%20offline_access",
            form_encode(user),
            form_encode(&self.password)
        );
        let (status, body) = self.idp_request("POST", "/contoso-tenant/oauth2/v2.0/token", &form);
        assert_eq!(status, 200, "harness: password grant for {user}: {body}");
        let access = json_field(&body, "access_token")
            .unwrap_or_else(|| panic!("harness: no access_token in {body}"));
        let refresh = json_field(&body, "refresh_token")
            .unwrap_or_else(|| panic!("harness: no refresh_token in {body}"));
        (access, refresh)
    }

    /// `AUTHENTICATE XOAUTH2` as `user` with `token` over implicit TLS; returns the server's
    /// final tagged answer without the tag, e.g. `OK Logged in` or
    /// `NO [AUTHENTICATIONFAILED] Authentication failed.` (Dovecot's JSON challenge on failure is
    /// answered with an empty line, as a client must).
    pub fn xoauth2_status(&self, user: &str, token: &str) -> String {
        use base64::Engine;
        use futures::AsyncBufReadExt;
        smol::block_on(step("XOAUTH2", async {
            let tls = self.tls_stream().await;
            let mut io = futures::io::BufReader::new(tls);
            let mut line = String::new();
            io.read_line(&mut line).await.expect("harness: greeting");
            let sasl = base64::engine::general_purpose::STANDARD
                .encode(format!("user={user}\x01auth=Bearer {token}\x01\x01"));
            io.get_mut()
                .write_all(format!("x1 AUTHENTICATE XOAUTH2 {sasl}\r\n").as_bytes())
                .await
                .expect("harness: write AUTHENTICATE");
            loop {
                line.clear();
                let n = io.read_line(&mut line).await.expect("harness: read");
                assert!(n > 0, "harness: connection closed during AUTHENTICATE");
                if line.starts_with('+') {
                    io.get_mut()
                        .write_all(b"\r\n")
                        .await
                        .expect("harness: write");
                } else if let Some(rest) = line.strip_prefix("x1 ") {
                    return rest.trim_end().to_string();
                }
            }
        }))
    }

    /// A session opened with `AUTHENTICATE XOAUTH2` as `user` (panics when refused).
    pub async fn xoauth2_login(&self, user: &str, token: &str) -> Session {
        struct XOAuth2(String);
        impl async_imap::Authenticator for &XOAuth2 {
            type Response = String;
            fn process(&mut self, challenge: &[u8]) -> String {
                // The first round sends the credentials; an error challenge gets an empty answer.
                if challenge.is_empty() {
                    self.0.clone()
                } else {
                    String::new()
                }
            }
        }
        let auth = XOAuth2(format!("user={user}\x01auth=Bearer {token}\x01\x01"));
        let mut client = async_imap::Client::new(self.tls_stream().await);
        step("greeting", client.read_response())
            .await
            .unwrap_or_else(|e| panic!("harness: reading the greeting: {e}"));
        match step("XOAUTH2", client.authenticate("XOAUTH2", &auth)).await {
            Ok(session) => session,
            Err((e, _)) => panic!("harness: XOAUTH2 as {user}: {e}"),
        }
    }

    async fn tls_stream(&self) -> Tls {
        let tcp = psa_mail_agent::net::connect_tcp(self.host(), self.dovecot_imaps_port, STEP)
            .await
            .unwrap_or_else(|e| panic!("harness: connect to IMAPS: {e}"));
        let config = psa_mail_agent::tls::client_config(Some(&self.ca_file))
            .unwrap_or_else(|e| panic!("harness: TLS config: {e}"));
        psa_mail_agent::tls::handshake(config, self.host(), tcp, STEP)
            .await
            .unwrap_or_else(|e| panic!("harness: TLS handshake: {e}"))
    }
}

/// The string value of `"name":"..."` in a flat JSON object (enough for token answers).
pub fn json_field(json: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\":\"");
    let start = json.find(&key)? + key.len();
    Some(json[start..].split('"').next()?.to_string())
}

/// The number value of `"name":N` in a JSON text (the first one; enough for the stand-ins'
/// `/_test/stats` answers, e.g. `json_number(&h.graph("/_test/stats?mailbox=M"), "max_concurrent")`).
pub fn json_number(json: &str, name: &str) -> Option<u64> {
    let key = format!("\"{name}\":");
    let start = json.find(&key)? + key.len();
    let digits: String = json[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Percent-encodes a form value.
pub fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A fresh `<prefix>-<pid>-<run>-<n>@contoso.test`: unique per call, per process and per run (mail
/// of earlier runs stays in the harness, and PIDs repeat).
pub fn unique_user(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static RUN: OnceLock<String> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        base36(t.as_secs() * 1000 + u64::from(t.subsec_millis()))
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}-{}-{}-{}@contoso.test",
        prefix.to_lowercase(),
        std::process::id(),
        run,
        n
    )
}

fn base36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn start() -> Harness {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("scripts/harness");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("start")
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| panic!("harness: cannot run {}: {e}", script.display()));
    if !out.status.success() {
        panic!(
            "harness: `scripts/harness start` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_env(&String::from_utf8_lossy(&out.stdout))
}

/// Parses the `export KEY='VALUE'` lines of the env file.
fn parse_env(text: &str) -> Harness {
    let vars: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k, v.trim_matches('\'')))
        .collect();
    let get = |k: &str| -> String {
        vars.get(k)
            .unwrap_or_else(|| panic!("harness: {k} missing from the env file:\n{text}"))
            .to_string()
    };
    let port = |k: &str| -> u16 {
        get(k)
            .parse()
            .unwrap_or_else(|_| panic!("harness: {k} is not a port"))
    };
    let exchange_port = vars.get("PMA_EXCHANGE_PORT").and_then(|p| p.parse().ok());
    let exchange = match std::env::var("PMA_TEST_IMAP").as_deref() {
        Ok("exchange") => true,
        Ok("dovecot") | Ok("") | Err(_) => false,
        Ok(other) => panic!("harness: PMA_TEST_IMAP={other:?}: use dovecot or exchange"),
    };
    let imaps_port = if exchange {
        exchange_port.unwrap_or_else(|| {
            panic!("harness: PMA_TEST_IMAP=exchange but the harness runs no Exchange stand-in")
        })
    } else {
        port("PMA_IMAPS_PORT")
    };
    Harness {
        dir: PathBuf::from(get("PMA_HARNESS_DIR")),
        ca_file: PathBuf::from(get("PMA_CA_FILE")),
        imaps_port,
        dovecot_imaps_port: port("PMA_IMAPS_PORT"),
        exchange_port,
        exchange,
        imap_port: port("PMA_IMAP_PORT"),
        nostarttls_host: get("PMA_NOSTARTTLS_HOST"),
        nostarttls_port: port("PMA_NOSTARTTLS_PORT"),
        wrong_host: get("PMA_WRONG_HOST"),
        idp_url: get("PMA_IDP_URL"),
        graph_url: get("PMA_GRAPH_URL"),
        graph_tls_url: get("PMA_GRAPH_TLS_URL"),
        password: get("PMA_PASSWORD"),
        domain: get("PMA_DOMAIN"),
    }
}

async fn step<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    use futures::FutureExt;
    let timer = smol::Timer::after(STEP);
    futures::select_biased! {
        r = fut.fuse() => r,
        _ = FutureExt::fuse(timer) => panic!("harness: {what}: no answer within {STEP:?}"),
    }
}

/// APPEND with the raw bytes as a literal (async-imap's own append hides the APPENDUID).
async fn append_raw(s: &mut Session, folder: &str, raw: &[u8], flags: &[&str]) -> u32 {
    let cmd = format!(
        "APPEND {} ({}) {{{}}}",
        quote(folder),
        flags.join(" "),
        raw.len()
    );
    let what = format!("APPEND to {folder}");
    step(&what, async {
        let tag = s
            .run_command(&cmd)
            .await
            .unwrap_or_else(|e| panic!("harness: {what}: {e}"));
        loop {
            let resp = s
                .read_response()
                .await
                .unwrap_or_else(|e| panic!("harness: {what}: {e}"))
                .unwrap_or_else(|| panic!("harness: {what}: connection closed"));
            match resp.parsed() {
                Response::Continue(_) => break,
                Response::Done { outcome, .. } => {
                    panic!("harness: {what} refused: {:?}", outcome.information)
                }
                _ => {}
            }
        }
        let stream = s.get_mut();
        stream.write_all(raw).await.expect("harness: APPEND write");
        stream
            .write_all(b"\r\n")
            .await
            .expect("harness: APPEND write");
        stream.flush().await.expect("harness: APPEND flush");
        loop {
            let resp = s
                .read_response()
                .await
                .unwrap_or_else(|e| panic!("harness: {what}: {e}"))
                .unwrap_or_else(|| panic!("harness: {what}: connection closed"));
            if let Response::Done {
                tag: t,
                status,
                outcome,
            } = resp.parsed()
            {
                if *t != tag {
                    continue;
                }
                assert!(
                    *status == Status::Ok,
                    "harness: {what} failed: {status:?} {:?}",
                    outcome.information
                );
                match &outcome.code {
                    Some(ResponseCode::AppendUid(_, set)) => match set.first() {
                        Some(UidSetMember::Uid(u)) => return *u,
                        Some(UidSetMember::UidRange(r)) => return *r.start(),
                        None => panic!("harness: {what}: empty APPENDUID"),
                    },
                    other => panic!("harness: {what}: no APPENDUID in the answer ({other:?})"),
                }
            }
        }
    })
    .await
}

fn flag_name(f: Flag<'_>) -> String {
    match f {
        Flag::Seen => "\\Seen".into(),
        Flag::Answered => "\\Answered".into(),
        Flag::Flagged => "\\Flagged".into(),
        Flag::Deleted => "\\Deleted".into(),
        Flag::Draft => "\\Draft".into(),
        Flag::Recent => "\\Recent".into(),
        Flag::MayCreate => "\\*".into(),
        Flag::Custom(c) => c.to_string(),
    }
}

/// An IMAP quoted string (folder names in tests are plain ASCII).
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Minimal blocking HTTP/1.1 client for the loopback identity endpoint.
fn http_request(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr)
        .unwrap_or_else(|e| panic!("harness: connect to the idp at {addr}: {e}"));
    let _ = tcp.set_read_timeout(Some(STEP));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes())
        .unwrap_or_else(|e| panic!("harness: write to the idp: {e}"));
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("harness: read from the idp: {e}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("harness: malformed idp answer: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("harness: no status in idp answer: {head:?}"));
    (status, body.to_string())
}
