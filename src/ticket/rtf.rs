//! Outlook's rich-text bodies: compressed RTF (MS-OXRTFCP, "LZFu" and uncompressed "MELA")
//! as a winmail.dat carries it in PR_RTF_COMPRESSED, and RTF → plain text.
//!
//! [`decompress`] is the spec's LZ77 variant: a 4096-byte ring dictionary preloaded with 207
//! bytes of common RTF, control bytes whose bits (least significant first) say literal byte or
//! 2-byte reference (12-bit offset, 4-bit length + 2); a reference to the write position ends
//! the stream. The CRC is not checked (a damaged but readable body is still worth showing).
//! Output is bounded by the header's raw size and [`MAX_RTF_BYTES`].
//!
//! [`to_text`] reads RTF as a word processor's "save as text" would: paragraphs and line
//! breaks, tabs, `\'hh` bytes in the document's code page (`\ansicpg`), `\uN` Unicode with its
//! `\ucN` fallback skipped, typographic symbols; font/colour/style tables, pictures, objects,
//! field instructions and `\*` destinations dropped. RTF that Outlook made from HTML
//! (`\fromhtml1`, MS-OXRTFEX) is turned back into its HTML (the `\*\htmltag` groups and the
//! text outside `\htmlrtf` … `\htmlrtf0`) and converted by the HTML converter, as the HTML
//! would have been. Work is linear in the input; nesting is bounded.

use super::charset::decode_cp1252;
use super::html2text::{html_to_text, Html2TextOptions};

/// Largest decompressed RTF we make (a body, not a document archive).
pub const MAX_RTF_BYTES: usize = 32 * 1024 * 1024;
/// Deepest group nesting followed; deeper groups are read as text of their parent.
const MAX_DEPTH: usize = 256;

const LZFU: u32 = 0x7546_5A4C;
const MELA: u32 = 0x414C_454D;

/// The dictionary's initial content (MS-OXRTFCP 3.1.3.1).
const PREBUF: &[u8] = b"{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss \\fmodern \\fscript \\fdecor MS Sans SerifSymbolArialTimes New RomanCourier{\\colortbl\\red0\\green0\\blue0\r\n\\par \\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx";

/// Decompresses PR_RTF_COMPRESSED bytes into RTF.
pub fn decompress(data: &[u8]) -> Result<Vec<u8>, String> {
    let word = |i: usize| {
        data.get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (Some(_comp_size), Some(raw_size), Some(kind)) = (word(0), word(4), word(8)) else {
        return Err("compressed RTF shorter than its 16-byte header".into());
    };
    if data.len() < 16 {
        return Err("compressed RTF shorter than its 16-byte header".into());
    }
    let limit = (raw_size as usize).min(MAX_RTF_BYTES);
    let body = &data[16..];
    match kind {
        MELA => Ok(body[..body.len().min(limit)].to_vec()),
        LZFU => {
            let mut dict = [0u8; 4096];
            dict[..PREBUF.len()].copy_from_slice(PREBUF);
            let mut write = PREBUF.len();
            let mut out = Vec::with_capacity(limit.min(body.len().saturating_mul(8)));
            let mut i = 0;
            'stream: while i < body.len() {
                let control = body[i];
                i += 1;
                for bit in 0..8 {
                    if out.len() >= limit {
                        break 'stream;
                    }
                    if control & (1 << bit) == 0 {
                        let Some(&b) = body.get(i) else {
                            break 'stream;
                        };
                        i += 1;
                        out.push(b);
                        dict[write] = b;
                        write = (write + 1) % 4096;
                    } else {
                        let (Some(&hi), Some(&lo)) = (body.get(i), body.get(i + 1)) else {
                            break 'stream;
                        };
                        i += 2;
                        let reference = u16::from_be_bytes([hi, lo]);
                        let mut offset = (reference >> 4) as usize;
                        let length = (reference & 0xF) as usize + 2;
                        if offset == write {
                            break 'stream; // the end marker
                        }
                        for _ in 0..length {
                            if out.len() >= limit {
                                break 'stream;
                            }
                            let b = dict[offset];
                            out.push(b);
                            dict[write] = b;
                            write = (write + 1) % 4096;
                            offset = (offset + 1) % 4096;
                        }
                    }
                }
            }
            Ok(out)
        }
        other => Err(format!("unknown compressed RTF type 0x{other:08x}")),
    }
}

/// Destinations whose content is not text.
const SKIP: &[&str] = &[
    "fonttbl",
    "colortbl",
    "stylesheet",
    "info",
    "pict",
    "object",
    "header",
    "headerl",
    "headerr",
    "headerf",
    "footer",
    "footerl",
    "footerr",
    "footerf",
    "listtable",
    "listoverridetable",
    "revtbl",
    "rsidtbl",
    "generator",
    "xmlnstbl",
    "themedata",
    "colorschememapping",
    "latentstyles",
    "datastore",
    "fldinst",
    "filetbl",
    "pntext",
    "pntxta",
    "pntxtb",
    "bkmkstart",
    "bkmkend",
    "field_inst",
    "mmathPr",
    "nonshppict",
    "userprops",
    "docvar",
    "xe",
    "tc",
    "txe",
    "atnid",
    "atnauthor",
    "annotation",
    "fontemb",
    "fontfile",
    "falt",
    "panose",
    "wgrffmtfilter",
    "pgdsctbl",
];

#[derive(Clone, Copy)]
struct Group {
    skip: bool,
    /// `\ucN`: fallback characters after `\uN`.
    uc: usize,
    /// Inside `\htmlrtf` (RTF-only formatting of HTML-made RTF: not part of the HTML).
    htmlrtf: bool,
    /// Inside a `\*\htmltag` group: its text is HTML markup.
    htmltag: bool,
}

struct Out {
    text: String,
    pending: Vec<u8>,
    codepage: u32,
}

impl Out {
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let label = format!("windows-{}", self.codepage);
        let decoded = match self.codepage {
            65001 => String::from_utf8_lossy(&self.pending).into_owned(),
            932 => decode_with(b"shift_jis", &self.pending),
            936 => decode_with(b"gbk", &self.pending),
            949 => decode_with(b"euc-kr", &self.pending),
            950 => decode_with(b"big5", &self.pending),
            1252 | 0 => decode_cp1252(&self.pending),
            _ => decode_with(label.as_bytes(), &self.pending),
        };
        self.text.push_str(&decoded);
        self.pending.clear();
    }
    fn push(&mut self, c: char) {
        self.flush();
        self.text.push(c);
    }
    fn push_str(&mut self, s: &str) {
        self.flush();
        self.text.push_str(s);
    }
}

fn decode_with(label: &[u8], bytes: &[u8]) -> String {
    match mail_parser::decoders::charsets::map::charset_decoder(label) {
        Some(decode) => decode(bytes),
        None => decode_cp1252(bytes),
    }
}

/// The text of an RTF document (LF line ends).
pub fn to_text(rtf: &[u8]) -> String {
    let from_html = rtf
        .get(..rtf.len().min(2048))
        .is_some_and(|head| head.windows(10).any(|w| w == b"\\fromhtml1"));
    let mut out = Out {
        text: String::with_capacity(rtf.len() / 2),
        pending: Vec::new(),
        codepage: 1252,
    };
    let mut stack: Vec<Group> = Vec::new();
    let mut g = Group {
        skip: false,
        uc: 1,
        htmlrtf: false,
        htmltag: false,
    };
    // Characters still to skip after a \uN (its ANSI fallback).
    let mut skip_chars = 0usize;
    // Set right after `{`: the next control word may name the group's destination.
    let mut group_start = false;
    let mut ignorable = false;
    let mut i = 0;
    let visible = |g: &Group| !g.skip && (!from_html || !g.htmlrtf || g.htmltag);
    while i < rtf.len() {
        let c = rtf[i];
        match c {
            b'{' => {
                i += 1;
                if stack.len() < MAX_DEPTH {
                    stack.push(g);
                }
                group_start = true;
                ignorable = false;
                skip_chars = 0;
                continue;
            }
            b'}' => {
                i += 1;
                if let Some(prev) = stack.pop() {
                    if g.htmltag && !prev.htmltag {
                        out.flush();
                    }
                    g = prev;
                }
                group_start = false;
                skip_chars = 0;
                continue;
            }
            b'\\' => {
                let Some(&next) = rtf.get(i + 1) else {
                    break;
                };
                if next.is_ascii_alphabetic() {
                    let start = i + 1;
                    let mut j = start;
                    while j < rtf.len() && rtf[j].is_ascii_alphabetic() && j - start < 32 {
                        j += 1;
                    }
                    let word = std::str::from_utf8(&rtf[start..j]).unwrap_or("");
                    let mut param: Option<i32> = None;
                    let num_start = j;
                    if j < rtf.len() && (rtf[j] == b'-' || rtf[j].is_ascii_digit()) {
                        j += 1;
                        while j < rtf.len() && rtf[j].is_ascii_digit() && j - num_start < 11 {
                            j += 1;
                        }
                        param = std::str::from_utf8(&rtf[num_start..j])
                            .ok()
                            .and_then(|s| s.parse::<i64>().ok())
                            .map(|v| v.clamp(i32::MIN as i64, i32::MAX as i64) as i32);
                    }
                    if j < rtf.len() && rtf[j] == b' ' {
                        j += 1;
                    }
                    i = j;
                    let at_start = group_start;
                    group_start = false;
                    control_word(
                        word,
                        param,
                        at_start,
                        &mut ignorable,
                        &mut g,
                        &mut out,
                        &mut skip_chars,
                        from_html,
                        visible,
                    );
                    continue;
                }
                i += 2;
                let was_start = group_start;
                group_start = false;
                match next {
                    b'\'' => {
                        let hex = rtf.get(i..i + 2).and_then(|h| {
                            std::str::from_utf8(h)
                                .ok()
                                .and_then(|h| u8::from_str_radix(h, 16).ok())
                        });
                        if let Some(b) = hex {
                            i += 2;
                            if skip_chars > 0 {
                                skip_chars -= 1;
                            } else if visible(&g) {
                                out.pending.push(b);
                            }
                        }
                    }
                    b'*' => {
                        ignorable = true;
                        group_start = was_start;
                    }
                    b'\\' | b'{' | b'}' => {
                        if skip_chars > 0 {
                            skip_chars -= 1;
                        } else if visible(&g) {
                            out.push(next as char);
                        }
                    }
                    b'~' if visible(&g) => out.push('\u{a0}'),
                    b'_' if visible(&g) => out.push('-'),
                    // "\<newline>" is \par.
                    b'\r' | b'\n' if visible(&g) && !from_html => out.push('\n'),
                    _ => {} // \- optional hyphen, \: index subentry, \| formula
                }
                continue;
            }
            b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                group_start = false;
                if skip_chars > 0 {
                    skip_chars -= 1;
                    continue;
                }
                if visible(&g) {
                    out.pending.push(c);
                }
            }
        }
    }
    out.flush();
    let text = if from_html {
        html_to_text(&out.text, Html2TextOptions::default())
    } else {
        out.text
    };
    tidy(&text)
}

#[allow(clippy::too_many_arguments)]
fn control_word(
    word: &str,
    param: Option<i32>,
    at_group_start: bool,
    ignorable: &mut bool,
    g: &mut Group,
    out: &mut Out,
    skip_chars: &mut usize,
    from_html: bool,
    visible: impl Fn(&Group) -> bool,
) {
    if at_group_start {
        if *ignorable {
            *ignorable = false;
            if from_html && word == "htmltag" {
                g.htmltag = true;
                out.flush();
            } else {
                g.skip = true;
            }
            return;
        }
        if SKIP.contains(&word) {
            g.skip = true;
            return;
        }
    }
    if word == "mhtmltag" {
        // The duplicate of an htmltag with rewritten URLs: one copy is enough.
        g.skip = true;
        return;
    }
    if word == "ansicpg" {
        if let Some(cp) = param.filter(|&p| p > 0) {
            out.flush();
            out.codepage = cp as u32;
        }
        return;
    }
    if word == "uc" {
        g.uc = param.unwrap_or(1).clamp(0, 16) as usize;
        return;
    }
    if word == "htmlrtf" {
        g.htmlrtf = param != Some(0);
        return;
    }
    if word == "u" {
        if let Some(p) = param {
            let code = if p < 0 { p + 65536 } else { p } as u32;
            if visible(g) {
                // Surrogate halves come as two \u words; keep them paired.
                out.flush();
                if let Some(ch) = char::from_u32(code) {
                    out.text.push(ch);
                } else if (0xD800..0xDC00).contains(&code) {
                    out.text.push_str(&format!("\u{0}{code:04x}"));
                } else if (0xDC00..0xE000).contains(&code) {
                    join_surrogate(&mut out.text, code);
                }
            }
            *skip_chars = g.uc;
        }
        return;
    }
    if !visible(g) {
        return;
    }
    // HTML-made RTF: \par and \tab outside \htmlrtf are the HTML source's own whitespace.
    let s = match word {
        "par" | "line" | "sect" | "page" | "row" => "\n",
        "tab" | "cell" => "\t",
        "emdash" => "\u{2014}",
        "endash" => "\u{2013}",
        "bullet" => "\u{2022}",
        "lquote" => "\u{2018}",
        "rquote" => "\u{2019}",
        "ldblquote" => "\u{201c}",
        "rdblquote" => "\u{201d}",
        "emspace" | "enspace" | "qmspace" => " ",
        _ => return,
    };
    out.push_str(s);
}

/// Joins a low surrogate to the high one written before it as `\0xxxx`.
fn join_surrogate(text: &mut String, low: u32) {
    if text.len() >= 5 && text.as_bytes()[text.len() - 5] == 0 {
        if let Ok(high) = u32::from_str_radix(&text[text.len() - 4..], 16) {
            text.truncate(text.len() - 5);
            let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
            if let Some(ch) = char::from_u32(code) {
                text.push(ch);
            }
        }
    }
}

/// No trailing spaces on lines, at most one blank line in a row, no blank lines at the ends,
/// no stray NULs.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.split('\n') {
        let line = line.trim_end().replace('\0', "");
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
            if blank > 0 {
                out.push('\n');
            }
        }
        blank = 0;
        out.push_str(&line);
    }
    out
}

/// Compresses RTF the simplest valid way (literal runs only, then the end marker), for tests
/// and the golden fixture generator: every LZFu reader must read it.
#[doc(hidden)]
pub fn compress_literal_for_tests(rtf: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut write = PREBUF.len();
    let mut i = 0;
    loop {
        let chunk = &rtf[i..(i + 8).min(rtf.len())];
        write = (write + chunk.len()) % 4096;
        i += chunk.len();
        if chunk.len() == 8 {
            body.push(0);
            body.extend_from_slice(chunk);
            continue;
        }
        // The last literals, then a reference to the write position: the end.
        body.push(1 << chunk.len());
        body.extend_from_slice(chunk);
        body.extend_from_slice(&((write as u16) << 4).to_be_bytes());
        break;
    }
    let mut out = Vec::with_capacity(body.len() + 16);
    out.extend_from_slice(&((body.len() + 12) as u32).to_le_bytes());
    out.extend_from_slice(&(rtf.len() as u32).to_le_bytes());
    out.extend_from_slice(&LZFU.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MS-OXRTFCP section 4.1 example 1.
    const SIMPLE: &[u8] = &[
        0x2d, 0x00, 0x00, 0x00, 0x2b, 0x00, 0x00, 0x00, 0x4c, 0x5a, 0x46, 0x75, 0xf1, 0xc5, 0xc7,
        0xa7, 0x03, 0x00, 0x0a, 0x00, 0x72, 0x63, 0x70, 0x67, 0x31, 0x32, 0x35, 0x42, 0x32, 0x0a,
        0xf3, 0x20, 0x68, 0x65, 0x6c, 0x09, 0x00, 0x20, 0x62, 0x77, 0x05, 0xb0, 0x6c, 0x64, 0x7d,
        0x0a, 0x80, 0x0f, 0xa0,
    ];
    /// Example 2: a reference that crosses the write position.
    const CROSSING: &[u8] = &[
        0x1a, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x4c, 0x5a, 0x46, 0x75, 0xe2, 0xd4, 0x4b,
        0x51, 0x41, 0x00, 0x04, 0x20, 0x57, 0x58, 0x59, 0x5a, 0x0d, 0x6e, 0x7d, 0x01, 0x0e, 0xb0,
    ];

    #[test]
    fn spec_examples_decompress() {
        assert_eq!(PREBUF.len(), 207);
        assert_eq!(
            decompress(SIMPLE).unwrap(),
            b"{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n"
        );
        assert_eq!(
            decompress(CROSSING).unwrap(),
            b"{\\rtf1 WXYZWXYZWXYZWXYZWXYZ}"
        );
        assert_eq!(to_text(&decompress(SIMPLE).unwrap()), "hello world");
    }

    #[test]
    fn literal_compression_round_trips() {
        for len in [0, 1, 7, 8, 9, 16, 100, 5000] {
            let rtf: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert_eq!(decompress(&compress_literal_for_tests(&rtf)).unwrap(), rtf);
        }
        let mut mela = Vec::new();
        mela.extend_from_slice(&15u32.to_le_bytes());
        mela.extend_from_slice(&3u32.to_le_bytes());
        mela.extend_from_slice(&MELA.to_le_bytes());
        mela.extend_from_slice(&0u32.to_le_bytes());
        mela.extend_from_slice(b"{x}");
        assert_eq!(decompress(&mela).unwrap(), b"{x}");
    }

    #[test]
    fn rtf_to_text() {
        let rtf = br"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0\fswiss Arial;}}{\colortbl;\red0\green0\blue0;}
{\*\generator Riched20 10.0;}\viewkind4\uc1\pard\f0\fs20 Hallo Frau M\'fcller,\par
\par
der Drucker im 2. Stock druckt nur noch leere Seiten.\line Danke \endash  Jan\tab X\par
{\pict\wmetafile8 0102030405}Caf\u233?s \u8364\'80 und {\field{\*\fldinst HYPERLINK x}{\fldrslt Link}}\par
}";
        assert_eq!(
            to_text(rtf),
            "Hallo Frau Müller,\n\nder Drucker im 2. Stock druckt nur noch leere Seiten.\nDanke \u{2013} Jan\tX\nCafés € und Link"
        );
    }

    #[test]
    fn html_made_rtf_reads_as_its_html() {
        let rtf = br"{\rtf1\ansi\ansicpg1252\fromhtml1 \deff0{\fonttbl{\f0\fswiss Arial;}}
{\*\htmltag19 <html>}{\*\htmltag34 <head>}{\*\htmltag41 </head>}{\*\htmltag50 <body>}
{\*\htmltag64 <p>}\htmlrtf {\htmlrtf0 Guten Tag,\htmlrtf\par}\htmlrtf0
{\*\htmltag72 </p>}{\*\htmltag64 <p>}\htmlrtf {\htmlrtf0 das VPN geht nicht &amp; mehr.\htmlrtf\par}\htmlrtf0
{\*\htmltag72 </p>}{\*\htmltag58 </body>}{\*\htmltag27 </html>}}";
        assert_eq!(to_text(rtf), "Guten Tag,\n\ndas VPN geht nicht & mehr.");
    }

    #[test]
    fn garbage_never_panics() {
        for input in [
            &b""[..],
            b"{",
            b"}}}}",
            b"\\",
            b"{\\rtf1 \\u-1 \\u99999999999 \\'zz \\'4",
            b"{\\*\\htmltag",
            b"\\ansicpg-5 \\'80",
            b"{\\rtf1\\fromhtml1 {\\*\\htmltag <p>}}",
        ] {
            let _ = to_text(input);
        }
        assert!(decompress(b"").is_err());
        assert!(decompress(&[0u8; 15]).is_err());
        let mut bad = SIMPLE.to_vec();
        bad[8] = 0;
        assert!(decompress(&bad).is_err());
        for cut in 0..SIMPLE.len() {
            let _ = decompress(&SIMPLE[..cut]);
        }
        // A lying raw size cannot make it allocate or loop beyond the input.
        let mut huge = SIMPLE.to_vec();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decompress(&huge).unwrap().len() < 100);
    }
}
