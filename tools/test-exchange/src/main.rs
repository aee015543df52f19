//! pma-test-exchange: a local stand-in for Exchange Online's IMAP front end, for tests and the
//! demo. It speaks as outlook.office365.com does (see ../shared/REFERENCE.md, "What Exchange
//! Online's IMAP server says") and relays the mailbox work to the Dovecot harness.
//!
//! Usage: `pma-test-exchange --listen 127.0.0.1:19931 [--listen ADDR]... --backend 127.0.0.1:19143
//! --cert server.pem --key server.key --idp http://127.0.0.1:19980 --control DIR [--idle-limit SECS]`
//!
//! # What it says
//! - Implicit TLS only (the harness CA's certificate). Greeting `* OK The Microsoft Exchange
//!   IMAP4 service is ready. [<base64 of the UTF-16LE back-end host name>]`.
//! - CAPABILITY before sign-in `IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS ID
//!   UNSELECT CHILDREN IDLE NAMESPACE LITERAL+`; after it MOVE CLIENTACCESSRULES
//!   CLIENTNETWORKPRESENCELOCATION BACKENDAUTHENTICATE are added. No CONDSTORE, QRESYNC, ENABLE.
//! - `OK AUTHENTICATE completed.` / `NO AUTHENTICATE failed.` (never a reason, never a SASL error
//!   challenge); `OK LOGIN completed.` / `NO LOGIN failed.`; a back end that is temporarily
//!   unavailable answers `NO Server Unavailable. 15`.
//! - A token the identity endpoint calls active but whose owner may not open the mailbox named in
//!   `user=` (no line `<mailbox>/<owner>` in the harness's delegations: a delegate without Full
//!   Access, an app-only principal not granted, an address no mailbox has) signs in
//!   (`OK AUTHENTICATE completed.`), and then SELECT, EXAMINE, NAMESPACE, LIST, STATUS... answer
//!   `BAD User is authenticated but not connected.` followed by `* BYE Connection closed. 14`.
//! - Folders `Sent Items`, `Deleted Items`, `Junk Email` (Dovecot's Sent, Trash, Junk).
//! - IDLE ends from the server's side after `--idle-limit` seconds (Exchange: about 29 minutes)
//!   with `* BYE Connection closed. 14`.
//! - Tagged OK answers read `<COMMAND> completed.` (response codes kept).
//!
//! # Control
//! `<control>/exchange-imap-disabled`, one entry a line, read at every sign-in: a mailbox address
//! (IMAP disabled for that mailbox: `Set-CASMailbox -ImapEnabled $false`), `@domain` (for the
//! tenant owning the domain) or `*` (the whole tenant). AUTHENTICATE for such a mailbox, or by
//! a token of such a user, answers `NO AUTHENTICATE failed.` however fresh the token.
#![forbid(unsafe_code)]

mod wire;

use base64::Engine;
use futures::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use futures::FutureExt;
use futures_rustls::rustls::pki_types::pem::PemObject;
use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use futures_rustls::rustls::{self, ServerConfig};
use futures_rustls::TlsAcceptor;
use smol::net::{TcpListener, TcpStream};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wire::{Command, Reader};

const PRE_AUTH_CAPS: &str =
    "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+";
const POST_AUTH_CAPS: &str = "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT \
     CLIENTACCESSRULES CLIENTNETWORKPRESENCELOCATION BACKENDAUTHENTICATE CHILDREN IDLE NAMESPACE LITERAL+";
const BACKEND_HOST: &str = "PMAH01MB0001.contoso.test";
const NOT_CONNECTED: &str = "User is authenticated but not connected.";
const BYE_CLOSED: &[u8] = b"* BYE Connection closed. 14\r\n";
/// How long a back-end step (connect, greeting, sign-in) may take.
const STEP: Duration = Duration::from_secs(20);

struct Settings {
    backend: String,
    idp: String,
    control: PathBuf,
    idle_limit: Duration,
}

fn main() {
    let mut listen = Vec::new();
    let mut backend = String::new();
    let mut cert = PathBuf::new();
    let mut key = PathBuf::new();
    let mut idp = String::new();
    let mut control = PathBuf::new();
    let mut idle_limit = 29 * 60;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--listen" => listen.push(value()),
            "--backend" => backend = value(),
            "--cert" => cert = value().into(),
            "--key" => key = value().into(),
            "--idp" => idp = value(),
            "--control" => control = value().into(),
            "--idle-limit" => {
                idle_limit = value().parse().unwrap_or_else(|_| {
                    eprintln!("pma-test-exchange: --idle-limit takes whole seconds");
                    std::process::exit(2)
                })
            }
            other => {
                eprintln!("pma-test-exchange: unknown argument {other:?}; see the source's header for usage");
                std::process::exit(2);
            }
        }
    }
    if listen.is_empty() || backend.is_empty() || idp.is_empty() {
        eprintln!("pma-test-exchange: --listen, --backend, --cert, --key and --idp are required");
        std::process::exit(2);
    }
    let idp = idp
        .strip_prefix("http://")
        .unwrap_or(&idp)
        .trim_end_matches('/')
        .to_string();
    let tls = match tls_config(&cert, &key) {
        Ok(c) => TlsAcceptor::from(c),
        Err(e) => {
            eprintln!("pma-test-exchange: TLS setup: {e}");
            std::process::exit(1);
        }
    };
    let settings = Arc::new(Settings {
        backend,
        idp,
        control,
        idle_limit: Duration::from_secs(idle_limit),
    });
    smol::block_on(async {
        let mut loops = Vec::new();
        for addr in &listen {
            let listener = match TcpListener::bind(addr.as_str()).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("pma-test-exchange: cannot listen on {addr}: {e}");
                    std::process::exit(1);
                }
            };
            eprintln!("pma-test-exchange: listening on {addr} (IMAPS)");
            let tls = tls.clone();
            let settings = settings.clone();
            loops.push(smol::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((tcp, peer)) => {
                            let tls = tls.clone();
                            let settings = settings.clone();
                            smol::spawn(async move {
                                if let Err(e) = serve(tls, tcp, &settings).await {
                                    eprintln!("pma-test-exchange: {peer}: {e}");
                                }
                            })
                            .detach();
                        }
                        Err(e) => {
                            eprintln!("pma-test-exchange: accept: {e}");
                            smol::Timer::after(Duration::from_millis(100)).await;
                        }
                    }
                }
            }));
        }
        futures::future::join_all(loops).await;
    });
}

fn tls_config(cert: &PathBuf, key: &PathBuf) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

type ClientTls = futures_rustls::server::TlsStream<TcpStream>;

/// The back-end (Dovecot) connection of a signed-in client.
struct Backend {
    reader: Reader<TcpStream>,
    writer: TcpStream,
}

enum State {
    /// Not signed in yet.
    Fresh,
    /// Signed in, relaying to the back end.
    Connected(Box<Backend>),
    /// Signed in with a live token whose owner may not open the mailbox.
    NotConnected,
}

struct Conn<'a> {
    reader: Reader<ReadHalf<ClientTls>>,
    writer: WriteHalf<ClientTls>,
    settings: &'a Settings,
    peer: String,
}

async fn serve(tls: TlsAcceptor, tcp: TcpStream, settings: &Settings) -> io::Result<()> {
    let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let _ = tcp.set_nodelay(true);
    let stream = with_timeout(tls.accept(tcp)).await?;
    let (r, w) = stream.split();
    let mut conn = Conn {
        reader: Reader::new(r),
        writer: w,
        settings,
        peer,
    };
    let r = conn.run().await;
    // End TLS properly (close_notify), as Exchange does after its BYE.
    let _ = with_timeout(conn.writer.close()).await;
    r
}

async fn with_timeout<T>(f: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    futures::select_biased! {
        r = f.fuse() => r,
        _ = FutureExt::fuse(smol::Timer::after(STEP)) => Err(io::ErrorKind::TimedOut.into()),
    }
}

impl Conn<'_> {
    async fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.writer.write_all(data).await?;
        self.writer.flush().await
    }

    async fn say(&mut self, line: &str) -> io::Result<()> {
        self.send(format!("{line}\r\n").as_bytes()).await
    }

    /// Reads one command with its literals (answering synchronizing literals with Exchange's
    /// continuation); `None` when the client closed.
    async fn command(&mut self) -> io::Result<Option<Command>> {
        let mut cmd = Command::default();
        loop {
            let Some(line) = self.reader.line().await? else {
                return Ok(None);
            };
            let text = wire::trim_crlf(&line);
            match wire::literal_len(&line) {
                Some((n, plus)) if n <= wire::MAX_LITERAL => {
                    let open = text.iter().rposition(|&b| b == b'{').unwrap_or(text.len());
                    cmd.texts.push(text[..open].to_vec());
                    if !plus {
                        self.say("+ Ready for additional command text.").await?;
                    }
                    cmd.literals.push(self.reader.exact(n).await?);
                }
                Some(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "literal too big",
                    ))
                }
                None => {
                    cmd.texts.push(text.to_vec());
                    return Ok(Some(cmd));
                }
            }
        }
    }

    async fn run(&mut self) -> io::Result<()> {
        let host: Vec<u8> = BACKEND_HOST
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let greeting = format!(
            "* OK The Microsoft Exchange IMAP4 service is ready. [{}]",
            base64::engine::general_purpose::STANDARD.encode(host)
        );
        self.say(&greeting).await?;
        let mut state = State::Fresh;
        loop {
            let Some(mut cmd) = self.command().await? else {
                return Ok(());
            };
            let (tag, verb, _) = cmd.head();
            if tag.is_empty() || verb.is_empty() {
                self.say("* BAD Command Error. 10").await?;
                continue;
            }
            match verb.as_str() {
                "CAPABILITY" => {
                    let caps = if matches!(state, State::Fresh) {
                        PRE_AUTH_CAPS
                    } else {
                        POST_AUTH_CAPS
                    };
                    self.say(&format!("* CAPABILITY {caps}")).await?;
                    self.say(&format!("{tag} OK CAPABILITY completed.")).await?;
                    continue;
                }
                "NOOP" if !matches!(state, State::Connected(_)) => {
                    self.say(&format!("{tag} OK NOOP completed.")).await?;
                    continue;
                }
                "ID" => {
                    self.say("* ID NIL").await?;
                    self.say(&format!("{tag} OK ID completed.")).await?;
                    continue;
                }
                "LOGOUT" => {
                    if let State::Connected(b) = &mut state {
                        let _ = b.writer.write_all(b"z LOGOUT\r\n").await;
                    }
                    self.say("* BYE Microsoft Exchange Server IMAP4 server signing off.")
                        .await?;
                    self.say(&format!("{tag} OK LOGOUT completed.")).await?;
                    return Ok(());
                }
                "STARTTLS" | "ENABLE" | "COMPRESS" => {
                    self.say(&format!("{tag} BAD Command Error. 12")).await?;
                    continue;
                }
                _ => {}
            }
            match &mut state {
                State::Fresh => match verb.as_str() {
                    "AUTHENTICATE" => state = self.authenticate(&tag, &cmd).await?,
                    "LOGIN" => state = self.login(&tag, &cmd).await?,
                    _ => {
                        self.say(&format!("{tag} BAD Command received in Invalid state."))
                            .await?
                    }
                },
                State::NotConnected => {
                    // Exchange accepted the token but cannot open the mailbox for its owner.
                    eprintln!("pma-test-exchange: {}: {verb}: {NOT_CONNECTED}", self.peer);
                    self.say(&format!("{tag} BAD {NOT_CONNECTED}")).await?;
                    self.send(BYE_CLOSED).await?;
                    return Ok(());
                }
                State::Connected(backend) => {
                    if matches!(verb.as_str(), "AUTHENTICATE" | "LOGIN") {
                        self.say(&format!("{tag} BAD Command received in Invalid state."))
                            .await?;
                        continue;
                    }
                    if matches!(
                        verb.as_str(),
                        "SELECT"
                            | "EXAMINE"
                            | "STATUS"
                            | "CREATE"
                            | "DELETE"
                            | "RENAME"
                            | "SUBSCRIBE"
                            | "UNSUBSCRIBE"
                            | "APPEND"
                            | "COPY"
                            | "MOVE"
                            | "LIST"
                            | "LSUB"
                    ) {
                        cmd.map_folders_in();
                    }
                    let keep_going = if verb == "IDLE" {
                        self.idle(&tag, backend).await?
                    } else {
                        self.relay(&tag, &verb, &cmd, backend).await?
                    };
                    if !keep_going {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Sends `cmd` to the back end and its responses to the client; false when the back end
    /// went away (the client then got Exchange's BYE).
    async fn relay(
        &mut self,
        tag: &str,
        verb: &str,
        cmd: &Command,
        backend: &mut Backend,
    ) -> io::Result<bool> {
        backend.writer.write_all(&cmd.to_backend(None)).await?;
        backend.writer.flush().await?;
        loop {
            let Some(unit) = backend.reader.unit().await? else {
                self.send(BYE_CLOSED).await?;
                return Ok(false);
            };
            if let Some(done) = self.forward(tag, verb, &unit).await? {
                return Ok(done);
            }
        }
    }

    /// Forwards one back-end response; `Some(true)` when it was the tagged completion of `tag`.
    async fn forward(&mut self, tag: &str, verb: &str, unit: &[u8]) -> io::Result<Option<bool>> {
        let prefix = format!("{tag} ");
        if unit.starts_with(prefix.as_bytes()) {
            let line = String::from_utf8_lossy(wire::trim_crlf(unit)).into_owned();
            let rest = &line[prefix.len()..];
            let answer = match rest.strip_prefix("OK") {
                Some(ok) => {
                    let code = ok
                        .trim_start()
                        .strip_prefix('[')
                        .and_then(|c| c.split_once(']'))
                        .map(|(c, _)| format!("[{c}] "))
                        .unwrap_or_default();
                    format!("{tag} OK {code}{verb} completed.")
                }
                None => line.clone(),
            };
            self.say(&answer).await?;
            return Ok(Some(true));
        }
        if unit.starts_with(b"* CAPABILITY ") {
            self.say(&format!("* CAPABILITY {POST_AUTH_CAPS}")).await?;
        } else {
            self.send(&wire::rewrite_untagged(unit)).await?;
        }
        Ok(None)
    }

    /// IDLE: relays news until the client says DONE, or ends the session from the server's side
    /// after the idle limit as Exchange does. False when the connection ends.
    async fn idle(&mut self, tag: &str, backend: &mut Backend) -> io::Result<bool> {
        backend
            .writer
            .write_all(format!("{tag} IDLE\r\n").as_bytes())
            .await?;
        loop {
            let Some(unit) = backend.reader.unit().await? else {
                self.send(BYE_CLOSED).await?;
                return Ok(false);
            };
            if unit.starts_with(b"+") {
                self.say("+ IDLE accepted, awaiting DONE command.").await?;
                break;
            }
            if let Some(done) = self.forward(tag, "IDLE", &unit).await? {
                return Ok(done);
            }
        }
        let mut deadline = smol::Timer::after(self.settings.idle_limit);
        loop {
            enum Ev {
                Client(Option<Vec<u8>>),
                Backend(Option<Vec<u8>>),
                Deadline,
            }
            let ev = {
                let client = self.reader.line().fuse();
                let server = backend.reader.unit().fuse();
                futures::pin_mut!(client, server);
                futures::select_biased! {
                    l = client => Ev::Client(l?),
                    u = server => Ev::Backend(u?),
                    _ = (&mut deadline).fuse() => Ev::Deadline,
                }
            };
            match ev {
                Ev::Client(None) => return Ok(false),
                Ev::Client(Some(line)) => {
                    if !wire::trim_crlf(&line).eq_ignore_ascii_case(b"DONE") {
                        self.say(&format!("{tag} BAD Command Argument Error. 11"))
                            .await?;
                    }
                    backend.writer.write_all(b"DONE\r\n").await?;
                    loop {
                        let Some(unit) = backend.reader.unit().await? else {
                            self.send(BYE_CLOSED).await?;
                            return Ok(false);
                        };
                        if let Some(done) = self.forward(tag, "IDLE", &unit).await? {
                            return Ok(done);
                        }
                    }
                }
                Ev::Backend(None) => {
                    self.send(BYE_CLOSED).await?;
                    return Ok(false);
                }
                Ev::Backend(Some(unit)) => {
                    if let Some(done) = self.forward(tag, "IDLE", &unit).await? {
                        return Ok(done);
                    }
                }
                Ev::Deadline => {
                    eprintln!(
                        "pma-test-exchange: {}: IDLE ran {} s: ending the session",
                        self.peer,
                        self.settings.idle_limit.as_secs()
                    );
                    self.send(BYE_CLOSED).await?;
                    let _ = backend.writer.write_all(b"DONE\r\nz LOGOUT\r\n").await;
                    return Ok(false);
                }
            }
        }
    }

    /// AUTHENTICATE XOAUTH2 (or PLAIN): Exchange's answers, the back end's decision.
    async fn authenticate(&mut self, tag: &str, cmd: &Command) -> io::Result<State> {
        let args = cmd.args();
        let mechanism = args
            .first()
            .map(|m| m.to_ascii_uppercase())
            .unwrap_or_default();
        let response = match args.get(1) {
            Some(ir) => ir.clone(),
            None => {
                self.say("+ ").await?;
                match self.reader.line().await? {
                    Some(l) => String::from_utf8_lossy(wire::trim_crlf(&l)).into_owned(),
                    None => return Ok(State::Fresh),
                }
            }
        };
        let failed = format!("{tag} NO AUTHENTICATE failed.");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(response.trim())
            .unwrap_or_default();
        match mechanism.as_str() {
            "XOAUTH2" => {
                let Some((user, token)) = wire::parse_xoauth2(&decoded) else {
                    self.say(&failed).await?;
                    return Ok(State::Fresh);
                };
                if self.imap_disabled(&user) {
                    eprintln!(
                        "pma-test-exchange: {}: XOAUTH2 for {user}: IMAP is disabled for it",
                        self.peer
                    );
                    self.say(&failed).await?;
                    return Ok(State::Fresh);
                }
                let relay = format!("b1 AUTHENTICATE XOAUTH2 {}", response.trim());
                match self.backend_sign_in(&relay).await? {
                    BackendAnswer::Ok(b) => {
                        self.say(&format!("{tag} OK AUTHENTICATE completed."))
                            .await?;
                        Ok(State::Connected(b))
                    }
                    BackendAnswer::Unavailable => {
                        self.say(&format!("{tag} NO Server Unavailable. 15"))
                            .await?;
                        Ok(State::Fresh)
                    }
                    BackendAnswer::Refused => match introspect(&self.settings.idp, &token).await {
                        Ok(Some(owner)) if self.imap_disabled(&owner) => {
                            self.say(&failed).await?;
                            Ok(State::Fresh)
                        }
                        Ok(Some(owner)) => {
                            eprintln!(
                                "pma-test-exchange: {}: XOAUTH2: the token of {owner} is valid but may not open {user}: authenticated, not connected",
                                self.peer
                            );
                            self.say(&format!("{tag} OK AUTHENTICATE completed."))
                                .await?;
                            Ok(State::NotConnected)
                        }
                        Ok(None) => {
                            self.say(&failed).await?;
                            Ok(State::Fresh)
                        }
                        Err(e) => {
                            eprintln!("pma-test-exchange: introspection: {e}");
                            self.say(&format!("{tag} NO Server Unavailable. 15"))
                                .await?;
                            Ok(State::Fresh)
                        }
                    },
                }
            }
            "PLAIN" => {
                let relay = format!("b1 AUTHENTICATE PLAIN {}", response.trim());
                match self.backend_sign_in(&relay).await? {
                    BackendAnswer::Ok(b) => {
                        self.say(&format!("{tag} OK AUTHENTICATE completed."))
                            .await?;
                        Ok(State::Connected(b))
                    }
                    BackendAnswer::Unavailable => {
                        self.say(&format!("{tag} NO Server Unavailable. 15"))
                            .await?;
                        Ok(State::Fresh)
                    }
                    BackendAnswer::Refused => {
                        self.say(&failed).await?;
                        Ok(State::Fresh)
                    }
                }
            }
            _ => {
                self.say(&failed).await?;
                Ok(State::Fresh)
            }
        }
    }

    async fn login(&mut self, tag: &str, cmd: &Command) -> io::Result<State> {
        let relay = cmd.to_backend(Some("b1"));
        let relay = String::from_utf8_lossy(&relay[..relay.len() - 2]).into_owned();
        match self.backend_sign_in(&relay).await? {
            BackendAnswer::Ok(b) => {
                self.say(&format!("{tag} OK LOGIN completed.")).await?;
                Ok(State::Connected(b))
            }
            BackendAnswer::Unavailable => {
                self.say(&format!("{tag} NO Server Unavailable. 15"))
                    .await?;
                Ok(State::Fresh)
            }
            BackendAnswer::Refused => {
                self.say(&format!("{tag} NO LOGIN failed.")).await?;
                Ok(State::Fresh)
            }
        }
    }

    /// Whether the control file disables IMAP for `address` (the address, its domain, or all).
    fn imap_disabled(&self, address: &str) -> bool {
        let path = self.settings.control.join("exchange-imap-disabled");
        let Ok(text) = std::fs::read_to_string(path) else {
            return false;
        };
        let address = address.to_ascii_lowercase();
        let domain = address
            .rsplit_once('@')
            .map(|(_, d)| format!("@{d}"))
            .unwrap_or_default();
        text.lines()
            .map(|l| l.trim().to_ascii_lowercase())
            .any(|l| !l.is_empty() && (l == "*" || l == address || l == domain))
    }

    /// Signs in on a fresh back-end connection with `command` (tag `b1`, no CRLF).
    async fn backend_sign_in(&mut self, command: &str) -> io::Result<BackendAnswer> {
        let r = with_timeout(async {
            let tcp = TcpStream::connect(self.settings.backend.as_str()).await?;
            let _ = tcp.set_nodelay(true);
            let mut backend = Backend {
                reader: Reader::new(tcp.clone()),
                writer: tcp,
            };
            backend.reader.line().await?;
            backend
                .writer
                .write_all(format!("{command}\r\n").as_bytes())
                .await?;
            loop {
                let Some(unit) = backend.reader.unit().await? else {
                    return Ok(BackendAnswer::Unavailable);
                };
                if unit.starts_with(b"+") {
                    // Dovecot's error challenge: an empty answer gets the NO.
                    backend.writer.write_all(b"\r\n").await?;
                } else if unit.starts_with(b"b1 OK") {
                    // Exchange mailboxes always have their standard folders.
                    backend
                        .writer
                        .write_all(b"b2 CREATE Sent\r\nb3 CREATE Trash\r\nb4 CREATE Junk\r\n")
                        .await?;
                    while let Some(unit) = backend.reader.unit().await? {
                        if unit.starts_with(b"b4 ") {
                            return Ok(BackendAnswer::Ok(Box::new(backend)));
                        }
                    }
                    return Ok(BackendAnswer::Unavailable);
                } else if unit.starts_with(b"b1 ") {
                    let text = String::from_utf8_lossy(&unit).to_ascii_uppercase();
                    return Ok(if text.contains("[UNAVAILABLE]") {
                        BackendAnswer::Unavailable
                    } else {
                        BackendAnswer::Refused
                    });
                }
            }
        })
        .await;
        match r {
            Ok(a) => Ok(a),
            Err(e) => {
                eprintln!("pma-test-exchange: back end {}: {e}", self.settings.backend);
                Ok(BackendAnswer::Unavailable)
            }
        }
    }
}

enum BackendAnswer {
    Ok(Box<Backend>),
    Refused,
    Unavailable,
}

/// Asks the identity endpoint whose `token` it is: `Some(owner)` for a live token granting IMAP.
async fn introspect(idp: &str, token: &str) -> io::Result<Option<String>> {
    with_timeout(async {
        let mut tcp = TcpStream::connect(idp).await?;
        let body = format!("token={}", form_encode(token));
        let req = format!(
            "POST /introspect HTTP/1.1\r\nHost: {idp}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        if !head.starts_with("HTTP/1.1 200") {
            return Err(io::Error::other(format!(
                "introspection answered {}",
                head.lines().next().unwrap_or("")
            )));
        }
        if !body.replace(' ', "").contains("\"active\":true") {
            return Ok(None);
        }
        Ok(json_string(body, "username"))
    })
    .await
}

fn json_string(json: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\":");
    let at = json.find(&key)? + key.len();
    let rest = json[at..].trim_start().strip_prefix('"')?;
    Some(rest.split('"').next()?.to_string()).filter(|s| !s.is_empty())
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
