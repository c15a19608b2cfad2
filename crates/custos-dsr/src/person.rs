//! Who the request is about: the sealed payload, the vault subject and
//! what the application databases reveal.

use std::sync::Arc;

use custos_connectors::Person;
use custos_core::ids::{Purpose, SubjectId, TenantId};
use custos_map::{DataMap, IdentityKind};
use custos_store::{PendingRequest, Principal, StoreError, SUBJECT_REQUEST_PURPOSE};

use crate::executor::Executor;
use crate::payload::Payload;

pub(crate) fn principal(req_tenant: &TenantId) -> Result<Principal, StoreError> {
    Principal::executor(req_tenant.clone())
}

/// The purpose the executor's reads of a subject declare (and the audit
/// log records): carrying out the subject's own request.
pub(crate) fn subject_request_purpose() -> Result<Purpose, StoreError> {
    Purpose::parse(SUBJECT_REQUEST_PURPOSE).map_err(StoreError::Integrity)
}

/// The map in service, or one that knows only the vault.
pub(crate) fn map_of(ex: &Executor) -> Arc<DataMap> {
    ex.map.current().unwrap_or_else(|| Arc::new(empty_map()))
}

/// The map used when the server has none: only the vault is known.
const VAULT_ONLY_MAP: &str = "version: 1
organisation: { controller: not configured, contact: not configured }
purposes:
  - { id: service, title: The service, legal_basis: contract, subjects: [customer] }
systems:
  - id: vault
    kind: vault
    datasets:
      - id: subjects
        collection: subjects
        subject: { identity: subject_id }
        purposes: [service]
        erasure: shred
        retention: { period: 30d, from_event: account_closed }
        fields:
          - { name: subject_id, category: user.unique_id, identity: subject_id }
";

fn empty_map() -> DataMap {
    custos_map::load_str(VAULT_ONLY_MAP, "builtin")
        .map(|(m, _)| m)
        .unwrap_or_else(|_| DataMap {
            version: 1,
            updated: None,
            organisation: custos_map::Organisation {
                controller: String::new(),
                address: None,
                contact: String::new(),
                dpo: None,
                eu_representative: None,
                security_measures: Vec::new(),
            },
            purposes: Vec::new(),
            processors: Vec::new(),
            systems: Vec::new(),
            on_behalf_of: Vec::new(),
        })
}

/// What the request carries of the person; empty once it closed.
pub(crate) async fn payload_of(ex: &Executor, req: &PendingRequest) -> Result<Payload, StoreError> {
    match ex.vault.execution().payload(&req.tenant, &req.id).await? {
        Some(p) => Payload::open(&p),
        None => Ok(Payload::default()),
    }
}

/// Everything known of the person: payload, vault subject.
pub(crate) async fn person_of(
    ex: &Executor,
    req: &PendingRequest,
) -> Result<(Person, Payload), StoreError> {
    let payload = payload_of(ex, req).await?;
    let mut person = Person::from_sealable(&payload.identities);
    if let Some(s) = &req.subject {
        person.add(IdentityKind::SubjectId, s);
        if let Ok(id) = SubjectId::parse(s) {
            let p = principal(&req.tenant)?;
            let purpose = subject_request_purpose()?;
            match ex.vault.subjects().export(&p, &id, Some(&purpose)).await {
                Ok(x) => {
                    for (k, v) in &x.identities {
                        if let Some(kind) = IdentityKind::ALL.iter().find(|i| i.key() == k) {
                            person.add(*kind, v);
                        }
                    }
                    if let Some(e) = &x.subject.external_id {
                        person.add(IdentityKind::UserId, e);
                    }
                }
                Err(StoreError::SubjectErased { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok((person, payload))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_vault_only_map_is_valid_and_reaches_the_vault() {
        let m = custos_map::load_str(super::VAULT_ONLY_MAP, "builtin");
        assert!(m.is_ok(), "{m:?}");
        let steps = crate::planner::plan_steps(
            &super::empty_map(),
            custos_core::request::RequestType::Erasure,
            &custos_map::TenantScope {
                tenant: "acme",
                several: true,
            },
        );
        assert_eq!(steps.len(), 2, "{steps:?}");
    }
}
