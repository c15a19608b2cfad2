//! Starting the real router of this crate on a test store: the test kit
//! serves it and carries the client helpers, but knows no surface crate.

#![allow(clippy::expect_used)]

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

/// The kit closes a connection after a body the server refuses unread.
#[test]
fn the_kit_knows_the_body_limit() {
    assert_eq!(custos_testkit::BODY_LIMIT, custos_server::BODY_LIMIT);
}
