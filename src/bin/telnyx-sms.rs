//! `telnyx-sms`: send one assistant SMS from a shell script or a cron job.
//!
//! Built with `--features cli`. See `telnyx-sms --help` and the README's "Command line".

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use lexopt::prelude::*;
use serde_json::{Value, json};
use telnyx_assistant_sms::{
    ClientBuilder, Error, ErrorKind, MetadataValue, PreparedSend, SendSmsRequest,
};

const HELP: &str = "\
telnyx-sms: send one SMS through a Telnyx AI assistant (Assistant SMS Chat)

USAGE:
    telnyx-sms send --assistant-id ID --from NUMBER --to NUMBER [OPTIONS]
    telnyx-sms --help | --version

SEND OPTIONS:
    --assistant-id ID        the assistant that sends (required)
    --from NUMBER            your Telnyx number (required unless in --request)
    --to NUMBER              the recipient (required unless in --request)
    --text TEXT              the message; default: none, so the assistant sends its
                             greeting (first message) or writes the text itself
    --meta KEY=VALUE         conversation metadata, always a string (02134 stays \"02134\");
                             repeatable; default: none
    --meta-int KEY=N         metadata as an integer (i64); repeatable
    --meta-bool KEY=BOOL     metadata as a boolean, true or false; repeatable
    --create-conversation    create a new conversation first; default: server's default
    --request FILE|-         read the whole request as JSON from FILE or stdin; the flags
                             above override its fields
    --idempotency-key KEY    your own key (1-255 of A-Z a-z 0-9 _ -): re-running with the same
                             key cannot send twice; default: a fresh random key per run
    --api-key-file FILE      read the API key from FILE; default: $TELNYX_API_KEY
    --base-url URL           default: $TELNYX_BASE_URL, else https://api.telnyx.com/v2
    --timeout SECONDS        the most one attempt may take; default: 60
    --max-retries N          retries of failures that cannot double-send; default: 2
    --json                   print {\"conversation_id\", \"request_id\"} on success, and errors
                             as a JSON object on stderr; default: off
    --dry-run                validate and print the exact HTTP request (key redacted);
                             send nothing; default: off

ENVIRONMENT:
    TELNYX_API_KEY           the API key (never pass it as a flag: it would show in ps)
    TELNYX_BASE_URL          the API base URL
    HTTPS_PROXY, ALL_PROXY, NO_PROXY
                             proxy settings, read as curl reads them

OUTPUT:
    On success the conversation id alone on stdout (an empty line if the server sent none),
    so id=$(telnyx-sms send ...) works. Errors go to stderr as one line.

EXIT CODES:
    0  sent
    2  usage, configuration or validation error: nothing was sent
    3  the API refused it (HTTP status >= 400)
    4  transport failure (DNS, connect, TLS, timeout): the message says whether the SMS
       may have been sent
    1  anything else (such as an unreadable answer to an accepted request)
";

/// How the process ends when something goes wrong.
struct Failure {
    code: u8,
    message: String,
    /// The `--json` form of the error.
    json: Value,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        let message = message.into();
        Failure {
            code: 2,
            json: json!({"error": {"kind": "usage", "message": message}}),
            message: format!("{message}; see 'telnyx-sms --help'"),
        }
    }

    fn from_error(e: &Error) -> Failure {
        let (code, kind) = match e.kind() {
            ErrorKind::Config => (2, "config"),
            ErrorKind::Validation => (2, "validation"),
            ErrorKind::Api => (3, "api"),
            ErrorKind::Transport => (4, "transport"),
            ErrorKind::Decode => (1, "decode"),
            _ => (1, "other"),
        };
        let errors: Vec<Value> = e
            .api_errors()
            .iter()
            .map(|a| {
                json!({"code": a.code(), "title": a.title(), "detail": a.detail(),
                       "pointer": a.pointer(), "meta": a.meta()})
            })
            .collect();
        let violations: Vec<Value> = e
            .violations()
            .iter()
            .map(|v| json!({"loc": v.path(), "msg": v.message(), "type": v.code()}))
            .collect();
        Failure {
            code,
            message: e.to_string(),
            json: json!({"error": {
                "kind": kind,
                "message": e.to_string(),
                "status": e.status(),
                "request_id": e.request_id(),
                "errors": errors,
                "violations": violations,
                "attempts": e.attempts(),
                "idempotency_key": e.idempotency_key(),
                "may_have_been_sent": e.may_have_been_sent(),
                "retry_after_seconds": e.retry_after().map(|d| d.as_secs_f64()),
            }}),
        }
    }
}

#[derive(Default)]
struct SendArgs {
    assistant_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    text: Option<String>,
    metadata: Vec<(String, MetadataValue)>,
    create_conversation: bool,
    request: Option<String>,
    idempotency_key: Option<String>,
    api_key_file: Option<String>,
    base_url: Option<String>,
    timeout: Option<Duration>,
    max_retries: Option<u32>,
    json: bool,
    dry_run: bool,
}

fn main() -> ExitCode {
    // Decided before parsing, so that usage errors are JSON too when --json was given.
    let json_errors = std::env::args().any(|a| a == "--json");
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if json_errors {
                eprintln!("{}", f.json);
            } else {
                eprintln!("telnyx-sms: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

fn run() -> Result<(), Failure> {
    let mut parser = lexopt::Parser::from_env();
    match parser.next().map_err(|e| Failure::usage(e.to_string()))? {
        Some(Long("help") | Short('h')) => {
            print!("{HELP}");
            Ok(())
        }
        Some(Long("version") | Short('V')) => {
            println!("telnyx-sms {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(Value(cmd)) if cmd == "send" => match parse_send(&mut parser)? {
            Some(args) => send(args),
            None => {
                print!("{HELP}");
                Ok(())
            }
        },
        Some(Value(cmd)) => Err(Failure::usage(format!(
            "unknown command '{}'",
            cmd.to_string_lossy()
        ))),
        Some(other) => Err(Failure::usage(other.unexpected().to_string())),
        None => Err(Failure::usage("missing command 'send'")),
    }
}

/// The arguments of `send`, or `None` when they ask for `--help`.
fn parse_send(parser: &mut lexopt::Parser) -> Result<Option<SendArgs>, Failure> {
    let mut a = SendArgs::default();
    while let Some(arg) = parser.next().map_err(|e| Failure::usage(e.to_string()))? {
        let flag = match arg {
            Long(l) => format!("--{l}"),
            Short(s) => format!("-{s}"),
            Value(v) => {
                return Err(Failure::usage(format!(
                    "unexpected argument '{}'",
                    v.to_string_lossy()
                )));
            }
        };
        let mut value = || -> Result<String, Failure> {
            let v = parser
                .value()
                .map_err(|_| Failure::usage(format!("{flag} needs a value")))?;
            v.into_string()
                .map_err(|_| Failure::usage(format!("the value of {flag} is not valid unicode")))
        };
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--assistant-id" => a.assistant_id = Some(value()?),
            "--from" => a.from = Some(value()?),
            "--to" => a.to = Some(value()?),
            "--text" => a.text = Some(value()?),
            "--meta" => {
                let (k, v) = key_value(&flag, &value()?)?;
                a.metadata.push((k, MetadataValue::String(v)));
            }
            "--meta-int" => {
                let (k, v) = key_value(&flag, &value()?)?;
                let n = v.parse::<i64>().map_err(|_| {
                    Failure::usage(format!("{flag} {k}={v}: '{v}' is not an integer (i64)"))
                })?;
                a.metadata.push((k, MetadataValue::Integer(n)));
            }
            "--meta-bool" => {
                let (k, v) = key_value(&flag, &value()?)?;
                let b = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(Failure::usage(format!(
                            "{flag} {k}={v}: expected true or false"
                        )));
                    }
                };
                a.metadata.push((k, MetadataValue::Boolean(b)));
            }
            "--create-conversation" => a.create_conversation = true,
            "--request" => a.request = Some(value()?),
            "--idempotency-key" => a.idempotency_key = Some(value()?),
            "--api-key-file" => a.api_key_file = Some(value()?),
            "--base-url" => a.base_url = Some(value()?),
            "--timeout" => {
                let v = value()?;
                let secs = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
                    .ok_or_else(|| {
                        Failure::usage(format!(
                            "{flag} {v}: expected a number of seconds above 0 (at most 86400)"
                        ))
                    })?;
                a.timeout = Some(Duration::from_secs_f64(secs));
            }
            "--max-retries" => {
                let v = value()?;
                a.max_retries = Some(v.parse().map_err(|_| {
                    Failure::usage(format!("{flag} {v}: expected a whole number, 0 or more"))
                })?);
            }
            "--json" => a.json = true,
            "--dry-run" => a.dry_run = true,
            "--api-key" => {
                return Err(Failure::usage(
                    "there is no --api-key: a key on the command line shows in ps and shell \
                     history; set TELNYX_API_KEY or use --api-key-file FILE",
                ));
            }
            _ => return Err(Failure::usage(format!("unknown option '{flag}'"))),
        }
    }
    if a.assistant_id.is_none() {
        return Err(Failure::usage("missing --assistant-id"));
    }
    if a.request.is_none() {
        if a.from.is_none() {
            return Err(Failure::usage(
                "missing --from (or a --request file with \"from\")",
            ));
        }
        if a.to.is_none() {
            return Err(Failure::usage(
                "missing --to (or a --request file with \"to\")",
            ));
        }
    }
    Ok(Some(a))
}

fn key_value(flag: &str, s: &str) -> Result<(String, String), Failure> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| Failure::usage(format!("{flag} {s}: expected KEY=VALUE")))
}

fn read_source(path: &str) -> Result<String, String> {
    if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
    }
}

fn build_request(a: &mut SendArgs) -> Result<SendSmsRequest, Failure> {
    let mut req = match &a.request {
        Some(path) => {
            let text = read_source(path).map_err(Failure::usage)?;
            let name = if path == "-" { "stdin" } else { path.as_str() };
            serde_json::from_str::<SendSmsRequest>(&text).map_err(|e| {
                let mut f = Failure::usage(format!("--request {name}: {e}"));
                f.json["error"]["kind"] = "validation".into();
                f
            })?
        }
        None => SendSmsRequest::new("", ""),
    };
    if let Some(v) = a.from.take() {
        req.from = v;
    }
    if let Some(v) = a.to.take() {
        req.to = v;
    }
    if let Some(v) = a.text.take() {
        req.text = Some(v);
    }
    for (k, v) in a.metadata.drain(..) {
        req.conversation_metadata.insert(k, v);
    }
    if a.create_conversation {
        req.should_create_conversation = Some(true);
    }
    if let Some(k) = a.idempotency_key.take() {
        req.idempotency_key = Some(k);
    }
    Ok(req)
}

fn send(mut a: SendArgs) -> Result<(), Failure> {
    let req = build_request(&mut a)?;
    let mut builder = ClientBuilder::from_env();
    if let Some(path) = &a.api_key_file {
        let key = std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("--api-key-file: cannot read {path}: {e}")))?;
        // A key file usually ends with a newline; inner whitespace is still refused.
        builder = builder.api_key(key.trim());
    }
    if let Some(url) = &a.base_url {
        builder = builder.base_url(url);
    }
    if let Some(t) = a.timeout {
        builder = builder.timeout(t);
    }
    if let Some(n) = a.max_retries {
        builder = builder.max_retries(n);
    }
    let client = builder.build().map_err(|e| Failure::from_error(&e))?;
    let assistant_id = a.assistant_id.as_deref().unwrap_or_default();
    let prepared = client
        .prepare(assistant_id, &req)
        .map_err(|e| Failure::from_error(&e))?;
    if a.dry_run {
        print_dry_run(&prepared, a.json);
        return Ok(());
    }
    let res = client
        .send_prepared(&prepared)
        .map_err(|e| Failure::from_error(&e))?;
    if a.json {
        println!(
            "{}",
            json!({"conversation_id": res.conversation_id, "request_id": res.request_id})
        );
    } else {
        println!("{}", res.conversation_id.as_deref().unwrap_or(""));
    }
    Ok(())
}

fn print_dry_run(p: &PreparedSend, as_json: bool) {
    let body = String::from_utf8_lossy(p.body());
    if as_json {
        let headers: serde_json::Map<String, Value> = p
            .headers()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v)))
            .collect();
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        println!(
            "{}",
            json!({"method": p.method(), "url": p.url(), "headers": headers, "body": body})
        );
    } else {
        println!("{} {}", p.method(), p.url());
        for (k, v) in p.headers() {
            println!("{k}: {v}");
        }
        println!();
        println!("{body}");
    }
}
