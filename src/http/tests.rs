use super::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;

/// What the mock server does after reading the request.
enum Reply {
    /// Sends these pieces (flushing each) and closes.
    Pieces(Vec<Vec<u8>>),
    /// Sends these bytes and then keeps the connection open without answering further.
    Hang(Vec<u8>),
}

/// Reads one request (head and Content-Length body) from `s`.
fn read_request(s: &mut impl Read) -> Vec<u8> {
    let mut req = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().unwrap())
                .unwrap_or(0);
            if req.len() >= end + 4 + len {
                return req;
            }
        }
        let n = s.read(&mut chunk).unwrap();
        if n == 0 {
            return req;
        }
        req.extend_from_slice(&chunk[..n]);
    }
}

/// A one-connection mock server; the handle yields the request it received.
fn serve(reply: Reply) -> (String, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/tenant/oauth2/v2.0/token",
        listener.local_addr().unwrap()
    );
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let req = read_request(&mut s);
        match reply {
            Reply::Pieces(pieces) => {
                for p in pieces {
                    let _ = s.write_all(&p);
                    let _ = s.flush();
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Reply::Hang(bytes) => {
                let _ = s.write_all(&bytes);
                std::thread::sleep(Duration::from_millis(1500));
            }
        }
        req
    });
    (url, handle)
}

fn opts() -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_secs(5),
        ..HttpOptions::default()
    }
}

fn post(url: &str, o: &HttpOptions) -> Result<Response> {
    smol::block_on(post_form(
        url,
        &[("grant_type", "password"), ("password", "p@ss w&rd=+/ü")],
        o,
    ))
}

#[test]
fn content_length_body_and_form_encoding() {
    let (url, h) = serve(Reply::Pieces(vec![
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n".to_vec(),
        b"{\"a\":\"b\"}\r\n".to_vec(),
    ]));
    let r = post(&url, &opts()).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"{\"a\":\"b\"}\r\n");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let req = String::from_utf8(h.join().unwrap()).unwrap();
    assert!(
        req.starts_with("POST /tenant/oauth2/v2.0/token HTTP/1.1\r\n"),
        "{req}"
    );
    assert!(req.contains("\r\nContent-Type: application/x-www-form-urlencoded\r\n"));
    assert!(req.contains("\r\nConnection: close\r\n"));
    assert!(req.ends_with("\r\n\r\ngrant_type=password&password=p%40ss%20w%26rd%3D%2B%2F%C3%BC"));
}

#[test]
fn content_length_ignores_bytes_after_the_body() {
    let (url, h) = serve(Reply::Pieces(vec![
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nokEXTRA".to_vec(),
    ]));
    let r = post(&url, &opts()).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (400, &b"ok"[..]));
    h.join().unwrap();
}

#[test]
fn chunked_body_split_across_reads() {
    let (url, h) = serve(Reply::Pieces(vec![
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel".to_vec(),
        b"lo\r".to_vec(),
        b"\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n".to_vec(),
        b"\r\n".to_vec(),
    ]));
    let r = post(&url, &opts()).unwrap();
    assert_eq!(r.body, b"hello world");
    h.join().unwrap();
}

#[test]
fn close_delimited_body() {
    let (url, h) = serve(Reply::Pieces(vec![
        b"HTTP/1.0 200 OK\r\n\r\nfirst ".to_vec(),
        b"second".to_vec(),
    ]));
    let r = post(&url, &opts()).unwrap();
    assert_eq!(r.body, b"first second");
    h.join().unwrap();
}

#[test]
fn interim_100_continue_is_skipped() {
    let (url, h) = serve(Reply::Pieces(vec![
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ]));
    let r = post(&url, &opts()).unwrap();
    assert_eq!((r.status, r.body.len()), (201, 0));
    h.join().unwrap();
}

#[test]
fn truncated_bodies_are_errors() {
    let (url, h) = serve(Reply::Pieces(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort".to_vec(),
    ]));
    let e = post(&url, &opts()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionClosed, "{e}");
    assert!(e.message().contains("5 of 100"), "{e}");
    h.join().unwrap();

    let (url, h) = serve(Reply::Pieces(vec![
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel".to_vec(),
    ]));
    let e = post(&url, &opts()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionClosed, "{e}");
    h.join().unwrap();
}

#[test]
fn oversized_bodies_are_refused() {
    let small = HttpOptions {
        max_response_bytes: 10,
        ..opts()
    };
    for reply in [
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n01234567890".to_vec(),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n012345\r\n0\r\n\r\n"
            .to_vec(),
        b"HTTP/1.1 200 OK\r\n\r\n012345678901234567890".to_vec(),
        b"HTTP/1.1 200 OK\r\n\r\n01234567890".to_vec(),
    ] {
        let (url, h) = serve(Reply::Pieces(vec![reply]));
        let e = post(&url, &small).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
        assert!(e.message().contains("larger than 10 bytes"), "{e}");
        h.join().unwrap();
    }
}

#[test]
fn hung_server_times_out() {
    let (url, h) = serve(Reply::Hang(b"HTTP/1.1 200 OK\r\nContent-Le".to_vec()));
    let quick = HttpOptions {
        timeout: Duration::from_millis(500),
        ..opts()
    };
    let e = post(&url, &quick).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.message().contains("127.0.0.1"), "{e}");
    h.join().unwrap();
}

#[test]
fn garbage_is_a_protocol_error() {
    let (url, h) = serve(Reply::Pieces(vec![b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec()]));
    let e = post(&url, &opts()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    h.join().unwrap();

    let (url, h) = serve(Reply::Pieces(vec![]));
    let e = post(&url, &opts()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionClosed, "{e}");
    assert!(e.message().contains("without answering"), "{e}");
    h.join().unwrap();
}

#[test]
fn connection_refused_is_connect() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = post(&format!("http://127.0.0.1:{port}/x"), &opts()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
}

#[test]
fn plain_http_only_to_loopback() {
    let e = post("http://login.example.com/tenant/token", &opts()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(
        e.message()
            .contains("http://login.example.com/tenant/token"),
        "{e}"
    );
    assert!(Url::parse("http://localhost:8080/x")
        .unwrap()
        .require_secure_transport("oauth.authority")
        .is_ok());
    let e = Url::parse("http://10.1.2.3/")
        .unwrap()
        .require_secure_transport("oauth.authority")
        .unwrap_err();
    assert!(e.message().starts_with("oauth.authority: "), "{e}");
}

#[test]
fn url_parsing() {
    let u = Url::parse("HTTPS://Login.Example.com/t/oauth2?x=1#frag").unwrap();
    assert_eq!(
        (u.scheme, u.host.as_str(), u.port, u.path.as_str()),
        (Scheme::Https, "login.example.com", 443, "/t/oauth2?x=1")
    );
    assert_eq!(u.path_only(), "/t/oauth2");
    let u = Url::parse("http://[::1]:8080").unwrap();
    assert_eq!(
        (u.host.as_str(), u.port, u.path.as_str()),
        ("::1", 8080, "/")
    );
    assert_eq!(u.authority(), "[::1]:8080");
    let u = Url::parse("https://h.example:443?q").unwrap();
    assert_eq!(
        (u.authority(), u.path.as_str()),
        ("h.example".to_string(), "/?q")
    );
    for bad in [
        "ftp://x/",
        "https://",
        "https://:80/",
        "https://user:pw@host/",
        "https://host:0/",
        "https://host:99999/",
        "https://host:8a/",
        "https://ho st/",
        "https://[::1/",
        "https://host/a b",
        "login.microsoftonline.com",
    ] {
        let e = Url::parse(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{bad}");
        assert!(!e.message().contains("pw@"), "{e}");
    }
}

#[test]
fn url_errors_hide_user_info_and_queries() {
    let e = Url::parse("https://user:pw@host/x?key=k3y").unwrap_err();
    assert!(
        !e.message().contains("pw") && !e.message().contains("k3y"),
        "{e}"
    );
    let e = Url::parse("https://host/a b?key=k3y").unwrap_err();
    assert!(e.message().contains("https://host/a b"), "{e}");
    assert!(!e.message().contains("k3y"), "{e}");
}

#[test]
fn header_injection_is_refused() {
    let e = smol::block_on(request(
        "POST",
        "http://127.0.0.1:9/x",
        &[("Authorization", "Bearer abc\r\nX-Evil: 1")],
        b"{}",
        &opts(),
    ))
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal);
    assert!(!e.message().contains("abc"), "{e}");
}

#[test]
fn request_with_bearer_header_and_json() {
    let (url, h) = serve(Reply::Pieces(vec![
        b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()
    ]));
    let r = smol::block_on(request(
        "POST",
        &url,
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer t0k"),
        ],
        b"{\"x\":1}",
        &opts(),
    ))
    .unwrap();
    assert_eq!(r.status, 204);
    let req = String::from_utf8(h.join().unwrap()).unwrap();
    assert!(req.contains("\r\nAuthorization: Bearer t0k\r\n"));
    assert!(req.contains("\r\nContent-Length: 7\r\n"));
    assert!(req.ends_with("{\"x\":1}"));
}

/// A mock proxy: accepts one CONNECT, answers `answer`, then relays bytes both ways.
fn mock_proxy(answer: &'static [u8]) -> (String, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let req = read_request(&mut client);
        let req = String::from_utf8(req).unwrap();
        client.write_all(answer).unwrap();
        if !answer.starts_with(b"HTTP/1.1 200") {
            return req;
        }
        let target = req
            .strip_prefix("CONNECT ")
            .and_then(|r| r.split(' ').next())
            .unwrap()
            .to_string();
        let mut upstream = TcpStream::connect(&target).unwrap();
        let mut c2 = client.try_clone().unwrap();
        let mut u2 = upstream.try_clone().unwrap();
        let t = std::thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut u2);
            let _ = u2.shutdown(std::net::Shutdown::Write);
        });
        let _ = std::io::copy(&mut upstream, &mut client);
        let _ = client.shutdown(std::net::Shutdown::Both);
        let _ = t.join();
        req
    });
    (url, handle)
}

#[test]
fn proxy_connect_tunnel() {
    let (url, h) = serve(Reply::Pieces(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
    ]));
    let (proxy, p) = mock_proxy(b"HTTP/1.1 200 Connection established\r\n\r\n");
    let o = HttpOptions {
        proxy: Some(proxy),
        ..opts()
    };
    let r = post(&url, &o).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
    let connect = p.join().unwrap();
    let target = Url::parse(&url).unwrap().authority();
    assert!(
        connect.starts_with(&format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n")),
        "{connect}"
    );
    assert!(!connect.contains("password"), "the proxy saw only CONNECT");
    h.join().unwrap();
}

#[test]
fn proxy_refusal_is_clear() {
    let (proxy, p) = mock_proxy(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n");
    let o = HttpOptions {
        proxy: Some(proxy),
        ..opts()
    };
    let e = post("http://127.0.0.1:9/token", &o).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    assert!(e.message().contains("407"), "{e}");
    assert!(e.fix().unwrap().contains("proxy"));
    p.join().unwrap();

    let o = HttpOptions {
        proxy: Some("https://proxy.example:8443".into()),
        ..opts()
    };
    let e = post("http://127.0.0.1:9/token", &o).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
}

#[test]
fn chunked_decoder_rejects_bad_sizes() {
    for input in [&b"zz\r\n"[..], b"-1\r\n", b"\r\n", b"11111111111111111\r\n"] {
        let mut d = ChunkedDecoder::new(100);
        assert!(d.feed(input, &mut Vec::new()).is_err(), "{input:?}");
    }
    let mut d = ChunkedDecoder::new(100);
    assert!(d.feed(b"3\r\nabcX", &mut Vec::new()).is_err());
    let mut d = ChunkedDecoder::new(100);
    let long = vec![b'1'; MAX_CHUNK_LINE + 2];
    assert!(d.feed(&long, &mut Vec::new()).is_err());
}

#[test]
fn debug_of_response_hides_the_body() {
    let r = Response {
        status: 200,
        headers: vec![],
        body: b"{\"access_token\":\"secret\"}".to_vec(),
    };
    let s = format!("{r:?}");
    assert!(!s.contains("secret"), "{s}");
}

// --- HTTPS against a local rustls server with the test CA of tests/fixtures/http-tls (a
// long-lived CA and a certificate for localhost and 127.0.0.1, made with openssl).

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/http-tls")
        .join(name)
}

/// A one-connection TLS server sending `reply`, then closing with or without close_notify.
fn tls_server(reply: &'static [u8], close_notify: bool) -> (u16, JoinHandle<Vec<u8>>) {
    use futures_rustls::rustls;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(fixture("server.pem"))
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(std::sync::Arc::new(config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let req = read_request(&mut tls);
        if req.is_empty() {
            return req; // the client refused the certificate
        }
        tls.write_all(reply).unwrap();
        tls.flush().unwrap();
        if close_notify {
            tls.conn.send_close_notify();
            let _ = tls.conn.write_tls(&mut tls.sock);
        }
        let _ = tls.sock.shutdown(std::net::Shutdown::Both);
        req
    });
    (port, handle)
}

fn tls_opts() -> HttpOptions {
    HttpOptions {
        ca_file: Some(fixture("ca.pem")),
        timeout: Duration::from_secs(5),
        ..HttpOptions::default()
    }
}

#[test]
fn https_close_delimited_body_without_close_notify() {
    let (port, h) = tls_server(b"HTTP/1.1 200 OK\r\n\r\n{\"ok\":true}", false);
    let r = post(&format!("https://localhost:{port}/t/token"), &tls_opts()).unwrap();
    assert_eq!(r.body, b"{\"ok\":true}");
    let req = String::from_utf8(h.join().unwrap()).unwrap();
    assert!(
        req.starts_with("POST /t/token HTTP/1.1\r\nHost: localhost:"),
        "{req}"
    );
}

#[test]
fn https_content_length_with_and_without_close_notify() {
    for notify in [true, false] {
        let (port, h) = tls_server(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd", notify);
        let r = post(&format!("https://127.0.0.1:{port}/"), &tls_opts()).unwrap();
        assert_eq!(r.body, b"abcd");
        h.join().unwrap();
    }
}

#[test]
fn https_truncated_body_is_an_error() {
    let (port, h) = tls_server(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\nabcd", false);
    let e = post(&format!("https://localhost:{port}/"), &tls_opts()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionClosed, "{e}");
    h.join().unwrap();
}

#[test]
fn https_unknown_ca_is_a_certificate_error() {
    let (port, h) = tls_server(b"HTTP/1.1 200 OK\r\n\r\n", false);
    let o = HttpOptions {
        ca_file: None,
        ..tls_opts()
    };
    let e = post(&format!("https://localhost:{port}/"), &o).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Certificate, "{e}");
    assert!(e.message().contains("localhost"), "{e}");
    let _ = h.join();
}

#[test]
fn https_through_the_proxy_tunnel() {
    let (port, h) = tls_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true);
    let (proxy, p) = mock_proxy(b"HTTP/1.1 200 Connection established\r\n\r\n");
    let o = HttpOptions {
        proxy: Some(proxy),
        ..tls_opts()
    };
    let r = post(&format!("https://localhost:{port}/t/token"), &o).unwrap();
    assert_eq!(r.body, b"ok");
    let connect = p.join().unwrap();
    assert!(
        connect.starts_with(&format!("CONNECT localhost:{port} HTTP/1.1\r\n")),
        "{connect}"
    );
    let req = String::from_utf8(h.join().unwrap()).unwrap();
    assert!(
        req.ends_with("password=p%40ss%20w%26rd%3D%2B%2F%C3%BC"),
        "the form arrived inside TLS"
    );
}
