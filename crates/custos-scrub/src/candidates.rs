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
//!   do not lead to the dead state. That gives two small tables.
//! - Patterns that can start on almost any byte are anchored on a byte they
//!   must contain, close to or after their start:
//!   e-mail on `@` (its local part before it, only if a domain follows),
//!   IPv6 on `:` (at most four hex digits before the first colon, or `::`),
//!   `user:password@` URLs on `://` (the scheme before it, only if the rest
//!   follows), the AWS secret key name on `aws` (any case).
//!
//! - Two cuts keep most log numbers out of the automaton: a table mark on
//!   a digit, `+` or `(` is dropped when the run of number bytes from it
//!   holds fewer than 8 digits and is no dotted quad (no built-in
//!   digit-group validator accepts that, and a rejected digit-group match
//!   only moves the search one byte on; see [`digits_may_match`]); and a
//!   colon anchors IPv6 only if its run of `[0-9A-Fa-f:.]` holds `::` or
//!   seven colons (see [`ipv6_run`]).
//! - Table and special marks are kept apart: where only the table marks a
//!   start, no special pattern can match, so the smaller automaton over
//!   the table patterns alone gives the same match.
//!
//! The test `tests/it/equivalence.rs` compares this path with the plain
//! unanchored search on random input.

use regex_automata::hybrid::dfa::{Cache as DfaCache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::util::start;
use regex_automata::{Anchored, Input, PatternID};

/// Byte classes of the anchored e-mail local part (`[A-Za-z0-9._%+\-\x80-\xFF]`).
fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-') || b >= 0x80
}

/// Quoted local part characters (`[A-Za-z0-9 ._%+\-\x80-\xFF]`).
fn is_quoted_local(b: u8) -> bool {
    is_local(b) || b == b' '
}

/// Bytes an IPv6 match consists of (`[0-9A-Fa-f:.]`).
fn is_ipv6(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':' || b == b'.'
}

/// The run of [`is_ipv6`] bytes around the colon at `c` (start, end), and
/// whether an IPv6 pattern may match inside it: every match is such a run
/// piece and holds `::` (compressed form) or seven colons (full form).
/// Most colons in logs (times, `key:value`) fail this, and then none of
/// the hex digits before them needs an anchored search.
fn ipv6_run(hay: &[u8], c: usize) -> (usize, usize, bool) {
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
    let ok = colons >= 7 || memchr::memmem::find(run, b"::").is_some();
    (start, end, ok)
}

/// URL scheme characters (`[A-Za-z0-9+.\-]`).
fn is_scheme(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-')
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
const GATE_DOMAIN: usize = 0;
const GATE_URL: usize = 1;

/// Most distinct look-behind classes the table keeps (the lazy DFA has at
/// most six kinds of start state); more fall back to "every byte".
const CLASSES: usize = 8;

/// Byte kinds of [`run_kind`].
const RUN_STOP: u8 = 0;
const RUN_DIGIT: u8 = 1;
const RUN_DOT: u8 = 2;
const RUN_OTHER: u8 = 4;

/// How a byte counts in a digit run: digits, `.`, and the other bytes a
/// digit-group pattern may contain (blank, `-`, `/`, `(`, `)`, `+`, and
/// the `2A`/`2B` Corsican NIR department letters); anything else stops it.
fn run_kind(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => RUN_DIGIT,
        b'.' => RUN_DOT,
        b' ' | b'-' | b'/' | b'(' | b')' | b'+' | b'A' | b'B' | b'a' | b'b' => RUN_OTHER,
        _ => RUN_STOP,
    }
}

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
    /// Whether [`digits_may_match`] may drop candidates: no custom pattern
    /// starts on a digit, `+` or `(`.
    digit_shortcut: bool,
    /// The class at the start of the haystack.
    behind_text: u8,
    special: Special,
    /// Anchored lazy DFA with the e-mail domain and the URL tail, one start
    /// state per pattern.
    gates: DFA,
}

/// Per-thread state of the prefilter.
#[derive(Debug)]
pub(crate) struct PrefilterCache {
    gates: DfaCache,
    /// One bit per haystack byte: a candidate start of a table pattern.
    pub(crate) bits: Vec<u64>,
    /// One bit per haystack byte: a candidate start of a specially
    /// anchored pattern (those may also match here, and win by priority).
    pub(crate) special: Vec<u64>,
}

impl Prefilter {
    /// `table` is the anchored lazy DFA over the patterns covered by the
    /// first-byte table; `gates` holds [`crate::detector::EMAIL_DOMAIN`]
    /// and [`crate::detector::URL_TAIL`] in that order.
    ///
    /// `custom` is the anchored lazy DFA over the custom patterns (if any):
    /// where one of them may start, the digit-run shortcut is off, since
    /// only the built-in digit-group patterns obey its digit counts.
    pub(crate) fn new(table: &DFA, custom: Option<&DFA>, gates: DFA, special: Special) -> Self {
        let mut cache = table.create_cache();
        // Distinct start states by look-behind (about 5: text start, line
        // feed, carriage return, word and non-word bytes).
        let mut starts: Vec<Option<LazyStateID>> = Vec::new();
        let mut class_of = |sid: Option<LazyStateID>| -> u8 {
            let idx = match starts.iter().position(|s| *s == sid) {
                Some(i) => i,
                None => {
                    starts.push(sid);
                    starts.len() - 1
                }
            };
            u8::try_from(idx).unwrap_or(u8::MAX)
        };
        let mut behind = [0u8; 256];
        for (b, slot) in (0..=u8::MAX).zip(behind.iter_mut()) {
            let sid = start_of(table, &mut cache, Some(b));
            *slot = class_of(sid);
        }
        let behind_text = class_of(start_of(table, &mut cache, None));
        // Index 0 of `second`: nothing may follow (0 in `first` means "no
        // candidate"); index 1: everything (the DFA gave up, too many sets).
        let mut sets: Vec<[u64; 5]> = vec![[0; 5], [u64::MAX; 5]];
        let mut first = [[1u8; 256]; CLASSES];
        for (sid, row) in starts.iter().zip(first.iter_mut()) {
            for (b, slot) in (0..=u8::MAX).zip(row.iter_mut()) {
                *slot = match sid {
                    None => 1,
                    Some(sid) => match table.next_state(&mut cache, *sid, b) {
                        Ok(next) if next.is_dead() => 0,
                        Ok(next) => follow_set(table, &mut cache, next)
                            .map_or(1, |set| intern(&mut sets, set)),
                        Err(_) => 1,
                    },
                };
            }
        }
        // More classes than rows: every class shares one "all" row, so
        // every byte is a candidate (correct, slow, never seen in practice).
        let (behind, behind_text) = if starts.len() > CLASSES {
            first = [[1u8; 256]; CLASSES];
            ([0u8; 256], 0)
        } else {
            (behind, behind_text)
        };
        let mut second = Box::new([0u8; 65536]);
        for (set, row) in sets.iter().zip(second.chunks_exact_mut(256)) {
            for (b, slot) in row.iter_mut().enumerate() {
                let bit = set.get(b / 64).is_some_and(|w| w & (1u64 << (b % 64)) != 0);
                *slot = u8::from(bit);
            }
        }
        let second_eoi = sets
            .iter()
            .map(|set| set.get(4).is_some_and(|w| w & 1 != 0))
            .collect();
        // Custom patterns do not obey the digit counts of the shortcut.
        let digit_shortcut = custom.map(custom_first_bytes).is_none_or(|starts| {
            let on = |b: u8| starts.get(usize::from(b)) == Some(&true);
            !(b'0'..=b'9').chain([b'+', b'(']).any(on)
        });
        let mut info = [0u8; 256];
        for (slot, class) in info.iter_mut().zip(behind) {
            *slot = class % CLASSES as u8;
        }
        Self {
            first,
            second,
            second_eoi,
            info,
            digit_shortcut,
            behind_text,
            special,
            gates,
        }
    }

    pub(crate) fn cache(&self) -> PrefilterCache {
        PrefilterCache {
            gates: self.gates.create_cache(),
            bits: Vec::new(),
            special: Vec::new(),
        }
    }

    /// Whether gate pattern `pid` matches anchored at `at` (true when the
    /// DFA gives up: a superset is always safe).
    fn gate(&self, cache: &mut DfaCache, hay: &[u8], at: usize, pid: usize) -> bool {
        let input = Input::new(hay)
            .range(at..)
            .anchored(Anchored::Pattern(PatternID::new_unchecked(pid)));
        !matches!(self.gates.try_search_fwd(cache, &input), Ok(None))
    }

    /// Marks the candidate starts of `hay`: table patterns in `cache.bits`,
    /// the specially anchored ones in `cache.special`.
    pub(crate) fn fill(&self, cache: &mut PrefilterCache, hay: &[u8]) {
        let words = hay.len().div_ceil(64);
        let bits = &mut cache.bits;
        bits.clear();
        bits.resize(words, 0);
        self.fill_table(bits, hay);
        if self.digit_shortcut {
            Self::drop_short_numbers(bits, hay);
        }
        let bits = &mut cache.special;
        bits.clear();
        bits.resize(words, 0);
        let sp = self.special;
        if sp.email {
            for a in memchr::memchr_iter(b'@', hay) {
                if !self.gate(&mut cache.gates, hay, a + 1, GATE_DOMAIN) {
                    continue;
                }
                let mut i = a;
                while let Some(&b) = i.checked_sub(1).and_then(|j| hay.get(j)) {
                    if !is_local(b) {
                        break;
                    }
                    i -= 1;
                    set(bits, i);
                }
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
        if sp.ipv6 || sp.url {
            // The run of address bytes around the last colon, and whether
            // it can hold an address at all.
            let mut run = (0, 0, false);
            for c in memchr::memchr_iter(b':', hay) {
                if c >= run.1 {
                    run = ipv6_run(hay, c);
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
            for w in memchr::memchr2_iter(b'w', b'W', hay) {
                let a = w.checked_sub(1).and_then(|i| hay.get(i));
                let s = hay.get(w + 1);
                if a.is_some_and(|b| b.eq_ignore_ascii_case(&b'a'))
                    && s.is_some_and(|b| b.eq_ignore_ascii_case(&b's'))
                {
                    set(bits, w - 1);
                }
            }
        }
    }
}

impl Prefilter {
    /// The first-byte table pass: marks `i` in `table` when `hay[i]` may
    /// start a table pattern after `hay[i - 1]` and `hay[i + 1]` (or the
    /// end) may follow. Branch-free per byte, one 64-bit word at a time;
    /// kept out of line so its loop gets the registers.
    #[inline(never)]
    fn fill_table(&self, table: &mut [u64], hay: &[u8]) {
        let mut class = usize::from(self.behind_text);
        // One byte per position, packed into bits eight at a time: cheaper
        // than a variable shift per byte.
        let mut live = [0u8; 64];
        for (w, word) in table.iter_mut().enumerate() {
            // The word's bytes plus the one after them.
            let from = w * 64;
            let chunk = hay.get(from..hay.len().min(from + 65)).unwrap_or_default();
            for (slot, pair) in live.iter_mut().zip(chunk.windows(2)) {
                let (b, next) = match *pair {
                    [b, next] => (b, next),
                    _ => continue,
                };
                let k = self.row(class, b);
                class = usize::from(self.info.get(usize::from(b)).copied().unwrap_or(0));
                let at = usize::from(k) << 8 | usize::from(next);
                *slot = self.second.get(at).copied().unwrap_or(1);
            }
            let mut acc = 0u64;
            for (i, eight) in live.chunks_exact(8).enumerate() {
                let mut buf = [0u8; 8];
                buf.copy_from_slice(eight);
                acc |= compress(u64::from_le_bytes(buf) << 7) << (8 * i);
            }
            // A last, partial word: only its bytes (the rest is stale).
            let len = chunk.len().min(64);
            if chunk.len() < 65 {
                acc &= u64::MAX.checked_shr(64 - len as u32).unwrap_or(0);
                // The last byte is followed by the end of input.
                if let Some(&b) = chunk.last() {
                    let k = self.row(class, b);
                    if self.second_eoi.get(usize::from(k)).copied().unwrap_or(true) {
                        acc |= 1u64 << ((len - 1) % 64);
                    }
                }
            }
            *word = acc;
        }
    }

    /// Unmarks the digit-group starts that cannot gather enough digits.
    fn drop_short_numbers(table: &mut [u64], hay: &[u8]) {
        for (w, word) in table.iter_mut().enumerate() {
            let mut rest = *word;
            while rest != 0 {
                let j = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                let i = w * 64 + j;
                let check = hay
                    .get(i)
                    .is_some_and(|&b| b.is_ascii_digit() || b == b'+' || b == b'(');
                if check && !digits_may_match(hay, i) {
                    *word &= !(1u64 << j);
                }
            }
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

/// Whether a built-in digit-group finding (phone, card, national id,
/// IPv4) may start at `p`. Every digit-group validator needs at least 8
/// digits in its span (NIR 14, card 13, SSN and BSN 9, DNI 8, phones 8–10),
/// except IPv4 (4 digits, 3 dots); and the spans only contain the bytes of
/// [`run_kind`]. So when the run of those bytes from `p` has fewer than 8 digits
/// and is no dotted quad, any match there is rejected and the next start
/// is tried, exactly what skipping `p` does. Most numbers in logs (sizes,
/// status codes, time parts, UUID pieces) are skipped this way.
fn digits_may_match(hay: &[u8], p: usize) -> bool {
    let (mut digits, mut dots) = (0u32, 0u32);
    for &b in hay.get(p..).unwrap_or_default() {
        let kind = run_kind(b);
        if kind == RUN_STOP {
            break;
        }
        digits += u32::from(kind & RUN_DIGIT);
        dots += u32::from(kind & RUN_DOT);
        if digits >= 8 {
            return true;
        }
    }
    // `dots` counts in steps of `RUN_DOT`.
    digits >= 4 && dots >= 3 * u32::from(RUN_DOT)
}

/// The high bits of the 8 bytes of `flags` as an 8-bit mask (byte 0 → bit
/// 0): the multiplication moves bit `8i + 7` to bit `56 + i`, without
/// carries since the partial products never overlap.
fn compress(flags: u64) -> u64 {
    ((flags & 0x8080_8080_8080_8080) >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

fn start_of(dfa: &DFA, cache: &mut DfaCache, lb: Option<u8>) -> Option<LazyStateID> {
    let cfg = start::Config::new().anchored(Anchored::Yes).look_behind(lb);
    dfa.start_state(cache, &cfg).ok()
}

/// The bytes at which some pattern of `dfa` may start (after any byte or
/// at the start); all of them if the DFA gives up.
fn custom_first_bytes(dfa: &DFA) -> [bool; 256] {
    let mut cache = dfa.create_cache();
    let mut out = [false; 256];
    for lb in (0..=u8::MAX).map(Some).chain([None]) {
        let Some(sid) = start_of(dfa, &mut cache, lb) else {
            return [true; 256];
        };
        for (b, slot) in (0..=u8::MAX).zip(out.iter_mut()) {
            if !dfa
                .next_state(&mut cache, sid, b)
                .is_ok_and(|n| n.is_dead())
            {
                *slot = true;
            }
        }
    }
    out
}

/// The bytes (and bit 256: end of input) after which `sid` is not dead.
fn follow_set(dfa: &DFA, cache: &mut DfaCache, sid: LazyStateID) -> Option<[u64; 5]> {
    let mut set = [0u64; 5];
    for b in 0..=u8::MAX {
        if !dfa.next_state(cache, sid, b).ok()?.is_dead() {
            *set.get_mut(usize::from(b) / 64)? |= 1u64 << (b % 64);
        }
    }
    if !dfa.next_eoi_state(cache, sid).ok()?.is_dead() {
        *set.get_mut(4)? |= 1;
    }
    Some(set)
}

/// Index of `set` in `sets`, added if new; 1 (everything) past 255 sets.
fn intern(sets: &mut Vec<[u64; 5]>, set: [u64; 5]) -> u8 {
    let idx = match sets.iter().position(|s| *s == set) {
        Some(i) => i,
        None => {
            sets.push(set);
            sets.len() - 1
        }
    };
    u8::try_from(idx).unwrap_or(1)
}

fn set(bits: &mut [u64], i: usize) {
    if let Some(w) = bits.get_mut(i / 64) {
        *w |= 1u64 << (i % 64);
    }
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
