//! The engine: one multi-pattern lazy DFA finds candidates, validators
//! confirm them, the allow-list lets some through, and the mode renders the
//! replacement.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input};

use crate::config::{ScrubConfig, ValidatorName};
use crate::detector::{builtin_patterns, Group, PatternSpec};
use crate::replace::{mask, normalize, redact_token};
use crate::validate::{self, Check, Opts};
use crate::{Detector, Mode, ScrubError, ScrubKey};

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
        match self.counts.get_mut(detector.name()) {
            Some(count) => *count += 1,
            None => {
                self.counts.insert(detector.name().to_owned(), 1);
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

struct Compiled {
    detector: Detector,
    check: Check,
    group: Group,
}

struct Inner {
    combined: Regex,
    singles: Vec<Regex>,
    specs: Vec<Compiled>,
    mode: Mode,
    key: Option<ScrubKey>,
    allow: HashSet<Vec<u8>>,
    opts: Opts,
    /// Search caches reused across calls that do not bring their own.
    pool: Mutex<Vec<ScrubCache>>,
}

/// The scrubber. Cheap to clone and share (`Arc` inside; `Send + Sync`):
/// build one at start-up and hand clones to the HTTP handler and the log
/// writer.
///
/// Invariant: after `scrub_*` no value that a detector confirmed remains in
/// the output, and scrubbing the output again changes nothing (for the
/// built-in detectors; a custom pattern could match a replacement token).
#[derive(Clone)]
pub struct Scrubber {
    inner: Arc<Inner>,
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrubber")
            .field("mode", &self.inner.mode)
            .field("patterns", &self.inner.specs.len())
            .field("allow", &self.inner.allow.len())
            .finish_non_exhaustive()
    }
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
        let mut singles = Vec::with_capacity(specs.len());
        for s in &specs {
            singles.push(compile(&[s.pattern.as_str()], s.detector.name())?);
        }
        let all: Vec<&str> = specs.iter().map(|s| s.pattern.as_str()).collect();
        let combined = compile(&all, "combined")?;
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
                singles,
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

/// Reusable per-thread search state; `Scrubber::scrub_*` methods without a
/// cache argument take one from an internal pool.
pub struct ScrubCache {
    cache: meta::Cache,
    findings: Vec<Finding>,
}

impl fmt::Debug for ScrubCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScrubCache")
    }
}

impl Scrubber {
    /// A builder with every built-in detector on and `redact` mode.
    pub fn builder() -> ScrubberBuilder {
        ScrubberBuilder::default()
    }

    /// Every built-in detector, `redact` mode. Fails only if the built-in
    /// patterns were broken, which the test suite rules out.
    pub fn new_default() -> Result<Self, ScrubError> {
        Self::builder().build()
    }

    /// The replacement mode.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// The names of the active detectors, deduplicated, in pattern order.
    pub fn detector_names(&self) -> Vec<String> {
        let mut seen = Vec::<String>::new();
        for s in &self.inner.specs {
            if !seen.iter().any(|n| n == s.detector.name()) {
                seen.push(s.detector.name().to_owned());
            }
        }
        seen
    }

    /// A fresh search cache for the `*_with` methods (one per thread).
    pub fn cache(&self) -> ScrubCache {
        ScrubCache {
            cache: self.inner.combined.create_cache(),
            findings: Vec::new(),
        }
    }

    // A poisoned pool only means another thread panicked mid-scan; the
    // caches in it are still valid.
    fn lock_pool(&self) -> std::sync::MutexGuard<'_, Vec<ScrubCache>> {
        match self.inner.pool.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Runs `f` with a cache from the internal pool (created on demand, at
    /// most a few per thread count are kept).
    pub(crate) fn with_pooled_cache<R>(&self, f: impl FnOnce(&mut ScrubCache) -> R) -> R {
        let mut cache = self.lock_pool().pop().unwrap_or_else(|| self.cache());
        let result = f(&mut cache);
        let mut pool = self.lock_pool();
        if pool.len() < 64 {
            pool.push(cache);
        }
        result
    }

    /// The confirmed, non-overlapping findings in `hay`, in order.
    pub fn find(&self, hay: &[u8]) -> Vec<Finding> {
        self.with_pooled_cache(|c| {
            let mut out = Vec::new();
            self.find_into(&mut c.cache, hay, &mut out);
            out
        })
    }

    fn find_into(&self, cache: &mut meta::Cache, hay: &[u8], out: &mut Vec<Finding>) {
        out.clear();
        let inner = &*self.inner;
        let mut at = 0;
        let mut opts = inner.opts;
        while at < hay.len() {
            let input = Input::new(hay).range(at..);
            let Some(m) = inner.combined.search_with(cache, &input) else {
                break;
            };
            let (s, e, pid) = (m.start(), m.end(), m.pattern().as_usize());
            let Some(spec) = inner.specs.get(pid) else {
                break;
            };
            let confirmed = validate::run(spec.check, hay, s, e, opts)
                .map(|span| (span, pid))
                .or_else(|| self.retry_group(hay, s, pid, opts));
            match confirmed {
                Some(((fs, fe), fpid)) => {
                    let allowed = !inner.allow.is_empty()
                        && hay
                            .get(fs..fe)
                            .is_some_and(|v| inner.allow.contains(&v.to_ascii_lowercase()));
                    if !allowed {
                        if let Some(spec) = inner.specs.get(fpid) {
                            out.push(Finding {
                                detector: spec.detector.clone(),
                                start: fs,
                                end: fe,
                            });
                            opts.prev_end = fe;
                        }
                    }
                    at = fe.max(s + 1);
                }
                // Digit and upper-case patterns start at a word boundary, so
                // retrying one byte later is cheap and finds embedded values;
                // the others skip the rejected candidate (no quadratic rescans).
                None if spec.group == Group::Alone => at = e.max(s + 1),
                None => at = s + 1,
            }
        }
    }

    /// Tries the other patterns of the same group anchored at `s`.
    fn retry_group(
        &self,
        hay: &[u8],
        s: usize,
        failed: usize,
        opts: Opts,
    ) -> Option<((usize, usize), usize)> {
        let inner = &*self.inner;
        let group = inner.specs.get(failed)?.group;
        if group == Group::Alone {
            return None;
        }
        for (pid, spec) in inner.specs.iter().enumerate() {
            if pid == failed || spec.group != group {
                continue;
            }
            let single = inner.singles.get(pid)?;
            let input = Input::new(hay).range(s..).anchored(Anchored::Yes);
            if let Some(m) = single.search(&input) {
                if let Some(span) = validate::run(spec.check, hay, m.start(), m.end(), opts) {
                    return Some((span, pid));
                }
            }
        }
        None
    }

    /// Appends the replacement of `value` (found by `detector`) to `out`.
    fn render(&self, detector: &Detector, value: &[u8], out: &mut Vec<u8>) {
        let inner = &*self.inner;
        match (inner.mode, &inner.key) {
            (Mode::Mask, _) if !detector.is_secret() => mask(detector, value, out),
            (Mode::Pseudonymize, Some(key)) => {
                out.extend_from_slice(key.pseudonym(detector, value).as_bytes())
            }
            (Mode::Hash, Some(key)) => out.extend_from_slice(key.hash(detector, value).as_bytes()),
            _ => out.extend_from_slice(redact_token(detector).as_bytes()),
        }
    }

    /// Scrubs `hay` into `out` (appending) using `cache`; returns whether
    /// anything was replaced. The core of every other entry point.
    pub fn scrub_into_with(
        &self,
        cache: &mut ScrubCache,
        hay: &[u8],
        out: &mut Vec<u8>,
        report: &mut Report,
    ) -> bool {
        let mut findings = std::mem::take(&mut cache.findings);
        self.find_into(&mut cache.cache, hay, &mut findings);
        let mut last = 0;
        for f in &findings {
            out.extend_from_slice(hay.get(last..f.start).unwrap_or_default());
            self.render(
                &f.detector,
                hay.get(f.start..f.end).unwrap_or_default(),
                out,
            );
            report.add(&f.detector);
            last = f.end;
        }
        out.extend_from_slice(hay.get(last..).unwrap_or_default());
        let changed = !findings.is_empty();
        cache.findings = findings;
        changed
    }

    /// Scrubs a line (or any bytes); invalid UTF-8 passes through untouched.
    pub fn scrub_bytes<'a>(&self, hay: &'a [u8], report: &mut Report) -> Cow<'a, [u8]> {
        let mut out = Vec::new();
        if self.with_pooled_cache(|c| self.scrub_into_with(c, hay, &mut out, report)) {
            Cow::Owned(out)
        } else {
            Cow::Borrowed(hay)
        }
    }

    /// Scrubs a string. Valid UTF-8 in gives valid UTF-8 out: replacements
    /// are ASCII and always cover whole characters.
    pub fn scrub_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.scrub_str_report(text, &mut Report::default())
    }

    /// [`Scrubber::scrub_str`], counting findings into `report`.
    pub fn scrub_str_report<'a>(&self, text: &'a str, report: &mut Report) -> Cow<'a, str> {
        match self.scrub_bytes(text.as_bytes(), report) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(bytes) => Cow::Owned(
                String::from_utf8(bytes)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
        }
    }

    /// The canonical form used for pseudonyms, exposed for components that
    /// must agree with the scrubber (tests, the anonymiser).
    pub fn normalize(detector: &Detector, value: &[u8]) -> Vec<u8> {
        normalize(detector, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrub(s: &str) -> String {
        Scrubber::new_default().unwrap().scrub_str(s).into_owned()
    }

    #[test]
    fn is_send_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Scrubber>();
    }

    #[test]
    fn basic_redaction() {
        assert_eq!(
            scrub("mail john.doe+tag@example.com now"),
            "mail [EMAIL] now"
        );
        assert_eq!(scrub("nothing here"), "nothing here");
    }
}
