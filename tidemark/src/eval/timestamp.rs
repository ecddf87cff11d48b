//! `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC) to epoch milliseconds: the timestamp form of the
//! evaluation corpora, parsed by hand so the command needs no date library.

use thiserror::Error;

/// A timestamp that is not `YYYY-MM-DD HH:MM:SS[.fraction]`.
#[derive(Debug, Error, PartialEq)]
#[error("{0:?} is not a timestamp of the form YYYY-MM-DD HH:MM:SS[.ffffff]")]
pub struct TimestampError(pub String);

/// Epoch milliseconds of a `YYYY-MM-DD HH:MM:SS[.ffffff]` timestamp, read as UTC.
pub fn parse_ms(text: &str) -> Result<i64, TimestampError> {
    let bad = || TimestampError(text.to_string());
    let (date, time) = text.trim().split_once([' ', 'T']).ok_or_else(bad)?;
    let mut date_parts = date.splitn(3, '-').map(|p| p.parse::<i64>().map_err(|_| bad()));
    let (year, month, day) = (
        date_parts.next().ok_or_else(bad)??,
        date_parts.next().ok_or_else(bad)??,
        date_parts.next().ok_or_else(bad)??,
    );
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock_parts = clock.splitn(3, ':').map(|p| p.parse::<i64>().map_err(|_| bad()));
    let (hour, minute, second) = (
        clock_parts.next().ok_or_else(bad)??,
        clock_parts.next().ok_or_else(bad)??,
        clock_parts.next().ok_or_else(bad)??,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let millis = match fraction {
        "" => 0,
        digits if digits.bytes().all(|b| b.is_ascii_digit()) => {
            let padded = format!("{digits:0<3}");
            padded[..3].parse::<i64>().map_err(|_| bad())?
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month, day);
    Ok(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_fractional_timestamps() {
        assert_eq!(parse_ms("1970-01-01 00:00:00"), Ok(0));
        // 2014-04-01 is 16161 days after the epoch: 16161 · 86 400 000 ms.
        assert_eq!(parse_ms("2014-04-01 00:00:00"), Ok(16_161 * 86_400_000));
        assert_eq!(
            parse_ms("2014-04-01 00:05:00.000000"),
            Ok(16_161 * 86_400_000 + 300_000)
        );
        assert_eq!(parse_ms("2000-03-01 00:00:01.5"), Ok(11_017 * 86_400_000 + 1_500));
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for text in [
            "2014-04-01",
            "2014-13-01 00:00:00",
            "2014-04-01 00:00:xx",
            "2014-04-01 00:00:00.5z",
        ] {
            assert!(parse_ms(text).is_err(), "{text}");
        }
    }
}
