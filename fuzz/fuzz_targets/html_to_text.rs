//! The HTML converter alone: any string → text, in both modes, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psa_mail_agent::ticket::{clean_body, html_to_text, Html2TextOptions};

fuzz_target!(|data: &[u8]| {
    let html = String::from_utf8_lossy(data);
    for strip_quotes in [false, true] {
        let text = html_to_text(
            &html,
            Html2TextOptions {
                strip_quotes,
                image_alt: true,
            },
        );
        let _ = clean_body(&text);
    }
});
