#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod api_key;
mod builder;
mod client;
mod error;
mod proxy;
mod request;
mod resolver;
mod response;
mod retry;
mod text;
mod tls;
mod transport;
mod url;

use std::sync::OnceLock;

pub use builder::ClientBuilder;
pub use client::{
    API_KEY_ENV, BASE_URL_ENV, Client, DEFAULT_BASE_URL, MAX_ASSISTANT_ID_BYTES, MAX_BODY_BYTES,
    PreparedSend,
};
pub use error::{ApiErrorEntry, Error, ErrorKind, Violation};
pub use request::{InvalidMetadataValue, MetadataValue, SendSmsRequest};
pub use response::SendSmsResponse;
/// The `serde_json` this crate's API uses ([`ApiErrorEntry::meta`], [`Error::body_json`],
/// `MetadataValue`'s conversions), re-exported so you need not match its version by hand.
pub use serde_json;

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
        let p = crate::response::parse_error_body(body);
        (p.api_errors, p.violations)
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

    #[test]
    fn error_is_one_pointer_wide() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
        assert_eq!(
            std::mem::size_of::<Result<(), Error>>(),
            std::mem::size_of::<usize>()
        );
    }
}
