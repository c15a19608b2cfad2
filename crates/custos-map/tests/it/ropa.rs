//! Snapshots of the Art. 30 record of the demo map, and the claims a record
//! may make about custos: each safeguard's sentence is stated exactly when
//! the caller asserts its fact, and the organisation's own measures reach
//! every activity.

use custos_map::ropa::{self, Safeguards};
use custos_map::{load_str, yaml, DataMap, RopaFormat, DEMO_MAP};

fn demo() -> DataMap {
    load_str(DEMO_MAP, "demo-map.yaml").unwrap().0
}

/// What the snapshots state: the safeguards of this version of custos.
fn snapshot(format: RopaFormat) -> String {
    ropa::render(&demo(), Safeguards::this_version(), format)
}

#[test]
fn ropa_html() {
    insta::assert_snapshot!(snapshot(RopaFormat::Html));
}

#[test]
fn ropa_csv() {
    insta::assert_snapshot!(snapshot(RopaFormat::Csv));
}

#[test]
fn ropa_json() {
    insta::assert_snapshot!(snapshot(RopaFormat::Json));
}

#[test]
fn ropa_markdown() {
    insta::assert_snapshot!(snapshot(RopaFormat::Markdown));
}

#[test]
fn every_activity_is_complete() {
    let r = ropa::build(&demo(), Safeguards::this_version());
    assert_eq!(r.activities.len(), 9);
    for a in &r.activities {
        assert!(!a.data_subjects.is_empty(), "{}", a.id);
        assert!(!a.data_categories.is_empty(), "{}", a.id);
        assert!(!a.retention.is_empty(), "{}", a.id);
    }
    let html = snapshot(RopaFormat::Html);
    assert!(html.contains("<svg") && html.contains("Zendesk, Inc."));
    assert!(
        !html.contains("<script"),
        "the page must be self-contained and inert"
    );
}

const FORMATS: [RopaFormat; 4] = [
    RopaFormat::Html,
    RopaFormat::Csv,
    RopaFormat::Json,
    RopaFormat::Markdown,
];

/// Every fact asserted: the baseline from which one is turned off.
fn all() -> Safeguards {
    let mut s = Safeguards::this_version();
    s.retention_purge = true;
    s.erasure_ledger_replay = true;
    s
}

/// Whether the record of `map` states `sentence` for the activity `id`.
fn states(map: &DataMap, s: Safeguards, id: &str, sentence: &str) -> bool {
    let r = ropa::build(map, s);
    let a = r.activities.iter().find(|a| a.id == id).unwrap();
    a.security_measures.iter().any(|m| m == sentence)
}

/// Whether `sentence` appears anywhere in the record, in any format.
fn printed(map: &DataMap, s: Safeguards, sentence: &str) -> bool {
    FORMATS.iter().any(|&f| {
        let text = ropa::render(map, s, f);
        text.contains(sentence) || text.contains(&ropa::escape(sentence))
    })
}

/// The claim of one fact: with only `set` asserted, `sentence` is stated for
/// every activity (and printed in every format); with every fact but it,
/// the sentence is nowhere in the record.
fn check_claim(set: fn(&mut Safeguards, bool), sentence: &str) {
    let map = demo();
    let mut on = Safeguards::none();
    set(&mut on, true);
    for p in &map.purposes {
        assert!(states(&map, on, p.id.as_str(), sentence), "{}", p.id);
    }
    for f in FORMATS {
        let text = ropa::render(&map, on, f);
        assert!(
            text.contains(sentence) || text.contains(&ropa::escape(sentence)),
            "{f:?}"
        );
    }
    let mut off = all();
    set(&mut off, false);
    assert!(!printed(&map, off, sentence), "stated while not asserted");
    assert!(!printed(&map, Safeguards::none(), sentence));
}

#[test]
fn claim_audit_log() {
    check_claim(
        |s, v| s.audit_log = v,
        "Access to personal data through custos is recorded in a hash-chained, tamper-evident audit log",
    );
}

#[test]
fn claim_log_scrubbing() {
    check_claim(
        |s, v| s.log_scrubbing = v,
        "The logs of custos itself pass through a personal-data scrubber, and its error responses do not echo submitted values",
    );
}

#[test]
fn claim_request_deadlines() {
    check_claim(
        |s, v| s.request_deadlines = v,
        "Data-subject requests are tracked against the one-month deadline (Art. 12(3))",
    );
}

#[test]
fn claim_scoped_api_keys() {
    check_claim(
        |s, v| s.scoped_api_keys = v,
        "API keys of custos are scoped to least privilege and stored hashed",
    );
}

#[test]
fn claim_retention_purge() {
    check_claim(
        |s, v| s.retention_purge = v,
        "Retention periods of this record are enforced by scheduled purges",
    );
}

#[test]
fn claim_erasure_ledger_replay() {
    check_claim(
        |s, v| s.erasure_ledger_replay = v,
        "Erasures are recorded apart from the data store and replayed into any store restored from a backup before it is served again, so backups do not bring erased people back",
    );
}

/// Vault encryption is stated for the activities that keep data in a
/// `vault` system (the demo's `account`), and only when asserted.
#[test]
fn claim_vault_encryption() {
    const SENTENCE: &str = "Per-subject envelope encryption (AES-256-GCM) with crypto-shredding on erasure and blind-index lookups";
    let map = demo();
    let mut on = Safeguards::none();
    on.vault_encryption = true;
    assert!(states(&map, on, "account", SENTENCE));
    assert!(!states(&map, on, "newsletter", SENTENCE), "no vault data");
    let mut off = all();
    off.vault_encryption = false;
    assert!(!printed(&map, off, SENTENCE));
}

/// What custos cannot do yet is not claimed by default; what it does is.
#[test]
fn this_version_claims_no_missing_feature() {
    let s = Safeguards::this_version();
    assert!(!s.retention_purge);
    assert!(s.erasure_ledger_replay);
    let text = ropa::render(&demo(), s, RopaFormat::Markdown);
    assert!(!text.contains("scheduled purges"));
    assert!(text.contains("Erasures are recorded apart from the data store"));
}

/// The organisation's own measures are stated for every activity, as
/// controller and as processor, alone when custos asserts nothing, and
/// survive the YAML writer.
#[test]
fn organisation_measures_reach_every_activity() {
    let src = DEMO_MAP.replacen(
        "  contact: privacy@acme.example\n",
        "  contact: privacy@acme.example\n  security_measures:\n    - Staff are trained in data protection every year\n    - \"Access reviews: quarterly\"\n",
        1,
    ) + "\non_behalf_of:\n  - name: Client AG\n    contact: privacy@client.example\n    purposes: [account]\n";
    let (map, _) = load_str(&src, "demo-map.yaml").unwrap();
    let own = [
        "Staff are trained in data protection every year",
        "Access reviews: quarterly",
    ];
    assert_eq!(map.organisation.security_measures, own);
    let r = ropa::build(&map, Safeguards::none());
    for a in &r.activities {
        for m in own {
            assert!(a.security_measures.iter().any(|x| x == m), "{}", a.id);
        }
    }
    let pa = r.processor_activities.first().unwrap();
    for m in own {
        assert!(pa.security_measures.iter().any(|x| x == m));
    }
    let (back, _) = load_str(&yaml::to_yaml(&map), "out.yaml").unwrap();
    assert_eq!(back, map);
}
