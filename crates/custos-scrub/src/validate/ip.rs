//! IP addresses: IPv4 dotted quads (not versions such as `version
//! 1.2.3.4`, nor pieces of longer dotted numbers) and IPv6 in `std`'s
//! grammar, written out without allocation; private, loopback and
//! link-local addresses are kept when the scrubber is told so.

use std::net::Ipv6Addr;

use super::{dotted_before, dotted_neighbour, is_word, Opts};

/// Words that, right before a dotted quad, make it a version number.
const VERSION_WORDS: [&[u8]; 8] = [
    b"version",
    b"ver",
    b"v",
    b"release",
    b"build",
    b"firmware",
    b"rev",
    b"revision",
];

pub(super) fn ipv4(hay: &[u8], start: usize, end: usize, opts: Opts) -> bool {
    let dotted_on = hay.get(end) == Some(&b'.') && hay.get(end + 1).is_some_and(u8::is_ascii_digit);
    if dotted_before(hay, start) || dotted_on {
        return false;
    }
    let Some(span) = hay.get(start..end) else {
        return false;
    };
    let Some(octets) = dotted_quad(span) else {
        return false;
    };
    if preceded_by_version_word(hay, start) {
        return false;
    }
    if opts.keep_private_ips {
        let ip = std::net::Ipv4Addr::from(octets);
        let [a, b, ..] = octets;
        let cgnat = a == 100 && (64..128).contains(&b);
        if ip.is_private()
            || ip.is_loopback()
            || ip.is_link_local()
            || ip.is_unspecified()
            || ip.is_broadcast()
            || cgnat
        {
            return false;
        }
    }
    true
}

/// The four octets of `span`, four `.`-separated numbers of 1–3 digits
/// without leading zeros, each at most 255. Each number is read off a
/// slice pattern of its up to four bytes (digits and the `.` after it),
/// no loop over the bytes: this runs for every dotted quad the automaton
/// finds. Bytes other than `.` count as digits (`b - b'0'`, wrapping), as
/// they did in the loop this replaced; the IPv4 pattern only gives digits.
fn dotted_quad(span: &[u8]) -> Option<[u8; 4]> {
    let mut octets = [0u8; 4];
    let mut rest = span;
    for (i, slot) in octets.iter_mut().enumerate() {
        let last = i == 3;
        let digit = |b: &u8| *b != b'.';
        let value = |b: &u8| u32::from(b.wrapping_sub(b'0'));
        let (v, len) = match rest {
            [x, y, z, ..] if digit(x) && digit(y) && digit(z) => {
                (value(x) * 100 + value(y) * 10 + value(z), 3)
            }
            [x, y, ..] if digit(x) && digit(y) => (value(x) * 10 + value(y), 2),
            [x, ..] if digit(x) => (value(x), 1),
            _ => return None,
        };
        // A leading zero only in a number of one digit.
        if len > 1 && rest.first() == Some(&b'0') {
            return None;
        }
        *slot = u8::try_from(v).ok()?;
        rest = match (last, rest.get(len..)?) {
            (true, []) => &[],
            (false, [b'.', tail @ ..]) => tail,
            _ => return None,
        };
    }
    Some(octets)
}

/// Heuristic, documented in the crate docs: `version 1.2.3.4`, `v: 1.2.3.4`,
/// `build=10.0.19041.1` are versions, not addresses.
fn preceded_by_version_word(hay: &[u8], start: usize) -> bool {
    let from = start.saturating_sub(24);
    let Some(before) = hay.get(from..start) else {
        return false;
    };
    let trimmed = trim_end_by(before, |b| matches!(b, b' ' | b'\t' | b':' | b'=' | b'"'));
    // No letter right before: no word (the common case: a line start,
    // `"`, `[`, `=` or `- ` before the address).
    if !trimmed.last().is_some_and(u8::is_ascii_alphabetic) {
        return false;
    }
    let word_start = trimmed
        .iter()
        .rposition(|b| !b.is_ascii_alphabetic())
        .map_or(0, |i| i + 1);
    let word = trimmed.get(word_start..).unwrap_or_default();
    VERSION_WORDS.iter().any(|v| v.eq_ignore_ascii_case(word))
}

fn trim_end_by(s: &[u8], f: impl Fn(u8) -> bool) -> &[u8] {
    let keep = s.iter().rposition(|&b| !f(b)).map_or(0, |i| i + 1);
    s.get(..keep).unwrap_or_default()
}

pub(super) fn ipv6(hay: &[u8], start: usize, end: usize, opts: Opts) -> bool {
    let before = start.checked_sub(1).and_then(|i| hay.get(i));
    let after = hay.get(end);
    if is_word(before) || matches!(before, Some(b':' | b'.')) {
        return false;
    }
    if is_word(after) || matches!(after, Some(b':')) || dotted_neighbour(hay, start, end) {
        return false;
    }
    let Some(text) = hay.get(start..end) else {
        return false;
    };
    let Some(ip) = parse_ipv6(text).map(Ipv6Addr::from) else {
        return false;
    };
    // `a::b` is a path more often than an address.
    let groups = text.split(|&b| b == b':').filter(|g| !g.is_empty()).count();
    let hex_digits = text.iter().filter(|b| b.is_ascii_hexdigit()).count();
    if ip.is_unspecified() || groups < 2 || hex_digits < 4 {
        return false;
    }
    if opts.keep_private_ips {
        let first = ip.segments().first().copied().unwrap_or(0);
        let unique_local = (first & 0xfe00) == 0xfc00;
        let link_local = (first & 0xffc0) == 0xfe80;
        if ip.is_loopback() || unique_local || link_local {
            return false;
        }
    }
    true
}

/// `Ipv6Addr::from_str` on bytes, the same grammar as `std`'s parser
/// (groups of 1–4 hex digits, one `::`, a dotted quad in the last two
/// groups), written out: `std`'s generic parser took ≈2,900 instructions
/// per candidate. A unit test compares the two on random strings.
fn parse_ipv6(text: &[u8]) -> Option<[u16; 8]> {
    let mut p = Ipv6Parser { text, at: 0 };
    let mut head = [0u16; 8];
    let (head_len, head_ipv4) = p.groups(&mut head);
    if head_len < 8 {
        // A dotted quad only at the end, and a shortened form needs `::`.
        if head_ipv4 || text.get(p.at..p.at + 2) != Some(b"::") {
            return None;
        }
        p.at += 2;
        let mut tail = [0u16; 7];
        let limit = 7 - head_len;
        let (tail_len, _) = p.groups(tail.get_mut(..limit)?);
        head.get_mut(8 - tail_len..)?
            .copy_from_slice(tail.get(..tail_len)?);
    }
    (p.at == text.len()).then_some(head)
}

/// Cursor of [`parse_ipv6`].
struct Ipv6Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl Ipv6Parser<'_> {
    /// Colon-separated groups into `out` (a dotted quad fills two, and
    /// ends the run); stops before the first that does not parse, with its
    /// colon. Returns how many were read and whether a dotted quad was.
    fn groups(&mut self, out: &mut [u16]) -> (usize, bool) {
        let limit = out.len();
        for i in 0..limit {
            let from = self.at;
            if i > 0 && !self.eat(b':') {
                return (i, false);
            }
            let after_colon = self.at;
            if i + 1 < limit {
                if let Some([a, b, c, d]) = self.ipv4() {
                    if let Some(pair) = out.get_mut(i..i + 2) {
                        pair.copy_from_slice(&[
                            u16::from_be_bytes([a, b]),
                            u16::from_be_bytes([c, d]),
                        ]);
                    }
                    return (i + 2, true);
                }
                self.at = after_colon;
            }
            match self.number(16, 4, true) {
                Some(g) => {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = u16::try_from(g).unwrap_or(0);
                    }
                }
                None => {
                    self.at = from;
                    return (i, false);
                }
            }
        }
        (limit, false)
    }

    /// A dotted quad (decimal, 1–3 digits, no leading zero, at most 255).
    fn ipv4(&mut self) -> Option<[u8; 4]> {
        let mut octets = [0u8; 4];
        for (i, slot) in octets.iter_mut().enumerate() {
            if i > 0 && !self.eat(b'.') {
                return None;
            }
            *slot = u8::try_from(self.number(10, 3, false)?).ok()?;
        }
        Some(octets)
    }

    /// Up to `max` digits of `radix` (more fail), at least one; with
    /// `zero_prefix` false, no leading zero before other digits. On
    /// failure the cursor may have moved: callers reset it.
    fn number(&mut self, radix: u32, max: usize, zero_prefix: bool) -> Option<u32> {
        let leading_zero = self.text.get(self.at) == Some(&b'0');
        let (mut value, mut n) = (0u32, 0);
        while let Some(d) = self
            .text
            .get(self.at)
            .and_then(|&b| char::from(b).to_digit(radix))
        {
            self.at += 1;
            value = value * radix + d;
            n += 1;
            if n > max {
                return None;
            }
        }
        let ok = n > 0 && (zero_prefix || !leading_zero || n == 1);
        // Decimal octets above 255 fail in `ipv4`.
        ok.then_some(value)
    }

    /// Consumes `b` if it is next.
    fn eat(&mut self, b: u8) -> bool {
        let here = self.text.get(self.at) == Some(&b);
        self.at += usize::from(here);
        here
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::text;
    /// The octets as the IPv4 check parsed them before [`dotted_quad`].
    fn dotted_quad_reference(span: &[u8]) -> Option<[u8; 4]> {
        let mut octets = [0u8; 4];
        let mut n = 0;
        for part in span.split(|&b| b == b'.') {
            if part.is_empty() || part.len() > 3 || (part.len() > 1 && part.first() == Some(&b'0'))
            {
                return None;
            }
            let v = part
                .iter()
                .fold(0u32, |acc, &b| acc * 10 + u32::from(b.wrapping_sub(b'0')));
            *octets.get_mut(n)? = u8::try_from(v).ok()?;
            n += 1;
        }
        (n == 4).then_some(octets)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        #[test]
        fn ipv6_parser_is_std(t in text(b"0123456789abcdefABCDEF:.:::x", 45)) {
            let expect = std::str::from_utf8(&t)
                .ok()
                .and_then(|s| s.parse::<Ipv6Addr>().ok())
                .map(|ip| ip.segments());
            proptest::prop_assert_eq!(parse_ipv6(&t), expect);
        }

        #[test]
        fn dotted_quad_is_reference(t in text(b"0123456789..x", 18)) {
            proptest::prop_assert_eq!(dotted_quad(&t), dotted_quad_reference(&t));
        }
    }

    #[test]
    fn ipv6_parser_examples() {
        for t in [
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:1.2.3.4",
            "::ffff:1.2.3.4",
            "1::2:3:4:5:6:7",
            "1:2:3:4:5:6:7::",
            "1:2:3:4:5:6:7:8::",
            "::1.2.3.4",
            "1.2.3.4::",
            "fe80::1%1",
            "12345::",
            "1:::2",
            "2001:db8::8a2e:370:7334",
            "1:2:3:4:5:6:7:1.2.3.4",
            "::01.2.3.4",
            "::256.1.1.1",
            "1:2:3:4:5::1.2.3.4",
            "a:b:c:d:e:f:1.2.3.4",
        ] {
            let expect = t.parse::<Ipv6Addr>().ok().map(|ip| ip.segments());
            assert_eq!(parse_ipv6(t.as_bytes()), expect, "{t}");
        }
    }
}
