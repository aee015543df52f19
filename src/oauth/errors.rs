//! Microsoft identity platform errors (`{"error", "error_description": "AADSTSnnnnn: …",
//! "error_codes": [nnnnn]}`) mapped to [`ErrorKind`]s, each with a short cause and the
//! administrator's fix (REFERENCE.md's table).

use crate::error::{Error, ErrorKind};

/// The parts of an error answer the mapping uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ErrorAnswer {
    /// OAuth error (`invalid_grant`, `authorization_pending`, ...).
    pub error: String,
    /// Microsoft's description, first line only (trace and correlation ids dropped).
    pub description: Option<String>,
    /// The first AADSTS code, from `error_codes` or the description.
    pub code: Option<u64>,
}

impl ErrorAnswer {
    /// Builds the answer from the JSON fields.
    pub fn new(error: String, description: Option<&str>, codes: &[u64]) -> Self {
        let description = description.map(first_line).filter(|d| !d.is_empty());
        let code = codes
            .first()
            .copied()
            .or_else(|| description.as_deref().and_then(code_in_text));
        ErrorAnswer {
            error: clean(&error, 80),
            description,
            code,
        }
    }

    /// Whether a refresh token was refused (expired, revoked, invalid, or needs interaction):
    /// it is dropped and the flow starts over.
    pub fn is_invalid_grant(&self) -> bool {
        self.error == "invalid_grant"
            || matches!(
                self.code,
                Some(700082 | 70008 | 50173 | 9002313 | 70000 | 70043)
            )
    }
}

/// One known AADSTS family.
struct Known {
    codes: &'static [u64],
    kind: ErrorKind,
    cause: &'static str,
    /// The admin's action; `None`: the flow-dependent "sign in again".
    fix: Option<&'static str>,
}

const TABLE: &[Known] = &[
    Known {
        codes: &[50126],
        kind: ErrorKind::InvalidCredentials,
        cause: "wrong username or password",
        fix: Some("re-enter the mailbox password; Username must be the account's sign-in name (user@domain)"),
    },
    Known {
        codes: &[50034],
        kind: ErrorKind::UserNotFound,
        cause: "the user does not exist in this directory",
        fix: Some("check Username and Directory ID (the tenant the user belongs to)"),
    },
    Known {
        codes: &[50053],
        kind: ErrorKind::AccountLocked,
        cause: "the account is locked",
        fix: Some("wait for the lockout to end or unlock the user in Entra ID, then check the password the agent uses"),
    },
    Known {
        codes: &[50055],
        kind: ErrorKind::PasswordExpired,
        cause: "the password has expired",
        fix: Some("change the password (sign in once interactively), then enter the new one here"),
    },
    Known {
        codes: &[50057],
        kind: ErrorKind::AccountDisabled,
        cause: "the account is disabled",
        fix: Some("enable the user in Entra ID; a shared mailbox cannot sign in itself: set Username to a delegate user with Full Access and tick Shared Mailbox"),
    },
    Known {
        codes: &[50076, 50079],
        kind: ErrorKind::MfaRequired,
        cause: "multi-factor authentication is required (or must be registered) for this account",
        fix: Some("exclude the account from MFA for this app, or use flow \"device_code\" (interactive, MFA-capable) or \"client_credentials\" (app-only)"),
    },
    Known {
        codes: &[53003],
        kind: ErrorKind::ConditionalAccess,
        cause: "blocked by a Conditional Access policy",
        fix: Some("adjust the Conditional Access policy for this app and account (the Entra ID sign-in log names the policy)"),
    },
    Known {
        codes: &[530035],
        kind: ErrorKind::SecurityDefaults,
        cause: "blocked by security defaults",
        fix: Some("turn off security defaults (Entra ID > Properties > Manage security defaults) or use flow \"device_code\" or \"client_credentials\""),
    },
    Known {
        codes: &[65001],
        kind: ErrorKind::ConsentRequired,
        cause: "the app has no consent for the requested permission",
        fix: Some("App registration > API permissions: add IMAP.AccessAsUser.All (delegated) or IMAP.AccessAsApp (application), then \"Grant admin consent\""),
    },
    Known {
        codes: &[7000218],
        kind: ErrorKind::PublicClientFlowsDisabled,
        cause: "the app registration does not allow public client flows (the request would need a client secret)",
        fix: Some("App registration > Authentication > \"Allow public client flows\": Yes"),
    },
    Known {
        codes: &[700016],
        kind: ErrorKind::ApplicationNotFound,
        cause: "the application was not found in the directory",
        fix: Some("check Application ID (Application (client) ID) and Directory ID (Directory (tenant) ID) on the app registration's Overview"),
    },
    Known {
        codes: &[90002],
        kind: ErrorKind::TenantNotFound,
        cause: "the tenant was not found",
        fix: Some("check Directory ID: the Directory (tenant) ID on the app registration's Overview, or the tenant's domain"),
    },
    Known {
        codes: &[50194],
        kind: ErrorKind::SingleTenantApp,
        cause: "a single-tenant app was used without a tenant",
        fix: Some("set Directory ID to the tenant ID, not common or organizations"),
    },
    Known {
        codes: &[7000215, 7000222],
        kind: ErrorKind::InvalidClientSecret,
        cause: "the client secret is invalid or expired",
        fix: Some("App registration > Certificates & secrets: create a new client secret and configure its Value (not its Secret ID)"),
    },
    Known {
        codes: &[70011, 28000, 1002012],
        kind: ErrorKind::InvalidScope,
        cause: "the requested scope is invalid",
        fix: Some("check oauth.flow (app-only access needs \"client_credentials\"); if it is right, report this as an agent bug"),
    },
    Known {
        codes: &[700082, 70008],
        kind: ErrorKind::RefreshTokenExpired,
        cause: "the refresh token expired (unused for too long)",
        fix: None,
    },
    Known {
        codes: &[50173],
        kind: ErrorKind::GrantRevoked,
        cause: "the grant was revoked (password changed or reset, or sessions revoked by an admin)",
        fix: None,
    },
    Known {
        codes: &[9002313, 70000],
        kind: ErrorKind::InvalidRefreshToken,
        cause: "the refresh token is invalid",
        fix: None,
    },
    Known {
        codes: &[700027, 7000274],
        kind: ErrorKind::ClientCertificateRejected,
        cause: "the client assertion's signature was not accepted: its certificate is not registered on the app registration (or the key is another one)",
        fix: Some("App registration > Certificates & secrets > Certificates: upload the certificate of client_certificate_file (its public part, .cer/.pem/.crt) and check that the thumbprint shown there is the agent's"),
    },
    Known {
        codes: &[7000214, 7000277],
        kind: ErrorKind::ClientCertificateRejected,
        cause: "the certificate was revoked",
        fix: Some("create a new certificate, upload it under App registration > Certificates & secrets > Certificates and point client_certificate_file to it"),
    },
    Known {
        codes: &[700024, 1000502],
        kind: ErrorKind::ClientAssertionExpired,
        cause: "the client assertion is not within its valid time range (or the certificate is outside its validity)",
        fix: Some("synchronise this machine's clock (NTP: `timedatectl set-ntp true`); the agent signs each assertion for 10 minutes from its own time; if the clock is right, check the certificate's validity dates"),
    },
    Known {
        codes: &[900144],
        kind: ErrorKind::MissingParameter,
        cause: "the request lacks a required parameter",
        fix: Some("this is an agent bug: report it with this message"),
    },
];

/// Maps an error answer of the token or device-code endpoint at `host` (HTTP `status`).
/// `sign_in_again` is the flow's way to get a new grant (used as the fix of expired or revoked
/// grants).
pub(crate) fn map_error(
    host: &str,
    status: u16,
    answer: &ErrorAnswer,
    sign_in_again: &str,
) -> Error {
    let ms_text = || match (&answer.description, answer.code) {
        (Some(d), Some(c)) if !d.contains(&format!("AADSTS{c}")) => format!("AADSTS{c}: {d}"),
        (Some(d), _) => d.clone(),
        (None, Some(c)) => format!("AADSTS{c}"),
        (None, None) => answer.error.clone(),
    };
    // A replayed client assertion: Microsoft's code is not documented; its text names the
    // assertion's jti as used already.
    if answer.error == "invalid_client" {
        if let Some(d) = answer.description.as_deref() {
            let l = d.to_ascii_lowercase();
            if l.contains("jti") && (l.contains("replay") || l.contains("already")) {
                return Error::new(
                    ErrorKind::ClientAssertionReplayed,
                    format!(
                        "token endpoint {host}: the client assertion was used before ({})",
                        ms_text()
                    ),
                )
                .with_fix(
                    "nothing to configure: the agent signs a new assertion (new jti) for every \
                     request; if this repeats, something between the agent and the identity \
                     platform re-sends requests (a proxy retrying POSTs?) or another program \
                     replays this app's assertions: check oauth.proxy and the app's sign-in log",
                );
            }
        }
    }
    if let Some(code) = answer.code {
        if let Some(known) = TABLE.iter().find(|k| k.codes.contains(&code)) {
            let message = format!("token endpoint {host}: {} ({})", known.cause, ms_text());
            return Error::new(known.kind, message).with_fix(known.fix.unwrap_or(sign_in_again));
        }
    }
    let device = |kind, cause: &str, fix: &str| {
        Error::new(
            kind,
            format!("token endpoint {host}: {cause} ({})", ms_text()),
        )
        .with_fix(fix)
    };
    match answer.error.as_str() {
        "expired_token" => {
            return device(
                ErrorKind::DeviceCodeExpired,
                "the device code expired before the sign-in was completed",
                "run the sign-in again and complete it within the time shown",
            )
        }
        "authorization_declined" | "access_denied" => {
            return device(
                ErrorKind::DeviceCodeDeclined,
                "the sign-in was declined",
                "run the sign-in again and accept the request",
            )
        }
        _ => {}
    }
    if status >= 500 || status == 429 || answer.error == "temporarily_unavailable" {
        return Error::new(
            ErrorKind::ServerUnavailable,
            format!(
                "token endpoint {host}: temporarily unavailable (HTTP {status}: {})",
                ms_text()
            ),
        )
        .with_fix("nothing to change: the agent tries again later");
    }
    let mut e = Error::new(
        ErrorKind::IdentityProvider,
        format!("token endpoint {host}: sign-in refused ({})", ms_text()),
    );
    if let Some(code) = answer.code {
        e = e.with_fix(format!(
            "look up AADSTS{code} at https://login.microsoftonline.com/error?code={code}"
        ));
    }
    e
}

/// Microsoft's descriptions continue with "Trace ID: …", "Correlation ID: …" lines: keep the
/// first, bounded and without control characters.
fn first_line(text: &str) -> String {
    let line = text.split(['\r', '\n']).next().unwrap_or_default();
    clean(line.trim(), 300)
}

fn clean(text: &str, max_chars: usize) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(max_chars)
        .collect();
    if text.chars().count() > max_chars {
        out.push('…');
    }
    out
}

/// The number after the first "AADSTS" in `text`.
fn code_in_text(text: &str) -> Option<u64> {
    let start = text.find("AADSTS")? + "AADSTS".len();
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .take(10)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGAIN: &str = "sign in again (test)";

    fn map(code: u64) -> Error {
        let desc = format!(
            "AADSTS{code}: Microsoft text for {code}.\r\nTrace ID: 0000\r\nCorrelation ID: 1111\r\nTimestamp: 2026-01-01"
        );
        let answer = ErrorAnswer::new("invalid_grant".into(), Some(&desc), &[code]);
        map_error("login.example.com", 400, &answer, AGAIN)
    }

    #[test]
    fn every_known_code_maps_to_its_kind_and_fix() {
        use ErrorKind::*;
        let table: &[(u64, ErrorKind, &str)] = &[
            (50126, InvalidCredentials, "re-enter the mailbox password"),
            (50034, UserNotFound, "check Username and Directory ID"),
            (50053, AccountLocked, "unlock the user"),
            (50055, PasswordExpired, "change the password"),
            (50057, AccountDisabled, "a shared mailbox cannot sign in"),
            (50076, MfaRequired, "device_code"),
            (50079, MfaRequired, "client_credentials"),
            (53003, ConditionalAccess, "Conditional Access policy"),
            (530035, SecurityDefaults, "security defaults"),
            (65001, ConsentRequired, "Grant admin consent"),
            (
                7000218,
                PublicClientFlowsDisabled,
                "\"Allow public client flows\": Yes",
            ),
            (700016, ApplicationNotFound, "check Application ID"),
            (90002, TenantNotFound, "check Directory ID"),
            (50194, SingleTenantApp, "tenant ID"),
            (7000215, InvalidClientSecret, "create a new client secret"),
            (7000222, InvalidClientSecret, "create a new client secret"),
            (70011, InvalidScope, "oauth.flow"),
            (28000, InvalidScope, "oauth.flow"),
            (1002012, InvalidScope, "oauth.flow"),
            (700082, RefreshTokenExpired, AGAIN),
            (70008, RefreshTokenExpired, AGAIN),
            (50173, GrantRevoked, AGAIN),
            (9002313, InvalidRefreshToken, AGAIN),
            (70000, InvalidRefreshToken, AGAIN),
            (900144, MissingParameter, "agent bug"),
            (700027, ClientCertificateRejected, "upload the certificate"),
            (7000274, ClientCertificateRejected, "upload the certificate"),
            (
                7000214,
                ClientCertificateRejected,
                "create a new certificate",
            ),
            (
                7000277,
                ClientCertificateRejected,
                "create a new certificate",
            ),
            (700024, ClientAssertionExpired, "clock"),
            (1000502, ClientAssertionExpired, "clock"),
        ];
        for &(code, kind, fix) in table {
            let e = map(code);
            assert_eq!(e.kind(), kind, "AADSTS{code}");
            assert!(
                e.fix().unwrap().contains(fix),
                "AADSTS{code}: {:?}",
                e.fix()
            );
            let m = e.message();
            assert!(m.contains(&format!("AADSTS{code}: Microsoft text")), "{m}");
            assert!(m.contains("login.example.com"), "{m}");
            assert!(!m.contains("Trace ID") && !m.contains('\r'), "{m}");
        }
        // Every code of the table is covered above.
        let listed: Vec<u64> = table.iter().map(|t| t.0).collect();
        for known in TABLE {
            for code in known.codes {
                assert!(listed.contains(code), "AADSTS{code} untested");
            }
        }
    }

    #[test]
    fn a_replayed_assertion_is_its_own_kind() {
        let a = ErrorAnswer::new(
            "invalid_client".into(),
            Some("AADSTS700023: The client assertion with jti '1b2c' was already used. Send a new assertion.\r\nTrace ID: x"),
            &[700023],
        );
        let e = map_error("login.example.com", 401, &a, AGAIN);
        assert_eq!(e.kind(), ErrorKind::ClientAssertionReplayed, "{e}");
        assert!(e.fix().unwrap().contains("new assertion"), "{e:?}");
    }

    #[test]
    fn code_comes_from_the_description_without_error_codes() {
        let a = ErrorAnswer::new(
            "invalid_grant".into(),
            Some("AADSTS50126: Error validating credentials.\r\nTrace ID: x"),
            &[],
        );
        assert_eq!(a.code, Some(50126));
        assert_eq!(
            map_error("h", 400, &a, AGAIN).kind(),
            ErrorKind::InvalidCredentials
        );
    }

    #[test]
    fn unknown_codes_keep_microsofts_text() {
        let a = ErrorAnswer::new(
            "invalid_request".into(),
            Some("AADSTS12345: Something new happened.\r\nTrace ID: abc"),
            &[12345],
        );
        let e = map_error("login.example.com", 400, &a, AGAIN);
        assert_eq!(e.kind(), ErrorKind::IdentityProvider);
        assert!(
            e.message().contains("AADSTS12345: Something new happened."),
            "{e}"
        );
        assert!(!e.message().contains("Trace"), "{e}");
        assert!(e.fix().unwrap().contains("code=12345"));
    }

    #[test]
    fn device_code_outcomes() {
        let a = ErrorAnswer::new(
            "expired_token".into(),
            Some("AADSTS70020: expired"),
            &[70020],
        );
        assert_eq!(
            map_error("h", 400, &a, AGAIN).kind(),
            ErrorKind::DeviceCodeExpired
        );
        let a = ErrorAnswer::new("authorization_declined".into(), None, &[]);
        let e = map_error("h", 400, &a, AGAIN);
        assert_eq!(e.kind(), ErrorKind::DeviceCodeDeclined);
        assert!(e.message().contains("authorization_declined"), "{e}");
    }

    #[test]
    fn server_side_trouble_is_temporary() {
        let a = ErrorAnswer::new(
            "temporarily_unavailable".into(),
            Some("AADSTS90033: A transient error has occurred."),
            &[90033],
        );
        let e = map_error("h", 503, &a, AGAIN);
        assert_eq!(e.kind(), ErrorKind::ServerUnavailable);
        assert!(e.is_temporary());
        let e = map_error("h", 429, &ErrorAnswer::new("x".into(), None, &[]), AGAIN);
        assert_eq!(e.kind(), ErrorKind::ServerUnavailable);
    }

    #[test]
    fn long_or_odd_descriptions_are_bounded() {
        let long = format!("AADSTS1: {}", "x\u{7}".repeat(1000));
        let a = ErrorAnswer::new("e".into(), Some(&long), &[]);
        let d = a.description.unwrap();
        assert!(d.chars().count() <= 301 && !d.contains('\u{7}'));
    }
}
