//! Microsoft-shaped error answers: the AADSTS catalogue with each code's `error` value, HTTP
//! status and Microsoft's own wording, and the JSON body around it.

use crate::util::{guid, json_str, unix_now, utc_text};

/// An error answer of the token or device-code endpoint.
#[derive(Debug, Clone)]
pub struct AadError {
    /// HTTP status (400 or 401 as Microsoft answers).
    pub status: u16,
    /// OAuth `error` value.
    pub error: &'static str,
    /// AADSTS number.
    pub code: u32,
    /// The text after `AADSTSnnnn: `.
    pub text: String,
    /// Microsoft's optional `suberror` (e.g. `basic_action` for MFA, `consent_required`).
    pub suberror: Option<&'static str>,
}

/// Facts an error text may mention.
#[derive(Debug, Default, Clone)]
pub struct Ctx<'a> {
    pub client_id: &'a str,
    pub tenant: &'a str,
    pub scope: &'a str,
    pub param: &'a str,
    /// Which grant the failing request used (MFA answers differ for refresh).
    pub grant: &'a str,
}

/// The error Microsoft answers with AADSTS `code`; `None` for a code this endpoint does not know.
pub fn aad(code: u32, c: &Ctx<'_>) -> Option<AadError> {
    let app = if c.client_id.is_empty() {
        "00000000-0000-0000-0000-000000000000"
    } else {
        c.client_id
    };
    let tenant = if c.tenant.is_empty() {
        "contoso-tenant"
    } else {
        c.tenant
    };
    let issued = utc_text(unix_now().saturating_sub(86_400 * 3));
    let (status, error, suberror, text): (u16, &'static str, Option<&'static str>, String) =
        match code {
            50126 => (400, "invalid_grant", None, "Error validating credentials due to invalid username or password.".into()),
            50034 => (400, "invalid_grant", None, format!("The user account {{EUII Hidden}} does not exist in the {tenant} directory. To sign into this application, the account must be added to the directory.")),
            50053 => (400, "invalid_grant", None, "Your account is locked because you've tried to sign in too many times with an incorrect user ID or password.".into()),
            50055 => (400, "invalid_grant", Some("user_password_expired"), "The password is expired.".into()),
            50057 => (400, "invalid_grant", None, "The user account is disabled.".into()),
            50076 | 50079 => {
                let what = if code == 50076 { "use multi-factor authentication" } else { "enroll in multi-factor authentication" };
                // Refreshing answers interaction_required; the password grant invalid_grant.
                let error = if c.grant == "refresh_token" { "interaction_required" } else { "invalid_grant" };
                (400, error, Some("basic_action"), format!("Due to a configuration change made by your administrator, or because you moved to a new location, you must {what} to access '00000002-0000-0ff1-ce00-000000000000'."))
            }
            53003 => (400, "invalid_grant", Some("message_only"), "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.".into()),
            530035 => (400, "invalid_grant", Some("message_only"), "Access has been blocked by security defaults. This is due to the request using legacy auth or being deemed unsafe by security defaults policies. For more info, visit https://aka.ms/security-defaults".into()),
            65001 => (400, "invalid_grant", Some("consent_required"), format!("The user or administrator has not consented to use the application with ID '{app}' named '{app}'. Send an interactive authorization request for this user and resource.")),
            7000218 => (401, "invalid_client", None, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".into()),
            700016 => (400, "unauthorized_client", None, format!("Application with identifier '{app}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.")),
            90002 => (400, "invalid_request", None, format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.")),
            50194 => (400, "invalid_request", None, format!("Application '{app}'({app}) is not configured as a multi-tenant application. Usage of the /common endpoint is not supported for such applications created after '10/15/2018'. Use a tenant-specific endpoint or configure the application to be multi-tenant.")),
            7000215 => (401, "invalid_client", None, format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{app}'.")),
            7000222 => (401, "invalid_client", None, format!("The provided client secret keys for app '{app}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.")),
            70011 => {
                let t = if c.scope.is_empty() {
                    "The provided request must include a 'scope' input parameter.".to_string()
                } else {
                    format!("The provided value for the input parameter 'scope' is not valid. The scope {} is not valid.", c.scope)
                };
                (400, "invalid_scope", None, t)
            }
            28000 => (400, "invalid_scope", None, format!("Provided value for the input parameter scope is not valid because it contains more than one resource. Scope {} is not valid.", c.scope)),
            1002012 => (400, "invalid_scope", None, format!("The provided value for scope {} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", c.scope)),
            700082 => (400, "invalid_grant", None, format!("The refresh token has expired due to inactivity. The token was issued on {issued} and was inactive for 90.00:00:00.")),
            70008 => (400, "invalid_grant", None, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.".into()),
            50173 => (400, "invalid_grant", None, format!("The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '{issued}' and the TokensValidFrom date (before which tokens are not valid) for this user is '{}'.", utc_text(unix_now()))),
            9002313 => (400, "invalid_grant", None, "Invalid request. Request is malformed or invalid.".into()),
            70000 => (400, "invalid_grant", None, "Provided grant is invalid or malformed.".into()),
            900144 => (400, "invalid_request", None, format!("The request body must contain the following parameter: '{}'.", if c.param.is_empty() { "grant_type" } else { c.param })),
            70003 => (400, "unsupported_grant_type", None, format!("The app requested an unsupported grant type '{}'.", c.param)),
            // Device code flow (RFC 8628 error values; Microsoft's texts).
            70016 => (400, "authorization_pending", None, "OAuth 2.0 device flow error. Authorization is pending. Continue polling.".into()),
            70019 => (400, "expired_token", None, "Verification code expired.".into()),
            // Microsoft documents no AADSTS number for these two answers: 70020 and 70021 are this
            // stand-in's own numbers, so tests can ask fail_next for them.
            70020 => (400, "slow_down", None, "OAuth 2.0 device flow error. The client is polling too frequently; slow down and respect the interval.".into()),
            70021 => (400, "authorization_declined", None, "The end user declined the authorization request.".into()),
            // Certificate credentials (src/certs.rs).
            _ => return crate::certs::aad_cert(code, c),
        };
    Some(AadError {
        status,
        error,
        code,
        text,
        suberror,
    })
}

impl AadError {
    /// The JSON body exactly as Microsoft shapes it.
    pub fn body(&self) -> String {
        let trace = guid();
        let correlation = guid();
        let now = unix_now();
        let stamp = utc_text(now);
        let description = format!(
            "AADSTS{}: {}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {}",
            self.code,
            self.text,
            stamp.replace('Z', &format!(".{:07}Z", now % 10_000_000 / 3))
        );
        let mut out = format!(
            "{{\"error\":{},\"error_description\":{},\"error_codes\":[{}],\"timestamp\":{},\"trace_id\":{},\"correlation_id\":{},\"error_uri\":{}",
            json_str(self.error),
            json_str(&description),
            self.code,
            json_str(&stamp),
            json_str(&trace),
            json_str(&correlation),
            json_str(&format!("https://login.microsoftonline.com/error?code={}", self.code)),
        );
        if let Some(s) = self.suberror {
            out.push_str(&format!(",\"suberror\":{}", json_str(s)));
        }
        out.push('}');
        out
    }
}

/// Every AADSTS code `fail_next` accepts (REFERENCE.md's table plus the device-flow ones).
pub const KNOWN_CODES: &[u32] = &[
    50126, 50034, 50053, 50055, 50057, 50076, 50079, 53003, 530035, 65001, 7000218, 700016, 90002,
    50194, 7000215, 7000222, 70011, 28000, 1002012, 700082, 70008, 50173, 9002313, 70000, 900144,
    70003, 70016, 70019, 70020, 70021,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_has_an_answer() {
        for code in KNOWN_CODES {
            let e = aad(*code, &Ctx::default()).expect("known code");
            let body = e.body();
            assert!(body.starts_with("{\"error\":"), "{body}");
            assert!(
                body.contains(&format!("\"error_codes\":[{code}]")),
                "{body}"
            );
            assert!(body.contains(&format!("AADSTS{code}: ")), "{body}");
            assert!(e.status == 400 || e.status == 401);
        }
        assert!(aad(12345, &Ctx::default()).is_none());
    }

    #[test]
    fn wrong_password_is_microsofts_text() {
        let e = aad(50126, &Ctx::default()).unwrap();
        assert_eq!((e.status, e.error), (400, "invalid_grant"));
        let body = e.body();
        assert!(body.contains("AADSTS50126: Error validating credentials due to invalid username or password.\\r\\nTrace ID: "), "{body}");
        assert!(body.contains("\\r\\nCorrelation ID: ") && body.contains("\\r\\nTimestamp: "));
    }

    #[test]
    fn mfa_differs_by_grant() {
        let pw = aad(
            50076,
            &Ctx {
                grant: "password",
                ..Ctx::default()
            },
        )
        .unwrap();
        let rt = aad(
            50076,
            &Ctx {
                grant: "refresh_token",
                ..Ctx::default()
            },
        )
        .unwrap();
        assert_eq!(pw.error, "invalid_grant");
        assert_eq!(rt.error, "interaction_required");
    }
}
