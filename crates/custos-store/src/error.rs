//! Errors of the store and the vault. Each variant maps to one HTTP problem
//! code in the server; none carries personal values. Database errors are
//! kept opaque (their details can quote row values) and only their kind is
//! logged.

use custos_core::CoreError;

/// Why a vault operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Something the caller named does not exist (in its tenant).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The subject was erased; every later read answers this.
    #[error("subject was erased at {erased_at}")]
    SubjectErased {
        /// RFC 3339 time of erasure.
        erased_at: String,
    },
    /// The tenant was shredded.
    #[error("tenant was shredded at {shredded_at}")]
    TenantShredded {
        /// RFC 3339 time of shredding.
        shredded_at: String,
    },
    /// A token whose subject is gone.
    #[error("token no longer resolves: its subject was erased")]
    TokenGone {
        /// RFC 3339 time of erasure.
        erased_at: String,
    },
    /// A unique thing already exists (tenant id, identity, external id).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// Processing of this subject is restricted (Art. 18).
    #[error("processing of this subject is restricted; only purposes legal_claims and storage may reveal")]
    Restricted,
    /// The key lacks a scope.
    #[error("this API key lacks the {0} scope")]
    MissingScope(&'static str),
    /// The credentials were missing, unknown, expired or revoked.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A client value was invalid; names the field.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault (`identities.email`, `fields`, …).
        field: String,
        /// What is wrong with it, without echoing it.
        message: String,
    },
    /// The consent ledger refused a request (unknown version, not an
    /// affirmative grant, a purpose the ledger does not govern, …).
    #[error(transparent)]
    Consent(#[from] custos_core::consent::ConsentError),
    /// A data-subject request refused a change (illegal transition,
    /// extension limit, wrong or expired code, …).
    #[error(transparent)]
    Request(#[from] custos_core::request::RequestError),
    /// Misconfiguration at startup.
    #[error("configuration: {0}")]
    Config(String),
    /// The root key does not match the key store.
    #[error("the root key does not match this key store (fingerprint {expected} expected); refusing to start")]
    WrongRootKey {
        /// Fingerprint recorded in the key store.
        expected: String,
    },
    /// The data store was restored from an older copy: it lacks erasures
    /// recorded elsewhere, or its audit chain is behind or off its anchor.
    /// It is not served until recovered (`custos recover`).
    #[error("the data store was restored from an older copy: {0}. It is not served until recovered: run `custos recover` (docs/operations.md)")]
    RolledBack(String),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(String),
    /// A stored ciphertext or key failed to decrypt: tampering or a wrong key.
    #[error("stored data failed authentication ({0})")]
    Integrity(CoreError),
    /// The database failed; details are logged, not returned.
    #[error("storage unavailable ({0})")]
    Database(String),
    /// The writer task has stopped (shutting down).
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl StoreError {
    pub(crate) fn from_connect(e: sqlx::Error) -> Self {
        StoreError::Config(format!("could not open the database: {}", db_kind(&e)))
    }

    pub(crate) fn invalid(field: impl Into<String>, e: impl std::fmt::Display) -> Self {
        StoreError::Invalid {
            field: field.into(),
            message: e.to_string(),
        }
    }
}

/// A short description of a database error that quotes no row values.
pub fn db_kind(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => format!(
            "database error {} ({:?})",
            d.code().unwrap_or_default(),
            d.kind()
        ),
        sqlx::Error::Io(io) => format!("i/o error: {}", io.kind()),
        sqlx::Error::PoolTimedOut => "connection pool timed out".into(),
        sqlx::Error::PoolClosed => "connection pool closed".into(),
        sqlx::Error::Configuration(_) => "invalid configuration".into(),
        sqlx::Error::Tls(_) => "TLS error".into(),
        sqlx::Error::Protocol(_) => "protocol error".into(),
        other => format!("{:?}", std::mem::discriminant(other)),
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let kind = db_kind(&e);
        tracing::error!(error = %kind, "database error");
        StoreError::Database(kind)
    }
}

/// [`db_kind`] of the writer's own SQLite connection.
pub(crate) fn rusqlite_kind(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => {
            format!("database error {} ({:?})", f.extended_code, f.code)
        }
        other => format!("{:?}", std::mem::discriminant(other)),
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let kind = rusqlite_kind(&e);
        tracing::error!(error = %kind, "database error");
        StoreError::Database(kind)
    }
}

/// Whether a database error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::UniqueViolation)
}
