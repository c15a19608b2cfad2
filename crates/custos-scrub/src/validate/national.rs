//! National identity and tax numbers with their own check rules: Dutch
//! BSN (11-test), UK NINO, US SSN (area rules), German tax id, French NIR,
//! Spanish DNI and NIE, Italian codice fiscale.

use super::digits;

pub(super) fn bsn(d: &[u8]) -> bool {
    if d.len() != 9 || d.iter().all(|&x| x == 0) {
        return false;
    }
    let sum: i32 = d
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let w = if i == 8 { -1 } else { 9 - i as i32 };
            w * i32::from(x)
        })
        .sum();
    sum % 11 == 0
}

pub(super) fn nino(span: &[u8]) -> bool {
    let mut chars = span.iter().copied().filter(|b| *b != b' ');
    let (Some(a), Some(b)) = (chars.next(), chars.next()) else {
        return false;
    };
    let spaces = span.iter().filter(|b| **b == b' ').count();
    span.len() - spaces == 9
        && !matches!(
            &[a, b],
            b"BG" | b"GB" | b"NK" | b"KN" | b"TN" | b"NT" | b"ZZ"
        )
        && (spaces == 0 || spaces == 4)
}

pub(super) fn ssn(d: &[u8]) -> bool {
    let n = |s: &[u8]| s.iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    let (Some(area), Some(group), Some(serial)) = (d.get(..3), d.get(3..5), d.get(5..9)) else {
        return false;
    };
    let (area, group, serial) = (n(area), n(group), n(serial));
    d.len() == 9
        && area != 0
        && area != 666
        && area < 900
        && group != 0
        && serial != 0
        && !matches!((area, group, serial), (78, 5, 1120) | (219, 9, 9999))
}

pub(super) fn de_taxid(d: &[u8]) -> bool {
    if d.len() != 11 || d.first() == Some(&0) {
        return false;
    }
    let Some(body) = d.get(..10) else {
        return false;
    };
    let mut counts = [0u8; 10];
    for &x in body {
        if let Some(c) = counts.get_mut(usize::from(x)) {
            *c += 1;
        }
    }
    // Exactly one digit repeated, two or three times.
    let mut repeated = counts.iter().filter(|&&c| c > 1);
    if !matches!((repeated.next(), repeated.next()), (Some(2 | 3), None)) {
        return false;
    }
    let mut product: u32 = 10;
    for &x in body {
        let mut sum = (u32::from(x) + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let check = (11 - product) % 10;
    d.get(10).map(|&x| u32::from(x)) == Some(check)
}

pub(super) fn fr_nir(span: &[u8]) -> bool {
    let mut chars = [0u8; 15];
    let mut len = 0;
    for b in span.iter().filter(|b| **b != b' ') {
        if let Some(slot) = chars.get_mut(len) {
            *slot = b.to_ascii_uppercase();
        }
        len += 1;
    }
    if len != 15 {
        return false;
    }
    let (Some(body), Some(key)) = (chars.get(..13), chars.get(13..)) else {
        return false;
    };
    // Corsica: 2A and 2B are numbered as 19 and 18 for the key.
    let mut n: u64 = 0;
    let corsica = match body.get(5..7) {
        Some(b"2A") => 1_000_000,
        Some(b"2B") => 2_000_000,
        _ => 0,
    };
    for (i, &c) in body.iter().enumerate() {
        let v = match (i, c) {
            (6, b'A' | b'B') => 0,
            (_, b'0'..=b'9') => u64::from(c - b'0'),
            _ => return false,
        };
        n = n * 10 + v;
    }
    n -= corsica;
    let key = key
        .iter()
        .fold(0u64, |a, &x| a * 10 + u64::from(x.wrapping_sub(b'0')));
    97 - n % 97 == key
}

const DNI_LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

fn dni_letter_ok(number: u32, letter: Option<&u8>) -> bool {
    let idx = usize::try_from(number % 23).unwrap_or(usize::MAX);
    DNI_LETTERS.get(idx).is_some() && DNI_LETTERS.get(idx) == letter
}

pub(super) fn es_dni(span: &[u8]) -> bool {
    let Some(d) = digits(span).filter(|d| d.len() == 8) else {
        return false;
    };
    let n = d.iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    dni_letter_ok(n, span.last())
}

pub(super) fn es_nie(span: &[u8]) -> bool {
    let prefix = match span.first() {
        Some(b'X') => 0,
        Some(b'Y') => 1,
        Some(b'Z') => 2,
        _ => return false,
    };
    let Some(d) = digits(span).filter(|d| d.len() == 7) else {
        return false;
    };
    let n = d.iter().fold(prefix, |a, &x| a * 10 + u32::from(x));
    dni_letter_ok(n, span.last())
}

pub(super) fn it_cf(span: &[u8]) -> bool {
    const ODD: [u8; 36] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, // 0-9
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23, // A-Z
    ];
    if span.len() != 16 {
        return false;
    }
    let mut sum: u32 = 0;
    for (i, &c) in span.iter().take(15).enumerate() {
        let idx = match c {
            b'0'..=b'9' => usize::from(c - b'0'),
            b'A'..=b'Z' => usize::from(c - b'A') + 10,
            _ => return false,
        };
        let even_value = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            _ => u32::from(c - b'A'),
        };
        // Positions are 1-based in the specification: index 0 is "odd".
        sum += if i % 2 == 0 {
            ODD.get(idx).map_or(0, |&v| u32::from(v))
        } else {
            even_value
        };
    }
    let expect = b'A' + u8::try_from(sum % 26).unwrap_or(0);
    span.get(15) == Some(&expect)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::digits;
    #[test]
    fn national_checksums() {
        assert!(bsn(&digits(b"111222333").unwrap()));
        assert!(!bsn(&digits(b"111222334").unwrap()));
        assert!(ssn(&digits(b"536-90-4399").unwrap()));
        assert!(!ssn(&digits(b"666-12-3456").unwrap()));
        assert!(!ssn(&digits(b"900-12-3456").unwrap()));
        assert!(!ssn(&digits(b"123-00-4567").unwrap()));
        assert!(de_taxid(&digits(b"86095742719").unwrap()));
        assert!(!de_taxid(&digits(b"86095742718").unwrap()));
        assert!(fr_nir(b"2 55 08 14 168 025 38"));
        assert!(!fr_nir(b"2 55 08 14 168 025 39"));
        assert!(es_dni(b"12345678Z"));
        assert!(!es_dni(b"12345678A"));
        assert!(es_nie(b"X1234567L"));
        assert!(it_cf(b"RSSMRA85T10A562S"));
        assert!(!it_cf(b"RSSMRA85T10A562T"));
        assert!(nino(b"AB123456C"));
        assert!(!nino(b"GB123456C"));
    }
}
