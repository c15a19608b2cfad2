//! File trees (`kind: files`): a local directory whose datasets are path
//! templates such as `avatars/{user_id}/*` or `exports/{subject_id}.json`.
//!
//! How a template is read:
//! * it is relative, split on `/`; no segment may be empty, `.` or `..`;
//! * `{kind}` is replaced by each known value of the person for that
//!   identity kind (`subject_id`, `user_id`, `email`, `phone`, `token`, and
//!   the aliases `subject` = `subject_id`, `external_id` = `user_id`), every
//!   combination of values being tried;
//! * `*` and `?` in the template are wildcards within one segment (they never
//!   cross a `/`); they also match names starting with `.`, so that an
//!   erasure leaves no hidden file of the person behind;
//! * a template must name the person at least once: one without a
//!   placeholder would match everybody's files and is refused at connect.
//!
//! Path safety (the values are untrusted — they come from the person):
//! * a value containing `/`, `\` or NUL, or starting with `.` (so `.` and
//!   `..`) is never used: it matches nothing, which is not an error;
//! * values are matched literally, so `*` or `?` in a value match only a
//!   name containing that very character;
//! * the root is canonicalised once; every directory descended into and
//!   every match is canonicalised and refused unless it lies inside the
//!   root, so a symlink leading out of the root is neither read nor
//!   deleted. Symlinked directories are not followed below a matched
//!   directory (no loops).
//!
//! Erasure: `delete` unlinks the files and then removes directories left
//! empty below the template's literal prefix (never the prefix itself, never
//! the root); `retain` keeps them and counts them as retained with the
//! map's ground. `anonymize` and `shred` cannot be done to a file and are
//! refused at connect. A dataset `derived_from` another of the same system
//! (thumbnails of avatars) is erased in the same step, *before* its source,
//! so a crash midway never leaves a derived file whose source is gone; its
//! own pattern is swept once more after the source is gone, in case the
//! application regenerated a derivative in between. Both runs are
//! idempotent: a second erasure finds nothing and reports zeros.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use custos_map::{DatasetId, IdentityKind, Location, System, SystemId, SystemKind};
use serde_json::Value;

use crate::template::{mismatch, tokenize, Piece, Strategy};
use crate::{
    Connector, ConnectorError, DatasetOutcome, Export, ExportFile, FieldChange, Person, Record,
};

/// The connector of a `kind: files` system: a directory tree on a local
/// (or mounted) file system, rooted at the directory named by the
/// environment variable of `connection.root_env`.
///
/// Cheap to clone; the filesystem work runs on tokio's blocking pool.
#[derive(Clone)]
pub struct FileConnector {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FileConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileConnector")
            .field("system", &self.inner.system)
            .field("datasets", &self.inner.datasets.len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    system: SystemId,
    /// Canonical root directory.
    root: PathBuf,
    /// Datasets in map order.
    datasets: Vec<FileDataset>,
    /// Indices into `datasets`: derived datasets before their sources.
    erase_order: Vec<usize>,
}

struct FileDataset {
    id: DatasetId,
    template: String,
    segments: Vec<Vec<Piece>>,
    /// Number of leading segments without placeholder or wildcard.
    literal_prefix: usize,
    strategy: Strategy,
    /// Whether it is derived from another dataset of this system.
    derived: bool,
}

/// A token of a segment once the placeholders are filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pat {
    Char(char),
    Star,
    One,
}

/// Whether a value of the person may stand in a path segment: it may not
/// leave its segment (`/`, `\`), end a C string early (NUL), or name the
/// directory itself, its parent or a hidden entry (`.`, `..`, `.x`).
fn safe_value(v: &str) -> bool {
    !v.is_empty() && !v.starts_with('.') && !v.contains(['/', '\\', '\0'])
}

fn parse_template(
    system: &SystemId,
    ds: &DatasetId,
    template: &str,
) -> Result<Vec<Vec<Piece>>, ConnectorError> {
    if template.starts_with('/') || template.contains(['\\', '\0']) {
        return Err(mismatch(
            system,
            format!(
                "dataset {ds}: path template {template:?} must be relative, with `/` separators"
            ),
        ));
    }
    let mut segments = Vec::new();
    for seg in template.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(mismatch(
                system,
                format!(
                    "dataset {ds}: path template {template:?} has an empty, `.` or `..` segment"
                ),
            ));
        }
        segments.push(tokenize(system, ds, "path template", seg, true)?);
    }
    if !segments
        .iter()
        .flatten()
        .any(|t| matches!(t, Piece::Placeholder(_)))
    {
        return Err(mismatch(
            system,
            format!(
                "dataset {ds}: path template {template:?} names no identity placeholder; \
                 it would match everybody's files"
            ),
        ));
    }
    Ok(segments)
}

/// A file of the person found under a dataset's template.
struct Found {
    /// The path as walked (under the canonical root; may be a symlink
    /// whose target is inside the root).
    path: PathBuf,
    /// Relative to the root, `/`-separated.
    rel: String,
}

/// What a walk of one dataset found.
#[derive(Default)]
struct Walk {
    files: BTreeMap<PathBuf, Found>,
    /// Directories named by the person (a placeholder segment, or below a
    /// matched directory): removed when empty after an erasure.
    person_dirs: BTreeSet<PathBuf>,
}

impl FileConnector {
    /// Configures the connector of `system` from the environment (`env`
    /// looks up a variable, e.g. `|k| std::env::var(k).ok()`).
    ///
    /// Fails when `connection.root_env` is missing or unset (`Config`), the
    /// root is not a reachable directory (`Unavailable`), or a dataset of the
    /// map cannot be honoured on files (`Mismatch`: not a `path:`, a template
    /// without placeholder or with `..`, an `anonymize` or `shred` erasure).
    /// Only datasets holding personal data, or derived from another, take
    /// part.
    pub fn connect(
        system: &System,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConnectorError> {
        Self::connect_for_tenant(system, env, None)
    }

    /// [`Self::connect`] for a request whose tenant's value (the system's
    /// `tenant_values`) stands for `{tenant}` in the path templates: a
    /// tree shared by tenants, each under its own part.
    pub fn connect_for_tenant(
        system: &System,
        env: &dyn Fn(&str) -> Option<String>,
        tenant: Option<&str>,
    ) -> Result<Self, ConnectorError> {
        let sid = &system.id;
        let (root_raw, var) = crate::kind_and_setting(system, SystemKind::Files, "root_env", env)?;
        // A root that does not exist or may not be read is a setting to
        // fix (permanent); anything else may pass (an unmounted share).
        let root = std::fs::canonicalize(&root_raw).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ConnectorError::Config {
                system: sid.clone(),
                message: format!("root directory (from {var}) does not exist"),
            },
            io::ErrorKind::PermissionDenied => ConnectorError::Refused {
                system: sid.clone(),
                message: format!("root directory (from {var}): permission denied"),
            },
            kind => ConnectorError::Unavailable {
                system: sid.clone(),
                message: format!("root directory (from {var}) is not reachable: {kind}"),
            },
        })?;
        if !root.is_dir() {
            return Err(ConnectorError::Config {
                system: sid.clone(),
                message: format!("root (from {var}) is not a directory"),
            });
        }
        let mut datasets = Vec::new();
        for ds in &system.datasets {
            if !ds.holds_personal_data() && ds.derived_from.is_none() {
                continue;
            }
            let Location::Path(template) = &ds.location else {
                return Err(mismatch(
                    sid,
                    format!(
                        "dataset {}: a files system needs `path:`, found `{}:`",
                        ds.id,
                        ds.location.key()
                    ),
                ));
            };
            let segments = parse_template(
                sid,
                &ds.id,
                &crate::template::with_tenant(sid, &ds.id, template, tenant)?,
            )?;
            let literal_prefix = segments
                .iter()
                .take_while(|s| s.iter().all(|t| matches!(t, Piece::Lit(_))))
                .count();
            let source = ds
                .derived_from
                .as_ref()
                .filter(|r| r.system.as_ref().is_none_or(|s| s == sid))
                .and_then(|r| system.datasets.iter().find(|d| d.id == r.dataset));
            let strategy = Strategy::of(sid, ds, source.and_then(|s| s.erasure.as_ref()), "files")?;
            datasets.push(FileDataset {
                id: ds.id.clone(),
                template: template.clone(),
                segments,
                literal_prefix,
                strategy,
                derived: source.is_some(),
            });
        }
        // Depth in the derivation chain within this system: deeper first.
        let depth = |id: &DatasetId| -> usize {
            let mut d = 0;
            let mut cur = system.datasets.iter().find(|x| &x.id == id);
            while let Some(ds) = cur {
                let next = ds
                    .derived_from
                    .as_ref()
                    .filter(|r| r.system.as_ref().is_none_or(|s| s == sid))
                    .and_then(|r| system.datasets.iter().find(|x| x.id == r.dataset));
                if next.is_none() || d > system.datasets.len() {
                    break;
                }
                d += 1;
                cur = next;
            }
            d
        };
        let mut erase_order: Vec<usize> = (0..datasets.len()).collect();
        let depths: Vec<usize> = datasets.iter().map(|d| depth(&d.id)).collect();
        erase_order.sort_by_key(|i| std::cmp::Reverse(depths.get(*i).copied().unwrap_or(0)));
        Ok(Self {
            inner: Arc::new(Inner {
                system: sid.clone(),
                root,
                datasets,
                erase_order,
            }),
        })
    }

    /// The canonical root directory every match must lie in.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    async fn blocking<T: Send + 'static>(
        &self,
        person: &Person,
        f: impl FnOnce(&Inner, &Person) -> Result<T, ConnectorError> + Send + 'static,
    ) -> Result<T, ConnectorError> {
        let inner = Arc::clone(&self.inner);
        let person = person.clone();
        tokio::task::spawn_blocking(move || f(&inner, &person))
            .await
            .map_err(|_| ConnectorError::Unavailable {
                system: self.inner.system.clone(),
                message: "file task was cancelled".to_owned(),
            })?
    }
}

impl Inner {
    fn io_error(&self, ds: &FileDataset, what: &str, e: &io::Error) -> ConnectorError {
        // Never the path: it holds the person's values.
        let message = format!(
            "dataset {} (path {}): {what}: {}",
            ds.id,
            ds.template,
            e.kind()
        );
        let system = self.system.clone();
        // A permission will not grant itself; other errors may pass.
        if e.kind() == io::ErrorKind::PermissionDenied {
            ConnectorError::Refused { system, message }
        } else {
            ConnectorError::Unavailable { system, message }
        }
    }

    /// Whether `p` resolves to a place inside the root.
    fn inside(&self, p: &Path) -> Option<PathBuf> {
        std::fs::canonicalize(p)
            .ok()
            .filter(|c| c.starts_with(&self.root))
    }

    fn rel(&self, p: &Path) -> Option<String> {
        let rel = p.strip_prefix(&self.root).ok()?;
        let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
        parts.map(|p| p.join("/"))
    }

    /// Every combination of the person's safe values for the template's
    /// placeholders, as filled-in segment patterns.
    fn expansions(&self, ds: &FileDataset, person: &Person) -> Vec<Vec<Vec<Pat>>> {
        let mut kinds: Vec<IdentityKind> = Vec::new();
        for t in ds.segments.iter().flatten() {
            if let Piece::Placeholder(k) = t {
                if !kinds.contains(k) {
                    kinds.push(*k);
                }
            }
        }
        let mut combos: Vec<BTreeMap<IdentityKind, &str>> = vec![BTreeMap::new()];
        for k in &kinds {
            let vals: Vec<&str> = person
                .values(*k)
                .iter()
                .map(|v| v.expose().as_str())
                .filter(|v| safe_value(v))
                .collect();
            let mut next = Vec::new();
            for c in &combos {
                for v in &vals {
                    let mut c = c.clone();
                    c.insert(*k, v);
                    next.push(c);
                }
            }
            combos = next;
        }
        combos
            .into_iter()
            .map(|c| {
                ds.segments
                    .iter()
                    .map(|seg| {
                        let mut pats = Vec::new();
                        for t in seg {
                            match t {
                                Piece::Lit(s) => pats.extend(s.chars().map(Pat::Char)),
                                Piece::Glob('*') => pats.push(Pat::Star),
                                Piece::Glob(_) => pats.push(Pat::One),
                                Piece::Placeholder(k) => {
                                    if let Some(v) = c.get(k) {
                                        pats.extend(v.chars().map(Pat::Char));
                                    }
                                }
                            }
                        }
                        pats
                    })
                    .collect()
            })
            .collect()
    }

    /// Finds the person's files of a dataset.
    fn walk(&self, ds: &FileDataset, person: &Person) -> Result<Walk, ConnectorError> {
        let mut out = Walk::default();
        for segs in self.expansions(ds, person) {
            let mut current = vec![self.root.clone()];
            let last = segs.len().saturating_sub(1);
            for (i, (pats, toks)) in segs.iter().zip(&ds.segments).enumerate() {
                let named = toks.iter().any(|t| matches!(t, Piece::Placeholder(_)));
                let mut next = Vec::new();
                for dir in &current {
                    for p in self.match_segment(ds, dir, pats)? {
                        if i < last {
                            // Descend only into directories inside the root.
                            match self.inside(&p) {
                                Some(c) if c.is_dir() => {
                                    if named {
                                        out.person_dirs.insert(p.clone());
                                    }
                                    next.push(p);
                                }
                                _ => {}
                            }
                        } else {
                            self.collect(ds, &p, &mut out)?;
                        }
                    }
                }
                current = next;
            }
        }
        Ok(out)
    }

    /// Entries of `dir` matching a segment pattern.
    fn match_segment(
        &self,
        ds: &FileDataset,
        dir: &Path,
        pats: &[Pat],
    ) -> Result<Vec<PathBuf>, ConnectorError> {
        if pats.iter().all(|p| matches!(p, Pat::Char(_))) {
            let name: String = pats
                .iter()
                .filter_map(|p| match p {
                    Pat::Char(c) => Some(*c),
                    _ => None,
                })
                .collect();
            let p = dir.join(name);
            return match std::fs::symlink_metadata(&p) {
                Ok(_) => Ok(vec![p]),
                Err(e) if gone(&e) => Ok(Vec::new()),
                Err(e) => Err(self.io_error(ds, "cannot read an entry", &e)),
            };
        }
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if gone(&e) => return Ok(Vec::new()),
            Err(e) => return Err(self.io_error(ds, "cannot list a directory", &e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = match entry {
                Ok(e) => e,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(self.io_error(ds, "cannot list a directory", &e)),
            };
            let name = entry.file_name();
            // Names that are not UTF-8 cannot hold a (UTF-8) value of the
            // person and are skipped.
            if let Some(n) = name.to_str() {
                if wildcard_match(pats, n) {
                    out.push(entry.path());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Adds a final match: a file, or every file below a directory.
    fn collect(&self, ds: &FileDataset, p: &Path, out: &mut Walk) -> Result<(), ConnectorError> {
        let Some(canon) = self.inside(p) else {
            tracing::debug!(system = %self.system, dataset = %ds.id, "skipped a match outside the root");
            return Ok(());
        };
        if canon.is_file() {
            if let Some(rel) = self.rel(p) {
                out.files.insert(
                    p.to_path_buf(),
                    Found {
                        path: p.to_path_buf(),
                        rel,
                    },
                );
            }
            return Ok(());
        }
        if !canon.is_dir() {
            return Ok(());
        }
        // A matched directory: everything below it matches the pattern.
        let is_link = std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            // Do not descend through a symlinked directory.
            return Ok(());
        }
        out.person_dirs.insert(p.to_path_buf());
        let mut stack = vec![p.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(self.io_error(ds, "cannot list a directory", &e)),
            };
            for entry in rd {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) if gone(&e) => continue,
                    Err(e) => return Err(self.io_error(ds, "cannot list a directory", &e)),
                };
                let path = entry.path();
                let Ok(ft) = entry.file_type() else { continue };
                if ft.is_dir() {
                    out.person_dirs.insert(path.clone());
                    stack.push(path);
                } else if let Some(c) = self.inside(&path) {
                    if c.is_file() {
                        if let Some(rel) = self.rel(&path) {
                            out.files.insert(path.clone(), Found { path, rel });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn plan(&self, person: &Person) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        let mut outcomes = Vec::new();
        for ds in &self.datasets {
            let n = self.walk(ds, person)?.files.len() as u64;
            outcomes.push(ds.strategy.planned(ds.id.clone(), n));
        }
        Ok(outcomes)
    }

    fn access(&self, person: &Person) -> Result<Vec<Export>, ConnectorError> {
        let mut exports = Vec::new();
        for ds in &self.datasets {
            let walk = self.walk(ds, person)?;
            let mut export = Export {
                dataset: ds.id.clone(),
                records: Vec::new(),
                files: Vec::new(),
            };
            for f in walk.files.into_values() {
                let bytes = match std::fs::read(&f.path) {
                    Ok(b) => b,
                    Err(e) if gone(&e) => continue,
                    Err(e) => return Err(self.io_error(ds, "cannot read a file", &e)),
                };
                let modified = std::fs::metadata(&f.path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| {
                        time::OffsetDateTime::from(t)
                            .format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    });
                let mut rec = Record::new();
                rec.insert("name".into(), Value::String(f.rel.clone()));
                rec.insert("size".into(), Value::from(bytes.len() as u64));
                rec.insert(
                    "modified".into(),
                    modified.map_or(Value::Null, Value::String),
                );
                export.records.push(rec);
                export.files.push(ExportFile { name: f.rel, bytes });
            }
            exports.push(export);
        }
        Ok(exports)
    }

    /// Erases one dataset; returns (found, deleted).
    fn erase_one(&self, ds: &FileDataset, person: &Person) -> Result<(u64, u64), ConnectorError> {
        let walk = self.walk(ds, person)?;
        let found = walk.files.len() as u64;
        if let Strategy::Retain(_) = ds.strategy {
            return Ok((found, 0));
        }
        let stop = ds
            .segments
            .iter()
            .take(ds.literal_prefix)
            .fold(self.root.clone(), |p, s| {
                let name: String = s
                    .iter()
                    .filter_map(|t| match t {
                        Piece::Lit(l) => Some(l.as_str()),
                        _ => None,
                    })
                    .collect();
                p.join(name)
            });
        let mut deleted = 0;
        let mut dirs: BTreeSet<PathBuf> = walk
            .person_dirs
            .into_iter()
            .filter(|d| d.starts_with(&stop) && d != &stop && d != &self.root)
            .collect();
        for f in walk.files.values() {
            match std::fs::remove_file(&f.path) {
                Ok(()) => deleted += 1,
                Err(e) if gone(&e) => {}
                Err(e) => return Err(self.io_error(ds, "cannot delete a file", &e)),
            }
            let mut d = f.path.parent();
            while let Some(dir) = d {
                if !dir.starts_with(&stop) || dir == stop || dir == self.root {
                    break;
                }
                dirs.insert(dir.to_path_buf());
                d = dir.parent();
            }
        }
        // Deepest first; a directory that is not empty (someone else's
        // files, or the application wrote meanwhile) stays.
        let mut dirs: Vec<PathBuf> = dirs.into_iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let is_real_dir = std::fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir());
            if is_real_dir && self.inside(&d).is_some() {
                let _ = std::fs::remove_dir(&d);
            }
        }
        Ok((found, deleted))
    }

    fn erase(&self, person: &Person) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        let mut outcomes: Vec<DatasetOutcome> = self
            .datasets
            .iter()
            .map(|d| DatasetOutcome::new(d.id.clone()))
            .collect();
        let run = |i: usize, outcomes: &mut Vec<DatasetOutcome>| -> Result<(), ConnectorError> {
            let (Some(ds), Some(o)) = (self.datasets.get(i), outcomes.get_mut(i)) else {
                return Ok(());
            };
            let (found, deleted) = self.erase_one(ds, person)?;
            o.found += found;
            o.deleted += deleted;
            if let Strategy::Retain(g) = &ds.strategy {
                o.retained += found;
                if o.retained > 0 {
                    o.retained_ground = Some(g.clone());
                }
            }
            Ok(())
        };
        for &i in &self.erase_order {
            run(i, &mut outcomes)?;
        }
        // Sweep derived datasets once more: a derivative regenerated from
        // its source between the two deletions goes too.
        for (i, ds) in self.datasets.iter().enumerate() {
            if ds.derived && matches!(ds.strategy, Strategy::Delete) {
                run(i, &mut outcomes)?;
            }
        }
        Ok(outcomes)
    }
}

/// An entry vanished or a path component is not a directory: no match.
fn gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Glob matching of one name against `*`/`?`/literal characters.
fn wildcard_match(pats: &[Pat], name: &str) -> bool {
    let s: Vec<char> = name.chars().collect();
    let (mut p, mut i) = (0usize, 0usize);
    let mut back: Option<(usize, usize)> = None;
    while i < s.len() {
        match (pats.get(p), s.get(i)) {
            (Some(Pat::Star), _) => {
                back = Some((p, i));
                p += 1;
            }
            (Some(Pat::One), Some(_)) => {
                p += 1;
                i += 1;
            }
            (Some(Pat::Char(c)), Some(x)) if c == x => {
                p += 1;
                i += 1;
            }
            _ => match back {
                Some((bp, bi)) => {
                    p = bp + 1;
                    i = bi + 1;
                    back = Some((bp, bi + 1));
                }
                None => return false,
            },
        }
    }
    pats.iter().skip(p).all(|x| matches!(x, Pat::Star))
}

impl Connector for FileConnector {
    /// Files name the person but teach nothing new about them.
    async fn identify(&self, _person: &Person) -> Result<Person, ConnectorError> {
        Ok(Person::new())
    }

    async fn plan_erasure(&self, person: &Person) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        self.blocking(person, |inner, p| inner.plan(p)).await
    }

    async fn access(&self, person: &Person) -> Result<Vec<Export>, ConnectorError> {
        self.blocking(person, |inner, p| inner.access(p)).await
    }

    async fn erase(&self, person: &Person) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        self.blocking(person, |inner, p| inner.erase(p)).await
    }

    /// Files are not rectified field by field: nothing changes.
    async fn rectify(
        &self,
        _person: &Person,
        _changes: &[FieldChange],
    ) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        Ok(self
            .inner
            .datasets
            .iter()
            .map(|d| DatasetOutcome::new(d.id.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(s: &str) -> Vec<Pat> {
        s.chars()
            .map(|c| match c {
                '*' => Pat::Star,
                '?' => Pat::One,
                c => Pat::Char(c),
            })
            .collect()
    }

    #[test]
    fn wildcards_match_within_a_name() {
        assert!(wildcard_match(&pats("*"), "a.png"));
        assert!(wildcard_match(&pats("*"), ".hidden"));
        assert!(wildcard_match(&pats("a*.png"), "abc.png"));
        assert!(wildcard_match(&pats("a*.png"), "a.png"));
        assert!(!wildcard_match(&pats("a*.png"), "a.jpg"));
        assert!(wildcard_match(&pats("?.txt"), "x.txt"));
        assert!(!wildcard_match(&pats("?.txt"), "xy.txt"));
        assert!(wildcard_match(&pats("*a*b"), "xxaybzb"));
        assert!(!wildcard_match(&pats("42"), "420"));
        assert!(wildcard_match(&[Pat::Char('*')], "*"));
        assert!(!wildcard_match(&[Pat::Char('*')], "a"));
    }

    #[test]
    fn unsafe_values_are_refused() {
        for v in ["", ".", "..", "../x", "a/b", "a\\b", ".hidden", "a\0b"] {
            assert!(!safe_value(v), "{v:?}");
        }
        for v in ["42", "a.b", "*", "[a-z]*", "user@example.com"] {
            assert!(safe_value(v), "{v:?}");
        }
    }

    #[test]
    fn templates_must_name_the_person_and_stay_relative() {
        let s = SystemId::from("s");
        let d = DatasetId::from("d");
        assert!(parse_template(&s, &d, "avatars/{user_id}/*").is_ok());
        assert!(parse_template(&s, &d, "exports/{subject}.json").is_ok());
        for bad in [
            "avatars/*",
            "/abs/{user_id}",
            "a/../{user_id}",
            "a//{user_id}",
            "a/{nope}",
            "a/{user_id",
            "a/}{user_id}",
        ] {
            assert!(parse_template(&s, &d, bad).is_err(), "{bad}");
        }
    }
}
