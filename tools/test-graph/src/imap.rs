//! A small blocking IMAP client for the stand-in's own use: it logs in to the harness's Dovecot as
//! the mailbox user (LOGIN with the harness password, plaintext on loopback) and reads and changes
//! the same store the IMAP transport sees. Responses are parsed into S-expressions (atoms,
//! strings, literals, lists), which is all the commands used here need.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One parsed item of an IMAP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Atom(String),
    Str(Vec<u8>),
    List(Vec<Item>),
    Nil,
}

impl Item {
    /// The text of an atom or string.
    pub fn text(&self) -> Option<String> {
        match self {
            Item::Atom(a) => Some(a.clone()),
            Item::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }
}

/// The untagged responses of one command and its tagged status text.
#[derive(Debug, Default)]
pub struct Reply {
    pub untagged: Vec<Vec<Item>>,
    /// The tagged line's text after the status (e.g. `[COPYUID 1 2 3] Move completed.`).
    pub text: String,
}

/// An IMAP error: the server said NO/BAD (`Refused`), or the connection failed (`Io`).
#[derive(Debug)]
pub enum ImapError {
    Refused(String),
    Io(String),
}

impl std::fmt::Display for ImapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImapError::Refused(t) => write!(f, "IMAP server refused: {t}"),
            ImapError::Io(t) => write!(f, "IMAP connection: {t}"),
        }
    }
}

impl From<std::io::Error> for ImapError {
    fn from(e: std::io::Error) -> Self {
        ImapError::Io(e.to_string())
    }
}

/// One logged-in connection.
pub struct Imap {
    r: BufReader<TcpStream>,
    w: TcpStream,
    tag: u64,
    /// The selected folder and its state from the last SELECT.
    pub selected: Option<String>,
    /// Set when the connection can no longer be trusted (I/O error, BYE).
    pub broken: bool,
    /// When the last command finished (pooled connections idle for long are probed first).
    pub last_used: std::time::Instant,
}

/// What SELECT told about a folder.
#[derive(Debug, Clone, Default)]
pub struct FolderState {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    pub exists: u32,
}

/// Quotes a string for IMAP (as a quoted string, or a literal when it needs one).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl Imap {
    /// Connects to `addr` and logs in as `user`.
    pub fn login(addr: &str, user: &str, password: &str) -> Result<Imap, ImapError> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
        tcp.set_nodelay(true)?;
        let w = tcp.try_clone()?;
        let mut c = Imap {
            r: BufReader::new(tcp),
            w,
            tag: 0,
            selected: None,
            broken: false,
            last_used: std::time::Instant::now(),
        };
        let greeting = c.read_response()?;
        if !matches!(greeting.get(1), Some(Item::Atom(a)) if a.eq_ignore_ascii_case("OK")) {
            return Err(ImapError::Io(format!("unexpected greeting {greeting:?}")));
        }
        c.run(&format!("LOGIN {} {}", quote(user), quote(password)))?;
        Ok(c)
    }

    /// Reads one response (a line with its literals) and parses it.
    fn read_response(&mut self) -> Result<Vec<Item>, ImapError> {
        let mut raw: Vec<u8> = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = self.r.read_until(b'\n', &mut line)?;
            if n == 0 {
                self.broken = true;
                return Err(ImapError::Io("connection closed by the server".into()));
            }
            raw.extend_from_slice(&line);
            // A line ending in {N}\r\n announces a literal of N bytes.
            let trimmed = line.strip_suffix(b"\r\n").unwrap_or(&line);
            if trimmed.ends_with(b"}") {
                if let Some(open) = trimmed.iter().rposition(|c| *c == b'{') {
                    let num = std::str::from_utf8(&trimmed[open + 1..trimmed.len() - 1])
                        .ok()
                        .and_then(|n| n.trim_end_matches('+').parse::<usize>().ok());
                    if let Some(len) = num {
                        let start = raw.len();
                        raw.resize(start + len, 0);
                        self.r.read_exact(&mut raw[start..])?;
                        continue;
                    }
                }
            }
            break;
        }
        Ok(parse(&raw))
    }

    /// Sends a command and collects its responses; NO/BAD become `Refused`.
    pub fn run(&mut self, command: &str) -> Result<Reply, ImapError> {
        self.tag += 1;
        let tag = format!("g{}", self.tag);
        let line = format!("{tag} {command}\r\n");
        if let Err(e) = self.w.write_all(line.as_bytes()) {
            self.broken = true;
            return Err(e.into());
        }
        let mut reply = Reply::default();
        loop {
            let items = match self.read_response() {
                Ok(i) => i,
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            };
            match items.first() {
                Some(Item::Atom(t)) if *t == tag => {
                    self.last_used = std::time::Instant::now();
                    let status = items.get(1).and_then(Item::text).unwrap_or_default();
                    reply.text = items_text(&items[2.min(items.len())..]);
                    if status.eq_ignore_ascii_case("OK") {
                        return Ok(reply);
                    }
                    return Err(ImapError::Refused(format!("{status} {}", reply.text)));
                }
                Some(Item::Atom(t)) if t == "*" => {
                    if matches!(items.get(1), Some(Item::Atom(a)) if a.eq_ignore_ascii_case("BYE"))
                    {
                        self.broken = true;
                    }
                    reply.untagged.push(items[1..].to_vec());
                }
                Some(Item::Atom(t)) if t == "+" => {
                    self.broken = true;
                    return Err(ImapError::Io("unexpected continuation request".into()));
                }
                _ => reply.untagged.push(items),
            }
        }
    }

    /// Selects `folder` (with CONDSTORE) and returns its state.
    pub fn select(&mut self, folder: &str) -> Result<FolderState, ImapError> {
        self.selected = None;
        let r = self.run(&format!("SELECT {} (CONDSTORE)", quote(folder)))?;
        let mut st = FolderState::default();
        for u in &r.untagged {
            match u.as_slice() {
                [Item::Atom(n), Item::Atom(e), ..] if e.eq_ignore_ascii_case("EXISTS") => {
                    st.exists = n.parse().unwrap_or(0)
                }
                [Item::Atom(ok), rest @ ..] if ok.eq_ignore_ascii_case("OK") => {
                    let t = items_text(rest);
                    let code = t.trim_start_matches('[');
                    let mut w = code.split([' ', ']']);
                    match (w.next(), w.next()) {
                        (Some("UIDVALIDITY"), Some(v)) => st.uidvalidity = v.parse().unwrap_or(0),
                        (Some("UIDNEXT"), Some(v)) => st.uidnext = v.parse().unwrap_or(0),
                        (Some("HIGHESTMODSEQ"), Some(v)) => {
                            st.highestmodseq = v.parse().unwrap_or(0)
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        self.selected = Some(folder.to_string());
        Ok(st)
    }

    /// The UIDs of every message in the selected folder (ESEARCH, compact for big folders).
    pub fn all_uids(&mut self) -> Result<Vec<u32>, ImapError> {
        let r = self.run("UID SEARCH RETURN (ALL) ALL")?;
        let mut out = Vec::new();
        for u in &r.untagged {
            if !matches!(u.first(), Some(Item::Atom(a)) if a.eq_ignore_ascii_case("ESEARCH")) {
                continue;
            }
            let mut it = u.iter();
            while let Some(i) = it.next() {
                if matches!(i, Item::Atom(a) if a.eq_ignore_ascii_case("ALL")) {
                    if let Some(set) = it.next().and_then(Item::text) {
                        out.extend(expand_set(&set));
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// FETCH responses of a UID FETCH: per message its attributes as (name, value) pairs.
    pub fn uid_fetch(
        &mut self,
        set: &str,
        items: &str,
    ) -> Result<Vec<Vec<(String, Item)>>, ImapError> {
        let r = self.run(&format!("UID FETCH {set} {items}"))?;
        let mut out = Vec::new();
        for u in r.untagged {
            if let [Item::Atom(_), Item::Atom(f), Item::List(attrs)] = u.as_slice() {
                if !f.eq_ignore_ascii_case("FETCH") {
                    continue;
                }
                let mut pairs = Vec::new();
                let mut it = attrs.iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k.text().unwrap_or_default().to_ascii_uppercase(), v.clone()));
                }
                out.push(pairs);
            }
        }
        Ok(out)
    }

    /// LIST "" "*": (name, attributes) of every folder.
    pub fn list(&mut self) -> Result<Vec<(String, Vec<String>)>, ImapError> {
        let r = self.run("LIST \"\" \"*\"")?;
        let mut out = Vec::new();
        for u in r.untagged {
            if let [Item::Atom(l), Item::List(attrs), _, name] = u.as_slice() {
                if l.eq_ignore_ascii_case("LIST") {
                    let attrs = attrs.iter().filter_map(Item::text).collect();
                    out.push((name.text().unwrap_or_default(), attrs));
                }
            }
        }
        Ok(out)
    }

    /// STATUS counts (MESSAGES, UNSEEN) of a folder.
    pub fn status(&mut self, folder: &str) -> Result<(u32, u32), ImapError> {
        let r = self.run(&format!("STATUS {} (MESSAGES UNSEEN)", quote(folder)))?;
        let (mut total, mut unseen) = (0, 0);
        for u in r.untagged {
            if let [Item::Atom(s), _, Item::List(kv)] = u.as_slice() {
                if s.eq_ignore_ascii_case("STATUS") {
                    let mut it = kv.iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        let v = v.text().and_then(|v| v.parse().ok()).unwrap_or(0);
                        match k.text().unwrap_or_default().to_ascii_uppercase().as_str() {
                            "MESSAGES" => total = v,
                            "UNSEEN" => unseen = v,
                            _ => {}
                        }
                    }
                }
            }
        }
        Ok((total, unseen))
    }
}

/// The text of items, re-joined with spaces (for status texts and response codes).
fn items_text(items: &[Item]) -> String {
    items
        .iter()
        .map(|i| match i {
            Item::List(l) => format!("({})", items_text(l)),
            Item::Nil => "NIL".into(),
            other => other.text().unwrap_or_default(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Decodes a modified UTF-7 folder name (RFC 3501 5.1.3; Dovecot without UTF8=ACCEPT).
pub fn mutf7_decode(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(end) = after.find('-') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let enc = &after[..end];
        if enc.is_empty() {
            out.push('&');
        } else {
            let bytes = crate::util::b64url_decode(&enc.replace(',', "/")).unwrap_or_default();
            let units: Vec<u16> = bytes
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            out.push_str(&String::from_utf16_lossy(&units));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Expands an IMAP sequence set (`1:3,7`) into numbers.
pub fn expand_set(set: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in set.split(',') {
        match part.split_once(':') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a.min(b)..=a.max(b));
                }
            }
            None => {
                if let Ok(n) = part.parse() {
                    out.push(n);
                }
            }
        }
    }
    out
}

/// A compact IMAP set for sorted numbers.
pub fn compact_set(uids: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// Parses one response (with literals inline) into items.
pub fn parse(raw: &[u8]) -> Vec<Item> {
    let mut i = 0;
    let mut stack: Vec<Vec<Item>> = vec![Vec::new()];
    while i < raw.len() {
        let c = raw[i];
        match c {
            b' ' | b'\r' | b'\n' => i += 1,
            b'(' => {
                stack.push(Vec::new());
                i += 1;
            }
            b')' => {
                i += 1;
                if stack.len() > 1 {
                    let l = stack.pop().unwrap_or_default();
                    if let Some(top) = stack.last_mut() {
                        top.push(Item::List(l));
                    }
                }
            }
            b'"' => {
                let mut s = Vec::new();
                i += 1;
                while i < raw.len() && raw[i] != b'"' {
                    if raw[i] == b'\\' && i + 1 < raw.len() {
                        i += 1;
                    }
                    s.push(raw[i]);
                    i += 1;
                }
                i += 1;
                if let Some(top) = stack.last_mut() {
                    top.push(Item::Str(s));
                }
            }
            b'{' => {
                let close = raw[i..].iter().position(|c| *c == b'}').map(|p| p + i);
                let len = close.and_then(|cl| {
                    std::str::from_utf8(&raw[i + 1..cl])
                        .ok()
                        .and_then(|n| n.trim_end_matches('+').parse::<usize>().ok())
                });
                match (close, len) {
                    (Some(cl), Some(len)) => {
                        let start = (cl + 3).min(raw.len()); // "}\r\n"
                        let end = (start + len).min(raw.len());
                        if let Some(top) = stack.last_mut() {
                            top.push(Item::Str(raw[start..end].to_vec()));
                        }
                        i = end;
                    }
                    _ => i += 1,
                }
            }
            _ => {
                // An atom; brackets (BODY[HEADER.FIELDS (A B)], [COPYUID ...]) are kept whole.
                let start = i;
                let mut depth = 0;
                while i < raw.len() {
                    let c = raw[i];
                    if c == b'[' {
                        depth += 1;
                    } else if c == b']' {
                        depth -= 1;
                    } else if depth <= 0 && matches!(c, b' ' | b'(' | b')' | b'\r' | b'\n') {
                        break;
                    }
                    i += 1;
                }
                let a = String::from_utf8_lossy(&raw[start..i]).into_owned();
                if let Some(top) = stack.last_mut() {
                    top.push(if a.eq_ignore_ascii_case("NIL") {
                        Item::Nil
                    } else {
                        Item::Atom(a)
                    });
                }
            }
        }
    }
    while stack.len() > 1 {
        let l = stack.pop().unwrap_or_default();
        if let Some(top) = stack.last_mut() {
            top.push(Item::List(l));
        }
    }
    stack.pop().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fetch_with_literal() {
        let raw = b"* 3 FETCH (UID 7 FLAGS (\\Seen $X) MODSEQ (12) BODY[HEADER.FIELDS (SUBJECT)] {9}\r\nSubj: a\r\n INTERNALDATE \"08-Dec-2026 01:00:00 +0000\")\r\n";
        let items = parse(raw);
        let Item::List(attrs) = &items[3] else {
            panic!("{items:?}")
        };
        assert_eq!(attrs[0], Item::Atom("UID".into()));
        assert_eq!(
            attrs[3],
            Item::List(vec![Item::Atom("\\Seen".into()), Item::Atom("$X".into())])
        );
        assert_eq!(attrs[6], Item::Atom("BODY[HEADER.FIELDS (SUBJECT)]".into()));
        assert_eq!(attrs[7], Item::Str(b"Subj: a\r\n".to_vec()));
        assert_eq!(attrs[9], Item::Str(b"08-Dec-2026 01:00:00 +0000".to_vec()));
    }

    #[test]
    fn modified_utf7() {
        assert_eq!(mutf7_decode("INBOX/B&APw-ro"), "INBOX/Büro");
        assert_eq!(mutf7_decode("A&-B"), "A&B");
        assert_eq!(mutf7_decode("&ZeVnLIqe-"), "日本語");
        assert_eq!(mutf7_decode("plain"), "plain");
    }

    #[test]
    fn sets() {
        assert_eq!(expand_set("1:3,7,9:8"), vec![1, 2, 3, 7, 8, 9]);
        assert_eq!(compact_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(compact_set(&[]), "");
    }
}
