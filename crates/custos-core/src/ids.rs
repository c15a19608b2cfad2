//! Identifiers. Each is a newtype so that a tenant id can never be passed
//! where a subject id is expected, and each validates its shape on the way
//! in, so that storage and logs only ever see well-formed, non-personal ids.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::CoreError;

/// Checks the "slug" shape shared by names chosen by clients: 1..=max bytes
/// of `[a-z0-9_.-]`, starting with a letter or digit.
fn check_slug(s: &str, kind: &'static str, max: usize) -> Result<(), CoreError> {
    if s.is_empty() || s.len() > max {
        return Err(CoreError::InvalidId {
            kind,
            reason: "must be 1 to 64 characters",
        });
    }
    let ok_first = s
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok_rest = s.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' || b == b'.'
    });
    if ok_first && ok_rest {
        Ok(())
    } else {
        Err(CoreError::InvalidId {
            kind,
            reason:
                "use lowercase letters, digits, '_', '-' or '.', starting with a letter or digit",
        })
    }
}

macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps.
            pub fn parse(s: &str) -> Result<Self, CoreError> {
                check_slug(s, $kind, 64)?;
                Ok(Self(s.to_owned()))
            }
            /// The id as stored and printed.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = CoreError;
            fn try_from(s: String) -> Result<Self, CoreError> {
                check_slug(&s, $kind, 64)?;
                Ok(Self(s))
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

slug_id!(
    /// A tenant: one customer of the application, isolated by its own key.
    TenantId, "tenant id"
);
slug_id!(
    /// A named collection of records under a subject (`profile`, `addresses`).
    Collection, "collection"
);
slug_id!(
    /// A declared purpose of processing (`support`, `legal_claims`).
    Purpose, "purpose"
);
slug_id!(
    /// An audience of pseudonymous tokens (`analytics`, a processor's name).
    Audience, "audience"
);

/// Record key within a collection: the application's own key, 1..=128 bytes
/// of printable ASCII without path separators (`/`, `\\`) and other than
/// `.` and `..`, so that no key can name a parent or current directory
/// wherever keys become paths (archives, file exports). Control characters
/// and spaces are not printable ASCII. Not a slug, because applications use
/// their own ids (`order-2024-001`, `A17`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RecordKey(String);

impl RecordKey {
    /// Validates and wraps.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(CoreError::InvalidId {
                kind: "record key",
                reason: "must be 1 to 128 printable ASCII characters without '/' or '\\', \
                         and not '.' or '..'",
            })
        }
    }
    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for RecordKey {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, CoreError> {
        Self::parse(&s)
    }
}
impl From<RecordKey> for String {
    fn from(v: RecordKey) -> String {
        v.0
    }
}
impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordKey({})", self.0)
    }
}

/// The printed form of a random id (`sub_` + 32 hex digits), kept on the
/// stack. Random ids are bytes; their text is what the stores hold.
#[derive(Clone, Copy)]
pub struct IdText {
    buf: [u8; 40],
    len: usize,
}

impl IdText {
    fn new(prefix: &str, bytes: &[u8; 16]) -> Self {
        let mut buf = [0u8; 40];
        let p = prefix.len().min(7);
        let (head, rest) = buf.split_at_mut(p);
        head.copy_from_slice(prefix.as_bytes().get(..p).unwrap_or_default());
        let mut len = 0;
        if let Some((sep, hex)) = rest.split_first_mut() {
            *sep = b'_';
            if let Some(hex) = hex.get_mut(..32) {
                if hex::encode_to_slice(bytes, hex).is_ok() {
                    len = p + 33;
                }
            }
        }
        Self { buf, len }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // ASCII by construction: a prefix literal, `_` and hex digits.
        self.buf
            .get(..self.len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }
}

impl fmt::Debug for IdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 16]);

        impl $name {
            /// A fresh random id; never derived from personal data.
            pub fn generate(rng: &mut impl rand_core::CryptoRngCore) -> Self {
                let mut b = [0u8; 16];
                rng.fill_bytes(&mut b);
                Self(b)
            }
            /// Parses the printed form (`prefix_` + 32 lowercase hex digits).
            pub fn parse(s: &str) -> Result<Self, CoreError> {
                let err = CoreError::InvalidId {
                    kind: $kind,
                    reason: concat!("expected '", $prefix, "_' followed by 32 hex digits"),
                };
                let hexpart = s
                    .strip_prefix(concat!($prefix, "_"))
                    .ok_or_else(|| err.clone())?;
                if hexpart.len() != 32 || hexpart.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(err);
                }
                let mut b = [0u8; 16];
                hex::decode_to_slice(hexpart, &mut b).map_err(|_| err)?;
                Ok(Self(b))
            }
            /// Raw bytes, used in authenticated contexts.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
            /// The printed form on the stack, to bind to a statement
            /// without an allocation.
            pub fn text(&self) -> IdText {
                IdText::new($prefix, &self.0)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, hex::encode(self.0))
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
        impl std::str::FromStr for $name {
            type Err = CoreError;
            fn from_str(s: &str) -> Result<Self, CoreError> {
                Self::parse(s)
            }
        }
    };
}

random_id!(
    /// A data subject: a random id, never the email or the application's id.
    SubjectId, "sub", "subject id"
);
random_id!(
    /// An API key's public half; the secret half is stored only hashed.
    ApiKeyId, "key", "api key id"
);
random_id!(
    /// A data-subject request (`request`): random, never derived from the person.
    RequestId, "req", "request id"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slugs() {
        assert!(TenantId::parse("acme").is_ok());
        assert!(TenantId::parse("acme-eu.1").is_ok());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse("Acme").is_err());
        assert!(TenantId::parse("-acme").is_err());
        assert!(TenantId::parse(&"a".repeat(65)).is_err());
        assert!(RecordKey::parse("order/1").is_err());
        assert!(RecordKey::parse("A17").is_ok());
        assert!(RecordKey::parse("v1.2..3").is_ok());
        for bad in [
            ".", "..", "a\\b", "\\", "a b", "a\tb", "a\nb", "\u{7f}", "\0", "é",
        ] {
            assert!(RecordKey::parse(bad).is_err(), "{bad:?}");
        }
        // Collections are slugs: no dot-only names, separators or controls.
        for bad in [".", "..", "../x", "a/b", "a\\b", "a\nb", "\0", ".hidden"] {
            assert!(Collection::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn subject_id_round_trips(bytes in any::<[u8; 16]>()) {
            let id = SubjectId(bytes);
            let printed = id.to_string();
            prop_assert_eq!(SubjectId::parse(&printed)?, id);
        }

        #[test]
        fn id_text_is_the_printed_form(bytes in any::<[u8; 16]>()) {
            let (s, r, k) = (SubjectId(bytes), RequestId(bytes), ApiKeyId(bytes));
            let texts = [s.text(), r.text(), k.text()];
            let printed = [s.to_string(), r.to_string(), k.to_string()];
            for (t, p) in texts.iter().zip(&printed) {
                prop_assert_eq!(t.as_str(), p.as_str());
            }
        }

        #[test]
        fn subject_id_parse_never_panics(s in ".{0,80}") {
            let _ = SubjectId::parse(&s);
        }
    }
}
