//! Microsoft Graph mail as a transport: the folder's changes by delta query, each message's
//! MIME source (`$value`) for the same ticket builder IMAP feeds, and acknowledgements
//! (mark read, move, delete) in JSON batches. Keeps no state itself: the agent stores the
//! delta link and the message ids with its UID state (see `agent`'s Graph seam).

pub(crate) mod batch;
pub mod client;
pub mod delta;
pub mod errors;
pub(crate) mod json;

use crate::config::{AfterProcessing, Flow, Mailbox};
use crate::error::{Error, ErrorKind, Result};
use crate::http::conn::Overflow;
use crate::http::HttpOptions;
use crate::secret::Secret;
use client::{Client, MAX_JSON_BYTES};
pub use delta::Change;
pub use errors::{Access, Refusal};
use std::time::Duration;

/// Folders Graph names in every language (`mailFolders/{well-known name}`).
pub const WELL_KNOWN: &[&str] = &[
    "inbox",
    "archive",
    "clutter",
    "conflicts",
    "conversationhistory",
    "deleteditems",
    "drafts",
    "junkemail",
    "localfailures",
    "msgfolderroot",
    "outbox",
    "recoverableitemsdeletions",
    "scheduled",
    "searchfolders",
    "sentitems",
    "serverfailures",
    "syncissues",
];

/// The outcome of a delta round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    /// Every page was read: the changes and the link for the next round (relative).
    Done {
        /// The changes of all pages, in order.
        changes: Vec<Change>,
        /// The `@odata.deltaLink` (path and query).
        link: String,
    },
    /// The stored link expired (HTTP 410): start a new round without it.
    Expired,
}

/// A message source fetched by `$value`.
#[derive(Debug)]
pub enum Source {
    /// The bytes; `truncated` when only its header was kept (larger than the limit).
    Mime {
        /// RFC 822 bytes.
        raw: Vec<u8>,
        /// Only the header section (the message exceeded the limit).
        truncated: bool,
    },
    /// The message is gone (moved or deleted meanwhile).
    Gone,
}

/// One mailbox's Graph endpoint.
pub struct Remote {
    client: Client,
    /// `/v1.0/users/{email}`.
    user: String,
    mailbox: String,
    principal: String,
    access: Access,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("base", &self.client.base())
            .field("mailbox", &self.mailbox)
            .finish()
    }
}

/// Percent-encodes one path segment (unreserved characters and `@` kept).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The permissions an access token carries (`roles` of an app-only token, `scp` of a
/// delegated one), read from its payload without verifying it (only for diagnosis).
pub fn token_permissions(token: &Secret) -> Option<Vec<String>> {
    use base64::Engine;
    let payload = token.expose().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v = crate::json::parse(std::str::from_utf8(&bytes).ok()?).ok()?;
    let mut out = Vec::new();
    if let Some(crate::json::Value::Array(roles)) = json::get(&v, "roles") {
        for r in roles {
            if let crate::json::Value::String(s) = r {
                out.push(s.clone());
            }
        }
    }
    if let Some(scp) = json::get_str(&v, "scp") {
        out.extend(scp.split(' ').filter(|s| !s.is_empty()).map(str::to_string));
    }
    if json::get(&v, "roles").is_none() && json::get(&v, "scp").is_none() {
        return None;
    }
    Some(out)
}

impl Remote {
    /// The Graph endpoint of `mailbox` (`graph.endpoint`, its CA file, timeout and proxy).
    pub fn new(mailbox: &Mailbox) -> Result<Remote> {
        let opts = HttpOptions {
            timeout: Duration::from_secs(mailbox.imap.timeout_secs),
            ca_file: mailbox.imap.ca_file.clone(),
            proxy: mailbox.oauth.proxy.clone(),
            max_response_bytes: MAX_JSON_BYTES,
        };
        let client = Client::new(&mailbox.graph.endpoint, opts)
            .map_err(|e| Error::config("graph.endpoint", e.message().to_string()))?;
        let access = if mailbox.oauth.flow == Flow::ClientCredentials {
            Access::AppOnly
        } else if mailbox.oauth.shared_mailbox {
            Access::DelegatedShared
        } else {
            Access::Delegated
        };
        let principal = match access {
            Access::AppOnly => mailbox.oauth.application_id.clone(),
            _ => mailbox.username.clone(),
        };
        Ok(Remote {
            client,
            user: format!("/v1.0/users/{}", segment(&mailbox.email)),
            mailbox: mailbox.email.clone(),
            principal,
            access,
        })
    }

    /// The HTTP client (counters, reset).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// App-only or delegated.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The error for a refused request while `doing`.
    pub fn refused(&self, r: &Refusal, doing: &str, token: &Secret) -> Error {
        let granted = token_permissions(token);
        errors::map(
            r,
            &errors::Context {
                mailbox: &self.mailbox,
                principal: &self.principal,
                access: self.access,
                doing,
                granted: granted.as_deref(),
            },
        )
    }

    async fn get_json(
        &self,
        token: &Secret,
        path: &str,
        doing: &str,
    ) -> Result<crate::json::Value> {
        let a = self
            .client
            .send(token, "GET", path, &[], b"", MAX_JSON_BYTES, Overflow::Fail)
            .await?;
        if !a.response.is_success() {
            let r = Refusal::parse(a.response.status, &a.response.body);
            return Err(self.refused(&r, doing, token));
        }
        parse_json(&a.response.body, doing)
    }

    /// The id of the folder `path`: a well-known name (`inbox`), or a display-name path
    /// (`Inbox/Support`) whose first part may be a well-known name.
    pub async fn folder_id(&self, token: &Secret, path: &str) -> Result<String> {
        let doing = format!("opening the folder {path:?} of {}", self.mailbox);
        let parts: Vec<&str> = path.split('/').map(str::trim).collect();
        let first = parts[0];
        let mut id = if let Some(w) = WELL_KNOWN.iter().find(|w| w.eq_ignore_ascii_case(first)) {
            let v = self
                .get_json(
                    token,
                    &format!("{}/mailFolders/{w}?$select=id,displayName", self.user),
                    &doing,
                )
                .await?;
            json::get_str(&v, "id")
                .ok_or_else(|| protocol(&doing, "a folder without id"))?
                .to_string()
        } else {
            self.child_named(
                token,
                &format!("{}/mailFolders", self.user),
                first,
                path,
                &doing,
            )
            .await?
        };
        for part in &parts[1..] {
            let list = format!("{}/mailFolders/{}/childFolders", self.user, segment(&id));
            id = self.child_named(token, &list, part, path, &doing).await?;
        }
        Ok(id)
    }

    async fn child_named(
        &self,
        token: &Secret,
        list: &str,
        name: &str,
        path: &str,
        doing: &str,
    ) -> Result<String> {
        let mut next = Some(format!("{list}?$select=id,displayName&$top=100"));
        let mut seen = Vec::new();
        while let Some(url) = next.take() {
            let v = self.get_json(token, &url, doing).await?;
            if let Some(crate::json::Value::Array(items)) = json::get(&v, "value") {
                for f in items {
                    let (Some(id), Some(dn)) =
                        (json::get_str(f, "id"), json::get_str(f, "displayName"))
                    else {
                        continue;
                    };
                    if dn.eq_ignore_ascii_case(name) {
                        return Ok(id.to_string());
                    }
                    if seen.len() < 20 {
                        seen.push(dn.to_string());
                    }
                }
            }
            if let Some(n) = json::get_str(&v, "@odata.nextLink") {
                next = Some(self.client.relative(n)?);
            }
        }
        Err(Error::new(
            ErrorKind::FolderNotFound,
            format!(
                "{}: no folder {name:?} (of {path:?}); found: {}",
                self.mailbox,
                if seen.is_empty() {
                    "none".to_string()
                } else {
                    seen.join(", ")
                }
            ),
        )
        .with_fix(
            "set graph.folder to a well-known name (inbox) or a display-name path such as \
             Inbox/Support, as Outlook shows it",
        ))
    }

    /// The first URL of a new delta round of the folder `folder_id`.
    pub fn delta_start(&self, folder_id: &str) -> String {
        format!(
            "{}/mailFolders/{}/messages/delta?$select={}",
            self.user,
            segment(folder_id),
            delta::SELECT
        )
    }

    /// Reads a delta round from `from` (a stored delta link, or [`Remote::delta_start`]) to its
    /// delta link.
    pub async fn delta(&self, token: &Secret, from: &str) -> Result<Delta> {
        let doing = format!("the changes (delta query) of {}", self.mailbox);
        let prefer = format!("odata.maxpagesize={}", delta::PAGE_SIZE);
        let mut url = from.to_string();
        let mut changes = Vec::new();
        let mut pages = 0u32;
        loop {
            let a = self
                .client
                .send(
                    token,
                    "GET",
                    &url,
                    &[("Prefer", prefer.as_str())],
                    b"",
                    MAX_JSON_BYTES,
                    Overflow::Fail,
                )
                .await?;
            if a.response.status == 410 {
                return Ok(Delta::Expired);
            }
            if !a.response.is_success() {
                let r = Refusal::parse(a.response.status, &a.response.body);
                if r.code.eq_ignore_ascii_case("SyncStateNotFound")
                    || r.code.eq_ignore_ascii_case("SyncStateInvalid")
                    || r.code.eq_ignore_ascii_case("ResyncRequired")
                {
                    return Ok(Delta::Expired);
                }
                return Err(self.refused(&r, &doing, token));
            }
            let page = delta::parse_page(&a.response.body)?;
            pages += 1;
            changes.extend(page.changes);
            if let Some(link) = page.delta {
                log::debug!(
                    "mailbox {}: delta round of {pages} page(s), {} change(s)",
                    self.mailbox,
                    changes.len()
                );
                return Ok(Delta::Done {
                    changes,
                    link: self.client.relative(&link)?,
                });
            }
            let next = page.next.expect("checked by parse_page");
            url = self.client.relative(&next)?;
            if pages > 100_000 {
                return Err(protocol(&doing, "more than 100000 pages"));
            }
        }
    }

    /// The MIME source of message `id`; larger than `max` bytes: only its header section.
    pub async fn source(&self, token: &Secret, id: &str, max: usize) -> Result<Source> {
        let path = format!("{}/messages/{}/$value", self.user, segment(id));
        let a = self
            .client
            .send(token, "GET", &path, &[], b"", max, Overflow::KeepHeader)
            .await?;
        if a.response.is_success() {
            return Ok(Source::Mime {
                raw: a.response.body,
                truncated: a.truncated,
            });
        }
        let r = Refusal::parse(a.response.status, &a.response.body);
        if r.is_not_found() && !r.code.eq_ignore_ascii_case("MailboxNotEnabledForRESTAPI") {
            return Ok(Source::Gone);
        }
        Err(self.refused(
            &r,
            &format!("the message source of {}", self.mailbox),
            token,
        ))
    }

    /// Marks read, moves (to the folder id `dest`) or deletes the messages `ids` in batches of
    /// 20. Messages already gone count as done. Returns how many were gone.
    pub async fn ack(
        &self,
        token: &Secret,
        ids: &[String],
        how: &AfterProcessing,
        dest: Option<&str>,
    ) -> Result<usize> {
        let mut gone = 0;
        for chunk in ids.chunks(batch::MAX_REQUESTS) {
            let mut todo: Vec<usize> = (0..chunk.len()).collect();
            let mut rounds = 0;
            while !todo.is_empty() {
                rounds += 1;
                let requests: Vec<batch::Request> = todo
                    .iter()
                    .map(|&i| {
                        let m = format!("{}/messages/{}", &self.user[5..], segment(&chunk[i]));
                        match how {
                            AfterProcessing::MarkRead => batch::Request {
                                method: "PATCH",
                                url: m,
                                body: Some("{\"isRead\":true}".into()),
                            },
                            AfterProcessing::Move { .. } => batch::Request {
                                method: "POST",
                                url: format!("{m}/move"),
                                body: Some(format!(
                                    "{{\"destinationId\":{}}}",
                                    json::quote(dest.unwrap_or_default())
                                )),
                            },
                            AfterProcessing::Delete => batch::Request {
                                method: "DELETE",
                                url: m,
                                body: None,
                            },
                        }
                    })
                    .collect();
                let body = batch::encode(&requests);
                let doing = format!("acknowledging messages of {} ($batch)", self.mailbox);
                let a = self
                    .client
                    .send(
                        token,
                        "POST",
                        "/v1.0/$batch",
                        &[],
                        body.as_bytes(),
                        MAX_JSON_BYTES,
                        Overflow::Fail,
                    )
                    .await?;
                if !a.response.is_success() {
                    let r = Refusal::parse(a.response.status, &a.response.body);
                    return Err(self.refused(&r, &doing, token));
                }
                let answers = batch::decode(&a.response.body, requests.len())?;
                let mut again = Vec::new();
                let mut wait = Duration::ZERO;
                for (k, ans) in answers.iter().enumerate() {
                    let i = todo[k];
                    if (200..300).contains(&ans.status) {
                        continue;
                    }
                    let r = Refusal::from_value(ans.status, ans.body.as_ref());
                    if r.is_not_found() {
                        log::info!(
                            "mailbox {}: a message was moved or deleted by someone else before it was acknowledged (skipped)",
                            self.mailbox
                        );
                        gone += 1;
                        continue;
                    }
                    if r.is_throttled() && rounds <= 6 {
                        let w = client::retry_after(ans.retry_after.as_deref())
                            .unwrap_or(Duration::from_secs(1 << rounds));
                        wait = wait.max(w.min(Duration::from_secs(120)));
                        again.push(i);
                        continue;
                    }
                    if r.is_token_refused() {
                        return Err(self.refused(&r, &doing, token));
                    }
                    return Err(self.refused(&r, &doing, token));
                }
                if !again.is_empty() {
                    let wait = wait.mul_f64(self.client.retry_scale);
                    log::warn!(
                        "mailbox {}: {} acknowledgement(s) throttled; again in {} s",
                        self.mailbox,
                        again.len(),
                        wait.as_secs_f64()
                    );
                    smol::Timer::after(wait).await;
                }
                todo = again;
            }
        }
        Ok(gone)
    }

    /// The folder's counts for `test`: `(display name, total, unread)`.
    pub async fn folder_counts(&self, token: &Secret, id: &str) -> Result<(String, u64, u64)> {
        let v = self
            .get_json(
                token,
                &format!(
                    "{}/mailFolders/{}?$select=displayName,totalItemCount,unreadItemCount",
                    self.user,
                    segment(id)
                ),
                &format!("reading the folder of {}", self.mailbox),
            )
            .await?;
        let n = |k: &str| match json::get(&v, k) {
            Some(crate::json::Value::Number(n)) => n.as_u64().unwrap_or(0),
            _ => 0,
        };
        Ok((
            json::get_str(&v, "displayName")
                .unwrap_or_default()
                .to_string(),
            n("totalItemCount"),
            n("unreadItemCount"),
        ))
    }
}

fn protocol(doing: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::Protocol,
        format!("Microsoft Graph, {doing}: {why}"),
    )
}

fn parse_json(body: &[u8], doing: &str) -> Result<crate::json::Value> {
    let text = std::str::from_utf8(body).map_err(|_| protocol(doing, "answer is not UTF-8"))?;
    crate::json::parse(text).map_err(|e| protocol(doing, &format!("answer is not JSON ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_token_permissions() {
        assert_eq!(segment("AAMk/a+b=="), "AAMk%2Fa%2Bb%3D%3D");
        assert_eq!(segment("help@contoso.com"), "help@contoso.com");
        use base64::Engine;
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let t = Secret::new(format!(
            "{}.{}.sig",
            enc("{\"alg\":\"RS256\"}"),
            enc("{\"aud\":\"https://graph.microsoft.com\",\"roles\":[\"Mail.ReadWrite\"]}")
        ));
        assert_eq!(
            token_permissions(&t),
            Some(vec!["Mail.ReadWrite".to_string()])
        );
        let t = Secret::new(format!(
            "{}.{}.sig",
            enc("{}"),
            enc("{\"scp\":\"Mail.ReadWrite.Shared User.Read\"}")
        ));
        assert_eq!(
            token_permissions(&t),
            Some(vec!["Mail.ReadWrite.Shared".into(), "User.Read".into()])
        );
        assert_eq!(token_permissions(&Secret::new("opaque".to_string())), None);
    }
}
