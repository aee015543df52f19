//! Ticket building throughput on one core: the golden fixtures and demo mails, repeated to
//! about 50 MB, each built into a ticket and rendered as JSON.
//!
//! `cargo bench --bench parse` (plain timing harness; prints MB/s and messages/s).

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use psa_mail_agent::ticket::{build, TicketOptions};

const TARGET_BYTES: usize = 50 * 1024 * 1024;

/// CPU time this process has used, in seconds (Linux `/proc/self/stat`, USER_HZ = 100), so the
/// figures mean something on a machine whose cores are shared with other work.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn load(dir: &Path, out: &mut Vec<Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    paths.sort();
    for p in paths {
        if let Ok(raw) = std::fs::read(&p) {
            // IMAP delivers CRLF; the fixtures are stored with LF.
            let mut crlf = Vec::with_capacity(raw.len() + raw.len() / 20);
            for &b in &raw {
                if b == b'\n' && crlf.last() != Some(&b'\r') {
                    crlf.push(b'\r');
                }
                crlf.push(b);
            }
            out.push(crlf);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut corpus = Vec::new();
    load(&root.join("tests/fixtures/mail"), &mut corpus);
    load(&root.join("examples/mail"), &mut corpus);
    assert!(!corpus.is_empty(), "no fixtures found");
    let per_round: usize = corpus.iter().map(Vec::len).sum();
    let rounds = TARGET_BYTES.div_ceil(per_round);
    let opts = TicketOptions {
        add_ccs: true,
        ..TicketOptions::default()
    };

    // Warm-up round (page cache, allocator).
    for raw in &corpus {
        let _ = black_box(build(raw, &opts).map(|t| t.to_json()));
    }

    let cpu_start = cpu_seconds();
    let start = Instant::now();
    let mut messages = 0usize;
    let mut bytes = 0usize;
    let mut json_bytes = 0usize;
    for _ in 0..rounds {
        for raw in &corpus {
            let ticket = build(black_box(raw), &opts).expect("fixture builds");
            json_bytes += black_box(ticket.to_json()).len();
            messages += 1;
            bytes += raw.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_start.and_then(|s| Some(cpu_seconds()? - s));
    let mb = bytes as f64 / (1024.0 * 1024.0);
    println!(
        "parse: {messages} messages ({} distinct), {mb:.1} MB in {secs:.2} s on one core",
        corpus.len()
    );
    println!(
        "parse: {:.1} MB/s, {:.0} messages/s (avg {:.1} KB/message, {:.1} MB of JSON)",
        mb / secs,
        messages as f64 / secs,
        bytes as f64 / messages as f64 / 1024.0,
        json_bytes as f64 / (1024.0 * 1024.0)
    );
    if let Some(cpu) = cpu.filter(|c| *c > 0.0) {
        println!(
            "parse: per CPU second (ignores time the core served other processes): {:.1} MB/s, {:.0} messages/s",
            mb / cpu,
            messages as f64 / cpu
        );
    }
}
