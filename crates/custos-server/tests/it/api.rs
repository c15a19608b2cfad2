//! The HTTP contract, driven over loopback against a real server on SQLite
//! and on PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use custos_testkit::{backend_tests, TestServer, TestStore};
use reqwest::Method;
use serde_json::{json, Value};

backend_tests!(
    health_and_openapi,
    vault_round_trip,
    masked_without_reveal_or_purpose,
    tokens_are_stable_per_audience_and_gone_after_erasure,
    restriction_limits_purposes,
    concurrent_reveals_answer_and_audit_each_outcome,
    erasure_makes_every_read_gone,
    tenants_are_isolated,
    scopes_are_enforced,
    bad_input_gets_clear_problems,
    keys_expire_and_revoke,
    tenant_shred_forgets_all_its_subjects,
    audit_records_and_detects_tampering,
    audit_detects_removal_and_truncation,
    a_failing_write_does_not_fail_its_batch,
    two_servers_share_one_store,
    key_rotation_keeps_data_readable,
    map_and_ropa_are_served,
    scrub_endpoint_redacts_text_and_json_lines,
);

const ALL: &[&str] = &["write", "reveal", "lookup", "erase", "audit"];

async fn setup(store: &TestStore) -> (TestServer, String) {
    crate::support::with_tenant(store, "acme", ALL).await
}

async fn subject(s: &TestServer, key: &str, email: &str) -> String {
    s.subject(
        key,
        json!({"external_id": format!("u-{email}"), "identities": {"email": email}}),
    )
    .await
}

async fn put(s: &TestServer, key: &str, id: &str, coll: &str, rk: &str, fields: Value) -> u16 {
    s.call(
        Method::PUT,
        &format!("/v1/subjects/{id}/records/{coll}/{rk}"),
        Some(key),
        Some(json!({ "fields": fields })),
    )
    .await
    .status
}

async fn health_and_openapi(store: TestStore) {
    let s = crate::support::start(&store).await;
    let r = s.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("ok")));
    let doc = s.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/tenants",
        "/v1/tenants/{id}",
        "/v1/keys",
        "/v1/subjects",
        "/v1/subjects/lookup",
        "/v1/subjects/{id}",
        "/v1/subjects/{id}/records/{collection}/{key}",
        "/v1/subjects/{id}/export",
        "/v1/subjects/{id}/tokens",
        "/v1/subjects/{id}/restriction",
        "/v1/tokens/{token}",
        "/v1/audit",
    ] {
        assert!(doc.body["paths"][path].is_object(), "{path} missing");
    }
    s.stop().await;
}

async fn vault_round_trip(store: TestStore) {
    let (s, key) = setup(&store).await;
    let id = subject(&s, &key, "Jane.Doe@Example.com").await;
    assert!(id.starts_with("sub_"), "{id}");
    assert!(!id.contains("jane"));

    // Lookup normalises: case-folded and trimmed.
    let r = s
        .call(
            Method::GET,
            "/v1/subjects/lookup?email=%20jane.doe%40EXAMPLE.com%20",
            Some(&key),
            None,
        )
        .await;
    assert_eq!((r.status, r.body["id"].as_str()), (200, Some(id.as_str())));
    let r = s
        .call(
            Method::GET,
            "/v1/subjects/lookup?email=nobody%40example.com",
            Some(&key),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));

    let fields = json!({"name": "Jane Doe", "iban": "NL91ABNA0417164300", "age": 41});
    assert_eq!(
        put(&s, &key, &id, "profile", "main", fields.clone()).await,
        200
    );
    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/{id}/records/profile/main?purpose=support"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["fields"], fields);
    assert_eq!(r.body["masked"], false);

    // Personal values are not stored in clear anywhere in the data store.
    let vault = &s.vault;
    let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT fields FROM records")
        .fetch_all(vault.read_pool())
        .await
        .unwrap();
    for row in &rows {
        let text = String::from_utf8_lossy(row);
        assert!(!text.contains("Jane Doe") && !text.contains("NL91ABNA"));
    }

    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/{id}/export?purpose=access_request"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let text = r.body.to_string();
    assert!(text.contains("jane.doe@example.com") || text.contains("Jane.Doe@Example.com"));
    assert!(text.contains("NL91ABNA0417164300"));

    let r = s
        .call(
            Method::DELETE,
            &format!("/v1/subjects/{id}/records/profile/main"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/{id}/records/profile/main?purpose=support"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    s.stop().await;
}

async fn masked_without_reveal_or_purpose(store: TestStore) {
    let (s, key) = setup(&store).await;
    let id = subject(&s, &key, "jane@example.com").await;
    put(
        &s,
        &key,
        &id,
        "billing",
        "card",
        json!({"email": "jane@example.com", "card": "4111 1111 1111 1111"}),
    )
    .await;
    let path = format!("/v1/subjects/{id}/records/billing/card");
    // Reveal scope but no purpose: masked.
    let r = s.call(Method::GET, &path, Some(&key), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["masked"], true);
    assert_eq!(r.body["fields"]["email"], "j***@example.com");
    // A fixed shape: the card's length is not told by its stars.
    assert_eq!(r.body["fields"]["card"], "****1111");
    assert!(!r.body.to_string().contains("4111 1111"));
    // A purpose but no reveal scope: masked.
    let low = s.key("acme", &["lookup"]).await;
    let r = s
        .call(
            Method::GET,
            &format!("{path}?purpose=support"),
            Some(&low),
            None,
        )
        .await;
    assert_eq!((r.status, r.body["masked"].as_bool()), (200, Some(true)));
    s.stop().await;
}

async fn tokens_are_stable_per_audience_and_gone_after_erasure(store: TestStore) {
    let (s, key) = setup(&store).await;
    let id = subject(&s, &key, "tok@example.com").await;
    let token = |aud: &'static str| {
        let s = &s;
        let key = key.clone();
        let id = id.clone();
        async move {
            let r = s
                .call(
                    Method::POST,
                    &format!("/v1/subjects/{id}/tokens"),
                    Some(&key),
                    Some(json!({ "audience": aud })),
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            r.body["token"].as_str().unwrap().to_owned()
        }
    };
    let a1 = token("analytics").await;
    let a2 = token("analytics").await;
    let m = token("mailer").await;
    assert_eq!(a1, a2, "stable per audience");
    assert_ne!(a1, m, "unlinkable across audiences");
    assert!(
        !a1.contains(&id[4..]),
        "a token does not embed the subject id"
    );
    let r = s
        .call(Method::GET, &format!("/v1/tokens/{a1}"), Some(&key), None)
        .await;
    assert_eq!((r.status, r.body["alive"].as_bool()), (200, Some(true)));
    erase(&s, &key, &id).await;
    let r = s
        .call(Method::GET, &format!("/v1/tokens/{m}"), Some(&key), None)
        .await;
    assert_eq!((r.status, r.code()), (410, "token_gone"), "{:?}", r.body);
    assert!(r.body["erased_at"].is_string());
    s.stop().await;
}

async fn erase(s: &TestServer, key: &str, id: &str) -> Value {
    let r = s
        .call(
            Method::DELETE,
            &format!("/v1/subjects/{id}"),
            Some(key),
            Some(json!({"reason": "subject_request"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

async fn restriction_limits_purposes(store: TestStore) {
    let (s, key) = setup(&store).await;
    let id = subject(&s, &key, "restrict@example.com").await;
    put(&s, &key, &id, "profile", "main", json!({"name": "R"})).await;
    let rpath = format!("/v1/subjects/{id}/restriction");
    let r = s.call(Method::PUT, &rpath, Some(&key), None).await;
    assert_eq!(
        (r.status, r.body["restricted"].as_bool()),
        (200, Some(true))
    );
    let r = s.call(Method::GET, &rpath, Some(&key), None).await;
    assert_eq!(r.body["restricted"], true);
    assert!(r.body["restricted_at"].is_string());
    let read = |purpose: &'static str| {
        let (s, key, id) = (&s, key.clone(), id.clone());
        async move {
            s.call(
                Method::GET,
                &format!("/v1/subjects/{id}/records/profile/main?purpose={purpose}"),
                Some(&key),
                None,
            )
            .await
        }
    };
    let r = read("marketing").await;
    assert_eq!((r.status, r.code()), (403, "subject_restricted"));
    let r = read("legal_claims").await;
    assert_eq!(
        (r.status, r.body["fields"]["name"].as_str()),
        (200, Some("R"))
    );
    let r = s.call(Method::DELETE, &rpath, Some(&key), None).await;
    assert_eq!(
        (r.status, r.body["restricted"].as_bool()),
        (200, Some(false))
    );
    assert_eq!(read("marketing").await.status, 200);
    s.stop().await;
}

/// Reveals are read in the writer's batches (many per SELECT): under
/// concurrency each gets its own record, refusals stay refusals, and the
/// audit log holds one entry per reveal with the outcome it had — none for
/// a record that does not exist.
async fn concurrent_reveals_answer_and_audit_each_outcome(store: TestStore) {
    let (s, key) = setup(&store).await;
    let live = subject(&s, &key, "many@example.com").await;
    let restricted = subject(&s, &key, "restricted@example.com").await;
    let erased = subject(&s, &key, "erased@example.com").await;
    const RECORDS: usize = 150;
    for i in 0..RECORDS {
        assert_eq!(
            put(&s, &key, &live, "p", &format!("k{i}"), json!({ "n": i })).await,
            200
        );
    }
    put(&s, &key, &restricted, "p", "k", json!({"n": -1})).await;
    put(&s, &key, &erased, "p", "k", json!({"n": -2})).await;
    let r = s
        .call(
            Method::PUT,
            &format!("/v1/subjects/{restricted}/restriction"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    erase(&s, &key, &erased).await;

    let get = |id: String, rk: String, purpose: &'static str| {
        let (s, key) = (&s, key.clone());
        async move {
            s.call(
                Method::GET,
                &format!("/v1/subjects/{id}/records/p/{rk}?purpose={purpose}"),
                Some(&key),
                None,
            )
            .await
        }
    };
    let mut calls = Vec::new();
    for i in 0..RECORDS {
        calls.push(get(live.clone(), format!("k{i}"), "support"));
    }
    calls.push(get(live.clone(), "missing".into(), "support"));
    calls.push(get(restricted.clone(), "k".into(), "marketing"));
    calls.push(get(restricted.clone(), "k".into(), "legal_claims"));
    calls.push(get(erased.clone(), "k".into(), "support"));
    let replies = futures_util::future::join_all(calls).await;
    for (i, r) in replies.iter().take(RECORDS).enumerate() {
        assert_eq!(
            (r.status, r.body["fields"]["n"].as_u64()),
            (200, Some(i as u64)),
            "{:?}",
            r.body
        );
    }
    let tail: Vec<(u16, &str)> = replies[RECORDS..]
        .iter()
        .map(|r| (r.status, r.code()))
        .collect();
    assert_eq!(
        tail,
        [
            (404, "not_found"),
            (403, "subject_restricted"),
            (200, ""),
            (410, "subject_erased")
        ]
    );

    let outcomes = |id: &str| {
        let (s, key, id) = (&s, key.clone(), id.to_owned());
        async move {
            let r = s
                .call(
                    Method::GET,
                    &format!("/v1/audit?subject={id}&limit=1000"),
                    Some(&key),
                    None,
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let mut v: Vec<String> = r.body["entries"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["action"] == "reveal")
                .map(|e| {
                    format!(
                        "{}:{}",
                        e["purpose"].as_str().unwrap(),
                        e["outcome"].as_str().unwrap()
                    )
                })
                .collect();
            v.sort();
            v
        }
    };
    assert_eq!(
        outcomes(&live).await,
        vec!["support:ok".to_owned(); RECORDS]
    );
    assert_eq!(
        outcomes(&restricted).await,
        ["legal_claims:ok", "marketing:denied_restricted"]
    );
    assert_eq!(outcomes(&erased).await, ["support:gone"]);
    let report = s.vault.audit().verify().await.unwrap();
    assert!(report.first_break.is_none(), "{report:?}");
    s.stop().await;
}

async fn erasure_makes_every_read_gone(store: TestStore) {
    let (s, key) = setup(&store).await;
    let id = subject(&s, &key, "gone@example.com").await;
    for i in 0..20 {
        put(
            &s,
            &key,
            &id,
            "comments",
            &format!("c{i}"),
            json!({"text": "hello"}),
        )
        .await;
    }
    let erased = erase(&s, &key, &id).await;
    let at = erased["erased_at"].as_str().unwrap().to_owned();
    for (m, path, body) in [
        (Method::GET, format!("/v1/subjects/{id}"), None),
        (
            Method::GET,
            format!("/v1/subjects/{id}/records/comments/c1?purpose=x"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/subjects/{id}/export?purpose=x"),
            None,
        ),
        (Method::GET, format!("/v1/subjects/{id}/restriction"), None),
        (
            Method::PUT,
            format!("/v1/subjects/{id}/records/comments/c1"),
            Some(json!({"fields": {"a": 1}})),
        ),
        (
            Method::POST,
            format!("/v1/subjects/{id}/tokens"),
            Some(json!({"audience": "analytics"})),
        ),
        (
            Method::DELETE,
            format!("/v1/subjects/{id}"),
            Some(json!({"reason": "again"})),
        ),
    ] {
        let r = s.call(m.clone(), &path, Some(&key), body).await;
        assert_eq!((r.status, r.code()), (410, "subject_erased"), "{m} {path}");
        assert_eq!(r.body["erased_at"].as_str(), Some(at.as_str()));
    }
    let r = s
        .call(
            Method::GET,
            "/v1/subjects/lookup?email=gone%40example.com",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "index entries go with the subject");
    // Below the API: no key, no identities, no records; the ledger holds no
    // personal data.
    let pool = s.vault.read_pool();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM identities WHERE subject = $1")
        .bind(&id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let ledger: Vec<String> =
        sqlx::query_scalar("SELECT reason FROM erasure_ledger WHERE subject = $1")
            .bind(&id)
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(ledger, vec!["subject_request".to_owned()]);
    s.stop().await;
}

async fn tenants_are_isolated(store: TestStore) {
    let (s, a) = setup(&store).await;
    s.tenant("globex").await;
    let b = s.key("globex", ALL).await;
    let ida = subject(&s, &a, "same@example.com").await;
    let idb = subject(&s, &b, "same@example.com").await;
    assert_ne!(ida, idb);
    put(&s, &b, &idb, "profile", "main", json!({"secret": "B"})).await;
    let tb = s
        .call(
            Method::POST,
            &format!("/v1/subjects/{idb}/tokens"),
            Some(&b),
            Some(json!({"audience": "analytics"})),
        )
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Key A sees nothing of B: 404, never 403 (existence is not leaked).
    for (m, path, body) in [
        (Method::GET, format!("/v1/subjects/{idb}"), None),
        (
            Method::GET,
            format!("/v1/subjects/{idb}/records/profile/main?purpose=x"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/subjects/{idb}/export?purpose=x"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/subjects/{idb}/records/profile/main"),
            Some(json!({"fields": {"secret": "A"}})),
        ),
        (
            Method::DELETE,
            format!("/v1/subjects/{idb}"),
            Some(json!({"reason": "x"})),
        ),
        (Method::PUT, format!("/v1/subjects/{idb}/restriction"), None),
        (Method::GET, format!("/v1/tokens/{tb}"), None),
    ] {
        let r = s.call(m.clone(), &path, Some(&a), body).await;
        assert_eq!(r.status, 404, "{m} {path}: {:?}", r.body);
    }
    // Lookup by the same email in A finds A's subject only.
    let r = s
        .call(
            Method::GET,
            "/v1/subjects/lookup?email=same%40example.com",
            Some(&a),
            None,
        )
        .await;
    assert_eq!(r.body["id"].as_str(), Some(ida.as_str()));
    // B's data is intact.
    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/{idb}/records/profile/main?purpose=x"),
            Some(&b),
            None,
        )
        .await;
    assert_eq!(r.body["fields"]["secret"], "B");
    // An API key is not an admin token, and a tenant key cannot mint keys of
    // another tenant.
    let r = s.call(Method::GET, "/v1/tenants", Some(&a), None).await;
    assert!(r.status == 401 || r.status == 403, "{}", r.status);
    let admin_a = s.key("acme", &["admin"]).await;
    let r = s
        .call(
            Method::POST,
            "/v1/keys",
            Some(&admin_a),
            Some(json!({"tenant": "globex", "scopes": ["reveal"]})),
        )
        .await;
    assert!(r.status == 403 || r.status == 404, "{:?}", r.body);
    // Audit of A does not list B's subject.
    let r = s.call(Method::GET, "/v1/audit", Some(&a), None).await;
    assert_eq!(r.status, 200);
    assert!(!r.body.to_string().contains(&idb));
    s.stop().await;
}

async fn scopes_are_enforced(store: TestStore) {
    let (s, all) = setup(&store).await;
    let id = subject(&s, &all, "scope@example.com").await;
    let write_only = s.key("acme", &["write"]).await;
    let cases = [
        (
            Method::GET,
            "/v1/subjects/lookup?email=scope%40example.com".to_owned(),
            None,
        ),
        (Method::GET, format!("/v1/subjects/{id}/export"), None),
        (
            Method::DELETE,
            format!("/v1/subjects/{id}"),
            Some(json!({"reason": "x"})),
        ),
        (Method::GET, "/v1/audit".to_owned(), None),
    ];
    for (m, path, body) in cases {
        let r = s.call(m.clone(), &path, Some(&write_only), body).await;
        assert_eq!((r.status, r.code()), (403, "missing_scope"), "{m} {path}");
    }
    let read_only = s.key("acme", &["reveal"]).await;
    let r = s
        .call(
            Method::PUT,
            &format!("/v1/subjects/{id}/records/p/k"),
            Some(&read_only),
            Some(json!({"fields": {"a": 1}})),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "missing_scope"));
    s.stop().await;
}

async fn bad_input_gets_clear_problems(store: TestStore) {
    let (s, key) = setup(&store).await;
    let id = subject(&s, &key, "bad@example.com").await;
    let rec = format!("/v1/subjects/{id}/records/profile/main");

    let r = s
        .call_raw(
            Method::PUT,
            &rec,
            Some(&key),
            "application/json",
            b"{\"fields\": {".to_vec(),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "malformed_json"));
    assert_eq!(r.content_type, "application/problem+json");
    assert!(r.body["detail"].as_str().unwrap().contains("line 1"));

    let r = s
        .call(
            Method::PUT,
            &rec,
            Some(&key),
            Some(json!({"fields": {}, "feilds": 1})),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "unknown_field"));
    // The client's name is never echoed: the known fields are.
    assert!(r.body.get("field").is_none(), "{}", r.body);
    assert!(!r.body.to_string().contains("feilds"), "{}", r.body);

    let r = s
        .call(Method::PUT, &rec, Some(&key), Some(json!({"fields": 3})))
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);

    let r = s
        .call_raw(Method::PUT, &rec, Some(&key), "text/plain", b"{}".to_vec())
        .await;
    assert_eq!((r.status, r.code()), (415, "unsupported_media_type"));

    let big = format!(
        "{{\"fields\": {{\"x\": \"{}\"}}}}",
        "a".repeat(2 * 1024 * 1024)
    );
    let r = s
        .call_raw(
            Method::PUT,
            &rec,
            Some(&key),
            "application/json",
            big.into_bytes(),
        )
        .await;
    assert_eq!((r.status, r.code()), (413, "body_too_large"));

    for bad in ["not-an-id", "sub_zz", "sub_%27%3B%20drop"] {
        let r = s
            .call(
                Method::GET,
                &format!("/v1/subjects/{bad}"),
                Some(&key),
                None,
            )
            .await;
        assert_eq!((r.status, r.code()), (400, "invalid_id"), "{bad}");
        assert_eq!(r.body["field"], "id");
    }
    let r = s
        .call(
            Method::PUT,
            &format!("/v1/subjects/{id}/records/Bad%20Coll/main"),
            Some(&key),
            Some(json!({"fields": {}})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["field"].as_str()),
        (400, Some("collection"))
    );
    // Unknown, well-formed subject: 404.
    let r = s
        .call(
            Method::GET,
            "/v1/subjects/sub_00000000000000000000000000000000",
            Some(&key),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    // Identity values that cannot be normalised name the field and do not
    // echo the value.
    let r = s
        .call(
            Method::POST,
            "/v1/subjects",
            Some(&key),
            Some(json!({"identities": {"email": "not an email"}})),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(r.body["field"].as_str().unwrap().contains("email"));
    assert!(!r.body.to_string().contains("not an email"));
    let r = s
        .call(
            Method::POST,
            "/v1/subjects",
            Some(&key),
            Some(json!({"identities": {"Not A Kind!": "1"}})),
        )
        .await;
    assert_eq!(r.status, 400);
    // Wrong tenant, wrong scope name, zero expiry.
    let r = s
        .call(
            Method::POST,
            "/v1/keys",
            Some(&s.admin),
            Some(json!({"tenant": "nope", "scopes": ["write"]})),
        )
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    let r = s
        .call(
            Method::POST,
            "/v1/keys",
            Some(&s.admin),
            Some(json!({"tenant": "acme", "scopes": ["superuser"]})),
        )
        .await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("scopes")));
    // Duplicate tenant and external id: 409.
    let r = s
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&s.admin),
            Some(json!({"id": "acme", "name": "again"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "conflict"));
    // Unknown route and method.
    let r = s.call(Method::GET, "/v1/nothing", Some(&key), None).await;
    assert_eq!((r.status, r.code()), (404, "no_such_route"));
    let r = s
        .call(Method::PATCH, "/v1/subjects", Some(&key), None)
        .await;
    assert_eq!((r.status, r.code()), (405, "method_not_allowed"));
    // Nothing was lost by the failed writes.
    let r = s
        .call(
            Method::GET,
            "/v1/subjects/lookup?email=bad%40example.com",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.body["id"].as_str(), Some(id.as_str()));
    s.stop().await;
}

async fn keys_expire_and_revoke(store: TestStore) {
    let (s, _) = setup(&store).await;
    // No key, wrong scheme, forged keys.
    let r = s.call(Method::GET, "/v1/audit", None, None).await;
    assert_eq!((r.status, r.code()), (401, "unauthenticated"));
    for forged in [
        "ck_00000000000000000000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "garbage",
        "",
    ] {
        let r = s.call(Method::GET, "/v1/audit", Some(forged), None).await;
        assert_eq!(r.status, 401, "{forged}");
    }
    // A real key id with a tampered secret.
    let good = s.key("acme", ALL).await;
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let r = s
        .call(Method::GET, "/v1/audit", Some(&tampered), None)
        .await;
    assert_eq!(r.status, 401);
    // Revoked.
    let r = s
        .call(
            Method::POST,
            "/v1/keys",
            Some(&s.admin),
            Some(json!({"tenant": "acme", "scopes": ["audit"]})),
        )
        .await;
    let (kid, k) = (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["key"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        s.call(Method::GET, "/v1/audit", Some(&k), None)
            .await
            .status,
        200
    );
    let r = s
        .call(
            Method::DELETE,
            &format!("/v1/keys/{kid}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = s.call(Method::GET, "/v1/audit", Some(&k), None).await;
    assert_eq!(r.status, 401, "revoked keys stop at once on this server");
    // Expired.
    let r = s
        .call(
            Method::POST,
            "/v1/keys",
            Some(&s.admin),
            Some(json!({"tenant": "acme", "scopes": ["audit"], "expires_in_seconds": 1})),
        )
        .await;
    let k = r.body["key"].as_str().unwrap().to_owned();
    assert_eq!(
        s.call(Method::GET, "/v1/audit", Some(&k), None)
            .await
            .status,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let r = s.call(Method::GET, "/v1/audit", Some(&k), None).await;
    assert_eq!(r.status, 401);
    // The wrong admin token.
    let r = s
        .call(Method::GET, "/v1/tenants", Some("cadm_wrong"), None)
        .await;
    assert_eq!(r.status, 401);
    s.stop().await;
}

async fn tenant_shred_forgets_all_its_subjects(store: TestStore) {
    let (s, a) = setup(&store).await;
    s.tenant("globex").await;
    let b = s.key("globex", ALL).await;
    let ida = subject(&s, &a, "a@example.com").await;
    let idb = subject(&s, &b, "b@example.com").await;
    put(&s, &a, &ida, "p", "k", json!({"x": "A"})).await;
    put(&s, &b, &idb, "p", "k", json!({"x": "B"})).await;
    let r = s
        .call(Method::DELETE, "/v1/tenants/acme", Some(&s.admin), None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/{ida}/records/p/k?purpose=x"),
            Some(&a),
            None,
        )
        .await;
    assert!(r.status == 410 || r.status == 401, "{:?}", r.body);
    // The tenant's keys are gone from the key store: even the vault cannot
    // decrypt what is left.
    let acme = custos_core::ids::TenantId::parse("acme").unwrap();
    assert!(!s.vault.keystore().tenant_has_keys(&acme).await.unwrap());
    // The other tenant is untouched.
    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/{idb}/records/p/k?purpose=x"),
            Some(&b),
            None,
        )
        .await;
    assert_eq!(r.body["fields"]["x"], "B");
    s.stop().await;
}

async fn audit_records_and_detects_tampering(store: TestStore) {
    let (s, key) = setup(&store).await;
    let id = subject(&s, &key, "audit@example.com").await;
    put(&s, &key, &id, "p", "k", json!({"x": 1})).await;
    s.call(
        Method::GET,
        &format!("/v1/subjects/{id}/records/p/k?purpose=support"),
        Some(&key),
        None,
    )
    .await;
    s.call(
        Method::GET,
        "/v1/subjects/lookup?email=audit%40example.com",
        Some(&key),
        None,
    )
    .await;
    let r = s
        .call(
            Method::GET,
            &format!("/v1/audit?subject={id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let entries = r.body["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"reveal"), "{actions:?}");
    assert!(actions.contains(&"lookup"), "{actions:?}");
    let reveal = entries.iter().find(|e| e["action"] == "reveal").unwrap();
    assert_eq!(reveal["purpose"], "support");
    // No personal data in the audit log.
    let all = s
        .call(Method::GET, "/v1/audit?limit=1000", Some(&key), None)
        .await;
    assert!(!all.body.to_string().contains("audit@example.com"));

    let report = s.vault.audit().verify().await.unwrap();
    assert!(report.first_break.is_none(), "{report:?}");
    assert!(report.entries >= 4, "{report:?}");
    // Edit one entry below the API: verification names it.
    let seq: i64 = entries[0]["seq"].as_i64().unwrap();
    sqlx::query("UPDATE audit_log SET purpose = 'edited' WHERE seq = $1")
        .bind(seq)
        .execute(s.vault.read_pool())
        .await
        .unwrap();
    let report = s.vault.audit().verify().await.unwrap();
    assert_eq!(report.first_bad_seq, Some(seq), "{report:?}");
    s.stop().await;
}

async fn two_servers_share_one_store(store: TestStore) {
    let (one, key) = setup(&store).await;
    let two = crate::support::start(&store).await;
    let id = subject(&one, &key, "shared@example.com").await;
    assert_eq!(put(&one, &key, &id, "p", "k", json!({"v": 1})).await, 200);
    // Server two authenticates the key and reads what server one wrote.
    let r = two
        .call(
            Method::GET,
            &format!("/v1/subjects/{id}/records/p/k?purpose=x"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["fields"]["v"].as_i64()),
        (200, Some(1)),
        "{:?}",
        r.body
    );
    // Both write concurrently.
    let mut tasks = Vec::new();
    for (n, base) in [(0, one.base.clone()), (1, two.base.clone())] {
        for i in 0..10 {
            let (http, key, url) = (
                one.http.clone(),
                key.clone(),
                format!("{base}/v1/subjects/{id}/records/p/k{n}_{i}"),
            );
            tasks.push(tokio::spawn(async move {
                let r = http
                    .put(url)
                    .bearer_auth(key)
                    .json(&json!({"fields": {"i": i}}))
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16()
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    // Erasure on two is seen by one, even though one cached the key.
    erase(&two, &key, &id).await;
    let r = one
        .call(
            Method::GET,
            &format!("/v1/subjects/{id}/records/p/k?purpose=x"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (410, "subject_erased"));
    // The audit chain written by two writers is intact.
    let report = one.vault.audit().verify().await.unwrap();
    assert!(report.first_break.is_none(), "{report:?}");
    two.stop().await;
    one.stop().await;
}

async fn key_rotation_keeps_data_readable(store: TestStore) {
    let (s, key) = setup(&store).await;
    let id = subject(&s, &key, "rot@example.com").await;
    put(&s, &key, &id, "p", "k", json!({"v": "before"})).await;
    let r = s
        .call(
            Method::POST,
            "/v1/tenants/acme/rotate-key",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    s.vault.clear_key_cache();
    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/{id}/records/p/k?purpose=x"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.body["fields"]["v"], "before", "{:?}", r.body);
    let r = s
        .call(
            Method::GET,
            "/v1/subjects/lookup?email=rot%40example.com",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.body["id"].as_str(), Some(id.as_str()));
    s.stop().await;
}

async fn map_and_ropa_are_served(store: TestStore) {
    let (s, key) = setup(&store).await;
    let r = s.call(Method::GET, "/v1/map", Some(&key), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body.is_object());
    let r = s.call(Method::GET, "/v1/map", None, None).await;
    assert_eq!(r.status, 401);
    for (format, ct) in [
        ("csv", "text/csv"),
        ("json", "application/json"),
        ("md", "text/markdown"),
        ("html", "text/html"),
    ] {
        let res = s
            .http
            .get(format!("{}/v1/ropa?format={format}", s.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{format}");
        let got = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(got.starts_with(ct), "{format}: {got}");
        let text = res.text().await.unwrap();
        assert!(text.len() > 200, "{format}: {text}");
    }
    let r = s
        .call(Method::GET, "/v1/ropa?format=pdf", Some(&key), None)
        .await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("format")));
    // Reload of the built-in map works and needs the admin token.
    let r = s
        .call(Method::POST, "/v1/map/reload", Some(&key), None)
        .await;
    assert_eq!((r.status, r.code()), (403, "admin_token_required"));
    let r = s
        .call(Method::POST, "/v1/map/reload", Some(&s.admin), None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    s.stop().await;
}

async fn scrub_endpoint_redacts_text_and_json_lines(store: TestStore) {
    let (s, key) = setup(&store).await;
    let post = |query: &'static str, ct: &'static str, body: &'static str| {
        let (s, key) = (&s, key.clone());
        async move {
            let res = s
                .http
                .post(format!("{}/v1/scrub{query}", s.base))
                .bearer_auth(key)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let findings = res
                .headers()
                .get("custos-findings")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, findings, res.text().await.unwrap())
        }
    };
    let (st, n, out) = post(
        "",
        "text/plain",
        "login jane.doe@example.com from 203.0.113.7\ncard 4111 1111 1111 1111\n",
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(n.as_deref(), Some("3"));
    assert!(!out.contains("jane.doe") && !out.contains("203.0.113.7") && !out.contains("4111"));
    assert!(out.contains("[EMAIL]"), "{out}");
    assert_eq!(out.lines().count(), 2);

    let (st, _, out) = post(
        "",
        "application/x-ndjson",
        "{\"user\":\"jane.doe@example.com\",\"n\":1}\n",
    )
    .await;
    assert_eq!(st, 200);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["n"], 1);
    assert!(!v["user"].as_str().unwrap().contains("jane"));

    let (st, _, out) = post("?mode=mask", "text/plain", "mail jane@example.com").await;
    assert_eq!(st, 200);
    assert!(
        out.contains("@example.com") && !out.contains("jane@"),
        "{out}"
    );

    let (st, _, out) = post("?mode=pseudonymize", "text/plain", "x").await;
    assert_eq!(st, 400, "no key configured: {out}");
    let (st, _, _) = post("?mode=shout", "text/plain", "x").await;
    assert_eq!(st, 400);
    let r = s
        .call_raw(Method::POST, "/v1/scrub", None, "text/plain", b"x".to_vec())
        .await;
    assert_eq!(r.status, 401);
    let r = s
        .call_raw(
            Method::POST,
            "/v1/scrub",
            Some(&key),
            "text/plain",
            vec![b'a'; 2 * 1024 * 1024],
        )
        .await;
    assert_eq!((r.status, r.code()), (413, "body_too_large"));
    s.stop().await;
}

async fn audit_detects_removal_and_truncation(store: TestStore) {
    let (s, key) = setup(&store).await;
    for i in 0..6 {
        s.call(
            Method::GET,
            &format!("/v1/subjects/lookup?email=n{i}%40example.com"),
            Some(&key),
            None,
        )
        .await;
    }
    // Closing signs a final checkpoint that anchors the tail in the key store.
    s.stop().await;
    let vault = store.open().await;
    let last: i64 = sqlx::query_scalar("SELECT MAX(seq) FROM audit_log")
        .fetch_one(vault.read_pool())
        .await
        .unwrap();
    assert!(last >= 8, "{last}");
    assert!(vault.audit().verify().await.unwrap().first_break.is_none());
    // Truncating the tail is detected against the anchor.
    sqlx::query("DELETE FROM audit_log WHERE seq >= $1")
        .bind(last - 1)
        .execute(vault.read_pool())
        .await
        .unwrap();
    let report = vault.audit().verify().await.unwrap();
    assert!(
        report.first_break.is_some(),
        "truncation missed: {report:?}"
    );
    assert_eq!(report.first_bad_seq, Some(last - 1), "{report:?}");
    // Removing an entry in the middle is named too.
    sqlx::query("DELETE FROM audit_log WHERE seq = 3")
        .execute(vault.read_pool())
        .await
        .unwrap();
    let report = vault.audit().verify().await.unwrap();
    assert_eq!(report.first_bad_seq, Some(3), "{report:?}");
    vault.close().await;
}

async fn a_failing_write_does_not_fail_its_batch(store: TestStore) {
    let (s, key) = setup(&store).await;
    // 40 concurrent creations, every 4th reusing one external id: they land
    // in shared group commits; only the duplicates fail.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (http, url, key) = (
            s.http.clone(),
            format!("{}/v1/subjects", s.base),
            key.clone(),
        );
        let ext = if i % 4 == 0 {
            "dup".to_owned()
        } else {
            format!("u{i}")
        };
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(key)
                .json(&json!({"external_id": ext, "identities": {"email": format!("p{i}@example.com")}}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            201 => created += 1,
            409 => conflicts += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((created, conflicts), (31, 9));
    s.stop().await;
}
