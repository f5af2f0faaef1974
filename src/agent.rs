//! The ureq agent a client sends with: what it is made of (timeouts, proxy, trusted roots,
//! pool size), and when it is made (by `build`, or by the first send when the trust is
//! deferred).

use std::sync::OnceLock;
use std::time::Duration;

use ureq::Agent;
#[cfg(feature = "rustls")]
use ureq::tls::TlsConfig;

use crate::error::Error;
use crate::glue::resolver::CachingResolver;
use crate::glue::transport::StableTimeoutConnector;
#[cfg(feature = "rustls")]
use crate::trust::Tls;
use crate::trust::{Trust, TrustPlan};

/// The `User-Agent` of every request.
pub(crate) const USER_AGENT: &str = concat!("telnyx-assistant-sms/", env!("CARGO_PKG_VERSION"));

/// How many idle connections a client keeps: one for every worker of the largest batch (and
/// so for any client shared by that many threads); unused ones close after 15 s. `lib.rs`
/// checks that a batch's `MAX_CONCURRENCY` fits in it.
pub(crate) const POOL_SIZE: usize = 64;

/// What the ureq agent is made of. The trusted roots are part of its configuration, so a
/// client whose trust is deferred makes its agent at the first send.
pub(crate) struct Recipe {
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) proxy: Option<ureq::Proxy>,
    /// `None` for an `http` base URL with the roots from the environment: none are needed.
    pub(crate) trust: Option<TrustPlan>,
}

impl Recipe {
    /// The agent, verifying with `trust` (ureq's built-in roots when it has none).
    fn agent(&self, trust: Option<&Trust>) -> Agent {
        let config = Agent::config_builder()
            // 4xx/5xx come back as responses, so their headers and bodies are kept.
            .http_status_as_error(false)
            .timeout_global(Some(self.timeout))
            .timeout_connect(Some(self.connect_timeout.min(self.timeout)))
            .user_agent(USER_AGENT)
            // A redirect of this POST is unexpected: report it rather than follow it.
            .max_redirects(0)
            .proxy(self.proxy.clone())
            .max_idle_connections(POOL_SIZE)
            .max_idle_connections_per_host(POOL_SIZE);
        // Roots the crate read go to its own TLS layer, parsed once (glue/tls.rs); the
        // built-in roots and the platform verifier to ureq's.
        #[cfg(feature = "rustls")]
        let (config, own) = match trust.map(|t| &t.tls) {
            Some(Tls::Ureq(Some(roots))) => (
                config.tls_config(TlsConfig::builder().root_certs(roots.clone()).build()),
                None,
            ),
            Some(Tls::Own(tls)) => (config, Some(tls.clone())),
            Some(Tls::Ureq(None)) | None => (config, None),
        };
        #[cfg(feature = "rustls")]
        let connector = StableTimeoutConnector::with_tls(own);
        #[cfg(not(feature = "rustls"))]
        let connector = {
            let _ = trust;
            StableTimeoutConnector::default()
        };
        // Both parts keep the timeouts from costing anything per send: see glue/mod.rs.
        Agent::with_parts(config.build(), connector, CachingResolver::default())
    }

    /// Reads the trusted roots, then makes the agent.
    fn load(&self) -> Result<Agent, Error> {
        let trust = self.trust.as_ref().map(TrustPlan::load).transpose()?;
        Ok(self.agent(trust.as_ref()))
    }
}

/// A client's ureq agent: made by `build`, or, with
/// [`defer_trust`](crate::ClientBuilder::defer_trust), by the first send that asks for it.
pub(crate) struct AgentCell {
    agent: OnceLock<Result<Agent, Error>>,
    /// Kept only while the agent may still have to be made.
    recipe: Option<Recipe>,
}

impl AgentCell {
    /// The agent made now, verifying with `trust`, already read.
    pub(crate) fn ready(recipe: &Recipe, trust: Option<&Trust>) -> Self {
        AgentCell {
            agent: OnceLock::from(Ok(recipe.agent(trust))),
            recipe: None,
        }
    }

    /// The agent made at the first send, which reads the trusted roots.
    pub(crate) fn deferred(recipe: Recipe) -> Self {
        AgentCell {
            agent: OnceLock::new(),
            recipe: Some(recipe),
        }
    }

    /// The agent, made now if it was deferred (concurrent first sends wait for one another).
    ///
    /// # Errors
    ///
    /// The trusted certificates could not be read: a `Config` error, the same one at every
    /// send.
    pub(crate) fn get(&self) -> Result<&Agent, Error> {
        self.agent
            .get_or_init(|| match &self.recipe {
                Some(recipe) => recipe.load(),
                None => Err(Error::config("the client has no http agent")),
            })
            .as_ref()
            .map_err(Error::clone)
    }
}
