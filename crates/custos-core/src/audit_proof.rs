//! The exportable audit proof: the whole chain (entries with their hashes
//! and their non-personal fields), its signed checkpoints, the anchor and
//! the public key history, in one JSON document that anyone can check
//! offline, without a store or a secret (see `docs/audit.md`).
//!
//! Checking it recomputes every entry hash, checks every checkpoint with
//! the key it names in the history, and the history's endorsements (or
//! that it extends a history trusted beforehand). Fields that no hash or
//! signature covers are not in the document, and a document that is not
//! byte for byte as custos writes it (its canonical form) is refused, so
//! any change to it is detected.

use serde::{Deserialize, Serialize};

use crate::audit::{AuditEntry, ChainBreak, ChainVerifier, Checkpoint};
use crate::audit_keys::{KeyHistoryError, PublicKeyHistory};

/// The `format` of a proof document.
pub const PROOF_FORMAT: &str = "custos-audit-proof/1";

/// See the module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditProof {
    /// Always [`PROOF_FORMAT`].
    pub format: String,
    /// Every entry of the chain, from the first.
    pub entries: Vec<AuditEntry>,
    /// Every signed checkpoint, by position.
    pub checkpoints: Vec<Checkpoint>,
    /// The latest checkpoint anchored in the key store, which shows the
    /// chain was not cut short before the export.
    pub anchor: Option<Checkpoint>,
    /// Every key that signed checkpoints.
    pub public_keys: PublicKeyHistory,
}

/// What a valid proof holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofReport {
    /// Entries verified.
    pub entries: i64,
    /// Checkpoints verified (with the anchor).
    pub checkpoints: usize,
    /// Ids of the keys in the history, oldest first.
    pub key_ids: Vec<String>,
}

/// Why a proof is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Not JSON, not this format, or not byte for byte as written.
    #[error("not an intact custos audit proof ({0})")]
    Malformed(&'static str),
    /// The public key history is wrong or not the trusted one.
    #[error("public key history: {0}")]
    Keys(#[from] KeyHistoryError),
    /// The chain or a checkpoint is broken.
    #[error("{0}")]
    Chain(#[from] ChainBreak),
}

impl AuditProof {
    /// A proof of `entries` (every entry, in order).
    pub fn new(
        entries: Vec<AuditEntry>,
        checkpoints: Vec<Checkpoint>,
        anchor: Option<Checkpoint>,
        public_keys: PublicKeyHistory,
    ) -> Self {
        // Checkpoints without a key id name the root-derived key; the
        // document names it, so that every field is signed or hashed.
        let name = |mut c: Checkpoint| {
            if c.key_id.is_none() {
                c.key_id = public_keys.root_derived().map(str::to_owned);
            }
            c
        };
        Self {
            format: PROOF_FORMAT.to_owned(),
            entries,
            checkpoints: checkpoints.into_iter().map(name).collect(),
            anchor: anchor.map(name),
            public_keys,
        }
    }

    /// The document, in its canonical form.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// Checks a proof document (see the module); with `trusted`, its key
    /// history must extend that one.
    pub fn verify(
        document: &[u8],
        trusted: Option<&PublicKeyHistory>,
    ) -> Result<ProofReport, ProofError> {
        let proof: AuditProof = serde_json::from_slice(document)
            .map_err(|_| ProofError::Malformed("not JSON of the format"))?;
        if proof.format != PROOF_FORMAT {
            return Err(ProofError::Malformed("unknown format"));
        }
        if proof.to_json().as_bytes() != document {
            return Err(ProofError::Malformed(
                "not in the form custos writes: altered",
            ));
        }
        match trusted {
            Some(t) => proof.public_keys.check_against(t)?,
            None => proof.public_keys.check()?,
        }
        let all: Vec<&Checkpoint> = proof.checkpoints.iter().chain(&proof.anchor).collect();
        let mut v = ChainVerifier::new(all.iter().map(|c| c.seq));
        for e in &proof.entries {
            v.push(e)?;
        }
        for c in &all {
            if c.key_id.is_none() {
                return Err(ProofError::Malformed("a checkpoint names no key"));
            }
            v.check_in(c, &proof.public_keys)?;
        }
        Ok(ProofReport {
            entries: v.len(),
            checkpoints: all.len(),
            key_ids: proof
                .public_keys
                .keys
                .iter()
                .map(|k| k.key_id.clone())
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    // Tests draw real randomness; the code under test takes it as a parameter.
    #![allow(clippy::disallowed_types)]

    use super::*;
    use crate::audit::{chain, AuditEvent, GENESIS};
    use crate::audit_keys::{AuditSigningKey, KeyOrigin};
    use proptest::prelude::*;
    use rand_core::OsRng;

    /// A proof of 6 entries, with a checkpoint by the first key, a
    /// rotation, and an anchor by the second.
    fn proof() -> (String, PublicKeyHistory) {
        let a = AuditSigningKey::generate(&mut OsRng);
        let b = AuditSigningKey::generate(&mut OsRng);
        let mut prev = GENESIS;
        let entries: Vec<_> = (1..=6)
            .map(|i| {
                let e = chain(
                    prev,
                    i,
                    1_000 + i,
                    AuditEvent {
                        tenant: Some("acme".into()),
                        actor: "key_1".into(),
                        action: "reveal".into(),
                        subject: Some(format!("sub_{i}")),
                        purpose: (i % 2 == 0).then(|| "support".into()),
                        outcome: "ok".into(),
                    },
                );
                prev = e.hash;
                e
            })
            .collect();
        let history = PublicKeyHistory::new(vec![
            a.entry(KeyOrigin::Generated, 1, 900, None, &a),
            b.entry(KeyOrigin::Generated, 4, 1_003, Some(a.id()), &a),
        ]);
        let cps = vec![Checkpoint::sign(&a, 3, entries[2].hash)];
        let anchor = Some(Checkpoint::sign(&b, 6, entries[5].hash));
        let trusted = PublicKeyHistory::new(vec![history.keys[0].clone()]);
        (
            AuditProof::new(entries, cps, anchor, history).to_json(),
            trusted,
        )
    }

    #[test]
    fn an_intact_proof_verifies_with_and_without_trusted_keys() {
        let (doc, trusted) = proof();
        let r = AuditProof::verify(doc.as_bytes(), None).unwrap();
        assert_eq!((r.entries, r.checkpoints, r.key_ids.len()), (6, 2, 2));
        AuditProof::verify(doc.as_bytes(), Some(&trusted)).unwrap();
        let (_, stranger) = proof();
        assert!(matches!(
            AuditProof::verify(doc.as_bytes(), Some(&stranger)),
            Err(ProofError::Keys(KeyHistoryError::Untrusted(_)))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any single byte changed anywhere in a proof is detected.
        #[test]
        fn any_single_byte_change_is_detected(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let (doc, trusted) = proof();
            let mut bytes = doc.into_bytes();
            let i = at.index(bytes.len());
            prop_assume!(bytes[i] != byte);
            bytes[i] = byte;
            prop_assert!(AuditProof::verify(&bytes, None).is_err());
            prop_assert!(AuditProof::verify(&bytes, Some(&trusted)).is_err());
        }
    }
}
