//! The one error type of the core. Every error carries a kind (what a program branches on), a
//! message (what happened, naming the offending key, host or code) and, where an administrator
//! can act, a fix (what to do about it). Secrets never enter an error: callers format only
//! non-secret values into messages.

use std::fmt;

/// What went wrong, as a program branches on it. Grouped by the stage that failed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    // --- configuration and local files
    /// The configuration is invalid; the message names the key path.
    Config,
    /// Local file system (state, token cache, spool).
    Io,
    // --- network
    /// DNS or TCP connect failed.
    Connect,
    /// A network step did not finish within its timeout.
    Timeout,
    /// TLS handshake failed for a reason other than the certificate.
    Tls,
    /// The server certificate was refused (unknown CA, expired, wrong host name).
    Certificate,
    /// `encryption: starttls` but the server does not offer STARTTLS.
    StartTlsNotOffered,
    /// Plaintext authentication refused (`encryption: none` without `allow_plaintext`, or LOGINDISABLED).
    PlaintextRefused,
    /// The peer sent something that does not follow the protocol.
    Protocol,
    /// The connection was closed by the peer.
    ConnectionClosed,
    // --- IMAP
    /// LOGIN (Basic) rejected: wrong username or password, or Basic auth disabled.
    LoginFailed,
    /// AUTHENTICATE XOAUTH2 rejected for the own mailbox although the token was issued.
    ImapOAuthRejected,
    /// A shared mailbox the delegate may not open: no Full Access, or no mailbox has the address
    /// (Exchange: "User is authenticated but not connected" after the sign-in).
    SharedMailboxDenied,
    /// An app-only token may not open the mailbox: the app's service principal is not registered
    /// in Exchange or not granted on the mailbox (or the address is no mailbox's).
    AppNotGranted,
    /// The sign-in worked but Exchange does not open the own mailbox for that account ("User is
    /// authenticated but not connected"): another account signed in, or there is no mailbox.
    MailboxNotConnected,
    /// The server said `[UNAVAILABLE]` or similar: temporary, retry later.
    ServerUnavailable,
    /// The search or processed folder does not exist.
    FolderNotFound,
    /// A server command failed with NO/BAD.
    ServerRefused,
    // --- OAuth: Microsoft identity platform errors with a specific fix
    /// AADSTS50126: wrong username or password.
    InvalidCredentials,
    /// AADSTS50034: user not found in the directory.
    UserNotFound,
    /// AADSTS50053: account locked.
    AccountLocked,
    /// AADSTS50055: password expired.
    PasswordExpired,
    /// AADSTS50057: account disabled.
    AccountDisabled,
    /// AADSTS50076 / 50079: MFA required or MFA registration required.
    MfaRequired,
    /// AADSTS53003: blocked by Conditional Access.
    ConditionalAccess,
    /// AADSTS530035: blocked by security defaults.
    SecurityDefaults,
    /// AADSTS65001: consent missing.
    ConsentRequired,
    /// AADSTS7000218: "Allow public client flows" is off.
    PublicClientFlowsDisabled,
    /// AADSTS700016: application not found in the directory.
    ApplicationNotFound,
    /// AADSTS90002: tenant not found.
    TenantNotFound,
    /// AADSTS50194: single-tenant app used on /common.
    SingleTenantApp,
    /// AADSTS7000215 / 7000222: invalid or expired client secret.
    InvalidClientSecret,
    /// AADSTS70011 / 28000 / 1002012: invalid scope.
    InvalidScope,
    /// AADSTS700082 / 70008: refresh token expired.
    RefreshTokenExpired,
    /// AADSTS50173: grant revoked (password changed or reset).
    GrantRevoked,
    /// AADSTS9002313 / 70000: invalid refresh token.
    InvalidRefreshToken,
    /// AADSTS900144: missing parameter.
    MissingParameter,
    /// Device code flow: the user declined.
    DeviceCodeDeclined,
    /// Device code flow: the code expired before the user signed in.
    DeviceCodeExpired,
    /// No usable token and the flow cannot get one without a person (device code): run `login`.
    SignInRequired,
    /// Any other error answered by the identity platform (Microsoft's text is kept).
    IdentityProvider,
    /// AADSTS700027 (also 7000274, 7000214, 7000277): the certificate that signed the client
    /// assertion is not registered on the app (another key), or was revoked.
    ClientCertificateRejected,
    /// AADSTS700024 (also 1000502): the client assertion is outside its validity time (this
    /// machine's clock is off).
    ClientAssertionExpired,
    /// The client assertion's `jti` was presented before (a replayed assertion).
    ClientAssertionReplayed,
    /// The configured certificate (`client_certificate_file`) expired or is not valid yet.
    ClientCertificateExpired,
    // --- Microsoft Graph
    /// Graph refused access to the mailbox (ErrorAccessDenied): a delegate without Full Access,
    /// or an app-only token for a mailbox outside the app's scope.
    GraphAccessDenied,
    /// Graph refused app-only access because an application access policy (or RBAC for
    /// Applications scope) excludes the mailbox.
    GraphAccessPolicy,
    /// The token lacks the Mail.ReadWrite (app) / Mail.ReadWrite.Shared (delegated) permission,
    /// or admin consent is missing.
    GraphPermissionMissing,
    /// MailboxNotEnabledForRESTAPI: on-premises, inactive, unlicensed or unknown mailbox.
    GraphMailboxNotEnabled,
    /// InvalidAuthenticationToken: the access token was refused even after one renewal.
    GraphTokenRejected,
    /// ErrorItemNotFound: the message was moved or deleted meanwhile (skipped).
    GraphItemNotFound,
    /// Throttled (429/503/504) beyond the retries that honour Retry-After: try later.
    GraphThrottled,
    /// Any other Graph refusal (Graph's code and message are kept).
    GraphRefused,
    // --- mail and delivery
    /// A message could not be turned into a ticket.
    Mail,
    /// A ticket could not be delivered (stdout, spool, webhook, caller).
    Delivery,
    /// An invariant of the library itself was broken.
    Internal,
}

impl ErrorKind {
    /// Whether the identity platform (Microsoft Entra ID) refused the sign-in or token request.
    pub fn is_identity_platform(self) -> bool {
        use ErrorKind as K;
        matches!(
            self,
            K::InvalidCredentials
                | K::UserNotFound
                | K::AccountLocked
                | K::PasswordExpired
                | K::AccountDisabled
                | K::MfaRequired
                | K::ConditionalAccess
                | K::SecurityDefaults
                | K::ConsentRequired
                | K::PublicClientFlowsDisabled
                | K::ApplicationNotFound
                | K::TenantNotFound
                | K::SingleTenantApp
                | K::InvalidClientSecret
                | K::InvalidScope
                | K::RefreshTokenExpired
                | K::GrantRevoked
                | K::InvalidRefreshToken
                | K::MissingParameter
                | K::DeviceCodeDeclined
                | K::DeviceCodeExpired
                | K::SignInRequired
                | K::IdentityProvider
                | K::ClientCertificateRejected
                | K::ClientAssertionExpired
                | K::ClientAssertionReplayed
        )
    }
}

/// The core's error: a kind, a message naming what is wrong, and an optional fix for the admin.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    fix: Option<String>,
}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            fix: None,
        }
    }

    /// Adds what the administrator should do.
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// Prefixes the message with context ("token endpoint: …").
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// Shorthand for a configuration error at a key path.
    pub fn config(path: impl fmt::Display, problem: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Config, format!("{path}: {problem}"))
    }

    /// What went wrong, for branching.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What happened.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What the administrator should do, when known.
    pub fn fix(&self) -> Option<&str> {
        self.fix.as_deref()
    }

    /// Whether trying again later may succeed without anybody changing anything.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Connect
                | ErrorKind::Timeout
                | ErrorKind::ConnectionClosed
                | ErrorKind::ServerUnavailable
                | ErrorKind::Io
                | ErrorKind::Delivery
                | ErrorKind::GraphThrottled
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, " (fix: {fix})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?}: {self})", self.kind)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::TimedOut => ErrorKind::Timeout,
            K::ConnectionRefused
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::AddrNotAvailable => ErrorKind::Connect,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                ErrorKind::ConnectionClosed
            }
            _ => ErrorKind::Io,
        };
        Error::new(kind, e.to_string())
    }
}
