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
    credentials: Vec<CredentialText>,
}

struct CredentialText {
    kind: CText,
    state: CText,
    result: pma_result,
    renewed_at: i64,
    expires_at: i64,
    detail: CText,
    fix: Option<CText>,
}

/// One credential of the mailbox and how long it lasts, as `pma_report_credential` fills it
/// in. Every pointer belongs to the report and stays valid until `pma_report_free`.
#[repr(C)]
pub struct pma_credential {
    /// `"refresh_token"`, `"client_secret"` or `"certificate"` (NUL-terminated).
    pub kind: *const c_char,
    /// `"ok"`, `"expiring"`, `"expired"` or `"unknown"` (NUL-terminated).
    pub state: *const c_char,
    /// `PMA_OK` (ok or unknown), `PMA_CREDENTIAL_EXPIRING` (a refresh token unused for 76
    /// of its 90 days, a client secret or certificate expiring within 30 days) or
    /// `PMA_CREDENTIAL_EXPIRED`.
    pub result: pma_result,
    /// Unix seconds of the last renewal (refresh tokens), 0 when unknown or not applicable.
    pub renewed_at: i64,
    /// Unix seconds of its end (a refresh token's: 90 days after its last renewal), 0 when
    /// unknown.
    pub expires_at: i64,
    /// What it is and when it ends, in the admin's words (NUL-terminated UTF-8).
    pub detail: *const c_char,
    /// What to do when it is expiring or expired (NUL-terminated UTF-8), or NULL.
    pub fix: *const c_char,
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
    credentials: Vec<JsonCredential<'a>>,
}

#[derive(Serialize)]
struct JsonCredential<'a> {
    kind: &'a str,
    state: &'a str,
    result: u32,
    result_name: &'a str,
    renewed_at: Option<u64>,
    expires_at: Option<u64>,
    detail: &'a str,
    fix: Option<&'a str>,
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
        use crate::oauth::lifetimes::LifetimeState;
        let credential_result = |c: &crate::oauth::lifetimes::Credential| match c.state {
            LifetimeState::Expiring => pma_result::PMA_CREDENTIAL_EXPIRING,
            LifetimeState::Expired => pma_result::PMA_CREDENTIAL_EXPIRED,
            LifetimeState::Ok | LifetimeState::Unknown => pma_result::PMA_OK,
        };
        let unix = |t: Option<u64>| t.map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX));
        let credentials: Vec<CredentialText> = report
            .credentials
            .iter()
            .map(|c| CredentialText {
                kind: CText::new(c.kind.as_str().to_string()),
                state: CText::new(c.state.as_str().to_string()),
                result: credential_result(c),
                renewed_at: unix(c.renewed_at),
                expires_at: unix(c.expires_at),
                detail: CText::new(c.detail.clone()),
                fix: c.fix.clone().map(CText::new),
            })
            .collect();
        let json = crate::state::to_json(&JsonReport {
            credentials: report
                .credentials
                .iter()
                .map(|c| JsonCredential {
                    kind: c.kind.as_str(),
                    state: c.state.as_str(),
                    result: credential_result(c) as u32,
                    result_name: credential_result(c).name().trim_end_matches('\0'),
                    renewed_at: c.renewed_at,
                    expires_at: c.expires_at,
                    detail: &c.detail,
                    fix: c.fix.as_deref(),
                })
                .collect(),
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
            credentials,
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
/// (string or null)}], "credentials": [{"kind", "state", "result", "result_name",
/// "renewed_at", "expires_at" (Unix seconds or null), "detail", "fix"}]}`. `*ptr` receives the UTF-8 text (also NUL-terminated), `*len` its
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

/// The number of credentials in the report (its refresh token, client secret, certificate,
/// as far as the mailbox uses them). 0 for NULL or an invalid handle. Thread-safe.
///
/// # Safety
/// `report` is NULL or a live report.
#[no_mangle]
pub unsafe extern "C" fn pma_report_credential_count(report: *const pma_report) -> usize {
    boundary_value(0, || {
        // SAFETY: caller's contract.
        unsafe { pma_report::from_ptr(report) }
            .map(|r| r.credentials.len())
            .unwrap_or(0)
    })
}

/// Fills `*out` with credential `index` (0-based, below `pma_report_credential_count`):
/// when it was last renewed, when it ends, and a warning with its fix when that is near
/// (`result` `PMA_CREDENTIAL_EXPIRING` or `PMA_CREDENTIAL_EXPIRED`); `PMA_INDEX_OUT_OF_RANGE`
/// for a bad index. The strings it points to belong to the report. Thread-safe.
///
/// # Safety
/// `report` is NULL or a live report; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pma_report_credential(
    report: *const pma_report,
    index: usize,
    out: *mut pma_credential,
) -> pma_result {
    super::boundary(
        |_| {},
        || {
            let r = (|| {
                // SAFETY: caller's contract.
                let r = unsafe { pma_report::from_ptr(report) }?;
                out_arg(out, "out")?;
                let c = r.credentials.get(index).ok_or_else(|| {
                    CallError::new(
                        pma_result::PMA_INDEX_OUT_OF_RANGE,
                        format!(
                            "credential index {index} is not below {}",
                            r.credentials.len()
                        ),
                    )
                })?;
                let credential = pma_credential {
                    kind: c.kind.ptr(),
                    state: c.state.ptr(),
                    result: c.result,
                    renewed_at: c.renewed_at,
                    expires_at: c.expires_at,
                    detail: c.detail.ptr(),
                    fix: c.fix.as_ref().map_or(std::ptr::null(), CText::ptr),
                };
                // SAFETY: checked non-NULL; writable by the caller's contract.
                unsafe { out.write(credential) };
                Ok::<(), CallError>(())
            })();
            r.map_or_else(
                |e| {
                    set_thread_error("pma_report_credential", &e);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::lifetimes::{Credential, CredentialKind, LifetimeState};
    use std::ffi::CStr;

    #[test]
    fn credentials_reach_c_with_their_result_and_fix() {
        let credential = |kind, state, fix: Option<&str>| Credential {
            kind,
            what: "w".into(),
            renewed_at: Some(1_800_000_000),
            expires_at: Some(1_807_776_000),
            state,
            detail: format!("{} detail", kind.as_str()),
            fix: fix.map(str::to_string),
        };
        let report = Report {
            steps: Vec::new(),
            credentials: vec![
                credential(CredentialKind::RefreshToken, LifetimeState::Ok, None),
                credential(
                    CredentialKind::Certificate,
                    LifetimeState::Expiring,
                    Some("upload a new one"),
                ),
            ],
        };
        let p = registry::into_handle(Box::new(pma_report::new(report)), Kind::Report);
        unsafe {
            assert_eq!(pma_report_credential_count(p), 2);
            let mut out = std::mem::MaybeUninit::<pma_credential>::uninit();
            assert_eq!(
                pma_report_credential(p, 1, out.as_mut_ptr()),
                pma_result::PMA_OK
            );
            let c = out.assume_init();
            assert_eq!(CStr::from_ptr(c.kind).to_str().unwrap(), "certificate");
            assert_eq!(CStr::from_ptr(c.state).to_str().unwrap(), "expiring");
            assert_eq!(c.result, pma_result::PMA_CREDENTIAL_EXPIRING);
            assert_eq!(c.renewed_at, 1_800_000_000);
            assert_eq!(c.expires_at, 1_807_776_000);
            assert_eq!(CStr::from_ptr(c.fix).to_str().unwrap(), "upload a new one");
            let mut out = std::mem::MaybeUninit::<pma_credential>::uninit();
            assert_eq!(
                pma_report_credential(p, 0, out.as_mut_ptr()),
                pma_result::PMA_OK
            );
            let c = out.assume_init();
            assert_eq!(c.result, pma_result::PMA_OK);
            assert!(c.fix.is_null());
            assert_eq!(
                pma_report_credential(p, 2, std::ptr::null_mut()),
                pma_result::PMA_NULL_ARGUMENT
            );
            let mut out = std::mem::MaybeUninit::<pma_credential>::uninit();
            assert_eq!(
                pma_report_credential(p, 2, out.as_mut_ptr()),
                pma_result::PMA_INDEX_OUT_OF_RANGE
            );
            let (mut ptr, mut len) = (std::ptr::null(), 0usize);
            assert_eq!(pma_report_json(p, &mut ptr, &mut len), pma_result::PMA_OK);
            let json = CStr::from_ptr(ptr).to_str().unwrap();
            assert!(
                json.contains(r#""credentials":[{"kind":"refresh_token","state":"ok""#)
                    && json.contains(r#""result_name":"PMA_CREDENTIAL_EXPIRING""#),
                "{json}"
            );
            pma_report_free(p);
            assert_eq!(pma_report_credential_count(p), 0);
        }
    }
}
