//! The person's records as files of the archive: pretty JSON (the
//! portability format) and CSV for spreadsheets, written by the `csv`
//! crate (RFC 4180: CRLF line ends, fields quoted only where needed).
//!
//! Invariants: the CSV header is the union of the records' keys in
//! first-seen order, so every record has every column; a text cell or key
//! that a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
//! `@`, tab or CR) gets a leading `'`; the same records give the same
//! bytes; errors carry no value.

use std::collections::BTreeSet;

use serde_json::Value;

use super::ArchiveError;
use crate::Record;

/// Records as a pretty-printed JSON array, with a final newline.
pub(super) fn records_json(records: &[Record]) -> Result<Vec<u8>, ArchiveError> {
    let mut json = serde_json::to_vec_pretty(records).map_err(|_| ArchiveError::Serialize)?;
    json.push(b'\n');
    Ok(json)
}

/// Records as RFC 4180 CSV (CRLF line ends, fields quoted only where
/// needed): the header is the union of keys in first-seen order; nested
/// values are compact JSON; strings that a spreadsheet would run as a
/// formula are prefixed with `'`. A record that would be an empty line (one
/// column, empty) is written `""`, so readers that skip blank lines still
/// count it.
pub(super) fn records_csv(records: &[Record]) -> Result<Vec<u8>, ArchiveError> {
    let mut keys: Vec<&str> = Vec::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for r in records {
        for k in r.keys() {
            if seen.insert(k.as_str()) {
                keys.push(k.as_str());
            }
        }
    }
    // Writing to a `Vec` does not fail; were it to, the error is dropped:
    // it may carry the position of a value.
    let failed = |_| ArchiveError::Serialize;
    let mut csv = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    csv.write_record(keys.iter().map(|k| formula_guard(k)))
        .map_err(failed)?;
    for r in records {
        csv.write_record(
            keys.iter()
                .map(|k| r.get(*k).map(cell_text).unwrap_or_default()),
        )
        .map_err(failed)?;
    }
    csv.into_inner().map_err(|_| ArchiveError::Serialize)
}

fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => formula_guard(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(_) | Value::Object(_) => v.to_string(),
    }
}

/// Prefixes `'` to text starting with `=`, `+`, `-`, `@` (and tab or CR,
/// which some spreadsheets skip before reading a formula).
fn formula_guard(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::archive::tests::rec;

    fn csv_text(records: &[Record]) -> String {
        String::from_utf8(records_csv(records).unwrap()).unwrap()
    }

    #[test]
    fn csv_quoting_and_formula_guard() {
        let records = vec![
            rec(json!({
                "a": "plain",
                "b": "with, comma",
                "c": "say \"hi\"",
                "d": "line\nbreak",
            })),
            rec(json!({
                "a": "=1+1",
                "b": "+SUM(A1)",
                "c": "-2",
                "d": "@cmd",
                "e": {"nested": [1, "x"]},
                "f": null,
                "g": -5,
                "h": true,
            })),
        ];
        let csv = csv_text(&records);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], "a,b,c,d,e,f,g,h");
        assert_eq!(
            lines[1],
            "plain,\"with, comma\",\"say \"\"hi\"\"\",\"line\nbreak\",,,,"
        );
        assert_eq!(
            lines[2],
            "'=1+1,'+SUM(A1),'-2,'@cmd,\"{\"\"nested\"\":[1,\"\"x\"\"]}\",,-5,true"
        );
        assert_eq!(lines[3], "");
        assert_eq!(lines.len(), 4);
        assert_eq!(formula_guard("\tx"), "'\tx");
        assert_eq!(formula_guard("a=b"), "a=b");
    }

    #[test]
    fn csv_header_is_union_in_first_seen_order() {
        let records = vec![rec(json!({"x": 1})), rec(json!({"y": 2, "x": 3}))];
        let csv = csv_text(&records);
        assert_eq!(csv, "x,y\r\n1,\r\n3,2\r\n");
    }

    #[test]
    fn csv_keeps_a_lone_empty_cell_as_a_row() {
        let records = vec![rec(json!({"k": "v"})), rec(json!({"k": null}))];
        assert_eq!(csv_text(&records), "k\r\nv\r\n\"\"\r\n");
        let two = vec![rec(json!({"k": null, "l": ""}))];
        assert_eq!(csv_text(&two), "k,l\r\n,\r\n");
    }
}
