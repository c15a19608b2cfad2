//! The audit signing keys in the key store: the active key (wrapped under
//! the root key's wrapping subkey) and the public history of every key
//! ever used (see `custos_core::audit_keys`).
//!
//! Invariant: the history only grows; a retired key keeps its public key
//! and endorsement, and loses its wrapped secret.

use sqlx::{Any, Row, Transaction};

use custos_core::audit_keys::{AuditSigningKey, KeyOrigin, PublicKeyEntry, PublicKeyHistory};
use custos_core::keys::RootKey;
use rand_core::OsRng;

use super::KeyStore;
use crate::StoreError;

const HISTORY: &str = "SELECT position, key_id, public_key, origin, valid_from_seq, created_us, \
                       previous, endorsement FROM audit_signing_keys ORDER BY position";

fn entry(r: &sqlx::any::AnyRow) -> Result<PublicKeyEntry, StoreError> {
    let origin: String = r.try_get(3)?;
    Ok(PublicKeyEntry {
        key_id: r.try_get(1)?,
        public_key: r.try_get(2)?,
        origin: KeyOrigin::parse(&origin).ok_or(StoreError::Integrity(
            custos_core::CoreError::MalformedEnvelope,
        ))?,
        valid_from_seq: r.try_get(4)?,
        created_us: r.try_get(5)?,
        previous: r.try_get(6)?,
        endorsement: r.try_get(7)?,
    })
}

async fn insert(
    tx: &mut Transaction<'static, Any>,
    position: i64,
    e: &PublicKeyEntry,
    wrapped: Option<Vec<u8>>,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "INSERT INTO audit_signing_keys (position, key_id, public_key, origin, valid_from_seq, \
         created_us, previous, endorsement, wrapped) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT DO NOTHING",
    )
    .bind(position)
    .bind(&e.key_id)
    .bind(&e.public_key)
    .bind(e.origin.as_str())
    .bind(e.valid_from_seq)
    .bind(e.created_us)
    .bind(e.previous.clone())
    .bind(&e.endorsement)
    .bind(wrapped)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

impl KeyStore {
    /// The public key history, oldest first (empty before the first key).
    pub async fn public_key_history(&self) -> Result<PublicKeyHistory, StoreError> {
        let rows = sqlx::query(HISTORY).fetch_all(&self.pool).await?;
        Ok(PublicKeyHistory::new(
            rows.iter().map(entry).collect::<Result<_, _>>()?,
        ))
    }

    /// The id of the key that signs new checkpoints, if there is one.
    pub(crate) async fn active_audit_key_id(&self) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT key_id FROM audit_signing_keys ORDER BY position DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// The key that signs new checkpoints, unwrapped.
    pub(crate) async fn active_audit_key(
        &self,
        root: &RootKey,
    ) -> Result<AuditSigningKey, StoreError> {
        let row = sqlx::query(
            "SELECT key_id, wrapped FROM audit_signing_keys ORDER BY position DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("audit signing key"))?;
        let id: String = row.try_get(0)?;
        let wrapped: Option<Vec<u8>> = row.try_get(1)?;
        let wrapped = wrapped.ok_or(StoreError::NotFound("audit signing key"))?;
        root.unwrap_audit_key(&id, &wrapped)
            .map_err(StoreError::Integrity)
    }

    /// Makes sure the store has an audit signing key, and returns it. The
    /// first open of a store whose checkpoints were signed with the
    /// root-derived key (`legacy`) records that key first (public key
    /// only), then a random key it endorses; a new store gets a random
    /// key. `head_seq` is the chain's last entry. Servers opening at once
    /// agree: the first to commit wins, the others read its key.
    pub(crate) async fn ensure_audit_key(
        &self,
        root: &RootKey,
        head_seq: i64,
        legacy: bool,
        now_us: i64,
    ) -> Result<AuditSigningKey, StoreError> {
        if self.active_audit_key_id().await?.is_some() {
            return self.active_audit_key(root).await;
        }
        let key = AuditSigningKey::generate(&mut OsRng);
        let mut tx = self.pool.begin().await?;
        let mut position = 0;
        let mut previous = None;
        if legacy {
            let old = root.legacy_audit_signing_key();
            let e = old.entry(KeyOrigin::RootDerived, 1, now_us, None, &old);
            insert(&mut tx, position, &e, None).await?;
            position += 1;
            previous = Some(old);
        }
        let e = key.entry(
            KeyOrigin::Generated,
            head_seq + 1,
            now_us,
            previous.as_ref().map(AuditSigningKey::id),
            previous.as_ref().unwrap_or(&key),
        );
        let mine = insert(
            &mut tx,
            position,
            &e,
            Some(root.wrap_audit_key(&key, &mut OsRng)),
        )
        .await?;
        if mine == 1 {
            tx.commit().await?;
            Ok(key)
        } else {
            drop(tx);
            self.active_audit_key(root).await
        }
    }

    /// A new audit signing key, endorsed by the current one, which is
    /// retired: its public key stays in the history, its secret is
    /// dropped. Returns (retired id, new key). `head_seq` is the chain's
    /// last entry: the new key signs from the next.
    pub async fn rotate_audit_key(
        &self,
        root: &RootKey,
        head_seq: i64,
        now_us: i64,
    ) -> Result<(String, AuditSigningKey), StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT position, key_id, wrapped FROM audit_signing_keys ORDER BY position DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("audit signing key"))?;
        let position: i64 = row.try_get(0)?;
        let old_id: String = row.try_get(1)?;
        let wrapped: Option<Vec<u8>> = row.try_get(2)?;
        let old = root
            .unwrap_audit_key(
                &old_id,
                &wrapped.ok_or(StoreError::NotFound("audit signing key"))?,
            )
            .map_err(StoreError::Integrity)?;
        let key = AuditSigningKey::generate(&mut OsRng);
        let e = key.entry(
            KeyOrigin::Generated,
            head_seq + 1,
            now_us,
            Some(old.id()),
            &old,
        );
        let n = insert(
            &mut tx,
            position + 1,
            &e,
            Some(root.wrap_audit_key(&key, &mut OsRng)),
        )
        .await?;
        if n != 1 {
            return Err(StoreError::Conflict(
                "the audit key was rotated concurrently",
            ));
        }
        sqlx::query(
            "UPDATE audit_signing_keys SET wrapped = NULL, retired_us = $1 WHERE position = $2",
        )
        .bind(now_us)
        .bind(position)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((old_id, key))
    }

    /// Rewraps the audit keys that still have a secret under `new_root`
    /// (root rotation); returns how many.
    pub(super) async fn rewrap_audit_keys(
        &self,
        tx: &mut Transaction<'static, Any>,
        old: &RootKey,
        new_root: &RootKey,
    ) -> Result<u64, StoreError> {
        let rows =
            sqlx::query("SELECT key_id, wrapped FROM audit_signing_keys WHERE wrapped IS NOT NULL")
                .fetch_all(&mut **tx)
                .await?;
        let mut n = 0;
        for r in rows {
            let id: String = r.try_get(0)?;
            let key = old
                .unwrap_audit_key(&id, &r.try_get::<Vec<u8>, _>(1)?)
                .map_err(StoreError::Integrity)?;
            sqlx::query("UPDATE audit_signing_keys SET wrapped = $1 WHERE key_id = $2")
                .bind(new_root.wrap_audit_key(&key, &mut OsRng))
                .bind(id)
                .execute(&mut **tx)
                .await?;
            n += 1;
        }
        Ok(n)
    }
}
