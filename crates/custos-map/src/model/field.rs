//! Fields and the references between them: a field's data categories,
//! purposes, identity and foreign key; `dataset.field` and
//! `system.dataset.field` references, serialised as the strings the map
//! file writes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{DataCategory, DatasetId, ErasureStrategy, PurposeId, Retention, SystemId};

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
///
/// Its serde form writes `identity` as the kind alone, or as
/// `{ kind, namespace }` when the field names a namespace, as the map file
/// does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "repr::FieldRepr", into = "repr::FieldRepr")]
pub struct Field {
    /// Column or attribute name, unique in the dataset.
    pub name: String,
    /// Data categories (fideslang); one is usual. Written as a string or a list.
    pub category: Vec<DataCategory>,
    /// Purposes it serves; empty means the dataset's.
    pub purposes: Vec<PurposeId>,
    /// Whether and how it identifies the subject.
    pub identity: Option<IdentityKind>,
    /// The key space of an opaque identity (`user_id`): a value found in
    /// one namespace selects rows only in that namespace. `None` is the
    /// application's own user id (what requests and the vault name). Emails,
    /// phones, subject ids and tokens are global and take none (checked).
    pub identity_namespace: Option<String>,
    /// The field it points to (a foreign key).
    pub references: Option<FieldRef>,
    /// Whether it is the dataset's primary key.
    pub primary_key: bool,
    /// Erasure overriding the dataset's.
    pub erasure: Option<ErasureStrategy>,
    /// Retention overriding the dataset's.
    pub retention: Option<Retention>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The serde form of [`Field`], shaped like the map file.
mod repr {
    use super::{
        DataCategory, ErasureStrategy, Field, FieldRef, IdentityKind, PurposeId, Retention,
    };
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    pub(super) enum IdentityRepr {
        Kind(IdentityKind),
        InNamespace {
            kind: IdentityKind,
            namespace: String,
        },
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct FieldRepr {
        name: String,
        #[serde(with = "super::one_or_many")]
        category: Vec<DataCategory>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        purposes: Vec<PurposeId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<IdentityRepr>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        references: Option<FieldRef>,
        #[serde(default, skip_serializing_if = "super::is_false")]
        primary_key: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        erasure: Option<ErasureStrategy>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retention: Option<Retention>,
    }

    impl From<FieldRepr> for Field {
        fn from(r: FieldRepr) -> Self {
            let (identity, identity_namespace) = match r.identity {
                None => (None, None),
                Some(IdentityRepr::Kind(k)) => (Some(k), None),
                Some(IdentityRepr::InNamespace { kind, namespace }) => {
                    (Some(kind), Some(namespace))
                }
            };
            Field {
                name: r.name,
                category: r.category,
                purposes: r.purposes,
                identity,
                identity_namespace,
                references: r.references,
                primary_key: r.primary_key,
                erasure: r.erasure,
                retention: r.retention,
            }
        }
    }

    impl From<Field> for FieldRepr {
        fn from(f: Field) -> Self {
            let identity = match (f.identity, f.identity_namespace) {
                (None, _) => None,
                (Some(k), None) => Some(IdentityRepr::Kind(k)),
                (Some(kind), Some(namespace)) => {
                    Some(IdentityRepr::InNamespace { kind, namespace })
                }
            };
            FieldRepr {
                name: f.name,
                category: f.category,
                purposes: f.purposes,
                identity,
                references: f.references,
                primary_key: f.primary_key,
                erasure: f.erasure,
                retention: f.retention,
            }
        }
    }
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
    /// Whether a value of this kind names one person wherever it is found
    /// (an email, a phone number, custos's own subject ids and tokens), so
    /// that finding it in one dataset may select rows of any other. An
    /// application's `user_id` is opaque: customer 4 and employee 4 are two
    /// people, unless the map links or namespaces them.
    pub fn is_global(self) -> bool {
        !matches!(self, Self::UserId)
    }

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
