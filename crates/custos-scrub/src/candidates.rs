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

/// The prefilter. Built once per scrubber.
#[derive(Debug)]
pub(crate) struct Prefilter {
    /// `first[class * 256 + byte]`: 0 if no table pattern starts with
    /// `byte` after a byte of look-behind `class`, else an index into
    /// `second`.
    first: Vec<u8>,
    /// Bit sets of the bytes that may follow (plus bit 256: end of input).
    second: Vec<[u64; 5]>,
    /// For each previous byte: its look-behind class.
    behind: [u8; 256],
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
    /// One bit per haystack byte: a candidate start.
    pub(crate) bits: Vec<u64>,
}

impl Prefilter {
    /// `table` is the anchored lazy DFA over the patterns covered by the
    /// first-byte table; `gates` holds [`crate::detector::EMAIL_DOMAIN`]
    /// and [`crate::detector::URL_TAIL`] in that order.
    pub(crate) fn new(table: &DFA, gates: DFA, special: Special) -> Self {
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
        let start_of = |cache: &mut DfaCache, lb: Option<u8>| {
            let cfg = start::Config::new().anchored(Anchored::Yes).look_behind(lb);
            table.start_state(cache, &cfg).ok()
        };
        let mut behind = [0u8; 256];
        for (b, slot) in (0..=u8::MAX).zip(behind.iter_mut()) {
            let sid = start_of(&mut cache, Some(b));
            *slot = class_of(sid);
        }
        let behind_text = class_of(start_of(&mut cache, None));
        // Index 0 of `second`: unused (0 in `first` means "no candidate");
        // index 1: every next byte (the DFA gave up, or too many states).
        let all = [u64::MAX; 5];
        let mut second: Vec<[u64; 5]> = vec![[0; 5], all];
        let mut first = vec![0u8; starts.len() * 256];
        for (i, sid) in starts.iter().enumerate() {
            for b in 0..=u8::MAX {
                let k = match sid {
                    None => 1,
                    Some(sid) => match table.next_state(&mut cache, *sid, b) {
                        Ok(next) if next.is_dead() => 0,
                        Ok(next) => follow_set(table, &mut cache, next)
                            .map_or(1, |set| intern(&mut second, set)),
                        Err(_) => 1,
                    },
                };
                if let Some(slot) = first.get_mut(i * 256 + usize::from(b)) {
                    *slot = k;
                }
            }
        }
        Self {
            first,
            second,
            behind,
            behind_text,
            special,
            gates,
        }
    }

    pub(crate) fn cache(&self) -> PrefilterCache {
        PrefilterCache {
            gates: self.gates.create_cache(),
            bits: Vec::new(),
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

    /// Marks the candidate starts of `hay` in `cache.bits`.
    pub(crate) fn fill(&self, cache: &mut PrefilterCache, hay: &[u8]) {
        let bits = &mut cache.bits;
        bits.clear();
        bits.resize(hay.len().div_ceil(64), 0);
        let mut class = usize::from(self.behind_text);
        for (i, &b) in hay.iter().enumerate() {
            let k = self.first.get(class * 256 + usize::from(b)).copied();
            class = usize::from(self.behind.get(usize::from(b)).copied().unwrap_or(0));
            let k = match k {
                Some(0) => continue,
                Some(k) => usize::from(k),
                None => 1,
            };
            let next = hay.get(i + 1).map_or(256, |&n| usize::from(n));
            let live = self
                .second
                .get(k)
                .and_then(|set| set.get(next / 64))
                .is_none_or(|w| w & (1u64 << (next % 64)) != 0);
            if live {
                set(bits, i);
            }
        }
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
            for c in memchr::memchr_iter(b':', hay) {
                if sp.ipv6 {
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

/// The first marked position at or after `at`.
pub(crate) fn next(bits: &[u64], at: usize) -> Option<usize> {
    let mut idx = at / 64;
    let mut w = bits.get(idx)? & (u64::MAX << (at % 64));
    loop {
        if w != 0 {
            return Some(idx * 64 + w.trailing_zeros() as usize);
        }
        idx += 1;
        w = *bits.get(idx)?;
    }
}
