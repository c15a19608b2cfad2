//! `custos demo`: the same server on a fresh embedded store, filled with a
//! small sample SaaS, printing ready-to-paste `curl` lines.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use custos_core::blind::IdentityKind;
use custos_core::ids::{Audience, Collection, Purpose, RecordKey, SubjectId, TenantId};
use custos_core::scope::{Scope, ScopeSet};
use custos_map::MapOrigin;
use custos_store::{Actor, Principal, Vault};
use serde_json::json;

use super::serve::{admin_token, runtime, serve};
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
    runtime()?.block_on(async move {
        let store = StoreArgs {
            data_dir: args.data_dir.clone(),
            database_url: None,
            keystore_url: None,
        };
        let vault = store.open(true).await?;
        let admin = admin_token();
        let admin_secret = admin.0.expose().to_owned();
        let tour = seed(&vault).await?;
        let map = super::serve::load_map(MapOrigin::Builtin(custos_map::DEMO_MAP))?;
        serve(
            vault,
            admin,
            args.listen,
            map,
            &Default::default(),
            move |addr| print_tour(addr, &admin_secret, &tour),
        )
        .await
    })
}

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

    let people = [
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
    let mut ids = Vec::new();
    for (ext, email, phone, name, iban) in people {
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
            let comment = json!({"text": format!("Comment {n} by {name}"), "board": "roadmap"});
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

fn print_tour(addr: SocketAddr, admin: &str, t: &Tour) {
    let b = format!("http://{addr}");
    let k = &t.full_key;
    println!();
    println!(
        "custos demo: tenants acme and globex; 5 subjects in acme (one erased, one restricted)."
    );
    println!("Try these (the keys below are valid for this run only):");
    println!();
    println!(
        "export CUSTOS={b} ADMIN={admin} KEY={k} SUPPORT={}",
        t.support_key
    );
    println!("curl -s $CUSTOS/healthz");
    println!("curl -s -H \"Authorization: Bearer $ADMIN\" $CUSTOS/v1/tenants");
    println!("curl -s -H \"Authorization: Bearer $KEY\" \"$CUSTOS/v1/subjects/lookup?email=jane.doe@example.com\"");
    println!("curl -s -H \"Authorization: Bearer $KEY\" \"$CUSTOS/v1/subjects/{}/records/profile/main?purpose=support\"", t.jane);
    println!("curl -s -H \"Authorization: Bearer $SUPPORT\" \"$CUSTOS/v1/subjects/{}/records/profile/main\"   # masked", t.jane);
    println!("curl -s -H \"Authorization: Bearer $KEY\" \"$CUSTOS/v1/subjects/{}/export?purpose=access_request\"", t.jane);
    println!(
        "curl -s -H \"Authorization: Bearer $KEY\" \"$CUSTOS/v1/tokens/{}\"",
        t.jane_token
    );
    println!(
        "curl -s -H \"Authorization: Bearer $KEY\" \"$CUSTOS/v1/tokens/{}\"   # 410: erased",
        t.erased_token
    );
    println!("curl -s -H \"Authorization: Bearer $KEY\" \"$CUSTOS/v1/subjects/{}/records/profile/main?purpose=support\"   # 410", t.erased);
    println!("curl -s -H \"Authorization: Bearer $KEY\" \"$CUSTOS/v1/subjects/{}/records/billing/sepa?purpose=billing\"   # 403: restricted", t.restricted);
    println!("curl -s -H \"Authorization: Bearer $KEY\" \"$CUSTOS/v1/subjects/{}/records/billing/sepa?purpose=legal_claims\"", t.restricted);
    println!("curl -s -X DELETE -H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' -d '{{\"reason\":\"subject_request\"}}' \"$CUSTOS/v1/subjects/{}\"", t.jane);
    println!("curl -s -H \"Authorization: Bearer $KEY\" \"$CUSTOS/v1/audit?limit=20\"");
    println!("curl -s -H \"Authorization: Bearer $KEY\" \"$CUSTOS/v1/ropa?format=md\"");
    println!("curl -s -H \"Authorization: Bearer $KEY\" -H 'Content-Type: text/plain' --data-binary 'login ok for jane.doe@example.com from 203.0.113.7' \"$CUSTOS/v1/scrub\"");
    println!("curl -s $CUSTOS/openapi.json | head -c 300");
    println!();
}
