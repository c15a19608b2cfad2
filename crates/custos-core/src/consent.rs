//! Consent as a ledger (issue 4): the rules, without storage.
//!
//! * A **purpose** (from the data map) is governed by the ledger only when
//!   its legal basis is `consent`, or `legitimate_interest` (then a subject
//!   may *object*). Every other basis answers "allowed by that basis".
//! * **Policy versions** per purpose: the text shown (its SHA-256 goes into
//!   every event), an effective time, and whether the change was material.
//!   A material version makes every grant of an older version stale: the
//!   answer is "no" until the subject agrees again, or — when that version
//!   says so — "yes" until its grace period ends.
//! * **Events** are append-only facts: grant, withdraw, object. The current
//!   state of a (subject, purpose) is the *last* event by [`EventKey`]:
//!   event time first, then withdrawal/objection before grant at the same
//!   instant (so an opt-out always wins a tie), then version, then event id.
//!   Because this is a maximum, folding events in any insertion order gives
//!   the same state; storage keeps it materialised with a conditional upsert
//!   and must always equal [`fold`] of the events (property-tested here and
//!   against both databases).
//!
//! No I/O here: the store passes events, states and policy versions in, and
//! the time of the question.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::envelope::Context;
use crate::ids::{Purpose, SubjectId, TenantId};

/// Legal basis of a purpose (Art. 6(1)), as far as the ledger cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Art. 6(1)(a): governed by grants and withdrawals.
    Consent,
    /// Art. 6(1)(b): allowed by contract; the ledger is not asked.
    Contract,
    /// Art. 6(1)(c).
    LegalObligation,
    /// Art. 6(1)(d).
    VitalInterest,
    /// Art. 6(1)(e).
    PublicTask,
    /// Art. 6(1)(f): allowed unless the subject objected (Art. 21).
    LegitimateInterest,
}

impl Basis {
    /// The stable key (`consent`, `legitimate_interest`, …), as in the data map.
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Consent => "consent",
            Basis::Contract => "contract",
            Basis::LegalObligation => "legal_obligation",
            Basis::VitalInterest => "vital_interest",
            Basis::PublicTask => "public_task",
            Basis::LegitimateInterest => "legitimate_interest",
        }
    }

    /// Parses the stable key.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Basis::Consent,
            Basis::Contract,
            Basis::LegalObligation,
            Basis::VitalInterest,
            Basis::PublicTask,
            Basis::LegitimateInterest,
        ]
        .into_iter()
        .find(|b| b.as_str() == s)
    }

    /// Whether events of the ledger decide this basis.
    pub fn governed(self) -> bool {
        matches!(self, Basis::Consent | Basis::LegitimateInterest)
    }
}

/// The facts of one purpose the ledger needs, handed in by the caller (who
/// reads them from the data map), so that storage never depends on the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurposeRule {
    /// Purpose id.
    pub id: Purpose,
    /// Its legal basis.
    pub basis: Basis,
    /// Sale, sharing or targeted advertising: a GPC signal opts out of it.
    pub sale_or_sharing: bool,
    /// Title shown to people (receipts).
    pub title: String,
    /// How to withdraw, as the map says (receipts).
    pub withdraw_via: Option<String>,
}

/// What an event does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Consent given (an affirmative act; consent purposes only).
    Grant,
    /// Consent withdrawn (consent purposes only).
    Withdraw,
    /// Objection to processing (legitimate-interest purposes only).
    Object,
}

impl Action {
    /// The verb used in requests (`grant`, `withdraw`, `object`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Grant => "grant",
            Action::Withdraw => "withdraw",
            Action::Object => "object",
        }
    }

    /// Parses the verb.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "grant" => Some(Action::Grant),
            "withdraw" => Some(Action::Withdraw),
            "object" => Some(Action::Object),
            _ => None,
        }
    }

    /// The state an event of this action leaves.
    pub fn state(self) -> StateKind {
        match self {
            Action::Grant => StateKind::Granted,
            Action::Withdraw => StateKind::Withdrawn,
            Action::Object => StateKind::Objected,
        }
    }

    /// Tie-break at the same instant: opt-outs outrank grants.
    pub fn rank(self) -> i64 {
        match self {
            Action::Grant => 0,
            Action::Withdraw => 1,
            Action::Object => 2,
        }
    }

    /// Which actions a purpose of `basis` accepts; `Err` says why not.
    pub fn check_allowed_for(self, rule: &PurposeRule) -> Result<(), ConsentError> {
        match (rule.basis, self) {
            (Basis::Consent, Action::Grant | Action::Withdraw) => Ok(()),
            (Basis::LegitimateInterest, Action::Object) => Ok(()),
            (Basis::Consent, Action::Object) => Err(ConsentError::WrongAction {
                purpose: rule.id.to_string(),
                basis: rule.basis,
                hint: "consent purposes take grant or withdraw; withdraw is the opt-out",
            }),
            (Basis::LegitimateInterest, _) => Err(ConsentError::WrongAction {
                purpose: rule.id.to_string(),
                basis: rule.basis,
                hint: "legitimate-interest purposes are not consented to; record an objection (action object)",
            }),
            (basis, _) => Err(ConsentError::NotGoverned {
                purpose: rule.id.to_string(),
                basis,
            }),
        }
    }
}

/// State of a (subject, purpose) after its last event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateKind {
    /// Last event was a grant.
    Granted,
    /// Last event was a withdrawal.
    Withdrawn,
    /// Last event was an objection.
    Objected,
}

impl StateKind {
    /// Stored and printed name.
    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Granted => "granted",
            StateKind::Withdrawn => "withdrawn",
            StateKind::Objected => "objected",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "granted" => Some(StateKind::Granted),
            "withdrawn" => Some(StateKind::Withdrawn),
            "objected" => Some(StateKind::Objected),
            _ => None,
        }
    }

    /// The action that leads to this state.
    pub fn action(self) -> Action {
        match self {
            StateKind::Granted => Action::Grant,
            StateKind::Withdrawn => Action::Withdraw,
            StateKind::Objected => Action::Object,
        }
    }
}

/// The total order of events of one (subject, purpose): the greatest key
/// is the current state. Field order is the comparison order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventKey {
    /// Event time, µs since the epoch (the original time for imports).
    pub at_us: i64,
    /// [`Action::rank`]: opt-outs win ties.
    pub rank: i64,
    /// Policy version, 0 when none.
    pub version: i64,
    /// The event's id: unique, so the order is total.
    pub event_id: String,
}

/// One event as the fold sees it (proof and provenance live in storage).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFact {
    /// Event id (`cev_` + 32 hex digits).
    pub id: String,
    /// What happened.
    pub action: Action,
    /// Policy version the event refers to, if the purpose had one.
    pub version: Option<i64>,
    /// Event time, µs.
    pub at_us: i64,
}

impl EventFact {
    /// The event's place in the order.
    pub fn key(&self) -> EventKey {
        EventKey {
            at_us: self.at_us,
            rank: self.action.rank(),
            version: self.version.unwrap_or(0),
            event_id: self.id.clone(),
        }
    }
}

/// Current state of one (subject, purpose): the greatest event so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentState {
    /// Granted, withdrawn or objected.
    pub state: StateKind,
    /// Version of the deciding event (the version agreed, for a grant).
    pub version: Option<i64>,
    /// Time of the deciding event, µs.
    pub since_us: i64,
    /// Id of the deciding event.
    pub event_id: String,
}

impl ConsentState {
    /// The state one event leaves on its own.
    pub fn from_event(e: &EventFact) -> Self {
        Self {
            state: e.action.state(),
            version: e.version,
            since_us: e.at_us,
            event_id: e.id.clone(),
        }
    }

    /// The deciding event's key.
    pub fn key(&self) -> EventKey {
        EventKey {
            at_us: self.since_us,
            rank: self.state.action().rank(),
            version: self.version.unwrap_or(0),
            event_id: self.event_id.clone(),
        }
    }
}

/// One step of the fold: the state after `event`, whatever order events
/// arrive in. Storage implements the same rule as a conditional upsert.
pub fn apply(current: Option<ConsentState>, event: &EventFact) -> Option<ConsentState> {
    match current {
        Some(c) if c.key() >= event.key() => Some(c),
        _ => Some(ConsentState::from_event(event)),
    }
}

/// The state of a (subject, purpose) derived from all of its events.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a EventFact>) -> Option<ConsentState> {
    events.into_iter().fold(None, apply)
}

/// What a material version does to subjects who agreed to an older one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Revalidation {
    /// Their consent stops counting at once.
    #[default]
    Deny,
    /// Their consent still counts until this time (µs), then stops.
    GraceUntil(i64),
}

/// One policy version of a purpose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVersion {
    /// 1, 2, 3, … per purpose.
    pub version: i64,
    /// SHA-256 of the text shown.
    pub text_sha256: [u8; 32],
    /// Whether agreeing to an earlier version stops counting.
    pub material: bool,
    /// From when this version is the current one, µs.
    pub effective_us: i64,
    /// What happens to older grants (only meaningful when material).
    pub revalidation: Revalidation,
}

/// SHA-256 of a policy text, as stored in every event.
pub fn text_sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// The versions of one purpose, ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policies(Vec<PolicyVersion>);

impl Policies {
    /// Sorts by version.
    pub fn new(mut versions: Vec<PolicyVersion>) -> Self {
        versions.sort_by_key(|v| v.version);
        Self(versions)
    }

    /// All versions, ascending.
    pub fn all(&self) -> &[PolicyVersion] {
        &self.0
    }

    /// A version by number.
    pub fn get(&self, version: i64) -> Option<&PolicyVersion> {
        self.0
            .binary_search_by_key(&version, |v| v.version)
            .ok()
            .and_then(|i| self.0.get(i))
    }

    /// The version in force at `now`: the highest one already effective.
    pub fn current(&self, now_us: i64) -> Option<&PolicyVersion> {
        self.0.iter().rev().find(|v| v.effective_us <= now_us)
    }

    /// The lowest version a grant may have agreed to and need no
    /// revalidation at `now`: the highest material version in effect, or
    /// `None` when there is none (then every grant is fresh). Equivalent
    /// to `staleness(agreed, now).is_none()` ⟺ `agreed.unwrap_or(0) >= floor`
    /// (tested), so a store can filter fresh grants in SQL.
    pub fn revalidation_floor(&self, now_us: i64) -> Option<i64> {
        self.0
            .iter()
            .filter(|v| v.material && v.effective_us <= now_us)
            .map(|v| v.version)
            .max()
    }

    /// Whether a grant of `agreed` is stale at `now`: `None` when no
    /// effective material version came after it; otherwise the verdict of
    /// the strictest such version (any `Deny`, or the earliest grace end).
    pub fn staleness(&self, agreed: Option<i64>, now_us: i64) -> Option<Revalidation> {
        let agreed = agreed.unwrap_or(0);
        let mut verdict: Option<Revalidation> = None;
        for v in self
            .0
            .iter()
            .filter(|v| v.version > agreed && v.material && v.effective_us <= now_us)
        {
            verdict = Some(match (verdict, v.revalidation) {
                (Some(Revalidation::Deny), _) | (_, Revalidation::Deny) => Revalidation::Deny,
                (Some(Revalidation::GraceUntil(a)), Revalidation::GraceUntil(b)) => {
                    Revalidation::GraceUntil(a.min(b))
                }
                (None, g) => g,
            });
        }
        verdict
    }
}

/// Why the answer is what it is; stable codes for clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A non-governed basis allows it (`basis` says which).
    LegalBasis,
    /// The subject granted the current (or a non-materially changed) version.
    Granted,
    /// Granted an older version; a material change is in its grace period.
    GrantedInGracePeriod,
    /// Granted an older version; a material change asks again.
    NeedsRevalidation,
    /// No grant was ever recorded.
    NoConsent,
    /// The last event was a withdrawal.
    Withdrawn,
    /// Legitimate interest, no objection.
    NoObjection,
    /// The subject objected.
    Objected,
    /// Processing of the subject is restricted (Art. 18).
    Restricted,
}

impl Reason {
    /// Stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::LegalBasis => "legal_basis",
            Reason::Granted => "granted",
            Reason::GrantedInGracePeriod => "granted_in_grace_period",
            Reason::NeedsRevalidation => "needs_revalidation",
            Reason::NoConsent => "no_consent",
            Reason::Withdrawn => "withdrawn",
            Reason::NoObjection => "no_objection",
            Reason::Objected => "objected",
            Reason::Restricted => "restricted",
        }
    }
}

/// The answer to "may I do this purpose with this subject's data now?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The answer.
    pub allowed: bool,
    /// The purpose's legal basis.
    pub basis: Basis,
    /// Why.
    pub reason: Reason,
    /// Version of the deciding event (the version agreed, for a grant).
    pub version: Option<i64>,
    /// Version in force now.
    pub current_version: Option<i64>,
    /// A material version after the one agreed asks the subject again.
    pub needs_revalidation: bool,
}

/// Decides a check. `restricted`: processing of the subject is restricted
/// (Art. 18), which forbids every purpose but storage and legal claims —
/// neither is asked through this check.
pub fn decide(
    rule: &PurposeRule,
    state: Option<&ConsentState>,
    policies: &Policies,
    restricted: bool,
    now_us: i64,
) -> Decision {
    let current_version = policies.current(now_us).map(|v| v.version);
    let mut d = Decision {
        allowed: false,
        basis: rule.basis,
        reason: Reason::LegalBasis,
        version: state.and_then(|s| s.version),
        current_version,
        needs_revalidation: false,
    };
    let granted = state.filter(|s| s.state == StateKind::Granted);
    if let Some(g) = granted {
        d.needs_revalidation = policies.staleness(g.version, now_us).is_some();
    }
    if restricted {
        d.reason = Reason::Restricted;
        return d;
    }
    match rule.basis {
        Basis::Consent => match state.map(|s| s.state) {
            None => d.reason = Reason::NoConsent,
            Some(StateKind::Withdrawn) | Some(StateKind::Objected) => d.reason = Reason::Withdrawn,
            Some(StateKind::Granted) => {
                match policies.staleness(granted.and_then(|g| g.version), now_us) {
                    None => {
                        d.allowed = true;
                        d.reason = Reason::Granted;
                    }
                    Some(Revalidation::GraceUntil(t)) if now_us < t => {
                        d.allowed = true;
                        d.reason = Reason::GrantedInGracePeriod;
                    }
                    Some(_) => d.reason = Reason::NeedsRevalidation,
                }
            }
        },
        Basis::LegitimateInterest => {
            if state.is_some_and(|s| s.state == StateKind::Objected) {
                d.reason = Reason::Objected;
            } else {
                d.allowed = true;
                d.reason = Reason::NoObjection;
            }
        }
        _ => {
            d.allowed = true;
            d.reason = Reason::LegalBasis;
        }
    }
    d
}

/// A channel through which an event was collected (`signup-form`, `api`,
/// `import`, `email-link`): a slug, so it can never carry personal data.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Channel(String);

impl Channel {
    /// Validates: 1..=64 of `[a-z0-9_.-]`, starting with a letter or digit.
    pub fn parse(s: &str) -> Result<Self, ConsentError> {
        Purpose::parse(s).map_err(|_| ConsentError::Invalid {
            field: "channel",
            reason: "use 1 to 64 lowercase letters, digits, '_', '-' or '.' (e.g. signup-form)",
        })?;
        Ok(Self(s.to_owned()))
    }
    /// As stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for Channel {
    type Error = ConsentError;
    fn try_from(s: String) -> Result<Self, ConsentError> {
        Self::parse(&s)
    }
}
impl From<Channel> for String {
    fn from(c: Channel) -> String {
        c.0
    }
}
impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Channel({})", self.0)
    }
}

/// Validates a form or checkbox id: 1..=128 printable ASCII characters.
pub fn check_form_id(s: &str) -> Result<(), ConsentError> {
    if !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(ConsentError::Invalid {
            field: "form_id",
            reason: "must be 1 to 128 printable ASCII characters without spaces",
        })
    }
}

/// Validates a user agent for the proof: at most 1024 characters, no
/// control characters. The value itself is only ever stored encrypted.
pub fn check_user_agent(s: &str) -> Result<(), ConsentError> {
    if s.chars().count() <= 1024 && !s.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(ConsentError::Invalid {
            field: "user_agent",
            reason: "must be at most 1024 characters without control characters",
        })
    }
}

/// Parses an IP address for the proof into its canonical text.
pub fn canonical_ip(s: &str) -> Result<String, ConsentError> {
    s.trim()
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| ConsentError::Invalid {
            field: "ip",
            reason: "expected an IPv4 or IPv6 address",
        })
}

/// Authenticated context of an event's encrypted proof: bound to tenant,
/// subject and event, so a proof copied onto another event fails to open.
pub fn proof_context(tenant: &TenantId, subject: &SubjectId, event_id: &str) -> Context {
    Context::new("consent-proof")
        .with(tenant.as_str().as_bytes())
        .with(subject.as_bytes())
        .with(b"consent")
        .with(event_id.as_bytes())
}

/// A new event id: `cev_`, the recording time (16 hex digits of µs) and 64
/// random bits. Ids grow with time so that inserts append to the primary
/// key's index instead of splitting pages all over it (bulk imports); the
/// random part keeps ids unique across servers and unguessable.
pub fn new_event_id(rng: &mut impl rand_core::CryptoRngCore, recorded_us: i64) -> String {
    let mut b = [0u8; 8];
    rng.fill_bytes(&mut b);
    format!("cev_{:016x}{}", recorded_us.max(0), hex::encode(b))
}

/// Why a consent operation was refused. Messages name the field and never
/// echo submitted values.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConsentError {
    /// The purpose's basis is not decided by the ledger.
    #[error("purpose {purpose} has legal basis {}; consent is neither asked nor recorded for it", basis.as_str())]
    NotGoverned {
        /// Purpose id.
        purpose: String,
        /// Its basis.
        basis: Basis,
    },
    /// The action does not fit the purpose's basis.
    #[error("purpose {purpose} has legal basis {}: {hint}", basis.as_str())]
    WrongAction {
        /// Purpose id.
        purpose: String,
        /// Its basis.
        basis: Basis,
        /// What to do instead.
        hint: &'static str,
    },
    /// A grant that does not say it was an affirmative act.
    #[error("a grant must be an affirmative act: send \"affirmative\": true (pre-ticked boxes are not consent)")]
    NotAffirmative,
    /// The version named does not exist for the purpose.
    #[error("purpose {purpose} has no policy version {version}")]
    UnknownVersion {
        /// Purpose id.
        purpose: String,
        /// The version asked for.
        version: i64,
    },
    /// A grant needs a version, and the purpose has none yet.
    #[error("purpose {purpose} has no policy version yet; publish one with POST /v1/purposes/{purpose}/versions")]
    NoPolicyVersion {
        /// Purpose id.
        purpose: String,
    },
    /// A value failed validation.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// What is wrong, without the value.
        reason: &'static str,
    },
}

impl ConsentError {
    /// Stable problem code.
    pub fn code(&self) -> &'static str {
        match self {
            ConsentError::NotGoverned { .. } => "not_consent_based",
            ConsentError::WrongAction { .. } => "action_not_allowed",
            ConsentError::NotAffirmative => "not_affirmative",
            ConsentError::UnknownVersion { .. } => "unknown_version",
            ConsentError::NoPolicyVersion { .. } => "no_policy_version",
            ConsentError::Invalid { .. } => "invalid_field",
        }
    }

    /// The request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            ConsentError::NotGoverned { .. } => "purpose",
            ConsentError::WrongAction { .. } => "action",
            ConsentError::NotAffirmative => "affirmative",
            ConsentError::UnknownVersion { .. } | ConsentError::NoPolicyVersion { .. } => "version",
            ConsentError::Invalid { field, .. } => field,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(basis: Basis) -> PurposeRule {
        PurposeRule {
            id: Purpose::parse("newsletter").unwrap(),
            basis,
            sale_or_sharing: false,
            title: "Newsletter".into(),
            withdraw_via: None,
        }
    }

    fn ev(id: u32, action: Action, version: Option<i64>, at_us: i64) -> EventFact {
        EventFact {
            id: format!("cev_{id:032x}"),
            action,
            version,
            at_us,
        }
    }

    fn pv(version: i64, material: bool, effective_us: i64, r: Revalidation) -> PolicyVersion {
        PolicyVersion {
            version,
            text_sha256: text_sha256(&format!("v{version}")),
            material,
            effective_us,
            revalidation: r,
        }
    }

    #[test]
    fn withdrawal_after_grant_wins_and_ties_go_to_the_opt_out() {
        let p = Policies::new(vec![pv(1, false, 0, Revalidation::Deny)]);
        let g = ev(1, Action::Grant, Some(1), 10);
        let w = ev(2, Action::Withdraw, Some(1), 20);
        let s = fold([&g, &w]);
        let d = decide(&rule(Basis::Consent), s.as_ref(), &p, false, 30);
        assert!(!d.allowed);
        assert_eq!(d.reason, Reason::Withdrawn);
        // Same state whatever the order of arrival.
        assert_eq!(fold([&w, &g]), s);
        // Same instant: the withdrawal wins even with a smaller id.
        let g2 = ev(9, Action::Grant, Some(1), 20);
        assert_eq!(fold([&g2, &w]).unwrap().state, StateKind::Withdrawn);
        assert_eq!(fold([&w, &g2]).unwrap().state, StateKind::Withdrawn);
        // A later grant wins again.
        let g3 = ev(3, Action::Grant, Some(1), 25);
        let d = decide(
            &rule(Basis::Consent),
            fold([&g, &w, &g3]).as_ref(),
            &p,
            false,
            30,
        );
        assert!(d.allowed);
        assert_eq!(d.reason, Reason::Granted);
    }

    #[test]
    fn material_versions_ask_again() {
        let g = ev(1, Action::Grant, Some(1), 10);
        let s = fold([&g]);
        let r = rule(Basis::Consent);
        // Non-material v2: still allowed.
        let p = Policies::new(vec![
            pv(1, false, 0, Revalidation::Deny),
            pv(2, false, 20, Revalidation::Deny),
        ]);
        let d = decide(&r, s.as_ref(), &p, false, 30);
        assert!(d.allowed && !d.needs_revalidation);
        assert_eq!((d.version, d.current_version), (Some(1), Some(2)));
        // Material v3 with deny: no, until the subject agrees again.
        let mut all = p.all().to_vec();
        all.push(pv(3, true, 40, Revalidation::Deny));
        let p = Policies::new(all);
        assert!(
            decide(&r, s.as_ref(), &p, false, 30).allowed,
            "not yet effective"
        );
        let d = decide(&r, s.as_ref(), &p, false, 50);
        assert!(!d.allowed && d.needs_revalidation);
        assert_eq!(d.reason, Reason::NeedsRevalidation);
        let again = ev(2, Action::Grant, Some(3), 60);
        let d = decide(&r, fold([&g, &again]).as_ref(), &p, false, 70);
        assert!(d.allowed && !d.needs_revalidation);
        // Grace: yes until the end, then no.
        let p = Policies::new(vec![
            pv(1, false, 0, Revalidation::Deny),
            pv(2, true, 20, Revalidation::GraceUntil(100)),
        ]);
        let d = decide(&r, s.as_ref(), &p, false, 50);
        assert!(d.allowed && d.needs_revalidation);
        assert_eq!(d.reason, Reason::GrantedInGracePeriod);
        assert!(!decide(&r, s.as_ref(), &p, false, 100).allowed);
        // Two material versions: the strictest decides.
        let p = Policies::new(vec![
            pv(1, false, 0, Revalidation::Deny),
            pv(2, true, 20, Revalidation::GraceUntil(100)),
            pv(3, true, 30, Revalidation::GraceUntil(60)),
        ]);
        assert!(decide(&r, s.as_ref(), &p, false, 50).allowed);
        assert!(!decide(&r, s.as_ref(), &p, false, 70).allowed);
    }

    #[test]
    fn bases_and_actions() {
        let p = Policies::default();
        let c = rule(Basis::Contract);
        let d = decide(&c, None, &p, false, 1);
        assert!(d.allowed);
        assert_eq!((d.basis, d.reason), (Basis::Contract, Reason::LegalBasis));
        assert!(!decide(&c, None, &p, true, 1).allowed, "restricted");
        let li = rule(Basis::LegitimateInterest);
        assert!(decide(&li, None, &p, false, 1).allowed);
        let o = ev(1, Action::Object, None, 5);
        let d = decide(&li, fold([&o]).as_ref(), &p, false, 6);
        assert_eq!((d.allowed, d.reason), (false, Reason::Objected));
        assert!(!decide(&rule(Basis::Consent), None, &p, false, 1).allowed);

        assert!(Action::Grant
            .check_allowed_for(&rule(Basis::Consent))
            .is_ok());
        assert_eq!(
            Action::Grant.check_allowed_for(&c).unwrap_err().code(),
            "not_consent_based"
        );
        assert_eq!(
            Action::Grant.check_allowed_for(&li).unwrap_err().code(),
            "action_not_allowed"
        );
        assert!(Action::Object.check_allowed_for(&li).is_ok());
    }

    #[test]
    fn proof_inputs_are_validated() {
        assert_eq!(canonical_ip(" 192.0.2.1 ").unwrap(), "192.0.2.1");
        assert_eq!(canonical_ip("2001:DB8::1").unwrap(), "2001:db8::1");
        assert!(canonical_ip("jane@example.com").is_err());
        assert!(check_user_agent("Mozilla/5.0").is_ok());
        assert!(check_user_agent("a\nb").is_err());
        assert!(check_form_id("newsletter-box").is_ok());
        assert!(check_form_id("has space").is_err());
        assert!(Channel::parse("signup-form").is_ok());
        assert!(Channel::parse("Signup Form").is_err());
    }

    fn arb_event() -> impl Strategy<Value = EventFact> {
        (
            0u32..1000,
            prop_oneof![
                Just(Action::Grant),
                Just(Action::Withdraw),
                Just(Action::Object)
            ],
            proptest::option::of(1i64..4),
            0i64..20,
        )
            .prop_map(|(id, a, v, t)| ev(id, a, v, t))
    }

    proptest! {
        /// The materialised state (events applied one by one, in whatever
        /// order they arrive) equals the fold of the events in time order.
        #[test]
        fn incremental_state_equals_fold_in_any_order(
            events in proptest::collection::vec(arb_event(), 0..40),
            seed in any::<u64>(),
        ) {
            let mut sorted = events.clone();
            sorted.sort_by_key(EventFact::key);
            let reference = sorted.last().map(ConsentState::from_event);
            // Some arrival order derived from the seed.
            let mut arrival = events.clone();
            let n = arrival.len();
            let mut x = seed;
            for i in (1..n).rev() {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                arrival.swap(i, (x >> 33) as usize % (i + 1));
            }
            let mut materialised = None;
            for e in &arrival {
                materialised = apply(materialised, e);
            }
            prop_assert_eq!(&materialised, &reference);
            prop_assert_eq!(fold(&events), reference);
        }

        /// A withdrawal later than every grant always wins.
        #[test]
        fn withdrawal_after_grants_wins(
            grants in proptest::collection::vec((0u32..100, 0i64..50), 1..10),
            extra in 0i64..10,
        ) {
            let mut evs: Vec<EventFact> = grants.iter().map(|(id, t)| ev(*id, Action::Grant, Some(1), *t)).collect();
            let last = evs.iter().map(|e| e.at_us).max().unwrap_or(0);
            evs.push(ev(1000, Action::Withdraw, Some(1), last + extra));
            let p = Policies::new(vec![pv(1, false, 0, Revalidation::Deny)]);
            let d = decide(&rule(Basis::Consent), fold(&evs).as_ref(), &p, false, 1_000);
            prop_assert!(!d.allowed);
            prop_assert_eq!(d.reason, Reason::Withdrawn);
        }

        /// The floor agrees with `staleness` for every agreed version.
        #[test]
        fn revalidation_floor_matches_staleness(
            versions in proptest::collection::vec((any::<bool>(), 0i64..20, any::<bool>()), 0..8),
            agreed in proptest::option::of(0i64..10),
            now in 0i64..25,
        ) {
            let vs: Vec<PolicyVersion> = versions
                .iter()
                .enumerate()
                .map(|(i, (material, eff, deny))| {
                    let r = if *deny { Revalidation::Deny } else { Revalidation::GraceUntil(now + 5) };
                    pv(i as i64 + 1, *material, *eff, r)
                })
                .collect();
            let p = Policies::new(vs);
            let fresh = p.staleness(agreed, now).is_none();
            let by_floor = p.revalidation_floor(now).is_none_or(|f| agreed.unwrap_or(0) >= f);
            prop_assert_eq!(fresh, by_floor);
        }

        /// A grant is never valid across a material deny version it predates.
        #[test]
        fn material_deny_always_denies_older_grants(agreed in 1i64..5, material in 1i64..8, now in 0i64..100) {
            let mut vs: Vec<PolicyVersion> = (1..8).map(|v| pv(v, false, 0, Revalidation::Deny)).collect();
            if let Some(m) = vs.iter_mut().find(|v| v.version == material) { m.material = true; }
            let p = Policies::new(vs);
            let g = ev(1, Action::Grant, Some(agreed), 0);
            let d = decide(&rule(Basis::Consent), fold([&g]).as_ref(), &p, false, now);
            prop_assert_eq!(d.allowed, material <= agreed);
        }
    }
}
