//! Webhook delivery: an HTTP POST of the ticket JSON, `Authorization: Bearer <token>` when a
//! token is configured. Only a 2xx answer counts as delivered. Temporary failures (network,
//! timeouts, 408, 429, 5xx) are retried a few times with backoff; other answers fail at once.
//! Plain http is accepted only for loopback hosts (checked by [`crate::http`]).

use crate::backoff::Backoff;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{self, HttpOptions};
use crate::secret::Secret;
use crate::ticket::Ticket;
use std::path::Path;
use std::time::Duration;

/// Attempts per ticket before the delivery fails (the mailbox is then retried later).
pub const ATTEMPTS: u32 = 5;

/// A webhook endpoint.
#[derive(Clone)]
pub struct Webhook {
    url: String,
    token: Option<Secret>,
    opts: HttpOptions,
    first_retry: Duration,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.url.split('?').next().unwrap_or_default();
        f.debug_struct("Webhook")
            .field("url", &shown)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Webhook {
    /// A webhook posting to `url`.
    pub fn new(url: &str, token: Option<Secret>, ca_file: Option<&Path>) -> Result<Webhook> {
        http::Url::parse(url)?.require_secure_transport("output.url")?;
        Ok(Webhook {
            url: url.to_string(),
            token,
            opts: HttpOptions {
                timeout: Duration::from_secs(30),
                ca_file: ca_file.map(Path::to_path_buf),
                proxy: None,
                max_response_bytes: 64 * 1024,
            },
            first_retry: Duration::from_millis(500),
        })
    }

    /// Posts `ticket`, retrying temporary failures; `Ok` only after a 2xx answer.
    pub async fn post(&self, ticket: &Ticket) -> Result<()> {
        self.post_until(ticket, std::future::pending()).await
    }

    /// [`Webhook::post`] that stops retrying once `stop` completes.
    pub async fn post_until(
        &self,
        ticket: &Ticket,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        use futures::FutureExt;
        let stop = stop.fuse();
        futures::pin_mut!(stop);
        let body = ticket.to_json();
        let auth = self
            .token
            .as_ref()
            .map(|t| zeroize::Zeroizing::new(format!("Bearer {}", t.expose())));
        let key = super::spool::ticket_stem(&ticket.mailbox, &ticket.dedupe_key);
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key.as_str()),
        ];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let mut backoff = Backoff::new(self.first_retry, Duration::from_secs(8));
        let mut attempt = 1;
        loop {
            let r = http::request("POST", &self.url, &headers, body.as_bytes(), &self.opts).await;
            let failure = match r {
                Ok(resp) if resp.is_success() => return Ok(()),
                Ok(resp) => {
                    let retry = matches!(resp.status, 408 | 429 | 500..=599);
                    let mut e = Error::new(
                        ErrorKind::Delivery,
                        format!("webhook answered HTTP {}", resp.status),
                    );
                    if matches!(resp.status, 401 | 403) {
                        e = e.with_fix("check output.token: the webhook refused the bearer token");
                    }
                    if !retry {
                        return Err(e);
                    }
                    e
                }
                Err(e) if e.kind() == ErrorKind::Config => return Err(e),
                Err(e) => Error::new(ErrorKind::Delivery, format!("webhook: {}", e.message())),
            };
            if attempt >= ATTEMPTS {
                return Err(failure.context(format!("after {ATTEMPTS} attempts")));
            }
            let delay = backoff.next_delay();
            log::info!(
                "mailbox {}: {}; retrying in {} ms",
                ticket.mailbox,
                failure.message(),
                delay.as_millis()
            );
            let stopped = futures::select_biased! {
                _ = stop => true,
                _ = FutureExt::fuse(smol::Timer::after(delay)) => false,
            };
            if stopped {
                return Err(failure.context("stopping; not retried"));
            }
            attempt += 1;
        }
    }
}
