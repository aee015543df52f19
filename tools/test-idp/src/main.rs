//! pma-test-idp: a local stand-in for the Microsoft identity platform v2.0 (token and device-code
//! endpoints, Microsoft-shaped answers and AADSTS errors), plus token introspection for Dovecot
//! and a control API for tests. Plain HTTP/1.1 (keep-alive) on loopback; std only (+httparse).
//!
//! Usage: `pma-test-idp --listen 127.0.0.1:19980 [--password PW]` (else `PMA_PASSWORD`).
//!
//! # Endpoints
//! - `POST /{tenant}/oauth2/v2.0/token`: grants `password`, `refresh_token`, `client_credentials`,
//!   `urn:ietf:params:oauth:grant-type:device_code`. Success: `token_type, scope, expires_in,
//!   ext_expires_in, access_token[, refresh_token]` (a refresh token only when `offline_access`
//!   was asked for, and never for client credentials, as at Microsoft). Refresh tokens rotate;
//!   the old one keeps working unless `strict_rotation` is set.
//! - `POST /{tenant}/oauth2/v2.0/devicecode`: `user_code, device_code, verification_uri,
//!   expires_in, interval, message`.
//! - `GET /{tenant}/v2.0/.well-known/openid-configuration`: the OpenID configuration of the
//!   tenant (its name, GUID or domain): `issuer` `https://login.microsoftonline.com/{GUID}/v2.0`;
//!   any other domain → 90002 (tenant discovery, src/tenant.rs).
//! - `POST /introspect` (form `token=`): `{"active":true,"username":<owner>,...}` for a live token
//!   that grants IMAP, else `{"active":false}`. Owner: the user, or the client id for app tokens.
//! - `POST /introspect/claims` (form `token=`): for resource servers other than Dovecot (the
//!   Graph stand-in): `{"active":true,"aud","sub","idtyp":"user"|"app","appid","scp","roles",
//!   "exp"}` for any live token, whatever its audience; else `{"active":false}`.
//!
//! # Directory
//! - Tenant `contoso-tenant` (or its GUID `5c8a3e1f-7b2d-4f60-9a41-0d6e2b8c7f35`, or the domain
//!   `contoso.test`); `common`/`organizations` → 50194,
//!   others → 90002.
//! - Apps: `app-public` (public client flows on), `app-nopublic` (→ 7000218),
//!   `app-confidential` with secret `s3cret-app` (wrong secret → 7000215), `app-expiredsecret`
//!   with secret `old-s3cret` (→ 7000222), `app-noconsent` (→ 65001); unknown → 700016.
//! - Certificate apps: any client id starting with `app-cert` authenticates client credentials
//!   with a `client_assertion` signed by a certificate registered for it (src/certs.rs):
//!   unknown key or bad signature → 700027, `iss`/`sub` ≠ client id → 700021, outside
//!   `nbf`..`exp` → 700024, a `jti` seen before → 7000299 (this stand-in's own number).
//! - Users: any `*@contoso.test` with the password; wrong password → 50126, other domains →
//!   50034. Local-part prefixes: `locked-` 50053, `disabled-` 50057, `expired-` 50055, `mfa-`
//!   50076, `mfareg-` 50079, `blocked-` 53003, `secdefaults-` 530035 (device code sign-in works
//!   for all of them: approval stands for the interactive sign-in).
//! - Scope: delegated grants need `https://outlook.office.com/IMAP.AccessAsUser.All` (or an
//!   Exchange `.default`), else 70011 (two resources → 28000); client credentials need
//!   `<resource>/.default` (else 1002012); a non-Exchange `.default` is issued but opens no IMAP.
//! - Graph (src/graph.rs): delegated `https://graph.microsoft.com/<perm>` for Mail.Read,
//!   Mail.ReadWrite, Mail.Read.Shared, Mail.ReadWrite.Shared, Mail.Send(.Shared), User.Read, ...
//!   (`.default`: Mail.ReadWrite, Mail.ReadWrite.Shared, User.Read; unknown → 70011, Graph with
//!   another resource → 28000); tokens have audience `https://graph.microsoft.com` and open no
//!   IMAP. Client credentials with `https://graph.microsoft.com/.default` carry the app's Graph
//!   application roles (`Mail.ReadWrite` unless `graph_roles` changed them).
//!   `app-confidential-b` is a second confidential app (secret `s3cret-app`) for tests that
//!   change an app's Graph roles or access policy without disturbing others.
//!
//! # Control API (`/_test/...`, GET or POST, JSON answers)
//! Most commands take an optional `user=` (a user, or the client id for client credentials): the
//! setting then applies to that subject only, so parallel tests do not disturb each other.
//! - `reset[?user=U]`: everything (tokens, devices, settings, counters), or U's settings/counters.
//! - `expire_access_tokens[?user=U]`: current access tokens become inactive.
//! - `revoke?user=U`: U's refresh tokens fail with 50173, U's access tokens become inactive.
//! - `set_password?user=U&password=P`: U's password becomes P (the directory's password is
//!   refused for U with 50126) and U's refresh tokens are revoked (50173), as a password change
//!   at Microsoft does; `reset?user=U` restores the directory's password.
//! - `fail_next?code=N[&count=K][&user=U]`: the next K token requests fail with AADSTS N
//!   (every code of REFERENCE.md's table, plus 70016 authorization_pending, 70019
//!   expired_token, 70020 slow_down, 70021 authorization_declined, 70003, 900144).
//! - `mode?m=normal|down|slow|garbage[&user=U]`: token/devicecode endpoint faults: close without
//!   answer, no answer for 65 s, or 200 with HTML.
//! - `introspect?m=normal|error|nouser|slow[&user=U]`: introspection faults (500, no username,
//!   no answer); Dovecot then answers `NO [UNAVAILABLE]`.
//! - `set?access_ttl=S&strict_rotation=0|1[&user=U]`, `set?device_interval=S&device_expires=S`.
//! - `approve_device?user=U[&user_code=X][&client_id=C]`, `decline_device?[user_code=X]`:
//!   without user_code, the newest pending request (of client C).
//! - `register_certificate?client_id=C` with form `certificate=PEM`: registers the certificate
//!   for certificate app C (answers its SHA-1 thumbprint); `cert_clock?client_id=C&skew=S`: for
//!   C's assertions this endpoint's clock runs S seconds ahead (a client clock S seconds slow).
//! - `graph_consent?client_id=C&scopes=A,B`: C's delegated Graph permissions are only A, B (others
//!   → 65001); `scopes=*` restores all. `graph_roles?client_id=C&roles=A,B`: application roles
//!   of C's next Graph tokens (empty: none, as without admin consent); `roles=*` restores.
//! - `stats[?user=U]`: `token_requests, password, refresh_token, client_credentials,
//!   device_code, other_grant, token_errors, slow_down, devicecode_requests, introspections,
//!   introspections_active`.
#![forbid(unsafe_code)]

mod certs;
mod directory;
mod errors;
mod graph;
mod service;
mod tenant;
mod util;

use service::{Reply, Service};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;

fn main() {
    let mut listen = "127.0.0.1:19980".to_string();
    let mut password = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or_default(),
            "--password" => password = args.next().unwrap_or_default(),
            other => {
                eprintln!(
                    "pma-test-idp: unknown argument {other:?}; usage: --listen ADDR --password PW"
                );
                std::process::exit(2);
            }
        }
    }
    if password.is_empty() {
        password = std::env::var("PMA_PASSWORD").unwrap_or_default();
    }
    if password.is_empty() {
        eprintln!("pma-test-idp: give the users' password with --password or PMA_PASSWORD");
        std::process::exit(2);
    }
    let listener = match TcpListener::bind(&listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pma-test-idp: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("pma-test-idp: listening on http://{listen}");
    tenant::set_base_url(&format!("http://{listen}"));
    let service = Arc::new(Mutex::new(Service::new(&password)));
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let service = Arc::clone(&service);
                std::thread::spawn(move || serve(stream, &service));
            }
            Err(e) => eprintln!("pma-test-idp: accept: {e}"),
        }
    }
}

/// One connection: requests until the peer closes, asks to close, or a fault mode ends it.
fn serve(mut stream: TcpStream, service: &Mutex<Service>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let (method, path, body, close) = match read_request(&mut stream, &mut buf) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(msg) => {
                let _ = write_answer(&mut stream, 400, "text/plain", &format!("{msg}\n"), true);
                return;
            }
        };
        let (reply, generation) = {
            let mut s = service.lock().unwrap_or_else(|p| p.into_inner());
            let r = s.handle(&method, &path, &body);
            (r, s.generation)
        };
        let route = path.split('?').next().unwrap_or("");
        // Dovecot pools introspection connections and does not retry: one kept open across an
        // idp restart would fail the next login. A fresh connection per introspection avoids it.
        let close = close || route == "/introspect";
        match reply {
            Reply::Answer(status, ctype, text) => {
                eprintln!("pma-test-idp: {method} {route} -> {status}");
                if write_answer(&mut stream, status, ctype, &text, close).is_err() || close {
                    return;
                }
            }
            Reply::Close => {
                eprintln!("pma-test-idp: {method} {route} -> (closed: down)");
                return;
            }
            Reply::Hang => {
                eprintln!("pma-test-idp: {method} {route} -> (hanging: slow)");
                // Hold the connection for a minute unless a reset asks to give up.
                let until = Instant::now() + Duration::from_secs(65);
                while Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(200));
                    let g = service.lock().map(|s| s.generation).unwrap_or(generation);
                    if g != generation {
                        break;
                    }
                }
                return;
            }
        }
    }
}

type Request = (String, String, String, bool);

/// Reads one request; `Ok(None)` when the peer closed between requests.
fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<Request>, String> {
    let mut chunk = [0u8; 8192];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let method = req.method.unwrap_or("").to_string();
                let path = req.path.unwrap_or("").to_string();
                let mut len = 0usize;
                let mut close = req.version == Some(0);
                for h in req.headers.iter() {
                    let value = String::from_utf8_lossy(h.value);
                    if h.name.eq_ignore_ascii_case("content-length") {
                        len = value.trim().parse().map_err(|_| "bad Content-Length")?;
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        close = value.eq_ignore_ascii_case("close");
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        return Err("chunked request bodies are not supported".into());
                    }
                }
                if len > MAX_BODY {
                    return Err("request body too large".into());
                }
                while buf.len() < head_len + len {
                    let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err("connection closed inside the body".into());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&buf[head_len..head_len + len]).into_owned();
                buf.drain(..head_len + len);
                return Ok(Some((method, path, body, close)));
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

fn write_answer(
    stream: &mut TcpStream,
    status: u16,
    ctype: &str,
    body: &str,
    close: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store, no-cache\r\nPragma: no-cache\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}
