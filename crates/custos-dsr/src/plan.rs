//! Planning a verified request, and the dry run of a plan.

use serde_json::{json, Value};

use custos_core::request::StepKind;
use custos_store::{NewStep, PendingRequest, StoreError};

use crate::executor::Executor;
use crate::person::{map_of, person_of};
use crate::planner::plan_steps;
use crate::reach::{reach, Reach};
use crate::tenancy::Tenancy;

/// Plans a verified request.
pub(crate) async fn plan(ex: &Executor, req: &PendingRequest) -> Result<(), StoreError> {
    let map = map_of(ex);
    let (mut person, mut payload) = person_of(ex, req).await?;
    let tenancy = Tenancy::of(ex, req).await?;
    // Learn identities from the SQL databases the tenant reaches until
    // nothing new appears.
    let reachable = |s: &&custos_map::System| s.kind.is_sql() && tenancy.refusal(&map, s).is_none();
    for _ in 0..4 {
        let mut grew = false;
        for sys in map.systems.iter().filter(reachable) {
            let found = match reach(ex, &map, sys, req, &tenancy).await {
                Ok(r) => r.identify(&person).await,
                Err(e) => Err(e),
            };
            match found {
                Ok(more) => grew |= person.merge(&more),
                // Its own step will fail visibly if it stays unreachable.
                Err(e) => {
                    tracing::warn!(system = %sys.id, error = %e, "identity discovery skipped a system")
                }
            }
        }
        if !grew {
            break;
        }
    }
    payload.identities = person.to_sealable();
    let steps = plan_steps(&map, req.kind, &tenancy.scope())
        .into_iter()
        .map(|s| NewStep {
            kind: s.kind,
            system: s.system.map(|x| x.0),
            processor: s.processor.map(|x| x.0),
            title: s.title,
        })
        .collect();
    ex.vault
        .execution()
        .plan(req, Some(&payload.seal()?), steps)
        .await
}

impl Executor {
    /// A dry run: the plan of a request and, per connector system, what
    /// erasure would touch or what access would find. Changes nothing.
    pub async fn dry_run(&self, req: &PendingRequest) -> Result<Value, StoreError> {
        dry_run(self, req).await
    }
}

async fn dry_run(ex: &Executor, req: &PendingRequest) -> Result<Value, StoreError> {
    let map = map_of(ex);
    let (mut person, _) = person_of(ex, req).await?;
    let tenancy = Tenancy::of(ex, req).await?;
    for sys in map.systems.iter().filter(|s| s.kind.is_sql()) {
        if let Ok(r) = reach(ex, &map, sys, req, &tenancy).await {
            if let Ok(more) = r.identify(&person).await {
                person.merge(&more);
            }
        }
    }
    let mut out = Vec::new();
    for s in plan_steps(&map, req.kind, &tenancy.scope()) {
        let mut v = serde_json::Map::new();
        let head = json!({
            "kind": s.kind.as_str(),
            "system": s.system,
            "processor": s.processor,
            "title": s.title,
        });
        if let Value::Object(h) = head {
            v.extend(h);
        }
        let sys = s
            .system
            .as_ref()
            .and_then(|id| map.systems.iter().find(|x| &x.id == id));
        if let (StepKind::Connector, Some(sys)) = (s.kind, sys) {
            let counted = match reach(ex, &map, sys, req, &tenancy).await {
                Ok(r) => {
                    // Lookups that read whole tables, with the index to add.
                    if let Reach::Sql(c) = &r {
                        let scans = c.scans();
                        if !scans.is_empty() {
                            v.insert("scans".into(), json!(scans));
                        }
                    }
                    r.plan_erasure(&person).await
                }
                Err(e) => Err(e),
            };
            match counted {
                Ok(d) => {
                    v.insert("datasets".into(), json!(d));
                }
                Err(e) => {
                    v.insert("error".into(), json!(e.to_string()));
                }
            }
        }
        out.push(Value::Object(v));
    }
    Ok(json!({ "request": req.id.to_string(), "type": req.kind.as_str(), "steps": out }))
}
