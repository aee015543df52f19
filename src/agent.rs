//! One mailbox, end to end: test the connection step by step, fetch tickets in bounded batches,
//! and acknowledge them on the server only after they were delivered.
//!
//! Delivery guarantee: a message leaves `pending` (and is marked read, moved or deleted on the
//! server) only in [`Agent::ack`], which the caller invokes after the batch's tickets were
//! delivered. Dedupe keys are persisted before the server is touched, so a crash between
//! delivery and acknowledgement re-delivers nothing the agent knows it delivered.

use crate::config::{AfterProcessing, Encryption, Flow, Mailbox};
use crate::error::{Error, ErrorKind, Result};
use crate::imap::{self, auth::Credentials, Folder, Greeted, Session, Target};
use crate::secret::Secret;
use crate::state::{self, MailboxLock, MailboxState, StatePaths};
use crate::ticket::{self, ThreadIndex, Ticket, TicketOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const STATE_VERSION: u32 = 1;
/// How many sent Message-IDs the thread index remembers per mailbox.
const THREAD_MEMORY: usize = 50_000;
/// Bytes fetched in one UID FETCH at most (a single larger message is fetched alone).
const BATCH_BYTES: u64 = 32 * 1024 * 1024;
/// Batches whose message sizes are asked for in one round trip (at most 1000 UIDs).
const SIZE_LOOKAHEAD: usize = 8;

static NEXT_AGENT_ID: AtomicU64 = AtomicU64::new(1);

// The Graph side of the transport seam (`transport: "graph"`).
mod graph_seam;

/// A batch of tickets handed to the caller; give it back to [`Agent::ack`] once delivered.
#[derive(Debug)]
pub struct Batch {
    agent_id: u64,
    seq: u64,
    uid_validity: u32,
    /// UIDs acknowledged with this batch (including those whose ticket was suppressed as a
    /// duplicate of one delivered before).
    uids: Vec<u32>,
    /// For each of `uids`: the ticket whose delivery settles it (its own, or the one in this
    /// batch with the same dedupe key), or `None` when its dedupe key was delivered before.
    settled_by: Vec<Option<usize>>,
    /// Dedupe keys of the tickets in this batch.
    keys: Vec<String>,
    /// The tickets, in UID order.
    pub tickets: Vec<Ticket>,
    /// The raw RFC 822 message of each ticket (only the header of one too large to fetch),
    /// when the mailbox has `keep_raw`; else empty.
    pub raw: Vec<Vec<u8>>,
}

impl Batch {
    /// Number of tickets.
    pub fn len(&self) -> usize {
        self.tickets.len()
    }

    /// Whether the batch holds no ticket (it may still acknowledge suppressed duplicates).
    pub fn is_empty(&self) -> bool {
        self.tickets.is_empty()
    }

    /// Whether there is nothing to acknowledge either.
    pub fn is_void(&self) -> bool {
        self.uids.is_empty()
    }

    /// Messages acknowledged with this batch (tickets and suppressed duplicates).
    pub fn message_count(&self) -> usize {
        self.uids.len()
    }

    /// The raw message of ticket `i`, when the mailbox keeps them (`keep_raw`).
    pub fn raw(&self, i: usize) -> Option<&[u8]> {
        self.raw.get(i).map(Vec::as_slice)
    }
}

/// One step of a connection test.
#[derive(Debug, Clone)]
pub struct Step {
    /// `tenant` (only when the tenant is discovered from the address), `token`, `connect`,
    /// `tls`, `capabilities`, `authenticate`, `select`.
    pub name: &'static str,
    /// `Some(true)` passed, `Some(false)` failed, `None` skipped after an earlier failure.
    pub ok: Option<bool>,
    /// How long it took.
    pub duration: Duration,
    /// What was found (success) or what went wrong (failure).
    pub detail: String,
    /// What the administrator should do (failures).
    pub fix: Option<String>,
    /// The error kind (failures).
    pub kind: Option<ErrorKind>,
}

/// The result of [`Agent::test_connection`].
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every step in order.
    pub steps: Vec<Step>,
    /// The mailbox's credentials and how long they last (refresh token, client secret,
    /// certificate): expiring ones are warned about, they do not make the report unhealthy.
    pub credentials: Vec<crate::oauth::lifetimes::Credential>,
}

impl Report {
    /// Whether every step passed.
    pub fn healthy(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.ok == Some(true))
    }

    /// The first failed step.
    pub fn failure(&self) -> Option<&Step> {
        self.steps.iter().find(|s| s.ok == Some(false))
    }
}

/// The agent for one mailbox.
pub struct Agent {
    id: u64,
    mailbox: Mailbox,
    paths: StatePaths,
    options: TicketOptions,
    tls: std::sync::Arc<futures_rustls::rustls::ClientConfig>,
    tokens: Option<crate::oauth::TokenProvider>,
    session: Option<(Session, Folder)>,
    state: Option<MailboxState>,
    in_flight: BTreeSet<u32>,
    next_seq: u64,
    outstanding: Vec<u64>,
    read_only: bool,
    attachment_bytes: bool,
    /// Sizes of pending messages asked for ahead of their batch, under one UIDVALIDITY.
    size_cache: (u32, BTreeMap<u32, u32>),
    /// Bytes of mail read from the server over this agent's life (metrics).
    bytes_read: u64,
    /// Microsoft Graph instead of IMAP (`transport: "graph"`).
    graph: Option<graph_seam::GraphLink>,
    _lock: Option<MailboxLock>,
}

/// An IDLE the server ended after at least this long counts as a normal wake, not a failure.
const IDLE_END_IS_NORMAL_AFTER: Duration = Duration::from_secs(20);

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Agent {
    /// An agent for `mailbox` keeping its state under `state_dir`. Takes the mailbox's lock.
    pub fn new(mailbox: Mailbox, state_dir: PathBuf) -> Result<Self> {
        let paths = StatePaths::new(&state_dir, &mailbox.name);
        let lock = MailboxLock::acquire(&paths.lock, &mailbox.name)?;
        let mut agent = Agent::build(mailbox, state_dir)?;
        agent._lock = Some(lock);
        Ok(agent)
    }

    /// An agent for a caller that holds the mailbox's lock itself (taken with
    /// [`MailboxLock::acquire`] on [`StatePaths::lock`]), e.g. for a handle's whole life across
    /// rebuilds with other credentials.
    pub fn with_lock_held(
        mailbox: Mailbox,
        state_dir: PathBuf,
        _held: &MailboxLock,
    ) -> Result<Self> {
        Agent::build(mailbox, state_dir)
    }

    fn build(mailbox: Mailbox, state_dir: PathBuf) -> Result<Self> {
        let paths = StatePaths::new(&state_dir, &mailbox.name);
        state::remove_stale_temp_files(&paths);
        let state = state::load(&paths.state)?;
        let tls = crate::tls::client_config(mailbox.imap.ca_file.as_deref())?;
        let is_graph = mailbox.transport == crate::config::Transport::Graph;
        let tokens = if mailbox.oauth.enabled {
            let mut options = crate::oauth::ProviderOptions {
                cache_path: Some(paths.token_cache.clone()),
                tenant_cache: Some(paths.tenant.clone()),
                // App-only tokens have no user: the mailbox's own address names the tenant.
                discovery_address: (mailbox.oauth.flow == Flow::ClientCredentials)
                    .then(|| mailbox.email.clone()),
                timeout: Duration::from_secs(mailbox.imap.timeout_secs),
                ca_file: mailbox.imap.ca_file.clone(),
                sign_in_command: format!(
                    "psa-mail-agent login --config <config file> --mailbox {:?}",
                    mailbox.name
                ),
                ..Default::default()
            };
            if is_graph {
                options.scopes = Some(graph_seam::graph_scopes(&mailbox.graph.endpoint));
            }
            Some(crate::oauth::TokenProvider::new(
                &mailbox.oauth,
                &mailbox.username,
                mailbox.password.clone(),
                options,
            )?)
        } else {
            None
        };
        let options = ticket_options(&mailbox, &paths)?;
        let graph = if is_graph {
            Some(graph_seam::GraphLink::new(crate::graph::Remote::new(
                &mailbox,
            )?))
        } else {
            None
        };
        Ok(Agent {
            id: NEXT_AGENT_ID.fetch_add(1, Ordering::Relaxed),
            mailbox,
            paths,
            options,
            tls,
            tokens,
            session: None,
            state,
            in_flight: BTreeSet::new(),
            next_seq: 1,
            outstanding: Vec::new(),
            read_only: false,
            attachment_bytes: true,
            bytes_read: 0,
            size_cache: (0, BTreeMap::new()),
            graph,
            _lock: None,
        })
    }

    /// Replaces the mailbox password (from a host's vault). Tokens obtained with another one
    /// are dropped, and the open connection too: the next call signs in with this password.
    pub fn set_password(&mut self, password: Secret) {
        self.mailbox.password = Some(password.clone());
        if let Some(t) = self.tokens.as_mut() {
            t.set_password(Some(password));
        }
        self.session = None;
    }

    /// Replaces the OAuth client secret, like [`Agent::set_password`].
    pub fn set_client_secret(&mut self, client_secret: Secret) {
        self.mailbox.oauth.client_secret = Some(client_secret.clone());
        if let Some(t) = self.tokens.as_mut() {
            t.set_client_secret(Some(client_secret));
        }
        self.session = None;
    }

    /// Drops the connection without a goodbye, after an operation was abandoned half-way (its
    /// future dropped): the protocol state of the connection is unknown. Local state stays
    /// consistent: an unfinished fetch hands nothing out, an unfinished acknowledgement leaves
    /// its batch unacknowledged (it may be acknowledged again).
    pub fn abandon_session(&mut self) {
        if self.session.take().is_some() {
            log::debug!(
                "mailbox {}: connection dropped after an interrupted operation",
                self.mailbox.name
            );
        }
    }

    /// Whether messages are known to be waiting that no batch has handed out yet (released
    /// from a batch freed without acknowledgement, or beyond what the last fetch took).
    pub fn has_unfetched(&self) -> bool {
        self.state
            .as_ref()
            .is_some_and(|s| s.pending.iter().any(|u| !self.in_flight.contains(u)))
    }

    /// Looks at the server now (connecting when needed) for mail no batch has handed out yet:
    /// what is already waiting before a wait for new mail begins.
    pub async fn check_pending(&mut self) -> Result<bool> {
        let r = async {
            self.ensure_session().await?;
            self.sync_pending().await?;
            // The search just covered whatever the server announced before it.
            if let Some((session, _)) = self.session.as_mut() {
                session.take_news();
            }
            Ok(self.has_unfetched())
        }
        .await;
        if let Err(e) = &r {
            self.on_error(e);
        }
        r
    }

    /// The mailbox settings.
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    /// Remembers that the helpdesk sent a mail with `message_id` for `ticket_number`, so a reply
    /// that keeps only In-Reply-To/References (with an edited subject) is threaded to that
    /// ticket. The map is bounded (least recently used entries go) and persisted under state_dir.
    pub fn register_sent(&mut self, message_id: &str, ticket_number: &str) -> Result<()> {
        let index = self.options.thread_index.as_ref().expect("set in new");
        if !index.insert(message_id, ticket_number) {
            return Err(Error::new(
                ErrorKind::Config,
                "register_sent: the Message-ID and ticket number must be non-empty, on one line",
            ));
        }
        state::write_atomic(&self.paths.threads, &index.save())
    }

    /// In read-only mode nothing is acknowledged on the server and no state is written
    /// (`fetch --no-ack`).
    pub fn set_read_only(&mut self, read_only: bool) {
        self.read_only = read_only;
    }

    /// Whether tickets keep their attachments' bytes (`Attachment::data`; default true). Only
    /// the C API hands bytes over; outputs that write JSON turn this off, so a batch holds
    /// attachment metadata only and memory stays bounded by the largest single message.
    pub fn set_attachment_bytes(&mut self, keep: bool) {
        self.attachment_bytes = keep;
        self.options.attachment_bytes = keep;
    }

    /// Bytes of mail (message sources) read from the server since this agent was made.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Tokens obtained from the identity platform since this agent was made.
    pub fn token_grants(&self) -> u64 {
        self.tokens.as_ref().map_or(0, |t| t.grants())
    }

    /// The mailbox's credentials and how long they last at `now` (Unix seconds): see
    /// [`crate::oauth::lifetimes`].
    pub fn credentials(&self, now: u64) -> Vec<crate::oauth::lifetimes::Credential> {
        crate::oauth::lifetimes::credentials(&self.mailbox, &self.paths.token_cache, now)
    }

    /// The token provider, for sign-in (`login`) and diagnosis.
    pub fn tokens(&mut self) -> Option<&mut crate::oauth::TokenProvider> {
        self.tokens.as_mut()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.mailbox.imap.timeout_secs)
    }

    fn target(&self) -> Target {
        Target {
            server: self.mailbox.imap.server.clone(),
            port: self.mailbox.imap.port,
            encryption: self.mailbox.imap.encryption,
            timeout: self.timeout(),
            tls: self.tls.clone(),
        }
    }

    /// The address XOAUTH2 names: the shared mailbox, the mailbox itself for app-only tokens,
    /// else the signing-in user.
    fn oauth_user(&self) -> &str {
        if self.mailbox.oauth.shared_mailbox || self.mailbox.oauth.flow == Flow::ClientCredentials {
            &self.mailbox.email
        } else {
            &self.mailbox.username
        }
    }

    async fn access_token(&mut self) -> Result<Secret> {
        match self.tokens.as_mut() {
            Some(t) => t.access_token().await,
            None => Err(Error::new(
                ErrorKind::Internal,
                "OAuth is not enabled for this mailbox",
            )),
        }
    }

    /// Authenticates a greeted connection: LOGIN, or XOAUTH2 with one token renewal when the
    /// server refuses a token the identity platform issued (expired or revoked server-side).
    async fn authenticate(&mut self, greeted: Greeted, token: Option<Secret>) -> Result<Session> {
        let encrypted = greeted.client.get_ref().is_encrypted();
        let allow_plain = self.mailbox.imap.allow_plaintext;
        let timeout = self.timeout();
        let Some(token) = token else {
            let password = self.mailbox.password.clone().ok_or_else(|| {
                Error::config(
                    format!("mailboxes[{}].password", self.mailbox.name),
                    "required for LOGIN",
                )
            })?;
            let creds = Credentials::Login {
                username: &self.mailbox.username,
                password: &password,
            };
            return imap::auth::into_result(
                imap::auth::authenticate(greeted, creds, encrypted, allow_plain, timeout).await,
            );
        };
        let user = self.oauth_user().to_string();
        let exchange = greeted.is_exchange();
        if !greeted.capabilities.has("AUTH=XOAUTH2") {
            return Err(Error::new(
                ErrorKind::ImapOAuthRejected,
                format!("{} does not offer AUTH=XOAUTH2", self.mailbox.imap.server),
            )
            .with_fix("OAuth 2.0 needs a server offering XOAUTH2 (outlook.office365.com does)"));
        }
        let first = imap::auth::authenticate(
            greeted,
            Credentials::XOAuth2 {
                user: &user,
                token: &token,
            },
            encrypted,
            allow_plain,
            timeout,
        )
        .await;
        let failure = match first {
            Ok(session) => return Ok(session),
            Err(f) if f.error.kind() == ErrorKind::ImapOAuthRejected => f,
            Err(f) => return Err(f.error),
        };
        log::info!(
            "mailbox {}: the server refused the access token; renewing it once",
            self.mailbox.name
        );
        let renewed = match self.tokens.as_mut() {
            Some(t) => t.invalidate_and_refresh().await?,
            None => return Err(failure.error),
        };
        let greeted = match failure.retry_on {
            Some(g) => g,
            None => imap::connect::connect(&self.target()).await?,
        };
        let encrypted = greeted.client.get_ref().is_encrypted();
        match imap::auth::authenticate(
            greeted,
            Credentials::XOAuth2 {
                user: &user,
                token: &renewed,
            },
            encrypted,
            allow_plain,
            timeout,
        )
        .await
        {
            Ok(session) => Ok(session),
            Err(f) if f.error.kind() == ErrorKind::ImapOAuthRejected => {
                Err(self.diagnose_rejection(f.error, exchange))
            }
            Err(f) => Err(f.error),
        }
    }

    /// A token the identity platform issued was refused twice by IMAP: say why in admin terms.
    /// Exchange Online (`exchange`: it greeted as Microsoft Exchange) refuses a fresh token only
    /// when IMAP is off for the mailbox or the organization, or the token lacks the IMAP
    /// permission; a missing Full Access or grant shows later, as "authenticated but not
    /// connected" (see [`Agent::diagnose_not_connected`]). Other servers may check access to a
    /// shared mailbox at sign-in.
    fn diagnose_rejection(&self, e: Error, exchange: bool) -> Error {
        let m = &self.mailbox;
        let app_only = m.oauth.flow == Flow::ClientCredentials;
        let target = self.oauth_user();
        if exchange || (!app_only && !m.oauth.shared_mailbox) {
            let signer = if app_only {
                format!("the app {}", m.oauth.application_id)
            } else {
                m.username.clone()
            };
            let mailboxes = if m.oauth.shared_mailbox && !app_only {
                format!("{target} (and the delegate {})", m.username)
            } else {
                target.to_string()
            };
            let permission = if app_only {
                "App registration > API permissions > Add a permission > APIs my organization uses > \
                 Office 365 Exchange Online > Application permissions > IMAP.AccessAsApp, then \
                 Grant admin consent"
            } else {
                "App registration > API permissions > Add a permission > APIs my organization uses > \
                 Office 365 Exchange Online > Delegated permissions > IMAP.AccessAsUser.All, then \
                 Grant admin consent"
            };
            return Error::new(
                ErrorKind::ImapOAuthRejected,
                format!(
                    "{}; the identity platform had just issued the token for {signer}, so IMAP is \
                     disabled for the mailbox {target} or for the whole organization, or the token \
                     lacks the IMAP permission, or no mailbox has the address {target}",
                    e.message()
                ),
            )
            .with_fix(format!(
                "check IMAP for {mailboxes} in Exchange Online PowerShell: Get-CASMailbox -Identity \
                 {target} | fl ImapEnabled; turn it on with Set-CASMailbox -Identity {target} \
                 -ImapEnabled $true (or Microsoft 365 admin center > Users > Active users > the user > \
                 Mail > Manage email apps > IMAP). Organization-wide: Get-CASMailboxPlan | fl \
                 Name,ImapEnabled (the default of new mailboxes; Set-CASMailboxPlan -Identity <plan> \
                 -ImapEnabled $true) and Get-CASMailbox -ResultSize Unlimited | where {{-not \
                 $_.ImapEnabled}}. If IMAP is on, check the permission: {permission}; and the \
                 address: Get-Mailbox -Identity {target} | fl PrimarySmtpAddress. Changes take up to \
                 an hour"
            ));
        }
        if app_only {
            Error::new(
                ErrorKind::AppNotGranted,
                format!("{} (app-only token for {})", e.message(), m.email),
            )
            .with_fix(app_grant_fix(&m.oauth.application_id, &m.email))
        } else {
            Error::new(
                ErrorKind::SharedMailboxDenied,
                format!(
                    "{}: the user {} has no Full Access to {}",
                    e.message(),
                    m.username,
                    m.email
                ),
            )
            .with_fix(full_access_fix(&m.username, &m.email))
        }
    }

    /// Exchange Online's `BAD User is authenticated but not connected.` (then `BYE`) after a
    /// successful sign-in: the token was fine, but its account may not open the mailbox named in
    /// `user=`. Turns it into its causes and fixes for this mailbox's setup; other errors pass.
    fn diagnose_not_connected(&self, e: Error) -> Error {
        if !imap::is_not_connected(&e) {
            return e;
        }
        let m = &self.mailbox;
        let quoted = "Exchange answered \"User is authenticated but not connected\"";
        if m.oauth.flow == Flow::ClientCredentials {
            Error::new(
                ErrorKind::AppNotGranted,
                format!(
                    "the app-only token of {app} was accepted, but Exchange will not open {mb} for \
                     the app ({quoted}): the app's service principal is not registered in Exchange \
                     Online, or it has no permission on {mb}, or no mailbox has the address {mb}",
                    app = m.oauth.application_id,
                    mb = m.email
                ),
            )
            .with_fix(app_grant_fix(&m.oauth.application_id, &m.email))
        } else if m.oauth.shared_mailbox {
            Error::new(
                ErrorKind::SharedMailboxDenied,
                format!(
                    "{d} signed in, but Exchange will not open the shared mailbox {s} for {d} \
                     ({quoted}): {d} has no Full Access to {s}, or no mailbox has the address {s} \
                     (a typo, or an address that is not the mailbox's)",
                    d = m.username,
                    s = m.email
                ),
            )
            .with_fix(full_access_fix(&m.username, &m.email))
        } else {
            Error::new(
                ErrorKind::MailboxNotConnected,
                format!(
                    "the sign-in was accepted, but Exchange will not open the mailbox {u} for the \
                     account that signed in ({quoted}): the account that signed in is not {u} (with \
                     device code sign-in, somebody else may have approved it), or {u} has no \
                     Exchange Online mailbox, or {u} is the address of a shared mailbox",
                    u = m.username
                ),
            )
            .with_fix(format!(
                "check the mailbox: Get-Mailbox -Identity {u} | fl PrimarySmtpAddress,RecipientTypeDetails \
                 (Exchange Online PowerShell); a user needs an Exchange Online license. For a shared \
                 mailbox set Username to a delegate that signs in, tick Shared Mailbox \
                 (\"shared_mailbox\": true) and give the delegate Full Access: Add-MailboxPermission \
                 -Identity {u} -User <delegate> -AccessRights FullAccess. With device code, sign in \
                 again (psa-mail-agent login) as {u}",
                u = m.username
            ))
        }
    }

    /// Connects, authenticates and selects the search folder, unless a session is open.
    async fn ensure_session(&mut self) -> Result<()> {
        if self.graph.is_some() {
            return self.graph_ensure().await;
        }
        if self.session.is_some() {
            return Ok(());
        }
        let token = if self.tokens.is_some() {
            Some(self.access_token().await?)
        } else {
            None
        };
        let how = if token.is_some() {
            format!("XOAUTH2 as {}", self.oauth_user())
        } else {
            format!("LOGIN as {}", self.mailbox.username)
        };
        let mut session = self.connect_and_authenticate(token).await?;
        log::info!(
            "mailbox {}: connected to {}:{} ({}) and signed in ({how})",
            self.mailbox.name,
            self.mailbox.imap.server,
            self.mailbox.imap.port,
            match self.mailbox.imap.encryption {
                Encryption::Ssl => "TLS",
                Encryption::StartTls => "STARTTLS",
                Encryption::None => "no encryption",
            }
        );
        // Servers announce MOVE, UIDPLUS, IDLE... only after authentication.
        session.refresh_capabilities().await?;
        log::debug!(
            "mailbox {}: server capabilities: {}",
            self.mailbox.name,
            session.capabilities().list()
        );
        let folder = session
            .select(&self.mailbox.imap.folder)
            .await
            .map_err(|e| self.diagnose_not_connected(e))?;
        log::info!(
            "mailbox {}: selected {} (UIDVALIDITY {}, {} messages)",
            self.mailbox.name,
            folder.name,
            folder.uid_validity,
            folder.exists
        );
        self.session = Some((session, folder));
        Ok(())
    }

    /// Connects and authenticates; a server that says `[UNAVAILABLE]` (a temporary back-end
    /// problem, e.g. token introspection down) is asked again after 1 s and 3 s before the error
    /// is returned. Refusals are never retried here.
    async fn connect_and_authenticate(&mut self, token: Option<Secret>) -> Result<Session> {
        let mut backoff = [1u64, 3].into_iter();
        loop {
            log::debug!(
                "mailbox {}: connecting to {}:{}",
                self.mailbox.name,
                self.mailbox.imap.server,
                self.mailbox.imap.port
            );
            let greeted = imap::connect::connect(&self.target()).await?;
            log::debug!(
                "mailbox {}: greeted; capabilities before sign-in: {}",
                self.mailbox.name,
                greeted.capabilities.list()
            );
            match self.authenticate(greeted, token.clone()).await {
                Err(e) if e.kind() == ErrorKind::ServerUnavailable => match backoff.next() {
                    Some(secs) => {
                        log::warn!(
                            "mailbox {}: {}; trying again in {secs} s",
                            self.mailbox.name,
                            e.message()
                        );
                        smol::Timer::after(Duration::from_secs(secs)).await;
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }

    /// Drops the connection (after a network error, so the next call reconnects).
    pub async fn disconnect(&mut self) {
        if let Some((session, _)) = self.session.take() {
            session.logout().await;
        }
    }

    /// Runs `f` on the session; a transport failure drops the session so the next call reconnects.
    fn on_error(&mut self, e: &Error) {
        if matches!(
            e.kind(),
            ErrorKind::Timeout
                | ErrorKind::ConnectionClosed
                | ErrorKind::Connect
                | ErrorKind::Protocol
                | ErrorKind::Tls
                // A BYE ends the session on the server's side.
                | ErrorKind::ServerUnavailable
        ) {
            self.session = None;
            if let Some(g) = &self.graph {
                g.remote.client().reset();
            }
        }
    }

    /// Brings `pending` up to date with the server: first contact takes the unread mail,
    /// afterwards every UID above the high-water mark, and a UIDVALIDITY change rescans.
    async fn sync_pending(&mut self) -> Result<()> {
        if self.graph.is_some() {
            return self.graph_sync().await;
        }
        let folder_name = self.mailbox.imap.folder.clone();
        let (session, folder) = self.session.as_mut().expect("session ensured");
        let uid_validity = folder.uid_validity;
        let known = self
            .state
            .as_ref()
            .filter(|s| s.folder == folder_name)
            .cloned();
        let mut state = match known {
            Some(s) if s.uid_validity == uid_validity => {
                let mut s = s;
                if s.pending.iter().all(|u| self.in_flight.contains(u)) {
                    let from = s.high_water.saturating_add(1);
                    // Dovecot (and others) announce mail delivered since the last command only
                    // in a command's untagged answers; without this NOOP the SEARCH may miss it.
                    session.noop().await?;
                    let found = session.search(&format!("UID {from}:*")).await?;
                    let new: Vec<u32> = found.into_iter().filter(|u| *u > s.high_water).collect();
                    if let Some(max) = new.iter().max() {
                        s.high_water = *max;
                    }
                    s.pending.extend(new);
                }
                s
            }
            other => {
                let query = match &other {
                    None => "UNSEEN".to_string(),
                    Some(old) => {
                        log::warn!(
                            "mailbox {}: UIDVALIDITY of {} changed ({} -> {}); rescanning, duplicates are suppressed by dedupe keys",
                            self.mailbox.name, folder_name, old.uid_validity, uid_validity
                        );
                        match old.last_success {
                            0 => "ALL".to_string(),
                            t => format!("OR UNSEEN SINCE {}", imap_date(t.saturating_sub(86_400))),
                        }
                    }
                };
                let found = session.search(&query).await?;
                let all_max = session
                    .search("UID *")
                    .await?
                    .into_iter()
                    .max()
                    .unwrap_or(0);
                let high_water = found.iter().copied().max().unwrap_or(0).max(all_max);
                let delivered = other.map(|o| o.delivered).unwrap_or_default();
                if found.is_empty() {
                    log::info!(
                        "mailbox {}: first contact with {}: no unread mail",
                        self.mailbox.name,
                        folder_name
                    );
                } else {
                    log::info!(
                        "mailbox {}: {} unread message(s) in {} to turn into tickets",
                        self.mailbox.name,
                        found.len(),
                        folder_name
                    );
                }
                MailboxState {
                    version: STATE_VERSION,
                    folder: folder_name.clone(),
                    uid_validity,
                    high_water,
                    pending: found,
                    delivered,
                    last_success: 0,
                    graph: None,
                }
            }
        };
        state.pending.sort_unstable();
        state.pending.dedup();
        let changed = self.state.as_ref() != Some(&state);
        self.state = Some(state);
        if changed && !self.read_only {
            state::save(&self.paths.state, self.state.as_ref().expect("just set"))?;
        }
        Ok(())
    }

    /// Fetches up to `max` tickets (at most one bounded batch). Returns an empty batch when
    /// nothing is pending. Call [`Agent::ack`] with the batch once its tickets are delivered.
    pub async fn fetch(&mut self, max: usize) -> Result<Batch> {
        let r = self.fetch_inner(max.max(1)).await;
        if let Err(e) = &r {
            self.on_error(e);
        }
        r
    }

    async fn fetch_inner(&mut self, max: usize) -> Result<Batch> {
        if self.graph.is_some() {
            return self.graph_fetch(max).await;
        }
        self.ensure_session().await?;
        self.sync_pending().await?;
        let limit = max.min(self.mailbox.batch_size as usize);
        // The candidates are the first `limit` of `ahead`, whose sizes are asked for at once.
        let ahead: Vec<u32> = self
            .state
            .as_ref()
            .expect("synced")
            .pending
            .iter()
            .copied()
            .filter(|u| !self.in_flight.contains(u))
            .take(limit.saturating_mul(SIZE_LOOKAHEAD).min(limit.max(1000)))
            .collect();
        let candidates = &ahead[..limit.min(ahead.len())];
        let too_big = self.max_message_bytes();
        let (session, folder) = self.session.as_mut().expect("session ensured");
        let uid_validity = folder.uid_validity;
        let seq = self.next_seq;
        let mut batch = Batch {
            agent_id: self.id,
            seq,
            uid_validity,
            uids: Vec::new(),
            settled_by: Vec::new(),
            keys: Vec::new(),
            tickets: Vec::new(),
            raw: Vec::new(),
        };
        if candidates.is_empty() {
            return Ok(batch);
        }
        // Sizes are asked for several batches ahead: one round trip per SIZE_LOOKAHEAD batches
        // instead of one per batch (a message's size never changes under one UIDVALIDITY). A
        // cached size is used once: a message deleted after its size was cached is absent from
        // the FETCH, stays pending, and is asked for (and found vanished) in the next batch.
        if self.size_cache.0 != uid_validity {
            self.size_cache = (uid_validity, BTreeMap::new());
        }
        if candidates
            .iter()
            .any(|u| !self.size_cache.1.contains_key(u))
        {
            for (uid, size) in session.sizes(&ahead).await? {
                self.size_cache.1.insert(uid, size);
            }
        }
        let sizes: Vec<(u32, u32)> = candidates
            .iter()
            .filter_map(|u| self.size_cache.1.remove(u).map(|size| (*u, size)))
            .collect();
        let vanished: Vec<u32> = candidates
            .iter()
            .copied()
            .filter(|u| !sizes.iter().any(|(s, _)| s == u))
            .collect();
        let state = self.state.as_mut().expect("synced");
        forget_vanished(
            &self.mailbox.name,
            state,
            &self.paths,
            self.read_only,
            &vanished,
        )?;
        // Bounded by bytes as well as count, so memory does not grow with the mailbox.
        let mut whole = Vec::new();
        let mut headers = Vec::new();
        let mut bytes = 0u64;
        for (i, (uid, size)) in sizes.iter().enumerate() {
            let size = u64::from(*size);
            if size > too_big {
                headers.push(*uid);
                continue;
            }
            if !whole.is_empty() && bytes + size > BATCH_BYTES {
                // The rest waits for the next batch: keep their sizes for it.
                self.size_cache.1.extend(sizes[i..].iter().copied());
                break;
            }
            bytes += size;
            whole.push(*uid);
        }
        // Each ticket is built as its message arrives, from the read buffer: parsing overlaps
        // the transfer of the next messages and no batch of raw mail is held in memory.
        let mut built = Vec::with_capacity(whole.len() + headers.len());
        let mut received = 0usize;
        {
            let (options, folder_name) = (&self.options, &self.mailbox.imap.folder);
            let keep_bytes = self.attachment_bytes;
            let keep_raw = self.mailbox.keep_raw;
            let bytes_read = &mut self.bytes_read;
            let mut on_message = |msg: imap::Arrived<'_>| {
                received += msg.raw.len();
                *bytes_read += msg.raw.len() as u64;
                log::trace!(
                    "UID {}: {} bytes{}",
                    msg.uid,
                    msg.raw.len(),
                    if msg.header_only {
                        " (header only)"
                    } else {
                        ""
                    }
                );
                let mut ticket = build_ticket(options, &msg, folder_name, uid_validity, too_big);
                if !keep_bytes {
                    for a in &mut ticket.attachments {
                        a.data = Vec::new();
                        a.pending = None;
                    }
                }
                let raw = keep_raw.then(|| msg.raw.to_vec());
                built.push((msg.uid, ticket, raw));
            };
            log::debug!(
                "mailbox {}: UID FETCH of {} message(s) ({bytes} bytes) and {} header(s)",
                self.mailbox.name,
                whole.len(),
                headers.len()
            );
            session.fetch_with(&whole, bytes, &mut on_message).await?;
            session
                .fetch_headers_with(&headers, &mut on_message)
                .await?;
        }
        built.sort_by_key(|(uid, _, _)| *uid);
        // A message whose size was cached may have been deleted since: when one did not arrive,
        // ask the server, as for the candidates above.
        let missing: Vec<u32> = whole
            .iter()
            .chain(&headers)
            .copied()
            .filter(|u| built.binary_search_by_key(u, |(uid, _, _)| *uid).is_err())
            .collect();
        if !missing.is_empty() {
            let still = session.sizes(&missing).await?;
            let gone: Vec<u32> = missing
                .into_iter()
                .filter(|u| !still.iter().any(|(s, _)| s == u))
                .collect();
            let state = self.state.as_mut().expect("synced");
            forget_vanished(
                &self.mailbox.name,
                state,
                &self.paths,
                self.read_only,
                &gone,
            )?;
        }
        self.admit(&mut batch, built, "UID");
        debug_assert_eq!(batch.seq, seq);
        log::info!(
            "mailbox {}: fetched {} ticket(s) from {} message(s), {received} bytes",
            self.mailbox.name,
            batch.tickets.len(),
            batch.uids.len()
        );
        Ok(batch)
    }

    /// The one log line of an acknowledgement (IMAP and Graph alike).
    fn log_ack(&self, batch: &Batch, done: usize, count: usize) {
        let released = batch.uids.len() - done;
        log::info!(
            "mailbox {}: acknowledged {done} message(s) ({count} of {} ticket(s); after_processing {}){}",
            self.mailbox.name,
            batch.tickets.len(),
            match &self.mailbox.after_processing {
                AfterProcessing::MarkRead => "mark_read",
                AfterProcessing::Move { .. } => "move",
                AfterProcessing::Delete => "delete",
            },
            if released > 0 {
                format!("; {released} message(s) left for the next fetch")
            } else {
                String::new()
            }
        );
    }

    /// Takes built tickets into `batch` (one rule for every transport): a dedupe key delivered
    /// before is acknowledged without a ticket, and one repeated within the batch is settled by
    /// the first ticket; the batch's messages are then in flight until acknowledged.
    fn admit(&mut self, batch: &mut Batch, built: Vec<(u32, Ticket, Option<Vec<u8>>)>, what: &str) {
        let state = self.state.as_ref().expect("synced");
        for (uid, ticket, raw) in built {
            batch.uids.push(uid);
            if state.was_delivered(&ticket.dedupe_key) {
                log::info!(
                    "mailbox {}: {what} {uid} was delivered before (dedupe key known); acknowledging without a new ticket",
                    self.mailbox.name
                );
                batch.settled_by.push(None);
                continue;
            }
            if let Some(first) = batch.keys.iter().position(|k| *k == ticket.dedupe_key) {
                log::info!(
                    "mailbox {}: {what} {uid} repeats the dedupe key of another message in this batch; acknowledging without a second ticket",
                    self.mailbox.name
                );
                batch.settled_by.push(Some(first));
                continue;
            }
            batch.settled_by.push(Some(batch.tickets.len()));
            batch.keys.push(ticket.dedupe_key.clone());
            batch.tickets.push(ticket);
            if let Some(raw) = raw {
                batch.raw.push(raw);
            }
        }
        self.in_flight.extend(batch.uids.iter().copied());
        self.next_seq += 1;
        self.outstanding.push(batch.seq);
    }

    fn max_message_bytes(&self) -> u64 {
        (self.mailbox.max_attachment_bytes.saturating_mul(2)).max(64 * 1024 * 1024)
    }

    /// Acknowledges a delivered batch: remembers its dedupe keys, then marks read, moves or deletes
    /// its messages on the server, then forgets them from `pending`.
    pub async fn ack(&mut self, batch: &Batch) -> Result<()> {
        self.ack_tickets(batch, batch.tickets.len()).await
    }

    /// Acknowledges the first `count` tickets of a batch (those the caller stored before it
    /// failed), with the messages whose tickets were suppressed as duplicates of them or of
    /// tickets delivered before. The batch is then settled: the messages of its other tickets
    /// are released and handed out again by the next [`Agent::fetch`]. `count` above the
    /// batch's length is an error; 0 releases the whole batch.
    pub async fn ack_tickets(&mut self, batch: &Batch, count: usize) -> Result<()> {
        if batch.agent_id != self.id || !self.outstanding.contains(&batch.seq) {
            return Err(Error::new(
                ErrorKind::Internal,
                "this batch does not belong to this agent or was acknowledged already",
            ));
        }
        if count > batch.tickets.len() {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "cannot acknowledge {count} tickets of a batch of {}",
                    batch.tickets.len()
                ),
            ));
        }
        let r = self.ack_inner(batch, count).await;
        if let Err(e) = &r {
            self.on_error(e);
        }
        r
    }

    async fn ack_inner(&mut self, batch: &Batch, count: usize) -> Result<()> {
        if self.read_only {
            // Nothing changes on the server or on disk; the UIDs stay in flight so this agent
            // does not hand the same messages out again.
            self.outstanding.retain(|s| *s != batch.seq);
            return Ok(());
        }
        if self.graph.is_some() {
            return self.graph_ack(batch, count).await;
        }
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
            self.ensure_session().await?;
            let (session, folder) = self.session.as_mut().expect("session ensured");
            if folder.uid_validity != batch.uid_validity {
                log::warn!("mailbox {}: UIDVALIDITY changed since the batch was fetched; its messages will be rescanned", self.mailbox.name);
            } else {
                log::debug!(
                    "mailbox {}: UID STORE/MOVE/EXPUNGE of {} message(s)",
                    self.mailbox.name,
                    done.len()
                );
                match &self.mailbox.after_processing {
                    AfterProcessing::MarkRead => session.mark_seen(&done).await?,
                    AfterProcessing::Move { processed_folder } => {
                        session.move_to(&done, processed_folder).await?
                    }
                    AfterProcessing::Delete => session.delete(&done).await?,
                }
            }
        }
        let state = self.state.as_mut().expect("a batch implies state");
        state.pending.retain(|u| !done.contains(u));
        state.last_success = now_unix();
        state::save(&self.paths.state, state)?;
        self.finish(batch);
        let released = batch.uids.len() - done.len();
        if !done.is_empty() || released > 0 {
            self.log_ack(batch, done.len(), count);
        }
        Ok(())
    }

    fn finish(&mut self, batch: &Batch) {
        self.outstanding.retain(|s| *s != batch.seq);
        for u in &batch.uids {
            self.in_flight.remove(u);
        }
    }

    /// Forgets batches handed out but never acknowledged, so their messages are fetched again.
    pub fn release_unacked(&mut self) {
        self.outstanding.clear();
        self.in_flight.clear();
    }

    /// Tests the connection step by step (token, connect, TLS, capabilities, authenticate,
    /// select), stopping at the first failure; every step carries its duration and, on failure,
    /// its cause and fix. The token step checks the credentials as configured now with a fresh
    /// request to the identity platform (see [`crate::oauth::TokenProvider::verify_credentials`]),
    /// never only a cached token.
    pub async fn test_connection(&mut self) -> Report {
        self.test_connection_with(&mut |_| {}).await
    }

    /// [`Agent::test_connection`], handing each step to `on_step` as soon as it finished (a
    /// terminal shows progress instead of staying silent while a server does not answer).
    pub async fn test_connection_with(&mut self, on_step: &mut dyn FnMut(&Step)) -> Report {
        if self.graph.is_some() {
            return self.graph_test(on_step).await;
        }
        let mut report = Report::default();
        let mut names: Vec<&'static str> = Vec::new();
        if let Some(t) = &self.tokens {
            if t.discovers_tenant() {
                names.push("tenant");
            }
            names.push("token");
        }
        names.extend(["connect", "tls", "capabilities", "authenticate", "select"]);
        let result = self.run_steps(&mut report, on_step).await;
        if let Err(()) = result {
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
        report.credentials = self.credentials(now_unix());
        for c in report.credentials.iter().filter(|c| c.needs_attention()) {
            log::warn!("mailbox {}: {}", self.mailbox.name, c.detail);
        }
        match report.failure() {
            None => log::info!("mailbox {}: connection test passed", self.mailbox.name),
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

    async fn run_steps(
        &mut self,
        report: &mut Report,
        on_step: &mut dyn FnMut(&Step),
    ) -> std::result::Result<(), ()> {
        let mut record = |name: &'static str,
                          start: Instant,
                          r: std::result::Result<String, Error>|
         -> std::result::Result<(), ()> {
            let duration = start.elapsed();
            let (step, ok) = match r {
                Ok(detail) => (
                    Step {
                        name,
                        ok: Some(true),
                        duration,
                        detail,
                        fix: None,
                        kind: None,
                    },
                    true,
                ),
                Err(e) => (
                    Step {
                        name,
                        ok: Some(false),
                        duration,
                        detail: e.message().to_string(),
                        fix: e.fix().map(str::to_string),
                        kind: Some(e.kind()),
                    },
                    false,
                ),
            };
            on_step(&step);
            report.steps.push(step);
            if ok {
                Ok(())
            } else {
                Err(())
            }
        };
        // Each step's value travels beside its detail text.
        fn split<T>(
            r: Result<T>,
            detail: impl FnOnce(&T) -> String,
        ) -> (Option<T>, std::result::Result<String, Error>) {
            match r {
                Ok(v) => {
                    let d = detail(&v);
                    (Some(v), Ok(d))
                }
                Err(e) => (None, Err(e)),
            }
        }
        self.session = None;
        let mut token = None;
        let mut token_unreachable = false;
        let unreachable = |d: &std::result::Result<String, Error>| {
            matches!(d, Err(e) if matches!(
                e.kind(),
                ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::ConnectionClosed
            ))
        };
        if let Some(tokens) = self.tokens.as_mut().filter(|t| t.discovers_tenant()) {
            // No Directory ID configured: which tenant the address's domain belongs to.
            let t = Instant::now();
            let (_, d) = split(tokens.discover_tenant().await, |info| {
                info.as_ref()
                    .map(|i| i.describe())
                    .unwrap_or_else(|| "Directory ID configured".into())
            });
            // Out of reach: the token step fails the same way, and the mail server is still
            // probed below.
            if unreachable(&d) {
                let _ = record("tenant", t, d);
                token_unreachable = true;
            } else {
                record("tenant", t, d)?;
            }
        }
        if let Some(tokens) = self.tokens.as_mut() {
            let t = Instant::now();
            let flow = match self.mailbox.oauth.flow {
                Flow::Password => "password",
                Flow::ClientCredentials => "client_credentials",
                Flow::DeviceCode => "device_code",
            };
            let (v, d) = split(tokens.verify_credentials().await, |(_, what)| {
                format!("{what} accepted: new access token issued ({flow} flow)")
            });
            // An identity platform out of reach says nothing about the mail server: the test
            // still probes it (connect, TLS, capabilities) so the admin learns whether it is
            // reachable, then stops before signing in.
            token_unreachable |= unreachable(&d);
            if token_unreachable {
                let _ = record("token", t, d);
            } else {
                record("token", t, d)?;
            }
            token = v.map(|(t, _)| t);
        }
        let target = self.target();
        let t = Instant::now();
        let (tcp, d) = split(imap::connect::tcp(&target).await, |_| {
            format!("TCP connection to {}:{}", target.server, target.port)
        });
        record("connect", t, d)?;
        let tcp = tcp.expect("recorded as passed");
        let t = Instant::now();
        let (client, d) = split(imap::connect::secure(&target, tcp).await, |(c, _)| {
            match (target.encryption, c.get_ref().is_encrypted()) {
                (Encryption::Ssl, _) => {
                    "implicit TLS, certificate and host name verified".to_string()
                }
                (Encryption::StartTls, _) => {
                    "STARTTLS, certificate and host name verified".to_string()
                }
                _ => "no encryption (allow_plaintext)".to_string(),
            }
        });
        record("tls", t, d)?;
        let (mut client, greeting) = client.expect("recorded as passed");
        let t = Instant::now();
        let (caps, d) = split(
            imap::connect::capabilities(&mut client, target.timeout).await,
            |c| c.list(),
        );
        record("capabilities", t, d)?;
        if token_unreachable {
            return Err(());
        }
        let caps = caps.expect("recorded as passed");
        let t = Instant::now();
        let greeted = Greeted {
            client,
            capabilities: caps,
            greeting,
        };
        let how = if token.is_some() {
            format!("XOAUTH2 as {}", self.oauth_user())
        } else {
            format!("LOGIN as {}", self.mailbox.username)
        };
        let r = self.authenticate(greeted, token).await;
        let r = match r {
            Ok(mut s) => s.refresh_capabilities().await.map(|_| s),
            Err(e) => Err(e),
        };
        let (session, d) = split(r, |_| how.clone());
        record("authenticate", t, d)?;
        let mut session = session.expect("recorded as passed");
        let t = Instant::now();
        let folder_name = self.mailbox.imap.folder.clone();
        let r = async {
            let f = session.select(&folder_name).await?;
            let unseen = session.search("UNSEEN").await?.len();
            Ok((f, unseen))
        }
        .await
        .map_err(|e| self.diagnose_not_connected(e));
        let (selected, d) = split(r, |(f, unseen)| {
            format!(
                "{}: {} messages, {} unread, UIDVALIDITY {}",
                f.name, f.exists, unseen, f.uid_validity
            )
        });
        record("select", t, d)?;
        let (folder, _) = selected.expect("recorded as passed");
        self.session = Some((session, folder));
        Ok(())
    }

    /// Waits until new mail may have arrived in the search folder: IDLE where the server offers
    /// it (re-issued by the caller at least every `max_wait`, capped below the server's limit),
    /// else a NOOP every `poll_interval_secs`. Returns early when `stop` completes. Connects
    /// first when no session is open; a transport error drops the session so the next call
    /// reconnects. Call [`Agent::fetch`] afterwards whatever the outcome: it finds what is new.
    pub async fn wait_for_mail(
        &mut self,
        max_wait: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<imap::Wake> {
        let r = self.wait_inner(max_wait, stop).await;
        if let Err(e) = &r {
            self.on_error(e);
        }
        r
    }

    async fn wait_inner(
        &mut self,
        max_wait: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<imap::Wake> {
        if self.graph.is_some() {
            self.ensure_session().await?;
            return self.graph_wait(max_wait, stop).await;
        }
        self.ensure_session().await?;
        let (mut session, folder) = self.session.take().expect("session ensured");
        // EXISTS seen in an earlier command's response would not be announced again in IDLE.
        if session.take_news() {
            self.session = Some((session, folder));
            return Ok(imap::Wake::NewData);
        }
        if session.supports_idle() {
            // On error the session is gone with the connection: the next call reconnects.
            let started = Instant::now();
            let (session, wake) = match session.idle(max_wait, stop).await {
                Ok(r) => r,
                // The server's own end of a long IDLE (Exchange: after about 29 minutes) is a
                // normal wake: the next fetch reconnects and finds what is new. A server that
                // ends IDLE at once stays an error, so a broken one cannot make us spin.
                Err(e)
                    if imap::idle::ended_by_server(&e)
                        && started.elapsed() >= IDLE_END_IS_NORMAL_AFTER =>
                {
                    log::info!(
                        "mailbox {}: {} after {} s; reconnecting",
                        self.mailbox.name,
                        e.message(),
                        started.elapsed().as_secs()
                    );
                    return Ok(imap::Wake::Timeout);
                }
                Err(e) => return Err(e),
            };
            self.session = Some((session, folder));
            Ok(wake)
        } else {
            let interval = Duration::from_secs(self.mailbox.poll_interval_secs);
            let r = session.poll(interval, max_wait, stop).await;
            self.session = Some((session, folder));
            r
        }
    }

    /// Opens the session now (connect, authenticate, select) unless one is open, so a caller
    /// can pace connection setups (many mailboxes starting at once). A failure drops the session.
    pub async fn connect(&mut self) -> Result<()> {
        let r = self.ensure_session().await;
        if let Err(e) = &r {
            self.on_error(e);
        }
        r
    }

    /// Whether the open session's server offers IDLE (`None` without a session).
    pub fn supports_idle(&self) -> Option<bool> {
        if let Some(g) = &self.graph {
            // Graph is polled by delta query (change notifications need a public endpoint).
            return g.is_connected().then_some(false);
        }
        self.session.as_ref().map(|(s, _)| s.supports_idle())
    }
}

/// What the admin does when a delegate may not open a shared mailbox: Full Access, in the Exchange
/// admin center or PowerShell, and a check that the address is the mailbox's.
fn full_access_fix(delegate: &str, shared: &str) -> String {
    format!(
        "give {delegate} Full Access to {shared}: Exchange admin center > Recipients > Mailboxes > \
         {shared} > Delegation > Read and manage (Full Access) > Edit > Add members > {delegate}, or \
         in Exchange Online PowerShell: Add-MailboxPermission -Identity {shared} -User {delegate} \
         -AccessRights FullAccess -InheritanceType All; check that the address is the shared \
         mailbox's: Get-Mailbox -Identity {shared} | fl PrimarySmtpAddress (no mailbox found: \
         correct Email). Permissions take up to an hour to apply"
    )
}

/// What the admin does when an app-only token may not open a mailbox: register the service
/// principal in Exchange with the Enterprise Application's Object ID, grant it the mailbox.
fn app_grant_fix(app: &str, mailbox: &str) -> String {
    format!(
        "in Exchange Online PowerShell (Connect-ExchangeOnline) register the app: \
         New-ServicePrincipal -AppId {app} -ObjectId <Object ID> -DisplayName psa-mail-agent, with \
         the Object ID from Microsoft Entra admin center > Enterprise applications > the app \
         (not the App registration's Object ID); then grant it the mailbox: Add-MailboxPermission \
         -Identity {mailbox} -User <Object ID> -AccessRights FullAccess; check that {mailbox} \
         exists: Get-Mailbox -Identity {mailbox}. The app also needs IMAP.AccessAsApp with admin \
         consent. Changes take up to 30 minutes"
    )
}

/// Drops UIDs deleted on the server before they were fetched from `pending`.
fn forget_vanished(
    mailbox: &str,
    state: &mut MailboxState,
    paths: &StatePaths,
    read_only: bool,
    vanished: &[u32],
) -> Result<()> {
    if vanished.is_empty() {
        return Ok(());
    }
    log::info!("mailbox {mailbox}: UIDs {vanished:?} vanished before they were fetched (deleted elsewhere)");
    state.pending.retain(|u| !vanished.contains(u));
    if !read_only {
        state::save(&paths.state, state)?;
    }
    Ok(())
}

fn build_ticket(
    options: &TicketOptions,
    msg: &imap::Arrived<'_>,
    folder: &str,
    uid_validity: u32,
    too_big: u64,
) -> Ticket {
    let built = match &msg.shared {
        Some(shared) => ticket::build_shared(shared.clone(), options),
        None => ticket::build(msg.raw, options),
    };
    let mut ticket = match built {
        Ok(t) => t,
        Err(e) => ticket::unreadable(msg.raw, &options.mailbox, &e),
    };
    if msg.header_only {
        ticket.warnings.push(format!(
            "message of {} bytes exceeds {} bytes: only its header was fetched; open it in the mailbox",
            msg.size, too_big
        ));
    }
    ticket.delivery_id = Some(format!("{folder}:{uid_validity}:{}", msg.uid));
    ticket
}

/// How tickets are built for `mailbox`: its switches and limits, plus the index of Message-IDs
/// the helpdesk sent (persisted under the state directory).
pub fn ticket_options(mailbox: &Mailbox, paths: &StatePaths) -> Result<TicketOptions> {
    let threads = match std::fs::read(&paths.threads) {
        Ok(bytes) => ThreadIndex::load(&bytes, THREAD_MEMORY),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ThreadIndex::new(THREAD_MEMORY),
        Err(e) => {
            return Err(Error::new(
                ErrorKind::Io,
                format!("thread index {}: {e}", paths.threads.display()),
            ))
        }
    };
    let mut options = TicketOptions::for_mailbox(mailbox);
    options.thread_index = Some(std::sync::Arc::new(threads));
    Ok(options)
}

/// `d-Mon-yyyy` for IMAP SEARCH SINCE.
fn imap_date(unix: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (unix / 86_400) as i64;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{d}-{}-{y}", MONTHS[(m - 1) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imap_dates() {
        assert_eq!(imap_date(0), "1-Jan-1970");
        assert_eq!(imap_date(1_795_000_000), "18-Nov-2026");
        assert_eq!(imap_date(951_782_400), "29-Feb-2000");
    }
}
