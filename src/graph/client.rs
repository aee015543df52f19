//! The HTTP side of Graph for one mailbox: at most [`MAX_CONCURRENT`] requests at a time (the
//! per-mailbox concurrency Exchange Online allows), each on a kept-alive connection taken from
//! a small pool (so sequential requests reuse one connection), throttling answers (429, 503,
//! 504) honoured with their `Retry-After`, and gzip asked for on JSON answers.

use crate::error::{Error, ErrorKind, Result};
use crate::http::conn::{Answer, Connection, Overflow};
use crate::http::HttpOptions;
use crate::secret::Secret;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Requests in flight per mailbox at most (Exchange Online's per-mailbox concurrency limit).
pub const MAX_CONCURRENT: usize = 4;
/// Throttled answers taken in a row for one request before giving up (the caller's backoff
/// takes over).
const MAX_THROTTLE_RETRIES: u32 = 6;
/// Longest single wait for a `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// Largest JSON answer accepted (delta pages, batches).
pub const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

/// Requests to one Graph endpoint for one mailbox.
pub struct Client {
    base: String,
    opts: HttpOptions,
    idle: Mutex<Vec<Connection>>,
    permits: smol::lock::Semaphore,
    /// Connections opened (each connection counted once).
    opened: AtomicU64,
    /// Requests sent (retries included).
    requests: AtomicU64,
    /// Throttled answers received.
    throttled: AtomicU64,
    /// Waits for throttling end sooner in tests.
    pub retry_scale: f64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

/// Seconds of a `Retry-After` header (delta-seconds; an HTTP date counts as 5 s).
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    let v = value?.trim();
    if v.is_empty() {
        return None;
    }
    match v.parse::<u64>() {
        Ok(n) => Some(Duration::from_secs(n)),
        Err(_) => Some(Duration::from_secs(5)),
    }
}

impl Client {
    /// A client for the Graph service root `base` (`https://graph.microsoft.com`).
    pub fn new(base: &str, opts: HttpOptions) -> Result<Client> {
        // Checks the URL (https, or http for loopback) now.
        Connection::new(base, opts.clone())?;
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            opts,
            idle: Mutex::new(Vec::new()),
            permits: smol::lock::Semaphore::new(MAX_CONCURRENT),
            opened: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            retry_scale: 1.0,
        })
    }

    /// The service root.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Connections opened so far.
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Requests sent so far.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Throttled answers so far.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// Drops every idle connection (after an interrupted operation).
    pub fn reset(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// `path_and_query` of an absolute URL Graph handed out (`@odata.nextLink`), which must
    /// point at this client's service root: the token is never sent anywhere else.
    pub fn relative(&self, url: &str) -> Result<String> {
        let lower_base = self.base.to_ascii_lowercase();
        if url.len() > self.base.len()
            && url[..self.base.len()].to_ascii_lowercase() == lower_base
            && url.as_bytes()[self.base.len()] == b'/'
        {
            return Ok(url[self.base.len()..].to_string());
        }
        // Graph writes the default port explicitly at times; compare origins by parsing.
        let a = crate::http::Url::parse(url)?;
        let b = crate::http::Url::parse(&self.base)?;
        if a.scheme == b.scheme && a.host == b.host && a.port == b.port {
            return Ok(a.path);
        }
        Err(Error::new(
            ErrorKind::Protocol,
            format!(
                "Microsoft Graph returned a link to {} instead of {}; it is not followed (the \
                 access token goes to the configured endpoint only)",
                a.authority(),
                b.authority()
            ),
        ))
    }

    /// Sends one request with the bearer `token`, retrying throttled answers after their
    /// `Retry-After` (at most [`MAX_THROTTLE_RETRIES`] times; the last throttled answer is
    /// returned). JSON requests ask for gzip.
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &self,
        token: &Secret,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
        max_body: usize,
        overflow: Overflow,
    ) -> Result<Answer> {
        let auth = zeroize::Zeroizing::new(format!("Bearer {}", token.expose()));
        let mut headers: Vec<(&str, &str)> = vec![("Authorization", auth.as_str())];
        let json = overflow == Overflow::Fail;
        if json {
            headers.push(("Accept", "application/json"));
            headers.push(("Accept-Encoding", "gzip"));
        }
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        headers.extend_from_slice(extra);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let answer = {
                let _permit = self.permits.acquire().await;
                let conn = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
                let mut conn = match conn {
                    Some(c) => c,
                    None => Connection::new(&self.base, self.opts.clone())?,
                };
                let before = conn.opened;
                self.requests.fetch_add(1, Ordering::Relaxed);
                let r = conn
                    .request(method, path, &headers, body, max_body, overflow)
                    .await;
                self.opened
                    .fetch_add(conn.opened - before, Ordering::Relaxed);
                if r.is_ok() {
                    self.idle
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(conn);
                }
                r?
            };
            let status = answer.response.status;
            if !matches!(status, 429 | 503 | 504) || attempt > MAX_THROTTLE_RETRIES {
                return Ok(answer);
            }
            self.throttled.fetch_add(1, Ordering::Relaxed);
            let wait = retry_after(answer.response.header("retry-after"))
                .unwrap_or(Duration::from_secs(1u64 << attempt.min(6)))
                .min(MAX_RETRY_AFTER);
            let wait = wait.mul_f64(self.retry_scale);
            log::warn!(
                "Microsoft Graph answered HTTP {status} to {method} {}; trying again in {} s (Retry-After)",
                path.split('?').next().unwrap_or_default(),
                wait.as_secs_f64()
            );
            smol::Timer::after(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_values() {
        assert_eq!(retry_after(Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::from_secs(5))
        );
        assert_eq!(retry_after(None), None);
    }

    #[test]
    fn links_must_stay_on_the_endpoint() {
        let c = Client::new("https://graph.microsoft.com", HttpOptions::default()).unwrap();
        assert_eq!(
            c.relative("https://graph.microsoft.com/v1.0/users/a@b/mailFolders/x/messages/delta?$skiptoken=abc")
                .unwrap(),
            "/v1.0/users/a@b/mailFolders/x/messages/delta?$skiptoken=abc"
        );
        assert_eq!(
            c.relative("https://GRAPH.microsoft.com:443/v1.0/x")
                .unwrap(),
            "/v1.0/x"
        );
        let e = c.relative("https://evil.example/v1.0/x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(Client::new("http://graph.microsoft.com", HttpOptions::default()).is_err());
    }
}
