//! What the executor keeps sealed under the request's key: the payload
//! (the person's identities and changes), processors' answers and the
//! access archive, behind one-time links; all of it wiped when the request
//! closes or its time is up.

use sha2::{Digest, Sha256};
use sqlx::Row;

use custos_core::envelope::{self, Context};
use custos_core::ids::{RequestId, TenantId};
use custos_core::scope::Scope;
use custos_core::secret::{Key32, Personal};
use rand_core::{OsRng, RngCore};

use crate::vault::{event, Actor, Execution, Principal, Requests, Vault};
use crate::{now_us, rfc3339, StoreError};

/// How long an access archive can be downloaded.
pub(super) const ARCHIVE_TTL_US: i64 = 7 * 24 * 3600 * 1_000_000;

/// How long one download link is valid.
pub(super) const LINK_TTL_US: i64 = 24 * 3600 * 1_000_000;

pub(super) fn payload_ctx(tenant: &str, id: &str) -> Context {
    Context::new("dsr-payload")
        .with(tenant.as_bytes())
        .with(id.as_bytes())
}

pub(super) fn answer_ctx(tenant: &str, id: &str, step: i64) -> Context {
    Context::new("dsr-processor-answer")
        .with(tenant.as_bytes())
        .with(id.as_bytes())
        .with(&step.to_be_bytes())
}

pub(super) fn archive_ctx(tenant: &str, id: &str) -> Context {
    Context::new("dsr-archive")
        .with(tenant.as_bytes())
        .with(id.as_bytes())
}

pub(super) fn archive_key_ctx(tenant: &str, id: &str) -> Context {
    Context::new("dsr-archive-key")
        .with(tenant.as_bytes())
        .with(id.as_bytes())
}

pub(super) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The answer to [`Requests::archive_link`]: a one-time download link.
#[derive(Debug)]
pub struct ArchiveLink {
    /// The secret token of the link (`arc_…`); only its hash is stored.
    pub token: Personal<String>,
    /// RFC 3339 expiry of the link.
    pub expires_at: String,
}

impl Vault {
    pub(super) async fn tenant_request_key(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Key32, StoreError> {
        Ok(self.tenant_keys(tenant).await?.request_key(id))
    }

    /// Seals what the request must know of the person (identities,
    /// changes: JSON), bound to its tenant and id.
    pub(crate) async fn seal_payload(
        &self,
        tenant: &TenantId,
        id: &str,
        payload: &Personal<Vec<u8>>,
    ) -> Result<Vec<u8>, StoreError> {
        let key = self.tenant_request_key(tenant, id).await?;
        Ok(envelope::seal(
            &key,
            &payload_ctx(tenant.as_str(), id),
            payload.expose(),
            &mut OsRng,
        ))
    }
}

impl Requests<'_> {
    /// Keeps a processor's answer to an access notice (its records of the
    /// person, JSON) sealed under the tenant's request key until the
    /// archive is built, and drops an archive built without it so the next
    /// round builds it again. Only while the step still waits for the
    /// processor: a closed request's archive is never replaced.
    pub async fn store_processor_answer(
        &self,
        tenant: &TenantId,
        id: &RequestId,
        step: i64,
        processor: &str,
        answer: &Personal<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let rid = id.to_string();
        let key = self.v.tenant_request_key(tenant, &rid).await?;
        let sealed = envelope::seal(
            &key,
            &answer_ctx(tenant.as_str(), &rid, step),
            answer.expose(),
            &mut OsRng,
        );
        let n = sqlx::query(
            "INSERT INTO dsr_processor_answers (request_id, tenant, step, processor, sealed, created_us) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM dsr_steps \
               WHERE request_id = $1 AND tenant = $2 AND step = $3 AND status IN ('waiting_processor', 'running')) \
             ON CONFLICT (request_id, step) DO UPDATE SET sealed = excluded.sealed, created_us = excluded.created_us",
        )
        .bind(&rid)
        .bind(tenant.as_str())
        .bind(step)
        .bind(processor)
        .bind(sealed)
        .bind(now_us())
        .execute(&self.v.inner.read)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict(
                "the step no longer waits for the processor",
            ));
        }
        sqlx::query("DELETE FROM dsr_archives WHERE request_id = $1 AND tenant = $2")
            .bind(&rid)
            .bind(tenant.as_str())
            .execute(&self.v.inner.read)
            .await?;
        Ok(())
    }

    /// Mints a one-time download link for a request's archive (dsr scope).
    /// Each call gives a new link; only the token's hash is stored.
    pub async fn archive_link(
        &self,
        p: &Principal,
        id: &RequestId,
    ) -> Result<ArchiveLink, StoreError> {
        p.require(Scope::Dsr)?;
        let now = now_us();
        let r = sqlx::query(
            "SELECT expires_us FROM dsr_archives WHERE tenant = $1 AND request_id = $2",
        )
        .bind(p.tenant.as_str())
        .bind(id.to_string())
        .fetch_optional(&self.v.inner.read)
        .await?
        .ok_or(StoreError::NotFound("archive"))?;
        let archive_expires: i64 = r.try_get(0)?;
        if archive_expires <= now {
            return Err(StoreError::NotFound("archive"));
        }
        let mut raw = [0u8; 32];
        OsRng.fill_bytes(&mut raw);
        let token = format!("arc_{}", hex::encode(raw));
        let expires = (now + LINK_TTL_US).min(archive_expires);
        sqlx::query(
            "INSERT INTO dsr_archive_links (token_hash, request_id, tenant, expires_us) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash(&token))
        .bind(id.to_string())
        .bind(p.tenant.as_str())
        .bind(expires)
        .execute(&self.v.inner.read)
        .await?;
        let ev = event(
            &p.tenant,
            &Actor::Key(p.clone()),
            "dsr.archive_link",
            None,
            None,
            &id.to_string(),
        );
        self.v.inner.writer.audit(vec![ev]).await?;
        Ok(ArchiveLink {
            token: Personal::new(token),
            expires_at: rfc3339(expires),
        })
    }

    /// Opens the archive behind a one-time link and spends the link. An
    /// unknown, used or expired token is `NotFound` (all alike).
    pub async fn download_archive(
        &self,
        token: &str,
    ) -> Result<(RequestId, Personal<Vec<u8>>), StoreError> {
        let now = now_us();
        let h = token_hash(token);
        let n = sqlx::query(
            "UPDATE dsr_archive_links SET used_us = $1 WHERE token_hash = $2 AND used_us IS NULL AND expires_us > $1",
        )
        .bind(now)
        .bind(&h)
        .execute(&self.v.inner.read)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("archive link"));
        }
        let r = sqlx::query(
            "SELECT a.tenant, a.request_id, a.sealed, a.key_sealed FROM dsr_archive_links l \
             JOIN dsr_archives a ON a.request_id = l.request_id \
             WHERE l.token_hash = $1 AND a.expires_us > $2",
        )
        .bind(&h)
        .bind(now)
        .fetch_optional(&self.v.inner.read)
        .await?
        .ok_or(StoreError::NotFound("archive link"))?;
        let tenant: String = r.try_get(0)?;
        let rid: String = r.try_get(1)?;
        let sealed: Vec<u8> = r.try_get(2)?;
        let key_sealed: Vec<u8> = r.try_get(3)?;
        let tenant = TenantId::parse(&tenant).map_err(StoreError::Integrity)?;
        let id = RequestId::parse(&rid).map_err(StoreError::Integrity)?;
        let rk = self.v.tenant_request_key(&tenant, &rid).await?;
        let ak = envelope::open(&rk, &archive_key_ctx(tenant.as_str(), &rid), &key_sealed)
            .map_err(StoreError::Integrity)?;
        let ak = Key32::from_slice(&ak).map_err(StoreError::Integrity)?;
        let zip = envelope::open(&ak, &archive_ctx(tenant.as_str(), &rid), &sealed)
            .map_err(StoreError::Integrity)?;
        let mut ev = event(
            &tenant,
            &Actor::Admin,
            "dsr.archive_downloaded",
            None,
            None,
            &rid,
        );
        ev.actor = "link".to_owned();
        self.v.inner.writer.audit(vec![ev]).await?;
        Ok((id, Personal::new(zip)))
    }
}

impl Execution<'_> {
    /// The tenant's key of `anonymize: keyed_hash` in application stores.
    pub async fn anonymization_key(&self, tenant: &TenantId) -> Result<Key32, StoreError> {
        Ok(self.v.tenant_keys(tenant).await?.anonymization_key())
    }

    /// Whether an unexpired archive of the request is stored.
    pub async fn has_archive(&self, tenant: &TenantId, id: &RequestId) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "SELECT 1 FROM dsr_archives WHERE tenant = $1 AND request_id = $2 AND expires_us > $3",
        )
        .bind(tenant.as_str())
        .bind(id.to_string())
        .bind(now_us())
        .fetch_optional(&self.v.inner.read)
        .await?
        .is_some())
    }

    /// The request's sealed payload in clear, for the executor only; `None`
    /// once the request closed.
    pub async fn payload(
        &self,
        tenant: &TenantId,
        id: &RequestId,
    ) -> Result<Option<Personal<Vec<u8>>>, StoreError> {
        let row =
            sqlx::query("SELECT payload_sealed FROM dsr_requests WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id.to_string())
                .fetch_optional(&self.v.inner.read)
                .await?
                .ok_or(StoreError::NotFound("request"))?;
        let sealed: Option<Vec<u8>> = row.try_get(0)?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let key = self.v.tenant_request_key(tenant, &id.to_string()).await?;
        let clear = envelope::open(
            &key,
            &payload_ctx(tenant.as_str(), &id.to_string()),
            &sealed,
        )
        .map_err(StoreError::Integrity)?;
        Ok(Some(Personal::new(clear)))
    }

    /// The processors' answers of an open request, in step order:
    /// (step, processor, answer JSON).
    pub async fn processor_answers(
        &self,
        tenant: &TenantId,
        id: &RequestId,
    ) -> Result<Vec<(i64, String, Personal<Vec<u8>>)>, StoreError> {
        let rid = id.to_string();
        let rows = sqlx::query(
            "SELECT step, processor, sealed FROM dsr_processor_answers \
             WHERE request_id = $1 AND tenant = $2 ORDER BY step",
        )
        .bind(&rid)
        .bind(tenant.as_str())
        .fetch_all(&self.v.inner.read)
        .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.v.tenant_request_key(tenant, &rid).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let step: i64 = r.try_get(0)?;
            let sealed: Vec<u8> = r.try_get(2)?;
            let clear = envelope::open(&key, &answer_ctx(tenant.as_str(), &rid, step), &sealed)
                .map_err(StoreError::Integrity)?;
            out.push((step, r.try_get(1)?, Personal::new(clear)));
        }
        Ok(out)
    }

    /// Stores an access archive sealed under a fresh random key, which is
    /// itself sealed under the tenant's request key. Replaces an earlier one.
    pub async fn store_archive(
        &self,
        tenant: &TenantId,
        id: &RequestId,
        zip: &[u8],
    ) -> Result<(), StoreError> {
        let rid = id.to_string();
        let archive_key = Key32::generate(&mut OsRng);
        let sealed = envelope::seal(
            &archive_key,
            &archive_ctx(tenant.as_str(), &rid),
            zip,
            &mut OsRng,
        );
        let rk = self.v.tenant_request_key(tenant, &rid).await?;
        let key_sealed = envelope::seal(
            &rk,
            &archive_key_ctx(tenant.as_str(), &rid),
            archive_key.expose(),
            &mut OsRng,
        );
        let now = now_us();
        sqlx::query("DELETE FROM dsr_archives WHERE request_id = $1")
            .bind(&rid)
            .execute(&self.v.inner.read)
            .await?;
        sqlx::query(
            "INSERT INTO dsr_archives (request_id, tenant, sealed, key_sealed, bytes, created_us, expires_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&rid)
        .bind(tenant.as_str())
        .bind(sealed)
        .bind(key_sealed)
        .bind(zip.len() as i64)
        .bind(now)
        .bind(now + ARCHIVE_TTL_US)
        .execute(&self.v.inner.read)
        .await?;
        Ok(())
    }

    /// Deletes archives and links past their expiry, and wipes what
    /// requests closed as long ago still keep ([`Execution::wipe_closed`]).
    /// Returns archives deleted.
    pub async fn sweep_archives(&self) -> Result<u64, StoreError> {
        let now = now_us();
        let n = sqlx::query("DELETE FROM dsr_archives WHERE expires_us <= $1")
            .bind(now)
            .execute(&self.v.inner.read)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM dsr_archive_links WHERE expires_us <= $1")
            .bind(now)
            .execute(&self.v.inner.read)
            .await?;
        // What closed requests keep of the person goes with their archive.
        self.wipe_closed(now - ARCHIVE_TTL_US).await?;
        Ok(n)
    }
}
