//! The vault's changes to the data store, committed by the writer with
//! their audit entries: tenants, API keys, subjects and their identities,
//! records, tokens, restriction and erasure.
//!
//! Invariants: every statement is confined to the change's tenant; a
//! change to a subject touches only a live (not erased) one; erasure marks
//! the subject, writes the ledger and deletes the blind-index entries in
//! one transaction (its key is destroyed after the commit, in the key
//! store). Values are bound as parameters, ids by reference.

use futures_util::future::BoxFuture;
use sqlx::AnyConnection;

use custos_core::blind::IdentityKind;
use custos_core::ids::{ApiKeyId, Audience, Collection, RecordKey, SubjectId, TenantId};
use custos_core::scope::ScopeSet;

use crate::error::is_unique_violation;
use crate::ledger::{Erasure, Shred};
use crate::writer::Change;
use crate::StoreError;

/// One change of the vault's tables.
#[derive(Debug)]
pub(crate) enum VaultChange {
    CreateTenant {
        id: TenantId,
        name: String,
    },
    /// Marks the tenant shredded, revokes its API keys and drops its blind
    /// indexes (its keys go in the key store).
    ShredTenant {
        id: TenantId,
    },
    CreateKey {
        id: ApiKeyId,
        tenant: TenantId,
        secret_hash: [u8; 32],
        scopes: ScopeSet,
        expires_us: Option<i64>,
    },
    RevokeKey {
        id: ApiKeyId,
        tenant: TenantId,
    },
    CreateSubject {
        id: SubjectId,
        tenant: TenantId,
        external_id: Option<String>,
        /// (kind, blind index, sealed value)
        identities: Vec<(IdentityKind, [u8; 32], Vec<u8>)>,
    },
    /// Replaces a live subject's identities of one kind (rectification).
    ReplaceIdentity {
        tenant: TenantId,
        subject: SubjectId,
        kind: IdentityKind,
        blind: [u8; 32],
        ct: Vec<u8>,
    },
    PutRecord {
        tenant: TenantId,
        subject: SubjectId,
        collection: Collection,
        rkey: RecordKey,
        fields: Vec<u8>,
    },
    DeleteRecord {
        tenant: TenantId,
        subject: SubjectId,
        collection: Collection,
        rkey: RecordKey,
    },
    IssueToken {
        token: String,
        tenant: TenantId,
        audience: Audience,
        subject: SubjectId,
    },
    SetRestriction {
        tenant: TenantId,
        subject: SubjectId,
        restricted: bool,
    },
    /// `reason` is a code and `actor` an id: the ledger holds no personal
    /// data.
    Erase {
        tenant: TenantId,
        subject: SubjectId,
        reason: String,
        actor: String,
    },
    /// Recovery of a restored data store: an erasure recorded elsewhere
    /// is applied again, at its first time (idempotent).
    ReplayErasure(Erasure),
    /// Recovery: a shredded tenant recorded elsewhere is shredded again.
    ReplayShred(Shred),
}

/// A unique violation is the caller's conflict (`what` exists already).
pub(crate) fn conflict(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(what)
        } else {
            StoreError::from(e)
        }
    }
}

impl Change for VaultChange {
    fn apply<'c>(
        &'c self,
        c: &'c mut AnyConnection,
        now: i64,
    ) -> BoxFuture<'c, Result<u64, StoreError>> {
        Box::pin(self.run(c, now))
    }
}

impl VaultChange {
    async fn run(&self, c: &mut AnyConnection, now: i64) -> Result<u64, StoreError> {
        Ok(match self {
            Self::CreateTenant { id, name } => {
                sqlx::query("INSERT INTO tenants (id, name, created_us) VALUES ($1, $2, $3)")
                    .bind(id.as_str())
                    .bind(name.as_str())
                    .bind(now)
                    .execute(c)
                    .await
                    .map_err(conflict("tenant"))?
                    .rows_affected()
            }
            Self::ShredTenant { id } => {
                let n = sqlx::query(
                    "UPDATE tenants SET shredded_us = $1 WHERE id = $2 AND shredded_us IS NULL",
                )
                .bind(now)
                .bind(id.as_str())
                .execute(&mut *c)
                .await?
                .rows_affected();
                sqlx::query(
                    "UPDATE api_keys SET revoked_us = $1 WHERE tenant = $2 AND revoked_us IS NULL",
                )
                .bind(now)
                .bind(id.as_str())
                .execute(&mut *c)
                .await?;
                sqlx::query("DELETE FROM identities WHERE tenant = $1")
                    .bind(id.as_str())
                    .execute(&mut *c)
                    .await?;
                n
            }
            Self::CreateKey {
                id,
                tenant,
                secret_hash,
                scopes,
                expires_us,
            } => {
                let id = id.text();
                sqlx::query(
                    "INSERT INTO api_keys (id, tenant, secret_hash, scopes, created_us, expires_us) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id.as_str())
                .bind(tenant.as_str())
                .bind(&secret_hash[..])
                .bind(scopes.to_csv())
                .bind(now)
                .bind(*expires_us)
                .execute(c)
                .await?
                .rows_affected()
            }
            Self::RevokeKey { id, tenant } => {
                let id = id.text();
                sqlx::query(
                    "UPDATE api_keys SET revoked_us = $1 \
                     WHERE id = $2 AND tenant = $3 AND revoked_us IS NULL",
                )
                .bind(now)
                .bind(id.as_str())
                .bind(tenant.as_str())
                .execute(c)
                .await?
                .rows_affected()
            }
            Self::CreateSubject {
                id,
                tenant,
                external_id,
                identities,
            } => {
                let id = id.text();
                sqlx::query(
                    "INSERT INTO subjects (id, tenant, external_id, created_us) VALUES ($1, $2, $3, $4)",
                )
                .bind(id.as_str())
                .bind(tenant.as_str())
                .bind(external_id.as_deref())
                .bind(now)
                .execute(&mut *c)
                .await
                .map_err(conflict("subject with this external_id"))?;
                for (kind, blind, ct) in identities {
                    insert_identity(c, tenant, id.as_str(), kind, blind, ct).await?;
                }
                1
            }
            Self::ReplaceIdentity {
                tenant,
                subject,
                kind,
                blind,
                ct,
            } => {
                let subject = subject.text();
                let live = sqlx::query(
                    "SELECT 1 FROM subjects WHERE id = $1 AND tenant = $2 AND erased_us IS NULL",
                )
                .bind(subject.as_str())
                .bind(tenant.as_str())
                .fetch_optional(&mut *c)
                .await?;
                if live.is_none() {
                    return Ok(0);
                }
                sqlx::query(
                    "DELETE FROM identities WHERE tenant = $1 AND subject = $2 AND kind = $3",
                )
                .bind(tenant.as_str())
                .bind(subject.as_str())
                .bind(kind.as_str())
                .execute(&mut *c)
                .await?;
                insert_identity(c, tenant, subject.as_str(), kind, blind, ct).await?;
                1
            }
            Self::PutRecord {
                tenant,
                subject,
                collection,
                rkey,
                fields,
            } => {
                let subject = subject.text();
                sqlx::query(
                    "INSERT INTO records (subject, collection, rkey, tenant, fields, updated_us) \
                     SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS \
                       (SELECT 1 FROM subjects WHERE id = $1 AND tenant = $4 AND erased_us IS NULL) \
                     ON CONFLICT (subject, collection, rkey) \
                     DO UPDATE SET fields = excluded.fields, updated_us = excluded.updated_us",
                )
                .bind(subject.as_str())
                .bind(collection.as_str())
                .bind(rkey.as_str())
                .bind(tenant.as_str())
                .bind(&fields[..])
                .bind(now)
                .execute(c)
                .await?
                .rows_affected()
            }
            Self::DeleteRecord {
                tenant,
                subject,
                collection,
                rkey,
            } => {
                let subject = subject.text();
                sqlx::query(
                    "DELETE FROM records \
                     WHERE subject = $1 AND collection = $2 AND rkey = $3 AND tenant = $4",
                )
                .bind(subject.as_str())
                .bind(collection.as_str())
                .bind(rkey.as_str())
                .bind(tenant.as_str())
                .execute(c)
                .await?
                .rows_affected()
            }
            Self::IssueToken {
                token,
                tenant,
                audience,
                subject,
            } => {
                let subject = subject.text();
                sqlx::query(
                    "INSERT INTO tokens (token, tenant, audience, subject, created_us) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token) DO NOTHING",
                )
                .bind(token.as_str())
                .bind(tenant.as_str())
                .bind(audience.as_str())
                .bind(subject.as_str())
                .bind(now)
                .execute(c)
                .await?
                .rows_affected()
            }
            Self::SetRestriction {
                tenant,
                subject,
                restricted,
            } => {
                let subject = subject.text();
                let at: Option<i64> = restricted.then_some(now);
                sqlx::query(
                    "UPDATE subjects SET restricted_us = $1 \
                     WHERE id = $2 AND tenant = $3 AND erased_us IS NULL",
                )
                .bind(at)
                .bind(subject.as_str())
                .bind(tenant.as_str())
                .execute(c)
                .await?
                .rows_affected()
            }
            Self::Erase {
                tenant,
                subject,
                reason,
                actor,
            } => {
                let subject = subject.text();
                let n = sqlx::query(
                    "UPDATE subjects SET erased_us = $1, external_id = NULL, restricted_us = NULL \
                     WHERE id = $2 AND tenant = $3 AND erased_us IS NULL",
                )
                .bind(now)
                .bind(subject.as_str())
                .bind(tenant.as_str())
                .execute(&mut *c)
                .await?
                .rows_affected();
                if n == 1 {
                    sqlx::query(
                        "INSERT INTO erasure_ledger (subject, tenant, erased_us, reason, actor) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(subject.as_str())
                    .bind(tenant.as_str())
                    .bind(now)
                    .bind(reason.as_str())
                    .bind(actor.as_str())
                    .execute(&mut *c)
                    .await?;
                    sqlx::query("DELETE FROM identities WHERE subject = $1")
                        .bind(subject.as_str())
                        .execute(&mut *c)
                        .await?;
                }
                n
            }
            Self::ReplayErasure(e) => {
                let subject = e.subject.text();
                sqlx::query(
                    "UPDATE subjects SET erased_us = $1, external_id = NULL, restricted_us = NULL \
                     WHERE id = $2 AND tenant = $3 AND erased_us IS NULL",
                )
                .bind(e.at_us)
                .bind(subject.as_str())
                .bind(e.tenant.as_str())
                .execute(&mut *c)
                .await?;
                sqlx::query(
                    "INSERT INTO erasure_ledger (subject, tenant, erased_us, reason, actor) \
                     VALUES ($1, $2, $3, 'replayed', 'recovery') ON CONFLICT (subject) DO NOTHING",
                )
                .bind(subject.as_str())
                .bind(e.tenant.as_str())
                .bind(e.at_us)
                .execute(&mut *c)
                .await?;
                sqlx::query("DELETE FROM identities WHERE subject = $1")
                    .bind(subject.as_str())
                    .execute(&mut *c)
                    .await?;
                1
            }
            Self::ReplayShred(s) => {
                sqlx::query(
                    "UPDATE tenants SET shredded_us = $1 WHERE id = $2 AND shredded_us IS NULL",
                )
                .bind(s.at_us)
                .bind(s.tenant.as_str())
                .execute(&mut *c)
                .await?;
                sqlx::query(
                    "UPDATE api_keys SET revoked_us = $1 WHERE tenant = $2 AND revoked_us IS NULL",
                )
                .bind(now)
                .bind(s.tenant.as_str())
                .execute(&mut *c)
                .await?;
                sqlx::query("DELETE FROM identities WHERE tenant = $1")
                    .bind(s.tenant.as_str())
                    .execute(&mut *c)
                    .await?;
                1
            }
        })
    }
}

/// One blind-index entry with its sealed value; a taken identity is the
/// caller's conflict.
async fn insert_identity(
    c: &mut AnyConnection,
    tenant: &TenantId,
    subject: &str,
    kind: &IdentityKind,
    blind: &[u8; 32],
    ct: &[u8],
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO identities (tenant, kind, blind, subject, value_ct) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant.as_str())
    .bind(kind.as_str())
    .bind(&blind[..])
    .bind(subject)
    .bind(ct)
    .execute(c)
    .await
    .map_err(conflict("subject with this identity"))?;
    Ok(())
}
