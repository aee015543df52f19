//! Scale figure for `psa-mail-agent run` (not a test: `#[ignore]`, run by scripts/bench-idle):
//! how many idle mailboxes one process holds, its memory per mailbox, and the time from a new
//! mail to its ticket. Environment: PMA_BENCH_BIN (the binary, e.g. a release build),
//! PMA_BENCH_USERS (default 200), PMA_BENCH_SAMPLES (default 50).

mod support;

use psa_mail_agent::delivery::spool::ticket_stem;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::Harness;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn binary() -> PathBuf {
    std::env::var_os("PMA_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_psa-mail-agent")))
}

fn config(h: &Harness, dir: &Path, users: &[String]) -> PathBuf {
    let boxes: Vec<String> = users
        .iter()
        .map(|u| {
            format!(
                r#"{{"name": "{u}", "email": "{u}", "password": "{pw}",
                     "imap": {{"server": "{host}", "port": {port}, "ca_file": "{ca}", "timeout_secs": 30}}}}"#,
                pw = h.password,
                host = h.host(),
                port = h.imaps_port,
                ca = h.ca_file.display()
            )
        })
        .collect();
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"state_dir": "{}", "output": {{"kind": "spool", "dir": "{}"}}, "mailboxes": [{}]}}"#,
            dir.join("state").display(),
            dir.join("spool").display(),
            boxes.join(",")
        ),
    )
    .unwrap();
    path
}

/// The agent process, killed when dropped (a failed bench leaves nothing running).
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &Path) -> Agent {
    Agent(
        Command::new(binary())
            .args(["run", "--config"])
            .arg(config)
            .env("PMA_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(config.with_file_name("agent.log")).unwrap())
            .spawn()
            .unwrap(),
    )
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Context switches of every thread of `pid` so far (voluntary and not): each is a wake-up.
fn wakeups(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .map(|t| {
            let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            s.lines()
                .filter_map(|l| {
                    l.strip_prefix("voluntary_ctxt_switches:")
                        .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                })
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

fn idle_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("state"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".status.json"))
                .filter(|e| {
                    std::fs::read_to_string(e.path())
                        .is_ok_and(|t| t.contains("\"state\":\"idle\""))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Starts an agent for `n` fresh mailboxes, waits until all idle; returns (agent, dir, users,
/// seconds to all idle, RSS KiB once settled).
fn idle_agent(h: &Harness, n: usize, tag: &str) -> (Agent, PathBuf, Vec<String>, f64, u64) {
    let dir = std::env::temp_dir().join(format!(
        "pma-bench-{tag}-{}",
        support::unique_user("b").replace('@', "_")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let users: Vec<String> = (0..n)
        .map(|i| h.unique_user(&format!("bench{i}")))
        .collect();
    let cfg = config(h, &dir, &users);
    let t0 = Instant::now();
    let child = start(&cfg);
    loop {
        if idle_count(&dir) == n {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "only {} of {n} mailboxes idle after 300 s; see {}",
            idle_count(&dir),
            dir.join("agent.log").display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let secs = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let rss = rss_kib(child.0.id());
    (child, dir, users, secs, rss)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
#[ignore = "benchmark: run scripts/bench-idle"]
fn bench_idle_mailboxes() {
    let h = Harness::get();
    let n = env_num("PMA_BENCH_USERS", 200);
    let samples = env_num("PMA_BENCH_SAMPLES", 50);
    eprintln!("binary: {}", binary().display());

    let (one, _, _, _, rss_one) = idle_agent(h, 1, "one");
    drop(one);

    let (mut agent, dir, users, secs, rss_n) = idle_agent(h, n, "many");
    let fds = std::fs::read_dir(format!("/proc/{}/fd", agent.0.id()))
        .map(|d| d.count())
        .unwrap_or(0);
    let per_box = (rss_n.saturating_sub(rss_one)) as f64 / (n.max(2) - 1) as f64;
    eprintln!(
        "{n} mailboxes idle after {secs:.1} s; RSS {rss_n} KiB (1 mailbox: {rss_one} KiB), \
         {per_box:.0} KiB per extra mailbox; {fds} open file descriptors"
    );
    // Between IDLE refreshes nothing should wake the process: count its threads' context
    // switches over a quiet stretch.
    let quiet = env_num("PMA_BENCH_QUIET_SECS", 20);
    let before = wakeups(agent.0.id());
    std::thread::sleep(Duration::from_secs(quiet as u64));
    let woken = wakeups(agent.0.id()).saturating_sub(before);
    eprintln!(
        "idle for {quiet} s with {n} mailboxes: {woken} wake-ups ({:.2}/s)",
        woken as f64 / quiet as f64
    );

    let spool = dir.join("spool");
    let mut lat = Vec::new();
    for i in 0..samples {
        let u = &users[(i * 7919) % users.len()];
        let id = format!("bench-{i}-{u}");
        let name = spool.join(format!("{}.json", ticket_stem(u, &id)));
        let raw = format!(
            "From: c@fabrikam.test\r\nSubject: bench {i}\r\nMessage-ID: <{id}>\r\n\r\nhello\r\n"
        );
        h.append(u, "INBOX", raw.as_bytes(), &[]);
        let t = Instant::now();
        while !name.exists() {
            assert!(t.elapsed() < Duration::from_secs(30), "no ticket for {id}");
            std::thread::sleep(Duration::from_millis(2));
        }
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let slow = lat.iter().filter(|l| **l > 5000.0).count();
    eprintln!(
        "new mail -> ticket file ({samples} samples, from APPEND done, {n} idle mailboxes): \
         p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {slow} sample(s) over 5 s",
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
    if slow > 0 {
        eprintln!(
            "  (samples near 30 s: Dovecot's own fallback when it runs out of inotify instances, \
             fs.inotify.max_user_instances, and checks idle mailboxes every 30 s; see its log)"
        );
    }
    let rss_after = rss_kib(agent.0.id());
    eprintln!("RSS after the samples: {rss_after} KiB");
    let _ = Command::new("kill")
        .args(["-TERM", &agent.0.id().to_string()])
        .status();
    let t = Instant::now();
    let code = agent.0.wait().unwrap().code();
    eprintln!(
        "SIGTERM with {n} mailboxes: exit {code:?} after {:.2} s",
        t.elapsed().as_secs_f64()
    );
}
