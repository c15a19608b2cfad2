//! A `tracing-subscriber` writer that scrubs each formatted line before it
//! reaches the real sink, for custos' own server and CLI logs:
//!
//! ```
//! # use custos_scrub::{MakeScrubWriter, Scrubber};
//! let scrubber = Scrubber::new_default()?;
//! let subscriber = tracing_subscriber::fmt()
//!     .with_writer(MakeScrubWriter::new(scrubber, std::io::stderr))
//!     .finish();
//! # drop(subscriber);
//! # Ok::<(), custos_scrub::ScrubError>(())
//! ```
//!
//! The formatter writes one event per writer; the writer buffers it and
//! scrubs complete lines, so a value is never split between two scans.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

use crate::{Report, Scrubber};

/// Wraps a [`MakeWriter`] so that everything written through it is scrubbed.
#[derive(Debug, Clone)]
pub struct MakeScrubWriter<M> {
    scrubber: Scrubber,
    inner: M,
}

impl<M> MakeScrubWriter<M> {
    /// Scrub with `scrubber` (text mode, so JSON-formatted logs work too),
    /// then write to `inner`.
    pub fn new(scrubber: Scrubber, inner: M) -> Self {
        Self { scrubber, inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for MakeScrubWriter<M> {
    type Writer = ScrubWriter<'a, M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubWriter::new(&self.scrubber, self.inner.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        ScrubWriter::new(&self.scrubber, self.inner.make_writer_for(meta))
    }
}

/// A writer that scrubs each complete line, and any rest on flush or drop.
///
/// Invariant: unscrubbed bytes only ever sit in `pending`; they reach the
/// inner writer after passing through the scrubber.
pub struct ScrubWriter<'a, W: Write> {
    scrubber: &'a Scrubber,
    inner: W,
    pending: Vec<u8>,
}

impl<W: Write> std::fmt::Debug for ScrubWriter<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScrubWriter")
    }
}

impl<'a, W: Write> ScrubWriter<'a, W> {
    /// Scrubs into `inner`.
    pub fn new(scrubber: &'a Scrubber, inner: W) -> Self {
        Self {
            scrubber,
            inner,
            pending: Vec::new(),
        }
    }

    fn emit(&mut self, upto: usize) -> io::Result<()> {
        let mut out = Vec::with_capacity(upto + 16);
        let head = self.pending.get(..upto).unwrap_or_default();
        self.scrubber.with_pooled_cache(|cache| {
            self.scrubber
                .scrub_into_with(cache, head, &mut out, &mut Report::default());
        });
        self.pending.drain(..upto);
        self.inner.write_all(&out)
    }
}

impl<W: Write> Write for ScrubWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(pos) = memchr::memrchr(b'\n', &self.pending) {
            self.emit(pos + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.emit(self.pending.len())?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for ScrubWriter<'_, W> {
    fn drop(&mut self) {
        // Nowhere to report a failure from a drop; the log line is lost, not leaked.
        let _ = self.flush();
    }
}
