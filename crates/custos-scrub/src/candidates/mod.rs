//! Candidate start positions: a cheap pass over the haystack that marks
//! every byte where some pattern *could* start a match, so the combined
//! automaton only runs anchored at those positions instead of over every
//! byte (and without the reverse search an unanchored search needs to find
//! where a match starts).
//!
//! Correctness rests on one property: the marked set is a superset of the
//! positions where any active pattern can match. Then the first marked
//! position `p >= at` with an anchored match is exactly where the unanchored
//! leftmost-first search from `at` would report its match, with the same
//! end and pattern (same automaton, same look-behind context).
//!
//! - Most patterns (digits, upper-case ids, `eyJ`, `Bearer`, PEM, custom
//!   ones) are covered mechanically: the anchored lazy DFA over them tells,
//!   per look-behind class of the previous byte, which pairs of first bytes
//!   do not lead to the dead state. That gives two small tables. They are
//!   applied in steps: a bulk pass over the block looks every byte up
//!   once in a 256-entry table of `K_*` bits derived from them, as bit
//!   planes (see [`bulk`]), and marks, with 64-bit logic on the planes, the
//!   bytes that may start a pattern after the byte before (a word byte or
//!   not) and are not followed by a lower-case letter or digit no such
//!   pattern continues with; the pair test then runs on each mark but
//!   digits ([`Prefilter::mark_table`]); the digit-run and upper-case tests
//!   (and the pair test of digits) run only on the marks the search reaches
//!   ([`Prefilter::table_start`]), so marks inside a value already found
//!   cost nothing more.
//! - Patterns that can start on almost any byte are anchored on a byte they
//!   must contain, close to or after their start:
//!   e-mail on `@` (its local part before it, only if a domain follows),
//!   IPv6 on `:` (at most four hex digits before the first colon, or `::`),
//!   `user:password@` URLs on `://` (the scheme before it, only if the rest
//!   follows), the AWS secret key name on `aws` (any case). The bulk pass
//!   gives the `@`, `:` and `w`/`W` bytes as planes too.
//!
//! - Two cuts keep most log numbers out of the automaton: a table mark on
//!   a digit, `+` or `(` is dropped when the run of number bytes from it
//!   holds fewer than 9 digits (8 after `+` or for a DNI shape) and is no
//!   dotted quad (no built-in
//!   digit-group validator accepts that, and a rejected digit-group match
//!   only moves the search one byte on; see [`digits_may_match`]: the bulk
//!   pass drops digits whose run is shorter than a dotted quad, the exact
//!   test counts digits on the planes); and a colon anchors IPv6
//!   only if its run of `[0-9A-Fa-f:.]` holds `::` or seven colons (see
//!   [`ipv6_run`]).
//! - Table and special marks are kept apart: where only the table marks a
//!   start, no special pattern can match, so a smaller automaton over the
//!   table patterns alone gives the same match (one over those that may
//!   start on a digit, `+` or `(`, or one over the others, by the byte
//!   there: see `scrubber::Family`).
//!
//! The test `tests/it/equivalence.rs` compares this path with the plain
//! unanchored search on random input.
//!
//! Layout: the marking and its tests on the bytes (the hot path) stay here
//! in one module, so that inlining across them is the compiler's as
//! before; `build` derives the tables from the automaton once per
//! scrubber.

mod build;

use regex_automata::hybrid::dfa::{Cache as DfaCache, DFA};
use regex_automata::util::start;
use regex_automata::{Anchored, PatternID};

use crate::bulk::{self, Lut, Planes, PLANES, P_AT, P_COLON, P_W};

pub(crate) use build::first_bytes;

/// Bits of [`BYTE_CLASSES`]: e-mail local part, …
const B_LOCAL: u8 = 1;
/// … quoted local part, …
const B_QUOTED_LOCAL: u8 = 2;
/// … IPv6 address, …
const B_IPV6: u8 = 4;
/// … URL scheme.
const B_SCHEME: u8 = 8;

/// The byte classes the scans around `@`, `:` and `://` test, as a table:
/// they test every byte of a run, and a lookup does not mispredict.
#[allow(clippy::indexing_slicing)] // Evaluated at compile time: a bad index fails the build.
const BYTE_CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let local =
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-') || b >= 0x80;
        let ipv6 = b.is_ascii_hexdigit() || b == b':' || b == b'.';
        let scheme = b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-');
        table[i] = (local as u8 * B_LOCAL)
            | ((local || b == b' ') as u8 * B_QUOTED_LOCAL)
            | (ipv6 as u8 * B_IPV6)
            | (scheme as u8 * B_SCHEME);
        i += 1;
    }
    table
};

fn byte_class(b: u8, class: u8) -> bool {
    BYTE_CLASSES
        .get(usize::from(b))
        .is_some_and(|c| c & class != 0)
}

/// Byte classes of the anchored e-mail local part (`[A-Za-z0-9._%+\-\x80-\xFF]`).
fn is_local(b: u8) -> bool {
    byte_class(b, B_LOCAL)
}

/// Quoted local part characters (`[A-Za-z0-9 ._%+\-\x80-\xFF]`).
fn is_quoted_local(b: u8) -> bool {
    byte_class(b, B_QUOTED_LOCAL)
}

/// Bytes an IPv6 match consists of (`[0-9A-Fa-f:.]`).
fn is_ipv6(b: u8) -> bool {
    byte_class(b, B_IPV6)
}

/// The run of [`is_ipv6`] bytes around the colon at `c` (start, end), and
/// whether an IPv6 pattern may match inside it: every match is such a run
/// piece and holds `::` (compressed form) or seven colons (full form).
/// Most colons in logs (times, `key:value`) fail this, and then none of
/// the hex digits before them needs an anchored search.
///
/// Where no address can have its first colon at `c` (see
/// [`may_begin_address`]), the run is not scanned: `(c, c + 1, false)`, as
/// for a lone colon. Then the hex digits before `c` are not marked even if
/// a later colon's run test holds, which is right: only the hex digits
/// before an address's first colon (or its `::`) start it.
fn ipv6_run(hay: &[u8], planes: &[Planes], c: usize) -> (usize, usize, bool) {
    // A lone colon (`"key":"value"`): no scans.
    let around = |i: Option<usize>| i.and_then(|i| hay.get(i)).is_some_and(|&b| is_ipv6(b));
    if !around(c.checked_sub(1)) && !around(c.checked_add(1)) || !may_begin_address(planes, c) {
        return (c, c + 1, false);
    }
    let before = hay.get(..c).unwrap_or_default();
    let start = before
        .iter()
        .rposition(|&b| !is_ipv6(b))
        .map_or(0, |i| i + 1);
    let after = hay.get(c..).unwrap_or_default();
    let end = c + after
        .iter()
        .position(|&b| !is_ipv6(b))
        .unwrap_or(after.len());
    let run = hay.get(start..end).unwrap_or_default();
    let colons = run.iter().filter(|&&b| b == b':').count();
    // Runs are short: a plain scan beats setting up a substring search.
    let ok = colons >= 7 || run.windows(2).any(|w| w == b"::");
    (start, end, ok)
}

/// Whether an IPv6 address may have its first colon at `c`, read off the
/// colon plane: its `::` then starts within 31 bytes of `c` (the
/// compressed form has at most six groups of up to four hex digits before
/// it), or its seven colons lie within 31 bytes from `c` (the full form).
/// Times (`12:34:56`) have neither, so their runs are not scanned.
fn may_begin_address(planes: &[Planes], c: usize) -> bool {
    let word = |w: usize| {
        planes
            .get(w)
            .map_or(0, |p| p.get(P_COLON).copied().unwrap_or(0))
    };
    let (w, off) = (c / 64, (c % 64) as u32);
    let next = word(w + 1).checked_shl(64 - off).unwrap_or(0);
    // The colons of `c .. c + 32`, `c` at bit 0.
    let colons = (word(w) >> off | next) & u64::from(u32::MAX);
    colons & colons >> 1 != 0 || colons.count_ones() >= 7
}

/// URL scheme characters (`[A-Za-z0-9+.\-]`).
fn is_scheme(b: u8) -> bool {
    byte_class(b, B_SCHEME)
}

/// Which of the specially anchored patterns are active.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Special {
    pub(crate) email: bool,
    pub(crate) ipv6: bool,
    pub(crate) url: bool,
    pub(crate) aws_secret: bool,
}

/// Pattern ids in the gate DFA.
const GATE_URL: usize = 0;

/// Most distinct look-behind classes the table keeps (the lazy DFA has at
/// most six kinds of start state); more fall back to "every byte".
const CLASSES: usize = 8;

/// The prefilter. Built once per scrubber.
#[derive(Debug)]
pub(crate) struct Prefilter {
    /// `first[class][byte]`: 0 if no table pattern starts with `byte` after
    /// a byte of look-behind `class`, else an index into `second`.
    first: [[u8; 256]; CLASSES],
    /// `second[k * 256 + b]`: 1 if byte `b` may follow (row 0: none, 1:
    /// all). Fixed size so that a `u8` pair index needs no bounds check;
    /// only the rows in use are ever touched.
    second: Box<[u8; 65536]>,
    /// Whether the end of input may follow, per `second` row.
    second_eoi: Vec<bool>,
    /// Per byte: the look-behind class it gives the next byte.
    info: [u8; 256],
    /// Per byte value: its `K_*` bits.
    lut: Lut,
    /// Whether [`digits_may_match`] may drop candidates: no custom pattern
    /// starts on a digit, `+` or `(`.
    digit_shortcut: bool,
    /// Whether [`upper_may_match`] may drop candidates: no custom pattern
    /// starts on an upper-case letter.
    upper_shortcut: bool,
    /// Whether [`lower_may_match`] may drop candidates: no custom pattern
    /// starts on a lower-case letter.
    lower_shortcut: bool,
    /// Whether every `-` that another `-` follows is a mark of the plane
    /// logic and passes the pair test (some table pattern may start with
    /// `--` after every class of byte), so that [`Prefilter::mark_table`]
    /// sees every [`PEM_BEGIN`] (see [`PrefilterCache::pem_begin`]).
    dash_marks: bool,
    /// The class at the start of the haystack.
    behind_text: u8,
    special: Special,
    /// Anchored lazy DFA with the URL tail (one start state per pattern).
    gates: DFA,
}

/// Per-thread state of the prefilter.
#[derive(Debug)]
pub(crate) struct PrefilterCache {
    gates: DfaCache,
    /// One bit per haystack byte: a possible start of a table pattern
    /// (a superset; [`Prefilter::table_start`] decides).
    pub(crate) bits: Vec<u64>,
    /// The bit planes of the haystack's `K_*` bits and anchor bytes (see
    /// [`bulk`]).
    planes: Vec<Planes>,
    /// One bit per haystack byte: a candidate start of a specially
    /// anchored pattern (those may also match here, and win by priority).
    pub(crate) special: Vec<u64>,
    /// One bit per haystack byte: a candidate start that only the e-mail
    /// anchor marks (no other special anchor, no table mark), so that
    /// only the e-mail pattern may match there (see
    /// `detector::email_end`).
    pub(crate) email: Vec<u64>,
    /// Whether the last haystack holds [`PEM_BEGIN`], if the marks tell
    /// (see [`PrefilterCache::pem_begin`]).
    pem_begin: Option<bool>,
}

/// The opening of a PEM block, which a stream looks for in each block of
/// lines before it scrubs them as plain text.
pub(crate) const PEM_BEGIN: &[u8] = b"-----BEGIN ";

impl PrefilterCache {
    /// Whether the haystack of the last [`Prefilter::fill`] holds
    /// [`PEM_BEGIN`], or `None` where the marks do not tell (no table
    /// pattern starts on `-` after some class of byte: then a `-` may go
    /// unmarked). Read off the marks, where the pair test looks at each
    /// anyway: a stream then needs no search of its own for it
    /// (`memmem` over every block cost about 0.5 instructions per byte).
    pub(crate) fn pem_begin(&self) -> Option<bool> {
        self.pem_begin
    }

    /// The first `@` at or after `p` in the haystack of the last
    /// [`Prefilter::fill`], off the `@` plane. For a start in
    /// [`PrefilterCache::email`] but a `"`, the `@` the e-mail anchor
    /// marked it from: the bytes from it up to that `@` are local-part
    /// bytes, which hold no `@`.
    pub(crate) fn next_at(&self, p: usize) -> Option<usize> {
        let mut w = p / 64;
        let mut bits = self.planes.get(w)?.get(P_AT)? & u64::MAX << (p % 64);
        while bits == 0 {
            w += 1;
            bits = *self.planes.get(w)?.get(P_AT)?;
        }
        Some(w * 64 + bits.trailing_zeros() as usize)
    }
}

impl Prefilter {
    pub(crate) fn cache(&self) -> PrefilterCache {
        PrefilterCache {
            gates: self.gates.create_cache(),
            bits: Vec::new(),
            planes: Vec::new(),
            special: Vec::new(),
            email: Vec::new(),
            pem_begin: None,
        }
    }

    /// Whether no custom pattern may start on a digit, `+` or `(`: then
    /// only the built-in digit-group patterns start there.
    pub(crate) fn digit_shortcut(&self) -> bool {
        self.digit_shortcut
    }

    /// Whether [`PrefilterCache::pem_begin`] tells after each
    /// [`Prefilter::fill`].
    pub(crate) fn pem_begin_from_marks(&self) -> bool {
        self.dash_marks
    }

    /// Whether gate pattern `pid` matches anchored at `at` (true when the
    /// DFA gives up: a superset is always safe). A walk of the lazy DFA
    /// that stops at the first match state: only whether there is a match
    /// counts here, not where the leftmost-first one ends, and
    /// `try_search_fwd`'s set-up per call and its walk to the end of the
    /// longest match cost more than the rest of most gates.
    fn gate(&self, cache: &mut DfaCache, hay: &[u8], at: usize, pid: usize) -> bool {
        gate_match(&self.gates, cache, hay, at, pid)
    }

    /// Marks the candidate starts of `hay`: table patterns in `cache.bits`,
    /// the specially anchored ones in `cache.special`.
    pub(crate) fn fill(&self, cache: &mut PrefilterCache, hay: &[u8]) {
        let words = hay.len().div_ceil(64);
        let bits = &mut cache.bits;
        bits.clear();
        bits.resize(words, 0);
        bulk::planes(&self.lut, hay, &mut cache.planes);
        let pem_begin = self.mark_table(bits, &cache.planes, hay);
        cache.pem_begin = self.dash_marks.then_some(pem_begin);
        let planes = &cache.planes;
        // The e-mail anchor's marks apart at first, to tell which starts
        // only it marks.
        let bits = &mut cache.email;
        bits.clear();
        bits.resize(words, 0);
        let sp = self.special;
        if sp.email {
            for a in ones(planes, P_AT) {
                // The domain read off the bytes (cheaper than a walk of
                // its pattern: a table lookup per byte).
                if crate::detector::email_domain_end(hay, a + 1).is_none() {
                    continue;
                }
                // Every byte of the local part's run may start a match.
                let before = hay.get(..a).unwrap_or_default();
                let i = before
                    .iter()
                    .rposition(|&b| !is_local(b))
                    .map_or(0, |j| j + 1);
                set_range(bits, i, a);
                if i == a && a >= 1 && hay.get(a - 1) == Some(&b'"') {
                    // Quoted local part: the opening quote.
                    let mut j = a - 1;
                    while let Some(&b) = j.checked_sub(1).and_then(|k| hay.get(k)) {
                        j -= 1;
                        if b == b'"' {
                            set(bits, j);
                            break;
                        }
                        if !is_quoted_local(b) {
                            break;
                        }
                    }
                }
            }
        }
        let bits = &mut cache.special;
        bits.clear();
        bits.resize(words, 0);
        if sp.ipv6 || sp.url {
            // The run of address bytes around the last colon, and whether
            // it can hold an address at all.
            let mut run = (0, 0, false);
            for c in ones(planes, P_COLON) {
                if c >= run.1 {
                    run = ipv6_run(hay, planes, c);
                }
                if sp.ipv6 && run.2 {
                    // `HEX{1,4}:` or `::` starts an address.
                    for back in 1..=4 {
                        match c.checked_sub(back).and_then(|i| hay.get(i)) {
                            Some(b) if b.is_ascii_hexdigit() => set(bits, c - back),
                            _ => break,
                        }
                    }
                    if hay.get(c + 1) == Some(&b':') {
                        set(bits, c);
                    }
                }
                if sp.url
                    && hay.get(c + 1..c + 3) == Some(b"//".as_slice())
                    && self.gate(&mut cache.gates, hay, c, GATE_URL)
                {
                    let mut i = c;
                    while let Some(&b) = i.checked_sub(1).and_then(|j| hay.get(j)) {
                        if !is_scheme(b) {
                            break;
                        }
                        i -= 1;
                        set(bits, i);
                    }
                }
            }
        }
        if sp.aws_secret {
            for w in ones(planes, P_W) {
                let a = w.checked_sub(1).and_then(|i| hay.get(i));
                let s = hay.get(w + 1);
                if a.is_some_and(|b| b.eq_ignore_ascii_case(&b'a'))
                    && s.is_some_and(|b| b.eq_ignore_ascii_case(&b's'))
                {
                    set(bits, w - 1);
                }
            }
        }
        if sp.email {
            let marks = cache.special.iter_mut().zip(&cache.bits);
            for (email, (special, table)) in cache.email.iter_mut().zip(marks) {
                let other = *special | *table;
                *special |= *email;
                *email &= !other;
            }
        }
    }
}

impl Prefilter {
    /// The cheap half of the first-byte table test, over the whole
    /// haystack: marks `i` in `table` when `hay[i]` may start a table
    /// pattern after some byte, or after a byte of the word class when
    /// `hay[i - 1]` is one (so digits and letters inside words, most of a
    /// log, drop out); unless no pattern starting on `hay[i]` goes on with
    /// the lower-case letter or digit `hay[i + 1]` (capitalised words,
    /// `-` in dates), or `hay[i]` is a digit whose run of number bytes is
    /// shorter than the 7 of a dotted quad (see [`digits_may_match`]).
    /// Logic on the bit planes of [`bulk::planes`], 64 bytes at a time.
    /// Then the pair test of the tables on each mark that is left and no
    /// digit (see [`Prefilter::pair_may_start`]): a few loads per mark here
    /// cost less than taking a mark that fails it (`-` before a blank, `e`
    /// starting a word, …) through the search loop. The pair test of
    /// digits (which nearly always pass it), the digit-run and the
    /// upper-case tests are left to [`Prefilter::table_start`], which runs
    /// only on the marks the search reaches (many digits are inside values
    /// found already).
    ///
    /// Returns whether some mark on `-` that passes the pair test begins
    /// [`PEM_BEGIN`]: where [`Prefilter::dash_marks`] holds, every `-`
    /// another `-` follows is such a mark (neither a lower-case letter nor
    /// a digit follows it), so that tells whether `hay` holds
    /// [`PEM_BEGIN`] at all.
    #[inline(never)] // Its own entry in profiles.
    fn mark_table(&self, table: &mut [u64], planes: &[Planes], hay: &[u8]) -> bool {
        let mut pem_begin = false;
        let none = [0u64; PLANES];
        // No word byte before the haystack, nothing after it.
        let mut prev = &none;
        for (w, word) in table.iter_mut().enumerate() {
            let cur = planes.get(w).unwrap_or(&none);
            let next = planes.get(w + 1).unwrap_or(&none);
            let mut m = marks(prev, cur, next, self.digit_shortcut);
            // Digits nearly always pass: theirs is left to `table_start`.
            let mut left = m & !plane(cur, K_DIGIT);
            while left != 0 {
                let i = left.trailing_zeros();
                left &= left - 1;
                let p = w * 64 + i as usize;
                if !self.pair_may_start(hay, p) {
                    m &= !(1u64 << i);
                } else if hay.get(p) == Some(&b'-') {
                    pem_begin |= hay.get(p..).is_some_and(|t| t.starts_with(PEM_BEGIN));
                }
            }
            *word = m;
            prev = cur;
        }
        pem_begin
    }

    /// Whether a table pattern may start at `p`, a mark of
    /// [`Prefilter::mark_table`] (so [`Prefilter::pair_may_start`] holds
    /// unless `hay[p]` is a digit, which is tested here):
    /// for a digit-group start, the digit run from `p` is long enough (see
    /// [`digits_may_match`]), for an upper-case one, its run of letters
    /// fits some pattern (see [`upper_may_match`]), for a lower-case one,
    /// a pattern's word follows (see [`lower_may_match`]).
    /// Inlined into the search loop, which calls it on every mark it
    /// reaches: the call and its saved registers cost about a sixth of it.
    #[inline(always)]
    pub(crate) fn table_start(&self, cache: &PrefilterCache, hay: &[u8], p: usize) -> bool {
        let Some(&b) = hay.get(p) else {
            return false;
        };
        let from = || hay.get(p..).unwrap_or_default();
        match b {
            b'0'..=b'9' => {
                (!self.digit_shortcut || digits_may_match(&cache.planes, hay, p))
                    && self.pair_may_start(hay, p)
            }
            b'+' | b'(' => !self.digit_shortcut || digits_may_match(&cache.planes, hay, p),
            b'A'..=b'Z' => !self.upper_shortcut || upper_may_match(from()),
            b'a'..=b'z' => !self.lower_shortcut || lower_may_match(from()),
            _ => true,
        }
    }

    /// The pair test: `hay[p]` may start a table pattern after the class
    /// of `hay[p - 1]`, and `hay[p + 1]` (or the end) may follow.
    fn pair_may_start(&self, hay: &[u8], p: usize) -> bool {
        let Some(&b) = hay.get(p) else {
            return false;
        };
        let class = match p.checked_sub(1).and_then(|i| hay.get(i)) {
            Some(&prev) => self.info.get(usize::from(prev)).copied().unwrap_or(0),
            None => self.behind_text,
        };
        let k = usize::from(self.row(usize::from(class), b));
        match hay.get(p + 1) {
            Some(&next) => self.second.get(k << 8 | usize::from(next)) != Some(&0),
            None => self.second_eoi.get(k).copied().unwrap_or(true),
        }
    }

    /// `first[class][b]`: a row of `second`.
    fn row(&self, class: usize, b: u8) -> u8 {
        let row = self.first.get(class % CLASSES);
        row.and_then(|r| r.get(usize::from(b)))
            .copied()
            .unwrap_or(1)
    }
}

/// Bits of the kind table ([`bulk::Lut`]): some table pattern may start on the byte
/// (after a byte of some class), …
const K_START: u8 = 0x80;
/// … may start on it right after a byte of the word class, …
const K_START_AFTER_WORD: u8 = 0x40;
/// … the byte is an ASCII lower-case letter, …
const K_LOWER: u8 = 0x20;
/// … no table pattern starting on the byte continues with a lower-case
/// letter, …
const K_NOT_BEFORE_LOWER: u8 = 0x10;
/// … the byte is of the word class, …
const K_WORD: u8 = 0x01;
/// … a digit, …
const K_DIGIT: u8 = 0x02;
/// … no table pattern starting on the byte continues with a digit, …
const K_NOT_BEFORE_DIGIT: u8 = 0x04;
/// … or one of the bytes a digit-group pattern may contain: digits, `.`,
/// blank, `-`, `/`, `(`, `)`, `+`, and the `2A`/`2B` Corsican NIR
/// department letters.
const K_RUN: u8 = 0x08;

/// The fewest number bytes a built-in digit-group value spans: a dotted
/// quad (`1.2.3.4`); the others have 8 digits or more.
const SHORT_RUN: u32 = 7;

/// Plane `bit` (a `K_*` bit) of `planes`.
fn plane(planes: &Planes, bit: u8) -> u64 {
    let i = bit.trailing_zeros() as usize;
    planes.get(i).copied().unwrap_or(0)
}

/// The marks of [`Prefilter::mark_table`] for the block `cur`, between
/// the blocks `prev` and `next`; `digit`: whether short digit runs may be
/// dropped.
fn marks(prev: &Planes, cur: &Planes, next: &Planes, digit: bool) -> u64 {
    // The plane of each byte's neighbour before it, and after it.
    let before = |bit| plane(cur, bit) << 1 | plane(prev, bit) >> 63;
    let after = |bit| plane(cur, bit) >> 1 | plane(next, bit) << 63;
    let after_word = before(K_WORD);
    let start = (plane(cur, K_START) & !after_word) | (plane(cur, K_START_AFTER_WORD) & after_word);
    // A lower-case letter or a digit follows where none can.
    let lower = plane(cur, K_NOT_BEFORE_LOWER) & after(K_LOWER);
    let digit_next = plane(cur, K_NOT_BEFORE_DIGIT) & after(K_DIGIT);
    // The bytes from which `SHORT_RUN` bytes are number bytes (ANDs of
    // the run plane shifted by 1, 2, then 3 bytes: 2, 4, 7 bytes).
    let mut run = u128::from(plane(next, K_RUN)) << 64 | u128::from(plane(cur, K_RUN));
    let mut covered = 1;
    for shift in [1, 2, 3] {
        run &= run >> shift;
        covered += shift;
    }
    debug_assert_eq!(covered, SHORT_RUN);
    // A digit with too short a run.
    let short = match digit {
        true => plane(cur, K_DIGIT) & !(run as u64),
        false => 0,
    };
    start & !(lower | digit_next | short)
}

/// The positions of the set bits of plane `i` of `planes`, in order.
fn ones(planes: &[Planes], i: usize) -> impl Iterator<Item = usize> + '_ {
    let (mut w, mut bits) = (0, 0u64);
    std::iter::from_fn(move || {
        while bits == 0 {
            bits = planes.get(w)?.get(i).copied().unwrap_or(0);
            w += 1;
        }
        let at = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        Some((w - 1) * 64 + at)
    })
}

/// The [`K_DIGIT`] and [`K_RUN`] bits of `b`.
fn run_kind(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => K_DIGIT | K_RUN,
        b'.' | b' ' | b'-' | b'/' | b'(' | b')' | b'+' | b'A' | b'B' | b'a' | b'b' => K_RUN,
        _ => 0,
    }
}

/// Whether a built-in digit-group finding (phone, card, national id,
/// IPv4) may start at `hay[p]`, given the bit planes of `hay`. Every digit-group validator needs at
/// least 9 digits in its span (NIR 13, card 13, tax id 11, NANP 10, SSN,
/// BSN and national phone numbers 9), except IPv4 (4 digits, 3 dots) and
/// two with 8 (see [`eight_digits_may_match`]); and the spans only
/// contain [`K_RUN`] bytes. So when the run of those bytes has too few
/// digits and is no dotted quad, any match there is rejected and the next
/// start is tried, exactly what skipping it does. Most numbers in logs
/// (sizes, status codes with sizes, ISO dates, time parts, UUID pieces)
/// are skipped this way.
/// Digits are counted 64 bytes at a time on the bit planes (the run of
/// [`K_RUN`] bits from `p`, the [`K_DIGIT`] bits in it); dots only when a
/// dotted quad is still possible.
/// The run usually ends in the block of `p`: then one shift, one count
/// and no loop. Inlined into the search loop (through
/// [`Prefilter::table_start`]); the rarer cases are calls.
#[inline(always)]
fn digits_may_match(planes: &[Planes], hay: &[u8], p: usize) -> bool {
    let off = p % 64;
    let Some(block) = planes.get(p / 64) else {
        // Past the planes, past the end: no run.
        return false;
    };
    let run = plane(block, K_RUN) >> off;
    // The bits shifted in are clear, so the run ends by bit `63 - off`.
    let len = (!run).trailing_zeros() as usize;
    if off + len >= 64 {
        return long_run_may_match(planes, hay, p);
    }
    let digits = ones_in(plane(block, K_DIGIT) >> off & ((1u64 << len) - 1));
    digits >= 9 || few_digits_may_match(hay, p, len, digits)
}

/// [`digits_may_match`] for a run that reaches the end of its block: 64
/// bytes at a time.
#[inline(never)]
fn long_run_may_match(planes: &[Planes], hay: &[u8], p: usize) -> bool {
    let mut digits = 0;
    let mut at = p;
    loop {
        let (block, off) = (planes.get(at / 64), at % 64);
        // Past the end there is nothing, as past the planes.
        let bits = |bit| block.map_or(0, |b| plane(b, bit)) >> off;
        let left = 64 - off;
        let len = (bits(K_RUN).trailing_ones() as usize).min(left);
        let in_run = u64::MAX.checked_shr(64 - len as u32).unwrap_or(0);
        digits += ones_in(bits(K_DIGIT) & in_run);
        if digits >= 9 {
            return true;
        }
        if len < left {
            return few_digits_may_match(hay, p, at + len - p, digits);
        }
        at += left;
    }
}

/// Whether a run of `len` number bytes from `hay[p]` with `digits` digits,
/// fewer than 9, may hold a match: a dotted quad or one of the values with
/// 8 digits (see [`eight_digits_may_match`]).
#[inline(never)]
fn few_digits_may_match(hay: &[u8], p: usize, len: usize, digits: u32) -> bool {
    // The dots are among the bytes of the run that are no digits: they
    // are only counted if there are three of those.
    let quad = || {
        let run = hay.get(p..p + len).unwrap_or_default();
        run.iter().filter(|&&b| b == b'.').count() >= 3
    };
    let from = || hay.get(p..).unwrap_or_default();
    (digits >= 4 && len >= digits as usize + 3 && quad())
        || (digits == 8 && eight_digits_may_match(from()))
}

/// Set bits per byte value.
#[allow(clippy::indexing_slicing)] // Evaluated at compile time: a bad index fails the build.
const BYTE_ONES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = (i as u8).count_ones() as u8;
        i += 1;
    }
    table
};

/// `x.count_ones()`, by table for the 16 bits of most runs of number
/// bytes: without the `popcnt` instruction (not in the baseline target)
/// `count_ones` is a dozen instructions.
fn ones_in(x: u64) -> u32 {
    match x >> 16 {
        0 => {
            let byte = |b: u64| u32::from(BYTE_ONES.get((b & 0xff) as usize).copied().unwrap_or(0));
            byte(x) + byte(x >> 8)
        }
        _ => x.count_ones(),
    }
}

/// Whether a built-in pattern starting on an upper-case letter (AWS key
/// id, IBAN, codice fiscale, NINO, NIE, `BEARER`/`Bearer`, `BASIC`/`Basic`)
/// may match at the first byte of `hay`, an upper-case letter, judged by its
/// run of upper-case letters and the byte after it: six or more (codice
/// fiscale, `BEARER`), four or five from `A` or `B` (`AKIA…`, `BASIC`), two
/// before a digit or blank (IBAN, NINO), one before a digit, `-` (NIE) or
/// a lower-case letter (`Bearer`, `Basic`). Three never: words such as
/// `GET` and `HTTP` in access logs no longer start a walk.
fn upper_may_match(hay: &[u8]) -> bool {
    let len = hay
        .iter()
        .take(6)
        .take_while(|b| b.is_ascii_uppercase())
        .count();
    let next = hay.get(len).copied().unwrap_or(0);
    match len {
        0 | 6.. => true,
        4 | 5 => matches!(hay.first(), Some(b'A' | b'B')),
        3 => false,
        2 => next.is_ascii_digit() || next == b' ',
        _ => next.is_ascii_digit() || next == b'-' || next.is_ascii_lowercase(),
    }
}

/// Whether a built-in table pattern starting on a lower-case letter may
/// match at the first byte of `hay`, a lower-case letter: only `bearer`,
/// `basic` and a JWT's `eyJ` start so (e-mail addresses, URLs and the AWS
/// secret's name are anchored elsewhere), so words such as `because` and
/// `better` that pass the pair test no longer start a walk.
fn lower_may_match(hay: &[u8]) -> bool {
    hay.starts_with(b"bearer") || hay.starts_with(b"basic") || hay.starts_with(b"eyJ")
}

/// Whether one of the two built-in values with just 8 digits may start at
/// the first byte of `hay`: an international phone number (`+` and 8
/// digits; one written `00…` has 10) or a Spanish DNI (8 digits in a row,
/// then a letter, maybe after a dash). A status code and a size
/// (`200 93424`) or an ISO date (`2024-05-01T…`) is neither.
fn eight_digits_may_match(hay: &[u8]) -> bool {
    let letter_at = |i: usize| hay.get(i).is_some_and(u8::is_ascii_uppercase);
    let eight = hay
        .get(..8)
        .is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    hay.first() == Some(&b'+')
        || (eight && (letter_at(8) || (hay.get(8) == Some(&b'-') && letter_at(9))))
}

/// [`Prefilter::gate`] on `dfa`: whether pattern `pid` has a match
/// anchored at `at`, or the DFA gives up.
fn gate_match(dfa: &DFA, cache: &mut DfaCache, hay: &[u8], at: usize, pid: usize) -> bool {
    let behind = at.checked_sub(1).and_then(|i| hay.get(i)).copied();
    let config = start::Config::new()
        .anchored(Anchored::Pattern(PatternID::new_unchecked(pid)))
        .look_behind(behind);
    let Ok(mut sid) = dfa.start_state(cache, &config) else {
        return true;
    };
    for &b in hay.get(at..).unwrap_or_default() {
        sid = match dfa.next_state(cache, sid, b) {
            Ok(next) => next,
            Err(_) => return true,
        };
        // Matches show one byte late, so a match state means a match
        // ending before `b`; a dead state, none from here on.
        if sid.is_tagged() {
            if sid.is_dead() {
                return false;
            }
            if sid.is_match() || sid.is_quit() {
                return true;
            }
        }
    }
    dfa.next_eoi_state(cache, sid)
        .map_or(true, |eoi| eoi.is_match())
}

fn set(bits: &mut [u64], i: usize) {
    if let Some(w) = bits.get_mut(i / 64) {
        *w |= 1u64 << (i % 64);
    }
}

/// Sets the bits `from..to`, a word at a time.
fn set_range(bits: &mut [u64], from: usize, to: usize) {
    let mut i = from;
    while i < to {
        let off = i % 64;
        let n = (to - i).min(64 - off);
        if let Some(w) = bits.get_mut(i / 64) {
            *w |= u64::MAX >> (64 - n) << off;
        }
        i += n;
    }
}

/// Whether bit `i` of `bits` is set.
pub(crate) fn is_set(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 != 0)
}

/// The first position at or after `at` marked in `table` or `special`,
/// and whether it is marked in `special`.
pub(crate) fn next(table: &[u64], special: &[u64], at: usize) -> Option<(usize, bool)> {
    let mut idx = at / 64;
    let mask = u64::MAX << (at % 64);
    let mut t = table.get(idx)? & mask;
    let mut s = special.get(idx)? & mask;
    loop {
        let w = t | s;
        if w != 0 {
            let j = w.trailing_zeros();
            return Some((idx * 64 + j as usize, (s >> j) & 1 != 0));
        }
        idx += 1;
        t = *table.get(idx)?;
        s = *special.get(idx)?;
    }
}

#[cfg(test)]
mod tests;
