//! A persistent HTTP/1.1 connection to one origin (keep-alive), for API clients that make many
//! requests to the same host (Microsoft Graph): one TCP+TLS connection reused across requests,
//! re-opened transparently when the server closed it while idle, chunked and gzip responses,
//! bounded bodies, an optional CONNECT proxy, and every read bounded by the idle timeout (so a
//! large body may take longer than the timeout as long as bytes keep arriving).
//!
//! Grown here instead of pulling in an HTTP client crate: the token client's parser (httparse),
//! chunked decoder and proxy tunnel were already ours and fuzzed; a keep-alive loop on top is a
//! few hundred lines, keeps one executor (smol) and one TLS stack (rustls), and adds only an
//! inflate crate (miniz_oxide, pure Rust) for gzip.

use super::{
    connect_via_proxy, content_length, read_head, read_more, request_head_with, ChunkedDecoder,
    HttpOptions, Response, Scheme, Url,
};
use crate::error::{Error, ErrorKind, Result};
use futures::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use std::sync::Arc;
use std::time::Instant;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// What to do with a response body above the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Fail with a protocol error (JSON answers).
    Fail,
    /// Keep only the first part up to the end of an RFC 822 header section (the first empty
    /// line, within 1 MiB) and mark the response truncated (message sources too large to take).
    KeepHeader,
}

/// A response read from a [`Connection`].
#[derive(Debug)]
pub struct Answer {
    /// The response (body decoded from chunked and gzip).
    pub response: Response,
    /// Whether the body was cut (see [`Overflow::KeepHeader`]).
    pub truncated: bool,
}

/// One keep-alive connection to the origin of `base`.
pub struct Connection {
    base: Url,
    opts: HttpOptions,
    tls: Option<Arc<futures_rustls::rustls::ClientConfig>>,
    stream: Option<Box<dyn Stream>>,
    /// Connections opened so far (tests and metrics: reuse means this stays small).
    pub opened: u64,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("origin", &self.base.authority())
            .field("open", &self.stream.is_some())
            .field("opened", &self.opened)
            .finish()
    }
}

/// Largest header section kept from a truncated message source.
const MAX_KEPT_HEADER: usize = 1024 * 1024;

impl Connection {
    /// A connection (opened on first use) to the origin of `base` (`https://host[:port]`;
    /// plain http only for loopback hosts).
    pub fn new(base: &str, opts: HttpOptions) -> Result<Connection> {
        let base = Url::parse(base)?;
        base.require_secure_transport("URL")?;
        let tls = match base.scheme {
            Scheme::Https => Some(crate::tls::client_config(opts.ca_file.as_deref())?),
            Scheme::Http => None,
        };
        Ok(Connection {
            base,
            opts,
            tls,
            stream: None,
            opened: 0,
        })
    }

    /// The origin, `host[:port]`.
    pub fn authority(&self) -> String {
        self.base.authority()
    }

    /// Drops the open connection (the next request opens a new one).
    pub fn close(&mut self) {
        self.stream = None;
    }

    async fn open(&mut self) -> Result<()> {
        let tcp = match &self.opts.proxy {
            Some(proxy) => connect_via_proxy(proxy, &self.base, &self.opts).await?,
            None => {
                crate::net::connect_tcp(&self.base.host, self.base.port, self.opts.timeout).await?
            }
        };
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &self.tls {
            Some(config) => Box::new(
                crate::tls::handshake(config.clone(), &self.base.host, tcp, self.opts.timeout)
                    .await?,
            ),
            None => Box::new(tcp),
        };
        self.opened += 1;
        self.stream = Some(stream);
        Ok(())
    }

    /// Sends `method path_and_query` with `headers` and `body`, and reads the answer with a body
    /// of at most `max_body` bytes (after decoding). A connection the server closed while idle
    /// is re-opened and the request sent again once (nothing of it was processed: no byte of
    /// an answer had arrived).
    pub async fn request(
        &mut self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        max_body: usize,
        overflow: Overflow,
    ) -> Result<Answer> {
        if !path_and_query.starts_with('/') {
            return Err(Error::new(
                ErrorKind::Internal,
                "HTTP request path must start with /",
            ));
        }
        let url = Url {
            path: path_and_query.to_string(),
            ..self.base.clone()
        };
        let head = request_head_with(method, &url, headers, body.len(), true)?;
        let what = format!("HTTP {method} {}{}", url.authority(), url.path_only());
        let started = Instant::now();
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let reused = self.stream.is_some();
            if !reused {
                if let Err(e) = self.open().await {
                    break Err(e);
                }
            }
            match self
                .exchange(&head, body, method == "HEAD", max_body, overflow)
                .await
            {
                Ok(a) => break Ok(a),
                Err((e, stale)) => {
                    self.stream = None;
                    if stale && reused && attempt == 1 {
                        log::debug!("{what}: the kept-alive connection was closed; reconnecting");
                        continue;
                    }
                    break Err(e);
                }
            }
        };
        let result = result.map_err(|e| e.context(&what));
        match &result {
            Ok(a) => log::debug!(
                "{what}: {} in {} ms{}",
                a.response.status,
                started.elapsed().as_millis(),
                if a.truncated { " (truncated)" } else { "" }
            ),
            Err(e) => log::debug!(
                "{what}: failed after {} ms: {e}",
                started.elapsed().as_millis()
            ),
        }
        result
    }

    /// One request and answer on the open stream. The error's flag tells whether it failed
    /// before any byte of an answer arrived (a stale kept-alive connection).
    async fn exchange(
        &mut self,
        head: &str,
        body: &[u8],
        is_head: bool,
        max_body: usize,
        overflow: Overflow,
    ) -> std::result::Result<Answer, (Error, bool)> {
        let timeout = self.opts.timeout;
        let stream = self.stream.as_mut().expect("opened");
        let sent = crate::net::with_timeout(timeout, "sending the request", async {
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body).await?;
            stream.flush().await?;
            Ok(())
        })
        .await;
        if let Err(e) = sent {
            let stale = matches!(e.kind(), ErrorKind::ConnectionClosed | ErrorKind::Io);
            return Err((e, stale));
        }
        let mut buf = Vec::with_capacity(16 * 1024);
        let head = match crate::net::with_timeout(
            timeout,
            "waiting for the response",
            read_head(stream, &mut buf),
        )
        .await
        {
            Ok(h) => h,
            Err(e) => {
                let stale = buf.is_empty() && e.kind() == ErrorKind::ConnectionClosed;
                return Err((e, stale));
            }
        };
        let mut rest = buf.split_off(head.len);
        let header = |name: &str| {
            head.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        let mut keep_alive = !header("connection")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("close"));
        let gzip = header("content-encoding")
            .iter()
            .any(|v| v.trim().eq_ignore_ascii_case("gzip"));
        // A gzip body is bounded before decoding too (it never grows when compressed).
        let mut truncated = false;
        let too_large = || {
            Error::new(
                ErrorKind::Protocol,
                format!("response body larger than {max_body} bytes"),
            )
        };
        let closed = |what: String| Error::new(ErrorKind::ConnectionClosed, what);
        let mut body = if is_head || head.status == 204 || head.status == 304 {
            Vec::new()
        } else if header("transfer-encoding")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            // Decoded without a limit on the decoder itself: the limit is applied here, so an
            // oversized source can be cut at its header.
            let mut decoder = ChunkedDecoder::new(usize::MAX);
            let mut out = Vec::new();
            loop {
                let (used, done) = decoder.feed(&rest, &mut out).map_err(|e| (e, false))?;
                rest.drain(..used);
                if done {
                    break;
                }
                if out.len() > max_body {
                    match overflow {
                        Overflow::Fail => return Err((too_large(), false)),
                        Overflow::KeepHeader => {
                            if let Some(cut) = header_end(&out) {
                                out.truncate(cut);
                                truncated = true;
                                break;
                            }
                        }
                    }
                }
                if read_body(stream, &mut rest, timeout)
                    .await
                    .map_err(|e| (e, false))?
                    == 0
                {
                    return Err((
                        closed(
                            "the server closed the connection before the chunked body was complete"
                                .into(),
                        ),
                        false,
                    ));
                }
            }
            out
        } else if let Some(len) =
            content_length(&header("content-length")).map_err(|e| (e, false))?
        {
            let want = if len > max_body {
                match overflow {
                    Overflow::Fail => return Err((too_large(), false)),
                    Overflow::KeepHeader => {
                        truncated = true;
                        MAX_KEPT_HEADER.min(len)
                    }
                }
            } else {
                len
            };
            loop {
                if truncated {
                    if let Some(cut) = header_end(&rest) {
                        rest.truncate(cut);
                        break;
                    }
                }
                if rest.len() >= want {
                    break;
                }
                if read_body(stream, &mut rest, timeout)
                    .await
                    .map_err(|e| (e, false))?
                    == 0
                {
                    return Err((
                        closed(format!(
                            "the server closed the connection after {} of {len} body bytes",
                            rest.len()
                        )),
                        false,
                    ));
                }
            }
            rest.truncate(want);
            rest
        } else {
            // No framing: the body ends when the server closes the connection.
            keep_alive = false;
            loop {
                if rest.len() > max_body {
                    match overflow {
                        Overflow::Fail => return Err((too_large(), false)),
                        Overflow::KeepHeader => {
                            if let Some(cut) = header_end(&rest) {
                                rest.truncate(cut);
                                truncated = true;
                                break;
                            }
                        }
                    }
                }
                if read_body(stream, &mut rest, timeout)
                    .await
                    .map_err(|e| (e, false))?
                    == 0
                {
                    break;
                }
            }
            rest
        };
        if truncated {
            // The rest of the body is still on the wire.
            keep_alive = false;
        } else if gzip {
            body = gunzip(&body, max_body).map_err(|e| (e, false))?;
        }
        if !keep_alive {
            self.stream = None;
        }
        Ok(Answer {
            response: Response {
                status: head.status,
                headers: head.headers,
                body,
            },
            truncated,
        })
    }
}

async fn read_body(
    stream: &mut Box<dyn Stream>,
    rest: &mut Vec<u8>,
    timeout: std::time::Duration,
) -> Result<usize> {
    crate::net::with_timeout(
        timeout,
        "reading the response body",
        read_more(stream, rest),
    )
    .await
}

/// The length of an RFC 822 header section at the start of `raw` including its blank line.
fn header_end(raw: &[u8]) -> Option<usize> {
    let limit = raw.len().min(MAX_KEPT_HEADER);
    let raw = &raw[..limit];
    let crlf = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = raw.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Decodes a gzip member (RFC 1952) of at most `max` bytes decoded.
pub fn gunzip(data: &[u8], max: usize) -> Result<Vec<u8>> {
    let bad = |why: &str| Error::new(ErrorKind::Protocol, format!("gzip body: {why}"));
    if data.len() < 18 || data[0] != 0x1f || data[1] != 0x8b || data[2] != 8 {
        return Err(bad("not a gzip stream"));
    }
    let flags = data[3];
    let mut pos = 10usize;
    if flags & 0x04 != 0 {
        let n = usize::from(u16::from_le_bytes([
            *data.get(pos).ok_or_else(|| bad("truncated"))?,
            *data.get(pos + 1).ok_or_else(|| bad("truncated"))?,
        ]));
        pos += 2 + n;
    }
    for bit in [0x08u8, 0x10] {
        if flags & bit != 0 {
            let end = data
                .get(pos..)
                .and_then(|d| d.iter().position(|&b| b == 0))
                .ok_or_else(|| bad("truncated"))?;
            pos += end + 1;
        }
    }
    if flags & 0x02 != 0 {
        pos += 2;
    }
    if pos + 8 > data.len() {
        return Err(bad("truncated"));
    }
    let deflated = &data[pos..data.len() - 8];
    let out = miniz_oxide::inflate::decompress_to_vec_with_limit(deflated, max).map_err(|e| {
        if e.status == miniz_oxide::inflate::TINFLStatus::HasMoreOutput {
            Error::new(
                ErrorKind::Protocol,
                format!("response body larger than {max} bytes"),
            )
        } else {
            bad("corrupt deflate data")
        }
    })?;
    let tail = &data[data.len() - 4..];
    let isize = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    if isize != out.len() as u32 {
        return Err(bad("length does not match"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gzip member with stored (uncompressed) deflate blocks, built by hand.
    fn gzip_stored(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
        let chunks: Vec<&[u8]> = if data.is_empty() {
            vec![&[][..]]
        } else {
            data.chunks(65535).collect()
        };
        for (i, c) in chunks.iter().enumerate() {
            out.push(u8::from(i + 1 == chunks.len()));
            let n = c.len() as u16;
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&(!n).to_le_bytes());
            out.extend_from_slice(c);
        }
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    #[test]
    fn gunzip_roundtrip_and_limits() {
        let text = b"{\"value\":[]}".repeat(100);
        let gz = gzip_stored(&text);
        assert_eq!(gunzip(&gz, 1 << 20).unwrap(), text);
        let e = gunzip(&gz, 100).unwrap_err();
        assert!(e.message().contains("larger than 100"), "{e}");
        assert!(gunzip(b"not gzip at all....", 100).is_err());
        let mut bad = gz.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(gunzip(&bad, 1 << 20).is_err());
    }

    #[test]
    fn header_end_found() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), Some(8));
        assert_eq!(header_end(b"A: b\n\nbody"), Some(6));
        assert_eq!(header_end(b"A: b\r\n"), None);
    }

    /// A loopback server answering each request on one connection from `answers` in turn.
    fn serve(
        answers: Vec<Vec<u8>>,
        close_after: usize,
    ) -> (String, std::thread::JoinHandle<usize>) {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
        let h = std::thread::spawn(move || {
            let mut accepted = 0;
            let mut answers = answers.into_iter().peekable();
            'outer: loop {
                if answers.peek().is_none() {
                    break;
                }
                let (mut s, _) = match l.accept() {
                    Ok(c) => c,
                    Err(_) => break,
                };
                accepted += 1;
                let mut served = 0;
                loop {
                    let mut req = Vec::new();
                    let mut b = [0u8; 4096];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut b) {
                            Ok(0) | Err(_) => continue 'outer,
                            Ok(n) => req.extend_from_slice(&b[..n]),
                        }
                    }
                    let Some(a) = answers.next() else {
                        break 'outer;
                    };
                    s.write_all(&a).unwrap();
                    served += 1;
                    if served == close_after {
                        continue 'outer;
                    }
                }
            }
            accepted
        });
        (url, h)
    }

    #[test]
    fn keep_alive_reuses_and_reconnects_when_closed() {
        let gz = gzip_stored(b"{\"a\":1}");
        let mut gz_answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            gz.len()
        )
        .into_bytes();
        gz_answer.extend_from_slice(&gz);
        let answers = vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(),
            gz_answer,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        ];
        // The server closes after three answers on the first connection.
        let (url, h) = serve(answers, 3);
        let mut c = Connection::new(&url, HttpOptions::default()).unwrap();
        smol::block_on(async {
            let mut bodies = Vec::new();
            for _ in 0..4 {
                let a = c
                    .request("GET", "/x", &[], b"", 1024, Overflow::Fail)
                    .await
                    .unwrap();
                bodies.push(a.response.body);
            }
            assert_eq!(
                bodies,
                vec![
                    b"hi".to_vec(),
                    b"abc".to_vec(),
                    b"{\"a\":1}".to_vec(),
                    b"ok".to_vec()
                ]
            );
        });
        assert_eq!(c.opened, 2, "one reconnect after the server closed");
        drop(c);
        assert_eq!(h.join().unwrap(), 2);
    }

    #[test]
    fn oversized_source_keeps_its_header() {
        let mut big = b"Subject: big\r\nFrom: a@b.c\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 5000));
        let mut answer =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", big.len()).into_bytes();
        answer.extend_from_slice(&big);
        let (url, _h) = serve(vec![answer], 1);
        let mut c = Connection::new(&url, HttpOptions::default()).unwrap();
        let a =
            smol::block_on(c.request("GET", "/m", &[], b"", 1000, Overflow::KeepHeader)).unwrap();
        assert!(a.truncated);
        assert_eq!(a.response.body, b"Subject: big\r\nFrom: a@b.c\r\n\r\n");
        let (url, _h) = serve(
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n".to_vec()],
            1,
        );
        let mut c = Connection::new(&url, HttpOptions::default()).unwrap();
        let e = smol::block_on(c.request("GET", "/j", &[], b"", 1000, Overflow::Fail)).unwrap_err();
        assert!(e.message().contains("larger than 1000"), "{e}");
    }
}
