//! `telnyx-sms send-batch`: many SMS from a JSON Lines file, validated whole before the first
//! send, sent by the library's batch engine, one result line per input line, in input order.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use serde_json::{Value, json};
use telnyx_assistant_sms::{
    BatchOptions, BatchOutcome, BatchResult, Client, Error, ErrorKind, MAX_CONCURRENCY,
    SendSmsRequest,
};

use crate::args::{self, Arg, Args, ClientFlags, KeyNeed, once, once_switch, shown};
use crate::output::{self, DETAIL_CAP, Failure, JSON_LIST_CAP, JSON_STRING_CAP, cap};
use crate::progress::Progress;
use crate::{exit, logger};

/// The help lines of `send-batch`'s own options.
pub const HELP: &str = "\
SEND-BATCH OPTIONS:
    --assistant-id ID         the assistant that sends every line (required)
    --input FILE|-            JSON Lines: one request object per line, in the --request
                              shape (from, to, text, conversation_metadata,
                              should_create_conversation) plus an optional
                              \"idempotency_key\"; blank lines are skipped; at most
                              256 MiB (required)
    --from NUMBER             the sender for lines that leave \"from\" out; default: none
    --concurrency N           at most N sends in flight, 1 to 64; default: 4
    --rate PER_SECOND         at most this many attempts started per second, evenly
                              spaced (0.001 to 10000); default: no limit
    --key-prefix PREFIX       the prefix of the keys derived for lines without their own
                              key (up to 223 of A-Z a-z 0-9 _ -); use a new one (a date,
                              a job id) to send the same text to the same number again
                              within 24 hours; default: batch-
    --skip-invalid            send the valid lines and report the invalid ones as results;
                              default: any invalid line stops the batch before any send
    --dry-run                 check every line and print each one's key and request
                              (key redacted); send nothing; needs no API key

    Every line is read and checked before the first send. Each line's idempotency key is
    its own, or derived from the assistant id and the exact request (SHA-256), so the same
    input always gets the same keys: re-running the same command after a crash, a kill or
    a failed line sends each message at most once in total (the server replays what it
    already sent, for 24 hours). Two lines with the same key and request are one message:
    the later one is reported as a duplicate and not sent.

    Results go to stdout, one JSON object per input line, in input order, each as soon as
    every earlier line is done: {\"line\", \"result\": \"sent\"|\"failed\"|\"invalid\"|\"duplicate\",
    \"idempotency_key\", ...}. While stderr is a terminal (and no -v), a progress line shows
    on it; a one-line summary always ends stderr (a JSON object with --json).
";

/// The most an input file may hold.
const INPUT_CAP: u64 = 256 << 20;
/// `--rate` limits, per second.
const RATE_MIN: f64 = 0.001;
const RATE_MAX: f64 = 10_000.0;
/// The most bad lines reported on stderr (all of them are counted).
const REPORTED_CAP: usize = 100;

/// Whether `flag` belongs to `send-batch` (for the hint when it comes before the command).
pub fn accepts(flag: &str) -> bool {
    ClientFlags::accepts(flag)
        || matches!(
            flag,
            "--assistant-id"
                | "--input"
                | "--from"
                | "--concurrency"
                | "--rate"
                | "--key-prefix"
                | "--skip-invalid"
                | "--dry-run"
        )
}

/// The parsed options of one `send-batch`.
#[derive(Default)]
pub struct BatchArgs {
    assistant_id: Option<String>,
    input: Option<String>,
    from: Option<String>,
    concurrency: Option<u32>,
    rate: Option<f64>,
    key_prefix: Option<String>,
    skip_invalid: bool,
    dry_run: bool,
    pub client: ClientFlags,
}

/// `send-batch`'s options, or `None` when they ask for `--help`.
pub fn parse(args: &mut Args) -> Result<Option<BatchArgs>, Failure> {
    let mut a = BatchArgs::default();
    while let Some(arg) = args.next()? {
        let flag = match arg {
            Arg::Flag(f) => f,
            Arg::Positional(v) => {
                return Err(args::unexpected(&v, " (every value follows its option)"));
            }
        };
        let f = flag.as_str();
        match f {
            "--help" | "-h" => return Ok(None),
            "--assistant-id" => once(&mut a.assistant_id, f, args.value(f)?)?,
            "--input" => once(&mut a.input, f, args.value(f)?)?,
            "--from" => once(&mut a.from, f, args.value(f)?)?,
            "--concurrency" => {
                let n = args::count(f, &args.value(f)?, MAX_CONCURRENCY as u32)?;
                if n == 0 {
                    return Err(Failure::usage(format!(
                        "{f} 0: expected a whole number from 1 to {MAX_CONCURRENCY}"
                    )));
                }
                once(&mut a.concurrency, f, n)?;
            }
            "--rate" => {
                let v = args.value(f)?;
                let r = v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && (RATE_MIN..=RATE_MAX).contains(r))
                    .ok_or_else(|| {
                        Failure::usage(format!(
                            "{f} {}: expected a number of sends per second from {RATE_MIN} \
                             to {RATE_MAX}",
                            shown(&v)
                        ))
                    })?;
                once(&mut a.rate, f, r)?;
            }
            "--key-prefix" => once(&mut a.key_prefix, f, args.value(f)?)?,
            "--skip-invalid" => once_switch(&mut a.skip_invalid, f)?,
            "--dry-run" => once_switch(&mut a.dry_run, f)?,
            "--request" | "--to" | "--text" | "--idempotency-key" => {
                return Err(Failure::usage(format!(
                    "{f} is an option of 'send'; send-batch reads every request from --input"
                )));
            }
            _ => args::common_flag(f, &mut a.client, args)?,
        }
    }
    if a.assistant_id.is_none() {
        return Err(Failure::usage("missing --assistant-id"));
    }
    if a.input.is_none() {
        return Err(Failure::usage("missing --input FILE (or - for stdin)"));
    }
    Ok(Some(a))
}

/// One non-blank input line, checked.
struct Line {
    number: usize,
    /// The request and its key, or the violations that make the line invalid.
    checked: Result<(SendSmsRequest, String), Vec<Value>>,
}

impl BatchArgs {
    fn options(&self) -> BatchOptions {
        let mut o = BatchOptions::new();
        if let Some(n) = self.concurrency {
            o = o.concurrency(n as usize);
        }
        if let Some(r) = self.rate {
            o = o.rate_per_second(r);
        }
        if let Some(p) = &self.key_prefix {
            o = o.key_prefix(p.clone());
        }
        o
    }

    /// Reads and checks every line: parse, `--from`, the library's validation, the key.
    fn read_lines(&self, client: &Client, options: &BatchOptions) -> Result<Vec<Line>, Failure> {
        let path = self.input.as_deref().unwrap_or("-");
        let text = args::read_text("--input", path, INPUT_CAP).map_err(Failure::usage)?;
        let assistant_id = self.assistant_id.as_deref().unwrap_or_default();
        // Keys given twice with different requests: the server would refuse the later one.
        let mut given: HashMap<String, (usize, u64)> = HashMap::new();
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            let number = i + 1;
            let checked = self
                .parse_line(raw)
                .and_then(|req| check(client, options, assistant_id, req))
                .and_then(|(req, key, body)| {
                    if req.idempotency_key.is_none() {
                        return Ok((req, key));
                    }
                    match given.get(&key) {
                        Some(&(first, hash)) if hash != body => Err(vec![violation(
                            "header.Idempotency-Key",
                            &format!(
                                "is also the key of line {first}, with another request: the \
                                 server would refuse one of them"
                            ),
                            "duplicate_key",
                        )]),
                        Some(_) => Ok((req, key)),
                        None => {
                            given.insert(key.clone(), (number, body));
                            Ok((req, key))
                        }
                    }
                });
            lines.push(Line { number, checked });
        }
        Ok(lines)
    }

    /// One line as a request, `--from` filled in.
    fn parse_line(&self, raw: &str) -> Result<SendSmsRequest, Vec<Value>> {
        let bad = |msg: String, code: &str| vec![violation("", &msg, code)];
        let value: Value = serde_json::from_str(raw).map_err(|e| {
            bad(
                format!("not valid JSON: {}", cap(&e.to_string(), DETAIL_CAP)),
                "malformed",
            )
        })?;
        if !value.is_object() {
            return Err(bad(
                "expected a JSON object such as {\"to\": \"+15550002222\", \"text\": \"Hi\"}"
                    .to_owned(),
                "not_an_object",
            ));
        }
        let mut req: SendSmsRequest = serde_json::from_value(value)
            .map_err(|e| bad(cap(&e.to_string(), DETAIL_CAP), "invalid_field"))?;
        if req.from.is_empty() {
            if let Some(from) = &self.from {
                req.from.clone_from(from);
            }
        }
        Ok(req)
    }
}

/// The library's validation of one request, its key, and a hash of its body (to tell two
/// requests under one key apart).
fn check(
    client: &Client,
    options: &BatchOptions,
    assistant_id: &str,
    req: SendSmsRequest,
) -> Result<(SendSmsRequest, String, u64), Vec<Value>> {
    let prepared = client.prepare(assistant_id, &req).map_err(|e| {
        e.violations()
            .iter()
            .take(JSON_LIST_CAP)
            .map(|v| violation(&v.field(), v.message(), v.code()))
            .collect::<Vec<_>>()
    })?;
    let key = options
        .idempotency_key_for(assistant_id, &req)
        .map_err(|e| vec![violation("", &e.to_string(), "config")])?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    prepared.body().hash(&mut h);
    Ok((req, key, h.finish()))
}

fn violation(field: &str, message: &str, code: &str) -> Value {
    json!({
        "field": (!field.is_empty()).then(|| cap(field, JSON_STRING_CAP)),
        "message": cap(message, JSON_STRING_CAP),
        "code": code,
    })
}

/// `line N: field: message` for the text report of an invalid line.
fn describe(number: usize, violations: &[Value]) -> String {
    let parts: Vec<String> = violations
        .iter()
        .map(|v| {
            let msg = v.get("message").and_then(Value::as_str).unwrap_or_default();
            match v.get("field").and_then(Value::as_str) {
                Some(f) => format!("{f}: {msg}"),
                None => msg.to_owned(),
            }
        })
        .collect();
    format!("line {number}: {}", parts.join("; "))
}

/// The result object of a line that was not sent because it is invalid.
fn invalid_result(line: &Line, violations: &[Value]) -> Value {
    json!({
        "line": line.number,
        "result": "invalid",
        "idempotency_key": Value::Null,
        "violations": violations,
    })
}

/// The result object of a line the engine settled.
fn result_of(number: usize, r: BatchResult, line_of: &[usize]) -> Value {
    let key = r.idempotency_key;
    match r.outcome {
        BatchOutcome::Sent(res) => json!({
            "line": number,
            "result": "sent",
            "idempotency_key": key,
            "conversation_id": res.conversation_id.map(|s| cap(&s, JSON_STRING_CAP)),
            "request_id": res.request_id.map(|s| cap(&s, JSON_STRING_CAP)),
            "attempts": res.attempts,
        }),
        BatchOutcome::Failed(e) => failed_result(number, &key, &e),
        BatchOutcome::Duplicate { of } => json!({
            "line": number,
            "result": "duplicate",
            "idempotency_key": key,
            "of_line": line_of.get(of),
        }),
        _ => json!({"line": number, "result": "failed", "idempotency_key": key,
                    "kind": "other", "message": "an outcome this tool does not know"}),
    }
}

fn failed_result(number: usize, key: &str, e: &Error) -> Value {
    let kind = match e.kind() {
        ErrorKind::Config => "config",
        ErrorKind::Validation => "validation",
        ErrorKind::Api => "api",
        ErrorKind::Transport => "transport",
        ErrorKind::Decode => "decode",
        _ => "other",
    };
    json!({
        "line": number,
        "result": "failed",
        "idempotency_key": key,
        "kind": kind,
        "status": e.status(),
        "message": cap(&e.to_string(), JSON_STRING_CAP),
        "request_id": e.request_id().map(|s| cap(s, JSON_STRING_CAP)),
        "attempts": e.attempts(),
        "may_have_been_sent": e.may_have_been_sent(),
    })
}

/// Prints result objects in input order: each as soon as every earlier one is known.
struct InOrder {
    next: usize,
    waiting: BTreeMap<usize, Value>,
    /// Set once stdout could not take a line; later lines are not tried.
    broken: Option<std::io::Error>,
}

impl InOrder {
    fn put(&mut self, position: usize, result: Value) {
        self.waiting.insert(position, result);
        while let Some(v) = self.waiting.remove(&self.next) {
            self.next += 1;
            if self.broken.is_none() {
                if let Err(e) = output::write_stdout(&(output::json_line(&v) + "\n")) {
                    self.broken = Some(e);
                }
            }
        }
    }
}

/// Counts for the summary line.
#[derive(Default)]
struct Tally {
    sent: usize,
    duplicate: usize,
    failed: usize,
    invalid: usize,
}

impl Tally {
    fn count(&mut self, result: &Value) {
        match result.get("result").and_then(Value::as_str) {
            Some("sent") => self.sent += 1,
            Some("duplicate") => self.duplicate += 1,
            Some("invalid") => self.invalid += 1,
            _ => self.failed += 1,
        }
    }
}

/// Runs one `send-batch`.
pub fn run(a: &BatchArgs) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    let need = if a.dry_run {
        KeyNeed::PlaceholderIfNone
    } else {
        KeyNeed::Required
    };
    let client = a.client.client(need)?;
    let options = a.options();
    options.check().map_err(|e| Failure::from_error(&e))?;
    let assistant_id = a.assistant_id.as_deref().unwrap_or_default();
    // An assistant id that breaks a rule breaks every line: said once.
    client
        .prepare(assistant_id, &SendSmsRequest::new("+1", "+1"))
        .map_err(|e| Failure::from_error(&e).with_text(format!("--assistant-id: {e}")))?;
    let lines = a.read_lines(&client, &options)?;
    let bad: Vec<(&Line, &Vec<Value>)> = lines
        .iter()
        .filter_map(|l| l.checked.as_ref().err().map(|v| (l, v)))
        .collect();
    if !bad.is_empty() && !a.skip_invalid {
        return Err(invalid_input(&bad, lines.len(), a.client.json));
    }

    let mut order = InOrder {
        next: 0,
        waiting: BTreeMap::new(),
        broken: None,
    };
    let mut tally = Tally::default();
    // Invalid lines are settled at once; the valid ones go to the engine, which numbers
    // them from 0: `positions[i]` is the i-th valid line's place among all lines.
    let mut positions = Vec::new();
    let mut requests = Vec::new();
    let mut line_of = Vec::new();
    for (pos, line) in lines.iter().enumerate() {
        match &line.checked {
            Err(v) => {
                let r = invalid_result(line, v);
                tally.count(&r);
                order.put(pos, r);
            }
            Ok((req, key)) if a.dry_run => {
                let r = dry_run_result(&client, assistant_id, line.number, req, key);
                order.put(pos, r);
            }
            Ok((req, _)) => {
                positions.push(pos);
                line_of.push(line.number);
                requests.push(req.clone());
            }
        }
    }
    if !a.dry_run {
        logger::set_batch_lines(line_of.clone());
        let mut progress = Progress::start(lines.len(), tally.invalid, logger::is_on());
        client
            .send_batch(assistant_id, requests, &options, |r| {
                let pos = positions.get(r.index).copied().unwrap_or(usize::MAX);
                let number = line_of.get(r.index).copied().unwrap_or_default();
                let result = result_of(number, r, &line_of);
                tally.count(&result);
                progress.update(tally.sent + tally.duplicate, tally.failed);
                order.put(pos, result);
            })
            .map_err(|e| Failure::from_error(&e))?;
        progress.finish();
    }
    if let Some(e) = &order.broken {
        output::stderr_line(&format!(
            "telnyx-sms: note: stdout could not take the results ({e}); the batch ran to its \
             end regardless: run the same command again to see them (nothing is sent twice)"
        ));
    }
    summary(
        &tally,
        lines.len(),
        started.elapsed(),
        a.dry_run,
        a.client.json,
    );
    let clean_run = tally.failed == 0 && tally.invalid == 0;
    if clean_run {
        Ok(())
    } else {
        Err(Failure::silent(exit::BATCH))
    }
}

/// A dry run's line: the key and the request as it would go out.
fn dry_run_result(
    client: &Client,
    assistant_id: &str,
    number: usize,
    req: &SendSmsRequest,
    key: &str,
) -> Value {
    let mut req = req.clone();
    req.idempotency_key = Some(key.to_owned());
    match client.prepare(assistant_id, &req) {
        Ok(p) => {
            let body: Value = serde_json::from_slice(p.body()).unwrap_or(Value::Null);
            json!({
                "line": number,
                "result": "dry-run",
                "idempotency_key": key,
                "method": p.method(),
                "url": p.url(),
                "body": body,
            })
        }
        // Checked already; kept for completeness.
        Err(e) => failed_result(number, key, &e),
    }
}

/// The error for input with invalid lines (without `--skip-invalid`): every bad line on
/// stderr (up to 100 of them), then the failure.
fn invalid_input(bad: &[(&Line, &Vec<Value>)], total: usize, as_json: bool) -> Failure {
    let message = format!(
        "{} of {total} lines are invalid, so nothing was sent (--skip-invalid sends the valid \
         lines and reports the invalid ones)",
        bad.len()
    );
    let mut violations = Vec::new();
    for (line, vs) in bad.iter().take(REPORTED_CAP) {
        if !as_json {
            output::stderr_line(&format!("telnyx-sms: {}", describe(line.number, vs)));
        }
        for v in vs.iter() {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.insert("line".into(), json!(line.number));
            }
            violations.push(v);
        }
    }
    if bad.len() > REPORTED_CAP && !as_json {
        output::stderr_line(&format!(
            "telnyx-sms: and {} more invalid lines",
            bad.len() - REPORTED_CAP
        ));
    }
    violations.truncate(JSON_LIST_CAP);
    Failure::invalid(message, violations)
}

/// The last line on stderr: `400 lines: 398 sent, 1 failed, 1 invalid in 12.3 s`.
fn summary(t: &Tally, lines: usize, took: std::time::Duration, dry_run: bool, as_json: bool) {
    let secs = (took.as_secs_f64() * 10.0).round() / 10.0;
    if as_json {
        let v = json!({"summary": {
            "lines": lines, "sent": t.sent, "duplicate": t.duplicate, "failed": t.failed,
            "invalid": t.invalid, "seconds": secs, "dry_run": dry_run,
        }});
        output::write_stderr(&output::json_line(&v));
        return;
    }
    let mut parts = Vec::new();
    if dry_run {
        parts.push(format!("{} checked", lines - t.invalid));
    } else {
        parts.push(format!("{} sent", t.sent));
        if t.duplicate > 0 {
            parts.push(format!("{} duplicate", t.duplicate));
        }
        parts.push(format!("{} failed", t.failed));
    }
    parts.push(format!("{} invalid", t.invalid));
    let dry = if dry_run {
        " (dry run: nothing sent)"
    } else {
        ""
    };
    output::stderr_line(&format!(
        "{lines} lines: {} in {secs:.1} s{dry}",
        parts.join(", ")
    ));
}
