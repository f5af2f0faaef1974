//! When a failed attempt may be sent again, how long to wait, and the idempotency keys that
//! make a retry safe.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http_date::parse_http_date;
use crate::keys::random_u64;
use crate::policy::Class;

/// Longest server-requested wait that is slept through; a longer one ends the send at once.
pub(crate) const MAX_SERVER_WAIT: Duration = Duration::from_secs(60);

/// What one failed attempt tells: its class (whether it may have delivered the SMS, and so
/// whether it may be retried) and what happened, in our own words (one line, safe to print).
#[derive(Debug)]
pub(crate) struct Verdict {
    pub(crate) class: Class,
    pub(crate) what: String,
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
                (Phase::Writing, ureq::Error::Io(_)) if crate::tls::problem(err).is_none() => {
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
    if let Some(tls) = crate::tls::problem(err) {
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
    if crate::tls::problem(err).is_some() {
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

/// Where the wait before a retry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitSource {
    /// Our exponential backoff.
    Backoff,
    /// The `Retry-After` header.
    RetryAfter,
    /// The `retry-after-ms` header.
    RetryAfterMs,
}

impl WaitSource {
    /// For log records' `wait_source` field.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WaitSource::Backoff => "backoff",
            WaitSource::RetryAfter => "retry-after",
            WaitSource::RetryAfterMs => "retry-after-ms",
        }
    }

    /// For log messages: "backoff", "asked by the server in Retry-After".
    pub(crate) fn describe(self) -> &'static str {
        match self {
            WaitSource::Backoff => "backoff",
            WaitSource::RetryAfter => "asked by the server in Retry-After",
            WaitSource::RetryAfterMs => "asked by the server in retry-after-ms",
        }
    }
}

/// The wait the server asked for: `retry-after-ms`, then `Retry-After` (delta-seconds,
/// fractional allowed, or an HTTP date). `None` when absent or unreadable.
pub(crate) fn server_wait(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
) -> Option<(Duration, WaitSource)> {
    if let Some(ms) = retry_after_ms.and_then(|v| v.trim().parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            let wait = Duration::from_secs_f64((ms / 1000.0).min(1e9));
            return Some((wait, WaitSource::RetryAfterMs));
        }
    }
    let v = retry_after?.trim();
    let wait = if let Ok(secs) = v.parse::<f64>() {
        (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)))?
    } else {
        let at = parse_http_date(v)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        Duration::from_secs(at.saturating_sub(now))
    };
    Some((wait, WaitSource::RetryAfter))
}

/// Exponential backoff for retry number `retry` (0-based): `start` doubling to at most `max`
/// (0.5 s to 8 s by default), times a jitter factor in (0.75, 1].
pub(crate) fn backoff(retry: u32, start: Duration, max: Duration) -> Duration {
    let base = start
        .saturating_mul(1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX))
        .min(max);
    let jitter = 1.0 - (random_u64() as f64 / u64::MAX as f64) * 0.25;
    base.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BACKOFF_MAX, BACKOFF_START};

    #[test]
    fn server_wait_prefers_ms_and_reads_dates() {
        let wait = |ms, ra| server_wait(ms, ra).map(|w| w.0);
        assert_eq!(
            server_wait(Some("250"), Some("9")),
            Some((Duration::from_millis(250), WaitSource::RetryAfterMs))
        );
        assert_eq!(
            server_wait(None, Some("1.5")),
            Some((Duration::from_millis(1500), WaitSource::RetryAfter))
        );
        assert_eq!(wait(None, Some("0")), Some(Duration::ZERO));
        assert_eq!(wait(None, Some("-3")), None);
        assert_eq!(wait(None, Some("soon")), None);
        // A date in the past means "now".
        assert_eq!(
            wait(None, Some("Sun, 06 Nov 1994 08:49:37 GMT")),
            Some(Duration::ZERO)
        );
        let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
        let wait = wait(None, Some(&format_http_date(in_an_hour))).unwrap();
        assert!(wait > Duration::from_secs(3590) && wait <= Duration::from_secs(3600));
    }

    fn format_http_date(t: SystemTime) -> String {
        // Inverse of parse_http_date, for the test only (civil from days).
        let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        format!(
            "Mon, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
            months[(m - 1) as usize],
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        for (retry, max_ms) in [
            (0, 500),
            (1, 1000),
            (2, 2000),
            (3, 4000),
            (4, 8000),
            (9, 8000),
        ] {
            // In microseconds: whole milliseconds could round down onto the lower bound.
            let d = backoff(retry, BACKOFF_START, BACKOFF_MAX).as_micros() as u64;
            let max = max_ms * 1000;
            assert!(d > max * 3 / 4 && d <= max, "retry {retry}: {d} µs");
        }
        assert!(backoff(u32::MAX, BACKOFF_START, BACKOFF_MAX) <= BACKOFF_MAX);
        let short = backoff(3, Duration::from_millis(10), Duration::from_millis(50));
        assert!(short <= Duration::from_millis(50) && short > Duration::from_millis(37));
    }

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
