//! Checks of the map's tenancy fields: a `tenant_column` is a field of its
//! dataset in an SQL system with `tenant_values`, and no dataset of a
//! database shared by tenants is looked up by identity without it (such a
//! lookup would find every tenant's rows); in a files or Redis system with
//! `tenant_values` every personal dataset's path or key names `{tenant}`
//! (else it would match every tenant's files or keys), and `{tenant}`
//! appears only where `tenant_values` give it a value. Tenant names are not
//! checked here: tenants live in the store, not in the map.

use super::V;
use crate::model::*;

impl<'a> V<'a> {
    pub(super) fn tenancy(&mut self, s: &'a System) {
        let path = format!("systems.{}", s.id);
        let shared = !s.tenant_values.is_empty();
        let by_template = matches!(s.kind, SystemKind::Files | SystemKind::Redis);
        // Two tenants with one value would each reach the other's part.
        let mut seen: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
        for (tenant, value) in &s.tenant_values {
            if let Some(other) = seen.insert(value.as_str(), tenant.as_str()) {
                self.error(
                    "tenant-values-shared",
                    format!("{path}.tenant_values.{tenant}"),
                    format!(
                        "tenants `{other}` and `{tenant}` have the same value: each would reach the other's part of system `{}`",
                        s.id
                    ),
                    "give every tenant its own value".to_owned(),
                );
            }
            if by_template && !crate::model::plain_tenant_value(value) {
                self.error(
                    "invalid-tenant-value",
                    format!("{path}.tenant_values.{tenant}"),
                    format!(
                        "tenant `{tenant}`'s value stands for `{{tenant}}` in paths or keys and must be one plain segment: no `/`, `\\`, `.` or `..`, `:`, wildcards or braces, not empty"
                    ),
                    "use the tenant's directory or key prefix, e.g. `acme-files`".to_owned(),
                );
            }
        }
        if by_template {
            self.tenant_templates(s, &path, shared);
            return;
        }
        if shared && !s.kind.is_sql() {
            self.error(
                "tenant-values-outside-sql",
                format!("{path}.tenant_values"),
                format!(
                    "`tenant_values` filters SQL rows by a tenant column; a {} system has no rows to filter",
                    s.kind.key()
                ),
                "bind the whole system with `tenants: [acme]`".to_owned(),
            );
        }
        for d in &s.datasets {
            let dpath = format!("{path}.datasets.{}", d.id);
            match &d.tenant_column {
                Some(c) => {
                    if !s.kind.is_sql() {
                        self.error(
                            "tenant-column-outside-sql",
                            format!("{dpath}.tenant_column"),
                            format!(
                                "a {} dataset has no columns to filter by tenant",
                                s.kind.key()
                            ),
                            "bind the whole system with `tenants: [acme]`".to_owned(),
                        );
                    } else if d.field(c).is_none() {
                        self.error(
                            "unknown-tenant-column",
                            format!("{dpath}.tenant_column"),
                            format!("tenant column `{c}` is not a field of dataset `{}`", d.id),
                            format!("declare `{c}` under `fields:` (category `system.operations`)"),
                        );
                    }
                    if !shared && s.kind.is_sql() {
                        self.error(
                            "tenant-values-missing",
                            format!("{dpath}.tenant_column"),
                            format!(
                                "dataset `{}` has a tenant column but system `{}` gives no tenant's value in it",
                                d.id, s.id
                            ),
                            "add `tenant_values: { acme: \"1\" }` to the system".to_owned(),
                        );
                    }
                }
                None if shared
                    && d.holds_personal_data()
                    && d.fields.iter().any(|f| f.identity.is_some()) =>
                {
                    self.error(
                        "tenant-column-missing",
                        dpath,
                        format!(
                            "dataset `{}` of a database shared by tenants is looked up by identity but has no `tenant_column`: the lookup would find every tenant's rows",
                            d.id
                        ),
                        "add `tenant_column: <column>`, or reach its rows only through `subject: { via: ... }` from a dataset that has one".to_owned(),
                    );
                }
                None => {}
            }
        }
    }

    /// `{tenant}` in the paths of a files system or the keys of a Redis one.
    fn tenant_templates(&mut self, s: &'a System, path: &str, shared: bool) {
        for d in &s.datasets {
            let dpath = format!("{path}.datasets.{}", d.id);
            let at = d.location.value();
            let names = at.contains("{tenant}");
            if names && !tenant_apart(s.kind, at) {
                self.error(
                    "tenant-placeholder-not-apart",
                    format!("{dpath}.{}", d.location.key()),
                    format!(
                        "`{{tenant}}` in dataset `{}` is not set apart: {}",
                        d.id,
                        if s.kind == SystemKind::Files {
                            "it must be a whole path segment with nothing variable before it (`{tenant}/…`), or one tenant's files would match another's (`acme*` matches `acme2`)"
                        } else {
                            "it must be a whole `:`-separated part with nothing variable before it (`{tenant}:session:{user_id}`), or one tenant's keys would match another's"
                        }
                    ),
                    "write the tenant's part as its own segment or key prefix".to_owned(),
                );
            }
            if shared && !names && (d.holds_personal_data() || d.derived_from.is_some()) {
                self.error(
                    "tenant-placeholder-missing",
                    format!("{dpath}.{}", d.location.key()),
                    format!(
                        "system `{}` is shared by tenants (`tenant_values`) but dataset `{}` \
                         does not name `{{tenant}}`: it would match every tenant's {}",
                        s.id,
                        d.id,
                        if s.kind == SystemKind::Files {
                            "files"
                        } else {
                            "keys"
                        }
                    ),
                    "put `{tenant}` in the path or key, e.g. `{tenant}/avatars/{user_id}/*`"
                        .to_owned(),
                );
            }
            if names && !shared {
                self.error(
                    "tenant-values-missing",
                    format!("{dpath}.{}", d.location.key()),
                    format!(
                        "dataset `{}` names `{{tenant}}` but system `{}` gives no tenant's value for it",
                        d.id, s.id
                    ),
                    "add `tenant_values: { acme: \"acme\" }` to the system".to_owned(),
                );
            }
            if d.tenant_column.is_some() {
                self.error(
                    "tenant-column-outside-sql",
                    format!("{dpath}.tenant_column"),
                    format!(
                        "a {} dataset has no columns to filter by tenant",
                        s.kind.key()
                    ),
                    "name `{tenant}` in its path or key, with `tenant_values` on the system"
                        .to_owned(),
                );
            }
        }
    }
}

/// Whether every `{tenant}` of a template sets the tenant's part apart:
/// nothing variable before it (no wildcard, no other placeholder), and a
/// whole path segment, or in a Redis key a whole `:`-separated part
/// followed by `:` (tenant values hold neither `/` nor `:`).
fn tenant_apart(kind: SystemKind, template: &str) -> bool {
    template.match_indices("{tenant}").all(|(i, t)| {
        let before = template.get(..i).unwrap_or_default();
        let after = template.get(i + t.len()..).unwrap_or_default();
        let fixed = !before.contains(['*', '?', '[', '{']);
        let sep = if kind == SystemKind::Files { '/' } else { ':' };
        let whole = (before.is_empty() || before.ends_with(sep))
            && if kind == SystemKind::Files {
                after.is_empty() || after.starts_with(sep)
            } else {
                after.starts_with(sep)
            };
        fixed && whole
    })
}

#[cfg(test)]
mod tests {
    fn codes(systems: &str) -> Vec<String> {
        let yaml = format!(
            r#"version: 1
organisation: {{ controller: C, contact: privacy@c.example }}
purposes:
  - {{ id: p, title: P, legal_basis: contract, subjects: [customer] }}
systems:
{systems}"#
        );
        match crate::load_str(&yaml, "t.yaml") {
            Ok(_) => Vec::new(),
            Err(d) => d
                .into_iter()
                .filter(|d| d.severity == crate::Severity::Error)
                .map(|d| d.code)
                .collect(),
        }
    }

    const USERS: &str = r#"      - id: users
        table: users
        TENANT
        subject: { identity: email }
        purposes: [p]
        retention: { period: 1y, from_event: end }
        erasure: delete
        fields:
          - { name: email, category: user.contact.email, identity: email }
          - { name: org_id, category: system.operations }
"#;

    fn sql(head: &str, tenant: &str) -> String {
        format!(
            "  - id: db\n    kind: postgres\n    connection: {{ url_env: DB }}\n{head}    datasets:\n{}",
            USERS.replace("TENANT", tenant)
        )
    }

    #[test]
    fn tenancy_fields_are_checked() {
        let values = "    tenant_values: { acme: \"1\" }\n";
        assert_eq!(
            codes(&sql(values, "tenant_column: org_id")),
            Vec::<String>::new()
        );
        assert_eq!(
            codes(&sql("    tenants: [acme, globex]\n", "")),
            Vec::<String>::new()
        );
        assert_eq!(
            codes(&sql(values, "tenant_column: orgid")),
            ["unknown-tenant-column"]
        );
        assert_eq!(codes(&sql(values, "")), ["tenant-column-missing"]);
        assert_eq!(
            codes(&sql("", "tenant_column: org_id")),
            ["tenant-values-missing"]
        );
        assert_eq!(codes(&sql("    tenants: [Acme]\n", "")), ["invalid-value"]);
        let http = "  - id: up\n    kind: http\n    processor: p\n    tenant_values: { acme: \"1\" }\n    datasets: []\n";
        assert!(codes(http).contains(&"tenant-values-outside-sql".to_owned()));
    }

    fn files(head: &str, path: &str) -> String {
        format!(
            "  - id: up\n    kind: files\n    connection: {{ root_env: R }}\n{head}    datasets:\n      \
             - {{ id: avatars, path: \"{path}\", subject: {{ identity: user_id }}, purposes: [p], \
             retention: {{ period: 1y, from_event: end }}, erasure: delete, \
             fields: [{{ name: user_id, category: user.unique_id, identity: user_id }}] }}\n"
        )
    }

    #[test]
    fn a_tree_shared_by_tenants_names_the_tenant_in_every_path() {
        let values = "    tenant_values: { acme: acme-files, globex: globex-files }\n";
        assert_eq!(
            codes(&files(values, "{tenant}/avatars/{user_id}/*")),
            Vec::<String>::new()
        );
        assert_eq!(
            codes(&files(values, "avatars/{user_id}/*")),
            ["tenant-placeholder-missing"]
        );
        assert_eq!(
            codes(&files("", "{tenant}/avatars/{user_id}/*")),
            ["tenant-values-missing"]
        );
        assert_eq!(
            codes(&files("    tenants: [acme]\n", "avatars/{user_id}/*")),
            Vec::<String>::new()
        );
        assert_eq!(
            codes(&files(values, "{tenant}*/avatars/{user_id}/*")),
            ["tenant-placeholder-not-apart"]
        );
        for bad in ["acme/x", "..", "\"*\"", "\"{user_id}\"", "a:b", "\"\""] {
            let head = format!("    tenant_values: {{ acme: {bad}, globex: g }}\n");
            assert_eq!(
                codes(&files(&head, "{tenant}/avatars/{user_id}/*")),
                ["invalid-tenant-value"],
                "{bad}"
            );
        }
        let same = "    tenant_values: { acme: same, globex: same }\n";
        assert_eq!(
            codes(&files(same, "{tenant}/avatars/{user_id}/*")),
            ["tenant-values-shared"]
        );
        let redis = |key: &str| {
            format!(
                "  - id: c\n    kind: redis\n    connection: {{ url_env: R }}\n{values}    datasets:\n      \
                 - {{ id: s, key: \"{key}\", subject: {{ identity: user_id }}, purposes: [p], \
                 retention: {{ period: 1y, from_event: end }}, erasure: delete, \
                 fields: [{{ name: user_id, category: user.unique_id, identity: user_id }}] }}\n"
            )
        };
        assert_eq!(codes(&redis("{tenant}:s:{user_id}")), Vec::<String>::new());
        for key in [
            "{tenant}s:{user_id}",
            "app:*{tenant}:{user_id}",
            "{user_id}{tenant}:x",
            "app:*:{tenant}:{user_id}",
        ] {
            assert_eq!(
                codes(&redis(key)),
                ["tenant-placeholder-not-apart"],
                "{key}"
            );
        }
        assert_eq!(
            codes(&redis("app:{tenant}:s:{user_id}")),
            Vec::<String>::new()
        );
        assert_eq!(
            codes(&files(values, "*/{tenant}/avatars/{user_id}/*")),
            ["tenant-placeholder-not-apart"]
        );
    }
}
