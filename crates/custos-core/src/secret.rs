//! Wrappers that keep secrets and personal values out of logs.
//!
//! Invariant: none of these types prints its content through `Debug` or
//! `Display`, and key material is zeroized when dropped.

use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// 32 bytes of key material. Zeroized on drop; `Debug` prints `Key32(..)`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key32([u8; 32]);

impl Key32 {
    /// Wraps raw bytes; the caller should zeroize its own copy.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses a slice that must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, crate::CoreError> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| crate::CoreError::InvalidKey("expected 32 bytes"))?;
        Ok(Self(arr))
    }

    /// Fresh random key from a cryptographic RNG.
    pub fn generate(rng: &mut impl rand_core::CryptoRngCore) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Borrow the bytes for a cryptographic primitive. Never log them.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key32(..)")
    }
}

/// A personal value (an email, a field's content) on its way through the
/// system. `Debug`/`Display` print `[redacted]` so that a stray `?value` in a
/// log line or an error leaks nothing.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Personal<T: Zeroize>(T);

impl<T: Zeroize> Personal<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// Borrow the clear value; only for encryption, normalisation or a reveal.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: Zeroize> fmt::Display for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A bearer secret (API key, admin token). Compared in constant time;
/// never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct BearerSecret(String);

impl BearerSecret {
    /// Wraps a secret string.
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The secret, to hand to its owner exactly once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time equality, so that response timing reveals neither a
    /// prefix nor the length: both sides are hashed (SHA-256) and the
    /// fixed-size digests compared with `subtle`, so a candidate of another
    /// length takes the same path as one of the right length.
    pub fn ct_eq(&self, other: &str) -> bool {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(other.as_bytes());
        bool::from(a.as_slice().ct_eq(b.as_slice()))
    }
}

impl fmt::Debug for BearerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerSecret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_content() {
        let k = Key32::from_bytes([7; 32]);
        assert_eq!(format!("{k:?}"), "Key32(..)");
        let p = Personal::new("jane@example.com".to_string());
        assert_eq!(format!("{p:?} {p}"), "[redacted] [redacted]");
        let s = BearerSecret::new("ck_secret".into());
        assert!(!format!("{s:?}").contains("secret\""));
        assert!(s.ct_eq("ck_secret"));
        assert!(!s.ct_eq("ck_secreT"));
        assert!(!s.ct_eq("ck_secre"));
        assert!(!s.ct_eq(""));
        assert!(!s.ct_eq("ck_secret_and_more"));
    }
}
