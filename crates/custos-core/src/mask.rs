//! Masked reveals for keys without the reveal scope: enough to recognise a
//! value (`j***@example.com`, `*******5678`), not enough to use it.

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

/// Masks a string: keeps the last four characters of values of eight or
/// more characters (card numbers, phones, IBANs), stars everything else.
pub fn mask_string(v: &str) -> String {
    let n = v.chars().count();
    if v.contains('@') && !v.contains(char::is_whitespace) {
        return mask_email(v);
    }
    if n >= 8 {
        let keep: String = v.chars().skip(n - 4).collect();
        format!("{}{keep}", "*".repeat(n - 4))
    } else {
        "*".repeat(n.max(4))
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
        assert_eq!(mask_string("+31612345678"), "********5678");
        assert_eq!(mask_string("4111 1111 1111 1111"), "***************1111");
        assert_eq!(mask_string("Jane"), "****");
        assert_eq!(
            mask_value(&serde_json::json!({"a": ["jane@x.org", 12345678], "b": true})),
            serde_json::json!({"a": ["j***@x.org", "****5678"], "b": true})
        );
    }
}
