//! Execution of data-subject requests (`impl Vault`): the sealed payload
//! (what the request knows of the person), durable steps with leases, the
//! request's progress through `planned → running → waiting_* → completed |
//! failed`, the signed completion record, and access archives behind
//! one-time links.
//!
//! * Steps are claimed with one atomic `UPDATE … RETURNING` on a ready step
//!   (on PostgreSQL its sub-select takes `FOR UPDATE SKIP LOCKED`, so
//!   several servers share the work without waiting on each other). A step
//!   is ready when it is pending and due, or running with an expired lease
//!   (its worker died), and every earlier step of its request is done or
//!   handed off (waiting for a processor or a person).
//! * Ending a step is guarded by the lease owner: a worker whose lease was
//!   taken over cannot overwrite the new worker's result.
//! * The payload is sealed under the tenant's request key and wiped when
//!   the request closes; step results, errors and the completion record
//!   hold counts, ids and grounds, never values.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use custos_core::envelope::{self, Context};
use custos_core::ids::{ApiKeyId, RequestId, TenantId};
use custos_core::rand_core::{OsRng, RngCore};
use custos_core::request::{RequestError, RequestStatus, RequestType, StepKind};
use custos_core::scope::{Scope, ScopeSet};
use custos_core::secret::{Key32, Personal};

use crate::db::Engine;
use crate::vault::{event, Actor, Principal, Vault};
use crate::writer::Change;
use crate::{now_us, rfc3339, StoreError};

/// Attempts of a step before the request fails.
pub const MAX_STEP_ATTEMPTS: i64 = 8;
/// How long an access archive can be downloaded.
pub const ARCHIVE_TTL_US: i64 = 7 * 24 * 3600 * 1_000_000;
/// How long one download link is valid.
pub const LINK_TTL_US: i64 = 24 * 3600 * 1_000_000;

/// The key id the request executor acts under in the audit log. No API
/// key has it: API key ids are 128 random bits.
pub const EXECUTOR_KEY_ID: &str = "key_00000000000000000000000000000000";

impl Principal {
    /// The request executor acting for `tenant`: it may read, reveal, write
    /// and erase what a verified request asks for, nothing administrative.
    pub fn executor(tenant: TenantId) -> Result<Self, StoreError> {
        Ok(Self {
            tenant,
            key_id: ApiKeyId::parse(EXECUTOR_KEY_ID).map_err(StoreError::Integrity)?,
            scopes: ScopeSet::from_scopes([
                Scope::Write,
                Scope::Reveal,
                Scope::Lookup,
                Scope::Erase,
                Scope::Dsr,
            ]),
        })
    }
}

/// Where a step stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Waiting for its turn or its retry time.
    Pending,
    /// A worker holds its lease.
    Running,
    /// A notice was sent; the processor's confirmation is awaited.
    WaitingProcessor,
    /// A person must do it and tick it off.
    WaitingManual,
    /// Done (final).
    Done,
    /// Gave up after retries or a permanent error (final).
    Failed,
}

impl StepStatus {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::WaitingProcessor => "waiting_processor",
            Self::WaitingManual => "waiting_manual",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Running,
            Self::WaitingProcessor,
            Self::WaitingManual,
            Self::Done,
            Self::Failed,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// A step to create when a request is planned.
#[derive(Clone, Debug)]
pub struct NewStep {
    /// What it does.
    pub kind: StepKind,
    /// The system of the map, if any.
    pub system: Option<String>,
    /// The processor or recipient, if any.
    pub processor: Option<String>,
    /// One line for people.
    pub title: String,
}

/// A step as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct StepInfo {
    /// Position in the plan, from 1.
    pub step: i64,
    /// What it does.
    #[schema(value_type = String, example = "connector")]
    pub kind: StepKind,
    /// The system of the map.
    pub system: Option<String>,
    /// The processor or recipient.
    pub processor: Option<String>,
    /// What it does.
    pub title: String,
    /// Where it stands.
    pub status: StepStatus,
    /// Attempts so far.
    pub attempts: i64,
    /// What it did: counts per dataset, never values.
    #[schema(value_type = Object)]
    pub result: Option<Value>,
    /// The last error (names systems and tables, never values).
    pub error: Option<String>,
    /// Who ticked off a manual step, or which processor confirmed.
    pub completed_by: Option<String>,
    /// The note given when it was ticked off.
    pub note: Option<String>,
    /// RFC 3339 of the last change.
    pub updated_at: String,
}

/// Whose a step is: what a processor callback is checked against.
#[derive(Clone, Debug)]
pub struct StepOwner {
    /// The request's tenant.
    pub tenant: TenantId,
    /// The processor the step waits for, if any.
    pub processor: Option<String>,
    /// The system of the map the step works on, if any.
    pub system: Option<String>,
    /// Where the step stands.
    pub status: StepStatus,
    /// The request's type.
    pub request_type: RequestType,
}

/// A step a worker holds the lease of.
#[derive(Clone, Debug)]
pub struct ClaimedStep {
    /// The request's tenant.
    pub tenant: TenantId,
    /// The request.
    pub request: RequestId,
    /// The request's type.
    pub request_type: RequestType,
    /// The vault subject of the request, if any.
    pub subject: Option<String>,
    /// Position in the plan.
    pub step: i64,
    /// What it does.
    pub kind: StepKind,
    /// The system of the map.
    pub system: Option<String>,
    /// The processor or recipient.
    pub processor: Option<String>,
    /// Attempts including this one.
    pub attempts: i64,
    /// The worker holding the lease.
    pub owner: String,
}

/// How a worker ends its step.
#[derive(Clone, Debug)]
pub enum StepEnd {
    /// Done, with what it did.
    Done(Value),
    /// Handed off: a notice was sent (`processor`) or a person must act.
    Waiting {
        /// A processor's confirmation (else a person's tick) is awaited.
        processor: bool,
        /// What was done so far.
        result: Value,
    },
    /// Failed for now; retried after `delay_us` unless attempts ran out.
    Retry {
        /// Why (no values).
        error: String,
        /// Backoff before the next attempt.
        delay_us: i64,
    },
    /// Failed for good (no values in the reason).
    Failed(String),
}

/// A request ready for planning or progress, as the executor sees it.
#[derive(Clone, Debug)]
pub struct PendingRequest {
    /// The tenant.
    pub tenant: TenantId,
    /// The request.
    pub id: RequestId,
    /// Its type.
    pub kind: RequestType,
    /// The vault subject, if the identity matched one.
    pub subject: Option<String>,
}

/// Changes of the execution tables the writer applies.
#[derive(Debug)]
pub(crate) enum ExecOp {
    /// `verified → planned → running` with the steps and the resealed payload.
    Plan {
        tenant: String,
        id: String,
        payload: Option<Vec<u8>>,
        steps: Vec<NewStep>,
        now: i64,
    },
    /// A worker ends its step (guarded by its lease).
    EndStep {
        request: String,
        step: i64,
        owner: String,
        status: StepStatus,
        attempts_left: bool,
        result: Option<String>,
        error: Option<String>,
        next_at_us: i64,
        now: i64,
    },
    /// A waiting step is ticked off by a person or confirmed by a processor.
    Confirm {
        tenant: String,
        request: String,
        step: i64,
        from: StepStatus,
        by: String,
        note: Option<String>,
        result: Option<String>,
        /// A running step may be confirmed too (processor notices).
        or_running: bool,
        now: i64,
    },
    /// The request moves on; closing it wipes the payload.
    Advance {
        tenant: String,
        id: String,
        from: RequestStatus,
        to: RequestStatus,
        completion: Option<String>,
        now: i64,
    },
}

fn sql_err_none(n: u64) -> Result<u64, StoreError> {
    if n == 0 {
        Err(RequestError::Concurrent.into())
    } else {
        Ok(n)
    }
}

/// Applies one execution op inside the writer's transaction.
impl Change for ExecOp {
    fn apply<'c>(
        &'c self,
        c: &'c mut AnyConnection,
        _now_us: i64,
    ) -> futures_util::future::BoxFuture<'c, Result<u64, StoreError>> {
        Box::pin(apply(c, self))
    }
}

async fn apply(c: &mut AnyConnection, op: &ExecOp) -> Result<u64, StoreError> {
    match op {
        ExecOp::Plan {
            tenant,
            id,
            payload,
            steps,
            now,
        } => {
            let n = sqlx::query(
                "UPDATE dsr_requests SET status = 'running', payload_sealed = COALESCE($1, payload_sealed), \
                 updated_us = $2 WHERE tenant = $3 AND id = $4 AND status = 'verified'",
            )
            .bind(payload.clone())
            .bind(*now)
            .bind(tenant)
            .bind(id)
            .execute(&mut *c)
            .await?
            .rows_affected();
            sql_err_none(n)?;
            for (i, s) in steps.iter().enumerate() {
                let status = if s.kind == StepKind::Manual {
                    StepStatus::WaitingManual
                } else {
                    StepStatus::Pending
                };
                sqlx::query(
                    "INSERT INTO dsr_steps (request_id, tenant, step, kind, system_id, processor, title, \
                     status, attempts, next_at_us, updated_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9)",
                )
                .bind(id)
                .bind(tenant)
                .bind(i as i64 + 1)
                .bind(s.kind.as_str())
                .bind(s.system.clone())
                .bind(s.processor.clone())
                .bind(&s.title)
                .bind(status.as_str())
                .bind(*now)
                .execute(&mut *c)
                .await?;
            }
            Ok(n)
        }
        ExecOp::EndStep {
            request,
            step,
            owner,
            status,
            attempts_left,
            result,
            error,
            next_at_us,
            now,
        } => {
            // Out of attempts, a retry is a failure.
            let status = match (status, attempts_left) {
                (StepStatus::Pending, false) => StepStatus::Failed,
                (s, _) => *s,
            };
            let n = sqlx::query(
                "UPDATE dsr_steps SET status = $1, result = COALESCE($2, result), error = $3, \
                 next_at_us = $4, lease_owner = NULL, lease_until_us = NULL, updated_us = $5 \
                 WHERE request_id = $6 AND step = $7 AND lease_owner = $8 AND status = 'running'",
            )
            .bind(status.as_str())
            .bind(result.clone())
            .bind(error.clone())
            .bind(*next_at_us)
            .bind(*now)
            .bind(request)
            .bind(*step)
            .bind(owner)
            .execute(&mut *c)
            .await?
            .rows_affected();
            sql_err_none(n)
        }
        ExecOp::Confirm {
            tenant,
            request,
            step,
            from,
            by,
            note,
            result,
            or_running,
            now,
        } => {
            let n = sqlx::query(
                "UPDATE dsr_steps SET status = 'done', completed_by = $1, note = $2, \
                 result = COALESCE($3, result), updated_us = $4, lease_owner = NULL \
                 WHERE tenant = $5 AND request_id = $6 AND step = $7 \
                 AND (status = $8 OR ($9 AND status = 'running'))",
            )
            .bind(by)
            .bind(note.clone())
            .bind(result.clone())
            .bind(*now)
            .bind(tenant)
            .bind(request)
            .bind(*step)
            .bind(from.as_str())
            .bind(*or_running)
            .execute(&mut *c)
            .await?
            .rows_affected();
            sql_err_none(n)
        }
        ExecOp::Advance {
            tenant,
            id,
            from,
            to,
            completion,
            now,
        } => {
            let closed = to.is_terminal().then_some(*now);
            let n = sqlx::query(
                "UPDATE dsr_requests SET status = $1, completion = COALESCE($2, completion), \
                 payload_sealed = CASE WHEN $3 THEN NULL ELSE payload_sealed END, \
                 closed_us = $4, updated_us = $5 WHERE tenant = $6 AND id = $7 AND status = $8",
            )
            .bind(to.as_str())
            .bind(completion.clone())
            .bind(to.is_terminal())
            .bind(closed)
            .bind(*now)
            .bind(tenant)
            .bind(id)
            .bind(from.as_str())
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n > 0 && to.is_terminal() {
                // What processors answered goes with the payload.
                sqlx::query(
                    "DELETE FROM dsr_processor_answers WHERE tenant = $1 AND request_id = $2",
                )
                .bind(tenant)
                .bind(id)
                .execute(&mut *c)
                .await?;
            }
            sql_err_none(n)
        }
    }
}

fn payload_ctx(tenant: &str, id: &str) -> Context {
    Context::new("dsr-payload")
        .with(tenant.as_bytes())
        .with(id.as_bytes())
}

fn answer_ctx(tenant: &str, id: &str, step: i64) -> Context {
    Context::new("dsr-processor-answer")
        .with(tenant.as_bytes())
        .with(id.as_bytes())
        .with(&step.to_be_bytes())
}

fn archive_ctx(tenant: &str, id: &str) -> Context {
    Context::new("dsr-archive")
        .with(tenant.as_bytes())
        .with(id.as_bytes())
}

fn archive_key_ctx(tenant: &str, id: &str) -> Context {
    Context::new("dsr-archive-key")
        .with(tenant.as_bytes())
        .with(id.as_bytes())
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

const STEP_COLS: &str =
    "step, kind, system_id, processor, title, status, attempts, result, error, \
    completed_by, note, updated_us";

/// A stored step kind; one that does not parse is corrupt, never a
/// default (an unknown step must not wait forever as a manual one).
fn step_kind(s: &str) -> Result<StepKind, StoreError> {
    StepKind::parse(s).ok_or(StoreError::Integrity(
        custos_core::CoreError::MalformedEnvelope,
    ))
}

fn step_info(r: &sqlx::any::AnyRow) -> Result<StepInfo, StoreError> {
    let status: String = r.try_get(5)?;
    let result: Option<String> = r.try_get(7)?;
    let updated: i64 = r.try_get(11)?;
    Ok(StepInfo {
        step: r.try_get(0)?,
        kind: step_kind(&r.try_get::<String, _>(1)?)?,
        system: r.try_get(2)?,
        processor: r.try_get(3)?,
        title: r.try_get(4)?,
        status: StepStatus::parse(&status).ok_or(StoreError::Integrity(
            custos_core::CoreError::MalformedEnvelope,
        ))?,
        attempts: r.try_get(6)?,
        result: result
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|_| StoreError::Integrity(custos_core::CoreError::MalformedEnvelope))?,
        error: r.try_get(8)?,
        completed_by: r.try_get(9)?,
        note: r.try_get(10)?,
        updated_at: rfc3339(updated),
    })
}

fn executor_event(
    tenant: &TenantId,
    action: &str,
    subject: Option<String>,
    outcome: &str,
) -> custos_core::audit::AuditEvent {
    let mut e = event(tenant, &Actor::Admin, action, subject, None, outcome);
    e.actor = EXECUTOR_KEY_ID.to_owned();
    e
}

/// The answer to [`Vault::archive_link`]: a one-time download link.
#[derive(Debug)]
pub struct ArchiveLink {
    /// The secret token of the link (`arc_…`); only its hash is stored.
    pub token: Personal<String>,
    /// RFC 3339 expiry of the link.
    pub expires_at: String,
}

impl Vault {
    async fn tenant_request_key(&self, tenant: &TenantId, id: &str) -> Result<Key32, StoreError> {
        Ok(self.tenant_keys(tenant).await?.request_key(id))
    }

    /// The tenant's key of `anonymize: keyed_hash` in application stores.
    pub async fn anonymization_key(&self, tenant: &TenantId) -> Result<Key32, StoreError> {
        Ok(self.tenant_keys(tenant).await?.anonymization_key())
    }

    /// Whether an unexpired archive of the request is stored.
    pub async fn has_archive(&self, tenant: &TenantId, id: &RequestId) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "SELECT 1 FROM dsr_archives WHERE tenant = $1 AND request_id = $2 AND expires_us > $3",
        )
        .bind(tenant.as_str())
        .bind(id.to_string())
        .bind(now_us())
        .fetch_optional(&self.inner.read)
        .await?
        .is_some())
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

    /// The request's sealed payload in clear, for the executor only; `None`
    /// once the request closed.
    pub async fn request_payload(
        &self,
        tenant: &TenantId,
        id: &RequestId,
    ) -> Result<Option<Personal<Vec<u8>>>, StoreError> {
        let row =
            sqlx::query("SELECT payload_sealed FROM dsr_requests WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id.to_string())
                .fetch_optional(&self.inner.read)
                .await?
                .ok_or(StoreError::NotFound("request"))?;
        let sealed: Option<Vec<u8>> = row.try_get(0)?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let key = self.tenant_request_key(tenant, &id.to_string()).await?;
        let clear = envelope::open(
            &key,
            &payload_ctx(tenant.as_str(), &id.to_string()),
            &sealed,
        )
        .map_err(StoreError::Integrity)?;
        Ok(Some(Personal::new(clear)))
    }

    /// The stored status of a request.
    pub async fn request_status(
        &self,
        tenant: &TenantId,
        id: &RequestId,
    ) -> Result<RequestStatus, StoreError> {
        let r = sqlx::query("SELECT status FROM dsr_requests WHERE tenant = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(&self.inner.read)
            .await?
            .ok_or(StoreError::NotFound("request"))?;
        let s: String = r.try_get(0)?;
        RequestStatus::parse(&s).ok_or(StoreError::Integrity(
            custos_core::CoreError::MalformedEnvelope,
        ))
    }

    /// Verified requests waiting for a plan, oldest first.
    pub async fn requests_to_plan(&self, limit: i64) -> Result<Vec<PendingRequest>, StoreError> {
        self.pending_requests("status = 'verified'", limit).await
    }

    /// Open requests whose steps changed since the request was last looked
    /// at (see [`Vault::touch_request`]), so idle rounds cost one query;
    /// and those with no step at all (nothing to do: they complete).
    pub async fn requests_in_progress(
        &self,
        limit: i64,
    ) -> Result<Vec<PendingRequest>, StoreError> {
        self.pending_requests(
            "status IN ('running', 'waiting_manual', 'waiting_processor') \
             AND (EXISTS (SELECT 1 FROM dsr_steps s WHERE s.request_id = dsr_requests.id \
             AND s.updated_us >= dsr_requests.updated_us) \
             OR NOT EXISTS (SELECT 1 FROM dsr_steps s WHERE s.request_id = dsr_requests.id))",
            limit,
        )
        .await
    }

    /// Marks a request as looked at: it is not listed by
    /// [`Vault::requests_in_progress`] again until one of its steps changes.
    /// Not audited: nothing about the request changed.
    pub async fn touch_request(&self, req: &PendingRequest) -> Result<(), StoreError> {
        sqlx::query("UPDATE dsr_requests SET updated_us = $1 WHERE tenant = $2 AND id = $3")
            .bind(now_us())
            .bind(req.tenant.as_str())
            .bind(req.id.to_string())
            .execute(&self.inner.read)
            .await?;
        Ok(())
    }

    async fn pending_requests(
        &self,
        filter: &str,
        limit: i64,
    ) -> Result<Vec<PendingRequest>, StoreError> {
        let sql = format!(
            "SELECT tenant, id, kind, subject FROM dsr_requests WHERE {filter} \
             ORDER BY received_us LIMIT $1"
        );
        let rows = sqlx::query(&sql)
            .bind(limit)
            .fetch_all(&self.inner.read)
            .await?;
        rows.iter()
            .map(|r| {
                let t: String = r.try_get(0)?;
                let id: String = r.try_get(1)?;
                let k: String = r.try_get(2)?;
                Ok(PendingRequest {
                    tenant: TenantId::parse(&t).map_err(StoreError::Integrity)?,
                    id: RequestId::parse(&id).map_err(StoreError::Integrity)?,
                    kind: RequestType::parse(&k).ok_or(StoreError::Integrity(
                        custos_core::CoreError::MalformedEnvelope,
                    ))?,
                    subject: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Plans a verified request: stores its steps, reseals the payload
    /// (now with every identity found) and moves it to `running`.
    pub async fn plan_request(
        &self,
        req: &PendingRequest,
        payload: Option<&Personal<Vec<u8>>>,
        steps: Vec<NewStep>,
    ) -> Result<(), StoreError> {
        let id = req.id.to_string();
        let sealed = match payload {
            Some(p) => Some(self.seal_payload(&req.tenant, &id, p).await?),
            None => None,
        };
        let audit = vec![
            executor_event(
                &req.tenant,
                "dsr.planned",
                req.subject.clone(),
                &format!("{id} steps={}", steps.len()),
            ),
            executor_event(&req.tenant, "dsr.running", req.subject.clone(), &id),
        ];
        self.inner
            .writer
            .submit(
                ExecOp::Plan {
                    tenant: req.tenant.to_string(),
                    id,
                    payload: sealed,
                    steps,
                    now: now_us(),
                },
                audit,
            )
            .await?;
        Ok(())
    }

    /// Takes the lease of one ready step, if any, for `lease_us`.
    pub async fn claim_step(
        &self,
        owner: &str,
        lease_us: i64,
    ) -> Result<Option<ClaimedStep>, StoreError> {
        let now = now_us();
        let lock = match self.inner.engine {
            Engine::Postgres => " FOR UPDATE SKIP LOCKED",
            Engine::Sqlite => "",
        };
        let sql = format!(
            "UPDATE dsr_steps SET status = 'running', lease_owner = $1, lease_until_us = $2, \
             attempts = attempts + 1, updated_us = $3 \
             WHERE (request_id, step) IN (SELECT s.request_id, s.step FROM dsr_steps s \
               WHERE ((s.status = 'pending' AND s.next_at_us <= $3) \
                   OR (s.status = 'running' AND s.lease_until_us < $3)) \
               AND NOT EXISTS (SELECT 1 FROM dsr_steps e WHERE e.request_id = s.request_id \
                   AND e.step < s.step AND e.status IN ('pending', 'running', 'failed')) \
               ORDER BY s.next_at_us LIMIT 1{lock}) \
             RETURNING request_id, tenant, step, kind, system_id, processor, attempts"
        );
        let row = sqlx::query(&sql)
            .bind(owner)
            .bind(now + lease_us)
            .bind(now)
            .fetch_optional(&self.inner.read)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let request: String = r.try_get(0)?;
        let tenant: String = r.try_get(1)?;
        let tenant = TenantId::parse(&tenant).map_err(StoreError::Integrity)?;
        let id = RequestId::parse(&request).map_err(StoreError::Integrity)?;
        let meta =
            sqlx::query("SELECT kind, subject FROM dsr_requests WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(&request)
                .fetch_one(&self.inner.read)
                .await?;
        let kind: String = meta.try_get(0)?;
        Ok(Some(ClaimedStep {
            tenant,
            request: id,
            request_type: RequestType::parse(&kind).ok_or(StoreError::Integrity(
                custos_core::CoreError::MalformedEnvelope,
            ))?,
            subject: meta.try_get(1)?,
            step: r.try_get(2)?,
            kind: step_kind(&r.try_get::<String, _>(3)?)?,
            system: r.try_get(4)?,
            processor: r.try_get(5)?,
            attempts: r.try_get(6)?,
            owner: owner.to_owned(),
        }))
    }

    /// Ends a claimed step. Fails with `Concurrent` if the lease was lost.
    pub async fn end_step(&self, c: &ClaimedStep, end: StepEnd) -> Result<(), StoreError> {
        let now = now_us();
        let id = c.request.to_string();
        let (status, result, error, next_at, action) = match end {
            StepEnd::Done(v) => (
                StepStatus::Done,
                Some(v.to_string()),
                None,
                now,
                "dsr.step.done",
            ),
            StepEnd::Waiting { processor, result } => (
                if processor {
                    StepStatus::WaitingProcessor
                } else {
                    StepStatus::WaitingManual
                },
                Some(result.to_string()),
                None,
                now,
                "dsr.step.waiting",
            ),
            StepEnd::Retry { error, delay_us } => {
                let last = c.attempts >= MAX_STEP_ATTEMPTS;
                (
                    StepStatus::Pending,
                    None,
                    Some(error),
                    now + delay_us,
                    if last {
                        "dsr.step.failed"
                    } else {
                        "dsr.step.retry"
                    },
                )
            }
            StepEnd::Failed(e) => (StepStatus::Failed, None, Some(e), now, "dsr.step.failed"),
        };
        let attempts_left = c.attempts < MAX_STEP_ATTEMPTS;
        let outcome = format!("{id}#{}", c.step);
        self.inner
            .writer
            .submit(
                ExecOp::EndStep {
                    request: id,
                    step: c.step,
                    owner: c.owner.clone(),
                    status,
                    attempts_left,
                    result,
                    error,
                    next_at_us: next_at,
                    now,
                },
                vec![executor_event(
                    &c.tenant,
                    action,
                    c.subject.clone(),
                    &outcome,
                )],
            )
            .await?;
        Ok(())
    }

    /// The steps of a request.
    pub async fn request_steps(
        &self,
        p: &Principal,
        id: &RequestId,
    ) -> Result<Vec<StepInfo>, StoreError> {
        p.require(Scope::Dsr)?;
        self.steps_of(&p.tenant, id).await
    }

    /// The steps of a request, for the executor.
    pub async fn steps_of(
        &self,
        tenant: &TenantId,
        id: &RequestId,
    ) -> Result<Vec<StepInfo>, StoreError> {
        let sql = format!(
            "SELECT {STEP_COLS} FROM dsr_steps WHERE tenant = $1 AND request_id = $2 ORDER BY step"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_all(&self.inner.read)
            .await?;
        rows.iter().map(step_info).collect()
    }

    /// Ticks off a manual step (a person did it), with an optional note.
    pub async fn complete_manual_step(
        &self,
        p: &Principal,
        id: &RequestId,
        step: i64,
        note: Option<&str>,
    ) -> Result<StepInfo, StoreError> {
        p.require(Scope::Dsr)?;
        if let Some(n) = note {
            if n.chars().count() > 2000 || n.chars().any(|c| c.is_control() && c != '\n') {
                return Err(StoreError::invalid(
                    "note",
                    "at most 2000 printable characters",
                ));
            }
        }
        self.confirm_step(
            &p.tenant,
            id,
            step,
            StepStatus::WaitingManual,
            &p.key_id.to_string(),
            note.map(str::to_owned),
            None,
            Actor::Key(p.clone()),
        )
        .await
    }

    /// Records a processor's signed confirmation of a notice step
    /// ("processor X holds nothing more of subject Z"). The caller checked
    /// the signature.
    pub async fn confirm_processor_step(
        &self,
        tenant: &TenantId,
        id: &RequestId,
        step: i64,
        processor: &str,
        result: Value,
    ) -> Result<StepInfo, StoreError> {
        self.confirm_step(
            tenant,
            id,
            step,
            StepStatus::WaitingProcessor,
            &format!("processor:{processor}"),
            None,
            Some(result.to_string()),
            Actor::Admin,
        )
        .await
    }

    /// Whose a step is, to check a callback's signature before anything
    /// else.
    pub async fn step_owner(&self, id: &RequestId, step: i64) -> Result<StepOwner, StoreError> {
        let r = sqlx::query(
            "SELECT s.tenant, s.processor, s.system_id, s.status, r.kind FROM dsr_steps s \
             JOIN dsr_requests r ON r.id = s.request_id AND r.tenant = s.tenant \
             WHERE s.request_id = $1 AND s.step = $2",
        )
        .bind(id.to_string())
        .bind(step)
        .fetch_optional(&self.inner.read)
        .await?
        .ok_or(StoreError::NotFound("step"))?;
        let bad = || StoreError::Integrity(custos_core::CoreError::MalformedEnvelope);
        let t: String = r.try_get(0)?;
        let st: String = r.try_get(3)?;
        let k: String = r.try_get(4)?;
        Ok(StepOwner {
            tenant: TenantId::parse(&t).map_err(StoreError::Integrity)?,
            processor: r.try_get(1)?,
            system: r.try_get(2)?,
            status: StepStatus::parse(&st).ok_or_else(bad)?,
            request_type: RequestType::parse(&k).ok_or_else(bad)?,
        })
    }

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
        let key = self.tenant_request_key(tenant, &rid).await?;
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
        .execute(&self.inner.read)
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
            .execute(&self.inner.read)
            .await?;
        Ok(())
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
        .fetch_all(&self.inner.read)
        .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.tenant_request_key(tenant, &rid).await?;
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

    #[allow(clippy::too_many_arguments)]
    async fn confirm_step(
        &self,
        tenant: &TenantId,
        id: &RequestId,
        step: i64,
        from: StepStatus,
        by: &str,
        note: Option<String>,
        result: Option<String>,
        actor: Actor,
    ) -> Result<StepInfo, StoreError> {
        let steps = self.steps_of(tenant, id).await?;
        let current = steps
            .iter()
            .find(|s| s.step == step)
            .ok_or(StoreError::NotFound("step"))?;
        // A fast processor may confirm before its notice step is recorded
        // as waiting: the step is still running then (and the worker's late
        // `end_step` loses to this confirmation).
        let or_running =
            from == StepStatus::WaitingProcessor && current.kind == StepKind::ProcessorNotice;
        if current.status != from && !(or_running && current.status == StepStatus::Running) {
            return Err(StoreError::Conflict(match from {
                StepStatus::WaitingManual => "step is not waiting for a person",
                _ => "step is not waiting for a processor",
            }));
        }
        let subject = sqlx::query("SELECT subject FROM dsr_requests WHERE tenant = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(&self.inner.read)
            .await?
            .map(|r| r.try_get::<Option<String>, _>(0))
            .transpose()?
            .flatten();
        let mut ev = event(
            tenant,
            &actor,
            "dsr.step.done",
            subject,
            None,
            &format!("{id}#{step}"),
        );
        if matches!(actor, Actor::Admin) {
            ev.actor = by.to_owned();
        }
        self.inner
            .writer
            .submit(
                ExecOp::Confirm {
                    tenant: tenant.to_string(),
                    request: id.to_string(),
                    step,
                    from,
                    by: by.to_owned(),
                    note,
                    result,
                    or_running,
                    now: now_us(),
                },
                vec![ev],
            )
            .await?;
        self.steps_of(tenant, id)
            .await?
            .into_iter()
            .find(|s| s.step == step)
            .ok_or(StoreError::NotFound("step"))
    }

    /// Moves a request on from what its steps say: any failed step fails
    /// it; all done completes it (with a signed completion record); a step
    /// waiting for a person or a processor makes it wait. Idempotent.
    pub async fn advance_request(&self, req: &PendingRequest) -> Result<RequestStatus, StoreError> {
        let id = req.id.to_string();
        let row = sqlx::query(
            "SELECT status, received_us FROM dsr_requests WHERE tenant = $1 AND id = $2",
        )
        .bind(req.tenant.as_str())
        .bind(&id)
        .fetch_one(&self.inner.read)
        .await?;
        let status: String = row.try_get(0)?;
        let received_us: i64 = row.try_get(1)?;
        let mut current = RequestStatus::parse(&status).ok_or(StoreError::Integrity(
            custos_core::CoreError::MalformedEnvelope,
        ))?;
        let steps = self.steps_of(&req.tenant, &req.id).await?;
        let any = |s: StepStatus| steps.iter().any(|x| x.status == s);
        let target = if any(StepStatus::Failed) {
            RequestStatus::Failed
        } else if steps.iter().all(|s| s.status == StepStatus::Done) {
            RequestStatus::Completed
        } else if any(StepStatus::Pending) || any(StepStatus::Running) {
            RequestStatus::Running
        } else if any(StepStatus::WaitingManual) {
            RequestStatus::WaitingManual
        } else {
            RequestStatus::WaitingProcessor
        };
        if target == current || current.is_terminal() {
            return Ok(current);
        }
        // waiting_manual ⇄ waiting_processor pass through running.
        let mut path = Vec::new();
        if current.transition(target).is_err() && current.transition(RequestStatus::Running).is_ok()
        {
            path.push(RequestStatus::Running);
        }
        path.push(target);
        for to in path {
            current.transition(to)?;
            let now = now_us();
            let (completion, outcome) = if to == RequestStatus::Completed {
                let record = self.completion_record(req, received_us, now, &steps)?;
                let digest = hex::encode(Sha256::digest(record.as_bytes()));
                (Some(record), format!("{id} sha256:{digest}"))
            } else {
                (None, id.clone())
            };
            let action = format!("dsr.{}", to.as_str());
            self.inner
                .writer
                .submit(
                    ExecOp::Advance {
                        tenant: req.tenant.to_string(),
                        id: id.clone(),
                        from: current,
                        to,
                        completion,
                        now,
                    },
                    vec![executor_event(
                        &req.tenant,
                        &action,
                        req.subject.clone(),
                        &outcome,
                    )],
                )
                .await?;
            current = to;
        }
        Ok(current)
    }

    /// The completion record: every step, what it touched (counts), when
    /// and by whom; signed with the audit signing key. Its SHA-256 goes
    /// into the audit chain with `dsr.completed`.
    fn completion_record(
        &self,
        req: &PendingRequest,
        received_us: i64,
        now: i64,
        steps: &[StepInfo],
    ) -> Result<String, StoreError> {
        use ed25519_dalek::Signer;
        let body = serde_json::json!({
            "request": req.id.to_string(),
            "tenant": req.tenant.to_string(),
            "type": req.kind.as_str(),
            "subject": req.subject,
            "received_at": rfc3339(received_us),
            "completed_at": rfc3339(now),
            "steps": steps,
        });
        let bytes = serde_json::to_vec(&body)
            .map_err(|_| StoreError::Integrity(custos_core::CoreError::MalformedEnvelope))?;
        let key = self.inner.root.audit_signing_key();
        let sig = key.sign(&bytes);
        let signed = serde_json::json!({
            "record": body,
            "signature": {
                "alg": "ed25519",
                "public_key": hex::encode(key.verifying_key().as_bytes()),
                "value": hex::encode(sig.to_bytes()),
                "signed": "the record's JSON as serialised in `record`",
            }
        });
        Ok(signed.to_string())
    }

    /// The signed completion record of a completed request.
    pub async fn completion(&self, p: &Principal, id: &RequestId) -> Result<Value, StoreError> {
        p.require(Scope::Dsr)?;
        let r = sqlx::query("SELECT completion FROM dsr_requests WHERE tenant = $1 AND id = $2")
            .bind(p.tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(&self.inner.read)
            .await?
            .ok_or(StoreError::NotFound("request"))?;
        let c: Option<String> = r.try_get(0)?;
        let c = c.ok_or(StoreError::NotFound("completion record"))?;
        serde_json::from_str(&c)
            .map_err(|_| StoreError::Integrity(custos_core::CoreError::MalformedEnvelope))
    }

    // ----- archives ----------------------------------------------------------

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
        let rk = self.tenant_request_key(tenant, &rid).await?;
        let key_sealed = envelope::seal(
            &rk,
            &archive_key_ctx(tenant.as_str(), &rid),
            archive_key.expose(),
            &mut OsRng,
        );
        let now = now_us();
        sqlx::query("DELETE FROM dsr_archives WHERE request_id = $1")
            .bind(&rid)
            .execute(&self.inner.read)
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
        .execute(&self.inner.read)
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
        .fetch_optional(&self.inner.read)
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
        .execute(&self.inner.read)
        .await?;
        let ev = event(
            &p.tenant,
            &Actor::Key(p.clone()),
            "dsr.archive_link",
            None,
            None,
            &id.to_string(),
        );
        self.inner.writer.audit(vec![ev]).await?;
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
        .execute(&self.inner.read)
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
        .fetch_optional(&self.inner.read)
        .await?
        .ok_or(StoreError::NotFound("archive link"))?;
        let tenant: String = r.try_get(0)?;
        let rid: String = r.try_get(1)?;
        let sealed: Vec<u8> = r.try_get(2)?;
        let key_sealed: Vec<u8> = r.try_get(3)?;
        let tenant = TenantId::parse(&tenant).map_err(StoreError::Integrity)?;
        let id = RequestId::parse(&rid).map_err(StoreError::Integrity)?;
        let rk = self.tenant_request_key(&tenant, &rid).await?;
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
        self.inner.writer.audit(vec![ev]).await?;
        Ok((id, Personal::new(zip)))
    }

    /// Deletes archives and links past their expiry. Returns archives deleted.
    pub async fn sweep_archives(&self) -> Result<u64, StoreError> {
        let now = now_us();
        let n = sqlx::query("DELETE FROM dsr_archives WHERE expires_us <= $1")
            .bind(now)
            .execute(&self.inner.read)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM dsr_archive_links WHERE expires_us <= $1")
            .bind(now)
            .execute(&self.inner.read)
            .await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use custos_core::request::StepKind;

    #[test]
    fn a_stored_step_kind_that_does_not_parse_is_an_error() {
        for k in [
            StepKind::Connector,
            StepKind::ProcessorNotice,
            StepKind::EmailNotice,
            StepKind::Manual,
            StepKind::Verify,
        ] {
            assert!(matches!(super::step_kind(k.as_str()), Ok(x) if x == k));
        }
        for bad in ["", "manual ", "Manual", "bogus"] {
            assert!(super::step_kind(bad).is_err(), "{bad}");
        }
    }
}
