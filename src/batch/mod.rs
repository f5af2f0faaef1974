//! Bulk sends: many requests through one assistant, from a bounded set of worker threads,
//! rate-limited, pausing together when the server asks, under idempotency keys that make a
//! re-run after a crash safe.
//!
//! Every request goes through the same send loop as a single send (`Client::send_paced`):
//! the same validation, classification, retries and keys. This module only schedules.

mod pacer;
mod sha256;

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) use pacer::Pacer;
use sha256::{Sha256, hex};

use crate::client::{Client, PreparedSend, check_assistant_id};
use crate::error::{Error, Violation};
use crate::request::{SendSmsRequest, idempotency_key_problem};
use crate::response::SendSmsResponse;

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
/// assert_eq!(options.get_concurrency(), 8);
/// ```
#[derive(Clone, Debug)]
pub struct BatchOptions {
    concurrency: usize,
    rate: Option<f64>,
    key_prefix: String,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            concurrency: 4,
            rate: None,
            key_prefix: "batch-".to_owned(),
        }
    }
}

impl BatchOptions {
    /// The defaults: 4 workers, no rate limit, key prefix `batch-`.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `n` sends in flight at once, each on its own worker thread (1 to
    /// [`MAX_CONCURRENCY`]). The client keeps that many connections alive.
    ///
    /// Defaults to 4.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// At most `per_second` attempts started per second across all workers, retries
    /// included, evenly spaced (a rate of 2 starts one attempt every 500 ms, never two at once
    /// at the top of a second).
    ///
    /// Defaults to no limit (the concurrency alone bounds the load).
    pub fn rate_per_second(mut self, per_second: f64) -> Self {
        self.rate = Some(per_second);
        self
    }

    /// The prefix of every derived idempotency key (see [`Client::send_batch`]): up to 223
    /// characters of `A-Z a-z 0-9 _ - :`. Choose a new one (a date, a job id) when a later batch
    /// must send the same text to the same number again within the server's 24 hours: under
    /// the same prefix it would be replayed, not sent.
    ///
    /// Defaults to `batch-`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The number of workers.
    pub fn get_concurrency(&self) -> usize {
        self.concurrency
    }

    /// The rate limit, if any.
    pub fn get_rate_per_second(&self) -> Option<f64> {
        self.rate
    }

    /// The key prefix.
    pub fn get_key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// Checks the options: what [`Client::send_batch`] refuses.
    ///
    /// # Errors
    ///
    /// A [`Config`](crate::ErrorKind::Config) error when the concurrency is 0 or above
    /// [`MAX_CONCURRENCY`], the rate is not a positive number, or the prefix is too long or
    /// has a character a key may not have.
    pub fn check(&self) -> Result<(), Error> {
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
    /// [`check`](Self::check)).
    pub fn idempotency_key_for(
        &self,
        assistant_id: &str,
        request: &SendSmsRequest,
    ) -> Result<String, Error> {
        self.check()?;
        if let Some(k) = &request.idempotency_key {
            return Ok(k.clone());
        }
        let mut body = Vec::with_capacity(256);
        request
            .write_wire_body(&mut body)
            .map_err(|e| Error::config("the request could not be serialized").with_source(e))?;
        Ok(derive_key(&self.key_prefix, assistant_id, &body))
    }
}

/// `prefix` + the first 32 hex digits of SHA-256 over: the assistant id's length in bytes as
/// 8 bytes big-endian, the assistant id (UTF-8), and the HTTP body.
fn derive_key(prefix: &str, assistant_id: &str, body: &[u8]) -> String {
    derive(prefix, assistant_id, body).0
}

/// The derived key, and its 128 bits (the same bits the key spells in hex): a digest of the
/// assistant id and the body.
fn derive(prefix: &str, assistant_id: &str, body: &[u8]) -> (String, [u8; 16]) {
    let mut h = Sha256::new();
    h.update(&(assistant_id.len() as u64).to_be_bytes());
    h.update(assistant_id.as_bytes());
    h.update(body);
    let digest = h.finish();
    let mut bits = [0; 16];
    bits.copy_from_slice(&digest[..DERIVED_HEX / 2]);
    (format!("{prefix}{}", hex(&bits)), bits)
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
}

/// How one request of a batch ended.
///
/// When the server asks every client to wait longer than a send waits (a `429` or `503` with a
/// `Retry-After` over 60 s), the batch stops sending: the requests not sent yet end as
/// [`Failed`](Self::Failed) with a `Transport` error that says so, `attempts() == 0`,
/// `may_have_been_sent() == false` and the wait in `retry_after()`. Run the batch again after
/// that wait: what was sent is replayed, the rest is sent.
#[derive(Debug)]
#[non_exhaustive]
pub enum BatchOutcome {
    /// The server accepted it (after any retries).
    Sent(SendSmsResponse),
    /// It failed: as a single send fails (see [`Error`]; a `Validation` error means the
    /// request broke a rule, or reused another request's key with a different body, and was
    /// not sent).
    Failed(Error),
    /// An earlier request of the batch (at this index) derived or carried the same key for
    /// the same request: they are one message, sent once, and this one was not sent.
    Duplicate {
        /// The index of the request it duplicates.
        of: usize,
    },
}

/// Counts of a finished batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchSummary {
    /// Requests read from the input.
    pub total: usize,
    /// Requests the server accepted.
    pub sent: usize,
    /// Requests that failed (invalid ones included).
    pub failed: usize,
    /// Requests that duplicated an earlier one and were not sent.
    pub duplicates: usize,
    /// From the first request read to the last result.
    pub elapsed: Duration,
}

impl fmt::Display for BatchSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests: {} sent, {} failed, {} duplicates in {:.1} s",
            self.total,
            self.sent,
            self.failed,
            self.duplicates,
            self.elapsed.as_secs_f64()
        )
    }
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
}

/// What a worker takes from the feed.
enum Work {
    /// A request to send.
    Send(usize, PreparedSend),
    /// A request already settled without sending (invalid, or a duplicate).
    Settled(BatchResult),
}

impl<I: Iterator<Item = SendSmsRequest>> Feed<'_, I> {
    /// The next request, prepared and checked against the earlier ones. Done under the
    /// feed's lock, so requests are numbered, and duplicates found, in input order.
    fn next(&mut self, client: &Client) -> Option<Work> {
        let request = self.requests.next()?;
        let index = self.next_index;
        self.next_index += 1;
        let settled = |key: String, outcome| {
            Some(Work::Settled(BatchResult {
                index,
                idempotency_key: key,
                outcome,
            }))
        };
        // Serialized once: the body is both what is sent and what the key is derived from.
        let mut prepared = match client.prepare_unkeyed(self.assistant_id, &request) {
            Ok(p) => p,
            Err(e) => {
                let key = self
                    .options
                    .idempotency_key_for(self.assistant_id, &request)
                    .unwrap_or_default();
                return settled(key, BatchOutcome::Failed(e));
            }
        };
        // Every key is compared by a hash of its text, derived or given (a given key may
        // equal another request's derived one), and every body by the digest a key would be
        // derived from, which for a derived key is already at hand.
        let (key, body) = match request.idempotency_key {
            Some(k) => (
                k,
                derive(&self.options.key_prefix, self.assistant_id, prepared.body()).1,
            ),
            None => derive(&self.options.key_prefix, self.assistant_id, prepared.body()),
        };
        let id = fingerprint(key.as_bytes());
        prepared.idempotency_key = Some(key.clone());
        match self.seen.get(&id) {
            Some(&(of, first_body)) if first_body == body => {
                settled(key, BatchOutcome::Duplicate { of })
            }
            Some(&(of, _)) => {
                let e = Error::validation(vec![Violation::new(
                    &["header", "Idempotency-Key"],
                    format!(
                        "is the key of request {of} too, with another request: the server \
                         would refuse it"
                    ),
                    "duplicate_key",
                )]);
                settled(key, BatchOutcome::Failed(e))
            }
            None => {
                self.seen.insert(id, (index, body));
                Some(Work::Send(index, prepared))
            }
        }
    }
}

/// The output side: the caller's callback and the counts.
struct Sink<F> {
    on_result: F,
    summary: BatchSummary,
}

impl Client {
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
    /// - **Keys that make a re-run safe.** A request that carries an idempotency key keeps
    ///   it; any other gets one derived from the assistant id and its exact HTTP body (see
    ///   [`BatchOptions::idempotency_key_for`]): the key prefix followed by the first 32 hex
    ///   digits of SHA-256 over the assistant id's length (8 bytes, big-endian), the assistant
    ///   id and the body. It is the same on every run, platform and version of Rust, so running
    ///   the same batch again after a crash cannot text anyone twice: the server replays what
    ///   it already sent (for 24 hours).
    /// - **Duplicates.** Two requests of one batch with the same key and the same body are one
    ///   message: the first is sent, the later one reported as
    ///   [`Duplicate`](BatchOutcome::Duplicate) and not sent. The same key with another body
    ///   (only possible with keys given by the caller) fails the later one with a `Validation`
    ///   error, as the server would refuse it.
    /// - **Pacing.** With a [rate](BatchOptions::rate_per_second), attempt starts are evenly
    ///   spaced across all workers. A `429` or `503` with a wait (`Retry-After`,
    ///   `retry-after-ms`) holds every worker until then, not just the one that got it; the
    ///   retry itself follows the usual rules.
    /// - **Memory** is bounded by the concurrency: `requests` is read lazily, one request per
    ///   worker as it becomes free, and each result is handed over as it comes. Only a
    ///   fingerprint per request is kept (about 40 bytes), to find duplicates.
    ///
    /// ```no_run
    /// use telnyx_assistant_sms::{BatchOptions, BatchOutcome, Client, SendSmsRequest};
    ///
    /// let client = Client::from_env()?;
    /// let shipped = [("+15550002222", 1042), ("+15550003333", 1043)];
    /// let requests = shipped.iter().map(|(to, order)| {
    ///     SendSmsRequest::new("+15550001111", *to).text(format!("Order {order} has shipped"))
    /// });
    /// let options = BatchOptions::new().concurrency(8).rate_per_second(10.0);
    /// let summary = client.send_batch("assistant-id", requests, &options, |r| match r.outcome {
    ///     BatchOutcome::Sent(res) => println!("{}: sent {:?}", r.index, res.conversation_id),
    ///     BatchOutcome::Failed(e) => eprintln!("{}: {e}", r.index),
    ///     BatchOutcome::Duplicate { of } => println!("{}: same message as {of}", r.index),
    ///     _ => {}
    /// })?;
    /// println!("{summary}");
    /// # Ok::<(), telnyx_assistant_sms::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Before anything is sent: a [`Config`](crate::ErrorKind::Config) error for invalid
    /// options (see [`BatchOptions::check`]), and a
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
        options.check()?;
        let mut violations = Vec::new();
        check_assistant_id(assistant_id, &mut violations);
        if !violations.is_empty() {
            return Err(Error::validation(violations));
        }
        let started = Instant::now();
        let pacer = Pacer::new(options.rate);
        let feed = Mutex::new(Feed {
            requests: requests.into_iter(),
            next_index: 0,
            seen: HashMap::new(),
            assistant_id,
            options,
        });
        let sink = Mutex::new(Sink {
            on_result,
            summary: BatchSummary::default(),
        });
        let work = || self.batch_worker(&feed, &sink, &pacer);
        std::thread::scope(|scope| {
            for _ in 1..options.concurrency {
                scope.spawn(work);
            }
            work();
        });
        let mut summary = sink.into_inner().unwrap_or_else(|p| p.into_inner()).summary;
        summary.total = feed
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .next_index;
        summary.elapsed = started.elapsed();
        Ok(summary)
    }

    /// One worker: takes requests until there are none left (or another worker panicked).
    fn batch_worker<I, F>(&self, feed: &Mutex<Feed<'_, I>>, sink: &Mutex<Sink<F>>, pacer: &Pacer)
    where
        I: Iterator<Item = SendSmsRequest>,
        F: FnMut(BatchResult),
    {
        loop {
            let work = match feed.lock() {
                Ok(mut f) => f.next(self),
                Err(_) => return,
            };
            let result = match work {
                None => return,
                Some(Work::Settled(result)) => result,
                Some(Work::Send(index, prepared)) => {
                    let outcome = match pacer.stopped() {
                        Some(wait) => BatchOutcome::Failed(Error::not_attempted(
                            wait,
                            prepared.idempotency_key.as_deref(),
                        )),
                        None => match self.send_paced(&prepared, Some((pacer, index))) {
                            Ok(res) => BatchOutcome::Sent(res),
                            Err(e) => BatchOutcome::Failed(e),
                        },
                    };
                    let key = prepared.idempotency_key.unwrap_or_default();
                    BatchResult {
                        index,
                        idempotency_key: key,
                        outcome,
                    }
                }
            };
            let Ok(mut sink) = sink.lock() else {
                return;
            };
            let s = &mut sink.summary;
            match &result.outcome {
                BatchOutcome::Sent(_) => s.sent += 1,
                BatchOutcome::Failed(_) => s.failed += 1,
                BatchOutcome::Duplicate { .. } => s.duplicates += 1,
            }
            (sink.on_result)(result);
        }
    }
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
        assert_eq!(derive_key("p-", "a", b"{}"), format!("p-{}", &want[..32]));
        // The length prefix keeps the id and the body apart.
        assert_ne!(derive_key("", "ab", b"{}"), derive_key("", "a", b"b{}"));
        let k = derive_key(&"x".repeat(MAX_PREFIX), "a", b"{}");
        assert!(
            idempotency_key_problem(&k).is_none(),
            "{} characters",
            k.len()
        );
    }

    #[test]
    fn options_are_checked() {
        assert!(BatchOptions::new().check().is_ok());
        for bad in [
            BatchOptions::new().concurrency(0),
            BatchOptions::new().concurrency(MAX_CONCURRENCY + 1),
            BatchOptions::new().rate_per_second(0.0),
            BatchOptions::new().rate_per_second(f64::NAN),
            BatchOptions::new().rate_per_second(-1.0),
            BatchOptions::new().key_prefix("has space"),
            BatchOptions::new().key_prefix("x".repeat(MAX_PREFIX + 1)),
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        assert!(BatchOptions::new().key_prefix("").check().is_ok());
    }
}
