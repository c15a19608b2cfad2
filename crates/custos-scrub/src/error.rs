//! Errors of the scrubber. Messages name detectors, files and keys, never a
//! scanned value: an error may end up in the very log we are protecting.

/// Everything that can go wrong while building or running a [`crate::Scrubber`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScrubError {
    /// A `--detect`/`--skip`/config name that no built-in or custom detector has.
    #[error("scrub.unknown_detector: no detector named `{name}`")]
    UnknownDetector {
        /// The unknown name as given by the operator (configuration, not data).
        name: String,
    },
    /// A custom detector's regular expression does not compile.
    #[error("scrub.bad_pattern: pattern of detector `{name}` does not compile: {reason}")]
    BadPattern {
        /// Name of the custom detector.
        name: String,
        /// The regex compiler's message.
        reason: String,
    },
    /// A custom detector name is empty, malformed or shadows a built-in one.
    #[error(
        "scrub.bad_detector_name: `{name}` must match [a-z][a-z0-9_]* and not be a built-in name"
    )]
    BadDetectorName {
        /// The rejected name.
        name: String,
    },
    /// `pseudonymize` or `hash` was asked for without a key.
    #[error("scrub.missing_key: mode `{mode}` needs a key (set CUSTOS_SCRUB_KEY to 32 bytes, hex or base64)")]
    MissingKey {
        /// The mode that needs the key.
        mode: &'static str,
    },
    /// The key material is not 32 bytes of hex or base64.
    #[error("scrub.invalid_key: the key must be 32 bytes given as 64 hex digits or base64")]
    InvalidKey,
    /// The configuration file is not valid TOML or has unknown keys.
    #[error("scrub.config: {0}")]
    Config(String),
    /// Reading the input or writing the output failed.
    #[error("scrub.io: {0}")]
    Io(#[from] std::io::Error),
}

impl ScrubError {
    /// Stable, grep-able code of the variant (e.g. `"scrub.missing_key"`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownDetector { .. } => "scrub.unknown_detector",
            Self::BadPattern { .. } => "scrub.bad_pattern",
            Self::BadDetectorName { .. } => "scrub.bad_detector_name",
            Self::MissingKey { .. } => "scrub.missing_key",
            Self::InvalidKey => "scrub.invalid_key",
            Self::Config(_) => "scrub.config",
            Self::Io(_) => "scrub.io",
        }
    }
}
