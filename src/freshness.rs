//! The optional freshness window: notification time (Cube `x-lf-timestamp`, or a legacy body
//! field) against the proxy's clock.
//!
//! Off by default: Linksfield retries failed deliveries for hours (legacy: every six hours until
//! success; Cube: up to 30 times within 24 hours), so a genuine notification can arrive long
//! after its own timestamp. A window shorter than the retry horizon turns every retry of an
//! outage into a permanent rejection.

use crate::verdict::{Reason, Rejection};

/// The optional freshness window of a route (its `freshness` section), compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    /// Oldest accepted notification, in milliseconds before now.
    pub max_age_ms: u64,
    /// Furthest accepted notification time after now (clock skew), in milliseconds.
    pub max_future_skew_ms: u64,
    /// Legacy scheme: the body field holding the send time (epoch ms or a provider date format).
    pub body_field: String,
    /// UTC offset, in minutes, of provider date formats without a zone (`2022-01-19T201101`).
    pub body_field_utc_offset_minutes: i32,
}

/// Largest accepted `max_age_seconds` / `max_future_skew_seconds` (one year).
pub const MAX_WINDOW_SECONDS: u64 = 366 * 24 * 3600;
/// `max_future_skew_seconds` when left out.
pub const DEFAULT_FUTURE_SKEW_SECONDS: u64 = 300;
/// `body_field` when left out.
pub const DEFAULT_BODY_FIELD: &str = "received_at";

/// A `body_field_utc_offset`: `+08:00` -> 480, `-05:30` -> -330, `Z` -> 0.
pub fn parse_utc_offset(text: &str) -> Option<i32> {
    if text == "Z" {
        return Some(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, text.get(1..)?),
        b'-' => (-1, text.get(1..)?),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    Some(sign * (h * 60 + m))
}

/// Check a notification time (epoch ms) against `now` (epoch ms).
pub fn check(window: &Freshness, sent_ms: u64, now_ms: u64) -> Result<(), Rejection> {
    if sent_ms > now_ms.saturating_add(window.max_future_skew_ms) {
        return Err(Rejection::new(
            Reason::StaleNotification,
            "timestamp in the future",
        ));
    }
    if now_ms.saturating_sub(sent_ms) > window.max_age_ms {
        return Err(Rejection::new(
            Reason::StaleNotification,
            "timestamp older than max_age_seconds",
        ));
    }
    Ok(())
}

/// Parse a legacy body timestamp: epoch milliseconds (all digits), or a provider date format
/// `YYYY-MM-DDTHHmmss`, `YYYY-MM-DDTHH:mm:ss`, `YYYY-MM-DD HH:mm:ss` (local time at
/// `utc_offset_minutes`; a trailing `Z` means UTC).
pub fn parse_body_time(text: &str, utc_offset_minutes: i32) -> Option<u64> {
    let text = text.trim();
    if !text.is_empty() && text.len() <= 19 && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let (text, offset) = match text.strip_suffix('Z') {
        Some(t) => (t, 0),
        None => (text, utc_offset_minutes),
    };
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T') | Some(b' '))
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = match b.len() {
        17 => (num(11..13)?, num(13..15)?, num(15..17)?),
        19 if b.get(13) == Some(&b':') && b.get(16) == Some(&b':') => {
            (num(11..13)?, num(14..16)?, num(17..19)?)
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - i64::from(offset) * 60;
    u64::try_from(secs).ok().map(|s| s * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_offsets() {
        assert_eq!(parse_utc_offset("+08:00"), Some(480));
        assert_eq!(parse_utc_offset("-05:30"), Some(-330));
        assert_eq!(parse_utc_offset("Z"), Some(0));
        for bad in [
            "08:00", "+8:00", "+08", "+15:00", "+08:60", "", "+", "+aa:bb",
        ] {
            assert_eq!(parse_utc_offset(bad), None, "{bad}");
        }
    }

    fn window(age_s: u64, skew_s: u64) -> Freshness {
        Freshness {
            max_age_ms: age_s * 1000,
            max_future_skew_ms: skew_s * 1000,
            body_field: "received_at".into(),
            body_field_utc_offset_minutes: 0,
        }
    }

    #[test]
    fn window_edges() {
        let w = window(60, 5);
        let now = 1_700_000_000_000;
        assert!(check(&w, now, now).is_ok());
        assert!(check(&w, now - 60_000, now).is_ok());
        assert_eq!(
            check(&w, now - 60_001, now).unwrap_err().reason,
            Reason::StaleNotification
        );
        assert!(check(&w, now + 5_000, now).is_ok());
        assert_eq!(
            check(&w, now + 5_001, now).unwrap_err().detail,
            "timestamp in the future"
        );
        assert!(check(&w, 0, now).is_err());
        assert!(check(&w, u64::MAX, now).is_err());
    }

    #[test]
    fn body_time_formats() {
        // 2022-01-19T20:11:01Z = 1642623061 s.
        assert_eq!(parse_body_time("1642385160000", 0), Some(1_642_385_160_000));
        assert_eq!(
            parse_body_time("2022-01-19T201101", 0),
            Some(1_642_623_061_000)
        );
        assert_eq!(
            parse_body_time("2022-01-19T20:11:01", 0),
            Some(1_642_623_061_000)
        );
        assert_eq!(
            parse_body_time("2022-01-19 20:11:01", 0),
            Some(1_642_623_061_000)
        );
        assert_eq!(
            parse_body_time("2022-01-19T20:11:01Z", 480),
            Some(1_642_623_061_000)
        );
        assert_eq!(
            parse_body_time("2022-01-20T041101", 480),
            Some(1_642_623_061_000)
        );
        assert_eq!(parse_body_time("1970-01-01T000000", 0), Some(0));
        assert_eq!(
            parse_body_time("2000-02-29T120000", 0),
            Some(951_825_600_000)
        );
        for bad in [
            "",
            "abc",
            "2022-13-01T000000",
            "2022-01-19T2011",
            "2022/01/19T201101",
            "2022-01-19T25:00:00",
            "1969-12-31T235959",
            "-5",
            "2022-01-19T20:11:0x",
        ] {
            assert_eq!(parse_body_time(bad, 0), None, "{bad}");
        }
    }
}
