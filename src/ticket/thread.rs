//! Threading: which ticket a mail belongs to.
//!
//! Two sources: a ticket number in the subject (the PSA's notification subjects carry a token
//! such as `#[1234]#`, and people keep it when replying), and the Message-IDs the helpdesk sent,
//! which replies name in In-Reply-To / References ([`ThreadIndex`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// One subject pattern: literal text around a placeholder. `{n}` matches digits, `{id}` a
/// token of letters, digits, `.`, `-`, `_` holding at least one digit (`T20240101.0001`).
/// Letters match case-insensitively; a space matches any run of whitespace, including none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketPattern {
    prefix: String,
    kind: Placeholder,
    suffix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    Digits,
    Token,
}

impl TicketPattern {
    /// Parses `prefix{n}suffix` or `prefix{id}suffix`. None when there is no placeholder or
    /// the prefix is empty (a bare number would match any digits in a subject).
    pub fn new(pattern: &str) -> Option<TicketPattern> {
        let (kind, at, len) = if let Some(at) = pattern.find("{n}") {
            (Placeholder::Digits, at, 3)
        } else if let Some(at) = pattern.find("{id}") {
            (Placeholder::Token, at, 4)
        } else {
            return None;
        };
        let prefix = pattern[..at].to_string();
        if prefix.trim().is_empty() {
            return None;
        }
        Some(TicketPattern {
            prefix,
            kind,
            suffix: pattern[at + len..].to_string(),
        })
    }

    /// The first ticket number this pattern finds in `subject`.
    pub fn find(&self, subject: &str) -> Option<String> {
        let s = subject.as_bytes();
        for start in 0..s.len() {
            if !subject.is_char_boundary(start) {
                continue;
            }
            let Some(after_prefix) = match_literal(s, start, self.prefix.as_bytes()) else {
                continue;
            };
            let mut end = after_prefix;
            while end < s.len()
                && match self.kind {
                    Placeholder::Digits => s[end].is_ascii_digit(),
                    Placeholder::Token => {
                        s[end].is_ascii_alphanumeric() || matches!(s[end], b'.' | b'-' | b'_')
                    }
                }
            {
                end += 1;
            }
            // A token does not end in punctuation ("#1234." at the end of a sentence).
            if self.kind == Placeholder::Token {
                while end > after_prefix && matches!(s[end - 1], b'.' | b'-' | b'_') {
                    end -= 1;
                }
            }
            let value = &subject[after_prefix..end];
            if value.is_empty() || !value.bytes().any(|b| b.is_ascii_digit()) {
                continue;
            }
            // Digits must not run on into letters ("#123abc" is no ticket 123).
            if self.kind == Placeholder::Digits
                && self.suffix.is_empty()
                && s.get(end).is_some_and(|c| c.is_ascii_alphanumeric())
            {
                continue;
            }
            if match_literal(s, end, self.suffix.as_bytes()).is_some() {
                return Some(value.to_string());
            }
        }
        None
    }
}

/// Matches `lit` at `s[at..]`: ASCII case-insensitive, a space in `lit` matching any run of
/// whitespace (or none). Returns the end position.
fn match_literal(s: &[u8], at: usize, lit: &[u8]) -> Option<usize> {
    let mut i = at;
    for &c in lit {
        if c == b' ' {
            while i < s.len() && s[i].is_ascii_whitespace() {
                i += 1;
            }
            continue;
        }
        if i < s.len() && s[i].eq_ignore_ascii_case(&c) {
            i += 1;
        } else {
            return None;
        }
    }
    Some(i)
}

/// The default subject patterns: PSA tokens `#[1234]#`, `[#1234]`, `Ticket #1234`,
/// `[Ticket:1234]`, `Ticket#T20240101.0001` and `[Ticket ID: 1234]`.
pub fn default_patterns() -> Vec<TicketPattern> {
    [
        "#[{id}]#",
        "[#{n}]",
        "[Ticket:{id}]",
        "[Ticket #{n}]",
        "[Ticket ID: {n}]",
        "Ticket #{n}",
        "Ticket# {id}",
        "Ticket ID: {n}",
    ]
    .iter()
    .filter_map(|p| TicketPattern::new(p))
    .collect()
}

/// The ticket number named in `subject` by the first pattern that matches.
pub fn ticket_number_in_subject(subject: &str, patterns: &[TicketPattern]) -> Option<String> {
    patterns.iter().find_map(|p| p.find(subject))
}

/// Reply and forward prefixes in the languages helpdesks see (compared case-insensitively,
/// followed by ':' and optionally a counter like `Re[2]:` or `Re(2):`).
const PREFIXES: &[&str] = &[
    "re", "fw", "fwd", "aw", "wg", "sv", "vs", "tr", "antw", "antwort", "r", "rif", "réf", "ref",
    "rv", "enc", "res", "odp", "pd", "vl", "ynt", "ilt", "fs", "doorst", "wtrd", "答复", "回复",
    "转发", "返信", "転送",
];

/// The subject without reply/forward prefixes (`Re:`, `AW:`, `Fwd:`, `Réf. :`… repeated and
/// nested, with counters like `Re[2]:`) and leading `[EXTERNAL]`-style tags.
pub fn normalize_subject(subject: &str) -> String {
    let mut s = subject.trim();
    loop {
        let before = s;
        s = s.trim_start();
        // Leading tags such as [EXTERNAL], [EXT], [SPAM], (EXTERNAL), *EXTERNAL*.
        for (open, close) in [('[', ']'), ('(', ')'), ('*', '*')] {
            if let Some(rest) = s.strip_prefix(open) {
                if let Some(end) = rest.find(close) {
                    let tag = rest[..end].trim().to_ascii_lowercase();
                    if matches!(
                        tag.as_str(),
                        "external"
                            | "ext"
                            | "extern"
                            | "externe"
                            | "spam"
                            | "suspicious"
                            | "warning: external"
                            | "caution"
                            | "extern email"
                            | "external email"
                            | "externe e-mail"
                            | "externe mail"
                    ) {
                        s = &rest[end + 1..];
                    }
                }
            }
        }
        s = s.trim_start();
        if let Some(rest) = strip_reply_prefix(s) {
            s = rest;
        }
        if s == before {
            break;
        }
    }
    s.trim().to_string()
}

fn strip_reply_prefix(s: &str) -> Option<&str> {
    let word_end = s
        .char_indices()
        .find(|(_, c)| !c.is_alphabetic())
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let word = &s[..word_end];
    if word.is_empty() {
        return None;
    }
    let lower = word.to_lowercase();
    if !PREFIXES.contains(&lower.as_str()) {
        return None;
    }
    let mut rest = &s[word_end..];
    // Counters: Re[2]:, Re(2):, Re^2:
    for (open, close) in [('[', ']'), ('(', ')')] {
        if let Some(r) = rest.strip_prefix(open) {
            if let Some(end) = r.find(close) {
                if r[..end].chars().all(|c| c.is_ascii_digit()) {
                    rest = &r[end + 1..];
                }
            }
        }
    }
    // "Réf. :", "Antw.:", "TR :" (French puts a space before the colon).
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    let rest = rest.trim_start_matches([' ', '\u{a0}']);
    let rest = rest.strip_prefix(':').or_else(|| rest.strip_prefix('：'))?;
    Some(rest)
}

/// Message-IDs the helpdesk sent, mapped to their ticket numbers, so replies that keep only
/// In-Reply-To/References (and an edited subject) still find their ticket. Bounded: beyond
/// `capacity` the least recently used entry goes. Thread-safe; shared through an `Arc`.
pub struct ThreadIndex {
    capacity: usize,
    inner: Mutex<IndexInner>,
}

#[derive(Debug, Default)]
struct IndexInner {
    map: HashMap<String, (String, u64)>,
    order: VecDeque<(String, u64)>,
    clock: u64,
}

impl std::fmt::Debug for ThreadIndex {
    /// Sizes only: the entries can be many, and logs need not list them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadIndex")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

const INDEX_HEADER: &str = "# psa-mail-agent thread index v1";

impl ThreadIndex {
    /// An empty index holding at most `capacity` Message-IDs (at least 1).
    pub fn new(capacity: usize) -> ThreadIndex {
        ThreadIndex {
            capacity: capacity.max(1),
            inner: Mutex::new(IndexInner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IndexInner> {
        // A panic elsewhere while holding the lock leaves a consistent map (every mutation is
        // a single insert/remove), so the poison flag can be ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers that the helpdesk sent `message_id` (with or without <>) for `ticket`.
    /// Values containing line breaks or tabs are refused (they would break the saved form).
    pub fn insert(&self, message_id: &str, ticket: &str) -> bool {
        let id = strip_angle(message_id);
        let ticket = ticket.trim();
        if id.is_empty()
            || ticket.is_empty()
            || id.contains(['\n', '\r', '\t'])
            || ticket.contains(['\n', '\r', '\t'])
        {
            return false;
        }
        let mut g = self.lock();
        g.clock += 1;
        let stamp = g.clock;
        g.map.insert(id.to_string(), (ticket.to_string(), stamp));
        g.order.push_back((id.to_string(), stamp));
        self.evict(&mut g);
        true
    }

    fn evict(&self, g: &mut IndexInner) {
        while g.map.len() > self.capacity {
            let Some((id, stamp)) = g.order.pop_front() else {
                break;
            };
            if g.map.get(&id).is_some_and(|(_, s)| *s == stamp) {
                g.map.remove(&id);
            }
        }
        // Stale queue entries (refreshed ids) are dropped once they dominate.
        if g.order.len() > self.capacity * 2 + 16 {
            let map = &g.map;
            let fresh: VecDeque<(String, u64)> = g
                .order
                .iter()
                .filter(|(id, st)| map.get(id).is_some_and(|(_, s)| s == st))
                .cloned()
                .collect();
            g.order = fresh;
        }
    }

    /// The ticket number for a Message-ID the helpdesk sent; refreshes its place in the LRU.
    pub fn lookup(&self, message_id: &str) -> Option<String> {
        let id = strip_angle(message_id);
        let mut g = self.lock();
        g.clock += 1;
        let stamp = g.clock;
        let ticket = {
            let entry = g.map.get_mut(id)?;
            entry.1 = stamp;
            entry.0.clone()
        };
        g.order.push_back((id.to_string(), stamp));
        self.evict(&mut g);
        Some(ticket)
    }

    /// Whether the helpdesk sent this Message-ID (no LRU refresh).
    pub fn contains(&self, message_id: &str) -> bool {
        self.lock().map.contains_key(strip_angle(message_id))
    }

    /// How many Message-IDs are remembered.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index as text, one `message_id<TAB>ticket` per line, oldest first, for the agent's
    /// state file.
    pub fn save(&self) -> Vec<u8> {
        let g = self.lock();
        let mut entries: Vec<(&String, &(String, u64))> = g.map.iter().collect();
        entries.sort_by_key(|(_, (_, stamp))| *stamp);
        let mut out = String::with_capacity(entries.len() * 64 + 40);
        out.push_str(INDEX_HEADER);
        out.push('\n');
        for (id, (ticket, _)) in entries {
            out.push_str(id);
            out.push('\t');
            out.push_str(ticket);
            out.push('\n');
        }
        out.into_bytes()
    }

    /// Loads what [`ThreadIndex::save`] wrote. Malformed lines are skipped (a damaged state
    /// file loses those entries, not the agent); beyond `capacity` the oldest go.
    pub fn load(bytes: &[u8], capacity: usize) -> ThreadIndex {
        let index = ThreadIndex::new(capacity);
        let text = String::from_utf8_lossy(bytes);
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some((id, ticket)) = line.split_once('\t') {
                index.insert(id, ticket);
            }
        }
        index
    }
}

/// A Message-ID without surrounding whitespace and angle brackets.
pub fn strip_angle(id: &str) -> &str {
    let id = id.trim();
    let id = id.strip_prefix('<').unwrap_or(id);
    let id = id.strip_suffix('>').unwrap_or(id);
    id.trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_patterns_find_numbers() {
        let p = default_patterns();
        let cases = [
            (
                "RE: Printer broken #[T20240101.0042]#",
                Some("T20240101.0042"),
            ),
            ("AW: [#1234] Outlook crashes", Some("1234")),
            ("Re: Ticket #98765 - VPN", Some("98765")),
            ("Fwd: [Ticket:555] update", Some("555")),
            ("RE: ticket#T20231123.0012", Some("T20231123.0012")),
            ("Invoice 2024 #12", None),
            ("Ticket #abc", None),
            ("Order [#12a]", None),
            ("", None),
        ];
        for (subject, want) in cases {
            assert_eq!(
                ticket_number_in_subject(subject, &p).as_deref(),
                want,
                "{subject}"
            );
        }
    }

    #[test]
    fn custom_pattern() {
        let p = [TicketPattern::new("CASE-{n}").unwrap()];
        assert_eq!(
            ticket_number_in_subject("Re: case-0042 done", &p).as_deref(),
            Some("0042")
        );
        assert!(TicketPattern::new("{n}").is_none());
        assert!(TicketPattern::new("no placeholder").is_none());
    }

    #[test]
    fn normalizes_subjects() {
        for (s, want) in [
            ("Re: RE: Fwd: Printer", "Printer"),
            ("AW: WG: Drucker", "Drucker"),
            ("Réf. : TR : Imprimante", "Imprimante"),
            ("SV: VS: Skrivare", "Skrivare"),
            ("Antw: Re[2]: Printer", "Printer"),
            ("R: RE: Stampante", "Stampante"),
            ("[EXTERNAL] RE: [EXTERNAL] FW: VPN", "VPN"),
            ("Re:Re:x", "x"),
            ("Reply needed", "Reply needed"),
            ("Research: results", "Research: results"),
            ("", ""),
        ] {
            assert_eq!(normalize_subject(s), want, "{s}");
        }
    }

    #[test]
    fn index_lru_and_persistence() {
        let idx = ThreadIndex::new(2);
        assert!(idx.insert("<a@x>", "1"));
        assert!(idx.insert("b@x", "2"));
        assert_eq!(idx.lookup("a@x").as_deref(), Some("1")); // a is now most recent
        idx.insert("c@x", "3"); // evicts b
        assert_eq!(idx.lookup("<b@x>"), None);
        assert_eq!(idx.lookup("a@x").as_deref(), Some("1"));
        assert_eq!(idx.len(), 2);
        assert!(!idx.insert("bad\nid", "4"));
        assert_eq!(format!("{idx:?}"), "ThreadIndex { capacity: 2, len: 2 }");

        let saved = idx.save();
        let text = String::from_utf8(saved.clone()).unwrap();
        assert!(text.starts_with(INDEX_HEADER));
        let loaded = ThreadIndex::load(&saved, 10);
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded.lookup("c@x").as_deref(), Some("3"));
        let garbage = ThreadIndex::load(b"\xff\xfe\nno tab here\n\tempty-id\nok@x\t9\n", 10);
        assert_eq!(garbage.len(), 1);
        assert_eq!(garbage.lookup("ok@x").as_deref(), Some("9"));
    }

    #[test]
    fn index_queue_stays_bounded_under_lookups() {
        let idx = ThreadIndex::new(3);
        idx.insert("a", "1");
        for _ in 0..10_000 {
            idx.lookup("a");
        }
        assert!(idx.lock().order.len() < 100);
    }
}
