//! Integration tests of `custos-scrub` (one binary, several modules).

// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod equivalence;
mod golden;
mod modes;
mod props;
mod stream;
mod tracing_log;

use custos_scrub::Scrubber;

/// Scrubs with every built-in detector in `redact` mode.
pub(crate) fn scrub(input: &str) -> String {
    Scrubber::new_default()
        .unwrap()
        .scrub_str(input)
        .into_owned()
}

/// Valid values of each kind, used by several modules.
pub(crate) const VALUES: &[(&str, &str)] = &[
    ("email", "john.doe+news@example.com"),
    ("email", "jürgen@müller.de"),
    ("ipv4", "203.0.113.9"),
    ("ipv6", "2001:db8::8a2e:370:7334"),
    ("phone", "+31 6 12345678"),
    ("phone", "(415) 555-2671"),
    ("card", "4111 1111 1111 1111"),
    ("card", "378282246310005"),
    ("iban", "DE89 3704 0044 0532 0130 00"),
    ("iban", "NL91ABNA0417164300"),
    ("nl_bsn", "111222333"),
    ("uk_nino", "AB123456C"),
    ("us_ssn", "536-90-4399"),
    ("de_taxid", "86095742719"),
    ("fr_nir", "2 55 08 14 168 025 38"),
    ("es_dni", "12345678Z"),
    ("es_dni", "X1234567L"),
    ("it_cf", "RSSMRA85T10A562S"),
    ("jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("aws_key", "AKIAIOSFODNN7EXAMPLE"),
];
