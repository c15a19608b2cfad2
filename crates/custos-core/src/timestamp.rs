//! One timestamp type for every stored and shown time: microseconds since
//! the Unix epoch, UTC. The core reads no clock; callers hand in "now".
//! Shown as RFC 3339; read from RFC 3339 or a date (`2025-06-01`,
//! midnight UTC), the two forms every surface accepts.

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A point in time, to the microsecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a text is not a time; says which forms are accepted, never echoes
/// the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Neither an RFC 3339 time nor a date.
    #[error("expected a date (2025-06-01) or an RFC 3339 time (2025-06-01T12:00:00Z)")]
    Format,
    /// A valid form, but outside what is stored (years 1677 to 2262).
    #[error("out of range")]
    Range,
}

impl Timestamp {
    /// The time `us` microseconds after the epoch.
    pub const fn from_micros(us: i64) -> Self {
        Self(us)
    }

    /// Microseconds since the epoch, as stored.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// From a point in time of the `time` crate (which surfaces read clocks
    /// with); `None` outside the stored range.
    pub fn from_datetime(t: OffsetDateTime) -> Option<Self> {
        i64::try_from(t.unix_timestamp_nanos() / 1000)
            .ok()
            .map(Self)
    }

    /// Parses an RFC 3339 time (any offset) or a date, midnight UTC.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        let s = s.trim();
        let t = OffsetDateTime::parse(s, &Rfc3339)
            .or_else(|_| {
                let fmt = time::macros::format_description!("[year]-[month]-[day]");
                time::Date::parse(s, &fmt).map(|d| d.midnight().assume_utc())
            })
            .map_err(|_| TimestampError::Format)?;
        Self::from_datetime(t).ok_or(TimestampError::Range)
    }

    /// RFC 3339 in UTC (`2025-06-01T12:00:00.123456Z`); an out-of-range
    /// value (never stored) prints empty.
    pub fn to_rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dates_and_times() {
        assert_eq!(
            Timestamp::parse("1970-01-02"),
            Ok(Timestamp(86_400_000_000))
        );
        assert_eq!(
            Timestamp::parse("2023-05-01").map(Timestamp::micros),
            Ok(1_682_899_200_000_000)
        );
        assert_eq!(
            Timestamp::parse("1970-01-01T00:00:01Z"),
            Ok(Timestamp(1_000_000))
        );
        assert_eq!(
            Timestamp::parse(" 1970-01-01T01:00:01+01:00 "),
            Ok(Timestamp(1_000_000))
        );
        assert_eq!(Timestamp::parse("yesterday"), Err(TimestampError::Format));
        assert_eq!(Timestamp::parse("2025-02-30"), Err(TimestampError::Format));
        assert_eq!(Timestamp(1_500_000).to_rfc3339(), "1970-01-01T00:00:01.5Z");
    }

    proptest! {
        #[test]
        fn printed_times_parse_back(us in -2_000_000_000_000_000i64..4_000_000_000_000_000) {
            let t = Timestamp(us);
            prop_assert_eq!(Timestamp::parse(&t.to_rfc3339()), Ok(t));
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = Timestamp::parse(&s);
        }
    }
}
