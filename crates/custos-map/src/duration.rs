//! Retention durations as written in the map: `30d`, `12w`, `6m`, `3y`.
//!
//! Calendar units (months, years) are kept as written instead of being
//! turned into days, so that "3y from invoice date" means the same day three
//! years on, whatever the leap years; [`Duration::approx_days`] exists only
//! for sorting and summaries.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Unit of a [`Duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DurationUnit {
    /// `d`
    Days,
    /// `w`
    Weeks,
    /// `m` (calendar months)
    Months,
    /// `y` (calendar years)
    Years,
}

impl DurationUnit {
    fn suffix(self) -> char {
        match self {
            Self::Days => 'd',
            Self::Weeks => 'w',
            Self::Months => 'm',
            Self::Years => 'y',
        }
    }
}

/// A retention period. Invariant: `amount >= 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Duration {
    amount: u32,
    unit: DurationUnit,
}

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: write a positive number followed by d, w, m or y (e.g. 30d, 12w, 6m, 3y)")]
pub struct DurationParseError(pub String);

impl Duration {
    /// A duration of `amount` units; `None` when `amount` is zero.
    pub fn new(amount: u32, unit: DurationUnit) -> Option<Self> {
        (amount > 0).then_some(Self { amount, unit })
    }

    /// The number of units.
    pub fn amount(self) -> u32 {
        self.amount
    }

    /// The unit.
    pub fn unit(self) -> DurationUnit {
        self.unit
    }

    /// Length in days, months as 30 and years as 365: for ordering only.
    pub fn approx_days(self) -> u64 {
        let per = match self.unit {
            DurationUnit::Days => 1,
            DurationUnit::Weeks => 7,
            DurationUnit::Months => 30,
            DurationUnit::Years => 365,
        };
        u64::from(self.amount) * per
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit.suffix())
    }
}

impl FromStr for Duration {
    type Err = DurationParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DurationParseError(s.to_owned());
        let mut chars = s.chars();
        let unit = match chars.next_back() {
            Some('d') => DurationUnit::Days,
            Some('w') => DurationUnit::Weeks,
            Some('m') => DurationUnit::Months,
            Some('y') => DurationUnit::Years,
            _ => return Err(err()),
        };
        let digits = chars.as_str();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let amount: u32 = digits.parse().map_err(|_| err())?;
        Duration::new(amount, unit).ok_or_else(err)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!("30d".parse::<Duration>().unwrap().approx_days(), 30);
        assert_eq!("12w".parse::<Duration>().unwrap().approx_days(), 84);
        assert_eq!(
            "6m".parse::<Duration>().unwrap().unit(),
            DurationUnit::Months
        );
        assert_eq!("3y".parse::<Duration>().unwrap().amount(), 3);
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in [
            "",
            "d",
            "0d",
            "-3d",
            "3",
            "3 d",
            "3h",
            "1.5y",
            "99999999999d",
            "+3d",
        ] {
            assert!(bad.parse::<Duration>().is_err(), "{bad:?} parsed");
        }
    }

    fn unit() -> impl Strategy<Value = DurationUnit> {
        prop_oneof![
            Just(DurationUnit::Days),
            Just(DurationUnit::Weeks),
            Just(DurationUnit::Months),
            Just(DurationUnit::Years),
        ]
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(amount in 1u32.., unit in unit()) {
            let d = Duration::new(amount, unit).unwrap();
            prop_assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,12}") {
            let _ = s.parse::<Duration>();
        }
    }
}
