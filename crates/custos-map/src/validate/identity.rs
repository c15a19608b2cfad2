//! Identity namespaces: an opaque identity (`user_id`) found in one dataset
//! may select rows of another only when the map links the two keys
//! (`references:`, directly or along a chain) or puts them in one
//! namespace explicitly (`identity: { kind: user_id, namespace: staff }`).
//! Two unrelated keys claiming the application's `user_id` would make
//! customer 4 find employee 4: that is an error, naming both fields.
//!
//! Invariant: emails, phones, subject ids and tokens are global by nature
//! and take no namespace.

use std::collections::HashMap;

use super::V;
use crate::model::*;

/// A field of the map, `system.dataset.field`.
type Key = (String, String, String);

/// Union-find over fields, by index.
struct Groups {
    parent: Vec<usize>,
}

impl Groups {
    fn root(&mut self, mut i: usize) -> usize {
        while let Some(&p) = self.parent.get(i) {
            if p == i {
                break;
            }
            let up = self.parent.get(p).copied().unwrap_or(p);
            if let Some(slot) = self.parent.get_mut(i) {
                *slot = up;
            }
            i = p;
        }
        i
    }

    fn join(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.root(a), self.root(b));
        if let Some(slot) = self.parent.get_mut(ra) {
            *slot = rb;
        }
    }
}

impl V<'_> {
    /// Reports namespaces on global identities, and unrelated keys that
    /// share the application's `user_id` without a namespace.
    pub(super) fn identity_namespaces(&mut self) {
        let map = self.map;
        let mut ids: HashMap<Key, usize> = HashMap::new();
        let mut fields: Vec<(Key, &Field)> = Vec::new();
        for s in &map.systems {
            for d in &s.datasets {
                for f in &d.fields {
                    let key = (s.id.0.clone(), d.id.0.clone(), f.name.clone());
                    ids.insert(key.clone(), fields.len());
                    fields.push((key, f));
                }
            }
        }
        let mut groups = Groups {
            parent: (0..fields.len()).collect(),
        };
        for (i, ((sys, _, _), f)) in fields.iter().enumerate() {
            let Some(r) = &f.references else { continue };
            let target = (
                r.system
                    .as_ref()
                    .map_or_else(|| sys.clone(), |s| s.0.clone()),
                r.dataset.0.clone(),
                r.field.clone(),
            );
            if let Some(&j) = ids.get(&target) {
                groups.join(i, j);
            }
        }
        // The first field of each unrelated key claiming `user_id`.
        let mut first: Vec<(usize, &Key)> = Vec::new();
        let mut found: Vec<(String, String, String)> = Vec::new();
        for (i, (key, f)) in fields.iter().enumerate() {
            let Some(kind) = f.identity else { continue };
            let path = format!(
                "systems.{}.datasets.{}.fields.{}.identity",
                key.0, key.1, key.2
            );
            if kind.is_global() {
                if f.identity_namespace.is_some() {
                    self.error(
                        "identity-namespace-global",
                        path,
                        format!("`{}` is a global identity: it names one person wherever it is found, so it takes no namespace", kind.key()),
                        format!("write `identity: {}`", kind.key()),
                    );
                }
                continue;
            }
            if f.identity_namespace.is_some() {
                continue;
            }
            let root = groups.root(i);
            match first.iter().find(|(r, _)| *r == root) {
                Some(_) => {}
                None => {
                    if let Some((_, other)) = first.first() {
                        found.push((
                            path,
                            format!("{}.{}.{}", other.0, other.1, other.2),
                            format!("{}.{}.{}", key.0, key.1, key.2),
                        ));
                    }
                    first.push((root, key));
                }
            }
        }
        for (path, a, b) in found {
            self.error(
                "identity-namespace-clash",
                path,
                format!("`{a}` and `{b}` both claim identity `user_id` but neither references the other: a user id found in one would select another person's rows in the other (customer 4 would find employee 4)"),
                format!("if they are the same id, add `references: {a}` to `{b}`; if not, give one its own key space: `identity: {{ kind: user_id, namespace: <name> }}`"),
            );
        }
    }
}
