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
            // The default authority, as oauth.cloud (default "global") gives it.
            "taken from the authority of oauth.cloud \"global\" (https://login.microsoftonline.com)"
                .to_string(),
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

/// One step of a pseudo-terminal script (see tests/support/pty_drive.py).
enum Step<'a> {
    Expect(&'a str),
    Send(&'a str),
    CtrlC,
    Touch(&'a Path),
    WaitFile(&'a Path),
}

/// Runs `setup --config CONFIG` on a pseudo-terminal through `steps`, with the test-only
/// overrides pointing at the harness. Returns the exit code and the transcript.
fn setup_on_a_terminal(h: &Harness, config: &Path, steps: &[Step<'_>]) -> (i32, String) {
    let script: String = steps
        .iter()
        .map(|s| match s {
            Step::Expect(t) => format!("expect\t{t}\n"),
            Step::Send(t) => format!("send\t{t}\n"),
            Step::CtrlC => "ctrl-c\t\n".to_string(),
            Step::Touch(p) => format!("touch\t{}\n", p.display()),
            Step::WaitFile(p) => format!("waitfile\t{}\n", p.display()),
        })
        .collect();
    let script_path = config.with_extension("pty-script");
    std::fs::write(&script_path, script).unwrap();
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/pty_drive.py");
    let out = Command::new("python3")
        .arg(driver)
        .arg(&script_path)
        .arg(env!("CARGO_BIN_EXE_psa-mail-agent"))
        .args(["setup", "--config"])
        .arg(config)
        .env("PMA_SETUP_AUTHORITY", &h.idp_url)
        .env("PMA_SETUP_IMAP_SERVER", "127.0.0.1")
        .env("PMA_SETUP_IMAP_PORT", h.imaps_port.to_string())
        .env("PMA_SETUP_IMAP_CA_FILE", &h.ca_file)
        .env_remove("PMA_LOG")
        .output()
        .expect("python3 runs tests/support/pty_drive.py");
    let transcript = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().unwrap_or(-1);
    assert_ne!(
        code,
        90,
        "{}\n--- transcript ---\n{transcript}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, transcript)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn mail(subject: &str) -> Vec<u8> {
    format!(
        "From: Customer <customer@fabrikam.test>\r\nTo: support@contoso.test\r\nSubject: {subject}\r\nMessage-ID: <{}@fabrikam.test>\r\n\r\nPlease help with {subject}.\r\n",
        support::unique_user("m").replace('@', ".")
    )
    .into_bytes()
}

fn fetch(config: &Path, mailbox: &str) -> (i32, Vec<String>) {
    let out = bin()
        .args(["fetch", "--config"])
        .arg(config)
        .args(["--mailbox", mailbox])
        // The other mailbox of an existing config reads its password from the environment.
        .env("PMA_UNUSED_PW", "unused")
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

/// The acceptance test: a new shared mailbox read by a delegate with Full Access, walked to a
/// passing test on a terminal; the config written (0600, password in a 0600 file beside it,
/// the Directory ID discovered from the domain) is what `fetch` then uses.
#[cfg(unix)]
#[test]
fn setup_walks_a_shared_mailbox_to_a_passing_test_and_fetch_uses_the_config() {
    let h = Harness::get();
    let shared = h.unique_user("setup-shared");
    let delegate = h.unique_user("setup-delegate");
    h.append(&shared, "INBOX", &mail("printer on fire"), &[]);
    h.append(&shared, "INBOX", &mail("vpn down"), &[]);
    h.grant_full_access(&shared, &delegate);
    let dir = temp_dir("shared");
    let config = dir.join("config.json");
    let (code, transcript) = setup_on_a_terminal(
        h,
        &config,
        &[
            Step::Expect("Mailbox Name: "),
            Step::Send("Shared Helpdesk"),
            Step::Expect("Email: "),
            Step::Send(&shared),
            Step::Expect("Shared Mailbox? (y/n) [n]: "),
            Step::Send("y"),
            Step::Expect("Username (the account with Full Access"),
            Step::Send(&delegate),
            Step::Expect("Password (not shown): "),
            Step::Send(&h.password),
            Step::Expect("Application ID: "),
            Step::Send("app-public"),
            Step::Expect("Directory ID: "),
            Step::Expect("=> healthy"),
            Step::Expect("Saved mailbox"),
        ],
    );
    assert_eq!(code, 0, "{transcript}");
    assert!(
        !transcript.contains(&h.password),
        "password echoed:\n{transcript}"
    );
    for part in [
        // The other answers are echoed as typed; the tenant comes from the domain.
        "Shared Helpdesk",
        "(the tenant of contoso.test, found at",
        "[ok  ] token",
        "[ok  ] authenticate",
        &format!("XOAUTH2 as {shared}"),
        "[ok  ] select",
        "2 unread",
    ] {
        assert!(
            transcript.contains(part),
            "missing {part:?} in:\n{transcript}"
        );
    }
    // The files: config and password file 0600, the password only in its file.
    assert_eq!(mode(&config), 0o600);
    let pw_file = dir.join("shared-helpdesk.password");
    assert_eq!(mode(&pw_file), 0o600);
    assert_eq!(
        std::fs::read_to_string(&pw_file).unwrap(),
        format!("{}\n", h.password)
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains(&h.password), "{text}");
    let c = psa_mail_agent::config::Config::load(&config).unwrap();
    let m = c.mailbox("Shared Helpdesk").unwrap();
    assert_eq!(m.email, shared);
    assert_eq!(m.username, delegate);
    assert!(m.oauth.enabled && m.oauth.shared_mailbox);
    assert!(
        psa_mail_agent::config::is_guid(&m.oauth.directory_id),
        "discovered Directory ID written: {text}"
    );
    // fetch with the written config: both mails become tickets.
    let (code, tickets) = fetch(&config, "Shared Helpdesk");
    assert_eq!(code, 0, "{tickets:?}");
    assert_eq!(tickets.len(), 2, "{tickets:?}");
    for subject in ["printer on fire", "vpn down"] {
        assert!(
            tickets
                .iter()
                .any(|t| t.contains(&format!("\"subject\":\"{subject}\""))
                    && t.contains("\"mailbox\":\"Shared Helpdesk\"")),
            "{subject}: {tickets:?}"
        );
    }
}

/// A failed test is explained with the texts of `test`; "save anyway?" no, change the answers,
/// and the corrected mailbox is added to an existing config, which keeps what it held.
#[cfg(unix)]
#[test]
fn setup_explains_a_failure_like_test_then_adds_the_fixed_mailbox_to_an_existing_config() {
    let h = Harness::get();
    let user = h.unique_user("setup-own");
    h.append(&user, "INBOX", &mail("first ticket"), &[]);
    let dir = temp_dir("existing");
    let config = dir.join("agent.json");
    let existing = format!(
        r#"{{
  "_comment": "kept as written",
  "state_dir": "state",
  "mailboxes": [
    {{"name": "Existing", "email": "{}", "password_env": "PMA_UNUSED_PW",
      "imap": {{"server": "127.0.0.1", "port": {}, "ca_file": "{}"}}}}
  ]
}}
"#,
        h.unique_user("other"),
        h.imaps_port,
        h.ca_file.display()
    );
    std::fs::write(&config, &existing).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let (code, transcript) = setup_on_a_terminal(
        h,
        &config,
        &[
            Step::Expect("added to its mailboxes"),
            Step::Expect("Mailbox Name: "),
            Step::Send("existing"),
            Step::Expect("already the name of a mailbox"),
            Step::Expect("Mailbox Name: "),
            Step::Send("Support"),
            Step::Expect("Email: "),
            Step::Send("support at contoso"),
            Step::Expect("is not an email address"),
            Step::Expect("Email: "),
            Step::Send(&user),
            Step::Expect("Shared Mailbox? (y/n) [n]: "),
            Step::Send(""),
            Step::Expect("Password (not shown): "),
            Step::Send("wrong-password-1"),
            Step::Expect("Application ID: "),
            Step::Send("app public"),
            Step::Expect("contains spaces"),
            Step::Expect("Application ID: "),
            Step::Send("app-public"),
            Step::Expect("[FAIL] token"),
            Step::Expect("=> NOT healthy"),
            Step::Expect("Save anyway? (y/n) [n]: "),
            Step::Send("n"),
            Step::Expect("Change the answers and test again? (y/n) [y]: "),
            Step::Send("y"),
            Step::Expect("Mailbox Name [Support]: "),
            Step::Send(""),
            Step::Expect(&format!("Email [{user}]: ")),
            Step::Send(""),
            Step::Expect("Shared Mailbox? (y/n) [n]: "),
            Step::Send(""),
            Step::Expect("Password (not shown; Enter keeps the one typed before): "),
            Step::Send(&h.password),
            Step::Expect("Application ID [app-public]: "),
            Step::Send(""),
            Step::Expect("=> healthy"),
            Step::Expect("Saved mailbox"),
        ],
    );
    assert_eq!(code, 0, "{transcript}");
    assert!(!transcript.contains(&h.password), "{transcript}");
    assert!(!transcript.contains("wrong-password-1"), "{transcript}");
    // The failure's cause and fix are those `test` prints for the same settings.
    let fix_line = transcript
        .lines()
        .skip_while(|l| !l.contains("[FAIL] token"))
        .find(|l| l.trim_start().starts_with("fix:"))
        .unwrap_or_else(|| panic!("no fix after the failure:\n{transcript}"))
        .trim()
        .to_string();
    let wrong = temp_dir("wrong");
    let wrong_config = write_config(
        &wrong,
        &format!(
            r#", "application_id": "app-public", "authority": "{}""#,
            h.idp_url
        ),
        h,
        &user,
    );
    let out = bin()
        .args(["test", "--config"])
        .arg(&wrong_config)
        .env("PMA_TEST_PASSWORD", "wrong-password-1")
        .output()
        .unwrap();
    let test_text = String::from_utf8_lossy(&out.stdout);
    assert!(
        test_text.lines().any(|l| l.trim() == fix_line),
        "setup said {fix_line:?}, test said:\n{test_text}"
    );
    // The existing config kept its text, its mode, and gained the mailbox.
    let text = std::fs::read_to_string(&config).unwrap();
    let kept = existing
        .trim_end()
        .trim_end_matches('}')
        .trim_end()
        .trim_end_matches(']');
    assert!(text.starts_with(kept.trim_end()), "{text}");
    assert_eq!(mode(&config), 0o640);
    let (code, tickets) = fetch(&config, "Support");
    assert_eq!(code, 0, "{tickets:?}\n{text}");
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    assert!(
        tickets[0].contains("\"subject\":\"first ticket\""),
        "{tickets:?}"
    );
    let c = psa_mail_agent::config::Config::load_offline(&config).unwrap();
    assert_eq!(c.mailboxes.len(), 2);
    assert_eq!(c.mailboxes[1].username, user);
}

/// Ctrl-C at the password prompt stops the setup and writes nothing.
#[cfg(unix)]
#[test]
fn setup_stopped_at_the_password_writes_nothing() {
    let h = Harness::get();
    let dir = temp_dir("stop");
    let config = dir.join("config.json");
    let (code, transcript) = setup_on_a_terminal(
        h,
        &config,
        &[
            Step::Expect("Mailbox Name: "),
            Step::Send("Stopped"),
            Step::Expect("Email: "),
            Step::Send("stopped@contoso.test"),
            Step::Expect("Shared Mailbox? (y/n) [n]: "),
            Step::Send("n"),
            Step::Expect("Password (not shown): "),
            Step::CtrlC,
            Step::Expect("nothing was written"),
        ],
    );
    assert_eq!(code, 1, "{transcript}");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".pty-script"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Without a terminal, setup refuses and points to the config file.
#[test]
fn setup_without_a_terminal_refuses() {
    let dir = temp_dir("notty");
    let config = dir.join("config.json");
    let out = bin()
        .args(["setup", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for part in ["stdin is not one", "write the mailbox into the config file"] {
        assert!(err.contains(part), "missing {part:?} in {err}");
    }
    assert!(!config.exists());
}

/// README's manual config example (the second way) is a valid config as printed.
#[test]
fn readme_manual_config_example_loads() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = &readme[readme
        .find("### The second way: the config file")
        .expect("README section")..];
    let start = section.find("```json\n").expect("json block") + 8;
    let json = &section[start..start + section[start..].find("```").unwrap()];
    let dir = temp_dir("readme");
    std::fs::write(dir.join("config.json"), json).unwrap();
    std::fs::write(dir.join("helpdesk.password"), "pw\n").unwrap();
    let c = psa_mail_agent::config::Config::load(&dir.join("config.json"))
        .unwrap_or_else(|e| panic!("{e}\n{json}"));
    let m = &c.mailboxes[0];
    assert!(m.oauth.enabled && m.oauth.shared_mailbox);
    assert_eq!(m.username, "alice@contoso.com");
}

/// Mistakes are reported when the config is read: exit code 3, the key path, the fix.
#[test]
fn config_mistakes_stop_every_command_at_load_with_the_key_path() {
    let dir = temp_dir("load");
    let config = dir.join("config.json");
    for (mailbox, path, parts) in [
        (
            r#""imap": {"encryption": "SSL/TLS"}"#,
            "mailboxes[0].imap.encryption",
            &["found string \"SSL/TLS\"", "fix: did you mean \"ssl\"?"][..],
        ),
        (
            r#""oauth": {"enabled": true, "application_id": "helpdesk-app"}"#,
            "mailboxes[0].oauth.application_id",
            &[
                "is not an Application (client) ID",
                "app registration's Overview",
            ][..],
        ),
        (
            r#""oauth": {"enabled": true, "application_id": "11111111-2222-3333-4444-555555555555",
                         "directory_id": "organizations"}"#,
            "mailboxes[0].oauth.directory_id",
            &["multi-tenant endpoint", "Directory (tenant) ID GUID"][..],
        ),
    ] {
        std::fs::write(
            &config,
            format!(
                r#"{{"mailboxes": [{{"name": "H", "email": "h@contoso.com", "password": "p", {mailbox}}}]}}"#
            ),
        )
        .unwrap();
        for cmd in ["test", "fetch", "status"] {
            let out = bin()
                .arg(cmd)
                .arg("--config")
                .arg(&config)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(3), "{cmd} {mailbox}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(&format!("{path}: ")), "{cmd}: {err}");
            for part in parts {
                assert!(err.contains(part), "{cmd}: missing {part:?} in {err}");
            }
        }
    }
    let out = bin().args(["setup", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("psa-mail-agent setup [--config F]"), "{help}");
    assert!(help.contains("For tests only"), "{help}");
}

/// The most common failure, a delegate without Full Access to the shared mailbox, is explained
/// with the fix `test` gives; once the grant is made, "test again" with the same answers (Enter
/// keeps each) passes and the mailbox is saved.
#[cfg(unix)]
#[test]
fn setup_shows_the_full_access_fix_and_passes_once_it_is_granted() {
    let h = Harness::get();
    let shared = h.unique_user("setup-ungranted");
    let delegate = h.unique_user("setup-later");
    h.append(&shared, "INBOX", &mail("waiting for access"), &[]);
    let dir = temp_dir("grant");
    let config = dir.join("config.json");
    let reached = dir.join("reached");
    let granted = dir.join("granted");
    let helper = {
        let (reached, granted) = (reached.clone(), granted.clone());
        let (shared, delegate) = (shared.clone(), delegate.clone());
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while !reached.exists() {
                assert!(
                    start.elapsed().as_secs() < 120,
                    "setup never reached the failure"
                );
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            // What `test` says for the same, still ungranted, mailbox.
            let wrong = temp_dir("ungranted");
            let path = wrong.join("config.json");
            std::fs::write(
                &path,
                format!(
                    r#"{{"state_dir": "state", "mailboxes": [{{"name": "X", "email": "{shared}",
                     "username": "{delegate}", "password_env": "PMA_TEST_PASSWORD",
                     "imap": {{"server": "127.0.0.1", "port": {}, "ca_file": "{}"}},
                     "oauth": {{"enabled": true, "application_id": "app-public",
                                "shared_mailbox": true, "authority": "{}"}}}}]}}"#,
                    h.imaps_port,
                    h.ca_file.display(),
                    h.idp_url
                ),
            )
            .unwrap();
            let out = bin()
                .args(["test", "--config"])
                .arg(&path)
                .env("PMA_TEST_PASSWORD", &h.password)
                .output()
                .unwrap();
            h.grant_full_access(&shared, &delegate);
            std::fs::write(&granted, "").unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    let (code, transcript) = setup_on_a_terminal(
        h,
        &config,
        &[
            Step::Expect("Mailbox Name: "),
            Step::Send("Shared Desk"),
            Step::Expect("Email: "),
            Step::Send(&shared),
            Step::Expect("Shared Mailbox? (y/n) [n]: "),
            Step::Send("y"),
            Step::Expect("Username (the account with Full Access"),
            Step::Send(&delegate),
            Step::Expect("Password (not shown): "),
            Step::Send(&h.password),
            Step::Expect("Application ID: "),
            Step::Send("app-public"),
            Step::Expect("[FAIL] authenticate"),
            Step::Expect("Save anyway? (y/n) [n]: "),
            Step::Touch(&reached),
            Step::WaitFile(&granted),
            Step::Send("n"),
            Step::Expect("Change the answers and test again? (y/n) [y]: "),
            Step::Send(""),
            Step::Expect("Mailbox Name [Shared Desk]: "),
            Step::Send(""),
            Step::Expect("Email ["),
            Step::Send(""),
            Step::Expect("Shared Mailbox? (y/n) [y]: "),
            Step::Send(""),
            Step::Expect(&format!(" [{delegate}]: ")),
            Step::Send(""),
            Step::Expect("Enter keeps the one typed before): "),
            Step::Send(""),
            Step::Expect("Application ID [app-public]: "),
            Step::Send(""),
            Step::Expect("=> healthy"),
            Step::Expect("Saved mailbox"),
        ],
    );
    let test_text = helper.join().unwrap();
    assert_eq!(code, 0, "{transcript}");
    let fix_line = transcript
        .lines()
        .skip_while(|l| !l.contains("[FAIL] authenticate"))
        .find(|l| l.trim_start().starts_with("fix:"))
        .unwrap_or_else(|| panic!("no fix after the failure:\n{transcript}"))
        .trim()
        .to_string();
    assert!(fix_line.contains("Full Access"), "{fix_line}");
    assert!(
        test_text.lines().any(|l| l.trim() == fix_line),
        "setup said {fix_line:?}, test said:\n{test_text}"
    );
    let (code, tickets) = fetch(&config, "Shared Desk");
    assert_eq!(code, 0, "{tickets:?}");
    assert_eq!(tickets.len(), 1, "{tickets:?}");
}
