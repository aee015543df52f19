//! winmail.dat (TNEF, application/ms-tnef) unpacking (REFERENCE pain point 7).
//!
//! Outlook sends "rich text" mail as a TNEF blob that other clients show as an unreadable
//! `winmail.dat`. We read its attachments (attAttachTitle / attAttachData, preferring the MAPI
//! long file name PR_ATTACH_LONG_FILENAME and taking PR_ATTACH_MIME_TAG) and a plain-text body
//! (attBody or PR_BODY; else PR_BODY_HTML or the compressed RTF PR_RTF_COMPRESSED, converted
//! to text — Outlook's "rich text" mail often has nothing else). Every length is checked against the
//! input: any byte sequence gives a result or an error, never a panic, and work is linear in the
//! input size.

use std::fmt;

const SIGNATURE: u32 = 0x223E_9F78;
const LVL_MESSAGE: u8 = 1;
const LVL_ATTACHMENT: u8 = 2;

// Attribute ids: low 16 bits id, high 16 bits type.
const ATT_BODY: u32 = 0x0002_800C;
const ATT_ATTACH_RENDDATA: u32 = 0x0006_9002;
const ATT_ATTACH_TITLE: u32 = 0x0001_8010;
const ATT_ATTACH_DATA: u32 = 0x0006_800F;
const ATT_ATTACHMENT: u32 = 0x0006_9005;
const ATT_MAPI_PROPS: u32 = 0x0006_9003;
const ATT_OEM_CODEPAGE: u32 = 0x0006_9007;

// MAPI property ids and types.
const PR_BODY: u16 = 0x1000;
const PR_RTF_COMPRESSED: u16 = 0x1009;
const PR_BODY_HTML: u16 = 0x1013;
const PR_ATTACH_DATA_OBJ: u16 = 0x3701;
const PR_ATTACH_FILENAME: u16 = 0x3704;
const PR_ATTACH_LONG_FILENAME: u16 = 0x3707;
const PR_ATTACH_MIME_TAG: u16 = 0x370E;
const PR_ATTACH_CONTENT_ID: u16 = 0x3712;
const PR_DISPLAY_NAME: u16 = 0x3001;

const PT_SHORT: u16 = 0x0002;
const PT_LONG: u16 = 0x0003;
const PT_FLOAT: u16 = 0x0004;
const PT_DOUBLE: u16 = 0x0005;
const PT_CURRENCY: u16 = 0x0006;
const PT_APPTIME: u16 = 0x0007;
const PT_ERROR: u16 = 0x000A;
const PT_BOOLEAN: u16 = 0x000B;
const PT_OBJECT: u16 = 0x000D;
const PT_I8: u16 = 0x0014;
const PT_STRING8: u16 = 0x001E;
const PT_UNICODE: u16 = 0x001F;
const PT_SYSTIME: u16 = 0x0040;
const PT_CLSID: u16 = 0x0048;
const PT_BINARY: u16 = 0x0102;
const MV_FLAG: u16 = 0x1000;

const MAX_ATTRIBUTES: usize = 100_000;
const MAX_PROPS: usize = 10_000;
const MAX_FILES: usize = 1000;

/// Why a winmail.dat could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TnefError(String);

impl fmt::Display for TnefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(msg: impl Into<String>) -> TnefError {
    TnefError(msg.into())
}

/// A file found inside a winmail.dat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TnefFile {
    /// The long file name (PR_ATTACH_LONG_FILENAME), else the 8.3 title.
    pub filename: Option<String>,
    /// PR_ATTACH_MIME_TAG, when Outlook recorded one.
    pub mime_type: Option<String>,
    /// PR_ATTACH_CONTENT_ID, for pictures the body refers to.
    pub content_id: Option<String>,
    /// The file's bytes.
    pub data: Vec<u8>,
}

/// What a winmail.dat held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// The attachments, in order.
    pub files: Vec<TnefFile>,
    /// The body as plain text: attBody or PR_BODY, else PR_BODY_HTML converted, else the
    /// compressed RTF (PR_RTF_COMPRESSED) decompressed and read as text ([`super::rtf`]).
    pub body: Option<String>,
    /// Why the RTF body could not be read, when that was the only body.
    pub rtf_error: Option<String>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Skips padding to the next multiple of 4 relative to the start.
    fn align4(&mut self) {
        let pad = (4 - self.pos % 4) % 4;
        self.pos = (self.pos + pad).min(self.buf.len());
    }
}

/// Decodes an 8-bit TNEF string in the message's code page, without the trailing NULs.
fn ansi(bytes: &[u8], codepage: u32) -> String {
    let bytes = trim_nul(bytes);
    if codepage == 65001 {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        if bytes.is_ascii() {
            return s.to_string();
        }
    }
    let label = format!("windows-{codepage}");
    match mail_parser::decoders::charsets::map::charset_decoder(label.as_bytes()) {
        Some(decode) if codepage != 0 => decode(bytes),
        _ => super::charset::decode_cp1252(bytes),
    }
}

fn trim_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |e| e + 1);
    &bytes[..end]
}

fn utf16(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let s = String::from_utf16_lossy(&units);
    s.trim_end_matches('\0').to_string()
}

/// One MAPI property value that matters to us.
enum Value<'a> {
    Str(String),
    Bin(&'a [u8]),
    Other,
}

/// Reads a MAPI property list, calling `f(id, value)` for each single-valued property.
fn read_props<'a>(
    data: &'a [u8],
    codepage: u32,
    mut f: impl FnMut(u16, Value<'a>),
) -> Result<(), TnefError> {
    let mut r = Reader::new(data);
    let count = r.u32().ok_or_else(|| err("MAPI property count missing"))? as usize;
    if count > MAX_PROPS {
        return Err(err(format!("{count} MAPI properties is implausible")));
    }
    for _ in 0..count {
        let ptype = r.u16().ok_or_else(|| err("MAPI property truncated"))?;
        let pid = r.u16().ok_or_else(|| err("MAPI property truncated"))?;
        if pid >= 0x8000 {
            // Named property: GUID, kind, then an id or a name.
            r.bytes(16).ok_or_else(|| err("named property truncated"))?;
            let kind = r.u32().ok_or_else(|| err("named property truncated"))?;
            if kind == 0 {
                r.u32().ok_or_else(|| err("named property truncated"))?;
            } else {
                let len = r.u32().ok_or_else(|| err("named property truncated"))? as usize;
                r.bytes(len)
                    .ok_or_else(|| err("named property name truncated"))?;
                r.align4();
            }
        }
        let multi = ptype & MV_FLAG != 0;
        let base = ptype & !MV_FLAG;
        let fixed = match base {
            PT_SHORT | PT_LONG | PT_FLOAT | PT_ERROR | PT_BOOLEAN => Some(4),
            PT_DOUBLE | PT_CURRENCY | PT_APPTIME | PT_I8 | PT_SYSTIME => Some(8),
            PT_CLSID => Some(16),
            0x0000 | 0x0001 => Some(4), // PT_UNSPECIFIED, PT_NULL
            PT_STRING8 | PT_UNICODE | PT_BINARY | PT_OBJECT => None,
            other => return Err(err(format!("unknown MAPI property type 0x{other:04x}"))),
        };
        let values = if multi || fixed.is_none() {
            r.u32().ok_or_else(|| err("MAPI value count truncated"))? as usize
        } else {
            1
        };
        if values > r.remaining() {
            return Err(err("MAPI value count exceeds the data"));
        }
        for _ in 0..values {
            match fixed {
                Some(n) => {
                    r.bytes(n).ok_or_else(|| err("MAPI value truncated"))?;
                    if !multi {
                        f(pid, Value::Other);
                    }
                }
                None => {
                    let len = r.u32().ok_or_else(|| err("MAPI value length truncated"))? as usize;
                    let bytes = r.bytes(len).ok_or_else(|| err("MAPI value truncated"))?;
                    r.align4();
                    if !multi {
                        let v = match base {
                            PT_STRING8 => Value::Str(ansi(bytes, codepage)),
                            PT_UNICODE => Value::Str(utf16(bytes)),
                            PT_BINARY => Value::Bin(bytes),
                            // PT_OBJECT: a 16-byte interface id, then the object's bytes.
                            _ => Value::Bin(bytes.get(16..).unwrap_or(&[])),
                        };
                        f(pid, v);
                    }
                }
            }
        }
    }
    Ok(())
}

#[derive(Default)]
struct Pending {
    title: Option<String>,
    long_name: Option<String>,
    mime: Option<String>,
    content_id: Option<String>,
    data: Option<Vec<u8>>,
}

impl Pending {
    fn finish(self) -> Option<TnefFile> {
        let data = self.data?;
        Some(TnefFile {
            filename: self
                .long_name
                .or(self.title)
                .filter(|n| !n.trim().is_empty()),
            mime_type: self
                .mime
                .map(|m| m.trim().to_ascii_lowercase())
                .filter(|m| m.contains('/') && !m.contains(char::is_whitespace)),
            content_id: self.content_id.filter(|c| !c.is_empty()),
            data,
        })
    }
}

/// Unpacks a winmail.dat.
pub fn unpack(data: &[u8]) -> Result<Unpacked, TnefError> {
    let mut r = Reader::new(data);
    if r.u32() != Some(SIGNATURE) {
        return Err(err("no TNEF signature"));
    }
    r.u16().ok_or_else(|| err("TNEF key missing"))?;
    let mut out = Unpacked::default();
    let mut codepage = 1252u32;
    let mut current: Option<Pending> = None;
    let mut attributes = 0usize;
    let mut rtf: Option<&[u8]> = None;
    let mut html: Option<String> = None;
    while r.remaining() > 0 {
        attributes += 1;
        if attributes > MAX_ATTRIBUTES {
            return Err(err("too many TNEF attributes"));
        }
        let level = r.u8().ok_or_else(|| err("attribute truncated"))?;
        let id = r.u32().ok_or_else(|| err("attribute truncated"))?;
        let len = r.u32().ok_or_else(|| err("attribute truncated"))? as usize;
        let value = r
            .bytes(len)
            .ok_or_else(|| err(format!("attribute 0x{id:08x} longer than the data")))?;
        // The checksum is not verified: damaged-but-readable files are still worth unpacking.
        r.u16().ok_or_else(|| err("attribute checksum missing"))?;
        match (level, id) {
            (LVL_MESSAGE, ATT_OEM_CODEPAGE) if value.len() >= 4 => {
                codepage = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
            }
            (LVL_MESSAGE, ATT_BODY) => {
                let body = ansi(value, codepage);
                if !body.trim().is_empty() {
                    out.body = Some(body);
                }
            }
            (LVL_MESSAGE, ATT_MAPI_PROPS) => {
                let mut body = None;
                // A damaged property list loses the body only, not the attachments.
                let _ = read_props(value, codepage, |pid, v| match (pid, v) {
                    (PR_BODY, Value::Str(s)) => body = Some(s),
                    (PR_RTF_COMPRESSED, Value::Bin(b)) => rtf = Some(b),
                    (PR_BODY_HTML, Value::Bin(b)) => html = Some(ansi(b, codepage)),
                    (PR_BODY_HTML, Value::Str(s)) => html = Some(s),
                    _ => {}
                });
                if out.body.is_none() {
                    out.body = body.filter(|b| !b.trim().is_empty());
                }
            }
            (LVL_ATTACHMENT, ATT_ATTACH_RENDDATA) => {
                if let Some(done) = current.take().and_then(Pending::finish) {
                    push_file(&mut out, done)?;
                }
                current = Some(Pending::default());
            }
            (LVL_ATTACHMENT, ATT_ATTACH_TITLE) => {
                current.get_or_insert_with(Pending::default).title = Some(ansi(value, codepage));
            }
            (LVL_ATTACHMENT, ATT_ATTACH_DATA) => {
                current.get_or_insert_with(Pending::default).data = Some(value.to_vec());
            }
            (LVL_ATTACHMENT, ATT_ATTACHMENT) => {
                let p = current.get_or_insert_with(Pending::default);
                let mut data_obj: Option<&[u8]> = None;
                let _ = read_props(value, codepage, |pid, v| match (pid, v) {
                    (PR_ATTACH_LONG_FILENAME, Value::Str(s)) => p.long_name = Some(s),
                    (PR_ATTACH_FILENAME, Value::Str(s)) if p.title.is_none() => p.title = Some(s),
                    (PR_DISPLAY_NAME, Value::Str(s)) if p.title.is_none() => p.title = Some(s),
                    (PR_ATTACH_MIME_TAG, Value::Str(s)) => p.mime = Some(s),
                    (PR_ATTACH_CONTENT_ID, Value::Str(s)) => p.content_id = Some(s),
                    (PR_ATTACH_DATA_OBJ, Value::Bin(b)) => data_obj = Some(b),
                    _ => {}
                });
                if p.data.is_none() {
                    if let Some(b) = data_obj {
                        p.data = Some(b.to_vec());
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(done) = current.take().and_then(Pending::finish) {
        push_file(&mut out, done)?;
    }
    // No plain-text body: the HTML one, else the rich-text one (compressed RTF), as text.
    if out.body.is_none() {
        if let Some(h) = html.filter(|h| !h.trim().is_empty()) {
            let text = super::html2text::html_to_text(&h, Default::default());
            out.body = Some(text).filter(|t| !t.trim().is_empty());
        }
    }
    if out.body.is_none() {
        if let Some(compressed) = rtf {
            match super::rtf::decompress(compressed) {
                Ok(doc) => {
                    let text = super::rtf::to_text(&doc);
                    out.body = Some(text).filter(|t| !t.trim().is_empty());
                }
                Err(e) => out.rtf_error = Some(e),
            }
        }
    }
    Ok(out)
}

fn push_file(out: &mut Unpacked, f: TnefFile) -> Result<(), TnefError> {
    if out.files.len() >= MAX_FILES {
        return Err(err("too many attachments in winmail.dat"));
    }
    out.files.push(f);
    Ok(())
}

/// Writes a minimal TNEF stream: a body and files given as (title, long name, MIME type,
/// data). Used by tests and to make the golden fixture; mirrors what Outlook writes closely
/// enough for any TNEF reader.
#[doc(hidden)]
pub fn encode_for_tests(body: &str, files: &[(&str, &str, &str, &[u8])]) -> Vec<u8> {
    fn attr(out: &mut Vec<u8>, level: u8, id: u32, data: &[u8]) {
        out.push(level);
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        let sum = data.iter().fold(0u16, |a, &b| a.wrapping_add(b as u16));
        out.extend_from_slice(&sum.to_le_bytes());
    }
    fn prop_str(out: &mut Vec<u8>, ptype: u16, pid: u16, bytes: &[u8]) {
        out.extend_from_slice(&ptype.to_le_bytes());
        out.extend_from_slice(&pid.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(&SIGNATURE.to_le_bytes());
    out.extend_from_slice(&0x0001u16.to_le_bytes());
    // attTnefVersion, attOemCodepage, attMessageClass
    attr(
        &mut out,
        LVL_MESSAGE,
        0x0008_9006,
        &0x0001_0000u32.to_le_bytes(),
    );
    let mut cp = 1252u32.to_le_bytes().to_vec();
    cp.extend_from_slice(&0u32.to_le_bytes());
    attr(&mut out, LVL_MESSAGE, ATT_OEM_CODEPAGE, &cp);
    attr(
        &mut out,
        LVL_MESSAGE,
        0x0007_8008,
        b"IPM.Microsoft Mail.Note\0",
    );
    if !body.is_empty() {
        let mut b = body.as_bytes().to_vec();
        b.push(0);
        attr(&mut out, LVL_MESSAGE, ATT_BODY, &b);
    }
    for (title, long, mime, data) in files {
        attr(&mut out, LVL_ATTACHMENT, ATT_ATTACH_RENDDATA, &[0u8; 14]);
        let mut t = title.as_bytes().to_vec();
        t.push(0);
        attr(&mut out, LVL_ATTACHMENT, ATT_ATTACH_TITLE, &t);
        attr(&mut out, LVL_ATTACHMENT, ATT_ATTACH_DATA, data);
        let mut props = Vec::new();
        props.extend_from_slice(&2u32.to_le_bytes());
        let long16: Vec<u8> = long
            .encode_utf16()
            .chain(std::iter::once(0))
            .flat_map(|u| u.to_le_bytes())
            .collect();
        prop_str(&mut props, PT_UNICODE, PR_ATTACH_LONG_FILENAME, &long16);
        let mut m = mime.as_bytes().to_vec();
        m.push(0);
        prop_str(&mut props, PT_STRING8, PR_ATTACH_MIME_TAG, &m);
        attr(&mut out, LVL_ATTACHMENT, ATT_ATTACHMENT, &props);
    }
    out
}

/// Like [`encode_for_tests`] without a plain body, but with the message's MAPI properties
/// carrying `compressed_rtf` as PR_RTF_COMPRESSED: an Outlook "rich text" mail.
#[doc(hidden)]
pub fn encode_rtf_for_tests(compressed_rtf: &[u8], files: &[(&str, &str, &str, &[u8])]) -> Vec<u8> {
    let mut out = encode_for_tests("", files);
    let mut props = Vec::new();
    props.extend_from_slice(&1u32.to_le_bytes());
    props.extend_from_slice(&PT_BINARY.to_le_bytes());
    props.extend_from_slice(&PR_RTF_COMPRESSED.to_le_bytes());
    props.extend_from_slice(&1u32.to_le_bytes());
    props.extend_from_slice(&(compressed_rtf.len() as u32).to_le_bytes());
    props.extend_from_slice(compressed_rtf);
    while !props.len().is_multiple_of(4) {
        props.push(0);
    }
    out.push(LVL_MESSAGE);
    out.extend_from_slice(&ATT_MAPI_PROPS.to_le_bytes());
    out.extend_from_slice(&(props.len() as u32).to_le_bytes());
    out.extend_from_slice(&props);
    let sum = props.iter().fold(0u16, |a, &b| a.wrapping_add(b as u16));
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtf_only_body_becomes_text() {
        let rtf = br"{\rtf1\ansi\ansicpg1252 Hallo,\par der Scanner streikt. Gr\'fc\'dfe\par}";
        let blob = encode_rtf_for_tests(
            &super::super::rtf::compress_literal_for_tests(rtf),
            &[("a.txt", "a.txt", "text/plain", b"abc")],
        );
        let u = unpack(&blob).unwrap();
        assert_eq!(
            u.body.as_deref(),
            Some("Hallo,\nder Scanner streikt. Grüße")
        );
        assert_eq!(u.files.len(), 1);
        // A broken RTF stream is reported, the files still come out.
        let blob = encode_rtf_for_tests(b"nonsense", &[("a.txt", "a.txt", "text/plain", b"abc")]);
        let u = unpack(&blob).unwrap();
        assert_eq!(u.body, None);
        assert!(u.rtf_error.is_some());
        assert_eq!(u.files.len(), 1);
    }

    #[test]
    fn round_trip() {
        let blob = encode_for_tests(
            "Hello from Outlook",
            &[
                (
                    "REPORT~1.PDF",
                    "Quarterly report.pdf",
                    "application/pdf",
                    b"%PDF-1.4 x",
                ),
                ("a.txt", "Überblick.txt", "text/plain", b"abc"),
            ],
        );
        let u = unpack(&blob).unwrap();
        assert_eq!(u.body.as_deref(), Some("Hello from Outlook"));
        assert_eq!(u.files.len(), 2);
        assert_eq!(u.files[0].filename.as_deref(), Some("Quarterly report.pdf"));
        assert_eq!(u.files[0].mime_type.as_deref(), Some("application/pdf"));
        assert_eq!(u.files[0].data, b"%PDF-1.4 x");
        assert_eq!(u.files[1].filename.as_deref(), Some("Überblick.txt"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(unpack(b"").is_err());
        assert!(unpack(b"not tnef at all").is_err());
        let blob = encode_for_tests("x", &[("a", "a", "text/plain", b"abc")]);
        for cut in 0..blob.len() {
            let _ = unpack(&blob[..cut]);
        }
        let mut flipped = blob.clone();
        for i in 6..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = unpack(&flipped);
            flipped[i] ^= 0xff;
        }
    }
}
