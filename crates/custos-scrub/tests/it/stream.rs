//! Streaming: formats, invalid UTF-8, reports.

use custos_scrub::{Format, Scrubber};

fn run(input: &[u8], format: Format) -> (Vec<u8>, custos_scrub::Report) {
    let s = Scrubber::new_default().unwrap();
    let mut out = Vec::new();
    let report = s.scrub_stream(input, &mut out, format).unwrap();
    (out, report)
}

#[test]
fn invalid_utf8_passes_through() {
    let input = b"\xff\xfe ann@corp.io \xc3\x28\n\x80";
    let (out, report) = run(input, Format::Text);
    assert_eq!(out, b"\xff\xfe [EMAIL] \xc3\x28\n\x80");
    assert_eq!(report.lines, 2);
    assert_eq!(report.bytes, input.len() as u64);
    assert_eq!(report.counts.get("email"), Some(&1));
}

#[test]
fn json_lines() {
    let input = b"{\"ts\":1700000000000,\"msg\":\"login\",\"email\":\"ann@corp.io\",\"ip\":\"203.0.113.9\"}\nnot json ann@corp.io\n";
    let (out, report) = run(input, Format::Json);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"ts\":1700000000000,\"msg\":\"login\",\"email\":\"[EMAIL]\",\"ip\":\"[IPV4]\"}\nnot json [EMAIL]\n"
    );
    assert_eq!(report.total(), 3);
}

#[test]
fn logfmt_lines() {
    let (out, _) = run(
        b"at=info user=ann@corp.io msg=\"card 4111111111111111\"\n",
        Format::Logfmt,
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "at=info user=[EMAIL] msg=\"card [CARD]\"\n"
    );
}

#[test]
fn many_small_reads() {
    struct Trickle<'a>(&'a [u8]);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(3).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let s = Scrubber::new_default().unwrap();
    let input = "a ann@corp.io b\nc 203.0.113.9\n".repeat(50);
    let mut out = Vec::new();
    s.scrub_stream(Trickle(input.as_bytes()), &mut out, Format::Text)
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "a [EMAIL] b\nc [IPV4]\n".repeat(50)
    );
}
