//! Hardening of the HTTP surface (issue 17, point 7): problems never echo
//! client-chosen names, key lifetimes are bounded, record keys cannot name
//! directories, auth schemes are case-insensitive, the admin token is only
//! the admin's, and verification-code mails are rate-limited.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use custos_server::rate_limit::{Limit, RateLimits};
use custos_testkit::{backend_tests, TestServer, TestStore};
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

backend_tests!(
    problems_never_echo_unknown_names,
    key_lifetimes_are_bounded,
    record_keys_cannot_name_directories,
    auth_schemes_are_case_insensitive,
    admin_endpoints_refuse_tenant_keys_with_403,
    verification_code_mails_are_rate_limited,
    negative_audit_paging_is_refused,
);

async fn negative_audit_paging_is_refused(store: TestStore) {
    let (s, key) = crate::support::with_tenant(&store, "acme", &["audit"]).await;
    let r = s
        .call(Method::GET, "/v1/audit?after=-1", Some(&key), None)
        .await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("after")));
    let r = s
        .call(Method::GET, "/v1/audit?after=0", Some(&key), None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    s.stop().await;
}

const EMAIL: &str = "jane.doe@example.com";

async fn problems_never_echo_unknown_names(store: TestStore) {
    let (s, key) = crate::support::with_tenant(&store, "acme", &["write", "lookup"]).await;
    // An unknown query key that is an email.
    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/lookup?{EMAIL}=1"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_query"), "{:?}", r.body);
    let text = r.body.to_string();
    assert!(!text.contains("jane"), "{text}");
    assert!(text.contains("an unknown field"), "{text}");
    assert!(r.body.get("field").is_none(), "{text}");
    // An unknown body field that is an email.
    let r = s
        .call(
            Method::POST,
            "/v1/subjects",
            Some(&key),
            Some(json!({ EMAIL: "x" })),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "unknown_field"), "{:?}", r.body);
    let text = r.body.to_string();
    assert!(!text.contains("jane"), "{text}");
    assert!(
        text.contains("external_id"),
        "known fields are named: {text}"
    );
    // An identity kind that is an email.
    let r = s
        .call(
            Method::POST,
            "/v1/subjects",
            Some(&key),
            Some(json!({"identities": { EMAIL: "x" }})),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["field"], "identities");
    assert!(!r.body.to_string().contains("jane"), "{}", r.body);
    // An unknown scope that is an email.
    let r = s
        .call(
            Method::POST,
            "/v1/keys",
            Some(&s.admin),
            Some(json!({"tenant": "acme", "scopes": [EMAIL]})),
        )
        .await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("scopes")));
    assert!(!r.body.to_string().contains("jane"), "{}", r.body);
    // A value of the wrong type in the query.
    let r = s
        .call(
            Method::GET,
            &format!("/v1/audit?after={EMAIL}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(!r.body.to_string().contains("jane"), "{}", r.body);
    s.stop().await;
}

async fn key_lifetimes_are_bounded(store: TestStore) {
    let s = crate::support::start(&store).await;
    s.tenant("acme").await;
    for secs in [json!(0), json!(315_360_001_u64), json!(u64::MAX)] {
        let r = s
            .call(
                Method::POST,
                "/v1/keys",
                Some(&s.admin),
                Some(json!({"tenant": "acme", "scopes": ["write"], "expires_in_seconds": secs})),
            )
            .await;
        assert_eq!(r.status, 400, "{secs}: {:?}", r.body);
        assert_eq!(r.body["field"], "expires_in_seconds", "{:?}", r.body);
    }
    // The longest lifetime gives a key that works.
    let r = s
        .call(
            Method::POST,
            "/v1/keys",
            Some(&s.admin),
            Some(json!({"tenant": "acme", "scopes": ["write"], "expires_in_seconds": 315_360_000_u64})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let key = r.body["key"].as_str().unwrap().to_owned();
    s.subject(&key, json!({})).await;
    s.stop().await;
}

/// Sends one raw request (paths the URL parser would normalise) and
/// returns the status.
async fn raw_status(s: &TestServer, method: &str, path: &str, key: &str, body: &str) -> u16 {
    let addr = s.base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

async fn record_keys_cannot_name_directories(store: TestStore) {
    let (s, key) = crate::support::with_tenant(&store, "acme", &["write", "reveal"]).await;
    let id = s.subject(&key, json!({})).await;
    let body = r#"{"fields": {"a": 1}}"#;
    for rk in ["..", ".", "%2E%2E", "a%5Cb", "a%01b", "a%20b", "a%2Fb"] {
        let path = format!("/v1/subjects/{id}/records/profile/{rk}");
        assert_eq!(raw_status(&s, "PUT", &path, &key, body).await, 400, "{rk}");
    }
    for coll in ["..", ".", "%2E%2E"] {
        let path = format!("/v1/subjects/{id}/records/{coll}/k1");
        assert_eq!(
            raw_status(&s, "PUT", &path, &key, body).await,
            400,
            "{coll}"
        );
    }
    let path = format!("/v1/subjects/{id}/records/profile/v1..2");
    assert_eq!(raw_status(&s, "PUT", &path, &key, body).await, 200);
    s.stop().await;
}

async fn auth_schemes_are_case_insensitive(store: TestStore) {
    let (s, key) = crate::support::with_tenant(&store, "acme", &["write"]).await;
    for scheme in ["bearer", "BEARER", "Bearer", "bEaReR"] {
        let r = s
            .http
            .post(format!("{}/v1/subjects", s.base))
            .header("authorization", format!("{scheme} {key}"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{scheme}");
    }
    for bad in ["Basic abc", "Bearer", "Bearer ", "Bearerx y", "Token abc"] {
        let r = s
            .http
            .post(format!("{}/v1/subjects", s.base))
            .header("authorization", bad)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{bad}");
    }
    s.stop().await;
}

async fn admin_endpoints_refuse_tenant_keys_with_403(store: TestStore) {
    let (s, key) = crate::support::with_tenant(&store, "acme", &["write", "admin"]).await;
    let r = s.call(Method::GET, "/v1/tenants", Some(&key), None).await;
    assert_eq!((r.status, r.code()), (403, "admin_token_required"));
    let r = s
        .call(Method::GET, "/v1/tenants", Some("ck_not_a_key"), None)
        .await;
    assert_eq!((r.status, r.code()), (401, "unauthenticated"));
    // A token of another length than the admin's is refused like any other.
    let long = format!("{}x", s.admin);
    let r = s.call(Method::GET, "/v1/tenants", Some(&long), None).await;
    assert_eq!(r.status, 401);
    s.stop().await;
}

async fn verification_code_mails_are_rate_limited(store: TestStore) {
    let outbox = tempfile_dir();
    let dir = outbox.clone();
    let s = crate::support::start_with(&store, move |st| {
        st.with_outbox(Some(dir)).with_rate_limits(RateLimits {
            code_mails_per_tenant: Limit::new(1, 4),
            code_mails_per_destination: Limit::new(1, 2),
            ..RateLimits::default()
        })
    })
    .await;
    s.tenant("acme").await;
    let key = s.key("acme", &["dsr"]).await;
    let create = |kind: &'static str, email: &'static str| {
        let s = &s;
        let key = key.clone();
        async move {
            s.call(
                Method::POST,
                "/v1/requests",
                Some(&key),
                Some(json!({"type": kind, "identity": {"email": email}})),
            )
            .await
        }
    };
    // One address: two codes, then 429 with Retry-After.
    assert_eq!(create("access", "victim@example.com").await.status, 201);
    assert_eq!(create("erasure", "victim@example.com").await.status, 201);
    let r = create("objection", "victim@example.com").await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{:?}", r.body);
    assert!(!r.body.to_string().contains("victim"), "{}", r.body);
    // The address is compared normalised.
    let r = create("restriction", " Victim@Example.com ").await;
    assert_eq!(r.status, 429, "{:?}", r.body);
    // Another tenant's request for the same address is its own: not
    // refused, so no tenant learns from a 429 that another one asked.
    s.tenant("globex").await;
    let globex = s.key("globex", &["dsr"]).await;
    let r = s
        .call(
            Method::POST,
            "/v1/requests",
            Some(&globex),
            Some(json!({"type": "access", "identity": {"email": "victim@example.com"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // The tenant: four codes in all, then 429 for any address.
    assert_eq!(create("access", "a@example.com").await.status, 201);
    assert_eq!(create("access", "b@example.com").await.status, 201);
    assert_eq!(create("access", "c@example.com").await.status, 429);
    // Retry-After is sent.
    let res = s
        .http
        .post(format!("{}/v1/requests", s.base))
        .bearer_auth(&key)
        .json(&json!({"type": "access", "identity": {"email": "d@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    // Vouched requests mail nothing and are not limited.
    let r = s
        .call(
            Method::POST,
            "/v1/requests",
            Some(&key),
            Some(json!({"type": "access", "identity": {"email": "e@example.com"}, "verified_by_app": true})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let mails = std::fs::read_dir(&outbox).unwrap().count();
    assert_eq!(mails, 5, "codes mailed: acme's four and globex's one");
    s.stop().await;
    let _ = std::fs::remove_dir_all(outbox);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("custos-outbox-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
