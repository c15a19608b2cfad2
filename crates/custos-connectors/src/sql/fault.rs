//! Which database errors pass with time and which do not: the one place
//! the SQL connector sorts PostgreSQL SQLSTATEs, MySQL error numbers,
//! SQLite result codes and sqlx's own error kinds into transient faults
//! (retried with backoff) and permanent ones (the step fails at once, with
//! a message that says what to fix).
//!
//! Invariant: a message names the system, the variable holding the
//! connection URL or path, the database, table, column or constraint —
//! never the URL (it may hold a password) and never a value (the
//! database's own messages may quote one; only identifiers are taken from
//! them, and only for the errors whose text is an identifier of our SQL).

use custos_map::SystemId;

use super::pool::describe;
use crate::ConnectorError;

/// Where the connector connects, for messages that say what to fix.
#[derive(Clone, Debug, Default)]
pub(super) struct Place {
    /// The environment variable holding the URL or path (`APP_DATABASE_URL`).
    pub(super) var: String,
    /// The database's name, when the URL names one.
    pub(super) database: Option<String>,
}

/// What kind of failure a database error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fault {
    /// Refused or reset connections, timeouts, a full pool, serialization
    /// failures, deadlocks, too many connections, a server shutting down,
    /// a busy SQLite file: worth retrying.
    Transient,
    /// Wrong user or password (28P01, 28000; MySQL 1045).
    Auth,
    /// The database does not exist (3D000; MySQL 1049) or the SQLite file
    /// cannot be opened.
    UnknownDatabase,
    /// A table the statement names does not exist (42P01; MySQL 1146;
    /// SQLite "no such table").
    UndefinedTable,
    /// A column the statement names does not exist (42703; MySQL 1054;
    /// SQLite "no such column").
    UndefinedColumn,
    /// A constraint refused the change (23xxx; MySQL 1062, 1048, 1451 …;
    /// SQLite CONSTRAINT).
    Constraint,
    /// A value too long for its column (22001; MySQL 1406; SQLite TOOBIG).
    TooLong,
    /// The connecting user lacks a right (42501; MySQL 1044, 1142, 1143;
    /// SQLite PERM, READONLY, AUTH).
    Permission,
    /// The connection settings cannot be used (a malformed URL or option).
    Setting,
    /// TLS failed (certificates, `sslmode`).
    Tls,
    /// Anything else a retry will not change (a data exception, a corrupt
    /// file, a value that does not decode).
    Permanent,
}

/// Sorts a database error.
pub(super) fn classify(e: &sqlx::Error) -> Fault {
    match e {
        sqlx::Error::Database(d) => {
            if let Some(my) = d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                if let Some(f) = mysql_number(my.number()) {
                    return f;
                }
            }
            if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                let code: i64 = d.code().and_then(|c| c.parse().ok()).unwrap_or(0);
                return sqlite_code(code, d.message());
            }
            sqlstate(d.code().as_deref().unwrap_or_default())
        }
        sqlx::Error::Configuration(_) => Fault::Setting,
        sqlx::Error::Tls(_) => Fault::Tls,
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => Fault::Permanent,
        // Io (refused, reset, timed out), pool timeouts, protocol hiccups.
        _ => Fault::Transient,
    }
}

/// PostgreSQL's SQLSTATEs (MySQL's too, where its number says nothing more).
fn sqlstate(code: &str) -> Fault {
    match code {
        "28P01" | "28000" => Fault::Auth,
        "3D000" => Fault::UnknownDatabase,
        "42P01" | "42S02" => Fault::UndefinedTable,
        "42703" | "42S22" => Fault::UndefinedColumn,
        "42501" => Fault::Permission,
        "22001" => Fault::TooLong,
        // serialization_failure, deadlock_detected, lock_not_available
        "40001" | "40P01" | "55P03" => Fault::Transient,
        c if c.starts_with("23") => Fault::Constraint,
        c if c.starts_with("22") => Fault::Permanent,
        // syntax or access rule violations other than the above, feature
        // not supported, invalid catalog or schema names
        c if c.starts_with("42") || c.starts_with("0A") || c.starts_with("3F") => Fault::Permanent,
        // connection exceptions (08), insufficient resources (53, with
        // too_many_connections 53300), operator intervention (57): and
        // anything unknown, as before
        _ => Fault::Transient,
    }
}

/// MySQL/MariaDB error numbers; `None` falls back to the SQLSTATE.
fn mysql_number(n: u16) -> Option<Fault> {
    Some(match n {
        1045 => Fault::Auth,
        1049 => Fault::UnknownDatabase,
        1146 => Fault::UndefinedTable,
        1054 => Fault::UndefinedColumn,
        1406 => Fault::TooLong,
        // duplicate, NOT NULL, foreign keys, no default, CHECK
        1062 | 1048 | 1451 | 1452 | 1216 | 1217 | 1364 | 1557 | 1169 | 3819 | 4025 => {
            Fault::Constraint
        }
        1044 | 1142 | 1143 | 1227 | 1370 => Fault::Permission,
        // deadlock, lock wait timeout, too many connections, server gone
        1213 | 1205 | 1040 | 1203 | 1053 | 2006 | 2013 => Fault::Transient,
        _ => return None,
    })
}

/// SQLite's result codes (primary code in the low byte).
fn sqlite_code(code: i64, message: &str) -> Fault {
    match code & 0xff {
        // BUSY, LOCKED, IOERR, FULL, PROTOCOL
        5 | 6 | 10 | 13 | 15 => Fault::Transient,
        14 | 26 => Fault::UnknownDatabase,
        19 => Fault::Constraint,
        18 => Fault::TooLong,
        3 | 8 | 23 => Fault::Permission,
        1 if message.starts_with("no such table") => Fault::UndefinedTable,
        1 if message.starts_with("no such column") => Fault::UndefinedColumn,
        _ => Fault::Permanent,
    }
}

/// The identifier an "undefined table/column" message names, if it reads
/// as one: `column "nme" does not exist`, `Unknown column 'nme' in …`,
/// `no such column: nme`. Only identifiers of our own SQL appear in these
/// messages; anything that does not look like one is left out.
fn named_identifier(message: &str) -> Option<String> {
    let quoted = message.find(['"', '\'']).and_then(|i| {
        let q = message[i..].chars().next()?;
        let rest = &message[i + 1..];
        rest.find(q).map(|j| &rest[..j])
    });
    let name = quoted.or_else(|| {
        message
            .split_once(": ")
            .map(|(_, n)| n)
            .or_else(|| message.strip_prefix("column ")?.split_whitespace().next())
    })?;
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$'));
    ok.then(|| name.to_owned())
}

/// A database error as a connector error: transient ones as
/// `Unavailable` (retried), the others as `Config`, `Mismatch` or
/// `Refused` with what to fix. `what` says what was being done
/// ("reading orders").
pub(super) fn sql_error(
    system: &SystemId,
    place: &Place,
    what: &str,
    e: &sqlx::Error,
) -> ConnectorError {
    let system = system.clone();
    let var = &place.var;
    let ident = || match e {
        sqlx::Error::Database(d) => named_identifier(d.message()),
        _ => None,
    };
    match classify(e) {
        // Not reached at all: say which setting names the server.
        Fault::Transient if what == "connecting" => ConnectorError::Unavailable {
            system,
            message: format!(
                "connecting to the server {var} names: {} (is it running, are the host and port right?)",
                describe(e)
            ),
        },
        Fault::Transient => ConnectorError::Unavailable {
            system,
            message: format!("{what}: {}", describe(e)),
        },
        Fault::Auth => ConnectorError::Config {
            system,
            message: format!(
                "{what}: authentication failed (check the user and password in {var})"
            ),
        },
        Fault::UnknownDatabase => ConnectorError::Config {
            system,
            message: match &place.database {
                Some(db) => format!("database `{db}` does not exist (check {var})"),
                None => format!("{what}: the database cannot be opened (check {var})"),
            },
        },
        Fault::Setting => ConnectorError::Config {
            system,
            message: format!("setting {var} is not a valid connection URL or path"),
        },
        Fault::Tls => ConnectorError::Config {
            system,
            message: format!(
                "{what}: TLS failed (check the certificates and the TLS options in {var})"
            ),
        },
        Fault::UndefinedTable => ConnectorError::Mismatch {
            system,
            message: match ident() {
                Some(t) => format!("{what}: table `{t}` does not exist"),
                None => format!("{what}: a table does not exist ({})", describe(e)),
            },
        },
        Fault::UndefinedColumn => ConnectorError::Mismatch {
            system,
            // Without the statement's alias (`custos_r.email`): the table
            // is in `what`.
            message: match ident().as_deref().and_then(|c| c.rsplit('.').next()) {
                Some(c) => format!("{what}: column `{c}` does not exist"),
                None => format!("{what}: a column does not exist ({})", describe(e)),
            },
        },
        Fault::Constraint => ConnectorError::Refused {
            system,
            message: format!("{what}: a constraint refuses the change ({})", describe(e)),
        },
        Fault::TooLong => ConnectorError::Refused {
            system,
            message: format!(
                "{what}: a value is too long for its column ({})",
                describe(e)
            ),
        },
        Fault::Permission => ConnectorError::Refused {
            system,
            message: format!(
                "{what}: permission denied to the user of {var} ({})",
                describe(e)
            ),
        },
        Fault::Permanent => ConnectorError::Refused {
            system,
            message: format!("{what}: {}", describe(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_sort_into_transient_and_permanent() {
        for (code, want) in [
            ("28P01", Fault::Auth),
            ("28000", Fault::Auth),
            ("3D000", Fault::UnknownDatabase),
            ("42P01", Fault::UndefinedTable),
            ("42703", Fault::UndefinedColumn),
            ("23505", Fault::Constraint),
            ("23503", Fault::Constraint),
            ("22001", Fault::TooLong),
            ("42501", Fault::Permission),
            ("40001", Fault::Transient),
            ("40P01", Fault::Transient),
            ("53300", Fault::Transient),
            ("57P01", Fault::Transient),
            ("08006", Fault::Transient),
        ] {
            assert_eq!(sqlstate(code), want, "{code}");
        }
        assert_eq!(mysql_number(1045), Some(Fault::Auth));
        assert_eq!(mysql_number(1049), Some(Fault::UnknownDatabase));
        assert_eq!(mysql_number(1054), Some(Fault::UndefinedColumn));
        assert_eq!(mysql_number(1213), Some(Fault::Transient));
        assert_eq!(mysql_number(9999), None);
        assert_eq!(sqlite_code(14, "unable to open"), Fault::UnknownDatabase);
        assert_eq!(sqlite_code(2067, "UNIQUE"), Fault::Constraint);
        assert_eq!(sqlite_code(5, "database is locked"), Fault::Transient);
        assert_eq!(
            sqlite_code(1, "no such column: nme"),
            Fault::UndefinedColumn
        );
    }

    #[test]
    fn only_identifiers_are_taken_from_messages() {
        for (msg, want) in [
            (r#"column "nme" does not exist"#, Some("nme")),
            ("column u.nme does not exist", Some("u.nme")),
            (r#"relation "users" does not exist"#, Some("users")),
            ("Unknown column 'nme' in 'field list'", Some("nme")),
            ("Table 'app.users' doesn't exist", Some("app.users")),
            ("no such column: nme", Some("nme")),
            ("no such table: main.users", Some("main.users")),
            (r#"column "x y'; --" does not exist"#, None),
            ("something else", None),
        ] {
            assert_eq!(named_identifier(msg).as_deref(), want, "{msg}");
        }
    }
}
