//! Steps as durable jobs: planning them, claiming one with a lease (any
//! number of servers share the work), ending it, and the manual and
//! processor confirmations.

use serde_json::Value;
use sqlx::Row;

use custos_core::ids::{RequestId, TenantId};
use custos_core::request::{RequestType, StepKind};
use custos_core::scope::Scope;
use custos_core::secret::Personal;

use super::change::ExecOp;
use super::texts::{note_place, reason_place};
use super::{
    executor_event, step_info, step_kind, ClaimedStep, NewStep, PendingRequest, StepEnd, StepInfo,
    StepOwner, StepStatus, MAX_STEP_ATTEMPTS, STEP_COLS,
};
use crate::db::Engine;
use crate::vault::{event, Actor, Execution, Principal, Requests, Vault};
use crate::{now_us, StoreError};

impl Vault {
    pub(super) async fn pending_requests(
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

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn confirm_step(
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
        let steps = self.execution().steps_of(tenant, id).await?;
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
        let subject = self.request_subject(tenant, id).await?;
        // A note may name a person: sealed under the request's text key.
        let note = match note {
            Some(n) => Some(
                self.texts_to_write(tenant, &id.to_string())
                    .await?
                    .seal(&note_place(step), &n)?,
            ),
            None => None,
        };
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
                    tenant: tenant.clone(),
                    request: *id,
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
        // The request's next steps may be ready now.
        self.wake_executor().await;
        self.execution()
            .steps_of(tenant, id)
            .await?
            .into_iter()
            .find(|s| s.step == step)
            .ok_or(StoreError::NotFound("step"))
    }
}

impl Vault {
    async fn request_subject(
        &self,
        tenant: &TenantId,
        id: &RequestId,
    ) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query("SELECT subject FROM dsr_requests WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id.to_string())
                .fetch_optional(&self.inner.read)
                .await?
                .map(|r| r.try_get::<Option<String>, _>(0))
                .transpose()?
                .flatten(),
        )
    }

    /// Retries (`skip` false) or skips a failed step for an operator, with
    /// a reason sealed under the request's text key; a failed request
    /// runs again. Audited as `dsr.step.retried` / `dsr.step.skipped`
    /// (the reason is not in the audit log: it is free text).
    async fn reopen_step(
        &self,
        p: &Principal,
        id: &RequestId,
        step: i64,
        reason: &str,
        skip: bool,
    ) -> Result<StepInfo, StoreError> {
        p.require(Scope::Dsr)?;
        let reason = crate::request::reason("reason", reason)?;
        let steps = self.execution().steps_of(&p.tenant, id).await?;
        let current = steps
            .iter()
            .find(|s| s.step == step)
            .ok_or(StoreError::NotFound("step"))?;
        if current.status != StepStatus::Failed {
            return Err(StoreError::Conflict("the step has not failed"));
        }
        // Fails once the request's texts and payload were wiped.
        let sealed = self
            .texts_to_write(&p.tenant, &id.to_string())
            .await?
            .seal(&reason_place(step), &reason)?;
        let subject = self.request_subject(&p.tenant, id).await?;
        let action = if skip {
            "dsr.step.skipped"
        } else {
            "dsr.step.retried"
        };
        let ev = event(
            &p.tenant,
            &Actor::Key(p.clone()),
            action,
            subject,
            None,
            &format!("{id}#{step}"),
        );
        self.inner
            .writer
            .submit(
                ExecOp::Reopen {
                    tenant: p.tenant.clone(),
                    request: *id,
                    step,
                    skip,
                    by: p.key_id.to_string(),
                    reason: sealed,
                    now: now_us(),
                },
                vec![ev],
            )
            .await?;
        // The step (or the next one) is ready now.
        self.wake_executor().await;
        self.execution()
            .steps_of(&p.tenant, id)
            .await?
            .into_iter()
            .find(|s| s.step == step)
            .ok_or(StoreError::NotFound("step"))
    }
}

impl Requests<'_> {
    /// Runs a failed step again from its first attempt (the cause was
    /// fixed), with the operator's reason; a failed request runs again.
    pub async fn retry_step(
        &self,
        p: &Principal,
        id: &RequestId,
        step: i64,
        reason: &str,
    ) -> Result<StepInfo, StoreError> {
        self.v.reopen_step(p, id, step, reason, false).await
    }

    /// Skips a failed step (done another way, or impossible), with the
    /// operator's reason: it counts as finished and the completion record
    /// says it was skipped, with the reason sealed.
    pub async fn skip_step(
        &self,
        p: &Principal,
        id: &RequestId,
        step: i64,
        reason: &str,
    ) -> Result<StepInfo, StoreError> {
        self.v.reopen_step(p, id, step, reason, true).await
    }

    /// The steps of a request.
    pub async fn steps(&self, p: &Principal, id: &RequestId) -> Result<Vec<StepInfo>, StoreError> {
        p.require(Scope::Dsr)?;
        self.v.execution().steps_of(&p.tenant, id).await
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
        self.v
            .confirm_step(
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
    /// the signature. The processor's `note` is kept sealed.
    pub async fn confirm_processor_step(
        &self,
        tenant: &TenantId,
        id: &RequestId,
        step: i64,
        processor: &str,
        note: Option<&str>,
        result: Value,
    ) -> Result<StepInfo, StoreError> {
        if let Some(n) = note {
            if n.chars().count() > 2000 {
                return Err(StoreError::invalid("note", "at most 2000 characters"));
            }
        }
        self.v
            .confirm_step(
                tenant,
                id,
                step,
                StepStatus::WaitingProcessor,
                &format!("processor:{processor}"),
                note.map(str::to_owned),
                Some(result.to_string()),
                Actor::Admin,
            )
            .await
    }

    /// Records in the audit chain that a processor callback for this
    /// request's step was refused (`dsr.callback_refused`), with `reason`
    /// (a signature error's kind: never the body, header or any value).
    pub async fn callback_refused(
        &self,
        tenant: &TenantId,
        id: &RequestId,
        step: i64,
        processor: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut ev = executor_event(
            tenant,
            "dsr.callback_refused",
            None,
            &format!("{id} step {step}: {reason}"),
        );
        ev.actor = format!("processor:{processor}");
        self.v.inner.writer.audit(vec![ev]).await
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
        .fetch_optional(&self.v.inner.read)
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
}

impl Execution<'_> {
    /// Verified requests waiting for a plan, oldest first.
    pub async fn to_plan(&self, limit: i64) -> Result<Vec<PendingRequest>, StoreError> {
        self.v.pending_requests("status = 'verified'", limit).await
    }

    /// Open requests whose steps changed since the request was last looked
    /// at (see [`Execution::touch`]), so idle rounds cost one query;
    /// and those with no step at all (nothing to do: they complete).
    pub async fn in_progress(&self, limit: i64) -> Result<Vec<PendingRequest>, StoreError> {
        self.v
            .pending_requests(
                "status IN ('running', 'waiting_manual', 'waiting_processor') \
             AND (EXISTS (SELECT 1 FROM dsr_steps s WHERE s.request_id = dsr_requests.id \
             AND s.updated_us >= dsr_requests.updated_us) \
             OR NOT EXISTS (SELECT 1 FROM dsr_steps s WHERE s.request_id = dsr_requests.id))",
                limit,
            )
            .await
    }

    /// Marks a request as looked at: it is not listed by
    /// [`Execution::in_progress`] again until one of its steps changes.
    /// Not audited: nothing about the request changed.
    pub async fn touch(&self, req: &PendingRequest) -> Result<(), StoreError> {
        sqlx::query("UPDATE dsr_requests SET updated_us = $1 WHERE tenant = $2 AND id = $3")
            .bind(now_us())
            .bind(req.tenant.as_str())
            .bind(req.id.to_string())
            .execute(&self.v.inner.read)
            .await?;
        Ok(())
    }

    /// Plans a verified request: stores its steps, reseals the payload
    /// (now with every identity found) and moves it to `running`.
    pub async fn plan(
        &self,
        req: &PendingRequest,
        payload: Option<&Personal<Vec<u8>>>,
        steps: Vec<NewStep>,
    ) -> Result<(), StoreError> {
        let id = req.id.to_string();
        let sealed = match payload {
            Some(p) => Some(self.v.seal_payload(&req.tenant, &id, p).await?),
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
        self.v
            .inner
            .writer
            .submit(
                ExecOp::Plan {
                    tenant: req.tenant.clone(),
                    id: req.id,
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
        let lock = match self.v.inner.engine {
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
            .fetch_optional(&self.v.inner.read)
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
                .fetch_one(&self.v.inner.read)
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
        self.v
            .inner
            .writer
            .submit(
                ExecOp::EndStep {
                    request: c.request,
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
            .fetch_all(&self.v.inner.read)
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let key: Option<Vec<u8>> =
            sqlx::query("SELECT text_key_sealed FROM dsr_requests WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id.to_string())
                .fetch_optional(&self.v.inner.read)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?
                .flatten();
        let texts = self
            .v
            .texts(tenant, &id.to_string(), key.as_deref())
            .await?;
        rows.iter().map(|r| step_info(r, &texts)).collect()
    }
}
