//! A batch on the pool's connection the writer holds: changes (rerun
//! under a savepoint each when one fails), then the batch's audited reads,
//! then the audit chain and the commit (see [`super::chain`]).
//!
//! Each statement is a round trip to the driver (for SQLite, to the
//! connection's thread), and the batch holds the write lock for all of
//! them, so SQLite gets its statements in as few trips as it can.

use sqlx::{Any, AnyConnection, Row};

use super::chain::{append_audit_and_commit, read_head, Head, HEAD};
use super::{AuditedRead, BatchOutcome, Done, Held, Job, State, Work};
use crate::db::Engine;
use crate::keystore::to32;
use crate::StoreError;

/// Reads per statement of a batch's audited reads.
const READS_PER_SELECT: usize = 128;

/// Runs a batch on the pool's connection that the writer holds. On an
/// error the connection is released (its transaction rolled back).
pub(super) async fn commit_on_pool_connection<R: AuditedRead>(
    held: &mut Held,
    engine: Engine,
    state: &mut State,
    jobs: &mut [Job<R>],
    durable: bool,
) -> Result<BatchOutcome<R::Found>, StoreError> {
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
    let mut outcome = run_batch(conn, engine, state, &mut *jobs, durable, false).await;
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
async fn run_batch<R: AuditedRead>(
    conn: &mut AnyConnection,
    engine: Engine,
    state: &State,
    jobs: &mut [Job<R>],
    durable: bool,
    savepoints: bool,
) -> Result<BatchOutcome<R::Found>, StoreError> {
    let mut results: Vec<Result<Done<R::Found>, StoreError>> = Vec::with_capacity(jobs.len());
    // SQLite: take the write lock up front. A deferred transaction that
    // reads first cannot be upgraded once another connection (a reader
    // of the pool that writes, e.g. a step lease) has committed since: it fails at once with
    // SQLITE_BUSY_SNAPSHOT instead of waiting out the busy timeout.
    let begin = match engine {
        Engine::Sqlite => "BEGIN IMMEDIATE",
        Engine::Postgres => "BEGIN",
    };
    let writes = jobs.iter().any(|j| !j.work.is_read());
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
    for job in jobs.iter() {
        let Work::Change(change) = &job.work else {
            // Audit-only jobs change nothing; reads run after the changes.
            results.push(Ok(Done::Rows(0)));
            continue;
        };
        if !savepoints {
            match change.apply(&mut *conn, now_us).await {
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
        let r = change.apply(&mut *conn, now_us).await;
        end_savepoint(conn, r.is_ok()).await?;
        results.push(r.map(Done::Rows));
    }
    // Audited reads see every change of the batch before them.
    let reads: Vec<(usize, &R)> = jobs
        .iter()
        .enumerate()
        .filter_map(|(i, j)| match &j.work {
            Work::Read(r) => Some((i, r)),
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
        let found = read_all(conn, engine, pending_begin, &reads, fold_head).await;
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
    let events = super::chain::audit_events(jobs, &results);
    let checkpoint = append_audit_and_commit(conn, engine, state, head, events, now_us).await?;
    Ok((checkpoint, results))
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

/// Binds one statement's worth of reads, each with its index.
fn bind_reads<'q, R: AuditedRead>(
    mut q: super::ReadQuery<'q>,
    chunk_no: usize,
    chunk: &[(usize, &'q R)],
) -> super::ReadQuery<'q> {
    for (k, (_, r)) in chunk.iter().enumerate() {
        let i = i64::try_from(chunk_no * READS_PER_SELECT + k).unwrap_or(i64::MAX);
        q = r.bind(q, i);
    }
    q
}

/// Runs a batch's audited reads, [`READS_PER_SELECT`] per
/// statement, answering in the order of `reads`. `begin` opens the
/// transaction first if it is not open yet. On SQLite, all of it is one
/// round trip, and with `fold_head` the audit head comes back with it.
async fn read_all<R: AuditedRead>(
    conn: &mut AnyConnection,
    engine: Engine,
    begin: Option<&str>,
    reads: &[(usize, &R)],
    fold_head: bool,
) -> Result<(Vec<R::Found>, Option<Head>), StoreError> {
    let select = |n: usize| R::select_many(engine, n);
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
    let mut found: Vec<R::Found> = reads.iter().map(|(_, r)| r.missing()).collect();
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
        *slot = read.found(&row)?;
    }
    Ok((found, head))
}

/// Statements of one step of a batch, sent in one round trip where the
/// engine takes several at once (SQLite: one string, the anonymous `?`
/// arguments bound in order across its statements), else one by one.
pub(super) struct Script<'q> {
    engine: Engine,
    /// Statements already complete (PostgreSQL only).
    done: Vec<(String, sqlx::any::AnyArguments<'q>)>,
    /// The statement (SQLite: statements) being added to.
    current: (String, sqlx::any::AnyArguments<'q>),
}

impl<'q> Script<'q> {
    pub(super) fn new(engine: Engine) -> Self {
        Self {
            engine,
            done: Vec::new(),
            current: (String::new(), sqlx::any::AnyArguments::default()),
        }
    }

    /// Adds a statement; its arguments go into the list returned.
    pub(super) fn statement(&mut self, sql: String) -> &mut sqlx::any::AnyArguments<'q> {
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

    pub(super) async fn run(self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        for (sql, args) in self.done.into_iter().chain([self.current]) {
            sqlx::query_with(&sql, args).execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// Adds one argument to a statement's list.
pub(super) fn push<'q, T>(
    args: &mut sqlx::any::AnyArguments<'q>,
    value: T,
) -> Result<(), StoreError>
where
    T: 'q + sqlx::Encode<'q, Any> + sqlx::Type<Any>,
{
    use sqlx::Arguments;
    args.add(value)
        .map_err(|e| StoreError::Database(format!("binding an audit entry: {e}")))
}
