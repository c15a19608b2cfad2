//! The audit signing key at opening (created, or for a store signed with
//! the root-derived key, that key recorded first), its rotation, and the
//! public key history handed to auditors.

use sqlx::{AnyPool, Row};

use custos_core::audit::AuditEvent;
use custos_core::audit_keys::{AuditSigningKey, PublicKeyHistory};
use custos_core::keys::RootKey;

use super::Vault;
use crate::keystore::KeyStore;
use crate::{now_us, StoreError};

/// The active audit signing key; on the first open of a store by this
/// version, its history is started (see `KeyStore::ensure_audit_key`).
/// A store whose chain holds checkpoints without a key id, or whose anchor
/// has none, was signed with the root-derived key.
pub(super) async fn key_at_open(
    keys: &KeyStore,
    data: &AnyPool,
    root: &RootKey,
) -> Result<AuditSigningKey, StoreError> {
    if keys.active_audit_key_id().await?.is_some() {
        return keys.active_audit_key(root).await;
    }
    let head: i64 = sqlx::query("SELECT seq FROM audit_head WHERE id = 1")
        .fetch_one(data)
        .await?
        .try_get(0)?;
    let unnamed: i64 = sqlx::query("SELECT COUNT(*) FROM audit_checkpoints WHERE key_id IS NULL")
        .fetch_one(data)
        .await?
        .try_get(0)?;
    let anchor_unnamed = keys.anchor().await?.is_some_and(|a| a.key_id.is_none());
    keys.ensure_audit_key(root, head, unnamed > 0 || anchor_unnamed, now_us())
        .await
}

impl Vault {
    /// Rotates the audit signing key: a new random key, endorsed by the
    /// current one, signs from the next checkpoint; the current one is
    /// retired (its public key stays in the history). Audited. Returns
    /// (retired key id, new key id). Other servers take the new key up
    /// after their next checkpoint.
    pub async fn rotate_audit_key(&self) -> Result<(String, String), StoreError> {
        let head: i64 = sqlx::query("SELECT seq FROM audit_head WHERE id = 1")
            .fetch_one(&self.inner.read)
            .await?
            .try_get(0)?;
        let (old, key) = self
            .inner
            .keys
            .rotate_audit_key(&self.inner.root, head, now_us())
            .await?;
        let new = key.id().to_owned();
        self.inner.audit_key.set(key);
        self.inner
            .writer
            .audit(vec![AuditEvent {
                tenant: None,
                actor: "admin".into(),
                action: "audit_key.rotate".into(),
                subject: None,
                purpose: None,
                outcome: format!("key {old} retired; key {new} signs from now on"),
            }])
            .await?;
        Ok((old, new))
    }

    /// Every audit signing key ever used (public keys only), for auditors.
    pub async fn public_key_history(&self) -> Result<PublicKeyHistory, StoreError> {
        self.inner.keys.public_key_history().await
    }

    /// The audit signing key in use (completion records are signed with it).
    pub(crate) fn audit_signing_key(&self) -> std::sync::Arc<AuditSigningKey> {
        self.inner.audit_key.get()
    }
}
