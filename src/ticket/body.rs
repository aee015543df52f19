//! The ticket's three bodies: `body_full` (all the text), `body` (the new text only) and
//! `body_html`, from the message's text/plain and text/html parts or a winmail.dat's body.

use std::collections::HashSet;

use mail_parser::{Message, MimeHeaders, PartType};

use super::charset::part_text;
use super::html2text::{html_to_text, Html2TextOptions};
use super::model::Attachment;
use super::quote::clean_body;
use super::uu::{self, UuFile};

/// What the ticket shows as text.
pub(super) struct Bodies {
    pub body: String,
    pub body_full: String,
    pub body_html: Option<String>,
}

/// The message's text as mail-parser found it.
pub(super) struct BodyParts {
    /// The decoded text/plain body parts (LF line ends, format=flowed undone, uuencoded files
    /// taken out).
    pub texts: Vec<String>,
    /// The decoded text/html body parts.
    pub htmls: Vec<String>,
    /// The parts read into `texts` and `htmls`: every other part is an attachment.
    pub consumed: HashSet<u32>,
    /// Files uuencoded inside a text part, by that part's id, in order.
    pub uu: Vec<(u32, UuFile)>,
}

/// The decoded text/plain and text/html body parts of the top-level message, with charset
/// warnings.
pub(super) fn body_parts(msg: &Message<'_>, raw: &[u8], warnings: &mut Vec<String>) -> BodyParts {
    let text_ids = &msg.text_body;
    let mut texts = Vec::new();
    let mut consumed = HashSet::new();
    let mut uu = Vec::new();
    for (n, &id) in text_ids.iter().enumerate() {
        if let Some(part) = msg.parts.get(id as usize) {
            if let PartType::Text(t) = &part.body {
                consumed.insert(id);
                let what = part_label("text/plain", n, text_ids.len());
                let mut text = normalize_newlines(&part_text(raw, part, t, &what, warnings));
                if let Some((files, rest)) = uu::split_text(&text) {
                    uu.extend(files.into_iter().map(|f| (id, f)));
                    text = rest;
                }
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
    let html_ids = &msg.html_body;
    let mut htmls = Vec::new();
    for (n, &id) in html_ids.iter().enumerate() {
        if let Some(part) = msg.parts.get(id as usize) {
            if let PartType::Html(t) = &part.body {
                consumed.insert(id);
                let what = part_label("text/html", n, html_ids.len());
                htmls.push(normalize_newlines(&part_text(
                    raw, part, t, &what, warnings,
                )));
            }
        }
    }
    BodyParts {
        texts,
        htmls,
        consumed,
        uu,
    }
}

/// What a part is, in a word or two, for a body made of attachments only.
fn kind_of(content_type: &str) -> &'static str {
    let major = content_type.split('/').next().unwrap_or("");
    match content_type {
        "text/calendar" | "application/ics" => "Calendar invitation",
        "application/pdf" => "PDF document",
        "message/rfc822" | "message/global" => "Attached message",
        "text/vcard" | "text/x-vcard" => "Contact card",
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => "Encrypted message (S/MIME)",
        "application/pgp-encrypted" => "Encrypted message (PGP)",
        _ => match major {
            "image" => "Image",
            "audio" => "Audio",
            "video" => "Video",
            "text" => "Text file",
            _ => "File",
        },
    }
}

/// The text of a mail without text: one line per attachment saying what it is, e.g.
/// `[Image: scan.png (image/png)]` (the size and the rest are in `attachments`), so the ticket never shows an empty body for a
/// mail whose whole content is a picture, a PDF or an invitation.
fn describe(attachments: &[Attachment]) -> String {
    const MAX_LINES: usize = 20;
    let mut out = String::new();
    for a in attachments.iter().take(MAX_LINES) {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!(
            "[{}: {} ({})]",
            kind_of(&a.content_type),
            a.save_as,
            a.content_type
        ));
    }
    if attachments.len() > MAX_LINES {
        out.push_str(&format!(
            "\n[... and {} more attachments]",
            attachments.len() - MAX_LINES
        ));
    }
    out
}

/// `body_full`, `body` and `body_html` from the decoded parts: text/plain wins; HTML-only mail
/// is converted (quote markup dropped for `body`); a winmail.dat's body next; a mail with no
/// text at all but attachments (a picture, a PDF, an invitation sent as the whole message)
/// gets a line per attachment saying what it is.
pub(super) fn compose(
    texts: Vec<String>,
    htmls: Vec<String>,
    tnef_body: Option<String>,
    attachments: &[Attachment],
) -> Bodies {
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
    } else if let Some(full) = tnef_body
        .map(|t| trim_blank_lines(&normalize_newlines(&t)))
        .filter(|t| !t.is_empty())
    {
        let body = clean_body(&full);
        (full, body)
    } else {
        (String::new(), String::new())
    };
    let (body_full, body) = if body_full.trim().is_empty() && !attachments.is_empty() {
        let full = describe(attachments);
        (full.clone(), full)
    } else {
        (body_full, body)
    };

    Bodies {
        body,
        body_full,
        body_html,
    }
}

/// LF line ends, and no byte-order marks (clients leave them inside quoted text).
pub(super) fn normalize_newlines(s: &str) -> String {
    // One pass (this runs on every body): CR LF and a lone CR become LF, BOMs go.
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['\r', '\u{feff}']) {
        out.push_str(&rest[..i]);
        if rest[i..].starts_with('\r') {
            out.push('\n');
            rest = &rest[i + 1..];
            if let Some(after) = rest.strip_prefix('\n') {
                rest = after;
            }
        } else {
            rest = &rest[i + '\u{feff}'.len_utf8()..];
        }
    }
    out.push_str(rest);
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_are_normalized_in_one_pass_as_before() {
        let old = |s: &str| {
            let s = s.replace("\r\n", "\n").replace('\r', "\n");
            s.replace('\u{feff}', "")
        };
        for s in [
            "",
            "a\r\nb\rc\nd",
            "\r\r\n\n\r",
            "\u{feff}x\r\u{feff}\ny\u{feff}",
            "é\r\n😀\r",
            "plain",
        ] {
            assert_eq!(normalize_newlines(s), old(s), "{s:?}");
        }
    }

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
}
