//! Arbitrary bytes through every entry point of the scrubber: no panic, and
//! valid UTF-8 stays valid UTF-8.
//! Run: `cargo +nightly fuzz run scrub_bytes` (from the repository root).
#![no_main]

use std::sync::OnceLock;

use custos_scrub::{Format, Report, Scrubber};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static S: OnceLock<Scrubber> = OnceLock::new();
    let s = S.get_or_init(|| Scrubber::new_default().unwrap());
    let out = s.scrub_bytes(data, &mut Report::default());
    if std::str::from_utf8(data).is_ok() {
        assert!(std::str::from_utf8(&out).is_ok());
    }
    for format in [Format::Text, Format::Json, Format::Logfmt] {
        s.scrub_stream(data, std::io::sink(), format).unwrap();
    }
});
