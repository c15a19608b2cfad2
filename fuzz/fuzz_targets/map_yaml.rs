//! Arbitrary text as a data map file (and as a Fides dataset file): the
//! parser and checks answer with diagnostics, never a panic, and a map
//! that loads also checks without errors the loader missed.
//! Run: `cargo +nightly fuzz run map_yaml` (from the repository root).
#![no_main]

use custos_map::{Severity, SystemKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let checked = custos_map::check_str(text, "fuzz.yaml");
    if custos_map::load_str(text, "fuzz.yaml").is_ok() {
        assert!(
            !checked.iter().any(|d| d.severity == Severity::Error),
            "a map that loads has no errors"
        );
    }
    let _ = custos_map::fides::import(&[("fuzz.yml", text)], SystemKind::Postgres);
});
