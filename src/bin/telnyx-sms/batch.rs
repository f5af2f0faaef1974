//! `telnyx-sms send-batch`: many SMS from a JSON Lines file, validated whole before the first
//! send, sent by the library's batch engine, one result line per input line, in input order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use serde_json::value::RawValue;
use serde_json::{Value, json};
use telnyx_assistant_sms::{
    BatchOptions, BatchOutcome, BatchResult, Client, Error, ErrorKind, MAX_CONCURRENCY,
    SendSmsRequest,
};

use crate::args::{self, Arg, Args, ClientFlags, KeyNeed, once, once_switch, shown};
use crate::output::{
    self, DETAIL_CAP, EMPTY, Failure, JSON_LIST_CAP, JSON_STRING_CAP, JsonObject, Violation, cap,
};
use crate::progress::Progress;
use crate::{exit, logger};

/// The help lines of `send-batch`'s own options.
pub const HELP: &str = "\
SEND-BATCH OPTIONS:
    --assistant-id ID         the assistant that sends every line (required)
    --input FILE|-            JSON Lines: one request object per line, in the --request
                              shape (from, to, text, conversation_metadata,
                              should_create_conversation) plus an optional
                              \"idempotency_key\"; blank lines are skipped, and a
                              byte-order mark starting a line is dropped; at most
                              256 MiB (required)
    --from NUMBER             the sender for lines that leave \"from\" out; default: none,
                              so every line needs its own
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
    \"idempotency_key\", ...}, always in that order (an invalid line's key is the one it
    gave, if any). While stderr is a terminal (and no -v), a progress line shows on it; a
    one-line summary always ends stderr (a JSON object with --json).
";

/// The most an input file may hold.
const INPUT_CAP: u64 = 256 << 20;
/// `--rate` limits, per second.
const RATE_MIN: f64 = 0.001;
const RATE_MAX: f64 = 10_000.0;
/// The most bad lines reported on stderr (all of them are counted).
const REPORTED_CAP: usize = 100;

/// `send-batch`'s own options (the connection and output ones are [`args::CLIENT_FLAGS`]).
pub const FLAGS: &[&str] = &[
    "--assistant-id",
    "--input",
    "--from",
    "--concurrency",
    "--rate",
    "--key-prefix",
    "--skip-invalid",
    "--dry-run",
];

/// Whether `flag` belongs to `send-batch` (for the hint when it comes before the command).
pub fn accepts(flag: &str) -> bool {
    ClientFlags::accepts(flag) || FLAGS.contains(&flag)
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
            _ => args::common_flag(f, FLAGS, &mut a.client, args)?,
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

/// The byte-order mark a Windows editor puts first in a file. `read_text` drops the one
/// that starts the input; one that starts a later line (two files joined with `cat`) is
/// dropped too.
const BOM: char = '\u{FEFF}';

/// The non-blank lines of the input, numbered from 1 as in the file, each without a leading
/// byte-order mark.
fn numbered(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .map(|l| l.strip_prefix(BOM).unwrap_or(l))
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
}

/// The top-level fields a line's object has (given, even if empty); none if it is not one.
fn fields_of(raw: &str) -> BTreeSet<String> {
    serde_json::from_str::<BTreeMap<String, serde::de::IgnoredAny>>(raw)
        .map(|m| m.into_keys().collect())
        .unwrap_or_default()
}

/// The `idempotency_key` a line gives itself (a string), if any: reported with the line's
/// result even when the line is invalid.
fn given_key(raw: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct KeyProbe {
        #[serde(default)]
        idempotency_key: Option<serde_json::Value>,
    }
    match serde_json::from_str::<KeyProbe>(raw)
        .ok()?
        .idempotency_key?
    {
        Value::String(k) => Some(cap(&k, JSON_STRING_CAP)),
        _ => None,
    }
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

/// Why a line is invalid: its violations, and the key it gave or derived, if known.
struct Bad {
    key: Option<String>,
    violations: Vec<Violation>,
}

impl Bad {
    fn one(field: Option<&str>, message: impl Into<String>, code: &str) -> Bad {
        Bad {
            key: None,
            violations: vec![Violation::new(field, message, code)],
        }
    }

    /// Whether the line was refused for leaving out `"from"` (with no `--from` to fill it).
    fn lacks_from(&self) -> bool {
        self.violations.iter().any(|v| {
            v.field.as_deref() == Some("body.from") && v.code == "missing" && v.message != EMPTY
        })
    }
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
    ) -> Result<(SendSmsRequest, String, u64), Bad> {
        let (mut req, filled) = self.parse_line(raw).map_err(|mut b| {
            b.key = given_key(raw);
            b
        })?;
        let assistant_id = self.assistant_id.as_deref().unwrap_or_default();
        let prepared = client.prepare(assistant_id, &req).map_err(|e| {
            let fields = fields_of(raw);
            let violations = e
                .violations()
                .iter()
                .take(JSON_LIST_CAP)
                .map(|v| {
                    let from_flag = filled && v.path() == ["body", "from"];
                    let given = match v.path() {
                        [body, name] if body == "body" => fields.contains(name) || from_flag,
                        _ => false,
                    };
                    Violation::of(v, from_flag.then_some("--from"), given)
                })
                .collect();
            Bad {
                key: given_key(raw),
                violations,
            }
        })?;
        let key = options
            .idempotency_key_for(assistant_id, &req)
            .map_err(|e| Bad {
                key: given_key(raw),
                ..Bad::one(None, e.to_string(), "config")
            })?;
        req.idempotency_key = Some(key.clone());
        Ok((req, key, body_hash(prepared.body())))
    }

    /// One line as a request, `--from` filled in if the line has no `"from"` at all (then
    /// `true`). Read straight into the request type, so a repeated field or an unknown one is
    /// an error.
    fn parse_line(&self, raw: &str) -> Result<(SendSmsRequest, bool), Bad> {
        let mut req: SendSmsRequest = serde_json::from_str(raw).map_err(|e| {
            // Say what the line is when it is not a request object at all.
            match serde_json::from_str::<Value>(raw) {
                Err(e) => {
                    let mut msg = format!("not valid JSON: {}", cap(&e.to_string(), DETAIL_CAP));
                    if let Some(at) = raw.chars().position(|c| c == BOM) {
                        msg.push_str(&format!(
                            " (column {} holds a byte-order mark, U+FEFF: was a file with one \
                             joined to this one?)",
                            at + 1
                        ));
                    }
                    Bad::one(None, msg, "malformed")
                }
                Ok(v) if !v.is_object() => Bad::one(
                    None,
                    "expected a JSON object such as {\"to\": \"+15550002222\", \"text\": \"Hi\"}",
                    "not_an_object",
                ),
                Ok(_) => Bad::one(None, cap(&e.to_string(), DETAIL_CAP), "invalid_field"),
            }
        })?;
        let mut filled = false;
        if let Some(from) = &self.from {
            #[derive(serde::Deserialize)]
            struct FromProbe {
                #[serde(default)]
                from: Option<serde::de::IgnoredAny>,
            }
            let has_from = serde_json::from_str::<FromProbe>(raw).is_ok_and(|p| p.from.is_some());
            if !has_from {
                req.from.clone_from(from);
                filled = true;
            }
        }
        Ok((req, filled))
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
        let mut conflicts: Vec<(usize, usize, String)> = Vec::new();
        let mut derived_lines = false;
        for (number, raw) in numbered(text) {
            survey.total += 1;
            match self.check_line(client, options, raw) {
                Err(bad) => survey.note_bad(number, bad),
                Ok((_, key, body)) if given_key(raw).is_some() => {
                    match given.get(&key_bits(&key)) {
                        Some(&(first, b)) if b != body => conflicts.push((number, first, key)),
                        Some(_) => {}
                        None => {
                            given.insert(key_bits(&key), (number, body));
                        }
                    }
                }
                Ok(_) => derived_lines = true,
            }
        }
        // A derived key can collide only with a given one: look again only if there are both.
        if !given.is_empty() && derived_lines {
            for (number, raw) in numbered(text) {
                if given_key(raw).is_some() {
                    continue;
                }
                if let Ok((_, key, body)) = self.check_line(client, options, raw) {
                    if let Some(&(first, b)) = given.get(&key_bits(&key)) {
                        if b != body {
                            // The later of the two lines is the one the server would refuse.
                            conflicts.push((number.max(first), number.min(first), key));
                        }
                    }
                }
            }
        }
        conflicts.sort_unstable_by_key(|c| c.0);
        conflicts.dedup_by_key(|c| c.0);
        for (line, other, key) in conflicts {
            let bad = Bad {
                key: Some(key),
                ..Bad::one(
                    Some("header.Idempotency-Key"),
                    format!(
                        "is also the key of line {other}, with another request: the server \
                         would refuse one of them"
                    ),
                    "duplicate_key",
                )
            };
            survey
                .conflicts
                .insert(line, (bad.key.clone(), bad.violations.clone()));
            survey.note_bad(line, bad);
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
    /// Invalid lines that leave out `"from"` (when no `--from` fills it).
    no_from: usize,
    /// The first invalid lines, with their violations (for the report).
    first_bad: Vec<(usize, Vec<Violation>)>,
    /// Lines invalid only for their key (a second look at the line would not say so).
    conflicts: HashMap<usize, (Option<String>, Vec<Violation>)>,
}

impl Survey {
    fn note_bad(&mut self, number: usize, bad: Bad) {
        self.bad += 1;
        if bad.lacks_from() {
            self.no_from += 1;
        }
        if self.first_bad.len() < REPORTED_CAP {
            self.first_bad.push((number, bad.violations));
        }
    }

    /// The hint for lines without `"from"`: the one thing that fixes them all.
    fn hint_about_from(&self) -> Option<String> {
        (self.no_from > 0).then(|| {
            format!(
                "{} {} no \"from\": give --from NUMBER to send {} from your number",
                lines(self.no_from),
                if self.no_from == 1 { "has" } else { "have" },
                if self.no_from == 1 { "it" } else { "them" },
            )
        })
    }
}

/// `1 line`, `2 lines`.
fn lines(n: usize) -> String {
    if n == 1 {
        "1 line".to_owned()
    } else {
        format!("{n} lines")
    }
}

/// `line N: field: message; ...` for the text report of an invalid line.
fn describe(number: usize, violations: &[Violation]) -> String {
    let parts: Vec<String> = violations.iter().map(Violation::text).collect();
    format!("line {number}: {}", parts.join("; "))
}

/// What became of a line, for the counts.
#[derive(Clone, Copy)]
enum Kind {
    Sent,
    Duplicate,
    Failed,
    Invalid,
}

/// A result line's first three keys, in the order people read them.
fn head(number: usize, result: &str, key: Option<&str>) -> JsonObject {
    JsonObject::new()
        .field("line", number)
        .field("result", result)
        .field("idempotency_key", key)
}

/// The result line of a line that was not sent because it is invalid.
fn invalid_result(number: usize, key: Option<&str>, violations: &[Violation]) -> String {
    head(number, "invalid", key)
        .field("violations", violations)
        .line()
}

/// The result line of a line the engine settled; `line_of` gives the line of another
/// request (for a duplicate).
fn result_of(
    number: usize,
    r: BatchResult,
    line_of: impl Fn(usize) -> Option<usize>,
) -> (Kind, String) {
    let key = r.idempotency_key;
    match r.outcome {
        BatchOutcome::Sent(res) => {
            let line = head(number, "sent", Some(&key))
                .field(
                    "conversation_id",
                    res.conversation_id.map(|s| cap(&s, JSON_STRING_CAP)),
                )
                .field(
                    "request_id",
                    res.request_id.map(|s| cap(&s, JSON_STRING_CAP)),
                )
                .field("attempts", res.attempts)
                .line();
            (Kind::Sent, line)
        }
        BatchOutcome::Failed(e) => (Kind::Failed, failed_result(number, &key, &e)),
        BatchOutcome::Duplicate { of } => {
            let line = head(number, "duplicate", Some(&key))
                .field("of_line", line_of(of))
                .line();
            (Kind::Duplicate, line)
        }
        _ => {
            let line = head(number, "failed", Some(&key))
                .field("kind", "other")
                .field("message", "an outcome this tool does not know")
                .line();
            (Kind::Failed, line)
        }
    }
}

fn failed_result(number: usize, key: &str, e: &Error) -> String {
    let kind = match e.kind() {
        ErrorKind::Config => "config",
        ErrorKind::Validation => "validation",
        ErrorKind::Api => "api",
        ErrorKind::Transport => "transport",
        ErrorKind::Decode => "decode",
        _ => "other",
    };
    head(number, "failed", Some(key))
        .field("kind", kind)
        .field("status", e.status())
        .field("message", cap(&e.to_string(), JSON_STRING_CAP))
        .field(
            "request_id",
            e.request_id().map(|s| cap(s, JSON_STRING_CAP)),
        )
        .field("attempts", e.attempts())
        .field("may_have_been_sent", e.may_have_been_sent())
        .line()
}

/// Prints result lines in input order: each as soon as every earlier one is known.
struct InOrder {
    next: usize,
    waiting: BTreeMap<usize, String>,
    /// Set once stdout could not take a line; later lines are not tried.
    broken: Option<std::io::Error>,
}

impl InOrder {
    fn put(&mut self, position: usize, line: String) {
        self.waiting.insert(position, line);
        while let Some(line) = self.waiting.remove(&self.next) {
            self.next += 1;
            if self.broken.is_none() {
                if let Err(e) = output::write_stdout(&(line + "\n")) {
                    self.broken = Some(e);
                }
            }
        }
    }
}

/// Counts for the progress and summary lines.
#[derive(Default)]
struct Tally {
    sent: usize,
    duplicate: usize,
    failed: usize,
    invalid: usize,
}

impl Tally {
    fn count(&mut self, kind: Kind) {
        match kind {
            Kind::Sent => self.sent += 1,
            Kind::Duplicate => self.duplicate += 1,
            Kind::Failed => self.failed += 1,
            Kind::Invalid => self.invalid += 1,
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
    // An assistant id or a --from that breaks a rule breaks every line: said once.
    let probe = SendSmsRequest::new(a.from.as_deref().unwrap_or("+1"), "+1");
    if let Err(e) = client.prepare(assistant_id, &probe) {
        return Err(refused_flags(&e));
    }
    let path = a.input.as_deref().unwrap_or("-");
    let text = args::read_text("--input", path, INPUT_CAP).map_err(Failure::usage)?;
    let survey = a.check_all(&client, &options, &text);
    if survey.bad > 0 && !a.skip_invalid {
        return Err(invalid_input(&survey, a.client.json));
    }
    // Invalid lines are only possible with --skip-invalid from here on.
    if let (Some(hint), false) = (survey.hint_about_from(), a.client.json) {
        output::stderr_line(&format!("telnyx-sms: note: {hint}"));
    }
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
                Some((key, v)) => Err(Bad {
                    key: key.clone(),
                    violations: v.clone(),
                }),
                None => a.check_line(&client, &options, raw),
            };
            match checked {
                Err(bad) => {
                    let mut s = lock();
                    let r = invalid_result(number, bad.key.as_deref(), &bad.violations);
                    s.tally.count(Kind::Invalid);
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
                let (kind, result) = {
                    let slots = &s.slots;
                    result_of(number as usize, r, |i| {
                        slots.get(i).map(|(line, _)| *line as usize)
                    })
                };
                s.tally.count(kind);
                let (sent, duplicate, failed) = (s.tally.sent, s.tally.duplicate, s.tally.failed);
                s.progress.update(sent, duplicate, failed);
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

/// A dry run's line: the key and the request as it would go out (its body exactly as sent).
fn dry_run_result(
    client: &Client,
    assistant_id: &str,
    number: usize,
    req: &SendSmsRequest,
    key: &str,
) -> String {
    match client.prepare(assistant_id, req) {
        Ok(p) => {
            let body = serde_json::from_slice::<Box<RawValue>>(p.body()).ok();
            head(number, "dry-run", Some(key))
                .field("method", p.method())
                .field("url", p.url())
                .field("body", body)
                .line()
        }
        // Checked already; kept for completeness.
        Err(e) => failed_result(number, key, &e),
    }
}

/// The error for an `--assistant-id` or `--from` that no line could be sent with, in the
/// words `send` uses.
fn refused_flags(e: &Error) -> Failure {
    if e.kind() != ErrorKind::Validation {
        return Failure::from_error(e);
    }
    let mut parts = Vec::new();
    let mut json = Vec::new();
    for v in e.violations() {
        let flag = match v.path() {
            [body, from] if body == "body" && from == "from" => Some("--from"),
            [path, id] if path == "path" && id == "assistant_id" => Some("--assistant-id"),
            _ => None,
        };
        let out = Violation::of(v, flag, flag.is_some());
        parts.push(match flag {
            Some(flag) => format!("{flag}: {} ({})", out.message, v.field()),
            None => out.text(),
        });
        json.push(out.to_value());
    }
    let message = format!("invalid request, nothing was sent: {}", parts.join("; "));
    json.truncate(JSON_LIST_CAP);
    Failure::invalid(message, json)
}

/// The error for input with invalid lines (without `--skip-invalid`): the first 100 bad
/// lines on stderr, then the failure.
fn invalid_input(survey: &Survey, as_json: bool) -> Failure {
    let hint = survey
        .hint_about_from()
        .map(|h| format!("; {h}"))
        .unwrap_or_default();
    let message = format!(
        "{} of {} invalid, so nothing was sent{hint} (--skip-invalid sends the valid lines \
         and reports the invalid ones)",
        survey.bad,
        match survey.total {
            1 => "1 line is".to_owned(),
            n => format!("{n} lines are"),
        },
    );
    let mut violations = Vec::new();
    for (number, vs) in &survey.first_bad {
        if !as_json {
            output::stderr_line(&format!("telnyx-sms: {}", describe(*number, vs)));
        }
        for v in vs {
            let mut v = v.to_value();
            if let Some(o) = v.as_object_mut() {
                o.insert("line".into(), json!(number));
            }
            violations.push(v);
        }
    }
    if survey.bad > survey.first_bad.len() && !as_json {
        output::stderr_line(&format!(
            "telnyx-sms: and {} more invalid",
            lines(survey.bad - survey.first_bad.len())
        ));
    }
    violations.truncate(JSON_LIST_CAP);
    Failure::invalid(message, violations)
}

/// The last line on stderr: `400 lines: 398 sent, 1 failed, 1 invalid in 12.3 s`.
fn summary(t: &Tally, total: usize, took: std::time::Duration, dry_run: bool, as_json: bool) {
    let secs = (took.as_secs_f64() * 10.0).round() / 10.0;
    if as_json {
        let v = json!({"summary": {
            "lines": total, "sent": t.sent, "duplicate": t.duplicate, "failed": t.failed,
            "invalid": t.invalid, "seconds": secs, "dry_run": dry_run,
        }});
        output::write_stderr(&output::json_line(&v));
        return;
    }
    let mut parts = Vec::new();
    if dry_run {
        parts.push(format!("{} checked", total - t.invalid));
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
        "{}: {} in {secs:.1} s{dry}",
        lines(total),
        parts.join(", ")
    ));
}
