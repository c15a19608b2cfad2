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
//!
//! The code: `layout` gives every part its entry names, `records` writes
//! the JSON and CSV copies, `html` (with `words`) the page, `manifest` the
//! index; this module checks the size budget and writes the ZIP.

mod html;
mod layout;
mod manifest;
mod records;
mod words;

use std::borrow::Cow;
use std::io::{Cursor, Write as _};

use custos_map::{DataMap, SystemId};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::Export;
use html::render_index;
use layout::layout;
use manifest::manifest;
use records::{records_csv, records_json};

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
    /// Records could not be serialised to JSON or CSV.
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
            let json = records_json(&p.export.records)?;
            budget.add(json.len())?;
            entries.push(Entry {
                path,
                kind: "records_json",
                bytes: Cow::Owned(json),
            });
        }
        if let Some(path) = &p.csv_path {
            let csv = records_csv(&p.export.records)?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use std::io::Read;

    use custos_map::DatasetId;
    use serde_json::{json, Value};
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::{ExportFile, Record};

    fn demo() -> DataMap {
        match custos_map::load_str(custos_map::DEMO_MAP, "demo-map.yaml") {
            Ok((map, _)) => map,
            Err(d) => panic!("demo map invalid: {d:?}"),
        }
    }

    pub(super) fn rec(v: Value) -> Record {
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
