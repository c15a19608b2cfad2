//! The fideslang taxonomy keys used for validation, shipped inside the binary.
//!
//! The key lists in `data/` were extracted from the `fideslang` package
//! (version 3.1.4, PyPI), whose taxonomy is published by Ethyca under
//! CC-BY-4.0; see `data/NOTICE`. Only the keys are taken; any wording about
//! them in custos is our own.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

const DATA_CATEGORIES_TXT: &str = include_str!("../data/fideslang-data-categories.txt");
const DATA_SUBJECTS_TXT: &str = include_str!("../data/fideslang-data-subjects.txt");
const DATA_USES_TXT: &str = include_str!("../data/fideslang-data-uses.txt");

/// The version of fideslang the keys come from.
pub const FIDESLANG_VERSION: &str = "3.1.4";

fn lines(src: &'static str) -> impl Iterator<Item = &'static str> {
    src.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// A fast hash (FNV-1a) for the fixed key sets: every field of a map is
/// looked up, and the sets hold only the shipped keys, so nothing that a
/// map says can make the tables slow.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type KeySet = HashSet<&'static str, BuildHasherDefault<Fnv>>;

fn set(cell: &'static OnceLock<KeySet>, src: &'static str) -> &'static KeySet {
    cell.get_or_init(|| lines(src).collect())
}

static CATEGORIES: OnceLock<KeySet> = OnceLock::new();
static SUBJECTS: OnceLock<KeySet> = OnceLock::new();
static USES: OnceLock<KeySet> = OnceLock::new();

/// Every data-category key, in file (alphabetical) order.
pub fn data_categories() -> impl Iterator<Item = &'static str> {
    lines(DATA_CATEGORIES_TXT)
}

/// Every data-subject key.
pub fn data_subjects() -> impl Iterator<Item = &'static str> {
    lines(DATA_SUBJECTS_TXT)
}

/// Every data-use key.
pub fn data_uses() -> impl Iterator<Item = &'static str> {
    lines(DATA_USES_TXT)
}

/// Whether `key` is a fideslang data category.
pub fn is_data_category(key: &str) -> bool {
    set(&CATEGORIES, DATA_CATEGORIES_TXT).contains(key)
}

/// Whether `key` is a fideslang data subject.
pub fn is_data_subject(key: &str) -> bool {
    set(&SUBJECTS, DATA_SUBJECTS_TXT).contains(key)
}

/// Whether `key` is a fideslang data use.
pub fn is_data_use(key: &str) -> bool {
    set(&USES, DATA_USES_TXT).contains(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_of_keys_is_known() {
        for k in [
            "user",
            "user.contact.email",
            "user.device.ip_address",
            "user.financial.bank_account",
            "user.contact.address.postal_code",
            "user.unique_id",
            "user.sensor",
            "user.health_and_medical",
            "system.operations",
        ] {
            assert!(is_data_category(k), "{k}");
        }
        for k in ["customer", "employee", "prospect", "visitor"] {
            assert!(is_data_subject(k), "{k}");
        }
        for k in [
            "essential.service",
            "marketing.communications.email",
            "essential.legal_obligation",
        ] {
            assert!(is_data_use(k), "{k}");
        }
        assert!(!is_data_category("user.contact.emial"));
        assert!(!is_data_category("user."));
        assert_eq!(data_categories().count(), 85);
    }
}
