//! Unix times as UTC dates for people (the pages) and for programs (the command-line tool).

/// `unix_secs` in UTC to the minute: `2023-11-14 22:13`.
pub(crate) fn utc_minutes(unix_secs: i64) -> String {
    let (year, month, day, secs) = civil(unix_secs);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// `unix_secs` as RFC 3339 in UTC: `2023-11-14T22:13:20Z`.
pub(crate) fn rfc3339(unix_secs: i64) -> String {
    let (year, month, day, secs) = civil(unix_secs);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The proleptic Gregorian date of `unix_secs` and the seconds into its day (Howard Hinnant's
/// `civil_from_days`).
fn civil(unix_secs: i64) -> (i64, i64, i64, i64) {
    let (days, secs) = (unix_secs.div_euclid(86_400), unix_secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], from March
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_are_utc_calendar_dates() {
        let cases = [
            (0, "1970-01-01 00:00"),
            (951_782_400, "2000-02-29 00:00"),
            (1_700_000_000, "2023-11-14 22:13"),
            (1_709_251_199, "2024-02-29 23:59"),
            (4_102_444_800, "2100-01-01 00:00"),
            (-1, "1969-12-31 23:59"),
        ];
        for (secs, text) in cases {
            assert_eq!(utc_minutes(secs), text, "{secs}");
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
