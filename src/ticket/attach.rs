//! Attachments and inline parts: metadata, hash, bytes under the size limit; attached mails as
//! `.eml`; winmail.dat unpacked into its real files.

use std::collections::HashSet;

use mail_parser::parsers::MessageStream;
use mail_parser::{Encoding, HeaderName, HeaderValue, Message, MessagePart, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

use super::build::hex;
use super::charset::transfer_decoded;
use super::model::{Attachment, Omitted};
use super::tnef;
use super::uu::{self, UuFile};
use super::TicketOptions;

/// Attachments are listed up to this many; more is almost surely an attack or a broken mail.
const MAX_ATTACHMENTS: usize = 1000;

pub(super) struct Collected {
    pub attachments: Vec<Attachment>,
    /// The body found inside a winmail.dat, if any.
    pub tnef_body: Option<String>,
}

/// The message without blank lines (empty, or only spaces/tabs) before its header (some tools
/// write one; read as they are, the header section would end at once and the whole message
/// become text — a helpdesk expects the headers that follow).
pub(super) fn skip_blank_lines(raw: &[u8]) -> &[u8] {
    let mut start = 0;
    while let Some(nl) = raw[start..].iter().position(|&b| b == b'\n') {
        let line = &raw[start..start + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
            break;
        }
        start += nl + 1;
    }
    &raw[start..]
}

/// Windows device names: a file called `CON` or `nul.txt` cannot be created there.
const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Longest safe name, in bytes (file systems take 255; room is left for " (2)" and a prefix).
const MAX_NAME_BYTES: usize = 200;

/// A name safe to create on any file system from `name`: no directories (only the last path
/// component is kept), no control characters, `<>:"|?*` replaced by `_`, no leading dots, no
/// trailing dots or spaces, not a reserved Windows device name (`CON`, `nul.txt`, `COM1` get a
/// leading `_`), at most 200 bytes (the extension is kept when the stem is cut). None if
/// nothing usable is left.
pub fn sanitize_filename(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base
        .chars()
        .filter(|c| {
            !c.is_control() && !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .map(|c| match c {
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c => c,
        })
        .collect();
    let cleaned = cleaned
        .trim()
        .trim_start_matches('.')
        .trim_end_matches(['.', ' '])
        .trim();
    if cleaned.is_empty() {
        return None;
    }
    let mut cleaned = cleaned.to_string();
    let stem = cleaned.split('.').next().unwrap_or("").trim_end();
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem)) {
        cleaned.insert(0, '_');
    }
    Some(cut_keeping_extension(&cleaned, MAX_NAME_BYTES))
}

/// `name` cut to at most `max` bytes on a character boundary, keeping a short extension.
fn cut_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let ext = match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= 16 => &name[dot..],
        _ => "",
    };
    let mut end = max - ext.len();
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ext}", name[..end].trim_end())
}

/// A file name for a part the sender gave none: from its content type.
fn name_for_type(content_type: &str) -> String {
    let (major, sub) = content_type.split_once('/').unwrap_or((content_type, ""));
    let known = match content_type {
        "text/plain" => Some("text.txt"),
        "text/html" => Some("page.html"),
        "text/calendar" | "application/ics" => Some("invite.ics"),
        "text/csv" => Some("table.csv"),
        "text/vcard" | "text/x-vcard" | "text/directory" => Some("contact.vcf"),
        "text/rfc822-headers" => Some("headers.txt"),
        "message/delivery-status" | "message/global-delivery-status" => Some("delivery-status.txt"),
        "message/disposition-notification" => Some("disposition-notification.txt"),
        "message/partial" => Some("message-part.bin"),
        "message/external-body" => Some("external-body.txt"),
        "message/rfc822" | "message/global" => Some("message.eml"),
        "application/pdf" => Some("document.pdf"),
        "application/zip" | "application/x-zip-compressed" => Some("archive.zip"),
        "application/ms-tnef" | "application/vnd.ms-tnef" => Some("winmail.dat"),
        "application/pgp-signature" => Some("signature.asc"),
        "application/pgp-encrypted" => Some("pgp-version.txt"),
        "application/pgp-keys" => Some("key.asc"),
        "application/pkcs7-signature" | "application/x-pkcs7-signature" => Some("smime.p7s"),
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => Some("smime.p7m"),
        "application/json" => Some("data.json"),
        "application/xml" | "text/xml" => Some("data.xml"),
        "application/msword" => Some("document.doc"),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
            Some("document.docx")
        }
        "application/vnd.ms-excel" => Some("workbook.xls"),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => {
            Some("workbook.xlsx")
        }
        "image/jpeg" | "image/jpg" | "image/pjpeg" => Some("image.jpg"),
        "image/svg+xml" => Some("image.svg"),
        "audio/mpeg" | "audio/mp3" => Some("audio.mp3"),
        "audio/x-wav" | "audio/wav" => Some("audio.wav"),
        "video/quicktime" => Some("video.mov"),
        _ => None,
    };
    if let Some(k) = known {
        return k.to_string();
    }
    // image/png -> image.png; other application/* and unknown types -> attachment.bin.
    let ext: String = sub
        .trim_start_matches("x-")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    match major {
        "image" | "audio" | "video" if !ext.is_empty() => format!("{major}.{ext}"),
        "text" => "text.txt".to_string(),
        _ => "attachment.bin".to_string(),
    }
}

/// The content type a uuencoded file's name suggests (uuencode carries no type).
fn type_for_name(name: &str) -> String {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("bmp") => "image/bmp",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        Some("txt" | "log" | "csv") => "text/plain",
        Some("htm" | "html") => "text/html",
        Some("doc") => "application/msword",
        _ => "application/octet-stream",
    }
    .to_string()
}

/// Gives every attachment a `save_as` no other attachment of the ticket has (compared
/// case-insensitively, as Windows and macOS file systems do): the second `a.pdf` becomes
/// `a (2).pdf`.
fn make_unique(attachments: &mut [Attachment]) {
    let mut taken: HashSet<String> = HashSet::new();
    for a in attachments.iter_mut() {
        let wanted = std::mem::take(&mut a.save_as);
        let mut name = wanted.clone();
        let mut n = 2;
        while !taken.insert(name.to_lowercase()) {
            let (stem, ext) = match wanted.rfind('.') {
                Some(dot) if dot > 0 => wanted.split_at(dot),
                _ => (wanted.as_str(), ""),
            };
            let suffix = format!(" ({n}){ext}");
            name = format!(
                "{}{suffix}",
                cut_keeping_extension(stem, MAX_NAME_BYTES.saturating_sub(suffix.len()))
            );
            n += 1;
        }
        a.save_as = name;
    }
}

fn content_type_of(part: &MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => {
            let t = ct.ctype().trim().to_ascii_lowercase();
            match ct.subtype() {
                Some(st) => format!("{t}/{}", st.trim().to_ascii_lowercase()),
                None if t == "text" => "text/plain".to_string(),
                None => format!("{t}/octet-stream"),
            }
        }
        None if part.is_message() => "message/rfc822".to_string(),
        None => "text/plain".to_string(),
    }
}

fn is_tnef(content_type: &str, filename: Option<&str>) -> bool {
    content_type == "application/ms-tnef"
        || content_type == "application/vnd.ms-tnef"
        || filename.is_some_and(|f| f.eq_ignore_ascii_case("winmail.dat"))
}

/// `Content-Transfer-Encoding: x-uuencode` (and the spellings clients use for it).
fn is_uuencoded(part: &MessagePart<'_>) -> bool {
    part.headers.iter().any(|h| {
        h.name
            .as_str()
            .eq_ignore_ascii_case("Content-Transfer-Encoding")
            && h.value.as_text().is_some_and(|v| {
                let v = v.trim();
                ["x-uuencode", "uuencode", "x-uue", "uue"]
                    .iter()
                    .any(|u| v.eq_ignore_ascii_case(u))
            })
    })
}

/// The file name the sender gave the part, decoded: Content-Disposition `filename`, else
/// Content-Type `name` (RFC 2231 continuations and charsets, RFC 2047 encoded words, also the
/// non-standard encoded words inside a quoted string). mail-parser's reading is taken when it
/// has one without leftover encoded words; else the raw header is read here (it gives up on a
/// quoted value folded onto the next line, e.g. `filename=\r\n "=?iso-8859-1?Q?a?=\r\n
/// =?iso-8859-1?Q?b.pdf?="`). None when the part has no (non-empty) name.
fn sent_name(raw: &[u8], part: &MessagePart<'_>) -> Option<String> {
    if let Some(n) = part.attachment_name().filter(|n| !n.is_empty()) {
        if !(n.contains("=?") && n.contains("?=")) {
            return Some(n.to_string());
        }
    }
    let param = |header: HeaderName<'_>, name: &str| {
        let h = part.headers.iter().find(|h| h.name == header)?;
        let value = raw.get(h.offset_start as usize..h.offset_end as usize)?;
        raw_param(value, name)
    };
    param(HeaderName::ContentDisposition, "filename")
        .or_else(|| param(HeaderName::ContentType, "name"))
        .filter(|n| !n.is_empty())
}

/// One parameter of a raw structured header value (`type/sub; a=b; name="x"`), decoded.
fn raw_param(value: &[u8], name: &str) -> Option<String> {
    // Unfold, and read 8-bit bytes as UTF-8 where valid, else windows-1252.
    let text = match std::str::from_utf8(value) {
        Ok(s) => s.to_string(),
        Err(_) => super::charset::decode_cp1252(value),
    };
    let text = text
        .replace("\r\n", "\n")
        .replace("\n ", " ")
        .replace("\n\t", "\t");
    let mut plain: Option<String> = None;
    let mut extended: Option<String> = None; // name*=charset'lang'pct
    let mut pieces: Vec<(u32, bool, String)> = Vec::new(); // name*N[*]=...
    for (key, val) in params(&text) {
        let key = key.to_ascii_lowercase();
        let Some(rest) = key.strip_prefix(name) else {
            continue;
        };
        match rest {
            "" => plain = Some(val),
            "*" => extended = Some(val),
            _ => {
                let rest = rest.strip_prefix('*')?;
                let (num, enc) = match rest.strip_suffix('*') {
                    Some(n) => (n, true),
                    None => (rest, false),
                };
                if let Ok(n) = num.parse::<u32>() {
                    if pieces.len() < 1000 {
                        pieces.push((n, enc, val));
                    }
                }
            }
        }
    }
    if let Some(ext) = extended {
        let (charset, rest) = split_charset(&ext);
        return Some(decode_bytes(&percent_decode(rest), charset.as_deref()));
    }
    if !pieces.is_empty() {
        pieces.sort_by_key(|p| p.0);
        let mut charset = None;
        let mut bytes = Vec::new();
        for (i, (_, enc, val)) in pieces.iter().enumerate() {
            if *enc {
                let encoded = if i == 0 {
                    let (cs, rest) = split_charset(val);
                    charset = cs;
                    rest
                } else {
                    val.as_str()
                };
                bytes.extend(percent_decode(encoded));
            } else {
                bytes.extend_from_slice(val.as_bytes());
            }
        }
        return Some(decode_bytes(&bytes, charset.as_deref()));
    }
    let plain = plain?;
    if plain.contains("=?") {
        let mut line = plain.into_bytes();
        line.push(b'\n');
        if let HeaderValue::Text(t) = MessageStream::new(&line).parse_unstructured() {
            return Some(t.into_owned());
        }
        return Some(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
    }
    Some(plain)
}

/// `key=value` pairs after the first `;`, values unquoted (backslash escapes undone).
fn params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    // Skip the value before the first parameter.
    for c in chars.by_ref() {
        if c == ';' {
            break;
        }
    }
    loop {
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            chars.next();
            if c == '=' {
                break;
            }
            if c == ';' {
                key.clear();
                continue;
            }
            key.push(c);
        }
        let key = key.trim().to_string();
        if key.is_empty() && chars.peek().is_none() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n);
                        }
                    }
                    c => val.push(c),
                }
            }
            for c in chars.by_ref() {
                if c == ';' {
                    break;
                }
            }
        } else {
            for c in chars.by_ref() {
                if c == ';' {
                    break;
                }
                val.push(c);
            }
            val = val.trim().to_string();
        }
        if !key.is_empty() {
            out.push((key, val));
        }
        if chars.peek().is_none() {
            break;
        }
    }
    out
}

/// `charset'language'rest` → (charset, rest); no quote marks: (None, all).
fn split_charset(v: &str) -> (Option<String>, &str) {
    let mut it = v.splitn(3, '\'');
    match (it.next(), it.next(), it.next()) {
        (Some(cs), Some(_lang), Some(rest)) => {
            (Some(cs.to_string()).filter(|c| !c.is_empty()), rest)
        }
        _ => (None, v),
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = (b[i + 1] as char).to_digit(16);
            let l = (b[i + 2] as char).to_digit(16);
            if let (Some(h), Some(l)) = (h, l) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn decode_bytes(bytes: &[u8], charset: Option<&str>) -> String {
    if let Some(decode) =
        charset.and_then(|c| mail_parser::decoders::charsets::map::charset_decoder(c.as_bytes()))
    {
        return decode(bytes);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => super::charset::decode_cp1252(bytes),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Makes one attachment, applying the size limit. `save_as` is the wanted safe name (made
/// unique per ticket later); None derives it from the sent name or the content type.
#[allow(clippy::too_many_arguments)]
pub(super) fn make_attachment(
    filename: Option<String>,
    save_as: Option<String>,
    content_type: String,
    inline: bool,
    content_id: Option<String>,
    data: Vec<u8>,
    opts: &TicketOptions,
    warnings: &mut Vec<String>,
) -> Attachment {
    let filename = filename.filter(|f| !f.is_empty());
    let save_as = save_as
        .or_else(|| filename.as_deref().and_then(sanitize_filename))
        .unwrap_or_else(|| name_for_type(&content_type));
    let size = data.len() as u64;
    let sha256 = sha256_hex(&data);
    let (data, omitted) = if size > opts.max_attachment_bytes {
        warnings.push(format!(
            "attachment \"{save_as}\" is {size} bytes, over the limit of {} bytes; listed without its data",
            opts.max_attachment_bytes
        ));
        (Vec::new(), Some(Omitted::TooLarge))
    } else {
        (data, None)
    };
    Attachment {
        filename,
        save_as,
        content_type,
        size,
        inline,
        content_id,
        sha256,
        omitted,
        data,
        pending: None,
    }
}

/// An attached message's safe name: its decoded subject + `.eml`.
fn eml_name(nested: &Message<'_>) -> String {
    // A subject is no path: its slashes are kept as `_`, not taken as directories.
    let subject: String = nested
        .subject()
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(['/', '\\'], "_");
    let base = if subject.is_empty() {
        "attached message".to_string()
    } else {
        subject.chars().take(100).collect()
    };
    sanitize_filename(&format!("{base}.eml")).unwrap_or_else(|| "attached message.eml".into())
}

/// Every part of the top-level message that is not shown as its text, in the order of the
/// message: attachments, inline parts (images a body shows, or a whole body that is an image,
/// a PDF, a calendar invitation), parts of unknown multiparts, files uuencoded in a text body
/// (`uu`, by the id of their text part), winmail.dat unpacked. Not the parts inside attached
/// mails, which travel inside their `.eml`.
pub(super) fn collect_attachments(
    msg: &Message<'_>,
    raw: &[u8],
    body_ids: &HashSet<u32>,
    mut uu: Vec<(u32, UuFile)>,
    opts: &TicketOptions,
    warnings: &mut Vec<String>,
) -> Collected {
    let mut attachments = Vec::new();
    let mut tnef_body = None;
    let mut dropped = 0usize;
    let push = |attachments: &mut Vec<Attachment>, dropped: &mut usize, a: Attachment| {
        if attachments.len() >= MAX_ATTACHMENTS {
            *dropped += 1;
        } else {
            attachments.push(a);
        }
    };
    uu.reverse();
    // Every part mail-parser filed somewhere (a header-only parse files none).
    let listed: HashSet<u32> = msg
        .attachments
        .iter()
        .chain(&msg.text_body)
        .chain(&msg.html_body)
        .copied()
        .collect();
    for (id, part) in msg.parts.iter().enumerate() {
        let id = id as u32;
        while uu.last().is_some_and(|(pid, _)| *pid == id) {
            if let Some((_, f)) = uu.pop() {
                let ct = type_for_name(&f.name);
                let a =
                    make_attachment(Some(f.name), None, ct, false, None, f.data, opts, warnings);
                push(&mut attachments, &mut dropped, a);
            }
        }
        if part.is_multipart() || !listed.contains(&id) {
            continue;
        }
        // A text part shown as the body is also listed when the sender named it (a text file
        // attached "inline", as Netscape and some web mailers do): the file keeps its name.
        if body_ids.contains(&id) && sent_name(raw, part).is_none() {
            continue;
        }
        if attachments.len() >= MAX_ATTACHMENTS {
            dropped += 1;
            continue;
        }
        let content_type = content_type_of(part);
        let mut filename = sent_name(raw, part);
        if let Some(sent) = &filename {
            if sent.contains(['/', '\\']) || sent.chars().any(char::is_control) {
                warnings.push(format!(
                    "attachment name \"{}\" is not a plain file name; save_as is \"{}\"",
                    sent.chars()
                        .filter(|c| !c.is_control())
                        .take(200)
                        .collect::<String>(),
                    sanitize_filename(sent).unwrap_or_else(|| name_for_type(&content_type))
                ));
            }
        }
        let content_id = part
            .content_id()
            .map(|c| super::thread::strip_angle(c).to_string())
            .filter(|c| !c.is_empty());
        let disposition = part.content_disposition();
        let inline = match disposition {
            Some(d) if d.is_attachment() => false,
            Some(d) if d.is_inline() => !matches!(part.body, PartType::Message(_)),
            _ => matches!(part.body, PartType::InlineBinary(_)) || content_id.is_some(),
        };
        let mut save_as = None;
        let mut data: Vec<u8> = match &part.body {
            PartType::Binary(b) | PartType::InlineBinary(b) => b.to_vec(),
            PartType::Text(t) | PartType::Html(t) => {
                // The original bytes in their own charset, as the sender attached them.
                transfer_decoded(raw, part)
                    .filter(|b| !b.is_empty() || t.is_empty())
                    .unwrap_or_else(|| t.as_bytes().to_vec())
            }
            PartType::Message(nested) => {
                save_as = Some(eml_name(nested));
                match part.encoding {
                    Encoding::None => raw
                        .get(part.offset_body as usize..part.offset_end as usize)
                        .map(|b| b.to_vec())
                        .unwrap_or_else(|| nested.raw_message().to_vec()),
                    _ => nested.raw_message().to_vec(),
                }
            }
            PartType::Multipart(_) => continue,
        };
        if is_uuencoded(part) {
            match uu::decode_part(&data) {
                Some(f) => {
                    data = f.data;
                    if filename.is_none() && !f.name.is_empty() {
                        filename = Some(f.name);
                    }
                }
                None => warnings.push(format!(
                    "attachment \"{}\" says x-uuencode but holds no uuencoded file; attached as it is",
                    filename.as_deref().unwrap_or("(unnamed)")
                )),
            }
        }
        if is_tnef(&content_type, filename.as_deref()) {
            match tnef::unpack(&data) {
                Ok(unpacked) => {
                    if let Some(e) = &unpacked.rtf_error {
                        warnings.push(format!(
                            "winmail.dat: its rich-text body could not be read ({e})"
                        ));
                    }
                    if unpacked.body.is_some() && tnef_body.is_none() {
                        tnef_body = unpacked.body;
                    }
                    for f in unpacked.files {
                        let ct = f
                            .mime_type
                            .unwrap_or_else(|| "application/octet-stream".to_string());
                        let a = make_attachment(
                            f.filename,
                            None,
                            ct,
                            false,
                            f.content_id,
                            f.data,
                            opts,
                            warnings,
                        );
                        push(&mut attachments, &mut dropped, a);
                    }
                    continue;
                }
                Err(e) => {
                    warnings.push(format!(
                        "winmail.dat could not be unpacked ({e}); attached as it is"
                    ));
                }
            }
        }
        let a = make_attachment(
            filename,
            save_as,
            content_type,
            inline,
            content_id,
            data,
            opts,
            warnings,
        );
        push(&mut attachments, &mut dropped, a);
    }
    for (_, f) in uu.into_iter().rev() {
        let ct = type_for_name(&f.name);
        let a = make_attachment(Some(f.name), None, ct, false, None, f.data, opts, warnings);
        push(&mut attachments, &mut dropped, a);
    }
    if dropped > 0 {
        warnings.push(format!(
            "{dropped} more attachments beyond {MAX_ATTACHMENTS} were not listed"
        ));
    }
    make_unique(&mut attachments);
    Collected {
        attachments,
        tnef_body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_sanitized() {
        assert_eq!(
            sanitize_filename("report.pdf").as_deref(),
            Some("report.pdf")
        );
        assert_eq!(
            sanitize_filename("../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(
            sanitize_filename("C:\\temp\\a.txt").as_deref(),
            Some("a.txt")
        );
        assert_eq!(sanitize_filename("..").as_deref(), None);
        assert_eq!(sanitize_filename(" \u{7} ").as_deref(), None);
        assert_eq!(sanitize_filename("a<b>.txt").as_deref(), Some("a_b_.txt"));
        let long = "é".repeat(300);
        assert!(sanitize_filename(&long).unwrap().len() <= 200);
        let long = format!("{}.pdf", "x".repeat(400));
        let cut = sanitize_filename(&long).unwrap();
        assert!(cut.len() <= 200 && cut.ends_with(".pdf"), "{cut}");
        assert_eq!(sanitize_filename("CON").as_deref(), Some("_CON"));
        assert_eq!(sanitize_filename("nul.txt").as_deref(), Some("_nul.txt"));
        assert_eq!(
            sanitize_filename("com1.tar.gz").as_deref(),
            Some("_com1.tar.gz")
        );
        assert_eq!(
            sanitize_filename("console.log").as_deref(),
            Some("console.log")
        );
        assert_eq!(sanitize_filename("report. . ").as_deref(), Some("report"));
        assert_eq!(sanitize_filename("a\r\nb.txt").as_deref(), Some("ab.txt"));
        assert_eq!(
            sanitize_filename("invoice\u{202e}fdp.exe").as_deref(),
            Some("invoicefdp.exe")
        );
    }

    fn att(save_as: &str) -> Attachment {
        make_attachment(
            None,
            Some(save_as.to_string()),
            "text/plain".into(),
            false,
            None,
            Vec::new(),
            &TicketOptions::default(),
            &mut Vec::new(),
        )
    }

    #[test]
    fn sent_names_decoded_from_the_raw_header() {
        let p = |v: &str| raw_param(v.as_bytes(), "filename");
        assert_eq!(
            p("attachment; filename=\r\n\t\"=?iso-8859-1?Q?N=B0_1467829.?=\r\n =?iso-8859-1?Q?pdf?=\"; size=6")
                .as_deref(),
            Some("N° 1467829.pdf")
        );
        assert_eq!(
            p("attachment; filename*=UTF-8''%C3%9Cbersicht%20Nov.xlsx").as_deref(),
            Some("Übersicht Nov.xlsx")
        );
        assert_eq!(
            p("attachment; filename*0*=iso-8859-1''Gr%FC; filename*1=\"sse und \"; filename*2*=%DC.txt")
                .as_deref(),
            Some("Grüsse und Ü.txt")
        );
        assert_eq!(
            p("inline; filename=\"a \\\"b\\\"  c.txt\"").as_deref(),
            Some("a \"b\"  c.txt")
        );
        assert_eq!(p("attachment; size=3").as_deref(), None);
        assert_eq!(
            p("attachment; filename=plain.txt").as_deref(),
            Some("plain.txt")
        );
        // Garbage gives something or nothing, never a panic.
        for v in [
            "",
            ";",
            "a; filename",
            "a; filename*0*=%",
            "a; filename=\"unterminated",
            "a;=;=x",
        ] {
            let _ = p(v);
        }
    }

    #[test]
    fn save_as_is_unique_in_a_ticket() {
        let mut list = vec![att("a.pdf"), att("A.PDF"), att("a.pdf"), att("x"), att("x")];
        make_unique(&mut list);
        let names: Vec<&str> = list.iter().map(|a| a.save_as.as_str()).collect();
        assert_eq!(names, ["a.pdf", "A (2).PDF", "a (3).pdf", "x", "x (2)"]);
    }

    #[test]
    fn names_from_the_content_type() {
        assert_eq!(name_for_type("image/png"), "image.png");
        assert_eq!(name_for_type("image/jpeg"), "image.jpg");
        assert_eq!(name_for_type("application/pdf"), "document.pdf");
        assert_eq!(name_for_type("text/calendar"), "invite.ics");
        assert_eq!(name_for_type("message/partial"), "message-part.bin");
        assert_eq!(name_for_type("application/x-whatever"), "attachment.bin");
        assert_eq!(name_for_type("audio/x-aiff"), "audio.aiff");
        // A sent name wins, made safe; none derives one.
        let mut w = Vec::new();
        let opts = TicketOptions::default();
        let a = make_attachment(
            Some("../x/CON.txt".into()),
            None,
            "text/plain".into(),
            false,
            None,
            b"x".to_vec(),
            &opts,
            &mut w,
        );
        assert_eq!(a.filename.as_deref(), Some("../x/CON.txt"));
        assert_eq!(a.save_as, "_CON.txt");
        let a = make_attachment(
            None,
            None,
            "image/gif".into(),
            true,
            None,
            vec![],
            &opts,
            &mut w,
        );
        assert_eq!((a.filename, a.save_as.as_str()), (None, "image.gif"));
    }
}
