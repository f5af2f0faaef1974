//! The tool's logger: the library's records (target `telnyx_assistant_sms`, nothing of
//! ureq's) on stderr, one line each, with the time since the tool started.
//!
//! `-v` or `TELNYX_LOG=info` shows the retry decisions and the give-up (info, warn); `-vv` or
//! `TELNYX_LOG=debug` every attempt too (debug). Text lines look like
//! `[  0.012s] info: retrying in 50ms (...): ...`; with `--json` each record is one JSON object
//! `{"t", "level", "message", ...fields}`, the record's key-value fields with their JSON types.
//!
//! Extra fields can be attached to every record a thread emits ([`scope`]); a batch's records
//! get the input line they concern ([`set_batch_lines`]). Writes go through `output.rs`:
//! they escape what they print, never panic, and ignore a closed stderr.

use std::cell::RefCell;
use std::ffi::OsString;
use std::marker::PhantomData;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use log::kv::{self, VisitSource, VisitValue};
use log::{Level, LevelFilter, Log, Metadata, Record};
use serde_json::{Number, Value};

use crate::output::{self, JSON_STRING_CAP, cap, clean};

/// The library's target; only its records (and those of its modules) are shown.
const TARGET: &str = "telnyx_assistant_sms";
/// The variable that sets the level when no `-v` is given.
pub const ENV: &str = "TELNYX_LOG";
/// The values [`ENV`] accepts, as messages list them.
const ENV_VALUES: &str = "off, error, warn, info, debug";
/// The most characters of a field's value in a text line's context.
const CONTEXT_CAP: usize = 200;
/// The most fields one record carries (its own and the context's together).
const FIELDS_CAP: usize = 64;

static START: OnceLock<Instant> = OnceLock::new();
static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Starts the clock the timestamps count from: call it first thing in `main`.
pub fn mark_start() {
    let _ = START.get_or_init(Instant::now);
}

fn since_start() -> Duration {
    START.get_or_init(Instant::now).elapsed()
}

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
            let shown = clean(&raw.to_string_lossy(), CONTEXT_CAP);
            let note = format!(
                "{ENV}='{shown}' is not one of {ENV_VALUES}: ignored, so nothing is logged \
                 (or give -v / -vv)"
            );
            (LevelFilter::Off, Some(note))
        }
    }
}

/// Sets the logger up from `-v` (given `flag_count` times) or `TELNYX_LOG`, for the format
/// `--json` chooses. With neither (or `off`) nothing is installed and nothing is printed.
/// Call it once, before anything logs; a second call changes nothing.
pub fn init(flag_count: u8, json: bool) {
    let format = if json { Format::Json } else { Format::Text };
    let (level, note) = choose(flag_count, std::env::var_os(ENV));
    let logger = LOGGER.get_or_init(|| Logger { level, format });
    if let Some(note) = note {
        // Said whatever the level: the user asked for logging and gets none.
        logger.write(Level::Warn, &note, Vec::new());
    }
    if logger.level != LevelFilter::Off && log::set_logger(logger).is_ok() {
        log::set_max_level(logger.level);
    }
}

/// For `send-batch`: the input line of the request the batch engine numbers `i` (its
/// `batch_index`), so records say `line=N` instead of the engine's position.
type LineOf = Box<dyn Fn(usize) -> Option<usize> + Send + Sync>;

static BATCH_LINES: std::sync::Mutex<Option<LineOf>> = std::sync::Mutex::new(None);

/// Records with a `batch_index` field get a `line` field: `line_of(batch_index)`.
pub fn set_batch_lines(line_of: LineOf) {
    if let Ok(mut l) = BATCH_LINES.lock() {
        *l = Some(line_of);
    }
}

/// Ends [`set_batch_lines`].
pub fn clear_batch_lines() {
    if let Ok(mut l) = BATCH_LINES.lock() {
        *l = None;
    }
}

/// Whether records are being printed (a progress line would tear them).
pub fn is_on() -> bool {
    LOGGER.get().is_some_and(|l| l.level != LevelFilter::Off)
}

/// For a batch's record: the message without the engine's `request N: ` (the line says it),
/// and the `line` field.
fn batch_line(message: &str, fields: &[(String, Value)]) -> Option<(String, usize)> {
    let index = fields
        .iter()
        .find(|(k, _)| k == "batch_index")
        .and_then(|(_, v)| v.as_u64())?;
    let line_of = BATCH_LINES.lock().ok()?;
    let line = (line_of.as_ref()?)(usize::try_from(index).ok()?)?;
    let prefix = format!("request {index}: ");
    let message = message.strip_prefix(&prefix).unwrap_or(message).to_owned();
    Some((message, line))
}

thread_local! {
    /// The fields added to every record this thread emits, outermost first.
    static CONTEXT: RefCell<Vec<(String, Value)>> = const { RefCell::new(Vec::new()) };
}

/// Adds `key` = `value` to every record this thread emits until the guard is dropped (the
/// library logs on the thread that sends). Scopes nest; an inner one may shadow a key.
#[must_use = "the field is removed when the guard is dropped"]
pub fn scope(key: &str, value: impl Into<Value>) -> Scope {
    let value = value.into();
    let depth = CONTEXT
        .try_with(|c| {
            c.try_borrow_mut().ok().map(|mut c| {
                c.push((key.to_owned(), value));
                c.len() - 1
            })
        })
        .ok()
        .flatten();
    Scope {
        depth,
        _not_send: PhantomData,
    }
}

/// Removes its [`scope`] field (and any pushed after it) when dropped.
pub struct Scope {
    /// The context's length before the push; `None` if nothing was pushed.
    depth: Option<usize>,
    /// The field lives in this thread's context: the guard must not move to another thread.
    _not_send: PhantomData<*const ()>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some(depth) = self.depth {
            let _ = CONTEXT.try_with(|c| {
                if let Ok(mut c) = c.try_borrow_mut() {
                    c.truncate(depth);
                }
            });
        }
    }
}

/// The thread's context, innermost first (so that, deduplicated, the inner value wins).
fn context() -> Vec<(String, Value)> {
    CONTEXT
        .try_with(|c| {
            c.try_borrow()
                .map(|c| c.iter().rev().cloned().collect())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

struct Logger {
    level: LevelFilter,
    format: Format,
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
        match batch_line(&message, &fields.0) {
            Some((message, line)) => {
                let _scope = scope("line", line);
                self.write(record.level(), &message, fields.0);
            }
            None => self.write(record.level(), &message, fields.0),
        }
    }

    fn flush(&self) {}
}

impl Logger {
    fn write(&self, level: Level, message: &str, fields: Vec<(String, Value)>) {
        let line = render(
            self.format,
            since_start(),
            level,
            message,
            fields,
            context(),
        );
        match self.format {
            Format::Text => output::stderr_line(&line),
            Format::Json => output::write_stderr(&line),
        }
    }
}

/// One record as a line (without the newline). `fields` are the record's, `context` the
/// thread's: text shows only the context (the message already says the rest); JSON shows
/// both after `t`, `level` and `message`, each key once (the record's own value wins).
fn render(
    format: Format,
    t: Duration,
    level: Level,
    message: &str,
    fields: Vec<(String, Value)>,
    context: Vec<(String, Value)>,
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
            let mut shown: Vec<String> = Vec::new();
            let mut context = context;
            dedup(&mut context); // the innermost value of a key wins...
            context.reverse(); // ...and the fields show outermost first
            for (k, v) in context.iter().take(FIELDS_CAP) {
                let v = match v {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                shown.push(format!(
                    "{}={}",
                    clean(k, CONTEXT_CAP),
                    clean(&v, CONTEXT_CAP)
                ));
            }
            let prefix = if shown.is_empty() {
                String::new()
            } else {
                format!("{}: ", shown.join(" "))
            };
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
                    Value::String(cap(message, JSON_STRING_CAP)),
                ),
            ];
            all.extend(fields);
            all.extend(context);
            dedup(&mut all);
            let mut out = String::from("{");
            for (i, (k, v)) in all.iter().take(FIELDS_CAP + 3).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let v = match v {
                    Value::String(s) => Value::String(cap(s, JSON_STRING_CAP)),
                    v => v.clone(),
                };
                out.push_str(&Value::String(cap(k, JSON_STRING_CAP)).to_string());
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
                ("line".into(), json!(7)),
            ],
            vec![
                ("line".into(), json!(3)),
                ("batch".into(), json!("b\u{9b}")),
            ],
        );
        assert_eq!(
            line,
            r#"{"t":0.012345,"level":"info","message":"retrying\n\u001b[2J","attempt":2,"line":7,"batch":"b\u009b"}"#
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["batch"], json!("b\u{9b}"));
    }

    #[test]
    fn text_lines_show_the_context_not_the_fields() {
        let line = render(
            Format::Text,
            Duration::from_millis(1_234),
            Level::Debug,
            "attempt 1",
            vec![("attempt".into(), json!(1))],
            vec![("line".into(), json!(12)), ("file".into(), json!("a b"))],
        );
        assert_eq!(line, "[  1.234s] debug: file=a b line=12: attempt 1");
    }

    #[test]
    fn scopes_nest_and_end_with_their_guard() {
        assert!(context().is_empty());
        {
            let _outer = scope("line", 1);
            {
                let _inner = scope("line", 2);
                let _other = scope("file", "x");
                assert_eq!(
                    context(),
                    [
                        ("file".to_owned(), json!("x")),
                        ("line".to_owned(), json!(2)),
                        ("line".to_owned(), json!(1)),
                    ]
                );
            }
            assert_eq!(context(), [("line".to_owned(), json!(1))]);
            // Another thread has its own context.
            std::thread::spawn(|| assert!(context().is_empty()))
                .join()
                .unwrap();
        }
        assert!(context().is_empty());
        // The inner value wins in both formats.
        let _a = scope("line", 1);
        let _b = scope("line", 2);
        let line = render(
            Format::Text,
            Duration::ZERO,
            Level::Info,
            "m",
            vec![],
            context(),
        );
        assert_eq!(line, "[  0.000s] info: line=2: m");
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
