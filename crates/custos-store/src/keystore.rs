//! The key store: wrapped tenant keys, index roots and subject data keys, in
//! a database of their own (never next to the data), plus the audit anchor.
//!
//! Invariant: nothing here is usable without the root key, which is never
//! stored here; deleting a subject's row is that subject's erasure.

use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use custos_core::audit::Checkpoint;
use custos_core::ids::{SubjectId, TenantId};
use custos_core::keys::{RootKey, TenantKeys, WRAP_FORMAT};
use custos_core::secret::Key32;
use rand_core::OsRng;

use crate::db::{self, Engine, Role};
use crate::ledger::{Entries, Erasure, Shred};
use crate::StoreError;

mod audit_keys;
mod orphans;

/// Handle on the key store database.
#[derive(Clone, Debug)]
pub struct KeyStore {
    pool: AnyPool,
    engine: Engine,
    new_keys: mpsc::Sender<NewKey>,
}

/// A wrapped subject key waiting for the group commit of [`store_new_keys`].
#[derive(Debug)]
struct NewKey {
    subject: String,
    tenant: String,
    kek_version: i64,
    wrapped: Vec<u8>,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// Most subject keys inserted by one transaction.
const NEW_KEYS_PER_COMMIT: usize = 256;

/// Group commit of new subject keys: every queued key goes into one
/// multi-row insert and one durable commit, so creating subjects does not
/// pay one fsync each. If the batch fails, each key is retried alone so one
/// bad row fails only its own caller.
async fn store_new_keys(pool: AnyPool, engine: Engine, mut rx: mpsc::Receiver<NewKey>) {
    let mut batch = Vec::with_capacity(NEW_KEYS_PER_COMMIT);
    while rx.recv_many(&mut batch, NEW_KEYS_PER_COMMIT).await > 0 {
        let keys: Vec<NewKey> = std::mem::take(&mut batch);
        let sql = format!(
            "INSERT INTO subject_keys (subject, tenant, kek_version, wrapped, created_us) VALUES {}",
            engine.values(keys.len(), 5)
        );
        let mut q = sqlx::query(&sql);
        let now = crate::now_us();
        for k in &keys {
            q = q
                .bind(k.subject.clone())
                .bind(k.tenant.clone())
                .bind(k.kek_version)
                .bind(k.wrapped.clone())
                .bind(now);
        }
        if q.execute(&pool).await.is_ok() {
            for k in keys {
                let _ = k.reply.send(Ok(()));
            }
            continue;
        }
        for k in keys {
            let r = sqlx::query(
                "INSERT INTO subject_keys (subject, tenant, kek_version, wrapped, created_us) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(k.subject)
            .bind(k.tenant)
            .bind(k.kek_version)
            .bind(k.wrapped)
            .bind(crate::now_us())
            .execute(&pool)
            .await
            .map(|_| ())
            .map_err(StoreError::from);
            let _ = k.reply.send(r);
        }
    }
}

impl KeyStore {
    /// Opens and migrates the key store, and checks (or records, on first
    /// start) the root key's fingerprint.
    pub async fn open(url: &str, root: &RootKey) -> Result<Self, StoreError> {
        let (pool, engine) = db::connect(url, 4).await?;
        db::migrate(&pool, engine, Role::Keys).await?;
        let (new_keys, rx) = mpsc::channel(4096);
        tokio::spawn(store_new_keys(pool.clone(), engine, rx));
        let ks = Self {
            pool,
            engine,
            new_keys,
        };
        ks.check_root(root).await?;
        ks.upgrade_wrap_format(root).await?;
        Ok(ks)
    }

    /// Opens the key store to read its public parts (audit anchor, public
    /// key history) without the root key: nothing is migrated or written.
    pub(crate) async fn open_public(url: &str) -> Result<Self, StoreError> {
        let (pool, engine) = db::connect(url, 2).await?;
        // No subject key is ever put through this handle.
        let (new_keys, _) = mpsc::channel(1);
        Ok(Self {
            pool,
            engine,
            new_keys,
        })
    }

    /// The engine behind this store.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    async fn check_root(&self, root: &RootKey) -> Result<(), StoreError> {
        let fp = root.fingerprint();
        let row = sqlx::query("SELECT root_fingerprint FROM keystore_meta WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => {
                let stored: String = r.try_get(0)?;
                if stored != fp {
                    return Err(StoreError::WrongRootKey { expected: stored });
                }
            }
            None => {
                sqlx::query(
                    "INSERT INTO keystore_meta (id, root_fingerprint, wrap_format) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
                )
                .bind(fp)
                .bind(WRAP_FORMAT)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    /// A key store of wrap format 1 (keys wrapped with the root key
    /// itself) is rewrapped under the root key's wrapping subkey, every
    /// key in one transaction, and marked format 2.
    async fn upgrade_wrap_format(&self, root: &RootKey) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let format: i64 = sqlx::query("SELECT wrap_format FROM keystore_meta WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if format == WRAP_FORMAT {
            return Ok(());
        }
        let legacy = root.legacy();
        for r in sqlx::query("SELECT tenant, version, wrapped FROM tenant_keys")
            .fetch_all(&mut *tx)
            .await?
        {
            let t: String = r.try_get(0)?;
            let tenant = TenantId::parse(&t).map_err(StoreError::Integrity)?;
            let v: i64 = r.try_get(1)?;
            let kek = legacy
                .unwrap_tenant_kek(&tenant, v, &r.try_get::<Vec<u8>, _>(2)?)
                .map_err(StoreError::Integrity)?;
            sqlx::query("UPDATE tenant_keys SET wrapped = $1 WHERE tenant = $2 AND version = $3")
                .bind(root.wrap_tenant_kek(&tenant, v, &kek, &mut OsRng))
                .bind(t)
                .bind(v)
                .execute(&mut *tx)
                .await?;
        }
        for r in sqlx::query("SELECT tenant, wrapped FROM tenant_index_roots")
            .fetch_all(&mut *tx)
            .await?
        {
            let t: String = r.try_get(0)?;
            let tenant = TenantId::parse(&t).map_err(StoreError::Integrity)?;
            let idx = legacy
                .unwrap_index_root(&tenant, &r.try_get::<Vec<u8>, _>(1)?)
                .map_err(StoreError::Integrity)?;
            sqlx::query("UPDATE tenant_index_roots SET wrapped = $1 WHERE tenant = $2")
                .bind(root.wrap_index_root(&tenant, &idx, &mut OsRng))
                .bind(t)
                .execute(&mut *tx)
                .await?;
        }
        // Another server may have upgraded meanwhile: only one commits.
        let n = sqlx::query(
            "UPDATE keystore_meta SET wrap_format = $1 WHERE id = 1 AND wrap_format = $2",
        )
        .bind(WRAP_FORMAT)
        .bind(format)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            tx.commit().await?;
            tracing::info!(
                "key store rewrapped under the root key's wrapping subkey (wrap format 2)"
            );
        }
        Ok(())
    }

    /// Creates version 1 of a tenant's KEK and its index root.
    pub async fn create_tenant(
        &self,
        root: &RootKey,
        tenant: &TenantId,
        now_us: i64,
    ) -> Result<(), StoreError> {
        let kek = Key32::generate(&mut OsRng);
        let idx = Key32::generate(&mut OsRng);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO tenant_keys (tenant, version, wrapped, created_us) VALUES ($1, 1, $2, $3)",
        )
        .bind(tenant.as_str())
        .bind(root.wrap_tenant_kek(tenant, 1, &kek, &mut OsRng))
        .bind(now_us)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO tenant_index_roots (tenant, wrapped) VALUES ($1, $2)")
            .bind(tenant.as_str())
            .bind(root.wrap_index_root(tenant, &idx, &mut OsRng))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Loads and unwraps a tenant's active keys; `None` once shredded.
    pub async fn tenant_keys(
        &self,
        root: &RootKey,
        tenant: &TenantId,
    ) -> Result<Option<TenantKeys>, StoreError> {
        let row = sqlx::query(
            "SELECT k.version, k.wrapped, i.wrapped FROM tenant_keys k \
             JOIN tenant_index_roots i ON i.tenant = k.tenant \
             WHERE k.tenant = $1 ORDER BY k.version DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let version: i64 = row.try_get(0)?;
        let wrapped: Vec<u8> = row.try_get(1)?;
        let idx_wrapped: Vec<u8> = row.try_get(2)?;
        let kek = root
            .unwrap_tenant_kek(tenant, version, &wrapped)
            .map_err(StoreError::Integrity)?;
        let idx = root
            .unwrap_index_root(tenant, &idx_wrapped)
            .map_err(StoreError::Integrity)?;
        Ok(Some(TenantKeys::new(tenant.clone(), version, kek, idx)))
    }

    /// Stores a subject's wrapped data key; durable when this returns
    /// (group-committed with other new keys, see `store_new_keys`).
    pub async fn put_subject_key(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
        kek_version: i64,
        wrapped: Vec<u8>,
    ) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        self.new_keys
            .send(NewKey {
                subject: subject.to_string(),
                tenant: tenant.as_str().to_owned(),
                kek_version,
                wrapped,
                reply,
            })
            .await
            .map_err(|_| StoreError::ShuttingDown)?;
        done.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// A subject's wrapped key and the KEK version that wraps it.
    pub async fn subject_key(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
    ) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        let row = sqlx::query(
            "SELECT kek_version, wrapped FROM subject_keys WHERE subject = $1 AND tenant = $2",
        )
        .bind(subject.to_string())
        .bind(tenant.as_str())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some((r.try_get(0)?, r.try_get(1)?))),
            None => Ok(None),
        }
    }

    /// Wrapped keys of many subjects of one tenant in one query (bulk
    /// consent import): `(subject, kek_version, wrapped)`; erased or unknown
    /// subjects are simply absent.
    pub(crate) async fn subject_keys_bulk(
        &self,
        tenant: &TenantId,
        subjects: &[String],
    ) -> Result<Vec<(String, i64, Vec<u8>)>, StoreError> {
        let mut out = Vec::with_capacity(subjects.len());
        for chunk in subjects.chunks(900) {
            // By primary key only (see `consent::import_consent`); the
            // tenant is checked on the rows.
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 1)).collect();
            let sql = format!(
                "SELECT subject, kek_version, wrapped, tenant FROM subject_keys WHERE subject IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for s in chunk {
                q = q.bind(s.as_str());
            }
            for r in q.fetch_all(&self.pool).await? {
                if r.try_get::<String, _>(3)? == tenant.as_str() {
                    out.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
                }
            }
        }
        Ok(out)
    }

    /// Deletes the key of a subject whose creation failed (not an
    /// erasure: nothing is recorded).
    pub(crate) async fn discard_subject_key(&self, subject: &SubjectId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM subject_keys WHERE subject = $1")
            .bind(subject.text().as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes the keys of a tenant whose creation failed (not a shred:
    /// nothing is recorded).
    pub(crate) async fn discard_tenant(&self, tenant: &TenantId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM tenant_keys WHERE tenant = $1",
            "DELETE FROM tenant_index_roots WHERE tenant = $1",
        ] {
            sqlx::query(sql)
                .bind(tenant.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Destroys the keys of what `entries` erased and shredded, and
    /// records them here, in one transaction; returns the keys destroyed.
    /// Idempotent: a ledger replay at start runs it again safely.
    pub(crate) async fn record(&self, entries: &Entries) -> Result<u64, StoreError> {
        let mut n = 0;
        let mut tx = self.pool.begin().await?;
        for e in entries.erasures.values() {
            let subject = e.subject.text();
            n += sqlx::query("DELETE FROM subject_keys WHERE subject = $1")
                .bind(subject.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(
                "INSERT INTO erased_subjects (subject, tenant, erased_us) VALUES ($1, $2, $3) \
                 ON CONFLICT (subject) DO NOTHING",
            )
            .bind(subject.as_str())
            .bind(e.tenant.as_str())
            .bind(e.at_us)
            .execute(&mut *tx)
            .await?;
        }
        for s in entries.shreds.values() {
            for sql in [
                "DELETE FROM tenant_keys WHERE tenant = $1",
                "DELETE FROM tenant_index_roots WHERE tenant = $1",
                "DELETE FROM subject_keys WHERE tenant = $1",
            ] {
                n += sqlx::query(sql)
                    .bind(s.tenant.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            sqlx::query(
                "INSERT INTO shredded_tenants (tenant, shredded_us) VALUES ($1, $2) \
                 ON CONFLICT (tenant) DO NOTHING",
            )
            .bind(s.tenant.as_str())
            .bind(s.at_us)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Every erasure and shredded tenant recorded here.
    pub(crate) async fn erasures(&self) -> Result<Entries, StoreError> {
        let mut out = Entries::default();
        for r in sqlx::query("SELECT subject, tenant, erased_us FROM erased_subjects")
            .fetch_all(&self.pool)
            .await?
        {
            out.add_erasure(Erasure {
                subject: SubjectId::parse(&r.try_get::<String, _>(0)?)
                    .map_err(StoreError::Integrity)?,
                tenant: TenantId::parse(&r.try_get::<String, _>(1)?)
                    .map_err(StoreError::Integrity)?,
                at_us: r.try_get(2)?,
            });
        }
        for r in sqlx::query("SELECT tenant, shredded_us FROM shredded_tenants")
            .fetch_all(&self.pool)
            .await?
        {
            out.add_shred(Shred {
                tenant: TenantId::parse(&r.try_get::<String, _>(0)?)
                    .map_err(StoreError::Integrity)?,
                at_us: r.try_get(1)?,
            });
        }
        Ok(out)
    }

    /// Whether a tenant still has key material (for startup replay).
    pub async fn tenant_has_keys(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM tenant_index_roots WHERE tenant = $1")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Rotates the root key: rewraps every tenant KEK, index root and
    /// audit signing key under `new_root` and records the new fingerprint,
    /// in one transaction; returns the keys rewrapped. Data, subject keys
    /// and the audit keys' public history are untouched, so checkpoints
    /// signed before verify after.
    pub async fn rotate_root(&self, old: &RootKey, new_root: &RootKey) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT tenant, version, wrapped FROM tenant_keys")
            .fetch_all(&mut *tx)
            .await?;
        let mut n = 0;
        for r in rows {
            let t: String = r.try_get(0)?;
            let tenant = TenantId::parse(&t).map_err(StoreError::Integrity)?;
            let v: i64 = r.try_get(1)?;
            let w: Vec<u8> = r.try_get(2)?;
            let kek = old
                .unwrap_tenant_kek(&tenant, v, &w)
                .map_err(StoreError::Integrity)?;
            sqlx::query("UPDATE tenant_keys SET wrapped = $1 WHERE tenant = $2 AND version = $3")
                .bind(new_root.wrap_tenant_kek(&tenant, v, &kek, &mut OsRng))
                .bind(t)
                .bind(v)
                .execute(&mut *tx)
                .await?;
            n += 1;
        }
        let rows = sqlx::query("SELECT tenant, wrapped FROM tenant_index_roots")
            .fetch_all(&mut *tx)
            .await?;
        for r in rows {
            let t: String = r.try_get(0)?;
            let tenant = TenantId::parse(&t).map_err(StoreError::Integrity)?;
            let w: Vec<u8> = r.try_get(1)?;
            let idx = old
                .unwrap_index_root(&tenant, &w)
                .map_err(StoreError::Integrity)?;
            sqlx::query("UPDATE tenant_index_roots SET wrapped = $1 WHERE tenant = $2")
                .bind(new_root.wrap_index_root(&tenant, &idx, &mut OsRng))
                .bind(t)
                .execute(&mut *tx)
                .await?;
        }
        n += self.rewrap_audit_keys(&mut tx, old, new_root).await?;
        sqlx::query("UPDATE keystore_meta SET root_fingerprint = $1 WHERE id = 1")
            .bind(new_root.fingerprint())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Rotates a tenant's KEK: a new version wraps every subject key of the
    /// tenant (rewrapped, not re-encrypted) and the old version is deleted,
    /// all in one transaction. Returns the number of subject keys rewrapped.
    pub async fn rotate_tenant(
        &self,
        root: &RootKey,
        tenant: &TenantId,
        now_us: i64,
    ) -> Result<u64, StoreError> {
        let old = self
            .tenant_keys(root, tenant)
            .await?
            .ok_or(StoreError::NotFound("tenant"))?;
        let new_version = old.kek_version + 1;
        let kek = Key32::generate(&mut OsRng);
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO tenant_keys (tenant, version, wrapped, created_us) VALUES ($1, $2, $3, $4)")
            .bind(tenant.as_str())
            .bind(new_version)
            .bind(root.wrap_tenant_kek(tenant, new_version, &kek, &mut OsRng))
            .bind(now_us)
            .execute(&mut *tx)
            .await?;
        // The index root is shared by both versions, so indexes stay valid.
        let idx_row = sqlx::query("SELECT wrapped FROM tenant_index_roots WHERE tenant = $1")
            .bind(tenant.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let idx = root
            .unwrap_index_root(tenant, &idx_row.try_get::<Vec<u8>, _>(0)?)
            .map_err(StoreError::Integrity)?;
        let new_keys = TenantKeys::new(tenant.clone(), new_version, kek, idx);
        let rows = sqlx::query(
            "SELECT subject, wrapped FROM subject_keys WHERE tenant = $1 AND kek_version = $2",
        )
        .bind(tenant.as_str())
        .bind(old.kek_version)
        .fetch_all(&mut *tx)
        .await?;
        let mut n = 0;
        for r in rows {
            let s: String = r.try_get(0)?;
            let subject = SubjectId::parse(&s).map_err(StoreError::Integrity)?;
            let w: Vec<u8> = r.try_get(1)?;
            let dek = old
                .unwrap_subject_key(&subject, &w)
                .map_err(StoreError::Integrity)?;
            sqlx::query(
                "UPDATE subject_keys SET wrapped = $1, kek_version = $2 WHERE subject = $3",
            )
            .bind(new_keys.wrap_subject_key(&subject, dek.key(), &mut OsRng))
            .bind(new_version)
            .bind(s)
            .execute(&mut *tx)
            .await?;
            n += 1;
        }
        sqlx::query("DELETE FROM tenant_keys WHERE tenant = $1 AND version < $2")
            .bind(tenant.as_str())
            .bind(new_version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Records the latest signed checkpoint, if newer than the stored one.
    pub async fn set_anchor(&self, cp: &Checkpoint) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_anchor (id, seq, hash, signature, key_id) VALUES (1, $1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, signature = excluded.signature, \
             key_id = excluded.key_id WHERE audit_anchor.seq < excluded.seq",
        )
        .bind(cp.seq)
        .bind(cp.hash.to_vec())
        .bind(cp.signature.clone())
        .bind(cp.key_id.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The latest anchored checkpoint.
    pub async fn anchor(&self) -> Result<Option<Checkpoint>, StoreError> {
        let row = sqlx::query("SELECT seq, hash, signature, key_id FROM audit_anchor WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(Some(Checkpoint {
                seq: r.try_get(0)?,
                hash: to32(r.try_get(1)?)?,
                signature: r.try_get(2)?,
                key_id: r.try_get(3)?,
            })),
            None => Ok(None),
        }
    }

    /// Recovery of a restored data store: the anchor its chain no longer
    /// reaches goes to the history with the restored head's sequence
    /// number, and the next checkpoint anchors the chain anew.
    pub(crate) async fn retire_anchor(
        &self,
        anchor: &Checkpoint,
        restored_seq: i64,
        reason: &str,
        now_us: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO audit_anchor_history (seq, hash, signature, replaced_us, restored_seq, reason, key_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(anchor.seq)
        .bind(&anchor.hash[..])
        .bind(&anchor.signature[..])
        .bind(now_us)
        .bind(restored_seq)
        .bind(reason)
        .bind(anchor.key_id.clone())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM audit_anchor WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Anchors retired by recoveries, oldest first: (anchor, restored
    /// head's sequence number, when, why).
    pub(crate) async fn anchor_history(
        &self,
    ) -> Result<Vec<(Checkpoint, i64, i64, String)>, StoreError> {
        sqlx::query(
            "SELECT seq, hash, signature, restored_seq, replaced_us, reason, key_id \
             FROM audit_anchor_history ORDER BY replaced_us",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok((
                Checkpoint {
                    seq: r.try_get(0)?,
                    hash: to32(r.try_get(1)?)?,
                    signature: r.try_get(2)?,
                    key_id: r.try_get(6)?,
                },
                r.try_get(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
            ))
        })
        .collect()
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(crate) fn to32(v: Vec<u8>) -> Result<[u8; 32], StoreError> {
    v.try_into()
        .map_err(|_| StoreError::Integrity(custos_core::CoreError::MalformedEnvelope))
}
