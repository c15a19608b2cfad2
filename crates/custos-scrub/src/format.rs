//! Structure-aware scrubbing of JSON and logfmt lines: values are scrubbed,
//! keys, punctuation and whitespace are kept byte for byte. A line that does
//! not parse is scrubbed as plain text, so nothing slips through.

use std::str::FromStr;

use crate::scrubber::ScrubCache;
use crate::{Report, ScrubError, Scrubber};

/// Input format of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Format {
    /// Free text: everything is scanned.
    #[default]
    Text,
    /// One JSON document per line: string and number values are scrubbed,
    /// keys and structure kept.
    Json,
    /// `key=value key2="quoted value"`: values scrubbed, keys kept.
    Logfmt,
}

impl FromStr for Format {
    type Err = ScrubError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            "logfmt" => Ok(Self::Logfmt),
            other => Err(ScrubError::Config(format!(
                "unknown format `{other}` (text, json, logfmt)"
            ))),
        }
    }
}

impl Scrubber {
    /// Scrubs one line (without its newline) in `format`, appending to `out`.
    pub fn scrub_line_with(
        &self,
        cache: &mut ScrubCache,
        line: &[u8],
        format: Format,
        out: &mut Vec<u8>,
        report: &mut Report,
    ) {
        let mark = out.len();
        let done = match format {
            Format::Text => false,
            Format::Json => json_line(self, cache, line, out, report),
            Format::Logfmt => logfmt_line(self, cache, line, out, report),
        };
        if !done {
            out.truncate(mark);
            self.scrub_into_with(cache, line, out, report);
        }
    }

    /// Scrubs string and number values of a parsed JSON document in place;
    /// object keys are kept. A number that holds personal data (a card
    /// number stored as a number) becomes a string.
    pub fn scrub_json_value(&self, value: &mut serde_json::Value, report: &mut Report) {
        use serde_json::Value;
        match value {
            Value::String(s) => {
                if let std::borrow::Cow::Owned(new) = self.scrub_str_report(s, report) {
                    *s = new;
                }
            }
            Value::Number(n) => {
                let text = n.to_string();
                if let std::borrow::Cow::Owned(new) = self.scrub_str_report(&text, report) {
                    *value = Value::String(new);
                }
            }
            Value::Array(items) => items
                .iter_mut()
                .for_each(|v| self.scrub_json_value(v, report)),
            Value::Object(map) => map
                .values_mut()
                .for_each(|v| self.scrub_json_value(v, report)),
            Value::Bool(_) | Value::Null => {}
        }
    }
}

/// Index one past the closing quote of the string opening at `start`.
fn string_end(line: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match line.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// A JSON string token's value scrubbed: raw bytes when it has no escapes
/// (replacements never need escaping), otherwise decoded and re-encoded.
fn json_string(
    s: &Scrubber,
    cache: &mut ScrubCache,
    token: &[u8],
    out: &mut Vec<u8>,
    report: &mut Report,
) -> bool {
    let Some(inner) = token.get(1..token.len().saturating_sub(1)) else {
        return false;
    };
    if !inner.contains(&b'\\') {
        out.push(b'"');
        s.scrub_into_with(cache, inner, out, report);
        out.push(b'"');
        return true;
    }
    let Ok(decoded) = serde_json::from_slice::<String>(token) else {
        return false;
    };
    let mut scrubbed = Vec::new();
    if s.scrub_into_with(cache, decoded.as_bytes(), &mut scrubbed, report) {
        let text = String::from_utf8_lossy(&scrubbed);
        match serde_json::to_string(&text) {
            Ok(enc) => out.extend_from_slice(enc.as_bytes()),
            Err(_) => return false,
        }
    } else {
        out.extend_from_slice(token);
    }
    true
}

/// Walks a JSON line token by token. Returns false (caller falls back to
/// text) if the line is not a JSON object or array.
fn json_line(
    s: &Scrubber,
    cache: &mut ScrubCache,
    line: &[u8],
    out: &mut Vec<u8>,
    report: &mut Report,
) -> bool {
    let first = line.iter().position(|b| !b.is_ascii_whitespace());
    if !matches!(first.and_then(|i| line.get(i)), Some(b'{' | b'[')) {
        return false;
    }
    // Stack of containers: true = object. `expect_key` is true right after
    // `{` or a `,` inside an object.
    let mut stack: Vec<bool> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while let Some(&b) = line.get(i) {
        match b {
            b'{' | b'[' => {
                stack.push(b == b'{');
                expect_key = b == b'{';
                out.push(b);
                i += 1;
            }
            b'}' | b']' => {
                if stack.pop() != Some(b == b'}') {
                    return false;
                }
                expect_key = false;
                out.push(b);
                i += 1;
            }
            b',' => {
                expect_key = stack.last() == Some(&true);
                out.push(b);
                i += 1;
            }
            b':' => {
                expect_key = false;
                out.push(b);
                i += 1;
            }
            b'"' => {
                let Some(end) = string_end(line, i) else {
                    return false;
                };
                let Some(token) = line.get(i..end) else {
                    return false;
                };
                if expect_key {
                    out.extend_from_slice(token);
                } else if !json_string(s, cache, token, out, report) {
                    return false;
                }
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let len = line
                    .get(i..)
                    .unwrap_or_default()
                    .iter()
                    .position(|c| !matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .unwrap_or(line.len() - i);
                let num = line.get(i..i + len).unwrap_or_default();
                let mut scrubbed = Vec::new();
                if s.scrub_into_with(cache, num, &mut scrubbed, report) {
                    out.push(b'"');
                    out.extend_from_slice(&scrubbed);
                    out.push(b'"');
                } else {
                    out.extend_from_slice(num);
                }
                i += len;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    stack.is_empty()
}

/// logfmt: `key=value` pairs separated by blanks; bare words and anything
/// odd are scanned as text.
fn logfmt_line(
    s: &Scrubber,
    cache: &mut ScrubCache,
    line: &[u8],
    out: &mut Vec<u8>,
    report: &mut Report,
) -> bool {
    let mut i = 0;
    while i < line.len() {
        let rest = line.get(i..).unwrap_or_default();
        let blank = rest
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        out.extend_from_slice(rest.get(..blank).unwrap_or_default());
        i += blank;
        let rest = line.get(i..).unwrap_or_default();
        if rest.is_empty() {
            break;
        }
        let key_len = rest
            .iter()
            .position(|b| matches!(b, b'=' | b' ' | b'\t' | b'"'))
            .unwrap_or(rest.len());
        if rest.get(key_len) != Some(&b'=') || key_len == 0 {
            // A bare word (or something unusual): scan up to the next blank.
            let word = rest
                .iter()
                .position(|b| *b == b' ' || *b == b'\t')
                .unwrap_or(rest.len());
            s.scrub_into_with(cache, rest.get(..word).unwrap_or_default(), out, report);
            i += word;
            continue;
        }
        out.extend_from_slice(rest.get(..=key_len).unwrap_or_default());
        i += key_len + 1;
        let value = line.get(i..).unwrap_or_default();
        if value.first() == Some(&b'"') {
            let Some(end) = string_end(value, 0) else {
                return false;
            };
            out.push(b'"');
            s.scrub_into_with(
                cache,
                value.get(1..end - 1).unwrap_or_default(),
                out,
                report,
            );
            out.push(b'"');
            i += end;
        } else {
            let end = value
                .iter()
                .position(|b| *b == b' ' || *b == b'\t')
                .unwrap_or(value.len());
            s.scrub_into_with(cache, value.get(..end).unwrap_or_default(), out, report);
            i += end;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(format: Format, input: &str) -> String {
        let s = Scrubber::new_default().unwrap();
        let mut cache = s.cache();
        let mut out = Vec::new();
        s.scrub_line_with(
            &mut cache,
            input.as_bytes(),
            format,
            &mut out,
            &mut Report::default(),
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_keeps_keys_and_layout() {
        assert_eq!(
            line(
                Format::Json,
                r#"{"john@example.com": "x", "email": "john@example.com", "n": 4111111111111111, "ok": true}"#
            ),
            r#"{"john@example.com": "x", "email": "[EMAIL]", "n": "[CARD]", "ok": true}"#
        );
        assert_eq!(
            line(Format::Json, r#"{"msg":"mail \"john@example.com\""}"#),
            r#"{"msg":"mail \"[EMAIL]\""}"#
        );
        // Not JSON: scrubbed as text.
        assert_eq!(
            line(Format::Json, "plain john@example.com"),
            "plain [EMAIL]"
        );
        assert_eq!(
            line(Format::Json, r#"{"a": "john@example.com""#),
            r#"{"a": "[EMAIL]""#
        );
    }

    #[test]
    fn logfmt_keeps_keys() {
        assert_eq!(
            line(
                Format::Logfmt,
                r#"level=info user=john@example.com msg="from 203.0.113.9 ok" free 4111111111111111"#
            ),
            r#"level=info user=[EMAIL] msg="from [IPV4] ok" free [CARD]"#
        );
    }
}
