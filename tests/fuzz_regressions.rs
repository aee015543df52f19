//! Inputs kept from fuzzing (`tests/fixtures/fuzz/*.bin`: a small spread of the corpus that
//! `cargo fuzz run parse_mail` grew, plus any minimised crasher). Each must give a ticket whose
//! JSON renders, or a Mail error — the fuzz target's contract, checked on every `cargo test`.

use psa_mail_agent::ticket::{build, TicketOptions};
use psa_mail_agent::ErrorKind;

#[test]
fn fuzz_inputs_give_a_ticket_or_a_mail_error() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let opts = TicketOptions {
        max_attachment_bytes: 4096,
        add_ccs: true,
        ..TicketOptions::default()
    };
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz fixtures") {
        let path = entry.expect("entry").path();
        let raw = std::fs::read(&path).expect("read");
        match build(&raw, &opts) {
            Ok(t) => {
                let json = t.to_json();
                assert!(
                    json.starts_with('{') && json.ends_with('}'),
                    "{}",
                    path.display()
                );
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::Mail, "{}: {e}", path.display()),
        }
        n += 1;
    }
    assert!(n >= 20, "only {n} fuzz inputs in {}", dir.display());
}
