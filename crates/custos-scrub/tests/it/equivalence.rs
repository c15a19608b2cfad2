//! The candidate prefilter (anchored searches at possible starts) must give
//! exactly what the plain unanchored search over every byte gives.

use std::sync::OnceLock;

use custos_scrub::{CustomDetector, Scrubber, ValidatorName};
use proptest::prelude::*;

use crate::VALUES;

fn scrubbers() -> &'static [Scrubber] {
    static S: OnceLock<Vec<Scrubber>> = OnceLock::new();
    S.get_or_init(|| {
        vec![
            Scrubber::new_default().unwrap(),
            Scrubber::builder().keep_private_ips(true).build().unwrap(),
            Scrubber::builder().skip(["ipv4", "card"]).build().unwrap(),
            Scrubber::builder()
                .detect(["email", "url_credentials"])
                .build()
                .unwrap(),
            Scrubber::builder()
                .custom(CustomDetector {
                    name: "order_card".into(),
                    pattern: r"\bORD-\d{16}\b".into(),
                    validator: Some(ValidatorName::Luhn),
                })
                .custom(CustomDetector {
                    name: "ticket".into(),
                    pattern: r"(?i)tkt[0-9]{3,}".into(),
                    validator: None,
                })
                .build()
                .unwrap(),
        ]
    })
}

/// Fragments chosen to hit every special anchor and its near misses.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(VALUES).prop_map(|(_, v)| v.to_string()),
        2 => "[a-zA-Z]{1,8}",
        2 => "[0-9]{1,20}",
        2 => "[0-9]{1,4}(\\.[0-9]{1,4}){0,4}[a-z_.:]?",
        2 => "[0-9a-fA-F:.\\-]{1,24}",
        2 => "[a-z0-9.\"+_%\\- ]{0,10}@[a-z0-9.\\-é]{0,12}",
        1 => "[a-z+.]{1,8}://[a-z:]{0,8}@?[a-z.]{0,8}",
        1 => "(?i)aws_?secret_?access_?key[\"']?[ :=]{1,3}[A-Za-z0-9/+]{38,41}",
        1 => "(Bearer|basic|eyJ|-----BEGIN|PRIVATE KEY-----|ORD-|TKT) ?[A-Za-z0-9+/=]{0,20}",
        1 => proptest::sample::select(vec![
            "é", "日本", "=", ":", "::", "\"", "@", "(", ")", "+", "-", "/", "\n", "\t", "\u{80}",
            "[EMAIL]", "v", "version", "ORD-4111111111111111", "tkt123",
        ])
        .prop_map(str::to_string),
    ]
}

fn text() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(fragment(), 0..16),
        proptest::sample::select(vec!["", " ", ",", "\n"]),
    )
        .prop_map(|(parts, sep)| parts.join(sep))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn prefilter_matches_reference(input in text()) {
        for s in scrubbers() {
            prop_assert_eq!(s.find(input.as_bytes()), s.find_reference(input.as_bytes()));
        }
    }

    #[test]
    fn prefilter_matches_reference_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for s in scrubbers() {
            prop_assert_eq!(s.find(&bytes), s.find_reference(&bytes));
        }
    }
}

#[test]
fn prefilter_matches_reference_on_samples() {
    let lines = [
        "149.215.232.100- - [17/Nov/1993:12:54:24 +0000] \"GET /a?q=1618139156&x=25.252.129.83 HTTP/1.1\" 200",
        "{\"ts\":\"1990-08-29T01:14:27.309Z\",\"data\":\"amendez@example.org\",\"id\":\"1631c3fc-eff4-47e7-b620-b87cc291bdc5\"}",
        "x.y\"a b\"@ex.com .a.b@c.de \"q\"@x.io a@b@c.de ::1 fe80::1%eth0 1::2:3:4:5:6:7 https://u:p@h/x",
        "MyAWS_Secret_Access_Key = \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYab\" aws_secret_access_key:abc",
        "-----BEGIN RSA PRIVATE KEY-----MIIEpAIBAAKCAQEA-----END RSA PRIVATE KEY----- Bearer abc.def-123_456",
        // Digit-run shortcut: short numbers are skipped, values with
        // separators, parentheses and NIR department letters are not.
        "[17/Nov/1993:12:54:24 +0000] 200 93424 1.2.3.4 v1.2 5.0 (0)6 12 34 56 78 +33 (0)6 12 34 56 78",
        "2 55 08 2A 168 025 38 / 1 85 05 2B 123 456 78 / 12345678-Z 1234.56.789 (415) 555-2671 00 31 6 1234 5678",
        // IPv6 anchors: colons in runs without `::` or seven colons are skipped.
        "12:54:24 a:b fe80::1 1:2:3:4:5:6:7:8 ::ffff:1.2.3.4 de:ad:be:ef:1:2:3 2001:db8:0:0:0:0:2:1 1::",
    ];
    for s in scrubbers() {
        for l in lines {
            assert_eq!(s.find(l.as_bytes()), s.find_reference(l.as_bytes()), "{l}");
        }
    }
}
