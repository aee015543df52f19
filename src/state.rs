//! Per-mailbox persisted state: which folder generation (UIDVALIDITY) the agent knows, up to
//! which UID it has looked, which UIDs still wait for a ticket, and the dedupe keys of tickets
//! already delivered. Written atomically (temp file, fsync, rename, fsync of the directory) with
//! mode 0600, so a crash at any point leaves either the old or the new state.

use crate::error::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many delivered dedupe keys are remembered (as 16-hex-digit hashes).
pub const DELIVERED_MEMORY: usize = 20_000;

/// What the agent remembers about one mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxState {
    /// Format version of this file.
    pub version: u32,
    /// The folder this state describes.
    pub folder: String,
    /// UIDVALIDITY of that folder when last seen.
    pub uid_validity: u32,
    /// Every UID up to this one was looked at: it is done or listed in `pending`.
    pub high_water: u32,
    /// UIDs (≤ high_water) still waiting for their ticket to be delivered and acknowledged.
    pub pending: Vec<u32>,
    /// Hashes of dedupe keys of delivered tickets, oldest first, bounded.
    pub delivered: Delivered,
    /// Unix time of the last acknowledged batch.
    pub last_success: u64,
    /// Microsoft Graph's sync position (`transport: "graph"`); absent for IMAP. Graph
    /// messages get local UIDs (`high_water` counts them out) so `pending` works alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphState>,
}

/// Where a Graph mailbox's sync stands, saved atomically with the rest of the state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphState {
    /// The id of the folder the delta link belongs to.
    pub folder_id: String,
    /// The `@odata.deltaLink` (path and query) of the last complete delta round; empty before
    /// the first.
    pub delta_link: String,
    /// The Graph message id of each pending local UID.
    pub ids: Vec<GraphId>,
    /// Messages already taken or passed over whose `receivedDateTime` is recent (within
    /// the margin before `watermark`): a later change to them (our own mark-read, a move
    /// back) is not new mail.
    pub known: Vec<GraphKnown>,
    /// The latest `receivedDateTime` seen (Unix seconds).
    pub watermark: u64,
}

/// A pending message: its local UID and Graph id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphId {
    /// Local UID (in `pending`).
    pub uid: u32,
    /// Graph message id.
    pub id: String,
}

/// A message seen by the delta query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphKnown {
    /// Graph message id.
    pub id: String,
    /// Its `receivedDateTime` (Unix seconds).
    pub received: u64,
}

impl MailboxState {
    /// Whether a ticket with `dedupe_key` was delivered already.
    pub fn was_delivered(&self, dedupe_key: &str) -> bool {
        self.delivered.contains(&key_hash(dedupe_key))
    }

    /// Remembers that a ticket with `dedupe_key` was delivered.
    pub fn remember_delivered(&mut self, dedupe_key: &str) {
        self.delivered.insert(key_hash(dedupe_key));
    }
}

/// The delivered dedupe-key hashes: kept in arrival order (the oldest go first beyond
/// [`DELIVERED_MEMORY`]) and indexed, since every fetched message is looked up in it.
/// Persisted as the plain list.
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    order: VecDeque<String>,
    index: HashSet<String>,
}

impl Delivered {
    /// Number of remembered hashes.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Whether `hash` is remembered.
    pub fn contains(&self, hash: &str) -> bool {
        self.index.contains(hash)
    }

    /// Remembers `hash`, forgetting the oldest beyond [`DELIVERED_MEMORY`].
    pub fn insert(&mut self, hash: String) {
        if self.index.insert(hash.clone()) {
            self.order.push_back(hash);
            while self.order.len() > DELIVERED_MEMORY {
                if let Some(old) = self.order.pop_front() {
                    self.index.remove(&old);
                }
            }
        }
    }
}

impl PartialEq for Delivered {
    fn eq(&self, other: &Self) -> bool {
        self.order == other.order
    }
}

impl Eq for Delivered {}

impl Serialize for Delivered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.order.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Delivered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let mut delivered = Delivered::default();
        for hash in VecDeque::<String>::deserialize(d)? {
            delivered.insert(hash);
        }
        Ok(delivered)
    }
}

/// The short hash under which a dedupe key is remembered.
pub fn key_hash(dedupe_key: &str) -> String {
    let digest = Sha256::digest(dedupe_key.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A file-name-safe stem for a mailbox name: safe characters kept, anything else replaced, and a
/// short hash appended whenever something was replaced so distinct names never collide.
pub fn file_stem(mailbox_name: &str) -> String {
    let safe: String = mailbox_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.').to_string();
    if safe == mailbox_name && !safe.is_empty() {
        safe
    } else {
        format!("{safe}-{}", &key_hash(mailbox_name)[..8])
    }
}

/// Where one mailbox's files live under `state_dir`.
#[derive(Debug, Clone)]
pub struct StatePaths {
    /// `<stem>.state.json`
    pub state: PathBuf,
    /// `<stem>.token.json`
    pub token_cache: PathBuf,
    /// `<stem>.tenant.json`: the tenant discovered from the address (no `oauth.directory_id`).
    pub tenant: PathBuf,
    /// `<stem>.threads`
    pub threads: PathBuf,
    /// `<stem>.lock`
    pub lock: PathBuf,
    /// `<stem>.status.json`
    pub status: PathBuf,
}

impl StatePaths {
    /// The files of mailbox `name` under `state_dir`.
    pub fn new(state_dir: &Path, name: &str) -> Self {
        let stem = file_stem(name);
        let p = |ext: &str| state_dir.join(format!("{stem}.{ext}"));
        StatePaths {
            state: p("state.json"),
            token_cache: p("token.json"),
            tenant: p("tenant.json"),
            threads: p("threads"),
            lock: p("lock"),
            status: p("status.json"),
        }
    }
}

/// Loads the state at `path`; `None` when there is none yet.
pub fn load(path: &Path) -> Result<Option<MailboxState>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::new(
                ErrorKind::Io,
                format!("state {}: {e}", path.display()),
            ))
        }
    };
    let (state, _) = serde_json_core::from_str_escaped::<MailboxState>(&text, &mut [0u8; 4096][..])
        .map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!(
                    "state {} is unreadable ({e}); move it away to start over",
                    path.display()
                ),
            )
        })?;
    Ok(Some(state))
}

/// Saves `state` to `path` atomically.
pub fn save(path: &Path, state: &MailboxState) -> Result<()> {
    write_atomic(path, to_json(state).as_bytes())
}

/// Serialises `value` as compact JSON (serde-json-core writes into a buffer; grow until it fits).
pub fn to_json<T: Serialize>(value: &T) -> String {
    let mut buf = vec![0u8; 4096];
    loop {
        match serde_json_core::to_slice(value, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return String::from_utf8_lossy(&buf).into_owned();
            }
            Err(_) => {
                let len = buf.len() * 2;
                buf.resize(len, 0);
            }
        }
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new content: a temp
/// file beside it (mode 0600, never ending in `.json`), fsync, rename over, fsync the directory.
/// A missing directory is created with mode 0700 (it holds state and token caches).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Like [`write_atomic`], the content written by `write` (in pieces, so it need not be held
/// whole in memory).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let io = |what: &str, e: std::io::Error| {
        let kind = if e.raw_os_error() == Some(28) {
            "disk full: "
        } else {
            ""
        };
        Error::new(
            ErrorKind::Io,
            format!("{what} {}: {kind}{e}", path.display()),
        )
    };
    {
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| io("write", e))?;
        let written = {
            let mut w = std::io::BufWriter::with_capacity(64 * 1024, &mut f);
            write(&mut w).and_then(|_| w.flush())
        }
        .and_then(|_| f.sync_all());
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io("write", e));
        }
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io("rename into", e)
    })?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates `dir` (and missing parents) with mode 0700 unless it exists: it holds state and
/// token caches. An existing directory is left as the administrator set it up.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| Error::new(ErrorKind::Io, format!("create {}: {e}", dir.display())))
}

/// Removes temporary files a crash left beside the state file and the token cache (written by
/// [`write_atomic`] and the token cache as `.NAME.PID.tmp` / `.NAME.tmp-PID`). Call with the
/// mailbox's lock held: no other process writes these files then. Failures are ignored (the
/// files are only clutter).
pub fn remove_stale_temp_files(paths: &StatePaths) {
    for target in [&paths.state, &paths.token_cache, &paths.tenant] {
        let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
            continue;
        };
        let name = name.to_string_lossy();
        let state_style = format!(".{name}.");
        let cache_style = format!(".{name}.tmp-");
        let Ok(entries) = fs::read_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        }) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            let stale = (file.starts_with(&state_style) && file.ends_with(".tmp"))
                || file.starts_with(&cache_style);
            if stale {
                log::info!(
                    "removing {} left by an interrupted write",
                    entry.path().display()
                );
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// An exclusive lock on a mailbox's state, held while an agent works on it, so two processes
/// never fetch the same mailbox at once (that would duplicate tickets).
#[derive(Debug)]
pub struct MailboxLock {
    _file: File,
}

impl MailboxLock {
    /// Takes the lock at `path`, failing at once when another process holds it.
    pub fn acquire(path: &Path, mailbox: &str) -> Result<Self> {
        // The lock is the first file an agent creates: the state directory must come out
        // private here (it will hold token caches), not only when a state file is written.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        let mut opts = OpenOptions::new();
        opts.create(true).truncate(false).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts
            .open(path)
            .map_err(|e| Error::new(ErrorKind::Io, format!("lock {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(MailboxLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::new(
                ErrorKind::Io,
                format!(
                    "mailbox {mailbox:?} is already being processed by another agent (lock {})",
                    path.display()
                ),
            )
            .with_fix("run one agent per mailbox and state_dir")),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::new(
                ErrorKind::Io,
                format!("lock {}: {e}", path.display()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pma-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn graph_state_round_trips_and_old_files_load() {
        let dir = tempdir("graph");
        let path = dir.join("g.state.json");
        let s = MailboxState {
            version: 1,
            folder: "Inbox/Support".into(),
            high_water: 2,
            pending: vec![2],
            graph: Some(GraphState {
                folder_id: "AAMkAGI2=".into(),
                delta_link: "/v1.0/users/a@b.c/mailFolders/x/messages/delta?$deltatoken=Zm9v-_bar%3D&$select=isRead".into(),
                ids: vec![GraphId { uid: 2, id: "AAMk/+=\"x\"".into() }],
                known: vec![GraphKnown { id: "AAMk1".into(), received: 1_800_000_000 }],
                watermark: 1_800_000_000,
            }),
            ..Default::default()
        };
        save(&path, &s).unwrap();
        assert_eq!(load(&path).unwrap(), Some(s));
        // A state written before Graph existed loads with no Graph part.
        fs::write(&path, r#"{"version":1,"folder":"INBOX","uid_validity":7,"high_water":3,"pending":[],"delivered":[],"last_success":0}"#).unwrap();
        assert_eq!(load(&path).unwrap().unwrap().graph, None);
    }

    #[test]
    fn state_round_trips_and_is_private() {
        let dir = tempdir("rt");
        let path = dir.join("m.state.json");
        assert_eq!(load(&path).unwrap(), None);
        let mut s = MailboxState {
            version: 1,
            folder: "INBOX \"x\" ü".into(),
            uid_validity: 7,
            high_water: 42,
            pending: vec![3, 40],
            ..Default::default()
        };
        s.remember_delivered("abc@example.com");
        save(&path, &s).unwrap();
        assert_eq!(load(&path).unwrap(), Some(s.clone()));
        assert!(s.was_delivered("abc@example.com"));
        assert!(!s.was_delivered("other"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn corrupt_state_is_a_clear_error() {
        let dir = tempdir("corrupt");
        let path = dir.join("m.state.json");
        fs::write(&path, "{\"version\":1,\"fol").unwrap();
        let e = load(&path).unwrap_err();
        assert!(e.message().contains("unreadable"), "{e}");
    }

    #[test]
    fn delivered_memory_is_bounded() {
        let mut s = MailboxState::default();
        for i in 0..DELIVERED_MEMORY + 10 {
            s.remember_delivered(&i.to_string());
        }
        assert_eq!(s.delivered.len(), DELIVERED_MEMORY);
        assert!(!s.was_delivered("0"));
        assert!(s.was_delivered(&(DELIVERED_MEMORY + 9).to_string()));
    }

    #[test]
    fn stems_are_safe_and_distinct() {
        assert_eq!(file_stem("Helpdesk"), "Helpdesk");
        let a = file_stem("Support/EU");
        let b = file_stem("Support EU");
        assert!(a.starts_with("Support_EU-") && b.starts_with("Support_EU-"));
        assert_ne!(a, b);
        assert!(!file_stem("../etc").contains('/'));
    }

    #[test]
    fn stale_temp_files_are_removed_and_nothing_else() {
        let dir = tempdir("stale");
        let paths = StatePaths::new(&dir, "m");
        let keep = [
            "m.state.json",
            "m.token.json",
            "other.state.json",
            ".other.state.json.9.tmp",
        ];
        let stale = [".m.state.json.123.tmp", ".m.token.json.tmp-456"];
        for f in keep.iter().chain(stale.iter()) {
            fs::write(dir.join(f), "x").unwrap();
        }
        remove_stale_temp_files(&paths);
        for f in keep {
            assert!(dir.join(f).exists(), "{f} kept");
        }
        for f in stale {
            assert!(!dir.join(f).exists(), "{f} removed");
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_lock_creates_a_private_directory_and_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempdir("lockmode").join("state");
        let _lock = MailboxLock::acquire(&dir.join("m.lock"), "m").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700, "state directory");
        assert_eq!(mode(&dir.join("m.lock")), 0o600, "lock file");
    }

    #[test]
    fn second_lock_is_refused() {
        let dir = tempdir("lock");
        let path = dir.join("m.lock");
        let first = MailboxLock::acquire(&path, "m").unwrap();
        let e = MailboxLock::acquire(&path, "m").unwrap_err();
        assert!(e.message().contains("already being processed"));
        drop(first);
        MailboxLock::acquire(&path, "m").unwrap();
    }
}
