//! `psa-mail-agent test` and `fetch` tell the truth about the credentials configured now: a
//! wrong password fails although a token earned with the right one is cached, and a correct
//! password with a cached token stays healthy. The real binary against the Dovecot harness and
//! the local identity endpoint (OAuth 2.0, password flow).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::Harness;

const WRONG: &str = "Not-The-Pa55word";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_psa-mail-agent"))
}

/// A config for one OAuth mailbox whose password comes from `PMA_TRUTH_PASSWORD`.
fn write_config(h: &Harness, user: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pma-truth-{}", support::unique_user("d")));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.json");
    let json = format!(
        r#"{{"state_dir": "state", "mailboxes": [{{"name": "Helpdesk", "email": "{user}",
             "password_env": "PMA_TRUTH_PASSWORD",
             "imap": {{"server": "127.0.0.1", "port": {}, "ca_file": "{}", "timeout_secs": 10}},
             "oauth": {{"enabled": true, "application_id": "app-public",
                        "directory_id": "contoso-tenant", "authority": "{}"}}}}]}}"#,
        h.imaps_port,
        h.ca_file.display(),
        h.idp_url
    );
    std::fs::write(&path, json).unwrap();
    path
}

fn run(cmd: &str, config: &Path, password: &str) -> Output {
    bin()
        .args([cmd, "--config"])
        .arg(config)
        .env("PMA_TRUTH_PASSWORD", password)
        .env_remove("PMA_LOG")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn mail(tag: &str) -> Vec<u8> {
    format!(
        "From: customer@fabrikam.test\r\nTo: helpdesk@contoso.test\r\nSubject: {tag}\r\nMessage-ID: <{}@fabrikam.test>\r\n\r\nbody\r\n",
        support::unique_user(tag).replace('@', ".")
    )
    .into_bytes()
}

fn stat(h: &Harness, user: &str, key: &str) -> u64 {
    let body = h.idp(&format!("/_test/stats?user={user}"));
    let at = body.find(&format!("\"{key}\":")).unwrap() + key.len() + 3;
    body[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

fn unseen(h: &Harness, user: &str) -> usize {
    h.list_messages(user, "INBOX")
        .iter()
        .filter(|(_, f, _)| !f.iter().any(|x| x == "\\Seen"))
        .count()
}

#[test]
fn a_wrong_password_fails_test_although_a_token_is_cached_and_the_right_one_stays_healthy() {
    let h = Harness::get();
    let user = h.unique_user("truth");
    let config = write_config(h, &user);

    let first = run("test", &config, &h.password);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    // Tokens are cached now; a correct password with a cached token stays healthy, and the
    // check is a fresh request with the configured password.
    let before = stat(h, &user, "password");
    let again = run("test", &config, &h.password);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let out = String::from_utf8_lossy(&again.stdout);
    assert!(
        out.contains(&format!("the password of {user} accepted")),
        "{out}"
    );
    assert_eq!(stat(h, &user, "password"), before + 1, "a fresh grant");

    // The configured password is now wrong: the cached token must not make it pass.
    let wrong = run("test", &config, WRONG);
    let out = String::from_utf8_lossy(&wrong.stdout);
    assert_eq!(wrong.status.code(), Some(4), "{}", text(&wrong));
    assert!(out.contains("[FAIL] token"), "{out}");
    assert!(
        out.contains(&format!("the password of {user} was refused")),
        "the report names the credential: {out}"
    );
    assert!(out.contains("AADSTS50126"), "{out}");
    assert!(out.contains("fix: re-enter the mailbox password"), "{out}");
    assert!(out.contains("NOT healthy"), "{out}");
    assert!(!out.contains(WRONG), "never the secret: {out}");

    // The right password again: healthy.
    let fixed = run("test", &config, &h.password);
    assert_eq!(fixed.status.code(), Some(0), "{}", text(&fixed));
}

#[test]
fn a_password_changed_in_the_config_between_two_fetch_runs_fails_clearly() {
    let h = Harness::get();
    let user = h.unique_user("truth-fetch");
    h.append(&user, "INBOX", &mail("first"), &[]);
    let config = write_config(h, &user);
    let ok = run("fetch", &config, &h.password);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert_eq!(String::from_utf8_lossy(&ok.stdout).lines().count(), 1);

    // A second mail, and the password in the configuration is changed to a wrong one: the
    // cached refresh token must not carry on.
    h.append(&user, "INBOX", &mail("second"), &[]);
    let refreshes = stat(h, &user, "refresh_token");
    let failed = run("fetch", &config, WRONG);
    let err = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(4), "{}", text(&failed));
    assert!(failed.stdout.is_empty(), "{}", text(&failed));
    assert!(
        err.contains(&format!("the password of {user} was refused")),
        "{err}"
    );
    assert!(err.contains("fix: re-enter the mailbox password"), "{err}");
    assert_eq!(
        stat(h, &user, "refresh_token"),
        refreshes,
        "the token cache of the old password was not used"
    );
    assert_eq!(unseen(h, &user), 1, "the second mail waits");

    let ok = run("fetch", &config, &h.password);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("\"subject\":\"second\""));
    assert_eq!(unseen(h, &user), 0);
}

#[test]
fn a_password_changed_at_the_identity_platform_between_two_fetch_runs_fails_clearly() {
    let h = Harness::get();
    let user = h.unique_user("truth-changed");
    h.append(&user, "INBOX", &mail("before"), &[]);
    let config = write_config(h, &user);
    let ok = run("fetch", &config, &h.password);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));

    // The user changes the password in Entra ID; the agent's configuration still holds the old
    // one. Microsoft revokes the refresh tokens (AADSTS50173); the old password is refused.
    let new_password = "Changed-Pa55word!";
    h.idp(&format!(
        "/_test/set_password?user={user}&password={}",
        support::form_encode(new_password)
    ));
    h.idp(&format!("/_test/expire_access_tokens?user={user}"));
    h.append(&user, "INBOX", &mail("after"), &[]);
    let failed = run("fetch", &config, &h.password);
    let err = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(4), "{}", text(&failed));
    assert!(
        err.contains(&format!("the password of {user} was refused")),
        "{err}"
    );
    let report = run("test", &config, &h.password);
    assert_eq!(report.status.code(), Some(4), "{}", text(&report));
    assert!(String::from_utf8_lossy(&report.stdout).contains("AADSTS50126"));
    assert_eq!(unseen(h, &user), 1);

    // The administrator enters the new password: it works again.
    let ok = run("fetch", &config, new_password);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("\"subject\":\"after\""));
    h.idp(&format!("/_test/reset?user={user}"));
}

#[test]
fn the_cli_logs_connection_sign_in_batches_and_acks_at_info_and_never_a_secret() {
    let h = Harness::get();
    let user = h.unique_user("truth-log");
    h.append(&user, "INBOX", &mail("logged"), &[]);
    let config = write_config(h, &user);
    let out = bin()
        .args(["fetch", "-v", "--config"])
        .arg(&config)
        .env("PMA_TRUTH_PASSWORD", &h.password)
        .env_remove("PMA_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for wanted in [
        format!("signed in as {user} with the password (password flow)"),
        format!("mailbox Helpdesk: connected to 127.0.0.1:{}", h.imaps_port),
        format!("XOAUTH2 as {user}"),
        "mailbox Helpdesk: fetched 1 ticket(s) from 1 message(s),".to_string(),
        "mailbox Helpdesk: acknowledged 1 message(s)".to_string(),
    ] {
        assert!(
            err.lines()
                // (after the line's RFC 3339 timestamp)
                .any(|l| l.contains(" [INFO ") && l.contains(&wanted)),
            "no INFO record with {wanted:?}:\n{err}"
        );
    }
    assert!(!err.contains(&h.password), "{err}");

    // A failed sign-in reaches the user on stderr with its cause and fix.
    let failed = bin()
        .args(["fetch", "-v", "--config"])
        .arg(&config)
        .env("PMA_TRUTH_PASSWORD", WRONG)
        .env_remove("PMA_LOG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(4), "{}", text(&failed));
    assert!(err.contains("error: the password of"), "{err}");
    assert!(
        err.contains("  fix: re-enter the mailbox password"),
        "{err}"
    );
    assert!(!err.contains(WRONG), "{err}");
}
