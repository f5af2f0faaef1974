//! The builder: every setting of a [`Client`](crate::Client), checked once, into the
//! [`Config`] a client holds (`ClientBuilder::build`, in `client.rs`, wraps it in a client).

use std::fmt;
use std::time::Duration;

use crate::agent::{AgentCell, Recipe};
use crate::api_key::ApiKey;
use crate::config::{API_KEY_ENV, BASE_URL_ENV, Config, DEFAULT_BASE_URL, ProxyNames, Settings};
use crate::error::Error;
use crate::proxy::{ProxyChoice, resolve_proxy};
use crate::trust::{TrustChoice, TrustPlan, plan_trust};
use crate::url::{parse_base_url, redact_userinfo};

/// The longest `timeout` and `connect_timeout` accepted: far beyond any use, and far below
/// what would overflow a deadline (`Instant + Duration::MAX` panics).
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Where a setting came from, so a configuration error can name what to fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Unset,
    Builder,
    Env,
}

/// Configures a [`Client`](crate::Client). Start from [`Client::builder`](crate::Client::builder)
/// or [`ClientBuilder::from_env`].
///
/// Every setter consumes and returns the builder; [`build`](ClientBuilder::build) checks the
/// whole configuration.
#[derive(Clone)]
#[must_use = "a builder does nothing until `build()`"]
pub struct ClientBuilder {
    api_key: Option<ApiKey>,
    key_origin: Origin,
    base_url: String,
    base_url_origin: Origin,
    /// A variable that could not be read, until a setter replaces what it would have set.
    key_env_problem: Option<String>,
    base_url_env_problem: Option<String>,
    proxy: ProxyChoice,
    trust: TrustChoice,
    defer_trust: bool,
    /// What the client takes as given.
    settings: Settings,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ClientBuilder");
        d.field("api_key", &self.api_key)
            .field("base_url", &redact_userinfo(&self.base_url))
            .field("proxy", &self.proxy)
            .field("trust", &self.trust)
            .field("defer_trust", &self.defer_trust);
        self.settings.show(&mut d);
        d.finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            api_key: None,
            key_origin: Origin::Unset,
            base_url: DEFAULT_BASE_URL.to_owned(),
            base_url_origin: Origin::Unset,
            key_env_problem: None,
            base_url_env_problem: None,
            proxy: ProxyChoice::FromEnv,
            trust: TrustChoice::FromEnv,
            defer_trust: false,
            settings: Settings::default(),
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
                b.key_env_problem = Some(format!("{API_KEY_ENV} is not valid unicode"));
            }
        }
        match std::env::var(BASE_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => {
                b.base_url = url.trim().to_owned();
                b.base_url_origin = Origin::Env;
            }
            Ok(_) | Err(std::env::VarError::NotPresent) => {}
            Err(std::env::VarError::NotUnicode(_)) => {
                b.base_url_env_problem = Some(format!("{BASE_URL_ENV} is not valid unicode"));
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
        self.key_env_problem = None;
        self
    }

    /// The API's base URL, up to and including the version: `https://api.telnyx.com/v2`.
    ///
    /// A trailing slash changes nothing. It must be `https`, or `http` to a loopback host
    /// (`127.0.0.0/8`, `[::1]`, `localhost`), so the key never travels in clear text to
    /// another machine. It must have a path unless its host is loopback: `build` refuses
    /// `https://api.telnyx.com` (or `https://api.telnyx.com/`), whose every call would answer
    /// 404, and suggests `https://api.telnyx.com/v2`; a local stand-in such as
    /// `http://127.0.0.1:4010` (a mock made from the OpenAPI file, which serves the API at its
    /// root) is taken as given. Defaults to [`DEFAULT_BASE_URL`] (or `TELNYX_BASE_URL` with
    /// [`from_env`](Self::from_env)).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self.base_url_origin = Origin::Builder;
        self.base_url_env_problem = None;
        self
    }

    /// The most one attempt may take, from resolving the host to reading the last byte of the
    /// answer. Retries each get the full time again.
    ///
    /// At most 24 hours: [`build`](Self::build) refuses a longer one (such as
    /// `Duration::MAX`). Defaults to 60 seconds, as the official SDKs do.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// The most that opening a connection may take (TCP, proxy and TLS handshake), within
    /// [`timeout`](Self::timeout). A connection that times out here never carried the request,
    /// so it is always retried.
    ///
    /// At most 24 hours: [`build`](Self::build) refuses a longer one. Defaults to 5 seconds,
    /// as the official SDKs do.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// How many times a failed attempt may be retried (so at most `n + 1` requests), following
    /// the rules in the crate docs: only what cannot have been delivered, or what the
    /// idempotency key makes safe. `0` disables retries.
    ///
    /// Defaults to 2.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.settings.max_retries = n;
        self
    }

    /// The wait before a retry when the server asks for none: `initial` before the first
    /// retry, doubling for each one after it up to `max`, each time shortened by a random
    /// 0 to 25 % (jitter, so that many clients do not retry in step). A wait the server asks
    /// for (`retry-after-ms`, `Retry-After`) is used instead, whatever these are. These waits
    /// are slept through whatever their length (the 60 s cap is for waits the server asks
    /// for), so a long backoff makes a failing send take that long.
    ///
    /// Defaults to 0.5 s doubling to 8 s, as the official SDKs wait.
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.settings.retry_backoff = (initial, max);
        self
    }

    /// Whether a send without a caller-chosen key gets a fresh random `Idempotency-Key`
    /// (128 bits from the operating system's generator), the same on each of its retries. With
    /// `false`, only a key set through
    /// [`SendSmsRequest::idempotency_key`](crate::SendSmsRequest::idempotency_key) is sent,
    /// and ambiguous failures of keyless sends are not retried.
    ///
    /// Defaults to `true`.
    pub fn auto_idempotency_key(mut self, enabled: bool) -> Self {
        self.settings.auto_idempotency_key = enabled;
        self
    }

    /// Also retry, under the same idempotency key, failures after which the SMS may have been
    /// sent but a success would be replayed by a server that honours the key: no (readable)
    /// answer after the request was written (a timeout, a reset, a TLS failure after the
    /// handshake, garbage), a `502`, `504` or bare `503`, and a `409` (the first attempt still
    /// in progress). Never a `500` or another error answer of the application: the server
    /// replays only successes, so such a retry would execute again.
    ///
    /// This leans on the server: Telnyx documents `Idempotency-Key` only for endpoints whose
    /// reference declares it, and this one's does not. Against a server that ignores the key,
    /// each such retry may text the person again. A send without a key (see
    /// [`auto_idempotency_key`](Self::auto_idempotency_key)) is never retried by this.
    ///
    /// Defaults to `false`: only what provably was not performed is retried.
    pub fn retry_in_doubt(mut self, enabled: bool) -> Self {
        self.settings.retry_in_doubt = enabled;
        self
    }

    /// Retry every failure that may have been performed and could go through on a retry: what
    /// [`retry_in_doubt`](Self::retry_in_doubt) retries, with or without a key, and `500` and
    /// the other `5xx` answers too (what the official SDKs do). **It accepts a risk of
    /// duplicates**: the server may have sent the SMS already, and the retry sends it again.
    /// Only for callers who prefer a duplicate to a lost message.
    ///
    /// Defaults to `false`.
    pub fn retry_ambiguous(mut self, enabled: bool) -> Self {
        self.settings.retry_ambiguous = enabled;
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

    /// Trusts exactly the certificates in this PEM bundle (one or many
    /// `-----BEGIN CERTIFICATE-----` blocks) instead of the built-in roots: for a
    /// TLS-inspecting corporate proxy whose certificate authority signs what it forwards, or a
    /// local HTTPS stand-in of the API.
    ///
    /// ```no_run
    /// use telnyx_assistant_sms::Client;
    ///
    /// let pem = std::fs::read("/etc/ssl/corporate-root.pem").expect("the corporate root");
    /// let client = Client::builder().api_key("KEY").root_certificates_pem(pem).build()?;
    /// # Ok::<(), telnyx_assistant_sms::Error>(())
    /// ```
    ///
    /// Defaults to the environment: the PEM file named by `SSL_CERT_FILE` and the `*.pem` and
    /// `*.crt` files in the directories (`:`-separated) named by `SSL_CERT_DIR`, as OpenSSL,
    /// curl, Python and Go read them; when neither is set, Mozilla's roots compiled into the
    /// crate (`webpki-roots`). Calling this (or `platform_roots`) overrides both; the last
    /// call wins. A root named more than once (a system directory names each root as
    /// `NAME.pem`, as a `HASH.0` link and in its bundle) is trusted, and counted, once. With
    /// both variables set, only the bundle is read at first; the directories are read, once,
    /// the first time the bundle cannot vouch for a server (as OpenSSL looks in its directory
    /// only for an issuer its bundle lacks), with the same answer as reading every root at
    /// once. See [`defer_trust`](Self::defer_trust) for a program that may not send at all.
    pub fn root_certificates_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.trust = TrustChoice::Pem(pem.as_ref().into());
        self
    }

    /// Verifies certificates with the operating system's trust store (rustls-platform-verifier:
    /// the system's certificate store and, on Linux, its CA bundle), for machines where IT
    /// installs the corporate root there. Requires the `platform-verifier` feature.
    ///
    /// Defaults to off: see [`root_certificates_pem`](Self::root_certificates_pem) for the
    /// default. The last of this and `root_certificates_pem` wins.
    #[cfg(feature = "platform-verifier")]
    pub fn platform_roots(mut self) -> Self {
        self.trust = TrustChoice::Platform;
        self
    }

    /// Reads the trusted certificates (`SSL_CERT_FILE` / `SSL_CERT_DIR`, or a
    /// [`root_certificates_pem`](Self::root_certificates_pem) bundle) at the first send that
    /// needs them rather than in [`build`](Self::build).
    ///
    /// For a program that may never send, such as a dry run that only
    /// [`prepare`](crate::Client::prepare)s: it then neither pays for a large `SSL_CERT_DIR`
    /// (a system directory holds a few hundred files) nor fails on a broken `SSL_CERT_FILE` it
    /// does not need. `build` still reads the variables themselves (a value that is not
    /// unicode is its error), but opens no file. A certificate problem is then the first
    /// send's error instead: a [`Config`](crate::ErrorKind::Config) error naming the source,
    /// with nothing sent and no attempt made, and every later send gives the same error (the
    /// certificates are read once). Nothing changes for an `http` (loopback) base URL, which
    /// needs no certificates, nor for the built-in roots or `platform_roots`, which need no
    /// reading.
    ///
    /// ```
    /// use telnyx_assistant_sms::{Client, SendSmsRequest};
    ///
    /// // Even with SSL_CERT_FILE naming a file that is not there, this builds and prepares.
    /// let client = Client::builder().api_key("KEY").defer_trust(true).build()?;
    /// let p = client.prepare("assistant-id", &SendSmsRequest::new("+15550001111", "+15550002222"))?;
    /// assert!(p.url().ends_with("/chat/sms"));
    /// # Ok::<(), telnyx_assistant_sms::Error>(())
    /// ```
    ///
    /// Defaults to `false`: `build` reads and checks the certificates, so that a service fails
    /// at start rather than at its first send.
    pub fn defer_trust(mut self, defer: bool) -> Self {
        self.defer_trust = defer;
        self
    }

    /// Checks the settings and makes the configuration a client holds (see
    /// [`build`](Self::build) for every check).
    pub(crate) fn into_config(self) -> Result<Config, Error> {
        if let Some(problem) = self.key_env_problem.or(self.base_url_env_problem) {
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
        let (base_url, uri) = parse_base_url(&self.base_url, url_name)?;
        let settings = self.settings;
        if settings.timeout.is_zero() {
            return Err(Error::config("the timeout must be greater than zero"));
        }
        if settings.retry_backoff.1 < settings.retry_backoff.0 {
            return Err(Error::config(
                "the retry backoff's maximum must be at least its initial wait",
            ));
        }
        if settings.connect_timeout.is_zero() {
            return Err(Error::config(
                "the connect timeout must be greater than zero",
            ));
        }
        for (name, value) in [
            ("timeout", settings.timeout),
            ("connect timeout", settings.connect_timeout),
        ] {
            if value > MAX_TIMEOUT {
                return Err(Error::config(format!(
                    "the {name} must be at most 24 hours ({} s), not {}",
                    MAX_TIMEOUT.as_secs(),
                    crate::error::human(value)
                )));
            }
        }
        let proxy = resolve_proxy(&self.proxy, &uri)?;
        let proxy_names = proxy.as_ref().map(|p| ProxyNames {
            shown: p.shown.clone(),
            authority: p.authority.clone(),
        });
        // The environment's roots matter only to https (so an `http` loopback client reads
        // none); roots given in code are checked whatever the base URL, so a mistake in them
        // shows at once (unless deferred).
        let https = uri.scheme_str() == Some("https");
        let plan = match &self.trust {
            TrustChoice::FromEnv if !https => None,
            choice => Some(plan_trust(choice)?),
        };
        let recipe = Recipe {
            timeout: settings.timeout,
            connect_timeout: settings.connect_timeout,
            proxy: proxy.map(|p| p.proxy),
            trust: plan,
        };
        let deferred = self.defer_trust
            && matches!(
                recipe.trust,
                Some(TrustPlan::Env { .. } | TrustPlan::Pem(_))
            );
        let (agent, trust_shown) = if deferred {
            let shown = recipe.trust.as_ref().map(TrustPlan::unread);
            (AgentCell::deferred(recipe), shown)
        } else {
            let trust = recipe.trust.as_ref().map(TrustPlan::load).transpose()?;
            let agent = AgentCell::ready(&recipe, trust.as_ref());
            (agent, trust.map(|t| t.shown))
        };
        let trust = match trust_shown {
            Some(shown) => shown,
            None if https => "built-in Mozilla roots (webpki-roots)".to_owned(),
            None => "none needed (clear-text http to loopback)".to_owned(),
        };
        Ok(Config::new(
            &api_key,
            base_url,
            crate::url::authority(&uri),
            proxy_names,
            agent,
            trust,
            settings,
        ))
    }
}
