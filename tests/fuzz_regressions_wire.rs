//! Inputs the fuzzers found (tests/fixtures/fuzz-wire/<target>/), replayed through the same entry
//! points as the fuzz targets: each must pass without a panic escaping.

use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz-wire")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, std::fs::read(e.path()).unwrap())
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn imap_response_regressions() {
    let cases = inputs("imap_response");
    assert!(!cases.is_empty(), "fixtures missing");
    for (name, data) in cases {
        // The panic inside imap-proto is caught (and printed by the default hook); the call
        // itself must return.
        let _ = psa_mail_agent::imap::fuzz_server_bytes(&data);
        eprintln!("{name}: ok");
    }
}

#[test]
fn token_answer_regressions() {
    for (name, data) in inputs("token_answer") {
        if let Some(m) = psa_mail_agent::oauth::fuzz_token_endpoint_answer(&data) {
            assert!(m.len() < 4096, "{name}");
        }
    }
}
