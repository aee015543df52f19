//! Settings, as on the admin screen, loaded from JSON and validated once.
//!
//! (Types only in this revision; loading and validation follow.)

use crate::secret::Secret;
use std::path::PathBuf;

/// The whole configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where per-mailbox state and token caches live (`state_dir`, default `./state`).
    pub state_dir: PathBuf,
    /// Where tickets go.
    pub output: Output,
    /// One entry per mailbox.
    pub mailboxes: Vec<Mailbox>,
}

/// Where tickets are delivered (`output`).
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// JSON lines on standard output.
    Stdout,
    /// One `NAME.json` file per ticket in `dir`.
    Spool { dir: PathBuf },
    /// HTTP POST of each ticket to `url`, with an optional bearer token.
    Webhook { url: String, token: Option<Secret> },
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
    /// Messages fetched per UID FETCH (`batch_size`, default 50).
    pub batch_size: u32,
    /// Seconds between polls when the server has no IDLE (`poll_interval_secs`, default 60).
    pub poll_interval_secs: u64,
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
    /// Identity platform base URL (`authority`, default `https://login.microsoftonline.com`).
    pub authority: String,
    /// HTTPS proxy for the token endpoint, `http://host:port` (`proxy`).
    pub proxy: Option<String>,
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
