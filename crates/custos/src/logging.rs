//! Logging of the binary: `tracing` to stderr, level from `--log` / `CUSTOS_LOG`
//! (default `info,sqlx=warn`), every byte passed through the scrubber first, so a
//! personal value that reaches a log line (an error message quoting input,
//! a library's debug output) is redacted before it leaves the process.

use custos_scrub::{MakeScrubWriter, Scrubber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The log filter when none is given.
pub(crate) const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// Starts logging at the levels of `filter` (`--log` / `CUSTOS_LOG`); a
/// filter that does not parse falls back to the default, with a warning.
pub(crate) fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| {
        eprintln!(
            "warning: the log filter (--log / CUSTOS_LOG) does not parse; using {DEFAULT_FILTER}"
        );
        EnvFilter::new(DEFAULT_FILTER)
    });
    match scrubbed(filter, std::io::stderr) {
        Ok(subscriber) => {
            let _ = tracing::subscriber::set_global_default(subscriber);
        }
        Err(e) => {
            // Without a scrubber nothing is logged; this message is about
            // the scrubber itself and carries no personal data.
            eprintln!("error: the log scrubber failed to build ({e}); logging is off");
        }
    }
}

/// The subscriber: human-readable lines, no colours, written through the
/// scrubber to `inner`.
fn scrubbed<W>(
    filter: EnvFilter,
    inner: W,
) -> Result<impl tracing::Subscriber + Send + Sync, custos_scrub::ScrubError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let scrubber = Scrubber::new_default()?;
    Ok(tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(MakeScrubWriter::new(scrubber, inner))
        .finish())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    const PERSONAL: &[&str] = &[
        "jane.doe@example.com",
        "+31 6 12345678",
        "4111 1111 1111 1111",
        "NL91ABNA0417164300",
        "203.0.113.77",
        "078-05-1120",
        "AKIAIOSFODNN7EXAMPLE",
    ];

    #[derive(Debug, thiserror::Error)]
    #[error("lookup of {0} failed")]
    struct LeakyError(String);

    #[test]
    fn personal_data_never_reaches_the_log_at_any_level() {
        let buf = Buffer::default();
        let subscriber = scrubbed(EnvFilter::new("trace"), buf.clone()).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            for v in PERSONAL {
                tracing::trace!("trace {v}");
                tracing::debug!(value = %v, "debug");
                tracing::info!(value = ?v, "info");
                tracing::warn!("warn: user {v} did something");
                tracing::error!(error = %LeakyError((*v).to_owned()), "error path");
                let e = anyhow::Error::new(LeakyError((*v).to_owned())).context("outer");
                tracing::error!("{e:#}");
                let span = tracing::info_span!("request", who = %v);
                let _g = span.enter();
                tracing::info!("inside a span");
            }
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(out.lines().count() >= PERSONAL.len() * 7, "{out}");
        for v in PERSONAL {
            assert!(!out.contains(v), "{v} leaked:\n{out}");
        }
        assert!(out.contains("[EMAIL]"), "{out}");
    }
}
