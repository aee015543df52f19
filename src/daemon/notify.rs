//! Telling a person when a mailbox fails and when it recovers, so a revoked grant or a changed
//! password is never silent: `notify_command` (a program) and/or `notify_webhook` (a JSON POST).

use crate::error::{Error, ErrorKind, Result};
use crate::http::{self, HttpOptions};
use crate::net::with_timeout;
use crate::secret::Secret;
use std::path::PathBuf;
use std::time::Duration;

/// How long a notification may take before it is given up (it is logged either way).
const LIMIT: Duration = Duration::from_secs(20);

/// A failure or recovery of one mailbox, or a credential whose end is near.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The mailbox entered a failed state.
    Failed,
    /// The mailbox works again.
    Recovered,
    /// A credential of the mailbox ends soon or has ended (refresh token unused for 76 days,
    /// client secret or certificate expiring within 30 days); `kind` names it.
    CredentialExpiring,
}

impl Event {
    /// `failed` or `recovered`.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Failed => "failed",
            Event::Recovered => "recovered",
            Event::CredentialExpiring => "credential_expiring",
        }
    }
}

/// The configured notification channels.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    /// `notify_command`.
    pub command: Option<PathBuf>,
    /// `notify_webhook`.
    pub webhook: Option<Secret>,
}

impl Notifier {
    /// Sends `event` for `mailbox` on every configured channel; failures are logged.
    pub async fn notify(
        &self,
        mailbox: &str,
        event: Event,
        message: &str,
        kind: &str,
        fix: Option<&str>,
    ) {
        if let Some(cmd) = &self.command {
            if let Err(e) = run_command(cmd, mailbox, event, message).await {
                log::error!("mailbox {mailbox}: notify_command failed: {e}");
            }
        }
        if let Some(url) = &self.webhook {
            if let Err(e) = post(url, mailbox, event, message, kind, fix).await {
                log::error!("mailbox {mailbox}: notify_webhook failed: {e}");
            }
        }
    }
}

async fn run_command(cmd: &PathBuf, mailbox: &str, event: Event, message: &str) -> Result<()> {
    let what = format!("notify_command {}", cmd.display());
    let mut child = smol::process::Command::new(cmd)
        .arg(mailbox)
        .arg(event.as_str())
        .arg(message)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::new(ErrorKind::Io, format!("{what}: cannot start: {e}")))?;
    let status = with_timeout(LIMIT, &what, async {
        child
            .status()
            .await
            .map_err(|e| Error::new(ErrorKind::Io, format!("{what}: {e}")))
    })
    .await?;
    if status.success() {
        log::info!(
            "mailbox {mailbox}: notified ({}) via {what}",
            event.as_str()
        );
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Io,
            format!("{what}: exited with {status}"),
        ))
    }
}

/// The JSON event body.
pub fn event_json(
    mailbox: &str,
    event: Event,
    message: &str,
    kind: &str,
    fix: Option<&str>,
) -> String {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        mailbox: &'a str,
        event: &'a str,
        message: &'a str,
        kind: &'a str,
        fix: Option<&'a str>,
        at: u64,
    }
    crate::state::to_json(&Body {
        mailbox,
        event: event.as_str(),
        message,
        kind,
        fix,
        at: super::status::now(),
    })
}

async fn post(
    url: &Secret,
    mailbox: &str,
    event: Event,
    message: &str,
    kind: &str,
    fix: Option<&str>,
) -> Result<()> {
    let body = event_json(mailbox, event, message, kind, fix);
    // Chat webhooks carry their key in the path: keep it out of messages.
    let path = http::Url::parse(url.expose())
        .map(|u| u.path_only().to_string())
        .unwrap_or_default();
    let hide = |e: Error| {
        let msg = if path.len() > 1 {
            e.message().replace(&path, "/…")
        } else {
            e.message().to_string()
        };
        Error::new(e.kind(), msg)
    };
    let opts = HttpOptions {
        timeout: LIMIT,
        max_response_bytes: 64 * 1024,
        ..HttpOptions::default()
    };
    let mut last = None;
    for attempt in 0..3u32 {
        if attempt > 0 {
            smol::Timer::after(Duration::from_secs(2u64 << attempt)).await;
        }
        match http::request(
            "POST",
            url.expose(),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
            &opts,
        )
        .await
        {
            Ok(r) if r.is_success() => {
                log::info!(
                    "mailbox {mailbox}: notified ({}) via notify_webhook",
                    event.as_str()
                );
                return Ok(());
            }
            Ok(r) => {
                last = Some(Error::new(
                    ErrorKind::Delivery,
                    format!("answered HTTP {}", r.status),
                ))
            }
            Err(e) => last = Some(hide(e)),
        }
    }
    Err(last.unwrap_or_else(|| Error::new(ErrorKind::Delivery, "not sent")))
}
