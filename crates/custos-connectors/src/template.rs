//! The `{placeholder}` templates of the data map (file paths, Redis key
//! patterns), read by one tokenizer so both accept and refuse the same.

use custos_map::{DatasetId, IdentityKind, SystemId};

use crate::ConnectorError;

/// A piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    Lit(String),
    Placeholder(IdentityKind),
    /// `*` or `?`, split out only where the caller matches globs itself.
    Glob(char),
}

/// The identity kind a placeholder names (`{user_id}`, `{subject}`, …).
pub(crate) fn placeholder_kind(name: &str) -> Option<IdentityKind> {
    match name {
        "subject" => Some(IdentityKind::SubjectId),
        "external_id" => Some(IdentityKind::UserId),
        _ => IdentityKind::ALL.iter().copied().find(|k| k.key() == name),
    }
}

pub(crate) fn mismatch(system: &SystemId, message: String) -> ConnectorError {
    ConnectorError::Mismatch {
        system: system.clone(),
        message,
    }
}

/// Splits `text` into pieces. `what` names the template in errors ("path
/// template", "key pattern"); with `globs`, `*` and `?` become
/// [`Piece::Glob`], otherwise they stay in the literal (Redis matches them).
pub(crate) fn tokenize(
    system: &SystemId,
    ds: &DatasetId,
    what: &str,
    text: &str,
    globs: bool,
) -> Result<Vec<Piece>, ConnectorError> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for n in chars.by_ref() {
                    if n == '}' {
                        closed = true;
                        break;
                    }
                    name.push(n);
                }
                if !closed {
                    return Err(mismatch(
                        system,
                        format!("dataset {ds}: {what} has an unclosed `{{`"),
                    ));
                }
                let kind = placeholder_kind(&name).ok_or_else(|| {
                    mismatch(
                        system,
                        format!("dataset {ds}: {what} names unknown placeholder {{{name}}}"),
                    )
                })?;
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                pieces.push(Piece::Placeholder(kind));
            }
            '}' => {
                return Err(mismatch(
                    system,
                    format!("dataset {ds}: {what} has a stray `}}`"),
                ))
            }
            '*' | '?' if globs => {
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                pieces.push(Piece::Glob(c));
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}
