//! Configuration loading: defaults, paths, secrets, and one test per validation rule, each
//! asserting that the message starts with the offending key path.

use psa_mail_agent::config::{
    AfterProcessing, Config, Encryption, Flow, Mailbox, Output, DEFAULT_MAX_ATTACHMENT_BYTES,
};
use psa_mail_agent::{Error, ErrorKind, Secret};
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

const BASE: &str = "/etc/pma";
/// An Application (client) ID of the right form.
const APP: &str = "11111111-2222-3333-4444-555555555555";
/// A Directory (tenant) ID of the right form.
const TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const BASIC: &str =
    r#""name": "Helpdesk", "email": "helpdesk@contoso.com", "password": "inline-pw-1""#;

fn env(name: &str) -> Option<OsString> {
    match name {
        "PMA_T_PASSWORD" => Some("env-pw-2".into()),
        "PMA_T_SECRET" => Some("env-secret-3".into()),
        "PMA_T_TOKEN" => Some("env-token-4".into()),
        "PMA_T_EMPTY" => Some("".into()),
        _ => None,
    }
}

fn load(text: &str) -> Result<Config, Error> {
    Config::from_json_with_env(text, Path::new(BASE), &env)
}

/// A config with one mailbox: the Basic one plus `extra` (starting with a comma, or empty).
fn one(extra: &str) -> String {
    format!(r#"{{"mailboxes": [{{{BASIC}{extra}}}]}}"#)
}

/// A config with one OAuth mailbox: `oauth` members and mailbox `extra`.
fn oauth(members: &str, extra: &str) -> String {
    format!(
        r#"{{"mailboxes": [{{"name": "M365", "email": "helpdesk@contoso.com",
           "username": "alice@contoso.com", "oauth": {{"enabled": true,
           "application_id": "{APP}", "directory_id": "contoso.onmicrosoft.com"{members}}}{extra}}}]}}"#
    )
}

/// Asserts `text` fails with a config error starting with `path: ` and containing `parts`.
#[track_caller]
fn fails(text: &str, path: &str, parts: &[&str]) -> Error {
    fails_as(text, ErrorKind::Config, path, parts)
}

#[track_caller]
fn fails_as(text: &str, kind: ErrorKind, path: &str, parts: &[&str]) -> Error {
    let e = load(text).expect_err(text);
    assert_eq!(e.kind(), kind, "{e}");
    assert!(
        e.message().starts_with(&format!("{path}: ")),
        "message should start with {path:?}: {e}"
    );
    for part in parts {
        assert!(e.to_string().contains(part), "missing {part:?} in: {e}");
    }
    e
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pma-config-{}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

// ------------------------------------------------------------------------------------ success

#[test]
fn defaults_are_applied() {
    let c = load(&one("")).unwrap();
    assert_eq!(c.state_dir, PathBuf::from("/etc/pma/state"));
    assert_eq!(c.output, Output::Stdout);
    let m = &c.mailboxes[0];
    assert_eq!(m.name, "Helpdesk");
    assert_eq!(m.username, "helpdesk@contoso.com");
    assert!(m.active && m.add_attachments && !m.add_ccs);
    assert_eq!(m.imap.server, "outlook.office365.com");
    assert_eq!(m.imap.port, 993);
    assert_eq!(m.imap.encryption, Encryption::Ssl);
    assert_eq!(m.imap.folder, "INBOX");
    assert_eq!(m.imap.ca_file, None);
    assert!(!m.imap.allow_plaintext);
    assert_eq!(m.imap.timeout_secs, 30);
    assert!(!m.oauth.enabled && !m.oauth.shared_mailbox);
    assert_eq!(m.oauth.flow, Flow::Password);
    assert_eq!(m.oauth.authority, "https://login.microsoftonline.com");
    assert_eq!(m.oauth.proxy, None);
    assert_eq!(m.after_processing, AfterProcessing::MarkRead);
    assert_eq!(m.max_attachment_bytes, DEFAULT_MAX_ATTACHMENT_BYTES);
    assert_eq!(m.max_attachment_bytes, 25 * 1024 * 1024);
    assert_eq!(m.batch_size, 200);
    assert_eq!(m.poll_interval_secs, 60);
}

#[test]
fn explicit_values_nulls_comments_and_enum_case() {
    let c = load(&one(
        r#", "_note": "ignored", "active": false, "add_ccs": true, "username": "bob@contoso.com",
            "imap": {"server": "imap.example.com", "port": 143, "encryption": "STARTTLS",
                     "folder": "Support", "ca_file": null, "timeout_secs": 5, "_c": 1},
            "oauth": null, "after_processing": "move", "processed_folder": "Done",
            "max_attachment_bytes": 1024, "batch_size": 1000, "poll_interval_secs": 1"#,
    ))
    .unwrap();
    let m = &c.mailboxes[0];
    assert!(!m.active && m.add_ccs);
    assert_eq!(m.username, "bob@contoso.com");
    assert_eq!(m.imap.server, "imap.example.com");
    assert_eq!(m.imap.port, 143);
    assert_eq!(m.imap.encryption, Encryption::StartTls);
    assert_eq!(m.imap.folder, "Support");
    assert_eq!(m.imap.timeout_secs, 5);
    assert!(!m.oauth.enabled);
    assert_eq!(
        m.after_processing,
        AfterProcessing::Move {
            processed_folder: "Done".into()
        }
    );
    assert_eq!(
        (m.max_attachment_bytes, m.batch_size, m.poll_interval_secs),
        (1024, 1000, 1)
    );
    let c = load(&one(r#", "after_processing": "delete""#)).unwrap();
    assert_eq!(c.mailboxes[0].after_processing, AfterProcessing::Delete);
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let dir = temp_dir("paths");
    fs::write(dir.join("pw.txt"), "file-pw-5\n").unwrap();
    fs::create_dir_all(dir.join("secrets")).unwrap();
    fs::write(dir.join("secrets/cs.txt"), "file-secret-6\r\n").unwrap();
    fs::write(dir.join("token"), "file-token-7").unwrap();
    let text = r#"{"state_dir": "var/state",
        "output": {"kind": "spool", "dir": "./spool"},
        "mailboxes": [
          {"name": "A", "email": "a@contoso.com", "password_file": "pw.txt",
           "imap": {"ca_file": "certs/ca.pem"}},
          {"name": "B", "email": "b@contoso.com", "oauth": {"enabled": true,
           "application_id": "11111111-2222-3333-4444-555555555555", "directory_id": "contoso.com", "flow": "client_credentials",
           "client_secret_file": "./secrets/cs.txt"}}]}"#;
    let c = Config::from_json_with_env(text, &dir, &env).unwrap();
    assert_eq!(c.state_dir, dir.join("var/state"));
    assert_eq!(
        c.output,
        Output::Spool {
            dir: dir.join("spool")
        }
    );
    assert_eq!(c.mailboxes[0].imap.ca_file, Some(dir.join("certs/ca.pem")));
    assert_eq!(c.mailboxes[0].password, Some(Secret::new("file-pw-5")));
    assert_eq!(
        c.mailboxes[1].oauth.client_secret,
        Some(Secret::new("file-secret-6"))
    );
    // Absolute paths stay as they are.
    let c = load(
        r#"{"state_dir": "/var/lib/pma", "output": {"kind": "spool", "dir": "/srv/spool"},
        "mailboxes": [{"name": "A", "email": "a@contoso.com", "password": "x"}]}"#,
    )
    .unwrap();
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/pma"));
    assert_eq!(
        c.output,
        Output::Spool {
            dir: PathBuf::from("/srv/spool")
        }
    );
    // Config::load resolves against the file's own directory.
    let sub = dir.join("conf");
    fs::create_dir_all(&sub).unwrap();
    fs::write(
        sub.join("agent.json"),
        r#"{"mailboxes": [{"name": "A", "email": "a@contoso.com", "password_file": "../pw.txt"}]}"#,
    )
    .unwrap();
    let c = Config::load(&sub.join("agent.json")).unwrap();
    assert_eq!(c.state_dir, sub.join("state"));
    assert_eq!(c.mailboxes[0].password, Some(Secret::new("file-pw-5")));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn secrets_resolve_and_never_show_in_debug() {
    let dir = temp_dir("secrets");
    fs::write(dir.join("token"), "file-token-7\n\n").unwrap();
    let text = r#"{"output": {"kind": "webhook", "url": "https://psa.example.com/hook", "token_file": "token"},
        "mailboxes": [
          {"name": "Inline", "email": "a@contoso.com", "password": "inline-pw-1"},
          {"name": "Env", "email": "b@contoso.com", "password_env": "PMA_T_PASSWORD"},
          {"name": "App", "email": "c@contoso.com", "oauth": {"enabled": true,
           "application_id": "11111111-2222-3333-4444-555555555555", "directory_id": "contoso.com", "flow": "client_credentials",
           "client_secret_env": "PMA_T_SECRET"}}]}"#;
    let c = Config::from_json_with_env(text, &dir, &env).unwrap();
    assert_eq!(
        c.mailboxes[0].password.as_ref().map(Secret::expose),
        Some("inline-pw-1")
    );
    assert_eq!(
        c.mailboxes[1].password.as_ref().map(Secret::expose),
        Some("env-pw-2")
    );
    assert_eq!(
        c.mailboxes[2]
            .oauth
            .client_secret
            .as_ref()
            .map(Secret::expose),
        Some("env-secret-3")
    );
    let Output::Webhook { url, token, .. } = &c.output else {
        panic!("{:?}", c.output)
    };
    assert_eq!(url, "https://psa.example.com/hook");
    assert_eq!(token.as_ref().map(Secret::expose), Some("file-token-7"));
    let debug = format!("{c:?}");
    for secret in ["inline-pw-1", "env-pw-2", "env-secret-3", "file-token-7"] {
        assert!(!debug.contains(secret), "{secret} visible in {debug}");
    }
    assert!(debug.contains("Secret(***)"));
    let c = load(r#"{"output": {"kind": "webhook", "url": "https://x.example/h?k=1", "token_env": "PMA_T_TOKEN"},
        "mailboxes": [{"name": "A", "email": "a@contoso.com", "password": "p"}]}"#)
    .unwrap();
    assert!(
        matches!(c.output, Output::Webhook { token: Some(ref t), .. } if t.expose() == "env-token-4")
    );
    // The query of a webhook URL often holds an access key.
    assert_eq!(
        format!("{:?}", c.output),
        r#"Webhook { url: "https://x.example/h?…", token: Some(Secret(***)), ca_file: None }"#
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn example_config_loads() {
    std::env::set_var("HELPDESK_PASSWORD", "example-pw-8");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.example.json");
    let c = Config::load(&path).unwrap();
    assert_eq!(c.output, Output::Stdout);
    assert_eq!(c.state_dir, path.parent().unwrap().join("state"));
    let m = c
        .mailbox("helpdesk")
        .expect("mailbox by name, case ignored");
    assert_eq!(m.email, "helpdesk@contoso.com");
    assert_eq!(m.username, "alice@contoso.com");
    assert_eq!(
        m.password.as_ref().map(Secret::expose),
        Some("example-pw-8")
    );
    assert!(m.oauth.enabled && m.oauth.shared_mailbox);
    assert_eq!(m.oauth.flow, Flow::Password);
    assert_eq!(m.xoauth2_user(), "helpdesk@contoso.com");
    assert_eq!(m.max_attachment_bytes, DEFAULT_MAX_ATTACHMENT_BYTES);
    assert!(!format!("{c:?}").contains("example-pw-8"));
}

#[test]
fn load_names_the_file() {
    let e = Config::load(Path::new("/nonexistent/pma.json")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.message().contains("/nonexistent/pma.json"), "{e}");
    let dir = temp_dir("badfile");
    let file = dir.join("c.json");
    fs::write(
        &file,
        "{\n  \"mailboxes\": [\n    {\"name\": \"A\",}\n  ]\n}",
    )
    .unwrap();
    let e = Config::load(&file).unwrap_err();
    assert_eq!(
        e.message(),
        format!(
            "{}: invalid JSON at line 3, column 18: trailing comma before '}}' is not allowed in JSON",
            file.display()
        )
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn single_mailbox_for_the_c_api() {
    let m = Mailbox::from_json(
        r#"{"name": "Helpdesk", "email": "helpdesk@contoso.com", "password": "p", "imap": {"port": 143, "encryption": "starttls"}}"#,
        Path::new(BASE),
    )
    .unwrap();
    assert_eq!(m.imap.port, 143);
    // Paths in errors are relative to the entry.
    let e = Mailbox::from_json(
        r#"{"name": "H", "email": "h@contoso.com", "password": "p", "imap": {"port": "993"}}"#,
        Path::new(BASE),
    )
    .unwrap_err();
    assert_eq!(
        e.message(),
        r#"imap.port: expected an integer 1..65535, found string "993""#
    );
    let e = Mailbox::from_json("[]", Path::new(BASE)).unwrap_err();
    assert_eq!(
        e.message(),
        "mailbox: expected a mailbox object, found an array"
    );
    // Credentials supplied afterwards (pma_set_oauth_credentials).
    let text =
        r#"{"name": "App", "email": "app@contoso.com", "oauth": {"flow": "client_credentials"}}"#;
    assert!(Mailbox::from_json(text, Path::new(BASE)).is_err());
    let mut m = Mailbox::from_json_incomplete(text, Path::new(BASE)).unwrap();
    let e = m.set_oauth_credentials(APP, TENANT, None).unwrap_err();
    assert!(
        e.message().starts_with("oauth.client_secret: required"),
        "{e}"
    );
    assert!(!m.oauth.enabled, "failed call leaves the mailbox unchanged");
    m.set_oauth_credentials(&format!("{{{APP}}}"), TENANT, Some(Secret::new("s")))
        .unwrap();
    assert!(m.oauth.enabled);
    assert_eq!(m.oauth.application_id, APP, "braces removed");
    assert_eq!(m.xoauth2_user(), "app@contoso.com");
    m.validate().unwrap();
    let e = m.set_oauth_credentials("app id", TENANT, None).unwrap_err();
    assert!(e.message().starts_with("oauth.application_id: "), "{e}");
    let e = m.set_oauth_credentials(APP, "../x", None).unwrap_err();
    assert!(e.message().starts_with("oauth.directory_id: "), "{e}");
}

#[test]
fn xoauth2_user_is_the_signed_in_user_unless_shared() {
    let c = load(&oauth("", r#", "password": "p""#)).unwrap();
    assert_eq!(c.mailboxes[0].xoauth2_user(), "alice@contoso.com");
    let c = load(&oauth(
        r#", "shared_mailbox": true"#,
        r#", "password": "p""#,
    ))
    .unwrap();
    assert_eq!(c.mailboxes[0].xoauth2_user(), "helpdesk@contoso.com");
}

// ------------------------------------------------------------------------- invalid JSON

#[test]
fn invalid_json_names_line_and_column() {
    let e = load("{\n  \"mailboxes\": [\n    {\"name\" \"A\"}\n  ]\n}").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert_eq!(
        e.message(),
        "invalid JSON at line 3, column 13: expected ':' after the key \"name\", found character '\"'"
    );
    let e = load("{\"mailboxes\": [], \"mailboxes\": []}").unwrap_err();
    assert!(
        e.message()
            .starts_with("invalid JSON at line 1, column 19: duplicate key \"mailboxes\""),
        "{e}"
    );
    let e = load("").unwrap_err();
    assert!(
        e.message()
            .starts_with("invalid JSON at line 1, column 1: "),
        "{e}"
    );
}

// ------------------------------------------------------------------------ missing required

#[test]
fn missing_required_keys() {
    fails(
        "{}",
        "mailboxes",
        &["required key missing", "non-empty array"],
    );
    fails(
        r#"{"mailboxes": [{"email": "a@contoso.com", "password": "p"}]}"#,
        "mailboxes[0].name",
        &["required key missing"],
    );
    fails(
        r#"{"mailboxes": [{"name": "A", "password": "p"}]}"#,
        "mailboxes[0].email",
        &["required key missing", "email address"],
    );
    fails(
        r#"{"mailboxes": [{"name": "A", "email": null, "password": "p"}]}"#,
        "mailboxes[0].email",
        &["required key missing"],
    );
    fails(
        r#"{"output": {"kind": "spool"}, "mailboxes": []}"#,
        "output.dir",
        &["required key missing", "directory"],
    );
    fails(
        r#"{"output": {"kind": "webhook"}, "mailboxes": []}"#,
        "output.url",
        &["required key missing"],
    );
    fails(
        r#"{"output": {"dir": "x"}, "mailboxes": []}"#,
        "output.kind",
        &["required key missing", "\"stdout\", \"spool\", \"webhook\""],
    );
}

#[test]
fn empty_mailboxes() {
    fails(
        r#"{"mailboxes": []}"#,
        "mailboxes",
        &["at least one mailbox"],
    );
}

#[test]
fn password_required_for_basic_and_password_flow() {
    fails(
        r#"{"mailboxes": [{"name": "A", "email": "a@contoso.com"}]}"#,
        "mailboxes[0].password",
        &["Basic", "password, password_env, password_file"],
    );
    fails(
        &oauth("", ""),
        "mailboxes[0].password",
        &["oauth.flow \"password\""],
    );
    // The device code flow needs none.
    load(&oauth(r#", "flow": "device_code""#, "")).unwrap();
}

#[test]
fn oauth_ids_required_when_enabled() {
    fails(
        r#"{"mailboxes": [{"name": "A", "email": "a@contoso.com", "password": "p",
            "oauth": {"enabled": true, "directory_id": "contoso.com"}}]}"#,
        "mailboxes[0].oauth.application_id",
        &["required when oauth.enabled is true"],
    );
    // The Directory ID may be left out: the tenant is discovered from the address's domain.
    let c = load(
        r#"{"mailboxes": [{"name": "A", "email": "a@contoso.com", "password": "p",
            "oauth": {"enabled": true, "application_id": "11111111-2222-3333-4444-555555555555"}}]}"#,
    )
    .unwrap();
    assert!(c.mailboxes[0].oauth.directory_id.is_empty());
    // Disabled OAuth needs no ids.
    load(&one(r#", "oauth": {"enabled": false}"#)).unwrap();
}

#[test]
fn client_credentials_without_secret() {
    fails(
        &oauth(r#", "flow": "client_credentials""#, ""),
        "mailboxes[0].oauth.client_secret",
        &["client_credentials", "client_secret_env"],
    );
    let c = load(&oauth(
        r#", "flow": "client_credentials", "client_secret": "cs""#,
        "",
    ))
    .unwrap();
    assert_eq!(c.mailboxes[0].oauth.flow, Flow::ClientCredentials);
}

#[test]
fn move_without_processed_folder() {
    fails(
        &one(r#", "after_processing": "move""#),
        "mailboxes[0].processed_folder",
        &["required key missing", "\"move\""],
    );
    fails(
        &one(r#", "processed_folder": "Done""#),
        "mailboxes[0].processed_folder",
        &["only used with after_processing \"move\""],
    );
    fails(
        &one(r#", "after_processing": "move", "processed_folder": "inbox""#),
        "mailboxes[0].processed_folder",
        &["search folder"],
    );
}

// ------------------------------------------------------------------------------ unknown keys

#[test]
fn unknown_key_at_every_level() {
    let e = fails(
        r#"{"mailboxs": []}"#,
        "mailboxs",
        &[
            "unknown key; allowed: state_dir, output, mailboxes",
            "did you mean \"mailboxes\"?",
        ],
    );
    assert_eq!(e.kind(), ErrorKind::Config);
    fails(
        r#"{"output": {"kind": "stdout", "dir": "x"}, "mailboxes": []}"#,
        "output.dir",
        &["unknown key; allowed: kind"],
    );
    fails(
        r#"{"output": {"kind": "webhook", "url": "https://x", "tokn_env": "X"}, "mailboxes": []}"#,
        "output.tokn_env",
        &[
            "allowed: kind, url, token, token_env, token_file",
            "did you mean \"token_env\"?",
        ],
    );
    fails(
        &one(r#", "nmae": "x""#),
        "mailboxes[0].nmae",
        &["unknown key; allowed: name, email, username, password,"],
    );
    let e = fails(
        &one(r#", "imap": {"prot": 993}"#),
        "mailboxes[0].imap.prot",
        &["did you mean \"port\"?"],
    );
    assert!(e.message().starts_with(
        "mailboxes[0].imap.prot: unknown key; allowed: server, port, encryption, folder, ca_file, allow_plaintext, timeout_secs"
    ));
    fails(
        &one(r#", "oauth": {"tenant_id": "x"}"#),
        "mailboxes[0].oauth.tenant_id",
        &["allowed: enabled, application_id, directory_id,"],
    );
}

// ------------------------------------------------------------------------------- wrong types

#[test]
fn wrong_type_at_every_level() {
    fails("[]", "config", &["expected an object", "found an array"]);
    fails(
        r#"{"state_dir": 5, "mailboxes": []}"#,
        "state_dir",
        &["expected a string, found number 5"],
    );
    fails(
        r#"{"output": "stdout", "mailboxes": []}"#,
        "output",
        &["expected an object", "found string \"stdout\""],
    );
    fails(
        r#"{"mailboxes": {"name": "A"}}"#,
        "mailboxes",
        &["expected a non-empty array of mailbox objects, found an object"],
    );
    fails(
        r#"{"mailboxes": ["Helpdesk"]}"#,
        "mailboxes[0]",
        &["expected a mailbox object, found string \"Helpdesk\""],
    );
    fails(
        &one(r#", "active": "yes""#),
        "mailboxes[0].active",
        &["expected true or false, found string \"yes\""],
    );
    let e = fails(
        &one(r#", "imap": {"port": "993"}"#),
        "mailboxes[0].imap.port",
        &[],
    );
    assert_eq!(
        e.message(),
        r#"mailboxes[0].imap.port: expected an integer 1..65535, found string "993""#
    );
    fails(
        &one(r#", "imap": []"#),
        "mailboxes[0].imap",
        &["expected an object", "found an array"],
    );
    fails(
        &one(r#", "oauth": {"enabled": 1}"#),
        "mailboxes[0].oauth.enabled",
        &["expected true or false, found number 1"],
    );
    fails(
        &one(r#", "batch_size": 2.5"#),
        "mailboxes[0].batch_size",
        &["expected an integer 1..1000, found number 2.5"],
    );
}

#[test]
fn wrong_type_of_a_secret_does_not_show_it() {
    let e = fails(
        r#"{"mailboxes": [{"name": "A", "email": "a@contoso.com", "password": 918273645}]}"#,
        "mailboxes[0].password",
        &["expected a string, found a number"],
    );
    assert!(!e.to_string().contains("918273645"));
    // A password pasted into password_env is not echoed either.
    let e = fails(
        r#"{"mailboxes": [{"name": "A", "email": "a@contoso.com", "password_env": "Hunter2!pass"}]}"#,
        "mailboxes[0].password_env",
        &["not an environment variable name"],
    );
    assert!(!e.to_string().contains("Hunter2"));
}

#[test]
fn numbers_out_of_range() {
    for port in ["0", "70000", "-1"] {
        fails(
            &one(&format!(r#", "imap": {{"port": {port}}}"#)),
            "mailboxes[0].imap.port",
            &[&format!(
                "expected an integer 1..65535, found number {port}"
            )],
        );
    }
    fails(
        &one(r#", "batch_size": 0"#),
        "mailboxes[0].batch_size",
        &["1..1000"],
    );
    fails(
        &one(r#", "batch_size": 1001"#),
        "mailboxes[0].batch_size",
        &["1..1000"],
    );
    fails(
        &one(r#", "poll_interval_secs": 0"#),
        "mailboxes[0].poll_interval_secs",
        &["1..86400"],
    );
    fails(
        &one(r#", "imap": {"timeout_secs": 0}"#),
        "mailboxes[0].imap.timeout_secs",
        &["1..3600"],
    );
    fails(
        &one(r#", "max_attachment_bytes": 0"#),
        "mailboxes[0].max_attachment_bytes",
        &["expected an integer 1.."],
    );
}

// ------------------------------------------------------------------------------ enum values

#[test]
fn bad_enum_values_list_the_allowed_ones() {
    fails(
        &one(r#", "imap": {"encryption": "tls"}"#),
        "mailboxes[0].imap.encryption",
        &[r#"expected one of "ssl", "starttls", "none", found string "tls""#],
    );
    fails(
        &one(r#", "oauth": {"flow": "implicit"}"#),
        "mailboxes[0].oauth.flow",
        &[r#"one of "password", "client_credentials", "device_code""#],
    );
    fails(
        &one(r#", "after_processing": "archive""#),
        "mailboxes[0].after_processing",
        &[r#"one of "mark_read", "move", "delete""#],
    );
    fails(
        r#"{"output": {"kind": "file"}, "mailboxes": []}"#,
        "output.kind",
        &[r#"one of "stdout", "spool", "webhook", found string "file""#],
    );
}

// ----------------------------------------------------------------------------------- secrets

#[test]
fn two_spellings_of_one_secret() {
    fails(
        &one(r#", "password_env": "PMA_T_PASSWORD""#),
        "mailboxes[0].password_env",
        &[
            "conflicts with mailboxes[0].password",
            "exactly one of password, password_env, password_file",
        ],
    );
    fails(
        &oauth(
            r#", "client_secret_env": "PMA_T_SECRET", "client_secret_file": "x""#,
            r#", "password": "p""#,
        ),
        "mailboxes[0].oauth.client_secret_file",
        &["conflicts with mailboxes[0].oauth.client_secret_env"],
    );
    fails(
        r#"{"output": {"kind": "webhook", "url": "https://x", "token": "t", "token_env": "PMA_T_TOKEN"}, "mailboxes": []}"#,
        "output.token_env",
        &["conflicts with output.token"],
    );
    // null is "not set", so it does not conflict.
    load(&one(r#", "password_env": null, "password_file": null"#)).unwrap();
}

#[test]
fn env_var_unset_or_empty() {
    let e = fails(
        r#"{"mailboxes": [{"name": "A", "email": "a@contoso.com", "password_env": "PMA_T_UNSET"}]}"#,
        "mailboxes[0].password_env",
        &["environment variable PMA_T_UNSET is not set"],
    );
    assert!(e.fix().unwrap().contains("PMA_T_UNSET"));
    fails(
        r#"{"mailboxes": [{"name": "A", "email": "a@contoso.com", "password_env": "PMA_T_EMPTY"}]}"#,
        "mailboxes[0].password_env",
        &["PMA_T_EMPTY is set but empty"],
    );
    fails(
        &oauth(
            r#", "flow": "client_credentials", "client_secret_env": "PMA_T_NOPE""#,
            "",
        ),
        "mailboxes[0].oauth.client_secret_env",
        &["PMA_T_NOPE is not set"],
    );
}

#[test]
fn secret_file_missing_or_empty() {
    fails(
        r#"{"mailboxes": [{"name": "A", "email": "a@contoso.com", "password_file": "secrets/pw"}]}"#,
        "mailboxes[0].password_file",
        &["cannot read /etc/pma/secrets/pw"],
    );
    let dir = temp_dir("emptyfile");
    fs::write(dir.join("pw"), "\n").unwrap();
    let e = Config::from_json_with_env(
        r#"{"mailboxes": [{"name": "A", "email": "a@contoso.com", "password_file": "pw"}]}"#,
        &dir,
        &env,
    )
    .unwrap_err();
    assert!(
        e.message().starts_with("mailboxes[0].password_file: "),
        "{e}"
    );
    assert!(e.message().ends_with("pw is empty"), "{e}");
    fs::write(dir.join("big"), vec![b'x'; 70 * 1024]).unwrap();
    let e = Config::from_json_with_env(
        r#"{"mailboxes": [{"name": "A", "email": "a@contoso.com", "password_file": "big"}]}"#,
        &dir,
        &env,
    )
    .unwrap_err();
    assert!(
        e.message().starts_with("mailboxes[0].password_file: "),
        "{e}"
    );
    assert!(e.message().contains("larger than 64 KiB"), "{e}");
    let _ = fs::remove_dir_all(&dir);
    fails(
        r#"{"mailboxes": [{"name": "A", "email": "a@contoso.com", "password": ""}]}"#,
        "mailboxes[0].password",
        &["is empty"],
    );
}

// -------------------------------------------------------------------------- cross-field rules

#[test]
fn http_authority_only_to_loopback() {
    fails(
        &oauth(
            r#", "authority": "http://login.example.com""#,
            r#", "password": "p""#,
        ),
        "mailboxes[0].oauth.authority",
        &["use https", "loopback"],
    );
    for ok in [
        "http://127.0.0.1:8080/",
        "http://localhost:9",
        "http://[::1]:8080",
    ] {
        let c = load(&oauth(
            &format!(r#", "authority": "{ok}""#),
            r#", "password": "p""#,
        ))
        .unwrap();
        assert_eq!(c.mailboxes[0].oauth.authority, ok.trim_end_matches('/'));
    }
    let c = load(&oauth(
        r#", "authority": "https://login.microsoftonline.us/""#,
        r#", "password": "p""#,
    ))
    .unwrap();
    assert_eq!(
        c.mailboxes[0].oauth.authority,
        "https://login.microsoftonline.us"
    );
    fails(
        &oauth(
            r#", "authority": "login.microsoftonline.com""#,
            r#", "password": "p""#,
        ),
        "mailboxes[0].oauth.authority",
        &["https://host"],
    );
    fails(
        &oauth(
            r#", "authority": "https://u:p@login.example.com""#,
            r#", "password": "p""#,
        ),
        "mailboxes[0].oauth.authority",
        &["not a URL"],
    );
}

#[test]
fn proxy_format() {
    let c = load(&oauth(
        r#", "proxy": "http://proxy.corp:3128""#,
        r#", "password": "p""#,
    ))
    .unwrap();
    assert_eq!(
        c.mailboxes[0].oauth.proxy.as_deref(),
        Some("http://proxy.corp:3128")
    );
    for bad in [
        "proxy.corp:3128",
        "http://proxy.corp",
        "socks5://p:1080",
        "http://p:1/x",
    ] {
        fails(
            &oauth(&format!(r#", "proxy": "{bad}""#), r#", "password": "p""#),
            "mailboxes[0].oauth.proxy",
            &["http://host:port"],
        );
    }
}

#[test]
fn webhook_http_only_to_loopback() {
    fails(
        r#"{"output": {"kind": "webhook", "url": "http://psa.example.com/h"}, "mailboxes": []}"#,
        "output.url",
        &["use https"],
    );
    load(
        r#"{"output": {"kind": "webhook", "url": "http://127.0.0.1:8000/h"},
        "mailboxes": [{"name": "A", "email": "a@contoso.com", "password": "p"}]}"#,
    )
    .unwrap();
}

#[test]
fn plaintext_refused_unless_allowed() {
    let e = fails_as(
        &one(r#", "imap": {"port": 143, "encryption": "none"}"#),
        ErrorKind::PlaintextRefused,
        "mailboxes[0].imap.allow_plaintext",
        &["unencrypted", "\"ssl\""],
    );
    assert!(e.message().contains("mailboxes[0].imap.encryption"));
    let c = load(&one(
        r#", "imap": {"port": 143, "encryption": "none", "allow_plaintext": true}"#,
    ))
    .unwrap();
    assert_eq!(c.mailboxes[0].imap.encryption, Encryption::None);
}

#[test]
fn duplicate_names_ignoring_case() {
    fails(
        r#"{"mailboxes": [
            {"name": "Helpdesk", "email": "a@contoso.com", "password": "p"},
            {"name": "HELPDESK", "email": "b@contoso.com", "password": "p"}]}"#,
        "mailboxes[1].name",
        &["already the name of mailboxes[0]", "unique"],
    );
}

#[test]
fn names_must_be_safe_file_names() {
    for (name, part) in [
        ("", "must not be empty"),
        ("a/b", "'/'"),
        ("..", "start or end"),
        ("x\\y", "allowed: letters, digits"),
        ("con", "reserved"),
        ("LPT1.txt", "reserved"),
    ] {
        fails(
            &format!(
                r#"{{"mailboxes": [{{"name": "{}", "email": "a@contoso.com", "password": "p"}}]}}"#,
                name.replace('\\', "\\\\")
            ),
            "mailboxes[0].name",
            &[part],
        );
    }
    let c = load(r#"{"mailboxes": [{"name": "Support Zürich (EU) 2", "email": "a@contoso.com", "password": "p"}]}"#)
        .unwrap();
    assert_eq!(c.mailboxes[0].name, "Support Zürich (EU) 2");
}

#[test]
fn email_must_look_like_an_address() {
    for bad in [
        "helpdesk",
        "@contoso.com",
        "a@",
        "a b@contoso.com",
        "<a@contoso.com>",
        "a@contoso..com",
    ] {
        fails(
            &format!(r#"{{"mailboxes": [{{"name": "A", "email": "{bad}", "password": "p"}}]}}"#),
            "mailboxes[0].email",
            &["is not an email address"],
        );
    }
    load(r#"{"mailboxes": [{"name": "A", "email": "user@localhost", "password": "p"}]}"#).unwrap();
}

#[test]
fn server_must_be_a_bare_host() {
    fails(
        &one(r#", "imap": {"server": "imaps://outlook.office365.com"}"#),
        "mailboxes[0].imap.server",
        &["bare host name"],
    );
    fails(
        &one(r#", "imap": {"server": "outlook.office365.com:993"}"#),
        "mailboxes[0].imap.server",
        &["imap.port"],
    );
    let c = load(&one(
        r#", "imap": {"server": "::1", "encryption": "none", "allow_plaintext": true}"#,
    ))
    .unwrap();
    assert_eq!(c.mailboxes[0].imap.server, "::1");
}

#[test]
fn shared_mailbox_needs_a_delegate_for_the_password_flow() {
    let text = r#"{"mailboxes": [{"name": "S", "email": "shared@contoso.com", "password": "p",
        "oauth": {"enabled": true, "application_id": "11111111-2222-3333-4444-555555555555", "directory_id": "contoso.com",
                  "shared_mailbox": true}}]}"#;
    fails(text, "mailboxes[0].username", &["equals email", "delegate"]);
    // App-only has no signed-in user: the same mailbox is fine with client_credentials.
    load(&text.replace(
        r#""shared_mailbox": true"#,
        r#""shared_mailbox": true, "flow": "client_credentials", "client_secret": "c""#,
    ))
    .unwrap();
}

#[test]
fn random_inputs_never_panic() {
    // Deterministic xorshift mutations of a valid config: byte changes, token splices, cuts.
    let seed_text = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.example.json"),
    )
    .unwrap();
    let tokens: [&[u8]; 16] = [
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b",",
        b":",
        b"null",
        b"true",
        b"-1",
        b"1e9",
        b"\\u",
        b"\"imap\": {",
        b"\"port\": ",
        b"\"mailboxes\": [",
        b"\xc3\xa9",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut accepted = 0;
    for _ in 0..3000 {
        let mut bytes = seed_text.as_bytes().to_vec();
        for _ in 0..(1 + next() % 4) {
            let at = (next() as usize) % (bytes.len() + 1);
            match next() % 3 {
                0 if at < bytes.len() => bytes[at] = (next() % 128) as u8,
                1 => {
                    let t = tokens[(next() as usize) % tokens.len()];
                    bytes.splice(at..at, t.iter().copied());
                }
                _ => {
                    let end = (at + (next() as usize) % 16).min(bytes.len());
                    bytes.drain(at..end);
                }
            }
        }
        if let Ok(text) = std::str::from_utf8(&bytes) {
            if Config::from_json_with_env(text, Path::new(BASE), &|_| Some("x".into())).is_ok() {
                accepted += 1;
            }
            let _ = Mailbox::from_json_incomplete(text, Path::new(BASE));
        }
    }
    // Mutations inside comments keep some inputs valid; most are refused.
    assert!(accepted > 0 && accepted < 3000, "accepted {accepted}");
}

// ------------------------------------------------------------------- daemon (`run`) settings

#[test]
fn daemon_settings_default_and_parse() {
    let c = load(&one("")).unwrap();
    assert_eq!(c.notify_command, None);
    assert!(c.notify_webhook.is_none());
    assert_eq!(c.idle_refresh_secs, 1500);

    let text = format!(
        r#"{{"notify_command": "bin/alert", "notify_webhook": "https://hooks.example.com/T/B/secret-part",
            "idle_refresh_secs": 600, "mailboxes": [{{{BASIC}}}]}}"#
    );
    let c = load(&text).unwrap();
    assert_eq!(c.notify_command, Some(PathBuf::from("/etc/pma/bin/alert")));
    assert_eq!(c.idle_refresh_secs, 600);
    let hook = c.notify_webhook.as_ref().unwrap();
    assert_eq!(hook.expose(), "https://hooks.example.com/T/B/secret-part");
    assert!(
        !format!("{c:?}").contains("secret-part"),
        "the webhook URL is a secret"
    );
    // A bare program name is looked up in PATH, not resolved against the config directory.
    let text = format!(r#"{{"notify_command": "logger", "mailboxes": [{{{BASIC}}}]}}"#);
    assert_eq!(
        load(&text).unwrap().notify_command,
        Some(PathBuf::from("logger"))
    );
}

#[test]
fn daemon_settings_are_validated() {
    let with = |members: &str| format!(r#"{{{members}, "mailboxes": [{{{BASIC}}}]}}"#);
    fails(
        &with(r#""notify_command": """#),
        "notify_command",
        &["must not be empty"],
    );
    fails(
        &with(r#""notify_command": 3"#),
        "notify_command",
        &["expected a program path"],
    );
    fails(
        &with(r#""notify_webhook": "http://hooks.example.com/x""#),
        "notify_webhook",
        &["use https"],
    );
    load(&with(r#""notify_webhook": "http://127.0.0.1:8080/x""#)).unwrap();
    fails(
        &with(r#""idle_refresh_secs": 1800"#),
        "idle_refresh_secs",
        &["1740"],
    );
    fails(
        &with(r#""idle_refresh_secs": 10"#),
        "idle_refresh_secs",
        &["60..1740"],
    );
}

#[test]
fn metrics_listen_is_off_by_default_loopback_for_a_port_and_refuses_host_names() {
    let with = |members: &str| format!(r#"{{{members}, "mailboxes": [{{{BASIC}}}]}}"#);
    assert_eq!(load(&one("")).unwrap().metrics_listen, None);
    let at = |listen: &str| {
        load(&with(&format!(r#""metrics": {{"listen": {listen}}}"#)))
            .unwrap()
            .metrics_listen
            .map(|a| a.to_string())
    };
    assert_eq!(at("null"), None);
    assert_eq!(at(r#""9464""#).as_deref(), Some("127.0.0.1:9464"));
    assert_eq!(at(r#""127.0.0.1:0""#).as_deref(), Some("127.0.0.1:0"));
    assert_eq!(at(r#""0.0.0.0:9464""#).as_deref(), Some("0.0.0.0:9464"));
    assert_eq!(at(r#""[::1]:9464""#).as_deref(), Some("[::1]:9464"));
    fails(
        &with(r#""metrics": {"listen": "localhost:9464"}"#),
        "metrics.listen",
        &["host names are not accepted", "127.0.0.1:9464"],
    );
    fails(
        &with(r#""metrics": {"listen": "70000"}"#),
        "metrics.listen",
        &["not a port"],
    );
    fails(
        &with(r#""metrics": {"listen": 9464}"#),
        "metrics.listen",
        &["expected an address"],
    );
    fails(
        &with(r#""metrics": {"port": 9464}"#),
        "metrics.port",
        &["unknown key"],
    );
}

#[test]
fn webhook_ca_file_is_resolved_and_checked() {
    let c = load(
        r#"{"output": {"kind": "webhook", "url": "https://psa.internal/hook", "ca_file": "certs/ca.pem"},
        "mailboxes": [{"name": "A", "email": "a@contoso.com", "password": "p"}]}"#,
    )
    .unwrap();
    let Output::Webhook { ca_file, .. } = &c.output else {
        panic!("{:?}", c.output)
    };
    assert_eq!(
        ca_file.as_deref(),
        Some(Path::new(BASE).join("certs/ca.pem").as_path())
    );
    let e = load(
        r#"{"output": {"kind": "webhook", "url": "https://psa.internal/hook", "ca_file": ""},
        "mailboxes": [{"name": "A", "email": "a@contoso.com", "password": "p"}]}"#,
    )
    .unwrap_err();
    assert!(e.message().starts_with("output.ca_file:"), "{e}");
    let e = load(
        r#"{"output": {"kind": "webhook", "url": "https://psa.internal/hook", "ca_file": 7},
        "mailboxes": [{"name": "A", "email": "a@contoso.com", "password": "p"}]}"#,
    )
    .unwrap_err();
    assert!(e.message().starts_with("output.ca_file:"), "{e}");
}

// ------------------------------------------------- Microsoft ids and spellings (issue 13 item 8)

#[test]
fn application_id_must_be_a_guid() {
    // Braces as the registry prints GUIDs are removed.
    let c = load(&oauth("", r#", "password": "p""#).replace(APP, &format!("{{{APP}}}"))).unwrap();
    assert_eq!(c.mailboxes[0].oauth.application_id, APP);
    // Upper case is a GUID too.
    load(&oauth("", r#", "password": "p""#).replace(APP, &APP.to_uppercase())).unwrap();
    let path = "mailboxes[0].oauth.application_id";
    for (bad, part) in [
        ("helpdesk-app", "is not an Application (client) ID"),
        ("11111111-2222-3333-4444-55555555555", "expected a GUID"),
        ("1111111122223333444455555555555g", "expected a GUID"),
        ("{11111111-2222-3333-4444-555555555555", "expected a GUID"),
        (
            "Xy8Q~abcdefghijklmnopqrstuvwxyz0123456",
            "looks like a client secret",
        ),
        ("11111111-2222-3333-4444-555555555555 ", "contains spaces"),
    ] {
        let e = fails(
            &oauth("", r#", "password": "p""#).replace(APP, bad),
            path,
            &[
                part,
                "fix: copy the Application (client) ID from the app registration's Overview",
            ],
        );
        assert!(
            !e.to_string().contains("Xy8Q~"),
            "a pasted secret is not echoed: {e}"
        );
    }
}

#[test]
fn directory_id_must_be_a_guid_or_a_domain() {
    let with = |dir: &str| {
        oauth("", r#", "password": "p""#).replace(
            r#""directory_id": "contoso.onmicrosoft.com""#,
            &format!(r#""directory_id": "{dir}""#),
        )
    };
    for good in [
        TENANT,
        "contoso.com",
        "contoso.onmicrosoft.com",
        "sub.contoso-eu.de",
    ] {
        load(&with(good)).unwrap();
    }
    let c = load(&with(&format!("{{{TENANT}}}"))).unwrap();
    assert_eq!(c.mailboxes[0].oauth.directory_id, TENANT, "braces removed");
    let path = "mailboxes[0].oauth.directory_id";
    let fix = "fix: copy the Directory (tenant) ID GUID";
    for multi in ["common", "organizations", "Consumers"] {
        fails(
            &with(multi),
            path,
            &["multi-tenant endpoint", "AADSTS50194", fix],
        );
    }
    fails(
        &with("alice@contoso.com"),
        path,
        &["is an email address", "perhaps \"contoso.com\"", fix],
    );
    for bad in [
        "contoso",
        "contoso-tenant",
        "contoso..com",
        "-contoso.com",
        "../x",
        "a_b.com",
    ] {
        fails(&with(bad), path, &["neither a Directory (tenant) ID", fix]);
    }
}

#[test]
fn test_names_are_accepted_only_with_a_loopback_authority() {
    let text = oauth(
        r#", "authority": "http://127.0.0.1:1""#,
        r#", "password": "p""#,
    )
    .replace(APP, "app-public")
    .replace("contoso.onmicrosoft.com", "contoso-tenant");
    let c = load(&text).unwrap();
    assert_eq!(c.mailboxes[0].oauth.application_id, "app-public");
    fails(
        &text.replace("http://127.0.0.1:1", "https://login.example.net"),
        "mailboxes[0].oauth.application_id",
        &["is not an Application (client) ID"],
    );
    // Even a test endpoint is never "common".
    fails(
        &text.replace("contoso-tenant", "common"),
        "mailboxes[0].oauth.directory_id",
        &["multi-tenant"],
    );
}

#[test]
fn ids_are_checked_for_the_c_api_too() {
    let text =
        r#"{"name": "App", "email": "app@contoso.com", "oauth": {"flow": "client_credentials"}}"#;
    let mut m = Mailbox::from_json_incomplete(text, Path::new(BASE)).unwrap();
    let e = m
        .set_oauth_credentials("my-app", TENANT, Some(Secret::new("s")))
        .unwrap_err();
    assert!(e.message().starts_with("oauth.application_id: "), "{e}");
    let e = m
        .set_oauth_credentials(APP, "organizations", Some(Secret::new("s")))
        .unwrap_err();
    assert!(e.message().starts_with("oauth.directory_id: "), "{e}");
    assert!(!m.oauth.enabled);
}

#[test]
fn admin_screen_spellings_of_the_encryption_get_a_hint() {
    let path = "mailboxes[0].imap.encryption";
    for (spelling, meant) in [
        ("SSL/TLS", "ssl"),
        ("TLS", "ssl"),
        ("SSL_TLS", "ssl"),
        ("Implicit TLS", "ssl"),
        ("STARTTLS ", "starttls"),
        ("TLS/STARTTLS", "starttls"),
        ("Explicit TLS", "starttls"),
        ("No encryption", "none"),
        ("plain", "none"),
    ] {
        let text = one(&format!(r#", "imap": {{"encryption": "{spelling}"}}"#));
        fails(
            &text,
            path,
            &[
                r#"expected one of "ssl", "starttls", "none""#,
                &format!("fix: did you mean \"{meant}\"?"),
            ],
        );
    }
    // What the screen's own values are in any case is accepted as is.
    for (spelling, e) in [
        ("SSL", Encryption::Ssl),
        ("StartTLS", Encryption::StartTls),
        ("None", Encryption::None),
    ] {
        let text = one(&format!(
            r#", "imap": {{"encryption": "{spelling}", "allow_plaintext": true}}"#
        ));
        assert_eq!(load(&text).unwrap().mailboxes[0].imap.encryption, e);
    }
    // Something unrelated gets no guess.
    let e = fails(&one(r#", "imap": {"encryption": "quantum"}"#), path, &[]);
    assert!(e.fix().is_none(), "{e}");
}
