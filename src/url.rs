//! URL checks shared by the builder and the proxy code: the base URL rules, loopback hosts,
//! proxy URLs (parsed by hand, so that a password with `/` or `@` in it is neither shown nor
//! misread), and `host:port` for messages.

use ureq::http::Uri;

use crate::error::Error;

/// `127.0.0.0/8`, `::1` (bracketed or not) and `localhost`, in any case.
pub(crate) fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `host:port` of a URI, with the scheme's default port when none is given: how messages
/// name the other end of a connection.
pub(crate) fn authority(uri: &Uri) -> String {
    let host = uri.host().unwrap_or("");
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("http") => 80,
        _ => 443,
    });
    format!("{host}:{port}")
}

/// Checks a base URL the way [`ClientBuilder::build`](crate::ClientBuilder::build) does,
/// without building anything: for a program that takes the URL from its own source (a flag, a
/// file) and wants to report a bad one there, naming that source.
///
/// The rules: absolute; `https` (with the `rustls` feature), or `http` to a loopback host
/// (`localhost`, `127.0.0.0/8`, `::1`); no credentials, query or fragment; and a version path
/// (`/v2`) unless the host is loopback. Surrounding whitespace and trailing slashes are
/// ignored.
///
/// ```
/// use telnyx_assistant_sms::{ErrorKind, check_base_url};
///
/// assert!(check_base_url("https://api.telnyx.com/v2").is_ok());
/// assert!(check_base_url("http://127.0.0.1:8080").is_ok());
/// let err = check_base_url("http://api.example.com/v2").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Config);
/// assert!(err.to_string().contains("the base url uses plain http"));
/// ```
///
/// # Errors
///
/// A [`Config`](crate::ErrorKind::Config) error saying what is wrong with the URL.
pub fn check_base_url(url: &str) -> Result<(), Error> {
    parse_base_url(url, "base url").map(drop)
}

/// Checks a base URL (see [`check_base_url`]); returns it without trailing slashes, and
/// parsed. `name` is what the messages call it (`base url`, or the environment variable it
/// came from).
pub(crate) fn parse_base_url(raw: &str, name: &str) -> Result<(String, Uri), Error> {
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
    // The API lives under a version path: to the bare host every call would 404. A loopback
    // stand-in (a mock made from the OpenAPI file, say) may serve it at its root.
    if matches!(uri.path(), "" | "/") && !is_loopback(authority.host()) {
        return Err(bad(&format!(
            "has no version path, so every call would answer 404: use {trimmed}/v2"
        )));
    }
    Ok((trimmed.to_owned(), uri))
}

/// A proxy URL, taken apart: `[scheme://][user[:password]@]host[:port][/]`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ProxyUrl {
    /// Lower case; `http` when the URL has none (as curl assumes).
    pub(crate) scheme: String,
    /// Percent-decoded.
    pub(crate) user: Option<String>,
    /// Percent-decoded.
    pub(crate) password: Option<String>,
    /// As written; an IPv6 address keeps its brackets.
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
}

impl ProxyUrl {
    /// Parses a proxy URL. The credentials end at the **last** `@`, so a password may hold
    /// `/`, `@` or `:` (they should be percent-encoded, but often are not); the host part
    /// ends at the first `/` after that.
    pub(crate) fn parse(raw: &str) -> Result<ProxyUrl, &'static str> {
        let raw = raw.trim();
        // A scheme is letters (then letters, digits, `+ - .`) before the first `://`; a
        // `://` inside the credentials of a URL without a scheme is no scheme.
        let scheme_end = raw.find("://").filter(|&i| {
            let s = &raw[..i];
            s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        });
        let (scheme, rest) = match scheme_end {
            Some(i) => (raw[..i].to_ascii_lowercase(), &raw[i + 3..]),
            None => ("http".to_owned(), raw),
        };
        let (userinfo, hostport) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let hostport = hostport.split(['/', '?', '#']).next().unwrap_or("");
        let (host, port) = split_host_port(hostport)?;
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pass) = match u.split_once(':') {
                    Some((user, pass)) => (user, Some(pass)),
                    None => (u, None),
                };
                (
                    Some(percent_decode(user)?),
                    pass.map(percent_decode).transpose()?,
                )
            }
        };
        Ok(ProxyUrl {
            scheme,
            user,
            password,
            host: host.to_owned(),
            port,
        })
    }

    /// `scheme://host:port`, with `***@` where credentials were: safe to show.
    pub(crate) fn shown(&self) -> String {
        let creds = if self.user.is_some() { "***@" } else { "" };
        match self.port {
            Some(p) => format!("{}://{creds}{}:{p}", self.scheme, self.host),
            None => format!("{}://{creds}{}", self.scheme, self.host),
        }
    }

    /// `host:port` (the scheme's default port when none was given).
    pub(crate) fn authority(&self) -> String {
        let port = self
            .port
            .unwrap_or(if self.scheme == "https" { 443 } else { 80 });
        format!("{}:{port}", self.host)
    }
}

fn split_host_port(s: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']').ok_or("has an unclosed `[` in its host")?;
        let host = &s[..end + 2];
        match &rest[end + 1..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or("has text after `]`")?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err("has no host");
    }
    if host
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'@' || b == b'%')
    {
        return Err("has an invalid host");
    }
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(p.parse::<u16>().map_err(|_| "has an invalid port")?),
    };
    Ok((host, port))
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as written (as curl
/// takes it), so a password like `100%` works unencoded.
fn percent_decode(s: &str) -> Result<String, &'static str> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Exactly two hex digits: `u8::from_str_radix` alone would also take a sign (`%+f`).
        let escaped = match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(&[hi, lo])) => hex_value(hi).zip(hex_value(lo)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "has credentials that are not valid UTF-8")
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// A URL with any credentials replaced by `***`, for messages and `Debug`. Uses the proxy
/// parser's rule (credentials end at the last `@`), so nothing of a password is ever shown;
/// when the URL cannot be parsed, everything up to the last `@` is hidden.
pub(crate) fn redact_userinfo(url: &str) -> String {
    if !url.contains('@') {
        return url.to_owned();
    }
    let at = url.rfind('@').unwrap_or(0);
    match ProxyUrl::parse(url) {
        Ok(p) => {
            let tail = &url[at + 1..];
            let path = tail.find('/').map_or("", |i| &tail[i..]);
            format!("{}{path}", p.shown())
        }
        // Unparseable: everything up to the last `@` goes.
        Err(_) => format!("***{}", &url[at..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "::1",
            "localhost",
            "LOCALHOST",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["10.0.0.1", "example.com", "[::2]", "localhost.example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn proxy_urls_with_awkward_passwords() {
        let p = ProxyUrl::parse("http://user:pa/ss@word@proxy.example:3128/").unwrap();
        assert_eq!(p.user.as_deref(), Some("user"));
        assert_eq!(p.password.as_deref(), Some("pa/ss@word"));
        assert_eq!(p.host, "proxy.example");
        assert_eq!(p.port, Some(3128));
        assert_eq!(p.shown(), "http://***@proxy.example:3128");

        let p = ProxyUrl::parse("HTTPS://u%3Ax:p%2Fw@[::1]:8443").unwrap();
        assert_eq!(p.scheme, "https");
        assert_eq!(p.user.as_deref(), Some("u:x"));
        assert_eq!(p.password.as_deref(), Some("p/w"));
        assert_eq!(p.host, "[::1]");
        assert_eq!(p.authority(), "[::1]:8443");

        let p = ProxyUrl::parse("proxy:3128").unwrap();
        assert_eq!((p.scheme.as_str(), p.port), ("http", Some(3128)));
        assert_eq!(
            ProxyUrl::parse("http://proxy").unwrap().authority(),
            "proxy:80"
        );

        for bad in [
            "http://",
            "http://u:p@",
            "http://h:99999",
            "http://[::1",
            "http://u:%ff@h:1",
        ] {
            assert!(ProxyUrl::parse(bad).is_err(), "{bad}");
        }
        // A `%` that starts no escape is a `%`.
        let p = ProxyUrl::parse("http://user:100%@h:1").unwrap();
        assert_eq!(p.password.as_deref(), Some("100%"));
        let p = ProxyUrl::parse("http://user:a%zzb%4@h:1").unwrap();
        assert_eq!(p.password.as_deref(), Some("a%zzb%4"));
        // A sign is not a hex digit: `%+f` and `%-0` are not escapes.
        let p = ProxyUrl::parse("http://user:a%+fb%-0@h:1").unwrap();
        assert_eq!(p.password.as_deref(), Some("a%+fb%-0"));
        let p = ProxyUrl::parse("http://user:%41%7e%7E@h:1").unwrap();
        assert_eq!(p.password.as_deref(), Some("A~~"));
        // `://` inside the credentials of a URL without a scheme is no scheme.
        let p = ProxyUrl::parse("user:pa://ss@127.0.0.1:1").unwrap();
        assert_eq!(p.scheme, "http");
        assert_eq!(p.password.as_deref(), Some("pa://ss"));
        assert_eq!(p.shown(), "http://***@127.0.0.1:1");
    }

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(
            redact_userinfo("http://u:pw@proxy:3128"),
            "http://***@proxy:3128"
        );
        assert_eq!(
            redact_userinfo("http://u:p/w@proxy:3128/"),
            "http://***@proxy:3128/"
        );
        assert_eq!(redact_userinfo("u:pw@proxy:3128"), "http://***@proxy:3128");
        assert_eq!(
            redact_userinfo("https://u:s3cr/et@api.example/v2"),
            "https://***@api.example/v2"
        );
        assert_eq!(redact_userinfo("http://proxy:3128"), "http://proxy:3128");
        // Unparseable: everything up to the last `@` goes.
        assert_eq!(redact_userinfo("http://a:b/c@"), "***@");
        for url in [
            "http://u:pa/ss@word@h:1",
            "x://u:secret/@h:99999",
            "user:s3cr://et@127.0.0.1:1",
            "u:secret://@h:99999",
        ] {
            let shown = redact_userinfo(url);
            assert!(
                !shown.contains("pa/ss") && !shown.contains("secret") && !shown.contains("s3cr"),
                "{shown}"
            );
        }
    }
}
