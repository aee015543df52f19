//! Any bytes → a ticket or an error, never a panic or a hang; the JSON always renders.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psa_mail_agent::ticket::{build, TicketOptions};

static HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    // mail-parser panics on some inputs; `build` catches them and answers a Mail error, the
    // contract checked here. libfuzzer-sys's hook would abort on the caught panic too, so the
    // default hook is put back: only a panic escaping `build` crashes.
    HOOK.call_once(|| {
        let _ = std::panic::take_hook();
    });
    let opts = TicketOptions {
        max_attachment_bytes: 4096,
        add_ccs: true,
        ..TicketOptions::default()
    };
    if let Ok(ticket) = build(data, &opts) {
        let json = ticket.to_json();
        assert!(json.starts_with('{') && json.ends_with('}'));
    }
});
