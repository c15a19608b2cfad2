//! Carrying out data-subject requests: no HTTP here, the server only routes
//! to it.
//!
//! An [`Executor`] in every server plans verified requests from the data
//! map, claims their steps as durable jobs (leases in the database, so any
//! number of servers share the work and a crashed server's steps are taken
//! over when their lease runs out), runs each step through its connector,
//! and moves requests on until they complete with a signed record.
//!
//! * Planning first learns every identity of the person: the request's
//!   own, the vault subject's, and what the application's SQL databases
//!   reveal (an email leads to `users.id`), repeated until nothing new
//!   appears. The result is sealed into the request for the later steps.
//! * Steps are idempotent, so running one twice (lease taken over after a
//!   crash) changes nothing more.
//! * Access and portability requests end with an archive built by running
//!   every connector's access again, so no personal data waits in the
//!   database between steps.
//! * A request reaches only what its tenant may: systems and processors
//!   the map binds to it (`tenants:`, or a database's `tenant_values` with
//!   a `tenant_column` filtering every query). On a server with several
//!   tenants an unbound system is refused and an unbound processor is not
//!   notified; the plan and the step say which and why.
//! * Connection settings come from the variables the map names, looked up
//!   in [`ExecutorConfig::env`], which the binary fills; this crate reads
//!   no environment itself.

mod config;
mod executor;
pub mod mail;
mod payload;
mod person;
mod plan;
pub mod planner;
mod progress;
mod reach;
mod steps;
mod tenancy;

pub use config::{processor_secret_var, ExecutorConfig, NamedSettings, SQL_CACHE_TTL};
pub use executor::{Executor, Running};
pub use mail::{Delivery, MailError, Mailer, Transport};
pub use payload::Payload;
pub use planner::{plan_steps, PlannedStep};
