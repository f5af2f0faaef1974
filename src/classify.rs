//! What a failed attempt means, and our words for it: an error answer (its status, through
//! `policy.rs`, and what the server said), or a transport failure (the phase it happened in
//! and ureq's error), in; its class (may the SMS have been sent? could a retry help?) and one
//! line a user can act on, out. TLS failures are worded here too. Whether a class is retried
//! is `policy.rs`'s decision.

use ureq::http::StatusCode;

use crate::api_error::{ParsedErrorBody, summarize};
use crate::policy::{self, Class};

/// What one failed attempt tells: its class (whether it may have delivered the SMS, and so
/// whether it may be retried) and what happened, in our own words (one line, safe to print).
#[derive(Debug)]
pub(crate) struct Verdict {
    pub(crate) class: Class,
    pub(crate) what: String,
}

/// Classifies an error answer (`has_wait`: it asked for a wait; `should_retry`: its
/// `x-should-retry`) and words it: `http 422 unprocessable entity: body.to: field required`.
pub(crate) fn classify_answer(
    status: StatusCode,
    has_wait: bool,
    should_retry: Option<bool>,
    parsed: &ParsedErrorBody,
) -> Verdict {
    let code = status.as_u16();
    let mut what = format!(
        "http {code} {}",
        status.canonical_reason().unwrap_or("").to_ascii_lowercase()
    );
    let what_len = what.trim_end().len();
    what.truncate(what_len);
    if let Some(summary) = summarize(parsed) {
        what.push_str(": ");
        what.push_str(&summary);
    }
    Verdict {
        class: policy::classify_status(code, has_wait, should_retry),
        what,
    }
}

/// When in an attempt a transport failure happened. This, not the error's type, decides
/// whether the SMS may have been sent.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Phase<'a> {
    /// While a connection was being opened (TCP, proxy, TLS handshake), to `host:port`.
    Opening(&'a str),
    /// After any connection was ready, before a byte of the request was written.
    BeforeWrite,
    /// While (some of) the request was being written, before the answer was awaited.
    Writing,
    /// After the request was written, waiting for or reading the answer.
    AfterWrite,
}

/// Names for messages: where the client sends, and through which proxy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ends<'a> {
    /// `host:port` of the API.
    pub(crate) target: &'a str,
    /// `host:port` of the proxy, if one is used.
    pub(crate) proxy: Option<&'a str>,
}

fn host_of(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// Classifies a transport failure from ureq by the phase it happened in.
pub(crate) fn classify_transport(err: &ureq::Error, phase: Phase<'_>, ends: Ends<'_>) -> Verdict {
    match phase {
        Phase::Opening(at) => opening(err, at, ends),
        Phase::BeforeWrite => before_write(err, ends),
        Phase::Writing | Phase::AfterWrite => Verdict {
            class: Class::InDoubt,
            what: match (phase, err) {
                // The phase says more than ureq's error: a whole-attempt timeout, or a closed
                // connection, while the request was still going out.
                (Phase::Writing, ureq::Error::Timeout(_)) => {
                    "timed out while sending the request".to_owned()
                }
                (Phase::Writing, ureq::Error::Io(_)) if tls_problem(err).is_none() => {
                    "the connection failed while the request was being sent".to_owned()
                }
                _ => after_write(err).to_owned(),
            },
        },
    }
}

fn opening(err: &ureq::Error, at: &str, ends: Ends<'_>) -> Verdict {
    use std::io::ErrorKind as K;
    let safe = |what: String| Verdict {
        class: Class::NotSent,
        what,
    };
    if let Some(tls) = tls_problem(err) {
        return Verdict {
            class: if tls.deterministic {
                Class::Rejected
            } else {
                Class::NotSent
            },
            what: format!("the tls handshake with {at} failed: {}", tls.words),
        };
    }
    // Through a proxy every TCP connection goes to the proxy, and only it is looked up.
    let (name, at) = match ends.proxy {
        Some(proxy) if at == proxy || crate::glue::is_dns_failure(err) => ("the proxy ", proxy),
        _ => ("", at),
    };
    if crate::glue::is_dns_failure(err) {
        let how = match err {
            ureq::Error::Timeout(_) => "timed out",
            ureq::Error::HostNotFound => "found no usable address",
            _ => "failed",
        };
        return safe(format!("the dns lookup of {name}{} {how}", host_of(at)));
    }
    let why = match err {
        ureq::Error::ConnectProxyFailed(reason) => {
            let proxy = ends.proxy.unwrap_or("in use");
            // Asking again cannot help.
            if crate::glue::proxy_wants_credentials(reason) {
                return Verdict {
                    class: Class::Rejected,
                    what: format!(
                        "the proxy {proxy} wants credentials (407) to open a tunnel to {}: give \
                         them in the proxy url, http://user:password@host:port",
                        ends.target
                    ),
                };
            }
            let reason = crate::text::Clean(reason, 120);
            return safe(format!(
                "the proxy {proxy} would not open a tunnel to {}: {reason}",
                ends.target
            ));
        }
        ureq::Error::Io(e) => match e.kind() {
            K::ConnectionRefused => "the connection was refused",
            K::HostUnreachable | K::NetworkUnreachable | K::NetworkDown | K::AddrNotAvailable => {
                "it is unreachable"
            }
            K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                "the connection closed while it was being opened"
            }
            K::TimedOut | K::WouldBlock => "connecting timed out",
            _ => "the connection could not be opened",
        },
        ureq::Error::Timeout(_) => "connecting timed out",
        _ => "the connection could not be opened",
    };
    match ends.proxy {
        _ if !name.is_empty() => safe(format!("could not reach the proxy {at}: {why}")),
        // The proxy was reached, but the tunnel through it to the API was not opened (the
        // proxy's answer, or the API's end of the tunnel, failed): name both.
        Some(proxy) => safe(format!(
            "could not connect to {at} through the proxy {proxy}: {why}"
        )),
        None => safe(format!("could not connect to {at}: {why}")),
    }
}

fn before_write(err: &ureq::Error, ends: Ends<'_>) -> Verdict {
    let (class, what) = if crate::glue::is_dns_failure(err) {
        let host = host_of(ends.proxy.unwrap_or(ends.target));
        (Class::NotSent, format!("the dns lookup of {host} failed"))
    } else {
        match err {
            ureq::Error::Timeout(_) => (
                Class::NotSent,
                "the attempt timed out before the request was sent".to_owned(),
            ),
            ureq::Error::Io(_) => (
                Class::NotSent,
                "the connection failed before the request was sent".to_owned(),
            ),
            _ => (Class::Rejected, "the request could not be made".to_owned()),
        }
    };
    Verdict { class, what }
}

fn after_write(err: &ureq::Error) -> &'static str {
    use std::io::ErrorKind as K;
    use ureq::{Error as E, Timeout as T};
    if tls_problem(err).is_some() {
        return "the tls connection failed after the request was sent";
    }
    match err {
        E::Timeout(T::SendRequest | T::SendBody | T::PerWrite) => {
            "timed out while sending the request"
        }
        E::Timeout(_) => "timed out waiting for the answer",
        E::LargeResponseHeader(..) => "the answer's headers were too large",
        E::Protocol(_) => "the server's answer was not valid http",
        E::BodyExceedsLimit(_) => "the answer was too large",
        E::Io(e) => match e.kind() {
            K::UnexpectedEof => "the connection closed before a complete answer",
            K::ConnectionReset | K::ConnectionAborted => {
                "the connection was reset before a complete answer"
            }
            K::BrokenPipe => "the connection closed while the request was being sent",
            K::TimedOut | K::WouldBlock => "timed out waiting for the answer",
            _ => "the connection failed after the request was sent",
        },
        _ => "the connection failed after the request was sent",
    }
}

/// A TLS failure, read out of a ureq error.
pub(crate) struct TlsProblem {
    /// Our words for it: "the server's certificate has expired".
    pub(crate) words: String,
    /// Trying again cannot help: the certificate or the server's TLS configuration is the
    /// problem, not the network.
    pub(crate) deterministic: bool,
}

/// What TLS went wrong in `err`, if it is a TLS failure: rustls reports its errors inside an
/// `InvalidData` I/O error, or (building a connection) as ureq's own TLS variants.
pub(crate) fn tls_problem(err: &ureq::Error) -> Option<TlsProblem> {
    match err {
        ureq::Error::Io(e) => {
            let inner = e.get_ref()?;
            #[cfg(feature = "rustls")]
            if let Some(r) = inner.downcast_ref::<rustls::Error>() {
                return Some(from_rustls(r));
            }
            let _ = inner;
            None
        }
        #[cfg(feature = "rustls")]
        ureq::Error::Rustls(r) => Some(from_rustls(r)),
        ureq::Error::Tls(what) => Some(TlsProblem {
            words: crate::text::clean(what, 100).to_lowercase(),
            deterministic: true,
        }),
        ureq::Error::TlsRequired => Some(TlsProblem {
            words: "the connection could not be secured".to_owned(),
            deterministic: true,
        }),
        _ => None,
    }
}

#[cfg(feature = "rustls")]
fn from_rustls(e: &rustls::Error) -> TlsProblem {
    use rustls::{CertificateError as C, Error as R};
    let fixed = |words: &str| TlsProblem {
        words: words.to_owned(),
        deterministic: true,
    };
    match e {
        R::InvalidCertificate(c) => match c {
            C::UnknownIssuer => fixed(
                "the server's certificate is not trusted (unknown issuer); if a proxy or a \
                 local server uses its own certificate authority, trust it with SSL_CERT_FILE \
                 or ClientBuilder::root_certificates_pem",
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                fixed("the server's certificate is not valid for this host name")
            }
            C::Expired | C::ExpiredContext { .. } => fixed("the server's certificate has expired"),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                fixed("the server's certificate is not valid yet (is this machine's clock right?)")
            }
            C::Revoked => fixed("the server's certificate has been revoked"),
            C::BadSignature
            | C::UnsupportedSignatureAlgorithmContext { .. }
            | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                fixed("the server's certificate has a bad or unsupported signature")
            }
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                fixed("the server's certificate is not meant for a tls server")
            }
            c if crate::glue::is_ca_used_as_end_entity(c) => fixed(
                "the server presents a CA certificate as its own, which rustls refuses (make the \
                 server's certificate with basicConstraints CA:FALSE, signed by that CA, and \
                 trust the CA)",
            ),
            other => fixed(&format!(
                "the server's certificate is invalid ({})",
                crate::text::clean(&format!("{other:?}"), 120)
            )),
        },
        // The first bytes back were no TLS record at all: an HTTP answer ("HTTP/1.1 400") to
        // the ClientHello, most likely. The port speaks another protocol, and asking again
        // cannot change that.
        R::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
            | rustls::InvalidMessage::UnknownProtocolVersion,
        ) => fixed(
            "the server did not answer in tls (is this a plain-http port? the base url is https)",
        ),
        R::NoCertificatesPresented => fixed("the server presented no certificate"),
        R::AlertReceived(alert) => fixed(&format!(
            "the server refused the handshake ({})",
            crate::text::clean(&format!("{alert:?}"), 40).to_lowercase()
        )),
        R::PeerIncompatible(_) => {
            fixed("the server and this client share no tls version or cipher suite")
        }
        _ => TlsProblem {
            words: "the server's tls messages were not valid".to_owned(),
            deterministic: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDS: Ends<'static> = Ends {
        target: "api.telnyx.com:443",
        proxy: None,
    };
    const VIA_PROXY: Ends<'static> = Ends {
        target: "api.telnyx.com:443",
        proxy: Some("127.0.0.1:3128"),
    };

    fn io(kind: std::io::ErrorKind, msg: &str) -> ureq::Error {
        ureq::Error::Io(std::io::Error::new(kind, msg.to_owned()))
    }

    #[test]
    fn after_the_request_was_written_everything_may_have_been_sent() {
        use std::io::ErrorKind as K;
        let cases = [
            io(K::UnexpectedEof, "Peer disconnected"),
            io(K::ConnectionReset, "reset"),
            io(K::BrokenPipe, "pipe"),
            // An InvalidData after the handshake is a broken TLS record, not a handshake.
            io(K::InvalidData, "received corrupt message"),
            io(K::ConnectionRefused, "cannot happen here, but still"),
            ureq::Error::Timeout(ureq::Timeout::Global),
            ureq::Error::Timeout(ureq::Timeout::RecvResponse),
            ureq::Error::LargeResponseHeader(70_000, 65_536),
            ureq::Error::BadUri("x".into()),
        ];
        for err in cases {
            let v = classify_transport(&err, Phase::AfterWrite, ENDS);
            assert_eq!(v.class, Class::InDoubt, "{err:?}");
        }
        let v = classify_transport(
            &ureq::Error::LargeResponseHeader(70_000, 65_536),
            Phase::AfterWrite,
            ENDS,
        );
        assert_eq!(v.what, "the answer's headers were too large");
    }

    #[test]
    fn opening_failures_were_not_sent_and_name_the_other_end() {
        use std::io::ErrorKind as K;
        let refused = io(K::ConnectionRefused, "refused");
        let v = classify_transport(&refused, Phase::Opening("api.telnyx.com:443"), ENDS);
        assert_eq!(v.class, Class::NotSent);
        assert_eq!(
            v.what,
            "could not connect to api.telnyx.com:443: the connection was refused"
        );
        let v = classify_transport(&refused, Phase::Opening("127.0.0.1:3128"), VIA_PROXY);
        assert_eq!(v.class, Class::NotSent);
        assert_eq!(
            v.what,
            "could not reach the proxy 127.0.0.1:3128: the connection was refused"
        );
        let dns = io(
            K::Other,
            "failed to lookup address information: Temporary failure in name resolution",
        );
        let v = classify_transport(&dns, Phase::Opening("api.telnyx.com:443"), ENDS);
        assert_eq!(v.what, "the dns lookup of api.telnyx.com failed");
        let v = classify_transport(&dns, Phase::Opening("api.telnyx.com:443"), VIA_PROXY);
        assert_eq!(v.what, "the dns lookup of the proxy 127.0.0.1 failed");
        let tunnel = ureq::Error::ConnectProxyFailed("proxy server responded 403/403\n".into());
        let v = classify_transport(&tunnel, Phase::Opening("api.telnyx.com:443"), VIA_PROXY);
        assert_eq!(v.class, Class::NotSent);
        assert_eq!(
            v.what,
            "the proxy 127.0.0.1:3128 would not open a tunnel to api.telnyx.com:443: \
             proxy server responded 403/403\\n"
        );
        let auth = ureq::Error::ConnectProxyFailed("proxy server responded 407/407".into());
        let v = classify_transport(&auth, Phase::Opening("api.telnyx.com:443"), VIA_PROXY);
        assert_eq!(v.class, Class::Rejected);
        assert!(v.what.contains("wants credentials (407)"), "{}", v.what);
        // The proxy reached, the tunnel not opened: both ends are named.
        let eof = io(K::UnexpectedEof, "eof");
        let v = classify_transport(&eof, Phase::Opening("api.telnyx.com:443"), VIA_PROXY);
        assert_eq!(
            v.what,
            "could not connect to api.telnyx.com:443 through the proxy 127.0.0.1:3128: \
             the connection closed while it was being opened"
        );
        for err in [
            io(K::UnexpectedEof, "eof during handshake"),
            io(K::ConnectionReset, "reset"),
            ureq::Error::Timeout(ureq::Timeout::Connect),
            ureq::Error::Timeout(ureq::Timeout::Global),
            ureq::Error::HostNotFound,
            ureq::Error::ConnectionFailed,
        ] {
            let v = classify_transport(&err, Phase::Opening("api.telnyx.com:443"), ENDS);
            assert_eq!(v.class, Class::NotSent, "{err:?}");
        }
    }

    #[test]
    fn before_the_request_was_written_nothing_was_sent() {
        let dns = ureq::Error::Timeout(ureq::Timeout::Resolve);
        let v = classify_transport(&dns, Phase::BeforeWrite, ENDS);
        assert_eq!(v.class, Class::NotSent);
        assert_eq!(v.what, "the dns lookup of api.telnyx.com failed");
        let v = classify_transport(&ureq::Error::BadUri("x".into()), Phase::BeforeWrite, ENDS);
        assert_eq!(v.class, Class::Rejected);
    }
}
