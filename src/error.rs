//! The crate's one error type: opaque, cheap to move, and never missing what the server said.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::api_error::{ApiErrorEntry, ParsedErrorBody};
use crate::text::Clean;
use crate::violation::{Violation, write_violations};

/// What went wrong, in the categories a caller acts on. See [`Error::kind`].
///
/// New kinds may be added in a minor release, so match with a `_` arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The client could not be configured: no or malformed API key, a bad base URL (or one
    /// that would send the key in clear text), a bad proxy, an unusable environment variable.
    /// Nothing was sent. Fix the configuration.
    Config,
    /// The request broke a rule checked before sending; [`Error::violations`] lists every
    /// broken rule at once. Nothing was sent. Fix the input.
    Validation,
    /// The server answered with a status that is not a success (>= 400, or an unexpected
    /// redirect). [`Error::status`], [`Error::request_id`], [`Error::api_errors`],
    /// [`Error::violations`] (for a 422) and [`Error::body`] carry what it said.
    Api,
    /// No usable answer arrived: DNS, connect, TLS, proxy, timeout, or the connection dropped.
    /// [`Error::may_have_been_sent`] says whether the SMS may nevertheless have gone out.
    Transport,
    /// The server accepted the request (2xx) but its body was not the expected JSON, was cut
    /// off, or was too large. The SMS is on its way; do not simply send it again.
    Decode,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Config => "configuration error",
            ErrorKind::Validation => "validation error",
            ErrorKind::Api => "api error",
            ErrorKind::Transport => "transport error",
            ErrorKind::Decode => "decode error",
        })
    }
}

/// The error of every fallible call in this crate.
///
/// It is one pointer wide and cheap to clone (clones share one allocation, the cause
/// included); [`kind`](Error::kind) says what category of failure it is, and the
/// accessors give every detail that applies (`None`/empty where one does not). Its `Display`
/// is one lowercase line naming what failed; it never contains the API key (nor the message
/// text or phone numbers). [`source`](std::error::Error::source) returns the underlying cause
/// where there is one (an I/O, TLS or JSON error).
///
/// ```
/// use telnyx_assistant_sms::{Client, ErrorKind, SendSmsRequest};
///
/// let client = Client::builder().api_key("KEY").build()?;
/// let err = client.send_sms("assistant-1", &SendSmsRequest::new("", "+15550002222")).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Validation);
/// assert_eq!(err.violations()[0].path(), ["body", "from"]);
/// assert_eq!(err.to_string(), "invalid request, nothing was sent: body.from: must not be empty");
/// # Ok::<(), telnyx_assistant_sms::Error>(())
/// ```
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

pub(crate) type BoxError = Box<dyn StdError + Send + Sync + 'static>;

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    /// Our own words for what failed (without the source's text).
    what: String,
    status: Option<u16>,
    request_id: Option<String>,
    violations: Vec<Violation>,
    /// How many violations there were (only the first 100 of a server's are kept).
    violation_count: usize,
    api_errors: Vec<ApiErrorEntry>,
    api_error_count: usize,
    body: Option<String>,
    attempts: u32,
    elapsed: Duration,
    idempotency_key: Option<String>,
    retry_after: Option<Duration>,
    may_have_been_sent: bool,
    /// Shared, so that a clone of the error costs one reference count.
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
}

impl Error {
    fn new(kind: ErrorKind, what: impl Into<String>) -> Self {
        Error {
            inner: Arc::new(Inner {
                kind,
                what: what.into(),
                status: None,
                request_id: None,
                violations: Vec::new(),
                violation_count: 0,
                api_errors: Vec::new(),
                api_error_count: 0,
                body: None,
                attempts: 0,
                elapsed: Duration::ZERO,
                idempotency_key: None,
                retry_after: None,
                may_have_been_sent: false,
                source: None,
            }),
        }
    }

    /// The inner part to change while the error is being put together; a clone made before
    /// is left as it was.
    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    pub(crate) fn config(what: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, what)
    }

    pub(crate) fn validation(violations: Vec<Violation>) -> Self {
        let mut e = Error::new(ErrorKind::Validation, String::new());
        let i = e.inner_mut();
        i.violation_count = violations.len();
        i.violations = violations;
        e
    }

    pub(crate) fn transport(what: impl Into<String>, may_have_been_sent: bool) -> Self {
        let mut e = Error::new(ErrorKind::Transport, what);
        e.inner_mut().may_have_been_sent = may_have_been_sent;
        e
    }

    /// A batch's request that was never attempted: the server asked every client to wait
    /// `wait`, longer than a batch waits.
    pub(crate) fn not_attempted(wait: Duration, idempotency_key: Option<&str>) -> Self {
        let mut e = Error::new(
            ErrorKind::Transport,
            format!(
                "not attempted: the batch stopped sending when the server asked every client \
                 to wait {} (longer than the 60 s a send waits); run the batch again after that",
                human(wait)
            ),
        );
        let i = e.inner_mut();
        i.retry_after = Some(wait);
        i.idempotency_key = idempotency_key.map(str::to_owned);
        e
    }

    pub(crate) fn decode(what: impl Into<String>, status: u16) -> Self {
        let mut e = Error::new(ErrorKind::Decode, what);
        let i = e.inner_mut();
        i.status = Some(status);
        i.may_have_been_sent = true;
        e
    }

    pub(crate) fn api(
        status: u16,
        body: Option<String>,
        parsed: ParsedErrorBody,
        what: String,
    ) -> Self {
        let mut e = Error::new(ErrorKind::Api, what);
        let i = e.inner_mut();
        i.status = Some(status);
        i.body = body;
        i.api_errors = parsed.api_errors;
        i.api_error_count = parsed.api_error_count;
        i.violations = parsed.violations;
        i.violation_count = parsed.violation_count;
        e
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner_mut().source = Some(Arc::from(source.into()));
        self
    }

    pub(crate) fn with_body(mut self, body: String) -> Self {
        self.inner_mut().body = Some(body);
        self
    }

    pub(crate) fn with_request_id(mut self, id: Option<String>) -> Self {
        self.inner_mut().request_id = id;
        self
    }

    pub(crate) fn with_retry_after(mut self, wait: Option<Duration>) -> Self {
        self.inner_mut().retry_after = wait;
        self
    }

    pub(crate) fn set_may_have_been_sent(&mut self, yes: bool) {
        self.inner_mut().may_have_been_sent = yes;
    }

    /// Records how the send ended: attempts made, the key used, and whether any attempt may
    /// have delivered the SMS.
    pub(crate) fn finish(
        mut self,
        attempts: u32,
        idempotency_key: Option<&str>,
        any_maybe_sent: bool,
        elapsed: Duration,
    ) -> Self {
        let i = self.inner_mut();
        // A configuration problem found at a send (a deferred trust that cannot be read)
        // stopped it before any attempt.
        if i.kind != ErrorKind::Config {
            i.attempts = attempts;
        }
        i.idempotency_key = idempotency_key.map(str::to_owned);
        i.may_have_been_sent |= any_maybe_sent;
        i.elapsed = elapsed;
        self
    }

    /// Our words for what failed, without the kind's prefix (for log records).
    pub(crate) fn what(&self) -> &str {
        &self.inner.what
    }

    /// The category of the failure.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The HTTP status the server answered with (`Api` errors, and `Decode` errors' 2xx).
    pub fn status(&self) -> Option<u16> {
        self.inner.status
    }

    /// The server's `x-request-id` header: quote it to Telnyx support.
    pub fn request_id(&self) -> Option<&str> {
        self.inner.request_id.as_deref()
    }

    /// Every broken rule: the client's own for `Validation` errors, the server's 422
    /// `{"detail":[...]}` entries for `Api` errors (at most the first 100 of them: see
    /// [`violation_count`](Self::violation_count)). Empty otherwise.
    pub fn violations(&self) -> &[Violation] {
        &self.inner.violations
    }

    /// How many violations there were: the length of [`violations`](Self::violations), or
    /// more when a server sent over 100 (only the first 100 are kept, so that a hostile answer
    /// cannot cost much more memory than its body).
    pub fn violation_count(&self) -> usize {
        self.inner.violation_count
    }

    /// The entries of the Telnyx error envelope `{"errors":[...]}`, when the server sent one
    /// (at most the first 100: see [`api_error_count`](Self::api_error_count)).
    pub fn api_errors(&self) -> &[ApiErrorEntry] {
        &self.inner.api_errors
    }

    /// How many entries the error envelope had: the length of
    /// [`api_errors`](Self::api_errors), or more when a server sent over 100.
    pub fn api_error_count(&self) -> usize {
        self.inner.api_error_count
    }

    /// The raw response body (decoded as UTF-8, lossily), capped at 1 MiB, for `Api` and
    /// `Decode` errors. This keeps what the server said even when it is not JSON (an HTML
    /// page from a proxy, say).
    pub fn body(&self) -> Option<&str> {
        self.inner.body.as_deref()
    }

    /// How many HTTP attempts were made (0 when none was: a `Config` or `Validation` error).
    pub fn attempts(&self) -> u32 {
        self.inner.attempts
    }

    /// How long the whole send took, from the first attempt to giving up, waits between
    /// attempts included (zero when no attempt was made).
    pub fn elapsed(&self) -> Duration {
        self.inner.elapsed
    }

    /// The `Idempotency-Key` the attempts carried, if any. A server that honours keys as
    /// Telnyx documents replays a *successful* first attempt for 24 hours when the same key is
    /// sent again; this endpoint does not declare the header, and after an error answer the
    /// server executes again. So when [`may_have_been_sent`](Self::may_have_been_sent) is
    /// `true`, find out before sending again, even under this key.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.inner.idempotency_key.as_deref()
    }

    /// The wait the server asked for (`retry-after-ms` or `Retry-After`). A wait above 60 s is
    /// not slept through: the error is returned at once with the wait here.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// Whether the SMS may have been sent despite this error.
    ///
    /// `false` is a promise you can act on (send again, even under a new key): it is given
    /// only when no attempt of this send can have been performed, that is, every attempt
    ///
    /// - never reached the server: a `Config` or `Validation` error; a DNS failure; the
    ///   connection (TCP, proxy, TLS handshake, certificate check) could not be opened; or it
    ///   failed before a byte of the request was written; or
    /// - was refused by the server before it acted: a `4xx` status other than `409` (such as
    ///   400, 401, 404, 408, 422, 429), or `503`.
    ///
    /// Anything that happened after the request was written is `true`: no answer or a partial
    /// one, a timeout while waiting, a TLS failure after the handshake, an answer that is not
    /// valid HTTP or whose headers are too large, a `3xx`, a `409`, any `5xx` but `503`, and
    /// `Decode` errors (the server accepted the request). If any attempt of the send was in
    /// doubt, the answer stays `true` whatever later attempts said.
    pub fn may_have_been_sent(&self) -> bool {
        self.inner.may_have_been_sent
    }

    /// The body of an `Api` error, parsed as JSON, if it is JSON.
    pub fn body_json(&self) -> Option<serde_json::Value> {
        self.inner
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        match i.kind {
            ErrorKind::Config => write!(f, "invalid configuration: {}", Clean(&i.what, WHAT_MAX))?,
            ErrorKind::Validation => {
                f.write_str("invalid request, nothing was sent: ")?;
                write_violations(f, &i.violations, i.violation_count)?;
            }
            ErrorKind::Api => write!(f, "api error: {}", Clean(&i.what, WHAT_MAX))?,
            ErrorKind::Transport => write!(f, "transport error: {}", Clean(&i.what, WHAT_MAX))?,
            ErrorKind::Decode => write!(
                f,
                "could not read the api's answer to an accepted request: {}",
                Clean(&i.what, WHAT_MAX)
            )?,
        }
        if let Some(id) = &i.request_id {
            write!(f, " (request id {})", Clean(id, 80))?;
        }
        // What the attempts came to, after the last answer's words and request id:
        // "; after 3 attempts, the sms may have been sent". (A refusal's single answer needs
        // no "was not sent": its status says so.)
        let retried = i.attempts > 1;
        let sent = match i.kind {
            ErrorKind::Transport | ErrorKind::Api if i.may_have_been_sent => {
                Some("the sms may have been sent")
            }
            ErrorKind::Transport => Some("the sms was not sent"),
            ErrorKind::Api if retried => Some("the sms was not sent"),
            _ => None,
        };
        match (retried, sent) {
            (true, Some(sent)) => write!(f, "; after {} attempts, {sent}", i.attempts)?,
            (true, None) => write!(f, "; after {} attempts", i.attempts)?,
            (false, Some(sent)) => write!(f, "; {sent}")?,
            (false, None) => {}
        }
        if let Some(wait) = i.retry_after {
            write!(f, "; the server asked to retry after {}", human(wait))?;
        }
        Ok(())
    }
}

/// The most of our own words (which may quote configuration: a proxy URL, a host name, a file
/// name) in one `Display` line; a server's text in them is cut shorter still.
const WHAT_MAX: usize = 600;

/// "1.5s", "3600s", "250ms".
pub(crate) fn human(d: Duration) -> String {
    if d.as_millis() < 1000 && d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let mut d = f.debug_struct("Error");
        d.field("kind", &i.kind);
        if !i.what.is_empty() {
            d.field("what", &i.what);
        }
        if let Some(s) = i.status {
            d.field("status", &s);
        }
        if let Some(r) = &i.request_id {
            d.field("request_id", r);
        }
        if !i.violations.is_empty() {
            d.field("violations", &i.violations);
        }
        if !i.api_errors.is_empty() {
            d.field("api_errors", &i.api_errors);
        }
        if let Some(b) = &i.body {
            // A body may be a megabyte: `Debug` shows its start.
            match b.char_indices().nth(500) {
                Some((cut, _)) => d.field(
                    "body",
                    &format_args!("{:?}… ({} bytes)", &b[..cut], b.len()),
                ),
                None => d.field("body", b),
            };
        }
        if i.attempts > 0 {
            d.field("attempts", &i.attempts);
        }
        if let Some(k) = &i.idempotency_key {
            d.field("idempotency_key", k);
        }
        if let Some(w) = i.retry_after {
            d.field("retry_after", &w);
        }
        d.field("may_have_been_sent", &i.may_have_been_sent);
        if let Some(s) = &i.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}
