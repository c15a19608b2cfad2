//! The reading primitives of the [`Parser`]: typed values out of YAML
//! nodes, each reporting what is wrong with a node (wrong type, unknown
//! key with the closest known one, missing key, unknown keyword, duplicate
//! id) and carrying on, so that one pass reports every structural error.
//!
//! Invariant: a primitive that reads a value and returns `None` (or
//! `Err(())`) has pushed an error diagnostic, so a caller may give up on
//! its node without a message of its own; `get`, which only looks a key
//! up, is the exception.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::{as_bool, is_null, sanitize, valid_id, Parser, PARALLEL_NODES};
use crate::diagnostic::{Diagnostic, Position, Severity};
use crate::suggest;
use crate::tree::{self, M, N};

/// The ids met in a list, with where each was first: a short list is
/// searched, a long one hashed.
enum Seen<'d> {
    Few(Vec<(&'d str, Option<Position>)>),
    Many(HashMap<&'d str, Option<Position>>),
}

impl<'d> Seen<'d> {
    fn new(len: usize) -> Self {
        if len <= 32 {
            Seen::Few(Vec::with_capacity(len))
        } else {
            Seen::Many(HashMap::with_capacity(len))
        }
    }

    fn get(&self, id: &str) -> Option<Option<Position>> {
        match self {
            Seen::Few(v) => v.iter().find(|(k, _)| *k == id).map(|(_, p)| *p),
            Seen::Many(m) => m.get(id).copied(),
        }
    }

    fn insert(&mut self, id: &'d str, at: Option<Position>) {
        match self {
            Seen::Few(v) => v.push((id, at)),
            Seen::Many(m) => {
                m.insert(id, at);
            }
        }
    }
}

/// The path of a node as diagnostics write it (`systems.db.datasets[2]`),
/// built only when a diagnostic needs it.
#[derive(Clone, Copy)]
pub(super) enum Path<'a> {
    Root,
    /// `parent.key`, or `key` when the parent's path is empty.
    Key(&'a Path<'a>, &'a str),
    /// `parent[i]`.
    Index(&'a Path<'a>, usize),
}

pub(super) const ROOT: Path<'static> = Path::Root;

impl Path<'_> {
    fn write(&self, out: &mut String) {
        match self {
            Path::Root => {}
            Path::Key(parent, key) => {
                parent.write(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Path::Index(parent, i) => {
                parent.write(out);
                let _ = write!(out, "[{i}]");
            }
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }
}

impl<'d> Parser<'_> {
    pub(super) fn push(
        &mut self,
        severity: Severity,
        code: &str,
        position: Option<Position>,
        path: &Path<'_>,
        message: String,
        hint: Option<String>,
    ) {
        self.diags.push(Diagnostic {
            severity,
            code: code.to_owned(),
            file: self.file.to_owned(),
            position,
            path: path.render(),
            message,
            hint,
        });
    }

    pub(super) fn error(
        &mut self,
        code: &str,
        at: Option<Position>,
        path: &Path<'_>,
        msg: String,
        hint: Option<String>,
    ) {
        self.push(Severity::Error, code, at, path, msg, hint);
    }

    /// `node` as a mapping with only `known` keys; reports unknown keys.
    pub(super) fn mapping(
        &mut self,
        node: N<'d>,
        path: &Path<'_>,
        what: &str,
        known: &[&str],
    ) -> Option<M<'d>> {
        let Some(m) = node.mapping() else {
            self.error(
                "wrong-type",
                node.pos(),
                path,
                format!("{what} must be a mapping, found {}", node.kind_name()),
                Some(format!(
                    "write it as `key: value` lines; expected keys: {}",
                    known.join(", ")
                )),
            );
            return None;
        };
        for key in m.keys() {
            let k = key.scalar().unwrap_or_default();
            if !known
                .iter()
                .any(|c| tree::same_bytes(c.as_bytes(), k.as_bytes()))
            {
                let hint = match suggest::closest(k, known.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? allowed keys: {}", known.join(", ")),
                    None => format!("allowed keys: {}", known.join(", ")),
                };
                self.error(
                    "unknown-key",
                    key.pos(),
                    &Path::Key(path, k),
                    format!("unknown key `{k}` in {what}"),
                    Some(hint),
                );
            }
        }
        Some(m)
    }

    /// A present, non-null value.
    pub(super) fn get(m: M<'d>, key: &str) -> Option<N<'d>> {
        m.get(key).filter(|n| !n.scalar().is_some_and(is_null))
    }

    pub(super) fn missing(&mut self, m: M<'d>, path: &Path<'_>, key: &str, what: &str, hint: &str) {
        let code = if key == "legal_basis" {
            "missing-legal-basis"
        } else {
            "missing-key"
        };
        self.error(
            code,
            m.pos(),
            path,
            format!("{what} has no `{key}`"),
            Some(hint.to_owned()),
        );
    }

    /// The text of a scalar; an error for a mapping or list.
    pub(super) fn text(&mut self, node: N<'d>, path: &Path<'_>) -> Option<&'d str> {
        match node.scalar() {
            Some(s) => Some(s),
            None => {
                self.error(
                    "wrong-type",
                    node.pos(),
                    path,
                    format!("expected a text value, found {}", node.kind_name()),
                    None,
                );
                None
            }
        }
    }

    pub(super) fn string(&mut self, node: N<'d>, path: &Path<'_>) -> Option<String> {
        self.text(node, path).map(str::to_owned)
    }

    pub(super) fn req_str(
        &mut self,
        m: M<'d>,
        path: &Path<'_>,
        key: &str,
        what: &str,
        hint: &str,
    ) -> Option<String> {
        match Self::get(m, key) {
            Some(n) => {
                let s = self.text(n, &Path::Key(path, key))?;
                if s.trim().is_empty() {
                    self.error(
                        "missing-key",
                        n.pos(),
                        &Path::Key(path, key),
                        format!("`{key}` of {what} is empty"),
                        Some(hint.to_owned()),
                    );
                    return None;
                }
                Some(s.to_owned())
            }
            None => {
                self.missing(m, path, key, what, hint);
                None
            }
        }
    }

    pub(super) fn opt_str(
        &mut self,
        m: M<'d>,
        path: &Path<'_>,
        key: &str,
    ) -> Result<Option<String>, ()> {
        match Self::get(m, key) {
            Some(n) => self.string(n, &Path::Key(path, key)).map(Some).ok_or(()),
            None => Ok(None),
        }
    }

    pub(super) fn opt_bool(&mut self, m: M<'d>, path: &Path<'_>, key: &str) -> Result<bool, ()> {
        match Self::get(m, key) {
            None => Ok(false),
            Some(n) => match n.scalar().and_then(as_bool) {
                Some(b) => Ok(b),
                None => {
                    self.error(
                        "wrong-type",
                        n.pos(),
                        &Path::Key(path, key),
                        format!("`{key}` must be true or false"),
                        Some("write `true` or `false` without quotes".into()),
                    );
                    Err(())
                }
            },
        }
    }

    /// A keyword out of `choices`, with "did you mean".
    /// A required key whose value is one of `choices`; reports the missing
    /// key (with `hint`) or an unknown value (with the closest choice).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn req_keyword<T: Copy>(
        &mut self,
        m: M<'d>,
        path: &Path<'_>,
        key: &str,
        label: &str,
        what: &str,
        choices: &[(&str, T)],
        hint: &str,
    ) -> Option<T> {
        match Self::get(m, key) {
            Some(n) => self.keyword(n, &Path::Key(path, key), label, choices),
            None => {
                self.missing(m, path, key, what, hint);
                None
            }
        }
    }

    pub(super) fn keyword<T: Copy>(
        &mut self,
        node: N<'d>,
        path: &Path<'_>,
        what: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let s = self.text(node, path)?;
        if let Some((_, v)) = choices.iter().find(|(k, _)| *k == s) {
            return Some(*v);
        }
        let keys: Vec<&str> = choices.iter().map(|(k, _)| *k).collect();
        let hint = match suggest::closest(s, keys.iter().copied()) {
            Some(c) => format!("did you mean `{c}`? allowed: {}", keys.join(", ")),
            None => format!("allowed: {}", keys.join(", ")),
        };
        self.error(
            "invalid-value",
            node.pos(),
            path,
            format!("unknown {what} `{s}`"),
            Some(hint),
        );
        None
    }

    /// A list of strings; a single scalar counts as a list of one when `lenient`.
    pub(super) fn str_list(
        &mut self,
        node: N<'d>,
        path: &Path<'_>,
        lenient: bool,
    ) -> Option<Vec<String>> {
        if let Some(seq) = node.sequence() {
            let mut out = Vec::with_capacity(seq.len());
            let mut ok = true;
            for (i, item) in seq.iter().enumerate() {
                match self.string(item, &Path::Index(path, i)) {
                    Some(s) => out.push(s),
                    None => ok = false,
                }
            }
            return ok.then_some(out);
        }
        match node.scalar() {
            Some(s) if lenient => Some(vec![s.to_owned()]),
            _ => {
                self.error(
                    "wrong-type",
                    node.pos(),
                    path,
                    format!("expected a list, found {}", node.kind_name()),
                    Some("write `[a, b]` or one `- item` per line".into()),
                );
                None
            }
        }
    }

    pub(super) fn opt_list(
        &mut self,
        m: M<'d>,
        path: &Path<'_>,
        key: &str,
    ) -> Result<Vec<String>, ()> {
        match Self::get(m, key) {
            Some(n) => self.str_list(n, &Path::Key(path, key), false).ok_or(()),
            None => Ok(Vec::new()),
        }
    }

    /// The items of a list of mappings keyed by `id_key`, each read by `f`
    /// with its path (`list.<id>` or `list[i]`), after a duplicate-id check
    /// of the whole list.
    pub(super) fn items<T>(
        &mut self,
        m: M<'d>,
        path: &Path<'_>,
        key: &str,
        id_key: &str,
        f: impl Fn(&mut Self, N<'d>, &Path<'_>) -> Option<T> + Sync,
    ) -> Option<Vec<T>>
    where
        T: Send,
    {
        let Some(node) = Self::get(m, key) else {
            return Some(Vec::new());
        };
        let list_path = Path::Key(path, key);
        let Some(seq) = node.sequence() else {
            self.error(
                "wrong-type",
                node.pos(),
                &list_path,
                format!("`{key}` must be a list, found {}", node.kind_name()),
                Some("write one `- ` item per entry".into()),
            );
            return Some(Vec::new());
        };
        let mut seen = Seen::new(seq.len());
        let mut ids: Vec<Option<&'d str>> = Vec::with_capacity(seq.len());
        for (i, item) in seq.iter().enumerate() {
            let id = item.mapping().and_then(|im| im.get_scalar(id_key));
            let id = match id.and_then(|n| n.scalar().map(|s| (n, s))) {
                Some((n, s)) if !is_null(s) && !s.contains('.') && !s.contains('[') => {
                    if let Some(first) = seen.get(s) {
                        let line = first.map_or(0, |p| p.line);
                        self.error(
                            "duplicate-id",
                            n.pos(),
                            &Path::Key(&Path::Index(&list_path, i), id_key),
                            format!("{id_key} `{s}` is already used in `{key}` (line {line})"),
                            Some(format!("give each entry of `{key}` its own {id_key}")),
                        );
                    } else {
                        seen.insert(s, n.pos());
                    }
                    Some(s)
                }
                _ => None,
            };
            ids.push(id);
        }
        // Every item is read (to report every error); the list is whole only
        // if every item is.
        let entries: Vec<(N<'d>, Option<&'d str>)> = seq.iter().zip(ids).collect();
        let run = |p: &mut Self, from: usize, part: &[(N<'d>, Option<&'d str>)]| {
            let mut out = Vec::with_capacity(part.len());
            let mut ok = true;
            for (k, (item, id)) in part.iter().enumerate() {
                let v = match id {
                    Some(id) => f(p, *item, &Path::Key(&list_path, id)),
                    None => f(p, *item, &Path::Index(&list_path, from + k)),
                };
                match v {
                    Some(v) if ok => out.push(v),
                    Some(_) => {}
                    None => ok = false,
                }
            }
            ok.then_some(out)
        };
        // A large map's top-level lists are read in two halves at once; the
        // second half's diagnostics follow the first's, as if read in turn.
        let big = matches!(path, Path::Root)
            && entries.len() >= 2
            && node.doc_nodes() >= PARALLEL_NODES
            && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
        if !big {
            return run(self, 0, &entries);
        }
        let mid = entries.len() / 2;
        let (first, second) = entries.split_at(mid);
        let mut other = Parser {
            file: self.file,
            diags: Vec::new(),
            identity_kinds: self.identity_kinds.clone(),
        };
        let (a, b) = std::thread::scope(|scope| {
            let handle =
                std::thread::Builder::new().spawn_scoped(scope, || run(&mut other, mid, second));
            let a = run(self, 0, first);
            let b = handle.ok().and_then(|h| h.join().ok());
            (a, b)
        });
        let b = match b {
            Some(b) => {
                self.diags.append(&mut other.diags);
                b
            }
            // No second thread: read the second half here.
            None => run(self, mid, second),
        };
        let (mut a, b) = (a?, b?);
        a.extend(b);
        Some(a)
    }

    pub(super) fn id(
        &mut self,
        m: M<'d>,
        path: &Path<'_>,
        key: &str,
        what: &str,
    ) -> Option<String> {
        let s = self.req_str(
            m,
            path,
            key,
            what,
            &format!("add `{key}: <name>`: letters, digits, `_` or `-`"),
        )?;
        if !valid_id(&s) {
            let at = m.get(key).and_then(|n| n.pos());
            self.error(
                "invalid-id",
                at,
                &Path::Key(path, key),
                format!("{key} `{s}` may contain only letters, digits, `_` and `-`"),
                Some(format!("rename it, e.g. `{}`", sanitize(&s))),
            );
            return None;
        }
        Some(s)
    }
}
