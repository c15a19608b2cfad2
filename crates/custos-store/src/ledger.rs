//! The erasure ledger, kept in three places so that no restore brings an
//! erased person back: the data store (`erasure_ledger`, with the erased
//! mark on the subject), the key store (`erased_subjects`,
//! `shredded_tenants`: a restored data store cannot take them back), and a
//! witness file apart from both (for when both stores are restored from
//! the same older copy). Ids and times only, never personal data.
//!
//! At start the three are compared ([`Places`]). What the key store or the
//! witness lacks is written there at once (the key is destroyed again).
//! What the data store lacks means it was restored from an older copy: the
//! vault refuses to serve it ([`StoreError::RolledBack`]) until an operator
//! recovers it (`custos recover`), which replays every erasure it lacks.
//! The same holds for an audit chain that is behind, or diverges from, the
//! anchor the key store keeps.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use custos_core::ids::{SubjectId, TenantId};

use crate::StoreError;

/// One erased subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Erasure {
    pub(crate) subject: SubjectId,
    pub(crate) tenant: TenantId,
    pub(crate) at_us: i64,
}

/// One shredded tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shred {
    pub(crate) tenant: TenantId,
    pub(crate) at_us: i64,
}

/// What one place records.
#[derive(Clone, Debug, Default)]
pub(crate) struct Entries {
    pub(crate) erasures: BTreeMap<SubjectId, Erasure>,
    pub(crate) shreds: BTreeMap<TenantId, Shred>,
}

impl Entries {
    /// One erasure.
    pub(crate) fn of_erasure(e: Erasure) -> Self {
        let mut out = Self::default();
        out.add_erasure(e);
        out
    }

    /// One shredded tenant.
    pub(crate) fn of_shred(s: Shred) -> Self {
        let mut out = Self::default();
        out.add_shred(s);
        out
    }

    pub(crate) fn add_erasure(&mut self, e: Erasure) {
        self.erasures.entry(e.subject).or_insert(e);
    }

    pub(crate) fn add_shred(&mut self, s: Shred) {
        self.shreds.entry(s.tenant.clone()).or_insert(s);
    }

    /// What `other` has and this lacks.
    pub(crate) fn missing_from(&self, other: &Entries) -> Entries {
        Entries {
            erasures: other
                .erasures
                .iter()
                .filter(|(k, _)| !self.erasures.contains_key(k))
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            shreds: other
                .shreds
                .iter()
                .filter(|(k, _)| !self.shreds.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.erasures.is_empty() && self.shreds.is_empty()
    }

    /// Everything of `self` and `other`.
    pub(crate) fn union(&self, other: &Entries) -> Entries {
        let mut out = self.clone();
        for e in other.erasures.values() {
            out.add_erasure(e.clone());
        }
        for s in other.shreds.values() {
            out.add_shred(s.clone());
        }
        out
    }
}

/// The first line of a witness file.
const HEADER: &str = "custos erasure ledger 1";

/// The witness file: one line per erasure (`S <tenant> <subject> <µs>`) or
/// shredded tenant (`T <tenant> <µs>`), appended and synced before the
/// key is destroyed. Readable by its owner only.
#[derive(Debug)]
pub(crate) struct Witness {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl Witness {
    /// Opens (or creates) the file at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let io = |e: std::io::Error| {
            StoreError::Config(format!(
                "the erasure ledger file {}: {}",
                path.display(),
                e.kind()
            ))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::owner_only::create_dir(dir).map_err(io)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.append(true).create(true).read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(path).map_err(io)?;
        if file.metadata().map_err(io)?.len() == 0 {
            writeln!(file, "{HEADER}").map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    /// Everything the file records. A line that does not parse is an
    /// error naming its number: the file is evidence, not a cache.
    pub(crate) fn read(&self) -> Result<Entries, StoreError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| {
            StoreError::Config(format!(
                "reading the erasure ledger file {}: {}",
                self.path.display(),
                e.kind()
            ))
        })?;
        parse(&text).map_err(|line| {
            StoreError::Config(format!(
                "the erasure ledger file {} is damaged at line {line}",
                self.path.display()
            ))
        })
    }

    /// Appends entries and syncs them to disk.
    pub(crate) fn append(&self, entries: &Entries) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let text = lines(entries);
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(|e| {
                StoreError::Config(format!(
                    "writing the erasure ledger file {}: {}",
                    self.path.display(),
                    e.kind()
                ))
            })
    }
}

/// The witness file's lines for `entries` (each ends with `\n`).
fn lines(entries: &Entries) -> String {
    let mut text = String::new();
    for e in entries.erasures.values() {
        text.push_str(&format!("S {} {} {}\n", e.tenant, e.subject, e.at_us));
    }
    for s in entries.shreds.values() {
        text.push_str(&format!("T {} {}\n", s.tenant, s.at_us));
    }
    text
}

/// The fuzz target's way in (`fuzz/fuzz_targets/erasure_ledger.rs`): parses
/// the text of a witness file and writes what it records back as a whole
/// file (header, then its lines in a canonical order), or names the first
/// line that is not one (from 1). Reading back that text gives the same
/// text: what parses survives a write unchanged.
#[doc(hidden)]
pub fn canonical_ledger_text(text: &str) -> Result<String, usize> {
    parse(text).map(|entries| format!("{HEADER}\n{}", lines(&entries)))
}

/// Parses a witness file; `Err(line number)` where a line is not one.
fn parse(text: &str) -> Result<Entries, usize> {
    let mut out = Entries::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if i == 0 {
            if line != HEADER {
                return Err(n);
            }
            continue;
        }
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["S", tenant, subject, at] => out.add_erasure(Erasure {
                tenant: TenantId::parse(tenant).map_err(|_| n)?,
                subject: SubjectId::parse(subject).map_err(|_| n)?,
                at_us: at.parse().map_err(|_| n)?,
            }),
            ["T", tenant, at] => out.add_shred(Shred {
                tenant: TenantId::parse(tenant).map_err(|_| n)?,
                at_us: at.parse().map_err(|_| n)?,
            }),
            // A write cut short by a crash: the entry is in the stores
            // and is written again at the next start.
            _ if n == text.lines().count() && !text.ends_with('\n') => {}
            _ => return Err(n),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use rand_core::OsRng;

    #[test]
    fn a_witness_reads_back_what_it_was_given_and_names_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/erasures.ledger");
        let w = Witness::open(&path).unwrap();
        let mut e = Entries::default();
        let s = SubjectId::generate(&mut OsRng);
        e.add_erasure(Erasure {
            subject: s,
            tenant: TenantId::parse("acme").unwrap(),
            at_us: 42,
        });
        e.add_shred(Shred {
            tenant: TenantId::parse("globex").unwrap(),
            at_us: 7,
        });
        w.append(&e).unwrap();
        w.append(&e).unwrap();
        let back = Witness::open(&path).unwrap().read().unwrap();
        assert_eq!(back.erasures.len(), 1);
        assert_eq!(back.erasures[&s].at_us, 42);
        assert_eq!(back.shreds.len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A torn last line (a crash mid-write) is skipped; a bad line
        // elsewhere is named.
        assert!(parse(&format!("{HEADER}\nS acme {s} 1\nS acme sub_")).is_ok());
        assert_eq!(
            parse(&format!("{HEADER}\nX\nS acme {s} 1\n")).err(),
            Some(2)
        );
        assert_eq!(parse("something else\n").err(), Some(1));
        // What parses is written back as it was read.
        let text = format!("{HEADER}\nT globex 7\nS acme {s} 1\nS acme sub_");
        let canonical = canonical_ledger_text(&text).unwrap();
        assert_eq!(canonical, format!("{HEADER}\nS acme {s} 1\nT globex 7\n"));
        assert_eq!(canonical_ledger_text(&canonical), Ok(canonical));
    }

    #[test]
    fn missing_and_union() {
        let t = TenantId::parse("acme").unwrap();
        let (a, b) = (
            SubjectId::generate(&mut OsRng),
            SubjectId::generate(&mut OsRng),
        );
        let mut one = Entries::default();
        one.add_erasure(Erasure {
            subject: a,
            tenant: t.clone(),
            at_us: 1,
        });
        let mut two = one.clone();
        two.add_erasure(Erasure {
            subject: b,
            tenant: t,
            at_us: 2,
        });
        let missing = one.missing_from(&two);
        assert_eq!(missing.erasures.keys().collect::<Vec<_>>(), vec![&b]);
        assert!(two.missing_from(&one).is_empty());
        assert_eq!(one.union(&two).erasures.len(), 2);
    }
}
