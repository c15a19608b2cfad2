//! Streaming personal-data scrubber (issue 6). Placeholder until the crate is built.
