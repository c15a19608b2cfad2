//! Where each exported dataset goes in the archive: the parts in map
//! order and their entry names (`data/<system>/<dataset>.json|csv`,
//! `files/<system>/<dataset>/<name>`).
//!
//! Invariants: entry names never leave the archive root (no absolute path,
//! `..`, backslash, control or Windows-reserved character) and never
//! collide, compared case-insensitively (a clash gets `~2`, `~3` …); the
//! order depends on the map and the names only, never on the order a
//! directory was listed in.

use std::collections::BTreeSet;

use custos_map::{Dataset, System, SystemId};

use super::{ArchiveInput, INDEX, MANIFEST};
use crate::{Export, ExportFile};

/// One exported dataset and where its copies go in the archive.
pub(super) struct Part<'a> {
    pub(super) system_id: &'a SystemId,
    pub(super) system: Option<&'a System>,
    pub(super) dataset: Option<&'a Dataset>,
    pub(super) export: &'a Export,
    pub(super) json_path: Option<String>,
    pub(super) csv_path: Option<String>,
    pub(super) files: Vec<PartFile<'a>>,
}

impl Part<'_> {
    pub(super) fn is_empty(&self) -> bool {
        self.export.records.is_empty() && self.export.files.is_empty()
    }
}

pub(super) struct PartFile<'a> {
    /// Entry name in the archive.
    pub(super) path: String,
    /// The sanitised name relative to the dataset, shown to the person.
    pub(super) name: String,
    pub(super) file: &'a ExportFile,
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
pub(super) fn layout<'a>(input: &ArchiveInput<'a>) -> Vec<Part<'a>> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn split_ext_cases() {
        assert_eq!(split_ext("a/b.txt"), ("a/b", ".txt"));
        assert_eq!(split_ext("a.d/b"), ("a.d/b", ""));
        assert_eq!(split_ext("a/.env"), ("a/.env", ""));
        let mut n = Names(BTreeSet::new());
        assert_eq!(n.claim("a/b.txt".into()), "a/b.txt");
        assert_eq!(n.claim("a/B.txt".into()), "a/B~2.txt");
        assert_eq!(n.claim("a/b.txt".into()), "a/b~3.txt");
    }
}
