//! Issue 16 on a schema not written for custos: a small DVD-rental shop
//! (customers, staff reporting to staff, payments, loyalty cards) with
//! `VARCHAR(20) NOT NULL` names, a `VARCHAR(10) NOT NULL UNIQUE` phone, FK
//! chains and a self-reference, on SQLite, PostgreSQL and MariaDB:
//! identity namespaces (customer 4 is not employee 4), placeholders cut to
//! the column's length or a plan that fails first naming the column,
//! a fixed placeholder for a UNIQUE column refused before anything runs,
//! permanent constraint errors (a CHECK) that fail at once, field erasures
//! that override a retained dataset's, and what `map check --connect` reads
//! from the catalog.

use custos_connectors::sql::SqlConnector;
use custos_connectors::{Connector, ConnectorError, Person};
use custos_map::{DataMap, IdentityKind};

const KEY: [u8; 32] = [9; 32];

const SCHEMA: &[&str] = &[
    "CREATE TABLE staff (staff_id INTEGER PRIMARY KEY, first_name VARCHAR(20) NOT NULL, \
     email VARCHAR(50) NOT NULL, reports_to INTEGER, \
     FOREIGN KEY (reports_to) REFERENCES staff(staff_id))",
    "CREATE TABLE customer (customer_id INTEGER PRIMARY KEY, first_name VARCHAR(20) NOT NULL, \
     last_name VARCHAR(20) NOT NULL, email VARCHAR(50), phone VARCHAR(10) NOT NULL UNIQUE, \
     birth_date DATE NOT NULL, loyalty_no INTEGER NOT NULL)",
    "CREATE TABLE payment (payment_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, \
     staff_id INTEGER NOT NULL, billing_address VARCHAR(70), amount DECIMAL(5,2) NOT NULL, \
     payment_date DATE NOT NULL, FOREIGN KEY (customer_id) REFERENCES customer(customer_id), \
     FOREIGN KEY (staff_id) REFERENCES staff(staff_id))",
    "CREATE TABLE card (card_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, \
     card_no VARCHAR(16) NOT NULL UNIQUE, pin VARCHAR(4) NOT NULL, \
     brand VARCHAR(10) NOT NULL CHECK (brand IN ('visa', 'mc')), \
     FOREIGN KEY (customer_id) REFERENCES customer(customer_id))",
];

/// Customer 4 is Mary; staff member 4 is Jon, who reports to Mike (3).
const DATA: &[&str] = &[
    "INSERT INTO staff VALUES (3, 'Mike', 'mike@shop.example', NULL)",
    "INSERT INTO staff VALUES (4, 'Jon', 'jon@shop.example', 3)",
    "INSERT INTO customer VALUES \
     (3, 'Linda', 'Williams', 'linda@shop.example', '5550103', '1980-01-03', 1003), \
     (4, 'Mary', 'Smith', 'mary@shop.example', '5550104', '1980-01-04', 1004)",
    "INSERT INTO payment VALUES (16050, 4, 3, '1913 Hanoi Way', 2.99, '2024-01-24'), \
     (16051, 3, 4, '47 MySakila Drive', 4.99, '2024-01-25')",
    "INSERT INTO card VALUES (1, 4, '4000000000000004', '1234', 'visa'), \
     (2, 4, '4000000000000012', '9876', 'mc'), (3, 3, '4000000000000020', '1111', 'visa')",
];

const MAP: &str = r#"
version: 1
organisation: { controller: Rental GmbH, contact: privacy@rental.example }
purposes:
  - { id: rental, title: Rentals, legal_basis: contract, subjects: [customer, employee] }
  - { id: billing, title: Invoicing, legal_basis: legal_obligation, subjects: [customer] }
systems:
  - id: shop
    kind: __KIND__
    connection: { __SETTING__: SHOP_DB }
    datasets:
      - id: customer
        table: customer
        purposes: [rental]
        erasure: { anonymize: set_null }
        retention: { period: 30d, from_event: account_closed }
        fields:
          - { name: customer_id, category: user.unique_id, identity: user_id, primary_key: true }
          - { name: first_name, category: user.name }
          - { name: last_name, category: user.name }
          - { name: email, category: user.contact.email, identity: email }
          - { name: phone, category: user.contact.phone_number }
      - id: payment
        table: payment
        subject: { via: customer_id }
        purposes: [billing]
        erasure: { retain: { ground: "§147 AO: fiscal records", period: 10y, from_column: payment_date } }
        fields:
          - { name: payment_id, category: system.operations, primary_key: true }
          - { name: customer_id, category: user.unique_id, references: customer.customer_id }
          - { name: staff_id, category: system.operations, references: staff.staff_id }
          - { name: billing_address, category: user.contact.address, erasure: { anonymize: set_null } }
          - { name: amount, category: user.financial }
          - { name: payment_date, category: system.operations }
      - id: staff
        table: staff
        purposes: [rental]
        erasure: delete
        retention: { period: 3y, from_event: employment_end }
        fields:
          - { name: staff_id, category: user.unique_id, identity: __STAFF_ID__, primary_key: true }
          - { name: first_name, category: user.name }
          - { name: email, category: user.contact.email, identity: email }
          - { name: reports_to, category: system.operations, references: staff.staff_id }__CARD__
"#;

/// Cards whose number becomes one placeholder for all: UNIQUE refuses it.
const CARD_NUMBER: &str = r#"
      - id: card
        table: card
        subject: { via: customer_id }
        purposes: [billing]
        erasure: { anonymize: { placeholder: "removed" } }
        retention: { period: 30d, from_event: account_closed }
        fields:
          - { name: card_id, category: system.operations, primary_key: true }
          - { name: customer_id, category: system.operations, references: customer.customer_id }
          - { name: card_no, category: user.financial.credit_card }"#;

/// Cards whose brand becomes a placeholder its CHECK refuses.
const CARD_BRAND: &str = r#"
      - id: card
        table: card
        subject: { via: customer_id }
        purposes: [billing]
        erasure: { anonymize: { placeholder: "removed" } }
        retention: { period: 30d, from_event: account_closed }
        fields:
          - { name: card_id, category: system.operations, primary_key: true }
          - { name: customer_id, category: system.operations, references: customer.customer_id }
          - { name: brand, category: user.financial }"#;

/// Cards whose 4-character NOT NULL pin no placeholder fits.
const CARD_PIN: &str = r#"
      - id: card
        table: card
        subject: { via: customer_id }
        purposes: [billing]
        erasure: { anonymize: set_null }
        retention: { period: 30d, from_event: account_closed }
        fields:
          - { name: card_id, category: system.operations, primary_key: true }
          - { name: customer_id, category: system.operations, references: customer.customer_id }
          - { name: pin, category: user.authorization.credentials }"#;

const NAMESPACED: &str = "{ kind: user_id, namespace: staff }";

fn map(kind: &str, setting: &str, staff_id: &str, card: &str) -> DataMap {
    let src = MAP
        .replace("__KIND__", kind)
        .replace("__SETTING__", setting)
        .replace("__STAFF_ID__", staff_id)
        .replace("__CARD__", card);
    match custos_map::load_str(&src, "rental.yaml") {
        Ok((m, _)) => m,
        Err(d) => panic!("test map invalid: {d:#?}"),
    }
}

enum Db {
    Lite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
    My(sqlx::MySqlPool),
}

impl Db {
    async fn exec(&self, sql: &str) {
        match self {
            Db::Lite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Db::Pg(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Db::My(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// One text per row of `SELECT <cols joined by |> FROM …`.
    async fn texts(&self, table: &str, cols: &[&str], order: &str) -> Vec<String> {
        let cast = match self {
            Db::My(_) => "CHAR",
            _ => "TEXT",
        };
        let parts: Vec<String> = cols
            .iter()
            .map(|c| format!("COALESCE(CAST({c} AS {cast}), '-')"))
            .collect();
        let sql = format!(
            "SELECT {} FROM {table} ORDER BY {order}",
            parts.join(" || '|' || ")
        );
        match self {
            Db::Lite(p) => sqlx::query_scalar(&sql).fetch_all(p).await,
            Db::Pg(p) => sqlx::query_scalar(&sql).fetch_all(p).await,
            Db::My(p) => sqlx::query_scalar::<_, Vec<u8>>(&sql)
                .fetch_all(p)
                .await
                .map(|v| {
                    v.into_iter()
                        .map(|b| String::from_utf8(b).unwrap())
                        .collect()
                }),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn everything(&self) -> Vec<Vec<String>> {
        vec![
            self.texts(
                "staff",
                &["staff_id", "first_name", "email", "reports_to"],
                "staff_id",
            )
            .await,
            self.texts(
                "customer",
                &["customer_id", "first_name", "last_name", "email", "phone"],
                "customer_id",
            )
            .await,
            self.texts(
                "payment",
                &["payment_id", "customer_id", "billing_address"],
                "payment_id",
            )
            .await,
            self.texts("card", &["card_id", "card_no", "pin"], "card_id")
                .await,
        ]
    }
}

/// A fresh database of the engine with the shop in it, and its target.
async fn shop(engine: &str, dir: &tempfile::TempDir) -> Option<(Db, String)> {
    let (db, target) = match engine {
        "sqlite" => {
            let path = dir.path().join("shop.db");
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .foreign_keys(true);
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(opts)
                .await
                .unwrap();
            (Db::Lite(pool), path.to_string_lossy().into_owned())
        }
        "postgres" => {
            let Some(server) = custos_testkit::pg::server() else {
                eprintln!("PostgreSQL not available: rental-shop tests on PostgreSQL skipped");
                return None;
            };
            let url = server.create_database("rental").await;
            (Db::Pg(sqlx::PgPool::connect(&url).await.unwrap()), url)
        }
        _ => {
            let url = custos_testkit::mysql::server()?
                .create_database("rental")
                .await;
            (Db::My(sqlx::MySqlPool::connect(&url).await.unwrap()), url)
        }
    };
    for s in SCHEMA.iter().chain(DATA) {
        db.exec(s).await;
    }
    Some((db, target))
}

fn setting(engine: &str) -> &'static str {
    if engine == "sqlite" {
        "path_env"
    } else {
        "url_env"
    }
}

async fn connector(m: &DataMap, target: &str) -> Result<SqlConnector, ConnectorError> {
    let target = target.to_owned();
    let env = move |k: &str| (k == "SHOP_DB").then(|| target.clone());
    SqlConnector::connect(m, &m.systems[0], &env, KEY).await
}

/// The message of a `Mismatch`, an error that is never retried; any
/// other outcome fails the test.
fn mismatch<T: std::fmt::Debug>(engine: &str, res: Result<T, ConnectorError>) -> String {
    match res {
        Err(e @ ConnectorError::Mismatch { .. }) => {
            assert!(!e.is_transient(), "{engine}: {e}");
            e.to_string()
        }
        other => panic!("{engine}: expected a mismatch, got {other:?}"),
    }
}

/// What the executor learns of a person from one email: identities found
/// in rows, merged until nothing new appears.
async fn discover(conn: &SqlConnector, email: &str) -> Person {
    let mut p = Person::new();
    p.add(IdentityKind::Email, email);
    for _ in 0..4 {
        let more = conn.identify(&p).await.unwrap();
        if !p.merge(&more) {
            break;
        }
    }
    p
}

async fn namespaces_keep_customers_and_staff_apart(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some((_db, target)) = shop(engine, &dir).await else {
        return;
    };
    let m = map(engine, setting(engine), NAMESPACED, "");
    let conn = connector(&m, &target).await.unwrap();
    let mary = discover(&conn, "mary@shop.example").await;
    assert_eq!(mary.values(IdentityKind::UserId)[0].expose(), "4");
    let access = conn.access(&mary).await.unwrap();
    let rows = |id: &str| {
        access
            .iter()
            .find(|e| e.dataset.as_str() == id)
            .unwrap()
            .records
            .clone()
    };
    assert_eq!(rows("customer").len(), 1);
    assert_eq!(rows("customer")[0]["first_name"], "Mary");
    assert_eq!(rows("payment").len(), 1);
    // Staff member 4 (Jon) is someone else.
    assert!(rows("staff").is_empty(), "{engine}: {:?}", rows("staff"));
    // And the other way round: Jon's staff id finds no customer 4.
    let jon = discover(&conn, "jon@shop.example").await;
    assert!(jon.values(IdentityKind::UserId).is_empty());
    assert_eq!(
        jon.values_in(IdentityKind::UserId, Some("staff"))[0].expose(),
        "4"
    );
    let access = conn.access(&jon).await.unwrap();
    let count = |id: &str| {
        access
            .iter()
            .find(|e| e.dataset.as_str() == id)
            .unwrap()
            .records
            .len()
    };
    assert_eq!(
        (count("staff"), count("customer"), count("payment")),
        (1, 0, 0),
        "{engine}"
    );
}

async fn erasure_fits_the_columns_and_keeps_retained_rows(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some((db, target)) = shop(engine, &dir).await else {
        return;
    };
    let m = map(engine, setting(engine), NAMESPACED, "");
    let conn = connector(&m, &target).await.unwrap();
    let mary = discover(&conn, "mary@shop.example").await;
    let before = db.everything().await;
    let plan = conn.plan_erasure(&mary).await.unwrap();
    let payment = plan
        .iter()
        .find(|o| o.dataset.as_str() == "payment")
        .unwrap()
        .clone();
    assert_eq!(
        (payment.found, payment.retained, payment.deleted),
        (1, 1, 0)
    );
    assert_eq!(payment.anonymized_fields, ["billing_address"]);
    assert_eq!(db.everything().await, before, "the dry run changed nothing");

    let done = conn.erase(&mary).await.unwrap();
    let get = |id: &str| {
        done.iter()
            .find(|o| o.dataset.as_str() == id)
            .unwrap()
            .clone()
    };
    assert_eq!(get("customer").anonymized, 1, "{engine}: {done:?}");
    assert_eq!(
        get("customer").anonymized_fields,
        ["email", "first_name", "last_name", "phone"]
    );
    let p = get("payment");
    assert_eq!((p.retained, p.deleted), (1, 0), "{engine}: {p:?}");
    assert_eq!(
        p.retained_ground.as_deref(),
        Some("§147 AO: fiscal records")
    );
    assert_eq!(p.retained_until.as_deref(), Some("10y from payment_date"));
    assert_eq!(p.anonymized_fields, ["billing_address"]);
    assert_eq!(get("staff").found, 0);

    let after = db.everything().await;
    // Staff untouched; the other customer untouched.
    assert_eq!(after[0], before[0]);
    assert_eq!(after[1][0], before[1][0]);
    // Mary's names fit VARCHAR(20), her phone VARCHAR(10): hex tokens.
    let mary_row: Vec<&str> = after[1][1].split('|').collect();
    assert_eq!(mary_row[0], "4");
    for (i, len) in [(1, 20), (2, 20), (4, 10)] {
        let v = mary_row[i];
        assert_eq!(v.len(), len, "{engine}: {mary_row:?}");
        assert!(
            v.chars().all(|c| c.is_ascii_hexdigit()),
            "{engine}: {mary_row:?}"
        );
    }
    assert_ne!(mary_row[1], mary_row[2], "a token per column");
    assert_eq!(mary_row[3], "-");
    // The payment stays, its billing address nulled (issue 16, case 4).
    assert_eq!(after[2], ["16050|4|-", "16051|3|47 MySakila Drive"]);
    // Idempotent.
    let again = conn.erase(&mary).await.unwrap();
    assert!(
        again.iter().all(|o| o.anonymized == 0 && o.deleted == 0),
        "{again:?}"
    );
    assert_eq!(db.everything().await, after);
}

async fn unfit_columns_fail_first_and_constraints_fail_at_once(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some((db, target)) = shop(engine, &dir).await else {
        return;
    };
    let before = db.everything().await;
    // A 4-character NOT NULL pin: the plan fails before anything runs.
    let m = map(engine, setting(engine), NAMESPACED, CARD_PIN);
    let conn = connector(&m, &target).await.unwrap();
    let mary = discover(&conn, "mary@shop.example").await;
    for res in [conn.plan_erasure(&mary).await, conn.erase(&mary).await] {
        let message = mismatch(engine, res);
        assert!(
            message.contains("card.pin")
                && message.contains("dataset card")
                && message.contains("erasure: delete")
                && !message.contains("1234"),
            "{engine}: {message}"
        );
    }
    assert_eq!(db.everything().await, before);
    // One placeholder for every number of a UNIQUE column: the catalog
    // says it cannot be, before anything runs (and `map check --connect`
    // says so before any request).
    let m = map(engine, setting(engine), NAMESPACED, CARD_NUMBER);
    let conn = connector(&m, &target).await.unwrap();
    let refusals = conn.refusals();
    assert!(
        matches!(refusals.as_slice(), [one] if one.message.contains("card.card_no is UNIQUE")),
        "{engine}: {refusals:?}"
    );
    for res in [conn.plan_erasure(&mary).await, conn.erase(&mary).await] {
        let message = mismatch(engine, res);
        assert!(
            message.contains("card.card_no is UNIQUE")
                && message.contains("keyed_hash")
                && !message.contains("4000"),
            "{engine}: {message}"
        );
    }
    assert_eq!(db.everything().await, before);
    // A placeholder its CHECK constraint refuses (which the catalog does
    // not read): refused by the database, which is final (no retry),
    // names the table and column, and rolls back the whole erasure.
    let m = map(engine, setting(engine), NAMESPACED, CARD_BRAND);
    let conn = connector(&m, &target).await.unwrap();
    assert!(conn.refusals().is_empty());
    let message = mismatch(engine, conn.erase(&mary).await);
    assert!(
        message.contains("anonymizing card")
            && message.contains("brand")
            && !message.contains("visa"),
        "{engine}: {message}"
    );
    assert_eq!(db.everything().await, before);
}

/// `map check --connect` on the shop (issue 16): the lookups no index
/// serves, each with a `CREATE INDEX` that this engine accepts and that
/// serves it once run; the table outside the map that references one of
/// it; the column no placeholder fits — all from the catalog, no row read.
async fn the_catalog_names_scans_refusals_and_undeclared_references(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some((db, target)) = shop(engine, &dir).await else {
        return;
    };
    let before = db.everything().await;
    let m = map(engine, setting(engine), NAMESPACED, "");
    let found = connector(&m, &target).await.unwrap().inspect();
    assert!(found.refusals.is_empty(), "{engine}: {:?}", found.refusals);
    let scanned: Vec<(&str, &str)> = found
        .scans
        .iter()
        .map(|s| (s.table.as_str(), s.column.as_str()))
        .collect();
    // Emails compare case-insensitively and nothing indexes them.
    for want in [("customer", "email"), ("staff", "email")] {
        assert!(scanned.contains(&want), "{engine}: {scanned:?}");
    }
    // Primary keys serve every lookup by them.
    assert!(
        !scanned.contains(&("customer", "customer_id")),
        "{scanned:?}"
    );
    assert!(!scanned.contains(&("staff", "staff_id")), "{scanned:?}");
    if engine != "mysql" {
        // InnoDB indexes foreign keys itself; the others do not.
        assert!(scanned.contains(&("payment", "customer_id")), "{scanned:?}");
        assert!(scanned.contains(&("card", "customer_id")), "{scanned:?}");
    }
    let email = found
        .scans
        .iter()
        .find(|s| s.table == "customer" && s.column == "email")
        .unwrap();
    assert_eq!(email.dataset.as_deref(), Some("customer"));
    assert_eq!(email.lookup, "identity email");
    assert!(email.fix.starts_with("CREATE INDEX"), "{}", email.fix);
    if engine != "mysql" {
        assert!(email.fix.contains("lower("), "{}", email.fix);
    }
    assert!(
        found
            .undeclared
            .iter()
            .any(|u| u.message.contains("table card is not in the map")
                && u.message.contains("customer.customer_id")),
        "{engine}: {:?}",
        found.undeclared
    );
    // The catalog was only read.
    assert_eq!(db.everything().await, before);
    // Every index named is valid SQL here and serves its lookup.
    for s in &found.scans {
        db.exec(&s.fix).await;
    }
    let again = connector(&m, &target).await.unwrap().inspect();
    assert!(again.scans.is_empty(), "{engine}: {:?}", again.scans);
    // A 4-character NOT NULL pin no placeholder fits: named before any
    // request runs.
    let m = map(engine, setting(engine), NAMESPACED, CARD_PIN);
    let refusals = connector(&m, &target).await.unwrap().refusals();
    assert!(
        matches!(refusals.as_slice(), [one] if one.message.contains("card.pin")
            && one.message.contains("erasure: delete")
            && one.field.as_deref() == Some("pin")),
        "{engine}: {refusals:?}"
    );
}

/// An access within 2 s of reading the same person's rows reads nothing
/// again (so a row deleted in between still shows); after that window, for
/// any other person, or after an erasure, it reads the tables.
async fn an_access_after_discovery_reuses_its_rows(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some((db, target)) = shop(engine, &dir).await else {
        return;
    };
    let m = map(engine, setting(engine), NAMESPACED, "");
    let conn = connector(&m, &target).await.unwrap();
    let mary = discover(&conn, "mary@shop.example").await;
    let payments = |a: &[custos_connectors::Export]| {
        a.iter()
            .find(|e| e.dataset.as_str() == "payment")
            .unwrap()
            .records
            .len()
    };
    conn.identify(&mary).await.unwrap();
    db.exec("DELETE FROM payment WHERE payment_id = 16050")
        .await;
    // The step that counts and the archive that writes: the same rows.
    assert_eq!(
        payments(&conn.access(&mary).await.unwrap()),
        1,
        "{engine}: reused"
    );
    assert_eq!(
        payments(&conn.access(&mary).await.unwrap()),
        1,
        "{engine}: reused"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        payments(&conn.access(&mary).await.unwrap()),
        0,
        "{engine}: read again"
    );
    // Another person's discovery is not this one's access.
    let linda = discover(&conn, "linda@shop.example").await;
    conn.identify(&linda).await.unwrap();
    db.exec("INSERT INTO payment VALUES (16052, 4, 3, NULL, 1.00, '2024-02-01')")
        .await;
    assert_eq!(payments(&conn.access(&mary).await.unwrap()), 1, "{engine}");
    // An erasure forgets what was kept.
    conn.identify(&mary).await.unwrap();
    db.exec("DELETE FROM payment WHERE payment_id = 16052")
        .await;
    let _ = conn.plan_erasure(&mary).await.unwrap();
    conn.erase(&linda).await.unwrap();
    assert_eq!(payments(&conn.access(&mary).await.unwrap()), 0, "{engine}");
}

/// NOT NULL columns that are neither text nor references: an integer gets
/// a keyed number of the row; a date fails the plan before anything runs,
/// naming the column and the fix, until the map gives it a placeholder of
/// its type.
async fn not_null_dates_need_a_placeholder_and_numbers_get_a_keyed_one(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some((db, target)) = shop(engine, &dir).await else {
        return;
    };
    let with = |birth: &str| {
        let src = MAP
            .replace("__KIND__", engine)
            .replace("__SETTING__", setting(engine))
            .replace("__STAFF_ID__", NAMESPACED)
            .replace("__CARD__", "")
            .replace(
                "          - { name: phone, category: user.contact.phone_number }\n",
                &format!(
                    "          - {{ name: phone, category: user.contact.phone_number }}\n          \
                     - {{ name: birth_date, category: user.demographic.date_of_birth{birth} }}\n          \
                     - {{ name: loyalty_no, category: user.unique_id }}\n"
                ),
            );
        custos_map::load_str(&src, "rental.yaml").unwrap().0
    };
    let dates = || async {
        db.texts(
            "customer",
            &["customer_id", "birth_date", "loyalty_no"],
            "customer_id",
        )
        .await
    };
    let before = dates().await;
    let m = with("");
    let conn = connector(&m, &target).await.unwrap();
    let refusals = conn.refusals();
    assert!(
        matches!(refusals.as_slice(), [one] if one.message.contains("customer.birth_date")),
        "{engine}: {refusals:?}"
    );
    let mary = discover(&conn, "mary@shop.example").await;
    let message = mismatch(engine, conn.erase(&mary).await);
    assert!(
        message.contains("customer.birth_date")
            && message.contains("placeholder")
            && !message.contains("1980"),
        "{engine}: {message}"
    );
    assert_eq!(dates().await, before);
    let m = with(", erasure: { anonymize: { placeholder: \"1900-01-01\" } }");
    let conn = connector(&m, &target).await.unwrap();
    assert!(conn.refusals().is_empty());
    conn.erase(&mary).await.unwrap();
    let after = dates().await;
    assert_eq!(after[0], before[0], "Linda untouched");
    let row: Vec<&str> = after[1].split('|').collect();
    assert_eq!(row[..2], ["4", "1900-01-01"], "{engine}: {after:?}");
    assert!(
        row[2].starts_with('-'),
        "a keyed negative number: {after:?}"
    );
}

/// What a new user gets wrong, named from the catalog before any request:
/// a view mapped as a table, a placeholder not of its column's type or
/// too long, one placeholder for a column unique through `lower(...)`, a
/// reference the map declares otherwise than the database.
async fn the_catalog_names_what_a_map_gets_wrong(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some((db, target)) = shop(engine, &dir).await else {
        return;
    };
    db.exec("CREATE VIEW customer_list AS SELECT customer_id, email FROM customer")
        .await;
    let src = |edit: &dyn Fn(String) -> String| {
        let src = MAP
            .replace("__KIND__", engine)
            .replace("__SETTING__", setting(engine))
            .replace("__STAFF_ID__", NAMESPACED)
            .replace("__CARD__", "");
        custos_map::load_str(&edit(src), "rental.yaml").unwrap().0
    };
    // A view is not where rows are erased.
    let m = src(&|s| s.replace("table: customer\n", "table: customer_list\n"));
    let message = mismatch(engine, connector(&m, &target).await);
    assert!(
        message.contains("customer_list is a view")
            || (engine == "mysql" && message.contains("customer_list does not exist")),
        "{engine}: {message}"
    );
    // Placeholders: text in a NOT NULL date refused; a nullable column's
    // too-long placeholder would be NULL (a warning).
    let m = src(&|s| {
        s.replace(
            "          - { name: phone, category: user.contact.phone_number }\n",
            "          - { name: phone, category: user.contact.phone_number }\n          \
             - { name: birth_date, category: user.demographic.date_of_birth, erasure: { anonymize: { placeholder: Removed } } }\n          \
             - { name: loyalty_no, category: user.unique_id, erasure: { anonymize: { placeholder: none } } }\n",
        )
        .replace(
            "{ name: email, category: user.contact.email, identity: email }\n          - { name: phone",
            "{ name: email, category: user.contact.email, identity: email, erasure: { anonymize: { placeholder: nobody-at-all-and-nowhere-at-all@removed.example.invalid } } }\n          - { name: phone",
        )
        .replace(
            "{ name: staff_id, category: system.operations, references: staff.staff_id }",
            "{ name: staff_id, category: system.operations, references: customer.customer_id }",
        )
    });
    let found = connector(&m, &target).await.unwrap().inspect();
    let refused: Vec<(&str, &str)> = found
        .refusals
        .iter()
        .map(|f| (f.field.as_deref().unwrap(), f.message.as_str()))
        .collect();
    assert!(
        matches!(refused.as_slice(), [("birth_date", m)] if m.contains("its placeholder \"Removed\"")),
        "{engine}: {refused:?}"
    );
    assert!(
        found
            .unfit
            .iter()
            .any(|f| f.field.as_deref() == Some("email") && f.message.contains("writes NULL")),
        "{engine}: {:?}",
        found.unfit
    );
    // `none` in a NOT NULL integer: a keyed value of the row instead.
    assert!(
        found
            .unfit
            .iter()
            .any(|f| f.field.as_deref() == Some("loyalty_no")
                && f.message.contains("a keyed value of the row")),
        "{engine}: {:?}",
        found.unfit
    );
    assert!(
        found
            .undeclared
            .iter()
            .any(|f| f.field.as_deref() == Some("staff_id")
                && f.message
                    .contains("references customer.customer_id in the map")),
        "{engine}: {:?}",
        found.undeclared
    );
    // Unique through lower(email): one placeholder for all is refused.
    if engine != "mysql" {
        db.exec("CREATE UNIQUE INDEX customer_email_ci ON customer (lower(email))")
            .await;
        let m = src(&|s| {
            s.replace(
                "{ name: email, category: user.contact.email, identity: email }\n          - { name: phone",
                "{ name: email, category: user.contact.email, identity: email, erasure: { anonymize: { placeholder: gone@example.invalid } } }\n          - { name: phone",
            )
        });
        let refusals = connector(&m, &target).await.unwrap().refusals();
        assert!(
            refusals
                .iter()
                .any(|f| f.message.contains("customer.email is UNIQUE")),
            "{engine}: {refusals:?}"
        );
    }
}

/// A rectification never changes a key: a map `references:` (or a
/// catalog foreign key) is refused before anything changes.
async fn a_rectification_never_changes_a_key(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some((db, target)) = shop(engine, &dir).await else {
        return;
    };
    let before = db.everything().await;
    let m = map(engine, setting(engine), NAMESPACED, "");
    let conn = connector(&m, &target).await.unwrap();
    let mary = discover(&conn, "mary@shop.example").await;
    let change = |field: &str| {
        vec![custos_connectors::FieldChange {
            field: field.to_owned(),
            value: Some(custos_core::secret::Personal::new("3".to_owned())),
        }]
    };
    for field in ["customer_id", "staff_id"] {
        let message = mismatch(engine, conn.rectify(&mary, &change(field)).await);
        assert!(message.contains("never rectified"), "{engine}: {message}");
    }
    // A value the column cannot hold is refused without naming the value.
    let mut m = map(engine, setting(engine), NAMESPACED, "");
    m.systems[0].datasets[0].fields.push(
        serde_json::from_value(
            serde_json::json!({"name": "loyalty_no", "category": "user.unique_id"}),
        )
        .unwrap(),
    );
    let conn = connector(&m, &target).await.unwrap();
    let bad = vec![custos_connectors::FieldChange {
        field: "loyalty_no".to_owned(),
        value: Some(custos_core::secret::Personal::new(
            "Elm Street 5".to_owned(),
        )),
    }];
    let message = mismatch(engine, conn.rectify(&mary, &bad).await);
    assert!(
        message.contains("customer.loyalty_no")
            && message.contains("does not fit")
            && !message.contains("Elm"),
        "{engine}: {message}"
    );
    assert_eq!(db.everything().await, before);
}

/// Visits found by the customer's email, which is unique in no table.
const VISIT: &str = r#"
      - id: visit
        table: visit
        subject: { via: customer_email }
        purposes: [rental]
        erasure: delete
        retention: { period: 30d, from_event: account_closed }
        fields:
          - { name: visit_id, category: system.operations, primary_key: true }
          - { name: customer_email, category: user.contact.email, references: customer.email }"#;

/// A database shared by tenants (`tenant_values`) is never read for no
/// tenant, and a dataset reached only through links must land on a key
/// unique in its table: an email that is unique only per tenant could
/// match another tenant's rows.
async fn a_database_shared_by_tenants_is_confined_or_refused(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some((db, target)) = shop(engine, &dir).await else {
        return;
    };
    db.exec("CREATE TABLE visit (visit_id INTEGER PRIMARY KEY, customer_email VARCHAR(50))")
        .await;
    let shared = |card: &str| {
        let mut m = map(engine, setting(engine), NAMESPACED, card);
        m.systems[0].tenant_values = [("acme".to_owned(), "1".to_owned())].into();
        m
    };
    // Unshared, the visit link is followed as before.
    assert!(
        connector(&map(engine, setting(engine), NAMESPACED, VISIT), &target)
            .await
            .is_ok()
    );
    let message = mismatch(engine, connector(&shared(VISIT), &target).await);
    assert!(
        message.contains("dataset visit")
            && message.contains("customer.email, which is not unique"),
        "{engine}: {message}"
    );
    let m = shared("");
    let mut mary = Person::new();
    mary.add(IdentityKind::Email, "mary@shop.example");
    match connector(&m, &target).await.unwrap().access(&mary).await {
        Err(ConnectorError::Config { message, .. }) => {
            assert!(message.contains("shared by tenants"), "{engine}: {message}")
        }
        other => panic!("{engine}: expected a refusal, got {other:?}"),
    }
    let confined = connector(&m, &target).await.unwrap().for_tenant("1");
    assert!(confined.access(&mary).await.is_ok(), "{engine}");
}

/// Every missing table and column is named at once.
async fn a_map_that_is_not_the_schema_is_named_whole(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some((_db, target)) = shop(engine, &dir).await else {
        return;
    };
    let src = MAP
        .replace("__KIND__", engine)
        .replace("__SETTING__", setting(engine))
        .replace("__STAFF_ID__", NAMESPACED)
        .replace("__CARD__", "")
        .replace("{ name: phone,", "{ name: mobile,")
        .replace("table: staff", "table: employees");
    let (m, _) = custos_map::load_str(&src, "rental.yaml").unwrap();
    let message = mismatch(engine, connector(&m, &target).await);
    assert!(
        message.contains("table customer has no column mobile")
            && message.contains("table employees does not exist"),
        "{engine}: {message}"
    );
}

macro_rules! engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name("postgres").await } )* }
        mod mysql { $( #[tokio::test] async fn $name() { super::$name("mysql").await } )* }
    };
}

engines!(
    namespaces_keep_customers_and_staff_apart,
    erasure_fits_the_columns_and_keeps_retained_rows,
    unfit_columns_fail_first_and_constraints_fail_at_once,
    the_catalog_names_scans_refusals_and_undeclared_references,
    a_map_that_is_not_the_schema_is_named_whole,
    an_access_after_discovery_reuses_its_rows,
    not_null_dates_need_a_placeholder_and_numbers_get_a_keyed_one,
    the_catalog_names_what_a_map_gets_wrong,
    a_rectification_never_changes_a_key,
    a_database_shared_by_tenants_is_confined_or_refused,
);
