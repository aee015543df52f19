//! IMAP wire pieces: a cancel-safe buffered reader (lines, whole responses with their literals),
//! command parsing, and the translation between Exchange's folder names and Dovecot's.

use futures::io::{AsyncRead, AsyncReadExt};
use std::io;

/// Longest line or response we buffer (a message body arrives as a literal, counted apart).
const MAX_LINE: usize = 1 << 20;
/// Largest literal accepted (Exchange allows messages up to 150 MB).
pub const MAX_LITERAL: usize = 160 << 20;

/// A buffered reader whose reads may be cancelled (dropped inside `select!`) without losing
/// bytes: data is consumed from the buffer only when a whole unit is returned.
pub struct Reader<R> {
    inner: R,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(inner: R) -> Self {
        Reader {
            inner,
            buf: Vec::new(),
        }
    }

    async fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.inner.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// One line with its CRLF; `None` at the end of the stream.
    pub async fn line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                return Ok(Some(self.buf.drain(..=nl).collect()));
            }
            if self.buf.len() > MAX_LINE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Exactly `n` bytes (a literal).
    pub async fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// One server response: a line and, when it announces literals, the literals and the lines
    /// that continue it. `None` at the end of the stream.
    pub async fn unit(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            let mut pos = 0;
            let complete = loop {
                let Some(nl) = self.buf[pos..].iter().position(|&b| b == b'\n') else {
                    break None;
                };
                let end = pos + nl + 1;
                match literal_len(&self.buf[pos..end]) {
                    Some((n, _)) if n <= MAX_LITERAL => {
                        pos = end + n;
                        if self.buf.len() < pos {
                            break None;
                        }
                    }
                    Some(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "literal too big",
                        ))
                    }
                    None => break Some(end),
                }
            };
            if let Some(end) = complete {
                return Ok(Some(self.buf.drain(..end).collect()));
            }
            if self.buf.len() > MAX_LITERAL + MAX_LINE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "response too big",
                ));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }
}

/// The literal announced at the end of `line` (`{n}` or `{n+}` before CRLF): (n, non-synchronizing).
pub fn literal_len(line: &[u8]) -> Option<(usize, bool)> {
    let line = trim_crlf(line);
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut digits = &inner[open + 1..];
    let plus = digits.ends_with(b"+");
    if plus {
        digits = &digits[..digits.len() - 1];
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.len() > 12 {
        return None;
    }
    std::str::from_utf8(digits)
        .ok()?
        .parse()
        .ok()
        .map(|n| (n, plus))
}

pub fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A client command: text pieces, each (but the last) followed by a literal.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Command {
    /// `texts[i]` is followed by `literals[i]`; `texts.len() == literals.len() + 1`.
    pub texts: Vec<Vec<u8>>,
    pub literals: Vec<Vec<u8>>,
}

impl Command {
    /// The tag, and the command name upper-cased (`UID FETCH` gives `FETCH` with `uid` true).
    pub fn head(&self) -> (String, String, bool) {
        let first = String::from_utf8_lossy(&self.texts[0]).into_owned();
        let mut words = first.split(' ');
        let tag = words.next().unwrap_or("").to_string();
        let mut verb = words.next().unwrap_or("").to_ascii_uppercase();
        let uid = verb == "UID";
        if uid {
            verb = words.next().unwrap_or("").to_ascii_uppercase();
        }
        (tag, verb, uid)
    }

    /// The words after the command name in the first text piece (enough for AUTHENTICATE).
    pub fn args(&self) -> Vec<String> {
        let first = String::from_utf8_lossy(&self.texts[0]).into_owned();
        let skip = if self.head().2 { 3 } else { 2 };
        first
            .split(' ')
            .skip(skip)
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The command for the back end with `tag` instead of the client's, every literal sent as
    /// LITERAL+ (the client already got its continuations from us).
    pub fn to_backend(&self, tag: Option<&str>) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, text) in self.texts.iter().enumerate() {
            let text: &[u8] = if i == 0 {
                if let Some(t) = tag {
                    let rest = text
                        .iter()
                        .position(|&b| b == b' ')
                        .map(|p| &text[p..])
                        .unwrap_or(b"");
                    out.extend_from_slice(t.as_bytes());
                    rest
                } else {
                    text
                }
            } else {
                text
            };
            out.extend_from_slice(text);
            if let Some(lit) = self.literals.get(i) {
                out.extend_from_slice(format!("{{{}+}}\r\n", lit.len()).as_bytes());
                out.extend_from_slice(lit);
            }
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Replaces Exchange's folder names by the back end's (for commands naming folders).
    pub fn map_folders_in(&mut self) {
        for text in &mut self.texts {
            for (exchange, dovecot) in FOLDERS {
                *text = replace_quoted(text, exchange, dovecot);
            }
        }
        for lit in &mut self.literals {
            for (exchange, dovecot) in FOLDERS {
                if lit.eq_ignore_ascii_case(exchange.as_bytes()) {
                    *lit = dovecot.as_bytes().to_vec();
                }
            }
        }
    }
}

/// Exchange Online's display names of the standard folders and the harness's Dovecot names.
pub const FOLDERS: [(&str, &str); 3] = [
    ("Sent Items", "Sent"),
    ("Deleted Items", "Trash"),
    ("Junk Email", "Junk"),
];

/// Replaces the quoted string `"from"` (ASCII case-insensitive) by `"to"`.
fn replace_quoted(text: &[u8], from: &str, to: &str) -> Vec<u8> {
    let pat = format!("\"{from}\"");
    let pat = pat.as_bytes();
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text.len() - i >= pat.len() && text[i..i + pat.len()].eq_ignore_ascii_case(pat) {
            out.extend_from_slice(format!("\"{to}\"").as_bytes());
            i += pat.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// The Exchange name of a back-end folder name, if it has one.
fn exchange_name(dovecot: &str) -> Option<&'static str> {
    FOLDERS
        .iter()
        .find(|(_, d)| d.eq_ignore_ascii_case(dovecot))
        .map(|(e, _)| *e)
}

/// Rewrites an untagged `* LIST`/`* LSUB`/`* STATUS` line so the standard folders carry
/// Exchange's names; other responses pass unchanged.
pub fn rewrite_untagged(unit: &[u8]) -> Vec<u8> {
    if literal_len(unit).is_some() || unit.iter().filter(|&&b| b == b'\n').count() != 1 {
        return unit.to_vec();
    }
    let line = String::from_utf8_lossy(trim_crlf(unit)).into_owned();
    let upper = line.to_ascii_uppercase();
    let rewritten = if upper.starts_with("* LIST (") || upper.starts_with("* LSUB (") {
        rewrite_list(&line)
    } else if upper.starts_with("* STATUS ") {
        rewrite_status(&line)
    } else {
        None
    };
    match rewritten {
        Some(l) => format!("{l}\r\n").into_bytes(),
        None => unit.to_vec(),
    }
}

fn rewrite_list(line: &str) -> Option<String> {
    let close = line.find(") ")?;
    let rest = &line[close + 2..];
    // The delimiter: a quoted string or NIL.
    let name_at = if let Some(r) = rest.strip_prefix('"') {
        r.find('"')? + 3
    } else if rest.to_ascii_uppercase().starts_with("NIL ") {
        4
    } else {
        return None;
    };
    let name = unquote(&rest[name_at..]);
    let exchange = exchange_name(&name)?;
    Some(format!("{}\"{exchange}\"", &line[..close + 2 + name_at]))
}

fn rewrite_status(line: &str) -> Option<String> {
    let rest = &line["* STATUS ".len()..];
    let (name, tail) = if let Some(r) = rest.strip_prefix('"') {
        let end = r.find('"')?;
        (r[..end].to_string(), &r[end + 1..])
    } else {
        let end = rest.find(' ')?;
        (rest[..end].to_string(), &rest[end..])
    };
    let exchange = exchange_name(&name)?;
    Some(format!("* STATUS \"{exchange}\"{tail}"))
}

fn unquote(s: &str) -> String {
    s.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .map(|r| r.replace("\\\"", "\"").replace("\\\\", "\\"))
        .unwrap_or_else(|| s.to_string())
}

/// `user` and the bearer token from a decoded XOAUTH2 initial response.
pub fn parse_xoauth2(decoded: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8_lossy(decoded);
    let mut user = None;
    let mut token = None;
    for field in text.split('\x01') {
        if let Some(u) = field.strip_prefix("user=") {
            user = Some(u.to_string());
        } else if let Some(a) = field.strip_prefix("auth=") {
            let a = a.trim();
            if a.len() > 7 && a[..7].eq_ignore_ascii_case("bearer ") {
                token = Some(a[7..].trim().to_string());
            }
        }
    }
    Some((user?, token?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_found() {
        assert_eq!(literal_len(b"a APPEND INBOX {12}\r\n"), Some((12, false)));
        assert_eq!(literal_len(b"a APPEND INBOX {12+}\r\n"), Some((12, true)));
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {0}\r\n"), Some((0, false)));
        assert_eq!(literal_len(b"a NOOP {x}\r\n"), None);
        assert_eq!(literal_len(b"a NOOP\r\n"), None);
    }

    #[test]
    fn units_keep_literals_whole_and_survive_partial_reads() {
        let data = b"* 1 FETCH (UID 5 BODY[] {5}\r\nhello)\r\na1 OK done\r\n".to_vec();
        smol::block_on(async {
            let mut r = Reader::new(futures::io::Cursor::new(data));
            let u = r.unit().await.unwrap().unwrap();
            assert_eq!(u, b"* 1 FETCH (UID 5 BODY[] {5}\r\nhello)\r\n");
            assert_eq!(r.unit().await.unwrap().unwrap(), b"a1 OK done\r\n");
            assert!(r.unit().await.unwrap().is_none());
        });
    }

    #[test]
    fn exchange_folder_names_in_and_out() {
        let mut c = Command {
            texts: vec![b"a5 UID MOVE 1:3 \"sent items\"".to_vec()],
            literals: vec![],
        };
        c.map_folders_in();
        assert_eq!(c.to_backend(None), b"a5 UID MOVE 1:3 \"Sent\"\r\n");
        assert_eq!(
            rewrite_untagged(b"* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n"),
            b"* LIST (\\HasNoChildren \\Trash) \"/\" \"Deleted Items\"\r\n"
        );
        assert_eq!(
            rewrite_untagged(b"* STATUS Sent (MESSAGES 2)\r\n"),
            b"* STATUS \"Sent Items\" (MESSAGES 2)\r\n"
        );
        assert_eq!(
            rewrite_untagged(b"* LIST (\\HasNoChildren) \"/\" INBOX\r\n"),
            b"* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
        );
    }

    #[test]
    fn literals_become_literal_plus_for_the_back_end() {
        let c = Command {
            texts: vec![b"x APPEND INBOX (\\Seen) ".to_vec(), b"".to_vec()],
            literals: vec![b"Subject: a\r\n\r\nb".to_vec()],
        };
        assert_eq!(
            c.to_backend(Some("b7")),
            b"b7 APPEND INBOX (\\Seen) {15+}\r\nSubject: a\r\n\r\nb\r\n"
        );
        assert_eq!(c.head(), ("x".into(), "APPEND".into(), false));
    }

    #[test]
    fn xoauth2_fields() {
        assert_eq!(
            parse_xoauth2(b"user=a@b.test\x01auth=Bearer tok\x01\x01"),
            Some(("a@b.test".into(), "tok".into()))
        );
        assert_eq!(parse_xoauth2(b"user=a\x01\x01"), None);
    }
}
