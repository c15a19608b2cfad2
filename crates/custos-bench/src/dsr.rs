//! `custos-bench dsr`: data-subject requests end to end over HTTP on the
//! embedded store. A sample application (an SQLite database of 6 tables of
//! 1,000,000 rows each, indexed on the person's columns; 100 files of the
//! person on disk; one processor that confirms every notice at once by a
//! signed callback) is searched and erased through the request executor.
//!
//! * access: `POST /v1/requests` (vouched) → status `completed` with the
//!   archive built; the median of several people.
//! * erasure: the same → `completed` after the verification step.
//! * concurrency: many access requests at once until all complete; the
//!   process's peak RSS (VmHWM) before and after.

// Only JSON lookups by key are indexed here: serde_json yields Null for a
// missing key, it never panics.
#![allow(clippy::indexing_slicing)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use custos_core::keys::RootKey;
use custos_core::secret::{BearerSecret, Key32};
use custos_dsr::ExecutorConfig;
use custos_map::{MapOrigin, MapSource};
use custos_server::AppState;
use custos_store::{Vault, VaultConfig};
use serde_json::{json, Value};
use sqlx::Connection as _;

use crate::util::{median, Machine};

/// Sizes of one run.
pub(crate) struct Plan {
    rows: u64,
    files: usize,
    people: usize,
    concurrent: usize,
}

impl Plan {
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Self {
                rows: 100_000,
                files: 100,
                people: 5,
                concurrent: 100,
            }
        } else {
            Self {
                rows: 1_000_000,
                files: 100,
                people: 9,
                concurrent: 1000,
            }
        }
    }
}

/// Figures of one run.
pub(crate) struct Outcome {
    machine: Machine,
    rows: u64,
    files: usize,
    setup_s: f64,
    access_ms: Vec<f64>,
    access_rows: u64,
    erasure_ms: Vec<f64>,
    erasure_rows: u64,
    concurrent: usize,
    concurrent_s: f64,
    rss_before_mb: f64,
    rss_peak_mb: f64,
}

const TABLES: &[(&str, &str)] = &[
    ("profiles", "user_id"),
    ("orders", "customer_id"),
    ("comments", "author_id"),
    ("events", "user_id"),
    ("addresses", "user_id"),
];

fn map_yaml(processor_url: &str) -> String {
    let mut s = format!(
        r#"version: 1
organisation: {{ controller: Bench GmbH, contact: privacy@bench.example }}
purposes:
  - {{ id: account, title: Account, legal_basis: contract, subjects: [customer] }}
  - {{ id: billing, title: Billing, legal_basis: legal_obligation, basis_reference: "§147 AO", subjects: [customer] }}
processors:
  - id: crm
    name: CRM Ltd.
    role: processor
    country: IE
    dpa: {{ status: signed, date: "2024-01-01" }}
    notify: {{ url: "{processor_url}" }}
    # A processor played on this host over plain HTTP.
    allow_insecure_loopback: true
    purposes: [account]
systems:
  - id: vault
    kind: vault
    datasets:
      - id: profiles
        collection: profiles
        subject: {{ identity: subject_id }}
        purposes: [account]
        erasure: shred
        retention: {{ period: 30d, from_event: account_closed }}
        fields:
          - {{ name: subject_id, category: user.unique_id, identity: subject_id }}
  - id: app
    kind: sqlite
    connection: {{ path_env: BENCH_APP_DB }}
    datasets:
      - id: users
        table: users
        subject: {{ identity: email }}
        purposes: [account]
        erasure: delete
        retention: {{ period: 30d, from_event: account_closed }}
        fields:
          - {{ name: id, category: user.unique_id, identity: user_id, primary_key: true }}
          - {{ name: email, category: user.contact.email, identity: email }}
          - {{ name: name, category: user.name }}
"#
    );
    for (t, col) in TABLES {
        let erasure = if *t == "orders" {
            "\n        erasure: { retain: { ground: \"§147 AO\", period: 10y, from_event: order_date } }"
        } else {
            "\n        erasure: delete\n        retention: { period: 30d, from_event: account_closed }"
        };
        s.push_str(&format!(
            r#"      - id: {t}
        table: {t}
        subject: {{ via: {col} }}
        purposes: [{purpose}]{erasure}
        fields:
          - {{ name: id, category: system.operations, primary_key: true }}
          - {{ name: {col}, category: user.unique_id, references: users.id }}
          - {{ name: body, category: user.content.private }}
"#,
            purpose = if *t == "orders" { "billing" } else { "account" },
        ));
    }
    s.push_str(
        r#"  - id: uploads
    kind: files
    connection: { root_env: BENCH_FILES }
    datasets:
      - id: avatars
        path: "avatars/{user_id}/*"
        subject: { identity: user_id }
        purposes: [account]
        erasure: delete
        retention: { period: 30d, from_event: account_closed }
        fields:
          - { name: user_id, category: user.unique_id, identity: user_id, references: app.users.id }
          - { name: image, category: user.content.self_image }
  - id: crm_api
    kind: http
    processor: crm
    datasets:
      - id: contacts
        endpoint: "/contacts/{email}"
        subject: { identity: email }
        purposes: [account]
        erasure: delete
        retention: { period: 2y, from_event: contract_end }
        fields:
          - { name: email, category: user.contact.email, identity: email }
"#,
    );
    s
}

/// Builds the application database with recursive CTEs (fast inside SQLite).
async fn fill_app_db(path: &std::path::Path, rows: u64) -> anyhow::Result<()> {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut c = sqlx::SqliteConnection::connect(&url).await?;
    let gen = |sql: &str| {
        format!("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) {sql}")
    };
    sqlx::raw_sql("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;")
        .execute(&mut c)
        .await?;
    sqlx::raw_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT);")
        .execute(&mut c)
        .await?;
    sqlx::query(&gen(
        "INSERT INTO users SELECT x, 'user' || x || '@example.com', 'User ' || x FROM c",
    ))
    .execute(&mut c)
    .await?;
    // The SQL connector matches emails case-insensitively: lower(email).
    sqlx::query("CREATE UNIQUE INDEX users_email ON users (lower(email))")
        .execute(&mut c)
        .await?;
    for (t, col) in TABLES {
        sqlx::query(&format!(
            "CREATE TABLE {t} (id INTEGER PRIMARY KEY, {col} INTEGER NOT NULL REFERENCES users(id), body TEXT)"
        ))
        .execute(&mut c)
        .await?;
        // Row x belongs to user (x mod rows) + 1: one row per person per table.
        sqlx::query(&gen(&format!(
            "INSERT INTO {t} SELECT x, (x % {rows}) + 1, '{t} text of row ' || x FROM c"
        )))
        .execute(&mut c)
        .await?;
        sqlx::query(&format!("CREATE INDEX {t}_{col} ON {t} ({col})"))
            .execute(&mut c)
            .await?;
    }
    sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE);")
        .execute(&mut c)
        .await?;
    c.close().await?;
    Ok(())
}

/// The processor: accepts every notice and confirms it at once.
async fn processor(secret: &'static str) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let app = axum::Router::new().route(
        "/notices",
        axum::routing::post(move |body: axum::body::Bytes| {
            let http = http.clone();
            async move {
                let notice: Value = serde_json::from_slice(&body).unwrap_or_default();
                let url = notice["callback_url"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                tokio::spawn(async move {
                    let body = json!({"holds_nothing_more": true}).to_string();
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    let sig =
                        custos_connectors::notice::sign(secret.as_bytes(), now, body.as_bytes());
                    match http
                        .post(url)
                        .header("custos-signature", sig)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => {}
                        Ok(r) => eprintln!(
                            "processor callback answered {}: {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        ),
                        Err(e) => eprintln!("processor callback failed: {e}"),
                    }
                });
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/notices", l.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Ok(url)
}

fn rss_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// A custos server on the embedded store in `dir` with `map` in service
/// and its executor running (defaults, as `custos serve` has them), a
/// tenant `bench` and an API key of it with the `dsr` scope.
pub(crate) struct BenchServer {
    pub(crate) api: Api,
    pub(crate) exec: custos_dsr::Running,
    pub(crate) vault: Vault,
}

impl BenchServer {
    /// `env`: the settings the map names (database URLs, secrets).
    pub(crate) async fn start(
        dir: &std::path::Path,
        map: MapSource,
        env: HashMap<String, String>,
    ) -> anyhow::Result<Self> {
        let mut root = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut root);
        let sqlite = |p: std::path::PathBuf| format!("sqlite://{}?mode=rwc", p.display());
        let vault = Vault::open(VaultConfig {
            read_connections: 8,
            erasure_ledger: Some(dir.join("erasures.ledger")),
            ..VaultConfig::new(
                sqlite(dir.join("data.db")),
                sqlite(dir.join("keys.db")),
                RootKey::new(Key32::from_bytes(root)),
            )
        })
        .await
        .context("opening the vault")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let mut cfg = ExecutorConfig::new(base.clone());
        cfg.env = env.into();
        let admin = "cadm_bench_admin_token_0123456789".to_owned();
        // The processor confirms a thousand requests from one address in a
        // burst: measured here is the engine, not the public endpoints' limits.
        let unlimited = custos_server::rate_limit::Limit::new(u32::MAX, u32::MAX);
        let state = AppState::new(vault.clone(), BearerSecret::new(admin.clone()))
            .with_map(map)
            .with_executor_config(cfg)
            .with_rate_limits(custos_server::rate_limit::RateLimits {
                archives: unlimited,
                callbacks: unlimited,
                client_ip_header: None,
                code_mails_per_tenant: unlimited,
                code_mails_per_destination: unlimited,
            });
        let exec = state.executor().spawn();
        let app = custos_server::router(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let http = reqwest::Client::new();
        let post = |path: &str, body: Value| {
            http.post(format!("{base}{path}"))
                .bearer_auth(&admin)
                .json(&body)
                .send()
        };
        post("/v1/tenants", json!({"id": "bench", "name": "Bench"})).await?;
        let key: Value = post(
            "/v1/keys",
            json!({"tenant": "bench", "scopes": ["dsr", "write"]}),
        )
        .await?
        .json()
        .await?;
        let api = Api {
            base: base.clone(),
            key: key["key"].as_str().context("api key")?.to_owned(),
            http: http.clone(),
        };
        Ok(Self { api, exec, vault })
    }
}

pub(crate) struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Api {
    pub(crate) async fn create(&self, kind: &str, email: &str) -> anyhow::Result<String> {
        let r: Value = self
            .http
            .post(format!("{}/v1/requests", self.base))
            .bearer_auth(&self.key)
            .json(&json!({"type": kind, "identity": {"email": email}, "verified_by_app": true}))
            .send()
            .await?
            .json()
            .await?;
        r["id"].as_str().map(str::to_owned).context("no request id")
    }

    /// Polls every `every` until the request completes (or `limit`).
    pub(crate) async fn wait(
        &self,
        id: &str,
        every: Duration,
        limit: Duration,
    ) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let r: Value = self
                .http
                .get(format!("{}/v1/requests/{id}", self.base))
                .bearer_auth(&self.key)
                .send()
                .await?
                .json()
                .await?;
            match r["status"].as_str() {
                Some("completed") => return Ok(r),
                Some("failed" | "rejected") => bail!("request failed: {r}"),
                _ if started.elapsed() > limit => {
                    bail!("request not completed after {limit:?}: {r}")
                }
                _ => tokio::time::sleep(every).await,
            }
        }
    }
}

fn rows_touched(r: &Value) -> u64 {
    rows_in(r, |s| s["system"] == "app")
}

/// Rows found in every system of a completed request.
pub(crate) fn rows_found(r: &Value) -> u64 {
    rows_in(r, |_| true)
}

fn rows_in(r: &Value, step: impl Fn(&Value) -> bool) -> u64 {
    r["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| step(s))
        .flat_map(|s| {
            s["result"]["datasets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|d| d["found"].as_u64().unwrap_or(0))
        .sum()
}

pub(crate) async fn run(plan: Plan) -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let machine = Machine::probe(dir.path())?;
    let t = Instant::now();
    eprintln!(
        "building the application database ({} rows × 6 tables)…",
        plan.rows
    );
    let app_db = dir.path().join("app.db");
    fill_app_db(&app_db, plan.rows).await?;
    let files = dir.path().join("files");
    let people = plan.people * 2 + plan.concurrent;
    for user in 1..=people {
        let d = files.join(format!("avatars/{user}"));
        std::fs::create_dir_all(&d)?;
        for f in 0..plan.files {
            std::fs::write(d.join(format!("img{f}.jpg")), vec![0x42u8; 1024])?;
        }
    }
    let setup_s = t.elapsed().as_secs_f64();

    const SECRET: &str = "bench-processor-secret";
    let processor_url = processor(SECRET).await?;
    let map_file = dir.path().join("map.yaml");
    std::fs::write(&map_file, map_yaml(&processor_url))?;
    let (map, _) =
        MapSource::load(MapOrigin::File(map_file)).map_err(|e| anyhow::anyhow!("{e}"))?;

    let env = HashMap::from([
        ("BENCH_APP_DB".to_owned(), app_db.display().to_string()),
        ("BENCH_FILES".to_owned(), files.display().to_string()),
        (custos_dsr::processor_secret_var("crm"), SECRET.to_owned()),
    ]);
    let BenchServer { api, exec, vault } = BenchServer::start(dir.path(), map, env).await?;

    eprintln!("access requests…");
    let mut access_ms = Vec::new();
    let mut access_rows = 0;
    for i in 1..=plan.people {
        let t = Instant::now();
        let id = api
            .create("access", &format!("user{i}@example.com"))
            .await?;
        let r = api
            .wait(&id, Duration::from_millis(2), Duration::from_secs(60))
            .await?;
        access_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        access_rows = rows_touched(&r);
    }
    eprintln!("erasure requests…");
    let mut erasure_ms = Vec::new();
    let mut erasure_rows = 0;
    for i in plan.people + 1..=plan.people * 2 {
        let t = Instant::now();
        let id = api
            .create("erasure", &format!("user{i}@example.com"))
            .await?;
        let r = api
            .wait(&id, Duration::from_millis(2), Duration::from_secs(60))
            .await?;
        erasure_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        erasure_rows = rows_touched(&r);
        if !std::fs::read_dir(files.join(format!("avatars/{i}")))
            .map(|mut d| d.next().is_none())
            .unwrap_or(true)
        {
            bail!("erasure left files of user {i}");
        }
    }

    eprintln!("{} concurrent access requests…", plan.concurrent);
    let rss_before_mb = rss_kib("VmRSS:") / 1024.0;
    let t = Instant::now();
    let api = Arc::new(api);
    let mut tasks = Vec::new();
    for i in plan.people * 2 + 1..=people {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let id = api
                .create("access", &format!("user{i}@example.com"))
                .await?;
            // Clients poll twice a second: a thousand of them polling every
            // 2 ms would measure the polling, not the work.
            api.wait(&id, Duration::from_millis(500), Duration::from_secs(1200))
                .await
                .map(|_| ())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let concurrent_s = t.elapsed().as_secs_f64();
    let rss_peak_mb = rss_kib("VmHWM:") / 1024.0;
    exec.stop().await;
    vault.close().await;
    Ok(Outcome {
        machine,
        rows: plan.rows,
        files: plan.files,
        setup_s,
        access_ms,
        access_rows,
        erasure_ms,
        erasure_rows,
        concurrent: plan.concurrent,
        concurrent_s,
        rss_before_mb,
        rss_peak_mb,
    })
}

pub(crate) fn render(o: &Outcome, quick: bool) -> String {
    let m = &o.machine;
    let cmd = if quick {
        "cargo run --release -p custos-bench -- dsr --quick"
    } else {
        "cargo run --release -p custos-bench -- dsr"
    };
    let max = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let am = median(&o.access_ms);
    let em = median(&o.erasure_ms);
    format!(
        "# custos data-subject request benchmark\n\n\
         `{cmd}` — commit {git}, {nproc} cores ({cpu}), {kernel}, load {load}, \
         fsync p50 {f50} µs.\n\n\
         Sample application: SQLite database, 6 tables × {rows} rows (indexed on the \
         person's columns), {files} files of the person on disk, one processor that \
         confirms each notice by a signed callback. Built in {setup:.1} s.\n\n\
         | figure | median | max | target |\n|---|---|---|---|\n\
         | access request, end to end (archive built) | {am:.0} ms | {amax:.0} ms | < 500 ms {aok} |\n\
         | erasure request, end to end (verified) | {em:.0} ms | {emax:.0} ms | < 1000 ms {eok} |\n\n\
         Rows of the person found per request in the application database: access {ar}, erasure {er}.\n\n\
         {n} concurrent access requests: all completed in {cs:.1} s ({rate:.1} requests/s); \
         resident memory {rb:.0} MiB before, peak (VmHWM, whole process incl. setup) {rp:.0} MiB.\n",
        git = m.git,
        nproc = m.nproc,
        cpu = m.cpu,
        kernel = m.kernel,
        load = m.loadavg,
        f50 = m.fsync_p50_us,
        rows = crate::util::thousands(o.rows),
        files = o.files,
        setup = o.setup_s,
        amax = max(&o.access_ms),
        emax = max(&o.erasure_ms),
        aok = if am < 500.0 { "✔" } else { "✘" },
        eok = if em < 1000.0 { "✔" } else { "✘" },
        ar = o.access_rows,
        er = o.erasure_rows,
        n = o.concurrent,
        cs = o.concurrent_s,
        rate = o.concurrent as f64 / o.concurrent_s.max(1e-9),
        rb = o.rss_before_mb,
        rp = o.rss_peak_mb,
    )
}
