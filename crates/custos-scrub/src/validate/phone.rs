//! Phone numbers: international (`+CC`/`00CC` with the country's number
//! length), national with a trunk `0`, and NANP; none inside a date, a
//! dashed token (UUID) or a run of short numbers.

use super::{digits, dotted_after, dotted_before, inside_digit_run, Digits};

/// Country calling code → national significant number length range.
const COUNTRIES: &[(u16, u8, u8)] = &[
    (1, 10, 10),
    (7, 10, 10),
    (20, 10, 10),
    (27, 9, 9),
    (30, 10, 10),
    (31, 9, 9),
    (32, 8, 9),
    (33, 9, 9),
    (34, 9, 9),
    (36, 8, 9),
    (39, 6, 11),
    (40, 9, 9),
    (41, 9, 9),
    (43, 4, 13),
    (44, 9, 10),
    (45, 8, 8),
    (46, 7, 13),
    (47, 8, 8),
    (48, 9, 9),
    (49, 6, 13),
    (51, 8, 9),
    (52, 10, 10),
    (53, 8, 8),
    (54, 10, 10),
    (55, 10, 11),
    (56, 9, 9),
    (57, 10, 10),
    (58, 10, 10),
    (60, 8, 10),
    (61, 9, 9),
    (62, 8, 12),
    (63, 8, 10),
    (64, 8, 10),
    (65, 8, 8),
    (66, 8, 9),
    (81, 9, 10),
    (82, 8, 10),
    (84, 9, 10),
    (86, 10, 11),
    (90, 10, 10),
    (91, 10, 10),
    (92, 9, 10),
    (93, 9, 9),
    (94, 9, 9),
    (95, 8, 10),
    (98, 10, 10),
    (212, 9, 9),
    (213, 8, 9),
    (216, 8, 8),
    (234, 8, 10),
    (254, 9, 9),
    (351, 9, 9),
    (352, 6, 11),
    (353, 7, 9),
    (354, 7, 7),
    (355, 8, 9),
    (356, 8, 8),
    (357, 8, 8),
    (358, 5, 12),
    (359, 8, 9),
    (370, 8, 8),
    (371, 8, 8),
    (372, 7, 8),
    (380, 9, 9),
    (381, 8, 9),
    (385, 8, 9),
    (386, 8, 8),
    (420, 9, 9),
    (421, 9, 9),
    (852, 8, 8),
    (886, 8, 9),
    (971, 8, 9),
    (972, 8, 9),
];

fn valid_international(d: &[u8]) -> bool {
    let num = |s: &[u8]| s.iter().fold(0u16, |a, &x| a * 10 + u16::from(x));
    (1..=3).any(|cc_len| {
        let (Some(cc), Some(nsn)) = (d.get(..cc_len), d.get(cc_len..)) else {
            return false;
        };
        // Codes are sorted and unique (a unit test checks): at most one entry.
        let cc = num(cc);
        COUNTRIES
            .binary_search_by_key(&cc, |&(c, ..)| c)
            .ok()
            .and_then(|i| COUNTRIES.get(i))
            .is_some_and(|&(_, lo, hi)| (usize::from(lo)..=usize::from(hi)).contains(&nsn.len()))
    })
}

/// Ends of the digit runs in `hay[start..end]`, longest prefix first: the
/// greedy pattern may have swallowed a following number (`+31 6 1234 5678 200`).
pub(super) fn group_ends(hay: &[u8], start: usize, end: usize) -> impl Iterator<Item = usize> + '_ {
    (start..end).rev().filter_map(move |i| {
        let here = hay.get(i).is_some_and(u8::is_ascii_digit);
        let next = hay.get(i + 1).is_some_and(u8::is_ascii_digit);
        // Keep a closing parenthesis with its group.
        let paren = hay.get(i + 1) == Some(&b')') && i + 1 < end;
        (here && (!next || i + 1 == end)).then_some(if paren { i + 2 } else { i + 1 })
    })
}

pub(super) fn phone_intl(hay: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    if dotted_before(hay, start) || dashed_before(hay, start) {
        return None;
    }
    for e in group_ends(hay, start, end) {
        if dotted_after(hay, e) || dashed_after(hay, e) {
            continue;
        }
        let span = hay.get(start..e)?;
        // A "(0)" trunk prefix is written but not dialled.
        let Some(d) = Digits::collect(strip_trunk(span)) else {
            continue;
        };
        let d = match span.starts_with(b"00") {
            true => d.get(2..).unwrap_or_default(),
            false => &d,
        };
        if (8..=15).contains(&d.len()) && valid_international(d) {
            return Some((start, e));
        }
    }
    None
}

/// The bytes of `span` without its `(0)` groups.
fn strip_trunk(span: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while span.get(i..i + 3) == Some(b"(0)") {
            i += 3;
        }
        let b = span.get(i).copied()?;
        i += 1;
        Some(b)
    })
}

fn looks_like_date(span: &[u8]) -> bool {
    let mut groups = span
        .split(|b| !b.is_ascii_digit())
        .filter(|g| !g.is_empty());
    let n = |g: &[u8]| g.iter().fold(0u32, |a, &x| a * 10 + u32::from(x - b'0'));
    match (groups.next(), groups.next(), groups.next()) {
        (Some(a), Some(b), Some(c)) => {
            (a.len() == 4 && b.len() == 2 && c.len() == 2 && n(b) <= 12 && n(c) <= 31)
                || (a.len() == 2 && b.len() == 2 && c.len() == 4 && n(a) <= 31 && n(b) <= 31)
        }
        _ => false,
    }
}

/// The span continues a dash-joined alphanumeric token (a UUID such as
/// `a0a0000a-0100-4000-8000-…`): not a value of its own.
pub(super) fn dashed_before(hay: &[u8], start: usize) -> bool {
    let at = |back: usize| start.checked_sub(back).and_then(|i| hay.get(i));
    at(1) == Some(&b'-') && at(2).is_some_and(u8::is_ascii_alphanumeric)
}

/// The span is followed by `-` and more of the same token.
pub(super) fn dashed_after(hay: &[u8], end: usize) -> bool {
    hay.get(end) == Some(&b'-') && hay.get(end + 1).is_some_and(u8::is_ascii_alphanumeric)
}

pub(super) fn phone_national(
    hay: &[u8],
    start: usize,
    end: usize,
    prev_end: usize,
) -> Option<(usize, usize)> {
    if dotted_before(hay, start)
        || dashed_before(hay, start)
        || inside_digit_run(hay, start, prev_end)
    {
        return None;
    }
    for e in group_ends(hay, start, end) {
        if dotted_after(hay, e) || dashed_after(hay, e) {
            continue;
        }
        let span = hay.get(start..e)?;
        if span.contains(&b')') != span.contains(&b'(') || looks_like_date(span) {
            continue;
        }
        let Some(d) = digits(span) else {
            continue;
        };
        let separated = span.iter().any(|b| !b.is_ascii_digit());
        let ok = if separated {
            (9..=12).contains(&d.len())
        } else {
            (10..=11).contains(&d.len())
        };
        if ok {
            return Some((start, e));
        }
    }
    None
}

pub(super) fn phone_nanp(span: &[u8]) -> bool {
    if span.contains(&b')') != span.contains(&b'(') {
        return false;
    }
    let Some(d) = digits(span) else {
        return false;
    };
    let [a0, a1, a2, e0, e1, e2, ..] = *d else {
        return false;
    };
    d.len() == 10 && a0 >= 2 && a1 <= 8 && !(a1 == 1 && a2 == 1) && e0 >= 2 && !(e1 == 1 && e2 == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn country_codes_are_sorted() {
        assert!(COUNTRIES.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
