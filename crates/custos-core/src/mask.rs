//! Masked reveals for keys without the reveal scope: enough to recognise a
//! value (`j***@example.com`, `****5678`), not enough to use it.
//!
//! Invariant: a mask has a fixed shape that does not follow the value's
//! length (a star per character would tell a name's length, or a card
//! number's from a phone's): fixed stars, plus the last four characters of
//! a value of eight or more.

use serde_json::Value;

/// Masks an email: first character of the local part, then `***`, then the domain.
pub fn mask_email(v: &str) -> String {
    match v.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => mask_string(v),
    }
}

/// The stars standing for the hidden part of any value, whatever its length.
const STARS: &str = "****";

/// Masks a string to a fixed shape: `****` followed by the last four
/// characters for values of eight or more characters (card numbers, phones,
/// IBANs), `****` alone otherwise; an email as [`mask_email`].
pub fn mask_string(v: &str) -> String {
    let n = v.chars().count();
    if v.contains('@') && !v.contains(char::is_whitespace) {
        return mask_email(v);
    }
    if n >= 8 {
        let keep: String = v.chars().skip(n - 4).collect();
        format!("{STARS}{keep}")
    } else {
        STARS.to_owned()
    }
}

/// Masks a JSON value recursively: strings by [`mask_string`], numbers
/// become stars, structure (keys, arrays, null, booleans) is kept.
pub fn mask_value(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(mask_string(s)),
        Value::Number(n) => Value::String(mask_string(&n.to_string())),
        Value::Array(a) => Value::Array(a.iter().map(mask_value).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), mask_value(v))).collect())
        }
        Value::Null | Value::Bool(_) => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask_email("jane.doe@example.com"), "j***@example.com");
        assert_eq!(mask_string("+31612345678"), "****5678");
        assert_eq!(mask_string("4111 1111 1111 1111"), "****1111");
        assert_eq!(mask_string("Jane"), "****");
        assert_eq!(mask_string(""), "****");
        assert_eq!(
            mask_value(&serde_json::json!({"a": ["jane@x.org", 12345678], "b": true})),
            serde_json::json!({"a": ["j***@x.org", "****5678"], "b": true})
        );
    }

    #[test]
    fn a_mask_does_not_tell_the_length() {
        for (short, long) in [
            ("Al", "Maximil"),
            ("1234", "1234567"),
            ("Jane Doe", "Maximiliane von Humboldt-Wittgenstein"),
            ("12345678", "NL91ABNA0417164300"),
            ("a@x.org", "alexandra.von.humboldt@x.org"),
        ] {
            assert_eq!(
                mask_string(short).chars().count(),
                mask_string(long).chars().count(),
                "{short} / {long}"
            );
        }
        assert_eq!(mask_string("Maximiliane"), "****iane");
        assert_eq!(mask_email("alexandra@x.org"), "a***@x.org");
    }
}
