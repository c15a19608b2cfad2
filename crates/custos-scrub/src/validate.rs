//! Validators: a candidate from the automaton becomes a finding only if the
//! checksum or structural rules of its kind hold. This is where precision
//! comes from (a 13-digit millisecond timestamp has no card issuer prefix; a
//! version string is not an address).
//!
//! Every check gets the whole haystack and the candidate span, so it can look
//! at the bytes around it, and returns the (possibly narrowed) span to
//! replace. Checks only index through `.get()`: they run on arbitrary bytes.

use std::net::Ipv6Addr;

use base64::Engine as _;

/// Which validation a candidate pattern needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    Email,
    Ipv4,
    Ipv6,
    PhoneIntl,
    PhoneNational,
    PhoneNanp,
    Card,
    Iban,
    NlBsn,
    UkNino,
    UsSsn,
    DeTaxid,
    FrNir,
    EsDni,
    EsNie,
    ItCf,
    Jwt,
    Bearer,
    Basic,
    UrlCredentials,
    AwsKeyId,
    AwsSecret,
    Pem,
    /// A custom detector with no validator: the pattern is the rule.
    None,
    /// A custom detector whose digits must pass Luhn.
    Luhn,
    /// A custom detector whose alphanumerics must pass ISO 7064 mod 97-10.
    Mod97,
}

/// Options that change what validators accept.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Opts {
    /// Leave private, loopback and link-local addresses alone.
    pub(crate) keep_private_ips: bool,
    /// End of the previous finding in this haystack (0 if none): text up to
    /// there will be replaced, so context checks must not rely on it.
    pub(crate) prev_end: usize,
}

/// Runs `check` on `hay[start..end]`; `Some` holds the span to replace.
pub(crate) fn run(
    check: Check,
    hay: &[u8],
    start: usize,
    end: usize,
    opts: Opts,
) -> Option<(usize, usize)> {
    let span = hay.get(start..end)?;
    let whole = Some((start, end));
    let ok = |b: bool| if b { whole } else { None };
    // Digits glued to a mask (`*******07`, `**** 1111`) are the kept tail of
    // a value already masked, not a new value: finding them again would make
    // a second pass change the output.
    if span.first().is_some_and(u8::is_ascii_digit) && glued_to_mask(hay, start) {
        return None;
    }
    match check {
        Check::Email => ok(email(span)),
        Check::Ipv4 => ok(ipv4(hay, start, end, opts)),
        Check::Ipv6 => ok(ipv6(hay, start, end, opts)),
        Check::PhoneIntl => phone_intl(hay, start, end),
        Check::PhoneNational => phone_national(hay, start, end, opts.prev_end),
        Check::PhoneNanp => ok(!dotted_neighbour(hay, start, end)
            && !dashed_before(hay, start)
            && !dashed_after(hay, end)
            && !inside_digit_run(hay, start, opts.prev_end)
            && phone_nanp(span)),
        Check::Card => card(hay, start, end),
        Check::Iban => iban(hay, start, end),
        Check::NlBsn => {
            ok(!dotted_neighbour(hay, start, end) && digits(span).is_some_and(|d| bsn(&d)))
        }
        Check::UkNino => ok(nino(span)),
        Check::UsSsn => {
            ok(!dotted_neighbour(hay, start, end) && digits(span).is_some_and(|d| ssn(&d)))
        }
        Check::DeTaxid => {
            ok(!dotted_neighbour(hay, start, end) && digits(span).is_some_and(|d| de_taxid(&d)))
        }
        Check::FrNir => ok(!dotted_neighbour(hay, start, end) && fr_nir(span)),
        Check::EsDni => ok(!dotted_neighbour(hay, start, end) && es_dni(span)),
        Check::EsNie => ok(es_nie(span)),
        Check::ItCf => ok(it_cf(span)),
        Check::Jwt => ok(jwt(span)),
        Check::Bearer => bearer(span).map(|(s, e)| (start + s, start + e)),
        Check::Basic => basic(span).map(|(s, e)| (start + s, start + e)),
        Check::UrlCredentials => url_credentials(span).map(|(s, e)| (start + s, start + e)),
        Check::AwsKeyId | Check::Pem | Check::None => whole,
        Check::AwsSecret => Some((end.saturating_sub(40).max(start), end)),
        Check::Luhn => ok(luhn_rev(
            span.iter()
                .rev()
                .filter(|b| b.is_ascii_digit())
                .map(|b| b - b'0'),
        )),
        Check::Mod97 => {
            ok(mod97_alnum(span.iter().copied().filter(u8::is_ascii_alphanumeric)) == Some(1))
        }
    }
}

/// The fewest digits a span accepted by `check` has, for the checks of
/// the built-in digit-group patterns (0 for the others): four octets;
/// `+` and 8 digits or 8 and a letter; a BSN, SSN or national phone
/// number's 9; NANP's 10; the tax id's 11; 13 for cards and the NIR (15
/// characters, `2A`/`2B` at most one pair). Group retries skip patterns
/// whose run has fewer.
pub(crate) fn min_digits(check: Check) -> usize {
    match check {
        Check::Ipv4 => 4,
        Check::PhoneIntl | Check::EsDni => 8,
        Check::PhoneNational | Check::NlBsn | Check::UsSsn => 9,
        Check::PhoneNanp => 10,
        Check::DeTaxid => 11,
        Check::Card | Check::FrNir => MIN_DIGITS_MAX,
        _ => 0,
    }
}

/// The largest [`min_digits`].
pub(crate) const MIN_DIGITS_MAX: usize = 13;

/// The ASCII digits of `span` as values 0–9, or `None` if there are more
/// than [`Digits::CAP`] (more than any built-in digit-group value has).
fn digits(span: &[u8]) -> Option<Digits> {
    Digits::collect(span.iter().copied())
}

/// Digit values kept on the stack: validators run once per candidate, and
/// an allocation per candidate cost more than most checks.
struct Digits {
    buf: [u8; Digits::CAP],
    len: usize,
}

impl Digits {
    /// Cards have at most 19 digits, international phone numbers 17 with
    /// their `00`.
    const CAP: usize = 32;

    /// The digits among `bytes` (others are skipped); `None` past `CAP`.
    fn collect(bytes: impl Iterator<Item = u8>) -> Option<Self> {
        let mut d = Self {
            buf: [0; Self::CAP],
            len: 0,
        };
        for b in bytes.filter(u8::is_ascii_digit) {
            *d.buf.get_mut(d.len)? = b - b'0';
            d.len += 1;
        }
        Some(d)
    }
}

impl std::ops::Deref for Digits {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// Going back from `start` over separators and at most 4 digits (the tail
/// a mask keeps, `***********0 2`) reaches the mask character.
fn glued_to_mask(hay: &[u8], start: usize) -> bool {
    let before = hay.get(..start).unwrap_or_default();
    let mut digits = 0;
    for &b in before.iter().rev().take(12) {
        match b {
            b'*' => return true,
            b'0'..=b'9' if digits < 4 => digits += 1,
            b' ' | b'-' | b'.' => {}
            _ => return false,
        }
    }
    false
}

fn is_word(b: Option<&u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// True when the span is glued to a longer dotted number (`1.2.3.4.5`,
/// `3.141592653`), which makes it a version or a decimal, not an identifier.
fn dotted_neighbour(hay: &[u8], start: usize, end: usize) -> bool {
    dotted_before(hay, start) || dotted_after(hay, end)
}

/// A card candidate at `start` that continues a version or decimal
/// (`1.2345…`) or a longer dash-separated token (UUID-like): no card.
fn card_in_token(hay: &[u8], start: usize) -> bool {
    let before = start.checked_sub(1).and_then(|i| hay.get(i));
    let before2 = start.checked_sub(2).and_then(|i| hay.get(i));
    dotted_before(hay, start)
        || (before == Some(&b'-') && before2.is_some_and(u8::is_ascii_alphanumeric))
}

fn dotted_before(hay: &[u8], start: usize) -> bool {
    let before = start.checked_sub(1).and_then(|i| hay.get(i));
    let before2 = start.checked_sub(2).and_then(|i| hay.get(i));
    before == Some(&b'.') && before2.is_some_and(u8::is_ascii_digit)
}

/// Followed by `.digit` (a decimal or version) or `:hex` (an IPv6 address
/// or a time): the number is part of something larger.
fn dotted_after(hay: &[u8], end: usize) -> bool {
    match hay.get(end) {
        Some(b'.') => hay.get(end + 1).is_some_and(u8::is_ascii_digit),
        Some(b':') => hay.get(end + 1).is_some_and(u8::is_ascii_hexdigit),
        _ => false,
    }
}

/// True when the span continues a blank- or dash-separated run of short
/// numbers (`2 55 08 14 …`): a phone number does not start in the middle of
/// one. Only tokens of 1–4 digits count, so the decision never depends on a
/// value that a first pass could replace (idempotence).
fn inside_digit_run(hay: &[u8], start: usize, prev_end: usize) -> bool {
    let Some(before) = start.checked_sub(1).and_then(|i| hay.get(..i)) else {
        return false;
    };
    if !matches!(hay.get(before.len()), Some(b' ' | b'-' | b'.' | b'/')) {
        return false;
    }
    let token_len = before
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let token_start = before.len() - token_len;
    let preceded_by_word = token_start
        .checked_sub(1)
        .and_then(|i| hay.get(i))
        .is_some_and(|b| !matches!(b, b' ' | b'-' | b'/' | b'\t' | b'(' | b'"'));
    (1..=4).contains(&token_len) && !preceded_by_word && token_start >= prev_end
}

/// Luhn over digit values.
pub(crate) fn luhn(d: &[u8]) -> bool {
    luhn_rev(d.iter().rev().copied())
}

/// Luhn over digit values given from the last one.
fn luhn_rev(d: impl Iterator<Item = u8>) -> bool {
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
fn alnum_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'a'..=b'z' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// The remainder after appending the (one- or two-digit) value `v`.
fn mod97_step(rem: u32, v: u8) -> u32 {
    let v = u32::from(v);
    let shift = if v >= 10 { 100 } else { 10 };
    (rem * shift + v) % 97
}

// ---------------------------------------------------------------- email

/// Top-level labels that are really file extensions (`logo@2x.png`).
const FILE_TLDS: [&[u8]; 14] = [
    b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"ico", b"css", b"js", b"map", b"json",
    b"txt", b"log", b"ts",
];

/// [`FILE_TLDS`] as words: the bytes little-endian, zero-padded, and the
/// length above them.
#[allow(clippy::indexing_slicing)] // Evaluated at compile time: a bad index fails the build.
const FILE_TLD_WORDS: [u64; FILE_TLDS.len()] = {
    let mut words = [0u64; FILE_TLDS.len()];
    let mut i = 0;
    while i < FILE_TLDS.len() {
        let tld = FILE_TLDS[i];
        let mut bytes = [0u8; 4];
        let mut j = 0;
        while j < tld.len() {
            bytes[j] = tld[j];
            j += 1;
        }
        words[i] = u32::from_le_bytes(bytes) as u64 | (tld.len() as u64) << 32;
        i += 1;
    }
    words
};

/// Whether `tld` is one of [`FILE_TLDS`], in any case: its lower-cased
/// word among [`FILE_TLD_WORDS`] (a dozen compares of a register instead
/// of a dozen slice compares; every candidate address runs this).
fn file_tld(tld: &[u8]) -> bool {
    let mut bytes = [0u8; 4];
    if tld.len() > bytes.len() {
        return false;
    }
    for (slot, b) in bytes.iter_mut().zip(tld) {
        *slot = b.to_ascii_lowercase();
    }
    let word = u64::from(u32::from_le_bytes(bytes)) | (tld.len() as u64) << 32;
    FILE_TLD_WORDS.contains(&word)
}

fn email(span: &[u8]) -> bool {
    let Some(at) = memchr::memrchr(b'@', span) else {
        return false;
    };
    let (Some(local), Some(domain)) = (span.get(..at), span.get(at + 1..)) else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || domain.len() > 253 {
        return false;
    }
    // ASCII (most addresses) is UTF-8; the word-wise test is cheaper.
    if !span.is_ascii() && std::str::from_utf8(span).is_err() {
        return false;
    }
    let quoted = local.first() == Some(&b'"');
    if !quoted
        && (local.first() == Some(&b'.')
            || local.last() == Some(&b'.')
            || local.windows(2).any(|w| w == b".."))
    {
        return false;
    }
    if quoted && !local.iter().any(u8::is_ascii_alphanumeric) {
        return false;
    }
    let mut labels = domain.split(|&b| b == b'.').peekable();
    let mut tld: &[u8] = &[];
    let mut count = 0;
    while let Some(label) = labels.next() {
        count += 1;
        if label.is_empty()
            || label.len() > 63
            || label.first() == Some(&b'-')
            || label.last() == Some(&b'-')
        {
            return false;
        }
        if labels.peek().is_none() {
            tld = label;
        }
    }
    if count < 2 || tld.len() < 2 {
        return false;
    }
    let ascii_tld = tld.iter().all(u8::is_ascii);
    if ascii_tld {
        let alpha = tld.iter().all(u8::is_ascii_alphabetic);
        let puny = tld
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"xn--"));
        (alpha || puny) && !file_tld(tld)
    } else {
        true
    }
}

// ------------------------------------------------------------------- ip

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

fn ipv4(hay: &[u8], start: usize, end: usize, opts: Opts) -> bool {
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

fn ipv6(hay: &[u8], start: usize, end: usize, opts: Opts) -> bool {
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

// ---------------------------------------------------------------- phone

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
fn group_ends(hay: &[u8], start: usize, end: usize) -> impl Iterator<Item = usize> + '_ {
    (start..end).rev().filter_map(move |i| {
        let here = hay.get(i).is_some_and(u8::is_ascii_digit);
        let next = hay.get(i + 1).is_some_and(u8::is_ascii_digit);
        // Keep a closing parenthesis with its group.
        let paren = hay.get(i + 1) == Some(&b')') && i + 1 < end;
        (here && (!next || i + 1 == end)).then_some(if paren { i + 2 } else { i + 1 })
    })
}

fn phone_intl(hay: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
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
fn dashed_before(hay: &[u8], start: usize) -> bool {
    let at = |back: usize| start.checked_sub(back).and_then(|i| hay.get(i));
    at(1) == Some(&b'-') && at(2).is_some_and(u8::is_ascii_alphanumeric)
}

/// The span is followed by `-` and more of the same token.
fn dashed_after(hay: &[u8], end: usize) -> bool {
    hay.get(end) == Some(&b'-') && hay.get(end + 1).is_some_and(u8::is_ascii_alphanumeric)
}

fn phone_national(hay: &[u8], start: usize, end: usize, prev_end: usize) -> Option<(usize, usize)> {
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

fn phone_nanp(span: &[u8]) -> bool {
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

// ----------------------------------------------------------------- card

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
fn card(hay: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
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

// ----------------------------------------------------------------- iban

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

fn iban(hay: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
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

// ---------------------------------------------------------- national ids

fn bsn(d: &[u8]) -> bool {
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

fn nino(span: &[u8]) -> bool {
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

fn ssn(d: &[u8]) -> bool {
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

fn de_taxid(d: &[u8]) -> bool {
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

fn fr_nir(span: &[u8]) -> bool {
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

fn es_dni(span: &[u8]) -> bool {
    let Some(d) = digits(span).filter(|d| d.len() == 8) else {
        return false;
    };
    let n = d.iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    dni_letter_ok(n, span.last())
}

fn es_nie(span: &[u8]) -> bool {
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

fn it_cf(span: &[u8]) -> bool {
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

// -------------------------------------------------------------- secrets

/// Base64url as JWTs use it (padding optional).
const JWT_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn jwt(span: &[u8]) -> bool {
    const MAX_HEADER: usize = 2048;
    let Some(header) = span.split(|&b| b == b'.').next() else {
        return false;
    };
    if header.len() > MAX_HEADER {
        return false;
    }
    let mut buf = [0u8; MAX_HEADER / 4 * 3];
    let Some(decoded) = JWT_BASE64
        .decode_slice(header, &mut buf)
        .ok()
        .and_then(|n| buf.get(..n))
    else {
        return false;
    };
    decoded.first() == Some(&b'{')
        && decoded
            .windows(5)
            .any(|w| w == b"\"alg\"" || w == b"\"typ\"")
}

/// Skips the scheme word and blanks; the token is what gets replaced.
fn token_after_word(span: &[u8]) -> Option<(usize, usize)> {
    let word_end = span.iter().position(|b| *b == b' ' || *b == b'\t')?;
    let rest = span.get(word_end..)?;
    let tok = word_end + rest.iter().position(|b| *b != b' ' && *b != b'\t')?;
    Some((tok, span.len()))
}

fn bearer(span: &[u8]) -> Option<(usize, usize)> {
    let (s, e) = token_after_word(span)?;
    let token = span.get(s..e)?;
    // "bearer instruments" is prose; tokens carry digits or symbols.
    let techy = token
        .iter()
        .any(|b| b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'='));
    let mixed =
        token.iter().any(u8::is_ascii_uppercase) && token.iter().any(u8::is_ascii_lowercase);
    (techy || (mixed && token.len() >= 16)).then_some((s, e))
}

fn basic(span: &[u8]) -> Option<(usize, usize)> {
    let (s, e) = token_after_word(span)?;
    let token = span.get(s..e)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    decoded.contains(&b':').then_some((s, e))
}

fn url_credentials(span: &[u8]) -> Option<(usize, usize)> {
    let s = memchr::memmem::find(span, b"://")? + 3;
    let e = memchr::memrchr(b'@', span)?;
    let userinfo = span.get(s..e)?;
    let colon = memchr::memchr(b':', userinfo)?;
    let (user, pass) = (userinfo.get(..colon)?, userinfo.get(colon + 1..)?);
    // `url_credentials:1a2b3c4d@` is our own pseudonym, not a password.
    if pass.is_empty() || user == b"url_credentials" {
        return None;
    }
    Some((s, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::Strategy;

    #[test]
    fn luhn_and_mod97() {
        assert!(luhn(&digits(b"4111111111111111").unwrap()));
        assert!(!luhn(&digits(b"4111111111111112").unwrap()));
        assert_eq!(
            mod97_alnum(b"3214282912345698765432161182".iter().copied()),
            Some(1)
        );
    }

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
    fn country_codes_are_sorted() {
        assert!(COUNTRIES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn iban_lengths_are_sorted() {
        assert!(IBAN_LEN.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(IBAN_LEN.iter().all(|&(_, len)| len <= IBAN_MAX));
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

    /// Strings of `alphabet` bytes, up to `max` long.
    fn text(alphabet: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(proptest::sample::select(alphabet), 0..max)
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

        #[test]
        fn file_tlds_in_any_case(t in text(b"jJsSpPnNgGtTxXlLoO.\0", 6)) {
            let expect = FILE_TLDS.iter().any(|f| f.eq_ignore_ascii_case(&t));
            proptest::prop_assert_eq!(file_tld(&t), expect);
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
