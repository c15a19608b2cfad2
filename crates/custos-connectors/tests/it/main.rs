#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! The connectors against real stores: temp directories, a local HTTP
//! processor, and throw-away Redis, PostgreSQL and MariaDB servers from the
//! testkit (SQLite files of their own). One test binary, so the crate links
//! its tests once and the servers start once per run.

mod files;
mod notice;
mod redis_cache;
mod schemas;
mod shared;
mod sql;
mod sql_errors;

use custos_connectors::{DatasetOutcome, Person};
use custos_map::IdentityKind;

/// A person known by user ids and subject ids.
fn person(user_ids: &[&str], subjects: &[&str]) -> Person {
    let mut p = Person::new();
    for u in user_ids {
        p.add(IdentityKind::UserId, u);
    }
    for s in subjects {
        p.add(IdentityKind::SubjectId, s);
    }
    p
}

/// The outcome of one dataset.
fn outcome<'a>(v: &'a [DatasetOutcome], id: &str) -> &'a DatasetOutcome {
    v.iter().find(|o| o.dataset.as_str() == id).unwrap()
}
