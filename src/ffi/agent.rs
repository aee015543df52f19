//! The agent handle: one mailbox, created from its JSON entry; connection test, fetch, ack,
//! OAuth credentials set by the host, and the per-handle last error.

use super::batch::pma_batch;
use super::registry::{self, Kind};
use super::report::pma_report;
use super::result::pma_result;
use super::{handleless_error, opt_str_arg, out_arg, set_handleless_error, str_arg, CallError};
use crate::agent::Agent;
use crate::config::Mailbox;
use crate::error::Error;
use crate::secret::Secret;
use std::os::raw::c_char;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const DEFAULT_STATE_DIR: &str = "./state";

static NEXT_HANDLE_ID: AtomicU64 = AtomicU64::new(1);

/// An agent for one mailbox (opaque). Created by `pma_init`, freed by `pma_free`.
///
/// Thread safety: a handle may be used from any thread; calls on one handle are serialised
/// (a second thread waits while a fetch runs). Each handle keeps the last error of its own
/// calls, read with `pma_last_error`.
pub struct pma_agent {
    pub(crate) id: u64,
    inner: Mutex<Inner>,
    last_error: Mutex<Option<CallError>>,
}

struct Inner {
    mailbox: Mailbox,
    state_dir: PathBuf,
    /// `None` while the mailbox lacks credentials (see `pma_init`) or after a rebuild failed;
    /// `unusable` then says why.
    agent: Option<Agent>,
    unusable: Option<Error>,
    /// Bumped whenever `agent` is rebuilt: batches of an older agent cannot be acknowledged.
    generation: u64,
    /// Batches of the current generation alive and not acknowledged. When none is left,
    /// the messages of batches freed without ack are released for the next fetch.
    live_unacked: Arc<AtomicUsize>,
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
}

impl pma_agent {
    fn record(&self, e: CallError) {
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

/// Runs `f` on the locked handle: records a failure as the handle's last error, reports a
/// poisoned handle, and catches panics.
///
/// # Safety
/// As [`handle`].
unsafe fn with_agent(
    agent: *const pma_agent,
    f: impl FnOnce(&pma_agent, &mut Inner) -> Result<(), CallError>,
) -> pma_result {
    // SAFETY: forwarded contract.
    let h = match unsafe { handle(agent) } {
        Ok(h) => h,
        Err(e) => {
            set_handleless_error(&e);
            return e.code;
        }
    };
    super::boundary(
        |e| h.record(e),
        || {
            let mut inner = match h.inner.lock() {
                Ok(g) => g,
                Err(_) => {
                    let e = CallError::new(
                        pma_result::PMA_POISONED,
                        "an earlier call on this agent panicked; free it and create a new one",
                    );
                    h.record(e.clone());
                    return e.code;
                }
            };
            match f(h, &mut inner) {
                Ok(()) => pma_result::PMA_OK,
                Err(e) => {
                    h.record(e.clone());
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
    let (agent, unusable) = match mailbox.validate() {
        Ok(()) => (Some(Agent::new(mailbox.clone(), state_dir.clone())?), None),
        // Credentials may come later through pma_set_oauth_credentials.
        Err(e) => (None, Some(e)),
    };
    Ok(Box::new(pma_agent {
        id: NEXT_HANDLE_ID.fetch_add(1, Ordering::Relaxed),
        inner: Mutex::new(Inner {
            mailbox,
            state_dir,
            agent,
            unusable,
            generation: 1,
            live_unacked: Arc::new(AtomicUsize::new(0)),
        }),
        last_error: Mutex::new(None),
    }))
}

/// Creates an agent for one mailbox.
///
/// `mailbox_json`: one entry of the configuration's `mailboxes` array (UTF-8, NUL-terminated),
/// e.g. `{"name": "Helpdesk", "email": "helpdesk@contoso.com", "username": "…",
/// "password_env": "HELPDESK_PASSWORD", "oauth": {"enabled": true, …}}`. Relative paths in it
/// (`password_file`, `imap.ca_file`) are taken from the current directory. Credentials may be
/// left out and supplied by `pma_set_oauth_credentials`; until the mailbox is complete,
/// `pma_test_connection` and `pma_fetch_tickets` fail with `PMA_CONFIG` naming what is missing.
///
/// `state_dir`: where the mailbox's state, token cache and lock file live; NULL means
/// `"./state"`. Only one agent (in any process) may work on a mailbox name in one state
/// directory at a time; a second one fails with `PMA_IO`.
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
        |e| set_handleless_error(&e),
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
                    set_handleless_error(&e);
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
/// free). No other call on this handle may be running or follow.
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
    });
}

/// Sets the OAuth 2.0 Application ID and Directory ID (and the client secret for the
/// `client_credentials` flow), enables OAuth for the mailbox, and rebuilds the agent.
///
/// `client_secret` may be NULL: a secret from the mailbox JSON is kept. The library copies
/// the strings; the copy of the secret is wiped from memory when the handle is freed or the
/// secret replaced. On failure (e.g. `PMA_CONFIG` when the result would be incomplete) the
/// handle keeps its previous settings. Batches fetched before a successful call can no
/// longer be acknowledged (`PMA_FOREIGN_BATCH`); their messages come again.
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
        with_agent(agent, |_, inner| {
            let app = str_arg(application_id, "application_id")?;
            let dir = str_arg(directory_id, "directory_id")?;
            let secret = opt_str_arg(client_secret, "client_secret")?.map(Secret::new);
            let mut next = inner.mailbox.clone();
            next.set_oauth_credentials(app, dir, secret)?;
            // The old agent holds the mailbox lock: drop it before building the new one.
            let had_agent = inner.agent.is_some();
            if let Some(mut old) = inner.agent.take() {
                smol::block_on(old.disconnect());
            }
            inner.generation += 1;
            inner.live_unacked = Arc::new(AtomicUsize::new(0));
            match Agent::new(next.clone(), inner.state_dir.clone()) {
                Ok(a) => {
                    inner.mailbox = next;
                    inner.agent = Some(a);
                    inner.unusable = None;
                    Ok(())
                }
                Err(e) => {
                    // Keep the previous settings working when they did.
                    if had_agent {
                        match Agent::new(inner.mailbox.clone(), inner.state_dir.clone()) {
                            Ok(a) => inner.agent = Some(a),
                            Err(e2) => inner.unusable = Some(e2),
                        }
                    }
                    Err(e.into())
                }
            }
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
        with_agent(agent, |_, inner| {
            let id = str_arg(message_id, "message_id")?;
            let ticket = str_arg(ticket_number, "ticket_number")?;
            inner.agent()?.register_sent(id, ticket)?;
            Ok(())
        })
    }
}

/// Tests the connection step by step (token, connect, TLS, capabilities, authenticate,
/// select), stopping at the first failure.
///
/// Returns `PMA_OK` whenever a report was made, healthy or not: check
/// `pma_report_healthy`, and each step's result and fix. Fails without a report only when
/// the handle cannot run a test (e.g. `PMA_CONFIG` for missing credentials). On success
/// `*out` receives a report owned by the caller, freed with `pma_report_free`.
///
/// Blocks the calling thread (every network step has the mailbox's timeout).
/// Thread-safe; serialised with the handle's other calls.
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
        with_agent(agent, |_, inner| {
            out_arg(out, "out")?;
            let a = inner.agent()?;
            let report = smol::block_on(a.test_connection());
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
/// Nothing changes on the server until the batch is given to `pma_ack`, which the caller does
/// after storing the tickets. Messages of a batch freed without ack are fetched again once no
/// unacknowledged batch of this handle is alive.
///
/// On success `*out` receives a batch owned by the caller, freed with `pma_batch_free`.
/// Blocks the calling thread. Thread-safe; serialised with the handle's other calls.
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
        with_agent(agent, |h, inner| {
            out_arg(out, "out")?;
            if max == 0 {
                return Err(CallError::new(
                    pma_result::PMA_INVALID_ARGUMENT,
                    "max is 0: ask for at least one ticket",
                ));
            }
            let live = inner.live_unacked.clone();
            let generation = inner.generation;
            let a = inner.agent()?;
            if live.load(Ordering::SeqCst) == 0 {
                a.release_unacked();
            }
            let batch = smol::block_on(a.fetch(max))?;
            live.fetch_add(1, Ordering::SeqCst);
            let boxed = Box::new(pma_batch::new(batch, h.id, generation, live));
            // SAFETY: checked non-NULL; writable by the caller's contract.
            *out = registry::into_handle(boxed, Kind::Batch);
            Ok(())
        })
    }
}

/// Acknowledges a batch after its tickets were stored: remembers their dedupe keys, then marks
/// the messages read, moves or deletes them on the server (`after_processing`).
///
/// `PMA_FOREIGN_BATCH` when the batch came from another handle (or before this handle was
/// rebuilt); `PMA_ALREADY_ACKED` the second time. On a network error the batch stays
/// unacknowledged and may be acknowledged again. The batch remains owned by the caller
/// (free it with `pma_batch_free`).
///
/// Blocks the calling thread. Thread-safe; serialised with the handle's other calls.
///
/// # Safety
/// `agent` is NULL or a live handle; `batch` is NULL or a live batch.
#[no_mangle]
pub unsafe extern "C" fn pma_ack(agent: *mut pma_agent, batch: *const pma_batch) -> pma_result {
    // SAFETY: forwarded contracts.
    unsafe {
        with_agent(agent, |h, inner| {
            let b = pma_batch::from_ptr(batch)?;
            if b.handle_id != h.id || b.generation != inner.generation {
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
            let a = inner.agent()?;
            // A batch with nothing to acknowledge was never registered by the core.
            if !b.batch.is_void() {
                smol::block_on(a.ack(&b.batch))?;
            }
            b.mark_acked();
            Ok(())
        })
    }
}

/// Copies the message of the last failed call on `agent` — what went wrong and, where an
/// administrator can act, `(fix: …)` — into `buf` as a NUL-terminated UTF-8 string. The
/// text never contains a password, client secret or token. An empty string when no call on
/// the handle failed yet.
///
/// `agent` NULL: the last error of a call on the calling thread that had no handle to record
/// it in (a failed `pma_init`, a NULL or invalid agent).
///
/// On success `*out_n` receives the length written, excluding the NUL. When `len` is too
/// small (including `buf` NULL with `len` 0, to ask for the size) the result is
/// `PMA_BUFFER_TOO_SMALL`, nothing is written to `buf`, and `*out_n` receives the size needed
/// including the NUL. Calling this function never changes the recorded error.
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
                handleless_error()
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
        let r = unsafe { with_agent(h, |_, _| panic!("inside the lock")) };
        assert_eq!(r, pma_result::PMA_PANIC);
        let r = unsafe { with_agent(h, |_, _| Ok(())) };
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
