//! `psa-mail-agent setup` through a pseudo-terminal, and the `test` command's answers for a
//! token endpoint out of reach (issue 13, items 6 and 8), against the Dovecot harness and the
//! local identity endpoint.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::Harness;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_psa-mail-agent"))
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pma-setup-{tag}-{}", support::unique_user("d")));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A loopback port nobody listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn write_config(dir: &Path, oauth: &str, h: &Harness, user: &str) -> PathBuf {
    let path = dir.join("config.json");
    let json = format!(
        r#"{{"state_dir": "state", "mailboxes": [{{"name": "Helpdesk", "email": "{user}",
             "password_env": "PMA_TEST_PASSWORD",
             "imap": {{"server": "127.0.0.1", "port": {}, "ca_file": "{}", "timeout_secs": 5}},
             "oauth": {{"enabled": true {oauth}}}}}]}}"#,
        h.imaps_port,
        h.ca_file.display()
    );
    std::fs::write(&path, json).unwrap();
    path
}

/// `test` with a token endpoint out of reach: the token step names where the host came from,
/// DNS and oauth.proxy, and the IMAP server is still probed (connect, TLS, capabilities).
#[test]
fn unreachable_token_endpoint_still_probes_the_mail_server() {
    let h = Harness::get();
    let user = h.unique_user("unreach");
    let port = closed_port();
    let authority = format!("http://127.0.0.1:{port}");
    for (oauth, source, proxy) in [
        (
            format!(
                r#", "application_id": "app-public", "directory_id": "contoso-tenant",
                   "authority": "{authority}""#
            ),
            format!("taken from oauth.authority {authority}"),
            "set oauth.proxy to",
        ),
        (
            format!(
                r#", "application_id": "11111111-2222-3333-4444-555555555555",
                   "directory_id": "contoso.test", "proxy": "{authority}""#
            ),
            "taken from the default authority https://login.microsoftonline.com".to_string(),
            "is reached through oauth.proxy",
        ),
    ] {
        let dir = temp_dir("unreach");
        let config = write_config(&dir, &oauth, h, &user);
        let out = bin()
            .args(["test", "--config"])
            .arg(&config)
            .env("PMA_TEST_PASSWORD", &h.password)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(5), "temporary: {text}");
        for line in [
            "[FAIL] token",
            "[ok  ] connect",
            "[ok  ] tls",
            "[ok  ] capabilities",
            "[skip] authenticate",
            "[skip] select",
            "NOT healthy",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        for part in [source.as_str(), "DNS", proxy, "cannot reach"] {
            if part == "cannot reach" && proxy.contains("through") {
                continue;
            }
            assert!(text.contains(part), "missing {part:?} in:\n{text}");
        }
    }
}
