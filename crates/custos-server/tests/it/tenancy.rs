//! Two tenants on one server (issue 16, cases 1 and 6): a request of
//! `globex` finds and changes nothing of `acme` in any kind of system —
//! an SQL database shared by both with a tenant column (on the store's
//! engine, and on MySQL), a file tree shared by both with a `{tenant}`
//! part, an SQL database, a file tree and a Redis bound to `acme` only, and processors bound to one tenant each — through
//! access, erasure, rectification, the dry-run plan and processor notices;
//! an unbound system is refused and named; a processor's callback signed
//! for one tenant's request does not verify for another's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custos_connectors::notice::{sign, sign_callback, CallbackTarget};
use custos_dsr::ExecutorConfig;
use custos_map::{MapOrigin, MapSource};
use custos_server::AppState;
use custos_testkit::{backend_tests, Backend, TestServer, TestStore};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::{AnyPool, Row};

backend_tests!(
    a_tenant_finds_and_changes_nothing_of_another,
    a_tenant_finds_and_changes_nothing_of_another_on_mysql,
    an_unbound_system_is_refused_and_named,
    a_callback_of_one_tenant_does_not_confirm_another_request,
);

/// The shared database's tables: `members` carry the tenant in `org_id`
/// (acme = 1, globex = 2); `notes` are reached through their member only.
const SHARED: &[&str] = &[
    "CREATE TABLE members (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL, email VARCHAR(100), name VARCHAR(100))",
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, member_id INTEGER REFERENCES members(id), body VARCHAR(100))",
    // The same email in both tenants: two different people.
    "INSERT INTO members VALUES (1, 1, 'jane@example.com', 'Jane of Acme'), \
     (2, 2, 'jane@example.com', 'Jane of Globex'), (3, 1, 'bob@example.com', 'Bob of Acme')",
    "INSERT INTO notes VALUES (10, 1, 'acme note'), (20, 2, 'globex note'), (30, 3, 'bob note')",
];

/// Acme's own database.
const ACME_DB: &[&str] = &[
    "CREATE TABLE tickets (id INTEGER PRIMARY KEY, email VARCHAR(100), subject VARCHAR(100))",
    "INSERT INTO tickets VALUES (1, 'jane@example.com', 'help')",
];

fn map_yaml(
    shared_kind: &str,
    acme_kind: &str,
    ns: &str,
    urls: (&str, &str),
    loose: bool,
) -> String {
    let (acme_url, globex_url) = urls;
    let loose = if loose {
        format!(
            r#"
  - id: loose_cache
    kind: redis
    connection: {{ url_env: REDIS_URL }}
    datasets:
      - id: cache
        key: "{ns}cache:{{email}}"
        subject: {{ identity: email }}
        purposes: [account]
        erasure: delete
        retention: {{ period: 30d, from_event: account_closed }}
        fields:
          - {{ name: email, category: user.contact.email, identity: email }}
"#
        )
    } else {
        String::new()
    };
    format!(
        r#"version: 1
organisation: {{ controller: Multi SaaS GmbH, contact: privacy@multi.example }}
purposes:
  - {{ id: account, title: Provide the account, legal_basis: contract, subjects: [customer] }}
processors:
  - id: crm_acme
    name: Acme's CRM
    role: processor
    country: IE
    dpa: {{ status: signed, date: "2024-01-01" }}
    notify: {{ url: "{acme_url}" }}
    allow_insecure_loopback: true
    purposes: [account]
    tenants: [acme]
  - id: crm_globex
    name: Globex's CRM
    role: processor
    country: IE
    dpa: {{ status: signed, date: "2024-01-01" }}
    notify: {{ url: "{globex_url}" }}
    allow_insecure_loopback: true
    purposes: [account]
    tenants: [globex]
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
  - id: shared
    kind: {shared_kind}
    connection: {{ url_env: SHARED_DB_URL }}
    tenant_values: {{ acme: "1", globex: "2" }}
    datasets:
      - id: members
        table: members
        tenant_column: org_id
        subject: {{ identity: email }}
        purposes: [account]
        erasure: delete
        retention: {{ period: 30d, from_event: account_closed }}
        fields:
          - {{ name: id, category: user.unique_id, identity: user_id, primary_key: true }}
          - {{ name: org_id, category: system.operations }}
          - {{ name: email, category: user.contact.email, identity: email }}
          - {{ name: name, category: user.name }}
      - id: notes
        table: notes
        subject: {{ via: member_id }}
        purposes: [account]
        erasure: delete
        retention: {{ period: 30d, from_event: account_closed }}
        fields:
          - {{ name: id, category: system.operations, primary_key: true }}
          - {{ name: member_id, category: user.unique_id, references: members.id }}
          - {{ name: body, category: user.content.private }}
  - id: acme_db
    kind: {acme_kind}
    connection: {{ url_env: ACME_DB_URL }}
    tenants: [acme]
    datasets:
      - id: tickets
        table: tickets
        subject: {{ identity: email }}
        purposes: [account]
        erasure: delete
        retention: {{ period: 30d, from_event: account_closed }}
        fields:
          - {{ name: id, category: system.operations, primary_key: true }}
          - {{ name: email, category: user.contact.email, identity: email }}
          - {{ name: subject, category: user.content.private }}
  - id: uploads
    kind: files
    connection: {{ root_env: FILES_ROOT }}
    tenants: [acme]
    datasets:
      - id: avatars
        path: "avatars/{{user_id}}/*"
        subject: {{ identity: user_id }}
        purposes: [account]
        erasure: delete
        retention: {{ period: 30d, from_event: account_closed }}
        fields:
          - {{ name: user_id, category: user.unique_id, identity: user_id, references: shared.members.id }}
          - {{ name: image, category: user.content.self_image }}
  - id: shared_files
    kind: files
    connection: {{ root_env: FILES_ROOT }}
    tenant_values: {{ acme: acme, globex: globex }}
    datasets:
      - id: documents
        path: "{{tenant}}/documents/{{email}}/*"
        subject: {{ identity: email }}
        purposes: [account]
        erasure: delete
        retention: {{ period: 30d, from_event: account_closed }}
        fields:
          - {{ name: email, category: user.contact.email, identity: email }}
          - {{ name: document, category: user.content.private }}
  - id: sessions
    kind: redis
    connection: {{ url_env: REDIS_URL }}
    tenants: [acme]
    datasets:
      - id: sessions
        key: "{ns}session:{{user_id}}"
        subject: {{ identity: user_id }}
        purposes: [account]
        erasure: delete
        retention: {{ period: 30d, from_column: last_seen }}
        fields:
          - {{ name: user_id, category: user.unique_id, identity: user_id, references: shared.members.id }}
{loose}"#
    )
}

/// Notices a processor received: (signature header, body).
type Notices = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A processor that accepts every notice; returns its URL.
async fn processor() -> (String, Notices) {
    let notices: Notices = Arc::default();
    let n2 = notices.clone();
    let app = axum::Router::new().route(
        "/notices",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let notices = n2.clone();
                async move {
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
    (url, notices)
}

const SECRET: &str = "shared-crm-secret-for-both-tenants";

struct App {
    server: TestServer,
    state: AppState,
    acme: String,
    globex: String,
    shared: AnyPool,
    acme_db: AnyPool,
    files: std::path::PathBuf,
    redis: redis::Client,
    ns: String,
    acme_notices: Notices,
    globex_notices: Notices,
}

async fn database(store: &TestStore, name: &str, mysql: bool) -> Option<(String, &'static str)> {
    Some(match store.backend {
        _ if mysql => (
            custos_testkit::mysql::server()?.create_database(name).await,
            "mysql",
        ),
        Backend::Sqlite => (
            format!(
                "sqlite://{}?mode=rwc",
                store.dir().join(format!("{name}.db")).display()
            ),
            "sqlite",
        ),
        Backend::Postgres => (
            custos_testkit::pg::server()?.create_database(name).await,
            "postgres",
        ),
    })
}

/// Two tenants, `acme` and `globex`, each with a subject Jane of the same
/// email; the shared database on MySQL with `mysql`.
async fn app(store: &TestStore, mysql: bool, loose: bool) -> Option<App> {
    let redis_url = custos_testkit::redis::server()?.url().to_owned();
    sqlx::any::install_default_drivers();
    let (shared_url, shared_kind) = database(store, "shared", mysql).await?;
    let (acme_url, acme_kind) = database(store, "acme", false).await?;
    let shared = AnyPool::connect(&shared_url).await.unwrap();
    for s in SHARED {
        sqlx::query(s).execute(&shared).await.unwrap();
    }
    let acme_db = AnyPool::connect(&acme_url).await.unwrap();
    for s in ACME_DB {
        sqlx::query(s).execute(&acme_db).await.unwrap();
    }
    // Acme's uploads: its user 1 and its user 2 (Globex's Jane is member 2
    // of the shared database: her id must not lead into Acme's files).
    let files = store.dir().join("files");
    for dir in [
        "avatars/1",
        "avatars/2",
        "acme/documents/jane@example.com",
        "globex/documents/jane@example.com",
    ] {
        std::fs::create_dir_all(files.join(dir)).unwrap();
        std::fs::write(files.join(dir).join("me.png"), "image").unwrap();
    }
    let ns = uuid::Uuid::new_v4().simple().to_string();
    let redis = redis::Client::open(redis_url.as_str()).unwrap();
    {
        let mut c = redis.get_multiplexed_async_connection().await.unwrap();
        for k in [
            format!("{ns}session:1"),
            format!("{ns}session:2"),
            format!("{ns}cache:jane@example.com"),
        ] {
            let _: () = redis::cmd("SET")
                .arg(k)
                .arg("v")
                .query_async(&mut c)
                .await
                .unwrap();
        }
    }
    let (acme_proc, acme_notices) = processor().await;
    let (globex_proc, globex_notices) = processor().await;
    let yaml = map_yaml(
        shared_kind,
        acme_kind,
        &ns,
        (&acme_proc, &globex_proc),
        loose,
    );
    let map_file = store.dir().join("map.yaml");
    std::fs::write(&map_file, yaml).unwrap();
    let (map, _) = MapSource::load(MapOrigin::File(map_file)).expect("valid map");
    let mut cfg = ExecutorConfig::new("http://127.0.0.1:1");
    cfg.retry_base = Duration::from_millis(5);
    cfg.env = HashMap::from([
        ("SHARED_DB_URL".to_owned(), shared_url),
        ("ACME_DB_URL".to_owned(), acme_url),
        ("FILES_ROOT".to_owned(), files.display().to_string()),
        ("REDIS_URL".to_owned(), redis_url),
        (
            custos_dsr::processor_secret_var("crm_acme"),
            SECRET.to_owned(),
        ),
        (
            custos_dsr::processor_secret_var("crm_globex"),
            SECRET.to_owned(),
        ),
    ])
    .into();
    let cell = Arc::new(Mutex::new(None));
    let c2 = cell.clone();
    let server = crate::support::start_with(store, move |s| {
        let s = s.with_map(map).with_executor_config(cfg);
        *c2.lock().unwrap() = Some(s.clone());
        s
    })
    .await;
    let state = cell.lock().unwrap().take().unwrap();
    let scopes = ["write", "reveal", "lookup", "erase", "dsr", "audit"];
    let mut keys = Vec::new();
    // Each Jane's vault subject carries her id in her tenant's members.
    for (t, user) in [("acme", "1"), ("globex", "2")] {
        server.tenant(t).await;
        let key = server.key(t, &scopes).await;
        server
            .subject(
                &key,
                json!({"external_id": user, "identities": {"email": "jane@example.com"}}),
            )
            .await;
        keys.push(key);
    }
    let globex = keys.pop().unwrap();
    let acme = keys.pop().unwrap();
    Some(App {
        server,
        state,
        acme,
        globex,
        shared,
        acme_db,
        files,
        redis,
        ns,
        acme_notices,
        globex_notices,
    })
}

impl App {
    async fn request(&self, key: &str, body: Value) -> String {
        let r = self
            .server
            .call(Method::POST, "/v1/requests", Some(key), Some(body))
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    async fn get(&self, key: &str, id: &str) -> Value {
        let r = self
            .server
            .call(Method::GET, &format!("/v1/requests/{id}"), Some(key), None)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body
    }

    async fn run_until(&self, key: &str, id: &str, statuses: &[&str]) -> Value {
        for _ in 0..400 {
            self.state.executor().round().await.unwrap();
            let r = self.get(key, id).await;
            if statuses.contains(&r["status"].as_str().unwrap()) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "request never reached {statuses:?}: {:#}",
            self.get(key, id).await
        );
    }

    async fn rows(db: &AnyPool, sql: &str) -> Vec<String> {
        sqlx::query(sql)
            .fetch_all(db)
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
            .arg(format!("{}*", self.ns))
            .query_async(&mut c)
            .await
            .unwrap();
        keys.sort();
        keys.into_iter()
            .map(|k| k.trim_start_matches(&self.ns).to_owned())
            .collect()
    }

    /// What Acme holds, which no Globex request may change.
    async fn acme_state(&self) -> Vec<String> {
        let mut out = Self::rows(
            &self.shared,
            "SELECT id, name FROM members WHERE org_id = 1 ORDER BY id",
        )
        .await;
        out.extend(
            Self::rows(
                &self.shared,
                "SELECT id, body FROM notes WHERE member_id IN (1, 3) ORDER BY id",
            )
            .await,
        );
        out.extend(Self::rows(&self.acme_db, "SELECT id, email FROM tickets ORDER BY id").await);
        for d in [
            "avatars/1/me.png",
            "avatars/2/me.png",
            "acme/documents/jane@example.com/me.png",
        ] {
            out.push(format!("{d}: {}", self.files.join(d).exists()));
        }
        out.extend(self.redis_keys().await);
        out
    }
}

/// The datasets of the connector steps of a request: (system.dataset, found).
fn found(r: &Value) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for s in r["steps"].as_array().unwrap() {
        let Some(ds) = s["result"]["datasets"].as_array() else {
            continue;
        };
        let system = s["system"].as_str().unwrap_or("-");
        for d in ds {
            out.push((
                format!("{system}.{}", d["dataset"].as_str().unwrap()),
                d["found"].as_u64().unwrap_or(0),
            ));
        }
    }
    out.sort();
    out
}

async fn a_tenant_finds_and_changes_nothing_of_another(store: TestStore) {
    on_engine(&store, false).await;
}

/// The shared database on MySQL (MariaDB); the store on SQLite (on
/// PostgreSQL the same run adds nothing).
async fn a_tenant_finds_and_changes_nothing_of_another_on_mysql(store: TestStore) {
    if store.backend == Backend::Sqlite {
        on_engine(&store, true).await;
    }
}

async fn on_engine(store: &TestStore, mysql: bool) {
    let Some(app) = app(store, mysql, false).await else {
        return;
    };
    let before = app.acme_state().await;
    let jane = json!({"email": "jane@example.com"});

    // Dry run: Globex's plan counts Globex's Jane only, and lists no
    // system or processor of Acme.
    let access = app
        .request(
            &app.globex,
            json!({"type": "access", "identity": jane, "verified_by_app": true}),
        )
        .await;
    let plan = app
        .server
        .call(
            Method::POST,
            &format!("/v1/requests/{access}/plan"),
            Some(&app.globex),
            None,
        )
        .await;
    assert_eq!(plan.status, 200, "{:?}", plan.body);
    let text = plan.body.to_string();
    for acme_only in ["acme_db", "uploads", "sessions", "crm_acme"] {
        assert!(!text.contains(acme_only), "{acme_only} in {text}");
    }
    assert!(text.contains("crm_globex"), "{text}");
    let shared = plan.body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["system"] == "shared")
        .unwrap();
    let counts: Vec<(String, u64)> = shared["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["dataset"].as_str().unwrap().to_owned(),
                d["found"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [("members".to_owned(), 1), ("notes".to_owned(), 1)],
        "{text}"
    );

    // Access: Globex's Jane's rows only; Globex's processor told, Acme's not.
    let r = app
        .run_until(&app.globex, &access, &["waiting_processor", "failed"])
        .await;
    assert_eq!(r["status"], "waiting_processor", "{r:#}");
    assert_eq!(
        found(&r),
        [
            ("shared.members".to_owned(), 1),
            ("shared.notes".to_owned(), 1),
            ("shared_files.documents".to_owned(), 1),
            ("vault.identities".to_owned(), 1)
        ],
        "{r:#}"
    );
    assert!(app.acme_notices.lock().unwrap().is_empty());
    let (_, body) = app.globex_notices.lock().unwrap().last().cloned().unwrap();
    let notice: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(notice["tenant"], "globex");
    // Globex's Jane is member 2: that id is not Acme's user 2.
    assert_eq!(notice["identities"]["user_id"], json!(["2"]), "{notice}");

    // Rectification: only Globex's row changes.
    let rect = app
        .request(
            &app.globex,
            json!({"type": "rectification", "identity": jane, "verified_by_app": true,
                   "changes": {"name": "Jane G. Renamed"}}),
        )
        .await;
    let r = app
        .run_until(&app.globex, &rect, &["waiting_processor", "failed"])
        .await;
    assert_eq!(r["status"], "waiting_processor", "{r:#}");
    assert_eq!(
        App::rows(&app.shared, "SELECT id, name FROM members WHERE id = 2").await,
        ["2|Jane G. Renamed"]
    );
    assert_eq!(app.acme_state().await, before);
    // The tenant column is never rectified: Globex cannot move its Jane's
    // rows into Acme's part (nor a key point elsewhere).
    for field in ["org_id", "member_id"] {
        let r = app
            .server
            .call(
                Method::POST,
                "/v1/requests",
                Some(&app.globex),
                Some(json!({"type": "rectification", "identity": jane,
                    "verified_by_app": true, "changes": {field: "1"}})),
            )
            .await;
        assert_eq!(r.status, 400, "{field}: {:?}", r.body);
        assert!(
            r.body.to_string().contains(&format!("changes.{field}")),
            "{:?}",
            r.body
        );
    }
    assert_eq!(
        App::rows(&app.shared, "SELECT id, org_id FROM members WHERE id = 2").await,
        ["2|2"]
    );

    // Erasure: Globex's rows go, Acme's stay.
    let id = app
        .request(
            &app.globex,
            json!({"type": "erasure", "identity": jane, "verified_by_app": true}),
        )
        .await;
    let r = app
        .run_until(&app.globex, &id, &["waiting_processor", "failed"])
        .await;
    assert_eq!(r["status"], "waiting_processor", "{r:#}");
    assert_eq!(
        App::rows(&app.shared, "SELECT id FROM members WHERE org_id = 2").await,
        Vec::<String>::new()
    );
    assert_eq!(
        App::rows(&app.shared, "SELECT id FROM notes WHERE id = 20").await,
        Vec::<String>::new()
    );
    // The shared tree: Globex's Jane's document gone, Acme's Jane's kept.
    assert!(!app
        .files
        .join("globex/documents/jane@example.com/me.png")
        .exists());
    assert_eq!(app.acme_state().await, before);
    assert!(app.acme_notices.lock().unwrap().is_empty());

    // Acme's own request still reaches everything of Acme.
    let mine = app
        .request(
            &app.acme,
            json!({"type": "access", "identity": jane, "verified_by_app": true}),
        )
        .await;
    let r = app
        .run_until(&app.acme, &mine, &["waiting_processor", "failed"])
        .await;
    assert_eq!(
        found(&r),
        [
            ("acme_db.tickets".to_owned(), 1),
            ("sessions.sessions".to_owned(), 1),
            ("shared.members".to_owned(), 1),
            ("shared.notes".to_owned(), 1),
            ("shared_files.documents".to_owned(), 1),
            ("uploads.avatars".to_owned(), 1),
            ("vault.identities".to_owned(), 1),
        ],
        "{r:#}"
    );
    assert_eq!(app.acme_notices.lock().unwrap().len(), 1);
}

async fn an_unbound_system_is_refused_and_named(store: TestStore) {
    let Some(app) = app(&store, false, true).await else {
        return;
    };
    let jane = json!({"email": "jane@example.com"});
    let id = app
        .request(
            &app.globex,
            json!({"type": "erasure", "identity": jane, "verified_by_app": true}),
        )
        .await;
    let plan = app
        .server
        .call(
            Method::POST,
            &format!("/v1/requests/{id}/plan"),
            Some(&app.globex),
            None,
        )
        .await;
    assert_eq!(plan.status, 200, "{:?}", plan.body);
    let step = plan.body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["system"] == "loose_cache")
        .cloned()
        .unwrap();
    assert!(
        step["title"]
            .as_str()
            .unwrap()
            .contains("bound to no tenant"),
        "{step}"
    );
    let error = step["error"].as_str().unwrap();
    assert!(
        error.contains("loose_cache") && error.contains("tenants: [globex]"),
        "{error}"
    );
    assert!(!error.contains("jane"), "{error}");
    assert!(step.get("datasets").is_none(), "{step}");
    // The run fails that step, naming it, and leaves the cache alone.
    let r = app
        .run_until(
            &app.globex,
            &id,
            &["failed", "waiting_processor", "completed"],
        )
        .await;
    let loose = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["system"] == "loose_cache")
        .cloned()
        .unwrap();
    assert_eq!(loose["status"], "failed", "{r:#}");
    assert!(
        loose["error"]
            .as_str()
            .unwrap()
            .contains("bound to no tenant"),
        "{loose}"
    );
    assert!(app
        .redis_keys()
        .await
        .contains(&"cache:jane@example.com".to_owned()));
}

async fn a_callback_of_one_tenant_does_not_confirm_another_request(store: TestStore) {
    let Some(app) = app(&store, false, false).await else {
        return;
    };
    let jane = json!({"email": "jane@example.com"});
    let mut waiting = Vec::new();
    for (key, notices) in [
        (&app.acme, &app.acme_notices),
        (&app.globex, &app.globex_notices),
    ] {
        let id = app
            .request(
                key,
                json!({"type": "erasure", "identity": jane, "verified_by_app": true}),
            )
            .await;
        app.run_until(key, &id, &["waiting_processor"]).await;
        let (_, body) = notices.lock().unwrap().last().cloned().unwrap();
        let n: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(n["request_id"], id);
        waiting.push((
            id,
            n["step"].as_i64().unwrap(),
            n["tenant"].as_str().unwrap().to_owned(),
        ));
    }
    let (acme_id, acme_step, acme_tenant) = waiting[0].clone();
    let (globex_id, globex_step, _) = waiting[1].clone();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let body = json!({"holds_nothing_more": true}).to_string();
    let post = |id: String, step: i64, sig: String| {
        let (http, base, body) = (
            app.server.http.clone(),
            app.server.base.clone(),
            body.clone(),
        );
        async move {
            http.post(format!("{base}/v1/processor-callbacks/{id}/{step}"))
                .header("custos-signature", sig)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let acme_target = CallbackTarget {
        tenant: &acme_tenant,
        request_id: &acme_id,
        step: acme_step,
    };
    let captured = sign_callback(SECRET.as_bytes(), &acme_target, now, body.as_bytes());
    // Replayed on Globex's request (same processor secret): refused.
    let r = post(globex_id.clone(), globex_step, captured.clone()).await;
    assert_eq!(r.status(), 401);
    let p: Value = r.json().await.unwrap();
    assert!(p["code"].is_string(), "{p}");
    // Signed for Globex's request but with Acme's tenant key: refused.
    let wrong_tenant = CallbackTarget {
        tenant: "acme",
        request_id: &globex_id,
        step: globex_step,
    };
    let r = post(
        globex_id.clone(),
        globex_step,
        sign_callback(SECRET.as_bytes(), &wrong_tenant, now, body.as_bytes()),
    )
    .await;
    assert_eq!(r.status(), 401);
    // The old scheme (timestamp and body only) and a stale signature: refused.
    let r = post(
        globex_id.clone(),
        globex_step,
        sign(SECRET.as_bytes(), now, body.as_bytes()),
    )
    .await;
    assert_eq!(r.status(), 401);
    let globex_target = CallbackTarget {
        tenant: "globex",
        request_id: &globex_id,
        step: globex_step,
    };
    let stale = sign_callback(
        SECRET.as_bytes(),
        &globex_target,
        now - 3600,
        body.as_bytes(),
    );
    let r = post(globex_id.clone(), globex_step, stale).await;
    assert_eq!(r.status(), 401);
    let still = app.get(&app.globex, &globex_id).await;
    assert_eq!(still["status"], "waiting_processor", "{still:#}");
    // The refusals are audited under Globex, with ids only.
    let audit = app
        .server
        .call(Method::GET, "/v1/audit?limit=1000", Some(&app.globex), None)
        .await;
    assert_eq!(audit.status, 200, "{:?}", audit.body);
    let text = audit.body.to_string();
    assert_eq!(text.matches("dsr.callback_refused").count(), 4, "{text}");
    assert!(
        !text.contains("holds_nothing_more") && !text.contains("jane"),
        "{text}"
    );
    // The genuine callbacks confirm their own steps.
    let r = post(acme_id.clone(), acme_step, captured).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let sig = sign_callback(SECRET.as_bytes(), &globex_target, now, body.as_bytes());
    let r = post(globex_id.clone(), globex_step, sig).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}
