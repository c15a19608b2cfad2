//! Integration tests of custos-map: one test binary (house style).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod demo;
mod errors;
mod fides;
mod identity;
mod links;
mod ropa;
mod roundtrip;
