//! The check — the ledger's hot path, answered from the cache — and
//! suppression lists streamed from one cursor.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::Row;
use tokio::sync::mpsc;

use custos_core::consent::{decide, Basis, ConsentState, Decision, Policies, PurposeRule};
use custos_core::ids::{Audience, SubjectId, TenantId};
use custos_core::keys::token_with_key;
use custos_core::scope::Scope;

use super::cache::SubjectStatus;
use super::views::{CheckAnswer, CheckTarget, SuppressedRow};
use super::{authorize, state_from_row};
use crate::vault::{event, Actor, Consent};
use crate::{now_us, rfc3339, StoreError, Vault};

/// Rows per batch sent to a suppression-list stream.
pub(super) const SUPPRESSION_BATCH: usize = 2048;

pub(super) fn suppression_reason(d: &Decision, erased: bool) -> &'static str {
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
pub(super) fn surely_allowed(
    rule: &PurposeRule,
    policies: &Policies,
    now: i64,
) -> (String, Option<i64>) {
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

impl Vault {
    pub(super) async fn subject_states(
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

    /// Reads a check's inputs (the subject's status and its state for
    /// `purpose`) and caches them.
    pub(super) async fn read_check_inputs(
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

    pub(super) async fn token_subject(
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
}

impl Consent<'_> {
    /// Sets how long check inputs may be served from this process's cache
    /// (zero: every check reads the database). See the module docs.
    pub fn set_check_ttl(&self, ttl: Duration) {
        self.v
            .inner
            .consent
            .ttl_us
            .store(ttl.as_micros() as u64, Ordering::Relaxed);
        self.v.inner.consent.clear();
    }

    /// The hot path: may `rule` be carried out for this subject now? Reads
    /// one row (subject status joined with the state), or the cache.
    /// Erased subjects answer `SubjectErased` (tokens: `TokenGone`). Any
    /// key of the tenant may ask; not audited (it reveals no personal data
    /// and runs per email or page view).
    pub async fn check(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        target: &CheckTarget,
        rule: &PurposeRule,
    ) -> Result<CheckAnswer, StoreError> {
        authorize(actor, tenant, &[])?;
        self.v.follow_changes().await;
        let subject = match target {
            CheckTarget::Subject(s) => *s,
            CheckTarget::Token { token, audience } => {
                self.v
                    .token_subject(tenant, token, audience.as_ref())
                    .await?
            }
        };
        let (status, state) = match self.v.inner.consent.cached(&subject, rule.id.as_str()) {
            Some(hit) if hit.status.tenant == *tenant => {
                if hit.refresh {
                    let (vault, tenant, purpose) =
                        (self.v.clone(), tenant.clone(), rule.id.as_str().to_owned());
                    tokio::spawn(async move {
                        if let Err(e) = vault.read_check_inputs(&tenant, subject, &purpose).await {
                            tracing::warn!(error = %e, "consent check cache refresh failed");
                        }
                    });
                }
                (hit.status, hit.state)
            }
            _ => {
                self.v
                    .read_check_inputs(tenant, subject, rule.id.as_str())
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
        let policies = self.v.consent().policies(tenant, &rule.id).await?;
        let d = decide(rule, state.as_ref(), &policies, status.restricted, now_us());
        Ok(CheckAnswer::new(rule, &d))
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
        let keys = self.v.tenant_keys(tenant).await?;
        let token_key = keys.token_key(audience);
        let policies = self.v.consent().policies(tenant, &rule.id).await?;
        let ev = event(
            tenant,
            actor,
            "consent.suppression",
            None,
            Some(rule.id.as_str()),
            "ok",
        );
        self.v.inner.writer.audit(vec![ev]).await?;
        let (tx, rx) = mpsc::channel(4);
        let pool = self.v.inner.read.clone();
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
}
