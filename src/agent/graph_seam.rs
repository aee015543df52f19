//! The Graph side of the transport seam: the same [`Agent`] operations (sync the pending list,
//! fetch a batch, acknowledge, test, wait) over Microsoft Graph instead of an IMAP session.
//!
//! Graph messages get local UIDs (counted out by `high_water`), so `pending`, `in_flight`,
//! batches and partial acknowledgements work exactly as for IMAP; the state maps each pending
//! UID to its Graph id and keeps the delta link. A delta round's changes, the new UIDs and the
//! new delta link are saved in one atomic state write.

use super::{now_unix, Agent, Batch, Report, Step, STATE_VERSION};
use crate::config::{AfterProcessing, Flow};
use crate::error::{Error, ErrorKind, Result};
use crate::graph::{Delta, Remote, Source};
use crate::secret::Secret;
use crate::state::{self, GraphId, GraphKnown, GraphState, MailboxState};
use crate::ticket::{self, Ticket};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long before the newest `receivedDateTime` a changed message may have arrived and still
/// be new (delivery and replication delays): changes to older messages are not new mail.
pub(super) const MARGIN_SECS: u64 = 2 * 86_400;
/// Bytes of mail fetched for one batch at most (a single larger message comes alone).
const BATCH_BYTES: u64 = 32 * 1024 * 1024;

/// The Graph connection of an agent: the endpoint and the resolved folder ids.
pub(super) struct GraphLink {
    pub(super) remote: Remote,
    folder_id: Option<String>,
    dest_id: Option<String>,
}

impl GraphLink {
    pub(super) fn new(remote: Remote) -> GraphLink {
        GraphLink {
            remote,
            folder_id: None,
            dest_id: None,
        }
    }

    /// Whether the folder was opened (the seam's "connected").
    pub(super) fn is_connected(&self) -> bool {
        self.folder_id.is_some()
    }
}

/// How a delta round's changes are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// No state yet: only unread mail.
    FirstContact,
    /// From the stored delta link: every new message.
    Incremental,
    /// The link expired (or the folder changed): unread or recent mail not known yet;
    /// dedupe keys suppress what was delivered already.
    Recovery,
}

/// Decides which changes are new mail, updates `g` (known set, watermark) and returns the ids
/// to take, in order. Pure, for tests.
fn judge(
    g: &mut GraphState,
    changes: &[crate::graph::Change],
    round: Round,
    last_success: u64,
) -> Vec<String> {
    let pending: HashSet<&str> = g.ids.iter().map(|p| p.id.as_str()).collect();
    let known: HashSet<String> = g.known.iter().map(|k| k.id.clone()).collect();
    let newest = changes
        .iter()
        .filter_map(|c| c.received)
        .max()
        .unwrap_or(0)
        .max(g.watermark);
    let floor = g.watermark.saturating_sub(MARGIN_SECS);
    let recover_since = last_success.saturating_sub(86_400);
    let mut take = Vec::new();
    let mut seen_now: HashSet<&str> = HashSet::new();
    let mut remember = Vec::new();
    for c in changes {
        if c.removed || !seen_now.insert(c.id.as_str()) {
            continue;
        }
        if pending.contains(c.id.as_str()) || known.contains(&c.id) {
            continue;
        }
        let received = c.received.unwrap_or(newest);
        let new = match round {
            Round::FirstContact => !c.is_read,
            Round::Incremental => received >= floor,
            Round::Recovery => {
                !c.is_read || received >= floor.max(1) || received >= recover_since.max(1)
            }
        };
        if new {
            take.push(c.id.clone());
        }
        remember.push(GraphKnown {
            id: c.id.clone(),
            received,
        });
    }
    g.watermark = newest;
    let floor = newest.saturating_sub(MARGIN_SECS);
    let taken: HashSet<&str> = take.iter().map(String::as_str).collect();
    g.known.extend(
        remember
            .into_iter()
            .filter(|k| k.received >= floor || taken.contains(k.id.as_str())),
    );
    let pending_now: HashSet<String> = g
        .ids
        .iter()
        .map(|p| p.id.clone())
        .chain(take.iter().cloned())
        .collect();
    g.known
        .retain(|k| k.received >= floor || pending_now.contains(&k.id));
    take
}

impl Agent {
    pub(super) fn graph_folder(&self) -> &str {
        &self.mailbox.graph.folder
    }

    /// An access token, renewed once when Graph refused the previous one.
    async fn graph_token(&mut self, renew: bool) -> Result<Secret> {
        let tokens = self.tokens.as_mut().ok_or_else(|| {
            Error::config(
                "oauth.enabled",
                "transport \"graph\" needs OAuth 2.0 (oauth.enabled true)",
            )
        })?;
        if renew {
            log::info!(
                "mailbox {}: Microsoft Graph refused the access token; renewing it once",
                self.mailbox.name
            );
            tokens.invalidate_and_refresh().await
        } else {
            tokens.access_token().await
        }
    }

    /// Resolves the folder (and the processed folder) unless done.
    pub(super) async fn graph_ensure(&mut self) -> Result<()> {
        if self.graph.as_ref().is_some_and(|g| g.folder_id.is_some()) {
            return Ok(());
        }
        let folder = self.mailbox.graph.folder.clone();
        let dest = match &self.mailbox.after_processing {
            AfterProcessing::Move { processed_folder } => Some(processed_folder.clone()),
            _ => None,
        };
        let mut renew = false;
        loop {
            let token = self.graph_token(renew).await?;
            let link = self.graph.as_ref().expect("graph transport");
            let r: Result<(String, Option<String>)> = async {
                let f = link.remote.folder_id(&token, &folder).await?;
                let d = match &dest {
                    Some(d) => Some(link.remote.folder_id(&token, d).await?),
                    None => None,
                };
                Ok((f, d))
            }
            .await;
            match r {
                Err(e) if e.kind() == ErrorKind::GraphTokenRejected && !renew => renew = true,
                Err(e) => return Err(e),
                Ok((f, d)) => {
                    log::info!(
                        "mailbox {}: Microsoft Graph {}: folder {folder:?} opened",
                        self.mailbox.name,
                        link.remote.client().base()
                    );
                    let link = self.graph.as_mut().expect("graph transport");
                    link.folder_id = Some(f);
                    link.dest_id = d;
                    return Ok(());
                }
            }
        }
    }

    /// Runs a delta round from the stored link (or a new one) and adds new mail to `pending`.
    pub(super) async fn graph_sync(&mut self) -> Result<()> {
        self.graph_ensure().await?;
        let folder_name = self.graph_folder().to_string();
        let folder_id = self
            .graph
            .as_ref()
            .and_then(|g| g.folder_id.clone())
            .expect("ensured");
        let known = self
            .state
            .as_ref()
            .filter(|s| s.folder == folder_name && s.graph.is_some())
            .cloned();
        if let Some(s) = &known {
            if !s.pending.iter().all(|u| self.in_flight.contains(u)) {
                // Pending mail first; the next round comes when it is handed out.
                return Ok(());
            }
        }
        let (mut state, mut round) = match known {
            Some(s) => {
                let g = s.graph.as_ref().expect("filtered");
                let round = if g.folder_id != folder_id || g.delta_link.is_empty() {
                    Round::Recovery
                } else {
                    Round::Incremental
                };
                (s, round)
            }
            None => {
                let delivered = self.state.take().map(|o| o.delivered).unwrap_or_default();
                (
                    MailboxState {
                        version: STATE_VERSION,
                        folder: folder_name.clone(),
                        uid_validity: 0,
                        high_water: 0,
                        pending: Vec::new(),
                        delivered,
                        last_success: 0,
                        graph: Some(GraphState {
                            folder_id: folder_id.clone(),
                            ..Default::default()
                        }),
                    },
                    Round::FirstContact,
                )
            }
        };
        let mut renew = false;
        let (changes, link) = loop {
            let from = {
                let g = state.graph.as_ref().expect("graph state");
                let link = self.graph.as_ref().expect("graph transport");
                if round == Round::Incremental {
                    g.delta_link.clone()
                } else {
                    link.remote.delta_start(&folder_id)
                }
            };
            let token = self.graph_token(renew).await?;
            let link = self.graph.as_ref().expect("graph transport");
            match link.remote.delta(&token, &from).await {
                Ok(Delta::Done { changes, link }) => break (changes, link),
                Ok(Delta::Expired) if round == Round::Incremental => {
                    log::warn!(
                        "mailbox {}: the delta link of {folder_name} expired (HTTP 410); starting a new round, duplicates are suppressed by dedupe keys",
                        self.mailbox.name
                    );
                    round = Round::Recovery;
                }
                Ok(Delta::Expired) => return Err(Error::new(
                    ErrorKind::GraphRefused,
                    "Microsoft Graph answered HTTP 410 (sync state not found) to a new delta round",
                )),
                Err(e) if e.kind() == ErrorKind::GraphTokenRejected && !renew => renew = true,
                Err(e) => return Err(e),
            }
        };
        let last_success = state.last_success;
        let g = state.graph.as_mut().expect("graph state");
        g.folder_id = folder_id;
        let take = judge(g, &changes, round, last_success);
        g.delta_link = link;
        for id in &take {
            state.high_water = state.high_water.saturating_add(1);
            let uid = state.high_water;
            state.pending.push(uid);
            state
                .graph
                .as_mut()
                .expect("graph state")
                .ids
                .push(GraphId {
                    uid,
                    id: id.clone(),
                });
        }
        match round {
            Round::FirstContact if take.is_empty() => log::info!(
                "mailbox {}: first contact with {folder_name}: no unread mail",
                self.mailbox.name
            ),
            Round::FirstContact => log::info!(
                "mailbox {}: {} unread message(s) in {folder_name} to turn into tickets",
                self.mailbox.name,
                take.len()
            ),
            _ if !take.is_empty() => log::info!(
                "mailbox {}: {} new message(s) in {folder_name} ({} change(s) in the delta round)",
                self.mailbox.name,
                take.len(),
                changes.len()
            ),
            _ => log::debug!(
                "mailbox {}: no new mail in {folder_name} ({} change(s))",
                self.mailbox.name,
                changes.len()
            ),
        }
        let changed = self.state.as_ref() != Some(&state);
        self.state = Some(state);
        if changed && !self.read_only {
            state::save(&self.paths.state, self.state.as_ref().expect("just set"))?;
        }
        Ok(())
    }

    /// Forgets pending UIDs whose messages are gone from the server.
    fn graph_forget(&mut self, gone: &[u32]) -> Result<()> {
        if gone.is_empty() {
            return Ok(());
        }
        log::info!(
            "mailbox {}: {} message(s) moved or deleted elsewhere before they were fetched",
            self.mailbox.name,
            gone.len()
        );
        let state = self.state.as_mut().expect("synced");
        state.pending.retain(|u| !gone.contains(u));
        if let Some(g) = state.graph.as_mut() {
            g.ids.retain(|p| !gone.contains(&p.uid));
        }
        if !self.read_only {
            state::save(&self.paths.state, state)?;
        }
        Ok(())
    }

    /// [`Agent::fetch`] over Graph: `$value` of up to `max` pending messages, four at a time.
    pub(super) async fn graph_fetch(&mut self, max: usize) -> Result<Batch> {
        self.graph_ensure().await?;
        self.graph_sync().await?;
        let limit = max.min(self.mailbox.batch_size as usize);
        let state = self.state.as_ref().expect("synced");
        let ids: HashMap<u32, String> = state
            .graph
            .as_ref()
            .map(|g| g.ids.iter().map(|p| (p.uid, p.id.clone())).collect())
            .unwrap_or_default();
        let candidates: Vec<(u32, String)> = state
            .pending
            .iter()
            .copied()
            .filter(|u| !self.in_flight.contains(u))
            .filter_map(|u| ids.get(&u).map(|id| (u, id.clone())))
            .take(limit)
            .collect();
        // A pending UID without an id (a damaged state) would never settle: drop it.
        let orphans: Vec<u32> = state
            .pending
            .iter()
            .copied()
            .filter(|u| !ids.contains_key(u))
            .collect();
        self.graph_forget(&orphans)?;
        let seq = self.next_seq;
        let mut batch = Batch {
            agent_id: self.id,
            seq,
            uid_validity: 0,
            uids: Vec::new(),
            settled_by: Vec::new(),
            keys: Vec::new(),
            tickets: Vec::new(),
            raw: Vec::new(),
        };
        if candidates.is_empty() {
            return Ok(batch);
        }
        let too_big = self.max_message_bytes();
        let max_bytes = usize::try_from(too_big).unwrap_or(usize::MAX);
        let mut arrived: Vec<(u32, String, Vec<u8>, bool)> = Vec::new();
        let mut gone = Vec::new();
        let mut bytes = 0u64;
        let mut renew = false;
        let mut i = 0;
        while i < candidates.len() {
            if !arrived.is_empty() && bytes >= BATCH_BYTES {
                break;
            }
            let group =
                &candidates[i..(i + crate::graph::client::MAX_CONCURRENT).min(candidates.len())];
            let token = self.graph_token(renew).await?;
            let link = self.graph.as_ref().expect("graph transport");
            let results = futures::future::join_all(
                group
                    .iter()
                    .map(|(_, id)| link.remote.source(&token, id, max_bytes)),
            )
            .await;
            if !renew
                && results
                    .iter()
                    .any(|r| matches!(r, Err(e) if e.kind() == ErrorKind::GraphTokenRejected))
            {
                renew = true;
                continue;
            }
            for ((uid, id), r) in group.iter().zip(results) {
                match r? {
                    Source::Gone => gone.push(*uid),
                    Source::Mime { raw, truncated } => {
                        bytes += raw.len() as u64;
                        arrived.push((*uid, id.clone(), raw, truncated));
                    }
                }
            }
            i += group.len();
        }
        self.graph_forget(&gone)?;
        let mut received = 0usize;
        let folder = self.graph_folder().to_string();
        let mut built: Vec<(u32, Ticket, Option<Vec<u8>>)> = Vec::with_capacity(arrived.len());
        for (uid, id, raw, truncated) in arrived {
            received += raw.len();
            self.bytes_read += raw.len() as u64;
            let mut ticket = match ticket::build(&raw, &self.options) {
                Ok(t) => t,
                Err(e) => ticket::unreadable(&raw, &self.options.mailbox, &e),
            };
            if truncated {
                ticket.warnings.push(format!(
                    "message exceeds {too_big} bytes: only its header was fetched; open it in the mailbox"
                ));
            }
            ticket.delivery_id = Some(format!("{folder}:graph:{id}"));
            if !self.attachment_bytes {
                for a in &mut ticket.attachments {
                    a.data = Vec::new();
                }
            }
            let raw = self.mailbox.keep_raw.then_some(raw);
            built.push((uid, ticket, raw));
        }
        self.admit(&mut batch, built, "message");
        debug_assert_eq!(batch.seq, seq);
        log::info!(
            "mailbox {}: fetched {} ticket(s) from {} message(s), {received} bytes (Microsoft Graph)",
            self.mailbox.name,
            batch.tickets.len(),
            batch.uids.len()
        );
        Ok(batch)
    }

    /// [`Agent::ack_tickets`] over Graph: dedupe keys saved first, then the `$batch`
    /// acknowledgement, then `pending` and the id map.
    pub(super) async fn graph_ack(&mut self, batch: &Batch, count: usize) -> Result<()> {
        let done: Vec<u32> = batch
            .uids
            .iter()
            .zip(&batch.settled_by)
            .filter(|(_, by)| by.is_none_or(|i| i < count))
            .map(|(u, _)| *u)
            .collect();
        {
            let state = self.state.as_mut().expect("a batch implies state");
            for key in &batch.keys[..count] {
                state.remember_delivered(key);
            }
            state::save(&self.paths.state, state)?;
        }
        if !done.is_empty() {
            self.graph_ensure().await?;
            let ids: Vec<String> = {
                let g = self
                    .state
                    .as_ref()
                    .and_then(|s| s.graph.as_ref())
                    .expect("graph state");
                done.iter()
                    .filter_map(|u| g.ids.iter().find(|p| p.uid == *u).map(|p| p.id.clone()))
                    .collect()
            };
            let how = self.mailbox.after_processing.clone();
            let mut renew = false;
            loop {
                let token = self.graph_token(renew).await?;
                let link = self.graph.as_ref().expect("graph transport");
                match link
                    .remote
                    .ack(&token, &ids, &how, link.dest_id.as_deref())
                    .await
                {
                    Err(e) if e.kind() == ErrorKind::GraphTokenRejected && !renew => renew = true,
                    Err(e) => return Err(e),
                    Ok(_) => break,
                }
            }
        }
        let state = self.state.as_mut().expect("a batch implies state");
        state.pending.retain(|u| !done.contains(u));
        if let Some(g) = state.graph.as_mut() {
            g.ids.retain(|p| !done.contains(&p.uid));
        }
        state.last_success = now_unix();
        state::save(&self.paths.state, state)?;
        self.finish(batch);
        self.log_ack(batch, done.len(), count);
        Ok(())
    }

    /// Waits `poll_interval_secs` (at most `max_wait`) or until `stop`: Graph is polled by
    /// delta query (change notifications need a public HTTPS endpoint; see the README).
    pub(super) async fn graph_wait(
        &mut self,
        max_wait: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<crate::imap::Wake> {
        use futures::FutureExt;
        let interval = Duration::from_secs(self.mailbox.poll_interval_secs).min(max_wait);
        futures::select_biased! {
            _ = stop.fuse() => Ok(crate::imap::Wake::Stopped),
            _ = smol::Timer::after(interval).fuse() => Ok(crate::imap::Wake::Timeout),
        }
    }

    /// The connection test over Graph: token, endpoint (TLS), mailbox, folder, changes.
    pub(super) async fn graph_test(&mut self, on_step: &mut dyn FnMut(&Step)) -> Report {
        let mut report = Report::default();
        let names = ["token", "connect", "mailbox", "folder", "delta"];
        let mut push = |report: &mut Report,
                        name: &'static str,
                        start: Instant,
                        r: std::result::Result<String, Error>|
         -> bool {
            let step = match r {
                Ok(detail) => Step {
                    name,
                    ok: Some(true),
                    duration: start.elapsed(),
                    detail,
                    fix: None,
                    kind: None,
                },
                Err(e) => Step {
                    name,
                    ok: Some(false),
                    duration: start.elapsed(),
                    detail: e.message().to_string(),
                    fix: e.fix().map(str::to_string),
                    kind: Some(e.kind()),
                },
            };
            let ok = step.ok == Some(true);
            on_step(&step);
            report.steps.push(step);
            ok
        };
        let flow = match self.mailbox.oauth.flow {
            Flow::Password => "password",
            Flow::ClientCredentials => "client_credentials",
            Flow::DeviceCode => "device_code",
        };
        if let Some(link) = self.graph.as_mut() {
            link.folder_id = None;
        }
        let t = Instant::now();
        let token = match self.tokens.as_mut() {
            Some(tokens) => tokens.verify_credentials().await,
            None => Err(Error::config(
                "oauth.enabled",
                "transport \"graph\" needs OAuth 2.0",
            )),
        };
        let ok = push(
            &mut report,
            "token",
            t,
            token.as_ref().map(|(t, what)| {
                let perms = crate::graph::token_permissions(t)
                    .map(|p| format!("; permissions: {}", if p.is_empty() { "none".to_string() } else { p.join(" ") }))
                    .unwrap_or_default();
                format!("{what} accepted: new Microsoft Graph access token issued ({flow} flow){perms}")
            })
            .map_err(Clone::clone),
        );
        let mut failed = !ok;
        let token = token.ok().map(|(t, _)| t);
        let email = self.mailbox.email.clone();
        let folder = self.mailbox.graph.folder.clone();
        if let (false, Some(token)) = (failed, token) {
            let link = self.graph.as_ref().expect("graph transport");
            let remote = &link.remote;
            // connect: the inbox's well-known folder proves TLS, token audience and mailbox
            // access at once; split by what failed.
            let t = Instant::now();
            let inbox = remote.folder_id(&token, "inbox").await;
            let (connect, mailbox) = match &inbox {
                Ok(_) => (Ok(()), Ok(())),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Connect
                            | ErrorKind::Timeout
                            | ErrorKind::Tls
                            | ErrorKind::Certificate
                            | ErrorKind::Protocol
                            | ErrorKind::ConnectionClosed
                    ) =>
                {
                    (Err(e.clone()), Ok(()))
                }
                Err(e) => (Ok(()), Err(e.clone())),
            };
            let base = remote.client().base().to_string();
            failed = !push(
                &mut report,
                "connect",
                t,
                connect.map(|_| {
                    format!("HTTPS connection to {base} (certificate and host name verified)")
                }),
            );
            if !failed {
                failed = !push(
                    &mut report,
                    "mailbox",
                    t,
                    mailbox.map(|_| {
                        format!(
                            "{email} opened as {}",
                            match remote.access() {
                                crate::graph::Access::AppOnly => "the application (app-only)",
                                crate::graph::Access::DelegatedShared =>
                                    "a delegate (shared mailbox)",
                                crate::graph::Access::Delegated => "its user",
                            }
                        )
                    }),
                );
            }
            let mut folder_id = None;
            if !failed {
                let t = Instant::now();
                let r: Result<(String, (String, u64, u64))> = async {
                    let id = remote.folder_id(&token, &folder).await?;
                    let counts = remote.folder_counts(&token, &id).await?;
                    Ok((id, counts))
                }
                .await;
                failed = !push(
                    &mut report,
                    "folder",
                    t,
                    r.as_ref()
                        .map(|(_, (name, total, unread))| {
                            format!("{folder} ({name}): {total} messages, {unread} unread")
                        })
                        .map_err(Clone::clone),
                );
                folder_id = r.ok().map(|(id, _)| id);
            }
            if let (false, Some(id)) = (failed, folder_id) {
                let t = Instant::now();
                // One page proves the delta query works; the round itself is left to fetch.
                let r = remote.delta(&token, &remote.delta_start(&id)).await;
                failed = !push(
                    &mut report,
                    "delta",
                    t,
                    r.map(|d| match d {
                        Delta::Done { changes, .. } => {
                            format!(
                                "delta query answered ({} message(s) in the folder)",
                                changes.iter().filter(|c| !c.removed).count()
                            )
                        }
                        Delta::Expired => "delta query answered".to_string(),
                    }),
                );
            }
        }
        if failed {
            for name in names.iter().skip(report.steps.len()) {
                let step = Step {
                    name,
                    ok: None,
                    duration: Duration::ZERO,
                    detail: "skipped".into(),
                    fix: None,
                    kind: None,
                };
                on_step(&step);
                report.steps.push(step);
            }
        }
        match report.failure() {
            None => log::info!(
                "mailbox {}: connection test passed (Microsoft Graph)",
                self.mailbox.name
            ),
            Some(f) => log::warn!(
                "mailbox {}: connection test failed at step {}: {}{}",
                self.mailbox.name,
                f.name,
                f.detail,
                f.fix
                    .as_deref()
                    .map(|x| format!(" (fix: {x})"))
                    .unwrap_or_default()
            ),
        }
        report
    }
}

/// The token scopes and resource for a Graph mailbox: the endpoint's host, or the global
/// Graph resource for a loopback stand-in.
pub(super) fn graph_scopes(endpoint: &str) -> (String, String) {
    let resource = match crate::http::Url::parse(endpoint) {
        Ok(u) if !crate::net::is_loopback_host(&u.host) => format!("https://{}", u.authority()),
        _ => crate::oauth::GRAPH_RESOURCE.to_string(),
    };
    crate::oauth::graph_scopes(&resource)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Change;

    fn c(id: &str, received: u64, is_read: bool) -> Change {
        Change {
            id: id.into(),
            received: Some(received),
            is_read,
            removed: false,
        }
    }

    #[test]
    fn first_contact_takes_unread_then_everything_new() {
        let t0 = 1_800_000_000;
        let mut g = GraphState::default();
        let take = judge(
            &mut g,
            &[
                c("old-read", t0 - 900_000, true),
                c("unread", t0 - 10, false),
                c("read", t0, true),
            ],
            Round::FirstContact,
            0,
        );
        assert_eq!(take, vec!["unread"]);
        assert_eq!(g.watermark, t0);
        // Our own mark-read of "unread" comes back as a change: not new.
        g.ids.push(GraphId {
            uid: 1,
            id: "unread".into(),
        });
        let take = judge(
            &mut g,
            &[
                c("unread", t0 - 10, true),
                c("new-read", t0 + 5, true),
                c("new", t0 + 6, false),
            ],
            Round::Incremental,
            0,
        );
        assert_eq!(take, vec!["new-read", "new"]);
        g.ids.clear();
        // Changes to old mail (flagged, marked unread) are not new; known recent mail neither.
        let take = judge(
            &mut g,
            &[
                c("old-read", t0 - 900_000, false),
                c("read", t0, false),
                c("new", t0 + 6, true),
            ],
            Round::Incremental,
            0,
        );
        assert!(take.is_empty(), "{take:?}");
        let removed = Change {
            id: "x".into(),
            received: None,
            is_read: false,
            removed: true,
        };
        assert!(judge(&mut g, &[removed], Round::Incremental, 0).is_empty());
    }

    #[test]
    fn recovery_takes_unread_and_recent_not_known() {
        let t0 = 1_800_000_000;
        let mut g = GraphState {
            watermark: t0,
            known: vec![GraphKnown {
                id: "done".into(),
                received: t0,
            }],
            ..Default::default()
        };
        let take = judge(
            &mut g,
            &[
                c("done", t0, true),
                c("old-unread", t0 - 900_000, false),
                c("old-read", t0 - 900_000, true),
                c("recent-read", t0 - 100, true),
            ],
            Round::Recovery,
            t0,
        );
        assert_eq!(take, vec!["old-unread", "recent-read"]);
        // Known entries stay bounded to the margin.
        assert!(g
            .known
            .iter()
            .all(|k| k.received + MARGIN_SECS >= g.watermark || k.id == "old-unread"));
    }
}
