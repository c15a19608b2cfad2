//! The single writer of the data store, with group commit.
//!
//! All writes and audit appends go through one task that takes whatever
//! jobs are queued (up to [`MAX_BATCH`]), runs each inside its own
//! savepoint of one transaction, appends their audit entries to the hash
//! chain, and commits once. Callers are answered only after the commit, so
//! an acknowledged write is durable; one fsync is shared by the batch, which
//! is what lets durable writes and audited reveals run at thousands per
//! second on one SQLite file. On PostgreSQL several servers each run a
//! writer; the audit head row is locked for the end of each transaction so
//! that their chains interleave correctly.

use std::time::{Duration, Instant};

use sqlx::{Any, AnyPool, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use custos_core::audit::{self, AuditEvent, Checkpoint};
use custos_core::keys::RootKey;

use crate::db::Engine;
use crate::error::is_unique_violation;
use crate::keystore::{to32, KeyStore};
use crate::StoreError;

/// Most jobs committed together.
pub(crate) const MAX_BATCH: usize = 512;
/// A checkpoint is signed at least every this many entries …
const CHECKPOINT_EVERY: i64 = 1000;
/// … and when this much time passed since the last one with entries since.
const CHECKPOINT_AFTER: Duration = Duration::from_secs(5);

/// One change to the data store.
#[derive(Debug)]
pub(crate) enum Op {
    /// Only the attached audit events.
    AuditOnly,
    CreateTenant {
        id: String,
        name: String,
    },
    ShredTenant {
        id: String,
    },
    CreateKey {
        id: String,
        tenant: String,
        secret_hash: Vec<u8>,
        scopes: String,
        expires_us: Option<i64>,
    },
    RevokeKey {
        id: String,
        tenant: String,
    },
    CreateSubject {
        id: String,
        tenant: String,
        external_id: Option<String>,
        /// (kind, blind index, encrypted value)
        identities: Vec<(String, Vec<u8>, Vec<u8>)>,
    },
    PutRecord {
        tenant: String,
        subject: String,
        collection: String,
        rkey: String,
        fields: Vec<u8>,
    },
    DeleteRecord {
        tenant: String,
        subject: String,
        collection: String,
        rkey: String,
    },
    IssueToken {
        token: String,
        tenant: String,
        audience: String,
        subject: String,
    },
    SetRestriction {
        tenant: String,
        subject: String,
        restricted: bool,
    },
    Erase {
        tenant: String,
        subject: String,
        reason: String,
        actor: String,
    },
}

/// A queued job: the change, its audit events, and where to answer.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) op: Op,
    pub(crate) audit: Vec<AuditEvent>,
    pub(crate) reply: oneshot::Sender<Result<u64, StoreError>>,
}

/// Handle to submit jobs.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    pub(crate) fn spawn(pool: AnyPool, engine: Engine, keystore: KeyStore, root: RootKey) -> Self {
        let (tx, rx) = mpsc::channel(8192);
        tokio::spawn(run(pool, engine, keystore, root, rx));
        Self { tx }
    }

    /// Submits a job and waits for its commit. Returns rows affected by the op.
    pub(crate) async fn submit(&self, op: Op, audit: Vec<AuditEvent>) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { op, audit, reply })
            .await
            .map_err(|_| StoreError::ShuttingDown)?;
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }
}

struct State {
    last_checkpoint_seq: i64,
    last_checkpoint_at: Instant,
    signing: ed25519_dalek::SigningKey,
}

async fn run(
    pool: AnyPool,
    engine: Engine,
    keystore: KeyStore,
    root: RootKey,
    mut rx: mpsc::Receiver<Job>,
) {
    let mut state = State {
        last_checkpoint_seq: last_checkpoint(&pool).await.unwrap_or(0),
        last_checkpoint_at: Instant::now(),
        signing: root.audit_signing_key(),
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let tick = tokio::time::sleep(CHECKPOINT_AFTER);
        tokio::select! {
            n = rx.recv_many(&mut batch, MAX_BATCH) => {
                if n == 0 {
                    break;
                }
            }
            _ = tick => {}
        }
        commit_batch(&pool, engine, &keystore, &mut state, &mut batch).await;
    }
    // Channel closed: sign a final checkpoint so the tail is anchored.
    commit_batch(&pool, engine, &keystore, &mut state, &mut batch).await;
}

async fn last_checkpoint(pool: &AnyPool) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints")
        .fetch_one(pool)
        .await?;
    Ok(row.try_get::<i64, _>(0)?)
}

async fn commit_batch(
    pool: &AnyPool,
    engine: Engine,
    keystore: &KeyStore,
    state: &mut State,
    batch: &mut Vec<Job>,
) {
    let jobs: Vec<Job> = std::mem::take(batch);
    let mut results: Vec<Result<u64, StoreError>> = Vec::with_capacity(jobs.len());
    let outcome = async {
        let mut tx = pool.begin().await?;
        let now_us = crate::now_us();
        let mut events: Vec<&AuditEvent> = Vec::new();
        for job in &jobs {
            sqlx::query("SAVEPOINT job").execute(&mut *tx).await?;
            match apply(&mut tx, &job.op, now_us).await {
                Ok(n) => {
                    sqlx::query("RELEASE SAVEPOINT job")
                        .execute(&mut *tx)
                        .await?;
                    events.extend(job.audit.iter());
                    results.push(Ok(n));
                }
                Err(e) => {
                    sqlx::query("ROLLBACK TO SAVEPOINT job")
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("RELEASE SAVEPOINT job")
                        .execute(&mut *tx)
                        .await?;
                    results.push(Err(e));
                }
            }
        }
        let checkpoint = append_audit(&mut tx, engine, state, &events, now_us).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(checkpoint)
    }
    .await;
    match outcome {
        Ok(checkpoint) => {
            if let Some(cp) = checkpoint {
                state.last_checkpoint_seq = cp.seq;
                state.last_checkpoint_at = Instant::now();
                if let Err(e) = keystore.set_anchor(&cp).await {
                    tracing::error!(error = %e, "could not anchor audit checkpoint in the key store");
                }
            }
            for (job, r) in jobs.into_iter().zip(results) {
                let _ = job.reply.send(r);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, jobs = jobs.len(), "batch commit failed");
            for job in jobs {
                let _ = job
                    .reply
                    .send(Err(StoreError::Database("batch commit failed".into())));
            }
        }
    }
}

async fn append_audit(
    tx: &mut Transaction<'static, Any>,
    engine: Engine,
    state: &State,
    events: &[&AuditEvent],
    now_us: i64,
) -> Result<Option<Checkpoint>, StoreError> {
    let lock = if engine == Engine::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let head = sqlx::query(&format!(
        "SELECT seq, hash FROM audit_head WHERE id = 1{lock}"
    ))
    .fetch_one(&mut **tx)
    .await?;
    let mut seq: i64 = head.try_get(0)?;
    let mut hash = to32(head.try_get(1)?)?;
    let due_by_time =
        state.last_checkpoint_at.elapsed() >= CHECKPOINT_AFTER && seq > state.last_checkpoint_seq;
    if events.is_empty() && !due_by_time {
        return Ok(None);
    }
    for ev in events {
        seq += 1;
        let e = audit::chain(hash, seq, now_us, (*ev).clone());
        sqlx::query(
            "INSERT INTO audit_log (seq, at_us, tenant, actor, action, subject, purpose, outcome, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(e.seq)
        .bind(e.at_us)
        .bind(e.event.tenant)
        .bind(e.event.actor)
        .bind(e.event.action)
        .bind(e.event.subject)
        .bind(e.event.purpose)
        .bind(e.event.outcome)
        .bind(e.prev_hash.to_vec())
        .bind(e.hash.to_vec())
        .execute(&mut **tx)
        .await?;
        hash = e.hash;
    }
    if !events.is_empty() {
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(seq)
            .bind(hash.to_vec())
            .execute(&mut **tx)
            .await?;
    }
    let crossed = seq / CHECKPOINT_EVERY > state.last_checkpoint_seq / CHECKPOINT_EVERY;
    if (crossed || due_by_time) && seq > state.last_checkpoint_seq {
        let cp = Checkpoint::sign(&state.signing, seq, hash);
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, signature, at_us) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (seq) DO NOTHING",
        )
        .bind(cp.seq)
        .bind(cp.hash.to_vec())
        .bind(cp.signature.clone())
        .bind(now_us)
        .execute(&mut **tx)
        .await?;
        return Ok(Some(cp));
    }
    Ok(None)
}

fn conflict(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(what)
        } else {
            StoreError::from(e)
        }
    }
}

async fn apply(tx: &mut Transaction<'static, Any>, op: &Op, now: i64) -> Result<u64, StoreError> {
    let c = &mut **tx;
    Ok(match op {
        Op::AuditOnly => 0,
        Op::CreateTenant { id, name } => sqlx::query("INSERT INTO tenants (id, name, created_us) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(name)
            .bind(now)
            .execute(c)
            .await
            .map_err(conflict("tenant"))?
            .rows_affected(),
        Op::ShredTenant { id } => {
            let n = sqlx::query("UPDATE tenants SET shredded_us = $1 WHERE id = $2 AND shredded_us IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *c)
                .await?
                .rows_affected();
            sqlx::query("UPDATE api_keys SET revoked_us = $1 WHERE tenant = $2 AND revoked_us IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *c)
                .await?;
            sqlx::query("DELETE FROM identities WHERE tenant = $1")
                .bind(id)
                .execute(&mut *c)
                .await?;
            n
        }
        Op::CreateKey {
            id,
            tenant,
            secret_hash,
            scopes,
            expires_us,
        } => sqlx::query(
            "INSERT INTO api_keys (id, tenant, secret_hash, scopes, created_us, expires_us) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(tenant)
        .bind(secret_hash.clone())
        .bind(scopes)
        .bind(now)
        .bind(*expires_us)
        .execute(c)
        .await?
        .rows_affected(),
        Op::RevokeKey { id, tenant } => {
            sqlx::query("UPDATE api_keys SET revoked_us = $1 WHERE id = $2 AND tenant = $3 AND revoked_us IS NULL")
                .bind(now)
                .bind(id)
                .bind(tenant)
                .execute(c)
                .await?
                .rows_affected()
        }
        Op::CreateSubject {
            id,
            tenant,
            external_id,
            identities,
        } => {
            sqlx::query("INSERT INTO subjects (id, tenant, external_id, created_us) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(tenant)
                .bind(external_id.clone())
                .bind(now)
                .execute(&mut *c)
                .await
                .map_err(conflict("subject with this external_id"))?;
            for (kind, blind, ct) in identities {
                sqlx::query("INSERT INTO identities (tenant, kind, blind, subject, value_ct) VALUES ($1, $2, $3, $4, $5)")
                    .bind(tenant)
                    .bind(kind)
                    .bind(blind.clone())
                    .bind(id)
                    .bind(ct.clone())
                    .execute(&mut *c)
                    .await
                    .map_err(conflict("subject with this identity"))?;
            }
            1
        }
        Op::PutRecord {
            tenant,
            subject,
            collection,
            rkey,
            fields,
        } => sqlx::query(
            "INSERT INTO records (subject, collection, rkey, tenant, fields, updated_us) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS \
               (SELECT 1 FROM subjects WHERE id = $1 AND tenant = $4 AND erased_us IS NULL) \
             ON CONFLICT (subject, collection, rkey) DO UPDATE SET fields = excluded.fields, updated_us = excluded.updated_us",
        )
        .bind(subject)
        .bind(collection)
        .bind(rkey)
        .bind(tenant)
        .bind(fields.clone())
        .bind(now)
        .execute(c)
        .await?
        .rows_affected(),
        Op::DeleteRecord {
            tenant,
            subject,
            collection,
            rkey,
        } => sqlx::query("DELETE FROM records WHERE subject = $1 AND collection = $2 AND rkey = $3 AND tenant = $4")
            .bind(subject)
            .bind(collection)
            .bind(rkey)
            .bind(tenant)
            .execute(c)
            .await?
            .rows_affected(),
        Op::IssueToken {
            token,
            tenant,
            audience,
            subject,
        } => sqlx::query(
            "INSERT INTO tokens (token, tenant, audience, subject, created_us) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (token) DO NOTHING",
        )
        .bind(token)
        .bind(tenant)
        .bind(audience)
        .bind(subject)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected(),
        Op::SetRestriction {
            tenant,
            subject,
            restricted,
        } => {
            let at: Option<i64> = restricted.then_some(now);
            sqlx::query("UPDATE subjects SET restricted_us = $1 WHERE id = $2 AND tenant = $3 AND erased_us IS NULL")
                .bind(at)
                .bind(subject)
                .bind(tenant)
                .execute(c)
                .await?
                .rows_affected()
        }
        Op::Erase {
            tenant,
            subject,
            reason,
            actor,
        } => {
            let n = sqlx::query(
                "UPDATE subjects SET erased_us = $1, external_id = NULL, restricted_us = NULL \
                 WHERE id = $2 AND tenant = $3 AND erased_us IS NULL",
            )
            .bind(now)
            .bind(subject)
            .bind(tenant)
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n == 1 {
                sqlx::query("INSERT INTO erasure_ledger (subject, tenant, erased_us, reason, actor) VALUES ($1, $2, $3, $4, $5)")
                    .bind(subject)
                    .bind(tenant)
                    .bind(now)
                    .bind(reason)
                    .bind(actor)
                    .execute(&mut *c)
                    .await?;
                sqlx::query("DELETE FROM identities WHERE subject = $1")
                    .bind(subject)
                    .execute(&mut *c)
                    .await?;
            }
            n
        }
    })
}
