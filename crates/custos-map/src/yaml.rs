//! Writing a [`DataMap`] back as map YAML (used by the Fides importer).
//!
//! The map's serde form has the same shape as the file, so the writer walks
//! the JSON value and prints block YAML, keys in a fixed reading order
//! (ids and names first). Strings that could be misread (numbers, booleans,
//! anything with spaces or punctuation) are double-quoted, JSON-style, which
//! is valid YAML; so the output always parses back to the same map.

use serde_json::Value;

use crate::model::DataMap;

/// Keys printed first, in this order; others follow alphabetically.
const ORDER: &[&str] = &[
    "version",
    "updated",
    "organisation",
    "purposes",
    "processors",
    "systems",
    "on_behalf_of",
    "id",
    "name",
    "title",
    "kind",
    "controller",
    "role",
    "country",
    "legal_basis",
    "table",
    "collection",
    "path",
    "key",
    "endpoint",
    "place",
    "description",
    "category",
];

fn rank(k: &str) -> usize {
    ORDER.iter().position(|o| *o == k).unwrap_or(ORDER.len())
}

/// The map as YAML text, ending in a newline.
pub fn to_yaml(map: &DataMap) -> String {
    let value = serde_json::to_value(map).unwrap_or(Value::Null);
    let mut out = String::new();
    write_block(&value, 0, &mut out);
    out
}

fn plain_ok(s: &str) -> bool {
    const RESERVED: &[&str] = &[
        "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~", "True", "False", "Null",
        "NULL", "TRUE", "FALSE", "Yes", "No", "YES", "NO", "On", "Off", "ON", "OFF",
    ];
    let Some(first) = s.chars().next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_' || first == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-' | '@'))
        && !RESERVED.contains(&s)
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) if plain_ok(s) => s.clone(),
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        Value::Array(a) => format!("[{}]", a.iter().map(scalar).collect::<Vec<_>>().join(", ")),
        Value::Object(_) => "{}".into(),
    }
}

fn is_inline(v: &Value) -> bool {
    match v {
        Value::Array(a) => a
            .iter()
            .all(|x| !matches!(x, Value::Array(_) | Value::Object(_))),
        Value::Object(o) => o.is_empty(),
        _ => true,
    }
}

fn sorted(o: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut keys: Vec<(&String, &Value)> = o.iter().collect();
    keys.sort_by(|a, b| (rank(a.0), a.0).cmp(&(rank(b.0), b.0)));
    keys
}

/// Write the entries of a mapping at `indent`; the first line's indent is
/// assumed written when `first_inline` (inside a `- ` list item).
fn write_entries(
    o: &serde_json::Map<String, Value>,
    indent: usize,
    first_inline: bool,
    out: &mut String,
) {
    for (i, (k, v)) in sorted(o).into_iter().enumerate() {
        if !(i == 0 && first_inline) {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(k);
        out.push(':');
        if is_inline(v) {
            out.push(' ');
            out.push_str(&scalar(v));
            out.push('\n');
        } else {
            out.push('\n');
            write_block(v, indent + 2, out);
        }
    }
}

fn write_block(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(o) => write_entries(o, indent, false, out),
        Value::Array(a) => {
            for item in a {
                out.push_str(&" ".repeat(indent));
                out.push_str("- ");
                match item {
                    Value::Object(o) if !o.is_empty() => write_entries(o, indent + 2, true, out),
                    other => {
                        out.push_str(&scalar(other));
                        out.push('\n');
                    }
                }
            }
        }
        other => {
            out.push_str(&" ".repeat(indent));
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert!(plain_ok("user.contact.email"));
        assert!(!plain_ok("yes"));
        assert!(!plain_ok("10"));
        assert!(!plain_ok("Removed user"));
        assert!(!plain_ok(""));
        assert_eq!(scalar(&Value::String("a: b".into())), "\"a: b\"");
    }
}
