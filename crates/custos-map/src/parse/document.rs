//! The top of the map: the document itself, the organisation and its
//! contacts, the controllers served (Art. 30(2)), purposes with their
//! lawful bases and consent, and processors with their DPA and how they
//! are notified. Systems and what they hold are read in
//! [`super::systems`].

use super::reader::{Path, ROOT};
use super::{is_null, valid_date, Parser};
use crate::model::*;
use crate::tree::{View, M, N};

impl<'d> Parser<'_> {
    pub(super) fn data_map(&mut self, root: N<'d>) -> Option<DataMap> {
        let m = self.mapping(
            root,
            &ROOT,
            "the map",
            &[
                "version",
                "updated",
                "organisation",
                "purposes",
                "processors",
                "systems",
                "on_behalf_of",
            ],
        )?;
        let version = match Self::get(m, "version") {
            None => Some(1),
            Some(n) => match n.scalar().and_then(|s| s.parse::<u32>().ok()) {
                Some(1) => Some(1),
                _ => {
                    self.error(
                        "invalid-value",
                        n.pos(),
                        &Path::Key(&ROOT, "version"),
                        "unsupported map version".into(),
                        Some("this custos reads `version: 1`".into()),
                    );
                    None
                }
            },
        };
        let updated = self.opt_str(m, &ROOT, "updated").ok().flatten();
        if let (Some(u), Some(n)) = (&updated, m.get("updated")) {
            if !valid_date(u) {
                self.error(
                    "invalid-value",
                    n.pos(),
                    &Path::Key(&ROOT, "updated"),
                    format!("`{u}` is not a date"),
                    Some("write YYYY-MM-DD".into()),
                );
            }
        }
        let organisation = match Self::get(m, "organisation") {
            Some(n) => self.organisation(n),
            None => {
                self.missing(
                    m,
                    &ROOT,
                    "organisation",
                    "the map",
                    "add `organisation:` with `controller:` and `contact:`",
                );
                None
            }
        };
        let purposes: Option<Vec<Purpose>> = self.items(m, &ROOT, "purposes", "id", Self::purpose);
        let processors: Option<Vec<Processor>> =
            self.items(m, &ROOT, "processors", "id", Self::processor);
        let systems: Option<Vec<System>> = self.items(m, &ROOT, "systems", "id", Self::system);
        let on_behalf_of: Option<Vec<ClientController>> =
            self.items(m, &ROOT, "on_behalf_of", "name", Self::client);
        Some(DataMap {
            version: version?,
            updated,
            organisation: organisation?,
            purposes: purposes?,
            processors: processors?,
            systems: systems?,
            on_behalf_of: on_behalf_of?,
        })
    }

    fn contact(&mut self, node: N<'d>, path: &Path<'_>, what: &str) -> Option<Contact> {
        let m = self.mapping(node, path, what, &["name", "contact"])?;
        let name = self.req_str(m, path, "name", what, "add `name:`");
        let contact = self.req_str(
            m,
            path,
            "contact",
            what,
            "add `contact:` with an email address or URL",
        );
        Some(Contact {
            name: name?,
            contact: contact?,
        })
    }

    fn organisation(&mut self, node: N<'d>) -> Option<Organisation> {
        let path = &Path::Key(&ROOT, "organisation");
        let m = self.mapping(
            node,
            path,
            "organisation",
            &[
                "controller",
                "address",
                "contact",
                "dpo",
                "eu_representative",
                "security_measures",
            ],
        )?;
        let controller = self.req_str(
            m,
            path,
            "controller",
            "organisation",
            "add `controller:` with the legal name of the controller",
        );
        let address = self.opt_str(m, path, "address");
        let contact = self.req_str(
            m,
            path,
            "contact",
            "organisation",
            "add `contact:` with the privacy contact (email or URL)",
        );
        let dpo = match Self::get(m, "dpo") {
            Some(n) => self
                .contact(n, &Path::Key(path, "dpo"), "the DPO")
                .map(Some),
            None => Some(None),
        };
        let rep = match Self::get(m, "eu_representative") {
            Some(n) => self
                .contact(
                    n,
                    &Path::Key(path, "eu_representative"),
                    "the EU representative",
                )
                .map(Some),
            None => Some(None),
        };
        let measures = self.measures(m, path, "security_measures");
        Some(Organisation {
            controller: controller?,
            address: address.ok()?,
            contact: contact?,
            dpo: dpo?,
            eu_representative: rep?,
            security_measures: measures?,
        })
    }

    /// A list of measures, each a text that says something: an empty or
    /// null entry would print as a blank measure in the record.
    fn measures(&mut self, m: M<'d>, path: &Path<'_>, key: &str) -> Option<Vec<String>> {
        let list = self.opt_list(m, path, key).ok()?;
        let items = Self::get(m, key).and_then(|n| n.sequence());
        let list_path = Path::Key(path, key);
        let mut ok = true;
        for (i, text) in list.iter().enumerate() {
            if is_null(text.trim()) {
                self.error(
                    "invalid-value",
                    items.and_then(|s| s.get(i)).and_then(|n| n.pos()),
                    &Path::Index(&list_path, i),
                    format!("entry {} of `{key}` is empty", i + 1),
                    Some("describe the measure, e.g. `Staff are trained in data protection every year`, or remove the entry".into()),
                );
                ok = false;
            }
        }
        ok.then_some(list)
    }

    fn client(&mut self, node: N<'d>, path: &Path<'_>) -> Option<ClientController> {
        let m = self.mapping(
            node,
            path,
            "a controller served",
            &["name", "contact", "purposes"],
        )?;
        let name = self.req_str(m, path, "name", "a controller served", "add `name:`");
        let contact = self.req_str(m, path, "contact", "a controller served", "add `contact:`");
        let purposes = self.opt_list(m, path, "purposes");
        Some(ClientController {
            name: name?,
            contact: contact?,
            purposes: purposes.ok()?.into_iter().map(PurposeId).collect(),
        })
    }

    fn purpose(&mut self, node: N<'d>, path: &Path<'_>) -> Option<Purpose> {
        let what = "a purpose";
        let m = self.mapping(
            node,
            path,
            what,
            &[
                "id",
                "title",
                "description",
                "legal_basis",
                "balancing_test",
                "basis_reference",
                "special_category",
                "subjects",
                "data_use",
                "mandatory",
                "consent",
                "sale_or_sharing",
            ],
        )?;
        let id = self.id(m, path, "id", what);
        let title = self.req_str(
            m,
            path,
            "title",
            what,
            "add `title:` with a short name people understand",
        );
        let description = self.opt_str(m, path, "description");
        let bases: Vec<(&str, LegalBasis)> =
            LegalBasis::ALL.iter().map(|b| (b.key(), *b)).collect();
        let legal_basis = self.req_keyword(
            m,
            path,
            "legal_basis",
            "legal basis",
            "the purpose",
            &bases,
            "add `legal_basis:` with one of consent, contract, legal_obligation, vital_interest, public_task, legitimate_interest (Art. 6(1))",
        );
        let balancing_test = self.opt_str(m, path, "balancing_test");
        let basis_reference = self.opt_str(m, path, "basis_reference");
        let specials: Vec<(&str, SpecialCategoryBasis)> = SpecialCategoryBasis::ALL
            .iter()
            .map(|b| (b.key(), *b))
            .collect();
        let special_category = match Self::get(m, "special_category") {
            Some(n) => self
                .keyword(
                    n,
                    &Path::Key(path, "special_category"),
                    "Art. 9(2) exception",
                    &specials,
                )
                .map(Some),
            None => Some(None),
        };
        let subjects = self.opt_list(m, path, "subjects");
        let data_use = self.opt_str(m, path, "data_use");
        let mandatory = self.opt_bool(m, path, "mandatory");
        let sale_or_sharing = self.opt_bool(m, path, "sale_or_sharing");
        let consent = match Self::get(m, "consent") {
            Some(n) => {
                let cp = Path::Key(path, "consent");
                match self.mapping(n, &cp, "consent", &["collected_via", "withdraw_via"]) {
                    Some(cm) => {
                        let collected_via = self.req_str(cm, &cp, "collected_via", "consent", "say where consent is asked, e.g. `collected_via: signup form checkbox`");
                        let withdraw_via = self.opt_str(cm, &cp, "withdraw_via");
                        match (collected_via, withdraw_via) {
                            (Some(c), Ok(w)) => Some(Some(ConsentSpec {
                                collected_via: c,
                                withdraw_via: w,
                            })),
                            _ => None,
                        }
                    }
                    None => None,
                }
            }
            None => Some(None),
        };
        Some(Purpose {
            id: PurposeId(id?),
            title: title?,
            description: description.ok()?,
            legal_basis: legal_basis?,
            balancing_test: balancing_test.ok()?,
            basis_reference: basis_reference.ok()?,
            special_category: special_category?,
            subjects: subjects.ok()?,
            data_use: data_use.ok()?,
            mandatory: mandatory.ok()?,
            consent: consent?,
            sale_or_sharing: sale_or_sharing.ok()?,
        })
    }

    fn processor(&mut self, node: N<'d>, path: &Path<'_>) -> Option<Processor> {
        let what = "a processor";
        let m = self.mapping(
            node,
            path,
            what,
            &[
                "id",
                "name",
                "role",
                "country",
                "transfer",
                "dpa",
                "notify",
                "purposes",
                "categories",
                "tenants",
                "allow_insecure_loopback",
            ],
        )?;
        let id = self.id(m, path, "id", what);
        let name = self.req_str(m, path, "name", what, "add `name:` with the company's name");
        let roles = [
            ("processor", ProcessorRole::Processor),
            ("joint_controller", ProcessorRole::JointController),
            ("recipient", ProcessorRole::Recipient),
        ];
        let role = self.req_keyword(
            m,
            path,
            "role",
            "role",
            "the processor",
            &roles,
            "add `role:` with processor, joint_controller or recipient",
        );
        let country = self.req_str(
            m,
            path,
            "country",
            what,
            "add `country:` with the ISO 3166 code where the data goes, e.g. `DE` or `US`",
        );
        if let (Some(c), Some(n)) = (&country, m.get("country")) {
            if c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
                self.error(
                    "invalid-value",
                    n.pos(),
                    &Path::Key(path, "country"),
                    format!("country `{c}` is not an ISO 3166-1 alpha-2 code"),
                    Some("write two capital letters, e.g. `DE`, `IE`, `US`".into()),
                );
            }
        }
        let mechanisms = [
            ("adequacy", TransferMechanism::Adequacy),
            ("scc", TransferMechanism::Scc),
            ("bcr", TransferMechanism::Bcr),
        ];
        let transfer = match Self::get(m, "transfer") {
            Some(n) => self
                .keyword(
                    n,
                    &Path::Key(path, "transfer"),
                    "transfer mechanism",
                    &mechanisms,
                )
                .map(Some),
            None => Some(None),
        };
        let dpa = match Self::get(m, "dpa") {
            Some(n) => self.dpa(n, &Path::Key(path, "dpa")).map(Some),
            None => Some(None),
        };
        let notify = match Self::get(m, "notify") {
            Some(n) => self.notify(n, &Path::Key(path, "notify")),
            None => {
                self.missing(
                    m,
                    path,
                    "notify",
                    "the processor",
                    "add `notify:` with `{ url: ... }`, `{ email: ... }` or `manual`",
                );
                None
            }
        };
        let insecure = self.opt_bool(m, path, "allow_insecure_loopback");
        if let (Some(Notify::Url(u)), Ok(allow)) = (&notify, insecure) {
            if let Some(why) = notice_url_refusal(u, allow) {
                let at = Self::get(m, "notify").and_then(|n| n.pos());
                let hint = if allow {
                    "point the notice at https://, or at http://127.0.0.1:<port> for a local processor"
                } else {
                    "use the processor's https:// URL; for a processor on this host in tests, \
                     add `allow_insecure_loopback: true` to the processor"
                };
                self.error(
                    "insecure-url",
                    at,
                    &Path::Key(&Path::Key(path, "notify"), "url"),
                    format!("notice URL refused: {why}"),
                    Some(hint.into()),
                );
                return None;
            }
        }
        if insecure == Ok(true) && !matches!(notify, Some(Notify::Url(_))) {
            self.error(
                "invalid-value",
                Self::get(m, "allow_insecure_loopback").and_then(|n| n.pos()),
                &Path::Key(path, "allow_insecure_loopback"),
                "`allow_insecure_loopback` applies only to a `notify: { url: ... }`".into(),
                Some("remove it".into()),
            );
            return None;
        }
        let purposes = self.opt_list(m, path, "purposes");
        let categories = self.opt_list(m, path, "categories");
        let tenants = self.tenant_list(m, path);
        Some(Processor {
            id: ProcessorId(id?),
            name: name?,
            role: role?,
            country: country?,
            transfer: transfer?,
            dpa: dpa?,
            notify: notify?,
            allow_insecure_loopback: insecure.ok()?,
            purposes: purposes.ok()?.into_iter().map(PurposeId).collect(),
            categories: categories.ok()?.into_iter().map(DataCategory).collect(),
            tenants: tenants?,
        })
    }

    fn dpa(&mut self, node: N<'d>, path: &Path<'_>) -> Option<Dpa> {
        let m = self.mapping(node, path, "dpa", &["status", "date"])?;
        let statuses = [
            ("signed", DpaStatus::Signed),
            ("pending", DpaStatus::Pending),
            ("missing", DpaStatus::Missing),
            ("not_required", DpaStatus::NotRequired),
        ];
        let status = self.req_keyword(
            m,
            path,
            "status",
            "DPA status",
            "dpa",
            &statuses,
            "add `status:` with signed, pending, missing or not_required",
        );
        let date = self.opt_str(m, path, "date").ok()?;
        if let (Some(d), Some(n)) = (&date, m.get("date")) {
            if !valid_date(d) {
                self.error(
                    "invalid-value",
                    n.pos(),
                    &Path::Key(path, "date"),
                    format!("`{d}` is not a date"),
                    Some("write YYYY-MM-DD".into()),
                );
                return None;
            }
        }
        Some(Dpa {
            status: status?,
            date,
        })
    }

    fn notify(&mut self, node: N<'d>, path: &Path<'_>) -> Option<Notify> {
        let hint = "write `notify: { url: https://... }`, `notify: { email: privacy@... }` or `notify: manual`";
        match node.view() {
            View::Scalar("manual") => Some(Notify::Manual),
            View::Mapping => {
                let m = self.mapping(node, path, "notify", &["url", "email"])?;
                let url = self.opt_str(m, path, "url").ok()?;
                let email = self.opt_str(m, path, "email").ok()?;
                match (url, email) {
                    (Some(u), None) => {
                        if !(u.starts_with("https://") || u.starts_with("http://")) {
                            self.error("invalid-value", m.get("url").and_then(|n| n.pos()), &Path::Key(path, "url"), format!("`{u}` is not an http(s) URL"), Some("write the full URL, e.g. https://vendor.example/custos/notices".into()));
                            return None;
                        }
                        Some(Notify::Url(u))
                    }
                    (None, Some(e)) => {
                        if !e.contains('@') {
                            self.error(
                                "invalid-value",
                                m.get("email").and_then(|n| n.pos()),
                                &Path::Key(path, "email"),
                                format!("`{e}` is not an email address"),
                                None,
                            );
                            return None;
                        }
                        Some(Notify::Email(e))
                    }
                    _ => {
                        self.error(
                            "invalid-value",
                            node.pos(),
                            path,
                            "notify needs exactly one of `url` or `email`".into(),
                            Some(hint.into()),
                        );
                        None
                    }
                }
            }
            _ => {
                self.error(
                    "invalid-value",
                    node.pos(),
                    path,
                    "unknown notification method".into(),
                    Some(hint.into()),
                );
                None
            }
        }
    }
}
