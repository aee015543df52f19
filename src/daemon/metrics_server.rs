//! The HTTP endpoint of `run` (`metrics.listen`): `GET /metrics` (Prometheus text format),
//! `/healthz` (the process answers) and `/readyz` (every mailbox started, none parked).
//!
//! A minimal HTTP/1.1 server on the daemon's own executor: one request per connection
//! (`Connection: close`), requests bounded in size and time, a bounded number of connections,
//! GET and HEAD only. It serves monitoring, not the world: loopback unless the administrator
//! names another address.

use super::metrics::Registry;
use futures::{AsyncReadExt, AsyncWriteExt, FutureExt};
use smol::net::{TcpListener, TcpStream};
use smol::LocalExecutor;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// Largest request head accepted (request line and headers); scrapers send a few hundred bytes.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Time a client gets to send its request and read the answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed at once (a scraper needs one).
pub const MAX_CONNECTIONS: usize = 16;

/// Serves `registry` on `listener` until the task is dropped.
pub async fn serve(
    ex: Rc<LocalExecutor<'static>>,
    listener: TcpListener,
    registry: &'static Registry,
) {
    let open = Rc::new(Cell::new(0usize));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors, mostly: wait instead of spinning.
                log::warn!("metrics: accept failed: {e}");
                smol::Timer::after(Duration::from_millis(500)).await;
                continue;
            }
        };
        if open.get() >= MAX_CONNECTIONS {
            drop(stream);
            continue;
        }
        open.set(open.get() + 1);
        let open = open.clone();
        ex.spawn(async move {
            let timeout = FutureExt::fuse(smol::Timer::after(TIMEOUT));
            let work = answer(stream, registry).fuse();
            futures::pin_mut!(timeout, work);
            futures::select_biased! {
                _ = work => {},
                _ = timeout => log::debug!("metrics: a client took longer than {} s", TIMEOUT.as_secs()),
            }
            open.set(open.get() - 1);
        })
        .detach();
    }
}

async fn answer(mut stream: TcpStream, registry: &Registry) {
    let response = match read_head(&mut stream).await {
        Ok(head) => respond(&head, registry),
        Err(status) => plain(status, reason(status), false),
    };
    let _ = stream.write_all(&response).await;
    let _ = stream.flush().await;
    let _ = stream.close().await;
}

/// Reads up to the end of the request head; an HTTP status on failure.
async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, u16> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| 400u16)?;
        if n == 0 {
            return Err(400);
        }
        head.extend_from_slice(&chunk[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(head);
        }
        if head.len() > MAX_REQUEST {
            return Err(431);
        }
    }
}

/// The whole response to the request `head`.
pub fn respond(head: &[u8], registry: &Registry) -> Vec<u8> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return plain(431, reason(431), false)
        }
        Err(_) => return plain(400, reason(400), false),
    }
    let head_only = match req.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => {
            let mut r = plain(405, reason(405), false);
            insert_header(&mut r, "Allow: GET, HEAD");
            return r;
        }
    };
    let path = req.path.unwrap_or("/");
    let path = path.split(['?', '#']).next().unwrap_or(path);
    match path {
        "/metrics" => response(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            registry.render().as_bytes(),
            head_only,
        ),
        "/healthz" => plain(200, "ok", head_only),
        "/readyz" => match registry.readiness() {
            Ok(()) => plain(200, "ready", head_only),
            Err(why) => plain(503, &format!("not ready: {why}"), head_only),
        },
        _ => plain(
            404,
            "not found: try /metrics, /healthz or /readyz",
            head_only,
        ),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn plain(status: u16, text: &str, head_only: bool) -> Vec<u8> {
    response(
        status,
        "text/plain; charset=utf-8",
        format!("{text}\n").as_bytes(),
        head_only,
    )
}

fn response(status: u16, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    if !head_only {
        r.extend_from_slice(body);
    }
    r
}

fn insert_header(response: &mut Vec<u8>, header: &str) {
    if let Some(at) = response.windows(2).position(|w| w == b"\r\n") {
        let line = format!("\r\n{header}");
        response.splice(at..at, line.into_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(head: &str, r: &Registry) -> String {
        String::from_utf8(respond(head.as_bytes(), r)).unwrap()
    }

    #[test]
    fn routes_methods_and_bad_requests() {
        let r = Registry::default();
        let m = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r);
        assert!(m.starts_with("HTTP/1.1 200 OK\r\n"), "{m}");
        assert!(m.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(
            m.contains("# TYPE pma_tickets_delivered_total counter"),
            "{m}"
        );
        let body = m.split("\r\n\r\n").nth(1).unwrap();
        assert!(m.contains(&format!("Content-Length: {}\r\n", body.len())));
        let h = get("HEAD /metrics?x=1 HTTP/1.0\r\n\r\n", &r);
        assert!(
            h.starts_with("HTTP/1.1 200 OK") && h.ends_with("\r\n\r\n"),
            "{h}"
        );
        assert!(get("GET /healthz HTTP/1.1\r\n\r\n", &r).ends_with("\r\n\r\nok\n"));
        let not_ready = get("GET /readyz HTTP/1.1\r\n\r\n", &r);
        assert!(not_ready.starts_with("HTTP/1.1 503 "), "{not_ready}");
        r.set_started(None);
        assert!(get("GET /readyz HTTP/1.1\r\n\r\n", &r).starts_with("HTTP/1.1 200 "));
        assert!(get("GET /nope HTTP/1.1\r\n\r\n", &r).starts_with("HTTP/1.1 404 "));
        let post = get("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r);
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(post.contains("\r\nAllow: GET, HEAD\r\n"), "{post}");
        assert!(get("GARBAGE\0\r\n\r\n", &r).starts_with("HTTP/1.1 400 "));
        let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
        let big = get(&format!("GET /metrics HTTP/1.1\r\n{many}\r\n"), &r);
        assert!(big.starts_with("HTTP/1.1 431 "), "{big}");
    }

    #[test]
    fn serves_over_tcp_and_bounds_requests() {
        use std::io::{Read, Write};
        let ex = Rc::new(LocalExecutor::new());
        let listener = smol::block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        static REG: Lazy<Registry> = Lazy::new(Registry::default);
        use once_cell::sync::Lazy;
        let server = ex.spawn(serve(ex.clone(), listener, &REG));
        let client = std::thread::spawn(move || {
            let ask = |req: &[u8]| {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let _ = s.write_all(req);
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                out
            };
            let ok = ask(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
            let huge = ask(&vec![b'a'; MAX_REQUEST + 4096]);
            (ok, huge)
        });
        let (ok, huge) = smol::block_on(ex.run(async {
            loop {
                if client.is_finished() {
                    return client.join().unwrap();
                }
                smol::Timer::after(Duration::from_millis(5)).await;
            }
        }));
        drop(server);
        assert!(
            ok.starts_with("HTTP/1.1 200 OK") && ok.ends_with("ok\n"),
            "{ok}"
        );
        assert!(huge.starts_with("HTTP/1.1 431 "), "{huge}");
    }
}
