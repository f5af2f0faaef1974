//! The client and the send loop: what one send does, attempt by attempt.

use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use ureq::http::{HeaderName, HeaderValue};

use crate::agent::USER_AGENT;
use crate::api_error::{parse_error_body, summarize};
use crate::builder::ClientBuilder;
use crate::config::Config;
use crate::error::{Error, human};
use crate::glue::transport;
use crate::policy::{self, Class};
use crate::request::SendSmsRequest;
use crate::response::{SendSmsResponse, SuccessBody};
use crate::retry::{self, Ends, Phase, WaitSource};
use crate::text::Clean;
use crate::violation::Violation;

/// The most of a response body that is read (1 MiB): a larger or endless answer is cut off
/// there (error bodies) or refused (success bodies), never buffered whole.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The longest assistant id accepted, in bytes: real ids are about 50; a longer one would
/// only make a request line no server accepts.
pub const MAX_ASSISTANT_ID_BYTES: usize = 256;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const RETRY_COUNT: HeaderName = HeaderName::from_static("x-stainless-retry-count");

/// A configured, reusable client for the Assistant SMS Chat call.
///
/// Cheap to clone: clones share one connection pool, so clone it into threads rather than
/// building one per thread. It is `Send + Sync`.
///
/// ```no_run
/// use std::time::Duration;
/// use telnyx_assistant_sms::{Client, SendSmsRequest};
///
/// let client = Client::builder()
///     .api_key(std::env::var("TELNYX_API_KEY").unwrap_or_default())
///     .timeout(Duration::from_secs(30))
///     .build()?;
/// let res = client.send_sms("assistant-id", &SendSmsRequest::new("+15550001111", "+15550002222").text("Hello"))?;
/// println!("{:?}", res.conversation_id);
/// # Ok::<(), telnyx_assistant_sms::Error>(())
/// ```
#[derive(Clone)]
pub struct Client {
    config: Arc<Config>,
}

/// A client shows as its configuration, the key redacted.
impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.config, f)
    }
}

impl ClientBuilder {
    /// Checks the configuration and builds the client.
    ///
    /// # Errors
    ///
    /// An [`ErrorKind::Config`](crate::ErrorKind::Config) error naming the problem when the API
    /// key is missing or malformed (see [`check_api_key`](crate::check_api_key)), the base URL
    /// does not parse, is not `https` (nor `http` to a loopback host), has credentials, a query
    /// or no path (see [`base_url`](Self::base_url)), a timeout is zero or over 24 hours, the
    /// proxy URL is invalid, or the trusted certificates cannot be loaded: a
    /// `root_certificates_pem` bundle, or the file or directory named by `SSL_CERT_FILE` /
    /// `SSL_CERT_DIR` (for an `https` base URL), that cannot be read or parsed or holds no
    /// certificate. With [`defer_trust`](Self::defer_trust), that last check waits for the
    /// first send.
    pub fn build(self) -> Result<Client, Error> {
        Ok(Client {
            config: Arc::new(self.into_config()?),
        })
    }
}

/// Appends `segment` percent-encoded as one path segment: every byte outside RFC 3986's
/// unreserved set (`A-Z a-z 0-9 - . _ ~`) becomes `%XX`, so no id can add a segment or a query.
fn push_segment(out: &mut String, segment: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

pub(crate) fn check_assistant_id(id: &str, out: &mut Vec<Violation>) {
    let path = ["path", "assistant_id"];
    if id.trim().is_empty() {
        out.push(Violation::new(&path, "must not be blank", "blank"));
    } else if id.len() > MAX_ASSISTANT_ID_BYTES {
        out.push(Violation::new(
            &path,
            format!(
                "must be at most {MAX_ASSISTANT_ID_BYTES} bytes long (it is {})",
                id.len()
            ),
            "too_long",
        ));
    } else if id == "." || id == ".." {
        out.push(Violation::new(
            &path,
            "must not be `.` or `..` (a dot segment would change the path)",
            "dot_segment",
        ));
    }
}

/// A send, checked and serialized, ready to go on the wire: what
/// [`Client::prepare`] returns and [`Client::send_prepared`] sends.
///
/// Its `Debug` and [`headers`](PreparedSend::headers) show the `Authorization` header as
/// `Bearer [REDACTED]`.
///
/// It belongs to the client that prepared it (and that client's clones): its URL was made
/// from that client's base URL, and only that client's key and proxy may carry it. Any other
/// client refuses to send it.
#[derive(Clone)]
pub struct PreparedSend {
    client_id: u64,
    assistant_id: String,
    url: String,
    body: Vec<u8>,
    pub(crate) idempotency_key: Option<String>,
}

impl PreparedSend {
    /// Always `POST`.
    pub fn method(&self) -> &'static str {
        "POST"
    }

    /// The full URL, with the assistant id percent-encoded.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The JSON body, exactly as it will be sent.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The assistant this send goes through.
    pub fn assistant_id(&self) -> &str {
        &self.assistant_id
    }

    /// The `Idempotency-Key` every attempt of this send carries, if any.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }

    /// The headers of the first attempt, in order, with the key redacted. (ureq adds
    /// `Host` and `Content-Length`; retries carry `x-stainless-retry-count: N`.)
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("authorization", "Bearer [REDACTED]".to_owned()),
            ("content-type", "application/json".to_owned()),
            ("accept", "application/json".to_owned()),
            ("user-agent", USER_AGENT.to_owned()),
            ("x-stainless-retry-count", "0".to_owned()),
        ];
        if let Some(k) = &self.idempotency_key {
            h.push(("idempotency-key", k.clone()));
        }
        h
    }
}

impl fmt::Debug for PreparedSend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedSend")
            .field("url", &self.url)
            .field("headers", &self.headers())
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

/// What a batch lets the send loop do around its attempts (a single send has none, and pays
/// nothing for it): space them, and pass on a wait the server asked for, which holds every
/// worker of the batch.
pub(crate) trait Pace {
    /// Waits until this attempt may start.
    fn before_attempt(&self);
    /// A `429` or `503` asked every client to wait `wait`.
    fn server_wait(&self, wait: Duration);
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

impl Client {
    /// A builder with every default; see [`ClientBuilder`].
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// A client with this API key and every other default.
    ///
    /// # Errors
    ///
    /// A [`Config`](crate::ErrorKind::Config) error when the key is empty or malformed.
    pub fn new(api_key: impl Into<String>) -> Result<Client, Error> {
        Client::builder().api_key(api_key).build()
    }

    /// A client configured from `TELNYX_API_KEY` and, if set, `TELNYX_BASE_URL`.
    ///
    /// # Errors
    ///
    /// A [`Config`](crate::ErrorKind::Config) error when `TELNYX_API_KEY` is unset or
    /// malformed, or `TELNYX_BASE_URL` is not an acceptable base URL.
    pub fn from_env() -> Result<Client, Error> {
        ClientBuilder::from_env().build()
    }

    /// The base URL in use, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.config.base_url()
    }

    /// Sends one SMS through the assistant `assistant_id`, retrying only where that cannot
    /// send it twice (see the crate docs), and returns the server's answer.
    ///
    /// The request and the id are validated first; nothing goes on the network unless both
    /// pass.
    ///
    /// # Errors
    ///
    /// - [`Validation`](crate::ErrorKind::Validation): a rule was broken; every violation is
    ///   listed, and nothing was sent.
    /// - [`Api`](crate::ErrorKind::Api): the server answered with an error status (after any
    ///   retries); its status, request id and error entries are kept.
    /// - [`Transport`](crate::ErrorKind::Transport): no usable answer;
    ///   [`may_have_been_sent`](Error::may_have_been_sent) says whether the SMS may have gone.
    /// - [`Decode`](crate::ErrorKind::Decode): a 2xx answer whose body is not the expected JSON.
    pub fn send_sms(
        &self,
        assistant_id: &str,
        request: &SendSmsRequest,
    ) -> Result<SendSmsResponse, Error> {
        let prepared = self.prepare(assistant_id, request)?;
        self.send_prepared(&prepared)
    }

    /// Validates and serializes a send without sending it: for a dry run, for logging what
    /// will go out, or to send later with [`send_prepared`](Self::send_prepared) under the
    /// same idempotency key.
    ///
    /// ```
    /// use telnyx_assistant_sms::{Client, SendSmsRequest};
    ///
    /// let client = Client::builder().api_key("KEY").build()?;
    /// let req = SendSmsRequest::new("+15550001111", "+15550002222").idempotency_key("order-42");
    /// let p = client.prepare("a/b", &req)?;
    /// assert_eq!(p.url(), "https://api.telnyx.com/v2/ai/assistants/a%2Fb/chat/sms");
    /// assert_eq!(p.body(), br#"{"from":"+15550001111","to":"+15550002222"}"#);
    /// assert_eq!(p.idempotency_key(), Some("order-42"));
    /// # Ok::<(), telnyx_assistant_sms::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`Validation`](crate::ErrorKind::Validation) error listing every broken rule.
    pub fn prepare(
        &self,
        assistant_id: &str,
        request: &SendSmsRequest,
    ) -> Result<PreparedSend, Error> {
        let mut p = self.prepare_unkeyed(assistant_id, request)?;
        p.idempotency_key = match &request.idempotency_key {
            Some(k) => Some(k.clone()),
            None if self.config.auto_idempotency_key() => Some(crate::keys::new_idempotency_key()),
            None => None,
        };
        Ok(p)
    }

    /// [`prepare`](Self::prepare) without choosing a key: the caller sets it (a batch derives
    /// it from the body).
    pub(crate) fn prepare_unkeyed(
        &self,
        assistant_id: &str,
        request: &SendSmsRequest,
    ) -> Result<PreparedSend, Error> {
        let mut violations = Vec::new();
        check_assistant_id(assistant_id, &mut violations);
        request.collect_violations(&mut violations);
        if !violations.is_empty() {
            return Err(Error::validation(violations));
        }
        let prefix = self.config.endpoint_prefix();
        let mut url = String::with_capacity(prefix.len() + assistant_id.len() * 3 + 9);
        url.push_str(prefix);
        push_segment(&mut url, assistant_id);
        url.push_str("/chat/sms");
        // Sized for a typical body, so serializing does not reallocate.
        let mut body = Vec::with_capacity(256);
        request
            .write_wire_body(&mut body)
            .map_err(|e| Error::config("the request could not be serialized").with_source(e))?;
        Ok(PreparedSend {
            client_id: self.config.id(),
            assistant_id: assistant_id.to_owned(),
            url,
            body,
            idempotency_key: None,
        })
    }

    /// Sends a [`PreparedSend`], with the same retry rules as [`send_sms`](Self::send_sms).
    ///
    /// Sending the same `PreparedSend` again reuses its idempotency key, so when it carries
    /// one (the default: see
    /// [`auto_idempotency_key`](crate::ClientBuilder::auto_idempotency_key)), the server
    /// delivers the SMS at most once however often it is sent. Without a key, each call may
    /// send the SMS again.
    ///
    /// # Errors
    ///
    /// As [`send_sms`](Self::send_sms), less validation; and a
    /// [`Config`](crate::ErrorKind::Config) error, with nothing sent, when `prepared` was made
    /// by another client (one that is not this client or a clone of it).
    pub fn send_prepared(&self, prepared: &PreparedSend) -> Result<SendSmsResponse, Error> {
        if prepared.client_id != self.config.id() {
            return Err(Error::config(
                "this PreparedSend was prepared by another client, and carries that client's \
                 url; prepare it again with the client that is to send it",
            ));
        }
        self.send_paced(prepared, None)
    }

    /// The send loop: attempts, retries and waits, for one send alone or one request of a
    /// batch (whose pacer spaces and pauses attempts across workers, and whose index goes
    /// into every log record).
    pub(crate) fn send_paced(
        &self,
        prepared: &PreparedSend,
        batch: Option<(&dyn Pace, usize)>,
    ) -> Result<SendSmsResponse, Error> {
        let key = prepared.idempotency_key.as_deref();
        let index = batch.map(|b| b.1);
        let started = Instant::now();
        let mut any_maybe_sent = false;
        let mut retry: u32 = 0;
        loop {
            if let Some((pacer, _)) = batch {
                pacer.before_attempt();
            }
            // Only the debug record needs the attempt's own start.
            let attempt_started =
                log::log_enabled!(target: LOG_TARGET, log::Level::Debug).then(Instant::now);
            let failure = match self.attempt(prepared, retry) {
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
            let retryable = policy::may_retry(failure.class, self.config.policy(), key.is_some());
            if let (Some((pacer, _)), Some((wait, _))) = (batch, failure.server_wait) {
                // The server asked everyone to slow down, not just this worker.
                if matches!(failure.error.status(), Some(429 | 503)) {
                    pacer.server_wait(wait);
                }
            }
            let (wait, source) = failure.server_wait.unwrap_or_else(|| {
                let (start, max) = self.config.retry_backoff();
                let wait = retry::backoff(retry, start, max);
                (wait, WaitSource::Backoff)
            });
            // The 60 s cap is for waits the server asks for; our own backoff is the caller's
            // setting and is slept through whatever it is.
            let too_long = source != WaitSource::Backoff && wait > retry::MAX_SERVER_WAIT;
            if !retryable || retry >= self.config.max_retries() || too_long {
                let error = failure
                    .error
                    .finish(retry + 1, key, any_maybe_sent, started.elapsed());
                record!(
                    log::Level::Warn,
                    index,
                    {
                        assistant_id = prepared.assistant_id.as_str(),
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
                    assistant_id = prepared.assistant_id.as_str(),
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
            std::thread::sleep(wait);
            retry += 1;
        }
    }

    fn attempt(&self, p: &PreparedSend, retry: u32) -> Result<SendSmsResponse, Failure> {
        let mut req = self
            .config
            .agent()
            .map_err(final_failure)?
            .post(p.url.as_str())
            .header(AUTHORIZATION, self.config.authorization().clone())
            .header(CONTENT_TYPE, JSON)
            .header(ACCEPT, JSON)
            .header(RETRY_COUNT, retry_count(retry));
        if let Some(k) = &p.idempotency_key {
            req = req.header(IDEMPOTENCY_KEY, k.as_str());
        }
        transport::start_attempt();
        let mut resp = match req.send(&p.body[..]) {
            Ok(r) => r,
            Err(e) => return Err(self.transport_failure(e)),
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
        let server_wait = retry::server_wait(header("retry-after-ms"), header("retry-after"));
        // The body of an error is informative only: keep what arrived, even if cut off.
        let body = match read_capped(resp.body_mut()) {
            Ok((b, _)) => Some(into_text(b)),
            Err(_) => None,
        };
        let mut what = format!(
            "http {code} {}",
            status.canonical_reason().unwrap_or("").to_ascii_lowercase()
        );
        let what_len = what.trim_end().len();
        what.truncate(what_len);
        let parsed = body.as_deref().map(parse_error_body).unwrap_or_default();
        if let Some(summary) = summarize(&parsed) {
            what.push_str(": ");
            what.push_str(&summary);
        }
        let class = policy::classify_status(code, server_wait.is_some(), should_retry);
        let mut error = Error::api(code, body, parsed, what)
            .with_request_id(request_id)
            .with_retry_after(server_wait.map(|w| w.0));
        error.set_may_have_been_sent(class.may_have_been_sent());
        Err(Failure {
            error,
            class,
            server_wait,
        })
    }

    /// A failed `send`: classified by the phase it failed in (see `transport.rs`).
    fn transport_failure(&self, e: ureq::Error) -> Failure {
        let (e, opening) = transport::unmark(e);
        let phase = match (&opening, transport::progress()) {
            (Some(at), _) => Phase::Opening(at),
            (None, transport::Progress::NotWritten) => Phase::BeforeWrite,
            (None, transport::Progress::Writing) => Phase::Writing,
            (None, transport::Progress::Reading) => Phase::AfterWrite,
        };
        let ends = Ends {
            target: self.config.target(),
            proxy: self.config.proxy().map(|p| p.authority.as_str()),
        };
        let v = retry::classify_transport(&e, phase, ends);
        Failure {
            error: Error::transport(v.what, v.class.may_have_been_sent()).with_source(e),
            class: v.class,
            server_wait: None,
        }
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
    p: &PreparedSend,
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
                assistant_id = p.assistant_id.as_str(),
                attempt = retry + 1,
                idempotency_key = p.idempotency_key.as_deref().unwrap_or(""),
                outcome = outcome,
                duration_ms = millis(took),
                request_id = request_id.as_deref().unwrap_or("")
            },
            "{}attempt {} to assistant {}: {outcome} in {} (request id {}, idempotency key {})",
            Prefix(index),
            retry + 1,
            Clean(&p.assistant_id, 80),
            human(took),
            request_id.as_deref().unwrap_or("none"),
            p.idempotency_key.as_deref().unwrap_or("none"),
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
    fn segments_are_fully_encoded() {
        let mut s = String::new();
        push_segment(&mut s, "../numbers");
        assert_eq!(s, "..%2Fnumbers");
        s.clear();
        push_segment(&mut s, "a/b?c#d e%,é~");
        assert_eq!(s, "a%2Fb%3Fc%23d%20e%25%2C%C3%A9~");
    }
}
