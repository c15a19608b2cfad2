//! Import of Fides dataset YAML: our own fixture always, the real Fides
//! example when `../shared/peers/fides/` sits beside the checkout.

use custos_map::fides::import;
use custos_map::{check_str, yaml, FieldRef, SubjectLink, SystemKind};

const FIXTURE: &str = include_str!("../fixtures/fides_shop.yml");

#[test]
fn imports_own_fixture() {
    let out = import(&[("fides_shop.yml", FIXTURE)], SystemKind::Postgres).unwrap();
    let sys = &out.map.systems[0];
    assert_eq!(sys.id.as_str(), "shop_db");
    assert_eq!(
        sys.connection.get("url_env").map(String::as_str),
        Some("SHOP_DB_URL")
    );
    let users = sys
        .datasets
        .iter()
        .find(|d| d.id.as_str() == "users")
        .unwrap();
    let email = users.field("email").unwrap();
    assert_eq!(email.identity, Some(custos_map::IdentityKind::Email));
    assert!(users.field("id").unwrap().primary_key);
    // `fidesops_meta` (legacy) is read like `fides_meta`.
    let orders = sys
        .datasets
        .iter()
        .find(|d| d.id.as_str() == "orders")
        .unwrap();
    assert_eq!(orders.subject, [SubjectLink::Via("user_id".into())]);
    assert_eq!(
        orders.field("user_id").unwrap().references,
        Some("users.id".parse::<FieldRef>().unwrap())
    );
    // Direction `to`: the address is reached from every field pointing at
    // it (the user's, and the order's second reference), as Fides does.
    let addresses = sys
        .datasets
        .iter()
        .find(|d| d.id.as_str() == "addresses")
        .unwrap();
    assert_eq!(
        addresses.subject,
        [
            SubjectLink::ReferencedBy("users.address_id".parse().unwrap()),
            SubjectLink::ReferencedBy("orders.user_id".parse().unwrap()),
        ]
    );
    let notes = out.notes.join("\n");
    assert!(notes.contains("fides_meta.data_type"), "{notes}");
    assert!(notes.contains("masking_strategy_override"), "{notes}");
    assert!(notes.contains("only the first of 2 references"), "{notes}");

    // The written YAML parses back; only the gaps Fides leaves are errors.
    let text = yaml::to_yaml(&out.map);
    let codes: std::collections::BTreeSet<String> = check_str(&text, "imported.yaml")
        .into_iter()
        .filter(|d| d.is_error())
        .map(|d| d.code)
        .collect();
    let expected: std::collections::BTreeSet<String> = ["missing-purpose", "missing-retention"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(codes, expected);
}

#[test]
fn rejects_non_fides_yaml() {
    let err = import(&[("x.yml", "foo: bar\n")], SystemKind::Postgres).unwrap_err();
    assert_eq!(err[0].code, "not-fides");
}

#[test]
fn imports_the_fides_postgres_example() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers/fides");
    let path = dir.join("postgres_example_test_dataset.yml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!(
            "SKIPPED: {} is absent (the shared/ folder is not beside the checkout)",
            path.display()
        );
        return;
    };
    let out = import(
        &[("postgres_example_test_dataset.yml", &text)],
        SystemKind::Postgres,
    )
    .unwrap();
    let sys = &out.map.systems[0];
    assert_eq!(sys.id.as_str(), "postgres_example_test_dataset");
    let names: Vec<&str> = sys.datasets.iter().map(|d| d.id.as_str()).collect();
    for t in [
        "address",
        "customer",
        "employee",
        "login",
        "orders",
        "payment_card",
        "product",
        "visit",
    ] {
        assert!(names.contains(&t), "{t} missing from {names:?}");
    }
    let customer = sys
        .datasets
        .iter()
        .find(|d| d.id.as_str() == "customer")
        .unwrap();
    assert_eq!(
        customer.field("email").unwrap().identity,
        Some(custos_map::IdentityKind::Email)
    );
    let login = sys
        .datasets
        .iter()
        .find(|d| d.id.as_str() == "login")
        .unwrap();
    assert_eq!(login.subject, [SubjectLink::Via("customer_id".into())]);
    let address = sys
        .datasets
        .iter()
        .find(|d| d.id.as_str() == "address")
        .unwrap();
    // Customers, orders (shipping), payment cards (billing) and employees
    // point at addresses: every path is kept, none dropped.
    let refs: Vec<String> = address
        .subject
        .iter()
        .map(|l| match l {
            SubjectLink::ReferencedBy(r) => r.to_string(),
            other => panic!("unexpected link {other:?}"),
        })
        .collect();
    assert_eq!(
        refs,
        [
            "customer.address_id",
            "employee.address_id",
            "orders.shipping_address_id",
            "payment_card.billing_address_id"
        ]
    );
    assert!(
        !out.notes.iter().any(|n| n.contains("also referenced by")),
        "{:?}",
        out.notes
    );
    // Every category of the example is a valid taxonomy key, and the
    // imported map has no structural or reference errors, only the gaps.
    let text = yaml::to_yaml(&out.map);
    let errors: Vec<_> = check_str(&text, "imported.yaml")
        .into_iter()
        .filter(|d| {
            d.is_error() && !matches!(d.code.as_str(), "missing-purpose" | "missing-retention")
        })
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(out
        .notes
        .iter()
        .any(|n| n.contains("masking_strategy_override")));
}
