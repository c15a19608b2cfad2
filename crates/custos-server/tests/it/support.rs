//! Starting the real router of this crate on a test store: the test kit
//! serves it and carries the client helpers, but knows no surface crate.

#![allow(clippy::expect_used, clippy::panic)]

use custos_core::secret::BearerSecret;
use custos_map::{MapOrigin, MapSource};
use custos_server::AppState;
use custos_testkit::{TestServer, TestStore};

/// A server on `store` with the demo map.
pub(crate) async fn start(store: &TestStore) -> TestServer {
    start_with(store, |s| s).await
}

/// A server on `store` with the demo map and its state adjusted by `f`
/// (an outbox, a scrub key, another map, …).
pub(crate) async fn start_with(
    store: &TestStore,
    f: impl FnOnce(AppState) -> AppState,
) -> TestServer {
    let vault = store.open().await;
    let admin = TestServer::admin_token();
    let demo = MapSource::load(MapOrigin::Builtin(custos_map::DEMO_MAP))
        .expect("demo map")
        .0;
    let state = AppState::new(vault.clone(), BearerSecret::new(admin.clone())).with_map(demo);
    TestServer::serve(vault, admin, custos_server::router(f(state))).await
}

/// The router of a server on `store` with the demo map, and its admin
/// token: for tests that serve it themselves (`custos_server::serve`).
pub(crate) async fn router(store: &TestStore) -> (axum::Router, String) {
    let vault = store.open().await;
    let admin = TestServer::admin_token();
    let demo = MapSource::load(MapOrigin::Builtin(custos_map::DEMO_MAP))
        .expect("demo map")
        .0;
    let state = AppState::new(vault, BearerSecret::new(admin.clone())).with_map(demo);
    (custos_server::router(state), admin)
}

/// A server on `store` with one tenant and an API key of it.
pub(crate) async fn with_tenant(
    store: &TestStore,
    tenant: &str,
    scopes: &[&str],
) -> (TestServer, String) {
    let s = start(store).await;
    s.tenant(tenant).await;
    let key = s.key(tenant, scopes).await;
    (s, key)
}

/// An executor that pauses a minute between rounds unless woken: on
/// SQLite in the server's own vault (woken in-process), on PostgreSQL in a
/// second vault on the same stores, as a second server would run it (woken
/// by LISTEN/NOTIFY). For the tests that a request starts at once.
pub(crate) struct IdleExecutor {
    running: custos_dsr::Running,
    other_vault: Option<custos_store::Vault>,
}

impl IdleExecutor {
    pub(crate) async fn spawn(
        store: &TestStore,
        state: &AppState,
        cfg: &custos_dsr::ExecutorConfig,
    ) -> Self {
        let mut cfg = cfg.clone();
        cfg.idle = std::time::Duration::from_secs(60);
        let other_vault = match store.backend {
            custos_testkit::Backend::Sqlite => None,
            custos_testkit::Backend::Postgres => Some(
                custos_store::Vault::open(store.config())
                    .await
                    .expect("a second vault"),
            ),
        };
        let vault = other_vault.clone().unwrap_or_else(|| state.vault.clone());
        let running = custos_dsr::Executor::new(
            vault,
            state.map.clone(),
            state.mailer.clone(),
            std::sync::Arc::new(cfg),
        )
        .spawn();
        // Its first round finds nothing and its listener is up.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        Self {
            running,
            other_vault,
        }
    }

    pub(crate) async fn stop(self) {
        self.running.stop().await;
        if let Some(v) = self.other_vault {
            v.close().await;
        }
    }
}

/// How long until `get` (a request's JSON) shows `status`; panics after
/// 20 s with the request.
pub(crate) async fn until_status<F, Fut>(status: &str, get: F) -> std::time::Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = serde_json::Value>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(20) {
        if get().await.get("status").and_then(|s| s.as_str()) == Some(status) {
            return start.elapsed();
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("not {status} after 20 s: {:#}", get().await);
}

/// The kit closes a connection after a body the server refuses unread.
#[test]
fn the_kit_knows_the_body_limit() {
    assert_eq!(custos_testkit::BODY_LIMIT, custos_server::BODY_LIMIT);
}
