//! The single writer of the data store, with group commit.
//!
//! All writes and audit appends go through one task that takes whatever
//! jobs are queued (up to [`MAX_BATCH`]), runs them in one transaction,
//! appends their audit entries to the hash chain (one multi-row insert), and
//! commits once. Callers are answered only after the commit. Jobs run
//! without savepoints first (each savepoint is a round trip); if one fails,
//! the batch is rolled back and rerun with a savepoint per job, so a failed
//! job never takes its neighbours down.
//!
//! Durability: a batch that changes data is committed durably (SQLite
//! `synchronous=FULL`, PostgreSQL's default), so an acknowledged write
//! survives a crash of the machine. A batch that only appends the audit
//! entries of reads (reveal, lookup, export) is committed before the reader
//! is answered — it survives a crash of the process — but is flushed to disk
//! lazily (SQLite `synchronous=NORMAL`, PostgreSQL `synchronous_commit=off`),
//! at the latest [`SYNC_AFTER`] later or with the next durable commit. That
//! keeps audited reads off the fsync path. On PostgreSQL several servers each run a
//! writer; the audit head row is locked for the end of each transaction so
//! that their chains interleave correctly.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use custos_core::audit::{self, AuditEntry, AuditEvent, Checkpoint};
use custos_core::keys::RootKey;

use crate::db::Engine;
use crate::error::is_unique_violation;
use crate::keystore::{to32, KeyStore};
use crate::StoreError;

mod direct;
use direct::DirectConnection;

/// Most jobs committed together.
pub(crate) const MAX_BATCH: usize = 512;
/// A checkpoint is signed at least every this many entries …
const CHECKPOINT_EVERY: i64 = 1000;
/// … and when this much time passed since the last one with entries since.
const CHECKPOINT_AFTER: Duration = Duration::from_secs(5);
/// Longest time the audit entries of reads stay unflushed.
pub(crate) const SYNC_AFTER: Duration = Duration::from_millis(200);
/// Audit rows per INSERT statement (10 parameters each).
const AUDIT_ROWS_PER_INSERT: usize = 256;
/// Records per SELECT of a batch's audited reads (5 parameters each).
const READS_PER_SELECT: usize = 128;

/// One change to the data store.
#[derive(Debug)]
pub(crate) enum Op {
    /// Only the attached audit events.
    AuditOnly,
    /// Reads a record for a reveal in the batch's transaction; its one
    /// attached audit event gets the outcome the read found (no event when
    /// there is nothing to reveal). Reading here rather than on the read
    /// pool means no reveal is answered without its audit entry committed
    /// beside it, and a batch of reveals costs one SELECT on the writer's
    /// warm connection instead of one round trip per reveal on readers
    /// whose page caches every commit invalidates.
    ReadRecord(RecordRead),
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
    /// Replaces a live subject's identities of one kind (rectification).
    ReplaceIdentity {
        tenant: String,
        subject: String,
        kind: String,
        blind: Vec<u8>,
        ct: Vec<u8>,
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
    /// Consent ledger changes (`consent`): append-only events with their
    /// materialised state, policy versions, state rebuilds.
    Consent(crate::consent::ConsentOp),
    /// Data-subject requests (`request`): creation and guarded updates.
    Request(crate::request::RequestOp),
    /// Execution of requests (`execution`): plans, steps, progress.
    Exec(crate::execution::ExecOp),
}

/// What [`Op::ReadRecord`] looks up.
#[derive(Debug)]
pub(crate) struct RecordRead {
    pub(crate) tenant: String,
    pub(crate) subject: String,
    pub(crate) collection: String,
    pub(crate) rkey: String,
    /// The declared purpose lets a restricted subject's data out.
    pub(crate) restriction_exempt: bool,
}

/// What an [`Op::ReadRecord`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RecordFound {
    /// No such subject in the tenant (not audited).
    NoSubject,
    /// The subject was erased at this time (audited `gone`).
    Erased(i64),
    /// Restricted and the purpose is not exempt (audited `denied_restricted`).
    Restricted,
    /// The subject has no such record (not audited).
    NoRecord,
    /// The sealed fields and their last update (audited `ok`).
    Sealed { fields: Vec<u8>, updated_us: i64 },
}

impl RecordFound {
    /// What a read of a live subject's row found: its erasure time, whether
    /// a restriction withholds it from this read, and the record's columns.
    fn of(
        erased: Option<i64>,
        withheld: bool,
        fields: Option<Vec<u8>>,
        updated_us: Option<i64>,
    ) -> Self {
        match (erased, fields) {
            (Some(at), _) => Self::Erased(at),
            _ if withheld => Self::Restricted,
            (None, None) => Self::NoRecord,
            (None, Some(fields)) => Self::Sealed {
                fields,
                updated_us: updated_us.unwrap_or_default(),
            },
        }
    }

    /// The audit outcome of this read, if it is audited.
    fn outcome(&self) -> Option<&'static str> {
        match self {
            Self::NoSubject | Self::NoRecord => None,
            Self::Erased(_) => Some("gone"),
            Self::Restricted => Some("denied_restricted"),
            Self::Sealed { .. } => Some("ok"),
        }
    }
}

/// What a job's commit answers.
#[derive(Debug)]
pub(crate) enum Done {
    /// Rows the change affected.
    Rows(u64),
    /// What an audited read found.
    Read(RecordFound),
}

/// A queued job: the change, its audit events, and where to answer.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) op: Op,
    pub(crate) audit: Vec<AuditEvent>,
    pub(crate) reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// Handle to submit jobs.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
    stop: std::sync::Arc<tokio::sync::Notify>,
    /// Fires when the writer's thread has finished.
    done: std::sync::Arc<tokio::sync::Mutex<Option<oneshot::Receiver<()>>>>,
}

impl Writer {
    /// Starts the writer on a thread of its own, with a single-threaded
    /// runtime. Every batch is a chain of statement round trips to the
    /// database driver; as a task of the server's runtime each of them
    /// would wait behind the HTTP tasks queued there, and the one writer
    /// would idle while the CPUs serve its callers. A thread of its own
    /// is woken by the kernel as soon as its answer is there.
    ///
    /// `sqlite_file`, the data store's file on SQLite, gets a second
    /// connection that the thread drives itself for batches that only
    /// read and audit (see [`direct`]).
    pub(crate) fn spawn(
        pool: AnyPool,
        engine: Engine,
        keystore: KeyStore,
        root: RootKey,
        sqlite_file: Option<&std::path::Path>,
    ) -> Result<Self, StoreError> {
        let direct = sqlite_file.map(DirectConnection::open).transpose()?;
        let (tx, rx) = mpsc::channel(8192);
        let stop = std::sync::Arc::new(tokio::sync::Notify::new());
        let (done_tx, done_rx) = oneshot::channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Config(format!("starting the writer's runtime: {e}")))?;
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("custos-writer".into())
            .spawn(move || {
                rt.block_on(run(pool, direct, engine, keystore, root, rx, stopped));
                let _ = done_tx.send(());
            })
            .map_err(|e| StoreError::Config(format!("starting the writer's thread: {e}")))?;
        Ok(Self {
            tx,
            stop,
            done: std::sync::Arc::new(tokio::sync::Mutex::new(Some(done_rx))),
        })
    }

    /// Commits what is queued, signs a final checkpoint (anchoring the tail
    /// of the audit chain in the key store), flushes, and stops. Later
    /// submissions fail with `ShuttingDown`. Idempotent.
    pub(crate) async fn shutdown(&self) {
        self.stop.notify_one();
        if let Some(done) = self.done.lock().await.take() {
            let _ = done.await;
        }
    }

    /// Submits a job and waits for its commit. Returns rows affected by the op.
    pub(crate) async fn submit(&self, op: Op, audit: Vec<AuditEvent>) -> Result<u64, StoreError> {
        match self.send(op, audit).await? {
            Done::Rows(n) => Ok(n),
            Done::Read(_) => Err(StoreError::Database("a change answered as a read".into())),
        }
    }

    /// Reads a record in a batch's transaction and commits `audit` with
    /// the outcome found (see [`Op::ReadRecord`]).
    pub(crate) async fn read_record(
        &self,
        read: RecordRead,
        audit: AuditEvent,
    ) -> Result<RecordFound, StoreError> {
        match self.send(Op::ReadRecord(read), vec![audit]).await? {
            Done::Read(found) => Ok(found),
            Done::Rows(_) => Err(StoreError::Database("a read answered as a change".into())),
        }
    }

    async fn send(&self, op: Op, audit: Vec<AuditEvent>) -> Result<Done, StoreError> {
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
    /// The SQLite connection's current `synchronous` level is FULL.
    sqlite_full: bool,
    /// A lazily flushed commit happened since the last durable one.
    unsynced_since: Option<Instant>,
    /// Sign a checkpoint at the next commit whatever the schedule says.
    force_checkpoint: bool,
}

/// The writer's connections, held between batches: one of the pool's
/// (taking it from the pool for each batch would cost two more round
/// trips to the driver: sqlx pings a connection when it goes back to the
/// pool, in a task of its own, and the next batch waits for that), and on
/// an SQLite file its own ([`direct`]).
struct Held {
    pool: AnyPool,
    conn: Option<PoolConnection<Any>>,
    /// With it, its checkpoint thread copies the log back, not the
    /// commits of the pool's connection.
    direct: Option<DirectConnection>,
}

impl Held {
    /// The held connection, taken from the pool first if there is none.
    /// A fresh one is set to durable commits (`sqlite_full`).
    async fn get(
        &mut self,
        engine: Engine,
        state: &mut State,
    ) -> Result<&mut AnyConnection, StoreError> {
        let conn = match self.conn.take() {
            Some(c) => c,
            None => {
                let mut c = self.pool.acquire().await?;
                if engine == Engine::Sqlite {
                    sqlx::query("PRAGMA synchronous = FULL")
                        .execute(&mut *c)
                        .await?;
                    state.sqlite_full = true;
                    if self.direct.is_some() {
                        sqlx::query("PRAGMA wal_autocheckpoint = 0")
                            .execute(&mut *c)
                            .await?;
                    }
                }
                c
            }
        };
        Ok(&mut **self.conn.insert(conn))
    }

    /// Gives the connection back after an error, with whatever
    /// transaction the error left open rolled back: the pool tests it and
    /// closes it if it is broken; the next batch takes one again.
    async fn release(&mut self) {
        if let Some(mut c) = self.conn.take() {
            // Fails harmlessly when no transaction is open.
            let _ = sqlx::query("ROLLBACK").execute(&mut *c).await;
        }
    }
}

async fn run(
    pool: AnyPool,
    direct: Option<DirectConnection>,
    engine: Engine,
    keystore: KeyStore,
    root: RootKey,
    mut rx: mpsc::Receiver<Job>,
    stop: std::sync::Arc<tokio::sync::Notify>,
) {
    let mut state = State {
        last_checkpoint_seq: last_checkpoint(&pool).await.unwrap_or(0),
        last_checkpoint_at: Instant::now(),
        signing: root.audit_signing_key(),
        sqlite_full: true,
        unsynced_since: None,
        force_checkpoint: false,
    };
    let mut held = Held {
        pool,
        conn: None,
        direct,
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let wait = match state.unsynced_since {
            Some(t) => SYNC_AFTER.saturating_sub(t.elapsed()),
            None => CHECKPOINT_AFTER,
        };
        let tick = tokio::time::sleep(wait);
        tokio::select! {
            n = rx.recv_many(&mut batch, MAX_BATCH) => {
                if n == 0 {
                    break;
                }
            }
            _ = tick => {}
            _ = stop.notified() => break,
        }
        commit_batch(&mut held, engine, &keystore, &mut state, &mut batch).await;
        if state
            .unsynced_since
            .is_some_and(|t| t.elapsed() >= SYNC_AFTER)
        {
            flush(&mut held, engine, &mut state).await;
        }
    }
    // Stopping: refuse new jobs, commit the queued ones, and sign a final
    // checkpoint so the tail of the chain is anchored.
    rx.close();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit_batch(&mut held, engine, &keystore, &mut state, &mut batch).await;
    }
    state.force_checkpoint = true;
    commit_batch(&mut held, engine, &keystore, &mut state, &mut batch).await;
    flush(&mut held, engine, &mut state).await;
}

/// Forces lazily committed audit entries to disk: a durable commit flushes
/// the log (WAL) up to itself, and with it every earlier lazy commit.
async fn flush(held: &mut Held, engine: Engine, state: &mut State) {
    if state.unsynced_since.is_none() {
        return;
    }
    let r = async {
        let conn = held.get(engine, state).await?;
        if engine == Engine::Sqlite && !state.sqlite_full {
            sqlx::query("PRAGMA synchronous = FULL")
                .execute(&mut *conn)
                .await?;
            state.sqlite_full = true;
        }
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
            .execute(&mut *conn)
            .await?;
        Ok::<_, StoreError>(())
    }
    .await;
    match r {
        Ok(()) => state.unsynced_since = None,
        Err(e) => {
            tracing::warn!(error = %e, "could not flush the audit log");
            held.release().await;
        }
    }
}

async fn last_checkpoint(pool: &AnyPool) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints")
        .fetch_one(pool)
        .await?;
    Ok(row.try_get::<i64, _>(0)?)
}

async fn commit_batch(
    held: &mut Held,
    engine: Engine,
    keystore: &KeyStore,
    state: &mut State,
    batch: &mut Vec<Job>,
) {
    let jobs: Vec<Job> = std::mem::take(batch);
    let fail_all = |jobs: Vec<Job>| {
        for job in jobs {
            let _ = job
                .reply
                .send(Err(StoreError::Database("batch commit failed".into())));
        }
    };
    // Checkpoint-only commits (no jobs) are durable too.
    let durable = jobs.is_empty() || jobs.iter().any(|j| !j.op.is_read());
    let outcome = match &mut held.direct {
        Some(direct) if !durable => direct.run_batch(state, &jobs),
        _ => commit_on_pool_connection(held, engine, state, &jobs, durable).await,
    };
    match outcome {
        Ok((checkpoint, results)) => {
            // A durable commit that wrote something flushed the log up to
            // itself; an empty one may have written nothing.
            if durable && !jobs.is_empty() && (engine == Engine::Postgres || state.sqlite_full) {
                state.unsynced_since = None;
            } else if !durable && state.unsynced_since.is_none() && !jobs.is_empty() {
                state.unsynced_since = Some(Instant::now());
            }
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
            fail_all(jobs);
        }
    }
}

/// Runs a batch on the pool's connection that the writer holds. On an
/// error the connection is released (its transaction rolled back).
async fn commit_on_pool_connection(
    held: &mut Held,
    engine: Engine,
    state: &mut State,
    jobs: &[Job],
    durable: bool,
) -> Result<BatchOutcome, StoreError> {
    let conn = match held.get(engine, state).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no connection for the writer");
            return Err(e);
        }
    };
    if engine == Engine::Sqlite && state.sqlite_full != durable {
        // One writer connection: the pragma holds for the next commit.
        let level = if durable { "FULL" } else { "NORMAL" };
        match sqlx::query(&format!("PRAGMA synchronous = {level}"))
            .execute(&mut *conn)
            .await
        {
            Ok(_) => state.sqlite_full = durable,
            Err(e) if durable => {
                // Never acknowledge a write that might not be durable.
                tracing::error!(error = %e, "could not set synchronous = FULL");
                held.release().await;
                return Err(e.into());
            }
            Err(e) => tracing::warn!(error = %e, "could not set synchronous"),
        }
    }
    let mut outcome = run_batch(conn, engine, state, jobs, durable, false).await;
    // A job failed (and the attempt was rolled back): rerun with a savepoint
    // per job so only the failing jobs fail. A failed commit is not retried:
    // on a lost connection it may have committed.
    if matches!(&outcome, Ok((_, results)) if results.iter().any(Result::is_err)) {
        outcome = run_batch(conn, engine, state, jobs, durable, true).await;
    }
    if outcome.is_err() {
        held.release().await;
    }
    outcome
}

type BatchOutcome = (Option<Checkpoint>, Vec<Result<Done, StoreError>>);

impl Op {
    /// Changes nothing but the audit log: committed lazily (see the module).
    fn is_read(&self) -> bool {
        matches!(self, Op::AuditOnly | Op::ReadRecord(_))
    }
}

/// One attempt at a batch. Without savepoints, the first failing job
/// aborts the attempt (the caller retries with savepoints). On an error the
/// transaction may still be open: the caller rolls it back
/// ([`Held::release`]).
///
/// Each statement is a round trip to the driver (for SQLite, to the
/// connection's thread), and the batch holds the write lock for all of
/// them, so SQLite gets its statements in as few trips as it can: a
/// batch of reads sends its `BEGIN` with the reads and the audit head's
/// read, and every batch sends its audit entries with the head's update
/// and the `COMMIT`. Such a string runs statement by statement and stops
/// at the first error; its anonymous `?` arguments are bound in order
/// across the statements. PostgreSQL takes one statement per message.
async fn run_batch(
    conn: &mut AnyConnection,
    engine: Engine,
    state: &State,
    jobs: &[Job],
    durable: bool,
    savepoints: bool,
) -> Result<BatchOutcome, StoreError> {
    let mut results: Vec<Result<Done, StoreError>> = Vec::with_capacity(jobs.len());
    // SQLite: take the write lock up front. A deferred transaction that
    // reads first cannot be upgraded once another connection (consent,
    // the request executor) has committed since: it fails at once with
    // SQLITE_BUSY_SNAPSHOT instead of waiting out the busy timeout.
    let begin = match engine {
        Engine::Sqlite => "BEGIN IMMEDIATE",
        Engine::Postgres => "BEGIN",
    };
    let writes = jobs.iter().any(|j| !j.op.is_read());
    let mut pending_begin = Some(begin);
    if engine == Engine::Postgres || writes || savepoints {
        sqlx::query(begin).execute(&mut *conn).await?;
        pending_begin = None;
        if engine == Engine::Postgres && !durable {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *conn)
                .await?;
        }
    }
    let now_us = crate::now_us();
    for job in jobs {
        if job.op.is_read() {
            // Audit-only jobs change nothing; reads run after the changes.
            results.push(Ok(Done::Rows(0)));
            continue;
        }
        if !savepoints {
            match apply(&mut *conn, &job.op, now_us).await {
                Ok(n) => results.push(Ok(Done::Rows(n))),
                Err(e) => {
                    results.push(Err(e));
                    // Roll back explicitly; the retry starts afresh.
                    sqlx::query("ROLLBACK").execute(&mut *conn).await?;
                    return Ok((None, results));
                }
            }
            continue;
        }
        savepoint(conn).await?;
        let r = apply(&mut *conn, &job.op, now_us).await;
        end_savepoint(conn, r.is_ok()).await?;
        results.push(r.map(Done::Rows));
    }
    // Audited reads see every change of the batch before them.
    let reads: Vec<(usize, &RecordRead)> = jobs
        .iter()
        .enumerate()
        .filter_map(|(i, j)| match &j.op {
            Op::ReadRecord(r) => Some((i, r)),
            _ => None,
        })
        .collect();
    // SQLite reads the head with the reads, unless they run under a
    // savepoint that may be rolled back.
    let fold_head = engine == Engine::Sqlite && !savepoints;
    let mut head = None;
    if !reads.is_empty() || pending_begin.is_some() {
        if savepoints {
            savepoint(conn).await?;
        }
        let found = read_records(conn, engine, pending_begin, &reads, fold_head).await;
        if savepoints {
            end_savepoint(conn, found.is_ok()).await?;
        }
        match found {
            Ok((found, h)) => {
                head = h;
                for ((i, _), f) in reads.iter().zip(found) {
                    if let Some(slot) = results.get_mut(*i) {
                        *slot = Ok(Done::Read(f));
                    }
                }
            }
            Err(e) => {
                for (i, _) in &reads {
                    if let Some(slot) = results.get_mut(*i) {
                        *slot = Err(StoreError::Database("record read failed".into()));
                    }
                }
                if !savepoints {
                    // Roll back; the retry reads under a savepoint of their
                    // own. Without reads, what failed was the `BEGIN` or
                    // the head's read sent with it, and no job is marked
                    // failed to retry: the batch fails.
                    let rolled_back = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                    if reads.is_empty() {
                        return Err(e);
                    }
                    rolled_back?;
                    return Ok((None, results));
                }
                tracing::error!(error = %e, reads = reads.len(), "audited record reads failed");
            }
        }
    }
    let head = match head {
        Some(h) => h,
        None => read_head(conn, engine).await?,
    };
    let events = audit_events(jobs, &results);
    let checkpoint = append_audit_and_commit(conn, engine, state, head, events, now_us).await?;
    Ok((checkpoint, results))
}

/// The audit events of a batch's jobs that succeeded, in job order. A
/// read's event carries the outcome it found, and a read that found
/// nothing to reveal is not audited.
fn audit_events<'a>(
    jobs: &'a [Job],
    results: &[Result<Done, StoreError>],
) -> Vec<Cow<'a, AuditEvent>> {
    let mut events = Vec::new();
    for (job, r) in jobs.iter().zip(results) {
        match r {
            Err(_) => {}
            Ok(Done::Read(found)) => {
                if let Some(outcome) = found.outcome() {
                    events.extend(job.audit.iter().map(|e| {
                        Cow::Owned(AuditEvent {
                            outcome: outcome.to_owned(),
                            ..e.clone()
                        })
                    }));
                }
            }
            Ok(Done::Rows(_)) => events.extend(job.audit.iter().map(Cow::Borrowed)),
        }
    }
    events
}

/// Opens the savepoint a rerun batch puts around each job (and around
/// its reads), so that a failing one fails alone.
async fn savepoint(conn: &mut AnyConnection) -> Result<(), StoreError> {
    sqlx::query("SAVEPOINT job").execute(conn).await?;
    Ok(())
}

/// Closes [`savepoint`], undoing what ran under it unless `keep`.
async fn end_savepoint(conn: &mut AnyConnection, keep: bool) -> Result<(), StoreError> {
    if !keep {
        sqlx::query("ROLLBACK TO SAVEPOINT job")
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("RELEASE SAVEPOINT job").execute(conn).await?;
    Ok(())
}

/// The audit chain's head (last sequence number and hash).
type Head = (i64, [u8; 32]);

/// The audit head's row, shaped to come back among a batch's reads
/// (`i` = -1). Locked on PostgreSQL, where several servers append.
const HEAD: &str = "SELECT -1, seq, hash FROM audit_head WHERE id = 1";

async fn read_head(conn: &mut AnyConnection, engine: Engine) -> Result<Head, StoreError> {
    let lock = if engine == Engine::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let row = sqlx::query(&format!("{HEAD}{lock}"))
        .fetch_one(conn)
        .await?;
    Ok((row.try_get(1)?, to32(row.try_get(2)?)?))
}

/// Binds one statement's worth of reads (5 arguments each).
fn bind_reads<'q>(
    mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    chunk_no: usize,
    chunk: &[(usize, &'q RecordRead)],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for (k, (_, r)) in chunk.iter().enumerate() {
        let i = i64::try_from(chunk_no * READS_PER_SELECT + k).unwrap_or(i64::MAX);
        q = q
            .bind(i)
            .bind(r.subject.as_str())
            .bind(r.tenant.as_str())
            .bind(r.collection.as_str())
            .bind(r.rkey.as_str());
    }
    q
}

/// Looks up the records of a batch's reads, [`READS_PER_SELECT`] per
/// statement, answering in the order of `reads`. `begin` opens the
/// transaction first if it is not open yet. On SQLite, all of it is one
/// round trip, and with `fold_head` the audit head comes back with it.
async fn read_records(
    conn: &mut AnyConnection,
    engine: Engine,
    begin: Option<&str>,
    reads: &[(usize, &RecordRead)],
    fold_head: bool,
) -> Result<(Vec<RecordFound>, Option<Head>), StoreError> {
    let select = |n: usize| {
        format!(
            "WITH q (i, sid, ten, coll, rk) AS (VALUES {}) \
             SELECT q.i, s.erased_us, s.restricted_us, r.fields, r.updated_us FROM q \
             JOIN subjects s ON s.id = q.sid AND s.tenant = q.ten \
             LEFT JOIN records r ON r.subject = q.sid AND r.collection = q.coll AND r.rkey = q.rk",
            engine.values(n, 5)
        )
    };
    let mut rows = Vec::new();
    if engine == Engine::Sqlite {
        let mut sql = String::new();
        for part in begin
            .map(str::to_owned)
            .into_iter()
            .chain(reads.chunks(READS_PER_SELECT).map(|c| select(c.len())))
            .chain(fold_head.then(|| HEAD.to_owned()))
        {
            if !sql.is_empty() {
                sql.push_str("; ");
            }
            sql.push_str(&part);
        }
        if !sql.is_empty() {
            let mut q = sqlx::query(&sql);
            for (c, chunk) in reads.chunks(READS_PER_SELECT).enumerate() {
                q = bind_reads(q, c, chunk);
            }
            rows = q.fetch_all(&mut *conn).await?;
        }
    } else {
        if let Some(b) = begin {
            sqlx::query(b).execute(&mut *conn).await?;
        }
        for (c, chunk) in reads.chunks(READS_PER_SELECT).enumerate() {
            let sql = select(chunk.len());
            let mut r = bind_reads(sqlx::query(&sql), c, chunk)
                .fetch_all(&mut *conn)
                .await?;
            rows.append(&mut r);
        }
    }
    let mut found: Vec<RecordFound> = reads.iter().map(|_| RecordFound::NoSubject).collect();
    let mut head = None;
    for row in rows {
        let i: i64 = row.try_get(0)?;
        if i < 0 {
            head = Some((row.try_get::<i64, _>(1)?, to32(row.try_get(2)?)?));
            continue;
        }
        let i = usize::try_from(i).unwrap_or(usize::MAX);
        let (Some(slot), Some((_, read))) = (found.get_mut(i), reads.get(i)) else {
            return Err(StoreError::Database("record read out of range".into()));
        };
        let restricted: Option<i64> = row.try_get(2)?;
        *slot = RecordFound::of(
            row.try_get(1)?,
            restricted.is_some() && !read.restriction_exempt,
            row.try_get(3)?,
            row.try_get(4)?,
        );
    }
    Ok((found, head))
}

/// Chains `events` onto `head`, appends them ([`AUDIT_ROWS_PER_INSERT`]
/// per statement), moves the head, signs a checkpoint when one is due,
/// and commits: on SQLite in one round trip.
async fn append_audit_and_commit(
    conn: &mut AnyConnection,
    engine: Engine,
    state: &State,
    head: Head,
    events: Vec<Cow<'_, AuditEvent>>,
    now_us: i64,
) -> Result<Option<Checkpoint>, StoreError> {
    let (entries, checkpoint) = chain_entries(state, head, events, now_us);
    let mut script = Script::new(engine);
    for chunk in entries.chunks(AUDIT_ROWS_PER_INSERT) {
        let args = script.statement(format!(
            "INSERT INTO audit_log (seq, at_us, tenant, actor, action, subject, purpose, outcome, prev_hash, hash) VALUES {}",
            engine.values(chunk.len(), 10)
        ));
        for e in chunk {
            push(args, e.seq)?;
            push(args, e.at_us)?;
            push(args, e.event.tenant.clone())?;
            push(args, e.event.actor.clone())?;
            push(args, e.event.action.clone())?;
            push(args, e.event.subject.clone())?;
            push(args, e.event.purpose.clone())?;
            push(args, e.event.outcome.clone())?;
            push(args, e.prev_hash.to_vec())?;
            push(args, e.hash.to_vec())?;
        }
    }
    if let Some(last) = entries.last() {
        let args = script.statement(format!(
            "UPDATE audit_head SET seq = {}, hash = {} WHERE id = 1",
            engine.mark(1),
            engine.mark(2)
        ));
        push(args, last.seq)?;
        push(args, last.hash.to_vec())?;
    }
    if let Some(cp) = &checkpoint {
        let args = script.statement(format!(
            "INSERT INTO audit_checkpoints (seq, hash, signature, at_us) VALUES {} \
             ON CONFLICT (seq) DO NOTHING",
            engine.values(1, 4)
        ));
        push(args, cp.seq)?;
        push(args, cp.hash.to_vec())?;
        push(args, cp.signature.clone())?;
        push(args, now_us)?;
    }
    script.statement("COMMIT".to_owned());
    script.run(conn).await?;
    Ok(checkpoint)
}

/// Chains `events` onto `head`, and signs a checkpoint of the new head
/// when one is due (every [`CHECKPOINT_EVERY`] entries, after
/// [`CHECKPOINT_AFTER`], or when forced).
fn chain_entries(
    state: &State,
    head: Head,
    events: Vec<Cow<'_, AuditEvent>>,
    now_us: i64,
) -> (Vec<AuditEntry>, Option<Checkpoint>) {
    let (mut seq, mut hash) = head;
    let due_by_time = (state.force_checkpoint
        || state.last_checkpoint_at.elapsed() >= CHECKPOINT_AFTER)
        && seq > state.last_checkpoint_seq;
    let mut entries = Vec::with_capacity(events.len());
    for ev in events {
        seq += 1;
        // A read's event was already copied with its outcome.
        let e = audit::chain(hash, seq, now_us, ev.into_owned());
        hash = e.hash;
        entries.push(e);
    }
    let crossed = seq / CHECKPOINT_EVERY > state.last_checkpoint_seq / CHECKPOINT_EVERY;
    let checkpoint = ((crossed || due_by_time) && seq > state.last_checkpoint_seq)
        .then(|| Checkpoint::sign(&state.signing, seq, hash));
    (entries, checkpoint)
}

/// Statements of one step of a batch, sent in one round trip where the
/// engine takes several at once (SQLite: one string, the anonymous `?`
/// arguments bound in order across its statements), else one by one.
struct Script<'q> {
    engine: Engine,
    /// Statements already complete (PostgreSQL only).
    done: Vec<(String, sqlx::any::AnyArguments<'q>)>,
    /// The statement (SQLite: statements) being added to.
    current: (String, sqlx::any::AnyArguments<'q>),
}

impl<'q> Script<'q> {
    fn new(engine: Engine) -> Self {
        Self {
            engine,
            done: Vec::new(),
            current: (String::new(), sqlx::any::AnyArguments::default()),
        }
    }

    /// Adds a statement; its arguments go into the list returned.
    fn statement(&mut self, sql: String) -> &mut sqlx::any::AnyArguments<'q> {
        if self.current.0.is_empty() {
            self.current.0 = sql;
        } else if self.engine == Engine::Sqlite {
            self.current.0.push_str("; ");
            self.current.0.push_str(&sql);
        } else {
            let previous =
                std::mem::replace(&mut self.current, (sql, sqlx::any::AnyArguments::default()));
            self.done.push(previous);
        }
        &mut self.current.1
    }

    async fn run(self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        for (sql, args) in self.done.into_iter().chain([self.current]) {
            sqlx::query_with(&sql, args).execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// Adds one argument to a statement's list.
fn push<'q, T>(args: &mut sqlx::any::AnyArguments<'q>, value: T) -> Result<(), StoreError>
where
    T: 'q + sqlx::Encode<'q, Any> + sqlx::Type<Any>,
{
    use sqlx::Arguments;
    args.add(value)
        .map_err(|e| StoreError::Database(format!("binding an audit entry: {e}")))
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

async fn apply(c: &mut AnyConnection, op: &Op, now: i64) -> Result<u64, StoreError> {
    Ok(match op {
        Op::AuditOnly | Op::ReadRecord(_) => 0,
        Op::Consent(op) => crate::consent::apply(c, op, now).await?,
        Op::Request(op) => crate::request::apply(c, op).await?,
        Op::Exec(op) => crate::execution::apply(c, op).await?,
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
        Op::ReplaceIdentity {
            tenant,
            subject,
            kind,
            blind,
            ct,
        } => {
            let live = sqlx::query(
                "SELECT 1 FROM subjects WHERE id = $1 AND tenant = $2 AND erased_us IS NULL",
            )
            .bind(subject)
            .bind(tenant)
            .fetch_optional(&mut *c)
            .await?;
            if live.is_none() {
                return Ok(0);
            }
            sqlx::query("DELETE FROM identities WHERE tenant = $1 AND subject = $2 AND kind = $3")
                .bind(tenant)
                .bind(subject)
                .bind(kind)
                .execute(&mut *c)
                .await?;
            sqlx::query("INSERT INTO identities (tenant, kind, blind, subject, value_ct) VALUES ($1, $2, $3, $4, $5)")
                .bind(tenant)
                .bind(kind)
                .bind(blind.clone())
                .bind(subject)
                .bind(ct.clone())
                .execute(&mut *c)
                .await
                .map_err(conflict("subject with this identity"))?;
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use custos_core::audit::{AuditEntry, AuditEvent, ChainVerifier};
    use custos_core::keys::RootKey;
    use custos_core::secret::Key32;
    use sqlx::Row;

    use super::{Done, Op, RecordFound, RecordRead, Writer};
    use crate::db::{connect, migrate, sqlite_file, Role};
    use crate::keystore::{to32, KeyStore};

    fn event(action: &str) -> AuditEvent {
        AuditEvent {
            tenant: Some("t".into()),
            actor: "k".into(),
            action: action.into(),
            subject: Some("s".into()),
            purpose: None,
            outcome: "ok".into(),
        }
    }

    fn read(rkey: &str) -> RecordRead {
        RecordRead {
            tenant: "t".into(),
            subject: "s".into(),
            collection: "c".into(),
            rkey: rkey.into(),
            restriction_exempt: false,
        }
    }

    /// Batches of reads run on the writer's own SQLite connection, batches
    /// with changes on the pool's; submitted together, every job gets its
    /// own answer and the audit entries of both form one unbroken chain,
    /// on disk once the writer stops; the log is copied back into the
    /// database file by the checkpoint thread. Also without the own
    /// connection.
    #[tokio::test]
    async fn reads_and_changes_on_two_connections_share_one_chain() {
        for own_connection in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let url = |name: &str| format!("sqlite://{}?mode=rwc", dir.path().join(name).display());
            let (pool, engine) = connect(&url("data.db"), 1).await.unwrap();
            migrate(&pool, engine, Role::Data).await.unwrap();
            let root = RootKey::new(Key32::from_bytes([7; 32]));
            let keys = KeyStore::open(&url("keys.db"), &root).await.unwrap();
            let file = sqlite_file(&url("data.db"));
            assert!(file.is_some(), "the data file exists after migrating");
            let writer = Writer::spawn(
                pool.clone(),
                engine,
                keys,
                root,
                file.as_deref().filter(|_| own_connection),
            )
            .unwrap();
            let setup = [
                Op::CreateTenant {
                    id: "t".into(),
                    name: "T".into(),
                },
                Op::CreateSubject {
                    id: "s".into(),
                    tenant: "t".into(),
                    external_id: None,
                    identities: Vec::new(),
                },
                Op::PutRecord {
                    tenant: "t".into(),
                    subject: "s".into(),
                    collection: "c".into(),
                    rkey: "k".into(),
                    fields: b"sealed".to_vec(),
                },
            ];
            for op in setup {
                assert_eq!(writer.submit(op, vec![event("setup")]).await.unwrap(), 1);
            }
            let writer = Arc::new(writer);
            let data_file = dir.path().join("data.db");
            let size_before = std::fs::metadata(&data_file).unwrap().len();
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..200usize {
                let w = writer.clone();
                tasks.spawn(async move {
                    match i % 4 {
                        0 => {
                            let found = w.read_record(read("k"), event("reveal")).await.unwrap();
                            assert!(
                                matches!(&found, RecordFound::Sealed { fields, .. } if fields == b"sealed"),
                                "{found:?}"
                            );
                        }
                        1 => {
                            let found = w.read_record(read("none"), event("reveal")).await.unwrap();
                            assert_eq!(found, RecordFound::NoRecord);
                        }
                        2 => {
                            let done = w.send(Op::AuditOnly, vec![event("lookup")]).await.unwrap();
                            assert!(matches!(done, Done::Rows(0)));
                        }
                        _ => {
                            let op = Op::PutRecord {
                                tenant: "t".into(),
                                subject: "s".into(),
                                collection: "c".into(),
                                rkey: format!("k{i}"),
                                fields: b"more".to_vec(),
                            };
                            assert_eq!(w.submit(op, vec![event("record.put")]).await.unwrap(), 1);
                        }
                    }
                });
            }
            while let Some(joined) = tasks.join_next().await {
                joined.unwrap();
            }
            if own_connection {
                // No commit of the writer copies the log back: the
                // checkpoint thread does, within its period.
                let grown = async {
                    while std::fs::metadata(&data_file).unwrap().len() == size_before {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                };
                tokio::time::timeout(std::time::Duration::from_secs(5), grown)
                    .await
                    .expect("the checkpoint thread copies the log into the database file");
            }
            writer.shutdown().await;

            let rows = sqlx::query(
                "SELECT seq, at_us, tenant, actor, action, subject, purpose, outcome, prev_hash, hash \
                 FROM audit_log ORDER BY seq",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            let mut chain = ChainVerifier::new([]);
            let mut actions = std::collections::BTreeMap::<String, usize>::new();
            for r in &rows {
                let e = AuditEntry {
                    seq: r.try_get(0).unwrap(),
                    at_us: r.try_get(1).unwrap(),
                    event: AuditEvent {
                        tenant: r.try_get(2).unwrap(),
                        actor: r.try_get(3).unwrap(),
                        action: r.try_get(4).unwrap(),
                        subject: r.try_get(5).unwrap(),
                        purpose: r.try_get(6).unwrap(),
                        outcome: r.try_get(7).unwrap(),
                    },
                    prev_hash: to32(r.try_get(8).unwrap()).unwrap(),
                    hash: to32(r.try_get(9).unwrap()).unwrap(),
                };
                chain.push(&e).unwrap();
                *actions.entry(e.event.action).or_default() += 1;
            }
            // Reads of a missing record are not audited.
            let expected = [
                ("lookup", 50),
                ("record.put", 50),
                ("reveal", 50),
                ("setup", 3),
            ];
            assert_eq!(
                actions
                    .iter()
                    .map(|(a, n)| (a.as_str(), *n))
                    .collect::<Vec<_>>(),
                expected,
                "own connection: {own_connection}"
            );
            let head: i64 = sqlx::query("SELECT seq FROM audit_head WHERE id = 1")
                .fetch_one(&pool)
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
            assert_eq!(head, 153);
            pool.close().await;
        }
    }
}
