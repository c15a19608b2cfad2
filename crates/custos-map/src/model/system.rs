//! Where personal data is stored: systems (stores of the application, by
//! kind), their datasets (tables, collections, path patterns, ...), where
//! a dataset sits in its system, and how its rows lead to their data
//! subject.
//!
//! Invariant: connection settings name environment variables, never hold
//! a secret or URL themselves (the parser and the validator refuse that).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    DataCategory, DatasetId, DatasetRef, ErasureStrategy, Field, FieldRef, ProcessorId, PurposeId,
    Retention, SystemId,
};

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
    /// The tenants (ids of the store's tenants) whose requests may reach
    /// this system; empty: bound to none (see [`System::binding`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// A system shared by tenants: each tenant's value (tenant id → value)
    /// in the `tenant_column` of an SQL system's datasets, or standing for
    /// `{tenant}` in a files system's paths and a Redis system's keys. A
    /// tenant without a value reaches nothing here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tenant_values: BTreeMap<String, String>,
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
    /// How a row reaches its data subject: every path the map declares (an
    /// address may be the customer's home and the shipping address of their
    /// order). A request follows all of them; empty when identity fields
    /// alone find the rows. Written as one mapping when there is one link,
    /// a list otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "one_or_many")]
    pub subject: Vec<SubjectLink>,
    /// What an erasure does to a row of this dataset that is also another
    /// person's (reached through `referenced_by` and referenced by rows that
    /// are not the person's): kept untouched by default.
    #[serde(default, skip_serializing_if = "SharedRows::is_default")]
    pub shared_rows: SharedRows,
    /// Purposes of every field that names none itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<PurposeId>,
    /// What erasure does to a subject's rows; fields may override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure: Option<ErasureStrategy>,
    /// How long rows are kept; fields may override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// The column holding each row's tenant, in a system with
    /// `tenant_values`: every query of a request is filtered by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_column: Option<String>,
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

    /// Why a rectification (Art. 16) may not set `field` here, if it may
    /// not: the tenant column (a new value would move the person's rows
    /// into another tenant's part of a shared database) or a reference to
    /// other rows (a key between tables, not data about the person).
    pub fn rectification_refusal(&self, field: &str) -> Option<String> {
        if self.tenant_column.as_deref() == Some(field) {
            return Some(format!(
                "{field} is the tenant column of dataset {}: it is never rectified",
                self.id
            ));
        }
        self.field(field)
            .filter(|f| f.references.is_some())
            .map(|_| {
                format!(
                    "{field} of dataset {} references other rows: a key is never rectified",
                    self.id
                )
            })
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
    /// implied by a `retain` erasure — the field's, or the dataset's (a
    /// field anonymised in a retained row is kept, anonymised, as long as
    /// the row).
    pub fn effective_retention<'a>(&'a self, field: &'a Field) -> Option<&'a Retention> {
        let retain = |e: Option<&'a ErasureStrategy>| match e {
            Some(ErasureStrategy::Retain(r)) => Some(&r.retention),
            _ => None,
        };
        field
            .retention
            .as_ref()
            .or(self.retention.as_ref())
            .or_else(|| retain(field.erasure.as_ref()))
            .or_else(|| retain(self.erasure.as_ref()))
    }
}

/// What an erasure does to a row shared with another person: a row reached
/// through a `referenced_by` link that rows which are not the person's also
/// reference (the person's shipping address that is another customer's
/// home). Invariant: never deleted nor anonymised by this person's erasure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SharedRows {
    /// Kept as it is; counted as retained, shared with another person.
    #[default]
    Keep,
}

impl SharedRows {
    /// Whether this is the default (`keep`), which the map need not write.
    pub fn is_default(&self) -> bool {
        *self == SharedRows::Keep
    }

    /// The key used in the map file.
    pub fn key(self) -> &'static str {
        match self {
            Self::Keep => "keep",
        }
    }
}

/// One subject link as a mapping, several as a list (the file's two forms).
mod one_or_many {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::SubjectLink;

    pub(super) fn serialize<S: Serializer>(v: &[SubjectLink], s: S) -> Result<S::Ok, S::Error> {
        match v {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        One(SubjectLink),
        Many(Vec<SubjectLink>),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<SubjectLink>, D::Error> {
        Ok(match Form::deserialize(d)? {
            Form::One(l) => vec![l],
            Form::Many(v) => v,
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
