//! An authenticated IMAP session: select the folder, find messages, fetch their bytes in
//! bounded batches, and acknowledge (mark read, move, delete).

use super::connect::Capabilities;
use super::map_err;
use super::stream::MailStream;
use crate::error::{Error, ErrorKind, Result};
use crate::net::with_timeout;
use futures::TryStreamExt;
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
        let set = with_timeout(self.timeout, &what, async {
            self.inner
                .uid_search(query)
                .await
                .map_err(|e| map_err(&what, e))
        })
        .await?;
        self.drain_unsolicited();
        let mut uids: Vec<u32> = set.into_iter().collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// RFC822.SIZE of each of `uids` that still exists.
    pub async fn sizes(&mut self, uids: &[u32]) -> Result<Vec<(u32, u32)>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        let what = format!("UID FETCH {set} (RFC822.SIZE)");
        let mut out = with_timeout(self.timeout, &what, async {
            let stream = self
                .inner
                .uid_fetch(&set, "(UID RFC822.SIZE)")
                .await
                .map_err(|e| map_err(&what, e))?;
            let fetches: Vec<_> = stream.try_collect().await.map_err(|e| map_err(&what, e))?;
            Ok(fetches
                .iter()
                .filter_map(|f| Some((f.uid?, f.size.unwrap_or(0))))
                .collect::<Vec<_>>())
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
        self.fetch_items(
            uids,
            "(UID FLAGS RFC822.SIZE BODY.PEEK[])",
            expected_bytes,
            false,
        )
        .await
    }

    /// UID FETCH only the header of `uids` (for messages too large to carry).
    pub async fn fetch_headers(&mut self, uids: &[u32]) -> Result<Vec<FetchedMessage>> {
        self.fetch_items(uids, "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER])", 0, true)
            .await
    }

    async fn fetch_items(
        &mut self,
        uids: &[u32],
        items: &str,
        expected_bytes: u64,
        header_only: bool,
    ) -> Result<Vec<FetchedMessage>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        let what = format!("UID FETCH {set}");
        // A slow link still moves 256 KiB/s; beyond that the timeout is the configured one.
        let limit = self.timeout + Duration::from_secs(expected_bytes / (256 * 1024));
        let mut out = with_timeout(limit, &what, async {
            let mut stream = self
                .inner
                .uid_fetch(&set, items)
                .await
                .map_err(|e| map_err(&what, e))?;
            let mut out = Vec::with_capacity(uids.len());
            while let Some(f) = stream.try_next().await.map_err(|e| map_err(&what, e))? {
                let Some(uid) = f.uid else { continue };
                if !uids.contains(&uid) {
                    // `UID n:*` semantics or an unsolicited FETCH for another message.
                    continue;
                }
                let raw = if header_only { f.header() } else { f.body() };
                let Some(raw) = raw else { continue };
                let flags = f.flags().map(|fl| format!("{fl:?}")).collect();
                out.push(FetchedMessage {
                    uid,
                    flags,
                    size: f.size.unwrap_or(raw.len() as u32),
                    raw: raw.to_vec(),
                    header_only,
                });
            }
            Ok(out)
        })
        .await?;
        self.drain_unsolicited();
        out.sort_by_key(|m| m.uid);
        out.dedup_by_key(|m| m.uid);
        Ok(out)
    }

    async fn store(&mut self, uids: &[u32], change: &str) -> Result<()> {
        let set = uid_set(uids);
        let what = format!("UID STORE {set} {change}");
        with_timeout(self.timeout, &what, async {
            let stream = self
                .inner
                .uid_store(&set, change)
                .await
                .map_err(|e| map_err(&what, e))?;
            let _: Vec<_> = stream.try_collect().await.map_err(|e| map_err(&what, e))?;
            Ok(())
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
        if self.capabilities.has("UIDPLUS") {
            let what = format!("UID EXPUNGE {set}");
            with_timeout(self.timeout, &what, async {
                let stream = self
                    .inner
                    .uid_expunge(&set)
                    .await
                    .map_err(|e| map_err(&what, e))?;
                let _: Vec<_> = stream.try_collect().await.map_err(|e| map_err(&what, e))?;
                Ok(())
            })
            .await?;
        } else {
            with_timeout(self.timeout, "EXPUNGE", async {
                let stream = self
                    .inner
                    .expunge()
                    .await
                    .map_err(|e| map_err("EXPUNGE", e))?;
                let _: Vec<_> = stream
                    .try_collect()
                    .await
                    .map_err(|e| map_err("EXPUNGE", e))?;
                Ok(())
            })
            .await?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[10, 9, 9, 1]), "1,9:10");
        assert_eq!(uid_set(&[]), "");
    }
}
