//! What the record may say custos does: [`Safeguards`], the facts about a
//! running deployment that become technical and organisational measures
//! (Art. 30(1)(g)) of every activity.
//!
//! A record of processing is handed to a supervisory authority, so each of
//! its sentences must be true of the deployment it describes. The map
//! cannot know that (it describes the controller's systems, not how custos
//! runs), so the caller — the server or the CLI — asserts the facts, and
//! each fact set adds exactly one sentence. Invariant: no sentence about
//! custos appears in a record unless its fact was set.

/// Facts about the running custos deployment that the record states as
/// security measures, one sentence each (see [`Safeguards::sentences`]).
///
/// Start from [`Safeguards::this_version`] (what this version of custos
/// does in every deployment) or [`Safeguards::none`], and set a field only
/// when the condition written on it holds: the record is evidence handed
/// to a supervisory authority. `#[non_exhaustive]`, so facts added later
/// start off for callers that do not know them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Safeguards {
    /// Reads, exports and changes of personal data through custos are
    /// appended to its hash-chained audit log in the same transaction.
    /// Set only where every such access goes through that audit log.
    pub audit_log: bool,
    /// custos' own log lines pass through the personal-data scrubber before
    /// they leave the process, and its error responses do not echo the
    /// values they were sent. Set only where custos' logging is the
    /// scrubbing one (the `custos` binary installs it).
    pub log_scrubbing: bool,
    /// Data-subject requests carry their due date (one month, Art. 12(3),
    /// with recorded extensions) from receipt to closing. Set only where
    /// requests are received and tracked by custos.
    pub request_deadlines: bool,
    /// API keys carry scopes and are stored only as hashes. Set only where
    /// custos' API is reached with its own keys.
    pub scoped_api_keys: bool,
    /// Personal data in `vault` systems is sealed under a key of its data
    /// subject (envelope encryption, AES-256-GCM), erasure destroys that
    /// key, and exact lookups go through blind indexes. Stated only for
    /// activities that store data in a `vault` system. Set only where those
    /// systems are custos' vault.
    pub vault_encryption: bool,
    /// Retention periods of the map are enforced by scheduled purges. Set
    /// only once a purge runs on a schedule for every system of the map;
    /// custos has no such purge yet.
    pub retention_purge: bool,
    /// Erasures are recorded apart from the data store (the key store and
    /// the erasure ledger file), and a store restored from a backup is
    /// refused until they are replayed into it, so a restore does not
    /// bring erased people back. Set where custos runs with its erasure
    /// ledger file, as the `custos` binary always does.
    pub erasure_ledger_replay: bool,
}

/// The sentences, in the order of the fields.
const AUDIT_LOG: &str =
    "Access to personal data through custos is recorded in a hash-chained, tamper-evident audit log";
const LOG_SCRUBBING: &str =
    "The logs of custos itself pass through a personal-data scrubber, and its error responses do not echo submitted values";
const REQUEST_DEADLINES: &str =
    "Data-subject requests are tracked against the one-month deadline (Art. 12(3))";
const SCOPED_API_KEYS: &str = "API keys of custos are scoped to least privilege and stored hashed";
const VAULT_ENCRYPTION: &str =
    "Per-subject envelope encryption (AES-256-GCM) with crypto-shredding on erasure and blind-index lookups";
const RETENTION_PURGE: &str = "Retention periods of this record are enforced by scheduled purges";
const ERASURE_LEDGER_REPLAY: &str =
    "Erasures are recorded apart from the data store and replayed into any store restored from a backup before it is served again, so backups do not bring erased people back";

impl Safeguards {
    /// No fact: the record states only the measures the map declares.
    pub const fn none() -> Self {
        Self {
            audit_log: false,
            log_scrubbing: false,
            request_deadlines: false,
            scoped_api_keys: false,
            vault_encryption: false,
            retention_purge: false,
            erasure_ledger_replay: false,
        }
    }

    /// What this version of custos does in every deployment that runs the
    /// `custos` binary: the audit log, log scrubbing, request deadlines,
    /// scoped API keys, vault encryption and the erasure ledger replayed
    /// into restored stores. Retention purges stay off: they do not exist
    /// yet, and this constructor must be changed in the change that brings
    /// them.
    pub const fn this_version() -> Self {
        Self {
            audit_log: true,
            log_scrubbing: true,
            request_deadlines: true,
            scoped_api_keys: true,
            vault_encryption: true,
            retention_purge: false,
            erasure_ledger_replay: true,
        }
    }

    /// The sentences of the facts set that hold for every activity (all but
    /// [`Safeguards::vault_encryption`], see [`Safeguards::vault_sentence`]).
    pub fn sentences(self) -> impl Iterator<Item = &'static str> {
        [
            (self.audit_log, AUDIT_LOG),
            (self.log_scrubbing, LOG_SCRUBBING),
            (self.request_deadlines, REQUEST_DEADLINES),
            (self.scoped_api_keys, SCOPED_API_KEYS),
            (self.retention_purge, RETENTION_PURGE),
            (self.erasure_ledger_replay, ERASURE_LEDGER_REPLAY),
        ]
        .into_iter()
        .filter_map(|(set, sentence)| set.then_some(sentence))
    }

    /// The sentence for activities storing data in a `vault` system, if
    /// [`Safeguards::vault_encryption`] is set.
    pub fn vault_sentence(self) -> Option<&'static str> {
        self.vault_encryption.then_some(VAULT_ENCRYPTION)
    }
}
