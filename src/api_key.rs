//! The API key, in a type that cannot leak it by accident.

use std::fmt;

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
        let k = &self.0;
        if k.is_empty() {
            Some("is empty")
        } else if k.len() > 7 && k.as_bytes()[..7].eq_ignore_ascii_case(b"bearer ") {
            Some("starts with `Bearer `: give the key alone (the client adds `Bearer`)")
        } else if k.chars().any(char::is_whitespace) {
            Some("contains whitespace (a stray space or newline from a file or a paste?)")
        } else if k.chars().any(|c| c.is_control() || !c.is_ascii()) {
            Some("contains characters that cannot be sent in an HTTP header")
        } else {
            None
        }
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
