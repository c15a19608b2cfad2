//! Erased means erased after any restore: the data store, the key store or
//! both are put back from a copy taken before an erasure, as an operator
//! restores a backup. A restored data store is refused until recovered;
//! recovery (or, for a restored key store, the next start) replays the
//! erasure from the places the restore did not take back; the person then
//! answers 410 everywhere, and `audit verify` reports the lost stretch of
//! the chain instead of "intact". On SQLite and PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use custos_core::ids::{SubjectId, TenantId};
use custos_store::{OpenMode, StoreError, Vault};
use custos_testkit::{backend_tests, Database, TestServer, TestStore};
use reqwest::Method;
use serde_json::json;

backend_tests!(
    a_restored_data_store_is_refused_then_recovered,
    a_restored_key_store_has_the_key_destroyed_again,
    both_stores_restored_are_recovered_from_the_ledger_file,
);

const SCOPES: &[&str] = &["write", "reveal", "lookup", "erase", "audit"];

/// Jane (to be erased) and Max (kept), each with a record and a token.
struct People {
    admin: String,
    key: String,
    jane: String,
    max: String,
    jane_token: String,
}

async fn serve(store: &TestStore, admin: &str) -> TestServer {
    let vault = store.open().await;
    let state = custos_server::AppState::new(
        vault.clone(),
        custos_core::secret::BearerSecret::new(admin.to_owned()),
    );
    TestServer::serve(vault, admin.to_owned(), custos_server::router(state)).await
}

async fn people(store: &TestStore) -> People {
    let admin = TestServer::admin_token();
    let s = serve(store, &admin).await;
    s.tenant("acme").await;
    let key = s.key("acme", SCOPES).await;
    let mut ids = Vec::new();
    for (email, name) in [("jane@example.com", "Jane"), ("max@example.com", "Max")] {
        let id = s
            .subject(&key, json!({"identities": {"email": email}}))
            .await;
        let r = s
            .call(
                Method::PUT,
                &format!("/v1/subjects/{id}/records/profile/main"),
                Some(&key),
                Some(json!({"fields": {"name": name}})),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        ids.push(id);
    }
    let r = s
        .call(
            Method::POST,
            &format!("/v1/subjects/{}/tokens", ids[0]),
            Some(&key),
            Some(json!({"audience": "analytics"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let jane_token = r.body["token"].as_str().unwrap().to_owned();
    s.stop().await;
    People {
        admin,
        key,
        jane: ids[0].clone(),
        max: ids[1].clone(),
        jane_token,
    }
}

async fn erase_jane(store: &TestStore, p: &People) {
    let s = serve(store, &p.admin).await;
    let r = s
        .call(
            Method::DELETE,
            &format!("/v1/subjects/{}", p.jane),
            Some(&p.key),
            Some(json!({"reason": "subject_request"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    s.stop().await;
}

/// Jane answers 410 everywhere, her key is gone, Max is whole, and the
/// audit log verifies (reporting what was lost, when a chain was restored).
async fn assert_jane_is_erased(store: &TestStore, p: &People, chain_restored: bool) {
    let s = serve(store, &p.admin).await;
    let reveal = |id: &str| format!("/v1/subjects/{id}/records/profile/main?purpose=support");
    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/{}", p.jane),
            Some(&p.key),
            None,
        )
        .await;
    assert_eq!(r.status, 410, "{:?}", r.body);
    let r = s
        .call(Method::GET, &reveal(&p.jane), Some(&p.key), None)
        .await;
    assert_eq!(r.status, 410, "{:?}", r.body);
    let r = s
        .call(
            Method::GET,
            "/v1/subjects/lookup?email=jane@example.com",
            Some(&p.key),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    let r = s
        .call(
            Method::GET,
            &format!("/v1/tokens/{}", p.jane_token),
            Some(&p.key),
            None,
        )
        .await;
    assert_eq!(r.status, 410, "{:?}", r.body);
    let r = s
        .call(Method::GET, &reveal(&p.max), Some(&p.key), None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["fields"]["name"], "Max");
    let tenant = TenantId::parse("acme").unwrap();
    let jane = SubjectId::parse(&p.jane).unwrap();
    assert!(
        s.vault
            .keystore()
            .subject_key(&tenant, &jane)
            .await
            .unwrap()
            .is_none(),
        "Jane's key is back in the key store"
    );
    let report = s.vault.audit().verify().await.unwrap();
    assert_eq!(report.first_break, None, "{report:?}");
    assert_eq!(report.rolled_back, None, "{report:?}");
    assert_eq!(!report.recoveries.is_empty(), chain_restored, "{report:?}");
    s.stop().await;
}

async fn open(store: &TestStore, mode: OpenMode) -> Result<Vault, StoreError> {
    let mut cfg = store.config();
    cfg.mode = mode;
    Vault::open(cfg).await
}

async fn a_restored_data_store_is_refused_then_recovered(store: TestStore) {
    let p = people(&store).await;
    let backup = store.snapshot(Database::Data).await;
    erase_jane(&store, &p).await;
    store.restore(&backup).await;

    let refused = open(&store, OpenMode::Serve).await;
    assert!(
        matches!(&refused, Err(StoreError::RolledBack(why)) if why.contains("lacks 1 erasure")),
        "{:?}",
        refused.map(|_| ())
    );
    // Inspecting says the same without serving.
    let v = open(&store, OpenMode::Inspect).await.unwrap();
    let report = v.audit().verify().await.unwrap();
    assert!(report.rolled_back.is_some(), "{report:?}");
    v.close().await;

    let v = open(&store, OpenMode::Recover).await.unwrap();
    let done = v.recovered().clone();
    v.close().await;
    assert_eq!(done.replayed, 1, "{done:?}");
    assert!(done.chain_restored.is_some(), "{done:?}");
    assert_jane_is_erased(&store, &p, true).await;
}

async fn a_restored_key_store_has_the_key_destroyed_again(store: TestStore) {
    let p = people(&store).await;
    let backup = store.snapshot(Database::Keys).await;
    erase_jane(&store, &p).await;
    store.restore(&backup).await;

    // The data store is whole: it is served, and Jane's key, back with
    // the old key store, is destroyed again at the start.
    let v = open(&store, OpenMode::Serve).await.unwrap();
    let done = v.recovered().clone();
    v.close().await;
    assert_eq!(done.keys_destroyed, 1, "{done:?}");
    assert_eq!(done.replayed, 0, "{done:?}");
    assert_jane_is_erased(&store, &p, false).await;
}

async fn both_stores_restored_are_recovered_from_the_ledger_file(store: TestStore) {
    let p = people(&store).await;
    let data = store.snapshot(Database::Data).await;
    let keys = store.snapshot(Database::Keys).await;
    erase_jane(&store, &p).await;
    store.restore(&data).await;
    store.restore(&keys).await;

    // The two stores agree with each other; the erasure ledger file,
    // kept apart from them, remembers Jane.
    let refused = open(&store, OpenMode::Serve).await;
    assert!(
        matches!(&refused, Err(StoreError::RolledBack(_))),
        "{:?}",
        refused.map(|_| ())
    );
    let v = open(&store, OpenMode::Recover).await.unwrap();
    let done = v.recovered().clone();
    v.close().await;
    assert_eq!((done.replayed, done.keys_destroyed), (1, 1), "{done:?}");
    assert_jane_is_erased(&store, &p, false).await;
}
