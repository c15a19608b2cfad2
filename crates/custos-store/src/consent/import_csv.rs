//! Reading a consent import file (`custos consent import`): CSV with a
//! header row naming the columns in any order, then one record per event.
//! Parsing only — the header checks, each record's fields with the line it
//! starts on, and what is wrong with a record — so that it can be unit
//! tested and fuzzed apart from the store and the command line, which
//! turns rows into [`ImportEvent`](crate::ImportEvent)s.
//!
//! Invariants: no input makes the reader panic; every row carries a line
//! ≥ 1, and lines never decrease from one row to the next. Errors and rows
//! name the file, the line and the field, never a value (a header cell is
//! echoed only when it is not a known column name).

use std::io::{BufRead, BufReader, Read};

/// One column the header may name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Col {
    /// `subject`: a `sub_…` id.
    Subject,
    /// `external_id`: the controller's own id for the person.
    ExternalId,
    /// `purpose`: a purpose id of the data map.
    Purpose,
    /// `action`: grant, withdraw or object.
    Action,
    /// `at`: when it happened (RFC 3339 or a date).
    At,
    /// `version`: the policy version shown.
    Version,
    /// `channel`: where it happened (default `import`).
    Channel,
    /// `ip`: proof, sealed under the subject's key.
    Ip,
    /// `user_agent`: proof, sealed under the subject's key.
    UserAgent,
    /// `form_id`: the form the person filled in.
    FormId,
    /// `affirmative`: the person acted (true/false).
    Affirmative,
    /// `gpc`: a Global Privacy Control signal (true/false).
    Gpc,
}

/// Every column with its name in the header.
pub const COLUMNS: [(Col, &str); 12] = [
    (Col::Subject, "subject"),
    (Col::ExternalId, "external_id"),
    (Col::Purpose, "purpose"),
    (Col::Action, "action"),
    (Col::At, "at"),
    (Col::Version, "version"),
    (Col::Channel, "channel"),
    (Col::Ip, "ip"),
    (Col::UserAgent, "user_agent"),
    (Col::FormId, "form_id"),
    (Col::Affirmative, "affirmative"),
    (Col::Gpc, "gpc"),
];

impl Col {
    /// The column a header cell names (surrounding blanks ignored).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        COLUMNS.iter().find(|(_, n)| *n == s).map(|(c, _)| *c)
    }

    /// Its name in the header (and in reports of rejected lines).
    pub fn name(self) -> &'static str {
        COLUMNS
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("line", |(_, n)| n)
    }
}

/// Why an import file cannot be read at all. The messages start with
/// `FILE:LINE:`, the form `custos consent import` prints, and never quote
/// a value of a record.
#[derive(Debug, thiserror::Error)]
pub enum ImportCsvError {
    /// The header could not be read (I/O).
    #[error("{file}:1: reading the header")]
    HeaderIo {
        /// The file's name.
        file: String,
        /// The failed read.
        source: std::io::Error,
    },
    /// The header could not be read (CSV reader).
    #[error("{file}:1: reading the header")]
    HeaderRead {
        /// The file's name.
        file: String,
        /// The failed read.
        source: csv::Error,
    },
    /// Nothing but blank lines (or nothing at all).
    #[error("{file}:1: empty file; expected a header row")]
    Empty {
        /// The file's name.
        file: String,
    },
    /// The header's quotes run on to the end of the file.
    #[error("{file}:{line}: a quoted field of the header is never closed")]
    HeaderQuoteNotClosed {
        /// The file's name.
        file: String,
        /// The line the header starts on.
        line: u64,
    },
    /// A header cell is not UTF-8.
    #[error("{file}:{line}: column {column} is not valid UTF-8")]
    HeaderNotUtf8 {
        /// The file's name.
        file: String,
        /// The line the header starts on.
        line: u64,
        /// The column, from 1.
        column: usize,
    },
    /// A column is named twice.
    #[error("{file}:{line}: column {column} ({name:?}) appears twice")]
    DuplicateColumn {
        /// The file's name.
        file: String,
        /// The line the header starts on.
        line: u64,
        /// The second column naming it, from 1.
        column: usize,
        /// The header cell.
        name: String,
    },
    /// A header cell names no column.
    #[error(
        "{file}:{line}: unknown column {shown}; expected subject or external_id, purpose, action, at, and optionally version, channel, ip, user_agent, form_id, affirmative, gpc"
    )]
    UnknownColumn {
        /// The file's name.
        file: String,
        /// The line the header starts on.
        line: u64,
        /// The header cell quoted when it reads like a column name (a typo:
        /// `"actoin"`), else only its position: in a file without a header
        /// row the first line is a person's data.
        shown: String,
    },
    /// A required column is missing.
    #[error("{file}:{line}: the header lacks the {column:?} column")]
    MissingColumn {
        /// The file's name.
        file: String,
        /// The line the header starts on.
        line: u64,
        /// The column missing.
        column: Col,
    },
    /// Neither `subject` nor `external_id` is in the header.
    #[error("{file}:{line}: the header needs a subject or an external_id column")]
    NoSubjectColumn {
        /// The file's name.
        file: String,
        /// The line the header starts on.
        line: u64,
    },
    /// A record could not be read (I/O).
    #[error("{file}:{line}: reading")]
    Read {
        /// The file's name.
        file: String,
        /// The line the record starts on.
        line: u64,
        /// The failed read.
        source: csv::Error,
    },
}

/// What is wrong with a record: the field (a column name, or `line`) and
/// why; never the value.
pub type Bad = (&'static str, &'static str);

/// One record of the import file.
#[derive(Debug)]
pub struct Row {
    /// The line it starts on (a quoted field may span lines).
    pub line: u64,
    /// Its fields in header order, or which one is wrong.
    pub fields: Result<Vec<String>, Bad>,
}

/// Follows the import file on its way into the CSV reader. The csv crate
/// reports no error for a quoted field that is never closed: the field
/// runs on to the end of the input. Such a field swallows this line too,
/// so the file's quotes are all closed exactly when the last record read
/// is [`END_FIELD`] alone (see [`ImportReader::next_row`]). It also ends
/// the file's last line, so that every record but such a one ends with
/// `\n`.
const END_MARK: &[u8] = b"\n\0custos: end of input\0\n";
/// The one field of the record that [`END_MARK`] ends the input with.
const END_FIELD: &[u8] = b"\0custos: end of input\0";

/// A record as read, with the line count when it was read.
#[derive(Default)]
struct ReadRecord {
    rec: csv::ByteRecord,
    /// Lines begun up to the end of the record (`\n` read so far + 1).
    end_line: u64,
}

impl ReadRecord {
    /// The line the record starts on: the lines it spans (newlines in
    /// quoted fields) and its own line end (`terminated`) counted back from
    /// where reading it ended. Empty lines before it were read with it and
    /// stay counted.
    fn start_line(&self, terminated: bool) -> u64 {
        let inside = self.rec.as_slice().iter().filter(|b| **b == b'\n').count() as u64;
        self.end_line
            .saturating_sub(inside + u64::from(terminated))
            .max(1)
    }
}

/// The import file read as CSV (RFC 4180 quoting, `\n` or `\r\n` line
/// ends, a UTF-8 byte order mark tolerated): a header row naming the
/// columns in any order, then records of as many fields, each handed out
/// with the line it starts on. Empty and blank lines are skipped.
///
/// Records end at `\n` only (the csv crate's default also ends them at a
/// lone `\r`, which `custos consent import` never did, and its record
/// positions count a `\r\n` line end with the next record): a `\r` that
/// ends a line's last field is the `\r` of its `\r\n` and is dropped.
pub struct ImportReader<R: Read> {
    csv: csv::Reader<std::io::Chain<BufReader<R>, &'static [u8]>>,
    name: String,
    cols: Vec<Col>,
    /// The record handed out next…
    cur: ReadRecord,
    /// …and the one after it, read ahead to tell the last record.
    ahead: ReadRecord,
    done: bool,
}

impl<R: Read> ImportReader<R> {
    /// Reads and checks the header of `input` (called `name` in errors).
    pub fn new(input: R, name: &str) -> Result<Self, ImportCsvError> {
        let file = || name.to_owned();
        let mut input = BufReader::with_capacity(1 << 16, input);
        if input
            .fill_buf()
            .map_err(|source| ImportCsvError::HeaderIo {
                file: file(),
                source,
            })?
            .starts_with(b"\xEF\xBB\xBF")
        {
            input.consume(3);
        }
        let csv = csv::ReaderBuilder::new()
            .has_headers(false)
            // Records with the wrong number of fields are reported per line.
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(1 << 16)
            .from_reader(input.chain(END_MARK));
        let mut r = Self {
            csv,
            name: file(),
            cols: Vec::new(),
            cur: ReadRecord::default(),
            ahead: ReadRecord::default(),
            done: false,
        };
        let read = |r: &mut Self| {
            r.read_ahead().map_err(|source| ImportCsvError::HeaderRead {
                file: file(),
                source,
            })
        };
        let mut more = read(&mut r)?;
        while more && is_blank(&r.ahead.rec) {
            more = read(&mut r)?;
        }
        if !more || is_end(&r.ahead.rec) {
            return Err(ImportCsvError::Empty { file: file() });
        }
        std::mem::swap(&mut r.cur, &mut r.ahead);
        if !read(&mut r)? {
            let line = r.cur.start_line(false);
            return Err(ImportCsvError::HeaderQuoteNotClosed { file: file(), line });
        }
        let line = r.cur.start_line(true);
        let n = r.cur.rec.len();
        for (i, h) in r.cur.rec.iter().enumerate() {
            let column = i + 1;
            let h = std::str::from_utf8(field(h, column == n)).map_err(|_| {
                ImportCsvError::HeaderNotUtf8 {
                    file: file(),
                    line,
                    column,
                }
            })?;
            match Col::parse(h) {
                Some(c) if !r.cols.contains(&c) => r.cols.push(c),
                Some(_) => {
                    return Err(ImportCsvError::DuplicateColumn {
                        file: file(),
                        line,
                        column,
                        name: h.to_owned(),
                    })
                }
                None => {
                    let like_a_name = (1..=32).contains(&h.len())
                        && h.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
                    let shown = if like_a_name {
                        format!("{h:?}")
                    } else {
                        format!("{column} (not shown: does the file start with a header row?)")
                    };
                    return Err(ImportCsvError::UnknownColumn {
                        file: file(),
                        line,
                        shown,
                    });
                }
            }
        }
        for column in [Col::Purpose, Col::Action, Col::At] {
            if !r.cols.contains(&column) {
                return Err(ImportCsvError::MissingColumn {
                    file: file(),
                    line,
                    column,
                });
            }
        }
        if !r.cols.contains(&Col::Subject) && !r.cols.contains(&Col::ExternalId) {
            return Err(ImportCsvError::NoSubjectColumn { file: file(), line });
        }
        Ok(r)
    }

    /// The header's columns, in the order of every row's fields.
    pub fn cols(&self) -> &[Col] {
        &self.cols
    }

    fn read_ahead(&mut self) -> csv::Result<bool> {
        let more = self.csv.read_byte_record(&mut self.ahead.rec)?;
        self.ahead.end_line = self.csv.position().line();
        Ok(more)
    }

    /// The next record, `None` at the end of the file. Only a failed read
    /// is an error; a bad record is a [`Row`] that says what is wrong.
    pub fn next_row(&mut self) -> Result<Option<Row>, ImportCsvError> {
        while !self.done {
            std::mem::swap(&mut self.cur, &mut self.ahead);
            let more = self.read_ahead().map_err(|source| ImportCsvError::Read {
                file: self.name.clone(),
                line: self.cur.start_line(true),
                source,
            })?;
            if !more {
                self.done = true;
                if is_end(&self.cur.rec) {
                    return Ok(None);
                }
                // The record ran on through END_MARK to the end.
                return Ok(Some(Row {
                    line: self.cur.start_line(false),
                    fields: Err(("line", "a quoted field is never closed")),
                }));
            }
            if is_blank(&self.cur.rec) {
                continue;
            }
            return Ok(Some(Row {
                line: self.cur.start_line(true),
                fields: fields(&self.cols, &self.cur.rec),
            }));
        }
        Ok(None)
    }
}

fn is_end(rec: &csv::ByteRecord) -> bool {
    rec.len() == 1 && rec.get(0) == Some(END_FIELD)
}

/// A line of spaces only (the csv crate skips empty lines itself).
fn is_blank(rec: &csv::ByteRecord) -> bool {
    rec.len() == 1
        && rec
            .get(0)
            .and_then(|f| std::str::from_utf8(f).ok())
            .is_some_and(|f| f.trim().is_empty())
}

/// A field's bytes; the last of a record without the `\r` of a `\r\n`
/// line end (see [`ImportReader`]).
fn field(f: &[u8], last: bool) -> &[u8] {
    match f.split_last() {
        Some((b'\r', rest)) if last => rest,
        _ => f,
    }
}

/// The record's fields as text, one per column.
fn fields(cols: &[Col], rec: &csv::ByteRecord) -> Result<Vec<String>, Bad> {
    if rec.len() != cols.len() {
        return Err((
            "line",
            "wrong number of fields for the header (quote values that contain commas)",
        ));
    }
    let n = cols.len();
    cols.iter()
        .zip(rec)
        .enumerate()
        .map(|(i, (c, f))| {
            std::str::from_utf8(field(f, i + 1 == n))
                .map(str::to_owned)
                .map_err(|_| (c.name(), "not valid UTF-8"))
        })
        .collect()
}

#[cfg(test)]
mod tests;
