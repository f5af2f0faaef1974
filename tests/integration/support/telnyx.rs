//! A handler that models Telnyx's `Idempotency-Key` handling, with faults injected per request.
//!
//! The model (Telnyx documents that only successful responses are replayed, and that another
//! body under the same key is a `422`):
//!
//! * A request with no key is *performed* (the SMS is sent) every time.
//! * The first request with a key is performed: recorded in [`Telnyx::performed`] with its
//!   key, body and time, and answered `200 {"conversation_id":"conv-N"}` (N unique, from 1).
//!   While it is being performed (during [`Telnyx::delay`]) the key is *in progress*.
//! * A repeat with the same key and the same body (byte for byte): while the first is in
//!   progress, `409`; once it was performed, a `200` replay with the same conversation id,
//!   and it is not performed again. This holds even when the performing attempt itself was
//!   answered with an error or not at all (the `*After` faults): once performed, any repeat
//!   replays the success.
//! * The same key with another body: `422`, whatever the state of the first.
//!
//! Error answers use Telnyx's envelope, `{"errors":[{"code","title","detail"}]}`; the codes
//! are this mock's own (`idempotency_in_progress`, `idempotency_mismatch`, `mock_<status>`).
//!
//! Faults: a caller-supplied function picks a [`Fault`] for each request from the request and
//! its attempt number. *Before* faults act instead of the model (nothing performed, no key
//! state changed); *after* faults replace whatever answer the model produced (a fresh 200, a
//! replay, a 409 or a 422). Scripted throttling ([`Telnyx::throttle_first`]) answers `429`
//! before anything else, fault function included.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{Recorded, Step, reason};

/// What happens to one request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Perform (or replay), answer normally.
    None,
    /// Close the connection without performing or answering.
    DropBefore,
    /// Perform, then close without answering.
    DropAfter,
    /// Perform, then send the 200's headers and half its body, then a TCP RST.
    ResetAfter,
    /// Answer this error without performing.
    Before(ErrorAnswer),
    /// Perform, then answer this error instead of the 200 (the success is recorded: a
    /// gateway's error in front of an application that succeeded; a repeat replays it).
    After(ErrorAnswer),
    /// Perform, then the application itself answers this error: Telnyx replays only
    /// successes, so nothing is recorded under the key and a repeat performs again.
    FailAfter(ErrorAnswer),
    /// Perform, then answer 200 with a header line of this many bytes (see
    /// [`Step::HugeHeader`]).
    HugeHeaderAfter(usize),
    /// Perform, then say nothing for this long and close (past the client's timeout).
    StallAfter(Duration),
}

/// An error status with extra headers, in Telnyx's envelope.
#[derive(Clone, Debug)]
pub struct ErrorAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl ErrorAnswer {
    fn step(&self) -> Step {
        let mut step = error(
            self.status,
            &format!("mock_{}", self.status),
            "an error injected by the test",
        );
        for (n, v) in &self.headers {
            step = step.header(n, v);
        }
        step
    }
}

impl Fault {
    /// `status` (409, 429, 500, 502, 503, 504, ...) answered without performing.
    pub fn before(status: u16) -> Fault {
        Fault::Before(ErrorAnswer {
            status,
            headers: Vec::new(),
        })
    }

    /// `status` answered after performing.
    pub fn after(status: u16) -> Fault {
        Fault::After(ErrorAnswer {
            status,
            headers: Vec::new(),
        })
    }

    /// `status` answered by the application after performing (see [`Fault::FailAfter`]).
    pub fn fail_after(status: u16) -> Fault {
        Fault::FailAfter(ErrorAnswer {
            status,
            headers: Vec::new(),
        })
    }

    /// Adds `retry-after: value` (to `Before`/`After`; other faults are unchanged).
    pub fn retry_after(self, value: &str) -> Fault {
        self.with_header("retry-after", value)
    }

    /// Adds `retry-after-ms: value`.
    pub fn retry_after_ms(self, value: &str) -> Fault {
        self.with_header("retry-after-ms", value)
    }

    fn with_header(mut self, name: &str, value: &str) -> Fault {
        if let Fault::Before(e) | Fault::After(e) | Fault::FailAfter(e) = &mut self {
            e.headers.push((name.into(), value.into()));
        }
        self
    }
}

/// A Telnyx error answer: `status` with `{"errors":[{"code","title","detail"}]}`.
pub fn error(status: u16, code: &str, detail: &str) -> Step {
    let body = serde_json::json!({
        "errors": [{ "code": code, "title": reason(status), "detail": detail }]
    });
    Step::json(status, &body.to_string())
}

/// One send the model performed.
#[derive(Clone, Debug)]
pub struct Performed {
    pub key: Option<String>,
    pub body: Vec<u8>,
    pub at: Instant,
    pub conversation_id: String,
}

/// What the model answered, in total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests: usize,
    pub performed: usize,
    pub replays: usize,
    pub in_progress_409: usize,
    pub mismatch_422: usize,
    pub throttled_429: usize,
}

/// Picks the fault for a request: `(request, attempt)`, where `attempt` counts (from 1) the
/// requests with the same `Idempotency-Key` that reached the server, this one and throttled
/// ones included; requests without a key share one count.
pub type FaultFn = Arc<dyn Fn(&Recorded, usize) -> Fault + Send + Sync>;

enum Entry {
    InProgress(Vec<u8>),
    Done {
        body: Vec<u8>,
        conversation_id: String,
    },
}

impl Entry {
    fn body(&self) -> &[u8] {
        match self {
            Entry::InProgress(b) | Entry::Done { body: b, .. } => b,
        }
    }
}

#[derive(Default)]
struct State {
    attempts: HashMap<Option<String>, usize>,
    keys: HashMap<String, Entry>,
    performed: Vec<Performed>,
    stats: Stats,
}

/// The model; cheap to clone (clones share state). Use [`handler`](Self::handler) as a
/// [`ScriptServer`](super::ScriptServer)'s handler and query the same value afterwards.
#[derive(Clone)]
pub struct Telnyx {
    fault: FaultFn,
    ignore_keys: bool,
    delay: Duration,
    throttle: Option<(usize, String)>,
    state: Arc<Mutex<State>>,
}

impl Default for Telnyx {
    fn default() -> Telnyx {
        Telnyx::new()
    }
}

impl Telnyx {
    /// No faults, no delay, no throttling.
    pub fn new() -> Telnyx {
        Telnyx {
            fault: Arc::new(|_, _| Fault::None),
            ignore_keys: false,
            delay: Duration::ZERO,
            throttle: None,
            state: Arc::default(),
        }
    }

    /// Picks each request's fault (see [`FaultFn`]).
    pub fn faults(
        mut self,
        f: impl Fn(&Recorded, usize) -> Fault + Send + Sync + 'static,
    ) -> Telnyx {
        self.fault = Arc::new(f);
        self
    }

    /// A server that ignores `Idempotency-Key` (as this endpoint may: its reference does not
    /// declare the header): every request that reaches it is performed.
    pub fn ignore_keys(mut self) -> Telnyx {
        self.ignore_keys = true;
        self
    }

    /// How long performing a send takes (the key is in progress meanwhile). Only performing
    /// waits: replays, 409s, 422s and before-faults answer at once.
    pub fn delay(mut self, d: Duration) -> Telnyx {
        self.delay = d;
        self
    }

    /// The first `n` requests the server reads (in arrival order, any key) get `429` with
    /// `Retry-After: retry_after`, before anything else.
    pub fn throttle_first(mut self, n: usize, retry_after: &str) -> Telnyx {
        self.throttle = Some((n, retry_after.to_owned()));
        self
    }

    /// The handler for [`ScriptServer::builder`](super::ScriptServer::builder).
    pub fn handler(&self) -> impl Fn(&Recorded) -> Step + Send + Sync + 'static {
        let t = self.clone();
        move |req| t.handle(req)
    }

    /// Every send performed, in order.
    pub fn performed(&self) -> Vec<Performed> {
        self.state.lock().unwrap().performed.clone()
    }

    /// How many times the send with `key` was performed (0 or 1, by the model's rules).
    pub fn times_performed(&self, key: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.performed
            .iter()
            .filter(|p| p.key.as_deref() == Some(key))
            .count()
    }

    pub fn was_performed(&self, key: &str) -> bool {
        self.times_performed(key) > 0
    }

    /// For every key performed: how many times.
    pub fn performed_per_key(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for p in self.state.lock().unwrap().performed.iter() {
            if let Some(k) = &p.key {
                *m.entry(k.clone()).or_insert(0) += 1;
            }
        }
        m
    }

    /// Bodies performed more than once, under any keys or none: the same SMS sent twice
    /// (unless the test sent identical messages on purpose).
    pub fn duplicate_bodies(&self) -> Vec<Vec<u8>> {
        let mut seen: BTreeMap<&[u8], usize> = BTreeMap::new();
        let s = self.state.lock().unwrap();
        for p in s.performed.iter() {
            *seen.entry(&p.body).or_insert(0) += 1;
        }
        seen.into_iter()
            .filter(|&(_, n)| n > 1)
            .map(|(b, _)| b.to_vec())
            .collect()
    }

    /// Keys being performed right now (a repeat of one of them gets the 409).
    pub fn in_progress(&self) -> usize {
        let s = self.state.lock().unwrap();
        s.keys
            .values()
            .filter(|e| matches!(e, Entry::InProgress(_)))
            .count()
    }

    pub fn stats(&self) -> Stats {
        self.state.lock().unwrap().stats
    }

    fn handle(&self, req: &Recorded) -> Step {
        let key = req.header("idempotency-key").map(str::to_owned);
        let (index, attempt) = {
            let mut s = self.state.lock().unwrap();
            let index = s.stats.requests;
            s.stats.requests += 1;
            let a = s.attempts.entry(key.clone()).or_insert(0);
            *a += 1;
            (index, *a)
        };
        if let Some((n, retry_after)) = &self.throttle {
            if index < *n {
                self.state.lock().unwrap().stats.throttled_429 += 1;
                return error(429, "mock_429", "throttled by the test script")
                    .header("retry-after", retry_after);
            }
        }
        let fault = (self.fault)(req, attempt);
        let answer = match &fault {
            Fault::DropBefore => return Step::Close,
            Fault::Before(e) => return e.step(),
            Fault::FailAfter(_) => {
                self.process(key.as_deref(), &req.body);
                if let Some(k) = &key {
                    self.state.lock().unwrap().keys.remove(k);
                }
                Step::Close
            }
            _ => self.process(key.as_deref(), &req.body),
        };
        match fault {
            Fault::FailAfter(e) => e.step(),
            Fault::None | Fault::DropBefore | Fault::Before(_) => answer,
            Fault::DropAfter => Step::Close,
            Fault::ResetAfter => Step::ResetMidAnswer,
            Fault::After(e) => e.step(),
            Fault::HugeHeaderAfter(len) => Step::HugeHeader { len },
            Fault::StallAfter(d) => Step::Silent(d),
        }
    }

    /// The idempotency model proper: performs, replays, or refuses.
    fn process(&self, key: Option<&str>, body: &[u8]) -> Step {
        let sent_key = key;
        let key = key.filter(|_| !self.ignore_keys);
        if let Some(key) = key {
            let mut s = self.state.lock().unwrap();
            match s.keys.get(key) {
                Some(e) if e.body() != body => {
                    s.stats.mismatch_422 += 1;
                    return error(
                        422,
                        "idempotency_mismatch",
                        "this Idempotency-Key was used with another request body",
                    );
                }
                Some(Entry::InProgress(_)) => {
                    s.stats.in_progress_409 += 1;
                    return error(
                        409,
                        "idempotency_in_progress",
                        "a request with this Idempotency-Key is in progress",
                    );
                }
                Some(Entry::Done {
                    conversation_id, ..
                }) => {
                    let id = conversation_id.clone();
                    s.stats.replays += 1;
                    return ok(&id);
                }
                None => {
                    s.keys
                        .insert(key.to_owned(), Entry::InProgress(body.to_vec()));
                }
            }
        }
        if !self.delay.is_zero() {
            thread::sleep(self.delay);
        }
        let mut s = self.state.lock().unwrap();
        s.stats.performed += 1;
        let id = format!("conv-{}", s.stats.performed);
        s.performed.push(Performed {
            key: sent_key.map(str::to_owned),
            body: body.to_vec(),
            at: Instant::now(),
            conversation_id: id.clone(),
        });
        if let Some(key) = key {
            s.keys.insert(
                key.to_owned(),
                Entry::Done {
                    body: body.to_vec(),
                    conversation_id: id.clone(),
                },
            );
        }
        ok(&id)
    }
}

/// `200 {"conversation_id":"<id>"}`.
fn ok(id: &str) -> Step {
    Step::json(200, &format!(r#"{{"conversation_id":"{id}"}}"#))
}
