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
