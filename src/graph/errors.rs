//! Graph's error answers (`{"error": {"code", "message"}}`) mapped to error kinds with the
//! administrator's cause and fix.

use super::json::{get, get_str};
use crate::error::{Error, ErrorKind};
use crate::json::{self, Value};

/// A refused Graph request as it arrived: HTTP status, Graph's error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// `error.code` (e.g. `ErrorAccessDenied`), empty when the body had none.
    pub code: String,
    /// `error.message`.
    pub message: String,
}

impl Refusal {
    /// Reads Graph's error body (any body: a proxy's HTML gives an empty code).
    pub fn parse(status: u16, body: &[u8]) -> Refusal {
        let parsed = std::str::from_utf8(body)
            .ok()
            .and_then(|t| json::parse(t).ok());
        let (code, message) = match parsed.as_ref().and_then(|v| get(v, "error")) {
            Some(e) => (
                get_str(e, "code").unwrap_or_default().to_string(),
                get_str(e, "message").unwrap_or_default().to_string(),
            ),
            None => (String::new(), String::new()),
        };
        Refusal {
            status,
            code,
            message: message.chars().take(300).collect(),
        }
    }

    /// Reads the error object of one `$batch` response (`body` already parsed).
    pub(crate) fn from_value(status: u16, body: Option<&Value>) -> Refusal {
        let e = body.and_then(|b| get(b, "error"));
        Refusal {
            status,
            code: e
                .and_then(|e| get_str(e, "code"))
                .unwrap_or_default()
                .to_string(),
            message: e
                .and_then(|e| get_str(e, "message"))
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect(),
        }
    }

    fn text(&self) -> String {
        match (self.code.is_empty(), self.message.is_empty()) {
            (true, _) => format!("HTTP {}", self.status),
            (false, true) => format!("HTTP {} {}", self.status, self.code),
            (false, false) => format!("HTTP {} {}: {}", self.status, self.code, self.message),
        }
    }

    /// Whether the message is gone (deleted or moved by someone else meanwhile).
    pub fn is_not_found(&self) -> bool {
        self.status == 404
            || self.code.eq_ignore_ascii_case("ErrorItemNotFound")
            || self.code.eq_ignore_ascii_case("ResourceNotFound")
    }

    /// Whether the access token was refused (worth one renewal).
    pub fn is_token_refused(&self) -> bool {
        self.status == 401
    }

    /// Whether the answer asks to come back later.
    pub fn is_throttled(&self) -> bool {
        matches!(self.status, 429 | 503 | 504)
    }
}

/// Who signs in, for the fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// App-only (client credentials): application permission Mail.ReadWrite.
    AppOnly,
    /// A delegate reading a shared mailbox (Mail.ReadWrite.Shared + Full Access).
    DelegatedShared,
    /// A user reading the own mailbox (Mail.ReadWrite delegated).
    Delegated,
}

/// What the request was about, for the messages.
pub struct Context<'a> {
    /// The mailbox address.
    pub mailbox: &'a str,
    /// Who signs in (a user name, or the application id).
    pub principal: &'a str,
    /// App-only or delegated.
    pub access: Access,
    /// What was being done ("reading the folder inbox").
    pub doing: &'a str,
    /// The permissions the token carries (`roles` or `scp`), when it could be read.
    pub granted: Option<&'a [String]>,
}

/// Whether `granted` holds a permission that allows reading and changing mail of `access`.
pub fn has_mail_permission(granted: &[String], access: Access) -> bool {
    granted.iter().any(|g| match access {
        Access::AppOnly => g.eq_ignore_ascii_case("Mail.ReadWrite"),
        Access::DelegatedShared => g.eq_ignore_ascii_case("Mail.ReadWrite.Shared"),
        Access::Delegated => {
            g.eq_ignore_ascii_case("Mail.ReadWrite")
                || g.eq_ignore_ascii_case("Mail.ReadWrite.Shared")
        }
    })
}

fn permission_fix(access: Access) -> &'static str {
    match access {
        Access::AppOnly => {
            "App registration > API permissions > Add a permission > Microsoft Graph > Application \
             permissions > Mail.ReadWrite, then \"Grant admin consent\""
        }
        Access::DelegatedShared => {
            "App registration > API permissions > Add a permission > Microsoft Graph > Delegated \
             permissions > Mail.ReadWrite.Shared (and offline_access), then \"Grant admin consent\""
        }
        Access::Delegated => {
            "App registration > API permissions > Add a permission > Microsoft Graph > Delegated \
             permissions > Mail.ReadWrite (and offline_access), then \"Grant admin consent\""
        }
    }
}

/// The error for a refusal that is not handled by the caller (not found, throttled), naming
/// cause and fix.
pub fn map(r: &Refusal, cx: &Context<'_>) -> Error {
    let code = r.code.as_str();
    let what = format!("Microsoft Graph refused {}: {}", cx.doing, r.text());
    let lacks_permission = cx
        .granted
        .is_some_and(|g| !has_mail_permission(g, cx.access));
    if code.eq_ignore_ascii_case("MailboxNotEnabledForRESTAPI")
        || code.eq_ignore_ascii_case("MailboxNotSupportedForRESTAPI")
    {
        return Error::new(ErrorKind::GraphMailboxNotEnabled, what).with_fix(format!(
            "{} has no Exchange Online mailbox Graph can open: it is hosted on-premises, \
             inactive, soft-deleted or not licensed for Exchange Online. Check it in the Exchange \
             admin center (Recipients > Mailboxes); a shared mailbox needs no licence but must be \
             in Exchange Online",
            cx.mailbox
        ));
    }
    if r.status == 401 || code.eq_ignore_ascii_case("InvalidAuthenticationToken") {
        return Error::new(ErrorKind::GraphTokenRejected, what).with_fix(
            "the access token was refused even after a renewal: it is not a Microsoft Graph token \
             (wrong scope or audience), or it expired and the clock of this machine is wrong. \
             Check oauth.authority and graph.endpoint belong to the same cloud, and the system clock",
        );
    }
    if code.eq_ignore_ascii_case("ErrorItemNotFound") || r.status == 404 {
        if code.eq_ignore_ascii_case("ErrorInvalidUser")
            || code.eq_ignore_ascii_case("ResourceNotFound")
        {
            return Error::new(ErrorKind::GraphMailboxNotEnabled, what).with_fix(format!(
                "no mailbox {} in this tenant: check the email address",
                cx.mailbox
            ));
        }
        return Error::new(ErrorKind::GraphItemNotFound, what)
            .with_fix("the item was moved or deleted meanwhile; it is skipped");
    }
    if code.eq_ignore_ascii_case("ErrorInvalidUser") {
        return Error::new(ErrorKind::GraphMailboxNotEnabled, what).with_fix(format!(
            "no mailbox {} in this tenant: check the email address",
            cx.mailbox
        ));
    }
    if r.status == 403 || code.eq_ignore_ascii_case("ErrorAccessDenied") {
        let policy = r.message.contains("AccessPolicy")
            || r.message.contains("RAOP")
            || r.message.to_ascii_lowercase().contains("access policy");
        if lacks_permission || code.eq_ignore_ascii_case("Authorization_RequestDenied") {
            return Error::new(ErrorKind::GraphPermissionMissing, what).with_fix(format!(
                "the token carries no {} permission (or admin consent is missing): {}",
                match cx.access {
                    Access::AppOnly => "Mail.ReadWrite application",
                    Access::DelegatedShared => "Mail.ReadWrite.Shared delegated",
                    Access::Delegated => "Mail.ReadWrite delegated",
                },
                permission_fix(cx.access)
            ));
        }
        return match cx.access {
            Access::AppOnly => Error::new(
                if policy {
                    ErrorKind::GraphAccessPolicy
                } else {
                    ErrorKind::GraphAccessDenied
                },
                what,
            )
            .with_fix(format!(
                "an application access policy (or RBAC for Applications scope) in Exchange Online \
                 does not include {mb}: add the mailbox to the policy's mail-enabled security \
                 group (New-ApplicationAccessPolicy -AppId {app} -PolicyScopeGroupId <group> \
                 -AccessRight RestrictAccess), or grant New-ManagementRoleAssignment -App {app} \
                 -Role \"Application Mail.ReadWrite\" -CustomResourceScope <scope containing {mb}>; \
                 check with Test-ApplicationAccessPolicy -Identity {mb} -AppId {app} (changes take \
                 up to an hour)",
                mb = cx.mailbox,
                app = cx.principal
            )),
            Access::DelegatedShared => Error::new(ErrorKind::GraphAccessDenied, what).with_fix(
                format!(
                    "{} has no Full Access to the shared mailbox {}: Exchange admin center > \
                     Mailboxes > {} > Delegation > Read and manage (Full Access), then wait up to \
                     an hour; the app needs the delegated permission Mail.ReadWrite.Shared",
                    cx.principal, cx.mailbox, cx.mailbox
                ),
            ),
            Access::Delegated => Error::new(ErrorKind::GraphAccessDenied, what).with_fix(format!(
                "{} may not read {}: sign in as the mailbox owner, or set oauth.shared_mailbox \
                 to true and give the user Full Access to it",
                cx.principal, cx.mailbox
            )),
        };
    }
    if code.eq_ignore_ascii_case("ErrorFolderNotFound") {
        return Error::new(ErrorKind::FolderNotFound, what)
            .with_fix("check graph.folder: a well-known name (inbox) or a display-name path such as Inbox/Support");
    }
    if r.is_throttled() {
        return Error::new(ErrorKind::GraphThrottled, what).with_fix(
            "Microsoft Graph is throttling this mailbox or application: other applications \
             may share its limits; the agent retries later",
        );
    }
    if r.status >= 500 {
        return Error::new(ErrorKind::ServerUnavailable, what);
    }
    Error::new(ErrorKind::GraphRefused, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx(access: Access, granted: Option<&[String]>) -> Context<'_> {
        Context {
            mailbox: "support@contoso.com",
            principal: "11111111-2222-3333-4444-555555555555",
            access,
            doing: "reading the folder inbox",
            granted,
        }
    }

    #[test]
    fn refusals_name_cause_and_fix() {
        let body = br#"{"error":{"code":"ErrorAccessDenied","message":"Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."}}"#;
        let r = Refusal::parse(403, body);
        assert_eq!(r.code, "ErrorAccessDenied");
        let roles = vec!["Mail.ReadWrite".to_string()];
        let e = map(&r, &cx(Access::AppOnly, Some(&roles)));
        assert_eq!(e.kind(), ErrorKind::GraphAccessPolicy);
        assert!(e.fix().unwrap().contains("New-ApplicationAccessPolicy"));
        assert!(e.message().contains("RAOP"));

        let r = Refusal::parse(403, br#"{"error":{"code":"ErrorAccessDenied","message":"Access is denied. Check credentials and try again."}}"#);
        let none: Vec<String> = vec!["User.Read.All".into()];
        let e = map(&r, &cx(Access::AppOnly, Some(&none)));
        assert_eq!(e.kind(), ErrorKind::GraphPermissionMissing);
        assert!(e.fix().unwrap().contains("Grant admin consent"));
        let shared = vec!["Mail.ReadWrite.Shared".to_string()];
        let e = map(&r, &cx(Access::DelegatedShared, Some(&shared)));
        assert_eq!(e.kind(), ErrorKind::GraphAccessDenied);
        assert!(e.fix().unwrap().contains("Full Access"));

        let r = Refusal::parse(404, br#"{"error":{"code":"MailboxNotEnabledForRESTAPI","message":"The mailbox is either inactive, soft-deleted, or is hosted on-premise."}}"#);
        let e = map(&r, &cx(Access::AppOnly, None));
        assert_eq!(e.kind(), ErrorKind::GraphMailboxNotEnabled);

        let r = Refusal::parse(401, br#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token validation failure. Invalid audience."}}"#);
        assert!(r.is_token_refused());
        assert_eq!(
            map(&r, &cx(Access::AppOnly, None)).kind(),
            ErrorKind::GraphTokenRejected
        );

        let r = Refusal::parse(404, br#"{"error":{"code":"ErrorItemNotFound","message":"The specified object was not found in the store."}}"#);
        assert!(r.is_not_found());

        let r = Refusal::parse(502, b"<html>bad gateway</html>");
        assert_eq!(r.code, "");
        assert_eq!(
            map(&r, &cx(Access::AppOnly, None)).kind(),
            ErrorKind::ServerUnavailable
        );
    }
}
