//! Large attachments without a second (and third) copy of their bytes.
//!
//! mail-parser decodes every part while it parses, so a 100 MB message with a 75 MB attachment
//! used to cost the raw message, mail-parser's decoded copy and the ticket's copy at once. Here a
//! large message is first scanned for its MIME structure: each large non-text leaf part (an
//! attachment or inline file) is replaced, in a *skeleton* copy of the message, by a short marker
//! in the same transfer encoding. mail-parser parses the skeleton (small), the ticket is built from
//! it as usual, and then each attachment whose bytes are a marker gets its size and SHA-256
//! computed by decoding the original part in chunks, its bytes decoded only when the ticket is
//! to carry them ([`super::TicketOptions::attachment_bytes`]).
//!
//! The scan is deliberately simple; whenever its view of the message and mail-parser's differ
//! (a marker that did not come back as exactly one attachment), the caller parses the original
//! message as before: correctness never depends on the scan.

use std::ops::Range;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::model::{Attachment, Omitted};
use super::TicketOptions;

/// Messages from this size on are scanned for large parts.
pub(super) const MIN_MESSAGE: usize = 1024 * 1024;
/// Parts whose body (as sent) is at least this large are elided.
pub(super) const MIN_BODY: usize = 128 * 1024;
/// Deeper MIME nesting is left to mail-parser.
const MAX_DEPTH: usize = 16;
/// Decoding works on chunks of about this many encoded bytes.
const CHUNK: usize = 256 * 1024;

/// A part's Content-Transfer-Encoding, as far as decoding goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Base64,
    QuotedPrintable,
    /// 7bit, 8bit, binary or none: the bytes as they are.
    Identity,
}

/// One elided part: where its body is in the original message, and the marker that stands for
/// it in the skeleton (as it decodes).
#[derive(Debug)]
pub(super) struct Elided {
    pub range: Range<usize>,
    pub encoding: Encoding,
    pub marker: Vec<u8>,
}

/// The message with its large parts replaced by markers.
#[derive(Debug)]
pub(super) struct Skeleton {
    pub raw: Vec<u8>,
    pub parts: Vec<Elided>,
}

/// The skeleton of `raw`, or `None` when the message is small or has no large part to elide.
pub(super) fn skeleton(raw: &[u8]) -> Option<Skeleton> {
    if raw.len() < MIN_MESSAGE {
        return None;
    }
    let mut found = Vec::new();
    scan_part(raw, 0..raw.len(), 0, &mut found);
    if found.is_empty() {
        return None;
    }
    found.sort_by_key(|(r, _)| r.start);
    let nonce = nonce();
    let kept: usize = raw.len() - found.iter().map(|(r, _)| r.len()).sum::<usize>();
    let mut out = Vec::with_capacity(kept + found.len() * 64);
    let mut parts = Vec::with_capacity(found.len());
    let mut at = 0;
    for (k, (range, encoding)) in found.into_iter().enumerate() {
        if range.start < at {
            return None; // overlapping: the scan is confused, leave it to mail-parser
        }
        out.extend_from_slice(&raw[at..range.start]);
        let marker = format!("PMA-ELIDED-{nonce}-{k}").into_bytes();
        match encoding {
            Encoding::Base64 => out.extend_from_slice(base64_encode(&marker).as_bytes()),
            Encoding::QuotedPrintable | Encoding::Identity => out.extend_from_slice(&marker),
        }
        at = range.end;
        parts.push(Elided {
            range,
            encoding,
            marker,
        });
    }
    out.extend_from_slice(&raw[at..]);
    Some(Skeleton { raw: out, parts })
}

fn nonce() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 12];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        // Without randomness a crafted attachment could imitate a marker; the caller's check
        // (each marker exactly once) would then fall back to the full parse.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b[..12].copy_from_slice(&t.to_le_bytes()[..12]);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The line starting at `i` in `raw[..end]`: (content without line break, index after it).
fn line_at(raw: &[u8], i: usize, end: usize) -> (Range<usize>, usize) {
    match raw[i..end].iter().position(|&b| b == b'\n') {
        Some(n) => {
            let mut e = i + n;
            if e > i && raw[e - 1] == b'\r' {
                e -= 1;
            }
            (i..e, i + n + 1)
        }
        None => (i..end, end),
    }
}

/// The header fields of the part at `range` this scan cares about, and where its body starts.
struct PartHeaders {
    content_type: Option<String>,
    encoding: Option<String>,
    disposition: Option<String>,
    body: usize,
}

fn part_headers(raw: &[u8], range: &Range<usize>) -> Option<PartHeaders> {
    let mut h = PartHeaders {
        content_type: None,
        encoding: None,
        disposition: None,
        body: range.end,
    };
    let mut i = range.start;
    let mut current: Option<(String, String)> = None;
    let finish = |field: Option<(String, String)>, h: &mut PartHeaders| {
        if let Some((name, value)) = field {
            let slot = match name.as_str() {
                "content-type" => &mut h.content_type,
                "content-transfer-encoding" => &mut h.encoding,
                "content-disposition" => &mut h.disposition,
                _ => return,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
    };
    while i < range.end {
        let (line, next) = line_at(raw, i, range.end);
        let text = &raw[line.clone()];
        if text.is_empty() {
            finish(current.take(), &mut h);
            h.body = next;
            return Some(h);
        }
        if text[0] == b' ' || text[0] == b'\t' {
            if let Some((_, v)) = current.as_mut() {
                v.push(' ');
                v.push_str(&String::from_utf8_lossy(text));
            }
        } else {
            finish(current.take(), &mut h);
            let colon = text.iter().position(|&b| b == b':')?;
            let name = String::from_utf8_lossy(&text[..colon])
                .trim()
                .to_ascii_lowercase();
            let value = String::from_utf8_lossy(&text[colon + 1..]).into_owned();
            current = Some((name, value));
        }
        i = next;
    }
    // No body at all.
    finish(current.take(), &mut h);
    Some(h)
}

/// A parameter of a structured header value (`boundary`, `name`, `filename`), unquoted.
fn param(value: &str, name: &str) -> Option<String> {
    let mut rest = value;
    while let Some(semi) = find_unquoted(rest, ';') {
        rest = &rest[semi + 1..];
        let piece = rest.trim_start();
        let Some(eq) = piece.find('=') else { continue };
        if !piece[..eq].trim().eq_ignore_ascii_case(name) {
            continue;
        }
        let v = piece[eq + 1..].trim_start();
        return Some(if let Some(q) = v.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = q.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next()),
                    '"' => break,
                    c => out.push(c),
                }
            }
            out
        } else {
            v.split(|c: char| c == ';' || c.is_whitespace())
                .next()
                .unwrap_or("")
                .to_string()
        });
    }
    None
}

fn find_unquoted(s: &str, needle: char) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == needle && !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn scan_part(
    raw: &[u8],
    range: Range<usize>,
    depth: usize,
    out: &mut Vec<(Range<usize>, Encoding)>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let Some(h) = part_headers(raw, &range) else {
        return;
    };
    let Some(ct) = h.content_type.as_deref() else {
        return; // text/plain (or message/rfc822 in a digest) by default: never elided
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime.starts_with("multipart/") {
        if let Some(boundary) = param(ct, "boundary").filter(|b| !b.is_empty()) {
            for child in children(raw, h.body..range.end, boundary.as_bytes()) {
                scan_part(raw, child, depth + 1, out);
            }
        }
        return;
    }
    if depth == 0
        || mime.starts_with("text/")
        || mime.starts_with("message/")
        || !mime.contains('/')
    {
        return; // the message itself, bodies, attached mails: mail-parser reads them as before
    }
    if mime.contains("tnef") {
        return; // winmail.dat is unpacked from its bytes
    }
    let names = [
        param(ct, "name"),
        h.disposition.as_deref().and_then(|d| param(d, "filename")),
    ];
    if names
        .iter()
        .flatten()
        .any(|n| n.trim().eq_ignore_ascii_case("winmail.dat"))
    {
        return;
    }
    if range.end.saturating_sub(h.body) < MIN_BODY {
        return;
    }
    let encoding = match h
        .encoding
        .as_deref()
        .map(|e| e.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("base64") => Encoding::Base64,
        Some("quoted-printable") => Encoding::QuotedPrintable,
        None | Some("7bit" | "8bit" | "binary") => Encoding::Identity,
        Some(_) => return, // unknown: whatever mail-parser makes of it
    };
    out.push((h.body..range.end, encoding));
}

/// The body parts of a multipart body at `range` with `boundary`: each from after its delimiter
/// line to before the line break that precedes the next delimiter.
fn children(raw: &[u8], range: Range<usize>, boundary: &[u8]) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let mut open: Option<usize> = None;
    let mut i = range.start;
    while i < range.end {
        let (line, next) = line_at(raw, i, range.end);
        let text = &raw[line.clone()];
        if text.len() >= 2 + boundary.len()
            && text.starts_with(b"--")
            && &text[2..2 + boundary.len()] == boundary
        {
            let rest = &text[2 + boundary.len()..];
            let closing = rest.starts_with(b"--");
            if !closing && !rest.iter().all(|b| b.is_ascii_whitespace()) {
                i = next;
                continue; // a longer boundary that merely starts with this one
            }
            if let Some(start) = open.take() {
                // The line break before the delimiter belongs to the delimiter.
                let mut end = line.start;
                if end > start && raw[end - 1] == b'\n' {
                    end -= 1;
                    if end > start && raw[end - 1] == b'\r' {
                        end -= 1;
                    }
                }
                parts.push(start..end.max(start));
            }
            if closing {
                return parts;
            }
            open = Some(next);
        }
        i = next;
    }
    if let Some(start) = open {
        parts.push(start..range.end);
    }
    parts
}

/// Decodes `body` in chunks, handing each decoded chunk to `sink`: the same bytes as
/// mail-parser's decoders give for well-formed input (base64 ignoring characters outside the
/// alphabet, quoted-printable with soft line breaks removed).
pub(super) fn decode_chunks(body: &[u8], encoding: Encoding, mut sink: impl FnMut(&[u8])) {
    match encoding {
        Encoding::Identity => {
            for c in body.chunks(CHUNK) {
                sink(c);
            }
        }
        Encoding::Base64 => {
            let mut out = Vec::with_capacity(CHUNK / 4 * 3 + 3);
            let (mut acc, mut bits) = (0u32, 0u32);
            'outer: for c in body.chunks(CHUNK) {
                out.clear();
                for &b in c {
                    let v = match b {
                        b'A'..=b'Z' => b - b'A',
                        b'a'..=b'z' => b - b'a' + 26,
                        b'0'..=b'9' => b - b'0' + 52,
                        b'+' | b'-' => 62,
                        b'/' | b'_' => 63,
                        b'=' => {
                            sink(&out);
                            break 'outer;
                        }
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
                sink(&out);
            }
        }
        Encoding::QuotedPrintable => {
            // Chunks end at line ends, so no escape or soft break is ever split.
            let mut at = 0;
            while at < body.len() {
                let mut end = (at + CHUNK).min(body.len());
                if end < body.len() {
                    end = body[end..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(body.len(), |n| end + n + 1);
                }
                sink(&super::charset::decode_qp_lenient(&body[at..end]));
                at = end;
            }
        }
    }
}

/// The bytes of a message a ticket was built from, shared with the ticket so that a large
/// attachment is decoded when and where its bytes are needed (into its spool file, or when a C
/// API caller asks) instead of being held decoded beside the message.
pub trait RawSource: Send + Sync {
    /// The raw message.
    fn raw(&self) -> &[u8];
}

impl RawSource for Vec<u8> {
    fn raw(&self) -> &[u8] {
        self
    }
}

/// An attachment's bytes still encoded in the message they came in: see [`RawSource`].
#[derive(Clone)]
pub struct PendingBytes {
    raw: Arc<dyn RawSource>,
    range: Range<usize>,
    encoding: Encoding,
}

impl PendingBytes {
    /// Decodes the bytes in chunks of about 192 KiB, handing each to `sink`.
    pub fn decode(&self, sink: impl FnMut(&[u8])) {
        decode_chunks(&self.raw.raw()[self.range.clone()], self.encoding, sink)
    }
}

impl std::fmt::Debug for PendingBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PendingBytes({:?}, {:?})", self.range, self.encoding)
    }
}

impl PartialEq for PendingBytes {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.raw, &other.raw)
            && self.range == other.range
            && self.encoding == other.encoding
    }
}

impl Eq for PendingBytes {}

/// Size and hex SHA-256 of the decoded part, and its bytes when `keep` is the largest size to
/// keep and the part is not larger (bytes beyond it are not held: then no bytes are returned).
pub(super) fn decode_part(raw: &[u8], part: &Elided, keep: Option<u64>) -> (u64, String, Vec<u8>) {
    let mut h = Sha256::new();
    let mut size = 0u64;
    let mut data = Vec::new();
    let mut keeping = keep.is_some();
    decode_chunks(&raw[part.range.clone()], part.encoding, |c| {
        h.update(c);
        size += c.len() as u64;
        if keeping {
            if keep.is_some_and(|max| size > max) {
                keeping = false;
                data = Vec::new();
            } else {
                data.extend_from_slice(c);
            }
        }
    });
    (size, super::build::hex(&h.finalize()), data)
}

/// Puts the elided parts' size, SHA-256 and (when the ticket carries bytes and the part is
/// within `max_attachment_bytes`) bytes into the attachments whose bytes are their markers.
/// `None` when a marker is not exactly one attachment: then the caller parses the whole message.
/// With `shared` (the same bytes as `raw`), an attachment that is to carry bytes gets them as
/// [`PendingBytes`], decoded later, rather than decoded now.
pub(super) fn restore(
    mut attachments: Vec<Attachment>,
    skeleton: &Skeleton,
    raw: &[u8],
    shared: Option<&Arc<dyn RawSource>>,
    opts: &TicketOptions,
    warnings: &mut Vec<String>,
) -> Option<Vec<Attachment>> {
    let mut seen = vec![false; skeleton.parts.len()];
    for a in &mut attachments {
        let Some(k) = skeleton.parts.iter().position(|p| p.marker == a.data) else {
            continue;
        };
        if std::mem::replace(&mut seen[k], true) {
            return None;
        }
        let part = &skeleton.parts[k];
        let keep = (opts.attachment_bytes && shared.is_none()).then_some(opts.max_attachment_bytes);
        let (size, sha256, data) = decode_part(raw, part, keep);
        a.size = size;
        a.sha256 = sha256;
        a.data = data;
        a.omitted = None;
        if let Some(shared) = shared.filter(|_| opts.attachment_bytes) {
            if size > 0 && size <= opts.max_attachment_bytes {
                a.pending = Some(PendingBytes {
                    raw: Arc::clone(shared),
                    range: part.range.clone(),
                    encoding: part.encoding,
                });
            }
        }
        if size > opts.max_attachment_bytes {
            a.data = Vec::new();
            a.omitted = Some(Omitted::TooLarge);
            warnings.push(format!(
                "attachment \"{}\" is {size} bytes, over the limit of {} bytes; listed without its data",
                a.filename.as_deref().unwrap_or("(unnamed)"),
                opts.max_attachment_bytes
            ));
        }
    }
    seen.iter().all(|s| *s).then_some(attachments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big_mail(cte: &str, body: &str) -> Vec<u8> {
        format!(
            "From: a@b.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"xx\"\r\n\r\npreamble\r\n--xx\r\n\
             Content-Type: text/plain\r\n\r\nhello\r\n--xx\r\n\
             Content-Type: application/pdf; name=\"a.pdf\"\r\n\
             Content-Transfer-Encoding: {cte}\r\n\r\n{body}\r\n--xx--\r\nepilogue\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn small_messages_are_left_alone() {
        assert!(skeleton(&big_mail("base64", "QUJD")).is_none());
    }

    #[test]
    fn a_large_base64_part_becomes_a_marker_and_decodes_in_chunks_to_the_same_bytes() {
        let data: Vec<u8> = (0..1_500_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let b64 = base64_encode(&data);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let raw = big_mail("base64", &lines.join("\r\n"));
        let s = skeleton(&raw).expect("elided");
        assert_eq!(s.parts.len(), 1);
        assert!(s.raw.len() < 1000, "{}", s.raw.len());
        let (size, sha, bytes) = decode_part(&raw, &s.parts[0], Some(u64::MAX));
        assert_eq!(size, data.len() as u64);
        assert_eq!(bytes, data);
        assert_eq!(sha, super::super::build::hex(&Sha256::digest(&data)));
        // The skeleton still parses into the same structure, the marker as the part's bytes.
        let msg = mail_parser::MessageParser::default().parse(&s.raw).unwrap();
        let att = msg.attachment(0).unwrap();
        assert_eq!(att.contents(), &s.parts[0].marker[..]);
    }

    #[test]
    fn the_ticket_from_the_skeleton_is_the_ticket_from_the_whole_message() {
        let data: Vec<u8> = (0..1_200_000u32).map(|i| (i * 13 % 253) as u8).collect();
        let b64 = base64_encode(&data);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let raw = big_mail("base64", &lines.join("\r\n"));
        assert!(skeleton(&raw).is_some());
        let mut opts = TicketOptions::default();
        for (max, bytes) in [(u64::MAX, true), (u64::MAX, false), (1000, true)] {
            opts.max_attachment_bytes = max;
            opts.attachment_bytes = bytes;
            let fast = crate::ticket::build(&raw, &opts).unwrap();
            let full = super::super::build::build_from(&raw, &raw, None, &opts)
                .unwrap()
                .unwrap();
            assert_eq!(fast.to_json(), full.to_json(), "max {max}, bytes {bytes}");
            let shared: Arc<dyn RawSource> = Arc::new(raw.clone());
            let lazy = crate::ticket::build_shared(shared, &opts).unwrap();
            assert_eq!(lazy.to_json(), full.to_json(), "max {max}, bytes {bytes}");
            assert!(lazy.attachments[0].data.is_empty());
            assert_eq!(lazy.attachments[0].has_bytes(), bytes && max == u64::MAX);
            if lazy.attachments[0].has_bytes() {
                let mut out = Vec::new();
                lazy.attachments[0].write_bytes(&mut out).unwrap();
                assert_eq!(out, data);
                assert_eq!(&*lazy.attachments[0].bytes(), &data[..]);
            }
            assert_eq!(fast.attachments.len(), 1);
            assert_eq!(fast.attachments[0].size, data.len() as u64);
            if bytes && max == u64::MAX {
                assert_eq!(fast.attachments[0].data, data);
            } else {
                assert!(fast.attachments[0].data.is_empty());
            }
        }
    }

    #[test]
    fn quoted_printable_and_identity_parts_decode_like_the_parser() {
        let line = "abc=3Ddef gh=\r\nij\r\n";
        let body = line.repeat(60_000);
        let raw = big_mail("quoted-printable", body.trim_end());
        let s = skeleton(&raw).expect("elided");
        let (size, _, bytes) = decode_part(&raw, &s.parts[0], Some(u64::MAX));
        let whole = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(bytes, whole.attachment(0).unwrap().contents());
        assert_eq!(size as usize, bytes.len());

        let body = "x".repeat(200_000);
        let raw = big_mail("binary", &body);
        let raw = [raw, vec![b' '; MIN_MESSAGE]].concat();
        let s = skeleton(&raw).expect("elided");
        let (_, _, bytes) = decode_part(&raw, &s.parts[0], Some(u64::MAX));
        assert_eq!(bytes, body.as_bytes());
    }

    #[test]
    fn text_parts_nested_mail_and_winmail_dat_are_never_elided() {
        let big = "a".repeat(MIN_MESSAGE);
        for (ct, cte) in [
            ("text/plain", "8bit"),
            ("message/rfc822", "8bit"),
            ("application/ms-tnef; name=\"winmail.dat\"", "8bit"),
            ("application/octet-stream; name=\"WINMAIL.DAT\"", "8bit"),
            ("application/pdf", "x-uuencode"),
        ] {
            let raw = format!(
                "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
                 Content-Type: {ct}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{big}\r\n--b--\r\n"
            );
            assert!(skeleton(raw.as_bytes()).is_none(), "{ct}");
        }
    }

    #[test]
    fn boundaries_that_only_start_alike_do_not_split() {
        let body = "Zm9v\r\n".repeat(MIN_MESSAGE / 6 + 1);
        let raw = format!(
            "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
             Content-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\n\
             {body}--bb not a delimiter\r\n{body}\r\n--b--\r\n"
        );
        let s = skeleton(raw.as_bytes()).expect("elided");
        let part = &raw.as_bytes()[s.parts[0].range.clone()];
        assert!(
            part.trim_ascii_end().ends_with(b"Zm9v"),
            "the part runs to the real delimiter"
        );
        assert!(part.windows(4).any(|w| w == b"--bb"));
    }
}
