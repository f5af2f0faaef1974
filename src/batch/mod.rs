//! Bulk sends: many requests through one assistant, from a bounded set of worker threads,
//! rate-limited, pausing together when the server asks, under idempotency keys that make a
//! re-run after a crash safe.
//!
//! Every request goes through the same send loop as a single send (`Client::send_paced`):
//! the same validation, classification, retries and keys. This module only schedules.

mod journal;
mod pacer;
mod sha256;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use journal::Journal;

use crate::keys::hex;
pub(crate) use pacer::Pacer;
use sha256::Sha256;

use crate::client::{Client, PreparedSend, check_assistant_id};
use crate::error::Error;
use crate::request::{SendSmsRequest, idempotency_key_problem};
use crate::response::SendSmsResponse;
use crate::violation::Violation;

/// The most worker threads a batch may use.
pub const MAX_CONCURRENCY: usize = 64;
/// How many hex digits of the SHA-256 a derived key keeps (128 bits).
const DERIVED_HEX: usize = 32;
/// The longest key prefix: the prefix and the 32 hex digits fit the server's 255.
const MAX_PREFIX: usize = 255 - DERIVED_HEX;

/// How a batch runs: see [`Client::send_batch`].
///
/// ```
/// use telnyx_assistant_sms::BatchOptions;
///
/// let options = BatchOptions::new()
///     .concurrency(8)
///     .rate_per_second(20.0)
///     .key_prefix("shipped-2026-11-26-");
/// assert_eq!(options.concurrency_limit(), 8);
/// ```
#[derive(Clone, Debug)]
pub struct BatchOptions {
    concurrency: usize,
    rate: Option<f64>,
    key_prefix: String,
    journal: Option<PathBuf>,
    resend_in_doubt: bool,
    shard: Option<(u32, u32)>,
    throttle_budget: Duration,
    stop: Option<Arc<AtomicBool>>,
}

/// The default budget of server-requested pauses in one batch.
const THROTTLE_BUDGET: Duration = Duration::from_secs(600);

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            concurrency: 4,
            rate: None,
            key_prefix: "batch-".to_owned(),
            journal: None,
            resend_in_doubt: false,
            shard: None,
            throttle_budget: THROTTLE_BUDGET,
            stop: None,
        }
    }
}

impl BatchOptions {
    /// The defaults: 4 workers, no rate limit, key prefix `batch-`, no journal, every
    /// request, 10 minutes of server-requested pauses at most.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps a journal at `path`: a durable record of what the batch started and how each
    /// request ended, so that running the same batch again (after a crash, a kill, a power
    /// cut, or to finish what failed) sends nothing twice, **whatever the server does with
    /// idempotency keys**:
    ///
    /// - a request the journal shows sent is not sent again: its result comes from the
    ///   journal ([`BatchResult::from_journal`]);
    /// - a request that failed and was not sent is sent again, under the same key;
    /// - a request **in doubt** (started with no outcome recorded, or failed after it may have
    ///   been sent) is not sent again: its outcome is [`BatchOutcome::InDoubt`], unless
    ///   [`resend_in_doubt`](Self::resend_in_doubt);
    /// - a request that differs from what the journal recorded at its position (another body
    ///   or key: the input changed) is not sent ([`check_batch`](Client::check_batch) finds
    ///   them before anything is sent).
    ///
    /// Every `start` is on disk before the request is sent, and every outcome before the
    /// callback hears of it, so a kill leaves at most [`concurrency`](Self::concurrency)
    /// requests in doubt. Derived keys mix in a random id created with the journal, so two
    /// jobs never derive the same key and a key tells nothing of the number or the text.
    /// One run at a time: a second run on the same journal is refused.
    ///
    /// ```
    /// use telnyx_assistant_sms::{BatchOptions, BatchOutcome, Client, SendSmsRequest};
    /// # let dir = std::env::temp_dir().join(format!("journal-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// # let journal = dir.join("orders.journal");
    /// # let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let port = server.local_addr().unwrap().port();
    /// # drop(server); // nothing listens: every send fails before it is sent
    /// let client = Client::builder()
    ///     .api_key("KEY")
    ///     .base_url(format!("http://127.0.0.1:{port}/v2"))
    ///     .no_proxy()
    ///     .max_retries(0)
    ///     .build()?;
    /// let requests = || {
    ///     (0..3).map(|i| SendSmsRequest::new("+15550001111", "+15550002222").text(format!("Order {i}")))
    /// };
    /// let options = BatchOptions::new().journal(&journal);
    /// // First run: the API is down, nothing is sent, and the journal says so.
    /// let summary = client.send_batch("assistant-id", requests(), &options, |_| {})?;
    /// assert_eq!(summary.failed, 3);
    /// // The process could be killed anywhere here. The re-run reads the journal: what was
    /// // sent is reported from it, what was not is sent, what is in doubt is left alone.
    /// let summary = client.send_batch("assistant-id", requests(), &options, |r| {
    ///     if let BatchOutcome::InDoubt { reason } = &r.outcome {
    ///         eprintln!("{}: in doubt under key {}: {reason}", r.index, r.idempotency_key);
    ///     }
    /// })?;
    /// assert_eq!((summary.failed, summary.in_doubt), (3, 0));
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), telnyx_assistant_sms::Error>(())
    /// ```
    ///
    /// Defaults to none: without a journal, keys are derived from the [key
    /// prefix](Self::key_prefix) and the request alone, and only a server that honours them
    /// (for its 24 hours) keeps a re-run from sending again.
    #[must_use]
    pub fn journal(mut self, path: impl AsRef<Path>) -> Self {
        self.journal = Some(path.as_ref().to_owned());
        self
    }

    /// With a [journal](Self::journal): send the requests in doubt again, under their same
    /// keys. Safe only against a server that honours `Idempotency-Key` and replays the first
    /// attempt's success; against one that does not, each may text the person again.
    ///
    /// Defaults to `false`.
    #[must_use]
    pub fn resend_in_doubt(mut self, enabled: bool) -> Self {
        self.resend_in_doubt = enabled;
        self
    }

    /// Sends only the requests of shard `k` of `n` (`0 <= k < n`), so that `n` machines (or
    /// processes), each with its own journal, split one input without any request sent by
    /// two of them. A request's shard is its position modulo `n`: the same on every run and
    /// every machine for the same input, and a request changed since a shard's run stays in
    /// that shard, whose journal refuses it. Duplicates are still found across the whole
    /// input (a request identical to an earlier one in another shard is a `Duplicate`, not
    /// sent). The others are skipped: no result, not counted.
    ///
    /// Defaults to every request.
    #[must_use]
    pub fn shard(mut self, k: u32, n: u32) -> Self {
        self.shard = Some((k, n));
        self
    }

    /// The most the pauses the server asks for (a `429` or `503` with `Retry-After` or
    /// `retry-after-ms`, which hold every worker) may add up to in one batch. The pause that
    /// goes past it stops the batch: the requests not sent yet are reported as not attempted
    /// (and not sent), to be sent by a later run. A server that throttles every answer would
    /// otherwise keep a large batch going for days.
    ///
    /// Defaults to 10 minutes.
    #[must_use]
    pub fn throttle_budget(mut self, budget: Duration) -> Self {
        self.throttle_budget = budget;
        self
    }

    /// A flag that, once set (from a signal handler, another thread, ...), stops the batch
    /// from starting sends: the requests in flight finish (and are reported and journaled;
    /// their retries are not made), a request waiting for its turn (a rate slot, a pause) is
    /// reported as not attempted and not sent, the rest are not read, and `send_batch`
    /// returns.
    ///
    /// Defaults to none.
    #[must_use]
    pub fn stop_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.stop = Some(flag);
        self
    }

    /// At most `n` sends in flight at once, each on its own worker thread (1 to
    /// [`MAX_CONCURRENCY`]). The client keeps that many connections alive.
    ///
    /// Defaults to 4.
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// At most `per_second` attempts started per second across all workers, retries
    /// included, evenly spaced (a rate of 2 starts one attempt every 500 ms, never two at once
    /// at the top of a second).
    ///
    /// Defaults to no limit (the concurrency alone bounds the load).
    #[must_use]
    pub fn rate_per_second(mut self, per_second: f64) -> Self {
        self.rate = Some(per_second);
        self
    }

    /// The prefix of every derived idempotency key (see [`Client::send_batch`]): up to 223
    /// characters of `A-Z a-z 0-9 _ - :`, a readable tag for the job. With a
    /// [journal](Self::journal) the keys also mix in the journal's random id, so two jobs never
    /// share a key whatever their prefixes. Without one, choose a new prefix (a date, a job
    /// id) when a later batch must send the same text to the same number again within the
    /// server's 24 hours: under the same prefix it would be replayed, not sent.
    ///
    /// Defaults to `batch-`.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The number of workers.
    pub fn concurrency_limit(&self) -> usize {
        self.concurrency
    }

    /// The rate limit, if any.
    pub fn rate_limit(&self) -> Option<f64> {
        self.rate
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The journal's path, if any.
    pub fn journal_path(&self) -> Option<&Path> {
        self.journal.as_deref()
    }

    /// Checks the options: what [`Client::send_batch`] refuses.
    ///
    /// # Errors
    ///
    /// A [`Config`](crate::ErrorKind::Config) error when the concurrency is 0 or above
    /// [`MAX_CONCURRENCY`], the rate is not a positive number, the prefix is too long or
    /// has a character a key may not have, or the shard is not `k < n`.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some((k, n)) = self.shard
            && (n == 0 || k >= n)
        {
            return Err(Error::config(format!(
                "the batch shard must be K of N with 0 <= K < N (it is {k} of {n})"
            )));
        }
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(Error::config(format!(
                "the batch concurrency must be 1 to {MAX_CONCURRENCY} (it is {})",
                self.concurrency
            )));
        }
        if let Some(r) = self.rate {
            // At least one a day, so the interval between starts stays a sane duration.
            if !(r.is_finite() && r >= 1.0 / 86_400.0) {
                return Err(Error::config(format!(
                    "the batch rate must be a positive number of sends per second (it is {r})"
                )));
            }
        }
        if self.key_prefix.len() > MAX_PREFIX
            || (!self.key_prefix.is_empty() && idempotency_key_problem(&self.key_prefix).is_some())
        {
            return Err(Error::config(format!(
                "the batch key prefix must be at most {MAX_PREFIX} characters of A-Z a-z 0-9 _ - :"
            )));
        }
        Ok(())
    }

    /// The idempotency key a batch gives `request` through `assistant_id`: the request's own
    /// key if it has one, else one derived from the assistant id and the request's exact HTTP
    /// body (see [`Client::send_batch`]). For a dry run, or to log keys before sending.
    ///
    /// ```
    /// use telnyx_assistant_sms::{BatchOptions, SendSmsRequest};
    ///
    /// let options = BatchOptions::new().key_prefix("job-42-");
    /// let req = SendSmsRequest::new("+15550001111", "+15550002222").text("Shipped");
    /// let key = options.idempotency_key_for("assistant-1", &req)?;
    /// assert_eq!(key, "job-42-daadd5a0718171202f7723c9aa212626");
    /// // The same request always derives the same key; any change gives another.
    /// assert_eq!(options.idempotency_key_for("assistant-1", &req)?, key);
    /// assert_ne!(options.idempotency_key_for("assistant-2", &req)?, key);
    /// # Ok::<(), telnyx_assistant_sms::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`Config`](crate::ErrorKind::Config) error when the options are invalid (see
    /// [`validate`](Self::validate)), or, with a [journal](Self::journal), when it cannot be
    /// read: with a journal, derived keys mix in its random id, read from the file. (A journal
    /// that does not exist yet has no id: the keys are made when it is created, and this
    /// returns the key without it, as [`journal`](Self::journal) documents.)
    pub fn idempotency_key_for(
        &self,
        assistant_id: &str,
        request: &SendSmsRequest,
    ) -> Result<String, Error> {
        self.validate()?;
        if let Some(k) = &request.idempotency_key {
            return Ok(k.clone());
        }
        let salt = match &self.journal {
            Some(path) => Journal::read(path, assistant_id)?.salt().to_owned(),
            None => String::new(),
        };
        let mut body = Vec::with_capacity(256);
        request
            .write_wire_body(&mut body)
            .map_err(|e| Error::config("the request could not be serialized").with_source(e))?;
        let digest = digest(assistant_id, &body);
        Ok(derive_key(&self.key_prefix, &salt, &digest))
    }
}

/// The first 128 bits of SHA-256 over: the assistant id's length in bytes as 8 bytes
/// big-endian, the assistant id (UTF-8), and the HTTP body. What a request is, for keys,
/// duplicates, shards and the journal's pins.
fn digest(assistant_id: &str, body: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(&(assistant_id.len() as u64).to_be_bytes());
    h.update(assistant_id.as_bytes());
    h.update(body);
    let d = h.finish();
    let mut bits = [0; 16];
    bits.copy_from_slice(&d[..DERIVED_HEX / 2]);
    bits
}

/// A derived key: `prefix` + 32 hex digits. Without a salt, the request's digest itself (the
/// same on every run, platform and version: a re-run without a journal derives the same
/// keys); with the journal's salt, the first 128 bits of SHA-256 over the salt and the digest,
/// so keys differ between journals and reveal nothing of the request.
fn derive_key(prefix: &str, salt: &str, digest: &[u8; 16]) -> String {
    if salt.is_empty() {
        return format!("{prefix}{}", hex(digest));
    }
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(digest);
    let d = h.finish();
    format!("{prefix}{}", hex(&d[..DERIVED_HEX / 2]))
}

/// 128 bits of SHA-256 of `bytes`: how the batch tells requests apart without keeping them.
fn fingerprint(bytes: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(bytes);
    let d = h.finish();
    let mut f = [0; 16];
    f.copy_from_slice(&d[..16]);
    f
}

/// What happened to one request of a batch.
#[derive(Debug)]
#[non_exhaustive]
pub struct BatchResult {
    /// The request's position in the input, from 0.
    pub index: usize,
    /// The `Idempotency-Key` it was sent under (or would have been, for an invalid one).
    pub idempotency_key: String,
    /// How it ended.
    pub outcome: BatchOutcome,
    /// The outcome was read from the [journal](BatchOptions::journal), recorded by an earlier
    /// run: this run did not send it.
    pub from_journal: bool,
}

/// How one request of a batch ended.
///
/// When the server asks every client to wait longer than a send waits (a `429` or `503` with a
/// `Retry-After` over 60 s), or its pauses add up past the
/// [budget](BatchOptions::throttle_budget), the batch stops sending: the requests not sent yet
/// end as [`Failed`](Self::Failed) with a `Transport` error that says so, `attempts() == 0`,
/// `may_have_been_sent() == false` and the wait in `retry_after()`. Run the batch again
/// later: with a journal, what was sent is reported from it and the rest is sent.
#[derive(Debug)]
#[non_exhaustive]
pub enum BatchOutcome {
    /// The server accepted it (after any retries), in this run or, with
    /// [`from_journal`](BatchResult::from_journal), an earlier one.
    Sent(SendSmsResponse),
    /// It failed: as a single send fails (see [`Error`]; a `Validation` error means the
    /// request broke a rule, reused another request's key with a different body, or differs
    /// from what the journal recorded at its position, and was not sent).
    Failed(Error),
    /// An earlier request of the batch (at this index) derived or carried the same key for
    /// the same request: they are one message, sent once, and this one was not sent.
    Duplicate {
        /// The index of the request it duplicates.
        of: usize,
    },
    /// The journal shows that an earlier run may have sent it (it started with no outcome
    /// recorded, or failed after the request may have been written), so it was not sent
    /// again. Find out (the conversation, the recipient) before resending it with
    /// [`resend_in_doubt`](BatchOptions::resend_in_doubt).
    InDoubt {
        /// What is known, in one line.
        reason: String,
    },
}

/// Counts of a finished batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchSummary {
    /// Requests read from the input (in the [shard](BatchOptions::shard), with one).
    pub total: usize,
    /// Requests the server accepted (those reported from the journal included).
    pub sent: usize,
    /// Requests that failed (invalid ones included).
    pub failed: usize,
    /// Requests that duplicated an earlier one and were not sent.
    pub duplicates: usize,
    /// Requests in doubt, not sent again (with a journal).
    pub in_doubt: usize,
    /// Of `sent`, those an earlier run sent, reported from the journal.
    pub from_journal: usize,
    /// From the first request read to the last result.
    pub elapsed: Duration,
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl fmt::Display for BatchSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} sent",
            plural(self.total, "request", "requests"),
            self.sent
        )?;
        if self.from_journal > 0 {
            write!(f, " ({} from the journal)", self.from_journal)?;
        }
        write!(
            f,
            ", {} failed, {}",
            self.failed,
            plural(self.duplicates, "duplicate", "duplicates")
        )?;
        if self.in_doubt > 0 {
            write!(f, ", {} in doubt", self.in_doubt)?;
        }
        write!(f, " in {:.1} s", self.elapsed.as_secs_f64())
    }
}

/// What a batch makes of one request, before anything is sent: shared by
/// [`Client::check_batch`] and [`Client::send_batch`].
enum Plan {
    /// Not in this shard.
    Skip,
    /// Settled without sending: invalid, a duplicate, changed, or recorded by the journal.
    Settled(BatchResult),
    /// Refused (a `Failed` result): the key of the earlier request at this index, with
    /// another body.
    Conflict(BatchResult, usize),
    /// To send, under its key; `pin` is the body digest the journal records.
    Send(PreparedSend, String),
}

/// The input side of a batch, shared by the workers: the requests, read one at a time, and
/// the keys seen so far.
struct Feed<'a, I> {
    requests: I,
    next_index: usize,
    /// key fingerprint -> (index of the first request with it, the digest of its body)
    seen: HashMap<[u8; 16], (usize, [u8; 16])>,
    assistant_id: &'a str,
    options: &'a BatchOptions,
    journal: Option<&'a Journal>,
    /// Set once no more requests may be taken (stop flag, or a broken journal).
    closed: bool,
}

impl<'a, I: Iterator<Item = SendSmsRequest>> Feed<'a, I> {
    fn new(
        requests: I,
        assistant_id: &'a str,
        options: &'a BatchOptions,
        journal: Option<&'a Journal>,
    ) -> Self {
        Feed {
            requests,
            next_index: 0,
            seen: HashMap::new(),
            assistant_id,
            options,
            journal,
            closed: false,
        }
    }

    /// The next request to act on, prepared and checked against the earlier ones and the
    /// journal. Done under the feed's lock, so requests are numbered, and duplicates found,
    /// in input order.
    fn next(&mut self, client: &Client) -> Option<(usize, Plan)> {
        loop {
            if self.closed
                || self
                    .options
                    .stop
                    .as_ref()
                    .is_some_and(|f| f.load(Ordering::SeqCst))
            {
                self.closed = true;
                return None;
            }
            let request = self.requests.next()?;
            let index = self.next_index;
            self.next_index += 1;
            match self.plan(client, index, request) {
                Plan::Skip => continue,
                plan => return Some((index, plan)),
            }
        }
    }

    fn plan(&mut self, client: &Client, index: usize, request: SendSmsRequest) -> Plan {
        let settled = |key: String, outcome, from_journal| {
            Plan::Settled(BatchResult {
                index,
                idempotency_key: key,
                outcome,
                from_journal,
            })
        };
        let salt = self.journal.map_or("", Journal::salt);
        let prefix = &self.options.key_prefix;
        // Serialized once: the body is both what is sent and what the key is derived from.
        let mut prepared = match client.prepare_unkeyed(self.assistant_id, &request) {
            Ok(p) => p,
            Err(e) => {
                if self.out_of_shard(index) {
                    return Plan::Skip;
                }
                let key = request.idempotency_key.clone().unwrap_or_default();
                return settled(key, BatchOutcome::Failed(e), false);
            }
        };
        // Every key is compared by a hash of its text, derived or given (a given key may
        // equal another request's derived one), and every body by its digest.
        let body = digest(self.assistant_id, prepared.body());
        let key = match request.idempotency_key {
            Some(k) => k,
            None => derive_key(prefix, salt, &body),
        };
        let id = fingerprint(key.as_bytes());
        prepared.idempotency_key = Some(key.clone());
        // Every request is checked against the earlier ones, in the shard or not, so that
        // identical requests stay one message whichever shards they fall in.
        let first = self.seen.get(&id).copied();
        if first.is_none() {
            self.seen.insert(id, (index, body));
        }
        if self.out_of_shard(index) {
            return Plan::Skip;
        }
        match first {
            Some((of, first_body)) if first_body == body => {
                return settled(key, BatchOutcome::Duplicate { of }, false);
            }
            Some((of, _)) => {
                let e = Error::validation(vec![Violation::new(
                    &["header", "Idempotency-Key"],
                    format!(
                        "is the key of request {of} too, with another request: the server \
                         would refuse it"
                    ),
                    "duplicate_key",
                )]);
                return Plan::Conflict(
                    BatchResult {
                        index,
                        idempotency_key: key,
                        outcome: BatchOutcome::Failed(e),
                        from_journal: false,
                    },
                    of,
                );
            }
            None => {}
        }
        let pin = hex(&body);
        if let Some(e) = self.journal.and_then(|j| j.moved(index, &key)) {
            return settled(key, BatchOutcome::Failed(e), false);
        }
        if let Some(entry) = self.journal.and_then(|j| j.entry(index)) {
            if entry.key != key || entry.body != pin {
                let e = Error::validation(vec![Violation::new(
                    &["journal", &index.to_string()],
                    "differs from the request the journal recorded at this position (another \
                     body or key): the input, or an option that shapes it (the key prefix, a \
                     default sender), changed since the journal's run",
                    "journal_mismatch",
                )]);
                return settled(key, BatchOutcome::Failed(e), false);
            }
            if let Some(res) = entry.response() {
                return settled(key, BatchOutcome::Sent(res), true);
            }
            if entry.in_doubt() && !self.options.resend_in_doubt {
                let reason = entry.doubt();
                return settled(key, BatchOutcome::InDoubt { reason }, true);
            }
        }
        Plan::Send(prepared, pin)
    }

    /// Shards go by position, so a request changed since a shard's run stays in that shard,
    /// whose journal then refuses it (by content, it could move to a shard whose journal
    /// never saw it, and be sent again there).
    fn out_of_shard(&self, index: usize) -> bool {
        let Some((k, n)) = self.options.shard else {
            return false;
        };
        index as u64 % u64::from(n) != u64::from(k)
    }
}

/// The output side: the caller's callback and the counts.
struct Sink<F> {
    on_result: F,
    summary: BatchSummary,
}

/// What [`Client::check_batch`] found, before anything is sent.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct BatchCheck {
    /// Requests read (in the shard, with one).
    pub total: usize,
    /// Requests that would be sent by [`Client::send_batch`] now.
    pub to_send: usize,
    /// Requests the journal shows sent: reported from it, not sent again.
    pub sent_before: usize,
    /// Requests in doubt in the journal: not sent again (unless resent).
    pub in_doubt: usize,
    /// Requests that duplicate an earlier one.
    pub duplicates: usize,
    /// Requests that would fail before sending: invalid, a key reused with another body, or
    /// (the last two are the journal's) another request than the journal recorded at their
    /// position. Each with its index; at most the first 1,000.
    pub refused: Vec<(usize, Error)>,
    /// How many were refused (the length of `refused`, or more).
    pub refused_count: usize,
}

/// What a run of the batch would do with one request, found without sending anything:
/// [`Client::plan_batch`] reports one for each request (of the [shard](BatchOptions::shard),
/// with one), in input order.
#[derive(Debug)]
#[non_exhaustive]
pub struct BatchPlan {
    /// The request's position in the input, from 0.
    pub index: usize,
    /// The `Idempotency-Key` it would be sent under: its own, or derived from it (with the
    /// random id of a journal that exists; a journal a run is yet to create has none yet, so
    /// the run's derived keys will differ from these).
    pub idempotency_key: String,
    /// `None` when a run would send it. Otherwise the outcome a run reports for it without
    /// sending it: `Sent` or `InDoubt` from the journal, `Duplicate`, or `Failed` with a
    /// `Validation` error (it breaks a rule, reuses another request's key with another body,
    /// or differs from what the journal recorded at its position).
    pub outcome: Option<BatchOutcome>,
    /// The outcome was read from the journal, recorded by an earlier run.
    pub from_journal: bool,
    /// For a request refused because an earlier request carries or derives the same key with
    /// another body: that request's index (its `Failed` error says it in words).
    pub key_conflict_with: Option<usize>,
}

impl Client {
    /// Runs a batch's checks without sending anything: validates every request, finds
    /// duplicates, and, with a [journal](BatchOptions::journal), compares each request with
    /// what the journal recorded and counts what a run would send, report from the journal,
    /// or leave in doubt. The journal is only read (not created, not locked).
    ///
    /// Call it on the input before [`send_batch`](Self::send_batch) to refuse a changed
    /// input before any send: `send_batch` itself reads its input lazily, so it can refuse a
    /// changed request only when it comes to it (it never sends one). For each request's
    /// plan, see [`plan_batch`](Self::plan_batch).
    ///
    /// # Errors
    ///
    /// As [`send_batch`](Self::send_batch) before it sends: invalid options, an invalid
    /// assistant id, or a journal that cannot be read or belongs to another assistant.
    pub fn check_batch<I>(
        &self,
        assistant_id: &str,
        requests: I,
        options: &BatchOptions,
    ) -> Result<BatchCheck, Error>
    where
        I: IntoIterator<Item = SendSmsRequest>,
    {
        self.plan_batch(assistant_id, requests, options, |_| {})
    }

    /// [`check_batch`](Self::check_batch), calling `on_plan` with what a run would do with
    /// each request, in input order, as soon as it is known: a tool that reports every
    /// invalid request, or names the request a duplicate or a conflicting key belongs to,
    /// needs no list of its own (the requests are read one at a time, and only a fingerprint
    /// of each is kept, as [`send_batch`](Self::send_batch) keeps).
    ///
    /// ```
    /// use telnyx_assistant_sms::{BatchOptions, BatchOutcome, Client, SendSmsRequest};
    ///
    /// let client = Client::builder().api_key("KEY").build()?;
    /// let req = |to: &str, text: &str| SendSmsRequest::new("+15550001111", to).text(text);
    /// let requests = [
    ///     req("+15550002222", "Shipped"),
    ///     req("+15550002222", "Shipped"), // the same message again
    ///     req("+15550003333", "Hello").idempotency_key("order-7"),
    ///     req("+15550004444", "Other").idempotency_key("order-7"), // its key, another body
    ///     req("", "Nobody"),
    /// ];
    /// let mut plans = Vec::new();
    /// let check = client.plan_batch("assistant-id", requests, &BatchOptions::new(), |p| {
    ///     plans.push(p)
    /// })?;
    /// assert_eq!((check.to_send, check.duplicates, check.refused_count), (2, 1, 2));
    /// assert!(plans[0].outcome.is_none()); // would be sent
    /// assert!(matches!(plans[1].outcome, Some(BatchOutcome::Duplicate { of: 0 })));
    /// assert_eq!(plans[3].key_conflict_with, Some(2));
    /// let Some(BatchOutcome::Failed(e)) = &plans[4].outcome else { unreachable!() };
    /// assert_eq!(e.violations()[0].code(), "blank");
    /// # Ok::<(), telnyx_assistant_sms::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`check_batch`](Self::check_batch); `on_plan` is not called then.
    pub fn plan_batch<I, F>(
        &self,
        assistant_id: &str,
        requests: I,
        options: &BatchOptions,
        mut on_plan: F,
    ) -> Result<BatchCheck, Error>
    where
        I: IntoIterator<Item = SendSmsRequest>,
        F: FnMut(BatchPlan),
    {
        check_batch_args(assistant_id, options)?;
        let journal = match &options.journal {
            Some(path) => Some(Journal::read(path, assistant_id)?),
            None => None,
        };
        let mut feed = Feed::new(
            requests.into_iter(),
            assistant_id,
            options,
            journal.as_ref(),
        );
        let mut check = BatchCheck::default();
        while let Some((index, plan)) = feed.next(self) {
            check.total += 1;
            let (result, key_conflict_with) = match plan {
                Plan::Skip => continue,
                Plan::Send(prepared, _) => {
                    check.to_send += 1;
                    on_plan(BatchPlan {
                        index,
                        idempotency_key: prepared.idempotency_key.unwrap_or_default(),
                        outcome: None,
                        from_journal: false,
                        key_conflict_with: None,
                    });
                    continue;
                }
                Plan::Settled(r) => (r, None),
                Plan::Conflict(r, of) => (r, Some(of)),
            };
            match &result.outcome {
                BatchOutcome::Sent(_) => check.sent_before += 1,
                BatchOutcome::InDoubt { .. } => check.in_doubt += 1,
                BatchOutcome::Duplicate { .. } => check.duplicates += 1,
                BatchOutcome::Failed(e) => {
                    check.refused_count += 1;
                    if check.refused.len() < 1000 {
                        // One pointer: the plan keeps its own.
                        check.refused.push((index, e.clone()));
                    }
                }
            }
            on_plan(BatchPlan {
                index,
                idempotency_key: result.idempotency_key,
                outcome: Some(result.outcome),
                from_journal: result.from_journal,
                key_conflict_with,
            });
        }
        Ok(check)
    }

    /// Sends many SMS through the assistant `assistant_id`: each request as
    /// [`send_sms`](Self::send_sms) would send it (same validation, retries and error
    /// classes), from [`concurrency`](BatchOptions::concurrency) workers, and calls
    /// `on_result` with each result as soon as it is known, in the order they finish, tagged
    /// with the request's position in `requests`.
    ///
    /// The workers are the calling thread and `concurrency - 1` scoped threads: each takes
    /// the next request, sends it and reports it, with no hand-off between threads on the
    /// way. So `on_result` runs on whichever worker finished (never two at once), and must
    /// be `Send`, as must the iterator of `requests`. A panic in `on_result` stops the batch
    /// and is passed on once the workers have stopped.
    ///
    /// - **Never twice.** With a [journal](BatchOptions::journal), running the same batch
    ///   again sends nothing that an earlier run sent or may have sent, whatever the server
    ///   does with keys. Without one, a re-run leans on the server: a request that carries an
    ///   idempotency key keeps it; any other gets one derived from the assistant id and its
    ///   exact HTTP body (see [`BatchOptions::idempotency_key_for`]), the same on every run,
    ///   so a server that honours keys replays what it already sent (for 24 hours). One that
    ///   ignores them sends again.
    /// - **Duplicates.** Two requests of one batch with the same key and the same body are one
    ///   message: the first is sent, the later one reported as
    ///   [`Duplicate`](BatchOutcome::Duplicate) and not sent. The same key with another body
    ///   (only possible with keys given by the caller) fails the later one with a `Validation`
    ///   error, as the server would refuse it.
    /// - **Pacing.** With a [rate](BatchOptions::rate_per_second), attempt starts are evenly
    ///   spaced across all workers. A `429` or `503` with a wait (`Retry-After`,
    ///   `retry-after-ms`) holds every worker until then, not just the one that got it; the
    ///   retry itself follows the usual rules. Past the
    ///   [budget](BatchOptions::throttle_budget) of such pauses, the batch stops.
    /// - **Memory** is bounded by the concurrency: `requests` is read lazily, one request per
    ///   worker as it becomes free, and each result is handed over as it comes. Only a
    ///   fingerprint per request is kept (about 40 bytes), to find duplicates (and, with a
    ///   journal, its records, about 200 bytes a request).
    ///
    /// ```no_run
    /// use telnyx_assistant_sms::{BatchOptions, BatchOutcome, Client, SendSmsRequest};
    ///
    /// let client = Client::from_env()?;
    /// let shipped = [("+15550002222", 1042), ("+15550003333", 1043)];
    /// let requests = shipped.iter().map(|(to, order)| {
    ///     SendSmsRequest::new("+15550001111", *to).text(format!("Order {order} has shipped"))
    /// });
    /// let options = BatchOptions::new()
    ///     .concurrency(8)
    ///     .rate_per_second(10.0)
    ///     .journal("shipped.journal");
    /// let summary = client.send_batch("assistant-id", requests, &options, |r| match r.outcome {
    ///     BatchOutcome::Sent(res) => println!("{}: sent {:?}", r.index, res.conversation_id),
    ///     BatchOutcome::Failed(e) => eprintln!("{}: {e}", r.index),
    ///     BatchOutcome::Duplicate { of } => println!("{}: same message as {of}", r.index),
    ///     BatchOutcome::InDoubt { reason } => eprintln!("{}: in doubt: {reason}", r.index),
    ///     _ => {}
    /// })?;
    /// println!("{summary}");
    /// # Ok::<(), telnyx_assistant_sms::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Before anything is sent: a [`Config`](crate::ErrorKind::Config) error for invalid
    /// options (see [`BatchOptions::validate`]) or a journal that cannot be opened, read,
    /// locked (another run holds it) or belongs to another assistant, and a
    /// [`Validation`](crate::ErrorKind::Validation) error when `assistant_id` breaks a rule.
    /// A failure of one request is its result, not an error of the batch.
    pub fn send_batch<I, F>(
        &self,
        assistant_id: &str,
        requests: I,
        options: &BatchOptions,
        on_result: F,
    ) -> Result<BatchSummary, Error>
    where
        I: IntoIterator<Item = SendSmsRequest>,
        I::IntoIter: Send,
        F: FnMut(BatchResult) + Send,
    {
        check_batch_args(assistant_id, options)?;
        let journal = match &options.journal {
            Some(path) => Some(Journal::open(path, assistant_id)?),
            None => None,
        };
        let started = Instant::now();
        let pacer = Pacer::new(options.rate, options.throttle_budget, options.stop.clone());
        let feed = Mutex::new(Feed::new(
            requests.into_iter(),
            assistant_id,
            options,
            journal.as_ref(),
        ));
        let sink = Mutex::new(Sink {
            on_result,
            summary: BatchSummary::default(),
        });
        let work = || self.batch_worker(&feed, &sink, &pacer, journal.as_ref());
        std::thread::scope(|scope| {
            for _ in 1..options.concurrency {
                scope.spawn(work);
            }
            work();
        });
        let mut summary = sink.into_inner().unwrap_or_else(|p| p.into_inner()).summary;
        summary.elapsed = started.elapsed();
        Ok(summary)
    }

    /// One worker: takes requests until there are none left (or another worker panicked).
    fn batch_worker<I, F>(
        &self,
        feed: &Mutex<Feed<'_, I>>,
        sink: &Mutex<Sink<F>>,
        pacer: &Pacer,
        journal: Option<&Journal>,
    ) where
        I: Iterator<Item = SendSmsRequest>,
        F: FnMut(BatchResult),
    {
        // A sent request's outcome is written at once but handed over only once it is on
        // disk: the sync of this worker's next start covers it, sparing an `fsync` a request.
        let mut pending: Option<(BatchResult, u64)> = None;
        loop {
            let work = match feed.lock() {
                Ok(mut f) => f.next(self),
                Err(_) => return,
            };
            let (result, seq) = match work {
                None => {
                    deliver(sink, journal, pending.take());
                    return;
                }
                Some((_, Plan::Skip)) => continue,
                Some((_, Plan::Settled(result) | Plan::Conflict(result, _))) => (result, None),
                Some((index, Plan::Send(prepared, pin))) => {
                    let key = prepared.idempotency_key.clone().unwrap_or_default();
                    let mut gone = false;
                    let mut hand_over = || gone = !deliver(sink, journal, pending.take());
                    let (outcome, seq) = self.send_journaled_one(
                        index,
                        &prepared,
                        &pin,
                        pacer,
                        journal,
                        &mut hand_over,
                    );
                    if gone {
                        return;
                    }
                    let result = BatchResult {
                        index,
                        idempotency_key: key,
                        outcome,
                        from_journal: false,
                    };
                    (result, seq)
                }
            };
            if !deliver(sink, journal, pending.take()) {
                return;
            }
            match seq {
                Some(seq) => pending = Some((result, seq)),
                None => {
                    if !deliver(sink, journal, Some((result, 0))) {
                        return;
                    }
                }
            }
        }
    }

    /// Sends one request of a batch: its start on disk first, its outcome written after (and
    /// its sequence number returned, to be synced before anyone hears of it). `after_start`
    /// runs once the start is on disk, or when the request ends before that: the start's
    /// sync covers the worker's previous outcome, which it then hands over.
    fn send_journaled_one(
        &self,
        index: usize,
        prepared: &PreparedSend,
        pin: &str,
        pacer: &Pacer,
        journal: Option<&Journal>,
        after_start: &mut dyn FnMut(),
    ) -> (BatchOutcome, Option<u64>) {
        let key = prepared.idempotency_key.as_deref();
        if let Some((wait, budget)) = pacer.stopped() {
            let e = if budget {
                Error::transport(
                    format!(
                        "not attempted: the batch stopped sending when the pauses the server \
                         asked for added up to {} (past the batch's budget of pauses); run it \
                         again later",
                        crate::error::human(wait)
                    ),
                    false,
                )
                .with_retry_after(Some(wait))
                .finish(0, key, false, Duration::ZERO)
            } else {
                Error::not_attempted(wait, key)
            };
            after_start();
            return (BatchOutcome::Failed(e), None);
        }
        if let Some(broken) = journal.and_then(Journal::broken) {
            // Nothing is sent that the journal cannot record: the rest are reported, not sent.
            let e = Error::transport(
                format!("not attempted: the batch stopped sending when {broken}"),
                false,
            )
            .finish(0, key, false, Duration::ZERO);
            after_start();
            return (BatchOutcome::Failed(e), None);
        }
        // The slot first (a rate wait, a pause), then the start on disk: a kill during the wait
        // leaves nothing in doubt, and a stop during it sends nothing.
        if !pacer.before_attempt() {
            let e = Error::transport(
                "not attempted: the batch was stopped (a signal) before this request's turn",
                false,
            )
            .finish(0, key, false, Duration::ZERO);
            after_start();
            return (BatchOutcome::Failed(e), None);
        }
        if let Some(Err(e)) = journal.map(|j| j.start(index, key.unwrap_or(""), pin)) {
            // Not on disk, so not sent: a send the journal does not know of could be sent
            // again by a re-run.
            after_start();
            return (BatchOutcome::Failed(e), None);
        }
        // The start's sync covered every record written before it: the worker's previous
        // outcome may be handed over now.
        after_start();
        let slot_taken = SlotTaken {
            pacer,
            first: std::cell::Cell::new(true),
            granted: std::time::Instant::now(),
        };
        let result = self.send_paced(prepared, Some((&slot_taken, index)));
        let seq = match journal.map(|j| j.finish_unsynced(index, result.as_ref())) {
            Some(Ok(seq)) => Some(seq),
            Some(Err(e)) => {
                // The start is on disk: a re-run treats this request as in doubt.
                log::warn!(
                    target: "telnyx_assistant_sms",
                    batch_index = index;
                    "request {index}: its outcome could not be journaled: {e}"
                );
                None
            }
            None => None,
        };
        let outcome = match result {
            Ok(res) => BatchOutcome::Sent(res),
            Err(e) => BatchOutcome::Failed(e),
        };
        (outcome, seq)
    }
}

impl Client {
    /// Sends one request under a [journal](BatchOptions::journal), for a job that may run more
    /// than once (a cron job, a retrying script): the request must carry its own idempotency
    /// key, and the journal, keyed by those keys, remembers each one's outcome.
    ///
    /// - A key the journal shows sent is not sent again: the recorded result, with
    ///   [`from_journal`](BatchResult::from_journal) set.
    /// - A key in doubt (an earlier run started it and recorded no outcome, or it failed after
    ///   it may have been sent) is not sent: [`BatchOutcome::InDoubt`], unless `options` has
    ///   [`resend_in_doubt`](BatchOptions::resend_in_doubt).
    /// - Otherwise it is sent as [`send_sms`](Self::send_sms) sends it, its start on disk
    ///   first and its outcome after.
    ///
    /// Only the journal, the key prefix (unused: the key is given) and `resend_in_doubt` of
    /// `options` matter here.
    ///
    /// ```
    /// use telnyx_assistant_sms::{BatchOptions, BatchOutcome, Client, SendSmsRequest};
    /// # let dir = std::env::temp_dir().join(format!("send-journaled-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// let client = Client::builder()
    ///     .api_key("KEY")
    ///     .base_url(format!("http://127.0.0.1:{port}/v2")) // nothing listens: not sent
    ///     .no_proxy()
    ///     .max_retries(0)
    ///     .build()?;
    /// let req = SendSmsRequest::new("+15550001111", "+15550002222")
    ///     .text("Your order has shipped")
    ///     .idempotency_key("order-1042-shipped");
    /// let options = BatchOptions::new().journal(dir.join("cron.journal"));
    /// let result = client.send_journaled("assistant-id", &req, &options)?;
    /// assert!(matches!(result.outcome, BatchOutcome::Failed(ref e) if !e.may_have_been_sent()));
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), telnyx_assistant_sms::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`Config`](crate::ErrorKind::Config) error when `options` has no journal, the
    /// journal cannot be opened, read or locked, or belongs to another assistant; a
    /// [`Validation`](crate::ErrorKind::Validation) error when the request breaks a rule, has
    /// no idempotency key, or the journal recorded another request under its key. A failed
    /// send is the result's outcome, not an error.
    pub fn send_journaled(
        &self,
        assistant_id: &str,
        request: &SendSmsRequest,
        options: &BatchOptions,
    ) -> Result<BatchResult, Error> {
        let Some(path) = &options.journal else {
            return Err(Error::config(
                "send_journaled needs BatchOptions::journal(path)",
            ));
        };
        let Some(key) = request.idempotency_key.clone() else {
            return Err(Error::validation(vec![Violation::new(
                &["header", "Idempotency-Key"],
                "is needed to send under a journal: the journal finds the send by its key",
                "missing",
            )]));
        };
        let mut prepared = self.prepare_unkeyed(assistant_id, request)?;
        prepared.idempotency_key = Some(key.clone());
        let journal = Journal::open(path, assistant_id)?;
        let index = journal.position_for(&key);
        let pin = hex(&digest(assistant_id, prepared.body()));
        let result = |outcome, from_journal| BatchResult {
            index,
            idempotency_key: key.clone(),
            outcome,
            from_journal,
        };
        if let Some(entry) = journal.entry(index) {
            if entry.body != pin {
                return Err(Error::validation(vec![Violation::new(
                    &["header", "Idempotency-Key"],
                    "is the key of another request in the journal (another body): a key names \
                     one message",
                    "journal_mismatch",
                )]));
            }
            if let Some(res) = entry.response() {
                return Ok(result(BatchOutcome::Sent(res), true));
            }
            if entry.in_doubt() && !options.resend_in_doubt {
                let reason = entry.doubt();
                return Ok(result(BatchOutcome::InDoubt { reason }, true));
            }
        }
        let pacer = Pacer::new(None, options.throttle_budget, options.stop.clone());
        let (outcome, seq) =
            self.send_journaled_one(index, &prepared, &pin, &pacer, Some(&journal), &mut || {});
        if let Some(Err(e)) = seq.map(|seq| journal.sync_upto(seq)) {
            // Sent or not, the outcome is the caller's; its start is on disk, so a later run
            // treats the key as in doubt rather than sending it again.
            log::warn!(target: "telnyx_assistant_sms", "its outcome could not be synced to disk: {e}");
        }
        Ok(result(outcome, false))
    }
}

/// Hands a result to the caller, once its outcome (sequence number `seq` in the journal, if
/// it was journaled) is on disk; `false` when the caller's side is gone (a panic).
fn deliver<F: FnMut(BatchResult)>(
    sink: &Mutex<Sink<F>>,
    journal: Option<&Journal>,
    item: Option<(BatchResult, u64)>,
) -> bool {
    let Some((result, seq)) = item else {
        return true;
    };
    if let (Some(j), true) = (journal, seq > 0) {
        if let Err(e) = j.sync_upto(seq) {
            // Written, not synced: a re-run after a power cut treats it as in doubt.
            log::warn!(
                target: "telnyx_assistant_sms",
                batch_index = result.index;
                "request {}: its outcome could not be synced to disk: {e}",
                result.index
            );
        }
    }
    let Ok(mut sink) = sink.lock() else {
        return false;
    };
    let s = &mut sink.summary;
    s.total += 1;
    match &result.outcome {
        BatchOutcome::Sent(_) => s.sent += 1,
        BatchOutcome::Failed(_) => s.failed += 1,
        BatchOutcome::Duplicate { .. } => s.duplicates += 1,
        BatchOutcome::InDoubt { .. } => s.in_doubt += 1,
    }
    if result.from_journal && matches!(result.outcome, BatchOutcome::Sent(_)) {
        s.from_journal += 1;
    }
    (sink.on_result)(result);
    true
}

/// The pacer for a request whose first slot was taken before its start was journaled: the
/// first attempt goes at once (unless the batch is being stopped), the retries wait as usual.
struct SlotTaken<'a> {
    pacer: &'a Pacer,
    first: std::cell::Cell<bool>,
    /// When the slot was granted (before the start's `fsync`).
    granted: std::time::Instant,
}

impl crate::send::Pace for SlotTaken<'_> {
    fn before_attempt(&self) -> bool {
        if self.first.replace(false) {
            // A start that took longer to reach the disk than the rate's interval would
            // bunch this attempt with the next ones: it takes a fresh slot instead.
            if self
                .pacer
                .interval()
                .is_some_and(|i| self.granted.elapsed() > i)
            {
                return self.pacer.before_attempt();
            }
            return !self.pacer.stopping();
        }
        self.pacer.before_attempt()
    }

    fn server_wait(&self, wait: Duration) {
        crate::send::Pace::server_wait(self.pacer, wait);
    }

    fn sleep(&self, wait: Duration) -> bool {
        self.pacer.sleep(wait)
    }
}

/// What `check_batch` and `send_batch` refuse before reading any request.
fn check_batch_args(assistant_id: &str, options: &BatchOptions) -> Result<(), Error> {
    options.validate()?;
    let mut violations = Vec::new();
    check_assistant_id(assistant_id, &mut violations);
    if !violations.is_empty() {
        return Err(Error::validation(violations));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_are_documented_sha256() {
        // sha256(00 00 00 00 00 00 00 01 | "a" | "{}")
        let mut h = Sha256::new();
        h.update(&[0, 0, 0, 0, 0, 0, 0, 1, b'a', b'{', b'}']);
        let want = hex(&h.finish());
        let key = |prefix: &str, salt: &str, id: &str, body: &[u8]| {
            derive_key(prefix, salt, &digest(id, body))
        };
        assert_eq!(key("p-", "", "a", b"{}"), format!("p-{}", &want[..32]));
        // The length prefix keeps the id and the body apart.
        assert_ne!(key("", "", "ab", b"{}"), key("", "", "a", b"b{}"));
        let k = key(&"x".repeat(MAX_PREFIX), "salt", "a", b"{}");
        assert!(
            idempotency_key_problem(&k).is_none(),
            "{} characters",
            k.len()
        );
        // A salt gives other keys, none of which is the request's digest.
        let (one, two) = (key("p-", "s1", "a", b"{}"), key("p-", "s2", "a", b"{}"));
        assert_ne!(one, two);
        assert!(!one.contains(&want[..32]) && !two.contains(&want[..32]));
        assert_eq!(one.len(), 2 + 32);
    }

    #[test]
    fn options_are_checked() {
        assert!(BatchOptions::new().validate().is_ok());
        for bad in [
            BatchOptions::new().concurrency(0),
            BatchOptions::new().concurrency(MAX_CONCURRENCY + 1),
            BatchOptions::new().rate_per_second(0.0),
            BatchOptions::new().rate_per_second(f64::NAN),
            BatchOptions::new().rate_per_second(-1.0),
            BatchOptions::new().key_prefix("has space"),
            BatchOptions::new().key_prefix("x".repeat(MAX_PREFIX + 1)),
            BatchOptions::new().shard(2, 2),
            BatchOptions::new().shard(0, 0),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(BatchOptions::new().key_prefix("").validate().is_ok());
    }
}
