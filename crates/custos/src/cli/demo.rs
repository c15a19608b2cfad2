//! `custos demo`: the same server on a fresh embedded store, filled with a
//! small sample SaaS, printing a tour of ready-to-paste `curl` lines.
//!
//! The demo is self-contained: besides the vault it creates the sample
//! application's own stores in its directory — an SQLite database
//! (`app.db`: users, comments, invoices, with foreign keys) and an uploads
//! folder (`files/`: avatars and their thumbnails) — and serves a data map
//! of exactly these systems (`map.yaml`, from `examples/demo-app.yaml`).
//! Their locations reach the request executor through its settings
//! (`ExecutorConfig::env`), never through the process environment; mail
//! (verification codes, notices) goes to `outbox/`. So every data-subject
//! request of the tour runs to completion. The people are fictional.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use custos_core::blind::IdentityKind;
use custos_core::ids::{Audience, Collection, Purpose, RecordKey, SubjectId, TenantId};
use custos_core::scope::{Scope, ScopeSet};
use custos_map::MapOrigin;
use custos_store::{Actor, Principal, Vault};
use serde_json::json;
use sqlx::Connection as _;

use super::serve::{runtime, serve, ServerConfig};
use super::store_args::StoreArgs;

/// Flags of `custos demo`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DemoArgs {
    /// Directory of the demo's stores; recreated on every start.
    #[arg(long, default_value = "custos-demo")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "CUSTOS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

const MARKER: &str = ".custos-demo";

/// The demo's data map: the vault, the application's SQLite database and
/// its uploads. Written to `<data dir>/map.yaml`.
pub(crate) const DEMO_APP_MAP: &str = include_str!("../../../../examples/demo-app.yaml");

/// Variables the demo map names for its connections.
const APP_DB_VAR: &str = "DEMO_APP_DB";
const FILES_ROOT_VAR: &str = "DEMO_FILES_ROOT";

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.data_dir.exists() {
        if !args.data_dir.join(MARKER).exists() {
            bail!(
                "{} exists and is not a demo directory; choose another --data-dir",
                args.data_dir.display()
            );
        }
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("clearing {}", args.data_dir.display()))?;
    }
    std::fs::create_dir_all(&args.data_dir)?;
    std::fs::write(
        args.data_dir.join(MARKER),
        "custos demo data; deleted on the next `custos demo`\n",
    )?;
    // Absolute paths: the executor may resolve them from anywhere.
    let dir = std::fs::canonicalize(&args.data_dir)
        .with_context(|| format!("resolving {}", args.data_dir.display()))?;
    let map_path = dir.join("map.yaml");
    std::fs::write(&map_path, DEMO_APP_MAP)
        .with_context(|| format!("writing {}", map_path.display()))?;
    let app_db = dir.join("app.db");
    let files = dir.join("files");
    let outbox = dir.join("outbox");
    std::fs::create_dir_all(&outbox)?;
    runtime()?.block_on(async move {
        let store = StoreArgs {
            data_dir: dir.clone(),
            database_url: None,
            keystore_url: None,
            // The demo's own development key, recreated with its stores.
            root_key: None,
            root_key_file: None,
            erasure_ledger: None,
        };
        let vault = store.open(true).await?;
        let server = ServerConfig::with_defaults(args.listen);
        let admin = server.admin_token()?;
        let admin_secret = admin.0.expose().to_owned();
        let tour = seed(&vault).await?;
        seed_app(&app_db, &files).await?;
        let map = super::serve::load_map(MapOrigin::File(map_path))?;
        let env: HashMap<String, String> = [
            (APP_DB_VAR, &app_db),
            (FILES_ROOT_VAR, &files),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.display().to_string()))
        .collect();
        serve(
            vault,
            &server,
            admin,
            map,
            move |addr| {
                println!();
                println!(
                    "custos demo: tenants acme and globex; 5 people in acme (one erased, one restricted)."
                );
                println!(
                    "In {}: the data map (map.yaml), the application's database (app.db),",
                    dir.display()
                );
                println!("its uploads (files/) and the mail custos sends (outbox/).");
                println!(
                    "Paste these lines into a shell (they need curl and jq; the keys are valid for this run only):"
                );
                println!();
                for line in tour_lines(&format!("http://{addr}"), &admin_secret, &tour) {
                    println!("{line}");
                }
                println!();
            },
            move |state| {
                let mut cfg = (*state.executor).clone();
                cfg.env = env.into();
                state.with_executor_config(cfg).with_outbox(Some(outbox))
            },
        )
        .await
    })
}

/// What the tour needs to name.
struct Tour {
    full_key: String,
    support_key: String,
    jane: SubjectId,
    erased: SubjectId,
    restricted: SubjectId,
    jane_token: String,
    erased_token: String,
}

fn p(t: &str, k: &custos_store::NewApiKey, scopes: ScopeSet) -> anyhow::Result<Principal> {
    Ok(Principal {
        tenant: TenantId::parse(t)?,
        key_id: k.id,
        scopes,
    })
}

/// The people of the sample SaaS (fictional): external id (the
/// application's `users.id`), email, phone, name, IBAN.
const PEOPLE: [(&str, &str, &str, &str, &str); 5] = [
    (
        "u-1",
        "Jane.Doe@Example.com",
        "+31 6 1234 5678",
        "Jane Doe",
        "NL91ABNA0417164300",
    ),
    (
        "u-2",
        "max.mustermann@example.de",
        "+49 30 1234567",
        "Max Mustermann",
        "DE89370400440532013000",
    ),
    (
        "u-3",
        "marie.curie@example.fr",
        "+33 1 23 45 67 89",
        "Marie Curie",
        "FR1420041010050500013M02606",
    ),
    (
        "u-4",
        "john.smith@example.co.uk",
        "+44 20 7946 0958",
        "John Smith",
        "GB29NWBK60161331926819",
    ),
    (
        "u-5",
        "ana.garcia@example.es",
        "+34 912 345 678",
        "Ana García",
        "ES9121000418450200051332",
    ),
];

/// The person erased before the tour starts (`u-2`): the application
/// holds nothing of them any more.
const ERASED: &str = "u-2";

async fn seed(vault: &Vault) -> anyhow::Result<Tour> {
    let acme = TenantId::parse("acme")?;
    vault.tenants().create(&acme, "Acme Project Boards").await?;
    vault
        .tenants()
        .create(&TenantId::parse("globex")?, "Globex Newsletter")
        .await?;
    let all = ScopeSet::from_scopes(Scope::ALL);
    let full = vault
        .tenants()
        .create_key(&Actor::Admin, &acme, all, None)
        .await?;
    let support_scopes = ScopeSet::from_scopes([Scope::Lookup]);
    let support = vault
        .tenants()
        .create_key(&Actor::Admin, &acme, support_scopes, None)
        .await?;
    let pr = p("acme", &full, all)?;

    let mut ids = Vec::new();
    for (ext, email, phone, name, iban) in PEOPLE {
        let id = vault
            .subjects()
            .create(
                &pr,
                Some(ext.into()),
                &[
                    (IdentityKind::Email, email.into()),
                    (IdentityKind::Phone, phone.into()),
                ],
            )
            .await?;
        let fields = json!({"name": name, "email": email, "plan": "team"});
        vault
            .subjects()
            .put_record(
                &pr,
                &id,
                &Collection::parse("profile")?,
                &RecordKey::parse("main")?,
                &obj(fields)?,
            )
            .await?;
        let pay = json!({"iban": iban, "holder": name});
        vault
            .subjects()
            .put_record(
                &pr,
                &id,
                &Collection::parse("billing")?,
                &RecordKey::parse("sepa")?,
                &obj(pay)?,
            )
            .await?;
        for n in 1..=2 {
            let comment =
                json!({"text": format!("Support note {n} about {name}"), "board": "roadmap"});
            vault
                .subjects()
                .put_record(
                    &pr,
                    &id,
                    &Collection::parse("comments")?,
                    &RecordKey::parse(&format!("c-{n}"))?,
                    &obj(comment)?,
                )
                .await?;
        }
        ids.push(id);
    }
    let analytics = Audience::parse("analytics")?;
    let [jane, max, marie, ..] = ids.as_slice() else {
        bail!("seeding created too few subjects");
    };
    let jane_token = vault.subjects().issue_token(&pr, jane, &analytics).await?;
    let erased_token = vault.subjects().issue_token(&pr, max, &analytics).await?;
    vault
        .subjects()
        .erase(&pr, max, &Purpose::parse("subject_request")?)
        .await?;
    vault.subjects().set_restriction(&pr, marie, true).await?;
    vault.audit().verify().await?;
    Ok(Tour {
        full_key: full.secret.expose().to_owned(),
        support_key: support.secret.expose().to_owned(),
        jane: *jane,
        erased: *max,
        restricted: *marie,
        jane_token,
        erased_token,
    })
}

fn obj(v: serde_json::Value) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    match v {
        serde_json::Value::Object(m) => Ok(m),
        _ => bail!("demo record is not an object"),
    }
}

/// The application's schema: comments and invoices name their user by a
/// foreign key, so erasure must go children first and keep the users an
/// invoice (retained 10 years) still points at as placeholders.
const APP_SCHEMA: &[&str] = &[
    "CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT NOT NULL, display_name TEXT, \
     newsletter_opt_in INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL)",
    "CREATE TABLE comments (id INTEGER PRIMARY KEY, author_id TEXT REFERENCES users(id), \
     author_name TEXT, body TEXT, created_at TEXT NOT NULL)",
    "CREATE TABLE invoices (id INTEGER PRIMARY KEY, \
     customer_id TEXT NOT NULL REFERENCES users(id), billing_name TEXT, \
     amount_cents INTEGER NOT NULL, issued_at TEXT NOT NULL)",
];

/// A 1×1 PNG: the avatars and thumbnails of the sample people.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Creates the application's database and uploads with the rows and files
/// of every person not erased.
async fn seed_app(db: &Path, files: &Path) -> anyhow::Result<()> {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(true)
        .foreign_keys(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts)
        .await
        .with_context(|| format!("creating {}", db.display()))?;
    let mut tx = conn.begin().await?;
    for stmt in APP_SCHEMA {
        sqlx::query(stmt).execute(&mut *tx).await?;
    }
    let people = PEOPLE.into_iter().filter(|p| p.0 != ERASED);
    for (n, (id, email, _, name, _)) in (1i64..).zip(people) {
        sqlx::query(
            "INSERT INTO users (id, email, display_name, newsletter_opt_in, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(email.to_lowercase())
        .bind(name)
        .bind(n % 2)
        .bind(format!("2024-0{n}-15T09:00:00Z"))
        .execute(&mut *tx)
        .await?;
        for k in 0..2i64 {
            sqlx::query(
                "INSERT INTO comments (id, author_id, author_name, body, created_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(100 + 10 * n + k)
            .bind(id)
            .bind(name)
            .bind(format!("Card {} looks done to me — {name}", 10 * n + k))
            .bind(format!("2024-0{n}-2{k}T10:00:00Z"))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO invoices (id, customer_id, billing_name, amount_cents, issued_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(1000 + n)
        .bind(id)
        .bind(name)
        .bind(1900 * n)
        .bind(format!("2024-0{n}-28"))
        .execute(&mut *tx)
        .await?;
        for (sub, file) in [("avatars", "avatar.png"), ("thumbs", "avatar-64.png")] {
            let d = files.join(sub).join(id);
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            std::fs::write(d.join(file), PNG)?;
        }
    }
    tx.commit().await?;
    conn.close().await?;
    Ok(())
}

/// The tour: one command per line, in order; a trailing comment gives the
/// expected HTTP status where it is not 200 (the test that runs the tour
/// checks it).
fn tour_lines(base: &str, admin: &str, t: &Tour) -> Vec<String> {
    let head = [
        format!(
            "export CUSTOS={base} ADMIN={admin} KEY={} SUPPORT={}",
            t.full_key, t.support_key
        ),
        format!(
            "export JANE={} MAX={} MARIE={} JANE_TOKEN={} MAX_TOKEN={}",
            t.jane, t.erased, t.restricted, t.jane_token, t.erased_token
        ),
    ];
    head.into_iter()
        .chain(TOUR.iter().map(|l| (*l).to_owned()))
        .collect()
}

/// The tour after its two `export` lines; README.md shows the same lines.
const TOUR: &[&str] = &[
    r#"H="Authorization: Bearer $KEY"; J='Content-Type: application/json'"#,
    r#"curl -s $CUSTOS/healthz"#,
    r#"curl -s $CUSTOS/v1/tenants -H "Authorization: Bearer $ADMIN""#,
    r#"curl -s "$CUSTOS/v1/subjects/lookup?email=jane.doe@example.com" -H "$H"   # blind index: no decrypt-and-scan"#,
    r#"curl -s "$CUSTOS/v1/subjects/$JANE/records/profile/main?purpose=support" -H "$H"   # clear, audited"#,
    r#"curl -s "$CUSTOS/v1/subjects/$JANE/records/profile/main" -H "Authorization: Bearer $SUPPORT"   # masked: a lookup-only key"#,
    r#"curl -s "$CUSTOS/v1/subjects/$JANE/export?purpose=access_request" -H "$H""#,
    r#"curl -s $CUSTOS/v1/tokens/$JANE_TOKEN -H "$H""#,
    r#"curl -s $CUSTOS/v1/tokens/$MAX_TOKEN -H "$H"   # 410: Max was erased"#,
    r#"curl -s "$CUSTOS/v1/subjects/$MARIE/records/billing/sepa?purpose=billing" -H "$H"   # 403: restricted"#,
    r#"curl -s "$CUSTOS/v1/subjects/$MARIE/records/billing/sepa?purpose=legal_claims" -H "$H"   # still allowed"#,
    r#"curl -s -X POST $CUSTOS/v1/purposes/newsletter/versions -H "$H" -H "$J" -d '{"text":"Monthly product news","material":false}'   # 201: version 1"#,
    r#"curl -s -X POST $CUSTOS/v1/subjects/$JANE/consents -H "$H" -H "$J" -d '{"purpose":"newsletter","action":"grant","version":1,"affirmative":true}'   # 201"#,
    r#"curl -s "$CUSTOS/v1/consent/check?subject=$JANE&purpose=newsletter" -H "$H"   # "allowed": true"#,
    r#"curl -s -X POST $CUSTOS/v1/subjects/$JANE/consents -H "$H" -H "$J" -d '{"purpose":"newsletter","action":"withdraw"}'   # 201"#,
    r#"curl -s "$CUSTOS/v1/consent/check?subject=$JANE&purpose=newsletter" -H "$H"   # "allowed": false"#,
    r#"REQ=$(curl -s -X POST $CUSTOS/v1/requests -H "$H" -H "$J" -d '{"type":"access","identity":{"email":"jane.doe@example.com"},"verified_by_app":true}' | jq -r .id)   # 201"#,
    r#"until curl -s $CUSTOS/v1/requests/$REQ -H "$H" | jq -e '.status == "completed"' >/dev/null; do sleep 1; done"#,
    r#"curl -s -X POST $CUSTOS/v1/requests/$REQ/plan -H "$H"   # what each system holds of Jane"#,
    r#"URL=$(curl -s $CUSTOS/v1/requests/$REQ/archive -H "$H" | jq -r .url)"#,
    r#"curl -s -o jane.zip $CUSTOS$URL   # her archive: index.html, JSON and CSV per dataset, her files"#,
    r#"curl -s $CUSTOS$URL   # 404: a link works once"#,
    r#"REQ=$(curl -s -X POST $CUSTOS/v1/requests -H "$H" -H "$J" -d '{"type":"erasure","identity":{"email":"jane.doe@example.com"},"verified_by_app":true}' | jq -r .id)   # 201"#,
    r#"until curl -s $CUSTOS/v1/requests/$REQ -H "$H" | jq -e '.status == "completed"' >/dev/null; do sleep 1; done"#,
    r#"curl -s $CUSTOS/v1/requests/$REQ -H "$H" | jq -c '.steps[] | {title, status}'"#,
    r#"curl -s $CUSTOS/v1/requests/$REQ/completion -H "$H"   # signed record: what was done where, in counts"#,
    r#"curl -s "$CUSTOS/v1/subjects/$JANE/records/profile/main?purpose=support" -H "$H"   # 410: erased"#,
    r#"curl -s "$CUSTOS/v1/audit?limit=20" -H "$H""#,
    r#"curl -s "$CUSTOS/v1/ropa?format=md" -H "$H""#,
    r#"curl -s -X POST $CUSTOS/v1/scrub -H "$H" -H 'Content-Type: text/plain' --data-binary 'login ok for jane.doe@example.com from 203.0.113.7'"#,
    r#"curl -s $CUSTOS/openapi.json | jq .info"#,
];
