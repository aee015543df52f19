//! The ticket's JSON, written fast: byte for byte what serde-json-core writes (compact, keys as
//! given, control characters as `\n`, `\t`, … or `\u00XX` with upper-case hex, everything else
//! as UTF-8), but copying each run of characters that need no escape at once instead of pushing
//! one character at a time (serde-json-core's string writer was a fifth of the agent's CPU on
//! small mail). Types the ticket does not use are refused; [`super::Ticket::to_json`] then falls
//! back to serde-json-core.

use serde::ser::{self, Impossible, Serialize};
use std::fmt;

/// Why the writer refused a value (a type the ticket does not use).
#[derive(Debug)]
pub(super) struct Unsupported;

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unsupported by the ticket JSON writer")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Unsupported
    }
}

/// `value` as compact JSON, or `Err` for a type the writer does not support.
pub(super) fn to_json<T: Serialize + ?Sized>(
    value: &T,
    capacity: usize,
) -> Result<String, Unsupported> {
    let mut w = Writer(Vec::with_capacity(capacity));
    value.serialize(&mut w)?;
    // Only &str values and ASCII were written.
    String::from_utf8(w.0).map_err(|_| Unsupported)
}

struct Writer(Vec<u8>);

fn escape_into(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            c => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(c >> 4)]);
                out.push(HEX[usize::from(c & 0xf)]);
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

impl Writer {
    fn unsigned(&mut self, mut v: u64) {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.0.extend_from_slice(&buf[i..]);
    }

    fn signed(&mut self, v: i64) {
        if v < 0 {
            self.0.push(b'-');
        }
        self.unsigned(v.unsigned_abs());
    }
}

impl<'a> ser::Serializer for &'a mut Writer {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Impossible<(), Unsupported>;
    type SerializeMap = Impossible<(), Unsupported>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Impossible<(), Unsupported>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        self.0
            .extend_from_slice(if v { b"true" as &[u8] } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        self.signed(v.into());
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        self.signed(v.into());
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        self.signed(v.into());
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        self.signed(v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        self.unsigned(v.into());
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        self.unsigned(v.into());
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        self.unsigned(v.into());
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        self.unsigned(v);
        Ok(())
    }
    fn serialize_f32(self, _v: f32) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_f64(self, _v: f64) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_char(self, _v: char) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        escape_into(&mut self.0, v);
        Ok(())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        self.0.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Unsupported> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _value: &T,
    ) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>, Unsupported> {
        self.0.push(b'[');
        Ok(Compound {
            w: self,
            first: true,
            close: b']',
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Unsupported> {
        self.0.push(b'{');
        Ok(Compound {
            w: self,
            first: true,
            close: b'}',
        })
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        Err(Unsupported)
    }
}

struct Compound<'a> {
    w: &'a mut Writer,
    first: bool,
    close: u8,
}

impl Compound<'_> {
    fn comma(&mut self) {
        if !self.first {
            self.w.0.push(b',');
        }
        self.first = false;
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.comma();
        value.serialize(&mut *self.w)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.w.0.push(self.close);
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), Unsupported> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), Unsupported> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.comma();
        // Keys as given, like serde-json-core (the ticket's keys need no escape).
        self.w.0.push(b'"');
        self.w.0.extend_from_slice(key.as_bytes());
        self.w.0.extend_from_slice(b"\":");
        value.serialize(&mut *self.w)
    }
    fn end(self) -> Result<(), Unsupported> {
        ser::SerializeSeq::end(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(t: &impl Serialize) -> String {
        let mut buf = vec![0u8; 1 << 20];
        let n = serde_json_core::to_slice(t, &mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn writes_what_serde_json_core_writes() {
        let tricky: String =
            (0u8..0x80).map(char::from).collect::<String>() + "ä€😀 \u{7f}\u{2028}\"\\/";
        let raw = format!(
            "From: \"A \\\"B\\\"\" <a@b.test>\r\nTo: c@d.test, e@f.test\r\nSubject: x\"y\\z\ttab\r\n\
             Message-ID: <m1@b.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n\
             X-Priority: 1\r\nAuto-Submitted: auto-replied\r\nReferences: <a@x> <b@y>\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\nbody {tricky}\r\n--b\r\n\
             Content-Type: application/pdf; name=\"r\u{e9}port.pdf\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
        );
        let opts = crate::ticket::TicketOptions {
            add_ccs: true,
            ..Default::default()
        };
        let mut t = crate::ticket::build(raw.as_bytes(), &opts).unwrap();
        t.delivery_id = Some("INBOX:1:2".into());
        t.warnings.push(tricky.clone());
        assert_eq!(to_json(&t, 0).unwrap(), core(&t));
        assert_eq!(t.to_json(), core(&t));
        let t = crate::ticket::build(b"Subject: bare\r\n\r\n", &opts).unwrap();
        assert_eq!(to_json(&t, 0).unwrap(), core(&t));
        let numbers = (u64::MAX, -5i64, 0u32, true, None::<u8>);
        assert_eq!(to_json(&numbers, 0).unwrap(), core(&numbers));
        assert!(to_json(&1.5f64, 0).is_err());
    }
}
