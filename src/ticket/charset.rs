//! Text decoding with honest fallbacks (REFERENCE pain point 10).
//!
//! A charset the Content-Type names and the decoder knows is trusted as declared: no guessing
//! ever overrides it. Only when the label is missing, unknown, or says UTF-8 while the bytes are
//! not, do we fall back — UTF-8 if the bytes are valid UTF-8, else Windows-1252 (a superset of
//! ISO-8859-1 and what mislabelled Western mail nearly always is) — and say so in a warning.

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{Encoding, MessagePart, MimeHeaders};

/// Decodes Windows-1252 (every byte maps to a character).
pub fn decode_cp1252(bytes: &[u8]) -> String {
    match charset_decoder(b"windows-1252") {
        Some(decode) => decode(bytes),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn is_utf8_label(label: &str) -> bool {
    let l = label.trim().to_ascii_lowercase();
    matches!(
        l.as_str(),
        "utf-8" | "utf8" | "unicode-1-1-utf-8" | "x-unicode20utf8"
    )
}

fn is_ascii_label(label: &str) -> bool {
    let l = label.trim().to_ascii_lowercase();
    matches!(
        l.as_str(),
        "us-ascii" | "ascii" | "ansi_x3.4-1968" | "iso646-us" | "us" | "csascii"
    )
}

/// The text of a text/* part as mail-parser decoded it, corrected where the declared charset
/// was missing, unknown or wrong. `raw` is the buffer the part's offsets point into; `what`
/// names the part in warnings.
pub fn part_text(
    raw: &[u8],
    part: &MessagePart<'_>,
    decoded: &str,
    what: &str,
    warnings: &mut Vec<String>,
) -> String {
    let declared = part
        .content_type()
        .and_then(|ct| ct.attribute("charset"))
        .map(|c| c.trim().trim_matches('"').to_string())
        .filter(|c| !c.is_empty());
    if let Some(label) = &declared {
        if is_ascii_label(label) && !decoded.is_ascii() {
            // "us-ascii" with 8-bit bytes is provably wrong: read the bytes as what they are.
            if let Some(bytes) = transfer_decoded(raw, part) {
                let (text, as_what) = match String::from_utf8(bytes) {
                    Ok(text) => (text, "UTF-8"),
                    Err(e) => (decode_cp1252(e.as_bytes()), "windows-1252"),
                };
                warnings.push(format!(
                    "{what}: declared \"{}\" but has 8-bit bytes; decoded as {as_what}",
                    sanitize_label(label)
                ));
                return text;
            }
        }
        if !is_utf8_label(label) && charset_decoder(label.as_bytes()).is_some() {
            // Declared and known: mail-parser decoded it with that charset. Trust it.
            return decoded.to_string();
        }
    }
    let unknown_label = declared.as_deref().filter(|l| !is_utf8_label(l));
    if !decoded.contains('\u{fffd}') {
        if let Some(label) = unknown_label {
            warnings.push(format!(
                "{what}: unknown charset \"{}\"; decoded as UTF-8",
                sanitize_label(label)
            ));
        }
        return decoded.to_string();
    }
    // mail-parser replaced invalid UTF-8; recover the bytes to decide what they are.
    let Some(bytes) = transfer_decoded(raw, part) else {
        warnings.push(format!(
            "{what}: text is not valid in its charset; invalid bytes replaced"
        ));
        return decoded.to_string();
    };
    match String::from_utf8(bytes) {
        Ok(text) => text, // the replacement characters were genuinely in the text
        Err(e) if declared.is_none() && part.is_text_html() => {
            // No charset in the header: the HTML's own <meta charset> is the sender's word.
            match meta_charset(e.as_bytes()).and_then(|l| Some((charset_decoder(l.as_bytes())?, l)))
            {
                Some((decode, label)) => {
                    warnings.push(format!(
                        "{what}: no charset declared; decoded as \"{}\" from the HTML meta tag",
                        sanitize_label(&label)
                    ));
                    decode(e.as_bytes())
                }
                None => {
                    warnings.push(format!(
                        "{what}: no charset declared; decoded as windows-1252"
                    ));
                    decode_cp1252(e.as_bytes())
                }
            }
        }
        Err(e) => {
            let label = match (&declared, unknown_label) {
                (None, _) => "no charset declared".to_string(),
                (Some(_), Some(l)) => format!("unknown charset \"{}\"", sanitize_label(l)),
                (Some(l), None) => {
                    format!("declared \"{}\" but not valid UTF-8", sanitize_label(l))
                }
            };
            warnings.push(format!("{what}: {label}; decoded as windows-1252"));
            decode_cp1252(e.as_bytes())
        }
    }
}

/// The charset an HTML document names in its first 4 KB (`<meta charset=…>` or
/// `<meta http-equiv=… content="…; charset=…">`).
pub fn meta_charset(html: &[u8]) -> Option<String> {
    let head = &html[..html.len().min(4096)];
    let lower: Vec<u8> = head.iter().map(|b| b.to_ascii_lowercase()).collect();
    let mut from = 0;
    while let Some(pos) = find(&lower[from..], b"charset=") {
        let start = from + pos + b"charset=".len();
        let rest = &lower[start..];
        let rest = rest
            .strip_prefix(b"\"")
            .or_else(|| rest.strip_prefix(b"'"))
            .unwrap_or(rest);
        let end = rest
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')))
            .unwrap_or(rest.len());
        if end > 0 && end <= 40 {
            return Some(String::from_utf8_lossy(&rest[..end]).into_owned());
        }
        from = start;
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn sanitize_label(label: &str) -> String {
    label.chars().filter(|c| !c.is_control()).take(40).collect()
}

/// The part's body bytes with the transfer encoding undone, read from `raw` at the part's
/// offsets. Tolerant: stray characters in base64 are skipped, broken quoted-printable escapes
/// kept literally.
pub fn transfer_decoded(raw: &[u8], part: &MessagePart<'_>) -> Option<Vec<u8>> {
    let start = part.offset_body as usize;
    let end = part.offset_end as usize;
    let body = raw.get(start..end.max(start))?;
    Some(match part.encoding {
        Encoding::Base64 => decode_base64_lenient(body),
        Encoding::QuotedPrintable => decode_qp_lenient(body),
        Encoding::None => body.to_vec(),
    })
}

/// Base64 ignoring anything outside the alphabet; stops at padding.
pub fn decode_base64_lenient(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in input {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => continue,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Quoted-printable; soft line breaks removed, invalid escapes kept as written.
pub fn decode_qp_lenient(input: &[u8]) -> Vec<u8> {
    let hex = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let c = input[i];
        if c == b'=' {
            match (input.get(i + 1), input.get(i + 2)) {
                (Some(b'\r'), Some(b'\n')) => {
                    i += 3;
                    continue;
                }
                (Some(b'\n'), _) => {
                    i += 2;
                    continue;
                }
                (Some(&a), Some(&b)) => {
                    if let (Some(h), Some(l)) = (hex(a), hex(b)) {
                        out.push(h << 4 | l);
                        i += 3;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_charset_sniffing() {
        assert_eq!(
            meta_charset(b"<html><head><meta charset=\"ISO-8859-2\">").as_deref(),
            Some("iso-8859-2")
        );
        assert_eq!(
            meta_charset(
                b"<meta http-equiv=Content-Type content='text/html; charset=windows-1250'>"
            )
            .as_deref(),
            Some("windows-1250")
        );
        assert_eq!(meta_charset(b"<p>no meta</p>"), None);
        assert_eq!(meta_charset(b"charset="), None);
    }

    #[test]
    fn lenient_decoders() {
        assert_eq!(decode_base64_lenient(b"SGVs\r\nbG8=\r\n"), b"Hello");
        assert_eq!(decode_base64_lenient(b"S!GVsbG8"), b"Hello");
        assert_eq!(
            decode_qp_lenient(b"caf=C3=A9 =\r\nok =ZZ"),
            "café ok =ZZ".as_bytes()
        );
        assert_eq!(decode_cp1252(b"caf\xe9 \x80"), "café €");
    }
}
