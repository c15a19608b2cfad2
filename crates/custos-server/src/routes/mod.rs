//! HTTP handlers, one module per area of the API.

pub mod admin;
pub mod audit;
pub mod consent;
pub mod map;
pub mod requests;
pub mod scrub;
pub mod subjects;
