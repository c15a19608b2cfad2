//! At start, subject keys without a subject row are destroyed, and their
//! number audited. `Subjects::create` stores the key first (a row without
//! its key would be a subject nobody can read), then commits the row; a
//! crash in between leaves a key of nobody. Only keys written since the
//! last sweep are checked (against the data store, by primary key), and
//! only those older than [`ORPHAN_GRACE_US`]: a younger key may belong to
//! a subject another server is creating right now; the next start checks
//! it.

use std::collections::HashSet;

use custos_core::audit::AuditEvent;

use super::Vault;
use crate::StoreError;

/// How long a subject key may wait for its row: far longer than creating
/// a subject takes (two group commits).
pub const ORPHAN_GRACE_US: i64 = 5 * 60 * 1_000_000;

impl Vault {
    /// See the module; returns the keys destroyed.
    pub(crate) async fn sweep_orphan_keys(&self, now_us: i64) -> Result<u64, StoreError> {
        let keys = &self.inner.keys;
        let until = now_us - ORPHAN_GRACE_US;
        let from = keys.swept_us().await?;
        if from >= until {
            return Ok(0);
        }
        let written = keys.subject_keys_written(from, until).await?;
        let mut found = HashSet::new();
        for chunk in written.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT id FROM subjects WHERE id IN ({})", marks.join(", "));
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for s in chunk {
                q = q.bind(s.as_str());
            }
            found.extend(q.fetch_all(&self.inner.read).await?);
        }
        let orphans: Vec<String> = written.into_iter().filter(|s| !found.contains(s)).collect();
        let n = keys.destroy_orphans(&orphans, until).await?;
        if n > 0 {
            tracing::warn!(
                keys = n,
                "destroyed subject keys whose subject was never created"
            );
            self.inner
                .writer
                .audit(vec![AuditEvent {
                    tenant: None,
                    actor: "admin".into(),
                    action: "subject_keys.orphans_destroyed".into(),
                    subject: None,
                    purpose: None,
                    outcome: format!("{n} keys without a subject destroyed"),
                }])
                .await?;
        }
        Ok(n)
    }
}
