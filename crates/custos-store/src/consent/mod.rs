//! The consent ledger on the vault (issue 4): policy versions, append-only
//! events with encrypted proof, the materialised current state, the check,
//! suppression lists, receipts and bulk import.
//!
//! Invariants:
//! * Events and policy versions are only ever inserted (the schema's
//!   triggers refuse UPDATE and DELETE). Each event commits in the same
//!   writer transaction as its materialised state and its audit entry.
//! * `consent_state` is the greatest event per (subject, purpose) by
//!   [`EventKey`](custos_core::consent::EventKey), maintained by a
//!   conditional upsert; it always equals [`fold`] of the events, and
//!   [`Consent::rebuild_state`] recomputes it from them.
//! * Proof (IP address, user agent) is sealed under the subject's own key
//!   with a context naming tenant, subject, "consent" and the event id:
//!   erasing the subject shreds it with everything else.
//! * The rules (which actions a basis accepts, revalidation, the answer of
//!   a check) live in `custos_core::consent`; purposes are handed in as
//!   [`PurposeRule`]s so that storage does not depend on the data map.
//!
//! Caching: the check answers from a per-process cache of subject state and
//! policy versions. Writes through this process update it at once. Writes
//! through other servers sharing the store are followed in the audit log
//! (every change that can alter an answer is audited in the transaction
//! that makes it): at most every [`FOLLOW_EVERY`] a check first reads the
//! audit entries committed since the last look and drops what they touch,
//! so another server's write is seen within that interval. If the audit
//! log cannot be read the whole cache is dropped. [`DEFAULT_CHECK_TTL`]
//! (configurable, zero disables the cache) only bounds the age of an
//! entry as a safety net; an entry past half to three quarters of it
//! (spread by subject) is read again in the background by the first check
//! that finds it so, which the cache still answers. The cache holds ids and states, never personal data.

use sqlx::any::AnyRow;
use sqlx::Row;

use custos_core::consent::{ConsentState, PolicyVersion, Revalidation, StateKind};
use custos_core::ids::TenantId;
use custos_core::scope::Scope;

use crate::vault::Actor;
use crate::{rfc3339, StoreError};

mod cache;
mod change;
mod check;
mod import;
pub mod import_csv;
mod ledger;
mod views;

pub(crate) use cache::ConsentCache;
pub use cache::{DEFAULT_CHECK_TTL, FOLLOW_EVERY};
pub use import::{IMPORT_CALL_EVENTS, IMPORT_JOB_EVENTS};
pub use views::*;

/// Longest policy text accepted.
pub const MAX_POLICY_TEXT: usize = 256 * 1024;

fn authorize(actor: &Actor, tenant: &TenantId, any: &[Scope]) -> Result<(), StoreError> {
    match actor {
        Actor::Admin => Ok(()),
        Actor::Key(p) => {
            if p.tenant != *tenant {
                return Err(StoreError::NotFound("tenant"));
            }
            if any.is_empty() {
                Ok(())
            } else {
                p.require_any(any)
            }
        }
    }
}

fn can_reveal(actor: &Actor) -> bool {
    match actor {
        Actor::Admin => true,
        Actor::Key(p) => p.scopes.contains(Scope::Reveal),
    }
}

fn state_from_row(
    state: Option<String>,
    version: Option<i64>,
    at: Option<i64>,
    event_id: Option<String>,
) -> Result<Option<ConsentState>, StoreError> {
    match (state, at, event_id) {
        (Some(s), Some(at), Some(id)) => Ok(Some(ConsentState {
            state: StateKind::parse(&s).ok_or(StoreError::Integrity(
                custos_core::CoreError::MalformedEnvelope,
            ))?,
            version,
            since_us: at,
            event_id: id,
        })),
        _ => Ok(None),
    }
}

fn policy_from_row(r: &AnyRow) -> Result<(PolicyVersion, PolicyInfo), StoreError> {
    let purpose: String = r.try_get(0)?;
    let version: i64 = r.try_get(1)?;
    let sha = crate::keystore::to32(r.try_get(2)?)?;
    let material: i64 = r.try_get(3)?;
    let effective_us: i64 = r.try_get(4)?;
    let reval: String = r.try_get(5)?;
    let grace: Option<i64> = r.try_get(6)?;
    let created: i64 = r.try_get(7)?;
    let revalidation = match (reval.as_str(), grace) {
        ("grace_until", Some(t)) => Revalidation::GraceUntil(t),
        _ => Revalidation::Deny,
    };
    Ok((
        PolicyVersion {
            version,
            text_sha256: sha,
            material: material != 0,
            effective_us,
            revalidation,
        },
        PolicyInfo {
            purpose,
            version,
            text_sha256: hex::encode(sha),
            material: material != 0,
            effective_at: rfc3339(effective_us),
            revalidation: reval,
            grace_until: grace.map(rfc3339),
            published_at: rfc3339(created),
        },
    ))
}

const POLICY_COLS: &str = "purpose, version, text_sha256, material, effective_us, revalidation, grace_until_us, created_us";

/// `$first, …` (PostgreSQL) or `?, …` (SQLite) for an `IN (…)` list of `n`
/// values bound after `first - 1` others. SQLite gets anonymous
/// placeholders for the reason given at [`crate::db::Engine::values`]
/// (numbered ones make a long list quadratic to bind); its `?` take the
/// next numbers, so a `$1` before the list still binds first.
fn in_marks(engine: crate::db::Engine, n: usize, first: usize) -> String {
    let mut s = String::with_capacity(n * 6);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        match engine {
            crate::db::Engine::Sqlite => s.push('?'),
            crate::db::Engine::Postgres => {
                s.push('$');
                s.push_str(&(first + i).to_string());
            }
        }
    }
    s
}
