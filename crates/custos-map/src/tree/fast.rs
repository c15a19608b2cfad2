//! The fast reader: one pass over the plain YAML that map files are
//! written in, straight into a [`Doc`].
//!
//! Invariant: it accepts a text only if `yaml-rust2` reads it to the same
//! tree, positions included; anything else (tabs, anchors, tags, block
//! scalars, multi-line scalars or flow collections, empty values,
//! duplicate keys, syntax errors, ...) makes it give up with `None`, and
//! the full parser takes over. The differential tests in `tests` hold it
//! to that.

use super::{Builder, Doc, Kind};

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
