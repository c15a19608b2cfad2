//! What a scrub found, without the values: [`Finding`] (a detector and a
//! byte range) and [`Report`] (counts per detector, lines and bytes read),
//! both safe to log.

use std::collections::BTreeMap;
use std::fmt;

use crate::Detector;

/// A confirmed value: which detector and where (byte offsets). Deliberately
/// holds no copy of the value, so it can be logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The detector that confirmed it.
    pub detector: Detector,
    /// Byte offset of the first replaced byte.
    pub start: usize,
    /// Byte offset one past the last replaced byte.
    pub end: usize,
}

/// Counts of what was found and how much was read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Findings per detector name.
    pub counts: BTreeMap<String, u64>,
    /// Lines read (a final line without newline counts).
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
}

impl Report {
    /// Counts one finding.
    pub fn add(&mut self, detector: &Detector) {
        self.add_n(detector, 1);
    }

    pub(super) fn add_n(&mut self, detector: &Detector, n: u64) {
        match self.counts.get_mut(detector.name()) {
            Some(count) => *count += n,
            None => {
                self.counts.insert(detector.name().to_owned(), n);
            }
        }
    }

    /// Adds another report's counts to this one.
    pub fn merge(&mut self, other: &Report) {
        for (name, n) in &other.counts {
            *self.counts.entry(name.clone()).or_insert(0) += n;
        }
        self.lines += other.lines;
        self.bytes += other.bytes;
    }

    /// Total number of findings.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

impl fmt::Display for Report {
    /// One `name count` line per detector, then the totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, n) in &self.counts {
            writeln!(f, "{name:<16} {n}")?;
        }
        write!(
            f,
            "total {} in {} lines, {} bytes",
            self.total(),
            self.lines,
            self.bytes
        )
    }
}
