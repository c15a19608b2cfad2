//! The audit hash chain and its signed checkpoints.
//!
//! Each entry's hash is SHA-256 over the previous hash and the entry's
//! length-prefixed fields, so editing, removing or reordering any entry
//! breaks every later hash. Checkpoints sign `(seq, hash)` with Ed25519; the
//! latest one is also kept in the key store, so cutting off the tail of the
//! log (which leaves a valid shorter chain) is detected too.
//!
//! Each checkpoint names the key that signed it; keys and their public
//! history are in `audit_keys`, the exportable proof in `audit_proof`.
//!
//! Entries carry ids and tokens, never personal values.

use ed25519_dalek::{Signature, Signer, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit_keys::{AuditSigningKey, PublicKeyHistory};

/// The hash before the first entry.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// One audit entry as appended (before it has a sequence number and hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Tenant concerned, if any (system actions have none).
    pub tenant: Option<String>,
    /// Who acted: an API key id or `admin`.
    pub actor: String,
    /// What was done (`reveal`, `lookup`, `erase`, `tenant.create`, …).
    pub action: String,
    /// Subject id or token concerned.
    pub subject: Option<String>,
    /// Declared purpose, for reveals.
    pub purpose: Option<String>,
    /// `ok`, `denied`, `gone`, `not_found`, …
    pub outcome: String,
}

/// A stored entry: the event plus its place in the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// Microseconds since the Unix epoch.
    pub at_us: i64,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// Hash of the previous entry (hex in JSON).
    #[serde(with = "hex32")]
    pub prev_hash: [u8; 32],
    /// This entry's hash.
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
}

fn put(h: &mut Sha256, b: &[u8]) {
    h.update((b.len() as u64).to_be_bytes());
    h.update(b);
}

fn put_opt(h: &mut Sha256, b: Option<&str>) {
    match b {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            put(h, s.as_bytes());
        }
    }
}

/// The hash of an entry given its predecessor's hash.
pub fn entry_hash(prev: &[u8; 32], seq: i64, at_us: i64, e: &AuditEvent) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"custos-audit-v1");
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(at_us.to_be_bytes());
    put_opt(&mut h, e.tenant.as_deref());
    put(&mut h, e.actor.as_bytes());
    put(&mut h, e.action.as_bytes());
    put_opt(&mut h, e.subject.as_deref());
    put_opt(&mut h, e.purpose.as_deref());
    put(&mut h, e.outcome.as_bytes());
    h.finalize().into()
}

/// Links an event after `prev_hash` at position `seq`.
pub fn chain(prev_hash: [u8; 32], seq: i64, at_us: i64, event: AuditEvent) -> AuditEntry {
    let hash = entry_hash(&prev_hash, seq, at_us, &event);
    AuditEntry {
        seq,
        at_us,
        event,
        prev_hash,
        hash,
    }
}

/// A signed statement "the chain had this hash at this position".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Position of the entry checkpointed.
    pub seq: i64,
    /// That entry's hash.
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
    /// Ed25519 signature over `seq || hash` (hex in JSON).
    #[serde(with = "hexvec")]
    pub signature: Vec<u8>,
    /// The id of the key that signed it (see `audit_keys`); none on
    /// checkpoints signed before keys had ids, by the root-derived key.
    pub key_id: Option<String>,
}

fn checkpoint_message(seq: i64, hash: &[u8; 32]) -> Vec<u8> {
    let mut m = b"custos-audit-checkpoint-v1".to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m
}

impl Checkpoint {
    /// Signs the position and hash, naming the key by its id.
    pub fn sign(key: &AuditSigningKey, seq: i64, hash: [u8; 32]) -> Self {
        let sig = key.signing_key().sign(&checkpoint_message(seq, &hash));
        Self {
            seq,
            hash,
            signature: sig.to_bytes().to_vec(),
            key_id: Some(key.id().to_owned()),
        }
    }

    /// The id of the key that signed it: its own, or for checkpoints
    /// signed before keys had ids, the history's root-derived key.
    pub fn signer<'h>(&'h self, history: &'h PublicKeyHistory) -> Option<&'h str> {
        self.key_id.as_deref().or_else(|| history.root_derived())
    }

    /// Whether the signature is valid for `key`.
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let Ok(sig) = Signature::from_slice(&self.signature) else {
            return false;
        };
        key.verify(&checkpoint_message(self.seq, &self.hash), &sig)
            .is_ok()
    }
}

/// The first problem found by [`ChainVerifier`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// An entry's stored hash does not match its content: it was edited.
    #[error("entry {seq}: content does not match its hash (edited)")]
    Edited {
        /// The bad entry.
        seq: i64,
    },
    /// The previous-hash link or the numbering is broken: an entry was removed or reordered.
    #[error(
        "entry {seq}: does not follow entry {expected_prev} (an entry was removed or reordered)"
    )]
    Gap {
        /// The first entry after the gap.
        seq: i64,
        /// The sequence number expected before it.
        expected_prev: i64,
    },
    /// A checkpoint's signature is invalid or names a hash the chain does not have.
    #[error("checkpoint at entry {seq}: {reason}")]
    Checkpoint {
        /// Position of the checkpoint.
        seq: i64,
        /// What was wrong.
        reason: &'static str,
    },
    /// The chain ends before a signed checkpoint: its tail was cut off.
    #[error("log truncated: signed checkpoint names entry {checkpoint_seq} but the log ends at entry {last_seq}")]
    Truncated {
        /// The checkpointed position.
        checkpoint_seq: i64,
        /// The last entry present.
        last_seq: i64,
    },
}

/// Streaming verifier: feed entries in order, then checkpoints.
#[derive(Debug)]
pub struct ChainVerifier {
    prev_hash: [u8; 32],
    last_seq: i64,
    /// Hashes of entries at checkpointed positions, filled as entries stream by.
    seen: std::collections::HashMap<i64, [u8; 32]>,
    wanted: std::collections::HashSet<i64>,
}

impl ChainVerifier {
    /// Starts a verification; `checkpoint_seqs` are positions whose hashes
    /// must be remembered to check checkpoints afterwards.
    pub fn new(checkpoint_seqs: impl IntoIterator<Item = i64>) -> Self {
        Self {
            prev_hash: GENESIS,
            last_seq: 0,
            seen: Default::default(),
            wanted: checkpoint_seqs.into_iter().collect(),
        }
    }

    /// Checks the next entry.
    pub fn push(&mut self, e: &AuditEntry) -> Result<(), ChainBreak> {
        if e.seq != self.last_seq + 1 || e.prev_hash != self.prev_hash {
            // An edited prev_hash with the right numbering is a gap too.
            return Err(ChainBreak::Gap {
                seq: e.seq,
                expected_prev: self.last_seq,
            });
        }
        if entry_hash(&e.prev_hash, e.seq, e.at_us, &e.event) != e.hash {
            return Err(ChainBreak::Edited { seq: e.seq });
        }
        if self.wanted.contains(&e.seq) {
            self.seen.insert(e.seq, e.hash);
        }
        self.prev_hash = e.hash;
        self.last_seq = e.seq;
        Ok(())
    }

    /// Checks a checkpoint against the entries seen.
    pub fn check(&self, c: &Checkpoint, key: &VerifyingKey) -> Result<(), ChainBreak> {
        if !c.verify(key) {
            return Err(ChainBreak::Checkpoint {
                seq: c.seq,
                reason: "signature invalid",
            });
        }
        if c.seq > self.last_seq {
            return Err(ChainBreak::Truncated {
                checkpoint_seq: c.seq,
                last_seq: self.last_seq,
            });
        }
        match self.seen.get(&c.seq) {
            Some(h) if *h == c.hash => Ok(()),
            _ => Err(ChainBreak::Checkpoint {
                seq: c.seq,
                reason: "hash differs from the entry in the log",
            }),
        }
    }

    /// Checks a checkpoint with the key its id names in `history` (which
    /// the caller has checked): a key absent from the history fails.
    pub fn check_in(&self, c: &Checkpoint, history: &PublicKeyHistory) -> Result<(), ChainBreak> {
        let key = c.signer(history).and_then(|id| history.key(id));
        match key {
            Some(k) => self.check(c, &k),
            None => Err(ChainBreak::Checkpoint {
                seq: c.seq,
                reason: "signed by a key that is not in the public key history",
            }),
        }
    }

    /// Number of entries verified.
    pub fn len(&self) -> i64 {
        self.last_seq
    }

    /// Whether no entry was verified.
    pub fn is_empty(&self) -> bool {
        self.last_seq == 0
    }
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

mod hexvec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    // Tests draw real randomness; the code under test takes it as a parameter.
    #![allow(clippy::disallowed_types)]

    use super::*;
    use rand_core::OsRng;

    fn ev(i: usize) -> AuditEvent {
        AuditEvent {
            tenant: Some("acme".into()),
            actor: "key_1".into(),
            action: "reveal".into(),
            subject: Some(format!("sub_{i}")),
            purpose: Some("support".into()),
            outcome: "ok".into(),
        }
    }

    fn log(n: usize) -> Vec<AuditEntry> {
        let mut prev = GENESIS;
        (0..n)
            .map(|i| {
                let e = chain(prev, i as i64 + 1, 1000 + i as i64, ev(i));
                prev = e.hash;
                e
            })
            .collect()
    }

    fn verify(
        entries: &[AuditEntry],
        cps: &[Checkpoint],
        key: &VerifyingKey,
    ) -> Result<i64, ChainBreak> {
        let mut v = ChainVerifier::new(cps.iter().map(|c| c.seq));
        for e in entries {
            v.push(e)?;
        }
        for c in cps {
            v.check(c, key)?;
        }
        Ok(v.len())
    }

    #[test]
    fn detects_edit_removal_and_truncation() {
        let sk = AuditSigningKey::generate(&mut OsRng);
        let vk = sk.verifying_key();
        let entries = log(10);
        let cps = vec![Checkpoint::sign(&sk, 10, entries[9].hash)];
        assert_eq!(verify(&entries, &cps, &vk), Ok(10));

        let mut edited = entries.clone();
        edited[4].event.purpose = Some("marketing".into());
        assert_eq!(
            verify(&edited, &cps, &vk),
            Err(ChainBreak::Edited { seq: 5 })
        );

        let mut removed = entries.clone();
        removed.remove(3);
        assert_eq!(
            verify(&removed, &cps, &vk),
            Err(ChainBreak::Gap {
                seq: 5,
                expected_prev: 3
            })
        );

        let truncated = &entries[..7];
        assert_eq!(
            verify(truncated, &cps, &vk),
            Err(ChainBreak::Truncated {
                checkpoint_seq: 10,
                last_seq: 7
            })
        );

        let other = AuditSigningKey::generate(&mut OsRng);
        let forged = vec![Checkpoint::sign(&other, 10, entries[9].hash)];
        assert!(matches!(
            verify(&entries, &forged, &vk),
            Err(ChainBreak::Checkpoint { .. })
        ));
    }
}
