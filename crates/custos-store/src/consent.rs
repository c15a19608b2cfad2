//! The consent ledger on the vault (issue 4): policy versions, append-only
//! events with encrypted proof, the materialised current state, the check,
//! suppression lists, receipts and bulk import.
//!
//! Invariants:
//! * Events and policy versions are only ever inserted (the schema's
//!   triggers refuse UPDATE and DELETE). Each event commits in the same
//!   writer transaction as its materialised state and its audit entry.
//! * `consent_state` is the greatest event per (subject, purpose) by
//!   [`EventKey`](custos_core::consent::EventKey), maintained by a
//!   conditional upsert; it always equals [`fold`] of the events, and
//!   [`Vault::rebuild_consent_state`] recomputes it from them.
//! * Proof (IP address, user agent) is sealed under the subject's own key
//!   with a context naming tenant, subject, "consent" and the event id:
//!   erasing the subject shreds it with everything else.
//! * The rules (which actions a basis accepts, revalidation, the answer of
//!   a check) live in `custos_core::consent`; purposes are handed in as
//!   [`PurposeRule`]s so that storage does not depend on the data map.
//!
//! Caching: the check answers from a per-process cache of subject state and
//! policy versions. Writes through this process update it at once. Writes
//! through other servers sharing the store are followed in the audit log
//! (every change that can alter an answer is audited in the transaction
//! that makes it): at most every [`FOLLOW_EVERY`] a check first reads the
//! audit entries committed since the last look and drops what they touch,
//! so another server's write is seen within that interval. If the audit
//! log cannot be read the whole cache is dropped. [`DEFAULT_CHECK_TTL`]
//! (configurable, zero disables the cache) only bounds the age of an
//! entry as a safety net; an entry past half to three quarters of it
//! (spread by subject) is read again in the background by the first check
//! that finds it so, which the cache still answers. The cache holds ids and states, never personal data.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tokio::sync::mpsc;

use custos_core::audit::AuditEvent;
use custos_core::consent::{
    self as rules, canonical_ip, check_form_id, check_user_agent, decide, proof_context,
    text_sha256, Action, Basis, Channel, ConsentError, ConsentState, Decision, EventFact, Policies,
    PolicyVersion, PurposeRule, Revalidation, StateKind,
};
use custos_core::envelope;
use custos_core::ids::{Audience, Purpose, SubjectId, TenantId};
use custos_core::keys::{token_with_key, SubjectKey};
use custos_core::rand_core::OsRng;
use custos_core::scope::Scope;

use crate::vault::{event, lock, Actor};
use crate::writer::Change;
use crate::{now_us, rfc3339, StoreError, Vault};

/// Default lifetime of cached check answers' inputs (see module docs).
pub const DEFAULT_CHECK_TTL: Duration = Duration::from_secs(30);
/// How often a check looks for other servers' changes in the audit log.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(200);
/// Audited actions after which a cached check answer may be wrong.
const INVALIDATING: &[&str] = &[
    "consent.grant",
    "consent.withdraw",
    "consent.object",
    "consent.import",
    "consent.rebuild",
    "consent.policy.publish",
    "erase",
    "restrict",
    "unrestrict",
    "tenant.shred",
];
/// Longest policy text accepted.
pub const MAX_POLICY_TEXT: usize = 256 * 1024;
/// Upper bound of cached subjects (cleared wholesale when reached).
const CHECK_CACHE_MAX: usize = 500_000;
/// Imported events may not lie further in the future than this (clock skew).
const IMPORT_FUTURE_SLACK_US: i64 = 5 * 60 * 1_000_000;
/// Rows per multi-row INSERT of a bulk import (15 parameters each; within
/// SQLite's and PostgreSQL's parameter limits). SQLite statements use
/// anonymous placeholders, see [`crate::db::Engine::values`].
const EVENT_ROWS_PER_INSERT: usize = 256;
const STATE_ROWS_PER_UPSERT: usize = 256;
/// Most events per writer job of a bulk import (see
/// [`Vault::import_consent`]): large enough that a commit's fsyncs are
/// shared by many events, small enough that the writer is not held from
/// live traffic for long (tens of milliseconds).
pub const IMPORT_JOB_EVENTS: usize = 5000;

/// Events per [`Vault::import_consent`] call that `custos consent import`
/// makes (and the consent benchmark mirrors). The call commits in jobs of
/// [`IMPORT_JOB_EVENTS`] taken in subject order, so a larger call means each
/// commit touches a narrower range of the subject-keyed indexes (fewer
/// pages written per event); 100,000 events are some tens of MB.
pub const IMPORT_CALL_EVENTS: usize = 100_000;
/// Ids per subject look-up of an import (one `IN (…)` list).
const IMPORT_LOOKUP_CHUNK: usize = 1000;
/// Rows per batch sent to a suppression-list stream.
const SUPPRESSION_BATCH: usize = 2048;

// ----- caches ----------------------------------------------------------------

#[derive(Clone, Debug)]
struct SubjectStatus {
    tenant: TenantId,
    erased_us: Option<i64>,
    restricted: bool,
}

#[derive(Debug)]
struct CachedSubject {
    fetched: Instant,
    status: SubjectStatus,
    purposes: HashMap<String, Option<ConsentState>>,
    /// A check has started reading it again (see [`ConsentCache::cached`]).
    refreshing: bool,
}

/// Age at which a subject's cache entry is read again: between half and
/// three quarters of its lifetime, spread by the (random) subject id, so
/// that entries cached together (a cold cache filling up) are not all
/// read again in the same moment.
fn refresh_age(id: &SubjectId, ttl: Duration) -> Duration {
    let spread = id.as_bytes().first().copied().unwrap_or(0);
    ttl / 2 + ttl / 4 * u32::from(spread) / 256
}

/// A cached check input and whether the caller should read it again in
/// the background.
struct CacheHit {
    status: SubjectStatus,
    state: Option<ConsentState>,
    refresh: bool,
}

type PolicyKey = (TenantId, String);

/// Per-process caches of the consent ledger (ids and states only).
#[derive(Debug)]
pub(crate) struct ConsentCache {
    ttl_us: AtomicU64,
    subjects: Mutex<HashMap<SubjectId, CachedSubject>>,
    policies: Mutex<HashMap<PolicyKey, (Instant, Arc<Policies>)>>,
    /// Audit sequence number up to which changes have been applied.
    followed_seq: AtomicI64,
    /// When (µs) the next check reads the audit log.
    next_follow_us: AtomicI64,
}

impl Default for ConsentCache {
    fn default() -> Self {
        Self {
            ttl_us: AtomicU64::new(DEFAULT_CHECK_TTL.as_micros() as u64),
            subjects: Mutex::new(HashMap::new()),
            policies: Mutex::new(HashMap::new()),
            followed_seq: AtomicI64::new(-1),
            next_follow_us: AtomicI64::new(0),
        }
    }
}

impl ConsentCache {
    fn clear(&self) {
        lock(&self.subjects).clear();
        lock(&self.policies).clear();
    }

    fn ttl(&self) -> Duration {
        Duration::from_micros(self.ttl_us.load(Ordering::Relaxed))
    }

    /// Drops everything cached about a subject (after a write, an erasure
    /// or a restriction through this process).
    pub(crate) fn forget_subject(&self, id: &SubjectId) {
        lock(&self.subjects).remove(id);
    }

    /// [`Self::forget_subject`] for many, under one lock.
    fn forget_subjects(&self, ids: &[SubjectId]) {
        let mut cache = lock(&self.subjects);
        for id in ids {
            cache.remove(id);
        }
    }

    fn forget_policies(&self, tenant: &TenantId, purpose: &str) {
        lock(&self.policies).remove(&(tenant.clone(), purpose.to_owned()));
    }

    /// The cached inputs of a check, if fresh. An entry past its
    /// [`refresh_age`] is still answered from, and the first check to find
    /// it so is told to read it again in the background: a subject checked
    /// steadily never waits for the database when its entry expires
    /// (otherwise, with many hot subjects, one check in a few dozen would
    /// be such a read, and that read would be the 99th percentile).
    fn cached(&self, id: &SubjectId, purpose: &str) -> Option<CacheHit> {
        let ttl = self.ttl();
        if ttl.is_zero() {
            return None;
        }
        let mut cache = lock(&self.subjects);
        let c = cache.get_mut(id)?;
        let age = c.fetched.elapsed();
        if age >= ttl {
            return None;
        }
        let state = c.purposes.get(purpose)?.clone();
        let refresh = age >= refresh_age(id, ttl) && !c.refreshing;
        c.refreshing |= refresh;
        Some(CacheHit {
            status: c.status.clone(),
            state,
            refresh,
        })
    }

    /// Caches what was read while the audit log had been followed up to
    /// `seen`. If a follow has moved on since, the read may predate a
    /// change it already applied, so nothing is cached.
    fn store(
        &self,
        id: SubjectId,
        status: SubjectStatus,
        purpose: &str,
        st: Option<ConsentState>,
        seen: i64,
    ) {
        if self.ttl().is_zero() {
            return;
        }
        let mut cache = lock(&self.subjects);
        if self.followed_seq.load(Ordering::Acquire) != seen {
            return;
        }
        if cache.len() >= CHECK_CACHE_MAX {
            cache.clear();
        }
        let entry = cache.entry(id).or_insert_with(|| CachedSubject {
            fetched: Instant::now(),
            status: status.clone(),
            purposes: HashMap::new(),
            refreshing: false,
        });
        // An entry due for a refresh starts over with this read (the
        // refresh, or a purpose read late): its other purposes were read
        // at the old time and would keep the new one's lifetime.
        if entry.fetched.elapsed() >= refresh_age(&id, self.ttl()) {
            entry.fetched = Instant::now();
            entry.purposes.clear();
            entry.refreshing = false;
        }
        entry.status = status;
        entry.purposes.insert(purpose.to_owned(), st);
    }
}

// ----- writer operations -----------------------------------------------------

/// One event row as stored.
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    id: String,
    tenant: String,
    subject: String,
    purpose: String,
    version: Option<i64>,
    text_sha256: Option<Vec<u8>>,
    action: Action,
    at_us: i64,
    channel: String,
    affirmative: bool,
    gpc: bool,
    form_id: Option<String>,
    proof_ct: Option<Vec<u8>>,
    actor: String,
}

impl EventRow {
    fn fact(&self) -> EventFact {
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
    tenant: String,
    subject: String,
    purpose: String,
    state: ConsentState,
}

/// Changes of the consent ledger, applied by the single writer.
#[derive(Debug)]
pub(crate) enum ConsentOp {
    /// A new policy version; returns its number.
    Publish {
        tenant: String,
        purpose: String,
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
    Rebuild { tenant: String },
}

const UPSERT_STATE_TAIL: &str = " ON CONFLICT (tenant, subject, purpose) DO UPDATE SET \
    state = excluded.state, version = excluded.version, at_us = excluded.at_us, \
    rank = excluded.rank, event_id = excluded.event_id \
    WHERE (excluded.at_us, excluded.rank, COALESCE(excluded.version, 0), excluded.event_id) \
        > (consent_state.at_us, consent_state.rank, COALESCE(consent_state.version, 0), consent_state.event_id)";

const EVENT_COLS: &str = "INSERT INTO consent_events (id, tenant, subject, purpose, version, text_sha256, action, at_us, recorded_us, channel, affirmative, gpc, form_id, proof_ct, actor)";

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind_event<'q>(q: AnyQuery<'q>, e: &'q EventRow, now: i64) -> AnyQuery<'q> {
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

fn bind_state<'q>(q: AnyQuery<'q>, s: &'q StateRow) -> AnyQuery<'q> {
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
fn import_insert(engine: crate::db::Engine, insert_into: &str) -> Cow<'_, str> {
    match engine {
        crate::db::Engine::Sqlite => {
            Cow::Owned(insert_into.replacen("INSERT", "INSERT OR FAIL", 1))
        }
        crate::db::Engine::Postgres => Cow::Borrowed(insert_into),
    }
}

const STATE_COLS: &str =
    "INSERT INTO consent_state (tenant, subject, purpose, state, version, at_us, rank, event_id)";

/// Upserts state rows; `import`: within a bulk import (see [`import_insert`]).
async fn upsert_states(
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

async fn apply(c: &mut AnyConnection, op: &ConsentOp, now: i64) -> Result<u64, StoreError> {
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
            .bind(sha.clone())
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

// ----- public types ----------------------------------------------------------

/// What a client asks to record (the server fills it from the request).
#[derive(Debug, Clone)]
pub struct ConsentInput {
    /// grant, withdraw or object.
    pub action: Action,
    /// Policy version shown; required for a grant, defaults to the current
    /// one for opt-outs.
    pub version: Option<i64>,
    /// How it was collected.
    pub channel: Channel,
    /// The subject acted (ticked an unticked box, clicked "I agree").
    pub affirmative: bool,
    /// A Global Privacy Control signal came with the request.
    pub gpc: bool,
    /// The form or checkbox id.
    pub form_id: Option<String>,
    /// Client IP address (proof; stored encrypted).
    pub ip: Option<String>,
    /// Client user agent (proof; stored encrypted).
    pub user_agent: Option<String>,
}

/// A policy version as listed (without its text).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyInfo {
    /// Purpose id.
    pub purpose: String,
    /// Version number (1, 2, …).
    pub version: i64,
    /// SHA-256 of the text, hex.
    pub text_sha256: String,
    /// Whether agreeing to an earlier version stops counting.
    pub material: bool,
    /// RFC 3339: from when this version is in force.
    pub effective_at: String,
    /// `deny` or `grace_until` (for material versions).
    pub revalidation: String,
    /// RFC 3339 end of the grace period, with `grace_until`.
    pub grace_until: Option<String>,
    /// RFC 3339 of publication.
    pub published_at: String,
}

/// One recorded event, as answered to the recorder.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RecordedEvent {
    /// Event id (`cev_…`).
    pub id: String,
    /// Purpose.
    pub purpose: String,
    /// grant, withdraw or object.
    pub action: String,
    /// Policy version referred to.
    pub version: Option<i64>,
    /// RFC 3339.
    pub at: String,
    /// Recorded because of a `Sec-GPC: 1` signal (an automatic opt-out).
    pub gpc_opt_out: bool,
}

/// Answer of a check.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CheckAnswer {
    /// May the purpose be carried out with this subject's data now?
    pub allowed: bool,
    /// Legal basis of the purpose (`consent`, `contract`, …).
    pub basis: String,
    /// Why: `granted`, `granted_in_grace_period`, `needs_revalidation`,
    /// `no_consent`, `withdrawn`, `no_objection`, `objected`, `restricted`,
    /// `legal_basis`.
    pub reason: String,
    /// Version of the deciding event (the version agreed, for a grant).
    pub version: Option<i64>,
    /// Version in force now.
    pub current_version: Option<i64>,
    /// A material version after the one agreed asks the subject again.
    pub needs_revalidation: bool,
    /// Purpose asked about.
    pub purpose: String,
}

impl CheckAnswer {
    fn new(rule: &PurposeRule, d: &Decision) -> Self {
        Self {
            allowed: d.allowed,
            basis: d.basis.as_str().to_owned(),
            reason: d.reason.as_str().to_owned(),
            version: d.version,
            current_version: d.current_version,
            needs_revalidation: d.needs_revalidation,
            purpose: rule.id.to_string(),
        }
    }
}

/// Who a check is about.
#[derive(Clone, Debug)]
pub enum CheckTarget {
    /// A subject id.
    Subject(SubjectId),
    /// A token issued for an audience (and, optionally, which audience).
    Token {
        /// `tok_…`
        token: String,
        /// The audience the caller expects it to belong to.
        audience: Option<Audience>,
    },
}

/// State of one purpose for one subject.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ConsentView {
    /// Purpose id.
    pub purpose: String,
    /// Its legal basis (from the map; `unknown` if no longer in it).
    pub basis: String,
    /// `granted`, `withdrawn`, `objected` or `none`.
    pub state: String,
    /// The answer a check gives now.
    pub allowed: bool,
    /// Why (see the check).
    pub reason: String,
    /// Version agreed (of the deciding event).
    pub version: Option<i64>,
    /// Version in force now.
    pub current_version: Option<i64>,
    /// A material version after the one agreed asks the subject again.
    pub needs_revalidation: bool,
    /// RFC 3339 of the deciding event.
    pub since: Option<String>,
}

/// Proof of one event as shown in the history.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ProofView {
    /// Whether an IP address or user agent was recorded.
    pub recorded: bool,
    /// Whether the values below are in clear (reveal scope and a purpose).
    pub revealed: bool,
    /// Client IP address (clear only when revealed).
    pub ip: Option<String>,
    /// Client user agent (clear only when revealed).
    pub user_agent: Option<String>,
}

/// One event of a subject's ledger.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// Event id.
    pub id: String,
    /// Purpose.
    pub purpose: String,
    /// grant, withdraw or object.
    pub action: String,
    /// Policy version referred to.
    pub version: Option<i64>,
    /// SHA-256 (hex) of that version's text.
    pub text_sha256: Option<String>,
    /// RFC 3339 of the event (original time for imports).
    pub at: String,
    /// RFC 3339 of when custos recorded it.
    pub recorded_at: String,
    /// Channel (`signup-form`, `api`, `import`, …).
    pub channel: String,
    /// The grant was an affirmative act.
    pub affirmative: bool,
    /// A Global Privacy Control signal was present.
    pub gpc: bool,
    /// Form or checkbox id.
    pub form_id: Option<String>,
    /// Who recorded it (API key id, `admin`, `cli`).
    pub recorded_by: String,
    /// IP address and user agent.
    pub proof: ProofView,
}

/// One line of a consent receipt.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ReceiptEntry {
    /// Purpose id.
    pub purpose: String,
    /// Title shown to people.
    pub title: String,
    /// `granted`, `withdrawn` or `objected`.
    pub state: String,
    /// Whether processing is allowed now.
    pub allowed: bool,
    /// Version agreed (or referred to by the opt-out).
    pub version: Option<i64>,
    /// RFC 3339 of the deciding event.
    pub since: String,
    /// Channel of the deciding event.
    pub channel: String,
    /// The text agreed to (grants).
    pub text: Option<String>,
    /// SHA-256 (hex) of the text.
    pub text_sha256: Option<String>,
    /// A newer material version asks again.
    pub needs_revalidation: bool,
    /// How to withdraw, as the data map says.
    pub withdraw_via: Option<String>,
}

/// A consent receipt: what the person agreed to, when, to which text.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Receipt {
    /// Subject id.
    pub subject: String,
    /// RFC 3339 of issue.
    pub issued_at: String,
    /// Current state per purpose with a recorded decision.
    pub entries: Vec<ReceiptEntry>,
}

/// One row of a suppression list.
#[derive(Clone, Debug)]
pub struct SuppressedRow {
    /// The subject's token for the requested audience.
    pub token: String,
    /// Why: `no_consent`, `withdrawn`, `needs_revalidation`, `objected`,
    /// `restricted`, `erased`.
    pub reason: &'static str,
}

/// Who an imported event is about.
#[derive(Clone, Debug)]
pub enum ImportSubject {
    /// A custos subject id.
    Id(SubjectId),
    /// The application's external id.
    External(String),
}

/// One event of a bulk import.
#[derive(Clone, Debug)]
pub struct ImportEvent {
    /// Whose.
    pub subject: ImportSubject,
    /// Purpose id.
    pub purpose: Purpose,
    /// Original time, µs.
    pub at_us: i64,
    /// The rest of the event.
    pub input: ConsentInput,
}

/// A rejected import line: its index in the batch, the field, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportRejection {
    /// Index in the batch passed in.
    pub index: usize,
    /// Field at fault.
    pub field: String,
    /// Why, without the value.
    pub reason: String,
}

/// Outcome of one import batch.
#[derive(Clone, Debug, Default)]
pub struct ImportReport {
    /// Events stored.
    pub accepted: u64,
    /// Events refused, with reasons.
    pub rejected: Vec<ImportRejection>,
}

/// Comparison of the materialised state with the fold of the events.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct StateCheck {
    /// Events read.
    pub events: u64,
    /// (subject, purpose) pairs derived from them.
    pub derived: u64,
    /// Rows in the materialised table.
    pub materialised: u64,
    /// Pairs that differ (0 when consistent).
    pub mismatches: u64,
}

// ----- helpers ---------------------------------------------------------------

fn authorize(actor: &Actor, tenant: &TenantId, any: &[Scope]) -> Result<(), StoreError> {
    match actor {
        Actor::Admin => Ok(()),
        Actor::Key(p) => {
            if p.tenant != *tenant {
                return Err(StoreError::NotFound("tenant"));
            }
            if any.is_empty() {
                Ok(())
            } else {
                p.require_any(any)
            }
        }
    }
}

fn can_reveal(actor: &Actor) -> bool {
    match actor {
        Actor::Admin => true,
        Actor::Key(p) => p.scopes.contains(Scope::Reveal),
    }
}

fn state_from_row(
    state: Option<String>,
    version: Option<i64>,
    at: Option<i64>,
    event_id: Option<String>,
) -> Result<Option<ConsentState>, StoreError> {
    match (state, at, event_id) {
        (Some(s), Some(at), Some(id)) => Ok(Some(ConsentState {
            state: StateKind::parse(&s).ok_or(StoreError::Integrity(
                custos_core::CoreError::MalformedEnvelope,
            ))?,
            version,
            since_us: at,
            event_id: id,
        })),
        _ => Ok(None),
    }
}

fn policy_from_row(r: &AnyRow) -> Result<(PolicyVersion, PolicyInfo), StoreError> {
    let purpose: String = r.try_get(0)?;
    let version: i64 = r.try_get(1)?;
    let sha = crate::keystore::to32(r.try_get(2)?)?;
    let material: i64 = r.try_get(3)?;
    let effective_us: i64 = r.try_get(4)?;
    let reval: String = r.try_get(5)?;
    let grace: Option<i64> = r.try_get(6)?;
    let created: i64 = r.try_get(7)?;
    let revalidation = match (reval.as_str(), grace) {
        ("grace_until", Some(t)) => Revalidation::GraceUntil(t),
        _ => Revalidation::Deny,
    };
    Ok((
        PolicyVersion {
            version,
            text_sha256: sha,
            material: material != 0,
            effective_us,
            revalidation,
        },
        PolicyInfo {
            purpose,
            version,
            text_sha256: hex::encode(sha),
            material: material != 0,
            effective_at: rfc3339(effective_us),
            revalidation: reval,
            grace_until: grace.map(rfc3339),
            published_at: rfc3339(created),
        },
    ))
}

const POLICY_COLS: &str = "purpose, version, text_sha256, material, effective_us, revalidation, grace_until_us, created_us";

/// `$first, …` (PostgreSQL) or `?, …` (SQLite) for an `IN (…)` list of `n`
/// values bound after `first - 1` others. SQLite gets anonymous
/// placeholders for the reason given at [`crate::db::Engine::values`]
/// (numbered ones make a long list quadratic to bind); its `?` take the
/// next numbers, so a `$1` before the list still binds first.
fn in_marks(engine: crate::db::Engine, n: usize, first: usize) -> String {
    let mut s = String::with_capacity(n * 6);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        match engine {
            crate::db::Engine::Sqlite => s.push('?'),
            crate::db::Engine::Postgres => {
                s.push('$');
                s.push_str(&(first + i).to_string());
            }
        }
    }
    s
}

/// What an import batch shares across its jobs.
struct ImportCtx<'a> {
    tenant: &'a TenantId,
    rules: &'a HashMap<String, PurposeRule>,
    /// Versions of every declared purpose named in the batch.
    policies: HashMap<&'a str, Arc<Policies>>,
    actor: String,
    /// Events later than this are refused (clock skew allowance).
    latest: i64,
}

/// One writer job of an import, prepared.
struct ImportJob {
    /// In (subject, purpose, time) order.
    rows: Vec<EventRow>,
    rejected: Vec<ImportRejection>,
    /// Subjects with rows, to drop from the check cache after the commit.
    touched: Vec<SubjectId>,
}

/// The state rows of events sorted by (subject, purpose): one per pair,
/// the fold of its events, in the same order (so that the upsert walks the
/// state's primary key forward).
fn fold_sorted(rows: &[EventRow]) -> Vec<StateRow> {
    let mut out: Vec<StateRow> = Vec::new();
    for group in rows.chunk_by(|a, b| a.subject == b.subject && a.purpose == b.purpose) {
        let Some(first) = group.first() else { continue };
        let state = group
            .iter()
            .fold(None, |cur, r| rules::apply(cur, &r.fact()));
        if let Some(state) = state {
            out.push(StateRow {
                tenant: first.tenant.clone(),
                subject: first.subject.clone(),
                purpose: first.purpose.clone(),
                state,
            });
        }
    }
    out
}

/// Validates an input against the rule and policies and builds its row.
#[allow(clippy::too_many_arguments)]
fn prepare(
    tenant: &TenantId,
    subject: &SubjectId,
    rule: &PurposeRule,
    policies: &Policies,
    input: &ConsentInput,
    at_us: i64,
    actor: &str,
    dek: Option<&SubjectKey>,
) -> Result<EventRow, ConsentError> {
    input.action.check_allowed_for(rule)?;
    if input.action == Action::Grant && !input.affirmative {
        return Err(ConsentError::NotAffirmative);
    }
    let version = match (input.version, input.action) {
        (Some(v), _) => {
            policies
                .get(v)
                .ok_or_else(|| ConsentError::UnknownVersion {
                    purpose: rule.id.to_string(),
                    version: v,
                })?;
            Some(v)
        }
        (None, Action::Grant) => {
            if policies.all().is_empty() {
                return Err(ConsentError::NoPolicyVersion {
                    purpose: rule.id.to_string(),
                });
            }
            return Err(ConsentError::Invalid {
                field: "version",
                reason: "a grant must name the policy version whose text was shown",
            });
        }
        (None, _) => policies.current(at_us).map(|v| v.version),
    };
    let sha = version
        .and_then(|v| policies.get(v))
        .map(|v| v.text_sha256.to_vec());
    if let Some(f) = &input.form_id {
        check_form_id(f)?;
    }
    let ip = input.ip.as_deref().map(canonical_ip).transpose()?;
    if let Some(ua) = &input.user_agent {
        check_user_agent(ua)?;
    }
    let id = rules::new_event_id(&mut OsRng, now_us());
    let proof_ct = if ip.is_some() || input.user_agent.is_some() {
        let Some(dek) = dek else {
            return Err(ConsentError::Invalid {
                field: "ip",
                reason: "proof cannot be stored: the subject has no key",
            });
        };
        let proof = serde_json::json!({ "ip": ip, "user_agent": input.user_agent });
        let mut clear = serde_json::to_vec(&proof).unwrap_or_default();
        let ct = envelope::seal(
            dek.key(),
            &proof_context(tenant, subject, &id),
            &clear,
            &mut OsRng,
        );
        zeroize::Zeroize::zeroize(&mut clear);
        Some(ct)
    } else {
        None
    };
    Ok(EventRow {
        id,
        tenant: tenant.to_string(),
        subject: subject.to_string(),
        purpose: rule.id.to_string(),
        version,
        text_sha256: sha,
        action: input.action,
        at_us,
        channel: input.channel.as_str().to_owned(),
        affirmative: input.affirmative,
        gpc: input.gpc,
        form_id: input.form_id.clone(),
        proof_ct,
        actor: actor.to_owned(),
    })
}

fn audit_action(a: Action) -> &'static str {
    match a {
        Action::Grant => "consent.grant",
        Action::Withdraw => "consent.withdraw",
        Action::Object => "consent.object",
    }
}

fn recorded(e: &EventRow, gpc_opt_out: bool) -> RecordedEvent {
    RecordedEvent {
        id: e.id.clone(),
        purpose: e.purpose.clone(),
        action: e.action.as_str().to_owned(),
        version: e.version,
        at: rfc3339(e.at_us),
        gpc_opt_out,
    }
}

fn suppression_reason(d: &Decision, erased: bool) -> &'static str {
    if erased {
        return "erased";
    }
    d.reason.as_str()
}

/// A condition (over `s` and `c` of the suppression query) that holds only
/// for rows [`decide`] allows at `now`, and the floor version to bind as
/// `$3` when it names one. Erased and restricted subjects never match.
/// Never NULL (a subject without a state row has NULL `c` columns), so
/// `NOT (…)` keeps every row the condition does not name.
/// Mirrors `decide`: consent needs a grant no material version in effect
/// has overtaken (`Policies::revalidation_floor`), legitimate interest
/// anything but an objection, the other bases nothing.
fn surely_allowed(rule: &PurposeRule, policies: &Policies, now: i64) -> (String, Option<i64>) {
    let live = "s.erased_us IS NULL AND s.restricted_us IS NULL";
    match rule.basis {
        Basis::Consent => match policies.revalidation_floor(now) {
            Some(f) => (
                format!(
                    "{live} AND COALESCE(c.state, '') = 'granted' AND COALESCE(c.version, 0) >= $3"
                ),
                Some(f),
            ),
            None => (
                format!("{live} AND COALESCE(c.state, '') = 'granted'"),
                None,
            ),
        },
        Basis::LegitimateInterest => (
            format!("{live} AND COALESCE(c.state, '') <> 'objected'"),
            None,
        ),
        _ => (live.to_owned(), None),
    }
}

// ----- the service -----------------------------------------------------------

impl Vault {
    /// Sets how long check inputs may be served from this process's cache
    /// (zero: every check reads the database). See the module docs.
    pub fn set_consent_check_ttl(&self, ttl: Duration) {
        self.inner
            .consent
            .ttl_us
            .store(ttl.as_micros() as u64, Ordering::Relaxed);
        self.inner.consent.clear();
    }

    /// Applies other servers' changes to the check cache (see the module
    /// docs): at most once per [`FOLLOW_EVERY`], by the first check that
    /// finds the interval over.
    async fn follow_changes(&self) {
        let c = &self.inner.consent;
        if c.ttl().is_zero() {
            return;
        }
        let now = now_us();
        let due = c.next_follow_us.load(Ordering::Acquire);
        if now < due
            || c.next_follow_us
                .compare_exchange(
                    due,
                    now + FOLLOW_EVERY.as_micros() as i64,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        if let Err(e) = self.apply_followed_changes().await {
            tracing::warn!(error = %e, "audit log not readable; consent check cache dropped");
            c.clear();
        }
    }

    async fn apply_followed_changes(&self) -> Result<(), StoreError> {
        let c = &self.inner.consent;
        let head: i64 = sqlx::query("SELECT seq FROM audit_head WHERE id = 1")
            .fetch_one(&self.inner.read)
            .await?
            .try_get(0)?;
        let last = c.followed_seq.load(Ordering::Acquire);
        if last < 0 {
            // First look: drop whatever was cached before it.
            c.followed_seq.fetch_max(head, Ordering::AcqRel);
            c.clear();
            return Ok(());
        }
        if head <= last {
            return Ok(());
        }
        let marks = (0..INVALIDATING.len())
            .map(|i| format!("${}", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT action, subject FROM audit_log WHERE seq > $1 AND seq <= $2 AND action IN ({marks})"
        );
        let mut q = sqlx::query(&sql).bind(last).bind(head);
        for a in INVALIDATING {
            q = q.bind(*a);
        }
        let rows = q.fetch_all(&self.inner.read).await?;
        // Moved on before dropping entries: a check that read the database
        // before this follow then declines to cache (see `store`).
        c.followed_seq.fetch_max(head, Ordering::AcqRel);
        for r in rows {
            let action: String = r.try_get(0)?;
            let subject: Option<String> = r.try_get(1)?;
            match (action.as_str(), subject.map(|s| SubjectId::parse(&s))) {
                ("consent.policy.publish", _) => lock(&c.policies).clear(),
                (_, Some(Ok(id))) => c.forget_subject(&id),
                // Bulk changes (imports, rebuilds, a shredded tenant).
                _ => c.clear(),
            }
        }
        Ok(())
    }

    /// Publishes a new policy version of a governed purpose. Needs the admin
    /// scope: a material version asks every subject again. Audited.
    #[allow(clippy::too_many_arguments)]
    pub async fn publish_policy(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        rule: &PurposeRule,
        text: &str,
        material: bool,
        effective_us: Option<i64>,
        revalidation: Revalidation,
    ) -> Result<PolicyInfo, StoreError> {
        authorize(actor, tenant, &[Scope::Admin])?;
        if !rule.basis.governed() {
            return Err(ConsentError::NotGoverned {
                purpose: rule.id.to_string(),
                basis: rule.basis,
            }
            .into());
        }
        if text.trim().is_empty() || text.len() > MAX_POLICY_TEXT {
            return Err(StoreError::invalid(
                "text",
                format!("must be 1 to {MAX_POLICY_TEXT} bytes"),
            ));
        }
        let sha = text_sha256(text);
        let ev = AuditEvent {
            tenant: Some(tenant.to_string()),
            actor: actor.audit_name(),
            action: "consent.policy.publish".into(),
            subject: None,
            purpose: Some(rule.id.to_string()),
            outcome: "ok".into(),
        };
        let mut tries = 0;
        let version = loop {
            let r = self
                .inner
                .writer
                .submit(
                    ConsentOp::Publish {
                        tenant: tenant.to_string(),
                        purpose: rule.id.to_string(),
                        text: text.to_owned(),
                        sha: sha.to_vec(),
                        material,
                        effective_us,
                        revalidation,
                        actor: actor.audit_name(),
                    },
                    vec![ev.clone()],
                )
                .await;
            match r {
                Err(StoreError::Conflict(_)) if tries < 3 => tries += 1,
                other => break other? as i64,
            }
        };
        self.inner.consent.forget_policies(tenant, rule.id.as_str());
        let row = sqlx::query(&format!(
            "SELECT {POLICY_COLS} FROM consent_policies WHERE tenant = $1 AND purpose = $2 AND version = $3"
        ))
        .bind(tenant.as_str())
        .bind(rule.id.as_str())
        .bind(version)
        .fetch_one(&self.inner.read)
        .await?;
        Ok(policy_from_row(&row)?.1)
    }

    /// Every policy version of the tenant (without texts), by purpose and version.
    pub async fn list_policies(
        &self,
        actor: &Actor,
        tenant: &TenantId,
    ) -> Result<Vec<PolicyInfo>, StoreError> {
        authorize(actor, tenant, &[])?;
        let rows = sqlx::query(&format!(
            "SELECT {POLICY_COLS} FROM consent_policies WHERE tenant = $1 ORDER BY purpose, version"
        ))
        .bind(tenant.as_str())
        .fetch_all(&self.inner.read)
        .await?;
        rows.iter()
            .map(|r| policy_from_row(r).map(|x| x.1))
            .collect()
    }

    /// The text of one policy version.
    pub async fn policy_text(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        purpose: &Purpose,
        version: i64,
    ) -> Result<String, StoreError> {
        authorize(actor, tenant, &[])?;
        let row = sqlx::query(
            "SELECT text FROM consent_policies WHERE tenant = $1 AND purpose = $2 AND version = $3",
        )
        .bind(tenant.as_str())
        .bind(purpose.as_str())
        .bind(version)
        .fetch_optional(&self.inner.read)
        .await?
        .ok_or(StoreError::NotFound("policy version"))?;
        Ok(row.try_get(0)?)
    }

    /// The versions of one purpose (cached per process for the check TTL;
    /// publishing through this process refreshes it at once).
    pub async fn policies(
        &self,
        tenant: &TenantId,
        purpose: &Purpose,
    ) -> Result<Arc<Policies>, StoreError> {
        let key = (tenant.clone(), purpose.to_string());
        let ttl = self.inner.consent.ttl();
        if !ttl.is_zero() {
            if let Some((at, p)) = lock(&self.inner.consent.policies).get(&key) {
                if at.elapsed() < ttl {
                    return Ok(p.clone());
                }
            }
        }
        let seen = self.inner.consent.followed_seq.load(Ordering::Acquire);
        let rows = sqlx::query(&format!(
            "SELECT {POLICY_COLS} FROM consent_policies WHERE tenant = $1 AND purpose = $2 ORDER BY version"
        ))
        .bind(tenant.as_str())
        .bind(purpose.as_str())
        .fetch_all(&self.inner.read)
        .await?;
        let versions = rows
            .iter()
            .map(|r| policy_from_row(r).map(|x| x.0))
            .collect::<Result<Vec<_>, _>>()?;
        let p = Arc::new(Policies::new(versions));
        if !ttl.is_zero() {
            let mut cache = lock(&self.inner.consent.policies);
            // As for subjects: not if a follow ran since the read.
            if self.inner.consent.followed_seq.load(Ordering::Acquire) == seen {
                cache.insert(key, (Instant::now(), p.clone()));
            }
        }
        Ok(p)
    }

    /// Records one event for a subject (write scope), plus — when the
    /// request carried `Sec-GPC: 1` — an opt-out of every purpose in
    /// `gpc_purposes` (the map's sale/sharing purposes) that the subject is
    /// currently opted into. All events, their states and audit entries
    /// commit together. Returns the events recorded, the requested one first.
    pub async fn record_consent(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        subject: &SubjectId,
        rule: &PurposeRule,
        input: &ConsentInput,
        gpc_purposes: &[PurposeRule],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        authorize(actor, tenant, &[Scope::Write])?;
        self.live_subject(tenant, subject).await?;
        let needs_key = input.ip.is_some() || input.user_agent.is_some();
        let dek = if needs_key {
            Some(self.subject_key(tenant, subject).await?)
        } else {
            None
        };
        let now = now_us();
        let actor_name = actor.audit_name();
        let policies = self.policies(tenant, &rule.id).await?;
        let main = prepare(
            tenant,
            subject,
            rule,
            &policies,
            input,
            now,
            &actor_name,
            dek.as_deref(),
        )?;
        let mut rows = vec![(main, false)];
        if input.gpc {
            let current = self.subject_states(tenant, subject).await?;
            for g in gpc_purposes
                .iter()
                .filter(|g| g.sale_or_sharing && g.basis.governed())
            {
                let mut st = current.get(g.id.as_str()).cloned();
                for (r, _) in &rows {
                    if r.purpose == g.id.as_str() {
                        st = rules::apply(st, &r.fact());
                    }
                }
                let opted_in = match g.basis {
                    Basis::Consent => st.is_some_and(|s| s.state == StateKind::Granted),
                    _ => !st.is_some_and(|s| s.state == StateKind::Objected),
                };
                if !opted_in {
                    continue;
                }
                let action = if g.basis == Basis::Consent {
                    Action::Withdraw
                } else {
                    Action::Object
                };
                let gp = self.policies(tenant, &g.id).await?;
                let opt_out = ConsentInput {
                    action,
                    version: None,
                    channel: input.channel.clone(),
                    affirmative: input.affirmative,
                    gpc: true,
                    form_id: input.form_id.clone(),
                    ip: input.ip.clone(),
                    user_agent: input.user_agent.clone(),
                };
                let row = prepare(
                    tenant,
                    subject,
                    g,
                    &gp,
                    &opt_out,
                    now,
                    &actor_name,
                    dek.as_deref(),
                )?;
                rows.push((row, true));
            }
        }
        let audit: Vec<AuditEvent> = rows
            .iter()
            .map(|(r, gpc)| {
                event(
                    tenant,
                    actor,
                    audit_action(r.action),
                    Some(subject.to_string()),
                    Some(&r.purpose),
                    if *gpc { "ok_gpc" } else { "ok" },
                )
            })
            .collect();
        let out: Vec<RecordedEvent> = rows.iter().map(|(r, g)| recorded(r, *g)).collect();
        let n = self
            .inner
            .writer
            .submit(
                ConsentOp::Record {
                    events: rows.into_iter().map(|(r, _)| r).collect(),
                },
                audit,
            )
            .await?;
        self.inner.consent.forget_subject(subject);
        if n == 0 {
            self.live_subject(tenant, subject).await?;
            return Err(StoreError::NotFound("subject"));
        }
        Ok(out)
    }

    async fn subject_states(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
    ) -> Result<BTreeMap<String, ConsentState>, StoreError> {
        let rows = sqlx::query(
            "SELECT purpose, state, version, at_us, event_id FROM consent_state WHERE tenant = $1 AND subject = $2",
        )
        .bind(tenant.as_str())
        .bind(subject.to_string())
        .fetch_all(&self.inner.read)
        .await?;
        let mut out = BTreeMap::new();
        for r in rows {
            let purpose: String = r.try_get(0)?;
            if let Some(s) = state_from_row(
                Some(r.try_get(1)?),
                r.try_get(2)?,
                Some(r.try_get(3)?),
                Some(r.try_get(4)?),
            )? {
                out.insert(purpose, s);
            }
        }
        Ok(out)
    }

    /// The hot path: may `rule` be carried out for this subject now? Reads
    /// one row (subject status joined with the state), or the cache.
    /// Erased subjects answer `SubjectErased` (tokens: `TokenGone`). Any
    /// key of the tenant may ask; not audited (it reveals no personal data
    /// and runs per email or page view).
    pub async fn consent_check(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        target: &CheckTarget,
        rule: &PurposeRule,
    ) -> Result<CheckAnswer, StoreError> {
        authorize(actor, tenant, &[])?;
        self.follow_changes().await;
        let subject = match target {
            CheckTarget::Subject(s) => *s,
            CheckTarget::Token { token, audience } => {
                self.token_subject(tenant, token, audience.as_ref()).await?
            }
        };
        let (status, state) = match self.inner.consent.cached(&subject, rule.id.as_str()) {
            Some(hit) if hit.status.tenant == *tenant => {
                if hit.refresh {
                    let (vault, tenant, purpose) =
                        (self.clone(), tenant.clone(), rule.id.as_str().to_owned());
                    tokio::spawn(async move {
                        if let Err(e) = vault.read_check_inputs(&tenant, subject, &purpose).await {
                            tracing::warn!(error = %e, "consent check cache refresh failed");
                        }
                    });
                }
                (hit.status, hit.state)
            }
            _ => {
                self.read_check_inputs(tenant, subject, rule.id.as_str())
                    .await?
            }
        };
        if let Some(e) = status.erased_us {
            return Err(match target {
                CheckTarget::Subject(_) => StoreError::SubjectErased {
                    erased_at: rfc3339(e),
                },
                CheckTarget::Token { .. } => StoreError::TokenGone {
                    erased_at: rfc3339(e),
                },
            });
        }
        let policies = self.policies(tenant, &rule.id).await?;
        let d = decide(rule, state.as_ref(), &policies, status.restricted, now_us());
        Ok(CheckAnswer::new(rule, &d))
    }

    /// Reads a check's inputs (the subject's status and its state for
    /// `purpose`) and caches them.
    async fn read_check_inputs(
        &self,
        tenant: &TenantId,
        subject: SubjectId,
        purpose: &str,
    ) -> Result<(SubjectStatus, Option<ConsentState>), StoreError> {
        let seen = self.inner.consent.followed_seq.load(Ordering::Acquire);
        let row = sqlx::query(
            "SELECT s.erased_us, s.restricted_us, c.state, c.version, c.at_us, c.event_id \
             FROM subjects s LEFT JOIN consent_state c \
               ON c.tenant = s.tenant AND c.subject = s.id AND c.purpose = $3 \
             WHERE s.id = $1 AND s.tenant = $2",
        )
        .bind(subject.to_string())
        .bind(tenant.as_str())
        .bind(purpose)
        .fetch_optional(&self.inner.read)
        .await?
        .ok_or(StoreError::NotFound("subject"))?;
        let status = SubjectStatus {
            tenant: tenant.clone(),
            erased_us: row.try_get(0)?,
            restricted: row.try_get::<Option<i64>, _>(1)?.is_some(),
        };
        let state = state_from_row(
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get(4)?,
            row.try_get(5)?,
        )?;
        self.inner
            .consent
            .store(subject, status.clone(), purpose, state.clone(), seen);
        Ok((status, state))
    }

    async fn token_subject(
        &self,
        tenant: &TenantId,
        token: &str,
        audience: Option<&Audience>,
    ) -> Result<SubjectId, StoreError> {
        if token.len() > 64 || !token.starts_with("tok_") {
            return Err(StoreError::invalid(
                "token",
                "expected tok_ followed by 24 characters",
            ));
        }
        let row =
            sqlx::query("SELECT subject, audience FROM tokens WHERE token = $1 AND tenant = $2")
                .bind(token)
                .bind(tenant.as_str())
                .fetch_optional(&self.inner.read)
                .await?
                .ok_or(StoreError::NotFound("token"))?;
        let aud: String = row.try_get(1)?;
        if audience.is_some_and(|a| a.as_str() != aud) {
            return Err(StoreError::NotFound("token"));
        }
        SubjectId::parse(&row.try_get::<String, _>(0)?).map_err(StoreError::Integrity)
    }

    /// Per purpose: state, version agreed, current version, revalidation,
    /// since — for every governed purpose in `rules` and every purpose with
    /// a recorded decision. Any key of the tenant with write, lookup or reveal.
    pub async fn consents(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        subject: &SubjectId,
        rules: &[PurposeRule],
    ) -> Result<Vec<ConsentView>, StoreError> {
        authorize(actor, tenant, &[Scope::Write, Scope::Lookup, Scope::Reveal])?;
        let info = self.live_subject(tenant, subject).await?;
        let states = self.subject_states(tenant, subject).await?;
        let now = now_us();
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for rule in rules.iter().filter(|r| r.basis.governed()) {
            seen.insert(rule.id.to_string());
            let st = states.get(rule.id.as_str());
            let policies = self.policies(tenant, &rule.id).await?;
            let d = decide(rule, st, &policies, info.restricted, now);
            out.push(ConsentView {
                purpose: rule.id.to_string(),
                basis: rule.basis.as_str().to_owned(),
                state: st.map_or("none", |s| s.state.as_str()).to_owned(),
                allowed: d.allowed,
                reason: d.reason.as_str().to_owned(),
                version: d.version,
                current_version: d.current_version,
                needs_revalidation: d.needs_revalidation,
                since: st.map(|s| rfc3339(s.since_us)),
            });
        }
        for (purpose, st) in &states {
            if seen.contains(purpose) {
                continue;
            }
            out.push(ConsentView {
                purpose: purpose.clone(),
                basis: "unknown".into(),
                state: st.state.as_str().to_owned(),
                allowed: false,
                reason: "purpose_not_in_map".into(),
                version: st.version,
                current_version: None,
                needs_revalidation: false,
                since: Some(rfc3339(st.since_us)),
            });
        }
        Ok(out)
    }

    /// The subject's ledger, oldest first. Proof values are decrypted only
    /// for a caller with the reveal scope who names a `purpose`; that read
    /// is audited (`consent.history.reveal`), other reads as
    /// `consent.history`.
    pub async fn consent_history(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        subject: &SubjectId,
        reveal_purpose: Option<&Purpose>,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        authorize(actor, tenant, &[Scope::Write, Scope::Lookup, Scope::Reveal])?;
        self.live_subject(tenant, subject).await?;
        let clear = can_reveal(actor) && reveal_purpose.is_some();
        let rows = sqlx::query(
            "SELECT id, purpose, action, version, text_sha256, at_us, recorded_us, channel, affirmative, gpc, form_id, proof_ct, actor \
             FROM consent_events WHERE tenant = $1 AND subject = $2 \
             ORDER BY at_us, CASE action WHEN 'grant' THEN 0 WHEN 'withdraw' THEN 1 ELSE 2 END, COALESCE(version, 0), id",
        )
        .bind(tenant.as_str())
        .bind(subject.to_string())
        .fetch_all(&self.inner.read)
        .await?;
        let dek = if clear {
            Some(self.subject_key(tenant, subject).await?)
        } else {
            None
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get(0)?;
            let proof_ct: Option<Vec<u8>> = r.try_get(11)?;
            let mut proof = ProofView {
                recorded: proof_ct.is_some(),
                revealed: false,
                ip: None,
                user_agent: None,
            };
            if let (Some(ct), Some(dek)) = (&proof_ct, &dek) {
                let bytes = envelope::open(dek.key(), &proof_context(tenant, subject, &id), ct)
                    .map_err(StoreError::Integrity)?;
                let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| {
                    StoreError::Integrity(custos_core::CoreError::MalformedEnvelope)
                })?;
                proof.revealed = true;
                proof.ip = v.get("ip").and_then(|x| x.as_str()).map(str::to_owned);
                proof.user_agent = v
                    .get("user_agent")
                    .and_then(|x| x.as_str())
                    .map(str::to_owned);
            }
            out.push(HistoryEntry {
                id,
                purpose: r.try_get(1)?,
                action: r.try_get(2)?,
                version: r.try_get(3)?,
                text_sha256: r.try_get::<Option<Vec<u8>>, _>(4)?.map(hex::encode),
                at: rfc3339(r.try_get(5)?),
                recorded_at: rfc3339(r.try_get(6)?),
                channel: r.try_get(7)?,
                affirmative: r.try_get::<i64, _>(8)? != 0,
                gpc: r.try_get::<i64, _>(9)? != 0,
                form_id: r.try_get(10)?,
                recorded_by: r.try_get(12)?,
                proof,
            });
        }
        let (action, purpose) = if clear {
            ("consent.history.reveal", reveal_purpose.map(|p| p.as_str()))
        } else {
            ("consent.history", None)
        };
        let ev = event(
            tenant,
            actor,
            action,
            Some(subject.to_string()),
            purpose,
            "ok",
        );
        self.inner.writer.audit(vec![ev]).await?;
        Ok(out)
    }

    /// A consent receipt: per purpose with a recorded decision, its state,
    /// the version and text agreed, when, through which channel, and how to
    /// withdraw. Audited (`consent.receipt`).
    pub async fn consent_receipt(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        subject: &SubjectId,
        rules: &[PurposeRule],
    ) -> Result<Receipt, StoreError> {
        authorize(actor, tenant, &[Scope::Write, Scope::Lookup, Scope::Reveal])?;
        let info = self.live_subject(tenant, subject).await?;
        let rows = sqlx::query(
            "SELECT c.purpose, c.state, c.version, c.at_us, c.event_id, e.channel, p.text, p.text_sha256 \
             FROM consent_state c JOIN consent_events e ON e.id = c.event_id \
             LEFT JOIN consent_policies p ON p.tenant = c.tenant AND p.purpose = c.purpose AND p.version = c.version \
             WHERE c.tenant = $1 AND c.subject = $2 ORDER BY c.purpose",
        )
        .bind(tenant.as_str())
        .bind(subject.to_string())
        .fetch_all(&self.inner.read)
        .await?;
        let now = now_us();
        let mut entries = Vec::with_capacity(rows.len());
        for r in rows {
            let purpose: String = r.try_get(0)?;
            let Some(st) = state_from_row(
                Some(r.try_get(1)?),
                r.try_get(2)?,
                Some(r.try_get(3)?),
                Some(r.try_get(4)?),
            )?
            else {
                continue;
            };
            let rule = rules.iter().find(|x| x.id.as_str() == purpose);
            let (allowed, needs_revalidation, title, withdraw_via) = match rule {
                Some(rule) => {
                    let policies = self.policies(tenant, &rule.id).await?;
                    let d = decide(rule, Some(&st), &policies, info.restricted, now);
                    (
                        d.allowed,
                        d.needs_revalidation,
                        rule.title.clone(),
                        rule.withdraw_via.clone(),
                    )
                }
                None => (false, false, purpose.clone(), None),
            };
            let granted = st.state == StateKind::Granted;
            entries.push(ReceiptEntry {
                purpose,
                title,
                state: st.state.as_str().to_owned(),
                allowed,
                version: st.version,
                since: rfc3339(st.since_us),
                channel: r.try_get(5)?,
                text: if granted { r.try_get(6)? } else { None },
                text_sha256: r.try_get::<Option<Vec<u8>>, _>(7)?.map(hex::encode),
                needs_revalidation,
                withdraw_via,
            });
        }
        let ev = event(
            tenant,
            actor,
            "consent.receipt",
            Some(subject.to_string()),
            None,
            "ok",
        );
        self.inner.writer.audit(vec![ev]).await?;
        Ok(Receipt {
            subject: subject.to_string(),
            issued_at: rfc3339(now),
            entries,
        })
    }

    /// The suppression list of a purpose: every subject of the tenant for
    /// whom the purpose is not allowed now (erased subjects included, so a
    /// recipient never mails a forgotten person again), as tokens of
    /// `audience`. Streams batches from one database cursor through a
    /// bounded channel, so memory stays flat however many subjects there
    /// are. Needs lookup or processor scope; audited once.
    pub async fn suppression_list(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        rule: &PurposeRule,
        audience: &Audience,
    ) -> Result<mpsc::Receiver<Result<Vec<SuppressedRow>, StoreError>>, StoreError> {
        authorize(actor, tenant, &[Scope::Lookup, Scope::Processor])?;
        let keys = self.tenant_keys(tenant).await?;
        let token_key = keys.token_key(audience);
        let policies = self.policies(tenant, &rule.id).await?;
        let ev = event(
            tenant,
            actor,
            "consent.suppression",
            None,
            Some(rule.id.as_str()),
            "ok",
        );
        self.inner.writer.audit(vec![ev]).await?;
        let (tx, rx) = mpsc::channel(4);
        let pool = self.inner.read.clone();
        let tenant = tenant.clone();
        let rule = rule.clone();
        tokio::spawn(async move {
            let now = now_us();
            // Rows `decide` surely allows stay in the database (most of a
            // list, usually); every other row is decided below as before.
            let (allowed_sql, floor) = surely_allowed(&rule, &policies, now);
            let sql = format!(
                "SELECT s.id, s.erased_us, s.restricted_us, c.state, c.version, c.at_us, c.event_id \
                 FROM subjects s LEFT JOIN consent_state c \
                   ON c.tenant = s.tenant AND c.subject = s.id AND c.purpose = $2 \
                 WHERE s.tenant = $1 AND NOT ({allowed_sql})"
            );
            let mut q = sqlx::query(&sql)
                .bind(tenant.as_str())
                .bind(rule.id.as_str());
            if let Some(f) = floor {
                q = q.bind(f);
            }
            let mut rows = q.fetch(&pool);
            let mut batch = Vec::with_capacity(SUPPRESSION_BATCH);
            loop {
                let next = rows.try_next().await;
                let row = match next {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(StoreError::from(e))).await;
                        return;
                    }
                };
                let parsed = (|| -> Result<Option<SuppressedRow>, StoreError> {
                    let id = SubjectId::parse(&row.try_get::<String, _>(0)?)
                        .map_err(StoreError::Integrity)?;
                    let erased = row.try_get::<Option<i64>, _>(1)?.is_some();
                    let restricted = row.try_get::<Option<i64>, _>(2)?.is_some();
                    let st = state_from_row(
                        row.try_get(3)?,
                        row.try_get(4)?,
                        row.try_get(5)?,
                        row.try_get(6)?,
                    )?;
                    let d = decide(&rule, st.as_ref(), &policies, restricted, now);
                    if d.allowed && !erased {
                        return Ok(None);
                    }
                    Ok(Some(SuppressedRow {
                        token: token_with_key(&token_key, &id),
                        reason: suppression_reason(&d, erased),
                    }))
                })();
                match parsed {
                    Ok(Some(r)) => batch.push(r),
                    Ok(None) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
                if batch.len() >= SUPPRESSION_BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(SUPPRESSION_BATCH));
                    if tx.send(Ok(full)).await.is_err() {
                        return; // client went away
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(Ok(batch)).await;
            }
        });
        Ok(rx)
    }

    /// Imports a batch of existing consent records with their original
    /// timestamps. Each event is validated like a live one (purpose known
    /// and governed, action fits the basis, grants affirmative and naming
    /// an existing version, subject known and not erased, time not in the
    /// future, proof well-formed); rejected events are reported by index.
    /// Needs the write scope.
    ///
    /// The accepted events commit in writer jobs of at most
    /// [`IMPORT_JOB_EVENTS`], each with its folded states and one audit
    /// entry. Events are taken in subject order, so that each job touches
    /// one narrow key range of the subject-keyed B-trees (events by subject,
    /// the state's primary key) instead of pages all over them: with random
    /// subject ids, that is what decides the cost of an import once the
    /// ledger outgrows the page cache (each commit writes every page it
    /// touched to the WAL, then to the database). The larger the batch, the
    /// narrower each job's range. Jobs are pipelined: the next one is
    /// validated and sealed while the writer commits the previous one. If a
    /// job fails, those before it stay committed and the error is returned.
    pub async fn import_consent(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        rules: &HashMap<String, PurposeRule>,
        events: &[ImportEvent],
    ) -> Result<ImportReport, StoreError> {
        authorize(actor, tenant, &[Scope::Write])?;
        let mut report = ImportReport::default();
        // Subject order (external ids after ids, by their own order: they
        // are resolved per job), then purpose and time as in the index.
        let mut order: Vec<(usize, &ImportEvent)> = events.iter().enumerate().collect();
        fn key(e: &ImportEvent) -> (u8, Option<SubjectId>, &str, &str, i64) {
            match &e.subject {
                ImportSubject::Id(s) => (0, Some(*s), "", e.purpose.as_str(), e.at_us),
                ImportSubject::External(x) => (1, None, x.as_str(), e.purpose.as_str(), e.at_us),
            }
        }
        order.sort_unstable_by(|a, b| key(a.1).cmp(&key(b.1)));
        // The versions of every purpose named (and declared), once.
        let mut policies: HashMap<&str, Arc<Policies>> = HashMap::new();
        for e in events {
            let p = e.purpose.as_str();
            if !policies.contains_key(p) {
                if let Some(rule) = rules.get(p) {
                    policies.insert(p, self.policies(tenant, &rule.id).await?);
                }
            }
        }
        let ctx = ImportCtx {
            tenant,
            rules,
            policies,
            actor: actor.audit_name(),
            latest: now_us() + IMPORT_FUTURE_SLACK_US,
        };
        let mut inflight: Option<(ImportJob, futures_util::future::BoxFuture<'_, _>)> = None;
        for chunk in order.chunks(IMPORT_JOB_EVENTS) {
            let next = self.prepare_import_job(&ctx, chunk);
            let (done, next) = match inflight.take() {
                Some((job, commit)) => {
                    let (r, next) = futures_util::future::join(commit, next).await;
                    (Some((job, r)), next)
                }
                None => (None, next.await),
            };
            if let Some((job, r)) = done {
                report.accepted += self.finish_import_job(job, r)?;
            }
            let mut next = next?;
            report.rejected.append(&mut next.rejected);
            if next.rows.is_empty() {
                continue;
            }
            let ev = AuditEvent {
                tenant: Some(tenant.to_string()),
                actor: ctx.actor.clone(),
                action: "consent.import".into(),
                subject: None,
                purpose: None,
                outcome: format!("ok:{}", next.rows.len()),
            };
            let states = fold_sorted(&next.rows);
            let op = ConsentOp::Import {
                events: std::mem::take(&mut next.rows),
                states,
            };
            // Sent to the writer when first polled, i.e. together with the
            // preparation of the next job.
            let commit = Box::pin(self.inner.writer.submit(op, vec![ev]));
            inflight = Some((next, commit));
        }
        if let Some((job, commit)) = inflight {
            let r = commit.await;
            report.accepted += self.finish_import_job(job, r)?;
        }
        report.rejected.sort_by_key(|r| r.index);
        Ok(report)
    }

    /// After a job's commit: drops the cached state of its subjects.
    fn finish_import_job(
        &self,
        job: ImportJob,
        committed: Result<u64, StoreError>,
    ) -> Result<u64, StoreError> {
        let n = committed?;
        self.inner.consent.forget_subjects(&job.touched);
        Ok(n)
    }

    /// Validates one job's events (with their indices in the batch, in
    /// subject order) and builds their rows: resolves the subjects, unwraps
    /// the keys of those with proof, seals the proof.
    async fn prepare_import_job(
        &self,
        ctx: &ImportCtx<'_>,
        chunk: &[(usize, &ImportEvent)],
    ) -> Result<ImportJob, StoreError> {
        let tenant = ctx.tenant;
        let mut job = ImportJob {
            rows: Vec::with_capacity(chunk.len()),
            rejected: Vec::new(),
            touched: Vec::new(),
        };
        let reject = |job: &mut ImportJob, index: usize, field: &str, reason: String| {
            job.rejected.push(ImportRejection {
                index,
                field: field.to_owned(),
                reason,
            });
        };
        // Resolve subjects: ids and external ids, in bulk (sorted: the
        // chunk is in subject order).
        let mut ids: Vec<String> = Vec::new();
        let mut externals: Vec<&str> = Vec::new();
        for (_, e) in chunk {
            match &e.subject {
                ImportSubject::Id(s) => ids.push(s.to_string()),
                ImportSubject::External(x) => externals.push(x.as_str()),
            }
        }
        ids.dedup();
        externals.dedup();
        let mut by_id: HashMap<SubjectId, Option<i64>> = HashMap::with_capacity(ids.len());
        let mut by_ext: HashMap<String, (SubjectId, Option<i64>)> = HashMap::new();
        let engine = self.inner.engine;
        // Ids are looked up by primary key alone (a tenant condition would
        // let SQLite's planner scan the tenant index) and the tenant is
        // checked here; external ids use the (tenant, external_id) index.
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        for (by_pk, list) in [(true, &ids), (false, &externals)] {
            for part in list.chunks(IMPORT_LOOKUP_CHUNK) {
                let sql = if by_pk {
                    format!(
                        "SELECT id, external_id, erased_us, tenant FROM subjects WHERE id IN ({})",
                        in_marks(engine, part.len(), 1)
                    )
                } else {
                    format!(
                        "SELECT id, external_id, erased_us, tenant FROM subjects WHERE tenant = $1 AND external_id IN ({})",
                        in_marks(engine, part.len(), 2)
                    )
                };
                let mut q = sqlx::query(&sql);
                if !by_pk {
                    q = q.bind(tenant.as_str());
                }
                for v in part {
                    q = q.bind(*v);
                }
                for r in q.fetch_all(&self.inner.read).await? {
                    if r.try_get::<&str, _>(3)? != tenant.as_str() {
                        continue; // another tenant's subject: unknown here
                    }
                    let id = SubjectId::parse(r.try_get::<&str, _>(0)?)
                        .map_err(StoreError::Integrity)?;
                    let ext: Option<String> = r.try_get(1)?;
                    let erased: Option<i64> = r.try_get(2)?;
                    if let Some(x) = ext {
                        by_ext.insert(x, (id, erased));
                    }
                    by_id.insert(id, erased);
                }
            }
        }
        // The checks before sealing, in the order of a live event's; the
        // survivors in subject-id order.
        let mut live: Vec<(SubjectId, usize, &ImportEvent)> = Vec::with_capacity(chunk.len());
        for &(i, e) in chunk {
            if !ctx.policies.contains_key(e.purpose.as_str()) {
                reject(
                    &mut job,
                    i,
                    "purpose",
                    "unknown purpose: not declared in the data map".into(),
                );
                continue;
            }
            let (sid, erased) = match &e.subject {
                ImportSubject::Id(s) => match by_id.get(s) {
                    Some(er) => (*s, *er),
                    None => {
                        reject(
                            &mut job,
                            i,
                            "subject",
                            "unknown subject in this tenant".into(),
                        );
                        continue;
                    }
                },
                ImportSubject::External(x) => match by_ext.get(x) {
                    Some((id, er)) => (*id, *er),
                    None => {
                        reject(
                            &mut job,
                            i,
                            "external_id",
                            "no subject with this external id in this tenant".into(),
                        );
                        continue;
                    }
                },
            };
            if erased.is_some() {
                reject(&mut job, i, "subject", "subject was erased".into());
                continue;
            }
            if e.at_us > ctx.latest {
                reject(&mut job, i, "at", "lies in the future".into());
                continue;
            }
            live.push((sid, i, e));
        }
        live.sort_by(|a, b| {
            (a.0, a.2.purpose.as_str(), a.2.at_us).cmp(&(b.0, b.2.purpose.as_str(), b.2.at_us))
        });
        // Keys for proofs, in bulk.
        let mut need_keys: Vec<String> = live
            .iter()
            .filter(|(_, _, e)| e.input.ip.is_some() || e.input.user_agent.is_some())
            .map(|(s, _, _)| s.to_string())
            .collect();
        need_keys.dedup();
        let mut deks: HashMap<SubjectId, SubjectKey> = HashMap::new();
        if !need_keys.is_empty() {
            let mut tk = self.tenant_keys(tenant).await?;
            for (s, version, wrapped) in self
                .inner
                .keys
                .subject_keys_bulk(tenant, &need_keys)
                .await?
            {
                if tk.kek_version != version {
                    tk = self.reload_tenant_keys(tenant).await?;
                }
                let sid = SubjectId::parse(&s).map_err(StoreError::Integrity)?;
                let k = tk
                    .unwrap_subject_key(&sid, &wrapped)
                    .map_err(StoreError::Integrity)?;
                deks.insert(sid, k);
            }
        }
        for (sid, i, e) in live {
            let (Some(rule), Some(policies)) = (
                ctx.rules.get(e.purpose.as_str()),
                ctx.policies.get(e.purpose.as_str()),
            ) else {
                continue; // rejected above
            };
            match prepare(
                tenant,
                &sid,
                rule,
                policies,
                &e.input,
                e.at_us,
                &ctx.actor,
                deks.get(&sid),
            ) {
                Ok(row) => {
                    if job.touched.last() != Some(&sid) {
                        job.touched.push(sid);
                    }
                    job.rows.push(row);
                }
                Err(err) => {
                    let msg = err.to_string();
                    let prefix = format!("{}: ", err.field());
                    let msg = msg.strip_prefix(&prefix).map(str::to_owned).unwrap_or(msg);
                    reject(&mut job, i, err.field(), msg)
                }
            }
        }
        Ok(job)
    }

    /// Recomputes a tenant's materialised state from its events (in SQL),
    /// e.g. after restoring events from elsewhere. Returns rows written.
    pub async fn rebuild_consent_state(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let ev = AuditEvent {
            tenant: Some(tenant.to_string()),
            actor: "admin".into(),
            action: "consent.rebuild".into(),
            subject: None,
            purpose: None,
            outcome: "ok".into(),
        };
        let n = self
            .inner
            .writer
            .submit(
                ConsentOp::Rebuild {
                    tenant: tenant.to_string(),
                },
                vec![ev],
            )
            .await?;
        lock(&self.inner.consent.subjects).clear();
        Ok(n)
    }

    /// Compares the materialised state of a tenant with the fold (in Rust,
    /// `custos_core::consent::fold`) of its events.
    pub async fn verify_consent_state(&self, tenant: &TenantId) -> Result<StateCheck, StoreError> {
        let mut derived: HashMap<(String, String), Option<ConsentState>> = HashMap::new();
        let mut events = 0u64;
        {
            let mut rows = sqlx::query(
                "SELECT subject, purpose, id, action, version, at_us FROM consent_events WHERE tenant = $1",
            )
            .bind(tenant.as_str())
            .fetch(&self.inner.read);
            while let Some(r) = rows.try_next().await? {
                events += 1;
                let action: String = r.try_get(3)?;
                let fact = EventFact {
                    id: r.try_get(2)?,
                    action: Action::parse(&action).ok_or(StoreError::Integrity(
                        custos_core::CoreError::MalformedEnvelope,
                    ))?,
                    version: r.try_get(4)?,
                    at_us: r.try_get(5)?,
                };
                let slot = derived.entry((r.try_get(0)?, r.try_get(1)?)).or_default();
                let cur = slot.take();
                *slot = rules::apply(cur, &fact);
            }
        }
        let mut materialised = 0u64;
        let mut mismatches = 0u64;
        let mut seen = 0u64;
        {
            let mut rows = sqlx::query(
                "SELECT subject, purpose, state, version, at_us, event_id FROM consent_state WHERE tenant = $1",
            )
            .bind(tenant.as_str())
            .fetch(&self.inner.read);
            while let Some(r) = rows.try_next().await? {
                materialised += 1;
                let st =
                    state_from_row(r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?)?;
                match derived.get(&(r.try_get(0)?, r.try_get(1)?)) {
                    Some(d) => {
                        seen += 1;
                        if *d != st {
                            mismatches += 1;
                        }
                    }
                    None => mismatches += 1,
                }
            }
        }
        let derived_n = derived.len() as u64;
        mismatches += derived_n.saturating_sub(seen);
        Ok(StateCheck {
            events,
            derived: derived_n,
            materialised,
            mismatches,
        })
    }
}
