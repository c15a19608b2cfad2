//! What erasure does to a person's data and how long data is kept: the
//! erasure strategies (delete, shred, anonymise, retain under a legal
//! ground) and retention periods counted from a column or an event.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// What erasure does to a subject's data in a dataset or field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErasureStrategy {
    /// Delete the rows (or files).
    Delete,
    /// Keep the row, replace the value.
    Anonymize(Anonymize),
    /// Keep the data for a legal ground until the retention ends.
    Retain(RetainSpec),
    /// Destroy the subject's key (vault only): every copy becomes unreadable.
    Shred,
}

impl ErasureStrategy {
    /// Short human description, for records.
    pub fn describe(&self) -> String {
        match self {
            Self::Delete => "delete".to_owned(),
            Self::Shred => "crypto-shred".to_owned(),
            Self::Anonymize(Anonymize::SetNull) => "anonymize (set null)".to_owned(),
            Self::Anonymize(Anonymize::KeyedHash) => "anonymize (keyed hash)".to_owned(),
            Self::Anonymize(Anonymize::Placeholder(p)) => format!("anonymize (placeholder {p:?})"),
            Self::Retain(r) => format!("retain ({}) for {}", r.ground, r.retention),
        }
    }
}

/// How a value is anonymised in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Anonymize {
    /// Set to NULL.
    SetNull,
    /// Replace by a fixed text such as "Removed user".
    Placeholder(String),
    /// Replace by a keyed hash, so that aggregates and joins survive.
    KeyedHash,
}

/// Data kept despite an erasure request (Art. 17(3)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetainSpec {
    /// The legal ground (e.g. "§147 AO: fiscal records").
    pub ground: String,
    /// Until when.
    #[serde(flatten)]
    pub retention: Retention,
}

/// How long data is kept, counted from a column or an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// The period, e.g. `30d`, `3y`.
    pub period: Duration,
    /// What the period counts from.
    #[serde(flatten)]
    pub from: RetentionStart,
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.from {
            RetentionStart::FromColumn(c) => write!(f, "{} from {c}", self.period),
            RetentionStart::FromEvent(e) => write!(f, "{} after {e}", self.period),
        }
    }
}

/// The start of a retention period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RetentionStart {
    /// A timestamp column of the dataset.
    FromColumn(String),
    /// A named event (e.g. `account_closed`, `contract_end`).
    FromEvent(String),
}
