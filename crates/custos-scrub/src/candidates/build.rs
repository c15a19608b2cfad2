//! Building the prefilter once per scrubber: the first-byte and pair
//! tables read off the anchored lazy DFA (per look-behind class of the
//! byte before, which pairs of first bytes do not lead to the dead
//! state), the kind table of the bulk pass derived from them, and the
//! shortcuts that custom patterns switch off.
//!
//! Invariant: every table only ever over-approximates where a pattern may
//! start (where the DFA gives up, every byte may), which is what the
//! search's correctness rests on (see the parent module).

use regex_automata::hybrid::dfa::{Cache as DfaCache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::util::start;
use regex_automata::Anchored;

use super::{
    run_kind, Prefilter, Special, CLASSES, K_LOWER, K_NOT_BEFORE_DIGIT, K_NOT_BEFORE_LOWER,
    K_START, K_START_AFTER_WORD, K_WORD,
};
use crate::bulk::Lut;

impl Prefilter {
    /// `table` is the anchored lazy DFA over the patterns covered by the
    /// first-byte table; `gates` holds [`crate::detector::URL_TAIL`] (the
    /// e-mail domain is read off the bytes, see
    /// [`crate::detector::email_domain_end`]).
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
        // Custom patterns do not obey the digit counts or letter runs of
        // the shortcuts.
        let custom_starts = custom.map(|c| first_bytes(c, Anchored::Yes));
        let no_custom_start = |first: &dyn Fn(u8) -> bool| {
            custom_starts.as_ref().is_none_or(|starts| {
                !(0..=u8::MAX).any(|b| first(b) && starts.get(usize::from(b)) == Some(&true))
            })
        };
        let digit_shortcut = no_custom_start(&|b| b.is_ascii_digit() || b == b'+' || b == b'(');
        let upper_shortcut = no_custom_start(&|b| b.is_ascii_uppercase());
        let lower_shortcut = no_custom_start(&|b| b.is_ascii_lowercase());
        // `-` may start a table pattern after every byte and at the start
        // (the classes that are in use), and `-` may follow it there.
        let dash_marks = behind.iter().chain([&behind_text]).all(|&c| {
            let row = first
                .get(usize::from(c))
                .and_then(|r| r.get(usize::from(b'-')));
            row.is_some_and(|&k| {
                k != 0 && second.get(usize::from(k) << 8 | usize::from(b'-')) != Some(&0)
            })
        });
        let mut info = [0u8; 256];
        for (slot, class) in info.iter_mut().zip(behind) {
            *slot = class % CLASSES as u8;
        }
        let kind = kinds(&first, &second, &info, behind_text);
        Self {
            first,
            second,
            second_eoi,
            info,
            lut: Lut::new(kind),
            digit_shortcut,
            upper_shortcut,
            lower_shortcut,
            dash_marks,
            behind_text,
            special,
            gates,
        }
    }
}

/// The kind table (see [`crate::bulk::Lut`]). The word class is the look-behind class
/// of `a`: in log text most bytes follow a letter or digit, and no
/// built-in pattern but PEM and phone numbers (`-`, `+`, `(`) starts there.
fn kinds(
    first: &[[u8; 256]; CLASSES],
    second: &[u8; 65536],
    info: &[u8; 256],
    behind_text: u8,
) -> [u8; 256] {
    let starts = |class: u8, b: u8| {
        first
            .get(usize::from(class))
            .and_then(|row| row.get(usize::from(b)))
            != Some(&0)
    };
    let word = info.get(usize::from(b'a')).copied().unwrap_or(0);
    // The classes in use (rows of other classes are unused, all ones).
    let mut used = [false; CLASSES];
    for &class in info.iter().chain([&behind_text]) {
        if let Some(u) = used.get_mut(usize::from(class)) {
            *u = true;
        }
    }
    let used = |c: u8| used.get(usize::from(c)) == Some(&true);
    // Whether a byte of `next` may follow `b` after a byte of class `c`.
    let follows = |c: u8, b: u8, next: std::ops::RangeInclusive<u8>| {
        let row = first
            .get(usize::from(c))
            .and_then(|row| row.get(usize::from(b)))
            .map_or(1, |&k| usize::from(k));
        next.into_iter()
            .any(|n| second.get(row << 8 | usize::from(n)) != Some(&0))
    };
    let mut kind = [0u8; 256];
    for (b, slot) in (0..=u8::MAX).zip(kind.iter_mut()) {
        let classes = || (0..CLASSES as u8).filter(|&c| used(c));
        if classes().any(|c| starts(c, b)) {
            *slot |= K_START;
        }
        if !classes().any(|c| starts(c, b) && follows(c, b, b'a'..=b'z')) {
            *slot |= K_NOT_BEFORE_LOWER;
        }
        if !classes().any(|c| starts(c, b) && follows(c, b, b'0'..=b'9')) {
            *slot |= K_NOT_BEFORE_DIGIT;
        }
        if b.is_ascii_lowercase() {
            *slot |= K_LOWER;
        }
        if starts(word, b) {
            *slot |= K_START_AFTER_WORD;
        }
        if info.get(usize::from(b)) == Some(&word) {
            *slot |= K_WORD;
        }
        *slot |= run_kind(b);
    }
    kind
}

fn start_of(dfa: &DFA, cache: &mut DfaCache, lb: Option<u8>) -> Option<LazyStateID> {
    let cfg = start::Config::new().anchored(Anchored::Yes).look_behind(lb);
    dfa.start_state(cache, &cfg).ok()
}

/// The bytes at which a match of `dfa` anchored as `mode` (any pattern or
/// one) may start, after any byte or at the start; all of them if the DFA
/// gives up.
pub(crate) fn first_bytes(dfa: &DFA, mode: Anchored) -> [bool; 256] {
    let mut cache = dfa.create_cache();
    // The distinct start states (a handful of look-behind kinds).
    let mut starts = Vec::new();
    for lb in (0..=u8::MAX).map(Some).chain([None]) {
        let config = start::Config::new().anchored(mode).look_behind(lb);
        let Ok(sid) = dfa.start_state(&mut cache, &config) else {
            return [true; 256];
        };
        if !starts.contains(&sid) {
            starts.push(sid);
        }
    }
    let mut out = [false; 256];
    for sid in starts {
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
