//! Crash consistency: the real binary (`psa-mail-agent fetch`, OAuth on) is killed with SIGKILL
//! at random moments (during FETCH, between delivery and ack, while writing the state or the
//! token cache). After every kill the state file and the token cache must parse and the next
//! start must resume; at the end every message is delivered (union of all outputs, deduplicated
//! by key) and acknowledged on the server.
//!
//! Rounds: `PMA_CRASH_ROUNDS` (default 15; `scripts/stress` runs hundreds), seed
//! `PMA_CRASH_SEED` (default 7).

mod support;

use psa_mail_agent::state::{self, StatePaths};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::faultproxy::XorShift;
use support::Harness;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mail(tag: &str, i: usize) -> Vec<u8> {
    format!(
        "From: customer@fabrikam.test\r\nTo: helpdesk@contoso.test\r\nSubject: crash {i}\r\n\
         Message-ID: <{tag}-{i}@fabrikam.test>\r\n\r\nbody {i}\r\n{}\r\n",
        "line of text\r\n".repeat(40)
    )
    .into_bytes()
}

/// The token cache's fields a reader needs (unknown ones are ignored).
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct CacheCheck {
    version: u32,
    username: String,
    refresh_token: Option<String>,
    expires_at: u64,
}

fn check_files(paths: &StatePaths, round: u64) {
    state::load(&paths.state)
        .unwrap_or_else(|e| panic!("round {round}: state does not parse after the kill: {e}"));
    if let Ok(text) = std::fs::read_to_string(&paths.token_cache) {
        let mut scratch = vec![0u8; text.len()];
        serde_json_core::from_str_escaped::<CacheCheck>(&text, &mut scratch).unwrap_or_else(|e| {
            panic!("round {round}: token cache does not parse after the kill: {e:?}")
        });
    }
}

/// Complete lines (ending in a newline) of an output file; a line cut by the kill is no delivery.
fn delivered_keys(out: &Path) -> Vec<String> {
    delivered(out).into_iter().map(|(_, key)| key).collect()
}

/// (subject, dedupe key) of each complete line of an output file.
fn delivered(out: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .map(|l| {
            let field = |name: &str| {
                support::json_field(l, name).unwrap_or_else(|| {
                    panic!("{}: a complete line without {name}: {l}", out.display())
                })
            };
            (field("subject"), field("dedupe_key"))
        })
        .collect()
}

#[test]
fn kill_9_at_random_points_loses_nothing_and_corrupts_nothing() {
    let rounds = env_u64("PMA_CRASH_ROUNDS", 15);
    let mut rng = XorShift::new(env_u64("PMA_CRASH_SEED", 7));
    let h = Harness::get();
    let user = h.unique_user("crash");
    let tag = user.replace('@', ".");
    let dir = std::env::temp_dir().join(format!("pma-crash-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.json");
    let json = format!(
        r#"{{"state_dir": "{state}", "mailboxes": [{{"name": "Helpdesk", "email": "{user}",
             "username": "{user}", "password_env": "PMA_CRASH_PASSWORD", "batch_size": 3,
             "imap": {{"server": "127.0.0.1", "port": {port}, "ca_file": "{ca}", "timeout_secs": 5}},
             "oauth": {{"enabled": true, "application_id": "app-public",
                        "directory_id": "contoso-tenant", "authority": "{idp}"}}}}]}}"#,
        state = dir.join("state").display(),
        port = h.imaps_port,
        ca = h.ca_file.display(),
        idp = h.idp_url,
    );
    std::fs::write(&config, json).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let paths = StatePaths::new(&dir.join("state"), "Helpdesk");
    let bin = env!("CARGO_BIN_EXE_psa-mail-agent");

    let mut total = 0;
    let mut expected = BTreeSet::new();
    let mut add = |n: usize, total: &mut usize| {
        for _ in 0..n {
            h.append(&user, "INBOX", &mail(&tag, *total), &[]);
            expected.insert(format!("{tag}-{}@fabrikam.test", *total));
            *total += 1;
        }
    };
    add(12, &mut total);

    let launch = |out: &Path| {
        Command::new(bin)
            .args(["fetch", "--config"])
            .arg(&config)
            .env("PMA_CRASH_PASSWORD", &h.password)
            .env("PMA_LOG", "info")
            .stdout(std::fs::File::create(out).unwrap())
            .stderr(std::fs::File::create(out.with_extension("err")).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn psa-mail-agent")
    };
    let mut outputs: Vec<PathBuf> = Vec::new();
    let (mut killed, mut finished) = (0, 0);
    let started = Instant::now();
    // How long an uninterrupted run takes (learnt from runs that finished): kills are spread
    // over that span, from process start to the last acknowledgement.
    let mut run_ms: u64 = 150;
    for round in 0..rounds {
        add(1 + rng.below(5) as usize, &mut total);
        // Expired tokens make the run renew them (and rewrite the token cache) mid-way.
        if rng.chance(30) {
            h.idp(&format!("/_test/expire_access_tokens?user={user}"));
        }
        let out = dir.join(format!("round-{round}.out"));
        let mut child = launch(&out);
        let delay = Duration::from_millis(rng.below(run_ms * 5 / 4 + 1));
        let t = Instant::now();
        let mut exited = None;
        while t.elapsed() < delay {
            if let Some(s) = child.try_wait().unwrap() {
                exited = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        match exited {
            Some(_) => {
                finished += 1;
                run_ms = (run_ms + t.elapsed().as_millis() as u64) / 2;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                killed += 1;
            }
        }
        outputs.push(out);
        check_files(&paths, round);
    }
    // Recovery: runs to completion until one finds nothing more to do.
    let mut clean_runs = 0;
    loop {
        let out = dir.join(format!("final-{clean_runs}.out"));
        let mut child = launch(&out);
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                panic!("a recovery run hangs: still running after 120 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let err = std::fs::read_to_string(out.with_extension("err")).unwrap_or_default();
        assert!(status.success(), "final run failed ({status}):\n{err}");
        let n = delivered_keys(&out).len();
        outputs.push(out);
        clean_runs += 1;
        if n == 0 || clean_runs >= 5 {
            break;
        }
    }
    check_files(&paths, rounds);

    let tickets: Vec<(String, String)> = outputs.iter().flat_map(|o| delivered(o)).collect();
    let all: Vec<String> = tickets.iter().map(|(_, k)| k.clone()).collect();
    // What a PSA that drops repeated dedupe keys would still store twice: a message (its
    // subject is unique here) delivered under more than one dedupe key.
    let mut keys_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (subject, key) in &tickets {
        keys_of.entry(subject).or_default().insert(key);
    }
    let duplicates_after_dedupe: usize = keys_of.values().map(|k| k.len() - 1).sum();
    let unique: BTreeSet<String> = all.iter().cloned().collect();
    let lost: Vec<_> = expected.difference(&unique).collect();
    let foreign: Vec<_> = unique.difference(&expected).collect();
    let leftovers = std::fs::read_dir(dir.join("state"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                .count()
        })
        .unwrap_or(0);
    println!(
        "crash: rounds={rounds} killed={killed} finished_before_kill={finished} messages={total} \
         delivered={} unique={} lost={} duplicates_after_dedupe={duplicates_after_dedupe} redeliveries={} foreign={} \
         temp_files_left={leftovers} in {:?}",
        all.len(),
        unique.len(),
        lost.len(),
        all.len() - unique.len(),
        foreign.len(),
        started.elapsed()
    );
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert_eq!(duplicates_after_dedupe, 0, "{keys_of:?}");
    assert!(foreign.is_empty(), "unknown keys: {foreign:?}");
    let msgs = h.list_messages(&user, "INBOX");
    assert_eq!(msgs.len(), total);
    let unseen: Vec<u32> = msgs
        .iter()
        .filter(|(_, f, _)| !f.iter().any(|x| x == "\\Seen"))
        .map(|(u, _, _)| *u)
        .collect();
    assert!(unseen.is_empty(), "not acknowledged: UIDs {unseen:?}");
    assert!(killed > 0, "no run was killed: the delays are too long");
    assert_eq!(
        leftovers, 0,
        "temporary files of killed writes are cleaned up at the next start"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
