//! Streaming personal-data scrubber: finds e-mail addresses, IP addresses,
//! phone, card, IBAN and national id numbers, and secrets in text, and
//! replaces them (`[EMAIL]`, masks, keyed pseudonyms or keyed hashes).
//!
//! How it works: every detector contributes byte-oriented (`(?-u)`) patterns
//! to one multi-pattern lazy DFA. A cheap pass marks the bytes where some
//! pattern could start (tables derived from the DFA, plus `@`, `:`, `://`
//! and `aws` anchors for the patterns that may start on any byte; numbers
//! too short for any digit-group validator are left out), and the
//! DFA runs anchored only there, which gives the same leftmost-first matches
//! as an unanchored search at a fraction of the cost. Each candidate
//! is then confirmed by its validator (Luhn and issuer prefix, mod-97, the
//! Dutch 11-test, SSN area rules, phone country lengths, …), checked against
//! the allow-list, and replaced. Work is on `&[u8]`, so invalid UTF-8 passes
//! through untouched, and replacements are ASCII covering whole characters,
//! so valid UTF-8 stays valid.
//!
//! Heuristics worth knowing:
//! - A dotted quad right after `version`, `ver`, `v`, `release`, `build`,
//!   `firmware`, `rev(ision)` (optionally followed by `:`/`=`/blank) is a
//!   version, not an IPv4 address; so is one glued to more dotted numbers
//!   (`1.2.3.4.5`).
//! - Card numbers need a known issuer prefix and length, Luhn, and a usual
//!   grouping (4-4-4-4, 4-6-5, …): 13-digit millisecond timestamps (which
//!   start with `1`) and UUID segments are not cards.
//! - US SSNs need their separators (`123-45-6789`): a bare 9-digit number is
//!   only checked as a Dutch BSN.
//! - Phone numbers: `+CC`/`00CC` with a per-country number length; national
//!   numbers with a trunk `0` (9–12 digits); NANP `(NXX) NXX-XXXX`.
//!
//! Entry points: [`Scrubber::scrub_str`], [`Scrubber::scrub_bytes`],
//! [`Scrubber::scrub_json_value`], [`Scrubber::scrub_stream`], and
//! [`MakeScrubWriter`] for `tracing-subscriber`.

mod bulk;
mod candidates;
mod config;
mod detector;
mod error;
mod format;
mod replace;
mod scrubber;
mod stream;
mod validate;
mod writer;

pub use config::{CustomDetectorConfig, ScrubConfig, ValidatorName};
pub use detector::Detector;
pub use error::ScrubError;
pub use format::Format;
pub use replace::{Mode, ScrubKey};
pub use scrubber::{CustomDetector, Finding, Report, ScrubCache, Scrubber, ScrubberBuilder};
pub use stream::{CHUNK, MAX_LINE};
pub use writer::{MakeScrubWriter, ScrubWriter};
