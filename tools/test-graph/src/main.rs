//! pma-test-graph: a local stand-in for Microsoft Graph mail (v1.0) over the harness's Dovecot, so
//! one seeding (`scripts/harness seed`) feeds both transports. It logs in to Dovecot over IMAP as
//! the mailbox user (any `<name>@contoso.test` with the harness password) and checks bearer tokens
//! with the identity endpoint (tools/test-idp, `POST /introspect/claims`). HTTP/1.1 (keep-alive,
//! chunked answers, gzip when `Accept-Encoding: gzip`), plain on loopback and, with
//! `--tls-listen`, HTTPS with the harness's certificate (the harness: 127.0.0.2, same port).
//!
//! Usage: `pma-test-graph --listen 127.0.0.1:19990 [--tls-listen 127.0.0.2:19990 --cert PEM
//! --key PEM] --imap 127.0.0.1:19143 --idp http://127.0.0.1:19980 --dir $PMA_HARNESS_DIR
//! [--password PW]` (else `PMA_PASSWORD`).
//!
//! # Endpoints (`/v1.0/users/{mailbox}/…` or `/v1.0/me/…` for a delegated token's own mailbox)
//! - `GET mailFolders` (top-level folders; `$filter=displayName eq 'X'`, `$top` (default 10),
//!   `$skip` with `@odata.nextLink`), `GET mailFolders/{id}/childFolders` (same options),
//!   `GET mailFolders/{id}`. `{id}` is a folder id or a well-known name: `inbox`, `sentitems`,
//!   `deleteditems`, `drafts`, `junkemail`, `archive` (IMAP INBOX, Sent, Trash, Drafts, Junk,
//!   Archive; created when missing), `msgfolderroot`. Display names: Inbox, Sent Items, Deleted
//!   Items, Drafts, Junk Email, Archive, else the IMAP name's last segment (`INBOX/Support` is
//!   the child `Support` of Inbox).
//! - `GET mailFolders/{id}/messages/delta`: `$select` (id, isRead, internetMessageId, subject,
//!   from, sender, toRecipients, ccRecipients, bccRecipients, replyTo, receivedDateTime,
//!   sentDateTime, createdDateTime, lastModifiedDateTime, changeKey, parentFolderId,
//!   conversationId, importance, hasAttachments, isDraft, flag, categories,
//!   internetMessageHeaders, bodyPreview (Dovecot's PREVIEW), ...; unknown → 400
//!   `RequestBroker--ParseUri`; body/uniqueBody/attachments → 400, use `$value`), `$filter=
//!   receivedDateTime ge|gt <DateTimeOffset>` (the only filter Graph allows on delta; others → 400
//!   `ErrorInvalidUrlQueryFilter`), `Prefer: odata.maxpagesize=N` (default 10, answered with
//!   `Preference-Applied`), pages by `@odata.nextLink` (`$skiptoken`) to a final
//!   `@odata.deltaLink` (`$deltatoken`). A round is a snapshot: the first round lists every
//!   message; a delta link's round lists new and changed messages (flags) and `@removed`
//!   (`{"reason":"deleted"}`) rows for messages moved out or deleted, removed rows first. A
//!   message may appear twice across rounds (as at Graph). Tokens hold the whole state, so they
//!   survive a restart; an expired one (`expire_delta`) or one from before a UIDVALIDITY change
//!   answers 410 `SyncStateNotFound`; a token used for another mailbox or folder → 400.
//! - `GET messages/{id}` (`$select` as above), `GET messages/{id}/$value` (the MIME source,
//!   `Content-Type: text/plain`, chunked), `PATCH messages/{id}` `{"isRead":bool}` and/or
//!   `{"flag":{"flagStatus":…}}` (IMAP \Seen, \Flagged; answers the message),
//!   `POST messages/{id}/move` `{"destinationId": id | well-known name}` (201 with the moved
//!   message and its new id), `DELETE messages/{id}` (204; expunged). Also under
//!   `mailFolders/{id}/messages/{id}`. Message ids encode folder, UIDVALIDITY and UID (base64url
//!   with `-`, `_` and `=`, like Exchange's).
//! - `POST /v1.0/$batch`: `{"requests":[{id, method, url, headers?, body?, dependsOn?}]}`, at
//!   most 20 (else 400), run in order; `{"responses":[{id, status, headers, body}]}` (non-JSON
//!   bodies base64; a failed dependency → 424). Mailbox faults apply per request inside.
//!
//! # Tokens and access
//! Every API request needs `Authorization: Bearer <token of the identity endpoint>`: missing,
//! unknown or expired → 401 `InvalidAuthenticationToken` (with `WWW-Authenticate`); audience not
//! Graph (an IMAP token) → 401 "Invalid audience". Delegated tokens: own mailbox with Mail.Read /
//! Mail.ReadWrite (writes: ReadWrite) or the `.Shared` variants; another mailbox needs
//! Mail.ReadWrite.Shared (reads: also Mail.Read.Shared) and a line `<mailbox>/<user>` in
//! `$PMA_HARNESS_DIR/delegations` (Full Access, as for IMAP) → else 403 `ErrorAccessDenied`.
//! App-only tokens: role Mail.ReadWrite (reads: also Mail.Read) → else 403 `ErrorAccessDenied`;
//! and the application access policy in `$PMA_HARNESS_DIR/graph-access-policy`: lines
//! `<client_id> RestrictAccess <mailbox>` (the app may open only listed mailboxes) and
//! `<client_id> DenyAccess <mailbox>`; an app without lines opens all → else 403
//! `ErrorAccessDenied` "Access to OData is disabled: [RAOP] : Blocked by tenant configured
//! AppOnly AccessPolicy settings.". Mailboxes: `*@contoso.test` (else 404 `ErrorInvalidUser`);
//! local part `onprem-…` → 404 `MailboxNotEnabledForRESTAPI`. Exchange's concurrency limit:
//! more than `max_concurrency` (4) requests in flight for one app and mailbox → 429
//! `ApplicationThrottled` with `Retry-After: 1`. Errors are Graph's `{"error":{"code","message",
//! "innerError":{"date","request-id","client-request-id"}}}`; 429/503/504 carry `Retry-After`.
//!
//! # Control API (`/_test/...`, GET or POST, no token, JSON answers)
//! Most commands take `mailbox=M` to scope them to one mailbox, so parallel tests do not meet.
//! - `reset[?mailbox=M]`: all faults, settings and counters (or M's).
//! - `fail_next?status=429|500|502|503|504[&count=K][&retry_after=S][&mailbox=M]`: the next K
//!   requests (for M; inside a batch: per request) answer that status in Graph's shape
//!   (429 `ApplicationThrottled`, 503 `ServiceUnavailable`, 504 `GatewayTimeout`) with
//!   `Retry-After: S` (default 1).
//! - `fail_every?n=N[&status=S][&retry_after=R][&mailbox=M]`: every N-th request (for M) fails
//!   as `fail_next` would (a steady 429 storm; `n=0` stops).
//! - `empty_pages?mailbox=M[&count=K]`: the next K delta pages for M carry no rows, only a
//!   nextLink to the same position (Graph does answer such pages).
//! - `drop_next?[count=K][&mailbox=M]`: the next K requests are closed without an answer.
//! - `truncate_next?mailbox=M[&count=K]`: the next K answers for M announce their full length
//!   (Content-Length or one chunk) but stop after half the body, and the connection closes.
//! - `error?mailbox=M&code=C[&count=K]`: M's requests answer Graph error C (K times, else until
//!   `code=none` or reset): `ErrorAccessDenied`, `ErrorAccessDeniedPolicy` (the RAOP text),
//!   `MailboxNotEnabledForRESTAPI`, `ErrorItemNotFound`, `InvalidAuthenticationToken`,
//!   `Authorization_RequestDenied`, `ErrorInvalidUser`, `ErrorMailboxMoveInProgress` (503).
//! - `expire_delta[?mailbox=M]`: every delta and skip token issued so far (for M) answers 410
//!   `SyncStateNotFound`.
//! - `set?max_concurrency=N` (0: unlimited), `set?max_page=N`, `set?delay_ms=D[&mailbox=M]`
//!   (each request waits D ms while counted in flight, so concurrency shows),
//!   `set?keepalive_ms=T[&mailbox=M]` (idle connections, or those that served M, are closed
//!   after T ms; default 300 s), `set?max_requests=N[&mailbox=M]` (such a connection serves N
//!   requests, the last answered with `Connection: close`; 0: no limit). max_concurrency and
//!   max_page are global.
//! - `access_policy?client_id=C&access=restrict|deny&mailbox=M`, `access_policy?client_id=C&
//!   access=clear`: edits `graph-access-policy`.
//! - `stats[?mailbox=M]`: `requests, ops{folders,delta,message,value,patch,move,delete},
//!   statuses{code:n}, batches, batch_requests, throttled, max_concurrent, concurrent_now,
//!   concurrency_rejections, connections, gzip_requests, gzip_answers` (max_concurrent: most
//!   requests of the mailbox in flight at once, a refused one over the limit included; a client
//!   that keeps to 4 never shows more than 4. connections: distinct
//!   TCP connections that served the scope, globally also `connections_total`; gzip_requests:
//!   requests with `Accept-Encoding: gzip`, gzip_answers: answers sent compressed).
#![forbid(unsafe_code)]

mod http;
mod ids;
mod imap;
mod message;
mod service;
mod util;

use service::{Config, Graph, Outcome};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn main() {
    let mut listen = "127.0.0.1:19990".to_string();
    let (mut tls_listen, mut cert, mut key) = (String::new(), String::new(), String::new());
    let mut cfg = Config {
        imap_addr: "127.0.0.1:19143".into(),
        idp_url: "http://127.0.0.1:19980".into(),
        password: String::new(),
        dir: PathBuf::from(std::env::var("PMA_HARNESS_DIR").unwrap_or_else(|_| "/tmp/pmah".into())),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--listen" => listen = value(),
            "--tls-listen" => tls_listen = value(),
            "--cert" => cert = value(),
            "--key" => key = value(),
            "--imap" => cfg.imap_addr = value(),
            "--idp" => cfg.idp_url = value(),
            "--dir" => cfg.dir = PathBuf::from(value()),
            "--password" => cfg.password = value(),
            other => {
                eprintln!("pma-test-graph: unknown argument {other:?}; usage: --listen ADDR --imap HOST:PORT --idp URL --dir DIR [--password PW]");
                std::process::exit(2);
            }
        }
    }
    if cfg.password.is_empty() {
        cfg.password = std::env::var("PMA_PASSWORD").unwrap_or_default();
    }
    if cfg.password.is_empty() {
        eprintln!("pma-test-graph: give the mailboxes' password with --password or PMA_PASSWORD");
        std::process::exit(2);
    }
    let listener = match TcpListener::bind(&listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pma-test-graph: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "pma-test-graph: listening on http://{listen} (IMAP {}, identity {})",
        cfg.imap_addr, cfg.idp_url
    );
    let graph = Arc::new(Graph::new(cfg));
    if !tls_listen.is_empty() {
        let tls = match tls_config(&cert, &key) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("pma-test-graph: TLS: {e}");
                std::process::exit(2);
            }
        };
        let l = match TcpListener::bind(&tls_listen) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("pma-test-graph: cannot listen on {tls_listen}: {e}");
                std::process::exit(1);
            }
        };
        eprintln!("pma-test-graph: listening on https://{tls_listen}");
        let graph = Arc::clone(&graph);
        std::thread::spawn(move || accept(l, graph, Some(tls)));
    }
    accept(listener, graph, None);
}

/// Connection ids for the stats (distinct connections per mailbox).
static CONN: AtomicU64 = AtomicU64::new(0);

fn accept(listener: TcpListener, graph: Arc<Graph>, tls: Option<Arc<rustls::ServerConfig>>) {
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let graph = Arc::clone(&graph);
                let id = CONN.fetch_add(1, Ordering::Relaxed);
                graph.connection_opened();
                match &tls {
                    None => {
                        std::thread::spawn(move || serve(stream, &graph, id));
                    }
                    Some(cfg) => match rustls::ServerConnection::new(Arc::clone(cfg)) {
                        Ok(c) => {
                            let s = rustls::StreamOwned::new(c, stream);
                            std::thread::spawn(move || serve(s, &graph, id));
                        }
                        Err(e) => eprintln!("pma-test-graph: TLS session: {e}"),
                    },
                }
            }
            Err(e) => eprintln!("pma-test-graph: accept: {e}"),
        }
    }
}

/// The server configuration for `--tls-listen` from PEM files.
fn tls_config(cert: &str, key: &str) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    if cert.is_empty() || key.is_empty() {
        return Err("--tls-listen needs --cert and --key".into());
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{cert}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(cfg))
}

/// One connection: requests until the peer closes, asks to close, or a fault drops it.
/// A connection whose idle timeout can be set (plain TCP, or TLS over TCP).
trait Idle {
    fn set_idle(&self, d: Duration);
}

impl Idle for TcpStream {
    fn set_idle(&self, d: Duration) {
        let _ = self.set_read_timeout(Some(d));
    }
}

impl Idle for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn set_idle(&self, d: Duration) {
        let _ = self.sock.set_read_timeout(Some(d));
    }
}

fn serve(mut stream: impl Read + Write + Idle, graph: &Graph, id: u64) {
    let mut buf = Vec::new();
    let mut served: u32 = 0;
    loop {
        let (idle, max_requests) = graph.connection_limits(id);
        stream.set_idle(idle);
        let (req, close) = match http::read_request(&mut stream, &mut buf) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(msg) => {
                let r = service::error_response(
                    &service::GErr {
                        status: 400,
                        code: "BadRequest".into(),
                        message: msg,
                        retry_after: None,
                    },
                    &service::Request::default(),
                );
                let _ = http::write_response(&mut stream, &service::Request::default(), r, true);
                return;
            }
        };
        served += 1;
        let close = close || (max_requests > 0 && served >= max_requests);
        let route = req.target.split('?').next().unwrap_or("").to_string();
        let started = std::time::Instant::now();
        match graph.handle(&req, id) {
            Outcome::Answer(resp) => {
                let truncate = resp.truncate;
                eprintln!(
                    "pma-test-graph: {} {route} -> {} ({} µs)",
                    req.method,
                    resp.status,
                    started.elapsed().as_micros()
                );
                if http::write_response(&mut stream, &req, resp, close).is_err()
                    || close
                    || truncate
                {
                    return;
                }
            }
            Outcome::Close => {
                eprintln!("pma-test-graph: {} {route} -> (dropped)", req.method);
                return;
            }
        }
    }
}
