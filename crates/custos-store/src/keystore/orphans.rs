//! Subject keys whose subject row was never committed: a subject's key is
//! stored (durably) before its row, so a crash between the two leaves a
//! key without a subject. The key store remembers up to when keys were
//! checked (`keystore_meta.swept_us`); see `Vault::sweep_orphan_keys`.

use sqlx::Row;

use super::KeyStore;
use crate::StoreError;

impl KeyStore {
    /// Subjects whose keys were written in `[from_us, until_us)`.
    pub(crate) async fn subject_keys_written(
        &self,
        from_us: i64,
        until_us: i64,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query("SELECT subject FROM subject_keys WHERE created_us >= $1 AND created_us < $2")
            .bind(from_us)
            .bind(until_us)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
    }

    /// Keys written from this time on were not checked yet.
    pub(crate) async fn swept_us(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT swept_us FROM keystore_meta WHERE id = 1")
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?,
        )
    }

    /// Destroys the keys of `orphans` (only those written before
    /// `until_us`) and records that keys written before `until_us` were
    /// checked, in one transaction; returns the keys destroyed.
    pub(crate) async fn destroy_orphans(
        &self,
        orphans: &[String],
        until_us: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut n = 0;
        for s in orphans {
            n += sqlx::query("DELETE FROM subject_keys WHERE subject = $1 AND created_us < $2")
                .bind(s)
                .bind(until_us)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        sqlx::query("UPDATE keystore_meta SET swept_us = $1 WHERE id = 1 AND swept_us < $1")
            .bind(until_us)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }
}
