//! A scripted IMAP server for protocol-level surprises Dovecot will not produce on demand: BYE in
//! the middle of a fetch, literals whose announced size lies, an endless response line, a message
//! expunged between the size query and the body fetch, `NO [OVERQUOTA]` on MOVE. Plaintext on
//! `127.0.0.1:0` (the agent runs with `encryption: none` and `allow_plaintext`), one thread per
//! connection, just enough IMAP4rev1 for the agent's commands.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A misbehaviour, applied the next `times` times its command comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quirk {
    /// The body fetch gets `* BYE` and the connection closes.
    ByeOnBodyFetch,
    /// The body fetch announces `{1000}`, sends 100 bytes and closes.
    LyingLiteral,
    /// The body fetch gets one response line of this many bytes (never ending in CRLF sooner).
    HugeLine(u64),
    /// The body fetch finds this UID expunged (by a person, between the size query and now).
    VanishOnBodyFetch(u32),
    /// UID MOVE / UID COPY answer `NO [OVERQUOTA]`.
    OverQuotaOnMove,
    /// UID STORE answers `NO` (async-imap's own store stream would ignore it).
    NoOnStore,
    /// SELECT answers with a status line whose text starts with non-ASCII right after the
    /// response code (imap-proto 0.17 panics on it).
    NonAsciiAfterCodeOnSelect,
}

/// One stored message.
#[derive(Debug, Clone)]
pub struct Stored {
    pub uid: u32,
    pub raw: Vec<u8>,
    pub seen: bool,
    /// Moved away to this folder.
    pub moved_to: Option<String>,
}

/// The server's mailbox and script.
#[derive(Debug, Default)]
pub struct State {
    pub messages: Vec<Stored>,
    pub uid_validity: u32,
    pub quirk: Option<(Quirk, u32)>,
    /// Quirks applied so far.
    pub applied: u32,
    pub connections: u32,
}

/// A running fake server.
pub struct FakeImap {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Drop for FakeImap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl FakeImap {
    /// A server holding `messages` (UIDs 1, 2, ..., all unread).
    pub fn start(messages: Vec<Vec<u8>>) -> FakeImap {
        let listener = TcpListener::bind("127.0.0.1:0").expect("fakeimap: bind");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            messages: messages
                .into_iter()
                .enumerate()
                .map(|(i, raw)| Stored {
                    uid: i as u32 + 1,
                    raw,
                    seen: false,
                    moved_to: None,
                })
                .collect(),
            uid_validity: 4242,
            ..Default::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((c, _)) => {
                        let s = s.clone();
                        s.lock().unwrap().connections += 1;
                        std::thread::spawn(move || {
                            let _ = serve(c, &s);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeImap { port, state, stop }
    }

    /// Misbehaves with `quirk` the next `times` times.
    pub fn set_quirk(&self, quirk: Quirk, times: u32) {
        self.state.lock().unwrap().quirk = Some((quirk, times));
    }

    /// UIDs still in the folder with \Seen set.
    pub fn seen(&self) -> Vec<u32> {
        let st = self.state.lock().unwrap();
        st.messages
            .iter()
            .filter(|m| m.seen && m.moved_to.is_none())
            .map(|m| m.uid)
            .collect()
    }

    /// UIDs moved to another folder.
    pub fn moved(&self) -> Vec<u32> {
        let st = self.state.lock().unwrap();
        st.messages
            .iter()
            .filter(|m| m.moved_to.is_some())
            .map(|m| m.uid)
            .collect()
    }
}

fn take_quirk(state: &Mutex<State>, pred: impl Fn(&Quirk) -> bool) -> Option<Quirk> {
    let mut st = state.lock().unwrap();
    let (q, n) = st.quirk.clone()?;
    if n == 0 || !pred(&q) {
        return None;
    }
    st.quirk = Some((q.clone(), n - 1));
    st.applied += 1;
    Some(q)
}

/// Parses an IMAP sequence set of UIDs (`1:3,7`, `5:*`) against the highest UID.
fn parse_set(set: &str, max: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for part in set.split(',') {
        let num = |s: &str| {
            if s == "*" {
                max
            } else {
                s.parse().unwrap_or(0)
            }
        };
        match part.split_once(':') {
            Some((a, b)) => {
                let (a, b) = (num(a), num(b));
                out.extend(a.min(b)..=a.max(b));
            }
            None => out.push(num(part)),
        }
    }
    out
}

fn serve(client: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = client.try_clone()?;
    let mut r = BufReader::new(client);
    const CAPS: &str = "IMAP4rev1 MOVE UIDPLUS LITERAL+";
    w.write_all(format!("* OK [CAPABILITY {CAPS}] fake IMAP ready\r\n").as_bytes())?;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let text = line.trim_end();
        let (tag, rest) = text.split_once(' ').unwrap_or((text, ""));
        let (cmd, args) = rest.split_once(' ').unwrap_or((rest, ""));
        let cmd = cmd.to_ascii_uppercase();
        let ok = |w: &mut TcpStream, what: &str| {
            w.write_all(format!("{tag} OK {what} completed\r\n").as_bytes())
        };
        match cmd.as_str() {
            "CAPABILITY" => {
                w.write_all(format!("* CAPABILITY {CAPS}\r\n").as_bytes())?;
                ok(&mut w, "CAPABILITY")?;
            }
            "LOGIN" | "NOOP" | "CHECK" => ok(&mut w, &cmd)?,
            "LOGOUT" => {
                w.write_all(b"* BYE logging out\r\n")?;
                ok(&mut w, "LOGOUT")?;
                return Ok(());
            }
            "SELECT" | "EXAMINE" => {
                let folder = args.trim_matches('"');
                if !folder.eq_ignore_ascii_case("INBOX") {
                    w.write_all(
                        format!("{tag} NO Mailbox doesn't exist: {folder}\r\n").as_bytes(),
                    )?;
                    continue;
                }
                if take_quirk(state, |q| matches!(q, Quirk::NonAsciiAfterCodeOnSelect)).is_some() {
                    w.write_all(b"* 1 EXISTS\r\n* OK [UIDVALIDITY 4242]\xff\xff\x17s  bad\r\n")?;
                    w.write_all(format!("{tag} OK Select completed\r\n").as_bytes())?;
                    continue;
                }
                let (n, uv, next) = {
                    let st = state.lock().unwrap();
                    let live: Vec<_> = st
                        .messages
                        .iter()
                        .filter(|m| m.moved_to.is_none())
                        .collect();
                    (
                        live.len(),
                        st.uid_validity,
                        st.messages.iter().map(|m| m.uid).max().unwrap_or(0) + 1,
                    )
                };
                w.write_all(
                    format!(
                        "* {n} EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY {uv}] UIDs valid\r\n\
                         * OK [UIDNEXT {next}] Predicted next UID\r\n* FLAGS (\\Seen \\Deleted)\r\n\
                         {tag} OK [READ-WRITE] Select completed\r\n"
                    )
                    .as_bytes(),
                )?;
            }
            "LIST" => {
                w.write_all(b"* LIST () \"/\" INBOX\r\n")?;
                ok(&mut w, "LIST")?;
            }
            "CREATE" => ok(&mut w, "CREATE")?,
            "UID" => {
                let (sub, rest) = args.split_once(' ').unwrap_or((args, ""));
                uid_command(&mut w, tag, &sub.to_ascii_uppercase(), rest, state)?;
            }
            _ => w.write_all(format!("{tag} BAD unknown command\r\n").as_bytes())?,
        }
    }
}

fn uid_command(
    w: &mut TcpStream,
    tag: &str,
    sub: &str,
    rest: &str,
    state: &Mutex<State>,
) -> std::io::Result<()> {
    // Sequence numbers of the live messages, in UID order.
    let live = |st: &State| -> Vec<(u32, u32)> {
        st.messages
            .iter()
            .filter(|m| m.moved_to.is_none())
            .enumerate()
            .map(|(i, m)| (i as u32 + 1, m.uid))
            .collect()
    };
    match sub {
        "SEARCH" => {
            let st = state.lock().unwrap();
            let max = st.messages.iter().map(|m| m.uid).max().unwrap_or(0);
            let q = rest.to_ascii_uppercase();
            let hits: Vec<u32> = if let Some(set) = q.strip_prefix("UID ") {
                let wanted = parse_set(set.trim(), max);
                live(&st)
                    .iter()
                    .map(|(_, u)| *u)
                    .filter(|u| wanted.contains(u))
                    .collect()
            } else if q.contains("UNSEEN") {
                st.messages
                    .iter()
                    .filter(|m| !m.seen && m.moved_to.is_none())
                    .map(|m| m.uid)
                    .collect()
            } else {
                live(&st).iter().map(|(_, u)| *u).collect()
            };
            let list: Vec<String> = hits.iter().map(|u| u.to_string()).collect();
            let mut answer = String::from("* SEARCH");
            for u in list {
                answer.push(' ');
                answer.push_str(&u);
            }
            w.write_all(format!("{answer}\r\n{tag} OK Search completed\r\n").as_bytes())
        }
        "FETCH" => {
            let (set, items) = rest.split_once(' ').unwrap_or((rest, ""));
            let body = items.to_ascii_uppercase().contains("BODY");
            if body {
                if let Some(q) = take_quirk(state, |q| {
                    !matches!(
                        q,
                        Quirk::OverQuotaOnMove
                            | Quirk::NoOnStore
                            | Quirk::NonAsciiAfterCodeOnSelect
                    )
                }) {
                    return misbehave(w, tag, q, set, state);
                }
            }
            let st = state.lock().unwrap();
            let max = st.messages.iter().map(|m| m.uid).max().unwrap_or(0);
            let wanted = parse_set(set, max);
            let mut out = Vec::new();
            for (seq, uid) in live(&st) {
                if !wanted.contains(&uid) {
                    continue;
                }
                let m = st.messages.iter().find(|m| m.uid == uid).unwrap();
                let flags = if m.seen { "\\Seen" } else { "" };
                if body {
                    out.extend_from_slice(
                        format!(
                            "* {seq} FETCH (UID {uid} FLAGS ({flags}) RFC822.SIZE {} BODY[] {{{}}}\r\n",
                            m.raw.len(),
                            m.raw.len()
                        )
                        .as_bytes(),
                    );
                    out.extend_from_slice(&m.raw);
                    out.extend_from_slice(b")\r\n");
                } else {
                    out.extend_from_slice(
                        format!("* {seq} FETCH (UID {uid} RFC822.SIZE {})\r\n", m.raw.len())
                            .as_bytes(),
                    );
                }
            }
            out.extend_from_slice(format!("{tag} OK Fetch completed\r\n").as_bytes());
            w.write_all(&out)
        }
        "STORE" => {
            if take_quirk(state, |q| matches!(q, Quirk::NoOnStore)).is_some() {
                return w.write_all(
                    format!("{tag} NO [SERVERBUG] Internal error occurred\r\n").as_bytes(),
                );
            }
            let (set, change) = rest.split_once(' ').unwrap_or((rest, ""));
            let mut st = state.lock().unwrap();
            let max = st.messages.iter().map(|m| m.uid).max().unwrap_or(0);
            let wanted = parse_set(set, max);
            if change.contains("\\Seen") {
                for m in st.messages.iter_mut().filter(|m| wanted.contains(&m.uid)) {
                    m.seen = true;
                }
            }
            w.write_all(format!("{tag} OK Store completed\r\n").as_bytes())
        }
        "MOVE" | "COPY" => {
            if take_quirk(state, |q| matches!(q, Quirk::OverQuotaOnMove)).is_some() {
                return w.write_all(
                    format!("{tag} NO [OVERQUOTA] Quota exceeded (mailbox for processed mail is full)\r\n")
                        .as_bytes(),
                );
            }
            let (set, folder) = rest.split_once(' ').unwrap_or((rest, ""));
            let mut st = state.lock().unwrap();
            let max = st.messages.iter().map(|m| m.uid).max().unwrap_or(0);
            let wanted = parse_set(set, max);
            let mut expunged = Vec::new();
            for (seq, uid) in live(&st).into_iter().rev() {
                if wanted.contains(&uid) {
                    expunged.push(seq);
                }
            }
            for m in st.messages.iter_mut().filter(|m| wanted.contains(&m.uid)) {
                m.moved_to = Some(folder.trim_matches('"').to_string());
            }
            let mut out = String::new();
            for seq in expunged {
                out.push_str(&format!("* {seq} EXPUNGE\r\n"));
            }
            out.push_str(&format!("{tag} OK Move completed\r\n"));
            w.write_all(out.as_bytes())
        }
        _ => w.write_all(format!("{tag} BAD unknown UID command\r\n").as_bytes()),
    }
}

fn misbehave(
    w: &mut TcpStream,
    tag: &str,
    quirk: Quirk,
    set: &str,
    state: &Mutex<State>,
) -> std::io::Result<()> {
    match quirk {
        Quirk::ByeOnBodyFetch => {
            w.write_all(b"* BYE Server shutting down for maintenance\r\n")?;
            let _ = w.shutdown(std::net::Shutdown::Both);
            Err(std::io::Error::other("closed after BYE"))
        }
        Quirk::LyingLiteral => {
            w.write_all(b"* 1 FETCH (UID 1 RFC822.SIZE 1000 BODY[] {1000}\r\n")?;
            w.write_all(&[b'x'; 100])?;
            let _ = w.shutdown(std::net::Shutdown::Both);
            Err(std::io::Error::other("closed mid-literal"))
        }
        Quirk::HugeLine(n) => {
            w.write_all(b"* OK ")?;
            let chunk = vec![b'a'; 64 * 1024];
            let mut sent = 0u64;
            while sent < n {
                let k = chunk.len().min((n - sent) as usize);
                // The client gives up (and closes) long before the end.
                w.write_all(&chunk[..k])?;
                sent += k as u64;
            }
            w.write_all(format!("\r\n{tag} OK Fetch completed\r\n").as_bytes())
        }
        Quirk::VanishOnBodyFetch(gone) => {
            let mut out = Vec::new();
            {
                let mut st = state.lock().unwrap();
                let seq = st
                    .messages
                    .iter()
                    .filter(|m| m.moved_to.is_none())
                    .position(|m| m.uid == gone);
                st.messages.retain(|m| m.uid != gone);
                if let Some(seq) = seq {
                    out.extend_from_slice(format!("* {} EXPUNGE\r\n", seq + 1).as_bytes());
                }
            }
            w.write_all(&out)?;
            // The rest of the fetch goes on normally, without the vanished message.
            let st = state.lock().unwrap();
            let max = st.messages.iter().map(|m| m.uid).max().unwrap_or(0);
            let wanted = parse_set(set, max);
            let mut out = Vec::new();
            for (i, m) in st
                .messages
                .iter()
                .filter(|m| m.moved_to.is_none())
                .enumerate()
            {
                if !wanted.contains(&m.uid) {
                    continue;
                }
                out.extend_from_slice(
                    format!(
                        "* {} FETCH (UID {} FLAGS () RFC822.SIZE {} BODY[] {{{}}}\r\n",
                        i + 1,
                        m.uid,
                        m.raw.len(),
                        m.raw.len()
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(&m.raw);
                out.extend_from_slice(b")\r\n");
            }
            out.extend_from_slice(format!("{tag} OK Fetch completed\r\n").as_bytes());
            w.write_all(&out)
        }
        Quirk::OverQuotaOnMove | Quirk::NoOnStore | Quirk::NonAsciiAfterCodeOnSelect => {
            unreachable!("not a fetch quirk")
        }
    }
}
