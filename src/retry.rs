//! When a failed attempt may be sent again, how long to wait, and the idempotency keys that
//! make a retry safe.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest server-requested wait that is slept through; a longer one ends the send at once.
pub(crate) const MAX_SERVER_WAIT: Duration = Duration::from_secs(60);
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(8);

/// What a failed attempt tells us about the SMS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Cannot have been delivered (no connection, or the server refused before acting):
    /// always safe to retry.
    NotDelivered,
    /// The request went out and no complete answer came back: retried only under an
    /// idempotency key (or when the caller opted in).
    Ambiguous,
    /// Retrying cannot help, or could do harm.
    Final,
}

/// Classifies an HTTP status that is not a success. `x-should-retry` overrides it.
pub(crate) fn classify_status(status: u16, should_retry: Option<bool>) -> Class {
    match should_retry {
        Some(true) => return Class::NotDelivered,
        Some(false) => return Class::Final,
        None => {}
    }
    match status {
        408 | 429 | 503 => Class::NotDelivered,
        409 | 500 | 502 | 504 => Class::Ambiguous,
        _ => Class::Final,
    }
}

/// Whether an answer with this status may have delivered the SMS: the server failed or was
/// busy after it may have acted. A server that says `x-should-retry: true` vouches it did not.
pub(crate) fn status_may_have_sent(status: u16, should_retry: Option<bool>) -> bool {
    should_retry != Some(true) && matches!(status, 409 | 500 | 502 | 504)
}

/// Classifies a transport failure from ureq, with our own words for it. `opening` says the
/// failure happened while the connection was being opened, so the request was not written:
/// whatever it was, it did not deliver the SMS.
pub(crate) fn classify_transport(err: &ureq::Error, opening: bool) -> (Class, &'static str) {
    let (class, what) = classify_ureq(err);
    match class {
        Class::Ambiguous if opening => (Class::NotDelivered, "the connection could not be opened"),
        _ => (class, what),
    }
}

fn classify_ureq(err: &ureq::Error) -> (Class, &'static str) {
    use std::io::ErrorKind as K;
    use ureq::{Error as E, Timeout as T};
    match err {
        E::HostNotFound => (Class::NotDelivered, "the host name has no usable address"),
        E::Timeout(T::Resolve) => (Class::NotDelivered, "the dns lookup timed out"),
        E::Timeout(T::Connect) => (Class::NotDelivered, "connecting timed out"),
        E::Timeout(T::SendRequest | T::SendBody) => {
            (Class::Ambiguous, "timed out while sending the request")
        }
        E::Timeout(_) => (Class::Ambiguous, "timed out waiting for the answer"),
        E::Io(e) => match e.kind() {
            K::ConnectionRefused => (Class::NotDelivered, "the connection was refused"),
            K::HostUnreachable | K::NetworkUnreachable | K::NetworkDown | K::AddrNotAvailable => {
                (Class::NotDelivered, "the host is unreachable")
            }
            // rustls reports certificate and handshake failures as InvalidData.
            K::InvalidData => (Class::Final, "the tls handshake failed"),
            K::TimedOut | K::WouldBlock => (Class::Ambiguous, "timed out waiting for the answer"),
            // std gives DNS failures an unstable kind; its message is the only stable handle.
            _ if e
                .to_string()
                .starts_with("failed to lookup address information") =>
            {
                (Class::NotDelivered, "the dns lookup failed")
            }
            K::UnexpectedEof => (
                Class::Ambiguous,
                "the connection closed before a complete answer",
            ),
            _ => (
                Class::Ambiguous,
                "the connection failed after the request was sent",
            ),
        },
        E::ConnectionFailed => (Class::NotDelivered, "the connection could not be made"),
        E::ConnectProxyFailed(_) => (Class::NotDelivered, "the proxy refused the connection"),
        E::Tls(_) | E::TlsRequired => (Class::Final, "the tls handshake failed"),
        #[cfg(feature = "rustls")]
        E::Rustls(_) => (Class::Final, "the tls handshake failed"),
        E::Protocol(_) => (Class::Ambiguous, "the server's answer was not valid http"),
        E::LargeResponseHeader(..) => (Class::Final, "the answer's headers were too large"),
        E::BodyExceedsLimit(_) => (Class::Final, "the answer was too large"),
        _ => (Class::Final, "the request could not be made"),
    }
}

/// Whether a failure of this class could have delivered the SMS.
pub(crate) fn may_have_sent(class: Class) -> bool {
    class == Class::Ambiguous
}

/// The wait the server asked for: `retry-after-ms`, then `Retry-After` (delta-seconds,
/// fractional allowed, or an HTTP date). `None` when absent or unreadable.
pub(crate) fn server_wait(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
) -> Option<Duration> {
    if let Some(ms) = retry_after_ms.and_then(|v| v.trim().parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64((ms / 1000.0).min(1e9)));
        }
    }
    let v = retry_after?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let at = parse_http_date(v)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Exponential backoff for retry number `retry` (0-based): 0.5 s doubling to at most 8 s,
/// times a jitter factor in (0.75, 1].
pub(crate) fn backoff(retry: u32) -> Duration {
    let base = BACKOFF_START
        .saturating_mul(1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX))
        .min(BACKOFF_MAX);
    let jitter = 1.0 - (random_u64() as f64 / u64::MAX as f64) * 0.25;
    base.mul_f64(jitter)
}

/// A source of random bits without a randomness crate: SipHash keyed by std's `RandomState`,
/// whose 128-bit keys come from the operating system's generator, already fed a process-wide
/// counter (so no two calls in a process hash the same input).
fn random_hasher() -> impl Hasher {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h
}

fn random_u64() -> u64 {
    random_hasher().finish()
}

/// A fresh idempotency key: 128 random bits as 32 lowercase hex digits (within the server's
/// `[A-Za-z0-9_-]{1,255}`). Both halves come from one keyed hasher, the second after one more
/// input.
pub(crate) fn new_idempotency_key() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut h = random_hasher();
    let high = h.finish();
    h.write_u8(0xA5);
    let low = h.finish();
    let mut key = String::with_capacity(32);
    for word in [high, low] {
        for shift in (0..64).step_by(4).rev() {
            key.push(HEX[((word >> shift) & 15) as usize] as char);
        }
    }
    key
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form RFC 9110 requires
/// senders to use, into seconds since the Unix epoch.
fn parse_http_date(s: &str) -> Option<u64> {
    let rest = s.split_once(", ")?.1;
    let mut it = rest.split(' ');
    let day: u64 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if it.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + (h * 3600 + m * 60 + sec) as i64).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(1_835_438_400)
        );
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 PST"), None);
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn server_wait_prefers_ms_and_reads_dates() {
        assert_eq!(
            server_wait(Some("250"), Some("9")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            server_wait(None, Some("1.5")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(server_wait(None, Some("0")), Some(Duration::ZERO));
        assert_eq!(server_wait(None, Some("-3")), None);
        assert_eq!(server_wait(None, Some("soon")), None);
        // A date in the past means "now".
        assert_eq!(
            server_wait(None, Some("Sun, 06 Nov 1994 08:49:37 GMT")),
            Some(Duration::ZERO)
        );
        let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
        let wait = server_wait(None, Some(&format_http_date(in_an_hour))).unwrap();
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
            let d = backoff(retry).as_millis() as u64;
            assert!(d > max_ms * 3 / 4 && d <= max_ms, "retry {retry}: {d} ms");
        }
        assert!(backoff(u32::MAX) <= BACKOFF_MAX);
    }

    #[test]
    fn keys_are_fresh_and_well_formed() {
        let keys: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_idempotency_key()).collect();
        assert_eq!(keys.len(), 10_000);
        for k in keys.iter().take(50) {
            assert_eq!(k.len(), 32);
            assert!(crate::request::idempotency_key_problem(k).is_none());
        }
    }

    #[test]
    fn transport_classes() {
        use std::io::{Error as IoError, ErrorKind as K};
        let io = |kind, msg: &str| ureq::Error::Io(IoError::new(kind, msg.to_owned()));
        let cases = [
            (io(K::ConnectionRefused, "refused"), Class::NotDelivered),
            (
                io(K::NetworkUnreachable, "unreachable"),
                Class::NotDelivered,
            ),
            (
                io(
                    K::Other,
                    "failed to lookup address information: Temporary failure in name resolution",
                ),
                Class::NotDelivered,
            ),
            (ureq::Error::HostNotFound, Class::NotDelivered),
            (
                ureq::Error::Timeout(ureq::Timeout::Connect),
                Class::NotDelivered,
            ),
            (
                ureq::Error::Timeout(ureq::Timeout::Resolve),
                Class::NotDelivered,
            ),
            (ureq::Error::ConnectionFailed, Class::NotDelivered),
            (
                ureq::Error::Timeout(ureq::Timeout::Global),
                Class::Ambiguous,
            ),
            (
                ureq::Error::Timeout(ureq::Timeout::RecvResponse),
                Class::Ambiguous,
            ),
            (io(K::UnexpectedEof, "Peer disconnected"), Class::Ambiguous),
            (io(K::ConnectionReset, "reset"), Class::Ambiguous),
            (io(K::BrokenPipe, "pipe"), Class::Ambiguous),
            // rustls reports an untrusted certificate as InvalidData.
            (
                io(K::InvalidData, "invalid peer certificate: UnknownIssuer"),
                Class::Final,
            ),
            (ureq::Error::TlsRequired, Class::Final),
            (ureq::Error::BadUri("x".into()), Class::Final),
        ];
        for (err, want) in cases {
            assert_eq!(classify_transport(&err, false).0, want, "{err:?}");
        }
        // While opening the connection nothing was written: never ambiguous, still final
        // for a certificate failure.
        let reset = io(K::ConnectionReset, "reset");
        assert_eq!(classify_transport(&reset, true).0, Class::NotDelivered);
        let cert = io(K::InvalidData, "invalid peer certificate: UnknownIssuer");
        assert_eq!(classify_transport(&cert, true).0, Class::Final);
    }

    #[test]
    fn status_classes() {
        for s in [408, 429, 503] {
            assert_eq!(classify_status(s, None), Class::NotDelivered, "{s}");
        }
        for s in [409, 500, 502, 504] {
            assert_eq!(classify_status(s, None), Class::Ambiguous, "{s}");
        }
        for s in [400, 401, 403, 404, 422, 501, 505] {
            assert_eq!(classify_status(s, None), Class::Final, "{s}");
        }
        assert_eq!(classify_status(400, Some(true)), Class::NotDelivered);
        assert_eq!(classify_status(503, Some(false)), Class::Final);
    }
}
