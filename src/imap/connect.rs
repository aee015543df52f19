//! Reaching an IMAP server: TCP, then implicit TLS, STARTTLS or (only when allowed) plaintext,
//! the greeting and the capabilities. Every step is bounded by the configured timeout.

use super::stream::MailStream;
use super::{protocol_error, raw_command};
use crate::config::Encryption;
use crate::error::{Error, ErrorKind, Result};
use crate::net::with_timeout;
use async_imap::imap_proto::{Capability, Response, Status};
use async_imap::Client;
use futures_rustls::rustls::ClientConfig;
use smol::net::TcpStream;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Where and how to connect.
#[derive(Clone)]
pub struct Target {
    /// Host name (also checked against the certificate).
    pub server: String,
    /// TCP port.
    pub port: u16,
    /// Transport security.
    pub encryption: Encryption,
    /// Per-step timeout.
    pub timeout: Duration,
    /// TLS client settings (roots, private CA).
    pub tls: Arc<ClientConfig>,
}

/// The capabilities a server announced, upper-cased (`AUTH=XOAUTH2`, `IDLE`, `MOVE`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities(BTreeSet<String>);

impl Capabilities {
    /// Whether the server announced `name` (case-insensitive).
    pub fn has(&self, name: &str) -> bool {
        self.0.contains(&name.to_ascii_uppercase())
    }

    /// The capabilities, space-separated, for reports.
    pub fn list(&self) -> String {
        self.0.iter().cloned().collect::<Vec<_>>().join(" ")
    }

    pub(crate) fn from_names(names: impl IntoIterator<Item = String>) -> Self {
        Capabilities(names.into_iter().collect())
    }

    pub(crate) fn from_proto(caps: &[Capability<'_>]) -> Self {
        Capabilities(
            caps.iter()
                .map(|c| match c {
                    Capability::Imap4rev1 => "IMAP4REV1".to_string(),
                    Capability::Auth(m) => format!("AUTH={}", m.to_ascii_uppercase()),
                    Capability::Atom(a) => a.to_ascii_uppercase(),
                })
                .collect(),
        )
    }
}

/// A connected, greeted, not yet authenticated client.
pub struct Greeted {
    /// The async-imap client over the (possibly encrypted) stream.
    pub client: Client<MailStream>,
    /// What the server announced on this (final) transport.
    pub capabilities: Capabilities,
    /// The text of the server's greeting (for STARTTLS the one before the upgrade).
    pub greeting: String,
}

impl Greeted {
    /// Whether the server introduced itself as Microsoft Exchange (Exchange Online greets
    /// `* OK The Microsoft Exchange IMAP4 service is ready. [...]`): its refusals then mean what
    /// Exchange means by them.
    pub fn is_exchange(&self) -> bool {
        is_exchange_greeting(&self.greeting)
    }
}

/// Whether a greeting text is Exchange's.
pub fn is_exchange_greeting(greeting: &str) -> bool {
    greeting.to_ascii_lowercase().contains("microsoft exchange")
}

/// Step 1: the TCP connection.
pub async fn tcp(target: &Target) -> Result<TcpStream> {
    crate::net::connect_tcp(&target.server, target.port, target.timeout).await
}

/// Step 2: transport security and the greeting. For `starttls` this reads the plaintext greeting,
/// checks STARTTLS is offered (never falling back to plaintext) and upgrades. Returns the client
/// and the greeting's text.
pub async fn secure(target: &Target, tcp: TcpStream) -> Result<(Client<MailStream>, String)> {
    match target.encryption {
        Encryption::Ssl => {
            let tls =
                crate::tls::handshake(target.tls.clone(), &target.server, tcp, target.timeout)
                    .await?;
            let mut client = Client::new(MailStream::tls(tls));
            let greeting = read_greeting(&mut client, target).await?;
            Ok((client, greeting))
        }
        Encryption::None => {
            let mut client = Client::new(MailStream::plain(tcp));
            let greeting = read_greeting(&mut client, target).await?;
            Ok((client, greeting))
        }
        Encryption::StartTls => {
            let mut client = Client::new(MailStream::plain(tcp));
            let greeting = read_greeting(&mut client, target).await?;
            let caps = capabilities(&mut client, target.timeout).await?;
            if !caps.has("STARTTLS") {
                return Err(Error::new(
                    ErrorKind::StartTlsNotOffered,
                    format!(
                        "{}:{} does not offer STARTTLS; refusing to continue without encryption",
                        target.server, target.port
                    ),
                )
                .with_fix("use encryption \"ssl\" on port 993, or enable STARTTLS on the server"));
            }
            let outcome = with_timeout(target.timeout, "STARTTLS", async {
                raw_command(&mut client, "P2", "STARTTLS", |_| ()).await
            })
            .await?;
            if !outcome {
                return Err(Error::new(
                    ErrorKind::StartTlsNotOffered,
                    format!("{} refused STARTTLS", target.server),
                ));
            }
            // Anything the server sent after its OK and before the handshake is discarded with
            // the old client: accepting it would let an attacker inject responses (RFC 2595).
            let Some(tcp) = client.into_inner().into_plain() else {
                return Err(protocol_error("STARTTLS on an already encrypted stream"));
            };
            let tls =
                crate::tls::handshake(target.tls.clone(), &target.server, tcp, target.timeout)
                    .await?;
            Ok((Client::new(MailStream::tls(tls)), greeting))
        }
    }
}

/// Step 3: what the server can do (asked on the final transport: pre-STARTTLS answers are not
/// trusted).
pub async fn capabilities(
    client: &mut Client<MailStream>,
    timeout: Duration,
) -> Result<Capabilities> {
    let mut caps = Capabilities::default();
    let status = with_timeout(timeout, "CAPABILITY", async {
        raw_command(client, "P1", "CAPABILITY", |resp| {
            if let Response::Capabilities(list) = resp {
                caps = Capabilities::from_proto(list);
            }
        })
        .await
    })
    .await?;
    if !status {
        return Err(protocol_error("the server refused CAPABILITY"));
    }
    Ok(caps)
}

/// Steps 1–3 in one call.
pub async fn connect(target: &Target) -> Result<Greeted> {
    let tcp = tcp(target).await?;
    let (mut client, greeting) = secure(target, tcp).await?;
    let capabilities = capabilities(&mut client, target.timeout).await?;
    Ok(Greeted {
        client,
        capabilities,
        greeting,
    })
}

async fn read_greeting(client: &mut Client<MailStream>, target: &Target) -> Result<String> {
    let what = format!("greeting from {}:{}", target.server, target.port);
    with_timeout(target.timeout, &what, async {
        let resp = client
            .read_response()
            .await
            .map_err(|e| super::stream_error(&what, e))?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::ConnectionClosed,
                    format!("{what}: connection closed"),
                )
                .with_fix("check the port and encryption type (993 = ssl, 143 = starttls)")
            })?;
        match resp.parsed() {
            Response::Data {
                status: Status::Ok,
                outcome,
            } => Ok(crate::imap::bounded(
                outcome.information.as_deref().unwrap_or(""),
                300,
            )),
            Response::Data {
                status: Status::Bye,
                outcome,
            } => Err(Error::new(
                ErrorKind::ServerUnavailable,
                format!(
                    "{what}: BYE {}",
                    outcome.information.as_deref().unwrap_or("")
                ),
            )),
            Response::Data {
                status: Status::PreAuth,
                ..
            } => Err(protocol_error(format!("{what}: PREAUTH is not supported"))),
            _ => Err(protocol_error(format!("{what}: not an IMAP greeting"))
                .with_fix("check the port and encryption type (993 = ssl, 143 = starttls)")),
        }
    })
    .await
}
