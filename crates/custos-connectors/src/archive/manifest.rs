//! `manifest.json`: the machine-readable index of the archive — the
//! request, every dataset with its counts, and every entry with its size
//! and SHA-256, so the person (or the service they move to) can check that
//! nothing is missing or altered.
//!
//! Invariants: it lists every entry written but itself, in the order they
//! are written, with digests of the very bytes written; it names datasets
//! and entries, never a value of the records; its shape is versioned
//! (`format`).

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::layout::Part;
use super::{ArchiveError, ArchiveInput, Entry, INDEX};

/// Version of the manifest's shape.
const MANIFEST_FORMAT: &str = "custos-archive/1";

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

pub(super) fn manifest(
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
