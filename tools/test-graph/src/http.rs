//! HTTP/1.1 for the stand-in: keep-alive, request bodies by Content-Length or chunked,
//! `Expect: 100-continue`, answers with Content-Length or chunked, gzip when the client accepts it.

use crate::service::{Request, Response};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 8 * 1024 * 1024;

/// A request id in Graph's GUID form (unique per process and call).
pub fn request_id() -> String {
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    format!("{pid:08x}-6d2a-4b1e-9c3f-{n:012x}")
}

/// Reads one request; `Ok(None)` when the peer closed between requests.
pub fn read_request(
    stream: &mut (impl Read + Write),
    buf: &mut Vec<u8>,
) -> Result<Option<(Request, bool)>, String> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let mut r = Request {
                    method: req.method.unwrap_or("").to_string(),
                    target: origin_form(req.path.unwrap_or("")),
                    ..Request::default()
                };
                let mut close = req.version == Some(0);
                let mut len = 0usize;
                let mut chunked = false;
                let mut expect = false;
                for h in req.headers.iter() {
                    let value = String::from_utf8_lossy(h.value).trim().to_string();
                    if h.name.eq_ignore_ascii_case("content-length") {
                        len = value.parse().map_err(|_| "bad Content-Length")?;
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        close = value.eq_ignore_ascii_case("close");
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = value.to_ascii_lowercase().contains("chunked");
                    } else if h.name.eq_ignore_ascii_case("expect") {
                        expect = value.eq_ignore_ascii_case("100-continue");
                    }
                    r.headers.push((h.name.to_string(), value));
                }
                if len > MAX_BODY {
                    return Err("request body too large".into());
                }
                buf.drain(..head_len);
                if expect {
                    stream
                        .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                        .map_err(|e| e.to_string())?;
                }
                if chunked {
                    r.body = read_chunked(stream, buf)?;
                } else {
                    while buf.len() < len {
                        let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
                        if n == 0 {
                            return Err("connection closed inside the body".into());
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    r.body = buf.drain(..len).collect();
                }
                return Ok(Some((r, close)));
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() > MAX_HEAD {
                    return Err("request head too large".into());
                }
                let n = match stream.read(&mut chunk) {
                    Ok(n) => n,
                    Err(_) if buf.is_empty() => return Ok(None),
                    Err(e) => return Err(e.to_string()),
                };
                if n == 0 {
                    return if buf.is_empty() {
                        Ok(None)
                    } else {
                        Err("connection closed inside the request head".into())
                    };
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) => return Err(format!("malformed request: {e}")),
        }
    }
}

/// The path and query of a request target; the absolute form (`http://host/path`, as a client
/// sends it to a proxy) is accepted too.
fn origin_form(target: &str) -> String {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = target.strip_prefix(scheme) {
            return match rest.find('/') {
                Some(i) => rest[i..].to_string(),
                None => "/".to_string(),
            };
        }
    }
    target.to_string()
}

fn read_chunked(stream: &mut impl Read, buf: &mut Vec<u8>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut fill = |buf: &mut Vec<u8>| -> Result<(), String> {
        let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed inside a chunked body".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        Ok(())
    };
    loop {
        let line_end = loop {
            if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                break p;
            }
            if buf.len() > MAX_HEAD {
                return Err("chunk size line too long".into());
            }
            fill(buf)?;
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                    let empty = p == 0;
                    buf.drain(..p + 2);
                    if empty {
                        return Ok(body);
                    }
                } else {
                    fill(buf)?;
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err("request body too large".into());
        }
        while buf.len() < size + 2 {
            fill(buf)?;
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        424 => "Failed Dependency",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Whether the client accepts gzip (`Accept-Encoding: gzip`).
pub fn accepts_gzip(req: &Request) -> bool {
    req.header("Accept-Encoding").is_some_and(|a| {
        a.split(',')
            .any(|e| e.trim().to_ascii_lowercase().starts_with("gzip"))
    })
}

/// Whether `r` goes out gzip-compressed: compressible, accepted, and worth it (256 bytes).
pub fn will_gzip(req: &Request, r: &Response) -> bool {
    r.compressible && accepts_gzip(req) && r.body.len() >= 256 && !r.truncate
}

/// Writes `r`: gzip when compressible and accepted (and worth it), chunked when asked for.
pub fn write_response(
    stream: &mut impl Write,
    req: &Request,
    mut r: Response,
    close: bool,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    if !r.content_type.is_empty() {
        head.push_str(&format!("Content-Type: {}\r\n", r.content_type));
    }
    let rid = request_id();
    head.push_str(&format!("request-id: {rid}\r\n"));
    head.push_str(&format!(
        "client-request-id: {}\r\n",
        req.header("client-request-id").unwrap_or(&rid)
    ));
    head.push_str("x-ms-ags-diagnostic: {\"ServerInfo\":{\"DataCenter\":\"Local\",\"Slice\":\"E\",\"Ring\":\"5\",\"ScaleUnit\":\"000\",\"RoleInstance\":\"pma-test-graph\"}}\r\n");
    head.push_str("OData-Version: 4.0\r\nCache-Control: private\r\n");
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if will_gzip(req, &r) {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&r.body)?;
        r.body = enc.finish()?;
        head.push_str("Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n");
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    if r.truncate {
        // A connection lost mid-answer: the whole length is announced, half of it arrives.
        let half = &r.body[..r.body.len() / 2];
        if r.chunked {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            head.push_str(&format!("{:x}\r\n", r.body.len()));
        } else {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", r.body.len()));
        }
        stream.write_all(head.as_bytes())?;
        stream.write_all(half)?;
        return stream.flush();
    }
    if r.chunked && r.status != 204 {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        stream.write_all(head.as_bytes())?;
        for piece in r.body.chunks(8 * 1024) {
            stream.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
            stream.write_all(piece)?;
            stream.write_all(b"\r\n")?;
        }
        stream.write_all(b"0\r\n\r\n")?;
    } else {
        if r.status != 204 {
            head.push_str(&format!("Content-Length: {}\r\n", r.body.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(&r.body)?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(origin_form("/v1.0/x?a=b"), "/v1.0/x?a=b");
        assert_eq!(origin_form("http://127.0.0.1:1/v1.0/x"), "/v1.0/x");
        assert_eq!(origin_form("https://graph.microsoft.com"), "/");
    }

    #[test]
    fn chunked_request_bodies() {
        struct Io(std::io::Cursor<Vec<u8>>, Vec<u8>);
        impl Read for Io {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                self.0.read(b)
            }
        }
        impl Write for Io {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.1.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let raw = b"POST /v1.0/$batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\nGET /next HTTP/1.1\r\n\r\n";
        let mut io = Io(std::io::Cursor::new(raw.to_vec()), Vec::new());
        let mut buf = Vec::new();
        let (r, close) = read_request(&mut io, &mut buf).unwrap().unwrap();
        assert_eq!(r.body, b"{\"a\":1}");
        assert!(!close);
        assert!(io.1.starts_with(b"HTTP/1.1 100 Continue"));
        let (next, _) = read_request(&mut io, &mut buf).unwrap().unwrap();
        assert_eq!(next.target, "/next");
        assert!(read_request(&mut io, &mut buf).unwrap().is_none());
    }
}
