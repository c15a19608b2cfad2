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
use sqlx::Row;

use custos_core::ids::{ApiKeyId, RequestId, TenantId};
use custos_core::request::{RequestType, StepKind};
use custos_core::scope::{Scope, ScopeSet};

use crate::vault::{event, Actor, Execution, Principal, Vault};
use crate::{rfc3339, StoreError};

mod change;
mod progress;
mod sealed;
mod steps;
mod texts;

pub(crate) use texts::Texts;

/// Attempts of a step before the request fails.
pub const MAX_STEP_ATTEMPTS: i64 = 8;

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

impl Vault {
    /// Tells the executors that there is work (see `wake`); called after
    /// the change that made it committed.
    pub(crate) async fn wake_executor(&self) {
        self.inner.work.wake(&self.inner.read).await;
    }
}

impl Execution<'_> {
    /// Waits until a change gives the executor work, on this server or (on
    /// PostgreSQL) any other, or until `fallback` has passed (for what no
    /// change announces: a retry coming due, a lease running out). Returns
    /// whether it was woken.
    pub async fn wait_for_work(&self, fallback: std::time::Duration) -> bool {
        self.v.inner.work.wait(fallback).await
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
    /// Gave up after retries or a permanent error; an operator may retry
    /// or skip it.
    Failed,
    /// Failed, then skipped by an operator with a reason (final; counts
    /// as finished, and the completion record says it was skipped).
    Skipped,
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
            Self::Skipped => "skipped",
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
            Self::Skipped,
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
    /// The note given when it was ticked off, or the processor's note
    /// (stored sealed; `null` once the request's texts are wiped).
    pub note: Option<String>,
    /// Why an operator retried or skipped it (stored sealed; `null` once
    /// the request's texts are wiped).
    pub reason: Option<String>,
    /// RFC 3339 of the last change.
    pub updated_at: String,
    /// The note and reason as stored, sealed under the request's text
    /// key: what the completion record keeps of them.
    #[serde(skip)]
    pub(crate) sealed: SealedStepTexts,
}

/// A step's note and reason as stored (sealed), for the completion record.
#[derive(Clone, Debug, Default)]
pub(crate) struct SealedStepTexts {
    pub(crate) note: Option<Vec<u8>>,
    pub(crate) reason: Option<Vec<u8>>,
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

const STEP_COLS: &str =
    "step, kind, system_id, processor, title, status, attempts, result, error, \
    completed_by, note, updated_us, note_sealed, reason_sealed";

/// A stored step kind; one that does not parse is corrupt, never a
/// default (an unknown step must not wait forever as a manual one).
fn step_kind(s: &str) -> Result<StepKind, StoreError> {
    StepKind::parse(s).ok_or(StoreError::Integrity(
        custos_core::CoreError::MalformedEnvelope,
    ))
}

fn step_info(r: &sqlx::any::AnyRow, texts: &texts::Texts) -> Result<StepInfo, StoreError> {
    let status: String = r.try_get(5)?;
    let result: Option<String> = r.try_get(7)?;
    let updated: i64 = r.try_get(11)?;
    let step: i64 = r.try_get(0)?;
    let sealed = SealedStepTexts {
        note: r.try_get(12)?,
        reason: r.try_get(13)?,
    };
    // A note stored in clear by an older version shows until it is wiped.
    let clear_note: Option<String> = r.try_get(10)?;
    Ok(StepInfo {
        step,
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
        note: texts
            .open(&texts::note_place(step), sealed.note.as_deref())
            .or(clear_note),
        reason: texts.open(&texts::reason_place(step), sealed.reason.as_deref()),
        updated_at: rfc3339(updated),
        sealed,
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
