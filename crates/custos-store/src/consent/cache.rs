//! The check's per-process cache of subject states and policy versions,
//! and how it follows other servers' changes through the audit log (see
//! the module docs of `consent`). It holds ids and states, never personal
//! data.
//!
//! Subjects sit in a bounded concurrent cache (`vault::bounded_cache`:
//! sharded, read locks on the hot path; when full it evicts entries cached
//! but not read since, and keeps those being read). An entry is immutable behind an
//! `Arc` but for its refresh flag: a check clones the `Arc` under a shard's
//! read lock, and a store replaces the entry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Row;

use custos_core::consent::{ConsentState, Policies};
use custos_core::ids::{SubjectId, TenantId};

use crate::vault::lock;
use crate::{now_us, StoreError, Vault};

/// Default lifetime of cached check answers' inputs (see module docs).
pub const DEFAULT_CHECK_TTL: Duration = Duration::from_secs(30);

/// How often a check looks for other servers' changes in the audit log.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Audited actions after which a cached check answer may be wrong.
pub(super) const INVALIDATING: &[&str] = &[
    "consent.grant",
    "consent.withdraw",
    "consent.object",
    "consent.import",
    "consent.rebuild",
    "consent.policy.publish",
    "erase",
    "restrict",
    "unrestrict",
    "tenant.shred",
];

/// Upper bound of cached subjects (past it, entries are evicted one by
/// one, those not read again first).
pub(super) const CHECK_CACHE_MAX: usize = 500_000;

#[derive(Clone, Debug)]
pub(super) struct SubjectStatus {
    pub(super) tenant: TenantId,
    pub(super) erased_us: Option<i64>,
    pub(super) restricted: bool,
}

#[derive(Debug)]
pub(super) struct CachedSubject {
    pub(super) fetched: Instant,
    pub(super) status: SubjectStatus,
    pub(super) purposes: HashMap<String, Option<ConsentState>>,
    /// A check has started reading it again (see [`ConsentCache::cached`]).
    pub(super) refreshing: AtomicBool,
}

/// Age at which a subject's cache entry is read again: between half and
/// three quarters of its lifetime, spread by the (random) subject id, so
/// that entries cached together (a cold cache filling up) are not all
/// read again in the same moment.
pub(super) fn refresh_age(id: &SubjectId, ttl: Duration) -> Duration {
    let spread = id.as_bytes().first().copied().unwrap_or(0);
    ttl / 2 + ttl / 4 * u32::from(spread) / 256
}

/// A cached check input and whether the caller should read it again in
/// the background.
pub(super) struct CacheHit {
    pub(super) status: SubjectStatus,
    pub(super) state: Option<ConsentState>,
    pub(super) refresh: bool,
}

pub(super) type PolicyKey = (TenantId, String);

/// Per-process caches of the consent ledger (ids and states only).
#[derive(Debug)]
pub(crate) struct ConsentCache {
    pub(super) ttl_us: AtomicU64,
    subjects: quick_cache::sync::Cache<SubjectId, Arc<CachedSubject>>,
    pub(super) policies: Mutex<HashMap<PolicyKey, (Instant, Arc<Policies>)>>,
    /// Audit sequence number up to which changes have been applied.
    pub(super) followed_seq: AtomicI64,
    /// When (µs) the next check reads the audit log.
    pub(super) next_follow_us: AtomicI64,
}

impl Default for ConsentCache {
    fn default() -> Self {
        Self::with_capacity(CHECK_CACHE_MAX)
    }
}

impl ConsentCache {
    /// A cache of at most about `subjects` subjects.
    pub(super) fn with_capacity(subjects: usize) -> Self {
        Self {
            ttl_us: AtomicU64::new(DEFAULT_CHECK_TTL.as_micros() as u64),
            subjects: crate::vault::bounded_cache(subjects),
            policies: Mutex::new(HashMap::new()),
            followed_seq: AtomicI64::new(-1),
            next_follow_us: AtomicI64::new(0),
        }
    }

    pub(super) fn clear(&self) {
        self.clear_subjects();
        lock(&self.policies).clear();
    }

    /// Drops every cached subject (policies stay).
    pub(super) fn clear_subjects(&self) {
        self.subjects.clear();
    }

    pub(super) fn ttl(&self) -> Duration {
        Duration::from_micros(self.ttl_us.load(Ordering::Relaxed))
    }

    /// Drops everything cached about a subject (after a write, an erasure
    /// or a restriction through this process).
    pub(crate) fn forget_subject(&self, id: &SubjectId) {
        self.subjects.remove(id);
    }

    /// [`Self::forget_subject`] for many.
    pub(super) fn forget_subjects(&self, ids: &[SubjectId]) {
        for id in ids {
            self.subjects.remove(id);
        }
    }

    pub(super) fn forget_policies(&self, tenant: &TenantId, purpose: &str) {
        lock(&self.policies).remove(&(tenant.clone(), purpose.to_owned()));
    }

    /// The cached inputs of a check, if fresh. An entry past its
    /// [`refresh_age`] is still answered from, and the first check to find
    /// it so is told to read it again in the background: a subject checked
    /// steadily never waits for the database when its entry expires
    /// (otherwise, with many hot subjects, one check in a few dozen would
    /// be such a read, and that read would be the 99th percentile).
    pub(super) fn cached(&self, id: &SubjectId, purpose: &str) -> Option<CacheHit> {
        let ttl = self.ttl();
        if ttl.is_zero() {
            return None;
        }
        let c = self.subjects.get(id)?;
        let age = c.fetched.elapsed();
        if age >= ttl {
            return None;
        }
        let state = c.purposes.get(purpose)?.clone();
        let refresh = age >= refresh_age(id, ttl) && !c.refreshing.swap(true, Ordering::Relaxed);
        Some(CacheHit {
            status: c.status.clone(),
            state,
            refresh,
        })
    }

    /// Caches what was read while the audit log had been followed up to
    /// `seen`. If a follow has moved on since, the read may predate a
    /// change it already applied, so nothing is cached.
    pub(super) fn store(
        &self,
        id: SubjectId,
        status: SubjectStatus,
        purpose: &str,
        st: Option<ConsentState>,
        seen: i64,
    ) {
        let ttl = self.ttl();
        if ttl.is_zero() || self.followed_seq.load(Ordering::Acquire) != seen {
            return;
        }
        // The entry is replaced, keeping its other purposes and its time,
        // unless it is due for a refresh: then it starts over with this
        // read (the refresh, or a purpose read late), since its other
        // purposes were read at the old time and would keep the new one's
        // lifetime. (Two stores of one subject at once may keep only one
        // of their purposes: a later check reads the other again.)
        let entry = match self.subjects.get(&id) {
            Some(old) if old.fetched.elapsed() < refresh_age(&id, ttl) => {
                let mut purposes = old.purposes.clone();
                purposes.insert(purpose.to_owned(), st);
                CachedSubject {
                    fetched: old.fetched,
                    status,
                    purposes,
                    refreshing: AtomicBool::new(old.refreshing.load(Ordering::Relaxed)),
                }
            }
            _ => CachedSubject {
                fetched: Instant::now(),
                status,
                purposes: HashMap::from([(purpose.to_owned(), st)]),
                refreshing: AtomicBool::new(false),
            },
        };
        self.subjects.insert(id, Arc::new(entry));
        // A follow that moved on while this was stored may have dropped
        // the subject just before the insert: it moves `followed_seq`
        // before dropping entries, so looking again after the insert sees
        // it, and the entry goes.
        if self.followed_seq.load(Ordering::Acquire) != seen {
            self.subjects.remove(&id);
        }
    }
}

impl Vault {
    /// Applies other servers' changes to the check cache (see the module
    /// docs): at most once per [`FOLLOW_EVERY`], by the first check that
    /// finds the interval over.
    pub(super) async fn follow_changes(&self) {
        let c = &self.inner.consent;
        if c.ttl().is_zero() {
            return;
        }
        let now = now_us();
        let due = c.next_follow_us.load(Ordering::Acquire);
        if now < due
            || c.next_follow_us
                .compare_exchange(
                    due,
                    now + FOLLOW_EVERY.as_micros() as i64,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        if let Err(e) = self.apply_followed_changes().await {
            tracing::warn!(error = %e, "audit log not readable; consent check cache dropped");
            c.clear();
        }
    }

    pub(super) async fn apply_followed_changes(&self) -> Result<(), StoreError> {
        let c = &self.inner.consent;
        let head: i64 = sqlx::query("SELECT seq FROM audit_head WHERE id = 1")
            .fetch_one(&self.inner.read)
            .await?
            .try_get(0)?;
        let last = c.followed_seq.load(Ordering::Acquire);
        if last < 0 {
            // First look: drop whatever was cached before it.
            c.followed_seq.fetch_max(head, Ordering::AcqRel);
            c.clear();
            return Ok(());
        }
        if head <= last {
            return Ok(());
        }
        let marks = (0..INVALIDATING.len())
            .map(|i| format!("${}", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT action, subject FROM audit_log WHERE seq > $1 AND seq <= $2 AND action IN ({marks})"
        );
        let mut q = sqlx::query(&sql).bind(last).bind(head);
        for a in INVALIDATING {
            q = q.bind(*a);
        }
        let rows = q.fetch_all(&self.inner.read).await?;
        // Moved on before dropping entries: a check that read the database
        // before this follow then declines to cache (see `store`).
        c.followed_seq.fetch_max(head, Ordering::AcqRel);
        for r in rows {
            let action: String = r.try_get(0)?;
            let subject: Option<String> = r.try_get(1)?;
            match (action.as_str(), subject.map(|s| SubjectId::parse(&s))) {
                ("consent.policy.publish", _) => lock(&c.policies).clear(),
                (_, Some(Ok(id))) => c.forget_subject(&id),
                // Bulk changes (imports, rebuilds, a shredded tenant).
                _ => c.clear(),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use custos_core::rand_core::OsRng;

    fn status() -> SubjectStatus {
        SubjectStatus {
            tenant: TenantId::parse("acme").unwrap(),
            erased_us: None,
            restricted: false,
        }
    }

    fn ids(n: usize) -> Vec<SubjectId> {
        (0..n).map(|_| SubjectId::generate(&mut OsRng)).collect()
    }

    /// What the cache lost before: once full, it was emptied, and the
    /// subjects being checked all the time were read from the database
    /// again. Now, in a cache full of subjects checked once, the subjects
    /// checked steadily get in and stay while one-off subjects pass
    /// through.
    #[test]
    fn a_full_cache_keeps_serving_the_subjects_in_use() {
        let c = ConsentCache::with_capacity(2_000);
        let seen = c.followed_seq.load(Ordering::Acquire);
        // A check: from the cache, or read (here: made up) and stored.
        let misses = crate::vault::tests::misses_in_use(
            |id| {
                let hit = c.cached(id, "newsletter").is_some();
                if !hit {
                    c.store(*id, status(), "newsletter", None, seen);
                }
                hit
            },
            1_000,
        );
        assert!(c.subjects.len() <= 2_000, "{}", c.subjects.len());
        // A few rounds for the hot subjects to be let in (a subject
        // stored but not read before the next ones push it out is let in
        // when it comes back), then no more misses. (Emptied at every
        // 2,000 stores, the old cache missed them every other round.)
        assert!(misses.iter().skip(10).all(|m| *m == 0), "{misses:?}");
    }

    #[test]
    fn purposes_refresh_and_invalidation() {
        let c = ConsentCache::with_capacity(1_000);
        let seen = c.followed_seq.load(Ordering::Acquire);
        let [a, b] = ids(2).try_into().unwrap();
        assert!(c.cached(&a, "newsletter").is_none());
        c.store(a, status(), "newsletter", None, seen);
        c.store(a, status(), "analytics", None, seen);
        let hit = c.cached(&a, "newsletter").unwrap();
        assert!(!hit.refresh && hit.state.is_none());
        assert!(c.cached(&a, "analytics").is_some());
        assert!(c.cached(&a, "sales").is_none());

        // A read that a follow overtook is not cached.
        c.followed_seq.store(seen + 1, Ordering::Release);
        c.store(b, status(), "newsletter", None, seen);
        assert!(c.cached(&b, "newsletter").is_none());

        c.forget_subject(&a);
        assert!(c.cached(&a, "newsletter").is_none());

        // Past its refresh age an entry still answers, and the first check
        // that finds it so is told to read it again.
        c.ttl_us.store(40_000, Ordering::Relaxed);
        let seen = seen + 1;
        c.store(a, status(), "newsletter", None, seen);
        std::thread::sleep(refresh_age(&a, c.ttl()));
        let first = c.cached(&a, "newsletter").unwrap();
        let second = c.cached(&a, "newsletter").unwrap();
        assert!(first.refresh && !second.refresh);
        std::thread::sleep(c.ttl());
        assert!(c.cached(&a, "newsletter").is_none());

        // A zero lifetime disables the cache.
        c.ttl_us.store(0, Ordering::Relaxed);
        c.store(b, status(), "newsletter", None, seen);
        assert!(c.cached(&b, "newsletter").is_none());
    }
}
