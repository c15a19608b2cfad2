//! Integration tests of the HTTP API, one binary (each extra test binary
//! costs a link): every module drives a real server over loopback, on
//! SQLite and on PostgreSQL (`backend_tests!`).

mod support;

mod api;
mod consent;
mod dsr;
mod fides;
mod requests;
mod restore;
mod steperrors;
