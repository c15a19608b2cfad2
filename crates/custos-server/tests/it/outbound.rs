//! Outgoing calls of the request executor, over loopback on SQLite and
//! PostgreSQL: a processor's notice never follows a redirect, and a plain
//! `http://` URL the map does not allow is never called.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use custos_dsr::ExecutorConfig;
use custos_map::{MapOrigin, MapSource};
use custos_server::AppState;
use custos_testkit::{backend_tests, TestServer, TestStore};
use reqwest::Method;
use serde_json::{json, Value};

backend_tests!(a_processor_redirect_fails_the_step_and_is_not_followed);

/// A loopback listener answering every request with `status` (and a
/// `Location` when given); returns its URL and how many requests reached it.
async fn listener(status: StatusCode, location: Option<String>) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let (h, location) = (h.clone(), location.clone());
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            let mut headers = axum::http::HeaderMap::new();
            if let Some(l) = location {
                headers.insert(axum::http::header::LOCATION, l.parse().unwrap());
            }
            (status, headers)
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notices", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (url, hits)
}

fn map_yaml(processor_url: &str) -> String {
    format!(
        r#"version: 1
organisation: {{ controller: Sample SaaS GmbH, contact: privacy@sample.example }}
purposes:
  - {{ id: account, title: Provide the account, legal_basis: contract, subjects: [customer] }}
processors:
  - id: crm
    name: Sample CRM Ltd.
    role: processor
    country: IE
    dpa: {{ status: signed, date: "2024-01-01" }}
    notify: {{ url: "{processor_url}" }}
    allow_insecure_loopback: true
    purposes: [account]
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
"#
    )
}

async fn server(store: &TestStore, map_url: &str) -> (TestServer, AppState, String) {
    let map_file = store.dir().join("map.yaml");
    std::fs::write(&map_file, map_yaml(map_url)).unwrap();
    let (map, _) = MapSource::load(MapOrigin::File(map_file)).expect("valid map");
    let mut cfg = ExecutorConfig::new("http://127.0.0.1:1");
    cfg.retry_base = Duration::from_millis(5);
    cfg.env = HashMap::from([(
        custos_dsr::processor_secret_var("crm"),
        "crm-secret".to_owned(),
    )])
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
    server.tenant("acme").await;
    let key = server.key("acme", &["write", "dsr"]).await;
    server
        .subject(
            &key,
            json!({"external_id": "1", "identities": {"email": "jane@example.com"}}),
        )
        .await;
    (server, state, key)
}

async fn run_until_failed(s: &TestServer, state: &AppState, key: &str, id: &str) -> Value {
    for _ in 0..400 {
        state.executor().round().await.unwrap();
        let r = s
            .call(Method::GET, &format!("/v1/requests/{id}"), Some(key), None)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        match r.body["status"].as_str().unwrap() {
            "failed" => return r.body,
            "waiting_processor" | "completed" => panic!("the notice went out: {:#}", r.body),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("request {id} never failed");
}

async fn a_processor_redirect_fails_the_step_and_is_not_followed(store: TestStore) {
    let (elsewhere, elsewhere_hits) = listener(StatusCode::ACCEPTED, None).await;
    let (url, hits) = listener(StatusCode::TEMPORARY_REDIRECT, Some(elsewhere)).await;
    let (s, state, key) = server(&store, &url).await;
    let r = s
        .call(
            Method::POST,
            "/v1/requests",
            Some(&key),
            Some(json!({"type": "erasure", "identity": {"email": "jane@example.com"}, "verified_by_app": true})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = run_until_failed(&s, &state, &key, &id).await;
    let step = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["system"] == "crm" || st["processor"] == "crm")
        .unwrap_or_else(|| panic!("no processor step: {r:#}"));
    let error = step["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("processor crm") && error.contains("redirect (HTTP 307)"),
        "{r:#}"
    );
    // Failed at once: retrying would only re-send to the same place.
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(elsewhere_hits.load(Ordering::SeqCst), 0);
    s.stop().await;
}
