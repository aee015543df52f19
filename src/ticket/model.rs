//! The ticket, as DESIGN.md specifies it, and its JSON form.

use serde::Serialize;

/// A person: display name (decoded) and address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    /// Display name, decoded (`"Müller, Jürgen"`), when the header has one.
    pub name: Option<String>,
    /// The address (`jm@fabrikam.com`); empty with a warning when the mail has none.
    pub address: String,
}

/// One attachment or inline part. The bytes travel beside the JSON, never base64 in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// The file name the sender gave, decoded (RFC 2231 continuations and charsets, encoded
    /// words), exactly as sent — it may hold a path or characters no file system takes; null
    /// when the part had none. Show it; never use it as a path.
    pub filename: Option<String>,
    /// A safe file name to store the bytes under, always set and unique within the ticket
    /// (case-insensitively; a repeated name gets " (2)", " (3)", ... before its extension): the
    /// sent name without directories, control characters, `<>:"|?*`, leading dots, trailing
    /// dots/spaces or a reserved Windows device name (CON, NUL, COM1, ...), at most 200 bytes;
    /// without a sent name, an attached message's subject + `.eml`, else a name from the
    /// content type (`image.png`, `document.pdf`, `invite.ics`, ...). The spool writes the
    /// bytes under this name and the C API gives it (`pma_batch_attachment_save_as`).
    pub save_as: String,
    /// MIME type, e.g. `application/pdf`.
    pub content_type: String,
    /// Size of the decoded bytes.
    pub size: u64,
    /// An inline part (an image the HTML body shows) rather than a file attachment.
    pub inline: bool,
    /// Content-ID without `<>`, as the HTML body's `cid:` links name it.
    pub content_id: Option<String>,
    /// Hex SHA-256 of the decoded bytes.
    pub sha256: String,
    /// Why the bytes are not carried (`"too_large"`: over `max_attachment_bytes`; `size` and
    /// `sha256` still describe the part as sent). Absent when they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub omitted: Option<Omitted>,
    /// The decoded bytes; empty when omitted (a warning says so), or when they are `pending`.
    #[serde(skip)]
    pub data: Vec<u8>,
    /// The bytes, still encoded in the message, of a large attachment of a ticket built with
    /// [`crate::ticket::build_shared`]: decoded on demand ([`Attachment::write_bytes`],
    /// [`Attachment::bytes`]) rather than held decoded beside the message.
    #[serde(skip)]
    pub pending: Option<super::elide::PendingBytes>,
}

impl Attachment {
    /// Whether the ticket carries this attachment's bytes (in `data`, or `pending`).
    pub fn has_bytes(&self) -> bool {
        !self.data.is_empty() || self.pending.is_some()
    }

    /// Writes the decoded bytes to `out`; pending bytes are decoded in chunks on the way.
    pub fn write_bytes(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        match &self.pending {
            Some(p) if self.data.is_empty() => {
                let mut r = Ok(());
                p.decode(|c| {
                    if r.is_ok() {
                        r = out.write_all(c);
                    }
                });
                r
            }
            _ => out.write_all(&self.data),
        }
    }

    /// The decoded bytes (pending ones decoded into a new buffer).
    pub fn bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match &self.pending {
            Some(p) if self.data.is_empty() => {
                let mut v = Vec::with_capacity(usize::try_from(self.size).unwrap_or(0));
                p.decode(|c| v.extend_from_slice(c));
                std::borrow::Cow::Owned(v)
            }
            _ => std::borrow::Cow::Borrowed(&self.data),
        }
    }
}

/// Why an attachment's bytes are not carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Omitted {
    /// Larger than the mailbox's `max_attachment_bytes`.
    TooLarge,
}

/// Where the ticket belongs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Thread {
    /// The ticket this mail belongs to: from the subject (`#[1234]#`, `[#1234]`, ...) or from a
    /// registered Message-ID the helpdesk sent that this mail replies to.
    pub ticket_number: Option<String>,
    /// In-Reply-To, without `<>`.
    pub in_reply_to: Option<String>,
    /// References, without `<>`, oldest first.
    pub references: Vec<String>,
}

/// From X-Priority, Importance, Priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// X-Priority 1–2, Importance: high, Priority: urgent.
    High,
    /// No or a normal priority header.
    #[default]
    Normal,
    /// X-Priority 4–5, Importance: low, Priority: non-urgent.
    Low,
}

/// Why a message looks machine-generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoGenerated {
    /// Out-of-office and other automatic replies.
    AutoReply,
    /// Delivery status notifications (non-delivery reports).
    Bounce,
    /// Newsletters, mailing lists, notifications.
    Bulk,
    /// The helpdesk's own outgoing mail coming back.
    Loop,
}

/// A ticket built from one email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ticket {
    /// `<folder>:<uidvalidity>:<uid>`, set by the agent; absent for offline `parse`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// The mailbox name from the configuration.
    pub mailbox: String,
    /// Message-ID without `<>`.
    pub message_id: Option<String>,
    /// Stable across re-deliveries: the Message-ID, else `sha256:` of the message.
    pub dedupe_key: String,
    /// Subject, decoded.
    pub subject: String,
    /// The sender.
    pub from: Address,
    /// Reply-To addresses.
    pub reply_to: Vec<Address>,
    /// To addresses.
    pub to: Vec<Address>,
    /// Cc addresses (empty unless `add_ccs`).
    pub cc: Vec<Address>,
    /// Date, RFC 3339 in UTC.
    pub date: Option<String>,
    /// From X-Priority, Importance, Priority.
    pub priority: Priority,
    /// The new text only: quoted history and signature removed (never empty when the mail had text).
    pub body: String,
    /// The whole text body (HTML converted to text when there is no text part).
    pub body_full: String,
    /// The HTML body, when there is one.
    pub body_html: Option<String>,
    /// Attachments and inline parts (empty unless `add_attachments`).
    pub attachments: Vec<Attachment>,
    /// Where the ticket belongs.
    pub thread: Thread,
    /// Why the mail looks machine-generated, if it does.
    pub auto_generated: Option<AutoGenerated>,
    /// What was odd (bad charset, truncated part, oversized attachment, ...).
    pub warnings: Vec<String>,
}
