//! The vault benchmark: the real HTTP server in-process on the embedded
//! SQLite store, loaded over loopback. This module sets the run up (the
//! store, the server, keys and the shared helpers); the measurements are
//! in `rounds` (record writes, reveals, erasure), `encryption` (the vault
//! against plain SQLite), `lookups` (blind index against decrypt-and-scan,
//! on subjects from `seed`), and `report` renders the outcome.

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Map, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use custos_core::ids::TenantId;
use custos_core::keys::RootKey;
use custos_core::secret::{BearerSecret, Key32};
use custos_server::AppState;
use custos_store::{Principal, Vault, VaultConfig};
use rand_core::{OsRng, RngCore};

use crate::load::LoadClient;
use crate::util::{self, Machine, Round};

mod encryption;
mod lookups;
mod report;
mod rounds;
mod seed;

pub(crate) use report::render;

/// Concurrent HTTP clients for the throughput figures.
const CLIENTS: usize = 32;
/// Tenant of the benchmark.
const TENANT: &str = "bench";
/// Purpose declared on reveals.
const PURPOSE: &str = "support";

/// Sizes and durations of one run.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) quick: bool,
    /// Length of one throughput round.
    pub(crate) round: Duration,
    /// Rounds per throughput figure (the median is reported).
    pub(crate) rounds: usize,
    /// Subjects for the lookup-latency figure.
    pub(crate) lookup_subjects: u64,
    /// Subjects for the lookup-speedup figure.
    pub(crate) speedup_subjects: u64,
    /// Sequential lookups per latency figure.
    pub(crate) lookups: usize,
    /// Warm decrypt-and-scan lookups.
    pub(crate) scans: usize,
    /// Subjects erased per size.
    pub(crate) erasures: usize,
    /// Records of a "big" subject.
    pub(crate) big_records: u64,
    /// How long `Subjects::create` is sampled before bulk seeding.
    pub(crate) create_sample: Duration,
}

impl Plan {
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                round: Duration::from_secs(2),
                rounds: 3,
                lookup_subjects: 100_000,
                speedup_subjects: 100_000,
                lookups: 1_000,
                scans: 3,
                erasures: 3,
                big_records: 10_000,
                create_sample: Duration::from_secs(2),
            }
        } else {
            Self {
                quick,
                round: Duration::from_secs(4),
                rounds: 5,
                lookup_subjects: 1_000_000,
                speedup_subjects: 100_000,
                lookups: 2_000,
                scans: 5,
                erasures: 5,
                big_records: 10_000,
                create_sample: Duration::from_secs(3),
            }
        }
    }
}

/// One line of the result table.
#[derive(Debug)]
pub(crate) struct Metric {
    pub(crate) name: String,
    pub(crate) figure: String,
    pub(crate) target: String,
    pub(crate) pass: bool,
}

/// Everything the report prints.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) machine: Machine,
    pub(crate) metrics: Vec<Metric>,
    pub(crate) notes: Vec<String>,
    pub(crate) elapsed: Duration,
}

struct Http {
    /// For setup calls.
    client: reqwest::Client,
    /// For the timed rounds, one connection per load client.
    load: LoadClient,
    base: String,
}

impl Http {
    async fn send(&self, rb: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let r = rb.send().await?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() {
            bail!("HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        if body.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&body)?)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

struct Keys {
    write: String,
    reveal: String,
    lookup: String,
    erase: String,
}

struct Bench {
    plan: Plan,
    dir: tempfile::TempDir,
    root: RootKey,
    vault: Vault,
    http: Arc<Http>,
    keys: Arc<Keys>,
    /// A principal with every vault scope, for direct `Vault` calls.
    principal: Principal,
    tenant: TenantId,
    notes: Vec<String>,
    metrics: Vec<Metric>,
}

fn sqlite_url(p: &Path) -> String {
    format!("sqlite://{}?mode=rwc", p.display())
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The fields of a benchmark record (a few realistic personal fields).
fn record_fields(i: u64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("name".into(), Value::String(format!("Jane Doe {i}")));
    m.insert(
        "email".into(),
        Value::String(format!("jane.doe.{i}@example.com")),
    );
    m.insert("iban".into(), Value::String("NL91ABNA0417164300".into()));
    m.insert("city".into(), Value::String("Amsterdam".into()));
    m
}

fn email_of(i: u64) -> String {
    format!("user{i}@bench.example")
}

/// A pool on a SQLite file with the settings `custos-store` gives its
/// connections (`db::connect`): WAL, `synchronous = FULL`, 10 s busy timeout.
async fn sqlite_pool(path: &Path, max: u32) -> anyhow::Result<SqlitePool> {
    let opts = SqliteConnectOptions::from_str(&sqlite_url(path))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10));
    Ok(SqlitePoolOptions::new()
        .max_connections(max)
        .connect_with(opts)
        .await?)
}

async fn new_key(http: &Http, admin: &str, scopes: &[&str]) -> anyhow::Result<String> {
    let v = http
        .send(
            http.client
                .post(http.url("/v1/keys"))
                .bearer_auth(admin)
                .json(&json!({"tenant": TENANT, "scopes": scopes})),
        )
        .await
        .context("creating an API key")?;
    v.get("key")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no key in {v}"))
}

fn closure<F, Fut>(f: F) -> Arc<F>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    Arc::new(f)
}

fn summarize(rounds: &[Round]) -> (f64, Vec<f64>, u64, u64, u64, Option<String>) {
    let rates: Vec<f64> = rounds.iter().map(Round::rate).collect();
    let lat: Vec<u64> = rounds
        .iter()
        .flat_map(|r| r.lat_us.iter().copied())
        .collect();
    let errors = rounds.iter().map(|r| r.errors).sum();
    let first = rounds.iter().find_map(|r| r.first_error.clone());
    (
        util::median(&rates),
        rates,
        util::percentile(&lat, 50.0),
        util::percentile(&lat, 99.0),
        errors,
        first,
    )
}

fn rounds_list(rates: &[f64]) -> String {
    rates
        .iter()
        .map(|r| util::thousands(r.round() as u64))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) async fn run(plan: Plan) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let dir = tempfile::Builder::new().prefix("custos-bench-").tempdir()?;
    let machine = Machine::probe(dir.path())?;
    eprintln!(
        "custos-bench vault ({}): stores in {}, fsync p50 {}",
        if plan.quick { "quick" } else { "full" },
        dir.path().display(),
        util::ms(machine.fsync_p50_us)
    );
    let mut b = Bench::start(plan, dir).await?;
    b.writes_and_reveals().await?;
    b.erasure().await?;
    b.encryption_cost().await?;
    b.lookups().await?;
    let Bench {
        vault,
        notes,
        metrics,
        dir,
        ..
    } = b;
    vault.close().await;
    drop(dir);
    let mut metrics = metrics;
    metrics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Outcome {
        machine,
        metrics,
        notes,
        elapsed: started.elapsed(),
    })
}

impl Bench {
    async fn start(plan: Plan, dir: tempfile::TempDir) -> anyhow::Result<Self> {
        let keys_dir = dir.path().join("keys");
        std::fs::create_dir_all(&keys_dir)?;
        let mut raw = [0u8; 32];
        OsRng.fill_bytes(&mut raw);
        let root = RootKey::new(Key32::from_bytes(raw));
        let vault = Vault::open(VaultConfig {
            // What `custos serve` uses (crates/custos/src/cli/store_args.rs).
            read_connections: 8,
            erasure_ledger: Some(dir.path().join("erasures.ledger")),
            ..VaultConfig::new(
                sqlite_url(&dir.path().join("data.db")),
                sqlite_url(&keys_dir.join("keys.db")),
                root.clone(),
            )
        })
        .await
        .context("opening the vault")?;
        let admin = format!("cadm_{}", random_hex(24));
        let app = custos_server::router(AppState::new(
            vault.clone(),
            BearerSecret::new(admin.clone()),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("server stopped: {e}");
            }
        });
        let http = Arc::new(Http {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .tcp_nodelay(true)
                .build()?,
            load: LoadClient::new(addr, 4 * CLIENTS),
            base: format!("http://{addr}"),
        });
        http.send(
            http.client
                .post(http.url("/v1/tenants"))
                .bearer_auth(&admin)
                .json(&json!({"id": TENANT, "name": "Benchmark"})),
        )
        .await
        .context("creating the tenant")?;
        let keys = Keys {
            write: new_key(&http, &admin, &["write"]).await?,
            reveal: new_key(&http, &admin, &["reveal"]).await?,
            lookup: new_key(&http, &admin, &["lookup"]).await?,
            erase: new_key(&http, &admin, &["erase"]).await?,
        };
        let all = new_key(&http, &admin, &["write", "reveal", "lookup", "erase"]).await?;
        let principal = vault.authenticate(&all).await?;
        Ok(Self {
            plan,
            dir,
            root,
            vault,
            http,
            keys: Arc::new(keys),
            principal,
            tenant: TenantId::parse(TENANT)?,
            notes: Vec::new(),
            metrics: Vec::new(),
        })
    }

    fn metric(&mut self, name: &str, figure: String, target: &str, pass: bool) {
        eprintln!(
            "  {name}: {figure} (target {target}) {}",
            if pass { "PASS" } else { "FAIL" }
        );
        self.metrics.push(Metric {
            name: name.into(),
            figure,
            target: target.into(),
            pass,
        });
    }

    async fn http_subjects(&self, n: usize, prefix: &str) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let v = self
                .http
                .send(
                    self.http
                        .client
                        .post(self.http.url("/v1/subjects"))
                        .bearer_auth(&self.keys.write)
                        .json(&json!({"identities": {"email": format!("{prefix}-{i}@bench.example")}})),
                )
                .await
                .context("creating a subject")?;
            out.push(
                v.get("id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("no id in {v}"))?,
            );
        }
        Ok(out)
    }

    fn error_note(&mut self, what: &str, errors: u64, first: Option<String>) {
        if errors > 0 {
            self.notes.push(format!(
                "{what}: {errors} failed requests (counted as FAIL); first: {}",
                first.unwrap_or_default()
            ));
        }
    }
}
