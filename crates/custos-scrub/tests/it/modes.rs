//! Replacement modes, allow-lists, custom detectors, detector selection.

use custos_scrub::{
    CustomDetector, Mode, ScrubConfig, ScrubError, ScrubKey, Scrubber, ValidatorName,
};

fn key() -> ScrubKey {
    ScrubKey::from_bytes([7; 32])
}

#[test]
fn mask_keeps_format() {
    let s = Scrubber::builder().mode(Mode::Mask).build().unwrap();
    assert_eq!(
        s.scrub_str("j.doe@example.com 4111 1111 1111 1111 AKIAIOSFODNN7EXAMPLE"),
        "j***@example.com **** **** **** 1111 [AWS_KEY]"
    );
}

#[test]
fn pseudonyms_are_stable_and_keyed() {
    let s = Scrubber::builder()
        .mode(Mode::Pseudonymize)
        .key(key())
        .build()
        .unwrap();
    let a = s.scrub_str("John@Example.com").into_owned();
    let b = s.scrub_str("john@example.com").into_owned();
    assert_eq!(a, b);
    assert!(a.starts_with("email:") && a.len() == 14, "{a}");
    assert_eq!(
        a,
        key().pseudonym(&custos_scrub::Detector::Email, b"john@example.com")
    );
    let other = Scrubber::builder()
        .mode(Mode::Pseudonymize)
        .key(ScrubKey::from_bytes([8; 32]))
        .build()
        .unwrap();
    assert_ne!(other.scrub_str("john@example.com"), a);
    // Card formatting does not change the pseudonym.
    assert_eq!(
        s.scrub_str("4111 1111 1111 1111"),
        s.scrub_str("4111-1111-1111-1111")
    );
}

#[test]
fn hash_mode() {
    let s = Scrubber::builder()
        .mode(Mode::Hash)
        .key(key())
        .build()
        .unwrap();
    let out = s.scrub_str("ann@corp.io");
    assert!(
        out.starts_with("<hash:email:")
            && out.ends_with('>')
            && out.len() == "<hash:email:>".len() + 32
    );
}

#[test]
fn keyed_modes_refuse_without_key() {
    for mode in [Mode::Pseudonymize, Mode::Hash] {
        let err = Scrubber::builder().mode(mode).build().unwrap_err();
        assert_eq!(err.code(), "scrub.missing_key");
    }
}

#[test]
fn allow_list() {
    let s = Scrubber::builder()
        .allow(["Support@Custos.example"])
        .build()
        .unwrap();
    assert_eq!(
        s.scrub_str("support@custos.example ann@corp.io"),
        "support@custos.example [EMAIL]"
    );
}

#[test]
fn detect_and_skip() {
    let s = Scrubber::builder().detect(["email"]).build().unwrap();
    assert_eq!(
        s.scrub_str("ann@corp.io 203.0.113.9"),
        "[EMAIL] 203.0.113.9"
    );
    let s = Scrubber::builder().skip(["email"]).build().unwrap();
    assert_eq!(s.scrub_str("ann@corp.io 203.0.113.9"), "ann@corp.io [IPV4]");
    let err = Scrubber::builder().skip(["nope"]).build().unwrap_err();
    assert!(matches!(err, ScrubError::UnknownDetector { .. }));
}

#[test]
fn custom_detectors() {
    let s = Scrubber::builder()
        .custom(CustomDetector {
            name: "member_card".into(),
            pattern: r"\bM-\d{16}\b".into(),
            validator: Some(ValidatorName::Luhn),
        })
        .build()
        .unwrap();
    assert_eq!(
        s.scrub_str("M-4111111111111111 M-4111111111111112"),
        "[MEMBER_CARD] M-4111111111111112"
    );
    let cfg = ScrubConfig::from_toml(
        "allow = [\"ann@corp.io\"]\n[[detector]]\nname = \"ticket\"\npattern = 'TCK-[0-9]{6}'\n",
    )
    .unwrap();
    let s = Scrubber::builder().config(&cfg).unwrap().build().unwrap();
    assert_eq!(
        s.scrub_str("TCK-123456 by ann@corp.io"),
        "[TICKET] by ann@corp.io"
    );
    let bad = Scrubber::builder()
        .custom(CustomDetector {
            name: "email".into(),
            pattern: "x".into(),
            validator: None,
        })
        .build();
    assert!(matches!(bad, Err(ScrubError::BadDetectorName { .. })));
    let bad = Scrubber::builder()
        .custom(CustomDetector {
            name: "x".into(),
            pattern: "(".into(),
            validator: None,
        })
        .build();
    assert!(matches!(bad, Err(ScrubError::BadPattern { .. })));
}

#[test]
fn json_value_api() {
    let s = Scrubber::new_default().unwrap();
    let mut v = serde_json::json!({"user": {"email": "ann@corp.io", "card": 4111111111111111u64, "n": 3}, "ann@corp.io": true});
    let mut report = custos_scrub::Report::default();
    s.scrub_json_value(&mut v, &mut report);
    assert_eq!(
        v,
        serde_json::json!({"user": {"email": "[EMAIL]", "card": "[CARD]", "n": 3}, "ann@corp.io": true})
    );
    assert_eq!(report.total(), 2);
}

#[test]
fn errors_and_debug_carry_no_values() {
    let s = Scrubber::builder()
        .mode(Mode::Pseudonymize)
        .key(key())
        .build()
        .unwrap();
    let dbg = format!("{s:?} {:?}", s.find(b"ann@corp.io"));
    assert!(
        !dbg.contains("ann@corp.io") && !dbg.contains("7, 7"),
        "{dbg}"
    );
}
