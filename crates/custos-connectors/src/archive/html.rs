//! `index.html`: the plain-language page that answers Art. 15(1)(a)–(h)
//! and 15(2) GDPR for every dataset holding the person's data — what,
//! where, why, how long, who receives it, the source — with links to the
//! copies, then the datasets searched without result, the person's rights
//! and the absence of automated decisions.
//!
//! Invariants: every value, the map's and the person's, is HTML-escaped;
//! links are percent-encoded entry names of this archive only; the page
//! loads nothing from elsewhere (its content security policy allows inline
//! style and the archive's own images only); of the person's data it shows
//! counts and file names, never the values of records, which are in the
//! data files only.

use std::fmt::Write as _;

use custos_map::ropa::escape;
use custos_map::{DataCategory, DataMap, ErasureStrategy, Processor, PurposeId};

use super::layout::Part;
use super::words::{
    basis_words, category_label, location_words, plural, retention_words, role_words,
    system_kind_words, transfer_words,
};
use super::ArchiveInput;

/// Percent-encodes a relative entry name for an `href` (then HTML-escaped
/// by the caller); `/` stays a separator.
fn href(path: &str) -> String {
    let mut o = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            o.push(char::from(b));
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

fn link(path: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", escape(&href(path)), escape(text))
}

fn ul(items: &[String]) -> String {
    let mut o = String::from("<ul>");
    for i in items {
        let _ = write!(o, "<li>{i}</li>");
    }
    o.push_str("</ul>");
    o
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b;line-height:1.45}\
h1{font-size:1.6rem}h2{font-size:1.3rem;border-bottom:2px solid #333;padding-bottom:.2rem;margin-top:2rem}h3{font-size:1.1rem;margin-bottom:.3rem}\
table{border-collapse:collapse;width:100%;margin-bottom:1.2rem}th,td{border:1px solid #999;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#eee;width:11rem}ul{margin:0;padding-left:1.1rem}.muted{color:#555}";

/// What the map says about one exported dataset, in words; every string
/// is already HTML.
struct Explained {
    what: String,
    where_: String,
    why: String,
    how_long: String,
    recipients: String,
    source: String,
}

fn explain(map: &DataMap, p: &Part<'_>) -> Explained {
    let system_text = match p.system {
        Some(sys) => format!(
            "{} — {}",
            escape(&upper_first(system_kind_words(sys.kind))),
            escape(trim_period(
                sys.description.as_deref().unwrap_or(sys.id.as_str())
            ))
        ),
        None => escape(p.system_id.as_str()),
    };
    let Some(d) = p.dataset else {
        let unknown = "Not described in our data map; please ask us.".to_owned();
        return Explained {
            what: "See the records.".to_owned(),
            where_: format!(
                "{system_text}, dataset {}",
                escape(p.export.dataset.as_str())
            ),
            why: unknown.clone(),
            how_long: unknown.clone(),
            recipients: unknown,
            source: "Collected from you or created by your use of our service.".to_owned(),
        };
    };
    let personal: Vec<_> = d
        .fields
        .iter()
        .filter(|f| f.category.iter().any(DataCategory::is_personal))
        .collect();

    // What: label → fields, in field order.
    let mut what: Vec<(String, bool, Vec<&str>)> = Vec::new();
    for f in &personal {
        for c in f.category.iter().filter(|c| c.is_personal()) {
            let label = category_label(c);
            match what.iter_mut().find(|(l, _, _)| *l == label) {
                Some((_, special, fields)) => {
                    *special |= c.is_special();
                    if !fields.contains(&f.name.as_str()) {
                        fields.push(&f.name);
                    }
                }
                None => what.push((label, c.is_special(), vec![&f.name])),
            }
        }
    }
    let what = if what.is_empty() {
        "No personal data is recorded for this dataset in our data map.".to_owned()
    } else {
        ul(&what
            .iter()
            .map(|(label, special, fields)| {
                let mut s = escape(label);
                if *special {
                    s.push_str(" <em>(special category of data, Art. 9 GDPR)</em>");
                }
                let cols: Vec<String> = fields
                    .iter()
                    .map(|f| format!("<code>{}</code>", escape(f)))
                    .collect();
                let _ = write!(s, " — {}", cols.join(", "));
                s
            })
            .collect::<Vec<_>>())
    };

    let where_ = match &d.description {
        Some(desc) => format!(
            "{system_text}; {} ({})",
            escape(trim_period(desc)),
            escape(&location_words(&d.location))
        ),
        None => format!("{system_text}; {}", escape(&location_words(&d.location))),
    };

    // Why: the purposes of the personal fields, in order.
    let mut purposes: Vec<&PurposeId> = Vec::new();
    for f in &personal {
        for id in d.effective_purposes(f) {
            if !purposes.contains(&id) {
                purposes.push(id);
            }
        }
    }
    if purposes.is_empty() {
        purposes.extend(d.purposes.iter());
    }
    let why = if purposes.is_empty() {
        "No purpose is recorded in our data map.".to_owned()
    } else {
        ul(&purposes
            .iter()
            .map(|id| match map.purpose(id) {
                Some(p) => {
                    let mut s = format!("<strong>{}</strong>", escape(&p.title));
                    if let Some(desc) = &p.description {
                        let _ = write!(s, ": {}", escape(desc));
                    }
                    let _ = write!(s, "<br>Legal basis: {}", escape(&basis_words(p)));
                    s
                }
                None => escape(id.as_str()),
            })
            .collect::<Vec<_>>())
    };

    // How long: distinct periods, with the fields they apply to when they differ.
    let mut periods: Vec<(String, Vec<&str>)> = Vec::new();
    let mut kept: Vec<String> = Vec::new();
    for f in &personal {
        let phrase = match d.effective_retention(f) {
            Some(r) => retention_words(r),
            None => match &d.derived_from {
                Some(src) => format!("deleted together with the data it is made from ({src})"),
                None => "no period is recorded in our data map".to_owned(),
            },
        };
        match periods.iter_mut().find(|(p, _)| *p == phrase) {
            Some((_, fields)) => fields.push(&f.name),
            None => periods.push((phrase, vec![&f.name])),
        }
        if let ErasureStrategy::Retain(spec) = d.effective_erasure(f) {
            let line = format!(
                "If you ask us to erase it, we must still keep it for {} ({}).",
                retention_words(&spec.retention),
                spec.ground
            );
            if !kept.contains(&line) {
                kept.push(line);
            }
        }
    }
    let mut how_long = match periods.as_slice() {
        [] => "No period is recorded in our data map.".to_owned(),
        [(phrase, _)] => escape(&upper_first(phrase)),
        many => ul(&many
            .iter()
            .map(|(phrase, fields)| {
                let cols: Vec<String> = fields
                    .iter()
                    .map(|f| format!("<code>{}</code>", escape(f)))
                    .collect();
                format!("{}: {}", cols.join(", "), escape(phrase))
            })
            .collect::<Vec<_>>()),
    };
    for k in &kept {
        let _ = write!(how_long, "<br>{}", escape(k));
    }

    // Who receives it: the system's operator, and recipients of its purposes.
    let mut recipients: Vec<(&Processor, Vec<String>)> = Vec::new();
    if let Some(pr) = p
        .system
        .and_then(|s| s.processor.as_ref())
        .and_then(|id| map.processor(id))
    {
        recipients.push((
            pr,
            vec!["hosts or runs the system it is stored in".to_owned()],
        ));
    }
    for pr in &map.processors {
        let titles: Vec<String> = purposes
            .iter()
            .filter(|id| pr.purposes.contains(id))
            .map(|id| map.purpose(id).map_or(id.to_string(), |p| p.title.clone()))
            .collect();
        if titles.is_empty() {
            continue;
        }
        let reason = format!("for: {}", titles.join(", "));
        match recipients.iter_mut().find(|(r, _)| r.id == pr.id) {
            Some((_, reasons)) => reasons.push(reason),
            None => recipients.push((pr, vec![reason])),
        }
    }
    let recipients = if recipients.is_empty() {
        "Nobody outside our organisation.".to_owned()
    } else {
        ul(&recipients
            .iter()
            .map(|(pr, reasons)| {
                format!(
                    "<strong>{}</strong> — {}; {} ({})",
                    escape(&pr.name),
                    escape(role_words(pr.role)),
                    escape(&reasons.join("; ")),
                    escape(&transfer_words(pr))
                )
            })
            .collect::<Vec<_>>())
    };

    let source = match &d.derived_from {
        Some(src) => format!(
            "Made by us from other data we hold about you ({}).",
            escape(&src.to_string())
        ),
        None => "Collected from you, or created by your use of our service; our data map records no other source.".to_owned(),
    };
    Explained {
        what,
        where_,
        why,
        how_long,
        recipients,
        source,
    }
}

fn trim_period(s: &str) -> &str {
    s.trim().trim_end_matches('.')
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn copy_cell(p: &Part<'_>) -> String {
    let mut lines = Vec::new();
    if let (Some(json), Some(csv)) = (&p.json_path, &p.csv_path) {
        lines.push(format!(
            "{}: {}, {}",
            plural(p.export.records.len(), "record", "records"),
            link(json, "JSON"),
            link(csv, "CSV (spreadsheet)")
        ));
    }
    if !p.files.is_empty() {
        let files: Vec<String> = p
            .files
            .iter()
            .map(|f| {
                format!(
                    "{} ({})",
                    link(&f.path, &f.name),
                    plural(f.file.bytes.len(), "byte", "bytes")
                )
            })
            .collect();
        lines.push(format!(
            "{}:{}",
            plural(p.files.len(), "file", "files"),
            ul(&files)
        ));
    }
    lines.join("<br>")
}

/// The dataset's description (else its id), with its system's.
fn dataset_title(p: &Part<'_>) -> String {
    let dataset = p
        .dataset
        .and_then(|d| d.description.as_deref())
        .unwrap_or(p.export.dataset.as_str());
    let system = p
        .system
        .and_then(|s| s.description.as_deref())
        .unwrap_or(p.system_id.as_str());
    format!(
        "{} <span class=\"muted\">({})</span>",
        escape(trim_period(dataset)),
        escape(trim_period(system))
    )
}

pub(super) fn render_index(input: &ArchiveInput<'_>, parts: &[Part<'_>]) -> String {
    let map = input.map;
    let org = &map.organisation;
    let mut o = String::new();
    let right = match input.request_type {
        "access" => "right of access (Art. 15 GDPR)".to_owned(),
        "portability" => "right to data portability (Art. 20 GDPR)".to_owned(),
        other => format!("{other} request"),
    };
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src 'self'\">\n\
<meta name=\"referrer\" content=\"no-referrer\">\n\
<title>Your personal data at {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        escape(&org.controller)
    );
    let _ = writeln!(
        o,
        "<h1>Your personal data at {}</h1>",
        escape(&org.controller)
    );
    let _ = writeln!(
        o,
        "<p>This archive answers your request <code>{}</code> under the {}. It was generated on {}.</p>",
        escape(input.request_id),
        escape(&right),
        escape(input.generated_at)
    );
    let _ = writeln!(
        o,
        "<p>It holds a copy of the personal data we hold about you (Art. 15(3) GDPR): records in <code>data/</code> as JSON and CSV (readable by spreadsheets and other services), your files in <code>files/</code>, and <code>manifest.json</code>, a machine-readable list of every file with its SHA-256 checksum.</p>"
    );

    // Art. 15(1): who is responsible and how to reach them.
    let _ = writeln!(o, "<h2>Who is responsible</h2>\n<table>");
    let mut who = vec![("Controller", escape(&org.controller))];
    if let Some(a) = &org.address {
        who.push(("Address", escape(a)));
    }
    who.push(("Privacy contact", escape(&org.contact)));
    who.push((
        "Data protection officer",
        match &org.dpo {
            Some(d) => format!("{} ({})", escape(&d.name), escape(&d.contact)),
            None => "None designated; please write to the privacy contact.".to_owned(),
        },
    ));
    if let Some(r) = &org.eu_representative {
        who.push((
            "Representative in the EU",
            format!("{} ({})", escape(&r.name), escape(&r.contact)),
        ));
    }
    for (k, v) in who {
        let _ = writeln!(o, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    let _ = writeln!(o, "</table>");

    if !input.pending.is_empty() {
        let _ = writeln!(
            o,
            "<h2>Not yet included</h2>\n<p>These parts of your request are still being answered. Where a company replies to you directly, you will hear from it; otherwise we will send you the rest.</p>\n{}",
            ul(&input.pending.iter().map(|s| escape(s)).collect::<Vec<_>>())
        );
    }

    let _ = writeln!(o, "<h2>What we hold about you</h2>");
    let holding: Vec<&Part<'_>> = parts.iter().filter(|p| !p.is_empty()).collect();
    if holding.is_empty() {
        let _ = writeln!(o, "<p>We found no personal data about you.</p>");
    }
    for p in &holding {
        let e = explain(map, p);
        let _ = writeln!(o, "<section>\n<h3>{}</h3>\n<table>", dataset_title(p));
        for (k, v) in [
            ("What", &e.what),
            ("Where", &e.where_),
            ("Why", &e.why),
            ("How long", &e.how_long),
            ("Who receives it", &e.recipients),
            ("Source", &e.source),
            ("Your copy", &copy_cell(p)),
        ] {
            let _ = writeln!(o, "<tr><th>{k}</th><td>{v}</td></tr>");
        }
        let _ = writeln!(o, "</table>\n</section>");
    }
    let empty: Vec<String> = parts
        .iter()
        .filter(|p| p.is_empty())
        .map(|p| dataset_title(p))
        .collect();
    if !empty.is_empty() {
        let _ = writeln!(
            o,
            "<h2>Searched, nothing found</h2>\n<p>We also searched these places and found nothing about you:</p>\n{}",
            ul(&empty)
        );
    }

    let contact = match &org.dpo {
        Some(d) => format!(
            "{} or our data protection officer at {}",
            escape(&org.contact),
            escape(&d.contact)
        ),
        None => escape(&org.contact),
    };
    let _ = writeln!(
        o,
        "<h2>Your rights</h2>\n<ul>\n\
<li><strong>Rectification</strong> (Art. 16 GDPR): ask us to correct data that is wrong or to complete data that is incomplete.</li>\n\
<li><strong>Erasure</strong> (Art. 17 GDPR): ask us to delete your data; where the law requires us to keep some of it, “How long” above says so.</li>\n\
<li><strong>Restriction</strong> (Art. 18 GDPR): ask us to keep but no longer use your data, e.g. while its accuracy is checked.</li>\n\
<li><strong>Objection</strong> (Art. 21 GDPR): object to processing based on our legitimate interests or a public task, and at any time to direct marketing.</li>\n\
<li><strong>Data portability</strong> (Art. 20 GDPR): receive the data you gave us, based on consent or contract, in a machine-readable format (the JSON and CSV files of this archive) or have it sent to another company.</li>\n\
<li><strong>Withdrawing consent</strong> (Art. 7(3) GDPR): where we rely on your consent, you can withdraw it at any time; this does not affect what was done before.</li>\n\
<li><strong>Complaint</strong> (Art. 77 GDPR): lodge a complaint with a data protection supervisory authority, in particular in the EU member state where you live, work or where you think the infringement took place.</li>\n\
</ul>\n<p>To use these rights, write to {contact}. We answer within one month (Art. 12(3) GDPR).</p>"
    );
    let _ = writeln!(
        o,
        "<h2>Automated decision-making</h2>\n<p>None recorded: our data map records no automated decision-making, including profiling, that produces legal effects concerning you or similarly significantly affects you (Art. 22 GDPR).</p>"
    );
    o.push_str("</body>\n</html>\n");
    o
}
