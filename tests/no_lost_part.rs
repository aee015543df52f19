//! No content lost (issue 11, item 3): every leaf MIME part of every mail we have — the golden
//! fixtures, the demo mails, the public evaluation corpus, the fuzz inputs and seeds — must end
//! up in the ticket. A leaf part is **received** when one of these holds:
//!
//! 1. **attachment**: the ticket has an attachment whose SHA-256 is that of the part's decoded
//!    bytes (the transfer encoding undone; for a text part also its text as UTF-8; for an
//!    attached message its raw bytes);
//! 2. **body**: the part is a text part the ticket shows as its text — its text, all whitespace
//!    removed, is contained in `body_full` (text/plain) or `body_html` (text/html), likewise
//!    without whitespace (line ends, format=flowed and trimming differ, the characters may
//!    not); when the part's text had undecodable bytes (U+FFFD), only its ASCII characters are
//!    compared, since the ticket decodes such bytes by the charset policy;
//! 3. **alternative**: the part is a text part inside a `multipart/alternative` one of whose
//!    other branches holds a part received as body;
//! 4. **unpacked**: a winmail.dat (application/ms-tnef) whose files are all attachments (by
//!    hash) and whose text, if any (a plain body, or compressed RTF), is the body (or an
//!    alternative of a text body of the message); a text part
//!    with uuencoded files (`begin 644 name` … `end`) whose files are attachments (by hash)
//!    and whose remaining text is the body.
//!
//! Parts with nothing in them (no bytes, or only whitespace text) cannot lose anything and are
//! not checked. Parts of attached messages travel inside the attached `.eml` (rule 1 on the
//! message/rfc822 part) and are not walked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use psa_mail_agent::ticket::{build, tnef, Ticket, TicketOptions};
use sha2::{Digest, Sha256};

fn sha(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn skeleton(s: &str, ascii_only: bool) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{feff}' && *c != '\u{fffd}')
        .filter(|c| !ascii_only || c.is_ascii())
        .collect()
}

/// Base64 without the library's code: skips what is outside the alphabet, stops at `=`.
fn unbase64(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
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

fn unqp(input: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::new();
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'=' {
            if input.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if input.get(i + 1) == Some(&b'\r') && input.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            if let (Some(h), Some(l)) = (
                input.get(i + 1).and_then(|&c| hex(c)),
                input.get(i + 2).and_then(|&c| hex(c)),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// The ways the part's bytes may appear as an attachment.
fn candidates(raw: &[u8], part: &MessagePart<'_>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let body = raw
        .get(part.offset_body as usize..(part.offset_end as usize).max(part.offset_body as usize))
        .unwrap_or(&[]);
    match &part.body {
        PartType::Binary(b) | PartType::InlineBinary(b) => out.push(b.to_vec()),
        PartType::Text(t) | PartType::Html(t) => out.push(t.as_bytes().to_vec()),
        PartType::Message(m) => out.push(m.raw_message().to_vec()),
        PartType::Multipart(_) => {}
    }
    out.push(match part.encoding {
        Encoding::Base64 => unbase64(body),
        Encoding::QuotedPrintable => unqp(body),
        Encoding::None => body.to_vec(),
    });
    out.push(body.to_vec());
    let uu = part.headers.iter().any(|h| {
        h.name
            .as_str()
            .eq_ignore_ascii_case("Content-Transfer-Encoding")
            && h.value
                .as_text()
                .is_some_and(|v| v.to_ascii_lowercase().contains("uu"))
    });
    if uu {
        // x-uuencode: only the decoded file counts, not the encoded text.
        let (files, _) = uuencoded(&String::from_utf8_lossy(body));
        return files.into_iter().map(|(_, d)| d).take(1).collect();
    }
    out
}

/// uuencoded files in a text: (name, bytes) and the text without them.
fn uuencoded(text: &str) -> (Vec<(String, Vec<u8>)>, String) {
    let mut files = Vec::new();
    let mut rest = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let mut words = line.split_whitespace();
        let is_begin = words.next() == Some("begin")
            && words
                .next()
                .is_some_and(|m| m.len() == 3 && m.bytes().all(|b| (b'0'..=b'7').contains(&b)))
            && words.next().is_some();
        if !is_begin {
            rest.push_str(line);
            rest.push('\n');
            continue;
        }
        let name = line.splitn(3, ' ').nth(2).unwrap_or("").trim().to_string();
        let mut data = Vec::new();
        let mut ended = false;
        for l in lines.by_ref() {
            let l = l.trim_end_matches('\r');
            if l.trim() == "end" {
                ended = true;
                break;
            }
            let b = l.as_bytes();
            let Some(&first) = b.first() else { continue };
            let n = ((first.wrapping_sub(b' ')) & 0x3f) as usize;
            let dec = |c: u8| (c.wrapping_sub(b' ')) & 0x3f;
            let mut chunk = Vec::new();
            for q in b[1..].chunks(4) {
                let q: Vec<u8> = (0..4).map(|i| dec(*q.get(i).unwrap_or(&b'`'))).collect();
                chunk.push(q[0] << 2 | q[1] >> 4);
                chunk.push(q[1] << 4 | q[2] >> 2);
                chunk.push(q[2] << 6 | q[3]);
            }
            chunk.truncate(n);
            data.extend(chunk);
        }
        if ended {
            files.push((name, data));
        }
    }
    (files, rest)
}

/// Parent of every part (the multipart that lists it).
fn parents(msg: &Message<'_>) -> HashMap<u32, u32> {
    let mut map = HashMap::new();
    for (id, p) in msg.parts.iter().enumerate() {
        if let PartType::Multipart(children) = &p.body {
            for &c in children {
                if c as usize != id {
                    map.entry(c).or_insert(id as u32);
                }
            }
        }
    }
    map
}

fn is_ct(part: &MessagePart<'_>, t: &str, s: &str) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case(t)
            && ct.subtype().is_some_and(|x| x.eq_ignore_ascii_case(s))
    })
}

/// The ancestors of `id`, nearest first.
fn ancestors(parents: &HashMap<u32, u32>, mut id: u32) -> Vec<u32> {
    let mut out = Vec::new();
    while let Some(&p) = parents.get(&id) {
        if out.contains(&p) || out.len() > 64 {
            break;
        }
        out.push(p);
        id = p;
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum How {
    Attachment,
    Body,
    Unpacked,
    Empty,
}

/// The leaf parts of `raw` the ticket does not receive, described.
fn lost_parts(raw: &[u8], ticket: &Ticket) -> Vec<String> {
    // Blank lines (empty or only blanks) before the header are no part of the message (some
    // tools write one; the ticket builder skips them too).
    let mut raw = raw;
    while let Some(nl) = raw.iter().position(|&b| b == b'\n') {
        let line = raw[..nl].strip_suffix(b"\r").unwrap_or(&raw[..nl]);
        if !line.iter().all(|b| matches!(b, b' ' | b'\t')) {
            break;
        }
        raw = &raw[nl + 1..];
    }
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Vec::new();
    };
    let hashes: Vec<&str> = ticket
        .attachments
        .iter()
        .map(|a| a.sha256.as_str())
        .collect();
    let attached = |data: &[u8]| hashes.contains(&sha(data).as_str());
    let body_full = skeleton(&ticket.body_full, false);
    let body_full_ascii = skeleton(&ticket.body_full, true);
    let html = ticket.body_html.as_deref().unwrap_or("");
    let body_html = skeleton(html, false);
    let body_html_ascii = skeleton(html, true);
    let in_body = |text: &str, is_html: bool| {
        let lossy = text.contains('\u{fffd}');
        let s = skeleton(text, lossy);
        if s.is_empty() {
            return true;
        }
        match (is_html, lossy) {
            (false, false) => body_full.contains(&s),
            (false, true) => body_full_ascii.contains(&s),
            (true, false) => body_html.contains(&s),
            (true, true) => body_html_ascii.contains(&s),
        }
    };
    let parents = parents(&msg);
    let mut how: HashMap<u32, How> = HashMap::new();
    let mut text_leaves = Vec::new();
    for (id, part) in msg.parts.iter().enumerate() {
        let id = id as u32;
        if matches!(part.body, PartType::Multipart(_)) {
            continue;
        }
        let cands = candidates(raw, part);
        if cands.iter().any(|c| attached(c)) {
            how.insert(id, How::Attachment);
            continue;
        }
        if part.body.len() == 0 {
            how.insert(id, How::Empty);
            continue;
        }
        let tnef_like = is_ct(part, "application", "ms-tnef")
            || is_ct(part, "application", "vnd.ms-tnef")
            || part
                .attachment_name()
                .is_some_and(|n| n.eq_ignore_ascii_case("winmail.dat"));
        if tnef_like {
            if let Some(u) = cands.iter().find_map(|c| tnef::unpack(c).ok()) {
                let files_ok = u.files.iter().all(|f| attached(&f.data));
                let other_text = !msg.text_body.is_empty() || !msg.html_body.is_empty();
                // Compressed RTF (its "LZFu"/"MELA" magic) is text too, even when the reader
                // finds no body in it.
                let has_rtf = cands
                    .iter()
                    .any(|c| c.windows(4).any(|w| w == b"LZFu" || w == b"MELA"));
                let body_ok = match u.body.as_deref() {
                    Some(b) => in_body(b, false) || other_text,
                    None => !has_rtf || other_text,
                };
                if files_ok && body_ok {
                    how.insert(id, How::Unpacked);
                    continue;
                }
            }
        }
        match &part.body {
            PartType::Text(t) | PartType::Html(t) => {
                if t.trim().is_empty() {
                    how.insert(id, How::Empty);
                    continue;
                }
                let is_html = matches!(part.body, PartType::Html(_));
                // uuencoded files must come out as attachments, not as text in the body.
                let (files, rest) = uuencoded(t);
                if !files.is_empty() {
                    if files.iter().all(|(_, d)| attached(d)) && in_body(&rest, false) {
                        how.insert(id, How::Unpacked);
                    }
                    continue;
                }
                if in_body(t, is_html) {
                    how.insert(id, How::Body);
                    continue;
                }
                text_leaves.push(id);
            }
            _ => {}
        }
    }
    // Rule 3: text alternatives of a part shown as body.
    for &id in &text_leaves {
        let anc = ancestors(&parents, id);
        let alternative = anc.iter().position(|&a| {
            msg.parts
                .get(a as usize)
                .is_some_and(|p| is_ct(p, "multipart", "alternative"))
        });
        let Some(pos) = alternative else { continue };
        let alt = anc[pos];
        // The branch of the alternative this part is in.
        let branch = if pos == 0 { id } else { anc[pos - 1] };
        let other_shown = how.iter().any(|(&other, &h)| {
            if h != How::Body {
                return false;
            }
            let oanc = ancestors(&parents, other);
            let Some(opos) = oanc.iter().position(|&a| a == alt) else {
                return false;
            };
            let obranch = if opos == 0 { other } else { oanc[opos - 1] };
            obranch != branch
        });
        if other_shown {
            how.insert(id, How::Body);
        }
    }
    let mut lost = Vec::new();
    for (id, part) in msg.parts.iter().enumerate() {
        if matches!(part.body, PartType::Multipart(_)) || how.contains_key(&(id as u32)) {
            continue;
        }
        let ct = part
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
            .unwrap_or_else(|| "(no Content-Type)".into());
        lost.push(format!(
            "part {id} ({ct}, {} bytes, name {:?})",
            part.body.len(),
            part.attachment_name()
        ));
    }
    lost
}

fn files_in(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_in(&p, exts, out);
        } else if exts.is_empty() || p.extension().is_some_and(|x| exts.iter().any(|e| x == *e)) {
            out.push(p);
        }
    }
}

fn all_mails() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    files_in(&root.join("tests/fixtures/mail"), &["eml"], &mut out);
    files_in(&root.join("examples/mail"), &["eml"], &mut out);
    files_in(&root.join("tests/fixtures/public"), &["eml"], &mut out);
    files_in(&root.join("tests/fixtures/fuzz"), &[], &mut out);
    files_in(&root.join("fuzz/seeds/parse_mail"), &[], &mut out);
    out.sort();
    out
}

fn options() -> TicketOptions {
    TicketOptions {
        add_attachments: true,
        add_ccs: true,
        max_attachment_bytes: u64::MAX,
        ..TicketOptions::default()
    }
}

#[test]
fn every_leaf_part_of_every_fixture_is_received() {
    let opts = options();
    let mails = all_mails();
    assert!(mails.len() >= 500, "only {} mails found", mails.len());
    let mut failures = Vec::new();
    let mut checked = 0usize;
    for path in &mails {
        let raw = std::fs::read(path).expect("read mail");
        // Both line-end forms: IMAP delivers CRLF, fixtures are stored with LF.
        let mut crlf = Vec::with_capacity(raw.len() + raw.len() / 16);
        for (i, &b) in raw.iter().enumerate() {
            if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
                crlf.push(b'\r');
            }
            crlf.push(b);
        }
        for (form, bytes) in [("as stored", &raw), ("CRLF", &crlf)] {
            let Ok(ticket) = build(bytes, &opts) else {
                continue; // not a mail at all (fuzz inputs): nothing was parsed into parts
            };
            checked += 1;
            let lost = lost_parts(bytes, &ticket);
            if !lost.is_empty() {
                failures.push(format!("{} ({form}): {}", path.display(), lost.join("; ")));
            }
        }
    }
    assert!(checked >= 1000, "only {checked} tickets checked");
    assert!(
        failures.is_empty(),
        "{} mails lose parts:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The checker itself must be able to fail: a ticket without its attachments, or without its
/// text, loses parts.
#[test]
fn the_check_sees_a_lost_part() {
    let raw = b"From: a@example.com\nSubject: s\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nHello there\n--b\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--b--\n";
    let opts = options();
    let ticket = build(raw, &opts).expect("ticket");
    assert_eq!(lost_parts(raw, &ticket), Vec::<String>::new());
    let mut no_attachments = ticket.clone();
    no_attachments.attachments.clear();
    assert_eq!(lost_parts(raw, &no_attachments).len(), 1);
    let mut no_text = ticket.clone();
    no_text.body_full = "Hello".into();
    assert_eq!(lost_parts(raw, &no_text).len(), 1);
    // A winmail.dat whose only text is compressed RTF: without that text the part is lost.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rtf = std::fs::read(root.join("tests/fixtures/mail/tnef-rtf-only.eml")).expect("fixture");
    let ticket = build(&rtf, &opts).expect("ticket");
    assert_eq!(lost_parts(&rtf, &ticket), Vec::<String>::new());
    let mut no_rtf_text = ticket.clone();
    no_rtf_text.body_full.clear();
    assert_eq!(lost_parts(&rtf, &no_rtf_text).len(), 1);
    let (files, rest) = uuencoded("hi\nbegin 644 a.txt\n#86)C\n`\nend\nbye\n");
    assert_eq!(files, vec![("a.txt".to_string(), b"abc".to_vec())]);
    assert_eq!(rest, "hi\nbye\n");
}
