//! Payment card numbers: a known issuer prefix and length, Luhn, and a
//! usual grouping of the digits; not a piece of a version, decimal or
//! dashed token.

use super::checksum::luhn;
use super::phone::group_ends;
use super::{card_in_token, digits, dotted_after, Digits};

fn card_issuer_ok(d: &[u8]) -> bool {
    // `prefix[n]`: the number the first `n` digits make (all of them if
    // fewer), computed once for the many prefix tests below.
    let mut prefix = [0u32; 7];
    let mut acc = 0;
    for (n, slot) in prefix.iter_mut().enumerate().skip(1) {
        if let Some(&x) = d.get(n - 1) {
            acc = acc * 10 + u32::from(x);
        }
        *slot = acc;
    }
    let p = |n: usize| prefix.get(n).copied().unwrap_or(0);
    let len = d.len();
    let visa = p(1) == 4 && matches!(len, 13 | 16 | 19);
    let mc = ((51..=55).contains(&p(2)) || (2221..=2720).contains(&p(4))) && len == 16;
    let amex = matches!(p(2), 34 | 37) && len == 15;
    let discover = (p(4) == 6011
        || p(2) == 65
        || (644..=649).contains(&p(3))
        || (622_126..=622_925).contains(&p(6)))
        && (16..=19).contains(&len);
    let jcb = (3528..=3589).contains(&p(4)) && (16..=19).contains(&len);
    let diners =
        ((300..=305).contains(&p(3)) || matches!(p(2), 36 | 38 | 39)) && (14..=19).contains(&len);
    let maestro = (p(2) == 50 || (56..=69).contains(&p(2))) && (13..=19).contains(&len);
    let mir = (2200..=2204).contains(&p(4)) && (16..=19).contains(&len);
    visa || mc || amex || discover || jcb || diners || maestro || mir
}

/// Group layouts people and systems write cards in: one group, 4-6-5,
/// 4-6-4, or groups of 4 with a last one of 1 to 4 (lengths of the digit
/// groups of `span`).
fn card_layout_ok(span: &[u8]) -> bool {
    let (mut n, mut head, mut fours, mut last) = (0, [0usize; 3], true, 0);
    for len in span.split(|b| !b.is_ascii_digit()).map(<[u8]>::len) {
        // Every group before the last is 4 long.
        fours &= n == 0 || last == 4;
        if let Some(h) = head.get_mut(n) {
            *h = len;
        }
        last = len;
        n += 1;
    }
    n == 1
        || (n == 3 && matches!(head, [4, 6, 5] | [4, 6, 4]))
        || (fours && (1..=4).contains(&last))
}

/// Most runs of digits a card's match has (one digit each).
const CARD_GROUPS: usize = 19;

/// The card check. A match of the card pattern (digits, one blank or dash
/// between two of them, 13 to 19 digits) is read once: its runs of
/// digits, the separators and the digit values; then the ends
/// [`card_general`] tries are tried from those, longest first, with the
/// same tests (a run end before a dash is part of a dashed token; the
/// digit count; blanks and dashes mixed; the layout; issuer and Luhn on
/// the digits up to there). Any other span goes to [`card_general`]; a
/// unit test compares the two on random spans.
pub(super) fn card(hay: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    let span = hay.get(start..end)?;
    let mut d = Digits {
        buf: [0; Digits::CAP],
        len: 0,
    };
    // Per run: its length and the separator after it.
    let mut runs = [(0u8, 0u8); CARD_GROUPS];
    let mut k = 0;
    let mut prev_digit = false;
    for &b in span {
        let digit = b.is_ascii_digit();
        if digit {
            match d.buf.get_mut(d.len) {
                Some(slot) => *slot = b - b'0',
                None => return card_general(hay, start, end),
            }
            d.len += 1;
            match runs.get_mut(k) {
                Some(run) => run.0 += 1,
                None => return card_general(hay, start, end),
            }
        } else if prev_digit && matches!(b, b' ' | b'-') {
            if let Some(run) = runs.get_mut(k) {
                run.1 = b;
            }
            k += 1;
        } else {
            return card_general(hay, start, end);
        }
        prev_digit = digit;
    }
    if !prev_digit || !(13..=19).contains(&d.len) {
        return card_general(hay, start, end);
    }
    if card_in_token(hay, start) {
        return None;
    }
    let runs = runs.get(..=k)?;
    // Digits and bytes up to the end of each run.
    let (mut digits, mut bytes) = (d.len, span.len());
    for j in (0..runs.len()).rev() {
        let last = j + 1 == runs.len();
        let (len, sep) = *runs.get(j)?;
        let here = (digits, bytes);
        let len = usize::from(len);
        (digits, bytes) = (digits - len, bytes.saturating_sub(len + 1));
        let e = start + here.1;
        let dashed_on = match last {
            // A digit follows the separator.
            false => sep == b'-',
            true => {
                hay.get(e) == Some(&b'-') && hay.get(e + 1).is_some_and(u8::is_ascii_alphanumeric)
            }
        };
        if dashed_on || (last && dotted_after(hay, e)) || !(13..=19).contains(&here.0) {
            continue;
        }
        let head = runs.get(..=j)?;
        let seps = head.get(..j)?;
        if seps.iter().any(|r| r.1 == b' ') && seps.iter().any(|r| r.1 == b'-') {
            continue;
        }
        let d = d.get(..here.0)?;
        if card_runs_ok(head) && card_issuer_ok(d) && luhn(d) {
            return Some((start, e));
        }
    }
    None
}

/// [`card_layout_ok`] on the lengths of the runs.
fn card_runs_ok(runs: &[(u8, u8)]) -> bool {
    match runs {
        [_] | [(4, _), (6, _), (5 | 4, _)] => true,
        [head @ .., (last, _)] => (1..=4).contains(last) && head.iter().all(|r| r.0 == 4),
        [] => false,
    }
}

/// The card check on any span (see [`card`]).
fn card_general(hay: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    if card_in_token(hay, start) {
        return None;
    }
    for e in group_ends(hay, start, end) {
        let span = hay.get(start..e)?;
        let dashed_on =
            hay.get(e) == Some(&b'-') && hay.get(e + 1).is_some_and(u8::is_ascii_alphanumeric);
        if dashed_on || dotted_after(hay, e) {
            continue;
        }
        // The digit count first: it rules out most ends.
        let Some(d) = digits(span).filter(|d| (13..=19).contains(&d.len())) else {
            continue;
        };
        if span.contains(&b' ') && span.contains(&b'-') {
            continue;
        }
        if card_layout_ok(span) && card_issuer_ok(&d) && luhn(&d) {
            return Some((start, e));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::text;
    use proptest::prelude::Strategy;
    #[test]
    fn card_examples() {
        let check = |text: &str, expect: Option<&str>| {
            let hay = text.as_bytes();
            let (s, e) = (5, hay.len() - 4);
            let found = card(hay, s, e).map(|(s, e)| &text[s..e]);
            assert_eq!(found, expect, "{text}");
            assert_eq!(card(hay, s, e), card_general(hay, s, e), "{text}");
        };
        check("card 4111 1111 1111 1111 ok.", Some("4111 1111 1111 1111"));
        check("card 4111-1111-1111-1111 ok.", Some("4111-1111-1111-1111"));
        check("card 4111111111111111 ok.", Some("4111111111111111"));
        check("card 3782 822463 10005 ok.", Some("3782 822463 10005"));
        check(
            "card 4111 1111 1111 1111 2 ok.",
            Some("4111 1111 1111 1111"),
        );
        check("card 4111 1111-1111 1111 ok.", None);
        check("card 1699079125023 ok.", None);
        check("card 4111111111111111.5 ok.", None);
        check("card 4111111111111111-a ok.", None);
    }

    #[test]
    fn card_layouts() {
        for ok in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "3782 822463 10005",
            "4111-1111-1111-1",
        ] {
            assert!(card_layout_ok(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "41111 11111 111111",
            "4111 111111 11111 1",
            "411 1111 1111 1111",
        ] {
            assert!(!card_layout_ok(bad.as_bytes()), "{bad}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// The card check reads a pattern match once; every span of random
        /// text and of valid numbers with random separators gets what the
        /// general check gives.
        #[test]
        fn card_is_general(
            t in text(b"0123456789  --.x:", 44),
            number in card_text(),
        ) {
            for hay in [t, number] {
                for s in 0..hay.len() {
                    for e in s + 1..=hay.len() {
                        proptest::prop_assert_eq!(
                            card(&hay, s, e),
                            card_general(&hay, s, e),
                            "{:?} {} {}", String::from_utf8_lossy(&hay), s, e
                        );
                    }
                }
            }
        }
    }

    /// Valid card numbers (and a few that fail Luhn), their digits split by
    /// random blanks and dashes, with digits or separators around them.
    fn card_text() -> impl Strategy<Value = Vec<u8>> {
        let numbers = proptest::sample::select(vec![
            "4111111111111111",
            "4222222222222",
            "378282246310005",
            "5555555555554444",
            "6011111111111117",
            "3530111333300000",
            "4111111111111111113",
            "4111111111111112",
            "36227206271667",
        ]);
        // 0: no separator; in groups of four, only the first counts.
        let seps = proptest::collection::vec(proptest::sample::select(b"\0\0\0 -".as_slice()), 20);
        let around = || text(b"01234 -.x", 6);
        let fours = proptest::bool::ANY;
        (numbers, seps, fours, around(), around()).prop_map(|(n, seps, fours, before, after)| {
            let mut out = before;
            for (i, d) in n.bytes().enumerate() {
                let sep = match fours {
                    true if i % 4 == 0 => seps[0],
                    true => 0,
                    false => seps[i],
                };
                if i > 0 && sep != 0 {
                    out.push(sep);
                }
                out.push(d);
            }
            out.extend(after);
            out
        })
    }
}
