//! What domain modules hand the writer: a [`Change`] to commit, or an
//! [`AuditedRead`] whose result is released only with its audit entry
//! committed. The writer knows these two traits and the audit chain,
//! nothing of tenants, subjects, consent or requests.

use futures_util::future::BoxFuture;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, AnyConnection};

use crate::db::Engine;
use crate::StoreError;

/// A statement being built for a batch of reads.
pub(crate) type ReadQuery<'q> = sqlx::query::Query<'q, Any, AnyArguments<'q>>;

/// A change to the data store, applied inside a batch's transaction.
///
/// Invariant: `apply` only runs statements on the connection it is given
/// (no commit, no other connection), so that the writer can roll it back
/// with the batch or alone under a savepoint, and commit it together with
/// its audit entries.
pub(crate) trait Change: Send + Sync + 'static {
    /// Applies the change at `now_us` (the batch's time); returns the rows
    /// it affected (callers read 0 as "nothing matched").
    fn apply<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
        now_us: i64,
    ) -> BoxFuture<'c, Result<u64, StoreError>>;
}

/// A read run inside the writer's transaction so that what it finds is
/// answered only once its audit entry is committed beside it (reveals).
/// The reads of a batch are answered together: one statement for many
/// on the pool's connection, one cached statement each on SQLite's own.
pub(crate) trait AuditedRead: Send + Sync + 'static {
    /// What one read found.
    type Found: Send + 'static;

    /// A statement that reads `n` of these. Its parameters are, for each
    /// read in order, what [`AuditedRead::bind`] binds; each row it returns
    /// starts with the read's index (0..n). A read without a row found
    /// [`AuditedRead::missing`].
    fn select_many(engine: Engine, n: usize) -> String;

    /// Binds this read's index `i` and its parameters.
    fn bind<'q>(&'q self, q: ReadQuery<'q>, i: i64) -> ReadQuery<'q>;

    /// What a row of [`AuditedRead::select_many`] says (after the index).
    fn found(&self, row: &AnyRow) -> Result<Self::Found, StoreError>;

    /// What a read without a row found.
    fn missing(&self) -> Self::Found;

    /// One read on the writer's own SQLite connection: its statement …
    const SELECT_ONE: &'static str;

    /// … and what running it found (no row: [`AuditedRead::missing`]).
    fn read_one(
        &self,
        stmt: &mut rusqlite::CachedStatement<'_>,
    ) -> Result<Self::Found, rusqlite::Error>;

    /// The outcome its audit entry records; `None`: not audited (nothing
    /// was there to reveal).
    fn outcome(found: &Self::Found) -> Option<&'static str>;
}
