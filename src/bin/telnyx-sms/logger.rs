//! The tool's logger: the library's records (target `telnyx_assistant_sms`, nothing of
//! ureq's) on stderr, one line each, with the time since the tool started.
//!
//! `-v` or `TELNYX_LOG=info` shows the retry decisions and the give-up (info, warn); `-vv` or
//! `TELNYX_LOG=debug` every attempt too (debug). Text lines look like
//! `[  0.012s] info: retrying in 50ms (...): ...`; with `--json` each record is one JSON object
//! `{"t", "level", "message", ...fields}`, the record's key-value fields with their JSON types.
//!
//! A batch's records carry the engine's `batch_index`; the logger names the input line instead
//! (`line=7`), from the table of lines the batch hands it once ([`name_batch_lines`]). The
//! installed logger is the only state: no thread-local, and no lock taken in a log call.
//! Writes go through `output.rs`: they escape what they print, never panic, and ignore a
//! closed stderr.

use std::ffi::OsString;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use log::kv::{self, VisitSource, VisitValue};
use log::{Level, LevelFilter, Log, Metadata, Record};
use serde_json::{Number, Value};
use telnyx_assistant_sms::Printable;

use crate::output::{self, ECHO_CAP, JSON_STRING_CAP, cut};

/// The library's target; only its records (and those of its modules) are shown.
const TARGET: &str = "telnyx_assistant_sms";
/// The variable that sets the level when no `-v` is given.
pub const ENV: &str = "TELNYX_LOG";
/// The values [`ENV`] accepts, as messages list them.
const ENV_VALUES: &str = "off, error, warn, info, debug";
/// The most fields one record carries.
const FIELDS_CAP: usize = 64;

/// The installed logger (`log` needs a `'static` one).
static LOGGER: OnceLock<Logger> = OnceLock::new();

/// How records are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `[  0.012s] info: message`, escaped and capped like every text line.
    Text,
    /// One JSON object per line (`--json`).
    Json,
}

/// The level `-v` given `count` times asks for: 1 is info, 2 or more debug.
fn level_of_flags(count: u8) -> LevelFilter {
    match count {
        0 => LevelFilter::Off,
        1 => LevelFilter::Info,
        _ => LevelFilter::Debug,
    }
}

/// The level a `TELNYX_LOG` value asks for (case and surrounding blanks ignored; empty is
/// `off`), or `None` for a value it does not know.
fn level_of_env(value: &str) -> Option<LevelFilter> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "off" => Some(LevelFilter::Off),
        "error" => Some(LevelFilter::Error),
        "warn" => Some(LevelFilter::Warn),
        "info" => Some(LevelFilter::Info),
        "debug" => Some(LevelFilter::Debug),
        _ => None,
    }
}

/// The level, and a note when `TELNYX_LOG` held a value that is ignored. `-v` wins over the
/// variable, which is then not read.
fn choose(flag_count: u8, env: Option<OsString>) -> (LevelFilter, Option<String>) {
    if flag_count > 0 {
        return (level_of_flags(flag_count), None);
    }
    let Some(raw) = env else {
        return (LevelFilter::Off, None);
    };
    let known = raw.to_str().and_then(level_of_env);
    match known {
        Some(level) => (level, None),
        None => {
            let shown = Printable::new(&raw.to_string_lossy(), ECHO_CAP).to_string();
            let note = format!(
                "{ENV}='{shown}' is not one of {ENV_VALUES}: ignored, so nothing is logged \
                 (or give -v / -vv)"
            );
            (LevelFilter::Off, Some(note))
        }
    }
}

/// Sets the logger up from `-v` (given `flag_count` times) or `TELNYX_LOG`, for the format
/// `--json` chooses; timestamps count from `started` (when the tool started). With neither
/// (or `off`) nothing is installed and nothing is printed. Call it once, before anything
/// logs; a second call changes nothing.
pub fn init(started: Instant, flag_count: u8, json: bool) {
    let format = if json { Format::Json } else { Format::Text };
    let (level, note) = choose(flag_count, std::env::var_os(ENV));
    let logger = LOGGER.get_or_init(|| Logger {
        level,
        format,
        started,
        lines: OnceLock::new(),
    });
    if let Some(note) = note {
        // Said whatever the level: the user asked for logging and gets none.
        logger.write(Level::Warn, &note, Vec::new(), None);
    }
    if logger.level != LevelFilter::Off && log::set_logger(logger).is_ok() {
        log::set_max_level(logger.level);
    }
}

/// For `send-batch`: `lines[i]` is the input line of the request the batch engine numbers `i`
/// (its `batch_index`), so that records say `line=N` instead of the engine's position. Given
/// once, before the sends; the logger keeps it.
pub fn name_batch_lines(lines: Arc<[u32]>) {
    if let Some(logger) = LOGGER.get() {
        let _ = logger.lines.set(lines);
    }
}

/// Whether records are being printed (a progress line would tear them).
pub fn is_on() -> bool {
    LOGGER.get().is_some_and(|l| l.level != LevelFilter::Off)
}

struct Logger {
    level: LevelFilter,
    format: Format,
    started: Instant,
    /// A batch's input line for each engine position ([`name_batch_lines`]).
    lines: OnceLock<Arc<[u32]>>,
}

fn is_ours(target: &str) -> bool {
    target == TARGET
        || target
            .strip_prefix(TARGET)
            .is_some_and(|rest| rest.starts_with("::"))
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= self.level && is_ours(m.target())
    }

    fn log(&self, record: &Record<'_>) {
        // `log!` does not ask `enabled` first: ureq's records arrive here too.
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut fields = Fields(Vec::new());
        let _ = record.key_values().visit(&mut fields);
        let message = record.args().to_string();
        match self.batch_line(&message, &fields.0) {
            Some((message, line)) => self.write(record.level(), message, fields.0, Some(line)),
            None => self.write(record.level(), &message, fields.0, None),
        }
    }

    fn flush(&self) {}
}

impl Logger {
    /// For a batch's record: the message without the engine's `request N: ` (the line says
    /// it), and the input line.
    fn batch_line<'m>(
        &self,
        message: &'m str,
        fields: &[(String, Value)],
    ) -> Option<(&'m str, u32)> {
        let index = fields
            .iter()
            .find(|(k, _)| k == "batch_index")
            .and_then(|(_, v)| v.as_u64())?;
        let line = *self.lines.get()?.get(usize::try_from(index).ok()?)?;
        let prefix = format!("request {index}: ");
        Some((message.strip_prefix(&prefix).unwrap_or(message), line))
    }

    fn write(&self, level: Level, message: &str, fields: Vec<(String, Value)>, line: Option<u32>) {
        let line = render(
            self.format,
            self.started.elapsed(),
            level,
            message,
            fields,
            line,
        );
        match self.format {
            Format::Text => output::stderr_line(&line),
            Format::Json => output::write_stderr(&line),
        }
    }
}

/// One record as a line (without the newline). `fields` are the record's; `line` is the
/// batch's input line it concerns. Text shows only the line (the message already says the
/// rest); JSON shows the fields and then the line after `t`, `level` and `message`, each key
/// once (the record's own value wins).
fn render(
    format: Format,
    t: Duration,
    level: Level,
    message: &str,
    fields: Vec<(String, Value)>,
    line: Option<u32>,
) -> String {
    let level = match level {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    };
    match format {
        Format::Text => {
            let prefix = line.map(|n| format!("line={n}: ")).unwrap_or_default();
            // The caller escapes and caps the whole line.
            format!("[{:7.3}s] {level}: {prefix}{message}", t.as_secs_f64())
        }
        Format::Json => {
            let secs = (t.as_secs_f64() * 1e6).round() / 1e6;
            let mut all = vec![
                (
                    "t".to_owned(),
                    Number::from_f64(secs).map_or(Value::Null, Value::Number),
                ),
                ("level".to_owned(), Value::String(level.to_owned())),
                (
                    "message".to_owned(),
                    Value::String(cut(message, JSON_STRING_CAP)),
                ),
            ];
            all.extend(fields);
            all.extend(line.map(|n| ("line".to_owned(), Value::from(n))));
            dedup(&mut all);
            let mut out = String::from("{");
            for (i, (k, v)) in all.iter().take(FIELDS_CAP + 3).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let v = match v {
                    Value::String(s) => Value::String(cut(s, JSON_STRING_CAP)),
                    v => v.clone(),
                };
                out.push_str(&Value::String(cut(k, JSON_STRING_CAP)).to_string());
                out.push(':');
                out.push_str(&v.to_string());
            }
            out.push('}');
            output::json_text(&out)
        }
    }
}

/// Keeps the first of each key.
fn dedup(fields: &mut Vec<(String, Value)>) {
    let mut seen = std::collections::HashSet::new();
    fields.retain(|(k, _)| seen.insert(k.clone()));
}

/// A record's fields, each as the JSON value closest to its type.
struct Fields(Vec<(String, Value)>);

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let mut v = ToJson(Value::Null);
        value.visit(&mut v)?;
        self.0.push((key.as_str().to_owned(), v.0));
        Ok(())
    }
}

struct ToJson(Value);

impl<'v> VisitValue<'v> for ToJson {
    fn visit_any(&mut self, value: kv::Value<'_>) -> Result<(), kv::Error> {
        self.0 = Value::String(value.to_string());
        Ok(())
    }

    fn visit_null(&mut self) -> Result<(), kv::Error> {
        self.0 = Value::Null;
        Ok(())
    }

    fn visit_u64(&mut self, value: u64) -> Result<(), kv::Error> {
        self.0 = Value::from(value);
        Ok(())
    }

    fn visit_i64(&mut self, value: i64) -> Result<(), kv::Error> {
        self.0 = Value::from(value);
        Ok(())
    }

    fn visit_u128(&mut self, value: u128) -> Result<(), kv::Error> {
        self.0 =
            u64::try_from(value).map_or_else(|_| Value::String(value.to_string()), Value::from);
        Ok(())
    }

    fn visit_i128(&mut self, value: i128) -> Result<(), kv::Error> {
        self.0 =
            i64::try_from(value).map_or_else(|_| Value::String(value.to_string()), Value::from);
        Ok(())
    }

    fn visit_f64(&mut self, value: f64) -> Result<(), kv::Error> {
        // NaN and the infinities have no JSON number.
        self.0 =
            Number::from_f64(value).map_or_else(|| Value::String(value.to_string()), Value::Number);
        Ok(())
    }

    fn visit_bool(&mut self, value: bool) -> Result<(), kv::Error> {
        self.0 = Value::Bool(value);
        Ok(())
    }

    fn visit_str(&mut self, value: &str) -> Result<(), kv::Error> {
        self.0 = Value::String(value.to_owned());
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)] // A test fails by panicking.
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_keep_their_json_types() {
        let kvs: [(&str, kv::Value<'_>); 5] = [
            ("n", kv::Value::from(42u64)),
            ("neg", kv::Value::from(-3i64)),
            ("yes", kv::Value::from(true)),
            ("s", kv::Value::from("a\"b")),
            ("f", kv::Value::from(f64::NAN)),
        ];
        let record = Record::builder()
            .target(TARGET)
            .key_values(&kvs)
            .args(format_args!("m"))
            .build();
        let mut fields = Fields(Vec::new());
        record.key_values().visit(&mut fields).unwrap();
        let fields = fields.0;
        let got: Vec<(&str, &Value)> = fields.iter().map(|(k, v)| (k.as_str(), v)).collect();
        assert_eq!(
            got,
            [
                ("n", &json!(42)),
                ("neg", &json!(-3)),
                ("yes", &json!(true)),
                ("s", &json!("a\"b")),
                ("f", &json!("NaN")),
            ]
        );
    }

    #[test]
    fn json_lines_put_t_level_message_first_and_each_key_once() {
        let line = render(
            Format::Json,
            Duration::from_micros(12_345),
            Level::Info,
            "retrying\n\u{1b}[2J",
            vec![
                ("attempt".into(), json!(2)),
                ("level".into(), json!("forged")),
                ("batch".into(), json!("b\u{9b}")),
            ],
            Some(3),
        );
        assert_eq!(
            line,
            r#"{"t":0.012345,"level":"info","message":"retrying\n\u001b[2J","attempt":2,"batch":"b\u009b","line":3}"#
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["batch"], json!("b\u{9b}"));
        // A record's own `line` wins.
        let own = vec![("line".into(), json!(7))];
        let line = render(Format::Json, Duration::ZERO, Level::Info, "m", own, Some(3));
        assert!(line.ends_with(r#""message":"m","line":7}"#), "{line}");
    }

    #[test]
    fn text_lines_show_the_line_not_the_fields() {
        let line = render(
            Format::Text,
            Duration::from_millis(1_234),
            Level::Debug,
            "attempt 1",
            vec![("attempt".into(), json!(1))],
            Some(12),
        );
        assert_eq!(line, "[  1.234s] debug: line=12: attempt 1");
        let line = render(Format::Text, Duration::ZERO, Level::Info, "m", vec![], None);
        assert_eq!(line, "[  0.000s] info: m");
    }

    #[test]
    fn a_batch_record_names_its_input_line() {
        let logger = Logger {
            level: LevelFilter::Debug,
            format: Format::Text,
            started: Instant::now(),
            lines: OnceLock::new(),
        };
        let fields = vec![("batch_index".to_owned(), json!(1))];
        // No table yet: the record is left as it is.
        assert_eq!(logger.batch_line("request 1: attempt 1", &fields), None);
        let _ = logger.lines.set(Arc::from([4, 9]));
        assert_eq!(
            logger.batch_line("request 1: attempt 1", &fields),
            Some(("attempt 1", 9))
        );
        // Not a batch's record, or a position past the table: no line.
        assert_eq!(logger.batch_line("attempt 1", &[]), None);
        let far = vec![("batch_index".to_owned(), json!(2))];
        assert_eq!(logger.batch_line("request 2: x", &far), None);
    }

    #[test]
    fn only_the_library_target_is_ours() {
        assert!(is_ours("telnyx_assistant_sms"));
        assert!(is_ours("telnyx_assistant_sms::client"));
        assert!(!is_ours("telnyx_assistant_smsx"));
        assert!(!is_ours("ureq::unversioned::transport"));
        assert!(!is_ours("telnyx_sms"));
    }

    #[test]
    fn flags_win_over_the_variable_and_unknown_values_are_noted() {
        let env = |s: &str| Some(OsString::from(s));
        assert_eq!(choose(0, None), (LevelFilter::Off, None));
        assert_eq!(choose(1, None), (LevelFilter::Info, None));
        assert_eq!(choose(2, None), (LevelFilter::Debug, None));
        assert_eq!(choose(5, None), (LevelFilter::Debug, None));
        assert_eq!(choose(1, env("debug")), (LevelFilter::Info, None));
        assert_eq!(choose(2, env("off")), (LevelFilter::Debug, None));
        assert_eq!(choose(1, env("nonsense")), (LevelFilter::Info, None));
        for (v, l) in [
            ("debug", LevelFilter::Debug),
            (" INFO\n", LevelFilter::Info),
            ("warn", LevelFilter::Warn),
            ("error", LevelFilter::Error),
            ("off", LevelFilter::Off),
            ("", LevelFilter::Off),
        ] {
            assert_eq!(choose(0, env(v)), (l, None), "{v:?}");
        }
        let (level, note) = choose(0, env("verbose\u{1b}"));
        assert_eq!(level, LevelFilter::Off);
        assert_eq!(
            note.unwrap(),
            "TELNYX_LOG='verbose\\u{1b}' is not one of off, error, warn, info, debug: ignored, \
             so nothing is logged (or give -v / -vv)"
        );
    }
}
