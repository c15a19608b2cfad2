//! Streaming: constant memory on endless input. Input is read in 64 KiB
//! chunks; complete lines are scrubbed in blocks (in text mode one automaton
//! pass over the whole block). A line longer than [`MAX_LINE`] is cut at the
//! last blank before the cap (or at the cap) and processed piecewise as text;
//! a value straddling a hard cut of a blank-free megabyte may be missed.

use std::io::{ErrorKind, Read, Write};

use crate::scrubber::ScrubCache;
use crate::{Detector, Format, Report, ScrubError, Scrubber};

/// Bytes read per `read` call.
pub const CHUNK: usize = 64 * 1024;
/// Longest line processed whole; longer ones are split.
pub const MAX_LINE: usize = 1024 * 1024;
/// About how many bytes of lines are scrubbed in one go in text mode (no
/// pattern matches a line feed, so lines are independent).
const SUB_BLOCK: usize = 8 * 1024;

const BEGIN: &[u8] = b"-----BEGIN ";
const PRIVATE: &[u8] = b"PRIVATE KEY-----";
const END: &[u8] = b"-----END ";

struct State {
    cache: ScrubCache,
    report: Report,
    /// Inside a multi-line PEM private key block.
    in_pem: bool,
    /// The next bytes continue a line that was already split.
    overlong: bool,
    pem_enabled: bool,
    /// Whether the prefilter's marks tell if a piece holds [`BEGIN`].
    pem_from_marks: bool,
}

impl Scrubber {
    /// Scrubs `reader` into `writer` line by line until end of input, in
    /// bounded memory (about `MAX_LINE + 2 × CHUNK` plus output). Bytes that
    /// are not UTF-8 pass through. Returns the counts per detector.
    pub fn scrub_stream<R: Read, W: Write>(
        &self,
        mut reader: R,
        mut writer: W,
        format: Format,
    ) -> Result<Report, ScrubError> {
        let mut st = State {
            cache: self.cache(),
            report: Report::default(),
            in_pem: false,
            overlong: false,
            pem_enabled: self
                .detector_names()
                .iter()
                .any(|n| n == Detector::PemPrivateKey.name()),
            pem_from_marks: self.pem_begin_from_marks(),
        };
        // `buf[..len]` holds unprocessed input; the rest is room for the
        // next read, zeroed once when it grows rather than on every read.
        let mut buf: Vec<u8> = vec![0; CHUNK * 2];
        let mut len = 0;
        let mut out: Vec<u8> = Vec::with_capacity(CHUNK * 2);
        loop {
            let old = len;
            if buf.len() < old + CHUNK {
                buf.resize(old + CHUNK, 0);
            }
            let n = loop {
                match reader.read(buf.get_mut(old..old + CHUNK).unwrap_or_default()) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            len = old + n.min(CHUNK);
            st.report.bytes += n as u64;
            let data = buf.get(..len).unwrap_or_default();
            if n == 0 {
                if !data.is_empty() {
                    self.block(&mut st, data, format, &mut out);
                    st.report.lines += 1;
                }
                writer.write_all(&out)?;
                break;
            }
            let fresh = data.get(old..).unwrap_or_default();
            let mut cut = 0;
            if let Some(pos) = memchr::memrchr(b'\n', fresh) {
                cut = old + pos + 1;
                self.block(
                    &mut st,
                    data.get(..cut).unwrap_or_default(),
                    format,
                    &mut out,
                );
            } else if len >= MAX_LINE {
                let tail = data.get(len.saturating_sub(4096)..).unwrap_or_default();
                cut = tail
                    .iter()
                    .rposition(|b| *b == b' ' || *b == b'\t')
                    .map_or(len, |i| len - tail.len() + i + 1);
                let piece = data.get(..cut).unwrap_or_default();
                self.scrub_into_with(&mut st.cache, piece, &mut out, &mut st.report);
                st.overlong = true;
            }
            // Keep the unprocessed rest at the front.
            if cut > 0 {
                buf.copy_within(cut..len, 0);
                len -= cut;
            }
            if out.len() >= CHUNK {
                writer.write_all(&out)?;
                out.clear();
            }
        }
        writer.flush()?;
        Ok(st.report)
    }

    /// Scrubs a block of complete lines (the last may lack its newline only
    /// at end of input).
    fn block(&self, st: &mut State, mut block: &[u8], format: Format, out: &mut Vec<u8>) {
        if st.overlong {
            // The rest of a split line: text, whatever the format.
            let end = memchr::memchr(b'\n', block).map_or(block.len(), |i| i + 1);
            self.scrub_into_with(
                &mut st.cache,
                block.get(..end).unwrap_or_default(),
                out,
                &mut st.report,
            );
            st.report.lines += 1;
            st.overlong = false;
            block = block.get(end..).unwrap_or_default();
        }
        let newlines = memchr::memchr_iter(b'\n', block).count() as u64;
        // Where the prefilter's marks tell whether a piece holds `BEGIN`
        // (see `ScrubCache::pem_begin`), the block is scrubbed as text
        // first and only taken line by line if one does: the search of
        // its own cost about 0.5 instructions per byte, and blocks with a
        // PEM header are rare.
        let pem_here = st.pem_enabled
            && (st.in_pem || !st.pem_from_marks && memchr::memmem::find(block, BEGIN).is_some());
        if format == Format::Text && !pem_here {
            // Counts of earlier output stay (there are none: each block
            // and each line flushes its own), those of this one may go.
            self.flush_counts(&mut st.cache, &mut st.report);
            let mark = out.len();
            let mut begin = false;
            // In pieces of whole lines that stay in the L1 cache, with
            // their candidate marks, while the automaton walks them.
            // `BEGIN` holds no line feed, so it lies in one piece.
            let mut rest = block;
            while !rest.is_empty() && !begin {
                let end = match rest.get(SUB_BLOCK..).and_then(|r| memchr::memchr(b'\n', r)) {
                    Some(i) => SUB_BLOCK + i + 1,
                    None => rest.len(),
                };
                let (piece, tail) = rest.split_at(end.min(rest.len()));
                self.scrub_into_counting(&mut st.cache, piece, out);
                begin = st.pem_enabled && st.cache.pem_begin() == Some(true);
                rest = tail;
            }
            if begin {
                // A PEM header after all: line by line, as if the search
                // had found it.
                out.truncate(mark);
                self.discard_counts(&mut st.cache);
            } else {
                // Once per block, not per piece (see `scrub_into_counting`).
                self.flush_counts(&mut st.cache, &mut st.report);
                st.report.lines += newlines;
                return;
            }
        }
        for line in block.split_inclusive(|b| *b == b'\n') {
            let (body, nl) = match line.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (line, false),
            };
            if st.in_pem {
                if memchr::memmem::find(body, END).is_some() {
                    st.in_pem = false;
                }
                out.extend_from_slice(b"[PEM_PRIVATE_KEY]");
            } else {
                self.scrub_line_with(&mut st.cache, body, format, out, &mut st.report);
                if st.pem_enabled && pem_opens(body) {
                    st.in_pem = true;
                }
            }
            if nl {
                out.push(b'\n');
            }
        }
        st.report.lines += newlines;
    }
}

/// A BEGIN … PRIVATE KEY header with no END after it on the same line.
fn pem_opens(line: &[u8]) -> bool {
    let Some(b) = memchr::memmem::rfind(line, BEGIN) else {
        return false;
    };
    let rest = line.get(b..).unwrap_or_default();
    memchr::memmem::find(rest, PRIVATE).is_some() && memchr::memmem::find(rest, END).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_pem_is_redacted() {
        let s = Scrubber::new_default().unwrap();
        let input = "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----\nb\n";
        let mut out = Vec::new();
        let r = s
            .scrub_stream(input.as_bytes(), &mut out, Format::Text)
            .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("MIIE"), "{out}");
        assert_eq!(out.lines().count(), 6);
        assert_eq!(r.lines, 6);
        assert!(out.ends_with("b\n"));
    }

    /// A PEM header deep in a block of many pieces, found by the
    /// prefilter's marks after some pieces were scrubbed as text: the
    /// block is then scrubbed line by line, with the same output and
    /// counts as each line on its own.
    #[test]
    fn pem_header_late_in_a_block() {
        let s = Scrubber::new_default().unwrap();
        assert!(s.pem_begin_from_marks());
        let mut input = String::new();
        let mut expect = String::new();
        for i in 0..600 {
            let line = format!(
                "line {i} mail a{i}@example.com ip 10.0.{}.{} --- x\n",
                i % 7,
                i % 5
            );
            expect.push_str(&s.scrub_str(&line));
            input.push_str(&line);
        }
        input.push_str(
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n",
        );
        expect.push_str("[PEM_PRIVATE_KEY]\n[PEM_PRIVATE_KEY]\n[PEM_PRIVATE_KEY]\n");
        input.push_str("after b@example.com\n");
        expect.push_str("after [EMAIL]\n");
        assert!(input.len() > 3 * SUB_BLOCK && input.len() < CHUNK);
        let mut out = Vec::new();
        let r = s
            .scrub_stream(input.as_bytes(), &mut out, Format::Text)
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), expect);
        assert_eq!(r.counts.get("email"), Some(&601));
        assert_eq!(r.lines, 604);
    }

    #[test]
    fn very_long_lines_are_bounded() {
        let s = Scrubber::new_default().unwrap();
        let mut input = Vec::new();
        for _ in 0..300_000 {
            input.extend_from_slice(b"word john@example.com ");
        }
        input.push(b'\n');
        let mut out = Vec::new();
        let r = s
            .scrub_stream(input.as_slice(), &mut out, Format::Json)
            .unwrap();
        assert_eq!(r.counts.get("email"), Some(&300_000));
        assert_eq!(r.lines, 1);
        assert!(!out.windows(4).any(|w| w == b"john"));
    }
}
