//! Command-line surface: argument parsing and dispatch to the libraries.

pub(crate) mod audit;
pub(crate) mod consent;
pub(crate) mod demo;
pub(crate) mod dsr;
pub(crate) mod keys;
pub(crate) mod map;
pub(crate) mod recover;
pub(crate) mod ropa;
pub(crate) mod scrub;
pub(crate) mod secret;
pub(crate) mod serve;
pub(crate) mod store_args;
