//! Outlook's rich text alone: any bytes as compressed RTF and as RTF → text or an error, never
//! a panic or a hang, and output bounded by the input (no decompression bomb beyond the limit).
#![no_main]

use libfuzzer_sys::fuzz_target;
use psa_mail_agent::ticket::rtf;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = rtf::decompress(data) {
        assert!(doc.len() <= rtf::MAX_RTF_BYTES);
        // A literal or a 2-byte reference of up to 17 bytes per input byte, at most.
        assert!(doc.len() <= data.len().saturating_mul(17));
        let _ = rtf::to_text(&doc);
    }
    let text = rtf::to_text(data);
    assert!(text.len() <= data.len().saturating_mul(4) + 64);
});
