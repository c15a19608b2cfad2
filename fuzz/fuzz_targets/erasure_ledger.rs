//! Arbitrary text as the erasure ledger's witness file: a damaged line is
//! named (from 1), never a panic; what parses is written back as text
//! that parses to the same entries (the same canonical text).
//! Run: `cargo +nightly fuzz run erasure_ledger` (from the repository root).
#![no_main]

use custos_store::canonical_ledger_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match canonical_ledger_text(text) {
        Ok(canonical) => assert_eq!(canonical_ledger_text(&canonical), Ok(canonical.clone())),
        Err(line) => assert!(line >= 1 && line <= text.lines().count().max(1)),
    }
});
