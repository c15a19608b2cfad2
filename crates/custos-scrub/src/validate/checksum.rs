//! The check digits the validators share: Luhn (cards, custom detectors)
//! and ISO 7064 mod 97-10 (IBANs, custom detectors), over digit values,
//! without allocating.

/// Luhn over digit values.
pub(crate) fn luhn(d: &[u8]) -> bool {
    luhn_rev(d.iter().rev().copied())
}

/// Luhn over digit values given from the last one.
pub(super) fn luhn_rev(d: impl Iterator<Item = u8>) -> bool {
    let (mut sum, mut n) = (0u32, 0usize);
    for x in d {
        let x = u32::from(x);
        sum += match (n % 2 == 1, x * 2) {
            (true, y) if y > 9 => y - 9,
            (true, y) => y,
            (false, _) => x,
        };
        n += 1;
    }
    n > 0 && sum % 10 == 0
}

/// ISO 7064 mod 97-10 remainder of alphanumerics (letters count 10–35).
pub(crate) fn mod97_alnum(chars: impl Iterator<Item = u8>) -> Option<u32> {
    let mut rem: u32 = 0;
    let mut any = false;
    for c in chars {
        any = true;
        rem = mod97_step(rem, alnum_value(c)?);
    }
    any.then_some(rem)
}

/// The mod 97-10 value of an alphanumeric: digits 0–9, letters 10–35.
pub(super) fn alnum_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'a'..=b'z' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// The remainder after appending the (one- or two-digit) value `v`.
pub(super) fn mod97_step(rem: u32, v: u8) -> u32 {
    let v = u32::from(v);
    let shift = if v >= 10 { 100 } else { 10 };
    (rem * shift + v) % 97
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::digits;
    #[test]
    fn luhn_and_mod97() {
        assert!(luhn(&digits(b"4111111111111111").unwrap()));
        assert!(!luhn(&digits(b"4111111111111112").unwrap()));
        assert_eq!(
            mod97_alnum(b"3214282912345698765432161182".iter().copied()),
            Some(1)
        );
    }
}
