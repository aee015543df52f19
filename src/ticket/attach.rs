//! Attachments and inline parts: metadata, hash, bytes under the size limit; attached mails as
//! `.eml`; winmail.dat unpacked into its real files.

use std::collections::HashSet;

use mail_parser::{Encoding, Message, MessagePart, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

use super::build::hex;
use super::charset::transfer_decoded;
use super::model::{Attachment, Omitted};
use super::tnef;
use super::TicketOptions;

/// Attachments are listed up to this many; more is almost surely an attack or a broken mail.
const MAX_ATTACHMENTS: usize = 1000;

pub(super) struct Collected {
    pub attachments: Vec<Attachment>,
    /// The body found inside a winmail.dat, if any.
    pub tnef_body: Option<String>,
}

/// The file name without directories, control characters or surrounding dots/spaces; None if
/// nothing usable is left.
pub fn sanitize_filename(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .replace(['<', '>', ':', '"', '|', '?', '*'], "_");
    let cleaned = cleaned.trim().trim_start_matches('.').trim().to_string();
    if cleaned.is_empty() {
        return None;
    }
    // Keep names within what file systems accept (255 bytes), on a char boundary.
    let mut end = cleaned.len().min(200);
    while !cleaned.is_char_boundary(end) {
        end -= 1;
    }
    Some(cleaned[..end].to_string())
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

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Makes one attachment, applying the size limit.
pub(super) fn make_attachment(
    filename: Option<String>,
    content_type: String,
    inline: bool,
    content_id: Option<String>,
    data: Vec<u8>,
    opts: &TicketOptions,
    warnings: &mut Vec<String>,
) -> Attachment {
    let size = data.len() as u64;
    let sha256 = sha256_hex(&data);
    let (data, omitted) = if size > opts.max_attachment_bytes {
        warnings.push(format!(
            "attachment \"{}\" is {size} bytes, over the limit of {} bytes; listed without its data",
            filename.as_deref().unwrap_or("(unnamed)"),
            opts.max_attachment_bytes
        ));
        (Vec::new(), Some(Omitted::TooLarge))
    } else {
        (data, None)
    };
    Attachment {
        filename,
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

fn eml_name(nested: &Message<'_>) -> String {
    let subject = nested.subject().unwrap_or("").trim();
    let base = if subject.is_empty() {
        "attached message".to_string()
    } else {
        subject.chars().take(100).collect()
    };
    sanitize_filename(&format!("{base}.eml")).unwrap_or_else(|| "attached message.eml".into())
}

/// Every attachment and inline part of the top-level message (not those inside attached mails,
/// which travel inside their `.eml`).
pub(super) fn collect_attachments(
    msg: &Message<'_>,
    raw: &[u8],
    body_ids: &HashSet<u32>,
    opts: &TicketOptions,
    warnings: &mut Vec<String>,
) -> Collected {
    let mut attachments = Vec::new();
    let mut tnef_body = None;
    let mut dropped = 0usize;
    for &id in &msg.attachments {
        if body_ids.contains(&id) {
            continue;
        }
        let Some(part) = msg.parts.get(id as usize) else {
            continue;
        };
        if part.is_multipart() {
            continue;
        }
        if attachments.len() >= MAX_ATTACHMENTS {
            dropped += 1;
            continue;
        }
        let content_type = content_type_of(part);
        let raw_name = part.attachment_name();
        let mut filename = raw_name.and_then(sanitize_filename);
        if let (Some(orig), Some(clean)) = (raw_name, &filename) {
            if orig.trim() != clean {
                warnings.push(format!(
                    "attachment name \"{}\" was not a plain file name; kept \"{clean}\"",
                    orig.chars()
                        .filter(|c| !c.is_control())
                        .take(200)
                        .collect::<String>()
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
        let data: Vec<u8> = match &part.body {
            PartType::Binary(b) | PartType::InlineBinary(b) => b.to_vec(),
            PartType::Text(t) | PartType::Html(t) => {
                // The original bytes in their own charset, as the sender attached them.
                transfer_decoded(raw, part)
                    .filter(|b| !b.is_empty() || t.is_empty())
                    .unwrap_or_else(|| t.as_bytes().to_vec())
            }
            PartType::Message(nested) => {
                if filename.is_none() {
                    filename = Some(eml_name(nested));
                }
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
                        attachments.push(make_attachment(
                            f.filename.as_deref().and_then(sanitize_filename),
                            ct,
                            false,
                            f.content_id,
                            f.data,
                            opts,
                            warnings,
                        ));
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
        attachments.push(make_attachment(
            filename,
            content_type,
            inline,
            content_id,
            data,
            opts,
            warnings,
        ));
    }
    if dropped > 0 {
        warnings.push(format!(
            "{dropped} more attachments beyond {MAX_ATTACHMENTS} were not listed"
        ));
    }
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
    }
}
