//! Test harness shared by custos' integration tests.
//!
//! Every test gets its own stores: a fresh SQLite pair in a temp dir, or a
//! fresh pair of databases on a real PostgreSQL server. The server comes
//! from `CUSTOS_TEST_DATABASE_URL` (an admin URL whose role may create
//! databases) or, when that is unset, from a throw-away `initdb` cluster this
//! harness starts once per test process. PostgreSQL tests are skipped when
//! neither works, each saying so on the run's output ([`report_skip`]),
//! unless `CUSTOS_REQUIRE_PG=1` (CI), where they fail instead. `mysql` and
//! `redis` provide real MySQL/MariaDB and Redis servers the same way.

// Test support: failing loudly is the point.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

pub mod mysql;
pub mod pg;
pub mod redis;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use custos_core::keys::RootKey;
use custos_core::secret::Key32;
use custos_store::{Vault, VaultConfig};
use reqwest::Method;
use serde_json::{json, Value};

/// Says that the running test is skipped, on the test run's own output:
/// one line `SKIPPED <test>: <what> (<hint>)` per test, however often it
/// is called.
///
/// libtest captures what passing tests print with `print!`/`eprint!`, so a
/// notice sent that way is never seen and the skipped test reads `ok`.
/// This line is written to the process's stderr handle directly, which the
/// capture does not touch, so it appears among the `test … ok` lines (and
/// `.ci/run` fails on it). The test's name is its thread's: libtest runs
/// every test on a thread named after it.
pub fn report_skip(what: &str, hint: &str) {
    use std::io::Write as _;
    static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test").to_owned();
    let first = SEEN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(test.clone());
    if first {
        let line = format!("SKIPPED {test}: {what} ({hint})\n");
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// The first line of a reason, at most 160 characters: a server's whole
/// log does not belong in a skip line.
pub(crate) fn short(why: &str) -> String {
    let line = why.lines().next().unwrap_or("").trim();
    match line.char_indices().nth(160) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

/// Which data store a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite files.
    Sqlite,
    /// A real PostgreSQL server.
    Postgres,
}

/// A fresh data store and key store, and the temp dir that holds files.
#[derive(Debug)]
pub struct TestStore {
    /// Engine of the data store.
    pub backend: Backend,
    /// `sqlite:` or `postgres:` URL of the data store.
    pub database_url: String,
    /// URL of the separate key store.
    pub keystore_url: String,
    /// Random root key of this store.
    pub root_key: [u8; 32],
    dir: tempfile::TempDir,
}

impl TestStore {
    /// A fresh store, or `None` when PostgreSQL is unavailable (and not
    /// required).
    pub async fn new(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (database_url, keystore_url) = match backend {
            Backend::Sqlite => (
                sqlite_url(&dir.path().join("data.db")),
                sqlite_url(&dir.path().join("keys.db")),
            ),
            Backend::Postgres => {
                let server = pg::server()?;
                (
                    server.create_database("data").await,
                    server.create_database("keys").await,
                )
            }
        };
        let mut root_key = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut root_key);
        Some(Self {
            backend,
            database_url,
            keystore_url,
            root_key,
            dir,
        })
    }

    /// A directory that lives as long as the store (for files of the test).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The root key as `CUSTOS_ROOT_KEY` expects it (base64).
    pub fn root_key_b64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.root_key)
    }

    /// The vault's configuration on this store: its erasure ledger file
    /// in the store's directory, opened to serve.
    pub fn config(&self) -> VaultConfig {
        let mut cfg = VaultConfig::new(
            self.database_url.clone(),
            self.keystore_url.clone(),
            RootKey::new(Key32::from_bytes(self.root_key)),
        );
        cfg.erasure_ledger = Some(self.ledger_file());
        cfg
    }

    /// The erasure ledger's witness file of this store.
    pub fn ledger_file(&self) -> std::path::PathBuf {
        self.dir.path().join("erasures.ledger")
    }

    /// Copies one of the store's databases as it is now, as a backup is
    /// taken. Every vault on the store must be closed.
    pub async fn snapshot(&self, which: Database) -> Snapshot {
        let url = self.url_of(which);
        match self.backend {
            Backend::Sqlite => {
                let file = sqlite_path(url);
                let dir = self
                    .dir
                    .path()
                    .join(format!("snapshot-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir).expect("snapshot dir");
                for suffix in ["", "-wal", "-shm"] {
                    let from = PathBuf::from(format!("{}{suffix}", file.display()));
                    if from.exists() {
                        std::fs::copy(&from, dir.join(format!("db{suffix}"))).expect("copy");
                    }
                }
                Snapshot {
                    which,
                    at: dir.display().to_string(),
                }
            }
            Backend::Postgres => {
                let server = pg::server().expect("the store's PostgreSQL server");
                let copy = server.copy_database(&pg::database_of(url)).await;
                Snapshot { which, at: copy }
            }
        }
    }

    /// Puts a snapshot back in place of the database it was taken from,
    /// as an operator restores a backup. Every vault on the store must be
    /// closed.
    pub async fn restore(&self, snapshot: &Snapshot) {
        let url = self.url_of(snapshot.which);
        match self.backend {
            Backend::Sqlite => {
                let file = sqlite_path(url);
                for suffix in ["", "-wal", "-shm"] {
                    let to = PathBuf::from(format!("{}{suffix}", file.display()));
                    let from = Path::new(&snapshot.at).join(format!("db{suffix}"));
                    let _ = std::fs::remove_file(&to);
                    if from.exists() {
                        std::fs::copy(&from, &to).expect("restore");
                    }
                }
            }
            Backend::Postgres => {
                let server = pg::server().expect("the store's PostgreSQL server");
                server
                    .restore_database(&pg::database_of(url), &snapshot.at)
                    .await;
            }
        }
    }

    fn url_of(&self, which: Database) -> &str {
        match which {
            Database::Data => &self.database_url,
            Database::Keys => &self.keystore_url,
        }
    }

    /// Opens a vault on this store.
    pub async fn open(&self) -> Vault {
        Vault::open(self.config()).await.expect("open vault")
    }
}

/// One of a store's two databases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Database {
    /// The data store.
    Data,
    /// The key store.
    Keys,
}

/// A copy of one database of a [`TestStore`] ([`TestStore::snapshot`]).
#[derive(Clone, Debug)]
pub struct Snapshot {
    which: Database,
    /// The copy's directory (SQLite) or database name (PostgreSQL).
    at: String,
}

/// The file of a `sqlite://…?mode=rwc` URL.
fn sqlite_path(url: &str) -> PathBuf {
    let rest = url.strip_prefix("sqlite://").unwrap_or(url);
    PathBuf::from(rest.split('?').next().unwrap_or(rest))
}

fn sqlite_url(p: &Path) -> String {
    format!("sqlite://{}?mode=rwc", p.display())
}

/// Bodies larger than this are refused by the server (`custos-server`'s
/// `BODY_LIMIT`); [`TestServer::call_raw`] closes the connection after
/// sending one, since the server answers before reading it whole.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A real server on loopback, in this process, on its own port.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The admin token.
    pub admin: String,
    /// The server's vault (for checks below the API).
    pub vault: Vault,
    /// HTTP client.
    pub http: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("base", &self.base)
            .finish()
    }
}

/// A response: status and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// `content-type` header.
    pub content_type: String,
    /// Body parsed as JSON.
    pub body: Value,
}

impl Reply {
    /// The problem `code`, if the body is a problem.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

impl TestServer {
    /// A fresh random admin token for a server under test.
    pub fn admin_token() -> String {
        format!("cadm_test_{}", uuid::Uuid::new_v4().simple())
    }

    /// Serves `app` on loopback in this process. `app` is the router of the
    /// surface under test, built on `vault` and accepting `admin` as the
    /// admin token; the kit itself knows no surface crate, so every crate's
    /// tests build their own router and share the client helpers here.
    pub async fn serve(vault: Vault, admin: String, app: axum::Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            // As `custos serve` does: the peer address keys rate limits.
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        Self {
            base: format!("http://{addr}"),
            admin,
            vault,
            http: reqwest::Client::new(),
            task,
        }
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("send");
        Self::reply(res).await
    }

    /// Sends raw bytes as the body with the given content type.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header("content-type", content_type);
        if body.len() > BODY_LIMIT {
            // The server answers 413 without reading the whole body and
            // drops the connection; it must not go back to the pool, or the
            // next request on it fails with an incomplete message.
            req = req.header("connection", "close");
        }
        let mut req = req.body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::reply(req.send().await.expect("send")).await
    }

    async fn reply(res: reqwest::Response) -> Reply {
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = res.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            body,
        }
    }

    /// Creates a tenant (admin).
    pub async fn tenant(&self, id: &str) {
        let r = self
            .call(
                Method::POST,
                "/v1/tenants",
                Some(&self.admin),
                Some(json!({"id": id, "name": id})),
            )
            .await;
        assert_eq!(r.status, 201, "create tenant {id}: {:?}", r.body);
    }

    /// Creates an API key of `tenant` with `scopes` (admin); returns the key.
    pub async fn key(&self, tenant: &str, scopes: &[&str]) -> String {
        let r = self
            .call(
                Method::POST,
                "/v1/keys",
                Some(&self.admin),
                Some(json!({"tenant": tenant, "scopes": scopes})),
            )
            .await;
        assert_eq!(r.status, 201, "create key: {:?}", r.body);
        r.body["key"].as_str().expect("key").to_owned()
    }

    /// Creates a subject from a `POST /v1/subjects` body; returns its id.
    pub async fn subject(&self, key: &str, body: Value) -> String {
        let r = self
            .call(Method::POST, "/v1/subjects", Some(key), Some(body))
            .await;
        assert_eq!(r.status, 201, "create subject: {:?}", r.body);
        r.body["id"].as_str().expect("id").to_owned()
    }

    /// Stops serving and closes the vault (flushes the writer).
    pub async fn stop(self) {
        self.task.abort();
        self.vault.close().await;
    }
}

/// Generates one `#[tokio::test]` per backend for each named
/// `async fn name(store: TestStore)`; PostgreSQL tests are skipped when the
/// harness has no server, with a `SKIPPED postgres::name: …` line on the
/// run's output (see [`report_skip`]), and fail when `CUSTOS_REQUIRE_PG=1`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let store = $crate::TestStore::new($crate::Backend::Sqlite)
                        .await
                        .expect("sqlite store");
                    super::$name(store).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(store) = $crate::TestStore::new($crate::Backend::Postgres).await {
                        super::$name(store).await
                    }
                }
            )*
        }
    };
}
