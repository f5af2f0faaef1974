//! The configuration a client holds: what [`ClientBuilder`](crate::ClientBuilder) made of its
//! settings once they passed its checks, read through getters named as the builder's setters
//! (`base_url()`, `max_retries()`, `retry_backoff()`, ...). Nothing here checks anything: the
//! builder does, once. A client shows as this (its one `Debug`); the settings taken as given
//! ([`Settings`]) are defaulted and shown in one place for the builder and the client.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ureq::Agent;
use ureq::http::HeaderValue;

use crate::agent::AgentCell;
use crate::api_key::ApiKey;
use crate::error::Error;
use crate::policy::Policy;
use crate::wait::{BACKOFF_MAX, BACKOFF_START};

/// The production API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.telnyx.com/v2";
/// The environment variable [`Client::from_env`](crate::Client::from_env) reads the API key
/// from.
pub const API_KEY_ENV: &str = "TELNYX_API_KEY";
/// The environment variable [`Client::from_env`](crate::Client::from_env) reads a base URL
/// override from.
pub const BASE_URL_ENV: &str = "TELNYX_BASE_URL";

/// The settings a client uses as the builder was given them (the builder checks them, and
/// turns none into something else), with their defaults.
#[derive(Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_retries: u32,
    /// The first wait between attempts and the most it doubles to.
    pub(crate) retry_backoff: (Duration, Duration),
    pub(crate) auto_idempotency_key: bool,
    pub(crate) retry_in_doubt: bool,
    pub(crate) retry_ambiguous: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            max_retries: 2,
            retry_backoff: (BACKOFF_START, BACKOFF_MAX),
            auto_idempotency_key: true,
            retry_in_doubt: false,
            retry_ambiguous: false,
        }
    }
}

impl Settings {
    /// Adds the settings to a `Debug` of the builder or the client, named as the setters.
    pub(crate) fn show(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_backoff", &self.retry_backoff)
            .field("auto_idempotency_key", &self.auto_idempotency_key)
            .field("retry_in_doubt", &self.retry_in_doubt)
            .field("retry_ambiguous", &self.retry_ambiguous);
    }
}

/// The proxy a client goes through, by its names.
pub(crate) struct ProxyNames {
    /// The URL with its credentials hidden, for `Debug`.
    pub(crate) shown: String,
    /// `host:port`, for messages.
    pub(crate) authority: String,
}

/// A client's validated configuration; made by [`ClientBuilder`](crate::ClientBuilder).
pub(crate) struct Config {
    /// Unique per built client (clones share it): a `PreparedSend` carries it, so only the
    /// client that prepared it can send it.
    id: u64,
    /// Made at the first send when the trust is deferred (see `agent.rs`).
    agent: AgentCell,
    authorization: HeaderValue,
    /// `{base}/ai/assistants/`, so a send only appends the encoded id and `/chat/sms`.
    endpoint_prefix: String,
    base_url: String,
    /// `host:port` of the API, for messages.
    target: String,
    proxy: Option<ProxyNames>,
    /// Which certificates are trusted, in words.
    trust: String,
    settings: Settings,
}

impl Config {
    /// A configuration of checked parts: `base_url` passed the base URL check (no trailing
    /// slash) and its `host:port` is `target`; the key has no problem.
    pub(crate) fn new(
        key: &ApiKey,
        base_url: String,
        target: String,
        proxy: Option<ProxyNames>,
        agent: AgentCell,
        trust: String,
        settings: Settings,
    ) -> Config {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Config {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            agent,
            authorization: key.bearer(),
            endpoint_prefix: format!("{base_url}/ai/assistants/"),
            base_url,
            target,
            proxy,
            trust,
            settings,
        }
    }

    /// Which built client this is (its clones included).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The agent, made now if the trust was deferred.
    ///
    /// # Errors
    ///
    /// A deferred trust that cannot be read: a `Config` error, the same at every send.
    pub(crate) fn agent(&self) -> Result<&Agent, Error> {
        self.agent.get()
    }

    /// `Bearer KEY`, marked sensitive.
    pub(crate) fn authorization(&self) -> &HeaderValue {
        &self.authorization
    }

    /// `{base}/ai/assistants/`.
    pub(crate) fn endpoint_prefix(&self) -> &str {
        &self.endpoint_prefix
    }

    /// The base URL, without a trailing slash.
    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `host:port` of the API, for messages.
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// The proxy, if one is used.
    pub(crate) fn proxy(&self) -> Option<&ProxyNames> {
        self.proxy.as_ref()
    }

    pub(crate) fn max_retries(&self) -> u32 {
        self.settings.max_retries
    }

    pub(crate) fn retry_backoff(&self) -> (Duration, Duration) {
        self.settings.retry_backoff
    }

    pub(crate) fn auto_idempotency_key(&self) -> bool {
        self.settings.auto_idempotency_key
    }

    /// `retry_in_doubt` and `retry_ambiguous`, as the retry policy takes them.
    pub(crate) fn policy(&self) -> Policy {
        Policy {
            in_doubt: self.settings.retry_in_doubt,
            ambiguous: self.settings.retry_ambiguous,
        }
    }
}

/// Shown as `Client { .. }`: a client's `Debug` is its configuration, the key redacted.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Client");
        d.field("api_key", &"[REDACTED]")
            .field("base_url", &self.base_url)
            .field("proxy", &self.proxy.as_ref().map(|p| &p.shown))
            .field("trust", &self.trust);
        self.settings.show(&mut d);
        d.finish_non_exhaustive()
    }
}
