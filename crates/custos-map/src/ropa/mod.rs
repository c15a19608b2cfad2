//! The record of processing activities (Art. 30 GDPR) generated from a map.
//!
//! [`build`] turns a [`DataMap`] into a [`Ropa`] value — one activity per
//! purpose with its subjects, data categories, recipients, transfers,
//! retention and security measures (Art. 30(1)), plus the processing done
//! for other controllers (Art. 30(2)). [`render`] prints it as HTML (a
//! self-contained page with an SVG data-flow diagram), CSV, JSON or
//! Markdown. Output depends only on the map and the [`Safeguards`] the
//! caller asserts: no clock, so it is reproducible.
//!
//! The security measures of an activity are the organisation's own
//! (`organisation.security_measures`), those of the systems holding its
//! data (`security`, prefixed with the system), and one sentence per
//! safeguard of custos the caller asserts — never a claim about custos
//! that the caller did not make.

mod safeguards;

pub use safeguards::Safeguards;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::str::FromStr;

use serde::Serialize;

use crate::model::*;
use crate::validate::in_eea;

/// Output format of the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RopaFormat {
    /// Self-contained printable page with a data-flow diagram.
    Html,
    /// One row per processing activity, RFC 4180.
    Csv,
    /// The [`Ropa`] value.
    Json,
    /// Markdown, for wikis and pull requests.
    Markdown,
}

impl RopaFormat {
    /// The HTTP `Content-Type` of the rendered text.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Html => "text/html; charset=utf-8",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
            Self::Markdown => "text/markdown; charset=utf-8",
        }
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Html => "html",
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Markdown => "md",
        }
    }
}

/// An unknown format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown record format {0:?}: use html, csv, json or md")]
pub struct UnknownFormat(pub String);

impl FromStr for RopaFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "html" => Ok(Self::Html),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            "md" | "markdown" => Ok(Self::Markdown),
            _ => Err(UnknownFormat(s.to_owned())),
        }
    }
}

/// The record of processing activities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ropa {
    /// Name and contact details of the controller, DPO and representative (Art. 30(1)(a)).
    pub controller: Organisation,
    /// Date of the map the record was made from.
    pub updated: Option<String>,
    /// Art. 30(1): one activity per purpose.
    pub activities: Vec<Activity>,
    /// Art. 30(2): processing carried out on behalf of other controllers.
    pub processor_activities: Vec<ProcessorActivity>,
    /// The edges of the data-flow diagram: system → processor.
    pub flows: Vec<Flow>,
}

/// One processing activity (a purpose) of the Art. 30(1) record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activity {
    /// Purpose id.
    pub id: String,
    /// Purpose title.
    pub name: String,
    /// Purpose description.
    pub description: Option<String>,
    /// Lawful basis, in words.
    pub legal_basis: String,
    /// Law, clause or balancing test relied on.
    pub basis_details: Option<String>,
    /// Art. 9(2) exception, in words.
    pub special_category: Option<String>,
    /// Categories of data subjects (Art. 30(1)(c)).
    pub data_subjects: Vec<String>,
    /// Categories of personal data (Art. 30(1)(c)).
    pub data_categories: Vec<String>,
    /// Where the data is stored (`system.dataset`).
    pub storage: Vec<String>,
    /// Recipients (Art. 30(1)(d)).
    pub recipients: Vec<Recipient>,
    /// Transfers to third countries and their safeguards (Art. 30(1)(e)).
    pub transfers: Vec<Transfer>,
    /// Time limits for erasure (Art. 30(1)(f)).
    pub retention: Vec<String>,
    /// What erasure does.
    pub erasure: Vec<String>,
    /// Technical and organisational measures (Art. 30(1)(g)).
    pub security_measures: Vec<String>,
}

/// A recipient of personal data.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Recipient {
    /// Name.
    pub name: String,
    /// Role key (processor, joint_controller, recipient).
    pub role: String,
    /// Country code.
    pub country: String,
}

/// A transfer outside the EEA.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Transfer {
    /// Who receives the data.
    pub recipient: String,
    /// Country code.
    pub country: String,
    /// The safeguard, in words.
    pub safeguard: String,
}

/// Processing for another controller (Art. 30(2)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessorActivity {
    /// The controller served.
    pub controller: String,
    /// Its contact.
    pub contact: String,
    /// Categories of processing (purpose titles).
    pub processing: Vec<String>,
    /// Transfers to third countries.
    pub transfers: Vec<Transfer>,
    /// Security measures.
    pub security_measures: Vec<String>,
}

/// An edge of the data-flow diagram.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Flow {
    /// System id.
    pub system: String,
    /// System kind key.
    pub kind: String,
    /// Processor name, or `None` when the system stays in house.
    pub processor: Option<String>,
}

fn sorted_unique<I: IntoIterator<Item = String>>(it: I) -> Vec<String> {
    it.into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn transfer_of(p: &Processor) -> Option<Transfer> {
    (!in_eea(&p.country)).then(|| Transfer {
        recipient: p.name.clone(),
        country: p.country.clone(),
        safeguard: p
            .transfer
            .map_or_else(|| "NONE DECLARED".to_owned(), |t| t.label().to_owned()),
    })
}

/// Build the record from a (validated) map; `safeguards` are the facts
/// about the running custos that the caller asserts (see [`Safeguards`]).
pub fn build(map: &DataMap, safeguards: Safeguards) -> Ropa {
    let activities = map
        .purposes
        .iter()
        .map(|p| activity(map, safeguards, p))
        .collect();
    let processor_activities = map
        .on_behalf_of
        .iter()
        .map(|c| {
            let purposes: Vec<&Purpose> =
                c.purposes.iter().filter_map(|id| map.purpose(id)).collect();
            let acts: Vec<Activity> = purposes
                .iter()
                .map(|p| activity(map, safeguards, p))
                .collect();
            ProcessorActivity {
                controller: c.name.clone(),
                contact: c.contact.clone(),
                processing: purposes.iter().map(|p| p.title.clone()).collect(),
                transfers: acts
                    .iter()
                    .flat_map(|a| a.transfers.clone())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                security_measures: sorted_unique(
                    acts.iter().flat_map(|a| a.security_measures.clone()),
                ),
            }
        })
        .collect();
    let flows = map
        .systems
        .iter()
        .map(|s| Flow {
            system: s.id.to_string(),
            kind: s.kind.key().to_owned(),
            processor: s
                .processor
                .as_ref()
                .and_then(|id| map.processor(id))
                .map(|p| p.name.clone()),
        })
        .collect();
    Ropa {
        controller: map.organisation.clone(),
        updated: map.updated.clone(),
        activities,
        processor_activities,
        flows,
    }
}

fn activity(map: &DataMap, safeguards: Safeguards, p: &Purpose) -> Activity {
    let mut categories = BTreeSet::new();
    let mut storage = BTreeSet::new();
    let mut retention = BTreeSet::new();
    let mut erasure = BTreeSet::new();
    let mut recipients: BTreeSet<Recipient> = BTreeSet::new();
    let mut transfers: BTreeSet<Transfer> = BTreeSet::new();
    let mut measures: BTreeSet<String> = safeguards.sentences().map(str::to_owned).collect();
    measures.extend(map.organisation.security_measures.iter().cloned());
    let add_processor = |pr: &Processor,
                         recipients: &mut BTreeSet<Recipient>,
                         transfers: &mut BTreeSet<Transfer>| {
        recipients.insert(Recipient {
            name: pr.name.clone(),
            role: pr.role.key().to_owned(),
            country: pr.country.clone(),
        });
        if let Some(t) = transfer_of(pr) {
            transfers.insert(t);
        }
    };
    for s in &map.systems {
        for d in &s.datasets {
            let mut used = false;
            for f in &d.fields {
                if !d.effective_purposes(f).contains(&p.id) {
                    continue;
                }
                let personal: Vec<&DataCategory> =
                    f.category.iter().filter(|c| c.is_personal()).collect();
                if personal.is_empty() {
                    continue;
                }
                used = true;
                categories.extend(personal.iter().map(|c| c.to_string()));
                let where_ = format!("{}.{}", s.id, d.id);
                match d.effective_retention(f) {
                    Some(r) if f.retention.is_some() => {
                        retention.insert(format!("{where_}.{}: {r}", f.name));
                    }
                    Some(r) => {
                        retention.insert(format!("{where_}: {r}"));
                    }
                    None => {
                        if let Some(src) = &d.derived_from {
                            retention.insert(format!("{where_}: with its source {src}"));
                        }
                    }
                }
                let e = d.effective_erasure(f);
                if f.erasure.is_some() {
                    erasure.insert(format!("{where_}.{}: {}", f.name, e.describe()));
                } else {
                    erasure.insert(format!("{where_}: {}", e.describe()));
                }
            }
            if used {
                storage.insert(format!(
                    "{}.{} ({} {})",
                    s.id,
                    d.id,
                    s.kind.key(),
                    d.location.value()
                ));
                if let Some(v) = safeguards
                    .vault_sentence()
                    .filter(|_| s.kind == SystemKind::Vault)
                {
                    measures.insert(v.to_owned());
                }
                measures.extend(s.security.iter().map(|m| format!("{}: {m}", s.id)));
                if let Some(pr) = s.processor.as_ref().and_then(|id| map.processor(id)) {
                    add_processor(pr, &mut recipients, &mut transfers);
                }
            }
        }
    }
    for pr in map
        .processors
        .iter()
        .filter(|pr| pr.purposes.contains(&p.id))
    {
        add_processor(pr, &mut recipients, &mut transfers);
        categories.extend(
            pr.categories
                .iter()
                .filter(|c| c.is_personal())
                .map(ToString::to_string),
        );
    }
    let basis_details = match (&p.basis_reference, &p.balancing_test) {
        (Some(r), Some(b)) => Some(format!("{r}; balancing test: {b}")),
        (Some(r), None) => Some(r.clone()),
        (None, Some(b)) => Some(format!("Balancing test: {b}")),
        (None, None) => None,
    };
    Activity {
        id: p.id.to_string(),
        name: p.title.clone(),
        description: p.description.clone(),
        legal_basis: p.legal_basis.label().to_owned(),
        basis_details,
        special_category: p.special_category.map(|s| s.label().to_owned()),
        data_subjects: p.subjects.clone(),
        data_categories: categories.into_iter().collect(),
        storage: storage.into_iter().collect(),
        recipients: recipients.into_iter().collect(),
        transfers: transfers.into_iter().collect(),
        retention: retention.into_iter().collect(),
        erasure: erasure.into_iter().collect(),
        security_measures: measures.into_iter().collect(),
    }
}

/// Render the record of `map` in `format`, stating the `safeguards` the
/// caller asserts about the running custos (see [`build`]).
pub fn render(map: &DataMap, safeguards: Safeguards, format: RopaFormat) -> String {
    let ropa = build(map, safeguards);
    match format {
        RopaFormat::Json => {
            let mut s = serde_json::to_string_pretty(&ropa).unwrap_or_default();
            s.push('\n');
            s
        }
        RopaFormat::Csv => csv(&ropa),
        RopaFormat::Markdown => markdown(&ropa),
        RopaFormat::Html => html(&ropa),
    }
}

fn recipients_text(a: &Activity) -> String {
    a.recipients
        .iter()
        .map(|r| format!("{} ({}, {})", r.name, r.role.replace('_', " "), r.country))
        .collect::<Vec<_>>()
        .join("; ")
}

fn transfers_text(t: &[Transfer]) -> String {
    if t.is_empty() {
        return "None".to_owned();
    }
    t.iter()
        .map(|t| format!("{} ({}): {}", t.recipient, t.country, t.safeguard))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A CSV writer of the record: RFC 4180 quoting and `\r\n` line ends.
fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new())
}

fn csv(r: &Ropa) -> String {
    // Writing to a Vec cannot fail (like the JSON form, an error would
    // leave the document empty); every cell is a String, so it is UTF-8.
    let bytes = csv_bytes(r).unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

fn csv_bytes(r: &Ropa) -> csv::Result<Vec<u8>> {
    let mut out = csv_writer();
    let header = [
        "record",
        "controller",
        "activity_id",
        "activity",
        "description",
        "legal_basis",
        "basis_details",
        "special_category",
        "data_subjects",
        "data_categories",
        "storage",
        "recipients",
        "third_country_transfers",
        "retention",
        "erasure",
        "security_measures",
    ];
    out.write_record(header)?;
    let row = |record: &str, controller: &str, a: &Activity| {
        [
            record.to_owned(),
            controller.to_owned(),
            a.id.clone(),
            a.name.clone(),
            a.description.clone().unwrap_or_default(),
            a.legal_basis.clone(),
            a.basis_details.clone().unwrap_or_default(),
            a.special_category.clone().unwrap_or_default(),
            a.data_subjects.join("; "),
            a.data_categories.join("; "),
            a.storage.join("; "),
            recipients_text(a),
            transfers_text(&a.transfers),
            a.retention.join("; "),
            a.erasure.join("; "),
            a.security_measures.join("; "),
        ]
    };
    for a in &r.activities {
        out.write_record(row("Art. 30(1)", &r.controller.controller, a))?;
    }
    for pa in &r.processor_activities {
        let a = Activity {
            id: String::new(),
            name: pa.processing.join("; "),
            description: None,
            legal_basis: String::new(),
            basis_details: None,
            special_category: None,
            data_subjects: Vec::new(),
            data_categories: Vec::new(),
            storage: Vec::new(),
            recipients: Vec::new(),
            transfers: pa.transfers.clone(),
            retention: Vec::new(),
            erasure: Vec::new(),
            security_measures: pa.security_measures.clone(),
        };
        out.write_record(row(
            "Art. 30(2)",
            &format!("{} ({})", pa.controller, pa.contact),
            &a,
        ))?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

fn contact_line(o: &Organisation) -> Vec<(String, String)> {
    let mut v = vec![("Controller".to_owned(), o.controller.clone())];
    if let Some(a) = &o.address {
        v.push(("Address".into(), a.clone()));
    }
    v.push(("Privacy contact".into(), o.contact.clone()));
    if let Some(d) = &o.dpo {
        v.push((
            "Data protection officer".into(),
            format!("{} ({})", d.name, d.contact),
        ));
    }
    if let Some(r) = &o.eu_representative {
        v.push((
            "EU representative".into(),
            format!("{} ({})", r.name, r.contact),
        ));
    }
    v
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn markdown(r: &Ropa) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Record of processing activities (Art. 30 GDPR)\n");
    if let Some(u) = &r.updated {
        let _ = writeln!(o, "Data map as of {u}.\n");
    }
    for (k, v) in contact_line(&r.controller) {
        let _ = writeln!(o, "- **{k}:** {}", md_escape(&v));
    }
    let _ = writeln!(o, "\n## Art. 30(1): processing as controller\n");
    for a in &r.activities {
        let _ = writeln!(o, "### {} (`{}`)\n", md_escape(&a.name), a.id);
        if let Some(d) = &a.description {
            let _ = writeln!(o, "{}\n", md_escape(d));
        }
        let _ = writeln!(o, "| | |\n|---|---|");
        for (k, v) in activity_rows(a) {
            let _ = writeln!(o, "| {k} | {} |", md_escape(&v));
        }
        o.push('\n');
    }
    let _ = writeln!(
        o,
        "## Art. 30(2): processing on behalf of other controllers\n"
    );
    if r.processor_activities.is_empty() {
        let _ = writeln!(
            o,
            "None: the data map declares no processing on behalf of other controllers.\n"
        );
    }
    for pa in &r.processor_activities {
        let _ = writeln!(o, "### {}\n", md_escape(&pa.controller));
        let _ = writeln!(o, "| | |\n|---|---|");
        let _ = writeln!(o, "| Contact | {} |", md_escape(&pa.contact));
        let _ = writeln!(
            o,
            "| Categories of processing | {} |",
            md_escape(&pa.processing.join("; "))
        );
        let _ = writeln!(
            o,
            "| Third-country transfers | {} |",
            md_escape(&transfers_text(&pa.transfers))
        );
        let _ = writeln!(
            o,
            "| Security measures | {} |\n",
            md_escape(&pa.security_measures.join("; "))
        );
    }
    let _ = writeln!(o, "## Data flows\n");
    for f in &r.flows {
        let _ = writeln!(
            o,
            "- {} ({}) → {}",
            f.system,
            f.kind,
            f.processor.as_deref().unwrap_or("in house")
        );
    }
    o
}

fn activity_rows(a: &Activity) -> Vec<(&'static str, String)> {
    let none = |v: &[String]| {
        if v.is_empty() {
            "None".to_owned()
        } else {
            v.join("; ")
        }
    };
    let mut rows = vec![("Legal basis", a.legal_basis.clone())];
    if let Some(d) = &a.basis_details {
        rows.push(("Basis details", d.clone()));
    }
    if let Some(s) = &a.special_category {
        rows.push(("Special categories (Art. 9)", s.clone()));
    }
    rows.extend([
        ("Data subjects", none(&a.data_subjects)),
        ("Personal data", none(&a.data_categories)),
        ("Stored in", none(&a.storage)),
        (
            "Recipients",
            if a.recipients.is_empty() {
                "None".to_owned()
            } else {
                recipients_text(a)
            },
        ),
        ("Third-country transfers", transfers_text(&a.transfers)),
        ("Retention", none(&a.retention)),
        ("Erasure", none(&a.erasure)),
        ("Security measures", none(&a.security_measures)),
    ]);
    rows
}

/// Escape text for HTML and SVG (see [`crate::html::escape`]).
pub use crate::html::escape;

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b;line-height:1.4}\
h1{font-size:1.6rem}h2{font-size:1.3rem;border-bottom:2px solid #333;padding-bottom:.2rem;margin-top:2rem}h3{font-size:1.1rem;margin-bottom:.3rem}\
table{border-collapse:collapse;width:100%;margin-bottom:1.5rem}th,td{border:1px solid #999;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}\
th{background:#eee;width:14rem}ul{margin:0;padding-left:1.1rem}.muted{color:#555}svg{max-width:100%;height:auto}\
section{break-inside:avoid}@media print{body{margin:0;max-width:none}h2{break-after:avoid}}";

fn list_html(v: &[String]) -> String {
    if v.is_empty() {
        return "None".to_owned();
    }
    if v.len() == 1 {
        return v.first().map(|s| escape(s)).unwrap_or_default();
    }
    let mut o = String::from("<ul>");
    for s in v {
        let _ = write!(o, "<li>{}</li>", escape(s));
    }
    o.push_str("</ul>");
    o
}

fn html(r: &Ropa) -> String {
    let mut o = String::new();
    let title = format!(
        "Record of processing activities: {}",
        r.controller.controller
    );
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        escape(&title)
    );
    let _ = writeln!(o, "<h1>Record of processing activities (Art. 30 GDPR)</h1>");
    if let Some(u) = &r.updated {
        let _ = writeln!(
            o,
            "<p class=\"muted\">Generated by custos from the data map as of {}.</p>",
            escape(u)
        );
    } else {
        let _ = writeln!(
            o,
            "<p class=\"muted\">Generated by custos from the data map.</p>"
        );
    }
    let _ = writeln!(o, "<table>");
    for (k, v) in contact_line(&r.controller) {
        let _ = writeln!(o, "<tr><th>{}</th><td>{}</td></tr>", escape(&k), escape(&v));
    }
    let _ = writeln!(o, "</table>");
    let _ = writeln!(o, "<h2>Data flows</h2>\n{}", svg(r));
    let _ = writeln!(o, "<h2>Art. 30(1): processing as controller</h2>");
    for a in &r.activities {
        let _ = writeln!(o, "<section id=\"activity-{}\">", escape(&a.id));
        let _ = writeln!(o, "<h3>{}</h3>", escape(&a.name));
        if let Some(d) = &a.description {
            let _ = writeln!(o, "<p>{}</p>", escape(d));
        }
        let _ = writeln!(o, "<table>");
        for (k, v) in activity_rows(a) {
            let cell = match k {
                "Data subjects" => list_html(&a.data_subjects),
                "Personal data" => list_html(&a.data_categories),
                "Stored in" => list_html(&a.storage),
                "Retention" => list_html(&a.retention),
                "Erasure" => list_html(&a.erasure),
                "Security measures" => list_html(&a.security_measures),
                "Recipients" => list_html(
                    &a.recipients
                        .iter()
                        .map(|r| {
                            format!("{} ({}, {})", r.name, r.role.replace('_', " "), r.country)
                        })
                        .collect::<Vec<_>>(),
                ),
                "Third-country transfers" => list_html(
                    &a.transfers
                        .iter()
                        .map(|t| format!("{} ({}): {}", t.recipient, t.country, t.safeguard))
                        .collect::<Vec<_>>(),
                ),
                _ => escape(&v),
            };
            let _ = writeln!(o, "<tr><th>{}</th><td>{cell}</td></tr>", escape(k));
        }
        let _ = writeln!(o, "</table>\n</section>");
    }
    let _ = writeln!(
        o,
        "<h2>Art. 30(2): processing on behalf of other controllers</h2>"
    );
    if r.processor_activities.is_empty() {
        let _ = writeln!(
            o,
            "<p>None: the data map declares no processing on behalf of other controllers.</p>"
        );
    }
    for pa in &r.processor_activities {
        let _ = writeln!(o, "<section>\n<h3>{}</h3>\n<table>", escape(&pa.controller));
        let _ = writeln!(
            o,
            "<tr><th>Contact</th><td>{}</td></tr>",
            escape(&pa.contact)
        );
        let _ = writeln!(
            o,
            "<tr><th>Categories of processing</th><td>{}</td></tr>",
            list_html(&pa.processing)
        );
        let _ = writeln!(
            o,
            "<tr><th>Third-country transfers</th><td>{}</td></tr>",
            escape(&transfers_text(&pa.transfers))
        );
        let _ = writeln!(
            o,
            "<tr><th>Security measures</th><td>{}</td></tr>",
            list_html(&pa.security_measures)
        );
        let _ = writeln!(o, "</table>\n</section>");
    }
    o.push_str("</body>\n</html>\n");
    o
}

/// The data-flow diagram: systems on the left, the controller's own
/// infrastructure and processors on the right, an arrow per flow.
fn svg(r: &Ropa) -> String {
    const ROW: usize = 44;
    const BOX_H: usize = 32;
    const LEFT_X: usize = 10;
    const RIGHT_X: usize = 430;
    const BOX_W: usize = 260;
    let targets: Vec<String> = {
        let set: BTreeSet<String> = r
            .flows
            .iter()
            .map(|f| {
                f.processor
                    .clone()
                    .unwrap_or_else(|| "In house (controller)".to_owned())
            })
            .collect();
        set.into_iter().collect()
    };
    let rows = r.flows.len().max(targets.len()).max(1);
    let height = rows * ROW + 20;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 700 {height}\" width=\"700\" height=\"{height}\" role=\"img\" aria-label=\"Data flows from systems to processors\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(o, "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>");
    let y_of = |i: usize| 10 + i * ROW;
    for (i, f) in r.flows.iter().enumerate() {
        let target = f
            .processor
            .clone()
            .unwrap_or_else(|| "In house (controller)".to_owned());
        let j = targets.iter().position(|t| *t == target).unwrap_or(0);
        let (y1, y2) = (y_of(i) + BOX_H / 2, y_of(j) + BOX_H / 2);
        let _ = writeln!(
            o,
            "<line x1=\"{}\" y1=\"{y1}\" x2=\"{RIGHT_X}\" y2=\"{y2}\" stroke=\"#555\" stroke-width=\"1.2\" marker-end=\"url(#arrow)\"/>",
            LEFT_X + BOX_W
        );
    }
    for (i, f) in r.flows.iter().enumerate() {
        let y = y_of(i);
        let _ = writeln!(
            o,
            "<g><rect x=\"{LEFT_X}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"4\" fill=\"#e8f0fe\" stroke=\"#3367d6\"/><text x=\"{}\" y=\"{}\">{} ({})</text></g>",
            LEFT_X + 8,
            y + 20,
            escape(&f.system),
            escape(&f.kind)
        );
    }
    for (j, t) in targets.iter().enumerate() {
        let y = y_of(j);
        let fill = if t.starts_with("In house") {
            "#eeeeee"
        } else {
            "#fef3e0"
        };
        let _ = writeln!(
            o,
            "<g><rect x=\"{RIGHT_X}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"4\" fill=\"{fill}\" stroke=\"#b26a00\"/><text x=\"{}\" y=\"{}\">{}</text></g>",
            RIGHT_X + 8,
            y + 20,
            escape(t)
        );
    }
    o.push_str("</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!("HTML".parse::<RopaFormat>(), Ok(RopaFormat::Html));
        assert_eq!("md".parse::<RopaFormat>(), Ok(RopaFormat::Markdown));
        assert!("pdf".parse::<RopaFormat>().is_err());
    }

    #[test]
    fn csv_quotes() {
        let mut w = csv_writer();
        w.write_record(["a,b", "say \"hi\"", "plain", "two\nlines"])
            .unwrap();
        assert_eq!(
            w.into_inner().unwrap(),
            b"\"a,b\",\"say \"\"hi\"\"\",plain,\"two\nlines\"\r\n"
        );
    }
}
