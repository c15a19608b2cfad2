//! What anonymizing a row in place changes: per personal field, the
//! strategy of the field or else of its dataset (NULL, a placeholder, a
//! keyed hash shaped to the column's type and length, or nothing); a NOT
//! NULL text column that would become NULL gets a per-row token instead,
//! cut to the column's length — or, where not even 8 characters fit, the
//! plan fails before anything changes, naming the column and the fix; so
//! does a fixed placeholder for a UNIQUE column (two rows cannot share it).
//! A NOT NULL integer or uuid column gets a keyed value of the row; one of
//! another type (a date, a boolean …) fails the plan too, unless it is a
//! reference (its parent stays as a placeholder). See
//! `SqlConnector` for the rules in full.
//!
//! Invariants: primary keys, non-personal fields and columns the map does
//! not name are never changed; a new value is of its column's type family
//! (else NULL; a NOT NULL column of another type keeps its value); keyed
//! hashes and row tokens come from the connector's hash key, and a row
//! token is derived from the table, locator and column only — never from
//! a personal value; only real changes are returned, so a second erasure
//! changes nothing.

use std::collections::BTreeMap;

use custos_map::{Anonymize, DataCategory, Dataset, ErasureStrategy, Field};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::catalog::{fits, Column, Family, Table};
use super::find::{json_text, Row};
use super::lookups::Finding;
use super::SqlConnector;
use crate::ConnectorError;

type HmacSha256 = Hmac<Sha256>;

fn is_personal(f: &custos_map::Field) -> bool {
    f.category.iter().any(DataCategory::is_personal)
}

fn copy_prefix<const N: usize>(mac: &[u8; 32]) -> [u8; N] {
    let mut out = [0u8; N];
    for (d, s) in out.iter_mut().zip(mac.iter()) {
        *d = *s;
    }
    out
}

/// The fewest characters a placeholder may have: 8 hex digits, 32 bits of
/// a keyed hash, so that rows of a UNIQUE column stay apart.
const MIN_TOKEN: u32 = 8;

/// Whether a placeholder can be written to the column: of its type
/// family, its length, and shaped as a date where the column holds dates.
fn placeholder_fits(col: &Column, v: &str) -> bool {
    !v.is_empty() && fits(col.family, v) && fits_length(col, v) && (!col.date || looks_like_date(v))
}

/// `YYYY-MM-DD`, optionally followed by a time: what every engine reads
/// as a date or timestamp.
fn looks_like_date(v: &str) -> bool {
    let b = v.trim().as_bytes();
    b.len() >= 10
        && b.iter().take(10).enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// Whether a text fits the column's length (characters, as SQL counts).
fn fits_length(col: &Column, v: &str) -> bool {
    col.max_chars
        .is_none_or(|max| u32::try_from(v.chars().count()).is_ok_and(|n| n <= max))
}

/// `prefix` + 16 hex digits of `mac`, or, in a shorter column, as many hex
/// digits as fit (never fewer than [`MIN_TOKEN`]: `None` then).
fn shaped_text(col: &Column, prefix: &str, mac: &[u8; 32]) -> Option<String> {
    let full = format!("{prefix}{}", hex::encode(copy_prefix::<8>(mac)));
    match col.max_chars {
        _ if fits_length(col, &full) => Some(full),
        Some(max) if max >= MIN_TOKEN => {
            let digits = hex::encode(copy_prefix::<16>(mac));
            Some(
                digits
                    .chars()
                    .take(usize::try_from(max).unwrap_or(32).min(32))
                    .collect(),
            )
        }
        _ => None,
    }
}

impl SqlConnector {
    pub(super) fn mac(&self, parts: &[&[u8]]) -> Result<[u8; 32], ConnectorError> {
        let mut mac = HmacSha256::new_from_slice(self.key.as_slice()).map_err(|_| {
            ConnectorError::Config {
                system: self.system.id.clone(),
                message: "hash key rejected".to_owned(),
            }
        })?;
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        Ok(mac.finalize().into_bytes().into())
    }

    fn keyed_hash(&self, col: &Column, v: &str) -> Result<String, ConnectorError> {
        let h = self.mac(&[b"keyed_hash", v.as_bytes()])?;
        Ok(match col.family {
            Family::Int(bits) => {
                // Negative, so it never collides with a real (positive) id.
                let n =
                    u64::from_be_bytes(copy_prefix::<8>(&h)) % (1u64 << (bits.clamp(8, 64) - 2));
                (-(i64::try_from(n).unwrap_or(0)) - 1).to_string()
            }
            Family::UInt(bits) => {
                // The upper half of the range, far from counters that
                // start at 1.
                let half = 1u64 << (bits.clamp(8, 64) - 1);
                (half + u64::from_be_bytes(copy_prefix::<8>(&h)) % half).to_string()
            }
            Family::Uuid => {
                let mut b = copy_prefix::<16>(&h);
                if let Some(x) = b.get_mut(6) {
                    *x = (*x & 0x0f) | 0x80;
                }
                if let Some(x) = b.get_mut(8) {
                    *x = (*x & 0x3f) | 0x80;
                }
                let s = hex::encode(b);
                format!(
                    "{}-{}-{}-{}-{}",
                    s.get(0..8).unwrap_or_default(),
                    s.get(8..12).unwrap_or_default(),
                    s.get(12..16).unwrap_or_default(),
                    s.get(16..20).unwrap_or_default(),
                    s.get(20..32).unwrap_or_default()
                )
            }
            // Too short a column for even the shortest hash: NULL (or a
            // row token, when NOT NULL), as for any value that does not fit.
            _ => shaped_text(col, "anon:", &h).unwrap_or_default(),
        })
    }

    fn row_token(
        &self,
        d: &Dataset,
        t: &Table,
        loc: &[String],
        col: &Column,
    ) -> Result<String, ConnectorError> {
        let mut parts: Vec<&[u8]> = vec![b"row", t.name.as_bytes(), col.name.as_bytes()];
        parts.extend(loc.iter().map(|l| l.as_bytes()));
        let h = self.mac(&parts)?;
        shaped_text(col, "erased:", &h).ok_or_else(|| {
            self.mismatch(format!(
                "dataset {}: column {}.{} is text of at most {} characters and NOT NULL: \
                 no erasure placeholder fits (it needs {MIN_TOKEN}); allow NULL in the column, \
                 or erase the dataset's rows with `erasure: delete`",
                d.id,
                t.name,
                col.name,
                col.max_chars.unwrap_or_default()
            ))
        })
    }

    /// What a keyed value standing for one row's column is derived from:
    /// the table, the row's locator and the column — no personal value.
    fn row_seed(&self, t: &Table, loc: &[String], col: &Column) -> String {
        let mut seed = format!("row\u{0}{}\u{0}{}", t.name, col.name);
        for l in loc {
            seed.push('\u{0}');
            seed.push_str(l);
        }
        seed
    }

    /// A NOT NULL column of a type no placeholder can be made for (a date,
    /// a boolean, a decimal, …), or whose field's placeholder is not of
    /// its type: the plan fails before anything changes rather than keep
    /// the value in a row it calls anonymized.
    fn no_placeholder(&self, d: &Dataset, t: &Table, col: &Column, f: &Field) -> ConnectorError {
        let given = match d.effective_erasure(f) {
            ErasureStrategy::Anonymize(Anonymize::Placeholder(p)) => format!(
                "its placeholder {p:?} is not a value of the column's type or length; give field {} \
                 a placeholder that is",
                f.name
            ),
            _ => format!(
                "give field {} `erasure: {{ anonymize: {{ placeholder: \"…\" }} }}` with a value of its \
                 type (e.g. 1900-01-01 for a date, false for a boolean)",
                f.name
            ),
        };
        self.mismatch(format!(
            "dataset {}: column {}.{} is NOT NULL and no erasure placeholder is made for its type: \
             {given}, allow NULL in the column, or erase the dataset's rows with `erasure: delete`",
            d.id, t.name, col.name
        ))
    }

    /// The changes that anonymize a row in place (see [`SqlConnector`]).
    pub(super) fn anon_changes(
        &self,
        di: usize,
        row: &Row,
    ) -> Result<BTreeMap<String, Option<String>>, ConnectorError> {
        let mut changes = BTreeMap::new();
        let (Some(ds), Some(t)) = (self.datasets.get(di), self.tables.get(di)) else {
            return Ok(changes);
        };
        let Some(d) = self.map_dataset(ds) else {
            return Ok(changes);
        };
        for f in &d.fields {
            if let Some((col, target)) = self.anon_field(di, d, t, f, row)? {
                changes.insert(col, target);
            }
        }
        Ok(changes)
    }

    /// Whether field `f` of dataset `di` references another row (map or
    /// catalog): NOT NULL, it keeps its value and its parent stays.
    fn is_reference(&self, di: usize, f: &Field, col: &Column) -> bool {
        f.references.is_some()
            || self
                .fks
                .iter()
                .any(|k| k.child == di && k.child_col == col.name)
    }

    /// What anonymizing `row` does to field `f`: `None` when it stays as it
    /// is, else its column and new value (`None` = NULL).
    pub(super) fn anon_field(
        &self,
        di: usize,
        d: &Dataset,
        t: &Table,
        f: &Field,
        row: &Row,
    ) -> Result<Option<(String, Option<String>)>, ConnectorError> {
        if !is_personal(f) || f.primary_key || t.pk.contains(&f.name) {
            return Ok(None);
        }
        let Some(col) = t.col(&f.name) else {
            return Ok(None);
        };
        let current = json_text(row.data.get(&f.name));
        let target = match d.effective_erasure(f) {
            ErasureStrategy::Retain(_) => return Ok(None),
            ErasureStrategy::Shred => return Err(self.shred(d)),
            ErasureStrategy::Anonymize(Anonymize::Placeholder(_)) if t.is_unique(&col.name) => {
                return Err(self.mismatch(format!(
                    "dataset {}: column {}.{} is UNIQUE: one placeholder cannot stand in \
                     for every row; give field {} `erasure: {{ anonymize: keyed_hash }}` \
                     or `set_null` (a unique token per row where NOT NULL)",
                    d.id, t.name, col.name, f.name
                )))
            }
            ErasureStrategy::Anonymize(Anonymize::Placeholder(p)) => Some(p),
            ErasureStrategy::Anonymize(Anonymize::KeyedHash) => match &current {
                Some(v) => Some(self.keyed_hash(col, v)?),
                None => None,
            },
            _ => None,
        };
        let target = target.filter(|v| placeholder_fits(col, v));
        // A NOT NULL reference keeps its parent as a placeholder.
        let reference = self.is_reference(di, f, col);
        let target = match target {
            None if col.not_null => match col.family {
                Family::Text if !reference && !col.date => {
                    Some(self.row_token(d, t, &row.loc, col)?)
                }
                // A keyed number or uuid of the row, as for `keyed_hash`.
                Family::Int(_) | Family::UInt(_) | Family::Uuid if !reference => {
                    Some(self.keyed_hash(col, &self.row_seed(t, &row.loc, col))?)
                }
                _ if reference => return Ok(None),
                _ => return Err(self.no_placeholder(d, t, col, f)),
            },
            other => other,
        };
        Ok((target != current).then(|| (col.name.clone(), target)))
    }

    /// Placeholders of the map that do not fit their column (type, length,
    /// a date's shape) and what is written instead (NULL, or in a NOT NULL
    /// column a per-row token or keyed value), for `map check --connect`;
    /// those the plan refuses are `refusals`.
    pub(super) fn unfit_placeholders(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        for ds in &self.datasets {
            let (Some(t), Some(d)) = (self.tables.get(ds.map), self.map_dataset(ds)) else {
                continue;
            };
            for f in &d.fields {
                let ErasureStrategy::Anonymize(Anonymize::Placeholder(p)) = d.effective_erasure(f)
                else {
                    continue;
                };
                let Some(col) = t.col(&f.name) else { continue };
                if !is_personal(f) || placeholder_fits(col, &p) {
                    continue;
                }
                let reference = self.is_reference(ds.map, f, col);
                let instead = match col.family {
                    _ if !col.not_null => "NULL",
                    // Kept as it is, or the plan fails (`refusals`).
                    _ if reference || col.date => continue,
                    Family::Text => "a per-row token",
                    Family::Int(_) | Family::UInt(_) | Family::Uuid => "a keyed value of the row",
                    _ => continue,
                };
                out.push(Finding {
                    dataset: Some(d.id.to_string()),
                    field: Some(f.name.clone()),
                    message: format!(
                        "dataset {}: placeholder {p:?} is not a value of column {}.{} (its type or \
                         length): erasure writes {instead} there instead",
                        d.id, t.name, col.name
                    ),
                });
            }
        }
        out
    }

    pub(super) fn shred(&self, d: &Dataset) -> ConnectorError {
        self.mismatch(format!(
            "dataset {}: erasure `shred` exists only in the vault",
            d.id
        ))
    }
}
