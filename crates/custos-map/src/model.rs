//! The data map model: what personal data lives where, why, and how it goes.
//!
//! These types are the contract between the map file, the validator, the
//! Art. 30 renderers and every later planner (requests, retention, consent).
//! Their serde form (JSON) has the same shape as the YAML file described in
//! `docs/map.md`, so a map served at `GET /v1/map` reads like the file that
//! declared it. A `DataMap` value may be syntactically valid yet semantically
//! wrong; only [`crate::validate`] says whether it is fit to act on.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::duration::Duration;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as written in the map.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

id_type!(
    /// Id of a purpose, unique in the map; fields and processors name it.
    PurposeId
);
id_type!(
    /// Id of a processor or recipient, unique in the map.
    ProcessorId
);
id_type!(
    /// Id of a system (a store), unique in the map.
    SystemId
);
id_type!(
    /// Id of a dataset, unique within its system.
    DatasetId
);
id_type!(
    /// A key of the fideslang data-category taxonomy, e.g. `user.contact.email`.
    /// Personal data is every category under `user`.
    DataCategory
);

impl DataCategory {
    /// Whether this category describes personal data (the `user` branch).
    pub fn is_personal(&self) -> bool {
        self.0 == "user" || self.0.starts_with("user.")
    }

    /// Whether this category is a special category of Art. 9(1) GDPR
    /// (health, genetic, biometric, racial or ethnic origin, political
    /// opinions, religious beliefs, sex life or sexual orientation).
    pub fn is_special(&self) -> bool {
        const SPECIAL: &[&str] = &[
            "user.biometric",
            "user.health_and_medical",
            "user.demographic.race_ethnicity",
            "user.demographic.political_opinion",
            "user.demographic.religious_belief",
            "user.demographic.sexual_orientation",
            "user.authorization.biometric",
        ];
        SPECIAL.iter().any(|s| {
            self.0 == *s || (self.0.starts_with(s) && self.0.as_bytes().get(s.len()) == Some(&b'.'))
        })
    }
}

/// The whole data map of one controller.
///
/// Invariant after [`crate::validate`] returned no error: ids are unique,
/// every reference resolves, every dataset holding personal data reaches its
/// subject and has a retention rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataMap {
    /// Version of the map schema; only `1` exists.
    #[serde(default = "default_version")]
    pub version: u32,
    /// Date the map was last reviewed (`YYYY-MM-DD`), printed on the record
    /// of processing; taken from the file, never from the clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// Who is responsible: the controller and its contacts.
    pub organisation: Organisation,
    /// Why personal data is processed.
    #[serde(default)]
    pub purposes: Vec<Purpose>,
    /// Who else receives personal data.
    #[serde(default)]
    pub processors: Vec<Processor>,
    /// Where personal data is stored.
    #[serde(default)]
    pub systems: Vec<System>,
    /// Controllers on whose behalf the organisation acts as a processor
    /// (source of the Art. 30(2) record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_behalf_of: Vec<ClientController>,
}

fn default_version() -> u32 {
    1
}

impl DataMap {
    /// The purpose with this id.
    pub fn purpose(&self, id: &PurposeId) -> Option<&Purpose> {
        self.purposes.iter().find(|p| &p.id == id)
    }

    /// The processor with this id.
    pub fn processor(&self, id: &ProcessorId) -> Option<&Processor> {
        self.processors.iter().find(|p| &p.id == id)
    }

    /// The system with this id.
    pub fn system(&self, id: &SystemId) -> Option<&System> {
        self.systems.iter().find(|s| &s.id == id)
    }
}

/// The controller (Art. 4(7)) and the people a regulator or data subject
/// contacts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organisation {
    /// Legal name of the controller.
    pub controller: String,
    /// Postal address, printed on the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Contact for privacy matters (an email address or URL).
    pub contact: String,
    /// The data protection officer (Art. 37), where one is designated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpo: Option<Contact>,
    /// The representative in the Union (Art. 27) of a controller outside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eu_representative: Option<Contact>,
}

/// A named person or body and how to reach them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// Name of the person or body.
    pub name: String,
    /// Email address, phone or URL.
    pub contact: String,
}

/// A controller for which the organisation processes data as a processor
/// (Art. 30(2)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientController {
    /// Name of the controller served.
    pub name: String,
    /// How to reach it.
    pub contact: String,
    /// The purposes carried out on its behalf.
    #[serde(default)]
    pub purposes: Vec<PurposeId>,
}

/// A purpose of processing (Art. 5(1)(b)) with its lawful basis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Purpose {
    /// Stable id, referenced by fields, datasets and processors.
    pub id: PurposeId,
    /// Short title shown to people.
    pub title: String,
    /// What is done and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Lawful basis of Art. 6(1).
    pub legal_basis: LegalBasis,
    /// Note of the balancing test; required for `legitimate_interest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balancing_test: Option<String>,
    /// The law or contract clause relied upon (e.g. "§147 AO").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis_reference: Option<String>,
    /// Exception of Art. 9(2) when special categories are processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub special_category: Option<SpecialCategoryBasis>,
    /// Categories of data subjects (fideslang data subjects, e.g. `customer`).
    #[serde(default)]
    pub subjects: Vec<String>,
    /// The fideslang data use this purpose corresponds to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_use: Option<String>,
    /// Whether the service cannot be used without this purpose. A consent
    /// purpose may never be mandatory (Art. 7(4)).
    #[serde(default)]
    pub mandatory: bool,
    /// How consent is asked and withdrawn; required for `consent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentSpec>,
    /// Sale, sharing or targeted advertising: a Global Privacy Control
    /// signal opts the subject out of this purpose.
    #[serde(default)]
    pub sale_or_sharing: bool,
}

/// The six lawful bases of Art. 6(1) GDPR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LegalBasis {
    /// Art. 6(1)(a).
    Consent,
    /// Art. 6(1)(b).
    Contract,
    /// Art. 6(1)(c).
    LegalObligation,
    /// Art. 6(1)(d).
    VitalInterest,
    /// Art. 6(1)(e).
    PublicTask,
    /// Art. 6(1)(f); needs a balancing test.
    LegitimateInterest,
}

impl LegalBasis {
    /// Every basis, in the order of the regulation.
    pub const ALL: [LegalBasis; 6] = [
        LegalBasis::Consent,
        LegalBasis::Contract,
        LegalBasis::LegalObligation,
        LegalBasis::VitalInterest,
        LegalBasis::PublicTask,
        LegalBasis::LegitimateInterest,
    ];

    /// The key used in the map file.
    pub fn key(self) -> &'static str {
        match self {
            LegalBasis::Consent => "consent",
            LegalBasis::Contract => "contract",
            LegalBasis::LegalObligation => "legal_obligation",
            LegalBasis::VitalInterest => "vital_interest",
            LegalBasis::PublicTask => "public_task",
            LegalBasis::LegitimateInterest => "legitimate_interest",
        }
    }

    /// Human wording with the article, for records.
    pub fn label(self) -> &'static str {
        match self {
            LegalBasis::Consent => "Consent (Art. 6(1)(a))",
            LegalBasis::Contract => "Contract (Art. 6(1)(b))",
            LegalBasis::LegalObligation => "Legal obligation (Art. 6(1)(c))",
            LegalBasis::VitalInterest => "Vital interests (Art. 6(1)(d))",
            LegalBasis::PublicTask => "Public task (Art. 6(1)(e))",
            LegalBasis::LegitimateInterest => "Legitimate interests (Art. 6(1)(f))",
        }
    }
}

/// The exceptions of Art. 9(2) GDPR that allow special categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SpecialCategoryBasis {
    /// Art. 9(2)(a).
    ExplicitConsent,
    /// Art. 9(2)(b).
    Employment,
    /// Art. 9(2)(c).
    VitalInterest,
    /// Art. 9(2)(d).
    NotForProfit,
    /// Art. 9(2)(e).
    MadePublic,
    /// Art. 9(2)(f).
    LegalClaims,
    /// Art. 9(2)(g).
    SubstantialPublicInterest,
    /// Art. 9(2)(h).
    HealthCare,
    /// Art. 9(2)(i).
    PublicHealth,
    /// Art. 9(2)(j).
    Research,
}

impl SpecialCategoryBasis {
    /// Every exception, in the order of the regulation.
    pub const ALL: [SpecialCategoryBasis; 10] = [
        SpecialCategoryBasis::ExplicitConsent,
        SpecialCategoryBasis::Employment,
        SpecialCategoryBasis::VitalInterest,
        SpecialCategoryBasis::NotForProfit,
        SpecialCategoryBasis::MadePublic,
        SpecialCategoryBasis::LegalClaims,
        SpecialCategoryBasis::SubstantialPublicInterest,
        SpecialCategoryBasis::HealthCare,
        SpecialCategoryBasis::PublicHealth,
        SpecialCategoryBasis::Research,
    ];

    /// The key used in the map file.
    pub fn key(self) -> &'static str {
        match self {
            Self::ExplicitConsent => "explicit_consent",
            Self::Employment => "employment",
            Self::VitalInterest => "vital_interest",
            Self::NotForProfit => "not_for_profit",
            Self::MadePublic => "made_public",
            Self::LegalClaims => "legal_claims",
            Self::SubstantialPublicInterest => "substantial_public_interest",
            Self::HealthCare => "health_care",
            Self::PublicHealth => "public_health",
            Self::Research => "research",
        }
    }

    /// Human wording with the article, for records.
    pub fn label(self) -> &'static str {
        match self {
            Self::ExplicitConsent => "Explicit consent (Art. 9(2)(a))",
            Self::Employment => "Employment and social security law (Art. 9(2)(b))",
            Self::VitalInterest => "Vital interests (Art. 9(2)(c))",
            Self::NotForProfit => "Not-for-profit body (Art. 9(2)(d))",
            Self::MadePublic => "Made public by the subject (Art. 9(2)(e))",
            Self::LegalClaims => "Legal claims (Art. 9(2)(f))",
            Self::SubstantialPublicInterest => "Substantial public interest (Art. 9(2)(g))",
            Self::HealthCare => "Health or social care (Art. 9(2)(h))",
            Self::PublicHealth => "Public health (Art. 9(2)(i))",
            Self::Research => "Archiving, research or statistics (Art. 9(2)(j))",
        }
    }
}

/// How consent for a purpose is collected and withdrawn (Art. 7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentSpec {
    /// Where and how consent is asked (e.g. "newsletter checkbox at signup").
    pub collected_via: String,
    /// Where it is withdrawn; withdrawing must be as easy as giving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdraw_via: Option<String>,
}

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

/// Kind of store; decides which connector handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SystemKind {
    /// custos's own encrypted vault.
    Vault,
    /// A PostgreSQL database of the application.
    Postgres,
    /// A MySQL or MariaDB database.
    Mysql,
    /// An SQLite database file.
    Sqlite,
    /// A file tree (local or object storage).
    Files,
    /// A Redis instance or other key-value cache.
    Redis,
    /// A processor's HTTP API.
    Http,
    /// Paper, laptops, anything software cannot reach.
    Manual,
}

impl SystemKind {
    /// Every kind.
    pub const ALL: [SystemKind; 8] = [
        SystemKind::Vault,
        SystemKind::Postgres,
        SystemKind::Mysql,
        SystemKind::Sqlite,
        SystemKind::Files,
        SystemKind::Redis,
        SystemKind::Http,
        SystemKind::Manual,
    ];

    /// The key used in the map file.
    pub fn key(self) -> &'static str {
        match self {
            Self::Vault => "vault",
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
            Self::Sqlite => "sqlite",
            Self::Files => "files",
            Self::Redis => "redis",
            Self::Http => "http",
            Self::Manual => "manual",
        }
    }

    /// Whether the kind is an SQL database.
    pub fn is_sql(self) -> bool {
        matches!(self, Self::Postgres | Self::Mysql | Self::Sqlite)
    }
}

/// A store of the application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct System {
    /// Stable id, unique in the map.
    pub id: SystemId,
    /// What kind of store it is.
    pub kind: SystemKind,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Connection settings: setting name → name of the environment variable
    /// holding the value. Invariant: never a secret or URL itself.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connection: BTreeMap<String, String>,
    /// The processor operating it (the API owner for `http`, the host otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor: Option<ProcessorId>,
    /// Security measures beyond those custos enforces, for the record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security: Vec<String>,
    /// The tables, collections or path patterns inside it.
    #[serde(default)]
    pub datasets: Vec<Dataset>,
}

/// Where a dataset sits inside its system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Location {
    /// An SQL table.
    Table(String),
    /// A vault collection.
    Collection(String),
    /// A file path pattern, e.g. `uploads/{user_id}/*`.
    Path(String),
    /// A key pattern, e.g. `session:{subject_id}`.
    Key(String),
    /// An HTTP endpoint of a processor's API.
    Endpoint(String),
    /// Where it physically is (for `manual` systems).
    Place(String),
}

impl Location {
    /// The key used in the map file.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Table(_) => "table",
            Self::Collection(_) => "collection",
            Self::Path(_) => "path",
            Self::Key(_) => "key",
            Self::Endpoint(_) => "endpoint",
            Self::Place(_) => "place",
        }
    }

    /// The table name, pattern or place.
    pub fn value(&self) -> &str {
        match self {
            Self::Table(s)
            | Self::Collection(s)
            | Self::Path(s)
            | Self::Key(s)
            | Self::Endpoint(s)
            | Self::Place(s) => s,
        }
    }
}

/// A table, collection or path pattern inside a system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Stable id, unique within the system.
    pub id: DatasetId,
    /// Where it is.
    #[serde(flatten)]
    pub location: Location,
    /// What it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How a row reaches its data subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectLink>,
    /// Purposes of every field that names none itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<PurposeId>,
    /// What erasure does to a subject's rows; fields may override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure: Option<ErasureStrategy>,
    /// How long rows are kept; fields may override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// The dataset this one is derived from (thumbnails from uploads);
    /// erased together with its source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived_from: Option<DatasetRef>,
    /// Its columns or attributes.
    #[serde(default)]
    pub fields: Vec<Field>,
}

impl Dataset {
    /// Whether any field holds personal data.
    pub fn holds_personal_data(&self) -> bool {
        self.fields
            .iter()
            .any(|f| f.category.iter().any(DataCategory::is_personal))
    }

    /// The field with this name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The purposes of a field: its own, else the dataset's.
    pub fn effective_purposes<'a>(&'a self, field: &'a Field) -> &'a [PurposeId] {
        if field.purposes.is_empty() {
            &self.purposes
        } else {
            &field.purposes
        }
    }

    /// The erasure of a field: its own, else the dataset's, else `delete`.
    pub fn effective_erasure(&self, field: &Field) -> ErasureStrategy {
        field
            .erasure
            .clone()
            .or_else(|| self.erasure.clone())
            .unwrap_or(ErasureStrategy::Delete)
    }

    /// The retention of a field: its own, else the dataset's, else the one
    /// implied by a `retain` erasure.
    pub fn effective_retention<'a>(&'a self, field: &'a Field) -> Option<&'a Retention> {
        field
            .retention
            .as_ref()
            .or(self.retention.as_ref())
            .or_else(|| match field.erasure.as_ref().or(self.erasure.as_ref()) {
                Some(ErasureStrategy::Retain(r)) => Some(&r.retention),
                _ => None,
            })
    }
}

/// How rows of a dataset lead to a data subject, so that a request finds
/// every row of a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SubjectLink {
    /// This field of the dataset identifies the subject.
    Identity(String),
    /// This field of the dataset references (`references:`) a row of another
    /// dataset that reaches the subject (`comments.author_id → users.id`).
    Via(String),
    /// Rows are named by a field of another dataset that reaches the subject
    /// (`addresses.id ← customers.address_id`).
    ReferencedBy(FieldRef),
}

/// A field of a dataset, written `dataset.field` (same system) or
/// `system.dataset.field`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldRef {
    /// The system, when not the referring one.
    pub system: Option<SystemId>,
    /// The dataset.
    pub dataset: DatasetId,
    /// The field.
    pub field: String,
}

impl fmt::Display for FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.system {
            write!(f, "{s}.")?;
        }
        write!(f, "{}.{}", self.dataset, self.field)
    }
}

/// Why a reference string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected `dataset.field` or `system.dataset.field`, found {0:?}")]
pub struct RefParseError(pub String);

fn valid_segment(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_whitespace)
}

impl FromStr for FieldRef {
    type Err = RefParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('.').collect();
        if !parts.iter().all(|p| valid_segment(p)) {
            return Err(RefParseError(s.to_owned()));
        }
        match parts.as_slice() {
            [d, f] => Ok(FieldRef {
                system: None,
                dataset: DatasetId::from(*d),
                field: (*f).to_owned(),
            }),
            [s, d, f] => Ok(FieldRef {
                system: Some(SystemId::from(*s)),
                dataset: DatasetId::from(*d),
                field: (*f).to_owned(),
            }),
            _ => Err(RefParseError(s.to_owned())),
        }
    }
}

/// A dataset, written `dataset` (same system) or `system.dataset`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatasetRef {
    /// The system, when not the referring one.
    pub system: Option<SystemId>,
    /// The dataset.
    pub dataset: DatasetId,
}

impl fmt::Display for DatasetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.system {
            write!(f, "{s}.")?;
        }
        write!(f, "{}", self.dataset)
    }
}

impl FromStr for DatasetRef {
    type Err = RefParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('.').collect();
        if !parts.iter().all(|p| valid_segment(p)) {
            return Err(RefParseError(s.to_owned()));
        }
        match parts.as_slice() {
            [d] => Ok(DatasetRef {
                system: None,
                dataset: DatasetId::from(*d),
            }),
            [s, d] => Ok(DatasetRef {
                system: Some(SystemId::from(*s)),
                dataset: DatasetId::from(*d),
            }),
            _ => Err(RefParseError(s.to_owned())),
        }
    }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_serde!(FieldRef);
string_serde!(DatasetRef);

/// A column or attribute holding (or not) personal data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// Column or attribute name, unique in the dataset.
    pub name: String,
    /// Data categories (fideslang); one is usual. Written as a string or a list.
    #[serde(with = "one_or_many")]
    pub category: Vec<DataCategory>,
    /// Purposes it serves; empty means the dataset's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<PurposeId>,
    /// Whether and how it identifies the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityKind>,
    /// The field it points to (a foreign key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<FieldRef>,
    /// Whether it is the dataset's primary key.
    #[serde(default, skip_serializing_if = "is_false")]
    pub primary_key: bool,
    /// Erasure overriding the dataset's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure: Option<ErasureStrategy>,
    /// Retention overriding the dataset's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

mod one_or_many {
    use super::DataCategory;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[DataCategory], s: S) -> Result<S::Ok, S::Error> {
        match v {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(DataCategory),
        Many(Vec<DataCategory>),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<DataCategory>, D::Error> {
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(c) => vec![c],
            OneOrMany::Many(v) => v,
        })
    }
}

/// How a field identifies its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IdentityKind {
    /// The custos subject id.
    SubjectId,
    /// The application's own user id.
    UserId,
    /// An email address (looked up through a blind index).
    Email,
    /// A phone number (looked up through a blind index).
    Phone,
    /// A pseudonymous token issued to a recipient.
    Token,
}

impl IdentityKind {
    /// Every kind.
    pub const ALL: [IdentityKind; 5] = [
        IdentityKind::SubjectId,
        IdentityKind::UserId,
        IdentityKind::Email,
        IdentityKind::Phone,
        IdentityKind::Token,
    ];

    /// The key used in the map file.
    pub fn key(self) -> &'static str {
        match self {
            Self::SubjectId => "subject_id",
            Self::UserId => "user_id",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Token => "token",
        }
    }
}

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
