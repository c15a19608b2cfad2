//! YAML errors of the full parser (`marked-yaml`) as diagnostics: each
//! kind of error gets its code (`yaml-syntax`, `duplicate-key`,
//! `wrong-type`), the position the parser gives, and a hint on how to fix
//! it. Only the full parser reports errors; the fast reader gives up
//! instead (see [`crate::tree`]).

use marked_yaml::LoadError;

use crate::diagnostic::{Diagnostic, Position, Severity};

fn scalar_pos(node: &marked_yaml::types::MarkedScalarNode) -> Option<Position> {
    node.span().start().map(|m| Position {
        line: m.line(),
        column: m.column(),
    })
}

pub(super) fn load_error(e: &LoadError, file: &str) -> Diagnostic {
    let at = |m: &marked_yaml::Marker| {
        Some(Position {
            line: m.line(),
            column: m.column(),
        })
    };
    let (position, code, message, hint): (_, &str, String, Option<String>) = match e {
        LoadError::TopLevelMustBeMapping(m) => (
            at(m),
            "wrong-type",
            "the map file must be a YAML mapping".into(),
            Some(
                "start with `organisation:`, `purposes:`, `processors:` and `systems:` keys".into(),
            ),
        ),
        LoadError::TopLevelMustBeSequence(m) => {
            (at(m), "wrong-type", "expected a sequence".into(), None)
        }
        LoadError::UnexpectedAnchor(m) => (
            at(m),
            "yaml-syntax",
            "YAML anchors and aliases are not supported in map files".into(),
            Some("write the repeated part out; a map should read plainly".into()),
        ),
        LoadError::MappingKeyMustBeScalar(m) => (
            at(m),
            "yaml-syntax",
            "mapping keys must be plain strings".into(),
            None,
        ),
        LoadError::UnexpectedTag(m) => (
            at(m),
            "yaml-syntax",
            "YAML tags (`!something`) are not supported in map files".into(),
            Some("remove the tag".into()),
        ),
        LoadError::ScanError(m, s) => (
            at(m),
            "yaml-syntax",
            format!("invalid YAML: {}", s.info()),
            Some("check indentation, colons and quotes around this point".into()),
        ),
        LoadError::DuplicateKey(d) => (
            scalar_pos(&d.key),
            "duplicate-key",
            format!(
                "key `{}` appears twice in the same mapping (first on line {})",
                d.key.as_str(),
                d.prev_key.span().start().map_or(0, |m| m.line())
            ),
            Some("remove or merge one of them".into()),
        ),
    };
    Diagnostic {
        severity: Severity::Error,
        code: code.into(),
        file: file.into(),
        position,
        path: String::new(),
        message,
        hint,
    }
}
