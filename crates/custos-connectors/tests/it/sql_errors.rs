//! Permanent and transient errors of the SQL connector on a real SQLite
//! file, PostgreSQL and MariaDB: a wrong database name, a wrong user or
//! password, a malformed URL and a column dropped under the connector are
//! permanent and name what to fix (never the password); a server that
//! does not answer is transient.

use custos_connectors::sql::SqlConnector;
use custos_connectors::{Connector, ConnectorError, Person};
use custos_map::{DataMap, IdentityKind};

const KEY: [u8; 32] = [9; 32];

fn map(kind: &str, setting: &str) -> DataMap {
    let src = format!(
        r#"
version: 1
organisation: {{ controller: Test GmbH, contact: privacy@test.example }}
purposes:
  - {{ id: account, title: Accounts, legal_basis: contract, subjects: [customer] }}
systems:
  - id: app_db
    kind: {kind}
    connection: {{ {setting}: APP_DATABASE_URL }}
    datasets:
      - id: users
        table: users
        subject: {{ identity: email }}
        purposes: [account]
        erasure: delete
        retention: {{ period: 30d, from_event: account_closed }}
        fields:
          - {{ name: id, category: user.unique_id, identity: user_id, primary_key: true }}
          - {{ name: email, category: user.contact.email, identity: email }}
          - {{ name: nickname, category: user.name }}
"#
    );
    custos_map::load_str(&src, "test.yaml").unwrap().0
}

async fn connect(m: &DataMap, value: &str) -> Result<SqlConnector, ConnectorError> {
    let value = value.to_owned();
    let env = move |k: &str| (k == "APP_DATABASE_URL").then(|| value.clone());
    SqlConnector::connect(m, &m.systems[0], &env, KEY).await
}

fn permanent(r: Result<SqlConnector, ConnectorError>) -> String {
    match r {
        Ok(_) => panic!("connected"),
        Err(e) => {
            assert!(!e.is_transient(), "expected a permanent error: {e}");
            e.to_string()
        }
    }
}

/// `url` with another database, user and password.
fn with(url: &str, user: &str, password: &str, database: &str) -> String {
    let mut u = reqwest::Url::parse(url).unwrap();
    u.set_username(user).unwrap();
    u.set_password(Some(password)).unwrap();
    u.set_path(&format!("/{database}"));
    u.to_string()
}

fn alice() -> Person {
    let mut p = Person::new();
    p.add(IdentityKind::Email, "alice@example.com");
    p
}

/// The column `email` (how the person is found) is dropped after the
/// connector read the catalog: the next access fails for good, naming the
/// table and the column.
async fn dropped_column(m: &DataMap, url: &str, drop: impl std::future::Future<Output = ()>) {
    let conn = connect(m, url).await.unwrap();
    // A dry run (an access would keep its rows for the next 2 s).
    assert_eq!(conn.plan_erasure(&alice()).await.unwrap()[0].found, 1);
    drop.await;
    let e = conn.access(&alice()).await.unwrap_err();
    assert!(!e.is_transient(), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("app_db") && msg.contains("users") && msg.contains("column `email`"),
        "{msg}"
    );
    assert!(!msg.contains("alice"), "{msg}");
}

#[tokio::test]
async fn postgres_permanent_errors_name_what_to_fix() {
    let Some(server) = custos_testkit::pg::server() else {
        eprintln!("PostgreSQL not available: SQL error tests on PostgreSQL skipped");
        return;
    };
    let url = server.create_database("sqlerr").await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for s in [
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, nickname TEXT)",
        "INSERT INTO users VALUES (1, 'alice@example.com', 'Al')",
    ] {
        sqlx::query(s).execute(&pool).await.unwrap();
    }
    let m = map("postgres", "url_env");
    // The right user and password (CI's server checks passwords, the test
    // kit's trusts local users), a database that does not exist.
    let parsed = reqwest::Url::parse(&url).unwrap();
    let user = parsed.username().to_owned();
    let password = parsed.password().unwrap_or("").to_owned();
    let msg = permanent(connect(&m, &with(&url, &user, &password, "shop")).await);
    assert!(
        msg.contains("system app_db: database `shop` does not exist (check APP_DATABASE_URL)"),
        "{msg}"
    );
    assert!(password.is_empty() || !msg.contains(&password), "{msg}");

    // An unknown role with a wrong password: refused whether the server
    // checks passwords (28P01) or trusts local users (28000).
    let msg = permanent(connect(&m, &with(&url, "nobody", "hunter2", "shop")).await);
    assert!(
        msg.contains("authentication failed") && msg.contains("APP_DATABASE_URL"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");

    let msg = permanent(connect(&m, "postgres://u:hunter2@127.0.0.1:notaport/db").await);
    assert!(
        msg.contains("setting APP_DATABASE_URL is not a valid URL"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");

    // Nobody listens: an outage, retried.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("postgres://u:hunter2@127.0.0.1:{port}/shop");
    let e = connect(&m, &closed).await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");

    dropped_column(&m, &url, async {
        sqlx::query("ALTER TABLE users DROP COLUMN email")
            .execute(&pool)
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn mysql_permanent_errors_name_what_to_fix() {
    let Some(server) = custos_testkit::mysql::server() else {
        return;
    };
    let url = server.create_database("sqlerr").await;
    let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
    for s in [
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(255) NOT NULL, nickname TEXT)",
        "INSERT INTO users VALUES (1, 'alice@example.com', 'Al')",
    ] {
        sqlx::query(s).execute(&pool).await.unwrap();
    }
    let m = map("mysql", "url_env");
    let u = reqwest::Url::parse(&url).unwrap();
    let (user, password) = (u.username().to_owned(), u.password().unwrap().to_owned());
    let db = u.path().trim_start_matches('/').to_owned();

    let msg = permanent(connect(&m, &with(&url, &user, &password, "shop")).await);
    assert!(
        msg.contains("system app_db: database `shop` does not exist (check APP_DATABASE_URL)"),
        "{msg}"
    );
    assert!(!msg.contains(&format!(":{password}@")), "{msg}");

    let msg = permanent(connect(&m, &with(&url, &user, "hunter2", &db)).await);
    assert!(
        msg.contains("authentication failed") && msg.contains("APP_DATABASE_URL"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");

    let msg = permanent(connect(&m, "postgres://u:hunter2@127.0.0.1/db").await);
    assert!(
        msg.contains("setting APP_DATABASE_URL is not a valid URL"),
        "{msg}"
    );

    dropped_column(&m, &url, async {
        sqlx::query("ALTER TABLE users DROP COLUMN email")
            .execute(&pool)
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn sqlite_permanent_errors_name_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let m = map("sqlite", "path_env");
    let msg = permanent(connect(&m, &dir.path().join("nope.db").to_string_lossy()).await);
    assert!(
        msg.contains("app_db") && msg.contains("cannot be opened (check APP_DATABASE_URL)"),
        "{msg}"
    );

    let path = dir.path().join("app.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    for s in [
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, nickname TEXT)",
        "INSERT INTO users VALUES (1, 'alice@example.com', 'Al')",
    ] {
        sqlx::query(s).execute(&pool).await.unwrap();
    }
    dropped_column(&m, &path.to_string_lossy(), async {
        sqlx::query("ALTER TABLE users DROP COLUMN email")
            .execute(&pool)
            .await
            .unwrap();
    })
    .await;
}
