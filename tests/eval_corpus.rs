//! The public evaluation corpus (tests/fixtures/public): `scripts/eval-corpus` scores `parse`
//! on the vendored messages of other mail projects' test suites and must hold the pass rates
//! recorded in manifest.json's `ratchet` (overall and per source). It also stops when the
//! corpus shrank (fewer than 300 distinct messages or 4 sources), a message changed, or a
//! source lost its LICENSE/SOURCE. The lead raises the ratchet with
//! `scripts/eval-corpus --record-ratchet` after ticket fixes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scorer(binary: &Path, extra: &[&str], report: &Path) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new("python3")
        .arg(root.join("scripts/eval-corpus"))
        .arg("--binary")
        .arg(binary)
        .arg("--report")
        .arg(report)
        .args(extra)
        .output()
        .expect("python3 must run scripts/eval-corpus (scripts/install-deps installs it)")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pma-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn parse_holds_the_recorded_pass_rates_on_the_public_corpus() {
    let dir = temp_dir("eval-corpus");
    let report = dir.join("report.txt");
    let out = scorer(
        Path::new(env!("CARGO_BIN_EXE_psa-mail-agent")),
        &[
            "--ratchet",
            "--min-messages",
            "300",
            "--min-sources",
            "4",
            "--failures",
            "0",
        ],
        &report,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/eval-corpus failed ({}):\n{stdout}\n{}\nrun scripts/eval-corpus for the failures",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("distinct messages") && std::fs::read_to_string(&report).unwrap() == stdout,
        "the report file must hold what was printed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The scorer is not vacuous: a `parse` that returns empty tickets must fail it.
#[test]
fn a_parse_that_loses_everything_fails_the_scorer() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("eval-corpus-empty");
    let fake = dir.join("psa-mail-agent");
    // `parse --config F FILE...`: one empty ticket per file.
    std::fs::write(
        &fake,
        "#!/bin/sh\nshift 3\nfor f in \"$@\"; do echo '{\"subject\":\"\",\"body\":\"\",\"attachments\":[]}'; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = scorer(
        &fake,
        &["--min-rate", "0.5", "--failures", "0"],
        &dir.join("report.txt"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("\nall "), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
