//! Persistence of custos: SQLite or PostgreSQL for data, a separate database
//! for keys, and [`Vault`], the service that enforces the vault's rules on
//! top of them (encryption per subject, blind indexes, audited reveals,
//! crypto-shredding).
//!
//! The data store never holds a usable key, the key store never holds data,
//! and the root key is in neither.

mod audit_log;
mod consent;
mod db;
mod error;
mod execution;
mod keystore;
mod ledger;
pub mod owner_only;
mod record;
mod request;
mod vault;
mod wake;
mod writer;

pub use audit_log::AuditLog;
pub use consent::*;
pub use db::Engine;
pub use error::{db_kind, StoreError};
pub use execution::*;
pub use keystore::KeyStore;
#[doc(hidden)]
pub use ledger::canonical_ledger_text;
pub use request::*;
pub use vault::*;

/// Microseconds since the Unix epoch, the unit of every stored time.
pub fn now_us() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1000) as i64
}

/// Formats a stored time (µs) as RFC 3339, UTC ([`Timestamp`]).
///
/// [`Timestamp`]: custos_core::Timestamp
pub fn rfc3339(us: i64) -> String {
    custos_core::Timestamp::from_micros(us).to_rfc3339()
}
