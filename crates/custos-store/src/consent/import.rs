//! Bulk import of consent events (sorted by subject, committed in jobs of
//! [`IMPORT_JOB_EVENTS`]) and the rebuild and verification of the
//! materialised state against the fold of the events.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::TryStreamExt;
use sqlx::Row;

use custos_core::audit::AuditEvent;
use custos_core::consent::{
    self as rules, canonical_ip, check_form_id, check_user_agent, proof_context, Action,
    ConsentError, ConsentState, EventFact, Policies, PurposeRule,
};
use custos_core::envelope;
use custos_core::ids::{SubjectId, TenantId};
use custos_core::keys::SubjectKey;
use custos_core::scope::Scope;
use rand_core::OsRng;

use super::change::{ConsentOp, EventRow, StateRow};
use super::views::{
    ConsentInput, ImportEvent, ImportRejection, ImportReport, ImportSubject, StateCheck,
};
use super::{authorize, in_marks, state_from_row};
use crate::vault::{Actor, Consent};
use crate::{now_us, StoreError, Vault};

/// Imported events may not lie further in the future than this (clock skew).
pub(super) const IMPORT_FUTURE_SLACK_US: i64 = 5 * 60 * 1_000_000;

/// Most events per writer job of a bulk import (see
/// [`Consent::import`]): large enough that a commit's fsyncs are
/// shared by many events, small enough that the writer is not held from
/// live traffic for long (tens of milliseconds).
pub const IMPORT_JOB_EVENTS: usize = 5000;

/// Events per [`Consent::import`] call that `custos consent import`
/// makes (and the consent benchmark mirrors). The call commits in jobs of
/// [`IMPORT_JOB_EVENTS`] taken in subject order, so a larger call means each
/// commit touches a narrower range of the subject-keyed indexes (fewer
/// pages written per event); 100,000 events are some tens of MB.
pub const IMPORT_CALL_EVENTS: usize = 100_000;

/// Ids per subject look-up of an import (one `IN (…)` list).
pub(super) const IMPORT_LOOKUP_CHUNK: usize = 1000;

/// What an import batch shares across its jobs.
pub(super) struct ImportCtx<'a> {
    pub(super) tenant: &'a TenantId,
    pub(super) rules: &'a HashMap<String, PurposeRule>,
    /// Versions of every declared purpose named in the batch.
    pub(super) policies: HashMap<&'a str, Arc<Policies>>,
    pub(super) actor: String,
    /// Events later than this are refused (clock skew allowance).
    pub(super) latest: i64,
}

/// One writer job of an import, prepared.
pub(super) struct ImportJob {
    /// In (subject, purpose, time) order.
    pub(super) rows: Vec<EventRow>,
    pub(super) rejected: Vec<ImportRejection>,
    /// Subjects with rows, to drop from the check cache after the commit.
    pub(super) touched: Vec<SubjectId>,
}

/// The state rows of events sorted by (subject, purpose): one per pair,
/// the fold of its events, in the same order (so that the upsert walks the
/// state's primary key forward).
pub(super) fn fold_sorted(rows: &[EventRow]) -> Vec<StateRow> {
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
pub(super) fn prepare(
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

impl Vault {
    /// After a job's commit: drops the cached state of its subjects.
    pub(super) fn finish_import_job(
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
    pub(super) async fn prepare_import_job(
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
}

impl Consent<'_> {
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
    pub async fn import(
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
                    policies.insert(p, self.v.consent().policies(tenant, &rule.id).await?);
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
            let next = self.v.prepare_import_job(&ctx, chunk);
            let (done, next) = match inflight.take() {
                Some((job, commit)) => {
                    let (r, next) = futures_util::future::join(commit, next).await;
                    (Some((job, r)), next)
                }
                None => (None, next.await),
            };
            if let Some((job, r)) = done {
                report.accepted += self.v.finish_import_job(job, r)?;
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
            let commit = Box::pin(self.v.inner.writer.submit(op, vec![ev]));
            inflight = Some((next, commit));
        }
        if let Some((job, commit)) = inflight {
            let r = commit.await;
            report.accepted += self.v.finish_import_job(job, r)?;
        }
        report.rejected.sort_by_key(|r| r.index);
        Ok(report)
    }

    /// Recomputes a tenant's materialised state from its events (in SQL),
    /// e.g. after restoring events from elsewhere. Returns rows written.
    pub async fn rebuild_state(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let ev = AuditEvent {
            tenant: Some(tenant.to_string()),
            actor: "admin".into(),
            action: "consent.rebuild".into(),
            subject: None,
            purpose: None,
            outcome: "ok".into(),
        };
        let n = self
            .v
            .inner
            .writer
            .submit(
                ConsentOp::Rebuild {
                    tenant: tenant.clone(),
                },
                vec![ev],
            )
            .await?;
        self.v.inner.consent.clear_subjects();
        Ok(n)
    }

    /// Compares the materialised state of a tenant with the fold (in Rust,
    /// `custos_core::consent::fold`) of its events.
    pub async fn verify_state(&self, tenant: &TenantId) -> Result<StateCheck, StoreError> {
        let mut derived: HashMap<(String, String), Option<ConsentState>> = HashMap::new();
        let mut events = 0u64;
        {
            let mut rows = sqlx::query(
                "SELECT subject, purpose, id, action, version, at_us FROM consent_events WHERE tenant = $1",
            )
            .bind(tenant.as_str())
            .fetch(&self.v.inner.read);
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
            .fetch(&self.v.inner.read);
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
