//! Purposes (Art. 5(1)(b)) and their lawful bases: the six bases of
//! Art. 6(1), the exceptions of Art. 9(2) for special categories, and how
//! consent is collected and withdrawn (Art. 7). The consent ledger and the
//! records of processing read these; the keys are those of the map file.

use serde::{Deserialize, Serialize};

use super::PurposeId;

/// A purpose of processing (Art. 5(1)(b)) with its lawful basis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Purpose {
    /// Stable id, referenced by fields, datasets and processors.
    pub id: PurposeId,
    /// Short title shown to people.
    pub title: String,
    /// What is done and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Lawful basis of Art. 6(1).
    pub legal_basis: LegalBasis,
    /// Note of the balancing test; required for `legitimate_interest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balancing_test: Option<String>,
    /// The law or contract clause relied upon (e.g. "§147 AO").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis_reference: Option<String>,
    /// Exception of Art. 9(2) when special categories are processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub special_category: Option<SpecialCategoryBasis>,
    /// Categories of data subjects (fideslang data subjects, e.g. `customer`).
    #[serde(default)]
    pub subjects: Vec<String>,
    /// The fideslang data use this purpose corresponds to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_use: Option<String>,
    /// Whether the service cannot be used without this purpose. A consent
    /// purpose may never be mandatory (Art. 7(4)).
    #[serde(default)]
    pub mandatory: bool,
    /// How consent is asked and withdrawn; required for `consent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentSpec>,
    /// Sale, sharing or targeted advertising: a Global Privacy Control
    /// signal opts the subject out of this purpose.
    #[serde(default)]
    pub sale_or_sharing: bool,
}

/// The six lawful bases of Art. 6(1) GDPR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LegalBasis {
    /// Art. 6(1)(a).
    Consent,
    /// Art. 6(1)(b).
    Contract,
    /// Art. 6(1)(c).
    LegalObligation,
    /// Art. 6(1)(d).
    VitalInterest,
    /// Art. 6(1)(e).
    PublicTask,
    /// Art. 6(1)(f); needs a balancing test.
    LegitimateInterest,
}

impl LegalBasis {
    /// Every basis, in the order of the regulation.
    pub const ALL: [LegalBasis; 6] = [
        LegalBasis::Consent,
        LegalBasis::Contract,
        LegalBasis::LegalObligation,
        LegalBasis::VitalInterest,
        LegalBasis::PublicTask,
        LegalBasis::LegitimateInterest,
    ];

    /// The key used in the map file.
    pub fn key(self) -> &'static str {
        match self {
            LegalBasis::Consent => "consent",
            LegalBasis::Contract => "contract",
            LegalBasis::LegalObligation => "legal_obligation",
            LegalBasis::VitalInterest => "vital_interest",
            LegalBasis::PublicTask => "public_task",
            LegalBasis::LegitimateInterest => "legitimate_interest",
        }
    }

    /// Human wording with the article, for records.
    pub fn label(self) -> &'static str {
        match self {
            LegalBasis::Consent => "Consent (Art. 6(1)(a))",
            LegalBasis::Contract => "Contract (Art. 6(1)(b))",
            LegalBasis::LegalObligation => "Legal obligation (Art. 6(1)(c))",
            LegalBasis::VitalInterest => "Vital interests (Art. 6(1)(d))",
            LegalBasis::PublicTask => "Public task (Art. 6(1)(e))",
            LegalBasis::LegitimateInterest => "Legitimate interests (Art. 6(1)(f))",
        }
    }
}

/// The exceptions of Art. 9(2) GDPR that allow special categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SpecialCategoryBasis {
    /// Art. 9(2)(a).
    ExplicitConsent,
    /// Art. 9(2)(b).
    Employment,
    /// Art. 9(2)(c).
    VitalInterest,
    /// Art. 9(2)(d).
    NotForProfit,
    /// Art. 9(2)(e).
    MadePublic,
    /// Art. 9(2)(f).
    LegalClaims,
    /// Art. 9(2)(g).
    SubstantialPublicInterest,
    /// Art. 9(2)(h).
    HealthCare,
    /// Art. 9(2)(i).
    PublicHealth,
    /// Art. 9(2)(j).
    Research,
}

impl SpecialCategoryBasis {
    /// Every exception, in the order of the regulation.
    pub const ALL: [SpecialCategoryBasis; 10] = [
        SpecialCategoryBasis::ExplicitConsent,
        SpecialCategoryBasis::Employment,
        SpecialCategoryBasis::VitalInterest,
        SpecialCategoryBasis::NotForProfit,
        SpecialCategoryBasis::MadePublic,
        SpecialCategoryBasis::LegalClaims,
        SpecialCategoryBasis::SubstantialPublicInterest,
        SpecialCategoryBasis::HealthCare,
        SpecialCategoryBasis::PublicHealth,
        SpecialCategoryBasis::Research,
    ];

    /// The key used in the map file.
    pub fn key(self) -> &'static str {
        match self {
            Self::ExplicitConsent => "explicit_consent",
            Self::Employment => "employment",
            Self::VitalInterest => "vital_interest",
            Self::NotForProfit => "not_for_profit",
            Self::MadePublic => "made_public",
            Self::LegalClaims => "legal_claims",
            Self::SubstantialPublicInterest => "substantial_public_interest",
            Self::HealthCare => "health_care",
            Self::PublicHealth => "public_health",
            Self::Research => "research",
        }
    }

    /// Human wording with the article, for records.
    pub fn label(self) -> &'static str {
        match self {
            Self::ExplicitConsent => "Explicit consent (Art. 9(2)(a))",
            Self::Employment => "Employment and social security law (Art. 9(2)(b))",
            Self::VitalInterest => "Vital interests (Art. 9(2)(c))",
            Self::NotForProfit => "Not-for-profit body (Art. 9(2)(d))",
            Self::MadePublic => "Made public by the subject (Art. 9(2)(e))",
            Self::LegalClaims => "Legal claims (Art. 9(2)(f))",
            Self::SubstantialPublicInterest => "Substantial public interest (Art. 9(2)(g))",
            Self::HealthCare => "Health or social care (Art. 9(2)(h))",
            Self::PublicHealth => "Public health (Art. 9(2)(i))",
            Self::Research => "Archiving, research or statistics (Art. 9(2)(j))",
        }
    }
}

/// How consent for a purpose is collected and withdrawn (Art. 7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentSpec {
    /// Where and how consent is asked (e.g. "newsletter checkbox at signup").
    pub collected_via: String,
    /// Where it is withdrawn; withdrawing must be as easy as giving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdraw_via: Option<String>,
}
