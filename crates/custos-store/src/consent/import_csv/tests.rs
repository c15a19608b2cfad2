//! The import reader: quoting, line numbers, header errors, and property
//! tests against what the csv crate's writer writes and arbitrary bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use proptest::prelude::*;

/// The header's columns and every record of `input`.
fn read_all(input: &[u8]) -> Result<(Vec<Col>, Vec<Row>), ImportCsvError> {
    let mut r = ImportReader::new(input, "f.csv")?;
    let mut rows = Vec::new();
    while let Some(row) = r.next_row()? {
        rows.push(row);
    }
    Ok((r.cols().to_vec(), rows))
}

fn header_error(input: &[u8]) -> String {
    match read_all(input) {
        Ok(_) => panic!("no error for {input:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn csv_quoting() {
    let (_, rows) =
        read_all(b"subject,purpose,action,at,gpc\na,\"b,c\",\"d \"\"e\"\"\",,f\na,\"open\n")
            .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0].fields,
        Ok(vec![
            "a".into(),
            "b,c".into(),
            "d \"e\"".into(),
            String::new(),
            "f".into()
        ])
    );
    assert_eq!(rows[1].line, 3);
    assert_eq!(
        rows[1].fields,
        Err(("line", "a quoted field is never closed"))
    );
}

#[test]
fn records_keep_the_line_they_start_on() {
    let input = b"\xEF\xBB\xBFat,action,external_id,purpose\r\n\
        2021-03-01,grant,\"two\r\nlines\",newsletter\r\n\
        \r\n   \n\
        2021-03-01,grant,u-1,newsletter,extra\r\n\
        2021-03-01,grant,\"u-\xFF\",newsletter\n\
        2021-03-01,grant,u-2,newsletter";
    let (cols, rows) = read_all(input).unwrap();
    assert_eq!(cols, [Col::At, Col::Action, Col::ExternalId, Col::Purpose]);
    let got: Vec<_> = rows.iter().map(|r| (r.line, r.fields.clone())).collect();
    let ok = |id: &str| {
        Ok(vec![
            "2021-03-01".to_owned(),
            "grant".into(),
            id.into(),
            "newsletter".into(),
        ])
    };
    assert_eq!(
        got,
        [
            (2, ok("two\r\nlines")),
            (
                6,
                Err((
                    "line",
                    "wrong number of fields for the header (quote values that contain commas)"
                ))
            ),
            (7, Err(("external_id", "not valid UTF-8"))),
            (8, ok("u-2")),
        ]
    );
}

#[test]
fn header_errors_name_the_file_and_line() {
    for (input, want) in [
        (&b""[..], "f.csv:1: empty file; expected a header row"),
        (b"\n\n", "f.csv:1: empty file; expected a header row"),
        (
            b"\xEF\xBB\xBF",
            "f.csv:1: empty file; expected a header row",
        ),
        (b" \r\n\t\n", "f.csv:1: empty file; expected a header row"),
        (
            b"subject,purpose,actoin,at\n",
            "f.csv:1: unknown column \"actoin\"; expected subject or external_id",
        ),
        // No header row: the first line is a person's, never echoed.
        (
            b"alice@example.com,newsletter,granted,2024-01-01T00:00:00Z\n",
            "f.csv:1: unknown column 1 (not shown: does the file start with a header row?)",
        ),
        (
            b"\nsubject,purpose,at,at\n",
            "f.csv:2: column 4 (\"at\") appears twice",
        ),
        (
            b"subject,action,at\n",
            "f.csv:1: the header lacks the Purpose column",
        ),
        (
            b"purpose,action,at\n",
            "f.csv:1: the header needs a subject or an external_id column",
        ),
        (
            b"subject,\"purpose,action,at\n1,2,3\n",
            "f.csv:1: a quoted field of the header is never closed",
        ),
        (
            b"\r\n\nsubject,\"purpose,action,at\n1,2,3\n",
            "f.csv:3: a quoted field of the header is never closed",
        ),
        (
            b"subject,purp\xFFose,action,at\n",
            "f.csv:1: column 2 is not valid UTF-8",
        ),
    ] {
        let e = header_error(input);
        assert!(e.starts_with(want), "{input:?}: {e}");
    }
    // A quoted header field works like any other.
    let (cols, rows) = read_all(b"\"subject\",purpose,action,at").unwrap();
    assert_eq!(cols.len(), 4);
    assert!(rows.is_empty());
}

/// Values for the property tests: arbitrary text, and text made of
/// what CSV treats specially.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a,\"\r\n \t\u{0}\u{feff}é]{0,8}",]
}

proptest! {
    #[test]
    fn what_csv_writer_writes_reads_back(
        cols in Just(COLUMNS.map(|(c, _)| c)).prop_shuffle(),
        records in prop::collection::vec(prop::collection::vec(value(), 12), 0..6),
        crlf in any::<bool>(),
        bom in any::<bool>(),
    ) {
        let mut w = csv::WriterBuilder::new()
            .terminator(if crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') })
            .from_writer(if bom { b"\xEF\xBB\xBF".to_vec() } else { Vec::new() });
        w.write_record(cols.iter().map(|c| c.name())).unwrap();
        let mut lines = Vec::new();
        for r in &records {
            w.flush().unwrap();
            lines.push(1 + w.get_ref().iter().filter(|b| **b == b'\n').count() as u64);
            w.write_record(r).unwrap();
        }
        let bytes = w.into_inner().unwrap();
        let (got_cols, rows) = read_all(&bytes).unwrap();
        prop_assert_eq!(&got_cols[..], &cols[..]);
        let got: Vec<_> = rows.into_iter().map(|r| (r.line, r.fields)).collect();
        // A value that ends a line with `\r` loses it where the line
        // ends with `\n` alone (see `ImportReader`).
        let records = records.into_iter().map(|mut r| {
            if let Some(last) = r.last_mut().filter(|l| !crlf && l.ends_with('\r')) {
                last.pop();
            }
            Ok(r)
        });
        let want: Vec<_> = lines.into_iter().zip(records).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_lines_never_decrease(
        with_header in any::<bool>(),
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut input = if with_header {
            b"subject,purpose,action,at,gpc\n".to_vec()
        } else {
            Vec::new()
        };
        input.extend_from_slice(&bytes);
        if let Ok((cols, rows)) = read_all(&input) {
            let mut last = 1;
            for r in rows {
                prop_assert!(r.line >= last);
                last = r.line;
                if let Ok(f) = r.fields {
                    prop_assert_eq!(f.len(), cols.len());
                }
            }
        }
    }
}
