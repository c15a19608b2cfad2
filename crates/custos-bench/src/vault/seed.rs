//! Bulk seeding of subjects with the rows `Subjects::create` writes, built
//! with the same custos-core calls, for the lookup figures.

use std::sync::Arc;

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use custos_core::blind::{blind_index, IdentityKind};
use custos_core::ids::SubjectId;
use custos_core::keys::{SubjectKey, TenantKeys};
use rand_core::OsRng;

use super::{email_of, sqlite_pool, Bench, TENANT};

impl Bench {
    /// Inserts subjects `from..to` exactly as `Subjects::create` would.
    pub(super) async fn bulk_seed(
        &self,
        tk: &Arc<TenantKeys>,
        from: u64,
        to: u64,
    ) -> anyhow::Result<()> {
        const BATCH: u64 = 10_000;
        let data = sqlite_pool(&self.dir.path().join("data.db"), 1).await?;
        let keys = sqlite_pool(&self.dir.path().join("keys").join("keys.db"), 1).await?;
        let mut start = from;
        // Rows of the next batch are built on a blocking thread while the
        // current one is inserted.
        let build = |a: u64, b: u64| {
            let tk = tk.clone();
            tokio::task::spawn_blocking(move || build_rows(&tk, a, b))
        };
        let mut pending = (start < to).then(|| build(start, (start + BATCH).min(to)));
        while let Some(job) = pending.take() {
            let rows = job.await??;
            start = (start + BATCH).min(to);
            if start < to {
                pending = Some(build(start, (start + BATCH).min(to)));
            }
            insert_rows(&data, &keys, &rows).await?;
        }
        data.close().await;
        keys.close().await;
        Ok(())
    }
}

/// What `Subjects::create` stores for one subject.
struct SeedRow {
    id: String,
    blind: Vec<u8>,
    value_ct: Vec<u8>,
    wrapped: Vec<u8>,
}

fn build_rows(tk: &TenantKeys, from: u64, to: u64) -> anyhow::Result<Vec<SeedRow>> {
    let bkey = tk.blind_index_key("email");
    let mut out = Vec::with_capacity((to - from) as usize);
    for i in from..to {
        let id = SubjectId::generate(&mut OsRng);
        let dek = SubjectKey::generate(tk.tenant.clone(), id, &mut OsRng);
        let norm = IdentityKind::Email.normalise(&email_of(i))?;
        let blind = blind_index(&bkey, &norm);
        let value_ct = dek.seal_identity("email", norm.expose().as_bytes(), &mut OsRng);
        let wrapped = tk.wrap_subject_key(&id, dek.key(), &mut OsRng);
        out.push(SeedRow {
            id: id.to_string(),
            blind: blind.to_vec(),
            value_ct,
            wrapped,
        });
    }
    Ok(out)
}

async fn insert_rows(data: &SqlitePool, keys: &SqlitePool, rows: &[SeedRow]) -> anyhow::Result<()> {
    const CHUNK: usize = 200;
    let now = custos_store::now_us();
    let mut kt = keys.begin().await?;
    for chunk in rows.chunks(CHUNK) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO subject_keys (subject, tenant, kek_version, wrapped) ");
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.id.as_str())
                .push_bind(TENANT)
                .push_bind(1i64)
                .push_bind(r.wrapped.as_slice());
        });
        q.build().execute(&mut *kt).await?;
    }
    kt.commit().await?;
    let mut dt = data.begin().await?;
    for chunk in rows.chunks(CHUNK) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO subjects (id, tenant, external_id, created_us) ");
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.id.as_str())
                .push_bind(TENANT)
                .push_bind(None::<String>)
                .push_bind(now);
        });
        q.build().execute(&mut *dt).await?;
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO identities (tenant, kind, blind, subject, value_ct) ");
        q.push_values(chunk, |mut b, r| {
            b.push_bind(TENANT)
                .push_bind("email")
                .push_bind(r.blind.as_slice())
                .push_bind(r.id.as_str())
                .push_bind(r.value_ct.as_slice());
        });
        q.build().execute(&mut *dt).await?;
    }
    dt.commit().await?;
    Ok(())
}
