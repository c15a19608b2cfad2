//! Errors of the domain core. Messages never carry personal values or key
//! material: they name the field or the kind of thing that was wrong.

/// Why a domain operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CoreError {
    /// An identifier did not have the documented shape.
    #[error("invalid {kind}: {reason}")]
    InvalidId {
        /// Which kind of identifier (`tenant id`, `subject id`, …).
        kind: &'static str,
        /// What rule it broke.
        reason: &'static str,
    },
    /// A ciphertext failed authentication: wrong key, wrong context or tampered.
    #[error("decryption failed: wrong key, wrong context or tampered ciphertext")]
    Decrypt,
    /// An envelope was too short or had an unknown version byte.
    #[error("malformed envelope")]
    MalformedEnvelope,
    /// An identity value could not be normalised (e.g. a phone without country code).
    #[error("invalid {kind} identity: {reason}")]
    InvalidIdentity {
        /// The identity kind (`email`, `phone`, …).
        kind: String,
        /// What was wrong, without echoing the value.
        reason: &'static str,
    },
    /// Key material had the wrong length or encoding.
    #[error("invalid key material: {0}")]
    InvalidKey(&'static str),
    /// An unknown scope name.
    #[error("unknown scope {0:?}")]
    UnknownScope(String),
}
