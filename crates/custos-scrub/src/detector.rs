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
