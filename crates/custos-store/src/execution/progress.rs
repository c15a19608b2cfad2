//! A request's status derived from its steps, and the signed completion
//! record written when it completes.

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;

use custos_core::ids::{RequestId, TenantId};
use custos_core::request::RequestStatus;
use custos_core::scope::Scope;

use super::change::ExecOp;
use super::{executor_event, PendingRequest, StepInfo, StepStatus};
use crate::vault::{Execution, Principal, Requests, Vault};
use crate::{now_us, rfc3339, StoreError};

impl Vault {
    /// The completion record: every step, what it touched (counts), when
    /// and by whom; signed with the audit signing key. Its SHA-256 goes
    /// into the audit chain with `dsr.completed`.
    pub(super) fn completion_record(
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
            "steps": steps.iter().map(record_step).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec(&body)
            .map_err(|_| StoreError::Integrity(custos_core::CoreError::MalformedEnvelope))?;
        let key = self.audit_signing_key();
        let sig = key.signing_key().sign(&bytes);
        let signed = serde_json::json!({
            "record": body,
            "signature": {
                "alg": "ed25519",
                "public_key": hex::encode(key.verifying_key().as_bytes()),
                "key_id": key.id(),
                "value": hex::encode(sig.to_bytes()),
                "signed": "the record's JSON as serialised in `record`",
            }
        });
        Ok(signed.to_string())
    }
}

/// A step as the completion record keeps it: its note and the reason it
/// was retried or skipped only sealed (hex of the envelope under the
/// request's text key), readable while the request's texts are kept.
fn record_step(s: &StepInfo) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("note");
        o.remove("reason");
        o.insert(
            "skipped".into(),
            Value::Bool(s.status == StepStatus::Skipped),
        );
        for (name, sealed) in [
            ("note_sealed", &s.sealed.note),
            ("reason_sealed", &s.sealed.reason),
        ] {
            if let Some(b) = sealed {
                o.insert(name.into(), Value::String(hex::encode(b)));
            }
        }
    }
    v
}

impl Requests<'_> {
    /// The signed completion record of a completed request.
    pub async fn completion(&self, p: &Principal, id: &RequestId) -> Result<Value, StoreError> {
        p.require(Scope::Dsr)?;
        let r = sqlx::query("SELECT completion FROM dsr_requests WHERE tenant = $1 AND id = $2")
            .bind(p.tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(&self.v.inner.read)
            .await?
            .ok_or(StoreError::NotFound("request"))?;
        let c: Option<String> = r.try_get(0)?;
        let c = c.ok_or(StoreError::NotFound("completion record"))?;
        serde_json::from_str(&c)
            .map_err(|_| StoreError::Integrity(custos_core::CoreError::MalformedEnvelope))
    }
}

impl Execution<'_> {
    /// The stored status of a request.
    pub async fn status(
        &self,
        tenant: &TenantId,
        id: &RequestId,
    ) -> Result<RequestStatus, StoreError> {
        let r = sqlx::query("SELECT status FROM dsr_requests WHERE tenant = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(&self.v.inner.read)
            .await?
            .ok_or(StoreError::NotFound("request"))?;
        let s: String = r.try_get(0)?;
        RequestStatus::parse(&s).ok_or(StoreError::Integrity(
            custos_core::CoreError::MalformedEnvelope,
        ))
    }

    /// Moves a request on from what its steps say: any failed step fails
    /// it; all done completes it (with a signed completion record); a step
    /// waiting for a person or a processor makes it wait. Idempotent.
    pub async fn advance(&self, req: &PendingRequest) -> Result<RequestStatus, StoreError> {
        let id = req.id.to_string();
        let row = sqlx::query(
            "SELECT status, received_us FROM dsr_requests WHERE tenant = $1 AND id = $2",
        )
        .bind(req.tenant.as_str())
        .bind(&id)
        .fetch_one(&self.v.inner.read)
        .await?;
        let status: String = row.try_get(0)?;
        let received_us: i64 = row.try_get(1)?;
        let mut current = RequestStatus::parse(&status).ok_or(StoreError::Integrity(
            custos_core::CoreError::MalformedEnvelope,
        ))?;
        let steps = self.v.execution().steps_of(&req.tenant, &req.id).await?;
        let any = |s: StepStatus| steps.iter().any(|x| x.status == s);
        let target = if any(StepStatus::Failed) {
            RequestStatus::Failed
        } else if steps
            .iter()
            .all(|s| matches!(s.status, StepStatus::Done | StepStatus::Skipped))
        {
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
                let record = self.v.completion_record(req, received_us, now, &steps)?;
                let digest = hex::encode(Sha256::digest(record.as_bytes()));
                (Some(record), format!("{id} sha256:{digest}"))
            } else {
                (None, id.clone())
            };
            let action = format!("dsr.{}", to.as_str());
            self.v
                .inner
                .writer
                .submit(
                    ExecOp::Advance {
                        tenant: req.tenant.clone(),
                        id: req.id,
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
}
