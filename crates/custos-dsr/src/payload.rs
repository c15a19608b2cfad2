//! What a request carries of the person while it runs, sealed in the store
//! under the request's key and wiped when the request closes.

use std::collections::BTreeMap;

use custos_core::secret::Personal;
use custos_core::CoreError;
use custos_store::StoreError;
use serde::{Deserialize, Serialize};

/// What a request knows of the person while it runs.
#[derive(Default, Serialize, Deserialize)]
pub struct Payload {
    /// Identity kind (`email`, `user_id`, …) → values.
    #[serde(default)]
    pub identities: BTreeMap<String, Vec<String>>,
    /// Rectification: field → new value; `None` (JSON `null`) clears the
    /// field, the text `"null"` is a value like any other.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changes: BTreeMap<String, Option<String>>,
}

impl Payload {
    /// The payload as the bytes the store seals.
    pub fn seal(&self) -> Result<Personal<Vec<u8>>, StoreError> {
        serde_json::to_vec(self)
            .map(Personal::new)
            .map_err(|_| StoreError::Integrity(CoreError::MalformedEnvelope))
    }

    /// Reads what [`Payload::seal`] wrote. A payload that does not decode
    /// is an error, never "no identities": an erasure that found nobody
    /// to erase would otherwise pass its verification.
    pub(crate) fn open(p: &Personal<Vec<u8>>) -> Result<Self, StoreError> {
        serde_json::from_slice(p.expose())
            .map_err(|_| StoreError::Integrity(CoreError::MalformedEnvelope))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_payload_that_does_not_decode_is_an_error() {
        let mut p = Payload::default();
        p.identities.insert("email".into(), vec!["a@b.c".into()]);
        let sealed = p.seal().unwrap();
        let back = Payload::open(&sealed).unwrap();
        assert_eq!(back.identities, p.identities);
        for bad in [&b"not json"[..], b"", b"[1,2]", b"{\"identities\": 3}"] {
            assert!(Payload::open(&Personal::new(bad.to_vec())).is_err());
        }
    }
}
