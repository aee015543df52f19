//! The real binary against the Dovecot harness: help, exit codes, fetch with and without ack,
//! and a kill -9 between printing and acknowledging.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use support::Harness;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_psa-mail-agent"))
}

fn write_config(h: &Harness, user: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pma-cli-{tag}-{}", support::unique_user("d")));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.json");
    let json = format!(
        r#"{{"state_dir": "state", "mailboxes": [{{"name": "Helpdesk", "email": "{user}",
             "password_env": "PMA_TEST_PASSWORD",
             "imap": {{"server": "127.0.0.1", "port": {}, "ca_file": "{}"}}}}]}}"#,
        h.imaps_port,
        h.ca_file.display()
    );
    std::fs::write(&path, json).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

fn mail(i: usize, body_len: usize) -> Vec<u8> {
    format!(
        "From: c{i}@fabrikam.test\r\nTo: helpdesk@contoso.test\r\nSubject: cli {i}\r\nMessage-ID: <cli-{i}-{}@fabrikam.test>\r\n\r\n{}\r\n",
        std::process::id(),
        "x".repeat(body_len)
    )
    .into_bytes()
}

#[test]
fn every_command_has_help() {
    for cmd in ["parse", "test", "fetch"] {
        let out = bin().args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(&format!("psa-mail-agent {cmd}")), "{text}");
    }
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Exit codes"));
    let out = bin().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("psa-mail-agent {}", env!("CARGO_PKG_VERSION"))
    );
    let out = bin().arg("bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_errors_exit_3_and_name_the_key() {
    let dir = std::env::temp_dir().join(format!("pma-cli-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.json");
    std::fs::write(&path, r#"{"mailboxes": [{"name": "x", "email": "a@b.c", "password": "p", "imap": {"port": "993"}}]}"#)
        .unwrap();
    let out = bin()
        .args(["test", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mailboxes[0].imap.port"));
}

#[test]
fn no_ack_leaves_everything_unseen_and_fetch_acks() {
    let h = Harness::get();
    let user = h.unique_user("cli-noack");
    for i in 0..3 {
        h.append(&user, "INBOX", &mail(i, 10), &[]);
    }
    let config = write_config(h, &user, "noack");
    let out = bin()
        .args(["fetch", "--no-ack", "--config"])
        .arg(&config)
        .env("PMA_TEST_PASSWORD", &h.password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    let msgs = h.list_messages(&user, "INBOX");
    assert!(msgs
        .iter()
        .all(|(_, f, _)| !f.iter().any(|x| x.contains("Seen"))));
    assert!(!config
        .parent()
        .unwrap()
        .join("state")
        .join("Helpdesk.state.json")
        .exists());

    let out = bin()
        .args(["fetch", "--config"])
        .arg(&config)
        .env("PMA_TEST_PASSWORD", &h.password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines
        .iter()
        .all(|l| l.starts_with('{') && l.contains("\"mailbox\":\"Helpdesk\"")));
    let msgs = h.list_messages(&user, "INBOX");
    assert!(msgs
        .iter()
        .all(|(_, f, _)| f.iter().any(|x| x.contains("Seen"))));
    // Nothing left.
    let out = bin()
        .args(["fetch", "--config"])
        .arg(&config)
        .env("PMA_TEST_PASSWORD", &h.password)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn max_limits_the_tickets() {
    let h = Harness::get();
    let user = h.unique_user("cli-max");
    for i in 0..5 {
        h.append(&user, "INBOX", &mail(i, 10), &[]);
    }
    let config = write_config(h, &user, "max");
    let out = bin()
        .args(["fetch", "--max", "2", "--config"])
        .arg(&config)
        .env("PMA_TEST_PASSWORD", &h.password)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let seen = h
        .list_messages(&user, "INBOX")
        .iter()
        .filter(|(_, f, _)| f.iter().any(|x| x.contains("Seen")))
        .count();
    assert_eq!(seen, 2);
}

fn dedupe_key(line: &str) -> String {
    let start = line.find("\"dedupe_key\":\"").expect("dedupe_key") + 14;
    line[start..].split('"').next().unwrap().to_string()
}

#[test]
fn kill_between_print_and_ack_loses_nothing_and_duplicates_nothing_after_dedupe() {
    let h = Harness::get();
    let user = h.unique_user("cli-kill");
    let n = 30;
    for i in 0..n {
        // ~8 KB per ticket: the batch outgrows the pipe, so the process blocks mid-print.
        h.append(&user, "INBOX", &mail(i, 4000), &[]);
    }
    let config = write_config(h, &user, "kill");
    let mut child = bin()
        .args(["fetch", "--config"])
        .arg(&config)
        .env("PMA_TEST_PASSWORD", &h.password)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.contains("dedupe_key"));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let seen = h
        .list_messages(&user, "INBOX")
        .iter()
        .filter(|(_, f, _)| f.iter().any(|x| x.contains("Seen")))
        .count();
    assert_eq!(
        seen, 0,
        "nothing acknowledged before the batch was delivered"
    );

    let out = bin()
        .args(["fetch", "--config"])
        .arg(&config)
        .env("PMA_TEST_PASSWORD", &h.password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(dedupe_key)
        .collect();
    assert_eq!(keys.len(), n, "the re-run delivers every message");
    keys.push(dedupe_key(&first));
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "after dedupe each message exactly once");
    let seen = h
        .list_messages(&user, "INBOX")
        .iter()
        .filter(|(_, f, _)| f.iter().any(|x| x.contains("Seen")))
        .count();
    assert_eq!(seen, n);
}

#[test]
fn test_command_reports_steps_and_exit_code() {
    let h = Harness::get();
    let user = h.unique_user("cli-test");
    let config = write_config(h, &user, "test");
    let out = bin()
        .args(["test", "--config"])
        .arg(&config)
        .env("PMA_TEST_PASSWORD", &h.password)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for step in [
        "connect",
        "tls",
        "capabilities",
        "authenticate",
        "select",
        "healthy",
    ] {
        assert!(text.contains(step), "{text}");
    }
    let out = bin()
        .args(["test", "--config"])
        .arg(&config)
        .env("PMA_TEST_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL") && text.contains("fix:"), "{text}");
    assert!(!text.contains("wrong"), "{text}");
}

#[test]
fn parse_prints_a_ticket_per_file() {
    let dir = std::env::temp_dir().join(format!("pma-cli-parse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("a.eml");
    std::fs::write(&a, mail(1, 5)).unwrap();
    let out = bin().arg("parse").arg(&a).arg(&a).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 2);
    assert!(text
        .lines()
        .all(|l| l.contains("\"subject\":\"cli 1\"") && !l.contains("delivery_id")));
    let out = bin()
        .arg("parse")
        .arg(dir.join("missing.eml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
