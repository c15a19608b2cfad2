//! At start, the erasure ledger's three places and the audit chain are
//! compared (see `crate::ledger`): what the key store or the witness file
//! lacks is written there and its keys destroyed again; a data store that
//! lacks an erasure, or whose audit chain is behind or diverges from the
//! anchor in the key store, was restored from an older copy and is refused
//! — unless recovery was asked for, which replays every erasure it lacks
//! (audited) and retires the anchor its chain no longer reaches, so that
//! `audit verify` reports the lost stretch instead of "intact".

use sqlx::Row;

use custos_core::audit::AuditEvent;
use custos_core::ids::{SubjectId, TenantId};

use super::changes::VaultChange;
use super::{OpenMode, Vault};
use crate::ledger::{Entries, Erasure, Shred};
use crate::{now_us, StoreError};

/// What the start-up comparison found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Keys destroyed again because the key store lacked their erasure
    /// (a crash mid-erasure, or a restored key store).
    pub keys_destroyed: u64,
    /// Erasures written to the witness file that lacked them.
    pub witnessed: usize,
    /// Erasures and shreds replayed into a restored data store (recovery).
    pub replayed: usize,
    /// The audit chain was behind or off its anchor, which recovery
    /// retired: (anchored sequence number, the restored head's).
    pub chain_restored: Option<(i64, i64)>,
    /// Subject keys destroyed because their subject row was never
    /// committed (a crash while creating the subject; see `orphans`).
    pub orphan_keys: u64,
}

/// Where the data store's audit chain stands against its anchor.
enum Chain {
    /// At or past the anchor, on the same chain (or no anchor yet).
    Consistent,
    /// Behind the anchor, or off it: (anchored seq, head seq).
    Restored(custos_core::audit::Checkpoint, i64),
}

impl Vault {
    /// See the module.
    pub(crate) async fn reconcile(&self, mode: OpenMode) -> Result<Reconciled, StoreError> {
        if mode == OpenMode::Inspect {
            return Ok(Reconciled::default());
        }
        let (data, keys, witness) = self.ledgers().await?;
        let all = data.union(&keys).union(&witness);
        let data_lacks = data.missing_from(&all);
        let chain = self.chain().await?;
        let mut done = Reconciled::default();
        if !data_lacks.is_empty() || matches!(chain, Chain::Restored(..)) {
            if mode != OpenMode::Recover {
                return Err(StoreError::RolledBack(rollback_detail(&data_lacks, &chain)));
            }
            done.replayed = self.replay_into_data(&data_lacks).await?;
            if let Chain::Restored(anchor, head) = &chain {
                self.inner
                    .keys
                    .retire_anchor(anchor, *head, "restored data store recovered", now_us())
                    .await?;
                done.chain_restored = Some((anchor.seq, *head));
            }
            self.inner
                .writer
                .audit(vec![AuditEvent {
                    tenant: None,
                    actor: "admin".into(),
                    action: "store.recovered".into(),
                    subject: None,
                    purpose: None,
                    outcome: match &chain {
                        Chain::Restored(a, h) => format!(
                            "erasures replayed: {}; audit entries {}..={} of the earlier chain lost",
                            done.replayed,
                            h + 1,
                            a.seq
                        ),
                        Chain::Consistent => format!("erasures replayed: {}", done.replayed),
                    },
                }])
                .await?;
        }
        let keys_lack = keys.missing_from(&all);
        if !keys_lack.is_empty() {
            if let Some(w) = &self.inner.witness {
                w.append(&keys_lack)?;
            }
            done.keys_destroyed = self.inner.keys.record(&keys_lack).await?;
        }
        if let Some(w) = &self.inner.witness {
            let witness_lacks = witness.missing_from(&all).missing_from(&keys_lack);
            done.witnessed = witness_lacks.erasures.len() + witness_lacks.shreds.len();
            w.append(&witness_lacks)?;
        }
        if done.keys_destroyed > 0 {
            tracing::warn!(
                keys = done.keys_destroyed,
                "destroyed again the keys of erasures the key store lacked"
            );
        }
        Ok(done)
    }

    /// Why the data store counts as restored from an older copy, if it
    /// does (what [`OpenMode::Serve`] refuses); reads only.
    pub(crate) async fn rollback(&self) -> Result<Option<String>, StoreError> {
        let (data, keys, witness) = self.ledgers().await?;
        let data_lacks = data.missing_from(&data.union(&keys).union(&witness));
        let chain = self.chain().await?;
        Ok(
            (!data_lacks.is_empty() || matches!(chain, Chain::Restored(..)))
                .then(|| rollback_detail(&data_lacks, &chain)),
        )
    }

    /// What the data store, the key store and the witness file record.
    async fn ledgers(&self) -> Result<(Entries, Entries, Entries), StoreError> {
        let data = self.data_ledger().await?;
        let keys = self.inner.keys.erasures().await?;
        let witness = match &self.inner.witness {
            Some(w) => w.read()?,
            None => Entries::default(),
        };
        Ok((data, keys, witness))
    }

    /// Records an erasure or a shred in the witness file and the key
    /// store; the key store's transaction destroys the keys. Called after
    /// the data store committed its part.
    pub(crate) async fn forget(&self, entries: &Entries) -> Result<(), StoreError> {
        if let Some(w) = &self.inner.witness {
            w.append(entries)?;
        }
        self.inner.keys.record(entries).await.map(|_| ())
    }

    /// When a subject was erased, if it was.
    pub(crate) async fn erased_us(
        &self,
        tenant: &TenantId,
        id: &SubjectId,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT erased_us FROM subjects WHERE id = $1 AND tenant = $2")
            .bind(id.text().as_str())
            .bind(tenant.as_str())
            .fetch_optional(&self.inner.read)
            .await?;
        Ok(match row {
            Some(r) => r.try_get(0)?,
            None => None,
        })
    }

    /// When a tenant was shredded, if it was.
    pub(crate) async fn shredded_us(&self, tenant: &TenantId) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT shredded_us FROM tenants WHERE id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&self.inner.read)
            .await?;
        Ok(match row {
            Some(r) => r.try_get(0)?,
            None => None,
        })
    }

    /// What the data store records: its ledger and its shredded tenants.
    async fn data_ledger(&self) -> Result<Entries, StoreError> {
        let mut out = Entries::default();
        for r in sqlx::query("SELECT subject, tenant, erased_us FROM erasure_ledger")
            .fetch_all(&self.inner.read)
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
        for r in sqlx::query("SELECT id, shredded_us FROM tenants WHERE shredded_us IS NOT NULL")
            .fetch_all(&self.inner.read)
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

    /// The data store's chain against the key store's anchor.
    async fn chain(&self) -> Result<Chain, StoreError> {
        let Some(anchor) = self.inner.keys.anchor().await? else {
            return Ok(Chain::Consistent);
        };
        let head: i64 = sqlx::query("SELECT seq FROM audit_head WHERE id = 1")
            .fetch_one(&self.inner.read)
            .await?
            .try_get(0)?;
        let at_anchor = sqlx::query("SELECT hash FROM audit_log WHERE seq = $1")
            .bind(anchor.seq)
            .fetch_optional(&self.inner.read)
            .await?
            .map(|r| r.try_get::<Vec<u8>, _>(0))
            .transpose()?;
        Ok(match at_anchor {
            Some(h) if h == anchor.hash => Chain::Consistent,
            _ => Chain::Restored(anchor, head),
        })
    }

    /// Replays erasures and shreds into the data store, one audited
    /// change each; returns how many.
    async fn replay_into_data(&self, lacks: &Entries) -> Result<usize, StoreError> {
        let mut n = 0;
        for s in lacks.shreds.values() {
            let ev = AuditEvent {
                tenant: Some(s.tenant.to_string()),
                actor: "admin".into(),
                action: "tenant.shred.recovered".into(),
                subject: None,
                purpose: None,
                outcome: "replayed".into(),
            };
            self.inner
                .writer
                .submit(VaultChange::ReplayShred(s.clone()), vec![ev])
                .await?;
            n += 1;
        }
        for e in lacks.erasures.values() {
            let ev = AuditEvent {
                tenant: Some(e.tenant.to_string()),
                actor: "admin".into(),
                action: "erase.recovered".into(),
                subject: Some(e.subject.to_string()),
                purpose: None,
                outcome: "replayed".into(),
            };
            self.inner
                .writer
                .submit(VaultChange::ReplayErasure(e.clone()), vec![ev])
                .await?;
            n += 1;
        }
        Ok(n)
    }
}

/// Why a data store is refused, in ids and counts.
fn rollback_detail(lacks: &Entries, chain: &Chain) -> String {
    let mut parts = Vec::new();
    if !lacks.erasures.is_empty() || !lacks.shreds.is_empty() {
        parts.push(format!(
            "it lacks {} erasure(s) and {} shredded tenant(s) that the key store or the erasure ledger file records",
            lacks.erasures.len(),
            lacks.shreds.len()
        ));
    }
    if let Chain::Restored(anchor, head) = chain {
        parts.push(format!(
            "its audit chain (ending at entry {head}) does not hold the entry {} anchored in the key store",
            anchor.seq
        ));
    }
    parts.join("; ")
}
