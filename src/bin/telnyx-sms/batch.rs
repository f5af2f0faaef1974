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

/// The non-blank lines of the input, numbered from 1 as in the file.
fn numbered(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
}

/// Whether a line's object has a `"from"` member at all (an empty one is not filled in).
#[derive(serde::Deserialize)]
struct FromProbe {
    #[serde(default)]
    from: Option<serde::de::IgnoredAny>,
}

/// 128 bits of a key, to compare keys without keeping them (two std hashes, seeded apart).
fn key_bits(key: &str) -> (u64, u64) {
    let hash = |seed: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    };
    (hash(1), hash(2))
}

fn body_hash(body: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    h.finish()
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

    /// One line as a request (`--from` filled in where the line has no `"from"`), checked
    /// by the library, with its key and a hash of its body.
    fn check_line(
        &self,
        client: &Client,
        options: &BatchOptions,
        raw: &str,
    ) -> Result<(SendSmsRequest, String, u64), Vec<Value>> {
        let mut req = self.parse_line(raw)?;
        let assistant_id = self.assistant_id.as_deref().unwrap_or_default();
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
        req.idempotency_key = Some(key.clone());
        Ok((req, key, body_hash(prepared.body())))
    }

    /// One line as a request, `--from` filled in if the line has no `"from"` at all. Read
    /// straight into the request type, so a repeated field or an unknown one is an error.
    fn parse_line(&self, raw: &str) -> Result<SendSmsRequest, Vec<Value>> {
        let bad = |msg: String, code: &str| vec![violation("", &msg, code)];
        let mut req: SendSmsRequest = serde_json::from_str(raw).map_err(|e| {
            // Say what the line is when it is not a request object at all.
            match serde_json::from_str::<Value>(raw) {
                Err(e) => bad(
                    format!("not valid JSON: {}", cap(&e.to_string(), DETAIL_CAP)),
                    "malformed",
                ),
                Ok(v) if !v.is_object() => bad(
                    "expected a JSON object such as {\"to\": \"+15550002222\", \"text\": \"Hi\"}"
                        .to_owned(),
                    "not_an_object",
                ),
                Ok(_) => bad(cap(&e.to_string(), DETAIL_CAP), "invalid_field"),
            }
        })?;
        if let Some(from) = &self.from {
            let has_from = serde_json::from_str::<FromProbe>(raw).is_ok_and(|p| p.from.is_some());
            if !has_from {
                req.from.clone_from(from);
            }
        }
        Ok(req)
    }

    /// Checks every line before anything is sent. Nothing of a valid line is kept (the sends
    /// read the input again); of the invalid ones, the first [`REPORTED_CAP`] with their
    /// violations, the number of all, and the few that only this pass can tell: a key given
    /// on one line and given or derived on another, with another request (the server would
    /// refuse the later one).
    fn check_all(&self, client: &Client, options: &BatchOptions, text: &str) -> Survey {
        let mut survey = Survey::default();
        // The keys lines give themselves (usually none): key -> (line, body).
        let mut given: HashMap<(u64, u64), (usize, u64)> = HashMap::new();
        let mut conflicts: Vec<(usize, usize)> = Vec::new();
        let mut derived_lines = false;
        for (number, raw) in numbered(text) {
            survey.total += 1;
            match self.check_line(client, options, raw) {
                Err(v) => survey.note_bad(number, v),
                Ok((_, key, body)) if req_gave_key(raw) => match given.get(&key_bits(&key)) {
                    Some(&(first, b)) if b != body => conflicts.push((number, first)),
                    Some(_) => {}
                    None => {
                        given.insert(key_bits(&key), (number, body));
                    }
                },
                Ok(_) => derived_lines = true,
            }
        }
        // A derived key can collide only with a given one: look again only if there are both.
        if !given.is_empty() && derived_lines {
            for (number, raw) in numbered(text) {
                if req_gave_key(raw) {
                    continue;
                }
                if let Ok((_, key, body)) = self.check_line(client, options, raw) {
                    if let Some(&(first, b)) = given.get(&key_bits(&key)) {
                        if b != body {
                            // The later of the two lines is the one the server would refuse.
                            conflicts.push((number.max(first), number.min(first)));
                        }
                    }
                }
            }
        }
        conflicts.sort_unstable();
        conflicts.dedup_by_key(|c| c.0);
        for (line, other) in conflicts {
            let v = vec![violation(
                "header.Idempotency-Key",
                &format!(
                    "is also the key of line {other}, with another request: the server would \
                     refuse one of them"
                ),
                "duplicate_key",
            )];
            survey.note_bad(line, v.clone());
            survey.conflicts.insert(line, v);
        }
        survey.first_bad.sort_by_key(|(n, _)| *n);
        survey
    }
}

/// What checking every line found.
#[derive(Default)]
struct Survey {
    /// Non-blank lines.
    total: usize,
    /// Invalid lines, all of them.
    bad: usize,
    /// The first invalid lines, with their violations (for the report).
    first_bad: Vec<(usize, Vec<Value>)>,
    /// Lines invalid only for their key (a second look at the line would not say so).
    conflicts: HashMap<usize, Vec<Value>>,
}

impl Survey {
    fn note_bad(&mut self, number: usize, violations: Vec<Value>) {
        self.bad += 1;
        if self.first_bad.len() < REPORTED_CAP {
            self.first_bad.push((number, violations));
        }
    }
}

/// Whether a line gives its own `idempotency_key` (not null).
fn req_gave_key(raw: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct KeyProbe {
        #[serde(default)]
        idempotency_key: Option<String>,
    }
    serde_json::from_str::<KeyProbe>(raw).is_ok_and(|p| p.idempotency_key.is_some())
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
fn invalid_result(number: usize, violations: &[Value]) -> Value {
    json!({
        "line": number,
        "result": "invalid",
        "idempotency_key": Value::Null,
        "violations": violations,
    })
}

/// The result object of a line the engine settled; `line_of` gives the line of another
/// request (for a duplicate).
fn result_of(number: usize, r: BatchResult, line_of: impl Fn(usize) -> Option<usize>) -> Value {
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
            "of_line": line_of(of),
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

/// What the sends share: the results waiting for their turn, the counts, the progress line,
/// and where each request the engine numbers came from (its line, its place in the output).
struct Shared {
    order: InOrder,
    tally: Tally,
    progress: Progress,
    /// For the engine's request `i`: (input line, place among the non-blank lines).
    slots: Vec<(u32, u32)>,
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
    options.validate().map_err(|e| Failure::from_error(&e))?;
    let assistant_id = a.assistant_id.as_deref().unwrap_or_default();
    // An assistant id that breaks a rule breaks every line: said once.
    client
        .prepare(assistant_id, &SendSmsRequest::new("+1", "+1"))
        .map_err(|e| Failure::from_error(&e).with_text(format!("--assistant-id: {e}")))?;
    let path = a.input.as_deref().unwrap_or("-");
    let text = args::read_text("--input", path, INPUT_CAP).map_err(Failure::usage)?;
    let survey = a.check_all(&client, &options, &text);
    if survey.bad > 0 && !a.skip_invalid {
        return Err(invalid_input(&survey, a.client.json));
    }
    // Invalid lines are only possible with --skip-invalid from here on.
    let shared = std::sync::Arc::new(std::sync::Mutex::new(Shared {
        order: InOrder {
            next: 0,
            waiting: BTreeMap::new(),
            broken: None,
        },
        tally: Tally::default(),
        progress: Progress::start(survey.total, survey.bad, logger::is_on()),
        slots: Vec::new(),
    }));
    let lock = || shared.lock().unwrap_or_else(|p| p.into_inner());
    // The second reading of the input: each valid line to the engine, as it asks for the
    // next (so no more of it is held than the workers need); each invalid one straight to
    // the output, in its place.
    let requests = numbered(&text)
        .enumerate()
        .filter_map(|(pos, (number, raw))| {
            let checked = match survey.conflicts.get(&number) {
                Some(v) => Err(v.clone()),
                None => a.check_line(&client, &options, raw),
            };
            match checked {
                Err(v) => {
                    let mut s = lock();
                    let r = invalid_result(number, &v);
                    s.tally.count(&r);
                    s.order.put(pos, r);
                    None
                }
                Ok((req, key, _)) if a.dry_run => {
                    let r = dry_run_result(&client, assistant_id, number, &req, &key);
                    lock().order.put(pos, r);
                    None
                }
                Ok((req, _, _)) => {
                    let slot = (
                        u32::try_from(number).unwrap_or(u32::MAX),
                        u32::try_from(pos).unwrap_or(u32::MAX),
                    );
                    lock().slots.push(slot);
                    Some(req)
                }
            }
        });
    if a.dry_run {
        // Nothing to send: reading through the input prints each line's request.
        requests.for_each(drop);
    } else {
        logger::set_batch_lines(Box::new({
            let shared = shared.clone();
            move |i| {
                let s = shared.lock().unwrap_or_else(|p| p.into_inner());
                s.slots.get(i).map(|(line, _)| *line as usize)
            }
        }));
        client
            .send_batch(assistant_id, requests, &options, |r| {
                let mut s = lock();
                let (number, pos) = s.slots.get(r.index).copied().unwrap_or((0, u32::MAX));
                let result = {
                    let slots = &s.slots;
                    result_of(number as usize, r, |i| {
                        slots.get(i).map(|(line, _)| *line as usize)
                    })
                };
                s.tally.count(&result);
                let (sent, failed) = (s.tally.sent + s.tally.duplicate, s.tally.failed);
                s.progress.update(sent, failed);
                s.order.put(pos as usize, result);
            })
            .map_err(|e| Failure::from_error(&e))?;
        logger::clear_batch_lines();
        lock().progress.finish();
    }
    let mut s = lock();
    let broken = s.order.broken.take();
    let tally = std::mem::take(&mut s.tally);
    drop(s);
    let s = (broken, tally);
    let (broken, tally) = s;
    if let Some(e) = broken {
        if a.dry_run {
            return Err(Failure::stdout(e));
        }
        output::stderr_line(&format!(
            "telnyx-sms: note: stdout could not take the results ({e}); the batch ran to its \
             end regardless: run the same command again to see them (nothing is sent twice)"
        ));
    }
    summary(
        &tally,
        survey.total,
        started.elapsed(),
        a.dry_run,
        a.client.json,
    );
    if tally.failed == 0 && tally.invalid == 0 {
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
    match client.prepare(assistant_id, req) {
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

/// The error for input with invalid lines (without `--skip-invalid`): the first 100 bad
/// lines on stderr, then the failure.
fn invalid_input(survey: &Survey, as_json: bool) -> Failure {
    let message = format!(
        "{} of {} lines are invalid, so nothing was sent (--skip-invalid sends the valid \
         lines and reports the invalid ones)",
        survey.bad, survey.total
    );
    let mut violations = Vec::new();
    for (number, vs) in &survey.first_bad {
        if !as_json {
            output::stderr_line(&format!("telnyx-sms: {}", describe(*number, vs)));
        }
        for v in vs {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.insert("line".into(), json!(number));
            }
            violations.push(v);
        }
    }
    if survey.bad > survey.first_bad.len() && !as_json {
        output::stderr_line(&format!(
            "telnyx-sms: and {} more invalid lines",
            survey.bad - survey.first_bad.len()
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
