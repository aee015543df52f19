//! Turns .eml files into ticket JSON, one line each — the library side of
//! `psa-mail-agent parse FILE...`.
//!
//! ```sh
//! cargo run --example parse_mail -- examples/mail/*.eml
//! ```

use std::process::ExitCode;

use psa_mail_agent::ticket::{build, TicketOptions};

fn main() -> ExitCode {
    let opts = TicketOptions {
        mailbox: "Helpdesk".to_string(),
        ..TicketOptions::default()
    };
    let mut failed = false;
    for path in std::env::args().skip(1) {
        let raw = match std::fs::read(&path) {
            Ok(raw) => raw,
            Err(e) => {
                eprintln!("{path}: {e}");
                failed = true;
                continue;
            }
        };
        match build(&raw, &opts) {
            Ok(ticket) => {
                println!("{}", ticket.to_json());
                for a in &ticket.attachments {
                    eprintln!(
                        "{path}: attachment {:?} ({} bytes, {})",
                        a.filename.as_deref().unwrap_or("(unnamed)"),
                        a.size,
                        a.content_type
                    );
                }
            }
            Err(e) => {
                eprintln!("{path}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
