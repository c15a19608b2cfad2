//! The vault benchmark: the real HTTP server in-process on the embedded
//! SQLite store, loaded over loopback.

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Map, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use custos_core::blind::{blind_index, IdentityKind};
use custos_core::ids::{Collection, RecordKey, SubjectId, TenantId};
use custos_core::keys::{RootKey, SubjectKey, TenantKeys};
use custos_core::secret::{BearerSecret, Key32};
use custos_server::AppState;
use custos_store::{Principal, Vault, VaultConfig};
use rand_core::{OsRng, RngCore};

use hyper::Method;

use crate::load::LoadClient;
use crate::util::{self, Machine, Round, SplitMix};

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

/// The same packing as the store's record format (`u32 len, name, u32 len,
/// value` per field), but of the clear JSON values: what a plain table
/// would hold.
fn pack_plain(fields: &Map<String, Value>) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for (name, v) in fields {
        let bytes = serde_json::to_vec(v)?;
        out.extend_from_slice(&u32::try_from(name.len())?.to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&u32::try_from(bytes.len())?.to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    Ok(out)
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

    // ----- 1 and 2: record writes and reveals over HTTP ---------------------

    async fn writes_and_reveals(&mut self) -> anyhow::Result<()> {
        eprintln!("[1/6] record writes over HTTP, {CLIENTS} clients");
        let subjects = Arc::new(self.http_subjects(CLIENTS, "writer").await?);
        let mut rounds = Vec::new();
        for r in 0..self.plan.rounds {
            let (http, keys, subjects) = (self.http.clone(), self.keys.clone(), subjects.clone());
            let op = closure(move |c, i| {
                let (http, keys, subjects) = (http.clone(), keys.clone(), subjects.clone());
                async move {
                    let s = subjects.get(c).ok_or_else(|| anyhow!("no subject"))?;
                    let path = format!("/v1/subjects/{s}/records/profile/w{r}-{i}");
                    let body = json!({"fields": record_fields(i)});
                    http.load
                        .send_ok(c, Method::PUT, &path, &keys.write, Some(&body))
                        .await
                }
            });
            let round = util::run_for(CLIENTS, self.plan.round, op).await?;
            eprintln!("  round {}: {}", r + 1, util::per_sec(round.rate()));
            rounds.push(round);
        }
        let (med, rates, p50, p99, errors, first) = summarize(&rounds);
        self.metric(
            "1. record writes/s (HTTP PUT, 32 clients, durable group commit)",
            format!(
                "**{}** (rounds {}; latency p50 {}, p99 {})",
                util::per_sec(med),
                rounds_list(&rates),
                util::ms(p50),
                util::ms(p99)
            ),
            "≥ 5,000/s",
            med >= 5_000.0 && errors == 0,
        );
        self.error_note("record writes", errors, first);

        // Records of round 1 are what the reveals read.
        let written: Arc<Vec<u64>> = Arc::new(
            rounds
                .first()
                .map(|r| r.per_client_ok.iter().map(|n| (*n).max(1)).collect())
                .unwrap_or_default(),
        );
        eprintln!("[2/6] reveals over HTTP, {CLIENTS} clients");
        let first_subject = subjects.first().ok_or_else(|| anyhow!("no subjects"))?;
        let check = self
            .http
            .send(
                self.http
                    .client
                    .get(self.http.url(&format!(
                        "/v1/subjects/{first_subject}/records/profile/w0-0?purpose={PURPOSE}"
                    )))
                    .bearer_auth(&self.keys.reveal),
            )
            .await
            .context("checking a reveal")?;
        if check.get("masked") != Some(&Value::Bool(false)) {
            bail!("a reveal with the reveal scope came back masked: {check}");
        }
        let mut rounds = Vec::new();
        for r in 0..self.plan.rounds {
            let (http, keys, subjects, written) = (
                self.http.clone(),
                self.keys.clone(),
                subjects.clone(),
                written.clone(),
            );
            let op = closure(move |c, i| {
                let (http, keys, subjects, written) = (
                    http.clone(),
                    keys.clone(),
                    subjects.clone(),
                    written.clone(),
                );
                async move {
                    let s = subjects.get(c).ok_or_else(|| anyhow!("no subject"))?;
                    let n = written.get(c).copied().unwrap_or(1);
                    let path = format!(
                        "/v1/subjects/{s}/records/profile/w0-{}?purpose={PURPOSE}",
                        i % n
                    );
                    http.load
                        .send_ok(c, Method::GET, &path, &keys.reveal, None)
                        .await
                }
            });
            let round = util::run_for(CLIENTS, self.plan.round, op).await?;
            eprintln!("  round {}: {}", r + 1, util::per_sec(round.rate()));
            rounds.push(round);
        }
        let (med, rates, p50, p99, errors, first) = summarize(&rounds);
        self.metric(
            "2. reveals/s (HTTP GET ?purpose=, 32 clients, audited)",
            format!(
                "**{}** (rounds {}; latency p50 {}, p99 {})",
                util::per_sec(med),
                rounds_list(&rates),
                util::ms(p50),
                util::ms(p99)
            ),
            "≥ 20,000/s",
            med >= 20_000.0 && errors == 0,
        );
        self.error_note("reveals", errors, first);

        // Diagnostic: the same loads with 4× the clients. If throughput grows
        // with clients while CPUs are not saturated, the bound is latency
        // (one durable group commit per round trip), not CPU.
        const MORE: usize = 4 * CLIENTS;
        let (http, keys, subjects2) = (self.http.clone(), self.keys.clone(), subjects.clone());
        let op = closure(move |c, i| {
            let (http, keys, subjects) = (http.clone(), keys.clone(), subjects2.clone());
            async move {
                let s = subjects
                    .get(c % CLIENTS)
                    .ok_or_else(|| anyhow!("no subject"))?;
                let path = format!("/v1/subjects/{s}/records/profile/x{c}-{i}");
                let body = json!({"fields": record_fields(i)});
                http.load
                    .send_ok(c, Method::PUT, &path, &keys.write, Some(&body))
                    .await
            }
        });
        let w = util::run_for(MORE, self.plan.round, op).await?;
        let (http, keys, subjects2) = (self.http.clone(), self.keys.clone(), subjects.clone());
        let op = closure(move |c, i| {
            let (http, keys, subjects, written) = (
                http.clone(),
                keys.clone(),
                subjects2.clone(),
                written.clone(),
            );
            async move {
                let s = subjects
                    .get(c % CLIENTS)
                    .ok_or_else(|| anyhow!("no subject"))?;
                let n = written.get(c % CLIENTS).copied().unwrap_or(1);
                let path = format!(
                    "/v1/subjects/{s}/records/profile/w0-{}?purpose={PURPOSE}",
                    i % n
                );
                http.load
                    .send_ok(c, Method::GET, &path, &keys.reveal, None)
                    .await
            }
        });
        let r = util::run_for(MORE, self.plan.round, op).await?;
        eprintln!(
            "  with {MORE} clients: writes {}, reveals {}",
            util::per_sec(w.rate()),
            util::per_sec(r.rate())
        );
        self.notes.push(format!(
            "concurrency probe (1 round each, {MORE} instead of {CLIENTS} clients): record writes {} (p50 {}), reveals {} (p50 {}), errors {}. Throughput that grows with clients means each request's latency, i.e. waiting for a durable group commit, is the bound (Little's law: rate = clients ÷ latency).",
            util::per_sec(w.rate()),
            util::ms(util::percentile(&w.lat_us, 50.0)),
            util::per_sec(r.rate()),
            util::ms(util::percentile(&r.lat_us, 50.0)),
            w.errors + r.errors,
        ));
        Ok(())
    }

    fn error_note(&mut self, what: &str, errors: u64, first: Option<String>) {
        if errors > 0 {
            self.notes.push(format!(
                "{what}: {errors} failed requests (counted as FAIL); first: {}",
                first.unwrap_or_default()
            ));
        }
    }

    // ----- 5: erasure, 10,000 records vs 1 ---------------------------------

    async fn erasure(&mut self) -> anyhow::Result<()> {
        let k = self.plan.erasures;
        let big_n = self.plan.big_records;
        eprintln!("[3/6] erasure: {k} subjects with {big_n} records vs {k} with 1");
        let big = Arc::new(self.http_subjects(k, "erase-big").await?);
        let small = self.http_subjects(k, "erase-small").await?;
        // Filled through the Vault API directly (faster than HTTP, same rows).
        let (vault, p) = (self.vault.clone(), Arc::new(self.principal.clone()));
        let coll = Collection::parse("orders")?;
        let fill_start = Instant::now();
        let op = {
            let (big, vault, p, coll) = (big.clone(), vault.clone(), p.clone(), coll.clone());
            closure(move |_, n| {
                let (big, vault, p, coll) = (big.clone(), vault.clone(), p.clone(), coll.clone());
                async move {
                    let s = big
                        .get((n / big_n) as usize)
                        .ok_or_else(|| anyhow!("no subject"))?;
                    let id = SubjectId::parse(s)?;
                    let key = RecordKey::parse(&format!("o{}", n % big_n))?;
                    vault
                        .subjects()
                        .put_record(&p, &id, &coll, &key, &record_fields(n))
                        .await?;
                    Ok(())
                }
            })
        };
        let fill = util::run_count(CLIENTS, big_n * k as u64, op).await?;
        if fill.errors > 0 {
            bail!(
                "filling big subjects failed: {}",
                fill.first_error.unwrap_or_default()
            );
        }
        for s in &small {
            let id = SubjectId::parse(s)?;
            vault
                .subjects()
                .put_record(&p, &id, &coll, &RecordKey::parse("o0")?, &record_fields(0))
                .await?;
        }
        eprintln!(
            "  filled {} records in {:.1} s",
            util::thousands(fill.ok),
            fill_start.elapsed().as_secs_f64()
        );
        let count = |s: String| {
            let pool = self.vault.read_pool().clone();
            async move {
                let row = sqlx::query("SELECT COUNT(*) FROM records WHERE subject = $1")
                    .bind(s)
                    .fetch_one(&pool)
                    .await?;
                Ok::<i64, anyhow::Error>(row.try_get(0)?)
            }
        };
        for s in big.iter() {
            let n = count(s.clone()).await?;
            if n != big_n as i64 {
                bail!("subject {s} has {n} records, expected {big_n}");
            }
        }
        let mut big_us = Vec::new();
        let mut small_us = Vec::new();
        for (b, s) in big.iter().zip(&small) {
            for (id, out) in [(b, &mut big_us), (s, &mut small_us)] {
                let t = Instant::now();
                let v = self
                    .http
                    .send(
                        self.http
                            .client
                            .delete(self.http.url(&format!("/v1/subjects/{id}")))
                            .bearer_auth(&self.keys.erase)
                            .json(&json!({"reason": "subject_request"})),
                    )
                    .await
                    .context("erasing a subject")?;
                out.push(t.elapsed().as_micros() as f64);
                if v.get("erased_at").is_none() {
                    bail!("unexpected erasure answer {v}");
                }
            }
        }
        // The ciphertext stays (crypto-shredding); the key is gone.
        let left = match big.first() {
            Some(s) => count(s.clone()).await?,
            None => 0,
        };
        let (mb, ms) = (util::median(&big_us), util::median(&small_us));
        let ratio = if ms > 0.0 { mb / ms } else { f64::INFINITY };
        self.metric(
            "5. erasure time, 10,000 records ÷ 1 record (HTTP DELETE)",
            format!(
                "**{ratio:.2}×** (median {} vs {}, {k} subjects each)",
                util::ms_f(mb),
                util::ms_f(ms)
            ),
            "≤ 2×",
            ratio <= 2.0,
        );
        self.notes.push(format!(
            "erasure: a big subject still has {left} record rows after erasure — they are ciphertext under a deleted key (crypto-shredding), so erasure cost does not grow with records; all erasure times: big {:?} ms, small {:?} ms",
            big_us.iter().map(|x| (x / 10.0).round() / 100.0).collect::<Vec<_>>(),
            small_us.iter().map(|x| (x / 10.0).round() / 100.0).collect::<Vec<_>>(),
        ));
        Ok(())
    }

    // ----- 6: encryption cost vs plain SQLite ------------------------------

    async fn encryption_cost(&mut self) -> anyhow::Result<()> {
        eprintln!("[4/6] encryption cost: Subjects::put_record vs plain SQLite, {CLIENTS} tasks");
        let subjects: Arc<Vec<SubjectId>> = Arc::new(
            self.http_subjects(CLIENTS, "enc")
                .await?
                .iter()
                .map(|s| SubjectId::parse(s))
                .collect::<Result<_, _>>()?,
        );
        let coll = Collection::parse("profile")?;
        let sample = record_fields(1);
        let plain_bytes = pack_plain(&sample)?.len();
        let mut vault_rounds = Vec::new();
        for r in 0..self.plan.rounds {
            let (vault, p, subjects, coll) = (
                self.vault.clone(),
                Arc::new(self.principal.clone()),
                subjects.clone(),
                coll.clone(),
            );
            let op = closure(move |c, i| {
                let (vault, p, subjects, coll) =
                    (vault.clone(), p.clone(), subjects.clone(), coll.clone());
                async move {
                    let s = subjects.get(c).ok_or_else(|| anyhow!("no subject"))?;
                    let key = RecordKey::parse(&format!("e{r}-{i}"))?;
                    vault
                        .subjects()
                        .put_record(&p, s, &coll, &key, &record_fields(i))
                        .await?;
                    Ok(())
                }
            });
            let round = util::run_for(CLIENTS, self.plan.round, op).await?;
            eprintln!("  vault round {}: {}", r + 1, util::per_sec(round.rate()));
            vault_rounds.push(round);
        }
        let stored: i64 = sqlx::query("SELECT LENGTH(fields) FROM records WHERE rkey = 'e0-1'")
            .fetch_optional(self.vault.read_pool())
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(0);

        // Plain SQLite: same schema and settings, clear bytes, same 32
        // concurrent tasks, the same group-commit model as the vault's writer.
        let plain = sqlite_pool(&self.dir.path().join("plain.db"), 1).await?;
        sqlx::query(
            "CREATE TABLE records (subject TEXT NOT NULL, collection TEXT NOT NULL, rkey TEXT NOT NULL, \
             tenant TEXT NOT NULL, fields BLOB NOT NULL, updated_us INTEGER NOT NULL, \
             PRIMARY KEY (subject, collection, rkey))",
        )
        .execute(&plain)
        .await?;
        let (tx, rx) = mpsc::channel::<PlainJob>(8192);
        let writer = tokio::spawn(plain_writer(plain.clone(), rx));
        let mut plain_rounds = Vec::new();
        for r in 0..self.plan.rounds {
            let (tx, subjects) = (tx.clone(), subjects.clone());
            let op = closure(move |c, i| {
                let (tx, subjects) = (tx.clone(), subjects.clone());
                async move {
                    let s = subjects.get(c).ok_or_else(|| anyhow!("no subject"))?;
                    let (reply, answer) = oneshot::channel();
                    tx.send(PlainJob {
                        subject: s.to_string(),
                        rkey: format!("e{r}-{i}"),
                        fields: pack_plain(&record_fields(i))?,
                        reply,
                    })
                    .await
                    .map_err(|_| anyhow!("plain writer stopped"))?;
                    answer.await?.map_err(|e| anyhow!(e))
                }
            });
            let round = util::run_for(CLIENTS, self.plan.round, op).await?;
            eprintln!(
                "  plain (group commit) round {}: {}",
                r + 1,
                util::per_sec(round.rate())
            );
            plain_rounds.push(round);
        }
        drop(tx);
        writer.await?;

        // Informational: the naive plain model, one autocommit per insert.
        let naive = sqlite_pool(&self.dir.path().join("plain-naive.db"), 4).await?;
        sqlx::query(
            "CREATE TABLE records (subject TEXT NOT NULL, collection TEXT NOT NULL, rkey TEXT NOT NULL, \
             tenant TEXT NOT NULL, fields BLOB NOT NULL, updated_us INTEGER NOT NULL, \
             PRIMARY KEY (subject, collection, rkey))",
        )
        .execute(&naive)
        .await?;
        let op = {
            let (pool, subjects) = (naive.clone(), subjects.clone());
            closure(move |c, i| {
                let (pool, subjects) = (pool.clone(), subjects.clone());
                async move {
                    let s = subjects.get(c).ok_or_else(|| anyhow!("no subject"))?;
                    insert_plain(
                        &pool,
                        &s.to_string(),
                        &format!("n-{i}"),
                        pack_plain(&record_fields(i))?,
                    )
                    .await?;
                    Ok(())
                }
            })
        };
        let naive_round = util::run_for(CLIENTS, self.plan.round, op).await?;
        naive.close().await;

        // Diagnostic: cost of one statement round trip through sqlx's Any
        // driver to its SQLite worker thread, as the vault's writer pays for
        // every statement of a batch (writer.rs).
        let rt_us = statement_round_trip(&self.dir.path().join("plain.db")).await?;
        self.notes.push(format!(
            "writer cost per statement: a `SAVEPOINT`/`RELEASE` round trip through sqlx's Any driver to the SQLite worker thread takes {rt_us:.1} µs here (mean of 2,000 pairs in one transaction); `writer::run_batch` runs one statement per data-changing job (savepoints only when a failed job forces a rerun), one multi-row INSERT for the batch's audit entries and the head update, then the commit (fsync only for batches that change data)."
        ));
        plain.close().await;

        let (vmed, vrates, _, vp99, verr, vfirst) = summarize(&vault_rounds);
        let (pmed, prates, _, pp99, perr, pfirst) = summarize(&plain_rounds);
        let ratio = if pmed > 0.0 { vmed / pmed } else { 0.0 };
        self.metric(
            "6. encryption cost: vault field writes/s ÷ plain SQLite inserts/s",
            format!(
                "**{ratio:.2}** (vault {} [rounds {}, p99 {}] vs plain {} [rounds {}, p99 {}]; 4 fields, {plain_bytes} B clear → {stored} B sealed per record)",
                util::per_sec(vmed),
                rounds_list(&vrates),
                util::ms(vp99),
                util::per_sec(pmed),
                rounds_list(&prates),
                util::ms(pp99),
            ),
            "≥ 0.3",
            ratio >= 0.3 && verr == 0 && perr == 0,
        );
        self.error_note("vault direct writes", verr, vfirst);
        self.error_note("plain writes", perr, pfirst);
        self.notes.push(format!(
            "encryption cost: the vault side is `Subjects::put_record` called in-process (no HTTP) by {CLIENTS} tasks; the plain side is {CLIENTS} tasks feeding one sqlx writer that commits each queued batch in one transaction (the vault writer's model, minus encryption, savepoints and the audit chain). For reference, plain SQLite with one autocommit (one fsync) per insert on a 4-connection pool did {} ({} errors) — the vault is {:.1}× faster than that naive model.",
            util::per_sec(naive_round.rate()),
            naive_round.errors,
            if naive_round.rate() > 0.0 { vmed / naive_round.rate() } else { 0.0 },
        ));
        Ok(())
    }

    // ----- 3 and 4: lookups ------------------------------------------------

    async fn lookups(&mut self) -> anyhow::Result<()> {
        let tk = self
            .vault
            .keystore()
            .tenant_keys(&self.root, &self.tenant)
            .await?
            .ok_or_else(|| anyhow!("tenant keys missing"))?;
        let tk = Arc::new(tk);
        let seeded = Arc::new(AtomicU64::new(0));
        let missing = Arc::new(Mutex::new(Vec::<u64>::new()));

        eprintln!(
            "[5/6] seeding {} subjects (Subjects::create sample, then bulk)",
            util::thousands(self.plan.speedup_subjects)
        );
        // Sample the API's own seeding rate first.
        let next = Arc::new(AtomicU64::new(0));
        let op = {
            let (vault, p, next, missing) = (
                self.vault.clone(),
                Arc::new(self.principal.clone()),
                next.clone(),
                missing.clone(),
            );
            closure(move |_, _| {
                let (vault, p, next, missing) =
                    (vault.clone(), p.clone(), next.clone(), missing.clone());
                async move {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let r = vault
                        .subjects()
                        .create(&p, None, &[(IdentityKind::Email, email_of(i))])
                        .await;
                    if r.is_err() {
                        if let Ok(mut m) = missing.lock() {
                            m.push(i);
                        }
                    }
                    r.map(|_| ()).map_err(Into::into)
                }
            })
        };
        let sample = util::run_for(64, self.plan.create_sample, op).await?;
        let created = next.load(Ordering::Relaxed);
        seeded.store(created, Ordering::Relaxed);
        let api_rate = sample.rate();
        eprintln!(
            "  Subjects::create: {} (64 tasks) → 1M would take {:.0} min",
            util::per_sec(api_rate),
            1_000_000.0 / api_rate.max(1.0) / 60.0
        );
        let bulk_start = Instant::now();
        self.bulk_seed(&tk, created, self.plan.speedup_subjects)
            .await?;
        let bulk1 = bulk_start.elapsed();
        let bulk_rate = (self.plan.speedup_subjects - created) as f64 / bulk1.as_secs_f64();
        eprintln!(
            "  bulk seeded to {} in {:.1} s ({})",
            util::thousands(self.plan.speedup_subjects),
            bulk1.as_secs_f64(),
            util::per_sec(bulk_rate)
        );
        let missing: Vec<u64> = missing.lock().map(|m| m.clone()).unwrap_or_default();
        self.notes.push(format!(
            "seeding: `Subjects::create` with 64 concurrent tasks managed {} ({} created, {} failed{}) — each call waits for two durable group commits (the wrapped subject key in the key store, `KeyStore::put_subject_key`, then the subject row in the data store), so 1,000,000 subjects would take ≈{:.0} min. The rest were bulk-inserted at {} with the rows `Subjects::create` writes (subjects + identities in data.db, subject_keys in keys.db), built with the same custos-core calls (SubjectKey::generate, blind_index over the tenant's blind-index key, seal_identity, wrap_subject_key) in 10,000-row transactions.",
            util::per_sec(api_rate),
            util::thousands(created),
            sample.errors,
            sample.first_error.map(|e| format!(": {e}")).unwrap_or_default(),
            1_000_000.0 / api_rate.max(1.0) / 60.0,
            util::per_sec(bulk_rate),
        ));

        // 4: speedup at 100k.
        eprintln!("[6/6] lookups");
        let n = self.plan.speedup_subjects;
        let mut rng = SplitMix::new(0x5eed);
        let pick = |rng: &mut SplitMix| loop {
            let i = rng.below(n);
            if !missing.contains(&i) {
                return i;
            }
        };
        let mut blind_us = Vec::new();
        for _ in 0..self.plan.lookups / 4 {
            let email = email_of(pick(&mut rng));
            let t = Instant::now();
            self.vault
                .subjects()
                .lookup(&self.principal, &IdentityKind::Email, &email)
                .await
                .with_context(|| format!("Subjects::lookup({email})"))?;
            blind_us.push(t.elapsed().as_micros() as u64);
        }
        // The index probe alone (no audit commit), for the report.
        let bkey = tk.blind_index_key("email");
        let mut probe_us = Vec::new();
        for _ in 0..self.plan.lookups / 4 {
            let email = email_of(pick(&mut rng));
            let t = Instant::now();
            let norm = IdentityKind::Email.normalise(&email)?;
            let blind = blind_index(&bkey, &norm);
            let row = sqlx::query(
                "SELECT subject FROM identities WHERE tenant = $1 AND kind = $2 AND blind = $3",
            )
            .bind(TENANT)
            .bind("email")
            .bind(blind.to_vec())
            .fetch_optional(self.vault.read_pool())
            .await?;
            probe_us.push(t.elapsed().as_micros() as u64);
            if row.is_none() {
                bail!("probe did not find {email}");
            }
        }
        let http_100k = self
            .http_lookups(n, self.plan.lookups / 2, &missing)
            .await?;
        // Decrypt-and-scan: once cold (subject keys fetched from the key
        // store), then warm (all keys cached) — the warm one is the baseline.
        self.vault.clear_key_cache();
        let scan = |email: String| {
            let (vault, p) = (self.vault.clone(), self.principal.clone());
            async move {
                let t = Instant::now();
                let r = vault
                    .lookup_by_scan(&p, &IdentityKind::Email, &email)
                    .await?;
                if r.is_none() {
                    bail!("scan did not find {email}");
                }
                Ok::<f64, anyhow::Error>(t.elapsed().as_micros() as f64)
            }
        };
        // The cold scan looks for an address nobody has, so it reads (and
        // caches) every subject key; the warm ones then find real subjects.
        let cold = {
            let t = Instant::now();
            let r = self
                .vault
                .lookup_by_scan(
                    &self.principal,
                    &IdentityKind::Email,
                    "nobody@bench.example",
                )
                .await?;
            if r.is_some() {
                bail!("scan found a subject that does not exist");
            }
            t.elapsed().as_micros() as f64
        };
        let mut warm = Vec::new();
        for _ in 0..self.plan.scans {
            warm.push(scan(email_of(pick(&mut rng))).await?);
        }
        let scan_med = util::median(&warm);
        let blind_med = util::percentile(&blind_us, 50.0) as f64;
        let probe_med = util::percentile(&probe_us, 50.0) as f64;
        let ratio = scan_med / blind_med.max(1.0);
        self.metric(
            "4. lookup speedup at 100,000 subjects: Vault::lookup_by_scan ÷ Subjects::lookup (median)",
            format!(
                "**{}×** (scan {} vs blind-index lookup {}; {} warm scans)",
                util::thousands(ratio.round() as u64),
                util::ms_f(scan_med),
                util::ms_f(blind_med),
                self.plan.scans
            ),
            "≥ 1,000×",
            ratio >= 1_000.0,
        );
        self.notes.push(format!(
            "lookup speedup: `Subjects::lookup` includes the (lazily flushed) commit of its audit entry; the index probe alone (HMAC + `SELECT … WHERE tenant, kind, blind` on the read pool) has median {} → scan ÷ probe = {}×. Cold full scan (every subject key fetched from the key store and unwrapped, address not found): {}. Scan timings (warm): {:?} ms. HTTP lookup at 100,000 subjects: p50 {}, p99 {}.",
            util::ms_f(probe_med),
            util::thousands((scan_med / probe_med.max(1.0)).round() as u64),
            util::ms_f(cold),
            warm.iter().map(|x| (x / 1000.0).round()).collect::<Vec<_>>(),
            util::ms(util::percentile(&http_100k, 50.0)),
            util::ms(util::percentile(&http_100k, 99.0)),
        ));

        // 3: latency at 1M (100k with --quick).
        let total = self.plan.lookup_subjects;
        if total > n {
            eprintln!("  bulk seeding to {}", util::thousands(total));
            let t = Instant::now();
            self.bulk_seed(&tk, n, total).await?;
            let secs = t.elapsed().as_secs_f64();
            eprintln!("  done in {secs:.1} s");
            self.notes.push(format!(
                "seeding to {}: {} more subjects bulk-inserted in {secs:.1} s.",
                util::thousands(total),
                util::thousands(total - n)
            ));
        }
        let lat = if total > n {
            self.http_lookups(total, self.plan.lookups, &missing)
                .await?
        } else {
            let mut more = self
                .http_lookups(total, self.plan.lookups / 2, &missing)
                .await?;
            more.extend(http_100k);
            more
        };
        let (p50, p99) = (util::percentile(&lat, 50.0), util::percentile(&lat, 99.0));
        self.metric(
            &format!(
                "3. blind-index lookup latency over HTTP, {} subjects (1 client)",
                util::thousands(total)
            ),
            format!(
                "p50 {}, **p99 {}** ({} lookups)",
                util::ms(p50),
                util::ms(p99),
                util::thousands(lat.len() as u64)
            ),
            "p99 < 2 ms",
            p99 < 2_000,
        );
        Ok(())
    }

    /// Sequential HTTP lookups of random seeded emails (after a warm-up).
    async fn http_lookups(
        &self,
        n: u64,
        count: usize,
        missing: &[u64],
    ) -> anyhow::Result<Vec<u64>> {
        let mut rng = SplitMix::new(n ^ 0xC0FFEE);
        let mut lat = Vec::with_capacity(count);
        for k in 0..count + 50 {
            let i = rng.below(n);
            if missing.contains(&i) {
                continue;
            }
            let email = email_of(i);
            let t = Instant::now();
            let v = self
                .http
                .send(
                    self.http
                        .client
                        .get(self.http.url("/v1/subjects/lookup"))
                        .query(&[("email", email.as_str())])
                        .bearer_auth(&self.keys.lookup),
                )
                .await
                .with_context(|| format!("HTTP lookup of {email}"))?;
            let us = t.elapsed().as_micros() as u64;
            if v.get("id").is_none() {
                bail!("lookup answered {v}");
            }
            if k >= 50 {
                lat.push(us);
            }
        }
        Ok(lat)
    }

    /// Inserts subjects `from..to` exactly as `Subjects::create` would.
    async fn bulk_seed(&self, tk: &Arc<TenantKeys>, from: u64, to: u64) -> anyhow::Result<()> {
        const BATCH: u64 = 10_000;
        let data = sqlite_pool(&self.dir.path().join("data.db"), 1).await?;
        let keys = sqlite_pool(&self.dir.path().join("keys").join("keys.db"), 1).await?;
        let mut start = from;
        // Rows of the next batch are built on a blocking thread while the
        // current one is inserted.
        let build = |a: u64, b: u64| {
            let tk = tk.clone();
            tokio::task::spawn_blocking(move || build_rows(&tk, a, b))
        };
        let mut pending = (start < to).then(|| build(start, (start + BATCH).min(to)));
        while let Some(job) = pending.take() {
            let rows = job.await??;
            start = (start + BATCH).min(to);
            if start < to {
                pending = Some(build(start, (start + BATCH).min(to)));
            }
            insert_rows(&data, &keys, &rows).await?;
        }
        data.close().await;
        keys.close().await;
        Ok(())
    }
}

/// What `Subjects::create` stores for one subject.
struct SeedRow {
    id: String,
    blind: Vec<u8>,
    value_ct: Vec<u8>,
    wrapped: Vec<u8>,
}

fn build_rows(tk: &TenantKeys, from: u64, to: u64) -> anyhow::Result<Vec<SeedRow>> {
    let bkey = tk.blind_index_key("email");
    let mut out = Vec::with_capacity((to - from) as usize);
    for i in from..to {
        let id = SubjectId::generate(&mut OsRng);
        let dek = SubjectKey::generate(tk.tenant.clone(), id, &mut OsRng);
        let norm = IdentityKind::Email.normalise(&email_of(i))?;
        let blind = blind_index(&bkey, &norm);
        let value_ct = dek.seal_identity("email", norm.expose().as_bytes(), &mut OsRng);
        let wrapped = tk.wrap_subject_key(&id, dek.key(), &mut OsRng);
        out.push(SeedRow {
            id: id.to_string(),
            blind: blind.to_vec(),
            value_ct,
            wrapped,
        });
    }
    Ok(out)
}

async fn insert_rows(data: &SqlitePool, keys: &SqlitePool, rows: &[SeedRow]) -> anyhow::Result<()> {
    const CHUNK: usize = 200;
    let now = custos_store::now_us();
    let mut kt = keys.begin().await?;
    for chunk in rows.chunks(CHUNK) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO subject_keys (subject, tenant, kek_version, wrapped) ");
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.id.as_str())
                .push_bind(TENANT)
                .push_bind(1i64)
                .push_bind(r.wrapped.as_slice());
        });
        q.build().execute(&mut *kt).await?;
    }
    kt.commit().await?;
    let mut dt = data.begin().await?;
    for chunk in rows.chunks(CHUNK) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO subjects (id, tenant, external_id, created_us) ");
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.id.as_str())
                .push_bind(TENANT)
                .push_bind(None::<String>)
                .push_bind(now);
        });
        q.build().execute(&mut *dt).await?;
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO identities (tenant, kind, blind, subject, value_ct) ");
        q.push_values(chunk, |mut b, r| {
            b.push_bind(TENANT)
                .push_bind("email")
                .push_bind(r.blind.as_slice())
                .push_bind(r.id.as_str())
                .push_bind(r.value_ct.as_slice());
        });
        q.build().execute(&mut *dt).await?;
    }
    dt.commit().await?;
    Ok(())
}

struct PlainJob {
    subject: String,
    rkey: String,
    fields: Vec<u8>,
    reply: oneshot::Sender<Result<(), String>>,
}

const PLAIN_INSERT: &str = "INSERT INTO records (subject, collection, rkey, tenant, fields, updated_us) \
     VALUES ($1, 'profile', $2, 'bench', $3, $4) \
     ON CONFLICT (subject, collection, rkey) DO UPDATE SET fields = excluded.fields, updated_us = excluded.updated_us";

async fn insert_plain(
    pool: &SqlitePool,
    subject: &str,
    rkey: &str,
    fields: Vec<u8>,
) -> anyhow::Result<()> {
    sqlx::query(PLAIN_INSERT)
        .bind(subject)
        .bind(rkey)
        .bind(fields)
        .bind(custos_store::now_us())
        .execute(pool)
        .await?;
    Ok(())
}

/// Group commit without the vault: take what is queued (≤ 512, like the
/// vault's writer), insert it in one transaction, answer after the commit.
async fn plain_writer(pool: SqlitePool, mut rx: mpsc::Receiver<PlainJob>) {
    let mut batch = Vec::with_capacity(512);
    while rx.recv_many(&mut batch, 512).await > 0 {
        let jobs = std::mem::take(&mut batch);
        let r = async {
            let mut tx = pool.begin().await?;
            let now = custos_store::now_us();
            for j in &jobs {
                sqlx::query(PLAIN_INSERT)
                    .bind(j.subject.as_str())
                    .bind(j.rkey.as_str())
                    .bind(j.fields.as_slice())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<(), sqlx::Error>(())
        }
        .await
        .map_err(|e| e.to_string());
        for j in jobs {
            let _ = j.reply.send(r.clone());
        }
    }
}

/// Mean µs of one statement through sqlx's Any driver (the vault's), in a
/// transaction, on a SQLite file with the store's settings.
async fn statement_round_trip(path: &Path) -> anyhow::Result<f64> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                use sqlx::Executor;
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = FULL").await?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                Ok(())
            })
        })
        .connect(&sqlite_url(path))
        .await?;
    let mut tx = pool.begin().await?;
    let n = 2_000u32;
    let t = Instant::now();
    for _ in 0..n {
        sqlx::query("SAVEPOINT job").execute(&mut *tx).await?;
        sqlx::query("RELEASE SAVEPOINT job")
            .execute(&mut *tx)
            .await?;
    }
    let us = t.elapsed().as_micros() as f64 / f64::from(2 * n);
    tx.commit().await?;
    pool.close().await;
    Ok(us)
}
