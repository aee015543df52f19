//! The batch handle: the tickets of one fetch as JSON (all at once or one by one) and each
//! attachment's raw bytes.

use super::registry::{self, Kind};
use super::result::pma_result;
use super::{boundary_value, out_arg, CText, CallError};
use crate::agent::Batch;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// The tickets of one `pma_fetch_tickets` call (opaque). Freed with `pma_batch_free`.
///
/// Immutable once made: its accessors may be called from any thread at once. Pointers it
/// hands out stay valid until the batch is freed.
pub struct pma_batch {
    pub(crate) handle_id: u64,
    pub(crate) generation: u64,
    pub(crate) batch: Batch,
    json: CText,
    tickets: Vec<CText>,
    acked: AtomicBool,
    live_unacked: Arc<AtomicUsize>,
}

impl pma_batch {
    pub(crate) fn new(
        batch: Batch,
        handle_id: u64,
        generation: u64,
        live_unacked: Arc<AtomicUsize>,
    ) -> Self {
        let tickets: Vec<String> = batch.tickets.iter().map(|t| t.to_json()).collect();
        let json = format!("[{}]", tickets.join(","));
        pma_batch {
            handle_id,
            generation,
            batch,
            json: CText::new(json),
            tickets: tickets.into_iter().map(CText::new).collect(),
            acked: AtomicBool::new(false),
            live_unacked,
        }
    }

    /// The batch behind `p`, or the error to return.
    ///
    /// # Safety
    /// `p` is NULL or a live batch.
    pub(crate) unsafe fn from_ptr<'a>(p: *const pma_batch) -> Result<&'a pma_batch, CallError> {
        if p.is_null() {
            return Err(CallError::new(
                pma_result::PMA_NULL_ARGUMENT,
                "batch is NULL",
            ));
        }
        if !registry::is_live(p, Kind::Batch) {
            return Err(CallError::new(
                pma_result::PMA_INVALID_HANDLE,
                "batch is not a live pma_batch handle (another kind of handle, or freed already)",
            ));
        }
        // SAFETY: registered, hence made by pma_fetch_tickets and not freed.
        let b = unsafe { &*p };
        Ok(b)
    }

    pub(crate) fn is_acked(&self) -> bool {
        self.acked.load(Ordering::SeqCst)
    }

    pub(crate) fn mark_acked(&self) {
        if !self.acked.swap(true, Ordering::SeqCst) {
            self.live_unacked.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Runs a batch accessor: checks the handle and the out-parameters, catches panics.
/// Errors of accessors are not recorded anywhere but in the return code (no agent is at hand).
fn accessor(
    batch: *const pma_batch,
    f: impl FnOnce(&pma_batch) -> Result<(), CallError>,
) -> pma_result {
    super::boundary(
        |_| {},
        || {
            // SAFETY: the export's caller guarantees NULL or a live batch.
            match unsafe { pma_batch::from_ptr(batch) }.and_then(f) {
                Ok(()) => pma_result::PMA_OK,
                Err(e) => e.code,
            }
        },
    )
}

fn index_check(i: usize, count: usize, what: &str) -> Result<(), CallError> {
    if i < count {
        Ok(())
    } else {
        Err(CallError::new(
            pma_result::PMA_INDEX_OUT_OF_RANGE,
            format!("{what} index {i} is not below {count}"),
        ))
    }
}

/// The number of tickets in the batch (0 when nothing was waiting). 0 for NULL or an invalid
/// handle. Thread-safe.
///
/// # Safety
/// `batch` is NULL or a live batch.
#[no_mangle]
pub unsafe extern "C" fn pma_batch_count(batch: *const pma_batch) -> usize {
    boundary_value(0, || {
        // SAFETY: caller's contract.
        unsafe { pma_batch::from_ptr(batch) }
            .map(|b| b.batch.tickets.len())
            .unwrap_or(0)
    })
}

/// The whole batch as a JSON array of ticket objects (the ticket format of the README),
/// UTF-8. `*ptr` receives the text (also NUL-terminated), `*len` its length in bytes without
/// the NUL. The memory belongs to the batch: valid until `pma_batch_free`, never freed by the
/// caller. Thread-safe.
///
/// # Safety
/// `batch` is NULL or a live batch; `ptr` and `len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pma_batch_json(
    batch: *const pma_batch,
    ptr: *mut *const c_char,
    len: *mut usize,
) -> pma_result {
    accessor(batch, |b| {
        out_arg(ptr, "ptr")?;
        out_arg(len, "len")?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe {
            *ptr = b.json.ptr();
            *len = b.json.len();
        }
        Ok(())
    })
}

/// Ticket `index` (0-based, below `pma_batch_count`) as one JSON object, like
/// `pma_batch_json`. `PMA_INDEX_OUT_OF_RANGE` for a bad index. Thread-safe.
///
/// # Safety
/// `batch` is NULL or a live batch; `ptr` and `len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pma_batch_ticket_json(
    batch: *const pma_batch,
    index: usize,
    ptr: *mut *const c_char,
    len: *mut usize,
) -> pma_result {
    accessor(batch, |b| {
        out_arg(ptr, "ptr")?;
        out_arg(len, "len")?;
        index_check(index, b.tickets.len(), "ticket")?;
        let t = &b.tickets[index];
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe {
            *ptr = t.ptr();
            *len = t.len();
        }
        Ok(())
    })
}

/// The number of attachments of ticket `ticket_index` (the length of its `attachments`
/// array). 0 for NULL, an invalid handle or a bad index. Thread-safe.
///
/// # Safety
/// `batch` is NULL or a live batch.
#[no_mangle]
pub unsafe extern "C" fn pma_batch_attachment_count(
    batch: *const pma_batch,
    ticket_index: usize,
) -> usize {
    boundary_value(0, || {
        // SAFETY: caller's contract.
        unsafe { pma_batch::from_ptr(batch) }
            .ok()
            .and_then(|b| b.batch.tickets.get(ticket_index))
            .map(|t| t.attachments.len())
            .unwrap_or(0)
    })
}

/// The decoded bytes (no base64) of attachment `attachment_index` of ticket `ticket_index`,
/// in the order of the ticket's `attachments` array. `*len` may be 0 (an empty part, or one
/// over `max_attachment_bytes`, which the ticket's `warnings` mention); `*ptr` is then still
/// non-NULL but must not be read. The memory belongs to the batch: valid until
/// `pma_batch_free`. `PMA_INDEX_OUT_OF_RANGE` for a bad index. Thread-safe.
///
/// # Safety
/// `batch` is NULL or a live batch; `ptr` and `len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pma_batch_attachment(
    batch: *const pma_batch,
    ticket_index: usize,
    attachment_index: usize,
    ptr: *mut *const u8,
    len: *mut usize,
) -> pma_result {
    accessor(batch, |b| {
        out_arg(ptr, "ptr")?;
        out_arg(len, "len")?;
        index_check(ticket_index, b.batch.tickets.len(), "ticket")?;
        let atts = &b.batch.tickets[ticket_index].attachments;
        index_check(attachment_index, atts.len(), "attachment")?;
        let data = &atts[attachment_index].data;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe {
            *ptr = data.as_ptr();
            *len = data.len();
        }
        Ok(())
    })
}

/// Frees a batch and every pointer it handed out. NULL is accepted and does nothing, as is a
/// pointer that is not a live batch (a second free).
/// A batch freed without `pma_ack` is not lost: its messages are fetched again. No other call
/// on this batch may be running or follow. The agent that made it may be freed before or
/// after.
///
/// # Safety
/// `batch` is NULL or a live batch.
#[no_mangle]
pub unsafe extern "C" fn pma_batch_free(batch: *mut pma_batch) {
    boundary_value((), || {
        if !registry::take(batch, Kind::Batch) {
            return; // NULL, another kind of handle, or freed already
        }
        // SAFETY: made by pma_fetch_tickets (Box) and just unregistered, so owned here.
        let b = unsafe { Box::from_raw(batch) };
        if !b.is_acked() {
            b.live_unacked.fetch_sub(1, Ordering::SeqCst);
        }
    });
}
