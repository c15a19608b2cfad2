//! The engine: one multi-pattern lazy DFA finds candidates, validators
//! confirm them, the allow-list lets some through, and the mode renders the
//! replacement.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use regex_automata::hybrid::dfa::{self as lazy, DFA};
use regex_automata::meta::{self, Regex};
use regex_automata::nfa::thompson;
use regex_automata::util::{start, syntax};
use regex_automata::{Anchored, Input, PatternID};

use crate::candidates::{self, Prefilter, PrefilterCache, Special};
use crate::config::{ScrubConfig, ValidatorName};
use crate::detector::{
    builtin_patterns, digit_run_match, dotted_quad_end, email_end, iban_end, quad_first, DigitRun,
    Group, PatternSpec, DIGIT_CHECKS, URL_TAIL,
};
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
        self.add_n(detector, 1);
    }

    fn add_n(&mut self, detector: &Detector, n: u64) {
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

/// Some of the table patterns: those that may start on a byte of number
/// (digit, `+`, `(`), or those that may start on another byte. Where only
/// table patterns may start, the byte there picks the family, and its
/// automaton gives the same leftmost-first match as one over all patterns
/// (a pattern that cannot start on that byte cannot match there). The
/// smaller automata have fewer states and byte classes, so far more of
/// their transitions stay in the L1 cache.
struct Family {
    dfa: DFA,
    /// Pattern index of `dfa` → index into `specs`.
    ids: Vec<usize>,
}

impl Family {
    /// The family of the patterns starting on `b`.
    fn index(b: u8) -> usize {
        usize::from(!(b.is_ascii_digit() || b == b'+' || b == b'('))
    }
}

struct Inner {
    /// Unanchored, for the reference search and as the fallback when the
    /// lazy DFA gives up.
    combined: Regex,
    /// The same patterns, searched anchored at candidate starts (also per
    /// pattern, for group retries).
    anchored: DFA,
    /// The table patterns (no specially anchored ones), split by first
    /// byte ([`Family`]): used where no special pattern may start.
    families: [Family; 2],
    prefilter: Prefilter,
    /// `[EMAIL]` etc. per pattern.
    tokens: Vec<String>,
    /// Per pattern: the bytes a match of it may start on (all of them for
    /// the specially anchored patterns). A group retry skips the patterns
    /// that cannot start on the byte at hand: their walk would die on the
    /// first byte, but only after the set-up every walk pays.
    first_bytes: Vec<[bool; 256]>,
    /// Each pattern alone: group retries where the lazy DFA gives up.
    singles: Vec<Regex>,
    /// The built-in IPv4 pattern's index, where only built-in patterns
    /// start on digits and the IPv4 pattern comes right after those that
    /// cannot match a dotted quad (see [`quad_first`]): then a dotted quad
    /// is matched without a walk.
    quad: Option<usize>,
    /// Where the digit family holds only built-in patterns (so only they
    /// start on digits), in the order of [`DIGIT_CHECKS`]: the mask of
    /// those present and the index into `specs` of each. Then a digit other
    /// than `0` starts no walk (see [`digit_run_match`]).
    digit_reads: Option<(u16, [usize; DIGIT_CHECKS.len()])>,
    /// The built-in e-mail pattern's index: where only the e-mail anchor
    /// marks a start (`PrefilterCache::email`), its match is read off the
    /// bytes (see [`email_end`]).
    email: Option<usize>,
    /// The built-in IBAN pattern's index, where only built-in patterns
    /// come before it: then an IBAN's match is read off the bytes where
    /// [`iban_end`] finds one (none of those before it can match there).
    iban: Option<usize>,
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

/// The leftmost-first match (end, pattern) of the lazy DFA anchored at `p`
/// (`mode`: any pattern or one): `DFA::try_search_fwd` without its
/// per-call set-up, since nearly all candidate starts die within a byte or
/// two. Matches are reported one byte late, so a match state seen on byte
/// `i` means a match ending at `i`.
fn anchored_at(
    dfa: &DFA,
    cache: &mut lazy::Cache,
    hay: &[u8],
    p: usize,
    mode: Anchored,
) -> Result<Option<(usize, usize)>, ()> {
    let behind = p.checked_sub(1).and_then(|i| hay.get(i)).copied();
    let config = start::Config::new().anchored(mode).look_behind(behind);
    let mut sid = dfa.start_state(cache, &config).map_err(drop)?;
    // The last match state and where it was seen; its pattern is looked up
    // once at the end (a lookup is slow, greedy walks see many). A cache
    // clear in between invalidates the state: then the caller falls back.
    let clears = cache.clear_count();
    let mut mat = None;
    let mut at = p;
    'walk: while let Some(&b) = hay.get(at) {
        // From a match state (greedy walks see many) the full step; from a
        // plain one the table lookup alone, in a tight loop for as long as
        // the states stay plain (most of a walk).
        let mut next = match sid.is_tagged() {
            true => dfa.next_state(cache, sid, b).map_err(drop)?,
            false => dfa.next_state_untagged(cache, sid, b),
        };
        while !next.is_tagged() {
            sid = next;
            at += 1;
            let Some(&b) = hay.get(at) else {
                break 'walk;
            };
            next = dfa.next_state_untagged(cache, sid, b);
        }
        sid = match next.is_unknown() {
            false => next,
            true => {
                let b = hay.get(at).copied().ok_or(())?;
                dfa.next_state(cache, sid, b).map_err(drop)?
            }
        };
        if sid.is_match() {
            mat = Some((at, sid));
        } else if sid.is_dead() {
            break;
        } else if sid.is_quit() {
            return Err(());
        }
        at += 1;
    }
    if at == hay.len() {
        sid = dfa.next_eoi_state(cache, sid).map_err(drop)?;
        if sid.is_match() {
            mat = Some((hay.len(), sid));
        }
    }
    match mat {
        None => Ok(None),
        Some(_) if cache.clear_count() != clears => Err(()),
        Some((end, sid)) => Ok(Some((end, dfa.match_pattern(cache, sid, 0).as_usize()))),
    }
}

/// The leftmost-first match (end, pattern) of the digit family anchored at
/// `hay[p]`, read off its run of digits instead of walked, or `None` where
/// the walk must decide (see [`digit_run_match`]). Only where the table
/// alone marks `p`, so no special pattern may match there.
fn digit_family_read(inner: &Inner, hay: &[u8], p: usize) -> Option<Option<(usize, usize)>> {
    let (mask, pids) = inner.digit_reads.as_ref()?;
    let m = digit_run_match(hay, p, *mask)?;
    Some(m.and_then(|(end, i)| Some((end, *pids.get(i)?))))
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

/// The digits in the run of number bytes (`[0-9 .\-/()+ABab]`, the bytes
/// of the digit-group patterns but the DNI's final letter, which follows
/// its digits) from `hay[s]`, counted up to [`validate::MIN_DIGITS_MAX`].
fn run_digits(hay: &[u8], s: usize) -> usize {
    let mut n = 0;
    for &b in hay.get(s..).unwrap_or_default() {
        match b {
            b'0'..=b'9' => n += 1,
            b' ' | b'.' | b'-' | b'/' | b'(' | b')' | b'+' | b'A' | b'B' | b'a' | b'b' => {}
            _ => break,
        }
        if n >= validate::MIN_DIGITS_MAX {
            break;
        }
    }
    n
}

/// How [`Scrubber::confirm`] finds the next match.
#[derive(Clone, Copy)]
enum Search {
    /// Anchored at the candidate starts of the prefilter (filled already).
    Candidates,
    /// The plain unanchored search: the reference for tests.
    Reference,
}

/// Reusable per-thread search state; `Scrubber::scrub_*` methods without a
/// cache argument take one from an internal pool.
pub struct ScrubCache {
    cache: meta::Cache,
    anchored: lazy::Cache,
    /// Per [`Family`].
    families: [lazy::Cache; 2],
    pre: PrefilterCache,
    /// The findings of the last call, in order.
    hits: Vec<Hit>,
    /// Findings per pattern id, not yet folded into a report (see
    /// [`Scrubber::flush_counts`]).
    counts: Vec<u64>,
}

/// A confirmed value as the search gives it: where, and the pattern id.
/// Plain numbers, so that a haystack's findings are collected without a
/// [`Detector`] clone each (a [`Finding`] is made only for
/// [`Scrubber::find`]).
#[derive(Clone, Copy, Debug)]
struct Hit {
    start: usize,
    end: usize,
    pid: usize,
}

impl ScrubCache {
    /// Whether the last haystack scrubbed holds `-----BEGIN `, if the
    /// prefilter's marks tell (see `PrefilterCache::pem_begin`).
    pub(crate) fn pem_begin(&self) -> Option<bool> {
        self.pre.pem_begin()
    }
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
            anchored: self.inner.anchored.create_cache(),
            families: self.inner.families.each_ref().map(|f| f.dfa.create_cache()),
            pre: self.inner.prefilter.cache(),
            hits: Vec::new(),
            counts: vec![0; self.inner.specs.len()],
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
            let mut hits = Vec::new();
            self.find_into(c, hay, &mut hits);
            self.findings(&hits)
        })
    }

    /// The [`Finding`]s of `hits`.
    fn findings(&self, hits: &[Hit]) -> Vec<Finding> {
        let specs = &self.inner.specs;
        let finding = |h: &Hit| {
            Some(Finding {
                detector: specs.get(h.pid)?.detector.clone(),
                start: h.start,
                end: h.end,
            })
        };
        hits.iter().filter_map(finding).collect()
    }

    /// [`Scrubber::find`] with the plain unanchored search over every byte
    /// instead of the candidate prefilter: the reference the fast path is
    /// tested against. Same results, slower.
    #[doc(hidden)]
    pub fn find_reference(&self, hay: &[u8]) -> Vec<Finding> {
        self.with_pooled_cache(|c| {
            let mut hits = Vec::new();
            self.confirm(c, hay, Search::Reference, &mut hits);
            self.findings(&hits)
        })
    }

    /// The leftmost-first match starting at or after `at`: the first
    /// candidate start with an anchored match.
    fn next_match(
        &self,
        cache: &mut ScrubCache,
        hay: &[u8],
        mut at: usize,
    ) -> Option<(usize, usize, usize)> {
        let inner = &*self.inner;
        loop {
            let (p, special) = candidates::next(&cache.pre.bits, &cache.pre.special, at)?;
            if !special && !inner.prefilter.table_start(&cache.pre, hay, p) {
                at = p + 1;
                continue;
            }
            let quad = match special {
                true => None,
                false => inner
                    .quad
                    .filter(|_| quad_first(hay, p))
                    .and_then(|pid| Some((dotted_quad_end(hay, p)?, pid))),
            };
            let read = match special || quad.is_some() {
                true => None,
                false => digit_family_read(inner, hay, p),
            };
            // An IBAN's match without a walk (where it has none, a later
            // pattern may match, so the walk decides).
            let iban = match special || quad.is_some() || read.is_some() {
                true => None,
                false => inner.iban.and_then(|pid| Some((iban_end(hay, p)?, pid))),
            };
            // Only the e-mail anchor marks `p`: only the e-mail pattern
            // may match there, and its match is read where it can be.
            let email = match special && candidates::is_set(&cache.pre.email, p) {
                true => inner.email.and_then(|pid| {
                    let at = cache.pre.next_at(p)?;
                    Some(email_end(hay, p, at)?.map(|end| (end, pid)))
                }),
                false => None,
            };
            let walk = match special {
                true if email.is_some() => Ok(email.flatten()),
                true => anchored_at(&inner.anchored, &mut cache.anchored, hay, p, Anchored::Yes),
                // A dotted quad: its match without a walk (when IPv4 does
                // not match, a later pattern may, so the walk decides).
                false if quad.is_some() => Ok(quad),
                // A run of digits read off the bytes, where that decides.
                false if read.is_some() => Ok(read.flatten()),
                false if iban.is_some() => Ok(iban),
                // No special pattern matches here (the special marks are a
                // superset), so the table patterns that may start on
                // `hay[p]` alone give the same leftmost-first match.
                false => {
                    let f = Family::index(hay.get(p).copied().unwrap_or(0));
                    match (inner.families.get(f), cache.families.get_mut(f)) {
                        (Some(family), Some(dfa_cache)) => {
                            anchored_at(&family.dfa, dfa_cache, hay, p, Anchored::Yes)
                                .map(|m| m.and_then(|(end, i)| Some((end, *family.ids.get(i)?))))
                        }
                        _ => Err(()),
                    }
                }
            };
            let found = match walk {
                Ok(m) => m.map(|(end, pid)| (p, end, pid)),
                // The lazy DFA gave up: same search, other engine.
                Err(()) => {
                    let input = Input::new(hay).range(p..).anchored(Anchored::Yes);
                    inner
                        .combined
                        .search_with(&mut cache.cache, &input)
                        .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
                }
            };
            if found.is_some() {
                return found;
            }
            at = p + 1;
        }
    }

    /// Confirmed findings of `hay` into `out`.
    fn find_into(&self, cache: &mut ScrubCache, hay: &[u8], out: &mut Vec<Hit>) {
        self.inner.prefilter.fill(&mut cache.pre, hay);
        self.confirm(cache, hay, Search::Candidates, out);
    }

    /// Runs validators, group retries and the allow-list on the matches
    /// `search` finds.
    fn confirm(&self, cache: &mut ScrubCache, hay: &[u8], search: Search, out: &mut Vec<Hit>) {
        out.clear();
        let inner = &*self.inner;
        let mut at = 0;
        let mut opts = inner.opts;
        while at < hay.len() {
            let next = match search {
                Search::Candidates => self.next_match(cache, hay, at),
                Search::Reference => {
                    let input = Input::new(hay).range(at..);
                    inner
                        .combined
                        .search_with(&mut cache.cache, &input)
                        .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
                }
            };
            let Some((s, e, pid)) = next else {
                break;
            };
            let Some(spec) = inner.specs.get(pid) else {
                break;
            };
            let confirmed = validate::run(spec.check, hay, s, e, opts)
                .map(|span| (span, pid))
                .or_else(|| self.retry_group(cache, hay, s, pid, opts));
            match confirmed {
                Some(((fs, fe), fpid)) => {
                    let allowed = !inner.allow.is_empty()
                        && hay
                            .get(fs..fe)
                            .is_some_and(|v| inner.allow.contains(&v.to_ascii_lowercase()));
                    if !allowed && fpid < inner.specs.len() {
                        out.push(Hit {
                            start: fs,
                            end: fe,
                            pid: fpid,
                        });
                        opts.prev_end = fe;
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
        cache: &mut ScrubCache,
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
        // A digit-group pattern's validator needs some number of digits,
        // and all the digits of its match lie in the run of number bytes
        // from `s`: where that run has too few, the walk is skipped (its
        // match would be rejected, and the next pattern tried).
        let digits = match group {
            Group::Digits => run_digits(hay, s),
            _ => usize::MAX,
        };
        // The same patterns, by where their leading run of digits may end
        // (when `s` is a digit; a `+` or `(` start is not judged).
        let run = hay.get(s..).unwrap_or_default();
        let run = match group == Group::Digits && run.first().is_some_and(u8::is_ascii_digit) {
            true => Some(DigitRun::new(run)),
            false => None,
        };
        for (pid, spec) in inner.specs.iter().enumerate() {
            let may_start = |b: &u8| {
                let first = inner.first_bytes.get(pid);
                first.and_then(|f| f.get(usize::from(*b))) != Some(&false)
            };
            if pid == failed
                || spec.group != group
                || digits < validate::min_digits(spec.check)
                || run.as_ref().is_some_and(|r| !r.fits(spec.check))
                || !hay.get(s).is_some_and(may_start)
            {
                continue;
            }
            if let Some(e) = self.match_one(cache, hay, s, pid) {
                if let Some(span) = validate::run(spec.check, hay, s, e, opts) {
                    return Some((span, pid));
                }
            }
        }
        None
    }

    /// The end of pattern `pid`'s leftmost-first match anchored at `s`.
    fn match_one(&self, cache: &mut ScrubCache, hay: &[u8], s: usize, pid: usize) -> Option<usize> {
        let inner = &*self.inner;
        let mode = Anchored::Pattern(PatternID::new(pid).ok()?);
        match anchored_at(&inner.anchored, &mut cache.anchored, hay, s, mode) {
            Ok(m) => m.map(|(end, _)| end),
            // The lazy DFA gave up: the pattern's own regex.
            Err(()) => {
                let input = Input::new(hay).range(s..).anchored(Anchored::Yes);
                inner.singles.get(pid)?.search(&input).map(|m| m.end())
            }
        }
    }

    /// Whether every finding becomes its fixed `[NAME]` token.
    fn redacts_only(&self) -> bool {
        let inner = &*self.inner;
        !matches!(
            (inner.mode, &inner.key),
            (Mode::Mask, _) | (Mode::Pseudonymize | Mode::Hash, Some(_))
        )
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
        let changed = self.scrub_into_counting(cache, hay, out);
        self.flush_counts(cache, report);
        changed
    }

    /// [`Scrubber::scrub_into_with`] without the report: the findings are
    /// counted per pattern in `cache` until [`Scrubber::flush_counts`]. A
    /// stream scrubs pieces of about 8 KiB, and adding a dozen counts to
    /// the report's map by name after each cost more than some detectors.
    pub(crate) fn scrub_into_counting(
        &self,
        cache: &mut ScrubCache,
        hay: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        // Kept in the cache, so that it is not grown again on every call.
        let mut hits = std::mem::take(&mut cache.hits);
        self.find_into(cache, hay, &mut hits);
        cache.counts.resize(self.inner.specs.len(), 0);
        let redact = self.redacts_only();
        let mut last = 0;
        for h in &hits {
            if let Some(c) = cache.counts.get_mut(h.pid) {
                *c += 1;
            }
            out.extend_from_slice(hay.get(last..h.start).unwrap_or_default());
            let value = hay.get(h.start..h.end).unwrap_or_default();
            match (redact, self.inner.tokens.get(h.pid)) {
                (true, Some(token)) => out.extend_from_slice(token.as_bytes()),
                _ => {
                    if let Some(spec) = self.inner.specs.get(h.pid) {
                        self.render(&spec.detector, value, out);
                    }
                }
            }
            last = h.end;
        }
        out.extend_from_slice(hay.get(last..).unwrap_or_default());
        let changed = !hits.is_empty();
        cache.hits = hits;
        changed
    }

    /// Whether [`ScrubCache::pem_begin`] tells, after
    /// [`Scrubber::scrub_into_counting`], if the haystack held
    /// `-----BEGIN ` (see `PrefilterCache::pem_begin`).
    pub(crate) fn pem_begin_from_marks(&self) -> bool {
        self.inner.prefilter.pem_begin_from_marks()
    }

    /// Drops the counts [`Scrubber::scrub_into_counting`] left in `cache`
    /// (its output was thrown away).
    pub(crate) fn discard_counts(&self, cache: &mut ScrubCache) {
        cache.counts.iter_mut().for_each(|c| *c = 0);
    }

    /// Adds the counts [`Scrubber::scrub_into_counting`] left in `cache` to
    /// `report`, and clears them.
    pub(crate) fn flush_counts(&self, cache: &mut ScrubCache, report: &mut Report) {
        for (pid, c) in cache.counts.iter_mut().enumerate() {
            if *c > 0 {
                if let Some(spec) = self.inner.specs.get(pid) {
                    report.add_n(&spec.detector, *c);
                }
                *c = 0;
            }
        }
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
    fn pattern_walks_agree_with_single_regexes() {
        let s = Scrubber::new_default().unwrap();
        let mut cache = s.cache();
        let texts = [
            "+49 151 57600669, 0049 (0)30 1234567",
            "card 4111 1111 1111 1111 or 4111-1111-1111-1111",
            "(206) 230-9796 / 06-64087916 / 020 7946 0958",
            "ssn 536-90-4399 bsn 111222333 nir 2 55 08 14 168 025 38",
            "ip 203.0.113.9 dni 12345678Z nie X1234567L taxid 86095742719",
            "1699079125023 1.2.3.4.5 GB82WEST12345698765432 AB123456C",
        ];
        for text in texts {
            let hay = text.as_bytes();
            for at in 0..hay.len() {
                for (pid, single) in s.inner.singles.iter().enumerate() {
                    let input = Input::new(hay).range(at..).anchored(Anchored::Yes);
                    let expect = single.search(&input).map(|m| m.end());
                    assert_eq!(
                        s.match_one(&mut cache, hay, at, pid),
                        expect,
                        "{text} {at} {pid}"
                    );
                }
            }
        }
    }

    /// Every digit-group finding in these texts has at least the digits
    /// [`validate::min_digits`] asks for in its run, and every match at a
    /// digit fits [`DigitRun::fits`] (the bounds of the retries).
    #[test]
    fn digit_bounds_hold() {
        let s = Scrubber::new_default().unwrap();
        let mut cache = s.cache();
        let texts = [
            "+49 151 57600669, 0049 (0)30 1234567 +31 6 1234 5678",
            "card 4111 1111 1111 1111 or 4111-1111-1111-1111 378282246310005",
            "(206) 230-9796 / 06-64087916 / 020 7946 0958 212-555-0100",
            "ssn 536-90-4399 bsn 111222333 1112.22.333 nir 2 55 08 14 168 025 38 2550814168025",
            "ip 203.0.113.9 dni 12345678Z 12345678-Z taxid 86095742719 860 957 427 19",
            "nir 1 84 12 2A 123 456 78 1841276451089 27 0.0.0.0 255.255.255.255",
        ];
        for text in texts {
            let hay = text.as_bytes();
            for at in 0..hay.len() {
                for (pid, spec) in s.inner.specs.iter().enumerate() {
                    if spec.group != Group::Digits {
                        continue;
                    }
                    let Some(e) = s.match_one(&mut cache, hay, at, pid) else {
                        continue;
                    };
                    let digit = hay[at].is_ascii_digit();
                    assert!(
                        !digit || DigitRun::new(&hay[at..]).fits(spec.check),
                        "{text} {at} {pid}"
                    );
                    if validate::run(spec.check, hay, at, e, Opts::default()).is_some() {
                        assert!(
                            run_digits(hay, at) >= validate::min_digits(spec.check),
                            "{text} {at} {pid}"
                        );
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// Wherever a digit-group pattern matches at a digit, its leading
        /// digit run fits [`DigitRun::fits`].
        #[test]
        fn digit_runs_fit_the_patterns(
            t in proptest::collection::vec(
                proptest::sample::select(b"00123456789 -./()+AZab2001234567891&".as_slice()),
                0..28,
            )
        ) {
            static SCRUBBER: std::sync::OnceLock<Scrubber> = std::sync::OnceLock::new();
            let s = SCRUBBER.get_or_init(|| Scrubber::new_default().unwrap());
            let mut cache = s.cache();
            for at in 0..t.len() {
                if !t[at].is_ascii_digit() {
                    continue;
                }
                for (pid, spec) in s.inner.specs.iter().enumerate() {
                    if spec.group == Group::Digits && s.match_one(&mut cache, &t, at, pid).is_some() {
                        let run = DigitRun::new(&t[at..]);
                        proptest::prop_assert!(run.fits(spec.check), "{:?} {at} {pid}", String::from_utf8_lossy(&t));
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// Where [`quad_first`] holds, [`dotted_quad_end`] is the IPv4
        /// pattern's anchored match, and no pattern before it matches.
        #[test]
        fn dotted_quads_without_walks(
            t in proptest::collection::vec(
                proptest::sample::select(b"0123456789....a_ -:".as_slice()),
                0..24,
            )
        ) {
            static SCRUBBER: std::sync::OnceLock<Scrubber> = std::sync::OnceLock::new();
            let s = SCRUBBER.get_or_init(|| Scrubber::new_default().unwrap());
            let ipv4 = s.inner.quad.unwrap();
            let mut cache = s.cache();
            for at in 0..t.len() {
                if !quad_first(&t, at) {
                    continue;
                }
                for pid in 0..ipv4 {
                    proptest::prop_assert_eq!(s.match_one(&mut cache, &t, at, pid), None);
                }
                let input = Input::new(&t).range(at..).anchored(Anchored::Yes);
                let expect = s.inner.singles[ipv4].search(&input).map(|m| m.end());
                proptest::prop_assert_eq!(dotted_quad_end(&t, at), expect);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// The prefilter tells whether a haystack holds `-----BEGIN `
        /// exactly as a search for it does, wherever it lies (the stream
        /// relies on it instead of searching each block).
        #[test]
        fn pem_begin_from_marks(
            t in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Strategy::prop_map(
                        proptest::sample::select(b"-BEGIN xa0_:@".as_slice()),
                        |b| vec![b],
                    ),
                    proptest::sample::select(vec![
                        b"-----BEGIN ".to_vec(),
                        b"----BEGIN ".to_vec(),
                        b"-----BEGIN".to_vec(),
                        b"-----".to_vec(),
                    ]),
                ],
                0..24,
            ),
            pad in 0usize..70,
            before in proptest::sample::select(b"a -0\n\"".as_slice()),
        ) {
            static SCRUBBER: std::sync::OnceLock<Scrubber> = std::sync::OnceLock::new();
            let s = SCRUBBER.get_or_init(|| Scrubber::new_default().unwrap());
            proptest::prop_assert!(s.pem_begin_from_marks());
            let mut hay = vec![b'x'; pad];
            hay.push(before);
            hay.extend(t.concat());
            let mut cache = s.cache();
            s.inner.prefilter.fill(&mut cache.pre, &hay);
            let expect = memchr::memmem::find(&hay, b"-----BEGIN ").is_some();
            proptest::prop_assert_eq!(
                cache.pem_begin(),
                Some(expect),
                "{:?}",
                String::from_utf8_lossy(&hay)
            );
        }

        /// Where [`digit_run_match`] decides, it gives the digit family's
        /// walk, with all patterns and with some skipped.
        #[test]
        fn digit_runs_without_walks(
            t in proptest::collection::vec(
                proptest::sample::select(b"0123456789123456789 -./()+ABabZx_:".as_slice()),
                0..32,
            ),
            shaped in "[ x(]?[1-9][0-9]{0,21}[ ./()ABabZx_:,-]{0,2}[0-9A-Z(]{0,3}",
            grouped in proptest::prop_oneof![
                "[ x]?[1-9][0-9]{0,4}([ ./-][0-9]{1,4}){0,6}[ ./()ABabZx_:,-]{0,2}[0-9A-Z(]{0,3}",
                "[ x]?[0-9]{3}[ .-][0-9]{2,3}[ .-][0-9]{3,5}[ ./aZ-]{0,2}[0-9]{0,4}",
                "[ x]?[0-9]{4}[ -][0-9]{3,4}[ -][0-9]{4}[ -][0-9]{4}[ ./aZ-]{0,2}[0-9]{0,4}",
                "[ x]?[0-3] [0-9]{2} [0-2][0-9] [0-9]{2} [0-9]{3} [0-9]{3} [0-9]{2}[ ./aZ-]{0,2}[0-9]{0,4}",
                "[ x]?[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}[ T./-]?[0-9]{0,3}[: -]?[0-9]{0,4}",
            ],
        ) {
            static SCRUBBERS: std::sync::OnceLock<[Scrubber; 2]> = std::sync::OnceLock::new();
            let scrubbers = SCRUBBERS.get_or_init(|| {
                [
                    Scrubber::new_default().unwrap(),
                    Scrubber::builder().skip(["es_dni", "card", "nl_bsn"]).build().unwrap(),
                ]
            });
            for s in scrubbers {
                let family = &s.inner.families[0];
                let mut cache = s.cache();
                for hay in [t.as_slice(), shaped.as_bytes(), grouped.as_bytes()] {
                    for at in 0..hay.len() {
                        let Some(read) = digit_family_read(&s.inner, hay, at) else {
                            continue;
                        };
                        let walk = anchored_at(&family.dfa, &mut cache.families[0], hay, at, Anchored::Yes)
                            .unwrap()
                            .map(|(e, i)| (e, family.ids[i]));
                        proptest::prop_assert_eq!(read, walk, "{:?} {}", String::from_utf8_lossy(hay), at);
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// Where only the e-mail anchor marks a start, no other pattern
        /// matches there, and [`email_end`] gives the e-mail pattern's
        /// anchored match wherever it decides (for any local-part run
        /// that ends at `@`, as the anchor marks them).
        #[test]
        fn emails_without_walks(
            t in proptest::collection::vec(
                proptest::sample::select(b"ab.Z9-_%+@@..-\"\xc3\xa9\xff :x".as_slice()),
                0..40,
            ),
            shaped in "[a-z0-9._%+\"-]{0,6}@([a-z0-9\u{e9}-]{0,4}\\.){0,4}[a-z0-9\u{e9}-]{0,4}[ .,@:-]?[a-z]{0,2}",
        ) {
            static SCRUBBER: std::sync::OnceLock<Scrubber> = std::sync::OnceLock::new();
            let s = SCRUBBER.get_or_init(|| Scrubber::new_default().unwrap());
            let email = s.inner.email.unwrap();
            let mut cache = s.cache();
            for hay in [t.as_slice(), shaped.as_bytes()] {
                s.inner.prefilter.fill(&mut cache.pre, hay);
                for p in 0..hay.len() {
                    let expect = s.match_one(&mut cache, hay, p, email);
                    if candidates::is_set(&cache.pre.email, p) {
                        for pid in (0..s.inner.specs.len()).filter(|&pid| pid != email) {
                            proptest::prop_assert_eq!(s.match_one(&mut cache, hay, p, pid), None);
                        }
                        let at = cache.pre.next_at(p).unwrap();
                        if let Some(read) = email_end(hay, p, at) {
                            proptest::prop_assert_eq!(read, expect, "{:?} {}", String::from_utf8_lossy(hay), p);
                        }
                    }
                    let local = hay[p..].iter().position(|&b| {
                        !(b.is_ascii_alphanumeric() || b".-_%+".contains(&b) || b >= 0x80)
                    });
                    let Some(at) = local.map(|n| p + n).filter(|&at| hay[at] == b'@') else {
                        continue;
                    };
                    if let Some(read) = email_end(hay, p, at) {
                        proptest::prop_assert_eq!(read, expect, "{:?} {}", String::from_utf8_lossy(hay), p);
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// Where [`iban_end`] finds a match, it is the walk's over the
        /// family of patterns that start on other bytes than digits.
        #[test]
        fn ibans_without_walks(
            t in proptest::collection::vec(
                proptest::sample::select(b"ABGLNZ0123456789  _-a".as_slice()),
                0..48,
            ),
            shaped in "[ x_]?[A-Z]{2}[0-9]{2}( ?[A-Z0-9]{1,5}){0,9}[ _.a-]?[A-Z0-9]{0,3}",
        ) {
            static SCRUBBERS: std::sync::OnceLock<[Scrubber; 2]> = std::sync::OnceLock::new();
            let scrubbers = SCRUBBERS.get_or_init(|| {
                [
                    Scrubber::new_default().unwrap(),
                    Scrubber::builder().skip(["uk_nino", "aws_key"]).build().unwrap(),
                ]
            });
            for s in scrubbers {
                let family = &s.inner.families[1];
                let iban = s.inner.iban.unwrap();
                let mut cache = s.cache();
                for hay in [t.as_slice(), shaped.as_bytes()] {
                    for at in 0..hay.len() {
                        let Some(end) = iban_end(hay, at) else {
                            continue;
                        };
                        let walk = anchored_at(&family.dfa, &mut cache.families[1], hay, at, Anchored::Yes)
                            .unwrap()
                            .map(|(e, i)| (e, family.ids[i]));
                        proptest::prop_assert_eq!(Some((end, iban)), walk, "{:?} {}", String::from_utf8_lossy(hay), at);
                    }
                }
            }
        }
    }

    /// The common runs are read, not walked.
    #[test]
    fn digit_runs_are_read() {
        let s = Scrubber::new_default().unwrap();
        let pid = |check| s.inner.specs.iter().position(|c| c.check == check);
        for (text, expect) in [
            ("4111111111111111 ", Some((16, pid(Check::Card)))),
            ("1699079125023\",", Some((13, pid(Check::Card)))),
            ("111222333.", Some((9, pid(Check::NlBsn)))),
            ("86095742719 ", Some((11, pid(Check::DeTaxid)))),
            ("255081416802538&", Some((15, pid(Check::FrNir)))),
            ("12345678Z.", Some((9, pid(Check::EsDni)))),
            ("12345678-Z ", Some((10, pid(Check::EsDni)))),
            ("4316602763 called", None),
            ("93424 \"-\"", None),
            // Common layouts are read too.
            ("536-90-4399 ", Some((11, pid(Check::UsSsn)))),
            ("536 90 4399,", Some((11, pid(Check::UsSsn)))),
            ("4111 1111 1111 1111 ok", Some((19, pid(Check::Card)))),
            ("4111-1111-1111-1111.", Some((19, pid(Check::Card)))),
            ("206-790-0022\"", Some((12, pid(Check::PhoneNanp)))),
            ("2 55 08 14 168 025 38&", Some((21, pid(Check::FrNir)))),
            ("123-456-7890 ", None),
            ("2026-01-17 10:11:36", None),
            ("2026-01-17\"", None),
        ] {
            let read = digit_family_read(&s.inner, text.as_bytes(), 0);
            let expect = expect.map(|(e, pid)| (e, pid.unwrap()));
            assert_eq!(read, Some(expect), "{text}");
        }
        // Other groups are walked.
        for text in [
            "4111 1111 1111 1111 2",
            "2026-01-17 1234 5678",
            "0612345678",
            "536-90-4399a",
        ] {
            assert_eq!(
                digit_family_read(&s.inner, text.as_bytes(), 0),
                None,
                "{text}"
            );
        }
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
