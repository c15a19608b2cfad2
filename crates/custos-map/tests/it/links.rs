//! Several subject links per dataset: an address that is the customer's
//! home and the shipping address of their orders is reached both ways.

use custos_map::{check_str, load_str, yaml, SharedRows, SubjectLink};

const SHOP: &str = r#"organisation:
  controller: Shop GmbH
  contact: privacy@shop.example
purposes:
  - id: sales
    title: Selling
    legal_basis: contract
    subjects: [customer]
systems:
  - id: app_db
    kind: postgres
    connection: { url_env: DATABASE_URL }
    datasets:
      - id: customer
        table: customer
        purposes: [sales]
        erasure: delete
        retention: { period: 3y, from_event: account_closed }
        fields:
          - { name: id, category: user.unique_id, primary_key: true }
          - { name: email, category: user.contact.email, identity: email }
          - { name: address_id, category: system.operations, references: address.id }
      - id: orders
        table: orders
        subject: { via: customer_id }
        purposes: [sales]
        erasure: delete
        retention: { period: 3y, from_event: account_closed }
        fields:
          - { name: customer_id, category: user.unique_id, references: customer.id }
          - { name: shipping_address_id, category: system.operations, references: address.id }
      - id: address
        table: address
        subject: LINKS
        purposes: [sales]
        erasure: delete
        retention: { period: 3y, from_event: account_closed }
        fields:
          - { name: id, category: system.operations, primary_key: true }
          - { name: street, category: user.contact.address.street }
"#;

fn with_links(links: &str) -> String {
    SHOP.replace("LINKS", links)
}

fn address(src: &str) -> custos_map::Dataset {
    let (map, _) = load_str(src, "shop.yaml").unwrap_or_else(|d| panic!("{d:#?}"));
    map.systems[0]
        .datasets
        .iter()
        .find(|d| d.id.as_str() == "address")
        .unwrap()
        .clone()
}

#[test]
fn a_list_of_links_is_read_checked_and_written_back() {
    let src = with_links(
        "[{ referenced_by: customer.address_id }, { referenced_by: orders.shipping_address_id }]",
    );
    let d = address(&src);
    assert_eq!(
        d.subject,
        [
            SubjectLink::ReferencedBy("customer.address_id".parse().unwrap()),
            SubjectLink::ReferencedBy("orders.shipping_address_id".parse().unwrap()),
        ]
    );
    assert_eq!(d.shared_rows, SharedRows::Keep);
    let (map, _) = load_str(&src, "shop.yaml").unwrap();
    let text = yaml::to_yaml(&map);
    assert!(
        text.contains("- referenced_by: customer.address_id"),
        "{text}"
    );
    let (back, _) = load_str(&text, "again.yaml").unwrap();
    assert_eq!(back, map);
}

#[test]
fn one_link_is_written_as_a_mapping() {
    let src = with_links("{ referenced_by: customer.address_id }");
    let d = address(&src);
    assert_eq!(d.subject.len(), 1);
    let (map, _) = load_str(&src, "shop.yaml").unwrap();
    let text = yaml::to_yaml(&map);
    assert!(
        text.contains("subject:\n          referenced_by: customer.address_id"),
        "{text}"
    );
    let json = serde_json::to_value(&map).unwrap();
    assert_eq!(
        json["systems"][0]["datasets"][2]["subject"],
        serde_json::json!({"referenced_by": "customer.address_id"})
    );
}

fn errors(src: &str) -> Vec<String> {
    check_str(src, "shop.yaml")
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect()
}

#[test]
fn every_link_is_checked_with_its_index() {
    let e = errors(&with_links(
        "[{ referenced_by: customer.address_id }, { referenced_by: orders.shiping_address_id }]",
    ));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].contains("systems.app_db.datasets.address.subject[1].referenced_by"),
        "{e:#?}"
    );
    let e = errors(&with_links("[]"));
    assert!(e[0].contains("empty list of subject links"), "{e:#?}");
    let e = errors(&with_links(
        "[{ referenced_by: customer.address_id }, { referenced_by: customer.address_id }]",
    ));
    assert!(e[0].contains("listed twice"), "{e:#?}");
    let e = errors(&SHOP.replace(
        "subject: LINKS",
        "subject: LINKS\n        shared_rows: delete",
    ));
    assert!(e.iter().any(|x| x.contains("shared_rows")), "{e:#?}");
}

#[test]
fn a_loop_through_a_second_link_is_reported() {
    // The address reaches the person through the customer, and also
    // through orders that reach it back: orders need the address first.
    let src = with_links(
        "[{ referenced_by: customer.address_id }, { referenced_by: orders.shipping_address_id }]",
    )
    .replace(
        "subject: { via: customer_id }",
        "subject: [{ via: customer_id }, { via: shipping_address_id }]",
    );
    let e = errors(&src);
    assert!(
        e.iter().any(|x| x.contains("reference-cycle")
            && x.contains("app_db.address -> app_db.orders -> app_db.address")),
        "{e:#?}"
    );
}
