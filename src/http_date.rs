//! HTTP dates (RFC 9110 §5.6.7), as a `Retry-After` header may carry them.
//!
//! A recipient must accept all three forms:
//!
//! - IMF-fixdate, the one senders must use: `Sun, 06 Nov 1994 08:49:37 GMT`;
//! - the obsolete RFC 850 form, with a two-digit year: `Sunday, 06-Nov-94 08:49:37 GMT`;
//! - the obsolete asctime form, without a zone: `Sun Nov  6 08:49:37 1994`.
//!
//! Parsing is strict otherwise (names as written in the RFC, GMT only, a real calendar day),
//! and never panics or overflows on hostile input.

use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses an HTTP date in any of the three forms into seconds since the Unix epoch. `None`
/// when it is none of them, or before 1970.
pub(crate) fn parse_http_date(s: &str) -> Option<u64> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    parse_at(s, year_of(now))
}

/// [`parse_http_date`] with the current year given, which an RFC 850 date's two-digit year
/// is read against.
fn parse_at(s: &str, this_year: i64) -> Option<u64> {
    let s = s.trim();
    if let Some((day_name, rest)) = s.split_once(", ") {
        if DAYS.contains(&day_name) {
            imf_fixdate(rest)
        } else if LONG_DAYS.contains(&day_name) {
            rfc850(rest, this_year)
        } else {
            None
        }
    } else {
        asctime(s)
    }
}

/// `06 Nov 1994 08:49:37 GMT`
fn imf_fixdate(rest: &str) -> Option<u64> {
    let mut it = rest.split(' ');
    let day = digits(it.next()?, 2)?;
    let month = month(it.next()?)?;
    let year = digits(it.next()?, 4)?;
    let time = it.next()?;
    if it.next()? != "GMT" || it.next().is_some() {
        return None;
    }
    timestamp(year, month, day, time)
}

/// `06-Nov-94 08:49:37 GMT`: a year more than 50 years ahead of `this_year` is the latest
/// past year with those two digits (RFC 9110 §5.6.7).
fn rfc850(rest: &str, this_year: i64) -> Option<u64> {
    let mut it = rest.split(' ');
    let mut date = it.next()?.split('-');
    let day = digits(date.next()?, 2)?;
    let month = month(date.next()?)?;
    let yy = digits(date.next()?, 2)?;
    if date.next().is_some() {
        return None;
    }
    let time = it.next()?;
    if it.next()? != "GMT" || it.next().is_some() {
        return None;
    }
    let mut year = this_year - this_year.rem_euclid(100) + yy;
    if year > this_year + 50 {
        year -= 100;
    }
    timestamp(year, month, day, time)
}

/// `Sun Nov  6 08:49:37 1994` (a one-digit day is padded with a space) or `Sun Nov 16 ...`.
fn asctime(s: &str) -> Option<u64> {
    let (day_name, rest) = s.split_once(' ')?;
    if !DAYS.contains(&day_name) {
        return None;
    }
    let (month_name, rest) = rest.split_once(' ')?;
    let month = month(month_name)?;
    // date3's day: two digits, or a space and one digit.
    let (day, rest) = match rest.strip_prefix(' ') {
        Some(r) => (digits(r.get(..1)?, 1)?, r.get(1..)?),
        None => (digits(rest.get(..2)?, 2)?, rest.get(2..)?),
    };
    let mut it = rest.strip_prefix(' ')?.split(' ');
    let time = it.next()?;
    let year = digits(it.next()?, 4)?;
    if it.next().is_some() {
        return None;
    }
    timestamp(year, month, day, time)
}

/// Exactly `n` ASCII digits.
fn digits(s: &str, n: usize) -> Option<i64> {
    if s.len() == n && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn month(s: &str) -> Option<i64> {
    MONTHS.iter().position(|m| *m == s).map(|i| i as i64 + 1)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Seconds since the epoch of a checked date and `HH:MM:SS` (a leap second, `:60`, allowed).
fn timestamp(year: i64, month: i64, day: i64, time: &str) -> Option<u64> {
    let mut hms = time.split(':');
    let h = digits(hms.next()?, 2)?;
    let m = digits(hms.next()?, 2)?;
    let sec = digits(hms.next()?, 2)?;
    if hms.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let month_days = match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1970..=9999).contains(&year) || !(1..=month_days).contains(&day) {
        return None;
    }
    u64::try_from(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The calendar year of a time in seconds since the epoch.
fn year_of(secs: u64) -> i64 {
    // Civil from days (Howard Hinnant), only as far as the year.
    let z = i64::try_from(secs / 86_400).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    yoe + era * 400 + i64::from(mp >= 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_6_1994: Option<u64> = Some(784_111_777);

    #[test]
    fn the_three_forms_of_rfc_9110() {
        assert_eq!(parse_at("Sun, 06 Nov 1994 08:49:37 GMT", 2026), NOV_6_1994);
        assert_eq!(parse_at("Sunday, 06-Nov-94 08:49:37 GMT", 2026), NOV_6_1994);
        assert_eq!(parse_at("Sun Nov  6 08:49:37 1994", 2026), NOV_6_1994);
        assert_eq!(parse_at("Sun Nov 06 08:49:37 1994", 2026), NOV_6_1994);
        assert_eq!(
            parse_at("Wed Nov 16 08:49:37 1994", 2026),
            Some(784_111_777 + 10 * 86_400)
        );
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            NOV_6_1994
        );
        assert_eq!(parse_http_date(" Sun Nov  6 08:49:37 1994 "), NOV_6_1994);
    }

    #[test]
    fn imf_fixdates() {
        assert_eq!(parse_at("Thu, 01 Jan 1970 00:00:00 GMT", 2026), Some(0));
        assert_eq!(
            parse_at("Tue, 29 Feb 2028 12:00:00 GMT", 2026),
            Some(1_835_438_400)
        );
        assert_eq!(
            parse_at("Fri, 31 Dec 9999 23:59:59 GMT", 2026),
            Some(253_402_300_799)
        );
        assert_eq!(
            parse_at("Sat, 31 Dec 2016 23:59:60 GMT", 2026),
            Some(1_483_228_800)
        );
    }

    #[test]
    fn rfc850_years_are_read_against_the_current_year() {
        // Up to 50 years ahead stays in this century; further is the century before.
        let y2050 = parse_at("Saturday, 01-Jan-50 00:00:00 GMT", 2026).unwrap();
        assert_eq!(year_of(y2050), 2050);
        let y2076 = parse_at("Sunday, 01-Jan-76 00:00:00 GMT", 2026).unwrap();
        assert_eq!(year_of(y2076), 2076);
        let y1977 = parse_at("Saturday, 01-Jan-77 00:00:00 GMT", 2026).unwrap();
        assert_eq!(year_of(y1977), 1977);
        let y2099 = parse_at("Thursday, 01-Jan-99 00:00:00 GMT", 2060).unwrap();
        assert_eq!(year_of(y2099), 2099);
        assert_eq!(
            parse_at("Saturday, 01-Jan-00 00:00:00 GMT", 2026),
            Some(946_684_800)
        );
    }

    #[test]
    fn anything_else_is_no_date() {
        for bad in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 2100 08:49:37 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov +994 08:49:37 GMT",
            "Funday, 06-Nov-94 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sunday, 06-Nov-94-1 08:49:37 GMT",
            "Sunday, 06 Nov 1994 08:49:37 GMT",
            "Sun Nov 6 08:49:37 1994",
            "Sun Nov   6 08:49:37 1994",
            "Sun Nov  6 08:49:37 1994 GMT",
            "Sun Nov  6 08:49:37 94",
            "Sunday Nov  6 08:49:37 1994",
            "Sun Nov  é 08:49:37 1994",
            "Sun Nov  6",
            "Sun",
        ] {
            assert_eq!(parse_at(bad, 2026), None, "{bad:?}");
        }
        // A hostile year neither panics nor wraps.
        assert_eq!(
            parse_at("Sun, 06 Nov 99999999999999 08:49:37 GMT", 2026),
            None
        );
        assert_eq!(parse_at("Sun, 06 Nov -5 08:49:37 GMT", 2026), None);
        assert_eq!(
            parse_at("Sun Nov  6 08:49:37 99999999999999999999", 2026),
            None
        );
    }

    #[test]
    fn the_year_of_a_timestamp() {
        assert_eq!(year_of(0), 1970);
        assert_eq!(year_of(784_111_777), 1994);
        assert_eq!(year_of(1_483_228_799), 2016);
        assert_eq!(year_of(1_483_228_800), 2017);
        assert_eq!(year_of(253_402_300_799), 9999);
    }
}
