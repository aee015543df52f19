//! `psa-mail-agent run` on the real harness: several mailboxes in one process, IDLE, spool and
//! webhook delivery exactly once, kill -9 at random moments, SIGHUP reload, SIGTERM, parking
//! with notification, and `status`.
//!
//! Waits use generous deadlines only to fail instead of hanging; measured latencies are printed
//! (run with `--nocapture` to see them), never asserted.

mod support;

use psa_mail_agent::delivery::spool::ticket_stem;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::Harness;

const BIN: &str = env!("CARGO_BIN_EXE_psa-mail-agent");
const DEADLINE: Duration = Duration::from_secs(30);
/// New mail under IDLE: well below our own polling (60 s), above Dovecot's 30 s fallback when
/// the machine runs out of inotify instances (many Dovecot processes of parallel test runs).
const IDLE_DEADLINE: Duration = Duration::from_secs(45);

fn workdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "pma-daemon-{tag}-{}",
        support::unique_user("d").replace('@', "_")
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A Basic mailbox entry for `user` (named after it) with `extra` keys.
fn basic(h: &Harness, user: &str, extra: &str) -> String {
    format!(
        r#"{{"name": "{user}", "email": "{user}", "password": "{pw}",
             "imap": {{"server": "{host}", "port": {port}, "ca_file": "{ca}", "timeout_secs": 10}}{extra}}}"#,
        pw = h.password,
        host = h.host(),
        port = h.imaps_port,
        ca = h.ca_file.display(),
    )
}

/// An OAuth 2.0 mailbox (password flow against the harness's identity endpoint) reading `email`
/// as `username`; with `shared`, `username` is a delegate with Full Access to `email`.
fn oauth(h: &Harness, email: &str, username: &str, shared: bool) -> String {
    format!(
        r#"{{"name": "{email}", "email": "{email}", "username": "{username}", "password": "{pw}",
             "imap": {{"server": "{host}", "port": {port}, "ca_file": "{ca}", "timeout_secs": 10}},
             "oauth": {{"enabled": true, "application_id": "app-public", "directory_id": "contoso-tenant",
                        "authority": "{idp}", "shared_mailbox": {shared}}}}}"#,
        pw = h.password,
        host = h.host(),
        port = h.imaps_port,
        ca = h.ca_file.display(),
        idp = h.idp_url,
    )
}

fn write_config(dir: &Path, output: &str, mailboxes: &[String], top: &str) -> PathBuf {
    let path = dir.join("config.json");
    let text = format!(
        r#"{{"state_dir": "{state}", "output": {output}, "mailboxes": [{list}]{top}}}"#,
        state = dir.join("state").display(),
        list = mailboxes.join(",\n"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn spool_output(dir: &Path) -> String {
    format!(
        r#"{{"kind": "spool", "dir": "{}"}}"#,
        dir.join("spool").display()
    )
}

fn mail(subject: &str, id: &str) -> Vec<u8> {
    format!(
        "From: Customer <customer@fabrikam.test>\r\nTo: helpdesk@contoso.test\r\nSubject: {subject}\r\n\
         Message-ID: <{id}>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nPlease help with {subject}.\r\n"
    )
    .into_bytes()
}

/// The running agent; killed when dropped so a failing test leaves nothing behind.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(config: &Path, tag: &str) -> Daemon {
        let log = config.with_file_name(format!("agent-{tag}.log"));
        let err = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .env("PMA_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the exit after SIGTERM; returns the exit code.
    fn terminate(mut self) -> Option<i32> {
        self.signal("-TERM");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no exit after SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 10 ms until it holds; panics with `what` and the log after `limit`.
fn wait_until(
    limit: Duration,
    what: &str,
    d: Option<&Daemon>,
    mut cond: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        if start.elapsed() > limit {
            panic!(
                "timed out waiting for {what}; agent log:\n{}",
                d.map(Daemon::log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn json_names(spool: &Path) -> BTreeSet<String> {
    std::fs::read_dir(spool)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default()
}

/// A string field of a ticket JSON (the tests' values need no unescaping).
fn field(json: &str, name: &str) -> String {
    let pat = format!("\"{name}\":\"");
    let start = json
        .find(&pat)
        .unwrap_or_else(|| panic!("no {name} in {json}"))
        + pat.len();
    let end = json[start..].find('"').unwrap() + start;
    json[start..end].to_string()
}

fn seen_count(h: &Harness, user: &str) -> usize {
    h.list_messages(user, "INBOX")
        .iter()
        .filter(|m| m.1.iter().any(|f| f == "\\Seen"))
        .count()
}

fn status_of(config: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["status", "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn basic_oauth_and_shared_mailboxes_idle_spool_exactly_once_and_sigterm() {
    let h = Harness::get();
    let dir = workdir("three");
    let users: Vec<String> = (0..3).map(|i| h.unique_user(&format!("run{i}"))).collect();
    let delegate = h.unique_user("run-delegate");
    h.grant_full_access(&users[2], &delegate);
    for (i, u) in users.iter().enumerate() {
        h.append(
            u,
            "INBOX",
            &mail("before start", &format!("pre-{i}-{u}")),
            &[],
        );
        h.append(
            u,
            "INBOX",
            &mail("already read", &format!("read-{i}-{u}")),
            &["\\Seen"],
        );
    }
    // One Basic LOGIN, one OAuth (own mailbox), one shared mailbox opened with a delegate's token.
    let boxes = vec![
        basic(h, &users[0], ""),
        oauth(h, &users[1], &users[1], false),
        oauth(h, &users[2], &delegate, true),
    ];
    let config = write_config(&dir, &spool_output(&dir), &boxes, "");
    let spool = dir.join("spool");
    let d = Daemon::start(&config, "three");

    wait_until(DEADLINE, "the three unread mails", Some(&d), || {
        json_names(&spool).len() == 3
    });
    for (i, u) in users.iter().enumerate() {
        let name = format!("{}.json", ticket_stem(u, &format!("pre-{i}-{u}")));
        assert!(json_names(&spool).contains(&name), "{name} missing");
        wait_until(DEADLINE, "\\Seen after delivery", Some(&d), || {
            seen_count(h, u) == 2
        });
    }
    // Wait until every mailbox idles, then append one mail to each and time it to its ticket.
    wait_until(DEADLINE, "idle mailboxes", Some(&d), || {
        let (_, out) = status_of(&config);
        out.matches(": idle for").count() == 3
    });
    let mut latencies = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let id = format!("new-{i}-{u}");
        let name = format!("{}.json", ticket_stem(u, &id));
        let t0 = Instant::now();
        h.append(u, "INBOX", &mail("arrived while idle", &id), &[]);
        let appended = t0.elapsed();
        let took = wait_until(IDLE_DEADLINE, "the new mail's ticket", Some(&d), || {
            spool.join(&name).exists()
        });
        latencies.push((appended + took, took));
    }
    eprintln!(
        "IDLE new-mail-to-ticket latency (append start / append done -> ticket file): {:?}",
        latencies
    );
    wait_until(DEADLINE, "all six tickets", Some(&d), || {
        json_names(&spool).len() == 6
    });
    // Exactly once: six files, each ticket's name derived from its own mailbox and key, and
    // the already-read mails were left alone (first contact takes only unread mail).
    for n in json_names(&spool) {
        let json = std::fs::read_to_string(spool.join(&n)).unwrap();
        let key = field(&json, "dedupe_key");
        let mailbox = field(&json, "mailbox");
        assert_eq!(n, format!("{}.json", ticket_stem(&mailbox, &key)));
        assert!(
            !key.starts_with("read-"),
            "an already-read mail became a ticket: {key}"
        );
    }
    for u in &users {
        wait_until(DEADLINE, "all \\Seen", Some(&d), || seen_count(h, u) == 3);
    }
    wait_until(DEADLINE, "healthy status", Some(&d), || {
        status_of(&config).0 == 0
    });
    let (_, out) = status_of(&config);
    assert!(out.contains("2 ticket(s) delivered"), "{out}");
    assert!(!out.contains(&h.password), "status shows no secret");
    // The OAuth mailboxes really signed in with tokens (cached under state_dir).
    let state = std::fs::read_dir(dir.join("state")).unwrap();
    let caches = state
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".token.json"))
        .count();
    assert_eq!(caches, 2, "two OAuth mailboxes, two token caches");
    for u in &users {
        let path = dir.join("state").join(format!(
            "{}.status.json",
            psa_mail_agent::state::file_stem(u)
        ));
        let status = std::fs::read_to_string(&path).unwrap();
        assert!(status.contains("\"idle_supported\":true"), "{status}");
        assert!(status.contains("\"tickets_delivered\":2"), "{status}");
    }
    let log = d.log();
    assert!(!log.contains(&h.password), "the log shows no password");

    let code = d.terminate();
    assert_eq!(code, Some(0), "SIGTERM exits 0");
    let (code, out) = status_of(&config);
    assert_eq!(code, 1, "a stopped agent is not healthy: {out}");
    assert_eq!(out.matches(": stopped").count(), 3, "{out}");
}

/// A local webhook that answers 503 to the first `fail_first` requests, and checks on every
/// request that the posted message is not yet marked read on the server.
struct Hook {
    url: String,
    log: Arc<Mutex<Vec<Posted>>>,
}

/// One request the webhook received.
#[derive(Clone)]
struct Posted {
    /// The status it answered.
    status: u16,
    /// The ticket's dedupe key.
    key: String,
    /// The Authorization header.
    auth: String,
    /// Whether the message was already \Seen on the server when it was posted.
    seen: bool,
}

fn read_request(s: &mut std::net::TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "webhook: request cut short");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "webhook: body cut short");
        buf.extend_from_slice(&chunk[..n]);
    }
    (head, buf[head_end..head_end + len].to_vec())
}

fn start_hook(h: &'static Harness, user: String, fail_first: usize) -> Hook {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/tickets", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut s) = conn else { continue };
            let (head, body) = read_request(&mut s);
            let body = String::from_utf8_lossy(&body).into_owned();
            let key = field(&body, "dedupe_key");
            let auth = head
                .lines()
                .find_map(|l| l.strip_prefix("Authorization: "))
                .unwrap_or("")
                .to_string();
            let seen = h
                .list_messages(&user, "INBOX")
                .iter()
                .filter(|m| String::from_utf8_lossy(&m.2).contains(&key))
                .any(|m| m.1.iter().any(|f| f == "\\Seen"));
            let status = if n < fail_first { 503 } else { 200 };
            log2.lock().unwrap().push(Posted {
                status,
                key,
                auth,
                seen,
            });
            let reason = if status == 200 {
                "OK"
            } else {
                "Service Unavailable"
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    Hook { url, log }
}

#[test]
fn webhook_delivers_each_message_once_and_acks_only_after_2xx() {
    let h = Harness::get();
    let dir = workdir("hook");
    let user = h.unique_user("hook");
    let ids: Vec<String> = (0..3).map(|i| format!("hook-{i}-{user}")).collect();
    for id in &ids {
        h.append(&user, "INBOX", &mail("webhook", id), &[]);
    }
    let hook = start_hook(h, user.clone(), 3);
    let output = format!(
        r#"{{"kind": "webhook", "url": "{}", "token": "hook-token-123"}}"#,
        hook.url
    );
    let config = write_config(&dir, &output, &[basic(h, &user, "")], "");
    let d = Daemon::start(&config, "hook");
    wait_until(DEADLINE, "three 2xx deliveries", Some(&d), || {
        hook.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.status == 200)
            .count()
            == 3
    });
    wait_until(DEADLINE, "all \\Seen", Some(&d), || {
        seen_count(h, &user) == 3
    });
    let code = d.terminate();
    assert_eq!(code, Some(0));
    let log = hook.log.lock().unwrap().clone();
    eprintln!("webhook requests: {}", log.len());
    assert_eq!(log.iter().filter(|r| r.status == 503).count(), 3);
    let mut delivered: BTreeMap<String, usize> = BTreeMap::new();
    for r in &log {
        assert_eq!(r.auth, "Bearer hook-token-123");
        assert!(
            !r.seen,
            "{} was marked read before the webhook answered 2xx",
            r.key
        );
        if r.status == 200 {
            *delivered.entry(r.key.clone()).or_default() += 1;
        }
    }
    let expected: BTreeMap<String, usize> = ids.iter().map(|i| (i.clone(), 1)).collect();
    assert_eq!(delivered, expected, "each message delivered exactly once");
}

/// Appends `n` messages in one IMAP session.
fn append_many(h: &Harness, user: &str, n: usize, prefix: &str) -> Vec<String> {
    smol::block_on(async {
        let mut s = h.login(user).await;
        let mut ids = Vec::new();
        for i in 0..n {
            let id = format!("{prefix}-{i}-{user}");
            s.append("INBOX", None, None, mail(&format!("bulk {i}"), &id))
                .await
                .unwrap();
            ids.push(id);
        }
        let _ = s.logout().await;
        ids
    })
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let h = Harness::get();
    let dir = workdir("kill");
    let user = h.unique_user("kill");
    let ids = append_many(h, &user, 500, "k");
    let config = write_config(&dir, &spool_output(&dir), &[basic(h, &user, "")], "");
    let spool = dir.join("spool");
    let started = Instant::now();
    // xorshift, seeded by the clock: kill moments differ from run to run (printed for replay).
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill -9 seed {seed}");
    let mut kills = 0;
    let mut progress = Vec::new();
    while json_names(&spool).len() < 500 && kills < 25 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let after = Duration::from_millis(20 + seed % 400);
        let mut d = Daemon::start(&config, &format!("kill{kills}"));
        std::thread::sleep(after);
        d.child.kill().unwrap(); // SIGKILL
        d.child.wait().unwrap();
        kills += 1;
        progress.push(json_names(&spool).len());
    }
    let d = Daemon::start(&config, "final");
    wait_until(Duration::from_secs(60), "500 tickets", Some(&d), || {
        json_names(&spool).len() >= 500
    });
    wait_until(Duration::from_secs(60), "500 \\Seen", Some(&d), || {
        seen_count(h, &user) == 500
    });
    assert_eq!(d.terminate(), Some(0));
    let names = json_names(&spool);
    let expected: BTreeSet<String> = ids
        .iter()
        .map(|id| format!("{}.json", ticket_stem(&user, id)))
        .collect();
    assert_eq!(names, expected, "every message exactly once in the spool");
    for n in &names {
        let json = std::fs::read_to_string(spool.join(n)).unwrap();
        assert!(json.ends_with("}\n"), "{n} is complete");
    }
    let leftovers = std::fs::read_dir(&spool).unwrap().count() - names.len();
    eprintln!(
        "kill -9: {kills} kills (tickets in the spool after each: {progress:?}), 500 messages, {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        leftovers, 0,
        "temp files of killed writers are swept at start"
    );
}

#[test]
fn sighup_adds_a_mailbox_without_stopping_the_others() {
    let h = Harness::get();
    let dir = workdir("hup");
    let a = h.unique_user("hupa");
    let b = h.unique_user("hupb");
    h.append(&a, "INBOX", &mail("a1", &format!("a1-{a}")), &[]);
    h.append(&b, "INBOX", &mail("b1", &format!("b1-{b}")), &[]);
    let config = write_config(&dir, &spool_output(&dir), &[basic(h, &a, "")], "");
    let spool = dir.join("spool");
    let d = Daemon::start(&config, "hup");
    wait_until(DEADLINE, "mailbox a's ticket", Some(&d), || {
        json_names(&spool).len() == 1
    });
    // A second agent on the same state directory is refused (it would fight over the locks).
    let second = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(3));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already uses the state directory"), "{err}");
    let pid_before = d.child.id();
    write_config(
        &dir,
        &spool_output(&dir),
        &[basic(h, &a, ""), basic(h, &b, "")],
        "",
    );
    d.signal("-HUP");
    wait_until(DEADLINE, "mailbox b's ticket", Some(&d), || {
        json_names(&spool).len() == 2
    });
    assert!(json_names(&spool).contains(&format!("{}.json", ticket_stem(&b, &format!("b1-{b}")))));
    // a kept running: its new mail still arrives, and a was not restarted.
    h.append(&a, "INBOX", &mail("a2", &format!("a2-{a}")), &[]);
    wait_until(DEADLINE, "a's second ticket", Some(&d), || {
        json_names(&spool).len() == 3
    });
    assert_eq!(d.child.id(), pid_before);
    let log = d.log();
    assert_eq!(
        log.matches(&format!("mailbox {a}: started")).count(),
        1,
        "{log}"
    );
    // Removing a mailbox stops only that one.
    write_config(&dir, &spool_output(&dir), &[basic(h, &b, "")], "");
    d.signal("-HUP");
    wait_until(DEADLINE, "a stopped", Some(&d), || {
        status_of(&config).1.contains(&format!("{a}: inactive"))
            || d.log().contains(&format!("mailbox {a}: stopped"))
    });
    h.append(&b, "INBOX", &mail("b2", &format!("b2-{b}")), &[]);
    wait_until(DEADLINE, "b's second ticket", Some(&d), || {
        json_names(&spool).len() == 4
    });
    assert_eq!(
        d.log().matches(&format!("mailbox {b}: started")).count(),
        1,
        "b kept running"
    );
    assert_eq!(d.terminate(), Some(0));
}

#[test]
fn wrong_password_parks_the_mailbox_and_notifies() {
    let h = Harness::get();
    let dir = workdir("park");
    let user = h.unique_user("park");
    let notes = dir.join("notes.txt");
    let script = dir.join("notify.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s|%s|%s\\n' \"$1\" \"$2\" \"$3\" >> '{}'\n",
            notes.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let good = basic(h, &user, "");
    let bad = good.replace(&h.password, "Wrong-Password-1");
    let top = format!(r#", "notify_command": "{}""#, script.display());
    let config = write_config(&dir, &spool_output(&dir), &[bad], &top);
    let d = Daemon::start(&config, "park");
    wait_until(DEADLINE, "the failure notification", Some(&d), || {
        std::fs::read_to_string(&notes).is_ok_and(|t| t.contains("|failed|"))
    });
    let (code, out) = status_of(&config);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("parked"), "{out}");
    assert!(out.contains("fix:"), "{out}");
    assert!(out.contains("next attempt in"), "{out}");
    assert!(!out.contains("Wrong-Password-1") && !d.log().contains("Wrong-Password-1"));
    let note = std::fs::read_to_string(&notes).unwrap();
    assert!(note.starts_with(&format!("{user}|failed|")), "{note}");
    // The admin fixes the password and reloads: the parked mailbox is retried at once.
    write_config(&dir, &spool_output(&dir), &[good], &top);
    h.append(
        &user,
        "INBOX",
        &mail("after fix", &format!("fix-{user}")),
        &[],
    );
    d.signal("-HUP");
    wait_until(DEADLINE, "the recovery notification", Some(&d), || {
        std::fs::read_to_string(&notes).is_ok_and(|t| t.contains("|recovered|"))
    });
    wait_until(DEADLINE, "the ticket after the fix", Some(&d), || {
        json_names(&dir.join("spool")).len() == 1
    });
    assert_eq!(d.terminate(), Some(0));
}

#[test]
fn delivery_failure_acks_nothing_and_recovers() {
    let h = Harness::get();
    let dir = workdir("full");
    let user = h.unique_user("full");
    let config = write_config(&dir, &spool_output(&dir), &[basic(h, &user, "")], "");
    let spool = dir.join("spool");
    let d = Daemon::start(&config, "full");
    wait_until(DEADLINE, "idle", Some(&d), || {
        status_of(&config).1.contains(": idle for")
    });
    // The spool disappears (unmounted, replaced): a file stands where the directory was.
    std::fs::rename(&spool, dir.join("spool.away")).unwrap();
    std::fs::write(&spool, b"not a directory").unwrap();
    h.append(
        &user,
        "INBOX",
        &mail("during outage", &format!("out-{user}")),
        &[],
    );
    wait_until(DEADLINE, "a failing status", Some(&d), || {
        status_of(&config).1.contains(": failing")
    });
    let (code, out) = status_of(&config);
    assert_eq!(code, 1);
    assert!(out.contains("error (Delivery)"), "{out}");
    assert_eq!(
        seen_count(h, &user),
        0,
        "nothing acknowledged while delivery fails"
    );
    std::fs::remove_file(&spool).unwrap();
    std::fs::rename(dir.join("spool.away"), &spool).unwrap();
    wait_until(
        Duration::from_secs(60),
        "delivery after the outage",
        Some(&d),
        || json_names(&spool).len() == 1,
    );
    wait_until(DEADLINE, "\\Seen after delivery", Some(&d), || {
        seen_count(h, &user) == 1
    });
    assert_eq!(d.terminate(), Some(0));
}

#[test]
fn revoked_grant_is_never_silent() {
    let h = Harness::get();
    let dir = workdir("revoked");
    let user = h.unique_user("revoked");
    let notes = dir.join("notes.txt");
    let script = dir.join("notify.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s|%s|%s\\n' \"$1\" \"$2\" \"$3\" >> '{}'\n",
            notes.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // Microsoft answers AADSTS50173 (grant revoked: the password was changed) to this user.
    h.idp(&format!("/_test/fail_next?code=50173&count=1&user={user}"));
    let top = format!(r#", "notify_command": "{}""#, script.display());
    let config = write_config(
        &dir,
        &spool_output(&dir),
        &[oauth(h, &user, &user, false)],
        &top,
    );
    let d = Daemon::start(&config, "revoked");
    wait_until(DEADLINE, "the failure notification", Some(&d), || {
        std::fs::read_to_string(&notes).is_ok_and(|t| t.contains("|failed|"))
    });
    let note = std::fs::read_to_string(&notes).unwrap();
    assert!(note.contains("AADSTS50173"), "{note}");
    let (code, out) = status_of(&config);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("parked") && out.contains("error (GrantRevoked)"),
        "{out}"
    );
    assert!(out.contains("fix:"), "{out}");
    let stats = h.idp(&format!("/_test/stats?user={user}"));
    assert!(
        stats.contains("\"token_requests\":1,"),
        "one attempt, then parked: no retry storm against the identity platform: {stats}"
    );
    // The admin signs in again (here: the endpoint accepts the password again) and reloads.
    d.signal("-HUP");
    wait_until(DEADLINE, "the recovery notification", Some(&d), || {
        std::fs::read_to_string(&notes).is_ok_and(|t| t.contains("|recovered|"))
    });
    assert_eq!(status_of(&config).0, 0);
    assert_eq!(d.terminate(), Some(0));
}

#[test]
fn without_idle_the_mailbox_is_polled() {
    use support::fakeimap::{FakeImap, Stored};
    let server = FakeImap::start(vec![mail("first", "poll-1@fabrikam.test")]);
    let dir = workdir("poll");
    let mailbox = format!(
        r#"{{"name": "Poll", "email": "poll@contoso.test", "password": "pw", "poll_interval_secs": 1,
             "imap": {{"server": "127.0.0.1", "port": {}, "encryption": "none",
                      "allow_plaintext": true, "timeout_secs": 5}}}}"#,
        server.port
    );
    let config = write_config(&dir, &spool_output(&dir), &[mailbox], "");
    let spool = dir.join("spool");
    let d = Daemon::start(&config, "poll");
    wait_until(DEADLINE, "the first ticket", Some(&d), || {
        json_names(&spool).len() == 1
    });
    let status_path = dir.join("state/Poll.status.json");
    wait_until(DEADLINE, "the mailbox waiting", Some(&d), || {
        std::fs::read_to_string(&status_path).is_ok_and(|s| s.contains("\"state\":\"idle\""))
    });
    // New mail on a server without IDLE: found by the next poll (NOOP, then UID SEARCH).
    server.state.lock().unwrap().messages.push(Stored {
        uid: 2,
        raw: mail("second", "poll-2@fabrikam.test"),
        seen: false,
        moved_to: None,
    });
    let took = wait_until(DEADLINE, "the polled ticket", Some(&d), || {
        json_names(&spool).len() == 2
    });
    eprintln!("polling (poll_interval_secs 1): new mail -> ticket in {took:?}");
    assert!(spool
        .join(format!(
            "{}.json",
            ticket_stem("Poll", "poll-2@fabrikam.test")
        ))
        .exists());
    // The ticket file comes first, the acknowledgement right after it.
    wait_until(DEADLINE, "both acknowledged", Some(&d), || {
        server.seen() == vec![1, 2]
    });
    let status = std::fs::read_to_string(&status_path).unwrap();
    assert!(status.contains("\"idle_supported\":false"), "{status}");
    assert!(
        d.log().contains("offers no IDLE; polling every 1 s"),
        "{}",
        d.log()
    );
    assert_eq!(d.terminate(), Some(0));
}

#[test]
fn spool_attachments_are_complete_beside_the_ticket() {
    let h = Harness::get();
    let dir = workdir("att");
    let user = h.unique_user("att");
    let id = format!("att-{user}");
    let raw = format!(
        "From: Customer <customer@fabrikam.test>\r\nTo: helpdesk@contoso.test\r\nSubject: printer\r\n\
         Message-ID: <{id}>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe printer is broken.\r\n\
         --b1\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"../report.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcOkw7zDtsOfCg==\r\n--b1--\r\n"
    );
    h.append(&user, "INBOX", raw.as_bytes(), &[]);
    let config = write_config(&dir, &spool_output(&dir), &[basic(h, &user, "")], "");
    let spool = dir.join("spool");
    let d = Daemon::start(&config, "att");
    wait_until(DEADLINE, "the ticket", Some(&d), || {
        json_names(&spool).len() == 1
    });
    let stem = ticket_stem(&user, &id);
    // Written before the ticket was renamed in: complete as soon as the ticket is visible.
    let att = std::fs::read(spool.join(format!("{stem}.att/0-report.pdf"))).unwrap();
    assert_eq!(att, b"%PDF-1.4\n%\xc3\xa4\xc3\xbc\xc3\xb6\xc3\x9f\n");
    let json = std::fs::read_to_string(spool.join(format!("{stem}.json"))).unwrap();
    // The name as sent, and the safe one the spool used.
    assert!(
        json.contains("\"filename\":\"../report.pdf\",\"save_as\":\"report.pdf\""),
        "{json}"
    );
    assert_eq!(d.terminate(), Some(0));
}

/// A local HTTP endpoint answering every request with `status`; returns its URL and the bodies.
fn start_recorder(status: u16) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let b2 = bodies.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let (_, body) = read_request(&mut s);
            b2.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, bodies)
}

#[test]
fn notify_webhook_receives_failed_event_as_json() {
    let h = Harness::get();
    let dir = workdir("notifyhook");
    let user = h.unique_user("notifyhook");
    let (url, events) = start_recorder(204);
    let bad = basic(h, &user, "").replace(&h.password, "Wrong-Password-2");
    let top = format!(r#", "notify_webhook": "{url}""#);
    let config = write_config(&dir, &spool_output(&dir), &[bad], &top);
    let d = Daemon::start(&config, "notifyhook");
    wait_until(DEADLINE, "the failed event", Some(&d), || {
        !events.lock().unwrap().is_empty()
    });
    let event = events.lock().unwrap()[0].clone();
    assert!(
        event.contains(&format!("\"mailbox\":\"{user}\"")),
        "{event}"
    );
    assert!(event.contains("\"event\":\"failed\""), "{event}");
    assert!(event.contains("\"kind\":\"LoginFailed\""), "{event}");
    assert!(event.contains("\"fix\":\""), "{event}");
    assert!(!event.contains("Wrong-Password-2"), "{event}");
    assert_eq!(d.terminate(), Some(0));
}

#[test]
fn sigterm_during_failing_webhook_deliveries_exits_promptly() {
    let h = Harness::get();
    let dir = workdir("termhook");
    let user = h.unique_user("termhook");
    h.append(
        &user,
        "INBOX",
        &mail("never accepted", &format!("t-{user}")),
        &[],
    );
    let (url, posts) = start_recorder(503);
    let output = format!(r#"{{"kind": "webhook", "url": "{url}"}}"#);
    let config = write_config(&dir, &output, &[basic(h, &user, "")], "");
    let d = Daemon::start(&config, "termhook");
    wait_until(DEADLINE, "a first attempt", Some(&d), || {
        !posts.lock().unwrap().is_empty()
    });
    let t = Instant::now();
    assert_eq!(d.terminate(), Some(0));
    eprintln!(
        "SIGTERM while the webhook keeps failing: exit 0 after {:?}",
        t.elapsed()
    );
    assert_eq!(
        seen_count(h, &user),
        0,
        "nothing acknowledged without a 2xx"
    );
}

#[test]
fn network_faults_lose_and_duplicate_nothing() {
    use support::faultproxy::{FaultProxy, Plan};
    let h = Harness::get();
    let dir = workdir("chaos");
    let user = h.unique_user("chaos");
    let ids = append_many(h, &user, 60, "c");
    let target: std::net::SocketAddr = format!("127.0.0.1:{}", h.imaps_port).parse().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("fault proxy seed {seed}");
    let plan = Plan {
        fault_percent: 50,
        ..Plan::default()
    };
    let proxy = FaultProxy::start(target, seed, plan);
    let mailbox = format!(
        r#"{{"name": "{user}", "email": "{user}", "password": "{pw}", "batch_size": 5,
             "imap": {{"server": "127.0.0.1", "port": {port}, "ca_file": "{ca}", "timeout_secs": 2}}}}"#,
        pw = h.password,
        port = proxy.port(),
        ca = h.ca_file.display(),
    );
    let config = write_config(&dir, &spool_output(&dir), &[mailbox], "");
    let spool = dir.join("spool");
    let d = Daemon::start(&config, "chaos");
    // Every connection draws a fault (or none); cutting them all now and then makes many.
    let proxy = Arc::new(proxy);
    let cutting = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let cutter = {
        let (proxy, cutting) = (proxy.clone(), cutting.clone());
        std::thread::spawn(move || {
            while cutting.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(150));
                proxy.cut_all();
            }
        })
    };
    let took = wait_until(
        Duration::from_secs(180),
        "60 tickets through the faults",
        Some(&d),
        || json_names(&spool).len() >= 60,
    );
    cutting.store(false, std::sync::atomic::Ordering::SeqCst);
    cutter.join().unwrap();
    // Then the line heals; the IDLE connection is cut once more and new mail still arrives.
    proxy.set_enabled(false);
    proxy.cut_all();
    let late = append_many(h, &user, 5, "late");
    // After minutes of faults the worker may be in its longest backoff (5 min with jitter), which
    // a loaded machine reaches sooner: wait past it rather than for a fixed two minutes.
    wait_until(Duration::from_secs(400), "65 tickets", Some(&d), || {
        json_names(&spool).len() >= 65
    });
    wait_until(Duration::from_secs(60), "65 \\Seen", Some(&d), || {
        seen_count(h, &user) == 65
    });
    let expected: BTreeSet<String> = ids
        .iter()
        .chain(late.iter())
        .map(|id| format!("{}.json", ticket_stem(&user, id)))
        .collect();
    assert_eq!(json_names(&spool), expected, "every message exactly once");
    // The worker counts a batch in its status after the server confirmed the acknowledgement,
    // which may be a moment after the flags are visible to another session (through the
    // Exchange stand-in's relay, a round trip later).
    let status_path = dir.join("state").join(format!(
        "{}.status.json",
        psa_mail_agent::state::file_stem(&user)
    ));
    wait_until(
        Duration::from_secs(30),
        "the status counting 65",
        Some(&d),
        || {
            std::fs::read_to_string(&status_path)
                .is_ok_and(|s| s.contains("\"tickets_delivered\":65,"))
        },
    );
    let status = std::fs::read_to_string(&status_path).unwrap();
    eprintln!(
        "network faults: 60 tickets after {took:?}, proxy {:?}; status {status}",
        proxy.stats()
    );
    assert!(status.contains("\"tickets_delivered\":65,"), "{status}");
    assert_eq!(d.terminate(), Some(0));
}
