//! The tenant a request acts for and what it may reach: systems and
//! processors of the map are bound to tenants (`custos_map::Binding`); on
//! a server with several tenants an unbound one is never reached.
//!
//! Invariant: every connector a request uses comes through
//! [`crate::reach::reach`], which asks [`Tenancy::refusal`] first; notices
//! ask it before anything is sent.

use custos_map::{Binding, DataMap, Processor, System, TenantScope};
use custos_store::{PendingRequest, StoreError};

use crate::executor::Executor;

/// The request's tenant and whether the server has others.
#[derive(Clone, Debug)]
pub(crate) struct Tenancy {
    tenant: String,
    several: bool,
}

impl Tenancy {
    /// Reads how many tenants the server has (shredded ones count: their
    /// rows may still be in a shared database).
    pub(crate) async fn of(ex: &Executor, req: &PendingRequest) -> Result<Self, StoreError> {
        let several = ex.vault.tenants().list().await?.len() > 1;
        Ok(Self {
            tenant: req.tenant.to_string(),
            several,
        })
    }

    pub(crate) fn scope(&self) -> TenantScope<'_> {
        TenantScope {
            tenant: &self.tenant,
            several: self.several,
        }
    }

    /// How the request may reach `sys`.
    pub(crate) fn binding<'m>(&self, map: &'m DataMap, sys: &'m System) -> Binding<'m> {
        map.binding(sys, &self.scope())
    }

    /// Why the request may not reach `sys`, if it may not: names the
    /// system and the tenant only.
    pub(crate) fn refusal(&self, map: &DataMap, sys: &System) -> Option<String> {
        match self.binding(map, sys) {
            Binding::Whole | Binding::Rows(_) => None,
            Binding::OtherTenants => Some(format!(
                "system {} is bound to other tenants, not to tenant {}",
                sys.id, self.tenant
            )),
            _ => Some(format!(
                "system {} is {}",
                sys.id,
                sys.unbound_message(&self.tenant)
            )),
        }
    }

    /// Why the request may not notify `p`, if it may not.
    pub(crate) fn processor_refusal(&self, p: &Processor) -> Option<String> {
        match p.binding(&self.scope()) {
            Binding::Whole | Binding::Rows(_) => None,
            Binding::OtherTenants => Some(format!(
                "processor {} is bound to other tenants, not to tenant {}",
                p.id, self.tenant
            )),
            _ => Some(format!(
                "processor {} is {}",
                p.id,
                p.unbound_message(&self.tenant)
            )),
        }
    }
}
