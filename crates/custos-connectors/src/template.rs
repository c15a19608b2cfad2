//! The `{placeholder}` templates of the data map (file paths, Redis key
//! patterns), read by one tokenizer so both accept and refuse the same, and
//! what erasure may do to the items they match ([`Strategy`]): the file and
//! Redis connectors share both, so they refuse the same maps alike.

use custos_map::{Dataset, DatasetId, ErasureStrategy, IdentityKind, SystemId};

use crate::{ConnectorError, DatasetOutcome};

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

/// `text` with every `{tenant}` replaced by the request's tenant's value
/// (the system's `tenant_values`), for a files tree or Redis shared by
/// tenants. The value must be one path segment and no pattern: a `/`, `:`,
/// `..` or wildcard in it would reach beyond the tenant's part (`Mismatch`
/// naming the dataset, never the value). A template naming `{tenant}`
/// with no tenant's value is a `Mismatch` too: it would match nothing or,
/// worse, another tenant's part.
pub(crate) fn with_tenant(
    system: &SystemId,
    ds: &DatasetId,
    text: &str,
    tenant: Option<&str>,
) -> Result<String, ConnectorError> {
    if !text.contains(TENANT) {
        return Ok(text.to_owned());
    }
    let Some(value) = tenant else {
        return Err(mismatch(
            system,
            format!(
                "dataset {ds}: the template names {TENANT} but the request has no tenant's value \
                 (give the system `tenant_values`)"
            ),
        ));
    };
    if !custos_map::plain_tenant_value(value) {
        return Err(mismatch(
            system,
            format!(
                "dataset {ds}: the tenant's value in `tenant_values` is not one plain path segment \
                 (no `/`, `..`, wildcards or braces)"
            ),
        ));
    }
    Ok(text.replace(TENANT, value))
}

/// The placeholder of a files or Redis template that stands for the tenant.
pub(crate) const TENANT: &str = "{tenant}";

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

/// What erasure does to the items a template matches (files, keys): they
/// are deleted whole or kept; they have no fields to anonymize and no key
/// to shred, so a map asking for that is refused at connect.
#[derive(Clone, Debug)]
pub(crate) enum Strategy {
    Delete,
    /// Kept, for this legal ground of the map.
    Retain(String),
}

impl Strategy {
    /// The strategy of dataset `ds`, else `fallback` (the erasure of the
    /// dataset it is derived from), else `delete`. `items` names what the
    /// template matches in messages ("files", "Redis keys").
    pub(crate) fn of(
        system: &SystemId,
        ds: &Dataset,
        fallback: Option<&ErasureStrategy>,
        items: &str,
    ) -> Result<Self, ConnectorError> {
        match ds.erasure.as_ref().or(fallback) {
            None | Some(ErasureStrategy::Delete) => Ok(Strategy::Delete),
            Some(ErasureStrategy::Retain(r)) => Ok(Strategy::Retain(r.ground.clone())),
            Some(ErasureStrategy::Anonymize(_)) => Err(mismatch(
                system,
                format!("dataset {}: anonymize is not possible for {items}", ds.id),
            )),
            Some(ErasureStrategy::Shred) => Err(mismatch(
                system,
                format!("dataset {}: shred is only possible in the vault", ds.id),
            )),
            Some(_) => Err(mismatch(
                system,
                format!("dataset {}: unknown erasure strategy for {items}", ds.id),
            )),
        }
    }

    /// What erasing `found` items of `dataset` would do (a dry run): all
    /// deleted, or all retained with the ground.
    pub(crate) fn planned(&self, dataset: DatasetId, found: u64) -> DatasetOutcome {
        let mut o = DatasetOutcome::new(dataset);
        o.found = found;
        match self {
            Strategy::Delete => o.deleted = found,
            Strategy::Retain(g) => {
                o.retained = found;
                if found > 0 {
                    o.retained_ground = Some(g.clone());
                }
            }
        }
        o
    }
}
