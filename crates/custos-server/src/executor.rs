//! The request executor: a background task in every server that plans
//! verified requests from the data map, claims their steps as durable jobs
//! (leases in the database, so any number of servers share the work and a
//! crashed server's steps are taken over when its lease runs out), runs
//! each step through its connector, and moves requests on until they
//! complete with a signed record.
//!
//! * Planning first learns every identity of the person: the request's
//!   own, the vault subject's, and what the application's SQL databases
//!   reveal (an email leads to `users.id`), repeated until nothing new
//!   appears. The result is sealed into the request for the later steps.
//! * Steps are idempotent, so running one twice (lease taken over after a
//!   crash) changes nothing more.
//! * Access and portability requests end with an archive built by running
//!   every connector's access again, so no personal data waits in the
//!   database between steps.
//! * Connection settings come from environment variables the map names;
//!   [`ExecutorConfig::env`] may override them (tests).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use custos_connectors::archive::{self, ArchiveInput};
use custos_connectors::files::FileConnector;
use custos_connectors::notice::{self, Notice, ProcessorRecords};
use custos_connectors::redis_cache::RedisConnector;
use custos_connectors::sql::SqlConnector;
use custos_connectors::{
    plan_steps, Connector, ConnectorError, DatasetOutcome, Export, FieldChange, Person, StepKind,
};
use custos_core::blind::IdentityKind as VaultIdentity;
use custos_core::ids::{Collection, Purpose, RecordKey, SubjectId};
use custos_core::request::{RequestStatus, RequestType};
use custos_core::secret::Personal;
use custos_map::{DataMap, IdentityKind, Notify, System, SystemKind};
use custos_store::{
    ClaimedStep, NewStep, PendingRequest, Principal, StepEnd, StepStatus, StoreError, Vault,
};

use crate::mail::Delivery;
use crate::AppState;

/// How the executor runs.
#[derive(Clone)]
pub struct ExecutorConfig {
    /// Names this worker in step leases.
    pub owner: String,
    /// How long a claimed step is ours before another worker may take it.
    pub lease: Duration,
    /// Pause between rounds when there is no work.
    pub idle: Duration,
    /// Base URL processors call back (`https://custos.example`).
    pub public_url: String,
    /// Connection settings by variable name, consulted before the process
    /// environment.
    pub env: Arc<HashMap<String, String>>,
    /// First retry delay of a failed step; doubles per attempt, capped at
    /// 10 minutes.
    pub retry_base: Duration,
    /// Steps run at once by this worker.
    pub parallel: usize,
    /// Open SQL connectors (pool + catalog), reused for [`SQL_CACHE_TTL`].
    sql_cache: Arc<std::sync::Mutex<SqlCache>>,
}

/// Open SQL connectors by (the system's definition in the map, tenant):
/// the tenant's anonymisation key is part of a connector, and a changed
/// definition (map reload) gets a new one.
type SqlCache = HashMap<(String, String), (std::time::Instant, Arc<SqlConnector>)>;

/// How long an SQL connector (and the catalog it read) is reused; a schema
/// change of the application is seen after at most this long.
pub const SQL_CACHE_TTL: Duration = Duration::from_secs(60);

impl std::fmt::Debug for ExecutorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Settings may hold passwords: names only.
        f.debug_struct("ExecutorConfig")
            .field("owner", &self.owner)
            .field("lease", &self.lease)
            .field("public_url", &self.public_url)
            .field("parallel", &self.parallel)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ExecutorConfig {
    /// Defaults: a random owner, 5 minute leases, 200 ms idle pause.
    pub fn new(public_url: impl Into<String>) -> Self {
        Self {
            owner: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            lease: Duration::from_secs(300),
            idle: Duration::from_millis(200),
            public_url: public_url.into(),
            env: Arc::new(HashMap::new()),
            retry_base: Duration::from_secs(1),
            parallel: 4,
            sql_cache: Arc::default(),
        }
    }

    /// A connection setting: the override, else the process environment.
    pub fn var(&self, name: &str) -> Option<String> {
        self.env
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    }
}

/// What a request knows of the person while it runs; sealed in the store.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct Payload {
    /// Identity kind (`email`, `user_id`, …) → values.
    #[serde(default)]
    pub(crate) identities: BTreeMap<String, Vec<String>>,
    /// Rectification: field → new value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) changes: BTreeMap<String, String>,
}

impl Payload {
    pub(crate) fn seal(&self) -> Personal<Vec<u8>> {
        Personal::new(serde_json::to_vec(self).unwrap_or_default())
    }

    fn open(p: &Personal<Vec<u8>>) -> Self {
        serde_json::from_slice(p.expose()).unwrap_or_default()
    }
}

/// A running executor.
pub struct Executor {
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Executor {
    /// Starts the executor on `state`'s vault and map.
    pub fn spawn(state: AppState, cfg: ExecutorConfig) -> Self {
        let stop = Arc::new(tokio::sync::Notify::new());
        let s2 = stop.clone();
        let task = tokio::spawn(async move {
            let mut last_sweep = std::time::Instant::now();
            loop {
                let worked = match round(&state, &cfg).await {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::warn!(error = %e, "request executor round failed");
                        false
                    }
                };
                if last_sweep.elapsed() > Duration::from_secs(60) {
                    last_sweep = std::time::Instant::now();
                    if let Err(e) = state.vault.sweep_archives().await {
                        tracing::warn!(error = %e, "archive sweep failed");
                    }
                }
                if !worked {
                    tokio::select! {
                        _ = s2.notified() => return,
                        _ = tokio::time::sleep(cfg.idle) => {}
                    }
                }
            }
        });
        Self { stop, task }
    }

    /// Stops after the step in hand (its lease lapses if it was cut short).
    pub async fn stop(self) {
        self.stop.notify_one();
        self.task.abort();
        let _ = self.task.await;
    }
}

/// One round: plan, run ready steps, move requests on. Returns whether
/// anything was done.
pub async fn round(state: &AppState, cfg: &ExecutorConfig) -> Result<bool, StoreError> {
    let planned = plan_verified(state, cfg).await?;
    let ran = run_ready_steps(state, cfg, 50).await?;
    move_requests_on(state, cfg).await?;
    Ok(planned + ran > 0)
}

/// Plans every verified request (up to 20 a round); returns how many.
pub async fn plan_verified(state: &AppState, cfg: &ExecutorConfig) -> Result<usize, StoreError> {
    let mut n = 0;
    for req in state.vault.requests_to_plan(20).await? {
        match plan(state, cfg, &req).await {
            Ok(()) => n += 1,
            Err(e) => tracing::warn!(request = %req.id, error = %e, "could not plan request"),
        }
    }
    Ok(n)
}

/// Claims and runs up to `max` ready steps, [`ExecutorConfig::parallel`]
/// at a time; returns how many ran.
pub async fn run_ready_steps(
    state: &AppState,
    cfg: &ExecutorConfig,
    max: usize,
) -> Result<usize, StoreError> {
    let lease = i64::try_from(cfg.lease.as_micros()).unwrap_or(i64::MAX);
    let mut n = 0;
    while n < max {
        let mut claimed = Vec::new();
        while claimed.len() < cfg.parallel.max(1) && n + claimed.len() < max {
            match state.vault.claim_step(&cfg.owner, lease).await? {
                Some(c) => claimed.push(c),
                None => break,
            }
        }
        if claimed.is_empty() {
            break;
        }
        n += claimed.len();
        let ends = futures_util::future::join_all(claimed.iter().map(|c| async move {
            let end = run_step(state, cfg, c).await;
            state.vault.end_step(c, end).await
        }))
        .await;
        for e in ends {
            match e {
                // Our lease was taken over meanwhile (or a processor
                // confirmed first): the other answer stands.
                Ok(()) | Err(StoreError::Request(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(n)
}

/// Moves open requests on from their steps (and builds access archives).
pub async fn move_requests_on(state: &AppState, cfg: &ExecutorConfig) -> Result<(), StoreError> {
    for req in state.vault.requests_in_progress(200).await? {
        if let Err(e) = progress(state, cfg, &req).await {
            tracing::warn!(request = %req.id, error = %e, "could not move request on");
        }
    }
    Ok(())
}

fn principal(req_tenant: &custos_core::ids::TenantId) -> Result<Principal, StoreError> {
    Principal::executor(req_tenant.clone())
}

fn map_of(state: &AppState) -> Arc<DataMap> {
    state.map.current().unwrap_or_else(|| Arc::new(empty_map()))
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
async fn payload_of(state: &AppState, req: &PendingRequest) -> Result<Payload, StoreError> {
    Ok(state
        .vault
        .request_payload(&req.tenant, &req.id)
        .await?
        .map(|p| Payload::open(&p))
        .unwrap_or_default())
}

/// Everything known of the person: payload, vault subject.
async fn person_of(
    state: &AppState,
    req: &PendingRequest,
) -> Result<(Person, Payload), StoreError> {
    let payload = payload_of(state, req).await?;
    let mut person = Person::from_sealable(&payload.identities);
    if let Some(s) = &req.subject {
        person.add(IdentityKind::SubjectId, s);
        if let Ok(id) = SubjectId::parse(s) {
            let p = principal(&req.tenant)?;
            match state.vault.export(&p, &id, None).await {
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

/// A system's connector, by kind.
enum Reach {
    Sql(Arc<SqlConnector>),
    Files(FileConnector),
    Redis(RedisConnector),
    Vault(VaultReach),
}

async fn reach(
    state: &AppState,
    cfg: &ExecutorConfig,
    map: &DataMap,
    sys: &System,
    req: &PendingRequest,
) -> Result<Reach, ConnectorError> {
    let env = |n: &str| cfg.var(n);
    Ok(match sys.kind {
        SystemKind::Postgres | SystemKind::Sqlite | SystemKind::Mysql => {
            let key = state
                .vault
                .anonymization_key(&req.tenant)
                .await
                .map_err(|e| unavailable(sys, &e))?;
            let cache_key = (
                serde_json::to_string(sys).unwrap_or_default(),
                req.tenant.to_string(),
            );
            let cached = lock(&cfg.sql_cache)
                .get(&cache_key)
                .filter(|(at, _)| at.elapsed() < SQL_CACHE_TTL)
                .map(|(_, c)| c.clone());
            match cached {
                Some(c) => Reach::Sql(c),
                None => {
                    let c = Arc::new(SqlConnector::connect(map, sys, &env, *key.expose()).await?);
                    let mut cache = lock(&cfg.sql_cache);
                    cache.retain(|_, (at, _)| at.elapsed() < SQL_CACHE_TTL);
                    cache.insert(cache_key, (std::time::Instant::now(), c.clone()));
                    Reach::Sql(c)
                }
            }
        }
        SystemKind::Files => Reach::Files(FileConnector::connect(sys, &env)?),
        SystemKind::Redis => Reach::Redis(RedisConnector::connect(sys, &env)?),
        SystemKind::Vault => Reach::Vault(VaultReach {
            vault: state.vault.clone(),
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

fn unavailable(sys: &System, e: &StoreError) -> ConnectorError {
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
    async fn identify(&self, p: &Person) -> Result<Person, ConnectorError> {
        dispatch!(self, c => c.identify(p).await)
    }
    async fn plan_erasure(&self, p: &Person) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        dispatch!(self, c => c.plan_erasure(p).await)
    }
    async fn access(&self, p: &Person) -> Result<Vec<Export>, ConnectorError> {
        dispatch!(self, c => c.access(p).await)
    }
    async fn erase(&self, p: &Person) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        dispatch!(self, c => c.erase(p).await)
    }
    async fn rectify(
        &self,
        p: &Person,
        ch: &[FieldChange],
    ) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        dispatch!(self, c => c.rectify(p, ch).await)
    }
}

/// The vault as a connector: one subject, shredded on erasure.
struct VaultReach {
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
            match self.vault.subject(&self.principal, id).await {
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
        let x = match self.vault.export(&self.principal, id, None).await {
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
            match self.vault.erase(&self.principal, id, &reason).await {
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
        let x = match self.vault.export(&self.principal, id, None).await {
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
                        *old = json!(c.value.expose());
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
                let now = x.identities.get(kind.as_str());
                let same = kind
                    .normalise(c.value.expose())
                    .ok()
                    .zip(now)
                    .is_some_and(|(n, cur)| n.expose() == cur);
                identities.found += u64::from(now.is_some());
                if same {
                    continue;
                }
                match self
                    .vault
                    .rectify_identity(&self.principal, id, &kind, c.value.expose())
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

/// Plans a verified request.
async fn plan(
    state: &AppState,
    cfg: &ExecutorConfig,
    req: &PendingRequest,
) -> Result<(), StoreError> {
    let map = map_of(state);
    let (mut person, mut payload) = person_of(state, req).await?;
    // Learn identities from the SQL databases until nothing new appears.
    for _ in 0..4 {
        let mut grew = false;
        for sys in map.systems.iter().filter(|s| s.kind.is_sql()) {
            let found = match reach(state, cfg, &map, sys, req).await {
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
    let steps = plan_steps(&map, req.kind)
        .into_iter()
        .map(|s| NewStep {
            kind: s.kind.as_str().to_owned(),
            system: s.system.map(|x| x.0),
            processor: s.processor.map(|x| x.0),
            title: s.title,
        })
        .collect();
    state
        .vault
        .plan_request(req, Some(&payload.seal()), steps)
        .await
}

fn backoff(cfg: &ExecutorConfig, attempts: i64) -> i64 {
    // base, 2×base, 4×base … capped at 10 minutes.
    let base = cfg.retry_base.as_micros() as i64;
    (base << attempts.clamp(1, 16).saturating_sub(1)).min(600_000_000)
}

fn fail(cfg: &ExecutorConfig, e: &ConnectorError, attempts: i64) -> StepEnd {
    if e.is_transient() {
        StepEnd::Retry {
            error: e.to_string(),
            delay_us: backoff(cfg, attempts),
        }
    } else {
        StepEnd::Failed(e.to_string())
    }
}

fn outcomes_json(system: &str, v: &[DatasetOutcome]) -> Value {
    json!({ "system": system, "datasets": v })
}

async fn run_step(state: &AppState, cfg: &ExecutorConfig, c: &ClaimedStep) -> StepEnd {
    let req = PendingRequest {
        tenant: c.tenant.clone(),
        id: c.request,
        kind: c.request_type,
        subject: c.subject.clone(),
    };
    let map = map_of(state);
    let (person, payload) = match person_of(state, &req).await {
        Ok(x) => x,
        Err(e) => {
            return StepEnd::Retry {
                error: e.to_string(),
                delay_us: backoff(cfg, c.attempts),
            }
        }
    };
    let sys = c
        .system
        .as_deref()
        .and_then(|id| map.systems.iter().find(|s| s.id.as_str() == id));
    match StepKind::parse(&c.kind) {
        Some(StepKind::Connector) => {
            let Some(sys) = sys else {
                return StepEnd::Failed("the system is no longer in the data map".into());
            };
            let r = match reach(state, cfg, &map, sys, &req).await {
                Ok(r) => r,
                Err(e) => return fail(cfg, &e, c.attempts),
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
                            value: Personal::new(v.clone()),
                        })
                        .collect();
                    r.rectify(&person, &changes).await
                }
                RequestType::Restriction => restrict(state, &req, sys).await,
                RequestType::Objection => object(state, &map, &req, sys).await,
            };
            match res {
                Ok(v) => StepEnd::Done(outcomes_json(sys.id.as_str(), &v)),
                Err(e) => fail(cfg, &e, c.attempts),
            }
        }
        Some(StepKind::ProcessorNotice) => send_processor_notice(cfg, &map, c, &person).await,
        Some(StepKind::EmailNotice) => email_notice(state, cfg, &map, c, &person).await,
        Some(StepKind::Verify) => verify_erasure(state, cfg, &map, &req, &person).await,
        Some(StepKind::Manual) | None => StepEnd::Waiting {
            processor: false,
            result: json!({}),
        },
    }
}

/// The dataset the vault's outcomes are reported under: the map's first.
fn vault_dataset(sys: &System) -> custos_map::DatasetId {
    sys.datasets
        .first()
        .map(|d| d.id.clone())
        .unwrap_or_else(|| "subjects".into())
}

/// The request's vault subject, if its identity matched one.
fn subject_of(req: &PendingRequest) -> Option<SubjectId> {
    req.subject
        .as_deref()
        .and_then(|s| SubjectId::parse(s).ok())
}

/// Restriction (Art. 18) in the vault: the subject is marked restricted,
/// so reveals answer only for legal claims and storage.
async fn restrict(
    state: &AppState,
    req: &PendingRequest,
    sys: &System,
) -> Result<Vec<DatasetOutcome>, ConnectorError> {
    let mut o = DatasetOutcome::new(vault_dataset(sys));
    if let Some(id) = subject_of(req) {
        let p = principal(&req.tenant).map_err(|e| unavailable(sys, &e))?;
        match state.vault.set_restriction(&p, &id, true).await {
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
    state: &AppState,
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
        let Some(rule) = crate::routes::consent::rule_of(purpose) else {
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
        match state
            .vault
            .record_consent(&actor, &req.tenant, &id, &rule, &input, &[])
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

/// The HMAC secret shared with a processor: `CUSTOS_PROCESSOR_SECRET_<ID>`
/// (id upper-cased, `-` → `_`).
pub fn processor_secret_var(processor: &str) -> String {
    format!(
        "CUSTOS_PROCESSOR_SECRET_{}",
        processor.to_ascii_uppercase().replace(['-', '.'], "_")
    )
}

async fn send_processor_notice(
    cfg: &ExecutorConfig,
    map: &DataMap,
    c: &ClaimedStep,
    person: &Person,
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
    let Some(secret) = cfg.var(&var) else {
        return StepEnd::Retry {
            error: format!(
                "environment variable {var} (the processor's signing secret) is not set"
            ),
            delay_us: backoff(cfg, c.attempts),
        };
    };
    let n = Notice {
        request_id: c.request.to_string(),
        step: u32::try_from(c.step).unwrap_or(u32::MAX),
        request_type: c.request_type,
        identities: person.to_sealable(),
        callback_url: format!(
            "{}/v1/processor-callbacks/{}/{}",
            cfg.public_url.trim_end_matches('/'),
            c.request,
            c.step
        ),
        issued_at: time::OffsetDateTime::now_utc(),
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    match notice::send_notice(&client, url, secret.as_bytes(), &n).await {
        Ok(status) => StepEnd::Waiting {
            processor: true,
            result: json!({ "processor": pid, "notice_status": status }),
        },
        Err(e) => StepEnd::Retry {
            error: e.to_string(),
            delay_us: backoff(cfg, c.attempts),
        },
    }
}

/// An email notice to a recipient: sent through the mailer (SMTP or the
/// development outbox), or left to a person when no mail transport is
/// configured.
async fn email_notice(
    state: &AppState,
    cfg: &ExecutorConfig,
    map: &DataMap,
    c: &ClaimedStep,
    person: &Person,
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
    let Some(to) = to.filter(|_| state.mailer.is_configured()) else {
        return manual();
    };
    // The recipient needs the identities to find the person; the message
    // goes only to the address the map names for this processor.
    let identities: String = person
        .to_sealable()
        .iter()
        .map(|(k, vs)| format!("  {k}: {}\r\n", vs.join(", ")))
        .collect();
    let subject = format!(
        "Data-subject request {} ({})",
        c.request,
        c.request_type.as_str()
    );
    let body = format!(
        "We received a {kind} request (reference {req}, step {step}) from the person identified by:\r\n\
         {identities}\r\nPlease act on the data you hold for us about this person, as our agreement \
         provides, and confirm to our privacy contact.\r\n",
        req = c.request,
        kind = c.request_type.as_str(),
        step = c.step,
    );
    let stem = format!("{}-step{}", c.request, c.step);
    match state.mailer.send(&to, &subject, &body, &stem).await {
        Ok(Delivery::Delivered) => StepEnd::Done(json!({ "processor": pid, "notified": "email" })),
        Ok(Delivery::NotConfigured) => manual(),
        // The error names a kind only, never the address or the message.
        Err(e) => StepEnd::Retry {
            error: e.to_string(),
            delay_us: backoff(cfg, c.attempts),
        },
    }
}

/// Searches every store again after an erasure: nothing may remain that
/// the map says to delete or anonymise.
async fn verify_erasure(
    state: &AppState,
    cfg: &ExecutorConfig,
    map: &DataMap,
    req: &PendingRequest,
    person: &Person,
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
        {
            continue;
        }
        let r = match reach(state, cfg, map, sys, req).await {
            Ok(r) => r,
            Err(e) => return fail(cfg, &e, 1),
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
            Err(e) => return fail(cfg, &e, 1),
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

/// Moves a request on; for access and portability, builds the archive
/// once every connector step is done.
async fn progress(
    state: &AppState,
    cfg: &ExecutorConfig,
    req: &PendingRequest,
) -> Result<(), StoreError> {
    let mut archive_pending = false;
    let steps = state.vault.steps_of(&req.tenant, &req.id).await?;
    if matches!(req.kind, RequestType::Access | RequestType::Portability) {
        let connectors_done = steps
            .iter()
            .filter(|s| s.kind == StepKind::Connector.as_str())
            .all(|s| s.status == StepStatus::Done);
        if connectors_done && !state.vault.has_archive(&req.tenant, &req.id).await? {
            archive_pending = !build_archive(state, cfg, req, &steps).await?;
        }
    }
    if archive_pending {
        // Look again next round.
        return Ok(());
    }
    // The address to send the receipt to must be read before the request
    // closes: closing wipes the payload.
    let all_done = !steps.is_empty() && steps.iter().all(|s| s.status == StepStatus::Done);
    let receipt_to = if all_done {
        receipt_address(state, req).await?
    } else {
        None
    };
    let before = state.vault.request_status(&req.tenant, &req.id).await?;
    let after = state.vault.advance_request(req).await?;
    if after == before {
        state.vault.touch_request(req).await?;
    }
    if let (RequestStatus::Completed, false, Some(to)) =
        (after, before == RequestStatus::Completed, receipt_to)
    {
        send_receipt(state, cfg, req, &to, &steps).await;
    }
    Ok(())
}

/// Where the person gets the receipt (and, for access, the download link):
/// the email address they gave, when they verified it with a one-time
/// code and mail can be sent. A request the application vouched for is
/// answered by the application, which fetches both through the API.
async fn receipt_address(
    state: &AppState,
    req: &PendingRequest,
) -> Result<Option<String>, StoreError> {
    if !state.mailer.is_configured() {
        return Ok(None);
    }
    let info = state
        .vault
        .get_request(&principal(&req.tenant)?, &req.id)
        .await?;
    if info.verification != "code" {
        return Ok(None);
    }
    let payload = payload_of(state, req).await?;
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
    state: &AppState,
    cfg: &ExecutorConfig,
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
        match state.vault.archive_link(&p, &req.id).await {
            Ok(link) => body.push_str(&format!(
                "\r\nYour data: {}/v1/archives/{}\r\nThe link works once and expires at {}; \
                 the archive is deleted after 7 days.\r\n",
                cfg.public_url.trim_end_matches('/'),
                link.token.expose(),
                link.expires_at
            )),
            Err(e) => {
                tracing::warn!(request = %req.id, error = %e, "no archive link for the receipt")
            }
        }
    }
    if let Ok(record) = state.vault.completion(&p, &req.id).await {
        body.push_str(&format!(
            "\r\nReceipt (the signed completion record; it names systems and counts, \
             never your data):\r\n{record}\r\n"
        ));
    }
    let subject = format!("Your {} request {} is complete", req.kind.as_str(), req.id);
    let stem = format!("{}-receipt", req.id);
    if let Err(e) = state.mailer.send(to, &subject, &body, &stem).await {
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
        match &d.retained_ground {
            Some(g) => parts.push(format!("{} kept ({g})", d.retained)),
            None => parts.push(format!("{} kept", d.retained)),
        }
    }
    format!("{} {}", d.dataset, parts.join(", "))
}

async fn build_archive(
    state: &AppState,
    cfg: &ExecutorConfig,
    req: &PendingRequest,
    steps: &[custos_store::StepInfo],
) -> Result<bool, StoreError> {
    let map = map_of(state);
    let (person, _) = person_of(state, req).await?;
    let mut systems = Vec::new();
    for s in steps
        .iter()
        .filter(|s| s.kind == StepKind::Connector.as_str())
    {
        let Some(sys) = s
            .system
            .as_deref()
            .and_then(|id| map.systems.iter().find(|x| x.id.as_str() == id))
        else {
            continue;
        };
        let exports = match reach(state, cfg, &map, sys, req).await {
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
    for (step, processor, answer) in state.vault.processor_answers(&req.tenant, &req.id).await? {
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
            s.kind != StepKind::Connector.as_str()
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
            state
                .vault
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

/// A dry run: the plan of a request and, per connector system, what
/// erasure would touch or what access would find. Changes nothing.
pub async fn dry_run(
    state: &AppState,
    cfg: &ExecutorConfig,
    req: &PendingRequest,
) -> Result<Value, StoreError> {
    let map = map_of(state);
    let (mut person, _) = person_of(state, req).await?;
    for sys in map.systems.iter().filter(|s| s.kind.is_sql()) {
        if let Ok(r) = reach(state, cfg, &map, sys, req).await {
            if let Ok(more) = r.identify(&person).await {
                person.merge(&more);
            }
        }
    }
    let mut out = Vec::new();
    for s in plan_steps(&map, req.kind) {
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
            let counted = match reach(state, cfg, &map, sys, req).await {
                Ok(r) => r.plan_erasure(&person).await,
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_vault_only_map_is_valid_and_reaches_the_vault() {
        let m = custos_map::load_str(super::VAULT_ONLY_MAP, "builtin");
        assert!(m.is_ok(), "{m:?}");
        let steps = custos_connectors::plan_steps(
            &super::empty_map(),
            custos_core::request::RequestType::Erasure,
        );
        assert_eq!(steps.len(), 2, "{steps:?}");
    }
}
