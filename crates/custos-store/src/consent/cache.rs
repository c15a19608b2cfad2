//! The check's per-process cache of subject states and policy versions,
//! and how it follows other servers' changes through the audit log (see
//! the module docs of `consent`). It holds ids and states, never personal
//! data.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
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

/// Upper bound of cached subjects (cleared wholesale when reached).
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
    pub(super) refreshing: bool,
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
    pub(super) subjects: Mutex<HashMap<SubjectId, CachedSubject>>,
    pub(super) policies: Mutex<HashMap<PolicyKey, (Instant, Arc<Policies>)>>,
    /// Audit sequence number up to which changes have been applied.
    pub(super) followed_seq: AtomicI64,
    /// When (µs) the next check reads the audit log.
    pub(super) next_follow_us: AtomicI64,
}

impl Default for ConsentCache {
    fn default() -> Self {
        Self {
            ttl_us: AtomicU64::new(DEFAULT_CHECK_TTL.as_micros() as u64),
            subjects: Mutex::new(HashMap::new()),
            policies: Mutex::new(HashMap::new()),
            followed_seq: AtomicI64::new(-1),
            next_follow_us: AtomicI64::new(0),
        }
    }
}

impl ConsentCache {
    pub(super) fn clear(&self) {
        lock(&self.subjects).clear();
        lock(&self.policies).clear();
    }

    pub(super) fn ttl(&self) -> Duration {
        Duration::from_micros(self.ttl_us.load(Ordering::Relaxed))
    }

    /// Drops everything cached about a subject (after a write, an erasure
    /// or a restriction through this process).
    pub(crate) fn forget_subject(&self, id: &SubjectId) {
        lock(&self.subjects).remove(id);
    }

    /// [`Self::forget_subject`] for many, under one lock.
    pub(super) fn forget_subjects(&self, ids: &[SubjectId]) {
        let mut cache = lock(&self.subjects);
        for id in ids {
            cache.remove(id);
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
        let mut cache = lock(&self.subjects);
        let c = cache.get_mut(id)?;
        let age = c.fetched.elapsed();
        if age >= ttl {
            return None;
        }
        let state = c.purposes.get(purpose)?.clone();
        let refresh = age >= refresh_age(id, ttl) && !c.refreshing;
        c.refreshing |= refresh;
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
        if self.ttl().is_zero() {
            return;
        }
        let mut cache = lock(&self.subjects);
        if self.followed_seq.load(Ordering::Acquire) != seen {
            return;
        }
        if cache.len() >= CHECK_CACHE_MAX {
            cache.clear();
        }
        let entry = cache.entry(id).or_insert_with(|| CachedSubject {
            fetched: Instant::now(),
            status: status.clone(),
            purposes: HashMap::new(),
            refreshing: false,
        });
        // An entry due for a refresh starts over with this read (the
        // refresh, or a purpose read late): its other purposes were read
        // at the old time and would keep the new one's lifetime.
        if entry.fetched.elapsed() >= refresh_age(&id, self.ttl()) {
            entry.fetched = Instant::now();
            entry.purposes.clear();
            entry.refreshing = false;
        }
        entry.status = status;
        entry.purposes.insert(purpose.to_owned(), st);
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
