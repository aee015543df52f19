//! Mailbox to tickets on the real Dovecot harness: transports, authentication errors, fetch with
//! both switches, acknowledgement modes, and the delivery guarantees.

mod support;

use psa_mail_agent::agent::Agent;
use psa_mail_agent::config::Mailbox;
use psa_mail_agent::ErrorKind;
use std::path::{Path, PathBuf};
use support::Harness;

fn state_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "pma-it-{tag}-{}-{}",
        std::process::id(),
        support::unique_user("s")
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A Basic-auth mailbox entry for `user` with `imap` overrides and top-level `extra` keys.
fn mailbox(h: &Harness, user: &str, imap: &str, extra: &str) -> Mailbox {
    let json = format!(
        r#"{{"name": "{user}", "email": "{user}", "password": "{pw}",
             "imap": {{"server": "{host}", "port": {port}, "ca_file": "{ca}", "timeout_secs": 10 {imap}}}
             {extra}}}"#,
        pw = h.password,
        host = h.host(),
        port = h.imaps_port,
        ca = h.ca_file.display(),
    );
    Mailbox::from_json(&json, Path::new("/")).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

fn simple_mail(subject: &str, id: &str) -> Vec<u8> {
    format!(
        "From: Customer <customer@fabrikam.test>\r\nTo: helpdesk@contoso.test\r\nSubject: {subject}\r\n\
         Message-ID: <{id}@fabrikam.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nPlease help with {subject}.\r\n"
    )
    .into_bytes()
}

fn rich_mail() -> Vec<u8> {
    b"From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <jm@fabrikam.test>\r\n\
To: Helpdesk <helpdesk@contoso.test>\r\n\
Cc: Boss <boss@fabrikam.test>, it@fabrikam.test\r\n\
Subject: =?UTF-8?Q?Drucker_kaputt_=E2=80=93_bitte_helfen?=\r\n\
Message-ID: <rich-1@fabrikam.test>\r\n\
Date: Mon, 23 Nov 2026 10:00:00 +0100\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Der Drucker im 2. Stock druckt nicht.\r\n\
--b1\r\n\
Content-Type: application/pdf; name=\"report.pdf\"\r\n\
Content-Disposition: attachment; filename=\"report.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQKJcOkw7zDtsOfCg==\r\n\
--b1--\r\n"
        .to_vec()
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(f)
}

#[test]
fn ssl_connection_test_is_healthy() {
    let h = Harness::get();
    let user = h.unique_user("ssl");
    let mut agent = Agent::new(mailbox(h, &user, "", ""), state_dir("ssl")).unwrap();
    let report = run(agent.test_connection());
    assert!(report.healthy(), "{report:#?}");
    let names: Vec<_> = report.steps.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        ["connect", "tls", "capabilities", "authenticate", "select"]
    );
    assert!(report.steps[1].detail.contains("implicit TLS"));
}

#[test]
fn starttls_upgrades_and_fetches() {
    let h = Harness::get();
    let user = h.unique_user("starttls");
    h.append(&user, "INBOX", &simple_mail("VPN down", "stls-1"), &[]);
    let imap = format!(r#", "port": {}, "encryption": "starttls""#, h.imap_port);
    // The JSON above already has a port; a duplicate key is a config error, so build by hand.
    let json = format!(
        r#"{{"name": "{user}", "email": "{user}", "password": "{pw}",
             "imap": {{"server": "127.0.0.2", "ca_file": "{ca}", "timeout_secs": 10 {imap}}}}}"#,
        pw = h.password,
        ca = h.ca_file.display()
    );
    let mb = Mailbox::from_json(&json, Path::new("/")).unwrap();
    let mut agent = Agent::new(mb, state_dir("starttls")).unwrap();
    let report = run(agent.test_connection());
    assert!(report.healthy(), "{report:#?}");
    assert!(report.steps[1].detail.contains("STARTTLS"));
    let batch = run(agent.fetch(10)).unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch.tickets[0].subject, "VPN down");
}

fn with_port(
    h: &Harness,
    user: &str,
    host: &str,
    port: u16,
    encryption: &str,
    extra_imap: &str,
) -> Mailbox {
    let json = format!(
        r#"{{"name": "{user}", "email": "{user}", "password": "{pw}",
             "imap": {{"server": "{host}", "port": {port}, "encryption": "{encryption}", "ca_file": "{ca}", "timeout_secs": 10 {extra_imap}}}}}"#,
        pw = h.password,
        ca = h.ca_file.display()
    );
    Mailbox::from_json(&json, Path::new("/")).unwrap_or_else(|e| panic!("{e}"))
}

fn failing_step(mb: Mailbox, tag: &str) -> psa_mail_agent::agent::Step {
    let mut agent = Agent::new(mb, state_dir(tag)).unwrap();
    let report = run(agent.test_connection());
    assert!(!report.healthy());
    report.failure().cloned().expect("a failed step")
}

#[test]
fn starttls_not_offered_is_refused() {
    let h = Harness::get();
    let user = h.unique_user("nostls");
    let mb = with_port(
        h,
        &user,
        &h.nostarttls_host,
        h.nostarttls_port,
        "starttls",
        "",
    );
    let step = failing_step(mb, "nostls");
    assert_eq!(step.name, "tls");
    assert_eq!(step.kind, Some(ErrorKind::StartTlsNotOffered), "{step:?}");
    assert!(step.detail.contains("does not offer STARTTLS"), "{step:?}");
    assert!(step.fix.is_some());
}

#[test]
fn plaintext_login_refused_unless_allowed() {
    let h = Harness::get();
    let user = h.unique_user("plain");
    // Not allowed: the configuration itself is refused, naming the key.
    let json = format!(
        r#"{{"name": "{user}", "email": "{user}", "password": "x",
             "imap": {{"server": "127.0.0.2", "port": {}, "encryption": "none"}}}}"#,
        h.imap_port
    );
    let e = Mailbox::from_json(&json, Path::new("/")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PlaintextRefused);
    assert!(e.message().contains("allow_plaintext"), "{e}");
    // Allowed by config, but a remote-like server announces LOGINDISABLED: still refused.
    let mb = with_port(
        h,
        &user,
        "127.0.0.2",
        h.imap_port,
        "none",
        r#", "allow_plaintext": true"#,
    );
    let step = failing_step(mb, "plain");
    assert_eq!(step.name, "authenticate");
    assert_eq!(step.kind, Some(ErrorKind::PlaintextRefused), "{step:?}");
}

#[test]
fn unknown_ca_and_wrong_host_name_are_refused() {
    let h = Harness::get();
    let user = h.unique_user("cert");
    let json = format!(
        r#"{{"name": "{user}", "email": "{user}", "password": "{}",
             "imap": {{"server": "127.0.0.1", "port": {}}}}}"#,
        h.password, h.imaps_port
    );
    let step = failing_step(Mailbox::from_json(&json, Path::new("/")).unwrap(), "ca");
    assert_eq!(step.name, "tls");
    assert_eq!(step.kind, Some(ErrorKind::Certificate), "{step:?}");
    assert!(step.fix.as_deref().unwrap().contains("ca_file"));

    let mb = with_port(h, &user, &h.wrong_host, h.imaps_port, "ssl", "");
    let step = failing_step(mb, "host");
    assert_eq!(step.kind, Some(ErrorKind::Certificate), "{step:?}");
}

#[test]
fn wrong_password_is_a_clear_error() {
    let h = Harness::get();
    let user = h.unique_user("badpw");
    let mut mb = mailbox(h, &user, "", "");
    mb.password = Some("not-the-password".into());
    let step = failing_step(mb, "badpw");
    assert_eq!(step.name, "authenticate");
    assert_eq!(step.kind, Some(ErrorKind::LoginFailed));
    assert!(step.detail.contains(&user), "{step:?}");
    assert!(step.fix.as_deref().unwrap().contains("password"));
    assert!(!step.detail.contains("not-the-password"));
}

#[test]
fn missing_folder_is_a_clear_error() {
    let h = Harness::get();
    let user = h.unique_user("nofolder");
    h.create_folder(&user, "Support");
    let step = failing_step(mailbox(h, &user, r#", "folder": "Suport""#, ""), "nofolder");
    assert_eq!(step.name, "select");
    assert_eq!(step.kind, Some(ErrorKind::FolderNotFound));
    assert!(step.detail.contains("Suport"), "{step:?}");
    assert!(step.fix.as_deref().unwrap().contains("Support"), "{step:?}");
}

#[test]
fn attachments_and_ccs_honour_their_switches() {
    let h = Harness::get();
    for (add_attachments, add_ccs) in [(true, true), (false, false)] {
        let user = h.unique_user("switch");
        h.append(&user, "INBOX", &rich_mail(), &[]);
        let extra = format!(r#", "add_attachments": {add_attachments}, "add_ccs": {add_ccs}"#);
        let mut agent = Agent::new(mailbox(h, &user, "", &extra), state_dir("switch")).unwrap();
        let batch = run(agent.fetch(10)).unwrap();
        assert_eq!(batch.len(), 1);
        let t = &batch.tickets[0];
        assert_eq!(t.subject, "Drucker kaputt – bitte helfen");
        assert_eq!(t.from.name.as_deref(), Some("Jürgen Müller"));
        assert!(t.body.contains("Der Drucker im 2. Stock"));
        if add_attachments {
            assert_eq!(t.attachments.len(), 1);
            assert_eq!(t.attachments[0].filename.as_deref(), Some("report.pdf"));
            assert_eq!(
                t.attachments[0].data,
                b"%PDF-1.4\n%\xc3\xa4\xc3\xbc\xc3\xb6\xc3\x9f\n"
            );
        } else {
            assert!(t.attachments.is_empty());
        }
        if add_ccs {
            let ccs: Vec<_> = t.cc.iter().map(|a| a.address.as_str()).collect();
            assert_eq!(ccs, ["boss@fabrikam.test", "it@fabrikam.test"]);
        } else {
            assert!(t.cc.is_empty());
        }
        let json = t.to_json();
        assert!(json.contains("\"delivery_id\":\"INBOX:"), "{json}");
        run(agent.ack(&batch)).unwrap();
    }
}

fn flags_of(h: &Harness, user: &str, folder: &str) -> Vec<Vec<String>> {
    h.list_messages(user, folder)
        .into_iter()
        .map(|(_, f, _)| f)
        .collect()
}

#[test]
fn ack_mark_read_sets_seen_only_after_ack() {
    let h = Harness::get();
    let user = h.unique_user("markread");
    for i in 0..3 {
        h.append(
            &user,
            "INBOX",
            &simple_mail(&format!("issue {i}"), &format!("mr-{i}")),
            &[],
        );
    }
    let dir = state_dir("markread");
    let mut agent = Agent::new(mailbox(h, &user, "", ""), dir.clone()).unwrap();
    let batch = run(agent.fetch(100)).unwrap();
    assert_eq!(batch.len(), 3);
    assert!(
        flags_of(h, &user, "INBOX")
            .iter()
            .all(|f| !f.iter().any(|x| x.contains("Seen"))),
        "fetch must not mark read"
    );
    run(agent.ack(&batch)).unwrap();
    assert!(flags_of(h, &user, "INBOX")
        .iter()
        .all(|f| f.iter().any(|x| x.contains("Seen"))));
    assert!(run(agent.fetch(100)).unwrap().is_void());
    // A second ack of the same batch is refused.
    assert!(run(agent.ack(&batch)).is_err());
}

#[test]
fn ack_move_and_delete() {
    let h = Harness::get();
    let user = h.unique_user("move");
    h.append(&user, "INBOX", &simple_mail("move me", "mv-1"), &[]);
    let extra = r#", "after_processing": "move", "processed_folder": "Processed/Tickets""#;
    let mut agent = Agent::new(mailbox(h, &user, "", extra), state_dir("move")).unwrap();
    let batch = run(agent.fetch(10)).unwrap();
    assert_eq!(batch.len(), 1);
    run(agent.ack(&batch)).unwrap();
    assert_eq!(h.count(&user, "INBOX"), 0);
    assert_eq!(
        h.count(&user, "Processed/Tickets"),
        1,
        "created on demand and moved there"
    );

    let user = h.unique_user("delete");
    h.append(&user, "INBOX", &simple_mail("delete me", "del-1"), &[]);
    h.append(
        &user,
        "INBOX",
        &simple_mail("keep me", "del-2"),
        &["\\Seen"],
    );
    let extra = r#", "after_processing": "delete""#;
    let mut agent = Agent::new(mailbox(h, &user, "", extra), state_dir("delete")).unwrap();
    let batch = run(agent.fetch(10)).unwrap();
    assert_eq!(batch.len(), 1, "first contact takes only unread mail");
    run(agent.ack(&batch)).unwrap();
    let left = h.list_messages(&user, "INBOX");
    assert_eq!(left.len(), 1, "only the processed message is expunged");
    assert!(String::from_utf8_lossy(&left[0].2).contains("keep me"));
}

#[test]
fn mail_read_by_a_person_after_first_contact_still_becomes_a_ticket() {
    let h = Harness::get();
    let user = h.unique_user("readbyperson");
    h.append(
        &user,
        "INBOX",
        &simple_mail("old and read", "old-1"),
        &["\\Seen"],
    );
    let dir = state_dir("readbyperson");
    let mut agent = Agent::new(mailbox(h, &user, "", ""), dir.clone()).unwrap();
    assert!(
        run(agent.fetch(10)).unwrap().is_void(),
        "old read mail is not taken on first contact"
    );
    // A new message arrives and a person reads it in Outlook before the agent looks again.
    h.append(
        &user,
        "INBOX",
        &simple_mail("new but read", "new-1"),
        &["\\Seen"],
    );
    drop(agent);
    let mut agent = Agent::new(mailbox(h, &user, "", ""), dir).unwrap();
    let batch = run(agent.fetch(10)).unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch.tickets[0].subject, "new but read");
}

#[test]
fn unacked_batch_is_fetched_again_with_the_same_dedupe_keys() {
    let h = Harness::get();
    let user = h.unique_user("crash");
    for i in 0..4 {
        h.append(
            &user,
            "INBOX",
            &simple_mail(&format!("crash {i}"), &format!("cr-{i}")),
            &[],
        );
    }
    let dir = state_dir("crash");
    let first: Vec<String> = {
        let mut agent = Agent::new(mailbox(h, &user, "", ""), dir.clone()).unwrap();
        let batch = run(agent.fetch(10)).unwrap();
        batch.tickets.iter().map(|t| t.dedupe_key.clone()).collect()
        // dropped without ack: the "crash"
    };
    assert_eq!(first.len(), 4);
    let mut agent = Agent::new(mailbox(h, &user, "", ""), dir.clone()).unwrap();
    let batch = run(agent.fetch(10)).unwrap();
    let again: Vec<String> = batch.tickets.iter().map(|t| t.dedupe_key.clone()).collect();
    assert_eq!(first, again, "nothing lost, same keys");
    run(agent.ack(&batch)).unwrap();
    drop(agent);
    let mut agent = Agent::new(mailbox(h, &user, "", ""), dir).unwrap();
    assert!(
        run(agent.fetch(10)).unwrap().is_void(),
        "nothing delivered twice after the ack"
    );
}

#[test]
fn delivered_but_unacked_on_server_is_acked_without_a_second_ticket() {
    let h = Harness::get();
    let user = h.unique_user("halfack");
    h.append(&user, "INBOX", &simple_mail("half", "half-1"), &[]);
    let dir = state_dir("halfack");
    let mb = mailbox(h, &user, "", "");
    let mut agent = Agent::new(mb.clone(), dir.clone()).unwrap();
    let batch = run(agent.fetch(10)).unwrap();
    assert_eq!(batch.len(), 1);
    // The state remembers the delivery, then the server ack is lost (simulated by putting the
    // flag back): the next run acknowledges it again without a new ticket.
    run(agent.ack(&batch)).unwrap();
    drop(agent);
    let state =
        std::fs::read_to_string(psa_mail_agent::state::StatePaths::new(&dir, &mb.name).state)
            .unwrap();
    let mut state: psa_mail_agent::state::MailboxState =
        serde_json_core::from_str_escaped(&state, &mut [0u8; 1024])
            .unwrap()
            .0;
    state.pending.push(1);
    psa_mail_agent::state::save(
        &psa_mail_agent::state::StatePaths::new(&dir, &mb.name).state,
        &state,
    )
    .unwrap();
    let mut agent = Agent::new(mb, dir).unwrap();
    let batch = run(agent.fetch(10)).unwrap();
    assert!(
        batch.is_empty() && !batch.is_void(),
        "acknowledged, not delivered again"
    );
    run(agent.ack(&batch)).unwrap();
    assert!(run(agent.fetch(10)).unwrap().is_void());
}

#[test]
fn batches_are_bounded() {
    let h = Harness::get();
    let user = h.unique_user("bounded");
    for i in 0..7 {
        h.append(
            &user,
            "INBOX",
            &simple_mail(&format!("b {i}"), &format!("bd-{i}")),
            &[],
        );
    }
    let mut agent = Agent::new(
        mailbox(h, &user, "", r#", "batch_size": 3"#),
        state_dir("bounded"),
    )
    .unwrap();
    let mut sizes = Vec::new();
    loop {
        let batch = run(agent.fetch(100)).unwrap();
        if batch.is_void() {
            break;
        }
        sizes.push(batch.len());
        run(agent.ack(&batch)).unwrap();
    }
    assert_eq!(sizes, [3, 3, 1]);
}

#[test]
fn second_agent_on_the_same_mailbox_is_refused() {
    let h = Harness::get();
    let user = h.unique_user("lock");
    let dir = state_dir("lock");
    let _first = Agent::new(mailbox(h, &user, "", ""), dir.clone()).unwrap();
    let e = Agent::new(mailbox(h, &user, "", ""), dir)
        .err()
        .expect("locked");
    assert!(e.message().contains("already being processed"), "{e}");
}

#[test]
fn replies_to_registered_sent_mail_find_their_ticket_across_restarts() {
    let h = Harness::get();
    let user = h.unique_user("threads");
    let dir = state_dir("threads");
    {
        let mut agent = Agent::new(mailbox(h, &user, "", ""), dir.clone()).unwrap();
        agent
            .register_sent("<notify-4711@helpdesk.contoso.test>", "T-4711")
            .unwrap();
        assert!(agent.register_sent("", "T-1").is_err());
    }
    let reply = b"From: customer@fabrikam.test\r\nTo: helpdesk@contoso.test\r\nSubject: Re: your request\r\n\
Message-ID: <reply-1@fabrikam.test>\r\nIn-Reply-To: <notify-4711@helpdesk.contoso.test>\r\n\r\nStill broken.\r\n";
    h.append(&user, "INBOX", reply, &[]);
    let mut agent = Agent::new(mailbox(h, &user, "", ""), dir).unwrap();
    let batch = run(agent.fetch(10)).unwrap();
    assert_eq!(
        batch.tickets[0].thread.ticket_number.as_deref(),
        Some("T-4711")
    );
    assert_eq!(
        batch.tickets[0].thread.in_reply_to.as_deref(),
        Some("notify-4711@helpdesk.contoso.test")
    );
}

#[test]
fn message_deleted_after_its_size_was_read_ahead_is_skipped() {
    use futures::StreamExt;
    let h = Harness::get();
    let user = h.unique_user("ahead");
    for i in 0..4 {
        h.append(
            &user,
            "INBOX",
            &simple_mail(&format!("ahead {i}"), &format!("ah-{i}")),
            &[],
        );
    }
    let mut agent = Agent::new(
        mailbox(h, &user, "", r#", "batch_size": 1"#),
        state_dir("ahead"),
    )
    .unwrap();
    // The first batch also reads the sizes of the next ones.
    let first = run(agent.fetch(100)).unwrap();
    assert_eq!(first.len(), 1);
    run(agent.ack(&first)).unwrap();
    // Someone deletes the second message before its batch.
    run(async {
        let mut s = h.login(&user).await;
        s.select("INBOX").await.unwrap();
        let uids: Vec<_> = s.uid_search("ALL").await.unwrap().into_iter().collect();
        let second = uids.iter().min().unwrap() + 1;
        let _: Vec<_> = s
            .uid_store(second.to_string(), "+FLAGS (\\Deleted)")
            .await
            .unwrap()
            .collect()
            .await;
        let _: Vec<_> = s.expunge().await.unwrap().collect().await;
        s.logout().await.unwrap();
    });
    let mut subjects = vec![first.tickets[0].subject.clone()];
    for _ in 0..6 {
        let batch = run(agent.fetch(100)).unwrap();
        subjects.extend(batch.tickets.iter().map(|t| t.subject.clone()));
        if !batch.is_void() {
            run(agent.ack(&batch)).unwrap();
        }
    }
    assert_eq!(subjects, ["ahead 0", "ahead 2", "ahead 3"]);
    assert!(run(agent.fetch(100)).unwrap().is_void());
}

/// A message over 1 MiB with a 3 MB attachment: the ticket carries the attachment's bytes still
/// encoded in the fetched message (not a decoded copy), the spool decodes them straight into the
/// attachment's file, and without attachment bytes the ticket has only size and SHA-256.
#[test]
fn a_large_attachment_is_decoded_into_its_spool_file_not_held_decoded() {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let h = Harness::get();
    let user = h.unique_user("large");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let raw = format!(
        "From: c@fabrikam.test\r\nTo: helpdesk@contoso.test\r\nSubject: big one\r\n\
         Message-ID: <large-1@fabrikam.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
         Content-Type: text/plain\r\n\r\nSee the dump.\r\n--b\r\n\
         Content-Type: application/octet-stream; name=\"dump.bin\"\r\n\
         Content-Disposition: attachment; filename=\"dump.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        lines.join("\r\n")
    );
    h.append(&user, "INBOX", raw.as_bytes(), &[]);
    let sha: String = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let extra = r#", "max_attachment_bytes": 10000000"#;

    let mut agent = Agent::new(mailbox(h, &user, "", extra), state_dir("large")).unwrap();
    let batch = run(agent.fetch(10)).unwrap();
    let t = &batch.tickets[0];
    assert_eq!(t.body, "See the dump.");
    let a = &t.attachments[0];
    assert_eq!(
        (a.size, a.sha256.as_str()),
        (data.len() as u64, sha.as_str())
    );
    assert!(a.data.is_empty() && a.pending.is_some(), "not decoded yet");
    let spool_dir = state_dir("large-spool");
    let spool = psa_mail_agent::delivery::spool::Spool::new(&spool_dir).unwrap();
    spool.write(t).unwrap();
    let stem = psa_mail_agent::delivery::spool::ticket_stem(&t.mailbox, &t.dedupe_key);
    let written = std::fs::read(spool_dir.join(format!("{stem}.att/0-dump.bin"))).unwrap();
    assert!(written == data, "the spool file holds the decoded bytes");
    assert!(&*a.bytes() == data.as_slice());

    let mut agent = Agent::new(mailbox(h, &user, "", extra), state_dir("large2")).unwrap();
    agent.set_attachment_bytes(false);
    let batch = run(agent.fetch(10)).unwrap();
    let a = &batch.tickets[0].attachments[0];
    assert_eq!(
        (a.size, a.sha256.as_str()),
        (data.len() as u64, sha.as_str())
    );
    assert!(!a.has_bytes());
}
