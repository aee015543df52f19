//! What a new user runs into in the first hour, each found by trying the product as one would:
//! the real binary (and the example configuration) against the Dovecot harness.

mod support;

use psa_mail_agent::config::{Config, Output};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output as ProcessOutput, Stdio};
use support::Harness;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_psa-mail-agent"));
    c.env_remove("PMA_LOG");
    c
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pma-newuser-{tag}-{}", support::unique_user("d")));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A Basic-auth config for `user` in a fresh directory (mode 0600), password from
/// `PMA_TEST_PASSWORD`; `extra` goes into the mailbox object.
fn basic_config(h: &Harness, user: &str, tag: &str, extra: &str) -> PathBuf {
    let dir = temp_dir(tag);
    let path = dir.join("config.json");
    let json = format!(
        r#"{{"state_dir": "state", "mailboxes": [{{"name": "Helpdesk", "email": "{user}",
             "password_env": "PMA_TEST_PASSWORD" {extra},
             "imap": {{"server": "127.0.0.1", "port": {}, "ca_file": "{}"}}}}]}}"#,
        h.imaps_port,
        h.ca_file.display()
    );
    write_mode(&path, &json, 0o600);
    path
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = mode;
}

fn show(o: &ProcessOutput) -> String {
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

#[cfg(unix)]
#[test]
fn the_state_directory_is_private_from_the_first_file_on() {
    use std::os::unix::fs::PermissionsExt;
    let h = Harness::get();
    let user = h.unique_user("nu-mode");
    let config = basic_config(h, &user, "mode", "");
    let out = bin()
        .args(["test", "--config"])
        .arg(&config)
        .env("PMA_TEST_PASSWORD", &h.password)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let state = config.parent().unwrap().join("state");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700, "state directory");
    assert_eq!(mode(&state.join("Helpdesk.lock")), 0o600, "lock file");
}

/// Runs `args` with stdout a pipe whose reading end is already closed, as `| head -1` leaves
/// it once head has its line.
#[cfg(unix)]
fn with_closed_stdout(args: &[&str], envs: &[(&str, &str)]) -> ProcessOutput {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = bin();
    cmd.args(args).stdout(writer).stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    drop(cmd); // our copy of the pipe's writing end
    child.wait_with_output().unwrap()
}

#[cfg(unix)]
#[test]
fn every_command_exits_6_without_a_panic_when_stdout_is_closed() {
    let h = Harness::get();
    let user = h.unique_user("nu-pipe");
    h.append(&user, "INBOX", &mail("pipe"), &[]);
    let config = basic_config(h, &user, "pipe", "");
    let config = config.to_str().unwrap();
    let eml = root().join("examples/mail/01-plain-new-request.eml");
    let eml = eml.to_str().unwrap();
    let oauth_user = h.unique_user("nu-pipe-login");
    let oauth_dir = temp_dir("pipe-login");
    let oauth_config = oauth_dir.join("config.json");
    write_mode(
        &oauth_config,
        &format!(
            r#"{{"state_dir": "state", "mailboxes": [{{"name": "Login", "email": "{oauth_user}",
                 "imap": {{"server": "127.0.0.1", "port": {}, "ca_file": "{}"}},
                 "oauth": {{"enabled": true, "application_id": "app-public",
                            "directory_id": "contoso-tenant", "flow": "device_code",
                            "authority": "{}"}}}}]}}"#,
            h.imaps_port,
            h.ca_file.display(),
            h.idp_url
        ),
        0o600,
    );
    let oauth_config = oauth_config.to_str().unwrap();
    let pw = [("PMA_TEST_PASSWORD", h.password.as_str())];
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: Vec<(Vec<&str>, Env<'_>)> = vec![
        (vec!["--version"], &[]),
        (vec!["--help"], &[]),
        (vec!["test", "--help"], &[]),
        (vec!["parse", eml], &[]),
        (vec!["test", "--config", config], &pw),
        (vec!["status", "--config", config], &pw),
        (vec!["fetch", "--config", config], &pw),
        (
            vec!["login", "--config", oauth_config, "--mailbox", "Login"],
            &[],
        ),
    ];
    for (args, envs) in cases {
        let out = with_closed_stdout(&args, envs);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {}", show(&out));
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // fetch could not deliver its ticket: nothing was acknowledged.
    let unseen = h
        .list_messages(&user, "INBOX")
        .iter()
        .filter(|(_, f, _)| !f.iter().any(|x| x == "\\Seen"))
        .count();
    assert_eq!(unseen, 1);
}

#[test]
fn the_example_configuration_states_the_real_defaults() {
    let path = root().join("examples/config.example.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let base = path.parent().unwrap();
    let env = |_: &str| Some(std::ffi::OsString::from("x"));
    let example = Config::from_json_with_env(&text, base, &env).unwrap();
    let minimal = Config::from_json_with_env(
        r#"{"mailboxes": [{"name": "Helpdesk", "email": "helpdesk@contoso.com", "password": "x"}]}"#,
        base,
        &env,
    )
    .unwrap();
    // Where the example says which values are the defaults.
    for stated in [
        "(default ./state)",
        "(default stdout)",
        "\"_notify_command\": \"(default none)",
        "\"_notify_webhook\": \"(default none)",
        "(default 1500)",
        "Status (default true), Add Attachments to Ticket (default true), Add CCs to Tickets (default false)",
        "\"_comment\": \"Defaults as shown. encryption:",
        "flow: password (default;",
        "authority (default as shown)",
        "\"_after_processing\": \"(default mark_read)",
        "\"_limits\": \"Defaults as shown:",
        "\"_keep_raw\": \"(default false)",
    ] {
        assert!(text.contains(stated), "the example no longer says {stated:?}");
    }
    assert_eq!(example.state_dir, minimal.state_dir);
    assert!(example.output == Output::Stdout && minimal.output == Output::Stdout);
    assert_eq!(example.notify_command, minimal.notify_command);
    assert_eq!(example.notify_webhook, minimal.notify_webhook);
    assert_eq!(example.idle_refresh_secs, minimal.idle_refresh_secs);
    let (e, m) = (&example.mailboxes[0], &minimal.mailboxes[0]);
    assert_eq!(
        (e.active, e.add_attachments, e.add_ccs),
        (m.active, m.add_attachments, m.add_ccs)
    );
    assert_eq!(e.imap.server, m.imap.server);
    assert_eq!(e.imap.port, m.imap.port);
    assert_eq!(e.imap.encryption, m.imap.encryption);
    assert_eq!(e.imap.folder, m.imap.folder);
    assert_eq!(e.imap.ca_file, m.imap.ca_file);
    assert_eq!(e.imap.allow_plaintext, m.imap.allow_plaintext);
    assert_eq!(e.imap.timeout_secs, m.imap.timeout_secs);
    assert_eq!(e.oauth.flow, m.oauth.flow);
    assert_eq!(e.oauth.authority, m.oauth.authority);
    assert_eq!(e.after_processing, m.after_processing);
    assert_eq!(e.max_attachment_bytes, m.max_attachment_bytes);
    assert_eq!(e.batch_size, m.batch_size, "batch_size");
    assert_eq!(e.poll_interval_secs, m.poll_interval_secs);
    assert_eq!(e.keep_raw, m.keep_raw);
    // The README's table says the same for the values a new user tunes first.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains(&format!(
        "| `.batch_size` | — | {} messages per UID FETCH",
        m.batch_size
    )));
}

#[cfg(unix)]
#[test]
fn a_group_readable_config_warns_exactly_when_it_holds_a_secret_as_the_readme_says() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains("A config file that holds a secret inline"),
        "README states the rule this test checks"
    );
    let eml = root().join("examples/mail/01-plain-new-request.eml");
    let dir = temp_dir("perm");
    let cases = [
        (r#""password": "inline-secret""#, "", true),
        (r#""password_env": "PMA_NU_UNSET_VARIABLE""#, "", false),
        (
            r#""password_env": "PMA_NU_UNSET_VARIABLE""#,
            r#", "notify_webhook": "https://hooks.example.com/services/KEY""#,
            true,
        ),
    ];
    for (i, (secret, top, warns)) in cases.into_iter().enumerate() {
        let path = dir.join(format!("c{i}.json"));
        write_mode(
            &path,
            &format!(
                r#"{{"mailboxes": [{{"name": "Helpdesk", "email": "helpdesk@contoso.test", {secret}}}]{top}}}"#
            ),
            0o644,
        );
        let out = bin()
            .args(["parse", "--config"])
            .arg(&path)
            .arg(&eml)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.contains("readable by group or others"),
            warns,
            "{secret} {top}: {err}"
        );
    }
}

#[test]
fn an_invalid_pmalog_is_an_error_naming_the_levels() {
    let eml = root().join("examples/mail/01-plain-new-request.eml");
    let out = bin()
        .arg("parse")
        .arg(&eml)
        .env("PMA_LOG", "verbose")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(err.contains("PMA_LOG"), "{err}");
    assert!(
        err.contains("error, warn, info, debug, trace, off"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    let ok = bin()
        .arg("parse")
        .arg(&eml)
        .env("PMA_LOG", "Debug")
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", show(&ok));
}

#[test]
fn parse_with_a_config_is_offline_and_finds_the_mailbox_ignoring_case() {
    let dir = temp_dir("offline");
    let path = dir.join("config.json");
    write_mode(
        &path,
        r#"{"mailboxes": [
             {"name": "Sales", "email": "sales@contoso.test", "password_file": "no-such-file"},
             {"name": "Helpdesk", "email": "helpdesk@contoso.test",
              "password_env": "PMA_NU_NEVER_SET", "add_attachments": false}]}"#,
        0o600,
    );
    let eml = root().join("examples/mail/03-attachments.eml");
    let out = bin()
        .args(["parse", "--config"])
        .arg(&path)
        .args(["--mailbox", "HELPDESK"])
        .arg(&eml)
        .env_remove("PMA_NU_NEVER_SET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let ticket = String::from_utf8_lossy(&out.stdout);
    assert!(ticket.contains("\"mailbox\":\"Helpdesk\""), "{ticket}");
    assert!(
        ticket.contains("\"attachments\":[]"),
        "its switches: {ticket}"
    );
}

#[test]
fn the_mailbox_option_ignores_case_for_test_and_fetch() {
    let h = Harness::get();
    let user = h.unique_user("nu-case");
    h.append(&user, "INBOX", &mail("case"), &[]);
    let config = basic_config(h, &user, "case", "");
    for cmd in ["test", "fetch"] {
        let out = bin()
            .args([cmd, "--config"])
            .arg(&config)
            .args(["--mailbox", "helpDESK"])
            .env("PMA_TEST_PASSWORD", &h.password)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{cmd}: {}", show(&out));
    }
}

#[test]
fn test_shows_each_step_as_it_finishes() {
    // A server that accepts the connection and then says nothing: the TLS step waits for it.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let dir = temp_dir("progress");
    let path = dir.join("config.json");
    write_mode(
        &path,
        &format!(
            r#"{{"state_dir": "state", "mailboxes": [{{"name": "Silent", "email": "silent@contoso.test",
                 "password": "x", "imap": {{"server": "127.0.0.1", "port": {port}, "timeout_secs": 60}}}}]}}"#
        ),
        0o600,
    );
    let mut child = bin()
        .args(["test", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (conn, _) = server.accept().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, "Mailbox Silent:");
    let connect = lines.next().unwrap().unwrap();
    assert!(connect.contains("[ok  ] connect"), "{connect}");
    // The connect step is on screen while the TLS step still waits for the silent server.
    assert!(
        child.try_wait().unwrap().is_none(),
        "the steps were printed only at the end"
    );
    drop(conn);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert!(rest.iter().any(|l| l.contains("[FAIL] tls")), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("NOT healthy")), "{rest:?}");
    assert_ne!(status.code(), Some(0));
}
