//! The send loop: from a prepared request to its outcome, attempt by attempt. Each attempt
//! sends the one list of headers ([`headers`]), then reads the answer (at most
//! [`MAX_BODY_BYTES`]) or classifies the transport failure by the phase it happened in; the
//! retry policy (`policy.rs`) decides whether another attempt follows, and after which wait.
//! A batch reaches the loop through [`Pace`]; a single send pays nothing for it.

use std::fmt;
use std::io::Read;
use std::time::{Duration, Instant};

use ureq::http::{HeaderName, HeaderValue};

use crate::agent::USER_AGENT;
use crate::api_error::parse_error_body;
use crate::classify::{self, Ends, Phase};
use crate::config::Config;
use crate::error::{Error, human};
use crate::glue::transport;
use crate::policy::{self, Class};
use crate::response::{SendSmsResponse, SuccessBody};
use crate::text::Clean;
use crate::wait::{self, WaitSource};

/// The most of a response body that is read (1 MiB): a larger or endless answer is cut off
/// there (error bodies) or refused (success bodies), never buffered whole.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What a batch lets the send loop do around its attempts (a single send has none, and pays
/// nothing for it): space them, and pass on a wait the server asked for, which holds every
/// worker of the batch.
pub(crate) trait Pace {
    /// Waits until this attempt may start; `false`: the batch is being stopped, and the
    /// attempt must not start.
    fn before_attempt(&self) -> bool;
    /// A `429` or `503` asked every client to wait `wait`.
    fn server_wait(&self, wait: Duration);
    /// Sleeps `wait` before a retry; `false`: the batch is being stopped (it wakes early).
    fn sleep(&self, wait: Duration) -> bool;
}

/// One failed attempt, before the retry loop decides what to do with it.
struct Failure {
    error: Error,
    class: Class,
    /// The wait the server asked for, if it did, and which header asked.
    server_wait: Option<(Duration, WaitSource)>,
}

/// Log records go to this target, whatever module they come from.
const LOG_TARGET: &str = "telnyx_assistant_sms";

/// A log record of the crate's target, with a `batch_index` field when the send is part of
/// a batch.
macro_rules! record {
    ($level:expr, $index:expr, { $($k:ident = $v:expr),* }, $($arg:tt)+) => {
        match $index {
            Some(batch_index) => log::log!(
                target: LOG_TARGET, $level, $($k = $v,)* batch_index = batch_index; $($arg)+
            ),
            None => log::log!(target: LOG_TARGET, $level, $($k = $v),*; $($arg)+),
        }
    };
}

/// One send as the loop sees it: what goes on the wire, and what its log records name.
pub(crate) struct Outgoing<'a> {
    pub(crate) assistant_id: &'a str,
    /// The full URL, the assistant id encoded.
    pub(crate) url: &'a str,
    pub(crate) body: &'a [u8],
    pub(crate) idempotency_key: Option<&'a str>,
}

/// A header an attempt sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Header {
    Authorization,
    ContentType,
    Accept,
    UserAgent,
    RetryCount,
    IdempotencyKey,
}

/// What a header holds.
pub(crate) enum Value<'a> {
    /// `Bearer KEY`, from the configuration; shown redacted.
    Authorization,
    /// `application/json`.
    Json,
    /// The crate's name and version, which the agent adds (see `agent.rs`).
    UserAgent,
    /// How many attempts of this send came before this one.
    RetryCount(u32),
    /// The send's `Idempotency-Key`.
    Key(&'a str),
}

/// Where the header list goes: onto an attempt's request, or into the list
/// `PreparedSend::headers` shows.
pub(crate) trait Headers: Sized {
    fn put(self, header: Header, value: Value<'_>) -> Self;
}

/// The headers of attempt `retry` (0 for the first) of a send under `key`, in the order they
/// go out: the one list an attempt sends and `PreparedSend::headers` shows. ureq adds `Host`
/// and `Content-Length`.
#[inline]
pub(crate) fn headers<H: Headers>(to: H, retry: u32, key: Option<&str>) -> H {
    let to = to
        .put(Header::Authorization, Value::Authorization)
        .put(Header::ContentType, Value::Json)
        .put(Header::Accept, Value::Json)
        .put(Header::UserAgent, Value::UserAgent)
        .put(Header::RetryCount, Value::RetryCount(retry));
    match key {
        Some(k) => to.put(Header::IdempotencyKey, Value::Key(k)),
        None => to,
    }
}

const JSON_TEXT: &str = "application/json";
const JSON: HeaderValue = HeaderValue::from_static(JSON_TEXT);

impl Header {
    /// The name, as it goes out.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Header::Authorization => "authorization",
            Header::ContentType => "content-type",
            Header::Accept => "accept",
            Header::UserAgent => "user-agent",
            Header::RetryCount => "x-stainless-retry-count",
            Header::IdempotencyKey => "idempotency-key",
        }
    }

    /// The name as ureq takes it (each made at compile time: nothing is parsed per send).
    fn name(self) -> HeaderName {
        const fn named(h: Header) -> HeaderName {
            HeaderName::from_static(h.as_str())
        }
        match self {
            Header::Authorization => const { named(Header::Authorization) },
            Header::ContentType => const { named(Header::ContentType) },
            Header::Accept => const { named(Header::Accept) },
            Header::UserAgent => const { named(Header::UserAgent) },
            Header::RetryCount => const { named(Header::RetryCount) },
            Header::IdempotencyKey => const { named(Header::IdempotencyKey) },
        }
    }
}

/// As `PreparedSend::headers` shows them: the API key redacted.
impl Headers for Vec<(&'static str, String)> {
    // Inlined, so that each call keeps only its value's arm.
    #[inline(always)]
    fn put(mut self, header: Header, value: Value<'_>) -> Self {
        let shown = match value {
            Value::Authorization => "Bearer [REDACTED]".to_owned(),
            Value::Json => JSON_TEXT.to_owned(),
            Value::UserAgent => USER_AGENT.to_owned(),
            Value::RetryCount(n) => n.to_string(),
            Value::Key(k) => k.to_owned(),
        };
        self.push((header.as_str(), shown));
        self
    }
}

/// An attempt's request, and the key it carries.
struct Attempt<'a> {
    req: ureq::RequestBuilder<ureq::typestate::WithBody>,
    authorization: &'a HeaderValue,
}

impl Headers for Attempt<'_> {
    // Inlined, so that each call keeps only its value's arm: the same code as six chained
    // `.header()` calls.
    #[inline(always)]
    fn put(mut self, header: Header, value: Value<'_>) -> Self {
        let name = header.name();
        self.req = match value {
            Value::Authorization => self.req.header(name, self.authorization.clone()),
            Value::Json => self.req.header(name, JSON),
            // The agent adds it (see `agent.rs`).
            Value::UserAgent => self.req,
            Value::RetryCount(n) => self.req.header(name, retry_count(n)),
            Value::Key(k) => self.req.header(name, k),
        };
        self
    }
}

/// Sends `prepared` with `config`'s agent, key and retry rules: attempts, retries and waits,
/// for one send alone or one request of a batch (whose pacer spaces and pauses attempts
/// across workers, and whose index goes into every log record).
pub(crate) fn send(
    config: &Config,
    prepared: &Outgoing<'_>,
    batch: Option<(&dyn Pace, usize)>,
) -> Result<SendSmsResponse, Error> {
    let key = prepared.idempotency_key;
    let index = batch.map(|b| b.1);
    let started = Instant::now();
    let mut any_maybe_sent = false;
    let mut retry: u32 = 0;
    loop {
        if let Some((pacer, _)) = batch {
            if !pacer.before_attempt() {
                // Stopped before this attempt (the first one only comes here when the batch
                // was stopped after the request was taken): nothing more is sent.
                return Err(Error::transport(
                    "not attempted: the batch was stopped before this attempt",
                    false,
                )
                .finish(retry, key, any_maybe_sent, started.elapsed()));
            }
        }
        // Only the debug record needs the attempt's own start.
        let attempt_started =
            log::log_enabled!(target: LOG_TARGET, log::Level::Debug).then(Instant::now);
        let failure = match attempt(config, prepared, retry) {
            Ok(mut res) => {
                log_attempt(
                    prepared,
                    index,
                    retry,
                    attempt_started,
                    "ok",
                    res.request_id.as_deref(),
                );
                res.attempts = retry + 1;
                res.elapsed = started.elapsed();
                return Ok(res);
            }
            Err(f) => f,
        };
        log_attempt(
            prepared,
            index,
            retry,
            attempt_started,
            failure.error.what(),
            failure.error.request_id(),
        );
        any_maybe_sent |= failure.error.may_have_been_sent();
        let retryable = policy::may_retry(failure.class, config.policy(), key.is_some());
        if let (Some((pacer, _)), Some((wait, _))) = (batch, failure.server_wait) {
            // The server asked everyone to slow down, not just this worker.
            if matches!(failure.error.status(), Some(429 | 503)) {
                pacer.server_wait(wait);
            }
        }
        let (wait, source) = failure.server_wait.unwrap_or_else(|| {
            let (start, max) = config.retry_backoff();
            let wait = wait::backoff(retry, start, max);
            (wait, WaitSource::Backoff)
        });
        // The 60 s cap is for waits the server asks for; our own backoff is the caller's
        // setting and is slept through whatever it is.
        let too_long = source != WaitSource::Backoff && wait > wait::MAX_SERVER_WAIT;
        if !retryable || retry >= config.max_retries() || too_long {
            let error = failure
                .error
                .finish(retry + 1, key, any_maybe_sent, started.elapsed());
            record!(
                log::Level::Warn,
                index,
                {
                    assistant_id = prepared.assistant_id,
                    attempts = retry + 1,
                    elapsed_ms = millis(error.elapsed()),
                    may_have_been_sent = error.may_have_been_sent()
                },
                "{}giving up: {error}",
                Prefix(index)
            );
            return Err(error);
        }
        record!(
            log::Level::Info,
            index,
            {
                assistant_id = prepared.assistant_id,
                attempt = retry + 2,
                wait_ms = millis(wait),
                wait_source = source.as_str()
            },
            "{}retrying in {} ({}): {}",
            Prefix(index),
            human(wait),
            source.describe(),
            failure.error
        );
        let go_on = match batch {
            Some((pacer, _)) => pacer.sleep(wait),
            None => {
                std::thread::sleep(wait);
                true
            }
        };
        if !go_on {
            // The batch is being stopped: no retry; this failure is the send's outcome.
            return Err(failure
                .error
                .finish(retry + 1, key, any_maybe_sent, started.elapsed()));
        }
        retry += 1;
    }
}

fn attempt(config: &Config, p: &Outgoing<'_>, retry: u32) -> Result<SendSmsResponse, Failure> {
    let req = config.agent().map_err(final_failure)?.post(p.url);
    let attempt = Attempt {
        req,
        authorization: config.authorization(),
    };
    let req = headers(attempt, retry, p.idempotency_key).req;
    transport::start_attempt();
    let mut resp = match req.send(p.body) {
        Ok(r) => r,
        Err(e) => return Err(transport_failure(config, e)),
    };
    let status = resp.status();
    let headers = resp.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let request_id = header("x-request-id").map(str::to_owned);
    let code = status.as_u16();

    if status.is_success() {
        if matches!(code, 204 | 205) {
            // No content by definition (and a 205 with no length would be read until the
            // connection closes, the whole timeout long).
            return Err(final_failure(
                Error::decode(
                    format!("http {code}: the answer has no body, so no conversation id"),
                    code,
                )
                .with_request_id(request_id),
            ));
        }
        let body = match read_capped(resp.body_mut()) {
            Ok((body, false)) => body,
            Ok((_, true)) => {
                return Err(final_failure(
                    Error::decode(format!("http {code}: the body is larger than 1 MiB"), code)
                        .with_request_id(request_id),
                ));
            }
            Err(e) => {
                return Err(final_failure(
                    Error::decode(format!("http {code}: the body was cut off"), code)
                        .with_request_id(request_id)
                        .with_source(e),
                ));
            }
        };
        return match serde_json::from_slice::<SuccessBody>(&body) {
            Ok(reply) => Ok(SendSmsResponse::from_body(reply, request_id)),
            Err(e) => Err(final_failure(
                Error::decode(
                    format!("http {code}: the body is not the expected json"),
                    code,
                )
                .with_request_id(request_id)
                .with_body(into_text(body))
                .with_source(e),
            )),
        };
    }

    let should_retry = match header("x-should-retry") {
        Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    };
    let server_wait = wait::server_wait(header("retry-after-ms"), header("retry-after"));
    // The body of an error is informative only: keep what arrived, even if cut off.
    let body = match read_capped(resp.body_mut()) {
        Ok((b, _)) => Some(into_text(b)),
        Err(_) => None,
    };
    let parsed = body.as_deref().map(parse_error_body).unwrap_or_default();
    let v = classify::classify_answer(status, server_wait.is_some(), should_retry, &parsed);
    let mut error = Error::api(code, body, parsed, v.what)
        .with_request_id(request_id)
        .with_retry_after(server_wait.map(|w| w.0));
    error.set_may_have_been_sent(v.class.may_have_been_sent());
    Err(Failure {
        error,
        class: v.class,
        server_wait,
    })
}

/// A failed `send`: classified by the phase it failed in (see `transport.rs`).
fn transport_failure(config: &Config, e: ureq::Error) -> Failure {
    let (e, opening) = transport::unmark(e);
    let phase = match (&opening, transport::progress()) {
        (Some(at), _) => Phase::Opening(at),
        (None, transport::Progress::NotWritten) => Phase::BeforeWrite,
        (None, transport::Progress::Writing) => Phase::Writing,
        (None, transport::Progress::Reading) => Phase::AfterWrite,
    };
    let ends = Ends {
        target: config.target(),
        proxy: config.proxy().map(|p| p.authority.as_str()),
    };
    let v = classify::classify_transport(&e, phase, ends);
    Failure {
        error: Error::transport(v.what, v.class.may_have_been_sent()).with_source(e),
        class: v.class,
        server_wait: None,
    }
}

/// `request 7: ` before a batch request's log messages.
struct Prefix(Option<usize>);

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(i) => write!(f, "request {i}: "),
            None => Ok(()),
        }
    }
}

/// The `debug` record of one attempt: never the key, the text, the numbers or metadata.
fn log_attempt(
    p: &Outgoing<'_>,
    index: Option<usize>,
    retry: u32,
    started: Option<Instant>,
    outcome: &str,
    request_id: Option<&str>,
) {
    if let Some(started) = started {
        let took = started.elapsed();
        let request_id = request_id.map(|id| Clean(id, 80).to_string());
        record!(
            log::Level::Debug,
            index,
            {
                assistant_id = p.assistant_id,
                attempt = retry + 1,
                idempotency_key = p.idempotency_key.unwrap_or(""),
                outcome = outcome,
                duration_ms = millis(took),
                request_id = request_id.as_deref().unwrap_or("")
            },
            "{}attempt {} to assistant {}: {outcome} in {} (request id {}, idempotency key {})",
            Prefix(index),
            retry + 1,
            Clean(p.assistant_id, 80),
            human(took),
            request_id.as_deref().unwrap_or("none"),
            p.idempotency_key.unwrap_or("none"),
        );
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn final_failure(error: Error) -> Failure {
    Failure {
        class: Class::Final,
        error,
        server_wait: None,
    }
}

fn retry_count(retry: u32) -> HeaderValue {
    const SMALL: [HeaderValue; 4] = [
        HeaderValue::from_static("0"),
        HeaderValue::from_static("1"),
        HeaderValue::from_static("2"),
        HeaderValue::from_static("3"),
    ];
    match SMALL.get(retry as usize) {
        Some(v) => v.clone(),
        None => HeaderValue::from(retry),
    }
}

/// The body as text, without a copy when it is valid UTF-8 (as it nearly always is).
fn into_text(body: Vec<u8>) -> String {
    String::from_utf8(body).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Reads at most [`MAX_BODY_BYTES`]; the flag says the body was longer (the rest is not read).
fn read_capped(body: &mut ureq::Body) -> Result<(Vec<u8>, bool), ureq::Error> {
    let mut buf = Vec::new();
    body.as_reader()
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| match e.downcast::<ureq::Error>() {
            Ok(inner) => inner,
            Err(e) => ureq::Error::Io(e),
        })?;
    let over = buf.len() > MAX_BODY_BYTES;
    buf.truncate(MAX_BODY_BYTES);
    Ok((buf, over))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_list_is_shown_in_order_with_the_key_redacted() {
        let shown = headers(Vec::new(), 2, Some("k-1"));
        let want = [
            ("authorization", "Bearer [REDACTED]"),
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("user-agent", USER_AGENT),
            ("x-stainless-retry-count", "2"),
            ("idempotency-key", "k-1"),
        ];
        assert_eq!(shown.len(), want.len());
        for ((name, value), (want_name, want_value)) in shown.iter().zip(want) {
            assert_eq!((*name, value.as_str()), (want_name, want_value));
        }
        assert_eq!(headers(Vec::new(), 0, None).len(), 5);
        // The name shown is the name sent.
        for (name, _) in shown {
            let header = [
                Header::Authorization,
                Header::ContentType,
                Header::Accept,
                Header::UserAgent,
                Header::RetryCount,
                Header::IdempotencyKey,
            ]
            .into_iter()
            .find(|h| h.as_str() == name)
            .unwrap();
            assert_eq!(header.name().as_str(), name);
        }
    }
}
