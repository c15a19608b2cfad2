//! Policy versions, recording consent events with sealed proof, and
//! reading a subject's states, history and receipt.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use sqlx::Row;

use custos_core::audit::AuditEvent;
use custos_core::consent::{
    self as rules, decide, proof_context, text_sha256, Action, Basis, ConsentError, Policies,
    PurposeRule, Revalidation, StateKind,
};
use custos_core::envelope;
use custos_core::ids::{Purpose, SubjectId, TenantId};
use custos_core::scope::Scope;

use super::change::{ConsentOp, EventRow};
use super::import::prepare;
use super::views::{
    ConsentInput, ConsentView, HistoryEntry, PolicyInfo, ProofView, Receipt, ReceiptEntry,
    RecordedEvent,
};
use super::{authorize, can_reveal, policy_from_row, state_from_row, MAX_POLICY_TEXT, POLICY_COLS};
use crate::vault::{event, lock, Actor, Consent};
use crate::{now_us, rfc3339, StoreError};

pub(super) fn audit_action(a: Action) -> &'static str {
    match a {
        Action::Grant => "consent.grant",
        Action::Withdraw => "consent.withdraw",
        Action::Object => "consent.object",
    }
}

pub(super) fn recorded(e: &EventRow, gpc_opt_out: bool) -> RecordedEvent {
    RecordedEvent {
        id: e.id.clone(),
        purpose: e.purpose.clone(),
        action: e.action.as_str().to_owned(),
        version: e.version,
        at: rfc3339(e.at_us),
        gpc_opt_out,
    }
}

impl Consent<'_> {
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
                .v
                .inner
                .writer
                .submit(
                    ConsentOp::Publish {
                        tenant: tenant.clone(),
                        purpose: rule.id.clone(),
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
        self.v
            .inner
            .consent
            .forget_policies(tenant, rule.id.as_str());
        let row = sqlx::query(&format!(
            "SELECT {POLICY_COLS} FROM consent_policies WHERE tenant = $1 AND purpose = $2 AND version = $3"
        ))
        .bind(tenant.as_str())
        .bind(rule.id.as_str())
        .bind(version)
        .fetch_one(&self.v.inner.read)
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
        .fetch_all(&self.v.inner.read)
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
        .fetch_optional(&self.v.inner.read)
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
        let ttl = self.v.inner.consent.ttl();
        if !ttl.is_zero() {
            if let Some((at, p)) = lock(&self.v.inner.consent.policies).get(&key) {
                if at.elapsed() < ttl {
                    return Ok(p.clone());
                }
            }
        }
        let seen = self.v.inner.consent.followed_seq.load(Ordering::Acquire);
        let rows = sqlx::query(&format!(
            "SELECT {POLICY_COLS} FROM consent_policies WHERE tenant = $1 AND purpose = $2 ORDER BY version"
        ))
        .bind(tenant.as_str())
        .bind(purpose.as_str())
        .fetch_all(&self.v.inner.read)
        .await?;
        let versions = rows
            .iter()
            .map(|r| policy_from_row(r).map(|x| x.0))
            .collect::<Result<Vec<_>, _>>()?;
        let p = Arc::new(Policies::new(versions));
        if !ttl.is_zero() {
            let mut cache = lock(&self.v.inner.consent.policies);
            // As for subjects: not if a follow ran since the read.
            if self.v.inner.consent.followed_seq.load(Ordering::Acquire) == seen {
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
    pub async fn record(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        subject: &SubjectId,
        rule: &PurposeRule,
        input: &ConsentInput,
        gpc_purposes: &[PurposeRule],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        authorize(actor, tenant, &[Scope::Write])?;
        self.v.live_subject(tenant, subject).await?;
        let needs_key = input.ip.is_some() || input.user_agent.is_some();
        let dek = if needs_key {
            Some(self.v.subject_key(tenant, subject).await?)
        } else {
            None
        };
        let now = now_us();
        let actor_name = actor.audit_name();
        let policies = self.v.consent().policies(tenant, &rule.id).await?;
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
            let current = self.v.subject_states(tenant, subject).await?;
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
                let gp = self.v.consent().policies(tenant, &g.id).await?;
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
            .v
            .inner
            .writer
            .submit(
                ConsentOp::Record {
                    events: rows.into_iter().map(|(r, _)| r).collect(),
                },
                audit,
            )
            .await?;
        self.v.inner.consent.forget_subject(subject);
        if n == 0 {
            self.v.live_subject(tenant, subject).await?;
            return Err(StoreError::NotFound("subject"));
        }
        Ok(out)
    }

    /// Per purpose: state, version agreed, current version, revalidation,
    /// since — for every governed purpose in `rules` and every purpose with
    /// a recorded decision. Any key of the tenant with write, lookup or reveal.
    pub async fn states(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        subject: &SubjectId,
        rules: &[PurposeRule],
    ) -> Result<Vec<ConsentView>, StoreError> {
        authorize(actor, tenant, &[Scope::Write, Scope::Lookup, Scope::Reveal])?;
        let info = self.v.live_subject(tenant, subject).await?;
        let states = self.v.subject_states(tenant, subject).await?;
        let now = now_us();
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for rule in rules.iter().filter(|r| r.basis.governed()) {
            seen.insert(rule.id.to_string());
            let st = states.get(rule.id.as_str());
            let policies = self.v.consent().policies(tenant, &rule.id).await?;
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
    pub async fn history(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        subject: &SubjectId,
        reveal_purpose: Option<&Purpose>,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        authorize(actor, tenant, &[Scope::Write, Scope::Lookup, Scope::Reveal])?;
        self.v.live_subject(tenant, subject).await?;
        let clear = can_reveal(actor) && reveal_purpose.is_some();
        let rows = sqlx::query(
            "SELECT id, purpose, action, version, text_sha256, at_us, recorded_us, channel, affirmative, gpc, form_id, proof_ct, actor \
             FROM consent_events WHERE tenant = $1 AND subject = $2 \
             ORDER BY at_us, CASE action WHEN 'grant' THEN 0 WHEN 'withdraw' THEN 1 ELSE 2 END, COALESCE(version, 0), id",
        )
        .bind(tenant.as_str())
        .bind(subject.to_string())
        .fetch_all(&self.v.inner.read)
        .await?;
        let dek = if clear {
            Some(self.v.subject_key(tenant, subject).await?)
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
        self.v.inner.writer.audit(vec![ev]).await?;
        Ok(out)
    }

    /// A consent receipt: per purpose with a recorded decision, its state,
    /// the version and text agreed, when, through which channel, and how to
    /// withdraw. Audited (`consent.receipt`).
    pub async fn receipt(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        subject: &SubjectId,
        rules: &[PurposeRule],
    ) -> Result<Receipt, StoreError> {
        authorize(actor, tenant, &[Scope::Write, Scope::Lookup, Scope::Reveal])?;
        let info = self.v.live_subject(tenant, subject).await?;
        let rows = sqlx::query(
            "SELECT c.purpose, c.state, c.version, c.at_us, c.event_id, e.channel, p.text, p.text_sha256 \
             FROM consent_state c JOIN consent_events e ON e.id = c.event_id \
             LEFT JOIN consent_policies p ON p.tenant = c.tenant AND p.purpose = c.purpose AND p.version = c.version \
             WHERE c.tenant = $1 AND c.subject = $2 ORDER BY c.purpose",
        )
        .bind(tenant.as_str())
        .bind(subject.to_string())
        .fetch_all(&self.v.inner.read)
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
                    let policies = self.v.consent().policies(tenant, &rule.id).await?;
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
        self.v.inner.writer.audit(vec![ev]).await?;
        Ok(Receipt {
            subject: subject.to_string(),
            issued_at: rfc3339(now),
            entries,
        })
    }
}
