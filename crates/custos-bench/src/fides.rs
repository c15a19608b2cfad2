//! `custos-bench fides`: access requests on the Fides example database, as
//! is and enlarged, the comparison issue 16 asks for.
//!
//! The Fides project's example application database
//! (`postgres_sample.sql`) and the Fides dataset that describes it are read
//! from `../shared/peers/fides/` beside the checkout (never copied into the
//! repository). A throw-away PostgreSQL server (the test kit's) holds the
//! sample; the dataset is imported into a custos map
//! (`custos_map::fides::import`, what `custos map import-fides` does) and
//! completed with what Fides does not record. Then:
//!
//! * the sample as it is: access requests for its customers;
//! * the sample enlarged to `--customers` customers (each with an address,
//!   an order and its item, a payment card, a login, a visit, a service
//!   request and a report; `ANALYZE`d), the sample's own indexes only:
//!   access requests for customers picked across the range.
//!
//! Each figure is the time from `POST /v1/requests` (vouched) to the
//! request's `completed` status with the archive built, polled every
//! millisecond, through a custos server on the embedded store whose
//! executor runs with its defaults. Fides itself is not run here; its
//! figures on the same machine come from running it separately (see
//! `bench/README.md`).

// Only JSON lookups by key are indexed here: serde_json yields Null for a
// missing key, it never panics.
#![allow(clippy::indexing_slicing)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use custos_map::{DataMap, MapOrigin, MapSource, SystemKind};
use serde_json::json;

use crate::dsr::{Api, BenchServer};
use crate::util::{median, Machine};

const FIDES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/peers/fides");
const SAMPLE_SQL: &str = "postgres_sample.sql";
const DATASET_YML: &str = "postgres_example_test_dataset.yml";

/// Sizes of one run.
pub(crate) struct Plan {
    /// Customers after enlarging.
    pub(crate) customers: u64,
    /// Access requests timed per phase.
    pub(crate) requests: usize,
}

impl Plan {
    pub(crate) fn new(quick: bool) -> Self {
        Self {
            customers: if quick { 10_000 } else { 100_000 },
            requests: if quick { 10 } else { 30 },
        }
    }
}

/// What one run measured.
pub(crate) struct Outcome {
    machine: Machine,
    customers: u64,
    setup_s: f64,
    /// Access requests on the sample as it is, ms.
    sample_ms: Vec<f64>,
    /// Access requests on the enlarged sample, ms.
    enlarged_ms: Vec<f64>,
    /// Rows found for one enlarged customer.
    rows_found: u64,
    /// Access requests on the enlarged sample with the indexes `custos map
    /// check --connect` names, ms.
    indexed_ms: Vec<f64>,
    /// Those indexes, as run.
    indexes: Vec<String>,
}

/// Fides 2.86's median on the enlarged sample, measured on this machine
/// class when issue 16 was filed (Fides is not run here).
const FIDES_ENLARGED_MS: f64 = 1400.0;

/// The enlargement: `n` customers with one row in every table that names
/// a customer, ids above the sample's.
fn enlargement(n: u64) -> Vec<String> {
    let g = format!("FROM generate_series(1, {n}) g");
    vec![
        format!("INSERT INTO public.address (id, house, street, city, state, zip) \
                 SELECT 100000 + g, g, 'Bench Street', 'Bench City', 'BC', '00000' {g}"),
        format!("INSERT INTO public.customer (id, email, name, created, address_id) \
                 SELECT 100000 + g, 'bench-' || g || '@example.com', 'Bench ' || g, now(), 100000 + g {g}"),
        format!("INSERT INTO public.payment_card (id, name, ccn, code, preferred, customer_id, billing_address_id) \
                 SELECT 'bench-pay-' || g, 'Bench ' || g, 4000000000000000 + g, 123, true, 100000 + g, 100000 + g {g}"),
        format!("INSERT INTO public.orders (id, customer_id, shipping_address_id, payment_card_id) \
                 SELECT 'bench-ord-' || g, 100000 + g, 100000 + g, 'bench-pay-' || g {g}"),
        format!("INSERT INTO public.order_item (order_id, item_no, product_id, quantity) \
                 SELECT 'bench-ord-' || g, 1, 1, 2 {g}"),
        format!("INSERT INTO public.login (id, customer_id, time) SELECT 100000 + g, 100000 + g, now() {g}"),
        format!("INSERT INTO public.visit (email, last_visit) SELECT 'bench-' || g || '@example.com', now() {g}"),
        format!("INSERT INTO public.service_request (id, email, alt_email, opened, closed, employee_id) \
                 SELECT 'bench-sr-' || g, 'bench-' || g || '@example.com', NULL, current_date, NULL, 1 {g}"),
        format!("INSERT INTO public.report (id, email, name, year, month, total_visits) \
                 SELECT 100000 + g, 'bench-' || g || '@example.com', 'Bench ' || g, 2026, 1, 3 {g}"),
        "ANALYZE".to_owned(),
    ]
}

/// The imported map, completed with what a Fides dataset does not carry
/// (controller, purposes, retention), as a user completes it.
fn completed_map(dataset_yml: &str) -> anyhow::Result<DataMap> {
    let out = custos_map::fides::import(&[(DATASET_YML, dataset_yml)], SystemKind::Postgres)
        .map_err(|d| anyhow::anyhow!("the Fides import failed: {d:?}"))?;
    let mut map = out.map;
    map.organisation.controller = "Example Cookie Shop Inc.".into();
    map.organisation.contact = "privacy@cookies.example".into();
    map.purposes = vec![
        serde_json::from_value(json!({"id": "sales", "title": "Selling cookies",
            "legal_basis": "contract", "subjects": ["customer"]}))?,
        serde_json::from_value(json!({"id": "staff", "title": "Employment",
            "legal_basis": "contract", "subjects": ["employee"]}))?,
    ];
    let retention: custos_map::Retention =
        serde_json::from_value(json!({"period": "3y", "from_event": "account_closed"}))?;
    for system in &mut map.systems {
        for d in &mut system.datasets {
            if d.holds_personal_data() {
                let purpose = if d.id.as_str() == "employee" {
                    "staff"
                } else {
                    "sales"
                };
                d.purposes = vec![purpose.into()];
                d.retention = Some(retention.clone());
            }
        }
    }
    Ok(map)
}

/// Times `emails`' access requests one after another.
async fn time_access(api: &Api, emails: &[String]) -> anyhow::Result<(Vec<f64>, u64)> {
    let mut ms = Vec::new();
    let mut rows = 0;
    for email in emails {
        let t = Instant::now();
        let id = api.create("access", email).await?;
        let r = api
            .wait(&id, Duration::from_millis(1), Duration::from_secs(120))
            .await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        rows = crate::dsr::rows_found(&r);
    }
    Ok((ms, rows))
}

pub(crate) async fn run(plan: Plan) -> anyhow::Result<Outcome> {
    let read = |name: &str| {
        std::fs::read_to_string(format!("{FIDES_DIR}/{name}")).with_context(|| {
            format!("reading {FIDES_DIR}/{name} (the Fides fixtures beside the checkout)")
        })
    };
    let (sql, dataset) = (read(SAMPLE_SQL)?, read(DATASET_YML)?);
    let dir = tempfile::tempdir()?;
    let machine = Machine::probe(dir.path())?;
    let t = Instant::now();
    let Some(pg) = custos_testkit::pg::server() else {
        bail!("no PostgreSQL server could be started (see the test kit's message above)");
    };
    let db_url = pg.create_database("fides_bench").await;
    let db = sqlx::PgPool::connect(&db_url).await?;
    for s in custos_testkit::pg::script_statements(&sql) {
        sqlx::raw_sql(&s)
            .execute(&db)
            .await
            .context("loading the Fides sample")?;
    }
    let map = completed_map(&dataset)?;
    let url_env = map
        .systems
        .first()
        .and_then(|s| s.connection.get("url_env"))
        .cloned()
        .context("the imported system names no url_env")?;
    let map_file = dir.path().join("fides-map.yaml");
    std::fs::write(&map_file, custos_map::yaml::to_yaml(&map))?;
    let (source, _) =
        MapSource::load(MapOrigin::File(map_file)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let server = BenchServer::start(
        dir.path(),
        source,
        HashMap::from([(url_env.clone(), db_url.clone())]),
    )
    .await?;
    let setup_sample_s = t.elapsed().as_secs_f64();

    eprintln!("access requests on the sample as it is…");
    let sample_people: Vec<String> = (0..plan.requests)
        .map(|i| format!("customer-{}@example.com", 1 + i % 2))
        .collect();
    let (sample_ms, _) = time_access(&server.api, &sample_people).await?;

    eprintln!("enlarging the sample to {} customers…", plan.customers);
    let t = Instant::now();
    for s in enlargement(plan.customers) {
        sqlx::raw_sql(&s)
            .execute(&db)
            .await
            .context("enlarging the sample")?;
    }
    let setup_s = setup_sample_s + t.elapsed().as_secs_f64();
    eprintln!("access requests on the enlarged sample…");
    let step = (plan.customers / plan.requests as u64).max(1);
    let people: Vec<String> = (0..plan.requests as u64)
        .map(|i| {
            format!(
                "bench-{}@example.com",
                1 + (i * step + step / 2) % plan.customers
            )
        })
        .collect();
    let (enlarged_ms, rows_found) = time_access(&server.api, &people).await?;

    // What a user does next: run the indexes `custos map check --connect`
    // names (the connector's own list, as that command prints it).
    let env = |n: &str| (n == url_env).then(|| db_url.clone());
    let system = map
        .systems
        .first()
        .context("the imported map has no system")?;
    let scans = custos_connectors::sql::SqlConnector::connect(&map, system, &env, [0u8; 32])
        .await?
        .scans();
    for s in &scans {
        sqlx::raw_sql(&s.fix)
            .execute(&db)
            .await
            .with_context(|| format!("running {}", s.fix))?;
    }
    sqlx::raw_sql("ANALYZE").execute(&db).await?;
    let indexes: Vec<String> = scans.iter().map(|s| s.fix.clone()).collect();
    // A new server: the connector cached by the first read the catalog
    // before the indexes existed (it is reread after a short time anyway).
    server.exec.stop().await;
    server.vault.close().await;
    let second = dir.path().join("indexed");
    std::fs::create_dir(&second)?;
    let server = BenchServer::start(
        &second,
        MapSource::load(MapOrigin::File(dir.path().join("fides-map.yaml")))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .0,
        HashMap::from([(url_env.clone(), db_url.clone())]),
    )
    .await?;
    eprintln!(
        "access requests with the {} indexes map check names…",
        indexes.len()
    );
    let (indexed_ms, indexed_rows) = time_access(&server.api, &people).await?;
    if indexed_rows != rows_found {
        bail!("with the indexes {indexed_rows} rows were found, without them {rows_found}");
    }
    server.exec.stop().await;
    server.vault.close().await;
    db.close().await;
    Ok(Outcome {
        machine,
        customers: plan.customers,
        setup_s,
        sample_ms,
        enlarged_ms,
        rows_found,
        indexed_ms,
        indexes,
    })
}

pub(crate) fn render(o: &Outcome, quick: bool) -> String {
    let m = &o.machine;
    let cmd = if quick {
        "cargo run --release -p custos-bench -- fides --quick"
    } else {
        "cargo run --release -p custos-bench -- fides"
    };
    let max = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let indexes: String = o.indexes.iter().map(|i| format!("    {i}\n")).collect();
    format!(
        "# custos on the Fides example database\n\n\
         `{cmd}` — commit {git}, {nproc} cores ({cpu}), {kernel}, load {load}.\n\n\
         The Fides project's example PostgreSQL database and its Fides dataset, imported \
         into a custos map; then the same database enlarged to {customers} customers (one \
         row per customer in each table that names one; only the sample's own indexes); \
         then with the {n_idx} indexes `custos map check --connect` names. \
         Built in {setup:.1} s. Time from `POST /v1/requests` (vouched) to `completed` with \
         the archive built, one request at a time.\n\n\
         | access request | median | max | requests | Fides 2.86 ÷ custos |\n|---|---|---|---|---|\n\
         | the sample as it is | {sm:.0} ms | {smax:.0} ms | {sn} | |\n\
         | enlarged to {customers} customers | {em:.0} ms | {emax:.0} ms | {en} | {r1:.1}× |\n\
         | enlarged, with the indexes map check names | {im:.0} ms | {imax:.0} ms | {in_} | {r2:.1}× |\n\n\
         Rows found for one enlarged customer: {rows} (the same with the indexes).\n\n\
         The ratio divides Fides' {fides:.0} ms median on the enlarged database (100,000 \
         customers, sample indexes only; measured beside custos when issue 16 was filed — \
         Fides is not run here) by custos' median in this run{quick_note}. The indexes:\n\n{indexes}",
        git = m.git,
        nproc = m.nproc,
        cpu = m.cpu,
        kernel = m.kernel,
        load = m.loadavg,
        customers = crate::util::thousands(o.customers),
        n_idx = o.indexes.len(),
        setup = o.setup_s,
        sm = median(&o.sample_ms),
        smax = max(&o.sample_ms),
        sn = o.sample_ms.len(),
        em = median(&o.enlarged_ms),
        emax = max(&o.enlarged_ms),
        en = o.enlarged_ms.len(),
        im = median(&o.indexed_ms),
        imax = max(&o.indexed_ms),
        in_ = o.indexed_ms.len(),
        r1 = FIDES_ENLARGED_MS / median(&o.enlarged_ms).max(0.001),
        r2 = FIDES_ENLARGED_MS / median(&o.indexed_ms).max(0.001),
        fides = FIDES_ENLARGED_MS,
        quick_note = if quick { " (with --quick the database is smaller: the ratio means little)" } else { "" },
        rows = o.rows_found,
    )
}
