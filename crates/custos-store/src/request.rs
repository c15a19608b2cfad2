//! Data-subject requests on the vault (`impl Vault`): creation with
//! identity resolution and merging of duplicates, identity verification
//! (the application vouches, or a one-time code), extension, rejection,
//! listing by status and due date. The lifecycle rules are
//! `custos_core::request`; this module keeps them durable.
//!
//! * The person is stored as a subject id, or — if no subject matches the
//!   identity — as the identity's blind index. The clear value is never
//!   stored and never audited.
//! * A one-time code is 6 digits, stored as SHA-256(salt ‖ code) with a
//!   random 16-byte salt, valid for 24 h and [`MAX_CODE_ATTEMPTS`] attempts;
//!   the last wrong attempt rejects the request. The clear code is returned
//!   once, to the caller of [`Requests::create`], which delivers it.
//! * Every change goes through the single writer as a guarded update (the
//!   status, attempts and extension it was prepared from must still hold)
//!   with its audit entries (`dsr.*`, subject id, outcome = request id) in
//!   the same transaction.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use custos_core::blind::IdentityKind;
use custos_core::ids::{RequestId, TenantId};
use custos_core::request::{self as rules, RequestError, RequestStatus, RequestType};
use custos_core::scope::Scope;
use custos_core::secret::Personal;
use rand_core::{OsRng, RngCore};

use crate::error::is_unique_violation;
use crate::execution::Texts;
use crate::vault::{event, Actor, Principal, Requests, Vault};
use crate::writer::Change;
use crate::{now_us, rfc3339, StoreError};

/// Wrong codes allowed before the request is rejected.
pub const MAX_CODE_ATTEMPTS: i64 = 5;
/// How long a one-time code is valid.
pub const CODE_TTL_US: i64 = 24 * 3600 * 1_000_000;
/// Longest reason kept for an extension or rejection.
const MAX_REASON: usize = 1000;
/// Most requests one listing returns.
const LIST_LIMIT: i64 = 1000;

const COLS: &str = "id, tenant, kind, status, subject, identity_kind, identity_blind, person, \
    received_us, due_us, extended_months, extension_reason, verification, code_hash, code_salt, \
    code_attempts, code_expires_us, rejection_reason, updated_us, closed_us";

/// [`COLS`] and the sealed free text, for reading.
const READ_COLS: &str =
    "id, tenant, kind, status, subject, identity_kind, identity_blind, person, \
    received_us, due_us, extended_months, extension_reason, verification, code_hash, code_salt, \
    code_attempts, code_expires_us, rejection_reason, updated_us, closed_us, \
    extension_reason_sealed, rejection_reason_sealed, text_key_sealed";

/// Where the sealed reasons of a request are (see `execution::texts`).
const EXTENSION_PLACE: &str = "extension_reason";
const REJECTION_PLACE: &str = "rejection_reason";

/// One stored request.
#[derive(Clone, Debug)]
pub(crate) struct RequestRow {
    id: String,
    tenant: String,
    kind: RequestType,
    status: RequestStatus,
    subject: Option<String>,
    identity_kind: String,
    identity_blind: Option<Vec<u8>>,
    person: String,
    received_us: i64,
    due_us: i64,
    extended_months: u8,
    /// In clear: only what custos itself wrote, or an older version.
    extension_reason: Option<String>,
    /// A person's reasons, sealed under the request's text key.
    extension_reason_sealed: Option<Vec<u8>>,
    verification: String,
    code_hash: Option<Vec<u8>>,
    code_salt: Option<Vec<u8>>,
    code_attempts: i64,
    code_expires_us: Option<i64>,
    /// In clear: only what custos itself wrote ("too many wrong codes"),
    /// or an older version.
    rejection_reason: Option<String>,
    /// A person's reason, sealed under the request's text key.
    rejection_reason_sealed: Option<Vec<u8>>,
    updated_us: i64,
    closed_us: Option<i64>,
    /// The request's text key, sealed (read only).
    text_key_sealed: Option<Vec<u8>>,
}

/// A change the writer applies.
#[derive(Debug)]
pub(crate) enum RequestOp {
    /// A new request; fails with `Conflict` if an open one of the same
    /// person and type exists (the caller then merges).
    Insert(Box<RequestRow>, Option<Vec<u8>>),
    /// Writes `row` if the stored request still has the status, attempts
    /// and extension it was read with.
    Update {
        row: Box<RequestRow>,
        status: RequestStatus,
        attempts: i64,
        extended: u8,
    },
}

fn bad_row() -> StoreError {
    StoreError::Integrity(custos_core::CoreError::MalformedEnvelope)
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<RequestRow, StoreError> {
    let kind: String = r.try_get(2)?;
    let status: String = r.try_get(3)?;
    let ext: i64 = r.try_get(10)?;
    Ok(RequestRow {
        id: r.try_get(0)?,
        tenant: r.try_get(1)?,
        kind: RequestType::parse(&kind).ok_or_else(bad_row)?,
        status: RequestStatus::parse(&status).ok_or_else(bad_row)?,
        subject: r.try_get(4)?,
        identity_kind: r.try_get(5)?,
        identity_blind: r.try_get(6)?,
        person: r.try_get(7)?,
        received_us: r.try_get(8)?,
        due_us: r.try_get(9)?,
        extended_months: u8::try_from(ext).map_err(|_| bad_row())?,
        extension_reason: r.try_get(11)?,
        verification: r.try_get(12)?,
        code_hash: r.try_get(13)?,
        code_salt: r.try_get(14)?,
        code_attempts: r.try_get(15)?,
        code_expires_us: r.try_get(16)?,
        rejection_reason: r.try_get(17)?,
        updated_us: r.try_get(18)?,
        closed_us: r.try_get(19)?,
        extension_reason_sealed: r.try_get(20)?,
        rejection_reason_sealed: r.try_get(21)?,
        text_key_sealed: r.try_get(22)?,
    })
}

/// Applies one request op inside the writer's transaction.
impl Change for RequestOp {
    fn apply<'c>(
        &'c self,
        c: &'c mut AnyConnection,
        _now_us: i64,
    ) -> futures_util::future::BoxFuture<'c, Result<u64, StoreError>> {
        Box::pin(apply(c, self))
    }
}

async fn apply(c: &mut AnyConnection, op: &RequestOp) -> Result<u64, StoreError> {
    match op {
        RequestOp::Insert(row, payload) => {
            let sql = format!(
                "INSERT INTO dsr_requests ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                 $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
            );
            let q = sqlx::query(&sql)
                .bind(row.id.clone())
                .bind(row.tenant.clone())
                .bind(row.kind.as_str())
                .bind(row.status.as_str())
                .bind(row.subject.clone())
                .bind(row.identity_kind.clone())
                .bind(row.identity_blind.clone())
                .bind(row.person.clone())
                .bind(row.received_us)
                .bind(row.due_us)
                .bind(i64::from(row.extended_months))
                .bind(row.extension_reason.clone())
                .bind(row.verification.clone())
                .bind(row.code_hash.clone())
                .bind(row.code_salt.clone())
                .bind(row.code_attempts)
                .bind(row.code_expires_us)
                .bind(row.rejection_reason.clone())
                .bind(row.updated_us)
                .bind(row.closed_us);
            match q.execute(&mut *c).await {
                Ok(r) => {
                    if let Some(p) = payload {
                        sqlx::query("UPDATE dsr_requests SET payload_sealed = $1 WHERE id = $2")
                            .bind(p.clone())
                            .bind(row.id.clone())
                            .execute(&mut *c)
                            .await?;
                    }
                    Ok(r.rows_affected())
                }
                Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict("open request")),
                Err(e) => Err(e.into()),
            }
        }
        RequestOp::Update {
            row,
            status,
            attempts,
            extended,
        } => {
            let n = sqlx::query(
                "UPDATE dsr_requests SET status = $1, due_us = $2, extended_months = $3, \
                 extension_reason = $4, verification = $5, code_hash = $6, code_salt = $7, \
                 code_attempts = $8, code_expires_us = $9, rejection_reason = $10, \
                 updated_us = $11, closed_us = $12, \
                 payload_sealed = CASE WHEN $12 IS NULL THEN payload_sealed ELSE NULL END, \
                 extension_reason_sealed = $18, rejection_reason_sealed = $19 \
                 WHERE tenant = $13 AND id = $14 AND status = $15 AND code_attempts = $16 \
                 AND extended_months = $17",
            )
            .bind(row.status.as_str())
            .bind(row.due_us)
            .bind(i64::from(row.extended_months))
            .bind(row.extension_reason.clone())
            .bind(row.verification.clone())
            .bind(row.code_hash.clone())
            .bind(row.code_salt.clone())
            .bind(row.code_attempts)
            .bind(row.code_expires_us)
            .bind(row.rejection_reason.clone())
            .bind(row.updated_us)
            .bind(row.closed_us)
            .bind(row.tenant.clone())
            .bind(row.id.clone())
            .bind(status.as_str())
            .bind(*attempts)
            .bind(i64::from(*extended))
            .bind(row.extension_reason_sealed.clone())
            .bind(row.rejection_reason_sealed.clone())
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(RequestError::Concurrent.into());
            }
            Ok(n)
        }
    }
}

/// A request as the API shows it: no identity values, no code.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RequestInfo {
    /// Request id (`req_` + 32 hex digits).
    #[schema(example = "req_0f1e2d3c4b5a69788796a5b4c3d2e1f0")]
    pub id: String,
    /// `access`, `portability`, `erasure`, `rectification`, `restriction`
    /// or `objection`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "erasure")]
    pub kind: RequestType,
    /// Lifecycle status.
    #[schema(value_type = String, example = "verified")]
    pub status: RequestStatus,
    /// The subject, if the identity matched one in this tenant.
    pub subject: Option<String>,
    /// The kind of identity given (`email`, `phone`).
    pub identity_kind: String,
    /// RFC 3339.
    pub received_at: String,
    /// RFC 3339: received + 1 month + extension.
    pub due_at: String,
    /// Months of extension granted (0–2).
    pub extended_months: u8,
    /// Why the answer was extended.
    pub extension_reason: Option<String>,
    /// `app` (vouched by the application) or `code` (one-time code).
    pub verification: String,
    /// Code attempts left while verifying.
    pub attempts_left: Option<i64>,
    /// Why the request was rejected.
    pub rejection_reason: Option<String>,
    /// Open and past its due date.
    pub overdue: bool,
    /// Open and due within 7 days.
    pub due_soon: bool,
    /// RFC 3339 of the last change.
    pub updated_at: String,
    /// RFC 3339 once completed, rejected or failed.
    pub closed_at: Option<String>,
}

impl RequestRow {
    /// What the API shows; reasons opened with the request's `texts`.
    fn info(&self, now: i64, texts: &Texts) -> RequestInfo {
        RequestInfo {
            id: self.id.clone(),
            kind: self.kind,
            status: self.status,
            subject: self.subject.clone(),
            identity_kind: self.identity_kind.clone(),
            received_at: rfc3339(self.received_us),
            due_at: rfc3339(self.due_us),
            extended_months: self.extended_months,
            extension_reason: texts
                .open(EXTENSION_PLACE, self.extension_reason_sealed.as_deref())
                .or_else(|| self.extension_reason.clone()),
            verification: self.verification.clone(),
            attempts_left: (self.status == RequestStatus::Verifying)
                .then(|| (MAX_CODE_ATTEMPTS - self.code_attempts).max(0)),
            rejection_reason: texts
                .open(REJECTION_PLACE, self.rejection_reason_sealed.as_deref())
                .or_else(|| self.rejection_reason.clone()),
            overdue: rules::is_overdue(self.status, self.due_us, now),
            due_soon: rules::is_due_soon(self.status, self.due_us, now),
            updated_at: rfc3339(self.updated_us),
            closed_at: self.closed_us.map(rfc3339),
        }
    }

    fn move_to(&mut self, to: RequestStatus, now: i64) -> Result<(), StoreError> {
        self.status = self.status.transition(to)?;
        self.updated_us = now;
        if to.is_terminal() {
            self.closed_us = Some(now);
        }
        Ok(())
    }
}

/// The answer to [`Requests::create`].
#[derive(Debug)]
pub struct CreatedRequest {
    /// The request (the existing one when merged).
    pub request: RequestInfo,
    /// An open request of the same person and type existed; nothing new
    /// was created.
    pub merged: bool,
    /// The one-time code to deliver to the person (only for a new request
    /// that the application did not vouch for).
    pub code: Option<Personal<String>>,
}

fn code_hash(salt: &[u8], code: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(code.as_bytes());
    h.finalize().to_vec()
}

fn new_code() -> String {
    // Rejection sampling: 4 294 000 000 is a multiple of 1 000 000.
    loop {
        let x = OsRng.next_u32();
        if x < 4_294_000_000 {
            return format!("{:06}", x % 1_000_000);
        }
    }
}

/// A reason typed by a person: trimmed, not empty, printable, bounded.
pub(crate) fn reason(field: &str, s: &str) -> Result<String, StoreError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(StoreError::invalid(field, "give a reason"));
    }
    if t.chars().count() > MAX_REASON || t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(StoreError::invalid(
            field,
            format!("at most {MAX_REASON} printable characters"),
        ));
    }
    Ok(t.to_owned())
}

impl Vault {
    fn dsr_event(p: &Principal, action: &str, row: &RequestRow) -> custos_core::audit::AuditEvent {
        event(
            &p.tenant,
            &Actor::Key(p.clone()),
            action,
            row.subject.clone(),
            None,
            &row.id,
        )
    }

    /// A request as the API shows it, its reasons opened.
    async fn info_of(&self, row: &RequestRow, now: i64) -> Result<RequestInfo, StoreError> {
        let tenant = TenantId::parse(&row.tenant).map_err(StoreError::Integrity)?;
        let texts = self
            .texts(&tenant, &row.id, row.text_key_sealed.as_deref())
            .await?;
        Ok(row.info(now, &texts))
    }

    async fn load_request(
        &self,
        tenant: &TenantId,
        id: &RequestId,
    ) -> Result<RequestRow, StoreError> {
        let sql = format!("SELECT {READ_COLS} FROM dsr_requests WHERE tenant = $1 AND id = $2");
        let r = sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(&self.inner.read)
            .await?
            .ok_or(StoreError::NotFound("request"))?;
        from_row(&r)
    }

    async fn open_request_of(
        &self,
        tenant: &TenantId,
        person: &str,
        kind: RequestType,
    ) -> Result<Option<RequestRow>, StoreError> {
        let sql = format!(
            "SELECT {READ_COLS} FROM dsr_requests WHERE tenant = $1 AND person = $2 AND kind = $3 \
             AND closed_us IS NULL"
        );
        let r = sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(person)
            .bind(kind.as_str())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(from_row).transpose()
    }

    async fn update_request(
        &self,
        before: &RequestRow,
        after: RequestRow,
        audit: Vec<custos_core::audit::AuditEvent>,
    ) -> Result<RequestRow, StoreError> {
        self.inner
            .writer
            .submit(
                RequestOp::Update {
                    row: Box::new(after.clone()),
                    status: before.status,
                    attempts: before.code_attempts,
                    extended: before.extended_months,
                },
                audit,
            )
            .await?;
        Ok(after)
    }
}

impl Requests<'_> {
    /// Records a request of the person named by `identity` (resolved
    /// through the blind index). With `vouched` the application asserts it
    /// authenticated the person: the request is verified at once. Otherwise
    /// a one-time code is issued and returned for delivery. An open request
    /// of the same person and type is returned instead (`merged`).
    /// `payload` (JSON: identities, changes) is sealed under the tenant's
    /// request key for the executor and wiped when the request closes.
    pub async fn create(
        &self,
        p: &Principal,
        kind: RequestType,
        identity: &IdentityKind,
        value: &str,
        vouched: bool,
        payload: &Personal<Vec<u8>>,
    ) -> Result<CreatedRequest, StoreError> {
        p.require(Scope::Dsr)?;
        let (subject, blind) = self
            .v
            .find_by_identity(&p.tenant, identity, value)
            .await
            .map_err(|e| match e {
                StoreError::Invalid { message, .. } => StoreError::Invalid {
                    field: format!("identity.{}", identity.as_str()),
                    message,
                },
                other => other,
            })?;
        let person = match &subject {
            Some(s) => s.to_string(),
            None => format!("blind:{}:{}", identity.as_str(), hex::encode(blind)),
        };
        for _ in 0..2 {
            let now = now_us();
            if let Some(existing) = self.v.open_request_of(&p.tenant, &person, kind).await? {
                let ev = Vault::dsr_event(p, "dsr.merged", &existing);
                self.v.inner.writer.audit(vec![ev]).await?;
                return Ok(CreatedRequest {
                    request: self.v.info_of(&existing, now).await?,
                    merged: true,
                    code: None,
                });
            }
            let mut row = RequestRow {
                id: RequestId::generate(&mut OsRng).to_string(),
                tenant: p.tenant.to_string(),
                kind,
                status: RequestStatus::Received,
                subject: subject.map(|s| s.to_string()),
                identity_kind: identity.as_str().to_owned(),
                identity_blind: subject.is_none().then(|| blind.to_vec()),
                person: person.clone(),
                received_us: now,
                due_us: rules::due_us(now, 0)?,
                extended_months: 0,
                extension_reason: None,
                extension_reason_sealed: None,
                verification: if vouched { "app" } else { "code" }.into(),
                code_hash: None,
                code_salt: None,
                code_attempts: 0,
                code_expires_us: None,
                rejection_reason: None,
                rejection_reason_sealed: None,
                updated_us: now,
                closed_us: None,
                text_key_sealed: None,
            };
            let mut audit = vec![Vault::dsr_event(p, "dsr.received", &row)];
            let mut code = None;
            if vouched {
                row.move_to(RequestStatus::Verified, now)?;
                audit.push(Vault::dsr_event(p, "dsr.verified", &row));
            } else {
                row.move_to(RequestStatus::Verifying, now)?;
                let clear = new_code();
                let mut salt = vec![0u8; 16];
                OsRng.fill_bytes(&mut salt);
                row.code_hash = Some(code_hash(&salt, &clear));
                row.code_salt = Some(salt);
                row.code_expires_us = Some(now + CODE_TTL_US);
                audit.push(Vault::dsr_event(p, "dsr.verifying", &row));
                code = Some(Personal::new(clear));
            }
            match self
                .v
                .inner
                .writer
                .submit(
                    RequestOp::Insert(
                        Box::new(row.clone()),
                        Some(self.v.seal_payload(&p.tenant, &row.id, payload).await?),
                    ),
                    audit,
                )
                .await
            {
                Ok(_) => {
                    if vouched {
                        self.v.wake_executor().await;
                    }
                    return Ok(CreatedRequest {
                        request: self.v.info_of(&row, now).await?,
                        merged: false,
                        code,
                    });
                }
                // Another writer created one meanwhile: merge with it.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(RequestError::Concurrent.into())
    }

    /// Checks a one-time code. A wrong code counts; the last allowed wrong
    /// attempt rejects the request.
    pub async fn verify(
        &self,
        p: &Principal,
        id: &RequestId,
        code: &str,
    ) -> Result<RequestInfo, StoreError> {
        p.require(Scope::Dsr)?;
        let before = self.v.load_request(&p.tenant, id).await?;
        let now = now_us();
        // Only a request waiting for its code can be verified by one.
        if before.status != RequestStatus::Verifying {
            return Err(RequestError::IllegalTransition {
                from: before.status,
                to: RequestStatus::Verified,
            }
            .into());
        }
        let (Some(hash), Some(salt)) = (&before.code_hash, &before.code_salt) else {
            return Err(bad_row());
        };
        if before.code_expires_us.is_none_or(|e| e <= now) {
            return Err(RequestError::CodeExpired.into());
        }
        use subtle::ConstantTimeEq;
        let ok = code.len() == 6
            && code.bytes().all(|b| b.is_ascii_digit())
            && bool::from(code_hash(salt, code).ct_eq(hash));
        let mut after = before.clone();
        after.updated_us = now;
        if ok {
            after.move_to(RequestStatus::Verified, now)?;
            after.code_hash = None;
            after.code_salt = None;
            after.code_expires_us = None;
            let ev = Vault::dsr_event(p, "dsr.verified", &after);
            let verified = self.v.update_request(&before, after, vec![ev]).await?;
            self.v.wake_executor().await;
            return self.v.info_of(&verified, now).await;
        }
        after.code_attempts += 1;
        let remaining = (MAX_CODE_ATTEMPTS - after.code_attempts).max(0);
        let mut audit = vec![Vault::dsr_event(p, "dsr.verify_failed", &after)];
        if remaining == 0 {
            after.move_to(RequestStatus::Rejected, now)?;
            after.rejection_reason = Some("identity not verified: too many wrong codes".to_owned());
            after.code_hash = None;
            after.code_salt = None;
            audit.push(Vault::dsr_event(p, "dsr.rejected", &after));
        }
        self.v.update_request(&before, after, audit).await?;
        Err(RequestError::WrongCode {
            remaining: u8::try_from(remaining).unwrap_or(0),
        }
        .into())
    }

    /// One request of the key's tenant.
    pub async fn get(&self, p: &Principal, id: &RequestId) -> Result<RequestInfo, StoreError> {
        p.require(Scope::Dsr)?;
        let row = self.v.load_request(&p.tenant, id).await?;
        self.v.info_of(&row, now_us()).await
    }

    /// Requests of the key's tenant, earliest due first (at most 1000):
    /// optionally with one status, due before a time (µs), or only the
    /// overdue ones.
    pub async fn list(
        &self,
        p: &Principal,
        status: Option<RequestStatus>,
        due_before_us: Option<i64>,
        overdue: bool,
    ) -> Result<Vec<RequestInfo>, StoreError> {
        p.require(Scope::Dsr)?;
        let now = now_us();
        let mut sql = format!("SELECT {READ_COLS} FROM dsr_requests WHERE tenant = $1");
        let mut n = 1;
        if status.is_some() {
            n += 1;
            sql.push_str(&format!(" AND status = ${n}"));
        }
        if due_before_us.is_some() {
            n += 1;
            sql.push_str(&format!(" AND due_us < ${n}"));
        }
        if overdue {
            n += 1;
            sql.push_str(&format!(" AND closed_us IS NULL AND due_us < ${n}"));
        }
        sql.push_str(&format!(" ORDER BY due_us, id LIMIT {LIST_LIMIT}"));
        let mut q = sqlx::query(&sql).bind(p.tenant.as_str());
        if let Some(s) = status {
            q = q.bind(s.as_str());
        }
        if let Some(d) = due_before_us {
            q = q.bind(d);
        }
        if overdue {
            q = q.bind(now);
        }
        let mut out = Vec::new();
        for r in q.fetch_all(&self.v.inner.read).await? {
            out.push(self.v.info_of(&from_row(&r)?, now).await?);
        }
        Ok(out)
    }

    /// Extends the due date by `months` (1 or 2; 2 at most in total) with
    /// a reason (Art. 12(3)).
    pub async fn extend(
        &self,
        p: &Principal,
        id: &RequestId,
        months: u8,
        why: &str,
    ) -> Result<RequestInfo, StoreError> {
        p.require(Scope::Dsr)?;
        let before = self.v.load_request(&p.tenant, id).await?;
        let total = rules::extend(before.status, before.extended_months, months, why)?;
        let why = reason("reason", why)?;
        let now = now_us();
        let mut after = before.clone();
        after.extended_months = total;
        after.due_us = rules::due_us(before.received_us, total)?;
        // Earlier reasons and this one, sealed together.
        let texts = self.v.texts_to_write(&p.tenant, &before.id).await?;
        let prev = texts
            .open(EXTENSION_PLACE, before.extension_reason_sealed.as_deref())
            .or_else(|| before.extension_reason.clone());
        let all = match prev {
            Some(prev) => format!("{prev}\n{why}"),
            None => why,
        };
        after.extension_reason_sealed = Some(texts.seal(EXTENSION_PLACE, &all)?);
        after.extension_reason = None;
        after.updated_us = now;
        let ev = Vault::dsr_event(p, "dsr.extended", &after);
        self.v.update_request(&before, after, vec![ev]).await?;
        // Read back: the text key may have been created meanwhile.
        let after = self.v.load_request(&p.tenant, id).await?;
        self.v.info_of(&after, now).await
    }

    /// Rejects a request (e.g. manifestly unfounded, Art. 12(5)) with a reason.
    pub async fn reject(
        &self,
        p: &Principal,
        id: &RequestId,
        why: &str,
    ) -> Result<RequestInfo, StoreError> {
        p.require(Scope::Dsr)?;
        let before = self.v.load_request(&p.tenant, id).await?;
        let now = now_us();
        let mut after = before.clone();
        after.move_to(RequestStatus::Rejected, now)?;
        let why = reason("reason", why)?;
        after.rejection_reason_sealed = Some(
            self.v
                .texts_to_write(&p.tenant, &before.id)
                .await?
                .seal(REJECTION_PLACE, &why)?,
        );
        after.code_hash = None;
        after.code_salt = None;
        let ev = Vault::dsr_event(p, "dsr.rejected", &after);
        self.v.update_request(&before, after, vec![ev]).await?;
        // Read back: the text key may have been created meanwhile.
        let after = self.v.load_request(&p.tenant, id).await?;
        self.v.info_of(&after, now).await
    }
}
