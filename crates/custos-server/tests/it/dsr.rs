//! Data-subject requests carried out end to end, on SQLite and PostgreSQL:
//! a sample application (its own database on the same engine, uploads with
//! thumbnails on disk, sessions in a real Redis, a processor played by a
//! local HTTP server that fails five times before it accepts) is searched
//! and erased through the request executor. The application's database
//! is also played by MySQL (MariaDB), with the store on SQLite.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custos_dsr::ExecutorConfig;
use custos_map::{MapOrigin, MapSource};
use custos_server::AppState;
use custos_testkit::{backend_tests, Backend, TestServer, TestStore};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::{AnyPool, Row};

backend_tests!(
    erasure_reaches_every_store_and_keeps_only_retained_rows,
    access_archive_holds_everything_and_its_link_works_once,
    a_step_of_a_dead_worker_is_taken_over_after_its_lease,
    malicious_identity_values_are_harmless,
    restriction_and_objection_reach_vault_ledger_and_processors,
    rectification_changes_every_copy_and_the_vault_identity,
    a_person_who_verified_by_code_gets_receipt_and_link_by_mail,
    a_verified_request_and_a_confirmation_wake_the_executor_at_once,
);

const SCHEMA: &[&str] = &[
    "CREATE TABLE addresses (id INTEGER PRIMARY KEY, street TEXT, city TEXT)",
    "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT, \
     address_id INTEGER REFERENCES addresses(id))",
    "CREATE TABLE profiles (user_id INTEGER PRIMARY KEY REFERENCES users(id), bio TEXT)",
    "CREATE TABLE comments (id INTEGER PRIMARY KEY, author_id INTEGER REFERENCES users(id), \
     parent_id INTEGER REFERENCES comments(id), author_name TEXT, body TEXT)",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES users(id), \
     billing_name TEXT, amount_cents INTEGER)",
];

const ROWS: &[&str] = &[
    "INSERT INTO addresses VALUES (10, 'Jane Street 1', 'Berlin'), (20, 'Bob Road 2', 'Paris')",
    "INSERT INTO users VALUES (1, 'jane@example.com', 'Jane Doe', 10), (2, 'bob@example.com', 'Bob Roe', 20)",
    "INSERT INTO profiles VALUES (1, 'Jane likes tea'), (2, 'Bob likes coffee')",
    // Jane's comment 100 has a reply by Bob (101) and one by herself (102).
    "INSERT INTO comments VALUES (100, 1, NULL, 'Jane Doe', 'first'), \
     (101, 2, 100, 'Bob Roe', 'reply by bob'), (102, 1, 100, 'Jane Doe', 'reply by jane'), \
     (103, 2, NULL, 'Bob Roe', 'bob alone')",
    "INSERT INTO orders VALUES (500, 1, 'Jane Doe', 1999), (501, 2, 'Bob Roe', 2999)",
];

fn map_yaml(app_kind: &str, processor_url: &str) -> String {
    format!(
        r#"version: 1
organisation: {{ controller: Sample SaaS GmbH, contact: privacy@sample.example }}
purposes:
  - id: account
    title: Provide the account
    legal_basis: contract
    subjects: [customer]
  - id: billing
    title: Invoicing
    legal_basis: legal_obligation
    basis_reference: "§147 AO"
    subjects: [customer]
  - id: support
    title: Support
    legal_basis: contract
    subjects: [customer]
  - id: analytics
    title: Product analytics
    legal_basis: legitimate_interest
    balancing_test: Pseudonymous events only.
    subjects: [customer]
processors:
  - id: crm
    name: Sample CRM Ltd.
    role: processor
    country: IE
    dpa: {{ status: signed, date: "2024-01-01" }}
    notify: {{ url: "{processor_url}" }}
    # A processor played on this host over plain HTTP.
    allow_insecure_loopback: true
    purposes: [support]
  - id: tax_advisor
    name: Tax Advisors LLP
    role: recipient
    country: DE
    notify: {{ email: office@tax.example }}
    purposes: [billing]
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
          - {{ name: email, category: user.contact.email, identity: email }}
  - id: app
    kind: {app_kind}
    connection: {{ url_env: APP_DB_URL }}
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
          - {{ name: address_id, category: system.operations, references: addresses.id }}
      - id: addresses
        table: addresses
        subject: {{ referenced_by: users.address_id }}
        purposes: [account]
        erasure: delete
        retention: {{ period: 30d, from_event: account_closed }}
        fields:
          - {{ name: id, category: system.operations, primary_key: true }}
          - {{ name: street, category: user.contact.address.street }}
          - {{ name: city, category: user.contact.address.city }}
      - id: profiles
        table: profiles
        subject: {{ via: user_id }}
        purposes: [account]
        erasure: delete
        retention: {{ period: 30d, from_event: account_closed }}
        fields:
          - {{ name: user_id, category: user.unique_id, references: users.id, primary_key: true }}
          - {{ name: bio, category: user.content.public }}
      - id: comments
        table: comments
        subject: {{ via: author_id }}
        purposes: [account]
        erasure: delete
        retention: {{ period: 3y, from_event: account_closed }}
        fields:
          - {{ name: id, category: system.operations, primary_key: true }}
          - {{ name: author_id, category: user.unique_id, references: users.id }}
          - {{ name: parent_id, category: system.operations, references: comments.id }}
          - {{ name: author_name, category: user.name }}
          - {{ name: body, category: user.content.public }}
      - id: orders
        table: orders
        subject: {{ via: customer_id }}
        purposes: [billing]
        erasure:
          retain:
            ground: "§147 AO: fiscal records"
            period: 10y
            from_event: order_date
        fields:
          - {{ name: id, category: system.operations, primary_key: true }}
          - {{ name: customer_id, category: user.unique_id, references: users.id }}
          - {{ name: billing_name, category: user.name }}
          - {{ name: amount_cents, category: user.financial }}
  - id: uploads
    kind: files
    connection: {{ root_env: FILES_ROOT }}
    datasets:
      - id: avatars
        path: "avatars/{{user_id}}/*"
        subject: {{ identity: user_id }}
        purposes: [account]
        erasure: delete
        retention: {{ period: 30d, from_event: account_closed }}
        fields:
          - {{ name: user_id, category: user.unique_id, identity: user_id, references: app.users.id }}
          - {{ name: image, category: user.content.self_image }}
      - id: thumbnails
        path: "thumbs/{{user_id}}/*"
        derived_from: avatars
        subject: {{ identity: user_id }}
        purposes: [account]
        erasure: delete
        retention: {{ period: 30d, from_event: account_closed }}
        fields:
          - {{ name: user_id, category: user.unique_id, identity: user_id, references: app.users.id }}
          - {{ name: image, category: user.content.self_image }}
  - id: sessions
    kind: redis
    connection: {{ url_env: REDIS_URL }}
    datasets:
      - id: sessions
        key: "session:{{user_id}}"
        subject: {{ identity: user_id }}
        purposes: [account]
        erasure: delete
        retention: {{ period: 30d, from_column: last_seen }}
        fields:
          - {{ name: user_id, category: user.unique_id, identity: user_id, references: app.users.id }}
          - {{ name: ip, category: user.device.ip_address }}
  - id: crm_api
    kind: http
    processor: crm
    datasets:
      - id: contacts
        endpoint: "/contacts/{{email}}"
        subject: {{ identity: email }}
        purposes: [support]
        erasure: delete
        retention: {{ period: 2y, from_event: contract_end }}
        fields:
          - {{ name: email, category: user.contact.email, identity: email }}
"#
    )
}

/// Notices received: (signature header, body).
type Notices = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// The processor: refuses the first `fail` notices with 503, then accepts.
struct Processor {
    url: String,
    seen: Arc<AtomicUsize>,
    notices: Notices,
}

async fn processor(fail: usize) -> Processor {
    let seen = Arc::new(AtomicUsize::new(0));
    let notices = Arc::new(Mutex::new(Vec::new()));
    let (s2, n2) = (seen.clone(), notices.clone());
    let app = axum::Router::new().route(
        "/notices",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (seen, notices) = (s2.clone(), n2.clone());
                async move {
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    if n < fail {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let sig = headers
                        .get("custos-signature")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    notices.lock().unwrap().push((sig, body.to_vec()));
                    axum::http::StatusCode::ACCEPTED
                }
            },
        ),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notices", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Processor { url, seen, notices }
}

const SECRET: &str = "crm-shared-secret-for-tests";

struct App {
    server: TestServer,
    state: AppState,
    cfg: ExecutorConfig,
    key: String,
    db: AnyPool,
    files: std::path::PathBuf,
    redis: redis::Client,
    ns: String,
    processor: Processor,
}

async fn app(store: &TestStore, processor_fail: usize) -> Option<App> {
    app_on(store, processor_fail, false).await
}

/// The sample application; its database on the store's engine, or on
/// MySQL with `mysql`.
async fn app_on(store: &TestStore, processor_fail: usize, mysql: bool) -> Option<App> {
    let redis_url = custos_testkit::redis::server()?.url().to_owned();
    sqlx::any::install_default_drivers();
    let (db_url, kind) = match store.backend {
        _ if mysql => (
            custos_testkit::mysql::server()?
                .create_database("app")
                .await,
            "mysql",
        ),
        Backend::Sqlite => (
            format!("sqlite://{}?mode=rwc", store.dir().join("app.db").display()),
            "sqlite",
        ),
        Backend::Postgres => (
            custos_testkit::pg::server()?.create_database("app").await,
            "postgres",
        ),
    };
    let db = AnyPool::connect(&db_url).await.unwrap();
    for s in SCHEMA.iter().chain(ROWS) {
        sqlx::query(s).execute(&db).await.unwrap();
    }
    // Uploads: Jane (1) and Bob (2), with thumbnails; a sentinel outside.
    let files = store.dir().join("files");
    for (dir, name) in [
        ("avatars/1", "me.png"),
        ("thumbs/1", "me.png"),
        ("avatars/2", "bob.png"),
        ("thumbs/2", "bob.png"),
    ] {
        std::fs::create_dir_all(files.join(dir)).unwrap();
        std::fs::write(files.join(dir).join(name), format!("image of {dir}")).unwrap();
    }
    std::fs::write(store.dir().join("sentinel.txt"), "outside the root").unwrap();
    // Sessions: a namespace per test so parallel tests do not meet.
    let ns = uuid::Uuid::new_v4().simple().to_string();
    let redis = redis::Client::open(redis_url.as_str()).unwrap();
    {
        let mut c = redis.get_multiplexed_async_connection().await.unwrap();
        for (k, v) in [("1", "jane-session"), ("2", "bob-session"), ("10", "other")] {
            let _: () = redis::cmd("SET")
                .arg(format!("{ns}session:{k}"))
                .arg(v)
                .query_async(&mut c)
                .await
                .unwrap();
        }
    }
    let processor = processor(processor_fail).await;
    let yaml = map_yaml(kind, &processor.url)
        .replace("session:{user_id}", &format!("{ns}session:{{user_id}}"));
    let map_file = store.dir().join("map.yaml");
    std::fs::write(&map_file, yaml).unwrap();
    let (map, _) = MapSource::load(MapOrigin::File(map_file)).expect("valid map");
    let mut cfg = ExecutorConfig::new("http://127.0.0.1:1");
    cfg.retry_base = Duration::from_millis(5);
    cfg.env = HashMap::from([
        ("APP_DB_URL".to_owned(), db_url.clone()),
        ("FILES_ROOT".to_owned(), files.display().to_string()),
        ("REDIS_URL".to_owned(), redis_url.to_owned()),
        (custos_dsr::processor_secret_var("crm"), SECRET.to_owned()),
    ])
    .into();
    let cell = Arc::new(Mutex::new(None));
    let (c2, cfg2) = (cell.clone(), cfg.clone());
    let outbox = store.dir().join("outbox");
    let server = crate::support::start_with(store, move |s| {
        let s = s
            .with_map(map)
            .with_executor_config(cfg2)
            .with_outbox(Some(outbox));
        *c2.lock().unwrap() = Some(s.clone());
        s
    })
    .await;
    let state = cell.lock().unwrap().take().unwrap();
    server.tenant("acme").await;
    let key = server
        .key(
            "acme",
            &["write", "reveal", "lookup", "erase", "dsr", "audit"],
        )
        .await;
    server
        .subject(
            &key,
            json!({"external_id": "1", "identities": {"email": "jane@example.com"}}),
        )
        .await;
    Some(App {
        server,
        state,
        cfg,
        key,
        db,
        files,
        redis,
        ns,
        processor,
    })
}

impl App {
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

    /// Signs and posts the processor's confirmation of its waiting step.
    async fn confirm_processor(&self, id: &str) {
        self.confirm_processor_with(
            id,
            json!({"holds_nothing_more": true, "note": null, "counts": {"contacts": 1}}),
        )
        .await;
    }

    /// Signs and posts `confirmation` for the processor's waiting step.
    async fn confirm_processor_with(&self, id: &str, confirmation: Value) {
        let (_, body) = self
            .processor
            .notices
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a notice");
        let notice: Value = serde_json::from_slice(&body).unwrap();
        let step = notice["step"].as_i64().unwrap();
        let path = format!("/v1/processor-callbacks/{id}/{step}");
        let confirmation = confirmation.to_string();
        // A forged signature is refused.
        let target = custos_connectors::notice::CallbackTarget {
            tenant: "acme",
            request_id: id,
            step,
        };
        let forged = custos_connectors::notice::sign_callback(
            b"wrong",
            &target,
            now(),
            confirmation.as_bytes(),
        );
        let r = self.post_signed(&path, &forged, &confirmation).await;
        assert_eq!(r.status(), 401);
        let sig = custos_connectors::notice::sign_callback(
            SECRET.as_bytes(),
            &target,
            now(),
            confirmation.as_bytes(),
        );
        let r = self.post_signed(&path, &sig, &confirmation).await;
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }

    /// Mints a one-time link to the request's archive and downloads it:
    /// (the link, the ZIP).
    async fn archive(&self, id: &str) -> (String, zip::ZipArchive<std::io::Cursor<Vec<u8>>>) {
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
        let zip = res.bytes().await.unwrap().to_vec();
        (
            url,
            zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap(),
        )
    }

    async fn post_signed(&self, path: &str, sig: &str, body: &str) -> reqwest::Response {
        self.server
            .http
            .post(format!("{}{path}", self.server.base))
            .header("custos-signature", sig)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    async fn rows(&self, sql: &str) -> Vec<String> {
        sqlx::query(sql)
            .fetch_all(&self.db)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| {
                        r.try_get::<Option<String>, _>(i)
                            .ok()
                            .flatten()
                            .or_else(|| {
                                r.try_get::<Option<i64>, _>(i)
                                    .ok()
                                    .flatten()
                                    .map(|n| n.to_string())
                            })
                            .or_else(|| {
                                r.try_get::<Option<i32>, _>(i)
                                    .ok()
                                    .flatten()
                                    .map(|n| n.to_string())
                            })
                            // MySQL's TEXT reaches `Any` as bytes.
                            .or_else(|| {
                                r.try_get::<Option<Vec<u8>>, _>(i)
                                    .ok()
                                    .flatten()
                                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                            })
                            .unwrap_or_else(|| "NULL".into())
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    async fn redis_keys(&self) -> Vec<String> {
        let mut c = self.redis.get_multiplexed_async_connection().await.unwrap();
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}session:*", self.ns))
            .query_async(&mut c)
            .await
            .unwrap();
        keys.sort();
        keys
    }
}

/// An entry of an archive as text.
fn entry(z: &mut zip::ZipArchive<std::io::Cursor<Vec<u8>>>, name: &str) -> String {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut z.by_name(name).unwrap(), &mut text).unwrap();
    text
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A verified request starts at once and a processor's confirmation moves
/// it on at once: the executor is woken, not polled (its fallback pause
/// here is a minute, longer than the test may take). On PostgreSQL the
/// executor runs in a second server (its own vault on the same stores),
/// woken through LISTEN/NOTIFY by what the first server received.
async fn a_verified_request_and_a_confirmation_wake_the_executor_at_once(store: TestStore) {
    let Some(app) = app(&store, 0).await else {
        return;
    };
    let executor = crate::support::IdleExecutor::spawn(&store, &app.state, &app.cfg).await;
    let wait_for = |id: String, status: &'static str| {
        let app = &app;
        async move { crate::support::until_status(status, || app.get(&id)).await }
    };
    let id = app.request("access", "jane@example.com").await;
    let started = wait_for(id.clone(), "waiting_processor").await;
    app.confirm_processor(&id).await;
    let finished = wait_for(id.clone(), "completed").await;
    eprintln!(
        "woken: waiting_processor after {started:?}, completed {finished:?} after the confirmation"
    );
    executor.stop().await;
    app.server.stop().await;
}

/// The application's database on MySQL, the store on SQLite.
mod mysql {
    use super::*;

    async fn sqlite_store() -> TestStore {
        TestStore::new(Backend::Sqlite).await.expect("sqlite store")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn erasure_reaches_every_store_and_keeps_only_retained_rows() {
        erasure_scenario(sqlite_store().await, true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn access_archive_holds_everything_and_its_link_works_once() {
        access_scenario(sqlite_store().await, true).await
    }
}

async fn erasure_reaches_every_store_and_keeps_only_retained_rows(store: TestStore) {
    erasure_scenario(store, false).await
}

async fn erasure_scenario(store: TestStore, mysql: bool) {
    let Some(app) = app_on(&store, 5, mysql).await else {
        return;
    };
    let before_bob = (
        app.rows("SELECT * FROM users WHERE id = 2").await,
        app.rows("SELECT * FROM comments WHERE author_id = 2 ORDER BY id")
            .await,
        app.rows("SELECT * FROM orders WHERE customer_id = 2").await,
    );
    let id = app.request("erasure", "jane@example.com").await;
    // The dry run counts without changing anything.
    let plan = app
        .server
        .call(
            Method::POST,
            &format!("/v1/requests/{id}/plan"),
            Some(&app.key),
            None,
        )
        .await;
    assert_eq!(plan.status, 200, "{:?}", plan.body);
    let plan_text = plan.body.to_string();
    assert!(plan_text.contains("\"users\""), "{plan_text}");
    // Nothing indexes the users' emails: the plan says so, with the index.
    let scans: Vec<&serde_json::Value> = plan.body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["scans"].as_array())
        .flatten()
        .collect();
    let email = scans
        .iter()
        .find(|s| s["table"] == "users" && s["column"] == "email")
        .unwrap_or_else(|| panic!("{plan_text}"));
    assert_eq!(email["lookup"], "identity email");
    assert!(
        email["fix"].as_str().unwrap().starts_with("CREATE INDEX"),
        "{email}"
    );
    assert_eq!(
        app.rows("SELECT id FROM users WHERE id = 1").await,
        vec!["1"]
    );

    let r = app.run_until(&id, &["waiting_processor", "failed"]).await;
    assert_eq!(r["status"], "waiting_processor", "{r:#}");
    // The processor refused five notices; the sixth was accepted.
    assert_eq!(app.processor.seen.load(Ordering::SeqCst), 6);
    let notice_step = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "processor_notice")
        .unwrap()
        .clone();
    assert_eq!(notice_step["attempts"], 6, "{notice_step:#}");
    app.confirm_processor(&id).await;
    let r = app.run_until(&id, &["completed", "failed"]).await;
    assert_eq!(r["status"], "completed", "{r:#}");

    // SQL: nothing of Jane but the retained order (and her user row kept
    // as a placeholder because the order references it).
    // Her user row and address stay as placeholders (the retained order
    // and the user row reference them); her comment that Bob replied to
    // stays as an empty placeholder; her own reply is gone.
    let users = app.rows("SELECT * FROM users WHERE id = 1").await;
    assert_eq!(users.len(), 1);
    assert!(
        users[0].starts_with("1|erased:") && users[0].ends_with("|NULL|10"),
        "{users:?}"
    );
    assert_eq!(
        app.rows("SELECT * FROM addresses WHERE id = 10").await,
        vec!["10|NULL|NULL"]
    );
    assert!(app
        .rows("SELECT * FROM profiles WHERE user_id = 1")
        .await
        .is_empty());
    assert_eq!(
        app.rows("SELECT * FROM comments WHERE id IN (100, 102)")
            .await,
        vec!["100|NULL|NULL|NULL|NULL"]
    );
    assert_eq!(
        app.rows("SELECT id, billing_name FROM orders WHERE customer_id = 1")
            .await,
        vec!["500|Jane Doe"]
    );
    let app_step = &r["steps"][1]["result"]["datasets"];
    assert_eq!(
        app_step[0]["retained_ground"], "referenced by orders",
        "{app_step:#}"
    );
    assert_eq!(
        app_step[4]["retained_ground"], "§147 AO: fiscal records",
        "{app_step:#}"
    );
    // Bob untouched.
    assert_eq!(
        (
            app.rows("SELECT * FROM users WHERE id = 2").await,
            app.rows("SELECT * FROM comments WHERE author_id = 2 ORDER BY id")
                .await,
            app.rows("SELECT * FROM orders WHERE customer_id = 2").await,
        ),
        before_bob
    );
    // Files: Jane's avatar and thumbnail gone, Bob's kept, nothing outside touched.
    assert_eq!(
        files_under(&app.files),
        vec!["avatars/2/bob.png", "thumbs/2/bob.png"]
    );
    assert!(store.dir().join("sentinel.txt").exists());
    // Redis: only Jane's session gone.
    let keys = app.redis_keys().await;
    assert!(keys.iter().all(|k| !k.ends_with("session:1")), "{keys:?}");
    assert!(keys.iter().any(|k| k.ends_with("session:2")), "{keys:?}");
    // The recipient was told by email (the development outbox), with the
    // identities it needs to find her.
    let mail = std::fs::read_dir(store.dir().join("outbox"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|m| m.contains("office@tax.example"))
        .expect("a notice to the tax advisor");
    assert!(
        mail.contains(&id) && mail.contains("jane@example.com"),
        "{mail}"
    );
    // Vault: the subject answers 410 Gone.
    let subject = r["subject"].as_str().unwrap();
    let g = app
        .server
        .call(
            Method::GET,
            &format!("/v1/subjects/{subject}"),
            Some(&app.key),
            None,
        )
        .await;
    assert_eq!(g.status, 410);
    // The verification step passed; the completion record is signed and
    // holds no personal value.
    let steps = r["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["status"] == "done"), "{r:#}");
    assert_eq!(steps.last().unwrap()["kind"], "verify");
    let c = app
        .server
        .call(
            Method::GET,
            &format!("/v1/requests/{id}/completion"),
            Some(&app.key),
            None,
        )
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert_eq!(c.body["signature"]["alg"], "ed25519");
    let text = c.body.to_string();
    for value in [
        "jane@example.com",
        "Jane Doe",
        "Jane Street",
        "me.png",
        "jane-session",
    ] {
        assert!(!text.contains(value), "completion record leaks {value}");
    }
    // The audit chain still verifies and names no value.
    let report = app.server.vault.audit().verify().await.unwrap();
    assert!(report.first_break.is_none(), "{report:?}");
    app.server.stop().await;
}

async fn access_archive_holds_everything_and_its_link_works_once(store: TestStore) {
    access_scenario(store, false).await
}

async fn access_scenario(store: TestStore, mysql: bool) {
    let Some(app) = app_on(&store, 0, mysql).await else {
        return;
    };
    let id = app.request("access", "jane@example.com").await;
    let r = app
        .run_until(&id, &["waiting_processor", "completed", "failed"])
        .await;
    assert_eq!(r["status"], "waiting_processor", "{r:#}");
    let (url, mut z) = app.archive(&id).await;
    let names: Vec<String> = (0..z.len())
        .map(|i| z.by_index(i).unwrap().name().to_owned())
        .collect();
    let all = names.join("\n");
    for want in [
        "index.html",
        "manifest.json",
        "data/app/users.json",
        "data/app/orders.csv",
        "data/sessions/sessions.json",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from\n{all}"
        );
    }
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("files/uploads/avatars/") && n.ends_with("me.png")),
        "{all}"
    );
    let users = entry(&mut z, "data/app/users.json");
    assert!(
        users.contains("jane@example.com") && !users.contains("bob@example.com"),
        "{users}"
    );
    let comments = entry(&mut z, "data/app/comments.json");
    assert!(
        comments.contains("reply by jane") && !comments.contains("reply by bob"),
        "{comments}"
    );
    // The processor has not answered yet.
    let manifest = entry(&mut z, "manifest.json");
    assert!(manifest.contains("collect in crm_api"), "{manifest}");
    // The link works once.
    let again = app.server.http.get(&url).send().await.unwrap();
    assert_eq!(again.status(), 404);
    // Nothing was changed by an access request.
    assert_eq!(
        app.rows("SELECT id FROM users ORDER BY id").await,
        vec!["1", "2"]
    );
    assert_eq!(files_under(&app.files).len(), 4);
    // The processor answers with what it holds; the archive is made again
    // with its records, and the processor is no longer pending.
    app.confirm_processor_with(
        &id,
        json!({"holds_nothing_more": false, "data": [
            {"dataset": "contacts", "records": [{"email": "jane@example.com", "tier": "gold"}]}
        ]}),
    )
    .await;
    let r = app.run_until(&id, &["completed", "failed"]).await;
    assert_eq!(r["status"], "completed", "{r:#}");
    assert!(!r.to_string().contains("gold"), "{r:#}");
    let (_, mut z) = app.archive(&id).await;
    let contacts = entry(&mut z, "data/crm_api/contacts.json");
    assert!(contacts.contains("gold"), "{contacts}");
    let manifest = entry(&mut z, "manifest.json");
    assert!(!manifest.contains("collect in crm_api"), "{manifest}");
    // The answer went with the request's payload when it closed.
    let answers = app
        .state
        .vault
        .execution()
        .processor_answers(
            &custos_core::ids::TenantId::parse("acme").unwrap(),
            &custos_core::ids::RequestId::parse(&id).unwrap(),
        )
        .await
        .unwrap();
    assert!(answers.is_empty());
    app.server.stop().await;
}

async fn a_step_of_a_dead_worker_is_taken_over_after_its_lease(store: TestStore) {
    let Some(app) = app(&store, 0).await else {
        return;
    };
    let id = app.request("erasure", "jane@example.com").await;
    // Planned; then a worker takes the first step (the files) and dies
    // holding its lease.
    assert_eq!(app.state.executor().plan_verified().await.unwrap(), 1);
    let dead = app
        .state
        .vault
        .execution()
        .claim_step("dead-worker", 50_000)
        .await
        .unwrap()
        .expect("a ready step");
    assert_eq!(dead.request.to_string(), id);
    assert_eq!(dead.step, 1);
    // While the lease holds, nobody else takes it, and later steps wait.
    assert_eq!(app.state.executor().run_ready_steps(10).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(80)).await;
    let r = app.run_until(&id, &["waiting_processor", "failed"]).await;
    assert_eq!(r["status"], "waiting_processor", "{r:#}");
    let step = &r["steps"][0];
    assert_eq!(step["status"], "done", "{step:#}");
    assert_eq!(step["attempts"], 2, "taken over once: {step:#}");
    // The dead worker's late answer is refused: its lease is gone.
    assert!(app
        .state
        .vault
        .execution()
        .end_step(&dead, custos_store::StepEnd::Failed("late".into()))
        .await
        .is_err());
    assert_eq!(
        files_under(&app.files),
        vec!["avatars/2/bob.png", "thumbs/2/bob.png"]
    );
    app.confirm_processor(&id).await;
    let r = app.run_until(&id, &["completed", "failed"]).await;
    assert_eq!(r["status"], "completed", "{r:#}");
    assert!(app
        .rows("SELECT * FROM users WHERE email = 'jane@example.com'")
        .await
        .is_empty());
    app.server.stop().await;
}

async fn malicious_identity_values_are_harmless(store: TestStore) {
    let Some(app) = app(&store, 0).await else {
        return;
    };
    let users = app.rows("SELECT * FROM users ORDER BY id").await;
    let mut refused = 0;
    for email in [
        "x'or'1'='1@example.com",
        "a\");drop-table-users--@example.com",
        "..%2f..%2fetc@example.com",
    ] {
        let r = app
            .server
            .call(
                Method::POST,
                "/v1/requests",
                Some(&app.key),
                Some(json!({"type": "erasure", "identity": {"email": email}, "verified_by_app": true})),
            )
            .await;
        if r.status == 400 {
            refused += 1;
            continue; // refused as an email: harmless too
        }
        assert_eq!(r.status, 201, "{:?}", r.body);
        let id = r.body["id"].as_str().unwrap().to_owned();
        let r = app
            .run_until(&id, &["waiting_processor", "completed", "failed"])
            .await;
        assert_ne!(r["status"], "failed", "{r:#}");
    }
    // At least one of them reached every store (else this test proves nothing).
    assert!(refused < 3, "every hostile value was refused at the door");
    assert_eq!(app.rows("SELECT * FROM users ORDER BY id").await, users);
    assert_eq!(files_under(&app.files).len(), 4);
    assert_eq!(app.redis_keys().await.len(), 3);
    app.server.stop().await;
}

async fn restriction_and_objection_reach_vault_ledger_and_processors(store: TestStore) {
    let Some(app) = app(&store, 0).await else {
        return;
    };
    let users = app.rows("SELECT * FROM users ORDER BY id").await;
    let id = app.request("restriction", "jane@example.com").await;
    let r = app.run_until(&id, &["waiting_processor", "failed"]).await;
    assert_eq!(r["status"], "waiting_processor", "{r:#}");
    // Only the vault, the processor and the recipient take part.
    let kinds: Vec<&str> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["system"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(kinds, vec!["crm_api", "-", "vault"], "{r:#}");
    let notice: Value =
        serde_json::from_slice(&app.processor.notices.lock().unwrap().last().unwrap().1).unwrap();
    assert_eq!(notice["type"], "restriction");
    app.confirm_processor(&id).await;
    let r = app.run_until(&id, &["completed", "failed"]).await;
    assert_eq!(r["status"], "completed", "{r:#}");
    let subject = r["subject"].as_str().unwrap().to_owned();
    let g = app
        .server
        .call(
            Method::GET,
            &format!("/v1/subjects/{subject}/restriction"),
            Some(&app.key),
            None,
        )
        .await;
    assert_eq!(g.body["restricted"], true, "{:?}", g.body);

    // A restriction does not suspend the person's own access request: the
    // executor exports the vault under `subject_request`, and says so in the
    // audit log, while an API key naming that purpose is refused.
    let access = app.request("access", "jane@example.com").await;
    let r = app
        .run_until(&access, &["waiting_processor", "completed", "failed"])
        .await;
    assert_eq!(r["status"], "waiting_processor", "{r:#}");
    let audit = app
        .server
        .call(
            Method::GET,
            &format!("/v1/audit?subject={subject}&limit=1000"),
            Some(&app.key),
            None,
        )
        .await;
    let exports: Vec<String> = audit.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "export")
        .map(|e| {
            format!(
                "{}:{}",
                e["purpose"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert!(!exports.is_empty(), "{:?}", audit.body);
    assert!(
        exports.iter().all(|e| e == "subject_request:ok"),
        "{exports:?}"
    );
    let by_key = app
        .server
        .call(
            Method::GET,
            &format!("/v1/subjects/{subject}/export?purpose=subject_request"),
            Some(&app.key),
            None,
        )
        .await;
    assert_eq!((by_key.status, by_key.code()), (403, "subject_restricted"));

    // A restricted subject's purposes are all refused; lift it to see the
    // objection on its own.
    let check = format!("/v1/consent/check?subject={subject}&purpose=analytics");
    let c = app
        .server
        .call(Method::GET, &check, Some(&app.key), None)
        .await;
    assert_eq!(
        (&c.body["allowed"], &c.body["reason"]),
        (&json!(false), &json!("restricted"))
    );
    let d = app
        .server
        .call(
            Method::DELETE,
            &format!("/v1/subjects/{subject}/restriction"),
            Some(&app.key),
            None,
        )
        .await;
    assert_eq!(d.status, 200, "{:?}", d.body);

    // Objection: the legitimate-interest purpose is objected to in the ledger.
    let check = format!("/v1/consent/check?subject={subject}&purpose=analytics");
    let before = app
        .server
        .call(Method::GET, &check, Some(&app.key), None)
        .await;
    assert_eq!(before.body["allowed"], true, "{:?}", before.body);
    let id = app.request("objection", "jane@example.com").await;
    app.run_until(&id, &["waiting_processor", "failed"]).await;
    app.confirm_processor(&id).await;
    let r = app.run_until(&id, &["completed", "failed"]).await;
    assert_eq!(r["status"], "completed", "{r:#}");
    let after = app
        .server
        .call(Method::GET, &check, Some(&app.key), None)
        .await;
    assert_eq!(after.body["allowed"], false, "{:?}", after.body);
    // The application's own stores are not changed by either.
    assert_eq!(app.rows("SELECT * FROM users ORDER BY id").await, users);
    app.server.stop().await;
}

async fn rectification_changes_every_copy_and_the_vault_identity(store: TestStore) {
    let Some(app) = app(&store, 0).await else {
        return;
    };
    let s = &app.server;
    let found = s
        .call(
            Method::GET,
            "/v1/subjects/lookup?email=jane@example.com",
            Some(&app.key),
            None,
        )
        .await;
    let subject = found.body["id"].as_str().unwrap().to_owned();
    let record = format!("/v1/subjects/{subject}/records/profiles/main");
    let put = s
        .call(
            Method::PUT,
            &record,
            Some(&app.key),
            Some(json!({"fields": {"email": "jane@example.com", "nickname": "JD"}})),
        )
        .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    let others = app.rows("SELECT * FROM users WHERE id <> 1").await;

    let r = s
        .call(
            Method::POST,
            "/v1/requests",
            Some(&app.key),
            Some(json!({
                "type": "rectification",
                "identity": {"email": "jane@example.com"},
                "verified_by_app": true,
                "changes": {"email": "Jane.New@example.com", "name": "Jane Q. Doe"},
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    app.run_until(&id, &["waiting_processor", "failed"]).await;
    let notice: Value =
        serde_json::from_slice(&app.processor.notices.lock().unwrap().last().unwrap().1).unwrap();
    assert_eq!(notice["type"], "rectification");
    // Art. 19: the processor learns what changed, in the signed body.
    assert_eq!(
        notice["changes"],
        json!({"email": "Jane.New@example.com", "name": "Jane Q. Doe"})
    );
    // The processor's note is free text: kept sealed, shown to the caller;
    // counts keep numbers under plain names only.
    app.confirm_processor_with(
        &id,
        json!({"holds_nothing_more": true, "note": crate::steperrors::SECRET_TEXT,
               "counts": {"contacts": 1, "Jane Roe": 2, "tickets": "see note"}}),
    )
    .await;
    let done = app.run_until(&id, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    let step = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "processor_notice")
        .unwrap();
    assert_eq!(step["note"], crate::steperrors::SECRET_TEXT, "{step:#}");
    assert_eq!(step["result"]["counts"], json!({"contacts": 1}), "{step:#}");
    crate::steperrors::assert_no_clear_text(&store).await;
    // And so does the recipient told by email.
    let mail = std::fs::read_dir(store.dir().join("outbox"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|m| m.contains("office@tax.example") && m.contains(&id))
        .expect("a notice to the tax advisor");
    assert!(
        mail.contains("name: Jane Q. Doe") && mail.contains("email: Jane.New@example.com"),
        "{mail}"
    );

    // The application's row, and no one else's.
    assert_eq!(
        app.rows("SELECT email, name FROM users WHERE id = 1").await,
        vec!["Jane.New@example.com|Jane Q. Doe".to_owned()]
    );
    assert_eq!(app.rows("SELECT * FROM users WHERE id <> 1").await, others);
    // The vault record: the changed field only.
    let rec = s
        .call(
            Method::GET,
            &format!("{record}?purpose=support"),
            Some(&app.key),
            None,
        )
        .await;
    assert_eq!(
        rec.body["fields"],
        json!({"email": "Jane.New@example.com", "nickname": "JD"}),
        "{:?}",
        rec.body
    );
    // The vault identity: found by the new address, not by the old.
    let new = s
        .call(
            Method::GET,
            "/v1/subjects/lookup?email=jane.new@example.com",
            Some(&app.key),
            None,
        )
        .await;
    assert_eq!(
        (new.status, new.body["id"].as_str()),
        (200, Some(subject.as_str()))
    );
    let old = s
        .call(
            Method::GET,
            "/v1/subjects/lookup?email=jane@example.com",
            Some(&app.key),
            None,
        )
        .await;
    assert_eq!(old.status, 404);
    // Counts, never values, in the step results; the vault step counts
    // the record and the identity.
    let text = done.to_string();
    assert!(
        !text.contains("Jane.New") && !text.contains("Q. Doe"),
        "{text}"
    );
    let vault = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["system"] == "vault")
        .unwrap();
    let ds = &vault["result"]["datasets"];
    assert!(ds.to_string().contains("\"rectified\":1"), "{vault:#}");
    app.server.stop().await;
}

async fn a_person_who_verified_by_code_gets_receipt_and_link_by_mail(store: TestStore) {
    let Some(app) = app(&store, 0).await else {
        return;
    };
    let s = &app.server;
    let r = s
        .call(
            Method::POST,
            "/v1/requests",
            Some(&app.key),
            Some(json!({"type": "access", "identity": {"email": "jane@example.com"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let outbox = store.dir().join("outbox");
    let mail = std::fs::read_to_string(outbox.join(format!("{id}.eml"))).unwrap();
    let code: String = mail.split("is: ").nth(1).unwrap().chars().take(6).collect();
    let v = s
        .call(
            Method::POST,
            &format!("/v1/requests/{id}/verify"),
            Some(&app.key),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    app.run_until(&id, &["waiting_processor", "failed"]).await;
    app.confirm_processor(&id).await;
    let done = app.run_until(&id, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done:#}");

    let receipt = std::fs::read_to_string(outbox.join(format!("{id}-receipt.eml"))).unwrap();
    assert!(receipt.starts_with("To: jane@example.com"), "{receipt}");
    assert!(receipt.contains("users 1 found"), "{receipt}");
    assert!(receipt.contains("\"signature\""), "{receipt}");
    // Counts, never the person's data.
    assert!(
        !receipt.contains("Jane Doe") && !receipt.contains("tea"),
        "{receipt}"
    );
    let path = receipt
        .split(&format!("{}/", app.cfg.public_url.trim_end_matches('/')))
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert!(path.starts_with("v1/archives/"), "{path}");
    let res = s
        .http
        .get(format!("{}/{path}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    // A request the application vouched for is answered by the application.
    let vouched = app.request("access", "jane@example.com").await;
    app.run_until(&vouched, &["waiting_processor", "failed"])
        .await;
    app.confirm_processor(&vouched).await;
    app.run_until(&vouched, &["completed", "failed"]).await;
    assert!(!outbox.join(format!("{vouched}-receipt.eml")).exists());
    app.server.stop().await;
}
