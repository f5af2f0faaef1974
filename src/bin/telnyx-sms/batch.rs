//! `telnyx-sms send-batch`: many SMS from a JSON Lines file, validated whole before the first
//! send, sent by the library's batch engine, one result line per input line, in input order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;
use serde_json::{Value, json};
use telnyx_assistant_sms::{
    BatchOptions, BatchOutcome, BatchPlan, BatchResult, Client, Error, ErrorKind, MAX_CONCURRENCY,
    PreparedSend, Printable, SendSmsRequest,
};

use crate::args::{self, Arg, Args, ClientFlags, KeyNeed, once, once_switch, shown};
use crate::output::{
    self, DETAIL_CAP, ECHO_CAP, Failure, JSON_LIST_CAP, JSON_STRING_CAP, JsonObject, TEXT_CAP,
    Violation, cut,
};
use crate::progress::Progress;
use crate::{exit, logger, signals};

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
    --journal PATH            the batch's journal: each line's start (with its key) is
                              on disk before it is sent, its outcome as it ends; re-running
                              the same command with it sends nothing that was sent or may
                              have been, whatever the server does with keys; default:
                              FILE.journal (FILE.shard-K-of-N.journal with --shard);
                              required with --input - (or --no-journal)
    --no-journal              keep no journal: a re-run then leans on the server honouring
                              idempotency keys (this endpoint does not declare them), and
                              can text again lines that failed after being sent or were in
                              flight when the run was killed; needs --key-prefix
    --resend-in-doubt         send again, under their same keys, the lines the journal
                              shows in doubt (started with no outcome, or failed after they
                              may have been sent); safe only if the server honours keys;
                              default: they are reported as in-doubt and not sent
    --shard K/N               send only the lines whose position (among non-blank lines,
                              from 0) modulo N is K, 0 <= K < N: N machines (a Kubernetes
                              Indexed Job: --shard $JOB_COMPLETION_INDEX/N) split one input,
                              each with its own journal; default: every line
    --throttle-budget SECONDS the most the server's requested pauses (429/503 with a wait)
                              may add up to; past it the batch stops and the rest is
                              reported as not attempted; 1 to 86400; default: 600
    --key-prefix PREFIX       a readable prefix of the keys derived for lines without their
                              own key (up to 223 of A-Z a-z 0-9 _ - :); with a journal the
                              keys also mix in its random id; without one, use a new prefix
                              to send the same text to the same number again within 24
                              hours; default: batch-
    --skip-invalid            send the valid lines and report the invalid ones as results;
                              default: any invalid line stops the batch before any send
    --dry-run                 check every line and print each one's key and request
                              (key redacted); send nothing; needs no API key

    Every line is read and checked before the first send, against the journal too: a line
    that differs from what the journal recorded at its position stops the batch before any
    send, naming it. Each line's idempotency key is its own, or derived from the request
    (SHA-256, with the journal's random id). Re-running the same command with the same
    journal after a crash, a kill or a failed line: lines sent are reported from the
    journal (\"from_journal\": true), lines that failed and were not sent are sent again,
    lines in doubt are reported as in-doubt and not sent (exit 5). Two lines with the same
    key and request are one message: the later one is reported as a duplicate, not sent.
    SIGINT or SIGTERM stops new sends: the ones in flight finish and are recorded, then
    exit 130 (a second signal exits at once; what was in flight is then in doubt).

    Results go to stdout, one JSON object per input line, in input order, each as soon as
    every earlier line is done: {\"line\", \"result\": \"sent\"|\"failed\"|\"in-doubt\"|
    \"invalid\"|\"duplicate\", \"idempotency_key\", ...}, always in that order (an invalid
    line's key is the one it gave, if any). While stderr is a terminal (and no -v), a
    progress line shows on it; a one-line summary always ends stderr (JSON with --json).
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
    "--journal",
    "--no-journal",
    "--resend-in-doubt",
    "--shard",
    "--throttle-budget",
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
    journal: Option<String>,
    no_journal: bool,
    resend_in_doubt: bool,
    shard: Option<(u32, u32)>,
    throttle_budget: Option<std::time::Duration>,
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
            "--journal" => once(&mut a.journal, f, args.value(f)?)?,
            "--no-journal" => once_switch(&mut a.no_journal, f)?,
            "--resend-in-doubt" => once_switch(&mut a.resend_in_doubt, f)?,
            "--shard" => {
                let v = args.value(f)?;
                once(&mut a.shard, f, shard(f, &v)?)?;
            }
            "--throttle-budget" => {
                let t = args::seconds(f, &args.value(f)?, 1.0, 86_400.0)?;
                once(&mut a.throttle_budget, f, t)?;
            }
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
    if a.journal.is_some() && a.no_journal {
        return Err(Failure::usage(
            "--journal and --no-journal contradict each other; give one",
        ));
    }
    if a.no_journal && a.key_prefix.is_none() {
        return Err(Failure::usage(
            "--no-journal needs an explicit --key-prefix: without a journal the keys are the \
             only guard against a re-run texting again, so name the job (a date, a job id)",
        ));
    }
    if a.no_journal && a.resend_in_doubt {
        return Err(Failure::usage(
            "--resend-in-doubt needs a journal: it resends what the journal shows in doubt",
        ));
    }
    if a.input.as_deref() == Some("-") && a.journal.is_none() && !a.no_journal && !a.dry_run {
        return Err(Failure::usage(
            "--input - (stdin) needs --journal PATH or --no-journal: the journal, which makes \
             a re-run send nothing twice, is named after the input file by default, and stdin \
             has no name",
        ));
    }
    Ok(Some(a))
}

/// The input file's canonical path (the default journal follows the file, not the name it
/// was reached by: a symlink or another path to it finds the same journal); none for stdin.
fn canonical_input(input: &str) -> Option<String> {
    if input == "-" {
        return None;
    }
    let path = std::fs::canonicalize(input).ok()?;
    path.to_str().map(str::to_owned)
}

/// The default journals of `input` beside it: `INPUT.journal` (no shard count) and
/// `INPUT.shard-K-of-N.journal` (N).
fn default_journals(input: &str) -> Vec<(String, Option<u32>)> {
    let path = std::path::Path::new(input);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some(rest) = file.strip_prefix(name) else {
            continue;
        };
        let n = if rest == ".journal" {
            None
        } else if let Some(kn) = rest
            .strip_prefix(".shard-")
            .and_then(|r| r.strip_suffix(".journal"))
        {
            match kn.split_once("-of-").and_then(|(_, n)| n.parse().ok()) {
                Some(n) => Some(n),
                None => continue,
            }
        } else {
            continue;
        };
        found.push((entry.path().to_string_lossy().into_owned(), n));
    }
    found.sort();
    found
}

/// Whether two paths name one existing file.
fn same_file(a: &str, b: &str) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// `--shard K/N`, with `0 <= K < N`.
fn shard(flag: &str, v: &str) -> Result<(u32, u32), Failure> {
    let parsed = v
        .split_once('/')
        .and_then(|(k, n)| Some((k.trim().parse::<u32>().ok()?, n.trim().parse::<u32>().ok()?)))
        .filter(|(k, n)| k < n);
    parsed.ok_or_else(|| {
        Failure::usage(format!(
            "{flag} {}: expected K/N with 0 <= K < N (such as 0/3, 1/3 and 2/3)",
            shown(v)
        ))
    })
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
        Value::String(k) => Some(cut(&k, JSON_STRING_CAP)),
        _ => None,
    }
}

/// Why a line is invalid: its violations, and the key it gave (a key conflict: the key it
/// carries or derives), if known.
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

    /// The line `raw`, refused by the library for `e`'s violations.
    fn refused(raw: &str, e: &Error) -> Bad {
        let violations = e.violations().iter().take(JSON_LIST_CAP);
        Bad {
            key: given_key(raw),
            violations: violations.map(|v| Violation::of(v, None)).collect(),
        }
    }

    /// A line whose key an earlier line (`other`) carries or derives, with another request.
    fn conflict(key: &str, other: u32) -> Bad {
        Bad {
            key: Some(cut(key, JSON_STRING_CAP)),
            ..Bad::one(
                Some("header.Idempotency-Key"),
                format!(
                    "is also the key of line {other}, with another request: the server would \
                     refuse one of them"
                ),
                "duplicate_key",
            )
        }
    }

    /// Whether the line was refused for leaving out `"from"` (with no `--from` to fill it).
    fn lacks_from(&self) -> bool {
        self.violations
            .iter()
            .any(|v| v.field.as_deref() == Some("body.from") && v.code == "missing")
    }
}

impl BatchArgs {
    /// The journal's path: `--journal`, else the input's path plus `.journal` (with the shard
    /// in it, so that shards on one machine keep apart); none with `--no-journal`.
    fn journal_path(&self) -> Option<String> {
        if self.no_journal {
            return None;
        }
        if let Some(j) = &self.journal {
            return Some(j.clone());
        }
        let input = canonical_input(self.input.as_deref()?)?;
        Some(match self.shard {
            Some((k, n)) => format!("{input}.shard-{k}-of-{n}.journal"),
            None => format!("{input}.journal"),
        })
    }

    /// Refuses a journal choice that would send again what another journal of this input
    /// shows sent: `--no-journal`, or a default journal for another shard count, beside an
    /// existing default journal of the same input; and a `--journal` that is the input.
    fn check_journal_choice(&self) -> Result<(), Failure> {
        let Some(input) = self.input.as_deref().and_then(canonical_input) else {
            return Ok(());
        };
        if let Some(j) = &self.journal {
            if same_file(j, &input) {
                return Err(Failure::usage(format!(
                    "--journal {} is the input file itself: give the journal its own path",
                    shown(j)
                )));
            }
            return Ok(());
        }
        let mine_n = self.shard.map(|(_, n)| n);
        let others: Vec<String> = default_journals(&input)
            .into_iter()
            .filter(|(_, n)| self.no_journal || *n != mine_n)
            .map(|(path, _)| path)
            .collect();
        let Some(other) = others.first() else {
            return Ok(());
        };
        let what = if self.no_journal {
            "--no-journal".to_owned()
        } else {
            format!(
                "the journal {}",
                Printable::new(&self.journal_path().unwrap_or_default(), ECHO_CAP)
            )
        };
        Err(Failure::usage(format!(
            "this input already has the journal {}: a run with {what} would send again every \
             line that one shows sent; pass --journal {} (with the --shard it was made with) \
             to go on with it, or move it away if its lines are to be sent again",
            Printable::new(other, ECHO_CAP),
            Printable::new(other, ECHO_CAP)
        )))
    }

    /// Whether the line at `pos` (among the non-blank lines, from 0) is in this run's shard.
    fn in_shard(&self, pos: usize) -> bool {
        self.shard
            .is_none_or(|(k, n)| pos as u64 % u64::from(n) == u64::from(k))
    }

    /// The options the engine runs with: the flags' and the journal.
    fn engine_options(&self) -> BatchOptions {
        let mut o = self.options();
        if let Some(j) = self.journal_path() {
            o = o.journal(j).resend_in_doubt(self.resend_in_doubt);
        }
        if let Some((k, n)) = self.shard {
            o = o.shard(k, n);
        }
        if let Some(t) = self.throttle_budget {
            o = o.throttle_budget(t);
        }
        o
    }

    /// The options that derive a line's key for the checks (no journal: its random id is
    /// read once, by the engine).
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

    /// One line as a request, `--from` filled in if the line has no `"from"` at all. Read
    /// straight into the request type, so a repeated field or an unknown one is an error.
    /// The library checks the rest.
    fn parse_line(&self, raw: &str) -> Result<SendSmsRequest, Bad> {
        let mut req: SendSmsRequest = serde_json::from_str(raw).map_err(|e| {
            // Say what the line is when it is not a request object at all.
            let mut bad = match serde_json::from_str::<Value>(raw) {
                Err(e) => {
                    let mut msg = format!("not valid JSON: {}", cut(&e.to_string(), DETAIL_CAP));
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
                Ok(_) => Bad::one(None, cut(&e.to_string(), DETAIL_CAP), "invalid_field"),
            };
            bad.key = given_key(raw);
            bad
        })?;
        if let Some(from) = &self.from {
            #[derive(serde::Deserialize)]
            struct FromProbe {
                #[serde(default)]
                from: Option<serde::de::IgnoredAny>,
            }
            let has_from = serde_json::from_str::<FromProbe>(raw).is_ok_and(|p| p.from.is_some());
            if !has_from {
                req = req.from(from.as_str());
            }
        }
        Ok(req)
    }

    /// Checks every line before anything is sent, through the library's
    /// [`Client::plan_batch`]: each line's rules, and the keys two lines share with different
    /// requests (the server would refuse the later one). Nothing of a valid line is kept (the
    /// sends read the input again); of the invalid ones, the first [`REPORTED_CAP`] with
    /// their violations, the number of all, and the key conflicts (only this pass can tell).
    fn survey(
        &self,
        client: &Client,
        options: &BatchOptions,
        text: &str,
    ) -> Result<Survey, Failure> {
        let lines: Arc<[u32]> = numbered(text)
            .map(|(n, _)| u32::try_from(n).unwrap_or(u32::MAX))
            .collect();
        let mut survey = Survey {
            total: lines.len(),
            shard_total: (0..lines.len()).filter(|pos| self.in_shard(*pos)).count(),
            lines: Arc::clone(&lines),
            ..Survey::default()
        };
        let assistant_id = self.assistant_id.as_deref().unwrap_or_default();
        // A line that is not a request at all goes to the library as a placeholder, so that
        // positions stay the input's; the refusals are read against the lines again.
        let requests =
            numbered(text).map(|(_, raw)| self.parse_line(raw).unwrap_or_else(|_| placeholder()));
        let mut again = numbered(text).enumerate();
        client
            .plan_batch(assistant_id, requests, options, |plan: BatchPlan| {
                let Some(BatchOutcome::Failed(e)) = &plan.outcome else {
                    return;
                };
                // Plans come in input order, one per request.
                let Some((pos, (number, raw))) = again.find(|(pos, _)| *pos == plan.index) else {
                    return;
                };
                let bad = match (self.parse_line(raw), plan.key_conflict_with) {
                    (Err(bad), _) => bad,
                    (Ok(_), Some(of)) => {
                        let other = lines.get(of).copied().unwrap_or_default();
                        survey
                            .conflicts
                            .insert(pos, (plan.idempotency_key.clone(), other));
                        Bad::conflict(&plan.idempotency_key, other)
                    }
                    (Ok(_), None) => Bad::refused(raw, e),
                };
                survey.note_bad(number, bad, self.in_shard(pos));
            })
            .map_err(|e| Failure::from_error(&e))?;
        Ok(survey)
    }

    /// The line at `pos` for the sends: the request, or why it is invalid (the library's
    /// rules, or a key conflict [`survey`](Self::survey) found).
    fn line_for_sending(
        &self,
        survey: &Survey,
        pos: usize,
        raw: &str,
    ) -> Result<SendSmsRequest, Bad> {
        if let Some((key, other)) = survey.conflicts.get(&pos) {
            return Err(Bad::conflict(key, *other));
        }
        let req = self.parse_line(raw)?;
        req.validate().map_err(|e| Bad::refused(raw, &e))?;
        Ok(req)
    }

    /// The lines a journal made by an earlier run recorded otherwise, each with why (the first
    /// [`REPORTED_CAP`]), and how many there are.
    fn changed_since_journal(
        &self,
        client: &Client,
        engine: &BatchOptions,
        survey: &Survey,
        text: &str,
    ) -> Result<(Vec<(u32, String)>, usize), Failure> {
        let assistant_id = self.assistant_id.as_deref().unwrap_or_default();
        let requests =
            numbered(text).map(|(_, raw)| self.parse_line(raw).unwrap_or_else(|_| placeholder()));
        let (mut changed, mut count) = (Vec::new(), 0);
        client
            .plan_batch(assistant_id, requests, engine, |plan| {
                let Some(BatchOutcome::Failed(e)) = &plan.outcome else {
                    return;
                };
                let Some(v) = e
                    .violations()
                    .iter()
                    .find(|v| v.code() == "journal_mismatch")
                else {
                    return;
                };
                count += 1;
                if changed.len() < REPORTED_CAP {
                    let line = survey.lines.get(plan.index).copied().unwrap_or_default();
                    changed.push((line, v.message().to_owned()));
                }
            })
            .map_err(|e| Failure::from_error(&e))?;
        Ok((changed, count))
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
    /// Lines of this run's shard, and how many of them are invalid.
    shard_total: usize,
    shard_bad: usize,
    /// Lines invalid only for their key (a second look at the line would not say so): the
    /// engine position, the key, and the line of the earlier request with that key.
    conflicts: HashMap<usize, (String, u32)>,
    /// The input line of each engine position (the `i`th non-blank line).
    lines: Arc<[u32]>,
}

impl Survey {
    fn note_bad(&mut self, number: usize, bad: Bad, in_shard: bool) {
        self.bad += 1;
        self.shard_bad += usize::from(in_shard);
        if bad.lacks_from() {
            self.no_from += 1;
        }
        if self.first_bad.len() < REPORTED_CAP {
            self.first_bad.push((number, bad.violations));
        }
    }

    /// The line of the request the engine numbers `index`.
    fn line_of(&self, index: usize) -> Option<usize> {
        self.lines.get(index).map(|n| *n as usize)
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
    /// Sent by an earlier run: the journal's result.
    FromJournal,
    Duplicate,
    Failed,
    InDoubt,
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
            let mut line = head(number, "sent", Some(&key))
                .field(
                    "conversation_id",
                    res.conversation_id.map(|s| cut(&s, JSON_STRING_CAP)),
                )
                .field(
                    "request_id",
                    res.request_id.map(|s| cut(&s, JSON_STRING_CAP)),
                )
                .field("attempts", res.attempts);
            if r.from_journal {
                line = line.field("from_journal", true);
            }
            let kind = if r.from_journal {
                Kind::FromJournal
            } else {
                Kind::Sent
            };
            (kind, line.line())
        }
        BatchOutcome::InDoubt { reason } => {
            let line = head(number, "in-doubt", Some(&key))
                .field("message", cut(&reason, JSON_STRING_CAP))
                .field("may_have_been_sent", true)
                .field("from_journal", true)
                .line();
            (Kind::InDoubt, line)
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
        .field("message", cut(&e.to_string(), JSON_STRING_CAP))
        .field(
            "request_id",
            e.request_id().map(|s| cut(s, JSON_STRING_CAP)),
        )
        .field("attempts", e.attempts())
        .field("may_have_been_sent", e.may_have_been_sent())
        .line()
}

/// Prints result lines in input order: each as soon as every earlier one is known.
struct InOrder {
    next: usize,
    waiting: BTreeMap<usize, Option<String>>,
    /// Set once stdout could not take a line; later lines are not tried.
    broken: Option<std::io::Error>,
}

impl InOrder {
    /// The line at `position`, or none (a line of another shard): the next ones may go.
    fn put(&mut self, position: usize, line: Option<String>) {
        self.waiting.insert(position, line);
        while let Some(line) = self.waiting.remove(&self.next) {
            self.next += 1;
            if let (None, Some(line)) = (&self.broken, line) {
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
    /// Sent, by this run or (`from_journal` of them) an earlier one.
    sent: usize,
    from_journal: usize,
    duplicate: usize,
    failed: usize,
    in_doubt: usize,
    invalid: usize,
}

impl Tally {
    fn count(&mut self, kind: Kind) {
        match kind {
            Kind::Sent => self.sent += 1,
            Kind::FromJournal => {
                self.sent += 1;
                self.from_journal += 1;
            }
            Kind::InDoubt => self.in_doubt += 1,
            Kind::Duplicate => self.duplicate += 1,
            Kind::Failed => self.failed += 1,
            Kind::Invalid => self.invalid += 1,
        }
    }
}

/// What the sends share: the results waiting for their turn, the counts, the progress line,
/// and the positions whose result line is out already.
struct Shared {
    order: InOrder,
    tally: Tally,
    progress: Progress,
    /// The engine positions of this shard's invalid lines, printed as they were read: the
    /// engine's result for their placeholder is ignored.
    printed: HashSet<usize>,
}

/// A line the engine is given in place of an invalid one, so that the engine's positions
/// stay the input's (the journal pins each position). It breaks a rule, so the engine never
/// sends or journals it; its result is ignored (the line's own was printed).
fn placeholder() -> SendSmsRequest {
    SendSmsRequest::new("", "")
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
    let engine = a.engine_options();
    engine.validate().map_err(|e| Failure::from_error(&e))?;
    let assistant_id = a.assistant_id.as_deref().unwrap_or_default();
    // An assistant id or a --from that breaks a rule breaks every line: said once.
    let probe = SendSmsRequest::new(a.from.as_deref().unwrap_or("+1"), "+1");
    if let Err(e) = client.prepare(assistant_id, &probe) {
        return Err(refused_flags(&e));
    }
    let path = a.input.as_deref().unwrap_or("-");
    let text = args::read_text("--input", path, INPUT_CAP).map_err(Failure::usage)?;
    let survey = a.survey(&client, &options, &text)?;
    if survey.bad > 0 && !a.skip_invalid {
        return Err(invalid_input(&survey, a.client.json));
    }
    // Invalid lines are only possible with --skip-invalid from here on.
    if let (Some(hint), false) = (survey.hint_about_from(), a.client.json) {
        output::stderr_line(&format!("telnyx-sms: note: {hint}"));
    }
    a.check_journal_choice()?;
    let journal = a.journal_path();
    if let Some(j) = &journal {
        // The journal pins its input: a line that differs from what it recorded (another
        // body or key, a line added or moved) stops the batch before any send (a dry run
        // too, so that it tells what the real run would do).
        if std::path::Path::new(j).exists() {
            let (changed, count) = a.changed_since_journal(&client, &engine, &survey, &text)?;
            if count > 0 {
                return Err(changed_input(j, &changed, count, a.client.json));
            }
        }
    }
    let shared = Mutex::new(Shared {
        order: InOrder {
            next: 0,
            waiting: BTreeMap::new(),
            broken: None,
        },
        tally: Tally::default(),
        progress: Progress::start(survey.shard_total, survey.shard_bad, logger::is_on()),
        printed: HashSet::new(),
    });
    let lock = || shared.lock().unwrap_or_else(|p| p.into_inner());
    let salted = journal.is_some();
    // The second reading of the input: each line to the engine as it asks for the next (so
    // no more of it is held than the workers need), at its position; each invalid one is
    // printed straight away, in its place, and a placeholder keeps its position.
    let requests = numbered(&text).enumerate().map(|(pos, (number, raw))| {
        let mine = a.in_shard(pos);
        match a.line_for_sending(&survey, pos, raw) {
            Err(bad) => {
                let mut s = lock();
                if mine {
                    let r = invalid_result(number, bad.key.as_deref(), &bad.violations);
                    s.tally.count(Kind::Invalid);
                    s.order.put(pos, Some(r));
                    s.printed.insert(pos);
                } else {
                    s.order.put(pos, None);
                }
                placeholder()
            }
            Ok(req) if a.dry_run => {
                let r = mine
                    .then(|| dry_run_line(&client, &options, assistant_id, number, &req, salted));
                lock().order.put(pos, r);
                req
            }
            Ok(req) => {
                if !mine {
                    lock().order.put(pos, None);
                }
                req
            }
        }
    });
    if a.dry_run {
        // Nothing to send: reading through the input prints each line's request.
        requests.for_each(drop);
        if salted && !a.client.json {
            output::stderr_line(
                "telnyx-sms: note: with a journal, derived keys mix in its random id: a dry \
                 run shows only the keys lines give (a real run shows all, and keeps them)",
            );
        }
    } else {
        let stop = signals::install();
        logger::name_batch_lines(Arc::clone(&survey.lines));
        client
            .send_batch(assistant_id, requests, &engine.stop_flag(stop), |r| {
                let mut s = lock();
                let pos = r.index;
                if s.printed.contains(&pos) {
                    return;
                }
                let number = survey.line_of(pos).unwrap_or_default();
                let (kind, result) = result_of(number, r, |i| survey.line_of(i));
                s.tally.count(kind);
                let t = &s.tally;
                let (sent, duplicate, failed) = (t.sent, t.duplicate, t.failed + t.in_doubt);
                s.progress.update(sent, duplicate, failed);
                s.order.put(pos, Some(result));
            })
            .map_err(|e| Failure::from_error(&e))?;
        lock().progress.finish();
    }
    let stopped = signals::received();
    let mut s = lock();
    let broken = s.order.broken.take();
    let tally = std::mem::take(&mut s.tally);
    drop(s);
    if let Some(e) = broken {
        if a.dry_run {
            return Err(Failure::stdout(e));
        }
        let again = match &journal {
            Some(_) => {
                "run the same command again to see them (from the journal: nothing sent is sent again)"
            }
            None => "without a journal, a re-run leans on the server honouring the keys",
        };
        output::stderr_line(&format!(
            "telnyx-sms: note: stdout could not take the results ({e}); the batch ran to its \
             end regardless: {again}"
        ));
    }
    let done = tally.sent + tally.duplicate + tally.failed + tally.in_doubt + tally.invalid;
    summary(
        &tally,
        survey.shard_total,
        done,
        started.elapsed(),
        a.dry_run,
        stopped,
        a.client.json,
    );
    if stopped {
        Err(Failure::silent(exit::SIGNAL))
    } else if tally.failed == 0 && tally.invalid == 0 && tally.in_doubt == 0 {
        Ok(())
    } else {
        Err(Failure::silent(exit::BATCH))
    }
}

/// The error for an input the journal was not made with: the lines that differ (the first
/// of them, and how many).
fn changed_input(journal: &str, changed: &[(u32, String)], count: usize, as_json: bool) -> Failure {
    let mut violations = Vec::new();
    for (line, why) in changed {
        if !as_json {
            output::stderr_line(&format!(
                "telnyx-sms: line {line}: {}",
                Printable::new(why, TEXT_CAP)
            ));
        }
        let mut v = Violation::new(Some("journal"), why.clone(), "journal_mismatch").to_value();
        if let Some(o) = v.as_object_mut() {
            o.insert("line".into(), json!(line));
        }
        violations.push(v);
    }
    violations.truncate(JSON_LIST_CAP);
    let first = changed.first().map_or(0, |c| c.0);
    Failure::invalid(
        format!(
            "{} of the input {} from what the journal {} recorded (line {first} first), so \
             nothing was sent: use the input (and the --key-prefix and --from) the journal was \
             made with; to send new or corrected lines, put only those in a new input file \
             (it gets its own journal): a new --journal for this input would send again every \
             line already sent",
            lines(count),
            if count == 1 { "differs" } else { "differ" },
            Printable::new(journal, ECHO_CAP)
        ),
        violations,
    )
}

/// A dry run's line: the key and the request as it would go out (its body exactly as sent).
/// With a journal (`salted`), a derived key mixes in its random id, not known here: only a
/// key the line gives is shown.
fn dry_run_line(
    client: &Client,
    options: &BatchOptions,
    assistant_id: &str,
    number: usize,
    req: &SendSmsRequest,
    salted: bool,
) -> String {
    let key = match (&req.idempotency_key, salted) {
        (Some(k), _) => Ok(Some(k.clone())),
        (None, true) => Ok(None),
        (None, false) => options.idempotency_key_for(assistant_id, req).map(Some),
    };
    match key.and_then(|k| Ok((client.prepare(assistant_id, req)?, k))) {
        Ok((p, key)) => dry_run_result(number, &p, key.as_deref()),
        // Checked already; kept for completeness.
        Err(e) => failed_result(
            number,
            req.idempotency_key.as_deref().unwrap_or_default(),
            &e,
        ),
    }
}

/// The dry-run result line of the prepared request `p`.
fn dry_run_result(number: usize, p: &PreparedSend, key: Option<&str>) -> String {
    let body = serde_json::from_slice::<Box<RawValue>>(p.body()).ok();
    head(number, "dry-run", key)
        .field("method", p.method())
        .field("url", p.url())
        .field("body", body)
        .line()
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
        let out = Violation::of(v, flag);
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
fn summary(
    t: &Tally,
    total: usize,
    done: usize,
    took: std::time::Duration,
    dry_run: bool,
    stopped: bool,
    as_json: bool,
) {
    let secs = (took.as_secs_f64() * 10.0).round() / 10.0;
    if as_json {
        let v = json!({"summary": {
            "lines": total, "sent": t.sent, "from_journal": t.from_journal,
            "duplicate": t.duplicate, "failed": t.failed, "in_doubt": t.in_doubt,
            "invalid": t.invalid, "not_started": total.saturating_sub(done),
            "stopped_by_signal": stopped, "seconds": secs, "dry_run": dry_run,
        }});
        output::write_stderr(&output::json_line(&v));
        return;
    }
    let mut parts = Vec::new();
    if dry_run {
        parts.push(format!("{} checked", total - t.invalid));
    } else {
        match t.from_journal {
            0 => parts.push(format!("{} sent", t.sent)),
            n => parts.push(format!(
                "{} sent ({n} by an earlier run, from the journal)",
                t.sent
            )),
        }
        if t.duplicate > 0 {
            parts.push(format!("{} duplicate", t.duplicate));
        }
        parts.push(format!("{} failed", t.failed));
        if t.in_doubt > 0 {
            parts.push(format!(
                "{} in doubt (not sent again: see --resend-in-doubt)",
                t.in_doubt
            ));
        }
    }
    parts.push(format!("{} invalid", t.invalid));
    let dry = if dry_run {
        " (dry run: nothing sent)".to_owned()
    } else if stopped {
        format!(
            " (stopped by a signal: {} not started; run the same command again to send them)",
            lines(total.saturating_sub(done))
        )
    } else {
        String::new()
    };
    output::stderr_line(&format!(
        "{}: {} in {secs:.1} s{dry}",
        lines(total),
        parts.join(", ")
    ));
}
