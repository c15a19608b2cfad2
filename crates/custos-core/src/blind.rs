//! Blind indexes: keyed HMAC-SHA256 of a normalised identity value, so that
//! "who is jane@example.com?" is one index probe and the stored index reveals
//! nothing without the tenant's key.

use hmac::Mac;

use crate::secret::{Key32, Personal};
use crate::CoreError;

/// Kinds of identity a subject can be found by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentityKind {
    /// An email address; case-folded and trimmed.
    Email,
    /// A phone number in E.164 (`+31612345678`).
    Phone,
    /// Any other identifier the application uses (a slug name).
    Custom(String),
}

impl IdentityKind {
    /// Parses a kind name; anything but `email`/`phone` must be a slug.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        match s {
            "email" => Ok(Self::Email),
            "phone" => Ok(Self::Phone),
            other => {
                crate::ids::Purpose::parse(other).map_err(|_| CoreError::InvalidId {
                    kind: "identity kind",
                    reason: "use email, phone or a lowercase name like customer_number",
                })?;
                Ok(Self::Custom(other.to_owned()))
            }
        }
    }

    /// The stable name used in storage and in the API.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Custom(s) => s,
        }
    }

    /// Normalises a value so that equal identities index equally.
    pub fn normalise(&self, value: &str) -> Result<Personal<String>, CoreError> {
        let err = |reason| CoreError::InvalidIdentity {
            kind: self.as_str().to_owned(),
            reason,
        };
        match self {
            Self::Email => {
                let v = value.trim().to_lowercase();
                let (local, domain) = v.split_once('@').ok_or_else(|| err("missing '@'"))?;
                if local.is_empty() || domain.is_empty() || domain.contains('@') {
                    return Err(err("expected one '@' between a local part and a domain"));
                }
                if v.chars().any(char::is_whitespace) {
                    return Err(err("contains whitespace"));
                }
                Ok(Personal::new(v))
            }
            Self::Phone => {
                let t = value.trim();
                let rest = if let Some(r) = t.strip_prefix('+') {
                    r
                } else if let Some(r) = t.strip_prefix("00") {
                    r
                } else {
                    return Err(err("needs a country code, e.g. +31 6 1234 5678"));
                };
                let mut digits = String::with_capacity(16);
                digits.push('+');
                for c in rest.chars() {
                    match c {
                        '0'..='9' => digits.push(c),
                        ' ' | '-' | '.' | '(' | ')' => {}
                        _ => return Err(err("only digits, spaces, '-', '.', '(' and ')' allowed")),
                    }
                }
                let n = digits.len() - 1;
                if !(7..=15).contains(&n) || digits.as_bytes().get(1) == Some(&b'0') {
                    return Err(err(
                        "E.164 numbers have 7 to 15 digits after '+', not starting with 0",
                    ));
                }
                Ok(Personal::new(digits))
            }
            Self::Custom(_) => {
                let v = value.trim();
                if v.is_empty() || v.len() > 512 {
                    return Err(err("must be 1 to 512 bytes"));
                }
                Ok(Personal::new(v.to_owned()))
            }
        }
    }
}

/// The 32-byte blind index of a normalised value under a per-kind key.
pub fn blind_index(key: &Key32, normalised: &Personal<String>) -> [u8; 32] {
    let mut mac = crate::keys::hmac_sha256(key);
    mac.update(normalised.expose().as_bytes());
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn email_normalisation() {
        let k = IdentityKind::Email;
        assert_eq!(
            k.normalise("  Jane.Doe@Example.COM ").unwrap().expose(),
            "jane.doe@example.com"
        );
        assert!(k.normalise("no-at-sign").is_err());
        assert!(k.normalise("a@b@c").is_err());
    }

    #[test]
    fn phone_normalisation() {
        let k = IdentityKind::Phone;
        assert_eq!(
            k.normalise("+31 (6) 1234-5678").unwrap().expose(),
            "+31612345678"
        );
        assert_eq!(
            k.normalise("0031612345678").unwrap().expose(),
            "+31612345678"
        );
        assert!(k.normalise("0612345678").is_err());
        assert!(k.normalise("+12").is_err());
    }

    #[test]
    fn errors_do_not_echo_values() {
        let e = IdentityKind::Email.normalise("secret-value").unwrap_err();
        assert!(!e.to_string().contains("secret-value"));
    }

    proptest! {
        #[test]
        fn equal_after_normalisation_means_equal_index(local in "[a-zA-Z0-9._+]{1,20}", domain in "[a-zA-Z0-9]{1,10}\\.[a-z]{2,4}") {
            let key = Key32::from_bytes([9; 32]);
            let a = IdentityKind::Email.normalise(&format!("{local}@{domain}"))?;
            let b = IdentityKind::Email.normalise(&format!("  {}@{} ", local.to_uppercase(), domain.to_uppercase()))?;
            prop_assert_eq!(blind_index(&key, &a), blind_index(&key, &b));
        }

        #[test]
        fn normalise_never_panics(s in ".{0,60}") {
            let _ = IdentityKind::Email.normalise(&s);
            let _ = IdentityKind::Phone.normalise(&s);
        }
    }
}
