//! uuencoded files: `begin 644 name` … `end` blocks inside a text body (old clients, mailing
//! list gateways) and parts sent with `Content-Transfer-Encoding: x-uuencode`. Each block
//! becomes an attachment; the text keeps what is around the blocks.
//!
//! Lenient like the decoders of the clients that still read it: a line's length character
//! says how many bytes it carries, characters are taken modulo 64 (both space and backtick
//! mean zero), short lines are padded. A block without its `end` line is not decoded (the text
//! stays as it is). Work is linear in the input.

/// One decoded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UuFile {
    /// The name on the `begin` line as written (may be empty).
    pub name: String,
    pub data: Vec<u8>,
}

/// Files on more lines than this are not looked for (a text body is not a file archive).
const MAX_FILES: usize = 100;

/// `begin <mode> <name>`: the mode is three or four octal digits.
fn begin_name(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("begin ")?;
    let (mode, name) = rest.split_once(' ')?;
    if !(3..=4).contains(&mode.len()) || !mode.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    Some(name.trim_end_matches(['\r', ' ', '\t']))
}

fn decode_line(line: &[u8], out: &mut Vec<u8>) {
    let Some((&first, rest)) = line.split_first() else {
        return;
    };
    let n = (first.wrapping_sub(b' ') & 0x3f) as usize;
    let dec = |c: u8| c.wrapping_sub(b' ') & 0x3f;
    let mut produced = 0;
    for q in rest.chunks(4) {
        if produced >= n {
            break;
        }
        let c = |i: usize| dec(q.get(i).copied().unwrap_or(b'`'));
        let bytes = [
            c(0) << 2 | c(1) >> 4,
            c(1) << 4 | c(2) >> 2,
            c(2) << 6 | c(3),
        ];
        let take = (n - produced).min(3);
        out.extend_from_slice(&bytes[..take]);
        produced += take;
    }
}

/// The uuencoded files in `text` and the text without them; None when it has none (the common
/// case, decided by one substring search).
pub(super) fn split_text(text: &str) -> Option<(Vec<UuFile>, String)> {
    if !text.contains("begin ") {
        return None;
    }
    let lines: Vec<&str> = text.split('\n').collect();
    // The `end` lines, found once: each `begin` looks up the next one (no rescans, so a text
    // of many `begin` lines without `end` stays linear).
    let ends: Vec<usize> = (0..lines.len())
        .filter(|&j| lines[j].trim_end() == "end")
        .collect();
    let mut files = Vec::new();
    let mut rest = String::with_capacity(text.len());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let (Some(name), true) = (begin_name(line), files.len() < MAX_FILES) {
            // Find the block's end; without one this is just text.
            let next = ends.partition_point(|&e| e <= i);
            if let Some(&end) = ends.get(next) {
                let mut data = Vec::new();
                for l in &lines[i + 1..end] {
                    decode_line(l.trim_end_matches('\r').as_bytes(), &mut data);
                }
                files.push(UuFile {
                    name: name.to_string(),
                    data,
                });
                i = end + 1;
                // A block between blank lines leaves one blank line, not two.
                let blank_before = rest.is_empty() || rest.ends_with("\n\n");
                if blank_before && lines.get(i).is_some_and(|l| l.trim().is_empty()) {
                    i += 1;
                }
                continue;
            }
        }
        rest.push_str(line);
        if i + 1 < lines.len() {
            rest.push('\n');
        }
        i += 1;
    }
    if files.is_empty() {
        None
    } else {
        Some((files, rest))
    }
}

/// A part sent with `Content-Transfer-Encoding: x-uuencode`: the first file in it.
pub(super) fn decode_part(bytes: &[u8]) -> Option<UuFile> {
    let text = String::from_utf8_lossy(bytes);
    split_text(&text).and_then(|(files, _)| files.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_blocks_and_keeps_the_text() {
        let (files, rest) =
            split_text("Hi,\n\nbegin 644 abc.txt\n#86)C\n`\nend\nBye\n").expect("a file");
        assert_eq!(
            files,
            vec![UuFile {
                name: "abc.txt".into(),
                data: b"abc".to_vec()
            }]
        );
        assert_eq!(rest, "Hi,\n\nBye\n");
        let (_, rest) = split_text("Hi,\n\nbegin 644 a\n#86)C\n`\nend\n\nBye").expect("a file");
        assert_eq!(rest, "Hi,\n\nBye");
        // CRLF lines, a longer line.
        let (files, _) =
            split_text("begin 600 x\r\n-:&5L;&\\@=V]R;&0A\"@  \r\n`\r\nend\r\n").expect("a file");
        assert_eq!(files[0].data, b"hello world!\n");
    }

    #[test]
    fn text_that_only_looks_like_it_stays() {
        assert!(split_text("begin 644 x\nno end line").is_none());
        assert!(split_text("Let us begin with this.\nend").is_none());
        assert!(split_text("begin 99 x\nend").is_none());
        // Many begin lines without an end stay fast and stay text.
        let many = "begin 644 x\n".repeat(20_000);
        assert!(split_text(&many).is_none());
        // Garbage inside a block never panics.
        let _ = split_text("begin 644 y\n\u{ff}\u{ff}\n\x7f\nM\nend\n");
    }
}
