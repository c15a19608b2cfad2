//! The executor's changes, committed by the writer with their audit
//! entries: a plan's steps, a step's end (guarded by its lease), a
//! confirmation, a request's new status with its completion record.

use sqlx::AnyConnection;

use custos_core::request::{RequestError, RequestStatus, StepKind};

use super::{NewStep, StepStatus};
use custos_core::ids::{RequestId, TenantId};

use crate::writer::Change;
use crate::StoreError;

/// Changes of the execution tables the writer applies.
#[derive(Debug)]
pub(crate) enum ExecOp {
    /// `verified → planned → running` with the steps and the resealed payload.
    Plan {
        tenant: TenantId,
        id: RequestId,
        payload: Option<Vec<u8>>,
        steps: Vec<NewStep>,
        now: i64,
    },
    /// A worker ends its step (guarded by its lease).
    EndStep {
        request: RequestId,
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
        tenant: TenantId,
        request: RequestId,
        step: i64,
        from: StepStatus,
        by: String,
        /// The note, sealed under the request's text key.
        note: Option<Vec<u8>>,
        result: Option<String>,
        /// A running step may be confirmed too (processor notices).
        or_running: bool,
        now: i64,
    },
    /// An operator retries (`skip` false) or skips a failed step with a
    /// sealed reason; a failed request runs again.
    Reopen {
        tenant: TenantId,
        request: RequestId,
        step: i64,
        skip: bool,
        by: String,
        reason: Vec<u8>,
        now: i64,
    },
    /// The request moves on; completing or rejecting it wipes the payload
    /// (a failed one keeps it for a retry until the sweep wipes it).
    Advance {
        tenant: TenantId,
        id: RequestId,
        from: RequestStatus,
        to: RequestStatus,
        completion: Option<String>,
        now: i64,
    },
}

pub(super) fn sql_err_none(n: u64) -> Result<u64, StoreError> {
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

pub(super) async fn apply(c: &mut AnyConnection, op: &ExecOp) -> Result<u64, StoreError> {
    match op {
        ExecOp::Plan {
            tenant,
            id,
            payload,
            steps,
            now,
        } => {
            let id = id.text();
            let n = sqlx::query(
                "UPDATE dsr_requests SET status = 'running', payload_sealed = COALESCE($1, payload_sealed), \
                 updated_us = $2 WHERE tenant = $3 AND id = $4 AND status = 'verified'",
            )
            .bind(payload.as_deref())
            .bind(*now)
            .bind(tenant.as_str())
            .bind(id.as_str())
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
                .bind(id.as_str())
                .bind(tenant.as_str())
                .bind(i as i64 + 1)
                .bind(s.kind.as_str())
                .bind(s.system.as_deref())
                .bind(s.processor.as_deref())
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
            let request = request.text();
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
            .bind(result.as_deref())
            .bind(error.as_deref())
            .bind(*next_at_us)
            .bind(*now)
            .bind(request.as_str())
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
            let request = request.text();
            let n = sqlx::query(
                "UPDATE dsr_steps SET status = 'done', completed_by = $1, note_sealed = $2, \
                 result = COALESCE($3, result), updated_us = $4, lease_owner = NULL \
                 WHERE tenant = $5 AND request_id = $6 AND step = $7 \
                 AND (status = $8 OR ($9 AND status = 'running'))",
            )
            .bind(by.as_str())
            .bind(note.as_deref())
            .bind(result.as_deref())
            .bind(*now)
            .bind(tenant.as_str())
            .bind(request.as_str())
            .bind(*step)
            .bind(from.as_str())
            .bind(*or_running)
            .execute(&mut *c)
            .await?
            .rows_affected();
            sql_err_none(n)
        }
        ExecOp::Reopen {
            tenant,
            request,
            step,
            skip,
            by,
            reason,
            now,
        } => {
            let request = request.text();
            let status = if *skip {
                StepStatus::Skipped
            } else {
                StepStatus::Pending
            };
            // A retry starts from its first attempt, due now; a skip keeps
            // the error that made it necessary.
            let n = sqlx::query(
                "UPDATE dsr_steps SET status = $1, \
                 attempts = CASE WHEN $2 THEN attempts ELSE 0 END, \
                 error = CASE WHEN $2 THEN error ELSE NULL END, \
                 completed_by = CASE WHEN $2 THEN $3 ELSE completed_by END, \
                 reason_sealed = $4, next_at_us = $5, updated_us = $5, \
                 lease_owner = NULL, lease_until_us = NULL \
                 WHERE tenant = $6 AND request_id = $7 AND step = $8 AND status = 'failed'",
            )
            .bind(status.as_str())
            .bind(*skip)
            .bind(by.as_str())
            .bind(reason.as_slice())
            .bind(*now)
            .bind(tenant.as_str())
            .bind(request.as_str())
            .bind(*step)
            .execute(&mut *c)
            .await?
            .rows_affected();
            sql_err_none(n)?;
            let reopened = sqlx::query(
                "UPDATE dsr_requests SET status = 'running', closed_us = NULL, updated_us = $1 \
                 WHERE tenant = $2 AND id = $3 AND status = 'failed'",
            )
            .bind(*now)
            .bind(tenant.as_str())
            .bind(request.as_str())
            .execute(&mut *c)
            .await;
            match reopened {
                Ok(_) => Ok(n),
                // The person filed the same request again meanwhile.
                Err(e) if crate::error::is_unique_violation(&e) => Err(StoreError::Conflict(
                    "another open request of the same person and type exists",
                )),
                Err(e) => Err(e.into()),
            }
        }
        ExecOp::Advance {
            tenant,
            id,
            from,
            to,
            completion,
            now,
        } => {
            let id = id.text();
            let closed = to.is_terminal().then_some(*now);
            // A failed request keeps its payload and processors' answers
            // for a retry; the sweep wipes them with its texts.
            let wipe = to.is_terminal() && *to != RequestStatus::Failed;
            let n = sqlx::query(
                "UPDATE dsr_requests SET status = $1, completion = COALESCE($2, completion), \
                 payload_sealed = CASE WHEN $3 THEN NULL ELSE payload_sealed END, \
                 closed_us = $4, updated_us = $5 WHERE tenant = $6 AND id = $7 AND status = $8 \
                 AND (NOT $9 OR EXISTS (SELECT 1 FROM dsr_steps s WHERE s.tenant = $6 \
                   AND s.request_id = $7 AND s.status = 'failed'))",
            )
            .bind(to.as_str())
            .bind(completion.as_deref())
            .bind(wipe)
            .bind(closed)
            .bind(*now)
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(from.as_str())
            // A request fails only while a step is failed: an operator's
            // retry committed since its steps were read wins.
            .bind(*to == RequestStatus::Failed)
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n > 0 && wipe {
                // What processors answered goes with the payload.
                sqlx::query(
                    "DELETE FROM dsr_processor_answers WHERE tenant = $1 AND request_id = $2",
                )
                .bind(tenant.as_str())
                .bind(id.as_str())
                .execute(&mut *c)
                .await?;
            }
            sql_err_none(n)
        }
    }
}
