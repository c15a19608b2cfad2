//! The export of a subject is a reveal of every value: it is held to a
//! reveal's rules (reveal scope, a declared purpose, restriction) and its
//! audit entries carry their purpose, on SQLite and on PostgreSQL. What it
//! exports from is private on disk too (SQLite files 0600).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use custos_testkit::TestStore;
use custos_testkit::{backend_tests, TestServer};
use reqwest::Method;
use serde_json::json;

backend_tests!(
    export_needs_the_reveal_scope_and_a_purpose,
    a_restricted_subject_exports_only_for_an_allowed_purpose,
    every_reveal_and_export_entry_carries_its_purpose,
);

async fn setup(store: &TestStore) -> (TestServer, String, String) {
    let (s, key) = crate::support::with_tenant(
        store,
        "acme",
        &["write", "reveal", "lookup", "erase", "audit"],
    )
    .await;
    let id = s
        .subject(
            &key,
            json!({"external_id": "u-1", "identities": {"email": "ex@example.com"}}),
        )
        .await;
    let r = s
        .call(
            Method::PUT,
            &format!("/v1/subjects/{id}/records/profile/main"),
            Some(&key),
            Some(json!({"fields": {"name": "Exa Mple"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    (s, key, id)
}

async fn export(s: &TestServer, key: &str, id: &str, query: &str) -> custos_testkit::Reply {
    s.call(
        Method::GET,
        &format!("/v1/subjects/{id}/export{query}"),
        Some(key),
        None,
    )
    .await
}

/// `(action, purpose, outcome)` of the subject's audit entries, in order.
async fn entries(s: &TestServer, key: &str, id: &str) -> Vec<(String, Option<String>, String)> {
    let r = s
        .call(
            Method::GET,
            &format!("/v1/audit?subject={id}&limit=1000"),
            Some(key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut v: Vec<_> = r.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["seq"].as_i64().unwrap_or_default(),
                e["action"].as_str().unwrap().to_owned(),
                e["purpose"].as_str().map(str::to_owned),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, a, p, o)| (a, p, o)).collect()
}

async fn export_needs_the_reveal_scope_and_a_purpose(store: TestStore) {
    let (s, key, id) = setup(&store).await;
    let lookup = s.key("acme", &["lookup", "write"]).await;
    let r = export(&s, &lookup, &id, "?purpose=access_request").await;
    assert_eq!((r.status, r.code()), (403, "missing_scope"), "{:?}", r.body);
    let r = export(&s, &key, &id, "").await;
    assert_eq!((r.status, r.code()), (400, "invalid_field"), "{:?}", r.body);
    assert_eq!(r.body["field"], "purpose");
    assert!(r.content_type.starts_with("application/problem+json"));
    let r = export(&s, &key, &id, "?purpose=Not%20A%20Slug").await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("purpose")));
    // Nothing was revealed by the refusals, so nothing but the creation,
    // the write and the one export below is in the log.
    let r = export(&s, &key, &id, "?purpose=access_request").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["records"]["profile"]["main"]["name"], "Exa Mple");
    let exports: Vec<_> = entries(&s, &key, &id)
        .await
        .into_iter()
        .filter(|e| e.0 == "export")
        .collect();
    assert_eq!(
        exports,
        [("export".into(), Some("access_request".into()), "ok".into())]
    );
    s.stop().await;
}

async fn a_restricted_subject_exports_only_for_an_allowed_purpose(store: TestStore) {
    let (s, key, id) = setup(&store).await;
    let r = s
        .call(
            Method::PUT,
            &format!("/v1/subjects/{id}/restriction"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for purpose in ["marketing", "access_request", "subject_request"] {
        let r = export(&s, &key, &id, &format!("?purpose={purpose}")).await;
        assert_eq!(
            (r.status, r.code()),
            (403, "subject_restricted"),
            "{purpose}: {:?}",
            r.body
        );
        assert!(!r.body.to_string().contains("Exa Mple"));
    }
    let r = export(&s, &key, &id, "?purpose=legal_claims").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["identities"]["email"], "ex@example.com");
    let exports: Vec<_> = entries(&s, &key, &id)
        .await
        .into_iter()
        .filter(|e| e.0 == "export")
        .map(|(_, p, o)| format!("{}:{o}", p.unwrap()))
        .collect();
    assert_eq!(
        exports,
        [
            "marketing:denied_restricted",
            "access_request:denied_restricted",
            "subject_request:denied_restricted",
            "legal_claims:ok"
        ]
    );
    // Lifted, any declared purpose exports again.
    let r = s
        .call(
            Method::DELETE,
            &format!("/v1/subjects/{id}/restriction"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        export(&s, &key, &id, "?purpose=marketing").await.status,
        200
    );
    s.stop().await;
}

async fn every_reveal_and_export_entry_carries_its_purpose(store: TestStore) {
    let (s, key, id) = setup(&store).await;
    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/{id}/records/profile/main?purpose=support"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!((r.status, r.body["masked"].as_bool()), (200, Some(false)));
    assert_eq!(export(&s, &key, &id, "?purpose=support").await.status, 200);
    let revealing: Vec<_> = entries(&s, &key, &id)
        .await
        .into_iter()
        .filter(|e| e.0 == "reveal" || e.0 == "export")
        .collect();
    assert_eq!(revealing.len(), 2, "{revealing:?}");
    for (action, purpose, outcome) in revealing {
        assert_eq!(
            (purpose.as_deref(), outcome.as_str()),
            (Some("support"), "ok"),
            "{action}"
        );
    }
    s.stop().await;
}

/// The files of an SQLite store (data store, key store, their `-wal` and
/// `-shm`, the erasure ledger) are their owner's alone, after writes, an
/// export and an erasure have touched each of them.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let store = TestStore::new(custos_testkit::Backend::Sqlite)
        .await
        .expect("sqlite store");
    let (s, key, id) = setup(&store).await;
    assert_eq!(
        export(&s, &key, &id, "?purpose=access_request")
            .await
            .status,
        200
    );
    let r = s
        .call(
            Method::DELETE,
            &format!("/v1/subjects/{id}"),
            Some(&key),
            Some(json!({"reason": "subject_request"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(store.dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains(".db") || name.ends_with(".ledger") {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}: {mode:o}");
            seen.push(name);
        }
    }
    seen.sort();
    for want in [
        "data.db",
        "data.db-wal",
        "data.db-shm",
        "keys.db",
        "keys.db-wal",
        "erasures.ledger",
    ] {
        assert!(seen.iter().any(|n| n == want), "{want} not in {seen:?}");
    }
    s.stop().await;
}
