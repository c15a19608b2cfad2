//! The consent ledger's view of the map's purposes. The ledger (in the
//! store) never sees the map: every surface hands it [`PurposeRule`]s made
//! here, so the HTTP API, the CLI and the request executor agree on them.

use custos_core::consent::{Basis, PurposeRule};
use custos_core::ids::Purpose as PurposeId;

use crate::{DataMap, Purpose};

impl Purpose {
    /// This purpose as the ledger's rule. `None` for an id that is not a
    /// slug (the map's checks reject those, so it cannot be asked about).
    pub fn consent_rule(&self) -> Option<PurposeRule> {
        Some(PurposeRule {
            id: PurposeId::parse(self.id.as_str()).ok()?,
            // Every basis of the map has the same key in the core.
            basis: Basis::parse(self.legal_basis.key())?,
            sale_or_sharing: self.sale_or_sharing,
            title: self.title.clone(),
            withdraw_via: self.consent.as_ref().and_then(|c| c.withdraw_via.clone()),
        })
    }
}

impl DataMap {
    /// Every purpose of the map as a rule of the consent ledger.
    pub fn consent_rules(&self) -> Vec<PurposeRule> {
        self.purposes
            .iter()
            .filter_map(Purpose::consent_rule)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn every_purpose_of_the_demo_map_is_a_rule_with_its_basis() {
        let (map, _) = crate::load_str(crate::DEMO_MAP, "demo").unwrap();
        let rules = map.consent_rules();
        assert_eq!(rules.len(), map.purposes.len());
        for (p, r) in map.purposes.iter().zip(&rules) {
            assert_eq!(r.id.as_str(), p.id.as_str());
            assert_eq!(r.basis.as_str(), p.legal_basis.key());
        }
    }
}
