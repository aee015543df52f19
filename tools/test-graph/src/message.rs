//! Graph's message resource, built from what IMAP knows (flags, INTERNALDATE, modseq, header).

use crate::ids::{folder_id, message_id, MessageRef};
use crate::util::{b64url_pad, iso_utc, json_str};
use mail_parser::{Address, MessageParser};

/// Properties of `microsoft.graph.message` the stand-in serves.
pub const PROPERTIES: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "importance",
    "parentFolderId",
    "conversationId",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
    "internetMessageHeaders",
    "bodyPreview",
];

/// Real Graph properties this stand-in does not produce (they need the body converted): asked
/// for in `$select`, they get a clear 400 rather than a silently missing value.
pub const UNSERVED: &[&str] = &["body", "uniqueBody", "attachments"];

/// What IMAP told about one message.
#[derive(Debug, Clone, Default)]
pub struct ImapMessage {
    pub uid: u32,
    pub flags: Vec<String>,
    pub internal_date: i64,
    pub modseq: u64,
    pub header: Vec<u8>,
    /// Dovecot's PREVIEW (RFC 8970) of the text, when it was asked for.
    pub preview: Option<String>,
}

/// Resolves `$select` into canonical property names; `Err(name)` for an unknown one.
pub fn parse_select(select: &str) -> Result<Vec<&'static str>, (String, bool)> {
    let mut out = Vec::new();
    for raw in select.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match PROPERTIES.iter().find(|p| p.eq_ignore_ascii_case(raw)) {
            Some(p) => {
                if !out.contains(p) {
                    out.push(*p)
                }
            }
            None => {
                let unserved = UNSERVED.iter().any(|p| p.eq_ignore_ascii_case(raw));
                return Err((raw.to_string(), unserved));
            }
        }
    }
    Ok(out)
}

fn has_flag(m: &ImapMessage, f: &str) -> bool {
    m.flags.iter().any(|x| x.eq_ignore_ascii_case(f))
}

fn recipient(name: Option<&str>, address: Option<&str>) -> String {
    format!(
        "{{\"emailAddress\":{{\"name\":{},\"address\":{}}}}}",
        json_str(name.or(address).unwrap_or("")),
        json_str(address.unwrap_or(""))
    )
}

fn recipients(a: Option<&Address<'_>>) -> String {
    let list: Vec<String> = a
        .map(|a| a.iter().map(|x| recipient(x.name(), x.address())).collect())
        .unwrap_or_default();
    format!("[{}]", list.join(","))
}

/// Unfolded (name, value) pairs of a header block.
pub fn header_fields(header: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(header);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n").flat_map(|l| l.split('\n')) {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((n, v)) = line.split_once(':') {
            out.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// The message's JSON object with `select` (empty: Graph's default set, minus the body).
pub fn to_json(folder: &str, uidvalidity: u32, m: &ImapMessage, select: &[&str]) -> String {
    let parsed = MessageParser::default().parse(&m.header);
    let fields = header_fields(&m.header);
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let r = MessageRef {
        folder: folder.to_string(),
        uidvalidity,
        uid: m.uid,
    };
    let id = message_id(&r);
    let change_key = format!("CQAAABYAAA{}", b64url_pad(&m.modseq.to_be_bytes()));
    let received = iso_utc(m.internal_date);
    let wanted: Vec<&str> = if select.is_empty() {
        PROPERTIES
            .iter()
            .copied()
            .filter(|p| *p != "internetMessageHeaders")
            .collect()
    } else {
        select.to_vec()
    };
    let mut out = format!(
        "{{\"@odata.type\":\"#microsoft.graph.message\",\"@odata.etag\":{}",
        json_str(&format!("W/\"{change_key}\""))
    );
    let mut push = |k: &str, v: String| {
        out.push_str(&format!(",{}:{v}", json_str(k)));
    };
    // Graph always returns the id.
    push("id", json_str(&id));
    for p in wanted {
        let v = match p {
            "id" => continue,
            "createdDateTime" | "lastModifiedDateTime" | "receivedDateTime" => json_str(&received),
            "changeKey" => json_str(&change_key),
            "categories" => "[]".into(),
            "sentDateTime" => parsed
                .as_ref()
                .and_then(|x| x.date())
                .map(|d| json_str(&iso_utc(d.to_timestamp())))
                .unwrap_or_else(|| json_str(&received)),
            "hasAttachments" => field("Content-Type")
                .map(|c| c.to_ascii_lowercase().starts_with("multipart/mixed"))
                .unwrap_or(false)
                .to_string(),
            "internetMessageId" => parsed
                .as_ref()
                .and_then(|x| x.message_id())
                .map(|i| json_str(&format!("<{i}>")))
                .unwrap_or_else(|| "null".into()),
            "subject" => json_str(parsed.as_ref().and_then(|x| x.subject()).unwrap_or("")),
            "importance" => {
                let imp = field("Importance").map(str::to_ascii_lowercase);
                let prio = field("X-Priority").and_then(|v| v.trim().chars().next());
                json_str(match (imp.as_deref(), prio) {
                    (Some("high"), _) | (_, Some('1' | '2')) => "high",
                    (Some("low"), _) | (_, Some('4' | '5')) => "low",
                    _ => "normal",
                })
            }
            "parentFolderId" => json_str(&folder_id(folder)),
            "conversationId" => {
                let root = parsed
                    .as_ref()
                    .and_then(|x| {
                        x.references()
                            .as_text_list()
                            .and_then(|l| l.first().map(|s| s.to_string()))
                            .or_else(|| x.references().as_text().map(str::to_string))
                            .or_else(|| x.message_id().map(str::to_string))
                    })
                    .unwrap_or_else(|| id.clone());
                json_str(&format!("AAQkAG{}", b64url_pad(root.as_bytes())))
            }
            "isDeliveryReceiptRequested" => "false".into(),
            "isReadReceiptRequested" => field("Disposition-Notification-To").is_some().to_string(),
            "isRead" => has_flag(m, "\\Seen").to_string(),
            "isDraft" => has_flag(m, "\\Draft").to_string(),
            "webLink" => json_str(&format!(
                "https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem",
                id.replace('=', "%3D")
            )),
            "inferenceClassification" => json_str("focused"),
            "bodyPreview" => json_str(m.preview.as_deref().unwrap_or("")),
            "sender" | "from" => {
                let a = parsed.as_ref().and_then(|x| {
                    if p == "sender" {
                        x.sender().or_else(|| x.from())
                    } else {
                        x.from()
                    }
                });
                match a.and_then(|a| a.first()) {
                    Some(x) => recipient(x.name(), x.address()),
                    None => "null".into(),
                }
            }
            "toRecipients" => recipients(parsed.as_ref().and_then(|x| x.to())),
            "ccRecipients" => recipients(parsed.as_ref().and_then(|x| x.cc())),
            "bccRecipients" => recipients(parsed.as_ref().and_then(|x| x.bcc())),
            "replyTo" => recipients(parsed.as_ref().and_then(|x| x.reply_to())),
            "flag" => format!(
                "{{\"flagStatus\":{}}}",
                json_str(if has_flag(m, "\\Flagged") {
                    "flagged"
                } else {
                    "notFlagged"
                })
            ),
            "internetMessageHeaders" => format!(
                "[{}]",
                fields
                    .iter()
                    .map(|(n, v)| format!("{{\"name\":{},\"value\":{}}}", json_str(n), json_str(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            _ => continue,
        };
        push(p, v);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::Json;

    #[test]
    fn builds_the_selected_properties() {
        let m = ImapMessage {
            uid: 5,
            flags: vec!["\\Seen".into()],
            internal_date: 1_765_155_600,
            modseq: 12,
            preview: None,
            header: b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.com>\r\nTo: a@contoso.test, \"B\" <b@contoso.test>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <m1@example.com>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0100\r\nX-Priority: 1\r\n\r\n".to_vec(),
        };
        let sel = parse_select("id,isRead,subject,from,toRecipients,internetMessageId,receivedDateTime,sentDateTime,importance,parentFolderId").unwrap();
        let j = Json::parse(&to_json("INBOX", 9, &m, &sel)).unwrap();
        assert_eq!(j.get("subject").and_then(Json::as_str), Some("Grüße"));
        assert_eq!(j.get("isRead"), Some(&Json::Bool(true)));
        assert_eq!(
            j.get("internetMessageId").and_then(Json::as_str),
            Some("<m1@example.com>")
        );
        assert_eq!(
            j.get("from")
                .and_then(|f| f.get("emailAddress"))
                .and_then(|e| e.get("name"))
                .and_then(Json::as_str),
            Some("Jürgen")
        );
        assert_eq!(
            j.get("sentDateTime").and_then(Json::as_str),
            Some("2026-12-07T09:00:00Z")
        );
        assert_eq!(j.get("importance").and_then(Json::as_str), Some("high"));
        let Some(Json::Arr(to)) = j.get("toRecipients") else {
            panic!("{j:?}")
        };
        assert_eq!(to.len(), 2);
        assert!(j.get("ccRecipients").is_none(), "only what $select asks");
        assert_eq!(parse_select("id,nope"), Err(("nope".into(), false)));
        assert_eq!(parse_select("body"), Err(("body".into(), true)));
        assert!(parse_select("bodyPreview").is_ok());
    }
}
