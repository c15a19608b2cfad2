//! Arbitrary bytes as a consent import file (`custos consent import`),
//! read through `custos_store::import_csv::ImportReader` to the end: a
//! header error or rows, never a panic; every row's line is at least 1 and
//! never less than the row before; a row's fields are one per column.
//! Run: `cargo +nightly fuzz run consent_csv` (from the repository root).
#![no_main]

use custos_store::import_csv::ImportReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = ImportReader::new(data, "fuzz.csv") else {
        return;
    };
    let columns = reader.cols().len();
    let mut last = 1;
    while let Some(row) = reader
        .next_row()
        .expect("reading from memory does not fail")
    {
        assert!(row.line >= last, "line {} after line {last}", row.line);
        last = row.line;
        if let Ok(fields) = row.fields {
            assert_eq!(fields.len(), columns);
        }
    }
});
