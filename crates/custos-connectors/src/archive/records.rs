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

/// Records as RFC 4180 CSV (CRLF line ends): the header is the union of
/// keys in first-seen order; nested values are compact JSON; strings that a
/// spreadsheet would run as a formula are prefixed with `'`.
pub(super) fn records_csv(records: &[Record]) -> String {
    let mut keys: Vec<&str> = Vec::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for r in records {
        for k in r.keys() {
            if seen.insert(k.as_str()) {
                keys.push(k.as_str());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = keys.iter().map(|k| csv_quote(&formula_guard(k))).collect();
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for r in records {
        let row: Vec<String> = keys
            .iter()
            .map(|k| csv_quote(&r.get(*k).map(cell_text).unwrap_or_default()))
            .collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
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

fn csv_quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
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
        let csv = records_csv(&records);
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
        let csv = records_csv(&records);
        assert_eq!(csv, "x,y\r\n1,\r\n3,2\r\n");
    }
}
