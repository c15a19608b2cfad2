//! Data-subject requests over HTTP on SQLite and PostgreSQL: lifecycle,
//! verification, merging, the legal clock, listing, isolation, scopes and
//! audit.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use custos_testkit::{backend_tests, TestServer, TestStore};
use reqwest::Method;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

backend_tests!(
    create_by_email_is_due_one_month_later,
    verify_by_code_counts_attempts_and_locks,
    vouched_verification,
    duplicates_merge,
    extension_limits,
    reject_and_illegal_transitions,
    list_filters,
    tenants_are_isolated,
    scopes_are_enforced,
    bad_input_names_the_field,
    audit_has_ids_but_no_identity_values,
    openapi_lists_request_paths,
    code_is_sent_over_smtp,
    public_endpoints_are_rate_limited,
);

const SCOPES: &[&str] = &["write", "dsr", "audit"];
const EMAIL: &str = "Jane.Doe@Example.com";

async fn setup(store: &TestStore) -> (TestServer, String) {
    let s =
        crate::support::start_with(store, |st| st.with_outbox(Some(store.dir().join("outbox"))))
            .await;
    s.tenant("acme").await;
    let key = s.key("acme", SCOPES).await;
    (s, key)
}

async fn jane(s: &TestServer, key: &str) -> String {
    s.subject(key, json!({"identities": {"email": EMAIL}}))
        .await
}

async fn create(s: &TestServer, key: &str, body: Value) -> (u16, Value) {
    let r = s
        .call(Method::POST, "/v1/requests", Some(key), Some(body))
        .await;
    (r.status, r.body)
}

fn time_of(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339).unwrap()
}

fn outbox_code(store: &TestStore, id: &str) -> String {
    let text = std::fs::read_to_string(store.dir().join("outbox").join(format!("{id}.eml")))
        .expect("outbox file");
    assert!(text.starts_with(&format!("To: {EMAIL}")), "{text}");
    let code = text
        .split("is: ")
        .nth(1)
        .unwrap()
        .chars()
        .take(6)
        .collect::<String>();
    assert!(code.chars().all(|c| c.is_ascii_digit()) && code.len() == 6);
    code
}

async fn create_by_email_is_due_one_month_later(store: TestStore) {
    let (s, key) = setup(&store).await;
    let sid = jane(&s, &key).await;
    let (st, b) = create(
        &s,
        &key,
        json!({"type": "erasure", "identity": {"email": "  jane.doe@example.COM "}}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["merged"], false);
    assert_eq!(b["status"], "verifying");
    assert_eq!(b["verification"], "code_sent");
    assert!(b["id"].as_str().unwrap().starts_with("req_"));
    assert_eq!(b["request"]["subject"], sid.as_str());
    assert_eq!(b["request"]["type"], "erasure");
    assert_eq!(b["request"]["attempts_left"], 5);
    let received = time_of(&b["request"]["received_at"]);
    let due = time_of(&b["due_at"]);
    let expected = custos_core::request::add_months(received, 1).unwrap();
    assert_eq!(due, expected);
    assert!(due > received + time::Duration::days(27));
    assert!(due <= received + time::Duration::days(31));
    // The response never carries the code or the email.
    assert!(!b.to_string().to_lowercase().contains("jane"));

    // An unknown person: no subject, the blind index is stored, not the value.
    let (st, b) = create(
        &s,
        &key,
        json!({"type": "access", "identity": {"email": "nobody@example.com"}}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    assert!(b["request"]["subject"].is_null());
    let id = b["id"].as_str().unwrap().to_owned();
    let (blind, person): (Option<Vec<u8>>, String) =
        sqlx::query_as("SELECT identity_blind, person FROM dsr_requests WHERE id = $1")
            .bind(&id)
            .fetch_one(s.vault.read_pool())
            .await
            .unwrap();
    assert_eq!(blind.unwrap().len(), 32);
    assert!(person.starts_with("blind:email:"));
    assert!(!person.contains("nobody"));

    let r = s
        .call(Method::GET, &format!("/v1/requests/{id}"), Some(&key), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "verifying");
    s.stop().await;
}

async fn verify_by_code_counts_attempts_and_locks(store: TestStore) {
    let (s, key) = setup(&store).await;
    jane(&s, &key).await;
    // Right code after a wrong one.
    let (_, b) = create(
        &s,
        &key,
        json!({"type": "access", "identity": {"email": EMAIL}}),
    )
    .await;
    let id = b["id"].as_str().unwrap().to_owned();
    let code = outbox_code(&store, &id);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let path = format!("/v1/requests/{id}/verify");
    let r = s
        .call(
            Method::POST,
            &path,
            Some(&key),
            Some(json!({"code": wrong})),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "wrong_code"), "{:?}", r.body);
    assert_eq!(r.body["field"], "code");
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("4 attempts left"));
    let r = s
        .call(Method::GET, &format!("/v1/requests/{id}"), Some(&key), None)
        .await;
    assert_eq!(r.body["attempts_left"], 4);
    let r = s
        .call(Method::POST, &path, Some(&key), Some(json!({"code": code})))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "verified");
    // Verifying again is an illegal transition.
    let r = s
        .call(Method::POST, &path, Some(&key), Some(json!({"code": code})))
        .await;
    assert_eq!((r.status, r.code()), (409, "illegal_transition"));

    // Five wrong codes lock (reject) the request; the right one no longer works.
    let (_, b) = create(
        &s,
        &key,
        json!({"type": "erasure", "identity": {"email": EMAIL}}),
    )
    .await;
    let id = b["id"].as_str().unwrap().to_owned();
    let code = outbox_code(&store, &id);
    let wrong = if code == "999999" { "999998" } else { "999999" };
    let path = format!("/v1/requests/{id}/verify");
    for left in (0..5).rev() {
        let r = s
            .call(
                Method::POST,
                &path,
                Some(&key),
                Some(json!({"code": wrong})),
            )
            .await;
        assert_eq!((r.status, r.code()), (400, "wrong_code"));
        assert!(r.body["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("{left} attempts left")));
    }
    let r = s
        .call(Method::POST, &path, Some(&key), Some(json!({"code": code})))
        .await;
    assert_eq!((r.status, r.code()), (409, "illegal_transition"));
    let r = s
        .call(Method::GET, &format!("/v1/requests/{id}"), Some(&key), None)
        .await;
    assert_eq!(r.body["status"], "rejected");
    assert!(r.body["closed_at"].is_string());
    // The code is stored hashed (and dropped once closed).
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM dsr_requests WHERE code_hash IS NOT NULL OR code_salt IS NOT NULL",
    )
    .fetch_one(s.vault.read_pool())
    .await
    .unwrap();
    assert_eq!(n, 0);
    s.stop().await;
}

async fn vouched_verification(store: TestStore) {
    let (s, key) = setup(&store).await;
    let sid = jane(&s, &key).await;
    let (st, b) = create(
        &s,
        &key,
        json!({"type": "portability", "identity": {"email": EMAIL}, "verified_by_app": true}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["status"], "verified");
    assert_eq!(b["verification"], "vouched");
    assert_eq!(b["request"]["verification"], "app");
    assert_eq!(b["request"]["subject"], sid.as_str());
    // No code issued, nothing in the outbox.
    let id = b["id"].as_str().unwrap();
    assert!(!store
        .dir()
        .join("outbox")
        .join(format!("{id}.eml"))
        .exists());

    // Without an outbox the code is not delivered.
    let s2 = crate::support::start(&store).await;
    let (st, b) = create(
        &s2,
        &key,
        json!({"type": "objection", "identity": {"email": EMAIL}}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["verification"], "pending_delivery");
    s2.stop().await;
    s.stop().await;
}

async fn duplicates_merge(store: TestStore) {
    let (s, key) = setup(&store).await;
    jane(&s, &key).await;
    let body = json!({"type": "erasure", "identity": {"email": EMAIL}});
    let (st, first) = create(&s, &key, body.clone()).await;
    assert_eq!(st, 201);
    let (st, second) = create(
        &s,
        &key,
        json!({"type": "erasure", "identity": {"email": "JANE.DOE@example.com"}}),
    )
    .await;
    assert_eq!(st, 200, "{second}");
    assert_eq!(second["merged"], true);
    assert_eq!(second["verification"], "unchanged");
    assert_eq!(second["id"], first["id"]);
    // Another type is another request.
    let (st, other) = create(
        &s,
        &key,
        json!({"type": "access", "identity": {"email": EMAIL}}),
    )
    .await;
    assert_eq!(st, 201);
    assert_ne!(other["id"], first["id"]);
    // Once closed, a new request of the same type is new.
    let id = first["id"].as_str().unwrap();
    let r = s
        .call(
            Method::POST,
            &format!("/v1/requests/{id}/reject"),
            Some(&key),
            Some(json!({"reason": "duplicate of a ticket"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let (st, third) = create(&s, &key, body).await;
    assert_eq!((st, third["merged"].as_bool()), (201, Some(false)));
    assert_ne!(third["id"], first["id"]);
    // Unknown people merge too (by blind index).
    let anon = json!({"type": "access", "identity": {"phone": "+31612345678"}});
    let (_, a) = create(&s, &key, anon.clone()).await;
    let (st, b) = create(&s, &key, anon).await;
    assert_eq!((st, &b["id"]), (200, &a["id"]));
    s.stop().await;
}

async fn extension_limits(store: TestStore) {
    let (s, key) = setup(&store).await;
    jane(&s, &key).await;
    let (_, b) = create(
        &s,
        &key,
        json!({"type": "access", "identity": {"email": EMAIL}, "verified_by_app": true}),
    )
    .await;
    let id = b["id"].as_str().unwrap().to_owned();
    let received = time_of(&b["request"]["received_at"]);
    let path = format!("/v1/requests/{id}/extend");
    let ext = |months: Value, reason: &str| json!({"months": months, "reason": reason});

    let r = s
        .call(Method::POST, &path, Some(&key), Some(ext(json!(3), "big")))
        .await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("months")));
    let r = s
        .call(Method::POST, &path, Some(&key), Some(ext(json!(1), "  ")))
        .await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("reason")));

    let r = s
        .call(
            Method::POST,
            &path,
            Some(&key),
            Some(ext(json!(1), "many systems")),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["extended_months"], 1);
    assert_eq!(
        time_of(&r.body["due_at"]),
        custos_core::request::add_months(received, 2).unwrap()
    );
    let r = s
        .call(
            Method::POST,
            &path,
            Some(&key),
            Some(ext(json!(2), "still more")),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "extension_limit"));
    let r = s
        .call(Method::POST, &path, Some(&key), Some(ext(json!(1), "last")))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["extended_months"], 2);
    let due = time_of(&r.body["due_at"]);
    assert_eq!(due, custos_core::request::add_months(received, 3).unwrap());
    assert!(r.body["extension_reason"]
        .as_str()
        .unwrap()
        .contains("many systems"));
    let r = s
        .call(Method::POST, &path, Some(&key), Some(ext(json!(1), "more")))
        .await;
    assert_eq!((r.status, r.code()), (409, "extension_limit"));
    s.stop().await;
}

async fn reject_and_illegal_transitions(store: TestStore) {
    let (s, key) = setup(&store).await;
    jane(&s, &key).await;
    let (_, b) = create(
        &s,
        &key,
        json!({"type": "rectification", "identity": {"email": EMAIL}, "changes": {"name": "Jane R."}}),
    )
    .await;
    let id = b["id"].as_str().unwrap().to_owned();
    // A rectification names its changes; other types carry none.
    for body in [
        json!({"type": "rectification", "identity": {"email": EMAIL}}),
        json!({"type": "access", "identity": {"email": EMAIL}, "changes": {"name": "x"}}),
    ] {
        let r = s
            .call(Method::POST, "/v1/requests", Some(&key), Some(body))
            .await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.body["field"], "changes", "{:?}", r.body);
    }
    // A new email that is none is refused before any store changes.
    let r = s
        .call(
            Method::POST,
            "/v1/requests",
            Some(&key),
            Some(
                json!({"type": "rectification", "identity": {"email": EMAIL},
                        "changes": {"email": "not an address"}}),
            ),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["field"], "changes.email", "{:?}", r.body);
    assert!(
        !r.body.to_string().contains("not an address"),
        "{:?}",
        r.body
    );
    let path = format!("/v1/requests/{id}/reject");
    let r = s
        .call(
            Method::POST,
            &path,
            Some(&key),
            Some(json!({"reason": "manifestly unfounded"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "rejected");
    assert_eq!(r.body["rejection_reason"], "manifestly unfounded");
    // Terminal: no second rejection, no extension, no verification.
    let r = s
        .call(
            Method::POST,
            &path,
            Some(&key),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "illegal_transition"));
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("from rejected to rejected"));
    let r = s
        .call(
            Method::POST,
            &format!("/v1/requests/{id}/extend"),
            Some(&key),
            Some(json!({"months": 1, "reason": "x"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "request_closed"));
    let r = s
        .call(
            Method::POST,
            &format!("/v1/requests/{id}/verify"),
            Some(&key),
            Some(json!({"code": "123456"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "illegal_transition"));
    // Unknown requests are 404.
    let r = s
        .call(
            Method::GET,
            "/v1/requests/req_00000000000000000000000000000000",
            Some(&key),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    s.stop().await;
}

async fn list_filters(store: TestStore) {
    let (s, key) = setup(&store).await;
    jane(&s, &key).await;
    let (_, a) = create(
        &s,
        &key,
        json!({"type": "access", "identity": {"email": EMAIL}, "verified_by_app": true}),
    )
    .await;
    let (_, e) = create(
        &s,
        &key,
        json!({"type": "erasure", "identity": {"email": EMAIL}}),
    )
    .await;
    let (a, e) = (
        a["id"].as_str().unwrap().to_owned(),
        e["id"].as_str().unwrap().to_owned(),
    );
    // Received 40 days ago: overdue.
    let now = custos_store::now_us();
    let day = 24 * 3600 * 1_000_000i64;
    let received = now - 40 * day;
    let due = custos_core::request::due_us(received, 0).unwrap();
    sqlx::query("UPDATE dsr_requests SET received_us = $1, due_us = $2 WHERE id = $3")
        .bind(received)
        .bind(due)
        .bind(&a)
        .execute(s.vault.read_pool())
        .await
        .unwrap();

    let ids = |b: &Value| -> Vec<String> {
        b["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |q: &str| {
        let q = q.to_owned();
        let s = &s;
        let key = key.clone();
        async move {
            let r = s
                .call(Method::GET, &format!("/v1/requests{q}"), Some(&key), None)
                .await;
            assert_eq!(r.status, 200, "{q}: {:?}", r.body);
            r.body
        }
    };
    let all = list("").await;
    assert_eq!(ids(&all), vec![a.clone(), e.clone()]);
    assert_eq!(all["requests"][0]["overdue"], true);
    assert_eq!(all["requests"][1]["overdue"], false);
    assert_eq!(ids(&list("?status=verified").await), vec![a.clone()]);
    assert_eq!(ids(&list("?status=verifying").await), vec![e.clone()]);
    assert!(ids(&list("?status=completed").await).is_empty());
    assert_eq!(ids(&list("?overdue=true").await), vec![a.clone()]);
    let in_week = (OffsetDateTime::now_utc() + time::Duration::days(7))
        .format(&Rfc3339)
        .unwrap();
    assert_eq!(
        ids(&list(&format!("?due_before={}", in_week.replace('+', "%2B"))).await),
        vec![a.clone()]
    );
    let far = (OffsetDateTime::now_utc() + time::Duration::days(40)).date();
    assert_eq!(ids(&list(&format!("?due_before={far}")).await).len(), 2);
    // A closed request is not overdue.
    let r = s
        .call(
            Method::POST,
            &format!("/v1/requests/{a}/reject"),
            Some(&key),
            Some(json!({"reason": "withdrawn by the person"})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(ids(&list("?overdue=true").await).is_empty());

    let r = s
        .call(Method::GET, "/v1/requests?status=done", Some(&key), None)
        .await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("status")));
    let r = s
        .call(
            Method::GET,
            "/v1/requests?due_before=soon",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["field"].as_str()),
        (400, Some("due_before"))
    );
    s.stop().await;
}

async fn tenants_are_isolated(store: TestStore) {
    let (s, key) = setup(&store).await;
    jane(&s, &key).await;
    let (_, b) = create(
        &s,
        &key,
        json!({"type": "access", "identity": {"email": EMAIL}}),
    )
    .await;
    let id = b["id"].as_str().unwrap().to_owned();
    s.tenant("globex").await;
    let other = s.key("globex", SCOPES).await;
    let r = s
        .call(
            Method::GET,
            &format!("/v1/requests/{id}"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    for (verb, body) in [
        ("verify", json!({"code": "123456"})),
        ("extend", json!({"months": 1, "reason": "x"})),
        ("reject", json!({"reason": "x"})),
    ] {
        let r = s
            .call(
                Method::POST,
                &format!("/v1/requests/{id}/{verb}"),
                Some(&other),
                Some(body),
            )
            .await;
        assert_eq!(r.status, 404, "{verb}");
    }
    let r = s
        .call(Method::GET, "/v1/requests", Some(&other), None)
        .await;
    assert!(r.body["requests"].as_array().unwrap().is_empty());
    // Jane is unknown in globex: a request there has no subject and does
    // not merge with acme's.
    let (st, b) = create(
        &s,
        &other,
        json!({"type": "access", "identity": {"email": EMAIL}}),
    )
    .await;
    assert_eq!(st, 201);
    assert!(b["request"]["subject"].is_null());
    assert_ne!(b["id"].as_str().unwrap(), id);
    s.stop().await;
}

async fn scopes_are_enforced(store: TestStore) {
    let (s, key) = setup(&store).await;
    let (_, b) = create(
        &s,
        &key,
        json!({"type": "access", "identity": {"email": EMAIL}}),
    )
    .await;
    let id = b["id"].as_str().unwrap().to_owned();
    let weak = s
        .key("acme", &["write", "reveal", "lookup", "erase", "audit"])
        .await;
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/v1/requests".into(),
            Some(json!({"type": "access", "identity": {"email": EMAIL}, "verified_by_app": true})),
        ),
        (Method::GET, "/v1/requests".into(), None),
        (Method::GET, format!("/v1/requests/{id}"), None),
        (
            Method::POST,
            format!("/v1/requests/{id}/verify"),
            Some(json!({"code": "123456"})),
        ),
        (
            Method::POST,
            format!("/v1/requests/{id}/extend"),
            Some(json!({"months": 1, "reason": "x"})),
        ),
        (
            Method::POST,
            format!("/v1/requests/{id}/reject"),
            Some(json!({"reason": "x"})),
        ),
    ];
    for (m, path, body) in calls {
        let r = s.call(m.clone(), &path, Some(&weak), body.clone()).await;
        assert_eq!((r.status, r.code()), (403, "missing_scope"), "{m} {path}");
        let r = s.call(m, &path, None, body).await;
        assert_eq!(r.status, 401, "{path}");
    }
    let r = s
        .call(Method::GET, "/v1/requests", Some(&s.admin), None)
        .await;
    assert_eq!(r.status, 403);
    // Nothing changed.
    let r = s
        .call(Method::GET, &format!("/v1/requests/{id}"), Some(&key), None)
        .await;
    assert_eq!(r.body["status"], "verifying");
    assert_eq!(r.body["attempts_left"], 5);
    s.stop().await;
}

async fn bad_input_names_the_field(store: TestStore) {
    let (s, key) = setup(&store).await;
    let cases = [
        (
            json!({"type": "forget", "identity": {"email": EMAIL}}),
            "type",
        ),
        (json!({"type": "access", "identity": {}}), "identity"),
        (
            json!({"type": "access", "identity": {"email": EMAIL, "phone": "+31612345678"}}),
            "identity",
        ),
        (
            json!({"type": "access", "identity": {"email": "not-an-email"}}),
            "identity.email",
        ),
        (
            json!({"type": "access", "identity": {"phone": "12"}}),
            "identity.phone",
        ),
        (json!({"type": "access", "identity": {"fax": "1"}}), "fax"),
        (
            json!({"type": "access", "identity": {"email": EMAIL}, "extra": 1}),
            "extra",
        ),
        (json!({"identity": {"email": EMAIL}}), "type"),
    ];
    for (body, field) in cases {
        let (st, b) = create(&s, &key, body.clone()).await;
        assert_eq!(st, 400, "{body}: {b}");
        if b["code"] == "unknown_field" {
            // The client's name is never echoed, nor named as the field.
            assert!(b.get("field").is_none(), "{body}: {b}");
            assert!(!b.to_string().contains(field), "{body}: {b}");
        } else {
            assert_eq!(b["field"], field, "{body}: {b}");
        }
        assert!(!b.to_string().contains("not-an-email"), "{b}");
    }
    let r = s
        .call(
            Method::GET,
            "/v1/requests/sub_00000000000000000000000000000000",
            Some(&key),
            None,
        )
        .await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("id")));
    s.stop().await;
}

async fn audit_has_ids_but_no_identity_values(store: TestStore) {
    let (s, key) = setup(&store).await;
    let sid = jane(&s, &key).await;
    let (_, b) = create(
        &s,
        &key,
        json!({"type": "erasure", "identity": {"email": EMAIL}}),
    )
    .await;
    let id = b["id"].as_str().unwrap().to_owned();
    let code = outbox_code(&store, &id);
    let _ = create(
        &s,
        &key,
        json!({"type": "erasure", "identity": {"email": EMAIL}}),
    )
    .await;
    let r = s
        .call(
            Method::POST,
            &format!("/v1/requests/{id}/verify"),
            Some(&key),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .call(
            Method::POST,
            &format!("/v1/requests/{id}/extend"),
            Some(&key),
            Some(json!({"months": 1, "reason": "complex"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .call(
            Method::GET,
            &format!("/v1/audit?subject={sid}&limit=1000"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let entries: Vec<&Value> = r.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("dsr."))
        .collect();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "dsr.received",
            "dsr.verifying",
            "dsr.merged",
            "dsr.verified",
            "dsr.extended"
        ]
    );
    for e in &entries {
        assert_eq!(e["outcome"], id.as_str());
        assert_eq!(e["subject"], sid.as_str());
    }
    // Nowhere in the audit log: the email (any case) or the code.
    let rows: Vec<(Option<String>, Option<String>, String, String)> =
        sqlx::query_as("SELECT subject, purpose, outcome, action FROM audit_log")
            .fetch_all(s.vault.read_pool())
            .await
            .unwrap();
    for row in rows {
        let t = format!("{row:?}").to_lowercase();
        assert!(!t.contains("jane") && !t.contains(&code), "{t}");
    }
    // Nor in the request rows.
    let rows: Vec<(String, Option<String>, String)> =
        sqlx::query_as("SELECT id, subject, person FROM dsr_requests")
            .fetch_all(s.vault.read_pool())
            .await
            .unwrap();
    assert!(!format!("{rows:?}").to_lowercase().contains("jane"));
    s.stop().await;
}

async fn openapi_lists_request_paths(store: TestStore) {
    let s = crate::support::start(&store).await;
    let doc = s.call(Method::GET, "/openapi.json", None, None).await;
    for p in [
        "/v1/requests",
        "/v1/requests/{id}",
        "/v1/requests/{id}/verify",
        "/v1/requests/{id}/extend",
        "/v1/requests/{id}/reject",
    ] {
        assert!(doc.body["paths"][p].is_object(), "{p} missing");
    }
    assert!(doc.body["paths"]["/v1/requests"]["get"].is_object());
    assert!(doc.body["paths"]["/v1/requests"]["post"].is_object());
    s.stop().await;
}

/// One message received by [`fake_smtp`]: envelope recipients and the
/// message as sent (dot-stuffing undone).
#[derive(Debug)]
struct Captured {
    rcpt: Vec<String>,
    data: String,
}

/// A minimal SMTP server on 127.0.0.1: accepts every message and hands it
/// over the channel.
async fn fake_smtp() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Captured>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 fake ESMTP\r\n").await.unwrap();
                let mut rcpt = Vec::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-fake\r\n250 8BITMIME\r\n",
                        "HELO" | "MAIL" | "RSET" | "NOOP" => b"250 OK\r\n",
                        "RCPT" => {
                            rcpt.push(line[4..].trim().to_owned());
                            b"250 OK\r\n"
                        }
                        "DATA" => {
                            w.write_all(b"354 go ahead\r\n").await.unwrap();
                            let mut data = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                data.push_str(l.strip_prefix('.').unwrap_or(&l));
                                data.push_str("\r\n");
                            }
                            let _ = tx.send(Captured {
                                rcpt: std::mem::take(&mut rcpt),
                                data,
                            });
                            b"250 queued\r\n"
                        }
                        "QUIT" => {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            break;
                        }
                        _ => b"502 not implemented\r\n",
                    };
                    if w.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn code_is_sent_over_smtp(store: TestStore) {
    use custos_dsr::mail::SmtpMailer;
    use std::sync::Arc;
    let (addr, mut inbox) = fake_smtp().await;
    let s = crate::support::start_with(&store, |st| {
        st.with_mailer(Arc::new(
            SmtpMailer::new(&format!("smtp://{addr}"), "custos@example.com").expect("mailer"),
        ))
    })
    .await;
    s.tenant("acme").await;
    let key = s.key("acme", SCOPES).await;
    jane(&s, &key).await;
    let (st, b) = create(
        &s,
        &key,
        json!({"type": "access", "identity": {"email": EMAIL}}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["verification"], "code_sent");
    let id = b["id"].as_str().unwrap().to_owned();

    let mail = tokio::time::timeout(std::time::Duration::from_secs(10), inbox.recv())
        .await
        .expect("a message within 10 s")
        .expect("a message");
    assert_eq!(mail.rcpt.len(), 1, "{mail:?}");
    assert!(mail.rcpt[0].contains(&format!("<{EMAIL}>")), "{mail:?}");
    assert!(mail.rcpt[0].to_ascii_uppercase().starts_with("TO:"));
    // Headers: to the person, from the configured sender.
    let (head, body) = mail.data.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(&format!("To: {EMAIL}")), "{head}");
    assert!(head.contains("From: custos@example.com"), "{head}");
    assert!(head.contains("Subject: Your verification code"), "{head}");
    // Undo quoted-printable soft line breaks, should the body use them.
    let body = body.replace("=\r\n", "");
    assert!(body.contains(&id), "{body}");
    let code: String = body
        .split("is: ")
        .nth(1)
        .expect("the code")
        .chars()
        .take(6)
        .collect();
    assert!(
        code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()),
        "{code}"
    );

    let r = s
        .call(
            Method::POST,
            &format!("/v1/requests/{id}/verify"),
            Some(&key),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "verified");
    s.stop().await;

    // An unreachable SMTP server: the code is not delivered.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let s = crate::support::start_with(&store, |st| {
        st.with_mailer(Arc::new(
            SmtpMailer::new(&format!("smtp://{closed}"), "custos@example.com").expect("mailer"),
        ))
    })
    .await;
    let (st, b) = create(
        &s,
        &key,
        json!({"type": "erasure", "identity": {"email": EMAIL}}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["verification"], "pending_delivery");
    s.stop().await;
}

async fn public_endpoints_are_rate_limited(store: TestStore) {
    use custos_server::rate_limit::{Limit, RateLimits};
    let s = crate::support::start_with(&store, |st| {
        st.with_rate_limits(RateLimits {
            archives: Limit::new(1, 2),
            callbacks: Limit::new(1, 3),
            client_ip_header: None,
            ..RateLimits::default()
        })
    })
    .await;
    let path = format!("/v1/archives/{}", "A".repeat(43));
    for _ in 0..2 {
        let r = s.call(Method::GET, &path, None, None).await;
        assert_eq!(r.status, 404, "{}", r.body);
    }
    let r = s.call(Method::GET, &path, None, None).await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{}", r.body);
    // The callbacks have buckets of their own.
    let cb = "/v1/processor-callbacks/dsr_00000000000000000000000000000000/1";
    for _ in 0..3 {
        let r = s.call(Method::POST, cb, None, Some(json!({}))).await;
        assert_ne!(r.status, 429, "{}", r.body);
    }
    let r = s.call(Method::POST, cb, None, Some(json!({}))).await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{}", r.body);
    // Retry-After tells the client when to come back.
    let raw = reqwest::get(format!("{}{path}", s.base)).await.unwrap();
    let after: u64 = raw.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=61).contains(&after), "{after}");
}
