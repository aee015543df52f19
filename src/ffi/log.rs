//! Forwarding the library's log records to a host callback.
//!
//! The logger is installed only when a host asks (the library stays silent otherwise), and
//! never forwards async-imap / imap-proto trace records: they carry raw IMAP commands,
//! LOGIN passwords and XOAUTH2 tokens included.

use super::result::pma_result;
use crate::cli_log::is_safe_record;
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::ffi::CString;
use std::os::raw::{c_char, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Once, RwLock};

/// Severity of a log record, and the threshold given to `pma_set_log_callback`.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum pma_log_level {
    /// No records (as a threshold).
    PMA_LOG_OFF = 0,
    /// Failures.
    PMA_LOG_ERROR = 1,
    /// Something odd that the agent worked around.
    PMA_LOG_WARN = 2,
    /// What the agent does: connections, batches, acknowledgements.
    PMA_LOG_INFO = 3,
    /// Details for diagnosis.
    PMA_LOG_DEBUG = 4,
    /// Everything (raw protocol records that could contain secrets are never forwarded).
    PMA_LOG_TRACE = 5,
}

/// Receives one log record. `level` is the record's severity; `target` the module that logged
/// (e.g. `"psa_mail_agent::agent"`) and `message` the text, both NUL-terminated UTF-8 valid
/// only during the call. `userdata` is the pointer given to `pma_set_log_callback`.
///
/// Called on whichever thread logs, possibly several at once, often from inside another
/// `pma_*` call: it must be thread-safe, return quickly, not call `pma_set_log_callback`, and
/// not unwind (no C++ exception or longjmp may leave it).
#[allow(non_camel_case_types)]
pub type pma_log_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        level: pma_log_level,
        target: *const c_char,
        message: *const c_char,
    ),
>;

struct Sink {
    cb: unsafe extern "C" fn(*mut c_void, pma_log_level, *const c_char, *const c_char),
    userdata: *mut c_void,
    level: LevelFilter,
}

// SAFETY: the host promises (pma_set_log_callback's contract) that the callback and its
// userdata may be used from any thread.
unsafe impl Send for Sink {}
// SAFETY: as above.
unsafe impl Sync for Sink {}

/// The current sink. A read lock is held while the callback runs, so once
/// `pma_set_log_callback` returns no call to the previous callback is still running.
static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static INSTALL: Once = Once::new();
/// Whether the process-wide logger is our forwarder.
static OURS: AtomicBool = AtomicBool::new(false);

struct Forwarder;

impl Log for Forwarder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        if !is_safe_record(metadata.target(), metadata.level()) {
            return false;
        }
        let sink = SINK.read().unwrap_or_else(|p| p.into_inner());
        sink.as_ref().is_some_and(|s| metadata.level() <= s.level)
    }

    fn log(&self, record: &Record<'_>) {
        if !is_safe_record(record.target(), record.level()) {
            return;
        }
        let sink = SINK.read().unwrap_or_else(|p| p.into_inner());
        let Some(s) = sink.as_ref() else { return };
        if record.level() > s.level {
            return;
        }
        let text = record.args().to_string().replace('\0', "\u{fffd}");
        let target = record.target().replace('\0', "\u{fffd}");
        let (Ok(text), Ok(target)) = (CString::new(text), CString::new(target)) else {
            return;
        };
        let level = match record.level() {
            Level::Error => pma_log_level::PMA_LOG_ERROR,
            Level::Warn => pma_log_level::PMA_LOG_WARN,
            Level::Info => pma_log_level::PMA_LOG_INFO,
            Level::Debug => pma_log_level::PMA_LOG_DEBUG,
            Level::Trace => pma_log_level::PMA_LOG_TRACE,
        };
        // SAFETY: the host registered `cb` for exactly this signature and keeps `userdata`
        // valid until it replaces or removes the callback (which waits for this read lock).
        unsafe { (s.cb)(s.userdata, level, target.as_ptr(), text.as_ptr()) };
    }

    fn flush(&self) {}
}

fn level_filter(level: u32) -> Option<LevelFilter> {
    Some(match level {
        0 => LevelFilter::Off,
        1 => LevelFilter::Error,
        2 => LevelFilter::Warn,
        3 => LevelFilter::Info,
        4 => LevelFilter::Debug,
        5 => LevelFilter::Trace,
        _ => return None,
    })
}

/// Sends the library's log records up to severity `max_level` (a `pma_log_level` value) to
/// `callback`, replacing any callback set before. `callback` NULL stops forwarding (the
/// library is silent until a callback is set). Records of other Rust code in the process are
/// not forwarded; raw IMAP protocol traces never are, since they could contain passwords or
/// tokens.
///
/// When this function returns, the previous callback is no longer running and will not be
/// called again: its `userdata` may then be released.
///
/// `PMA_INVALID_ARGUMENT` for a level above `PMA_LOG_TRACE`; `PMA_LOGGER_UNAVAILABLE` when
/// another Rust logger already owns the process (static library inside a Rust program).
/// Thread-safe (process-wide setting).
///
/// # Safety
/// `callback` follows the `pma_log_callback` contract; `userdata` stays valid for it until
/// this function is called again.
#[no_mangle]
pub unsafe extern "C" fn pma_set_log_callback(
    callback: pma_log_callback,
    userdata: *mut c_void,
    max_level: u32,
) -> pma_result {
    super::boundary(
        |_| {},
        || {
            let Some(level) = level_filter(max_level) else {
                return pma_result::PMA_INVALID_ARGUMENT;
            };
            if callback.is_some() {
                INSTALL.call_once(|| {
                    let ok = log::set_boxed_logger(Box::new(Forwarder)).is_ok();
                    OURS.store(ok, Ordering::SeqCst);
                });
                if !OURS.load(Ordering::SeqCst) {
                    return pma_result::PMA_LOGGER_UNAVAILABLE;
                }
            }
            let mut sink = SINK.write().unwrap_or_else(|p| p.into_inner());
            *sink = callback.map(|cb| Sink {
                cb,
                userdata,
                level,
            });
            // The global filter belongs to whoever installed the logger: touch it only if we did.
            if OURS.load(Ordering::SeqCst) {
                log::set_max_level(sink.as_ref().map_or(LevelFilter::Off, |s| s.level));
            }
            pma_result::PMA_OK
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::sync::Mutex;

    static SEEN: Mutex<Vec<(u32, String, String)>> = Mutex::new(Vec::new());

    unsafe extern "C" fn record(
        _userdata: *mut c_void,
        level: pma_log_level,
        target: *const c_char,
        message: *const c_char,
    ) {
        // SAFETY: the forwarder passes NUL-terminated strings valid for the call.
        let (t, m) = unsafe { (CStr::from_ptr(target), CStr::from_ptr(message)) };
        SEEN.lock().unwrap().push((
            level as u32,
            t.to_string_lossy().into_owned(),
            m.to_string_lossy().into_owned(),
        ));
    }

    fn set_sink(level: LevelFilter) {
        *SINK.write().unwrap() = Some(Sink {
            cb: record,
            userdata: std::ptr::null_mut(),
            level,
        });
    }

    // The forwarder is driven directly: installing it as the process logger would take the
    // global logger away from other tests in this binary that capture logs themselves.
    fn emit(target: &str, level: Level, text: &str) {
        Forwarder.log(
            &Record::builder()
                .target(target)
                .level(level)
                .args(format_args!("{text}"))
                .build(),
        );
    }

    #[test]
    fn forwards_by_level_and_never_imap_traces() {
        set_sink(LevelFilter::Trace);
        emit("async_imap::imap_stream", Level::Trace, "LOGIN a secret");
        emit("imap_proto::parser", Level::Trace, "token");
        emit("async_imap::client", Level::Debug, "debug");
        emit("psa_mail_agent::agent", Level::Trace, "own trace");
        emit("psa_mail_agent::agent", Level::Info, "with\0nul");
        assert!(!Forwarder.enabled(
            &Metadata::builder()
                .target("async_imap::imap_stream")
                .level(Level::Trace)
                .build()
        ));
        set_sink(LevelFilter::Warn);
        emit("psa_mail_agent::agent", Level::Info, "above warn");
        emit("psa_mail_agent::agent", Level::Warn, "warn");
        *SINK.write().unwrap() = None;
        emit("psa_mail_agent::agent", Level::Error, "after removal");
        assert_eq!(
            unsafe { pma_set_log_callback(Some(record), std::ptr::null_mut(), 6) },
            pma_result::PMA_INVALID_ARGUMENT
        );
        let seen = SEEN.lock().unwrap().clone();
        let texts: Vec<&str> = seen.iter().map(|(_, _, m)| m.as_str()).collect();
        assert_eq!(texts, ["debug", "own trace", "with\u{fffd}nul", "warn"]);
        assert_eq!(seen[1].0, pma_log_level::PMA_LOG_TRACE as u32);
        assert_eq!(seen[1].1, "psa_mail_agent::agent");
    }
}
