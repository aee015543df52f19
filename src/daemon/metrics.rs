//! What `run` counts for `/metrics` (Prometheus text exposition format 0.0.4) and `/readyz`.
//!
//! Written by hand (about a hundred lines of formatting) rather than with a metrics crate: the
//! format is a few line shapes, the daemon needs counters, gauges and two histograms only, and
//! every crate for it brings a registry abstraction, atomics machinery or its own HTTP stack.
//!
//! Mailbox names are the only label values that come from the configuration (escaped as the
//! format requires); no address, subject, token or other secret is ever recorded. Histograms
//! carry no mailbox label: thousands of mailboxes times a dozen buckets would swamp Prometheus.

use once_cell::sync::Lazy;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms' buckets: a local delivery takes
/// milliseconds, a batch of large mail or a slow webhook seconds.
pub const BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Every state a mailbox reports (`pma_mailbox_state`), as in the status file.
pub const STATES: [&str; 6] = [
    super::status::states::STARTING,
    super::status::states::RUNNING,
    super::status::states::IDLE,
    super::status::states::FAILING,
    super::status::states::PARKED,
    super::status::states::STOPPED,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    over: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        match BUCKETS.iter().position(|b| secs <= *b) {
            Some(i) => self.counts[i] += 1,
            None => self.over += 1,
        }
        self.sum += secs;
    }

    fn count(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.over
    }
}

/// One mailbox's numbers.
#[derive(Debug, Default, Clone)]
struct Mailbox {
    state: &'static str,
    in_idle: bool,
    delivered: u64,
    acknowledged: u64,
    bytes_read: u64,
    token_refreshes: u64,
    errors: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By mailbox name.
    mailboxes: BTreeMap<String, Mailbox>,
    fetch: Histogram,
    delivery: Histogram,
    /// The supervisor started every mailbox of the configuration.
    started: bool,
    shard: Option<(u32, u32)>,
}

/// The daemon's metrics. One per process ([`global`]); tests make their own.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

static GLOBAL: Lazy<Registry> = Lazy::new(Registry::default);

/// The registry `run` records into and serves.
pub fn global() -> &'static Registry {
    &GLOBAL
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Counters stay usable after a panic elsewhere; they hold no invariant worth dying for.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with(&self, mailbox: &str, f: impl FnOnce(&mut Mailbox)) {
        let mut inner = self.lock();
        let m = inner
            .mailboxes
            .entry(mailbox.to_string())
            .or_insert_with(|| Mailbox {
                state: super::status::states::STARTING,
                ..Mailbox::default()
            });
        f(m);
    }

    /// A mailbox started (or restarted): it is reported from now on, counters kept.
    pub fn mailbox_started(&self, mailbox: &str) {
        self.with(mailbox, |m| {
            m.state = super::status::states::STARTING;
            m.in_idle = false;
        });
    }

    /// The mailbox moved to `state` (a [`super::status::states`] value).
    pub fn set_state(&self, mailbox: &str, state: &str) {
        let state = STATES
            .iter()
            .copied()
            .find(|s| *s == state)
            .unwrap_or(super::status::states::RUNNING);
        self.with(mailbox, |m| m.state = state);
    }

    /// Whether the mailbox now waits in IMAP IDLE (one IDLE connection) or not.
    pub fn set_in_idle(&self, mailbox: &str, in_idle: bool) {
        self.with(mailbox, |m| m.in_idle = in_idle);
    }

    /// One ticket delivered, after `took`.
    pub fn delivered(&self, mailbox: &str, took: Duration) {
        let mut inner = self.lock();
        inner.delivery.observe(took);
        drop(inner);
        self.with(mailbox, |m| m.delivered += 1);
    }

    /// `n` messages acknowledged on the server.
    pub fn acknowledged(&self, mailbox: &str, n: u64) {
        self.with(mailbox, |m| m.acknowledged += n);
    }

    /// One fetch (search and download of one batch) took `took`.
    pub fn fetched(&self, took: Duration) {
        self.lock().fetch.observe(took);
    }

    /// `n` more bytes of mail read from the server.
    pub fn bytes_read(&self, mailbox: &str, n: u64) {
        self.with(mailbox, |m| m.bytes_read += n);
    }

    /// `n` more tokens obtained from the identity platform.
    pub fn token_refreshes(&self, mailbox: &str, n: u64) {
        self.with(mailbox, |m| m.token_refreshes += n);
    }

    /// One failure of `kind` (an [`crate::ErrorKind`] name).
    pub fn error(&self, mailbox: &str, kind: &str) {
        self.with(mailbox, |m| {
            *m.errors.entry(kind.to_string()).or_insert(0) += 1
        });
    }

    /// Keeps only the mailboxes in `names` (removed and deactivated ones vanish).
    pub fn retain(&self, names: &[&str]) {
        let keep: std::collections::HashSet<&str> = names.iter().copied().collect();
        self.lock()
            .mailboxes
            .retain(|k, _| keep.contains(k.as_str()));
    }

    /// Every mailbox of the configuration was started.
    pub fn set_started(&self, shard: Option<(u32, u32)>) {
        let mut inner = self.lock();
        inner.started = true;
        inner.shard = shard;
    }

    /// Ready when started and no mailbox is parked; else the reason, naming the parked ones.
    pub fn readiness(&self) -> Result<(), String> {
        let inner = self.lock();
        if !inner.started {
            return Err("starting".into());
        }
        let parked: Vec<&str> = inner
            .mailboxes
            .iter()
            .filter(|(_, m)| m.state == super::status::states::PARKED)
            .map(|(n, _)| n.as_str())
            .collect();
        if parked.is_empty() {
            return Ok(());
        }
        let shown = parked
            .iter()
            .take(20)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        let more = parked.len().saturating_sub(20);
        Err(format!(
            "{} mailbox(es) parked, waiting for an administrator: {shown}{}",
            parked.len(),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ))
    }

    /// The exposition (text format 0.0.4).
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::with_capacity(1024 + inner.mailboxes.len() * 900);
        let o = &mut out;
        family(
            o,
            "pma_build_info",
            "gauge",
            "Version of the running agent.",
        );
        let _ = writeln!(
            o,
            "pma_build_info{{version=\"{}\"}} 1",
            escape(env!("CARGO_PKG_VERSION"))
        );
        family(
            o,
            "pma_ready",
            "gauge",
            "1 when every mailbox was started and none is parked (as /readyz).",
        );
        let ready = inner.started
            && !inner
                .mailboxes
                .values()
                .any(|m| m.state == super::status::states::PARKED);
        let _ = writeln!(o, "pma_ready {}", u8::from(ready));
        if let Some((index, count)) = inner.shard {
            family(
                o,
                "pma_shard_info",
                "gauge",
                "This agent's shard (run --shard INDEX/COUNT).",
            );
            let _ = writeln!(
                o,
                "pma_shard_info{{shard=\"{index}\",shards=\"{count}\"}} 1"
            );
        }
        family(
            o,
            "pma_mailboxes",
            "gauge",
            "Mailboxes this agent serves (its shard's active ones).",
        );
        let _ = writeln!(o, "pma_mailboxes {}", inner.mailboxes.len());
        family(
            o,
            "pma_mailbox_state",
            "gauge",
            "1 for the state each mailbox is in, 0 for the others.",
        );
        for (name, m) in &inner.mailboxes {
            for s in STATES {
                let _ = writeln!(
                    o,
                    "pma_mailbox_state{{mailbox=\"{}\",state=\"{s}\"}} {}",
                    escape(name),
                    u8::from(m.state == s)
                );
            }
        }
        family(
            o,
            "pma_idle_connections",
            "gauge",
            "Connections waiting for new mail in IMAP IDLE.",
        );
        let idle = inner.mailboxes.values().filter(|m| m.in_idle).count();
        let _ = writeln!(o, "pma_idle_connections {idle}");
        let counters: [Counter; 4] = [
            (
                "pma_tickets_delivered_total",
                "Tickets delivered to the output.",
                |m| m.delivered,
            ),
            (
                "pma_messages_acknowledged_total",
                "Messages acknowledged on the server (marked read, moved or deleted) after delivery.",
                |m| m.acknowledged,
            ),
            (
                "pma_bytes_read_total",
                "Bytes of mail (message sources) read from the server.",
                |m| m.bytes_read,
            ),
            (
                "pma_token_refreshes_total",
                "Access tokens obtained from the identity platform (sign-ins and refreshes).",
                |m| m.token_refreshes,
            ),
        ];
        for (metric, help, value) in counters {
            family(o, metric, "counter", help);
            for (name, m) in &inner.mailboxes {
                let _ = writeln!(o, "{metric}{{mailbox=\"{}\"}} {}", escape(name), value(m));
            }
        }
        family(
            o,
            "pma_errors_total",
            "counter",
            "Failures by kind (as in the status file), each followed by a retry.",
        );
        for (name, m) in &inner.mailboxes {
            for (kind, n) in &m.errors {
                let _ = writeln!(
                    o,
                    "pma_errors_total{{mailbox=\"{}\",kind=\"{}\"}} {n}",
                    escape(name),
                    escape(kind)
                );
            }
        }
        histogram(
            o,
            "pma_fetch_duration_seconds",
            "Time to search for and download one batch of mail (all mailboxes).",
            &inner.fetch,
        );
        histogram(
            o,
            "pma_delivery_duration_seconds",
            "Time to deliver one ticket to the output (all mailboxes).",
            &inner.delivery,
        );
        out
    }
}

/// A per-mailbox counter family: name, help, value.
type Counter = (&'static str, &'static str, fn(&Mailbox) -> u64);

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(o: &mut String, name: &str, help: &str, h: &Histogram) {
    family(o, name, "histogram", help);
    let mut cumulative = 0;
    for (bound, n) in BUCKETS.iter().zip(h.counts) {
        cumulative += n;
        let _ = writeln!(o, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {}", h.count());
    let _ = writeln!(o, "{name}_sum {}", h.sum);
    let _ = writeln!(o, "{name}_count {}", h.count());
}

/// A label value as the text format wants it: `\`, `"` and line feeds escaped.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::status::states;

    fn value(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(str::to_string)
    }

    #[test]
    fn renders_every_family_with_escaped_labels() {
        let r = Registry::default();
        r.mailbox_started("Help \"desk\"\\x");
        r.mailbox_started("Sales");
        r.set_state("Sales", states::IDLE);
        r.set_in_idle("Sales", true);
        r.delivered("Sales", Duration::from_millis(3));
        r.delivered("Sales", Duration::from_millis(70));
        r.acknowledged("Sales", 2);
        r.bytes_read("Sales", 1234);
        r.token_refreshes("Sales", 1);
        r.fetched(Duration::from_secs(120));
        r.error("Help \"desk\"\\x", "LoginFailed");
        r.set_state("Help \"desk\"\\x", states::PARKED);
        let text = r.render();
        let esc = r#"mailbox="Help \"desk\"\\x""#;
        assert_eq!(
            value(
                &text,
                &format!("pma_errors_total{{{esc},kind=\"LoginFailed\"}}")
            )
            .as_deref(),
            Some("1")
        );
        assert_eq!(
            value(
                &text,
                &format!("pma_mailbox_state{{{esc},state=\"parked\"}}")
            )
            .as_deref(),
            Some("1")
        );
        for (series, want) in [
            ("pma_tickets_delivered_total{mailbox=\"Sales\"}", "2"),
            ("pma_messages_acknowledged_total{mailbox=\"Sales\"}", "2"),
            ("pma_bytes_read_total{mailbox=\"Sales\"}", "1234"),
            ("pma_token_refreshes_total{mailbox=\"Sales\"}", "1"),
            ("pma_mailbox_state{mailbox=\"Sales\",state=\"idle\"}", "1"),
            (
                "pma_mailbox_state{mailbox=\"Sales\",state=\"starting\"}",
                "0",
            ),
            ("pma_idle_connections", "1"),
            ("pma_mailboxes", "2"),
            ("pma_ready", "0"),
            ("pma_delivery_duration_seconds_bucket{le=\"0.005\"}", "1"),
            ("pma_delivery_duration_seconds_bucket{le=\"0.05\"}", "1"),
            ("pma_delivery_duration_seconds_bucket{le=\"0.1\"}", "2"),
            ("pma_delivery_duration_seconds_bucket{le=\"+Inf\"}", "2"),
            ("pma_delivery_duration_seconds_count", "2"),
            ("pma_fetch_duration_seconds_bucket{le=\"60\"}", "0"),
            ("pma_fetch_duration_seconds_bucket{le=\"+Inf\"}", "1"),
            ("pma_fetch_duration_seconds_sum", "120"),
        ] {
            assert_eq!(
                value(&text, series).as_deref(),
                Some(want),
                "{series}\n{text}"
            );
        }
        // Every sample line is NAME{LABELS} VALUE or NAME VALUE; every family is typed once.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = line.rsplit_once(' ').unwrap();
            assert!(v.parse::<f64>().is_ok(), "{line}");
        }
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(
            types,
            text.lines().filter(|l| l.starts_with("# HELP ")).count()
        );
    }

    #[test]
    fn ready_once_started_and_while_nothing_is_parked() {
        let r = Registry::default();
        r.mailbox_started("A");
        assert_eq!(r.readiness(), Err("starting".into()));
        r.set_started(Some((1, 3)));
        assert_eq!(r.readiness(), Ok(()));
        assert!(r
            .render()
            .contains("pma_shard_info{shard=\"1\",shards=\"3\"} 1"));
        r.set_state("A", states::FAILING);
        assert_eq!(r.readiness(), Ok(()));
        r.set_state("A", states::PARKED);
        let e = r.readiness().unwrap_err();
        assert!(e.contains("1 mailbox(es) parked") && e.contains('A'), "{e}");
        r.retain(&[]);
        assert_eq!(r.readiness(), Ok(()));
        assert!(!r.render().contains("mailbox=\"A\""));
    }
}
