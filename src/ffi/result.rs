//! `pma_result`: every export's return code, and the mapping from the core's [`ErrorKind`].
//!
//! Values are grouped by family and never reused: a code removed from the library stays
//! reserved, so a host that stored or logged a number keeps its meaning.

use crate::error::ErrorKind;
use std::os::raw::c_char;

/// The outcome of a call. `PMA_OK` (0) is success; every other value is an error, grouped by
/// family: 1xx the API itself (misuse, cancellation), 2xx configuration and local files, 3xx
/// network and TLS, 4xx IMAP, 5xx OAuth (Microsoft identity platform), 6xx mail and delivery,
/// 7xx Microsoft Graph, 9xx internal.
/// Values are never reused. `pma_result_str` names a code; `pma_last_error` gives the message
/// and the administrator's fix of the call that failed.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum pma_result {
    /// Success.
    PMA_OK = 0,

    // --- 1xx: the API itself: misuse, cancellation
    /// A required pointer argument was NULL.
    PMA_NULL_ARGUMENT = 100,
    /// A string argument was not valid UTF-8.
    PMA_INVALID_UTF8 = 101,
    /// The output buffer is too small; the size needed (including the NUL) was written to the
    /// size out-parameter.
    PMA_BUFFER_TOO_SMALL = 102,
    /// The pointer is not a live handle of the expected kind: another kind of handle, one freed
    /// already, or not from this library. It was not read. (An address the allocator reused for
    /// a new handle of the same kind cannot be told apart: do not keep freed handles.)
    PMA_INVALID_HANDLE = 103,
    /// `pma_ack` was given a batch fetched by another agent handle (or before the handle was
    /// rebuilt by `pma_set_oauth_credentials`).
    PMA_FOREIGN_BATCH = 104,
    /// The library panicked inside this call; the call had no effect that can be relied on.
    PMA_PANIC = 105,
    /// An earlier call on this handle panicked while holding it: free the handle and create a
    /// new one.
    PMA_POISONED = 106,
    /// An index argument is not below the matching count.
    PMA_INDEX_OUT_OF_RANGE = 107,
    /// `pma_ack` was given a batch that was acknowledged already.
    PMA_ALREADY_ACKED = 108,
    /// An argument has a value outside its documented range (for example a log level).
    PMA_INVALID_ARGUMENT = 109,
    /// Another logger was installed in this process before `pma_set_log_callback` (only
    /// possible when the static library is linked into a Rust program that sets its own).
    PMA_LOGGER_UNAVAILABLE = 110,
    /// The call was ended by `pma_cancel` (from another thread). Nothing half-done remains:
    /// a fetch handed nothing out, an acknowledgement may be repeated; the next call works.
    PMA_CANCELLED = 111,
    /// `pma_device_login_complete` without a device-code sign-in begun by
    /// `pma_device_login_begin` (or after it completed or failed).
    PMA_DEVICE_LOGIN_NOT_STARTED = 112,
    /// `pma_batch_raw` on a batch of a mailbox that does not keep raw messages (`keep_raw`).
    PMA_RAW_NOT_KEPT = 113,

    // --- 2xx: configuration and local files
    /// The mailbox JSON or a credential is invalid or missing; the message names the key.
    PMA_CONFIG = 200,
    /// Local file system: state directory, token cache, or the mailbox is locked by another
    /// agent using the same state directory.
    PMA_IO = 201,

    // --- 3xx: network and TLS
    /// DNS resolution or TCP connect failed.
    PMA_CONNECT = 300,
    /// A network step did not finish within `imap.timeout_secs`.
    PMA_TIMEOUT = 301,
    /// The TLS handshake failed for a reason other than the certificate.
    PMA_TLS = 302,
    /// The server certificate was refused (unknown CA, expired, wrong host name).
    PMA_CERTIFICATE = 303,
    /// `encryption` is `starttls` but the server does not offer STARTTLS.
    PMA_STARTTLS_NOT_OFFERED = 304,
    /// Authentication without TLS was refused (`allow_plaintext` is false, or LOGINDISABLED).
    PMA_PLAINTEXT_REFUSED = 305,
    /// The peer violated the protocol.
    PMA_PROTOCOL = 306,
    /// The peer closed the connection.
    PMA_CONNECTION_CLOSED = 307,

    // --- 4xx: IMAP
    /// LOGIN rejected: wrong username or password, or Basic authentication disabled.
    PMA_LOGIN_FAILED = 400,
    /// AUTHENTICATE XOAUTH2 rejected although a token was issued.
    PMA_IMAP_OAUTH_REJECTED = 401,
    /// A shared mailbox the delegate may not open: no Full Access, or no mailbox has the address
    /// (Exchange: "User is authenticated but not connected" at SELECT; other servers refuse
    /// XOAUTH2).
    PMA_SHARED_MAILBOX_DENIED = 402,
    /// The server is temporarily unavailable; retry later.
    PMA_SERVER_UNAVAILABLE = 403,
    /// The search folder or the processed folder does not exist.
    PMA_FOLDER_NOT_FOUND = 404,
    /// The server refused a command (NO/BAD).
    PMA_SERVER_REFUSED = 405,
    /// App-only: the token was accepted but the app may not open the mailbox (Exchange's
    /// "authenticated but not connected"): service principal not registered in Exchange
    /// (New-ServicePrincipal) or not granted on the mailbox (Add-MailboxPermission).
    PMA_APP_NOT_GRANTED = 406,
    /// The sign-in was accepted but Exchange does not open the mailbox for the account that
    /// signed in ("authenticated but not connected"): another account, or no mailbox.
    PMA_MAILBOX_NOT_CONNECTED = 407,

    // --- 5xx: OAuth 2.0 (Microsoft identity platform)
    /// AADSTS50126: wrong username or password.
    PMA_OAUTH_INVALID_CREDENTIALS = 500,
    /// AADSTS50034: user not found in the directory.
    PMA_OAUTH_USER_NOT_FOUND = 501,
    /// AADSTS50053: account locked.
    PMA_OAUTH_ACCOUNT_LOCKED = 502,
    /// AADSTS50055: password expired.
    PMA_OAUTH_PASSWORD_EXPIRED = 503,
    /// AADSTS50057: account disabled.
    PMA_OAUTH_ACCOUNT_DISABLED = 504,
    /// AADSTS50076 / 50079: multi-factor authentication required.
    PMA_OAUTH_MFA_REQUIRED = 505,
    /// AADSTS53003: blocked by Conditional Access.
    PMA_OAUTH_CONDITIONAL_ACCESS = 506,
    /// AADSTS530035: blocked by security defaults.
    PMA_OAUTH_SECURITY_DEFAULTS = 507,
    /// AADSTS65001: admin consent missing.
    PMA_OAUTH_CONSENT_REQUIRED = 508,
    /// AADSTS7000218: "Allow public client flows" is off.
    PMA_OAUTH_PUBLIC_CLIENT_FLOWS_DISABLED = 509,
    /// AADSTS700016: application not found in the directory.
    PMA_OAUTH_APPLICATION_NOT_FOUND = 510,
    /// AADSTS90002: tenant (Directory ID) not found.
    PMA_OAUTH_TENANT_NOT_FOUND = 511,
    /// AADSTS50194: single-tenant application used on /common.
    PMA_OAUTH_SINGLE_TENANT_APP = 512,
    /// AADSTS7000215 / 7000222: invalid or expired client secret.
    PMA_OAUTH_INVALID_CLIENT_SECRET = 513,
    /// AADSTS70011 / 28000 / 1002012: invalid scope.
    PMA_OAUTH_INVALID_SCOPE = 514,
    /// AADSTS700082 / 70008: refresh token expired.
    PMA_OAUTH_REFRESH_TOKEN_EXPIRED = 515,
    /// AADSTS50173: grant revoked (password changed or reset).
    PMA_OAUTH_GRANT_REVOKED = 516,
    /// AADSTS9002313 / 70000: invalid refresh token.
    PMA_OAUTH_INVALID_REFRESH_TOKEN = 517,
    /// AADSTS900144: a request parameter is missing.
    PMA_OAUTH_MISSING_PARAMETER = 518,
    /// Device code flow: the user declined.
    PMA_OAUTH_DEVICE_CODE_DECLINED = 519,
    /// Device code flow: the code expired before the user signed in.
    PMA_OAUTH_DEVICE_CODE_EXPIRED = 520,
    /// No usable token, and getting one needs a person (device code sign-in).
    PMA_OAUTH_SIGN_IN_REQUIRED = 521,
    /// Any other identity platform error (Microsoft's text is in `pma_last_error`).
    PMA_OAUTH_IDENTITY_PROVIDER = 522,
    /// AADSTS700027: the certificate that signed the client assertion is not registered on
    /// the app registration (another key), or was revoked.
    PMA_OAUTH_CERTIFICATE_REJECTED = 523,
    /// AADSTS700024: the client assertion is outside its validity time (check the clock).
    PMA_OAUTH_ASSERTION_EXPIRED = 524,
    /// The client assertion was presented before (its jti was replayed).
    PMA_OAUTH_ASSERTION_REPLAYED = 525,
    /// The configured client certificate expired (or is not valid yet).
    PMA_OAUTH_CERTIFICATE_EXPIRED = 526,
    /// A credential's end is near (`pma_credential.result`, not an error of a call): a refresh
    /// token unused for 76 days, a client secret or certificate expiring within 30 days.
    PMA_CREDENTIAL_EXPIRING = 527,
    /// A credential has ended (`pma_credential.result`): see its `fix`.
    PMA_CREDENTIAL_EXPIRED = 528,

    // --- 6xx: mail and delivery
    /// A message could not be turned into a ticket.
    PMA_MAIL = 600,
    /// A ticket could not be delivered.
    PMA_DELIVERY = 601,
    /// `pma_batch_attachment`: the attachment's bytes are not carried because it is larger than
    /// `max_attachment_bytes`; the ticket JSON marks it `"omitted": "too_large"` with its size.
    PMA_ATTACHMENT_OMITTED = 602,

    // --- 7xx: Microsoft Graph
    /// Microsoft Graph refused access to the mailbox (ErrorAccessDenied): a delegate without Full
    /// Access, or an app-only token for a mailbox outside the app's scope.
    PMA_GRAPH_ACCESS_DENIED = 700,
    /// Microsoft Graph: an application access policy (or RBAC for Applications scope) excludes the
    /// mailbox from the app-only token.
    PMA_GRAPH_ACCESS_POLICY = 701,
    /// Microsoft Graph: the token lacks Mail.ReadWrite (application) or Mail.ReadWrite.Shared
    /// (delegated), or admin consent is missing.
    PMA_GRAPH_PERMISSION_MISSING = 702,
    /// Microsoft Graph: MailboxNotEnabledForRESTAPI (on-premises, inactive, unlicensed or unknown
    /// mailbox).
    PMA_GRAPH_MAILBOX_NOT_ENABLED = 703,
    /// Microsoft Graph: InvalidAuthenticationToken even after one renewal (wrong audience or cloud,
    /// clock skew).
    PMA_GRAPH_TOKEN_REJECTED = 704,
    /// Microsoft Graph: ErrorItemNotFound, the message was moved or deleted meanwhile.
    PMA_GRAPH_ITEM_NOT_FOUND = 705,
    /// Microsoft Graph kept throttling (429/503/504) beyond the retries after Retry-After: try later.
    PMA_GRAPH_THROTTLED = 706,
    /// Microsoft Graph refused a request for another reason (its code and message are kept).
    PMA_GRAPH_REFUSED = 707,

    // --- 9xx: internal
    /// An invariant of the library was broken (a bug: please report it).
    PMA_INTERNAL = 900,
}

impl pma_result {
    /// Every code, for `pma_result_str` and the tests.
    pub(crate) const ALL: &'static [pma_result] = &[
        pma_result::PMA_OK,
        pma_result::PMA_NULL_ARGUMENT,
        pma_result::PMA_INVALID_UTF8,
        pma_result::PMA_BUFFER_TOO_SMALL,
        pma_result::PMA_INVALID_HANDLE,
        pma_result::PMA_FOREIGN_BATCH,
        pma_result::PMA_PANIC,
        pma_result::PMA_POISONED,
        pma_result::PMA_INDEX_OUT_OF_RANGE,
        pma_result::PMA_ALREADY_ACKED,
        pma_result::PMA_INVALID_ARGUMENT,
        pma_result::PMA_LOGGER_UNAVAILABLE,
        pma_result::PMA_CANCELLED,
        pma_result::PMA_DEVICE_LOGIN_NOT_STARTED,
        pma_result::PMA_RAW_NOT_KEPT,
        pma_result::PMA_CONFIG,
        pma_result::PMA_IO,
        pma_result::PMA_CONNECT,
        pma_result::PMA_TIMEOUT,
        pma_result::PMA_TLS,
        pma_result::PMA_CERTIFICATE,
        pma_result::PMA_STARTTLS_NOT_OFFERED,
        pma_result::PMA_PLAINTEXT_REFUSED,
        pma_result::PMA_PROTOCOL,
        pma_result::PMA_CONNECTION_CLOSED,
        pma_result::PMA_LOGIN_FAILED,
        pma_result::PMA_IMAP_OAUTH_REJECTED,
        pma_result::PMA_SHARED_MAILBOX_DENIED,
        pma_result::PMA_APP_NOT_GRANTED,
        pma_result::PMA_MAILBOX_NOT_CONNECTED,
        pma_result::PMA_SERVER_UNAVAILABLE,
        pma_result::PMA_FOLDER_NOT_FOUND,
        pma_result::PMA_SERVER_REFUSED,
        pma_result::PMA_OAUTH_INVALID_CREDENTIALS,
        pma_result::PMA_OAUTH_USER_NOT_FOUND,
        pma_result::PMA_OAUTH_ACCOUNT_LOCKED,
        pma_result::PMA_OAUTH_PASSWORD_EXPIRED,
        pma_result::PMA_OAUTH_ACCOUNT_DISABLED,
        pma_result::PMA_OAUTH_MFA_REQUIRED,
        pma_result::PMA_OAUTH_CONDITIONAL_ACCESS,
        pma_result::PMA_OAUTH_SECURITY_DEFAULTS,
        pma_result::PMA_OAUTH_CONSENT_REQUIRED,
        pma_result::PMA_OAUTH_PUBLIC_CLIENT_FLOWS_DISABLED,
        pma_result::PMA_OAUTH_APPLICATION_NOT_FOUND,
        pma_result::PMA_OAUTH_TENANT_NOT_FOUND,
        pma_result::PMA_OAUTH_SINGLE_TENANT_APP,
        pma_result::PMA_OAUTH_INVALID_CLIENT_SECRET,
        pma_result::PMA_OAUTH_INVALID_SCOPE,
        pma_result::PMA_OAUTH_REFRESH_TOKEN_EXPIRED,
        pma_result::PMA_OAUTH_GRANT_REVOKED,
        pma_result::PMA_OAUTH_INVALID_REFRESH_TOKEN,
        pma_result::PMA_OAUTH_MISSING_PARAMETER,
        pma_result::PMA_OAUTH_DEVICE_CODE_DECLINED,
        pma_result::PMA_OAUTH_DEVICE_CODE_EXPIRED,
        pma_result::PMA_OAUTH_SIGN_IN_REQUIRED,
        pma_result::PMA_OAUTH_IDENTITY_PROVIDER,
        pma_result::PMA_OAUTH_CERTIFICATE_REJECTED,
        pma_result::PMA_OAUTH_ASSERTION_EXPIRED,
        pma_result::PMA_OAUTH_ASSERTION_REPLAYED,
        pma_result::PMA_OAUTH_CERTIFICATE_EXPIRED,
        pma_result::PMA_CREDENTIAL_EXPIRING,
        pma_result::PMA_CREDENTIAL_EXPIRED,
        pma_result::PMA_MAIL,
        pma_result::PMA_DELIVERY,
        pma_result::PMA_ATTACHMENT_OMITTED,
        pma_result::PMA_GRAPH_ACCESS_DENIED,
        pma_result::PMA_GRAPH_ACCESS_POLICY,
        pma_result::PMA_GRAPH_PERMISSION_MISSING,
        pma_result::PMA_GRAPH_MAILBOX_NOT_ENABLED,
        pma_result::PMA_GRAPH_TOKEN_REJECTED,
        pma_result::PMA_GRAPH_ITEM_NOT_FOUND,
        pma_result::PMA_GRAPH_THROTTLED,
        pma_result::PMA_GRAPH_REFUSED,
        pma_result::PMA_INTERNAL,
    ];

    /// The code's name, NUL-terminated (a static string).
    pub(crate) fn name(self) -> &'static str {
        use pma_result::*;
        match self {
            PMA_OK => "PMA_OK\0",
            PMA_NULL_ARGUMENT => "PMA_NULL_ARGUMENT\0",
            PMA_INVALID_UTF8 => "PMA_INVALID_UTF8\0",
            PMA_BUFFER_TOO_SMALL => "PMA_BUFFER_TOO_SMALL\0",
            PMA_INVALID_HANDLE => "PMA_INVALID_HANDLE\0",
            PMA_FOREIGN_BATCH => "PMA_FOREIGN_BATCH\0",
            PMA_PANIC => "PMA_PANIC\0",
            PMA_POISONED => "PMA_POISONED\0",
            PMA_INDEX_OUT_OF_RANGE => "PMA_INDEX_OUT_OF_RANGE\0",
            PMA_ALREADY_ACKED => "PMA_ALREADY_ACKED\0",
            PMA_INVALID_ARGUMENT => "PMA_INVALID_ARGUMENT\0",
            PMA_LOGGER_UNAVAILABLE => "PMA_LOGGER_UNAVAILABLE\0",
            PMA_CANCELLED => "PMA_CANCELLED\0",
            PMA_DEVICE_LOGIN_NOT_STARTED => "PMA_DEVICE_LOGIN_NOT_STARTED\0",
            PMA_RAW_NOT_KEPT => "PMA_RAW_NOT_KEPT\0",
            PMA_CONFIG => "PMA_CONFIG\0",
            PMA_IO => "PMA_IO\0",
            PMA_CONNECT => "PMA_CONNECT\0",
            PMA_TIMEOUT => "PMA_TIMEOUT\0",
            PMA_TLS => "PMA_TLS\0",
            PMA_CERTIFICATE => "PMA_CERTIFICATE\0",
            PMA_STARTTLS_NOT_OFFERED => "PMA_STARTTLS_NOT_OFFERED\0",
            PMA_PLAINTEXT_REFUSED => "PMA_PLAINTEXT_REFUSED\0",
            PMA_PROTOCOL => "PMA_PROTOCOL\0",
            PMA_CONNECTION_CLOSED => "PMA_CONNECTION_CLOSED\0",
            PMA_LOGIN_FAILED => "PMA_LOGIN_FAILED\0",
            PMA_IMAP_OAUTH_REJECTED => "PMA_IMAP_OAUTH_REJECTED\0",
            PMA_SHARED_MAILBOX_DENIED => "PMA_SHARED_MAILBOX_DENIED\0",
            PMA_APP_NOT_GRANTED => "PMA_APP_NOT_GRANTED\0",
            PMA_MAILBOX_NOT_CONNECTED => "PMA_MAILBOX_NOT_CONNECTED\0",
            PMA_SERVER_UNAVAILABLE => "PMA_SERVER_UNAVAILABLE\0",
            PMA_FOLDER_NOT_FOUND => "PMA_FOLDER_NOT_FOUND\0",
            PMA_SERVER_REFUSED => "PMA_SERVER_REFUSED\0",
            PMA_OAUTH_INVALID_CREDENTIALS => "PMA_OAUTH_INVALID_CREDENTIALS\0",
            PMA_OAUTH_USER_NOT_FOUND => "PMA_OAUTH_USER_NOT_FOUND\0",
            PMA_OAUTH_ACCOUNT_LOCKED => "PMA_OAUTH_ACCOUNT_LOCKED\0",
            PMA_OAUTH_PASSWORD_EXPIRED => "PMA_OAUTH_PASSWORD_EXPIRED\0",
            PMA_OAUTH_ACCOUNT_DISABLED => "PMA_OAUTH_ACCOUNT_DISABLED\0",
            PMA_OAUTH_MFA_REQUIRED => "PMA_OAUTH_MFA_REQUIRED\0",
            PMA_OAUTH_CONDITIONAL_ACCESS => "PMA_OAUTH_CONDITIONAL_ACCESS\0",
            PMA_OAUTH_SECURITY_DEFAULTS => "PMA_OAUTH_SECURITY_DEFAULTS\0",
            PMA_OAUTH_CONSENT_REQUIRED => "PMA_OAUTH_CONSENT_REQUIRED\0",
            PMA_OAUTH_PUBLIC_CLIENT_FLOWS_DISABLED => "PMA_OAUTH_PUBLIC_CLIENT_FLOWS_DISABLED\0",
            PMA_OAUTH_APPLICATION_NOT_FOUND => "PMA_OAUTH_APPLICATION_NOT_FOUND\0",
            PMA_OAUTH_TENANT_NOT_FOUND => "PMA_OAUTH_TENANT_NOT_FOUND\0",
            PMA_OAUTH_SINGLE_TENANT_APP => "PMA_OAUTH_SINGLE_TENANT_APP\0",
            PMA_OAUTH_INVALID_CLIENT_SECRET => "PMA_OAUTH_INVALID_CLIENT_SECRET\0",
            PMA_OAUTH_INVALID_SCOPE => "PMA_OAUTH_INVALID_SCOPE\0",
            PMA_OAUTH_REFRESH_TOKEN_EXPIRED => "PMA_OAUTH_REFRESH_TOKEN_EXPIRED\0",
            PMA_OAUTH_GRANT_REVOKED => "PMA_OAUTH_GRANT_REVOKED\0",
            PMA_OAUTH_INVALID_REFRESH_TOKEN => "PMA_OAUTH_INVALID_REFRESH_TOKEN\0",
            PMA_OAUTH_MISSING_PARAMETER => "PMA_OAUTH_MISSING_PARAMETER\0",
            PMA_OAUTH_DEVICE_CODE_DECLINED => "PMA_OAUTH_DEVICE_CODE_DECLINED\0",
            PMA_OAUTH_DEVICE_CODE_EXPIRED => "PMA_OAUTH_DEVICE_CODE_EXPIRED\0",
            PMA_OAUTH_SIGN_IN_REQUIRED => "PMA_OAUTH_SIGN_IN_REQUIRED\0",
            PMA_OAUTH_IDENTITY_PROVIDER => "PMA_OAUTH_IDENTITY_PROVIDER\0",
            PMA_OAUTH_CERTIFICATE_REJECTED => "PMA_OAUTH_CERTIFICATE_REJECTED\0",
            PMA_OAUTH_ASSERTION_EXPIRED => "PMA_OAUTH_ASSERTION_EXPIRED\0",
            PMA_OAUTH_ASSERTION_REPLAYED => "PMA_OAUTH_ASSERTION_REPLAYED\0",
            PMA_OAUTH_CERTIFICATE_EXPIRED => "PMA_OAUTH_CERTIFICATE_EXPIRED\0",
            PMA_CREDENTIAL_EXPIRING => "PMA_CREDENTIAL_EXPIRING\0",
            PMA_CREDENTIAL_EXPIRED => "PMA_CREDENTIAL_EXPIRED\0",
            PMA_MAIL => "PMA_MAIL\0",
            PMA_DELIVERY => "PMA_DELIVERY\0",
            PMA_ATTACHMENT_OMITTED => "PMA_ATTACHMENT_OMITTED\0",
            PMA_GRAPH_ACCESS_DENIED => "PMA_GRAPH_ACCESS_DENIED\0",
            PMA_GRAPH_ACCESS_POLICY => "PMA_GRAPH_ACCESS_POLICY\0",
            PMA_GRAPH_PERMISSION_MISSING => "PMA_GRAPH_PERMISSION_MISSING\0",
            PMA_GRAPH_MAILBOX_NOT_ENABLED => "PMA_GRAPH_MAILBOX_NOT_ENABLED\0",
            PMA_GRAPH_TOKEN_REJECTED => "PMA_GRAPH_TOKEN_REJECTED\0",
            PMA_GRAPH_ITEM_NOT_FOUND => "PMA_GRAPH_ITEM_NOT_FOUND\0",
            PMA_GRAPH_THROTTLED => "PMA_GRAPH_THROTTLED\0",
            PMA_GRAPH_REFUSED => "PMA_GRAPH_REFUSED\0",
            PMA_INTERNAL => "PMA_INTERNAL\0",
        }
    }
}

impl From<ErrorKind> for pma_result {
    fn from(kind: ErrorKind) -> Self {
        use pma_result::*;
        // Exhaustive on purpose: a new ErrorKind must get its own code here.
        match kind {
            ErrorKind::Config => PMA_CONFIG,
            ErrorKind::Io => PMA_IO,
            ErrorKind::Connect => PMA_CONNECT,
            ErrorKind::Timeout => PMA_TIMEOUT,
            ErrorKind::Tls => PMA_TLS,
            ErrorKind::Certificate => PMA_CERTIFICATE,
            ErrorKind::StartTlsNotOffered => PMA_STARTTLS_NOT_OFFERED,
            ErrorKind::PlaintextRefused => PMA_PLAINTEXT_REFUSED,
            ErrorKind::Protocol => PMA_PROTOCOL,
            ErrorKind::ConnectionClosed => PMA_CONNECTION_CLOSED,
            ErrorKind::LoginFailed => PMA_LOGIN_FAILED,
            ErrorKind::ImapOAuthRejected => PMA_IMAP_OAUTH_REJECTED,
            ErrorKind::SharedMailboxDenied => PMA_SHARED_MAILBOX_DENIED,
            ErrorKind::AppNotGranted => PMA_APP_NOT_GRANTED,
            ErrorKind::MailboxNotConnected => PMA_MAILBOX_NOT_CONNECTED,
            ErrorKind::ServerUnavailable => PMA_SERVER_UNAVAILABLE,
            ErrorKind::FolderNotFound => PMA_FOLDER_NOT_FOUND,
            ErrorKind::ServerRefused => PMA_SERVER_REFUSED,
            ErrorKind::InvalidCredentials => PMA_OAUTH_INVALID_CREDENTIALS,
            ErrorKind::UserNotFound => PMA_OAUTH_USER_NOT_FOUND,
            ErrorKind::AccountLocked => PMA_OAUTH_ACCOUNT_LOCKED,
            ErrorKind::PasswordExpired => PMA_OAUTH_PASSWORD_EXPIRED,
            ErrorKind::AccountDisabled => PMA_OAUTH_ACCOUNT_DISABLED,
            ErrorKind::MfaRequired => PMA_OAUTH_MFA_REQUIRED,
            ErrorKind::ConditionalAccess => PMA_OAUTH_CONDITIONAL_ACCESS,
            ErrorKind::SecurityDefaults => PMA_OAUTH_SECURITY_DEFAULTS,
            ErrorKind::ConsentRequired => PMA_OAUTH_CONSENT_REQUIRED,
            ErrorKind::PublicClientFlowsDisabled => PMA_OAUTH_PUBLIC_CLIENT_FLOWS_DISABLED,
            ErrorKind::ApplicationNotFound => PMA_OAUTH_APPLICATION_NOT_FOUND,
            ErrorKind::TenantNotFound => PMA_OAUTH_TENANT_NOT_FOUND,
            ErrorKind::SingleTenantApp => PMA_OAUTH_SINGLE_TENANT_APP,
            ErrorKind::InvalidClientSecret => PMA_OAUTH_INVALID_CLIENT_SECRET,
            ErrorKind::InvalidScope => PMA_OAUTH_INVALID_SCOPE,
            ErrorKind::RefreshTokenExpired => PMA_OAUTH_REFRESH_TOKEN_EXPIRED,
            ErrorKind::GrantRevoked => PMA_OAUTH_GRANT_REVOKED,
            ErrorKind::InvalidRefreshToken => PMA_OAUTH_INVALID_REFRESH_TOKEN,
            ErrorKind::MissingParameter => PMA_OAUTH_MISSING_PARAMETER,
            ErrorKind::DeviceCodeDeclined => PMA_OAUTH_DEVICE_CODE_DECLINED,
            ErrorKind::DeviceCodeExpired => PMA_OAUTH_DEVICE_CODE_EXPIRED,
            ErrorKind::SignInRequired => PMA_OAUTH_SIGN_IN_REQUIRED,
            ErrorKind::IdentityProvider => PMA_OAUTH_IDENTITY_PROVIDER,
            ErrorKind::ClientCertificateRejected => PMA_OAUTH_CERTIFICATE_REJECTED,
            ErrorKind::ClientAssertionExpired => PMA_OAUTH_ASSERTION_EXPIRED,
            ErrorKind::ClientAssertionReplayed => PMA_OAUTH_ASSERTION_REPLAYED,
            ErrorKind::ClientCertificateExpired => PMA_OAUTH_CERTIFICATE_EXPIRED,
            ErrorKind::Mail => PMA_MAIL,
            ErrorKind::Delivery => PMA_DELIVERY,
            ErrorKind::GraphAccessDenied => PMA_GRAPH_ACCESS_DENIED,
            ErrorKind::GraphAccessPolicy => PMA_GRAPH_ACCESS_POLICY,
            ErrorKind::GraphPermissionMissing => PMA_GRAPH_PERMISSION_MISSING,
            ErrorKind::GraphMailboxNotEnabled => PMA_GRAPH_MAILBOX_NOT_ENABLED,
            ErrorKind::GraphTokenRejected => PMA_GRAPH_TOKEN_REJECTED,
            ErrorKind::GraphItemNotFound => PMA_GRAPH_ITEM_NOT_FOUND,
            ErrorKind::GraphThrottled => PMA_GRAPH_THROTTLED,
            ErrorKind::GraphRefused => PMA_GRAPH_REFUSED,
            ErrorKind::Internal => PMA_INTERNAL,
        }
    }
}

/// The name of a result code (`"PMA_LOGIN_FAILED"`), or `"PMA_UNKNOWN"` for a value this
/// version does not define.
///
/// Returns a static, NUL-terminated string: never NULL, never to be freed. Thread-safe.
#[no_mangle]
pub extern "C" fn pma_result_str(code: u32) -> *const c_char {
    let name = pma_result::ALL
        .iter()
        .find(|r| **r as u32 == code)
        .map(|r| r.name())
        .unwrap_or("PMA_UNKNOWN\0");
    name.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::ffi::CStr;

    #[test]
    fn codes_are_unique_and_named() {
        let mut seen = HashSet::new();
        for r in pma_result::ALL {
            assert!(seen.insert(*r as u32), "duplicate value {}", *r as u32);
            let name = unsafe { CStr::from_ptr(pma_result_str(*r as u32)) };
            assert_eq!(name.to_str().unwrap(), format!("{r:?}"));
        }
        let unknown = unsafe { CStr::from_ptr(pma_result_str(4242)) };
        assert_eq!(unknown.to_str().unwrap(), "PMA_UNKNOWN");
    }

    #[test]
    fn families() {
        assert_eq!(pma_result::from(ErrorKind::Config) as u32 / 100, 2);
        assert_eq!(pma_result::from(ErrorKind::Certificate) as u32 / 100, 3);
        assert_eq!(pma_result::from(ErrorKind::FolderNotFound) as u32 / 100, 4);
        assert_eq!(pma_result::from(ErrorKind::GrantRevoked) as u32 / 100, 5);
        assert_eq!(pma_result::from(ErrorKind::Delivery) as u32 / 100, 6);
        assert_eq!(pma_result::from(ErrorKind::Internal) as u32 / 100, 9);
    }
}
