//! UTC calendar fields of a `SystemTime`: SigV4's `x-amz-date` and the log timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time broken into UTC calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
}

impl Utc {
    /// `time` in UTC; times before 1970 read as 1970-01-01T00:00:00Z.
    pub fn from(time: SystemTime) -> Utc {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (days, rest) = (secs / 86_400, (secs % 86_400) as u32);
        let (year, month, day) = civil_from_days(days as i64);
        Utc {
            year,
            month,
            day,
            hour: rest / 3600,
            minute: rest % 3600 / 60,
            second: rest % 60,
            micros: since.subsec_micros(),
        }
    }

    /// Appends the date and time to the second: `YYYYMMDDTHHMMSS` (ISO 8601's basic format,
    /// SigV4's) or, `extended`, `YYYY-MM-DDTHH:MM:SS`.
    pub fn push_date_time(&self, out: &mut String, extended: bool) {
        let (date_sep, time_sep) = if extended { ("-", ":") } else { ("", "") };
        push_padded(out, self.year as u32, 4);
        out.push_str(date_sep);
        push_padded(out, self.month, 2);
        out.push_str(date_sep);
        push_padded(out, self.day, 2);
        out.push('T');
        push_padded(out, self.hour, 2);
        out.push_str(time_sep);
        push_padded(out, self.minute, 2);
        out.push_str(time_sep);
        push_padded(out, self.second, 2);
    }
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
pub fn push_padded(out: &mut String, n: u32, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn calendar_fields_are_utc() {
        let at =
            |s: u64, us: u64| Utc::from(UNIX_EPOCH + Duration::from_micros(s * 1_000_000 + us));
        let fields = |u: Utc| (u.year, u.month, u.day, u.hour, u.minute, u.second, u.micros);
        assert_eq!(fields(at(0, 0)), (1970, 1, 1, 0, 0, 0, 0));
        assert_eq!(fields(at(951_782_400, 7)), (2000, 2, 29, 0, 0, 0, 7));
        assert_eq!(
            fields(at(4_107_542_399, 999_999)),
            (2100, 2, 28, 23, 59, 59, 999_999)
        );
        assert_eq!(fields(at(1_795_000_000, 0)), (2026, 11, 18, 11, 6, 40, 0));
    }

    #[test]
    fn numbers_are_padded_to_their_width() {
        let padded = |n, w| {
            let mut s = String::new();
            push_padded(&mut s, n, w);
            s
        };
        assert_eq!(padded(7, 2), "07");
        assert_eq!(padded(10, 2), "10");
        assert_eq!(padded(0, 4), "0000");
        assert_eq!(padded(2026, 4), "2026");
        assert_eq!(padded(12345, 4), "12345");
        assert_eq!(padded(42, 6), "000042");
        assert_eq!(padded(0, 1), "0");
    }
}
