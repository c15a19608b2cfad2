//! The audit log as its readers see it: a tenant's entries, and the
//! verification of the whole chain, every signed checkpoint (with the
//! public key it names) and the anchor kept in the key store (which
//! detects a truncated tail). `crate::audit_log` verifies the same way
//! without the root key.

use custos_core::audit::{AuditEntry, AuditEvent, ChainBreak, ChainVerifier, Checkpoint};
use custos_core::audit_keys::{KeyHistoryError, PublicKeyHistory};
use custos_core::scope::Scope;
use serde::Serialize;
use sqlx::{AnyPool, Row};

use super::{Audit, Principal};
use crate::keystore::{to32, KeyStore};
use crate::StoreError;

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
    /// Recoveries of a data store restored from an older copy: the
    /// stretches of the chain they lost.
    pub recoveries: Vec<AuditRecovery>,
    /// Why the data store counts as restored from an older copy and not
    /// yet recovered, if it does (it is not served until then).
    pub rolled_back: Option<String>,
}

/// A recovery of a restored data store, as `audit verify` reports it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AuditRecovery {
    /// RFC 3339 of the recovery.
    pub at: String,
    /// The restored chain's last entry.
    pub restored_seq: i64,
    /// The last entry anchored before the restore: entries after
    /// `restored_seq` up to this one were lost.
    pub anchored_seq: i64,
    /// Why.
    pub reason: String,
}

impl Audit<'_> {
    /// Audit entries of the principal's tenant, optionally of one subject.
    pub async fn entries(
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
                .fetch_all(&self.v.inner.read)
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
                .fetch_all(&self.v.inner.read)
                .await?
            }
        };
        rows.iter().map(audit_entry).collect()
    }

    /// Verifies the whole audit chain, every checkpoint signature (with
    /// the key it names in the key store's public key history, whose
    /// endorsements are checked too), and the anchor in the key store
    /// (which detects a truncated tail). Needs no secret: the root key
    /// only opened the vault.
    pub async fn verify(&self) -> Result<AuditReport, StoreError> {
        let keys = &self.v.inner.keys;
        let history = keys.public_key_history().await?;
        let checked = history.check().map(|()| &history);
        let recoveries = recoveries(keys).await?;
        let rolled_back = self.v.rollback().await?;
        verify_log(
            &self.v.inner.read,
            checked,
            keys.anchor().await?,
            recoveries,
            rolled_back,
        )
        .await
    }
}

/// The recoveries recorded in the key store, as reported.
pub(crate) async fn recoveries(keys: &KeyStore) -> Result<Vec<AuditRecovery>, StoreError> {
    Ok(keys
        .anchor_history()
        .await?
        .into_iter()
        .map(|(a, restored_seq, at, reason)| AuditRecovery {
            at: crate::rfc3339(at),
            restored_seq,
            anchored_seq: a.seq,
            reason,
        })
        .collect())
}

/// Every checkpoint of the data store, by position.
pub(crate) async fn checkpoints(read: &AnyPool) -> Result<Vec<Checkpoint>, StoreError> {
    sqlx::query("SELECT seq, hash, signature, key_id FROM audit_checkpoints ORDER BY seq")
        .fetch_all(read)
        .await?
        .iter()
        .map(|r| {
            Ok(Checkpoint {
                seq: r.try_get(0)?,
                hash: to32(r.try_get(1)?)?,
                signature: r.try_get(2)?,
                key_id: r.try_get(3)?,
            })
        })
        .collect()
}

/// Entries after `after`, at most `limit`, in order.
pub(crate) async fn entries_after(
    read: &AnyPool,
    after: i64,
    limit: i64,
) -> Result<Vec<AuditEntry>, StoreError> {
    sqlx::query(
        "SELECT seq, at_us, tenant, actor, action, subject, purpose, outcome, prev_hash, hash FROM audit_log \
         WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(read)
    .await?
    .iter()
    .map(audit_entry)
    .collect()
}

/// Verifies the chain in `read` and its checkpoints and `anchor` with the
/// keys of `history` (already checked, or why it is not valid).
pub(crate) async fn verify_log(
    read: &AnyPool,
    history: Result<&PublicKeyHistory, KeyHistoryError>,
    anchor: Option<Checkpoint>,
    recoveries: Vec<AuditRecovery>,
    rolled_back: Option<String>,
) -> Result<AuditReport, StoreError> {
    let cps = checkpoints(read).await?;
    let mut all: Vec<Checkpoint> = cps.clone();
    all.extend(anchor.clone());
    let mut v = ChainVerifier::new(all.iter().map(|c| c.seq));
    let report = |first_break: Option<String>, seq: Option<i64>, n: i64, k: usize| AuditReport {
        entries: n,
        checkpoints: k,
        first_break,
        first_bad_seq: seq,
        recoveries: recoveries.clone(),
        rolled_back: rolled_back.clone(),
    };
    let fail = |b: ChainBreak, n: i64, k: usize| {
        let seq = match &b {
            ChainBreak::Edited { seq } | ChainBreak::Checkpoint { seq, .. } => *seq,
            // The first entry missing, not the one after the hole.
            ChainBreak::Gap { expected_prev, .. } => *expected_prev + 1,
            ChainBreak::Truncated { last_seq, .. } => *last_seq + 1,
        };
        report(Some(b.to_string()), Some(seq), n, k)
    };
    let mut after = 0i64;
    loop {
        let rows = entries_after(read, after, 5000).await?;
        if rows.is_empty() {
            break;
        }
        for e in &rows {
            after = e.seq;
            if let Err(b) = v.push(e) {
                return Ok(fail(b, v.len(), 0));
            }
        }
    }
    let history = match history {
        Ok(h) => h,
        Err(e) => {
            let why = format!("public key history: {e}");
            return Ok(report(Some(why), all.first().map(|c| c.seq), v.len(), 0));
        }
    };
    for (i, c) in all.iter().enumerate() {
        if let Err(b) = v.check_in(c, history) {
            return Ok(fail(b, v.len(), i));
        }
    }
    Ok(report(None, None, v.len(), all.len()))
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
