//! From YAML text to a [`DataMap`], with a position for every problem.
//!
//! The YAML is first read into a tree whose every node carries its line and
//! column ([`crate::tree`]: a fast reader for the plain YAML maps are written
//! in, `marked-yaml` for anything else), then converted by hand rather than
//! through serde:
//! serde stops at the first error, and we want every structural error of the
//! file at once, each with the path of its node and a way to fix it.
//! Semantic rules live in [`crate::validate`]; they need the [`SourceIndex`]
//! returned here to point back into the file.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use marked_yaml::{LoadError, LoaderOptions};

use crate::diagnostic::{Diagnostic, Position, Severity};
use crate::duration::Duration;
use crate::model::*;
use crate::suggest;
use crate::tree::{self, Doc, View, M, N};

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

fn scalar_pos(node: &marked_yaml::types::MarkedScalarNode) -> Option<Position> {
    node.span().start().map(|m| Position {
        line: m.line(),
        column: m.column(),
    })
}

/// The YAML tree of map text: by the fast reader when the text is in the
/// plain subset it handles, otherwise by the full parser (which also
/// reports YAML errors).
pub(crate) fn read_tree(src: &str, file: &str) -> Result<Doc, Vec<Diagnostic>> {
    if let Some(doc) = tree::fast(src) {
        return Ok(doc);
    }
    match marked_yaml::parse_yaml_with_options(
        0,
        src,
        LoaderOptions::default().error_on_duplicate_keys(true),
    ) {
        Ok(root) => Ok(tree::from_marked(&root)),
        Err(e) => Err(vec![load_error(&e, file)]),
    }
}

/// Parse map text. `Ok` holds the map and the index for validation; `Err`
/// holds every structural error found (and any warnings met on the way).
pub fn parse(src: &str, file: &str) -> Result<(DataMap, SourceIndex), Vec<Diagnostic>> {
    let doc = read_tree(src, file)?;
    let map = build(&doc, file)?;
    Ok((map, SourceIndex::from_doc(file, doc)))
}

/// Build the map from its YAML tree; `Err` holds every structural error.
pub(crate) fn build(doc: &Doc, file: &str) -> Result<DataMap, Vec<Diagnostic>> {
    let mut p = Parser {
        file,
        diags: Vec::new(),
        identity_kinds: IdentityKind::ALL.iter().map(|k| (k.key(), *k)).collect(),
    };
    let map = doc.root().and_then(|root| p.data_map(root));
    if p.diags.iter().any(Diagnostic::is_error) {
        return Err(p.diags);
    }
    map.ok_or(p.diags)
}

fn load_error(e: &LoadError, file: &str) -> Diagnostic {
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

struct Parser<'f> {
    file: &'f str,
    diags: Vec<Diagnostic>,
    identity_kinds: Vec<(&'static str, IdentityKind)>,
}

/// Maps with at least this many YAML nodes read their top-level lists on
/// two threads.
const PARALLEL_NODES: usize = 100_000;

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
enum Path<'a> {
    Root,
    /// `parent.key`, or `key` when the parent's path is empty.
    Key(&'a Path<'a>, &'a str),
    /// `parent[i]`.
    Index(&'a Path<'a>, usize),
}

const ROOT: Path<'static> = Path::Root;

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

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

fn as_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Identifiers: letters, digits, `_` and `-`, so that they fit in paths.
pub(crate) fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl<'d> Parser<'_> {
    fn push(
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

    fn error(
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
    fn mapping(
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
    fn get(m: M<'d>, key: &str) -> Option<N<'d>> {
        m.get(key).filter(|n| !n.scalar().is_some_and(is_null))
    }

    fn missing(&mut self, m: M<'d>, path: &Path<'_>, key: &str, what: &str, hint: &str) {
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
    fn text(&mut self, node: N<'d>, path: &Path<'_>) -> Option<&'d str> {
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

    fn string(&mut self, node: N<'d>, path: &Path<'_>) -> Option<String> {
        self.text(node, path).map(str::to_owned)
    }

    fn req_str(
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

    fn opt_str(&mut self, m: M<'d>, path: &Path<'_>, key: &str) -> Result<Option<String>, ()> {
        match Self::get(m, key) {
            Some(n) => self.string(n, &Path::Key(path, key)).map(Some).ok_or(()),
            None => Ok(None),
        }
    }

    fn opt_bool(&mut self, m: M<'d>, path: &Path<'_>, key: &str) -> Result<bool, ()> {
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
    fn req_keyword<T: Copy>(
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

    fn keyword<T: Copy>(
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
    fn str_list(&mut self, node: N<'d>, path: &Path<'_>, lenient: bool) -> Option<Vec<String>> {
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

    fn opt_list(&mut self, m: M<'d>, path: &Path<'_>, key: &str) -> Result<Vec<String>, ()> {
        match Self::get(m, key) {
            Some(n) => self.str_list(n, &Path::Key(path, key), false).ok_or(()),
            None => Ok(Vec::new()),
        }
    }

    /// The items of a list of mappings keyed by `id_key`, each read by `f`
    /// with its path (`list.<id>` or `list[i]`), after a duplicate-id check
    /// of the whole list.
    fn items<T>(
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

    fn id(&mut self, m: M<'d>, path: &Path<'_>, key: &str, what: &str) -> Option<String> {
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

    // ---- the document ----

    fn data_map(&mut self, root: N<'d>) -> Option<DataMap> {
        let m = self.mapping(
            root,
            &ROOT,
            "the map",
            &[
                "version",
                "updated",
                "organisation",
                "purposes",
                "processors",
                "systems",
                "on_behalf_of",
            ],
        )?;
        let version = match Self::get(m, "version") {
            None => Some(1),
            Some(n) => match n.scalar().and_then(|s| s.parse::<u32>().ok()) {
                Some(1) => Some(1),
                _ => {
                    self.error(
                        "invalid-value",
                        n.pos(),
                        &Path::Key(&ROOT, "version"),
                        "unsupported map version".into(),
                        Some("this custos reads `version: 1`".into()),
                    );
                    None
                }
            },
        };
        let updated = self.opt_str(m, &ROOT, "updated").ok().flatten();
        if let (Some(u), Some(n)) = (&updated, m.get("updated")) {
            if !valid_date(u) {
                self.error(
                    "invalid-value",
                    n.pos(),
                    &Path::Key(&ROOT, "updated"),
                    format!("`{u}` is not a date"),
                    Some("write YYYY-MM-DD".into()),
                );
            }
        }
        let organisation = match Self::get(m, "organisation") {
            Some(n) => self.organisation(n),
            None => {
                self.missing(
                    m,
                    &ROOT,
                    "organisation",
                    "the map",
                    "add `organisation:` with `controller:` and `contact:`",
                );
                None
            }
        };
        let purposes: Option<Vec<Purpose>> = self.items(m, &ROOT, "purposes", "id", Self::purpose);
        let processors: Option<Vec<Processor>> =
            self.items(m, &ROOT, "processors", "id", Self::processor);
        let systems: Option<Vec<System>> = self.items(m, &ROOT, "systems", "id", Self::system);
        let on_behalf_of: Option<Vec<ClientController>> =
            self.items(m, &ROOT, "on_behalf_of", "name", Self::client);
        Some(DataMap {
            version: version?,
            updated,
            organisation: organisation?,
            purposes: purposes?,
            processors: processors?,
            systems: systems?,
            on_behalf_of: on_behalf_of?,
        })
    }

    fn contact(&mut self, node: N<'d>, path: &Path<'_>, what: &str) -> Option<Contact> {
        let m = self.mapping(node, path, what, &["name", "contact"])?;
        let name = self.req_str(m, path, "name", what, "add `name:`");
        let contact = self.req_str(
            m,
            path,
            "contact",
            what,
            "add `contact:` with an email address or URL",
        );
        Some(Contact {
            name: name?,
            contact: contact?,
        })
    }

    fn organisation(&mut self, node: N<'d>) -> Option<Organisation> {
        let path = &Path::Key(&ROOT, "organisation");
        let m = self.mapping(
            node,
            path,
            "organisation",
            &[
                "controller",
                "address",
                "contact",
                "dpo",
                "eu_representative",
            ],
        )?;
        let controller = self.req_str(
            m,
            path,
            "controller",
            "organisation",
            "add `controller:` with the legal name of the controller",
        );
        let address = self.opt_str(m, path, "address");
        let contact = self.req_str(
            m,
            path,
            "contact",
            "organisation",
            "add `contact:` with the privacy contact (email or URL)",
        );
        let dpo = match Self::get(m, "dpo") {
            Some(n) => self
                .contact(n, &Path::Key(path, "dpo"), "the DPO")
                .map(Some),
            None => Some(None),
        };
        let rep = match Self::get(m, "eu_representative") {
            Some(n) => self
                .contact(
                    n,
                    &Path::Key(path, "eu_representative"),
                    "the EU representative",
                )
                .map(Some),
            None => Some(None),
        };
        Some(Organisation {
            controller: controller?,
            address: address.ok()?,
            contact: contact?,
            dpo: dpo?,
            eu_representative: rep?,
        })
    }

    fn client(&mut self, node: N<'d>, path: &Path<'_>) -> Option<ClientController> {
        let m = self.mapping(
            node,
            path,
            "a controller served",
            &["name", "contact", "purposes"],
        )?;
        let name = self.req_str(m, path, "name", "a controller served", "add `name:`");
        let contact = self.req_str(m, path, "contact", "a controller served", "add `contact:`");
        let purposes = self.opt_list(m, path, "purposes");
        Some(ClientController {
            name: name?,
            contact: contact?,
            purposes: purposes.ok()?.into_iter().map(PurposeId).collect(),
        })
    }

    fn purpose(&mut self, node: N<'d>, path: &Path<'_>) -> Option<Purpose> {
        let what = "a purpose";
        let m = self.mapping(
            node,
            path,
            what,
            &[
                "id",
                "title",
                "description",
                "legal_basis",
                "balancing_test",
                "basis_reference",
                "special_category",
                "subjects",
                "data_use",
                "mandatory",
                "consent",
                "sale_or_sharing",
            ],
        )?;
        let id = self.id(m, path, "id", what);
        let title = self.req_str(
            m,
            path,
            "title",
            what,
            "add `title:` with a short name people understand",
        );
        let description = self.opt_str(m, path, "description");
        let bases: Vec<(&str, LegalBasis)> =
            LegalBasis::ALL.iter().map(|b| (b.key(), *b)).collect();
        let legal_basis = self.req_keyword(
            m,
            path,
            "legal_basis",
            "legal basis",
            "the purpose",
            &bases,
            "add `legal_basis:` with one of consent, contract, legal_obligation, vital_interest, public_task, legitimate_interest (Art. 6(1))",
        );
        let balancing_test = self.opt_str(m, path, "balancing_test");
        let basis_reference = self.opt_str(m, path, "basis_reference");
        let specials: Vec<(&str, SpecialCategoryBasis)> = SpecialCategoryBasis::ALL
            .iter()
            .map(|b| (b.key(), *b))
            .collect();
        let special_category = match Self::get(m, "special_category") {
            Some(n) => self
                .keyword(
                    n,
                    &Path::Key(path, "special_category"),
                    "Art. 9(2) exception",
                    &specials,
                )
                .map(Some),
            None => Some(None),
        };
        let subjects = self.opt_list(m, path, "subjects");
        let data_use = self.opt_str(m, path, "data_use");
        let mandatory = self.opt_bool(m, path, "mandatory");
        let sale_or_sharing = self.opt_bool(m, path, "sale_or_sharing");
        let consent = match Self::get(m, "consent") {
            Some(n) => {
                let cp = Path::Key(path, "consent");
                match self.mapping(n, &cp, "consent", &["collected_via", "withdraw_via"]) {
                    Some(cm) => {
                        let collected_via = self.req_str(cm, &cp, "collected_via", "consent", "say where consent is asked, e.g. `collected_via: signup form checkbox`");
                        let withdraw_via = self.opt_str(cm, &cp, "withdraw_via");
                        match (collected_via, withdraw_via) {
                            (Some(c), Ok(w)) => Some(Some(ConsentSpec {
                                collected_via: c,
                                withdraw_via: w,
                            })),
                            _ => None,
                        }
                    }
                    None => None,
                }
            }
            None => Some(None),
        };
        Some(Purpose {
            id: PurposeId(id?),
            title: title?,
            description: description.ok()?,
            legal_basis: legal_basis?,
            balancing_test: balancing_test.ok()?,
            basis_reference: basis_reference.ok()?,
            special_category: special_category?,
            subjects: subjects.ok()?,
            data_use: data_use.ok()?,
            mandatory: mandatory.ok()?,
            consent: consent?,
            sale_or_sharing: sale_or_sharing.ok()?,
        })
    }

    fn processor(&mut self, node: N<'d>, path: &Path<'_>) -> Option<Processor> {
        let what = "a processor";
        let m = self.mapping(
            node,
            path,
            what,
            &[
                "id",
                "name",
                "role",
                "country",
                "transfer",
                "dpa",
                "notify",
                "purposes",
                "categories",
            ],
        )?;
        let id = self.id(m, path, "id", what);
        let name = self.req_str(m, path, "name", what, "add `name:` with the company's name");
        let roles = [
            ("processor", ProcessorRole::Processor),
            ("joint_controller", ProcessorRole::JointController),
            ("recipient", ProcessorRole::Recipient),
        ];
        let role = self.req_keyword(
            m,
            path,
            "role",
            "role",
            "the processor",
            &roles,
            "add `role:` with processor, joint_controller or recipient",
        );
        let country = self.req_str(
            m,
            path,
            "country",
            what,
            "add `country:` with the ISO 3166 code where the data goes, e.g. `DE` or `US`",
        );
        if let (Some(c), Some(n)) = (&country, m.get("country")) {
            if c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
                self.error(
                    "invalid-value",
                    n.pos(),
                    &Path::Key(path, "country"),
                    format!("country `{c}` is not an ISO 3166-1 alpha-2 code"),
                    Some("write two capital letters, e.g. `DE`, `IE`, `US`".into()),
                );
            }
        }
        let mechanisms = [
            ("adequacy", TransferMechanism::Adequacy),
            ("scc", TransferMechanism::Scc),
            ("bcr", TransferMechanism::Bcr),
        ];
        let transfer = match Self::get(m, "transfer") {
            Some(n) => self
                .keyword(
                    n,
                    &Path::Key(path, "transfer"),
                    "transfer mechanism",
                    &mechanisms,
                )
                .map(Some),
            None => Some(None),
        };
        let dpa = match Self::get(m, "dpa") {
            Some(n) => self.dpa(n, &Path::Key(path, "dpa")).map(Some),
            None => Some(None),
        };
        let notify = match Self::get(m, "notify") {
            Some(n) => self.notify(n, &Path::Key(path, "notify")),
            None => {
                self.missing(
                    m,
                    path,
                    "notify",
                    "the processor",
                    "add `notify:` with `{ url: ... }`, `{ email: ... }` or `manual`",
                );
                None
            }
        };
        let purposes = self.opt_list(m, path, "purposes");
        let categories = self.opt_list(m, path, "categories");
        Some(Processor {
            id: ProcessorId(id?),
            name: name?,
            role: role?,
            country: country?,
            transfer: transfer?,
            dpa: dpa?,
            notify: notify?,
            purposes: purposes.ok()?.into_iter().map(PurposeId).collect(),
            categories: categories.ok()?.into_iter().map(DataCategory).collect(),
        })
    }

    fn dpa(&mut self, node: N<'d>, path: &Path<'_>) -> Option<Dpa> {
        let m = self.mapping(node, path, "dpa", &["status", "date"])?;
        let statuses = [
            ("signed", DpaStatus::Signed),
            ("pending", DpaStatus::Pending),
            ("missing", DpaStatus::Missing),
            ("not_required", DpaStatus::NotRequired),
        ];
        let status = self.req_keyword(
            m,
            path,
            "status",
            "DPA status",
            "dpa",
            &statuses,
            "add `status:` with signed, pending, missing or not_required",
        );
        let date = self.opt_str(m, path, "date").ok()?;
        if let (Some(d), Some(n)) = (&date, m.get("date")) {
            if !valid_date(d) {
                self.error(
                    "invalid-value",
                    n.pos(),
                    &Path::Key(path, "date"),
                    format!("`{d}` is not a date"),
                    Some("write YYYY-MM-DD".into()),
                );
                return None;
            }
        }
        Some(Dpa {
            status: status?,
            date,
        })
    }

    fn notify(&mut self, node: N<'d>, path: &Path<'_>) -> Option<Notify> {
        let hint = "write `notify: { url: https://... }`, `notify: { email: privacy@... }` or `notify: manual`";
        match node.view() {
            View::Scalar("manual") => Some(Notify::Manual),
            View::Mapping => {
                let m = self.mapping(node, path, "notify", &["url", "email"])?;
                let url = self.opt_str(m, path, "url").ok()?;
                let email = self.opt_str(m, path, "email").ok()?;
                match (url, email) {
                    (Some(u), None) => {
                        if !(u.starts_with("https://") || u.starts_with("http://")) {
                            self.error("invalid-value", m.get("url").and_then(|n| n.pos()), &Path::Key(path, "url"), format!("`{u}` is not an http(s) URL"), Some("write the full URL, e.g. https://vendor.example/custos/notices".into()));
                            return None;
                        }
                        Some(Notify::Url(u))
                    }
                    (None, Some(e)) => {
                        if !e.contains('@') {
                            self.error(
                                "invalid-value",
                                m.get("email").and_then(|n| n.pos()),
                                &Path::Key(path, "email"),
                                format!("`{e}` is not an email address"),
                                None,
                            );
                            return None;
                        }
                        Some(Notify::Email(e))
                    }
                    _ => {
                        self.error(
                            "invalid-value",
                            node.pos(),
                            path,
                            "notify needs exactly one of `url` or `email`".into(),
                            Some(hint.into()),
                        );
                        None
                    }
                }
            }
            _ => {
                self.error(
                    "invalid-value",
                    node.pos(),
                    path,
                    "unknown notification method".into(),
                    Some(hint.into()),
                );
                None
            }
        }
    }

    fn system(&mut self, node: N<'d>, path: &Path<'_>) -> Option<System> {
        let what = "a system";
        let m = self.mapping(
            node,
            path,
            what,
            &[
                "id",
                "kind",
                "description",
                "connection",
                "processor",
                "security",
                "datasets",
            ],
        )?;
        let id = self.id(m, path, "id", what);
        let kinds: Vec<(&str, SystemKind)> =
            SystemKind::ALL.iter().map(|k| (k.key(), *k)).collect();
        let kind = self.req_keyword(
            m,
            path,
            "kind",
            "system kind",
            "the system",
            &kinds,
            "add `kind:` with vault, postgres, mysql, sqlite, files, redis, http or manual",
        );
        let description = self.opt_str(m, path, "description");
        let connection = match Self::get(m, "connection") {
            Some(n) => self.connection(n, &Path::Key(path, "connection")),
            None => Some(BTreeMap::new()),
        };
        let processor = self.opt_str(m, path, "processor");
        let security = self.opt_list(m, path, "security");
        let datasets: Option<Vec<Dataset>> = self.items(m, path, "datasets", "id", Self::dataset);
        Some(System {
            id: SystemId(id?),
            kind: kind?,
            description: description.ok()?,
            connection: connection?,
            processor: processor.ok()?.map(ProcessorId),
            security: security.ok()?,
            datasets: datasets?,
        })
    }

    fn connection(&mut self, node: N<'d>, path: &Path<'_>) -> Option<BTreeMap<String, String>> {
        let Some(m) = node.mapping() else {
            self.error(
                "wrong-type",
                node.pos(),
                path,
                format!("connection must be a mapping, found {}", node.kind_name()),
                Some("write `connection: { url_env: DATABASE_URL }`".into()),
            );
            return None;
        };
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (k, v) in m.iter() {
            let k = k.scalar().unwrap_or_default();
            let p = Path::Key(path, k);
            let Some(val) = self.string(v, &p) else {
                ok = false;
                continue;
            };
            if !is_env_name(&val) {
                self.error(
                    "secret-in-map",
                    v.pos(),
                    &p,
                    format!("connection setting `{k}` must name an environment variable, not hold a value"),
                    Some("put the value in an environment variable and write its name here, e.g. `url_env: APP_DATABASE_URL`".into()),
                );
                ok = false;
                continue;
            }
            out.insert(k.to_owned(), val);
        }
        ok.then_some(out)
    }

    fn location(&mut self, m: M<'d>, path: &Path<'_>) -> Option<Location> {
        const KEYS: [&str; 6] = ["table", "collection", "path", "key", "endpoint", "place"];
        let present: Vec<&str> = KEYS
            .iter()
            .copied()
            .filter(|k| Self::get(m, k).is_some())
            .collect();
        match present.as_slice() {
            [k] => {
                let v = self.opt_str(m, path, k).ok()??;
                Some(match *k {
                    "table" => Location::Table(v),
                    "collection" => Location::Collection(v),
                    "path" => Location::Path(v),
                    "key" => Location::Key(v),
                    "endpoint" => Location::Endpoint(v),
                    _ => Location::Place(v),
                })
            }
            [] => {
                self.error(
                    "missing-key",
                    m.pos(),
                    path,
                    "the dataset does not say where it is".into(),
                    Some("add one of `table:`, `collection:`, `path:`, `key:`, `endpoint:` or `place:`".into()),
                );
                None
            }
            many => {
                self.error(
                    "invalid-value",
                    m.get(many.get(1).copied().unwrap_or("table"))
                        .and_then(|n| n.pos()),
                    path,
                    format!("the dataset has several locations ({})", many.join(", ")),
                    Some("keep one; declare another dataset for the other location".into()),
                );
                None
            }
        }
    }

    fn dataset(&mut self, node: N<'d>, path: &Path<'_>) -> Option<Dataset> {
        let what = "a dataset";
        let m = self.mapping(
            node,
            path,
            what,
            &[
                "id",
                "table",
                "collection",
                "path",
                "key",
                "endpoint",
                "place",
                "description",
                "subject",
                "purposes",
                "erasure",
                "retention",
                "derived_from",
                "fields",
            ],
        )?;
        let id = self.id(m, path, "id", what);
        let location = self.location(m, path);
        let description = self.opt_str(m, path, "description");
        let subject = match Self::get(m, "subject") {
            Some(n) => self.subject(n, &Path::Key(path, "subject")).map(Some),
            None => Some(None),
        };
        let purposes = self.opt_list(m, path, "purposes");
        let erasure = match Self::get(m, "erasure") {
            Some(n) => self.erasure(n, &Path::Key(path, "erasure")).map(Some),
            None => Some(None),
        };
        let retention = match Self::get(m, "retention") {
            Some(n) => self.retention(n, &Path::Key(path, "retention")).map(Some),
            None => Some(None),
        };
        let derived_from = match Self::get(m, "derived_from") {
            Some(n) => {
                let p = Path::Key(path, "derived_from");
                let s = self.string(n, &p)?;
                match s.parse::<DatasetRef>() {
                    Ok(r) => Some(Some(r)),
                    Err(_) => {
                        self.error(
                            "invalid-value",
                            n.pos(),
                            &p,
                            format!("`{s}` is not a dataset reference"),
                            Some("write `dataset` or `system.dataset`".into()),
                        );
                        None
                    }
                }
            }
            None => Some(None),
        };
        let fields: Option<Vec<Field>> = self.items(m, path, "fields", "name", Self::field);
        Some(Dataset {
            id: DatasetId(id?),
            location: location?,
            description: description.ok()?,
            subject: subject?,
            purposes: purposes.ok()?.into_iter().map(PurposeId).collect(),
            erasure: erasure?,
            retention: retention?,
            derived_from: derived_from?,
            fields: fields?,
        })
    }

    fn subject(&mut self, node: N<'d>, path: &Path<'_>) -> Option<SubjectLink> {
        let m = self.mapping(node, path, "subject", &["identity", "via", "referenced_by"])?;
        let identity = self.opt_str(m, path, "identity").ok()?;
        let via = self.opt_str(m, path, "via").ok()?;
        let referenced_by = self.opt_str(m, path, "referenced_by").ok()?;
        match (identity, via, referenced_by) {
            (Some(f), None, None) => Some(SubjectLink::Identity(f)),
            (None, Some(f), None) => Some(SubjectLink::Via(f)),
            (None, None, Some(r)) => match r.parse::<FieldRef>() {
                Ok(r) => Some(SubjectLink::ReferencedBy(r)),
                Err(_) => {
                    self.error(
                        "invalid-value",
                        m.get("referenced_by").and_then(|n| n.pos()),
                        &Path::Key(path, "referenced_by"),
                        format!("`{r}` is not a field reference"),
                        Some("write `dataset.field` or `system.dataset.field`".into()),
                    );
                    None
                }
            },
            _ => {
                self.error(
                    "invalid-value",
                    node.pos(),
                    path,
                    "subject needs exactly one of `identity`, `via` or `referenced_by`".into(),
                    Some("`identity: <field>` when a field identifies the person; `via: <field>` when a field references a row that does; `referenced_by: <dataset.field>` when another dataset points here".into()),
                );
                None
            }
        }
    }

    fn erasure(&mut self, node: N<'d>, path: &Path<'_>) -> Option<ErasureStrategy> {
        let hint = "write `delete`, `shred`, `{ anonymize: set_null }`, `{ anonymize: keyed_hash }`, `{ anonymize: { placeholder: \"Removed user\" } }` or `{ retain: { ground: ..., period: 10y, from_column: ... } }`";
        match node.view() {
            View::Scalar(s) => match s {
                "delete" => Some(ErasureStrategy::Delete),
                "shred" => Some(ErasureStrategy::Shred),
                other => {
                    let sugg = suggest::closest(other, ["delete", "shred", "anonymize", "retain"]);
                    let h = match sugg {
                        Some("anonymize") | Some("retain") => {
                            format!("`{}` needs details: {hint}", sugg.unwrap_or_default())
                        }
                        Some(c) => format!("did you mean `{c}`? {hint}"),
                        None => hint.to_owned(),
                    };
                    self.error(
                        "invalid-value",
                        node.pos(),
                        path,
                        format!("unknown erasure strategy `{other}`"),
                        Some(h),
                    );
                    None
                }
            },
            View::Mapping => {
                let m = self.mapping(node, path, "erasure", &["anonymize", "retain"])?;
                match (m.get("anonymize"), m.get("retain")) {
                    (Some(a), None) => {
                        let ap = Path::Key(path, "anonymize");
                        match a.view() {
                            View::Scalar(s) if is_null(s) || s == "set_null" => {
                                Some(ErasureStrategy::Anonymize(Anonymize::SetNull))
                            }
                            View::Scalar("keyed_hash") => {
                                Some(ErasureStrategy::Anonymize(Anonymize::KeyedHash))
                            }
                            View::Mapping => {
                                let am = self.mapping(a, &ap, "anonymize", &["placeholder"])?;
                                let v = self.req_str(
                                    am,
                                    &ap,
                                    "placeholder",
                                    "anonymize",
                                    "add `placeholder: \"Removed user\"`",
                                )?;
                                Some(ErasureStrategy::Anonymize(Anonymize::Placeholder(v)))
                            }
                            _ => {
                                self.error("invalid-value", a.pos(), &ap, "unknown anonymisation method".into(), Some("write `set_null`, `keyed_hash` or `{ placeholder: \"Removed user\" }`".into()));
                                None
                            }
                        }
                    }
                    (None, Some(r)) => {
                        let rp = Path::Key(path, "retain");
                        let rm = self.mapping(
                            r,
                            &rp,
                            "retain",
                            &["ground", "period", "from_column", "from_event"],
                        )?;
                        let ground = self.req_str(rm, &rp, "ground", "retain", "add `ground:` with the law or claim that requires keeping the data, e.g. \"§147 AO fiscal records\"");
                        let retention = self.retention_fields(rm, &rp);
                        Some(ErasureStrategy::Retain(RetainSpec {
                            ground: ground?,
                            retention: retention?,
                        }))
                    }
                    _ => {
                        self.error(
                            "invalid-value",
                            node.pos(),
                            path,
                            "erasure needs exactly one of `anonymize` or `retain`".into(),
                            Some(hint.into()),
                        );
                        None
                    }
                }
            }
            View::Sequence => {
                self.error(
                    "wrong-type",
                    node.pos(),
                    path,
                    "erasure must be a word or a mapping, found a list".into(),
                    Some(hint.into()),
                );
                None
            }
        }
    }

    fn retention(&mut self, node: N<'d>, path: &Path<'_>) -> Option<Retention> {
        let m = self.mapping(
            node,
            path,
            "retention",
            &["period", "from_column", "from_event"],
        )?;
        self.retention_fields(m, path)
    }

    fn retention_fields(&mut self, m: M<'d>, path: &Path<'_>) -> Option<Retention> {
        let period = match Self::get(m, "period") {
            Some(n) => {
                let p = Path::Key(path, "period");
                let s = self.string(n, &p)?;
                match s.parse::<Duration>() {
                    Ok(d) => Some(d),
                    Err(e) => {
                        self.error(
                            "invalid-duration",
                            n.pos(),
                            &p,
                            e.to_string(),
                            Some("e.g. `period: 30d`, `12w`, `6m` or `3y`".into()),
                        );
                        None
                    }
                }
            }
            None => {
                self.missing(
                    m,
                    path,
                    "period",
                    "the retention",
                    "add `period:` such as `30d`, `12w`, `6m` or `3y`",
                );
                None
            }
        };
        let col = self.opt_str(m, path, "from_column").ok()?;
        let ev = self.opt_str(m, path, "from_event").ok()?;
        let from = match (col, ev) {
            (Some(c), None) => Some(RetentionStart::FromColumn(c)),
            (None, Some(e)) => Some(RetentionStart::FromEvent(e)),
            _ => {
                self.error(
                    "invalid-value",
                    m.pos(),
                    path,
                    "retention needs exactly one of `from_column` or `from_event`".into(),
                    Some("count from a timestamp column (`from_column: created_at`) or a named event (`from_event: account_closed`)".into()),
                );
                None
            }
        };
        Some(Retention {
            period: period?,
            from: from?,
        })
    }

    fn field(&mut self, node: N<'d>, path: &Path<'_>) -> Option<Field> {
        let what = "a field";
        let m = self.mapping(
            node,
            path,
            what,
            &[
                "name",
                "category",
                "purposes",
                "identity",
                "references",
                "primary_key",
                "erasure",
                "retention",
            ],
        )?;
        let name = self.req_str(m, path, "name", what, "add `name:` with the column name");
        if let Some(n) = name.as_ref().filter(|n| n.contains('.') || n.contains('[')) {
            if let Some(node) = m.get("name") {
                self.error(
                    "invalid-id",
                    node.pos(),
                    &Path::Key(path, "name"),
                    format!("field name `{n}` may not contain `.` or `[`"),
                    None,
                );
            }
        }
        let category = match Self::get(m, "category") {
            Some(n) => self.str_list(n, &Path::Key(path, "category"), true),
            None => {
                self.missing(m, path, "category", "the field", "add `category:` with a fideslang data category, e.g. `user.contact.email` or `system.operations`");
                None
            }
        };
        if let Some(c) = &category {
            if c.is_empty() {
                self.error(
                    "missing-key",
                    m.get("category").and_then(|n| n.pos()),
                    &Path::Key(path, "category"),
                    "the field has an empty category list".into(),
                    Some("name at least one data category".into()),
                );
            }
        }
        let purposes = self.opt_list(m, path, "purposes");
        let kinds = std::mem::take(&mut self.identity_kinds);
        let identity = match Self::get(m, "identity") {
            Some(n) => self
                .keyword(n, &Path::Key(path, "identity"), "identity kind", &kinds)
                .map(Some),
            None => Some(None),
        };
        self.identity_kinds = kinds;
        let references = match Self::get(m, "references") {
            Some(n) => {
                let p = Path::Key(path, "references");
                let s = self.string(n, &p)?;
                match s.parse::<FieldRef>() {
                    Ok(r) => Some(Some(r)),
                    Err(_) => {
                        self.error(
                            "invalid-value",
                            n.pos(),
                            &p,
                            format!("`{s}` is not a field reference"),
                            Some(
                                "write `dataset.field` or `system.dataset.field`, e.g. `users.id`"
                                    .into(),
                            ),
                        );
                        None
                    }
                }
            }
            None => Some(None),
        };
        let primary_key = self.opt_bool(m, path, "primary_key");
        let erasure = match Self::get(m, "erasure") {
            Some(n) => self.erasure(n, &Path::Key(path, "erasure")).map(Some),
            None => Some(None),
        };
        let retention = match Self::get(m, "retention") {
            Some(n) => self.retention(n, &Path::Key(path, "retention")).map(Some),
            None => Some(None),
        };
        Some(Field {
            name: name?,
            category: category?.into_iter().map(DataCategory).collect(),
            purposes: purposes.ok()?.into_iter().map(PurposeId).collect(),
            identity: identity?,
            references: references?,
            primary_key: primary_key.ok()?,
            erasure: erasure?,
            retention: retention?,
        })
    }
}

/// `YYYY-MM-DD` with plausible month and day.
pub(crate) fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return false;
    }
    let num = |r: std::ops::Range<usize>| {
        s.get(r)
            .filter(|x| x.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|x| x.parse::<u32>().ok())
    };
    matches!((num(0..4), num(5..7), num(8..10)), (Some(_), Some(m), Some(d)) if (1..=12).contains(&m) && (1..=31).contains(&d))
}

/// Environment variable names: `A-Z`, digits and `_`, not starting with a digit.
pub(crate) fn is_env_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        "id".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert!(valid_date("2024-03-01"));
        assert!(!valid_date("2024-13-01"));
        assert!(!valid_date("24-03-01"));
    }

    /// A map big enough to be read on two threads reports the same
    /// diagnostics, in the same order, as when read on one.
    #[test]
    fn big_map_read_in_two_halves() {
        use std::fmt::Write as _;
        let mut src = String::from(
            "organisation:\n  controller: X\n  contact: x@x.example\npurposes:\n  - id: s\n    title: S\n    legal_basis: contract\n    subjects: [customer]\nsystems:\n",
        );
        for s in 0..300 {
            let kind = if s == 10 { "postgress" } else { "postgres" };
            let _ = writeln!(src, "  - id: sys{s}\n    kind: {kind}\n    datasets:");
            for d in 0..8 {
                let _ = writeln!(src, "      - id: t{d}\n        table: t{d}\n        purposes: [s]\n        retention: {{ period: 3y, from_column: f0 }}\n        fields:");
                for f in 0..12 {
                    let extra = if (s, d, f) == (250, 3, 4) {
                        ", colour: red"
                    } else {
                        ""
                    };
                    let _ = writeln!(
                        src,
                        "          - {{ name: f{f}, category: user.name, identity: email{extra} }}"
                    );
                }
            }
        }
        let doc = tree::fast(&src).unwrap();
        assert!(doc.root().unwrap().doc_nodes() >= PARALLEL_NODES);
        let diags = build(&doc, "big.yaml").unwrap_err();
        let got: Vec<String> = diags
            .iter()
            .map(|d| format!("{}:{}", d.code, d.path))
            .collect();
        assert_eq!(
            got,
            [
                "invalid-value:systems.sys10.kind",
                "unknown-key:systems.sys250.datasets.t3.fields.f4.colour",
            ]
        );
        assert!(diags[0].position < diags[1].position);
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("DATABASE_URL"));
        assert!(!is_env_name("postgres://u:p@h/db"));
        assert!(!is_env_name("1X"));
    }
}
