//! Who else receives personal data: processors, joint controllers and
//! recipients, with their country, the safeguard of a transfer outside the
//! EEA (Chapter V), the state of their DPA, and how they are told to
//! erase or export a person's data.

use serde::{Deserialize, Serialize};

use super::{DataCategory, ProcessorId, PurposeId};

/// The role of a party that receives personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProcessorRole {
    /// Processes on the controller's behalf (Art. 28); needs a DPA.
    Processor,
    /// Decides purposes and means together with the controller (Art. 26).
    JointController,
    /// Any other recipient (Art. 4(9)), e.g. an authority.
    Recipient,
}

impl ProcessorRole {
    /// The key used in the map file.
    pub fn key(self) -> &'static str {
        match self {
            Self::Processor => "processor",
            Self::JointController => "joint_controller",
            Self::Recipient => "recipient",
        }
    }
}

/// Safeguard for a transfer to a third country (Chapter V GDPR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TransferMechanism {
    /// Adequacy decision (Art. 45).
    Adequacy,
    /// Standard contractual clauses (Art. 46(2)(c)).
    Scc,
    /// Binding corporate rules (Art. 47).
    Bcr,
}

impl TransferMechanism {
    /// The key used in the map file.
    pub fn key(self) -> &'static str {
        match self {
            Self::Adequacy => "adequacy",
            Self::Scc => "scc",
            Self::Bcr => "bcr",
        }
    }

    /// Human wording with the article, for records.
    pub fn label(self) -> &'static str {
        match self {
            Self::Adequacy => "Adequacy decision (Art. 45)",
            Self::Scc => "Standard contractual clauses (Art. 46(2)(c))",
            Self::Bcr => "Binding corporate rules (Art. 47)",
        }
    }
}

/// A processor, joint controller or recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Processor {
    /// Stable id, referenced by systems.
    pub id: ProcessorId,
    /// Legal or trading name.
    pub name: String,
    /// Its role towards the controller.
    pub role: ProcessorRole,
    /// ISO 3166-1 alpha-2 code of where the data goes (e.g. `DE`, `US`).
    pub country: String,
    /// Safeguard when `country` is outside the EEA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferMechanism>,
    /// The data processing agreement (Art. 28(3)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpa: Option<Dpa>,
    /// How erasure and access notices reach it.
    pub notify: Notify,
    /// Lets a notice URL be plain `http://`, and only to a loopback address
    /// (a processor played on the same host in tests or development). Off,
    /// notice URLs must be `https://`; see [`notice_url_refusal`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_loopback: bool,
    /// Purposes for which it receives data.
    #[serde(default)]
    pub purposes: Vec<PurposeId>,
    /// Data categories it receives beyond those of the systems it operates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<DataCategory>,
    /// The tenants whose requests it is told of; empty: bound to none (see
    /// [`Processor::binding`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
}

/// State of a data processing agreement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dpa {
    /// Whether it is signed.
    pub status: DpaStatus,
    /// Date of signature (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

/// Whether a DPA exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DpaStatus {
    /// Signed by both parties.
    Signed,
    /// Under negotiation.
    Pending,
    /// None exists.
    Missing,
    /// Not needed (joint controllers, recipients).
    NotRequired,
}

impl DpaStatus {
    /// The key used in the map file.
    pub fn key(self) -> &'static str {
        match self {
            Self::Signed => "signed",
            Self::Pending => "pending",
            Self::Missing => "missing",
            Self::NotRequired => "not_required",
        }
    }
}

/// How a processor is told to erase or export a subject's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Notify {
    /// Signed notices are POSTed to this URL.
    Url(String),
    /// Notices are emailed to this address.
    Email(String),
    /// Someone does it by hand; custos opens a manual task.
    Manual,
}

/// Why custos refuses to send a processor's notices to `url`, or `None` if
/// it may: notices carry the person's identities, so they go over TLS
/// (`https://`) only. Plain `http://` is allowed to a loopback IP address
/// (`127.0.0.0/8`, `::1`; a name could resolve anywhere) and only when the
/// map says so on that processor (`allow_insecure_loopback: true`). Checked
/// by the map's validation and again by the executor before each notice.
pub fn notice_url_refusal(url: &str, allow_insecure_loopback: bool) -> Option<String> {
    let lower = url
        .get(..8)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if lower.starts_with("https://") {
        return None;
    }
    if !lower.starts_with("http://") {
        return Some("a notice URL must start with https://".into());
    }
    if !allow_insecure_loopback {
        return Some(
            "a notice URL must be https:// (plain http:// is allowed only to a loopback \
             address with `allow_insecure_loopback: true` on the processor)"
                .into(),
        );
    }
    if is_loopback_host(url.get(7..).unwrap_or_default()) {
        None
    } else {
        Some(
            "a notice URL must be https://; plain http:// is allowed only to a loopback \
             IP address (127.0.0.1, [::1]), even with `allow_insecure_loopback: true`"
                .into(),
        )
    }
}

/// Whether the authority at the start of `rest` (what follows `http://`)
/// names a loopback IP address literally.
fn is_loopback_host(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Userinfo is never expected in a notice URL; with it the host is
    // ambiguous to readers, so it is not loopback.
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, port)) if port.is_empty() || port.starts_with(':') => h,
            _ => return false,
        },
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::notice_url_refusal;

    #[test]
    fn notice_urls_are_https_or_flagged_loopback_http() {
        for ok in ["https://vendor.example/n", "HTTPS://vendor.example"] {
            assert_eq!(notice_url_refusal(ok, false), None, "{ok}");
        }
        for ok in [
            "http://127.0.0.1:8080/n",
            "http://127.9.9.9/n",
            "http://[::1]:99/n?x",
        ] {
            assert_eq!(notice_url_refusal(ok, true), None, "{ok}");
            assert!(notice_url_refusal(ok, false).is_some(), "{ok}");
        }
        for bad in [
            "http://vendor.example/n",
            "http://localhost/n",
            "http://10.0.0.1/n",
            "http://127.0.0.1.evil.example/n",
            "http://evil.example@127.0.0.1/n",
            "http://[::1]x/n",
            "ftp://127.0.0.1/n",
            "",
        ] {
            assert!(notice_url_refusal(bad, true).is_some(), "{bad}");
        }
    }
}
