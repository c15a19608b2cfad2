//! A readable terminal summary of a map (`custos map show`).

use std::fmt::Write as _;

use crate::model::*;

fn list<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The summary text: organisation, purposes, processors, then every system
/// with its datasets and fields.
pub fn summary(map: &DataMap) -> String {
    let mut o = String::new();
    let org = &map.organisation;
    let _ = write!(o, "{}", org.controller);
    if let Some(u) = &map.updated {
        let _ = write!(o, " (map as of {u})");
    }
    let _ = writeln!(o, "\n  contact: {}", org.contact);
    if let Some(d) = &org.dpo {
        let _ = writeln!(o, "  DPO: {} <{}>", d.name, d.contact);
    }
    if let Some(r) = &org.eu_representative {
        let _ = writeln!(o, "  EU representative: {} <{}>", r.name, r.contact);
    }
    let fields: usize = map
        .systems
        .iter()
        .flat_map(|s| &s.datasets)
        .map(|d| d.fields.len())
        .sum();
    let personal: usize = map
        .systems
        .iter()
        .flat_map(|s| &s.datasets)
        .flat_map(|d| &d.fields)
        .filter(|f| f.category.iter().any(DataCategory::is_personal))
        .count();
    let datasets: usize = map.systems.iter().map(|s| s.datasets.len()).sum();
    let _ = writeln!(
        o,
        "  {} purposes, {} processors, {} systems, {datasets} datasets, {fields} fields ({personal} personal)",
        map.purposes.len(),
        map.processors.len(),
        map.systems.len()
    );

    let _ = writeln!(o, "\nPurposes");
    for p in &map.purposes {
        let mut flags = Vec::new();
        if p.mandatory {
            flags.push("mandatory".to_owned());
        }
        if p.sale_or_sharing {
            flags.push("sale/sharing (GPC)".to_owned());
        }
        if let Some(s) = p.special_category {
            flags.push(format!("Art. 9: {}", s.key()));
        }
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", flags.join(", "))
        };
        let _ = writeln!(
            o,
            "  {:<16} {:<20} {}{flags}",
            p.id,
            p.legal_basis.key(),
            p.title
        );
    }

    let _ = writeln!(o, "\nProcessors and recipients");
    for p in &map.processors {
        let transfer = p
            .transfer
            .map(|t| format!(", transfer: {}", t.key()))
            .unwrap_or_default();
        let dpa = p
            .dpa
            .as_ref()
            .map(|d| {
                format!(
                    ", DPA {}{}",
                    d.status.key(),
                    d.date
                        .as_deref()
                        .map(|x| format!(" {x}"))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {:<16} {} ({}, {}{transfer}{dpa})",
            p.id,
            p.name,
            p.role.key(),
            p.country
        );
    }

    let _ = writeln!(o, "\nSystems");
    for s in &map.systems {
        let via = s
            .processor
            .as_ref()
            .map(|p| format!(", operated by {p}"))
            .unwrap_or_default();
        let _ = writeln!(o, "  {} ({}{via})", s.id, s.kind.key());
        for d in &s.datasets {
            let mut facts = vec![format!("{} {}", d.location.key(), d.location.value())];
            for link in &d.subject {
                match link {
                    SubjectLink::Identity(f) => facts.push(format!("subject: identity {f}")),
                    SubjectLink::Via(f) => facts.push(format!("subject: via {f}")),
                    SubjectLink::ReferencedBy(r) => {
                        facts.push(format!("subject: referenced by {r}"))
                    }
                }
            }
            if let Some(r) = &d.retention {
                facts.push(format!("retention {r}"));
            }
            if let Some(e) = &d.erasure {
                facts.push(format!("erasure {}", e.describe()));
            }
            if let Some(src) = &d.derived_from {
                facts.push(format!("derived from {src}"));
            }
            let _ = writeln!(o, "    {} [{}]", d.id, facts.join("; "));
            for f in &d.fields {
                let mut extra = Vec::new();
                if let Some(i) = f.identity {
                    extra.push(format!("identity {}", i.key()));
                }
                if let Some(r) = &f.references {
                    extra.push(format!("-> {r}"));
                }
                let purposes = d.effective_purposes(f);
                if !purposes.is_empty() && f.category.iter().any(DataCategory::is_personal) {
                    extra.push(format!("for {}", list(purposes)));
                }
                if let Some(e) = &f.erasure {
                    extra.push(format!("erasure {}", e.describe()));
                }
                if let Some(r) = &f.retention {
                    extra.push(format!("retention {r}"));
                }
                let extra = if extra.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", extra.join("; "))
                };
                let _ = writeln!(o, "      {:<22} {}{extra}", f.name, list(&f.category));
            }
        }
    }
    o
}
