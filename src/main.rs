//! `psa-mail-agent`: a thin command line over the library. Tickets go to stdout, logs to stderr.

use psa_mail_agent::agent::{Agent, Report, Step};
use psa_mail_agent::config::{Config, Mailbox, Output};
use psa_mail_agent::{cli_log, ticket, Error, ErrorKind};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

mod cli_setup;

const USAGE: &str = "\
psa-mail-agent: turns support email into PSA tickets

Usage:
  psa-mail-agent parse [--config F] FILE...         ticket JSON per file, offline
  psa-mail-agent test  --config F [--mailbox NAME]  step-by-step diagnosis; exit 0 = healthy
  psa-mail-agent fetch --config F [--mailbox NAME] [--max N] [--no-ack]
  psa-mail-agent login --config F --mailbox NAME    device-code sign-in (MFA-capable)
  psa-mail-agent run   --config F [--shard I/N]     daemon: every active mailbox, IDLE or polling
  psa-mail-agent status --config F [--shard I/N]    each mailbox's state; exit 0 = all healthy
  psa-mail-agent setup [--config F]                 guided setup of one mailbox on a terminal
  psa-mail-agent COMMAND --help

Options for every command:
  -v, -vv, -vvv    more logging on stderr (or PMA_LOG=error|warn|info|debug|trace)
  --log-format F   text (default) or json: one JSON object per line (or PMA_LOG_FORMAT)
  -h, --help       this help
  -V, --version    the version

Exit codes: 0 ok, 1 failure, 2 usage, 3 configuration, 4 sign-in or permission refused,
            5 temporary (network, timeout, server unavailable: try again), 6 delivery failed
";

const PARSE_HELP: &str = "\
psa-mail-agent parse [--config F [--mailbox NAME]] FILE...

Builds the ticket of each .eml file offline and prints it as one JSON line per file.
With --config, the tickets are built as that mailbox's would be (its name, Add Attachments,
Add CCs, size limit, own address, and the Message-IDs registered as sent); --mailbox picks one
when the config has several. A file that cannot be read is reported on stderr and makes the
exit code 1.
";

const TEST_HELP: &str = "\
psa-mail-agent test --config F [--mailbox NAME]

Tests each mailbox (or only NAME) step by step: token (OAuth), connect, TLS, capabilities,
authenticate, select. Each step is printed as soon as it finished, with its duration; a failure
prints its cause and the fix. The token step signs in afresh with the credentials configured now
(password or client secret), never only with a cached token, and names the one refused.
NAME is matched ignoring case. Exit code 0 when every tested mailbox is healthy.
";

const FETCH_HELP: &str = "\
psa-mail-agent fetch --config F [--mailbox NAME] [--max N] [--no-ack]

Fetches the pending mail of each active mailbox (or only NAME) and prints one ticket per line
on stdout. Each batch is acknowledged on the server (mark read, move or delete, as configured)
only after its tickets were written and flushed. Without --max everything pending is taken, in
bounded batches. --no-ack leaves the server and the local state untouched.
";

const LOGIN_HELP: &str = "\
psa-mail-agent login --config F --mailbox NAME

Signs the mailbox's user in with a device code (oauth.flow \"device_code\", works with MFA):
shows a web address and a code; open the address on any device, enter the code and sign in.
The tokens are stored in the mailbox's token cache under state_dir and renewed from then on
without a person. Also useful to replace a revoked grant for the other flows.
";

const RUN_HELP: &str = "\
psa-mail-agent run --config F [--shard I/N]

Runs every active mailbox in one process until SIGTERM or SIGINT (Ctrl-C): fetches pending mail,
delivers each ticket to the configured output (stdout, spool directory or webhook), acknowledges
it on the server only after delivery, then waits for new mail with IMAP IDLE (polling every
poll_interval_secs where the server has no IDLE). Failures are retried with backoff; failures an
administrator must fix park the mailbox (retried every 30 minutes) and call notify_command /
notify_webhook. SIGHUP reloads the configuration: added, removed and changed mailboxes are
started, stopped or restarted, parked ones retried at once, the others keep running.
Each mailbox's state is written to <state_dir>/<name>.status.json (see `status`).

--shard I/N (or PMA_SHARD=I/N): serve only the active mailboxes that rendezvous hashing of
their names gives shard I of N (0 <= I < N), for N agents sharing one configuration, each with
its own state_dir (or one shared state_dir). I may be a StatefulSet pod name such as agent-2.
Going from N to N+1 agents moves about 1/(N+1) of the mailboxes, all to the new agent.

metrics.listen in the config (e.g. \"127.0.0.1:9464\"; default off) serves Prometheus metrics
at /metrics, and /healthz (the process answers) and /readyz (no mailbox parked) for probes.
";

const STATUS_HELP: &str = "\
psa-mail-agent status --config F [--shard I/N]

Prints each mailbox's state as `run` last wrote it: running, idle, failing, parked or stopped,
tickets delivered, errors, the last error with its fix, and the next attempt.
Exit code 0 when every active mailbox is running or idle in a live agent, else 1.
With --shard I/N (or PMA_SHARD), only the mailboxes of that shard of `run --shard`.
";

struct Args {
    command: String,
    files: Vec<PathBuf>,
    config: Option<PathBuf>,
    mailbox: Option<String>,
    max: Option<usize>,
    no_ack: bool,
    shard: Option<String>,
    log_format: Option<String>,
    verbosity: u8,
    help: bool,
    version: bool,
}

fn parse_args(raw: Vec<String>) -> Result<Args, String> {
    let mut args = Args {
        command: String::new(),
        files: Vec::new(),
        config: None,
        mailbox: None,
        max: None,
        no_ack: false,
        shard: None,
        log_format: None,
        verbosity: 0,
        help: false,
        version: false,
    };
    let mut it = raw.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "-h" | "--help" => args.help = true,
            "-V" | "--version" => args.version = true,
            "-v" => args.verbosity += 1,
            "-vv" => args.verbosity += 2,
            "-vvv" => args.verbosity += 3,
            "--config" | "-c" => args.config = Some(PathBuf::from(value("--config")?)),
            "--mailbox" | "-m" => args.mailbox = Some(value("--mailbox")?),
            "--max" => {
                let v = value("--max")?;
                args.max = Some(
                    v.parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("--max: {v:?} is not a positive number"))?,
                );
            }
            "--no-ack" => args.no_ack = true,
            "--shard" => args.shard = Some(value("--shard")?),
            "--log-format" => args.log_format = Some(value("--log-format")?),
            s if s.starts_with("--shard=") => args.shard = Some(s[8..].to_string()),
            s if s.starts_with("--log-format=") => args.log_format = Some(s[13..].to_string()),
            s if s.starts_with("--config=") => args.config = Some(PathBuf::from(&s[9..])),
            s if s.starts_with("--mailbox=") => args.mailbox = Some(s[10..].to_string()),
            s if s.starts_with('-') && s.len() > 1 => return Err(format!("unknown option {s}")),
            _ if args.command.is_empty() => args.command = a,
            _ if args.command == "parse" => args.files.push(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    Ok(args)
}

fn exit_code_for(e: &Error) -> u8 {
    use ErrorKind as K;
    match e.kind() {
        K::Config => 3,
        K::Delivery => 6,
        _ if e.is_temporary() => 5,
        K::LoginFailed
        | K::ImapOAuthRejected
        | K::SharedMailboxDenied
        | K::AppNotGranted
        | K::MailboxNotConnected
        | K::PlaintextRefused
        | K::Certificate
        | K::StartTlsNotOffered
        | K::ClientCertificateExpired => 4,
        k if k.is_identity_platform() => 4,
        _ => 1,
    }
}

/// Writes the commands' own output to stdout. A closed stdout (`psa-mail-agent test | head -1`)
/// is an error the command turns into exit code 6, as a failed ticket delivery is; `print!`
/// would panic instead.
fn out(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_fmt(args)?;
    stdout.flush()
}

macro_rules! outln {
    ($($arg:tt)*) => { out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Exit code 6 for a closed stdout, with a note on stderr.
fn stdout_failed(e: &std::io::Error) -> u8 {
    eprintln!("error: stdout: {e}");
    6
}

fn report_error(e: &Error) {
    eprintln!("error: {}", e.message());
    if let Some(fix) = e.fix() {
        eprintln!("  fix: {fix}");
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.version {
        return match outln!("psa-mail-agent {}", env!("CARGO_PKG_VERSION")) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => ExitCode::from(stdout_failed(&e)),
        };
    }
    let env_level = match std::env::var("PMA_LOG") {
        Ok(v) if v.trim().is_empty() => None,
        Ok(v) => match cli_log::parse_level(&v) {
            Ok(_) => Some(v),
            Err(e) => {
                eprintln!("error: PMA_LOG: {e}");
                return ExitCode::from(2);
            }
        },
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            eprintln!("error: PMA_LOG: not valid UTF-8; {}", cli_log::LEVELS_HINT);
            return ExitCode::from(2);
        }
    };
    let format = match cli_log::LogFormat::choose(
        args.log_format.as_deref(),
        std::env::var("PMA_LOG_FORMAT").ok().as_deref(),
        std::env::var_os("JOURNAL_STREAM").is_some(),
    ) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    cli_log::init_with_format(args.verbosity, env_level.as_deref(), format);
    let help = match args.command.as_str() {
        "parse" => PARSE_HELP,
        "test" => TEST_HELP,
        "fetch" => FETCH_HELP,
        "login" => LOGIN_HELP,
        "run" => RUN_HELP,
        "status" => STATUS_HELP,
        "setup" => cli_setup::HELP,
        "" => {
            if let Err(e) = out(format_args!("{USAGE}")) {
                return ExitCode::from(stdout_failed(&e));
            }
            return ExitCode::from(if args.help { 0 } else { 2 });
        }
        other => {
            eprintln!("error: unknown command {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        return match out(format_args!("{help}")) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => ExitCode::from(stdout_failed(&e)),
        };
    }
    if args.shard.is_some() && !matches!(args.command.as_str(), "run" | "status") {
        eprintln!("error: --shard applies to run and status only\n\n{help}");
        return ExitCode::from(2);
    }
    let code = match args.command.as_str() {
        "parse" => cmd_parse(&args),
        "test" => with_config(&args, cmd_test),
        "fetch" => with_config(&args, cmd_fetch),
        "login" => with_config(&args, cmd_login),
        "run" => cmd_run(&args),
        "status" => with_config(&args, cmd_status),
        "setup" => cli_setup::run(args.config.as_deref()),
        _ => unreachable!("checked above"),
    };
    ExitCode::from(code)
}

fn with_config(args: &Args, f: fn(&Args, &Config, Vec<Mailbox>) -> u8) -> u8 {
    let Some(path) = &args.config else {
        eprintln!("error: --config FILE is required\n");
        return 2;
    };
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            report_error(&e);
            return exit_code_for(&e);
        }
    };
    let mailboxes: Vec<Mailbox> = match &args.mailbox {
        // Names are unique ignoring case, and found that way.
        Some(name) => match config.mailbox(name) {
            Some(m) => vec![m.clone()],
            None => {
                let names: Vec<_> = config.mailboxes.iter().map(|m| m.name.as_str()).collect();
                eprintln!(
                    "error: no mailbox named {name:?} in {}; there are: {}",
                    path.display(),
                    names.join(", ")
                );
                return 3;
            }
        },
        None => config.mailboxes.clone(),
    };
    f(args, &config, mailboxes)
}

fn parse_options(args: &Args) -> Result<ticket::TicketOptions, Error> {
    let Some(path) = &args.config else {
        return Ok(ticket::TicketOptions::default());
    };
    // Offline: the mailbox's password (or its environment variable) is not needed to parse.
    let config = Config::load_offline(path)?;
    let mailbox = match &args.mailbox {
        Some(name) => config.mailbox(name).ok_or_else(|| {
            Error::config(
                "--mailbox",
                format!("no mailbox named {name:?} in {}", path.display()),
            )
        })?,
        None if config.mailboxes.len() == 1 => &config.mailboxes[0],
        None => {
            return Err(Error::config(
                "--mailbox",
                "the config has several mailboxes: name one",
            ))
        }
    };
    let paths = psa_mail_agent::state::StatePaths::new(&config.state_dir, &mailbox.name);
    psa_mail_agent::agent::ticket_options(mailbox, &paths)
}

fn cmd_parse(args: &Args) -> u8 {
    if args.files.is_empty() {
        eprintln!("error: parse needs at least one FILE\n\n{PARSE_HELP}");
        return 2;
    }
    let opts = match parse_options(args) {
        Ok(o) => o,
        Err(e) => {
            report_error(&e);
            return exit_code_for(&e);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut code = 0;
    for file in &args.files {
        let raw = match std::fs::read(file) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                code = 1;
                continue;
            }
        };
        match ticket::build(&raw, &opts) {
            Ok(t) => {
                if writeln!(out, "{}", t.to_json()).is_err() {
                    return 6;
                }
            }
            Err(e) => {
                eprintln!("error: {}: {}", file.display(), e.message());
                code = 1;
            }
        }
    }
    if out.flush().is_err() {
        return 6;
    }
    code
}

fn step_line(s: &Step) -> std::io::Result<()> {
    let mark = match s.ok {
        Some(true) => "ok  ",
        Some(false) => "FAIL",
        None => "skip",
    };
    outln!(
        "  [{mark}] {:<13} {:>6} ms  {}",
        s.name,
        s.duration.as_millis(),
        s.detail
    )?;
    if let Some(fix) = &s.fix {
        outln!("         fix: {fix}")?;
    }
    Ok(())
}

fn verdict(report: &Report) -> std::io::Result<()> {
    for c in &report.credentials {
        let mark = match c.state {
            psa_mail_agent::oauth::lifetimes::LifetimeState::Ok => "ok  ",
            psa_mail_agent::oauth::lifetimes::LifetimeState::Unknown => "??  ",
            _ => "WARN",
        };
        outln!("  [{mark}] {:<13} {}", c.kind.as_str(), c.detail)?;
        if let Some(fix) = &c.fix {
            outln!("         fix: {fix}")?;
        }
    }
    outln!(
        "  => {}",
        if report.healthy() {
            "healthy"
        } else {
            "NOT healthy"
        }
    )
}

fn cmd_test(_args: &Args, config: &Config, mailboxes: Vec<Mailbox>) -> u8 {
    let mut code = 0;
    for mb in mailboxes {
        let name = mb.name.clone();
        if let Err(e) = outln!("Mailbox {name}:") {
            return stdout_failed(&e);
        }
        let mut agent = match Agent::new(mb, config.state_dir.clone()) {
            Ok(a) => a,
            Err(e) => {
                report_error(&e);
                code = code.max(exit_code_for(&e));
                continue;
            }
        };
        // Each step is printed as it finishes: a server that does not answer shows as the
        // step that waits, not as silence until the timeout.
        let mut failed_output = None;
        let report = smol::block_on(async {
            let r = agent
                .test_connection_with(&mut |step| {
                    if failed_output.is_none() {
                        failed_output = step_line(step).err();
                    }
                })
                .await;
            agent.disconnect().await;
            r
        });
        if let Some(e) = failed_output.or_else(|| verdict(&report).err()) {
            return stdout_failed(&e);
        }
        if !report.healthy() {
            let c = match report.failure().and_then(|s| s.kind) {
                Some(k) => exit_code_for(&Error::new(k, "")),
                None => 1,
            };
            code = code.max(c);
        }
    }
    code
}

/// A live progress line on stderr, only when stderr is a terminal.
struct Progress {
    enabled: bool,
    start: Instant,
    messages: usize,
    bytes: usize,
}

impl Progress {
    fn new() -> Self {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            start: Instant::now(),
            messages: 0,
            bytes: 0,
        }
    }

    fn add(&mut self, mailbox: &str, messages: usize, bytes: usize) {
        self.messages += messages;
        self.bytes += bytes;
        if self.enabled {
            let secs = self.start.elapsed().as_secs_f64().max(0.001);
            eprint!(
                "\r{mailbox}: {} messages, {:.1} MB, {:.0} msg/s   ",
                self.messages,
                self.bytes as f64 / 1e6,
                self.messages as f64 / secs
            );
        }
    }

    fn done(&self) {
        if self.enabled && self.messages > 0 {
            eprintln!();
        }
    }
}

fn cmd_fetch(args: &Args, config: &Config, mailboxes: Vec<Mailbox>) -> u8 {
    if config.output != Output::Stdout {
        log::info!("fetch writes tickets to stdout; the configured output is used by `run`");
    }
    let mut code = 0;
    let stdout = std::io::stdout();
    for mb in mailboxes {
        if !mb.active && args.mailbox.is_none() {
            log::info!("mailbox {}: inactive, skipped", mb.name);
            continue;
        }
        let name = mb.name.clone();
        let mut agent = match Agent::new(mb, config.state_dir.clone()) {
            Ok(a) => a,
            Err(e) => {
                report_error(&e);
                code = code.max(exit_code_for(&e));
                continue;
            }
        };
        agent.set_read_only(args.no_ack);
        // Tickets go out as JSON, which carries no attachment bytes.
        agent.set_attachment_bytes(false);
        let mut progress = Progress::new();
        let mut remaining = args.max.unwrap_or(usize::MAX);
        let result: Result<(), Error> = smol::block_on(async {
            loop {
                if remaining == 0 {
                    break;
                }
                let batch = agent.fetch(remaining).await?;
                if batch.is_void() {
                    break;
                }
                let mut out = stdout.lock();
                let mut bytes = 0;
                for t in &batch.tickets {
                    let line = t.to_json();
                    bytes += line.len();
                    writeln!(out, "{line}")
                        .map_err(|e| Error::new(ErrorKind::Delivery, format!("stdout: {e}")))?;
                }
                out.flush()
                    .map_err(|e| Error::new(ErrorKind::Delivery, format!("stdout: {e}")))?;
                drop(out);
                progress.add(&name, batch.len(), bytes);
                remaining = remaining.saturating_sub(batch.len().max(1));
                agent.ack(&batch).await?;
            }
            agent.disconnect().await;
            Ok(())
        });
        progress.done();
        if let Err(e) = result {
            eprint!("mailbox {name}: ");
            report_error(&e);
            code = code.max(exit_code_for(&e));
        }
    }
    code
}

fn cmd_login(args: &Args, config: &Config, mailboxes: Vec<Mailbox>) -> u8 {
    if args.mailbox.is_none() || mailboxes.len() != 1 {
        eprintln!("error: login needs --mailbox NAME\n\n{LOGIN_HELP}");
        return 2;
    }
    let mb = mailboxes.into_iter().next().expect("one mailbox");
    if !mb.oauth.enabled {
        eprintln!(
            "error: mailbox {:?} does not use OAuth 2.0 (oauth.enabled is false)",
            mb.name
        );
        return 3;
    }
    let name = mb.name.clone();
    let mut agent = match Agent::new(mb, config.state_dir.clone()) {
        Ok(a) => a,
        Err(e) => {
            report_error(&e);
            return exit_code_for(&e);
        }
    };
    let tokens = agent.tokens().expect("OAuth is enabled");
    let result = smol::block_on(async {
        let prompt = tokens.device_login_begin().await?;
        // Nobody can see the code: do not wait for a sign-in that cannot happen.
        let shown = outln!("{}", prompt.message).and_then(|()| {
            outln!(
                "(open {} and enter the code {}; it is valid for {} minutes)",
                prompt.verification_uri,
                prompt.user_code,
                prompt.expires_in.as_secs() / 60
            )
        });
        if let Err(e) = shown {
            return Err(Error::new(ErrorKind::Delivery, format!("stdout: {e}")));
        }
        tokens.device_login_complete().await
    });
    match result {
        Ok(()) => {
            match outln!("Signed in: the tokens of mailbox {name:?} are stored and will be renewed automatically.") {
                Ok(()) => 0,
                Err(e) => stdout_failed(&e),
            }
        }
        Err(e) => {
            report_error(&e);
            exit_code_for(&e)
        }
    }
}

fn cmd_run(args: &Args) -> u8 {
    let Some(path) = &args.config else {
        eprintln!("error: --config FILE is required\n\n{RUN_HELP}");
        return 2;
    };
    if args.mailbox.is_some() {
        eprintln!(
            "error: run takes every active mailbox; --mailbox is not supported\n\n{RUN_HELP}"
        );
        return 2;
    }
    let shard = match shard_of(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}\n\n{RUN_HELP}");
            return 2;
        }
    };
    let options = psa_mail_agent::daemon::RunOptions { shard };
    match psa_mail_agent::daemon::run_with(path, &options) {
        Ok(()) => 0,
        Err(e) => {
            report_error(&e);
            exit_code_for(&e)
        }
    }
}

/// The shard of `--shard`, else of `PMA_SHARD` (set in a sharded agent's environment, so
/// `status` run beside it, e.g. with `kubectl exec`, looks at that agent's mailboxes only).
fn shard_of(args: &Args) -> Result<Option<psa_mail_agent::daemon::Shard>, String> {
    let (source, text) = match (&args.shard, std::env::var("PMA_SHARD").ok()) {
        (Some(s), _) => ("--shard", s.clone()),
        (None, Some(s)) if !s.trim().is_empty() => ("PMA_SHARD", s),
        _ => return Ok(None),
    };
    psa_mail_agent::daemon::Shard::parse(&text)
        .map(Some)
        .map_err(|e| format!("{source}: {e}"))
}

fn cmd_status(args: &Args, config: &Config, _mailboxes: Vec<Mailbox>) -> u8 {
    let shard = match shard_of(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}\n\n{STATUS_HELP}");
            return 2;
        }
    };
    let stdout = std::io::stdout();
    match psa_mail_agent::daemon::print_status_of(config, shard, &mut stdout.lock()) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("error: stdout: {e}");
            6
        }
    }
}
