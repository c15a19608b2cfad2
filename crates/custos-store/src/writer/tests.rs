//! The commit engine with a change and a read of its own (a scratch table),
//! to show it knows no domain and keeps its promises on both SQLite
//! connections.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use futures_util::future::BoxFuture;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use custos_core::audit::{AuditEntry, AuditEvent, ChainVerifier};
use custos_core::keys::RootKey;
use custos_core::secret::Key32;

use super::{AuditedRead, Change, ReadQuery, Writer};
use crate::db::{connect, migrate, sqlite_file, Engine, Role};
use crate::keystore::{to32, KeyStore};
use crate::StoreError;

/// Writes one note.
struct PutNote(String, Vec<u8>);

impl Change for PutNote {
    fn apply<'c>(
        &'c self,
        c: &'c mut AnyConnection,
        _now_us: i64,
    ) -> BoxFuture<'c, Result<u64, StoreError>> {
        Box::pin(async move {
            Ok(sqlx::query("INSERT INTO notes (k, v) VALUES ($1, $2)")
                .bind(self.0.as_str())
                .bind(&self.1[..])
                .execute(c)
                .await?
                .rows_affected())
        })
    }
}

/// Reads one note; audited only when there is one.
struct ReadNote(String);

impl AuditedRead for ReadNote {
    type Found = Option<Vec<u8>>;

    fn select_many(engine: Engine, n: usize) -> String {
        format!(
            "WITH q (i, k) AS (VALUES {}) SELECT q.i, n.v FROM q JOIN notes n ON n.k = q.k",
            engine.values(n, 2)
        )
    }

    fn bind<'q>(&'q self, q: ReadQuery<'q>, i: i64) -> ReadQuery<'q> {
        q.bind(i).bind(self.0.as_str())
    }

    fn found(&self, row: &AnyRow) -> Result<Self::Found, StoreError> {
        Ok(Some(row.try_get(1)?))
    }

    fn missing(&self) -> Self::Found {
        None
    }

    const SELECT_ONE: &'static str = "SELECT v FROM notes WHERE k = ?1";

    fn read_one(
        &self,
        stmt: &mut rusqlite::CachedStatement<'_>,
    ) -> Result<Self::Found, rusqlite::Error> {
        use rusqlite::OptionalExtension;
        stmt.query_row([self.0.as_str()], |r| r.get(0)).optional()
    }

    fn outcome(found: &Self::Found) -> Option<&'static str> {
        found.as_ref().map(|_| "ok")
    }
}

fn event(action: &str) -> AuditEvent {
    AuditEvent {
        tenant: Some("t".into()),
        actor: "k".into(),
        action: action.into(),
        subject: Some("s".into()),
        purpose: None,
        outcome: "pending".into(),
    }
}

/// Batches of reads run on the writer's own SQLite connection, batches
/// with changes on the pool's; submitted together, every job gets its
/// own answer and the audit entries of both form one unbroken chain,
/// on disk once the writer stops; the log is copied back into the
/// database file by the checkpoint thread. A failing change fails alone.
/// Also without the own connection.
#[tokio::test]
async fn reads_and_changes_on_two_connections_share_one_chain() {
    for own_connection in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let url = |name: &str| format!("sqlite://{}?mode=rwc", dir.path().join(name).display());
        let (pool, engine) = connect(&url("data.db"), 1).await.unwrap();
        migrate(&pool, engine, Role::Data).await.unwrap();
        sqlx::query("CREATE TABLE notes (k TEXT PRIMARY KEY, v BLOB NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        let root = RootKey::new(Key32::from_bytes([7; 32]));
        let keys = KeyStore::open(&url("keys.db"), &root).await.unwrap();
        let signing = keys.ensure_audit_key(&root, 0, false, 1).await.unwrap();
        let file = sqlite_file(&url("data.db"));
        assert!(file.is_some(), "the data file exists after migrating");
        let writer = Writer::<ReadNote>::spawn(
            pool.clone(),
            engine,
            keys,
            root,
            Arc::new(super::ActiveAuditKey::new(signing)),
            file.as_deref().filter(|_| own_connection),
        )
        .unwrap();
        let put = PutNote("k".into(), b"sealed".to_vec());
        assert_eq!(writer.submit(put, vec![event("setup")]).await.unwrap(), 1);
        let writer = Arc::new(writer);
        let data_file = dir.path().join("data.db");
        let size_before = std::fs::metadata(&data_file).unwrap().len();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200usize {
            let w = writer.clone();
            tasks.spawn(async move {
                match i % 5 {
                    0 => {
                        let found = w.read(ReadNote("k".into()), event("reveal")).await;
                        assert_eq!(found.unwrap().as_deref(), Some(&b"sealed"[..]));
                    }
                    1 => {
                        let found = w.read(ReadNote("none".into()), event("reveal")).await;
                        assert_eq!(found.unwrap(), None);
                    }
                    2 => w.audit(vec![event("lookup")]).await.unwrap(),
                    3 => {
                        let put = PutNote(format!("k{i}"), b"more".to_vec());
                        assert_eq!(w.submit(put, vec![event("put")]).await.unwrap(), 1);
                    }
                    _ => {
                        // The key exists: this change fails, alone, and
                        // its event is not chained.
                        let put = PutNote("k".into(), b"again".to_vec());
                        assert!(w.submit(put, vec![event("dup")]).await.is_err());
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
            // A read's entry carries the outcome it found.
            if e.event.action == "reveal" {
                assert_eq!(e.event.outcome, "ok");
            }
            *actions.entry(e.event.action).or_default() += 1;
        }
        // Reads that found nothing are not audited; failed changes not
        // at all.
        let expected = [("lookup", 40), ("put", 40), ("reveal", 40), ("setup", 1)];
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
        assert_eq!(head, 121);
        pool.close().await;
    }
}
