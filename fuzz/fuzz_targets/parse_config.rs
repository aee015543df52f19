//! Any text given as a configuration yields a config or an error, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psa_mail_agent::config::{Config, Mailbox};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let base = Path::new("/nonexistent/psa-mail-agent-fuzz");
    // No environment: every *_env lookup fails the same way on every run.
    let _ = Config::from_json_with_env(text, base, &|_| None);
    let _ = Mailbox::from_json_incomplete(text, base);
});
