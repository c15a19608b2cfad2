//! Command-line surface: argument parsing and dispatch to the libraries.

pub(crate) mod map;
pub(crate) mod ropa;
pub(crate) mod scrub;
