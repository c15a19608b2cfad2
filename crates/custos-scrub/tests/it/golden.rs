//! Golden cases: each detector's true positives and near misses.

use custos_scrub::Scrubber;

use crate::scrub;

#[track_caller]
fn check(input: &str, expect: &str) {
    assert_eq!(scrub(input), expect, "input: {input}");
}

#[test]
fn email() {
    check("to john.doe+news@example.com.", "to [EMAIL].");
    check("jürgen@müller.de schrieb", "[EMAIL] schrieb");
    check("\"john doe\"@example.com", "[EMAIL]");
    check("xn--bcher-kva@xn--bcher-kva.example", "[EMAIL]");
    check("user=ann@corp.io;", "user=[EMAIL];");
    // Near misses.
    check("logo@2x.png", "logo@2x.png");
    check("root@localhost", "root@localhost");
    check("ping @example", "ping @example");
    check("a..b@example.com", "a..b@example.com");
}

#[test]
fn ipv4() {
    check("from 203.0.113.9:443", "from [IPV4]:443");
    check("client=8.8.8.8", "client=[IPV4]");
    // Near misses: versions, out-of-range octets, longer dotted numbers.
    check("version 1.2.3.4", "version 1.2.3.4");
    check("build=10.0.19041.1", "build=10.0.19041.1");
    check("v1.2.3.4", "v1.2.3.4");
    check("1.2.3.4.5", "1.2.3.4.5");
    check("999.1.1.1", "999.1.1.1");
    check("01.2.3.4", "01.2.3.4");
}

#[test]
fn keep_private_ips() {
    let s = Scrubber::builder().keep_private_ips(true).build().unwrap();
    assert_eq!(
        s.scrub_str("10.0.0.1 192.168.1.5 203.0.113.9 ::1 fe80::1"),
        "10.0.0.1 192.168.1.5 [IPV4] ::1 fe80::1"
    );
}

#[test]
fn ipv6() {
    check("ip 2001:db8::8a2e:370:7334 ok", "ip [IPV6] ok");
    check("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "[IPV6]");
    check("[fe80::1]:8080", "[[IPV6]]:8080");
    check("::ffff:192.0.2.1", "[IPV6]");
    // Near misses: times, MACs, paths, UUIDs.
    check("at 10:22:33", "at 10:22:33");
    check("aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff");
    check("std::fmt::Display", "std::fmt::Display");
    check("a::b", "a::b");
    check(
        "id 550e8400-e29b-41d4-a716-446655440000",
        "id 550e8400-e29b-41d4-a716-446655440000",
    );
}

#[test]
fn phone() {
    check("call +31 6 12345678 now", "call [PHONE] now");
    check("+44 20 7946 0958", "[PHONE]");
    check("+44 (0)20 7946 0958", "[PHONE]");
    check("0031 6 12345678", "[PHONE]");
    check("+1 (415) 555-2671", "[PHONE]");
    check("(415) 555-2671", "[PHONE]");
    check("415.555.2671", "[PHONE]");
    check("0612345678", "[PHONE]");
    check("06-12345678", "[PHONE]");
    check("020 7946 0958", "[PHONE]");
    check("06 12 34 56 78", "[PHONE]");
    check("+31 6 12345678 200", "[PHONE] 200");
    // Near misses: dates, times, epoch seconds, short numbers, bad country.
    check("2024-01-15 10:22:33", "2024-01-15 10:22:33");
    check("15.01.2024", "15.01.2024");
    check("ts 1700000000", "ts 1700000000");
    check("+12", "+12");
    check("+999 123456789", "+999 123456789");
    check("(115) 555-2671", "(115) 555-2671");
    check("0800 1234", "0800 1234");
}

#[test]
fn card() {
    check("card 4111 1111 1111 1111 ok", "card [CARD] ok");
    check("4111-1111-1111-1111", "[CARD]");
    check("4111111111111111", "[CARD]");
    check("5500 0000 0000 0004", "[CARD]");
    check("3782 822463 10005", "[CARD]");
    check("6011111111111117", "[CARD]");
    check("4111 1111 1111 1111 2024", "[CARD] 2024");
    // Near misses: Luhn failures, millisecond timestamps, UUID parts, order ids.
    check("4111111111111112", "4111111111111112");
    check("ts=1700000000000", "ts=1700000000000");
    check("ts=1712345678906", "ts=1712345678906");
    check("order 1234567890123", "order 1234567890123");
    check(
        "41111111-1111-1111-1111-111111111111",
        "41111111-1111-1111-1111-111111111111",
    );
    check("4111 1111-1111 1111", "4111 1111-1111 1111");
    check("pi 3.4111111111111111", "pi 3.4111111111111111");
}

#[test]
fn iban() {
    check("NL91ABNA0417164300", "[IBAN]");
    check("iban: DE89 3704 0044 0532 0130 00.", "iban: [IBAN].");
    check("GB82 WEST 1234 5698 7654 32 EUR", "[IBAN] EUR");
    check("NL91ABNA0417164301", "NL91ABNA0417164301");
    check("XX91ABNA0417164300", "XX91ABNA0417164300");
}

#[test]
fn national_ids() {
    check("bsn 111222333", "bsn [NL_BSN]");
    check("bsn 1112.22.333", "bsn [NL_BSN]");
    check("bsn 111222334", "bsn 111222334");
    check("nino AB123456C", "nino [UK_NINO]");
    check("nino AB 12 34 56 C", "nino [UK_NINO]");
    check("nino GB123456C", "nino GB123456C");
    check("ssn 536-90-4399", "ssn [US_SSN]");
    check(
        "ssn 666-12-3456 000-12-3456 123-00-4567",
        "ssn 666-12-3456 000-12-3456 123-00-4567",
    );
    check("steuer-id 86095742719", "steuer-id [DE_TAXID]");
    check("steuer-id 86095742718", "steuer-id 86095742718");
    check("nir 2 55 08 14 168 025 38", "nir [FR_NIR]");
    check("nir 255081416802538", "nir [FR_NIR]");
    check("nir 2 55 08 14 168 025 39", "nir 2 55 08 14 168 025 39");
    check("dni 12345678Z nie X1234567L", "dni [ES_DNI] nie [ES_DNI]");
    check("dni 12345678A", "dni 12345678A");
    check("cf RSSMRA85T10A562S", "cf [IT_CF]");
    check("cf RSSMRA85T10A562T", "cf RSSMRA85T10A562T");
}

#[test]
fn secrets() {
    check(
        "token eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end",
        "token [JWT] end",
    );
    check(
        "Authorization: Bearer abc123def456ghi789",
        "Authorization: Bearer [BEARER]",
    );
    check(
        "Authorization: Basic dXNlcjpwYXNzd29yZA==",
        "Authorization: Basic [BEARER]",
    );
    check(
        "postgres://admin:s3cret@db.internal:5432/app",
        "postgres://[URL_CREDENTIALS]@db.internal:5432/app",
    );
    check("key AKIAIOSFODNN7EXAMPLE", "key [AWS_KEY]");
    check(
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key = [AWS_KEY]",
    );
    check(
        r#"{"key":"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----"}"#,
        r#"{"key":"[PEM_PRIVATE_KEY]"}"#,
    );
    // Near misses.
    check("bearer instruments", "bearer instruments");
    check(
        "basic understanding of things",
        "basic understanding of things",
    );
    check("https://example.com/a:b@c", "https://example.com/a:b@c");
    check("eyJhbGciOi", "eyJhbGciOi");
}

#[test]
fn mixed_log_lines() {
    check(
        r#"203.0.113.9 - - [15/Jan/2024:10:22:33 +0000] "GET /u?mail=ann@corp.io HTTP/1.1" 200 5123 "-" "Mozilla/5.0""#,
        r#"[IPV4] - - [15/Jan/2024:10:22:33 +0000] "GET /u?mail=[EMAIL] HTTP/1.1" 200 5123 "-" "Mozilla/5.0""#,
    );
    check(
        "2024-01-15T10:22:33.123Z INFO request_id=550e8400-e29b-41d4-a716-446655440000 took 12.5ms v2.3.1",
        "2024-01-15T10:22:33.123Z INFO request_id=550e8400-e29b-41d4-a716-446655440000 took 12.5ms v2.3.1",
    );
}
