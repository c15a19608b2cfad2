//! Pointing back into the file: [`SourceIndex`] keeps the YAML tree of a
//! parsed map so that the semantic checks of [`crate::validate`] can give
//! each diagnostic the line and column of the node it names.
//!
//! Invariant: a path is resolved as far as it exists; a missing tail gives
//! the position of its nearest existing ancestor, never none at all.

use std::sync::Arc;

use crate::diagnostic::Position;
use crate::tree::Doc;

/// The parsed YAML tree, kept to find the position of a node by its path.
#[derive(Debug, Clone)]
pub struct SourceIndex {
    file: String,
    doc: Option<Arc<Doc>>,
}

impl SourceIndex {
    /// An index that knows no positions (for maps built in code or from JSON).
    pub fn none(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            doc: None,
        }
    }

    pub(crate) fn from_doc(file: &str, doc: Doc) -> Self {
        Self {
            file: file.to_owned(),
            doc: Some(Arc::new(doc)),
        }
    }

    /// The file name diagnostics carry.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Position of the node at `path` (as written in diagnostics), or of its
    /// nearest existing ancestor.
    pub fn position(&self, path: &str) -> Option<Position> {
        let mut node = self.doc.as_deref()?.root()?;
        let mut best = node.pos();
        for seg in path.split('.').filter(|s| !s.is_empty()) {
            let (name, index) = split_index(seg);
            let next = if let Some(m) = node.mapping() {
                m.get(name)
            } else if let Some(s) = node.sequence() {
                s.iter().find(|item| {
                    item.mapping().is_some_and(|m| {
                        ["id", "name"]
                            .iter()
                            .any(|k| m.get_scalar(k).is_some_and(|v| v.scalar() == Some(name)))
                    })
                })
            } else {
                None
            };
            let Some(mut next) = next else { break };
            if let Some(i) = index {
                match next.sequence().and_then(|s| s.get(i)) {
                    Some(n) => next = n,
                    None => {
                        best = next.pos().or(best);
                        break;
                    }
                }
            }
            node = next;
            best = node.pos().or(best);
        }
        best
    }
}

fn split_index(seg: &str) -> (&str, Option<usize>) {
    if let Some(open) = seg.find('[') {
        let name = seg.get(..open).unwrap_or(seg);
        let idx = seg
            .get(open + 1..seg.len().saturating_sub(1))
            .and_then(|i| i.parse().ok());
        (name, idx)
    } else {
        (seg, None)
    }
}
