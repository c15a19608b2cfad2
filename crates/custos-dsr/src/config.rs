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
    /// Pause between rounds when there is no work.
    pub idle: Duration,
    /// Base URL processors call back (`https://custos.example`).
    pub public_url: String,
    /// Connection settings by the variable names the map uses
    /// (`url_env: APP_DATABASE_URL`, a processor's signing secret): the
    /// binary fills it from the process environment, tests and benchmarks
    /// give their own. Nothing else is consulted.
    pub env: Arc<HashMap<String, String>>,
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

    /// A connection setting named by the map.
    pub fn var(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
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
