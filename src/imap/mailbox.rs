//! An authenticated IMAP session: select the folder, find messages, fetch their bytes in
//! bounded batches, and acknowledge (mark read, move, delete).

use super::connect::Capabilities;
use super::map_err;
use super::stream::MailStream;
use crate::error::{Error, ErrorKind, Result};
use crate::net::with_timeout;
use crate::ticket::RawSource;
use async_imap::imap_proto::{AttributeValue, MailboxDatum, Response, Status};
use futures::TryStreamExt;
use std::sync::Arc;
use std::time::Duration;

/// A selected folder's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// The folder's name as configured.
    pub name: String,
    /// UIDVALIDITY: when it changes, every UID the agent remembered is void.
    pub uid_validity: u32,
    /// UIDNEXT, when the server reports it.
    pub uid_next: Option<u32>,
    /// Number of messages.
    pub exists: u32,
}

/// One fetched message.
#[derive(Debug, Clone)]
pub struct FetchedMessage {
    /// Its UID in the selected folder.
    pub uid: u32,
    /// Flags as the server reported them (`\Seen`, ...).
    pub flags: Vec<String>,
    /// RFC822.SIZE.
    pub size: u32,
    /// The raw message (or only its header when it was too large to fetch whole).
    pub raw: Vec<u8>,
    /// Whether `raw` is only the header.
    pub header_only: bool,
}

/// A message as [`Session::fetch_with`] hands it over, borrowed from the read buffer.
pub struct Arrived<'a> {
    /// Its UID in the selected folder.
    pub uid: u32,
    /// RFC822.SIZE.
    pub size: u32,
    /// The raw message (or only its header when it was too large to fetch whole).
    pub raw: &'a [u8],
    /// Whether `raw` is only the header.
    pub header_only: bool,
    flags: Vec<String>,
    /// For a large message: the response that holds `raw`, which a ticket may keep a share
    /// of (see [`crate::ticket::build_shared`]) instead of a decoded copy of its attachments.
    pub shared: Option<Arc<dyn RawSource>>,
}

/// Messages from this size on are handed over with [`Arrived::shared`].
const SHARE_FROM: usize = 1024 * 1024;

/// A FETCH response kept whole, its message as a [`crate::ticket::RawSource`].
struct HeldResponse<T> {
    response: T,
    body: for<'a> fn(&'a T) -> &'a [u8],
}

impl<T: Send + Sync> RawSource for HeldResponse<T> {
    fn raw(&self) -> &[u8] {
        (self.body)(&self.response)
    }
}

/// The message bytes (BODY[] section) of a FETCH response.
fn fetched_body<'a>(r: &'a Response<'_>) -> &'a [u8] {
    match r {
        Response::Fetch(_, attrs) => attrs
            .iter()
            .find_map(|a| match a {
                AttributeValue::BodySection { data: Some(d), .. } => Some(&d[..]),
                _ => None,
            })
            .unwrap_or(&[]),
        _ => &[],
    }
}

impl Arrived<'_> {
    /// Flags as the server reported them (`\Seen`, ...).
    pub fn flags(&self) -> Vec<String> {
        self.flags.clone()
    }

    /// An owned copy.
    pub fn to_owned(&self) -> FetchedMessage {
        FetchedMessage {
            uid: self.uid,
            flags: self.flags(),
            size: self.size,
            raw: self.raw.to_vec(),
            header_only: self.header_only,
        }
    }
}

/// An authenticated session.
pub struct Session {
    inner: async_imap::Session<MailStream>,
    capabilities: Capabilities,
    timeout: Duration,
    /// The server reported EXISTS or RECENT since [`Session::take_news`] was last called: new
    /// mail may have arrived that a later IDLE would not announce again.
    news: bool,
}

/// Formats UIDs (ascending or not) as a compact IMAP sequence set: `1:3,7,9:10`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

impl Session {
    pub(crate) fn new(
        inner: async_imap::Session<MailStream>,
        capabilities: Capabilities,
        timeout: Duration,
    ) -> Self {
        Session {
            inner,
            capabilities,
            timeout,
            news: false,
        }
    }

    /// The capabilities announced before authentication.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn drain_unsolicited(&mut self) {
        use async_imap::types::UnsolicitedResponse as U;
        while let Ok(r) = self.inner.unsolicited_responses.try_recv() {
            if matches!(r, U::Exists(_) | U::Recent(_)) {
                self.news = true;
            }
        }
    }

    /// Runs `command` and reads every response up to its tagged completion, handing each
    /// untagged one to `on_untagged`. async-imap's FETCH/STORE/EXPUNGE streams end quietly when
    /// the connection closes and ignore a tagged NO; here a close before the completion, a BYE
    /// and a NO/BAD are errors, so an acknowledgement is never taken for done when it was not.
    async fn run_checked(
        &mut self,
        command: &str,
        mut on_untagged: impl FnMut(&Response<'_>),
    ) -> Result<()> {
        self.run_checked_sharing(command, usize::MAX, |r, _| on_untagged(r))
            .await
    }

    /// Like [`Session::run_checked`]; a FETCH response carrying a message of `share_from` bytes
    /// or more is kept whole and handed over with a share of it as well.
    async fn run_checked_sharing(
        &mut self,
        command: &str,
        share_from: usize,
        mut on_untagged: impl FnMut(&Response<'_>, Option<&Arc<dyn RawSource>>),
    ) -> Result<()> {
        let id = self
            .inner
            .run_command(command)
            .await
            .map_err(|e| map_err(command, e))?;
        loop {
            let resp = self
                .inner
                .read_response()
                .await
                .map_err(|e| super::stream_error(command, e))?
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::ConnectionClosed,
                        format!("{command}: the server closed the connection before it answered"),
                    )
                })?;
            match resp.parsed() {
                Response::Done {
                    tag,
                    status,
                    outcome,
                } if *tag == id => {
                    return match status {
                        Status::Ok => Ok(()),
                        Status::Bad => Err(map_err(
                            command,
                            async_imap::error::Error::Bad(format!("{outcome:?}")),
                        )),
                        _ => Err(map_err(
                            command,
                            async_imap::error::Error::No(format!("{outcome:?}")),
                        )),
                    };
                }
                Response::Data {
                    status: Status::Bye,
                    outcome,
                } => {
                    return Err(Error::new(
                        ErrorKind::ServerUnavailable,
                        format!(
                            "{command}: the server ended the session (BYE {})",
                            super::bounded(outcome.information.as_deref().unwrap_or(""), 300)
                        ),
                    ));
                }
                Response::MailboxData(MailboxDatum::Exists(_) | MailboxDatum::Recent(_)) => {
                    self.news = true;
                }
                other if fetched_body(other).len() < share_from => on_untagged(other, None),
                _ => {
                    let held = Arc::new(HeldResponse {
                        response: resp,
                        body: |r| fetched_body(r.parsed()),
                    });
                    let shared: Arc<dyn RawSource> = held.clone();
                    on_untagged(held.response.parsed(), Some(&shared));
                }
            }
        }
    }

    /// Whether the server announced new messages (EXISTS, RECENT) in a response since the last
    /// call; clears the flag. Checked before IDLE, which would not announce them again.
    pub fn take_news(&mut self) -> bool {
        self.drain_unsolicited();
        std::mem::take(&mut self.news)
    }

    /// Refreshes the capabilities (servers may announce more after authentication).
    pub async fn refresh_capabilities(&mut self) -> Result<()> {
        let caps = with_timeout(self.timeout, "CAPABILITY", async {
            self.inner
                .capabilities()
                .await
                .map_err(|e| map_err("CAPABILITY", e))
        })
        .await?;
        let mut names = Vec::new();
        for c in caps.iter() {
            use async_imap::types::Capability as C;
            names.push(match c {
                C::Imap4rev1 => "IMAP4REV1".to_string(),
                C::Auth(a) => format!("AUTH={}", a.to_ascii_uppercase()),
                C::Atom(a) => a.to_ascii_uppercase(),
            });
        }
        self.capabilities = Capabilities::from_names(names);
        Ok(())
    }

    /// SELECT `folder`. A folder that does not exist is a clear error listing the folders there are.
    pub async fn select(&mut self, folder: &str) -> Result<Folder> {
        let what = format!("SELECT {folder}");
        let res = with_timeout(self.timeout, &what, async {
            Ok(self.inner.select(folder).await)
        })
        .await?;
        self.drain_unsolicited();
        match res {
            Ok(mb) => {
                let uid_validity = mb.uid_validity.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Protocol,
                        format!("{what}: the server sent no UIDVALIDITY"),
                    )
                })?;
                Ok(Folder {
                    name: folder.to_string(),
                    uid_validity,
                    uid_next: mb.uid_next,
                    exists: mb.exists,
                })
            }
            Err(async_imap::error::Error::No(text)) => {
                let known = self.folder_names().await.unwrap_or_default();
                let detail = super::server_text(&text);
                let mut err = Error::new(
                    ErrorKind::FolderNotFound,
                    format!("folder {folder:?} cannot be opened: {detail}"),
                );
                err = if known.is_empty() {
                    err.with_fix("check the Search Folder name (usually INBOX)")
                } else {
                    err.with_fix(format!(
                        "check the Search Folder name; this mailbox has: {}",
                        known.join(", ")
                    ))
                };
                Err(err)
            }
            Err(e) => Err(map_err(&what, e)),
        }
    }

    /// The names of all folders (LIST "" "*").
    pub async fn folder_names(&mut self) -> Result<Vec<String>> {
        let names = with_timeout(self.timeout, "LIST", async {
            let stream = self
                .inner
                .list(Some(""), Some("*"))
                .await
                .map_err(|e| map_err("LIST", e))?;
            let names: Vec<_> = stream.try_collect().await.map_err(|e| map_err("LIST", e))?;
            Ok(names
                .iter()
                .map(|n| n.name().to_string())
                .collect::<Vec<_>>())
        })
        .await?;
        self.drain_unsolicited();
        Ok(names)
    }

    /// CREATE `folder` (an existing one is fine).
    pub async fn create_folder(&mut self, folder: &str) -> Result<()> {
        let what = format!("CREATE {folder}");
        let res = with_timeout(self.timeout, &what, async {
            Ok(self.inner.create(folder).await)
        })
        .await?;
        match res {
            Ok(()) => Ok(()),
            Err(async_imap::error::Error::No(t))
                if t.to_ascii_uppercase().contains("ALREADYEXISTS") =>
            {
                Ok(())
            }
            Err(e) => Err(map_err(&what, e)),
        }
    }

    /// UID SEARCH `query`, ascending.
    pub async fn search(&mut self, query: &str) -> Result<Vec<u32>> {
        let what = format!("UID SEARCH {query}");
        let mut uids: Vec<u32> = Vec::new();
        with_timeout(self.timeout, &what, async {
            self.run_checked(&what, |r| {
                if let Response::MailboxData(MailboxDatum::Search(ids)) = r {
                    uids.extend(ids);
                }
            })
            .await
        })
        .await?;
        self.drain_unsolicited();
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// RFC822.SIZE of each of `uids` that still exists.
    pub async fn sizes(&mut self, uids: &[u32]) -> Result<Vec<(u32, u32)>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        let what = format!("UID FETCH {set} (UID RFC822.SIZE)");
        let mut out: Vec<(u32, u32)> = Vec::new();
        with_timeout(self.timeout, &what, async {
            self.run_checked(&what, |r| {
                if let Response::Fetch(_, attrs) = r {
                    let uid = attrs.iter().find_map(|a| match a {
                        AttributeValue::Uid(u) => Some(*u),
                        _ => None,
                    });
                    let size = attrs.iter().find_map(|a| match a {
                        AttributeValue::Rfc822Size(s) => Some(*s),
                        _ => None,
                    });
                    if let Some(uid) = uid {
                        out.push((uid, size.unwrap_or(0)));
                    }
                }
            })
            .await
        })
        .await?;
        self.drain_unsolicited();
        out.retain(|(uid, _)| uids.contains(uid));
        out.sort_unstable();
        Ok(out)
    }

    /// UID FETCH the whole messages `uids` (BODY.PEEK[], so nothing is marked read). Messages
    /// deleted meanwhile are simply absent from the result. `expected_bytes` widens the timeout
    /// for large batches.
    pub async fn fetch(
        &mut self,
        uids: &[u32],
        expected_bytes: u64,
    ) -> Result<Vec<FetchedMessage>> {
        let mut out = Vec::with_capacity(uids.len());
        self.fetch_with(uids, expected_bytes, |m| out.push(m.to_owned()))
            .await?;
        out.sort_by_key(|m| m.uid);
        Ok(out)
    }

    /// UID FETCH only the header of `uids` (for messages too large to carry).
    pub async fn fetch_headers(&mut self, uids: &[u32]) -> Result<Vec<FetchedMessage>> {
        let mut out = Vec::with_capacity(uids.len());
        self.fetch_headers_with(uids, |m| out.push(m.to_owned()))
            .await?;
        out.sort_by_key(|m| m.uid);
        Ok(out)
    }

    /// Like [`Session::fetch`], but hands every message to `on_message` as it arrives, borrowed
    /// from the read buffer: the caller works on one message while the server sends the next,
    /// and no batch of raw messages is ever held. Each UID is handed over at most once, in the
    /// server's order.
    pub async fn fetch_with(
        &mut self,
        uids: &[u32],
        expected_bytes: u64,
        on_message: impl FnMut(Arrived<'_>),
    ) -> Result<()> {
        self.fetch_items(
            uids,
            "(UID FLAGS RFC822.SIZE BODY.PEEK[])",
            expected_bytes,
            false,
            on_message,
        )
        .await
    }

    /// Like [`Session::fetch_headers`], handing every header over as it arrives.
    pub async fn fetch_headers_with(
        &mut self,
        uids: &[u32],
        on_message: impl FnMut(Arrived<'_>),
    ) -> Result<()> {
        self.fetch_items(
            uids,
            "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER])",
            0,
            true,
            on_message,
        )
        .await
    }

    async fn fetch_items(
        &mut self,
        uids: &[u32],
        items: &str,
        expected_bytes: u64,
        header_only: bool,
        mut on_message: impl FnMut(Arrived<'_>),
    ) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let set = uid_set(uids);
        let what = format!("UID FETCH {set}");
        // A slow link still moves 256 KiB/s; beyond that the timeout is the configured one.
        let limit = self.timeout + Duration::from_secs(expected_bytes / (256 * 1024));
        // The server announced the sizes: a literal far beyond them is refused as it is
        // announced, before anything is buffered (servers' RFC822.SIZE may be a little off).
        let max_literal = if header_only {
            16 * 1024 * 1024
        } else {
            expected_bytes
                .saturating_mul(2)
                .saturating_add(super::stream::DEFAULT_MAX_LITERAL)
        };
        self.inner.get_mut().set_max_literal(max_literal);
        let command = format!("UID FETCH {set} {items}");
        let mut seen = std::collections::BTreeSet::new();
        let r = with_timeout(limit, &what, async {
            let share_from = if header_only { usize::MAX } else { SHARE_FROM };
            self.run_checked_sharing(&command, share_from, |r, shared| {
                let Response::Fetch(_, attrs) = r else { return };
                let mut uid = None;
                let mut size = None;
                let mut flags = Vec::new();
                let mut raw: Option<&[u8]> = None;
                for a in attrs {
                    match a {
                        AttributeValue::Uid(u) => uid = Some(*u),
                        AttributeValue::Rfc822Size(s) => size = Some(*s),
                        AttributeValue::Flags(f) => {
                            flags = f.iter().map(|x| flag_name(x)).collect()
                        }
                        AttributeValue::BodySection { data: Some(d), .. } => raw = Some(d),
                        _ => {}
                    }
                }
                // `UID n:*` semantics, an unsolicited FETCH (flags) for another message, or a
                // repeated one.
                let (Some(uid), Some(raw)) = (uid, raw) else {
                    return;
                };
                if !uids.contains(&uid) || !seen.insert(uid) {
                    return;
                }
                on_message(Arrived {
                    uid,
                    size: size.unwrap_or(raw.len() as u32),
                    raw,
                    header_only,
                    flags,
                    shared: shared.cloned(),
                });
            })
            .await
        })
        .await;
        self.inner
            .get_mut()
            .set_max_literal(super::stream::DEFAULT_MAX_LITERAL);
        r?;
        self.drain_unsolicited();
        Ok(())
    }

    async fn store(&mut self, uids: &[u32], change: &str) -> Result<()> {
        let set = uid_set(uids);
        let what = format!("UID STORE {set} {change}");
        with_timeout(self.timeout, &what, async {
            self.run_checked(&what, |_| ()).await
        })
        .await?;
        self.drain_unsolicited();
        Ok(())
    }

    /// Sets \Seen on `uids`.
    pub async fn mark_seen(&mut self, uids: &[u32]) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        self.store(uids, "+FLAGS.SILENT (\\Seen)").await
    }

    /// Moves `uids` to `target`, creating it when missing. Uses MOVE where offered, else
    /// COPY + \Deleted + expunge of just these UIDs.
    pub async fn move_to(&mut self, uids: &[u32], target: &str) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        match self.move_once(uids, target).await {
            Err(e) if e.message().to_ascii_uppercase().contains("TRYCREATE") => {
                self.create_folder(target).await?;
                self.move_once(uids, target).await
            }
            other => other,
        }
    }

    async fn move_once(&mut self, uids: &[u32], target: &str) -> Result<()> {
        let set = uid_set(uids);
        if self.capabilities.has("MOVE") {
            let what = format!("UID MOVE {set} {target}");
            with_timeout(self.timeout, &what, async {
                self.inner
                    .uid_mv(&set, target)
                    .await
                    .map_err(|e| map_err(&what, e))
            })
            .await?;
        } else {
            let what = format!("UID COPY {set} {target}");
            with_timeout(self.timeout, &what, async {
                self.inner
                    .uid_copy(&set, target)
                    .await
                    .map_err(|e| map_err(&what, e))
            })
            .await?;
            self.delete(uids).await?;
        }
        self.drain_unsolicited();
        Ok(())
    }

    /// Sets \Deleted on `uids` and expunges them (only them, where UIDPLUS allows).
    pub async fn delete(&mut self, uids: &[u32]) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        self.store(uids, "+FLAGS.SILENT (\\Deleted)").await?;
        let set = uid_set(uids);
        let what = if self.capabilities.has("UIDPLUS") {
            format!("UID EXPUNGE {set}")
        } else {
            "EXPUNGE".to_string()
        };
        with_timeout(self.timeout, &what, async {
            self.run_checked(&what, |_| ()).await
        })
        .await?;
        self.drain_unsolicited();
        Ok(())
    }

    /// NOOP: keeps the connection alive and lets the server report news.
    pub async fn noop(&mut self) -> Result<()> {
        with_timeout(self.timeout, "NOOP", async {
            self.inner.noop().await.map_err(|e| map_err("NOOP", e))
        })
        .await?;
        self.drain_unsolicited();
        Ok(())
    }

    /// LOGOUT, best effort.
    pub async fn logout(mut self) {
        let _ = with_timeout(Duration::from_secs(5), "LOGOUT", async {
            self.inner.logout().await.map_err(|e| map_err("LOGOUT", e))
        })
        .await;
    }

    /// Hands out the async-imap session (for IDLE).
    pub fn into_inner(self) -> (async_imap::Session<MailStream>, Capabilities, Duration) {
        (self.inner, self.capabilities, self.timeout)
    }

    /// Rebuilds a session from its parts (after IDLE).
    pub fn from_parts(
        inner: async_imap::Session<MailStream>,
        capabilities: Capabilities,
        timeout: Duration,
    ) -> Self {
        Session::new(inner, capabilities, timeout)
    }
}

/// A flag as the agent reports it (`Seen`, `Deleted`, or the keyword itself), matching
/// async-imap's `Flag` Debug form used before.
fn flag_name(raw: &str) -> String {
    match raw.strip_prefix('\\') {
        Some(system) => {
            let mut c = system.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => raw.to_string(),
            }
        }
        None => format!("Custom({raw:?})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_names() {
        assert_eq!(flag_name("\\Seen"), "Seen");
        assert_eq!(flag_name("\\SEEN"), "Seen");
        assert_eq!(flag_name("$Label1"), "Custom(\"$Label1\")");
    }

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[10, 9, 9, 1]), "1,9:10");
        assert_eq!(uid_set(&[]), "");
    }
}
