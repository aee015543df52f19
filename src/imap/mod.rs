//! IMAP: connect (TCP, TLS, STARTTLS), authenticate (LOGIN, XOAUTH2), fetch and acknowledge.
//! The wire does not read mail: it moves bytes and flags; the agent hands bytes to `ticket`.

pub mod auth;
pub mod connect;
pub mod idle;
pub mod mailbox;
pub mod stream;

pub use auth::{AuthFailure, Credentials};
pub use connect::{Capabilities, Greeted, Target};
pub use idle::Wake;
pub use mailbox::{Arrived, FetchedMessage, Folder, Session};
pub use stream::MailStream;

use crate::error::{Error, ErrorKind, Result};
use async_imap::imap_proto::{Response, Status};
use async_imap::Client;
use futures::io::AsyncWriteExt;

pub(crate) fn protocol_error(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Protocol, what.into())
}

/// Sends `TAG COMMAND` on a not yet authenticated client and reads responses up to the tagged one,
/// handing every untagged one to `on_untagged`; true when it ended in OK. Used before authentication, where async-imap
/// offers no way to see the CAPABILITY data.
pub(crate) async fn raw_command(
    client: &mut Client<MailStream>,
    tag: &str,
    command: &str,
    mut on_untagged: impl FnMut(&Response<'_>),
) -> Result<bool> {
    let line = format!("{tag} {command}\r\n");
    let stream = client.get_mut();
    stream.write_all(line.as_bytes()).await?;
    stream.flush().await?;
    loop {
        let resp = client
            .read_response()
            .await
            .map_err(|e| stream_error(command, e))?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::ConnectionClosed,
                    format!("{command}: connection closed"),
                )
            })?;
        match resp.parsed() {
            Response::Done { tag: t, status, .. } if t.0 == tag => {
                return Ok(matches!(status, Status::Ok))
            }
            Response::Data {
                status: Status::Bye,
                outcome,
            } => {
                return Err(Error::new(
                    ErrorKind::ServerUnavailable,
                    format!(
                        "{command}: server said BYE {}",
                        outcome.information.as_deref().unwrap_or("")
                    ),
                ))
            }
            other => on_untagged(other),
        }
    }
}

/// Maps an async-imap error of `command` to the core error, keeping the server's words.
pub(crate) fn map_err(command: &str, e: async_imap::error::Error) -> Error {
    use async_imap::error::Error as E;
    match e {
        E::Io(io) => stream_error(command, io),
        E::ConnectionLost => Error::new(
            ErrorKind::ConnectionClosed,
            format!("{command}: connection lost"),
        ),
        E::No(text) | E::Bad(text) => {
            let info = bounded(&server_text(&text), MAX_QUOTED);
            let kind = if is_unavailable_text(&info) {
                ErrorKind::ServerUnavailable
            } else {
                ErrorKind::ServerRefused
            };
            Error::new(kind, format!("{command}: the server answered: {info}"))
        }
        E::Parse(p) => protocol_error(format!(
            "{command}: unreadable server response: {}",
            bounded(&p.to_string(), MAX_QUOTED)
        )),
        E::Validate(v) => Error::new(ErrorKind::Config, format!("{command}: {v}")),
        other => Error::new(
            ErrorKind::Protocol,
            format!("{command}: {}", bounded(&other.to_string(), MAX_QUOTED)),
        ),
    }
}

/// Whether a server's NO/BAD text says it is temporarily unavailable: the `[UNAVAILABLE]` code
/// (RFC 5530), or Exchange Online's `Server Unavailable. 15` (a back end it cannot reach).
pub(crate) fn is_unavailable_text(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    upper.contains("[UNAVAILABLE]") || upper.contains("SERVER UNAVAILABLE.")
}

/// Whether `e` carries Exchange Online's `User is authenticated but not connected.`: the sign-in
/// was accepted, but the account may not open the mailbox named in `user=`.
pub fn is_not_connected(e: &Error) -> bool {
    e.message()
        .to_ascii_lowercase()
        .contains("user is authenticated but not connected")
}

/// Longest piece of server data quoted in an error message (async-imap's parse errors carry the
/// whole unparsed buffer, which a hostile server can make arbitrarily large).
const MAX_QUOTED: usize = 300;

/// Maps a failure reading or writing the IMAP stream. Anything that is not a plain network
/// condition (timeout, reset, EOF) means the bytes made no sense: corrupt TLS records, an
/// unparseable response, a response over the size limit. That is a protocol error, so the
/// session is dropped and the next call reconnects instead of reusing a stream in an unknown
/// state.
pub(crate) fn stream_error(command: &str, e: std::io::Error) -> Error {
    let mapped = Error::from(e);
    let message = bounded(mapped.message(), MAX_QUOTED);
    let kind = match mapped.kind() {
        ErrorKind::Io => ErrorKind::Protocol,
        k => k,
    };
    let what = if kind == ErrorKind::Protocol {
        format!("{command}: unreadable data from the server: {message}")
    } else {
        format!("{command}: {message}")
    };
    Error::new(kind, what)
}

/// `text` cut to at most `max` bytes at a character boundary, marked when cut.
pub(crate) fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

/// The server's words in an async-imap error, for messages.
pub(crate) fn server_text_of(e: &async_imap::error::Error) -> String {
    use async_imap::error::Error as E;
    match e {
        E::No(t) | E::Bad(t) => server_text(t),
        other => other.to_string(),
    }
}

/// async-imap formats NO/BAD as `code: Some(..), info: Some("..")` (or as a Debug `Outcome`);
/// keep the readable part, with the response code in IMAP's own brackets (`[TRYCREATE] …`).
pub(crate) fn server_text(raw: &str) -> String {
    let info = raw
        .split_once("info: Some(\"")
        .or_else(|| raw.split_once("information: Some(\""))
        .map(|(_, rest)| {
            rest.trim_end_matches(" }")
                .trim_end_matches("\")")
                .replace("\\\"", "\"")
        });
    let code = raw
        .split_once("code: Some(")
        .map(|(_, rest)| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_uppercase()
        })
        .filter(|c| !c.is_empty());
    match (code, info) {
        (Some(code), Some(info)) => format!("[{code}] {info}"),
        (None, Some(info)) => info,
        _ => raw.to_string(),
    }
}

/// Fuzzing entry (not part of the API): `data` as bytes from a server, through our response
/// limit, async-imap's response parser (a client over an in-memory stream, read response by
/// response as the session does) and our mapping of server text into errors. Returns the number
/// of responses parsed.
#[doc(hidden)]
pub fn fuzz_server_bytes(data: &[u8]) -> usize {
    let mut limit = stream::ResponseLimit::new(4096, 4096);
    let whole = limit.feed(data).is_ok();
    // Fed in two pieces, the verdict must be the same.
    let mut split = stream::ResponseLimit::new(4096, 4096);
    let cut = data.len() / 2;
    let pieces = split
        .feed(&data[..cut])
        .and_then(|()| split.feed(&data[cut..]));
    assert_eq!(
        whole,
        pieces.is_ok(),
        "response limit verdict depends on read boundaries"
    );

    let text = String::from_utf8_lossy(data);
    let _ = server_text(&text);
    for e in [
        async_imap::error::Error::No(text.to_string()),
        async_imap::error::Error::Bad(text.to_string()),
    ] {
        let e = map_err("FUZZ", e);
        assert!(e.message().len() < 2 * MAX_QUOTED + 100);
    }
    let mut client = Client::new(futures::io::Cursor::new(data.to_vec()));
    // Read as the session reads: inside with_timeout, which turns a parser panic into an error.
    let mut n = 0;
    let _ = smol::block_on(crate::net::with_timeout(
        std::time::Duration::from_secs(10),
        "FUZZ",
        async {
            while let Ok(Some(resp)) = client.read_response().await {
                n += 1;
                if let Response::Capabilities(list) = resp.parsed() {
                    let _ = connect::Capabilities::from_proto(list).list();
                }
            }
            Ok(())
        },
    ));
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_replies_are_recognised() {
        assert!(is_unavailable_text("Server Unavailable. 15"));
        assert!(is_unavailable_text(
            "[UNAVAILABLE] Temporary authentication failure."
        ));
        assert!(!is_unavailable_text("AUTHENTICATE failed."));
        let e = map_err(
            "SELECT",
            async_imap::error::Error::Bad("User is authenticated but not connected.".into()),
        );
        assert!(is_not_connected(&e), "{e}");
        assert!(!is_not_connected(&Error::new(
            ErrorKind::ServerRefused,
            "SELECT: no"
        )));
        assert!(connect::is_exchange_greeting(
            "The Microsoft Exchange IMAP4 service is ready. [UABNAEEA]"
        ));
        assert!(!connect::is_exchange_greeting("Dovecot ready."));
    }

    #[test]
    fn stream_errors_are_protocol_errors_and_bounded() {
        let huge = "x".repeat(1_000_000);
        let e = stream_error(
            "UID FETCH 1",
            std::io::Error::other(format!("Error during parsing of {huge}")),
        );
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(e.message().len() < 500, "{}", e.message().len());
        assert!(e.message().contains("unreadable data from the server"));
        let e = stream_error(
            "NOOP",
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof"),
        );
        assert_eq!(e.kind(), ErrorKind::ConnectionClosed);
        let e = map_err("LOGIN", async_imap::error::Error::No(huge.clone()));
        assert!(e.message().len() < 500);
        assert_eq!(bounded("äöü", 3), "ä… (6 bytes in all)");
    }

    #[test]
    fn server_text_keeps_the_words() {
        assert_eq!(
            server_text(
                r#"code: None, info: Some("[UNAVAILABLE] Temporary authentication failure.")"#
            ),
            "[UNAVAILABLE] Temporary authentication failure."
        );
        let e = map_err(
            "LOGIN",
            async_imap::error::Error::No(
                r#"code: None, info: Some("[UNAVAILABLE] Temporary failure")"#.into(),
            ),
        );
        assert_eq!(e.kind(), ErrorKind::ServerUnavailable);
        assert_eq!(
            server_text(
                r#"outcome: Outcome { code: None, information: Some("Mailbox doesn't exist: \"INBOX\"") }"#
            ),
            "Mailbox doesn't exist: \"INBOX\""
        );
        assert_eq!(
            server_text(r#"code: Some(TryCreate), info: Some("Mailbox doesn't exist: X")"#),
            "[TRYCREATE] Mailbox doesn't exist: X"
        );
    }
}
