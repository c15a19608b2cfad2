//! Unit tests of the prefilter: the shortcuts (upper- and lower-case runs,
//! address colons, digit runs, eight-digit values) against their
//! definitions or the automaton, and the bit helpers.

use super::*;
use regex_automata::Input;

/// The next byte of `alphabet` from a xorshift generator: the random
/// strings of the exhaustive-ish tests, repeatable without a crate.
fn random_byte(seed: &mut u64, alphabet: &[u8]) -> u8 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    alphabet[(*seed % alphabet.len() as u64) as usize]
}

/// The planes of `hay` with only the bits of [`run_kind`].
fn run_planes(hay: &[u8]) -> Vec<Planes> {
    let mut kind = [0u8; 256];
    for (b, k) in (0..=u8::MAX).zip(kind.iter_mut()) {
        *k = run_kind(b);
    }
    let mut planes = Vec::new();
    bulk::planes(&Lut::new(kind), hay, &mut planes);
    planes
}

/// The plain definition: digits and dots of the run of number bytes.
fn reference(hay: &[u8]) -> bool {
    let run = hay.iter().take_while(|&&b| run_kind(b) != 0);
    let digits = run.clone().filter(|b| b.is_ascii_digit()).count();
    let dots = run.filter(|&&b| b == b'.').count();
    let letter = |i: usize| hay.get(i).is_some_and(u8::is_ascii_uppercase);
    let dni = hay.len() >= 8
        && hay[..8].iter().all(u8::is_ascii_digit)
        && (letter(8) || (hay.get(8) == Some(&b'-') && letter(9)));
    let eight = hay.first() == Some(&b'+') || dni;
    digits >= 9 || (digits >= 4 && dots >= 3) || (digits == 8 && eight)
}

#[test]
fn upper_case_runs() {
    use regex_automata::meta::Regex;
    use regex_automata::util::syntax;
    let patterns: Vec<String> = crate::detector::builtin_patterns()
        .into_iter()
        .map(|p| p.pattern)
        .collect();
    let re = Regex::builder()
        .syntax(syntax::Config::new().unicode(false).utf8(false))
        .build_many(&patterns)
        .unwrap();
    // Values of every upper-case pattern are kept.
    for value in [
        "AKIAIOSFODNN7EXAMPLE",
        "AKIA2345ABCDEFGHIJKL",
        "GB82WEST12345698765432",
        "AB123456C",
        "AB 12 34 56 C",
        "X1234567L",
        "X-1234567-L",
        "RSSMRA85T10A562S",
        "BEARER abcdefgh123",
        "Bearer abcdefgh123",
        "BASIC dXNlcjpwYXNz",
        "Basic dXNlcjpwYXNz",
    ] {
        assert!(upper_may_match(value.as_bytes()), "{value}");
    }
    // Whatever it drops has no match (after a blank: `\b` holds).
    let alphabet = b"AKIBSCXYZGEHTPRDWaes0123456789 -/=+.";
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for len in 1..30 {
        for _ in 0..2000 {
            let mut hay = vec![b' '];
            hay.extend((0..len).map(|_| random_byte(&mut seed, alphabet)));
            if !hay[1].is_ascii_uppercase() || upper_may_match(&hay[1..]) {
                continue;
            }
            let input = Input::new(&hay).range(1..).anchored(Anchored::Yes);
            assert_eq!(
                re.search(&input),
                None,
                "{:?}",
                String::from_utf8_lossy(&hay)
            );
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

    /// The gate walk says what `try_search_fwd` says: whether the
    /// URL tail pattern matches at a position.
    #[test]
    fn gates_agree_with_the_search(
        t in proptest::collection::vec(
            proptest::sample::select(b"ab.-_x0@:/ \"\xc3".as_slice()),
            0..30,
        ),
    ) {
        use regex_automata::util::syntax;
        static GATES: std::sync::OnceLock<DFA> = std::sync::OnceLock::new();
        let dfa = GATES.get_or_init(|| {
            DFA::builder()
                .syntax(syntax::Config::new().unicode(false).utf8(false))
                .configure(DFA::config().starts_for_each_pattern(true))
                .build_many(&[crate::detector::URL_TAIL])
                .unwrap()
        });
        let mut cache = dfa.create_cache();
        for pid in [GATE_URL] {
            for at in 0..=t.len() {
                let input = Input::new(&t)
                    .range(at..)
                    .anchored(Anchored::Pattern(PatternID::new_unchecked(pid)));
                let expect = !matches!(dfa.try_search_fwd(&mut cache, &input), Ok(None));
                proptest::prop_assert_eq!(
                    gate_match(dfa, &mut cache, &t, at, pid),
                    expect,
                    "{:?} {} {}", String::from_utf8_lossy(&t), at, pid
                );
            }
        }
    }

    /// Every match of the IPv6 patterns has its first colon where
    /// [`may_begin_address`] holds, also across 64-byte blocks.
    #[test]
    fn address_colons(
        t in proptest::collection::vec(
            proptest::sample::select(b"0123456789abcdefABCDEF:::::.x ".as_slice()),
            0..60,
        ),
        pad in 0usize..64,
    ) {
        use regex_automata::meta::Regex;
        use regex_automata::util::syntax;
        static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
        let re = RE.get_or_init(|| {
            let ipv6: Vec<String> = crate::detector::builtin_patterns()
                .into_iter()
                .filter(|p| p.check == crate::validate::Check::Ipv6)
                .map(|p| p.pattern)
                .collect();
            Regex::builder()
                .syntax(syntax::Config::new().unicode(false).utf8(false))
                .build_many(&ipv6)
                .unwrap()
        });
        let mut hay = vec![b'x'; pad];
        hay.extend(t);
        let mut planes = Vec::new();
        bulk::planes(&Lut::new([0; 256]), &hay, &mut planes);
        for s in 0..hay.len() {
            let input = Input::new(&hay).range(s..).anchored(Anchored::Yes);
            let Some(m) = re.search(&input) else {
                continue;
            };
            let first = hay[s..m.end()].iter().position(|&b| b == b':').unwrap() + s;
            proptest::prop_assert!(
                may_begin_address(&planes, first),
                "{:?} {} {}", String::from_utf8_lossy(&hay), s, first
            );
        }
    }
}

/// Times have no address in them; `::` and seven colons may.
#[test]
fn address_colon_examples() {
    let check = |text: &str, c: usize, expect: bool| {
        let mut planes = Vec::new();
        bulk::planes(&Lut::new([0; 256]), text.as_bytes(), &mut planes);
        assert_eq!(may_begin_address(&planes, c), expect, "{text} {c}");
    };
    check("at 12:34:56.789 done", 5, false);
    check("2001:db8::1", 4, true);
    check("1:2:3:4:5:6:7:8", 1, true);
    check("1:2:3:4:5:6:7", 1, false);
}

/// `set_range` sets what `set` on each bit does.
#[test]
fn ranges_of_bits() {
    for from in 0..200 {
        for to in from..200 {
            let (mut range, mut each) = ([0u64; 4], [0u64; 4]);
            set_range(&mut range, from, to);
            (from..to).for_each(|i| set(&mut each, i));
            assert_eq!(range, each, "{from}..{to}");
        }
    }
}

#[test]
fn ones_by_table() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for shift in 0..64 {
        for _ in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = x >> shift;
            assert_eq!(ones_in(v), v.count_ones(), "{v:#x}");
        }
    }
}

#[test]
fn lower_case_words() {
    use regex_automata::meta::Regex;
    use regex_automata::util::syntax;
    let patterns: Vec<String> = crate::detector::builtin_patterns()
        .into_iter()
        .filter(|p| {
            // The specially anchored ones are found from their anchors.
            !matches!(
                p.check,
                crate::validate::Check::Email
                    | crate::validate::Check::Ipv6
                    | crate::validate::Check::UrlCredentials
                    | crate::validate::Check::AwsSecret
            )
        })
        .map(|p| p.pattern)
        .collect();
    let re = Regex::builder()
        .syntax(syntax::Config::new().unicode(false).utf8(false))
        .build_many(&patterns)
        .unwrap();
    for value in ["bearer abcdefgh123", "basic dXNlcjpwYXNz", "eyJhbGciOiJI"] {
        assert!(lower_may_match(value.as_bytes()), "{value}");
    }
    // Whatever it drops has no match of a table pattern (after a blank:
    // `\b` holds).
    let alphabet = b"beaBrsicyJEARS 0123-_.=/+";
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for len in 1..24 {
        for _ in 0..3000 {
            let mut hay = vec![b' '];
            hay.extend((0..len).map(|_| random_byte(&mut seed, alphabet)));
            if !hay[1].is_ascii_lowercase() || lower_may_match(&hay[1..]) {
                continue;
            }
            let input = Input::new(&hay).range(1..).anchored(Anchored::Yes);
            assert_eq!(
                re.search(&input),
                None,
                "{:?}",
                String::from_utf8_lossy(&hay)
            );
        }
    }
}

#[test]
fn eight_digit_runs() {
    let check = |hay: &[u8], expect: bool| {
        assert_eq!(
            digits_may_match(&run_planes(hay), hay, 0),
            expect,
            "{hay:?}"
        );
        assert_eq!(reference(hay), expect, "{hay:?}");
    };
    // A DNI and an international number may have 8 digits …
    check(b"12345678Z", true);
    check(b"12345678-Z", true);
    check(b"+49 1515 7600", true);
    // … a status code with a size, an ISO date, or a split DNI not.
    check(b"200 93424 \"-\"", false);
    check(b"2024-05-01T12:00", false);
    check(b"1234567-8Z", false);
    check(b"12345678 Z", false);
    check(b"(1234) 5678", false);
    check(b"123456789", true);
}

#[test]
fn digit_runs_match_their_definition() {
    let alphabet = b"0123456789. -/()+ABabxX:";
    // Every string over the alphabet from a simple generator, runs
    // across the 64-byte blocks, from every position.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for len in 0..150 {
        for _ in 0..20 {
            let hay: Vec<u8> = (0..len).map(|_| random_byte(&mut seed, alphabet)).collect();
            let planes = run_planes(&hay);
            for p in 0..hay.len() {
                let expect = reference(&hay[p..]);
                assert_eq!(digits_may_match(&planes, &hay, p), expect, "{hay:?} {p}");
            }
        }
    }
}
