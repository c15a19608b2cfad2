//! The data map (issue 3). Placeholder until the crate is built.
