//! Systems and what they hold: connection settings (names of environment
//! variables, never values), datasets with their location, the link to
//! their data subject, erasure and retention, and fields with their data
//! categories, identities and references.

use std::collections::BTreeMap;

use super::reader::Path;
use super::{is_env_name, is_null, Parser};
use crate::duration::Duration;
use crate::model::*;
use crate::suggest;
use crate::tree::{View, M, N};

/// Whether `s` has the shape of a tenant id of the store (lower-case
/// letters, digits, `.`, `_`, `-`; starting with a letter or digit).
fn is_tenant_id(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=64).contains(&b.len())
        && b.first()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
}

impl<'d> Parser<'_> {
    pub(super) fn system(&mut self, node: N<'d>, path: &Path<'_>) -> Option<System> {
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
                "tenants",
                "tenant_values",
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
        let tenants = self.tenant_list(m, path);
        let tenant_values = match Self::get(m, "tenant_values") {
            Some(n) => self.tenant_values(n, &Path::Key(path, "tenant_values")),
            None => Some(BTreeMap::new()),
        };
        let datasets: Option<Vec<Dataset>> = self.items(m, path, "datasets", "id", Self::dataset);
        Some(System {
            id: SystemId(id?),
            kind: kind?,
            description: description.ok()?,
            connection: connection?,
            processor: processor.ok()?.map(ProcessorId),
            security: security.ok()?,
            tenants: tenants?,
            tenant_values: tenant_values?,
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

    /// `tenants: [acme, globex]` (of a system or a processor): tenant ids.
    pub(super) fn tenant_list(&mut self, m: M<'d>, path: &Path<'_>) -> Option<Vec<String>> {
        let list = self.opt_list(m, path, "tenants").ok()?;
        let mut ok = true;
        for (i, t) in list.iter().enumerate() {
            if !is_tenant_id(t) {
                let node = m
                    .get("tenants")
                    .and_then(|n| n.sequence())
                    .and_then(|s| s.iter().nth(i));
                self.error(
                    "invalid-value",
                    node.and_then(|n| n.pos()),
                    &Path::Index(&Path::Key(path, "tenants"), i),
                    format!("`{t}` is not a tenant id"),
                    Some("tenant ids are 1 to 64 lower-case letters, digits, `.`, `_` or `-`, as `custos tenant create` made them".into()),
                );
                ok = false;
            }
        }
        ok.then_some(list)
    }

    fn tenant_values(&mut self, node: N<'d>, path: &Path<'_>) -> Option<BTreeMap<String, String>> {
        let Some(m) = node.mapping() else {
            self.error(
                "wrong-type",
                node.pos(),
                path,
                format!("tenant_values must be a mapping, found {}", node.kind_name()),
                Some("write `tenant_values: { acme: \"1\", globex: \"2\" }`: each tenant's value in the datasets' `tenant_column`".into()),
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
            if !is_tenant_id(k) {
                self.error(
                    "invalid-value",
                    v.pos(),
                    &p,
                    format!("`{k}` is not a tenant id"),
                    Some(
                        "tenant ids are 1 to 64 lower-case letters, digits, `.`, `_` or `-`".into(),
                    ),
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
                "shared_rows",
                "purposes",
                "erasure",
                "retention",
                "derived_from",
                "tenant_column",
                "fields",
            ],
        )?;
        let id = self.id(m, path, "id", what);
        let location = self.location(m, path);
        let description = self.opt_str(m, path, "description");
        let subject = match Self::get(m, "subject") {
            Some(n) => self.subjects(n, &Path::Key(path, "subject")),
            None => Some(Vec::new()),
        };
        let shared_rows = match Self::get(m, "shared_rows") {
            Some(n) => self.keyword(
                n,
                &Path::Key(path, "shared_rows"),
                "shared-rows rule",
                &[("keep", SharedRows::Keep)],
            ),
            None => Some(SharedRows::Keep),
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
        let tenant_column = self.opt_str(m, path, "tenant_column");
        let fields: Option<Vec<Field>> = self.items(m, path, "fields", "name", Self::field);
        Some(Dataset {
            id: DatasetId(id?),
            location: location?,
            description: description.ok()?,
            subject: subject?,
            shared_rows: shared_rows?,
            purposes: purposes.ok()?.into_iter().map(PurposeId).collect(),
            erasure: erasure?,
            retention: retention?,
            tenant_column: tenant_column.ok()?,
            derived_from: derived_from?,
            fields: fields?,
        })
    }

    /// `subject:`: one link (a mapping) or several (a list of mappings),
    /// every one of which leads to the person.
    fn subjects(&mut self, node: N<'d>, path: &Path<'_>) -> Option<Vec<SubjectLink>> {
        let Some(seq) = node.sequence() else {
            return self.subject(node, path).map(|l| vec![l]);
        };
        if seq.len() == 0 {
            self.error(
                "invalid-value",
                node.pos(),
                path,
                "an empty list of subject links reaches no one".into(),
                Some("remove `subject:` when an `identity:` field finds the rows, or list the links: `[{ referenced_by: a.x }, { referenced_by: b.y }]`".into()),
            );
            return None;
        }
        let mut out = Vec::with_capacity(seq.len());
        let mut ok = true;
        for (i, item) in seq.iter().enumerate() {
            match self.subject(item, &Path::Index(path, i)) {
                Some(l) if out.contains(&l) => {
                    self.error(
                        "duplicate-id",
                        item.pos(),
                        &Path::Index(path, i),
                        "this subject link is listed twice".into(),
                        Some("remove the repeated entry".into()),
                    );
                    ok = false;
                }
                Some(l) => out.push(l),
                None => ok = false,
            }
        }
        ok.then_some(out)
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
        let (identity, identity_namespace) = self.identity(m, path);
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
            identity_namespace: identity_namespace?,
            references: references?,
            primary_key: primary_key.ok()?,
            erasure: erasure?,
            retention: retention?,
        })
    }
}

impl<'d> Parser<'_> {
    /// A field's `identity:`: a kind (`identity: email`) or a kind in a
    /// namespace (`identity: { kind: user_id, namespace: employees }`).
    #[allow(clippy::type_complexity)]
    fn identity(
        &mut self,
        m: M<'d>,
        path: &Path<'_>,
    ) -> (Option<Option<IdentityKind>>, Option<Option<String>>) {
        let Some(n) = Self::get(m, "identity") else {
            return (Some(None), Some(None));
        };
        let p = Path::Key(path, "identity");
        let kinds = std::mem::take(&mut self.identity_kinds);
        let out = if n.mapping().is_some() {
            match self.mapping(n, &p, "an identity", &["kind", "namespace"]) {
                Some(im) => {
                    let kind = self.req_keyword(
                        im,
                        &p,
                        "kind",
                        "identity kind",
                        "the identity",
                        &kinds,
                        "add `kind:`, e.g. `kind: user_id`",
                    );
                    let ns = self.req_str(
                        im,
                        &p,
                        "namespace",
                        "the identity",
                        "name the key space, e.g. `namespace: employees`; or write `identity: user_id`",
                    );
                    (kind.map(Some), ns.map(Some))
                }
                None => (None, None),
            }
        } else {
            (
                self.keyword(n, &p, "identity kind", &kinds).map(Some),
                Some(None),
            )
        };
        self.identity_kinds = kinds;
        out
    }
}
