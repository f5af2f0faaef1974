//! `telnyx-sms send`: one SMS from flags, a `--request` JSON object, or both.

use serde_json::Value;
use telnyx_assistant_sms::{
    BatchOptions, BatchOutcome, Error, ErrorKind, MetadataValue, Printable, SendSmsRequest,
};

use crate::args::{
    self, Arg, Args, ClientFlags, INPUT_CAP, KeyNeed, key_value, once, once_switch, shown,
};
use crate::output::{self, DETAIL_CAP, ECHO_CAP, Failure, TEXT_CAP, Violation};

/// The help lines of `send`'s own options.
pub const HELP: &str = "\
SEND OPTIONS:
    --assistant-id ID         the assistant that sends (required)
    --from NUMBER             your Telnyx number (required unless in --request)
    --to NUMBER               the recipient (required unless in --request)
    --text TEXT               the message; default: none, so the assistant sends its
                              greeting (first message) or writes the text itself
    --meta KEY=VALUE          conversation metadata, always a string (02134 stays \"02134\");
                              repeatable; default: none
    --meta-int KEY=N          metadata as an integer, from -9223372036854775808 to
                              9223372036854775807 (i64); repeatable
    --meta-bool KEY=BOOL      metadata as a boolean, true or false; repeatable
                              (each KEY once across --meta, --meta-int and --meta-bool)
    --create-conversation     ask the server to create a new conversation first
    --no-create-conversation  ask it not to (should_create_conversation=false); default
                              for both: the field is not sent and the server decides
    --request FILE|-          the request as a JSON object from FILE or stdin (UTF-8, at most
                              1 MiB; a leading byte-order mark is ignored); the options above
                              override its fields; default: none
    --idempotency-key KEY     your own key, 1 to 255 of A-Z a-z 0-9 _ - :, the same on every
                              retry; a server that honours keys replays a first success
                              under it (this endpoint does not declare them); default: a
                              fresh random key per run, shown in errors and --json output
    --journal PATH            for a job that may run twice (cron): with --idempotency-key,
                              a key the journal at PATH shows sent prints the recorded
                              result without sending (exit 0); one in doubt (started, no
                              outcome; or failed after it may have been sent) exits 4
                              without sending; otherwise it is sent, its start and outcome
                              recorded (fsync); default: none
    --resend-in-doubt         with --journal: send a key in doubt again, under the same
                              key (safe only if the server honours keys); default: off
    --dry-run                 check everything and print the exact HTTP request (key
                              redacted); send nothing; needs no API key; default: off
";

/// `send`'s own options (the connection and output ones are [`args::CLIENT_FLAGS`]).
pub const FLAGS: &[&str] = &[
    "--assistant-id",
    "--from",
    "--to",
    "--text",
    "--meta",
    "--meta-int",
    "--meta-bool",
    "--create-conversation",
    "--no-create-conversation",
    "--request",
    "--idempotency-key",
    "--journal",
    "--resend-in-doubt",
    "--dry-run",
];

/// Whether `flag` belongs to `send` (for the hint when it comes before the command).
pub fn accepts(flag: &str) -> bool {
    ClientFlags::accepts(flag) || FLAGS.contains(&flag)
}

/// The parsed options of one `send`.
#[derive(Default)]
pub struct SendArgs {
    assistant_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    text: Option<String>,
    /// Key, value, and the flag that gave it.
    metadata: Vec<(String, MetadataValue, &'static str)>,
    /// The value, and the flag that gave it.
    create_conversation: Option<(bool, String)>,
    request: Option<String>,
    idempotency_key: Option<String>,
    journal: Option<String>,
    resend_in_doubt: bool,
    dry_run: bool,
    pub client: ClientFlags,
}

/// `send`'s options, or `None` when they ask for `--help`.
pub fn parse(args: &mut Args) -> Result<Option<SendArgs>, Failure> {
    let mut a = SendArgs::default();
    while let Some(arg) = args.next()? {
        let flag = match arg {
            Arg::Flag(f) => f,
            Arg::Positional(v) => {
                return Err(args::unexpected(
                    &v,
                    " (every value follows its option; quote a --text with spaces)",
                ));
            }
        };
        let f = flag.as_str();
        match f {
            "--help" | "-h" => return Ok(None),
            "--assistant-id" => once(&mut a.assistant_id, f, args.value(f)?)?,
            "--from" => once(&mut a.from, f, args.value(f)?)?,
            "--to" => once(&mut a.to, f, args.value(f)?)?,
            "--text" => once(&mut a.text, f, args.value(f)?)?,
            "--meta" | "--meta-int" | "--meta-bool" => a.add_meta(f, &args.value(f)?)?,
            "--create-conversation" => a.set_create(f, true)?,
            "--no-create-conversation" => a.set_create(f, false)?,
            "--request" => once(&mut a.request, f, args.value(f)?)?,
            "--idempotency-key" => once(&mut a.idempotency_key, f, args.value(f)?)?,
            "--journal" => once(&mut a.journal, f, args.value(f)?)?,
            "--resend-in-doubt" => once_switch(&mut a.resend_in_doubt, f)?,
            "--dry-run" => once_switch(&mut a.dry_run, f)?,
            _ => args::common_flag(f, FLAGS, &mut a.client, args)?,
        }
    }
    if a.assistant_id.is_none() {
        return Err(Failure::usage("missing --assistant-id"));
    }
    if a.resend_in_doubt && a.journal.is_none() {
        return Err(Failure::usage(
            "--resend-in-doubt goes with --journal PATH (it resends what the journal shows in \
             doubt)",
        ));
    }
    if a.request.is_none() {
        for (value, flag) in [(&a.from, "--from"), (&a.to, "--to")] {
            if value.is_none() {
                let field = flag.trim_start_matches('-');
                return Err(Failure::usage(format!(
                    "missing {flag} (or a --request file with \"{field}\")"
                )));
            }
        }
    }
    Ok(Some(a))
}

impl SendArgs {
    fn add_meta(&mut self, flag: &str, raw: &str) -> Result<(), Failure> {
        let (key, v) = key_value(flag, raw)?;
        let what = format!("{flag} {}", shown(raw));
        let value = match flag {
            "--meta-int" => MetadataValue::Integer(args::integer(&what, v)?),
            "--meta-bool" => MetadataValue::Boolean(args::boolean(&what, v)?),
            _ => MetadataValue::String(v.to_owned()),
        };
        if let Some((_, _, by)) = self.metadata.iter().find(|(k, _, _)| k == key) {
            return Err(Failure::usage(format!(
                "{what}: the metadata key '{}' was already given by {by}; give each key once",
                shown(key)
            )));
        }
        self.metadata.push((key.to_owned(), value, meta_flag(flag)));
        Ok(())
    }

    fn set_create(&mut self, flag: &str, yes: bool) -> Result<(), Failure> {
        match &self.create_conversation {
            Some((_, by)) if by == flag => Err(args::repeated(flag)),
            Some((_, by)) => Err(Failure::usage(format!(
                "{by} and {flag} contradict each other; give one"
            ))),
            None => {
                self.create_conversation = Some((yes, flag.to_owned()));
                Ok(())
            }
        }
    }

    /// The `--request` source as messages name it.
    fn request_name(&self) -> Option<String> {
        self.request.as_deref().map(|p| match p {
            "-" => "--request stdin".to_owned(),
            p => format!("--request {}", shown(p)),
        })
    }

    /// The request: the `--request` object, if any, with the flags laid over it.
    fn build_request(&self) -> Result<SendSmsRequest, Failure> {
        let mut req = match (&self.request, self.request_name()) {
            (Some(path), Some(name)) => parse_request(&name, path)?,
            _ => SendSmsRequest::new("", ""),
        };
        if let Some(v) = &self.from {
            req = req.from(v.as_str());
        }
        if let Some(v) = &self.to {
            req = req.to(v.as_str());
        }
        if let Some(v) = &self.text {
            req.text = Some(v.clone());
        }
        for (k, v, _) in &self.metadata {
            req.conversation_metadata.insert(k.clone(), v.clone());
        }
        if let Some((yes, _)) = &self.create_conversation {
            req.should_create_conversation = Some(*yes);
        }
        if let Some(k) = &self.idempotency_key {
            req.idempotency_key = Some(k.clone());
        }
        Ok(req)
    }

    /// The flag that supplied the field a violation names, if a flag did.
    fn flag_for(&self, v: &telnyx_assistant_sms::Violation) -> Option<&'static str> {
        let path: Vec<&str> = v.path().iter().map(String::as_str).collect();
        match path.as_slice() {
            ["path", "assistant_id"] => Some("--assistant-id"),
            ["body", "from"] => self.from.as_ref().map(|_| "--from"),
            ["body", "to"] => self.to.as_ref().map(|_| "--to"),
            ["body", "text"] => self.text.as_ref().map(|_| "--text"),
            ["body", "conversation_metadata", key] => self
                .metadata
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, _, by)| *by),
            ["header", "Idempotency-Key"] => {
                self.idempotency_key.as_ref().map(|_| "--idempotency-key")
            }
            _ => None,
        }
    }

    /// A validation error, told in terms of the flags and the file that supplied each field.
    fn explain(&self, e: &Error) -> Failure {
        if e.kind() != ErrorKind::Validation {
            return Failure::from_error(e);
        }
        let request = self.request_name();
        let mut parts = Vec::new();
        let mut json = Vec::new();
        for v in e.violations() {
            let flag = self.flag_for(v);
            let out = Violation::of(v, flag);
            let field = out.field.as_deref().unwrap_or_default();
            let msg = &out.message;
            parts.push(match (flag, &request) {
                (Some(flag), _) => format!("{flag}: {msg} ({field})"),
                (None, Some(name)) => match option_for(field) {
                    // Left out of the object: an option can fill it.
                    Some(opt) if v.code() == "missing" => {
                        format!("{name}: {field}: {msg} (or give {opt})")
                    }
                    _ => format!("{name}: {}", out.text()),
                },
                (None, None) => out.text(),
            });
            json.push(out.to_value());
        }
        let message = format!("invalid request, nothing was sent: {}", parts.join("; "));
        json.truncate(output::JSON_LIST_CAP);
        Failure::invalid(message, json)
    }
}

/// The flag a metadata entry came from, as a `'static` name.
fn meta_flag(by: &str) -> &'static str {
    match by {
        "--meta-int" => "--meta-int",
        "--meta-bool" => "--meta-bool",
        _ => "--meta",
    }
}

/// The option that can fill a body field the `--request` object lacks.
fn option_for(field: &str) -> Option<&'static str> {
    match field {
        "body.from" => Some("--from"),
        "body.to" => Some("--to"),
        _ => None,
    }
}

/// Reads and parses the `--request` object; `name` is how messages call it.
fn parse_request(name: &str, path: &str) -> Result<SendSmsRequest, Failure> {
    let text = args::read_text("--request", path, INPUT_CAP).map_err(Failure::usage)?;
    let invalid = |why: String| Failure::invalid(format!("{name}: {why}"), Vec::new());
    const EXAMPLE: &str = r#"{"from": "+15550001111", "to": "+15550002222", "text": "Hi"}"#;
    if text.trim().is_empty() {
        return Err(invalid(format!(
            "empty; expected a JSON object such as {EXAMPLE}"
        )));
    }
    // First as any JSON, to say what it is when it is not an object...
    let found = match serde_json::from_str::<Value>(&text) {
        Err(e) => {
            return Err(invalid(format!(
                "not valid JSON: {}",
                output::cut(&e.to_string(), DETAIL_CAP)
            )));
        }
        Ok(Value::Object(_)) => None,
        Ok(Value::Array(_)) => Some("an array"),
        Ok(Value::String(_)) => Some("a string"),
        Ok(Value::Number(_)) => Some("a number"),
        Ok(Value::Bool(_)) => Some("a boolean"),
        Ok(Value::Null) => Some("null"),
    };
    if let Some(found) = found {
        return Err(invalid(format!(
            "expected a JSON object such as {EXAMPLE}, found {found}"
        )));
    }
    // ...then as the request, whose errors carry line and column.
    serde_json::from_str(&text).map_err(|e| invalid(output::cut(&e.to_string(), DETAIL_CAP)))
}

/// Runs one `send`. After the SMS is sent nothing makes this fail: if stdout cannot take the
/// answer, a note goes to stderr and the exit is still 0, so that a wrapper that retries
/// failures cannot text the person twice.
pub fn run(a: &SendArgs) -> Result<(), Failure> {
    let req = a.build_request()?;
    if a.journal.is_some() && req.idempotency_key.is_none() {
        return Err(Failure::usage(
            "--journal needs --idempotency-key KEY (or an \"idempotency_key\" in the --request \
             file): the journal finds the send by its key (use one derived from your own event \
             id, the same on every run)",
        ));
    }
    let need = if a.dry_run {
        KeyNeed::PlaceholderIfNone
    } else {
        KeyNeed::Required
    };
    let client = a.client.client(need)?;
    let assistant_id = a.assistant_id.as_deref().unwrap_or_default();
    let prepared = client
        .prepare(assistant_id, &req)
        .map_err(|e| a.explain(&e))?;
    if a.dry_run {
        return output::write_stdout(&output::dry_run(&prepared, a.client.json))
            .map_err(Failure::stdout);
    }
    let res = match &a.journal {
        None => client
            .send_prepared(&prepared)
            .map_err(|e| Failure::from_error(&e))?,
        Some(path) => {
            let options = BatchOptions::new()
                .journal(path)
                .resend_in_doubt(a.resend_in_doubt);
            let r = client
                .send_journaled(assistant_id, &req, &options)
                .map_err(|e| a.explain(&e))?;
            match r.outcome {
                BatchOutcome::Sent(res) => {
                    if r.from_journal && !a.client.json {
                        output::stderr_line(&format!(
                            "telnyx-sms: note: an earlier run sent it (the journal {} says \
                             so): nothing was sent now",
                            Printable::new(path, ECHO_CAP)
                        ));
                    }
                    res
                }
                BatchOutcome::InDoubt { reason } => {
                    return Err(Failure::in_doubt(&r.idempotency_key, &reason, path));
                }
                BatchOutcome::Failed(e) => return Err(Failure::from_error(&e)),
                _ => {
                    return Err(Failure::config("an outcome this tool does not know"));
                }
            }
        }
    };
    let key = prepared.idempotency_key();
    if let Err(e) = output::write_stdout(&output::sent(&res, key, a.client.json)) {
        let id = res.conversation_id.as_deref().unwrap_or("none");
        output::stderr_line(&format!(
            "telnyx-sms: note: the sms was sent, but stdout could not take the answer ({e}); \
             conversation id: {}; idempotency key: {}",
            Printable::new(id, TEXT_CAP),
            key.unwrap_or("none")
        ));
    }
    Ok(())
}
