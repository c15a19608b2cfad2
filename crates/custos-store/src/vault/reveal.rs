//! The read behind a reveal: one record with its subject's state, run by
//! the writer inside the transaction that commits the reveal's audit entry
//! (see [`crate::writer::AuditedRead`]). Nothing is revealed unless its
//! entry is committed.

use sqlx::any::AnyRow;
use sqlx::Row;

use custos_core::ids::{Collection, IdText, RecordKey, TenantId};

use crate::db::Engine;
use crate::writer::{AuditedRead, ReadQuery};
use crate::StoreError;

/// One record of a subject, read for a reveal.
#[derive(Debug)]
pub(crate) struct RecordRead {
    pub(crate) tenant: TenantId,
    pub(crate) subject: IdText,
    pub(crate) collection: Collection,
    pub(crate) rkey: RecordKey,
    /// The declared purpose lets a restricted subject's data out.
    pub(crate) restriction_exempt: bool,
}

/// What a [`RecordRead`] found.
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
}

impl AuditedRead for RecordRead {
    type Found = RecordFound;

    fn select_many(engine: Engine, n: usize) -> String {
        format!(
            "WITH q (i, sid, ten, coll, rk) AS (VALUES {}) \
             SELECT q.i, s.erased_us, s.restricted_us, r.fields, r.updated_us FROM q \
             JOIN subjects s ON s.id = q.sid AND s.tenant = q.ten \
             LEFT JOIN records r ON r.subject = q.sid AND r.collection = q.coll AND r.rkey = q.rk",
            engine.values(n, 5)
        )
    }

    fn bind<'q>(&'q self, q: ReadQuery<'q>, i: i64) -> ReadQuery<'q> {
        q.bind(i)
            .bind(self.subject.as_str())
            .bind(self.tenant.as_str())
            .bind(self.collection.as_str())
            .bind(self.rkey.as_str())
    }

    fn found(&self, row: &AnyRow) -> Result<RecordFound, StoreError> {
        let restricted: Option<i64> = row.try_get(2)?;
        Ok(RecordFound::of(
            row.try_get(1)?,
            restricted.is_some() && !self.restriction_exempt,
            row.try_get(3)?,
            row.try_get(4)?,
        ))
    }

    fn missing(&self) -> RecordFound {
        RecordFound::NoSubject
    }

    const SELECT_ONE: &'static str = "SELECT s.erased_us, s.restricted_us, r.fields, r.updated_us \
         FROM subjects s \
         LEFT JOIN records r ON r.subject = s.id AND r.collection = ?3 AND r.rkey = ?4 \
         WHERE s.id = ?1 AND s.tenant = ?2";

    fn read_one(
        &self,
        stmt: &mut rusqlite::CachedStatement<'_>,
    ) -> Result<RecordFound, rusqlite::Error> {
        use rusqlite::OptionalExtension;
        let row = stmt
            .query_row(
                rusqlite::params![
                    self.subject.as_str(),
                    self.tenant.as_str(),
                    self.collection.as_str(),
                    self.rkey.as_str()
                ],
                |row| {
                    Ok((
                        row.get::<_, Option<i64>>(0)?,
                        row.get::<_, Option<i64>>(1)?,
                        row.get::<_, Option<Vec<u8>>>(2)?,
                        row.get::<_, Option<i64>>(3)?,
                    ))
                },
            )
            .optional()?;
        Ok(match row {
            None => RecordFound::NoSubject,
            Some((erased, restricted, fields, updated)) => RecordFound::of(
                erased,
                restricted.is_some() && !self.restriction_exempt,
                fields,
                updated,
            ),
        })
    }

    fn outcome(found: &RecordFound) -> Option<&'static str> {
        match found {
            RecordFound::NoSubject | RecordFound::NoRecord => None,
            RecordFound::Erased(_) => Some("gone"),
            RecordFound::Restricted => Some("denied_restricted"),
            RecordFound::Sealed { .. } => Some("ok"),
        }
    }
}
