//! The single writer of the data store: a commit engine with group commit
//! that knows no domain.
//!
//! Domain modules hand it a [`Change`] (a trait object) or an
//! [`AuditedRead`], with the audit events that describe it. One thread
//! takes whatever jobs are queued (up to [`MAX_BATCH`]), runs them in one
//! transaction, appends their audit entries to the hash chain (one
//! multi-row insert), and commits once. Callers are answered only after
//! the commit. Jobs run without savepoints first (each savepoint is a
//! round trip); if one fails, the batch is rolled back and rerun with a
//! savepoint per job, so a failed job never takes its neighbours down.
//!
//! Durability: a batch that changes data is committed durably (SQLite
//! `synchronous=FULL`, PostgreSQL's default), so an acknowledged write
//! survives a crash of the machine. A batch that only reads and appends
//! audit entries (reveal, lookup, export) is committed before the reader
//! is answered — it survives a crash of the process — but is flushed to disk
//! lazily (SQLite `synchronous=NORMAL`, PostgreSQL `synchronous_commit=off`),
//! at the latest [`SYNC_AFTER`] later or with the next durable commit. That
//! keeps audited reads off the fsync path. On PostgreSQL several servers each
//! run a writer; the audit head row is locked for the end of each
//! transaction so that their chains interleave correctly.
//!
//! Invariants: every audit entry commits in the transaction of what it
//! records; the chain (`audit_log`, `audit_head`, `audit_checkpoints`) is
//! written here and nowhere else; a checkpoint signed here is anchored in
//! the key store after its commit.
//!
//! * [`change`] — the two traits domain modules implement.
//! * [`batch`] — a batch on the pool's connection (savepoints, reads).
//! * [`chain`] — the audit chain: events, entries, checkpoints.
//! * [`direct`] — on SQLite, read-only batches on the writer's own
//!   connection, and the checkpoint thread.

use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use custos_core::audit::{AuditEvent, Checkpoint};
use custos_core::audit_keys::AuditSigningKey;
use custos_core::keys::RootKey;

use crate::db::Engine;
use crate::keystore::KeyStore;
use crate::StoreError;

mod batch;
mod chain;
mod change;
mod direct;

pub(crate) use change::{AuditedRead, Change, ReadQuery};
use direct::DirectConnection;

/// Most jobs committed together.
pub(crate) const MAX_BATCH: usize = 512;
/// A checkpoint is signed at least every this many entries …
const CHECKPOINT_EVERY: i64 = 1000;
/// … and when this much time passed since the last one with entries since.
const CHECKPOINT_AFTER: Duration = Duration::from_secs(5);
/// Longest time the audit entries of reads stay unflushed.
pub(crate) const SYNC_AFTER: Duration = Duration::from_millis(200);

/// What a job asks of the writer.
pub(crate) enum Work<R> {
    /// Only the attached audit events.
    Audit,
    /// A read in the batch's transaction; its one attached audit event
    /// gets the outcome the read found (no event when there is nothing to
    /// reveal). Reading here rather than on the read pool means nothing is
    /// revealed without its audit entry committed beside it, and a batch of
    /// reads costs one statement on the writer's warm connection.
    Read(R),
    /// A change to the data store.
    Change(Box<dyn Change>),
}

impl<R> Work<R> {
    /// Changes nothing but the audit log: committed lazily (see the module).
    fn is_read(&self) -> bool {
        matches!(self, Work::Audit | Work::Read(_))
    }
}

/// What a job's commit answers.
#[derive(Debug)]
pub(crate) enum Done<F> {
    /// Rows the change affected.
    Rows(u64),
    /// What an audited read found.
    Read(F),
}

/// A queued job: the work, its audit events, and where to answer.
pub(crate) struct Job<R: AuditedRead> {
    pub(crate) work: Work<R>,
    pub(crate) audit: Vec<AuditEvent>,
    pub(crate) reply: oneshot::Sender<Result<Done<R::Found>, StoreError>>,
}

/// Handle to submit jobs; `R` is the one kind of audited read it runs.
pub(crate) struct Writer<R: AuditedRead> {
    tx: mpsc::Sender<Job<R>>,
    stop: std::sync::Arc<tokio::sync::Notify>,
    /// Fires when the writer's thread has finished.
    done: std::sync::Arc<tokio::sync::Mutex<Option<oneshot::Receiver<()>>>>,
}

impl<R: AuditedRead> Clone for Writer<R> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            stop: self.stop.clone(),
            done: self.done.clone(),
        }
    }
}

impl<R: AuditedRead> std::fmt::Debug for Writer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl<R: AuditedRead> Writer<R> {
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
        signing: std::sync::Arc<ActiveAuditKey>,
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
                rt.block_on(run(
                    pool, direct, engine, keystore, root, signing, rx, stopped,
                ));
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

    /// Commits `change` with its audit events; returns the rows it affected.
    pub(crate) async fn submit(
        &self,
        change: impl Change,
        audit: Vec<AuditEvent>,
    ) -> Result<u64, StoreError> {
        match self.send(Work::Change(Box::new(change)), audit).await? {
            Done::Rows(n) => Ok(n),
            Done::Read(_) => Err(StoreError::Database("a change answered as a read".into())),
        }
    }

    /// Commits audit events that record no change (lookups, exports,
    /// admin actions done elsewhere).
    pub(crate) async fn audit(&self, audit: Vec<AuditEvent>) -> Result<(), StoreError> {
        self.send(Work::Audit, audit).await.map(|_| ())
    }

    /// Runs `read` in a batch's transaction and commits `audit` with the
    /// outcome found (see [`Work::Read`]).
    pub(crate) async fn read(&self, read: R, audit: AuditEvent) -> Result<R::Found, StoreError> {
        match self.send(Work::Read(read), vec![audit]).await? {
            Done::Read(found) => Ok(found),
            Done::Rows(_) => Err(StoreError::Database("a read answered as a change".into())),
        }
    }

    async fn send(
        &self,
        work: Work<R>,
        audit: Vec<AuditEvent>,
    ) -> Result<Done<R::Found>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { work, audit, reply })
            .await
            .map_err(|_| StoreError::ShuttingDown)?;
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }
}

/// The audit signing key in use, shared by the writer (checkpoints) and
/// the vault (completion records). After each checkpoint the writer looks
/// at the key store's active key and takes it up if it changed (a
/// rotation, by this process or another).
pub(crate) struct ActiveAuditKey(std::sync::RwLock<std::sync::Arc<AuditSigningKey>>);

impl ActiveAuditKey {
    pub(crate) fn new(key: AuditSigningKey) -> Self {
        Self(std::sync::RwLock::new(std::sync::Arc::new(key)))
    }

    /// The key to sign with now.
    pub(crate) fn get(&self) -> std::sync::Arc<AuditSigningKey> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set(&self, key: AuditSigningKey) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(key);
    }
}

struct State {
    last_checkpoint_seq: i64,
    last_checkpoint_at: Instant,
    signing: std::sync::Arc<ActiveAuditKey>,
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

#[allow(clippy::too_many_arguments)]
async fn run<R: AuditedRead>(
    pool: AnyPool,
    direct: Option<DirectConnection>,
    engine: Engine,
    keystore: KeyStore,
    root: RootKey,
    signing: std::sync::Arc<ActiveAuditKey>,
    mut rx: mpsc::Receiver<Job<R>>,
    stop: std::sync::Arc<tokio::sync::Notify>,
) {
    let mut state = State {
        last_checkpoint_seq: last_checkpoint(&pool).await.unwrap_or(0),
        last_checkpoint_at: Instant::now(),
        signing,
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
        commit_batch(&mut held, engine, &keystore, &root, &mut state, &mut batch).await;
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
        commit_batch(&mut held, engine, &keystore, &root, &mut state, &mut batch).await;
    }
    state.force_checkpoint = true;
    commit_batch(&mut held, engine, &keystore, &root, &mut state, &mut batch).await;
    flush(&mut held, engine, &mut state).await;
    // The connection it holds (the pool's only one) is closed before the
    // writer says it stopped: whoever closes the vault and then replaces
    // its files (a restore) must find none of ours still open, as one
    // dropped here would be, closing in the background. The pool stays
    // usable to whoever else holds it.
    if let Some(c) = held.conn.take() {
        use sqlx::Connection as _;
        let _ = c.detach().close().await;
    }
    drop(held.direct);
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

async fn commit_batch<R: AuditedRead>(
    held: &mut Held,
    engine: Engine,
    keystore: &KeyStore,
    root: &RootKey,
    state: &mut State,
    batch: &mut Vec<Job<R>>,
) {
    let mut jobs: Vec<Job<R>> = std::mem::take(batch);
    let fail_all = |jobs: Vec<Job<R>>| {
        for job in jobs {
            let _ = job
                .reply
                .send(Err(StoreError::Database("batch commit failed".into())));
        }
    };
    // Checkpoint-only commits (no jobs) are durable too.
    let durable = jobs.is_empty() || jobs.iter().any(|j| !j.work.is_read());
    let outcome = match &mut held.direct {
        Some(direct) if !durable => direct.run_batch(state, &mut jobs),
        _ => batch::commit_on_pool_connection(held, engine, state, &mut jobs, durable).await,
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
                anchor(held, engine, state, keystore, &cp).await;
                take_up_rotated_key(keystore, root, &state.signing).await;
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

/// Anchors `cp` in the key store, only if the chain it ends still holds
/// the entry anchored there now (the anchor is hash-checked, never
/// replaced by the head of another chain, e.g. a restored one).
async fn anchor(
    held: &mut Held,
    engine: Engine,
    state: &mut State,
    keystore: &KeyStore,
    cp: &Checkpoint,
) {
    let r = async {
        if let Some(current) = keystore.anchor().await? {
            if current.seq > cp.seq {
                return Ok(false);
            }
            let conn = held.get(engine, state).await?;
            let hash: Option<Vec<u8>> = sqlx::query("SELECT hash FROM audit_log WHERE seq = $1")
                .bind(current.seq)
                .fetch_optional(&mut *conn)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            if hash.as_deref() != Some(&current.hash[..]) {
                return Ok(false);
            }
        }
        keystore.set_anchor(cp).await.map(|()| true)
    }
    .await;
    match r {
        Ok(true) => {}
        Ok(false) => tracing::error!(
            seq = cp.seq,
            "the audit chain does not hold the entry anchored in the key store: checkpoint not anchored"
        ),
        Err(e) => {
            tracing::error!(error = %e, "could not anchor audit checkpoint in the key store");
            held.release().await;
        }
    }
}

/// Takes up the key store's active audit key if it is not the one in use.
async fn take_up_rotated_key(keystore: &KeyStore, root: &RootKey, signing: &ActiveAuditKey) {
    let r = async {
        if keystore.active_audit_key_id().await?.as_deref() != Some(signing.get().id()) {
            let key = keystore.active_audit_key(root).await?;
            tracing::info!(
                key_id = key.id(),
                "signing audit checkpoints with a rotated key"
            );
            signing.set(key);
        }
        Ok::<_, StoreError>(())
    }
    .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "could not look up the active audit signing key");
    }
}

/// What a batch did: the checkpoint it signed, if any, and each job's answer.
type BatchOutcome<F> = (Option<Checkpoint>, Vec<Result<Done<F>, StoreError>>);

#[cfg(test)]
mod tests;
