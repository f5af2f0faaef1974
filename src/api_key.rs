//! The API key, in a type that cannot leak it by accident, and the checks every key passes.

use std::fmt;

use crate::error::Error;

/// A Telnyx API key. Its `Debug` prints `[REDACTED]` and it has no `Display`, so no log line,
/// error message or dry-run output can contain it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ApiKey(String);

impl ApiKey {
    pub(crate) fn new(key: String) -> Self {
        ApiKey(key)
    }

    /// Why this key cannot be used, in words that do not quote it.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        key_problem(&self.0)
    }

    /// The `Authorization` header value, marked sensitive so that `http`'s own `Debug` hides it.
    pub(crate) fn bearer(&self) -> ureq::http::HeaderValue {
        let mut v = ureq::http::HeaderValue::try_from(format!("Bearer {}", self.0))
            .expect("checked by ApiKey::problem");
        v.set_sensitive(true);
        v
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Why `k` cannot be an API key, in words that follow "the api key" and never quote it.
fn key_problem(k: &str) -> Option<&'static str> {
    if k.is_empty() {
        Some("is empty")
    } else if k.len() > 7 && k.as_bytes()[..7].eq_ignore_ascii_case(b"bearer ") {
        Some("starts with `Bearer `: give the key alone (the client adds `Bearer`)")
    } else if k.contains('=') {
        // Telnyx keys hold no `=`; a `.env` line (`TELNYX_API_KEY=KEY...`) does.
        Some(
            "contains `=`: it looks like a `.env` line (NAME=KEY) rather than a key; give the \
             key alone, the part after the `=`",
        )
    } else if k.chars().any(char::is_whitespace) {
        Some("contains whitespace (a stray space or newline from a file or a paste?)")
    } else if k.chars().any(|c| c.is_control() || !c.is_ascii()) {
        Some("contains characters that cannot be sent in an HTTP header")
    } else {
        None
    }
}

/// Checks an API key the way [`ClientBuilder::build`](crate::ClientBuilder::build) does,
/// without building anything: for a program that reads a key from its own source (a file, a
/// prompt) and wants to report a bad one there.
///
/// The rules: not empty; no `Bearer ` prefix (the client adds it); no `=` (a `.env` line such
/// as `TELNYX_API_KEY=KEY...` is not a key); no whitespace; only ASCII characters that can be
/// sent in an HTTP header. Nothing else is assumed about a key's form. The message never
/// quotes the key.
///
/// ```
/// use telnyx_assistant_sms::{ErrorKind, check_api_key};
///
/// assert!(check_api_key("KEY0123456789").is_ok());
/// let err = check_api_key("TELNYX_API_KEY=KEY0123456789").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Config);
/// assert!(err.to_string().contains("it looks like a `.env` line"));
/// assert!(!err.to_string().contains("KEY0123456789"));
/// ```
///
/// # Errors
///
/// A [`Config`](crate::ErrorKind::Config) error saying what is wrong with the key.
pub fn check_api_key(key: &str) -> Result<(), Error> {
    match key_problem(key) {
        Some(problem) => Err(Error::config(format!("the api key {problem}"))),
        None => Ok(()),
    }
}
