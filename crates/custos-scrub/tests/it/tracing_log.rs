//! Personal data logged at every level, in fields, messages, spans and
//! error chains, never reaches the sink.

use std::io::Write;
use std::sync::{Arc, Mutex};

use custos_scrub::{MakeScrubWriter, Scrubber};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

struct SinkWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = SinkWriter;
    fn make_writer(&'a self) -> SinkWriter {
        SinkWriter(self.0.clone())
    }
}

#[derive(Debug)]
struct LoginError {
    email: String,
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no account for {}", self.email)
    }
}

impl std::error::Error for LoginError {}

const SECRETS: &[&str] = &[
    "ann@corp.io",
    "203.0.113.9",
    "4111 1111 1111 1111",
    "+31 6 12345678",
    "536-90-4399",
    "NL91ABNA0417164300",
    "AKIAIOSFODNN7EXAMPLE",
    "s3cret",
];

fn log_everything() {
    let err = LoginError {
        email: "ann@corp.io".into(),
    };
    let span = tracing::info_span!("request", client = "203.0.113.9");
    let _guard = span.enter();
    tracing::error!(%err, "login failed for ann@corp.io");
    tracing::error!(error = &err as &dyn std::error::Error, "boxed");
    tracing::warn!(card = "4111 1111 1111 1111", "payment");
    tracing::info!("phone +31 6 12345678 ssn 536-90-4399");
    tracing::debug!(iban = ?"NL91ABNA0417164300", "debug field");
    tracing::trace!(
        key = "AKIAIOSFODNN7EXAMPLE",
        url = "postgres://app:s3cret@db/app",
        "trace"
    );
}

fn assert_clean(output: &str) {
    assert!(output.lines().count() >= 6, "too few lines: {output}");
    for s in SECRETS {
        assert!(!output.contains(s), "{s} leaked into: {output}");
    }
    assert!(output.contains("[EMAIL]") && output.contains("[CARD]"));
}

#[test]
fn text_logs_are_scrubbed() {
    let sink = Sink::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(MakeScrubWriter::new(
            Scrubber::new_default().unwrap(),
            sink.clone(),
        ))
        .finish();
    tracing::subscriber::with_default(subscriber, log_everything);
    let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert_clean(&out);
}

#[test]
fn json_logs_are_scrubbed() {
    let sink = Sink::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(MakeScrubWriter::new(
            Scrubber::new_default().unwrap(),
            sink.clone(),
        ))
        .finish();
    tracing::subscriber::with_default(subscriber, log_everything);
    let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert_clean(&out);
    for line in out.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
}
