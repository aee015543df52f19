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

/// Raw 8-bit bytes in address headers (an earlier fuzzing run found a panic there, in the
/// header decoding): every form must give a ticket. `build` turns a panic into a Mail error,
/// so `Ok` is demanded here — an error would hide a panic.
#[test]
fn eight_bit_address_headers_give_a_ticket() {
    let forms: &[&[u8]] = &[
        b"From: \xff\xfe <a@b.example>",
        b"From: \"\xe9\xe9\" <a@b.example>",
        b"From: a@b.example (\xff\xc3)",
        b"From: =?utf-8?q?\xff?= <a@b.example>",
        b"From: <\xff@b.example>",
        b"From: \xe4\xf6\xfc",
        b"From: \"a\\\xff\" <b@c.example>",
        b"From: \xc3",
        b"From: \xf0\x9f\x98",
        b"To: \xc3 <x@y.example>, \xe2\x82, g\xff: a@b.example;",
        b"Cc: \"\xe2\x80\" \xe2\x80 <c@d.example>,",
        b"Reply-To: \xe3\x81\x82\xe3 <r@s.example>",
        b"From: M\xfcller, J\xfcrgen <jm@fabrikam.example>",
    ];
    let opts = TicketOptions {
        add_ccs: true,
        ..TicketOptions::default()
    };
    for form in forms {
        for end in [&b"\n"[..], &b"\r\n"[..]] {
            let mut raw = form.to_vec();
            raw.extend_from_slice(end);
            raw.extend_from_slice(b"Subject: s\xe4\xff");
            raw.extend_from_slice(end);
            raw.extend_from_slice(end);
            raw.extend_from_slice(b"body");
            let t = build(&raw, &opts)
                .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(form)));
            assert!(t.to_json().starts_with('{'));
        }
    }
}
