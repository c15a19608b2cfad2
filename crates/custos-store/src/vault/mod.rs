//! The vault service: every rule of issue "the foundation" in one place.
//!
//! * Each subject's data is encrypted under its own key; erasing the subject
//!   deletes that key (and its blind-index entries) and records the erasure
//!   in the ledger. Records stay as unreadable ciphertext, which is why
//!   erasure costs the same for one record or ten thousand.
//! * Erasure is two steps over two databases: the data-store transaction
//!   (ledger + erased mark + index entries) commits first, then the key is
//!   deleted. Reads check the erased mark first, and [`Vault::open`] replays
//!   the ledger to delete any key a crash left behind, so no subject is ever
//!   half-erased.
//! * Reveals, lookups, exports, erasures and admin actions are audited in the
//!   same commit as the change they describe (see `writer`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::AnyPool;

use custos_core::audit::AuditEvent;
use custos_core::ids::{ApiKeyId, SubjectId, TenantId};
use custos_core::keys::{RootKey, SubjectKey, TenantKeys};
use custos_core::scope::{Scope, ScopeSet};

use crate::db::{self, Engine, Role};
use crate::keystore::KeyStore;
use crate::writer::{ActiveAuditKey, Writer};
use crate::StoreError;
use auth::CachedKey;
use reveal::RecordRead;

pub(crate) mod audit;
mod audit_keys;
mod auth;
mod changes;
mod orphans;
mod recovery;
mod reveal;
mod subjects;
mod tenants;

pub use audit::{AuditRecovery, AuditReport};
pub use orphans::ORPHAN_GRACE_US;
pub use recovery::Reconciled;
pub use subjects::{RecordView, SubjectExport, SubjectInfo};
pub use tenants::{NewApiKey, TenantInfo};

/// Purposes that may still reveal a restricted subject's data (Art. 18(2)).
pub const RESTRICTED_PURPOSES: [&str; 2] = ["legal_claims", "storage"];

/// The purpose under which the request executor reads a subject to carry out
/// their own data-subject request (access, rectification, finding their
/// identities); recorded on those reads' audit entries. It lifts a
/// restriction only for the executor, never for an API key.
pub const SUBJECT_REQUEST_PURPOSE: &str = "subject_request";

/// Upper bound of cached subject keys (past it, keys are evicted one by
/// one, those not used again first).
const DEK_CACHE_MAX: usize = 200_000;

/// A concurrent cache of about `capacity` entries that, once full, evicts
/// one entry at a time (`quick_cache`, CLOCK-Pro). New entries come in
/// "cold", on 10 % of the room (quick_cache's default: 3 %), and are kept
/// ("hot") if read again before they are pushed out; an entry pushed out
/// unread leaves its hash behind, for as many entries as the cache holds
/// (default: half), and comes back hot if stored again meanwhile. The
/// figures of S3-FIFO (Yang et al., SOSP 2023); with quick_cache's
/// defaults, subjects checked again after more than ~90 % of the capacity
/// in other new subjects never got in.
pub(crate) fn bounded_cache<K, V>(capacity: usize) -> quick_cache::sync::Cache<K, V>
where
    K: Eq + std::hash::Hash,
    V: Clone,
{
    let n = capacity.max(1);
    let options = quick_cache::OptionsBuilder::new()
        .estimated_items_capacity(n)
        .weight_capacity(n as u64)
        .hot_allocation(0.9)
        .ghost_allocation(1.0)
        .build();
    match options {
        Ok(o) => quick_cache::sync::Cache::with_options(
            o,
            quick_cache::UnitWeighter,
            quick_cache::DefaultHashBuilder::default(),
            quick_cache::sync::DefaultLifecycle::default(),
        ),
        // Only unset sizes fail to build, and both are set.
        Err(_) => quick_cache::sync::Cache::new(n),
    }
}

/// Unwrapped subject keys of this process, bounded (`quick_cache`). A key
/// is shared as `Arc<SubjectKey>`: the cache hands out clones of the
/// `Arc`, never of the key, and drops its own when the entry is replaced,
/// evicted, removed or cleared, so the key is zeroized once its last user
/// is done with it. (Evicted keys leave a hash behind to recognise a key
/// that comes back, never the key.)
pub(crate) struct SubjectKeys(quick_cache::sync::Cache<SubjectId, Arc<SubjectKey>>);

impl SubjectKeys {
    fn with_capacity(keys: usize) -> Self {
        Self(bounded_cache(keys))
    }

    pub(crate) fn get(&self, subject: &SubjectId) -> Option<Arc<SubjectKey>> {
        self.0.get(subject)
    }

    pub(crate) fn insert(&self, subject: SubjectId, key: Arc<SubjectKey>) {
        self.0.insert(subject, key);
    }

    /// Drops the subject's key (erasure).
    pub(crate) fn remove(&self, subject: &SubjectId) {
        self.0.remove(subject);
    }

    pub(crate) fn clear(&self) {
        self.0.clear();
    }
}

/// Where the vault keeps its two databases and its root key.
#[derive(Debug)]
pub struct VaultConfig {
    /// `sqlite://…/data.db?mode=rwc` or `postgres://…`.
    pub database_url: String,
    /// A different database for keys.
    pub keystore_url: String,
    /// The root key (never stored by the vault).
    pub root_key: RootKey,
    /// Read connections.
    pub read_connections: u32,
    /// The erasure ledger's witness file, kept apart from both stores and
    /// their backups (see `ledger`); `None` keeps the ledger in the two
    /// stores only.
    pub erasure_ledger: Option<std::path::PathBuf>,
    /// What opening does about a data store restored from an older copy.
    pub mode: OpenMode,
}

/// How a vault is opened (see `vault::recovery`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OpenMode {
    /// To serve: a data store restored from an older copy is refused;
    /// erasures the key store or the witness lack are written there.
    #[default]
    Serve,
    /// To recover a restored data store (`custos recover`): every erasure
    /// it lacks is replayed and its audit chain re-anchored.
    Recover,
    /// To inspect (`custos audit verify`): nothing is compared or written
    /// at opening; the verifier reports what it finds.
    Inspect,
}

impl VaultConfig {
    /// The two stores and the root key, with the defaults: four read
    /// connections, no witness file, opened to serve.
    pub fn new(database_url: String, keystore_url: String, root_key: RootKey) -> Self {
        Self {
            database_url,
            keystore_url,
            root_key,
            read_connections: 4,
            erasure_ledger: None,
            mode: OpenMode::Serve,
        }
    }
}

/// Who is acting, for authorisation and the audit log.
#[derive(Clone, Debug)]
pub enum Actor {
    /// The system administrator (admin token).
    Admin,
    /// An API key of one tenant.
    Key(Principal),
}

impl Actor {
    pub(crate) fn audit_name(&self) -> String {
        match self {
            Actor::Admin => "admin".into(),
            Actor::Key(p) => p.audit_name(),
        }
    }
}

/// An authenticated API key.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The key's tenant; every operation is confined to it.
    pub tenant: TenantId,
    /// The key's public id.
    pub key_id: ApiKeyId,
    /// What it may do.
    pub scopes: ScopeSet,
}

impl Principal {
    /// Fails unless the key carries `s`.
    pub fn require(&self, s: Scope) -> Result<(), StoreError> {
        if self.scopes.contains(s) {
            Ok(())
        } else {
            Err(StoreError::MissingScope(s.as_str()))
        }
    }

    /// Its name in the audit log: the key's public id.
    pub(crate) fn audit_name(&self) -> String {
        self.key_id.to_string()
    }

    /// An audit event of an action by this key in its tenant.
    pub(crate) fn event(
        &self,
        action: &str,
        subject: Option<String>,
        purpose: Option<&str>,
        outcome: &str,
    ) -> AuditEvent {
        AuditEvent {
            tenant: Some(self.tenant.to_string()),
            actor: self.audit_name(),
            action: action.to_owned(),
            subject,
            purpose: purpose.map(str::to_owned),
            outcome: outcome.to_owned(),
        }
    }

    /// Fails unless the key carries one of `any`.
    pub fn require_any(&self, any: &[Scope]) -> Result<(), StoreError> {
        match any.iter().find(|s| self.scopes.contains(**s)) {
            Some(_) => Ok(()),
            None => Err(StoreError::MissingScope(
                any.first().map_or("", |s| s.as_str()),
            )),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) read: AnyPool,
    pub(crate) engine: Engine,
    pub(crate) writer: Writer<RecordRead>,
    pub(crate) keys: KeyStore,
    pub(crate) root: RootKey,
    /// The audit signing key in use (shared with the writer).
    pub(crate) audit_key: Arc<ActiveAuditKey>,
    tenants: Mutex<HashMap<TenantId, Arc<TenantKeys>>>,
    pub(crate) deks: SubjectKeys,
    auth: Mutex<HashMap<ApiKeyId, Arc<CachedKey>>>,
    /// The erasure ledger's witness file, if configured.
    pub(crate) witness: Option<crate::ledger::Witness>,
    /// What the comparison at opening found and did.
    pub(crate) recovered: std::sync::OnceLock<Reconciled>,
    /// Caches of the consent ledger (`consent`).
    pub(crate) consent: crate::consent::ConsentCache,
    /// The executor's wake-up.
    pub(crate) work: crate::wake::WorkSignal,
}

/// The vault. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Vault {
    pub(crate) inner: Arc<Inner>,
}

/// Tenants and their API keys: the administrator's area.
#[derive(Clone, Copy, Debug)]
pub struct Tenants<'v> {
    pub(crate) v: &'v Vault,
}

/// Data subjects: identities, records, reveals, tokens, restriction and
/// erasure.
#[derive(Clone, Copy, Debug)]
pub struct Subjects<'v> {
    pub(crate) v: &'v Vault,
}

/// The consent ledger (see `consent`).
#[derive(Clone, Copy, Debug)]
pub struct Consent<'v> {
    pub(crate) v: &'v Vault,
}

/// Data-subject requests as their callers see them: lifecycle, steps,
/// archives, completion records (see `request`, `execution`).
#[derive(Clone, Copy, Debug)]
pub struct Requests<'v> {
    pub(crate) v: &'v Vault,
}

/// What the request executor needs of the store: plans, step leases,
/// sealed payloads and archives (see `execution`).
#[derive(Clone, Copy, Debug)]
pub struct Execution<'v> {
    pub(crate) v: &'v Vault,
}

/// The audit log: entries and verification of the chain.
#[derive(Clone, Copy, Debug)]
pub struct Audit<'v> {
    pub(crate) v: &'v Vault,
}

impl Vault {
    /// Tenants and API keys.
    pub fn tenants(&self) -> Tenants<'_> {
        Tenants { v: self }
    }

    /// Subjects and their records.
    pub fn subjects(&self) -> Subjects<'_> {
        Subjects { v: self }
    }

    /// The consent ledger.
    pub fn consent(&self) -> Consent<'_> {
        Consent { v: self }
    }

    /// Data-subject requests.
    pub fn requests(&self) -> Requests<'_> {
        Requests { v: self }
    }

    /// The executor's side of requests.
    pub fn execution(&self) -> Execution<'_> {
        Execution { v: self }
    }

    /// The audit log.
    pub fn audit(&self) -> Audit<'_> {
        Audit { v: self }
    }
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("engine", &self.inner.engine)
            .finish()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned cache only means another thread panicked mid-update of a
    // cache; its content is still a valid cache.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn event(
    tenant: &TenantId,
    actor: &Actor,
    action: &str,
    subject: Option<String>,
    purpose: Option<&str>,
    outcome: &str,
) -> AuditEvent {
    AuditEvent {
        tenant: Some(tenant.to_string()),
        actor: actor.audit_name(),
        action: action.to_owned(),
        subject,
        purpose: purpose.map(str::to_owned),
        outcome: outcome.to_owned(),
    }
}

impl Vault {
    /// Opens both databases, migrates them, checks the root key, starts the
    /// writer and replays the erasure ledger.
    pub async fn open(cfg: VaultConfig) -> Result<Self, StoreError> {
        if cfg.database_url == cfg.keystore_url {
            return Err(StoreError::Config(
                "the key store must be a different database from the data store".into(),
            ));
        }
        let witness = cfg
            .erasure_ledger
            .as_deref()
            .map(crate::ledger::Witness::open)
            .transpose()?;
        let keys = KeyStore::open(&cfg.keystore_url, &cfg.root_key).await?;
        let (write_pool, engine) = db::connect(&cfg.database_url, 1).await?;
        db::migrate(&write_pool, engine, Role::Data).await?;
        let audit_key = Arc::new(ActiveAuditKey::new(
            audit_keys::key_at_open(&keys, &write_pool, &cfg.root_key).await?,
        ));
        let (read, _) = db::connect(&cfg.database_url, cfg.read_connections.max(1)).await?;
        let sqlite_file = match engine {
            Engine::Sqlite => db::sqlite_file(&cfg.database_url),
            Engine::Postgres => None,
        };
        let writer = Writer::spawn(
            write_pool,
            engine,
            keys.clone(),
            cfg.root_key.clone(),
            audit_key.clone(),
            sqlite_file.as_deref(),
        )?;
        let vault = Self {
            inner: Arc::new(Inner {
                read,
                engine,
                writer,
                keys,
                root: cfg.root_key,
                audit_key,
                tenants: Mutex::new(HashMap::new()),
                deks: SubjectKeys::with_capacity(DEK_CACHE_MAX),
                auth: Mutex::new(HashMap::new()),
                consent: crate::consent::ConsentCache::default(),
                witness,
                recovered: std::sync::OnceLock::new(),
                work: crate::wake::WorkSignal::new(engine, &cfg.database_url),
            }),
        };
        let opened = async {
            let mut done = vault.reconcile(cfg.mode).await?;
            if cfg.mode == OpenMode::Serve {
                done.orphan_keys = vault.sweep_orphan_keys(crate::now_us()).await?;
            }
            Ok::<_, StoreError>(done)
        };
        match opened.await {
            Ok(done) => {
                let _ = vault.inner.recovered.set(done);
            }
            Err(e) => {
                vault.close().await;
                return Err(e);
            }
        }
        Ok(vault)
    }

    /// What the comparison of the erasure ledger's places at opening
    /// found and did (see [`OpenMode`]).
    pub fn recovered(&self) -> &Reconciled {
        static NONE: Reconciled = Reconciled {
            keys_destroyed: 0,
            witnessed: 0,
            replayed: 0,
            chain_restored: None,
            orphan_keys: 0,
        };
        self.inner.recovered.get().unwrap_or(&NONE)
    }

    /// The data store's engine.
    pub fn engine(&self) -> Engine {
        self.inner.engine
    }

    // ----- tenants and keys -------------------------------------------------

    // ----- key material -----------------------------------------------------

    pub(crate) async fn tenant_keys(
        &self,
        tenant: &TenantId,
    ) -> Result<Arc<TenantKeys>, StoreError> {
        if let Some(k) = lock(&self.inner.tenants).get(tenant) {
            return Ok(k.clone());
        }
        self.reload_tenant_keys(tenant).await
    }

    pub(crate) async fn reload_tenant_keys(
        &self,
        tenant: &TenantId,
    ) -> Result<Arc<TenantKeys>, StoreError> {
        let k = self
            .inner
            .keys
            .tenant_keys(&self.inner.root, tenant)
            .await?
            .ok_or(StoreError::TenantShredded {
                shredded_at: String::new(),
            })?;
        let k = Arc::new(k);
        lock(&self.inner.tenants).insert(tenant.clone(), k.clone());
        Ok(k)
    }

    pub(crate) async fn subject_key(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
    ) -> Result<Arc<SubjectKey>, StoreError> {
        if let Some(k) = self.inner.deks.get(subject) {
            return Ok(k);
        }
        let (version, wrapped) = self
            .inner
            .keys
            .subject_key(tenant, subject)
            .await?
            .ok_or(StoreError::NotFound("subject key"))?;
        let mut tk = self.tenant_keys(tenant).await?;
        if tk.kek_version != version {
            // Rotated by another process since we cached the tenant keys.
            tk = self.reload_tenant_keys(tenant).await?;
        }
        let k = Arc::new(
            tk.unwrap_subject_key(subject, &wrapped)
                .map_err(StoreError::Integrity)?,
        );
        self.inner.deks.insert(*subject, k.clone());
        Ok(k)
    }

    // ----- subjects ---------------------------------------------------------

    // ----- records ----------------------------------------------------------

    // ----- tokens -----------------------------------------------------------

    // ----- restriction and erasure -----------------------------------------

    // ----- audit ------------------------------------------------------------

    // ----- key rotation -----------------------------------------------------

    /// The key store (for root rotation from the CLI).
    pub fn keystore(&self) -> &KeyStore {
        &self.inner.keys
    }

    /// Direct read access for benchmarks and tests that measure the
    /// alternative designs (e.g. decrypt-and-scan lookups).
    pub fn read_pool(&self) -> &AnyPool {
        &self.inner.read
    }

    /// Drops cached subject keys (benchmarks measure cold paths with it).
    pub fn clear_key_cache(&self) {
        self.inner.deks.clear();
    }

    /// Closes pools; the writer commits what is queued first.
    pub async fn close(&self) {
        self.inner.work.stop();
        self.inner.writer.shutdown().await;
        self.inner.read.close().await;
        self.inner.keys.close().await;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use custos_core::rand_core::OsRng;

    fn key_of(id: SubjectId) -> Arc<SubjectKey> {
        let tenant = TenantId::parse("acme").unwrap();
        Arc::new(SubjectKey::generate(tenant, id, &mut OsRng))
    }

    fn key() -> (SubjectId, Arc<SubjectKey>) {
        let id = SubjectId::generate(&mut OsRng);
        (id, key_of(id))
    }

    /// Misses of 100 subjects used steadily (a use: `hit`, or made up and
    /// stored on a miss) in a cache of 2,000 first filled with 5,000
    /// one-off subjects, then used 20 times, with `between` one-off
    /// subjects after each time.
    pub(crate) fn misses_in_use(
        hit_or_store: impl Fn(&SubjectId) -> bool,
        between: usize,
    ) -> Vec<usize> {
        let ids = |n| {
            (0..n)
                .map(|_| SubjectId::generate(&mut OsRng))
                .collect::<Vec<_>>()
        };
        for id in ids(5_000) {
            hit_or_store(&id);
        }
        let hot = ids(100);
        (0..20)
            .map(|_| {
                let misses = hot.iter().filter(|id| !hit_or_store(id)).count();
                for id in ids(between) {
                    hit_or_store(&id);
                }
                misses
            })
            .collect()
    }

    /// Before, a full cache was emptied and every subject's key unwrapped
    /// again. Now, in a cache full of keys used once, the keys in use get
    /// in and stay while one-off ones pass through (see
    /// `consent::cache::tests` for the same with the check's cache).
    #[test]
    fn a_full_key_cache_keeps_serving_the_keys_in_use() {
        let cache = SubjectKeys::with_capacity(2_000);
        // A use of a key: from the cache, or unwrapped (here: made up).
        let misses = misses_in_use(
            |id| {
                let hit = cache.get(id).is_some();
                if !hit {
                    cache.insert(*id, key_of(*id));
                }
                hit
            },
            1_500,
        );
        assert!(cache.0.len() <= 2_000);
        // Emptied at every 2,000 keys (every round or two here), the old
        // cache kept missing them; now, after a few rounds to let them
        // in, never.
        assert!(misses.iter().skip(10).all(|m| *m == 0), "{misses:?}");
    }

    /// The cache holds the one `Arc` it was given, and lets go of it when
    /// a key is removed, cleared or evicted (then the key is zeroized with
    /// its last `Arc`).
    #[test]
    fn the_key_cache_keeps_no_copies() {
        let cache = SubjectKeys::with_capacity(1_000);
        let (a, ka) = key();
        let (b, kb) = key();
        cache.insert(a, ka.clone());
        cache.insert(b, kb.clone());
        let got = cache.get(&a).unwrap();
        assert!(Arc::ptr_eq(&got, &ka));
        drop(got);
        assert_eq!(Arc::strong_count(&ka), 2);
        cache.remove(&a);
        assert_eq!(Arc::strong_count(&ka), 1);
        cache.clear();
        assert_eq!(Arc::strong_count(&kb), 1);

        let kept: Vec<_> = (0..5_000)
            .map(|_| {
                let (id, k) = key();
                cache.insert(id, k.clone());
                k
            })
            .collect();
        let held = kept.iter().filter(|k| Arc::strong_count(k) == 2).count();
        assert_eq!(held, cache.0.len());
    }
}
