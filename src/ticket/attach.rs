//! Attachments and inline parts: metadata, hash, bytes under the size limit; attached mails as
//! `.eml`; winmail.dat unpacked into its real files.

use std::collections::HashSet;

use mail_parser::{Encoding, Message, MessagePart, MimeHeaders, PartType};
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
        Some("txt") => "text/plain",
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
    }
}

/// An attached message's safe name: its decoded subject + `.eml`.
fn eml_name(nested: &Message<'_>) -> String {
    let subject: String = nested
        .subject()
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
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
        if body_ids.contains(&id) || part.is_multipart() {
            continue;
        }
        if attachments.len() >= MAX_ATTACHMENTS {
            dropped += 1;
            continue;
        }
        let content_type = content_type_of(part);
        let mut filename = part
            .attachment_name()
            .filter(|n| !n.is_empty())
            .map(str::to_string);
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
