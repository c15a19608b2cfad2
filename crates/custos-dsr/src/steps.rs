//! Running one claimed step through its connector, notice or check.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use custos_connectors::notice::{self, Notice};
use custos_connectors::{ConnectorError, DatasetOutcome, FieldChange, Person};
use custos_core::ids::SubjectId;
use custos_core::request::{RequestType, StepKind};
use custos_core::secret::Personal;
use custos_map::{DataMap, Notify, System, SystemKind};
use custos_store::{ClaimedStep, PendingRequest, StepEnd, StoreError};

use crate::config::{processor_secret_var, ExecutorConfig};
use crate::executor::Executor;
use crate::mail::Delivery;
use crate::person::{map_of, person_of, principal};
use crate::reach::{reach, unavailable};
use crate::tenancy::Tenancy;

pub(crate) fn backoff(cfg: &ExecutorConfig, attempts: i64) -> i64 {
    // base, 2×base, 4×base … capped at 10 minutes.
    let base = cfg.retry_base.as_micros() as i64;
    (base << attempts.clamp(1, 16).saturating_sub(1)).min(600_000_000)
}

/// A connector's failure as the step's end: a transient one is retried
/// with backoff (see `docs/requests.md`), a permanent one fails the step
/// at once with the connector's message, which says what to fix.
pub(crate) fn fail(cfg: &ExecutorConfig, e: &ConnectorError, attempts: i64) -> StepEnd {
    if e.is_transient() {
        StepEnd::Retry {
            error: e.to_string(),
            delay_us: backoff(cfg, attempts),
        }
    } else {
        StepEnd::Failed(e.to_string())
    }
}

pub(crate) fn outcomes_json(system: &str, v: &[DatasetOutcome]) -> Value {
    json!({ "system": system, "datasets": v })
}

pub(crate) async fn run_step(ex: &Executor, c: &ClaimedStep) -> StepEnd {
    let req = PendingRequest {
        tenant: c.tenant.clone(),
        id: c.request,
        kind: c.request_type,
        subject: c.subject.clone(),
    };
    let map = map_of(ex);
    let (person, payload) = match person_of(ex, &req).await {
        Ok(x) => x,
        Err(e) => {
            return StepEnd::Retry {
                error: e.to_string(),
                delay_us: backoff(&ex.cfg, c.attempts),
            }
        }
    };
    let sys = c
        .system
        .as_deref()
        .and_then(|id| map.systems.iter().find(|s| s.id.as_str() == id));
    let tenancy = match Tenancy::of(ex, &req).await {
        Ok(t) => t,
        Err(e) => {
            return StepEnd::Retry {
                error: e.to_string(),
                delay_us: backoff(&ex.cfg, c.attempts),
            }
        }
    };
    // A notice to a processor not bound to the tenant is not sent: the
    // step ends saying so (Art. 19 notices go to the tenant's own only).
    if matches!(c.kind, StepKind::ProcessorNotice | StepKind::EmailNotice) {
        let proc_ = c
            .processor
            .as_deref()
            .and_then(|pid| map.processors.iter().find(|p| p.id.as_str() == pid));
        let refusal = match (sys, proc_) {
            (Some(s), _) => tenancy.refusal(&map, s),
            (None, Some(p)) => tenancy.processor_refusal(p),
            (None, None) => None,
        };
        if let Some(why) = refusal {
            return StepEnd::Done(json!({
                "processor": c.processor,
                "notified": false,
                "skipped": why,
            }));
        }
    }
    match c.kind {
        StepKind::Connector => {
            let Some(sys) = sys else {
                return StepEnd::Failed("the system is no longer in the data map".into());
            };
            let r = match reach(ex, &map, sys, &req, &tenancy).await {
                Ok(r) => r,
                Err(e) => return fail(&ex.cfg, &e, c.attempts),
            };
            let res = match c.request_type {
                RequestType::Access | RequestType::Portability => {
                    r.access(&person).await.map(|x| {
                        x.iter()
                            .map(|e| {
                                let mut o = DatasetOutcome::new(e.dataset.clone());
                                o.found = (e.records.len().max(e.files.len())) as u64;
                                o
                            })
                            .collect::<Vec<_>>()
                    })
                }
                RequestType::Erasure => r.erase(&person).await,
                RequestType::Rectification => {
                    let changes: Vec<FieldChange> = payload
                        .changes
                        .iter()
                        .map(|(f, v)| FieldChange {
                            field: f.clone(),
                            value: v.clone().map(Personal::new),
                        })
                        .collect();
                    r.rectify(&person, &changes).await
                }
                RequestType::Restriction => restrict(ex, &req, sys).await,
                RequestType::Objection => object(ex, &map, &req, sys).await,
            };
            match res {
                Ok(v) => StepEnd::Done(outcomes_json(sys.id.as_str(), &v)),
                Err(e) => fail(&ex.cfg, &e, c.attempts),
            }
        }
        StepKind::ProcessorNotice => {
            send_processor_notice(ex, &map, c, &person, &payload.changes).await
        }
        StepKind::EmailNotice => email_notice(ex, &map, c, &person, &payload.changes).await,
        StepKind::Verify => verify_erasure(ex, &map, &req, &person, &tenancy).await,
        StepKind::Manual => StepEnd::Waiting {
            processor: false,
            result: json!({}),
        },
    }
}

/// The dataset the vault's outcomes are reported under: the map's first.
pub(crate) fn vault_dataset(sys: &System) -> custos_map::DatasetId {
    sys.datasets
        .first()
        .map(|d| d.id.clone())
        .unwrap_or_else(|| "subjects".into())
}

/// The request's vault subject, if its identity matched one.
pub(crate) fn subject_of(req: &PendingRequest) -> Option<SubjectId> {
    req.subject
        .as_deref()
        .and_then(|s| SubjectId::parse(s).ok())
}

/// Restriction (Art. 18) in the vault: the subject is marked restricted,
/// so reveals answer only for legal claims and storage.
async fn restrict(
    ex: &Executor,
    req: &PendingRequest,
    sys: &System,
) -> Result<Vec<DatasetOutcome>, ConnectorError> {
    let mut o = DatasetOutcome::new(vault_dataset(sys));
    if let Some(id) = subject_of(req) {
        let p = principal(&req.tenant).map_err(|e| unavailable(sys, &e))?;
        match ex.vault.subjects().set_restriction(&p, &id, true).await {
            Ok(_) => {
                o.found = 1;
                o.rectified = 1;
            }
            Err(StoreError::SubjectErased { .. }) => {}
            Err(e) => return Err(unavailable(sys, &e)),
        }
    }
    Ok(vec![o])
}

/// Objection (Art. 21) in the consent ledger: an `objected` event for
/// every purpose the map bases on legitimate interests, so that
/// `GET /v1/consent/check` answers "no" for them from now on.
async fn object(
    ex: &Executor,
    map: &DataMap,
    req: &PendingRequest,
    sys: &System,
) -> Result<Vec<DatasetOutcome>, ConnectorError> {
    use custos_core::consent::{Action, Channel};
    let mut o = DatasetOutcome::new(vault_dataset(sys));
    let Some(id) = subject_of(req) else {
        return Ok(vec![o]);
    };
    let p = principal(&req.tenant).map_err(|e| unavailable(sys, &e))?;
    let actor = custos_store::Actor::Key(p);
    let channel = Channel::parse("dsr").map_err(|_| ConnectorError::Config {
        system: sys.id.clone(),
        message: "channel".into(),
    })?;
    for purpose in map
        .purposes
        .iter()
        .filter(|p| p.legal_basis == custos_map::LegalBasis::LegitimateInterest)
    {
        let Some(rule) = purpose.consent_rule() else {
            continue;
        };
        let input = custos_store::ConsentInput {
            action: Action::Object,
            version: None,
            channel: channel.clone(),
            affirmative: true,
            gpc: false,
            form_id: None,
            ip: None,
            user_agent: None,
        };
        match ex
            .vault
            .consent()
            .record(&actor, &req.tenant, &id, &rule, &input, &[])
            .await
        {
            Ok(_) => {
                o.found += 1;
                o.rectified += 1;
            }
            Err(StoreError::SubjectErased { .. }) => break,
            Err(e) => return Err(unavailable(sys, &e)),
        }
    }
    Ok(vec![o])
}

/// The changes a notice carries: a rectification's (Art. 19), else none.
fn notified_changes(
    c: &ClaimedStep,
    changes: &BTreeMap<String, Option<String>>,
) -> BTreeMap<String, Option<String>> {
    if c.request_type == RequestType::Rectification {
        changes.clone()
    } else {
        BTreeMap::new()
    }
}

async fn send_processor_notice(
    ex: &Executor,
    map: &DataMap,
    c: &ClaimedStep,
    person: &Person,
    changes: &BTreeMap<String, Option<String>>,
) -> StepEnd {
    let Some(pid) = c.processor.as_deref() else {
        return StepEnd::Failed("notice step without a processor".into());
    };
    let Some(proc_) = map.processors.iter().find(|p| p.id.as_str() == pid) else {
        return StepEnd::Failed(format!("processor {pid} is no longer in the data map"));
    };
    let Notify::Url(url) = &proc_.notify else {
        return StepEnd::Failed(format!("processor {pid} has no notice URL"));
    };
    let var = processor_secret_var(pid);
    // A missing setting does not appear by waiting: fail at once, naming it.
    let Some(secret) = ex.cfg.var(&var) else {
        return StepEnd::Failed(format!(
            "processor {pid}: environment variable {var} (the processor's signing secret) is not set"
        ));
    };
    let n = Notice {
        tenant: c.tenant.to_string(),
        request_id: c.request.to_string(),
        step: u32::try_from(c.step).unwrap_or(u32::MAX),
        request_type: c.request_type,
        identities: person.to_sealable(),
        changes: notified_changes(c, changes),
        callback_url: format!(
            "{}/v1/processor-callbacks/{}/{}",
            ex.cfg.public_url.trim_end_matches('/'),
            c.request,
            c.step
        ),
        issued_at: time::OffsetDateTime::now_utc(),
    };
    // The URL is checked again here (https://, or a loopback the map allows)
    // by `send_notice`; a refused URL or a redirect fails the step: retrying
    // cannot help, the map must change.
    let to = notice::NoticeTarget {
        processor: pid,
        url,
        allow_insecure_loopback: proc_.allow_insecure_loopback,
    };
    let sent = match notice::NoticeClient::new() {
        Ok(client) => notice::send_notice(&client, to, secret.as_bytes(), &n).await,
        Err(e) => Err(e),
    };
    match sent {
        Ok(status) => StepEnd::Waiting {
            processor: true,
            result: json!({ "processor": pid, "notice_status": status }),
        },
        // A 5xx or an outage is retried; a 4xx or a bad URL is not.
        Err(e) => fail(&ex.cfg, &e, c.attempts),
    }
}

/// An email notice to a recipient: sent through the mailer (SMTP or the
/// development outbox), or left to a person when no mail transport is
/// configured.
async fn email_notice(
    ex: &Executor,
    map: &DataMap,
    c: &ClaimedStep,
    person: &Person,
    changes: &BTreeMap<String, Option<String>>,
) -> StepEnd {
    let pid = c.processor.as_deref().unwrap_or_default();
    let to = map
        .processors
        .iter()
        .find(|p| p.id.as_str() == pid)
        .and_then(|p| match &p.notify {
            Notify::Email(e) => Some(e.clone()),
            _ => None,
        });
    let manual = || StepEnd::Waiting {
        processor: false,
        result: json!({ "processor": pid, "note": "send the notice by email and tick this step off" }),
    };
    let Some(to) = to.filter(|_| ex.mailer.is_configured()) else {
        return manual();
    };
    // The recipient needs the identities to find the person; the message
    // goes only to the address the map names for this processor.
    let identities: String = person
        .to_sealable()
        .iter()
        .map(|(k, vs)| format!("  {k}: {}\r\n", vs.join(", ")))
        .collect();
    // A rectification says what changed, values included, under the same
    // rule as the identities: only to the address the map names.
    let changed: String = notified_changes(c, changes)
        .iter()
        .map(|(field, value)| format!("  {field}: {}\r\n", value.as_deref().unwrap_or("(cleared)")))
        .collect();
    let changed = if changed.is_empty() {
        String::new()
    } else {
        format!(
            "\r\nThe person asked for these changes (field: new value, or (cleared)):\r\n{changed}"
        )
    };
    let subject = format!(
        "Data-subject request {} ({})",
        c.request,
        c.request_type.as_str()
    );
    let body = format!(
        "We received a {kind} request (reference {req}, step {step}) from the person identified by:\r\n\
         {identities}{changed}\r\nPlease act on the data you hold for us about this person, as our agreement \
         provides, and confirm to our privacy contact.\r\n",
        req = c.request,
        kind = c.request_type.as_str(),
        step = c.step,
    );
    let stem = format!("{}-step{}", c.request, c.step);
    match ex.mailer.send(&to, &subject, &body, &stem).await {
        Ok(Delivery::Delivered) => StepEnd::Done(json!({ "processor": pid, "notified": "email" })),
        Ok(Delivery::NotConfigured) => manual(),
        // The error names a kind only, never the address or the message.
        Err(e) => StepEnd::Retry {
            error: e.to_string(),
            delay_us: backoff(&ex.cfg, c.attempts),
        },
    }
}

/// Searches every store again after an erasure: nothing may remain that
/// the map says to delete or anonymise.
async fn verify_erasure(
    ex: &Executor,
    map: &DataMap,
    req: &PendingRequest,
    person: &Person,
    tenancy: &Tenancy,
) -> StepEnd {
    let mut report = Vec::new();
    let mut left = Vec::new();
    for sys in &map.systems {
        if !matches!(
            sys.kind,
            SystemKind::Postgres
                | SystemKind::Sqlite
                | SystemKind::Mysql
                | SystemKind::Files
                | SystemKind::Redis
                | SystemKind::Vault
        ) || !sys.datasets.iter().any(|d| d.holds_personal_data())
            // Not the tenant's: its own step said so; nothing to verify.
            || tenancy.refusal(map, sys).is_some()
        {
            continue;
        }
        let r = match reach(ex, map, sys, req, tenancy).await {
            Ok(r) => r,
            Err(e) => return fail(&ex.cfg, &e, 1),
        };
        match r.plan_erasure(person).await {
            Ok(v) => {
                for o in &v {
                    if o.deleted + o.anonymized > 0 {
                        left.push(format!("{}.{}", sys.id, o.dataset));
                    }
                }
                report.push(outcomes_json(sys.id.as_str(), &v));
            }
            Err(e) => return fail(&ex.cfg, &e, 1),
        }
    }
    if left.is_empty() {
        StepEnd::Done(json!({ "verified": true, "systems": report }))
    } else {
        StepEnd::Failed(format!(
            "verification found data that erasure should have removed in {}",
            left.join(", ")
        ))
    }
}
