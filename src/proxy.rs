//! Which proxy, if any: explicit, none, or the environment read the way curl reads it.

use std::fmt;

use ureq::http::Uri;

use crate::error::Error;
use crate::url::{ProxyUrl, is_loopback, redact_userinfo};

#[derive(Clone)]
pub(crate) enum ProxyChoice {
    FromEnv,
    None,
    Url(String),
}

impl fmt::Debug for ProxyChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyChoice::FromEnv => f.write_str("FromEnv"),
            ProxyChoice::None => f.write_str("None"),
            ProxyChoice::Url(u) => f.debug_tuple("Url").field(&redact_userinfo(u)).finish(),
        }
    }
}

pub(crate) struct ChosenProxy {
    pub(crate) proxy: ureq::Proxy,
    /// The URL without credentials, for `Debug`.
    pub(crate) shown: String,
    /// `host:port`, for messages.
    pub(crate) authority: String,
}

/// Decides the proxy for a client whose every request goes to `target`. Since the client
/// talks to one host only, `NO_PROXY` can be settled once, here.
///
/// An `http` target is always loopback (the base URL check guarantees it) and its requests
/// carry the key in clear text, so it never goes through a proxy from the environment, and an
/// explicit proxy for it must be on loopback too.
pub(crate) fn resolve_proxy(
    choice: &ProxyChoice,
    target: &Uri,
) -> Result<Option<ChosenProxy>, Error> {
    let clear_text = target.scheme_str() != Some("https");
    let (url, name) = match choice {
        ProxyChoice::None => return Ok(None),
        ProxyChoice::FromEnv if clear_text => return Ok(None),
        ProxyChoice::Url(u) => (u.trim().to_owned(), "proxy url".to_owned()),
        ProxyChoice::FromEnv => {
            // curl: the scheme's own variable first, then ALL_PROXY.
            let names = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];
            let mut found = None;
            for n in names {
                if let Some(v) = env_var(n)?.filter(|v| !v.trim().is_empty()) {
                    found = Some((n, v));
                    break;
                }
            }
            let Some((name, url)) = found else {
                return Ok(None);
            };
            let no_proxy = match env_var("NO_PROXY")? {
                Some(v) => v,
                None => env_var("no_proxy")?.unwrap_or_default(),
            };
            if no_proxy_matches(&no_proxy, target.host().unwrap_or("")) {
                return Ok(None);
            }
            (url.trim().to_owned(), name.to_owned())
        }
    };
    let shown = redact_userinfo(&url);
    let parsed = ProxyUrl::parse(&url)
        .map_err(|why| Error::config(format!("the {name} `{shown}` {why}")))?;
    let shown = parsed.shown();
    let protocol = match parsed.scheme.as_str() {
        "http" => ureq::ProxyProtocol::Http,
        "https" => ureq::ProxyProtocol::Https,
        s if s.starts_with("socks") => {
            return Err(Error::config(format!(
                "the {name} `{shown}` is a socks proxy; only http(s) CONNECT proxies are supported"
            )));
        }
        _ => {
            return Err(Error::config(format!(
                "the {name} `{shown}` has an unknown scheme; use http:// or https://"
            )));
        }
    };
    if clear_text && !is_loopback(&parsed.host) {
        return Err(Error::config(format!(
            "the {name} `{shown}` is not on loopback, and an http base url would send the api key \
             to it in clear text"
        )));
    }
    let mut builder = ureq::Proxy::builder(protocol).host(&parsed.host);
    if let Some(port) = parsed.port {
        builder = builder.port(port);
    }
    if let Some(user) = &parsed.user {
        builder = builder.username(user);
    }
    if let Some(password) = &parsed.password {
        builder = builder.password(password);
    }
    let proxy = builder.build().map_err(|e| {
        Error::config(format!("the {name} `{shown}` is not a valid proxy url")).with_source(e)
    })?;
    Ok(Some(ChosenProxy {
        proxy,
        authority: parsed.authority(),
        shown,
    }))
}

/// A variable's value; one that is set but not unicode is an error (silently ignoring it
/// would connect without the proxy, or through one `NO_PROXY` meant to bypass).
fn env_var(name: &str) -> Result<Option<String>, Error> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Error::config(format!("{name} is not valid unicode")))
        }
    }
}

/// curl's `NO_PROXY` rules: `*` matches every host; otherwise a comma-separated list of host
/// names (matching the name and its subdomains, a leading `.` or `*.` allowed) and IP
/// addresses (matched exactly). Ports are ignored.
pub(crate) fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    list.split(',').map(str::trim).any(|entry| {
        if entry == "*" {
            return true;
        }
        let entry = entry.trim_start_matches("*.").trim_start_matches('.');
        // Drop a port, but not the colons of an IPv6 address.
        let entry = match entry.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => entry,
        };
        let entry = entry
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        !entry.is_empty()
            && (host == entry
                || (host.len() > entry.len()
                    && host.ends_with(&entry)
                    && host.as_bytes()[host.len() - entry.len() - 1] == b'.'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_rules() {
        assert!(no_proxy_matches("*", "api.telnyx.com"));
        assert!(no_proxy_matches(
            "example.org, telnyx.com",
            "api.telnyx.com"
        ));
        assert!(no_proxy_matches(".telnyx.com", "api.telnyx.com"));
        assert!(no_proxy_matches("*.telnyx.com", "api.telnyx.com"));
        assert!(no_proxy_matches("API.TELNYX.COM:443", "api.telnyx.com"));
        assert!(no_proxy_matches("::1", "[::1]"));
        assert!(no_proxy_matches("127.0.0.1", "127.0.0.1"));
        assert!(!no_proxy_matches("nyx.com", "api.telnyx.com"));
        assert!(!no_proxy_matches("", "api.telnyx.com"));
        assert!(!no_proxy_matches("127.0.0.2", "127.0.0.1"));
    }
}
