//! The keys that sign audit checkpoints, and their public history.
//!
//! The signing key is an Ed25519 key of its own (random, wrapped under the
//! root key in the key store), so rotating the root key does not change
//! it, and verifying needs only public keys. Every key ever used stays in
//! the **public key history**, each entry endorsed (signed) by the key
//! before it — the first by itself — over its id, public key, the audit
//! position from which it signs, its creation time and its origin. So a
//! history an auditor was once given is enough to trust every later key:
//! each rotation is vouched for by the key it replaces.
//!
//! A key's id is the first 8 bytes of SHA-256 of its public key, in hex:
//! checkpoints name the key that signed them by this id.
//!
//! Stores whose checkpoints were signed before keys had a history (with a
//! key derived from the root key) keep that key as the history's first
//! entry, of origin [`KeyOrigin::RootDerived`].

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `format` of a public key history document.
pub const HISTORY_FORMAT: &str = "custos-audit-public-keys/1";

/// The id of an audit signing key: hex of the first 8 bytes of SHA-256 of
/// its public key (so the id cannot name another key).
pub fn key_id_of(public: &VerifyingKey) -> String {
    let digest = Sha256::digest(public.as_bytes());
    hex::encode(digest.get(..8).unwrap_or_default())
}

/// Where an audit signing key came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyOrigin {
    /// Derived from the root key by custos before signing keys had a
    /// history; kept so that the checkpoints it signed still verify.
    RootDerived,
    /// Generated at random and stored wrapped under the root key.
    Generated,
}

impl KeyOrigin {
    /// The name stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyOrigin::RootDerived => "root-derived",
            KeyOrigin::Generated => "generated",
        }
    }

    /// Parses [`KeyOrigin::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "root-derived" => Some(KeyOrigin::RootDerived),
            "generated" => Some(KeyOrigin::Generated),
            _ => None,
        }
    }
}

/// The secret half of an audit signing key, with its id. Never printed;
/// zeroized on drop (ed25519-dalek's `SigningKey` is `ZeroizeOnDrop`).
#[derive(Clone)]
pub struct AuditSigningKey {
    id: String,
    key: SigningKey,
}

impl std::fmt::Debug for AuditSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSigningKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl AuditSigningKey {
    /// A fresh random key.
    pub fn generate(rng: &mut impl rand_core::CryptoRngCore) -> Self {
        Self::from_signing_key(SigningKey::generate(rng))
    }

    /// A key from its 32-byte seed (as unwrapped from the key store).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self::from_signing_key(SigningKey::from_bytes(seed))
    }

    pub(crate) fn from_signing_key(key: SigningKey) -> Self {
        Self {
            id: key_id_of(&key.verifying_key()),
            key,
        }
    }

    /// The key's id (see [`key_id_of`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The Ed25519 key, to sign with.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The 32-byte seed, for wrapping only.
    pub fn seed(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// The history entry of this key, endorsed by `endorser` (the key it
    /// replaces, or itself when it is the first).
    pub fn entry(
        &self,
        origin: KeyOrigin,
        valid_from_seq: i64,
        created_us: i64,
        previous: Option<&str>,
        endorser: &AuditSigningKey,
    ) -> PublicKeyEntry {
        let mut e = PublicKeyEntry {
            key_id: self.id.clone(),
            public_key: hex::encode(self.verifying_key().as_bytes()),
            origin,
            valid_from_seq,
            created_us,
            previous: previous.map(str::to_owned),
            endorsement: String::new(),
        };
        let sig = endorser.key.sign(&e.message());
        e.endorsement = hex::encode(sig.to_bytes());
        e
    }
}

/// One key of the history, as stored and as written for auditors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyEntry {
    /// See [`key_id_of`].
    pub key_id: String,
    /// The Ed25519 public key, hex of 32 bytes.
    pub public_key: String,
    /// Where the key came from.
    pub origin: KeyOrigin,
    /// The first audit entry the key was meant to sign checkpoints from
    /// (the previous key's retirement).
    pub valid_from_seq: i64,
    /// When the key was made, microseconds since the Unix epoch.
    pub created_us: i64,
    /// The id of the key it replaced (which signs `endorsement`); none for
    /// the first key, which endorses itself.
    pub previous: Option<String>,
    /// Ed25519 signature (hex) over all the fields above by the previous
    /// key, or by this key if it is the first.
    pub endorsement: String,
}

impl PublicKeyEntry {
    fn message(&self) -> Vec<u8> {
        let mut m = b"custos-audit-key-v1".to_vec();
        for part in [
            self.key_id.as_bytes(),
            self.public_key.as_bytes(),
            self.origin.as_str().as_bytes(),
            self.previous.as_deref().unwrap_or("").as_bytes(),
        ] {
            m.extend_from_slice(&(part.len() as u64).to_be_bytes());
            m.extend_from_slice(part);
        }
        m.extend_from_slice(&self.valid_from_seq.to_be_bytes());
        m.extend_from_slice(&self.created_us.to_be_bytes());
        m
    }

    /// The public key, checked against its id.
    pub fn verifying_key(&self) -> Result<VerifyingKey, KeyHistoryError> {
        let bad = || KeyHistoryError::BadKey(self.key_id.clone());
        let mut raw = [0u8; 32];
        hex::decode_to_slice(&self.public_key, &mut raw).map_err(|_| bad())?;
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| bad())?;
        if key_id_of(&key) != self.key_id || hex::encode(raw) != self.public_key {
            return Err(bad());
        }
        Ok(key)
    }
}

/// What is wrong with a public key history.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyHistoryError {
    /// The document is not a history of this format.
    #[error("not a custos audit public key history (expected format {HISTORY_FORMAT})")]
    Format,
    /// A public key does not parse or does not match its id.
    #[error("key {0}: public key malformed or not matching its id")]
    BadKey(String),
    /// An entry is not endorsed by the key before it (or the first by itself).
    #[error("key {0}: endorsement invalid (not vouched for by the key it replaced)")]
    Endorsement(String),
    /// The history has no key.
    #[error("the public key history is empty")]
    Empty,
    /// The history does not start with the keys trusted beforehand.
    #[error("key {0}: differs from the trusted public key file")]
    Untrusted(String),
}

/// Every audit signing key ever used, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyHistory {
    /// Always [`HISTORY_FORMAT`].
    pub format: String,
    /// The keys, oldest first; the last signs new checkpoints.
    pub keys: Vec<PublicKeyEntry>,
}

impl PublicKeyHistory {
    /// A history of `keys`, oldest first.
    pub fn new(keys: Vec<PublicKeyEntry>) -> Self {
        Self {
            format: HISTORY_FORMAT.to_owned(),
            keys,
        }
    }

    /// Checks the format, every key against its id, and the endorsement
    /// chain: the first key signed its own entry, every later one was
    /// signed by the key before it.
    pub fn check(&self) -> Result<(), KeyHistoryError> {
        if self.format != HISTORY_FORMAT {
            return Err(KeyHistoryError::Format);
        }
        let mut previous: Option<&PublicKeyEntry> = None;
        if self.keys.is_empty() {
            return Err(KeyHistoryError::Empty);
        }
        for e in &self.keys {
            let own = e.verifying_key()?;
            let endorser = match previous {
                None if e.previous.is_none() => own,
                Some(p) if e.previous.as_deref() == Some(p.key_id.as_str()) => p.verifying_key()?,
                _ => return Err(KeyHistoryError::Endorsement(e.key_id.clone())),
            };
            let sig = decode_signature(&e.endorsement)
                .ok_or_else(|| KeyHistoryError::Endorsement(e.key_id.clone()))?;
            endorser
                .verify(&e.message(), &sig)
                .map_err(|_| KeyHistoryError::Endorsement(e.key_id.clone()))?;
            previous = Some(e);
        }
        Ok(())
    }

    /// Checks this history ([`PublicKeyHistory::check`]) and that it
    /// starts with every key of `trusted` (a history given to the auditor
    /// earlier, checked too): later keys are then trusted through their
    /// endorsements.
    pub fn check_against(&self, trusted: &PublicKeyHistory) -> Result<(), KeyHistoryError> {
        trusted.check()?;
        self.check()?;
        for (i, t) in trusted.keys.iter().enumerate() {
            if self.keys.get(i) != Some(t) {
                return Err(KeyHistoryError::Untrusted(t.key_id.clone()));
            }
        }
        Ok(())
    }

    /// The public key of `key_id`, if it is in the history.
    pub fn key(&self, key_id: &str) -> Option<VerifyingKey> {
        self.keys
            .iter()
            .find(|k| k.key_id == key_id)
            .and_then(|k| k.verifying_key().ok())
    }

    /// The id of the root-derived key, if the history has one (it names
    /// the checkpoints stored without a key id).
    pub fn root_derived(&self) -> Option<&str> {
        self.keys
            .iter()
            .find(|k| k.origin == KeyOrigin::RootDerived)
            .map(|k| k.key_id.as_str())
    }

    /// The history as pretty JSON (the documented file format).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// Parses the JSON file format.
    pub fn from_json(s: &str) -> Result<Self, KeyHistoryError> {
        let h: Self = serde_json::from_str(s).map_err(|_| KeyHistoryError::Format)?;
        if h.format != HISTORY_FORMAT {
            return Err(KeyHistoryError::Format);
        }
        Ok(h)
    }
}

pub(crate) fn decode_signature(hex_sig: &str) -> Option<Signature> {
    let mut raw = [0u8; 64];
    hex::decode_to_slice(hex_sig, &mut raw).ok()?;
    (hex::encode(raw) == hex_sig).then(|| Signature::from_bytes(&raw))
}

#[cfg(test)]
mod tests {
    // Tests draw real randomness; the code under test takes it as a parameter.
    #![allow(clippy::disallowed_types)]

    use super::*;
    use rand_core::OsRng;

    fn history() -> (PublicKeyHistory, AuditSigningKey) {
        let a = AuditSigningKey::generate(&mut OsRng);
        let b = AuditSigningKey::generate(&mut OsRng);
        let ea = a.entry(KeyOrigin::Generated, 1, 10, None, &a);
        let eb = b.entry(KeyOrigin::Generated, 50, 20, Some(a.id()), &a);
        (PublicKeyHistory::new(vec![ea, eb]), b)
    }

    #[test]
    fn endorsements_chain_every_key_to_the_first() {
        let (h, _) = history();
        h.check().unwrap();
        let first = PublicKeyHistory::new(vec![h.keys[0].clone()]);
        h.check_against(&first).unwrap();
        let back = PublicKeyHistory::from_json(&h.to_json()).unwrap();
        assert_eq!(back, h);

        // A key slipped in without the previous key's endorsement.
        let mut forged = h.clone();
        let c = AuditSigningKey::generate(&mut OsRng);
        forged
            .keys
            .push(c.entry(KeyOrigin::Generated, 90, 30, Some(&h.keys[1].key_id), &c));
        assert!(matches!(
            forged.check(),
            Err(KeyHistoryError::Endorsement(_))
        ));

        // Metadata edited after endorsement.
        let mut edited = h.clone();
        edited.keys[1].valid_from_seq = 51;
        assert!(edited.check().is_err());

        // Another history is not trusted.
        let (other, _) = history();
        assert!(matches!(
            h.check_against(&other),
            Err(KeyHistoryError::Untrusted(_))
        ));
    }

    #[test]
    fn key_ids_name_their_key_and_debug_shows_no_secret() {
        let k = AuditSigningKey::generate(&mut OsRng);
        assert_eq!(k.id(), key_id_of(&k.verifying_key()));
        assert_eq!(k.id().len(), 16);
        let shown = format!("{k:?}");
        assert!(!shown.contains(&hex::encode(k.seed())));
    }
}
