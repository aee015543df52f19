//! The batch handle: the tickets of one fetch as JSON (all at once or one by one), each
//! attachment's raw bytes, and (with `keep_raw`) each message as received.

use super::registry::{self, Kind};
use super::result::pma_result;
use super::{boundary_value, out_arg, set_thread_error, CText, CallError};
use crate::agent::Batch;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Attachment bytes decoded on demand, by (ticket index, attachment index).
type DecodedAttachments = std::collections::HashMap<(usize, usize), Box<[u8]>>;

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
    /// Each ticket's attachments' `save_as` names, NUL-terminated for C.
    save_as: Vec<Vec<CText>>,
    acked: AtomicBool,
    live_unacked: Arc<AtomicUsize>,
    /// Whether the mailbox kept the raw messages (`keep_raw`).
    keep_raw: bool,
    /// Bytes of large attachments, decoded from the message when the caller first asks for them
    /// (by ticket and attachment index); boxed, so a pointer handed out stays put.
    decoded: std::sync::Mutex<DecodedAttachments>,
}

impl pma_batch {
    pub(crate) fn new(
        batch: Batch,
        handle_id: u64,
        generation: u64,
        live_unacked: Arc<AtomicUsize>,
        keep_raw: bool,
    ) -> Self {
        let tickets: Vec<String> = batch.tickets.iter().map(|t| t.to_json()).collect();
        let json = format!("[{}]", tickets.join(","));
        let save_as = batch
            .tickets
            .iter()
            .map(|t| {
                t.attachments
                    .iter()
                    .map(|a| CText::new(a.save_as.clone()))
                    .collect()
            })
            .collect();
        pma_batch {
            handle_id,
            generation,
            batch,
            json: CText::new(json),
            tickets: tickets.into_iter().map(CText::new).collect(),
            save_as,
            acked: AtomicBool::new(false),
            live_unacked,
            keep_raw,
            decoded: Default::default(),
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

/// Runs the batch accessor `name`: checks the handle and the out-parameters, catches panics.
/// A failure is recorded as the calling thread's last error (no agent is at hand).
fn accessor(
    batch: *const pma_batch,
    name: &'static str,
    f: impl FnOnce(&pma_batch) -> Result<(), CallError>,
) -> pma_result {
    super::boundary(
        |e| set_thread_error(name, &e),
        || {
            // SAFETY: the export's caller guarantees NULL or a live batch.
            match unsafe { pma_batch::from_ptr(batch) }.and_then(f) {
                Ok(()) => pma_result::PMA_OK,
                Err(e) => {
                    set_thread_error(name, &e);
                    e.code
                }
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
    accessor(batch, "pma_batch_json", |b| {
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
    accessor(batch, "pma_batch_ticket_json", |b| {
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
/// in the order of the ticket's `attachments` array (store them under the name
/// `pma_batch_attachment_save_as` gives, never under the sender's `filename`). `*len` may be 0 for an empty part; `*ptr`
/// is then still non-NULL but must not be read. The memory belongs to the batch: valid until
/// `pma_batch_free`. A large message's attachments are decoded from the message on the first
/// call for them (the batch holds the message, not a decoded copy, until then).
///
/// `PMA_ATTACHMENT_OMITTED` (out-parameters not written) for an attachment whose bytes are not
/// carried because it is larger than the mailbox's `max_attachment_bytes`: the ticket JSON
/// marks it `"omitted": "too_large"` with its `size` and `sha256`, and its `warnings` say so.
/// `PMA_INDEX_OUT_OF_RANGE` for a bad index. Thread-safe.
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
    accessor(batch, "pma_batch_attachment", |b| {
        out_arg(ptr, "ptr")?;
        out_arg(len, "len")?;
        index_check(ticket_index, b.batch.tickets.len(), "ticket")?;
        let atts = &b.batch.tickets[ticket_index].attachments;
        index_check(attachment_index, atts.len(), "attachment")?;
        let att = &atts[attachment_index];
        if att.omitted.is_some() {
            return Err(CallError::new(
                pma_result::PMA_ATTACHMENT_OMITTED,
                format!(
                    "attachment {attachment_index} of ticket {ticket_index} ({:?}, {} bytes) is larger than max_attachment_bytes: its bytes are not carried (the ticket marks it \"omitted\": \"too_large\"); open the mail in the mailbox, or raise max_attachment_bytes",
                    att.save_as,
                    att.size
                ),
            ));
        }
        let (p, n) = if att.data.is_empty() && att.pending.is_some() {
            let mut decoded = b
                .decoded
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let bytes = decoded
                .entry((ticket_index, attachment_index))
                .or_insert_with(|| att.bytes().into_owned().into_boxed_slice());
            (bytes.as_ptr(), bytes.len())
        } else {
            (att.data.as_ptr(), att.data.len())
        };
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe {
            *ptr = p;
            *len = n;
        }
        Ok(())
    })
}

/// The safe file name to store attachment `attachment_index` of ticket `ticket_index` under:
/// its `save_as` (UTF-8, NUL-terminated; `*len` is its length in bytes without the NUL).
/// Always set and unique within the ticket (compared case-insensitively): the name the sender
/// gave without directories, control characters, `<>:"|?*`, leading dots or trailing dots and
/// spaces, never a reserved Windows device name (`CON`, `NUL`, `COM1`, ... get a leading `_`),
/// at most 200 bytes; without a sent name an attached message's subject + `.eml`, else a name
/// from the content type (`image.png`, `document.pdf`, `invite.ics`). The sender's own name,
/// unchanged, is the ticket JSON's `filename` (null when the part had none): show that, store
/// under this. Given also for an attachment whose bytes are omitted. The memory belongs to
/// the batch: valid until `pma_batch_free`. `PMA_INDEX_OUT_OF_RANGE` for a bad index.
/// Thread-safe.
///
/// # Safety
/// `batch` is NULL or a live batch; `ptr` and `len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pma_batch_attachment_save_as(
    batch: *const pma_batch,
    ticket_index: usize,
    attachment_index: usize,
    ptr: *mut *const c_char,
    len: *mut usize,
) -> pma_result {
    accessor(batch, "pma_batch_attachment_save_as", |b| {
        out_arg(ptr, "ptr")?;
        out_arg(len, "len")?;
        index_check(ticket_index, b.save_as.len(), "ticket")?;
        let names = &b.save_as[ticket_index];
        index_check(attachment_index, names.len(), "attachment")?;
        let name = &names[attachment_index];
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe {
            *ptr = name.ptr();
            *len = name.len();
        }
        Ok(())
    })
}

/// The raw RFC 822 bytes of ticket `index`'s message exactly as the server sent them (to
/// archive it as an `.eml`), for a mailbox with `"keep_raw": true`. For a message too large to
/// fetch whole (its ticket's `warnings` say so) only its header was fetched and is given. The
/// memory belongs to the batch: valid until `pma_batch_free`.
///
/// `PMA_RAW_NOT_KEPT` when the mailbox does not keep raw messages (`keep_raw` is false, the
/// default); `PMA_INDEX_OUT_OF_RANGE` for a bad index. Thread-safe.
///
/// # Safety
/// `batch` is NULL or a live batch; `ptr` and `len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pma_batch_raw(
    batch: *const pma_batch,
    index: usize,
    ptr: *mut *const u8,
    len: *mut usize,
) -> pma_result {
    accessor(batch, "pma_batch_raw", |b| {
        out_arg(ptr, "ptr")?;
        out_arg(len, "len")?;
        if !b.keep_raw {
            return Err(CallError::new(
                pma_result::PMA_RAW_NOT_KEPT,
                "the mailbox does not keep raw messages: set \"keep_raw\": true in its JSON",
            ));
        }
        index_check(index, b.batch.tickets.len(), "ticket")?;
        let raw = b.batch.raw(index).ok_or_else(|| {
            CallError::new(
                pma_result::PMA_INTERNAL,
                format!("ticket {index} has no raw message although keep_raw is set"),
            )
        })?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe {
            *ptr = raw.as_ptr();
            *len = raw.len();
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
