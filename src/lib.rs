//! A blocking, synchronous client for one Telnyx call, *Assistant SMS Chat*
//! (`POST /v2/ai/assistants/{assistant_id}/chat/sms`): the assistant sends an SMS (your text,
//! else its greeting on a first message, else text it generates) and you get the
//! `conversation_id` back.
//!
//! It is made for command-line programs, scripts and services that do not run an async
//! runtime: no tokio, no futures, one small HTTP stack ([ureq](https://docs.rs/ureq) 3 with
//! rustls), `serde` and `serde_json`. Every request is validated before a byte is sent, every
//! failure is a typed [`Error`] that keeps what the server said, and nothing is sent twice
//! by accident, whatever the server does: by default only what provably was not performed is
//! retried, and a durable journal makes a batch safe to run again after a crash.
//!
//! ```no_run
//! use std::time::Duration;
//! use telnyx_assistant_sms::{Client, SendSmsRequest};
//!
//! let client = Client::builder()
//!     .api_key(std::env::var("TELNYX_API_KEY").unwrap_or_default())
//!     .timeout(Duration::from_secs(30))
//!     .build()?;
//! let req = SendSmsRequest::new("+15550001111", "+15550002222")
//!     .text("Your table is ready")
//!     .metadata("ticket", "T-1")   // string
//!     .metadata("party_size", 4)   // integer (i64)
//!     .metadata("vip", true)       // boolean
//!     .idempotency_key("table-42-ready");
//! let res = client.send_sms("assistant-id", &req)?;
//! println!("conversation {:?} after {} attempt(s)", res.conversation_id, res.attempts);
//! # Ok::<(), telnyx_assistant_sms::Error>(())
//! ```
//!
//! Or one call configured from the environment (`TELNYX_API_KEY`, optionally
//! `TELNYX_BASE_URL`): [`send_sms`]. The [repository's README][readme] also covers the
//! `telnyx-sms` command-line tool (the `cli` feature), the test suite and the measured
//! performance.
//!
//! [readme]: https://github.com/telnyx-assistant-sms/telnyx-assistant-sms#readme
//!
//! # Configuration
//!
//! | [`ClientBuilder`] option | environment variable | default |
//! |---|---|---|
//! | [`api_key`](ClientBuilder::api_key) | `TELNYX_API_KEY` | none: required |
//! | [`base_url`](ClientBuilder::base_url) | `TELNYX_BASE_URL` | `https://api.telnyx.com/v2` |
//! | [`timeout`](ClientBuilder::timeout): one whole attempt, connect to last byte (at most 24 h) | | 60 s |
//! | [`connect_timeout`](ClientBuilder::connect_timeout): TCP + proxy + TLS handshake (at most 24 h) | | 5 s |
//! | [`max_retries`](ClientBuilder::max_retries) (`0` disables) | | 2 |
//! | [`auto_idempotency_key`](ClientBuilder::auto_idempotency_key) | | `true` |
//! | [`retry_in_doubt`](ClientBuilder::retry_in_doubt) | | `false` |
//! | [`retry_ambiguous`](ClientBuilder::retry_ambiguous) | | `false` |
//! | [`proxy`](ClientBuilder::proxy) / [`no_proxy`](ClientBuilder::no_proxy) | `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY` | from the environment |
//! | [`root_certificates_pem`](ClientBuilder::root_certificates_pem) | `SSL_CERT_FILE`, `SSL_CERT_DIR` | Mozilla's roots, compiled in |
//! | `platform_roots()` (feature `platform-verifier`) | | off |
//! | [`defer_trust`](ClientBuilder::defer_trust): read the certificates at the first send | | `false` (at `build`) |
//! | [`retry_backoff`](ClientBuilder::retry_backoff) | | 0.5 s doubling to 8 s |
//!
//! `TELNYX_API_KEY` and `TELNYX_BASE_URL` are read only by [`Client::from_env`],
//! [`ClientBuilder::from_env`] and [`send_sms`]. Every builder, [`Client::new`] and
//! [`Client::builder`] included, reads the proxy variables (as curl does) and `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` (as OpenSSL does) for an `https` base URL, unless
//! [`no_proxy`](ClientBuilder::no_proxy) / [`proxy`](ClientBuilder::proxy) or
//! [`root_certificates_pem`](ClientBuilder::root_certificates_pem) override them.
//!
//! The base URL must be `https`, or `http` to a loopback host, so the key never travels in
//! clear text to another machine, and it must carry the version path (`/v2`) unless its host
//! is loopback (see [`base_url`](ClientBuilder::base_url)). The API key must pass
//! [`check_api_key`] (not empty, no `Bearer ` prefix, no `=` as in a `.env` line, no
//! whitespace), which a program that reads keys from its own source can call itself, as it
//! can [`check_base_url`]. Response bodies are read up to 1 MiB ([`MAX_BODY_BYTES`]);
//! redirects are not followed.
//!
//! # Validation
//!
//! Checked on every send (and by [`SendSmsRequest::validate`]), all at once, before anything
//! is sent; each [`Violation`] names its field the way the server's 422 does:
//!
//! | field | rule | code |
//! |---|---|---|
//! | `path.assistant_id` | not blank; at most 256 bytes; not `.` or `..` | `blank`, `too_long`, `dot_segment` |
//! | `body.from`, `body.to` | present (left out of the JSON a request was read from: `missing`), not empty or blank, no control characters | `missing`, `blank`, `control_character` |
//! | `body.text` | when set, not blank | `blank` |
//! | `body.conversation_metadata.KEY` | key not empty; values only string, integer or boolean ([`MetadataValue`]) | `blank` |
//! | `header.Idempotency-Key` | when set, 1–255 characters of `A-Z a-z 0-9 _ - :` | `invalid_idempotency_key` |
//!
//! # Errors
//!
//! [`Error::kind`] says what to do: [`Config`](ErrorKind::Config) and
//! [`Validation`](ErrorKind::Validation) (fix it; nothing was sent), [`Api`](ErrorKind::Api)
//! (the server answered with an error status: [`Error::status`], [`Error::api_errors`],
//! [`Error::violations`], [`Error::request_id`]), [`Transport`](ErrorKind::Transport) (no
//! usable answer) and [`Decode`](ErrorKind::Decode) (a 2xx whose body could not be read: the
//! SMS is on its way). `Display` is one line; a server's text in it is escaped and cut, so the
//! line stays under 1,000 characters. [`Printable`] does that, for your own output too.
//!
//! [`Error::may_have_been_sent`] is `false` only when it is proven: every attempt either
//! never reached the server (no connection, or a failure before a byte of the request was
//! written) or was refused before the server acted (a `4xx` other than `409`, or a `503` that
//! asks for a wait). Anything after the request was written is "may have been sent", a bare
//! `503` included.
//!
//! # Retries
//!
//! Telnyx honours `Idempotency-Key` only on endpoints whose reference declares it (this one's
//! does not), and replays only *successful* answers. So by default the crate retries only
//! what provably was not performed, and nothing that may have been:
//!
//! | failure | may have been sent | default | [`retry_in_doubt`](ClientBuilder::retry_in_doubt) | [`retry_ambiguous`](ClientBuilder::retry_ambiguous) |
//! |---|---|---|---|---|
//! | before a byte of the request was written; `408`, `429`, a `503` with a wait | no | retried | retried | retried |
//! | no (readable) answer after it was written; `502`, `504`, a bare `503`, `409` | yes | not retried | retried under the same key | retried |
//! | `500` and other `5xx` | yes | not retried | not retried | retried |
//! | certificate failures, a port that does not speak TLS, other `4xx` | no | never | never | never |
//! | `3xx`, a `2xx` whose body cannot be read | yes | never | never | never |
//!
//! Every send carries an `Idempotency-Key` (yours, or 128 random bits from the operating
//! system, as 32 lowercase hex digits), the same on each retry. `retry_in_doubt` is safe against a server that honours
//! keys as documented; against one that ignores them each such retry may text the person
//! again, as every retry under `retry_ambiguous` may. Waits: backoff from 0.5 s doubling to
//! 8 s with jitter, or the server's `retry-after-ms` / `Retry-After` up to 60 s (a longer one
//! ends the send at once, with [`Error::retry_after`] set).
//!
//! Behind a TLS-inspecting corporate proxy, trust its certificate authority: export
//! `SSL_CERT_FILE=/path/to/corporate-root.pem`, or pass the PEM to
//! [`root_certificates_pem`](ClientBuilder::root_certificates_pem).
//!
//! # Bulk sends
//!
//! [`Client::send_batch`] sends many requests from a few worker threads, with an optional
//! smooth rate limit and a pause shared by all workers when the server asks for one. With a
//! [journal](BatchOptions::journal), a durable record of what was started and how it ended,
//! running the same batch again after a crash sends nothing that was sent or may have been,
//! whatever the server does with keys. See [`BatchOptions`]. [`Client::plan_batch`] checks a
//! whole input first, without sending: what a run would do with each request (send it,
//! report it as a duplicate of which, refuse it and why).
//!
//! # Diagnostics
//!
//! The crate logs through the [`log`](https://docs.rs/log) facade, target
//! `telnyx_assistant_sms`: a `debug` record per attempt, an `info` record per retry (the
//! reason, the wait and where the wait came from), a `warn` record when it gives up. Records
//! carry fields (`attempt`, `wait_ms`, `request_id`, ...) and never the key, the message
//! text, the phone numbers or metadata values. With no logger installed they cost a level
//! check. `tracing` users bridge them with `tracing-log`. (Do not enable `trace` for
//! `ureq_proto`: that crate dumps raw request bytes at that level, the key included.)
//!
//! # Crate features
//!
//! - `rustls` (default): HTTPS through rustls (ring) with Mozilla's roots compiled in.
//!   Without it only `http` to a loopback host works.
//! - `platform-verifier`: [`ClientBuilder`]'s `platform_roots()`, verifying with the operating
//!   system's trust store.
//! - `cli`: the `telnyx-sms` command-line tool (including `send-batch`).
//!
//! # Minimum supported Rust version
//!
//! Rust 1.89 (the batch journal locks its file with std's `File::try_lock`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod agent;
mod api_error;
mod api_key;
mod batch;
mod builder;
mod classify;
mod client;
mod config;
mod error;
mod glue;
mod http_date;
mod keys;
#[cfg(feature = "rustls")]
mod pem;
mod policy;
mod proxy;
mod request;
mod response;
mod send;
mod text;
mod trust;
mod url;
mod violation;
mod wait;

use std::sync::OnceLock;

/// The README's examples are compiled and run as doctests too, so it cannot drift from the
/// crate. (The crate's own docs, above, are what docs.rs shows.)
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use api_error::ApiErrorEntry;
pub use api_key::check_api_key;
pub use batch::{
    BatchCheck, BatchOptions, BatchOutcome, BatchPlan, BatchResult, BatchSummary, MAX_CONCURRENCY,
};
pub use builder::ClientBuilder;
pub use client::{Client, MAX_ASSISTANT_ID_BYTES, PreparedSend};
pub use config::{API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL};
pub use error::{Error, ErrorKind};
pub use request::{InvalidMetadataValue, MetadataValue, SendSmsRequest};
pub use response::SendSmsResponse;
pub use send::MAX_BODY_BYTES;
/// The `serde_json` this crate's API uses ([`ApiErrorEntry::meta`], [`Error::body_json`],
/// `MetadataValue`'s conversions), re-exported so you need not match its version by hand.
pub use serde_json;
pub use text::Printable;
pub use url::check_base_url;
pub use violation::Violation;

// A client keeps an idle connection for every worker of the largest batch.
const _: () = assert!(MAX_CONCURRENCY <= agent::POOL_SIZE);

/// Sends one SMS with a process-wide client configured from the environment
/// (`TELNYX_API_KEY`, and `TELNYX_BASE_URL` if set).
///
/// The client is built by the first call that finds a usable environment, whether or not
/// that call's send then succeeds, and every later call reuses it, so repeated calls share
/// one connection pool. The environment is therefore read once: changes to it after that
/// first build are not seen (build a [`Client`] yourself to control that). A call that finds
/// the environment unusable returns the error and builds nothing, so a later call, after the
/// environment is fixed, can still succeed.
///
/// ```no_run
/// use telnyx_assistant_sms::{send_sms, SendSmsRequest};
///
/// let res = send_sms("assistant-id", &SendSmsRequest::new("+15550001111", "+15550002222").text("Hi"))?;
/// println!("conversation {}", res.conversation_id.as_deref().unwrap_or("-"));
/// # Ok::<(), telnyx_assistant_sms::Error>(())
/// ```
///
/// # Errors
///
/// A [`Config`](ErrorKind::Config) error when the environment gives no usable key or base
/// URL; otherwise as [`Client::send_sms`].
pub fn send_sms(assistant_id: &str, request: &SendSmsRequest) -> Result<SendSmsResponse, Error> {
    static GLOBAL: OnceLock<Client> = OnceLock::new();
    let client = match GLOBAL.get() {
        Some(c) => c,
        None => {
            let built = Client::from_env()?;
            // Two threads may race to build; one wins and both use the winner.
            GLOBAL.get_or_init(|| built)
        }
    };
    client.send_sms(assistant_id, request)
}

/// Internals exposed for this crate's own benchmarks only. Not part of the API: it may change
/// or disappear in any release.
#[doc(hidden)]
pub mod __bench {
    use crate::{ApiErrorEntry, Violation};

    /// Parses an error body the way a failed send does: the Telnyx envelope and the 422
    /// `detail` shape.
    pub fn parse_error_body(body: &str) -> (Vec<ApiErrorEntry>, Vec<Violation>) {
        let p = crate::api_error::parse_error_body(body);
        (p.api_errors, p.violations)
    }

    /// Parses a 2xx body the way a send does, into its conversation id.
    pub fn parse_success_body(body: &str) -> Option<Option<String>> {
        serde_json::from_str::<crate::response::SuccessBody>(body)
            .ok()
            .map(|b| b.conversation_id)
    }
}

#[cfg(test)]
mod assertions {
    use super::*;

    const fn send_sync_clone<T: Send + Sync + Clone>() {}
    const fn send_sync_static<T: Send + Sync + 'static + std::error::Error>() {}
    const _: () = send_sync_clone::<Client>();
    const _: () = send_sync_clone::<ClientBuilder>();
    const _: () = send_sync_clone::<SendSmsRequest>();
    const _: () = send_sync_static::<Error>();
    const _: () = send_sync_clone::<Error>();

    #[test]
    fn error_is_one_pointer_wide() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
        assert_eq!(
            std::mem::size_of::<Result<(), Error>>(),
            std::mem::size_of::<usize>()
        );
    }
}
