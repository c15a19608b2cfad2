//! The archive answering an access (Art. 15 GDPR) or portability (Art. 20)
//! request: one ZIP the person downloads.
//!
//! Layout:
//! * `index.html` — a plain-language page covering Art. 15(1)(a)–(h) and
//!   15(2) for every dataset that holds the person's data: what, where, why,
//!   how long, who receives it, the source, their rights and the absence of
//!   automated decisions, with links to the copies below;
//! * `manifest.json` — the machine-readable index (the portability format):
//!   request, datasets, counts, every entry with its SHA-256;
//! * `data/<system>/<dataset>.json` and `.csv` — the records;
//! * `files/<system>/<dataset>/<name>` — the files of file datasets.
//!
//! Invariants: every value (the person's and the map's) is HTML-escaped in
//! the page; CSV cells are RFC 4180-quoted and guarded against formula
//! injection; entry names never leave the archive root (no absolute paths,
//! `..` or backslashes) and never collide; the same input gives the same
//! bytes (fixed entry times and order), so archives can be snapshot-tested
//! and re-generated identically. Errors never carry personal values.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{Cursor, Write as _};

use custos_map::ropa::escape;
use custos_map::validate::in_eea;
use custos_map::{
    DataCategory, DataMap, Dataset, DurationUnit, ErasureStrategy, LegalBasis, Location, Processor,
    ProcessorRole, Purpose, PurposeId, Retention, RetentionStart, System, SystemId, SystemKind,
};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::{Export, ExportFile, Record};

/// Everything an archive is made of. The caller supplies the time so that
/// the same input always gives the same archive.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveInput<'a> {
    /// The data map: the source of every explanation in `index.html`.
    pub map: &'a DataMap,
    /// The request's id (e.g. `req_…`), printed on the page and manifest.
    pub request_id: &'a str,
    /// `access` (Art. 15) or `portability` (Art. 20); other values are
    /// printed as given.
    pub request_type: &'a str,
    /// When the archive was made, RFC 3339; also the entries' modification
    /// time (UTC; 1980-01-01 when it cannot be read).
    pub generated_at: &'a str,
    /// What each system's connector exported of the person.
    pub systems: &'a [(SystemId, Vec<Export>)],
    /// Steps not (yet) answered, e.g. processors that reply to the person
    /// themselves; listed on the page and in the manifest.
    pub pending: &'a [String],
    /// Upper bound of the total uncompressed size of all entries.
    pub max_bytes: u64,
}

/// Why an archive could not be made. Carries sizes and error kinds only,
/// never a value or file name of the person.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The entries together would exceed [`ArchiveInput::max_bytes`].
    #[error("the archive would exceed {limit} bytes uncompressed")]
    TooLarge {
        /// The limit that was exceeded.
        limit: u64,
    },
    /// Records could not be serialised to JSON.
    #[error("the records could not be serialised")]
    Serialize,
    /// The ZIP writer failed.
    #[error("the zip archive could not be written ({kind:?})")]
    Zip {
        /// The I/O error kind, when the failure was an I/O error.
        kind: Option<std::io::ErrorKind>,
    },
}

impl From<zip::result::ZipError> for ArchiveError {
    fn from(e: zip::result::ZipError) -> Self {
        // The error's text may name an entry, i.e. a file name of the person.
        let kind = match &e {
            zip::result::ZipError::Io(io) => Some(io.kind()),
            _ => None,
        };
        Self::Zip { kind }
    }
}

impl From<std::io::Error> for ArchiveError {
    fn from(e: std::io::Error) -> Self {
        Self::Zip {
            kind: Some(e.kind()),
        }
    }
}

const INDEX: &str = "index.html";
const MANIFEST: &str = "manifest.json";
/// Version of the manifest's shape.
const MANIFEST_FORMAT: &str = "custos-archive/1";

/// Builds the archive as ZIP bytes: `index.html`, `manifest.json`, the
/// records as JSON and CSV, and the files. Checks the uncompressed size
/// against `max_bytes` before compressing anything.
pub fn build_zip(input: &ArchiveInput<'_>) -> Result<Vec<u8>, ArchiveError> {
    let parts = layout(input);
    let mut budget = Budget {
        used: 0,
        limit: input.max_bytes,
    };
    // Files are only borrowed, so the cheapest check comes first.
    for p in &parts {
        for f in &p.files {
            budget.add(f.file.bytes.len())?;
        }
    }
    // The entries of each part, in the order they go into the zip.
    let mut per_part: Vec<Vec<Entry<'_>>> = Vec::with_capacity(parts.len());
    for p in &parts {
        let mut entries = Vec::new();
        if let Some(path) = &p.json_path {
            let mut json = serde_json::to_vec_pretty(&p.export.records)
                .map_err(|_| ArchiveError::Serialize)?;
            json.push(b'\n');
            budget.add(json.len())?;
            entries.push(Entry {
                path,
                kind: "records_json",
                bytes: Cow::Owned(json),
            });
        }
        if let Some(path) = &p.csv_path {
            let csv = records_csv(&p.export.records).into_bytes();
            budget.add(csv.len())?;
            entries.push(Entry {
                path,
                kind: "records_csv",
                bytes: Cow::Owned(csv),
            });
        }
        entries.extend(p.files.iter().map(|f| Entry {
            path: &f.path,
            kind: "file",
            bytes: Cow::Borrowed(f.file.bytes.as_slice()),
        }));
        per_part.push(entries);
    }
    let index = render_index(input, &parts).into_bytes();
    budget.add(index.len())?;
    let manifest = manifest(input, &parts, &per_part, &index)?;
    budget.add(manifest.len())?;

    let mut all: Vec<(&str, &[u8])> = vec![(INDEX, &index), (MANIFEST, &manifest)];
    all.extend(
        per_part
            .iter()
            .flatten()
            .map(|e| (e.path, e.bytes.as_ref())),
    );
    write_zip(&all, entry_time(input.generated_at))
}

/// One entry of the archive besides the index and manifest.
struct Entry<'a> {
    path: &'a str,
    /// `records_json`, `records_csv` or `file` (the manifest's `kind`).
    kind: &'static str,
    bytes: Cow<'a, [u8]>,
}

/// The plain-language page of the archive (also its `index.html`).
/// Every value is HTML-escaped; links point at the archive's entries.
pub fn index_html(input: &ArchiveInput<'_>) -> String {
    render_index(input, &layout(input))
}

struct Budget {
    used: u64,
    limit: u64,
}

impl Budget {
    fn add(&mut self, n: usize) -> Result<(), ArchiveError> {
        self.used = self
            .used
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        if self.used > self.limit {
            Err(ArchiveError::TooLarge { limit: self.limit })
        } else {
            Ok(())
        }
    }
}

// ---------------------------------------------------------------- layout

/// One exported dataset and where its copies go in the archive.
struct Part<'a> {
    system_id: &'a SystemId,
    system: Option<&'a System>,
    dataset: Option<&'a Dataset>,
    export: &'a Export,
    json_path: Option<String>,
    csv_path: Option<String>,
    files: Vec<PartFile<'a>>,
}

impl Part<'_> {
    fn is_empty(&self) -> bool {
        self.export.records.is_empty() && self.export.files.is_empty()
    }
}

struct PartFile<'a> {
    /// Entry name in the archive.
    path: String,
    /// The sanitised name relative to the dataset, shown to the person.
    name: String,
    file: &'a ExportFile,
}

/// Entry names already given out, compared case-insensitively so that an
/// archive unpacks on case-insensitive file systems too.
struct Names(BTreeSet<String>);

impl Names {
    fn claim(&mut self, wanted: String) -> String {
        if self.0.insert(wanted.to_lowercase()) {
            return wanted;
        }
        let (stem, ext) = split_ext(&wanted);
        let mut n: u64 = 2;
        loop {
            let candidate = format!("{stem}~{n}{ext}");
            if self.0.insert(candidate.to_lowercase()) {
                return candidate;
            }
            n = n.saturating_add(1);
        }
    }
}

/// `dir/name.ext` → (`dir/name`, `.ext`); a leading dot is not an extension.
fn split_ext(path: &str) -> (&str, &str) {
    let base_start = path.rfind('/').map_or(0, |i| i.saturating_add(1));
    match path.rfind('.') {
        Some(dot) if dot > base_start => (
            path.get(..dot).unwrap_or(path),
            path.get(dot..).unwrap_or(""),
        ),
        _ => (path, ""),
    }
}

/// The parts in map order (systems, then datasets as the map lists them;
/// anything the map does not know last, in input order), with unique entry
/// names. Files are ordered by name, so a directory listing's order does
/// not change the archive.
fn layout<'a>(input: &ArchiveInput<'a>) -> Vec<Part<'a>> {
    let mut parts: Vec<(usize, usize, Part<'a>)> = Vec::new();
    for (system_id, exports) in input.systems {
        let sys_pos = input.map.systems.iter().position(|s| &s.id == system_id);
        let system = sys_pos.and_then(|i| input.map.systems.get(i));
        for export in exports {
            let ds_pos =
                system.and_then(|s| s.datasets.iter().position(|d| d.id == export.dataset));
            let dataset = system.zip(ds_pos).and_then(|(s, i)| s.datasets.get(i));
            parts.push((
                sys_pos.unwrap_or(usize::MAX),
                ds_pos.unwrap_or(usize::MAX),
                Part {
                    system_id,
                    system,
                    dataset,
                    export,
                    json_path: None,
                    csv_path: None,
                    files: Vec::new(),
                },
            ));
        }
    }
    parts.sort_by_key(|(s, d, _)| (*s, *d));

    let mut names = Names(BTreeSet::new());
    names.claim(INDEX.to_owned());
    names.claim(MANIFEST.to_owned());
    let mut out = Vec::with_capacity(parts.len());
    for (_, _, mut p) in parts {
        let sys = id_segment(p.system_id.as_str());
        let ds = id_segment(p.export.dataset.as_str());
        if !p.export.records.is_empty() {
            p.json_path = Some(names.claim(format!("data/{sys}/{ds}.json")));
            p.csv_path = Some(names.claim(format!("data/{sys}/{ds}.csv")));
        }
        let mut files: Vec<(String, &ExportFile)> = p
            .export
            .files
            .iter()
            .map(|f| (sanitize_name(&f.name), f))
            .collect();
        // Stable: equal names keep their input order.
        files.sort_by(|a, b| a.0.cmp(&b.0));
        p.files = files
            .into_iter()
            .map(|(name, file)| {
                let path = names.claim(format!("files/{sys}/{ds}/{name}"));
                let name = path
                    .get(format!("files/{sys}/{ds}/").len()..)
                    .unwrap_or(&name)
                    .to_owned();
                PartFile { path, name, file }
            })
            .collect();
        out.push(p);
    }
    out
}

/// One path segment made safe for any unpacker: control characters and
/// characters Windows forbids become `_`; surrounding spaces and trailing
/// dots go (so `.` and `..` vanish). `None` when nothing is left.
fn clean_segment(s: &str) -> Option<String> {
    let replaced: String = s
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = replaced.trim().trim_end_matches(['.', ' ']);
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// A file name relative to its dataset, safe inside the archive: `/` and
/// `\` both separate segments, empty, `.` and `..` segments are dropped,
/// so the result is never absolute and never climbs out.
fn sanitize_name(name: &str) -> String {
    let segments: Vec<String> = name.split(['/', '\\']).filter_map(clean_segment).collect();
    if segments.is_empty() {
        "file".to_owned()
    } else {
        segments.join("/")
    }
}

/// A map id as one path segment.
fn id_segment(id: &str) -> String {
    clean_segment(&id.replace(['/', '\\'], "_")).unwrap_or_else(|| "_".to_owned())
}

// ---------------------------------------------------------------- CSV

/// Records as RFC 4180 CSV (CRLF line ends): the header is the union of
/// keys in first-seen order; nested values are compact JSON; strings that a
/// spreadsheet would run as a formula are prefixed with `'`.
fn records_csv(records: &[Record]) -> String {
    let mut keys: Vec<&str> = Vec::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for r in records {
        for k in r.keys() {
            if seen.insert(k.as_str()) {
                keys.push(k.as_str());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = keys.iter().map(|k| csv_quote(&formula_guard(k))).collect();
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for r in records {
        let row: Vec<String> = keys
            .iter()
            .map(|k| csv_quote(&r.get(*k).map(cell_text).unwrap_or_default()))
            .collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => formula_guard(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(_) | Value::Object(_) => v.to_string(),
    }
}

/// Prefixes `'` to text starting with `=`, `+`, `-`, `@` (and tab or CR,
/// which some spreadsheets skip before reading a formula).
fn formula_guard(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

fn csv_quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

// ---------------------------------------------------------------- manifest

#[derive(Serialize)]
struct Manifest<'a> {
    format: &'static str,
    request_id: &'a str,
    request_type: &'a str,
    generated_at: &'a str,
    controller: &'a str,
    index: ManifestEntry,
    datasets: Vec<ManifestDataset<'a>>,
    pending: &'a [String],
}

#[derive(Serialize)]
struct ManifestDataset<'a> {
    system: &'a str,
    dataset: &'a str,
    records: usize,
    files: usize,
    entries: Vec<ManifestEntry>,
}

#[derive(Serialize)]
struct ManifestEntry {
    path: String,
    /// `index`, `records_json`, `records_csv` or `file`.
    kind: &'static str,
    bytes: usize,
    sha256: String,
}

fn manifest_entry(path: &str, kind: &'static str, bytes: &[u8]) -> ManifestEntry {
    ManifestEntry {
        path: path.to_owned(),
        kind,
        bytes: bytes.len(),
        sha256: hex::encode(Sha256::digest(bytes)),
    }
}

fn manifest(
    input: &ArchiveInput<'_>,
    parts: &[Part<'_>],
    per_part: &[Vec<Entry<'_>>],
    index: &[u8],
) -> Result<Vec<u8>, ArchiveError> {
    let datasets = parts
        .iter()
        .zip(per_part)
        .map(|(p, entries)| ManifestDataset {
            system: p.system_id.as_str(),
            dataset: p.export.dataset.as_str(),
            records: p.export.records.len(),
            files: p.files.len(),
            entries: entries
                .iter()
                .map(|e| manifest_entry(e.path, e.kind, &e.bytes))
                .collect(),
        })
        .collect();
    let m = Manifest {
        format: MANIFEST_FORMAT,
        request_id: input.request_id,
        request_type: input.request_type,
        generated_at: input.generated_at,
        controller: &input.map.organisation.controller,
        index: manifest_entry(INDEX, "index", index),
        datasets,
        pending: input.pending,
    };
    let mut out = serde_json::to_vec_pretty(&m).map_err(|_| ArchiveError::Serialize)?;
    out.push(b'\n');
    Ok(out)
}

// ---------------------------------------------------------------- zip

/// The entries' modification time: `generated_at` in UTC, or 1980-01-01
/// when it cannot be read or DOS time cannot hold it.
fn entry_time(generated_at: &str) -> DateTime {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(generated_at, &Rfc3339)
        .ok()
        .map(|t| t.to_offset(time::UtcOffset::UTC))
        .and_then(|t| {
            DateTime::from_date_and_time(
                u16::try_from(t.year()).ok()?,
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
            )
            .ok()
        })
        .unwrap_or_default()
}

fn write_zip(entries: &[(&str, &[u8])], time: DateTime) -> Result<Vec<u8>, ArchiveError> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(time)
            .unix_permissions(0o644)
            .large_file(u32::try_from(bytes.len()).is_err());
        zip.start_file(*name, options)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}

// ---------------------------------------------------------------- words

/// Human wording of a data category for the person: common fideslang keys
/// in words, the key itself otherwise.
fn category_label(c: &DataCategory) -> String {
    let label = match c.as_str() {
        "user.contact.email" => "email address",
        "user.contact.phone_number" => "phone number",
        "user.contact.address" => "postal address",
        "user.contact.address.street" => "street and house number",
        "user.contact.address.postal_code" => "postal code",
        "user.contact.address.city" => "city",
        "user.contact.address.state" => "state or region",
        "user.contact.address.country" => "country",
        "user.contact.organization" => "organisation or company",
        "user.contact.url" => "website",
        "user.contact" => "contact details",
        "user.name" => "name",
        "user.name.first" => "first name",
        "user.name.last" => "last name",
        "user.unique_id" => "identifier (e.g. your user id)",
        "user.unique_id.pseudonymous" => "pseudonymous identifier",
        "user.job_title" => "job title",
        "user.workplace" => "workplace and employment details",
        "user.privacy_preferences" => "privacy choices (e.g. newsletter or cookie settings)",
        "user.financial" => "financial information (e.g. amounts paid)",
        "user.financial.credit_card" => "payment card details",
        "user.financial.bank_account" => "bank account details",
        "user.content" => "content you created",
        "user.content.public" => "content you published",
        "user.content.private" => "private messages and content",
        "user.content.self_image" => "pictures of you",
        "user.behavior" => "how you use our service",
        "user.behavior.browsing_history" => "pages you visited",
        "user.behavior.purchase_history" => "purchase history",
        "user.device" => "device information (e.g. browser)",
        "user.device.ip_address" => "IP address",
        "user.device.cookie_id" => "cookie identifier",
        "user.device.device_id" => "device identifier",
        "user.location" => "location",
        "user.account" => "account information",
        "user.authorization" => "login information",
        "user.authorization.credentials" => "login credentials",
        "user.authorization.password" => "password (stored hashed)",
        "user.demographic" => "demographic information",
        "user.demographic.date_of_birth" => "date of birth",
        "user.demographic.age_range" => "age range",
        "user.demographic.gender" => "gender",
        "user.government_id" => "government identification number",
        "user.health_and_medical" => "health information",
        "user.biometric" => "biometric data",
        _ => return c.as_str().to_owned(),
    };
    label.to_owned()
}

fn duration_words(r: &Retention) -> String {
    let n = r.period.amount();
    let unit = match (r.period.unit(), n) {
        (DurationUnit::Days, 1) => "day",
        (DurationUnit::Days, _) => "days",
        (DurationUnit::Weeks, 1) => "week",
        (DurationUnit::Weeks, _) => "weeks",
        (DurationUnit::Months, 1) => "month",
        (DurationUnit::Months, _) => "months",
        (DurationUnit::Years, 1) => "year",
        (DurationUnit::Years, _) => "years",
        _ => return r.period.to_string(),
    };
    format!("{n} {unit}")
}

fn retention_words(r: &Retention) -> String {
    let period = duration_words(r);
    match &r.from {
        RetentionStart::FromEvent(e) => format!("{period} after {}", e.replace('_', " ")),
        RetentionStart::FromColumn(c) => {
            format!("{period} from the {} date", c.replace('_', " "))
        }
        _ => period,
    }
}

fn basis_words(p: &Purpose) -> String {
    let mut s = match p.legal_basis {
        LegalBasis::Consent => {
            "your consent (Art. 6(1)(a) GDPR), which you can withdraw at any time".to_owned()
        }
        LegalBasis::Contract => {
            "necessary for our contract with you (Art. 6(1)(b) GDPR)".to_owned()
        }
        LegalBasis::LegalObligation => {
            "necessary to meet a legal obligation (Art. 6(1)(c) GDPR)".to_owned()
        }
        LegalBasis::VitalInterest => {
            "necessary to protect someone's vital interests (Art. 6(1)(d) GDPR)".to_owned()
        }
        LegalBasis::PublicTask => {
            "necessary for a task in the public interest (Art. 6(1)(e) GDPR)".to_owned()
        }
        LegalBasis::LegitimateInterest => "our legitimate interests (Art. 6(1)(f) GDPR)".to_owned(),
        other => other.label().to_owned(),
    };
    if let Some(r) = &p.basis_reference {
        let _ = write!(s, ": {r}");
    }
    if let Some(sc) = p.special_category {
        let _ = write!(s, "; for special categories of data: {}", sc.label());
    }
    if let Some(w) = p.consent.as_ref().and_then(|c| c.withdraw_via.as_ref()) {
        let _ = write!(s, " (to withdraw: {w})");
    }
    s
}

fn role_words(role: ProcessorRole) -> &'static str {
    match role {
        ProcessorRole::Processor => "processes it on our behalf",
        ProcessorRole::JointController => "decides on it jointly with us (joint controller)",
        ProcessorRole::Recipient => "receives it",
        _ => "receives it",
    }
}

fn transfer_words(p: &Processor) -> String {
    if in_eea(&p.country) {
        format!("{}, in the EEA", p.country)
    } else {
        match p.transfer {
            Some(t) => format!("{}, outside the EEA; safeguard: {}", p.country, t.label()),
            None => format!("{}, outside the EEA; no safeguard recorded", p.country),
        }
    }
}

fn system_kind_words(k: SystemKind) -> &'static str {
    match k {
        SystemKind::Vault => "our encrypted vault",
        SystemKind::Postgres | SystemKind::Mysql | SystemKind::Sqlite => "a database",
        SystemKind::Files => "file storage",
        SystemKind::Redis => "a cache",
        SystemKind::Http => "a service provider's system",
        SystemKind::Manual => "paper or offline records",
        _ => "a system",
    }
}

fn location_words(l: &Location) -> String {
    let v = l.value();
    match l {
        Location::Table(_) => format!("table {v}"),
        Location::Collection(_) => format!("collection {v}"),
        Location::Path(_) => format!("files at {v}"),
        Location::Key(_) => format!("entries {v}"),
        Location::Endpoint(_) => format!("records at {v}"),
        Location::Place(_) => format!("kept at: {v}"),
        _ => v.to_owned(),
    }
}

/// Percent-encodes a relative entry name for an `href` (then HTML-escaped
/// by the caller); `/` stays a separator.
fn href(path: &str) -> String {
    let mut o = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            o.push(char::from(b));
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

fn link(path: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", escape(&href(path)), escape(text))
}

fn ul(items: &[String]) -> String {
    let mut o = String::from("<ul>");
    for i in items {
        let _ = write!(o, "<li>{i}</li>");
    }
    o.push_str("</ul>");
    o
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

// ---------------------------------------------------------------- page

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b;line-height:1.45}\
h1{font-size:1.6rem}h2{font-size:1.3rem;border-bottom:2px solid #333;padding-bottom:.2rem;margin-top:2rem}h3{font-size:1.1rem;margin-bottom:.3rem}\
table{border-collapse:collapse;width:100%;margin-bottom:1.2rem}th,td{border:1px solid #999;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#eee;width:11rem}ul{margin:0;padding-left:1.1rem}.muted{color:#555}";

/// What the map says about one exported dataset, in words; every string
/// is already HTML.
struct Explained {
    what: String,
    where_: String,
    why: String,
    how_long: String,
    recipients: String,
    source: String,
}

fn explain(map: &DataMap, p: &Part<'_>) -> Explained {
    let system_text = match p.system {
        Some(sys) => format!(
            "{} — {}",
            escape(&upper_first(system_kind_words(sys.kind))),
            escape(trim_period(
                sys.description.as_deref().unwrap_or(sys.id.as_str())
            ))
        ),
        None => escape(p.system_id.as_str()),
    };
    let Some(d) = p.dataset else {
        let unknown = "Not described in our data map; please ask us.".to_owned();
        return Explained {
            what: "See the records.".to_owned(),
            where_: format!(
                "{system_text}, dataset {}",
                escape(p.export.dataset.as_str())
            ),
            why: unknown.clone(),
            how_long: unknown.clone(),
            recipients: unknown,
            source: "Collected from you or created by your use of our service.".to_owned(),
        };
    };
    let personal: Vec<_> = d
        .fields
        .iter()
        .filter(|f| f.category.iter().any(DataCategory::is_personal))
        .collect();

    // What: label → fields, in field order.
    let mut what: Vec<(String, bool, Vec<&str>)> = Vec::new();
    for f in &personal {
        for c in f.category.iter().filter(|c| c.is_personal()) {
            let label = category_label(c);
            match what.iter_mut().find(|(l, _, _)| *l == label) {
                Some((_, special, fields)) => {
                    *special |= c.is_special();
                    if !fields.contains(&f.name.as_str()) {
                        fields.push(&f.name);
                    }
                }
                None => what.push((label, c.is_special(), vec![&f.name])),
            }
        }
    }
    let what = if what.is_empty() {
        "No personal data is recorded for this dataset in our data map.".to_owned()
    } else {
        ul(&what
            .iter()
            .map(|(label, special, fields)| {
                let mut s = escape(label);
                if *special {
                    s.push_str(" <em>(special category of data, Art. 9 GDPR)</em>");
                }
                let cols: Vec<String> = fields
                    .iter()
                    .map(|f| format!("<code>{}</code>", escape(f)))
                    .collect();
                let _ = write!(s, " — {}", cols.join(", "));
                s
            })
            .collect::<Vec<_>>())
    };

    let where_ = match &d.description {
        Some(desc) => format!(
            "{system_text}; {} ({})",
            escape(trim_period(desc)),
            escape(&location_words(&d.location))
        ),
        None => format!("{system_text}; {}", escape(&location_words(&d.location))),
    };

    // Why: the purposes of the personal fields, in order.
    let mut purposes: Vec<&PurposeId> = Vec::new();
    for f in &personal {
        for id in d.effective_purposes(f) {
            if !purposes.contains(&id) {
                purposes.push(id);
            }
        }
    }
    if purposes.is_empty() {
        purposes.extend(d.purposes.iter());
    }
    let why = if purposes.is_empty() {
        "No purpose is recorded in our data map.".to_owned()
    } else {
        ul(&purposes
            .iter()
            .map(|id| match map.purpose(id) {
                Some(p) => {
                    let mut s = format!("<strong>{}</strong>", escape(&p.title));
                    if let Some(desc) = &p.description {
                        let _ = write!(s, ": {}", escape(desc));
                    }
                    let _ = write!(s, "<br>Legal basis: {}", escape(&basis_words(p)));
                    s
                }
                None => escape(id.as_str()),
            })
            .collect::<Vec<_>>())
    };

    // How long: distinct periods, with the fields they apply to when they differ.
    let mut periods: Vec<(String, Vec<&str>)> = Vec::new();
    let mut kept: Vec<String> = Vec::new();
    for f in &personal {
        let phrase = match d.effective_retention(f) {
            Some(r) => retention_words(r),
            None => match &d.derived_from {
                Some(src) => format!("deleted together with the data it is made from ({src})"),
                None => "no period is recorded in our data map".to_owned(),
            },
        };
        match periods.iter_mut().find(|(p, _)| *p == phrase) {
            Some((_, fields)) => fields.push(&f.name),
            None => periods.push((phrase, vec![&f.name])),
        }
        if let ErasureStrategy::Retain(spec) = d.effective_erasure(f) {
            let line = format!(
                "If you ask us to erase it, we must still keep it for {} ({}).",
                retention_words(&spec.retention),
                spec.ground
            );
            if !kept.contains(&line) {
                kept.push(line);
            }
        }
    }
    let mut how_long = match periods.as_slice() {
        [] => "No period is recorded in our data map.".to_owned(),
        [(phrase, _)] => escape(&upper_first(phrase)),
        many => ul(&many
            .iter()
            .map(|(phrase, fields)| {
                let cols: Vec<String> = fields
                    .iter()
                    .map(|f| format!("<code>{}</code>", escape(f)))
                    .collect();
                format!("{}: {}", cols.join(", "), escape(phrase))
            })
            .collect::<Vec<_>>()),
    };
    for k in &kept {
        let _ = write!(how_long, "<br>{}", escape(k));
    }

    // Who receives it: the system's operator, and recipients of its purposes.
    let mut recipients: Vec<(&Processor, Vec<String>)> = Vec::new();
    if let Some(pr) = p
        .system
        .and_then(|s| s.processor.as_ref())
        .and_then(|id| map.processor(id))
    {
        recipients.push((
            pr,
            vec!["hosts or runs the system it is stored in".to_owned()],
        ));
    }
    for pr in &map.processors {
        let titles: Vec<String> = purposes
            .iter()
            .filter(|id| pr.purposes.contains(id))
            .map(|id| map.purpose(id).map_or(id.to_string(), |p| p.title.clone()))
            .collect();
        if titles.is_empty() {
            continue;
        }
        let reason = format!("for: {}", titles.join(", "));
        match recipients.iter_mut().find(|(r, _)| r.id == pr.id) {
            Some((_, reasons)) => reasons.push(reason),
            None => recipients.push((pr, vec![reason])),
        }
    }
    let recipients = if recipients.is_empty() {
        "Nobody outside our organisation.".to_owned()
    } else {
        ul(&recipients
            .iter()
            .map(|(pr, reasons)| {
                format!(
                    "<strong>{}</strong> — {}; {} ({})",
                    escape(&pr.name),
                    escape(role_words(pr.role)),
                    escape(&reasons.join("; ")),
                    escape(&transfer_words(pr))
                )
            })
            .collect::<Vec<_>>())
    };

    let source = match &d.derived_from {
        Some(src) => format!(
            "Made by us from other data we hold about you ({}).",
            escape(&src.to_string())
        ),
        None => "Collected from you, or created by your use of our service; our data map records no other source.".to_owned(),
    };
    Explained {
        what,
        where_,
        why,
        how_long,
        recipients,
        source,
    }
}

fn trim_period(s: &str) -> &str {
    s.trim().trim_end_matches('.')
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn copy_cell(p: &Part<'_>) -> String {
    let mut lines = Vec::new();
    if let (Some(json), Some(csv)) = (&p.json_path, &p.csv_path) {
        lines.push(format!(
            "{}: {}, {}",
            plural(p.export.records.len(), "record", "records"),
            link(json, "JSON"),
            link(csv, "CSV (spreadsheet)")
        ));
    }
    if !p.files.is_empty() {
        let files: Vec<String> = p
            .files
            .iter()
            .map(|f| {
                format!(
                    "{} ({})",
                    link(&f.path, &f.name),
                    plural(f.file.bytes.len(), "byte", "bytes")
                )
            })
            .collect();
        lines.push(format!(
            "{}:{}",
            plural(p.files.len(), "file", "files"),
            ul(&files)
        ));
    }
    lines.join("<br>")
}

/// The dataset's description (else its id), with its system's.
fn dataset_title(p: &Part<'_>) -> String {
    let dataset = p
        .dataset
        .and_then(|d| d.description.as_deref())
        .unwrap_or(p.export.dataset.as_str());
    let system = p
        .system
        .and_then(|s| s.description.as_deref())
        .unwrap_or(p.system_id.as_str());
    format!(
        "{} <span class=\"muted\">({})</span>",
        escape(trim_period(dataset)),
        escape(trim_period(system))
    )
}

fn render_index(input: &ArchiveInput<'_>, parts: &[Part<'_>]) -> String {
    let map = input.map;
    let org = &map.organisation;
    let mut o = String::new();
    let right = match input.request_type {
        "access" => "right of access (Art. 15 GDPR)".to_owned(),
        "portability" => "right to data portability (Art. 20 GDPR)".to_owned(),
        other => format!("{other} request"),
    };
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src 'self'\">\n\
<meta name=\"referrer\" content=\"no-referrer\">\n\
<title>Your personal data at {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        escape(&org.controller)
    );
    let _ = writeln!(
        o,
        "<h1>Your personal data at {}</h1>",
        escape(&org.controller)
    );
    let _ = writeln!(
        o,
        "<p>This archive answers your request <code>{}</code> under the {}. It was generated on {}.</p>",
        escape(input.request_id),
        escape(&right),
        escape(input.generated_at)
    );
    let _ = writeln!(
        o,
        "<p>It holds a copy of the personal data we hold about you (Art. 15(3) GDPR): records in <code>data/</code> as JSON and CSV (readable by spreadsheets and other services), your files in <code>files/</code>, and <code>manifest.json</code>, a machine-readable list of every file with its SHA-256 checksum.</p>"
    );

    // Art. 15(1): who is responsible and how to reach them.
    let _ = writeln!(o, "<h2>Who is responsible</h2>\n<table>");
    let mut who = vec![("Controller", escape(&org.controller))];
    if let Some(a) = &org.address {
        who.push(("Address", escape(a)));
    }
    who.push(("Privacy contact", escape(&org.contact)));
    who.push((
        "Data protection officer",
        match &org.dpo {
            Some(d) => format!("{} ({})", escape(&d.name), escape(&d.contact)),
            None => "None designated; please write to the privacy contact.".to_owned(),
        },
    ));
    if let Some(r) = &org.eu_representative {
        who.push((
            "Representative in the EU",
            format!("{} ({})", escape(&r.name), escape(&r.contact)),
        ));
    }
    for (k, v) in who {
        let _ = writeln!(o, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    let _ = writeln!(o, "</table>");

    if !input.pending.is_empty() {
        let _ = writeln!(
            o,
            "<h2>Not yet included</h2>\n<p>These parts of your request are still being answered. Where a company replies to you directly, you will hear from it; otherwise we will send you the rest.</p>\n{}",
            ul(&input.pending.iter().map(|s| escape(s)).collect::<Vec<_>>())
        );
    }

    let _ = writeln!(o, "<h2>What we hold about you</h2>");
    let holding: Vec<&Part<'_>> = parts.iter().filter(|p| !p.is_empty()).collect();
    if holding.is_empty() {
        let _ = writeln!(o, "<p>We found no personal data about you.</p>");
    }
    for p in &holding {
        let e = explain(map, p);
        let _ = writeln!(o, "<section>\n<h3>{}</h3>\n<table>", dataset_title(p));
        for (k, v) in [
            ("What", &e.what),
            ("Where", &e.where_),
            ("Why", &e.why),
            ("How long", &e.how_long),
            ("Who receives it", &e.recipients),
            ("Source", &e.source),
            ("Your copy", &copy_cell(p)),
        ] {
            let _ = writeln!(o, "<tr><th>{k}</th><td>{v}</td></tr>");
        }
        let _ = writeln!(o, "</table>\n</section>");
    }
    let empty: Vec<String> = parts
        .iter()
        .filter(|p| p.is_empty())
        .map(|p| dataset_title(p))
        .collect();
    if !empty.is_empty() {
        let _ = writeln!(
            o,
            "<h2>Searched, nothing found</h2>\n<p>We also searched these places and found nothing about you:</p>\n{}",
            ul(&empty)
        );
    }

    let contact = match &org.dpo {
        Some(d) => format!(
            "{} or our data protection officer at {}",
            escape(&org.contact),
            escape(&d.contact)
        ),
        None => escape(&org.contact),
    };
    let _ = writeln!(
        o,
        "<h2>Your rights</h2>\n<ul>\n\
<li><strong>Rectification</strong> (Art. 16 GDPR): ask us to correct data that is wrong or to complete data that is incomplete.</li>\n\
<li><strong>Erasure</strong> (Art. 17 GDPR): ask us to delete your data; where the law requires us to keep some of it, “How long” above says so.</li>\n\
<li><strong>Restriction</strong> (Art. 18 GDPR): ask us to keep but no longer use your data, e.g. while its accuracy is checked.</li>\n\
<li><strong>Objection</strong> (Art. 21 GDPR): object to processing based on our legitimate interests or a public task, and at any time to direct marketing.</li>\n\
<li><strong>Data portability</strong> (Art. 20 GDPR): receive the data you gave us, based on consent or contract, in a machine-readable format (the JSON and CSV files of this archive) or have it sent to another company.</li>\n\
<li><strong>Withdrawing consent</strong> (Art. 7(3) GDPR): where we rely on your consent, you can withdraw it at any time; this does not affect what was done before.</li>\n\
<li><strong>Complaint</strong> (Art. 77 GDPR): lodge a complaint with a data protection supervisory authority, in particular in the EU member state where you live, work or where you think the infringement took place.</li>\n\
</ul>\n<p>To use these rights, write to {contact}. We answer within one month (Art. 12(3) GDPR).</p>"
    );
    let _ = writeln!(
        o,
        "<h2>Automated decision-making</h2>\n<p>None recorded: our data map records no automated decision-making, including profiling, that produces legal effects concerning you or similarly significantly affects you (Art. 22 GDPR).</p>"
    );
    o.push_str("</body>\n</html>\n");
    o
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use std::io::Read;

    use custos_map::DatasetId;
    use serde_json::json;

    use super::*;

    fn demo() -> DataMap {
        match custos_map::load_str(custos_map::DEMO_MAP, "demo-map.yaml") {
            Ok((map, _)) => map,
            Err(d) => panic!("demo map invalid: {d:?}"),
        }
    }

    fn rec(v: Value) -> Record {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn export(ds: &str, records: Vec<Record>, files: Vec<ExportFile>) -> Export {
        Export {
            dataset: DatasetId::from(ds),
            records,
            files,
        }
    }

    fn file(name: &str, bytes: &[u8]) -> ExportFile {
        ExportFile {
            name: name.to_owned(),
            bytes: bytes.to_vec(),
        }
    }

    fn sample() -> Vec<(SystemId, Vec<Export>)> {
        vec![
            (
                SystemId::from("uploads"),
                vec![export(
                    "avatars",
                    Vec::new(),
                    vec![file("42/me.png", b"\x89PNG fake")],
                )],
            ),
            (
                SystemId::from("app_db"),
                vec![
                    export(
                        "users",
                        vec![rec(json!({
                            "id": 42,
                            "display_name": "Erika Example",
                            "job_title": "Engineer",
                            "newsletter_opt_in": true,
                        }))],
                        Vec::new(),
                    ),
                    export(
                        "invoices",
                        vec![
                            rec(json!({"id": 1, "customer_id": 42, "amount_cents": 1200})),
                            rec(json!({"id": 2, "customer_id": 42, "amount_cents": 990})),
                        ],
                        Vec::new(),
                    ),
                ],
            ),
            (
                SystemId::from("sessions"),
                vec![export("sessions", Vec::new(), Vec::new())],
            ),
        ]
    }

    fn input<'a>(
        map: &'a DataMap,
        systems: &'a [(SystemId, Vec<Export>)],
        pending: &'a [String],
    ) -> ArchiveInput<'a> {
        ArchiveInput {
            map,
            request_id: "req_0001",
            request_type: "access",
            generated_at: "2025-03-01T12:30:00Z",
            systems,
            pending,
            max_bytes: 10 * 1024 * 1024,
        }
    }

    fn read_zip(bytes: &[u8]) -> zip::ZipArchive<Cursor<&[u8]>> {
        zip::ZipArchive::new(Cursor::new(bytes)).unwrap()
    }

    fn entry_text(z: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str) -> String {
        let mut s = String::new();
        z.by_name(name).unwrap().read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn round_trip() {
        let map = demo();
        let systems = sample();
        let pending = vec!["Zendesk, Inc.: answers you directly".to_owned()];
        let inp = input(&map, &systems, &pending);
        let bytes = build_zip(&inp).unwrap();
        let mut z = read_zip(&bytes);
        let names: Vec<String> = z.file_names().map(str::to_owned).collect();
        let mut expected = vec![
            "index.html",
            "manifest.json",
            "data/app_db/users.json",
            "data/app_db/users.csv",
            "data/app_db/invoices.json",
            "data/app_db/invoices.csv",
            "files/uploads/avatars/42/me.png",
        ];
        let mut got: Vec<&str> = names.iter().map(String::as_str).collect();
        got.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got, expected);
        // Entries are in a stable order: index, manifest, then map order.
        assert_eq!(z.name_for_index(0), Some("index.html"));
        assert_eq!(z.name_for_index(1), Some("manifest.json"));
        assert_eq!(z.name_for_index(2), Some("data/app_db/users.json"));

        for (sys, exports) in &systems {
            for e in exports {
                if e.records.is_empty() {
                    continue;
                }
                let base = format!("data/{}/{}", sys, e.dataset);
                let json: Value =
                    serde_json::from_str(&entry_text(&mut z, &format!("{base}.json"))).unwrap();
                let arr = json.as_array().unwrap();
                assert_eq!(arr.len(), e.records.len());
                assert_eq!(arr[0], Value::Object(e.records[0].clone()));
                let csv = entry_text(&mut z, &format!("{base}.csv"));
                // header + one line per record, CRLF-terminated
                assert_eq!(csv.split("\r\n").count() - 1, e.records.len() + 1);
            }
        }
        let mut png = Vec::new();
        z.by_name("files/uploads/avatars/42/me.png")
            .unwrap()
            .read_to_end(&mut png)
            .unwrap();
        assert_eq!(png, b"\x89PNG fake");

        let manifest: Value = serde_json::from_str(&entry_text(&mut z, "manifest.json")).unwrap();
        assert_eq!(manifest["request_id"], "req_0001");
        assert_eq!(manifest["request_type"], "access");
        assert_eq!(manifest["generated_at"], "2025-03-01T12:30:00Z");
        assert_eq!(
            manifest["pending"][0],
            "Zendesk, Inc.: answers you directly"
        );
        let datasets = manifest["datasets"].as_array().unwrap();
        assert_eq!(datasets.len(), 4);
        let invoices = datasets
            .iter()
            .find(|d| d["dataset"] == "invoices")
            .unwrap();
        assert_eq!(invoices["records"], 2);
        assert_eq!(invoices["files"], 0);
        let avatars = datasets.iter().find(|d| d["dataset"] == "avatars").unwrap();
        assert_eq!(avatars["files"], 1);
        assert_eq!(
            avatars["entries"][0]["sha256"],
            hex::encode(Sha256::digest(b"\x89PNG fake"))
        );
        // Every entry's checksum matches its bytes.
        for d in datasets {
            for e in d["entries"].as_array().unwrap() {
                let mut buf = Vec::new();
                z.by_name(e["path"].as_str().unwrap())
                    .unwrap()
                    .read_to_end(&mut buf)
                    .unwrap();
                assert_eq!(e["sha256"], hex::encode(Sha256::digest(&buf)));
                assert_eq!(e["bytes"], buf.len());
            }
        }
        let index = entry_text(&mut z, "index.html");
        assert_eq!(index, index_html(&inp));
        assert!(index.contains("href=\"data/app_db/users.csv\""));
        assert!(index.contains("href=\"files/uploads/avatars/42/me.png\""));

        // Entry times come from generated_at.
        let t = z.by_index(0).unwrap().last_modified().unwrap();
        assert_eq!(
            (t.year(), t.month(), t.day(), t.hour(), t.minute()),
            (2025, 3, 1, 12, 30)
        );
    }

    #[test]
    fn deterministic() {
        let map = demo();
        let systems = sample();
        let inp = input(&map, &systems, &[]);
        assert_eq!(build_zip(&inp).unwrap(), build_zip(&inp).unwrap());
    }

    #[test]
    fn too_large() {
        let map = demo();
        let systems = sample();
        let mut inp = input(&map, &systems, &[]);
        inp.max_bytes = 100;
        let err = build_zip(&inp).unwrap_err();
        assert!(matches!(err, ArchiveError::TooLarge { limit: 100 }));
        assert_eq!(
            err.to_string(),
            "the archive would exceed 100 bytes uncompressed"
        );
        inp.max_bytes = 5; // smaller than the file alone
        assert!(matches!(
            build_zip(&inp),
            Err(ArchiveError::TooLarge { limit: 5 })
        ));
    }

    #[test]
    fn html_escapes_values() {
        let mut map = demo();
        map.organisation.controller = "Acme <script>alert(1)</script>".to_owned();
        map.systems[0].description = Some("Vault \"<script>\" & co".to_owned());
        let systems = vec![
            (
                SystemId::from("uploads"),
                vec![export(
                    "avatars",
                    Vec::new(),
                    vec![file("a&b'c <script>.png", b"x")],
                )],
            ),
            (
                SystemId::from("vault"),
                vec![export(
                    "profiles",
                    vec![rec(json!({"full_name": "<script>alert(2)</script>"}))],
                    Vec::new(),
                )],
            ),
        ];
        let pending = vec!["<script>pending</script>".to_owned()];
        let mut inp = input(&map, &systems, &pending);
        inp.request_id = "req_<script>";
        let html = index_html(&inp);
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("Acme &lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("Vault &quot;&lt;script&gt;&quot; &amp; co"));
        assert!(html.contains("&lt;script&gt;pending&lt;/script&gt;"));
        assert!(html.contains("req_&lt;script&gt;"));
        // The link target is percent-encoded, the text escaped; `<` and `>`
        // never reach an entry name.
        assert!(html.contains(
            "<a href=\"files/uploads/avatars/a%26b%27c%20_script_.png\">a&amp;b&#39;c _script_.png</a>"
        ), "{html}");
        // The person's values are in the data files only, never on the page.
        assert!(!html.contains("alert(2)"));
    }

    #[test]
    fn csv_quoting_and_formula_guard() {
        let records = vec![
            rec(json!({
                "a": "plain",
                "b": "with, comma",
                "c": "say \"hi\"",
                "d": "line\nbreak",
            })),
            rec(json!({
                "a": "=1+1",
                "b": "+SUM(A1)",
                "c": "-2",
                "d": "@cmd",
                "e": {"nested": [1, "x"]},
                "f": null,
                "g": -5,
                "h": true,
            })),
        ];
        let csv = records_csv(&records);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], "a,b,c,d,e,f,g,h");
        assert_eq!(
            lines[1],
            "plain,\"with, comma\",\"say \"\"hi\"\"\",\"line\nbreak\",,,,"
        );
        assert_eq!(
            lines[2],
            "'=1+1,'+SUM(A1),'-2,'@cmd,\"{\"\"nested\"\":[1,\"\"x\"\"]}\",,-5,true"
        );
        assert_eq!(lines[3], "");
        assert_eq!(lines.len(), 4);
        assert_eq!(formula_guard("\tx"), "'\tx");
        assert_eq!(formula_guard("a=b"), "a=b");
    }

    #[test]
    fn csv_header_is_union_in_first_seen_order() {
        let records = vec![rec(json!({"x": 1})), rec(json!({"y": 2, "x": 3}))];
        let csv = records_csv(&records);
        assert_eq!(csv, "x,y\r\n1,\r\n3,2\r\n");
    }

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize_name("../../x"), "x");
        assert_eq!(sanitize_name("/etc/passwd"), "etc/passwd");
        assert_eq!(
            sanitize_name("..\\..\\windows\\system.ini"),
            "windows/system.ini"
        );
        assert_eq!(sanitize_name("a/./b//c/.."), "a/b/c");
        assert_eq!(sanitize_name("C:\\boot.ini"), "C_/boot.ini");
        assert_eq!(sanitize_name("..."), "file");
        assert_eq!(sanitize_name(""), "file");
        assert_eq!(sanitize_name("na\u{0}me\n.txt"), "na_me_.txt");
        assert_eq!(sanitize_name(".hidden"), ".hidden");
        assert_eq!(id_segment(".."), "_");
        assert_eq!(id_segment("a/b"), "a_b");
    }

    #[test]
    fn hostile_file_names_stay_inside_and_unique() {
        let map = demo();
        let systems = vec![(
            SystemId::from("uploads"),
            vec![export(
                "avatars",
                Vec::new(),
                vec![
                    file("../../x", b"1"),
                    file("/etc/passwd", b"2"),
                    file("x", b"3"),
                    file("X", b"4"),
                    file("..\\..\\evil.txt", b"5"),
                ],
            )],
        )];
        let inp = input(&map, &systems, &[]);
        let bytes = build_zip(&inp).unwrap();
        let z = read_zip(&bytes);
        let mut names: Vec<&str> = z.file_names().collect();
        names.sort_unstable();
        assert_eq!(
            names,
            vec![
                "files/uploads/avatars/X",
                "files/uploads/avatars/etc/passwd",
                "files/uploads/avatars/evil.txt",
                "files/uploads/avatars/x~2",
                "files/uploads/avatars/x~3",
                "index.html",
                "manifest.json",
            ]
        );
        for n in names {
            assert!(!n.starts_with('/') && !n.contains("..") && !n.contains('\\'));
        }
    }

    #[test]
    fn split_ext_cases() {
        assert_eq!(split_ext("a/b.txt"), ("a/b", ".txt"));
        assert_eq!(split_ext("a.d/b"), ("a.d/b", ""));
        assert_eq!(split_ext("a/.env"), ("a/.env", ""));
        let mut n = Names(BTreeSet::new());
        assert_eq!(n.claim("a/b.txt".into()), "a/b.txt");
        assert_eq!(n.claim("a/B.txt".into()), "a/B~2.txt");
        assert_eq!(n.claim("a/b.txt".into()), "a/b~3.txt");
    }

    #[test]
    fn unknown_dataset_is_still_exported() {
        let map = demo();
        let systems = vec![(
            SystemId::from("nowhere"),
            vec![export("things", vec![rec(json!({"k": "v"}))], Vec::new())],
        )];
        let inp = input(&map, &systems, &[]);
        let bytes = build_zip(&inp).unwrap();
        let mut z = read_zip(&bytes);
        assert_eq!(entry_text(&mut z, "data/nowhere/things.csv"), "k\r\nv\r\n");
        assert!(index_html(&inp).contains("Not described in our data map"));
    }

    #[test]
    fn entry_time_falls_back() {
        assert_eq!(entry_time("not a time"), DateTime::default());
        assert_eq!(entry_time("1970-01-01T00:00:00Z"), DateTime::default());
        let t = entry_time("2025-03-01T23:30:00-02:00");
        assert_eq!((t.year(), t.month(), t.day(), t.hour()), (2025, 3, 2, 1));
    }

    #[test]
    fn index_snapshot() {
        let map = demo();
        let systems = sample();
        let pending = vec!["Zendesk, Inc. (processor notice): answers you directly".to_owned()];
        let inp = input(&map, &systems, &pending);
        insta::assert_snapshot!(index_html(&inp));
    }
}
