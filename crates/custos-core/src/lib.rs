//! Domain core of custos: identifiers, secret wrappers, the AEAD envelope and
//! key hierarchy, blind indexes, pseudonymous tokens, masking, scopes, the
//! consent ledger's rules, the lifecycle of data-subject requests and the
//! audit hash chain.
//!
//! This crate does no I/O. Time and randomness come in as parameters (a
//! [`rand_core::CryptoRngCore`] and explicit timestamps) so that storage,
//! the server and tests decide where they come from.

pub mod audit;
pub mod audit_keys;
pub mod audit_proof;
pub mod blind;
pub mod consent;
pub mod envelope;
pub mod error;
pub mod ids;
pub mod keys;
pub mod mask;
pub mod request;
pub mod scope;
pub mod secret;
pub mod timestamp;

pub use error::CoreError;
pub use rand_core;
pub use timestamp::Timestamp;
