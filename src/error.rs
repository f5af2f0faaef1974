//! The crate's one error type: opaque, cheap to move, and never missing what the server said.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

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

/// One broken rule: the field it concerns and what is wrong with it.
///
/// Client-side violations (from [`SendSmsRequest::validate`](crate::SendSmsRequest::validate)
/// or a send) and the entries of the server's 422 body `{"detail":[{"loc","msg","type"}]}`
/// share this type, and name fields the same way: `["body", "conversation_metadata", "score"]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    path: Vec<String>,
    message: String,
    code: String,
}

impl Violation {
    pub(crate) fn new(path: &[&str], message: impl Into<String>, code: impl Into<String>) -> Self {
        Violation {
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            message: message.into(),
            code: code.into(),
        }
    }

    pub(crate) fn from_parts(path: Vec<String>, message: String, code: String) -> Self {
        Violation {
            path,
            message,
            code,
        }
    }

    /// Where the problem is, outermost first: `["body", "to"]`, `["path", "assistant_id"]`,
    /// `["header", "Idempotency-Key"]`. Integer positions from the server appear as text.
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// The path joined with dots, for messages: `body.conversation_metadata.score`.
    pub fn field(&self) -> String {
        self.path.join(".")
    }

    /// What is wrong, in words: `field required`, `must not be blank`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// A machine-readable code: ours (`missing`, `blank`, `control_character`,
    /// `dot_segment`, `invalid_idempotency_key`) or the server's 422 `type`
    /// (`value_error.missing`).
    pub fn code(&self) -> &str {
        &self.code
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field(), self.message)
        }
    }
}

/// One entry of the Telnyx error envelope `{"errors":[{"code","title","detail","source":{"pointer"},"meta"}]}`.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiErrorEntry {
    pub(crate) code: Option<String>,
    pub(crate) title: Option<String>,
    pub(crate) detail: Option<String>,
    pub(crate) pointer: Option<String>,
    pub(crate) meta: Option<serde_json::Value>,
}

impl ApiErrorEntry {
    /// Telnyx's error code, such as `"10009"` (a numeric code is given as its digits).
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
    /// The short title, such as `"Authentication failed"`.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }
    /// The longer explanation.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
    /// The JSON pointer of the offending field (`source.pointer`), such as `"/to"`.
    pub fn pointer(&self) -> Option<&str> {
        self.pointer.as_deref()
    }
    /// Anything else the server put in `meta` (often a documentation URL).
    pub fn meta(&self) -> Option<&serde_json::Value> {
        self.meta.as_ref()
    }
}

impl fmt::Display for ApiErrorEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wrote = false;
        if let Some(t) = &self.title {
            f.write_str(t)?;
            wrote = true;
        }
        if let Some(d) = self
            .detail
            .as_ref()
            .filter(|d| Some(*d) != self.title.as_ref())
        {
            if wrote {
                f.write_str(": ")?;
            }
            f.write_str(d)?;
            wrote = true;
        }
        if !wrote {
            f.write_str("unspecified error")?;
        }
        if let Some(p) = &self.pointer {
            write!(f, " (at {p})")?;
        }
        if let Some(c) = &self.code {
            write!(f, " (code {c})")?;
        }
        Ok(())
    }
}

/// The error of every fallible call in this crate.
///
/// It is one pointer wide; [`kind`](Error::kind) says what category of failure it is, and the
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
/// assert_eq!(err.to_string(), "invalid request, nothing was sent: body.from: field required");
/// # Ok::<(), telnyx_assistant_sms::Error>(())
/// ```
pub struct Error {
    inner: Box<Inner>,
}

pub(crate) type BoxError = Box<dyn StdError + Send + Sync + 'static>;

struct Inner {
    kind: ErrorKind,
    /// Our own words for what failed (without the source's text).
    what: String,
    status: Option<u16>,
    request_id: Option<String>,
    violations: Vec<Violation>,
    api_errors: Vec<ApiErrorEntry>,
    body: Option<String>,
    attempts: u32,
    idempotency_key: Option<String>,
    retry_after: Option<Duration>,
    may_have_been_sent: bool,
    source: Option<BoxError>,
}

impl Error {
    fn new(kind: ErrorKind, what: impl Into<String>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                what: what.into(),
                status: None,
                request_id: None,
                violations: Vec::new(),
                api_errors: Vec::new(),
                body: None,
                attempts: 0,
                idempotency_key: None,
                retry_after: None,
                may_have_been_sent: false,
                source: None,
            }),
        }
    }

    pub(crate) fn config(what: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, what)
    }

    pub(crate) fn validation(violations: Vec<Violation>) -> Self {
        let mut e = Error::new(ErrorKind::Validation, String::new());
        e.inner.violations = violations;
        e
    }

    pub(crate) fn transport(what: impl Into<String>, may_have_been_sent: bool) -> Self {
        let mut e = Error::new(ErrorKind::Transport, what);
        e.inner.may_have_been_sent = may_have_been_sent;
        e
    }

    pub(crate) fn decode(what: impl Into<String>, status: u16) -> Self {
        let mut e = Error::new(ErrorKind::Decode, what);
        e.inner.status = Some(status);
        e.inner.may_have_been_sent = true;
        e
    }

    pub(crate) fn api(
        status: u16,
        body: Option<String>,
        api_errors: Vec<ApiErrorEntry>,
        violations: Vec<Violation>,
        what: String,
    ) -> Self {
        let mut e = Error::new(ErrorKind::Api, what);
        e.inner.status = Some(status);
        e.inner.body = body;
        e.inner.api_errors = api_errors;
        e.inner.violations = violations;
        e
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    pub(crate) fn with_body(mut self, body: String) -> Self {
        self.inner.body = Some(body);
        self
    }

    pub(crate) fn with_request_id(mut self, id: Option<String>) -> Self {
        self.inner.request_id = id;
        self
    }

    pub(crate) fn with_retry_after(mut self, wait: Option<Duration>) -> Self {
        self.inner.retry_after = wait;
        self
    }

    pub(crate) fn set_may_have_been_sent(&mut self, yes: bool) {
        self.inner.may_have_been_sent = yes;
    }

    /// Records how the send ended: attempts made, the key used, and whether any attempt may
    /// have delivered the SMS.
    pub(crate) fn finish(
        mut self,
        attempts: u32,
        idempotency_key: Option<&str>,
        any_maybe_sent: bool,
    ) -> Self {
        self.inner.attempts = attempts;
        self.inner.idempotency_key = idempotency_key.map(str::to_owned);
        self.inner.may_have_been_sent |= any_maybe_sent;
        self
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
    /// `{"detail":[...]}` entries for `Api` errors. Empty otherwise.
    pub fn violations(&self) -> &[Violation] {
        &self.inner.violations
    }

    /// The entries of the Telnyx error envelope `{"errors":[...]}`, when the server sent one.
    pub fn api_errors(&self) -> &[ApiErrorEntry] {
        &self.inner.api_errors
    }

    /// The raw response body (decoded as UTF-8, lossily), capped at 1 MiB, for `Api` and
    /// `Decode` errors. This keeps what the server said even when it is not JSON (an HTML
    /// page from a proxy, say).
    pub fn body(&self) -> Option<&str> {
        self.inner.body.as_deref()
    }

    /// How many HTTP attempts were made (0 when nothing was sent).
    pub fn attempts(&self) -> u32 {
        self.inner.attempts
    }

    /// The `Idempotency-Key` the attempts carried, if any. Sending again with this same key
    /// cannot deliver the SMS twice (within the server's 24 hours).
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
    /// `false` for `Config` and `Validation` errors and for failures that cannot have reached
    /// the server's logic (refused connection, DNS, connect timeout, TLS, 408, 429, 503, other
    /// 4xx); `true` when a request was written and no complete answer came, for 409/500/502/504
    /// answers, for `Decode` errors (the server accepted it), and whenever any earlier attempt
    /// of the same send was in doubt.
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
            ErrorKind::Config => write!(f, "invalid configuration: {}", i.what)?,
            ErrorKind::Validation => {
                f.write_str("invalid request, nothing was sent: ")?;
                for (n, v) in i.violations.iter().enumerate() {
                    if n > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{v}")?;
                }
            }
            ErrorKind::Api => {
                write!(f, "api error: {}", i.what)?;
                if i.may_have_been_sent {
                    f.write_str("; the sms may have been sent")?;
                }
            }
            ErrorKind::Transport => {
                write!(f, "transport error: {}; the sms ", i.what)?;
                f.write_str(if i.may_have_been_sent {
                    "may have been sent"
                } else {
                    "was not sent"
                })?;
            }
            ErrorKind::Decode => write!(
                f,
                "could not read the api's answer to an accepted request: {}",
                i.what
            )?,
        }
        if let Some(id) = &i.request_id {
            write!(f, " (request id {id})")?;
        }
        if i.attempts > 1 {
            write!(f, " after {} attempts", i.attempts)?;
        }
        if let Some(wait) = i.retry_after {
            write!(f, "; the server asked to retry after {}", human(wait))?;
        }
        Ok(())
    }
}

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
            d.field("body", b);
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
