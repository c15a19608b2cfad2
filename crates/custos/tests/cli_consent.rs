//! `custos consent` as a process, on SQLite and PostgreSQL: bulk import
//! with original timestamps and a report of rejected lines
//! (`FILE:LINE:FIELD: why`), then check, withdraw, history and verify.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::{Command, Output};

use custos_core::consent::{Basis, PurposeRule, Revalidation};
use custos_core::ids::{Purpose, TenantId};
use custos_core::scope::{Scope, ScopeSet};
use custos_store::{Actor, Principal};
use custos_testkit::{backend_tests, TestStore};
use serde_json::Value;

backend_tests!(import_reports_rejected_lines_and_keeps_the_rest);

fn custos(store: &TestStore, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_custos"));
    for var in [
        "CUSTOS_ROOT_KEY_FILE",
        "CUSTOS_DATA_DIR",
        "CUSTOS_MAP",
        "CUSTOS_DATABASE_URL",
        "CUSTOS_KEYSTORE_URL",
    ] {
        c.env_remove(var);
    }
    c.arg("consent")
        .args(args)
        .arg("--tenant")
        .arg("acme")
        .arg("--data-dir")
        .arg(store.dir().join("cli"))
        .arg("--database-url")
        .arg(&store.database_url)
        .arg("--keystore-url")
        .arg(&store.keystore_url)
        .env("CUSTOS_ROOT_KEY", store.root_key_b64())
        .output()
        .expect("run custos")
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn import_reports_rejected_lines_and_keeps_the_rest(store: TestStore) {
    // Seed: a tenant, three subjects (one erased), a newsletter policy.
    let vault = store.open().await;
    let acme = TenantId::parse("acme").unwrap();
    vault.tenants().create(&acme, "Acme").await.unwrap();
    let k = vault
        .tenants()
        .create_key(
            &Actor::Admin,
            &acme,
            ScopeSet::from_scopes(Scope::ALL),
            None,
        )
        .await
        .unwrap();
    let p = Principal {
        tenant: acme.clone(),
        key_id: k.id,
        scopes: ScopeSet::from_scopes(Scope::ALL),
    };
    let a = vault
        .subjects()
        .create(&p, Some("u-a".into()), &[])
        .await
        .unwrap();
    let b = vault
        .subjects()
        .create(&p, Some("u-b".into()), &[])
        .await
        .unwrap();
    let gone = vault
        .subjects()
        .create(&p, Some("u-gone".into()), &[])
        .await
        .unwrap();
    vault
        .subjects()
        .erase(&p, &gone, &Purpose::parse("subject_request").unwrap())
        .await
        .unwrap();
    let newsletter = PurposeRule {
        id: Purpose::parse("newsletter").unwrap(),
        basis: Basis::Consent,
        sale_or_sharing: false,
        title: "Newsletter".into(),
        withdraw_via: None,
    };
    vault
        .consent()
        .publish_policy(
            &Actor::Admin,
            &acme,
            &newsletter,
            "Monthly news",
            false,
            Some(0),
            Revalidation::Deny,
        )
        .await
        .unwrap();
    vault.close().await;

    let file = store.dir().join("consents.csv");
    let csv = format!(
        "subject,external_id,purpose,action,version,at,channel,ip,user_agent,affirmative\n\
         {a},,newsletter,grant,1,2021-03-01T10:00:00Z,signup-form,192.0.2.1,\"Mozilla/5.0 (X11, Linux)\",true\n\
         ,u-b,newsletter,grant,1,2021-03-02,signup-form,,,yes\n\
         ,u-b,newsletter,withdraw,,2022-01-01T00:00:00Z,email-link,,,\n\
         {a},,newsletter,grant,9,2021-03-01T10:00:00Z,web,,,true\n\
         {a},,newsletter,grant,1,2021-03-01T10:00:00Z,web,,,false\n\
         ,u-nobody,newsletter,grant,1,2021-03-01,web,,,true\n\
         {gone},,newsletter,grant,1,2021-03-01,web,,,true\n\
         {a},,account,grant,1,2021-03-01,web,,,true\n\
         {a},,marketing,grant,1,2021-03-01,web,,,true\n\
         {a},,newsletter,grant,1,last tuesday,web,,,true\n\
         {a},,newsletter,grant,1,2021-03-01,web,not-an-ip,,true\n\
         sub_123,,newsletter,grant,1,2021-03-01,web,,,true\n\
         {a},,newsletter,maybe,1,2021-03-01,web,,,true\n\
         {a},,newsletter,grant,1,2021-03-01,web\n"
    );
    std::fs::write(&file, csv).unwrap();
    let path = file.to_str().unwrap();
    let o = custos(&store, &["import", path]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    for want in [
        format!("{path}:5:version: purpose newsletter has no policy version 9"),
        format!("{path}:6:affirmative: a grant must be an affirmative act"),
        format!("{path}:7:external_id: no subject with this external id"),
        format!("{path}:8:subject: subject was erased"),
        format!("{path}:9:purpose: purpose account has legal basis contract"),
        format!("{path}:10:purpose: unknown purpose"),
        format!("{path}:11:at: expected an RFC 3339 time"),
        format!("{path}:12:ip: expected an IPv4 or IPv6 address"),
        format!("{path}:13:subject: expected sub_"),
        format!("{path}:14:action: use grant, withdraw or object"),
        format!("{path}:15:line: wrong number of fields"),
        "imported 3 of 14 events".to_owned(),
        "11 line(s) rejected".to_owned(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    // Values never echo back in the report.
    assert!(
        !text.contains("192.0.2.1") && !text.contains("not-an-ip") && !text.contains("u-nobody")
    );

    // The imported events decide the state, with their original times.
    let o = custos(
        &store,
        &[
            "check",
            "--subject",
            &a.to_string(),
            "--purpose",
            "newsletter",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["allowed"].as_bool(), v["version"].as_i64()),
        (Some(true), Some(1))
    );
    let o = custos(
        &store,
        &[
            "check",
            "--subject",
            &b.to_string(),
            "--purpose",
            "newsletter",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "withdrawn in 2022: {}", out(&o));
    let o = custos(
        &store,
        &[
            "history",
            "--subject",
            &a.to_string(),
            "--reveal-purpose",
            "audit",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let h: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(h[0]["at"], "2021-03-01T10:00:00Z");
    assert_eq!(h[0]["channel"], "signup-form");
    assert_eq!(h[0]["proof"]["ip"], "192.0.2.1");
    assert_eq!(h[0]["proof"]["user_agent"], "Mozilla/5.0 (X11, Linux)");

    // Withdraw from the CLI, then the state still equals the fold of the events.
    let o = custos(
        &store,
        &[
            "withdraw",
            "--subject",
            &a.to_string(),
            "--purpose",
            "newsletter",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let o = custos(
        &store,
        &[
            "check",
            "--subject",
            &a.to_string(),
            "--purpose",
            "newsletter",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let o = custos(&store, &["verify", "--rebuild"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("0 mismatches"), "{}", out(&o));

    // A header with an unknown column fails before anything is imported.
    std::fs::write(&file, "subject,purpose,action,at,colour\n").unwrap();
    let o = custos(&store, &["import", path]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        out(&o).contains(&format!("{path}:1: unknown column \"colour\"")),
        "{}",
        out(&o)
    );
}
