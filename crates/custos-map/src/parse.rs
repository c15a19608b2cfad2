//! From YAML text to a [`DataMap`], with a position for every problem.
//!
//! The YAML is first read into a tree whose every node carries its line and
//! column (`marked-yaml`), then converted by hand rather than through serde:
//! serde stops at the first error, and we want every structural error of the
//! file at once, each with the path of its node and a way to fix it.
//! Semantic rules live in [`crate::validate`]; they need the [`SourceIndex`]
//! returned here to point back into the file.

use std::collections::BTreeMap;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{LoadError, LoaderOptions, Node};

use crate::diagnostic::{Diagnostic, Position, Severity};
use crate::duration::Duration;
use crate::model::*;
use crate::suggest;

/// The parsed YAML tree, kept to find the position of a node by its path.
#[derive(Debug, Clone)]
pub struct SourceIndex {
    file: String,
    root: Option<Node>,
}

impl SourceIndex {
    /// An index that knows no positions (for maps built in code or from JSON).
    pub fn none(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            root: None,
        }
    }

    /// The file name diagnostics carry.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Position of the node at `path` (as written in diagnostics), or of its
    /// nearest existing ancestor.
    pub fn position(&self, path: &str) -> Option<Position> {
        let mut node = self.root.as_ref()?;
        let mut best = pos(node);
        for seg in path.split('.').filter(|s| !s.is_empty()) {
            let (name, index) = split_index(seg);
            let next = match node {
                Node::Mapping(m) => m.get_node(name),
                Node::Sequence(s) => s.iter().find(|item| {
                    item.as_mapping().is_some_and(|m| {
                        ["id", "name"]
                            .iter()
                            .any(|k| m.get_scalar(k).is_some_and(|v| v.as_str() == name))
                    })
                }),
                Node::Scalar(_) => None,
            };
            let Some(mut next) = next else { break };
            if let Some(i) = index {
                match next.as_sequence().and_then(|s| s.get(i)) {
                    Some(n) => next = n,
                    None => {
                        best = pos(next).or(best);
                        break;
                    }
                }
            }
            node = next;
            best = pos(node).or(best);
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

/// Where a node starts; for a mapping, where its first key starts (the span
/// of a block mapping begins at its first `:`).
fn pos(node: &Node) -> Option<Position> {
    if let Node::Mapping(m) = node {
        return mapping_pos(m);
    }
    node.span().start().map(|m| Position {
        line: m.line(),
        column: m.column(),
    })
}

fn mapping_pos(m: &MarkedMappingNode) -> Option<Position> {
    m.keys().next().and_then(scalar_pos).or_else(|| {
        m.span().start().map(|mk| Position {
            line: mk.line(),
            column: mk.column(),
        })
    })
}

fn scalar_pos(node: &MarkedScalarNode) -> Option<Position> {
    node.span().start().map(|m| Position {
        line: m.line(),
        column: m.column(),
    })
}

/// Parse map text. `Ok` holds the map and the index for validation; `Err`
/// holds every structural error found (and any warnings met on the way).
pub fn parse(src: &str, file: &str) -> Result<(DataMap, SourceIndex), Vec<Diagnostic>> {
    let root = match marked_yaml::parse_yaml_with_options(
        0,
        src,
        LoaderOptions::default().error_on_duplicate_keys(true),
    ) {
        Ok(root) => root,
        Err(e) => return Err(vec![load_error(&e, file)]),
    };
    let mut p = Parser {
        file,
        diags: Vec::new(),
    };
    let map = p.data_map(&root);
    if p.diags.iter().any(Diagnostic::is_error) {
        return Err(p.diags);
    }
    match map {
        Some(map) => Ok((
            map,
            SourceIndex {
                file: file.to_owned(),
                root: Some(root),
            },
        )),
        None => Err(p.diags),
    }
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
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn is_null(s: &MarkedScalarNode) -> bool {
    s.may_coerce() && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL")
}

fn kind_name(node: &Node) -> &'static str {
    match node {
        Node::Scalar(_) => "a scalar",
        Node::Mapping(_) => "a mapping",
        Node::Sequence(_) => "a list",
    }
}

/// Identifiers: letters, digits, `_` and `-`, so that they fit in paths.
pub(crate) fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Parser<'_> {
    fn push(
        &mut self,
        severity: Severity,
        code: &str,
        position: Option<Position>,
        path: &str,
        message: String,
        hint: Option<String>,
    ) {
        self.diags.push(Diagnostic {
            severity,
            code: code.to_owned(),
            file: self.file.to_owned(),
            position,
            path: path.to_owned(),
            message,
            hint,
        });
    }

    fn error(
        &mut self,
        code: &str,
        at: Option<Position>,
        path: &str,
        msg: String,
        hint: Option<String>,
    ) {
        self.push(Severity::Error, code, at, path, msg, hint);
    }

    /// `node` as a mapping with only `known` keys; reports unknown keys.
    fn mapping<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        what: &str,
        known: &[&str],
    ) -> Option<&'n MarkedMappingNode> {
        let Some(m) = node.as_mapping() else {
            self.error(
                "wrong-type",
                pos(node),
                path,
                format!("{what} must be a mapping, found {}", kind_name(node)),
                Some(format!(
                    "write it as `key: value` lines; expected keys: {}",
                    known.join(", ")
                )),
            );
            return None;
        };
        for key in m.keys() {
            if !known.contains(&key.as_str()) {
                let hint = match suggest::closest(key.as_str(), known.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? allowed keys: {}", known.join(", ")),
                    None => format!("allowed keys: {}", known.join(", ")),
                };
                self.error(
                    "unknown-key",
                    scalar_pos(key),
                    &join(path, key.as_str()),
                    format!("unknown key `{}` in {what}", key.as_str()),
                    Some(hint),
                );
            }
        }
        Some(m)
    }

    /// A present, non-null value.
    fn get<'n>(m: &'n MarkedMappingNode, key: &str) -> Option<&'n Node> {
        m.get_node(key)
            .filter(|n| !n.as_scalar().is_some_and(is_null))
    }

    fn missing(&mut self, m: &MarkedMappingNode, path: &str, key: &str, what: &str, hint: &str) {
        let code = if key == "legal_basis" {
            "missing-legal-basis"
        } else {
            "missing-key"
        };
        self.error(
            code,
            mapping_pos(m),
            path,
            format!("{what} has no `{key}`"),
            Some(hint.to_owned()),
        );
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match node {
            Node::Scalar(s) => Some(s.as_str().to_owned()),
            other => {
                self.error(
                    "wrong-type",
                    pos(other),
                    path,
                    format!("expected a text value, found {}", kind_name(other)),
                    None,
                );
                None
            }
        }
    }

    fn req_str(
        &mut self,
        m: &MarkedMappingNode,
        path: &str,
        key: &str,
        what: &str,
        hint: &str,
    ) -> Option<String> {
        match Self::get(m, key) {
            Some(n) => {
                let s = self.string(n, &join(path, key))?;
                if s.trim().is_empty() {
                    self.error(
                        "missing-key",
                        pos(n),
                        &join(path, key),
                        format!("`{key}` of {what} is empty"),
                        Some(hint.to_owned()),
                    );
                    return None;
                }
                Some(s)
            }
            None => {
                self.missing(m, path, key, what, hint);
                None
            }
        }
    }

    fn opt_str(
        &mut self,
        m: &MarkedMappingNode,
        path: &str,
        key: &str,
    ) -> Result<Option<String>, ()> {
        match Self::get(m, key) {
            Some(n) => self.string(n, &join(path, key)).map(Some).ok_or(()),
            None => Ok(None),
        }
    }

    fn opt_bool(&mut self, m: &MarkedMappingNode, path: &str, key: &str) -> Result<bool, ()> {
        match Self::get(m, key) {
            None => Ok(false),
            Some(Node::Scalar(s)) if s.as_bool().is_some() => Ok(s.as_bool().unwrap_or(false)),
            Some(n) => {
                self.error(
                    "wrong-type",
                    pos(n),
                    &join(path, key),
                    format!("`{key}` must be true or false"),
                    Some("write `true` or `false` without quotes".into()),
                );
                Err(())
            }
        }
    }

    /// A keyword out of `choices`, with "did you mean".
    fn keyword<T: Copy>(
        &mut self,
        node: &Node,
        path: &str,
        what: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let s = self.string(node, path)?;
        if let Some((_, v)) = choices.iter().find(|(k, _)| *k == s) {
            return Some(*v);
        }
        let keys: Vec<&str> = choices.iter().map(|(k, _)| *k).collect();
        let hint = match suggest::closest(&s, keys.iter().copied()) {
            Some(c) => format!("did you mean `{c}`? allowed: {}", keys.join(", ")),
            None => format!("allowed: {}", keys.join(", ")),
        };
        self.error(
            "invalid-value",
            pos(node),
            path,
            format!("unknown {what} `{s}`"),
            Some(hint),
        );
        None
    }

    /// A list of strings; a single scalar counts as a list of one when `lenient`.
    fn str_list(&mut self, node: &Node, path: &str, lenient: bool) -> Option<Vec<String>> {
        match node {
            Node::Sequence(seq) => {
                let mut out = Vec::with_capacity(seq.len());
                let mut ok = true;
                for (i, item) in seq.iter().enumerate() {
                    match self.string(item, &format!("{path}[{i}]")) {
                        Some(s) => out.push(s),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            Node::Scalar(s) if lenient => Some(vec![s.as_str().to_owned()]),
            other => {
                self.error(
                    "wrong-type",
                    pos(other),
                    path,
                    format!("expected a list, found {}", kind_name(other)),
                    Some("write `[a, b]` or one `- item` per line".into()),
                );
                None
            }
        }
    }

    fn opt_list(
        &mut self,
        m: &MarkedMappingNode,
        path: &str,
        key: &str,
    ) -> Result<Vec<String>, ()> {
        match Self::get(m, key) {
            Some(n) => self.str_list(n, &join(path, key), false).ok_or(()),
            None => Ok(Vec::new()),
        }
    }

    /// Items of a list of mappings keyed by `id_key`, with their paths and
    /// a duplicate-id check.
    fn items<'n>(
        &mut self,
        m: &'n MarkedMappingNode,
        path: &str,
        key: &str,
        id_key: &str,
    ) -> Vec<(&'n Node, String)> {
        let Some(node) = Self::get(m, key) else {
            return Vec::new();
        };
        let list_path = join(path, key);
        let Some(seq) = node.as_sequence() else {
            self.error(
                "wrong-type",
                pos(node),
                &list_path,
                format!("`{key}` must be a list, found {}", kind_name(node)),
                Some("write one `- ` item per entry".into()),
            );
            return Vec::new();
        };
        let mut seen: BTreeMap<String, Option<Position>> = BTreeMap::new();
        let mut out = Vec::with_capacity(seq.len());
        for (i, item) in seq.iter().enumerate() {
            let id = item.as_mapping().and_then(|im| im.get_scalar(id_key));
            let item_path = match id {
                Some(id)
                    if !is_null(id) && !id.as_str().contains('.') && !id.as_str().contains('[') =>
                {
                    let s = id.as_str().to_owned();
                    if let Some(first) = seen.get(&s) {
                        let line = first.map_or(0, |p| p.line);
                        self.error(
                            "duplicate-id",
                            scalar_pos(id),
                            &format!("{list_path}[{i}].{id_key}"),
                            format!("{id_key} `{s}` is already used in `{key}` (line {line})"),
                            Some(format!("give each entry of `{key}` its own {id_key}")),
                        );
                    } else {
                        seen.insert(s.clone(), scalar_pos(id));
                    }
                    join(&list_path, &s)
                }
                _ => format!("{list_path}[{i}]"),
            };
            out.push((item, item_path));
        }
        out
    }

    fn id(&mut self, m: &MarkedMappingNode, path: &str, key: &str, what: &str) -> Option<String> {
        let s = self.req_str(
            m,
            path,
            key,
            what,
            &format!("add `{key}: <name>`: letters, digits, `_` or `-`"),
        )?;
        if !valid_id(&s) {
            let at = m.get_node(key).and_then(pos);
            self.error(
                "invalid-id",
                at,
                &join(path, key),
                format!("{key} `{s}` may contain only letters, digits, `_` and `-`"),
                Some(format!("rename it, e.g. `{}`", sanitize(&s))),
            );
            return None;
        }
        Some(s)
    }

    // ---- the document ----

    fn data_map(&mut self, root: &Node) -> Option<DataMap> {
        let m = self.mapping(
            root,
            "",
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
            Some(n) => match n.as_scalar().and_then(|s| s.as_u32()) {
                Some(1) => Some(1),
                _ => {
                    self.error(
                        "invalid-value",
                        pos(n),
                        "version",
                        "unsupported map version".into(),
                        Some("this custos reads `version: 1`".into()),
                    );
                    None
                }
            },
        };
        let updated = self.opt_str(m, "", "updated").ok().flatten();
        if let (Some(u), Some(n)) = (&updated, m.get_node("updated")) {
            if !valid_date(u) {
                self.error(
                    "invalid-value",
                    pos(n),
                    "updated",
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
                    "",
                    "organisation",
                    "the map",
                    "add `organisation:` with `controller:` and `contact:`",
                );
                None
            }
        };
        let purposes: Vec<Option<Purpose>> = self
            .items(m, "", "purposes", "id")
            .into_iter()
            .map(|(n, p)| self.purpose(n, &p))
            .collect();
        let processors: Vec<Option<Processor>> = self
            .items(m, "", "processors", "id")
            .into_iter()
            .map(|(n, p)| self.processor(n, &p))
            .collect();
        let systems: Vec<Option<System>> = self
            .items(m, "", "systems", "id")
            .into_iter()
            .map(|(n, p)| self.system(n, &p))
            .collect();
        let on_behalf_of: Vec<Option<ClientController>> = self
            .items(m, "", "on_behalf_of", "name")
            .into_iter()
            .map(|(n, p)| self.client(n, &p))
            .collect();
        Some(DataMap {
            version: version?,
            updated,
            organisation: organisation?,
            purposes: purposes.into_iter().collect::<Option<_>>()?,
            processors: processors.into_iter().collect::<Option<_>>()?,
            systems: systems.into_iter().collect::<Option<_>>()?,
            on_behalf_of: on_behalf_of.into_iter().collect::<Option<_>>()?,
        })
    }

    fn contact(&mut self, node: &Node, path: &str, what: &str) -> Option<Contact> {
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

    fn organisation(&mut self, node: &Node) -> Option<Organisation> {
        let path = "organisation";
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
            Some(n) => self.contact(n, "organisation.dpo", "the DPO").map(Some),
            None => Some(None),
        };
        let rep = match Self::get(m, "eu_representative") {
            Some(n) => self
                .contact(n, "organisation.eu_representative", "the EU representative")
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

    fn client(&mut self, node: &Node, path: &str) -> Option<ClientController> {
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

    fn purpose(&mut self, node: &Node, path: &str) -> Option<Purpose> {
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
        let legal_basis = match Self::get(m, "legal_basis") {
            Some(n) => self.keyword(n, &join(path, "legal_basis"), "legal basis", &bases),
            None => {
                self.missing(
                    m,
                    path,
                    "legal_basis",
                    "the purpose",
                    "add `legal_basis:` with one of consent, contract, legal_obligation, vital_interest, public_task, legitimate_interest (Art. 6(1))",
                );
                None
            }
        };
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
                    &join(path, "special_category"),
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
                let cp = join(path, "consent");
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

    fn processor(&mut self, node: &Node, path: &str) -> Option<Processor> {
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
        let role = match Self::get(m, "role") {
            Some(n) => self.keyword(n, &join(path, "role"), "role", &roles),
            None => {
                self.missing(
                    m,
                    path,
                    "role",
                    "the processor",
                    "add `role:` with processor, joint_controller or recipient",
                );
                None
            }
        };
        let country = self.req_str(
            m,
            path,
            "country",
            what,
            "add `country:` with the ISO 3166 code where the data goes, e.g. `DE` or `US`",
        );
        if let (Some(c), Some(n)) = (&country, m.get_node("country")) {
            if c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
                self.error(
                    "invalid-value",
                    pos(n),
                    &join(path, "country"),
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
                    &join(path, "transfer"),
                    "transfer mechanism",
                    &mechanisms,
                )
                .map(Some),
            None => Some(None),
        };
        let dpa = match Self::get(m, "dpa") {
            Some(n) => self.dpa(n, &join(path, "dpa")).map(Some),
            None => Some(None),
        };
        let notify = match Self::get(m, "notify") {
            Some(n) => self.notify(n, &join(path, "notify")),
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

    fn dpa(&mut self, node: &Node, path: &str) -> Option<Dpa> {
        let m = self.mapping(node, path, "dpa", &["status", "date"])?;
        let statuses = [
            ("signed", DpaStatus::Signed),
            ("pending", DpaStatus::Pending),
            ("missing", DpaStatus::Missing),
            ("not_required", DpaStatus::NotRequired),
        ];
        let status = match Self::get(m, "status") {
            Some(n) => self.keyword(n, &join(path, "status"), "DPA status", &statuses),
            None => {
                self.missing(
                    m,
                    path,
                    "status",
                    "dpa",
                    "add `status:` with signed, pending, missing or not_required",
                );
                None
            }
        };
        let date = self.opt_str(m, path, "date").ok()?;
        if let (Some(d), Some(n)) = (&date, m.get_node("date")) {
            if !valid_date(d) {
                self.error(
                    "invalid-value",
                    pos(n),
                    &join(path, "date"),
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

    fn notify(&mut self, node: &Node, path: &str) -> Option<Notify> {
        let hint = "write `notify: { url: https://... }`, `notify: { email: privacy@... }` or `notify: manual`";
        match node {
            Node::Scalar(s) if s.as_str() == "manual" => Some(Notify::Manual),
            Node::Mapping(_) => {
                let m = self.mapping(node, path, "notify", &["url", "email"])?;
                let url = self.opt_str(m, path, "url").ok()?;
                let email = self.opt_str(m, path, "email").ok()?;
                match (url, email) {
                    (Some(u), None) => {
                        if !(u.starts_with("https://") || u.starts_with("http://")) {
                            self.error("invalid-value", m.get_node("url").and_then(pos), &join(path, "url"), format!("`{u}` is not an http(s) URL"), Some("write the full URL, e.g. https://vendor.example/custos/notices".into()));
                            return None;
                        }
                        Some(Notify::Url(u))
                    }
                    (None, Some(e)) => {
                        if !e.contains('@') {
                            self.error(
                                "invalid-value",
                                m.get_node("email").and_then(pos),
                                &join(path, "email"),
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
                            pos(node),
                            path,
                            "notify needs exactly one of `url` or `email`".into(),
                            Some(hint.into()),
                        );
                        None
                    }
                }
            }
            other => {
                self.error(
                    "invalid-value",
                    pos(other),
                    path,
                    "unknown notification method".into(),
                    Some(hint.into()),
                );
                None
            }
        }
    }

    fn system(&mut self, node: &Node, path: &str) -> Option<System> {
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
        let kind = match Self::get(m, "kind") {
            Some(n) => self.keyword(n, &join(path, "kind"), "system kind", &kinds),
            None => {
                self.missing(
                    m,
                    path,
                    "kind",
                    "the system",
                    "add `kind:` with vault, postgres, mysql, sqlite, files, redis, http or manual",
                );
                None
            }
        };
        let description = self.opt_str(m, path, "description");
        let connection = match Self::get(m, "connection") {
            Some(n) => self.connection(n, &join(path, "connection")),
            None => Some(BTreeMap::new()),
        };
        let processor = self.opt_str(m, path, "processor");
        let security = self.opt_list(m, path, "security");
        let datasets: Vec<Option<Dataset>> = self
            .items(m, path, "datasets", "id")
            .into_iter()
            .map(|(n, p)| self.dataset(n, &p))
            .collect();
        Some(System {
            id: SystemId(id?),
            kind: kind?,
            description: description.ok()?,
            connection: connection?,
            processor: processor.ok()?.map(ProcessorId),
            security: security.ok()?,
            datasets: datasets.into_iter().collect::<Option<_>>()?,
        })
    }

    fn connection(&mut self, node: &Node, path: &str) -> Option<BTreeMap<String, String>> {
        let Some(m) = node.as_mapping() else {
            self.error(
                "wrong-type",
                pos(node),
                path,
                format!("connection must be a mapping, found {}", kind_name(node)),
                Some("write `connection: { url_env: DATABASE_URL }`".into()),
            );
            return None;
        };
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (k, v) in m.iter() {
            let p = join(path, k.as_str());
            let Some(val) = self.string(v, &p) else {
                ok = false;
                continue;
            };
            if !is_env_name(&val) {
                self.error(
                    "secret-in-map",
                    pos(v),
                    &p,
                    format!("connection setting `{}` must name an environment variable, not hold a value", k.as_str()),
                    Some("put the value in an environment variable and write its name here, e.g. `url_env: APP_DATABASE_URL`".into()),
                );
                ok = false;
                continue;
            }
            out.insert(k.as_str().to_owned(), val);
        }
        ok.then_some(out)
    }

    fn location(&mut self, m: &MarkedMappingNode, path: &str) -> Option<Location> {
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
                    mapping_pos(m),
                    path,
                    "the dataset does not say where it is".into(),
                    Some("add one of `table:`, `collection:`, `path:`, `key:`, `endpoint:` or `place:`".into()),
                );
                None
            }
            many => {
                self.error(
                    "invalid-value",
                    m.get_node(many.get(1).copied().unwrap_or("table"))
                        .and_then(pos),
                    path,
                    format!("the dataset has several locations ({})", many.join(", ")),
                    Some("keep one; declare another dataset for the other location".into()),
                );
                None
            }
        }
    }

    fn dataset(&mut self, node: &Node, path: &str) -> Option<Dataset> {
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
            Some(n) => self.subject(n, &join(path, "subject")).map(Some),
            None => Some(None),
        };
        let purposes = self.opt_list(m, path, "purposes");
        let erasure = match Self::get(m, "erasure") {
            Some(n) => self.erasure(n, &join(path, "erasure")).map(Some),
            None => Some(None),
        };
        let retention = match Self::get(m, "retention") {
            Some(n) => self.retention(n, &join(path, "retention")).map(Some),
            None => Some(None),
        };
        let derived_from = match Self::get(m, "derived_from") {
            Some(n) => {
                let p = join(path, "derived_from");
                let s = self.string(n, &p)?;
                match s.parse::<DatasetRef>() {
                    Ok(r) => Some(Some(r)),
                    Err(_) => {
                        self.error(
                            "invalid-value",
                            pos(n),
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
        let fields: Vec<Option<Field>> = self
            .items(m, path, "fields", "name")
            .into_iter()
            .map(|(n, p)| self.field(n, &p))
            .collect();
        Some(Dataset {
            id: DatasetId(id?),
            location: location?,
            description: description.ok()?,
            subject: subject?,
            purposes: purposes.ok()?.into_iter().map(PurposeId).collect(),
            erasure: erasure?,
            retention: retention?,
            derived_from: derived_from?,
            fields: fields.into_iter().collect::<Option<_>>()?,
        })
    }

    fn subject(&mut self, node: &Node, path: &str) -> Option<SubjectLink> {
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
                        m.get_node("referenced_by").and_then(pos),
                        &join(path, "referenced_by"),
                        format!("`{r}` is not a field reference"),
                        Some("write `dataset.field` or `system.dataset.field`".into()),
                    );
                    None
                }
            },
            _ => {
                self.error(
                    "invalid-value",
                    pos(node),
                    path,
                    "subject needs exactly one of `identity`, `via` or `referenced_by`".into(),
                    Some("`identity: <field>` when a field identifies the person; `via: <field>` when a field references a row that does; `referenced_by: <dataset.field>` when another dataset points here".into()),
                );
                None
            }
        }
    }

    fn erasure(&mut self, node: &Node, path: &str) -> Option<ErasureStrategy> {
        let hint = "write `delete`, `shred`, `{ anonymize: set_null }`, `{ anonymize: keyed_hash }`, `{ anonymize: { placeholder: \"Removed user\" } }` or `{ retain: { ground: ..., period: 10y, from_column: ... } }`";
        match node {
            Node::Scalar(s) => match s.as_str() {
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
                        pos(node),
                        path,
                        format!("unknown erasure strategy `{other}`"),
                        Some(h),
                    );
                    None
                }
            },
            Node::Mapping(_) => {
                let m = self.mapping(node, path, "erasure", &["anonymize", "retain"])?;
                match (m.get_node("anonymize"), m.get_node("retain")) {
                    (Some(a), None) => {
                        let ap = join(path, "anonymize");
                        match a {
                            Node::Scalar(s) if is_null(s) || s.as_str() == "set_null" => {
                                Some(ErasureStrategy::Anonymize(Anonymize::SetNull))
                            }
                            Node::Scalar(s) if s.as_str() == "keyed_hash" => {
                                Some(ErasureStrategy::Anonymize(Anonymize::KeyedHash))
                            }
                            Node::Mapping(_) => {
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
                            other => {
                                self.error("invalid-value", pos(other), &ap, "unknown anonymisation method".into(), Some("write `set_null`, `keyed_hash` or `{ placeholder: \"Removed user\" }`".into()));
                                None
                            }
                        }
                    }
                    (None, Some(r)) => {
                        let rp = join(path, "retain");
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
                            pos(node),
                            path,
                            "erasure needs exactly one of `anonymize` or `retain`".into(),
                            Some(hint.into()),
                        );
                        None
                    }
                }
            }
            Node::Sequence(_) => {
                self.error(
                    "wrong-type",
                    pos(node),
                    path,
                    "erasure must be a word or a mapping, found a list".into(),
                    Some(hint.into()),
                );
                None
            }
        }
    }

    fn retention(&mut self, node: &Node, path: &str) -> Option<Retention> {
        let m = self.mapping(
            node,
            path,
            "retention",
            &["period", "from_column", "from_event"],
        )?;
        self.retention_fields(m, path)
    }

    fn retention_fields(&mut self, m: &MarkedMappingNode, path: &str) -> Option<Retention> {
        let period = match Self::get(m, "period") {
            Some(n) => {
                let p = join(path, "period");
                let s = self.string(n, &p)?;
                match s.parse::<Duration>() {
                    Ok(d) => Some(d),
                    Err(e) => {
                        self.error(
                            "invalid-duration",
                            pos(n),
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
                    mapping_pos(m),
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

    fn field(&mut self, node: &Node, path: &str) -> Option<Field> {
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
        if let (Some(n), Some(node)) = (&name, m.get_node("name")) {
            if n.contains('.') || n.contains('[') {
                self.error(
                    "invalid-id",
                    pos(node),
                    &join(path, "name"),
                    format!("field name `{n}` may not contain `.` or `[`"),
                    None,
                );
            }
        }
        let category = match Self::get(m, "category") {
            Some(n) => self.str_list(n, &join(path, "category"), true),
            None => {
                self.missing(m, path, "category", "the field", "add `category:` with a fideslang data category, e.g. `user.contact.email` or `system.operations`");
                None
            }
        };
        if let Some(c) = &category {
            if c.is_empty() {
                self.error(
                    "missing-key",
                    m.get_node("category").and_then(pos),
                    &join(path, "category"),
                    "the field has an empty category list".into(),
                    Some("name at least one data category".into()),
                );
            }
        }
        let purposes = self.opt_list(m, path, "purposes");
        let kinds: Vec<(&str, IdentityKind)> =
            IdentityKind::ALL.iter().map(|k| (k.key(), *k)).collect();
        let identity = match Self::get(m, "identity") {
            Some(n) => self
                .keyword(n, &join(path, "identity"), "identity kind", &kinds)
                .map(Some),
            None => Some(None),
        };
        let references = match Self::get(m, "references") {
            Some(n) => {
                let p = join(path, "references");
                let s = self.string(n, &p)?;
                match s.parse::<FieldRef>() {
                    Ok(r) => Some(Some(r)),
                    Err(_) => {
                        self.error(
                            "invalid-value",
                            pos(n),
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
            Some(n) => self.erasure(n, &join(path, "erasure")).map(Some),
            None => Some(None),
        };
        let retention = match Self::get(m, "retention") {
            Some(n) => self.retention(n, &join(path, "retention")).map(Some),
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

    #[test]
    fn env_names() {
        assert!(is_env_name("DATABASE_URL"));
        assert!(!is_env_name("postgres://u:p@h/db"));
        assert!(!is_env_name("1X"));
    }
}
