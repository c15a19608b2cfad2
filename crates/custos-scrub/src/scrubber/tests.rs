//! Unit tests of the engine: every shortcut of the search (digit runs,
//! dotted quads, e-mail and IBAN reads, the prefilter) against the plain
//! walk or the single patterns, and the basic redaction.

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
    /// wins there, and [`email_end`] gives the e-mail pattern's
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
                    // The walk takes the first pattern that matches: a
                    // read-off e-mail may stand in for it only where no
                    // other pattern matches, or the e-mail pattern comes
                    // first and matches too.
                    for pid in (0..s.inner.specs.len()).filter(|&pid| pid != email) {
                        if s.match_one(&mut cache, hay, p, pid).is_some() {
                            proptest::prop_assert!(
                                expect.is_some() && email < pid,
                                "pattern {} matches at {} of {:?}", pid, p, String::from_utf8_lossy(hay)
                            );
                        }
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
