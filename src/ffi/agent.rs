//! The agent handle: one mailbox, created from its JSON entry; connection test, fetch, ack,
//! OAuth credentials set by the host, and the per-handle last error.

use super::batch::pma_batch;
use super::cancel::Cancel;
use super::registry::{self, Kind};
use super::report::pma_report;
use super::result::pma_result;
use super::{opt_str_arg, out_arg, set_thread_error, str_arg, thread_error, CText, CallError};
use crate::agent::Agent;
use crate::config::Mailbox;
use crate::error::Error;
use crate::secret::Secret;
use crate::state::{MailboxLock, StatePaths};
use std::future::Future;
use std::os::raw::c_char;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEFAULT_STATE_DIR: &str = "./state";

static NEXT_HANDLE_ID: AtomicU64 = AtomicU64::new(1);

/// An agent for one mailbox (opaque). Created by `pma_init`, freed by `pma_free`.
///
/// Thread safety: a handle may be used from any thread; calls on one handle are serialised
/// (a second thread waits while a fetch runs), except `pma_cancel`, which never waits. Each
/// handle keeps the last error of its own calls, read with `pma_last_error`.
pub struct pma_agent {
    pub(crate) id: u64,
    inner: Mutex<Inner>,
    last_error: Mutex<Option<CallError>>,
    /// Outside the mutex: `pma_cancel` must reach a call that holds it.
    cancel: Cancel,
}

struct Inner {
    mailbox: Mailbox,
    state_dir: PathBuf,
    /// The mailbox's lock, held from `pma_init` to `pma_free` whether or not the mailbox is
    /// complete yet, and across rebuilds.
    lock: MailboxLock,
    /// `None` while the mailbox lacks credentials (see `pma_init`) or after a rebuild failed;
    /// `unusable` then says why.
    agent: Option<Agent>,
    unusable: Option<Error>,
    /// Bumped whenever `agent` is rebuilt: batches of an older agent cannot be acknowledged.
    generation: u64,
    /// Batches of the current generation alive and not acknowledged. When none is left,
    /// the messages of batches freed without ack are released for the next fetch.
    live_unacked: Arc<AtomicUsize>,
    /// The texts of the last `pma_device_login_begin`, valid until the next one or `pma_free`.
    prompt: Option<PromptTexts>,
}

struct PromptTexts {
    verification_uri: CText,
    user_code: CText,
    message: CText,
}

impl Inner {
    fn agent(&mut self) -> Result<&mut Agent, CallError> {
        match (&mut self.agent, &self.unusable) {
            (Some(a), _) => Ok(a),
            (None, Some(e)) => Err(e.clone().into()),
            (None, None) => Err(CallError::new(
                pma_result::PMA_INTERNAL,
                "the agent handle has no agent and no reason recorded",
            )),
        }
    }

    /// Replaces the agent by one for `next` (new credentials). On failure the previous
    /// settings stay in force (and keep working when they did).
    fn rebuild(&mut self, next: Mailbox) -> Result<(), Error> {
        let had_agent = self.agent.is_some();
        if let Some(mut old) = self.agent.take() {
            smol::block_on(old.disconnect());
        }
        self.generation += 1;
        self.live_unacked = Arc::new(AtomicUsize::new(0));
        match Agent::with_lock_held(next.clone(), self.state_dir.clone(), &self.lock) {
            Ok(a) => {
                self.mailbox = next;
                self.agent = Some(a);
                self.unusable = None;
                Ok(())
            }
            Err(e) => {
                if had_agent {
                    match Agent::with_lock_held(
                        self.mailbox.clone(),
                        self.state_dir.clone(),
                        &self.lock,
                    ) {
                        Ok(a) => self.agent = Some(a),
                        Err(e2) => self.unusable = Some(e2),
                    }
                }
                Err(e)
            }
        }
    }
}

impl pma_agent {
    fn record(&self, call: &str, e: CallError) {
        set_thread_error(call, &e);
        let mut slot = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(e);
    }

    fn last(&self) -> Option<CallError> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// One call on a handle: when it entered (for `pma_cancel`).
pub(crate) struct Call<'h> {
    h: &'h pma_agent,
    entered: u64,
}

fn cancelled_error() -> CallError {
    CallError::new(
        pma_result::PMA_CANCELLED,
        "cancelled by pma_cancel; the handle is ready for the next call",
    )
}

impl Call<'_> {
    /// `PMA_CANCELLED` when a cancel came while this call waited for the handle.
    fn check(&self) -> Result<(), CallError> {
        if self.h.cancel.since(self.entered) {
            Err(cancelled_error())
        } else {
            Ok(())
        }
    }

    /// Drives `fut` on the calling thread until it ends or the handle is cancelled (outer
    /// `Err`: the future was dropped half-way; the caller drops the agent's connection).
    fn block<T>(
        &self,
        fut: impl Future<Output = crate::Result<T>>,
    ) -> Result<crate::Result<T>, CallError> {
        let cancelled = self.h.cancel.cancelled(self.entered);
        smol::block_on(smol::future::or(
            async {
                cancelled.await;
                None
            },
            async { Some(fut.await) },
        ))
        .ok_or_else(cancelled_error)
    }
}

/// Runs a blocking agent operation `$op` (an expression using `$a: &mut Agent`) for `$call`:
/// cancellable; a cancelled operation drops the agent's connection, whose protocol state is
/// then unknown.
macro_rules! blocking {
    ($call:expr, $a:ident, $op:expr) => {{
        let r = $call.block($op);
        match r {
            Ok(r) => r.map_err(CallError::from),
            Err(c) => {
                $a.abandon_session();
                Err(c)
            }
        }
    }};
}

/// The handle behind `p`, or the error to return.
///
/// # Safety
/// No `pma_free` of `p` may run concurrently (the registry check and the use are not atomic).
unsafe fn handle<'a>(p: *const pma_agent) -> Result<&'a pma_agent, CallError> {
    if p.is_null() {
        return Err(CallError::new(
            pma_result::PMA_NULL_ARGUMENT,
            "agent is NULL",
        ));
    }
    if !registry::is_live(p, Kind::Agent) {
        return Err(CallError::new(
            pma_result::PMA_INVALID_HANDLE,
            "agent is not a live pma_agent handle (another kind of handle, or freed already)",
        ));
    }
    // SAFETY: registered, hence created by pma_init and not freed.
    let h = unsafe { &*p };
    Ok(h)
}

/// Runs `f` for the export `name` on the locked handle: records a failure as the handle's and
/// the thread's last error (and logs it), reports a poisoned handle, and catches panics.
///
/// # Safety
/// As [`handle`].
unsafe fn with_agent(
    agent: *const pma_agent,
    name: &'static str,
    f: impl FnOnce(&Call<'_>, &mut Inner) -> Result<(), CallError>,
) -> pma_result {
    // SAFETY: forwarded contract.
    let h = match unsafe { handle(agent) } {
        Ok(h) => h,
        Err(e) => {
            set_thread_error(name, &e);
            return e.code;
        }
    };
    // Noted before waiting for the mutex: a cancel while this call waits for its turn ends it.
    let call = Call {
        h,
        entered: h.cancel.epoch(),
    };
    super::boundary(
        |e| h.record(name, e),
        || {
            let mut inner = match h.inner.lock() {
                Ok(g) => g,
                Err(_) => {
                    let e = CallError::new(
                        pma_result::PMA_POISONED,
                        "an earlier call on this agent panicked; free it and create a new one",
                    );
                    h.record(name, e.clone());
                    return e.code;
                }
            };
            match f(&call, &mut inner) {
                Ok(()) => pma_result::PMA_OK,
                Err(e) => {
                    h.record(name, e.clone());
                    e.code
                }
            }
        },
    )
}

fn build(mailbox_json: &str, state_dir: Option<&str>) -> Result<Box<pma_agent>, CallError> {
    let base = std::env::current_dir().map_err(|e| {
        CallError::from(Error::from(e).context("current directory (base for relative paths)"))
    })?;
    let mailbox = Mailbox::from_json_incomplete(mailbox_json, &base)?;
    let state_dir = PathBuf::from(state_dir.unwrap_or(DEFAULT_STATE_DIR));
    // Taken whether or not the mailbox is complete: a second handle on the same mailbox and
    // state directory is refused here, not at its first fetch.
    let paths = StatePaths::new(&state_dir, &mailbox.name);
    let lock = MailboxLock::acquire(&paths.lock, &mailbox.name)?;
    let (agent, unusable) = match mailbox.validate() {
        Ok(()) => (
            Some(Agent::with_lock_held(
                mailbox.clone(),
                state_dir.clone(),
                &lock,
            )?),
            None,
        ),
        // Credentials may come later through pma_set_oauth_credentials / pma_set_password.
        Err(e) => (None, Some(e)),
    };
    Ok(Box::new(pma_agent {
        id: NEXT_HANDLE_ID.fetch_add(1, Ordering::Relaxed),
        inner: Mutex::new(Inner {
            mailbox,
            state_dir,
            lock,
            agent,
            unusable,
            generation: 1,
            live_unacked: Arc::new(AtomicUsize::new(0)),
            prompt: None,
        }),
        last_error: Mutex::new(None),
        cancel: Cancel::default(),
    }))
}

/// Creates an agent for one mailbox.
///
/// `mailbox_json`: one entry of the configuration's `mailboxes` array (UTF-8, NUL-terminated),
/// e.g. `{"name": "Helpdesk", "email": "helpdesk@contoso.com", "username": "…",
/// "password_env": "HELPDESK_PASSWORD", "oauth": {"enabled": true, …}}`. Relative paths in it
/// (`password_file`, `imap.ca_file`) are taken from the current directory. Credentials may be
/// left out and supplied by `pma_set_oauth_credentials`, `pma_set_password` or
/// `pma_set_client_secret`; until the mailbox is complete, `pma_test_connection` and
/// `pma_fetch_tickets` fail with `PMA_CONFIG` naming what is missing.
///
/// `state_dir`: where the mailbox's state, token cache and lock file live; NULL means
/// `"./state"` (created with mode 0700 when missing). The mailbox's lock is taken here, whether
/// or not the JSON is complete: only one agent (in any process) may work on a mailbox name in
/// one state directory at a time; a second one fails with `PMA_IO`.
///
/// On success `*out` receives a new handle, owned by the caller and freed with `pma_free`.
/// On failure `*out` is not written; `pma_last_error(NULL, …)` on the same thread gives the
/// message (for a configuration error it names the key, e.g. `imap.port`).
///
/// Thread-safe.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pma_init(
    mailbox_json: *const c_char,
    state_dir: *const c_char,
    out: *mut *mut pma_agent,
) -> pma_result {
    super::boundary(
        |e| set_thread_error("pma_init", &e),
        || {
            let made = (|| {
                // SAFETY: the caller's contract on string arguments.
                let json = unsafe { str_arg(mailbox_json, "mailbox_json") }?;
                // SAFETY: as above.
                let dir = unsafe { opt_str_arg(state_dir, "state_dir") }?;
                out_arg(out, "out")?;
                build(json, dir)
            })();
            match made {
                Ok(h) => {
                    // SAFETY: checked non-NULL above; the caller's contract makes it writable.
                    unsafe { *out = registry::into_handle(h, Kind::Agent) };
                    pma_result::PMA_OK
                }
                Err(e) => {
                    set_thread_error("pma_init", &e);
                    e.code
                }
            }
        },
    )
}

/// Frees an agent: logs out of the server (bounded by the mailbox's timeout), releases the
/// mailbox lock, and wipes the secrets it held.
///
/// NULL is accepted and does nothing, as is a pointer that is not a live agent (a second
/// free). No other call on this handle may be running or follow (not even `pma_cancel`).
/// Batches and reports stay valid and must still be freed; batches of a freed agent can no
/// longer be acknowledged (their messages are fetched again by the next agent).
///
/// # Safety
/// `agent` is NULL or a handle from `pma_init` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn pma_free(agent: *mut pma_agent) {
    super::boundary_value((), || {
        if !registry::take(agent, Kind::Agent) {
            return; // NULL, another kind of handle, or freed already
        }
        // SAFETY: created by pma_init (Box) and just unregistered, so owned here.
        let mut boxed = unsafe { Box::from_raw(agent) };
        let inner = boxed.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = inner.agent.as_mut() {
            smol::block_on(a.disconnect());
        }
        drop(boxed);
        crate::tls::release_unused();
    });
}

/// Sets the OAuth 2.0 Application ID and Directory ID (and the client secret for the
/// `client_credentials` flow), enables OAuth for the mailbox, and rebuilds the agent.
///
/// `client_secret` may be NULL: a secret from the mailbox JSON (or `pma_set_client_secret`) is
/// kept. The library copies the strings; the copy of the secret is wiped from memory when the
/// handle is freed or the secret replaced. `application_id` must be a GUID (surrounding braces
/// are removed) and `directory_id` a GUID or a domain of the tenant (`common`, `organizations`
/// and `consumers` are refused); otherwise `PMA_CONFIG`, with `pma_last_error` naming the key
/// (`oauth.application_id: …`) and the fix. On failure (also when the result would be
/// incomplete) the handle keeps its previous settings. Batches fetched before a successful
/// call can no longer be acknowledged (`PMA_FOREIGN_BATCH`); their messages come again.
///
/// Thread-safe; serialised with the handle's other calls.
///
/// # Safety
/// `agent` is NULL or a live handle; string arguments are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn pma_set_oauth_credentials(
    agent: *mut pma_agent,
    application_id: *const c_char,
    directory_id: *const c_char,
    client_secret: *const c_char,
) -> pma_result {
    // SAFETY: forwarded contracts.
    unsafe {
        with_agent(agent, "pma_set_oauth_credentials", |_, inner| {
            let app = str_arg(application_id, "application_id")?;
            let dir = str_arg(directory_id, "directory_id")?;
            let secret = opt_str_arg(client_secret, "client_secret")?.map(Secret::new);
            let mut next = inner.mailbox.clone();
            next.set_oauth_credentials(app, dir, secret)?;
            inner.rebuild(next)?;
            Ok(())
        })
    }
}

/// Which secret a `pma_set_*` call replaces.
#[derive(Clone, Copy)]
enum Which {
    Password,
    ClientSecret,
}

/// Stores a secret given by the host; completes the mailbox when it was the missing piece.
fn set_secret(inner: &mut Inner, which: Which, value: &str) -> Result<(), CallError> {
    let name = match which {
        Which::Password => "password",
        Which::ClientSecret => "client_secret",
    };
    if value.is_empty() {
        return Err(CallError::new(
            pma_result::PMA_INVALID_ARGUMENT,
            format!("{name} is empty"),
        ));
    }
    let secret = Secret::new(value);
    match which {
        Which::Password => inner.mailbox.password = Some(secret.clone()),
        Which::ClientSecret => inner.mailbox.oauth.client_secret = Some(secret.clone()),
    }
    if let Some(a) = inner.agent.as_mut() {
        // In place: the open batches stay valid; tokens of the old secret are dropped.
        match which {
            Which::Password => a.set_password(secret),
            Which::ClientSecret => a.set_client_secret(secret),
        }
        return Ok(());
    }
    match inner.mailbox.validate() {
        Ok(()) => inner.rebuild(inner.mailbox.clone())?,
        // Still incomplete (e.g. no Application ID yet): the secret is kept for later.
        Err(e) => inner.unusable = Some(e),
    }
    Ok(())
}

/// Sets the mailbox password (for Basic LOGIN and the OAuth `password` flow) from the host's
/// own store, instead of `password*` in the mailbox JSON.
///
/// The library copies the string and wipes its copy from memory when the password is
/// replaced or the handle freed. A different password drops every token obtained with the
/// previous one (also in the token cache, which is bound to the password it was earned with)
/// and the open connection: the next call signs in with this password. Open batches stay
/// valid. When the password was what the mailbox lacked, the agent is built now.
///
/// `PMA_NULL_ARGUMENT`, `PMA_INVALID_UTF8`, `PMA_INVALID_ARGUMENT` (empty). Thread-safe;
/// serialised with the handle's other calls.
///
/// # Safety
/// `agent` is NULL or a live handle; `password` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn pma_set_password(
    agent: *mut pma_agent,
    password: *const c_char,
) -> pma_result {
    // SAFETY: forwarded contracts.
    unsafe {
        with_agent(agent, "pma_set_password", |_, inner| {
            let value = str_arg(password, "password")?;
            set_secret(inner, Which::Password, value)
        })
    }
}

/// Sets the OAuth client secret (the app registration's secret Value, for the
/// `client_credentials` flow or a confidential app) from the host's own store. Copied and
/// wiped like `pma_set_password`; a different secret drops the tokens obtained with the old
/// one. Does not enable OAuth (see `pma_set_oauth_credentials`).
///
/// `PMA_NULL_ARGUMENT`, `PMA_INVALID_UTF8`, `PMA_INVALID_ARGUMENT` (empty). Thread-safe;
/// serialised with the handle's other calls.
///
/// # Safety
/// `agent` is NULL or a live handle; `client_secret` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn pma_set_client_secret(
    agent: *mut pma_agent,
    client_secret: *const c_char,
) -> pma_result {
    // SAFETY: forwarded contracts.
    unsafe {
        with_agent(agent, "pma_set_client_secret", |_, inner| {
            let value = str_arg(client_secret, "client_secret")?;
            set_secret(inner, Which::ClientSecret, value)
        })
    }
}

/// Registers a mail the PSA sent (a notification, a technician's answer): `message_id` (with
/// or without `<>`) belongs to ticket `ticket_number`. A later reply that only keeps
/// In-Reply-To/References (with an edited subject) then gets that ticket number in
/// `thread.ticket_number`. The map is bounded (least recently used entries go) and persisted
/// under the state directory, so it survives restarts.
///
/// `PMA_CONFIG` for an empty value or one with line breaks. Thread-safe; serialised with the
/// handle's other calls.
///
/// # Safety
/// `agent` is NULL or a live handle; string arguments are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn pma_register_sent(
    agent: *mut pma_agent,
    message_id: *const c_char,
    ticket_number: *const c_char,
) -> pma_result {
    // SAFETY: forwarded contracts.
    unsafe {
        with_agent(agent, "pma_register_sent", |_, inner| {
            let id = str_arg(message_id, "message_id")?;
            let ticket = str_arg(ticket_number, "ticket_number")?;
            inner.agent()?.register_sent(id, ticket)?;
            Ok(())
        })
    }
}

/// Tests the connection step by step (token, connect, TLS, capabilities, authenticate,
/// select), stopping at the first failure. The token step checks the credentials as
/// configured now with a fresh request to the identity platform (the password grant with
/// the configured password, the client-credentials grant with the configured secret; the
/// device-code flow redeems its stored sign-in), never only a cached token: a wrong password
/// fails here with `PMA_OAUTH_INVALID_CREDENTIALS` even while an older token is cached.
///
/// Returns `PMA_OK` whenever a report was made, healthy or not: check
/// `pma_report_healthy`, and each step's result and fix. Fails without a report only when
/// the handle cannot run a test (e.g. `PMA_CONFIG` for missing credentials) or the call was
/// cancelled (`PMA_CANCELLED`). On success `*out` receives a report owned by the caller, freed
/// with `pma_report_free`.
///
/// Blocks the calling thread (every network step has the mailbox's timeout); `pma_cancel`
/// ends it. Thread-safe; serialised with the handle's other calls.
///
/// # Safety
/// `agent` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pma_test_connection(
    agent: *mut pma_agent,
    out: *mut *mut pma_report,
) -> pma_result {
    // SAFETY: forwarded contract.
    unsafe {
        with_agent(agent, "pma_test_connection", |call, inner| {
            out_arg(out, "out")?;
            call.check()?;
            let a = inner.agent()?;
            let report = blocking!(call, a, async { Ok(a.test_connection().await) })?;
            let boxed = Box::new(pma_report::new(report));
            // SAFETY: checked non-NULL; writable by the caller's contract.
            *out = registry::into_handle(boxed, Kind::Report);
            Ok(())
        })
    }
}

/// Fetches up to `max` new tickets (at most one bounded batch; `max` ≥ 1, further limited by
/// the mailbox's `batch_size`). An empty batch (count 0) means nothing is waiting.
///
/// Nothing changes on the server until the batch is given to `pma_ack` (or
/// `pma_ack_tickets`), which the caller does after storing the tickets. Messages of a batch
/// freed without ack are fetched again once no unacknowledged batch of this handle is alive.
///
/// On success `*out` receives a batch owned by the caller, freed with `pma_batch_free`.
/// Blocks the calling thread; `pma_cancel` ends it (`PMA_CANCELLED`, nothing handed out).
/// Thread-safe; serialised with the handle's other calls.
///
/// # Safety
/// `agent` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pma_fetch_tickets(
    agent: *mut pma_agent,
    max: usize,
    out: *mut *mut pma_batch,
) -> pma_result {
    // SAFETY: forwarded contract.
    unsafe {
        with_agent(agent, "pma_fetch_tickets", |call, inner| {
            out_arg(out, "out")?;
            if max == 0 {
                return Err(CallError::new(
                    pma_result::PMA_INVALID_ARGUMENT,
                    "max is 0: ask for at least one ticket",
                ));
            }
            call.check()?;
            let live = inner.live_unacked.clone();
            let generation = inner.generation;
            let keep_raw = inner.mailbox.keep_raw;
            let a = inner.agent()?;
            if live.load(Ordering::SeqCst) == 0 {
                a.release_unacked();
            }
            let batch = blocking!(call, a, a.fetch(max))?;
            live.fetch_add(1, Ordering::SeqCst);
            let boxed = Box::new(pma_batch::new(batch, call.h.id, generation, live, keep_raw));
            // SAFETY: checked non-NULL; writable by the caller's contract.
            *out = registry::into_handle(boxed, Kind::Batch);
            Ok(())
        })
    }
}

/// Acknowledges the first `count` tickets of a batch, or all (`count` None).
///
/// # Safety
/// As `pma_ack`.
unsafe fn ack(
    agent: *mut pma_agent,
    name: &'static str,
    batch: *const pma_batch,
    count: Option<usize>,
) -> pma_result {
    // SAFETY: forwarded contracts.
    unsafe {
        with_agent(agent, name, |call, inner| {
            let b = pma_batch::from_ptr(batch)?;
            if b.handle_id != call.h.id || b.generation != inner.generation {
                return Err(CallError::new(
                    pma_result::PMA_FOREIGN_BATCH,
                    "this batch was fetched by another agent handle (or before this one was rebuilt by pma_set_oauth_credentials); its messages will be fetched again",
                ));
            }
            if b.is_acked() {
                return Err(CallError::new(
                    pma_result::PMA_ALREADY_ACKED,
                    "this batch was acknowledged already",
                ));
            }
            let total = b.batch.tickets.len();
            let count = count.unwrap_or(total);
            if count > total {
                return Err(CallError::new(
                    pma_result::PMA_INVALID_ARGUMENT,
                    format!("count {count} is more than the batch's {total} ticket(s)"),
                ));
            }
            call.check()?;
            let a = inner.agent()?;
            // A batch with nothing to acknowledge was never registered by the core.
            if !b.batch.is_void() {
                blocking!(call, a, a.ack_tickets(&b.batch, count))?;
            }
            b.mark_acked();
            Ok(())
        })
    }
}

/// Acknowledges a batch after its tickets were stored: remembers their dedupe keys, then marks
/// the messages read, moves or deletes them on the server (`after_processing`).
///
/// `PMA_FOREIGN_BATCH` when the batch came from another handle (or before this handle was
/// rebuilt); `PMA_ALREADY_ACKED` the second time. On a network error or `PMA_CANCELLED` the
/// batch stays unacknowledged and may be acknowledged again. The batch remains owned by the
/// caller (free it with `pma_batch_free`).
///
/// Blocks the calling thread; `pma_cancel` ends it. Thread-safe; serialised with the handle's
/// other calls.
///
/// # Safety
/// `agent` is NULL or a live handle; `batch` is NULL or a live batch.
#[no_mangle]
pub unsafe extern "C" fn pma_ack(agent: *mut pma_agent, batch: *const pma_batch) -> pma_result {
    // SAFETY: forwarded contracts.
    unsafe { ack(agent, "pma_ack", batch, None) }
}

/// Acknowledges the first `count` tickets of a batch (indexes 0 to `count - 1`: what the PSA
/// stored before it failed), with the messages whose tickets were suppressed as duplicates of
/// them. The batch is then settled (`PMA_ALREADY_ACKED` afterwards): the messages of tickets
/// `count` and later stay unacknowledged on the server and are delivered again by the next
/// `pma_fetch_tickets` (with the same `dedupe_key`). `count` equal to `pma_batch_count` is
/// `pma_ack`; 0 acknowledges nothing and hands the whole batch out again.
///
/// `PMA_INVALID_ARGUMENT` when `count` is above the batch's count; otherwise as `pma_ack`
/// (on a network error or `PMA_CANCELLED` nothing is settled and the call may be repeated).
/// Blocks the calling thread; `pma_cancel` ends it. Thread-safe; serialised with the handle's
/// other calls.
///
/// # Safety
/// `agent` is NULL or a live handle; `batch` is NULL or a live batch.
#[no_mangle]
pub unsafe extern "C" fn pma_ack_tickets(
    agent: *mut pma_agent,
    batch: *const pma_batch,
    count: usize,
) -> pma_result {
    // SAFETY: forwarded contracts.
    unsafe { ack(agent, "pma_ack_tickets", batch, Some(count)) }
}

/// Waits for new mail instead of polling: keeps the mailbox's connection in IMAP IDLE (or,
/// where the server has no IDLE, sends a NOOP every `poll_interval_secs`) until the server
/// announces a change in the folder or `timeout_ms` milliseconds passed. Connects first when
/// needed.
///
/// On success `*arrived` receives true when there is something to fetch (new mail announced,
/// or mail already waiting, e.g. unread mail of a first contact or the messages of a batch
/// freed without ack: then it returns at once) and false when the time ran out. Call `pma_fetch_tickets` afterwards either way; it
/// may find nothing (the change was a flag or a deletion). `timeout_ms` 0 only checks. Long
/// timeouts are fine: IDLE is renewed below the servers' 29-minute limit.
///
/// Blocks the calling thread; `pma_cancel` ends it (`PMA_CANCELLED`, the connection is
/// dropped and reopened by the next call). Thread-safe; serialised with the handle's other
/// calls.
///
/// # Safety
/// `agent` is NULL or a live handle; `arrived` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pma_wait_for_mail(
    agent: *mut pma_agent,
    timeout_ms: u64,
    arrived: *mut bool,
) -> pma_result {
    // SAFETY: forwarded contract.
    unsafe {
        with_agent(agent, "pma_wait_for_mail", |call, inner| {
            out_arg(arrived, "arrived")?;
            call.check()?;
            let live = inner.live_unacked.clone();
            let a = inner.agent()?;
            // Beyond a year is "forever" (and keeps Instant arithmetic from overflowing).
            let timeout = Duration::from_millis(timeout_ms.min(365 * 86_400 * 1000));
            let deadline = Instant::now() + timeout;
            if live.load(Ordering::SeqCst) == 0 {
                // Batches freed without ack: their messages are waiting again.
                a.release_unacked();
            }
            let got = if blocking!(call, a, a.check_pending())? {
                true
            } else {
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let wake = blocking!(call, a, a.wait_for_mail(left, std::future::pending()))?;
                    match wake {
                        crate::imap::Wake::NewData => break true,
                        _ if Instant::now() >= deadline => break false,
                        // One IDLE (or poll) is shorter than the caller's timeout: again.
                        _ => continue,
                    }
                }
            };
            // SAFETY: checked non-NULL; writable by the caller's contract.
            *arrived = got;
            Ok(())
        })
    }
}

/// Cancels the blocking call in progress on `agent` (`pma_test_connection`,
/// `pma_fetch_tickets`, `pma_ack`, `pma_ack_tickets`, `pma_wait_for_mail`,
/// `pma_device_login_begin`, `pma_device_login_complete`), and those waiting for their turn on
/// the handle: each returns `PMA_CANCELLED` promptly (well within a second). May be called from
/// any thread, also while another thread blocks in such a call: it never waits for the
/// handle. A cancelled call leaves the state consistent: a fetch hands nothing out, an
/// acknowledgement stays undone (the batch may be acknowledged again), a pending device-code
/// sign-in may be completed later; the connection is dropped and reopened by the next call.
/// Calls that start after `pma_cancel` returned run normally, so a cancel while nothing
/// runs has no effect.
///
/// `PMA_NULL_ARGUMENT` / `PMA_INVALID_HANDLE` for a bad handle. Thread-safe. It must not race
/// with `pma_free` of the same handle.
///
/// # Safety
/// `agent` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn pma_cancel(agent: *mut pma_agent) -> pma_result {
    super::boundary(
        |e| set_thread_error("pma_cancel", &e),
        || {
            // SAFETY: forwarded contract.
            match unsafe { handle(agent) } {
                Ok(h) => {
                    h.cancel.cancel();
                    log::info!(
                        "pma_cancel: cancelling the call in progress on agent {}",
                        h.id
                    );
                    pma_result::PMA_OK
                }
                Err(e) => {
                    set_thread_error("pma_cancel", &e);
                    e.code
                }
            }
        },
    )
}

/// What the person signing in with a device code must do, as `pma_device_login_begin` fills
/// it in. The strings (NUL-terminated UTF-8) belong to the agent and stay valid until the next
/// `pma_device_login_begin` on it or `pma_free`.
#[repr(C)]
pub struct pma_device_prompt {
    /// The page to open, e.g. `https://microsoft.com/devicelogin`.
    pub verification_uri: *const c_char,
    /// The code to enter there.
    pub user_code: *const c_char,
    /// Microsoft's instruction text (names the page and the code).
    pub message: *const c_char,
    /// Seconds the code stays valid.
    pub expires_in_secs: u64,
}

/// Begins a device-code sign-in (OAuth 2.0, MFA-capable) for the host to show in its own UI:
/// asks the identity platform for a code and fills `*out` with the web page, the code and how
/// long it is valid. The person opens the page on any device, enters the code and signs in
/// as the mailbox's user; meanwhile call `pma_device_login_complete`. A second begin replaces
/// the first code.
///
/// Works for every OAuth flow (it also replaces a revoked grant); `PMA_CONFIG` when OAuth is
/// not enabled or incomplete. Blocks briefly (one request); `pma_cancel` ends it. Thread-safe;
/// serialised with the handle's other calls.
///
/// # Safety
/// `agent` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pma_device_login_begin(
    agent: *mut pma_agent,
    out: *mut pma_device_prompt,
) -> pma_result {
    // SAFETY: forwarded contract.
    unsafe {
        with_agent(agent, "pma_device_login_begin", |call, inner| {
            out_arg(out, "out")?;
            call.check()?;
            let a = inner.agent()?;
            let Some(tokens) = a.tokens() else {
                return Err(CallError::new(
                    pma_result::PMA_CONFIG,
                    "oauth.enabled is false: device-code sign-in needs OAuth 2.0 (see pma_set_oauth_credentials)",
                ));
            };
            let prompt = match call.block(tokens.device_login_begin()) {
                Ok(r) => r?,
                Err(c) => return Err(c),
            };
            let texts = inner.prompt.insert(PromptTexts {
                verification_uri: CText::new(prompt.verification_uri),
                user_code: CText::new(prompt.user_code),
                message: CText::new(prompt.message),
            });
            // SAFETY: checked non-NULL; writable by the caller's contract.
            out.write(pma_device_prompt {
                verification_uri: texts.verification_uri.ptr(),
                user_code: texts.user_code.ptr(),
                message: texts.message.ptr(),
                expires_in_secs: prompt.expires_in.as_secs(),
            });
            Ok(())
        })
    }
}

/// Completes the device-code sign-in begun by `pma_device_login_begin`: waits (polling the
/// identity platform as it asks) until the person signed in, then stores the tokens in the
/// mailbox's token cache, as the `login` command does; from then on they are renewed without
/// a person.
///
/// `PMA_DEVICE_LOGIN_NOT_STARTED` without a begun sign-in; `PMA_OAUTH_DEVICE_CODE_DECLINED`,
/// `PMA_OAUTH_DEVICE_CODE_EXPIRED` and the other `PMA_OAUTH_*` codes when it fails (the
/// sign-in must then be begun again). Blocks the calling thread for as long as the person
/// takes (at most the code's lifetime); `pma_cancel` ends it with `PMA_CANCELLED` and the
/// sign-in stays pending: a later call goes on waiting for the same code. Thread-safe;
/// serialised with the handle's other calls.
///
/// # Safety
/// `agent` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn pma_device_login_complete(agent: *mut pma_agent) -> pma_result {
    // SAFETY: forwarded contract.
    unsafe {
        with_agent(agent, "pma_device_login_complete", |call, inner| {
            call.check()?;
            let a = inner.agent()?;
            let Some(tokens) = a.tokens() else {
                return Err(CallError::new(
                    pma_result::PMA_CONFIG,
                    "oauth.enabled is false: device-code sign-in needs OAuth 2.0 (see pma_set_oauth_credentials)",
                ));
            };
            if !tokens.device_login_pending() {
                return Err(CallError::new(
                    pma_result::PMA_DEVICE_LOGIN_NOT_STARTED,
                    "no device-code sign-in is waiting: call pma_device_login_begin first (a failed or completed sign-in must be begun again)",
                ));
            }
            match call.block(tokens.device_login_complete()) {
                Ok(r) => r?,
                Err(c) => return Err(c),
            }
            // Signed in with new tokens: the next call connects with them.
            a.abandon_session();
            Ok(())
        })
    }
}

/// Copies the message of a failed call — what went wrong and, where an administrator can
/// act, `(fix: …)` — into `buf` as a NUL-terminated UTF-8 string. The text never contains a
/// password, client secret or token. An empty string when nothing failed yet.
///
/// Two records are kept; choose by `agent`:
/// - `agent` NULL: the last failed call **of the calling thread** (any handle, no handle, a
///   failed `pma_init`, batch and report accessors). Read it right after a call failed on
///   this thread: another thread's calls never change it. This is the one to use in general.
/// - `agent` a handle: the last failed call **on that handle**, from whichever thread. Useful
///   for a later look ("why did the background fetch fail?"); when several threads share a
///   handle it may belong to another thread's call.
///
/// On success `*out_n` receives the length written, excluding the NUL. When `len` is too
/// small (including `buf` NULL with `len` 0, to ask for the size) the result is
/// `PMA_BUFFER_TOO_SMALL`, nothing is written to `buf`, and `*out_n` receives the size needed
/// including the NUL. Calling this function never changes either record.
///
/// Thread-safe.
///
/// # Safety
/// `agent` is NULL or a live handle; `buf` is NULL or writable for `len` bytes; `out_n` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pma_last_error(
    agent: *const pma_agent,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> pma_result {
    super::boundary(
        |_| {},
        || {
            if out_n.is_null() {
                return pma_result::PMA_NULL_ARGUMENT;
            }
            let last = if agent.is_null() {
                thread_error()
            } else {
                // SAFETY: non-NULL live handle by the caller's contract.
                match unsafe { handle(agent) } {
                    Ok(h) => h.last(),
                    Err(e) => return e.code,
                }
            };
            let text = last.map(|e| e.text).unwrap_or_default();
            let needed = text.len() + 1;
            if buf.is_null() && len > 0 {
                return pma_result::PMA_NULL_ARGUMENT;
            }
            if len < needed {
                // SAFETY: checked non-NULL; writable by the caller's contract.
                unsafe { *out_n = needed };
                return pma_result::PMA_BUFFER_TOO_SMALL;
            }
            // SAFETY: buf is non-NULL (len >= needed >= 1) and writable for len >= needed bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
                *buf.add(text.len()) = 0;
                *out_n = text.len();
            }
            pma_result::PMA_OK
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_handle_says_so() {
        let dir = std::env::temp_dir().join(format!("pma-ffi-poison-{}", std::process::id()));
        let json = r#"{"name":"poison","email":"p@contoso.test","username":"p@contoso.test","password":"x","imap":{"server":"127.0.0.1","port":1}}"#;
        let h = registry::into_handle(build(json, dir.to_str()).expect("built"), Kind::Agent);
        let r = unsafe { with_agent(h, "test", |_, _| panic!("inside the lock")) };
        assert_eq!(r, pma_result::PMA_PANIC);
        let r = unsafe { with_agent(h, "test", |_, _| Ok(())) };
        assert_eq!(r, pma_result::PMA_POISONED);
        unsafe { pma_free(h) };
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_freed_or_foreign_pointer_is_refused_unread() {
        let mut x = 0u64;
        let fake = (&mut x as *mut u64).cast::<pma_agent>();
        let r = unsafe { pma_fetch_tickets(fake, 1, std::ptr::null_mut()) };
        assert_eq!(r, pma_result::PMA_INVALID_HANDLE);
        unsafe { pma_free(fake) }; // ignored, not freed
        assert_eq!(x, 0);
    }
}
