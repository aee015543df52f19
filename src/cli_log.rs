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

/// What `PMA_LOG` may say.
pub const LEVELS_HINT: &str = "allowed: error, warn, info, debug, trace, off";

/// The level a `PMA_LOG` value names (case and surrounding spaces ignored), or an error that
/// names the allowed values.
pub fn parse_level(value: &str) -> Result<LevelFilter, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "error" => Ok(LevelFilter::Error),
        "warn" => Ok(LevelFilter::Warn),
        "info" => Ok(LevelFilter::Info),
        "debug" => Ok(LevelFilter::Debug),
        "trace" => Ok(LevelFilter::Trace),
        "off" => Ok(LevelFilter::Off),
        _ => Err(format!("{value:?} is not a log level; {LEVELS_HINT}")),
    }
}

/// The level for `verbosity` -v flags, or `env` (PMA_LOG, checked with [`parse_level`]
/// beforehand) when no flag was given.
pub fn level_for(verbosity: u8, env: Option<&str>) -> LevelFilter {
    match verbosity {
        0 => env
            .and_then(|v| parse_level(v).ok())
            .unwrap_or(LevelFilter::Warn),
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
        assert_eq!(parse_level(" Info "), Ok(LevelFilter::Info));
        let e = parse_level("verbose").unwrap_err();
        assert!(e.contains("\"verbose\"") && e.contains("error, warn, info, debug, trace, off"));
    }

    #[test]
    fn imap_trace_is_never_shown() {
        assert!(!is_safe_record("async_imap::imap_stream", Level::Trace));
        assert!(is_safe_record("async_imap::imap_stream", Level::Debug));
        assert!(is_safe_record("psa_mail_agent::agent", Level::Trace));
    }
}
