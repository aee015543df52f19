//! A server sending a 100 MB response line: the agent fails with a clear error once the line
//! passes its limit, without buffering the rest. Alone in its test binary, so the process's
//! peak memory (VmHWM) is this test's.

mod support;

use psa_mail_agent::agent::Agent;
use psa_mail_agent::config::Mailbox;
use psa_mail_agent::ErrorKind;
use std::path::Path;
use std::time::{Duration, Instant};
use support::fakeimap::{FakeImap, Quirk};

/// Peak resident memory of this process in KiB (Linux), if known.
fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_100_mb_response_line_fails_clearly_with_bounded_memory() {
    let mail = b"From: a@fabrikam.test\r\nSubject: s\r\nMessage-ID: <huge-1@fabrikam.test>\r\n\r\nbody\r\n";
    let server = FakeImap::start(vec![mail.to_vec()]);
    server.set_quirk(Quirk::HugeLine(100 * 1024 * 1024), 1);
    let json = format!(
        r#"{{"name": "huge", "email": "helpdesk@contoso.test", "password": "pw",
             "imap": {{"server": "127.0.0.1", "port": {}, "encryption": "none",
                      "allow_plaintext": true, "timeout_secs": 5}}}}"#,
        server.port
    );
    let mb = Mailbox::from_json(&json, Path::new("/")).unwrap();
    let dir = std::env::temp_dir().join(format!("pma-huge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut agent = Agent::new(mb, dir.clone()).unwrap();
    let before = vm_hwm_kib();
    let t = Instant::now();
    let e = smol::block_on(agent.fetch(10)).unwrap_err();
    let took = t.elapsed();
    let after = vm_hwm_kib();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e:?}");
    assert!(e.message().contains("exceeds"), "{e}");
    assert!(
        e.message().len() < 1000,
        "bounded message: {}",
        e.message().len()
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
    if let (Some(b), Some(a)) = (before, after) {
        println!("VmHWM before {b} KiB, after {a} KiB, {took:?}");
        assert!(
            a.saturating_sub(b) < 48 * 1024,
            "peak memory grew by {} KiB for one response line",
            a - b
        );
    }
    // The next attempt (a healthy server again) delivers the message.
    let batch = smol::block_on(agent.fetch(10)).unwrap();
    assert_eq!(batch.len(), 1);
    smol::block_on(agent.ack(&batch)).unwrap();
    assert_eq!(server.seen(), [1]);
    let _ = std::fs::remove_dir_all(&dir);
}
