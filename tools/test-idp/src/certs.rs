//! Certificate credentials (client assertions, RFC 7523 as Microsoft uses it): apps whose id
//! starts with `app-cert` authenticate client-credentials requests with a `client_assertion`
//! JWT signed by a certificate registered for them (`/_test/register_certificate`). Checked as
//! Microsoft does: `x5t#S256` (or `x5t`) names a registered certificate (else 700027), the
//! PS256/RS256 signature verifies against it (else 700027), `iss` = `sub` = the client id
//! (else 700021), `aud` is the token endpoint (else 700027), now within `nbf`..`exp` (else
//! 700024), and the `jti` was not presented before (else 7000299, this stand-in's own number:
//! Microsoft documents none).
//!
//! Kept apart from the service's state (process-wide tables here) so the token endpoint's
//! code only asks [`authenticate`].

use crate::errors::{AadError, Ctx};
use crate::service::Reply;
use crate::util::{json_str, unix_now};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;

/// This stand-in's code for a replayed assertion (Microsoft documents none).
pub const REPLAY: u32 = 7000299;

struct Registered {
    sha256: Vec<u8>,
    sha1: Vec<u8>,
    rsa_public_key: Vec<u8>,
}

static CERTS: Mutex<Option<HashMap<String, Vec<Registered>>>> = Mutex::new(None);
static SEEN_JTI: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);
static SKEW: Mutex<Option<HashMap<String, i64>>> = Mutex::new(None);

thread_local! {
    /// Detail of the last refusal on this thread, for the error text.
    static DETAIL: RefCell<String> = const { RefCell::new(String::new()) };
}

fn lock<T>(m: &Mutex<Option<T>>) -> std::sync::MutexGuard<'_, Option<T>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether `client_id` is a certificate app.
pub fn is_cert_app(client_id: &str) -> bool {
    client_id.starts_with("app-cert")
}

fn refuse(code: u32, detail: impl Into<String>) -> u32 {
    let d = detail.into();
    DETAIL.with(|x| *x.borrow_mut() = d);
    code
}

/// Microsoft's answers for the certificate codes (`None` for other codes).
pub fn aad_cert(code: u32, c: &Ctx<'_>) -> Option<AadError> {
    let detail = DETAIL.with(|x| std::mem::take(&mut *x.borrow_mut()));
    let app = c.client_id;
    let text = match code {
        700027 => format!("Client assertion failed signature validation. [Reason - {detail}, Please visit the Azure Portal, Graph Explorer or use PowerShell to verify the key is registered on application '{app}'.]"),
        700024 => format!("Client assertion is not within its valid time range. {detail}"),
        700021 => format!("Client assertion application identifier doesn't match 'client_id' parameter. {detail}"),
        REPLAY => format!("The client assertion with jti '{detail}' was already used (replayed). Each assertion must be used once."),
        _ => return None,
    };
    Some(AadError {
        status: 401,
        error: "invalid_client",
        code,
        text,
        suberror: None,
    })
}

/// `/_test/register_certificate?client_id=C` with `certificate=PEM` (form), and
/// `/_test/cert_clock?client_id=C&skew=S` (this endpoint's clock runs S seconds ahead for C).
pub fn control(cmd: &str, p: &[(String, String)]) -> Option<Reply> {
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let answer = |status: u16, body: String| {
        Some(Reply::Answer(
            status,
            "application/json; charset=utf-8",
            body,
        ))
    };
    let bad = |msg: &str| answer(400, format!("{{\"ok\":false,\"error\":{}}}", json_str(msg)));
    match cmd {
        "register_certificate" => {
            let (Some(client), Some(pem)) = (get("client_id"), get("certificate")) else {
                return bad("client_id and certificate (PEM) are required");
            };
            if !is_cert_app(client) {
                return bad("certificate apps' ids start with app-cert");
            }
            let Some(reg) = register(pem) else {
                return bad("not a PEM RSA certificate");
            };
            let thumb: String = reg.sha1.iter().map(|b| format!("{b:02X}")).collect();
            lock(&CERTS)
                .get_or_insert_with(HashMap::new)
                .entry(client.to_string())
                .or_default()
                .push(reg);
            answer(
                200,
                format!("{{\"ok\":true,\"thumbprint\":{}}}", json_str(&thumb)),
            )
        }
        "cert_clock" => {
            let (Some(client), Some(skew)) = (get("client_id"), get("skew")) else {
                return bad("client_id and skew are required");
            };
            let Ok(skew) = skew.parse::<i64>() else {
                return bad("skew must be an integer");
            };
            lock(&SKEW)
                .get_or_insert_with(HashMap::new)
                .insert(client.to_string(), skew);
            answer(200, "{\"ok\":true}".into())
        }
        _ => None,
    }
}

fn register(pem: &str) -> Option<Registered> {
    let begin = "-----BEGIN CERTIFICATE-----";
    let start = pem.find(begin)? + begin.len();
    let stop = pem[start..].find("-----END CERTIFICATE-----")? + start;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD.decode(b64).ok()?;
    let key = rsa_public_key(&der)?.to_vec();
    Some(Registered {
        sha256: ring::digest::digest(&ring::digest::SHA256, &der)
            .as_ref()
            .to_vec(),
        sha1: ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der)
            .as_ref()
            .to_vec(),
        rsa_public_key: key,
    })
}

fn tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The RSAPublicKey DER inside a certificate's subjectPublicKeyInfo.
fn rsa_public_key(der: &[u8]) -> Option<&[u8]> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut r = tbs;
    if r.first() == Some(&0xa0) {
        r = tlv(r)?.2;
    }
    for _ in 0..5 {
        // serial, signature, issuer, validity, subject
        r = tlv(r)?.2;
    }
    let (_, spki, _) = tlv(r)?;
    let (_, _alg, s) = tlv(spki)?;
    let (tag, bits, _) = tlv(s)?;
    (tag == 0x03 && bits.first() == Some(&0)).then(|| &bits[1..])
}

/// A string or integer member of a flat JSON object (our own assertions' header and claims).
fn member(json: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\"");
    let mut from = 0;
    while let Some(i) = json[from..].find(&pat) {
        let after = json[from + i + pat.len()..].trim_start();
        if let Some(v) = after.strip_prefix(':') {
            let v = v.trim_start();
            if let Some(s) = v.strip_prefix('"') {
                let end = s.find('"')?;
                return Some(s[..end].replace("\\/", "/"));
            }
            let n: String = v.chars().take_while(|c| c.is_ascii_digit()).collect();
            return (!n.is_empty()).then_some(n);
        }
        from += i + pat.len();
    }
    None
}

/// Authenticates a client-credentials request of certificate app `client_id` at
/// `/{tenant}/oauth2/v2.0/token`; `Err` carries the AADSTS code.
pub fn authenticate(client_id: &str, tenant: &str, p: &[(String, String)]) -> Result<(), u32> {
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("client_secret").is_some() {
        return Err(7000215);
    }
    let (Some(kind), Some(assertion)) = (get("client_assertion_type"), get("client_assertion"))
    else {
        return Err(7000218);
    };
    if kind != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return Err(refuse(
            700027,
            "The client_assertion_type is not jwt-bearer",
        ));
    }
    let parts: Vec<&str> = assertion.split('.').collect();
    let malformed = || refuse(700027, "The assertion is not a signed JWT");
    if parts.len() != 3 {
        return Err(malformed());
    }
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).ok();
    let header = decode(parts[0])
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(malformed)?;
    let claims = decode(parts[1])
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(malformed)?;
    let signature = decode(parts[2]).ok_or_else(malformed)?;
    let alg: &dyn ring::signature::VerificationAlgorithm = match member(&header, "alg").as_deref() {
        Some("PS256") => &ring::signature::RSA_PSS_2048_8192_SHA256,
        Some("RS256") => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        other => {
            return Err(refuse(
                700027,
                format!("The algorithm {other:?} is not supported"),
            ))
        }
    };
    let s256 = member(&header, "x5t#S256").and_then(|t| decode(&t));
    let s1 = member(&header, "x5t").and_then(|t| decode(&t));
    let shown = member(&header, "x5t#S256")
        .or_else(|| member(&header, "x5t"))
        .unwrap_or_default();
    let key = {
        let certs = lock(&CERTS);
        certs
            .as_ref()
            .and_then(|c| c.get(client_id))
            .and_then(|list| {
                list.iter().find(|r| {
                    s256.as_deref() == Some(&r.sha256[..]) || s1.as_deref() == Some(&r.sha1[..])
                })
            })
            .map(|r| r.rsa_public_key.clone())
    };
    let Some(key) = key else {
        return Err(refuse(
            700027,
            format!("The key was not found., Thumbprint of key used by client: '{shown}'"),
        ));
    };
    let signing_input = format!("{}.{}", parts[0], parts[1]);
    if ring::signature::UnparsedPublicKey::new(alg, &key)
        .verify(signing_input.as_bytes(), &signature)
        .is_err()
    {
        return Err(refuse(
            700027,
            "Key was found, but use of the key to verify the signature failed",
        ));
    }
    if member(&claims, "iss").as_deref() != Some(client_id)
        || member(&claims, "sub").as_deref() != Some(client_id)
    {
        return Err(refuse(700021, "iss and sub must be the client id"));
    }
    let aud = member(&claims, "aud").unwrap_or_default();
    let want = format!("/{tenant}/oauth2/v2.0/token");
    if !(aud.starts_with("http://") || aud.starts_with("https://")) || !aud.ends_with(&want) {
        return Err(refuse(
            700027,
            format!("The audience '{aud}' is not this token endpoint"),
        ));
    }
    let skew = lock(&SKEW)
        .as_ref()
        .and_then(|m| m.get(client_id).copied())
        .unwrap_or(0);
    let now = (unix_now() as i64 + skew).max(0) as u64;
    let num = |k: &str| member(&claims, k).and_then(|v| v.parse::<u64>().ok());
    let (Some(nbf), Some(exp)) = (num("nbf"), num("exp")) else {
        return Err(refuse(700024, "The assertion has no nbf or exp."));
    };
    if now >= exp || now + 300 < nbf {
        return Err(refuse(
            700024,
            format!(
                "Current time: {now}, assertion valid from {nbf}, expiry time of assertion {exp}."
            ),
        ));
    }
    let Some(jti) = member(&claims, "jti").filter(|j| !j.is_empty()) else {
        return Err(refuse(700027, "The assertion has no jti"));
    };
    let mut seen = lock(&SEEN_JTI);
    let seen = seen.get_or_insert_with(HashMap::new);
    seen.retain(|_, e| *e + 600 > now);
    if seen.contains_key(&jti) {
        return Err(refuse(REPLAY, jti));
    }
    seen.insert(jti, exp);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_members() {
        let j = r#"{"alg":"PS256", "x5t":"a-b", "x5t#S256" : "c_d","exp":1700000600,"aud":"https:\/\/h\/t"}"#;
        assert_eq!(member(j, "alg").as_deref(), Some("PS256"));
        assert_eq!(member(j, "x5t").as_deref(), Some("a-b"));
        assert_eq!(member(j, "x5t#S256").as_deref(), Some("c_d"));
        assert_eq!(member(j, "exp").as_deref(), Some("1700000600"));
        assert_eq!(member(j, "aud").as_deref(), Some("https://h/t"));
        assert_eq!(member(j, "nbf"), None);
    }

    #[test]
    fn requests_without_a_usable_assertion_are_refused() {
        let p = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(authenticate("app-cert-x", "t", &p(&[])), Err(7000218));
        assert_eq!(
            authenticate("app-cert-x", "t", &p(&[("client_secret", "s")])),
            Err(7000215)
        );
        let jwt = p(&[
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", "a.b"),
        ]);
        assert_eq!(authenticate("app-cert-x", "t", &jwt), Err(700027));
        // Signed by nobody registered.
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"PS256","x5t#S256":"AAAA"}"#);
        let jwt = p(&[
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &format!("{header}.e30.AAAA")),
        ]);
        assert_eq!(authenticate("app-cert-x", "t", &jwt), Err(700027));
        let e = aad_cert(700027, &Ctx::default()).unwrap();
        assert!(e.text.contains("The key was not found"), "{}", e.text);
    }
}
