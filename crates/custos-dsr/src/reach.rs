//! The connector of each kind of system, the vault among them.

use std::sync::Arc;

use serde_json::json;

use custos_connectors::files::FileConnector;
use custos_connectors::redis_cache::RedisConnector;
use custos_connectors::sql::SqlConnector;
use custos_connectors::{Connector, ConnectorError, DatasetOutcome, Export, FieldChange, Person};
use custos_core::blind::IdentityKind as VaultIdentity;
use custos_core::ids::{Collection, Purpose, RecordKey, SubjectId};
use custos_map::{Binding, DataMap, IdentityKind, System, SystemKind};
use custos_store::{PendingRequest, Principal, StoreError, Vault};

use crate::config::{CachedSql, SQL_CACHE_TTL};
use crate::executor::Executor;
use crate::person::{principal, subject_request_purpose};
use crate::steps::{subject_of, vault_dataset};
use crate::tenancy::Tenancy;

/// A system's connector, by kind.
pub(crate) enum Reach {
    Sql(Arc<SqlConnector>),
    Files(FileConnector),
    Redis(RedisConnector),
    Vault(VaultReach),
}

/// The connector of `sys` for `req`, confined to the request's tenant:
/// a system not bound to it is refused (`Config`, naming the system and
/// the tenant), a database shared by tenants is filtered by its tenant
/// column.
pub(crate) async fn reach(
    ex: &Executor,
    map: &DataMap,
    sys: &System,
    req: &PendingRequest,
    tenancy: &Tenancy,
) -> Result<Reach, ConnectorError> {
    if let Some(message) = tenancy.refusal(map, sys) {
        return Err(ConnectorError::Config {
            system: sys.id.clone(),
            message,
        });
    }
    // A system shared by tenants: SQL rows filtered by the tenant column,
    // files and Redis keys under the tenant's `{tenant}` part.
    let rows_of = match tenancy.binding(map, sys) {
        Binding::Rows(v)
            if sys.kind.is_sql() || matches!(sys.kind, SystemKind::Files | SystemKind::Redis) =>
        {
            Some(v.to_owned())
        }
        Binding::Rows(_) => {
            return Err(ConnectorError::Config {
                system: sys.id.clone(),
                message: "tenant_values apply to SQL, files and Redis systems only".into(),
            })
        }
        _ => None,
    };
    let env = |n: &str| ex.cfg.var(n);
    Ok(match sys.kind {
        SystemKind::Postgres | SystemKind::Sqlite | SystemKind::Mysql => {
            let key = ex
                .vault
                .execution()
                .anonymization_key(&req.tenant)
                .await
                .map_err(|e| unavailable(sys, &e))?;
            let cache_key = (sys.id.clone(), req.tenant.clone());
            let cached = lock(&ex.cfg.sql_cache)
                .get(&cache_key)
                .filter(|c| c.at.elapsed() < SQL_CACHE_TTL && c.system == *sys)
                .map(|c| c.connector.clone());
            match cached {
                Some(c) => Reach::Sql(c),
                None => {
                    let c = SqlConnector::connect(map, sys, &env, *key.expose()).await?;
                    let c = Arc::new(match &rows_of {
                        Some(v) => c.for_tenant(v),
                        None => c,
                    });
                    let mut cache = lock(&ex.cfg.sql_cache);
                    cache.retain(|_, c| c.at.elapsed() < SQL_CACHE_TTL);
                    cache.insert(
                        cache_key,
                        CachedSql {
                            at: std::time::Instant::now(),
                            system: sys.clone(),
                            connector: c.clone(),
                        },
                    );
                    Reach::Sql(c)
                }
            }
        }
        SystemKind::Files => Reach::Files(FileConnector::connect_for_tenant(
            sys,
            &env,
            rows_of.as_deref(),
        )?),
        SystemKind::Redis => Reach::Redis(RedisConnector::connect_for_tenant(
            sys,
            &env,
            rows_of.as_deref(),
        )?),
        SystemKind::Vault => Reach::Vault(VaultReach {
            vault: ex.vault.clone(),
            principal: principal(&req.tenant).map_err(|e| unavailable(sys, &e))?,
            subject: subject_of(req),
            system: sys.clone(),
        }),
        other => {
            return Err(ConnectorError::Unsupported {
                system: sys.id.clone(),
                kind: other.key(),
            })
        }
    })
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned cache is still a valid cache.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn unavailable(sys: &System, e: &StoreError) -> ConnectorError {
    ConnectorError::Unavailable {
        system: sys.id.clone(),
        message: e.to_string(),
    }
}

macro_rules! dispatch {
    ($r:expr, $c:ident => $body:expr) => {
        match $r {
            Reach::Sql($c) => $body,
            Reach::Files($c) => $body,
            Reach::Redis($c) => $body,
            Reach::Vault($c) => $body,
        }
    };
}

impl Reach {
    pub(crate) async fn identify(&self, p: &Person) -> Result<Person, ConnectorError> {
        dispatch!(self, c => c.identify(p).await)
    }
    pub(crate) async fn plan_erasure(
        &self,
        p: &Person,
    ) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        dispatch!(self, c => c.plan_erasure(p).await)
    }
    pub(crate) async fn access(&self, p: &Person) -> Result<Vec<Export>, ConnectorError> {
        dispatch!(self, c => c.access(p).await)
    }
    pub(crate) async fn erase(&self, p: &Person) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        dispatch!(self, c => c.erase(p).await)
    }
    pub(crate) async fn rectify(
        &self,
        p: &Person,
        ch: &[FieldChange],
    ) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        dispatch!(self, c => c.rectify(p, ch).await)
    }
}

/// The vault as a connector: one subject, shredded on erasure.
pub(crate) struct VaultReach {
    vault: Vault,
    principal: Principal,
    subject: Option<SubjectId>,
    system: System,
}

impl VaultReach {
    fn dataset(&self) -> custos_map::DatasetId {
        vault_dataset(&self.system)
    }

    fn err(&self, e: StoreError) -> ConnectorError {
        unavailable(&self.system, &e)
    }
}

impl Connector for VaultReach {
    async fn identify(&self, _p: &Person) -> Result<Person, ConnectorError> {
        // The vault's identities were added when the person was assembled.
        Ok(Person::new())
    }

    async fn plan_erasure(&self, _p: &Person) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        let mut o = DatasetOutcome::new(self.dataset());
        if let Some(id) = &self.subject {
            match self.vault.subjects().get(&self.principal, id).await {
                Ok(_) => {
                    o.found = 1;
                    o.deleted = 1;
                }
                Err(StoreError::SubjectErased { .. }) => {}
                Err(e) => return Err(self.err(e)),
            }
        }
        Ok(vec![o])
    }

    async fn access(&self, _p: &Person) -> Result<Vec<Export>, ConnectorError> {
        let Some(id) = &self.subject else {
            return Ok(Vec::new());
        };
        let purpose = subject_request_purpose().map_err(|e| self.err(e))?;
        let x = match self
            .vault
            .subjects()
            .export(&self.principal, id, Some(&purpose))
            .await
        {
            Ok(x) => x,
            Err(StoreError::SubjectErased { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        let mut ids = serde_json::Map::new();
        ids.insert("subject_id".into(), json!(x.subject.id.to_string()));
        if let Some(e) = &x.subject.external_id {
            ids.insert("external_id".into(), json!(e));
        }
        for (k, v) in &x.identities {
            ids.insert(k.clone(), json!(v));
        }
        ids.insert("restricted".into(), json!(x.subject.restricted));
        ids.insert("tokens_issued_to".into(), json!(x.token_audiences));
        out.push(Export {
            dataset: "identities".into(),
            records: vec![ids],
            files: Vec::new(),
        });
        for (collection, recs) in x.records {
            let dataset = self
                .system
                .datasets
                .iter()
                .find(|d| d.location.value() == collection)
                .map(|d| d.id.clone())
                .unwrap_or_else(|| collection.as_str().into());
            let records = recs
                .into_iter()
                .map(|(key, mut fields)| {
                    fields.insert("_key".into(), json!(key));
                    fields
                })
                .collect();
            out.push(Export {
                dataset,
                records,
                files: Vec::new(),
            });
        }
        Ok(out)
    }

    async fn erase(&self, p: &Person) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        let mut outcome = self.plan_erasure(p).await?;
        if let Some(id) = &self.subject {
            let reason = Purpose::parse("erasure_request").map_err(|_| ConnectorError::Config {
                system: self.system.id.clone(),
                message: "reason".into(),
            })?;
            match self
                .vault
                .subjects()
                .erase(&self.principal, id, &reason)
                .await
            {
                Ok(_) | Err(StoreError::SubjectErased { .. }) => {}
                Err(e) => return Err(self.err(e)),
            }
        }
        for o in &mut outcome {
            o.found = o.deleted;
        }
        Ok(outcome)
    }

    /// Every record of a vault dataset that holds a changed field gets the
    /// new value (records without the field are left alone; unchanged
    /// values are not rewritten, so a rerun changes nothing). A changed
    /// field that is the dataset's `email`/`phone` identity also replaces
    /// the subject's identity, so lookups find the new value and not the
    /// old. Previous values are not kept: the step's result records the
    /// datasets and counts, the audit log the kinds.
    async fn rectify(
        &self,
        _p: &Person,
        changes: &[FieldChange],
    ) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        let Some(id) = &self.subject else {
            return Ok(vec![DatasetOutcome::new(self.dataset())]);
        };
        let purpose = subject_request_purpose().map_err(|e| self.err(e))?;
        let x = match self
            .vault
            .subjects()
            .export(&self.principal, id, Some(&purpose))
            .await
        {
            Ok(x) => x,
            Err(StoreError::SubjectErased { .. }) => {
                return Ok(vec![DatasetOutcome::new(self.dataset())])
            }
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        let mut identities = DatasetOutcome::new("identities".into());
        let mut kinds_done = std::collections::HashSet::new();
        for d in &self.system.datasets {
            let fields: Vec<(&FieldChange, &custos_map::Field)> = changes
                .iter()
                .filter_map(|c| {
                    d.fields
                        .iter()
                        .find(|f| f.name == c.field && !f.primary_key)
                        .map(|f| (c, f))
                })
                .collect();
            if fields.is_empty() {
                continue;
            }
            let mut o = DatasetOutcome::new(d.id.clone());
            let collection = d.location.value();
            for (key, record) in x.records.get(collection).into_iter().flatten() {
                let mut new = record.clone();
                for (c, _) in &fields {
                    if let Some(old) = new.get_mut(&c.field) {
                        *old = json!(c.value.as_ref().map(|v| v.expose()));
                    }
                }
                if !fields.iter().any(|(c, _)| record.contains_key(&c.field)) {
                    continue;
                }
                o.found += 1;
                if new == *record {
                    continue;
                }
                let (Ok(coll), Ok(rkey)) = (Collection::parse(collection), RecordKey::parse(key))
                else {
                    continue;
                };
                self.vault
                    .subjects()
                    .put_record(&self.principal, id, &coll, &rkey, &new)
                    .await
                    .map_err(|e| self.err(e))?;
                o.rectified += 1;
            }
            out.push(o);
            for (c, f) in fields {
                let kind = match f.identity {
                    Some(IdentityKind::Email) => VaultIdentity::Email,
                    Some(IdentityKind::Phone) => VaultIdentity::Phone,
                    _ => continue,
                };
                // Two datasets may name the same identity.
                if !kinds_done.insert(kind.as_str().to_owned()) {
                    continue;
                }
                // The server refuses to clear an identity; a payload that
                // does anyway is the map's field, not a value to set.
                let Some(value) = &c.value else {
                    return Err(ConnectorError::Config {
                        system: self.system.id.clone(),
                        message: format!(
                            "{} is the person's {} and cannot be cleared by a rectification",
                            c.field,
                            kind.as_str()
                        ),
                    });
                };
                let now = x.identities.get(kind.as_str());
                let same = kind
                    .normalise(value.expose())
                    .ok()
                    .zip(now)
                    .is_some_and(|(n, cur)| n.expose() == cur);
                identities.found += u64::from(now.is_some());
                if same {
                    continue;
                }
                match self
                    .vault
                    .subjects()
                    .rectify_identity(&self.principal, id, &kind, value.expose())
                    .await
                {
                    Ok(()) => identities.rectified += 1,
                    Err(StoreError::Invalid { .. }) => {
                        return Err(ConnectorError::Config {
                            system: self.system.id.clone(),
                            message: format!(
                                "the new value of {} is not a valid {}",
                                c.field,
                                kind.as_str()
                            ),
                        })
                    }
                    Err(e) => return Err(self.err(e)),
                }
            }
        }
        if identities.found + identities.rectified > 0 {
            out.push(identities);
        }
        if out.is_empty() {
            out.push(DatasetOutcome::new(self.dataset()));
        }
        Ok(out)
    }
}
