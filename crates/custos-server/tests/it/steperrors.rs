//! Failed steps (issue 16), on SQLite and PostgreSQL: a permanent error
//! fails its step at the first attempt with a message that says what to
//! fix, an outage is retried; an operator retries or skips a failed step
//! with a reason (audited); reasons and notes are stored sealed, shown to
//! the caller, and wiped with the request.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custos_dsr::ExecutorConfig;
use custos_map::{MapOrigin, MapSource};
use custos_server::AppState;
use custos_testkit::{backend_tests, Backend, TestServer, TestStore};
use reqwest::Method;
use serde_json::{json, Value};

backend_tests!(
    a_wrong_database_fails_at_once_naming_it,
    an_outage_is_retried,
    a_failed_step_is_retried_once_fixed,
    a_retry_wakes_the_executor_at_once,
    a_skipped_step_completes_the_request_with_its_reason_sealed,
    reasons_are_sealed_shown_and_wiped,
);

/// Free text a person might type: a name and an IBAN.
pub(crate) const SECRET_TEXT: &str = "Jane Roe DE89370400440532013000";

fn map_yaml(kind: &str) -> String {
    format!(
        r#"version: 1
organisation: {{ controller: Test GmbH, contact: privacy@test.example }}
purposes:
  - {{ id: account, title: Accounts, legal_basis: contract, subjects: [customer] }}
systems:
  - id: app_db
    kind: {kind}
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
"#
    )
}

struct App {
    server: TestServer,
    state: AppState,
    cfg: ExecutorConfig,
    key: String,
}

/// A server whose map has one application database of `kind`, reached
/// through `APP_DB_URL = db_url`.
async fn app(store: &TestStore, kind: &str, db_url: &str) -> App {
    let map_file = store.dir().join("map.yaml");
    std::fs::write(&map_file, map_yaml(kind)).unwrap();
    let (map, _) = MapSource::load(MapOrigin::File(map_file)).expect("valid map");
    let mut cfg = ExecutorConfig::new("http://127.0.0.1:1");
    cfg.retry_base = Duration::from_millis(5);
    cfg.env = HashMap::from([("APP_DB_URL".to_owned(), db_url.to_owned())]).into();
    let cell = Arc::new(Mutex::new(None));
    let (c2, cfg2) = (cell.clone(), cfg.clone());
    let server = crate::support::start_with(store, move |s| {
        let s = s.with_map(map).with_executor_config(cfg2);
        *c2.lock().unwrap() = Some(s.clone());
        s
    })
    .await;
    let state = cell.lock().unwrap().take().unwrap();
    server.tenant("acme").await;
    let key = server.key("acme", &["dsr", "audit"]).await;
    App {
        server,
        state,
        cfg,
        key,
    }
}

/// The application's database on the store's engine: (kind, URL, pool).
/// Without `users` when `with_table` is false.
async fn app_db(store: &TestStore) -> (&'static str, String) {
    match store.backend {
        Backend::Sqlite => (
            "sqlite",
            format!("sqlite://{}?mode=rwc", store.dir().join("app.db").display()),
        ),
        Backend::Postgres => (
            "postgres",
            custos_testkit::pg::server()
                .unwrap()
                .create_database("app")
                .await,
        ),
    }
}

async fn create_users(url: &str) {
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(url).await.unwrap();
    for s in [
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)",
        "INSERT INTO users VALUES (1, 'jane@example.com')",
    ] {
        sqlx::query(s).execute(&db).await.unwrap();
    }
    db.close().await;
}

impl App {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> custos_testkit::Reply {
        self.server.call(method, path, Some(&self.key), body).await
    }

    async fn access_request(&self) -> String {
        let r = self
            .call(
                Method::POST,
                "/v1/requests",
                Some(json!({"type": "access", "identity": {"email": "jane@example.com"}, "verified_by_app": true})),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    async fn get(&self, id: &str) -> Value {
        let r = self
            .call(Method::GET, &format!("/v1/requests/{id}"), None)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body
    }

    /// Runs executor rounds until `done` holds of the request.
    async fn run_until(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..400 {
            self.state.executor().round().await.unwrap();
            let r = self.get(id).await;
            if done(&r) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never reached: {:#}", self.get(id).await);
    }

    async fn decide(
        &self,
        id: &str,
        step: i64,
        action: &str,
        reason: &str,
    ) -> custos_testkit::Reply {
        self.call(
            Method::POST,
            &format!("/v1/requests/{id}/steps/{step}/{action}"),
            Some(json!({ "reason": reason })),
        )
        .await
    }

    async fn audit_actions(&self) -> Vec<String> {
        let r = self.call(Method::GET, "/v1/audit?limit=500", None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let text = r.body.to_string();
        assert!(!text.contains(SECRET_TEXT), "free text in the audit log");
        r.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

fn status_is(s: &'static str) -> impl Fn(&Value) -> bool {
    move |r| r["status"] == s
}

async fn a_wrong_database_fails_at_once_naming_it(store: TestStore) {
    let (kind, url) = app_db(&store).await;
    // The right server, a database that does not exist.
    let wrong = match store.backend {
        Backend::Sqlite => format!("sqlite://{}", store.dir().join("shop.db").display()),
        // The right user and password (CI's server checks them).
        Backend::Postgres => {
            let mut u = reqwest::Url::parse(&url).unwrap();
            u.set_path("/shop");
            u.to_string()
        }
    };
    let password = reqwest::Url::parse(&wrong)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
        .unwrap_or_default();
    let app = app(&store, kind, &wrong).await;
    let id = app.access_request().await;
    let r = app.run_until(&id, status_is("failed")).await;
    let step = &r["steps"][0];
    assert_eq!(step["status"], "failed", "{r:#}");
    assert_eq!(step["attempts"], 1, "failed at its first attempt: {r:#}");
    let error = step["error"].as_str().unwrap();
    let want = match store.backend {
        Backend::Sqlite => {
            "system app_db: opening: the database cannot be opened (check APP_DB_URL)"
        }
        Backend::Postgres => "system app_db: database `shop` does not exist (check APP_DB_URL)",
    };
    assert_eq!(error, want);
    assert!(password.is_empty() || !error.contains(&password), "{error}");
}

async fn an_outage_is_retried(store: TestStore) {
    // A PostgreSQL server URL on a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/shop");
    let app = app(&store, "postgres", &url).await;
    let id = app.access_request().await;
    let r = app
        .run_until(&id, |r| {
            r["steps"][0]["attempts"].as_i64().unwrap_or(0) >= 2
        })
        .await;
    let step = &r["steps"][0];
    assert!(
        step["status"] == "pending" || step["status"] == "running" || step["status"] == "failed",
        "{r:#}"
    );
    let error = step["error"].as_str().unwrap_or_default();
    assert!(error.contains("connecting"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
}

async fn a_failed_step_is_retried_once_fixed(store: TestStore) {
    let (kind, url) = app_db(&store).await;
    // The database exists but lacks the table the map names.
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&url).await.unwrap().close().await;
    let app = app(&store, kind, &url).await;
    let id = app.access_request().await;
    let r = app.run_until(&id, status_is("failed")).await;
    assert_eq!(r["steps"][0]["attempts"], 1, "{r:#}");
    let error = r["steps"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("app_db") && error.contains("users"),
        "{error}"
    );

    // Bad input is refused, naming the field; a step that has not failed
    // cannot be retried.
    let bad = app.decide(&id, 1, "retry", "  ").await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    assert!(bad.body["detail"].as_str().unwrap().contains("reason"));
    let bad = app
        .call(
            Method::POST,
            &format!("/v1/requests/{id}/steps/1/retry"),
            Some(json!({})),
        )
        .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    assert_eq!(app.decide(&id, 9, "retry", "why").await.status, 404);

    create_users(&url).await;
    let r = app.decide(&id, 1, "retry", SECRET_TEXT).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["reason"], SECRET_TEXT);
    assert_eq!(app.get(&id).await["status"], "running");
    let r = app.run_until(&id, status_is("completed")).await;
    assert_eq!(r["steps"][0]["status"], "done", "{r:#}");
    assert_eq!(r["steps"][0]["attempts"], 1, "{r:#}");
    assert_eq!(r["steps"][0]["reason"], SECRET_TEXT);
    let again = app.decide(&id, 1, "retry", "again").await;
    assert_eq!(again.status, 409, "{:?}", again.body);
    assert!(app
        .audit_actions()
        .await
        .contains(&"dsr.step.retried".to_owned()));
    assert_no_clear_text(&store).await;
    // Both decisions are in the API's description.
    let doc = app
        .server
        .call(Method::GET, "/openapi.json", None, None)
        .await;
    for action in ["retry", "skip"] {
        let path = format!("/v1/requests/{{id}}/steps/{{step}}/{action}");
        assert!(doc.body["paths"][&path]["post"].is_object(), "{path}");
    }
}

async fn a_skipped_step_completes_the_request_with_its_reason_sealed(store: TestStore) {
    let (kind, url) = app_db(&store).await;
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&url).await.unwrap().close().await;
    let app = app(&store, kind, &url).await;
    let id = app.access_request().await;
    app.run_until(&id, status_is("failed")).await;
    let r = app.decide(&id, 1, "skip", SECRET_TEXT).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "skipped");
    let r = app.run_until(&id, status_is("completed")).await;
    assert_eq!(r["steps"][0]["status"], "skipped", "{r:#}");
    assert_eq!(r["steps"][0]["reason"], SECRET_TEXT);

    let c = app
        .call(Method::GET, &format!("/v1/requests/{id}/completion"), None)
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    let step = &c.body["record"]["steps"][0];
    assert_eq!(step["status"], "skipped", "{step:#}");
    assert_eq!(step["skipped"], true, "{step:#}");
    assert!(
        step["reason_sealed"].as_str().unwrap().len() > 40,
        "{step:#}"
    );
    assert!(step.get("reason").is_none(), "{step:#}");
    assert!(!c.body.to_string().contains("DE89370400440532013000"));
    assert!(app
        .audit_actions()
        .await
        .contains(&"dsr.step.skipped".to_owned()));
    assert_no_clear_text(&store).await;
}

async fn reasons_are_sealed_shown_and_wiped(store: TestStore) {
    let (kind, url) = app_db(&store).await;
    create_users(&url).await;
    let app = app(&store, kind, &url).await;
    // An extension and a rejection, both with a person's words.
    let r = app
        .call(
            Method::POST,
            "/v1/requests",
            Some(json!({"type": "erasure", "identity": {"email": "bob@example.com"}})),
        )
        .await;
    let rejected = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .call(
            Method::POST,
            &format!("/v1/requests/{rejected}/extend"),
            Some(json!({"months": 1, "reason": format!("asked by {SECRET_TEXT}")})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["extension_reason"],
        format!("asked by {SECRET_TEXT}")
    );
    let r = app
        .call(
            Method::POST,
            &format!("/v1/requests/{rejected}/reject"),
            Some(json!({"reason": SECRET_TEXT})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["rejection_reason"], SECRET_TEXT);
    let shown = app.get(&rejected).await;
    assert_eq!(shown["rejection_reason"], SECRET_TEXT);
    assert_eq!(shown["extension_reason"], format!("asked by {SECRET_TEXT}"));
    assert_no_clear_text(&store).await;

    // Seven days after closing the sweep destroys the request's text key:
    // here, "seven days" is now.
    let later = custos_store::now_us() + 1;
    assert!(
        app.state
            .vault
            .execution()
            .wipe_closed(later)
            .await
            .unwrap()
            >= 1
    );
    let shown = app.get(&rejected).await;
    assert_eq!(shown["rejection_reason"], Value::Null, "{shown:#}");
    assert_eq!(shown["extension_reason"], Value::Null, "{shown:#}");
}

/// Neither the data store's files (SQLite, with its WAL) nor its rows
/// (PostgreSQL, every column as text) hold [`SECRET_TEXT`] in clear.
pub(crate) async fn assert_no_clear_text(store: &TestStore) {
    let needle = "DE89370400440532013000";
    match store.backend {
        Backend::Sqlite => {
            let mut found = Vec::new();
            for entry in std::fs::read_dir(store.dir()).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                // The application's own database is not ours.
                if !path.is_file() || name.starts_with("app.db") || name.ends_with(".yaml") {
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(name);
                }
            }
            assert!(found.is_empty(), "clear text in {found:?}");
        }
        Backend::Postgres => {
            let db = sqlx::PgPool::connect(&store.database_url).await.unwrap();
            for table in ["dsr_requests", "dsr_steps", "audit_log"] {
                let rows: Vec<(String,)> =
                    sqlx::query_as(&format!("SELECT t::text FROM {table} t"))
                        .fetch_all(&db)
                        .await
                        .unwrap_or_default();
                let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
                for (r,) in rows {
                    assert!(!r.contains(needle) && !r.contains(&hex), "{table}: {r}");
                }
            }
            db.close().await;
        }
    }
}

/// The application's database on MariaDB (the store on SQLite): a wrong
/// password and a missing column fail the step at its first attempt,
/// naming the variable or the column, never the password.
#[tokio::test]
async fn mysql_wrong_password_and_missing_column_fail_at_once() {
    let Some(server) = custos_testkit::mysql::server() else {
        eprintln!("MariaDB not available: step errors on MySQL skipped");
        return;
    };
    let Some(store) = TestStore::new(Backend::Sqlite).await else {
        return;
    };
    let url = server.create_database("steperr").await;
    let mut wrong = reqwest::Url::parse(&url).unwrap();
    wrong.set_password(Some("hunter2")).unwrap();
    let first = app(&store, "mysql", wrong.as_str()).await;
    let id = first.access_request().await;
    let r = first.run_until(&id, status_is("failed")).await;
    assert_eq!(r["steps"][0]["attempts"], 1, "{r:#}");
    let error = r["steps"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("authentication failed") && error.contains("APP_DB_URL"),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");

    // The right password; `users` lacks the column `email` the map names.
    let db = sqlx::MySqlPool::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY)")
        .execute(&db)
        .await
        .unwrap();
    let store = TestStore::new(Backend::Sqlite).await.unwrap();
    let second = app(&store, "mysql", &url).await;
    let id = second.access_request().await;
    let r = second.run_until(&id, status_is("failed")).await;
    assert_eq!(r["steps"][0]["attempts"], 1, "{r:#}");
    let error = r["steps"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("app_db") && error.contains("users") && error.contains("email"),
        "{error}"
    );
    eprintln!("mysql step errors: {error}");
}

/// A retry wakes the executor, as a confirmation does: with a fallback
/// poll of a minute the retried request still completes at once. On
/// PostgreSQL the executor runs in a second server (its own vault on the
/// same stores), woken through LISTEN/NOTIFY.
async fn a_retry_wakes_the_executor_at_once(store: TestStore) {
    let (kind, url) = app_db(&store).await;
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&url).await.unwrap().close().await;
    let app = app(&store, kind, &url).await;
    // Its listener is up before the request is filed.
    let executor = crate::support::IdleExecutor::spawn(&store, &app.state, &app.cfg).await;
    let wait_for = |id: String, status: &'static str| {
        let app = &app;
        async move { crate::support::until_status(status, || app.get(&id)).await }
    };
    let id = app.access_request().await;
    wait_for(id.clone(), "failed").await;
    create_users(&url).await;
    // The executor found nothing more to do and waits for a minute.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = app.decide(&id, 1, "retry", "table created").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let finished = wait_for(id.clone(), "completed").await;
    eprintln!("woken: completed {finished:?} after the retry");
    executor.stop().await;
    app.server.stop().await;
}
