//! A fault-injecting TCP proxy for tests: listens on `127.0.0.1:0`, forwards every connection to
//! a target, and applies to each connection a fault drawn from a seeded generator: close after N
//! bytes (either direction), stall (stop forwarding for longer than the client's timeout), slow
//! trickle, reset (RST), injected garbage, or plain pass-through. The same seed gives the same
//! sequence of faults (one per accepted connection, in accept order).
//!
//! Plain std threads and blocking sockets: it sits outside the code under test's executor.

use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// xorshift64*: tiny, seedable, good enough to pick faults.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        XorShift(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client to server (commands, TLS client records).
    Up,
    /// Server to client (responses, message bodies).
    Down,
}

/// What happens to one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    Pass,
    /// Forward `at` bytes in `dir`, then close both sides (FIN).
    CloseAfter { dir: Dir, at: u64 },
    /// Forward `at` bytes in `dir`, then stop forwarding that way; close after the plan's stall.
    Stall { dir: Dir, at: u64 },
    /// Forward server bytes one at a time, `delay_ms` apart, for the first `bytes` bytes.
    Trickle { delay_ms: u64, bytes: u64 },
    /// Forward `at` bytes in `dir`, then reset the client's connection (SO_LINGER 0: RST).
    Reset { dir: Dir, at: u64 },
    /// After `at` bytes in `dir`, insert `len` random bytes.
    Garbage { dir: Dir, at: u64, len: u64 },
}

impl Fault {
    fn name(&self) -> &'static str {
        match self {
            Fault::Pass => "pass",
            Fault::CloseAfter { .. } => "close",
            Fault::Stall { .. } => "stall",
            Fault::Trickle { .. } => "trickle",
            Fault::Reset { .. } => "reset",
            Fault::Garbage { .. } => "garbage",
        }
    }
}

/// How faults are drawn.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Share of connections that get a fault (the rest pass).
    pub fault_percent: u64,
    /// How long a stalled connection is held before the proxy closes it (longer than the
    /// client's timeout, so the client must notice on its own).
    pub stall: Duration,
    /// Faults strike within the first this many bytes of the server's direction...
    pub down_window: u64,
    /// ...and of the client's.
    pub up_window: u64,
    /// Whether garbage may be injected. Only meaningful under TLS, which turns corruption into
    /// an error; on plain HTTP (the loopback identity endpoint) a flipped byte silently changes
    /// a request or an answer, which no real deployment sees (the token endpoint is https).
    pub garbage: bool,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            fault_percent: 60,
            stall: Duration::from_secs(3),
            down_window: 12_000,
            up_window: 3000,
            garbage: true,
        }
    }
}

/// What the proxy did, per fault kind.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections: u64,
    /// Connections forwarded untouched.
    pub passed: u64,
    /// Faults by kind name (`close`, `stall`, `trickle`, `reset`, `garbage`).
    pub faults: std::collections::BTreeMap<&'static str, u64>,
}

impl Stats {
    /// Faults injected (connections not passed through).
    pub fn injected(&self) -> u64 {
        self.faults.values().sum()
    }

    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &Stats) {
        self.connections += other.connections;
        self.passed += other.passed;
        for (k, v) in &other.faults {
            *self.faults.entry(k).or_default() += v;
        }
    }
}

struct Shared {
    stop: AtomicBool,
    rng: Mutex<XorShift>,
    stats: Mutex<Stats>,
    plan: Plan,
    target: SocketAddr,
    /// Faults are drawn only while enabled (a test may finish on a healthy line).
    enabled: AtomicBool,
    live: AtomicU64,
    /// Connections accepted before the latest [`FaultProxy::cut_all`] are closed.
    cuts: AtomicU64,
}

/// A running proxy; stops (and cuts every connection) when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy to `target` drawing faults from `seed` per `plan`.
    pub fn start(target: SocketAddr, seed: u64, plan: Plan) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("faultproxy: bind");
        listener
            .set_nonblocking(true)
            .expect("faultproxy: nonblocking");
        let addr = listener.local_addr().expect("faultproxy: local addr");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            rng: Mutex::new(XorShift::new(seed)),
            stats: Mutex::new(Stats::default()),
            plan,
            target,
            enabled: AtomicBool::new(true),
            live: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || accept_loop(listener, s));
        FaultProxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Turns fault injection on or off for connections accepted from now on.
    pub fn set_enabled(&self, on: bool) {
        self.shared.enabled.store(on, Ordering::SeqCst);
    }

    /// Closes every connection open now (e.g. between a delivery and its acknowledgement).
    pub fn cut_all(&self) {
        self.shared.cuts.fetch_add(1, Ordering::SeqCst);
        let mut st = self.shared.stats.lock().unwrap();
        *st.faults.entry("cut").or_default() += 1;
        drop(st);
        // Pumps poll every 20 ms.
        std::thread::sleep(Duration::from_millis(60));
    }

    /// What happened so far.
    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        // Connection threads notice `stop` within one poll interval.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.shared.live.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let fault = if shared.enabled.load(Ordering::SeqCst) {
                    draw(&mut shared.rng.lock().unwrap(), &shared.plan)
                } else {
                    Fault::Pass
                };
                {
                    let mut st = shared.stats.lock().unwrap();
                    st.connections += 1;
                    match &fault {
                        Fault::Pass => st.passed += 1,
                        f => *st.faults.entry(f.name()).or_default() += 1,
                    }
                }
                let seed = shared.rng.lock().unwrap().next_u64();
                let s = shared.clone();
                s.live.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    serve(client, fault, seed, &s);
                    s.live.fetch_sub(1, Ordering::SeqCst);
                });
            }
            Err(e) if e.kind() == IoKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Draws the fault for one connection.
pub fn draw(rng: &mut XorShift, plan: &Plan) -> Fault {
    if !rng.chance(plan.fault_percent) {
        return Fault::Pass;
    }
    let dir = if rng.chance(70) { Dir::Down } else { Dir::Up };
    let window = match dir {
        Dir::Down => plan.down_window,
        Dir::Up => plan.up_window,
    };
    let at = rng.below(window);
    let kinds = if plan.garbage { 5 } else { 4 };
    match rng.below(kinds) {
        0 => Fault::CloseAfter { dir, at },
        1 => Fault::Stall { dir, at },
        2 => Fault::Trickle {
            delay_ms: 1 + rng.below(3),
            bytes: 200 + rng.below(3000),
        },
        3 => Fault::Reset { dir, at },
        _ => Fault::Garbage {
            dir,
            at,
            len: 1 + rng.below(64),
        },
    }
}

/// One connection: both directions on their own threads, sharing a "dead" flag.
fn serve(client: TcpStream, fault: Fault, seed: u64, shared: &Arc<Shared>) {
    let Ok(upstream) = TcpStream::connect_timeout(&shared.target, Duration::from_secs(5)) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let dead = Arc::new(AtomicBool::new(false));
    let conn = Conn {
        client: client.try_clone().expect("clone"),
        upstream: upstream.try_clone().expect("clone"),
        dead: dead.clone(),
        generation: shared.cuts.load(Ordering::SeqCst),
    };
    let up = {
        let conn = conn.clone_conn();
        let (from, to) = (
            client.try_clone().expect("clone"),
            upstream.try_clone().expect("clone"),
        );
        let fault = fault.clone();
        let shared = shared.clone();
        std::thread::spawn(move || pump(from, to, Dir::Up, &fault, seed, &conn, &shared))
    };
    pump(
        upstream,
        client,
        Dir::Down,
        &fault,
        seed ^ 0xA5A5,
        &conn,
        shared,
    );
    let _ = up.join();
}

struct Conn {
    client: TcpStream,
    upstream: TcpStream,
    dead: Arc<AtomicBool>,
    generation: u64,
}

impl Conn {
    fn clone_conn(&self) -> Conn {
        Conn {
            client: self.client.try_clone().expect("clone"),
            upstream: self.upstream.try_clone().expect("clone"),
            dead: self.dead.clone(),
            generation: self.generation,
        }
    }

    fn close(&self) {
        self.dead.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }

    /// RST to the client: linger 0, and no FIN first; the socket is reset when its last
    /// descriptor closes (each thread drops its own when it sees `dead`).
    fn reset(&self) {
        let _ = socket2::SockRef::from(&self.client).set_linger(Some(Duration::ZERO));
        self.dead.store(true, Ordering::SeqCst);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    dir: Dir,
    fault: &Fault,
    seed: u64,
    conn: &Conn,
    shared: &Shared,
) {
    let mut rng = XorShift::new(seed);
    let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
    let _ = to.set_write_timeout(Some(Duration::from_secs(10)));
    let mut sent: u64 = 0;
    let mut buf = vec![0u8; 16 * 1024];
    let mut garbage_done = false;
    let alive = |c: &Conn| !c.dead.load(Ordering::SeqCst) && !shared.stop.load(Ordering::SeqCst);
    while alive(conn) {
        if shared.cuts.load(Ordering::SeqCst) > conn.generation {
            return conn.close();
        }
        // Where this direction must stop forwarding normally.
        let limit = match fault {
            Fault::CloseAfter { dir: d, at }
            | Fault::Stall { dir: d, at }
            | Fault::Reset { dir: d, at }
                if *d == dir =>
            {
                Some(*at)
            }
            Fault::Garbage { dir: d, at, .. } if *d == dir && !garbage_done => Some(*at),
            Fault::Trickle { bytes, .. } if dir == Dir::Down && sent < *bytes => Some(sent + 1),
            _ => None,
        };
        if let Some(limit) = limit {
            if sent >= limit {
                match fault {
                    Fault::CloseAfter { .. } => return conn.close(),
                    Fault::Reset { .. } => return conn.reset(),
                    Fault::Stall { .. } => {
                        let until = Instant::now() + shared.plan.stall;
                        while alive(conn) && Instant::now() < until {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        return conn.close();
                    }
                    Fault::Garbage { len, .. } => {
                        let junk: Vec<u8> = (0..*len).map(|_| rng.next_u64() as u8).collect();
                        if to.write_all(&junk).is_err() {
                            return conn.close();
                        }
                        garbage_done = true;
                        continue;
                    }
                    Fault::Trickle { .. } | Fault::Pass => {}
                }
            }
        }
        let room = limit.map(|l| (l - sent) as usize).unwrap_or(buf.len());
        let room = room.clamp(1, buf.len());
        match from.read(&mut buf[..room]) {
            Ok(0) => return conn.close(),
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return conn.close();
                }
                sent += n as u64;
                if let Fault::Trickle { delay_ms, bytes } = fault {
                    if dir == Dir::Down && sent <= *bytes {
                        std::thread::sleep(Duration::from_millis(*delay_ms));
                    }
                }
            }
            Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut) => {}
            Err(_) => return conn.close(),
        }
    }
    if shared.stop.load(Ordering::SeqCst) {
        conn.close();
    }
}
