//! `run` as operators run it, on the real harness: Prometheus metrics and probes scraped while
//! mail arrives, several agents sharing mailboxes with `--shard` (exactly once, also after a
//! re-shard from 3 to 4 agents), JSON and journald log formats.
//!
//! Waits use generous deadlines only to fail instead of hanging; nothing asserts a duration.

mod support;

use psa_mail_agent::daemon::shard::owner;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::Harness;

const BIN: &str = env!("CARGO_BIN_EXE_psa-mail-agent");
const DEADLINE: Duration = Duration::from_secs(60);

fn workdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "pma-ops-{tag}-{}",
        support::unique_user("o").replace('@', "_")
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A Basic mailbox entry named `name` reading `user`, with `password`.
fn basic(h: &Harness, name: &str, user: &str, password: &str) -> String {
    format!(
        r#"{{"name": "{name}", "email": "{user}", "password": "{password}",
             "imap": {{"server": "{host}", "port": {port}, "ca_file": "{ca}", "timeout_secs": 10}}}}"#,
        host = h.host(),
        port = h.imaps_port,
        ca = h.ca_file.display(),
    )
}

/// An OAuth 2.0 mailbox (password flow at the harness's identity endpoint).
fn oauth(h: &Harness, name: &str, user: &str) -> String {
    format!(
        r#"{{"name": "{name}", "email": "{user}", "password": "{pw}",
             "imap": {{"server": "{host}", "port": {port}, "ca_file": "{ca}", "timeout_secs": 10}},
             "oauth": {{"enabled": true, "application_id": "app-public", "directory_id": "contoso-tenant",
                        "authority": "{idp}"}}}}"#,
        pw = h.password,
        host = h.host(),
        port = h.imaps_port,
        ca = h.ca_file.display(),
        idp = h.idp_url,
    )
}

fn write_config(path: &Path, state: &Path, output: &str, mailboxes: &[String], top: &str) {
    let text = format!(
        r#"{{"state_dir": "{state}", "output": {output}, "mailboxes": [{list}]{top}}}"#,
        state = state.display(),
        list = mailboxes.join(",\n"),
    );
    std::fs::write(path, text).unwrap();
}

fn mail(subject: &str, id: &str) -> Vec<u8> {
    format!(
        "From: Customer <customer@fabrikam.test>\r\nTo: helpdesk@contoso.test\r\nSubject: {subject}\r\n\
         Message-ID: <{id}>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nPlease help with {subject}.\r\n"
    )
    .into_bytes()
}

/// Appends one message per id to `user`'s INBOX in one session.
fn append_all(h: &Harness, user: &str, ids: &[String]) {
    smol::block_on(async {
        let mut s = h.login(user).await;
        for id in ids {
            s.append("INBOX", None, None, mail("help", id))
                .await
                .unwrap();
        }
        let _ = s.logout().await;
    })
}

/// A running agent; killed when dropped so a failing test leaves nothing behind.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn start(
        config: &Path,
        tag: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stdout: Stdio,
    ) -> Agent {
        let log = config.with_file_name(format!("agent-{tag}.log"));
        let err = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .args(args)
            .env("PMA_LOG", "info")
            .env_remove("PMA_SHARD")
            .env_remove("PMA_LOG_FORMAT")
            .env_remove("JOURNAL_STREAM")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(err)
            .spawn()
            .unwrap();
        Agent { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// SIGTERM, then the exit code.
    fn terminate(mut self) -> Option<i32> {
        self.signal("-TERM");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 20 ms until it holds; panics with `what` and `logs` after `limit`.
fn wait_until(
    limit: Duration,
    what: &str,
    logs: &dyn Fn() -> String,
    mut cond: impl FnMut() -> bool,
) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            panic!("timed out waiting for {what}; logs:\n{}", logs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One line of `--log-format json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogLine {
    time: String,
    level: String,
    target: String,
    mailbox: Option<String>,
    event: Option<String>,
    error_kind: Option<String>,
    message: String,
}

fn parse_log_line(line: &str) -> LogLine {
    let mut scratch = vec![0u8; line.len() + 16];
    serde_json_core::from_str_escaped::<LogLine>(line, &mut scratch)
        .unwrap_or_else(|e| panic!("not a JSON log line ({e:?}): {line}"))
        .0
}

fn is_rfc3339_utc(t: &str) -> bool {
    // 2026-11-28T10:00:00.123Z
    let b = t.as_bytes();
    b.len() == 24
        && t.ends_with('Z')
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && t.chars()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit())
}

/// GET `path` from `addr`: (status, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{text}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// The samples of a Prometheus text exposition: series (name and labels) -> value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {l}"));
            let v = value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value in {l}"));
            (series.to_string(), v)
        })
        .collect()
}

fn sample(s: &BTreeMap<String, f64>, series: &str) -> f64 {
    *s.get(series)
        .unwrap_or_else(|| panic!("no sample {series} in {s:#?}"))
}

#[test]
fn metrics_and_probes_move_as_mail_arrives_and_logs_are_json() {
    let h = Harness::get();
    let dir = workdir("metrics");
    let (u_basic, u_oauth) = (h.unique_user("m-basic"), h.unique_user("m-oauth"));
    append_all(h, &u_basic, &[format!("pre-{u_basic}")]);
    // Mailbox names are labels; the addresses behind them must never appear.
    let boxes = vec![
        basic(h, "Basic box", &u_basic, &h.password),
        oauth(h, "OAuth box", &u_oauth),
    ];
    let config = dir.join("config.json");
    let spool = dir.join("spool");
    let output = format!(r#"{{"kind": "spool", "dir": "{}"}}"#, spool.display());
    let top = r#", "metrics": {"listen": "127.0.0.1:0"}"#;
    write_config(&config, &dir.join("state"), &output, &boxes, top);
    let agent = Agent::start(
        &config,
        "m",
        &[],
        &[("PMA_LOG_FORMAT", "json")],
        Stdio::null(),
    );
    let logs = || agent.log();

    // The bound address (port 0: the system's choice) is logged.
    let mut addr = String::new();
    wait_until(DEADLINE, "the metrics address in the log", &logs, || {
        for line in agent.log().lines() {
            let l = parse_log_line(line);
            if l.event.as_deref() == Some("metrics_listening") {
                addr = l
                    .message
                    .split("http://")
                    .nth(1)
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap()
                    .into();
                return true;
            }
        }
        false
    });
    assert_eq!(http_get(&addr, "/healthz"), (200, "ok\n".into()));
    wait_until(DEADLINE, "both mailboxes idle", &logs, || {
        let s = samples(&http_get(&addr, "/metrics").1);
        s.get("pma_idle_connections") == Some(&2.0)
    });
    let (status, ready) = http_get(&addr, "/readyz");
    assert_eq!((status, ready.as_str()), (200, "ready\n"));
    let before_text = http_get(&addr, "/metrics").1;
    let before = samples(&before_text);
    let b = |m: &str| format!("{m}{{mailbox=\"Basic box\"}}");
    let o = |m: &str| format!("{m}{{mailbox=\"OAuth box\"}}");
    assert_eq!(sample(&before, &b("pma_tickets_delivered_total")), 1.0);
    assert_eq!(sample(&before, &b("pma_messages_acknowledged_total")), 1.0);
    assert_eq!(sample(&before, &o("pma_tickets_delivered_total")), 0.0);
    assert!(
        sample(&before, &o("pma_token_refreshes_total")) >= 1.0,
        "OAuth signed in"
    );
    assert_eq!(
        sample(&before, &b("pma_token_refreshes_total")),
        0.0,
        "Basic has no tokens"
    );
    for name in ["Basic box", "OAuth box"] {
        let state = |s: &str| format!("pma_mailbox_state{{mailbox=\"{name}\",state=\"{s}\"}}");
        assert_eq!(sample(&before, &state("idle")), 1.0);
        assert_eq!(sample(&before, &state("parked")), 0.0);
    }
    for series in [
        "pma_ready",
        "pma_mailboxes",
        "pma_fetch_duration_seconds_count",
        "pma_fetch_duration_seconds_sum",
        "pma_fetch_duration_seconds_bucket{le=\"+Inf\"}",
        "pma_delivery_duration_seconds_count",
        "pma_delivery_duration_seconds_bucket{le=\"0.005\"}",
    ] {
        sample(&before, series);
    }
    assert_eq!(sample(&before, "pma_ready"), 1.0);
    assert_eq!(sample(&before, "pma_mailboxes"), 2.0);
    assert!(before_text.contains("# TYPE pma_errors_total counter"));
    for secret in [
        u_basic.as_str(),
        u_oauth.as_str(),
        h.password.as_str(),
        "customer@",
    ] {
        assert!(!before_text.contains(secret), "{secret} in the metrics");
    }

    // Mail arrives in both mailboxes: every counter and histogram moves.
    for u in [&u_basic, &u_oauth] {
        append_all(h, u, &[format!("new-1-{u}"), format!("new-2-{u}")]);
    }
    wait_until(DEADLINE, "five tickets", &logs, || {
        std::fs::read_dir(&spool)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.ends_with(".json") && !n.starts_with('.')
                    })
                    .count()
            })
            .unwrap_or(0)
            >= 5
    });
    let mut after = BTreeMap::new();
    wait_until(DEADLINE, "the counters of the new mail", &logs, || {
        after = samples(&http_get(&addr, "/metrics").1);
        after.get(&b("pma_messages_acknowledged_total")) == Some(&3.0)
            && after.get(&o("pma_messages_acknowledged_total")) == Some(&2.0)
            && after.get("pma_idle_connections") == Some(&2.0)
    });
    assert_eq!(sample(&after, &b("pma_tickets_delivered_total")), 3.0);
    assert_eq!(sample(&after, &o("pma_tickets_delivered_total")), 2.0);
    for mb in [b("pma_bytes_read_total"), o("pma_bytes_read_total")] {
        assert!(sample(&after, &mb) > sample(&before, &mb), "{mb} moved");
    }
    for series in [
        "pma_fetch_duration_seconds_count",
        "pma_delivery_duration_seconds_count",
        "pma_delivery_duration_seconds_bucket{le=\"+Inf\"}",
    ] {
        assert!(
            sample(&after, series) > sample(&before, series),
            "{series} moved"
        );
    }
    assert_eq!(
        sample(&after, "pma_delivery_duration_seconds_count")
            - sample(&before, "pma_delivery_duration_seconds_count"),
        4.0,
        "one delivery observed per new ticket"
    );

    // A mailbox with a wrong password joins (SIGHUP): it parks, readiness fails, errors count.
    let u_bad = h.unique_user("m-bad");
    let mut boxes = boxes;
    boxes.push(basic(h, "Bad box", &u_bad, "wrong-password"));
    write_config(&config, &dir.join("state"), &output, &boxes, top);
    agent.signal("-HUP");
    wait_until(DEADLINE, "the parked mailbox", &logs, || {
        let s = samples(&http_get(&addr, "/metrics").1);
        s.get("pma_mailbox_state{mailbox=\"Bad box\",state=\"parked\"}") == Some(&1.0)
    });
    let parked = samples(&http_get(&addr, "/metrics").1);
    assert_eq!(
        sample(
            &parked,
            "pma_errors_total{mailbox=\"Bad box\",kind=\"LoginFailed\"}"
        ),
        1.0
    );
    assert_eq!(sample(&parked, "pma_ready"), 0.0);
    assert_eq!(sample(&parked, "pma_mailboxes"), 3.0);
    let (status, why) = http_get(&addr, "/readyz");
    assert_eq!(status, 503, "{why}");
    assert!(why.contains("Bad box"), "{why}");
    assert_eq!(http_get(&addr, "/healthz").0, 200, "alive while not ready");
    // Removing it (SIGHUP again) drops its series and makes the agent ready again.
    boxes.pop();
    write_config(&config, &dir.join("state"), &output, &boxes, top);
    agent.signal("-HUP");
    // (the stopped mailbox leaves the metrics right after it stopped, not atomically with it)
    wait_until(
        DEADLINE,
        "ready again, without the removed mailbox",
        &logs,
        || {
            http_get(&addr, "/readyz").0 == 200
                && !http_get(&addr, "/metrics").1.contains("Bad box")
        },
    );

    // Every log line is one JSON object; the daemon's events carry mailbox, event and kind.
    let log = agent.log();
    let lines: Vec<LogLine> = log.lines().map(parse_log_line).collect();
    assert!(lines.iter().all(|l| is_rfc3339_utc(&l.time)), "{log}");
    assert!(lines
        .iter()
        .all(|l| ["error", "warn", "info"].contains(&l.level.as_str())));
    assert!(
        lines.iter().all(|l| l.target.starts_with("psa_mail_agent")),
        "{log}"
    );
    assert!(lines
        .iter()
        .any(|l| l.mailbox.as_deref() == Some("OAuth box")
            && l.event.as_deref() == Some("delivered")));
    let parked_line = lines
        .iter()
        .find(|l| l.event.as_deref() == Some("parked"))
        .unwrap_or_else(|| panic!("no parked event in {log}"));
    assert_eq!(parked_line.mailbox.as_deref(), Some("Bad box"));
    assert_eq!(parked_line.error_kind.as_deref(), Some("LoginFailed"));
    assert!(
        !log.contains(&h.password) && !log.contains("wrong-password"),
        "no secret in logs"
    );
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn text_logs_are_stamped_unless_journald_stamps_them() {
    let dir = workdir("logs");
    let config = dir.join("config.json");
    // An inactive mailbox: `fetch -v` logs that it skips it, without any network.
    std::fs::write(
        &config,
        r#"{"output": {"kind": "spool", "dir": "spool"}, "mailboxes": [
            {"name": "Quiet", "email": "quiet@contoso.test", "password": "x", "active": false}]}"#,
    )
    .unwrap();
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let out = Command::new(BIN)
            .args(["fetch", "-v", "--config"])
            .arg(&config)
            .args(args)
            .env_remove("PMA_LOG_FORMAT")
            .env_remove("JOURNAL_STREAM")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, text) = run(&[], &[]);
    assert_eq!(code, Some(0), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("inactive, skipped"))
        .expect(&text);
    let (time, rest) = line.split_once(' ').unwrap();
    assert!(is_rfc3339_utc(time), "{line}");
    assert!(rest.starts_with("[INFO  psa_mail_agent"), "{line}");

    let (_, journal) = run(&[("JOURNAL_STREAM", "8:12345")], &[]);
    let line = journal
        .lines()
        .find(|l| l.contains("inactive, skipped"))
        .expect(&journal);
    assert!(
        line.starts_with("[INFO  "),
        "journald stamps lines itself: {line}"
    );

    let (_, json) = run(&[("JOURNAL_STREAM", "8:1")], &["--log-format", "json"]);
    let l = parse_log_line(json.lines().find(|l| l.contains("inactive")).expect(&json));
    assert_eq!(l.mailbox.as_deref(), Some("Quiet"));
    assert_eq!(l.level, "info");
    assert!(l.event.is_none() && l.error_kind.is_none());

    let (code, err) = run(&[("PMA_LOG_FORMAT", "yaml")], &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("PMA_LOG_FORMAT") && err.contains("text or json"),
        "{err}"
    );
}

/// Tickets (mailbox, dedupe_key) printed by each agent on stdout.
fn tickets_of(files: &[PathBuf]) -> Vec<(usize, String, String)> {
    let mut all = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        // Only whole lines: an agent may be writing the next one.
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            let mailbox = support::json_field(line, "mailbox").expect(line);
            let key = support::json_field(line, "dedupe_key").expect(line);
            all.push((i, mailbox, key));
        }
    }
    all
}

/// Runs `count` agents, shard i of `count` each with state dir `state-i` (as a StatefulSet
/// gives each pod its own volume) and tickets on stdout into `round-i.jsonl`.
fn start_shards(
    dir: &Path,
    config_text: &dyn Fn(&Path) -> String,
    count: u32,
    round: &str,
) -> (Vec<Agent>, Vec<PathBuf>) {
    let mut agents = Vec::new();
    let mut outs = Vec::new();
    for i in 0..count {
        let state = dir.join(format!("state-{i}"));
        let config = dir.join(format!("config-{i}.json"));
        std::fs::write(&config, config_text(&state)).unwrap();
        let out = dir.join(format!("{round}-{i}.jsonl"));
        let file = std::fs::File::create(&out).unwrap();
        // Half by flag, half by environment (a pod name as the index, as in the StatefulSet).
        let agent = if i % 2 == 0 {
            let shard = format!("{i}/{count}");
            Agent::start(
                &config,
                &format!("{round}-{i}"),
                &["--shard", &shard],
                &[],
                file.into(),
            )
        } else {
            let shard = format!("psa-mail-agent-{i}/{count}");
            Agent::start(
                &config,
                &format!("{round}-{i}"),
                &[],
                &[("PMA_SHARD", &shard)],
                file.into(),
            )
        };
        agents.push(agent);
        outs.push(out);
    }
    (agents, outs)
}

#[test]
fn three_shards_then_four_deliver_every_mail_exactly_once() {
    let h = Harness::get();
    let dir = workdir("shards");
    const MAILBOXES: usize = 30;
    // Fixed names (the shard of a mailbox depends on its name only), fresh mailboxes.
    let names: Vec<String> = (0..MAILBOXES)
        .map(|i| format!("shard-box-{i:02}"))
        .collect();
    let users: Vec<String> = names.iter().map(|n| h.unique_user(n)).collect();
    let entries: Vec<String> = names
        .iter()
        .zip(&users)
        .map(|(n, u)| basic(h, n, u, &h.password))
        .collect();
    let config_text = |state: &Path| {
        format!(
            r#"{{"state_dir": "{}", "mailboxes": [{}]}}"#,
            state.display(),
            entries.join(",\n")
        )
    };
    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    let mut add = |round: &str| {
        for (n, u) in names.iter().zip(&users) {
            let id = format!("{round}-{u}");
            append_all(h, u, std::slice::from_ref(&id));
            expected.insert((n.clone(), id));
        }
    };
    // Mail waiting before the agents start.
    add("before");
    let (agents, outs3) = start_shards(&dir, &config_text, 3, "n3");
    let logs = |agents: &[Agent]| {
        agents
            .iter()
            .map(|a| a.log())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    wait_until(DEADLINE, "the first 30 tickets", &|| logs(&agents), || {
        tickets_of(&outs3).len() >= MAILBOXES
    });
    // Mail arriving while the three agents run.
    add("while-3");
    wait_until(
        DEADLINE * 2,
        "60 tickets from 3 shards",
        &|| logs(&agents),
        || tickets_of(&outs3).len() >= 2 * MAILBOXES,
    );
    for a in agents {
        assert_eq!(a.terminate(), Some(0));
    }
    // Each agent delivered only its own shard's mailboxes.
    for (i, mailbox, _) in tickets_of(&outs3) {
        assert_eq!(
            owner(&mailbox, 3) as usize,
            i,
            "{mailbox} served by shard {i} of 3"
        );
    }

    // Re-shard to four agents: mail that arrived in between, and while they run.
    add("between");
    let (agents, outs4) = start_shards(&dir, &config_text, 4, "n4");
    add("while-4");
    wait_until(
        DEADLINE * 2,
        "120 tickets after the re-shard",
        &|| logs(&agents),
        || tickets_of(&outs3).len() + tickets_of(&outs4).len() >= 4 * MAILBOXES,
    );
    for a in agents {
        assert_eq!(a.terminate(), Some(0));
    }
    for (i, mailbox, _) in tickets_of(&outs4) {
        assert_eq!(
            owner(&mailbox, 4) as usize,
            i,
            "{mailbox} served by shard {i} of 4"
        );
    }
    let moved = names.iter().filter(|n| owner(n, 3) != owner(n, 4)).count();
    assert!(
        moved > 0 && moved < MAILBOXES / 2,
        "{moved} of {MAILBOXES} moved"
    );

    // Exactly once: no ticket lost, none twice, across all seven agents.
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (_, mailbox, key) in tickets_of(&outs3).into_iter().chain(tickets_of(&outs4)) {
        *seen.entry((mailbox, key)).or_default() += 1;
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "duplicates: {duplicates:?}");
    let got: BTreeSet<_> = seen.into_keys().collect();
    let lost: Vec<_> = expected.difference(&got).collect();
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert_eq!(got, expected);
    eprintln!(
        "shards: {MAILBOXES} mailboxes, {} tickets, {moved} moved from 3 to 4 shards",
        got.len()
    );
}

#[test]
fn shards_may_share_a_state_dir_but_one_shard_runs_once() {
    let dir = workdir("shared-state");
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"state_dir": "{}", "mailboxes": [
                {{"name": "Quiet", "email": "quiet@contoso.test", "password": "x", "active": false}}]}}"#,
            dir.join("state").display()
        ),
    )
    .unwrap();
    let a0 = Agent::start(&config, "s0", &["--shard", "0/2"], &[], Stdio::null());
    let a1 = Agent::start(&config, "s1", &["--shard", "1/2"], &[], Stdio::null());
    let started = |a: &Agent| a.log().contains("running 0 of the 0 active mailbox(es)");
    wait_until(
        DEADLINE,
        "both shards running",
        &|| a0.log() + &a1.log(),
        || started(&a0) && started(&a1),
    );
    let again = Command::new(BIN)
        .args(["run", "--shard", "0/2", "--config"])
        .arg(&config)
        .env_remove("PMA_SHARD")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(3), "{err}");
    assert!(
        err.contains("of shard 0 already uses the state directory"),
        "{err}"
    );
    let bad = Command::new(BIN)
        .args(["run", "--shard", "2/2", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--shard: \"2/2\" is not a shard"));
    assert_eq!(a0.terminate(), Some(0));
    assert_eq!(a1.terminate(), Some(0));
}
