//! `psa-mail-agent parse` prints, for every golden fixture, the expected ticket: the binary
//! built with a config whose mailbox matches the golden test's options (tests/golden.rs).

use psa_mail_agent::agent::Agent;
use psa_mail_agent::config::Config;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The fixture pairs (mail, expected JSON), as tests/golden.rs lists them.
fn pairs(root: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for (mails, expected) in [
        (
            root.join("tests/fixtures/mail"),
            root.join("tests/fixtures/mail"),
        ),
        (
            root.join("examples/mail"),
            root.join("tests/fixtures/mail/examples"),
        ),
    ] {
        let mut names: Vec<_> = std::fs::read_dir(&mails)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        for eml in names {
            let json = expected.join(eml.with_extension("json").file_name().unwrap());
            out.push((eml, json));
        }
    }
    out
}

/// Pretty JSON made compact: whitespace outside strings removed.
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_str, mut escaped) = (false, false);
    for c in json.chars() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

#[test]
fn parse_prints_the_expected_ticket_for_every_fixture() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("pma-parse-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("agent.json");
    std::fs::write(
        &config,
        r#"{"state_dir": "state", "mailboxes": [{"name": "Helpdesk", "email": "helpdesk@contoso.com",
             "password_env": "PMA_PARSE_TEST_UNUSED", "add_ccs": true, "max_attachment_bytes": 65536}]}"#,
    )
    .unwrap();
    std::env::set_var("PMA_PARSE_TEST_UNUSED", "x");
    // The two notifications the golden test's helpdesk sent.
    {
        let cfg = Config::load(&config).unwrap();
        let mut agent = Agent::new(cfg.mailboxes[0].clone(), cfg.state_dir.clone()).unwrap();
        agent
            .register_sent(
                "<notify.4711.20261120093000@helpdesk.contoso.com>",
                "T20261120.0042",
            )
            .unwrap();
        agent
            .register_sent("<notify.4712.20261121101500@helpdesk.contoso.com>", "4712")
            .unwrap();
    }
    let pairs = pairs(root);
    assert!(pairs.len() >= 40, "only {} fixtures", pairs.len());
    let mut files: Vec<&Path> = Vec::new();
    for (eml, json) in &pairs {
        assert!(json.exists(), "no expectation for {}", eml.display());
        files.push(eml);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_psa-mail-agent"))
        .args(["parse", "--config"])
        .arg(&config)
        .args(&files)
        .env("PMA_PARSE_TEST_UNUSED", "x")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), pairs.len());
    for ((eml, json), line) in pairs.iter().zip(lines) {
        let want = compact(&std::fs::read_to_string(json).unwrap());
        assert_eq!(line, want, "{}", eml.display());
    }
}
