//! `/openapi.json` is exactly the server: every route of the document is
//! walked against the running server, and every status it answers, with
//! and without credentials, with bad bodies and bad parameters, must be
//! documented for that operation, problems as `application/problem+json`
//! with the `Problem` schema.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use custos_testkit::{backend_tests, TestServer, TestStore};
use reqwest::Method;
use serde_json::Value;

backend_tests!(the_document_is_the_server);

/// One operation of the document.
struct Op {
    method: Method,
    path: String,
    doc: Value,
}

fn operations(doc: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            let method = match m.as_str() {
                "get" => Method::GET,
                "put" => Method::PUT,
                "post" => Method::POST,
                "delete" => Method::DELETE,
                "patch" => Method::PATCH,
                _ => continue,
            };
            ops.push(Op {
                method,
                path: path.clone(),
                doc: op.clone(),
            });
        }
    }
    ops
}

fn documented(op: &Op, status: u16) -> bool {
    op.doc["responses"].get(status.to_string()).is_some()
}

/// The document's static promises.
fn check_static(op: &Op) {
    let name = format!("{} {}", op.method, op.path);
    let params = op.doc["parameters"].as_array().cloned().unwrap_or_default();
    for p in &params {
        let (n, place) = (p["name"].as_str().unwrap(), p["in"].as_str().unwrap());
        let in_template = op.path.contains(&format!("{{{n}}}"));
        match place {
            "path" => {
                assert!(in_template, "{name}: {n} is in: path but not in the path");
                assert_eq!(p["required"], true, "{name}: {n}");
            }
            "query" | "header" => assert!(!in_template, "{name}: {n}"),
            other => panic!("{name}: {n} in {other}"),
        }
    }
    for seg in op.path.split('/').filter(|s| s.starts_with('{')) {
        let n = seg.trim_matches(|c| c == '{' || c == '}');
        assert!(
            params.iter().any(|p| p["name"] == n && p["in"] == "path"),
            "{name}: path parameter {n} undocumented"
        );
    }
    for (status, r) in op.doc["responses"].as_object().unwrap() {
        if status.starts_with('4') || status.starts_with('5') {
            let content = r["content"].as_object();
            if let Some(c) = content {
                assert!(
                    !c.contains_key("application/json"),
                    "{name} {status}: a problem documented as application/json"
                );
                let schema = &c["application/problem+json"]["schema"]["$ref"];
                assert_eq!(
                    schema, "#/components/schemas/Problem",
                    "{name} {status}: {r}"
                );
            }
        }
    }
    let secured = op.doc["security"].as_array().is_some_and(|s| !s.is_empty());
    if secured {
        assert!(documented(op, 401), "{name}: 401");
    }
    if op.doc.get("requestBody").is_some() {
        for st in [400, 408, 413] {
            assert!(documented(op, st), "{name}: {st}");
        }
    }
    if op.doc.get("parameters").is_some() {
        assert!(documented(op, 400), "{name}: 400");
    }
}

/// Sends `op` with `token`, `content_type` and `body`, placeholders in the
/// path; checks the answer is documented and problems are problem+json.
async fn check_answer(
    s: &TestServer,
    op: &Op,
    what: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> u16 {
    let path = op
        .path
        .split('/')
        .map(|seg| if seg.starts_with('{') { "x" } else { seg })
        .collect::<Vec<_>>()
        .join("/");
    let mut req = s
        .http
        .request(op.method.clone(), format!("{}{}", s.base, path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct).body(body.clone());
    }
    if body.len() > custos_testkit::BODY_LIMIT {
        req = req.header("connection", "close");
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let name = format!("{} {} ({what})", op.method, op.path);
    assert!(
        documented(op, status),
        "{name}: {status} is answered but not documented"
    );
    if status >= 400 {
        assert_eq!(ct, "application/problem+json", "{name}: {status}");
    }
    status
}

async fn the_document_is_the_server(store: TestStore) {
    let (s, key) = crate::support::with_tenant(&store, "acme", &["write"]).await;
    let doc: Value = s
        .http
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ops = operations(&doc);
    assert!(ops.len() >= 40, "{} operations", ops.len());
    for op in &ops {
        check_static(op);
        let secured = op.doc["security"].as_array().is_some_and(|s| !s.is_empty());
        let json = op.doc["requestBody"]["content"]
            .as_object()
            .is_some_and(|c| c.contains_key("application/json"));
        let ct = json.then_some("application/json");
        let body = if json { b"{}".to_vec() } else { Vec::new() };
        let st = check_answer(&s, op, "no credentials", None, ct, body.clone()).await;
        if secured {
            assert_eq!(st, 401, "{} {}", op.method, op.path);
        }
        check_answer(&s, op, "admin token", Some(&s.admin), ct, body.clone()).await;
        check_answer(&s, op, "write key", Some(&key), ct, body.clone()).await;
        if json {
            let admin_only = op.doc["security"].to_string().contains("admin_token")
                && !op.doc["security"].to_string().contains("api_key");
            let token = if admin_only {
                s.admin.clone()
            } else {
                key.clone()
            };
            check_answer(&s, op, "malformed", Some(&token), ct, b"{".to_vec()).await;
            check_answer(
                &s,
                op,
                "text",
                Some(&token),
                Some("text/plain"),
                b"{}".to_vec(),
            )
            .await;
            let big = vec![b' '; custos_testkit::BODY_LIMIT + 10];
            check_answer(&s, op, "too large", Some(&token), ct, big).await;
        }
    }
    s.stop().await;
}
