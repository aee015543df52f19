//! Golden fixtures: every `tests/fixtures/mail/NAME.eml` must turn into the ticket in
//! `NAME.json` (pretty-printed, compared byte for byte). Each fixture runs twice: with LF line
//! ends (as stored) and with CRLF (as IMAP delivers); the CRLF ticket must equal the LF one,
//! except that text attachments' bytes carry CRLF.
//!
//! `PMA_BLESS=1 cargo test --test golden` rewrites the expectations. Review every changed
//! JSON by eye before committing: they are the specification.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use psa_mail_agent::ticket::{build, ThreadIndex, Ticket, TicketOptions};

/// Fewer fixtures than this means some went missing.
const MIN_CASES: usize = 40;

/// (where the mails are, where their expected tickets are): the fixtures, and the demo mails
/// in examples/mail (whose expectations live beside the fixtures, in `examples/`).
fn case_dirs() -> Vec<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    vec![
        (
            root.join("tests/fixtures/mail"),
            root.join("tests/fixtures/mail"),
        ),
        (
            root.join("examples/mail"),
            root.join("tests/fixtures/mail/examples"),
        ),
    ]
}

/// The options every fixture is built with: a helpdesk mailbox that adds CCs, knows its own
/// address and two Message-IDs it sent, and caps attachments at 64 KiB.
fn options() -> TicketOptions {
    let index = ThreadIndex::new(100);
    index.insert(
        "<notify.4711.20261120093000@helpdesk.contoso.com>",
        "T20261120.0042",
    );
    index.insert("<notify.4712.20261121101500@helpdesk.contoso.com>", "4712");
    TicketOptions {
        mailbox: "Helpdesk".to_string(),
        add_attachments: true,
        add_ccs: true,
        max_attachment_bytes: 64 * 1024,
        thread_index: Some(Arc::new(index)),
        own_addresses: vec!["helpdesk@contoso.com".to_string()],
        ..TicketOptions::default()
    }
}

/// Indents one-line JSON (two spaces), leaving empty `[]`/`{}` compact.
fn pretty(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    let mut indent = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    let chars: Vec<char> = json.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                if chars.get(i + 1) == Some(&close) {
                    out.push(c);
                    out.push(close);
                    i += 2;
                    continue;
                }
                indent += 1;
                out.push(c);
                out.push('\n');
                out.push_str(&"  ".repeat(indent));
            }
            '}' | ']' => {
                indent = indent.saturating_sub(1);
                out.push('\n');
                out.push_str(&"  ".repeat(indent));
                out.push(c);
            }
            ',' => {
                out.push(',');
                out.push('\n');
                out.push_str(&"  ".repeat(indent));
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
        i += 1;
    }
    out.push('\n');
    out
}

fn to_lf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\r' && raw.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

fn to_crlf(lf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lf.len() + lf.len() / 20);
    for &b in lf {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// The CRLF ticket with text attachments brought back to LF, to compare with the LF ticket.
fn crlf_as_lf(mut t: Ticket, lf: &Ticket) -> Ticket {
    for (a, b) in t.attachments.iter_mut().zip(lf.attachments.iter()) {
        if a.sha256 != b.sha256 && to_lf(&a.data) == b.data {
            a.data = b.data.clone();
            a.size = b.size;
            a.sha256 = b.sha256.clone();
        }
    }
    t
}

#[test]
fn golden_fixtures() {
    let bless = std::env::var("PMA_BLESS").is_ok_and(|v| v == "1");
    let mut names: Vec<(PathBuf, PathBuf)> = Vec::new();
    for (mails, expected) in case_dirs() {
        let mut here: Vec<(PathBuf, PathBuf)> = std::fs::read_dir(&mails)
            .unwrap_or_else(|e| panic!("{}: {e}", mails.display()))
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .map(|p| {
                let json = expected.join(p.with_extension("json").file_name().expect("name"));
                (p, json)
            })
            .collect();
        here.sort();
        names.extend(here);
    }
    let opts = options();
    let mut failures = Vec::new();
    let mut ran = 0usize;
    for (eml, expected_path) in &names {
        let raw = std::fs::read(eml).expect("read fixture");
        let lf = to_lf(&raw);
        let ticket =
            build(&lf, &opts).unwrap_or_else(|e| panic!("{}: build failed: {e}", eml.display()));
        let json = pretty(&ticket.to_json());
        if bless {
            if let Some(dir) = expected_path.parent() {
                std::fs::create_dir_all(dir).expect("expectation directory");
            }
            std::fs::write(expected_path, &json).expect("write expectation");
        } else {
            match std::fs::read_to_string(expected_path) {
                Ok(expected) if expected == json => {}
                Ok(expected) => failures.push(format!(
                    "{}: ticket differs from {}\n--- expected\n{expected}\n--- got\n{json}",
                    eml.display(),
                    expected_path.display()
                )),
                Err(_) => failures.push(format!(
                    "{}: no {} (run with PMA_BLESS=1 and review it)",
                    eml.display(),
                    expected_path.display()
                )),
            }
        }
        ran += 1;

        let crlf_ticket = build(&to_crlf(&lf), &opts)
            .unwrap_or_else(|e| panic!("{} (CRLF): build failed: {e}", eml.display()));
        let crlf_ticket = crlf_as_lf(crlf_ticket, &ticket);
        if crlf_ticket != ticket {
            failures.push(format!(
                "{}: CRLF variant differs\n--- LF\n{}\n--- CRLF\n{}",
                eml.display(),
                pretty(&ticket.to_json()),
                pretty(&crlf_ticket.to_json())
            ));
        }
        ran += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        ran >= MIN_CASES * 2,
        "only {ran} fixture runs; expected at least {} ({MIN_CASES} mails in LF and CRLF)",
        MIN_CASES * 2
    );
}

#[test]
fn pretty_printer_keeps_strings() {
    assert_eq!(
        pretty(r#"{"a":[],"b":"x,{}:\"y","c":[1,2]}"#),
        "{\n  \"a\": [],\n  \"b\": \"x,{}:\\\"y\",\n  \"c\": [\n    1,\n    2\n  ]\n}\n"
    );
}
