//! `transport: "graph"` end to end on the Graph stand-in (tools/test-graph) over the harness's
//! Dovecot: the same mail through IMAP and Graph gives the same tickets; app-only and
//! delegated-shared sign-in; acknowledgements land on the server; an expired delta link and
//! 429 storms lose and duplicate nothing; refusals are diagnosed with cause and fix.

mod support;

use psa_mail_agent::agent::Agent;
use psa_mail_agent::config::Mailbox;
use psa_mail_agent::ErrorKind;
use std::path::{Path, PathBuf};
use support::Harness;

fn state_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pma-graph-{tag}-{}", support::unique_user("s")));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A Graph mailbox: app-only (`app-confidential`) unless `delegate` is given.
fn graph_mailbox(h: &Harness, email: &str, delegate: Option<&str>, extra: &str) -> Mailbox {
    let oauth = match delegate {
        None => r#""flow": "client_credentials", "application_id": "app-confidential", "client_secret": "s3cret-app""#.to_string(),
        Some(_) => {
            r#""flow": "password", "application_id": "app-public", "shared_mailbox": true"#
                .to_string()
        }
    };
    let json = format!(
        r#"{{"name": "{email}", "email": "{email}", "username": "{user}", "password": "{pw}",
             "transport": "graph", "graph": {{"endpoint": "{graph}"}},
             "imap": {{"ca_file": "{ca}", "timeout_secs": 10}},
             "oauth": {{"enabled": true, "directory_id": "contoso-tenant", "authority": "{idp}", {oauth}}}
             {extra}}}"#,
        user = delegate.unwrap_or(email),
        pw = h.password,
        graph = h.graph_url,
        ca = h.ca_file.display(),
        idp = h.idp_url,
    );
    Mailbox::from_json(&json, Path::new("/")).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

fn imap_mailbox(h: &Harness, email: &str) -> Mailbox {
    let json = format!(
        r#"{{"name": "{email}", "email": "{email}", "password": "{pw}",
             "imap": {{"server": "127.0.0.1", "port": {port}, "ca_file": "{ca}", "timeout_secs": 10}}}}"#,
        pw = h.password,
        port = h.imaps_port,
        ca = h.ca_file.display(),
    );
    Mailbox::from_json(&json, Path::new("/")).unwrap()
}

fn mail(subject: &str, extra: &str) -> Vec<u8> {
    format!(
        "From: Customer <customer@fabrikam.test>\r\nTo: helpdesk@contoso.test\r\nCc: boss@fabrikam.test\r\nSubject: {subject}\r\nMessage-ID: <{}@fabrikam.test>\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n{extra}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello, the printer is broken: {subject}\r\n\r\n-- \r\nCustomer\r\n--b1\r\nContent-Type: application/octet-stream; name=\"log.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQF\r\n--b1--\r\n",
        support::unique_user("m").replace('@', ".")
    )
    .into_bytes()
}

/// Ticket JSON without its delivery_id.
fn comparable(t: &psa_mail_agent::ticket::Ticket) -> String {
    let mut t = t.clone();
    t.delivery_id = None;
    t.to_json()
}

fn subjects(b: &psa_mail_agent::agent::Batch) -> Vec<String> {
    let mut s: Vec<String> = b.tickets.iter().map(|t| t.subject.clone()).collect();
    s.sort();
    s
}

#[test]
fn same_tickets_as_imap_then_every_new_message_once_app_only() {
    let h = Harness::get();
    let user = h.unique_user("graphsame");
    h.append(&user, "INBOX", &mail("old read", ""), &["\\Seen"]);
    for i in 0..3 {
        h.append(&user, "INBOX", &mail(&format!("unread {i}"), ""), &[]);
    }
    smol::block_on(async {
        // IMAP, read-only: the reference tickets.
        let mut imap = Agent::new(imap_mailbox(h, &user), state_dir("ref")).unwrap();
        imap.set_read_only(true);
        let want = imap.fetch(100).await.unwrap();
        assert_eq!(want.len(), 3);
        let mut graph = Agent::new(graph_mailbox(h, &user, None, ""), state_dir("app")).unwrap();
        let got = graph.fetch(100).await.unwrap();
        assert_eq!(
            subjects(&got),
            subjects(&want),
            "first contact: unread only"
        );
        let mut a: Vec<String> = want.tickets.iter().map(comparable).collect();
        let mut b: Vec<String> = got.tickets.iter().map(comparable).collect();
        a.sort();
        b.sort();
        assert_eq!(
            a, b,
            "same tickets through IMAP and Graph except delivery_id"
        );
        assert!(got.tickets[0]
            .delivery_id
            .as_deref()
            .unwrap()
            .starts_with("inbox:graph:"));
        graph.ack(&got).await.unwrap();
        let seen = h
            .list_messages(&user, "INBOX")
            .iter()
            .filter(|(_, flags, _)| flags.iter().any(|f| f == "\\Seen"))
            .count();
        assert_eq!(
            seen, 4,
            "acknowledged messages are marked read on the server"
        );
        // Our own mark-read comes back in the delta round: not new mail.
        assert!(graph.fetch(100).await.unwrap().is_void());
        // After first contact every new message is taken, even one read already.
        h.append(&user, "INBOX", &mail("new read", ""), &["\\Seen"]);
        h.append(&user, "INBOX", &mail("new unread", ""), &[]);
        let next = graph.fetch(100).await.unwrap();
        assert_eq!(subjects(&next), vec!["new read", "new unread"]);
        graph.ack(&next).await.unwrap();
        assert!(graph.fetch(100).await.unwrap().is_void(), "nothing twice");
        let stats = h.graph(&format!("/_test/stats?mailbox={user}"));
        let connections = support::json_number(&stats, "connections").unwrap_or(0);
        assert!(connections <= 4, "kept-alive connections reused: {stats}");
    });
}

#[test]
fn delegate_reads_a_shared_mailbox_and_moves_processed_mail() {
    let h = Harness::get();
    let shared = h.unique_user("graphshared");
    let delegate = h.unique_user("graphdelegate");
    h.create_folder(&shared, "INBOX/Done");
    h.append(&shared, "INBOX", &mail("shared one", ""), &[]);
    smol::block_on(async {
        // Without Full Access: the refusal names the delegation.
        let mb = graph_mailbox(
            h,
            &shared,
            Some(&delegate),
            r#", "after_processing": "move", "processed_folder": "Inbox/Done""#,
        );
        let mut agent = Agent::new(mb.clone(), state_dir("deny")).unwrap();
        let report = agent.test_connection().await;
        let f = report.failure().expect("refused without Full Access");
        assert_eq!(f.kind, Some(ErrorKind::GraphAccessDenied), "{report:#?}");
        assert!(f.fix.as_deref().unwrap().contains("Full Access"), "{f:?}");
        drop(agent);
        h.grant_full_access(&shared, &delegate);
        let mut agent = Agent::new(mb, state_dir("shared")).unwrap();
        let report = agent.test_connection().await;
        assert!(report.healthy(), "{report:#?}");
        let b = agent.fetch(10).await.unwrap();
        assert_eq!(subjects(&b), vec!["shared one"]);
        agent.ack(&b).await.unwrap();
        assert_eq!(h.count(&shared, "INBOX"), 0);
        assert_eq!(
            h.count(&shared, "INBOX/Done"),
            1,
            "moved to the processed folder"
        );
    });
}

#[test]
fn expired_delta_link_and_429_storms_lose_and_duplicate_nothing() {
    let h = Harness::get();
    let user = h.unique_user("graphfault");
    for i in 0..5 {
        h.append(&user, "INBOX", &mail(&format!("first {i}"), ""), &[]);
    }
    let dir = state_dir("fault");
    let mut delivered: Vec<String> = Vec::new();
    smol::block_on(async {
        let mut agent = Agent::new(
            graph_mailbox(h, &user, None, r#", "batch_size": 2"#),
            dir.clone(),
        )
        .unwrap();
        // Fetch one batch, deliver it, but "crash" before the acknowledgement.
        let b = agent.fetch(2).await.unwrap();
        delivered.extend(b.tickets.iter().map(|t| t.dedupe_key.clone()));
        drop(agent);
        let mut agent = Agent::new(
            graph_mailbox(h, &user, None, r#", "batch_size": 2"#),
            dir.clone(),
        )
        .unwrap();
        h.graph(&format!("/_test/expire_delta?mailbox={user}"));
        h.graph(&format!(
            "/_test/fail_next?status=429&count=4&retry_after=1&mailbox={user}"
        ));
        for i in 0..3 {
            h.append(&user, "INBOX", &mail(&format!("later {i}"), ""), &[]);
        }
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(rounds < 20);
            let b = agent.fetch(2).await.unwrap();
            if b.is_void() {
                break;
            }
            for t in &b.tickets {
                // The crash re-delivers at most the unacknowledged batch, with the same key.
                delivered.push(t.dedupe_key.clone());
            }
            if rounds == 2 {
                h.graph(&format!(
                    "/_test/fail_next?status=503&count=2&retry_after=1&mailbox={user}"
                ));
                h.graph(&format!("/_test/expire_delta?mailbox={user}"));
            }
            agent.ack(&b).await.unwrap();
        }
    });
    let mut unique = delivered.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        8,
        "every message became a ticket: {delivered:?}"
    );
    // Only the batch delivered before the crash may come again.
    assert!(delivered.len() <= 10, "{delivered:?}");
    let seen = h
        .list_messages(&user, "INBOX")
        .iter()
        .filter(|(_, flags, _)| flags.iter().any(|f| f == "\\Seen"))
        .count();
    assert_eq!(seen, 8, "every message acknowledged");
}

#[test]
fn refusals_name_cause_and_fix() {
    let h = Harness::get();
    smol::block_on(async {
        // On-premises mailbox.
        let user = h.unique_user("onprem-graph");
        let mut agent = Agent::new(graph_mailbox(h, &user, None, ""), state_dir("onprem")).unwrap();
        let r = agent.test_connection().await;
        let f = r.failure().expect("refused");
        assert_eq!(f.name, "mailbox");
        assert_eq!(f.kind, Some(ErrorKind::GraphMailboxNotEnabled), "{r:#?}");
        assert!(f.fix.as_deref().unwrap().contains("on-premises"));
        // An application access policy that excludes the mailbox.
        let user = h.unique_user("graphpolicy");
        h.append(&user, "INBOX", &mail("x", ""), &[]);
        h.graph(&format!(
            "/_test/error?mailbox={user}&code=ErrorAccessDeniedPolicy"
        ));
        let mut agent = Agent::new(graph_mailbox(h, &user, None, ""), state_dir("policy")).unwrap();
        let r = agent.test_connection().await;
        let f = r.failure().expect("refused");
        assert_eq!(f.kind, Some(ErrorKind::GraphAccessPolicy), "{r:#?}");
        assert!(f
            .fix
            .as_deref()
            .unwrap()
            .contains("New-ApplicationAccessPolicy"));
        let e = agent.fetch(10).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::GraphAccessPolicy);
        h.graph(&format!("/_test/error?mailbox={user}&code=none"));
        // A refused token is renewed once; refused again, it is diagnosed.
        h.graph(&format!(
            "/_test/error?mailbox={user}&code=InvalidAuthenticationToken&count=1"
        ));
        let b = agent.fetch(10).await.unwrap();
        assert_eq!(b.len(), 1, "one renewal got through");
        h.graph(&format!(
            "/_test/error?mailbox={user}&code=InvalidAuthenticationToken"
        ));
        let e = agent.ack(&b).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::GraphTokenRejected, "{e}");
        h.graph(&format!("/_test/error?mailbox={user}&code=none"));
        agent.ack(&b).await.unwrap();
    });
}

/// Complete lines (a line cut by a kill is no delivery): the dedupe keys.
fn delivered_keys(out: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .map(|l| support::json_field(l, "dedupe_key").expect("dedupe_key"))
        .collect()
}

#[test]
fn kill_9_and_faults_over_graph_lose_and_duplicate_nothing() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let h = Harness::get();
    let user = h.unique_user("graphcrash");
    let dir = state_dir("crash");
    let config = dir.join("config.json");
    let json = format!(
        r#"{{"state_dir": "{state}", "mailboxes": [{{"name": "Helpdesk", "email": "{user}",
             "transport": "graph", "graph": {{"endpoint": "{graph}"}}, "batch_size": 3,
             "imap": {{"ca_file": "{ca}", "timeout_secs": 10}},
             "oauth": {{"enabled": true, "flow": "client_credentials", "application_id": "app-confidential",
                        "client_secret_env": "PMA_GRAPH_SECRET", "directory_id": "contoso-tenant", "authority": "{idp}"}}}}]}}"#,
        state = dir.join("state").display(),
        graph = h.graph_url,
        ca = h.ca_file.display(),
        idp = h.idp_url,
    );
    std::fs::write(&config, json).unwrap();
    let bin = env!("CARGO_BIN_EXE_psa-mail-agent");
    let launch = |cmd: &str, out: &Path| {
        Command::new(bin)
            .args([cmd, "--config"])
            .arg(&config)
            .env("PMA_GRAPH_SECRET", "s3cret-app")
            .env("PMA_LOG", "info")
            .stdout(std::fs::File::create(out).unwrap())
            .stderr(std::fs::File::create(out.with_extension("err")).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .unwrap()
    };
    // `test` over Graph: healthy, exit 0.
    let out = dir.join("test.out");
    let status = launch("test", &out).wait().unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(status.success(), "{text}");
    assert!(text.contains("delta"), "{text}");
    let mut total = 0usize;
    let add = |n: usize, total: &mut usize| {
        for _ in 0..n {
            h.append(&user, "INBOX", &mail(&format!("crash {}", *total), ""), &[]);
            *total += 1;
        }
    };
    add(8, &mut total);
    let mut outputs = Vec::new();
    let mut killed = 0;
    let mut seed = 12345u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..12 {
        add(1 + next(3) as usize, &mut total);
        match next(4) {
            0 => {
                h.graph(&format!("/_test/expire_delta?mailbox={user}"));
            }
            1 => {
                h.graph(&format!(
                    "/_test/fail_next?status=429&count=3&retry_after=1&mailbox={user}"
                ));
            }
            _ => {}
        }
        let out = dir.join(format!("round-{round}.out"));
        let mut child = launch("fetch", &out);
        let delay = Duration::from_millis(50 + next(600));
        let t = Instant::now();
        while t.elapsed() < delay && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        outputs.push(out);
        psa_mail_agent::state::load(&dir.join("state").join("Helpdesk.state.json"))
            .expect("state parses after a kill");
    }
    for i in 0..4 {
        let out = dir.join(format!("final-{i}.out"));
        let status = launch("fetch", &out).wait().unwrap();
        let err = std::fs::read_to_string(out.with_extension("err")).unwrap_or_default();
        assert!(status.success(), "{err}");
        let n = delivered_keys(&out).len();
        outputs.push(out);
        if n == 0 {
            break;
        }
    }
    let all: Vec<String> = outputs.iter().flat_map(|o| delivered_keys(o)).collect();
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    println!(
        "graph crash: killed={killed} messages={total} delivered={} unique={}",
        all.len(),
        unique.len()
    );
    assert_eq!(unique.len(), total, "nothing lost");
    let unseen = h
        .list_messages(&user, "INBOX")
        .iter()
        .filter(|(_, f, _)| !f.iter().any(|x| x == "\\Seen"))
        .count();
    assert_eq!(unseen, 0, "every message acknowledged");
}

#[test]
fn c_api_over_graph_with_partial_ack() {
    use psa_mail_agent::ffi::agent::{
        pma_ack_tickets, pma_agent, pma_fetch_tickets, pma_free, pma_init, pma_test_connection,
    };
    use psa_mail_agent::ffi::batch::{pma_batch, pma_batch_count, pma_batch_free};
    use psa_mail_agent::ffi::report::{pma_report, pma_report_free, pma_report_healthy};
    use psa_mail_agent::ffi::result::pma_result;
    use std::ffi::CString;
    let h = Harness::get();
    let user = h.unique_user("graphffi");
    for i in 0..3 {
        h.append(&user, "INBOX", &mail(&format!("ffi {i}"), ""), &[]);
    }
    let json = format!(
        r#"{{"name": "ffi", "email": "{user}", "transport": "graph", "graph": {{"endpoint": "{graph}"}},
             "imap": {{"ca_file": "{ca}", "timeout_secs": 10}},
             "oauth": {{"enabled": true, "flow": "client_credentials", "application_id": "app-confidential",
                        "client_secret": "s3cret-app", "directory_id": "contoso-tenant", "authority": "{idp}"}}}}"#,
        graph = h.graph_url,
        ca = h.ca_file.display(),
        idp = h.idp_url,
    );
    let json = CString::new(json).unwrap();
    let dir = CString::new(state_dir("ffi").to_str().unwrap()).unwrap();
    let seen = |h: &Harness| {
        h.list_messages(&user, "INBOX")
            .iter()
            .filter(|(_, f, _)| f.iter().any(|x| x == "\\Seen"))
            .count()
    };
    // SAFETY: the C API's contract: valid NUL-terminated strings and out-pointers, handles
    // freed once.
    unsafe {
        let mut agent: *mut pma_agent = std::ptr::null_mut();
        assert_eq!(
            pma_init(json.as_ptr(), dir.as_ptr(), &mut agent),
            pma_result::PMA_OK
        );
        let mut report: *mut pma_report = std::ptr::null_mut();
        assert_eq!(pma_test_connection(agent, &mut report), pma_result::PMA_OK);
        assert!(pma_report_healthy(report));
        pma_report_free(report);
        let mut batch: *mut pma_batch = std::ptr::null_mut();
        assert_eq!(pma_fetch_tickets(agent, 10, &mut batch), pma_result::PMA_OK);
        assert_eq!(pma_batch_count(batch), 3);
        // The host stored one ticket only: one message is acknowledged, two come again.
        assert_eq!(pma_ack_tickets(agent, batch, 1), pma_result::PMA_OK);
        pma_batch_free(batch);
        assert_eq!(seen(h), 1);
        let mut batch: *mut pma_batch = std::ptr::null_mut();
        assert_eq!(pma_fetch_tickets(agent, 10, &mut batch), pma_result::PMA_OK);
        assert_eq!(pma_batch_count(batch), 2);
        assert_eq!(pma_ack_tickets(agent, batch, 2), pma_result::PMA_OK);
        pma_batch_free(batch);
        assert_eq!(seen(h), 3);
        pma_free(agent);
    }
}

#[test]
fn run_polls_graph_and_delivers_to_the_spool() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let h = Harness::get();
    let user = h.unique_user("graphrun");
    let dir = state_dir("run");
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"state_dir": "{state}", "output": {{"kind": "spool", "dir": "{spool}"}},
                 "mailboxes": [{{"name": "Helpdesk", "email": "{user}", "transport": "graph",
                 "graph": {{"endpoint": "{graph}"}}, "poll_interval_secs": 1,
                 "imap": {{"ca_file": "{ca}", "timeout_secs": 10}},
                 "oauth": {{"enabled": true, "flow": "client_credentials", "application_id": "app-confidential",
                            "client_secret_env": "PMA_GRAPH_SECRET", "directory_id": "contoso-tenant", "authority": "{idp}"}}}}]}}"#,
            state = dir.join("state").display(),
            spool = spool.display(),
            graph = h.graph_url,
            ca = h.ca_file.display(),
            idp = h.idp_url,
        ),
    )
    .unwrap();
    h.append(&user, "INBOX", &mail("run 1", ""), &[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_psa-mail-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .env("PMA_GRAPH_SECRET", "s3cret-app")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("run.err")).unwrap())
        .spawn()
        .unwrap();
    let count = || {
        std::fs::read_dir(&spool)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".json")
            })
            .count()
    };
    let wait_for = |n: usize| {
        let t = Instant::now();
        while count() < n && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(100));
        }
        count()
    };
    let first = wait_for(1);
    h.append(&user, "INBOX", &mail("run 2", ""), &["\\Seen"]);
    h.append(&user, "INBOX", &mail("run 3", ""), &[]);
    let later = wait_for(3);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let err = std::fs::read_to_string(dir.join("run.err")).unwrap_or_default();
    assert_eq!(first, 1, "{err}");
    assert_eq!(later, 3, "new mail found by polling the delta link: {err}");
    assert!(status.success(), "{status}: {err}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(count(), 3, "nothing twice");
}
