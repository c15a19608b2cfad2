//! Free text of a request, sealed: extension and rejection reasons, the
//! note of a manual step or of a processor's answer, an operator's reason
//! for retrying or skipping a step. People type names, addresses and IBANs
//! into such fields, so none of them is stored in clear.
//!
//! Each request has one random **text key**, created on first use and
//! stored sealed under the tenant's request key (`text_key_sealed`). Every
//! text is sealed under it, bound to the tenant, the request and the
//! text's place (`extension_reason`, `step:3:reason` …). Destroying the
//! text key ([`Execution::wipe_closed`], 7 days after the request closed,
//! with its payload) turns every sealed text of the request into noise at
//! once — including the copies in its signed completion record, which
//! therefore never needs rewriting.

use sqlx::Row;

use custos_core::envelope::{self, Context};
use custos_core::ids::TenantId;
use custos_core::secret::Key32;
use rand_core::OsRng;

use super::sealed::ARCHIVE_TTL_US;
use crate::vault::{Execution, Vault};
use crate::{now_us, StoreError};

fn text_key_ctx(tenant: &str, id: &str) -> Context {
    Context::new("dsr-text-key")
        .with(tenant.as_bytes())
        .with(id.as_bytes())
}

fn text_ctx(tenant: &str, id: &str, place: &str) -> Context {
    Context::new("dsr-text")
        .with(tenant.as_bytes())
        .with(id.as_bytes())
        .with(place.as_bytes())
}

/// The place of a step's note.
pub(crate) fn note_place(step: i64) -> String {
    format!("step:{step}:note")
}

/// The place of an operator's reason for retrying or skipping a step.
pub(crate) fn reason_place(step: i64) -> String {
    format!("step:{step}:reason")
}

/// A request's text key, to seal and open its free text. Without a key
/// (never created, or destroyed) nothing opens.
pub(crate) struct Texts {
    tenant: String,
    id: String,
    key: Option<Key32>,
}

impl Texts {
    /// Seals `text` at `place`. Fails without a key (the request's texts
    /// were wiped).
    pub(crate) fn seal(&self, place: &str, text: &str) -> Result<Vec<u8>, StoreError> {
        let key = self
            .key
            .as_ref()
            .ok_or(StoreError::Conflict("the request's texts were wiped"))?;
        Ok(envelope::seal(
            key,
            &text_ctx(&self.tenant, &self.id, place),
            text.as_bytes(),
            &mut OsRng,
        ))
    }

    /// Opens the text sealed at `place`; `None` when there is none or the
    /// key is gone.
    pub(crate) fn open(&self, place: &str, sealed: Option<&[u8]>) -> Option<String> {
        let key = self.key.as_ref()?;
        let clear = envelope::open(key, &text_ctx(&self.tenant, &self.id, place), sealed?).ok()?;
        String::from_utf8(clear).ok()
    }
}

impl Vault {
    /// The texts of a request from its stored `text_key_sealed`, to read.
    pub(crate) async fn texts(
        &self,
        tenant: &TenantId,
        id: &str,
        key_sealed: Option<&[u8]>,
    ) -> Result<Texts, StoreError> {
        let key = match key_sealed {
            Some(sealed) => {
                let rk = self.tenant_request_key(tenant, id).await?;
                let raw = envelope::open(&rk, &text_key_ctx(tenant.as_str(), id), sealed)
                    .map_err(StoreError::Integrity)?;
                Some(Key32::from_slice(&raw).map_err(StoreError::Integrity)?)
            }
            None => None,
        };
        Ok(Texts {
            tenant: tenant.to_string(),
            id: id.to_owned(),
            key,
        })
    }

    async fn stored_text_key(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let r =
            sqlx::query("SELECT text_key_sealed FROM dsr_requests WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&self.inner.read)
                .await?
                .ok_or(StoreError::NotFound("request"))?;
        Ok(r.try_get(0)?)
    }

    /// The texts of a request, to write: its text key, created on first
    /// use unless the request's texts were wiped (`Conflict`).
    pub(crate) async fn texts_to_write(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Texts, StoreError> {
        let mut sealed = self.stored_text_key(tenant, id).await?;
        if sealed.is_none() {
            let rk = self.tenant_request_key(tenant, id).await?;
            let fresh = Key32::generate(&mut OsRng);
            let wrapped = envelope::seal(
                &rk,
                &text_key_ctx(tenant.as_str(), id),
                fresh.expose(),
                &mut OsRng,
            );
            // Only the first writer's key is kept; a wiped request gets none.
            sqlx::query(
                "UPDATE dsr_requests SET text_key_sealed = $1 WHERE tenant = $2 AND id = $3 \
                 AND text_key_sealed IS NULL AND (closed_us IS NULL OR closed_us > $4)",
            )
            .bind(wrapped)
            .bind(tenant.as_str())
            .bind(id)
            .bind(now_us() - ARCHIVE_TTL_US)
            .execute(&self.inner.read)
            .await?;
            sealed = self.stored_text_key(tenant, id).await?;
        }
        let texts = self.texts(tenant, id, sealed.as_deref()).await?;
        if texts.key.is_none() {
            return Err(StoreError::Conflict("the request's texts were wiped"));
        }
        Ok(texts)
    }
}

impl Execution<'_> {
    /// Wipes what requests closed before `closed_before_us` still keep of
    /// the person: the sealed payload, the text key (every sealed reason
    /// and note, also those in completion records, becomes unreadable),
    /// clear reasons and notes written by older versions, and processors'
    /// answers. Returns the requests wiped. Run by the executor's sweep
    /// for requests closed 7 days ago; a failed request can be retried
    /// until then.
    pub async fn wipe_closed(&self, closed_before_us: i64) -> Result<u64, StoreError> {
        let closed = "SELECT id FROM dsr_requests WHERE closed_us IS NOT NULL AND closed_us < $1";
        sqlx::query(&format!(
            "DELETE FROM dsr_processor_answers WHERE request_id IN ({closed})"
        ))
        .bind(closed_before_us)
        .execute(&self.v.inner.read)
        .await?;
        sqlx::query(&format!(
            "UPDATE dsr_steps SET note = NULL, note_sealed = NULL, reason_sealed = NULL \
             WHERE request_id IN ({closed}) \
             AND (note IS NOT NULL OR note_sealed IS NOT NULL OR reason_sealed IS NOT NULL)"
        ))
        .bind(closed_before_us)
        .execute(&self.v.inner.read)
        .await?;
        let n = sqlx::query(
            "UPDATE dsr_requests SET payload_sealed = NULL, text_key_sealed = NULL, \
             extension_reason = NULL, rejection_reason = NULL, \
             extension_reason_sealed = NULL, rejection_reason_sealed = NULL \
             WHERE closed_us IS NOT NULL AND closed_us < $1 \
             AND (payload_sealed IS NOT NULL OR text_key_sealed IS NOT NULL \
               OR extension_reason IS NOT NULL OR rejection_reason IS NOT NULL)",
        )
        .bind(closed_before_us)
        .execute(&self.v.inner.read)
        .await?
        .rows_affected();
        Ok(n)
    }
}
