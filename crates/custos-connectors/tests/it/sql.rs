//! The SQL connector against a real SQLite file, a real PostgreSQL and a
//! real MariaDB database: the same application schema (in each engine's
//! dialect), map and assertions on all three.

use std::collections::BTreeMap;

use custos_connectors::sql::SqlConnector;
use custos_connectors::{Connector, ConnectorError, DatasetOutcome, FieldChange, Person};
use custos_core::secret::Personal;
use custos_map::{DataMap, IdentityKind};
use serde_json::{json, Value};

const KEY: [u8; 32] = [7; 32];

/// A small SaaS: users with addresses and 1:1 profiles, threaded comments
/// (self-reference, RESTRICT), retained orders, posts ← post_tags (a
/// three-level chain with a composite key) and likes that CASCADE from
/// posts.
const SCHEMA: &[&str] = &[
    "CREATE TABLE addresses (id INTEGER PRIMARY KEY, street TEXT, city TEXT)",
    "CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, \
     address_id INTEGER REFERENCES addresses(id))",
    "CREATE TABLE profiles (user_id BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE, bio TEXT)",
    "CREATE TABLE comments (id INTEGER PRIMARY KEY, author_id BIGINT REFERENCES users(id), \
     parent_id INTEGER REFERENCES comments(id) ON DELETE RESTRICT, body TEXT NOT NULL, author_name TEXT)",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id BIGINT NOT NULL REFERENCES users(id), \
     total_cents INTEGER NOT NULL, billing_name TEXT)",
    "CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id BIGINT NOT NULL REFERENCES users(id), title TEXT)",
    "CREATE TABLE post_tags (post_id INTEGER NOT NULL REFERENCES posts(id) ON DELETE RESTRICT, \
     tag TEXT NOT NULL, PRIMARY KEY (post_id, tag))",
    "CREATE TABLE likes (id INTEGER PRIMARY KEY, user_id BIGINT, \
     post_id INTEGER NOT NULL REFERENCES posts(id) ON DELETE CASCADE)",
];

/// Alice (user 1) is the subject; Bob (2) and Carol (3) are not. Everything
/// of Alice's mentions "alice"; nothing of the others does.
/// [`SCHEMA`] for MySQL: VARCHAR where a TEXT column is a key (MySQL
/// indexes TEXT only by prefix), and table-level FOREIGN KEY clauses (MySQL
/// parses but ignores column-level REFERENCES).
const SCHEMA_MY: &[&str] = &[
    "CREATE TABLE addresses (id INTEGER PRIMARY KEY, street TEXT, city TEXT)",
    "CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(255) NOT NULL UNIQUE, name TEXT, \
     address_id INTEGER, FOREIGN KEY (address_id) REFERENCES addresses(id))",
    "CREATE TABLE profiles (user_id BIGINT PRIMARY KEY, bio TEXT, \
     FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE)",
    "CREATE TABLE comments (id INTEGER PRIMARY KEY, author_id BIGINT, parent_id INTEGER, \
     body TEXT NOT NULL, author_name TEXT, FOREIGN KEY (author_id) REFERENCES users(id), \
     FOREIGN KEY (parent_id) REFERENCES comments(id) ON DELETE RESTRICT)",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id BIGINT NOT NULL, \
     total_cents INTEGER NOT NULL, billing_name TEXT, FOREIGN KEY (customer_id) REFERENCES users(id))",
    "CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id BIGINT NOT NULL, title TEXT, \
     FOREIGN KEY (author_id) REFERENCES users(id))",
    "CREATE TABLE post_tags (post_id INTEGER NOT NULL, tag VARCHAR(64) NOT NULL, \
     PRIMARY KEY (post_id, tag), FOREIGN KEY (post_id) REFERENCES posts(id) ON DELETE RESTRICT)",
    "CREATE TABLE likes (id INTEGER PRIMARY KEY, user_id BIGINT, post_id INTEGER NOT NULL, \
     FOREIGN KEY (post_id) REFERENCES posts(id) ON DELETE CASCADE)",
];

const DATA: &[&str] = &[
    "INSERT INTO addresses VALUES (10, '1 Alice Street', 'Aliceville'), (20, '2 Bob Road', 'Bobtown'), \
     (30, '3 Nobody Lane', 'Nowhere')",
    "INSERT INTO users VALUES (1, 'Alice@Example.com', 'Alice Liddell', 10), \
     (2, 'bob@example.com', 'Bob Builder', 20), (3, 'carol@example.com', 'Carol Danvers', NULL)",
    "INSERT INTO profiles VALUES (1, 'alice likes tea'), (2, 'bob likes bricks')",
    // 100 ← 101 (Bob) ← 102 (Alice); 103 ← 104 ← 105 all Alice's; 106 (Carol) ← 107 (Alice).
    "INSERT INTO comments VALUES (100, 1, NULL, 'alice root comment', 'Alice')",
    "INSERT INTO comments VALUES (101, 2, 100, 'bob replies', 'Bob')",
    "INSERT INTO comments VALUES (102, 1, 101, 'alice answers', 'Alice')",
    "INSERT INTO comments VALUES (103, 1, NULL, 'alice second root', 'Alice')",
    "INSERT INTO comments VALUES (104, 1, 103, 'alice replies to herself', 'Alice')",
    "INSERT INTO comments VALUES (105, 1, 104, 'alice goes deeper', 'Alice')",
    "INSERT INTO comments VALUES (106, 3, NULL, 'carol root', 'Carol')",
    "INSERT INTO comments VALUES (107, 1, 106, 'alice replies to carol', 'Alice')",
    "INSERT INTO orders VALUES (500, 1, 4200, 'Alice Liddell'), (501, 2, 1300, 'Bob Builder')",
    "INSERT INTO posts VALUES (300, 1, 'alice post bob liked'), (301, 1, 'alice post nobody liked'), \
     (302, 2, 'bob post')",
    "INSERT INTO post_tags VALUES (300, 'rust'), (301, 'sql'), (301, 'gdpr'), (302, 'misc')",
    "INSERT INTO likes VALUES (700, 2, 300), (701, 1, 302), (702, 1, 300)",
];

const TABLES: &[(&str, &[&str])] = &[
    ("addresses", &["id", "street", "city"]),
    ("users", &["id", "email", "name", "address_id"]),
    ("profiles", &["user_id", "bio"]),
    (
        "comments",
        &["id", "author_id", "parent_id", "body", "author_name"],
    ),
    (
        "orders",
        &["id", "customer_id", "total_cents", "billing_name"],
    ),
    ("posts", &["id", "author_id", "title"]),
    ("post_tags", &["post_id", "tag"]),
    ("likes", &["id", "user_id", "post_id"]),
];

const MAP: &str = r#"
version: 1
organisation:
  controller: Test GmbH
  contact: privacy@test.example
purposes:
  - id: account
    title: Accounts
    legal_basis: contract
    subjects: [customer]
  - id: billing
    title: Invoicing
    legal_basis: legal_obligation
    subjects: [customer]
systems:
  - id: app_db
    kind: __KIND__
    connection: { __SETTING__: APP_DB }
    datasets:
      - id: users
        table: users
        subject: { identity: id }
        purposes: [account]
        erasure: delete
        retention: { period: 30d, from_event: account_closed }
        fields:
          - { name: id, category: user.unique_id, identity: user_id, primary_key: true }
          - { name: email, category: user.contact.email, identity: email }
          - { name: name, category: user.name }
          - { name: address_id, category: user.contact.address, references: addresses.id }__EXTRA__
      - id: addresses
        table: addresses
        subject: { referenced_by: users.address_id }
        purposes: [account]
        erasure: delete
        retention: { period: 30d, from_event: account_closed }
        fields:
          - { name: id, category: system.operations, primary_key: true }
          - { name: street, category: user.contact.address.street }
          - { name: city, category: user.contact.address.city }
      - id: profiles
        table: profiles
        subject: { via: user_id }
        purposes: [account]
        erasure: delete
        retention: { period: 30d, from_event: account_closed }
        fields:
          - { name: user_id, category: user.unique_id, references: users.id, primary_key: true }
          - { name: bio, category: user.content }
      - id: comments
        table: comments
        subject: { via: author_id }
        purposes: [account]
        erasure: delete
        retention: { period: 3y, from_event: account_closed }
        fields:
          - { name: id, category: system.operations, primary_key: true }
          - { name: author_id, category: user.unique_id, references: users.id }
          - { name: parent_id, category: system.operations, references: comments.id }
          - name: body
            category: user.content.public
            erasure: { anonymize: { placeholder: "[deleted]" } }
          - { name: author_name, category: user.name }
      - id: orders
        table: orders
        subject: { via: customer_id }
        purposes: [billing]
        erasure:
          retain:
            ground: "§147 AO: fiscal records"
            period: 10y
            from_event: order_placed
        fields:
          - { name: id, category: system.operations, primary_key: true }
          - { name: customer_id, category: user.unique_id, references: users.id }
          - { name: total_cents, category: user.financial }
          - { name: billing_name, category: user.name }
      - id: posts
        table: posts
        subject: { via: author_id }
        purposes: [account]
        erasure: delete
        retention: { period: 30d, from_event: account_closed }
        fields:
          - { name: id, category: system.operations, primary_key: true }
          - { name: author_id, category: user.unique_id, references: users.id }
          - { name: title, category: user.content }
      - id: post_tags
        table: post_tags
        subject: { via: post_id }
        purposes: [account]
        erasure: delete
        fields:
          - { name: post_id, category: system.operations, references: posts.id }
          - { name: tag, category: system.operations }
      - id: likes
        table: likes
        subject: { via: user_id }
        purposes: [account]
        erasure: { anonymize: keyed_hash }
        retention: { period: 3y, from_event: account_closed }
        fields:
          - { name: id, category: system.operations, primary_key: true }
          - { name: user_id, category: user.unique_id, references: users.id }
          - { name: post_id, category: system.operations, references: posts.id }__DATASETS__
"#;

fn map(kind: &str, setting: &str, extra: &str) -> DataMap {
    map_with(kind, setting, extra, "")
}

fn map_with(kind: &str, setting: &str, extra: &str, datasets: &str) -> DataMap {
    let src = MAP
        .replace("__KIND__", kind)
        .replace("__SETTING__", setting)
        .replace("__EXTRA__", extra)
        .replace("__DATASETS__", datasets);
    match custos_map::load_str(&src, "test.yaml") {
        Ok((m, _)) => m,
        Err(d) => panic!("test map invalid: {d:#?}"),
    }
}

pub(crate) enum Db {
    Lite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
    My(sqlx::MySqlPool),
}

impl Db {
    pub(crate) async fn exec(&self, sql: &str) {
        match self {
            Db::Lite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Db::Pg(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Db::My(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn setup(&self) {
        let schema = match self {
            Db::My(_) => SCHEMA_MY,
            _ => SCHEMA,
        };
        for s in schema.iter().chain(DATA) {
            self.exec(s).await;
        }
    }

    /// `sql` in this engine's dialect: MySQL casts to CHAR, not TEXT (its
    /// `||` concatenates: sqlx sets PIPES_AS_CONCAT).
    fn dialect(&self, sql: &str) -> String {
        match self {
            Db::My(_) => sql.replace(" AS TEXT)", " AS CHAR)"),
            _ => sql.to_owned(),
        }
    }

    /// The text values of a one-column query.
    pub(crate) async fn texts(&self, sql: &str) -> Vec<String> {
        let sql = self.dialect(sql);
        match self {
            Db::Lite(p) => sqlx::query_scalar(&sql).fetch_all(p).await,
            Db::Pg(p) => sqlx::query_scalar(&sql).fetch_all(p).await,
            // As bytes: MySQL types some text results as BLOB.
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

    /// Every row of a table as a JSON object, in a stable order.
    async fn dump(&self, table: &str) -> Vec<Value> {
        let cols = TABLES.iter().find(|(t, _)| *t == table).unwrap().1;
        let args: Vec<String> = cols.iter().map(|c| format!("'{c}', {c}")).collect();
        let f = match self {
            Db::Lite(_) => "json_object",
            Db::Pg(_) => "json_build_object",
            Db::My(_) => "JSON_OBJECT",
        };
        let sql = format!(
            "SELECT CAST({f}({}) AS TEXT) FROM {table} ORDER BY {}",
            args.join(", "),
            cols.join(", ")
        );
        self.texts(&sql)
            .await
            .iter()
            .map(|t| serde_json::from_str(t).unwrap())
            .collect()
    }

    async fn snapshot(&self) -> BTreeMap<&'static str, Vec<Value>> {
        let mut m = BTreeMap::new();
        for (t, _) in TABLES {
            m.insert(*t, self.dump(t).await);
        }
        m
    }
}

/// Whether a row is one of Alice's (found through her in the map).
fn is_alices(table: &str, row: &Value) -> bool {
    let id = |c: &str| row[c].as_i64().unwrap_or(-1);
    match table {
        "addresses" => id("id") == 10,
        "users" => id("id") == 1,
        "profiles" => id("user_id") == 1,
        "comments" => [100, 102, 103, 104, 105, 107].contains(&id("id")),
        "orders" => id("id") == 500,
        "posts" => [300, 301].contains(&id("id")),
        "post_tags" => [300, 301].contains(&id("post_id")),
        "likes" => [701, 702].contains(&id("id")),
        _ => unreachable!(),
    }
}

fn others(snap: &BTreeMap<&'static str, Vec<Value>>) -> BTreeMap<&'static str, Vec<Value>> {
    snap.iter()
        .map(|(t, rows)| {
            (
                *t,
                rows.iter().filter(|r| !is_alices(t, r)).cloned().collect(),
            )
        })
        .collect()
}

fn row<'a>(
    snap: &'a BTreeMap<&'static str, Vec<Value>>,
    table: &str,
    col: &str,
    id: i64,
) -> Option<&'a Value> {
    snap[table].iter().find(|r| r[col].as_i64() == Some(id))
}

/// Counts and grounds only: the fields anonymised and the retention are
/// checked in `schemas`.
fn counts(outcomes: &[DatasetOutcome]) -> Vec<DatasetOutcome> {
    let mut v = outcomes.to_vec();
    for o in &mut v {
        o.retained_until = None;
        o.anonymized_fields.clear();
    }
    v
}

fn by_dataset(outcomes: &[DatasetOutcome]) -> BTreeMap<String, DatasetOutcome> {
    counts(outcomes)
        .into_iter()
        .map(|o| (o.dataset.to_string(), o))
        .collect()
}

fn outcome(
    dataset: &str,
    found: u64,
    deleted: u64,
    anonymized: u64,
    retained: u64,
    ground: Option<&str>,
) -> DatasetOutcome {
    let mut o = DatasetOutcome::new(dataset.into());
    o.found = found;
    o.deleted = deleted;
    o.anonymized = anonymized;
    o.retained = retained;
    o.retained_ground = ground.map(str::to_owned);
    o
}

fn ids(records: &[serde_json::Map<String, Value>], col: &str) -> Vec<i64> {
    let mut v: Vec<i64> = records.iter().map(|r| r[col].as_i64().unwrap()).collect();
    v.sort_unstable();
    v
}

pub(crate) async fn connector(map: &DataMap, target: &str) -> Result<SqlConnector, ConnectorError> {
    let target = target.to_owned();
    let env = move |k: &str| (k == "APP_DB").then(|| target.clone());
    SqlConnector::connect(map, &map.systems[0], &env, KEY).await
}

/// The whole life of a request against one database.
async fn lifecycle(db: &Db, map: &DataMap, target: &str) {
    db.setup().await;
    let conn = connector(map, target).await.unwrap();

    // identify: an email in another case finds the user id; iterating to
    // the fixpoint adds nothing more.
    let mut alice = Person::new();
    alice.add(IdentityKind::Email, "alice@EXAMPLE.com");
    let learnt = conn.identify(&alice).await.unwrap();
    assert_eq!(
        learnt
            .values(IdentityKind::UserId)
            .iter()
            .map(|v| v.expose().as_str())
            .collect::<Vec<_>>(),
        ["1"]
    );
    assert_eq!(
        learnt
            .values(IdentityKind::Email)
            .iter()
            .map(|v| v.expose().as_str())
            .collect::<Vec<_>>(),
        ["Alice@Example.com"]
    );
    assert!(alice.merge(&learnt));
    assert!(!alice.merge(&conn.identify(&alice).await.unwrap()));

    // access: every row of hers, none of the others'.
    let exports = conn.access(&alice).await.unwrap();
    let ex: BTreeMap<String, _> = exports
        .iter()
        .map(|e| (e.dataset.to_string(), &e.records))
        .collect();
    assert_eq!(ex.len(), 8);
    assert_eq!(ids(ex["users"], "id"), [1]);
    assert_eq!(ex["users"][0]["email"], json!("Alice@Example.com"));
    assert_eq!(ids(ex["addresses"], "id"), [10]);
    assert_eq!(ex["addresses"][0]["street"], json!("1 Alice Street"));
    assert_eq!(ids(ex["profiles"], "user_id"), [1]);
    assert_eq!(ids(ex["comments"], "id"), [100, 102, 103, 104, 105, 107]);
    assert_eq!(ids(ex["orders"], "id"), [500]);
    assert_eq!(ids(ex["posts"], "id"), [300, 301]);
    assert_eq!(ids(ex["post_tags"], "post_id"), [300, 301, 301]);
    assert_eq!(ids(ex["likes"], "id"), [701, 702]);
    assert!(format!("{exports:?}").contains("records: 6"));
    assert!(
        !format!("{exports:?}").contains("Alice"),
        "Export must not print values"
    );

    // plan_erasure: the counts of what erase will do, changing nothing.
    let before = db.snapshot().await;
    let plan = conn.plan_erasure(&alice).await.unwrap();
    assert_eq!(db.snapshot().await, before, "plan_erasure changed data");
    let expected = [
        outcome("users", 1, 0, 0, 1, Some("referenced by orders")),
        outcome("addresses", 1, 1, 0, 0, None),
        outcome("profiles", 1, 1, 0, 0, None),
        outcome("comments", 6, 5, 0, 1, Some("referenced by comments")),
        outcome("orders", 1, 0, 0, 1, Some("§147 AO: fiscal records")),
        outcome("posts", 2, 1, 0, 1, Some("referenced by likes")),
        outcome("post_tags", 3, 3, 0, 0, None),
        outcome("likes", 2, 0, 2, 0, None),
    ];
    assert_eq!(counts(&plan), expected);

    // erase: what the plan said, in one transaction.
    let erased = conn.erase(&alice).await.unwrap();
    assert_eq!(by_dataset(&erased), by_dataset(&expected));
    let after = db.snapshot().await;

    // Nothing of hers is left but the retained order.
    for (t, rows) in &after {
        for r in rows {
            let text = r.to_string().to_lowercase();
            if *t != "orders" {
                assert!(!text.contains("alice"), "trace of the subject in {t}: {r}");
            }
        }
    }
    assert_eq!(
        row(&after, "orders", "id", 500),
        row(&before, "orders", "id", 500)
    );
    // Placeholders where a row had to stay, exactly.
    let u = row(&after, "users", "id", 1).unwrap();
    assert!(u["email"].as_str().unwrap().starts_with("erased:"), "{u}");
    assert_eq!(u["email"].as_str().unwrap().len(), "erased:".len() + 16);
    assert_eq!(u["name"], Value::Null);
    assert_eq!(u["address_id"], Value::Null);
    assert_eq!(
        row(&after, "comments", "id", 100),
        Some(
            &json!({"id": 100, "author_id": null, "parent_id": null, "body": "[deleted]", "author_name": null})
        )
    );
    assert_eq!(
        row(&after, "posts", "id", 300),
        Some(&json!({"id": 300, "author_id": 1, "title": null}))
    );
    for id in [701, 702] {
        let l = row(&after, "likes", "id", id).unwrap();
        assert!(l["user_id"].as_i64().unwrap() < 0, "keyed hash: {l}");
        assert_eq!(
            l["post_id"],
            row(&before, "likes", "id", id).unwrap()["post_id"]
        );
    }
    // Deleted rows are gone.
    assert!(row(&after, "addresses", "id", 10).is_none());
    assert!(row(&after, "profiles", "user_id", 1).is_none());
    for id in [102, 103, 104, 105, 107] {
        assert!(row(&after, "comments", "id", id).is_none(), "comment {id}");
    }
    assert!(row(&after, "posts", "id", 301).is_none());
    assert!(after["post_tags"]
        .iter()
        .all(|r| r["post_id"] == json!(302)));
    // Other people's rows are untouched, to the byte.
    assert_eq!(others(&after), others(&before));

    // erase again: nothing more to do.
    let again = conn.erase(&alice).await.unwrap();
    for o in &again {
        assert_eq!((o.deleted, o.anonymized), (0, 0), "{o:?}");
    }
    assert_eq!(db.snapshot().await, after);
    assert_eq!(conn.plan_erasure(&alice).await.unwrap(), again);

    // Hostile identities find nothing and change nothing.
    let mut evil = Person::new();
    evil.add(IdentityKind::Email, "x' OR '1'='1");
    evil.add(IdentityKind::Email, "%");
    evil.add(IdentityKind::UserId, "\"; DROP TABLE users; --");
    evil.add(IdentityKind::UserId, "../../etc/passwd");
    evil.add(IdentityKind::UserId, "1 OR 1=1");
    evil.add(IdentityKind::UserId, "2\0");
    evil.add(IdentityKind::UserId, "99999999999999999999999");
    evil.add(IdentityKind::UserId, "9223372036854775808");
    evil.add(IdentityKind::UserId, "1 ; DELETE FROM users");
    evil.add(IdentityKind::Email, "\\' OR 1=1 -- ");
    evil.add(IdentityKind::Email, "alice@example.com\u{1F600}");
    evil.add(IdentityKind::Email, "`users`");
    assert!(conn.identify(&evil).await.unwrap().is_empty());
    assert!(conn
        .access(&evil)
        .await
        .unwrap()
        .iter()
        .all(|e| e.records.is_empty()));
    for o in conn.plan_erasure(&evil).await.unwrap() {
        assert_eq!(o, DatasetOutcome::new(o.dataset.clone()));
    }
    for o in conn.erase(&evil).await.unwrap() {
        assert_eq!(o, DatasetOutcome::new(o.dataset.clone()));
    }
    assert_eq!(db.snapshot().await, after);

    // rectify: Bob's name, where a dataset has the field; idempotent.
    let mut bob = Person::new();
    bob.add(IdentityKind::UserId, "2");
    let change = || FieldChange {
        field: "name".to_owned(),
        value: Some(Personal::new("Robert Builder".to_owned())),
    };
    let out = by_dataset(&conn.rectify(&bob, &[change()]).await.unwrap());
    assert_eq!(out["users"].rectified, 1);
    assert_eq!(out["users"].found, 1);
    assert!(out
        .values()
        .filter(|o| o.dataset.as_str() != "users")
        .all(|o| o.rectified == 0));
    assert_eq!(
        row(&db.snapshot().await, "users", "id", 2).unwrap()["name"],
        json!("Robert Builder")
    );
    let out = by_dataset(&conn.rectify(&bob, &[change()]).await.unwrap());
    assert_eq!(out["users"].rectified, 0);
    // Issue 16: the text "null" is a name like any other; JSON null clears.
    for (value, stored) in [(Some("null"), json!("null")), (None, Value::Null)] {
        let set = FieldChange {
            field: "name".to_owned(),
            value: value.map(|v| Personal::new(v.to_owned())),
        };
        let out = by_dataset(&conn.rectify(&bob, &[set]).await.unwrap());
        assert_eq!(out["users"].rectified, 1);
        assert_eq!(
            row(&db.snapshot().await, "users", "id", 2).unwrap()["name"],
            stored
        );
    }
    // A key is never rectified (a value the column cannot hold is tested
    // on a column that is not one, in `schemas`), and the value not named.
    let bad = FieldChange {
        field: "address_id".to_owned(),
        value: Some(Personal::new("Elm Street 5".to_owned())),
    };
    match conn.rectify(&bob, &[bad]).await {
        Err(ConnectorError::Mismatch { message, .. }) => {
            assert!(
                message.contains("address_id of dataset users")
                    && message.contains("never rectified")
                    && !message.contains("Elm"),
                "{message}"
            );
        }
        other => panic!("unexpected: {other:?}"),
    }
    assert_eq!(
        row(&db.snapshot().await, "users", "id", 2).unwrap()["address_id"],
        json!(20)
    );
}

/// A map naming a column or table the database lacks is refused, naming it.
async fn mismatches(db: &Db, kind: &str, setting: &str, target: &str) {
    db.setup().await;
    let m = map(
        kind,
        setting,
        "\n          - { name: nickname, category: user.name }",
    );
    match connector(&m, target).await {
        Err(ConnectorError::Mismatch { message, .. }) => {
            assert!(
                message.contains("nickname") && message.contains("users"),
                "{message}"
            );
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    db.exec("DROP TABLE likes").await;
    match connector(&map(kind, setting, ""), target).await {
        Err(ConnectorError::Mismatch { message, .. }) => {
            assert!(message.contains("likes"), "{message}");
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

/// Tables without a primary key (rows found by `ctid`/`rowid`), and a
/// table the map does not know whose foreign key (ON DELETE CASCADE) would
/// take another row with the subject's address: the address stays as a
/// placeholder instead.
const EXTRA_DATASETS: &str = r#"
      - id: visits
        table: visits
        subject: { via: user_id }
        purposes: [account]
        erasure: delete
        retention: { period: 30d, from_event: account_closed }
        fields:
          - { name: user_id, category: user.unique_id, references: users.id }
          - { name: page, category: user.behavior.browsing_history }
      - id: events
        table: events
        subject: { via: user_id }
        purposes: [account]
        erasure: { anonymize: set_null }
        retention: { period: 30d, from_event: account_closed }
        fields:
          - { name: user_id, category: user.unique_id, references: users.id }
          - { name: what, category: user.behavior }
          - { name: n, category: system.operations }"#;

async fn unmapped_and_keyless(db: &Db, kind: &str, setting: &str, target: &str) {
    db.setup().await;
    let shipments = match db {
        Db::My(_) => "CREATE TABLE shipments (id INTEGER PRIMARY KEY, address_id INTEGER, \
                      FOREIGN KEY (address_id) REFERENCES addresses(id) ON DELETE CASCADE)",
        _ => "CREATE TABLE shipments (id INTEGER PRIMARY KEY, address_id INTEGER REFERENCES addresses(id) ON DELETE CASCADE)",
    };
    for s in [
        "CREATE TABLE visits (user_id BIGINT, page TEXT)",
        "CREATE TABLE events (user_id BIGINT, what TEXT, n INTEGER)",
        shipments,
        "INSERT INTO visits VALUES (1, 'alice page'), (1, 'alice page'), (2, 'bob page')",
        "INSERT INTO events VALUES (1, 'alice clicked', 1), (1, 'alice scrolled', 2), (2, 'bob clicked', 3)",
        "INSERT INTO shipments VALUES (1, 10)",
    ] {
        db.exec(s).await;
    }
    let m = map_with(kind, setting, "", EXTRA_DATASETS);
    let conn = connector(&m, target).await.unwrap();
    let mut alice = Person::new();
    alice.add(IdentityKind::UserId, "1");
    let out = by_dataset(&conn.erase(&alice).await.unwrap());
    assert_eq!(out["visits"], outcome("visits", 2, 2, 0, 0, None));
    assert_eq!(out["events"], outcome("events", 2, 0, 2, 0, None));
    assert_eq!(
        out["addresses"],
        outcome("addresses", 1, 0, 0, 1, Some("referenced by shipments"))
    );
    let rows = |sql: &'static str| db.texts(sql);
    assert_eq!(
        rows("SELECT CAST(user_id AS TEXT) || ':' || page FROM visits").await,
        ["2:bob page"]
    );
    assert_eq!(
        rows("SELECT COALESCE(CAST(user_id AS TEXT), '-') || ':' || COALESCE(what, '-') || ':' || CAST(n AS TEXT) FROM events ORDER BY n").await,
        ["-:-:1", "-:-:2", "2:bob clicked:3"]
    );
    assert_eq!(
        rows("SELECT CAST(id AS TEXT) || ':' || CAST(address_id AS TEXT) FROM shipments").await,
        ["1:10"]
    );
    let a = row(&db.snapshot().await, "addresses", "id", 10).cloned();
    assert_eq!(a, Some(json!({"id": 10, "street": null, "city": null})));
    let again = conn.erase(&alice).await.unwrap();
    assert!(
        again.iter().all(|o| o.deleted == 0 && o.anonymized == 0),
        "{again:?}"
    );
}

pub(crate) async fn sqlite_db(dir: &tempfile::TempDir) -> (Db, String) {
    let path = dir.path().join("app.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .unwrap();
    (Db::Lite(pool), path.to_string_lossy().into_owned())
}

pub(crate) async fn pg_db(label: &str) -> Option<(Db, String)> {
    let Some(server) = custos_testkit::pg::server() else {
        eprintln!("PostgreSQL not available: SQL connector tests on PostgreSQL skipped");
        return None;
    };
    let url = server.create_database(label).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    Some((Db::Pg(pool), url))
}

#[tokio::test]
async fn sqlite_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = sqlite_db(&dir).await;
    lifecycle(&db, &map("sqlite", "path_env", ""), &path).await;
}

#[tokio::test]
async fn sqlite_by_url() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = sqlite_db(&dir).await;
    db.setup().await;
    let m = map("sqlite", "url_env", "");
    let conn = connector(&m, &format!("sqlite://{path}")).await.unwrap();
    let mut bob = Person::new();
    bob.add(IdentityKind::Email, "BOB@example.com");
    let found = conn.identify(&bob).await.unwrap();
    assert_eq!(found.values(IdentityKind::UserId)[0].expose(), "2");
}

#[tokio::test]
async fn sqlite_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = sqlite_db(&dir).await;
    mismatches(&db, "sqlite", "path_env", &path).await;
}

#[tokio::test]
async fn sqlite_unmapped_and_keyless() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = sqlite_db(&dir).await;
    unmapped_and_keyless(&db, "sqlite", "path_env", &path).await;
}

#[tokio::test]
async fn postgres_unmapped_and_keyless() {
    let Some((db, url)) = pg_db("sqlkeyless").await else {
        return;
    };
    unmapped_and_keyless(&db, "postgres", "url_env", &url).await;
}

#[tokio::test]
async fn postgres_lifecycle() {
    let Some((db, url)) = pg_db("sqlconn").await else {
        return;
    };
    lifecycle(&db, &map("postgres", "url_env", ""), &url).await;
}

#[tokio::test]
async fn postgres_mismatch() {
    let Some((db, url)) = pg_db("sqlmis").await else {
        return;
    };
    mismatches(&db, "postgres", "url_env", &url).await;
}

pub(crate) async fn my_db(label: &str) -> Option<(Db, String)> {
    let server = custos_testkit::mysql::server()?;
    let url = server.create_database(label).await;
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    Some((Db::My(pool), url))
}

#[tokio::test]
async fn mysql_lifecycle() {
    let Some((db, url)) = my_db("sqlconn").await else {
        return;
    };
    lifecycle(&db, &map("mysql", "url_env", ""), &url).await;
}

#[tokio::test]
async fn mysql_mismatch() {
    let Some((db, url)) = my_db("sqlmis").await else {
        return;
    };
    mismatches(&db, "mysql", "url_env", &url).await;
}

#[tokio::test]
async fn mysql_unmapped_and_keyless() {
    let Some((db, url)) = my_db("sqlkeyless").await else {
        return;
    };
    unmapped_and_keyless(&db, "mysql", "url_env", &url).await;
}

#[tokio::test]
async fn missing_env_and_bad_url_are_config() {
    let none = |_: &str| None;
    for kind in ["postgres", "mysql"] {
        let m = map(kind, "url_env", "");
        match SqlConnector::connect(&m, &m.systems[0], &none, KEY).await {
            Err(ConnectorError::Config { message, .. }) => assert!(message.contains("APP_DB")),
            other => panic!("{kind}: expected a config error, got {other:?}"),
        }
    }
    // A URL that is not MySQL's is refused without quoting it.
    let m = map("mysql", "url_env", "");
    match connector(&m, "postgres://secret@nowhere/db").await {
        Err(ConnectorError::Config { message, .. }) => {
            assert!(!message.contains("secret"), "{message}");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

/// MySQL's own rules: identities match byte for byte whatever the column's
/// collation or character set (a `_ci` column does not find `ALICE` for
/// `alice`; latin1 `Müller` is not `Muller`), values a column's character
/// set cannot hold find nothing instead of failing, emails fold case even
/// on a `_bin` utf8mb3 column, binary keys travel as hex, an unsigned key
/// is hashed into the upper half of its range, and a case-only
/// rectification under a `_ci` collation is still a change.
#[tokio::test]
async fn mysql_collations_and_types() {
    let Some((db, url)) = my_db("sqltypes").await else {
        return;
    };
    for s in [
        "CREATE TABLE accounts (id BINARY(16) PRIMARY KEY, \
         handle VARCHAR(64) CHARACTER SET latin1 NOT NULL, \
         login VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci, \
         email VARCHAR(255) CHARACTER SET utf8mb3 COLLATE utf8mb3_bin, \
         score BIGINT UNSIGNED, flags TINYINT)",
        "CREATE TABLE sessions (id INT UNSIGNED PRIMARY KEY, account_id BINARY(16), \
         seq BIGINT UNSIGNED NOT NULL, token VARCHAR(64), \
         FOREIGN KEY (account_id) REFERENCES accounts(id))",
        "INSERT INTO accounts VALUES \
         (X'00112233445566778899AABBCCDDEEFF', 'Müller', 'alice', 'Alice@Example.com', 18446744073709551615, 1), \
         (X'FF0000000000000000000000000000FF', 'Muller', 'ALICE', 'bob@example.com', 5, -2)",
        "INSERT INTO sessions VALUES (1, X'00112233445566778899AABBCCDDEEFF', 7, 'alice-session'), \
         (2, X'FF0000000000000000000000000000FF', 8, 'bob-session')",
    ] {
        db.exec(s).await;
    }
    let src = r#"
version: 1
organisation: { controller: Test GmbH, contact: privacy@test.example }
purposes:
  - { id: account, title: Accounts, legal_basis: contract, subjects: [customer] }
systems:
  - id: app_db
    kind: mysql
    connection: { url_env: APP_DB }
    datasets:
      - id: accounts
        table: accounts
        subject: { identity: id }
        purposes: [account]
        erasure: delete
        retention: { period: 30d, from_event: account_closed }
        fields:
          - { name: id, category: user.unique_id, identity: user_id, primary_key: true }
          - { name: handle, category: user.name, identity: token }
          - { name: login, category: user.name, identity: phone }
          - { name: email, category: user.contact.email, identity: email }
          - { name: score, category: user.financial }
          - { name: flags, category: system.operations }
      - id: sessions
        table: sessions
        subject: { via: account_id }
        purposes: [account]
        erasure: { anonymize: keyed_hash }
        retention: { period: 30d, from_event: account_closed }
        fields:
          - { name: id, category: system.operations, primary_key: true }
          - { name: account_id, category: user.unique_id, references: accounts.id }
          - { name: seq, category: user.unique_id }
          - { name: token, category: user.unique_id }
"#;
    let m = match custos_map::load_str(src, "types.yaml") {
        Ok((m, _)) => m,
        Err(d) => panic!("test map invalid: {d:#?}"),
    };
    let conn = connector(&m, &url).await.unwrap();
    let alice_id = "00112233445566778899AABBCCDDEEFF";
    let bob_id = "FF0000000000000000000000000000FF";
    let ids_of = |p: &Person| -> Vec<String> {
        p.values(IdentityKind::UserId)
            .iter()
            .map(|v| v.expose().clone())
            .collect()
    };
    let one = |kind: IdentityKind, v: &str| {
        let mut p = Person::new();
        p.add(kind, v);
        p
    };
    for (kind, value, expected) in [
        (IdentityKind::Token, "Müller", vec![alice_id]),
        (IdentityKind::Token, "Muller", vec![bob_id]),
        (IdentityKind::Token, "müller", vec![]),
        (IdentityKind::Token, "Müller\u{1F600}", vec![]),
        (IdentityKind::Phone, "alice", vec![alice_id]),
        (IdentityKind::Phone, "ALICE", vec![bob_id]),
        (IdentityKind::Phone, "alice\u{1F600}", vec![]),
        (IdentityKind::Email, "ALICE@example.COM", vec![alice_id]),
        (IdentityKind::Email, "alice@example.com\u{1F600}", vec![]),
        (
            IdentityKind::UserId,
            &alice_id.to_lowercase(),
            vec![alice_id],
        ),
        (IdentityKind::UserId, "0011", vec![]),
        (IdentityKind::UserId, "not hex", vec![]),
    ] {
        let found = conn.identify(&one(kind, value)).await.unwrap();
        assert_eq!(ids_of(&found), expected, "{kind:?} {value}");
    }

    // Binary keys as hex, an unsigned 64-bit value as a JSON number.
    let alice = one(IdentityKind::UserId, alice_id);
    let ex = conn.access(&alice).await.unwrap();
    assert_eq!(ex[0].records.len(), 1);
    assert_eq!(ex[0].records[0]["id"], json!(alice_id));
    assert_eq!(ex[0].records[0]["score"], json!(18446744073709551615u64));
    assert_eq!(ex[0].records[0]["handle"], json!("Müller"));
    assert_eq!(ex[1].records.len(), 1);
    assert_eq!(ex[1].records[0]["token"], json!("alice-session"));

    let out = by_dataset(&conn.erase(&alice).await.unwrap());
    assert_eq!(out["accounts"], outcome("accounts", 1, 1, 0, 0, None));
    assert_eq!(out["sessions"], outcome("sessions", 1, 0, 1, 0, None));
    let sessions = db
        .texts(
            "SELECT CAST(id AS TEXT) || ':' || COALESCE(HEX(account_id), '-') || ':' || \
             CAST(seq AS TEXT) || ':' || token FROM sessions ORDER BY id",
        )
        .await;
    let [alice_s, bob_s] = sessions.as_slice() else {
        panic!("{sessions:?}")
    };
    let parts: Vec<&str> = alice_s.split(':').collect();
    assert_eq!(parts[..2], ["1", "-"], "{alice_s}");
    assert!(parts[2].parse::<u64>().unwrap() >= 1 << 63, "{alice_s}");
    assert!(alice_s.contains(":anon:"), "{alice_s}");
    assert_eq!(bob_s, &format!("2:{bob_id}:8:bob-session"));
    assert_eq!(
        db.texts("SELECT HEX(id) || handle || login FROM accounts")
            .await,
        [format!("{bob_id}MullerALICE")]
    );

    // A case-only change is a change, though `_ci` calls it equal.
    let bob = one(IdentityKind::UserId, bob_id);
    let change = || FieldChange {
        field: "login".to_owned(),
        value: Some(Personal::new("Alice".to_owned())),
    };
    let out = by_dataset(&conn.rectify(&bob, &[change()]).await.unwrap());
    assert_eq!(out["accounts"].rectified, 1);
    let out = by_dataset(&conn.rectify(&bob, &[change()]).await.unwrap());
    assert_eq!(out["accounts"].rectified, 0);
    assert_eq!(
        db.texts("SELECT login FROM accounts").await,
        ["Alice".to_owned()]
    );
}
