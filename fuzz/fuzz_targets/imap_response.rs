//! Any bytes as what an IMAP server sends: our response limit, async-imap's parser and our
//! mapping of server text into errors, without a panic escaping, a hang or an unbounded message.
//!
//! imap-proto panics on some malformed status lines; the agent reads inside `with_timeout`,
//! which turns such a panic into a Protocol error. libfuzzer-sys's panic hook would abort on the
//! caught panic too, so the default hook is put back: only a panic that escapes crashes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Once;

static HOOK: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    HOOK.call_once(|| {
        let _ = std::panic::take_hook();
    });
    let _ = psa_mail_agent::imap::fuzz_server_bytes(data);
});
