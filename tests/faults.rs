//! Delivery under network faults: the agent runs its fetch/deliver/ack loop (as the CLI and the
//! daemon do) through a fault-injecting proxy between it and Dovecot and, for OAuth mailboxes,
//! between it and the identity endpoint. Connections are closed, stalled, trickled, reset or
//! sprayed with garbage, per seed. Every message must end up delivered exactly once after dedupe,
//! acknowledged (\Seen) on the server, and no run may outlive its time bound.
//!
//! Seeds: `PMA_FAULT_SEEDS` (default 20; `scripts/stress` runs hundreds), first seed
//! `PMA_FAULT_SEED0` (default 1) to replay one; `PMA_FAULT_PARALLEL` runs at once (default 4).

mod support;

use psa_mail_agent::agent::Agent;
use psa_mail_agent::config::Mailbox;
use psa_mail_agent::ticket::{build, TicketOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::faultproxy::{FaultProxy, Plan, Stats, XorShift};
use support::Harness;

/// Messages per seed; batch_size 2 makes several fetch/ack rounds per seed.
const MESSAGES: usize = 5;
/// Fetch/ack attempts per seed before the test gives up (a lost message shows up here).
const MAX_ATTEMPTS: usize = 80;
/// Wall-time bound of one seed: every network step has a 2 s timeout, so a run that is still
/// going after this is hanging.
const SEED_BOUND: Duration = Duration::from_secs(240);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(f)
}

fn mail(tag: &str, i: usize) -> Vec<u8> {
    format!(
        "From: Customer <customer@fabrikam.test>\r\nTo: helpdesk@contoso.test\r\nSubject: fault {tag} #{i}\r\n\
         Message-ID: <{tag}-{i}@fabrikam.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n\
         Message {i} of run {tag}.\r\n{}\r\n",
        "Some text to give the body a few hundred bytes. ".repeat(8)
    )
    .into_bytes()
}

#[derive(Debug, Default)]
struct Outcome {
    seed: u64,
    oauth: bool,
    imap: Stats,
    idp: Stats,
    messages: usize,
    /// Tickets handed to the "caller", redeliveries included.
    delivered: usize,
    /// Distinct dedupe keys delivered that belong to this run's messages.
    unique: usize,
    lost: usize,
    /// Tickets whose dedupe key is not one of the messages (corruption would show here).
    foreign: usize,
    /// Tickets a PSA that drops repeated dedupe keys would still store twice: a message
    /// (known by its subject) delivered under more than one dedupe key.
    duplicates_after_dedupe: usize,
    attempts: usize,
    errors: BTreeMap<String, usize>,
    /// The last message of each error kind, for diagnosis.
    samples: BTreeMap<String, String>,
    failure: Option<String>,
}

fn mailbox(h: &Harness, user: &str, imap_port: u16, idp: Option<SocketAddr>) -> Mailbox {
    let oauth = match idp {
        Some(a) => format!(
            r#", "oauth": {{"enabled": true, "application_id": "app-public", "directory_id": "contoso-tenant",
                 "authority": "http://{a}"}}"#
        ),
        None => String::new(),
    };
    let json = format!(
        r#"{{"name": "{user}", "email": "{user}", "username": "{user}", "password": "{pw}", "batch_size": 2,
             "imap": {{"server": "127.0.0.1", "port": {imap_port}, "ca_file": "{ca}", "timeout_secs": 2}}
             {oauth}}}"#,
        pw = h.password,
        ca = h.ca_file.display(),
    );
    Mailbox::from_json(&json, Path::new("/")).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

fn idp_addr(h: &Harness) -> SocketAddr {
    h.idp_url
        .trim_start_matches("http://")
        .parse()
        .expect("idp address")
}

fn all_seen(h: &Harness, user: &str, n: usize) -> bool {
    let msgs = h.list_messages(user, "INBOX");
    msgs.len() == n && msgs.iter().all(|(_, f, _)| f.iter().any(|x| x == "\\Seen"))
}

fn note(out: &mut Outcome, what: &str, e: &psa_mail_agent::Error) {
    let key = format!("{what}:{:?}", e.kind());
    *out.errors.entry(key.clone()).or_default() += 1;
    out.samples.insert(key, e.message().to_string());
}

/// One seed: fresh mailbox, proxies, and the loop until everything is acknowledged.
fn one_seed(seed: u64, oauth: bool) -> Outcome {
    let h = Harness::get();
    let user = h.unique_user("fault");
    let tag = user.replace('@', ".");
    let mut expected = BTreeSet::new();
    for i in 0..MESSAGES {
        let raw = mail(&tag, i);
        expected.insert(build(&raw, &TicketOptions::default()).unwrap().dedupe_key);
        h.append(&user, "INBOX", &raw, &[]);
    }
    let imap_target: SocketAddr = format!("127.0.0.1:{}", h.imaps_port).parse().unwrap();
    let imap_proxy = FaultProxy::start(imap_target, seed, Plan::default());
    // The identity endpoint speaks plain HTTP on loopback: no garbage there (see Plan::garbage).
    let idp_plan = Plan {
        garbage: false,
        ..Plan::default()
    };
    let idp_proxy = oauth.then(|| FaultProxy::start(idp_addr(h), seed.wrapping_mul(31), idp_plan));
    let mb = mailbox(
        h,
        &user,
        imap_proxy.port(),
        idp_proxy.as_ref().map(|p| p.addr()),
    );
    let dir = std::env::temp_dir().join(format!("pma-faults-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let token_cache = psa_mail_agent::state::StatePaths::new(&dir, &mb.name).token_cache;

    let mut rng = XorShift::new(seed ^ 0x5EED);
    // Half the seeds keep one agent for the whole run, like the daemon (a broken connection must
    // be noticed and replaced by the agent itself); the others also restart now and then, like a
    // CLI run from cron.
    let restarts = if seed % 4 < 2 { 0 } else { 30 };
    let mut out = Outcome {
        seed,
        oauth,
        messages: MESSAGES,
        ..Default::default()
    };
    // (subject, dedupe key) of every ticket handed to the "caller".
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut agent: Option<Agent> = None;
    let mut done = false;
    while out.attempts < MAX_ATTEMPTS {
        out.attempts += 1;
        let mut a = match agent.take() {
            Some(a) => a,
            None => {
                // A restart: sometimes the token cache is gone or the tokens were expired by the
                // identity platform, so the token endpoint (through its proxy) is asked again.
                if oauth && rng.chance(30) {
                    let _ = std::fs::remove_file(&token_cache);
                }
                if oauth && rng.chance(30) {
                    h.idp(&format!("/_test/expire_access_tokens?user={user}"));
                }
                match Agent::new(mb.clone(), dir.clone()) {
                    Ok(a) => a,
                    Err(e) => {
                        note(&mut out, "new", &e);
                        continue;
                    }
                }
            }
        };
        match run(a.fetch(100)) {
            Err(e) => {
                note(&mut out, "fetch", &e);
                a.release_unacked();
                if !rng.chance(restarts) {
                    agent = Some(a);
                }
            }
            Ok(batch) if batch.is_void() => {
                if all_seen(h, &user, MESSAGES) {
                    done = true;
                    break;
                }
                agent = Some(a);
            }
            Ok(batch) => {
                keys.extend(
                    batch
                        .tickets
                        .iter()
                        .map(|t| (t.subject.clone(), t.dedupe_key.clone())),
                );
                // Delivered; now the connection dies before (or during) the acknowledgement.
                if rng.chance(25) {
                    imap_proxy.cut_all();
                }
                if let Err(e) = run(a.ack(&batch)) {
                    note(&mut out, "ack", &e);
                    a.release_unacked();
                    if rng.chance(restarts) {
                        continue;
                    }
                }
                agent = Some(a);
            }
        }
    }
    if let Some(a) = agent.as_mut() {
        run(a.disconnect());
    }
    out.imap = imap_proxy.stats();
    if let Some(p) = &idp_proxy {
        out.idp = p.stats();
    }
    out.delivered = keys.len();
    out.duplicates_after_dedupe = duplicates_after_dedupe(&keys);
    let got: BTreeSet<String> = keys.iter().map(|(_, k)| k.clone()).collect();
    out.unique = got.intersection(&expected).count();
    out.lost = expected.difference(&got).count();
    out.foreign = got.difference(&expected).count();
    if !done {
        out.failure = Some(format!(
            "not finished after {} attempts (errors {:?}, last of each: {:?})",
            out.attempts, out.errors, out.samples
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Deliveries that survive deduplication by dedupe key: for each message (its subject, unique
/// per message here), every dedupe key beyond the first it was delivered under.
fn duplicates_after_dedupe(delivered: &[(String, String)]) -> usize {
    let mut keys_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (subject, key) in delivered {
        keys_of.entry(subject).or_default().insert(key);
    }
    keys_of.values().map(|k| k.len() - 1).sum()
}

/// Runs `seeds` seeds, `parallel` at a time, each bounded in wall time; returns the outcomes.
fn run_seeds(first: u64, seeds: u64, parallel: u64, oauth_of: fn(u64) -> bool) -> Vec<Outcome> {
    let (tx, rx) = mpsc::channel();
    let mut next = first;
    let end = first + seeds;
    let mut running = 0;
    let mut started: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut outcomes = Vec::new();
    while next < end || running > 0 {
        while running < parallel && next < end {
            let tx = tx.clone();
            let seed = next;
            started.insert(seed, Instant::now());
            std::thread::spawn(move || {
                let _ = tx.send(one_seed(seed, oauth_of(seed)));
            });
            next += 1;
            running += 1;
        }
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(o) => {
                started.remove(&o.seed);
                running -= 1;
                outcomes.push(o);
            }
            Err(_) => {
                for (seed, t) in &started {
                    assert!(
                        t.elapsed() < SEED_BOUND,
                        "seed {seed} hangs: still running after {SEED_BOUND:?}"
                    );
                }
            }
        }
    }
    outcomes.sort_by_key(|o| o.seed);
    outcomes
}

fn summarise(name: &str, outcomes: &[Outcome]) {
    let mut imap = Stats::default();
    let mut idp = Stats::default();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for o in outcomes {
        imap.add(&o.imap);
        idp.add(&o.idp);
        for (k, v) in &o.errors {
            *errors.entry(k.clone()).or_default() += v;
        }
    }
    let sum = |f: fn(&Outcome) -> usize| outcomes.iter().map(f).sum::<usize>();
    println!(
        "{name}: seeds={} messages={} delivered={} unique={} lost={} duplicates_after_dedupe={} \
         redeliveries={} foreign={} attempts={}\n  imap proxy: connections={} faults={} {:?}\n  \
         idp proxy: connections={} faults={} {:?}\n  errors seen by the loop: {:?}",
        outcomes.len(),
        sum(|o| o.messages),
        sum(|o| o.delivered),
        sum(|o| o.unique),
        sum(|o| o.lost),
        sum(|o| o.duplicates_after_dedupe),
        sum(|o| o.delivered - o.unique),
        sum(|o| o.foreign),
        sum(|o| o.attempts),
        imap.connections,
        imap.injected(),
        imap.faults,
        idp.connections,
        idp.injected(),
        idp.faults,
        errors
    );
    let bad: Vec<String> = outcomes
        .iter()
        .filter(|o| {
            o.lost > 0 || o.foreign > 0 || o.duplicates_after_dedupe > 0 || o.failure.is_some()
        })
        .map(|o| {
            format!(
                "seed {} (oauth {}): lost {}, foreign {}, duplicates after dedupe {}, {}",
                o.seed,
                o.oauth,
                o.lost,
                o.foreign,
                o.duplicates_after_dedupe,
                o.failure.as_deref().unwrap_or("finished")
            )
        })
        .collect();
    assert!(bad.is_empty(), "{name}: {bad:#?}");
    assert!(
        imap.injected() > 0,
        "{name}: the proxy injected no fault at all"
    );
}

#[test]
fn every_message_is_delivered_once_and_acked_under_network_faults() {
    let seeds = env_u64("PMA_FAULT_SEEDS", 20);
    let first = env_u64("PMA_FAULT_SEED0", 1);
    let parallel = env_u64("PMA_FAULT_PARALLEL", 4);
    // Even seeds log in with a password, odd ones use OAuth through a faulty token endpoint.
    let outcomes = run_seeds(first, seeds, parallel, |s| s % 2 == 1);
    summarise("network faults", &outcomes);
}
