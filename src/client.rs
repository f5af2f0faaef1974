//! The client, the handle a caller holds: it validates a send, prepares it (the URL with the
//! assistant id encoded, the body, the idempotency key) and hands it to the send loop
//! (`send.rs`).

use std::fmt;
use std::sync::Arc;

use crate::builder::ClientBuilder;
use crate::config::Config;
use crate::error::Error;
use crate::request::SendSmsRequest;
use crate::response::SendSmsResponse;
use crate::send::{self, Outgoing, Pace};
use crate::violation::Violation;

/// The longest assistant id accepted, in bytes: real ids are about 50; a longer one would
/// only make a request line no server accepts.
pub const MAX_ASSISTANT_ID_BYTES: usize = 256;

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
        send::headers(Vec::with_capacity(6), 0, self.idempotency_key.as_deref())
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

    /// Sends one SMS through the assistant `assistant_id`, retrying by default only what
    /// provably was not performed (see the crate docs), and returns the server's answer.
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
    /// Sending the same `PreparedSend` again reuses its idempotency key (when it carries one:
    /// see [`auto_idempotency_key`](crate::ClientBuilder::auto_idempotency_key)), so a server
    /// that honours keys replays a first success instead of sending again. That is all a key
    /// buys: this endpoint does not declare `Idempotency-Key`, and only successes are
    /// replayed, so each call after a failure that may have been sent can send the SMS again.
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

    /// The send loop ([`send::send`]) for this client: one send alone, or one request of a
    /// batch (whose pacer spaces and pauses attempts across workers, and whose index goes
    /// into every log record).
    pub(crate) fn send_paced(
        &self,
        prepared: &PreparedSend,
        batch: Option<(&dyn Pace, usize)>,
    ) -> Result<SendSmsResponse, Error> {
        let outgoing = Outgoing {
            assistant_id: &prepared.assistant_id,
            url: &prepared.url,
            body: &prepared.body,
            idempotency_key: prepared.idempotency_key.as_deref(),
        };
        send::send(&self.config, &outgoing, batch)
    }
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
