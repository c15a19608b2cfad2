//! What the ledger's callers send and get back; no value here is personal
//! data in clear unless the caller revealed it for a purpose.

use serde::Serialize;

use custos_core::consent::{Action, Channel, Decision, PurposeRule};
use custos_core::ids::{Audience, Purpose, SubjectId};

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
    pub(super) fn new(rule: &PurposeRule, d: &Decision) -> Self {
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
