//! Connectors: the places a data-subject request does its work. Each
//! system of the data map is reached through one [`Connector`], chosen by
//! the system's kind; the request executor (in `custos-server`) never
//! touches an application's store itself.
//!
//! Invariants every connector keeps:
//! * values of the person are only ever bound as parameters or matched as
//!   literals (SQL parameters, escaped glob/SCAN patterns, sanitised path
//!   segments) — never spliced into SQL, patterns or paths;
//! * identifiers (tables, columns, key prefixes) come from the data map and
//!   are quoted;
//! * [`Connector::erase`] is idempotent: running it again after a crash
//!   finds nothing more to do and reports zero changes;
//! * results carry counts, ids and legal grounds, never values — except
//!   [`Export`], which holds the person's data for their own archive and
//!   prints as `[redacted]`.

pub mod archive;
pub mod files;
pub mod notice;
pub mod redis_cache;
pub mod sql;
mod template;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use custos_core::secret::Personal;
use custos_map::{DatasetId, IdentityKind, SystemId};
use serde::{Deserialize, Serialize};

/// Everything known to identify one data subject: the identities the
/// request named, the vault's, and those discovered in the application's
/// stores (an email leads to a `users` row whose `id` is the `user_id`).
///
/// Values are kept per kind and namespace (`identity: { kind: user_id,
/// namespace: staff }` in the map): a value learnt in one namespace selects
/// rows only in that namespace, so customer 4 never finds employee 4. The
/// namespace `None` holds what requests and the vault name and what global
/// kinds (email, phone, ids of custos) always use.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Person {
    values: BTreeMap<(IdentityKind, Option<String>), Vec<Personal<String>>>,
}

impl fmt::Debug for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Kinds and counts only: the values are personal data.
        let mut m = f.debug_map();
        for ((k, ns), v) in &self.values {
            m.entry(&sealable_key(*k, ns.as_deref()), &v.len());
        }
        m.finish()
    }
}

/// The key of a kind in a namespace in the sealed form: `user_id`, or
/// `user_id@staff`.
fn sealable_key(kind: IdentityKind, namespace: Option<&str>) -> String {
    match namespace {
        None => kind.key().to_owned(),
        Some(ns) => format!("{}@{ns}", kind.key()),
    }
}

impl Person {
    /// A person known by nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value of an identity kind (in the default namespace); returns
    /// whether it was new. Empty values are ignored: they would match every
    /// blank column.
    pub fn add(&mut self, kind: IdentityKind, value: &str) -> bool {
        self.add_in(kind, None, value)
    }

    /// Adds a value of an identity kind in a namespace (ignored for global
    /// kinds, which have none); returns whether it was new.
    pub fn add_in(&mut self, kind: IdentityKind, namespace: Option<&str>, value: &str) -> bool {
        let value = value.trim();
        if value.is_empty() {
            return false;
        }
        let namespace = namespace.filter(|_| !kind.is_global()).map(str::to_owned);
        let list = self.values.entry((kind, namespace)).or_default();
        if list.iter().any(|v| v.expose() == value) {
            return false;
        }
        list.push(Personal::new(value.to_owned()));
        true
    }

    /// The values of a kind in the default namespace, in the order they
    /// were learnt.
    pub fn values(&self, kind: IdentityKind) -> &[Personal<String>] {
        self.values_in(kind, None)
    }

    /// The values of a kind in a namespace (global kinds: in every one).
    pub fn values_in(&self, kind: IdentityKind, namespace: Option<&str>) -> &[Personal<String>] {
        let namespace = namespace.filter(|_| !kind.is_global()).map(str::to_owned);
        self.values
            .get(&(kind, namespace))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Whether nothing identifies the person.
    pub fn is_empty(&self) -> bool {
        self.values.values().all(Vec::is_empty)
    }

    /// Adds everything `other` knows, namespace by namespace.
    pub fn merge(&mut self, other: &Person) -> bool {
        let mut grew = false;
        for ((k, ns), vs) in &other.values {
            for v in vs {
                grew |= self.add_in(*k, ns.as_deref(), v.expose());
            }
        }
        grew
    }

    /// Serialisable form, for sealing into the request (encrypted at rest
    /// by the caller). Only for that: it exposes the values. A namespaced
    /// kind is keyed `kind@namespace`.
    pub fn to_sealable(&self) -> BTreeMap<String, Vec<String>> {
        self.values
            .iter()
            .map(|((k, ns), vs)| {
                (
                    sealable_key(*k, ns.as_deref()),
                    vs.iter().map(|v| v.expose().clone()).collect(),
                )
            })
            .collect()
    }

    /// The inverse of [`Person::to_sealable`]; unknown kinds are skipped.
    pub fn from_sealable(m: &BTreeMap<String, Vec<String>>) -> Self {
        let mut p = Person::new();
        for (key, vs) in m {
            let (k, ns) = match key.split_once('@') {
                Some((k, ns)) => (k, Some(ns)),
                None => (key.as_str(), None),
            };
            if let Some(kind) = IdentityKind::ALL.iter().find(|i| i.key() == k) {
                for v in vs {
                    p.add_in(*kind, ns, v);
                }
            }
        }
        p
    }
}

/// What one dataset of a system holds of the person, or what was done to
/// it. Counts only: safe to store, audit and hand out as a receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetOutcome {
    /// The dataset of the map.
    pub dataset: DatasetId,
    /// Rows, files or keys of the person found.
    pub found: u64,
    /// Removed (rows deleted, files unlinked, keys deleted, key shredded).
    pub deleted: u64,
    /// Kept but with the personal values replaced.
    pub anonymized: u64,
    /// Changed in place by a rectification.
    pub rectified: u64,
    /// Kept as they are, for `retained_ground`.
    pub retained: u64,
    /// Of `retained`: rows kept untouched because they are also another
    /// person's (the ground says "shared with another person"). A person's
    /// erasure never deletes nor anonymises them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shared: u64,
    /// The legal ground of what was retained (from the map), or why a row
    /// had to stay as a placeholder (`"referenced by retained invoices"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained_ground: Option<String>,
    /// Until when what was retained is kept: the map's retention of each
    /// ground (`"10y from issued_at"`), joined by `; `.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained_until: Option<String>,
    /// The fields whose values were (or, in a dry run, would be) replaced
    /// in rows that stay: names from the map, never values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anonymized_fields: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl DatasetOutcome {
    /// An empty outcome of a dataset.
    pub fn new(dataset: DatasetId) -> Self {
        Self {
            dataset,
            found: 0,
            deleted: 0,
            anonymized: 0,
            rectified: 0,
            retained: 0,
            shared: 0,
            retained_ground: None,
            retained_until: None,
            anonymized_fields: Vec::new(),
        }
    }
}

/// One record of the person: a row, a Redis value, a processor's answer.
pub type Record = serde_json::Map<String, serde_json::Value>;

/// One file of the person, for the archive.
pub struct ExportFile {
    /// Path relative to the dataset's root (never absolute, never `..`).
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// What a dataset holds of the person, for an access or portability
/// archive. Personal data: it never prints its content.
pub struct Export {
    /// The dataset of the map.
    pub dataset: DatasetId,
    /// Records, each a JSON object of field → value.
    pub records: Vec<Record>,
    /// Files, for file datasets.
    pub files: Vec<ExportFile>,
}

impl fmt::Debug for Export {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Export")
            .field("dataset", &self.dataset)
            .field("records", &self.records.len())
            .field("files", &self.files.len())
            .finish()
    }
}

/// A typed change of one field for a rectification (Art. 16).
pub struct FieldChange {
    /// The field's name in the map (the same name in every dataset that has it).
    pub field: String,
    /// The new value; `None` (a JSON `null`) clears it. The text `"null"`
    /// is a value like any other and is written as that text.
    pub value: Option<Personal<String>>,
}

impl fmt::Debug for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldChange")
            .field("field", &self.field)
            .finish_non_exhaustive()
    }
}

/// Why a connector could not do its work. Messages name systems,
/// datasets, tables, columns and constraints — never values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// The map lacks something the connector needs (a connection setting,
    /// an environment variable, an identity field).
    #[error("system {system}: {message}")]
    Config {
        /// The system of the map.
        system: SystemId,
        /// What is missing, naming the setting or variable.
        message: String,
    },
    /// The store refused or failed; worth retrying later.
    #[error("system {system}: {message}")]
    Unavailable {
        /// The system of the map.
        system: SystemId,
        /// What failed (an error kind or a constraint name).
        message: String,
    },
    /// The store and the map disagree (a table or column the map names is
    /// missing, a path would leave its root); retrying will not help.
    #[error("system {system}: {message}")]
    Mismatch {
        /// The system of the map.
        system: SystemId,
        /// What disagrees.
        message: String,
    },
    /// The store refused the work for a reason time will not change: a
    /// constraint, a value too long for its column, a permission the
    /// connecting user lacks. Retrying will not help; the message names
    /// the table and, where the store says, the constraint or column.
    #[error("system {system}: {message}")]
    Refused {
        /// The system of the map.
        system: SystemId,
        /// What refused, naming tables, columns and constraints only.
        message: String,
    },
    /// This kind of system has no connector here.
    #[error("system {system}: no connector for kind {kind}")]
    Unsupported {
        /// The system of the map.
        system: SystemId,
        /// Its kind.
        kind: &'static str,
    },
}

impl ConnectorError {
    /// Whether a retry with backoff may succeed: only for
    /// [`ConnectorError::Unavailable`] (a refused or reset connection, a
    /// timeout, a deadlock or serialization failure, too many connections,
    /// a processor's 5xx). Everything else — a wrong setting, a missing
    /// database, table or column, failed authentication, a constraint —
    /// fails the step at once: the same attempt would fail the same way.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// A system a request can reach. One value per system of the map,
/// configured from the environment variables its `connection` names.
///
/// `identify` and `access` change nothing; `erase` and `rectify` are
/// idempotent.
pub trait Connector: Send + Sync {
    /// Learns more identities of the person from this system (a `users`
    /// row found by email gives its `id` as `user_id`). Returns what the
    /// system knows, to be merged by the caller until nothing new appears.
    fn identify(
        &self,
        person: &Person,
    ) -> impl Future<Output = Result<Person, ConnectorError>> + Send;

    /// Counts what each dataset holds of the person and what erasure would
    /// do to it (a dry run: `deleted`/`anonymized`/`retained` are what
    /// would happen).
    fn plan_erasure(
        &self,
        person: &Person,
    ) -> impl Future<Output = Result<Vec<DatasetOutcome>, ConnectorError>> + Send;

    /// Everything each dataset holds of the person.
    fn access(
        &self,
        person: &Person,
    ) -> impl Future<Output = Result<Vec<Export>, ConnectorError>> + Send;

    /// Applies the map's erasure strategy to every dataset, in an order
    /// the store accepts (children before parents, files with their
    /// derived files).
    fn erase(
        &self,
        person: &Person,
    ) -> impl Future<Output = Result<Vec<DatasetOutcome>, ConnectorError>> + Send;

    /// Sets the changed fields wherever a dataset of this system has them.
    fn rectify(
        &self,
        person: &Person,
        changes: &[FieldChange],
    ) -> impl Future<Output = Result<Vec<DatasetOutcome>, ConnectorError>> + Send;
}

/// Checks a system is of the kind a connector serves and reads the setting
/// it needs; returns the value and the variable's name (for messages that
/// must not quote the value).
pub(crate) fn kind_and_setting<'a>(
    system: &'a custos_map::System,
    kind: custos_map::SystemKind,
    setting: &'a str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, &'a str), ConnectorError> {
    if system.kind != kind {
        return Err(ConnectorError::Mismatch {
            system: system.id.clone(),
            message: format!("is of kind {}, not {}", system.kind.key(), kind.key()),
        });
    }
    let value = connection_value(system, setting, env)?;
    let var = system
        .connection
        .get(setting)
        .map_or(setting, String::as_str);
    Ok((value, var))
}

/// Reads the environment variable a system's `connection` names for
/// `setting` (e.g. `url_env` → `APP_DATABASE_URL` → its value).
pub fn connection_value(
    system: &custos_map::System,
    setting: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConnectorError> {
    let var = system
        .connection
        .get(setting)
        .ok_or_else(|| ConnectorError::Config {
            system: system.id.clone(),
            message: format!("connection setting `{setting}` is missing"),
        })?;
    match env(var) {
        None => Err(ConnectorError::Config {
            system: system.id.clone(),
            message: format!("environment variable {var} (connection.{setting}) is not set"),
        }),
        // An empty value would open a new, empty database (SQLite) or the
        // driver's defaults: say so instead of "table … does not exist".
        Some(v) if v.trim().is_empty() => Err(ConnectorError::Config {
            system: system.id.clone(),
            message: format!("environment variable {var} (connection.{setting}) is empty"),
        }),
        Some(v) => Ok(v),
    }
}
