//! Waiting for new mail on the selected folder: IMAP IDLE (RFC 2177) where the server offers it,
//! else a NOOP after the poll interval.
//!
//! IDLE is re-issued before servers drop it (RFC 2177 allows a server to end an idle client after
//! 30 minutes; Exchange Online ends it after about 29): the caller passes at most that long.

use super::mailbox::Session;
use crate::error::{Error, ErrorKind, Result};
use crate::net::with_timeout;
use async_imap::extensions::idle::IdleResponse;
use futures::FutureExt;
use std::future::Future;
use std::time::Duration;

/// Longest single IDLE: below the 29 minutes after which Exchange Online ends one.
pub const MAX_IDLE: Duration = Duration::from_secs(29 * 60);

const IDLE_ENDED: &str = "IDLE: the server ended the session";

/// Whether `e` is the server ending the session during IDLE with a BYE (Exchange Online does so
/// after about 29 minutes): the connection is gone, but nothing is wrong with the mailbox.
pub fn ended_by_server(e: &Error) -> bool {
    e.kind() == ErrorKind::ConnectionClosed && e.message().starts_with(IDLE_ENDED)
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The server announced a change (new message, flags, expunge): look for new mail.
    NewData,
    /// The wait's time ran out; looking for new mail is cheap and keeps the connection checked.
    Timeout,
    /// The caller's stop future completed (shutdown, reload).
    Stopped,
}

impl Session {
    /// Whether the server offers IDLE.
    pub fn supports_idle(&self) -> bool {
        self.capabilities().has("IDLE")
    }

    /// Waits in IDLE until the server reports news, `max_wait` (capped at [`MAX_IDLE`]) passes,
    /// or `stop` completes; then ends IDLE (DONE) and gives the session back. On error the
    /// session is gone (the connection is in an unknown state): reconnect.
    pub async fn idle(
        self,
        max_wait: Duration,
        stop: impl Future<Output = ()>,
    ) -> Result<(Session, Wake)> {
        let (inner, caps, timeout) = self.into_inner();
        let max_wait = max_wait.min(MAX_IDLE);
        let mut handle = inner.idle();
        with_timeout(timeout, "IDLE", async {
            handle.init().await.map_err(|e| super::map_err("IDLE", e))
        })
        .await?;
        let wake = {
            let (wait, interrupt) = handle.wait_with_timeout(max_wait);
            let wait = wait.fuse();
            let stop = stop.fuse();
            // async-imap's own timeout restarts with every response, and servers send keepalives
            // ("* OK Still here") more often than that: bound the whole wait here.
            let deadline = FutureExt::fuse(smol::Timer::after(max_wait));
            futures::pin_mut!(wait, stop, deadline);
            let wake = futures::select_biased! {
                r = wait => match r {
                    Ok(IdleResponse::NewData(data)) => {
                        if let async_imap::imap_proto::Response::Data {
                            status: async_imap::imap_proto::Status::Bye,
                            outcome,
                        } = data.parsed()
                        {
                            return Err(Error::new(
                                ErrorKind::ConnectionClosed,
                                format!(
                                    "{IDLE_ENDED}: BYE {}",
                                    super::bounded(outcome.information.as_deref().unwrap_or(""), 200)
                                ),
                            ));
                        }
                        Wake::NewData
                    }
                    Ok(IdleResponse::Timeout) => Wake::Timeout,
                    // async-imap reports a closed connection as an interrupt; only we interrupt.
                    Ok(IdleResponse::ManualInterrupt) => {
                        return Err(Error::new(
                            ErrorKind::ConnectionClosed,
                            "IDLE: the server closed the connection",
                        ))
                    }
                    Err(e) => return Err(super::map_err("IDLE", e)),
                },
                _ = stop => Wake::Stopped,
                _ = deadline => Wake::Timeout,
            };
            drop(interrupt);
            wake
        };
        let inner = with_timeout(timeout, "IDLE DONE", async {
            handle
                .done()
                .await
                .map_err(|e| super::map_err("IDLE DONE", e))
        })
        .await?;
        Ok((Session::from_parts(inner, caps, timeout), wake))
    }

    /// Without IDLE: sleeps `interval` (at most `max_wait`) unless `stop` completes first, then
    /// sends NOOP so the server may report news and the connection is checked.
    pub async fn poll(
        &mut self,
        interval: Duration,
        max_wait: Duration,
        stop: impl Future<Output = ()>,
    ) -> Result<Wake> {
        let pause = interval.min(max_wait);
        let stopped = futures::select_biased! {
            _ = stop.fuse() => true,
            _ = FutureExt::fuse(smol::Timer::after(pause)) => false,
        };
        if stopped {
            return Ok(Wake::Stopped);
        }
        self.noop().await?;
        Ok(if self.take_news() {
            Wake::NewData
        } else {
            Wake::Timeout
        })
    }
}
