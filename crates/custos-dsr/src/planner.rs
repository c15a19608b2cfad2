//! The plan of a request: which steps, in which order, from the data map
//! alone (no I/O). The executor stores these steps as durable jobs.
//!
//! Order for erasure, and why:
//! 1. files — before the rows that name them, so a path read from a row is
//!    still there to find the file (derived files go with their originals
//!    inside the same step);
//! 2. SQL databases — one step per database, one transaction, children
//!    before parents;
//! 3. caches (Redis);
//! 4. processors and recipients — notices once our own copies are gone;
//! 5. manual tasks;
//! 6. the vault last: its subject is the anchor of the request until the
//!    end (shredding its key makes every later read answer 410 Gone).
//!
//! Tenancy: systems and processors bound to other tenants only are left
//! out; on a server with several tenants, one bound to none keeps its step
//! with a title saying so (its connector step then fails, naming it; its
//! notice is not sent), so that no plan silently claims it was done.

use custos_core::request::{RequestType, StepKind};
use custos_map::{Binding, DataMap, Notify, ProcessorId, SystemId, SystemKind, TenantScope};
use serde::{Deserialize, Serialize};

/// One step of a request's plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    /// What it does.
    pub kind: StepKind,
    /// The system it works on, if any (a recipient without a system has none).
    pub system: Option<SystemId>,
    /// The processor or recipient concerned, if any.
    pub processor: Option<ProcessorId>,
    /// One line for people: "erase in app_db (postgres)".
    pub title: String,
}

fn rank(kind: SystemKind) -> u8 {
    match kind {
        SystemKind::Files => 0,
        SystemKind::Postgres | SystemKind::Mysql | SystemKind::Sqlite => 1,
        SystemKind::Redis => 2,
        SystemKind::Http => 3,
        SystemKind::Manual => 4,
        SystemKind::Vault => 5,
        // `SystemKind` is non-exhaustive; a new kind runs before the vault.
        _ => 4,
    }
}

fn verb(kind: RequestType) -> &'static str {
    match kind {
        RequestType::Access | RequestType::Portability => "collect",
        RequestType::Erasure => "erase",
        RequestType::Rectification => "rectify",
        RequestType::Restriction => "restrict",
        RequestType::Objection => "record objection",
    }
}

/// Whether a connector system takes part in a request of this type.
/// Restriction and objection live in the vault and the consent ledger;
/// the application's own stores are not changed by them.
fn connector_takes_part(kind: SystemKind, request: RequestType) -> bool {
    match request {
        RequestType::Restriction | RequestType::Objection => kind == SystemKind::Vault,
        _ => true,
    }
}

/// The ordered steps of a request of type `request` under `map`, for the
/// tenant of `scope`. Only systems holding personal data and bound to the
/// tenant (or to none: see the module doc) take part; an `http` system is
/// reached through its processor's `notify`; a processor or recipient
/// with no system of its own but a notify address is notified too (Art. 19).
pub fn plan_steps(
    map: &DataMap,
    request: RequestType,
    scope: &TenantScope<'_>,
) -> Vec<PlannedStep> {
    let mut steps: Vec<(u8, PlannedStep)> = Vec::new();
    let v = verb(request);
    let mut notified: Vec<&ProcessorId> = Vec::new();
    for sys in &map.systems {
        if !sys.datasets.iter().any(|d| d.holds_personal_data()) {
            continue;
        }
        let binding = map.binding(sys, scope);
        if binding == Binding::OtherTenants {
            continue;
        }
        // Said in the title, so the plan names every unbound system.
        let unbound = if binding == Binding::Unbound {
            format!(" — {}", sys.unbound_message(scope.tenant))
        } else {
            String::new()
        };
        let r = rank(sys.kind);
        match sys.kind {
            SystemKind::Http => {
                let proc_ = sys
                    .processor
                    .as_ref()
                    .and_then(|p| map.processors.iter().find(|x| &x.id == p));
                let (kind, how) = match proc_.map(|p| &p.notify) {
                    Some(Notify::Url(_)) => (StepKind::ProcessorNotice, "signed notice to"),
                    Some(Notify::Email(_)) => (StepKind::EmailNotice, "email notice to"),
                    _ => (StepKind::Manual, "by hand at"),
                };
                if let Some(p) = proc_ {
                    notified.push(&p.id);
                }
                steps.push((
                    r,
                    PlannedStep {
                        kind,
                        system: Some(sys.id.clone()),
                        processor: sys.processor.clone(),
                        title: format!(
                            "{v} in {} ({how} {}){unbound}",
                            sys.id,
                            sys.processor
                                .as_ref()
                                .map_or("the processor", |p| p.as_str())
                        ),
                    },
                ));
            }
            SystemKind::Manual => steps.push((
                r,
                PlannedStep {
                    kind: StepKind::Manual,
                    system: Some(sys.id.clone()),
                    processor: None,
                    title: format!("{v} in {} (by hand){unbound}", sys.id),
                },
            )),
            k if connector_takes_part(k, request) => steps.push((
                r,
                PlannedStep {
                    kind: StepKind::Connector,
                    system: Some(sys.id.clone()),
                    processor: None,
                    title: format!("{v} in {} ({}){unbound}", sys.id, k.key()),
                },
            )),
            _ => {}
        }
    }
    // Recipients and processors with no system of ours: tell them (Art. 19).
    // Those that only host a system we reach ourselves need no notice.
    let hosts: Vec<&ProcessorId> = map
        .systems
        .iter()
        .filter(|s| s.kind != SystemKind::Http)
        .filter_map(|s| s.processor.as_ref())
        .collect();
    for p in &map.processors {
        if notified.contains(&&p.id) || hosts.contains(&&p.id) {
            continue;
        }
        let binding = p.binding(scope);
        if binding == Binding::OtherTenants {
            continue;
        }
        let unbound = if binding == Binding::Unbound {
            format!(" — {}", p.unbound_message(scope.tenant))
        } else {
            String::new()
        };
        let kind = match &p.notify {
            Notify::Url(_) => StepKind::ProcessorNotice,
            Notify::Email(_) => StepKind::EmailNotice,
            _ => StepKind::Manual,
        };
        steps.push((
            3,
            PlannedStep {
                kind,
                system: None,
                processor: Some(p.id.clone()),
                title: format!("tell {} ({}){unbound}", p.id, p.name),
            },
        ));
    }
    // Stable: map order within a rank.
    steps.sort_by_key(|(r, _)| *r);
    let mut out: Vec<PlannedStep> = steps.into_iter().map(|(_, s)| s).collect();
    if request == RequestType::Erasure {
        out.push(PlannedStep {
            kind: StepKind::Verify,
            system: None,
            processor: None,
            title: "verify: search every store again; only retained data may remain".to_owned(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALONE: TenantScope<'static> = TenantScope {
        tenant: "acme",
        several: false,
    };

    fn demo() -> DataMap {
        match custos_map::load_str(custos_map::DEMO_MAP, "demo-map.yaml") {
            Ok((m, _)) => m,
            Err(d) => unreachable!("demo map invalid: {d:?}"),
        }
    }

    #[test]
    fn erasure_runs_files_before_rows_and_the_vault_last() {
        let steps = plan_steps(&demo(), RequestType::Erasure, &ALONE);
        let sys: Vec<&str> = steps
            .iter()
            .map(|s| s.system.as_ref().map_or("-", |x| x.as_str()))
            .collect();
        let pos = |n: &str| sys.iter().position(|s| *s == n);
        assert!(pos("uploads") < pos("app_db"), "{sys:?}");
        assert!(pos("app_db") < pos("sessions"), "{sys:?}");
        assert_eq!(steps.last().map(|s| s.kind), Some(StepKind::Verify));
        assert_eq!(sys.iter().rev().nth(1), Some(&"vault"), "{sys:?}");
        // Stripe has a URL: a signed notice; AdPixel is manual; Mailjet by email.
        let kind_of = |n: &str| {
            steps
                .iter()
                .find(|s| s.system.as_ref().is_some_and(|x| x.as_str() == n))
                .map(|s| s.kind)
        };
        assert_eq!(kind_of("stripe_api"), Some(StepKind::ProcessorNotice));
        assert_eq!(kind_of("adpixel_api"), Some(StepKind::Manual));
        assert_eq!(kind_of("mailjet_api"), Some(StepKind::EmailNotice));
        assert_eq!(kind_of("hr_files"), Some(StepKind::Manual));
        // The tax advisor has no system but receives invoices: told by email.
        assert!(steps.iter().any(|s| s.system.is_none()
            && s.processor
                .as_ref()
                .is_some_and(|p| p.as_str() == "tax_advisor")
            && s.kind == StepKind::EmailNotice));
        // AWS only hosts our databases: nobody writes to it.
        assert!(!steps
            .iter()
            .any(|s| s.processor.as_ref().is_some_and(|p| p.as_str() == "aws")));
    }

    #[test]
    fn restriction_touches_the_vault_and_processors_only() {
        let steps = plan_steps(&demo(), RequestType::Restriction, &ALONE);
        assert!(steps.iter().all(|s| s.kind != StepKind::Connector
            || s.system.as_ref().is_some_and(|x| x.as_str() == "vault")));
        assert!(steps.iter().any(|s| s.kind == StepKind::ProcessorNotice));
    }

    #[test]
    fn a_shared_server_names_every_unbound_system_and_processor() {
        let several = TenantScope {
            tenant: "globex",
            several: true,
        };
        let steps = plan_steps(&demo(), RequestType::Erasure, &several);
        for s in &steps {
            let vault = s.system.as_ref().is_some_and(|x| x.as_str() == "vault");
            if vault || s.kind == StepKind::Verify {
                assert!(!s.title.contains("bound to no tenant"), "{}", s.title);
            } else {
                assert!(s.title.contains("bound to no tenant"), "{}", s.title);
                assert!(s.title.contains("tenants: [globex]"), "{}", s.title);
            }
        }
    }

    #[test]
    fn step_kinds_round_trip() {
        for k in [
            StepKind::Connector,
            StepKind::ProcessorNotice,
            StepKind::EmailNotice,
            StepKind::Manual,
        ] {
            assert_eq!(StepKind::parse(k.as_str()), Some(k));
        }
    }
}
