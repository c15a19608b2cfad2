//! Which tenant's requests may reach which system or processor.
//!
//! A server's tenants share one map. A system is *bound* to tenants in one
//! of two ways: `tenants: [acme, globex]` (the whole system belongs to
//! those tenants), or `tenant_values: { acme: "1" }` with a `tenant_column`
//! on its datasets (a database shared by all tenants, rows filtered by the
//! column; a files tree or Redis shared by tenants, each tenant's value
//! standing for `{tenant}` in its paths or keys). A processor is bound by
//! its `tenants:`; an `http` system
//! without `tenants:` of its own is bound as its processor is.
//!
//! Invariant (safe by default): on a server with more than one tenant, a
//! system or processor bound to none is [`Binding::Unbound`] and must not
//! be reached; with exactly one tenant an unbound map reaches everything,
//! as a single-tenant deployment expects. The vault is scoped by its own
//! keys and is always reached whole.

use super::{DataMap, Processor, System, SystemKind};

/// The tenant a request acts for, and whether the server has others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantScope<'a> {
    /// The request's tenant id.
    pub tenant: &'a str,
    /// Whether the server has more than one tenant (then unbound systems
    /// are refused).
    pub several: bool,
}

/// How a request of one tenant may reach a system or processor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Binding<'a> {
    /// All of it: bound to the tenant by `tenants:`, or the server has one
    /// tenant and the map binds it to none.
    Whole,
    /// Only rows whose `tenant_column` holds this value.
    Rows(&'a str),
    /// Bound to other tenants only: not part of this tenant's requests.
    OtherTenants,
    /// Bound to no tenant on a server with several: refused.
    Unbound,
}

fn by_list<'a>(tenants: &[String], scope: &TenantScope<'_>) -> Binding<'a> {
    if tenants.is_empty() {
        if scope.several {
            Binding::Unbound
        } else {
            Binding::Whole
        }
    } else if tenants.iter().any(|t| t == scope.tenant) {
        Binding::Whole
    } else {
        Binding::OtherTenants
    }
}

/// Whether a tenant's value can stand for `{tenant}` in a path or Redis
/// key without reaching beyond its part: one plain segment, no key
/// separator, no pattern, not empty, not `.` or `..`. The map check and
/// the connectors apply this one rule.
pub fn plain_tenant_value(v: &str) -> bool {
    !v.is_empty()
        && v != "."
        && v != ".."
        && !v.contains(['/', '\\', '\0', ':', '*', '?', '[', ']', '{', '}'])
}

impl System {
    /// How a request of `scope` may reach this system by its own fields
    /// (see [`DataMap::binding`] for `http` systems, which fall back on
    /// their processor).
    pub fn binding(&self, scope: &TenantScope<'_>) -> Binding<'_> {
        if self.kind == SystemKind::Vault {
            return Binding::Whole;
        }
        if self.tenant_values.is_empty() {
            return by_list(&self.tenants, scope);
        }
        if !self.tenants.is_empty() && !self.tenants.iter().any(|t| t == scope.tenant) {
            return Binding::OtherTenants;
        }
        match self.tenant_values.get(scope.tenant) {
            Some(v) => Binding::Rows(v),
            None => Binding::OtherTenants,
        }
    }

    /// Why a request of `tenant` does not run through this unbound system
    /// (the caller names the system): names the tenant only.
    pub fn unbound_message(&self, tenant: &str) -> String {
        format!(
            "bound to no tenant and this server has several: not reached for tenant {tenant}; add `tenants: [{tenant}]`, or `tenant_values` with a `tenant_column`, to the system in the map"
        )
    }
}

impl Processor {
    /// How a request of `scope` may reach this processor (be notified).
    pub fn binding(&self, scope: &TenantScope<'_>) -> Binding<'_> {
        by_list(&self.tenants, scope)
    }

    /// Why a request of `tenant` does not notify this unbound processor
    /// (the caller names the processor): names the tenant only.
    pub fn unbound_message(&self, tenant: &str) -> String {
        format!(
            "bound to no tenant and this server has several: not notified for tenant {tenant}; add `tenants: [{tenant}]` to the processor in the map"
        )
    }
}

impl DataMap {
    /// How a request of `scope` may reach `system`: its own binding, or for
    /// an `http` system without `tenants:`, its processor's.
    pub fn binding<'a>(&'a self, system: &'a System, scope: &TenantScope<'_>) -> Binding<'a> {
        if system.kind == SystemKind::Http && system.tenants.is_empty() {
            if let Some(p) = system.processor.as_ref().and_then(|p| self.processor(p)) {
                return p.binding(scope);
            }
        }
        system.binding(scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> DataMap {
        let yaml = r#"version: 1
organisation: { controller: C, contact: privacy@c.example }
purposes:
  - { id: p, title: P, legal_basis: contract, subjects: [customer] }
processors:
  - { id: crm, name: CRM, role: processor, country: DE, dpa: { status: signed, date: "2024-01-01" }, notify: { url: "https://crm.example/n" }, purposes: [p], tenants: [acme] }
systems:
  - id: shared
    kind: postgres
    connection: { url_env: DB }
    tenant_values: { acme: "1", globex: "2" }
    datasets:
      - id: users
        table: users
        tenant_column: org_id
        subject: { identity: email }
        purposes: [p]
        retention: { period: 1y, from_event: end }
        fields:
          - { name: email, category: user.contact.email, identity: email }
          - { name: org_id, category: system.operations }
  - id: own
    kind: sqlite
    connection: { url_env: DB2 }
    tenants: [globex]
    datasets: []
  - id: loose
    kind: redis
    connection: { url_env: R }
    datasets: []
  - id: crm_api
    kind: http
    processor: crm
    datasets: []
"#;
        match crate::load_str(yaml, "t.yaml") {
            Ok((m, _)) => m,
            Err(d) => unreachable!("{d:?}"),
        }
    }

    #[test]
    fn bindings_follow_the_map_and_the_number_of_tenants() {
        let m = map();
        let sys = |id: &str| m.systems.iter().find(|s| s.id.as_str() == id);
        let (Some(shared), Some(own), Some(loose), Some(api)) =
            (sys("shared"), sys("own"), sys("loose"), sys("crm_api"))
        else {
            unreachable!("systems of the map")
        };
        let acme = TenantScope {
            tenant: "acme",
            several: true,
        };
        let globex = TenantScope {
            tenant: "globex",
            several: true,
        };
        let other = TenantScope {
            tenant: "initech",
            several: true,
        };
        let alone = TenantScope {
            tenant: "acme",
            several: false,
        };
        assert_eq!(m.binding(shared, &acme), Binding::Rows("1"));
        assert_eq!(m.binding(shared, &globex), Binding::Rows("2"));
        assert_eq!(m.binding(shared, &other), Binding::OtherTenants);
        assert_eq!(m.binding(own, &globex), Binding::Whole);
        assert_eq!(m.binding(own, &acme), Binding::OtherTenants);
        assert_eq!(m.binding(own, &alone), Binding::OtherTenants);
        assert_eq!(m.binding(loose, &acme), Binding::Unbound);
        assert_eq!(m.binding(loose, &alone), Binding::Whole);
        assert_eq!(m.binding(api, &acme), Binding::Whole);
        assert_eq!(m.binding(api, &globex), Binding::OtherTenants);
        assert!(loose.unbound_message("acme").contains("tenants: [acme]"));
    }
}
