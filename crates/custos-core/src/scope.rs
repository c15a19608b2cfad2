//! Scopes of API keys: least privilege, one capability each.

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// One capability an API key may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Create subjects and write records.
    Write,
    /// Read clear values for a declared purpose.
    Reveal,
    /// Find subjects by identity; masked reads.
    Lookup,
    /// Erase subjects; restrict processing.
    Erase,
    /// Read the audit log.
    Audit,
    /// Manage the tenant's own API keys.
    Admin,
    /// A processor's key: answers notices, resolves tokens.
    Processor,
    /// Create and manage data-subject requests (access, erasure, …).
    Dsr,
}

impl Scope {
    /// Every scope, in a stable order.
    pub const ALL: [Scope; 8] = [
        Scope::Write,
        Scope::Reveal,
        Scope::Lookup,
        Scope::Erase,
        Scope::Audit,
        Scope::Admin,
        Scope::Processor,
        Scope::Dsr,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Write => "write",
            Scope::Reveal => "reveal",
            Scope::Lookup => "lookup",
            Scope::Erase => "erase",
            Scope::Audit => "audit",
            Scope::Admin => "admin",
            Scope::Processor => "processor",
            Scope::Dsr => "dsr",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| CoreError::UnknownScope(s.chars().take(32).collect()))
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of scopes, stored as a comma-separated list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// Builds a set.
    pub fn from_scopes(scopes: impl IntoIterator<Item = Scope>) -> Self {
        Self(scopes.into_iter().fold(0, |acc, s| acc | s.bit()))
    }

    /// Whether the set grants a scope.
    pub fn contains(self, s: Scope) -> bool {
        self.0 & s.bit() != 0
    }

    /// The scopes in the set.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// `write,reveal` form for storage.
    pub fn to_csv(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(",")
    }

    /// Parses the storage form.
    pub fn from_csv(s: &str) -> Result<Self, CoreError> {
        let scopes = s
            .split(',')
            .filter(|p| !p.is_empty())
            .map(Scope::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_scopes(scopes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip() {
        let s = ScopeSet::from_scopes([Scope::Reveal, Scope::Write]);
        assert_eq!(s.to_csv(), "write,reveal");
        assert_eq!(ScopeSet::from_csv("write,reveal").unwrap(), s);
        assert!(s.contains(Scope::Write) && !s.contains(Scope::Erase));
        assert!(ScopeSet::from_csv("write,root").is_err());
    }

    #[test]
    fn dsr_scope_round_trips() {
        assert_eq!(Scope::parse("dsr").unwrap(), Scope::Dsr);
        let s = ScopeSet::from_scopes([Scope::Dsr, Scope::Write]);
        assert_eq!(s.to_csv(), "write,dsr");
        assert_eq!(ScopeSet::from_csv("write,dsr").unwrap(), s);
        let all = ScopeSet::from_scopes(Scope::ALL);
        assert_eq!(all.iter().count(), Scope::ALL.len());
        assert_eq!(ScopeSet::from_csv(&all.to_csv()).unwrap(), all);
    }
}
