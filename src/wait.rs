//! How long to wait before a retry: our backoff, or the wait the server asked for.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http_date::parse_http_date;
use crate::keys::random_u64;

/// Longest server-requested wait that is slept through; a longer one ends the send at once.
pub(crate) const MAX_SERVER_WAIT: Duration = Duration::from_secs(60);
/// The default backoff: 0.5 s, doubling to at most 8 s, as the official SDKs wait.
pub(crate) const BACKOFF_START: Duration = Duration::from_millis(500);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(8);

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
}
