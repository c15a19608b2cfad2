//! IBANs: the country's length (SWIFT registry) and mod 97-10 over the
//! rearranged number, reduced lazily.

use super::checksum::alnum_value;
use super::is_word;

/// IBAN length per country (SWIFT registry), sorted by country code.
const IBAN_LEN: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

pub(super) fn iban(hay: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    let span = hay.get(start..end)?;
    // Compared as big-endian numbers (the same order as the byte pairs),
    // not as slices (a `memcmp` call per probe).
    let country = u16::from_be_bytes(*span.first_chunk::<2>()?);
    let at = IBAN_LEN
        .binary_search_by_key(&country, |(c, _)| u16::from_be_bytes(**c))
        .ok()?;
    let want = IBAN_LEN.get(at)?.1;
    // Take exactly `want` alphanumerics (their values, on the stack: one
    // pass, no second filtering of the span); a following word may have
    // been swallowed.
    let mut values = [0u8; IBAN_MAX];
    let mut taken = 0;
    let mut cut = None;
    for (i, &b) in span.iter().enumerate() {
        if let Some(v) = alnum_value(b) {
            *values.get_mut(taken)? = v;
            taken += 1;
            if taken == want {
                cut = Some(i + 1);
                break;
            }
        }
    }
    let cut = cut?;
    if is_word(span.get(cut)) {
        return None;
    }
    // The check digits move behind the rest (`want` >= 15 characters).
    let (check, rest) = values.get(..want)?.split_at_checked(4)?;
    let rem = mod97_lazy(check, mod97_lazy(rest, 0)) % 97;
    (rem == 1).then_some((start, start + cut))
}

/// `acc` with the mod 97-10 values `values` appended, congruent mod 97 to
/// what [`mod97_step`] gives: reduced only when it grows past 2^56 (two
/// more digits cannot overflow it), not once per value.
fn mod97_lazy(values: &[u8], mut acc: u64) -> u64 {
    for &v in values {
        let shift = if v >= 10 { 100 } else { 10 };
        acc = acc * shift + u64::from(v);
        if acc >= 1 << 56 {
            acc %= 97;
        }
    }
    acc
}

/// The longest IBAN ([`IBAN_LEN`]).
const IBAN_MAX: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::checksum::mod97_step;
    #[test]
    fn iban_lengths_are_sorted() {
        assert!(IBAN_LEN.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(IBAN_LEN.iter().all(|&(_, len)| len <= IBAN_MAX));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// The lazily reduced remainder is the stepwise one.
        #[test]
        fn mod97_lazy_is_stepwise(
            values in proptest::collection::vec(0u8..36, 0..64),
            split in 0usize..64,
        ) {
            let (a, b) = values.split_at(split.min(values.len()));
            let expect = a.iter().chain(b).fold(0, |r, &v| mod97_step(r, v));
            proptest::prop_assert_eq!(mod97_lazy(b, mod97_lazy(a, 0)) % 97, u64::from(expect));
        }
    }
}
