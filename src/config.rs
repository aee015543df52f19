//! Settings, as on the admin screen, loaded from JSON and validated once.
//!
//! [`Config::load`] reads the agent's file; [`Mailbox::from_json`] reads one mailbox (the C API).
//! Both check every key: unknown keys, wrong types and invalid combinations are errors of kind
//! [`ErrorKind::Config`] whose message starts with the key path and says what is allowed:
//!
//! ```text
//! mailboxes[0].imap.prot: unknown key; allowed: server, port, … (fix: did you mean "port"?)
//! mailboxes[0].imap.port: expected an integer 1..65535, found string "993"
//! ```
//!
//! Secrets (`password`, `oauth.client_secret`, `output.token`) are resolved here, once, from
//! exactly one of their three spellings (inline, `*_env`, `*_file`); no other module reads the
//! environment or files for configuration. Relative paths resolve against the config file's
//! directory. `null` means "not set" for every optional key, and keys starting with `_` are
//! comments.

pub mod edit;
mod fields;
mod secrets;

use crate::error::{Error, ErrorKind, Result};
use crate::json::{self, Value};
use crate::secret::Secret;
use fields::{join, Obj};
use std::cell::Cell;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The whole configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where per-mailbox state and token caches live (`state_dir`, default `./state`).
    pub state_dir: PathBuf,
    /// Where tickets go.
    pub output: Output,
    /// One entry per mailbox.
    pub mailboxes: Vec<Mailbox>,
    /// A program `run` starts when a mailbox enters or leaves a failed state
    /// (`notify_command`), with the arguments: mailbox name, `failed` or `recovered`, message.
    pub notify_command: Option<PathBuf>,
    /// A URL `run` POSTs a JSON event to on the same occasions (`notify_webhook`). A secret:
    /// chat webhooks carry their key in the URL.
    pub notify_webhook: Option<Secret>,
    /// Seconds one IMAP IDLE lasts before `run` re-issues it (`idle_refresh_secs`, default
    /// 1500, at most 1740: servers end IDLE after 29 or 30 minutes).
    pub idle_refresh_secs: u64,
    /// Where `run` serves `/metrics`, `/healthz` and `/readyz` (`metrics.listen`); `None`
    /// (the default) serves nothing. A bare port means loopback: another interface is used
    /// only when the administrator writes its address.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Where tickets are delivered (`output`). `Debug` hides the webhook URL's query, which often
/// carries an access key (`?code=…`).
#[derive(Clone, PartialEq)]
pub enum Output {
    /// JSON lines on standard output.
    Stdout,
    /// One `NAME.json` file per ticket in `dir`.
    Spool { dir: PathBuf },
    /// HTTP POST of each ticket to `url`, with an optional bearer token.
    Webhook {
        url: String,
        token: Option<Secret>,
        /// Extra CA certificates (PEM) to trust for an https webhook on a private CA (`ca_file`).
        ca_file: Option<PathBuf>,
    },
}

/// One mailbox, as the admin screen shows it.
#[derive(Debug, Clone)]
pub struct Mailbox {
    /// Mailbox Name (`name`): unique, names the state files.
    pub name: String,
    /// Email (`email`): the address whose mail is read.
    pub email: String,
    /// Username (`username`): who signs in (the delegate for a shared mailbox).
    pub username: String,
    /// Password (`password` | `password_env` | `password_file`).
    pub password: Option<Secret>,
    /// Status (`active`, default true).
    pub active: bool,
    /// Add Attachments to Ticket (`add_attachments`, default true).
    pub add_attachments: bool,
    /// Add CCs to Tickets (`add_ccs`, default false).
    pub add_ccs: bool,
    /// Incoming server settings (`imap`).
    pub imap: Imap,
    /// OAuth 2.0 settings (`oauth`).
    pub oauth: OAuth,
    /// What happens on the server once a ticket was delivered (`after_processing`).
    pub after_processing: AfterProcessing,
    /// Largest attachment carried in a ticket, in bytes (`max_attachment_bytes`, default 25 MiB).
    pub max_attachment_bytes: u64,
    /// Messages fetched per UID FETCH (`batch_size`, default 200; a batch is also bounded by 32 MiB of mail).
    pub batch_size: u32,
    /// Seconds between polls when the server has no IDLE (`poll_interval_secs`, default 60).
    pub poll_interval_secs: u64,
    /// Keep each message's raw RFC 822 bytes beside its ticket for the C API's `pma_batch_raw`
    /// (`keep_raw`, default false).
    pub keep_raw: bool,
    /// How mail is read (`transport`, default imap).
    pub transport: Transport,
    /// Microsoft Graph settings (`graph`), used with `transport: "graph"`.
    pub graph: Graph,
}

/// How a mailbox's mail is read (`transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// IMAP (the `imap` settings).
    Imap,
    /// Microsoft Graph mail API (the `graph` settings).
    Graph,
}

/// Microsoft Graph settings (`graph`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    /// The folder read (`folder`): a well-known name (`inbox`) or a display-name path
    /// (`Inbox/Support`); default `inbox`.
    pub folder: String,
    /// The Graph service root (`endpoint`, default `https://graph.microsoft.com`; national
    /// clouds such as `https://graph.microsoft.us`; http only for loopback hosts).
    pub endpoint: String,
}

impl Default for Graph {
    fn default() -> Self {
        Graph {
            folder: "inbox".to_string(),
            endpoint: DEFAULT_GRAPH_ENDPOINT.to_string(),
        }
    }
}

impl Mailbox {
    /// The folder mail is read from, for the chosen transport.
    pub fn search_folder(&self) -> &str {
        match self.transport {
            Transport::Imap => &self.imap.folder,
            Transport::Graph => &self.graph.folder,
        }
    }
}

/// Encryption Type (`imap.encryption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// Implicit TLS from the first byte (port 993).
    Ssl,
    /// Plain connection upgraded with STARTTLS (port 143); refused if the server does not offer it.
    StartTls,
    /// No encryption; authentication only with `allow_plaintext`.
    None,
}

/// Incoming Mail Server settings (`imap`).
#[derive(Debug, Clone)]
pub struct Imap {
    /// `server` (default `outlook.office365.com`).
    pub server: String,
    /// `port` (default 993).
    pub port: u16,
    /// `encryption` (default ssl).
    pub encryption: Encryption,
    /// Search Folder (`folder`, default `INBOX`).
    pub folder: String,
    /// A PEM file with extra CA certificates to trust (`ca_file`).
    pub ca_file: Option<PathBuf>,
    /// Allow LOGIN without TLS (`allow_plaintext`, default false).
    pub allow_plaintext: bool,
    /// Timeout of every network step in seconds (`timeout_secs`, default 30).
    pub timeout_secs: u64,
}

/// OAuth 2.0 flow (`oauth.flow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Resource owner password credentials, as the admin guide sets it up.
    Password,
    /// App-only with a client secret.
    ClientCredentials,
    /// Interactive device-code sign-in (MFA-capable).
    DeviceCode,
}

/// Enable OAuth 2.0 and its settings (`oauth`).
#[derive(Debug, Clone)]
pub struct OAuth {
    /// Enable OAuth 2.0 (`enabled`, default false: Basic LOGIN).
    pub enabled: bool,
    /// Application ID (client id).
    pub application_id: String,
    /// Directory ID (tenant id or domain).
    pub directory_id: String,
    /// Shared Mailbox: authenticate as `username`, open `email`.
    pub shared_mailbox: bool,
    /// The grant (`flow`, default password).
    pub flow: Flow,
    /// `client_secret` | `client_secret_env` | `client_secret_file`.
    pub client_secret: Option<Secret>,
    /// When the client secret expires (`client_secret_expires`, an RFC 3339 date or date-time),
    /// as Unix seconds: reported 30 days ahead.
    pub client_secret_expires: Option<u64>,
    /// A PEM file with the app's certificate and private key (`client_certificate_file`): the
    /// app credential for client credentials instead of a client secret.
    pub client_certificate_file: Option<PathBuf>,
    /// Identity platform base URL (`authority`, default the cloud's: `https://login.microsoftonline.com`).
    pub authority: String,
    /// The Microsoft cloud (`cloud`, default global): sets the default authority, IMAP host
    /// and scopes.
    pub cloud: Cloud,
    /// HTTPS proxy for the token endpoint, `http://host:port` (`proxy`).
    pub proxy: Option<String>,
}

/// The Microsoft cloud a tenant lives in (`oauth.cloud`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cloud {
    /// The public (global) cloud: login.microsoftonline.com, outlook.office365.com.
    #[default]
    Global,
    /// Microsoft 365 US Government (GCC High, DoD): login.microsoftonline.us,
    /// outlook.office365.us.
    UsGov,
    /// Microsoft 365 operated by 21Vianet (China): login.chinacloudapi.cn, partner.outlook.cn.
    China,
}

impl Cloud {
    /// The config spelling (`global`, `usgov`, `china`).
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::UsGov => "usgov",
            Cloud::China => "china",
        }
    }

    /// The identity platform of this cloud (`oauth.authority` when absent).
    pub fn authority(self) -> &'static str {
        match self {
            Cloud::Global => DEFAULT_AUTHORITY,
            Cloud::UsGov => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// Exchange Online's IMAP host in this cloud (`imap.server` when absent).
    pub fn imap_server(self) -> &'static str {
        match self {
            Cloud::Global => DEFAULT_SERVER,
            Cloud::UsGov => "outlook.office365.us",
            Cloud::China => "partner.outlook.cn",
        }
    }

    /// The delegated IMAP scope (with `offline_access` for a refresh token).
    pub fn delegated_scope(self) -> &'static str {
        match self {
            Cloud::Global => "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
            Cloud::UsGov => "https://outlook.office365.us/IMAP.AccessAsUser.All offline_access",
            Cloud::China => "https://partner.outlook.cn/IMAP.AccessAsUser.All offline_access",
        }
    }

    /// The app-only (client credentials) scope of Exchange Online.
    pub fn app_scope(self) -> &'static str {
        match self {
            Cloud::Global => "https://outlook.office365.com/.default",
            Cloud::UsGov => "https://outlook.office365.us/.default",
            Cloud::China => "https://partner.outlook.cn/.default",
        }
    }
}

/// What happens on the server to a message once its ticket was delivered (`after_processing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterProcessing {
    /// Set \Seen.
    MarkRead,
    /// Move to `processed_folder`.
    Move { processed_folder: String },
    /// Set \Deleted and expunge.
    Delete,
}

// ---------------------------------------------------------------------------------------------
// Defaults and limits (the admin screen's defaults; limits keep durations and sizes sane
// downstream, e.g. `Instant + Duration` must not overflow).

/// `state_dir` when absent.
pub const DEFAULT_STATE_DIR: &str = "./state";
/// `imap.server` when absent.
pub const DEFAULT_SERVER: &str = "outlook.office365.com";
/// `oauth.authority` when absent.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// `graph.endpoint` when absent.
pub const DEFAULT_GRAPH_ENDPOINT: &str = "https://graph.microsoft.com";
/// `poll_interval_secs` when absent for `transport: "graph"` (a delta query is cheap).
pub const DEFAULT_GRAPH_POLL_SECS: u64 = 30;
/// `max_attachment_bytes` when absent: 25 MiB.
pub const DEFAULT_MAX_ATTACHMENT_BYTES: u64 = 25 * 1024 * 1024;
const MAX_ATTACHMENT_BYTES_LIMIT: u64 = 1 << 30;
const MAX_TIMEOUT_SECS: u64 = 3600;
const MAX_POLL_INTERVAL_SECS: u64 = 86_400;
const MAX_BATCH_SIZE: u64 = 1000;
const MAX_NAME_CHARS: usize = 64;

const TOP_KEYS: &[&str] = &[
    "state_dir",
    "output",
    "mailboxes",
    "notify_command",
    "notify_webhook",
    "idle_refresh_secs",
    "metrics",
];
/// `idle_refresh_secs` when absent: 25 minutes.
pub const DEFAULT_IDLE_REFRESH_SECS: u64 = 1500;
const MAX_IDLE_REFRESH_SECS: u64 = 1740;
const MAILBOX_KEYS: &[&str] = &[
    "name",
    "email",
    "username",
    "password",
    "password_env",
    "password_file",
    "active",
    "add_attachments",
    "add_ccs",
    "imap",
    "oauth",
    "after_processing",
    "processed_folder",
    "max_attachment_bytes",
    "batch_size",
    "poll_interval_secs",
    "keep_raw",
    "transport",
    "graph",
];
const GRAPH_KEYS: &[&str] = &["folder", "endpoint"];
const IMAP_KEYS: &[&str] = &[
    "server",
    "port",
    "encryption",
    "folder",
    "ca_file",
    "allow_plaintext",
    "timeout_secs",
];
const OAUTH_KEYS: &[&str] = &[
    "enabled",
    "application_id",
    "directory_id",
    "shared_mailbox",
    "flow",
    "client_secret",
    "client_secret_env",
    "client_secret_file",
    "authority",
    "proxy",
    "cloud",
    "client_secret_expires",
    "client_certificate_file",
];

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Stdout => f.write_str("Stdout"),
            Output::Spool { dir } => f.debug_struct("Spool").field("dir", dir).finish(),
            Output::Webhook {
                url,
                token,
                ca_file,
            } => {
                let shown = match url.split_once('?') {
                    Some((base, _)) => format!("{base}?…"),
                    None => url.clone(),
                };
                f.debug_struct("Webhook")
                    .field("url", &shown)
                    .field("token", token)
                    .field("ca_file", ca_file)
                    .finish()
            }
        }
    }
}

impl Default for Imap {
    fn default() -> Self {
        Imap {
            server: DEFAULT_SERVER.to_string(),
            port: 993,
            encryption: Encryption::Ssl,
            folder: "INBOX".to_string(),
            ca_file: None,
            allow_plaintext: false,
            timeout_secs: 30,
        }
    }
}

impl Default for OAuth {
    fn default() -> Self {
        OAuth {
            enabled: false,
            application_id: String::new(),
            directory_id: String::new(),
            shared_mailbox: false,
            flow: Flow::Password,
            client_secret: None,
            client_secret_expires: None,
            client_certificate_file: None,
            authority: DEFAULT_AUTHORITY.to_string(),
            cloud: Cloud::Global,
            proxy: None,
        }
    }
}

/// What loading needs besides the JSON: where relative paths start and how to read the
/// environment (injectable for tests).
struct Ctx<'a> {
    base_dir: &'a Path,
    env: &'a dyn Fn(&str) -> Option<OsString>,
    /// Whether an inline secret was read, to warn about a config file others can read.
    inline_secret_seen: Cell<bool>,
    /// False when loading for offline work (`parse`): secrets are neither read (their
    /// environment variables may be unset, their files absent) nor required.
    resolve_secrets: bool,
}

impl Ctx<'_> {
    fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p.strip_prefix(".").unwrap_or(p))
        }
    }
}

fn process_env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

fn parse_json(text: &str) -> Result<Value> {
    json::parse(text).map_err(|e| {
        Error::new(
            ErrorKind::Config,
            format!(
                "invalid JSON at line {}, column {}: {}",
                e.line, e.column, e.message
            ),
        )
    })
}

impl Config {
    /// Reads and validates the configuration file at `path`. Relative paths inside it resolve
    /// against the file's directory. On unix, warns when the file holds an inline secret
    /// (password, client secret, webhook token, notify_webhook URL) and is readable by group or
    /// others; a file without secrets may be shared.
    pub fn load(path: &Path) -> Result<Config> {
        Config::load_with(path, true)
    }

    /// [`Config::load`] for offline work (`parse`): every key is checked, but secrets are not
    /// read (their environment variables may be unset, their files absent) and credentials
    /// are not required. The mailboxes' secrets are `None`.
    pub fn load_offline(path: &Path) -> Result<Config> {
        Config::load_with(path, false)
    }

    fn load_with(path: &Path, resolve_secrets: bool) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("cannot read config file {}: {e}", path.display()),
            )
        })?;
        let mut base = path.parent().unwrap_or(Path::new("")).to_path_buf();
        if base.as_os_str().is_empty() {
            base = PathBuf::from(".");
        }
        // Absolute, so that a later change of working directory (daemon) changes nothing.
        if base.is_relative() {
            if let Ok(cwd) = std::env::current_dir() {
                base = cwd.join(base.strip_prefix(".").unwrap_or(&base));
            }
        }
        let ctx = Ctx {
            base_dir: &base,
            env: &process_env,
            inline_secret_seen: Cell::new(false),
            resolve_secrets,
        };
        let config = Config::parse(&text, &ctx).map_err(|e| e.context(path.display()))?;
        if ctx.inline_secret_seen.get() {
            secrets::warn_if_exposed(path, "config file");
        }
        Ok(config)
    }

    /// Parses and validates a configuration given as text; relative paths resolve against
    /// `base_dir`.
    pub fn from_json(text: &str, base_dir: &Path) -> Result<Config> {
        Config::from_json_with_env(text, base_dir, &process_env)
    }

    /// [`Config::from_json`] reading environment variables through `env` instead of the
    /// process environment (tests, embedding hosts).
    pub fn from_json_with_env(
        text: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Config> {
        let ctx = Ctx {
            base_dir,
            env,
            inline_secret_seen: Cell::new(false),
            resolve_secrets: true,
        };
        Config::parse(text, &ctx)
    }

    fn parse(text: &str, ctx: &Ctx<'_>) -> Result<Config> {
        let value = parse_json(text)?;
        let root = Obj::new(
            &value,
            "",
            "config",
            "an object with state_dir, output and mailboxes",
        )?;
        root.check_keys(TOP_KEYS)?;

        let state_dir = root.str_opt("state_dir")?.unwrap_or(DEFAULT_STATE_DIR);
        if state_dir.is_empty() {
            return Err(Error::config(
                "state_dir",
                "must not be empty; expected a directory path",
            ));
        }
        let state_dir = ctx.resolve(state_dir);
        let output = parse_output(&root, ctx)?;
        let notify_command = match root.str_opt_as("notify_command", "a program path", false)? {
            None => None,
            Some("") => {
                return Err(Error::config(
                    "notify_command",
                    "must not be empty; expected a program path (or null)",
                ))
            }
            // A bare name is looked up in PATH; a path resolves like every other path.
            Some(c) if c.contains(['/', '\\']) => Some(ctx.resolve(c)),
            Some(c) => Some(PathBuf::from(c)),
        };
        let notify_webhook = match root.str_opt_as("notify_webhook", "an https:// URL", false)? {
            None => None,
            Some(url) => {
                check_url("notify_webhook", url, &["https", "http"], true)?;
                // Chat webhooks carry their key in the URL.
                ctx.inline_secret_seen.set(true);
                Some(Secret::new(url))
            }
        };
        let idle_refresh_secs = root.int_or(
            "idle_refresh_secs",
            60,
            MAX_IDLE_REFRESH_SECS,
            DEFAULT_IDLE_REFRESH_SECS,
        )?;

        let metrics_listen = parse_metrics(&root)?;

        const LIST: &str = "a non-empty array of mailbox objects";
        let list = match root.get("mailboxes") {
            None => return Err(root.missing("mailboxes", LIST)),
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(Error::config(
                    "mailboxes",
                    format!("expected {LIST}, found {}", fields::describe(other, false)),
                ))
            }
        };
        if list.is_empty() {
            return Err(Error::config(
                "mailboxes",
                "is empty; configure at least one mailbox",
            ));
        }
        let mut mailboxes: Vec<Mailbox> = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let prefix = format!("mailboxes[{i}]");
            let mailbox = parse_mailbox(item, &prefix, "mailbox", ctx)?;
            mailbox.check(&prefix, ctx.resolve_secrets)?;
            if let Some(j) = mailboxes
                .iter()
                .position(|m| name_key(&m.name) == name_key(&mailbox.name))
            {
                return Err(Error::config(
                    join(&prefix, "name"),
                    format!(
                        "\"{}\" is already the name of mailboxes[{j}]; names must be unique \
                         (ignoring case) because they name the state files",
                        mailbox.name
                    ),
                ));
            }
            mailboxes.push(mailbox);
        }
        Ok(Config {
            state_dir,
            output,
            mailboxes,
            notify_command,
            notify_webhook,
            idle_refresh_secs,
            metrics_listen,
        })
    }

    /// The mailbox called `name` (ASCII case ignored, as names are unique that way).
    pub fn mailbox(&self, name: &str) -> Option<&Mailbox> {
        let key = name_key(name);
        self.mailboxes.iter().find(|m| name_key(&m.name) == key)
    }
}

/// Mailbox names compare case-insensitively: they name files, and Windows and macOS file
/// systems ignore case.
fn name_key(name: &str) -> String {
    name.to_lowercase()
}

fn parse_metrics(root: &Obj<'_>) -> Result<Option<std::net::SocketAddr>> {
    let Some(obj) = root.obj_opt(
        "metrics",
        "an object such as {\"listen\": \"127.0.0.1:9464\"}",
    )?
    else {
        return Ok(None);
    };
    obj.check_keys(&["listen"])?;
    const EXPECTED: &str = "an address such as \"127.0.0.1:9464\" or \"0.0.0.0:9464\", a port \
                            such as \"9464\" (loopback), or null";
    match obj.str_opt_as("listen", EXPECTED, false)? {
        None => Ok(None),
        Some(text) => parse_listen(text).map(Some).map_err(|why| {
            Error::config(
                obj.key_path("listen"),
                format!("{why}; expected {EXPECTED}"),
            )
        }),
    }
}

/// `metrics.listen`: `IP:PORT` as written (`[::1]:9464` for IPv6), or a bare `PORT` on
/// 127.0.0.1. Host names are refused: the address that is bound must be the one written.
pub fn parse_listen(text: &str) -> std::result::Result<std::net::SocketAddr, String> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return match t.parse::<u16>() {
            Ok(port) => Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
            Err(_) => Err(format!("{t:?} is not a port (0..65535)")),
        };
    }
    t.parse::<std::net::SocketAddr>().map_err(|_| {
        format!("{t:?} is not an IP address with a port (host names are not accepted)")
    })
}

fn parse_output(root: &Obj<'_>, ctx: &Ctx<'_>) -> Result<Output> {
    let Some(obj) = root.obj_opt(
        "output",
        "an object such as {\"kind\": \"stdout\"}, {\"kind\": \"spool\", \"dir\": …} or \
         {\"kind\": \"webhook\", \"url\": …}",
    )?
    else {
        return Ok(Output::Stdout);
    };
    let kind = obj.choice_or("kind", &["stdout", "spool", "webhook"], "")?;
    match kind {
        "stdout" => {
            obj.check_keys(&["kind"])?;
            Ok(Output::Stdout)
        }
        "spool" => {
            obj.check_keys(&["kind", "dir"])?;
            let dir = obj.str_req("dir", "a directory path")?;
            if dir.is_empty() {
                return Err(Error::config(
                    obj.key_path("dir"),
                    "must not be empty; expected a directory path",
                ));
            }
            Ok(Output::Spool {
                dir: ctx.resolve(dir),
            })
        }
        "webhook" => {
            obj.check_keys(&["kind", "url", "token", "token_env", "token_file", "ca_file"])?;
            let url = obj.str_req("url", "an https:// URL")?;
            check_url(&obj.key_path("url"), url, &["https", "http"], true)?;
            let token = secrets::resolve(&obj, "token", ctx)?;
            let ca_file = match obj.str_opt_as("ca_file", "a file path or null", false)? {
                Some("") => {
                    return Err(Error::config(
                        obj.key_path("ca_file"),
                        "expected a file path or null, found \"\"",
                    ))
                }
                Some(ca) => Some(ctx.resolve(ca)),
                None => None,
            };
            Ok(Output::Webhook {
                url: url.to_string(),
                token,
                ca_file,
            })
        }
        _ => Err(obj.missing("kind", "one of \"stdout\", \"spool\", \"webhook\"")),
    }
}

impl Mailbox {
    /// Parses and fully validates one mailbox entry (the object found in `mailboxes`), as the C
    /// API's `pma_init` receives it. Error paths are relative to the entry (`imap.port`).
    pub fn from_json(text: &str, base_dir: &Path) -> Result<Mailbox> {
        let mailbox = Mailbox::from_json_incomplete(text, base_dir)?;
        mailbox.validate()?;
        Ok(mailbox)
    }

    /// Like [`Mailbox::from_json`], but credentials may still be missing: no password, no
    /// `oauth.application_id`/`directory_id`, no client secret. For a host that supplies them
    /// afterwards with [`Mailbox::set_oauth_credentials`]; call [`Mailbox::validate`] before use.
    pub fn from_json_incomplete(text: &str, base_dir: &Path) -> Result<Mailbox> {
        let ctx = Ctx {
            base_dir,
            env: &process_env,
            inline_secret_seen: Cell::new(false),
            resolve_secrets: true,
        };
        let value = parse_json(text)?;
        let mailbox = parse_mailbox(&value, "", "mailbox", &ctx)?;
        mailbox.check("", false)?;
        Ok(mailbox)
    }

    /// Checks every rule, including complete credentials. Errors name key paths relative to
    /// the mailbox entry.
    pub fn validate(&self) -> Result<()> {
        self.check("", true)
    }

    /// Sets the OAuth application, directory and (optionally) client secret, enables OAuth,
    /// and validates; on error the mailbox is unchanged. `None` keeps a configured secret.
    pub fn set_oauth_credentials(
        &mut self,
        application_id: &str,
        directory_id: &str,
        client_secret: Option<Secret>,
    ) -> Result<()> {
        let mut next = self.clone();
        next.oauth.enabled = true;
        next.oauth.application_id = strip_braces(application_id).to_string();
        next.oauth.directory_id = strip_braces(directory_id).to_string();
        if client_secret.is_some() {
            next.oauth.client_secret = client_secret;
        }
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// The `user=` of SASL XOAUTH2: the mailbox's address for a shared mailbox and for app-only
    /// tokens (no user signed in), otherwise the username that signed in.
    pub fn xoauth2_user(&self) -> &str {
        if self.oauth.shared_mailbox || self.oauth.flow == Flow::ClientCredentials {
            &self.email
        } else {
            &self.username
        }
    }

    /// Every rule that can be checked on the struct, with key paths under `prefix`. With
    /// `credentials`, also that the chosen sign-in has what it needs.
    fn check(&self, prefix: &str, credentials: bool) -> Result<()> {
        let at = |key: &str| join(prefix, key);
        check_name(&at("name"), &self.name)?;
        check_email(&at("email"), &self.email)?;
        if self.username.is_empty() || self.username.chars().any(char::is_whitespace) {
            return Err(Error::config(
                at("username"),
                "must be a non-empty account name without spaces (default: the email)",
            ));
        }
        self.imap.check(&at("imap"))?;
        self.oauth.check(&at("oauth"))?;
        if self.transport == Transport::Graph {
            self.graph.check(&at("graph"))?;
            if !self.oauth.enabled {
                return Err(Error::config(
                    at("oauth.enabled"),
                    "is false, but transport \"graph\" signs in only with OAuth 2.0 (Microsoft \
                     Graph has no password sign-in)",
                )
                .with_fix(
                    "set oauth.enabled to true with flow \"client_credentials\" (app-only, \
                     application permission Mail.ReadWrite) or a delegated flow (Mail.ReadWrite.Shared)",
                ));
            }
        }
        let plaintext_ok = self.imap.encryption != Encryption::None || self.imap.allow_plaintext;
        if !plaintext_ok {
            return Err(Error::new(
                ErrorKind::PlaintextRefused,
                format!(
                    "{}: is false while {} is \"none\": the password or token would cross the \
                     network unencrypted",
                    at("imap.allow_plaintext"),
                    at("imap.encryption"),
                ),
            )
            .with_fix(
                "use encryption \"ssl\" (port 993) or \"starttls\" (port 143); only for a test \
                 server on a trusted network set imap.allow_plaintext to true",
            ));
        }
        match &self.after_processing {
            AfterProcessing::Move { processed_folder } => {
                if processed_folder.is_empty() {
                    return Err(Error::config(
                        at("processed_folder"),
                        "must not be empty; expected the folder processed mail is moved to",
                    ));
                }
                if processed_folder.eq_ignore_ascii_case(self.search_folder()) {
                    return Err(Error::config(
                        at("processed_folder"),
                        format!(
                            "is the search folder ({} \"{}\"); moved mail would come \
                             back as new tickets forever: choose another folder",
                            match self.transport {
                                Transport::Imap => "imap.folder",
                                Transport::Graph => "graph.folder",
                            },
                            self.search_folder()
                        ),
                    ));
                }
            }
            AfterProcessing::MarkRead | AfterProcessing::Delete => {}
        }
        if !(1..=MAX_BATCH_SIZE).contains(&u64::from(self.batch_size)) {
            return Err(Error::config(
                at("batch_size"),
                format!("expected an integer 1..{MAX_BATCH_SIZE}"),
            ));
        }
        if !(1..=MAX_POLL_INTERVAL_SECS).contains(&self.poll_interval_secs) {
            return Err(Error::config(
                at("poll_interval_secs"),
                format!("expected an integer 1..{MAX_POLL_INTERVAL_SECS}"),
            ));
        }
        if !(1..=MAX_ATTACHMENT_BYTES_LIMIT).contains(&self.max_attachment_bytes) {
            return Err(Error::config(
                at("max_attachment_bytes"),
                format!("expected an integer 1..{MAX_ATTACHMENT_BYTES_LIMIT}"),
            ));
        }
        // A delegate signs in for a shared mailbox; if it is the shared mailbox itself, the
        // admin forgot the username. (If that account really signs in itself, shared_mailbox
        // changes nothing and false is the honest setting.) App-only tokens have no user.
        if self.oauth.enabled
            && self.oauth.shared_mailbox
            && self.oauth.flow == Flow::Password
            && self.username.eq_ignore_ascii_case(&self.email)
        {
            return Err(Error::config(
                at("username"),
                format!(
                    "equals email \"{}\" although oauth.shared_mailbox is true; a shared mailbox \
                     cannot sign in itself",
                    self.email
                ),
            )
            .with_fix(
                "set username to the delegate account that has Full Access to the shared \
                 mailbox, or set oauth.shared_mailbox to false if this account signs in itself",
            ));
        }
        if credentials {
            self.check_credentials(prefix)?;
        }
        Ok(())
    }

    fn check_credentials(&self, prefix: &str) -> Result<()> {
        let at = |key: &str| join(prefix, key);
        let one_of = "set exactly one of password, password_env, password_file";
        if !self.oauth.enabled && self.password.is_none() {
            return Err(Error::config(
                at("password"),
                format!("required for Basic sign-in (oauth.enabled is false); {one_of}"),
            ));
        }
        if !self.oauth.enabled {
            return Ok(());
        }
        // oauth.directory_id may be left out: the tenant is then discovered from the domain
        // of the address (src/oauth/discovery.rs).
        for (key, value) in [("oauth.application_id", &self.oauth.application_id)] {
            if value.is_empty() {
                return Err(Error::config(
                    at(key),
                    "required when oauth.enabled is true (see the app registration's Overview \
                     page in Microsoft Entra ID)",
                ));
            }
        }
        match self.oauth.flow {
            Flow::Password if self.password.is_none() => Err(Error::config(
                at("password"),
                format!("required for oauth.flow \"password\"; {one_of}"),
            )),
            Flow::ClientCredentials
                if self.oauth.client_secret.is_none()
                    && self.oauth.client_certificate_file.is_none() =>
            {
                Err(Error::config(
                    at("oauth.client_secret"),
                    "required for oauth.flow \"client_credentials\"; set exactly one of \
                     client_secret, client_secret_env, client_secret_file, or a certificate in \
                     client_certificate_file",
                ))
            }
            _ => Ok(()),
        }
    }
}

fn parse_mailbox(
    value: &Value,
    prefix: &str,
    root_label: &'static str,
    ctx: &Ctx<'_>,
) -> Result<Mailbox> {
    let o = Obj::new(value, prefix, root_label, "a mailbox object")?;
    o.check_keys(MAILBOX_KEYS)?;
    let name = o.str_req("name", "a non-empty string (the Mailbox Name)")?;
    let email = o.str_req("email", "an email address")?;
    let username = o.str_opt("username")?.unwrap_or(email);
    let active = o.bool_or("active", true)?;
    let add_attachments = o.bool_or("add_attachments", true)?;
    let add_ccs = o.bool_or("add_ccs", false)?;
    let mut imap = parse_imap(&o, ctx)?;
    let after = o.choice_or(
        "after_processing",
        &["mark_read", "move", "delete"],
        "mark_read",
    )?;
    let processed_folder = o.str_opt("processed_folder")?;
    let after_processing = match (after, processed_folder) {
        ("move", Some(folder)) => AfterProcessing::Move {
            processed_folder: folder.to_string(),
        },
        ("move", None) => {
            return Err(o.missing(
                "processed_folder",
                "the folder processed mail is moved to, as after_processing is \"move\"",
            ))
        }
        (other, Some(_)) => {
            return Err(Error::config(
                o.key_path("processed_folder"),
                format!(
                    "only used with after_processing \"move\", but after_processing is \
                     \"{other}\": set after_processing to \"move\" or remove processed_folder"
                ),
            ))
        }
        ("delete", None) => AfterProcessing::Delete,
        _ => AfterProcessing::MarkRead,
    };
    let max_attachment_bytes = o.int_or(
        "max_attachment_bytes",
        1,
        MAX_ATTACHMENT_BYTES_LIMIT,
        DEFAULT_MAX_ATTACHMENT_BYTES,
    )?;
    let batch_size = o.int_or("batch_size", 1, MAX_BATCH_SIZE, 200)?;
    let transport = match o.choice_or("transport", &["imap", "graph"], "imap")? {
        "graph" => Transport::Graph,
        _ => Transport::Imap,
    };
    let default_poll = match transport {
        Transport::Graph => DEFAULT_GRAPH_POLL_SECS,
        Transport::Imap => 60,
    };
    let poll_interval_secs = o.int_or(
        "poll_interval_secs",
        1,
        MAX_POLL_INTERVAL_SECS,
        default_poll,
    )?;
    let keep_raw = o.bool_or("keep_raw", false)?;
    let graph = parse_graph(&o)?;
    let oauth = parse_oauth(&o, ctx)?;
    // The cloud's IMAP host unless imap.server names one.
    let server_given = o
        .obj_opt("imap", "an object with the incoming mail server settings")?
        .is_some_and(|i| i.get("server").is_some());
    if !server_given {
        imap.server = oauth.cloud.imap_server().to_string();
    }
    let password = secrets::resolve(&o, "password", ctx)?;
    let mailbox = Mailbox {
        name: name.to_string(),
        email: email.to_string(),
        username: username.to_string(),
        password,
        active,
        add_attachments,
        add_ccs,
        imap,
        oauth,
        after_processing,
        max_attachment_bytes,
        batch_size: u32::try_from(batch_size).unwrap_or(u32::MAX),
        poll_interval_secs,
        keep_raw,
        transport,
        graph,
    };
    mailbox.warn_about_odd_settings(prefix);
    Ok(mailbox)
}

impl Mailbox {
    /// Settings that usually are mistakes but can be right.
    fn warn_about_odd_settings(&self, prefix: &str) {
        let at = |key: &str| join(prefix, key);
        match (self.imap.encryption, self.imap.port) {
            (Encryption::Ssl, 143) => log::warn!(
                "{}: port 143 with encryption \"ssl\": port 143 usually expects \"starttls\"",
                at("imap.port")
            ),
            (Encryption::StartTls | Encryption::None, 993) => log::warn!(
                "{}: port 993 usually expects encryption \"ssl\"",
                at("imap.port")
            ),
            _ => {}
        }
        if !self.oauth.enabled && self.oauth.shared_mailbox {
            log::warn!(
                "{}: has no effect with Basic sign-in (oauth.enabled is false)",
                at("oauth.shared_mailbox")
            );
        }
        if self.oauth.enabled
            && self.oauth.shared_mailbox
            && self.oauth.flow == Flow::DeviceCode
            && self.username.eq_ignore_ascii_case(&self.email)
        {
            log::warn!(
                "{}: equals email for a shared mailbox; sign in with the delegate account that \
                 has Full Access, not with the shared mailbox",
                at("username")
            );
        }
    }
}

fn parse_imap(mailbox: &Obj<'_>, ctx: &Ctx<'_>) -> Result<Imap> {
    let mut imap = Imap::default();
    let Some(o) = mailbox.obj_opt("imap", "an object with the incoming mail server settings")?
    else {
        return Ok(imap);
    };
    o.check_keys(IMAP_KEYS)?;
    if let Some(server) = o.str_opt_as("server", "a host name", false)? {
        imap.server = server.to_string();
    }
    imap.port = u16::try_from(o.int_or("port", 1, 65535, 993)?).unwrap_or(993);
    let encryption = o
        .choice_or("encryption", &["ssl", "starttls", "none"], "ssl")
        .map_err(|e| match o.get("encryption") {
            Some(Value::String(s)) => match encryption_hint(s) {
                Some(hint) => e.with_fix(hint),
                None => e,
            },
            _ => e,
        })?;
    imap.encryption = match encryption {
        "starttls" => Encryption::StartTls,
        "none" => Encryption::None,
        _ => Encryption::Ssl,
    };
    if let Some(folder) = o.str_opt("folder")? {
        imap.folder = folder.to_string();
    }
    if let Some(ca) = o.str_opt_as("ca_file", "a file path or null", false)? {
        if ca.is_empty() {
            return Err(Error::config(
                o.key_path("ca_file"),
                "expected a file path or null, found \"\"",
            ));
        }
        imap.ca_file = Some(ctx.resolve(ca));
    }
    imap.allow_plaintext = o.bool_or("allow_plaintext", false)?;
    imap.timeout_secs = o.int_or("timeout_secs", 1, MAX_TIMEOUT_SECS, 30)?;
    Ok(imap)
}

impl Imap {
    fn check(&self, at: &str) -> Result<()> {
        let server = &self.server;
        if server.is_empty() || server.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::config(
                join(at, "server"),
                "expected a host name such as outlook.office365.com, without spaces",
            ));
        }
        let bare = server.trim_start_matches('[').trim_end_matches(']');
        if server.contains(['/', '@'])
            || (server.contains(':') && bare.parse::<std::net::Ipv6Addr>().is_err())
        {
            return Err(Error::config(
                join(at, "server"),
                format!(
                    "\"{}\" is not a bare host name; write only the host (no scheme, user or \
                     path) and put the port in imap.port",
                    json::shorten(server)
                ),
            ));
        }
        if self.port == 0 {
            return Err(Error::config(
                join(at, "port"),
                "expected an integer 1..65535",
            ));
        }
        if self.folder.is_empty() {
            return Err(Error::config(
                join(at, "folder"),
                "must not be empty; expected a folder name such as INBOX",
            ));
        }
        if !(1..=MAX_TIMEOUT_SECS).contains(&self.timeout_secs) {
            return Err(Error::config(
                join(at, "timeout_secs"),
                format!("expected an integer 1..{MAX_TIMEOUT_SECS}"),
            ));
        }
        Ok(())
    }
}

fn parse_graph(mailbox: &Obj<'_>) -> Result<Graph> {
    let mut graph = Graph::default();
    let Some(o) = mailbox.obj_opt("graph", "an object with the Microsoft Graph settings")? else {
        return Ok(graph);
    };
    o.check_keys(GRAPH_KEYS)?;
    if let Some(folder) = o.str_opt("folder")? {
        graph.folder = folder.trim_matches('/').to_string();
    }
    if let Some(endpoint) = o.str_opt_as("endpoint", "an https:// URL", false)? {
        graph.endpoint = endpoint.trim_end_matches('/').to_string();
    }
    Ok(graph)
}

impl Graph {
    fn check(&self, at: &str) -> Result<()> {
        if self.folder.is_empty() || self.folder.split('/').any(|p| p.trim().is_empty()) {
            return Err(Error::config(
                join(at, "folder"),
                "expected a well-known folder name such as \"inbox\" or a display-name path \
                 such as \"Inbox/Support\" (no empty parts)",
            ));
        }
        if self.folder.chars().any(char::is_control) {
            return Err(Error::config(
                join(at, "folder"),
                "contains control characters",
            ));
        }
        check_url(
            &join(at, "endpoint"),
            &self.endpoint,
            &["https", "http"],
            false,
        )?;
        let path = split_url(&self.endpoint).map(|p| p.path).unwrap_or("");
        if !path.is_empty() && path != "/" {
            return Err(Error::config(
                join(at, "endpoint"),
                format!(
                    "\"{}\" has a path; expected the service root only, such as \
                     https://graph.microsoft.com (the agent adds /v1.0/...)",
                    json::shorten(&self.endpoint)
                ),
            ));
        }
        Ok(())
    }
}

fn parse_oauth(mailbox: &Obj<'_>, ctx: &Ctx<'_>) -> Result<OAuth> {
    let mut oauth = OAuth::default();
    let Some(o) = mailbox.obj_opt("oauth", "an object with the OAuth 2.0 settings")? else {
        return Ok(oauth);
    };
    o.check_keys(OAUTH_KEYS)?;
    oauth.enabled = o.bool_or("enabled", false)?;
    if let Some(id) = o.str_opt("application_id")? {
        oauth.application_id = strip_braces(id).to_string();
    }
    if let Some(id) = o.str_opt("directory_id")? {
        oauth.directory_id = strip_braces(id).to_string();
    }
    oauth.shared_mailbox = o.bool_or("shared_mailbox", false)?;
    oauth.flow = match o.choice_or(
        "flow",
        &["password", "client_credentials", "device_code"],
        "password",
    )? {
        "client_credentials" => Flow::ClientCredentials,
        "device_code" => Flow::DeviceCode,
        _ => Flow::Password,
    };
    oauth.cloud = match o.choice_or("cloud", &["global", "usgov", "china"], "global")? {
        "usgov" => Cloud::UsGov,
        "china" => Cloud::China,
        _ => Cloud::Global,
    };
    oauth.authority = oauth.cloud.authority().to_string();
    // An explicit authority (tests, the demo) wins over the cloud's.
    if let Some(authority) = o.str_opt_as("authority", "an https:// URL", false)? {
        // The token client appends "/{tenant}/oauth2/v2.0/token".
        oauth.authority = authority.trim_end_matches('/').to_string();
    }
    if let Some(proxy) = o.str_opt_as("proxy", "null or \"http://host:port\"", false)? {
        oauth.proxy = Some(proxy.trim_end_matches('/').to_string());
    }
    oauth.client_secret = secrets::resolve(&o, "client_secret", ctx)?;
    if let Some(file) = o.str_opt_as("client_certificate_file", "a file path", false)? {
        if file.is_empty() {
            return Err(Error::config(
                o.key_path("client_certificate_file"),
                "expected a file path, found \"\"",
            ));
        }
        if let Some(k) = ["client_secret", "client_secret_env", "client_secret_file"]
            .into_iter()
            .find(|k| o.get(k).is_some())
        {
            return Err(Error::config(
                o.key_path("client_certificate_file"),
                format!(
                    "conflicts with {}; the app signs in with one credential: a certificate or \
                     a client secret",
                    o.key_path(k)
                ),
            ));
        }
        oauth.client_certificate_file = Some(ctx.resolve(file));
    }
    if let Some(date) = o.str_opt_as("client_secret_expires", "an RFC 3339 date", false)? {
        oauth.client_secret_expires = Some(parse_rfc3339(date).ok_or_else(|| {
            Error::config(
                o.key_path("client_secret_expires"),
                format!(
                    "\"{}\" is not an RFC 3339 date; expected e.g. \"2027-03-31\" or \
                     \"2027-03-31T12:00:00Z\" (the Expires column under Certificates & secrets)",
                    json::shorten(date)
                ),
            )
        })?);
    }
    Ok(oauth)
}

/// An RFC 3339 full-date (`2027-03-31`, midnight UTC) or date-time
/// (`2027-03-31T12:00:00Z`, `…+01:00`, fractions ignored) as Unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let t = text.trim();
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = t.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=days_in_month).contains(&d) || y < 1970 {
        return None;
    }
    // Days since 1970-01-01 (Howard Hinnant's algorithm).
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy / 400;
    let yoe = yy - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let mut secs = days * 86_400;
    if b.len() > 10 {
        if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if h > 23 || mi > 59 || s > 60 {
            return None;
        }
        secs += h * 3600 + mi * 60 + s;
        let mut rest = &t[19..];
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            rest = &frac[digits..];
        }
        match rest {
            "Z" | "z" => {}
            _ if rest.len() == 6
                && matches!(rest.as_bytes()[0], b'+' | b'-')
                && rest.as_bytes()[3] == b':' =>
            {
                let oh: i64 = rest[1..3].parse().ok()?;
                let om: i64 = rest[4..6].parse().ok()?;
                if oh > 23 || om > 59 {
                    return None;
                }
                let offset = oh * 3600 + om * 60;
                // Local time = UTC + offset.
                secs -= if rest.starts_with('+') {
                    offset
                } else {
                    -offset
                };
            }
            _ => return None,
        }
    }
    u64::try_from(secs).ok()
}

impl OAuth {
    fn check(&self, at: &str) -> Result<()> {
        // The identity endpoint of the tests and the demo (a loopback authority) names its
        // apps and tenant freely; Microsoft's are GUIDs and domains.
        let test_authority =
            split_url(&self.authority).is_some_and(|p| crate::net::is_loopback_host(p.host));
        check_application_id(
            &join(at, "application_id"),
            &self.application_id,
            test_authority,
        )?;
        check_directory_id(
            &join(at, "directory_id"),
            &self.directory_id,
            test_authority,
        )?;
        check_url(
            &join(at, "authority"),
            &self.authority,
            &["https", "http"],
            false,
        )?;
        if let Some(proxy) = &self.proxy {
            check_proxy(&join(at, "proxy"), proxy)?;
        }
        Ok(())
    }
}

/// Checks one answer of a guided setup as loading would: `key` is `name`, `email`,
/// `username`, `oauth.application_id` or `oauth.directory_id` (braces already removed);
/// `authority` decides whether test names are allowed (a loopback one) for the ids. Errors
/// name `key`.
pub fn check_field(key: &str, value: &str, authority: &str) -> Result<()> {
    let test_authority = split_url(authority).is_some_and(|p| crate::net::is_loopback_host(p.host));
    match key {
        "name" => check_name(key, value),
        "email" => check_email(key, value),
        "username" if value.is_empty() || value.chars().any(char::is_whitespace) => Err(
            Error::config(key, "must be a non-empty account name without spaces"),
        ),
        "oauth.application_id" if value.is_empty() => {
            Err(Error::config(key, "is required").with_fix(APP_ID_FIX))
        }
        "oauth.application_id" => check_application_id(key, value, test_authority),
        "oauth.directory_id" if value.is_empty() => {
            Err(Error::config(key, "is required").with_fix(DIRECTORY_ID_FIX))
        }
        "oauth.directory_id" => check_directory_id(key, value, test_authority),
        _ => Ok(()),
    }
}

/// [`strip_braces`] for callers outside the config reader (setup).
pub fn without_braces(id: &str) -> &str {
    strip_braces(id.trim())
}

/// `{GUID}` as the registry and some PowerShell output print it: the braces go.
fn strip_braces(id: &str) -> &str {
    id.strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or(id)
}

/// A GUID in its usual form, `8-4-4-4-12` hex digits (either case).
pub fn is_guid(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A DNS domain with at least one dot: labels of letters, digits and inner hyphens.
fn is_domain(text: &str) -> bool {
    text.len() <= 253
        && text.contains('.')
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

/// Names for a test identity endpoint: letters, digits, `-`, `.`, `_`.
fn is_test_name(text: &str) -> bool {
    text.bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
}

const APP_ID_FIX: &str = "copy the Application (client) ID from the app registration's Overview \
     page in Microsoft Entra ID (a GUID such as 11111111-2222-3333-4444-555555555555; not the \
     app's name, not a secret)";
const DIRECTORY_ID_FIX: &str = "copy the Directory (tenant) ID GUID from the app registration's \
     Overview page in Microsoft Entra ID, or write the tenant's domain such as \
     contoso.onmicrosoft.com";

/// `oauth.application_id`: empty (required or not, decided by the credential check) or a GUID
/// (any name a loopback test endpoint knows).
fn check_application_id(at: &str, id: &str, test_authority: bool) -> Result<()> {
    if id.is_empty() || is_guid(id) || (test_authority && is_test_name(id)) {
        return Ok(());
    }
    let problem = if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "contains spaces or control characters; copy the Application (client) ID again".to_string()
    } else if id.contains('~') || (id.len() >= 34 && !id.contains('-')) {
        // Client secret values look like "AbC8Q~…" (about 40 characters, no hyphens).
        "looks like a client secret value, not the Application (client) ID; the secret belongs \
         in oauth.client_secret_file or client_secret_env"
            .to_string()
    } else {
        format!(
            "\"{}\" is not an Application (client) ID: expected a GUID of the form \
             xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
            json::shorten(id)
        )
    };
    Err(Error::config(at, problem).with_fix(APP_ID_FIX))
}

/// `oauth.directory_id`: empty (discovery or required, decided elsewhere), a GUID or a domain
/// (any name a loopback test endpoint knows), never the multi-tenant endpoints.
fn check_directory_id(at: &str, id: &str, test_authority: bool) -> Result<()> {
    let lower = id.to_ascii_lowercase();
    if matches!(lower.as_str(), "common" | "organizations" | "consumers") {
        return Err(Error::config(
            at,
            format!(
                "\"{id}\" is Microsoft's multi-tenant endpoint, not a directory: the agent \
                 signs in to one tenant (on \"{lower}\" a single-tenant app is refused with \
                 AADSTS50194 and app-only tokens cannot be issued at all)"
            ),
        )
        .with_fix(DIRECTORY_ID_FIX));
    }
    if id.is_empty() || is_guid(id) || is_domain(id) || (test_authority && is_test_name(id)) {
        return Ok(());
    }
    let problem = if let Some((_, domain)) = id.rsplit_once('@') {
        format!(
            "\"{}\" is an email address; the Directory ID is the tenant's GUID or domain \
             (here perhaps \"{}\")",
            json::shorten(id),
            json::shorten(domain)
        )
    } else if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "contains spaces or control characters; copy the Directory (tenant) ID again".to_string()
    } else {
        format!(
            "\"{}\" is neither a Directory (tenant) ID (a GUID) nor a domain with a dot such as \
             contoso.onmicrosoft.com",
            json::shorten(id)
        )
    };
    Err(Error::config(at, problem).with_fix(DIRECTORY_ID_FIX))
}

/// A "did you mean" for the Encryption Type as admin screens and mail clients spell it.
fn encryption_hint(value: &str) -> Option<String> {
    let key: String = value
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    let (choice, why) = match key.as_str() {
        "ssl" | "tls" | "ssltls" | "tlsssl" | "implicittls" | "implicit" | "imaps" | "sslon"
        | "ssl993" | "tls993" => (
            "ssl",
            "TLS from the first byte (\"SSL/TLS\" in mail clients), usually port 993",
        ),
        "starttls" | "explicittls" | "explicit" | "tlsstarttls" | "starttlstls" | "starttls143" => {
            (
                "starttls",
                "plain connection upgraded with STARTTLS, usually port 143",
            )
        }
        "none" | "no" | "off" | "plain" | "plaintext" | "unencrypted" | "noencryption"
        | "false" | "clear" => ("none", "no encryption; needs allow_plaintext"),
        _ => return None,
    };
    Some(format!(
        "did you mean \"{choice}\"? ({why}; the three values are \"ssl\", \"starttls\" and \
         \"none\")"
    ))
}

/// The parts of an `http(s)://host[:port][/path]` URL we check.
struct UrlParts<'a> {
    scheme: String,
    host: &'a str,
    port: Option<u16>,
    path: &'a str,
}

fn split_url(url: &str) -> Option<UrlParts<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return None; // user:password@ would put a secret in the URL
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (inside, after) = v6.split_once(']')?;
        (&authority[..inside.len() + 2], after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|&p| p != 0)?),
    };
    if host.is_empty() {
        return None;
    }
    Some(UrlParts {
        scheme: scheme.to_ascii_lowercase(),
        host,
        port,
        path,
    })
}

/// An http(s) URL whose plain-http form is accepted only for loopback hosts (tests, demo):
/// anything else would send secrets or mail in the clear. With `query`, a query is allowed.
fn check_url(at: &str, url: &str, schemes: &[&str], query: bool) -> Result<()> {
    let bad = || {
        Error::config(
            at,
            format!(
                "\"{}\" is not a URL of the form https://host[:port][/path]",
                json::shorten(url)
            ),
        )
    };
    let parts = split_url(url).ok_or_else(bad)?;
    if !schemes.contains(&parts.scheme.as_str()) || (!query && parts.path.contains(['?', '#'])) {
        return Err(bad());
    }
    if parts.scheme == "http" && !crate::net::is_loopback_host(parts.host) {
        return Err(Error::config(
            at,
            format!(
                "\"{}\" uses http to {}, which would send credentials unencrypted; use https \
                 (http is accepted only for loopback hosts such as 127.0.0.1 or localhost)",
                json::shorten(url),
                parts.host
            ),
        ));
    }
    Ok(())
}

fn check_proxy(at: &str, proxy: &str) -> Result<()> {
    let ok = split_url(proxy)
        .is_some_and(|p| p.scheme == "http" && p.port.is_some() && p.path.is_empty());
    if ok {
        Ok(())
    } else {
        Err(Error::config(
            at,
            format!(
                "\"{}\" is not of the form http://host:port (or null for no proxy)",
                json::shorten(proxy)
            ),
        ))
    }
}

/// Names become file names (state, token cache): only characters every file system takes.
fn check_name(at: &str, name: &str) -> Result<()> {
    const ALLOWED: &str = "letters, digits, space and - _ . @ + ( )";
    if name.is_empty() {
        return Err(Error::config(
            at,
            "must not be empty; expected the Mailbox Name",
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::config(
            at,
            format!("is longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_alphanumeric() || " -_.@+()".contains(c)))
    {
        return Err(Error::config(
            at,
            format!(
                "contains '{}', which is not allowed because the name names state files; \
                 allowed: {ALLOWED}",
                c.escape_debug()
            ),
        ));
    }
    if name.starts_with([' ', '.']) || name.ends_with([' ', '.']) {
        return Err(Error::config(
            at,
            "must not start or end with a space or '.' (the name names state files)",
        ));
    }
    let stem = name.split('.').next().unwrap_or(name).trim_end();
    let reserved = ["CON", "PRN", "AUX", "NUL"]
        .iter()
        .any(|r| stem.eq_ignore_ascii_case(r))
        || (stem.len() == 4
            && stem
                .get(..3)
                .is_some_and(|p| p.eq_ignore_ascii_case("COM") || p.eq_ignore_ascii_case("LPT"))
            && stem.ends_with(|c: char| c.is_ascii_digit()));
    if reserved {
        return Err(Error::config(
            at,
            format!("\"{name}\" is a reserved device name on Windows; choose another name"),
        ));
    }
    Ok(())
}

/// A plausible address: `local@domain`, no spaces or angle brackets, a domain without empty
/// labels. Deliberately loose: the server has the last word.
fn check_email(at: &str, email: &str) -> Result<()> {
    let plausible = email.rsplit_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && !domain.split('.').any(str::is_empty)
    }) && !email
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c));
    if plausible {
        Ok(())
    } else {
        Err(Error::config(
            at,
            format!(
                "\"{}\" is not an email address such as helpdesk@contoso.com",
                json::shorten(email)
            ),
        ))
    }
}

#[cfg(test)]
mod rfc3339_tests {
    use super::parse_rfc3339;

    #[test]
    fn dates_and_date_times() {
        assert_eq!(parse_rfc3339("1970-01-01"), Some(0));
        assert_eq!(parse_rfc3339("2027-03-31"), Some(1_806_451_200));
        assert_eq!(parse_rfc3339("2027-03-31T12:00:00Z"), Some(1_806_494_400));
        assert_eq!(
            parse_rfc3339("2027-03-31T12:00:00.123Z"),
            Some(1_806_494_400)
        );
        assert_eq!(
            parse_rfc3339("2027-03-31T14:00:00+02:00"),
            Some(1_806_494_400)
        );
        assert_eq!(
            parse_rfc3339("2027-03-31T07:00:00-05:00"),
            Some(1_806_494_400)
        );
        assert_eq!(parse_rfc3339("2028-02-29"), Some(1_835_395_200));
        for bad in [
            "",
            "2027-02-29",
            "2027-13-01",
            "31.03.2027",
            "2027-03-31T12:00",
            "2027-03-31T12:00:00",
            "2027-03-31T25:00:00Z",
            "2027-03-31X12:00:00Z",
            "1969-12-31",
            "2027-03-31T12:00:00+2",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
