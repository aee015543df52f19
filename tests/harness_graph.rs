//! The Graph stand-in (tools/test-graph) over real HTTP: folders, delta paging and delta links,
//! $value, PATCH/move/DELETE, $batch, token and access checks, faults, keep-alive, chunked and
//! gzip answers, and the concurrency limit. Every test uses fresh mailboxes and mailbox-scoped
//! faults, so tests run in parallel.
mod support;

use futures::StreamExt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::Harness;

const RW: &str = "https://graph.microsoft.com/Mail.ReadWrite offline_access";
const SHARED: &str = "https://graph.microsoft.com/Mail.ReadWrite.Shared offline_access";

/// An answer: status, headers (lower-case names), body (de-chunked, gunzipped).
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The string value of a top-level or nested `"name":"..."`.
    fn field(&self, name: &str) -> Option<String> {
        support::json_field(&self.text(), name)
    }
    /// The `"id"` values of the answer's rows, in order (not those of nested objects).
    fn ids(&self) -> Vec<String> {
        self.text()
            .split("\"@odata.type\":\"#microsoft.graph.message\"")
            .skip(1)
            .filter_map(|row| support::json_field(row, "id"))
            .collect()
    }
    /// The Graph error code of an error answer.
    fn code(&self) -> String {
        self.field("code").unwrap_or_default()
    }
}

/// A keep-alive HTTP/1.1 connection to the stand-in.
struct Conn {
    r: BufReader<TcpStream>,
    addr: String,
}

impl Conn {
    fn open(h: &Harness) -> Conn {
        let addr = h.graph_url.trim_start_matches("http://").to_string();
        let tcp = TcpStream::connect(&addr).expect("connect to the Graph stand-in");
        tcp.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        Conn {
            r: BufReader::new(tcp),
            addr,
        }
    }

    fn send(
        &mut self,
        method: &str,
        target: &str,
        token: Option<&str>,
        extra: &[(&str, &str)],
        body: &str,
    ) -> std::io::Result<Answer> {
        let target = target
            .strip_prefix(&format!("http://{}", self.addr))
            .unwrap_or(target);
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PATCH" {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        head.push_str(body);
        self.r.get_mut().write_all(head.as_bytes())?;
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed without an answer",
            ));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.r.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').expect("header line");
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v): &(String, String)| v.clone())
        };
        let mut body = Vec::new();
        if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            loop {
                line.clear();
                self.r.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim(), 16).expect("chunk size");
                if size == 0 {
                    line.clear();
                    self.r.read_line(&mut line)?;
                    break;
                }
                let mut chunk = vec![0u8; size + 2];
                self.r.read_exact(&mut chunk)?;
                body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(len) = get("content-length") {
            body.resize(len.parse().expect("length"), 0);
            self.r.read_exact(&mut body)?;
        }
        if get("content-encoding").as_deref() == Some("gzip") {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut plain)
                .expect("valid gzip");
            body = plain;
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    fn get(&mut self, target: &str, token: &str) -> Answer {
        self.send("GET", target, Some(token), &[], "")
            .unwrap_or_else(|e| panic!("GET {target}: {e}"))
    }
}

fn mail(n: u32, to: &str) -> Vec<u8> {
    format!(
        "From: Customer {n} <c{n}@example.com>\r\nTo: {to}\r\nSubject: Printer {n} broken\r\nMessage-ID: <g{n}-{to}>\r\nDate: Mon, 07 Dec 2026 10:00:0{} +0000\r\n\r\nIt does not print ({n}).\r\n",
        n % 10
    )
    .into_bytes()
}

fn users(user: &str) -> String {
    format!("/v1.0/users/{user}")
}

/// Follows a delta round from `first` to its delta link; returns (all ids, delta link, pages).
fn round(c: &mut Conn, first: &str, token: &str, page: usize) -> (Vec<Answer>, String) {
    let mut pages = Vec::new();
    let mut url = first.to_string();
    let prefer = format!("odata.maxpagesize={page}");
    loop {
        let a = c
            .send("GET", &url, Some(token), &[("Prefer", &prefer)], "")
            .expect("delta page");
        assert_eq!(a.status, 200, "{}", a.text());
        let next = a.field("@odata.nextLink");
        let delta = a.field("@odata.deltaLink");
        pages.push(a);
        match (next, delta) {
            (Some(n), None) => url = n,
            (None, Some(d)) => return (pages, d),
            other => panic!("a page needs exactly one link: {other:?}"),
        }
        assert!(pages.len() < 100, "too many pages");
    }
}

#[test]
fn delta_pages_then_reports_only_changes() {
    let h = Harness::get();
    let user = h.unique_user("graph-delta");
    let uids: Vec<u32> = (1..=5)
        .map(|n| h.append(&user, "INBOX", &mail(n, &user), &[]))
        .collect();
    let token = h.graph_user_token(&user, RW);
    let mut c = Conn::open(h);
    let first = format!(
        "{}/mailFolders/inbox/messages/delta?$select=id,isRead,subject,from,internetMessageId,receivedDateTime,parentFolderId",
        users(&user)
    );
    let (pages, delta) = round(&mut c, &first, &token, 2);
    assert_eq!(pages.len(), 3, "5 messages in pages of 2");
    assert_eq!(
        pages[0].header("preference-applied"),
        Some("odata.maxpagesize=2")
    );
    let ids: Vec<String> = pages.iter().flat_map(Answer::ids).collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
    let text: String = pages.iter().map(Answer::text).collect();
    for n in 1..=5 {
        assert!(
            text.contains(&format!("\"subject\":\"Printer {n} broken\"")),
            "{text}"
        );
        assert!(text.contains(&format!("\"internetMessageId\":\"<g{n}-{user}>\"")));
    }
    assert!(text.contains("\"isRead\":false") && !text.contains("\"isRead\":true"));
    assert!(!text.contains("toRecipients"), "only $select'ed properties");

    // $value is the stored MIME source.
    let stored = h.list_messages(&user, "INBOX");
    let v = c.get(
        &format!("{}/messages/{}/$value", users(&user), ids[0]),
        &token,
    );
    assert_eq!(v.status, 200);
    assert_eq!(v.header("content-type"), Some("text/plain"));
    assert_eq!(v.body, stored[0].2, "the MIME source as stored");

    // Nothing changed: the delta link answers an empty page and a new delta link.
    let (pages, delta) = round(&mut c, &delta, &token, 2);
    assert_eq!(
        pages.iter().flat_map(Answer::ids).count(),
        0,
        "{}",
        pages[0].text()
    );

    // Mark one read, move one, delete one, and a new one arrives.
    let a = c
        .send(
            "PATCH",
            &format!("{}/messages/{}", users(&user), ids[0]),
            Some(&token),
            &[],
            "{\"isRead\":true}",
        )
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(a.text().contains("\"isRead\":true"));
    let flags = &h.list_messages(&user, "INBOX")[0].1;
    assert!(flags.iter().any(|f| f == "\\Seen"), "{flags:?}");
    let moved = c
        .send(
            "POST",
            &format!("{}/messages/{}/move", users(&user), ids[1]),
            Some(&token),
            &[],
            "{\"destinationId\":\"archive\"}",
        )
        .unwrap();
    assert_eq!(moved.status, 201, "{}", moved.text());
    let new_id = moved.field("id").unwrap();
    assert_ne!(new_id, ids[1], "a moved message gets a new id");
    assert_eq!(h.count(&user, "Archive"), 1);
    let gone = c
        .send(
            "DELETE",
            &format!("{}/messages/{}", users(&user), ids[2]),
            Some(&token),
            &[],
            "",
        )
        .unwrap();
    assert_eq!(gone.status, 204);
    assert_eq!(h.count(&user, "INBOX"), 3);
    h.append(&user, "INBOX", &mail(6, &user), &[]);
    // One message by id, with Dovecot's preview of the text.
    let one = c.get(
        &format!(
            "{}/messages/{}?$select=subject,bodyPreview",
            users(&user),
            ids[3]
        ),
        &token,
    );
    assert!(
        one.text()
            .contains("\"bodyPreview\":\"It does not print (4).\""),
        "{}",
        one.text()
    );
    // The old id of the moved message is gone: ErrorItemNotFound.
    let stale = c.get(&format!("{}/messages/{}", users(&user), ids[1]), &token);
    assert_eq!(
        (stale.status, stale.code().as_str()),
        (404, "ErrorItemNotFound")
    );

    let (pages, _) = round(&mut c, &delta, &token, 2);
    let text: String = pages.iter().map(Answer::text).collect();
    let removed = text
        .matches("\"@removed\":{\"reason\":\"deleted\"}")
        .count();
    assert_eq!(removed, 2, "moved and deleted: {text}");
    assert!(text.contains(&ids[1]) && text.contains(&ids[2]));
    assert!(text.contains("Printer 6 broken"), "the new message: {text}");
    assert!(
        text.contains(&format!("\"id\":\"{}\",\"isRead\":true", ids[0])),
        "the read change: {text}"
    );
    assert!(
        !text.contains("Printer 4 broken"),
        "unchanged messages are not repeated: {text}"
    );
    assert_eq!(uids.len(), 5);
}

#[test]
fn folders_by_well_known_name_and_display_path() {
    let h = Harness::get();
    let user = h.unique_user("graph-folders");
    h.create_folder(&user, "INBOX/Support");
    // IMAP names are modified UTF-7: Graph shows "Büro".
    h.create_folder(&user, "INBOX/B&APw-ro");
    h.append(&user, "INBOX/Support", &mail(1, &user), &[]);
    let token = h.graph_user_token(&user, RW);
    let mut c = Conn::open(h);
    let top = c.get(
        &format!(
            "{}/mailFolders?$filter=displayName%20eq%20'Inbox'",
            users(&user)
        ),
        &token,
    );
    assert_eq!(top.status, 200, "{}", top.text());
    let inbox = top.field("id").unwrap();
    let by_name = c.get(&format!("{}/mailFolders/inbox", users(&user)), &token);
    assert_eq!(by_name.field("id").as_deref(), Some(inbox.as_str()));
    assert!(
        by_name.text().contains("\"childFolderCount\":2"),
        "{}",
        by_name.text()
    );
    let buero = c.get(
        &format!(
            "{}/mailFolders/{inbox}/childFolders?$filter=displayName%20eq%20'B%C3%BCro'",
            users(&user)
        ),
        &token,
    );
    assert!(
        buero.text().contains("\"displayName\":\"Büro\""),
        "{}",
        buero.text()
    );
    let child = c.get(
        &format!(
            "{}/mailFolders/{inbox}/childFolders?$filter=displayName%20eq%20'Support'",
            users(&user)
        ),
        &token,
    );
    assert!(
        child.text().contains("\"displayName\":\"Support\""),
        "{}",
        child.text()
    );
    assert!(
        child.text().contains("\"totalItemCount\":1"),
        "{}",
        child.text()
    );
    let support = child.field("id").unwrap();
    let delta = format!(
        "{}/mailFolders/{support}/messages/delta?$select=subject",
        users(&user)
    );
    let (pages, _) = round(&mut c, &delta, &token, 10);
    assert!(
        pages[0].text().contains("Printer 1 broken"),
        "{}",
        pages[0].text()
    );
    // $filter on receivedDateTime (the only one Graph allows on delta).
    let (pages, _) = round(
        &mut c,
        &format!("{delta}&$filter=receivedDateTime%20ge%202000-01-01T00:00:00Z"),
        &token,
        10,
    );
    assert_eq!(pages[0].ids().len(), 1, "{}", pages[0].text());
    let (pages, _) = round(
        &mut c,
        &format!("{delta}&$filter=receivedDateTime%20ge%202999-01-01T00:00:00Z"),
        &token,
        10,
    );
    assert_eq!(pages[0].ids().len(), 0, "{}", pages[0].text());
    let bad = c.get(&format!("{delta}&$filter=isRead%20eq%20false"), &token);
    assert_eq!(
        (bad.status, bad.code().as_str()),
        (400, "ErrorInvalidUrlQueryFilter")
    );
    // Well-known folders exist in every Exchange mailbox: archive is created on first use.
    let archive = c.get(&format!("{}/mailFolders/archive", users(&user)), &token);
    assert_eq!(archive.status, 200, "{}", archive.text());
    assert!(archive.text().contains("\"displayName\":\"Archive\""));
    assert!(h.folder_exists(&user, "Archive"));
    let none = c.get(
        &format!(
            "{}/mailFolders?$filter=displayName%20eq%20'Nope'",
            users(&user)
        ),
        &token,
    );
    assert!(none.text().contains("\"value\":[]"), "{}", none.text());
    let bad = c.get(&format!("{}/mailFolders/not-an-id", users(&user)), &token);
    assert_eq!(
        (bad.status, bad.code().as_str()),
        (400, "ErrorInvalidIdMalformed")
    );
}

#[test]
fn tokens_scopes_delegation_roles_and_access_policy() {
    let h = Harness::get();
    let shared = h.unique_user("graph-shared");
    let delegate = h.unique_user("graph-delegate");
    h.append(&shared, "INBOX", &mail(1, &shared), &[]);
    let inbox = format!("{}/mailFolders/inbox", users(&shared));
    let mut c = Conn::open(h);

    let none = c.send("GET", &inbox, None, &[], "").unwrap();
    assert_eq!(
        (none.status, none.code().as_str()),
        (401, "InvalidAuthenticationToken")
    );
    assert!(none
        .header("www-authenticate")
        .is_some_and(|w| w.starts_with("Bearer")));
    let (imap_token, _) = h.password_token(&shared);
    let wrong = c.get(&inbox, &imap_token);
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.text().contains("Invalid audience"),
        "{}",
        wrong.text()
    );

    // Delegated: another mailbox needs .Shared and Full Access.
    let own_only = h.graph_user_token(&delegate, RW);
    assert_eq!(c.get(&inbox, &own_only).code(), "ErrorAccessDenied");
    let token = h.graph_user_token(&delegate, SHARED);
    let denied = c.get(&inbox, &token);
    assert_eq!(
        (denied.status, denied.code().as_str()),
        (403, "ErrorAccessDenied")
    );
    h.grant_full_access(&shared, &delegate);
    assert_eq!(c.get(&inbox, &token).status, 200);
    let read_only = h.graph_user_token(&delegate, "https://graph.microsoft.com/Mail.Read.Shared");
    assert_eq!(c.get(&inbox, &read_only).status, 200);
    let (pages, _) = round(&mut c, &format!("{inbox}/messages/delta"), &read_only, 10);
    let id = pages[0].ids()[0].clone();
    let patch = c
        .send(
            "PATCH",
            &format!("{}/messages/{id}", users(&shared)),
            Some(&read_only),
            &[],
            "{\"isRead\":true}",
        )
        .unwrap();
    assert_eq!(
        (patch.status, patch.code().as_str()),
        (403, "ErrorAccessDenied")
    );

    // App-only: the role, then the application access policy.
    let app = "app-confidential-b";
    let app_token = h.graph_app_token(app);
    assert_eq!(c.get(&inbox, &app_token).status, 200);
    h.graph(&format!(
        "/_test/access_policy?client_id={app}&access=deny&mailbox={shared}"
    ));
    let raop = c.get(&inbox, &app_token);
    assert_eq!(
        (raop.status, raop.code().as_str()),
        (403, "ErrorAccessDenied")
    );
    assert!(
        raop.text()
            .contains("Blocked by tenant configured AppOnly AccessPolicy settings"),
        "{}",
        raop.text()
    );
    h.graph(&format!(
        "/_test/access_policy?client_id={app}&access=clear"
    ));
    assert_eq!(c.get(&inbox, &app_token).status, 200);
    // RestrictAccess: only the listed mailboxes.
    h.graph(&format!(
        "/_test/access_policy?client_id={app}&access=restrict&mailbox={delegate}"
    ));
    assert!(c.get(&inbox, &app_token).text().contains("[RAOP]"));
    let other = format!("{}/mailFolders/inbox", users(&delegate));
    assert_eq!(c.get(&other, &app_token).status, 200);
    h.graph(&format!(
        "/_test/access_policy?client_id={app}&access=clear"
    ));
    assert_eq!(c.get(&inbox, &app_token).status, 200);
    h.idp(&format!("/_test/graph_roles?client_id={app}&roles="));
    let no_role = h.graph_app_token(app);
    h.idp(&format!("/_test/graph_roles?client_id={app}&roles=*"));
    let r = c.get(&inbox, &no_role);
    assert_eq!((r.status, r.code().as_str()), (403, "ErrorAccessDenied"));
    // An expired token: 401.
    h.idp(&format!("/_test/expire_access_tokens?user={delegate}"));
    assert_eq!(c.get(&inbox, &token).code(), "InvalidAuthenticationToken");
}

#[test]
fn faults_throttling_errors_and_expired_delta_links() {
    let h = Harness::get();
    let user = h.unique_user("graph-faults");
    h.append(&user, "INBOX", &mail(1, &user), &[]);
    let token = h.graph_user_token(&user, RW);
    let inbox = format!("{}/mailFolders/inbox", users(&user));
    let mut c = Conn::open(h);

    h.graph(&format!(
        "/_test/fail_next?status=429&count=2&retry_after=7&mailbox={user}"
    ));
    for _ in 0..2 {
        let a = c.get(&inbox, &token);
        assert_eq!(a.status, 429);
        assert_eq!(a.header("retry-after"), Some("7"));
        assert_eq!(a.code(), "ApplicationThrottled");
    }
    assert_eq!(c.get(&inbox, &token).status, 200);
    h.graph(&format!("/_test/fail_next?status=503&mailbox={user}"));
    h.graph(&format!("/_test/fail_next?status=504&mailbox={user}"));
    assert_eq!(c.get(&inbox, &token).status, 503);
    assert_eq!(c.get(&inbox, &token).status, 504);

    for (code, status) in [
        ("MailboxNotEnabledForRESTAPI", 404),
        ("ErrorAccessDeniedPolicy", 403),
        ("ErrorItemNotFound", 404),
        ("InvalidAuthenticationToken", 401),
        ("Authorization_RequestDenied", 403),
    ] {
        h.graph(&format!("/_test/error?mailbox={user}&code={code}&count=1"));
        let a = c.get(&inbox, &token);
        let want = if code == "ErrorAccessDeniedPolicy" {
            "ErrorAccessDenied"
        } else {
            code
        };
        assert_eq!(
            (a.status, a.code().as_str()),
            (status, want),
            "{}",
            a.text()
        );
        assert!(
            a.text().contains("\"innerError\":{\"date\":"),
            "{}",
            a.text()
        );
    }
    assert_eq!(
        c.get(&inbox, &token).status,
        200,
        "count=1 errors are used up"
    );

    // An expired delta link: 410 SyncStateNotFound; a new round works.
    let (_, delta) = round(&mut c, &format!("{inbox}/messages/delta"), &token, 10);
    h.graph(&format!("/_test/expire_delta?mailbox={user}"));
    let gone = c.get(&delta, &token);
    assert_eq!(
        (gone.status, gone.code().as_str()),
        (410, "SyncStateNotFound")
    );
    let (pages, _) = round(&mut c, &format!("{inbox}/messages/delta"), &token, 10);
    assert_eq!(pages[0].ids().len(), 1);

    // Pages without rows that still link on.
    h.graph(&format!("/_test/empty_pages?mailbox={user}&count=2"));
    let (pages, _) = round(&mut c, &format!("{inbox}/messages/delta"), &token, 10);
    assert_eq!(pages.len(), 3);
    assert_eq!(
        pages.iter().map(|p| p.ids().len()).collect::<Vec<_>>(),
        vec![0, 0, 1]
    );

    // A steady storm: every 2nd request is throttled.
    h.graph(&format!(
        "/_test/fail_every?n=2&status=429&retry_after=1&mailbox={user}"
    ));
    let statuses: Vec<u16> = (0..6).map(|_| c.get(&inbox, &token).status).collect();
    assert_eq!(statuses, vec![200, 429, 200, 429, 200, 429]);
    h.graph(&format!("/_test/fail_every?n=0&mailbox={user}"));
    // An answer cut off mid-body: the client sees the announced length and a closed connection.
    h.graph(&format!("/_test/truncate_next?mailbox={user}"));
    let cut = c.send("GET", &inbox, Some(&token), &[], "");
    assert!(cut.is_err(), "a truncated answer is an error: {cut:?}");
    let mut c = Conn::open(h);
    assert_eq!(c.get(&inbox, &token).status, 200);

    // A dropped request: the connection closes without an answer.
    h.graph(&format!("/_test/drop_next?mailbox={user}"));
    assert!(c.send("GET", &inbox, Some(&token), &[], "").is_err());
    let mut c = Conn::open(h);
    assert_eq!(c.get(&inbox, &token).status, 200);
    let stats = h.graph(&format!("/_test/stats?mailbox={user}"));
    assert!(
        stats.contains("\"429\":5") && stats.contains("\"throttled\":5"),
        "{stats}"
    );
}

#[test]
fn batch_runs_up_to_20_requests_with_their_own_status() {
    let h = Harness::get();
    let user = h.unique_user("graph-batch");
    for n in 1..=3 {
        h.append(&user, "INBOX", &mail(n, &user), &[]);
    }
    let token = h.graph_user_token(&user, RW);
    let mut c = Conn::open(h);
    let (pages, _) = round(
        &mut c,
        &format!(
            "{}/mailFolders/inbox/messages/delta?$select=id",
            users(&user)
        ),
        &token,
        10,
    );
    let ids = pages[0].ids();
    assert_eq!(ids.len(), 3);
    let req = |i: usize, id: &str| {
        format!("{{\"id\":\"{i}\",\"method\":\"PATCH\",\"url\":\"/users/{user}/messages/{id}\",\"headers\":{{\"Content-Type\":\"application/json\"}},\"body\":{{\"isRead\":true}}}}")
    };
    let body = format!("{{\"requests\":[{},{}]}}", req(1, &ids[0]), req(2, &ids[1]));
    let a = c
        .send("POST", "/v1.0/$batch", Some(&token), &[], &body)
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        a.text().matches("\"status\":200").count(),
        2,
        "{}",
        a.text()
    );
    h.graph(&format!(
        "/_test/fail_next?status=429&retry_after=2&mailbox={user}"
    ));
    let body = format!(
        "{{\"requests\":[{{\"id\":\"0\",\"method\":\"GET\",\"url\":\"/users/{user}/mailFolders/inbox\"}},{}]}}",
        req(3, &ids[2])
    );
    let a = c
        .send("POST", "/v1.0/$batch", Some(&token), &[], &body)
        .unwrap();
    let t = a.text();
    assert!(t.contains("{\"id\":\"0\",\"status\":429,\"headers\":{\"Content-Type\":\"application/json\",\"Retry-After\":\"2\"}"), "{t}");
    assert!(t.contains("{\"id\":\"3\",\"status\":200"), "{t}");
    let seen = h
        .list_messages(&user, "INBOX")
        .iter()
        .filter(|m| m.1.iter().any(|f| f == "\\Seen"))
        .count();
    assert_eq!(seen, 3);
    // Move and delete in one batch; a request depending on a failed one is not run (424).
    let body = format!(
        "{{\"requests\":[{{\"id\":\"m\",\"method\":\"POST\",\"url\":\"/users/{user}/messages/{}/move\",\"headers\":{{\"Content-Type\":\"application/json\"}},\"body\":{{\"destinationId\":\"deleteditems\"}}}},{{\"id\":\"d\",\"method\":\"DELETE\",\"url\":\"/users/{user}/messages/{}\"}},{{\"id\":\"x\",\"method\":\"DELETE\",\"url\":\"/users/{user}/messages/{}\"}},{{\"id\":\"y\",\"method\":\"GET\",\"url\":\"/users/{user}/mailFolders/inbox\",\"dependsOn\":[\"x\"]}}]}}",
        ids[0], ids[1], ids[1]
    );
    let a = c
        .send("POST", "/v1.0/$batch", Some(&token), &[], &body)
        .unwrap();
    let t = a.text();
    assert!(t.contains("{\"id\":\"m\",\"status\":201"), "{t}");
    assert!(t.contains("\"parentFolderId\""), "the moved message: {t}");
    assert!(t.contains("{\"id\":\"d\",\"status\":204"), "{t}");
    assert!(
        t.contains("{\"id\":\"x\",\"status\":404"),
        "already deleted: {t}"
    );
    assert!(t.contains("{\"id\":\"y\",\"status\":424"), "{t}");
    assert_eq!(h.count(&user, "INBOX"), 1);
    assert_eq!(h.count(&user, "Trash"), 1);
    let many: Vec<String> = (0..21).map(|i| req(i, &ids[0])).collect();
    let a = c
        .send(
            "POST",
            "/v1.0/$batch",
            Some(&token),
            &[],
            &format!("{{\"requests\":[{}]}}", many.join(",")),
        )
        .unwrap();
    assert_eq!(a.status, 400, "{}", a.text());
}

#[test]
fn keep_alive_chunked_gzip_and_the_concurrency_limit() {
    let h = Harness::get();
    let user = h.unique_user("graph-http");
    for n in 1..=12 {
        h.append(&user, "INBOX", &mail(n, &user), &[]);
    }
    let token = h.graph_user_token(&user, RW);
    let mut c = Conn::open(h);
    let url = format!(
        "{}/mailFolders/inbox/messages/delta?$select=subject,from,toRecipients",
        users(&user)
    );
    let plain = c.get(&url, &token);
    assert_eq!(plain.header("transfer-encoding"), Some("chunked"));
    assert!(plain.header("content-encoding").is_none());
    let zipped = c
        .send(
            "GET",
            &url,
            Some(&token),
            &[("Accept-Encoding", "gzip, deflate")],
            "",
        )
        .unwrap();
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    assert_eq!(zipped.ids(), plain.ids(), "the same page, compressed");
    assert_eq!(zipped.ids().len(), 10, "Graph's default page size");
    // All of that over one connection.
    let stats = h.graph(&format!("/_test/stats?mailbox={user}"));
    assert!(stats.contains("\"connections\":1"), "{stats}");
    assert!(
        stats.contains("\"gzip_requests\":1,\"gzip_answers\":1"),
        "{stats}"
    );

    // Exchange's limit: 4 requests in flight per app and mailbox, the 5th and 6th get 429
    // (max_concurrent counts the requests in flight plus the one refused).
    // The delay only makes the requests overlap: connections open first, then all six are sent
    // at once, and the first four hold their places for the delay.
    h.graph(&format!("/_test/set?delay_ms=4000&mailbox={user}"));
    let inbox = format!("{}/mailFolders/inbox", users(&user));
    let start = std::sync::Arc::new(std::sync::Barrier::new(6));
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (inbox, token, start) = (inbox.clone(), token.clone(), start.clone());
            std::thread::spawn(move || {
                let mut c = Conn::open(Harness::get());
                start.wait();
                c.get(&inbox, &token).status
            })
        })
        .collect();
    let mut statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    statuses.sort_unstable();
    let stats = h.graph(&format!("/_test/stats?mailbox={user}"));
    assert_eq!(statuses, vec![200, 200, 200, 200, 429, 429], "{stats}");
    assert_eq!(
        support::json_number(&stats, "max_concurrent"),
        Some(5),
        "{stats}"
    );
    assert_eq!(
        support::json_number(&stats, "concurrency_rejections"),
        Some(2),
        "{stats}"
    );
}

#[test]
fn https_with_the_harness_certificate() {
    use futures::{AsyncReadExt, AsyncWriteExt};
    let h = Harness::get();
    let user = h.unique_user("graph-tls");
    h.append(&user, "INBOX", &mail(1, &user), &[]);
    let token = h.graph_user_token(&user, RW);
    let rest = h.graph_tls_url.strip_prefix("https://").expect("https URL");
    let (host, port) = rest.rsplit_once(':').expect("host:port");
    let port: u16 = port.parse().expect("port");
    let step = Duration::from_secs(20);
    let answer = smol::block_on(async {
        let tcp = psa_mail_agent::net::connect_tcp(host, port, step)
            .await
            .expect("connect");
        let cfg = psa_mail_agent::tls::client_config(Some(&h.ca_file)).expect("TLS config");
        let mut tls = psa_mail_agent::tls::handshake(cfg, host, tcp, step)
            .await
            .expect("TLS handshake with the harness CA");
        let req = format!(
            "GET /v1.0/users/{user}/mailFolders/inbox HTTP/1.1\r\nHost: {rest}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(req.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    });
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("\"totalItemCount\":1"), "{answer}");
}

#[test]
fn mail_arriving_during_a_round_comes_in_the_next_one() {
    let h = Harness::get();
    let user = h.unique_user("graph-during");
    for n in 1..=3 {
        h.append(&user, "INBOX", &mail(n, &user), &[]);
    }
    let token = h.graph_user_token(&user, RW);
    let mut c = Conn::open(h);
    let prefer = [("Prefer", "odata.maxpagesize=1")];
    let first = c
        .send(
            "GET",
            &format!(
                "{}/mailFolders/inbox/messages/delta?$select=subject",
                users(&user)
            ),
            Some(&token),
            &prefer,
            "",
        )
        .unwrap();
    let mut seen = first.ids();
    // Mid-round: one arrives, one of the not yet listed ones is deleted by someone else.
    h.append(&user, "INBOX", &mail(4, &user), &[]);
    let stored = h.list_messages(&user, "INBOX");
    let uid3 = stored[2].0;
    smol::block_on(async {
        let mut s = h.login(&user).await;
        s.select("INBOX").await.unwrap();
        s.uid_store(uid3.to_string(), "+FLAGS.SILENT (\\Deleted)")
            .await
            .unwrap()
            .for_each(|_| async {})
            .await;
        s.expunge().await.unwrap().for_each(|_| async {}).await;
        s.logout().await.unwrap();
    });
    let (pages, delta) = round(&mut c, &first.field("@odata.nextLink").unwrap(), &token, 1);
    seen.extend(pages.iter().flat_map(Answer::ids));
    let text: String = pages.iter().map(Answer::text).collect();
    assert!(
        !text.contains("Printer 4"),
        "not in the round's snapshot: {text}"
    );
    assert!(
        !text.contains("Printer 3"),
        "gone before it was listed: {text}"
    );
    assert_eq!(seen.len(), 2, "{seen:?}");
    let (pages, _) = round(&mut c, &delta, &token, 10);
    let text: String = pages.iter().map(Answer::text).collect();
    assert!(
        text.contains("Printer 4 broken"),
        "the next round has it: {text}"
    );
    assert_eq!(
        text.matches("@removed").count(),
        1,
        "the deleted one from the snapshot: {text}"
    );
}

#[test]
fn keep_alive_limits_close_connections_as_servers_do() {
    let h = Harness::get();
    let user = h.unique_user("graph-idle");
    let token = h.graph_user_token(&user, RW);
    let inbox = format!("{}/mailFolders/inbox", users(&user));
    // At most 2 requests per connection: the second answer says Connection: close.
    h.graph(&format!("/_test/set?max_requests=2&mailbox={user}"));
    let mut c = Conn::open(h);
    let first = c.get(&inbox, &token);
    assert_eq!(first.status, 200);
    assert!(first.header("connection").is_none());
    let second = c.get(&inbox, &token);
    assert_eq!(second.status, 200);
    assert_eq!(second.header("connection"), Some("close"));
    assert!(c.send("GET", &inbox, Some(&token), &[], "").is_err());
    h.graph(&format!("/_test/set?max_requests=0&mailbox={user}"));
    // A connection idle longer than the server keeps it is closed by the server.
    h.graph(&format!("/_test/set?keepalive_ms=300&mailbox={user}"));
    let mut c = Conn::open(h);
    assert_eq!(c.get(&inbox, &token).status, 200);
    std::thread::sleep(Duration::from_millis(3000));
    assert!(
        c.send("GET", &inbox, Some(&token), &[], "").is_err(),
        "the server closed the idle connection"
    );
    let mut c = Conn::open(h);
    assert_eq!(c.get(&inbox, &token).status, 200);
}
