//! The engine: one multi-pattern lazy DFA finds candidates, validators
//! confirm them, the allow-list lets some through, and the mode renders the
//! replacement.
//!
//! Layout: the search and replacement (the hot path) stay here in one
//! module, so that inlining across them is the compiler's as before;
//! `build` compiles a [`ScrubberBuilder`] into a [`Scrubber`]; `report`
//! holds [`Finding`] and [`Report`].

mod build;
mod report;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use regex_automata::hybrid::dfa::{self as lazy, DFA};
use regex_automata::meta::{self, Regex};
use regex_automata::util::start;
use regex_automata::{Anchored, Input, PatternID};

use crate::candidates::{self, Prefilter, PrefilterCache};
use crate::detector::{
    digit_run_match, dotted_quad_end, email_end, iban_end, quad_first, DigitRun, Group,
    DIGIT_CHECKS,
};
use crate::replace::{mask, normalize, redact_token};
use crate::validate::{self, Check, Opts};
use crate::{Detector, Mode, ScrubError, ScrubKey};

pub use build::{CustomDetector, ScrubberBuilder};
pub use report::{Finding, Report};

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
