//! TCP connect and timeouts shared by IMAP, the token endpoint and webhooks.

use crate::error::{Error, ErrorKind, Result};
use smol::net::TcpStream;
use std::future::Future;
use std::time::Duration;

/// Runs `fut`, failing with [`ErrorKind::Timeout`] naming `what` when it takes longer than `limit`.
///
/// A panic inside `fut` becomes a [`ErrorKind::Protocol`] error: every network step parses what
/// a remote peer sent, partly with third-party parsers (imap-proto panics on some malformed
/// status lines), and a hostile server must not bring the agent down. The connection is then
/// in an unknown state; callers drop it on Protocol errors.
pub async fn with_timeout<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    use futures::FutureExt;
    let fut = std::panic::AssertUnwindSafe(fut)
        .catch_unwind()
        .map(|r| match r {
            Ok(r) => r,
            Err(payload) => Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "{what}: the answer could not be parsed (parser failure: {})",
                    panic_text(payload.as_ref())
                ),
            )),
        });
    let timer = async {
        smol::Timer::after(limit).await;
        Err(Error::new(
            ErrorKind::Timeout,
            format!("{what}: no answer within {} s", limit.as_secs_f32()),
        ))
    };
    futures::select_biased! {
        r = fut.fuse() => r,
        t = timer.fuse() => t,
    }
}

/// The message of a panic payload, bounded.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".to_string());
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Opens a TCP connection to `host:port` (DNS included) within `limit`.
pub async fn connect_tcp(host: &str, port: u16, limit: Duration) -> Result<TcpStream> {
    let what = format!("connect to {host}:{port}");
    with_timeout(limit, &what, async {
        let stream = TcpStream::connect((host, port)).await.map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::TimedOut {
                ErrorKind::Timeout
            } else {
                ErrorKind::Connect
            };
            Error::new(kind, format!("{what}: {e}")).with_fix(
                "check the server name and port, and that a firewall or proxy lets this machine reach it",
            )
        })?;
        let _ = stream.set_nodelay(true);
        keepalive(&stream);
        Ok(stream)
    })
    .await
}

/// Turns on TCP keepalive (first probe after 60 s idle, then every 20 s): a connection that dies
/// silently (a NAT or firewall dropping it) fails within minutes instead of hanging an IDLE that
/// waits up to 29 minutes for its next word from the server.
fn keepalive(stream: &TcpStream) {
    let ka = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
    let ka = ka.with_interval(Duration::from_secs(20));
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&ka) {
        log::debug!("TCP keepalive not set: {e}");
    }
}

/// Whether `host` names this machine (loopback): plain HTTP and plaintext are tolerated only there.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match h.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("127.0.0.1"));
        assert!(is_loopback_host("127.0.0.2"));
        assert!(is_loopback_host("[::1]"));
        assert!(is_loopback_host("LOCALHOST"));
        assert!(!is_loopback_host("login.microsoftonline.com"));
        assert!(!is_loopback_host("10.0.0.1"));
    }

    #[test]
    fn a_panic_inside_becomes_a_protocol_error() {
        let r: Result<()> = smol::block_on(with_timeout(Duration::from_secs(5), "SELECT", async {
            let s = String::from("\u{fffd}x");
            let _ = &s[1..];
            Ok(())
        }));
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(
            e.message()
                .starts_with("SELECT: the answer could not be parsed"),
            "{e}"
        );
    }

    #[test]
    fn connections_keep_alive() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream =
            smol::block_on(connect_tcp("127.0.0.1", port, Duration::from_secs(5))).unwrap();
        let sock = socket2::SockRef::from(&stream);
        assert!(sock.keepalive().unwrap());
        #[cfg(target_os = "linux")]
        assert_eq!(sock.keepalive_time().unwrap(), Duration::from_secs(60));
    }

    #[test]
    fn timeout_fires() {
        let r: Result<()> =
            smol::block_on(with_timeout(Duration::from_millis(20), "wait", async {
                smol::Timer::after(Duration::from_secs(5)).await;
                Ok(())
            }));
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Timeout);
    }
}
