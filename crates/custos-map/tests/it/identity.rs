//! Identity namespaces (issue 16, case 2): two datasets claiming the
//! application's `user_id` over unrelated keys are an error naming both
//! fields; a `references:` link or an explicit namespace settles it; global
//! identities take no namespace; the namespace survives the JSON form.

use custos_map::{check_str, load_str};

/// A shop with customers and, apart, its staff: both keyed by numbers.
fn map(employee_identity: &str) -> String {
    format!(
        r#"organisation: {{ controller: Shop GmbH, contact: privacy@shop.example }}
purposes:
  - {{ id: account, title: Accounts, legal_basis: contract, subjects: [customer, employee] }}
systems:
  - id: app_db
    kind: postgres
    connection: {{ url_env: DATABASE_URL }}
    datasets:
      - id: customer
        table: customer
        purposes: [account]
        erasure: delete
        retention: {{ period: 30d, from_event: account_closed }}
        fields:
          - {{ name: customer_id, category: user.unique_id, identity: user_id, primary_key: true }}
          - {{ name: email, category: user.contact.email, identity: email }}
      - id: invoice
        table: invoice
        subject: {{ via: customer_id }}
        purposes: [account]
        erasure: delete
        retention: {{ period: 30d, from_event: account_closed }}
        fields:
          - {{ name: customer_id, category: user.unique_id, identity: user_id, references: customer.customer_id }}
      - id: employee
        table: employee
        purposes: [account]
        erasure: delete
        retention: {{ period: 30d, from_event: account_closed }}
        fields:
          - {{ name: employee_id, category: user.unique_id, {employee_identity} }}
          - {{ name: email, category: user.contact.email, identity: email }}
"#
    )
}

fn errors(src: &str) -> Vec<String> {
    check_str(src, "shop.yaml")
        .iter()
        .filter(|d| d.severity == custos_map::Severity::Error)
        .map(ToString::to_string)
        .collect()
}

#[test]
fn unrelated_keys_sharing_user_id_are_an_error_naming_both() {
    let got = errors(&map("identity: user_id"));
    assert_eq!(got.len(), 1, "{got:#?}");
    let e = &got[0];
    assert!(e.contains("error[identity-namespace-clash]"), "{e}");
    assert!(
        e.contains("systems.app_db.datasets.employee.fields.employee_id.identity"),
        "{e}"
    );
    assert!(
        e.contains("`app_db.customer.customer_id` and `app_db.employee.employee_id`"),
        "{e}"
    );
    assert!(
        e.contains("namespace: <name>") && e.contains("references: app_db.customer.customer_id"),
        "{e}"
    );
    // The invoice's key references the customer's: one key, no error for it.
    assert!(!e.contains("invoice"), "{e}");
}

#[test]
fn a_namespace_or_a_reference_settles_it() {
    for identity in [
        "identity: { kind: user_id, namespace: staff }",
        "identity: user_id, references: customer.customer_id",
    ] {
        assert_eq!(errors(&map(identity)), Vec::<String>::new(), "{identity}");
    }
}

#[test]
fn global_identities_take_no_namespace() {
    let got = errors(&map("identity: { kind: email, namespace: staff }"));
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].contains("error[identity-namespace-global]"),
        "{}",
        got[0]
    );
    let got = errors(&map("identity: { kind: user_id }"));
    assert!(
        got.iter().any(|e| e.contains("has no `namespace`")),
        "{got:#?}"
    );
}

#[test]
fn the_namespace_survives_the_json_form() {
    let (m, _) = load_str(
        &map("identity: { kind: user_id, namespace: staff }"),
        "shop.yaml",
    )
    .unwrap();
    let f = &m.systems[0].datasets[2].fields[0];
    assert_eq!(f.identity_namespace.as_deref(), Some("staff"));
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(
        json["systems"][0]["datasets"][2]["fields"][0]["identity"],
        serde_json::json!({"kind": "user_id", "namespace": "staff"})
    );
    assert_eq!(
        json["systems"][0]["datasets"][0]["fields"][0]["identity"],
        "user_id"
    );
    let back: custos_map::DataMap = serde_json::from_value(json).unwrap();
    assert_eq!(back, m);
}
