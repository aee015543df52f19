//! Certificate credentials for app-only sign-in (`oauth.client_certificate_file`): a PEM file
//! with the certificate and its RSA private key. Each token request carries a fresh
//! `client_assertion` JWT (Microsoft's certificate credential format): header `alg` PS256,
//! `x5t#S256` and `x5t` (base64url of the SHA-256 and SHA-1 of the certificate's DER), claims
//! `aud` = the token endpoint URL, `iss` = `sub` = the client id, `jti` unique, `nbf`/`iat` now,
//! `exp` 10 minutes later; signed with ring.
//!
//! The certificate is read with a small DER reader: its validity (notAfter, for the lifetime
//! warnings) and its public key (to check that the private key belongs to it).

use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SecureRandom;
use ring::signature::{KeyPair, RsaKeyPair};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Lifetime of a client assertion (Microsoft's recommendation: 10 minutes).
pub const ASSERTION_LIFETIME_SECS: u64 = 600;

const KEY: &str = "oauth.client_certificate_file";

/// A certificate with its private key, loaded from `client_certificate_file`.
pub struct ClientCertificate {
    path: PathBuf,
    key: RsaKeyPair,
    /// SHA-256 of the certificate's DER.
    sha256: [u8; 32],
    /// SHA-1 of the certificate's DER (the thumbprint the Azure portal shows).
    sha1: [u8; 20],
    not_before: u64,
    not_after: u64,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("path", &self.path)
            .field("thumbprint", &self.thumbprint())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn bad(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::config(KEY, format!("{}: {what}", path.display())).with_fix(
        "point client_certificate_file to one PEM file holding the certificate \
         (-----BEGIN CERTIFICATE-----) and its unencrypted RSA private key \
         (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----), e.g. \
         `cat cert.pem key.pem > agent-cert.pem`",
    )
}

/// The base64 bodies of the PEM blocks labelled `label`, in order.
fn pem_blocks(text: &str, label: &str) -> Vec<Zeroizing<String>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let Some(stop) = after.find(&end) else { break };
        out.push(Zeroizing::new(
            after[..stop]
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect(),
        ));
        rest = &after[stop + end.len()..];
    }
    out
}

impl ClientCertificate {
    /// Loads and checks `path`: a certificate, an RSA private key (PKCS#8 or PKCS#1, not
    /// encrypted) that belongs to it.
    pub fn load(path: &Path) -> Result<ClientCertificate> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Error::config(KEY, format!("{}: cannot read it: {e}", path.display()))
                .with_fix("make the PEM file readable by the agent's user")
        })?);
        ClientCertificate::from_pem(&text, path)
    }

    /// Parses PEM `text` (named `path` in errors).
    pub fn from_pem(text: &str, path: &Path) -> Result<ClientCertificate> {
        if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(bad(
                path,
                "the private key is encrypted; the agent needs it unencrypted (protect the file \
                 with mode 0600 instead: `openssl pkcs8 -topk8 -nocrypt -in key.pem`)",
            ));
        }
        let certs = pem_blocks(text, "CERTIFICATE");
        let Some(cert_b64) = certs.first() else {
            return Err(bad(path, "no -----BEGIN CERTIFICATE----- block"));
        };
        let der = STANDARD
            .decode(cert_b64.as_bytes())
            .map_err(|_| bad(path, "the certificate block is not valid base64"))?;
        let parsed = parse_certificate(&der)
            .ok_or_else(|| bad(path, "the certificate is not an X.509 certificate"))?;
        if !parsed.rsa {
            return Err(bad(
                path,
                "the certificate's key is not RSA (Microsoft Entra ID accepts RSA certificates \
                 for client assertions)",
            ));
        }
        let key = if let Some(b64) = pem_blocks(text, "PRIVATE KEY").first() {
            let der = Zeroizing::new(
                STANDARD
                    .decode(b64.as_bytes())
                    .map_err(|_| bad(path, "the private key block is not valid base64"))?,
            );
            RsaKeyPair::from_pkcs8(&der)
                .map_err(|e| bad(path, format!("the private key is not usable: {e}")))?
        } else if let Some(b64) = pem_blocks(text, "RSA PRIVATE KEY").first() {
            let der = Zeroizing::new(
                STANDARD
                    .decode(b64.as_bytes())
                    .map_err(|_| bad(path, "the private key block is not valid base64"))?,
            );
            RsaKeyPair::from_der(&der)
                .map_err(|e| bad(path, format!("the private key is not usable: {e}")))?
        } else {
            return Err(bad(path, "no private key block"));
        };
        if key.public_key().as_ref() != parsed.rsa_public_key {
            return Err(bad(
                path,
                "the private key does not belong to the certificate (another key pair)",
            ));
        }
        let sha256: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &der)
            .as_ref()
            .try_into()
            .expect("32 bytes");
        let sha1: [u8; 20] = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der)
            .as_ref()
            .try_into()
            .expect("20 bytes");
        Ok(ClientCertificate {
            path: path.to_path_buf(),
            key,
            sha256,
            sha1,
            not_before: parsed.not_before,
            not_after: parsed.not_after,
        })
    }

    /// The SHA-1 thumbprint as the Azure portal shows it (upper-case hex).
    pub fn thumbprint(&self) -> String {
        self.sha1.iter().map(|b| format!("{b:02X}")).collect()
    }

    /// The SHA-256 thumbprint (lower-case hex): what the token cache is bound to.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Unix seconds of the certificate's notAfter.
    pub fn not_after(&self) -> u64 {
        self.not_after
    }

    /// Unix seconds of the certificate's notBefore.
    pub fn not_before(&self) -> u64 {
        self.not_before
    }

    /// The file it came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A signed client assertion for `audience` (the token endpoint URL) and `client_id`,
    /// valid from `now` for [`ASSERTION_LIFETIME_SECS`].
    pub fn assertion(&self, audience: &str, client_id: &str, now: u64) -> Result<Secret> {
        let rng = ring::rand::SystemRandom::new();
        let mut id = [0u8; 16];
        rng.fill(&mut id).map_err(|_| {
            Error::new(
                ErrorKind::Internal,
                "the system's random number generator failed",
            )
        })?;
        // A version-4 UUID, as Microsoft's libraries make their jti.
        id[6] = (id[6] & 0x0f) | 0x40;
        id[8] = (id[8] & 0x3f) | 0x80;
        let h: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let jti = format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        );
        let header = format!(
            "{{\"alg\":\"PS256\",\"typ\":\"JWT\",\"x5t\":\"{}\",\"x5t#S256\":\"{}\"}}",
            URL_SAFE_NO_PAD.encode(self.sha1),
            URL_SAFE_NO_PAD.encode(self.sha256)
        );
        let claims = format!(
            "{{\"aud\":{},\"iss\":{},\"sub\":{},\"jti\":\"{jti}\",\"nbf\":{now},\"iat\":{now},\"exp\":{}}}",
            json_string(audience),
            json_string(client_id),
            json_string(client_id),
            now + ASSERTION_LIFETIME_SECS
        );
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PSS_SHA256,
                &rng,
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| {
                Error::new(
                    ErrorKind::Internal,
                    format!(
                        "{}: signing the client assertion failed",
                        self.path.display()
                    ),
                )
            })?;
        Ok(Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What the agent reads from a certificate.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ParsedCertificate<'a> {
    pub not_before: u64,
    pub not_after: u64,
    /// Whether the key is RSA (rsaEncryption).
    pub rsa: bool,
    /// The subjectPublicKey bits (for RSA: the RSAPublicKey DER).
    pub rsa_public_key: &'a [u8],
}

/// One DER element: (tag, contents, what follows).
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
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
/// rsaEncryption, 1.2.840.113549.1.1.1.
const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// Reads validity and public key of an X.509 certificate (DER).
pub(crate) fn parse_certificate(der: &[u8]) -> Option<ParsedCertificate<'_>> {
    let (tag, cert, _) = tlv(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = tlv(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    // [0] EXPLICIT version, optional.
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2;
    }
    let (_, _serial, r) = tlv(rest)?;
    let (_, _signature, r) = tlv(r)?;
    let (_, _issuer, r) = tlv(r)?;
    let (tag, validity, r) = tlv(r)?;
    if tag != SEQUENCE {
        return None;
    }
    let (t1, nb, v) = tlv(validity)?;
    let (t2, na, _) = tlv(v)?;
    let (_, _subject, r) = tlv(r)?;
    let (tag, spki, _) = tlv(r)?;
    if tag != SEQUENCE {
        return None;
    }
    let (_, algorithm, s) = tlv(spki)?;
    let (tag, bits, _) = tlv(s)?;
    if tag != 0x03 || bits.first() != Some(&0) {
        return None;
    }
    let (_, oid, _) = tlv(algorithm)?;
    Some(ParsedCertificate {
        not_before: der_time(t1, nb)?,
        not_after: der_time(t2, na)?,
        rsa: oid == RSA_OID,
        rsa_public_key: &bits[1..],
    })
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as Unix seconds.
fn der_time(tag: u8, text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: i64 = digits[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let n = |i: usize| -> Option<i64> { rest[i..i + 2].parse().ok() };
    let (month, day, h, m, s) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    u64::try_from(days * 86_400 + h * 3600 + m * 60 + s).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(der_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(der_time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(der_time(0x18, b"20380119031408Z"), Some(2_147_483_648));
        assert_eq!(der_time(0x17, b"7001010000Z"), None);
        assert_eq!(der_time(0x17, b"701301000000Z"), None);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn garbage_is_refused_without_panic() {
        let p = Path::new("x.pem");
        for text in [
            "",
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----",
            "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----",
        ] {
            let e = ClientCertificate::from_pem(text, p).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(e.message().contains(KEY), "{e}");
        }
        for len in 0..64 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 0x30) as u8).collect();
            let _ = parse_certificate(&data);
        }
    }
}
