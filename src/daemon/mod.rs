//! `psa-mail-agent run`: every active mailbox of the configuration in one process, for months
//! unattended.
//!
//! One smol executor on the main thread runs one task per mailbox, each with its own agent
//! (connection, token provider, state, lock); tasks only await network and timers, so one slow
//! or failing mailbox never stalls another. Each mailbox fetches what is pending, delivers it to
//! the configured output, acknowledges it, then waits for new mail with IMAP IDLE (or polling).
//! Failures are retried with exponential backoff and jitter (1 s up to 5 min); failures an
//! administrator must fix (sign-in refused, grant revoked, missing permission) park the mailbox
//! with a clear status, retry every 30 minutes and call the notification hook.
//!
//! Signals (Unix): SIGTERM and SIGINT let every mailbox finish its current delivery and exit
//! within a few seconds; SIGHUP reloads the configuration, starting, stopping or restarting only
//! the mailboxes that were added, removed or changed (and retrying parked ones at once).
//! Windows: Ctrl-C (or the service manager's stop, see examples/windows-service.md) stops.

pub mod metrics;
pub mod metrics_server;
pub mod notify;
pub mod shard;
pub mod status;
mod worker;

pub use shard::Shard;
pub use worker::needs_admin;

use crate::config::{Config, Mailbox, Output};
use crate::delivery::Sink;
use crate::error::{Error, ErrorKind, Result};
use futures::{FutureExt, StreamExt};
use notify::Notifier;
use sha2::{Digest, Sha256};
use smol::LocalExecutor;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

/// How long a stopping mailbox may take to finish its current delivery.
pub const STOP_GRACE: Duration = Duration::from_secs(8);

/// Connection setups (TCP, TLS, token, sign-in, SELECT) running at once at most: 200 mailboxes
/// starting together must not look like an attack to the server or the identity platform.
pub const CONNECT_CONCURRENCY: usize = 8;

/// What every mailbox task shares.
pub(crate) struct Shared {
    pub(crate) connect_gate: Rc<smol::lock::Semaphore>,
    pub(crate) sink: Sink,
    pub(crate) state_dir: PathBuf,
    pub(crate) idle_refresh: Duration,
    pub(crate) notifier: Notifier,
}

/// Completes when its [`StopHandle`] is dropped.
#[derive(Clone)]
pub(crate) struct Stop(smol::channel::Receiver<()>);

struct StopHandle(#[allow(dead_code)] smol::channel::Sender<()>);

fn stop_pair() -> (StopHandle, Stop) {
    let (tx, rx) = smol::channel::bounded(1);
    (StopHandle(tx), Stop(rx))
}

impl Stop {
    pub(crate) fn is_set(&self) -> bool {
        self.0.is_closed()
    }

    pub(crate) async fn wait(&self) {
        while self.0.recv().await.is_ok() {}
    }
}

struct Running {
    stop: StopHandle,
    task: smol::Task<()>,
    fingerprint: [u8; 32],
    parked: Rc<Cell<bool>>,
}

/// Everything that, when changed, restarts a mailbox (secrets included, hashed, never kept).
fn fingerprint(m: &Mailbox) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(format!("{m:?}").as_bytes());
    for s in [&m.password, &m.oauth.client_secret].into_iter().flatten() {
        h.update([0u8]);
        h.update(s.expose().as_bytes());
    }
    h.finalize().into()
}

/// What all mailboxes share; a change of any of it restarts them all.
#[derive(PartialEq)]
struct Settings {
    state_dir: PathBuf,
    output: Output,
    idle_refresh_secs: u64,
    notify_command: Option<PathBuf>,
    notify_webhook: Option<crate::secret::Secret>,
}

impl Settings {
    fn of(c: &Config) -> Settings {
        Settings {
            state_dir: c.state_dir.clone(),
            output: c.output.clone(),
            idle_refresh_secs: c.idle_refresh_secs,
            notify_command: c.notify_command.clone(),
            notify_webhook: c.notify_webhook.clone(),
        }
    }

    fn shared(&self) -> Result<Rc<Shared>> {
        Ok(Rc::new(Shared {
            connect_gate: Rc::new(smol::lock::Semaphore::new(CONNECT_CONCURRENCY)),
            sink: Sink::new(&self.output)?,
            state_dir: self.state_dir.clone(),
            idle_refresh: Duration::from_secs(self.idle_refresh_secs),
            notifier: Notifier {
                command: self.notify_command.clone(),
                webhook: self.notify_webhook.clone(),
            },
        }))
    }
}

/// How `run` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Serve only the mailboxes rendezvous hashing gives this shard (`--shard I/N`).
    pub shard: Option<Shard>,
}

/// Runs every active mailbox of the configuration at `config_path` until SIGTERM or SIGINT.
/// Returns an error only when it cannot start (configuration, output, signals).
pub fn run(config_path: &Path) -> Result<()> {
    run_with(config_path, &RunOptions::default())
}

/// [`run`] with options: a shard of the mailboxes.
pub fn run_with(config_path: &Path, options: &RunOptions) -> Result<()> {
    let signals = signals()?;
    let config = Config::load(config_path)?;
    let _run_lock = run_lock(&config.state_dir, options.shard)?;
    let ex = Rc::new(LocalExecutor::new());
    let _metrics = match config.metrics_listen {
        Some(addr) => Some(serve_metrics(&ex, addr)?),
        None => None,
    };
    smol::block_on(ex.run(supervise(
        ex.clone(),
        config_path,
        config,
        signals,
        options.shard,
    )))
}

/// Binds `metrics.listen` (failing the start when it cannot) and serves it on `ex`.
fn serve_metrics(
    ex: &Rc<LocalExecutor<'static>>,
    addr: std::net::SocketAddr,
) -> Result<smol::Task<()>> {
    let cannot = |e: std::io::Error| {
        Error::new(
            ErrorKind::Io,
            format!("metrics.listen: cannot listen on {addr}: {e}"),
        )
        .with_fix("choose a free port (or another address) for metrics.listen, or remove it")
    };
    let std_listener = std::net::TcpListener::bind(addr).map_err(cannot)?;
    let bound = std_listener.local_addr().map_err(cannot)?;
    let listener = smol::net::TcpListener::try_from(std_listener).map_err(cannot)?;
    log::info!(
        target: "psa_mail_agent::daemon::metrics",
        event = "metrics_listening";
        "metrics: serving http://{bound}/metrics, /healthz and /readyz"
    );
    Ok(ex.spawn(metrics_server::serve(
        ex.clone(),
        listener,
        metrics::global(),
    )))
}

/// One `run` per state directory (and shard): a second would fight over every mailbox's lock
/// and overwrite the first one's status files with its own failures. Shards of one
/// configuration may share a state directory (on shared storage, a moving mailbox's state then
/// moves with it): each holds its own lock, and each mailbox's own lock keeps two shards from
/// serving it at once while they are restarted with a new shard count.
fn run_lock(state_dir: &Path, shard: Option<Shard>) -> Result<std::fs::File> {
    std::fs::create_dir_all(state_dir).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("create {}: {e}", state_dir.display()),
        )
    })?;
    let path = match shard {
        None => state_dir.join("run.lock"),
        Some(s) => state_dir.join(format!("run.shard-{}.lock", s.index)),
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::new(ErrorKind::Io, format!("lock {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::new(
            ErrorKind::Config,
            format!(
                "another `psa-mail-agent run`{} already uses the state directory {}",
                shard
                    .map(|s| format!(" of shard {}", s.index))
                    .unwrap_or_default(),
                state_dir.display()
            ),
        )
        .with_fix("stop the other agent, or give this configuration its own state_dir")),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::new(
            ErrorKind::Io,
            format!("lock {}: {e}", path.display()),
        )),
    }
}

#[cfg(unix)]
fn signals() -> Result<async_signal::Signals> {
    use async_signal::Signal;
    async_signal::Signals::new([Signal::Term, Signal::Int, Signal::Hup])
        .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot handle signals: {e}")))
}

#[cfg(not(unix))]
fn signals() -> Result<async_signal::Signals> {
    use async_signal::Signal;
    async_signal::Signals::new([Signal::Int])
        .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot handle Ctrl-C: {e}")))
}

struct Supervisor {
    ex: Rc<LocalExecutor<'static>>,
    settings: Settings,
    shared: Rc<Shared>,
    running: BTreeMap<String, Running>,
    shard: Option<Shard>,
    metrics_listen: Option<std::net::SocketAddr>,
}

async fn supervise(
    ex: Rc<LocalExecutor<'static>>,
    config_path: &Path,
    config: Config,
    mut signals: async_signal::Signals,
    shard: Option<Shard>,
) -> Result<()> {
    let settings = Settings::of(&config);
    let shared = settings.shared()?;
    let mut sup = Supervisor {
        ex,
        settings,
        shared,
        running: BTreeMap::new(),
        shard,
        metrics_listen: config.metrics_listen,
    };
    sup.apply(&config, false).await;
    metrics::global().set_started(shard.map(|s| (s.index, s.count)));
    let active = config.mailboxes.iter().filter(|m| m.active).count();
    match shard {
        Some(s) => log::info!(
            "running {} of the {active} active mailbox(es) of {} (shard {s})",
            sup.running.len(),
            config_path.display()
        ),
        None => log::info!(
            "running {} mailbox(es) from {}",
            sup.running.len(),
            config_path.display()
        ),
    }
    while let Some(sig) = signals.next().await {
        use async_signal::Signal;
        match sig {
            #[cfg(unix)]
            Ok(Signal::Hup) => {
                log::info!("SIGHUP: reloading {}", config_path.display());
                match Config::load(config_path) {
                    Ok(c) => sup.reload(c).await,
                    Err(e) => log::error!("reload: {e}; keeping the running configuration"),
                }
            }
            Ok(s) => {
                log::info!("{s:?}: stopping after the current deliveries");
                break;
            }
            Err(e) => log::warn!("signal handling: {e}"),
        }
    }
    let names: Vec<String> = sup.running.keys().cloned().collect();
    let stops: Vec<_> = names.iter().filter_map(|n| sup.running.remove(n)).collect();
    stop_all(stops).await;
    log::info!("stopped");
    Ok(())
}

/// Stops mailboxes, waiting for their current delivery up to [`STOP_GRACE`].
async fn stop_all(list: Vec<Running>) {
    let mut tasks = Vec::new();
    for r in list {
        drop(r.stop);
        tasks.push(r.task);
    }
    let all = futures::future::join_all(tasks).fuse();
    let timer = FutureExt::fuse(smol::Timer::after(STOP_GRACE));
    futures::pin_mut!(all, timer);
    futures::select_biased! {
        _ = all => {},
        _ = timer => log::warn!(
            "some mailboxes did not finish within {} s; their unacknowledged mail is fetched again next time",
            STOP_GRACE.as_secs()
        ),
    }
}

fn key(name: &str) -> String {
    name.to_lowercase()
}

impl Supervisor {
    fn start(&mut self, m: &Mailbox) {
        let (stop_handle, stop) = stop_pair();
        let parked = Rc::new(Cell::new(false));
        let task = self.ex.spawn(worker::run(
            self.shared.clone(),
            m.clone(),
            stop,
            parked.clone(),
        ));
        self.running.insert(
            key(&m.name),
            Running {
                stop: stop_handle,
                task,
                fingerprint: fingerprint(m),
                parked,
            },
        );
    }

    /// Starts the active mailboxes of `config` that are not running, stops those no longer
    /// wanted, restarts the changed ones (and with `retry_parked` the parked ones).
    async fn apply(&mut self, config: &Config, retry_parked: bool) {
        let shard = self.shard;
        let wanted: BTreeMap<String, &Mailbox> = config
            .mailboxes
            .iter()
            .filter(|m| m.active && shard.is_none_or(|s| s.owns(&m.name)))
            .map(|m| (key(&m.name), m))
            .collect();
        let mut to_stop = Vec::new();
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            let keep = match (wanted.get(&name), self.running.get(&name)) {
                (Some(m), Some(r)) => {
                    r.fingerprint == fingerprint(m) && !(retry_parked && r.parked.get())
                }
                _ => false,
            };
            if !keep {
                if let Some(r) = self.running.remove(&name) {
                    log::info!(
                        "mailbox {name}: stopping (removed, deactivated, changed or parked)"
                    );
                    to_stop.push(r);
                }
            }
        }
        // Stopped first: a restarted mailbox needs its lock back.
        stop_all(to_stop).await;
        let names: Vec<&str> = wanted.values().map(|m| m.name.as_str()).collect();
        metrics::global().retain(&names);
        for (name, m) in wanted {
            if !self.running.contains_key(&name) {
                self.start(m);
            }
        }
    }

    async fn reload(&mut self, config: Config) {
        if config.metrics_listen != self.metrics_listen {
            log::warn!("reload: a change of metrics.listen takes effect at the next start");
        }
        let settings = Settings::of(&config);
        if settings != self.settings {
            match settings.shared() {
                Ok(shared) => {
                    log::info!("reload: shared settings changed; restarting every mailbox");
                    let all: Vec<_> = std::mem::take(&mut self.running).into_values().collect();
                    stop_all(all).await;
                    self.settings = settings;
                    self.shared = shared;
                }
                Err(e) => {
                    log::error!("reload: {e}; keeping the running configuration");
                    return;
                }
            }
        }
        self.apply(&config, true).await;
    }
}

/// Prints the status of every mailbox of `config` in `out`; true when all active ones are
/// healthy (running or idle, in a live process).
pub fn print_status(config: &Config, out: &mut dyn std::io::Write) -> std::io::Result<bool> {
    print_status_of(config, None, out)
}

/// The credentials of `m` and how long they last (refresh token renewal, secret and certificate
/// expiry), with a warning and the fix when the end is near.
fn print_credentials(
    m: &crate::config::Mailbox,
    paths: &crate::state::StatePaths,
    now: u64,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    for c in crate::oauth::lifetimes::credentials(m, &paths.token_cache, now) {
        let mark = if c.needs_attention() { "WARNING: " } else { "" };
        writeln!(out, "  {mark}{}", c.detail)?;
        if let Some(fix) = c.fix.as_deref().filter(|_| c.needs_attention()) {
            writeln!(out, "  fix: {fix}")?;
        }
    }
    Ok(())
}

/// [`print_status`] for the mailboxes of `shard` only (all with `None`).
pub fn print_status_of(
    config: &Config,
    shard: Option<Shard>,
    out: &mut dyn std::io::Write,
) -> std::io::Result<bool> {
    let mut healthy = true;
    let now = status::now();
    for m in &config.mailboxes {
        if shard.is_some_and(|s| !s.owns(&m.name)) {
            continue;
        }
        let paths = crate::state::StatePaths::new(&config.state_dir, &m.name);
        if !m.active {
            writeln!(out, "{}: inactive", m.name)?;
            continue;
        }
        let s = match status::read(&paths.status) {
            Ok(Some(s)) => s,
            Ok(None) => {
                healthy = false;
                writeln!(
                    out,
                    "{}: no status yet (is `psa-mail-agent run` running?)",
                    m.name
                )?;
                print_credentials(m, &paths, now, out)?;
                continue;
            }
            Err(e) => {
                healthy = false;
                writeln!(out, "{}: {e}", m.name)?;
                continue;
            }
        };
        let alive = process_alive(s.pid);
        let ok = s.healthy() && alive;
        healthy &= ok;
        let state = if s.healthy() && !alive {
            format!("{} (but process {} is gone)", s.state, s.pid)
        } else {
            s.state.clone()
        };
        writeln!(
            out,
            "{}: {} for {}, {} ticket(s) delivered, {} error(s), last success {}",
            m.name,
            state,
            ago(now.saturating_sub(s.since)),
            s.tickets_delivered,
            s.errors,
            s.last_success
                .map(|t| format!("{} ago", ago(now.saturating_sub(t))))
                .unwrap_or_else(|| "never".into())
        )?;
        print_credentials(m, &paths, now, out)?;
        if let Some(e) = &s.last_error {
            if !ok || s.consecutive_failures > 0 {
                writeln!(out, "  error ({}): {}", e.kind, e.message)?;
                if let Some(fix) = &e.fix {
                    writeln!(out, "  fix: {fix}")?;
                }
            }
        }
        if let Some(t) = s.next_retry {
            writeln!(out, "  next attempt in {}", ago(t.saturating_sub(now)))?;
        }
    }
    Ok(healthy)
}

fn ago(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        7200..=172_799 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

/// Whether process `pid` lives (Linux: /proc; elsewhere assumed).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}
