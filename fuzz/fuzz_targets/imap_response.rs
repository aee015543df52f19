//! Any bytes as what an IMAP server sends: our response limit, async-imap's parser and our
//! mapping of server text into errors, without a panic, a hang or an unbounded message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = psa_mail_agent::imap::fuzz_server_bytes(data);
});
