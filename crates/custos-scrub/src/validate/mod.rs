//! Validators: a candidate from the automaton becomes a finding only if the
//! checksum or structural rules of its kind hold. This is where precision
//! comes from (a 13-digit millisecond timestamp has no card issuer prefix; a
//! version string is not an address).
//!
//! Every check gets the whole haystack and the candidate span, so it can look
//! at the bytes around it, and returns the (possibly narrowed) span to
//! replace. Checks only index through `.get()`: they run on arbitrary bytes.
//!
//! Layout: the dispatch ([`run`]) and the context tests several kinds
//! share (glued to a mask, to a dotted number, inside a run of short
//! numbers) here; one submodule per kind of value, and `checksum` for Luhn
//! and mod 97-10.

mod card;
mod checksum;
mod email;
mod iban;
mod ip;
mod national;
mod phone;
mod secrets;

use card::card;
use checksum::{luhn_rev, mod97_alnum};
use email::email;
use iban::iban;
use ip::{ipv4, ipv6};
use national::{bsn, de_taxid, es_dni, es_nie, fr_nir, it_cf, nino, ssn};
use phone::{dashed_after, dashed_before, phone_intl, phone_nanp, phone_national};
use secrets::{basic, bearer, jwt, url_credentials};

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

/// Strings of `alphabet` bytes, up to `max` long (for the property tests
/// of the submodules).
#[cfg(test)]
fn text(alphabet: &'static [u8], max: usize) -> impl proptest::prelude::Strategy<Value = Vec<u8>> {
    proptest::collection::vec(proptest::sample::select(alphabet), 0..max)
}
