//! `run --shard I/N`: several agents share one configuration, each mailbox served by exactly one.
//!
//! Rendezvous (highest random weight) hashing: every shard scores every mailbox with SHA-256 of
//! the shard's index and the mailbox's name, and the highest score owns the mailbox. Every agent
//! computes the same answer from the configuration alone (no coordination), the hash never
//! changes between versions or runs (std's hasher is randomised per process and would not do),
//! and going from N to N+1 shards moves only the mailboxes the new shard wins: about 1/(N+1) of
//! them, all to the new shard; the others stay where their state is.

use sha2::{Digest, Sha256};
use std::fmt;

/// Most shards accepted: far above any sensible replica count, and it bounds the hashing work
/// (one SHA-256 per shard and mailbox, at start and on reload).
pub const MAX_SHARDS: u32 = 1024;

/// Shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This agent's shard, `0..count`.
    pub index: u32,
    /// How many agents share the configuration.
    pub count: u32,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Parses `I/N`. `I` may also be a StatefulSet pod name such as `psa-mail-agent-2`, whose
    /// ordinal (after the last `-`) is the index: Kubernetes can hand the pod's name to the
    /// container, but not its ordinal on every version.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = |why: &str| format!("{text:?} is not a shard: {why}; expected I/N, e.g. 0/3");
        let (i, n) = text.trim().split_once('/').ok_or_else(|| bad("no '/'"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| bad("N is not a whole number"))?;
        if count == 0 || count > MAX_SHARDS {
            return Err(bad(&format!("N must be 1..{MAX_SHARDS}")));
        }
        let i = i.trim();
        let ordinal = match i.rsplit_once('-') {
            Some((pod, ord)) if !pod.is_empty() && !i.starts_with('-') => ord,
            _ => i,
        };
        if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(
                "I is not a whole number or a pod name ending in -ORDINAL",
            ));
        }
        let index: u32 = ordinal.parse().map_err(|_| bad("I is too large"))?;
        if index >= count {
            return Err(bad(&format!(
                "I must be below N (shards are numbered 0..{})",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }

    /// Whether this shard serves the mailbox named `name`.
    pub fn owns(&self, name: &str) -> bool {
        owner(name, self.count) == self.index
    }
}

/// The shard (of `count`) that owns the mailbox named `name`. Names are compared without case,
/// as `run` and the state files do.
pub fn owner(name: &str, count: u32) -> u32 {
    let key = name.to_lowercase();
    let mut best = (0u64, 0u32);
    for shard in 0..count.max(1) {
        let mut h = Sha256::new();
        h.update(shard.to_be_bytes());
        h.update([0u8]);
        h.update(key.as_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let score = u64::from_be_bytes(first);
        // Ties (practically never) go to the lower index, so the answer stays deterministic.
        if shard == 0 || score > best.0 {
            best = (score, shard);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("helpdesk-{i}@contoso.test"))
            .collect()
    }

    #[test]
    fn parses_indices_and_pod_names() {
        assert_eq!(Shard::parse("0/3"), Ok(Shard { index: 0, count: 3 }));
        assert_eq!(Shard::parse(" 2 / 3 "), Ok(Shard { index: 2, count: 3 }));
        assert_eq!(
            Shard::parse("psa-mail-agent-2/4"),
            Ok(Shard { index: 2, count: 4 })
        );
        assert_eq!(Shard::parse("0/1"), Ok(Shard { index: 0, count: 1 }));
        for bad in [
            "", "3", "3/3", "-1/3", "1/0", "a/3", "1/x", "pod-/3", "pod-x/3", "1/2000", "1/3/4",
        ] {
            let e = Shard::parse(bad).unwrap_err();
            assert!(e.contains("expected I/N"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn every_mailbox_has_exactly_one_owner_and_shards_are_balanced() {
        // Debug builds hash slowly: a few thousand names keep this under a second.
        let all = names(4000);
        for count in [1u32, 3, 7] {
            let mut per = vec![0usize; count as usize];
            for (k, n) in all.iter().enumerate() {
                let o = owner(n, count);
                if k < 300 {
                    let owners: Vec<u32> = (0..count)
                        .filter(|&i| Shard { index: i, count }.owns(n))
                        .collect();
                    assert_eq!(owners, [o], "{n} with {count} shards");
                }
                per[o as usize] += 1;
            }
            let fair = all.len() as f64 / f64::from(count);
            for (i, got) in per.iter().enumerate() {
                let off = (*got as f64 - fair).abs() / fair;
                assert!(off < 0.12, "shard {i}/{count} has {got}, fair is {fair}");
            }
        }
    }

    #[test]
    fn adding_a_shard_moves_about_one_in_n_plus_one_all_to_the_new_shard() {
        let all = names(4000);
        for count in [1u32, 2, 3, 4] {
            let mut moved = 0;
            for n in &all {
                let (before, after) = (owner(n, count), owner(n, count + 1));
                if before != after {
                    assert_eq!(after, count, "{n} moved between old shards");
                    moved += 1;
                }
            }
            let fraction = moved as f64 / all.len() as f64;
            let expected = 1.0 / f64::from(count + 1);
            assert!(
                (fraction - expected).abs() < 0.025,
                "{count} -> {}: {fraction:.3} moved, expected {expected:.3}",
                count + 1
            );
        }
    }

    #[test]
    fn assignment_is_stable_across_versions_and_case() {
        // Pinned: a change here moves mailboxes between running replicas on upgrade.
        let got: Vec<u32> = ["Helpdesk", "Sales", "billing@contoso.com", "IT Support"]
            .iter()
            .map(|n| owner(n, 4))
            .collect();
        assert_eq!(got, PINNED);
        assert_eq!(owner("HELPDESK", 4), owner("helpdesk", 4));
    }

    const PINNED: [u32; 4] = [2, 1, 2, 3];
}
