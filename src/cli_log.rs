//! The command line's logger: records on stderr, level from `-v` flags or `PMA_LOG`.
//!
//! async-imap logs every raw command at trace level, LOGIN passwords and XOAUTH2 tokens
//! included; its records are therefore never shown below debug, whatever the level.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;

struct StderrLogger {
    level: LevelFilter,
}

/// Whether a record may be shown at all (secrets may travel in third-party trace records).
pub fn is_safe_record(target: &str, level: Level) -> bool {
    !(level == Level::Trace
        && (target.starts_with("async_imap") || target.starts_with("imap_proto")))
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level && is_safe_record(metadata.target(), metadata.level())
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "[{:<5} {}] {}",
            record.level(),
            record.target(),
            record.args()
        );
    }

    fn flush(&self) {}
}

/// The level for `verbosity` -v flags, or `env` (PMA_LOG) when no flag was given.
pub fn level_for(verbosity: u8, env: Option<&str>) -> LevelFilter {
    match verbosity {
        0 => match env.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Some("error") => LevelFilter::Error,
            Some("info") => LevelFilter::Info,
            Some("debug") => LevelFilter::Debug,
            Some("trace") => LevelFilter::Trace,
            Some("off") => LevelFilter::Off,
            _ => LevelFilter::Warn,
        },
        1 => LevelFilter::Info,
        2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Installs the logger (once; later calls are ignored).
pub fn init(verbosity: u8, env: Option<&str>) {
    let level = level_for(verbosity, env);
    if log::set_boxed_logger(Box::new(StderrLogger { level })).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(level_for(0, None), LevelFilter::Warn);
        assert_eq!(level_for(0, Some("DEBUG")), LevelFilter::Debug);
        assert_eq!(level_for(2, Some("error")), LevelFilter::Debug);
        assert_eq!(level_for(5, None), LevelFilter::Trace);
    }

    #[test]
    fn imap_trace_is_never_shown() {
        assert!(!is_safe_record("async_imap::imap_stream", Level::Trace));
        assert!(is_safe_record("async_imap::imap_stream", Level::Debug));
        assert!(is_safe_record("psa_mail_agent::agent", Level::Trace));
    }
}
