//! Integration tests: one binary (linking is the slow part), one module per concern.
//! Every server here listens on 127.0.0.1; nothing talks to the real API.

mod support;

mod config;
mod env;
mod errors;
mod validation;
mod wire;

use std::time::Duration;

use telnyx_assistant_sms::{Client, ClientBuilder};

/// The key every test uses: distinctive, so a leak into any output is easy to spot.
pub const KEY: &str = "KEYsecret0123456789abcdefSECRET";

/// A builder aimed at `base`, with no proxy (a proxy in the environment must not redirect
/// tests) and short waits.
pub fn builder(base: &str) -> ClientBuilder {
    Client::builder()
        .api_key(KEY)
        .base_url(base)
        .no_proxy()
        .timeout(Duration::from_secs(5))
}

/// A client for a mockito server: `{url}/v2`, retries off so counts are exact.
pub fn client(server: &mockito::Server) -> Client {
    builder(&format!("{}/v2", server.url()))
        .max_retries(0)
        .build()
        .unwrap()
}
