//! A small, strict JSON reader (RFC 8259) for the configuration.
//!
//! We keep our own instead of serde-json-core because configuration errors must name the key path
//! and the type actually found (`mailboxes[0].imap.port: expected an integer 1..65535, found string
//! "993"`), which needs the parsed tree rather than a derive. Strictness is deliberate: duplicate
//! keys are errors (the second would silently win elsewhere), nesting is bounded, and every error
//! carries a line and column. No input makes it panic.
//!
//! Values may hold inline secrets: never log a [`Value`].

use std::collections::HashMap;
use std::fmt;

/// Deepest nesting of arrays and objects accepted; the configuration needs 3.
pub(crate) const MAX_DEPTH: usize = 64;

/// A parsed JSON value. Objects keep their members in file order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

/// A number exactly as written (grammar-checked), converted on demand so that integers beyond
/// f64 precision are neither rounded nor accepted by accident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Number(String);

impl Number {
    /// The number as an unsigned integer, if it is written as one and fits.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    /// The number as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why the text is not JSON, and where (1-based line and column, columns in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// Parses one JSON value (any type, surrounded by optional whitespace). A leading UTF-8 byte
/// order mark is skipped, as Windows editors write one.
pub(crate) fn parse(text: &str) -> Result<Value, ParseError> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
        bom: 0,
    };
    if text.starts_with('\u{feff}') {
        p.bom = '\u{feff}'.len_utf8();
        p.pos = p.bom;
    }
    p.skip_ws();
    let value = p.value()?;
    p.skip_ws();
    if p.pos < p.bytes.len() {
        return Err(p.error(format!(
            "unexpected {} after the end of the JSON value (one file holds one value)",
            p.describe_here()
        )));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    /// Always on a char boundary: it only moves past ASCII bytes or whole runs of a string.
    pos: usize,
    depth: usize,
    bom: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        self.error_at(self.pos, message)
    }

    fn error_at(&self, pos: usize, message: impl Into<String>) -> ParseError {
        let (line, column) = self.line_column(pos);
        ParseError {
            line,
            column,
            message: message.into(),
        }
    }

    fn line_column(&self, pos: usize) -> (usize, usize) {
        let pos = pos.min(self.bytes.len());
        let before = &self.bytes[..pos];
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(self.bom, |i| i + 1);
        // Count characters, not bytes: UTF-8 continuation bytes do not start a character.
        let column = 1 + before[line_start.min(pos)..]
            .iter()
            .filter(|&&b| b & 0xC0 != 0x80)
            .count();
        (line, column)
    }

    /// What is at the current position, for messages. Shows one character at most, so that an
    /// error inside an inline password cannot reveal it.
    fn describe_here(&self) -> String {
        match self.text.get(self.pos..).and_then(|s| s.chars().next()) {
            None => "end of input".to_string(),
            Some(c) => format!("character '{}'", printable(c)),
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!(
                "arrays and objects nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(())
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        match self.peek() {
            None => Err(self.error("unexpected end of input; expected a value")),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'\'') => Err(self.error("strings must use double quotes (\"), not single quotes")),
            Some(b'/') => Err(self.error("comments are not allowed in JSON")),
            Some(b'T' | b'F' | b'N') => {
                let rest = &self.bytes[self.pos..];
                let word = ["true", "false", "null"].into_iter().find(|w| {
                    rest.get(..w.len())
                        .is_some_and(|r| r.eq_ignore_ascii_case(w.as_bytes()))
                });
                Err(self.error(match word {
                    Some(w) => format!("JSON literals are lower case: write {w}"),
                    None => format!("unexpected {}; expected a value", self.describe_here()),
                }))
            }
            Some(_) => Err(self.error(format!(
                "unexpected {}; expected a value (an object, array, string, number, true, false or null)",
                self.describe_here()
            ))),
        }
    }

    fn literal(&mut self, word: &'static str, value: Value) -> Result<Value, ParseError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error(format!(
                "unexpected {}; expected a value (did you mean {word}? JSON literals are lower case)",
                self.describe_here()
            )))
        }
    }

    fn object(&mut self) -> Result<Value, ParseError> {
        self.enter()?;
        self.pos += 1; // '{'
        let mut members: Vec<(String, Value)> = Vec::new();
        let mut first_seen: HashMap<String, usize> = HashMap::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            let key_pos = self.pos;
            match self.peek() {
                Some(b'"') => {}
                Some(b'}') if !members.is_empty() => {
                    return Err(self.error("trailing comma before '}' is not allowed in JSON"))
                }
                Some(b'\'') => {
                    return Err(self.error("keys must use double quotes (\"), not single quotes"))
                }
                _ => {
                    return Err(self.error(format!(
                        "expected a key in double quotes, found {}",
                        self.describe_here()
                    )))
                }
            }
            let key = self.string()?;
            if let Some(&first) = first_seen.get(&key) {
                let (line, column) = self.line_column(first);
                return Err(self.error_at(
                    key_pos,
                    format!(
                        "duplicate key \"{}\" (first at line {line}, column {column})",
                        shorten(&key)
                    ),
                ));
            }
            first_seen.insert(key.clone(), key_pos);
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.error(format!(
                    "expected ':' after the key \"{}\", found {}",
                    shorten(&key),
                    self.describe_here()
                )));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value()?;
            members.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => {
                    return Err(self.error(format!(
                        "expected ',' or '}}' after an object member, found {}",
                        self.describe_here()
                    )))
                }
            }
        }
        self.depth -= 1;
        Ok(Value::Object(members))
    }

    fn array(&mut self) -> Result<Value, ParseError> {
        self.enter()?;
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            if self.peek() == Some(b']') {
                return Err(self.error("trailing comma before ']' is not allowed in JSON"));
            }
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                _ => {
                    return Err(self.error(format!(
                        "expected ',' or ']' after an array element, found {}",
                        self.describe_here()
                    )))
                }
            }
        }
        self.depth -= 1;
        Ok(Value::Array(items))
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1; // '"'
        let mut out = String::new();
        loop {
            let run = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The run stops only at ASCII bytes (or the end), which are char boundaries.
            out.push_str(self.text.get(run..self.pos).unwrap_or_default());
            match self.peek() {
                None => {
                    return Err(
                        self.error_at(start, "unterminated string: the closing '\"' is missing")
                    )
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => self.escape(&mut out)?,
                Some(_) => {
                    return Err(self.error(
                        "control character in a string: write line breaks and tabs as \\n and \\t",
                    ))
                }
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), ParseError> {
        let backslash = self.pos;
        self.pos += 1;
        let simple = match self.peek() {
            None => return Err(self.error("unterminated string: input ends after '\\'")),
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let unit = self.hex4()?;
                let c = match unit {
                    0xD800..=0xDBFF => {
                        if !self.bytes[self.pos..].starts_with(b"\\u") {
                            return Err(self.error_at(
                                backslash,
                                "\\u escape of a high surrogate not followed by a low surrogate \\uDC00..\\uDFFF",
                            ));
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.error_at(
                                backslash,
                                "\\u escape of a high surrogate not followed by a low surrogate \\uDC00..\\uDFFF",
                            ));
                        }
                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    0xDC00..=0xDFFF => {
                        return Err(self.error_at(
                            backslash,
                            "\\u escape of a low surrogate without a high surrogate before it",
                        ))
                    }
                    _ => unit,
                };
                let c = char::from_u32(c).ok_or_else(|| {
                    self.error_at(backslash, "\\u escape does not name a character")
                })?;
                out.push(c);
                return Ok(());
            }
            Some(_) => {
                return Err(self.error_at(
                    backslash,
                    format!(
                        "invalid escape '\\{}'; allowed: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX \
                         (in a Windows path write \\\\ or /)",
                        printable(
                            self.text
                                .get(self.pos..)
                                .and_then(|s| s.chars().next())
                                .unwrap_or(' ')
                        )
                    ),
                ))
            }
        };
        self.pos += 1;
        out.push(simple);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let mut unit = 0u32;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| (b as char).to_digit(16))
                .ok_or_else(|| self.error("\\u must be followed by four hex digits"))?;
            unit = unit * 16 + digit;
            self.pos += 1;
        }
        Ok(unit)
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.error_at(start, "numbers must not have leading zeros"));
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("expected a digit after '-'")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("expected a digit after the decimal point"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("expected a digit in the exponent"));
            }
            self.digits();
        }
        let raw = self.text.get(start..self.pos).unwrap_or_default();
        Ok(Value::Number(Number(raw.to_string())))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }
}

/// A character for a message: control characters escaped, everything else as is.
fn printable(c: char) -> String {
    if c.is_control() {
        c.escape_debug().to_string()
    } else {
        c.to_string()
    }
}

/// A key or text for a message: escaped and at most 60 characters.
pub(crate) fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(60).flat_map(char::escape_debug).collect();
    if s.chars().nth(60).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::String(v.to_string())
    }

    fn err(text: &str) -> ParseError {
        parse(text).expect_err(text)
    }

    #[test]
    fn scalars_and_nesting() {
        assert_eq!(parse(" null ").unwrap(), Value::Null);
        assert_eq!(parse("true").unwrap(), Value::Bool(true));
        assert_eq!(parse("false").unwrap(), Value::Bool(false));
        assert_eq!(parse("\"x\"").unwrap(), s("x"));
        let v = parse(r#"{"a": [1, -2.5e+3, {"b": []}, {}], "c": "d"}"#).unwrap();
        let Value::Object(m) = v else { panic!() };
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].0, "a");
        let Value::Array(items) = &m[0].1 else {
            panic!()
        };
        assert_eq!(items[0], Value::Number(Number("1".into())));
        assert_eq!(items[1], Value::Number(Number("-2.5e+3".into())));
        assert_eq!(m[1], ("c".to_string(), s("d")));
    }

    #[test]
    fn numbers_keep_their_text_and_integers_convert_exactly() {
        let n = |t: &str| match parse(t).unwrap() {
            Value::Number(n) => n,
            _ => panic!(),
        };
        assert_eq!(n("993").as_u64(), Some(993));
        assert_eq!(n("18446744073709551615").as_u64(), Some(u64::MAX));
        assert_eq!(n("18446744073709551616").as_u64(), None);
        assert_eq!(n("993.0").as_u64(), None);
        assert_eq!(n("1e3").as_u64(), None);
        assert_eq!(n("-1").as_u64(), None);
        assert_eq!(n("-0").as_str(), "-0");
        assert_eq!(n("0.5E-7").as_str(), "0.5E-7");
    }

    #[test]
    fn all_escapes_and_surrogate_pairs() {
        assert_eq!(
            parse(r#""\" \\ \/ \b \f \n \r \t \u0041 \u00e9 \u20AC""#).unwrap(),
            s("\" \\ / \u{8} \u{c} \n \r \t A é €")
        );
        assert_eq!(parse(r#""\uD83D\uDE00""#).unwrap(), s("😀"));
        assert_eq!(parse(r#""\ud834\udd1e""#).unwrap(), s("𝄞"));
        assert_eq!(parse("\"grüße 😀\"").unwrap(), s("grüße 😀"));
        assert_eq!(parse(r#""\u0000""#).unwrap(), s("\0"));
    }

    #[test]
    fn lone_surrogates_are_errors() {
        assert!(err(r#""\uD83D""#).message.contains("low surrogate"));
        assert!(err(r#""\uD83Dx""#).message.contains("low surrogate"));
        assert!(err(r#""\uD83D\u0041""#).message.contains("low surrogate"));
        assert!(err(r#""\uDE00""#)
            .message
            .contains("without a high surrogate"));
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = err("{\n  \"a\": 1,\n  \"b\" 2\n}");
        assert_eq!((e.line, e.column), (3, 7), "{e}");
        assert!(e.message.contains("expected ':'"), "{e}");
        assert_eq!(e.to_string(), format!("line 3, column 7: {}", e.message));
        // Columns count characters, not bytes.
        let e = err("{\"ä\": x}");
        assert_eq!((e.line, e.column), (1, 7), "{e}");
        // A byte order mark is skipped and not counted.
        assert_eq!(parse("\u{feff}{}").unwrap(), Value::Object(vec![]));
        let e = err("\u{feff}{x}");
        assert_eq!((e.line, e.column), (1, 2), "{e}");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = err("{\"name\": 1,\n \"name\": 2}");
        assert_eq!((e.line, e.column), (2, 2));
        assert!(
            e.message
                .contains("duplicate key \"name\" (first at line 1, column 2)"),
            "{e}"
        );
        // Same key in different objects is fine.
        assert!(parse(r#"[{"a":1},{"a":2}]"#).is_ok());
    }

    #[test]
    fn friendly_messages_for_common_mistakes() {
        assert!(err(r#"{"a": 1,}"#).message.contains("trailing comma"));
        assert!(err("[1,]").message.contains("trailing comma"));
        assert!(err("{'a': 1}").message.contains("double quotes"));
        assert!(err("// hi\n{}").message.contains("comments"));
        assert!(err("True").message.contains("lower case"));
        assert!(err(r#""C:\state""#).message.contains("Windows path"));
        assert!(err("\"a\nb\"").message.contains("control character"));
        assert!(err("01").message.contains("leading zeros"));
        assert!(err("{} {}").message.contains("after the end"));
        assert!(err("\"abc").message.contains("unterminated"));
    }

    #[test]
    fn depth_is_bounded() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(err(&deep).message.contains("nested deeper"));
        // Far deeper than the bound must fail cleanly, not overflow the stack.
        assert!(parse(&"{\"a\":".repeat(100_000)).is_err());
    }

    #[test]
    fn malformed_inputs_are_errors_not_panics() {
        let cases = [
            "",
            " ",
            "{",
            "}",
            "[",
            "]",
            "{]",
            "[}",
            ",",
            ":",
            "\"",
            "\\",
            "-",
            "--1",
            "+1",
            ".5",
            "1.",
            "1e",
            "1e+",
            "1.e5",
            "0x10",
            "NaN",
            "Infinity",
            "-Infinity",
            "nul",
            "tru",
            "fals",
            "nulll",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\" 1}",
            "{a:1}",
            "{1:1}",
            "[1 2]",
            "[,1]",
            "[1,,2]",
            "{\"a\":1,,\"b\":2}",
            "\"\\u12\"",
            "\"\\u12G4\"",
            "\"\\x\"",
            "\"\\",
            "\"\\u",
            "\"\\uD800\\u",
            "\"\\uD800\\",
            "\u{0}",
            "\"\u{1f}\"",
            "[\"a\"\"b\"]",
            "{\"a\":1}}",
            "[[[]]",
            "\u{feff}",
            "\u{feff}\u{feff}{}",
            "é",
            "{\"é\":é}",
            "[1]x",
            "{\"a\":{\"b\":{\"c\":[1,2,{\"d\":}]}}}",
            "\"\\uDBFF\\uDBFF\"",
            "[-]",
            "[1e999999999999999999]x",
        ];
        for case in cases {
            let e = parse(case).expect_err(case);
            assert!(e.line >= 1 && e.column >= 1, "{case:?}: {e}");
            assert!(!e.message.is_empty());
        }
        // Every prefix and every single-byte corruption of a realistic document.
        let doc = r#"{"state_dir": "./s", "output": {"kind": "webhook", "url": "https://x/\u00e9"},
            "mailboxes": [{"name": "H\"d", "port": 993, "n": -1.5e-3, "t": true, "f": false, "z": null}]}"#;
        assert!(parse(doc).is_ok());
        for end in 0..doc.len() {
            if let Some(prefix) = doc.get(..end) {
                assert!(parse(prefix).is_err(), "prefix {end} parsed");
            }
        }
        let replacements = [
            b'{', b'}', b'[', b']', b'"', b'\\', b',', b':', b' ', b'0', b'-', b'e', b'x', 0,
        ];
        for i in 0..doc.len() {
            for &r in &replacements {
                let mut bytes = doc.as_bytes().to_vec();
                bytes[i] = r;
                if let Ok(text) = std::str::from_utf8(&bytes) {
                    let _ = parse(text); // must return, Ok or Err
                }
            }
        }
    }
}
