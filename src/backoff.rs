//! Exponential backoff with jitter, for reconnecting mailboxes and retrying webhooks: many
//! mailboxes failing together (a network outage) must not retry in lock-step.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Delays `initial`, `2·initial`, … capped at `max`, each multiplied by a random factor in
/// [0.5, 1.0] ("equal jitter"), so the delay never falls below half the nominal one.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff starting at `initial` and never waiting longer than `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            failures: 0,
        }
    }

    /// The delay before the next attempt, counting one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self
            .initial
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        jitter(nominal)
    }

    /// Consecutive failures counted so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Forgets the failures after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// `d` scaled by a pseudo-random factor in [0.5, 1.0].
pub fn jitter(d: Duration) -> Duration {
    let r = random_u64() % 1001;
    d.mul_f64(0.5 + r as f64 / 2000.0)
}

/// Not cryptographic: only spreads retries (splitmix64 over a counter seeded by the clock).
fn random_u64() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut z = STATE
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(seed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let d: Vec<_> = (0..12).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(500) && d[0] <= Duration::from_secs(1));
        assert!(d[3] >= Duration::from_secs(4) && d[3] <= Duration::from_secs(8));
        assert!(d[11] >= Duration::from_secs(150) && d[11] <= Duration::from_secs(300));
        assert_eq!(b.failures(), 12);
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads() {
        let d: std::collections::BTreeSet<_> =
            (0..50).map(|_| jitter(Duration::from_secs(100))).collect();
        assert!(d.len() > 10, "retries should not fire in lock-step");
    }
}
