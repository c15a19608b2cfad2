//! Moving requests on: archives for access, completion and the receipt.

use serde_json::Value;

use custos_connectors::archive::{self, ArchiveInput};
use custos_connectors::notice::ProcessorRecords;
use custos_connectors::{DatasetOutcome, Export};
use custos_core::request::StepKind;
use custos_core::request::{RequestStatus, RequestType};
use custos_map::IdentityKind;
use custos_store::{PendingRequest, StepStatus, StoreError};

use crate::executor::Executor;
use crate::person::{map_of, payload_of, person_of, principal};
use crate::reach::reach;
use crate::tenancy::Tenancy;

/// Moves a request on; for access and portability, builds the archive
/// once every connector step is done.
pub(crate) async fn progress(ex: &Executor, req: &PendingRequest) -> Result<(), StoreError> {
    let mut archive_pending = false;
    let steps = ex.vault.execution().steps_of(&req.tenant, &req.id).await?;
    if matches!(req.kind, RequestType::Access | RequestType::Portability) {
        let connectors_done = steps
            .iter()
            .filter(|s| s.kind == StepKind::Connector)
            .all(|s| finished(s.status));
        if connectors_done
            && !ex
                .vault
                .execution()
                .has_archive(&req.tenant, &req.id)
                .await?
        {
            archive_pending = !build_archive(ex, req, &steps).await?;
        }
    }
    if archive_pending {
        // Look again next round.
        return Ok(());
    }
    // The address to send the receipt to must be read before the request
    // closes: closing wipes the payload.
    let all_done = !steps.is_empty() && steps.iter().all(|s| finished(s.status));
    let receipt_to = if all_done {
        receipt_address(ex, req).await?
    } else {
        None
    };
    let before = ex.vault.execution().status(&req.tenant, &req.id).await?;
    let after = ex.vault.execution().advance(req).await?;
    if after == before {
        ex.vault.execution().touch(req).await?;
    }
    if let (RequestStatus::Completed, false, Some(to)) =
        (after, before == RequestStatus::Completed, receipt_to)
    {
        send_receipt(ex, req, &to, &steps).await;
    }
    Ok(())
}

/// Done, or skipped by an operator: nothing more will happen to it.
fn finished(s: StepStatus) -> bool {
    matches!(s, StepStatus::Done | StepStatus::Skipped)
}

/// Where the person gets the receipt (and, for access, the download link):
/// the email address they gave, when they verified it with a one-time
/// code and mail can be sent. A request the application vouched for is
/// answered by the application, which fetches both through the API.
async fn receipt_address(
    ex: &Executor,
    req: &PendingRequest,
) -> Result<Option<String>, StoreError> {
    if !ex.mailer.is_configured() {
        return Ok(None);
    }
    let info = ex
        .vault
        .requests()
        .get(&principal(&req.tenant)?, &req.id)
        .await?;
    if info.verification != "code" {
        return Ok(None);
    }
    let payload = payload_of(ex, req).await?;
    Ok(payload
        .identities
        .get(IdentityKind::Email.key())
        .and_then(|v| v.first())
        .cloned())
}

/// Mails the person the receipt of a completed request: what was done
/// where (counts only), the signed completion record, and for access or
/// portability a fresh one-time download link. Best effort: a failure is
/// logged (without the address) and the receipt and link stay available
/// through the API.
async fn send_receipt(
    ex: &Executor,
    req: &PendingRequest,
    to: &str,
    steps: &[custos_store::StepInfo],
) {
    let Ok(p) = principal(&req.tenant) else {
        return;
    };
    let mut body = format!(
        "Your {kind} request {id} has been completed.\r\n\r\nWhat was done:\r\n",
        kind = req.kind.as_str(),
        id = req.id
    );
    for s in steps {
        body.push_str(&format!("  - {}", s.title));
        let counts = s
            .result
            .as_ref()
            .and_then(|r| r.get("datasets"))
            .and_then(Value::as_array)
            .map(|ds| {
                ds.iter()
                    .filter_map(|d| serde_json::from_value::<DatasetOutcome>(d.clone()).ok())
                    .map(|d| receipt_counts(&d))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|c| !c.is_empty());
        if let Some(c) = counts {
            body.push_str(&format!(": {c}"));
        }
        body.push_str("\r\n");
    }
    if matches!(req.kind, RequestType::Access | RequestType::Portability) {
        match ex.vault.requests().archive_link(&p, &req.id).await {
            Ok(link) => body.push_str(&format!(
                "\r\nYour data: {}/v1/archives/{}\r\nThe link works once and expires at {}; \
                 the archive is deleted after 7 days.\r\n",
                ex.cfg.public_url.trim_end_matches('/'),
                link.token.expose(),
                link.expires_at
            )),
            Err(e) => {
                tracing::warn!(request = %req.id, error = %e, "no archive link for the receipt")
            }
        }
    }
    if let Ok(record) = ex.vault.requests().completion(&p, &req.id).await {
        body.push_str(&format!(
            "\r\nReceipt (the signed completion record; it names systems and counts, \
             never your data):\r\n{record}\r\n"
        ));
    }
    let subject = format!("Your {} request {} is complete", req.kind.as_str(), req.id);
    let stem = format!("{}-receipt", req.id);
    if let Err(e) = ex.mailer.send(to, &subject, &body, &stem).await {
        tracing::warn!(request = %req.id, error = %e, "receipt not delivered");
    }
}

/// `3 found, 2 deleted, 1 kept (ground)` of one dataset.
fn receipt_counts(d: &DatasetOutcome) -> String {
    let mut parts = vec![format!("{} found", d.found)];
    for (n, what) in [
        (d.deleted, "deleted"),
        (d.anonymized, "anonymised"),
        (d.rectified, "corrected"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if d.retained > 0 {
        match (&d.retained_ground, &d.retained_until) {
            (Some(g), Some(u)) => parts.push(format!("{} kept ({g}; for {u})", d.retained)),
            (Some(g), None) => parts.push(format!("{} kept ({g})", d.retained)),
            _ => parts.push(format!("{} kept", d.retained)),
        }
    }
    if !d.anonymized_fields.is_empty() {
        parts.push(format!(
            "fields anonymised: {}",
            d.anonymized_fields.join(" ")
        ));
    }
    format!("{} {}", d.dataset, parts.join(", "))
}

async fn build_archive(
    ex: &Executor,
    req: &PendingRequest,
    steps: &[custos_store::StepInfo],
) -> Result<bool, StoreError> {
    let map = map_of(ex);
    let (person, _) = person_of(ex, req).await?;
    let tenancy = Tenancy::of(ex, req).await?;
    let mut systems = Vec::new();
    // A skipped system is not searched again; the archive lists it as
    // not included.
    for s in steps
        .iter()
        .filter(|s| s.kind == StepKind::Connector && s.status == StepStatus::Done)
    {
        let Some(sys) = s
            .system
            .as_deref()
            .and_then(|id| map.systems.iter().find(|x| x.id.as_str() == id))
        else {
            continue;
        };
        let exports = match reach(ex, &map, sys, req, &tenancy).await {
            Ok(r) => r.access(&person).await,
            Err(e) => Err(e),
        };
        match exports {
            Ok(x) => systems.push((sys.id.clone(), x)),
            // Leave the archive for the next round.
            Err(e) => {
                tracing::warn!(system = %sys.id, error = %e, "archive postponed");
                return Ok(false);
            }
        }
    }
    // What processors answered so far; a later answer drops this archive
    // and the next round builds it again.
    let mut answered = std::collections::BTreeSet::new();
    for (step, processor, answer) in ex
        .vault
        .execution()
        .processor_answers(&req.tenant, &req.id)
        .await?
    {
        let Ok(data) = serde_json::from_slice::<Vec<ProcessorRecords>>(answer.expose()) else {
            continue;
        };
        let system = steps
            .iter()
            .find(|s| s.step == step)
            .and_then(|s| s.system.clone())
            .unwrap_or(processor);
        let exports = data
            .into_iter()
            .map(|d| Export {
                dataset: d.dataset.as_str().into(),
                records: d.records,
                files: Vec::new(),
            })
            .collect();
        systems.push((custos_map::SystemId::from(system.as_str()), exports));
        answered.insert(step);
    }
    let pending: Vec<String> = steps
        .iter()
        .filter(|s| {
            (s.kind != StepKind::Connector || s.status == StepStatus::Skipped)
                && s.status != StepStatus::Done
                && !answered.contains(&s.step)
        })
        .map(|s| s.title.clone())
        .collect();
    let generated_at = custos_store::rfc3339(custos_store::now_us());
    let rid = req.id.to_string();
    let input = ArchiveInput {
        map: &map,
        request_id: &rid,
        request_type: req.kind.as_str(),
        generated_at: &generated_at,
        systems: &systems,
        pending: &pending,
        max_bytes: 512 * 1024 * 1024,
    };
    match archive::build_zip(&input) {
        Ok(zip) => {
            ex.vault
                .execution()
                .store_archive(&req.tenant, &req.id, &zip)
                .await?;
            Ok(true)
        }
        Err(e) => {
            tracing::warn!(request = %req.id, error = %e, "archive could not be built");
            Ok(false)
        }
    }
}
