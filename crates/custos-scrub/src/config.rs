//! The scrubber's configuration file (TOML), for custom detectors and
//! allow-lists:
//!
//! ```toml
//! mode = "redact"                 # redact | mask | pseudonymize | hash
//! skip = ["ipv6"]                 # or: detect = ["email", "card"]
//! keep_private_ips = true
//! allow = ["support@custos.example"]
//!
//! [[detector]]
//! name = "order_card"
//! pattern = '\bORD-\d{16}\b'
//! validator = "luhn"              # optional: luhn | mod97
//! ```

use serde::Deserialize;

use crate::ScrubError;

/// A checksum a custom detector's match must pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ValidatorName {
    /// Luhn over the digits (cards, many customer numbers).
    Luhn,
    /// ISO 7064 mod 97-10 over the alphanumerics (IBAN-style).
    Mod97,
}

/// One `[[detector]]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDetectorConfig {
    /// Stable name: used by `--detect`, reports and `[NAME]` tokens.
    pub name: String,
    /// Byte-oriented regex (`(?-u)` semantics).
    pub pattern: String,
    /// Optional checksum.
    pub validator: Option<ValidatorName>,
}

/// The whole file. Unknown keys are errors, so typos do not silently turn a
/// detector off.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrubConfig {
    /// Replacement mode name.
    pub mode: Option<String>,
    /// Only these detectors.
    pub detect: Option<Vec<String>>,
    /// Not these detectors.
    #[serde(default)]
    pub skip: Vec<String>,
    /// Values never replaced.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Leave private IP ranges alone.
    pub keep_private_ips: Option<bool>,
    /// Custom detectors.
    #[serde(default)]
    pub detector: Vec<CustomDetectorConfig>,
}

impl ScrubConfig {
    /// Parses TOML; the error names the key and line (from the TOML parser).
    pub fn from_toml(text: &str) -> Result<Self, ScrubError> {
        toml::from_str(text).map_err(|e| ScrubError::Config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown_keys() {
        let c = ScrubConfig::from_toml(
            "allow = [\"a@b.io\"]\n[[detector]]\nname = \"x\"\npattern = 'X\\d+'\nvalidator = \"luhn\"\n",
        )
        .unwrap();
        assert_eq!(c.detector.len(), 1);
        assert_eq!(c.detector[0].validator, Some(ValidatorName::Luhn));
        assert!(ScrubConfig::from_toml("alow = []").is_err());
    }
}
