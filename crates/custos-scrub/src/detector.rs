//! The detectors: stable names, the candidate patterns fed to the combined
//! automaton, and which validator confirms each candidate.
//!
//! Patterns are byte-oriented (`(?-u)`): `\d`, `\b` and classes are ASCII,
//! so the lazy DFA never falls back to a slow engine on non-ASCII text and
//! invalid UTF-8 is just bytes. No pattern may match `\n`, so a block of
//! lines can be searched in one go.

use std::fmt;
use std::sync::Arc;

use crate::validate::Check;

/// A kind of personal data or secret the scrubber knows how to find.
///
/// The names returned by [`Detector::name`] are stable: they appear in
/// `--detect`/`--skip`, in reports and in pseudonyms (`email:7f3a9c2e`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Detector {
    /// E-mail addresses, including plus-addressing, IDNs and sane quoted local parts.
    Email,
    /// IPv4 addresses with valid octets (not version strings).
    Ipv4,
    /// IPv6 addresses, full or compressed.
    Ipv6,
    /// Phone numbers, international (+CC / 00CC, per-country length) and national.
    Phone,
    /// Payment card numbers: 13–19 digits, issuer prefix and Luhn.
    Card,
    /// IBAN: per-country length and mod-97.
    Iban,
    /// Dutch BSN (11-test).
    NlBsn,
    /// UK National Insurance number.
    UkNino,
    /// US Social Security number (valid area, group and serial).
    UsSsn,
    /// German tax identification number (Steuer-IdNr, ISO 7064 mod 11,10).
    DeTaxid,
    /// French NIR (numéro de sécurité sociale, key = 97 − n mod 97).
    FrNir,
    /// Spanish DNI and NIE (mod-23 letter).
    EsDni,
    /// Italian codice fiscale (check character).
    ItCf,
    /// JSON Web Tokens.
    Jwt,
    /// `Bearer`/`Basic` credentials in authorization headers.
    Bearer,
    /// `user:password@` in URLs.
    UrlCredentials,
    /// AWS access key ids and secret access keys.
    AwsKey,
    /// PEM private key blocks.
    PemPrivateKey,
    /// A detector defined in configuration; the name is operator-chosen.
    Custom(Arc<str>),
}

impl Detector {
    /// Every built-in detector, in report order.
    pub const BUILTIN: [Detector; 18] = [
        Detector::Email,
        Detector::Ipv4,
        Detector::Ipv6,
        Detector::Phone,
        Detector::Card,
        Detector::Iban,
        Detector::NlBsn,
        Detector::UkNino,
        Detector::UsSsn,
        Detector::DeTaxid,
        Detector::FrNir,
        Detector::EsDni,
        Detector::ItCf,
        Detector::Jwt,
        Detector::Bearer,
        Detector::UrlCredentials,
        Detector::AwsKey,
        Detector::PemPrivateKey,
    ];

    /// The stable name (`email`, `us_ssn`, or the custom name).
    pub fn name(&self) -> &str {
        match self {
            Self::Email => "email",
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
            Self::Phone => "phone",
            Self::Card => "card",
            Self::Iban => "iban",
            Self::NlBsn => "nl_bsn",
            Self::UkNino => "uk_nino",
            Self::UsSsn => "us_ssn",
            Self::DeTaxid => "de_taxid",
            Self::FrNir => "fr_nir",
            Self::EsDni => "es_dni",
            Self::ItCf => "it_cf",
            Self::Jwt => "jwt",
            Self::Bearer => "bearer",
            Self::UrlCredentials => "url_credentials",
            Self::AwsKey => "aws_key",
            Self::PemPrivateKey => "pem_private_key",
            Self::Custom(name) => name,
        }
    }

    /// The built-in detector with this name, if any.
    pub fn builtin(name: &str) -> Option<Detector> {
        Self::BUILTIN.iter().find(|d| d.name() == name).cloned()
    }

    /// Secrets are never format-masked: keeping their shape helps nobody.
    pub fn is_secret(&self) -> bool {
        matches!(
            self,
            Self::Jwt | Self::Bearer | Self::UrlCredentials | Self::AwsKey | Self::PemPrivateKey
        )
    }
}

impl fmt::Debug for Detector {
    // Only the name: custom names are configuration, never scanned data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Candidates of one group may be re-tried against the group's other
/// patterns when the first one's validator rejects them (a 13-digit run that
/// is no card may still be a phone number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    /// Starts with a digit, `+` or `(`.
    Digits,
    /// Starts with an upper-case letter.
    Upper,
    /// Never re-tried.
    Alone,
}

/// One candidate pattern of the combined automaton.
pub(crate) struct PatternSpec {
    pub(crate) detector: Detector,
    pub(crate) pattern: String,
    pub(crate) check: Check,
    pub(crate) group: Group,
}

/// What the built-in digit-group patterns look at in a run of bytes that
/// starts on a digit: the first digit, the length `n` of the run of digits
/// (counted to 20), the byte after it, and whether the run starts `00`.
pub(crate) struct DigitRun {
    first: u8,
    n: usize,
    next: Option<u8>,
    double_zero: bool,
    /// Digits (to 13) in the run of digits, blanks and dashes, counted only
    /// where a card may go on after a separator (`n < 13`).
    card_digits: usize,
}

impl DigitRun {
    /// The features of `run` (`hay[s..]`, `hay[s]` a digit).
    pub(crate) fn new(run: &[u8]) -> Self {
        let mut n = 0;
        while n < 20 && run.get(n).is_some_and(u8::is_ascii_digit) {
            n += 1;
        }
        let next = run.get(n).copied();
        let card_digits = match n < 13 && matches!(next, Some(b' ' | b'-')) {
            true => run
                .iter()
                .take_while(|b| b.is_ascii_digit() || matches!(b, b' ' | b'-'))
                .filter(|b| b.is_ascii_digit())
                .take(13)
                .count(),
            false => 0,
        };
        Self {
            first: run.first().copied().unwrap_or(0),
            n,
            next,
            double_zero: run.starts_with(b"00"),
            card_digits,
        }
    }

    /// Whether the built-in digit-group pattern checked by `check` may
    /// match here, read off the patterns below: where separators and `\b`
    /// may come, the run of digits must end (a NIR after 1, 3, 5, 7, 10 or
    /// 13 digits before a blank, after 6 before `2A`'s letter, or after all
    /// 15; a tax id after 2, 5 or 8 before a blank, or after 11; a BSN after
    /// 4 before `.`, or after 9; …), and a card needs 13 digits in its run
    /// of digits, blanks and dashes. Group retries skip the patterns that
    /// cannot match instead of walking them: a 13-digit timestamp that is
    /// no card is none of the others. True for the other checks. Unit tests
    /// check it against the patterns.
    pub(crate) fn fits(&self, check: Check) -> bool {
        let Self { first, n, next, .. } = *self;
        let blank = next == Some(b' ');
        match check {
            Check::EsDni => n == 8 && matches!(next, Some(b'-' | b'A'..=b'Z')),
            Check::FrNir => {
                matches!(first, b'1' | b'2')
                    && (n == 15
                        || (blank && matches!(n, 1 | 3 | 5 | 7 | 10 | 13))
                        || (n == 6 && matches!(next, Some(b'A' | b'B' | b'a' | b'b'))))
            }
            Check::UsSsn => n == 3 && matches!(next, Some(b'-' | b' ')),
            Check::NlBsn => n == 9 || (n == 4 && next == Some(b'.')),
            Check::DeTaxid => first != b'0' && (n == 11 || (blank && matches!(n, 2 | 5 | 8))),
            Check::Ipv4 => (1..=3).contains(&n) && next == Some(b'.'),
            Check::Card => first != b'0' && n <= 19 && (n >= 13 || self.card_digits >= 13),
            // `00` and a digit.
            Check::PhoneIntl => n >= 3 && self.double_zero,
            Check::PhoneNational => n >= 2 && first == b'0',
            // Area code alone, or glued to the exchange.
            Check::PhoneNanp => {
                (b'2'..=b'9').contains(&first)
                    && ((n == 3 && matches!(next, Some(b')' | b' ' | b'.' | b'-')))
                        || (n == 6 && matches!(next, Some(b' ' | b'.' | b'-'))))
            }
            _ => true,
        }
    }
}

/// The end of the IPv4 pattern's match (`\b(?:\d{1,3}\.){3}\d{1,3}\b`)
/// anchored at `hay[p]`, a digit: runs of 1–3 digits, each of the first
/// three followed by `.`, the last by a non-word byte or the end (a longer
/// or shorter run never lets `.` or `\b` follow, so backtracking finds
/// nothing else). `None` also where the start has no `\b`.
pub(crate) fn dotted_quad_end(hay: &[u8], p: usize) -> Option<usize> {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    if p.checked_sub(1).and_then(|i| hay.get(i)).is_some_and(word) {
        return None;
    }
    let mut rest = hay.get(p..)?;
    for part in 0..4 {
        let after = rest.get(short_run(rest)..)?;
        match (part, after.first()) {
            (_, Some(b)) if b.is_ascii_digit() => return None,
            (0..=2, Some(b'.')) if after.len() < rest.len() => rest = after.get(1..)?,
            (3, next) if after.len() < rest.len() && !next.is_some_and(word) => {
                return Some(hay.len() - after.len());
            }
            _ => return None,
        }
    }
    None
}

/// The end of the built-in e-mail pattern's match anchored at `hay[p]`,
/// read off the bytes, where `hay[p..at]` are local-part bytes
/// (`[A-Za-z0-9._%+\-\x80-\xFF]`, no `@`) and `hay[at]` is `@`, as the
/// e-mail anchor marks them: the unquoted local part is that run unless
/// it starts with `.` (then `Some(None)`: no match), then
/// [`email_domain_end`]. `None` (the walk decides) where `hay[p]` is no
/// local-part byte (the `"` of a quoted one).
pub(crate) fn email_end(hay: &[u8], p: usize, at: usize) -> Option<Option<usize>> {
    match hay.get(p) {
        Some(b'.') => Some(None),
        Some(&b) if domain_class(b) & D_LOCAL != 0 => Some(email_domain_end(hay, at + 1)),
        _ => None,
    }
}

/// Bits of [`DOMAIN_CLASSES`]: e-mail local-part byte, …
pub(crate) const D_LOCAL: u8 = 1;
/// … domain label byte (`[A-Za-z0-9\-\x80-\xFF]`), …
const D_LABEL: u8 = 2;
/// … first byte of the last part (`[A-Za-z\x80-\xFF]`).
const D_LAST_FIRST: u8 = 4;

/// The byte classes of an e-mail address, as a table: the domain scan
/// tests every byte, and a lookup is cheaper than the range tests.
#[allow(clippy::indexing_slicing)] // Evaluated at compile time: a bad index fails the build.
const DOMAIN_CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let label = b.is_ascii_alphanumeric() || b == b'-' || b >= 0x80;
        let local = label || matches!(b, b'.' | b'_' | b'%' | b'+');
        let last = b.is_ascii_alphabetic() || b >= 0x80;
        table[i] = (local as u8 * D_LOCAL) | (label as u8 * D_LABEL) | (last as u8 * D_LAST_FIRST);
        i += 1;
    }
    table
};

/// The [`DOMAIN_CLASSES`] bits of `b`.
pub(crate) fn domain_class(b: u8) -> u8 {
    DOMAIN_CLASSES.get(usize::from(b)).copied().unwrap_or(0)
}

/// The end of [`EMAIL_DOMAIN`]'s leftmost-first match anchored at
/// `hay[d]`, if it has one. The labels
/// (`[A-Za-z0-9\x80-\xFF][A-Za-z0-9\-\x80-\xFF]*\.`) are fixed by the
/// bytes (no label byte is a `.`), and the greedy `+` tries the most of
/// them first; the last part, after at least one label, is the run of
/// label bytes that follows, which must start with a letter or
/// `\x80-\xFF` and have two bytes or more (its greedy `+` takes the whole
/// run, and nothing follows in the pattern). So the match ends at the
/// last such run among the first labels in a row.
pub(crate) fn email_domain_end(hay: &[u8], d: usize) -> Option<usize> {
    let mut end = None;
    let mut labels = 0;
    let rest = hay.get(d..).unwrap_or_default();
    let mut i = 0;
    loop {
        let start = i;
        while rest.get(i).is_some_and(|&b| domain_class(b) & D_LABEL != 0) {
            i += 1;
        }
        let first = domain_class(rest.get(start).copied().unwrap_or(0));
        if labels > 0 && i - start >= 2 && first & D_LAST_FIRST != 0 {
            end = Some(d + i);
        }
        if i > start && rest.get(start) != Some(&b'-') && rest.get(i) == Some(&b'.') {
            labels += 1;
            i += 1;
        } else {
            return end;
        }
    }
}

/// The end of the IBAN pattern's match
/// (`\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b`) anchored at `hay[p]`, if it
/// has one there and `hay[p..p + 4]` is two upper-case letters and two
/// digits (then no built-in pattern before it can match: `Bearer`,
/// `BASIC` and the AWS key ids want letters where the digits are; the
/// rest start elsewhere or on other bytes). Each unit of the repetition
/// is fixed by the bytes (a blank is only taken before a letter or
/// digit), so the greedy repetition takes as many as there are, up to
/// 30, then gives them back one at a time until `\b` follows (each unit
/// ends on a word byte: `\b` holds before a non-word byte or the end; a
/// unit given back is its last byte and the blank before it, if any).
/// `None` where it has no match: a later pattern (a NINO) may.
pub(crate) fn iban_end(hay: &[u8], p: usize) -> Option<usize> {
    match hay.get(p..p + 4)? {
        [a, b, c, d]
            if a.is_ascii_uppercase()
                && b.is_ascii_uppercase()
                && c.is_ascii_digit()
                && d.is_ascii_digit() => {}
        _ => return None,
    }
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    if p.checked_sub(1).and_then(|i| hay.get(i)).is_some_and(word) {
        return None;
    }
    let unit = |b: &u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    let mut units = 0;
    let mut end = p + 4;
    loop {
        // A run of letters and digits, one unit each, then a blank
        // before the next run.
        let rest = hay.get(end..).unwrap_or_default();
        let run = rest.iter().take(30 - units).take_while(|b| unit(b)).count();
        units += run;
        end += run;
        if units < 30 && hay.get(end) == Some(&b' ') && hay.get(end + 1).is_some_and(unit) {
            units += 1;
            end += 2;
        } else {
            break;
        }
    }
    while units >= 11 {
        if !hay.get(end).is_some_and(word) {
            return Some(end);
        }
        end -= 1;
        if end > p + 4 && hay.get(end - 1) == Some(&b' ') {
            end -= 1;
        }
        units -= 1;
    }
    None
}

/// How many of the first three bytes of `s` are digits in a row.
fn short_run(s: &[u8]) -> usize {
    match s {
        [a, b, c, ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => 3,
        [a, b, ..] if a.is_ascii_digit() && b.is_ascii_digit() => 2,
        [a, ..] if a.is_ascii_digit() => 1,
        _ => 0,
    }
}

/// Whether a walk from a digit with a run of 1–3 digits and a `.` after
/// it can skip to [`dotted_quad_end`]: none of the digit-group patterns
/// before IPv4 may match there (the DNI wants 8 digits, the NIR, SSN and
/// tax id a digit or blank where the `.` is, the BSN 4 or 9 digits), so
/// where IPv4 matches, its match is the leftmost-first one.
pub(crate) fn quad_first(hay: &[u8], p: usize) -> bool {
    let run = hay.get(p..).unwrap_or_default();
    let n = short_run(run);
    // Three digits and a fourth is a longer run.
    n > 0 && run.get(n) == Some(&b'.')
}

/// The checks of the built-in patterns that may start on a digit, in the
/// order of [`builtin_patterns`]: bit `i` of the `enabled` mask of
/// [`digit_run_match`] stands for `DIGIT_CHECKS[i]`.
pub(crate) const DIGIT_CHECKS: [Check; 10] = [
    Check::EsDni,
    Check::FrNir,
    Check::UsSsn,
    Check::NlBsn,
    Check::DeTaxid,
    Check::Ipv4,
    Check::Card,
    Check::PhoneIntl,
    Check::PhoneNational,
    Check::PhoneNanp,
];

/// Longest run of digits [`digit_run_match`] counts: no built-in pattern
/// has more than 19 in a row, and where the count stops a digit follows,
/// so no `\b` either.
const RUN_LEN: usize = 20;

/// ASCII word bytes, as `\b` sees them.
fn is_word_byte(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || *b == b'_'
}

/// The anchored leftmost-first match at `hay[p]` of the built-in patterns
/// that may start on a digit, read off the bytes instead of walked, where
/// the number there is one run of digits: `Some((end, i))` for the first
/// pattern in [`DIGIT_CHECKS`] order whose bit `i` is set in `enabled`
/// that matches, `Some(None)` where none does, `None` where the walk must
/// decide: `hay[p]` is no digit, or `0` (the phone numbers written `0…` or
/// `00…`), follows a word byte (the prefilter marks no such digit), the
/// run is followed by a separator (blank, `-`, `.` or `/`) and `(`, by `(`,
/// `)` (a NANP area code may go on) or, after a `2`, by one of `ABab` (a
/// NIR's Corsican department), or by a separator and a digit in a layout
/// [`grouped`] does not read.
///
/// Why this is the automaton's match: from a digit other than `0` the
/// patterns consume digits, one separator between two runs of digits (or
/// before NANP's exchange, the DNI's letter and a phone group's `(`), the
/// DNI's letter, the NIR's `2A`/`2B` and NANP's `)`, nothing else; every
/// one but the DNI ends on a digit and `\b`, so at the end of the run, and
/// only where no word byte follows. Then the run's length alone decides
/// (15 digits from `1` or `2` with a month: NIR; 9: BSN; 11: tax id;
/// 13 to 19: card; none of the others has a single run), and each
/// pattern's match does not depend on the others, so the first in the
/// patterns' order that matches is the leftmost-first one. A unit test
/// compares it with the walk on random strings.
///
/// Runs of digits with separators go to [`grouped`], which reads only the
/// common layouts and leaves the others to the walk: a general reading of
/// the groups and of each pattern's layout cost more than the walk
/// (≈485 instructions a number, against ≈335 for the walk).
pub(crate) fn digit_run_match(
    hay: &[u8],
    p: usize,
    enabled: u16,
) -> Option<Option<(usize, usize)>> {
    let rest = hay.get(p..)?;
    if !matches!(rest.first(), Some(b'1'..=b'9'))
        || p.checked_sub(1)
            .and_then(|i| hay.get(i))
            .is_some_and(is_word_byte)
    {
        return None;
    }
    let digits = rest.get(..RUN_LEN).unwrap_or(rest);
    let len = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    let after = rest.get(len).copied();
    let next = rest.get(len + 1);
    match after {
        Some(b' ' | b'-' | b'.' | b'/') if next.is_some_and(u8::is_ascii_digit) => {
            return grouped(rest, len, enabled).map(|m| m.map(|(e, i)| (p + e, i)));
        }
        Some(b' ' | b'-' | b'.' | b'/') if next == Some(&b'(') => return None,
        Some(b'(' | b')') => return None,
        Some(b'A' | b'B' | b'a' | b'b') if rest.get(len - 1) == Some(&b'2') => return None,
        _ => {}
    }
    let on = |i: usize| enabled & (1 << i) != 0;
    if len == 8 && on(0) {
        if let Some(end) = dni(rest) {
            return Some(Some((p + end, 0)));
        }
    }
    if after.is_some_and(|b| is_word_byte(&b)) {
        return Some(None);
    }
    let digit = |i: usize| rest.get(i).map_or(0, |b| b.wrapping_sub(b'0'));
    let nir = matches!(digit(0), 1 | 2)
        && matches!((digit(3), digit(4)), (0, 1..=9) | (1, 0..=2) | (2..=9, _));
    let found = match len {
        15 if on(1) && nir => Some(1),
        9 if on(3) => Some(3),
        11 if on(4) => Some(4),
        13..=19 if on(6) => Some(6),
        _ => None,
    };
    Some(found.map(|i| (p + len, i)))
}

/// [`digit_run_match`] where the first run (`len` digits) is followed by
/// a separator and a digit: the most common layouts only, each read off
/// its bytes, and `None` (the walk) for the others. From a digit other
/// than `0` (`rest[0]`):
///
/// - `ddd-dd-dddd` or `ddd dd dddd` and no word byte: the SSN (the DNI
///   wants 8 digits in a row, the NIR blanks after 1, 3, 5, 7, 10 or 13
///   digits and 3 digits where the last run has 2 or 4);
/// - `ddd.ddd.dddd` with blanks, dots or dashes, no word byte, no more
///   digits a blank or dash could join to a card: NANP if the area code
///   and exchange do not start with `0` or `1`, else nothing (too few
///   digits for a card, the SSN's second run has 2);
/// - `dddd dddd dddd dddd` with blanks or dashes, no word byte, no more
///   digits a blank or dash could join: a card of 16 digits (the NIR
///   wants a month where the first separator is, the tax id 3 digits
///   where it is, the BSN dots);
/// - `d dd dd dd ddd ddd dd` from `1` or `2` with a month and no word byte:
///   the NIR;
/// - a date `dddd-dd-dd`, maybe with a time `hh:` after a blank or dash:
///   nothing (a card would need 5 digits more, the NIR a month where the
///   first dash is, NANP 3 digits where it is, the BSN dots).
///
/// Where the pattern found is off, the walk decides.
fn grouped(rest: &[u8], len: usize, enabled: u16) -> Option<Option<(usize, usize)>> {
    let on = |i: usize| enabled & (1 << i) != 0;
    let byte = |i: usize| rest.get(i).copied();
    // Exactly `n` digits from `i`.
    let digits = |i: usize, n: usize| {
        rest.get(i..i + n)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
            && !rest.get(i + n).is_some_and(u8::is_ascii_digit)
    };
    // `\b` after the digit before `i`.
    let ends = |i: usize| !rest.get(i).is_some_and(is_word_byte);
    // A card could go on after `i`.
    let card_on = |i: usize| {
        matches!(byte(i), Some(b' ' | b'-')) && rest.get(i + 1).is_some_and(u8::is_ascii_digit)
    };
    let sep = byte(len);
    let found = |i: usize, end: usize| on(i).then_some(Some((end, i)));
    match len {
        3 if matches!(sep, Some(b'-' | b' '))
            && digits(4, 2)
            && byte(6) == sep
            && digits(7, 4)
            && ends(11) =>
        {
            found(2, 11)
        }
        3 if matches!(sep, Some(b' ' | b'.' | b'-'))
            && digits(4, 3)
            && matches!(byte(7), Some(b' ' | b'.' | b'-'))
            && digits(8, 4)
            && ends(12)
            && !card_on(12) =>
        {
            let nanp = byte(0) >= Some(b'2') && byte(4) >= Some(b'2');
            match nanp {
                true => found(9, 12),
                false => Some(None),
            }
        }
        4 if [4, 9, 14]
            .iter()
            .all(|&i| matches!(byte(i), Some(b' ' | b'-')))
            && [5, 10, 15].iter().all(|&i| digits(i, 4))
            && ends(19)
            && !card_on(19) =>
        {
            found(6, 19)
        }
        4 if sep == Some(b'-')
            && digits(5, 2)
            && byte(7) == Some(b'-')
            && digits(8, 2)
            && (!card_on(10) || (digits(11, 2) && byte(13) == Some(b':'))) =>
        {
            Some(None)
        }
        1 if matches!(byte(0), Some(b'1' | b'2'))
            && [1, 4, 7, 10, 14, 18].iter().all(|&i| byte(i) == Some(b' '))
            && digits(2, 2)
            && digits(5, 2)
            && digits(8, 2)
            && digits(11, 3)
            && digits(15, 3)
            && digits(19, 2)
            && ends(21)
            && matches!(
                (byte(5), byte(6)),
                (Some(b'0'), Some(b'1'..=b'9'))
                    | (Some(b'1'), Some(b'0'..=b'2'))
                    | (Some(b'2'..=b'9'), _)
            ) =>
        {
            found(1, 21)
        }
        _ => None,
    }
}

/// `\b\d{8}-?[A-Z]\b` on `rest`, which starts with a run of 8 digits.
fn dni(rest: &[u8]) -> Option<usize> {
    let at = 8 + usize::from(rest.get(8) == Some(&b'-'));
    let letter = rest.get(at).is_some_and(u8::is_ascii_uppercase);
    let boundary = !rest.get(at + 1).is_some_and(is_word_byte);
    (letter && boundary).then_some(at + 1)
}

const HEX: &str = "[0-9A-Fa-f]";

/// The domain part of an e-mail address (after `@`). The candidate finder
/// checks it once per `@` before trying the local parts in front of it.
pub(crate) const EMAIL_DOMAIN: &str =
    r"(?:[A-Za-z0-9\x80-\xFF][A-Za-z0-9\-\x80-\xFF]*\.)+[A-Za-z\x80-\xFF][A-Za-z0-9\-\x80-\xFF]+";

/// Everything of a `user:password@` URL from `://` on; checked once per `://`.
pub(crate) const URL_TAIL: &str = r#"://[^ \t\r\n:/@"'<>\[\]]+:[^ \t\r\n/@"'<>]*@"#;

/// The built-in patterns, most specific first: at equal start the earlier
/// pattern wins (leftmost-first), the others are re-tried on rejection.
pub(crate) fn builtin_patterns() -> Vec<PatternSpec> {
    use Check as C;
    use Detector as D;
    use Group::{Alone, Digits, Upper};
    let ipv6_full = format!(r"(?:{HEX}{{1,4}}:){{7}}{HEX}{{1,4}}");
    let ipv6_comp = format!(
        r"(?:{HEX}{{1,4}}(?::{HEX}{{1,4}}){{0,6}})?::(?:{HEX}{{1,4}}(?::{HEX}{{1,4}}){{0,6}}(?:\.\d{{1,3}}){{0,3}})?"
    );
    let p = |detector: Detector, pattern: &str, check: Check, group: Group| PatternSpec {
        detector,
        pattern: pattern.to_owned(),
        check,
        group,
    };
    vec![
        p(
            D::PemPrivateKey,
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:[A-Za-z0-9+/=\\ \t:,\-]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|[A-Za-z0-9+/=\\ \t]*)",
            C::Pem,
            Alone,
        ),
        p(
            D::UrlCredentials,
            &format!(r"\b[A-Za-z][A-Za-z0-9+.\-]*{URL_TAIL}"),
            C::UrlCredentials,
            Alone,
        ),
        p(
            D::Jwt,
            r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",
            C::Jwt,
            Alone,
        ),
        p(
            D::Bearer,
            r"\b(?:[Bb]earer|BEARER)[ \t]+[A-Za-z0-9\-._~+/]{8,}=*",
            C::Bearer,
            Alone,
        ),
        p(
            D::Bearer,
            r"\b(?:[Bb]asic|BASIC)[ \t]+[A-Za-z0-9+/]{8,}={0,2}",
            C::Basic,
            Alone,
        ),
        p(
            D::AwsKey,
            r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b",
            C::AwsKeyId,
            Upper,
        ),
        p(
            D::AwsKey,
            r#"(?i:aws_?secret_?access_?key)["']?[ \t]*[:=][ \t]*["']?[A-Za-z0-9/+]{40}\b"#,
            C::AwsSecret,
            Alone,
        ),
        p(
            D::Email,
            &format!(
                r#"(?:[A-Za-z0-9_%+\-\x80-\xFF][A-Za-z0-9._%+\-\x80-\xFF]*|"[A-Za-z0-9 ._%+\-\x80-\xFF]+")@{EMAIL_DOMAIN}"#
            ),
            C::Email,
            Alone,
        ),
        p(
            D::Iban,
            r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b",
            C::Iban,
            Upper,
        ),
        p(
            D::ItCf,
            r"\b[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]\b",
            C::ItCf,
            Upper,
        ),
        p(
            D::UkNino,
            r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
            C::UkNino,
            Upper,
        ),
        p(D::EsDni, r"\b[XYZ]-?\d{7}-?[A-Z]\b", C::EsNie, Upper),
        p(D::EsDni, r"\b\d{8}-?[A-Z]\b", C::EsDni, Digits),
        p(
            D::FrNir,
            r"\b[12] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[ABab]) ?\d{3} ?\d{3} ?\d{2}\b",
            C::FrNir,
            Digits,
        ),
        p(
            D::UsSsn,
            r"\b\d{3}-\d{2}-\d{4}\b|\b\d{3} \d{2} \d{4}\b",
            C::UsSsn,
            Digits,
        ),
        p(
            D::NlBsn,
            r"\b\d{9}\b|\b\d{4}\.\d{2}\.\d{3}\b",
            C::NlBsn,
            Digits,
        ),
        p(D::DeTaxid, r"\b[1-9]\d(?: ?\d{3}){3}\b", C::DeTaxid, Digits),
        p(D::Ipv4, r"\b(?:\d{1,3}\.){3}\d{1,3}\b", C::Ipv4, Digits),
        p(D::Card, r"\b[1-9](?:[ \-]?\d){12,18}\b", C::Card, Digits),
        p(
            D::Phone,
            r"(?:\+|\b00)[1-9](?:[ .\-/]?\(?\d{1,6}\)?){1,8}\b",
            C::PhoneIntl,
            Digits,
        ),
        p(
            D::Phone,
            r"\(?\b0[1-9]\d{0,4}\)?(?:[ .\-/]?\d{2,8}){1,4}\b",
            C::PhoneNational,
            Digits,
        ),
        p(
            D::Phone,
            r"\(?\b[2-9]\d{2}\)?[ .\-]?[2-9]\d{2}[ .\-]\d{4}\b",
            C::PhoneNanp,
            Digits,
        ),
        p(D::Ipv6, &ipv6_full, C::Ipv6, Alone),
        p(D::Ipv6, &ipv6_comp, C::Ipv6, Alone),
    ]
}
