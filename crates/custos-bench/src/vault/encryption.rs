//! The cost of encryption (figure 6): `Subjects::put_record` in-process
//! against plain SQLite inserts with the same group commit, plus the naive
//! one-commit-per-insert model and the cost of one statement through sqlx.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::anyhow;
use serde_json::{Map, Value};
use sqlx::{Row, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use custos_core::ids::{Collection, RecordKey, SubjectId};

use super::{
    closure, record_fields, rounds_list, sqlite_pool, sqlite_url, summarize, Bench, CLIENTS,
};
use crate::util;

impl Bench {
    // ----- 6: encryption cost vs plain SQLite ------------------------------

    pub(super) async fn encryption_cost(&mut self) -> anyhow::Result<()> {
        eprintln!("[4/6] encryption cost: Subjects::put_record vs plain SQLite, {CLIENTS} tasks");
        let subjects: Arc<Vec<SubjectId>> = Arc::new(
            self.http_subjects(CLIENTS, "enc")
                .await?
                .iter()
                .map(|s| SubjectId::parse(s))
                .collect::<Result<_, _>>()?,
        );
        let coll = Collection::parse("profile")?;
        let sample = record_fields(1);
        let plain_bytes = pack_plain(&sample)?.len();
        let mut vault_rounds = Vec::new();
        for r in 0..self.plan.rounds {
            let (vault, p, subjects, coll) = (
                self.vault.clone(),
                Arc::new(self.principal.clone()),
                subjects.clone(),
                coll.clone(),
            );
            let op = closure(move |c, i| {
                let (vault, p, subjects, coll) =
                    (vault.clone(), p.clone(), subjects.clone(), coll.clone());
                async move {
                    let s = subjects.get(c).ok_or_else(|| anyhow!("no subject"))?;
                    let key = RecordKey::parse(&format!("e{r}-{i}"))?;
                    vault
                        .subjects()
                        .put_record(&p, s, &coll, &key, &record_fields(i))
                        .await?;
                    Ok(())
                }
            });
            let round = util::run_for(CLIENTS, self.plan.round, op).await?;
            eprintln!("  vault round {}: {}", r + 1, util::per_sec(round.rate()));
            vault_rounds.push(round);
        }
        let stored: i64 = sqlx::query("SELECT LENGTH(fields) FROM records WHERE rkey = 'e0-1'")
            .fetch_optional(self.vault.read_pool())
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(0);

        // Plain SQLite: same schema and settings, clear bytes, same 32
        // concurrent tasks, the same group-commit model as the vault's writer.
        let plain = sqlite_pool(&self.dir.path().join("plain.db"), 1).await?;
        sqlx::query(
            "CREATE TABLE records (subject TEXT NOT NULL, collection TEXT NOT NULL, rkey TEXT NOT NULL, \
             tenant TEXT NOT NULL, fields BLOB NOT NULL, updated_us INTEGER NOT NULL, \
             PRIMARY KEY (subject, collection, rkey))",
        )
        .execute(&plain)
        .await?;
        let (tx, rx) = mpsc::channel::<PlainJob>(8192);
        let writer = tokio::spawn(plain_writer(plain.clone(), rx));
        let mut plain_rounds = Vec::new();
        for r in 0..self.plan.rounds {
            let (tx, subjects) = (tx.clone(), subjects.clone());
            let op = closure(move |c, i| {
                let (tx, subjects) = (tx.clone(), subjects.clone());
                async move {
                    let s = subjects.get(c).ok_or_else(|| anyhow!("no subject"))?;
                    let (reply, answer) = oneshot::channel();
                    tx.send(PlainJob {
                        subject: s.to_string(),
                        rkey: format!("e{r}-{i}"),
                        fields: pack_plain(&record_fields(i))?,
                        reply,
                    })
                    .await
                    .map_err(|_| anyhow!("plain writer stopped"))?;
                    answer.await?.map_err(|e| anyhow!(e))
                }
            });
            let round = util::run_for(CLIENTS, self.plan.round, op).await?;
            eprintln!(
                "  plain (group commit) round {}: {}",
                r + 1,
                util::per_sec(round.rate())
            );
            plain_rounds.push(round);
        }
        drop(tx);
        writer.await?;

        // Informational: the naive plain model, one autocommit per insert.
        let naive = sqlite_pool(&self.dir.path().join("plain-naive.db"), 4).await?;
        sqlx::query(
            "CREATE TABLE records (subject TEXT NOT NULL, collection TEXT NOT NULL, rkey TEXT NOT NULL, \
             tenant TEXT NOT NULL, fields BLOB NOT NULL, updated_us INTEGER NOT NULL, \
             PRIMARY KEY (subject, collection, rkey))",
        )
        .execute(&naive)
        .await?;
        let op = {
            let (pool, subjects) = (naive.clone(), subjects.clone());
            closure(move |c, i| {
                let (pool, subjects) = (pool.clone(), subjects.clone());
                async move {
                    let s = subjects.get(c).ok_or_else(|| anyhow!("no subject"))?;
                    insert_plain(
                        &pool,
                        &s.to_string(),
                        &format!("n-{i}"),
                        pack_plain(&record_fields(i))?,
                    )
                    .await?;
                    Ok(())
                }
            })
        };
        let naive_round = util::run_for(CLIENTS, self.plan.round, op).await?;
        naive.close().await;

        // Diagnostic: cost of one statement round trip through sqlx's Any
        // driver to its SQLite worker thread, as the vault's writer pays for
        // every statement of a batch (writer.rs).
        let rt_us = statement_round_trip(&self.dir.path().join("plain.db")).await?;
        self.notes.push(format!(
            "writer cost per statement: a `SAVEPOINT`/`RELEASE` round trip through sqlx's Any driver to the SQLite worker thread takes {rt_us:.1} µs here (mean of 2,000 pairs in one transaction); `writer::run_batch` runs one statement per data-changing job (savepoints only when a failed job forces a rerun), one multi-row INSERT for the batch's audit entries and the head update, then the commit (fsync only for batches that change data)."
        ));
        plain.close().await;

        let (vmed, vrates, _, vp99, verr, vfirst) = summarize(&vault_rounds);
        let (pmed, prates, _, pp99, perr, pfirst) = summarize(&plain_rounds);
        let ratio = if pmed > 0.0 { vmed / pmed } else { 0.0 };
        self.metric(
            "6. encryption cost: vault field writes/s ÷ plain SQLite inserts/s",
            format!(
                "**{ratio:.2}** (vault {} [rounds {}, p99 {}] vs plain {} [rounds {}, p99 {}]; 4 fields, {plain_bytes} B clear → {stored} B sealed per record)",
                util::per_sec(vmed),
                rounds_list(&vrates),
                util::ms(vp99),
                util::per_sec(pmed),
                rounds_list(&prates),
                util::ms(pp99),
            ),
            "≥ 0.3",
            ratio >= 0.3 && verr == 0 && perr == 0,
        );
        self.error_note("vault direct writes", verr, vfirst);
        self.error_note("plain writes", perr, pfirst);
        self.notes.push(format!(
            "encryption cost: the vault side is `Subjects::put_record` called in-process (no HTTP) by {CLIENTS} tasks; the plain side is {CLIENTS} tasks feeding one sqlx writer that commits each queued batch in one transaction (the vault writer's model, minus encryption, savepoints and the audit chain). For reference, plain SQLite with one autocommit (one fsync) per insert on a 4-connection pool did {} ({} errors) — the vault is {:.1}× faster than that naive model.",
            util::per_sec(naive_round.rate()),
            naive_round.errors,
            if naive_round.rate() > 0.0 { vmed / naive_round.rate() } else { 0.0 },
        ));
        Ok(())
    }
}

/// The same packing as the store's record format (`u32 len, name, u32 len,
/// value` per field), but of the clear JSON values: what a plain table
/// would hold.
fn pack_plain(fields: &Map<String, Value>) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for (name, v) in fields {
        let bytes = serde_json::to_vec(v)?;
        out.extend_from_slice(&u32::try_from(name.len())?.to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&u32::try_from(bytes.len())?.to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

struct PlainJob {
    subject: String,
    rkey: String,
    fields: Vec<u8>,
    reply: oneshot::Sender<Result<(), String>>,
}

const PLAIN_INSERT: &str = "INSERT INTO records (subject, collection, rkey, tenant, fields, updated_us) \
     VALUES ($1, 'profile', $2, 'bench', $3, $4) \
     ON CONFLICT (subject, collection, rkey) DO UPDATE SET fields = excluded.fields, updated_us = excluded.updated_us";

async fn insert_plain(
    pool: &SqlitePool,
    subject: &str,
    rkey: &str,
    fields: Vec<u8>,
) -> anyhow::Result<()> {
    sqlx::query(PLAIN_INSERT)
        .bind(subject)
        .bind(rkey)
        .bind(fields)
        .bind(custos_store::now_us())
        .execute(pool)
        .await?;
    Ok(())
}

/// Group commit without the vault: take what is queued (≤ 512, like the
/// vault's writer), insert it in one transaction, answer after the commit.
async fn plain_writer(pool: SqlitePool, mut rx: mpsc::Receiver<PlainJob>) {
    let mut batch = Vec::with_capacity(512);
    while rx.recv_many(&mut batch, 512).await > 0 {
        let jobs = std::mem::take(&mut batch);
        let r = async {
            let mut tx = pool.begin().await?;
            let now = custos_store::now_us();
            for j in &jobs {
                sqlx::query(PLAIN_INSERT)
                    .bind(j.subject.as_str())
                    .bind(j.rkey.as_str())
                    .bind(j.fields.as_slice())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<(), sqlx::Error>(())
        }
        .await
        .map_err(|e| e.to_string());
        for j in jobs {
            let _ = j.reply.send(r.clone());
        }
    }
}

/// Mean µs of one statement through sqlx's Any driver (the vault's), in a
/// transaction, on a SQLite file with the store's settings.
async fn statement_round_trip(path: &Path) -> anyhow::Result<f64> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                use sqlx::Executor;
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = FULL").await?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                Ok(())
            })
        })
        .connect(&sqlite_url(path))
        .await?;
    let mut tx = pool.begin().await?;
    let n = 2_000u32;
    let t = Instant::now();
    for _ in 0..n {
        sqlx::query("SAVEPOINT job").execute(&mut *tx).await?;
        sqlx::query("RELEASE SAVEPOINT job")
            .execute(&mut *tx)
            .await?;
    }
    let us = t.elapsed().as_micros() as f64 / f64::from(2 * n);
    tx.commit().await?;
    pool.close().await;
    Ok(us)
}
