//! Authentication: LOGIN (Basic) and SASL XOAUTH2. The password never goes to the server when
//! OAuth is on; XOAUTH2 carries only the access token.

use super::connect::Greeted;
use super::mailbox::Session;
use super::server_text_of;
use crate::error::{Error, ErrorKind, Result};
use crate::net::with_timeout;
use crate::secret::Secret;
use base64::Engine;
use std::time::Duration;

/// What to authenticate with.
pub enum Credentials<'a> {
    /// `LOGIN username password`.
    Login {
        username: &'a str,
        password: &'a Secret,
    },
    /// `AUTHENTICATE XOAUTH2` for mailbox `user` with a bearer `token`.
    XOAuth2 { user: &'a str, token: &'a Secret },
}

/// A failed authentication: the error and, when the connection is still usable, the client to try
/// again on (e.g. with a renewed token).
pub struct AuthFailure {
    /// What went wrong.
    pub error: Error,
    /// The connection, still greeted and unauthenticated, when it survived.
    pub retry_on: Option<Greeted>,
}

impl From<Error> for AuthFailure {
    fn from(error: Error) -> Self {
        AuthFailure {
            error,
            retry_on: None,
        }
    }
}

/// The SASL XOAUTH2 initial response (RFC-less, as Google and Microsoft define it).
pub fn xoauth2_initial_response(user: &str, token: &str) -> Vec<u8> {
    format!("user={user}\x01auth=Bearer {token}\x01\x01").into_bytes()
}

struct XOAuth2<'a> {
    initial: &'a [u8],
    /// The server's error challenge (Dovecot and Gmail send JSON before the final NO).
    challenge: &'a mut Option<String>,
}

impl async_imap::Authenticator for XOAuth2<'_> {
    type Response = Vec<u8>;

    fn process(&mut self, challenge: &[u8]) -> Vec<u8> {
        if challenge.is_empty() {
            // The continuation form: the server asks for the initial response.
            self.initial.to_vec()
        } else {
            // An error challenge: RFC 7628 says answer with an empty response to get the NO.
            *self.challenge = Some(String::from_utf8_lossy(challenge).into_owned());
            Vec::new()
        }
    }
}

/// Authenticates on a greeted connection. `encrypted` tells whether the transport is TLS;
/// `allow_plaintext` whether LOGIN may travel in the clear.
pub async fn authenticate(
    greeted: Greeted,
    credentials: Credentials<'_>,
    encrypted: bool,
    allow_plaintext: bool,
    timeout: Duration,
) -> std::result::Result<Session, AuthFailure> {
    let Greeted {
        client,
        capabilities,
        greeting,
    } = greeted;
    match credentials {
        Credentials::Login { username, password } => {
            if capabilities.has("LOGINDISABLED") {
                return Err(Error::new(
                    ErrorKind::PlaintextRefused,
                    "the server refuses LOGIN on this connection (LOGINDISABLED)",
                )
                .with_fix("use encryption \"ssl\" (port 993) or \"starttls\" (port 143)")
                .into());
            }
            if !encrypted && !allow_plaintext {
                return Err(Error::new(
                    ErrorKind::PlaintextRefused,
                    "refusing to send the password over an unencrypted connection",
                )
                .with_fix("use encryption \"ssl\" or \"starttls\"; only for a trusted network set imap.allow_plaintext: true")
                .into());
            }
            let attempt = with_timeout(timeout, "LOGIN", async {
                Ok(client.login(username, password.expose()).await)
            })
            .await?;
            match attempt {
                Ok(session) => Ok(Session::new(session, capabilities, timeout)),
                Err((e, client)) => {
                    let text = server_text_of(&e);
                    let error = if super::is_unavailable_text(&text) {
                        Error::new(
                            ErrorKind::ServerUnavailable,
                            format!("LOGIN: the server is temporarily unavailable: {text}"),
                        )
                    } else if matches!(e, async_imap::error::Error::No(_)) {
                        Error::new(
                            ErrorKind::LoginFailed,
                            format!("LOGIN as {username} was refused: {text}"),
                        )
                        .with_fix(
                            "check the username and password; Microsoft 365 refuses Basic \
                             authentication: enable OAuth 2.0 for it",
                        )
                    } else {
                        super::map_err("LOGIN", e)
                    };
                    Err(AuthFailure {
                        error,
                        retry_on: Some(Greeted {
                            client,
                            capabilities,
                            greeting,
                        }),
                    })
                }
            }
        }
        Credentials::XOAuth2 { user, token } => {
            let initial = xoauth2_initial_response(user, token.expose());
            let mut challenge = None;
            // With SASL-IR the initial response rides on the command itself (one round trip);
            // async-imap sends `AUTHENTICATE <mechanism>` verbatim, so the mechanism string
            // carries it.
            let ir;
            let mechanism = if capabilities.has("SASL-IR") {
                ir = format!(
                    "XOAUTH2 {}",
                    base64::engine::general_purpose::STANDARD.encode(&initial)
                );
                ir.as_str()
            } else {
                "XOAUTH2"
            };
            let auth = XOAuth2 {
                initial: &initial,
                challenge: &mut challenge,
            };
            let attempt = with_timeout(timeout, "AUTHENTICATE XOAUTH2", async {
                Ok(client.authenticate(mechanism, auth).await)
            })
            .await?;
            match attempt {
                Ok(session) => Ok(Session::new(session, capabilities, timeout)),
                Err((e, client)) => {
                    let text = server_text_of(&e);
                    let detail = challenge
                        .as_deref()
                        .map(|c| format!(" (server detail: {})", c.trim()))
                        .unwrap_or_default();
                    let error = if super::is_unavailable_text(&text) {
                        Error::new(
                            ErrorKind::ServerUnavailable,
                            format!(
                                "AUTHENTICATE XOAUTH2: temporarily unavailable: {text}{detail}"
                            ),
                        )
                    } else if matches!(
                        e,
                        async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_)
                    ) {
                        Error::new(
                            ErrorKind::ImapOAuthRejected,
                            format!("AUTHENTICATE XOAUTH2 for {user} was refused: {text}{detail}"),
                        )
                    } else {
                        super::map_err("AUTHENTICATE XOAUTH2", e)
                    };
                    Err(AuthFailure {
                        error,
                        retry_on: Some(Greeted {
                            client,
                            capabilities,
                            greeting,
                        }),
                    })
                }
            }
        }
    }
}

/// Result alias used by callers that do not need the retry connection.
pub fn into_result(r: std::result::Result<Session, AuthFailure>) -> Result<Session> {
    r.map_err(|f| f.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_response_layout() {
        assert_eq!(
            xoauth2_initial_response("helpdesk@contoso.com", "tok"),
            b"user=helpdesk@contoso.com\x01auth=Bearer tok\x01\x01".to_vec()
        );
    }
}
