//! Everything the tool prints: the success and dry-run formats (text and `--json`), the one
//! error shape, and the guards every printed string passes through.
//!
//! Text from a server, and text echoed from arguments, is untrusted: it is printed through the
//! library's [`Printable`] (control characters and invisible direction marks escaped, so
//! nothing can move the cursor, recolour the terminal or add a line; lengths capped), and
//! JSON output escapes the same characters as `\uXXXX`. Writes never panic: a closed stdout
//! is an `Err` the caller decides about, a closed stderr is ignored.

use std::fmt::Write as _;
use std::io::{self, Write as _};

use serde_json::{Map, Value, json};
use telnyx_assistant_sms::{
    ApiErrorEntry, Error, ErrorKind, PreparedSend, Printable, SendSmsResponse,
};

use crate::exit;

/// The most characters of an argument echoed back in a message.
pub const ECHO_CAP: usize = 200;
/// The most characters of a server's text (or a parser's message) in a text-mode line.
pub const TEXT_CAP: usize = 1_000;
/// The most characters of one line on stderr, whatever it holds.
const LINE_CAP: usize = 2_000;
/// The most characters of one string in `--json` output.
pub const JSON_STRING_CAP: usize = 2_000;
/// The most entries of the `errors` and `violations` arrays in `--json` output.
pub const JSON_LIST_CAP: usize = 100;

/// The most characters of a parser's message (which may quote the input it refused).
pub const DETAIL_CAP: usize = 300;

/// `s` cut to at most `max` characters, not escaped: a JSON string (serde escapes it).
pub fn cut(s: &str, max: usize) -> String {
    Printable::new(s, max).truncated().into_owned()
}

fn cap_opt(s: Option<&str>) -> Value {
    s.map_or(Value::Null, |s| Value::String(cut(s, JSON_STRING_CAP)))
}

/// A JSON document on one line. serde_json escapes C0 controls; the other unsafe characters
/// can only occur inside strings, where `\uXXXX` is the same character, so the document means
/// exactly what it did.
pub fn json_line(v: &Value) -> String {
    escape_in_json(&v.to_string())
}

/// JSON text (serialized by serde_json) with the unsafe characters it leaves raw written as
/// `\uXXXX`: the same document, harmless on a terminal. For lines built piece by piece.
pub fn json_text(s: &str) -> String {
    escape_in_json(s)
}

fn escape_in_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if Printable::escapes(c) {
            // Every such character is in the basic plane: four hex digits suffice.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes all of `s` to stdout and flushes it. A reader that went away is an `Err`, not a
/// panic (unlike `print!`).
pub fn write_stdout(s: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()
}

/// Writes one line of text to stderr, cleaned and capped. If stderr is gone there is no one
/// to tell.
pub fn stderr_line(s: &str) {
    write_stderr(&Printable::new(s, LINE_CAP).to_string());
}

/// Writes `line` (already safe) and a newline to stderr, ignoring failure. One write, so
/// lines from threads (and processes sharing the pipe) do not mix.
pub fn write_stderr(line: &str) {
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    let _ = io::stderr().lock().write_all(buf.as_bytes());
}

/// Writes `s` (the tool's own, safe text, with no newline) to stderr, ignoring failure: for
/// the progress line, which redraws itself in place.
pub fn write_stderr_raw(s: &str) {
    let _ = io::stderr().lock().write_all(s.as_bytes());
}

/// What stdout gets after a successful send.
pub fn sent(res: &SendSmsResponse, idempotency_key: Option<&str>, as_json: bool) -> String {
    if as_json {
        let v = json!({
            "conversation_id": cap_opt(res.conversation_id.as_deref()),
            "request_id": cap_opt(res.request_id.as_deref()),
            "idempotency_key": idempotency_key,
        });
        json_line(&v) + "\n"
    } else {
        let id = res.conversation_id.as_deref().unwrap_or_default();
        format!("{}\n", Printable::new(id, TEXT_CAP))
    }
}

/// What stdout gets for `--dry-run`: the request exactly as it would go out, the key redacted.
/// In the text form, characters JSON leaves raw (DEL, C1, direction marks) are shown as the
/// equivalent `\uXXXX` escapes: the body means the same, but cannot drive the terminal.
pub fn dry_run(p: &PreparedSend, as_json: bool) -> String {
    let body = String::from_utf8_lossy(p.body());
    if as_json {
        let headers: Map<String, Value> = p
            .headers()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v)))
            .collect();
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let v = json!({"method": p.method(), "url": p.url(), "headers": headers, "body": body});
        json_line(&v) + "\n"
    } else {
        let mut out = format!("{} {}\n", p.method(), Printable::new(p.url(), LINE_CAP));
        for (k, v) in p.headers() {
            let _ = writeln!(out, "{k}: {}", Printable::new(&v, LINE_CAP));
        }
        let _ = writeln!(out, "\n{}", escape_in_json(&body));
        out
    }
}

/// How the process ends when something goes wrong: the exit code, a line for humans, and the
/// `--json` object, which has the same keys for every kind of failure.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    text: String,
    error: Map<String, Value>,
    /// Already reported (by a command's own summary): only the exit code is left.
    silent: bool,
}

impl Failure {
    /// A failure of `kind` whose `--json` message is `message` and every other key
    /// null, empty, 0 or false.
    fn new(code: u8, kind: &str, message: &str, text: String) -> Failure {
        let error = [
            ("kind", json!(kind)),
            ("message", json!(cut(message, JSON_STRING_CAP))),
            ("status", Value::Null),
            ("request_id", Value::Null),
            ("errors", json!([])),
            ("violations", json!([])),
            ("attempts", json!(0)),
            ("idempotency_key", Value::Null),
            ("may_have_been_sent", json!(false)),
            ("retry_after_seconds", Value::Null),
        ];
        let error = error.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        Failure {
            code,
            text,
            error,
            silent: false,
        }
    }

    /// A command line that cannot be run (exit 2). The text line points to `--help`.
    pub fn usage(message: impl Into<String>) -> Failure {
        let message = message.into();
        let text = format!("{message}; see 'telnyx-sms --help'");
        Failure::new(exit::USAGE, "usage", &message, text)
    }

    /// Unusable configuration: a key file, a base URL (exit 2).
    pub fn config(message: impl Into<String>) -> Failure {
        let message = message.into();
        Failure::new(exit::USAGE, "config", &message, message.clone())
    }

    /// Input that breaks a rule (exit 2): `violations` as [`Violation::to_value`] gives them.
    pub fn invalid(message: impl Into<String>, violations: Vec<Value>) -> Failure {
        let message = message.into();
        let mut f = Failure::new(exit::USAGE, "validation", &message, message.clone());
        f.error
            .insert("violations".into(), Value::Array(violations));
        f
    }

    /// Stdout could not be written when nothing was sent (`--help`, `--dry-run`): exit 1.
    pub fn stdout(e: io::Error) -> Failure {
        let message = format!("could not write to stdout ({e}); nothing was sent");
        Failure::new(exit::OTHER, "output", &message, message.clone())
    }

    /// A library error. The text line names the idempotency key the attempts carried, and
    /// when the SMS may have gone out, says that a retry under that key is safe only if the
    /// server honours keys (this endpoint does not declare them).
    pub fn from_error(e: &Error) -> Failure {
        let (code, kind) = match e.kind() {
            ErrorKind::Config => (exit::USAGE, "config"),
            ErrorKind::Validation => (exit::USAGE, "validation"),
            ErrorKind::Api => (exit::API, "api"),
            ErrorKind::Transport => (exit::TRANSPORT, "transport"),
            ErrorKind::Decode => (exit::OTHER, "decode"),
            _ => (exit::OTHER, "other"),
        };
        let display = e.to_string();
        // The library names its builder's option; on the command line it is --ca-file.
        let mut text = Printable::new(&display, TEXT_CAP)
            .to_string()
            .replace("ClientBuilder::root_certificates_pem", "--ca-file");
        if let Some(k) = e.idempotency_key() {
            let _ = write!(text, "; idempotency key: {k}");
            if e.may_have_been_sent() {
                let _ = write!(
                    text,
                    " (check before sending again: a re-run with --idempotency-key {k} is \
                     replayed only by a server that honours keys and only if this attempt \
                     succeeded; --journal records it)"
                );
            }
        }
        let mut f = Failure::new(code, kind, &display, text);
        let errors = e.api_errors().iter().take(JSON_LIST_CAP).map(api_error);
        let violations = e
            .violations()
            .iter()
            .take(JSON_LIST_CAP)
            .map(|v| Violation::of(v, None).to_value());
        for (key, value) in [
            ("status", json!(e.status())),
            ("request_id", cap_opt(e.request_id())),
            ("errors", Value::Array(errors.collect())),
            ("violations", Value::Array(violations.collect())),
            ("attempts", json!(e.attempts())),
            ("idempotency_key", json!(e.idempotency_key())),
            ("may_have_been_sent", json!(e.may_have_been_sent())),
            (
                "retry_after_seconds",
                json!(e.retry_after().map(|d| d.as_secs_f64())),
            ),
        ] {
            f.error.insert(key.into(), value);
        }
        f
    }

    /// An exit code whose reason the command has printed already.
    pub fn silent(code: u8) -> Failure {
        let mut f = Failure::new(code, "batch", "", String::new());
        f.silent = true;
        f
    }

    /// A send the journal shows in doubt, not sent again (exit 4).
    pub fn in_doubt(key: &str, reason: &str, journal: &str) -> Failure {
        let message = format!(
            "not sent: the journal {} shows this key in doubt: {}; find out whether it was \
             delivered before sending it again with --resend-in-doubt",
            Printable::new(journal, ECHO_CAP),
            Printable::new(reason, TEXT_CAP)
        );
        let text = format!("{message}; idempotency key: {key}");
        let mut f = Failure::new(exit::TRANSPORT, "in_doubt", &message, text);
        f.error.insert("idempotency_key".into(), json!(key));
        f.error.insert("may_have_been_sent".into(), json!(true));
        f
    }

    /// Replaces the text line (the `--json` message stays the library's).
    pub fn with_text(mut self, text: String) -> Failure {
        self.text = text;
        self
    }

    pub fn code(&self) -> u8 {
        self.code
    }

    /// Prints the failure to stderr: one line of text, or with `--json` the error object.
    pub fn print(&self, as_json: bool) {
        if self.silent {
            return;
        }
        if as_json {
            // Bounded by the caps on each field, not cut: cut JSON would not parse.
            write_stderr(&json_line(&json!({"error": self.error})));
        } else {
            stderr_line(&format!("telnyx-sms: {}", self.text));
        }
    }
}

/// One broken rule, in the one shape every output uses (`send --json`'s errors, send-batch's
/// `invalid` results and its refusal): the library's names for where (`field`, such as
/// `body.to`; null for a line that is not a request at all), what (`message`) and its code
/// (`code`), and the flag that supplied the field, when one did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Violation {
    pub field: Option<String>,
    pub message: String,
    pub code: String,
    pub flag: Option<&'static str>,
}

impl Violation {
    /// A violation of the tool's own (a line that is not JSON, a key conflict).
    pub fn new(field: Option<&str>, message: impl Into<String>, code: &str) -> Violation {
        Violation {
            field: field.map(|f| cut(f, JSON_STRING_CAP)),
            message: cut(&message.into(), JSON_STRING_CAP),
            code: cut(code, JSON_STRING_CAP),
            flag: None,
        }
    }

    /// The library's violation `v`; `flag` is the option that supplied its field, if one did.
    pub fn of(v: &telnyx_assistant_sms::Violation, flag: Option<&'static str>) -> Self {
        let field = v.field();
        Violation {
            flag,
            ..Violation::new(
                (!field.is_empty()).then_some(&*field),
                v.message(),
                v.code(),
            )
        }
    }

    /// `field: message`, or the message alone: for text lines (escaped when printed).
    pub fn text(&self) -> String {
        match &self.field {
            Some(f) => format!("{f}: {}", self.message),
            None => self.message.clone(),
        }
    }

    /// As a JSON value (for the `--json` error object).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// A JSON object written key by key, in the order given (serde_json's `Map` sorts its keys):
/// for lines people read by eye, such as send-batch's results.
pub struct JsonObject(String);

impl JsonObject {
    pub fn new() -> JsonObject {
        JsonObject(String::from("{"))
    }

    /// Adds `key` with `value` (a string, a number, an `Option`, a `Value`, a derived
    /// struct...).
    pub fn field(mut self, key: &str, value: impl serde::Serialize) -> JsonObject {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        // Neither can fail: a string key, and values without maps keyed by non-strings.
        self.0
            .push_str(&serde_json::to_string(key).unwrap_or_default());
        self.0.push(':');
        self.0
            .push_str(&serde_json::to_string(&value).unwrap_or_else(|_| "null".to_owned()));
        self
    }

    /// The object on one line, safe to print (see [`json_line`]).
    pub fn line(mut self) -> String {
        self.0.push('}');
        escape_in_json(&self.0)
    }
}

fn api_error(a: &ApiErrorEntry) -> Value {
    json!({
        "code": cap_opt(a.code()),
        "title": cap_opt(a.title()),
        "detail": cap_opt(a.detail()),
        "pointer": cap_opt(a.pointer()),
        "meta": a.meta().map_or(Value::Null, capped_meta),
    })
}

/// The server's free-form `meta`, unless its JSON is longer than [`JSON_STRING_CAP`]: then
/// that JSON text, cut, as a string.
fn capped_meta(meta: &Value) -> Value {
    let text = meta.to_string();
    if text.chars().count() <= JSON_STRING_CAP {
        meta.clone()
    } else {
        Value::String(cut(&text, JSON_STRING_CAP))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test fails by panicking.
mod tests {
    use super::*;

    #[test]
    fn stderr_text_is_the_librarys_printable() {
        // What the library's Display escapes, JSON escapes too: the same character set.
        let s = "a\u{7f}\u{9b}\u{200b}\u{202e}\u{2067}\u{feff}b";
        let line = json_line(&json!(s));
        assert!(line.is_ascii(), "{line}");
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), json!(s));
        for c in s.chars() {
            assert_eq!(Printable::escapes(c), !line.contains(c), "{c:?}");
        }
        // Cut as the library cuts: at most `max` characters, the ellipsis included.
        assert_eq!(cut("abcdef", 3), "ab…");
        assert_eq!(cut("abc", 3), "abc");
    }

    #[test]
    fn json_line_escapes_what_serde_leaves_raw() {
        let v = json!({"s": "a\u{7f}\u{9b}\u{202e}\n"});
        let line = json_line(&v);
        assert_eq!(line, r#"{"s":"a\u007f\u009b\u202e\n"}"#);
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), v);
    }
}
