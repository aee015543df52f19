//! The byte stream under IMAP: plain TCP (before STARTTLS, or `encryption: none`) or TLS, with a
//! bound on what one server response may make the client buffer.
//!
//! async-imap keeps reading until a whole response is in its buffer (up to 512 MiB) and re-parses
//! the buffer after every read, so a server sending one endless line would cost memory and
//! quadratic CPU before any error. [`ResponseLimit`] watches the bytes as they arrive and fails
//! the read as soon as a line (outside literals) or a literal exceeds its limit.

use futures::io::{AsyncRead, AsyncWrite};
use futures_rustls::client::TlsStream;
use smol::net::TcpStream;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Longest response line (outside literals) accepted: about 260 000 UIDs in a SEARCH answer.
/// async-imap re-parses a growing line after every read (quadratic), so this also bounds CPU.
pub const MAX_LINE: usize = 2 * 1024 * 1024;
/// Longest literal accepted outside message fetches (mailbox names, headers of other commands).
pub const DEFAULT_MAX_LITERAL: u64 = 4 * 1024 * 1024;

/// The transport of a [`MailStream`].
enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A connection to the IMAP server, encrypted or not, with response size limits.
pub struct MailStream {
    transport: Transport,
    limit: ResponseLimit,
}

impl MailStream {
    /// Plain TCP.
    pub fn plain(tcp: TcpStream) -> Self {
        MailStream {
            transport: Transport::Plain(tcp),
            limit: ResponseLimit::new(MAX_LINE, DEFAULT_MAX_LITERAL),
        }
    }

    /// TLS over TCP.
    pub fn tls(tls: TlsStream<TcpStream>) -> Self {
        MailStream {
            transport: Transport::Tls(Box::new(tls)),
            limit: ResponseLimit::new(MAX_LINE, DEFAULT_MAX_LITERAL),
        }
    }

    /// Whether the bytes travel encrypted.
    pub fn is_encrypted(&self) -> bool {
        matches!(self.transport, Transport::Tls(_))
    }

    /// The TCP stream of a plain connection (for STARTTLS); `None` when already encrypted.
    pub fn into_plain(self) -> Option<TcpStream> {
        match self.transport {
            Transport::Plain(tcp) => Some(tcp),
            Transport::Tls(_) => None,
        }
    }

    /// Sets the largest literal the server may send (message fetches widen it to the sizes the
    /// server announced; [`DEFAULT_MAX_LITERAL`] otherwise).
    pub fn set_max_literal(&mut self, bytes: u64) {
        self.limit.max_literal = bytes;
    }
}

impl fmt::Debug for MailStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.transport {
            Transport::Plain(_) => "MailStream::Plain",
            Transport::Tls(_) => "MailStream::Tls",
        })
    }
}

/// Watches server bytes: counts each line outside literals, reads literal announcements
/// (`{n}` or `{n+}` at a line end) and skips their contents, failing when a line or literal is too
/// large. Once it failed, every later read fails too (the stream's framing is lost).
#[derive(Debug, Clone)]
pub struct ResponseLimit {
    max_line: usize,
    max_literal: u64,
    line: usize,
    /// Literal announcement being read at the end of the line: digits seen after `{`.
    brace: Brace,
    /// Bytes of a literal still to come.
    literal_left: u64,
    failed: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Brace {
    None,
    /// After `{`, with the number so far (saturating) and whether a digit was seen.
    Digits(u64, bool),
    /// After `{n+` (non-synchronising literal).
    Plus(u64),
    /// After `{n}`; a CR keeps it, LF opens the literal.
    Closed(u64),
}

impl ResponseLimit {
    /// Limits of `max_line` bytes per line and `max_literal` bytes per literal.
    pub fn new(max_line: usize, max_literal: u64) -> Self {
        ResponseLimit {
            max_line,
            max_literal,
            line: 0,
            brace: Brace::None,
            literal_left: 0,
            failed: None,
        }
    }

    /// Accounts for `bytes` received; an error names the limit that was exceeded.
    pub fn feed(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(f) = &self.failed {
            return Err(io::Error::new(io::ErrorKind::InvalidData, f.clone()));
        }
        let mut i = 0;
        while i < bytes.len() {
            if self.literal_left > 0 {
                let take = self.literal_left.min((bytes.len() - i) as u64);
                self.literal_left -= take;
                i += take as usize;
                continue;
            }
            let b = bytes[i];
            i += 1;
            self.line += 1;
            if self.line > self.max_line {
                return self.fail(format!(
                    "a server response line exceeds {} bytes (limit); the server or something \
                     between is misbehaving",
                    self.max_line
                ));
            }
            self.brace = match (self.brace, b) {
                (_, b'{') => Brace::Digits(0, false),
                (Brace::Digits(n, _), d @ b'0'..=b'9') => Brace::Digits(
                    n.saturating_mul(10).saturating_add(u64::from(d - b'0')),
                    true,
                ),
                (Brace::Digits(n, true), b'+') => Brace::Plus(n),
                (Brace::Digits(n, true), b'}') | (Brace::Plus(n), b'}') => Brace::Closed(n),
                (Brace::Closed(n), b'\r') => Brace::Closed(n),
                (Brace::Closed(n), b'\n') => {
                    if n > self.max_literal {
                        return self.fail(format!(
                            "the server announced a literal of {n} bytes, more than the {} \
                             expected",
                            self.max_literal
                        ));
                    }
                    self.literal_left = n;
                    self.line = 0;
                    Brace::None
                }
                (_, b'\n') => {
                    self.line = 0;
                    Brace::None
                }
                _ => Brace::None,
            };
        }
        Ok(())
    }

    fn fail(&mut self, why: String) -> io::Result<()> {
        self.failed = Some(why.clone());
        Err(io::Error::new(io::ErrorKind::InvalidData, why))
    }
}

impl AsyncRead for MailStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = match &mut this.transport {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        match r {
            Poll::Ready(Ok(n)) => Poll::Ready(this.limit.feed(&buf[..n]).map(|()| n)),
            other => other,
        }
    }
}

impl AsyncWrite for MailStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().transport {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().transport {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().transport {
            Transport::Plain(s) => Pin::new(s).poll_close(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_skipped_and_lines_counted() {
        let mut l = ResponseLimit::new(40, 100);
        l.feed(b"* 1 FETCH (UID 7 BODY[] {50}\r\n").unwrap();
        l.feed(&[b'x'; 50]).unwrap();
        l.feed(b")\r\n* 2 FETCH (UID 8 BODY[] {5+}\r\nabcde)\r\n")
            .unwrap();
        // A brace that is not a literal announcement is just text.
        l.feed(b"* OK {not a literal} {12\r\n").unwrap();
        l.feed(b"A1 OK done\r\n").unwrap();
    }

    #[test]
    fn an_endless_line_fails_once_over_the_limit_and_stays_failed() {
        let mut l = ResponseLimit::new(1000, 100);
        l.feed(b"* OK ").unwrap();
        let chunk = [b'a'; 100];
        let mut fed = 5;
        let err = loop {
            match l.feed(&chunk) {
                Ok(()) => fed += chunk.len(),
                Err(e) => break e,
            }
        };
        assert!(fed <= 1000, "{fed}");
        assert!(err.to_string().contains("exceeds 1000 bytes"), "{err}");
        assert!(l.feed(b"\r\n").is_err(), "framing is lost for good");
    }

    #[test]
    fn an_oversized_literal_is_refused_before_it_arrives() {
        let mut l = ResponseLimit::new(1000, 100);
        let err = l.feed(b"* 1 FETCH (BODY[] {104857600}\r\n").unwrap_err();
        assert!(err.to_string().contains("104857600"), "{err}");
        let mut l = ResponseLimit::new(1000, 100);
        assert!(l
            .feed(b"* 1 FETCH (BODY[] {99999999999999999999999}\r\n")
            .is_err());
    }

    #[test]
    fn split_anywhere_gives_the_same_verdict() {
        let text = b"* 3 FETCH (BODY[] {10}\r\n0123456789 FLAGS (\\Seen))\r\nA1 OK\r\n";
        for cut in 0..text.len() {
            let mut l = ResponseLimit::new(60, 10);
            l.feed(&text[..cut]).unwrap();
            l.feed(&text[cut..]).unwrap();
            assert_eq!(l.line, 0);
            assert_eq!(l.literal_left, 0);
        }
    }
}
