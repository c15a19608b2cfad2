//! The AEAD envelope: AES-256-GCM with a random 96-bit nonce and an
//! authenticated context.
//!
//! Layout: `version (1 byte) || nonce (12) || ciphertext || tag (16)`.
//! The context (AAD) binds a ciphertext to where it belongs — tenant,
//! subject, collection, record key, field — so a ciphertext copied to
//! another row fails to decrypt. Context parts are length-prefixed, so
//! `("ab","c")` and `("a","bc")` never collide.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::secret::Key32;
use crate::CoreError;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Authenticated context of one envelope; built from labelled parts.
#[derive(Clone, Debug, Default)]
pub struct Context(Vec<u8>);

impl Context {
    /// Starts a context for one kind of envelope (`field`, `subject-key`, …).
    pub fn new(label: &str) -> Self {
        let mut c = Self(Vec::with_capacity(96));
        c.push(b"custos/v1");
        c.push(label.as_bytes());
        c
    }

    /// Appends one part, length-prefixed.
    pub fn push(&mut self, part: &[u8]) -> &mut Self {
        self.0.extend_from_slice(&(part.len() as u32).to_be_bytes());
        self.0.extend_from_slice(part);
        self
    }

    /// Builder form of [`Context::push`].
    pub fn with(mut self, part: &[u8]) -> Self {
        self.push(part);
        self
    }

    /// The bytes fed to the AEAD as associated data.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Encrypts `plaintext` under `key`, bound to `ctx`.
pub fn seal(
    key: &Key32,
    ctx: &Context,
    plaintext: &[u8],
    rng: &mut impl rand_core::CryptoRngCore,
) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.expose().into());
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: ctx.as_bytes(),
            },
        )
        // AES-GCM encryption only fails for messages over 64 GiB, which the
        // body limit makes impossible; an empty envelope then fails to open.
        .unwrap_or_default();
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Decrypts an envelope made by [`seal`] with the same key and context.
pub fn open(key: &Key32, ctx: &Context, envelope: &[u8]) -> Result<Vec<u8>, CoreError> {
    if envelope.len() < 1 + NONCE_LEN + TAG_LEN {
        return Err(CoreError::MalformedEnvelope);
    }
    let (version, rest) = envelope.split_at(1);
    if version != [VERSION] {
        return Err(CoreError::MalformedEnvelope);
    }
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(key.expose().into());
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: ctx.as_bytes(),
            },
        )
        .map_err(|_| CoreError::Decrypt)
}

#[cfg(test)]
mod tests {
    // Tests draw real randomness; the code under test takes it as a parameter.
    #![allow(clippy::disallowed_types)]

    use super::*;
    use proptest::prelude::*;
    use rand_core::OsRng;

    #[test]
    fn context_binds_ciphertext() {
        let k = Key32::generate(&mut OsRng);
        let a = Context::new("field").with(b"ab").with(b"c");
        let b = Context::new("field").with(b"a").with(b"bc");
        let env = seal(&k, &a, b"hello", &mut OsRng);
        assert_eq!(open(&k, &a, &env).unwrap(), b"hello");
        assert_eq!(open(&k, &b, &env), Err(CoreError::Decrypt));
        let k2 = Key32::generate(&mut OsRng);
        assert_eq!(open(&k2, &a, &env), Err(CoreError::Decrypt));
        assert_eq!(open(&k, &a, &env[..10]), Err(CoreError::MalformedEnvelope));
    }

    proptest! {
        #[test]
        fn round_trip(msg in proptest::collection::vec(any::<u8>(), 0..512), part in ".{0,40}") {
            let k = Key32::generate(&mut OsRng);
            let ctx = Context::new("t").with(part.as_bytes());
            let env = seal(&k, &ctx, &msg, &mut OsRng);
            prop_assert_eq!(open(&k, &ctx, &env)?, msg);
        }

        #[test]
        fn any_bit_flip_is_detected(msg in proptest::collection::vec(any::<u8>(), 1..64), pos in any::<usize>(), bit in 0u8..8) {
            let k = Key32::generate(&mut OsRng);
            let ctx = Context::new("t");
            let mut env = seal(&k, &ctx, &msg, &mut OsRng);
            let i = pos % env.len();
            env[i] ^= 1 << bit;
            prop_assert!(open(&k, &ctx, &env).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let k = Key32::generate(&mut OsRng);
            let _ = open(&k, &Context::new("t"), &bytes);
        }
    }
}
