//! `custos map` and `custos ropa` run as a user would: output and exit codes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn custos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(args)
        .output()
        .expect("run custos")
}

fn repo(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
        .display()
        .to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_demo_map_exits_0() {
    let o = custos(&["map", "check", &repo("examples/demo-map.yaml")]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).ends_with("0 error(s), 0 warning(s)\n"));
}

#[test]
fn check_broken_map_exits_1_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    let demo = std::fs::read_to_string(repo("examples/demo-map.yaml")).unwrap();
    std::fs::write(
        &file,
        demo.replace(
            "user.contact.phone_number, identity: phone }\n          - { name: full_name",
            "user.contact.phone_numbr, identity: phone }\n          - { name: full_name",
        ),
    )
    .unwrap();
    let o = custos(&["map", "check", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("error[unknown-category] systems.vault.datasets.profiles.fields.phone.category: unknown data category \"user.contact.phone_numbr\""),
        "{out}"
    );
    assert!(
        out.contains("did you mean \"user.contact.phone_number\"?"),
        "{out}"
    );
    let json = custos(&["map", "check", "--format", "json", file.to_str().unwrap()]);
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["code"], "unknown-category");
}

#[test]
fn strict_fails_on_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("warn.yaml");
    let demo = std::fs::read_to_string(repo("examples/demo-map.yaml")).unwrap();
    std::fs::write(
        &file,
        demo.replace(
            "dpa: { status: signed, date: \"2023-05-02\" }",
            "dpa: { status: pending }",
        ),
    )
    .unwrap();
    assert_eq!(
        custos(&["map", "check", file.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        custos(&["map", "check", "--strict", file.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn missing_file_exits_2() {
    let o = custos(&["map", "check", "/nonexistent/map.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read"));
}

#[test]
fn show_text_and_json() {
    let o = custos(&["map", "show", &repo("examples/demo-map.yaml")]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("Acme Intranet GmbH"));
    let j = custos(&[
        "map",
        "show",
        "--format",
        "json",
        &repo("examples/demo-map.yaml"),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(v["organisation"]["controller"], "Acme Intranet GmbH");
}

#[test]
fn ropa_formats_and_output_file() {
    let dir = tempfile::tempdir().unwrap();
    for (fmt, needle) in [
        ("html", "<svg"),
        ("csv", "record,controller"),
        ("json", "\"activities\""),
        ("md", "# Record of processing"),
    ] {
        let out = dir.path().join(format!("ropa.{fmt}"));
        let o = custos(&[
            "ropa",
            "--map",
            &repo("examples/demo-map.yaml"),
            "--format",
            fmt,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{fmt}");
        assert!(
            std::fs::read_to_string(&out).unwrap().contains(needle),
            "{fmt}"
        );
    }
    // The record states the safeguards this custos provides (the erasure
    // ledger replayed into restored stores among them), and none it does
    // not (no scheduled purges yet).
    let md = std::fs::read_to_string(dir.path().join("ropa.md")).unwrap();
    assert!(md.contains("tamper-evident audit log"), "{md}");
    assert!(md.contains("replayed into any store restored"), "{md}");
    assert!(!md.contains("scheduled purges"), "{md}");
    let bad = custos(&[
        "ropa",
        "--map",
        &repo("examples/demo-map.yaml"),
        "--format",
        "pdf",
    ]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn import_fides_writes_a_map_and_notes() {
    let fixture = repo("crates/custos-map/tests/fixtures/fides_shop.yml");
    let o = custos(&["map", "import-fides", &fixture]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.contains("- id: shop_db"), "{out}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("note: not carried over: fides_meta.data_type")
    );
    // The imported map parses; the gaps Fides leaves show up as errors.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("imported.yaml");
    std::fs::write(&file, out).unwrap();
    let c = custos(&["map", "check", file.to_str().unwrap()]);
    assert_eq!(c.status.code(), Some(1));
    assert!(stdout(&c).contains("error[missing-retention]"));
}

/// `custos map check --connect` against a live SQLite database (issue 16):
/// what the database lacks, with the map's line; the lookups no index
/// serves, with the index to add; nothing changed.
#[test]
fn check_connect_names_what_the_database_lacks_and_the_indexes_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shop.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let exec = |sql: &str| {
        let url = format!("sqlite://{}?mode=rwc", db.display());
        rt.block_on(async {
            use sqlx::Connection as _;
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        });
    };
    exec("CREATE TABLE customer (id INTEGER PRIMARY KEY, email TEXT, name VARCHAR(30))");
    exec(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customer(id))",
    );
    let map = |extra: &str| {
        format!(
            r#"version: 1
organisation: {{ controller: Shop, contact: privacy@shop.example }}
purposes:
  - {{ id: sales, title: Sales, legal_basis: contract, subjects: [customer] }}
systems:
  - id: shop
    kind: sqlite
    connection: {{ path_env: SHOP_DB }}
    datasets:
      - id: customer
        table: customer
        purposes: [sales]
        erasure: delete
        retention: {{ period: 3y, from_event: account_closed }}
        fields:
          - {{ name: id, category: user.unique_id, identity: user_id, primary_key: true }}
          - {{ name: email, category: user.contact.email, identity: email }}
          - {{ name: name, category: user.name }}
      - id: orders
        table: orders
        subject: {{ via: customer_id }}
        purposes: [sales]
        erasure: delete
        retention: {{ period: 3y, from_event: account_closed }}
        fields:
          - {{ name: id, category: system.operations, primary_key: true }}
          - {{ name: customer_id, category: user.unique_id, references: customer.id }}{extra}
"#
        )
    };
    let file = dir.path().join("map.yaml");
    let check = |extra: &str, args: &[&str], with_env: bool| {
        std::fs::write(&file, map(extra)).unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_custos"));
        c.args(["map", "check", "--connect", file.to_str().unwrap()])
            .args(args);
        if with_env {
            c.env("SHOP_DB", &db);
        } else {
            c.env_remove("SHOP_DB");
        }
        c.output().expect("run custos")
    };

    let o = check("", &[], false);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("error[db-unreachable] systems.shop:")
            && stdout(&o).contains("SHOP_DB"),
        "{}",
        stdout(&o)
    );

    // An empty setting is named, not read as an empty database.
    std::fs::write(&file, map("")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(["map", "check", "--connect", file.to_str().unwrap()])
        .env("SHOP_DB", "")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("error[db-unreachable] systems.shop: system shop: environment variable SHOP_DB (connection.path_env) is empty"),
        "{}",
        stdout(&o)
    );
    // A hostile table name is one finding, at its dataset's table.
    std::fs::write(
        &file,
        map("").replace("table: orders", "table: 'orders\"; DROP TABLE orders; --'"),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(["map", "check", "--connect", file.to_str().unwrap()])
        .env("SHOP_DB", &db)
        .output()
        .unwrap();
    let out = stdout(&o);
    assert_eq!(out.matches("error[db-mismatch]").count(), 1, "{out}");
    assert!(
        out.contains("error[db-mismatch] systems.shop.datasets.orders.table: table orders\"; DROP TABLE orders; -- does not exist"),
        "{out}"
    );

    let o = check(
        "\n          - { name: note, category: user.name }",
        &[],
        true,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("map.yaml:28:15: "),
        "the field's line: {}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains(
            "error[db-mismatch] systems.shop.datasets.orders.fields.note: table orders has no column note"
        ),
        "{}",
        stdout(&o)
    );

    let o = check("", &[], true);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.contains("warning[lookup-scans] systems.shop.datasets.customer.fields.email: customer.email is looked up without an index (identity email)"),
        "{out}"
    );
    assert!(
        out.contains(
            "= hint: CREATE INDEX \"customer_email_lower_idx\" ON \"customer\" (lower(\"email\"));"
        ),
        "{out}"
    );
    assert!(
        out.contains("orders.customer_id is looked up without an index"),
        "{out}"
    );
    assert!(out.ends_with("0 error(s), 2 warning(s)\n"), "{out}");
    assert_eq!(check("", &["--strict"], true).status.code(), Some(1));

    // The hints, run as printed, leave nothing to warn about.
    for line in out.lines() {
        if let Some(sql) = line.trim().strip_prefix("= hint: ") {
            exec(sql);
        }
    }
    let o = check("", &["--format", "json"], true);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(stdout(&o).trim(), "[]");
}
