//! Semantic checks of a parsed [`DataMap`]: taxonomy keys, lawful bases,
//! consent rules, references, reachability of subjects, transfers and
//! retention. Every rule gives a stable code; see `docs/map.md` for the list.
//!
//! The validator is pure: it reads the map and the [`SourceIndex`] (to put a
//! line and column on each finding) and returns every finding at once.

mod identity;

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::diagnostic::{Diagnostic, Severity};
use crate::model::*;
use crate::parse::SourceIndex;
use crate::suggest;
use crate::taxonomy;

mod tenancy;

/// Countries of the European Economic Area (ISO 3166-1 alpha-2; `EL` is
/// accepted for Greece as the EU writes it).
pub const EEA: &[&str] = &[
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "EL", "HU", "IE", "IT",
    "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
];

/// Countries with an adequacy decision of the European Commission (Art. 45).
/// For `US` it covers only organisations certified under the Data Privacy
/// Framework, which the map cannot check.
pub const ADEQUATE: &[&str] = &[
    "AD", "AR", "CA", "FO", "GG", "IL", "IM", "JP", "JE", "NZ", "KR", "CH", "GB", "UY", "US",
];

/// Whether `country` is inside the EEA.
pub fn in_eea(country: &str) -> bool {
    EEA.contains(&country)
}

struct V<'a> {
    map: &'a DataMap,
    index: &'a SourceIndex,
    diags: Vec<Diagnostic>,
    purposes: HashSet<&'a str>,
    used_purposes: HashSet<&'a str>,
    datasets: HashMap<(&'a str, &'a str), &'a Dataset>,
}

/// Check `map`; positions come from `index`. Returns errors and warnings,
/// sorted by position.
pub fn validate(map: &DataMap, index: &SourceIndex) -> Vec<Diagnostic> {
    let mut v = V {
        map,
        index,
        diags: Vec::new(),
        purposes: map.purposes.iter().map(|p| p.id.as_str()).collect(),
        used_purposes: HashSet::new(),
        datasets: map
            .systems
            .iter()
            .flat_map(|s| {
                s.datasets
                    .iter()
                    .map(move |d| ((s.id.as_str(), d.id.as_str()), d))
            })
            .collect(),
    };
    for s in &map.systems {
        v.system(s);
    }
    for p in &map.processors {
        v.processor(p);
    }
    for (i, c) in map.on_behalf_of.iter().enumerate() {
        let path = format!("on_behalf_of[{i}]");
        v.purpose_refs(&c.purposes, || format!("{path}.purposes"));
    }
    for p in &map.purposes {
        v.purpose(p);
    }
    v.cycles();
    v.identity_namespaces();
    let mut diags = v.diags;
    crate::diagnostic::sort(&mut diags);
    diags
}

impl<'a> V<'a> {
    fn push(
        &mut self,
        severity: Severity,
        code: &str,
        path: String,
        message: String,
        hint: Option<String>,
    ) {
        self.diags.push(Diagnostic {
            severity,
            code: code.to_owned(),
            file: self.index.file().to_owned(),
            position: self.index.position(&path),
            path,
            message,
            hint,
        });
    }

    fn error(
        &mut self,
        code: &str,
        path: String,
        message: String,
        hint: impl Into<Option<String>>,
    ) {
        self.push(Severity::Error, code, path, message, hint.into());
    }

    fn warn(&mut self, code: &str, path: String, message: String, hint: impl Into<Option<String>>) {
        self.push(Severity::Warning, code, path, message, hint.into());
    }

    /// Check references to purposes; `path` (of the list) is built only
    /// for a diagnostic.
    fn purpose_refs(&mut self, ids: &'a [PurposeId], path: impl Fn() -> String) {
        for (i, id) in ids.iter().enumerate() {
            if self.purposes.contains(id.as_str()) {
                self.used_purposes.insert(id.as_str());
            } else {
                let known: Vec<&str> = self.map.purposes.iter().map(|p| p.id.as_str()).collect();
                let hint = match suggest::closest(id.as_str(), known.iter().copied()) {
                    Some(c) => format!(
                        "did you mean `{c}`? declared purposes: {}",
                        known.join(", ")
                    ),
                    None if known.is_empty() => "declare it under `purposes:`".to_owned(),
                    None => format!(
                        "declare it under `purposes:` or use one of: {}",
                        known.join(", ")
                    ),
                };
                self.error(
                    "unknown-purpose",
                    format!("{}[{i}]", path()),
                    format!("unknown purpose `{id}`"),
                    hint,
                );
            }
        }
    }

    fn category(&mut self, c: &DataCategory, path: impl FnOnce() -> String) {
        if !taxonomy::is_data_category(c.as_str()) {
            let path = path();
            let hint = match suggest::closest(c.as_str(), taxonomy::data_categories()) {
                Some(s) => format!("did you mean \"{s}\"?"),
                None => "use a key of the fideslang data-category taxonomy, e.g. \"user.contact.email\"; `custos map categories` lists them".to_owned(),
            };
            self.error(
                "unknown-category",
                path,
                format!("unknown data category \"{c}\""),
                hint,
            );
        }
    }

    fn purpose(&mut self, p: &'a Purpose) {
        let path = format!("purposes.{}", p.id);
        match p.legal_basis {
            LegalBasis::LegitimateInterest
                if p.balancing_test
                    .as_deref()
                    .is_none_or(|s| s.trim().is_empty()) =>
            {
                self.error(
                    "missing-balancing-test",
                    format!("{path}.legal_basis"),
                    "legitimate interest needs a note of the balancing test".into(),
                    "add `balancing_test:` saying why the interest outweighs the subjects' rights (Art. 6(1)(f))".to_owned(),
                );
            }
            LegalBasis::Consent => {
                if p.mandatory {
                    self.error(
                        "consent-mandatory",
                        format!("{path}.mandatory"),
                        "a consent-based purpose cannot be mandatory".into(),
                        "consent must be freely given and withdrawable (Art. 7(4)); remove `mandatory: true` or choose another legal basis such as `contract`".to_owned(),
                    );
                }
                match &p.consent {
                    None => self.error(
                        "consent-collection-missing",
                        path.clone(),
                        "a consent-based purpose must say how consent is collected".into(),
                        "add `consent: { collected_via: \"...\", withdraw_via: \"...\" }` (Art. 7(1): the controller must be able to prove consent)".to_owned(),
                    ),
                    Some(c) if c.withdraw_via.is_none() => self.warn(
                        "consent-withdrawal-missing",
                        format!("{path}.consent"),
                        "the purpose does not say where consent is withdrawn".into(),
                        "add `withdraw_via:`; withdrawing must be as easy as giving (Art. 7(3))".to_owned(),
                    ),
                    Some(_) => {}
                }
            }
            _ => {}
        }
        if p.legal_basis != LegalBasis::Consent && p.consent.is_some() {
            self.warn(
                "consent-spec-unused",
                format!("{path}.consent"),
                format!(
                    "`consent:` is set but the legal basis is {}",
                    p.legal_basis.key()
                ),
                "remove `consent:` or set `legal_basis: consent`".to_owned(),
            );
        }
        if p.sale_or_sharing && p.legal_basis != LegalBasis::Consent {
            self.warn(
                "sale-without-consent",
                format!("{path}.sale_or_sharing"),
                "sale, sharing or targeted advertising relies on a basis other than consent".into(),
                "such purposes usually need consent; Global Privacy Control signals will opt subjects out of it".to_owned(),
            );
        }
        if p.subjects.is_empty() {
            self.error(
                "missing-subjects",
                path.clone(),
                "the purpose names no categories of data subjects".into(),
                "add `subjects: [customer]` (Art. 30(1)(c)); fideslang subjects include customer, employee, prospect, visitor".to_owned(),
            );
        }
        for (i, s) in p.subjects.iter().enumerate() {
            if !taxonomy::is_data_subject(s) {
                let hint = match suggest::closest(s, taxonomy::data_subjects()) {
                    Some(c) => format!("did you mean \"{c}\"? custom subjects are allowed but tools will not recognise them"),
                    None => format!("fideslang subjects: {}", taxonomy::data_subjects().collect::<Vec<_>>().join(", ")),
                };
                self.warn(
                    "unknown-data-subject",
                    format!("{path}.subjects[{i}]"),
                    format!("\"{s}\" is not a fideslang data subject"),
                    hint,
                );
            }
        }
        if let Some(u) = &p.data_use {
            if !taxonomy::is_data_use(u) {
                let hint = match suggest::closest(u, taxonomy::data_uses()) {
                    Some(c) => format!("did you mean \"{c}\"?"),
                    None => {
                        "use a key of the fideslang data-use taxonomy, e.g. \"essential.service\""
                            .to_owned()
                    }
                };
                self.error(
                    "unknown-data-use",
                    format!("{path}.data_use"),
                    format!("unknown data use \"{u}\""),
                    hint,
                );
            }
        }
        if !self.used_purposes.contains(p.id.as_str()) {
            self.warn(
                "unused-purpose",
                path,
                format!("no field, dataset or processor uses purpose `{}`", p.id),
                "remove it or list it under the `purposes:` of the data it covers".to_owned(),
            );
        }
    }

    fn processor(&mut self, p: &'a Processor) {
        let path = format!("processors.{}", p.id);
        self.purpose_refs(&p.purposes, || format!("{path}.purposes"));
        for (i, c) in p.categories.iter().enumerate() {
            self.category(c, || format!("{path}.categories[{i}]"));
        }
        let eea = in_eea(&p.country);
        match (eea, p.transfer) {
            (false, None) => self.error(
                "transfer-without-mechanism",
                format!("{path}.country"),
                format!(
                    "{} is outside the EEA but no transfer mechanism is declared",
                    p.country
                ),
                "add `transfer:` with adequacy, scc or bcr (Chapter V GDPR)".to_owned(),
            ),
            (false, Some(TransferMechanism::Adequacy))
                if !ADEQUATE.contains(&p.country.as_str()) =>
            {
                self.error(
                    "no-adequacy-decision",
                    format!("{path}.transfer"),
                    format!("there is no adequacy decision for {}", p.country),
                    "use `transfer: scc` or `bcr`".to_owned(),
                )
            }
            (true, Some(_)) => self.warn(
                "transfer-not-needed",
                format!("{path}.transfer"),
                format!(
                    "{} is inside the EEA; no transfer mechanism is needed",
                    p.country
                ),
                "remove `transfer:`".to_owned(),
            ),
            _ => {}
        }
        if p.role == ProcessorRole::Processor {
            match &p.dpa {
                Some(Dpa { status: DpaStatus::Signed, date: None }) => self.warn(
                    "dpa-date-missing",
                    format!("{path}.dpa"),
                    "the DPA is signed but its date is not recorded".into(),
                    "add `date: YYYY-MM-DD`".to_owned(),
                ),
                Some(Dpa { status: DpaStatus::Signed, .. }) => {}
                _ => self.warn(
                    "dpa-not-signed",
                    format!("{path}.dpa"),
                    format!("processor `{}` has no signed data processing agreement", p.id),
                    "Art. 28(3) requires a contract; record it as `dpa: { status: signed, date: YYYY-MM-DD }`".to_owned(),
                ),
            }
        }
        let used = !p.purposes.is_empty()
            || self
                .map
                .systems
                .iter()
                .any(|s| s.processor.as_ref() == Some(&p.id));
        if !used {
            self.warn(
                "unused-processor",
                path,
                format!(
                    "processor `{}` serves no purpose and operates no system",
                    p.id
                ),
                "list the purposes it serves, or name it as `processor:` of a system".to_owned(),
            );
        }
    }

    fn system(&mut self, s: &'a System) {
        let path = format!("systems.{}", s.id);
        match &s.processor {
            Some(pid) if self.map.processor(pid).is_none() => {
                let known: Vec<&str> = self.map.processors.iter().map(|p| p.id.as_str()).collect();
                let hint = match suggest::closest(pid.as_str(), known.iter().copied()) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => "declare it under `processors:`".to_owned(),
                };
                self.error(
                    "unknown-processor",
                    format!("{path}.processor"),
                    format!("unknown processor `{pid}`"),
                    hint,
                );
            }
            None if s.kind == SystemKind::Http => self.error(
                "missing-processor",
                path.clone(),
                "an `http` system must name the processor whose API it is".into(),
                "add `processor: <id>` naming an entry of `processors:`".to_owned(),
            ),
            _ => {}
        }
        let needs_connection = s.kind.is_sql()
            || matches!(
                s.kind,
                SystemKind::Redis | SystemKind::Files | SystemKind::Http
            );
        if needs_connection && s.connection.is_empty() {
            self.warn(
                "missing-connection",
                path.clone(),
                format!("the {} system names no connection settings", s.kind.key()),
                "add `connection: { url_env: ENV_VAR_NAME }` so that connectors can reach it"
                    .to_owned(),
            );
        }
        for d in &s.datasets {
            self.dataset(s, d, &format!("{path}.datasets.{}", d.id));
        }
        self.tenancy(s);
    }

    fn resolve_dataset(
        &self,
        sys: &'a System,
        system: Option<&'a SystemId>,
        dataset: &'a DatasetId,
    ) -> Option<(&'a str, &'a Dataset)> {
        let sid = system.map_or(sys.id.as_str(), SystemId::as_str);
        self.datasets
            .get(&(sid, dataset.as_str()))
            .map(|d| (sid, *d))
    }

    fn field_ref(&mut self, sys: &'a System, r: &'a FieldRef, path: String) {
        match self.resolve_dataset(sys, r.system.as_ref(), &r.dataset) {
            None => {
                let sid = r.system.as_ref().map_or(sys.id.as_str(), SystemId::as_str);
                let hint = match self.map.system(&SystemId::from(sid)) {
                    None => format!("there is no system `{sid}`"),
                    Some(target) => {
                        let ids = target.datasets.iter().map(|d| d.id.as_str());
                        match suggest::closest(r.dataset.as_str(), ids) {
                            Some(c) => format!(
                                "did you mean `{}`? system `{sid}` has no dataset `{}`",
                                FieldRef {
                                    system: r.system.clone(),
                                    dataset: DatasetId::from(c),
                                    field: r.field.clone()
                                },
                                r.dataset
                            ),
                            None => format!("system `{sid}` has no dataset `{}`", r.dataset),
                        }
                    }
                };
                self.error(
                    "dangling-reference",
                    path,
                    format!("`{r}` refers to a dataset that does not exist"),
                    hint,
                );
            }
            Some((_, d)) if d.field(&r.field).is_none() => {
                let names: Vec<&str> = d.fields.iter().map(|f| f.name.as_str()).collect();
                let hint = match suggest::closest(&r.field, names.iter().copied()) {
                    Some(c) => format!("did you mean `{}.{c}`?", r.dataset),
                    None => format!("declare the field `{}` in dataset `{}`", r.field, r.dataset),
                };
                self.error(
                    "dangling-reference",
                    path,
                    format!("`{r}` refers to a field that does not exist"),
                    hint,
                );
            }
            Some(_) => {}
        }
    }

    fn dataset(&mut self, sys: &'a System, d: &'a Dataset, path: &str) {
        self.purpose_refs(&d.purposes, || format!("{path}.purposes"));
        let expected = match sys.kind {
            k if k.is_sql() => "table",
            SystemKind::Vault => "collection",
            SystemKind::Files => "path",
            SystemKind::Redis => "key",
            SystemKind::Http => "endpoint",
            _ => "place",
        };
        if d.location.key() != expected {
            self.warn(
                "location-kind-mismatch",
                format!("{path}.{}", d.location.key()),
                format!(
                    "a dataset of a {} system is usually located by `{expected}:`, not `{}:`",
                    sys.kind.key(),
                    d.location.key()
                ),
                format!("write `{expected}: ...`"),
            );
        }
        if let Some(r) = &d.derived_from {
            if self
                .resolve_dataset(sys, r.system.as_ref(), &r.dataset)
                .is_none()
            {
                self.error(
                    "dangling-reference",
                    format!("{path}.derived_from"),
                    format!("`{r}` refers to a dataset that does not exist"),
                    "write `dataset` (same system) or `system.dataset` of a declared dataset"
                        .to_owned(),
                );
            }
        }
        let shreds = |e: &Option<ErasureStrategy>| matches!(e, Some(ErasureStrategy::Shred));
        if sys.kind != SystemKind::Vault {
            if shreds(&d.erasure) {
                self.error(
                    "shred-outside-vault",
                    format!("{path}.erasure"),
                    "`shred` works only in the custos vault".into(),
                    "use `delete` or `anonymize` for this system, or move the data into the vault"
                        .to_owned(),
                );
            }
            for f in d.fields.iter().filter(|f| shreds(&f.erasure)) {
                self.error(
                    "shred-outside-vault",
                    format!("{path}.fields.{}.erasure", f.name),
                    "`shred` works only in the custos vault".into(),
                    "use `delete` or `anonymize` for this system, or move the data into the vault"
                        .to_owned(),
                );
            }
        }
        // Fields.
        for f in &d.fields {
            // Paths are built only for a diagnostic.
            let fpath = || format!("{path}.fields.{}", f.name);
            if f.category.len() == 1 {
                if let Some(c) = f.category.first() {
                    self.category(c, || format!("{}.category", fpath()));
                }
            } else {
                for (i, c) in f.category.iter().enumerate() {
                    self.category(c, || format!("{}.category[{i}]", fpath()));
                }
            }
            self.purpose_refs(&f.purposes, || format!("{}.purposes", fpath()));
            if let Some(r) = &f.references {
                self.field_ref(sys, r, format!("{}.references", fpath()));
            }
            let personal = f.category.iter().any(DataCategory::is_personal);
            let purposes = d.effective_purposes(f);
            if personal && purposes.is_empty() {
                self.error(
                    "missing-purpose",
                    fpath(),
                    format!(
                        "field `{}` holds personal data but serves no purpose",
                        f.name
                    ),
                    "add `purposes: [...]` to the field or to its dataset (Art. 5(1)(b))"
                        .to_owned(),
                );
            }
            if f.category.iter().any(DataCategory::is_special) {
                let lacking: Vec<&str> = purposes
                    .iter()
                    .filter_map(|id| self.map.purpose(id))
                    .filter(|p| p.special_category.is_none())
                    .map(|p| p.id.as_str())
                    .collect();
                if !lacking.is_empty() {
                    self.error(
                        "special-category-without-basis",
                        format!("{}.category", fpath()),
                        format!("field `{}` holds a special category of data (Art. 9) but purpose {} declares no Art. 9(2) exception", f.name, lacking.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ")),
                        "add `special_category:` (e.g. explicit_consent, employment, health_care) to the purpose".to_owned(),
                    );
                }
            }
        }
        if !d.holds_personal_data() {
            return;
        }
        // How rows reach the subject.
        if d.subject.is_empty()
            && !d.fields.iter().any(|f| f.identity.is_some())
            && d.derived_from.is_none()
        {
            self.error(
                "missing-subject",
                path.to_owned(),
                format!("dataset `{}` holds personal data but no way to find a person's rows", d.id),
                "mark the identifying field with `identity: user_id` (or email, subject_id, ...), or add `subject: { via: <field with references> }` or `subject: { referenced_by: <dataset.field> }`".to_owned(),
            );
        }
        let many = d.subject.len() > 1;
        for (i, link) in d.subject.iter().enumerate() {
            let at = if many {
                format!("{path}.subject[{i}]")
            } else {
                format!("{path}.subject")
            };
            match link {
                SubjectLink::Identity(f) => {
                    if d.field(f).is_none() {
                        self.error("dangling-reference", format!("{at}.identity"), format!("field `{f}` is not declared in dataset `{}`", d.id), "declare it under `fields:` or name an existing field".to_owned());
                    }
                }
                SubjectLink::Via(f) => match d.field(f) {
                    None => self.error("dangling-reference", format!("{at}.via"), format!("field `{f}` is not declared in dataset `{}`", d.id), "declare it under `fields:` with `references: <dataset.field>`".to_owned()),
                    Some(field) if field.references.is_none() => self.error(
                        "dangling-reference",
                        format!("{at}.via"),
                        format!("field `{f}` references nothing, so the subject cannot be reached through it"),
                        format!("add `references: <dataset.field>` to field `{f}`"),
                    ),
                    Some(_) => {}
                },
                SubjectLink::ReferencedBy(r) => self.field_ref(sys, r, format!("{at}.referenced_by")),
            }
        }
        // Retention.
        let source_retention = d
            .derived_from
            .as_ref()
            .and_then(|r| self.resolve_dataset(sys, r.system.as_ref(), &r.dataset))
            .is_some_and(|(_, src)| src.retention.is_some());
        let missing: Vec<&str> = d
            .fields
            .iter()
            .filter(|f| f.category.iter().any(DataCategory::is_personal))
            .filter(|f| d.effective_retention(f).is_none())
            .map(|f| f.name.as_str())
            .collect();
        if !missing.is_empty() && !source_retention {
            self.error(
                "missing-retention",
                path.to_owned(),
                format!("personal data without retention: {}", missing.join(", ")),
                "add `retention: { period: 3y, from_column: created_at }` (or `from_event: ...`) to the dataset or to each field (Art. 5(1)(e))".to_owned(),
            );
        }
        let mut columns: Vec<(String, &Retention)> = Vec::new();
        if let Some(r) = &d.retention {
            columns.push((format!("{path}.retention.from_column"), r));
        }
        for f in &d.fields {
            if let Some(r) = &f.retention {
                columns.push((format!("{path}.fields.{}.retention.from_column", f.name), r));
            }
        }
        for (p, r) in columns {
            if let RetentionStart::FromColumn(c) = &r.from {
                if d.field(c).is_none() {
                    self.warn(
                        "undeclared-column",
                        p,
                        format!("retention counts from column `{c}`, which is not declared in dataset `{}`", d.id),
                        format!("declare `{c}` under `fields:` (category `system.operations` if it is not personal)"),
                    );
                }
            }
        }
        if d.erasure.is_none()
            && d.fields
                .iter()
                .any(|f| f.erasure.is_none() && f.category.iter().any(DataCategory::is_personal))
            && d.derived_from.is_none()
        {
            self.warn(
                "missing-erasure",
                path.to_owned(),
                "no erasure strategy: erasure requests will delete the rows".into(),
                "say it explicitly with `erasure: delete`, or use `anonymize`/`retain` where rows must stay".to_owned(),
            );
        }
    }

    /// Follow each dataset's link to its subject; report loops once.
    fn cycles(&mut self) {
        type Key<'k> = (&'k str, &'k str);
        let mut next: HashMap<Key<'a>, Vec<Key<'a>>> = HashMap::new();
        for s in &self.map.systems {
            for d in &s.datasets {
                let mut targets: Vec<(Option<&SystemId>, &DatasetId)> = d
                    .subject
                    .iter()
                    .filter_map(|l| match l {
                        SubjectLink::Via(f) => d
                            .field(f)
                            .and_then(|f| f.references.as_ref())
                            .map(|r| (r.system.as_ref(), &r.dataset)),
                        SubjectLink::ReferencedBy(r) => Some((r.system.as_ref(), &r.dataset)),
                        SubjectLink::Identity(_) => None,
                    })
                    .collect();
                if d.subject.is_empty() && !d.fields.iter().any(|f| f.identity.is_some()) {
                    targets.extend(
                        d.derived_from
                            .as_ref()
                            .map(|r| (r.system.as_ref(), &r.dataset)),
                    );
                }
                for (sys, ds) in targets {
                    let sid = sys.map_or(s.id.as_str(), SystemId::as_str);
                    if self.datasets.contains_key(&(sid, ds.as_str())) {
                        next.entry((s.id.as_str(), d.id.as_str()))
                            .or_default()
                            .push((sid, ds.as_str()));
                    }
                }
            }
        }
        // Depth-first over every link: a dataset is found only after all
        // the datasets it links to, so any loop among them is refused.
        let mut reported: HashSet<Key<'a>> = HashSet::new();
        let mut done: HashSet<Key<'a>> = HashSet::new();
        let mut starts: Vec<Key<'a>> = next.keys().copied().collect();
        starts.sort_unstable();
        for start in starts {
            if done.contains(&start) {
                continue;
            }
            // The path from `start`, each entry with the index of its next
            // successor to visit.
            let mut stack: Vec<(Key<'a>, usize)> = vec![(start, 0)];
            while let Some(&mut (cur, ref mut i)) = stack.last_mut() {
                let succ = next.get(&cur).and_then(|v| v.get(*i)).copied();
                *i += 1;
                let Some(n) = succ else {
                    done.insert(cur);
                    stack.pop();
                    continue;
                };
                if done.contains(&n) {
                    continue;
                }
                if let Some(at) = stack.iter().position(|(k, _)| *k == n) {
                    let cycle: Vec<Key<'a>> = stack
                        .get(at..)
                        .map(|s| s.iter().map(|(k, _)| *k).collect())
                        .unwrap_or_default();
                    self.report_cycle(&cycle, &mut reported);
                    continue;
                }
                stack.push((n, 0));
            }
        }
    }

    fn report_cycle(
        &mut self,
        cycle: &[(&'a str, &'a str)],
        reported: &mut HashSet<(&'a str, &'a str)>,
    ) {
        let set: BTreeSet<(&str, &str)> = cycle.iter().copied().collect();
        if cycle.iter().any(|k| reported.contains(k)) {
            return;
        }
        reported.extend(set.iter().copied());
        let Some(&first) = set.iter().next() else {
            return;
        };
        // Report at the first dataset of the cycle in file order.
        let rot = cycle.iter().position(|k| *k == first).unwrap_or(0);
        let mut names: Vec<String> = cycle
            .iter()
            .cycle()
            .skip(rot)
            .take(cycle.len())
            .map(|(s, d)| format!("{s}.{d}"))
            .collect();
        names.push(format!("{}.{}", first.0, first.1));
        self.error(
            "reference-cycle",
            format!("systems.{}.datasets.{}.subject", first.0, first.1),
            format!("the way to the data subject loops: {}", names.join(" -> ")),
            "one dataset of the loop must identify the subject itself: give it `subject: { identity: <field> }`".to_owned(),
        );
    }
}
