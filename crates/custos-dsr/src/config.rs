//! How the executor runs: leases, retries, parallelism, the URL processors
//! call back, and the connection settings the map names.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use custos_connectors::sql::SqlConnector;
use custos_core::ids::TenantId;
use custos_map::{System, SystemId};

/// How the executor runs.
#[derive(Clone)]
pub struct ExecutorConfig {
    /// Names this worker in step leases.
    pub owner: String,
    /// How long a claimed step is ours before another worker may take it.
    pub lease: Duration,
    /// Longest pause between rounds without work. A change that gives the
    /// executor work wakes it at once (see `Execution::wait_for_work`);
    /// this pause only bounds how late it sees what no change announces
    /// (a retry coming due, another worker's lease running out).
    pub idle: Duration,
    /// Base URL processors call back (`https://custos.example`).
    pub public_url: String,
    /// The settings the map names (`url_env: APP_DATABASE_URL`, a
    /// processor's signing secret).
    pub env: NamedSettings,
    /// First retry delay of a failed step; doubles per attempt, capped at
    /// 10 minutes.
    pub retry_base: Duration,
    /// Steps run at once by this worker.
    pub parallel: usize,
    /// Open SQL connectors (pool + catalog), reused for [`SQL_CACHE_TTL`].
    pub(crate) sql_cache: Arc<std::sync::Mutex<SqlCache>>,
}

/// Open SQL connectors by (system, tenant): the tenant's anonymisation key
/// is part of a connector. Each entry keeps the system's definition it was
/// made from, so a changed definition (map reload) gets a new connector.
pub(crate) type SqlCache = HashMap<(SystemId, TenantId), CachedSql>;

/// One open SQL connector and what it was made from.
pub(crate) struct CachedSql {
    /// When it was opened.
    pub(crate) at: std::time::Instant,
    /// The system's definition in the map it was opened for.
    pub(crate) system: System,
    /// The connector.
    pub(crate) connector: Arc<SqlConnector>,
}

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
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

impl ExecutorConfig {
    /// Defaults: a random owner, 5 minute leases, at most 1 s between rounds
    /// without work.
    pub fn new(public_url: impl Into<String>) -> Self {
        Self {
            owner: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            lease: Duration::from_secs(300),
            idle: Duration::from_secs(1),
            public_url: public_url.into(),
            env: NamedSettings::default(),
            retry_base: Duration::from_secs(1),
            parallel: 4,
            sql_cache: Arc::default(),
        }
    }

    /// A connection setting named by the map.
    pub fn var(&self, name: &str) -> Option<String> {
        self.env.get(name)
    }
}

/// Where the settings a data map names come from. The map names them
/// (`connection: { url_env: APP_DATABASE_URL }`), so they cannot be flags:
/// the binary hands in a lookup in its environment, tests and the demo a
/// fixed table. This crate reads no environment itself. `Debug` shows no
/// names or values.
#[derive(Clone)]
pub struct NamedSettings {
    lookup: Arc<Lookup>,
}

/// Looks a setting up by its name.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

impl NamedSettings {
    /// Settings looked up by `lookup` when a step needs them (so a changed
    /// value is seen without a restart).
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            lookup: Arc::new(lookup),
        }
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }
}

impl Default for NamedSettings {
    /// No settings at all.
    fn default() -> Self {
        Self::from_fn(|_| None)
    }
}

impl From<HashMap<String, String>> for NamedSettings {
    fn from(table: HashMap<String, String>) -> Self {
        Self::from_fn(move |name| table.get(name).cloned())
    }
}

impl std::fmt::Debug for NamedSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be passwords; names may say too much of a deployment.
        f.write_str("NamedSettings")
    }
}

/// The HMAC secret shared with a processor: `CUSTOS_PROCESSOR_SECRET_<ID>`
/// (id upper-cased, `-` → `_`).
pub fn processor_secret_var(processor: &str) -> String {
    format!(
        "CUSTOS_PROCESSOR_SECRET_{}",
        processor.to_ascii_uppercase().replace(['-', '.'], "_")
    )
}
