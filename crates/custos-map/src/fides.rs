//! Import of Fides dataset YAML into a custos map.
//!
//! A team moving from Fides brings dataset files (`dataset:` → `fides_key`,
//! `collections`, `fields`, `data_categories`, and `fides_meta` or the
//! legacy `fidesops_meta` with `identity`, `references`, `primary_key`).
//! Each Fides dataset becomes one system, each collection one dataset.
//! What Fides does not say (purposes, retention, the controller) or what
//! custos has no place for (masking overrides, data types) is listed in
//! [`ImportOutcome::notes`], so that nothing is dropped silently.

use std::collections::BTreeMap;

use marked_yaml::types::MarkedMappingNode;
use marked_yaml::Node;

use crate::diagnostic::{Diagnostic, Position, Severity};
use crate::model::*;

/// The map produced by an import and what could not be carried over.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOutcome {
    /// The imported map; it still needs purposes, retention and the
    /// controller before `custos map check` accepts it.
    pub map: DataMap,
    /// Human-readable notes, one per thing not carried over or guessed.
    pub notes: Vec<String>,
}

struct RawField {
    name: String,
    categories: Vec<String>,
    identity: Option<String>,
    primary_key: bool,
    references: Vec<(String, String, Option<String>)>,
}

struct RawCollection {
    name: String,
    fields: Vec<RawField>,
}

fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        "unnamed".into()
    } else {
        out
    }
}

fn scalar<'a>(m: &'a MarkedMappingNode, key: &str) -> Option<&'a str> {
    m.get_scalar(key).map(|s| s.as_str())
}

fn seq<'a>(m: &'a MarkedMappingNode, key: &str) -> &'a [Node] {
    m.get_sequence(key).map_or(&[], |s| s.as_slice())
}

fn strings(m: &MarkedMappingNode, key: &str) -> Vec<String> {
    match m.get_node(key) {
        Some(Node::Sequence(s)) => s
            .iter()
            .filter_map(|n| n.as_scalar())
            .map(|s| s.as_str().to_owned())
            .collect(),
        Some(Node::Scalar(s)) => vec![s.as_str().to_owned()],
        _ => Vec::new(),
    }
}

/// Counts "what was not carried over" so that notes stay short.
#[derive(Default)]
struct Dropped(BTreeMap<String, Vec<String>>);

impl Dropped {
    fn add(&mut self, what: String, where_: String) {
        self.0.entry(what).or_default().push(where_);
    }
}

/// Import Fides dataset files, given as `(file name, text)`. `kind` is the
/// system kind to give the datasets (Fides does not record it).
pub fn import(
    sources: &[(&str, &str)],
    kind: SystemKind,
) -> Result<ImportOutcome, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut systems = Vec::new();
    let mut dropped = Dropped::default();
    let mut notes = Vec::new();
    for (file, text) in sources {
        let root = match marked_yaml::parse_yaml(0, text) {
            Ok(r) => r,
            Err(e) => {
                diags.push(Diagnostic {
                    severity: Severity::Error,
                    code: "yaml-syntax".into(),
                    file: (*file).to_owned(),
                    position: None,
                    path: String::new(),
                    message: format!("invalid YAML: {e}"),
                    hint: None,
                });
                continue;
            }
        };
        let Some(datasets) = root.as_mapping().and_then(|m| m.get_sequence("dataset")) else {
            let at = root.span().start().map(|m| Position {
                line: m.line(),
                column: m.column(),
            });
            diags.push(Diagnostic {
                severity: Severity::Error,
                code: "not-fides".into(),
                file: (*file).to_owned(),
                position: at,
                path: String::new(),
                message: "no `dataset:` list found; this is not a Fides dataset file".into(),
                hint: Some(
                    "Fides dataset files start with `dataset:` followed by `- fides_key: ...`"
                        .into(),
                ),
            });
            continue;
        };
        for ds in datasets.iter().filter_map(Node::as_mapping) {
            systems.push(import_dataset(ds, kind, &mut dropped, &mut notes));
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let mut all_notes = vec![
        "organisation: Fides datasets do not name the controller; fill in `organisation`".to_owned(),
        "purposes: Fides datasets carry no purposes or legal bases (they live in Fides systems); declare `purposes` and list them on datasets or fields".to_owned(),
        "retention: Fides datasets carry no retention; add `retention` to every dataset holding personal data".to_owned(),
        format!("kind: Fides does not record the database engine; every imported system has `kind: {}` and `connection: {{ url_env: <KEY>_URL }}`", kind.key()),
    ];
    all_notes.extend(notes);
    for (what, places) in dropped.0 {
        let shown: Vec<&str> = places.iter().take(3).map(String::as_str).collect();
        let more = places.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        all_notes.push(format!(
            "not carried over: {what} ({}{tail})",
            shown.join(", ")
        ));
    }
    Ok(ImportOutcome {
        map: DataMap {
            version: 1,
            updated: None,
            organisation: Organisation {
                controller: "TODO: legal name of the controller".into(),
                address: None,
                contact: "TODO: privacy contact".into(),
                dpo: None,
                eu_representative: None,
                security_measures: Vec::new(),
            },
            purposes: Vec::new(),
            processors: Vec::new(),
            systems,
            on_behalf_of: Vec::new(),
        },
        notes: all_notes,
    })
}

const FIELD_META_KEPT: &[&str] = &["identity", "primary_key", "references"];

fn import_dataset(
    ds: &MarkedMappingNode,
    kind: SystemKind,
    dropped: &mut Dropped,
    notes: &mut Vec<String>,
) -> System {
    let key = scalar(ds, "fides_key")
        .unwrap_or("fides_dataset")
        .to_owned();
    let sid = sanitize(&key);
    for k in ds.keys() {
        if !matches!(
            k.as_str(),
            "fides_key" | "name" | "description" | "collections"
        ) {
            dropped.add(format!("dataset key `{}`", k.as_str()), key.clone());
        }
    }
    let collections: Vec<RawCollection> = seq(ds, "collections")
        .iter()
        .filter_map(Node::as_mapping)
        .map(|c| {
            let cname = scalar(c, "name").unwrap_or("collection").to_owned();
            for k in c.keys() {
                if !matches!(k.as_str(), "name" | "fields" | "description") {
                    dropped.add(
                        format!("collection key `{}`", k.as_str()),
                        format!("{key}.{cname}"),
                    );
                }
            }
            let fields = seq(c, "fields")
                .iter()
                .filter_map(Node::as_mapping)
                .map(|f| raw_field(f, &format!("{key}.{cname}"), dropped))
                .collect();
            RawCollection {
                name: cname,
                fields,
            }
        })
        .collect();

    let mut datasets = Vec::new();
    for c in &collections {
        let fields: Vec<Field> = c
            .fields
            .iter()
            .map(|f| {
                let identity = f.identity.as_deref().map(|i| match i {
                    "email" => IdentityKind::Email,
                    "phone_number" | "phone" => IdentityKind::Phone,
                    other => {
                        notes.push(format!("{key}.{}.{}: Fides identity `{other}` imported as `user_id`", c.name, f.name));
                        IdentityKind::UserId
                    }
                });
                if f.references.len() > 1 {
                    notes.push(format!("{key}.{}.{}: only the first of {} references was kept", c.name, f.name, f.references.len()));
                }
                let references = f.references.first().and_then(|(dataset, field, _)| to_ref(&key, dataset, field));
                let category = if f.categories.is_empty() {
                    notes.push(format!("{key}.{}.{}: no data category; set to `user` (treated as personal) until reviewed", c.name, f.name));
                    vec![DataCategory::from("user")]
                } else {
                    f.categories.iter().map(|s| DataCategory::from(s.as_str())).collect()
                };
                Field {
                    name: f.name.clone(),
                    category,
                    purposes: Vec::new(),
                    identity,
                    identity_namespace: None,
                    references,
                    primary_key: f.primary_key,
                    erasure: None,
                    retention: None,
                }
            })
            .collect();
        let personal = fields
            .iter()
            .any(|f| f.category.iter().any(DataCategory::is_personal));
        let has_identity = fields.iter().any(|f| f.identity.is_some());
        // Every path Fides follows to the person: each field of this
        // collection that points to one reaching them (`via`), and each
        // field of another collection that points here (`referenced_by`).
        let mut subject: Vec<SubjectLink> = Vec::new();
        if !has_identity && personal {
            subject.extend(
                c.fields
                    .iter()
                    .filter(|f| {
                        f.references
                            .first()
                            .is_some_and(|(ds, _, dir)| ds == &key && dir.as_deref() != Some("to"))
                    })
                    .map(|f| SubjectLink::Via(f.name.clone())),
            );
            subject.extend(
                collections
                    .iter()
                    .flat_map(|o| o.fields.iter().map(move |f| (o, f)))
                    .filter(|(_, f)| {
                        f.references.iter().any(|(ds, target, dir)| {
                            ds == &key
                                && dir.as_deref() == Some("to")
                                && target.split('.').next() == Some(c.name.as_str())
                        })
                    })
                    .map(|(other, f)| {
                        SubjectLink::ReferencedBy(FieldRef {
                            system: None,
                            dataset: DatasetId(sanitize(&other.name)),
                            field: f.name.clone(),
                        })
                    }),
            );
            if subject.is_empty() {
                notes.push(format!("{key}.{}: holds personal data but neither an identity nor a reference reaches a subject; add `subject:`", c.name));
            }
        }
        datasets.push(Dataset {
            id: DatasetId(sanitize(&c.name)),
            location: Location::Table(c.name.clone()),
            description: None,
            subject,
            shared_rows: SharedRows::Keep,
            purposes: Vec::new(),
            erasure: None,
            retention: None,
            tenant_column: None,
            derived_from: None,
            fields,
        });
    }
    let env = format!("{}_URL", sid.to_ascii_uppercase().replace('-', "_"));
    System {
        id: SystemId(sid),
        kind,
        description: scalar(ds, "name").map(|n| match scalar(ds, "description") {
            Some(d) => format!("{n}: {d}"),
            None => n.to_owned(),
        }),
        connection: BTreeMap::from([("url_env".to_owned(), env)]),
        processor: None,
        security: Vec::new(),
        tenants: Vec::new(),
        tenant_values: BTreeMap::new(),
        datasets,
    }
}

fn to_ref(own_key: &str, dataset: &str, field: &str) -> Option<FieldRef> {
    let (coll, fname) = field.split_once('.')?;
    Some(FieldRef {
        system: (dataset != own_key).then(|| SystemId(sanitize(dataset))),
        dataset: DatasetId(sanitize(coll)),
        field: fname.to_owned(),
    })
}

fn raw_field(f: &MarkedMappingNode, where_: &str, dropped: &mut Dropped) -> RawField {
    let name = scalar(f, "name").unwrap_or("field").to_owned();
    let here = format!("{where_}.{name}");
    for k in f.keys() {
        match k.as_str() {
            "name" | "data_categories" | "fides_meta" | "fidesops_meta" => {}
            "fields" => dropped.add(
                "nested fields (objects inside a field)".into(),
                here.clone(),
            ),
            other => dropped.add(format!("field key `{other}`"), here.clone()),
        }
    }
    let meta = f
        .get_mapping("fides_meta")
        .or_else(|| f.get_mapping("fidesops_meta"));
    let mut identity = None;
    let mut primary_key = false;
    let mut references = Vec::new();
    if let Some(meta) = meta {
        for k in meta.keys() {
            if !FIELD_META_KEPT.contains(&k.as_str()) {
                dropped.add(format!("fides_meta.{}", k.as_str()), here.clone());
            }
        }
        identity = scalar(meta, "identity").map(str::to_owned);
        primary_key = meta
            .get_scalar("primary_key")
            .and_then(|s| s.as_bool())
            .unwrap_or(false);
        for r in seq(meta, "references").iter().filter_map(Node::as_mapping) {
            if let (Some(ds), Some(field)) = (scalar(r, "dataset"), scalar(r, "field")) {
                references.push((
                    ds.to_owned(),
                    field.to_owned(),
                    scalar(r, "direction").map(str::to_owned),
                ));
            }
        }
    }
    RawField {
        name,
        categories: strings(f, "data_categories"),
        identity,
        primary_key,
        references,
    }
}
