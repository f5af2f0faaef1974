//! The client, its builder, and the send loop.

use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use ureq::Agent;
use ureq::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use ureq::http::{HeaderName, HeaderValue, Uri};

use crate::api_key::ApiKey;
use crate::error::{Error, Violation};
use crate::proxy::{ProxyChoice, resolve_proxy};
use crate::request::SendSmsRequest;
use crate::resolver::CachingResolver;
use crate::response::{SendSmsResponse, parse_error_body};
use crate::retry::{self, Class};
use crate::transport::{ConnectPhase, StableTimeoutConnector};

/// The production API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.telnyx.com/v2";
/// The environment variable [`Client::from_env`] reads the API key from.
pub const API_KEY_ENV: &str = "TELNYX_API_KEY";
/// The environment variable [`Client::from_env`] reads a base URL override from.
pub const BASE_URL_ENV: &str = "TELNYX_BASE_URL";
/// The most of a response body that is read (1 MiB): a larger or endless answer is cut off
/// there (error bodies) or refused (success bodies), never buffered whole.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_MAX_RETRIES: u32 = 2;
const USER_AGENT: &str = concat!("telnyx-assistant-sms/", env!("CARGO_PKG_VERSION"));
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
    inner: Arc<Inner>,
}

struct Inner {
    agent: Agent,
    authorization: HeaderValue,
    /// `{base}/ai/assistants/`, so a send only appends the encoded id and `/chat/sms`.
    endpoint_prefix: String,
    base_url: String,
    proxy: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    max_retries: u32,
    auto_idempotency_key: bool,
    retry_ambiguous: bool,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Client")
            .field("api_key", &"[REDACTED]")
            .field("base_url", &i.base_url)
            .field("proxy", &i.proxy)
            .field("timeout", &i.timeout)
            .field("connect_timeout", &i.connect_timeout)
            .field("max_retries", &i.max_retries)
            .field("auto_idempotency_key", &i.auto_idempotency_key)
            .field("retry_ambiguous", &i.retry_ambiguous)
            .finish_non_exhaustive()
    }
}

/// Where a setting came from, so a configuration error can name what to fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Unset,
    Builder,
    Env,
}

/// Configures a [`Client`]. Start from [`Client::builder`] or [`ClientBuilder::from_env`].
///
/// Every setter consumes and returns the builder; [`build`](ClientBuilder::build) checks the
/// whole configuration.
#[derive(Clone)]
pub struct ClientBuilder {
    api_key: Option<ApiKey>,
    key_origin: Origin,
    base_url: String,
    base_url_origin: Origin,
    env_problem: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    max_retries: u32,
    auto_idempotency_key: bool,
    retry_ambiguous: bool,
    proxy: ProxyChoice,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("api_key", &self.api_key)
            .field("base_url", &crate::proxy::redact_userinfo(&self.base_url))
            .field("proxy", &self.proxy)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_retries", &self.max_retries)
            .field("auto_idempotency_key", &self.auto_idempotency_key)
            .field("retry_ambiguous", &self.retry_ambiguous)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            api_key: None,
            key_origin: Origin::Unset,
            base_url: DEFAULT_BASE_URL.to_owned(),
            base_url_origin: Origin::Unset,
            env_problem: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            auto_idempotency_key: true,
            retry_ambiguous: false,
            proxy: ProxyChoice::FromEnv,
        }
    }
}

impl ClientBuilder {
    /// A builder with every default and no API key.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder that takes the API key from `TELNYX_API_KEY` and, when set and not empty,
    /// the base URL from `TELNYX_BASE_URL`, read now. Later setters override both.
    ///
    /// A missing key is reported by [`build`](Self::build), not here.
    pub fn from_env() -> Self {
        let mut b = Self::default();
        match std::env::var(API_KEY_ENV) {
            Ok(key) => {
                b.api_key = Some(ApiKey::new(key));
                b.key_origin = Origin::Env;
            }
            Err(std::env::VarError::NotPresent) => b.key_origin = Origin::Env,
            Err(std::env::VarError::NotUnicode(_)) => {
                b.env_problem = Some(format!("{API_KEY_ENV} is not valid unicode"));
            }
        }
        match std::env::var(BASE_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => {
                b.base_url = url.trim().to_owned();
                b.base_url_origin = Origin::Env;
            }
            Ok(_) | Err(std::env::VarError::NotPresent) => {}
            Err(std::env::VarError::NotUnicode(_)) => {
                b.env_problem = Some(format!("{BASE_URL_ENV} is not valid unicode"));
            }
        }
        b
    }

    /// The Telnyx API key (V2), sent as `Authorization: Bearer KEY`.
    ///
    /// It is kept in a type whose `Debug` prints `[REDACTED]`. Defaults to none: `build`
    /// fails without one (except from [`from_env`](Self::from_env), which reads
    /// `TELNYX_API_KEY`).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(ApiKey::new(key.into()));
        self.key_origin = Origin::Builder;
        self
    }

    /// The API's base URL, up to and including the version: `https://api.telnyx.com/v2`.
    ///
    /// A trailing slash changes nothing. It must be `https`, or `http` to a loopback host
    /// (`127.0.0.0/8`, `[::1]`, `localhost`), so the key never travels in clear text to
    /// another machine. Defaults to [`DEFAULT_BASE_URL`] (or `TELNYX_BASE_URL` with
    /// [`from_env`](Self::from_env)).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self.base_url_origin = Origin::Builder;
        self
    }

    /// The most one attempt may take, from resolving the host to reading the last byte of the
    /// answer. Retries each get the full time again.
    ///
    /// Defaults to 60 seconds, as the official SDKs do.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The most that opening a connection may take (TCP, proxy and TLS handshake), within
    /// [`timeout`](Self::timeout). A connection that times out here never carried the request,
    /// so it is always retried.
    ///
    /// Defaults to 5 seconds, as the official SDKs do.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many times a failed attempt may be retried (so at most `n + 1` requests), following
    /// the rules in the crate docs: only what cannot have been delivered, or what the
    /// idempotency key makes safe. `0` disables retries.
    ///
    /// Defaults to 2.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Whether a send without a caller-chosen key gets a fresh random `Idempotency-Key`
    /// (128 bits), the same on each of its retries. With `false`, only a key set through
    /// [`SendSmsRequest::idempotency_key`] is sent, and ambiguous failures of keyless sends are
    /// not retried.
    ///
    /// Defaults to `true`.
    pub fn auto_idempotency_key(mut self, enabled: bool) -> Self {
        self.auto_idempotency_key = enabled;
        self
    }

    /// Also retry ambiguous failures (a 500/502/504/409, or no complete answer) of a send that
    /// carries no idempotency key. The server may then have sent the SMS already, and the
    /// retry sends it again: only for callers who prefer a duplicate to a lost message.
    ///
    /// Defaults to `false`.
    pub fn retry_ambiguous(mut self, enabled: bool) -> Self {
        self.retry_ambiguous = enabled;
        self
    }

    /// Sends through this proxy (`http://[user:password@]host:port`; also `https://`), whatever
    /// the environment says.
    ///
    /// Only `http://` and `https://` (CONNECT) proxies are supported. With an `http` base URL
    /// (loopback only), the proxy must be on loopback too, so the key cannot travel in clear
    /// text to another machine.
    ///
    /// Defaults to the environment, as curl reads it: `HTTPS_PROXY` then `ALL_PROXY` (upper or
    /// lower case), unless `NO_PROXY` lists the host; an `http` (loopback) base URL is always
    /// reached directly.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = ProxyChoice::Url(url.into());
        self
    }

    /// Connects directly, ignoring any proxy in the environment. Tests against a local
    /// server should use this, so that a proxy variable cannot redirect them.
    ///
    /// Defaults to off (the environment is honoured).
    pub fn no_proxy(mut self) -> Self {
        self.proxy = ProxyChoice::None;
        self
    }

    /// Checks the configuration and builds the client.
    ///
    /// # Errors
    ///
    /// An [`ErrorKind::Config`](crate::ErrorKind::Config) error naming the problem when the API
    /// key is missing or malformed, the base URL does not parse, is not `https` (nor `http` to
    /// a loopback host), has credentials or a query, a timeout is zero, or the proxy URL is
    /// invalid.
    pub fn build(self) -> Result<Client, Error> {
        if let Some(problem) = self.env_problem {
            return Err(Error::config(problem));
        }
        let key_name = match self.key_origin {
            Origin::Env => API_KEY_ENV,
            _ => "api key",
        };
        let Some(api_key) = self.api_key else {
            return Err(Error::config(match self.key_origin {
                Origin::Env => format!("no api key: {API_KEY_ENV} is not set"),
                _ => format!("no api key: set {API_KEY_ENV} or pass one to ClientBuilder::api_key"),
            }));
        };
        if let Some(problem) = api_key.problem() {
            return Err(Error::config(format!("the {key_name} {problem}")));
        }
        let url_name = match self.base_url_origin {
            Origin::Env => BASE_URL_ENV,
            _ => "base url",
        };
        let (base_url, uri) = check_base_url(&self.base_url, url_name)?;
        if self.timeout.is_zero() {
            return Err(Error::config("the timeout must be greater than zero"));
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::config(
                "the connect timeout must be greater than zero",
            ));
        }
        let proxy = resolve_proxy(&self.proxy, &uri)?;
        let proxy_shown = proxy.as_ref().map(|p| p.shown.clone());

        let config = Agent::config_builder()
            // 4xx/5xx come back as responses, so their headers and bodies are kept.
            .http_status_as_error(false)
            .timeout_global(Some(self.timeout))
            .timeout_connect(Some(self.connect_timeout.min(self.timeout)))
            .user_agent(USER_AGENT)
            // A redirect of this POST is unexpected: report it rather than follow it.
            .max_redirects(0)
            .proxy(proxy.map(|p| p.proxy))
            // Keep enough idle connections for a client shared by a few threads.
            .max_idle_connections(16)
            .max_idle_connections_per_host(16)
            .build();
        // Both parts keep the timeouts from costing anything per send: see resolver.rs and
        // transport.rs.
        let agent = Agent::with_parts(
            config,
            StableTimeoutConnector::default(),
            CachingResolver::default(),
        );

        Ok(Client {
            inner: Arc::new(Inner {
                agent,
                authorization: api_key.bearer(),
                endpoint_prefix: format!("{base_url}/ai/assistants/"),
                base_url,
                proxy: proxy_shown,
                timeout: self.timeout,
                connect_timeout: self.connect_timeout,
                max_retries: self.max_retries,
                auto_idempotency_key: self.auto_idempotency_key,
                retry_ambiguous: self.retry_ambiguous,
            }),
        })
    }
}

/// Checks the base URL; returns it without trailing slashes, and parsed.
fn check_base_url(raw: &str, name: &str) -> Result<(String, Uri), Error> {
    let bad = |why: &str| Error::config(format!("the {name} {why}"));
    let trimmed = raw.trim().trim_end_matches('/');
    let uri: Uri = trimmed
        .parse()
        .map_err(|e| bad("is not a valid absolute url").with_source(e))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(bad(
            "is not a valid absolute url (expected https://host/path)",
        ));
    };
    if authority.as_str().contains('@') {
        return Err(bad("must not contain credentials (user:password@)"));
    }
    if uri.query().is_some() || trimmed.contains('#') {
        return Err(bad("must not contain a query or a fragment"));
    }
    match scheme {
        "https" => {
            if !cfg!(feature = "rustls") {
                return Err(bad(
                    "is https, but this build has no tls: enable the `rustls` feature",
                ));
            }
        }
        "http" => {
            if !is_loopback(authority.host()) {
                return Err(bad(
                    "uses plain http to a host that is not loopback: the api key would travel in clear text; use https",
                ));
            }
        }
        other => return Err(bad(&format!("has scheme `{other}`; use https"))),
    }
    Ok((trimmed.to_owned(), uri))
}

pub(crate) fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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

fn check_assistant_id(id: &str, out: &mut Vec<Violation>) {
    let path = ["path", "assistant_id"];
    if id.trim().is_empty() {
        out.push(Violation::new(&path, "must not be blank", "blank"));
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
#[derive(Clone)]
pub struct PreparedSend {
    url: String,
    body: Vec<u8>,
    idempotency_key: Option<String>,
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

/// One failed attempt, before the retry loop decides what to do with it.
struct Failure {
    error: Error,
    class: Class,
    /// The wait the server asked for, if it did.
    server_wait: Option<Duration>,
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
        &self.inner.base_url
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
        let mut violations = Vec::new();
        check_assistant_id(assistant_id, &mut violations);
        request.collect_violations(&mut violations);
        if !violations.is_empty() {
            return Err(Error::validation(violations));
        }
        let prefix = &self.inner.endpoint_prefix;
        let mut url = String::with_capacity(prefix.len() + assistant_id.len() * 3 + 9);
        url.push_str(prefix);
        push_segment(&mut url, assistant_id);
        url.push_str("/chat/sms");
        // Sized for a typical body, so serializing does not reallocate.
        let mut body = Vec::with_capacity(256);
        serde_json::to_writer(&mut body, request)
            .map_err(|e| Error::config("the request could not be serialized").with_source(e))?;
        let idempotency_key = match &request.idempotency_key {
            Some(k) => Some(k.clone()),
            None if self.inner.auto_idempotency_key => Some(retry::new_idempotency_key()),
            None => None,
        };
        Ok(PreparedSend {
            url,
            body,
            idempotency_key,
        })
    }

    /// Sends a [`PreparedSend`], with the same retry rules as [`send_sms`](Self::send_sms).
    /// Sending the same `PreparedSend` twice reuses its idempotency key, so the server
    /// delivers the SMS at most once.
    ///
    /// # Errors
    ///
    /// As [`send_sms`](Self::send_sms), less validation.
    pub fn send_prepared(&self, prepared: &PreparedSend) -> Result<SendSmsResponse, Error> {
        let key = prepared.idempotency_key.as_deref();
        let mut any_maybe_sent = false;
        let mut retry: u32 = 0;
        loop {
            let failure = match self.attempt(prepared, retry) {
                Ok(res) => return Ok(res),
                Err(f) => f,
            };
            any_maybe_sent |= failure.error.may_have_been_sent();
            let attempts = retry + 1;
            let retryable = match failure.class {
                Class::NotDelivered => true,
                Class::Ambiguous => key.is_some() || self.inner.retry_ambiguous,
                Class::Final => false,
            };
            let wait = failure.server_wait.unwrap_or_else(|| retry::backoff(retry));
            if !retryable || retry >= self.inner.max_retries || wait > retry::MAX_SERVER_WAIT {
                return Err(failure.error.finish(attempts, key, any_maybe_sent));
            }
            std::thread::sleep(wait);
            retry += 1;
        }
    }

    fn attempt(&self, p: &PreparedSend, retry: u32) -> Result<SendSmsResponse, Failure> {
        let mut req = self
            .inner
            .agent
            .post(p.url.as_str())
            .header(AUTHORIZATION, self.inner.authorization.clone())
            .header(CONTENT_TYPE, JSON)
            .header(ACCEPT, JSON)
            .header(RETRY_COUNT, retry_count(retry));
        if let Some(k) = &p.idempotency_key {
            req = req.header(IDEMPOTENCY_KEY, k.as_str());
        }
        let mut resp = match req.send(&p.body[..]) {
            Ok(r) => r,
            Err(e) => {
                let (e, opening) = ConnectPhase::unwrap(e);
                let (class, what) = retry::classify_transport(&e, opening);
                return Err(Failure {
                    error: Error::transport(what, retry::may_have_sent(class)).with_source(e),
                    class,
                    server_wait: None,
                });
            }
        };
        let status = resp.status();
        let headers = resp.headers();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let request_id = header("x-request-id").map(str::to_owned);
        let code = status.as_u16();

        if status.is_success() {
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
            return match serde_json::from_slice::<SendSmsResponse>(&body) {
                Ok(mut res) => {
                    res.request_id = request_id;
                    Ok(res)
                }
                Err(e) => Err(final_failure(
                    Error::decode(
                        format!("http {code}: the body is not the expected json"),
                        code,
                    )
                    .with_request_id(request_id)
                    .with_body(String::from_utf8_lossy(&body).into_owned())
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
            Ok((b, _)) => Some(String::from_utf8_lossy(&b).into_owned()),
            Err(_) => None,
        };
        let mut what = format!(
            "http {code} {}",
            status.canonical_reason().unwrap_or("").to_ascii_lowercase()
        );
        let what_len = what.trim_end().len();
        what.truncate(what_len);
        let parsed = body.as_deref().map(parse_error_body);
        if let Some(p) = &parsed {
            if let Some(summary) = summarize(p) {
                what.push_str(": ");
                what.push_str(&summary);
            }
        }
        let (api_errors, violations) = parsed
            .map(|p| (p.api_errors, p.violations))
            .unwrap_or_default();
        let mut error = Error::api(code, body, api_errors, violations, what)
            .with_request_id(request_id)
            .with_retry_after(server_wait);
        error.set_may_have_been_sent(retry::status_may_have_sent(code, should_retry));
        Err(Failure {
            error,
            class: retry::classify_status(code, should_retry),
            server_wait,
        })
    }
}

fn final_failure(error: Error) -> Failure {
    Failure {
        error,
        class: Class::Final,
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

/// The server's own words, for the one-line `Display`.
fn summarize(p: &crate::response::ParsedErrorBody) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    if let Some(first) = p.api_errors.first() {
        parts.push(first.to_string());
        if p.api_errors.len() > 1 {
            parts.push(format!("and {} more", p.api_errors.len() - 1));
        }
    }
    parts.extend(p.violations.iter().take(3).map(|v| v.to_string()));
    if p.violations.len() > 3 {
        parts.push(format!("and {} more", p.violations.len() - 3));
    }
    if parts.is_empty() {
        parts.extend(p.message.clone());
    }
    (!parts.is_empty()).then(|| parts.join("; "))
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

    #[test]
    fn loopback_hosts() {
        for h in ["127.0.0.1", "127.1.2.3", "[::1]", "localhost", "LOCALHOST"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["10.0.0.1", "example.com", "[::2]", "localhost.example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
