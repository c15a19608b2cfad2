//! Who else receives personal data: processors, joint controllers and
//! recipients, with their country, the safeguard of a transfer outside the
//! EEA (Chapter V), the state of their DPA, and how they are told to
//! erase or export a person's data.

use serde::{Deserialize, Serialize};

use super::{DataCategory, ProcessorId, PurposeId};

/// The role of a party that receives personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProcessorRole {
    /// Processes on the controller's behalf (Art. 28); needs a DPA.
    Processor,
    /// Decides purposes and means together with the controller (Art. 26).
    JointController,
    /// Any other recipient (Art. 4(9)), e.g. an authority.
    Recipient,
}

impl ProcessorRole {
    /// The key used in the map file.
    pub fn key(self) -> &'static str {
        match self {
            Self::Processor => "processor",
            Self::JointController => "joint_controller",
            Self::Recipient => "recipient",
        }
    }
}

/// Safeguard for a transfer to a third country (Chapter V GDPR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TransferMechanism {
    /// Adequacy decision (Art. 45).
    Adequacy,
    /// Standard contractual clauses (Art. 46(2)(c)).
    Scc,
    /// Binding corporate rules (Art. 47).
    Bcr,
}

impl TransferMechanism {
    /// The key used in the map file.
    pub fn key(self) -> &'static str {
        match self {
            Self::Adequacy => "adequacy",
            Self::Scc => "scc",
            Self::Bcr => "bcr",
        }
    }

    /// Human wording with the article, for records.
    pub fn label(self) -> &'static str {
        match self {
            Self::Adequacy => "Adequacy decision (Art. 45)",
            Self::Scc => "Standard contractual clauses (Art. 46(2)(c))",
            Self::Bcr => "Binding corporate rules (Art. 47)",
        }
    }
}

/// A processor, joint controller or recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Processor {
    /// Stable id, referenced by systems.
    pub id: ProcessorId,
    /// Legal or trading name.
    pub name: String,
    /// Its role towards the controller.
    pub role: ProcessorRole,
    /// ISO 3166-1 alpha-2 code of where the data goes (e.g. `DE`, `US`).
    pub country: String,
    /// Safeguard when `country` is outside the EEA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferMechanism>,
    /// The data processing agreement (Art. 28(3)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpa: Option<Dpa>,
    /// How erasure and access notices reach it.
    pub notify: Notify,
    /// Purposes for which it receives data.
    #[serde(default)]
    pub purposes: Vec<PurposeId>,
    /// Data categories it receives beyond those of the systems it operates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<DataCategory>,
    /// The tenants whose requests it is told of; empty: bound to none (see
    /// [`Processor::binding`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
}

/// State of a data processing agreement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dpa {
    /// Whether it is signed.
    pub status: DpaStatus,
    /// Date of signature (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

/// Whether a DPA exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DpaStatus {
    /// Signed by both parties.
    Signed,
    /// Under negotiation.
    Pending,
    /// None exists.
    Missing,
    /// Not needed (joint controllers, recipients).
    NotRequired,
}

impl DpaStatus {
    /// The key used in the map file.
    pub fn key(self) -> &'static str {
        match self {
            Self::Signed => "signed",
            Self::Pending => "pending",
            Self::Missing => "missing",
            Self::NotRequired => "not_required",
        }
    }
}

/// How a processor is told to erase or export a subject's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Notify {
    /// Signed notices are POSTed to this URL.
    Url(String),
    /// Notices are emailed to this address.
    Email(String),
    /// Someone does it by hand; custos opens a manual task.
    Manual,
}
