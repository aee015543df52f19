//! The Graph endpoints over the harness's Dovecot, with token checks, fault injection and stats.

use crate::ids::{self, folder_id, message_id, MessageRef, Page, SyncToken};
use crate::imap::{compact_set, quote, Imap, ImapError, Item};
use crate::message::{self, ImapMessage};
use crate::util::{imap_date, iso_utc, json_str, parse_query, percent_decode, unix_millis, Json};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// Where the stand-in finds its backends.
#[derive(Debug, Clone)]
pub struct Config {
    /// Dovecot's plain IMAP endpoint (loopback, LOGIN allowed), e.g. `127.0.0.1:19143`.
    pub imap_addr: String,
    /// The identity endpoint's base URL, e.g. `http://127.0.0.1:19980`.
    pub idp_url: String,
    /// The password of every `*@contoso.test` mailbox.
    pub password: String,
    /// The harness directory (`delegations`, `graph-access-policy`).
    pub dir: PathBuf,
}

/// One HTTP request as the server read it.
#[derive(Debug, Default, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer; the HTTP layer decides on gzip and chunking from `compressible`/`chunked`.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Worth compressing when the client accepts gzip.
    pub compressible: bool,
    /// Sent with `Transfer-Encoding: chunked` (delta pages and MIME sources, as Graph does).
    pub chunked: bool,
    /// Fault injection: send the head and half the body, then close (`truncate_next`).
    pub truncate: bool,
}

impl Response {
    fn json(status: u16, body: String) -> Response {
        Response {
            status,
            content_type: "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8",
            headers: Vec::new(),
            body: body.into_bytes(),
            compressible: true,
            chunked: false,
            truncate: false,
        }
    }

    fn empty(status: u16) -> Response {
        Response {
            status,
            content_type: "",
            headers: Vec::new(),
            body: Vec::new(),
            compressible: false,
            chunked: false,
            truncate: false,
        }
    }

    fn control(status: u16, body: String) -> Response {
        Response {
            content_type: "application/json; charset=utf-8",
            compressible: false,
            ..Response::json(status, body)
        }
    }
}

/// What the connection does with a request.
#[derive(Debug)]
pub enum Outcome {
    Answer(Response),
    /// Close the connection without answering (`drop_next`).
    Close,
}

/// A Graph error answer.
#[derive(Debug, Clone)]
pub struct GErr {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub retry_after: Option<u64>,
}

fn gerr(status: u16, code: &str, message: &str) -> GErr {
    GErr {
        status,
        code: code.into(),
        message: message.into(),
        retry_after: None,
    }
}

const NOT_FOUND: &str = "The specified object was not found in the store.";
const ACCESS_DENIED: &str = "Access is denied. Check credentials and try again.";
const RAOP: &str =
    "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.";

/// The Graph error for a code a test injects (`error?code=`), with Graph's status and wording.
pub fn named_error(code: &str) -> Option<GErr> {
    Some(match code {
        "ErrorAccessDenied" => gerr(403, code, ACCESS_DENIED),
        "ErrorAccessDeniedPolicy" | "RAOP" => gerr(403, "ErrorAccessDenied", RAOP),
        "MailboxNotEnabledForRESTAPI" => gerr(
            404,
            code,
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        ),
        "ErrorItemNotFound" => gerr(404, code, NOT_FOUND),
        "InvalidAuthenticationToken" => {
            gerr(401, code, "Access token has expired or is not yet valid.")
        }
        "Authorization_RequestDenied" => gerr(
            403,
            code,
            "Insufficient privileges to complete the operation.",
        ),
        "ErrorInvalidUser" => gerr(404, code, "The requested user is invalid."),
        "ErrorMailboxMoveInProgress" => {
            gerr(503, code, "Mailbox move in progress. Try again later.")
        }
        _ => return None,
    })
}

fn throttle_error(status: u16, retry_after: u64) -> GErr {
    let (code, message) = match status {
        429 => (
            "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
        ),
        503 => (
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please retry later.",
        ),
        504 => (
            "GatewayTimeout",
            "The gateway did not receive a timely response.",
        ),
        _ => (
            "InternalServerError",
            "An internal server error occurred. The operation failed.",
        ),
    };
    GErr {
        retry_after: (status == 429 || status == 503 || status == 504).then_some(retry_after),
        ..gerr(status, code, message)
    }
}

/// Per-scope fault settings (global, or one mailbox).
#[derive(Debug, Default, Clone)]
struct Faults {
    /// Next answers: (status, Retry-After seconds).
    fail_next: VecDeque<(u16, u64)>,
    /// Next requests closed without an answer.
    drop_next: u32,
    /// A standing (or counted) error for the mailbox.
    error: Option<(String, Option<u32>)>,
    /// Delay before handling (makes concurrency observable).
    delay_ms: Option<u64>,
    /// Every n-th request fails: (n, status, Retry-After), and the requests counted so far.
    every: Option<(u32, u16, u64)>,
    every_count: u32,
    /// Next answers cut off after half the body.
    truncate_next: u32,
    /// Next delta pages answered without rows but with a nextLink to the same position.
    empty_pages: u32,
    /// Keep-alive: idle connections close after this long; at most this many requests per
    /// connection (0: no limit), the last answered with `Connection: close`. For a mailbox:
    /// connections that served it.
    keepalive: Option<Duration>,
    max_requests: Option<u32>,
}

#[derive(Debug, Default, Clone)]
struct Stats {
    requests: u64,
    ops: BTreeMap<&'static str, u64>,
    statuses: BTreeMap<u16, u64>,
    batches: u64,
    batch_requests: u64,
    throttled: u64,
    max_concurrent: u32,
    concurrency_rejections: u64,
    connections: HashSet<u64>,
    /// Requests that sent `Accept-Encoding: gzip`, and answers that went out compressed.
    gzip_requests: u64,
    gzip_answers: u64,
}

impl Stats {
    fn json(&self, now: u32) -> String {
        let ops: Vec<String> = self
            .ops
            .iter()
            .map(|(k, v)| format!("{}:{v}", json_str(k)))
            .collect();
        let st: Vec<String> = self
            .statuses
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        format!(
            "{{\"requests\":{},\"ops\":{{{}}},\"statuses\":{{{}}},\"batches\":{},\"batch_requests\":{},\"throttled\":{},\"max_concurrent\":{},\"concurrent_now\":{now},\"concurrency_rejections\":{},\"connections\":{},\"gzip_requests\":{},\"gzip_answers\":{}}}",
            self.requests,
            ops.join(","),
            st.join(","),
            self.batches,
            self.batch_requests,
            self.throttled,
            self.max_concurrent,
            self.concurrency_rejections,
            self.connections.len(),
            self.gzip_requests,
            self.gzip_answers
        )
    }
}

#[derive(Debug)]
struct Control {
    global: Faults,
    mailboxes: HashMap<String, Faults>,
    stats: Stats,
    mailbox_stats: HashMap<String, Stats>,
    /// In-flight requests per (app, mailbox) and per mailbox.
    inflight: HashMap<(String, String), u32>,
    mailbox_inflight: HashMap<String, u32>,
    /// Exchange's per-app, per-mailbox concurrency limit (0: none).
    max_concurrency: u32,
    /// Delta tokens issued before this (ms) are expired: globally and per mailbox.
    expired_before: u64,
    mailbox_expired_before: HashMap<String, u64>,
    /// Largest page a client may ask for with `Prefer: odata.maxpagesize`.
    max_page: usize,
    connections_total: u64,
}

impl Control {
    fn new() -> Control {
        Control {
            global: Faults::default(),
            mailboxes: HashMap::new(),
            stats: Stats::default(),
            mailbox_stats: HashMap::new(),
            inflight: HashMap::new(),
            mailbox_inflight: HashMap::new(),
            max_concurrency: 4,
            expired_before: 0,
            mailbox_expired_before: HashMap::new(),
            max_page: 1000,
            connections_total: 0,
        }
    }
}

/// The token's claims from the identity endpoint.
#[derive(Debug, Clone)]
pub struct Claims {
    pub sub: String,
    pub app: bool,
    pub appid: String,
    pub scp: Vec<String>,
    pub roles: Vec<String>,
}

/// The whole stand-in.
pub struct Graph {
    cfg: Config,
    pool: Mutex<HashMap<String, Vec<Imap>>>,
    /// Keep-alive connections to the identity endpoint.
    idp_pool: Mutex<Vec<std::io::BufReader<std::net::TcpStream>>>,
    ctl: Mutex<Control>,
}

/// Parsed API route (after `/v1.0/users/{mailbox}` or `/v1.0/me`).
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Folders(Option<String>),
    Folder(String),
    Delta(String),
    Message(String),
    Value(String),
    Patch(String),
    Move(String),
    Delete(String),
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Folders(_) | Op::Folder(_) => "folders",
            Op::Delta(_) => "delta",
            Op::Message(_) => "message",
            Op::Value(_) => "value",
            Op::Patch(_) => "patch",
            Op::Move(_) => "move",
            Op::Delete(_) => "delete",
        }
    }
    fn writes(&self) -> bool {
        matches!(self, Op::Patch(_) | Op::Move(_) | Op::Delete(_))
    }
}

/// Well-known folder names and the IMAP folders they map to (created when missing, as every
/// Exchange mailbox has them).
const WELL_KNOWN: &[(&str, &str, &str)] = &[
    ("inbox", "INBOX", "Inbox"),
    ("sentitems", "Sent", "Sent Items"),
    ("deleteditems", "Trash", "Deleted Items"),
    ("drafts", "Drafts", "Drafts"),
    ("junkemail", "Junk", "Junk Email"),
    ("archive", "Archive", "Archive"),
];

fn display_name(imap_name: &str) -> String {
    if let Some((_, _, d)) = WELL_KNOWN.iter().find(|(_, n, _)| *n == imap_name) {
        return d.to_string();
    }
    crate::imap::mutf7_decode(imap_name.rsplit('/').next().unwrap_or(imap_name))
}

fn parent_of(imap_name: &str) -> &str {
    imap_name.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

fn imap_err(e: ImapError) -> GErr {
    match e {
        ImapError::Refused(t) if t.contains("NONEXISTENT") || t.contains("doesn't exist") => {
            gerr(404, "ErrorItemNotFound", NOT_FOUND)
        }
        ImapError::Refused(t) => gerr(
            500,
            "ErrorInternalServerError",
            &format!("The mailbox store refused the operation: {t}"),
        ),
        ImapError::Io(t) => GErr {
            retry_after: Some(1),
            ..gerr(
                503,
                "ServiceUnavailable",
                &format!("The mailbox store is not reachable: {t}"),
            )
        },
    }
}

/// `Prefer: odata.maxpagesize=N`.
fn max_page_size(req: &Request) -> Option<usize> {
    let p = req.header("Prefer")?;
    p.split(',').find_map(|x| {
        let (k, v) = x.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("odata.maxpagesize")
            .then(|| v.trim().trim_matches('"').parse().ok())?
    })
}

impl Graph {
    pub fn new(cfg: Config) -> Graph {
        Graph {
            cfg,
            pool: Mutex::new(HashMap::new()),
            idp_pool: Mutex::new(Vec::new()),
            ctl: Mutex::new(Control::new()),
        }
    }

    fn ctl(&self) -> std::sync::MutexGuard<'_, Control> {
        self.ctl.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long idle keep-alive connection `conn` stays open, and how many requests it serves:
    /// the settings of a mailbox it served, else the global ones.
    pub fn connection_limits(&self, conn: u64) -> (Duration, u32) {
        let c = self.ctl();
        let mut keepalive = c.global.keepalive.unwrap_or(Duration::from_secs(300));
        let mut max = c.global.max_requests.unwrap_or(0);
        for (m, f) in &c.mailboxes {
            if f.keepalive.is_none() && f.max_requests.is_none() {
                continue;
            }
            if c.mailbox_stats
                .get(m)
                .is_some_and(|s| s.connections.contains(&conn))
            {
                keepalive = f.keepalive.unwrap_or(keepalive);
                max = f.max_requests.unwrap_or(max);
            }
        }
        (keepalive, max)
    }

    /// Counts a new TCP connection.
    pub fn connection_opened(&self) {
        self.ctl().connections_total += 1;
    }

    /// Runs `f` on a pooled IMAP connection of `mailbox`.
    fn with_imap<T>(
        &self,
        mailbox: &str,
        f: impl FnOnce(&mut Imap) -> Result<T, GErr>,
    ) -> Result<T, GErr> {
        let pooled = self
            .pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(mailbox)
            .and_then(Vec::pop);
        // A pooled connection idle for a while may have been closed by Dovecot (autologout, a
        // restart of the harness): probe it, and log in afresh if it is gone.
        let pooled = pooled.and_then(|mut c| {
            if c.last_used.elapsed() < Duration::from_secs(2) || c.run("NOOP").is_ok() {
                Some(c)
            } else {
                None
            }
        });
        let mut conn = match pooled {
            Some(c) => c,
            None => {
                Imap::login(&self.cfg.imap_addr, mailbox, &self.cfg.password).map_err(imap_err)?
            }
        };
        let r = f(&mut conn);
        if !conn.broken {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            let v = pool.entry(mailbox.to_string()).or_default();
            if v.len() < 8 {
                v.push(conn);
            }
        }
        r
    }

    /// Handles one request of a connection.
    pub fn handle(&self, req: &Request, conn: u64) -> Outcome {
        let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
        if let Some(cmd) = path.strip_prefix("/_test/") {
            let mut p = parse_query(query);
            if req.method == "POST" {
                p.extend(parse_query(&String::from_utf8_lossy(&req.body)));
            }
            return Outcome::Answer(self.control(cmd, &p));
        }
        // Global faults first (they stand for the service, not a mailbox).
        {
            let mut c = self.ctl();
            c.stats.requests += 1;
            c.stats.connections.insert(conn);
            if c.global.drop_next > 0 {
                c.global.drop_next -= 1;
                return Outcome::Close;
            }
            let mut fail = c.global.fail_next.pop_front();
            if let Some((n, status, ra)) = c.global.every {
                c.global.every_count += 1;
                if fail.is_none() && n > 0 && c.global.every_count.is_multiple_of(n) {
                    fail = Some((status, ra));
                }
            }
            if let Some((status, ra)) = fail {
                c.stats.throttled += u64::from(status == 429);
                *c.stats.statuses.entry(status).or_default() += 1;
                return Outcome::Answer(error_response(&throttle_error(status, ra), req));
            }
        }
        let resp = match self.authenticate(req) {
            Err(e) => error_response(&e, req),
            Ok(claims) => {
                if path == "/v1.0/$batch" || path == "/v1.0/%24batch" {
                    if req.method != "POST" {
                        error_response(&gerr(405, "BadRequest", "$batch accepts only POST."), req)
                    } else {
                        self.batch(req, &claims, conn)
                    }
                } else {
                    match self.api(
                        &req.method,
                        path,
                        query,
                        req,
                        &req.body,
                        &claims,
                        conn,
                        false,
                    ) {
                        Ok(r) => r,
                        Err(Dropped) => return Outcome::Close,
                    }
                }
            }
        };
        *self.ctl().stats.statuses.entry(resp.status).or_default() += 1;
        Outcome::Answer(resp)
    }

    /// Checks the bearer token with the identity endpoint (audience Graph).
    fn authenticate(&self, req: &Request) -> Result<Claims, GErr> {
        let token = req
            .header("Authorization")
            .and_then(|a| {
                let (scheme, t) = a.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| t.trim())
            })
            .unwrap_or("");
        if token.is_empty() {
            return Err(gerr(
                401,
                "InvalidAuthenticationToken",
                "Access token is empty.",
            ));
        }
        let body = introspect(&self.idp_pool, &self.cfg.idp_url, token).map_err(|e| GErr {
            retry_after: Some(1),
            ..gerr(
                503,
                "ServiceUnavailable",
                &format!("The token service is not reachable: {e}"),
            )
        })?;
        let j = Json::parse(&body).map_err(|e| {
            gerr(
                500,
                "InternalServerError",
                &format!("introspection answer: {e}"),
            )
        })?;
        if j.get("active") != Some(&Json::Bool(true)) {
            return Err(gerr(
                401,
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
            ));
        }
        let aud = j.get("aud").and_then(Json::as_str).unwrap_or("");
        if !aud.contains("graph.microsoft") && !aud.contains("microsoftgraph") {
            return Err(gerr(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
            ));
        }
        let list = |k: &str| -> Vec<String> {
            match j.get(k) {
                Some(Json::Arr(a)) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                Some(Json::Str(s)) => s.split_whitespace().map(str::to_string).collect(),
                _ => Vec::new(),
            }
        };
        Ok(Claims {
            sub: j
                .get("sub")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_ascii_lowercase(),
            app: j.get("idtyp").and_then(Json::as_str) == Some("app"),
            appid: j
                .get("appid")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string(),
            scp: list("scp"),
            roles: list("roles"),
        })
    }

    /// May `claims` read (or write) `mailbox`? Delegated: Mail.Read/ReadWrite for the own
    /// mailbox, the `.Shared` variant plus a Full Access line for another; app-only: the role
    /// and the application access policy.
    fn authorize(&self, claims: &Claims, mailbox: &str, write: bool) -> Result<(), GErr> {
        let has = |set: &[String], names: &[&str]| {
            set.iter()
                .any(|s| names.iter().any(|n| n.eq_ignore_ascii_case(s)))
        };
        if claims.app {
            let ok = if write {
                has(&claims.roles, &["Mail.ReadWrite"])
            } else {
                has(
                    &claims.roles,
                    &["Mail.ReadWrite", "Mail.Read", "Mail.ReadBasic.All"],
                )
            };
            if !ok {
                return Err(gerr(403, "ErrorAccessDenied", ACCESS_DENIED));
            }
            if !self.policy_allows(&claims.appid, mailbox) {
                return Err(gerr(403, "ErrorAccessDenied", RAOP));
            }
            return Ok(());
        }
        let own = claims.sub == mailbox;
        let names: &[&str] = match (own, write) {
            (true, true) => &["Mail.ReadWrite", "Mail.ReadWrite.Shared"],
            (true, false) => &[
                "Mail.ReadWrite",
                "Mail.ReadWrite.Shared",
                "Mail.Read",
                "Mail.Read.Shared",
            ],
            (false, true) => &["Mail.ReadWrite.Shared"],
            (false, false) => &["Mail.ReadWrite.Shared", "Mail.Read.Shared"],
        };
        if !has(&claims.scp, names) {
            return Err(gerr(403, "ErrorAccessDenied", ACCESS_DENIED));
        }
        if !own && !self.has_full_access(mailbox, &claims.sub) {
            return Err(gerr(403, "ErrorAccessDenied", ACCESS_DENIED));
        }
        Ok(())
    }

    /// A `<mailbox>/<principal>` line in the harness's delegations file (Full Access).
    fn has_full_access(&self, mailbox: &str, principal: &str) -> bool {
        let want = format!("{mailbox}/{principal}");
        std::fs::read_to_string(self.cfg.dir.join("delegations"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(':').next())
            .any(|l| l.trim().eq_ignore_ascii_case(&want))
    }

    /// Application access policies in `graph-access-policy`: lines `<appid> RestrictAccess
    /// <mailbox>` (the app may open only the listed mailboxes) and `<appid> DenyAccess
    /// <mailbox>`. An app without lines may open every mailbox, as at Exchange.
    fn policy_allows(&self, appid: &str, mailbox: &str) -> bool {
        let text =
            std::fs::read_to_string(self.cfg.dir.join("graph-access-policy")).unwrap_or_default();
        let mut restricted = false;
        let mut listed = false;
        for line in text.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            let [app, access, mb] = w.as_slice() else {
                continue;
            };
            if !app.eq_ignore_ascii_case(appid) {
                continue;
            }
            let hit = mb.eq_ignore_ascii_case(mailbox);
            if access.eq_ignore_ascii_case("DenyAccess") && hit {
                return false;
            }
            if access.eq_ignore_ascii_case("RestrictAccess") {
                restricted = true;
                listed |= hit;
            }
        }
        !restricted || listed
    }

    /// Routes and runs one API request (a top-level one, or one of a batch).
    #[allow(clippy::too_many_arguments)]
    fn api(
        &self,
        method: &str,
        path: &str,
        query: &str,
        req: &Request,
        body: &[u8],
        claims: &Claims,
        conn: u64,
        in_batch: bool,
    ) -> Result<Response, Dropped> {
        let base = format!("http://{}", req.header("Host").unwrap_or("127.0.0.1"));
        let segs: Vec<String> = path
            .trim_start_matches('/')
            .split('/')
            .map(|s| percent_decode(s, false))
            .collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let (mailbox, rest): (String, &[&str]) = match segs.as_slice() {
            ["v1.0", "users", u, rest @ ..] => (u.to_ascii_lowercase(), rest),
            ["v1.0", "me", rest @ ..] => {
                if claims.app {
                    return Ok(error_response(
                        &gerr(
                            400,
                            "BadRequest",
                            "/me request is only valid with delegated authentication flow.",
                        ),
                        req,
                    ));
                }
                (claims.sub.clone(), rest)
            }
            ["v1.0", ..] => {
                return Ok(error_response(
                    &gerr(
                        400,
                        "BadRequest",
                        &format!(
                            "Resource not found for the segment '{}'.",
                            segs.get(1).unwrap_or(&"")
                        ),
                    ),
                    req,
                ))
            }
            _ => {
                return Ok(error_response(
                    &gerr(400, "BadRequest", "Invalid version."),
                    req,
                ))
            }
        };
        let op = match (method, rest) {
            ("GET", ["mailFolders"]) => Op::Folders(None),
            ("GET", ["mailFolders", f]) => Op::Folder(f.to_string()),
            ("GET", ["mailFolders", f, "childFolders"]) => Op::Folders(Some(f.to_string())),
            ("GET", ["mailFolders", f, "messages", "delta"]) => Op::Delta(f.to_string()),
            ("GET", ["messages", m] | ["mailFolders", _, "messages", m]) => {
                Op::Message(m.to_string())
            }
            ("GET", ["messages", m, "$value"] | ["mailFolders", _, "messages", m, "$value"]) => {
                Op::Value(m.to_string())
            }
            ("PATCH", ["messages", m] | ["mailFolders", _, "messages", m]) => {
                Op::Patch(m.to_string())
            }
            ("POST", ["messages", m, "move"] | ["mailFolders", _, "messages", m, "move"]) => {
                Op::Move(m.to_string())
            }
            ("DELETE", ["messages", m] | ["mailFolders", _, "messages", m]) => {
                Op::Delete(m.to_string())
            }
            _ => {
                return Ok(error_response(
                    &gerr(
                        400,
                        "BadRequest",
                        &format!(
                        "Unsupported request: {method} {path} (see pma-test-graph's endpoint list)"
                    ),
                    ),
                    req,
                ))
            }
        };
        // Mailbox-scoped counters and faults.
        let delay;
        let mut truncate = false;
        {
            let mut c = self.ctl();
            let s = c.mailbox_stats.entry(mailbox.clone()).or_default();
            s.requests += 1;
            *s.ops.entry(op.name()).or_default() += 1;
            s.connections.insert(conn);
            if in_batch {
                s.batch_requests += 1;
            }
            *c.stats.ops.entry(op.name()).or_default() += 1;
            let f = c.mailboxes.entry(mailbox.clone()).or_default();
            if f.drop_next > 0 && !in_batch {
                f.drop_next -= 1;
                return Err(Dropped);
            }
            let mut fail = f.fail_next.pop_front();
            if let Some((n, status, ra)) = f.every {
                f.every_count += 1;
                if fail.is_none() && n > 0 && f.every_count.is_multiple_of(n) {
                    fail = Some((status, ra));
                }
            }
            if !in_batch && f.truncate_next > 0 {
                f.truncate_next -= 1;
                truncate = true;
            }
            if let Some((status, ra)) = fail {
                let s = c.mailbox_stats.entry(mailbox.clone()).or_default();
                s.throttled += u64::from(status == 429);
                *s.statuses.entry(status).or_default() += 1;
                c.stats.throttled += u64::from(status == 429);
                return Ok(error_response(&throttle_error(status, ra), req));
            }
            delay = f.delay_ms.or(c.global.delay_ms).unwrap_or(0);
        }
        let result = self.guarded(&mailbox, claims, &op, || {
            if delay > 0 {
                std::thread::sleep(Duration::from_millis(delay));
            }
            self.run_op(&op, &mailbox, query, req, body, &base)
        });
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => error_response(&e, req),
        };
        resp.truncate = truncate;
        {
            let mut c = self.ctl();
            if !in_batch {
                let asked = u64::from(crate::http::accepts_gzip(req));
                let sent = u64::from(crate::http::will_gzip(req, &resp));
                c.stats.gzip_requests += asked;
                c.stats.gzip_answers += sent;
                let s = c.mailbox_stats.entry(mailbox.clone()).or_default();
                s.gzip_requests += asked;
                s.gzip_answers += sent;
            }
            let s = c.mailbox_stats.entry(mailbox.clone()).or_default();
            *s.statuses.entry(resp.status).or_default() += 1;
            if resp.status == 429 {
                s.throttled += 1;
            }
        }
        Ok(resp)
    }

    /// Mailbox checks (user, injected errors, access, concurrency), then `f`.
    fn guarded(
        &self,
        mailbox: &str,
        claims: &Claims,
        op: &Op,
        f: impl FnOnce() -> Result<Response, GErr>,
    ) -> Result<Response, GErr> {
        let (local, domain) = mailbox.split_once('@').unwrap_or((mailbox, ""));
        if domain != "contoso.test" || local.is_empty() {
            return Err(gerr(
                404,
                "ErrorInvalidUser",
                &format!("The requested user '{mailbox}' is invalid."),
            ));
        }
        if local.starts_with("onprem-") {
            return Err(named_error("MailboxNotEnabledForRESTAPI").expect("known"));
        }
        {
            let mut c = self.ctl();
            if let Some(f) = c.mailboxes.get_mut(mailbox) {
                if let Some((code, count)) = f.error.clone() {
                    match count {
                        Some(1) => f.error = None,
                        Some(n) => f.error = Some((code.clone(), Some(n - 1))),
                        None => {}
                    }
                    if let Some(e) = named_error(&code) {
                        return Err(e);
                    }
                }
            }
        }
        self.authorize(claims, mailbox, op.writes())?;
        let key = (claims.appid.clone(), mailbox.to_string());
        {
            let mut c = self.ctl();
            let now = *c.inflight.get(&key).unwrap_or(&0) + 1;
            let mb_now = *c.mailbox_inflight.get(mailbox).unwrap_or(&0) + 1;
            let s = c.mailbox_stats.entry(mailbox.to_string()).or_default();
            s.max_concurrent = s.max_concurrent.max(mb_now);
            if c.max_concurrency > 0 && now > c.max_concurrency {
                c.mailbox_stats
                    .entry(mailbox.to_string())
                    .or_default()
                    .concurrency_rejections += 1;
                return Err(throttle_error(429, 1));
            }
            c.inflight.insert(key.clone(), now);
            c.mailbox_inflight.insert(mailbox.to_string(), mb_now);
        }
        let r = f();
        {
            let mut c = self.ctl();
            if let Some(n) = c.inflight.get_mut(&key) {
                *n = n.saturating_sub(1);
            }
            if let Some(n) = c.mailbox_inflight.get_mut(mailbox) {
                *n = n.saturating_sub(1);
            }
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn run_op(
        &self,
        op: &Op,
        mailbox: &str,
        query: &str,
        req: &Request,
        body: &[u8],
        base: &str,
    ) -> Result<Response, GErr> {
        let q = parse_query(query);
        let qget = |k: &str| {
            q.iter()
                .find(|(n, _)| {
                    n.eq_ignore_ascii_case(k) || n.eq_ignore_ascii_case(&format!("${k}"))
                })
                .map(|(_, v)| v.as_str())
        };
        match op {
            Op::Folders(parent) => self.with_imap(mailbox, |imap| {
                let parent = match parent {
                    None => String::new(),
                    Some(p) => resolve_folder(imap, p)?,
                };
                let all = imap.list().map_err(imap_err)?;
                let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
                let mut children: Vec<&str> = names
                    .iter()
                    .copied()
                    .filter(|n| !n.is_empty() && parent_of(n) == parent && *n != parent)
                    .collect();
                children.sort_by_key(|n| {
                    (
                        WELL_KNOWN.iter().position(|w| w.1 == *n).unwrap_or(99),
                        n.to_string(),
                    )
                });
                if let Some(filter) = qget("filter") {
                    let want = parse_display_filter(filter)?;
                    children.retain(|n| display_name(n).eq_ignore_ascii_case(&want));
                }
                let top: usize = qget("top")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(10)
                    .clamp(1, 1000);
                let skip: usize = qget("skip").and_then(|t| t.parse().ok()).unwrap_or(0);
                let page: Vec<&str> = children.iter().skip(skip).take(top).copied().collect();
                let mut items = Vec::new();
                for n in &page {
                    items.push(folder_json(imap, n, &names)?);
                }
                let mut out = format!(
                    "{{\"@odata.context\":{},\"value\":[{}]",
                    json_str(&format!(
                        "{base}/v1.0/$metadata#users('{mailbox}')/mailFolders"
                    )),
                    items.join(",")
                );
                if skip + top < children.len() {
                    let mut next_q: Vec<String> = q
                        .iter()
                        .filter(|(k, _)| !k.eq_ignore_ascii_case("$skip"))
                        .map(|(k, v)| format!("{k}={}", url_encode(v)))
                        .collect();
                    next_q.push(format!("$skip={}", skip + top));
                    let path = req.target.split('?').next().unwrap_or("");
                    out.push_str(&format!(
                        ",\"@odata.nextLink\":{}",
                        json_str(&format!("{base}{path}?{}", next_q.join("&")))
                    ));
                }
                out.push('}');
                Ok(Response::json(200, out))
            }),
            Op::Folder(f) => self.with_imap(mailbox, |imap| {
                let name = resolve_folder(imap, f)?;
                let all = imap.list().map_err(imap_err)?;
                let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
                let body = folder_json(imap, &name, &names)?;
                Ok(Response::json(
                    200,
                    format!(
                        "{{\"@odata.context\":{},{}",
                        json_str(&format!(
                            "{base}/v1.0/$metadata#users('{mailbox}')/mailFolders/$entity"
                        )),
                        &body[1..]
                    ),
                ))
            }),
            Op::Delta(f) => self.delta(mailbox, f, &q, req, base),
            Op::Message(id) => {
                let select = match message::parse_select(qget("select").unwrap_or("")) {
                    Ok(s) => s,
                    Err(e) => return Err(select_error(e)),
                };
                self.with_imap(mailbox, |imap| {
                    let m = locate(imap, id)?;
                    let msg = fetch_one(imap, m.uid, wants_preview(&select))?;
                    Ok(Response::json(
                        200,
                        message::to_json(&m.folder, m.uidvalidity, &msg, &select),
                    ))
                })
            }
            Op::Value(id) => self.with_imap(mailbox, |imap| {
                // A UID that is gone fetches nothing: no separate existence check needed.
                let m = select_folder_of(imap, id)?;
                let rows = imap
                    .uid_fetch(&m.uid.to_string(), "(UID BODY.PEEK[])")
                    .map_err(imap_err)?;
                let raw = rows
                    .into_iter()
                    .flatten()
                    .find_map(|(k, v)| match (k.starts_with("BODY["), v) {
                        (true, Item::Str(b)) => Some(b),
                        _ => None,
                    })
                    .ok_or_else(|| gerr(404, "ErrorItemNotFound", NOT_FOUND))?;
                Ok(Response {
                    status: 200,
                    content_type: "text/plain",
                    headers: Vec::new(),
                    body: raw,
                    compressible: true,
                    chunked: true,
                    truncate: false,
                })
            }),
            Op::Patch(id) => {
                let j = parse_body(body)?;
                let Json::Obj(fields) = &j else {
                    return Err(gerr(
                        400,
                        "ErrorInvalidRequest",
                        "The request body must be a JSON object.",
                    ));
                };
                let mut add = Vec::new();
                let mut remove = Vec::new();
                for (k, v) in fields {
                    match (k.as_str(), v) {
                        ("isRead", Json::Bool(b)) => if *b { add.push("\\Seen") } else { remove.push("\\Seen") },
                        ("flag", f) => match f.get("flagStatus").and_then(Json::as_str) {
                            Some("flagged") => add.push("\\Flagged"),
                            Some("notFlagged" | "complete") => remove.push("\\Flagged"),
                            _ => return Err(gerr(400, "ErrorInvalidRequest", "flag.flagStatus must be flagged, notFlagged or complete.")),
                        },
                        ("isRead", _) => return Err(gerr(400, "ErrorInvalidRequest", "Cannot convert the literal to the expected type 'Edm.Boolean'.")),
                        (other, _) => return Err(gerr(400, "ErrorInvalidProperty", &format!("The property '{other}' cannot be updated through pma-test-graph (it updates isRead and flag)."))),
                    }
                }
                self.with_imap(mailbox, |imap| {
                    let m = locate(imap, id)?;
                    for (sign, list) in [("+", &add), ("-", &remove)] {
                        if !list.is_empty() {
                            imap.run(&format!(
                                "UID STORE {} {sign}FLAGS.SILENT ({})",
                                m.uid,
                                list.join(" ")
                            ))
                            .map_err(imap_err)?;
                        }
                    }
                    let msg = fetch_one(imap, m.uid, true)?;
                    Ok(Response::json(
                        200,
                        message::to_json(&m.folder, m.uidvalidity, &msg, &[]),
                    ))
                })
            }
            Op::Move(id) => {
                let j = parse_body(body)?;
                let Some(dest) = j.get("destinationId").and_then(Json::as_str) else {
                    return Err(gerr(
                        400,
                        "ErrorInvalidRequest",
                        "The request body must name destinationId.",
                    ));
                };
                self.with_imap(mailbox, |imap| {
                    let dest = resolve_folder(imap, dest)?;
                    if dest.is_empty() {
                        return Err(gerr(
                            400,
                            "ErrorInvalidRequest",
                            "Messages cannot be moved to the root folder.",
                        ));
                    }
                    let m = locate(imap, id)?;
                    let r = imap
                        .run(&format!("UID MOVE {} {}", m.uid, quote(&dest)))
                        .map_err(imap_err)?;
                    let mut texts: Vec<String> = r
                        .untagged
                        .iter()
                        .map(|u| {
                            u.iter()
                                .filter_map(Item::text)
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .collect();
                    texts.push(r.text.clone());
                    let copyuid = texts.iter().find_map(|t| {
                        let i = t.find("[COPYUID ")?;
                        let mut w = t[i + 9..].split([' ', ']']);
                        let v: u32 = w.next()?.parse().ok()?;
                        let _src = w.next()?;
                        let dst: u32 = w.next()?.parse().ok()?;
                        Some((v, dst))
                    });
                    let Some((validity, uid)) = copyuid else {
                        return Err(gerr(
                            500,
                            "ErrorInternalServerError",
                            "The store did not report the moved message's new UID (COPYUID).",
                        ));
                    };
                    imap.select(&dest).map_err(imap_err)?;
                    let msg = fetch_one(imap, uid, true)?;
                    Ok(Response::json(
                        201,
                        message::to_json(&dest, validity, &msg, &[]),
                    ))
                })
            }
            Op::Delete(id) => self.with_imap(mailbox, |imap| {
                let m = locate(imap, id)?;
                imap.run(&format!("UID STORE {} +FLAGS.SILENT (\\Deleted)", m.uid))
                    .map_err(imap_err)?;
                imap.run(&format!("UID EXPUNGE {}", m.uid))
                    .map_err(imap_err)?;
                Ok(Response::empty(204))
            }),
        }
    }

    /// `GET …/mailFolders/{id}/messages/delta`: a new round, a page of a round
    /// (`$skiptoken`), or the changes since a delta link (`$deltatoken`).
    fn delta(
        &self,
        mailbox: &str,
        folder_ref: &str,
        q: &[(String, String)],
        req: &Request,
        base: &str,
    ) -> Result<Response, GErr> {
        let get = |k: &str| {
            q.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let token = match (get("$skiptoken"), get("$deltatoken")) {
            (Some(t), _) | (_, Some(t)) => Some(SyncToken::decode(t).ok_or_else(|| {
                gerr(
                    400,
                    "ErrorInvalidUrlQuery",
                    "The delta or skip token is malformed.",
                )
            })?),
            _ => None,
        };
        if let Some(t) = &token {
            let c = self.ctl();
            let limit = c
                .expired_before
                .max(*c.mailbox_expired_before.get(mailbox).unwrap_or(&0));
            if t.issued_ms < limit {
                return Err(sync_state_not_found());
            }
        }
        if let Some(t) = &token {
            if t.mailbox != mailbox {
                return Err(gerr(
                    400,
                    "ErrorInvalidUrlQuery",
                    "The token belongs to another mailbox.",
                ));
            }
        }
        let filter_text = match &token {
            Some(t) => t.filter.clone(),
            None => get("$filter").unwrap_or("").to_string(),
        };
        let since = parse_received_filter(&filter_text)?;
        let select_text = match &token {
            Some(t) => t.select.clone(),
            None => get("$select").unwrap_or("").to_string(),
        };
        let select = message::parse_select(&select_text).map_err(select_error)?;
        let page_size = {
            let c = self.ctl();
            max_page_size(req).unwrap_or(10).clamp(1, c.max_page)
        };
        self.with_imap(mailbox, |imap| {
            let folder = resolve_folder(imap, folder_ref)?;
            if folder.is_empty() {
                return Err(gerr(400, "ErrorInvalidRequest", "Delta is per folder; the root has no messages."));
            }
            if let Some(t) = &token {
                if t.folder != folder {
                    return Err(gerr(400, "ErrorInvalidUrlQuery", "The token belongs to another folder."));
                }
            }
            let st = imap.select(&folder).map_err(imap_err)?;
            let mut t = match token.clone() {
                Some(t) if t.uidvalidity != st.uidvalidity => return Err(sync_state_not_found()),
                Some(t) if t.page.is_some() => t,
                Some(t) => {
                    // A delta link: a new round from the client's state.
                    let uids = imap.all_uids().map_err(imap_err)?;
                    SyncToken {
                        page: Some(Page { snap_modseq: st.highestmodseq, snap_uids: uids, phase: 0, cursor: 0 }),
                        ..t
                    }
                }
                None => {
                    let uids = imap.all_uids().map_err(imap_err)?;
                    SyncToken {
                        issued_ms: 0,
                        mailbox: mailbox.to_string(),
                        folder: folder.clone(),
                        filter: filter_text.clone(),
                        select: select_text.clone(),
                        uidvalidity: st.uidvalidity,
                        base_modseq: 0,
                        base_uids: Vec::new(),
                        page: Some(Page { snap_modseq: st.highestmodseq, snap_uids: uids, phase: 0, cursor: 0 }),
                    }
                }
            };
            let mut page = t.page.take().unwrap_or_default();
            let mut rows: Vec<String> = Vec::new();
            let mut more = false;
            let empty = {
                let mut c = self.ctl();
                let f = c.mailboxes.entry(mailbox.to_string()).or_default();
                let e = f.empty_pages > 0;
                f.empty_pages = f.empty_pages.saturating_sub(1);
                e
            };
            if empty {
                // Graph may answer a page without rows that still links to more.
                more = true;
            } else if page.phase == 0 {
                let snap: HashSet<u32> = page.snap_uids.iter().copied().collect();
                let removed: Vec<u32> = t
                    .base_uids
                    .iter()
                    .copied()
                    .filter(|u| *u > page.cursor && !snap.contains(u))
                    .collect();
                for u in removed.iter().take(page_size) {
                    let id = message_id(&MessageRef { folder: folder.clone(), uidvalidity: st.uidvalidity, uid: *u });
                    rows.push(format!(
                        "{{\"@odata.type\":\"#microsoft.graph.message\",\"id\":{},\"@removed\":{{\"reason\":\"deleted\"}}}}",
                        json_str(&id)
                    ));
                    page.cursor = *u;
                }
                if removed.len() > page_size {
                    more = true;
                } else {
                    page.phase = 1;
                    page.cursor = 0;
                }
            }
            if page.phase == 1 && !more && !empty {
                let room = page_size - rows.len();
                let remaining: Vec<u32> = page.snap_uids.iter().copied().filter(|u| *u > page.cursor).collect();
                let changed: Vec<u32> = if t.base_modseq == 0 || remaining.is_empty() {
                    remaining
                } else {
                    let base: HashSet<u32> = t.base_uids.iter().copied().collect();
                    let mut ch: Vec<u32> = imap
                        .uid_fetch(&compact_set(&remaining), &format!("(UID) (CHANGEDSINCE {})", t.base_modseq))
                        .map_err(imap_err)?
                        .iter()
                        .filter_map(|r| r.iter().find(|(k, _)| k == "UID").and_then(|(_, v)| v.text()?.parse().ok()))
                        .collect();
                    ch.extend(remaining.iter().copied().filter(|u| !base.contains(u)));
                    ch.sort_unstable();
                    ch.dedup();
                    ch
                };
                let take: Vec<u32> = changed.iter().copied().take(room).collect();
                more = changed.len() > take.len();
                if room > 0 && !take.is_empty() {
                    let msgs = fetch_many(imap, &take, wants_preview(&select))?;
                    for m in msgs.iter().filter(|m| since.is_none_or(|(t, strict)| {
                        m.internal_date > t || (!strict && m.internal_date == t)
                    })) {
                        rows.push(message::to_json(&folder, st.uidvalidity, m, &select));
                    }
                    page.cursor = *take.last().unwrap_or(&page.cursor);
                }
            }
            let path = req.target.split('?').next().unwrap_or("");
            let now = unix_millis();
            let (link_name, link) = if more {
                let next = SyncToken { issued_ms: now, page: Some(page), ..t };
                ("@odata.nextLink", format!("{base}{path}?$skiptoken={}", next.encode()))
            } else {
                let done = SyncToken {
                    issued_ms: now,
                    base_modseq: page.snap_modseq,
                    base_uids: page.snap_uids,
                    page: None,
                    ..t
                };
                ("@odata.deltaLink", format!("{base}{path}?$deltatoken={}", done.encode()))
            };
            let body = format!(
                "{{\"@odata.context\":{},\"value\":[{}],{}:{}}}",
                json_str(&format!("{base}/v1.0/$metadata#Collection(message)")),
                rows.join(","),
                json_str(link_name),
                json_str(&link)
            );
            let mut r = Response::json(200, body);
            r.chunked = true;
            r.headers.push(("Preference-Applied".into(), format!("odata.maxpagesize={page_size}")));
            Ok(r)
        })
    }

    /// `POST /v1.0/$batch`: up to 20 requests, each answered with its own status.
    fn batch(&self, req: &Request, claims: &Claims, conn: u64) -> Response {
        let j = match parse_body(&req.body) {
            Ok(j) => j,
            Err(e) => return error_response(&e, req),
        };
        let Some(Json::Arr(requests)) = j.get("requests") else {
            return error_response(
                &gerr(400, "BadRequest", "Invalid batch payload format."),
                req,
            );
        };
        if requests.len() > 20 {
            return error_response(
                &gerr(
                    400,
                    "BadRequest",
                    "Number of requests in the batch exceeds the limit of 20.",
                ),
                req,
            );
        }
        {
            let mut c = self.ctl();
            c.stats.batches += 1;
            c.stats.batch_requests += requests.len() as u64;
        }
        let mut ids = HashSet::new();
        let mut failed: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        for r in requests {
            let id = r.get("id").and_then(Json::as_str).unwrap_or("").to_string();
            let method = r
                .get("method")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_ascii_uppercase();
            let url = r.get("url").and_then(Json::as_str).unwrap_or("");
            if id.is_empty() || method.is_empty() || url.is_empty() || !ids.insert(id.clone()) {
                return error_response(
                    &gerr(
                        400,
                        "BadRequest",
                        "Every batch request needs a unique id, a method and a url.",
                    ),
                    req,
                );
            }
            let deps: Vec<String> = match r.get("dependsOn") {
                Some(Json::Arr(a)) => a
                    .iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            let resp = if deps.iter().any(|d| failed.contains(d)) {
                error_response(
                    &gerr(
                        424,
                        "FailedDependency",
                        "A request this one depends on failed.",
                    ),
                    req,
                )
            } else {
                let url = url
                    .strip_prefix("https://graph.microsoft.com")
                    .unwrap_or(url);
                let url = url.trim_start_matches('/');
                let url = url.strip_prefix("v1.0/").unwrap_or(url);
                let (p, q) = url.split_once('?').unwrap_or((url, ""));
                let path = format!("/v1.0/{p}");
                let body = r
                    .get("body")
                    .map(|b| b.to_text().into_bytes())
                    .unwrap_or_default();
                let mut sub = req.clone();
                sub.target = format!("{path}?{q}");
                sub.headers
                    .retain(|(n, _)| !n.eq_ignore_ascii_case("Prefer"));
                if let Some(Json::Obj(h)) = r.get("headers") {
                    for (k, v) in h {
                        if let Some(v) = v.as_str() {
                            sub.headers.push((k.clone(), v.to_string()));
                        }
                    }
                }
                match self.api(&method, &path, q, &sub, &body, claims, conn, true) {
                    Ok(r) => r,
                    Err(Dropped) => error_response(&throttle_error(503, 1), req),
                }
            };
            if resp.status >= 400 {
                failed.insert(id.clone());
            }
            let mut headers: Vec<String> = Vec::new();
            if !resp.content_type.is_empty() {
                headers.push(format!("\"Content-Type\":{}", json_str(resp.content_type)));
            }
            for (k, v) in &resp.headers {
                if k.eq_ignore_ascii_case("Retry-After") || k.eq_ignore_ascii_case("Location") {
                    headers.push(format!("{}:{}", json_str(k), json_str(v)));
                }
            }
            let body = if resp.body.is_empty() {
                String::new()
            } else if resp.content_type.starts_with("application/json") {
                format!(",\"body\":{}", String::from_utf8_lossy(&resp.body))
            } else {
                format!(
                    ",\"body\":{}",
                    json_str(
                        &crate::util::b64url_pad(&resp.body)
                            .replace('-', "+")
                            .replace('_', "/")
                    )
                )
            };
            out.push(format!(
                "{{\"id\":{},\"status\":{},\"headers\":{{{}}}{body}}}",
                json_str(&id),
                resp.status,
                headers.join(",")
            ));
        }
        let mut r = Response::json(200, format!("{{\"responses\":[{}]}}", out.join(",")));
        r.content_type = "application/json; charset=utf-8";
        r
    }

    fn control(&self, cmd: &str, p: &[(String, String)]) -> Response {
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let mailbox = get("mailbox").map(|m| m.trim().to_ascii_lowercase());
        let bad =
            |m: &str| Response::control(400, format!("{{\"ok\":false,\"error\":{}}}", json_str(m)));
        let ok = || Response::control(200, "{\"ok\":true}".into());
        let num = |k: &str| get(k).map(|v| v.parse::<u64>());
        let mut c = self.ctl();
        match cmd {
            "reset" => {
                match &mailbox {
                    Some(m) => {
                        c.mailboxes.remove(m);
                        c.mailbox_stats.remove(m);
                        c.mailbox_expired_before.remove(m);
                    }
                    None => {
                        let total = c.connections_total;
                        *c = Control::new();
                        c.connections_total = total;
                    }
                }
                ok()
            }
            "fail_next" => {
                let status = match num("status").unwrap_or(Ok(429)) {
                    Ok(s @ (429 | 500 | 502 | 503 | 504)) => s as u16,
                    _ => return bad("fail_next status= must be 429, 500, 502, 503 or 504"),
                };
                let Ok(count) = num("count").unwrap_or(Ok(1)) else {
                    return bad("count must be a number");
                };
                let Ok(ra) = num("retry_after").unwrap_or(Ok(1)) else {
                    return bad("retry_after must be a number of seconds");
                };
                let f = faults(&mut c, mailbox);
                f.fail_next
                    .extend(std::iter::repeat_n((status, ra), count as usize));
                ok()
            }
            "fail_every" => {
                let Ok(n) = num("n").unwrap_or(Ok(0)) else {
                    return bad("n must be a number (0 stops)");
                };
                let status = match num("status").unwrap_or(Ok(429)) {
                    Ok(s @ (429 | 500 | 502 | 503 | 504)) => s as u16,
                    _ => return bad("fail_every status= must be 429, 500, 502, 503 or 504"),
                };
                let Ok(ra) = num("retry_after").unwrap_or(Ok(1)) else {
                    return bad("retry_after must be a number of seconds");
                };
                let f = faults(&mut c, mailbox);
                f.every = (n > 0).then_some((n as u32, status, ra));
                f.every_count = 0;
                ok()
            }
            "truncate_next" => {
                let Some(m) = mailbox else {
                    return bad("truncate_next needs mailbox=");
                };
                let Ok(count) = num("count").unwrap_or(Ok(1)) else {
                    return bad("count must be a number");
                };
                c.mailboxes.entry(m).or_default().truncate_next += count as u32;
                ok()
            }
            "empty_pages" => {
                let Some(m) = mailbox else {
                    return bad("empty_pages needs mailbox=");
                };
                let Ok(count) = num("count").unwrap_or(Ok(1)) else {
                    return bad("count must be a number");
                };
                c.mailboxes.entry(m).or_default().empty_pages += count as u32;
                ok()
            }
            "drop_next" => {
                let Ok(count) = num("count").unwrap_or(Ok(1)) else {
                    return bad("count must be a number");
                };
                faults(&mut c, mailbox).drop_next += count as u32;
                ok()
            }
            "error" => {
                let Some(m) = mailbox else {
                    return bad("error needs mailbox=");
                };
                let code = get("code").unwrap_or("");
                let count = match num("count") {
                    None => None,
                    Some(Ok(n)) => Some(n as u32),
                    Some(Err(_)) => return bad("count must be a number"),
                };
                let f = c.mailboxes.entry(m).or_default();
                if code == "none" || code.is_empty() {
                    f.error = None;
                } else if named_error(code).is_none() {
                    return bad(&format!("unknown error code {code}; known: ErrorAccessDenied, ErrorAccessDeniedPolicy, MailboxNotEnabledForRESTAPI, ErrorItemNotFound, InvalidAuthenticationToken, Authorization_RequestDenied, ErrorInvalidUser, ErrorMailboxMoveInProgress"));
                } else {
                    f.error = Some((code.to_string(), count));
                }
                ok()
            }
            "expire_delta" => {
                // Tokens issued up to now become invalid; wait a millisecond so a token issued
                // right after this call is newer.
                let now = unix_millis() + 1;
                match mailbox {
                    Some(m) => {
                        c.mailbox_expired_before.insert(m, now);
                    }
                    None => c.expired_before = now,
                }
                drop(c);
                std::thread::sleep(Duration::from_millis(2));
                ok()
            }
            "set" => {
                if let Some(v) = num("keepalive_ms") {
                    let Ok(v) = v else {
                        return bad("keepalive_ms must be a number");
                    };
                    faults(&mut c, mailbox.clone()).keepalive =
                        Some(Duration::from_millis(v.max(1)));
                }
                if let Some(v) = num("max_requests") {
                    let Ok(v) = v else {
                        return bad("max_requests must be a number");
                    };
                    faults(&mut c, mailbox.clone()).max_requests = Some(v as u32);
                }
                if let Some(v) = num("max_concurrency") {
                    let Ok(v) = v else {
                        return bad("max_concurrency must be a number");
                    };
                    c.max_concurrency = v as u32;
                }
                if let Some(v) = num("max_page") {
                    let Ok(v) = v else {
                        return bad("max_page must be a number");
                    };
                    c.max_page = (v as usize).max(1);
                }
                if let Some(v) = num("delay_ms") {
                    let Ok(v) = v else {
                        return bad("delay_ms must be a number");
                    };
                    faults(&mut c, mailbox).delay_ms = Some(v);
                }
                ok()
            }
            "access_policy" => {
                let (Some(app), Some(access)) = (get("client_id"), get("access")) else {
                    return bad("access_policy needs client_id= and access=restrict|deny|clear (and mailbox=)");
                };
                drop(c);
                match self.edit_policy(app, access, mailbox.as_deref()) {
                    Ok(()) => ok(),
                    Err(e) => bad(&e),
                }
            }
            "stats" => {
                let body = match &mailbox {
                    Some(m) => {
                        let now = *c.mailbox_inflight.get(m).unwrap_or(&0);
                        c.mailbox_stats
                            .get(m)
                            .cloned()
                            .unwrap_or_default()
                            .json(now)
                    }
                    None => {
                        let now: u32 = c.mailbox_inflight.values().sum();
                        let s = c.stats.json(now);
                        format!(
                            "{},\"connections_total\":{}}}",
                            &s[..s.len() - 1],
                            c.connections_total
                        )
                    }
                };
                Response::control(200, body)
            }
            _ => Response::control(
                404,
                format!(
                    "{{\"ok\":false,\"error\":{}}}",
                    json_str(&format!("unknown control command {cmd}"))
                ),
            ),
        }
    }

    fn edit_policy(&self, app: &str, access: &str, mailbox: Option<&str>) -> Result<(), String> {
        let path = self.cfg.dir.join("graph-access-policy");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        match access {
            "clear" => lines.retain(|l| {
                !l.split_whitespace()
                    .next()
                    .is_some_and(|a| a.eq_ignore_ascii_case(app))
            }),
            "restrict" | "deny" => {
                let Some(m) = mailbox else {
                    return Err("access_policy restrict|deny needs mailbox=".into());
                };
                let word = if access == "restrict" {
                    "RestrictAccess"
                } else {
                    "DenyAccess"
                };
                lines.push(format!("{app} {word} {m}"));
            }
            _ => return Err("access= must be restrict, deny or clear".into()),
        }
        let mut body = lines.join("\n");
        body.push('\n');
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, body).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("renaming to {}: {e}", path.display()))
    }
}

/// A request that the connection should drop without answering.
#[derive(Debug)]
pub struct Dropped;

fn faults(c: &mut Control, mailbox: Option<String>) -> &mut Faults {
    match mailbox {
        Some(m) => c.mailboxes.entry(m).or_default(),
        None => &mut c.global,
    }
}

fn sync_state_not_found() -> GErr {
    gerr(
        410,
        "SyncStateNotFound",
        "The sync state for the request has expired or is invalid. Restart the synchronization without a delta token.",
    )
}

fn select_error((name, unserved): (String, bool)) -> GErr {
    if unserved {
        gerr(400, "ErrorInvalidProperty", &format!("pma-test-graph does not serve the property '{name}'; read the MIME source with $value."))
    } else {
        gerr(
            400,
            "RequestBroker--ParseUri",
            &format!("Could not find a property named '{name}' on type 'microsoft.graph.message'."),
        )
    }
}

fn parse_body(body: &[u8]) -> Result<Json, GErr> {
    let text = std::str::from_utf8(body)
        .map_err(|_| gerr(400, "BadRequest", "The request body is not UTF-8."))?;
    Json::parse(text).map_err(|e| {
        gerr(
            400,
            "BadRequest",
            &format!("Invalid JSON in the request body: {e}"),
        )
    })
}

/// The only `$filter` Graph allows on message delta: `receivedDateTime ge|gt <DateTimeOffset>`
/// → (Unix time, strictly greater).
fn parse_received_filter(f: &str) -> Result<Option<(i64, bool)>, GErr> {
    if f.trim().is_empty() {
        return Ok(None);
    }
    let invalid = || {
        gerr(
            400,
            "ErrorInvalidUrlQueryFilter",
            "The query filter contains one or more invalid nodes.",
        )
    };
    let w: Vec<&str> = f.split_whitespace().collect();
    let [field, op, value] = w.as_slice() else {
        return Err(invalid());
    };
    if !field.eq_ignore_ascii_case("receivedDateTime") {
        return Err(invalid());
    }
    let strict = match op.to_ascii_lowercase().as_str() {
        "ge" => false,
        "gt" => true,
        _ => return Err(invalid()),
    };
    let t = crate::util::parse_iso(value.trim_matches('\'')).ok_or_else(invalid)?;
    Ok(Some((t, strict)))
}

/// `displayName eq 'Support'` → `Support`.
fn parse_display_filter(f: &str) -> Result<String, GErr> {
    let invalid = || {
        gerr(
            400,
            "ErrorInvalidUrlQueryFilter",
            "The query filter contains one or more invalid nodes.",
        )
    };
    let f = f.trim();
    let rest = f
        .strip_prefix("displayName")
        .or_else(|| f.strip_prefix("displayname"))
        .ok_or_else(invalid)?
        .trim_start();
    let rest = rest.strip_prefix("eq").ok_or_else(invalid)?.trim();
    let inner = rest
        .strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .ok_or_else(invalid)?;
    Ok(inner.replace("''", "'"))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' | b'$' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An id or well-known name → IMAP folder (`""` for msgfolderroot). Well-known folders are
/// created when missing; unknown ids are ErrorItemNotFound, malformed ones ErrorInvalidIdMalformed.
fn resolve_folder(imap: &mut Imap, r: &str) -> Result<String, GErr> {
    if r.eq_ignore_ascii_case("msgfolderroot") {
        return Ok(String::new());
    }
    if let Some((_, name, _)) = WELL_KNOWN
        .iter()
        .find(|(w, _, _)| w.eq_ignore_ascii_case(r))
    {
        if *name != "INBOX" {
            let exists = imap
                .list()
                .map_err(imap_err)?
                .iter()
                .any(|(n, _)| n == name);
            if !exists {
                // "already exists" from a concurrent creation is fine.
                let _ = imap.run(&format!("CREATE {}", quote(name)));
            }
        }
        return Ok(name.to_string());
    }
    let name = ids::parse_folder_id(r)
        .ok_or_else(|| gerr(400, "ErrorInvalidIdMalformed", "Id is malformed."))?;
    if name.is_empty() {
        return Ok(name);
    }
    let exists = imap
        .list()
        .map_err(imap_err)?
        .iter()
        .any(|(n, _)| *n == name);
    if exists {
        Ok(name)
    } else {
        Err(gerr(404, "ErrorItemNotFound", NOT_FOUND))
    }
}

fn folder_json(imap: &mut Imap, name: &str, all: &[&str]) -> Result<String, GErr> {
    let children = all
        .iter()
        .filter(|n| !n.is_empty() && parent_of(n) == name && **n != name)
        .count();
    let (total, unread) = if name.is_empty() {
        (0, 0)
    } else {
        imap.status(name).map_err(imap_err)?
    };
    let parent = if name.is_empty() {
        "null".to_string()
    } else {
        json_str(&folder_id(parent_of(name)))
    };
    Ok(format!(
        "{{\"id\":{},\"displayName\":{},\"parentFolderId\":{parent},\"childFolderCount\":{children},\"unreadItemCount\":{unread},\"totalItemCount\":{total},\"sizeInBytes\":0,\"isHidden\":false}}",
        json_str(&folder_id(name)),
        json_str(&if name.is_empty() { "Top of Information Store".to_string() } else { display_name(name) }),
    ))
}

/// Parses a message id and selects its folder (same UIDVALIDITY, else ErrorItemNotFound).
fn select_folder_of(imap: &mut Imap, id: &str) -> Result<MessageRef, GErr> {
    let m = ids::parse_message_id(id)
        .ok_or_else(|| gerr(400, "ErrorInvalidIdMalformed", "Id is malformed."))?;
    let st = match imap.select(&m.folder) {
        Ok(st) => st,
        Err(ImapError::Refused(_)) => return Err(gerr(404, "ErrorItemNotFound", NOT_FOUND)),
        Err(e) => return Err(imap_err(e)),
    };
    if st.uidvalidity != m.uidvalidity {
        return Err(gerr(404, "ErrorItemNotFound", NOT_FOUND));
    }
    Ok(m)
}

/// Selects a message's folder and checks that the message is still there.
fn locate(imap: &mut Imap, id: &str) -> Result<MessageRef, GErr> {
    let m = select_folder_of(imap, id)?;
    let found = imap
        .uid_fetch(&m.uid.to_string(), "(UID)")
        .map_err(imap_err)?
        .iter()
        .any(|r| {
            r.iter()
                .any(|(k, v)| k == "UID" && v.text().as_deref() == Some(&m.uid.to_string()))
        });
    if !found {
        return Err(gerr(404, "ErrorItemNotFound", NOT_FOUND));
    }
    Ok(m)
}

/// Whether a `$select` (empty: the default set) includes bodyPreview.
fn wants_preview(select: &[&str]) -> bool {
    select.is_empty() || select.contains(&"bodyPreview")
}

/// What the message resource needs of `uids` (PREVIEW, RFC 8970, only when asked for).
fn fetch_many(imap: &mut Imap, uids: &[u32], preview: bool) -> Result<Vec<ImapMessage>, GErr> {
    let items = if preview {
        "(UID FLAGS INTERNALDATE MODSEQ PREVIEW BODY.PEEK[HEADER])"
    } else {
        "(UID FLAGS INTERNALDATE MODSEQ BODY.PEEK[HEADER])"
    };
    let rows = imap
        .uid_fetch(&compact_set(uids), items)
        .map_err(imap_err)?;
    let mut out: Vec<ImapMessage> = rows
        .into_iter()
        .filter_map(|r| {
            let mut m = ImapMessage::default();
            for (k, v) in r {
                match (k.as_str(), v) {
                    ("UID", v) => m.uid = v.text()?.parse().ok()?,
                    ("FLAGS", Item::List(l)) => m.flags = l.iter().filter_map(Item::text).collect(),
                    ("INTERNALDATE", v) => m.internal_date = imap_date(&v.text()?).unwrap_or(0),
                    ("MODSEQ", Item::List(l)) => {
                        m.modseq = l
                            .first()
                            .and_then(Item::text)
                            .and_then(|t| t.parse().ok())
                            .unwrap_or(0)
                    }
                    ("PREVIEW", v) => m.preview = Some(v.text().unwrap_or_default()),
                    (k, Item::Str(b)) if k.starts_with("BODY[") => m.header = b,
                    _ => {}
                }
            }
            (m.uid != 0).then_some(m)
        })
        .collect();
    out.sort_by_key(|m| m.uid);
    Ok(out)
}

fn fetch_one(imap: &mut Imap, uid: u32, preview: bool) -> Result<ImapMessage, GErr> {
    fetch_many(imap, &[uid], preview)?
        .into_iter()
        .find(|m| m.uid == uid)
        .ok_or_else(|| gerr(404, "ErrorItemNotFound", NOT_FOUND))
}

/// Graph's error body and headers (request-id, Retry-After, WWW-Authenticate for 401).
pub fn error_response(e: &GErr, req: &Request) -> Response {
    let request_id = crate::http::request_id();
    let client_id = req
        .header("client-request-id")
        .unwrap_or(&request_id)
        .to_string();
    let body = format!(
        "{{\"error\":{{\"code\":{},\"message\":{},\"innerError\":{{\"date\":{},\"request-id\":{},\"client-request-id\":{}}}}}}}",
        json_str(&e.code),
        json_str(&e.message),
        json_str(iso_utc(crate::util::unix_now() as i64).trim_end_matches('Z')),
        json_str(&request_id),
        json_str(&client_id)
    );
    let mut r = Response::json(e.status, body);
    r.content_type = "application/json";
    r.compressible = false;
    if let Some(s) = e.retry_after {
        r.headers.push(("Retry-After".into(), s.to_string()));
    }
    if e.status == 401 {
        r.headers.push((
            "WWW-Authenticate".into(),
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"".into(),
        ));
    }
    r
}

/// POSTs the token to the identity endpoint's claims introspection over a pooled keep-alive
/// connection (a fresh one when a pooled one turns out closed).
fn introspect(
    pool: &Mutex<Vec<std::io::BufReader<std::net::TcpStream>>>,
    idp_url: &str,
    token: &str,
) -> Result<String, String> {
    let addr = idp_url
        .strip_prefix("http://")
        .ok_or("the identity endpoint URL must be http://")?
        .trim_end_matches('/');
    let body = format!("token={}", url_encode(token));
    let request = format!(
        "POST /introspect/claims HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let pooled = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
    let (conn, reused) = match pooled {
        Some(c) => (c, true),
        None => (connect_idp(addr)?, false),
    };
    let (answer, conn) = match exchange(conn, &request) {
        Ok(r) => r,
        // The idp closed an idle pooled connection (e.g. it restarted): once more, fresh.
        Err(_) if reused => exchange(connect_idp(addr)?, &request)?,
        Err(e) => return Err(e),
    };
    if let Some(c) = conn {
        let mut p = pool.lock().unwrap_or_else(|p| p.into_inner());
        if p.len() < 16 {
            p.push(c);
        }
    }
    Ok(answer)
}

fn connect_idp(addr: &str) -> Result<std::io::BufReader<std::net::TcpStream>, String> {
    let tcp = std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    Ok(std::io::BufReader::new(tcp))
}

type Kept = Option<std::io::BufReader<std::net::TcpStream>>;

/// One request/answer on `conn`; returns the 200 body and the connection if it stays open.
fn exchange(
    mut conn: std::io::BufReader<std::net::TcpStream>,
    request: &str,
) -> Result<(String, Kept), String> {
    use std::io::{BufRead, Read, Write};
    conn.get_mut()
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut status_line = String::new();
    if conn
        .read_line(&mut status_line)
        .map_err(|e| e.to_string())?
        == 0
    {
        return Err("the identity endpoint closed the connection".into());
    }
    let (mut len, mut close) = (None, false);
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("the identity endpoint closed the connection inside the head".into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("connection") {
                close = v.trim().eq_ignore_ascii_case("close");
            }
        }
    }
    let mut body = Vec::new();
    match len {
        Some(n) => {
            body.resize(n, 0);
            conn.read_exact(&mut body).map_err(|e| e.to_string())?;
        }
        None => {
            conn.read_to_end(&mut body).map_err(|e| e.to_string())?;
            close = true;
        }
    }
    if !status_line.starts_with("HTTP/1.1 200") {
        return Err(format!("introspection answered {}", status_line.trim_end()));
    }
    let keep = (!close).then_some(conn);
    Ok((String::from_utf8_lossy(&body).into_owned(), keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_names() {
        assert_eq!(
            parse_display_filter("displayName eq 'Support'").unwrap(),
            "Support"
        );
        assert_eq!(
            parse_display_filter("displayName eq 'It''s'").unwrap(),
            "It's"
        );
        assert!(parse_display_filter("startswith(displayName,'S')").is_err());
        assert_eq!(display_name("INBOX"), "Inbox");
        assert_eq!(display_name("INBOX/Support"), "Support");
        assert_eq!(display_name("Trash"), "Deleted Items");
        assert_eq!(parent_of("INBOX/Support"), "INBOX");
        assert_eq!(parent_of("INBOX"), "");
        assert_eq!(display_name("INBOX/B&APw-ro"), "Büro");
        assert_eq!(
            parse_received_filter("receivedDateTime ge 2026-12-08T01:00:00Z").unwrap(),
            Some((1_796_691_600, false))
        );
        assert_eq!(parse_received_filter("").unwrap(), None);
        assert!(parse_received_filter("isRead eq false").is_err());
    }

    #[test]
    fn prefer_header() {
        let mut r = Request::default();
        r.headers.push((
            "Prefer".into(),
            "outlook.body-content-type=\"text\", odata.maxpagesize=50".into(),
        ));
        assert_eq!(max_page_size(&r), Some(50));
    }

    #[test]
    fn named_errors_have_graph_statuses() {
        assert_eq!(
            named_error("ErrorAccessDeniedPolicy").unwrap().message,
            RAOP
        );
        assert_eq!(
            named_error("InvalidAuthenticationToken").unwrap().status,
            401
        );
        assert_eq!(
            named_error("MailboxNotEnabledForRESTAPI").unwrap().status,
            404
        );
        assert!(named_error("Nope").is_none());
    }
}
