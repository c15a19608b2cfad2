//! Interoperability with Fides: the example application database of the
//! Fides project (`postgres_sample.sql`) and the Fides dataset that
//! describes it (`postgres_example_test_dataset.yml`), as a team moving
//! from Fides would bring them. The dataset is imported into a custos map
//! with `custos_map::fides::import` (what `custos map import-fides` does),
//! completed with what Fides does not record (controller, purposes,
//! retention), and access and erasure requests for customers of the sample
//! are carried out by the request executor against a real PostgreSQL.
//!
//! The expected rows of a customer are computed here with plain SQL,
//! following the references the Fides dataset declares (the sample itself
//! declares no foreign keys), independently of the SQL connector.
//!
//! The files are read from `../shared/peers/fides/` beside the checkout and
//! never copied into the repository; without them the test says so and
//! passes. PostgreSQL only: the sample is PostgreSQL SQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custos_dsr::ExecutorConfig;
use custos_map::{Anonymize, DataMap, ErasureStrategy, System, SystemKind};
use custos_map::{MapOrigin, MapSource, ReloadError};
use custos_server::AppState;
use custos_testkit::{Backend, TestServer, TestStore};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;

const FIDES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/peers/fides");
const SAMPLE_SQL: &str = "postgres_sample.sql";
const DATASET_YML: &str = "postgres_example_test_dataset.yml";

/// Customers of the sample (`public.customer`), by email.
const JOHN: &str = "customer-1@example.com";
const JILL: &str = "customer-2@example.com";
const JANE: &str = "jane@example.com";

/// Rows per table (`schema.table`), each as `row_to_json` text, sorted.
type Dump = BTreeMap<String, Vec<String>>;
/// A person's rows per table of `public`, as JSON objects.
type Rows = BTreeMap<String, Vec<Value>>;

struct Fixtures {
    sql: String,
    dataset: String,
}

fn fixtures() -> Option<Fixtures> {
    let read = |name: &str| std::fs::read_to_string(format!("{FIDES_DIR}/{name}"));
    match (read(SAMPLE_SQL), read(DATASET_YML)) {
        (Ok(sql), Ok(dataset)) => Some(Fixtures { sql, dataset }),
        _ => {
            eprintln!(
                "NOTICE: Fides interoperability test skipped: {FIDES_DIR}/{{{SAMPLE_SQL},{DATASET_YML}}} \
                 absent (the shared/ folder is not beside the checkout)"
            );
            None
        }
    }
}

/// Loads the sample statement by statement. Every statement runs as the
/// database's owner, which CI's role is (not a superuser): the sample has
/// no `CREATE EXTENSION`, `ALTER … OWNER` or other superuser statement, so
/// none is skipped; `CREATE SCHEMA backup_schema` only needs the owner's
/// CREATE privilege on the database.
async fn load_sample(db: &PgPool, sql: &str) -> usize {
    let stmts = custos_testkit::pg::script_statements(sql);
    for s in &stmts {
        if let Err(e) = sqlx::raw_sql(s).execute(db).await {
            panic!("loading the Fides sample failed at\n{s}\n: {e}");
        }
    }
    stmts.len()
}

/// The imported map, completed with what Fides datasets do not carry.
fn completed_map(dataset_yml: &str) -> (DataMap, Vec<String>) {
    let out = custos_map::fides::import(&[(DATASET_YML, dataset_yml)], SystemKind::Postgres)
        .unwrap_or_else(|d| panic!("import failed: {d:#?}"));
    let mut map = out.map;
    // What the importer leaves to the user (its notes say so).
    map.organisation.controller = "Example Cookie Shop Inc.".into();
    map.organisation.contact = "privacy@cookies.example".into();
    map.purposes = vec![
        serde_json::from_value(json!({
            "id": "sales", "title": "Selling and delivering cookies",
            "legal_basis": "contract", "subjects": ["customer"]
        }))
        .unwrap(),
        serde_json::from_value(json!({
            "id": "staff", "title": "Employment",
            "legal_basis": "contract", "subjects": ["employee"]
        }))
        .unwrap(),
    ];
    let retention: custos_map::Retention =
        serde_json::from_value(json!({"period": "3y", "from_event": "account_closed"})).unwrap();
    assert_eq!(map.systems.len(), 1, "one Fides dataset, one system");
    for d in &mut map.systems[0].datasets {
        if !d.holds_personal_data() {
            continue;
        }
        let purpose = if d.id.as_str() == "employee" {
            "staff"
        } else {
            "sales"
        };
        d.purposes = vec![purpose.into()];
        d.retention = Some(retention.clone());
        // Erasure is left as imported: Fides records no strategy (its
        // masking overrides are listed in the notes), so custos's default
        // `delete` applies.
    }
    (map, out.notes)
}

fn load_map(map: &DataMap, notes: &[String], dir: &std::path::Path) -> MapSource {
    let mut text = String::from("# Imported from Fides, completed by the test.\n");
    for n in notes {
        text.push_str(&format!("#   - {n}\n"));
    }
    text.push_str(&custos_map::yaml::to_yaml(map));
    let path = dir.join("fides-map.yaml");
    std::fs::write(&path, &text).unwrap();
    match MapSource::load(MapOrigin::File(path)) {
        Ok((m, warnings)) => {
            // Only `missing-erasure`: Fides records no erasure strategy.
            for w in &warnings {
                println!("map warning: {} at {}", w.code, w.path);
            }
            m
        }
        Err(ReloadError::Load(custos_map::LoadError::Invalid { diagnostics, .. })) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            panic!(
                "the completed imported map does not validate ({} diagnostics above):\n{text}",
                diagnostics.len()
            );
        }
        Err(e) => panic!("{e}"),
    }
}

struct App {
    server: TestServer,
    state: AppState,
    key: String,
    db: PgPool,
    map: DataMap,
}

impl App {
    fn system(&self) -> &System {
        &self.map.systems[0]
    }

    async fn request(&self, kind: &str, email: &str) -> String {
        let r = self
            .server
            .call(
                Method::POST,
                "/v1/requests",
                Some(&self.key),
                Some(json!({"type": kind, "identity": {"email": email}, "verified_by_app": true})),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    async fn get(&self, id: &str) -> Value {
        let r = self
            .server
            .call(
                Method::GET,
                &format!("/v1/requests/{id}"),
                Some(&self.key),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body
    }

    /// Runs executor rounds until the request reaches one of `statuses`.
    async fn run_until(&self, id: &str, statuses: &[&str]) -> Value {
        for _ in 0..400 {
            self.state.executor().round().await.unwrap();
            let r = self.get(id).await;
            if statuses.contains(&r["status"].as_str().unwrap()) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "request never reached {statuses:?}: {:#}",
            self.get(id).await
        );
    }

    /// Every table of the database (the sample's `public` and
    /// `backup_schema`), row by row.
    async fn dump(&self) -> Dump {
        let tables: Vec<(String, String)> = sqlx::query_as(
            "SELECT schemaname::text, tablename::text FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
        )
        .fetch_all(&self.db)
        .await
        .unwrap();
        let mut out = Dump::new();
        for (schema, table) in tables {
            let mut rows: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT CAST(row_to_json(t) AS text) FROM \"{schema}\".\"{table}\" t"
            ))
            .fetch_all(&self.db)
            .await
            .unwrap();
            rows.sort();
            out.insert(format!("{schema}.{table}"), rows);
        }
        out
    }

    /// Primary key columns of a `public` table, from the catalog.
    async fn pk(&self, table: &str) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT a.attname::text FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY a.attnum",
        )
        .bind(format!("public.{table}"))
        .fetch_all(&self.db)
        .await
        .unwrap()
    }

    async fn json_rows(&self, sql: &str, emails: &[String]) -> Vec<Value> {
        let mut rows: Vec<String> = sqlx::query_scalar(sql)
            .bind(emails)
            .fetch_all(&self.db)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.sort();
        rows.iter()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect()
    }

    /// The person's rows in every table the Fides dataset links to them,
    /// computed with plain SQL along the dataset's identities and
    /// references:
    ///
    /// * `email` identities: customer.email, employee.email, report.email,
    ///   visit.email, service_request.email and .alt_email (an alternative
    ///   email found there is the person's too, as custos learns it);
    /// * `customer.id` ← login/orders/payment_card.customer_id
    ///   (`direction: from`);
    /// * address.id ← customer.address_id, orders.shipping_address_id,
    ///   payment_card.billing_address_id and employee.address_id (each
    ///   `direction: to`): the importer keeps every path, so John gets his
    ///   home (1) and Jill's home (2), the shipping address of his
    ///   ord_aaa-aaa, as Fides returns them. Addresses 1 and 2 are both
    ///   John's and Jill's.
    ///
    /// Not the person's by the dataset: order_item and product (only
    /// `system.operations` categories: no personal data, so no subject
    /// link), and tables the dataset leaves out (composite_pk_test,
    /// loyalty, type_link_test, dynamic_email_address_config, backup_schema).
    async fn rows_of(&self, email: &str) -> Rows {
        // The person's emails, until nothing new appears.
        let mut emails: BTreeSet<String> = BTreeSet::from([email.to_lowercase()]);
        loop {
            let list: Vec<String> = emails.iter().cloned().collect();
            let more: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT email, alt_email FROM public.service_request \
                 WHERE lower(email) = ANY($1) OR lower(alt_email) = ANY($1)",
            )
            .bind(&list)
            .fetch_all(&self.db)
            .await
            .unwrap();
            let before = emails.len();
            for (a, b) in more {
                emails.extend(a.into_iter().chain(b).map(|e| e.to_lowercase()));
            }
            if emails.len() == before {
                break;
            }
        }
        let emails: Vec<String> = emails.into_iter().collect();
        let customers = "SELECT id FROM public.customer WHERE lower(email) = ANY($1)";
        let queries = [
            ("customer", "lower(email) = ANY($1)".to_owned()),
            ("employee", "lower(email) = ANY($1)".to_owned()),
            ("report", "lower(email) = ANY($1)".to_owned()),
            ("visit", "lower(email) = ANY($1)".to_owned()),
            (
                "service_request",
                "lower(email) = ANY($1) OR lower(alt_email) = ANY($1)".to_owned(),
            ),
            ("login", format!("customer_id IN ({customers})")),
            ("orders", format!("customer_id IN ({customers})")),
            ("payment_card", format!("customer_id IN ({customers})")),
            (
                "address",
                format!(
                    "id IN (SELECT address_id FROM public.customer WHERE lower(email) = ANY($1)) \
                     OR id IN (SELECT address_id FROM public.employee WHERE lower(email) = ANY($1)) \
                     OR id IN (SELECT shipping_address_id FROM public.orders \
                               WHERE customer_id IN ({customers})) \
                     OR id IN (SELECT billing_address_id FROM public.payment_card \
                               WHERE customer_id IN ({customers}))"
                ),
            ),
        ];
        let mut out = Rows::new();
        for (table, cond) in queries {
            let sql = format!(
                "SELECT CAST(row_to_json(t) AS text) FROM public.\"{table}\" t WHERE {cond}"
            );
            out.insert(table.to_owned(), self.json_rows(&sql, &emails).await);
        }
        out
    }

    /// Runs an access request to completion and returns the archive's
    /// entries (name → bytes).
    async fn access_archive(&self, email: &str) -> BTreeMap<String, Vec<u8>> {
        let id = self.request("access", email).await;
        let r = self.run_until(&id, &["completed", "failed"]).await;
        assert_eq!(r["status"], "completed", "{r:#}");
        let steps = r["steps"].as_array().unwrap();
        assert!(
            steps
                .iter()
                .all(|s| s["kind"] == "connector" && s["status"] == "done"),
            "{r:#}"
        );
        let link = self
            .server
            .call(
                Method::GET,
                &format!("/v1/requests/{id}/archive"),
                Some(&self.key),
                None,
            )
            .await;
        assert_eq!(link.status, 200, "{:?}", link.body);
        let url = format!("{}{}", self.server.base, link.body["url"].as_str().unwrap());
        let res = self.server.http.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/zip");
        let bytes = res.bytes().await.unwrap().to_vec();
        // The link works once.
        assert_eq!(
            self.server.http.get(&url).send().await.unwrap().status(),
            404
        );
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut out = BTreeMap::new();
        for i in 0..z.len() {
            let mut f = z.by_index(i).unwrap();
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut buf).unwrap();
            out.insert(f.name().to_owned(), buf);
        }
        out
    }
}

async fn app(store: &TestStore, fx: &Fixtures) -> Option<App> {
    let db_url = custos_testkit::pg::server()?.create_database("fides").await;
    let db = PgPool::connect(&db_url).await.unwrap();
    let n = load_sample(&db, &fx.sql).await;
    println!("loaded the Fides sample: {n} statements");
    let (map, notes) = completed_map(&fx.dataset);
    let url_env = map.systems[0].connection["url_env"].clone();
    assert_eq!(url_env, "POSTGRES_EXAMPLE_TEST_DATASET_URL");
    let source = load_map(&map, &notes, store.dir());
    let served = source.current().unwrap();
    let mut cfg = ExecutorConfig::new("http://127.0.0.1:1");
    cfg.retry_base = Duration::from_millis(5);
    cfg.env = HashMap::from([(url_env, db_url)]).into();
    let cell = Arc::new(Mutex::new(None));
    let c2 = cell.clone();
    let server = crate::support::start_with(store, move |s| {
        let s = s.with_map(source).with_executor_config(cfg);
        *c2.lock().unwrap() = Some(s.clone());
        s
    })
    .await;
    let state = cell.lock().unwrap().take().unwrap();
    server.tenant("acme").await;
    let key = server.key("acme", &["dsr", "audit"]).await;
    Some(App {
        server,
        state,
        key,
        db,
        map: (*served).clone(),
    })
}

fn sorted_texts(rows: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = rows.iter().map(Value::to_string).collect();
    v.sort();
    v
}

fn total(rows: &Rows) -> usize {
    rows.values().map(Vec::len).sum()
}

/// The archive holds exactly the person's rows, dataset by dataset, and no
/// value of the other customers.
fn check_archive(
    app: &App,
    who: &str,
    archive: &BTreeMap<String, Vec<u8>>,
    mine: &Rows,
    others: &[(&str, &Rows)],
) {
    let sys = app.system();
    let names: Vec<&String> = archive.keys().collect();
    assert!(archive.contains_key("index.html"), "{names:?}");
    assert!(archive.contains_key("manifest.json"), "{names:?}");
    for d in &sys.datasets {
        let path = format!("data/{}/{}.json", sys.id, d.id);
        let want = mine.get(d.id.as_str()).cloned().unwrap_or_default();
        match archive.get(&path) {
            None => assert!(
                want.is_empty(),
                "{who}: {path} missing, expected {} rows; archive: {names:?}",
                want.len()
            ),
            Some(bytes) => {
                let got: Vec<Value> = serde_json::from_slice(bytes).unwrap();
                assert_eq!(
                    sorted_texts(&got),
                    sorted_texts(&want),
                    "{who}: {path} differs from the rows found with SQL"
                );
                assert!(
                    archive.contains_key(&format!("data/{}/{}.csv", sys.id, d.id)),
                    "{names:?}"
                );
            }
        }
    }
    // Nothing but the datasets of the map (order_item, product and the
    // tables the Fides dataset leaves out are never exported).
    for n in archive.keys().filter(|n| n.starts_with("data/")) {
        let ds = n
            .strip_prefix(&format!("data/{}/", sys.id))
            .and_then(|x| x.rsplit_once('.'))
            .map(|(d, _)| d)
            .unwrap_or_else(|| panic!("unexpected entry {n}"));
        assert!(
            mine.get(ds).is_some_and(|r| !r.is_empty()),
            "{who}: unexpected {n}"
        );
    }
    // No row and no email of another customer, anywhere in the archive,
    // but the addresses two customers share (one's home, the other's
    // shipping or billing address), which Fides returns to both.
    let all: String = archive
        .values()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    for (other, rows) in others {
        assert!(!all.contains(other), "{who}'s archive names {other}");
        for (table, rs) in rows.iter().filter(|(t, _)| *t != "address") {
            for r in rs {
                assert!(
                    !mine.get(table).is_some_and(|m| m.contains(r)),
                    "{who} and {other} share {table} row {r}"
                );
            }
        }
    }
}

fn pk_of(row: &Value, pk: &[String]) -> Vec<Value> {
    pk.iter().map(|c| row[c].clone()).collect()
}

/// After an erasure: every row of the person is gone, anonymised per the
/// map's strategies, or (shared with another person) unchanged; every other
/// row of every table is unchanged, and the step's counts match. Returns
/// the person's rows still present.
async fn check_erasure(
    app: &App,
    who: &str,
    before: &Dump,
    mine: &Rows,
    result: &Value,
) -> BTreeMap<String, Vec<Value>> {
    let sys = app.system();
    let after = app.dump().await;
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    let mut kept_rows: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut unchanged: BTreeMap<String, u64> = BTreeMap::new();
    for (table, before_rows) in before {
        let (schema, name) = table.split_once('.').unwrap();
        let person: Vec<Value> = if schema == "public" {
            mine.get(name).cloned().unwrap_or_default()
        } else {
            Vec::new()
        };
        let person_text: BTreeSet<String> = person.iter().map(Value::to_string).collect();
        let pk = if person.is_empty() {
            Vec::new()
        } else {
            app.pk(name).await
        };
        let by_pk: HashMap<Vec<Value>, &Value> =
            person.iter().map(|r| (pk_of(r, &pk), r)).collect();
        // Others' rows: byte for byte the same.
        let others_before: Vec<&String> = before_rows
            .iter()
            .filter(|r| {
                let v: Value = serde_json::from_str(r).unwrap();
                !person_text.contains(&v.to_string())
            })
            .collect();
        let mut others_after = Vec::new();
        for r in &after[table] {
            let v: Value = serde_json::from_str(r).unwrap();
            match by_pk.get(&pk_of(&v, &pk)).filter(|_| !pk.is_empty()) {
                Some(old) if **old == v => {
                    *unchanged.entry(name.to_owned()).or_default() += 1;
                    kept_rows.entry(name.to_owned()).or_default().push(v);
                }
                Some(old) => {
                    check_anonymised(sys, who, name, old, &v);
                    kept_rows.entry(name.to_owned()).or_default().push(v);
                }
                None => others_after.push(r),
            }
        }
        assert_eq!(
            others_after, others_before,
            "{who}: rows of others in {table} changed"
        );
    }
    // The step's counts agree with what SQL sees.
    let datasets = result["datasets"].as_array().unwrap();
    for o in datasets {
        let ds = o["dataset"].as_str().unwrap();
        let found = mine.get(ds).map_or(0, Vec::len) as u64;
        let kept = kept_rows.get(ds).map_or(0, Vec::len) as u64;
        assert_eq!(o["found"], found, "{who}: {ds}: {o}");
        assert_eq!(o["retained"], kept, "{who}: {ds}: {o}");
        assert_eq!(o["deleted"], found - kept, "{who}: {ds}: {o}");
        // Rows kept untouched are those shared with another person.
        let same = unchanged.get(ds).copied().unwrap_or(0);
        assert_eq!(o["shared"].as_u64().unwrap_or(0), same, "{who}: {ds}: {o}");
        if kept > 0 {
            assert!(o["retained_ground"].is_string(), "{who}: {ds}: {o}");
        }
    }
    kept_rows
}

/// A row of the person that stays: each personal field replaced per its
/// strategy, everything else unchanged.
fn check_anonymised(sys: &System, who: &str, table: &str, old: &Value, new: &Value) {
    let d = sys
        .datasets
        .iter()
        .find(|d| d.location.value() == table)
        .unwrap();
    for (col, was) in old.as_object().unwrap() {
        let now = &new[col];
        let field = d.field(col);
        let personal = field.is_some_and(|f| {
            !f.primary_key && f.category.iter().any(custos_map::DataCategory::is_personal)
        });
        if !personal {
            assert_eq!(now, was, "{who}: {table}.{col} of a kept row changed");
            continue;
        }
        match d.effective_erasure(field.unwrap()) {
            // A row to delete kept as a placeholder, or set_null: NULL.
            ErasureStrategy::Delete | ErasureStrategy::Anonymize(Anonymize::SetNull) => {
                assert!(now.is_null(), "{who}: {table}.{col} not erased: {new}");
            }
            ErasureStrategy::Anonymize(Anonymize::Placeholder(p)) => {
                assert_eq!(now, &json!(p), "{who}: {table}.{col}");
            }
            ErasureStrategy::Retain(_) => assert_eq!(now, was, "{who}: {table}.{col}"),
            other => panic!("{who}: {table}.{col}: strategy {other:?} not checked here"),
        }
    }
}

async fn erase(app: &App, who: &str, email: &str) -> BTreeMap<String, Vec<Value>> {
    let mine = app.rows_of(email).await;
    let before = app.dump().await;
    let id = app.request("erasure", email).await;
    let r = app.run_until(&id, &["completed", "failed"]).await;
    assert_eq!(r["status"], "completed", "{r:#}");
    let steps = r["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["status"] == "done"), "{r:#}");
    let kinds: Vec<&str> = steps.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["connector", "verify"], "no processor, no notice");
    let result = &steps[0]["result"];
    for o in result["datasets"].as_array().unwrap() {
        if o["found"] != 0 {
            println!("{who} erased: {o}");
        }
    }
    let kept = check_erasure(app, who, &before, &mine, result).await;
    // The person cannot be found any more.
    let again = app.rows_of(email).await;
    assert_eq!(total(&again), 0, "{who}: {again:#?}");
    kept
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fides_sample_access_and_erasure() {
    let Some(fx) = fixtures() else {
        return;
    };
    let Some(store) = TestStore::new(Backend::Postgres).await else {
        return;
    };
    let Some(app) = app(&store, &fx).await else {
        return;
    };
    let sys = app.system();
    let mapped: Vec<&str> = sys.datasets.iter().map(|d| d.id.as_str()).collect();
    println!("imported datasets: {mapped:?}");

    // The customers and their rows, as plain SQL finds them.
    let people = [("John", JOHN), ("Jill", JILL), ("Jane", JANE)];
    let mut rows: Vec<Rows> = Vec::new();
    for (who, email) in people {
        let r = app.rows_of(email).await;
        let counts: BTreeMap<&String, usize> = r.iter().map(|(t, v)| (t, v.len())).collect();
        println!("{who} <{email}>: {} rows {counts:?}", total(&r));
        rows.push(r);
    }
    let count = |i: usize, t: &str| rows[i].get(t).map_or(0, Vec::len);
    // The figures of the sample (customer 1, 2, 3).
    assert_eq!(
        [
            "customer",
            "address",
            "login",
            "orders",
            "payment_card",
            "visit",
            "service_request"
        ]
        .map(|t| (count(0, t), count(1, t), count(2, t))),
        [
            (1, 1, 1),
            (2, 2, 1),
            (6, 1, 1),
            (3, 1, 1),
            (1, 1, 1),
            (1, 1, 0),
            (1, 1, 0)
        ]
    );

    // ACCESS: each archive holds exactly that customer's rows.
    let before = app.dump().await;
    for (i, (who, email)) in people.iter().enumerate() {
        let archive = app.access_archive(email).await;
        let others: Vec<(&str, &Rows)> = people
            .iter()
            .zip(&rows)
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, ((_, e), r))| (*e, r))
            .collect();
        check_archive(&app, who, &archive, &rows[i], &others);
    }
    assert_eq!(app.dump().await, before, "access changed the database");

    // ERASURE of Jane: nothing of hers is referenced by anyone else's row,
    // so every row goes.
    let kept = erase(&app, "Jane", JANE).await;
    assert!(kept.is_empty(), "{kept:#?}");

    // ERASURE of John: his orders stay as placeholders (their order_item
    // rows, not personal data, still reference them) with customer_id
    // cleared. His addresses are also Jill's: his home 1 is the shipping
    // address of her ord_bbb-bbb and the billing address of her card
    // pay_bbb-bbb, and address 2, where his ord_aaa-aaa ships, is her home.
    // Both are kept untouched ("shared with another person"): his erasure
    // never takes her data.
    let kept = erase(&app, "John", JOHN).await;
    let ids = |t: &str| -> Vec<String> {
        kept.get(t)
            .map(|v| v.iter().map(|r| r["id"].to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        ids("orders"),
        ["\"ord_aaa-aaa\"", "\"ord_ccc-ccc\"", "\"ord_ddd-ddd\""]
    );
    assert_eq!(ids("address"), ["1", "2"]);
    assert_eq!(kept.len(), 2, "{kept:#?}");

    // Jill is untouched, and her archive is as before.
    assert_eq!(app.rows_of(JILL).await, rows[1]);
    let archive = app.access_archive(JILL).await;
    check_archive(
        &app,
        "Jill",
        &archive,
        &rows[1],
        &[(JOHN, &rows[0]), (JANE, &rows[2])],
    );

    // Tables the Fides dataset does not describe are out of custos's
    // reach: composite_pk_test still links customers 1 and 3 by id.
    let linked: Vec<i32> =
        sqlx::query_scalar("SELECT customer_id FROM public.composite_pk_test ORDER BY 1")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(linked, [1, 2, 3]);
    app.server.stop().await;
}
