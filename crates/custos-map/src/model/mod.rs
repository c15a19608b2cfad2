//! The data map model: what personal data lives where, why, and how it goes.
//!
//! These types are the contract between the map file, the validator, the
//! Art. 30 renderers and every later planner (requests, retention, consent).
//! Their serde form (JSON) has the same shape as the YAML file described in
//! `docs/map.md`, so a map served at `GET /v1/map` reads like the file that
//! declared it. A `DataMap` value may be syntactically valid yet semantically
//! wrong; only [`crate::validate`] says whether it is fit to act on.

//!
//! Layout: ids, the map itself and the organisation here; `purpose`,
//! `processor`, `system` (systems and datasets), `tenancy` (which tenant
//! reaches which system), `field` (fields and references) and `erasure`
//! (erasure and retention) hold the rest, all
//! re-exported here.

mod erasure;
mod field;
mod processor;
mod purpose;
mod system;
mod tenancy;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use erasure::{Anonymize, ErasureStrategy, RetainSpec, Retention, RetentionStart};
pub use field::{DatasetRef, Field, FieldRef, IdentityKind, RefParseError};
pub use processor::{
    notice_url_refusal, Dpa, DpaStatus, Notify, Processor, ProcessorRole, TransferMechanism,
};
pub use purpose::{ConsentSpec, LegalBasis, Purpose, SpecialCategoryBasis};
pub use system::{Dataset, Location, SharedRows, SubjectLink, System, SystemKind};
pub use tenancy::{plain_tenant_value, Binding, TenantScope};

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
    /// The controller's own technical and organisational measures (Art.
    /// 32) that cover all of its processing: the record states them for
    /// every activity (Art. 30(1)(g)); those of one system go in its
    /// `security`. Invariant after parsing: no entry is blank.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_measures: Vec<String>,
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
