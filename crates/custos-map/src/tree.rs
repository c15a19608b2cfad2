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
//! reader accepts (checked by the differential tests below).

use marked_yaml::Node;

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

// ---- from marked-yaml ----

/// The tree of `marked-yaml` as a [`Doc`].
pub(crate) fn from_marked(root: &Node) -> Doc {
    let mut b = Builder::default();
    let ok = marked(&mut b, root).is_some();
    if ok {
        b.doc
    } else {
        Doc::default()
    }
}

fn marker_pos(m: Option<&marked_yaml::Marker>) -> (u32, u32) {
    m.map_or((0, 0), |m| {
        (
            u32::try_from(m.line()).unwrap_or(u32::MAX),
            u32::try_from(m.column()).unwrap_or(u32::MAX),
        )
    })
}

fn marked(b: &mut Builder, node: &Node) -> Option<u32> {
    match node {
        Node::Scalar(s) => b.scalar(s.as_str(), marker_pos(s.span().start())),
        Node::Mapping(m) => {
            let (id, mark) = b.open(Kind::Mapping, marker_pos(m.span().start()))?;
            for (k, v) in m.iter() {
                let k = b.scalar(k.as_str(), marker_pos(k.span().start()))?;
                b.child(k);
                let v = marked(b, v)?;
                b.child(v);
            }
            b.close(id, mark)?;
            Some(id)
        }
        Node::Sequence(s) => {
            let (id, mark) = b.open(Kind::Sequence, marker_pos(s.span().start()))?;
            for item in s.iter() {
                let v = marked(b, item)?;
                b.child(v);
            }
            b.close(id, mark)?;
            Some(id)
        }
    }
}

// ---- the fast reader ----

/// Read `src` if it is in the plain subset of YAML that the fast reader
/// handles exactly as `yaml-rust2`; `None` otherwise (the caller then uses
/// the full parser, which also explains any error).
pub(crate) fn fast(src: &str) -> Option<Doc> {
    if u32::try_from(src.len()).is_err() || !plain_chars(src) {
        return None;
    }
    let mut r = Reader {
        src,
        s: src.as_bytes(),
        i: 0,
        line: 1,
        line_start: 0,
        ascii: src.is_ascii(),
        cur: None,
        depth: 0,
        b: Builder {
            // The text never exceeds the source; the node estimates are
            // generous (pages never touched cost nothing).
            doc: Doc {
                text: String::with_capacity(src.len()),
                nodes: Vec::with_capacity(src.len() / 6),
                kids: Vec::with_capacity(src.len() / 6),
            },
            stack: Vec::new(),
        },
    };
    r.next_line().ok()?;
    let indent = r.cur?;
    if !r.is_key().ok()? {
        return None;
    }
    let root = r.block_map(indent).ok()?;
    if root != 0 || r.cur.is_some() {
        return None;
    }
    Some(r.b.doc)
}

/// No tabs, carriage returns, control or non-printable characters, BOMs or
/// Unicode line separators: those go to the full parser.
fn plain_chars(src: &str) -> bool {
    let ascii_ok = |b: u8| (0x20..0x7f).contains(&b) || b == b'\n';
    if src
        .as_bytes()
        .chunks(64)
        .all(|c| c.iter().fold(true, |ok, b| ok & ascii_ok(*b)))
    {
        return true;
    }
    src.chars().all(|c| {
        if c.is_ascii() {
            ascii_ok(c as u8)
        } else {
            matches!(c, '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
                && !matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}')
        }
    })
}

/// The fast reader gave up.
struct Bail;

type R<T> = Result<T, Bail>;

fn opt<T>(v: Option<T>) -> R<T> {
    v.ok_or(Bail)
}

/// Nesting deeper than this goes to the full parser.
const MAX_DEPTH: u32 = 64;
/// Longer keys go to the full parser (`yaml-rust2` limits simple keys).
const MAX_KEY: usize = 1000;
/// Mappings with more keys go to the full parser (duplicates are looked for
/// by a linear scan).
const MAX_KEYS: usize = 256;

/// Characters that may not start a plain scalar here (YAML indicators,
/// including `-`, `?` and `:`, which YAML allows in some cases).
fn indicator(b: u8) -> bool {
    matches!(
        b,
        b'-' | b'?'
            | b':'
            | b','
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'#'
            | b'&'
            | b'*'
            | b'!'
            | b'|'
            | b'>'
            | b'\''
            | b'"'
            | b'%'
            | b'@'
            | b'`'
            | b' '
            | b'\n'
    )
}

/// Bytes at which a plain scalar may end.
fn special(b: u8) -> bool {
    matches!(b, b'\n' | b':' | b' ' | b',' | b'[' | b']' | b'{' | b'}')
}

fn blank_or_end(b: Option<&u8>) -> bool {
    matches!(b, None | Some(b' ' | b'\n'))
}

/// How a plain scalar ended.
#[derive(PartialEq, Eq)]
enum Stop {
    /// At `: ` (or `:` at the end of the line): it is a key.
    Colon,
    /// At the end of the line or a comment.
    Line,
    /// At a flow indicator (`,`, `]`, `}`, ...).
    Flow,
}

struct Reader<'s> {
    src: &'s str,
    s: &'s [u8],
    i: usize,
    line: u32,
    line_start: usize,
    ascii: bool,
    /// Indent of the current content line (the cursor is on its first
    /// character), `None` at the end.
    cur: Option<usize>,
    depth: u32,
    b: Builder,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn at(&self, j: usize) -> Option<&u8> {
        self.s.get(j)
    }

    fn pos(&self, i: usize) -> R<(u32, u32)> {
        let col = if self.ascii {
            i - self.line_start
        } else {
            opt(self.src.get(self.line_start..i))?.chars().count()
        };
        Ok((self.line, opt(u32::try_from(col + 1).ok())?))
    }

    fn skip_spaces(&mut self) -> usize {
        let start = self.i;
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
        self.i - start
    }

    /// From the start of a line, skip blank and comment lines; set `cur`.
    fn next_line(&mut self) -> R<()> {
        loop {
            self.line_start = self.i;
            let indent = self.skip_spaces();
            match self.peek() {
                None => {
                    self.cur = None;
                    return Ok(());
                }
                Some(b'\n') => {}
                Some(b'#') => {
                    while !matches!(self.peek(), None | Some(b'\n')) {
                        self.i += 1;
                    }
                    if self.peek().is_none() {
                        self.cur = None;
                        return Ok(());
                    }
                }
                Some(_) => {
                    let rest = self.s.get(self.i..).unwrap_or(&[]);
                    if indent == 0 && (rest.starts_with(b"---") || rest.starts_with(b"...")) {
                        return Err(Bail);
                    }
                    self.cur = Some(indent);
                    return Ok(());
                }
            }
            // At a line break.
            self.i += 1;
            self.line = opt(self.line.checked_add(1))?;
        }
    }

    /// The rest of the line must be blank or a comment; go to the next
    /// content line.
    fn end_line(&mut self) -> R<()> {
        self.skip_spaces();
        match self.peek() {
            None => {
                self.cur = None;
                return Ok(());
            }
            Some(b'\n') => {}
            Some(b'#') if self.i > 0 && self.at(self.i - 1) == Some(&b' ') => {
                while !matches!(self.peek(), None | Some(b'\n')) {
                    self.i += 1;
                }
                if self.peek().is_none() {
                    self.cur = None;
                    return Ok(());
                }
            }
            Some(_) => return Err(Bail),
        }
        self.i += 1;
        self.line = opt(self.line.checked_add(1))?;
        self.next_line()
    }

    fn at_dash(&self) -> bool {
        self.peek() == Some(b'-') && blank_or_end(self.at(self.i + 1))
    }

    /// Whether the line at the cursor starts with a `key:`.
    fn is_key(&self) -> R<bool> {
        match self.peek() {
            Some(q @ (b'"' | b'\'')) => {
                let mut j = self.i + 1;
                loop {
                    match self.at(j) {
                        None | Some(b'\n') => return Err(Bail),
                        Some(b'\\') if q == b'"' => j += 2,
                        Some(c) if *c == q => {
                            if q == b'\'' && self.at(j + 1) == Some(&b'\'') {
                                j += 2;
                            } else {
                                break;
                            }
                        }
                        Some(_) => j += 1,
                    }
                }
                Ok(self.at(j + 1) == Some(&b':') && blank_or_end(self.at(j + 2)))
            }
            Some(b'[' | b'{') => Ok(false),
            _ => Ok(self.plain_end(false)?.1 == Stop::Colon),
        }
    }

    /// End of the plain scalar at the cursor (trailing spaces excluded) and
    /// how it ended.
    fn plain_end(&self, flow: bool) -> R<(usize, Stop)> {
        let start = self.i;
        if indicator(*opt(self.at(start))?) {
            return Err(Bail);
        }
        let mut j = start;
        let stop = loop {
            while self.at(j).is_some_and(|b| !special(*b)) {
                j += 1;
            }
            match self.at(j) {
                None | Some(b'\n') => {
                    if flow {
                        return Err(Bail);
                    }
                    break Stop::Line;
                }
                Some(b':') => {
                    if blank_or_end(self.at(j + 1)) {
                        break Stop::Colon;
                    }
                    if flow {
                        return Err(Bail);
                    }
                    j += 1;
                }
                Some(b' ') if self.at(j + 1) == Some(&b'#') => {
                    if flow {
                        return Err(Bail);
                    }
                    break Stop::Line;
                }
                // `yaml-rust2` reads what follows a blank inside a flow
                // scalar as a new start (`[a -]` is an error there).
                Some(b' ') if flow && self.at(j + 1).is_some_and(|b| indicator(*b)) => {
                    if self.at(j + 1) == Some(&b' ') {
                        j += 1;
                    } else if matches!(self.at(j + 1), Some(b',' | b']' | b'}')) {
                        break Stop::Flow;
                    } else {
                        return Err(Bail);
                    }
                }
                Some(b',' | b'[' | b']' | b'{' | b'}') if flow => break Stop::Flow,
                Some(_) => j += 1,
            }
        };
        let mut end = j;
        while end > start && self.at(end - 1) == Some(&b' ') {
            end -= 1;
        }
        Ok((end, stop))
    }

    /// A plain scalar; returns its node and how it ended (the cursor is left
    /// at the stop, the `:` of a key included).
    fn plain(&mut self, flow: bool) -> R<(u32, Stop)> {
        let start = self.i;
        let (end, stop) = self.plain_end(flow)?;
        let pos = self.pos(start)?;
        let text = opt(self.src.get(start..end))?;
        if stop == Stop::Colon && (text.contains(':') || end - start > MAX_KEY) {
            return Err(Bail);
        }
        let id = opt(self.b.scalar(text, pos))?;
        self.i = end;
        if stop == Stop::Colon {
            // Keys have no trailing spaces here.
            if self.peek() != Some(b':') {
                return Err(Bail);
            }
        }
        Ok((id, stop))
    }

    /// A quoted scalar on one line.
    fn quoted(&mut self) -> R<u32> {
        let start = self.i;
        let q = opt(self.peek())?;
        let pos = self.pos(start)?;
        let mut out = String::new();
        let mut j = start + 1;
        let mut run = j;
        loop {
            match self.at(j) {
                None | Some(b'\n') => return Err(Bail),
                Some(b'\'') if q == b'\'' => {
                    out.push_str(opt(self.src.get(run..j))?);
                    if self.at(j + 1) == Some(&b'\'') {
                        out.push('\'');
                        j += 2;
                        run = j;
                    } else {
                        break;
                    }
                }
                Some(b'"') if q == b'"' => {
                    out.push_str(opt(self.src.get(run..j))?);
                    break;
                }
                Some(b'\\') if q == b'"' => {
                    out.push_str(opt(self.src.get(run..j))?);
                    let (c, len) = self.escape(j + 1)?;
                    out.push(c);
                    j += 1 + len;
                    run = j;
                }
                Some(_) => j += 1,
            }
        }
        self.i = j + 1;
        opt(self.b.scalar(&out, pos))
    }

    /// The escape after a `\` at `j`: the character and the length consumed.
    fn escape(&self, j: usize) -> R<(char, usize)> {
        Ok(match *opt(self.at(j))? {
            b'"' => ('"', 1),
            b'\\' => ('\\', 1),
            b'/' => ('/', 1),
            b'n' => ('\n', 1),
            b't' => ('\t', 1),
            b'r' => ('\r', 1),
            b'b' => ('\u{8}', 1),
            b'f' => ('\u{c}', 1),
            b'0' => ('\0', 1),
            b'u' => {
                let hex = opt(self.src.get(j + 1..j + 5))?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Bail);
                }
                let v = opt(u32::from_str_radix(hex, 16).ok())?;
                (opt(char::from_u32(v))?, 5)
            }
            _ => return Err(Bail),
        })
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Bail);
        }
        Ok(())
    }

    /// A block node on a new line, at indent `indent` (the cursor is on it).
    fn block_node(&mut self, indent: usize) -> R<u32> {
        if self.at_dash() {
            self.block_seq(indent, false)
        } else if self.is_key()? {
            self.block_map(indent)
        } else {
            Err(Bail)
        }
    }

    /// A block mapping whose keys are at column `indent` (0-based); the
    /// cursor is on its first key.
    fn block_map(&mut self, indent: usize) -> R<u32> {
        self.enter()?;
        let (id, mark) = opt(self.b.open(Kind::Mapping, self.pos(self.i)?))?;
        loop {
            let key = self.key()?;
            self.dup_check(mark, key)?;
            // The cursor is after `:`.
            self.skip_spaces();
            let value = match self.peek() {
                None | Some(b'\n' | b'#') => {
                    self.end_line()?;
                    match self.cur {
                        Some(m) if m > indent => self.block_node(m)?,
                        Some(m) if m == indent && self.at_dash() => self.block_seq(m, true)?,
                        _ => return Err(Bail),
                    }
                }
                Some(_) => {
                    let v = self.inline_value()?;
                    self.end_line()?;
                    if self.cur.is_some_and(|m| m > indent) {
                        return Err(Bail);
                    }
                    v
                }
            };
            self.b.child(key);
            self.b.child(value);
            match self.cur {
                Some(m) if m == indent => {
                    if self.at_dash() {
                        return Err(Bail);
                    }
                }
                Some(m) if m > indent => return Err(Bail),
                _ => break,
            }
        }
        opt(self.b.close(id, mark))?;
        self.depth -= 1;
        Ok(id)
    }

    /// A key and its `:`; the cursor is left after the `:`.
    fn key(&mut self) -> R<u32> {
        let id = match self.peek() {
            Some(b'"' | b'\'') => {
                let start = self.i;
                let id = self.quoted()?;
                if self.i - start > MAX_KEY {
                    return Err(Bail);
                }
                id
            }
            _ => match self.plain(false)? {
                (id, Stop::Colon) => id,
                _ => return Err(Bail),
            },
        };
        if self.peek() != Some(b':') || !blank_or_end(self.at(self.i + 1)) {
            return Err(Bail);
        }
        self.i += 1;
        Ok(id)
    }

    /// Duplicate keys go to the full parser, which reports them.
    fn dup_check(&self, mark: usize, key: u32) -> R<()> {
        let doc = &self.b.doc;
        let text = |id: u32| {
            doc.nodes
                .get(id as usize)
                .and_then(|r| doc.text.get(r.a as usize..r.b as usize))
        };
        let k = text(key);
        let keys = self.b.stack.get(mark..).unwrap_or(&[]);
        if keys.len() > 2 * MAX_KEYS {
            return Err(Bail);
        }
        if keys.iter().step_by(2).any(|other| text(*other) == k) {
            return Err(Bail);
        }
        Ok(())
    }

    /// A value on the rest of the line: flow collection, quoted or plain
    /// scalar.
    fn inline_value(&mut self) -> R<u32> {
        match opt(self.peek())? {
            b'[' => self.flow_seq(),
            b'{' => self.flow_map(),
            b'"' | b'\'' => self.quoted(),
            _ => match self.plain(false)? {
                (id, Stop::Line) => Ok(id),
                _ => Err(Bail),
            },
        }
    }

    /// A block sequence whose `-` are at column `indent`; the cursor is on
    /// the first `-`.
    ///
    /// An `indentless` sequence (the value of a key, with its `-` at the
    /// key's column) starts, for `yaml-rust2`, after the first `-` and the
    /// blanks and comment that follow it.
    fn block_seq(&mut self, indent: usize, indentless: bool) -> R<u32> {
        self.enter()?;
        let (id, mark) = opt(self.b.open(Kind::Sequence, self.pos(self.i)?))?;
        let mut first = indentless;
        loop {
            self.i += 1;
            let spaces = self.skip_spaces();
            if first {
                first = false;
                let mut j = self.i;
                if self.at(j) == Some(&b'#') && spaces > 0 {
                    while !matches!(self.at(j), None | Some(b'\n')) {
                        j += 1;
                    }
                }
                let (line, col) = self.pos(j)?;
                let raw = opt(self.b.doc.nodes.get_mut(id as usize))?;
                raw.line = line;
                raw.col = col;
            }
            let item = match self.peek() {
                None | Some(b'\n') => self.nested_item(indent)?,
                Some(b'#') if spaces > 0 => self.nested_item(indent)?,
                _ if self.at_dash() => return Err(Bail),
                _ if self.is_key()? => {
                    let col = self.i - self.line_start;
                    self.block_map(col)?
                }
                _ => {
                    let v = self.inline_value()?;
                    self.end_line()?;
                    if self.cur.is_some_and(|m| m > indent) {
                        return Err(Bail);
                    }
                    v
                }
            };
            self.b.child(item);
            match self.cur {
                Some(m) if m == indent && self.at_dash() => {}
                _ => break,
            }
        }
        opt(self.b.close(id, mark))?;
        self.depth -= 1;
        Ok(id)
    }

    /// An item whose `-` ends its line: a block node on the next lines.
    fn nested_item(&mut self, indent: usize) -> R<u32> {
        self.end_line()?;
        match self.cur {
            Some(m) if m > indent => self.block_node(m),
            _ => Err(Bail),
        }
    }

    fn flow_node(&mut self) -> R<u32> {
        match opt(self.peek())? {
            b'[' => self.flow_seq(),
            b'{' => self.flow_map(),
            b'"' | b'\'' => self.quoted(),
            _ => match self.plain(true)? {
                (id, Stop::Flow) => Ok(id),
                _ => Err(Bail),
            },
        }
    }

    /// After an entry of a flow collection: `,` and more, or `close`.
    /// Returns whether the collection goes on.
    fn flow_next(&mut self, close: u8) -> R<bool> {
        self.skip_spaces();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                self.skip_spaces();
                if matches!(self.peek(), Some(b']' | b'}' | b',')) {
                    return Err(Bail);
                }
                Ok(true)
            }
            Some(c) if c == close => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(Bail),
        }
    }

    fn flow_seq(&mut self) -> R<u32> {
        self.enter()?;
        let (id, mark) = opt(self.b.open(Kind::Sequence, self.pos(self.i)?))?;
        self.i += 1;
        self.skip_spaces();
        if self.peek() == Some(b']') {
            self.i += 1;
        } else {
            loop {
                let item = self.flow_node()?;
                self.b.child(item);
                if !self.flow_next(b']')? {
                    break;
                }
            }
        }
        opt(self.b.close(id, mark))?;
        self.depth -= 1;
        Ok(id)
    }

    fn flow_map(&mut self) -> R<u32> {
        self.enter()?;
        let (id, mark) = opt(self.b.open(Kind::Mapping, self.pos(self.i)?))?;
        self.i += 1;
        self.skip_spaces();
        if self.peek() == Some(b'}') {
            self.i += 1;
        } else {
            loop {
                let key = match opt(self.peek())? {
                    b'"' | b'\'' => {
                        let start = self.i;
                        let k = self.quoted()?;
                        if self.i - start > MAX_KEY {
                            return Err(Bail);
                        }
                        k
                    }
                    _ => match self.plain(true)? {
                        (k, Stop::Colon) => k,
                        _ => return Err(Bail),
                    },
                };
                if self.peek() != Some(b':') || self.at(self.i + 1) != Some(&b' ') {
                    return Err(Bail);
                }
                self.i += 1;
                self.skip_spaces();
                self.dup_check(mark, key)?;
                let value = self.flow_node()?;
                self.b.child(key);
                self.b.child(value);
                if !self.flow_next(b'}')? {
                    break;
                }
            }
        }
        opt(self.b.close(id, mark))?;
        self.depth -= 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marked_yaml::LoaderOptions;

    fn full(src: &str) -> Option<Doc> {
        marked_yaml::parse_yaml_with_options(
            0,
            src,
            LoaderOptions::default().error_on_duplicate_keys(true),
        )
        .ok()
        .map(|n| from_marked(&n))
    }

    /// Whenever the fast reader accepts a text, the full parser accepts it
    /// too and gives the same tree, positions included.
    fn same(src: &str) -> bool {
        let Some(fast) = fast(src) else {
            return false;
        };
        let Some(full) = full(src) else {
            panic!("fast reader accepted what the full parser rejects:\n{src}");
        };
        assert_eq!(fast.root(), full.root(), "\n{src}");
        true
    }

    #[test]
    fn accepts_the_plain_subset() {
        for src in [
            "a: b\n",
            "a: b",
            "a: b\nc: d\n",
            "  a: b\n  c: d\n",
            "a:\n  b: c\n  d: e\nf: g\n",
            "a:\n  - x\n  - y\nb: z\n",
            "a:\n- x\n- y\nb: z\n",
            "a:\n  - id: x\n    k: v\n  - id: y\n",
            "a:\n- id: x\n  k: v\n- id: y\n",
            "a:\n  -   id: x\n      k: v\n",
            "a:\n  -\n    id: x\n",
            "a: [x, y]\nb: []\nc: {}\n",
            "a: { x: 1, y: [2, 3], z: { w: v } }\n",
            "a: [ {x: 1}, [y] ]\n",
            "a: 'it''s'\nb: \"q\\\"x\\\\y\\n\\u00e9\"\n",
            "\"a b\": c\n'd': e\n",
            "a: { \"x\": 'y' }\n",
            "# top\na: b # c\n\n   \n# x\nc:   d   \n",
            "a: # c\n  b: c\n",
            "a: http://x.example/y?z#w\n",
            "a: b#c\n",
            "a: x, y [z] {w}\n",
            "a: ~\nb: null\nc: true\n",
            "é: ü\nx: { ä: ö }\n",
            "a:\n  b:\n    c:\n      - d\n      - e: f\n        g: [h]\n",
            "a:\n  - - x\n",
            "a: -1\n",
        ] {
            let accepted = same(src);
            let must = !matches!(src, "a:\n  - - x\n" | "a: -1\n");
            assert_eq!(accepted, must, "{src}");
        }
    }

    #[test]
    fn gives_up_on_the_rest() {
        for src in [
            "",
            "# only\n",
            "a:\n",
            "a: b\nc:\n",
            "a: |\n  x\n",
            "a: >\n  x\n",
            "a: &x b\nc: *x\n",
            "a: !t b\n",
            "---\na: b\n",
            "a: b\n...\n",
            "a: b\n  c\n",
            "a: [b,\n  c]\n",
            "a: 'b\n  c'\n",
            "a: b\na: c\n",
            "a: { b: 1, b: 2 }\n",
            "a:\tb\n",
            "a: b\r\n",
            "\u{feff}a: b\n",
            "- a\n",
            "a\n",
            "a: b: c\n",
            "a: [b: c]\n",
            "a: {b}\n",
            "a: {b: }\n",
            "a: [b,]\n",
            "a: [x:y]\n",
            "a: { u: http://x }\n",
            "a: b\n - c\n",
            "a:\n  b: c\n d: e\n",
            "a: \"\\x41\"\n",
            "? a\n: b\n",
            "a : b\n",
            "a:b: c\n",
            "a: [b] c\n",
            "a: [b]#c\n",
            "a:\n  - b\n  c: d\n",
        ] {
            assert!(fast(src).is_none(), "{src:?}");
        }
    }

    /// A small deterministic generator of YAML texts in (and around) the
    /// subset, with random layout: the property is checked on each, and on
    /// random mutations of each.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[self.below(xs.len())]
        }

        /// Mostly simple, sometimes tricky.
        fn rare(&mut self) -> bool {
            self.below(16) == 0
        }

        fn scalar(&mut self, flow: bool) -> String {
            let plain = [
                "a",
                "id",
                "name",
                "x1",
                "user.contact.email",
                "3y",
                "~",
                "null",
                "true",
                "Null",
                "1.5",
                "a b",
                "a  b",
                "é",
                "日本",
                "a#b",
                "a-b",
                "a_b",
                "a/b",
                "a@b.c",
                "a.b",
                "a'b",
                "a\"b",
                "a\\b",
                "=",
                "<<",
                "a?",
                "a!",
                "a%",
                "x:y",
                "https://x.example/y",
                "a , b",
                "a,b",
                "[a]",
            ];
            let tricky = [
                "{a}",
                "a: b",
                "-a",
                "- a",
                "?a",
                ":a",
                "#a",
                "&a",
                "*a",
                "!a",
                "|",
                ">",
                "'a",
                "\"a",
                "@a",
                "`a",
                "%a",
                "a ",
                " a",
                "",
                "a\tb",
                "a #b",
                "a:",
                "a:b",
                "-",
                "?",
                "---",
                "...",
                "a\u{85}b",
                "a\u{2028}b",
            ];
            let quoted = [
                "'a'",
                "'a b'",
                "'it''s'",
                "''",
                "'a: b'",
                "'#'",
                "\"a\"",
                "\"\"",
                "\"a\\\"b\"",
                "\"a\\\\b\"",
                "\"a\\nb\"",
                "\"\\u00e9\"",
                "\"\\t\"",
                "\"a: b\"",
                "\"[a]\"",
                "\"a\\/b\"",
                "' a '",
                "\" a \"",
            ];
            let quoted_tricky = [
                "\"\\x41\"",
                "'a\nb'",
                "\"a\nb\"",
                "\"\\ud800\"",
                "\"\\N\"",
                "\"\\\n\"",
                "'a",
                "\"a",
            ];
            let s = match (self.rare(), self.below(3) == 0) {
                (true, true) => self.pick(&quoted_tricky),
                (true, false) => self.pick(&tricky),
                (false, true) => self.pick(&quoted),
                (false, false) => self.pick(&plain),
            };
            if flow && self.below(8) == 0 {
                format!("{s} ")
            } else {
                s.to_owned()
            }
        }

        fn key(&mut self) -> String {
            let keys = [
                "a", "b", "id", "name", "kind", "x y", "'q'", "\"d\"", "é", "k1", "k2", "k3", "k4",
                "k5", "k6", "k7",
            ];
            let tricky = [
                "a:b", "a#b", "- a", "[a]", "? a", "a ", "{a}", "&a", "!a", "'a'b",
            ];
            if self.rare() {
                self.pick(&tricky).to_owned()
            } else {
                self.pick(&keys).to_owned()
            }
        }

        fn flow(&mut self, depth: usize) -> String {
            match self.below(if depth > 2 { 1 } else { 3 }) {
                0 => self.scalar(true),
                1 => {
                    let n = self.below(4);
                    let items: Vec<String> = (0..n).map(|_| self.flow(depth + 1)).collect();
                    let sep = if self.rare() {
                        self.pick(&[",,", ", ,", ",\n"])
                    } else {
                        self.pick(&[", ", ",", " , ", ",  "])
                    };
                    let pad = self.pick(&["", " "]);
                    format!("[{pad}{}{pad}]", items.join(sep))
                }
                _ => {
                    let n = self.below(4);
                    let items: Vec<String> = (0..n)
                        .map(|_| {
                            let colon = if self.rare() {
                                self.pick(&[":", " : ", ":\n"])
                            } else {
                                self.pick(&[": ", ":  "])
                            };
                            format!("{}{colon}{}", self.key(), self.flow(depth + 1))
                        })
                        .collect();
                    let pad = self.pick(&["", " "]);
                    format!("{{{pad}{}{pad}}}", items.join(", "))
                }
            }
        }

        fn comment(&mut self) -> &'static str {
            match self.below(24) {
                0 | 1 => " # note",
                2 => " #",
                3 => "#x",
                4 | 5 => "  ",
                _ => "",
            }
        }

        fn blank_lines(&mut self, out: &mut String) {
            match self.below(10) {
                0 => out.push('\n'),
                1 => out.push_str("# c\n"),
                2 => out.push_str("   \n"),
                3 => out.push_str("  # c\n"),
                _ => {}
            }
        }

        /// A block mapping at `indent`, its first key already indented when
        /// `inline` (after `- `).
        fn block_map(&mut self, out: &mut String, indent: usize, depth: usize, inline: bool) {
            let n = 1 + self.below(4);
            for i in 0..n {
                if !(inline && i == 0) {
                    self.blank_lines(out);
                    out.push_str(&" ".repeat(indent));
                }
                out.push_str(&self.key());
                out.push(':');
                self.value(out, indent, depth);
            }
        }

        /// A value after `key:` at `indent`.
        fn value(&mut self, out: &mut String, indent: usize, depth: usize) {
            let choice = if depth > 2 {
                self.below(2)
            } else {
                self.below(6)
            };
            match choice {
                0 => {
                    let sp = if self.rare() {
                        ""
                    } else {
                        self.pick(&[" ", "  "])
                    };
                    out.push_str(sp);
                    out.push_str(&self.scalar(false));
                    out.push_str(self.comment());
                    out.push('\n');
                }
                1 => {
                    out.push(' ');
                    out.push_str(&self.flow(0));
                    out.push_str(self.comment());
                    out.push('\n');
                }
                2 => {
                    out.push_str(self.comment());
                    out.push('\n');
                    let step = 1 + self.below(3);
                    self.blank_lines(out);
                    out.push_str(&" ".repeat(indent + step));
                    self.block_map(out, indent + step, depth + 1, true);
                }
                _ => {
                    out.push_str(self.comment());
                    out.push('\n');
                    let step = if self.below(2) == 0 { 0 } else { 2 };
                    self.block_seq(out, indent + step, depth + 1);
                }
            }
        }

        fn block_seq(&mut self, out: &mut String, indent: usize, depth: usize) {
            let n = 1 + self.below(3);
            for _ in 0..n {
                self.blank_lines(out);
                out.push_str(&" ".repeat(indent));
                out.push('-');
                let sp = if self.rare() {
                    ""
                } else {
                    self.pick(&[" ", "  ", "   "])
                };
                match self.below(if depth > 2 { 2 } else { 4 }) {
                    0 => {
                        out.push_str(sp);
                        out.push_str(&self.scalar(false));
                        out.push_str(self.comment());
                        out.push('\n');
                    }
                    1 => {
                        out.push(' ');
                        out.push_str(&self.flow(0));
                        out.push('\n');
                    }
                    2 => {
                        out.push(' ');
                        out.push_str(sp);
                        let col = indent + 2 + sp.len();
                        self.block_map(out, col, depth + 1, true);
                    }
                    _ => {
                        out.push_str(self.comment());
                        out.push('\n');
                        let step = 1 + self.below(3);
                        if self.below(3) == 0 {
                            self.block_seq(out, indent + step, depth + 1);
                        } else {
                            out.push_str(&" ".repeat(indent + step));
                            self.block_map(out, indent + step, depth + 1, true);
                        }
                    }
                }
            }
        }

        fn doc(&mut self) -> String {
            let mut out = String::new();
            let indent = if self.below(10) == 0 { 2 } else { 0 };
            out.push_str(&" ".repeat(indent));
            self.block_map(&mut out, indent, 0, true);
            if self.below(10) == 0 {
                out.pop();
            }
            out
        }

        fn mutate(&mut self, src: &str) -> String {
            let mut chars: Vec<char> = src.chars().collect();
            let bits = [
                ' ', ' ', '\n', ':', '-', '#', ',', '[', ']', '{', '}', '\'', '"', '\\', 'a', '\t',
                '&', '*', '!', '|', '>', '?', '%', 'é', '\r', '\u{feff}', '.',
            ];
            for _ in 0..1 + self.below(3) {
                if chars.is_empty() {
                    break;
                }
                let at = self.below(chars.len());
                match self.below(3) {
                    0 => {
                        chars.remove(at);
                    }
                    1 => chars.insert(at, bits[self.below(bits.len())]),
                    _ => chars[at] = bits[self.below(bits.len())],
                }
            }
            chars.into_iter().collect()
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// The differential property on generated texts and mutations.
        #[test]
        fn fast_reader_agrees_with_full_parser(seed in 1u64..) {
            let mut g = Gen(seed);
            let src = g.doc();
            same(&src);
            for _ in 0..4 {
                let m = g.mutate(&src);
                same(&m);
            }
        }
    }

    /// The generator produces texts the fast reader accepts often enough for
    /// the property to mean something.
    #[test]
    fn generator_covers_the_subset() {
        let (mut fast_ok, mut mutated_ok) = (0, 0);
        for seed in 1..=2000u64 {
            let mut g = Gen(seed * 7919);
            let src = g.doc();
            if same(&src) {
                fast_ok += 1;
            }
            if same(&g.mutate(&src)) {
                mutated_ok += 1;
            }
        }
        assert!(
            fast_ok > 200,
            "only {fast_ok} of 2000 generated texts read fast"
        );
        assert!(
            mutated_ok > 50,
            "only {mutated_ok} of 2000 mutated texts read fast"
        );
        eprintln!("read fast: {fast_ok} generated, {mutated_ok} mutated of 2000");
    }

    #[test]
    fn same_as_full_parser_on_shipped_maps() {
        // The demo map has block scalars (`>-`): the full parser reads it.
        assert!(!same(crate::DEMO_MAP));
        let out = crate::yaml::to_yaml(&crate::load_str(crate::DEMO_MAP, "demo.yaml").unwrap().0);
        assert!(same(&out));
    }
}
