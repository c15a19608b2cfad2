//! Data subjects: creation with identities (blind index + sealed value),
//! lookup, records sealed field by field, reveals (read in the writer's
//! transaction that commits their audit entry), export, tokens,
//! restriction and erasure.
//!
//! Invariants: a subject is found by a blind index, never by decrypting;
//! every read checks the subject's erasure mark in the database before
//! using a cached key, so an erased subject answers 410 on every server;
//! a restricted subject reveals (and exports) only for `legal_claims` and
//! `storage`, or to the executor carrying out the subject's own request.

use std::collections::BTreeMap;
use std::sync::Arc;

use custos_core::blind::{blind_index, IdentityKind};
use custos_core::ids::{Audience, Collection, Purpose, RecordKey, SubjectId, TenantId};
use custos_core::keys::SubjectKey;
use custos_core::mask;
use custos_core::scope::Scope;
use rand_core::OsRng;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::Row;

use super::changes::VaultChange;
use super::reveal::{RecordFound, RecordRead};
use super::{Principal, Subjects, Vault, RESTRICTED_PURPOSES, SUBJECT_REQUEST_PURPOSE};
use crate::execution::EXECUTOR_KEY_ID;
use crate::ledger::{Entries, Erasure};
use crate::{record, rfc3339, StoreError};

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

impl Subjects<'_> {
    /// Creates a subject with a random id, an optional external id and
    /// identities stored as blind index + ciphertext.
    pub async fn create(
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
        let tk = self.v.tenant_keys(&p.tenant).await?;
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
        self.v
            .inner
            .keys
            .put_subject_key(
                &p.tenant,
                &id,
                tk.kek_version,
                tk.wrap_subject_key(&id, dek.key(), &mut OsRng),
            )
            .await?;
        let r = self
            .v
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
            let _ = self.v.inner.keys.discard_subject_key(&id).await;
            return Err(e);
        }
        self.v.inner.deks.insert(id, Arc::new(dek));
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
        let tk = self.v.tenant_keys(&p.tenant).await?;
        let dek = self.v.key_to_write(&p.tenant, id).await?;
        let blind = blind_index(&tk.blind_index_key(kind.as_str()), &norm);
        let ct = dek.seal_identity(kind.as_str(), norm.expose().as_bytes(), &mut OsRng);
        let ev = p.event(
            &format!("rectify_identity.{}", kind.as_str()),
            Some(id.to_string()),
            None,
            "ok",
        );
        let n = self
            .v
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
            self.v.live_subject(&p.tenant, id).await?;
            return Err(StoreError::NotFound("subject"));
        }
        Ok(())
    }

    /// A subject's state (any scope of its tenant).
    pub async fn get(&self, p: &Principal, id: &SubjectId) -> Result<SubjectInfo, StoreError> {
        self.v.live_subject(&p.tenant, id).await
    }

    /// Finds a subject by identity: one blind-index probe. Audited.
    pub async fn lookup(
        &self,
        p: &Principal,
        kind: &IdentityKind,
        value: &str,
    ) -> Result<SubjectId, StoreError> {
        p.require(Scope::Lookup)?;
        let (found, _) = self.v.find_by_identity(&p.tenant, kind, value).await?;
        let ev = p.event(
            "lookup",
            found.map(|s| s.to_string()),
            None,
            if found.is_some() { "ok" } else { "not_found" },
        );
        self.v.inner.writer.audit(vec![ev]).await?;
        found.ok_or(StoreError::NotFound("subject"))
    }

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
            if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
                return Err(StoreError::invalid(
                    "fields",
                    "field names must be 1 to 128 printable characters",
                ));
            }
        }
        let dek = self.v.key_to_write(&p.tenant, id).await?;
        let mut sealed = Vec::with_capacity(fields.len());
        for (name, value) in fields {
            let bytes = serde_json::to_vec(value).map_err(|e| StoreError::invalid("fields", e))?;
            sealed.push((
                name.clone(),
                dek.seal_field(collection.as_str(), key.as_str(), name, &bytes, &mut OsRng),
            ));
        }
        let n = self
            .v
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
            self.v.live_subject(&p.tenant, id).await?;
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
            .v
            .inner
            .writer
            .read(
                RecordRead {
                    tenant: p.tenant.clone(),
                    subject: id.text(),
                    collection: collection.clone(),
                    rkey: key.clone(),
                    restriction_exempt: purpose.is_some_and(|x| restriction_exempt(p, x)),
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
        let dek = self.v.subject_key(&p.tenant, id).await?;
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
        self.v.live_subject(&p.tenant, id).await?;
        let ev = p.event("record.delete", Some(id.to_string()), None, "ok");
        let n = self
            .v
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

    /// Everything the vault holds on a subject, in clear: a reveal of every
    /// value, so it is held to a reveal's rules. It needs the reveal scope
    /// and a declared purpose, which its audit entry records; a restricted
    /// subject exports only for a purpose of [`RESTRICTED_PURPOSES`], or for
    /// the request executor carrying out the subject's own request
    /// ([`SUBJECT_REQUEST_PURPOSE`]: access and rectification are rights a
    /// restriction does not suspend). A refusal is audited too.
    pub async fn export(
        &self,
        p: &Principal,
        id: &SubjectId,
        purpose: Option<&Purpose>,
    ) -> Result<SubjectExport, StoreError> {
        p.require(Scope::Reveal)?;
        let purpose = purpose.ok_or_else(|| {
            StoreError::invalid(
                "purpose",
                "an export reveals every value in clear: declare a purpose (e.g. access_request)",
            )
        })?;
        let info = self.v.live_subject(&p.tenant, id).await?;
        if info.restricted && !restriction_exempt(p, purpose) {
            let ev = p.event(
                "export",
                Some(id.to_string()),
                Some(purpose.as_str()),
                "denied_restricted",
            );
            self.v.inner.writer.audit(vec![ev]).await?;
            return Err(StoreError::Restricted);
        }
        let dek = self.v.subject_key(&p.tenant, id).await?;
        let mut identities = BTreeMap::new();
        let rows =
            sqlx::query("SELECT kind, value_ct FROM identities WHERE subject = $1 AND tenant = $2")
                .bind(id.to_string())
                .bind(p.tenant.as_str())
                .fetch_all(&self.v.inner.read)
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
            .fetch_all(&self.v.inner.read)
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
            .fetch_all(&self.v.inner.read)
            .await?;
        let token_audiences = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        let ev = p.event("export", Some(id.to_string()), Some(purpose.as_str()), "ok");
        self.v.inner.writer.audit(vec![ev]).await?;
        Ok(SubjectExport {
            subject: info,
            identities,
            records,
            token_audiences,
        })
    }

    /// The subject's stable token for an audience.
    pub async fn issue_token(
        &self,
        p: &Principal,
        id: &SubjectId,
        audience: &Audience,
    ) -> Result<String, StoreError> {
        p.require_any(&[Scope::Write, Scope::Lookup])?;
        self.v.live_subject(&p.tenant, id).await?;
        let tk = self.v.tenant_keys(&p.tenant).await?;
        let token = tk.token(audience, id);
        let ev = p.event(
            "token.issue",
            Some(id.to_string()),
            Some(audience.as_str()),
            "ok",
        );
        self.v
            .inner
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
        .fetch_optional(&self.v.inner.read)
        .await?
        .ok_or(StoreError::NotFound("token"))?;
        if let Some(e) = row.try_get::<Option<i64>, _>(1)? {
            return Err(StoreError::TokenGone {
                erased_at: rfc3339(e),
            });
        }
        Ok(row.try_get(0)?)
    }

    /// Restricts (or lifts the restriction of) processing (Art. 18).
    pub async fn set_restriction(
        &self,
        p: &Principal,
        id: &SubjectId,
        restricted: bool,
    ) -> Result<SubjectInfo, StoreError> {
        p.require(Scope::Erase)?;
        self.v.live_subject(&p.tenant, id).await?;
        let action = if restricted { "restrict" } else { "unrestrict" };
        let ev = p.event(action, Some(id.to_string()), None, "ok");
        self.v
            .inner
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
        self.v.inner.consent.forget_subject(id);
        self.v.live_subject(&p.tenant, id).await
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
        self.v.live_subject(&p.tenant, id).await?;
        let ev = p.event("erase", Some(id.to_string()), Some(reason.as_str()), "ok");
        let n = self
            .v
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
        self.v.inner.deks.remove(id);
        self.v.inner.consent.forget_subject(id);
        if n == 0 {
            // Erased concurrently by someone else: report their time.
            self.v.live_subject(&p.tenant, id).await?;
        }
        let at_us = self
            .v
            .erased_us(&p.tenant, id)
            .await?
            .ok_or_else(|| StoreError::Database("erasure did not commit".into()))?;
        // The other two places of the ledger, then the key is destroyed
        // (in the key store's transaction that records it).
        self.v
            .forget(&Entries::of_erasure(Erasure {
                subject: *id,
                tenant: p.tenant.clone(),
                at_us,
            }))
            .await?;
        Ok(rfc3339(at_us))
    }
}

impl Vault {
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

/// Whether `purpose` lets a restricted subject's values out to `p`: one of
/// [`RESTRICTED_PURPOSES`] for anyone, or [`SUBJECT_REQUEST_PURPOSE`] for the
/// request executor only (an API key naming that purpose gains nothing).
fn restriction_exempt(p: &Principal, purpose: &Purpose) -> bool {
    RESTRICTED_PURPOSES.contains(&purpose.as_str())
        || (purpose.as_str() == SUBJECT_REQUEST_PURPOSE && p.key_id.to_string() == EXECUTOR_KEY_ID)
}
