//! Any bytes → a ticket or an error, never a panic or a hang; the JSON always renders.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psa_mail_agent::ticket::{build, TicketOptions};

fuzz_target!(|data: &[u8]| {
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
