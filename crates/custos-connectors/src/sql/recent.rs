//! The rows a discovery read, kept for the access that follows it: a
//! verified request is planned by discovering the person's identities in
//! every database (a full read of the person's rows), and its access step
//! starts a moment later with the same identities. Reading everything
//! twice is the larger part of an access on tables without indexes.
//!
//! Invariants: rows are reused only by `access` (never by an erasure or a
//! plan, which read under their own transaction), only for exactly the
//! same person (an HMAC of their identities under the connector's key, so
//! no value is kept for the comparison), only within [`REUSE`] of being
//! read, and only once; the rows are dropped at [`REUSE`] whatever happens,
//! so no person's rows stay in memory after it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::find::Row;

/// How long rows read by a discovery may serve an access.
pub(super) const REUSE: Duration = Duration::from_secs(2);

struct Kept {
    person: [u8; 32],
    at: Instant,
    rows: Vec<Vec<Row>>,
}

/// At most one discovery's rows.
#[derive(Clone, Default)]
pub(super) struct Recent(Arc<Mutex<Option<Kept>>>);

impl Recent {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Kept>> {
        // A poisoned slot holds nothing worth keeping.
        self.0.lock().unwrap_or_else(|p| {
            let mut g = p.into_inner();
            *g = None;
            g
        })
    }

    /// Keeps `rows` read for `person` (a fingerprint), replacing any
    /// earlier, and drops them at [`REUSE`] unless taken first.
    pub(super) fn keep(&self, person: [u8; 32], rows: Vec<Vec<Row>>) {
        let at = Instant::now();
        *self.slot() = Some(Kept { person, at, rows });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let me = self.clone();
            rt.spawn(async move {
                tokio::time::sleep(REUSE).await;
                let mut slot = me.slot();
                if slot.as_ref().is_some_and(|k| k.at == at) {
                    *slot = None;
                }
            });
        }
    }

    /// The rows kept for `person`, if read less than [`REUSE`] ago; the
    /// slot is empty afterwards either way.
    pub(super) fn take(&self, person: [u8; 32]) -> Option<Vec<Vec<Row>>> {
        let kept = self.slot().take()?;
        (kept.person == person && kept.at.elapsed() < REUSE).then_some(kept.rows)
    }

    /// Forgets whatever is kept (before an erasure).
    pub(super) fn clear(&self) {
        *self.slot() = None;
    }
}
