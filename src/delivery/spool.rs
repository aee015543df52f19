//! The spool directory: one `NAME.json` per ticket, where NAME is derived from the mailbox and
//! the ticket's dedupe key, so delivering the same ticket again overwrites its file instead of
//! adding a duplicate.
//!
//! Each file is written under a temporary name that does not end in `.json` (`.NAME.json.PID.tmp`),
//! synced, renamed into place and the directory synced: a consumer that picks up `*.json` never
//! sees a partial ticket. Attachments go to `NAME.att/INDEX-SAVE_AS` (INDEX is the position in
//! the ticket's `attachments`, from 0; SAVE_AS its safe `save_as` name) and are complete before
//! `NAME.json` appears.

use crate::error::{Error, ErrorKind, Result};
use crate::state::{write_atomic, write_atomic_with};
use crate::ticket::{sanitize_filename, Ticket};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};

/// A spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

/// The file stem of a ticket of `mailbox` with `dedupe_key`: 32 hex digits of SHA-256 over both
/// (the same message in two watched mailboxes gives two tickets, as with the other outputs).
pub fn ticket_stem(mailbox: &str, dedupe_key: &str) -> String {
    let mut h = Sha256::new();
    h.update(mailbox.as_bytes());
    h.update([0u8]);
    h.update(dedupe_key.as_bytes());
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn delivery_error(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    let text = e.to_string();
    let err = Error::new(
        ErrorKind::Delivery,
        format!("spool: {what} {}: {text}", path.display()),
    );
    if text.contains("disk full") || text.contains("No space left") {
        err.with_fix(
            "free space on the spool's file system; the mail is retried and nothing is lost",
        )
    } else {
        err.with_fix("check that the spool directory exists and the agent may write to it")
    }
}

impl Spool {
    /// A spool in `dir`, created when missing.
    pub fn new(dir: &Path) -> Result<Spool> {
        fs::create_dir_all(dir).map_err(|e| delivery_error("create", dir, e))?;
        sweep_temp_files(dir);
        Ok(Spool {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the ticket's JSON goes.
    pub fn ticket_path(&self, ticket: &Ticket) -> PathBuf {
        self.dir.join(format!(
            "{}.json",
            ticket_stem(&ticket.mailbox, &ticket.dedupe_key)
        ))
    }

    /// Writes the attachments, then the ticket, each durably.
    pub fn write(&self, ticket: &Ticket) -> Result<()> {
        let stem = ticket_stem(&ticket.mailbox, &ticket.dedupe_key);
        let with_data: Vec<_> = ticket
            .attachments
            .iter()
            .enumerate()
            .filter(|(_, a)| a.has_bytes())
            .collect();
        if !with_data.is_empty() {
            let att_dir = self.dir.join(format!("{stem}.att"));
            fs::create_dir_all(&att_dir).map_err(|e| delivery_error("create", &att_dir, e))?;
            for (i, a) in with_data {
                // save_as is safe and unique within the ticket; sanitised again in case a
                // ticket was built elsewhere (the index prefix keeps old spools' layout).
                let name = sanitize_filename(&a.save_as).unwrap_or_else(|| "attachment".into());
                let path = att_dir.join(format!("{i}-{name}"));
                // Bytes still encoded in the message are decoded straight into the file.
                write_atomic_with(&path, |w| a.write_bytes(w))
                    .map_err(|e| delivery_error("write", &path, e))?;
            }
        }
        let path = self.dir.join(format!("{stem}.json"));
        let mut json = ticket.to_json();
        json.push('\n');
        write_atomic(&path, json.as_bytes()).map_err(|e| delivery_error("write", &path, e))
    }
}

/// Removes temp files (`.NAME.PID.tmp`) left by a writer that died mid-write (crash, kill -9):
/// those of processes that are gone (Linux), or older than a day elsewhere. Attachment
/// directories are swept too.
fn sweep_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if name.ends_with(".att") && path.is_dir() {
            if let Ok(inner) = fs::read_dir(&path) {
                for f in inner.flatten() {
                    let n = f.file_name().to_string_lossy().into_owned();
                    if is_stale_temp(&n, &f.path()) && fs::remove_file(f.path()).is_ok() {
                        removed += 1;
                    }
                }
            }
        } else if is_stale_temp(&name, &path) && fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        log::info!(
            "spool {}: removed {removed} temp file(s) of interrupted writes",
            dir.display()
        );
    }
}

fn is_stale_temp(name: &str, path: &Path) -> bool {
    let Some(stem) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
        return false;
    };
    let Some(pid) = stem.rsplit('.').next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    if cfg!(target_os = "linux") {
        pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
    } else {
        fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 86_400)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::{Attachment, TicketOptions};

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pma-spool-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn ticket(key_suffix: &str) -> Ticket {
        let raw = format!(
            "From: a@b.test\r\nSubject: s\r\nMessage-ID: <m{key_suffix}@b.test>\r\n\r\nbody\r\n"
        );
        let opts = TicketOptions {
            mailbox: "Helpdesk".into(),
            ..TicketOptions::default()
        };
        crate::ticket::build(raw.as_bytes(), &opts).unwrap()
    }

    #[test]
    fn redelivery_overwrites_and_only_tickets_end_in_json() {
        let dir = tempdir("over");
        let spool = Spool::new(&dir).unwrap();
        let mut t = ticket("1");
        t.attachments.push(Attachment {
            filename: Some("../../etc/passwd".into()),
            save_as: "passwd".into(),
            content_type: "text/plain".into(),
            size: 3,
            inline: false,
            content_id: None,
            sha256: String::new(),
            omitted: None,
            data: b"abc".to_vec(),
            pending: None,
        });
        spool.write(&t).unwrap();
        spool.write(&t).unwrap();
        spool.write(&ticket("2")).unwrap();
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names.iter().filter(|n| n.ends_with(".json")).count(),
            2,
            "{names:?}"
        );
        assert_eq!(
            names.len(),
            3,
            "two tickets and one attachment dir: {names:?}"
        );
        let stem = ticket_stem("Helpdesk", &t.dedupe_key);
        let att = dir.join(format!("{stem}.att/0-passwd"));
        assert_eq!(fs::read(att).unwrap(), b"abc");
        let json = fs::read_to_string(spool.ticket_path(&t)).unwrap();
        assert!(json.contains("\"dedupe_key\""));
        assert_ne!(ticket_stem("Helpdesk", "k"), ticket_stem("Other", "k"));
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn temp_files_of_dead_writers_are_swept() {
        let dir = tempdir("sweep");
        fs::create_dir_all(dir.join("x.att")).unwrap();
        // PID 0x7fff_fff0 does not exist; our own temp files and other files stay.
        let dead = format!(".a.json.{}.tmp", 0x7fff_fff0u32);
        let mine = format!(".b.json.{}.tmp", std::process::id());
        for n in [dead.as_str(), mine.as_str(), "c.json", ".hidden"] {
            fs::write(dir.join(n), b"x").unwrap();
        }
        fs::write(dir.join("x.att").join(&dead), b"x").unwrap();
        Spool::new(&dir).unwrap();
        assert!(!dir.join(&dead).exists());
        assert!(!dir.join("x.att").join(&dead).exists());
        for n in [mine.as_str(), "c.json", ".hidden"] {
            assert!(dir.join(n).exists(), "{n}");
        }
    }

    #[test]
    fn unwritable_spool_is_a_delivery_error() {
        let dir = tempdir("ro");
        fs::create_dir_all(&dir).unwrap();
        // A file where the spool's directory should be.
        let blocker = dir.join("spool");
        fs::write(&blocker, b"x").unwrap();
        let e = Spool::new(&blocker.join("inner")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Delivery);
        let spool = Spool { dir: blocker };
        let e = spool.write(&ticket("3")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Delivery, "{e}");
        assert!(e.fix().is_some());
    }
}
