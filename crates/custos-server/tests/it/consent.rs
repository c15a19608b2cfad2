//! The consent ledger over HTTP (issue 4), on SQLite and on PostgreSQL:
//! revalidation, withdrawal, GPC, erasure, append-only events, the
//! materialised state against the fold of the events, bad inputs,
//! suppression lists, receipts and the check across two servers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashMap;

use custos_core::consent::{Action, Channel};
use custos_core::ids::{Purpose, SubjectId, TenantId};
use custos_store::{Actor, ConsentInput, ImportEvent, ImportSubject};
use custos_testkit::{backend_tests, Reply, TestServer, TestStore};
use rand_core::{OsRng, RngCore};
use reqwest::Method;
use serde_json::{json, Value};

backend_tests!(
    purposes_and_versions,
    grant_withdraw_check_and_history,
    revalidation_after_material_version,
    gpc_opts_out_of_sale_and_sharing,
    erasure_shreds_proof_and_check_answers_gone,
    events_cannot_be_altered,
    materialised_state_equals_fold_of_events,
    bad_inputs_get_clear_problems,
    suppression_list_streams_tokens,
    receipt_as_json_and_html,
    check_by_token_and_across_servers,
    check_cache_is_refreshed_before_it_expires,
);

const SCOPES: &[&str] = &["write", "reveal", "lookup", "erase", "audit", "admin"];
const IP: &str = "198.51.100.77";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) ConsentTest/1.0";

async fn setup(store: &TestStore) -> (TestServer, String) {
    crate::support::with_tenant(store, "acme", SCOPES).await
}

async fn subject(s: &TestServer, key: &str, ext: &str) -> String {
    s.subject(key, json!({ "external_id": ext })).await
}

async fn publish(s: &TestServer, key: &str, purpose: &str, body: Value) -> Reply {
    s.call(
        Method::POST,
        &format!("/v1/purposes/{purpose}/versions"),
        Some(key),
        Some(body),
    )
    .await
}

async fn record(s: &TestServer, key: &str, id: &str, body: Value) -> Reply {
    s.call(
        Method::POST,
        &format!("/v1/subjects/{id}/consents"),
        Some(key),
        Some(body),
    )
    .await
}

async fn grant(s: &TestServer, key: &str, id: &str, purpose: &str, version: i64) -> Reply {
    let r = record(
        s,
        key,
        id,
        json!({"purpose": purpose, "action": "grant", "version": version, "channel": "signup-form",
               "ip": IP, "user_agent": UA, "affirmative": true, "form_id": "nl-box"}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r
}

async fn check(s: &TestServer, key: &str, id: &str, purpose: &str) -> Reply {
    s.call(
        Method::GET,
        &format!("/v1/consent/check?subject={id}&purpose={purpose}"),
        Some(key),
        None,
    )
    .await
}

async fn purposes_and_versions(store: TestStore) {
    let (s, key) = setup(&store).await;
    let doc = s.call(Method::GET, "/openapi.json", None, None).await;
    for path in [
        "/v1/purposes",
        "/v1/purposes/{id}/versions",
        "/v1/purposes/{id}/versions/{version}",
        "/v1/purposes/{id}/suppression",
        "/v1/subjects/{id}/consents",
        "/v1/subjects/{id}/consents/history",
        "/v1/subjects/{id}/consents/receipt",
        "/v1/consent/check",
    ] {
        assert!(
            doc.body["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
    let r = s.call(Method::GET, "/v1/purposes", Some(&key), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let by_id: HashMap<String, Value> = r.body["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap().to_owned(), p.clone()))
        .collect();
    assert_eq!(by_id["newsletter"]["basis"], "consent");
    assert_eq!(by_id["newsletter"]["governed"], true);
    assert_eq!(by_id["retargeting"]["sale_or_sharing"], true);
    assert_eq!(by_id["account"]["governed"], false);
    assert_eq!(by_id["analytics"]["basis"], "legitimate_interest");
    assert!(by_id["newsletter"]["current_version"].is_null());

    let r = publish(
        &s,
        &key,
        "newsletter",
        json!({"text": "Monthly news v1", "material": false}),
    )
    .await;
    assert_eq!(
        (r.status, r.body["version"].as_i64()),
        (201, Some(1)),
        "{:?}",
        r.body
    );
    let sha = r.body["text_sha256"].as_str().unwrap().to_owned();
    assert_eq!(sha.len(), 64);
    let r = publish(
        &s,
        &key,
        "newsletter",
        json!({"text": "Monthly news v2", "material": true}),
    )
    .await;
    assert_eq!(r.body["version"].as_i64(), Some(2));
    let r = s.call(Method::GET, "/v1/purposes", Some(&key), None).await;
    let nl = r.body["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "newsletter")
        .unwrap()
        .clone();
    assert_eq!(nl["current_version"].as_i64(), Some(2));
    assert_eq!(nl["versions"].as_array().unwrap().len(), 2);
    let r = s
        .call(
            Method::GET,
            "/v1/purposes/newsletter/versions/1",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["text"].as_str()),
        (200, Some("Monthly news v1"))
    );
    assert_eq!(r.body["text_sha256"], sha);

    // Publishing needs the admin scope; contract purposes have no versions.
    let writer = s.key("acme", &["write"]).await;
    let r = publish(
        &s,
        &writer,
        "newsletter",
        json!({"text": "x", "material": false}),
    )
    .await;
    assert_eq!((r.status, r.code()), (403, "missing_scope"));
    let r = publish(&s, &key, "account", json!({"text": "x", "material": false})).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "not_consent_based"),
        "{:?}",
        r.body
    );
    let r = publish(&s, &key, "nope", json!({"text": "x", "material": false})).await;
    assert_eq!((r.status, r.code()), (404, "unknown_purpose"));
    let r = publish(
        &s,
        &key,
        "newsletter",
        json!({"text": "x", "material": true, "revalidation": "grace_until"}),
    )
    .await;
    assert_eq!(
        (r.status, r.body["field"].as_str()),
        (400, Some("grace_until"))
    );
    s.stop().await;
}

async fn grant_withdraw_check_and_history(store: TestStore) {
    let (s, key) = setup(&store).await;
    let id = subject(&s, &key, "u-1").await;
    publish(
        &s,
        &key,
        "newsletter",
        json!({"text": "News v1", "material": false}),
    )
    .await;

    let r = check(&s, &key, &id, "newsletter").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (r.body["allowed"].as_bool(), r.body["reason"].as_str()),
        (Some(false), Some("no_consent"))
    );

    let r = grant(&s, &key, &id, "newsletter", 1).await;
    assert_eq!(r.body["check"]["allowed"], true);
    assert_eq!(r.body["events"][0]["action"], "grant");
    let r = check(&s, &key, &id, "newsletter").await;
    assert_eq!(r.body["allowed"], true);
    assert_eq!(r.body["basis"], "consent");
    assert_eq!(r.body["reason"], "granted");
    assert_eq!(r.body["version"].as_i64(), Some(1));

    // Withdrawing is one call, needs no version, and wins.
    let r = record(
        &s,
        &key,
        &id,
        json!({"purpose": "newsletter", "action": "withdraw", "channel": "email-link"}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["check"]["allowed"], false);
    let r = check(&s, &key, &id, "newsletter").await;
    assert_eq!(
        (r.body["allowed"].as_bool(), r.body["reason"].as_str()),
        (Some(false), Some("withdrawn"))
    );

    // Contract purposes answer allowed by contract; legitimate interest until an objection.
    let r = check(&s, &key, &id, "account").await;
    assert_eq!(
        (r.body["allowed"].as_bool(), r.body["basis"].as_str()),
        (Some(true), Some("contract"))
    );
    let r = check(&s, &key, &id, "analytics").await;
    assert_eq!(
        (r.body["allowed"].as_bool(), r.body["reason"].as_str()),
        (Some(true), Some("no_objection"))
    );
    let r = record(
        &s,
        &key,
        &id,
        json!({"purpose": "analytics", "action": "object"}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = check(&s, &key, &id, "analytics").await;
    assert_eq!(
        (r.body["allowed"].as_bool(), r.body["reason"].as_str()),
        (Some(false), Some("objected"))
    );

    // Per-purpose state.
    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/{id}/consents"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let nl = r.body["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == "newsletter")
        .unwrap();
    assert_eq!(nl["state"], "withdrawn");
    assert_eq!(nl["current_version"].as_i64(), Some(1));
    assert!(nl["since"].is_string());
    let rt = r.body["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == "retargeting")
        .unwrap();
    assert_eq!(rt["state"], "none");

    // History: proof sealed without reveal, clear with reveal + purpose (audited).
    let lookup = s.key("acme", &["lookup"]).await;
    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/{id}/consents/history?purpose=dispute"),
            Some(&lookup),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let evs = r.body["events"].as_array().unwrap();
    assert_eq!(evs.len(), 3);
    assert_eq!(evs[0]["action"], "grant");
    assert_eq!(evs[0]["affirmative"], true);
    assert_eq!(evs[0]["form_id"], "nl-box");
    assert_eq!(evs[0]["channel"], "signup-form");
    assert_eq!(evs[0]["text_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(evs[0]["proof"]["recorded"], true);
    assert_eq!(evs[0]["proof"]["revealed"], false);
    assert!(evs[0]["proof"]["ip"].is_null());
    assert!(!r.body.to_string().contains(IP));
    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/{id}/consents/history?purpose=dispute"),
            Some(&key),
            None,
        )
        .await;
    let evs = r.body["events"].as_array().unwrap();
    assert_eq!(evs[0]["proof"]["ip"], IP);
    assert_eq!(evs[0]["proof"]["user_agent"], UA);
    assert_eq!(evs[1]["action"], "withdraw");
    assert_eq!(evs[1]["proof"]["recorded"], false);

    // Audit: ids and purposes, never the proof.
    let r = s
        .call(
            Method::GET,
            &format!("/v1/audit?subject={id}"),
            Some(&key),
            None,
        )
        .await;
    let actions: Vec<&str> = r.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "consent.grant",
        "consent.withdraw",
        "consent.object",
        "consent.history",
        "consent.history.reveal",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    assert!(!r.body.to_string().contains(IP) && !r.body.to_string().contains("ConsentTest"));

    // The proof is not stored in clear.
    let rows: Vec<Option<Vec<u8>>> = sqlx::query_scalar("SELECT proof_ct FROM consent_events")
        .fetch_all(s.vault.read_pool())
        .await
        .unwrap();
    assert!(rows.iter().flatten().count() >= 1);
    for ct in rows.iter().flatten() {
        let t = String::from_utf8_lossy(ct);
        assert!(!t.contains(IP) && !t.contains("ConsentTest"));
    }
    s.stop().await;
}

async fn revalidation_after_material_version(store: TestStore) {
    let (s, key) = setup(&store).await;
    let id = subject(&s, &key, "u-1").await;
    publish(
        &s,
        &key,
        "newsletter",
        json!({"text": "v1", "material": false}),
    )
    .await;
    grant(&s, &key, &id, "newsletter", 1).await;

    // A non-material change keeps the grant.
    publish(
        &s,
        &key,
        "newsletter",
        json!({"text": "v2 (typo fixed)", "material": false}),
    )
    .await;
    let r = check(&s, &key, &id, "newsletter").await;
    assert_eq!(
        (
            r.body["allowed"].as_bool(),
            r.body["current_version"].as_i64()
        ),
        (Some(true), Some(2))
    );
    assert_eq!(r.body["needs_revalidation"], false);

    // A material change asks again: no until the subject agrees again.
    publish(
        &s,
        &key,
        "newsletter",
        json!({"text": "v3: now weekly, with partners", "material": true}),
    )
    .await;
    let r = check(&s, &key, &id, "newsletter").await;
    assert_eq!(r.body["allowed"], false, "{:?}", r.body);
    assert_eq!(r.body["reason"], "needs_revalidation");
    assert_eq!(r.body["needs_revalidation"], true);
    assert_eq!(
        (
            r.body["version"].as_i64(),
            r.body["current_version"].as_i64()
        ),
        (Some(1), Some(3))
    );
    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/{id}/consents"),
            Some(&key),
            None,
        )
        .await;
    let nl = r.body["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == "newsletter")
        .unwrap();
    assert_eq!(
        (nl["needs_revalidation"].as_bool(), nl["version"].as_i64()),
        (Some(true), Some(1))
    );
    grant(&s, &key, &id, "newsletter", 3).await;
    let r = check(&s, &key, &id, "newsletter").await;
    assert_eq!(
        (
            r.body["allowed"].as_bool(),
            r.body["needs_revalidation"].as_bool()
        ),
        (Some(true), Some(false))
    );

    // Grace: still yes until the date, flagged; once passed, no.
    publish(&s, &key, "newsletter", json!({"text": "v4", "material": true, "revalidation": "grace_until", "grace_until": "2999-01-01"})).await;
    let r = check(&s, &key, &id, "newsletter").await;
    assert_eq!(
        (r.body["allowed"].as_bool(), r.body["reason"].as_str()),
        (Some(true), Some("granted_in_grace_period"))
    );
    publish(&s, &key, "newsletter", json!({"text": "v5", "material": true, "revalidation": "grace_until", "grace_until": "2001-01-01"})).await;
    let r = check(&s, &key, &id, "newsletter").await;
    assert_eq!(
        (r.body["allowed"].as_bool(), r.body["reason"].as_str()),
        (Some(false), Some("needs_revalidation"))
    );
    s.stop().await;
}

async fn gpc_opts_out_of_sale_and_sharing(store: TestStore) {
    let (s, key) = setup(&store).await;
    let id = subject(&s, &key, "u-1").await;
    for p in ["newsletter", "retargeting"] {
        publish(
            &s,
            &key,
            p,
            json!({"text": format!("{p} v1"), "material": false}),
        )
        .await;
    }
    grant(&s, &key, &id, "retargeting", 1).await;
    assert_eq!(
        check(&s, &key, &id, "retargeting").await.body["allowed"],
        true
    );

    // A newsletter grant carrying Sec-GPC: 1 also opts out of retargeting.
    let res = s
        .http
        .post(format!("{}/v1/subjects/{id}/consents", s.base))
        .bearer_auth(&key)
        .header("Sec-GPC", "1")
        .json(&json!({"purpose": "newsletter", "action": "grant", "version": 1, "affirmative": true, "channel": "privacy-center"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["gpc"], true);
    let evs = body["events"].as_array().unwrap();
    assert_eq!(evs.len(), 2, "{body:?}");
    assert_eq!(
        (evs[1]["purpose"].as_str(), evs[1]["action"].as_str()),
        (Some("retargeting"), Some("withdraw"))
    );
    assert_eq!(evs[1]["gpc_opt_out"], true);
    assert_eq!(
        check(&s, &key, &id, "newsletter").await.body["allowed"],
        true
    );
    let r = check(&s, &key, &id, "retargeting").await;
    assert_eq!(
        (r.body["allowed"].as_bool(), r.body["reason"].as_str()),
        (Some(false), Some("withdrawn"))
    );

    // Even a grant of the sale/sharing purpose itself under GPC ends opted out.
    let res = s
        .http
        .post(format!("{}/v1/subjects/{id}/consents", s.base))
        .bearer_auth(&key)
        .header("Sec-GPC", "1")
        .json(&json!({"purpose": "retargeting", "action": "grant", "version": 1, "affirmative": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["check"]["allowed"], false, "{body:?}");
    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/{id}/consents/history"),
            Some(&key),
            None,
        )
        .await;
    let evs = r.body["events"].as_array().unwrap();
    assert!(
        evs.iter().filter(|e| e["gpc"] == true).count() >= 3,
        "{evs:?}"
    );
    s.stop().await;
}

async fn erasure_shreds_proof_and_check_answers_gone(store: TestStore) {
    let (s, key) = setup(&store).await;
    let id = subject(&s, &key, "u-1").await;
    publish(
        &s,
        &key,
        "newsletter",
        json!({"text": "v1", "material": false}),
    )
    .await;
    grant(&s, &key, &id, "newsletter", 1).await;
    let r = s
        .call(
            Method::POST,
            &format!("/v1/subjects/{id}/tokens"),
            Some(&key),
            Some(json!({"audience": "mailer"})),
        )
        .await;
    let token = r.body["token"].as_str().unwrap().to_owned();
    let sid = SubjectId::parse(&id).unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    assert!(s
        .vault
        .keystore()
        .subject_key(&tenant, &sid)
        .await
        .unwrap()
        .is_some());

    let r = s
        .call(
            Method::DELETE,
            &format!("/v1/subjects/{id}"),
            Some(&key),
            Some(json!({"reason": "subject_request"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let r = check(&s, &key, &id, "newsletter").await;
    assert_eq!(
        (r.status, r.code()),
        (410, "subject_erased"),
        "{:?}",
        r.body
    );
    assert!(r.body["erased_at"].is_string());
    let r = s
        .call(
            Method::GET,
            &format!("/v1/consent/check?token={token}&purpose=newsletter"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (410, "token_gone"));
    for path in ["consents", "consents/history?purpose=x", "consents/receipt"] {
        let r = s
            .call(
                Method::GET,
                &format!("/v1/subjects/{id}/{path}"),
                Some(&key),
                None,
            )
            .await;
        assert_eq!((r.status, r.code()), (410, "subject_erased"), "{path}");
    }
    let r = record(
        &s,
        &key,
        &id,
        json!({"purpose": "newsletter", "action": "withdraw"}),
    )
    .await;
    assert_eq!(r.status, 410);

    // The key that sealed the proof is gone: the ciphertext stays, unreadable.
    assert!(s
        .vault
        .keystore()
        .subject_key(&tenant, &sid)
        .await
        .unwrap()
        .is_none());
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM consent_events WHERE subject = $1 AND proof_ct IS NOT NULL",
    )
    .bind(&id)
    .fetch_one(s.vault.read_pool())
    .await
    .unwrap();
    assert_eq!(
        n, 1,
        "the event stays as the record; only its proof is shredded"
    );
    s.stop().await;
}

async fn events_cannot_be_altered(store: TestStore) {
    let (s, key) = setup(&store).await;
    let id = subject(&s, &key, "u-1").await;
    publish(
        &s,
        &key,
        "newsletter",
        json!({"text": "v1", "material": false}),
    )
    .await;
    let r = grant(&s, &key, &id, "newsletter", 1).await;
    let ev = r.body["events"][0]["id"].as_str().unwrap().to_owned();
    for (m, path) in [
        (Method::PUT, format!("/v1/subjects/{id}/consents")),
        (Method::PATCH, format!("/v1/subjects/{id}/consents")),
        (Method::DELETE, format!("/v1/subjects/{id}/consents")),
        (
            Method::DELETE,
            format!("/v1/subjects/{id}/consents/history"),
        ),
        (Method::PUT, format!("/v1/subjects/{id}/consents/history")),
        (
            Method::DELETE,
            "/v1/purposes/newsletter/versions/1".to_owned(),
        ),
        (Method::PUT, "/v1/purposes/newsletter/versions/1".to_owned()),
    ] {
        let r = s.call(m.clone(), &path, Some(&key), Some(json!({}))).await;
        assert_eq!(r.status, 405, "{m} {path}");
    }
    for path in [
        format!("/v1/subjects/{id}/consents/{ev}"),
        format!("/v1/consents/{ev}"),
    ] {
        let r = s.call(Method::DELETE, &path, Some(&key), None).await;
        assert_eq!(r.status, 404, "{path}");
    }
    // Below the API, the schema refuses too.
    let pool = s.vault.read_pool();
    assert!(sqlx::query("UPDATE consent_events SET action = 'withdraw'")
        .execute(pool)
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM consent_events")
        .execute(pool)
        .await
        .is_err());
    assert!(sqlx::query("UPDATE consent_policies SET text = 'other'")
        .execute(pool)
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM consent_policies")
        .execute(pool)
        .await
        .is_err());
    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/{id}/consents/history"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.body["events"][0]["action"], "grant");
    assert_eq!(
        check(&s, &key, &id, "newsletter").await.body["allowed"],
        true
    );
    s.stop().await;
}

/// Random events, recorded live and imported with random (past, tied,
/// out-of-order) timestamps: the materialised state always equals the fold
/// of the events, and a rebuild from the events changes nothing.
async fn materialised_state_equals_fold_of_events(store: TestStore) {
    let (s, key) = setup(&store).await;
    for p in ["newsletter", "retargeting"] {
        for v in 1..=3 {
            publish(
                &s,
                &key,
                p,
                json!({"text": format!("{p} v{v}"), "material": v == 3}),
            )
            .await;
        }
    }
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(subject(&s, &key, &format!("u-{i}")).await);
    }
    let tenant = TenantId::parse("acme").unwrap();
    let rules: HashMap<String, custos_core::consent::PurposeRule> =
        custos_map::load_str(custos_map::DEMO_MAP, "demo")
            .unwrap()
            .0
            .consent_rules()
            .into_iter()
            .map(|r| (r.id.to_string(), r))
            .collect();
    let mut rng = OsRng;
    let base = custos_store::now_us() - 10_000_000_000;
    for round in 0..8 {
        // The first batch spans several writer jobs (the vault commits a
        // call in jobs of IMPORT_JOB_EVENTS, in subject order).
        let n = if round == 0 {
            2 * custos_store::IMPORT_JOB_EVENTS + 500
        } else {
            60
        };
        let mut batch = Vec::new();
        for _ in 0..n {
            let id = &ids[(rng.next_u32() as usize) % ids.len()];
            let purpose = if rng.next_u32().is_multiple_of(2) {
                "newsletter"
            } else {
                "retargeting"
            };
            let action = if rng.next_u32().is_multiple_of(3) {
                Action::Withdraw
            } else {
                Action::Grant
            };
            batch.push(ImportEvent {
                subject: ImportSubject::Id(SubjectId::parse(id).unwrap()),
                purpose: Purpose::parse(purpose).unwrap(),
                // Few distinct instants: many ties between grants and withdrawals.
                at_us: base + i64::from(rng.next_u32() % 20) * 1_000_000,
                input: ConsentInput {
                    action,
                    version: Some(i64::from(rng.next_u32() % 3) + 1),
                    channel: Channel::parse("import").unwrap(),
                    affirmative: true,
                    gpc: false,
                    form_id: None,
                    ip: rng.next_u32().is_multiple_of(2).then(|| IP.to_owned()),
                    user_agent: None,
                },
            });
        }
        // Bad lines anywhere are reported by their index in the call.
        let bad = [n / 3, n - 1];
        for i in bad {
            batch[i].at_us = custos_store::now_us() + 3_600_000_000;
        }
        let report = s
            .vault
            .consent()
            .import(&Actor::Admin, &tenant, &rules, &batch)
            .await
            .unwrap();
        let rejected: Vec<(usize, &str)> = report
            .rejected
            .iter()
            .map(|r| (r.index, r.field.as_str()))
            .collect();
        assert_eq!(rejected, [(bad[0], "at"), (bad[1], "at")]);
        assert_eq!(report.accepted as usize, n - 2);
        // Live events in between.
        let id = &ids[round % ids.len()];
        let action = if round % 2 == 0 { "withdraw" } else { "grant" };
        let r = record(
            &s,
            &key,
            id,
            json!({"purpose": "newsletter", "action": action, "version": 3, "affirmative": true}),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let c = s.vault.consent().verify_state(&tenant).await.unwrap();
        assert_eq!(c.mismatches, 0, "{c:?}");
        assert_eq!(c.derived, c.materialised);
    }
    let before: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT subject, purpose, state, event_id FROM consent_state ORDER BY subject, purpose",
    )
    .fetch_all(s.vault.read_pool())
    .await
    .unwrap();
    let n = s.vault.consent().rebuild_state(&tenant).await.unwrap();
    assert_eq!(n as usize, before.len());
    let after: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT subject, purpose, state, event_id FROM consent_state ORDER BY subject, purpose",
    )
    .fetch_all(s.vault.read_pool())
    .await
    .unwrap();
    assert_eq!(before, after);
    assert_eq!(
        s.vault
            .consent()
            .verify_state(&tenant)
            .await
            .unwrap()
            .mismatches,
        0
    );
    s.stop().await;
}

async fn bad_inputs_get_clear_problems(store: TestStore) {
    let (s, key) = setup(&store).await;
    let id = subject(&s, &key, "u-1").await;
    // No version published yet: a grant has nothing to agree to.
    let r = record(
        &s,
        &key,
        &id,
        json!({"purpose": "newsletter", "action": "grant", "version": 1, "affirmative": true}),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "unknown_version"),
        "{:?}",
        r.body
    );
    let r = record(
        &s,
        &key,
        &id,
        json!({"purpose": "newsletter", "action": "grant", "affirmative": true}),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (409, "no_policy_version"),
        "{:?}",
        r.body
    );
    publish(
        &s,
        &key,
        "newsletter",
        json!({"text": "v1", "material": false}),
    )
    .await;

    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"purpose": "nope", "action": "grant", "version": 1, "affirmative": true}),
            400,
            "unknown_purpose",
            "purpose",
        ),
        (
            json!({"purpose": "newsletter", "action": "grant", "version": 7, "affirmative": true}),
            400,
            "unknown_version",
            "version",
        ),
        (
            json!({"purpose": "newsletter", "action": "grant", "version": 1}),
            400,
            "not_affirmative",
            "affirmative",
        ),
        (
            json!({"purpose": "newsletter", "action": "grant", "version": 1, "affirmative": false}),
            400,
            "not_affirmative",
            "affirmative",
        ),
        (
            json!({"purpose": "newsletter", "action": "grant", "affirmative": true}),
            400,
            "invalid_field",
            "version",
        ),
        (
            json!({"purpose": "account", "action": "grant", "version": 1, "affirmative": true}),
            400,
            "not_consent_based",
            "purpose",
        ),
        (
            json!({"purpose": "billing", "action": "withdraw"}),
            400,
            "not_consent_based",
            "purpose",
        ),
        (
            json!({"purpose": "newsletter", "action": "object"}),
            400,
            "action_not_allowed",
            "action",
        ),
        (
            json!({"purpose": "analytics", "action": "grant", "version": 1, "affirmative": true}),
            400,
            "action_not_allowed",
            "action",
        ),
        (
            json!({"purpose": "newsletter", "action": "maybe"}),
            400,
            "invalid_field",
            "action",
        ),
        (
            json!({"purpose": "newsletter", "action": "withdraw", "ip": "jane@example.com"}),
            400,
            "invalid_field",
            "ip",
        ),
        (
            json!({"purpose": "newsletter", "action": "withdraw", "channel": "Sign Up"}),
            400,
            "invalid_field",
            "channel",
        ),
        (
            json!({"purpose": "newsletter", "action": "withdraw", "form_id": "a b"}),
            400,
            "invalid_field",
            "form_id",
        ),
        (
            json!({"purpose": "newsletter", "action": "withdraw", "pre_ticked": true}),
            400,
            "unknown_field",
            "pre_ticked",
        ),
    ];
    for (body, status, code, field) in cases {
        let r = record(&s, &key, &id, body.clone()).await;
        // An unknown field is not named (it is the client's name).
        let named = (code != "unknown_field").then_some(field);
        assert_eq!(
            (r.status, r.code(), r.body["field"].as_str()),
            (status, code, named),
            "{body}: {:?}",
            r.body
        );
        assert!(!r.body.to_string().contains("jane@"), "{:?}", r.body);
    }
    // Nothing of the refused requests was stored.
    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/{id}/consents/history"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 0);

    let r = s
        .call(
            Method::GET,
            &format!("/v1/consent/check?subject={id}&purpose=nope"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "unknown_purpose"));
    let r = s
        .call(
            Method::GET,
            "/v1/consent/check?purpose=newsletter",
            Some(&key),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_field"));
    let r = s
        .call(
            Method::GET,
            "/v1/consent/check?subject=sub_nothex&purpose=newsletter",
            Some(&key),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_id"));
    let r = s
        .call(
            Method::GET,
            "/v1/consent/check?subject=sub_00000000000000000000000000000000&purpose=newsletter",
            Some(&key),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = s
        .call(
            Method::GET,
            &format!("/v1/consent/check?subject={id}&purpose=newsletter"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 401);
    let r = s
        .call(
            Method::GET,
            "/v1/purposes/nope/suppression?audience=mailer",
            Some(&key),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "unknown_purpose"));
    let r = s
        .call(
            Method::GET,
            "/v1/purposes/newsletter/suppression?audience=mailer&format=xml",
            Some(&key),
            None,
        )
        .await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("format")));

    // Another tenant's key does not see this subject.
    s.tenant("globex").await;
    let other = s.key("globex", SCOPES).await;
    let r = check(&s, &other, &id, "newsletter").await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = record(
        &s,
        &other,
        &id,
        json!({"purpose": "newsletter", "action": "withdraw"}),
    )
    .await;
    assert_eq!(r.status, 404);
    s.stop().await;
}

async fn suppression_list_streams_tokens(store: TestStore) {
    let (s, key) = setup(&store).await;
    publish(
        &s,
        &key,
        "newsletter",
        json!({"text": "v1", "material": false}),
    )
    .await;
    let granted = subject(&s, &key, "granted").await;
    let withdrawn = subject(&s, &key, "withdrawn").await;
    let never = subject(&s, &key, "never").await;
    let erased = subject(&s, &key, "erased").await;
    grant(&s, &key, &granted, "newsletter", 1).await;
    grant(&s, &key, &withdrawn, "newsletter", 1).await;
    record(
        &s,
        &key,
        &withdrawn,
        json!({"purpose": "newsletter", "action": "withdraw"}),
    )
    .await;
    grant(&s, &key, &erased, "newsletter", 1).await;
    let mut tokens = HashMap::new();
    for (name, id) in [
        ("granted", &granted),
        ("withdrawn", &withdrawn),
        ("never", &never),
        ("erased", &erased),
    ] {
        let r = s
            .call(
                Method::POST,
                &format!("/v1/subjects/{id}/tokens"),
                Some(&key),
                Some(json!({"audience": "mailer"})),
            )
            .await;
        tokens.insert(r.body["token"].as_str().unwrap().to_owned(), name);
    }
    s.call(
        Method::DELETE,
        &format!("/v1/subjects/{erased}"),
        Some(&key),
        Some(json!({"reason": "subject_request"})),
    )
    .await;

    let res = s
        .http
        .get(format!(
            "{}/v1/purposes/newsletter/suppression?audience=mailer",
            s.base
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = res.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("token,reason"));
    let mut got: HashMap<&str, &str> = HashMap::new();
    for l in lines {
        let (t, reason) = l.split_once(',').unwrap();
        got.insert(tokens[t], reason);
    }
    let want: HashMap<&str, &str> = [
        ("withdrawn", "withdrawn"),
        ("never", "no_consent"),
        ("erased", "erased"),
    ]
    .into();
    assert_eq!(got, want);

    let r = s
        .call(
            Method::GET,
            "/v1/purposes/newsletter/suppression?audience=mailer&format=json",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["purpose"], "newsletter");
    assert_eq!(r.body["subjects"].as_array().unwrap().len(), 3);
    // Contract purposes suppress nobody but restricted or erased subjects.
    let r = s
        .call(
            Method::GET,
            "/v1/purposes/account/suppression?audience=mailer&format=json",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.body["subjects"].as_array().unwrap().len(), 1);

    // Every list agrees with the check of every subject: a material new
    // version (a grant of v1 goes stale, one of v2 is fresh), a
    // restriction, an objection to a legitimate-interest purpose.
    let fresh = subject(&s, &key, "fresh").await;
    let restricted = subject(&s, &key, "restricted").await;
    let objector = subject(&s, &key, "objector").await;
    publish(
        &s,
        &key,
        "newsletter",
        json!({"text": "v2", "material": true}),
    )
    .await;
    grant(&s, &key, &fresh, "newsletter", 2).await;
    grant(&s, &key, &restricted, "newsletter", 2).await;
    let r = s
        .call(
            Method::PUT,
            &format!("/v1/subjects/{restricted}/restriction"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    record(
        &s,
        &key,
        &objector,
        json!({"purpose": "analytics", "action": "object"}),
    )
    .await;
    for (name, id) in [
        ("fresh", &fresh),
        ("restricted", &restricted),
        ("objector", &objector),
    ] {
        let r = s
            .call(
                Method::POST,
                &format!("/v1/subjects/{id}/tokens"),
                Some(&key),
                Some(json!({"audience": "mailer"})),
            )
            .await;
        tokens.insert(r.body["token"].as_str().unwrap().to_owned(), name);
    }
    let live = [
        ("granted", &granted),
        ("withdrawn", &withdrawn),
        ("never", &never),
        ("fresh", &fresh),
        ("restricted", &restricted),
        ("objector", &objector),
    ];
    for purpose in ["newsletter", "analytics", "account"] {
        let r = s
            .call(
                Method::GET,
                &format!("/v1/purposes/{purpose}/suppression?audience=mailer&format=json"),
                Some(&key),
                None,
            )
            .await;
        let listed: Vec<&str> = r.body["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| tokens[x["token"].as_str().unwrap()])
            .collect();
        assert!(listed.contains(&"erased"), "{purpose}: {listed:?}");
        for (name, id) in live {
            let allowed = check(&s, &key, id, purpose).await.body["allowed"] == true;
            assert_eq!(
                listed.contains(&name),
                !allowed,
                "{purpose}/{name}: listed {listed:?}"
            );
        }
    }
    // Scope: a write-only key may not download the list.
    let w = s.key("acme", &["write"]).await;
    let r = s
        .call(
            Method::GET,
            "/v1/purposes/newsletter/suppression?audience=mailer",
            Some(&w),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "missing_scope"));
    s.stop().await;
}

async fn receipt_as_json_and_html(store: TestStore) {
    let (s, key) = setup(&store).await;
    let id = subject(&s, &key, "u-1").await;
    publish(
        &s,
        &key,
        "newsletter",
        json!({"text": "We email you <monthly> & never sell.", "material": false}),
    )
    .await;
    publish(
        &s,
        &key,
        "retargeting",
        json!({"text": "Ads elsewhere", "material": false}),
    )
    .await;
    grant(&s, &key, &id, "newsletter", 1).await;
    grant(&s, &key, &id, "retargeting", 1).await;
    record(
        &s,
        &key,
        &id,
        json!({"purpose": "retargeting", "action": "withdraw"}),
    )
    .await;

    let r = s
        .call(
            Method::GET,
            &format!("/v1/subjects/{id}/consents/receipt"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let entries = r.body["entries"].as_array().unwrap();
    let nl = entries
        .iter()
        .find(|e| e["purpose"] == "newsletter")
        .unwrap();
    assert_eq!(nl["state"], "granted");
    assert_eq!(nl["text"], "We email you <monthly> & never sell.");
    assert_eq!(nl["channel"], "signup-form");
    assert!(nl["withdraw_via"].as_str().unwrap().contains("Unsubscribe"));
    let rt = entries
        .iter()
        .find(|e| e["purpose"] == "retargeting")
        .unwrap();
    assert_eq!(rt["state"], "withdrawn");
    assert!(rt["text"].is_null());

    for req in [
        s.http.get(format!(
            "{}/v1/subjects/{id}/consents/receipt?format=html",
            s.base
        )),
        s.http
            .get(format!("{}/v1/subjects/{id}/consents/receipt", s.base))
            .header("Accept", "text/html"),
    ] {
        let res = req.bearer_auth(&key).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let html = res.text().await.unwrap();
        assert!(html.contains("Consent receipt"));
        assert!(
            html.contains("We email you &lt;monthly&gt; &amp; never sell."),
            "{html}"
        );
        assert!(html.contains("How to withdraw"));
        assert!(!html.contains(IP));
    }
    s.stop().await;
}

async fn check_by_token_and_across_servers(store: TestStore) {
    let (one, key) = setup(&store).await;
    let two = crate::support::start(&store).await;
    let id = subject(&one, &key, "u-1").await;
    publish(
        &one,
        &key,
        "newsletter",
        json!({"text": "v1", "material": false}),
    )
    .await;
    let r = one
        .call(
            Method::POST,
            &format!("/v1/subjects/{id}/tokens"),
            Some(&key),
            Some(json!({"audience": "mailer"})),
        )
        .await;
    let token = r.body["token"].as_str().unwrap().to_owned();
    let by_token = format!("/v1/consent/check?token={token}&purpose=newsletter");
    // Server two caches "no consent" …
    assert_eq!(
        two.call(Method::GET, &by_token, Some(&key), None)
            .await
            .body["allowed"],
        false
    );
    grant(&one, &key, &id, "newsletter", 1).await;
    // … server one answers at once (its write refreshed its cache) …
    assert_eq!(
        one.call(Method::GET, &by_token, Some(&key), None)
            .await
            .body["allowed"],
        true
    );
    // … and server two once it has followed the audit log, long before
    // its cache entries expire.
    let seen_by_two = |what: &'static str, want: Value| {
        let (two, key, by_token) = (&two, &key, &by_token);
        async move {
            let start = std::time::Instant::now();
            loop {
                let r = two.call(Method::GET, by_token, Some(key), None).await;
                if r.body["allowed"] == want {
                    return;
                }
                assert!(
                    start.elapsed() < custos_store::FOLLOW_EVERY * 5,
                    "server two never saw {what}: {:?}",
                    r.body
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    assert!(custos_store::DEFAULT_CHECK_TTL >= custos_store::FOLLOW_EVERY * 50);
    seen_by_two("the grant", json!(true)).await;
    // A material new version through server one: server two asks again.
    publish(
        &one,
        &key,
        "newsletter",
        json!({"text": "v2", "material": true}),
    )
    .await;
    seen_by_two("the material version", json!(false)).await;
    grant(&one, &key, &id, "newsletter", 2).await;
    seen_by_two("the new grant", json!(true)).await;
    // A restriction through server one, and its lifting.
    for (method, what, allowed) in [
        (Method::PUT, "the restriction", false),
        (Method::DELETE, "the lifted restriction", true),
    ] {
        let path = format!("/v1/subjects/{id}/restriction");
        let r = one.call(method, &path, Some(&key), None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        seen_by_two(what, json!(allowed)).await;
    }
    // A token checked against the wrong audience is not found; lookup-only keys may check.
    let r = one
        .call(
            Method::GET,
            &format!("{by_token}&audience=billing"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let lookup = one.key("acme", &["lookup"]).await;
    let r = one
        .call(
            Method::GET,
            &format!("{by_token}&audience=mailer"),
            Some(&lookup),
            None,
        )
        .await;
    assert_eq!((r.status, r.body["allowed"].as_bool()), (200, Some(true)));
    // Restriction (Art. 18) turns every answer into no.
    one.call(
        Method::PUT,
        &format!("/v1/subjects/{id}/restriction"),
        Some(&key),
        None,
    )
    .await;
    let r = check(&one, &key, &id, "newsletter").await;
    assert_eq!(
        (r.body["allowed"].as_bool(), r.body["reason"].as_str()),
        (Some(false), Some("restricted"))
    );
    let r = check(&one, &key, &id, "account").await;
    assert_eq!(r.body["allowed"], false);
    two.stop().await;
    one.stop().await;
}

/// A cached check past its refresh age (half to three quarters of its
/// lifetime) is answered from the cache and read again in the background,
/// so a subject checked steadily keeps a live entry: a change made behind
/// the cache's back (straight in the database, never audited, so no
/// follow drops it) is still not seen when the first entry would have
/// expired.
async fn check_cache_is_refreshed_before_it_expires(store: TestStore) {
    use std::time::{Duration, Instant};
    let (s, key) = setup(&store).await;
    assert_eq!(
        publish(
            &s,
            &key,
            "newsletter",
            json!({"text": "News", "material": false, "effective_at": "2000-01-01"})
        )
        .await
        .status,
        201
    );
    let id = subject(&s, &key, "u-refresh").await;
    grant(&s, &key, &id, "newsletter", 1).await;
    let ttl = Duration::from_secs(4);
    s.vault.consent().set_check_ttl(ttl);
    let allowed = |r: Reply| r.body["allowed"].clone();
    let t0 = Instant::now();
    assert_eq!(
        allowed(check(&s, &key, &id, "newsletter").await),
        json!(true)
    );
    // Past the refresh age: a hit that starts the refresh.
    tokio::time::sleep_until((t0 + ttl * 8 / 10).into()).await;
    assert_eq!(
        allowed(check(&s, &key, &id, "newsletter").await),
        json!(true)
    );
    tokio::time::sleep_until((t0 + ttl).into()).await;
    sqlx::query("UPDATE consent_state SET state = 'withdrawn' WHERE subject = $1")
        .bind(&id)
        .execute(s.vault.read_pool())
        .await
        .unwrap();
    // Past the first lifetime, well within the refreshed one (and before
    // its own refresh age): still cached.
    tokio::time::sleep_until((t0 + ttl * 11 / 10).into()).await;
    let r = check(&s, &key, &id, "newsletter").await;
    if t0.elapsed() < ttl * 13 / 10 {
        assert_eq!(allowed(r), json!(true), "the entry was not refreshed");
    }
    // The database does say "withdrawn".
    s.vault.consent().set_check_ttl(Duration::ZERO);
    assert_eq!(
        allowed(check(&s, &key, &id, "newsletter").await),
        json!(false)
    );
    s.stop().await;
}
