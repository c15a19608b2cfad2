//! The YAML tree the map is built from: every node with its line and column.
//!
//! A [`Doc`] is one flat arena (nodes, child lists and all scalar text in one
//! string), cheap to build and to drop. It comes from one of two parsers:
//!
//! - [`fast`]: a strict single-pass reader of the plain YAML that map files are
//!   written in (block mappings and sequences, one-line flow collections,
//!   plain and one-line quoted scalars, comments). It is about ten times
//!   faster than a general YAML parser. Whenever it meets anything it does not
//!   handle exactly as `yaml-rust2` does (tabs, anchors, tags, block scalars,
//!   multi-line scalars or flow collections, empty values, duplicate keys,
//!   document markers, unusual characters, any syntax error, ...) it gives up
//!   and returns `None`.
//! - [`from_marked`]: the tree of `marked-yaml` (on `yaml-rust2`), used when the
//!   fast reader gave up; it also reports every YAML error.
//!
//! Both give the same tree, positions included, for every text the fast
//! reader accepts (checked by the differential tests in `tests`).
//!
//! Layout: the arena and its views here; `fast` is the fast reader,
//! `marked` the conversion of `marked-yaml`'s tree.

mod fast;
mod marked;

pub(crate) use fast::fast;
pub(crate) use marked::from_marked;

use crate::diagnostic::Position;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Scalar,
    Mapping,
    Sequence,
}

/// One node: for a scalar `a..b` is its text in [`Doc::text`]; for a
/// mapping `kids[a..a + 2b]` holds `b` key/value pairs; for a sequence
/// `kids[a..a + b]` holds its items. `line`/`col` are 1-based; for a mapping
/// they are those of its first key (or of `{` when it has none).
#[derive(Debug, Clone, Copy)]
struct Raw {
    kind: Kind,
    line: u32,
    col: u32,
    a: u32,
    b: u32,
}

/// A parsed YAML document; node 0 is the root.
#[derive(Debug, Clone, Default)]
pub(crate) struct Doc {
    text: String,
    nodes: Vec<Raw>,
    kids: Vec<u32>,
}

impl Doc {
    /// The root node.
    pub(crate) fn root(&self) -> Option<N<'_>> {
        (!self.nodes.is_empty()).then_some(N { doc: self, id: 0 })
    }

    fn raw(&self, id: u32) -> Option<&Raw> {
        self.nodes.get(id as usize)
    }

    fn kids(&self, a: u32, n: usize) -> &[u32] {
        let a = a as usize;
        self.kids.get(a..a + n).unwrap_or(&[])
    }
}

/// A node of a [`Doc`].
#[derive(Clone, Copy)]
pub(crate) struct N<'d> {
    doc: &'d Doc,
    id: u32,
}

impl std::fmt::Debug for N<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(s) = self.scalar() {
            return write!(f, "{s:?}@{:?}", self.pos());
        }
        if let Some(m) = self.mapping() {
            write!(f, "@{:?}", self.pos())?;
            return f.debug_map().entries(m.iter()).finish();
        }
        write!(f, "@{:?}", self.pos())?;
        match self.sequence() {
            Some(s) => f.debug_list().entries(s.iter()).finish(),
            None => f.write_str("?"),
        }
    }
}

impl PartialEq for N<'_> {
    /// Same shape, text and positions.
    fn eq(&self, other: &Self) -> bool {
        if self.pos() != other.pos() {
            return false;
        }
        match (self.scalar(), other.scalar()) {
            (Some(a), Some(b)) => return a == b,
            (None, None) => {}
            _ => return false,
        }
        match (self.mapping(), other.mapping()) {
            (Some(a), Some(b)) => return a.len() == b.len() && a.iter().eq(b.iter()),
            (None, None) => {}
            _ => return false,
        }
        match (self.sequence(), other.sequence()) {
            (Some(a), Some(b)) => a.len() == b.len() && a.iter().eq(b.iter()),
            _ => false,
        }
    }
}

impl<'d> N<'d> {
    fn raw(&self) -> Raw {
        self.doc.raw(self.id).copied().unwrap_or(Raw {
            kind: Kind::Scalar,
            line: 0,
            col: 0,
            a: 0,
            b: 0,
        })
    }

    /// Where the node starts; for a mapping, where its first key starts.
    pub(crate) fn pos(&self) -> Option<Position> {
        let r = self.raw();
        (r.line > 0).then_some(Position {
            line: r.line as usize,
            column: r.col as usize,
        })
    }

    /// The text of a scalar.
    pub(crate) fn scalar(&self) -> Option<&'d str> {
        let r = self.raw();
        (r.kind == Kind::Scalar)
            .then(|| self.doc.text.get(r.a as usize..r.b as usize))
            .flatten()
    }

    pub(crate) fn mapping(&self) -> Option<M<'d>> {
        let r = self.raw();
        (r.kind == Kind::Mapping).then(|| M {
            node: *self,
            kids: self.doc.kids(r.a, 2 * r.b as usize),
        })
    }

    pub(crate) fn sequence(&self) -> Option<S<'d>> {
        let r = self.raw();
        (r.kind == Kind::Sequence).then(|| S {
            doc: self.doc,
            kids: self.doc.kids(r.a, r.b as usize),
        })
    }

    /// How many nodes the whole document has.
    pub(crate) fn doc_nodes(&self) -> usize {
        self.doc.nodes.len()
    }

    /// The node by kind, to match on.
    pub(crate) fn view(&self) -> View<'d> {
        match self.raw().kind {
            Kind::Mapping => View::Mapping,
            Kind::Sequence => View::Sequence,
            Kind::Scalar => View::Scalar(self.scalar().unwrap_or_default()),
        }
    }

    /// `a scalar`, `a mapping` or `a list`.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self.raw().kind {
            Kind::Scalar => "a scalar",
            Kind::Mapping => "a mapping",
            Kind::Sequence => "a list",
        }
    }
}

/// Byte-wise equality without a call to `memcmp` (keys are short).
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// A node by kind.
pub(crate) enum View<'d> {
    Scalar(&'d str),
    Mapping,
    Sequence,
}

/// A mapping node: keys in file order.
#[derive(Clone, Copy)]
pub(crate) struct M<'d> {
    node: N<'d>,
    kids: &'d [u32],
}

impl<'d> M<'d> {
    fn node(&self, id: u32) -> N<'d> {
        N {
            doc: self.node.doc,
            id,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.kids.len() / 2
    }

    /// Key and value pairs.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (N<'d>, N<'d>)> + '_ {
        self.kids.chunks_exact(2).filter_map(|kv| match kv {
            [k, v] => Some((self.node(*k), self.node(*v))),
            _ => None,
        })
    }

    /// The key nodes.
    pub(crate) fn keys(&self) -> impl Iterator<Item = N<'d>> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<N<'d>> {
        let doc = self.node.doc;
        let key = key.as_bytes();
        self.kids.chunks_exact(2).find_map(|kv| match kv {
            [k, v] => doc
                .raw(*k)
                .filter(|r| {
                    r.kind == Kind::Scalar
                        && (r.b - r.a) as usize == key.len()
                        && doc
                            .text
                            .as_bytes()
                            .get(r.a as usize..r.b as usize)
                            .is_some_and(|k| same_bytes(k, key))
                })
                .map(|_| self.node(*v)),
            _ => None,
        })
    }

    /// The scalar value of `key`, as a node.
    pub(crate) fn get_scalar(&self, key: &str) -> Option<N<'d>> {
        self.get(key).filter(|n| n.scalar().is_some())
    }

    /// Where the mapping starts (its first key).
    pub(crate) fn pos(&self) -> Option<Position> {
        self.node.pos()
    }
}

/// A sequence node.
#[derive(Clone, Copy)]
pub(crate) struct S<'d> {
    doc: &'d Doc,
    kids: &'d [u32],
}

impl<'d> S<'d> {
    pub(crate) fn len(&self) -> usize {
        self.kids.len()
    }

    pub(crate) fn get(&self, i: usize) -> Option<N<'d>> {
        self.kids.get(i).map(|id| N {
            doc: self.doc,
            id: *id,
        })
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = N<'d>> + '_ {
        self.kids.iter().map(|id| N {
            doc: self.doc,
            id: *id,
        })
    }
}

/// Appends nodes to a [`Doc`]; children of open collections wait on a stack.
#[derive(Default)]
struct Builder {
    doc: Doc,
    stack: Vec<u32>,
}

impl Builder {
    fn push(&mut self, kind: Kind, pos: (u32, u32), a: usize, b: usize) -> Option<u32> {
        let id = u32::try_from(self.doc.nodes.len()).ok()?;
        self.doc.nodes.push(Raw {
            kind,
            line: pos.0,
            col: pos.1,
            a: u32::try_from(a).ok()?,
            b: u32::try_from(b).ok()?,
        });
        Some(id)
    }

    fn scalar(&mut self, s: &str, pos: (u32, u32)) -> Option<u32> {
        let a = self.doc.text.len();
        self.doc.text.push_str(s);
        self.push(Kind::Scalar, pos, a, self.doc.text.len())
    }

    /// Open a collection; returns its id and the stack mark of its children.
    fn open(&mut self, kind: Kind, pos: (u32, u32)) -> Option<(u32, usize)> {
        Some((self.push(kind, pos, 0, 0)?, self.stack.len()))
    }

    fn child(&mut self, id: u32) {
        self.stack.push(id);
    }

    /// Close a collection: move its children from the stack to `kids`.
    /// A mapping takes its position from its first key, if any.
    fn close(&mut self, id: u32, mark: usize) -> Option<()> {
        let a = u32::try_from(self.doc.kids.len()).ok()?;
        let children = self.stack.get(mark..)?;
        let n = children.len();
        let first = children.first().copied();
        self.doc.kids.extend_from_slice(children);
        self.stack.truncate(mark);
        let first_pos = first
            .and_then(|k| self.doc.nodes.get(k as usize))
            .map(|r| (r.line, r.col));
        let raw = self.doc.nodes.get_mut(id as usize)?;
        raw.a = a;
        raw.b = u32::try_from(if raw.kind == Kind::Mapping { n / 2 } else { n }).ok()?;
        if raw.kind == Kind::Mapping {
            if let Some((line, col)) = first_pos {
                raw.line = line;
                raw.col = col;
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests;
