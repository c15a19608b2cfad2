//! Snapshots of the Art. 30 record of the demo map.

use custos_map::{load_str, ropa, RopaFormat, DEMO_MAP};

fn demo() -> custos_map::DataMap {
    load_str(DEMO_MAP, "demo-map.yaml").unwrap().0
}

#[test]
fn ropa_html() {
    insta::assert_snapshot!(ropa::render(&demo(), RopaFormat::Html));
}

#[test]
fn ropa_csv() {
    insta::assert_snapshot!(ropa::render(&demo(), RopaFormat::Csv));
}

#[test]
fn ropa_json() {
    insta::assert_snapshot!(ropa::render(&demo(), RopaFormat::Json));
}

#[test]
fn ropa_markdown() {
    insta::assert_snapshot!(ropa::render(&demo(), RopaFormat::Markdown));
}

#[test]
fn every_activity_is_complete() {
    let r = ropa::build(&demo());
    assert_eq!(r.activities.len(), 9);
    for a in &r.activities {
        assert!(!a.data_subjects.is_empty(), "{}", a.id);
        assert!(!a.data_categories.is_empty(), "{}", a.id);
        assert!(!a.retention.is_empty(), "{}", a.id);
    }
    let html = ropa::render(&demo(), RopaFormat::Html);
    assert!(html.contains("<svg") && html.contains("Zendesk, Inc."));
    assert!(
        !html.contains("<script"),
        "the page must be self-contained and inert"
    );
}
