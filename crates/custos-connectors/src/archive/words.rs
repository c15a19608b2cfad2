//! The map's facts in plain words for the person: data categories,
//! retention periods, legal bases, recipients' roles and transfers, kinds
//! of systems and locations.
//!
//! Invariants: plain text, not HTML (the page escapes it); every value of
//! the map has a wording, falling back to its own key, so nothing is left
//! out of the page; no value of the person is ever worded here.

use std::fmt::Write as _;

use custos_map::validate::in_eea;
use custos_map::{
    DataCategory, DurationUnit, LegalBasis, Location, Processor, ProcessorRole, Purpose, Retention,
    RetentionStart, SystemKind,
};

/// Human wording of a data category for the person: common fideslang keys
/// in words, the key itself otherwise.
pub(super) fn category_label(c: &DataCategory) -> String {
    let label = match c.as_str() {
        "user.contact.email" => "email address",
        "user.contact.phone_number" => "phone number",
        "user.contact.address" => "postal address",
        "user.contact.address.street" => "street and house number",
        "user.contact.address.postal_code" => "postal code",
        "user.contact.address.city" => "city",
        "user.contact.address.state" => "state or region",
        "user.contact.address.country" => "country",
        "user.contact.organization" => "organisation or company",
        "user.contact.url" => "website",
        "user.contact" => "contact details",
        "user.name" => "name",
        "user.name.first" => "first name",
        "user.name.last" => "last name",
        "user.unique_id" => "identifier (e.g. your user id)",
        "user.unique_id.pseudonymous" => "pseudonymous identifier",
        "user.job_title" => "job title",
        "user.workplace" => "workplace and employment details",
        "user.privacy_preferences" => "privacy choices (e.g. newsletter or cookie settings)",
        "user.financial" => "financial information (e.g. amounts paid)",
        "user.financial.credit_card" => "payment card details",
        "user.financial.bank_account" => "bank account details",
        "user.content" => "content you created",
        "user.content.public" => "content you published",
        "user.content.private" => "private messages and content",
        "user.content.self_image" => "pictures of you",
        "user.behavior" => "how you use our service",
        "user.behavior.browsing_history" => "pages you visited",
        "user.behavior.purchase_history" => "purchase history",
        "user.device" => "device information (e.g. browser)",
        "user.device.ip_address" => "IP address",
        "user.device.cookie_id" => "cookie identifier",
        "user.device.device_id" => "device identifier",
        "user.location" => "location",
        "user.account" => "account information",
        "user.authorization" => "login information",
        "user.authorization.credentials" => "login credentials",
        "user.authorization.password" => "password (stored hashed)",
        "user.demographic" => "demographic information",
        "user.demographic.date_of_birth" => "date of birth",
        "user.demographic.age_range" => "age range",
        "user.demographic.gender" => "gender",
        "user.government_id" => "government identification number",
        "user.health_and_medical" => "health information",
        "user.biometric" => "biometric data",
        _ => return c.as_str().to_owned(),
    };
    label.to_owned()
}

fn duration_words(r: &Retention) -> String {
    let n = r.period.amount();
    let unit = match (r.period.unit(), n) {
        (DurationUnit::Days, 1) => "day",
        (DurationUnit::Days, _) => "days",
        (DurationUnit::Weeks, 1) => "week",
        (DurationUnit::Weeks, _) => "weeks",
        (DurationUnit::Months, 1) => "month",
        (DurationUnit::Months, _) => "months",
        (DurationUnit::Years, 1) => "year",
        (DurationUnit::Years, _) => "years",
        _ => return r.period.to_string(),
    };
    format!("{n} {unit}")
}

pub(super) fn retention_words(r: &Retention) -> String {
    let period = duration_words(r);
    match &r.from {
        RetentionStart::FromEvent(e) => format!("{period} after {}", e.replace('_', " ")),
        RetentionStart::FromColumn(c) => {
            format!("{period} from the {} date", c.replace('_', " "))
        }
        _ => period,
    }
}

pub(super) fn basis_words(p: &Purpose) -> String {
    let mut s = match p.legal_basis {
        LegalBasis::Consent => {
            "your consent (Art. 6(1)(a) GDPR), which you can withdraw at any time".to_owned()
        }
        LegalBasis::Contract => {
            "necessary for our contract with you (Art. 6(1)(b) GDPR)".to_owned()
        }
        LegalBasis::LegalObligation => {
            "necessary to meet a legal obligation (Art. 6(1)(c) GDPR)".to_owned()
        }
        LegalBasis::VitalInterest => {
            "necessary to protect someone's vital interests (Art. 6(1)(d) GDPR)".to_owned()
        }
        LegalBasis::PublicTask => {
            "necessary for a task in the public interest (Art. 6(1)(e) GDPR)".to_owned()
        }
        LegalBasis::LegitimateInterest => "our legitimate interests (Art. 6(1)(f) GDPR)".to_owned(),
        other => other.label().to_owned(),
    };
    if let Some(r) = &p.basis_reference {
        let _ = write!(s, ": {r}");
    }
    if let Some(sc) = p.special_category {
        let _ = write!(s, "; for special categories of data: {}", sc.label());
    }
    if let Some(w) = p.consent.as_ref().and_then(|c| c.withdraw_via.as_ref()) {
        let _ = write!(s, " (to withdraw: {w})");
    }
    s
}

pub(super) fn role_words(role: ProcessorRole) -> &'static str {
    match role {
        ProcessorRole::Processor => "processes it on our behalf",
        ProcessorRole::JointController => "decides on it jointly with us (joint controller)",
        ProcessorRole::Recipient => "receives it",
        _ => "receives it",
    }
}

pub(super) fn transfer_words(p: &Processor) -> String {
    if in_eea(&p.country) {
        format!("{}, in the EEA", p.country)
    } else {
        match p.transfer {
            Some(t) => format!("{}, outside the EEA; safeguard: {}", p.country, t.label()),
            None => format!("{}, outside the EEA; no safeguard recorded", p.country),
        }
    }
}

pub(super) fn system_kind_words(k: SystemKind) -> &'static str {
    match k {
        SystemKind::Vault => "our encrypted vault",
        SystemKind::Postgres | SystemKind::Mysql | SystemKind::Sqlite => "a database",
        SystemKind::Files => "file storage",
        SystemKind::Redis => "a cache",
        SystemKind::Http => "a service provider's system",
        SystemKind::Manual => "paper or offline records",
        _ => "a system",
    }
}

pub(super) fn location_words(l: &Location) -> String {
    let v = l.value();
    match l {
        Location::Table(_) => format!("table {v}"),
        Location::Collection(_) => format!("collection {v}"),
        Location::Path(_) => format!("files at {v}"),
        Location::Key(_) => format!("entries {v}"),
        Location::Endpoint(_) => format!("records at {v}"),
        Location::Place(_) => format!("kept at: {v}"),
        _ => v.to_owned(),
    }
}

pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}
