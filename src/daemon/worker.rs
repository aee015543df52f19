//! One mailbox inside the daemon: fetch everything pending, deliver, acknowledge, wait for new
//! mail, and on failure retry with backoff, or rarely when an administrator must act.

use super::metrics;
use super::notify::Event;
use super::status::{self, states, LastError, StatusFile};
use super::{Shared, Stop};
use crate::agent::Agent;
use crate::backoff::{jitter, Backoff};
use crate::config::Mailbox;
use crate::error::{Error, ErrorKind, Result};
use crate::imap::Wake;
use crate::state::StatePaths;
use futures::FutureExt;
use std::cell::Cell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// First retry after a temporary failure.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between retries after temporary failures.
pub const RETRY_MAX: Duration = Duration::from_secs(300);
/// Wait between attempts while an administrator must act: rare, so an account is never locked
/// by retries and the identity platform is not hammered.
pub const PARKED_RETRY: Duration = Duration::from_secs(30 * 60);
/// Temporary failures in a row after which the mailbox counts as failed (and is notified).
pub const FAILED_AFTER: u32 = 5;

/// Whether `kind` needs a person to change something (credentials, permissions, settings):
/// retrying soon cannot help and may lock the account.
pub fn needs_admin(kind: ErrorKind) -> bool {
    use ErrorKind as K;
    !matches!(
        kind,
        K::Connect
            | K::Timeout
            | K::Tls
            | K::Protocol
            | K::ConnectionClosed
            | K::ServerUnavailable
            | K::ServerRefused
            | K::Io
            | K::Mail
            | K::Delivery
            | K::Internal
            | K::IdentityProvider
            | K::GraphThrottled
            | K::GraphItemNotFound
            | K::GraphRefused
    )
}

struct Worker {
    name: String,
    shared: Rc<Shared>,
    status: StatusFile,
    backoff: Backoff,
    parked: Rc<Cell<bool>>,
    /// A batch was acknowledged since the last failure: the line works, if poorly, so the next
    /// retry starts again at the shortest delay instead of waiting minutes.
    progressed: bool,
    /// The current agent's byte and token counters already reported to the metrics.
    reported: (u64, u64),
    /// When the credentials' lifetimes were last looked at (Unix seconds), and the warnings
    /// already sent (kind and end), so each is notified once per run.
    credentials_checked: u64,
    credentials_notified: HashSet<(String, u64)>,
}

/// How often `run` looks at the credentials' lifetimes.
const CREDENTIAL_CHECK_SECS: u64 = 6 * 3600;

/// Runs `mailbox` until `stop`. `parked` tells the supervisor the mailbox waits for an admin (a
/// reload then retries it at once).
pub(super) async fn run(shared: Rc<Shared>, mailbox: Mailbox, stop: Stop, parked: Rc<Cell<bool>>) {
    let name = mailbox.name.clone();
    let paths = StatePaths::new(&shared.state_dir, &name);
    let mut w = Worker {
        status: StatusFile::open(paths.status, &name),
        name,
        shared,
        backoff: Backoff::new(RETRY_FIRST, RETRY_MAX),
        parked,
        progressed: false,
        reported: (0, 0),
        credentials_checked: 0,
        credentials_notified: HashSet::new(),
    };
    metrics::global().mailbox_started(&w.name);
    log::info!(mailbox = w.name.as_str(), event = "started"; "mailbox {}: started", w.name);
    // Outer loop: one agent (connection, token provider, state, lock) per attempt after an
    // admin-level failure, so `psa-mail-agent login` can take the lock while the mailbox waits.
    'agent: while !stop.is_set() {
        w.reported = (0, 0);
        let mut agent = match Agent::new(mailbox.clone(), w.shared.state_dir.clone()) {
            Ok(mut a) => {
                a.set_attachment_bytes(w.shared.sink.needs_attachment_bytes());
                a
            }
            Err(e) => {
                if w.failed(&e, &stop).await {
                    continue;
                }
                break;
            }
        };
        // Tickets delivered whose messages are not acknowledged yet: after a failed ack the
        // batch comes again and these are not delivered twice.
        let mut delivered: HashSet<String> = HashSet::new();
        let mut connected = false;
        // A server that accepts the session but fails every IDLE must not be reconnected to
        // every second: the backoff only resets once a wait succeeded.
        let mut wait_failed = false;
        while !stop.is_set() {
            w.status.set_state(states::RUNNING);
            let r = if connected {
                w.drain(&mut agent, &mut delivered, &stop).await
            } else {
                let gate = w.shared.connect_gate.clone();
                let permit = futures::select_biased! {
                    _ = stop.wait().fuse() => break,
                    p = gate.acquire().fuse() => p,
                };
                let r = agent.connect().await;
                drop(permit);
                w.report_counters(&agent);
                match r {
                    Ok(()) => {
                        connected = true;
                        w.status.status.idle_supported = agent.supports_idle();
                        if agent.supports_idle() == Some(false) {
                            log::info!(
                                "mailbox {}: the server offers no IDLE; polling every {} s",
                                w.name,
                                mailbox.poll_interval_secs
                            );
                        }
                        w.drain(&mut agent, &mut delivered, &stop).await
                    }
                    Err(e) => Err(e),
                }
            };
            if r.is_err() {
                connected = false;
            }
            if let Err(e) = r {
                agent.release_unacked();
                agent.disconnect().await;
                if needs_admin(e.kind()) {
                    // Give the lock back while waiting for the administrator.
                    drop(agent);
                    if w.failed(&e, &stop).await {
                        continue 'agent;
                    }
                    break 'agent;
                }
                if !w.failed(&e, &stop).await {
                    break;
                }
                continue;
            }
            w.succeeded().await;
            w.check_credentials(&agent).await;
            if !wait_failed {
                w.backoff.reset();
            }
            if stop.is_set() {
                break;
            }
            w.status.set_state(states::IDLE);
            let refresh = w.shared.idle_refresh;
            metrics::global().set_in_idle(&w.name, agent.supports_idle() == Some(true));
            let woke = agent.wait_for_mail(refresh, stop.wait()).await;
            metrics::global().set_in_idle(&w.name, false);
            w.report_counters(&agent);
            match woke {
                Ok(Wake::Stopped) => break,
                Ok(wake) => {
                    wait_failed = false;
                    w.backoff.reset();
                    log::debug!("mailbox {}: woke up ({wake:?})", w.name)
                }
                Err(e) => {
                    agent.release_unacked();
                    connected = false;
                    wait_failed = true;
                    if needs_admin(e.kind()) {
                        agent.disconnect().await;
                        drop(agent);
                        if w.failed(&e, &stop).await {
                            continue 'agent;
                        }
                        break 'agent;
                    }
                    if !w.failed(&e, &stop).await {
                        break;
                    }
                }
            }
        }
        agent.disconnect().await;
        break;
    }
    w.status.set_state(states::STOPPED);
    log::info!(mailbox = w.name.as_str(), event = "stopped"; "mailbox {}: stopped", w.name);
}

impl Worker {
    /// Fetches, delivers and acknowledges until nothing is pending (or a stop is requested).
    async fn drain(
        &mut self,
        agent: &mut Agent,
        delivered: &mut HashSet<String>,
        stop: &Stop,
    ) -> Result<()> {
        let m = metrics::global();
        loop {
            let started = Instant::now();
            let fetched = agent.fetch(usize::MAX).await;
            self.report_counters(agent);
            let batch = fetched?;
            m.fetched(started.elapsed());
            if batch.is_void() {
                return Ok(());
            }
            let mut fresh = 0u64;
            for t in &batch.tickets {
                if delivered.contains(&t.dedupe_key) {
                    continue;
                }
                let started = Instant::now();
                self.shared.sink.deliver_until(t, stop.wait()).await?;
                m.delivered(&self.name, started.elapsed());
                delivered.insert(t.dedupe_key.clone());
                fresh += 1;
            }
            // Counted once delivered, whether or not the acknowledgement below gets through.
            self.status.status.tickets_delivered += fresh;
            agent.ack(&batch).await?;
            m.acknowledged(&self.name, batch.message_count() as u64);
            self.progressed = true;
            // Nothing is in flight after an acknowledgement (tickets of a batch whose ack
            // failed are suppressed by the agent's state when they come again).
            delivered.clear();
            if !batch.is_empty() {
                log::info!(
                    mailbox = self.name.as_str(), event = "delivered";
                    "mailbox {}: {} ticket(s) delivered", self.name, batch.len()
                );
            }
            self.status.status.last_success = Some(status::now());
            self.status.save();
            if stop.is_set() {
                return Ok(());
            }
        }
    }

    /// Adds what the agent read and the tokens it obtained since the last report to the metrics.
    fn report_counters(&mut self, agent: &Agent) {
        let now = (agent.bytes_read(), agent.token_grants());
        let m = metrics::global();
        if now.0 > self.reported.0 {
            m.bytes_read(&self.name, now.0 - self.reported.0);
        }
        if now.1 > self.reported.1 {
            m.token_refreshes(&self.name, now.1 - self.reported.1);
        }
        self.reported = now;
    }

    /// Every few hours: warns (log and notification, once each) about credentials whose end
    /// is near — a refresh token unused for 76 days, a client secret or certificate expiring
    /// within 30 days.
    async fn check_credentials(&mut self, agent: &Agent) {
        let now = status::now();
        if now < self.credentials_checked + CREDENTIAL_CHECK_SECS {
            return;
        }
        self.credentials_checked = now;
        for c in agent.credentials(now) {
            if !c.needs_attention() {
                continue;
            }
            log::warn!(
                mailbox = self.name.as_str(), event = "credential_expiring";
                "mailbox {}: {}", self.name, c.detail
            );
            let key = (c.kind.as_str().to_string(), c.expires_at.unwrap_or(0));
            if self.credentials_notified.insert(key) {
                self.shared
                    .notifier
                    .notify(
                        &self.name,
                        Event::CredentialExpiring,
                        &c.detail,
                        c.kind.as_str(),
                        c.fix.as_deref(),
                    )
                    .await;
            }
        }
    }

    async fn succeeded(&mut self) {
        self.parked.set(false);
        let s = &mut self.status.status;
        s.last_success = Some(status::now());
        s.consecutive_failures = 0;
        s.next_retry = None;
        if self.status.status.failure_notified {
            self.status.status.failure_notified = false;
            self.status.save();
            log::info!(mailbox = self.name.as_str(), event = "recovered"; "mailbox {}: recovered", self.name);
            self.shared
                .notifier
                .notify(
                    &self.name,
                    Event::Recovered,
                    "the mailbox works again",
                    "",
                    None,
                )
                .await;
        }
    }

    /// Records `e`, notifies when the mailbox enters a failed state, and sleeps until the next
    /// attempt. Returns false when a stop was requested meanwhile.
    async fn failed(&mut self, e: &Error, stop: &Stop) -> bool {
        let admin = needs_admin(e.kind());
        if std::mem::take(&mut self.progressed) {
            self.backoff.reset();
            self.status.status.consecutive_failures = 0;
        }
        let delay = if admin {
            jitter(PARKED_RETRY)
        } else {
            self.backoff.next_delay()
        };
        let kind = format!("{:?}", e.kind());
        metrics::global().error(&self.name, &kind);
        {
            let s = &mut self.status.status;
            s.errors += 1;
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            s.last_error = Some(LastError {
                at: status::now(),
                kind: kind.clone(),
                message: e.message().to_string(),
                fix: e.fix().map(str::to_string),
            });
            s.next_retry = Some(status::now() + delay.as_secs());
        }
        self.parked.set(admin);
        self.status.set_state(if admin {
            states::PARKED
        } else {
            states::FAILING
        });
        self.status.save();
        let fix = e.fix().map(|f| format!(" (fix: {f})")).unwrap_or_default();
        if admin {
            log::error!(
                mailbox = self.name.as_str(), event = "parked", error_kind = kind.as_str();
                "mailbox {}: {}{fix}; parked: waiting for an administrator, next attempt in {} \
                 min (or after SIGHUP)",
                self.name,
                e.message(),
                delay.as_secs() / 60
            );
        } else {
            log::warn!(
                mailbox = self.name.as_str(), event = "failing", error_kind = kind.as_str();
                "mailbox {}: {}{fix}; retrying in {:.1} s",
                self.name,
                e.message(),
                delay.as_secs_f32()
            );
        }
        let failed_now = admin || self.status.status.consecutive_failures >= FAILED_AFTER;
        if failed_now && !self.status.status.failure_notified {
            self.status.status.failure_notified = true;
            self.status.save();
            self.shared
                .notifier
                .notify(&self.name, Event::Failed, e.message(), &kind, e.fix())
                .await;
        }
        futures::select_biased! {
            _ = stop.wait().fuse() => false,
            _ = FutureExt::fuse(smol::Timer::after(delay)) => !stop.is_set(),
        }
    }
}
