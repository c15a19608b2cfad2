//! Building a [`Scrubber`]: the detectors chosen (built-in and custom),
//! the mode, key and allow-list, then every automaton compiled once — the
//! combined unanchored regex, the anchored lazy DFA, the two families by
//! first byte, the prefilter's tables — and the shortcuts that read a
//! match off its bytes switched on only where they give the walk's match.
//!
//! Invariant: a built scrubber never fails at run time for want of a key
//! or a pattern; every such error is returned here.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use regex_automata::hybrid::dfa as lazy;
use regex_automata::meta::{self, Regex};
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::{Anchored, PatternID};

use super::{Compiled, Family, Inner, Scrubber};
use crate::candidates::{self, Prefilter, Special};
use crate::config::{ScrubConfig, ValidatorName};
use crate::detector::{builtin_patterns, Group, PatternSpec, DIGIT_CHECKS, URL_TAIL};
use crate::replace::redact_token;
use crate::validate::{Check, Opts};
use crate::{Detector, Mode, ScrubError, ScrubKey};

/// A detector defined in configuration.
#[derive(Clone, Debug)]
pub struct CustomDetector {
    /// Name: `[a-z][a-z0-9_]*`, not a built-in one.
    pub name: String,
    /// Byte-oriented regex (`(?-u)`: ASCII classes and `\b`); must not match `\n`.
    pub pattern: String,
    /// Optional checksum the digits or alphanumerics must pass.
    pub validator: Option<ValidatorName>,
}
/// Builds a [`Scrubber`]; see [`Scrubber::builder`].
#[derive(Debug, Default)]
pub struct ScrubberBuilder {
    detect: Option<Vec<String>>,
    skip: Vec<String>,
    mode: Mode,
    key: Option<ScrubKey>,
    allow: Vec<String>,
    custom: Vec<CustomDetector>,
    keep_private_ips: bool,
}

impl ScrubberBuilder {
    /// Only these detectors (by name); default: all built-in and custom ones.
    pub fn detect<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.detect = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Turn these detectors off (by name).
    pub fn skip<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.skip.extend(names.into_iter().map(Into::into));
        self
    }

    /// Replacement mode (default `redact`).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Key for `pseudonymize` and `hash`.
    pub fn key(mut self, key: ScrubKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Values never replaced (compared case-insensitively), e.g. the support address.
    pub fn allow<I: IntoIterator<Item = S>, S: Into<String>>(mut self, values: I) -> Self {
        self.allow.extend(values.into_iter().map(Into::into));
        self
    }

    /// Adds a custom detector.
    pub fn custom(mut self, detector: CustomDetector) -> Self {
        self.custom.push(detector);
        self
    }

    /// Leave private, loopback and link-local IP addresses alone.
    pub fn keep_private_ips(mut self, keep: bool) -> Self {
        self.keep_private_ips = keep;
        self
    }

    /// Applies a configuration file's settings (before flags, which may
    /// still override them).
    pub fn config(mut self, config: &ScrubConfig) -> Result<Self, ScrubError> {
        if let Some(mode) = &config.mode {
            self.mode = mode.parse()?;
        }
        if let Some(detect) = &config.detect {
            self.detect = Some(detect.clone());
        }
        self.skip.extend(config.skip.iter().cloned());
        self.allow.extend(config.allow.iter().cloned());
        if let Some(keep) = config.keep_private_ips {
            self.keep_private_ips = keep;
        }
        for d in &config.detector {
            self.custom.push(CustomDetector {
                name: d.name.clone(),
                pattern: d.pattern.clone(),
                validator: d.validator,
            });
        }
        Ok(self)
    }

    /// Compiles the automaton. Fails on unknown names, bad custom patterns,
    /// or a keyed mode without a key.
    pub fn build(self) -> Result<Scrubber, ScrubError> {
        if self.mode.needs_key() && self.key.is_none() {
            return Err(ScrubError::MissingKey {
                mode: self.mode.name(),
            });
        }
        let mut specs: Vec<PatternSpec> = builtin_patterns();
        for c in &self.custom {
            let valid_name = c
                .name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase())
                && c.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid_name || Detector::builtin(&c.name).is_some() {
                return Err(ScrubError::BadDetectorName {
                    name: c.name.clone(),
                });
            }
            specs.push(PatternSpec {
                detector: Detector::Custom(Arc::from(c.name.as_str())),
                pattern: c.pattern.clone(),
                check: match c.validator {
                    None => Check::None,
                    Some(ValidatorName::Luhn) => Check::Luhn,
                    Some(ValidatorName::Mod97) => Check::Mod97,
                },
                group: Group::Alone,
            });
        }
        let known: HashSet<String> = specs.iter().map(|s| s.detector.name().to_owned()).collect();
        for name in self.detect.iter().flatten().chain(&self.skip) {
            if !known.contains(name) {
                return Err(ScrubError::UnknownDetector { name: name.clone() });
            }
        }
        specs.retain(|s| {
            let name = s.detector.name();
            let wanted = self
                .detect
                .as_ref()
                .is_none_or(|d| d.iter().any(|n| n == name));
            wanted && !self.skip.iter().any(|n| n == name)
        });

        let syntax = syntax::Config::new().unicode(false).utf8(false);
        let config = meta::Config::new()
            .utf8_empty(false)
            .hybrid_cache_capacity(32 << 20);
        let compile = |patterns: &[&str], name: &str| {
            Regex::builder()
                .syntax(syntax)
                .configure(config.clone())
                .build_many(patterns)
                .map_err(|e| ScrubError::BadPattern {
                    name: name.to_owned(),
                    reason: e.to_string(),
                })
        };
        let lazy_config = lazy::Config::new()
            .match_kind(regex_automata::MatchKind::LeftmostFirst)
            .cache_capacity(8 << 20)
            // Anchored searches are short; never trade the cache for the
            // (slower) fallback engine.
            .minimum_cache_clear_count(None);
        let build_lazy = |patterns: &[&str], per_pattern: bool| {
            lazy::Builder::new()
                .syntax(syntax)
                .thompson(thompson::Config::new().utf8(false))
                .configure(lazy_config.clone().starts_for_each_pattern(per_pattern))
                .build_many(patterns)
                .map_err(|e| ScrubError::BadPattern {
                    name: "combined".to_owned(),
                    reason: e.to_string(),
                })
        };
        let mut singles = Vec::with_capacity(specs.len());
        for s in &specs {
            singles.push(compile(&[s.pattern.as_str()], s.detector.name())?);
        }
        let all: Vec<&str> = specs.iter().map(|s| s.pattern.as_str()).collect();
        let combined = compile(&all, "combined")?;
        let anchored = build_lazy(&all, true)?;
        // Built-in patterns that may start on almost any byte are found
        // from a byte they contain (see `candidates`); the rest go through
        // the first-byte table.
        let mut special = Special::default();
        let mut table = Vec::new();
        let mut table_ids = Vec::new();
        let mut custom = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            if !matches!(
                (&s.detector, s.check),
                (Detector::Email, Check::Email)
                    | (Detector::Ipv6, Check::Ipv6)
                    | (Detector::UrlCredentials, Check::UrlCredentials)
                    | (Detector::AwsKey, Check::AwsSecret)
            ) {
                table_ids.push(i);
            }
        }
        for s in &specs {
            match (&s.detector, s.check) {
                (Detector::Email, Check::Email) => special.email = true,
                (Detector::Ipv6, Check::Ipv6) => special.ipv6 = true,
                (Detector::UrlCredentials, Check::UrlCredentials) => special.url = true,
                (Detector::AwsKey, Check::AwsSecret) => special.aws_secret = true,
                (Detector::Custom(_), _) => {
                    custom.push(s.pattern.as_str());
                    table.push(s.pattern.as_str());
                }
                _ => table.push(s.pattern.as_str()),
            }
        }
        let custom = match custom.is_empty() {
            true => None,
            false => Some(build_lazy(&custom, false)?),
        };
        let anchored_table = build_lazy(&table, true)?;
        // Each table pattern joins the families of the bytes it may start on.
        let mut members: [(Vec<&str>, Vec<usize>); 2] = Default::default();
        let mut first_bytes = vec![[true; 256]; specs.len()];
        for (j, (pattern, &id)) in table.iter().zip(&table_ids).enumerate() {
            let mode =
                Anchored::Pattern(PatternID::new(j).map_err(|e| ScrubError::BadPattern {
                    name: "combined".to_owned(),
                    reason: e.to_string(),
                })?);
            let first = candidates::first_bytes(&anchored_table, mode);
            if let Some(slot) = first_bytes.get_mut(id) {
                *slot = first;
            }
            for (f, (patterns, ids)) in members.iter_mut().enumerate() {
                if (0..=u8::MAX)
                    .any(|b| Family::index(b) == f && first.get(usize::from(b)) == Some(&true))
                {
                    patterns.push(pattern);
                    ids.push(id);
                }
            }
        }
        let [(digits, digit_ids), (others, other_ids)] = members;
        let families = [
            Family {
                dfa: build_lazy(&digits, false)?,
                ids: digit_ids,
            },
            Family {
                dfa: build_lazy(&others, false)?,
                ids: other_ids,
            },
        ];
        let prefilter = Prefilter::new(
            &anchored_table,
            custom.as_ref(),
            build_lazy(&[URL_TAIL], true)?,
            special,
        );
        // Only built-in patterns may start on digits, and those in front
        // of IPv4 must be ones `quad_first` rules out (any subset).
        let before_ipv4 = [
            Check::EsDni,
            Check::FrNir,
            Check::UsSsn,
            Check::NlBsn,
            Check::DeTaxid,
        ];
        let ipv4 = specs
            .iter()
            .position(|s| s.detector == Detector::Ipv4 && s.check == Check::Ipv4);
        let quad = ipv4.filter(|&i| {
            prefilter.digit_shortcut()
                && specs.get(..i).is_some_and(|front| {
                    front
                        .iter()
                        .all(|s| s.group != Group::Digits || before_ipv4.contains(&s.check))
                })
        });
        let digit_reads = digit_reads(&families, &specs).filter(|_| prefilter.digit_shortcut());
        let email = specs
            .iter()
            .position(|s| s.detector == Detector::Email && s.check == Check::Email);
        let iban = specs
            .iter()
            .position(|s| s.detector == Detector::Iban && s.check == Check::Iban)
            .filter(|&i| {
                let front = specs.get(..i).unwrap_or_default();
                front
                    .iter()
                    .all(|s| !matches!(s.detector, Detector::Custom(_)))
            });
        let tokens = specs.iter().map(|s| redact_token(&s.detector)).collect();
        let allow = self
            .allow
            .iter()
            .map(|v| v.as_bytes().to_ascii_lowercase())
            .collect();
        let specs = specs
            .into_iter()
            .map(|s| Compiled {
                detector: s.detector,
                check: s.check,
                group: s.group,
            })
            .collect();
        Ok(Scrubber {
            inner: Arc::new(Inner {
                combined,
                anchored,
                families,
                prefilter,
                tokens,
                first_bytes,
                singles,
                quad,
                digit_reads,
                email,
                iban,
                specs,
                mode: self.mode,
                key: self.key,
                allow,
                opts: Opts {
                    keep_private_ips: self.keep_private_ips,
                    prev_end: 0,
                },
                pool: Mutex::new(Vec::new()),
            }),
        })
    }
}
/// The digit family's patterns as [`Inner::digit_reads`] holds them, or
/// `None` if it has others (custom ones) or they are in another order.
fn digit_reads(
    families: &[Family; 2],
    specs: &[PatternSpec],
) -> Option<(u16, [usize; DIGIT_CHECKS.len()])> {
    let (mut mask, mut pids, mut next) = (0u16, [0; DIGIT_CHECKS.len()], 0);
    for &id in &families.first()?.ids {
        let spec = specs.get(id)?;
        if matches!(spec.detector, Detector::Custom(_)) {
            return None;
        }
        let i = next
            + DIGIT_CHECKS
                .get(next..)?
                .iter()
                .position(|&c| c == spec.check)?;
        mask |= 1 << i;
        *pids.get_mut(i)? = id;
        next = i + 1;
    }
    Some((mask, pids))
}
