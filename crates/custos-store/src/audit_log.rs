//! The audit log read without the root key, for auditors who hold only
//! public keys: verification against a public key history they trust,
//! and the self-contained proof (`custos_core::audit_proof`).
//!
//! Opening migrates nothing and writes nothing: the stores must have been
//! opened once by this version of custos (which starts the key history).

use sqlx::AnyPool;

use custos_core::audit_keys::PublicKeyHistory;
use custos_core::audit_proof::AuditProof;

use crate::keystore::KeyStore;
use crate::vault::audit::{checkpoints, entries_after, recoveries, verify_log};
use crate::{db, AuditReport, StoreError};

/// See the module.
#[derive(Debug)]
pub struct AuditLog {
    data: AnyPool,
    keys: Option<KeyStore>,
}

impl AuditLog {
    /// Opens the data store and, if given, the key store (for its anchor,
    /// which detects a cut-off tail, and its key history), read only.
    pub async fn open(database_url: &str, keystore_url: Option<&str>) -> Result<Self, StoreError> {
        let (data, _) = db::connect(database_url, 2).await?;
        let keys = match keystore_url {
            Some(url) => Some(KeyStore::open_public(url).await?),
            None => None,
        };
        Ok(Self { data, keys })
    }

    /// The key store's public key history (empty without a key store).
    pub async fn public_key_history(&self) -> Result<PublicKeyHistory, StoreError> {
        match &self.keys {
            Some(k) => k.public_key_history().await,
            None => Ok(PublicKeyHistory::new(Vec::new())),
        }
    }

    /// Verifies the chain and every checkpoint with public keys alone:
    /// those of `trusted`, and the later keys of the key store's history
    /// that extend it (each endorsed by the one before).
    pub async fn verify(&self, trusted: &PublicKeyHistory) -> Result<AuditReport, StoreError> {
        let stored = self.public_key_history().await?;
        let (history, anchor, recovered) = match &self.keys {
            Some(k) if !stored.keys.is_empty() => {
                let checked = stored.check_against(trusted).map(|()| &stored);
                (checked, k.anchor().await?, recoveries(k).await?)
            }
            Some(k) => (
                trusted.check().map(|()| trusted),
                k.anchor().await?,
                recoveries(k).await?,
            ),
            None => (trusted.check().map(|()| trusted), None, Vec::new()),
        };
        verify_log(&self.data, history, anchor, recovered, None).await
    }

    /// The proof of the whole chain (see `custos_core::audit_proof`).
    pub async fn proof(&self) -> Result<AuditProof, StoreError> {
        let mut entries = Vec::new();
        let mut after = 0;
        loop {
            let page = entries_after(&self.data, after, 5000).await?;
            match page.last() {
                Some(e) => after = e.seq,
                None => break,
            }
            entries.extend(page);
        }
        let anchor = match &self.keys {
            Some(k) => k.anchor().await?,
            None => None,
        };
        Ok(AuditProof::new(
            entries,
            checkpoints(&self.data).await?,
            anchor,
            self.public_key_history().await?,
        ))
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.data.close().await;
        if let Some(k) = &self.keys {
            k.close().await;
        }
    }
}
