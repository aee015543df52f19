//! A small HTTP/1.1 client for the token endpoint and webhooks: one request per connection
//! (`Connection: close`), TLS through [`crate::tls`], an optional HTTPS proxy (CONNECT tunnel),
//! bounded response sizes and every step bounded by a timeout.
//!
//! Plain `http://` is accepted only for loopback hosts (tests and the demo): tokens and tickets
//! never cross a network unencrypted. Request bodies and headers are never logged (they carry
//! passwords, client secrets and bearer tokens); only method, host, path, status and duration are.

use crate::error::{Error, ErrorKind, Result};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Largest response header section accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest chunk-size line (with extensions) or trailer line accepted in a chunked body.
const MAX_CHUNK_LINE: usize = 4096;
/// Most headers a response may carry.
const MAX_HEADERS: usize = 100;

/// How requests are made.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Limit of every step (connect, TLS handshake, proxy CONNECT, request and response).
    pub timeout: Duration,
    /// Extra CA certificates (PEM) to trust for `https://` URLs.
    pub ca_file: Option<PathBuf>,
    /// HTTPS proxy as `http://host:port`: requests go through a CONNECT tunnel.
    pub proxy: Option<String>,
    /// Largest response body accepted, in bytes.
    pub max_response_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(30),
            ca_file: None,
            proxy: None,
            max_response_bytes: 1024 * 1024,
        }
    }
}

/// A complete response.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code (200, 400, ...).
    pub status: u16,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

// The body may hold tokens (token endpoint answers): Debug shows its size only.
impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers.len())
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http://` (loopback only).
    Http,
    /// `https://`.
    Https,
}

/// A parsed `http(s)://host[:port][/path][?query]` URL (no user info; fragment dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// http or https.
    pub scheme: Scheme,
    /// Host name or IP address, IPv6 without brackets.
    pub host: String,
    /// Port (default 80 / 443).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses `s`, naming it in the error when it is not an absolute http(s) URL.
    pub fn parse(s: &str) -> Result<Url> {
        let bad =
            |why: &str| Error::new(ErrorKind::Config, format!("URL {}: {why}", redact_url(s)));
        let (scheme, rest) = if let Some(r) = strip_prefix_ci(s, "https://") {
            (Scheme::Https, r)
        } else if let Some(r) = strip_prefix_ci(s, "http://") {
            (Scheme::Http, r)
        } else {
            return Err(bad(
                "must start with https:// (or http:// for a loopback host)",
            ));
        };
        if s.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("contains spaces or control characters"));
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(bad("user names or passwords in URLs are not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6
                .find(']')
                .ok_or_else(|| bad("unclosed '[' in the host"))?;
            let host = &v6[..end];
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("invalid IPv6 address"));
            }
            let after = &v6[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(bad("unexpected text after the IPv6 address")),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if !host.contains(':')
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
        {
            return Err(bad("invalid characters in the host name"));
        }
        let port = match port {
            None => match scheme {
                Scheme::Http => 80,
                Scheme::Https => 443,
            },
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(bad("invalid port")),
            },
        };
        let path = if path.is_empty() {
            "/".to_string()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Ok(Url {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            path,
        })
    }

    /// `host` or `host:port` when the port is not the scheme's default; IPv6 in brackets.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The path without its query string, safe for logs and errors (queries may hold keys).
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("/")
    }

    /// Refuses plain `http://` unless the host is loopback: `what` names the setting in the error.
    pub fn require_secure_transport(&self, what: &str) -> Result<()> {
        if self.scheme == Scheme::Http && !crate::net::is_loopback_host(&self.host) {
            return Err(Error::config(
                what,
                format!(
                    "http://{}{} is not encrypted; only https:// is allowed (http:// only for a loopback host)",
                    self.authority(),
                    self.path_only()
                ),
            )
            .with_fix("use an https:// URL"));
        }
        Ok(())
    }
}

/// `s` without user info and query, quoted, for errors (either may hold a secret).
fn redact_url(s: &str) -> String {
    let no_query = s.split(['?', '#']).next().unwrap_or_default();
    let (scheme, rest) = match no_query.find("://") {
        Some(i) => no_query.split_at(i + 3),
        None => ("", no_query),
    };
    let auth_end = rest.find('/').unwrap_or(rest.len());
    let shown = match rest[..auth_end].rfind('@') {
        Some(at) => format!("{scheme}***@{}", &rest[at + 1..]),
        None => no_query.to_string(),
    };
    format!("{shown:?}")
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

/// Percent-encodes `s` for `application/x-www-form-urlencoded` (unreserved characters kept).
pub fn form_encode_value(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Encodes `pairs` as a form body. The result is wiped from memory when dropped (it may hold a
/// password or client secret).
pub fn form_encode(pairs: &[(&str, &str)]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        form_encode_value(k, &mut out);
        out.push('=');
        form_encode_value(v, &mut out);
    }
    out
}

/// POSTs `form` (form-encoded) to `url` and returns the whole response, whatever its status.
pub async fn post_form(url: &str, form: &[(&str, &str)], opts: &HttpOptions) -> Result<Response> {
    let body = form_encode(form);
    request(
        "POST",
        url,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Accept", "application/json"),
        ],
        body.as_bytes(),
        opts,
    )
    .await
}

/// Sends one request and returns the whole response, whatever its status. `headers` are added to
/// Host, Content-Length, Connection and User-Agent (a given User-Agent replaces the default).
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    opts: &HttpOptions,
) -> Result<Response> {
    let url = Url::parse(url)?;
    url.require_secure_transport("URL")?;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Error::new(
            ErrorKind::Internal,
            format!("HTTP method {method:?} is not valid"),
        ));
    }
    let head = request_head(method, &url, headers, body.len())?;
    let what = format!("HTTP {method} {}{}", url.authority(), url.path_only());
    let started = Instant::now();
    let result = send(&url, &head, body, method == "HEAD", opts)
        .await
        .map_err(|e| e.context(&what));
    match &result {
        Ok(r) => log::debug!(
            "{what}: {} in {} ms",
            r.status,
            started.elapsed().as_millis()
        ),
        Err(e) => log::debug!(
            "{what}: failed after {} ms: {e}",
            started.elapsed().as_millis()
        ),
    }
    result
}

fn request_head(
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
    body_len: usize,
) -> Result<Zeroizing<String>> {
    request_head_with(method, url, headers, body_len, false)
}

fn request_head_with(
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
    body_len: usize,
    keep_alive: bool,
) -> Result<Zeroizing<String>> {
    let mut head = Zeroizing::new(String::with_capacity(256));
    let _ = write!(
        head,
        "{method} {} HTTP/1.1\r\nHost: {}\r\n",
        url.path,
        url.authority()
    );
    let mut has_agent = false;
    for (name, value) in headers {
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            // The value is not shown: it may be a bearer token.
            return Err(Error::new(
                ErrorKind::Internal,
                format!("HTTP header {name:?} has an invalid name or value"),
            ));
        }
        if name.eq_ignore_ascii_case("host")
            || name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("connection")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            continue;
        }
        has_agent |= name.eq_ignore_ascii_case("user-agent");
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if !has_agent {
        let _ = write!(
            head,
            "User-Agent: psa-mail-agent/{}\r\n",
            env!("CARGO_PKG_VERSION")
        );
    }
    if body_len > 0 || matches!(method, "POST" | "PUT" | "PATCH") {
        let _ = write!(head, "Content-Length: {body_len}\r\n");
    }
    if keep_alive {
        head.push_str("\r\n");
    } else {
        head.push_str("Connection: close\r\n\r\n");
    }
    Ok(head)
}

async fn send(
    url: &Url,
    head: &str,
    body: &[u8],
    is_head: bool,
    opts: &HttpOptions,
) -> Result<Response> {
    let tcp = match &opts.proxy {
        Some(proxy) => connect_via_proxy(proxy, url, opts).await?,
        None => crate::net::connect_tcp(&url.host, url.port, opts.timeout).await?,
    };
    match url.scheme {
        Scheme::Http => exchange(tcp, head, body, is_head, opts).await,
        Scheme::Https => {
            let config = crate::tls::client_config(opts.ca_file.as_deref())?;
            let tls = crate::tls::handshake(config, &url.host, tcp, opts.timeout).await?;
            exchange(tls, head, body, is_head, opts).await
        }
    }
}

async fn exchange<S>(
    mut stream: S,
    head: &str,
    body: &[u8],
    is_head: bool,
    opts: &HttpOptions,
) -> Result<Response>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    crate::net::with_timeout(opts.timeout, "sending the request", async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;
        Ok(())
    })
    .await?;
    crate::net::with_timeout(
        opts.timeout,
        "waiting for the response",
        read_response(&mut stream, is_head, opts.max_response_bytes),
    )
    .await
}

/// Opens a tunnel to `url`'s host and port through the HTTP proxy `proxy` (`http://host:port`).
async fn connect_via_proxy(
    proxy: &str,
    url: &Url,
    opts: &HttpOptions,
) -> Result<smol::net::TcpStream> {
    let p = Url::parse(proxy).map_err(|e| Error::config("proxy", e.message().to_string()))?;
    if p.scheme != Scheme::Http || p.path != "/" {
        return Err(Error::config(
            "proxy",
            format!("{proxy:?}: expected http://host:port (the tunnel carries TLS)"),
        ));
    }
    let mut tcp = crate::net::connect_tcp(&p.host, p.port, opts.timeout)
        .await
        .map_err(|e| e.context("proxy"))?;
    let target = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let connect = format!(
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: psa-mail-agent/{}\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    let what = format!("proxy {} CONNECT {target}", p.authority());
    crate::net::with_timeout(opts.timeout, &what, async {
        tcp.write_all(connect.as_bytes()).await?;
        tcp.flush().await?;
        let mut buf = Vec::new();
        let head = read_head(&mut tcp, &mut buf).await?;
        if !(200..300).contains(&head.status) {
            return Err(Error::new(
                ErrorKind::Connect,
                format!("{what}: the proxy answered HTTP {}", head.status),
            )
            .with_fix("check oauth.proxy and that the proxy allows HTTPS to this host"));
        }
        if buf.len() > head.len {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("{what}: the proxy sent data before the tunnel was used"),
            ));
        }
        Ok(())
    })
    .await?;
    Ok(tcp)
}

struct Head {
    len: usize,
    status: u16,
    headers: Vec<(String, String)>,
}

/// Reads one reads' worth into `buf`; a TLS peer closing without close_notify counts as EOF
/// here, and the callers decide whether the body framing was complete.
async fn read_more<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Result<usize> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(Error::from(e)),
    }
}

/// Reads until a complete response head is in `buf` (skipping 1xx interim responses, which are
/// removed from `buf`).
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Result<Head> {
    loop {
        if let Some(head) = parse_head(buf)? {
            if (100..200).contains(&head.status) && head.status != 101 {
                buf.drain(..head.len);
                continue;
            }
            return Ok(head);
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("response header larger than {MAX_HEAD_BYTES} bytes"),
            ));
        }
        if read_more(stream, buf).await? == 0 {
            return Err(Error::new(
                ErrorKind::ConnectionClosed,
                if buf.is_empty() {
                    "the server closed the connection without answering".to_string()
                } else {
                    "the server closed the connection in the middle of the response header"
                        .to_string()
                },
            ));
        }
    }
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => Ok(Some(Head {
            len,
            status: resp.code.unwrap_or(0),
            headers: resp
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).trim().to_string(),
                    )
                })
                .collect(),
        })),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(Error::new(
            ErrorKind::Protocol,
            format!("not an HTTP/1.x response ({e})"),
        )),
    }
}

async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    is_head: bool,
    max_body: usize,
) -> Result<Response> {
    let mut buf = Vec::with_capacity(8192);
    let head = read_head(stream, &mut buf).await?;
    let mut rest = buf.split_off(head.len);
    let header = |name: &str| {
        head.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    let too_large = || {
        Error::new(
            ErrorKind::Protocol,
            format!("response body larger than {max_body} bytes"),
        )
    };
    let body = if is_head || head.status == 204 || head.status == 304 {
        Vec::new()
    } else if header("transfer-encoding")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        let mut decoder = ChunkedDecoder::new(max_body);
        let mut out = Vec::new();
        loop {
            let (used, done) = decoder.feed(&rest, &mut out)?;
            rest.drain(..used);
            if done {
                break;
            }
            if read_more(stream, &mut rest).await? == 0 {
                return Err(Error::new(
                    ErrorKind::ConnectionClosed,
                    "the server closed the connection before the chunked body was complete",
                ));
            }
        }
        out
    } else if let Some(len) = content_length(&header("content-length"))? {
        if len > max_body {
            return Err(too_large());
        }
        while rest.len() < len {
            if read_more(stream, &mut rest).await? == 0 {
                return Err(Error::new(
                    ErrorKind::ConnectionClosed,
                    format!(
                        "the server closed the connection after {} of {len} body bytes",
                        rest.len()
                    ),
                ));
            }
        }
        rest.truncate(len);
        rest
    } else {
        // No framing: the body ends when the server closes the connection.
        loop {
            if rest.len() > max_body {
                return Err(too_large());
            }
            if read_more(stream, &mut rest).await? == 0 {
                break;
            }
        }
        rest
    };
    Ok(Response {
        status: head.status,
        headers: head.headers,
        body,
    })
}

fn content_length(values: &[&str]) -> Result<Option<usize>> {
    let mut found: Option<usize> = None;
    for v in values.iter().flat_map(|v| v.split(',')) {
        let v = v.trim();
        let n = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            v.parse::<usize>().ok()
        } else {
            None
        };
        let n = n.ok_or_else(|| {
            Error::new(ErrorKind::Protocol, format!("invalid Content-Length {v:?}"))
        })?;
        if found.is_some_and(|f| f != n) {
            return Err(Error::new(
                ErrorKind::Protocol,
                "conflicting Content-Length headers",
            ));
        }
        found = Some(n);
    }
    Ok(found)
}

/// Incremental decoder of a `Transfer-Encoding: chunked` body, bounded in size.
#[derive(Debug)]
struct ChunkedDecoder {
    state: ChunkState,
    max_body: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data: bytes left.
    Data(usize),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last (zero) chunk: trailer lines until an empty line.
    Trailer,
    /// The body is complete.
    Done,
}

impl ChunkedDecoder {
    fn new(max_body: usize) -> Self {
        ChunkedDecoder {
            state: ChunkState::Size,
            max_body,
        }
    }

    /// Decodes as much of `input` as possible into `out`; returns the bytes consumed and whether
    /// the body is complete.
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool)> {
        let bad = |why: &str| Error::new(ErrorKind::Protocol, format!("chunked body: {why}"));
        let mut pos = 0;
        loop {
            match self.state {
                ChunkState::Done => return Ok((pos, true)),
                ChunkState::Size | ChunkState::Trailer => {
                    let Some(eol) = input[pos..].iter().position(|&b| b == b'\n') else {
                        if input.len() - pos > MAX_CHUNK_LINE {
                            return Err(bad("line too long"));
                        }
                        return Ok((pos, false));
                    };
                    if eol > MAX_CHUNK_LINE {
                        return Err(bad("line too long"));
                    }
                    let line = &input[pos..pos + eol];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    pos += eol + 1;
                    if self.state == ChunkState::Trailer {
                        if line.is_empty() {
                            self.state = ChunkState::Done;
                        }
                        continue;
                    }
                    let size_text = line.split(|&b| b == b';').next().unwrap_or_default();
                    let size_text = std::str::from_utf8(size_text)
                        .map_err(|_| bad("invalid chunk size"))?
                        .trim();
                    if size_text.is_empty() || size_text.len() > 16 {
                        return Err(bad("invalid chunk size"));
                    }
                    let size = usize::from_str_radix(size_text, 16)
                        .map_err(|_| bad("invalid chunk size"))?;
                    if size == 0 {
                        self.state = ChunkState::Trailer;
                    } else {
                        if out.len().saturating_add(size) > self.max_body {
                            return Err(Error::new(
                                ErrorKind::Protocol,
                                format!("response body larger than {} bytes", self.max_body),
                            ));
                        }
                        self.state = ChunkState::Data(size);
                    }
                }
                ChunkState::Data(left) => {
                    let take = left.min(input.len() - pos);
                    out.extend_from_slice(&input[pos..pos + take]);
                    pos += take;
                    if take == left {
                        self.state = ChunkState::DataEnd;
                    } else {
                        self.state = ChunkState::Data(left - take);
                        return Ok((pos, false));
                    }
                }
                ChunkState::DataEnd => {
                    let avail = &input[pos..];
                    if avail.starts_with(b"\r\n") {
                        pos += 2;
                    } else if avail.starts_with(b"\n") {
                        pos += 1;
                    } else if avail.is_empty() || avail == b"\r" {
                        return Ok((pos, false));
                    } else {
                        return Err(bad("missing line end after chunk data"));
                    }
                    self.state = ChunkState::Size;
                }
            }
        }
    }
}

pub mod conn;

#[cfg(test)]
mod tests;

/// Fuzzing entry (not part of the API): parses `data` as an HTTP/1.1 response arriving on a
/// connection, as the token client does, with a 64 KiB body limit.
#[doc(hidden)]
pub fn fuzz_response(data: &[u8]) -> Option<Response> {
    let mut stream = futures::io::Cursor::new(data.to_vec());
    smol::block_on(read_response(&mut stream, false, 64 * 1024)).ok()
}
