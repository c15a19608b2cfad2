//! What a finding is replaced with. Every replacement is built so that a
//! second pass finds nothing in it: `[EMAIL]` has no `@`, masks replace the
//! identifying characters with `*`, and pseudonyms always contain a letter so
//! they never read as a number.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{Detector, ScrubError};

/// How a found value is replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// `[EMAIL]`: the kind survives, nothing else.
    #[default]
    Redact,
    /// Format kept: `j***@example.com`, `**** **** **** 1111`. Secrets are
    /// redacted instead: their shape helps nobody.
    Mask,
    /// `email:7f3a9c2e`: a keyed, stable, short pseudonym, so one person's
    /// lines still correlate while nobody without the key can reverse them.
    Pseudonymize,
    /// `<hash:email:…32 hex…>`: a keyed 128-bit digest (unkeyed hashes of
    /// e-mails are reversible by dictionary).
    Hash,
}

impl Mode {
    /// The name used on the command line and in configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Redact => "redact",
            Self::Mask => "mask",
            Self::Pseudonymize => "pseudonymize",
            Self::Hash => "hash",
        }
    }

    /// Whether this mode needs a [`ScrubKey`].
    pub fn needs_key(self) -> bool {
        matches!(self, Self::Pseudonymize | Self::Hash)
    }
}

impl FromStr for Mode {
    type Err = ScrubError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "redact" => Ok(Self::Redact),
            "mask" => Ok(Self::Mask),
            "pseudonymize" | "pseudonymise" => Ok(Self::Pseudonymize),
            "hash" => Ok(Self::Hash),
            other => Err(ScrubError::Config(format!(
                "unknown mode `{other}` (redact, mask, pseudonymize, hash)"
            ))),
        }
    }
}

/// The 32-byte key of `pseudonymize` and `hash`.
///
/// Invariant: the bytes are wiped on drop and never printed; there is no
/// `Clone` so that the key lives in one place (the [`crate::Scrubber`] holds
/// it behind an `Arc`). The same key gives the same pseudonym for the same
/// value everywhere (logs, the anonymised database copies).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ScrubKey {
    bytes: [u8; 32],
}

impl ScrubKey {
    /// The environment variable the CLI reads the key from.
    pub const ENV_VAR: &'static str = "CUSTOS_SCRUB_KEY";

    /// Wraps raw key bytes (e.g. from custos' key store).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self { bytes }
    }

    /// Parses 64 hex digits or base64 (standard or URL-safe) of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, ScrubError> {
        use base64::Engine as _;
        let text = text.trim();
        let mut decoded = if text.len() == 64 {
            hex::decode(text).map_err(|_| ScrubError::InvalidKey)?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
                .map_err(|_| ScrubError::InvalidKey)?
        };
        let result = <[u8; 32]>::try_from(decoded.as_slice())
            .map(Self::from_bytes)
            .map_err(|_| ScrubError::InvalidKey);
        decoded.zeroize();
        result
    }

    fn mac(&self, purpose: &[u8], detector: &Detector, value: &[u8]) -> [u8; 32] {
        // `new_from_slice` accepts any length for HMAC; 32 bytes cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.bytes) else {
            return [0; 32];
        };
        mac.update(purpose);
        mac.update(detector.name().as_bytes());
        mac.update(&[0]);
        mac.update(&normalize(detector, value));
        mac.finalize().into_bytes().into()
    }

    /// The pseudonym of `value` found by `detector`: `email:7f3a9c2e`.
    ///
    /// Stable for a key: other custos components (the anonymiser) call this
    /// to produce the same pseudonym for the same person. The value is
    /// normalised first (e-mails lower-cased; card, phone and id numbers
    /// reduced to their alphanumerics), so `4111 1111 1111 1111` and
    /// `4111-1111-1111-1111` agree.
    pub fn pseudonym(&self, detector: &Detector, value: &[u8]) -> String {
        let mac = self.mac(b"custos-scrub/pseudonym/v1\0", detector, value);
        format!(
            "{}:{}",
            detector.name(),
            with_letter(hex::encode(mac.get(..4).unwrap_or_default()))
        )
    }

    /// The keyed digest of `value`: `<hash:email:…32 hex…>`.
    pub fn hash(&self, detector: &Detector, value: &[u8]) -> String {
        let mac = self.mac(b"custos-scrub/hash/v1\0", detector, value);
        format!(
            "<hash:{}:{}>",
            detector.name(),
            with_letter(hex::encode(mac.get(..16).unwrap_or_default()))
        )
    }
}

impl fmt::Debug for ScrubKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScrubKey(<redacted>)")
    }
}

/// An all-digit hex string could read as a number on a second pass; make the
/// last character a letter outside the hex range (`g`–`p`) in that case.
fn with_letter(mut hex: String) -> String {
    if hex.bytes().all(|b| b.is_ascii_digit()) {
        if let Some(last) = hex.pop() {
            let shifted =
                char::from(b'g' + (u8::try_from(last).unwrap_or(b'0').wrapping_sub(b'0') % 10));
            hex.push(shifted);
        }
    }
    hex
}

/// The canonical form of a value for keyed pseudonyms and allow-lists.
pub(crate) fn normalize(detector: &Detector, value: &[u8]) -> Vec<u8> {
    match detector {
        Detector::Email | Detector::Ipv4 | Detector::Ipv6 => value.to_ascii_lowercase(),
        Detector::Phone => value
            .iter()
            .copied()
            .filter(|b| b.is_ascii_digit() || *b == b'+')
            .collect(),
        Detector::Card
        | Detector::Iban
        | Detector::NlBsn
        | Detector::UkNino
        | Detector::UsSsn
        | Detector::DeTaxid
        | Detector::FrNir
        | Detector::EsDni
        | Detector::ItCf => value
            .iter()
            .filter(|b| b.is_ascii_alphanumeric())
            .map(u8::to_ascii_uppercase)
            .collect(),
        _ => value.to_vec(),
    }
}

/// The `[EMAIL]` token of a detector.
pub(crate) fn redact_token(detector: &Detector) -> String {
    format!("[{}]", detector.name().to_ascii_uppercase())
}

/// Format-keeping mask. Only ASCII alphanumerics become `*`; non-ASCII
/// characters become one `*` each so the output stays valid UTF-8.
pub(crate) fn mask(detector: &Detector, value: &[u8], out: &mut Vec<u8>) {
    match detector {
        Detector::Email => {
            let at = memchr::memrchr(b'@', value).unwrap_or(0);
            let local = value.get(..at).unwrap_or_default();
            let first_len = match local.first() {
                Some(b'"') | None => 0,
                Some(&b) if b < 0x80 => 1,
                Some(_) => std::str::from_utf8(local)
                    .ok()
                    .and_then(|s| s.chars().next())
                    .map_or(0, char::len_utf8),
            };
            out.extend_from_slice(local.get(..first_len).unwrap_or_default());
            out.extend_from_slice(b"***");
            out.extend_from_slice(value.get(at..).unwrap_or_default());
        }
        // Network part kept, host part replaced by a letter (`203.0.113.x`,
        // `2001:db8:85a3::x`), so the mask is never an address again.
        Detector::Ipv4 => {
            let cut = memchr::memrchr(b'.', value).map_or(0, |i| i + 1);
            out.extend_from_slice(value.get(..cut).unwrap_or_default());
            out.push(b'x');
        }
        Detector::Ipv6 => {
            let text = String::from_utf8_lossy(value);
            let groups: Vec<&str> = text
                .split(':')
                .take_while(|g| !g.is_empty())
                .take(3)
                .collect();
            out.extend_from_slice(groups.join(":").as_bytes());
            out.extend_from_slice(b"::x");
        }
        _ => {
            let keep = match detector {
                Detector::Card | Detector::Iban => 4,
                _ => 2,
            };
            let keep_from = {
                let mut seen = 0;
                let mut idx = value.len();
                for (i, b) in value.iter().enumerate().rev() {
                    if seen == keep {
                        break;
                    }
                    if b.is_ascii_alphanumeric() {
                        seen += 1;
                        idx = i;
                    }
                }
                idx
            };
            let text = String::from_utf8_lossy(value);
            let mut pos = 0;
            for c in text.chars() {
                if pos >= keep_from && c.is_ascii() {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                } else if c.is_ascii_alphanumeric() || !c.is_ascii() {
                    out.push(b'*');
                } else {
                    out.push(u8::try_from(c).unwrap_or(b'*'));
                }
                pos += c.len_utf8();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parse_and_debug() {
        let hex = "00".repeat(32);
        let key = ScrubKey::parse(&hex).unwrap();
        assert_eq!(format!("{key:?}"), "ScrubKey(<redacted>)");
        assert!(ScrubKey::parse("short").is_err());
        let p = key.pseudonym(&Detector::Email, b"John@Example.com");
        assert_eq!(p, key.pseudonym(&Detector::Email, b"john@example.com"));
        assert!(p.starts_with("email:") && p.len() == "email:".len() + 8);
    }

    #[test]
    fn with_letter_never_all_digits() {
        assert_eq!(with_letter("12345678".into()), "1234567o");
        assert_eq!(with_letter("1234567a".into()), "1234567a");
    }

    #[test]
    fn masks() {
        let m = |d: Detector, v: &str| {
            let mut out = Vec::new();
            mask(&d, v.as_bytes(), &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(m(Detector::Email, "john@example.com"), "j***@example.com");
        assert_eq!(
            m(Detector::Card, "4111 1111 1111 1111"),
            "**** **** **** 1111"
        );
        assert_eq!(m(Detector::Ipv4, "203.0.113.9"), "203.0.113.x");
        assert_eq!(
            m(Detector::Ipv6, "2001:db8:85a3::8a2e:370:7334"),
            "2001:db8:85a3::x"
        );
        assert_eq!(m(Detector::UsSsn, "536-90-4399"), "***-**-**99");
    }
}
