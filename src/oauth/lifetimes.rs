//! Credential lifetimes the administrator sees coming: when each refresh token was last renewed
//! (Microsoft ends a refresh token after 90 days without use: warned 14 days ahead), and when the
//! client secret (`oauth.client_secret_expires`) or the certificate (its notAfter) expires
//! (warned 30 days ahead). Computed from the configuration and the files in the state directory
//! at a given time, so `status`, `test`, the C report and `run`'s notifications agree, and tests
//! inject the clock.

use crate::config::{Flow, Mailbox};
use std::path::Path;

/// Microsoft ends a refresh token unused this long (90 days).
pub const REFRESH_INACTIVITY_SECS: u64 = 90 * 86_400;
/// A refresh token is warned about this long before its inactivity end (14 days).
pub const REFRESH_WARNING_SECS: u64 = 14 * 86_400;
/// Client secrets and certificates are warned about this long before they expire (30 days).
pub const EXPIRY_WARNING_SECS: u64 = 30 * 86_400;

/// Which credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// The stored refresh token (delegated flows).
    RefreshToken,
    /// The app's client secret.
    ClientSecret,
    /// The app's certificate.
    Certificate,
}

impl CredentialKind {
    /// `refresh_token`, `client_secret` or `certificate`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::RefreshToken => "refresh_token",
            CredentialKind::ClientSecret => "client_secret",
            CredentialKind::Certificate => "certificate",
        }
    }
}

/// How a credential's lifetime stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifetimeState {
    /// Far from its end (or it has none).
    Ok,
    /// Its end is within the warning time.
    Expiring,
    /// It ended.
    Expired,
    /// Its end is not known (no expiry configured, a cache of an older version, an unreadable
    /// certificate).
    Unknown,
}

impl LifetimeState {
    /// `ok`, `expiring`, `expired` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            LifetimeState::Ok => "ok",
            LifetimeState::Expiring => "expiring",
            LifetimeState::Expired => "expired",
            LifetimeState::Unknown => "unknown",
        }
    }
}

/// One credential of a mailbox and how long it lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Which credential.
    pub kind: CredentialKind,
    /// What it is, in the admin's words ("the refresh token of alice@contoso.com").
    pub what: String,
    /// Unix seconds of its last renewal (refresh tokens).
    pub renewed_at: Option<u64>,
    /// Unix seconds of its end (a refresh token's: 90 days after its last renewal).
    pub expires_at: Option<u64>,
    /// Where it stands.
    pub state: LifetimeState,
    /// One line for `status` and `test`.
    pub detail: String,
    /// What to do, when it is expiring or expired.
    pub fix: Option<String>,
}

impl Credential {
    /// Whether the admin should act (expiring or expired).
    pub fn needs_attention(&self) -> bool {
        matches!(self.state, LifetimeState::Expiring | LifetimeState::Expired)
    }
}

fn day(secs: u64) -> String {
    super::utc_text(secs)[..10].to_string()
}

fn days_left(end: u64, now: u64) -> String {
    let d = end.saturating_sub(now).div_ceil(86_400);
    if d == 1 {
        "1 day".into()
    } else {
        format!("{d} days")
    }
}

fn state_of(end: u64, warning: u64, now: u64) -> LifetimeState {
    if now >= end {
        LifetimeState::Expired
    } else if now + warning >= end {
        LifetimeState::Expiring
    } else {
        LifetimeState::Ok
    }
}

/// The credentials of `mailbox` whose lifetime can be told, at `now`: its refresh token (from
/// the token cache at `token_cache`), its client secret, its certificate.
pub fn credentials(mailbox: &Mailbox, token_cache: &Path, now: u64) -> Vec<Credential> {
    let mut out = Vec::new();
    let oauth = &mailbox.oauth;
    if !oauth.enabled {
        return out;
    }
    let sign_in = match oauth.flow {
        Flow::DeviceCode => format!(
            "run `psa-mail-agent login --config <config file> --mailbox {:?}`",
            mailbox.name
        ),
        _ => "the agent signs in with the configured password again; only if that fails, check the password".to_string(),
    };
    if oauth.flow != Flow::ClientCredentials {
        if let Some(renewed) = super::cache::refresh_token_renewed(token_cache) {
            let what = format!("the refresh token of {}", mailbox.username);
            out.push(match renewed {
                None => Credential {
                    kind: CredentialKind::RefreshToken,
                    what: what.clone(),
                    renewed_at: None,
                    expires_at: None,
                    state: LifetimeState::Unknown,
                    detail: format!(
                        "{what}: last renewal unknown (cache of an older version; known after the next renewal)"
                    ),
                    fix: None,
                },
                Some(at) => {
                    let end = at + REFRESH_INACTIVITY_SECS;
                    let state = state_of(end, REFRESH_WARNING_SECS, now);
                    let detail = match state {
                        LifetimeState::Expired => format!(
                            "{what}: last renewed {}, unused for 90 days: Microsoft ended it on {}",
                            day(at),
                            day(end)
                        ),
                        _ => format!(
                            "{what}: last renewed {}; ends on {} unless renewed ({} left){}",
                            day(at),
                            day(end),
                            days_left(end, now),
                            if state == LifetimeState::Expiring {
                                " — the agent has not renewed it for over 76 days"
                            } else {
                                ""
                            }
                        ),
                    };
                    let fix = (state != LifetimeState::Ok).then(|| {
                        format!(
                            "keep `psa-mail-agent run` running for this mailbox (every sign-in renews the refresh token) and look at `status` for why it stopped; {}",
                            if state == LifetimeState::Expired {
                                sign_in.clone()
                            } else {
                                "any successful `fetch` or `test` renews it now".to_string()
                            }
                        )
                    });
                    Credential {
                        kind: CredentialKind::RefreshToken,
                        what,
                        renewed_at: Some(at),
                        expires_at: Some(end),
                        state,
                        detail,
                        fix,
                    }
                }
            });
        }
    }
    if oauth.client_secret.is_some() || oauth.client_secret_expires.is_some() {
        let what = format!("the client secret of application {}", oauth.application_id);
        out.push(match oauth.client_secret_expires {
            None => Credential {
                kind: CredentialKind::ClientSecret,
                what: what.clone(),
                renewed_at: None,
                expires_at: None,
                state: LifetimeState::Unknown,
                detail: format!(
                    "{what}: expiry not configured (set oauth.client_secret_expires to the date in the Expires column to be warned 30 days ahead)"
                ),
                fix: None,
            },
            Some(end) => {
                let state = state_of(end, EXPIRY_WARNING_SECS, now);
                Credential {
                    kind: CredentialKind::ClientSecret,
                    what: what.clone(),
                    renewed_at: None,
                    expires_at: Some(end),
                    state,
                    detail: match state {
                        LifetimeState::Expired => format!("{what}: expired on {}", day(end)),
                        _ => format!(
                            "{what}: expires on {} ({} left)",
                            day(end),
                            days_left(end, now)
                        ),
                    },
                    fix: (state != LifetimeState::Ok).then(|| {
                        "App registration > Certificates & secrets > Client secrets: create a new secret, configure its Value (client_secret, client_secret_env or client_secret_file) and its expiry (client_secret_expires), then delete the old one".to_string()
                    }),
                }
            }
        });
    }
    if let Some(path) = &oauth.client_certificate_file {
        let what = format!("the certificate of application {}", oauth.application_id);
        out.push(match super::cert::ClientCertificate::load(path) {
            Err(e) => Credential {
                kind: CredentialKind::Certificate,
                what: what.clone(),
                renewed_at: None,
                expires_at: None,
                state: LifetimeState::Unknown,
                detail: format!("{what}: {}", e.message()),
                fix: e.fix().map(str::to_string),
            },
            Ok(c) => {
                let end = c.not_after();
                let state = state_of(end, EXPIRY_WARNING_SECS, now);
                let what = format!("{what} (thumbprint {})", c.thumbprint());
                Credential {
                    kind: CredentialKind::Certificate,
                    what: what.clone(),
                    renewed_at: None,
                    expires_at: Some(end),
                    state,
                    detail: match state {
                        LifetimeState::Expired => format!("{what}: expired on {}", day(end)),
                        _ => format!(
                            "{what}: expires on {} ({} left)",
                            day(end),
                            days_left(end, now)
                        ),
                    },
                    fix: (state != LifetimeState::Ok).then(|| {
                        "create a new certificate, upload it under App registration > Certificates & secrets > Certificates, point client_certificate_file to it (certificate and key in one PEM file), then delete the old one".to_string()
                    }),
                }
            }
        });
    }
    out
}
