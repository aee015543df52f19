//! The command line's logger: records on stderr, level from `-v` flags or `PMA_LOG` (checked:
//! an unknown level is an error), format from `--log-format` or `PMA_LOG_FORMAT`.
//!
//! - `text` (default): `2026-11-28T10:00:00.123Z [INFO  target] message`, one record per line.
//!   The timestamp is left out when stderr goes to the systemd journal (`JOURNAL_STREAM` set),
//!   which stamps every line itself.
//! - `json`: one JSON object per line for log collectors: `time` (RFC 3339, UTC), `level`,
//!   `target`, `mailbox`, `event`, `error_kind` (null when the record has none) and `message`.
//!   `mailbox`, `event` and `error_kind` come from the record's key-values
//!   (`log::info!(mailbox = name, event = "delivered"; ...)`), the mailbox otherwise from the
//!   `mailbox NAME: ` prefix the library's messages start with (names cannot contain ':').
//!
//! async-imap logs every raw command at trace level, LOGIN passwords and XOAUTH2 tokens
//! included; its records are therefore never shown below debug, whatever the level or format.
//! Other records never carry secrets (the library formats none into messages).

use log::kv::{Key, Value, VisitSource};
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fmt::Write as _;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable lines; `timestamps` false when the journal stamps them.
    Text {
        /// Whether each line starts with an RFC 3339 time.
        timestamps: bool,
    },
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The format named by `--log-format` (`flag`, preferred) or `PMA_LOG_FORMAT` (`env`);
    /// `journal` is whether `JOURNAL_STREAM` is set. An unknown name is an error naming it.
    pub fn choose(flag: Option<&str>, env: Option<&str>, journal: bool) -> Result<Self, String> {
        let (source, value) = match (flag, env) {
            (Some(f), _) => ("--log-format", f),
            (None, Some(e)) if !e.trim().is_empty() => ("PMA_LOG_FORMAT", e),
            _ => {
                return Ok(LogFormat::Text {
                    timestamps: !journal,
                })
            }
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text {
                timestamps: !journal,
            }),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "{source}: {value:?} is not a log format; expected text or json"
            )),
        }
    }
}

struct StderrLogger {
    level: LevelFilter,
    format: LogFormat,
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
        let line = format_record(self.format, SystemTime::now(), record);
        // One write per record, so lines of concurrent threads never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// The line (with its newline) for `record` at time `at`.
pub fn format_record(format: LogFormat, at: SystemTime, record: &Record<'_>) -> String {
    let message = record.args().to_string();
    match format {
        LogFormat::Text { timestamps } => {
            let mut line = String::with_capacity(message.len() + 64);
            if timestamps {
                line.push_str(&rfc3339(at));
                line.push(' ');
            }
            let _ = writeln!(
                line,
                "[{:<5} {}] {}",
                record.level(),
                record.target(),
                message
            );
            line
        }
        LogFormat::Json => {
            let mut fields = Fields::default();
            let _ = record.key_values().visit(&mut fields);
            if fields.mailbox.is_none() {
                fields.mailbox = mailbox_prefix(&message).map(str::to_string);
            }
            let mut line = String::with_capacity(message.len() + 160);
            line.push_str("{\"time\":");
            json_string(&mut line, &rfc3339(at));
            line.push_str(",\"level\":");
            json_string(&mut line, &record.level().as_str().to_ascii_lowercase());
            line.push_str(",\"target\":");
            json_string(&mut line, record.target());
            for (key, value) in [
                ("mailbox", &fields.mailbox),
                ("event", &fields.event),
                ("error_kind", &fields.error_kind),
            ] {
                let _ = write!(line, ",\"{key}\":");
                match value {
                    Some(v) => json_string(&mut line, v),
                    None => line.push_str("null"),
                }
            }
            line.push_str(",\"message\":");
            json_string(&mut line, &message);
            line.push_str("}\n");
            line
        }
    }
}

/// The key-values a JSON line shows.
#[derive(Default)]
struct Fields {
    mailbox: Option<String>,
    event: Option<String>,
    error_kind: Option<String>,
}

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let slot = match key.as_str() {
            "mailbox" => &mut self.mailbox,
            "event" => &mut self.event,
            "error_kind" => &mut self.error_kind,
            _ => return Ok(()),
        };
        *slot = Some(value.to_string());
        Ok(())
    }
}

/// NAME of a message starting `mailbox NAME: `.
fn mailbox_prefix(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("mailbox ")?;
    let end = rest.find(": ")?;
    Some(&rest[..end]).filter(|n| !n.is_empty())
}

/// Appends `s` as a JSON string (quotes, escapes; control characters as \u00XX).
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `t` as RFC 3339 in UTC with milliseconds: `2026-11-28T10:00:00.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Year, month, day of the `days`-th day after 1970-01-01 (proleptic Gregorian; H. Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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

/// Installs the text logger (once; later calls are ignored).
pub fn init(verbosity: u8, env: Option<&str>) {
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    init_with_format(
        verbosity,
        env,
        LogFormat::Text {
            timestamps: !journal,
        },
    );
}

/// Installs the logger with `format` (once; later calls are ignored).
pub fn init_with_format(verbosity: u8, env: Option<&str>, format: LogFormat) {
    let level = level_for(verbosity, env);
    if log::set_boxed_logger(Box::new(StderrLogger { level, format })).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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

    #[test]
    fn formats_are_chosen_by_flag_then_env() {
        let text = LogFormat::Text { timestamps: true };
        assert_eq!(LogFormat::choose(None, None, false), Ok(text));
        assert_eq!(
            LogFormat::choose(None, None, true),
            Ok(LogFormat::Text { timestamps: false })
        );
        assert_eq!(
            LogFormat::choose(None, Some("JSON"), false),
            Ok(LogFormat::Json)
        );
        assert_eq!(
            LogFormat::choose(Some("text"), Some("json"), false),
            Ok(text)
        );
        let e = LogFormat::choose(None, Some("yaml"), false).unwrap_err();
        assert!(e.contains("PMA_LOG_FORMAT") && e.contains("yaml"), "{e}");
        let e = LogFormat::choose(Some("xml"), None, false).unwrap_err();
        assert!(e.starts_with("--log-format"), "{e}");
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_861_800_123); // 2026-11-28 10:30 UTC
        assert_eq!(rfc3339(t), "2026-11-28T10:30:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
        let end = UNIX_EPOCH + Duration::from_secs(4_102_444_799); // 2099-12-31 23:59:59
        assert_eq!(rfc3339(end), "2099-12-31T23:59:59.000Z");
    }

    fn line(format: LogFormat, record: &Record<'_>) -> String {
        format_record(format, UNIX_EPOCH + Duration::from_secs(86_400), record)
    }

    #[test]
    fn text_lines_carry_a_timestamp_unless_journald_stamps_them() {
        let args = format_args!("mailbox Help: 2 ticket(s) delivered");
        let r = Record::builder()
            .args(args)
            .level(Level::Info)
            .target("psa_mail_agent::daemon")
            .build();
        assert_eq!(
            line(LogFormat::Text { timestamps: true }, &r),
            "1970-01-02T00:00:00.000Z [INFO  psa_mail_agent::daemon] mailbox Help: 2 ticket(s) delivered\n"
        );
        assert_eq!(
            line(LogFormat::Text { timestamps: false }, &r),
            "[INFO  psa_mail_agent::daemon] mailbox Help: 2 ticket(s) delivered\n"
        );
    }

    #[test]
    fn json_lines_have_every_field_and_escape() {
        let kvs: &[(&str, &str)] = &[("event", "failing"), ("error_kind", "Timeout")];
        let args = format_args!("mailbox Help desk: \"x\"\n\tline\u{1}");
        let r = Record::builder()
            .args(args)
            .level(Level::Warn)
            .target("psa_mail_agent::daemon::worker")
            .key_values(&kvs)
            .build();
        assert_eq!(
            line(LogFormat::Json, &r),
            "{\"time\":\"1970-01-02T00:00:00.000Z\",\"level\":\"warn\",\
             \"target\":\"psa_mail_agent::daemon::worker\",\"mailbox\":\"Help desk\",\
             \"event\":\"failing\",\"error_kind\":\"Timeout\",\
             \"message\":\"mailbox Help desk: \\\"x\\\"\\n\\tline\\u0001\"}\n"
        );
        let args = format_args!("stopped");
        let r = Record::builder().args(args).level(Level::Info).build();
        let l = line(LogFormat::Json, &r);
        assert!(
            l.contains(
                "\"mailbox\":null,\"event\":null,\"error_kind\":null,\"message\":\"stopped\""
            ),
            "{l}"
        );
        // An explicit mailbox key wins over the message prefix.
        let kvs: &[(&str, &str)] = &[("mailbox", "Sales")];
        let args = format_args!("mailbox Help: x");
        let r = Record::builder().args(args).key_values(&kvs).build();
        assert!(line(LogFormat::Json, &r).contains("\"mailbox\":\"Sales\""));
    }
}
