//! Exchange Online as it answers, through the harness's stand-in (tools/test-exchange), whatever
//! `PMA_TEST_IMAP` says: the stand-in's own wire behaviour (greeting, capabilities, sign-in
//! answers, "authenticated but not connected", folder names, the server's end of IDLE), and the
//! agent's diagnosis of each refusal: `test` (library and CLI) names the cause and the fix for a
//! delegate without Full Access, an app-only principal without a grant, IMAP disabled and an
//! unknown shared address, and passes for the granted cases.

mod support;

use futures::{AsyncBufReadExt, AsyncWriteExt};
use psa_mail_agent::agent::{Agent, Report};
use psa_mail_agent::config::Mailbox;
use psa_mail_agent::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::Harness;

fn port(h: &Harness) -> u16 {
    h.exchange_port
        .expect("the harness runs the Exchange stand-in (PMA_EXCHANGE_PORT in its env file)")
}

fn state_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pma-exch-{tag}-{}", support::unique_user("s")));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A mailbox on the stand-in: delegated password flow (`username` signs in for `email`), or
/// app-only with `app-confidential` when `username` is empty.
fn mailbox_json(h: &Harness, email: &str, username: &str, shared: bool) -> String {
    let oauth = if username.is_empty() {
        format!(
            r#""application_id": "app-confidential", "directory_id": "contoso-tenant", "flow": "client_credentials",
               "client_secret": "s3cret-app", "authority": "{}""#,
            h.idp_url
        )
    } else {
        format!(
            r#""application_id": "app-public", "directory_id": "contoso-tenant", "shared_mailbox": {shared},
               "authority": "{}""#,
            h.idp_url
        )
    };
    let user = if username.is_empty() {
        String::new()
    } else {
        format!(r#""username": "{username}", "password": "{}","#, h.password)
    };
    format!(
        r#"{{"name": "{email}", "email": "{email}", {user}
             "imap": {{"server": "127.0.0.1", "port": {port}, "ca_file": "{ca}", "timeout_secs": 10}},
             "oauth": {{"enabled": true, {oauth}}}}}"#,
        port = port(h),
        ca = h.ca_file.display(),
    )
}

fn agent(h: &Harness, email: &str, username: &str, shared: bool, tag: &str) -> Agent {
    let json = mailbox_json(h, email, username, shared);
    let mb = Mailbox::from_json(&json, Path::new("/")).unwrap_or_else(|e| panic!("{e}\n{json}"));
    Agent::new(mb, state_dir(tag)).unwrap()
}

fn mail(subject: &str) -> Vec<u8> {
    format!(
        "From: customer@fabrikam.test\r\nTo: helpdesk@contoso.test\r\nSubject: {subject}\r\nMessage-ID: <{}@fabrikam.test>\r\n\r\nbody of {subject}\r\n",
        support::unique_user("m").replace('@', ".")
    )
    .into_bytes()
}

/// The failed step of a report: (name, kind, "detail | fix: fix").
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

fn contains_all(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "missing {p:?} in: {text}");
    }
}

// ---- the stand-in's wire behaviour -------------------------------------------------------

type Wire = futures::io::BufReader<futures_rustls::client::TlsStream<smol::net::TcpStream>>;

async fn open(h: &Harness) -> (Wire, String) {
    let step = Duration::from_secs(20);
    let tcp = psa_mail_agent::net::connect_tcp("127.0.0.1", port(h), step)
        .await
        .unwrap();
    let config = psa_mail_agent::tls::client_config(Some(&h.ca_file)).unwrap();
    let tls = psa_mail_agent::tls::handshake(config, "127.0.0.1", tcp, step)
        .await
        .unwrap();
    let mut io = futures::io::BufReader::new(tls);
    let greeting = line(&mut io).await;
    (io, greeting)
}

async fn line(io: &mut Wire) -> String {
    let mut l = String::new();
    let read = io.read_line(&mut l);
    let timer = smol::Timer::after(Duration::from_secs(90));
    futures::select! {
        r = futures::FutureExt::fuse(read) => { r.unwrap(); }
        _ = futures::FutureExt::fuse(timer) => panic!("no line within 90 s"),
    }
    l.trim_end().to_string()
}

/// Sends `tag command` and returns every line up to and with the tagged one.
async fn command(io: &mut Wire, tag: &str, command: &str) -> Vec<String> {
    io.get_mut()
        .write_all(format!("{tag} {command}\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    loop {
        let l = line(io).await;
        assert!(!l.is_empty(), "connection closed after {out:?}");
        let done = l.starts_with(&format!("{tag} "));
        out.push(l);
        if done {
            return out;
        }
    }
}

fn xoauth2(user: &str, token: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .encode(format!("user={user}\x01auth=Bearer {token}\x01\x01"))
}

#[test]
fn the_stand_in_speaks_as_exchange_online() {
    let h = Harness::get();
    let user = h.unique_user("wire");
    h.append(&user, "INBOX", &mail("wire"), &[]);
    let (token, _) = h.password_token(&user);
    smol::block_on(async {
        let (mut io, greeting) = open(h).await;
        assert!(
            greeting.starts_with("* OK The Microsoft Exchange IMAP4 service is ready. ["),
            "{greeting}"
        );
        let caps = command(&mut io, "a1", "CAPABILITY").await;
        assert_eq!(
            caps[0],
            "* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+"
        );
        assert_eq!(caps[1], "a1 OK CAPABILITY completed.");
        // A token the identity endpoint never issued: the one opaque refusal, no challenge.
        let r = command(
            &mut io,
            "a2",
            &format!("AUTHENTICATE XOAUTH2 {}", xoauth2(&user, "not-a-token")),
        )
        .await;
        assert_eq!(r, vec!["a2 NO AUTHENTICATE failed.".to_string()]);
        let r = command(
            &mut io,
            "a3",
            &format!("AUTHENTICATE XOAUTH2 {}", xoauth2(&user, &token)),
        )
        .await;
        assert_eq!(r, vec!["a3 OK AUTHENTICATE completed.".to_string()]);
        let caps = command(&mut io, "a4", "CAPABILITY").await.join(" ");
        contains_all(
            &caps,
            &[
                "MOVE",
                "CLIENTACCESSRULES",
                "CLIENTNETWORKPRESENCELOCATION",
                "BACKENDAUTHENTICATE",
                "IDLE",
            ],
        );
        assert!(
            !caps.contains("CONDSTORE") && !caps.contains("QRESYNC"),
            "{caps}"
        );
        let list = command(&mut io, "a5", "LIST \"\" \"*\"").await.join("\n");
        contains_all(
            &list,
            &[
                "\"Sent Items\"",
                "\"Deleted Items\"",
                "\"Junk Email\"",
                "INBOX",
            ],
        );
        assert!(!list.contains("\" Trash"), "{list}");
        let sel = command(&mut io, "a6", "SELECT INBOX").await;
        assert!(sel.contains(&"* 1 EXISTS".to_string()), "{sel:?}");
        assert_eq!(sel.last().unwrap(), "a6 OK [READ-WRITE] SELECT completed.");
        // Exchange's folder names reach Dovecot's folders.
        let mv = command(&mut io, "a7", "UID MOVE 1:* \"Deleted Items\"").await;
        assert!(mv.last().unwrap().starts_with("a7 OK"), "{mv:?}");
        let bye = command(&mut io, "a8", "LOGOUT").await;
        assert_eq!(bye.last().unwrap(), "a8 OK LOGOUT completed.");
    });
    assert_eq!(h.count(&user, "Trash"), 1, "moved to Deleted Items = Trash");
}

#[test]
fn a_token_that_may_not_open_the_mailbox_signs_in_but_is_not_connected() {
    let h = Harness::get();
    let delegate = h.unique_user("nc-delegate");
    let shared = h.unique_user("nc-shared");
    let (token, _) = h.password_token(&delegate);
    smol::block_on(async {
        let (mut io, _) = open(h).await;
        let r = command(
            &mut io,
            "b1",
            &format!("AUTHENTICATE XOAUTH2 {}", xoauth2(&shared, &token)),
        )
        .await;
        assert_eq!(r, vec!["b1 OK AUTHENTICATE completed.".to_string()]);
        let r = command(&mut io, "b2", "SELECT INBOX").await;
        assert_eq!(
            r,
            vec!["b2 BAD User is authenticated but not connected.".to_string()]
        );
        assert_eq!(line(&mut io).await, "* BYE Connection closed. 14");
        assert_eq!(line(&mut io).await, "", "closed after the BYE");
    });
    // Disabled IMAP: the same fresh token is refused at sign-in.
    let own = h.unique_user("nc-disabled");
    let (token, _) = h.password_token(&own);
    h.disable_imap(&own);
    smol::block_on(async {
        let (mut io, _) = open(h).await;
        let r = command(
            &mut io,
            "c1",
            &format!("AUTHENTICATE XOAUTH2 {}", xoauth2(&own, &token)),
        )
        .await;
        assert_eq!(r, vec!["c1 NO AUTHENTICATE failed.".to_string()]);
    });
}

#[test]
fn the_server_ends_idle_after_its_limit() {
    let h = Harness::get();
    let user = h.unique_user("idle-end");
    let (token, _) = h.password_token(&user);
    smol::block_on(async {
        let (mut io, _) = open(h).await;
        command(
            &mut io,
            "d1",
            &format!("AUTHENTICATE XOAUTH2 {}", xoauth2(&user, &token)),
        )
        .await;
        command(&mut io, "d2", "SELECT INBOX").await;
        io.get_mut().write_all(b"d3 IDLE\r\n").await.unwrap();
        assert_eq!(
            line(&mut io).await,
            "+ IDLE accepted, awaiting DONE command."
        );
        // Nobody says DONE: the server ends the session (the harness's limit is 30 s).
        let mut l = line(&mut io).await;
        while l.starts_with("* OK") || l.contains("EXISTS") || l.contains("RECENT") {
            l = line(&mut io).await;
        }
        assert_eq!(l, "* BYE Connection closed. 14");
    });
}

// ---- the agent's diagnosis -----------------------------------------------------------------

#[test]
fn delegate_without_full_access_is_named_with_the_admin_center_path_and_powershell() {
    let h = Harness::get();
    let delegate = h.unique_user("ex-bob");
    let shared = h.unique_user("ex-support");
    h.append(&shared, "INBOX", &mail("not for bob"), &[]);
    let mut a = agent(h, &shared, &delegate, true, "nofa");
    let (step, kind, text) = failed(&smol::block_on(a.test_connection()));
    assert_eq!(
        (step.as_str(), kind),
        ("select", ErrorKind::SharedMailboxDenied),
        "{text}"
    );
    contains_all(
        &text,
        &[
            "authenticated but not connected",
            &format!("{delegate} has no Full Access to {shared}"),
            "Exchange admin center > Recipients > Mailboxes",
            "Delegation > Read and manage (Full Access)",
            &format!(
                "Add-MailboxPermission -Identity {shared} -User {delegate} -AccessRights FullAccess"
            ),
        ],
    );
    // Granted, the same setup passes and fetches.
    h.grant_full_access(&shared, &delegate);
    let report = smol::block_on(a.test_connection());
    assert!(report.healthy(), "{report:#?}");
    let batch = smol::block_on(a.fetch(10)).unwrap();
    assert_eq!(batch.tickets[0].subject, "not for bob");
}

#[test]
fn unknown_shared_address_is_named_with_the_check() {
    let h = Harness::get();
    let delegate = h.unique_user("ex-carol");
    // Nobody has (or could have) a grant on an address that is no mailbox's.
    let typo = h.unique_user("ex-helpdsek");
    let mut a = agent(h, &typo, &delegate, true, "typo");
    let (step, kind, text) = failed(&smol::block_on(a.test_connection()));
    assert_eq!(
        (step.as_str(), kind),
        ("select", ErrorKind::SharedMailboxDenied),
        "{text}"
    );
    contains_all(
        &text,
        &[
            &format!("no mailbox has the address {typo}"),
            &format!("Get-Mailbox -Identity {typo}"),
            "correct Email",
        ],
    );
}

#[test]
fn app_only_principal_not_granted_is_named_with_new_service_principal() {
    let h = Harness::get();
    let mailbox = h.unique_user("ex-apponly");
    h.append(&mailbox, "INBOX", &mail("app mail"), &[]);
    let mut a = agent(h, &mailbox, "", false, "app");
    let (step, kind, text) = failed(&smol::block_on(a.test_connection()));
    assert_eq!(
        (step.as_str(), kind),
        ("select", ErrorKind::AppNotGranted),
        "{text}"
    );
    contains_all(
        &text,
        &[
            "service principal is not registered",
            "New-ServicePrincipal -AppId app-confidential -ObjectId <Object ID>",
            "Enterprise applications",
            "not the App registration's Object ID",
            &format!("Add-MailboxPermission -Identity {mailbox} -User <Object ID> -AccessRights FullAccess"),
        ],
    );
    h.grant_full_access(&mailbox, "app-confidential");
    let report = smol::block_on(a.test_connection());
    assert!(report.healthy(), "{report:#?}");
    let batch = smol::block_on(a.fetch(10)).unwrap();
    assert_eq!(batch.tickets[0].subject, "app mail");
}

#[test]
fn imap_disabled_after_a_fresh_token_is_named_with_get_casmailbox() {
    let h = Harness::get();
    let user = h.unique_user("ex-noimap");
    h.disable_imap(&user);
    let mut a = agent(h, &user, &user, false, "noimap");
    let (step, kind, text) = failed(&smol::block_on(a.test_connection()));
    assert_eq!(
        (step.as_str(), kind),
        ("authenticate", ErrorKind::ImapOAuthRejected),
        "{text}"
    );
    contains_all(
        &text,
        &[
            "was refused: AUTHENTICATE failed.",
            "just issued the token",
            &format!("IMAP is disabled for the mailbox {user} or for the whole organization"),
            &format!("Get-CASMailbox -Identity {user} | fl ImapEnabled"),
            &format!("Set-CASMailbox -Identity {user} -ImapEnabled $true"),
            "Get-CASMailboxPlan",
            "IMAP.AccessAsUser.All",
        ],
    );
    // The shared mailbox's case: a delegate with Full Access, IMAP off for the shared mailbox.
    let delegate = h.unique_user("ex-dave");
    let shared = h.unique_user("ex-noimap-shared");
    h.grant_full_access(&shared, &delegate);
    h.disable_imap(&shared);
    let mut a = agent(h, &shared, &delegate, true, "noimap-shared");
    let (step, kind, text) = failed(&smol::block_on(a.test_connection()));
    assert_eq!(
        (step.as_str(), kind),
        ("authenticate", ErrorKind::ImapOAuthRejected),
        "Exchange says nothing about Full Access at sign-in: {text}"
    );
    contains_all(
        &text,
        &[&format!(
            "Get-CASMailbox -Identity {shared} | fl ImapEnabled"
        )],
    );
}

#[test]
fn own_mailbox_signs_in_and_fetches_through_exchange() {
    let h = Harness::get();
    let user = h.unique_user("ex-own");
    h.append(&user, "INBOX", &mail("own mail"), &[]);
    let mut a = agent(h, &user, &user, false, "own");
    let report = smol::block_on(a.test_connection());
    assert!(report.healthy(), "{report:#?}");
    let batch = smol::block_on(a.fetch(10)).unwrap();
    assert_eq!(batch.tickets[0].subject, "own mail");
    smol::block_on(a.ack(&batch)).unwrap();
}

#[test]
fn cli_test_names_cause_and_fix_and_exits_4() {
    let h = Harness::get();
    let delegate = h.unique_user("ex-cli");
    let shared = h.unique_user("ex-cli-shared");
    let dir = state_dir("cli");
    let config = dir.join("config.json");
    let granted = h.unique_user("ex-cli-granted");
    std::fs::write(
        &config,
        format!(
            r#"{{"state_dir": "state", "mailboxes": [{}]}}"#,
            mailbox_json(h, &shared, &delegate, true)
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_psa-mail-agent");
    let out = std::process::Command::new(bin)
        .args(["test", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(4), "{text}");
    contains_all(
        &text,
        &[
            "authenticated but not connected",
            &format!("Add-MailboxPermission -Identity {shared} -User {delegate} -AccessRights FullAccess"),
        ],
    );
    // A granted app-only mailbox passes with exit code 0.
    h.grant_full_access(&granted, "app-confidential");
    std::fs::write(
        &config,
        format!(
            r#"{{"state_dir": "state", "mailboxes": [{}]}}"#,
            mailbox_json(h, &granted, "", false)
        ),
    )
    .unwrap();
    let out = std::process::Command::new(bin)
        .args(["test", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_agent_takes_the_servers_end_of_idle_as_a_wake_and_reconnects() {
    let h = Harness::get();
    let user = h.unique_user("ex-idle");
    let mut a = agent(h, &user, &user, false, "idle");
    smol::block_on(a.connect()).unwrap();
    assert_eq!(a.supports_idle(), Some(true));
    // The stand-in ends IDLE after 30 s with `* BYE Connection closed. 14`, well before ours.
    let started = std::time::Instant::now();
    let wake =
        smol::block_on(a.wait_for_mail(Duration::from_secs(600), futures::future::pending()))
            .expect("the server's end of IDLE is no failure");
    assert_eq!(wake, psa_mail_agent::imap::Wake::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(300),
        "woke by the server's BYE, not our own limit"
    );
    assert_eq!(a.supports_idle(), None, "the closed session was dropped");
    h.append(&user, "INBOX", &mail("after the idle end"), &[]);
    let batch = smol::block_on(a.fetch(10)).unwrap();
    assert_eq!(batch.tickets[0].subject, "after the idle end");
}

#[test]
fn run_parks_a_mailbox_exchange_will_not_open_and_status_gives_the_fix() {
    use std::process::{Command, Stdio};
    let h = Harness::get();
    let delegate = h.unique_user("ex-run-delegate");
    let shared = h.unique_user("ex-run-shared");
    h.append(&shared, "INBOX", &mail("parked until granted"), &[]);
    let dir = state_dir("run");
    let config = dir.join("config.json");
    let write = || {
        std::fs::write(
            &config,
            format!(
                r#"{{"state_dir": "{}", "output": {{"kind": "spool", "dir": "{}"}}, "mailboxes": [{}]}}"#,
                dir.join("state").display(),
                dir.join("spool").display(),
                mailbox_json(h, &shared, &delegate, true)
            ),
        )
        .unwrap()
    };
    write();
    let bin = env!("CARGO_BIN_EXE_psa-mail-agent");
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    let mut child = Daemon(
        Command::new(bin)
            .args(["run", "--config"])
            .arg(&config)
            .env("PMA_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let status = || {
        let out = Command::new(bin)
            .args(["status", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let until = |what: &str, cond: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !cond() {
            if start.elapsed() > Duration::from_secs(120) {
                panic!(
                    "timed out waiting for {what}; status:\n{}\nlog:\n{}",
                    status(),
                    std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    until("the parked status", &|| status().contains("parked"));
    let out = status();
    contains_all(
        &out,
        &[
            "authenticated but not connected",
            &format!("Add-MailboxPermission -Identity {shared} -User {delegate} -AccessRights FullAccess"),
        ],
    );
    // The admin grants Full Access and reloads: the parked mailbox is retried and delivers.
    h.grant_full_access(&shared, &delegate);
    let ok = Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    until("the ticket after the grant", &|| {
        std::fs::read_dir(dir.join("spool")).is_ok_and(|rd| {
            rd.filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().ends_with(".json"))
        })
    });
    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    let code = child.0.wait().unwrap().code();
    assert_eq!(code, Some(0));
}

/// The agent under test; killed if the test fails before it stopped.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn somebody_else_approving_the_device_sign_in_is_named() {
    let h = Harness::get();
    let user = h.unique_user("ex-dev-owner");
    let other = h.unique_user("ex-dev-somebody");
    let json = mailbox_json(h, &user, &user, false).replace(
        r#""shared_mailbox": false,"#,
        r#""shared_mailbox": false, "flow": "device_code","#,
    );
    assert!(json.contains("device_code"), "{json}");
    let mb = Mailbox::from_json(&json, Path::new("/")).unwrap();
    let mut a = Agent::new(mb, state_dir("device")).unwrap();
    // At the browser, another account approves the code.
    let mut approver = None;
    smol::block_on(a.tokens().unwrap().device_login(|p| {
        let path = format!(
            "/_test/approve_device?user={other}&user_code={}",
            p.user_code
        );
        approver = Some(std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            Harness::get().idp(&path);
        }));
    }))
    .unwrap();
    approver.unwrap().join().unwrap();
    let (step, kind, text) = failed(&smol::block_on(a.test_connection()));
    assert_eq!(
        (step.as_str(), kind),
        ("select", ErrorKind::MailboxNotConnected),
        "{text}"
    );
    contains_all(
        &text,
        &[
            &format!("will not open the mailbox {user}"),
            "somebody else may have approved it",
            &format!("Get-Mailbox -Identity {user}"),
            "psa-mail-agent login",
        ],
    );
}
