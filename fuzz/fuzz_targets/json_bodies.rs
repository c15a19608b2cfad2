//! Arbitrary bytes as each JSON request body the server accepts, the first
//! byte choosing the type, through `custos_server::extract::parse_json`
//! (what the `ApiJson` extractor calls): a value that parses formats with
//! `Debug`, an error becomes a 400 problem that serialises; never a panic.
//! The processor callback's confirmation is parsed by the same serde_json
//! call in its route, with its own message, so it is fed here too.
//! Run: `cargo +nightly fuzz run json_bodies` (from the repository root).
#![no_main]

use std::fmt::Debug;

use custos_server::extract::parse_json;
use custos_server::routes::{admin, consent, requests, subjects};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;

fn body<T: DeserializeOwned + Debug>(bytes: &[u8]) {
    match parse_json::<T>(bytes) {
        Ok(value) => {
            let _ = format!("{value:?}");
        }
        Err(problem) => {
            assert_eq!(problem.status, 400, "a client's mistake is a 400");
            let json = serde_json::to_vec(&problem).expect("a problem serialises");
            assert!(!json.is_empty());
        }
    }
}

/// Every body type, in a fixed order (a seed's first byte picks one).
const BODIES: &[fn(&[u8])] = &[
    body::<admin::CreateTenant>,
    body::<admin::CreateKey>,
    body::<consent::NewVersion>,
    body::<consent::RecordBody>,
    body::<requests::CreateRequest>,
    body::<requests::VerifyRequest>,
    body::<requests::ExtendRequest>,
    body::<requests::RejectRequest>,
    body::<requests::CompleteStep>,
    body::<subjects::CreateSubject>,
    body::<subjects::PutRecord>,
    body::<subjects::TokenRequest>,
    body::<subjects::EraseRequest>,
    body::<custos_connectors::notice::ProcessorConfirmation>,
];

fuzz_target!(|data: &[u8]| {
    let Some((choice, bytes)) = data.split_first() else {
        return;
    };
    BODIES[usize::from(*choice) % BODIES.len()](bytes);
});
