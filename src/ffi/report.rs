//! The connection-test report handle: healthy or not, and every step with its duration,
//! detail and (on failure) result code and administrator's fix.

use super::registry::{self, Kind};
use super::result::pma_result;
use super::{boundary_value, out_arg, set_thread_error, CText, CallError};
use crate::agent::Report;
use serde::Serialize;
use std::os::raw::c_char;

/// The result of `pma_test_connection` (opaque). Freed with `pma_report_free`.
/// Immutable: its accessors may be called from any thread at once.
pub struct pma_report {
    healthy: bool,
    json: CText,
    steps: Vec<StepText>,
}

struct StepText {
    name: CText,
    status: pma_step_status,
    duration_ms: u64,
    detail: CText,
    fix: Option<CText>,
    result: pma_result,
}

/// What happened to one step of a connection test.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum pma_step_status {
    /// The step succeeded.
    PMA_STEP_PASSED = 0,
    /// The step failed: `result` and `fix` say why and what to do.
    PMA_STEP_FAILED = 1,
    /// The step did not run because an earlier one failed.
    PMA_STEP_SKIPPED = 2,
}

/// One step of a connection test, as `pma_report_step` fills it in. Every pointer belongs to
/// the report and stays valid until `pma_report_free`.
#[repr(C)]
pub struct pma_step {
    /// `"tenant"` (only when the tenant is discovered from the address), `"token"`,
    /// `"connect"`, `"tls"`, `"capabilities"`, `"authenticate"` or `"select"`
    /// (NUL-terminated).
    pub name: *const c_char,
    /// Passed, failed or skipped.
    pub status: pma_step_status,
    /// `PMA_OK` unless the step failed; then the error's code (e.g. `PMA_LOGIN_FAILED`).
    pub result: pma_result,
    /// How long the step took, in milliseconds.
    pub duration_ms: u64,
    /// What was found, or what went wrong (NUL-terminated UTF-8).
    pub detail: *const c_char,
    /// What the administrator should do about a failure (NUL-terminated UTF-8), or NULL.
    pub fix: *const c_char,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    healthy: bool,
    steps: Vec<JsonStep<'a>>,
}

#[derive(Serialize)]
struct JsonStep<'a> {
    name: &'a str,
    status: &'a str,
    result: u32,
    result_name: &'a str,
    duration_ms: u64,
    detail: &'a str,
    fix: Option<&'a str>,
}

impl pma_report {
    pub(crate) fn new(report: Report) -> Self {
        let healthy = report.healthy();
        let steps: Vec<StepText> = report
            .steps
            .iter()
            .map(|s| StepText {
                name: CText::new(s.name.to_string()),
                status: match s.ok {
                    Some(true) => pma_step_status::PMA_STEP_PASSED,
                    Some(false) => pma_step_status::PMA_STEP_FAILED,
                    None => pma_step_status::PMA_STEP_SKIPPED,
                },
                duration_ms: s.duration.as_millis().try_into().unwrap_or(u64::MAX),
                detail: CText::new(s.detail.clone()),
                fix: s.fix.clone().map(CText::new),
                result: s.kind.map(pma_result::from).unwrap_or(pma_result::PMA_OK),
            })
            .collect();
        let json = crate::state::to_json(&JsonReport {
            healthy,
            steps: report
                .steps
                .iter()
                .zip(&steps)
                .map(|(s, t)| JsonStep {
                    name: s.name,
                    status: match t.status {
                        pma_step_status::PMA_STEP_PASSED => "passed",
                        pma_step_status::PMA_STEP_FAILED => "failed",
                        pma_step_status::PMA_STEP_SKIPPED => "skipped",
                    },
                    result: t.result as u32,
                    result_name: t.result.name().trim_end_matches('\0'),
                    duration_ms: t.duration_ms,
                    detail: &s.detail,
                    fix: s.fix.as_deref(),
                })
                .collect(),
        });
        pma_report {
            healthy,
            json: CText::new(json),
            steps,
        }
    }

    /// # Safety
    /// `p` is NULL or a live report.
    unsafe fn from_ptr<'a>(p: *const pma_report) -> Result<&'a pma_report, CallError> {
        if p.is_null() {
            return Err(CallError::new(
                pma_result::PMA_NULL_ARGUMENT,
                "report is NULL",
            ));
        }
        if !registry::is_live(p, Kind::Report) {
            return Err(CallError::new(
                pma_result::PMA_INVALID_HANDLE,
                "report is not a live pma_report handle (another kind of handle, or freed already)",
            ));
        }
        // SAFETY: registered, hence made by pma_test_connection and not freed.
        let r = unsafe { &*p };
        Ok(r)
    }
}

/// Whether every step passed. false for NULL or an invalid handle. Thread-safe.
///
/// # Safety
/// `report` is NULL or a live report.
#[no_mangle]
pub unsafe extern "C" fn pma_report_healthy(report: *const pma_report) -> bool {
    boundary_value(false, || {
        // SAFETY: caller's contract.
        unsafe { pma_report::from_ptr(report) }
            .map(|r| r.healthy)
            .unwrap_or(false)
    })
}

/// The report as JSON: `{"healthy": bool, "steps": [{"name", "status" ("passed" | "failed" |
/// "skipped"), "result" (pma_result value), "result_name", "duration_ms", "detail", "fix"
/// (string or null)}]}`. `*ptr` receives the UTF-8 text (also NUL-terminated), `*len` its
/// length without the NUL; the memory belongs to the report (valid until
/// `pma_report_free`). Thread-safe.
///
/// # Safety
/// `report` is NULL or a live report; `ptr` and `len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pma_report_json(
    report: *const pma_report,
    ptr: *mut *const c_char,
    len: *mut usize,
) -> pma_result {
    super::boundary(
        |_| {},
        || {
            let r = (|| {
                // SAFETY: caller's contract.
                let r = unsafe { pma_report::from_ptr(report) }?;
                out_arg(ptr, "ptr")?;
                out_arg(len, "len")?;
                // SAFETY: checked non-NULL; writable by the caller's contract.
                unsafe {
                    *ptr = r.json.ptr();
                    *len = r.json.len();
                }
                Ok::<(), CallError>(())
            })();
            r.map_or_else(
                |e| {
                    set_thread_error("pma_report_json", &e);
                    e.code
                },
                |()| pma_result::PMA_OK,
            )
        },
    )
}

/// The number of steps in the report. 0 for NULL or an invalid handle. Thread-safe.
///
/// # Safety
/// `report` is NULL or a live report.
#[no_mangle]
pub unsafe extern "C" fn pma_report_step_count(report: *const pma_report) -> usize {
    boundary_value(0, || {
        // SAFETY: caller's contract.
        unsafe { pma_report::from_ptr(report) }
            .map(|r| r.steps.len())
            .unwrap_or(0)
    })
}

/// Fills `*out` with step `index` (0-based, below `pma_report_step_count`);
/// `PMA_INDEX_OUT_OF_RANGE` for a bad index. The strings it points to belong to the report.
/// Thread-safe.
///
/// # Safety
/// `report` is NULL or a live report; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pma_report_step(
    report: *const pma_report,
    index: usize,
    out: *mut pma_step,
) -> pma_result {
    super::boundary(
        |_| {},
        || {
            let r = (|| {
                // SAFETY: caller's contract.
                let r = unsafe { pma_report::from_ptr(report) }?;
                out_arg(out, "out")?;
                let s = r.steps.get(index).ok_or_else(|| {
                    CallError::new(
                        pma_result::PMA_INDEX_OUT_OF_RANGE,
                        format!("step index {index} is not below {}", r.steps.len()),
                    )
                })?;
                let step = pma_step {
                    name: s.name.ptr(),
                    status: s.status,
                    result: s.result,
                    duration_ms: s.duration_ms,
                    detail: s.detail.ptr(),
                    fix: s.fix.as_ref().map_or(std::ptr::null(), CText::ptr),
                };
                // SAFETY: checked non-NULL; writable by the caller's contract.
                unsafe { out.write(step) };
                Ok::<(), CallError>(())
            })();
            r.map_or_else(
                |e| {
                    set_thread_error("pma_report_step", &e);
                    e.code
                },
                |()| pma_result::PMA_OK,
            )
        },
    )
}

/// Frees a report and every pointer it handed out. NULL is accepted and does nothing, as is
/// a pointer that is not a live report (a second free).
///
/// # Safety
/// `report` is NULL or a live report, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn pma_report_free(report: *mut pma_report) {
    boundary_value((), || {
        if !registry::take(report, Kind::Report) {
            return; // NULL, another kind of handle, or freed already
        }
        // SAFETY: made by pma_test_connection (Box) and just unregistered, so owned here.
        drop(unsafe { Box::from_raw(report) });
    });
}
