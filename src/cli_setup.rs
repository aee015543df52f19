//! `psa-mail-agent setup`: the guided first setup of one Microsoft 365 mailbox on a terminal.
//!
//! It asks for the admin screen's fields in the screen's order (Mailbox Name, Email, Shared
//! Mailbox?, Username, Password, Application ID), finds the Directory ID from the address's
//! domain, tests the mailbox with the same steps and cause-and-fix texts as `test`, and writes
//! it into the config (a new file with mode 0600, or added to an existing config's mailboxes;
//! the password in a `password_file` beside it, mode 0600) only when the test passed or the
//! admin insists.
#![forbid(unsafe_code)]

use psa_mail_agent::agent::Agent;
use psa_mail_agent::config::{self, edit, Config, Mailbox};
use psa_mail_agent::{Error, Secret};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

pub const HELP: &str = "\
psa-mail-agent setup [--config F]

Sets up one Microsoft 365 mailbox on a terminal: asks for Mailbox Name, Email, Shared Mailbox?,
Username (for a shared mailbox: the delegate with Full Access), Password (not shown) and
Application ID, finds the Directory ID from the address's domain, then tests the mailbox step
by step as `test` does (token, connect, TLS, sign-in, folder), explaining any failure with its
cause and fix. The mailbox is written into F (default psa-mail-agent.json; created with mode
0600, or added to the mailboxes of an existing F) only when the test passed or you choose to
save anyway; the password goes into a file beside F (mode 0600) that F names in password_file.
Without a terminal it refuses: write the config file instead (README, \"Setting up a
Microsoft 365 mailbox\").

For tests only (never for a real tenant): PMA_SETUP_AUTHORITY sets oauth.authority, and
PMA_SETUP_IMAP_SERVER, PMA_SETUP_IMAP_PORT and PMA_SETUP_IMAP_CA_FILE set the incoming mail
server, its port and an extra CA file, like the keys of the same names.
";

/// The config file when `--config` is not given.
const DEFAULT_CONFIG: &str = "psa-mail-agent.json";

/// The admin stopped (end of input, Ctrl-C) or the terminal failed.
struct Stop;

/// What the admin answered.
#[derive(Default, Clone)]
struct Answers {
    name: String,
    email: String,
    shared: bool,
    username: String,
    password: Option<Secret>,
    application_id: String,
    directory_id: String,
}

/// Test-only settings from the environment (see HELP).
#[derive(Default)]
struct Overrides {
    authority: Option<String>,
    imap_server: Option<String>,
    imap_port: Option<String>,
    ca_file: Option<String>,
}

impl Overrides {
    fn from_env() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Overrides {
            authority: get("PMA_SETUP_AUTHORITY"),
            imap_server: get("PMA_SETUP_IMAP_SERVER"),
            imap_port: get("PMA_SETUP_IMAP_PORT"),
            ca_file: get("PMA_SETUP_IMAP_CA_FILE"),
        }
    }

    fn authority(&self) -> &str {
        self.authority
            .as_deref()
            .unwrap_or(config::DEFAULT_AUTHORITY)
    }
}

/// How the mailbox's password appears in its JSON.
enum PasswordIn<'a> {
    /// Inline, for the in-memory test before anything is written.
    Inline(&'a str),
    /// `password_file`, as written.
    File(&'a str),
}

/// The mailbox entry as JSON text (one key per line).
fn mailbox_json(a: &Answers, pw: PasswordIn<'_>, o: &Overrides) -> String {
    let q = edit::quote;
    let mut lines = vec![
        format!("\"name\": {}", q(&a.name)),
        format!("\"email\": {}", q(&a.email)),
    ];
    if a.shared {
        lines.push(format!("\"username\": {}", q(&a.username)));
    }
    lines.push(match pw {
        PasswordIn::Inline(p) => format!("\"password\": {}", q(p)),
        PasswordIn::File(f) => format!("\"password_file\": {}", q(f)),
    });
    let mut imap = Vec::new();
    if let Some(s) = &o.imap_server {
        imap.push(format!("\"server\": {}", q(s)));
    }
    if let Some(p) = &o.imap_port {
        imap.push(format!("\"port\": {}", p.parse::<u16>().unwrap_or(0)));
    }
    if let Some(c) = &o.ca_file {
        imap.push(format!("\"ca_file\": {}", q(c)));
    }
    if !imap.is_empty() {
        lines.push(format!("\"imap\": {{{}}}", imap.join(", ")));
    }
    let mut oauth = vec![
        "\"enabled\": true".to_string(),
        format!("\"application_id\": {}", q(&a.application_id)),
    ];
    if !a.directory_id.is_empty() {
        oauth.push(format!("\"directory_id\": {}", q(&a.directory_id)));
    }
    if a.shared {
        oauth.push("\"shared_mailbox\": true".to_string());
    }
    if let Some(auth) = &o.authority {
        oauth.push(format!("\"authority\": {}", q(auth)));
    }
    lines.push(format!("\"oauth\": {{{}}}", oauth.join(", ")));
    format!("{{\n  {}\n}}", lines.join(",\n  "))
}

// ------------------------------------------------------------------------------- the terminal

fn say(text: std::fmt::Arguments<'_>) -> Result<(), Stop> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(text)
        .and_then(|()| out.flush())
        .map_err(|_| Stop)
}

macro_rules! sayln {
    ($($arg:tt)*) => { say(format_args!("{}\n", format_args!($($arg)*))) };
}

fn read_line() -> Result<String, Stop> {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => Err(Stop),
        Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_string()),
    }
}

/// Asks `prompt`; an empty answer takes `default`.
fn ask(prompt: &str, default: &str) -> Result<String, Stop> {
    if default.is_empty() {
        say(format_args!("{prompt}: "))?;
    } else {
        say(format_args!("{prompt} [{default}]: "))?;
    }
    let answer = read_line()?.trim().to_string();
    Ok(if answer.is_empty() {
        default.to_string()
    } else {
        answer
    })
}

/// Asks until the answer passes the config's own check for `key`.
fn ask_checked(
    prompt: &str,
    default: &str,
    key: &str,
    authority: &str,
    also: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Stop> {
    loop {
        let mut answer = ask(prompt, default)?;
        if key.starts_with("oauth.") {
            answer = config::without_braces(&answer).to_string();
        }
        match config::check_field(key, &answer, authority) {
            Err(e) => explain(&e)?,
            Ok(()) => match also(&answer) {
                Some(problem) => sayln!("  {problem}")?,
                None => return Ok(answer),
            },
        }
    }
}

fn yes_no(prompt: &str, default: bool) -> Result<bool, Stop> {
    loop {
        let answer = ask(&format!("{prompt} (y/n)"), if default { "y" } else { "n" })?;
        match answer.to_ascii_lowercase().as_str() {
            "y" | "yes" => return Ok(true),
            "n" | "no" => return Ok(false),
            _ => sayln!("  please answer y or n")?,
        }
    }
}

fn explain(e: &Error) -> Result<(), Stop> {
    sayln!("  {}", e.message())?;
    if let Some(fix) = e.fix() {
        sayln!("  fix: {fix}")?;
    }
    Ok(())
}

/// The terminal's settings while echo is off, for the interrupt watcher to restore.
#[cfg(unix)]
static SAVED_TERMINAL: std::sync::Mutex<Option<rustix::termios::Termios>> =
    std::sync::Mutex::new(None);

/// Scratch directories to remove when interrupted (they may hold a token cache).
static SCRATCH: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Ctrl-C (SIGINT) or SIGTERM anywhere in the setup: echo back on, scratch removed, nothing
/// written (the config is replaced only by an atomic rename), exit code 1.
fn watch_interrupts() {
    use async_signal::{Signal, Signals};
    use futures::StreamExt;
    let Ok(mut signals) = Signals::new([Signal::Int, Signal::Term]) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = smol::block_on(signals.next());
        #[cfg(unix)]
        if let Some(saved) = SAVED_TERMINAL.lock().ok().and_then(|mut s| s.take()) {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                &saved,
            );
        }
        if let Ok(dirs) = SCRATCH.lock() {
            for d in dirs.iter() {
                let _ = std::fs::remove_dir_all(d);
            }
        }
        eprintln!("\nsetup stopped; nothing was written");
        std::process::exit(1);
    });
}

/// Reads a line with echo off (the terminal's settings are restored afterwards, and by the
/// interrupt watcher on Ctrl-C).
#[cfg(unix)]
fn read_secret(prompt: &str) -> Result<String, Stop> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).map_err(|_| Stop)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    if let Ok(mut s) = SAVED_TERMINAL.lock() {
        *s = Some(saved.clone());
    }
    tcsetattr(&stdin, OptionalActions::Now, &quiet).map_err(|_| Stop)?;
    let line = say(format_args!("{prompt}: ")).and_then(|()| read_line());
    if let Ok(mut s) = SAVED_TERMINAL.lock() {
        *s = None;
    }
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    line
}

#[cfg(not(unix))]
fn read_secret(_prompt: &str) -> Result<String, Stop> {
    Err(Stop)
}

// --------------------------------------------------------------------------------- the steps

/// The questions, in the admin screen's order; `before` holds the previous answers (after a
/// failed test) as defaults.
fn ask_all(before: &Answers, taken: &[String], o: &Overrides) -> Result<Answers, Stop> {
    let authority = o.authority();
    let mut a = before.clone();
    let taken_check = |name: &str| {
        taken.iter().any(|t| t.eq_ignore_ascii_case(name)).then(|| {
            format!("\"{name}\" is already the name of a mailbox in the config; choose another")
        })
    };
    a.name = ask_checked(
        "Mailbox Name",
        &before.name,
        "name",
        authority,
        &taken_check,
    )?;
    a.email = ask_checked("Email", &before.email, "email", authority, &|_| None)?;
    a.shared = yes_no("Shared Mailbox?", before.shared)?;
    if a.shared {
        let email = a.email.clone();
        let default = if before.username.eq_ignore_ascii_case(&email) {
            String::new()
        } else {
            before.username.clone()
        };
        a.username = ask_checked(
            "Username (the account with Full Access that signs in for the shared mailbox)",
            &default,
            "username",
            authority,
            &|u| {
                u.eq_ignore_ascii_case(&email).then(|| {
                    "a shared mailbox cannot sign in itself: give the delegate account that has \
                     Full Access to it"
                        .to_string()
                })
            },
        )?;
    } else {
        a.username = a.email.clone();
    }
    loop {
        let prompt = if before.password.is_some() {
            "Password (not shown; Enter keeps the one typed before)"
        } else {
            "Password (not shown)"
        };
        let pw = read_secret(prompt)?;
        if !pw.is_empty() {
            a.password = Some(Secret::new(pw));
            break;
        }
        if a.password.is_some() {
            break;
        }
        sayln!("  the password is required")?;
    }
    a.application_id = ask_checked(
        "Application ID",
        &before.application_id,
        "oauth.application_id",
        authority,
        &|_| None,
    )?;
    Ok(a)
}

/// A directory for the test's token cache and locks, removed afterwards: nothing of a mailbox
/// that is not saved stays behind.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch() -> Result<ScratchDir, Error> {
    let dir = std::env::temp_dir().join(format!(
        "pma-setup-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir)?;
    if let Ok(mut dirs) = SCRATCH.lock() {
        dirs.push(dir.clone());
    }
    Ok(ScratchDir(dir))
}

fn in_memory(a: &Answers, o: &Overrides, base: &Path) -> Result<Mailbox, Error> {
    let pw = a
        .password
        .as_ref()
        .map(|p| p.expose().to_string())
        .unwrap_or_default();
    Mailbox::from_json(&mailbox_json(a, PasswordIn::Inline(&pw), o), base)
}

/// Finds the Directory ID from the address's domain, or asks for it when that fails.
fn directory(a: &mut Answers, o: &Overrides, base: &Path) -> Result<(), Stop> {
    a.directory_id.clear();
    let found = match (in_memory(a, o, base), scratch()) {
        (Ok(mailbox), Ok(dir)) => match Agent::new(mailbox, dir.0.clone()) {
            Ok(mut agent) => smol::block_on(async {
                match agent.tokens() {
                    Some(tokens) => tokens.discover_tenant().await,
                    None => Ok(None),
                }
            }),
            Err(e) => Err(e),
        },
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    match found {
        Ok(Some(info)) => {
            sayln!(
                "Directory ID: {}  (the tenant of {}, found at {})",
                info.tenant_id,
                info.domain,
                info.url
            )?;
            a.directory_id = info.tenant_id;
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => {
            sayln!("Directory ID: not found from the address")?;
            explain(&e)?;
            a.directory_id = ask_checked(
                "Directory ID (the app registration's Overview: Directory (tenant) ID)",
                "",
                "oauth.directory_id",
                o.authority(),
                &|_| None,
            )?;
            Ok(())
        }
    }
}

/// Tests the mailbox as `test` does, printing each step as it finishes. True when healthy.
fn test(a: &Answers, o: &Overrides, base: &Path) -> Result<bool, Stop> {
    sayln!("Testing the mailbox:")?;
    let mailbox = match in_memory(a, o, base) {
        Ok(m) => m,
        Err(e) => {
            explain(&e)?;
            return Ok(false);
        }
    };
    let dir = match scratch() {
        Ok(d) => d,
        Err(e) => {
            explain(&e)?;
            return Ok(false);
        }
    };
    let mut agent = match Agent::new(mailbox, dir.0.clone()) {
        Ok(a) => a,
        Err(e) => {
            explain(&e)?;
            return Ok(false);
        }
    };
    let mut failed_output = false;
    let report = smol::block_on(async {
        let r = agent
            .test_connection_with(&mut |step| {
                failed_output |= crate::step_line(step).is_err();
            })
            .await;
        agent.disconnect().await;
        r
    });
    if failed_output || crate::verdict(&report).is_err() {
        return Err(Stop);
    }
    Ok(report.healthy())
}

/// `<stem>.password` beside the config, or `<stem>-2.password`… when taken.
fn password_path(dir: &Path, name: &str) -> PathBuf {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let stem = stem.trim_matches('-');
    let stem = if stem.is_empty() { "mailbox" } else { stem };
    let mut n = 1;
    loop {
        let file = if n == 1 {
            format!("{stem}.password")
        } else {
            format!("{stem}-{n}.password")
        };
        let path = dir.join(file);
        if !path.exists() {
            return path;
        }
        n += 1;
    }
}

/// Creates `path` (it must not exist) with mode 0600 on unix and writes `data`.
fn create_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Writes the mailbox: the password file, then the config (new, or the existing one with the
/// mailbox added), through a temporary file that must load as a valid config before it
/// replaces anything.
fn save(a: &Answers, o: &Overrides, path: &Path, dir: &Path) -> Result<PathBuf, Error> {
    let pw_path = password_path(dir, &a.name);
    let pw = a
        .password
        .as_ref()
        .map(|p| p.expose().to_string())
        .unwrap_or_default();
    create_private(&pw_path, format!("{pw}\n").as_bytes())
        .map_err(|e| Error::from(e).context(pw_path.display()))?;
    let file_name = pw_path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let entry = mailbox_json(a, PasswordIn::File(&file_name), o);
    let result = (|| {
        let text = if path.exists() {
            let old = std::fs::read_to_string(path)
                .map_err(|e| Error::from(e).context(path.display()))?;
            edit::append_mailbox(&old, &entry).map_err(|e| e.context(path.display()))?
        } else {
            let indented = entry.replace('\n', "\n    ");
            format!(
                "{{\n  \"state_dir\": \"state\",\n  \"output\": {{\"kind\": \"stdout\"}},\n  \
                 \"mailboxes\": [\n    {indented}\n  ]\n}}\n"
            )
        };
        let tmp = dir.join(format!(
            ".{}.setup-{}",
            path.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        create_private(&tmp, text.as_bytes()).map_err(|e| Error::from(e).context(tmp.display()))?;
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            // An existing config keeps its mode (it may be shared with a group on purpose).
            let _ = std::fs::set_permissions(&tmp, meta.permissions());
        }
        // Offline: the other mailboxes' secrets may live in the service's environment only.
        // The new mailbox's password file was just written.
        let checked = Config::load_offline(&tmp).and_then(|c| {
            c.mailbox(&a.name).map(|_| ()).ok_or_else(|| {
                Error::new(
                    psa_mail_agent::ErrorKind::Internal,
                    "the written config lacks the new mailbox",
                )
            })
        });
        if let Err(e) = checked {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::from(e).context(path.display())
        })
    })();
    match result {
        Ok(()) => Ok(pw_path),
        Err(e) => {
            let _ = std::fs::remove_file(&pw_path);
            Err(e)
        }
    }
}

/// `psa-mail-agent setup`. Exit codes as elsewhere: 0 saved, 1 not saved, 2 no terminal,
/// 3 the existing config is invalid or cannot be written.
pub fn run(config_path: Option<&Path>) -> u8 {
    let why = if cfg!(not(unix)) {
        Some("setup needs a Unix terminal (it reads the password without echo through termios)")
    } else if !std::io::stdin().is_terminal() {
        Some("setup asks its questions on a terminal, and stdin is not one")
    } else {
        None
    };
    if let Some(why) = why {
        eprintln!(
            "error: {why}\n  fix: write the mailbox into the config file instead (README.md, \
             \"Setting up a Microsoft 365 mailbox\", the second way), then check it with \
             `psa-mail-agent test --config FILE`"
        );
        return 2;
    }
    let path = config_path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let taken: Vec<String> = if path.exists() {
        match Config::load_offline(&path) {
            Ok(c) => c.mailboxes.iter().map(|m| m.name.clone()).collect(),
            Err(e) => {
                crate::report_error(&e);
                eprintln!(
                    "  setup adds to a valid config only: fix it first (psa-mail-agent test \
                     --config {})",
                    path.display()
                );
                return 3;
            }
        }
    } else {
        Vec::new()
    };
    match interact(&path, &dir, &taken) {
        Ok(code) => code,
        Err(Stop) => {
            eprintln!("setup stopped; nothing was written");
            1
        }
    }
}

fn interact(path: &Path, dir: &Path, taken: &[String]) -> Result<u8, Stop> {
    watch_interrupts();
    // The steps are printed as they finish; the agent's own log lines would repeat them.
    if log::max_level() <= log::LevelFilter::Warn {
        log::set_max_level(log::LevelFilter::Error);
    }
    let o = Overrides::from_env();
    sayln!(
        "Setting up a Microsoft 365 mailbox in {} ({}). Nothing is written before the test.",
        path.display(),
        if taken.is_empty() {
            "a new config file"
        } else {
            "added to its mailboxes"
        }
    )?;
    let base = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut answers = Answers::default();
    loop {
        answers = ask_all(&answers, taken, &o)?;
        directory(&mut answers, &o, &base)?;
        if test(&answers, &o, &base)? {
            break;
        }
        if yes_no("The test failed. Save anyway?", false)? {
            break;
        }
        if !yes_no("Change the answers and test again?", true)? {
            sayln!("Nothing was written.")?;
            return Ok(1);
        }
    }
    match save(&answers, &o, path, dir) {
        Ok(pw_path) => {
            sayln!(
                "Saved mailbox \"{}\" in {} (its password in {}, mode 0600).",
                answers.name,
                path.display(),
                pw_path.display()
            )?;
            sayln!(
                "Next: psa-mail-agent fetch --config {0}   (one round), or psa-mail-agent run \
                 --config {0}   (the agent)",
                path.display()
            )?;
            Ok(0)
        }
        Err(e) => {
            crate::report_error(&e);
            Ok(3)
        }
    }
}
