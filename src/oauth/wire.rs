//! The JSON answers of the token and device-code endpoints, parsed with serde-json-core
//! (unknown fields ignored, escapes decoded).

use super::errors::ErrorAnswer;
use serde::Deserialize;

/// A successful token answer. Tokens are moved into `Secret`s by the caller at once.
#[derive(Deserialize, Default)]
pub(crate) struct TokenAnswer {
    pub access_token: Option<String>,
    pub token_type: Option<String>,
    pub expires_in: Option<u64>,
    pub refresh_token: Option<String>,
}

impl Drop for TokenAnswer {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        if let Some(t) = self.access_token.as_mut() {
            t.zeroize();
        }
        if let Some(t) = self.refresh_token.as_mut() {
            t.zeroize();
        }
    }
}

#[derive(Deserialize)]
struct ErrorJson {
    error: Option<String>,
    error_description: Option<String>,
    error_codes: Option<Vec<u64>>,
}

/// A device-code answer.
#[derive(Deserialize)]
pub(crate) struct DeviceCodeAnswer {
    pub device_code: Option<String>,
    pub user_code: Option<String>,
    pub verification_uri: Option<String>,
    /// The v1 endpoint's spelling.
    pub verification_url: Option<String>,
    pub expires_in: Option<u64>,
    pub interval: Option<u64>,
    pub message: Option<String>,
}

/// Parses `body` as `T`; `None` when it is not JSON of that shape.
fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Option<T> {
    let text = std::str::from_utf8(body).ok()?;
    let mut scratch = zeroize::Zeroizing::new(vec![0u8; text.len()]);
    serde_json_core::from_str_escaped::<T>(text, &mut scratch)
        .ok()
        .map(|(v, _)| v)
}

/// A token answer; `None` when the body is not one.
pub(crate) fn token_answer(body: &[u8]) -> Option<TokenAnswer> {
    parse(body)
}

/// A device-code answer; `None` when the body is not one.
pub(crate) fn device_code_answer(body: &[u8]) -> Option<DeviceCodeAnswer> {
    parse(body)
}

/// An OAuth error answer; `None` when the body is not JSON with an `error` field.
pub(crate) fn error_answer(body: &[u8]) -> Option<ErrorAnswer> {
    let e: ErrorJson = parse(body)?;
    let error = e.error?;
    Some(ErrorAnswer::new(
        error,
        e.error_description.as_deref(),
        e.error_codes.as_deref().unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answer_with_unknown_fields_in_any_order() {
        let body = br#"{"token_type":"Bearer","scope":"https://outlook.office.com/IMAP.AccessAsUser.All","expires_in":4171,"ext_expires_in":4171,"nested":{"a":[1,{"b":null}],"c":true},"access_token":"eyJ0.a-b_c","refresh_token":"0.AR\u002fx\"y"}"#;
        let t = token_answer(body).unwrap();
        assert_eq!(t.access_token.as_deref(), Some("eyJ0.a-b_c"));
        assert_eq!(t.refresh_token.as_deref(), Some("0.AR/x\"y"));
        assert_eq!(t.expires_in, Some(4171));
        assert_eq!(t.token_type.as_deref(), Some("Bearer"));
    }

    #[test]
    fn microsoft_error_answer() {
        let body = br#"{"error":"invalid_grant","error_description":"AADSTS50126: Error validating credentials due to invalid username or password.\r\nTrace ID: 3c1a\r\nCorrelation ID: 9f2b\r\nTimestamp: 2026-11-28 18:00:00Z","error_codes":[50126],"timestamp":"2026-11-28 18:00:00Z","trace_id":"3c1a","correlation_id":"9f2b","error_uri":"https://login.microsoftonline.com/error?code=50126"}"#;
        let e = error_answer(body).unwrap();
        assert_eq!(e.error, "invalid_grant");
        assert_eq!(e.code, Some(50126));
        assert_eq!(
            e.description.as_deref(),
            Some("AADSTS50126: Error validating credentials due to invalid username or password.")
        );
    }

    #[test]
    fn garbage_is_none() {
        assert!(token_answer(b"<html>502</html>").is_none());
        assert!(error_answer(b"{\"foo\":1}").is_none());
        assert!(error_answer(b"\xff\xfe").is_none());
        assert!(token_answer(b"{\"expires_in\":\"3599\"}").is_none());
    }

    #[test]
    fn device_code_answer_fields() {
        let body = br#"{"user_code":"ABCD-EFGH","device_code":"DAQABAAEAAAD","verification_uri":"https://microsoft.com/devicelogin","expires_in":900,"interval":5,"message":"To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD-EFGH to authenticate."}"#;
        let d = device_code_answer(body).unwrap();
        assert_eq!(d.user_code.as_deref(), Some("ABCD-EFGH"));
        assert_eq!(d.interval, Some(5));
        assert_eq!(d.expires_in, Some(900));
        assert!(d.message.unwrap().contains("devicelogin"));
    }
}
