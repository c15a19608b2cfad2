//! The writer's own SQLite connection, driven synchronously on the
//! writer's thread, for batches that only read and audit (reveals,
//! lookups, exports).
//!
//! Through sqlx every statement is a round trip to the connection's own
//! thread, and on a loaded machine each trip waits for a CPU: a batch of
//! reveals spent most of its time waiting, and the one writer bounded the
//! reveal rate. Here the statements run on the thread that holds the
//! batch, one after the other, with no hand-over.
//!
//! Invariants: a batch is one `BEGIN IMMEDIATE` … `COMMIT` transaction, so
//! a record is handed out only with its audit entry committed beside it;
//! on any error the transaction is rolled back and the whole batch fails.
//! This connection commits with `synchronous=NORMAL` only: its batches
//! change nothing but the audit log, which the writer flushes with its
//! next durable commit (on the other connection, which syncs the shared
//! write-ahead log up to there) or [`super::SYNC_AFTER`] later.
//!
//! The log is copied back into the database file by a [`Checkpointer`] on
//! a thread of its own, not by the commits of the writer's connections:
//! SQLite's automatic checkpoint runs inside the commit that crosses its
//! threshold, with two fsyncs, and stalled the one writer (and every
//! caller queued behind it) for milliseconds several times a second.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags};

use super::chain::{audit_events, chain_entries, HEAD};
use super::{AuditedRead, BatchOutcome, Done, Job, State, Work};
use crate::error::rusqlite_kind;
use crate::keystore::to32;
use crate::StoreError;

const INSERT_AUDIT: &str = "INSERT INTO audit_log \
     (seq, at_us, tenant, actor, action, subject, purpose, outcome, prev_hash, hash) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// A connection to an existing database file, for one thread.
fn open(path: &Path) -> Result<Connection, StoreError> {
    Ok(Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?)
}

/// See the module. Its [`Checkpointer`] runs as long as it does.
pub(super) struct DirectConnection {
    conn: Connection,
    _checkpointer: Checkpointer,
}

impl DirectConnection {
    /// Opens the data store's file (which the migrations created) with
    /// the pragmas of the pool's connections, but lazy commits and no
    /// automatic checkpoints, and starts the checkpoint thread.
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY; \
             PRAGMA wal_autocheckpoint = 0;",
        )?;
        Ok(Self {
            conn,
            _checkpointer: Checkpointer::start(path)?,
        })
    }

    /// Runs a batch whose jobs all only read or audit.
    pub(super) fn run_batch<R: AuditedRead>(
        &mut self,
        state: &State,
        jobs: &mut [Job<R>],
    ) -> Result<BatchOutcome<R::Found>, StoreError> {
        let outcome = self.try_batch(state, jobs);
        if outcome.is_err() {
            // Fails harmlessly when no transaction is open.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        outcome
    }

    fn try_batch<R: AuditedRead>(
        &mut self,
        state: &State,
        jobs: &mut [Job<R>],
    ) -> Result<BatchOutcome<R::Found>, StoreError> {
        let now_us = crate::now_us();
        // The write lock up front, as on the other connection: a read
        // transaction cannot be upgraded once another connection committed.
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let mut results: Vec<Result<Done<R::Found>, StoreError>> = Vec::with_capacity(jobs.len());
        {
            let mut read = self.conn.prepare_cached(R::SELECT_ONE)?;
            for job in jobs.iter() {
                let done = match &job.work {
                    Work::Read(r) => Done::Read(r.read_one(&mut read)?),
                    Work::Audit => Done::Rows(0),
                    Work::Change(_) => {
                        return Err(StoreError::Database(
                            "a change sent to the read connection".into(),
                        ))
                    }
                };
                results.push(Ok(done));
            }
        }
        let (seq, hash): (i64, Vec<u8>) = self
            .conn
            .prepare_cached(HEAD)?
            .query_row([], |row| Ok((row.get(1)?, row.get(2)?)))?;
        let events = audit_events(jobs, &results);
        let (entries, checkpoint) = chain_entries(state, (seq, to32(hash)?), events, now_us);
        if let Some(last) = entries.last() {
            let mut insert = self.conn.prepare_cached(INSERT_AUDIT)?;
            for e in &entries {
                insert.execute(params![
                    e.seq,
                    e.at_us,
                    e.event.tenant,
                    e.event.actor,
                    e.event.action,
                    e.event.subject,
                    e.event.purpose,
                    e.event.outcome,
                    &e.prev_hash[..],
                    &e.hash[..],
                ])?;
            }
            self.conn
                .prepare_cached("UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1")?
                .execute(params![last.seq, &last.hash[..]])?;
        }
        if let Some(cp) = &checkpoint {
            self.conn
                .prepare_cached(
                    "INSERT INTO audit_checkpoints (seq, hash, signature, at_us, key_id) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (seq) DO NOTHING",
                )?
                .execute(params![
                    cp.seq,
                    &cp.hash[..],
                    cp.signature,
                    now_us,
                    cp.key_id
                ])?;
        }
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok((checkpoint, results))
    }
}

/// How often the [`Checkpointer`] looks at the log while it grows …
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);
/// … and while it does not.
const CHECKPOINT_IDLE: Duration = Duration::from_millis(250);

/// Copies the write-ahead log back into the database file (a passive
/// checkpoint, which waits for no reader or writer) on a thread of its
/// own, in place of the automatic checkpoints of the writer's connections
/// (see the module). Stops when dropped.
struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = open(path)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("custos-checkpoint".into())
            .spawn(move || {
                // The log's length at the last look, and whether all of it
                // had been copied back then.
                let mut last = (-1, false);
                let mut idle = false;
                loop {
                    let wait = if idle {
                        CHECKPOINT_IDLE
                    } else {
                        CHECKPOINT_EVERY
                    };
                    match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                    // Columns: busy, frames in the log, frames copied back.
                    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                    });
                    match done {
                        Ok((log, copied)) => {
                            // Nothing written since the last look, all copied.
                            let now = (log, log == copied);
                            idle = now == last && now.1;
                            last = now;
                        }
                        Err(e) => {
                            tracing::warn!(error = %rusqlite_kind(&e), "checkpoint failed");
                            idle = false;
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Config(format!("starting the checkpoint thread: {e}")))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
