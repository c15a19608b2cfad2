//! The audit chain: which events a batch commits, chained onto the head
//! (each entry's hash covers the previous one), appended with the head's
//! update and, when due, a signed checkpoint, in the batch's transaction.
//!
//! Invariant: the chain is extended only here, inside the transaction of
//! the changes its entries record; a failed job's events are dropped with
//! it.

use sqlx::{AnyConnection, Row};

use custos_core::audit::{self, AuditEntry, AuditEvent, Checkpoint};

use super::batch::{push, Script};
use super::{AuditedRead, Done, Job, State, CHECKPOINT_AFTER, CHECKPOINT_EVERY};
use crate::db::Engine;
use crate::keystore::to32;
use crate::StoreError;

/// Audit rows per INSERT statement (10 parameters each).
const AUDIT_ROWS_PER_INSERT: usize = 256;

/// The audit events of a batch's jobs that succeeded, in job order,
/// moved out of the jobs (a batch commits its events once, or fails). A
/// read's event gets the outcome it found, and a read that found nothing
/// to reveal is not audited.
pub(super) fn audit_events<R: AuditedRead>(
    jobs: &mut [Job<R>],
    results: &[Result<Done<R::Found>, StoreError>],
) -> Vec<AuditEvent> {
    let mut events = Vec::with_capacity(jobs.len());
    for (job, r) in jobs.iter_mut().zip(results) {
        match r {
            Err(_) => {}
            Ok(Done::Read(found)) => {
                if let Some(outcome) = R::outcome(found) {
                    for mut e in job.audit.drain(..) {
                        outcome.clone_into(&mut e.outcome);
                        events.push(e);
                    }
                }
            }
            Ok(Done::Rows(_)) => events.append(&mut job.audit),
        }
    }
    events
}

/// The audit chain's head (last sequence number and hash).
pub(super) type Head = (i64, [u8; 32]);

/// The audit head's row, shaped to come back among a batch's reads
/// (`i` = -1). Locked on PostgreSQL, where several servers append.
pub(super) const HEAD: &str = "SELECT -1, seq, hash FROM audit_head WHERE id = 1";

pub(super) async fn read_head(
    conn: &mut AnyConnection,
    engine: Engine,
) -> Result<Head, StoreError> {
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

/// Chains `events` onto `head`, appends them ([`AUDIT_ROWS_PER_INSERT`]
/// per statement), moves the head, signs a checkpoint when one is due,
/// and commits: on SQLite in one round trip.
pub(super) async fn append_audit_and_commit(
    conn: &mut AnyConnection,
    engine: Engine,
    state: &State,
    head: Head,
    events: Vec<AuditEvent>,
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
            // Bound borrowed: the entries outlive the script.
            push(args, e.event.tenant.as_deref())?;
            push(args, e.event.actor.as_str())?;
            push(args, e.event.action.as_str())?;
            push(args, e.event.subject.as_deref())?;
            push(args, e.event.purpose.as_deref())?;
            push(args, e.event.outcome.as_str())?;
            push(args, &e.prev_hash[..])?;
            push(args, &e.hash[..])?;
        }
    }
    if let Some(last) = entries.last() {
        let args = script.statement(format!(
            "UPDATE audit_head SET seq = {}, hash = {} WHERE id = 1",
            engine.mark(1),
            engine.mark(2)
        ));
        push(args, last.seq)?;
        push(args, &last.hash[..])?;
    }
    if let Some(cp) = &checkpoint {
        let args = script.statement(format!(
            "INSERT INTO audit_checkpoints (seq, hash, signature, at_us, key_id) VALUES {} \
             ON CONFLICT (seq) DO NOTHING",
            engine.values(1, 5)
        ));
        push(args, cp.seq)?;
        push(args, &cp.hash[..])?;
        push(args, &cp.signature[..])?;
        push(args, now_us)?;
        push(args, cp.key_id.as_deref())?;
    }
    script.statement("COMMIT".to_owned());
    script.run(conn).await?;
    Ok(checkpoint)
}

/// Chains `events` onto `head`, and signs a checkpoint of the new head
/// when one is due (every [`CHECKPOINT_EVERY`] entries, after
/// [`CHECKPOINT_AFTER`], or when forced).
pub(super) fn chain_entries(
    state: &State,
    head: Head,
    events: Vec<AuditEvent>,
    now_us: i64,
) -> (Vec<AuditEntry>, Option<Checkpoint>) {
    let (mut seq, mut hash) = head;
    let due_by_time = (state.force_checkpoint
        || state.last_checkpoint_at.elapsed() >= CHECKPOINT_AFTER)
        && seq > state.last_checkpoint_seq;
    let mut entries = Vec::with_capacity(events.len());
    for ev in events {
        seq += 1;
        let e = audit::chain(hash, seq, now_us, ev);
        hash = e.hash;
        entries.push(e);
    }
    let crossed = seq / CHECKPOINT_EVERY > state.last_checkpoint_seq / CHECKPOINT_EVERY;
    let checkpoint = ((crossed || due_by_time) && seq > state.last_checkpoint_seq)
        .then(|| Checkpoint::sign(&state.signing.get(), seq, hash));
    (entries, checkpoint)
}
