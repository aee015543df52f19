//! Where the daemon (`psa-mail-agent run`) puts tickets: standard output as JSON lines, a spool
//! directory with one file per ticket, or an HTTP webhook.
//!
//! A delivery returns `Ok` only once the ticket is durable at its destination (flushed, renamed
//! into the spool, answered 2xx): only then may the message be acknowledged on the server. Every
//! failure is an error of kind [`ErrorKind::Delivery`](crate::ErrorKind::Delivery); the mailbox
//! is retried later with nothing acknowledged.

pub mod spool;
pub mod webhook;

use crate::config::Output;
use crate::error::{Error, ErrorKind, Result};
use crate::ticket::Ticket;
use std::io::Write;

/// A ticket destination, shared by the mailboxes of one process.
#[derive(Debug, Clone)]
pub enum Sink {
    /// One JSON line per ticket on stdout, flushed per ticket.
    Stdout,
    /// One `NAME.json` per ticket in a directory.
    Spool(spool::Spool),
    /// An HTTP POST per ticket.
    Webhook(webhook::Webhook),
}

impl Sink {
    /// The sink for the configured `output`.
    pub fn new(output: &Output) -> Result<Sink> {
        Ok(match output {
            Output::Stdout => Sink::Stdout,
            Output::Spool { dir } => Sink::Spool(spool::Spool::new(dir)?),
            Output::Webhook {
                url,
                token,
                ca_file,
            } => Sink::Webhook(webhook::Webhook::new(
                url,
                token.clone(),
                ca_file.as_deref(),
            )?),
        })
    }

    /// Whether tickets must carry their attachments' bytes (only the spool writes them; the
    /// other outputs carry metadata, so the agent can drop the bytes and bound its memory).
    pub fn needs_attachment_bytes(&self) -> bool {
        matches!(self, Sink::Spool(_))
    }

    /// Delivers one ticket; `Ok` means it is durable at the destination.
    pub async fn deliver(&self, ticket: &Ticket) -> Result<()> {
        self.deliver_until(ticket, std::future::pending()).await
    }

    /// Like [`Sink::deliver`], but gives up between webhook retries once `stop` completes
    /// (shutdown): never in the middle of a request, and the ticket is not acknowledged.
    pub async fn deliver_until(
        &self,
        ticket: &Ticket,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        match self {
            Sink::Stdout => write_line(&mut std::io::stdout().lock(), ticket),
            Sink::Spool(s) => s.write(ticket),
            Sink::Webhook(w) => w.post_until(ticket, stop).await,
        }
    }
}

fn write_line(out: &mut impl Write, ticket: &Ticket) -> Result<()> {
    writeln!(out, "{}", ticket.to_json())
        .and_then(|_| out.flush())
        .map_err(|e| Error::new(ErrorKind::Delivery, format!("stdout: {e}")))
}
