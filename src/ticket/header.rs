//! Header fields exactly as sent (issue #11 item 4).
//!
//! mail-parser folds every run of whitespace in a header to one space and reads raw 8-bit bytes
//! as lossy UTF-8; a helpdesk must show the subject and the names the sender wrote. So the fields
//! a ticket shows (Subject, From, Sender, Reply-To, To, Cc) are read here from the raw header
//! bytes, at the offsets mail-parser found:
//! - **Unfolding only**: a line break inside a field is removed, the whitespace that follows it
//!   kept; a tab becomes a space, other control characters are dropped; the ends are trimmed.
//!   Runs of spaces and ideographic spaces (U+3000) inside stay as they are.
//! - **Encoded words** (RFC 2047, B and Q, also inside quoted strings and words as many mailers
//!   write them): decoded text kept as is; whitespace between two adjacent encoded words
//!   dropped; adjacent words in the same charset joined before decoding, so a character split
//!   over two words survives. Unknown charsets: UTF-8 if valid, else as raw 8-bit bytes below.
//! - **Raw 8-bit bytes**: UTF-8 when valid, else the message's own charset (the first charset its
//!   Content-Types name), else Windows-1252 — never U+FFFD where a reading exists. Raw
//!   ISO-2022-JP (escape sequences) is read as such; in a message declared UTF-7, text outside
//!   encoded words is read as UTF-7.
//! - **Address lists** (RFC 5322, leniently): `Name <addr>`, `"Name" <addr>`, `addr (Name)`,
//!   `Name (comment) <addr>` (the comment is no part of the name), a quoted string holding only
//!   an address, groups (`Team: a@b, c@d;`, members listed, the group name dropped), `;` as a
//!   separator, `<mailto:addr>`, a trailing dot after the address.

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{Header, HeaderName, Message, MimeHeaders};

use super::charset::{decode_base64_lenient, decode_cp1252};
use super::model::Address;

type Decoder = fn(&[u8]) -> String;

/// How raw header text of one message is read: its own charset for 8-bit bytes.
#[derive(Clone, Copy, Default)]
pub(crate) struct HeaderText {
    /// The message's charset when it is neither UTF-8 nor ASCII and the decoder knows it.
    fallback: Option<(Decoder, &'static str)>,
    /// The message declares UTF-7: text outside encoded words is UTF-7.
    utf7: bool,
}

/// What decoding a field had to guess, for the ticket's warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Guess {
    /// Raw 8-bit bytes, not UTF-8, read in the message's charset (its name).
    MessageCharset(&'static str),
    /// Raw 8-bit bytes, not UTF-8, read as Windows-1252.
    Windows1252,
}

impl Guess {
    pub(crate) fn warning(&self, field: &str) -> String {
        match self {
            Guess::MessageCharset(label) => format!(
                "{field}: raw 8-bit text, not UTF-8; decoded as {label} (the message's charset)"
            ),
            Guess::Windows1252 => {
                format!("{field}: raw 8-bit text without charset; decoded as windows-1252")
            }
        }
    }
}

/// Charset labels the fallback can name (kept `'static` so [`HeaderText`] stays `Copy`).
const LABELS: &[&str] = &[
    "iso-8859-1",
    "iso-8859-2",
    "iso-8859-3",
    "iso-8859-4",
    "iso-8859-5",
    "iso-8859-6",
    "iso-8859-7",
    "iso-8859-8",
    "iso-8859-9",
    "iso-8859-10",
    "iso-8859-13",
    "iso-8859-14",
    "iso-8859-15",
    "iso-8859-16",
    "windows-1250",
    "windows-1251",
    "windows-1252",
    "windows-1253",
    "windows-1254",
    "windows-1255",
    "windows-1256",
    "windows-1257",
    "windows-1258",
    "koi8-r",
    "koi8-u",
    "shift_jis",
    "euc-jp",
    "iso-2022-jp",
    "euc-kr",
    "ks_c_5601-1987",
    "gb2312",
    "gbk",
    "gb18030",
    "big5",
    "tis-620",
];

fn static_label(label: &str) -> &'static str {
    let l = label.to_ascii_lowercase();
    LABELS
        .iter()
        .find(|x| **x == l)
        .copied()
        .unwrap_or("the declared charset")
}

fn is_utf8_label(l: &str) -> bool {
    matches!(
        l,
        "utf-8" | "utf8" | "unicode-1-1-utf-8" | "x-unicode20utf8" | "unicode20utf8"
    )
}

fn is_ascii_label(l: &str) -> bool {
    matches!(
        l,
        "us-ascii" | "ascii" | "ansi_x3.4-1968" | "iso646-us" | "us" | "csascii"
    )
}

impl HeaderText {
    /// The reading of `msg`'s raw header text: the first charset its Content-Types name.
    pub(crate) fn for_message(msg: &Message<'_>) -> Self {
        let label = msg.parts.iter().find_map(|p| {
            let c = p.content_type()?.attribute("charset")?;
            let c = c.trim().trim_matches('"').trim();
            (!c.is_empty()).then(|| c.to_ascii_lowercase())
        });
        Self::for_charset(label.as_deref())
    }

    pub(crate) fn for_charset(label: Option<&str>) -> Self {
        let Some(l) = label.map(|l| l.trim().to_ascii_lowercase()) else {
            return Self::default();
        };
        if is_utf8_label(&l) || is_ascii_label(&l) {
            return Self::default();
        }
        if matches!(
            l.as_str(),
            "utf-7" | "utf7" | "csutf7" | "unicode-1-1-utf-7"
        ) {
            return Self {
                fallback: None,
                utf7: true,
            };
        }
        Self {
            fallback: charset_decoder(l.as_bytes()).map(|d| (d as Decoder, static_label(&l))),
            utf7: false,
        }
    }

    /// Raw bytes (no structure yet) to text: UTF-8 if valid, raw ISO-2022-JP, else the
    /// message's charset, else Windows-1252.
    fn bytes_to_text(&self, bytes: &[u8]) -> (String, Option<Guess>) {
        if bytes.contains(&0x1b) && bytes.is_ascii() && has_iso2022jp_escape(bytes) {
            if let Some(decode) = charset_decoder(b"iso-2022-jp") {
                return (decode(bytes), None);
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(s) => (s.to_string(), None),
            Err(_) => {
                if let Some((decode, label)) = self.fallback {
                    let text = decode(bytes);
                    // Bytes invalid in the message's charset too: not its reading.
                    if !text.contains('\u{fffd}') {
                        return (text, Some(Guess::MessageCharset(label)));
                    }
                }
                (decode_cp1252(bytes), Some(Guess::Windows1252))
            }
        }
    }

    /// An unstructured field's raw value (Subject, a filename parameter read raw...): unfolded,
    /// 8-bit bytes and encoded words decoded, ends trimmed, inner whitespace as sent.
    pub(crate) fn unstructured(&self, raw_value: &[u8]) -> (String, Option<Guess>) {
        let mut guess = None;
        let text = clean(&self.decode_words(&unfold(raw_value), &mut guess));
        (text, guess)
    }

    /// Decodes the encoded words in `s` and the raw text around them (8-bit bytes as
    /// [`Self::bytes_to_text`] reads them; UTF-7 in a UTF-7 message).
    pub(crate) fn decode_words(&self, s: &[u8], guess: &mut Option<Guess>) -> String {
        enum Tok<'a> {
            Plain(&'a [u8]),
            Word(String, Vec<u8>),
        }
        let mut toks: Vec<Tok<'_>> = Vec::new();
        let mut plain_start = 0;
        let mut i = 0;
        while let Some(pos) = find2(&s[i..], b"=?") {
            let at = i + pos;
            match encoded_word(&s[at..]) {
                Some((charset, bytes, len)) => {
                    if plain_start < at {
                        toks.push(Tok::Plain(&s[plain_start..at]));
                    }
                    toks.push(Tok::Word(charset, bytes));
                    i = at + len;
                    plain_start = i;
                }
                None => i = at + 2,
            }
        }
        if toks.is_empty() {
            return self.plain(s, guess);
        }
        if plain_start < s.len() {
            toks.push(Tok::Plain(&s[plain_start..]));
        }
        let mut out = String::with_capacity(s.len());
        let mut pending: Option<(String, Vec<u8>)> = None;
        for (k, tok) in toks.iter().enumerate() {
            match tok {
                Tok::Word(charset, bytes) => match &mut pending {
                    Some((c, b)) if c == charset => b.extend_from_slice(bytes),
                    _ => {
                        if let Some((c, b)) = pending.take() {
                            out.push_str(&self.word_text(&c, &b, guess));
                        }
                        pending = Some((charset.clone(), bytes.clone()));
                    }
                },
                Tok::Plain(p) => {
                    let between_words = pending.is_some()
                        && matches!(toks.get(k + 1), Some(Tok::Word(..)))
                        && p.iter().all(|&c| c == b' ' || c == b'\t');
                    if !between_words {
                        if let Some((c, b)) = pending.take() {
                            out.push_str(&self.word_text(&c, &b, guess));
                        }
                        out.push_str(&self.plain(p, guess));
                    }
                }
            }
        }
        if let Some((c, b)) = pending.take() {
            out.push_str(&self.word_text(&c, &b, guess));
        }
        out
    }

    /// Text outside encoded words.
    fn plain(&self, s: &[u8], guess: &mut Option<Guess>) -> String {
        if self.utf7 && s.contains(&b'+') && s.is_ascii() {
            if let Some(decode) = charset_decoder(b"utf-7") {
                return decode(s);
            }
        }
        let (text, g) = self.bytes_to_text(s);
        if g.is_some() {
            *guess = g;
        }
        text
    }

    /// The text of (joined) encoded words in `charset`.
    fn word_text(&self, charset: &str, bytes: &[u8], guess: &mut Option<Guess>) -> String {
        if !is_utf8_label(charset) && !is_ascii_label(charset) {
            if let Some(decode) = charset_decoder(charset.as_bytes()) {
                return decode(bytes);
            }
        }
        // UTF-8, ASCII or unknown: the bytes as UTF-8 when they are, else as raw 8-bit text.
        let (text, g) = self.bytes_to_text(bytes);
        if g.is_some() {
            *guess = g;
        }
        text
    }

    /// An address-list field's raw value (From, To, Cc, Reply-To, Sender).
    pub(crate) fn addresses(&self, raw_value: &[u8]) -> (Vec<Address>, Option<Guess>) {
        let mut guess = None;
        let list = parse_address_list(self, &unfold(raw_value), &mut guess);
        (list, guess)
    }
}

fn find2(hay: &[u8], needle: &[u8; 2]) -> Option<usize> {
    hay.windows(2).position(|w| w == needle)
}

fn has_iso2022jp_escape(b: &[u8]) -> bool {
    b.windows(3).any(|w| {
        matches!(
            w,
            [0x1b, b'$', b'B'] | [0x1b, b'$', b'@'] | [0x1b, b'(', b'J']
        )
    })
}

/// Unfolds a field: each line break with the whitespace that starts the next line (the
/// folder's indentation: a tab, or the spaces Outlook writes) becomes one space; whitespace
/// before a line break is the sender's and stays. The final line break goes.
pub(crate) fn unfold(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\r' | b'\n' => {
                // Line breaks, the indentation after them, and (obsolete syntax) lines holding
                // only whitespace.
                let mut indented = false;
                while i < raw.len() && matches!(raw[i], b'\r' | b'\n' | b' ' | b'\t') {
                    indented |= matches!(raw[i], b' ' | b'\t');
                    i += 1;
                }
                if indented && i < raw.len() {
                    out.push(b' ');
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Tabs to spaces, other control characters dropped, ends trimmed.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\t' | '\n' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    let t = out.trim();
    if t.len() == out.len() {
        out
    } else {
        t.to_string()
    }
}

/// Parses one RFC 2047 encoded word at the start of `s`: (charset in lower case, decoded
/// bytes, length in `s`). Raw 8-bit bytes inside the word (Q-encoding written lazily) are
/// taken as bytes of the word's charset.
fn encoded_word(s: &[u8]) -> Option<(String, Vec<u8>, usize)> {
    if !s.starts_with(b"=?") {
        return None;
    }
    let q1 = 2 + s[2..].iter().take(76).position(|&c| c == b'?')?;
    let charset = &s[2..q1];
    if charset.is_empty()
        || !charset
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:*()+".contains(c))
    {
        return None;
    }
    let enc = *s.get(q1 + 1)?;
    if s.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let text_start = q1 + 3;
    let end = text_start + find2(&s[text_start..], b"?=")?;
    let text = &s[text_start..end];
    if text.iter().any(|c| c.is_ascii_whitespace()) {
        return None;
    }
    let bytes = match enc {
        b'B' | b'b' => decode_base64_lenient(text),
        b'Q' | b'q' => decode_q(text),
        _ => return None,
    };
    // RFC 2231 language suffix: charset*lang.
    let charset = String::from_utf8_lossy(charset);
    let charset = charset.split('*').next().unwrap_or("").to_ascii_lowercase();
    Some((charset, bytes, end + 2))
}

fn decode_q(text: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'_' => out.push(b' '),
            b'=' => {
                if let (Some(h), Some(l)) = (
                    text.get(i + 1).and_then(|&c| hex(c)),
                    text.get(i + 2).and_then(|&c| hex(c)),
                ) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                out.push(b'=');
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

// --- address lists ---------------------------------------------------------------------------

/// One mailbox as written: its phrase (pieces of text outside and inside quotes), comments and
/// the part in angle brackets, as raw bytes.
#[derive(Default)]
struct Mailbox {
    /// (bytes, quoted): quoted strings are unescaped; unquoted text keeps its whitespace.
    phrase: Vec<(Vec<u8>, bool)>,
    comments: Vec<Vec<u8>>,
    angle: Option<Vec<u8>>,
}

impl Mailbox {
    fn push_plain(&mut self, c: u8) {
        match self.phrase.last_mut() {
            Some((t, false)) => t.push(c),
            _ => self.phrase.push((vec![c], false)),
        }
    }

    fn is_empty(&self) -> bool {
        self.angle.is_none()
            && self.comments.is_empty()
            && self
                .phrase
                .iter()
                .all(|(t, q)| !q && t.iter().all(|c| c.is_ascii_whitespace()))
    }

    fn finish(self, ht: &HeaderText, guess: &mut Option<Guess>) -> Option<Address> {
        if self.is_empty() {
            return None;
        }
        let comment_name = |guess: &mut Option<Guess>| {
            self.comments
                .iter()
                .map(|c| clean(&ht.decode_words(c, guess)))
                .find(|c| !c.is_empty())
        };
        let (name, address) = match &self.angle {
            Some(a) => {
                let phrase: Vec<u8> = self.phrase.iter().flat_map(|(t, _)| t.clone()).collect();
                let name = clean(&ht.decode_words(&phrase, guess));
                let name = if name.is_empty() {
                    comment_name(guess)
                } else {
                    Some(name)
                };
                (name, clean_address(&ht.decode_words(a, guess)))
            }
            None => {
                // Quoted strings without an @ are name words: keep them quoted to find the
                // address word among the others.
                let mut joined = Vec::new();
                for (t, q) in &self.phrase {
                    let wrap = *q && !t.contains(&b'@');
                    if wrap {
                        joined.push(b'"');
                    }
                    joined.extend_from_slice(t);
                    if wrap {
                        joined.push(b'"');
                    }
                }
                let words: Vec<&[u8]> = joined
                    .split(|c| c.is_ascii_whitespace())
                    .filter(|w| !w.is_empty())
                    .collect();
                let with_at: Vec<&[u8]> = words
                    .iter()
                    .copied()
                    .filter(|w| w.contains(&b'@'))
                    .collect();
                match with_at.as_slice() {
                    [addr_word] if words.len() > 1 && !addr_word.contains(&b'"') => {
                        // `Name addr` without brackets: the word with the @ is the address.
                        let at = addr_word.as_ptr() as usize - joined.as_ptr() as usize;
                        let mut rest = joined[..at].to_vec();
                        rest.extend_from_slice(&joined[at + addr_word.len()..]);
                        let name = clean(&ht.decode_words(&rest, guess));
                        let name = if name.is_empty() {
                            comment_name(guess)
                        } else {
                            Some(name)
                        };
                        (name, clean_address(&ht.decode_words(addr_word, guess)))
                    }
                    // `addr`, `"addr"`, `addr (Name)`, or obsolete spaced forms (`a . b @ c`).
                    _ if !with_at.is_empty() => {
                        let address = clean_address(&ht.decode_words(&joined, guess));
                        (comment_name(guess), address)
                    }
                    // No @ at all: a bare phrase (`Whomever`, `undisclosed recipients`) names
                    // no mailbox one could write to.
                    _ => {
                        let name = clean(&ht.decode_words(&joined, guess));
                        let name = if name.is_empty() {
                            comment_name(guess)
                        } else {
                            Some(name)
                        };
                        (name, String::new())
                    }
                }
            }
        };
        let name = name
            .map(|n| unquote(&n).to_string())
            .filter(|n| !n.is_empty());
        Some(Address { name, address })
    }
}

/// Outlook sometimes quotes names twice (`"'Jane Doe'"`): drop one matching pair.
fn unquote(name: &str) -> &str {
    for q in ['"', '\''] {
        if name.len() >= 2 && name.starts_with(q) && name.ends_with(q) {
            return name[1..name.len() - 1].trim();
        }
    }
    name
}

/// The address as written, without whitespace, control characters, a `mailto:` prefix, a
/// source route (`@a,@b:`), angle brackets or a trailing dot.
fn clean_address(a: &str) -> String {
    let mut s: String = a
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control() && *c != '<' && *c != '>')
        .collect();
    if s.len() >= 7 && s.is_char_boundary(7) && s[..7].eq_ignore_ascii_case("mailto:") {
        s.drain(..7);
    }
    if s.starts_with('@') {
        if let Some(colon) = s.rfind(':') {
            s.drain(..=colon);
        }
    }
    if s.contains('@') {
        while s.ends_with('.') {
            s.pop();
        }
    }
    s
}

fn parse_address_list(ht: &HeaderText, text: &[u8], guess: &mut Option<Guess>) -> Vec<Address> {
    let mut out = Vec::new();
    let mut cur = Mailbox::default();
    let mut in_group = false;
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        i += 1;
        match c {
            b'"' => {
                let mut q = Vec::new();
                while i < text.len() {
                    let c = text[i];
                    i += 1;
                    match c {
                        b'\\' if i < text.len() => {
                            q.push(text[i]);
                            i += 1;
                        }
                        b'"' => break,
                        c => q.push(c),
                    }
                }
                cur.phrase.push((q, true));
            }
            b'(' => {
                let mut depth = 1;
                let mut com = Vec::new();
                while i < text.len() {
                    let c = text[i];
                    i += 1;
                    match c {
                        b'\\' if i < text.len() => {
                            com.push(text[i]);
                            i += 1;
                        }
                        b'(' => {
                            depth += 1;
                            com.push(c);
                        }
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                            com.push(c);
                        }
                        c => com.push(c),
                    }
                }
                cur.comments.push(com);
                // A comment separates words (one space where none is around it).
                let before =
                    cur.phrase
                        .last()
                        .and_then(|(t, q)| if *q { Some(b'"') } else { t.last().copied() });
                let after = text.get(i).copied();
                if !before.is_none_or(|b| b.is_ascii_whitespace())
                    && !after.is_none_or(|b| b.is_ascii_whitespace())
                {
                    cur.push_plain(b' ');
                }
            }
            b'<' => {
                let end = text[i..]
                    .iter()
                    .position(|&c| c == b'>')
                    .map_or(text.len(), |p| i + p);
                if cur.angle.is_none() {
                    cur.angle = Some(text[i..end].to_vec());
                }
                i = (end + 1).min(text.len());
            }
            b',' => out.extend(std::mem::take(&mut cur).finish(ht, guess)),
            b':' if !in_group && cur.angle.is_none() => {
                // A group: its name is no address; its members follow.
                in_group = true;
                cur = Mailbox::default();
            }
            b';' => {
                out.extend(std::mem::take(&mut cur).finish(ht, guess));
                in_group = false;
            }
            c => cur.push_plain(c),
        }
    }
    out.extend(cur.finish(ht, guess));
    out
}

// --- fields of a header block ------------------------------------------------------------------

/// The raw values (bytes after the colon, line ends included) of every `name` field of
/// `headers`, in the order sent; `raw` is the buffer their offsets point into.
pub(crate) fn raw_values<'a>(
    headers: &'a [Header<'_>],
    raw: &'a [u8],
    name: &'a HeaderName<'a>,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |h| &h.name == name)
        .filter_map(move |h| raw.get(h.offset_start as usize..h.offset_end as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subj(raw: &[u8]) -> String {
        HeaderText::default().unstructured(raw).0
    }

    fn addrs(raw: &str) -> Vec<(Option<String>, String)> {
        HeaderText::default()
            .addresses(raw.as_bytes())
            .0
            .into_iter()
            .map(|a| (a.name, a.address))
            .collect()
    }

    fn one(name: Option<&str>, addr: &str) -> Vec<(Option<String>, String)> {
        vec![(name.map(str::to_string), addr.to_string())]
    }

    #[test]
    fn unstructured_keeps_inner_whitespace() {
        assert_eq!(subj(b" Re:  two  spaces\r\n"), "Re:  two  spaces");
        assert_eq!(
            subj(" 会議\u{3000}\u{3000}資料\r\n".as_bytes()),
            "会議\u{3000}\u{3000}資料"
        );
        // A fold's indentation is the folder's: one space. Whitespace before the break is the sender's.
        assert_eq!(subj(b" folded\r\n   line\r\n"), "folded line");
        assert_eq!(subj(b" two \r\n spaces\r\n"), "two  spaces");
        assert_eq!(subj(b" tab\r\n\tfolded\r\n"), "tab folded");
        assert_eq!(subj(b" empty\r\n   \r\n lines\r\n"), "empty lines");
        assert_eq!(
            subj(b" [PRJ]  asdf  =?utf-8?Q?=C3=A1rv=C3=ADz__t?=\r\n"),
            "[PRJ]  asdf  árvíz  t"
        );
    }

    #[test]
    fn encoded_words() {
        assert_eq!(subj(b" =?utf-8?Q?a?= =?utf-8?Q?b?=\r\n"), "ab");
        assert_eq!(subj(b" =?utf-8?Q?a?=\r\n =?utf-8?Q?b?=\r\n"), "ab");
        assert_eq!(subj(b" =?utf-8?Q?a?= x =?utf-8?Q?b?=\r\n"), "a x b");
        // A character split over two words.
        assert_eq!(subj(b" =?utf-8?B?w6k=?= =?UTF-8?B?w6k=?=\r\n"), "éé");
        assert_eq!(subj(b" =?utf-8?B?ww==?= =?utf-8?B?qQ==?=\r\n"), "\u{e9}");
        assert_eq!(subj(b" =?iso-8859-1?q?caf=E9?=\r\n"), "café");
        assert_eq!(subj(b" =?utf-8*en?q?x?=\r\n"), "x");
        assert_eq!(subj(b" =?bogus?q?caf=C3=A9?=\r\n"), "café");
        assert_eq!(subj(b" =?bogus?q?caf=E9?=\r\n"), "café");
        assert_eq!(
            subj(b" not =?an encoded?= word\r\n"),
            "not =?an encoded?= word"
        );
        assert_eq!(subj(b" a=?utf-8?q?b?=c\r\n"), "abc");
    }

    #[test]
    fn raw_8bit() {
        assert_eq!(subj(b" Gr\xc3\xbc\xc3\x9fe\r\n"), "Grüße");
        let (s, g) = HeaderText::default().unstructured(b" Gr\xfc\xdfe \x80\r\n");
        assert_eq!((s.as_str(), g), ("Grüße €", Some(Guess::Windows1252)));
        let koi = HeaderText::for_charset(Some("koi8-r"));
        let (s, g) = koi.unstructured(b" \xf0\xd2\xc9\xd7\xc5\xd4\r\n");
        assert_eq!(s, "Привет");
        assert_eq!(g, Some(Guess::MessageCharset("koi8-r")));
        // UTF-8 wins over the message's charset when the bytes are UTF-8.
        assert_eq!(koi.unstructured(b" Gr\xc3\xbc\xc3\x9fe\r\n").0, "Grüße");
        let utf7 = HeaderText::for_charset(Some("UTF-7"));
        assert_eq!(utf7.unstructured(b" Fr+APY-sche\r\n").0, "Frösche");
        assert_eq!(subj(b" Fr+APY-sche\r\n"), "Fr+APY-sche");
        assert_eq!(subj(b" \x1b$B$3$s$K$A$O\x1b(B\r\n"), "こんにちは");
    }

    #[test]
    fn address_forms() {
        assert_eq!(addrs(" a@b.c\r\n"), one(None, "a@b.c"));
        assert_eq!(
            addrs(" Jane  Doe <a@b.c>\r\n"),
            one(Some("Jane  Doe"), "a@b.c")
        );
        assert_eq!(
            addrs(" \"Doe,  Jane\" <a@b.c>\r\n"),
            one(Some("Doe,  Jane"), "a@b.c")
        );
        assert_eq!(
            addrs(" a@b.c (Jane Doe)\r\n"),
            one(Some("Jane Doe"), "a@b.c")
        );
        assert_eq!(
            addrs(" Jane Doe (Sales) <a@b.c>\r\n"),
            one(Some("Jane Doe"), "a@b.c")
        );
        assert_eq!(addrs(" \"a@b.c\"\r\n"), one(None, "a@b.c"));
        assert_eq!(addrs(" a@b.c.\r\n"), one(None, "a@b.c"));
        assert_eq!(addrs(" Jane <a@b.c.>\r\n"), one(Some("Jane"), "a@b.c"));
        assert_eq!(addrs(" <mailto:a@b.c>\r\n"), one(None, "a@b.c"));
        assert_eq!(
            addrs(" Team: a@b.c, Jane <d@e.f>;, g@h.i\r\n"),
            vec![
                (None, "a@b.c".to_string()),
                (Some("Jane".to_string()), "d@e.f".to_string()),
                (None, "g@h.i".to_string())
            ]
        );
        assert_eq!(addrs(" undisclosed-recipients:;\r\n"), vec![]);
        assert_eq!(addrs(" Whomever\r\n"), one(Some("Whomever"), ""));
        assert_eq!(
            addrs(" a@b.c; d@e.f\r\n"),
            vec![(None, "a@b.c".into()), (None, "d@e.f".into())]
        );
        assert_eq!(
            addrs(" =?utf-8?Q?J=C3=BCrgen?=  =?utf-8?Q?_Schm=C3=BCrgen?= <j@x.de>\r\n"),
            one(Some("Jürgen Schmürgen"), "j@x.de")
        );
        assert_eq!(
            addrs(" \"=?utf-8?Q?J=C3=BCrgen?=\" <j@x.de>\r\n"),
            one(Some("Jürgen"), "j@x.de")
        );
        assert_eq!(
            addrs(" \"'Jane Doe'\" <a@b.c>\r\n"),
            one(Some("Jane Doe"), "a@b.c")
        );
        assert_eq!(addrs(" Jane Doe a@b.c\r\n"), one(Some("Jane Doe"), "a@b.c"));
        assert_eq!(
            HeaderText::default()
                .addresses(b" \"J\xfcrgen Schm\xfcrgen\" <j@x.de>\r\n")
                .0[0]
                .name
                .as_deref(),
            Some("Jürgen Schmürgen")
        );
        assert_eq!(addrs(" \"a\\\"b\" <a@b.c>\r\n"), one(Some("a\"b"), "a@b.c"));
        assert_eq!(
            addrs(" Jane\r\n Doe\r\n <a@b.c>\r\n"),
            one(Some("Jane Doe"), "a@b.c")
        );
    }
}
