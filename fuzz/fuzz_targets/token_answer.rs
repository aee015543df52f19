//! Any bytes as the token endpoint's HTTP answer: parsed (HTTP/1.1, chunked or not, then every
//! JSON shape the OAuth flows read, and Microsoft's AADSTS mapping) without a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(message) = psa_mail_agent::oauth::fuzz_token_endpoint_answer(data) {
        assert!(message.len() < 4096, "error message of {} bytes", message.len());
    }
});
