//! The ledger's changes, committed by the writer with their audit entries:
//! policy versions, events with their materialised state (a conditional
//! upsert that keeps the greatest event), bulk imports, state rebuilds.
//! Events and versions are only ever inserted.

use std::borrow::Cow;

use sqlx::{AnyConnection, Row};

use custos_core::consent::{Action, ConsentState, EventFact, Revalidation};

use custos_core::ids::{Purpose, TenantId};

use crate::writer::Change;
use crate::StoreError;

/// Rows per multi-row INSERT of a bulk import (15 parameters each; within
/// SQLite's and PostgreSQL's parameter limits). SQLite statements use
/// anonymous placeholders, see [`crate::db::Engine::values`].
pub(super) const EVENT_ROWS_PER_INSERT: usize = 256;

pub(super) const STATE_ROWS_PER_UPSERT: usize = 256;

/// One event row as stored.
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub(super) id: String,
    pub(super) tenant: String,
    pub(super) subject: String,
    pub(super) purpose: String,
    pub(super) version: Option<i64>,
    pub(super) text_sha256: Option<Vec<u8>>,
    pub(super) action: Action,
    pub(super) at_us: i64,
    pub(super) channel: String,
    pub(super) affirmative: bool,
    pub(super) gpc: bool,
    pub(super) form_id: Option<String>,
    pub(super) proof_ct: Option<Vec<u8>>,
    pub(super) actor: String,
}

impl EventRow {
    pub(super) fn fact(&self) -> EventFact {
        EventFact {
            id: self.id.clone(),
            action: self.action,
            version: self.version,
            at_us: self.at_us,
        }
    }
}

/// A state row to upsert (already folded within its batch).
#[derive(Debug, Clone)]
pub(crate) struct StateRow {
    pub(super) tenant: String,
    pub(super) subject: String,
    pub(super) purpose: String,
    pub(super) state: ConsentState,
}

/// Changes of the consent ledger, applied by the single writer.
#[derive(Debug)]
pub(crate) enum ConsentOp {
    /// A new policy version; returns its number.
    Publish {
        tenant: TenantId,
        purpose: Purpose,
        text: String,
        sha: Vec<u8>,
        material: bool,
        effective_us: Option<i64>,
        revalidation: Revalidation,
        actor: String,
    },
    /// Live events of one subject: inserted only while the subject is not
    /// erased; returns the number inserted (0: erased meanwhile).
    Record { events: Vec<EventRow> },
    /// A batch of imported events and their folded states.
    Import {
        events: Vec<EventRow>,
        states: Vec<StateRow>,
    },
    /// Recomputes a tenant's materialised state from its events.
    Rebuild { tenant: TenantId },
}

pub(super) const UPSERT_STATE_TAIL: &str = " ON CONFLICT (tenant, subject, purpose) DO UPDATE SET \
    state = excluded.state, version = excluded.version, at_us = excluded.at_us, \
    rank = excluded.rank, event_id = excluded.event_id \
    WHERE (excluded.at_us, excluded.rank, COALESCE(excluded.version, 0), excluded.event_id) \
        > (consent_state.at_us, consent_state.rank, COALESCE(consent_state.version, 0), consent_state.event_id)";

pub(super) const EVENT_COLS: &str = "INSERT INTO consent_events (id, tenant, subject, purpose, version, text_sha256, action, at_us, recorded_us, channel, affirmative, gpc, form_id, proof_ct, actor)";

pub(super) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

pub(super) fn bind_event<'q>(q: AnyQuery<'q>, e: &'q EventRow, now: i64) -> AnyQuery<'q> {
    q.bind(e.id.as_str())
        .bind(e.tenant.as_str())
        .bind(e.subject.as_str())
        .bind(e.purpose.as_str())
        .bind(e.version)
        .bind(e.text_sha256.clone())
        .bind(e.action.as_str())
        .bind(e.at_us)
        .bind(now)
        .bind(e.channel.as_str())
        .bind(i64::from(e.affirmative))
        .bind(i64::from(e.gpc))
        .bind(e.form_id.as_deref())
        .bind(e.proof_ct.clone())
        .bind(e.actor.as_str())
}

pub(super) fn bind_state<'q>(q: AnyQuery<'q>, s: &'q StateRow) -> AnyQuery<'q> {
    q.bind(s.tenant.as_str())
        .bind(s.subject.as_str())
        .bind(s.purpose.as_str())
        .bind(s.state.state.as_str())
        .bind(s.state.version)
        .bind(s.state.since_us)
        .bind(s.state.state.action().rank())
        .bind(s.state.event_id.as_str())
}

/// `INSERT INTO …` of a bulk import's statements. On SQLite `INSERT OR
/// FAIL`: a multi-row INSERT that may abort halfway makes SQLite copy every
/// page it touches into a statement journal first, so that it can undo
/// its own rows. Here a failing statement fails its whole writer job,
/// which is rolled back (transaction or savepoint), so the statement's
/// rows need no undo of their own.
pub(super) fn import_insert(engine: crate::db::Engine, insert_into: &str) -> Cow<'_, str> {
    match engine {
        crate::db::Engine::Sqlite => {
            Cow::Owned(insert_into.replacen("INSERT", "INSERT OR FAIL", 1))
        }
        crate::db::Engine::Postgres => Cow::Borrowed(insert_into),
    }
}

pub(super) const STATE_COLS: &str =
    "INSERT INTO consent_state (tenant, subject, purpose, state, version, at_us, rank, event_id)";

/// Upserts state rows; `import`: within a bulk import (see [`import_insert`]).
pub(super) async fn upsert_states(
    c: &mut AnyConnection,
    states: &[StateRow],
    import: bool,
) -> Result<(), StoreError> {
    let engine = crate::db::Engine::of_connection(c);
    let insert = if import {
        import_insert(engine, STATE_COLS)
    } else {
        Cow::Borrowed(STATE_COLS)
    };
    for chunk in states.chunks(STATE_ROWS_PER_UPSERT) {
        let sql = format!(
            "{insert} VALUES {}{}",
            engine.values(chunk.len(), 8),
            UPSERT_STATE_TAIL
        );
        let mut q = sqlx::query(&sql);
        for s in chunk {
            q = bind_state(q, s);
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

/// Applies one consent op inside the writer's transaction (own savepoint).
impl Change for ConsentOp {
    fn apply<'c>(
        &'c self,
        c: &'c mut AnyConnection,
        now_us: i64,
    ) -> futures_util::future::BoxFuture<'c, Result<u64, StoreError>> {
        Box::pin(apply(c, self, now_us))
    }
}

pub(super) async fn apply(
    c: &mut AnyConnection,
    op: &ConsentOp,
    now: i64,
) -> Result<u64, StoreError> {
    match op {
        ConsentOp::Publish {
            tenant,
            purpose,
            text,
            sha,
            material,
            effective_us,
            revalidation,
            actor,
        } => {
            let row = sqlx::query(
                "SELECT COALESCE(MAX(version), 0) FROM consent_policies WHERE tenant = $1 AND purpose = $2",
            )
            .bind(tenant.as_str())
            .bind(purpose.as_str())
            .fetch_one(&mut *c)
            .await?;
            let version: i64 = row.try_get::<i64, _>(0)? + 1;
            let (reval, grace) = match revalidation {
                Revalidation::Deny => ("deny", None),
                Revalidation::GraceUntil(t) => ("grace_until", Some(*t)),
            };
            sqlx::query(
                "INSERT INTO consent_policies (tenant, purpose, version, text, text_sha256, material, effective_us, revalidation, grace_until_us, created_us, actor) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(tenant.as_str())
            .bind(purpose.as_str())
            .bind(version)
            .bind(text.as_str())
            .bind(&sha[..])
            .bind(i64::from(*material))
            .bind(effective_us.unwrap_or(now))
            .bind(reval)
            .bind(grace)
            .bind(now)
            .bind(actor.as_str())
            .execute(&mut *c)
            .await
            .map_err(|e| {
                if crate::error::is_unique_violation(&e) {
                    StoreError::Conflict("policy version (published concurrently; retry)")
                } else {
                    StoreError::from(e)
                }
            })?;
            Ok(version as u64)
        }
        ConsentOp::Record { events } => {
            for e in events {
                let sql = format!(
                    "{EVENT_COLS} SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 \
                     WHERE EXISTS (SELECT 1 FROM subjects WHERE id = $3 AND tenant = $2 AND erased_us IS NULL)"
                );
                let n = bind_event(sqlx::query(&sql), e, now)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Ok(0);
                }
            }
            let states: Vec<StateRow> = events
                .iter()
                .map(|e| StateRow {
                    tenant: e.tenant.clone(),
                    subject: e.subject.clone(),
                    purpose: e.purpose.clone(),
                    state: ConsentState::from_event(&e.fact()),
                })
                .collect();
            // One row per statement: two events of one purpose in a request
            // (a grant and its GPC opt-out) must both pass the upsert rule.
            for s in &states {
                upsert_states(c, std::slice::from_ref(s), false).await?;
            }
            Ok(events.len() as u64)
        }
        ConsentOp::Import { events, states } => {
            let engine = crate::db::Engine::of_connection(c);
            for chunk in events.chunks(EVENT_ROWS_PER_INSERT) {
                let sql = format!(
                    "{} VALUES {}",
                    import_insert(engine, EVENT_COLS),
                    engine.values(chunk.len(), 15)
                );
                let mut q = sqlx::query(&sql);
                for e in chunk {
                    q = bind_event(q, e, now);
                }
                q.execute(&mut *c).await?;
            }
            upsert_states(c, states, true).await?;
            Ok(events.len() as u64)
        }
        ConsentOp::Rebuild { tenant } => {
            sqlx::query("DELETE FROM consent_state WHERE tenant = $1")
                .bind(tenant.as_str())
                .execute(&mut *c)
                .await?;
            let n = sqlx::query(
                "INSERT INTO consent_state (tenant, subject, purpose, state, version, at_us, rank, event_id) \
                 SELECT tenant, subject, purpose, state, version, at_us, rank, id FROM ( \
                   SELECT tenant, subject, purpose, \
                     CASE action WHEN 'grant' THEN 'granted' WHEN 'withdraw' THEN 'withdrawn' ELSE 'objected' END AS state, \
                     version, at_us, \
                     CASE action WHEN 'grant' THEN 0 WHEN 'withdraw' THEN 1 ELSE 2 END AS rank, \
                     id, \
                     ROW_NUMBER() OVER (PARTITION BY subject, purpose ORDER BY at_us DESC, \
                       CASE action WHEN 'grant' THEN 0 WHEN 'withdraw' THEN 1 ELSE 2 END DESC, \
                       COALESCE(version, 0) DESC, id DESC) AS rn \
                   FROM consent_events WHERE tenant = $1) ranked \
                 WHERE rn = 1",
            )
            .bind(tenant.as_str())
            .execute(&mut *c)
            .await?
            .rows_affected();
            Ok(n)
        }
    }
}
