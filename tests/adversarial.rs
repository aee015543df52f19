//! Hostile shapes of mail that must still give a ticket (with warnings) or a Mail error: no
//! panic, no hang, no quadratic blow-up. Sizes are a few MB so the suite stays quick in debug
//! builds; the fuzzer covers the rest (see fuzz/README.md).

use psa_mail_agent::ticket::{build, Ticket, TicketOptions};

fn ticket(raw: &[u8]) -> Ticket {
    let t = build(raw, &TicketOptions::default()).expect("a ticket");
    let json = t.to_json();
    assert!(json.starts_with('{') && json.ends_with('}'));
    t
}

const HEAD: &str =
    "From: a@example.com\r\nTo: help@example.com\r\nSubject: s\r\nMessage-ID: <x@example.com>\r\n";

#[test]
fn thousands_of_nested_multiparts() {
    let depth = 5000;
    let mut raw = String::from(HEAD);
    for d in 0..depth {
        raw.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{d}\"\r\n\r\n--b{d}\r\n"
        ));
    }
    raw.push_str("Content-Type: text/plain\r\n\r\ninnermost\r\n");
    for d in (0..depth).rev() {
        raw.push_str(&format!("--b{d}--\r\n"));
    }
    let t = ticket(raw.as_bytes());
    assert!(
        t.warnings.iter().any(|w| w.contains("nested")),
        "{:?}",
        t.warnings
    );
}

#[test]
fn huge_header_section() {
    let mut raw = String::from(HEAD);
    for i in 0..50_000 {
        raw.push_str(&format!("X-Filler-{i}: {}\r\n", "v".repeat(10)));
    }
    raw.push_str("\r\nbody\r\n");
    let t = ticket(raw.as_bytes());
    assert!(
        t.warnings.iter().any(|w| w.contains("header")),
        "{:?}",
        t.warnings
    );
    assert_eq!(t.body, "body");
}

#[test]
fn megabyte_subject_is_cut() {
    let raw = format!(
        "From: a@example.com\r\nSubject: {}\r\n\r\nbody\r\n",
        "word ".repeat(400_000)
    );
    let t = ticket(raw.as_bytes());
    assert!(t.subject.chars().count() <= 2000);
    assert!(t.warnings.iter().any(|w| w.contains("Subject")));
}

#[test]
fn pathological_html() {
    let mut html = String::new();
    html.push_str(&"<div><table><tr><td>".repeat(20_000));
    html.push_str("deep text");
    html.push_str(&"<a href='".repeat(1000));
    html.push_str(&"&amp".repeat(10_000));
    html.push_str(&"<".repeat(10_000));
    html.push_str("<script>never closed");
    let raw = format!("{HEAD}Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n");
    let t = ticket(raw.as_bytes());
    assert!(t.body_full.contains("deep text"));
}

#[test]
fn unterminated_boundaries_and_broken_encodings() {
    let raw = format!(
        "{HEAD}Content-Type: multipart/mixed; boundary=never\r\n\r\n--never\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         !!!!not base64 at all????\r\n--never\r\n\
         Content-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
         =ZZ=\r\n=4"
    );
    let _ = ticket(raw.as_bytes());
}

#[test]
fn a_million_quoted_lines() {
    let mut raw = String::from(HEAD);
    raw.push_str("\r\nnew text\r\n");
    raw.push_str(&"> old line\r\n".repeat(300_000));
    raw.push_str("trailing answer\r\n");
    let t = ticket(raw.as_bytes());
    assert!(t.body.starts_with("new text"));
}

#[test]
fn many_attachments_are_capped() {
    let mut raw = format!("{HEAD}Content-Type: multipart/mixed; boundary=z\r\n\r\n");
    for i in 0..3000 {
        raw.push_str(&format!(
            "--z\r\nContent-Type: application/octet-stream; name=f{i}.bin\r\n\r\nx\r\n"
        ));
    }
    raw.push_str("--z--\r\n");
    let t = ticket(raw.as_bytes());
    assert_eq!(t.attachments.len(), 1000);
    assert!(t.warnings.iter().any(|w| w.contains("not listed")));
}

#[test]
fn binary_noise_with_a_header() {
    let mut raw = b"Subject: noise\r\n\r\n".to_vec();
    let mut x: u32 = 12345;
    for _ in 0..200_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        raw.push((x >> 16) as u8);
    }
    let t = ticket(&raw);
    assert_eq!(t.from.address, "");
}
