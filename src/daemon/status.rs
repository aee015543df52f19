//! The status file of each mailbox (`<state_dir>/<name>.status.json`), written atomically by
//! `run` whenever something changes and read by `psa-mail-agent status`. It holds no secret:
//! error messages never carry one.

use crate::error::{Error, ErrorKind, Result};
use crate::state::{to_json, write_atomic};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// What a mailbox is doing.
pub mod states {
    /// Connecting, or its agent is being set up.
    pub const STARTING: &str = "starting";
    /// Fetching and delivering mail.
    pub const RUNNING: &str = "running";
    /// Connected and waiting for new mail (IDLE or polling).
    pub const IDLE: &str = "idle";
    /// Failing for a reason that may pass by itself (network, server); retried with backoff.
    pub const FAILING: &str = "failing";
    /// Failing for a reason an administrator must fix (sign-in refused, grant revoked, ...);
    /// retried rarely.
    pub const PARKED: &str = "parked";
    /// Stopped (the agent exited or the mailbox was removed from the configuration).
    pub const STOPPED: &str = "stopped";
}

/// The last error of a mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// Unix time it happened.
    pub at: u64,
    /// The error kind (`GrantRevoked`, `Timeout`, ...).
    pub kind: String,
    /// What happened.
    pub message: String,
    /// What the administrator should do.
    pub fix: Option<String>,
}

/// One mailbox's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The mailbox name.
    pub mailbox: String,
    /// One of [`states`].
    pub state: String,
    /// Process id of the agent that wrote this.
    pub pid: u32,
    /// Unix time this was written.
    pub updated: u64,
    /// Unix time the current state began.
    pub since: u64,
    /// Unix time of the last successful check of the mailbox (fetch, deliver, ack).
    pub last_success: Option<u64>,
    /// The last error, kept after recovery for reference.
    pub last_error: Option<LastError>,
    /// Unix time of the next attempt while failing or parked.
    pub next_retry: Option<u64>,
    /// Tickets delivered, over the lifetime of the state directory.
    pub tickets_delivered: u64,
    /// Errors counted, over the lifetime of the state directory.
    pub errors: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Whether the server offers IDLE (else the mailbox is polled).
    pub idle_supported: Option<bool>,
    /// A "failed" notification went out and no "recovered" yet (kept across restarts, so the
    /// recovery after an admin's fix and restart or reload is announced too).
    pub failure_notified: bool,
}

/// Unix time now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Status {
    /// Whether the mailbox works: running or idle.
    pub fn healthy(&self) -> bool {
        self.state == states::RUNNING || self.state == states::IDLE
    }
}

/// Reads the status at `path`; `None` when there is none.
pub fn read(path: &Path) -> Result<Option<Status>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::new(
                ErrorKind::Io,
                format!("status {}: {e}", path.display()),
            ))
        }
    };
    let mut scratch = vec![0u8; text.len() + 16];
    serde_json_core::from_str_escaped::<Status>(&text, &mut scratch)
        .map(|(s, _)| Some(s))
        .map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("status {} is unreadable: {e}", path.display()),
            )
        })
}

/// Keeps one mailbox's status file up to date.
#[derive(Debug)]
pub struct StatusFile {
    path: PathBuf,
    /// The current status; change it, then [`StatusFile::save`].
    pub status: Status,
}

impl StatusFile {
    /// Starts a status for `mailbox`, continuing the counters of an earlier run.
    pub fn open(path: PathBuf, mailbox: &str) -> StatusFile {
        let old = read(&path).ok().flatten().unwrap_or_default();
        let status = Status {
            mailbox: mailbox.to_string(),
            state: states::STARTING.to_string(),
            pid: std::process::id(),
            since: now(),
            last_success: old.last_success,
            last_error: old.last_error,
            tickets_delivered: old.tickets_delivered,
            errors: old.errors,
            failure_notified: old.failure_notified,
            ..Status::default()
        };
        let mut f = StatusFile { path, status };
        f.save();
        f
    }

    /// Moves to `state` (a [`states`] value) and saves when it changed.
    pub fn set_state(&mut self, state: &str) {
        if self.status.state != state {
            self.status.state = state.to_string();
            self.status.since = now();
            if state != states::FAILING && state != states::PARKED {
                self.status.next_retry = None;
            }
            super::metrics::global().set_state(&self.status.mailbox, state);
            self.save();
        }
    }

    /// Writes the file; a failure is logged, never fatal (the status is informative).
    pub fn save(&mut self) {
        self.status.updated = now();
        if let Err(e) = write_atomic(&self.path, to_json(&self.status).as_bytes()) {
            log::warn!(
                "mailbox {}: cannot write its status: {e}",
                self.status.mailbox
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_escapes_and_keeps_counters() {
        let dir = std::env::temp_dir().join(format!("pma-status-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("m.status.json");
        assert_eq!(read(&path).unwrap(), None);
        let mut f = StatusFile::open(path.clone(), "Help \"desk\"");
        f.status.tickets_delivered = 7;
        f.status.last_error = Some(LastError {
            at: 1,
            kind: "GrantRevoked".into(),
            message: "AADSTS50173: \"grant\" revoked\nline".into(),
            fix: Some("sign in again".into()),
        });
        f.set_state(states::PARKED);
        let back = read(&path).unwrap().unwrap();
        assert_eq!(back, f.status);
        assert!(!back.healthy());
        let again = StatusFile::open(path, "Help \"desk\"");
        assert_eq!(again.status.tickets_delivered, 7);
        assert_eq!(again.status.state, states::STARTING);
    }
}
