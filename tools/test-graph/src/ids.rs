//! Graph ids and sync tokens. Folder ids encode the IMAP folder name, message ids the folder,
//! UIDVALIDITY and UID (stable as long as the message stays where it is; a move gives a new id,
//! as in Exchange). Delta and skip tokens encode the whole sync state, so they survive a restart
//! of the stand-in: the folder, `$select`, the modseq and UID set the client has seen, and for a
//! page inside a round also the round's snapshot and cursor.

use crate::util::{b64url_decode, b64url_pad};

const FOLDER_PREFIX: &str = "AQMkAD";
const MESSAGE_PREFIX: &str = "AAMkAG";

/// The Graph id of an IMAP folder (`""` is the root, msgfolderroot).
pub fn folder_id(name: &str) -> String {
    let mut b = b"F\0".to_vec();
    b.extend_from_slice(name.as_bytes());
    format!("{FOLDER_PREFIX}{}", b64url_pad(&b))
}

/// The IMAP folder of a Graph folder id.
pub fn parse_folder_id(id: &str) -> Option<String> {
    let b = b64url_decode(id.strip_prefix(FOLDER_PREFIX)?)?;
    let name = b.strip_prefix(b"F\0")?;
    String::from_utf8(name.to_vec()).ok()
}

/// Where a message is: folder, UIDVALIDITY, UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub folder: String,
    pub uidvalidity: u32,
    pub uid: u32,
}

/// The Graph id of a message (zero bytes pad it so it ends in `=`, as Exchange's ids do).
pub fn message_id(m: &MessageRef) -> String {
    let mut b = b"M\0".to_vec();
    b.extend_from_slice(&m.uidvalidity.to_be_bytes());
    b.extend_from_slice(&m.uid.to_be_bytes());
    b.extend_from_slice(m.folder.as_bytes());
    while b.len() % 3 != 2 {
        b.push(0);
    }
    format!("{MESSAGE_PREFIX}{}", b64url_pad(&b))
}

/// The message a Graph id names.
pub fn parse_message_id(id: &str) -> Option<MessageRef> {
    let b = b64url_decode(id.strip_prefix(MESSAGE_PREFIX)?)?;
    let rest = b.strip_prefix(b"M\0")?;
    if rest.len() < 8 {
        return None;
    }
    let folder = &rest[8..];
    let end = folder.iter().rposition(|c| *c != 0).map_or(0, |p| p + 1);
    Some(MessageRef {
        folder: String::from_utf8(folder[..end].to_vec()).ok()?,
        uidvalidity: u32::from_be_bytes(rest[0..4].try_into().ok()?),
        uid: u32::from_be_bytes(rest[4..8].try_into().ok()?),
    })
}

/// A sync token: a delta link's state (`page: None`), or a page inside a round.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncToken {
    /// When the token was issued (ms since the epoch), for `expire_delta`.
    pub issued_ms: u64,
    /// The mailbox (lower case) and folder the token belongs to.
    pub mailbox: String,
    pub folder: String,
    /// The `$filter` of the round's first request (`receivedDateTime ge …`; empty: none).
    pub filter: String,
    /// The `$select` of the round's first request (empty: the default properties).
    pub select: String,
    pub uidvalidity: u32,
    /// What the client has seen: highest modseq and the UIDs present then.
    pub base_modseq: u64,
    pub base_uids: Vec<u32>,
    /// Inside a round: the round's snapshot and where the next page starts.
    pub page: Option<Page>,
}

/// A page position inside a round.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub snap_modseq: u64,
    pub snap_uids: Vec<u32>,
    /// 0: still reporting removed messages, 1: changed ones.
    pub phase: u8,
    /// Last UID reported in this phase.
    pub cursor: u32,
}

fn put_var(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_var(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_uids(out: &mut Vec<u8>, uids: &[u32]) {
    // Runs of consecutive UIDs: (gap from the previous run's end, length).
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &u in uids {
        match runs.last_mut() {
            Some((s, l)) if *s + *l == u => *l += 1,
            _ => runs.push((u, 1)),
        }
    }
    put_var(out, runs.len() as u64);
    let mut prev = 0u32;
    for (s, l) in runs {
        put_var(out, u64::from(s - prev));
        put_var(out, u64::from(l));
        prev = s + l;
    }
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn var(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.b.get(self.i)?;
            self.i += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn bytes(&mut self) -> Option<&[u8]> {
        let n = usize::try_from(self.var()?).ok()?;
        let s = self.b.get(self.i..self.i.checked_add(n)?)?;
        self.i += n;
        Some(s)
    }
    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    fn uids(&mut self) -> Option<Vec<u32>> {
        let runs = self.var()?;
        let mut out = Vec::new();
        let mut prev: u64 = 0;
        for _ in 0..runs {
            let s = prev.checked_add(self.var()?)?;
            let l = self.var()?;
            if s + l > u64::from(u32::MAX) + 1 || out.len() as u64 + l > 50_000_000 {
                return None;
            }
            out.extend((s..s + l).map(|u| u as u32));
            prev = s + l;
        }
        Some(out)
    }
}

impl SyncToken {
    /// The token's text (base64url without padding, as Graph's tokens look).
    pub fn encode(&self) -> String {
        let mut b = vec![1u8];
        put_var(&mut b, self.issued_ms);
        put_bytes(&mut b, self.mailbox.as_bytes());
        put_bytes(&mut b, self.folder.as_bytes());
        put_bytes(&mut b, self.filter.as_bytes());
        put_bytes(&mut b, self.select.as_bytes());
        put_var(&mut b, u64::from(self.uidvalidity));
        put_var(&mut b, self.base_modseq);
        put_uids(&mut b, &self.base_uids);
        match &self.page {
            None => b.push(0),
            Some(p) => {
                b.push(1);
                put_var(&mut b, p.snap_modseq);
                put_uids(&mut b, &p.snap_uids);
                b.push(p.phase);
                put_var(&mut b, u64::from(p.cursor));
            }
        }
        b64url_pad(&b).trim_end_matches('=').to_string()
    }

    /// Reads a token; `None` when it is not one of ours.
    pub fn decode(s: &str) -> Option<SyncToken> {
        let b = b64url_decode(s)?;
        let mut r = Reader { b: &b, i: 0 };
        if *r.b.first()? != 1 {
            return None;
        }
        r.i = 1;
        let mut t = SyncToken {
            issued_ms: r.var()?,
            mailbox: r.text()?,
            folder: r.text()?,
            filter: r.text()?,
            select: r.text()?,
            uidvalidity: u32::try_from(r.var()?).ok()?,
            base_modseq: r.var()?,
            base_uids: r.uids()?,
            page: None,
        };
        let kind = *r.b.get(r.i)?;
        r.i += 1;
        if kind == 1 {
            let snap_modseq = r.var()?;
            let snap_uids = r.uids()?;
            let phase = *r.b.get(r.i)?;
            r.i += 1;
            t.page = Some(Page {
                snap_modseq,
                snap_uids,
                phase,
                cursor: u32::try_from(r.var()?).ok()?,
            });
        }
        (r.i == b.len()).then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for f in ["INBOX", "INBOX/Support", "", "Déjà vu"] {
            assert_eq!(parse_folder_id(&folder_id(f)).as_deref(), Some(f));
        }
        let m = MessageRef {
            folder: "INBOX/Support".into(),
            uidvalidity: 1_765_000_000,
            uid: 4242,
        };
        let id = message_id(&m);
        assert!(id.starts_with("AAMkAG") && id.ends_with('='), "{id}");
        assert_eq!(parse_message_id(&id), Some(m));
        for folder in ["", "A", "AB", "ABC"] {
            let m = MessageRef {
                folder: folder.into(),
                uidvalidity: 0,
                uid: 256,
            };
            let id = message_id(&m);
            assert!(id.ends_with('='), "{id}");
            assert_eq!(parse_message_id(&id), Some(m));
        }
        assert_eq!(parse_message_id("AAMkAGnope"), None);
        assert_eq!(parse_folder_id(&id), None);
    }

    #[test]
    fn tokens_round_trip() {
        let mut t = SyncToken {
            issued_ms: 1_765_000_000_123,
            mailbox: "a@contoso.test".into(),
            folder: "INBOX".into(),
            filter: String::new(),
            select: "id,isRead".into(),
            uidvalidity: 7,
            base_modseq: 99,
            base_uids: vec![1, 2, 3, 10, 12, 13],
            page: None,
        };
        assert_eq!(SyncToken::decode(&t.encode()), Some(t.clone()));
        t.page = Some(Page {
            snap_modseq: 120,
            snap_uids: (1..=10_000).collect(),
            phase: 1,
            cursor: 5000,
        });
        let text = t.encode();
        assert!(text.len() < 100, "compact: {}", text.len());
        assert_eq!(SyncToken::decode(&text), Some(t));
        assert_eq!(SyncToken::decode("garbage"), None);
        assert_eq!(SyncToken::decode(""), None);
    }
}
