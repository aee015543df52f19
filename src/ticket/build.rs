//! Assembles a [`Ticket`] from mail-parser's view of one message.

use std::collections::HashSet;

use mail_parser::{
    Address as MpAddress, DateTime, HeaderName, HeaderValue, Message, MessageParser, MessagePart,
    MimeHeaders, PartType,
};
use sha2::{Digest, Sha256};

use super::attach::{collect_attachments, Collected};
use super::autogen::{self, Signals};
use super::charset::{decode_cp1252, part_text};
use super::html2text::{html_to_text, Html2TextOptions};
use super::model::{Address, Priority, Thread, Ticket};
use super::quote::clean_body;
use super::thread::{strip_angle, ticket_number_in_subject};
use super::TicketOptions;
use crate::error::{Error, ErrorKind, Result};

/// Header sections larger than this are suspicious (spam, loops, attacks): warned about.
const MAX_HEADER_BYTES: usize = 256 * 1024;
/// More header fields than this are warned about.
const MAX_HEADER_FIELDS: usize = 1000;
/// MIME nesting deeper than this is warned about (mail-parser itself parses iteratively).
const MAX_MIME_DEPTH: usize = 32;
/// Addresses kept per list (To, Cc, Reply-To); the rest is dropped with a warning.
const MAX_ADDRESSES: usize = 500;
/// References kept (the newest).
const MAX_REFERENCES: usize = 100;
/// Subjects longer than this (in characters) are cut.
const MAX_SUBJECT_CHARS: usize = 2000;

pub(super) fn build_ticket(raw: &[u8], opts: &TicketOptions) -> Result<Ticket> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::new(ErrorKind::Mail, "the message is empty"));
    }
    let mut warnings = Vec::new();
    check_header_section(raw, &mut warnings);
    let headers_only = raw.len() as u64 > opts.max_message_bytes;
    if headers_only {
        warnings.push(format!(
            "message is {} bytes, over the limit of {} bytes; only its headers were read",
            raw.len(),
            opts.max_message_bytes
        ));
    }
    let parser = MessageParser::default();
    let parsed = if headers_only {
        parser.parse_headers(raw)
    } else {
        parser.parse(raw)
    };
    let msg = parsed.ok_or_else(|| {
        Error::new(
            ErrorKind::Mail,
            "not an email: no header fields found at the start of the message",
        )
    })?;

    let message_id = msg
        .message_id()
        .map(|id| sanitize_id(strip_angle(id)))
        .filter(|id| !id.is_empty());
    if message_id.is_none() {
        warnings.push("no Message-ID header; dedupe_key is a content hash".to_string());
    }
    let dedupe_key = match &message_id {
        Some(id) => id.clone(),
        None => format!("sha256:{}", content_hash(raw)),
    };

    let subject = subject_of(&msg, raw, &mut warnings);
    let from = from_of(&msg, &mut warnings);
    let reply_to = address_list(&msg, HeaderName::ReplyTo, "Reply-To", &mut warnings);
    let to = address_list(&msg, HeaderName::To, "To", &mut warnings);
    let cc = if opts.add_ccs {
        address_list(&msg, HeaderName::Cc, "Cc", &mut warnings)
    } else {
        Vec::new()
    };
    let date = date_of(&msg, &mut warnings);
    let priority = priority_of(&msg);

    check_structure(&msg, &mut warnings);

    // Bodies: the top-level message's text and HTML parts.
    let body_ids: HashSet<u32> = msg
        .text_body
        .iter()
        .chain(msg.html_body.iter())
        .copied()
        .collect();
    let text_ids: Vec<u32> = msg.text_body.clone();
    let mut texts = Vec::new();
    for (n, &id) in text_ids.iter().enumerate() {
        if let Some(part) = msg.parts.get(id as usize) {
            if let PartType::Text(t) = &part.body {
                let what = part_label("text/plain", n, text_ids.len());
                let mut text = normalize_newlines(&part_text(raw, part, t, &what, &mut warnings));
                if let Some(ct) = part.content_type() {
                    if ct
                        .attribute("format")
                        .is_some_and(|f| f.eq_ignore_ascii_case("flowed"))
                    {
                        let delsp = ct
                            .attribute("delsp")
                            .is_some_and(|d| d.eq_ignore_ascii_case("yes"));
                        text = unflow(&text, delsp);
                    }
                }
                texts.push(text);
            }
        }
    }
    let html_ids: Vec<u32> = msg.html_body.clone();
    let mut htmls = Vec::new();
    for (n, &id) in html_ids.iter().enumerate() {
        if let Some(part) = msg.parts.get(id as usize) {
            if let PartType::Html(t) = &part.body {
                let what = part_label("text/html", n, html_ids.len());
                htmls.push(normalize_newlines(&part_text(
                    raw,
                    part,
                    t,
                    &what,
                    &mut warnings,
                )));
            }
        }
    }

    let Collected {
        attachments,
        tnef_body,
    } = collect_attachments(&msg, raw, &body_ids, opts, &mut warnings);

    let body_html = if htmls.is_empty() {
        None
    } else {
        Some(htmls.join("\n"))
    };
    let texts: Vec<String> = texts
        .into_iter()
        .map(|t| trim_blank_lines(&t))
        .filter(|t| !t.is_empty())
        .collect();
    let (body_full, body) = if !texts.is_empty() {
        let full = texts.join("\n\n");
        let body = clean_body(&full);
        (full, body)
    } else if let Some(html) = &body_html {
        let full = html_to_text(html, Html2TextOptions::default());
        let stripped = html_to_text(
            html,
            Html2TextOptions {
                strip_quotes: true,
                image_alt: false,
            },
        );
        let body = clean_body(&stripped);
        let body = if body.trim().is_empty() {
            clean_body(&full)
        } else {
            body
        };
        (full, body)
    } else if let Some(tnef) = tnef_body {
        let full = trim_blank_lines(&normalize_newlines(&tnef));
        let body = clean_body(&full);
        (full, body)
    } else {
        (String::new(), String::new())
    };

    // Threading.
    let in_reply_to = first_id(&msg, HeaderName::InReplyTo);
    let mut references = all_ids(&msg, HeaderName::References);
    if references.len() > MAX_REFERENCES {
        warnings.push(format!(
            "References lists {} ids; kept the newest {MAX_REFERENCES}",
            references.len()
        ));
        references.drain(..references.len() - MAX_REFERENCES);
    }
    let ticket_number = ticket_number_in_subject(&subject, &opts.ticket_patterns)
        .or_else(|| {
            let index = opts.thread_index.as_ref()?;
            in_reply_to
                .iter()
                .chain(references.iter().rev())
                .find_map(|id| index.lookup(id))
        })
        .or_else(|| bounced_ticket_number(&msg, opts));

    // Machine-generated?
    let headers: Vec<(&str, &str)> = msg.headers_raw().collect();
    let from_lower = from.address.to_ascii_lowercase();
    let signals = Signals {
        headers,
        subject: &subject,
        from_address: &from.address,
        is_delivery_report: is_delivery_report(&msg),
        own_message_id: match (&message_id, &opts.thread_index) {
            (Some(id), Some(index)) => index.contains(id),
            _ => false,
        },
        from_own_address: !from_lower.is_empty()
            && opts
                .own_addresses
                .iter()
                .any(|a| a.trim().eq_ignore_ascii_case(&from_lower)),
        has_loop_header: opts.loop_header.as_deref().is_some_and(|name| {
            !name.is_empty() && msg.headers_raw().any(|(n, _)| n.eq_ignore_ascii_case(name))
        }),
    };
    let auto_generated = autogen::detect(&signals);

    Ok(Ticket {
        delivery_id: None,
        mailbox: opts.mailbox.clone(),
        message_id,
        dedupe_key,
        subject,
        from,
        reply_to,
        to,
        cc,
        date,
        priority,
        body,
        body_full,
        body_html,
        attachments: if opts.add_attachments {
            attachments
        } else {
            Vec::new()
        },
        thread: Thread {
            ticket_number,
            in_reply_to,
            references,
        },
        auto_generated,
        warnings,
    })
}

/// Hex SHA-256 of the message with CRLF line ends read as LF, so the copy a user saved to disk
/// and the copy fetched over IMAP get the same key.
fn content_hash(raw: &[u8]) -> String {
    let mut h = Sha256::new();
    let mut start = 0;
    for (i, w) in raw.windows(2).enumerate() {
        if w == b"\r\n" {
            h.update(&raw[start..i]);
            start = i + 1;
        }
    }
    h.update(&raw[start..]);
    hex(&h.finalize())
}

pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// LF line ends, and no byte-order marks (clients leave them inside quoted text).
pub(super) fn normalize_newlines(s: &str) -> String {
    let s = if s.contains('\r') {
        s.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        s.to_string()
    };
    if s.contains('\u{feff}') {
        s.replace('\u{feff}', "")
    } else {
        s
    }
}

/// Without blank lines at the start and whitespace at the end.
fn trim_blank_lines(s: &str) -> String {
    let start = s
        .char_indices()
        .find(|(_, c)| !c.is_whitespace())
        .map_or(s.len(), |(i, _)| i);
    // Back to the start of that line, keeping its indentation.
    let start = s[..start].rfind('\n').map_or(0, |nl| nl + 1);
    s[start..].trim_end().to_string()
}

fn part_label(kind: &str, n: usize, of: usize) -> String {
    if of > 1 {
        format!("{kind} body {}", n + 1)
    } else {
        format!("{kind} body")
    }
}

/// Undoes format=flowed (RFC 3676): lines ending in a space continue on the next line of the
/// same quote depth; space-stuffing is removed; the "-- " signature line stays.
pub(super) fn unflow(text: &str, delsp: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending: Option<usize> = None; // quote depth of an unfinished flowed line
    for line in text.split('\n') {
        let depth = line.bytes().take_while(|&b| b == b'>').count();
        let mut content = &line[depth..];
        if content.starts_with(' ') {
            content = &content[1..]; // stuffing, or the space after the quote marks
        }
        match pending {
            Some(d) if d == depth => {}
            Some(_) => {
                out.push('\n');
                push_quote(&mut out, depth);
            }
            None => push_quote(&mut out, depth),
        }
        let flowed = content.ends_with(' ') && content != "-- ";
        if flowed {
            let keep = if delsp {
                &content[..content.len() - 1]
            } else {
                content
            };
            out.push_str(keep);
            pending = Some(depth);
        } else {
            out.push_str(content);
            out.push('\n');
            pending = None;
        }
    }
    if pending.is_some() {
        out.push('\n');
    }
    out.pop();
    out
}

fn push_quote(out: &mut String, depth: usize) {
    if depth > 0 {
        for _ in 0..depth {
            out.push('>');
        }
        out.push(' ');
    }
}

/// Message-IDs end up in file names and keys: no whitespace or control characters.
fn sanitize_id(id: &str) -> String {
    id.chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .take(998)
        .collect()
}

fn check_header_section(raw: &[u8], warnings: &mut Vec<String>) {
    let end = find_header_end(raw).unwrap_or(raw.len());
    if end > MAX_HEADER_BYTES {
        warnings.push(format!(
            "header section is {end} bytes (more than {MAX_HEADER_BYTES}); the message may be malformed"
        ));
    }
    let mut fields = 0usize;
    let mut line_start = true;
    for &b in &raw[..end] {
        if line_start && !matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            fields += 1;
        }
        line_start = b == b'\n';
    }
    if fields > MAX_HEADER_FIELDS {
        warnings.push(format!(
            "{fields} header fields (more than {MAX_HEADER_FIELDS}); the message may be malformed"
        ));
    }
}

fn find_header_end(raw: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\n' {
            match raw.get(i + 1) {
                Some(b'\n') => return Some(i + 1),
                Some(b'\r') if raw.get(i + 2) == Some(&b'\n') => return Some(i + 1),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

fn collapse_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split(|c: char| c.is_whitespace() && c != '\u{a0}') {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().filter(|c| !c.is_control()));
    }
    out
}

fn subject_of(msg: &Message<'_>, raw: &[u8], warnings: &mut Vec<String>) -> String {
    let mut subject = collapse_ws(msg.subject().unwrap_or(""));
    if subject.contains('\u{fffd}') {
        // Raw 8-bit subject without encoded words: mail-parser read it as UTF-8 and failed.
        if let Some(bytes) = raw_header_bytes(msg, raw, HeaderName::Subject) {
            if std::str::from_utf8(bytes).is_err() && !bytes.windows(2).any(|w| w == b"=?") {
                subject = collapse_ws(&decode_cp1252(bytes));
                warnings.push(
                    "Subject: raw 8-bit text without charset; decoded as windows-1252".to_string(),
                );
            }
        }
    }
    if msg.subject().is_none() {
        warnings.push("no Subject header".to_string());
    }
    if subject.chars().count() > MAX_SUBJECT_CHARS {
        subject = subject.chars().take(MAX_SUBJECT_CHARS).collect();
        warnings.push(format!(
            "Subject longer than {MAX_SUBJECT_CHARS} characters; cut"
        ));
    }
    subject
}

fn raw_header_bytes<'a>(
    msg: &Message<'_>,
    raw: &'a [u8],
    name: HeaderName<'_>,
) -> Option<&'a [u8]> {
    let h = msg
        .root_part()
        .headers
        .iter()
        .rev()
        .find(|h| h.name == name)?;
    raw.get(h.offset_start as usize..h.offset_end as usize)
}

fn convert_addr(name: Option<&str>, address: Option<&str>) -> Address {
    let name = name
        .map(collapse_ws)
        .map(|n| unquote(&n).to_string())
        .filter(|n| !n.is_empty());
    Address {
        name,
        address: address
            .map(|a| {
                a.trim()
                    .chars()
                    .filter(|c| !c.is_whitespace() && !c.is_control())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Outlook sometimes double-quotes names (`"'Jane Doe'"`): drop one matching pair.
fn unquote(name: &str) -> &str {
    for q in ['"', '\''] {
        if name.len() >= 2 && name.starts_with(q) && name.ends_with(q) {
            return name[1..name.len() - 1].trim();
        }
    }
    name
}

fn addresses_of(value: &MpAddress<'_>) -> Vec<Address> {
    value
        .iter()
        .map(|a| convert_addr(a.name(), a.address()))
        .collect()
}

fn from_of(msg: &Message<'_>, warnings: &mut Vec<String>) -> Address {
    let pick = |v: Option<&MpAddress<'_>>| {
        v.and_then(|a| {
            let list = addresses_of(a);
            list.iter()
                .find(|a| !a.address.is_empty())
                .cloned()
                .or_else(|| list.into_iter().next())
        })
    };
    if let Some(from) = pick(msg.from()) {
        if from.address.is_empty() {
            warnings.push("From header has no address".to_string());
        }
        return from;
    }
    if let Some(sender) = pick(msg.sender()) {
        warnings.push("no From header; used Sender".to_string());
        return sender;
    }
    warnings.push("no From header".to_string());
    Address {
        name: None,
        address: String::new(),
    }
}

fn address_list(
    msg: &Message<'_>,
    name: HeaderName<'static>,
    label: &str,
    warnings: &mut Vec<String>,
) -> Vec<Address> {
    let mut out = Vec::new();
    for value in msg.header_values(name) {
        if let HeaderValue::Address(a) = value {
            out.extend(
                addresses_of(a)
                    .into_iter()
                    .filter(|a| !a.address.is_empty()),
            );
        }
    }
    if out.len() > MAX_ADDRESSES {
        warnings.push(format!(
            "{label} lists {} addresses; kept the first {MAX_ADDRESSES}",
            out.len()
        ));
        out.truncate(MAX_ADDRESSES);
    }
    out
}

fn date_of(msg: &Message<'_>, warnings: &mut Vec<String>) -> Option<String> {
    let utc = |dt: &DateTime| DateTime::from_timestamp(dt.to_timestamp()).to_rfc3339();
    let problem = match msg.header(HeaderName::Date) {
        Some(HeaderValue::DateTime(dt)) if dt.is_valid() => return Some(utc(dt)),
        None => "no Date header",
        Some(_) => "Date header could not be parsed",
    };
    // The newest Received line says when the message reached our server: better than nothing.
    let received = msg
        .received()
        .and_then(|r| r.date())
        .filter(|d| d.is_valid());
    match received {
        Some(dt) => {
            warnings.push(format!("{problem}; used the time it was received"));
            Some(utc(&dt))
        }
        None => {
            warnings.push(problem.to_string());
            None
        }
    }
}

fn priority_of(msg: &Message<'_>) -> Priority {
    let raw = |name: &str| {
        msg.headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    if let Some(v) = raw("X-Priority") {
        match v.chars().find(|c| !c.is_whitespace()) {
            Some('1') | Some('2') => return Priority::High,
            Some('4') | Some('5') => return Priority::Low,
            Some('3') => return Priority::Normal,
            _ => {}
        }
        if v.contains("high") || v.contains("urgent") {
            return Priority::High;
        }
        if v.contains("low") {
            return Priority::Low;
        }
    }
    if let Some(v) = raw("Importance").or_else(|| raw("X-MSMail-Priority")) {
        if v.starts_with("high") {
            return Priority::High;
        }
        if v.starts_with("low") {
            return Priority::Low;
        }
        if v.starts_with("normal") {
            return Priority::Normal;
        }
    }
    if let Some(v) = raw("Priority") {
        if v.starts_with("urgent") {
            return Priority::High;
        }
        if v.starts_with("non-urgent") {
            return Priority::Low;
        }
    }
    Priority::Normal
}

fn ids_of(value: &HeaderValue<'_>) -> Vec<String> {
    let raw: Vec<&str> = match value {
        HeaderValue::Text(t) => vec![t.as_ref()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.as_ref()).collect(),
        _ => Vec::new(),
    };
    raw.into_iter()
        .flat_map(|s| s.split_whitespace())
        .map(|s| sanitize_id(strip_angle(s)))
        .filter(|s| !s.is_empty())
        .collect()
}

fn first_id(msg: &Message<'_>, name: HeaderName<'static>) -> Option<String> {
    msg.header(name).and_then(|v| ids_of(v).into_iter().next())
}

fn all_ids(msg: &Message<'_>, name: HeaderName<'static>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in msg.header_values(name) {
        for id in ids_of(v) {
            if !out.contains(&id) {
                out.push(id);
            }
            if out.len() > MAX_REFERENCES * 4 {
                return out;
            }
        }
    }
    out
}

fn is_report_part(part: &MessagePart<'_>) -> bool {
    part.content_type().is_some_and(|ct| {
        let sub = ct.subtype().unwrap_or("");
        (ct.ctype().eq_ignore_ascii_case("multipart")
            && sub.eq_ignore_ascii_case("report")
            && ct
                .attribute("report-type")
                .is_some_and(|r| r.eq_ignore_ascii_case("delivery-status")))
            || (ct.ctype().eq_ignore_ascii_case("message")
                && (sub.eq_ignore_ascii_case("delivery-status")
                    || sub.eq_ignore_ascii_case("global-delivery-status")))
    })
}

fn is_delivery_report(msg: &Message<'_>) -> bool {
    msg.parts.iter().any(is_report_part)
}

/// For a bounce: the ticket the returned message belonged to, from the returned headers'
/// subject or Message-ID. Lets the PSA file the bounce under the ticket whose mail failed.
fn bounced_ticket_number(msg: &Message<'_>, opts: &TicketOptions) -> Option<String> {
    if !is_delivery_report(msg) {
        return None;
    }
    msg.parts.iter().find_map(|part| {
        let returned = match &part.body {
            PartType::Message(nested) => nested.clone(),
            PartType::Text(t) if part.is_content_type("text", "rfc822-headers") => {
                MessageParser::default().parse_headers(t.as_bytes())?
            }
            _ => return None,
        };
        let subject = returned.subject().unwrap_or("");
        ticket_number_in_subject(subject, &opts.ticket_patterns).or_else(|| {
            let id = returned.message_id()?;
            opts.thread_index.as_ref()?.lookup(id)
        })
    })
}

/// "S/MIME" or "PGP" when the message body is encrypted.
fn encryption_of(msg: &Message<'_>) -> Option<&'static str> {
    msg.parts.iter().find_map(|p| {
        let ct = p.content_type()?;
        let sub = ct.subtype().unwrap_or("").to_ascii_lowercase();
        let typ = ct.ctype().to_ascii_lowercase();
        if typ == "application" && (sub == "pkcs7-mime" || sub == "x-pkcs7-mime") {
            let signed_only = ct
                .attribute("smime-type")
                .is_some_and(|t| t.eq_ignore_ascii_case("signed-data"));
            return (!signed_only).then_some("S/MIME");
        }
        if typ == "multipart" && sub == "encrypted" {
            return Some("PGP");
        }
        None
    })
}

/// Warns about MIME nesting beyond [`MAX_MIME_DEPTH`] and parts mail-parser could not decode.
fn check_structure(msg: &Message<'_>, warnings: &mut Vec<String>) {
    let mut max_depth = 0usize;
    let mut stack = vec![(0u32, 0usize)];
    let mut visited = 0usize;
    while let Some((id, depth)) = stack.pop() {
        visited += 1;
        if visited > msg.parts.len() + 1 {
            break; // a malformed part graph cannot loop us forever
        }
        max_depth = max_depth.max(depth);
        if let Some(PartType::Multipart(children)) = msg.parts.get(id as usize).map(|p| &p.body) {
            for &c in children {
                if c > id {
                    stack.push((c, depth + 1));
                }
            }
        }
    }
    if max_depth > MAX_MIME_DEPTH {
        warnings.push(format!(
            "MIME parts nested {max_depth} levels deep (more than {MAX_MIME_DEPTH})"
        ));
    }
    let broken = msg
        .parts
        .iter()
        .enumerate()
        .filter(|(_, p)| p.is_encoding_problem)
        .count();
    if let Some(kind) = encryption_of(msg) {
        warnings.push(format!(
            "the message is encrypted ({kind}); its text cannot be read without the recipient's key"
        ));
    }
    if broken > 0 {
        warnings.push(format!(
            "{broken} MIME part(s) malformed or truncated; decoded as far as possible"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unflows_format_flowed() {
        assert_eq!(
            unflow("Hello this is \nflowed.\nNew line", false),
            "Hello this is flowed.\nNew line"
        );
        assert_eq!(unflow("ab \ncd", true), "abcd");
        assert_eq!(
            unflow("> quoted \n> more\nreply", false),
            "> quoted more\nreply"
        );
        assert_eq!(unflow("text\n-- \nsig", false), "text\n-- \nsig");
        assert_eq!(unflow(" From stuffed", false), "From stuffed");
    }

    #[test]
    fn trims_blank_lines_keeping_indentation() {
        assert_eq!(
            trim_blank_lines("\n\n  indented\ntext \n\n"),
            "  indented\ntext"
        );
        assert_eq!(trim_blank_lines(" \n "), "");
    }

    #[test]
    fn content_hash_ignores_line_ends() {
        assert_eq!(content_hash(b"a\r\nb\r\n"), content_hash(b"a\nb\n"));
        assert_ne!(content_hash(b"a\nb"), content_hash(b"a\nc"));
    }
}
