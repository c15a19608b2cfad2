//! The person's rows as last read, kept for the accesses that follow: a
//! verified request is planned by discovering the person's identities in
//! every database (a full read of the person's rows); a moment later its
//! access step reads them to count them, and then the archive reads them
//! to write them. On tables without indexes those three reads were most of
//! an access request's time.
//!
//! Invariants: rows are reused only by `access` (never by an erasure or a
//! plan, which read under their own transaction), only for exactly the
//! same person (an HMAC of their identities under the connector's key, so
//! no value is kept for the comparison), and only within [`REUSE`] of the
//! read that produced them — an access never sees the tables older than
//! that; an erasure or a rectification forgets them, before it runs and
//! again once it committed (an access may have read meanwhile); they are
//! dropped at [`REUSE`] whatever happens, so no person's rows stay in
//! memory after it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::find::Row;

/// How long rows read for a person may serve an access of the same person.
pub(super) const REUSE: Duration = Duration::from_secs(2);

struct Kept {
    person: [u8; 32],
    at: Instant,
    rows: Vec<Vec<Row>>,
}

/// At most one person's rows, with when they were read.
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

    /// Keeps `rows` read for `person` (a fingerprint) just now, replacing
    /// any earlier, and drops them at [`REUSE`].
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

    /// A copy of the rows kept for `person`, if read less than [`REUSE`]
    /// ago.
    pub(super) fn get(&self, person: [u8; 32]) -> Option<Vec<Vec<Row>>> {
        let slot = self.slot();
        let kept = slot.as_ref()?;
        (kept.person == person && kept.at.elapsed() < REUSE).then(|| kept.rows.clone())
    }

    /// Forgets whatever is kept (before rows change).
    pub(super) fn clear(&self) {
        *self.slot() = None;
    }
}
