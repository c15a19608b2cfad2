//! Several paths to one dataset, and rows shared with other people: an
//! address is a customer's home (`customer.address_id`) and the shipping
//! address of orders (`orders.shipping_address_id`). Ann's home is also
//! where Ben's order ships; Ann's order ships to Ben's home. Access follows
//! both paths; erasure deletes Ann's own address and keeps, untouched, the
//! two that are also Ben's. On SQLite, PostgreSQL and MariaDB.

use std::collections::BTreeMap;

use custos_connectors::{Connector, Person};
use custos_map::{DataMap, IdentityKind};
use serde_json::Value;

use crate::sql::{connector, my_db, pg_db, sqlite_db, Db};

const SCHEMA: &[&str] = &[
    "CREATE TABLE address (id INTEGER PRIMARY KEY, street VARCHAR(100) NOT NULL)",
    "CREATE TABLE customer (id INTEGER PRIMARY KEY, email VARCHAR(100) NOT NULL, \
     address_id INTEGER, FOREIGN KEY (address_id) REFERENCES address(id))",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, \
     shipping_address_id INTEGER, FOREIGN KEY (customer_id) REFERENCES customer(id), \
     FOREIGN KEY (shipping_address_id) REFERENCES address(id))",
    "INSERT INTO address VALUES (1, 'Ann home'), (2, 'Ben home'), (3, 'Ann office')",
    "INSERT INTO customer VALUES (1, 'ann@example.com', 1), (2, 'ben@example.com', 2)",
    // Ann: 10 to her office, 11 to Ben's home; Ben: 12 to Ann's home.
    "INSERT INTO orders VALUES (10, 1, 3), (11, 1, 2), (12, 2, 1)",
];

const MAP: &str = r#"
organisation: { controller: Shop GmbH, contact: privacy@shop.example }
purposes:
  - { id: sales, title: Sales, legal_basis: contract, subjects: [customer] }
systems:
  - id: app_db
    kind: __KIND__
    connection: { __SETTING__: APP_DB }
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
          - { name: id, category: system.operations, primary_key: true }
          - { name: customer_id, category: user.unique_id, references: customer.id }
          - { name: shipping_address_id, category: system.operations, references: address.id }
      - id: address
        table: address
        subject:
          - { referenced_by: customer.address_id }
          - { referenced_by: orders.shipping_address_id }
        purposes: [sales]
        erasure: delete
        retention: { period: 3y, from_event: account_closed }
        fields:
          - { name: id, category: system.operations, primary_key: true }
          - { name: street, category: user.contact.address.street }
"#;

fn map(kind: &str, setting: &str) -> DataMap {
    let src = MAP
        .replace("__KIND__", kind)
        .replace("__SETTING__", setting);
    custos_map::load_str(&src, "shared.yaml")
        .unwrap_or_else(|d| panic!("{d:#?}"))
        .0
}

async fn rows(db: &Db) -> BTreeMap<&'static str, Vec<String>> {
    let mut out = BTreeMap::new();
    for (t, cols) in [
        ("address", "CAST(id AS TEXT) || ':' || street"),
        ("customer", "CAST(id AS TEXT) || ':' || email || ':' || CAST(address_id AS TEXT)"),
        (
            "orders",
            "CAST(id AS TEXT) || ':' || CAST(customer_id AS TEXT) || ':' || CAST(shipping_address_id AS TEXT)",
        ),
    ] {
        out.insert(t, db.texts(&format!("SELECT {cols} FROM {t} ORDER BY id")).await);
    }
    out
}

fn ids(records: &[serde_json::Map<String, Value>]) -> Vec<i64> {
    let mut v: Vec<i64> = records.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    v.sort_unstable();
    v
}

async fn every_path_and_shared_rows(db: &Db, m: &DataMap, target: &str) {
    for s in SCHEMA {
        db.exec(s).await;
    }
    let conn = connector(m, target).await.unwrap();
    let mut ann = Person::new();
    ann.add(IdentityKind::Email, "ann@example.com");

    // Access: her home, her office (shipping) and Ben's home (shipping of
    // her order), each once.
    let exports = conn.access(&ann).await.unwrap();
    let by: BTreeMap<&str, _> = exports
        .iter()
        .map(|e| (e.dataset.as_str(), &e.records))
        .collect();
    assert_eq!(ids(by["address"]), [1, 2, 3]);
    assert_eq!(ids(by["orders"]), [10, 11]);

    // The dry run says what the erasure will do, and changes nothing.
    let before = rows(db).await;
    let plan = conn.plan_erasure(&ann).await.unwrap();
    assert_eq!(rows(db).await, before);
    let erased = conn.erase(&ann).await.unwrap();
    for outcomes in [&plan, &erased] {
        let a = outcomes
            .iter()
            .find(|o| o.dataset.as_str() == "address")
            .unwrap();
        assert_eq!(
            (a.found, a.deleted, a.anonymized, a.retained, a.shared),
            (3, 1, 0, 2, 2),
            "{a:?}"
        );
        assert_eq!(
            a.retained_ground.as_deref(),
            Some("shared with another person")
        );
    }
    // Her own address is gone; the two that are also Ben's are untouched,
    // and so is everything of Ben's.
    let after = rows(db).await;
    assert_eq!(after["address"], ["1:Ann home", "2:Ben home"]);
    assert_eq!(after["customer"], ["2:ben@example.com:2"]);
    assert_eq!(after["orders"], ["12:2:1"]);
    // Idempotent: nothing of hers is found again.
    let again = conn.erase(&ann).await.unwrap();
    assert!(again.iter().all(|o| o.found == 0), "{again:?}");
}

#[tokio::test]
async fn sqlite_every_path_and_shared_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = sqlite_db(&dir).await;
    every_path_and_shared_rows(&db, &map("sqlite", "path_env"), &path).await;
}

#[tokio::test]
async fn postgres_every_path_and_shared_rows() {
    let Some((db, url)) = pg_db("sqlshared").await else {
        return;
    };
    every_path_and_shared_rows(&db, &map("postgres", "url_env"), &url).await;
}

#[tokio::test]
async fn mysql_every_path_and_shared_rows() {
    let Some((db, url)) = my_db("sqlshared").await else {
        return;
    };
    every_path_and_shared_rows(&db, &map("mysql", "url_env"), &url).await;
}
