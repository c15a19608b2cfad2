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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};

use custos_core::audit::{AuditEntry, AuditEvent, ChainBreak, ChainVerifier, Checkpoint};
use custos_core::blind::{blind_index, IdentityKind};
use custos_core::ids::{ApiKeyId, Audience, Collection, Purpose, RecordKey, SubjectId, TenantId};
use custos_core::keys::{RootKey, SubjectKey, TenantKeys};
use custos_core::mask;
use custos_core::rand_core::{OsRng, RngCore};
use custos_core::scope::{Scope, ScopeSet};
use custos_core::secret::BearerSecret;

use crate::db::{self, Engine, Role};
use crate::keystore::{to32, KeyStore};
use crate::writer::Writer;

mod changes;
mod reveal;

use crate::{now_us, record, rfc3339, StoreError};
use changes::VaultChange;
use reveal::{RecordFound, RecordRead};

/// Purposes that may still reveal a restricted subject's data (Art. 18(2)).
pub const RESTRICTED_PURPOSES: [&str; 2] = ["legal_claims", "storage"];

/// How long an authenticated API key is trusted before it is re-read, so
/// that a revocation or tenant shred on another server takes effect.
const AUTH_CACHE_TTL: Duration = Duration::from_secs(5);
/// Upper bound of cached subject keys (cleared wholesale when reached).
const DEK_CACHE_MAX: usize = 200_000;

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

/// A tenant as listed to the administrator.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TenantInfo {
    /// Tenant id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, once shredded.
    pub shredded_at: Option<String>,
}

/// A newly created API key; the secret is shown once.
#[derive(Debug)]
pub struct NewApiKey {
    /// Public id.
    pub id: ApiKeyId,
    /// The bearer secret (`ck_…`).
    pub secret: BearerSecret,
}

/// A subject's state, without personal data.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SubjectInfo {
    /// Subject id.
    #[schema(value_type = String, example = "sub_9f8e7d6c5b4a39281706f5e4d3c2b1a0")]
    pub id: SubjectId,
    /// The application's own id, if given.
    pub external_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// Whether processing is restricted (Art. 18), and since when.
    pub restricted: bool,
    /// RFC 3339, when restricted.
    pub restricted_at: Option<String>,
}

/// A record as returned by a read.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RecordView {
    /// Clear or masked field values.
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    /// Whether values are masked (no reveal scope or no purpose).
    pub masked: bool,
    /// RFC 3339 of the last write.
    pub updated_at: String,
}

/// Everything the vault holds about a subject (Art. 15/20).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SubjectExport {
    /// The subject.
    pub subject: SubjectInfo,
    /// Identity kind → clear value.
    pub identities: BTreeMap<String, String>,
    /// Collection → record key → fields.
    #[schema(value_type = Object)]
    pub records: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
    /// Audiences for which tokens were issued.
    pub token_audiences: Vec<String>,
}

/// Result of verifying the audit log.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AuditReport {
    /// Entries checked.
    pub entries: i64,
    /// Checkpoints whose signatures were checked.
    pub checkpoints: usize,
    /// The first problem, if any.
    pub first_break: Option<String>,
    /// Sequence number of the first bad entry (or checkpoint), if any.
    pub first_bad_seq: Option<i64>,
}

struct CachedKey {
    secret_hash: [u8; 32],
    principal: Principal,
    expires_us: Option<i64>,
    fetched: Instant,
}

pub(crate) struct Inner {
    pub(crate) read: AnyPool,
    pub(crate) engine: Engine,
    pub(crate) writer: Writer<RecordRead>,
    pub(crate) keys: KeyStore,
    pub(crate) root: RootKey,
    tenants: Mutex<HashMap<TenantId, Arc<TenantKeys>>>,
    deks: Mutex<HashMap<SubjectId, Arc<SubjectKey>>>,
    auth: Mutex<HashMap<ApiKeyId, Arc<CachedKey>>>,
    /// Caches of the consent ledger (`consent`).
    pub(crate) consent: crate::consent::ConsentCache,
}

/// The vault. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Vault {
    pub(crate) inner: Arc<Inner>,
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

/// Parses `ck_<32 hex>_<secret>` into its id; the whole string is the secret.
fn parse_api_key(s: &str) -> Option<ApiKeyId> {
    let rest = s.strip_prefix("ck_")?;
    let (id_hex, secret) = rest.split_at_checked(32)?;
    if !secret.starts_with('_') || secret.len() < 20 {
        return None;
    }
    ApiKeyId::parse(&format!("key_{id_hex}")).ok()
}

fn hash_secret(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
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
        let keys = KeyStore::open(&cfg.keystore_url, &cfg.root_key).await?;
        let (write_pool, engine) = db::connect(&cfg.database_url, 1).await?;
        db::migrate(&write_pool, engine, Role::Data).await?;
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
            sqlite_file.as_deref(),
        )?;
        let vault = Self {
            inner: Arc::new(Inner {
                read,
                engine,
                writer,
                keys,
                root: cfg.root_key,
                tenants: Mutex::new(HashMap::new()),
                deks: Mutex::new(HashMap::new()),
                auth: Mutex::new(HashMap::new()),
                consent: crate::consent::ConsentCache::default(),
            }),
        };
        vault.replay_ledger().await?;
        Ok(vault)
    }

    /// The data store's engine.
    pub fn engine(&self) -> Engine {
        self.inner.engine
    }

    /// Finishes erasures a crash interrupted: keys of subjects in the ledger
    /// and of shredded tenants are deleted. Idempotent.
    pub async fn replay_ledger(&self) -> Result<u64, StoreError> {
        let rows = sqlx::query("SELECT subject FROM erasure_ledger")
            .fetch_all(&self.inner.read)
            .await?;
        let subjects: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        let mut n = self.inner.keys.delete_subject_keys(&subjects).await?;
        let rows = sqlx::query("SELECT id FROM tenants WHERE shredded_us IS NOT NULL")
            .fetch_all(&self.inner.read)
            .await?;
        for r in rows {
            let t: String = r.try_get(0)?;
            let tenant = TenantId::parse(&t).map_err(StoreError::Integrity)?;
            if self.inner.keys.tenant_has_keys(&tenant).await? {
                self.inner.keys.shred_tenant(&tenant).await?;
                n += 1;
            }
        }
        if n > 0 {
            tracing::warn!(keys = n, "finished interrupted erasures from the ledger");
        }
        Ok(n)
    }

    // ----- tenants and keys -------------------------------------------------

    /// Creates a tenant with fresh keys (admin only).
    pub async fn create_tenant(&self, id: &TenantId, name: &str) -> Result<TenantInfo, StoreError> {
        if name.trim().is_empty() || name.len() > 200 {
            return Err(StoreError::invalid("name", "must be 1 to 200 characters"));
        }
        let exists = sqlx::query("SELECT 1 FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.inner.read)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict("tenant"));
        }
        self.inner
            .keys
            .create_tenant(&self.inner.root, id, now_us())
            .await?;
        let ev = AuditEvent {
            tenant: Some(id.to_string()),
            actor: "admin".into(),
            action: "tenant.create".into(),
            subject: None,
            purpose: None,
            outcome: "ok".into(),
        };
        let r = self
            .inner
            .writer
            .submit(
                VaultChange::CreateTenant {
                    id: id.clone(),
                    name: name.to_owned(),
                },
                vec![ev],
            )
            .await;
        if let Err(e) = r {
            // Do not leave keys of a tenant that does not exist.
            let _ = self.inner.keys.shred_tenant(id).await;
            return Err(e);
        }
        self.tenant(id).await
    }

    /// One tenant.
    pub async fn tenant(&self, id: &TenantId) -> Result<TenantInfo, StoreError> {
        let row =
            sqlx::query("SELECT id, name, created_us, shredded_us FROM tenants WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.inner.read)
                .await?
                .ok_or(StoreError::NotFound("tenant"))?;
        tenant_info(&row)
    }

    /// All tenants (admin only).
    pub async fn list_tenants(&self) -> Result<Vec<TenantInfo>, StoreError> {
        let rows = sqlx::query("SELECT id, name, created_us, shredded_us FROM tenants ORDER BY id")
            .fetch_all(&self.inner.read)
            .await?;
        rows.iter().map(tenant_info).collect()
    }

    /// Shreds a tenant: its keys are destroyed, its API keys revoked, and
    /// every subject of it becomes unreadable at once.
    pub async fn shred_tenant(&self, id: &TenantId) -> Result<TenantInfo, StoreError> {
        let t = self.tenant(id).await?;
        if let Some(at) = t.shredded_at {
            return Err(StoreError::TenantShredded { shredded_at: at });
        }
        let ev = AuditEvent {
            tenant: Some(id.to_string()),
            actor: "admin".into(),
            action: "tenant.shred".into(),
            subject: None,
            purpose: None,
            outcome: "ok".into(),
        };
        self.inner
            .writer
            .submit(VaultChange::ShredTenant { id: id.clone() }, vec![ev])
            .await?;
        self.inner.keys.shred_tenant(id).await?;
        lock(&self.inner.tenants).remove(id);
        lock(&self.inner.auth).retain(|_, k| k.principal.tenant != *id);
        lock(&self.inner.deks).clear();
        self.tenant(id).await
    }

    /// Creates an API key for a tenant. `actor` is the admin, or a key of the
    /// same tenant with the admin scope.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        scopes: ScopeSet,
        expires_in: Option<Duration>,
    ) -> Result<NewApiKey, StoreError> {
        if let Actor::Key(p) = actor {
            p.require(Scope::Admin)?;
            if p.tenant != *tenant {
                return Err(StoreError::NotFound("tenant"));
            }
        }
        let t = self.tenant(tenant).await?;
        if let Some(at) = t.shredded_at {
            return Err(StoreError::TenantShredded { shredded_at: at });
        }
        if scopes == ScopeSet::default() {
            return Err(StoreError::invalid("scopes", "give at least one scope"));
        }
        let id = ApiKeyId::generate(&mut OsRng);
        let mut raw = [0u8; 32];
        OsRng.fill_bytes(&mut raw);
        use base64::Engine as _;
        let secret = format!(
            "ck_{}_{}",
            hex::encode(id.as_bytes()),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        );
        zeroize::Zeroize::zeroize(&mut raw);
        let expires_us = expires_in.map(|d| now_us() + d.as_micros() as i64);
        let ev = AuditEvent {
            tenant: Some(tenant.to_string()),
            actor: actor.audit_name(),
            action: "key.create".into(),
            subject: Some(id.to_string()),
            purpose: None,
            outcome: "ok".into(),
        };
        self.inner
            .writer
            .submit(
                VaultChange::CreateKey {
                    id,
                    tenant: tenant.clone(),
                    secret_hash: hash_secret(&secret),
                    scopes,
                    expires_us,
                },
                vec![ev],
            )
            .await?;
        Ok(NewApiKey {
            id,
            secret: BearerSecret::new(secret),
        })
    }

    /// Revokes an API key of the actor's tenant (or any, for the admin).
    pub async fn revoke_api_key(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        id: &ApiKeyId,
    ) -> Result<(), StoreError> {
        if let Actor::Key(p) = actor {
            p.require(Scope::Admin)?;
            if p.tenant != *tenant {
                return Err(StoreError::NotFound("api key"));
            }
        }
        let ev = AuditEvent {
            tenant: Some(tenant.to_string()),
            actor: actor.audit_name(),
            action: "key.revoke".into(),
            subject: Some(id.to_string()),
            purpose: None,
            outcome: "ok".into(),
        };
        let n = self
            .inner
            .writer
            .submit(
                VaultChange::RevokeKey {
                    id: *id,
                    tenant: tenant.clone(),
                },
                vec![ev],
            )
            .await?;
        lock(&self.inner.auth).remove(id);
        if n == 0 {
            return Err(StoreError::NotFound("api key"));
        }
        Ok(())
    }

    /// The tenant an API key belongs to (for the administrator's revoke).
    pub async fn api_key_tenant(&self, id: &ApiKeyId) -> Result<TenantId, StoreError> {
        let row = sqlx::query("SELECT tenant FROM api_keys WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.inner.read)
            .await?
            .ok_or(StoreError::NotFound("api key"))?;
        TenantId::parse(&row.try_get::<String, _>(0)?).map_err(StoreError::Integrity)
    }

    /// Authenticates a bearer API key. Unknown, forged, expired and revoked
    /// keys all fail; the secret is compared in constant time.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal, StoreError> {
        let unknown = StoreError::Unauthenticated("unknown or invalid API key");
        let id = parse_api_key(secret).ok_or(StoreError::Unauthenticated("malformed API key"))?;
        let presented = hash_secret(secret);
        let cached = lock(&self.inner.auth).get(&id).cloned();
        let entry = match cached {
            Some(c) if c.fetched.elapsed() < AUTH_CACHE_TTL => c,
            _ => {
                let row = sqlx::query(
                    "SELECT k.tenant, k.secret_hash, k.scopes, k.expires_us FROM api_keys k \
                     JOIN tenants t ON t.id = k.tenant \
                     WHERE k.id = $1 AND k.revoked_us IS NULL AND t.shredded_us IS NULL",
                )
                .bind(id.to_string())
                .fetch_optional(&self.inner.read)
                .await?;
                let Some(row) = row else {
                    lock(&self.inner.auth).remove(&id);
                    return Err(unknown);
                };
                let tenant = TenantId::parse(&row.try_get::<String, _>(0)?)
                    .map_err(StoreError::Integrity)?;
                let entry = Arc::new(CachedKey {
                    secret_hash: to32(row.try_get(1)?)?,
                    principal: Principal {
                        tenant,
                        key_id: id,
                        scopes: ScopeSet::from_csv(&row.try_get::<String, _>(2)?)
                            .map_err(StoreError::Integrity)?,
                    },
                    expires_us: row.try_get(3)?,
                    fetched: Instant::now(),
                });
                lock(&self.inner.auth).insert(id, entry.clone());
                entry
            }
        };
        use subtle::ConstantTimeEq;
        if !bool::from(entry.secret_hash.ct_eq(&presented)) {
            return Err(unknown);
        }
        if entry.expires_us.is_some_and(|e| e <= now_us()) {
            return Err(StoreError::Unauthenticated("API key expired"));
        }
        Ok(entry.principal.clone())
    }

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

    /// The key to seal new values of a subject under; without one, says
    /// why: erased (410) or unknown in this tenant (404).
    async fn key_to_write(
        &self,
        tenant: &TenantId,
        id: &SubjectId,
    ) -> Result<Arc<SubjectKey>, StoreError> {
        match self.subject_key(tenant, id).await {
            Err(StoreError::NotFound(_)) => {
                self.live_subject(tenant, id).await?;
                Err(StoreError::NotFound("subject"))
            }
            other => other,
        }
    }

    pub(crate) async fn subject_key(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
    ) -> Result<Arc<SubjectKey>, StoreError> {
        if let Some(k) = lock(&self.inner.deks).get(subject) {
            return Ok(k.clone());
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
        let mut cache = lock(&self.inner.deks);
        if cache.len() >= DEK_CACHE_MAX {
            cache.clear();
        }
        cache.insert(*subject, k.clone());
        Ok(k)
    }

    // ----- subjects ---------------------------------------------------------

    /// Creates a subject with a random id, an optional external id and
    /// identities stored as blind index + ciphertext.
    pub async fn create_subject(
        &self,
        p: &Principal,
        external_id: Option<String>,
        identities: &[(IdentityKind, String)],
    ) -> Result<SubjectId, StoreError> {
        p.require(Scope::Write)?;
        if let Some(e) = &external_id {
            if e.is_empty() || e.len() > 128 || e.chars().any(char::is_control) {
                return Err(StoreError::invalid(
                    "external_id",
                    "must be 1 to 128 printable characters",
                ));
            }
        }
        let tk = self.tenant_keys(&p.tenant).await?;
        let id = SubjectId::generate(&mut OsRng);
        let dek = SubjectKey::generate(p.tenant.clone(), id, &mut OsRng);
        let mut ids = Vec::with_capacity(identities.len());
        for (kind, value) in identities {
            let norm = kind
                .normalise(value)
                .map_err(|e| StoreError::invalid(format!("identities.{}", kind.as_str()), e))?;
            let blind = blind_index(&tk.blind_index_key(kind.as_str()), &norm);
            let ct = dek.seal_identity(kind.as_str(), norm.expose().as_bytes(), &mut OsRng);
            ids.push((kind.clone(), blind, ct));
        }
        self.inner
            .keys
            .put_subject_key(
                &p.tenant,
                &id,
                tk.kek_version,
                tk.wrap_subject_key(&id, dek.key(), &mut OsRng),
            )
            .await?;
        let r = self
            .inner
            .writer
            .submit(
                VaultChange::CreateSubject {
                    id,
                    tenant: p.tenant.clone(),
                    external_id,
                    identities: ids,
                },
                vec![],
            )
            .await;
        if let Err(e) = r {
            let _ = self.inner.keys.delete_subject_key(&id).await;
            return Err(e);
        }
        lock(&self.inner.deks).insert(id, Arc::new(dek));
        Ok(id)
    }

    /// Replaces the subject's identities of `kind` by `value` (Art. 16):
    /// the blind index entry and the sealed value change together, so a
    /// lookup by the old value no longer finds the subject. The audit entry
    /// names the kind only; the previous value is not kept.
    pub async fn rectify_identity(
        &self,
        p: &Principal,
        id: &SubjectId,
        kind: &IdentityKind,
        value: &str,
    ) -> Result<(), StoreError> {
        p.require(Scope::Write)?;
        let field = format!("identities.{}", kind.as_str());
        let norm = kind
            .normalise(value)
            .map_err(|e| StoreError::invalid(field.clone(), e))?;
        let tk = self.tenant_keys(&p.tenant).await?;
        let dek = self.key_to_write(&p.tenant, id).await?;
        let blind = blind_index(&tk.blind_index_key(kind.as_str()), &norm);
        let ct = dek.seal_identity(kind.as_str(), norm.expose().as_bytes(), &mut OsRng);
        let ev = p.event(
            &format!("rectify_identity.{}", kind.as_str()),
            Some(id.to_string()),
            None,
            "ok",
        );
        let n = self
            .inner
            .writer
            .submit(
                VaultChange::ReplaceIdentity {
                    tenant: p.tenant.clone(),
                    subject: *id,
                    kind: kind.clone(),
                    blind,
                    ct,
                },
                vec![ev],
            )
            .await?;
        if n == 0 {
            self.live_subject(&p.tenant, id).await?;
            return Err(StoreError::NotFound("subject"));
        }
        Ok(())
    }

    /// Reads a subject's state row; erased subjects answer `SubjectErased`.
    pub(crate) async fn live_subject(
        &self,
        tenant: &TenantId,
        id: &SubjectId,
    ) -> Result<SubjectInfo, StoreError> {
        let row = sqlx::query(
            "SELECT external_id, created_us, restricted_us, erased_us FROM subjects WHERE id = $1 AND tenant = $2",
        )
        .bind(id.to_string())
        .bind(tenant.as_str())
        .fetch_optional(&self.inner.read)
        .await?
        .ok_or(StoreError::NotFound("subject"))?;
        if let Some(e) = row.try_get::<Option<i64>, _>(3)? {
            return Err(StoreError::SubjectErased {
                erased_at: rfc3339(e),
            });
        }
        let restricted: Option<i64> = row.try_get(2)?;
        Ok(SubjectInfo {
            id: *id,
            external_id: row.try_get(0)?,
            created_at: rfc3339(row.try_get(1)?),
            restricted: restricted.is_some(),
            restricted_at: restricted.map(rfc3339),
        })
    }

    /// A subject's state (any scope of its tenant).
    pub async fn subject(&self, p: &Principal, id: &SubjectId) -> Result<SubjectInfo, StoreError> {
        self.live_subject(&p.tenant, id).await
    }

    /// Finds a subject by identity: one blind-index probe. Audited.
    pub async fn lookup(
        &self,
        p: &Principal,
        kind: &IdentityKind,
        value: &str,
    ) -> Result<SubjectId, StoreError> {
        p.require(Scope::Lookup)?;
        let (found, _) = self.find_by_identity(&p.tenant, kind, value).await?;
        let ev = p.event(
            "lookup",
            found.map(|s| s.to_string()),
            None,
            if found.is_some() { "ok" } else { "not_found" },
        );
        self.inner.writer.audit(vec![ev]).await?;
        found.ok_or(StoreError::NotFound("subject"))
    }

    /// Resolves an identity through its blind index (not audited: callers
    /// audit what they do with it). Returns the subject, if one matches,
    /// and the blind index, which is all that may be kept of the value.
    pub(crate) async fn find_by_identity(
        &self,
        tenant: &TenantId,
        kind: &IdentityKind,
        value: &str,
    ) -> Result<(Option<SubjectId>, [u8; 32]), StoreError> {
        let norm = kind
            .normalise(value)
            .map_err(|e| StoreError::invalid(kind.as_str(), e))?;
        let tk = self.tenant_keys(tenant).await?;
        let blind = blind_index(&tk.blind_index_key(kind.as_str()), &norm);
        let row = sqlx::query(
            "SELECT subject FROM identities WHERE tenant = $1 AND kind = $2 AND blind = $3",
        )
        .bind(tenant.as_str())
        .bind(kind.as_str())
        .bind(blind.to_vec())
        .fetch_optional(&self.inner.read)
        .await?;
        let found = match row {
            Some(r) => {
                Some(SubjectId::parse(&r.try_get::<String, _>(0)?).map_err(StoreError::Integrity)?)
            }
            None => None,
        };
        Ok((found, blind))
    }

    // ----- records ----------------------------------------------------------

    /// Writes (replaces) a record: every field encrypted on its own.
    pub async fn put_record(
        &self,
        p: &Principal,
        id: &SubjectId,
        collection: &Collection,
        key: &RecordKey,
        fields: &Map<String, Value>,
    ) -> Result<(), StoreError> {
        p.require(Scope::Write)?;
        if fields.is_empty() {
            return Err(StoreError::invalid("fields", "give at least one field"));
        }
        for name in fields.keys() {
            if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                return Err(StoreError::invalid(
                    "fields",
                    "field names must be 1 to 128 printable characters",
                ));
            }
        }
        let dek = self.key_to_write(&p.tenant, id).await?;
        let mut sealed = Vec::with_capacity(fields.len());
        for (name, value) in fields {
            let bytes = serde_json::to_vec(value).map_err(|e| StoreError::invalid("fields", e))?;
            sealed.push((
                name.clone(),
                dek.seal_field(collection.as_str(), key.as_str(), name, &bytes, &mut OsRng),
            ));
        }
        let n = self
            .inner
            .writer
            .submit(
                VaultChange::PutRecord {
                    tenant: p.tenant.clone(),
                    subject: *id,
                    collection: collection.clone(),
                    rkey: key.clone(),
                    fields: record::pack(&sealed),
                },
                vec![],
            )
            .await?;
        if n == 0 {
            self.live_subject(&p.tenant, id).await?;
            return Err(StoreError::NotFound("subject"));
        }
        Ok(())
    }

    /// Reads a record. With the reveal scope and a purpose: clear values,
    /// audited. With lookup or write scope: masked values, audited as such.
    /// A restricted subject reveals only for `legal_claims`/`storage`.
    /// The sealed record is read in the writer's transaction that commits
    /// its audit entry, so nothing is revealed without the entry durable
    /// against a process crash; it is decrypted here, after the commit.
    pub async fn get_record(
        &self,
        p: &Principal,
        id: &SubjectId,
        collection: &Collection,
        key: &RecordKey,
        purpose: Option<&Purpose>,
    ) -> Result<RecordView, StoreError> {
        let clear = p.scopes.contains(Scope::Reveal) && purpose.is_some();
        if !clear {
            p.require_any(&[Scope::Reveal, Scope::Lookup, Scope::Write])?;
        }
        let action = if clear { "reveal" } else { "reveal.masked" };
        let purpose_s = purpose.map(|x| x.as_str());
        // The read and its audit entry (with the outcome found: refusals
        // are audited too) commit together in the writer.
        let found = self
            .inner
            .writer
            .read(
                RecordRead {
                    tenant: p.tenant.clone(),
                    subject: id.text(),
                    collection: collection.clone(),
                    rkey: key.clone(),
                    restriction_exempt: purpose_s.is_some_and(|x| RESTRICTED_PURPOSES.contains(&x)),
                },
                p.event(action, Some(id.to_string()), purpose_s, ""),
            )
            .await?;
        let (blob, updated) = match found {
            RecordFound::NoSubject => return Err(StoreError::NotFound("subject")),
            RecordFound::Erased(e) => {
                return Err(StoreError::SubjectErased {
                    erased_at: rfc3339(e),
                })
            }
            RecordFound::Restricted => return Err(StoreError::Restricted),
            RecordFound::NoRecord => return Err(StoreError::NotFound("record")),
            RecordFound::Sealed { fields, updated_us } => (fields, updated_us),
        };
        let dek = self.subject_key(&p.tenant, id).await?;
        let fields = open_fields(&dek, collection.as_str(), key.as_str(), &blob, !clear)?;
        Ok(RecordView {
            fields,
            masked: !clear,
            updated_at: rfc3339(updated),
        })
    }

    /// Deletes one record.
    pub async fn delete_record(
        &self,
        p: &Principal,
        id: &SubjectId,
        collection: &Collection,
        key: &RecordKey,
    ) -> Result<(), StoreError> {
        p.require(Scope::Write)?;
        self.live_subject(&p.tenant, id).await?;
        let ev = p.event("record.delete", Some(id.to_string()), None, "ok");
        let n = self
            .inner
            .writer
            .submit(
                VaultChange::DeleteRecord {
                    tenant: p.tenant.clone(),
                    subject: *id,
                    collection: collection.clone(),
                    rkey: key.clone(),
                },
                vec![ev],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound("record"));
        }
        Ok(())
    }

    /// Everything the vault holds on a subject, in clear (reveal scope;
    /// audited). Allowed for restricted subjects: access is their right.
    pub async fn export(
        &self,
        p: &Principal,
        id: &SubjectId,
        purpose: Option<&Purpose>,
    ) -> Result<SubjectExport, StoreError> {
        p.require(Scope::Reveal)?;
        let info = self.live_subject(&p.tenant, id).await?;
        let dek = self.subject_key(&p.tenant, id).await?;
        let mut identities = BTreeMap::new();
        let rows =
            sqlx::query("SELECT kind, value_ct FROM identities WHERE subject = $1 AND tenant = $2")
                .bind(id.to_string())
                .bind(p.tenant.as_str())
                .fetch_all(&self.inner.read)
                .await?;
        for r in rows {
            let kind: String = r.try_get(0)?;
            let ct: Vec<u8> = r.try_get(1)?;
            let clear = dek
                .open_identity(&kind, &ct)
                .map_err(StoreError::Integrity)?;
            identities.insert(kind, String::from_utf8_lossy(&clear).into_owned());
        }
        let mut records: BTreeMap<String, BTreeMap<String, Map<String, Value>>> = BTreeMap::new();
        let rows = sqlx::query("SELECT collection, rkey, fields FROM records WHERE subject = $1 AND tenant = $2 ORDER BY collection, rkey")
            .bind(id.to_string())
            .bind(p.tenant.as_str())
            .fetch_all(&self.inner.read)
            .await?;
        for r in rows {
            let c: String = r.try_get(0)?;
            let k: String = r.try_get(1)?;
            let blob: Vec<u8> = r.try_get(2)?;
            let fields = open_fields(&dek, &c, &k, &blob, false)?;
            records.entry(c).or_default().insert(k, fields);
        }
        let rows = sqlx::query("SELECT DISTINCT audience FROM tokens WHERE subject = $1 AND tenant = $2 ORDER BY audience")
            .bind(id.to_string())
            .bind(p.tenant.as_str())
            .fetch_all(&self.inner.read)
            .await?;
        let token_audiences = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        let ev = p.event(
            "export",
            Some(id.to_string()),
            purpose.map(|x| x.as_str()),
            "ok",
        );
        self.inner.writer.audit(vec![ev]).await?;
        Ok(SubjectExport {
            subject: info,
            identities,
            records,
            token_audiences,
        })
    }

    // ----- tokens -----------------------------------------------------------

    /// The subject's stable token for an audience.
    pub async fn issue_token(
        &self,
        p: &Principal,
        id: &SubjectId,
        audience: &Audience,
    ) -> Result<String, StoreError> {
        p.require_any(&[Scope::Write, Scope::Lookup])?;
        self.live_subject(&p.tenant, id).await?;
        let tk = self.tenant_keys(&p.tenant).await?;
        let token = tk.token(audience, id);
        let ev = p.event(
            "token.issue",
            Some(id.to_string()),
            Some(audience.as_str()),
            "ok",
        );
        self.inner
            .writer
            .submit(
                VaultChange::IssueToken {
                    token: token.clone(),
                    tenant: p.tenant.clone(),
                    audience: audience.clone(),
                    subject: *id,
                },
                vec![ev],
            )
            .await?;
        Ok(token)
    }

    /// Whether a token's subject is alive: `Ok(audience)`, or `TokenGone`
    /// once erased. Tokens of other tenants are not found.
    pub async fn resolve_token(&self, p: &Principal, token: &str) -> Result<String, StoreError> {
        if token.len() > 64 || !token.starts_with("tok_") {
            return Err(StoreError::invalid(
                "token",
                "expected tok_ followed by 24 characters",
            ));
        }
        let row = sqlx::query(
            "SELECT t.audience, s.erased_us FROM tokens t JOIN subjects s ON s.id = t.subject \
             WHERE t.token = $1 AND t.tenant = $2",
        )
        .bind(token)
        .bind(p.tenant.as_str())
        .fetch_optional(&self.inner.read)
        .await?
        .ok_or(StoreError::NotFound("token"))?;
        if let Some(e) = row.try_get::<Option<i64>, _>(1)? {
            return Err(StoreError::TokenGone {
                erased_at: rfc3339(e),
            });
        }
        Ok(row.try_get(0)?)
    }

    // ----- restriction and erasure -----------------------------------------

    /// Restricts (or lifts the restriction of) processing (Art. 18).
    pub async fn set_restriction(
        &self,
        p: &Principal,
        id: &SubjectId,
        restricted: bool,
    ) -> Result<SubjectInfo, StoreError> {
        p.require(Scope::Erase)?;
        self.live_subject(&p.tenant, id).await?;
        let action = if restricted { "restrict" } else { "unrestrict" };
        let ev = p.event(action, Some(id.to_string()), None, "ok");
        self.inner
            .writer
            .submit(
                VaultChange::SetRestriction {
                    tenant: p.tenant.clone(),
                    subject: *id,
                    restricted,
                },
                vec![ev],
            )
            .await?;
        self.inner.consent.forget_subject(id);
        self.live_subject(&p.tenant, id).await
    }

    /// Erases a subject: ledger entry, erased mark and index deletion in one
    /// transaction, then the key is destroyed. Returns the erasure time.
    /// `reason` is a code (`subject_request`, `retention`, …), never free text,
    /// so the ledger cannot hold personal data.
    pub async fn erase(
        &self,
        p: &Principal,
        id: &SubjectId,
        reason: &Purpose,
    ) -> Result<String, StoreError> {
        p.require(Scope::Erase)?;
        self.live_subject(&p.tenant, id).await?;
        let ev = p.event("erase", Some(id.to_string()), Some(reason.as_str()), "ok");
        let n = self
            .inner
            .writer
            .submit(
                VaultChange::Erase {
                    tenant: p.tenant.clone(),
                    subject: *id,
                    reason: reason.to_string(),
                    actor: p.audit_name(),
                },
                vec![ev],
            )
            .await?;
        lock(&self.inner.deks).remove(id);
        self.inner.consent.forget_subject(id);
        if n == 0 {
            // Erased concurrently by someone else: report their time.
            self.live_subject(&p.tenant, id).await?;
        }
        self.inner.keys.delete_subject_key(id).await?;
        match self.live_subject(&p.tenant, id).await {
            Err(StoreError::SubjectErased { erased_at }) => Ok(erased_at),
            Err(e) => Err(e),
            Ok(_) => Err(StoreError::Database("erasure did not commit".into())),
        }
    }

    // ----- audit ------------------------------------------------------------

    /// Audit entries of the principal's tenant, optionally of one subject.
    pub async fn audit_entries(
        &self,
        p: &Principal,
        subject: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        p.require(Scope::Audit)?;
        let rows = match subject {
            Some(s) => {
                sqlx::query(
                    "SELECT seq, at_us, tenant, actor, action, subject, purpose, outcome, prev_hash, hash FROM audit_log \
                     WHERE tenant = $1 AND subject = $2 AND seq > $3 ORDER BY seq LIMIT $4",
                )
                .bind(p.tenant.as_str())
                .bind(s)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.inner.read)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT seq, at_us, tenant, actor, action, subject, purpose, outcome, prev_hash, hash FROM audit_log \
                     WHERE tenant = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(p.tenant.as_str())
                .bind(after)
                .bind(limit)
                .fetch_all(&self.inner.read)
                .await?
            }
        };
        rows.iter().map(audit_entry).collect()
    }

    /// Verifies the whole audit chain, every checkpoint signature, and the
    /// anchor in the key store (which detects a truncated tail).
    pub async fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        let vk = self.inner.root.audit_signing_key().verifying_key();
        let cps = sqlx::query("SELECT seq, hash, signature FROM audit_checkpoints ORDER BY seq")
            .fetch_all(&self.inner.read)
            .await?
            .iter()
            .map(|r| {
                Ok(Checkpoint {
                    seq: r.try_get(0)?,
                    hash: to32(r.try_get(1)?)?,
                    signature: r.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let anchor = self.inner.keys.anchor().await?;
        let mut all: Vec<Checkpoint> = cps.clone();
        all.extend(anchor.clone());
        let mut v = ChainVerifier::new(all.iter().map(|c| c.seq));
        let mut after = 0i64;
        let fail = |b: ChainBreak, n: i64, k: usize| {
            let seq = match &b {
                ChainBreak::Edited { seq } | ChainBreak::Checkpoint { seq, .. } => *seq,
                // The first entry missing, not the one after the hole.
                ChainBreak::Gap { expected_prev, .. } => *expected_prev + 1,
                ChainBreak::Truncated { last_seq, .. } => *last_seq + 1,
            };
            AuditReport {
                entries: n,
                checkpoints: k,
                first_break: Some(b.to_string()),
                first_bad_seq: Some(seq),
            }
        };
        loop {
            let rows = sqlx::query(
                "SELECT seq, at_us, tenant, actor, action, subject, purpose, outcome, prev_hash, hash FROM audit_log \
                 WHERE seq > $1 ORDER BY seq LIMIT 5000",
            )
            .bind(after)
            .fetch_all(&self.inner.read)
            .await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let e = audit_entry(r)?;
                after = e.seq;
                if let Err(b) = v.push(&e) {
                    return Ok(fail(b, v.len(), 0));
                }
            }
        }
        for (i, c) in cps.iter().enumerate() {
            if let Err(b) = v.check(c, &vk) {
                return Ok(fail(b, v.len(), i));
            }
        }
        if let Some(a) = &anchor {
            if let Err(b) = v.check(a, &vk) {
                return Ok(fail(b, v.len(), cps.len()));
            }
        }
        Ok(AuditReport {
            entries: v.len(),
            checkpoints: cps.len() + usize::from(anchor.is_some()),
            first_break: None,
            first_bad_seq: None,
        })
    }

    // ----- key rotation -----------------------------------------------------

    /// Rotates a tenant's KEK (rewraps subject keys; data untouched).
    pub async fn rotate_tenant_key(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let n = self
            .inner
            .keys
            .rotate_tenant(&self.inner.root, tenant, now_us())
            .await?;
        lock(&self.inner.tenants).remove(tenant);
        let ev = AuditEvent {
            tenant: Some(tenant.to_string()),
            actor: "admin".into(),
            action: "key.rotate_tenant".into(),
            subject: None,
            purpose: None,
            outcome: "ok".into(),
        };
        self.inner.writer.audit(vec![ev]).await?;
        Ok(n)
    }

    /// The key store (for root rotation from the CLI).
    pub fn keystore(&self) -> &KeyStore {
        &self.inner.keys
    }

    /// Direct read access for benchmarks and tests that measure the
    /// alternative designs (e.g. decrypt-and-scan lookups).
    pub fn read_pool(&self) -> &AnyPool {
        &self.inner.read
    }

    /// Decrypt-and-scan lookup: what a vault without blind indexes must do.
    /// Kept only as the benchmark's baseline.
    pub async fn lookup_by_scan(
        &self,
        p: &Principal,
        kind: &IdentityKind,
        value: &str,
    ) -> Result<Option<SubjectId>, StoreError> {
        let norm = kind
            .normalise(value)
            .map_err(|e| StoreError::invalid(kind.as_str(), e))?;
        let rows =
            sqlx::query("SELECT subject, value_ct FROM identities WHERE tenant = $1 AND kind = $2")
                .bind(p.tenant.as_str())
                .bind(kind.as_str())
                .fetch_all(&self.inner.read)
                .await?;
        for r in rows {
            let s = SubjectId::parse(&r.try_get::<String, _>(0)?).map_err(StoreError::Integrity)?;
            let ct: Vec<u8> = r.try_get(1)?;
            let dek = self.subject_key(&p.tenant, &s).await?;
            let clear = dek
                .open_identity(kind.as_str(), &ct)
                .map_err(StoreError::Integrity)?;
            if clear == norm.expose().as_bytes() {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    /// Drops cached subject keys (benchmarks measure cold paths with it).
    pub fn clear_key_cache(&self) {
        lock(&self.inner.deks).clear();
    }

    /// Closes pools; the writer commits what is queued first.
    pub async fn close(&self) {
        self.inner.writer.shutdown().await;
        self.inner.read.close().await;
        self.inner.keys.close().await;
    }
}

fn open_fields(
    dek: &SubjectKey,
    collection: &str,
    key: &str,
    blob: &[u8],
    masked: bool,
) -> Result<Map<String, Value>, StoreError> {
    let mut out = Map::new();
    for (name, ct) in record::unpack(blob).map_err(StoreError::Integrity)? {
        let clear = dek
            .open_field(collection, key, &name, ct)
            .map_err(StoreError::Integrity)?;
        let v: Value = serde_json::from_slice(&clear)
            .map_err(|_| StoreError::Integrity(custos_core::CoreError::MalformedEnvelope))?;
        out.insert(name, if masked { mask::mask_value(&v) } else { v });
    }
    Ok(out)
}

fn tenant_info(row: &sqlx::any::AnyRow) -> Result<TenantInfo, StoreError> {
    Ok(TenantInfo {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        created_at: rfc3339(row.try_get(2)?),
        shredded_at: row.try_get::<Option<i64>, _>(3)?.map(rfc3339),
    })
}

fn audit_entry(r: &sqlx::any::AnyRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        seq: r.try_get(0)?,
        at_us: r.try_get(1)?,
        event: AuditEvent {
            tenant: r.try_get(2)?,
            actor: r.try_get(3)?,
            action: r.try_get(4)?,
            subject: r.try_get(5)?,
            purpose: r.try_get(6)?,
            outcome: r.try_get(7)?,
        },
        prev_hash: to32(r.try_get(8)?)?,
        hash: to32(r.try_get(9)?)?,
    })
}
