//! Integration tests of the HTTP API, one binary (each extra test binary
//! costs a link): every module drives a real server over loopback, on
//! SQLite and on PostgreSQL (`backend_tests!`).

mod support;

mod api;
mod audit_keys;
mod consent;
mod contract;
mod dsr;
mod export;
mod fides;
mod hardening;
mod outbound;
mod requests;
mod restore;
mod slow;
mod steperrors;
mod tenancy;
