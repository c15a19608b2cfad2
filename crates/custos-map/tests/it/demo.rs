//! The demo map is valid and covers every system kind.

use custos_map::{check_str, load_str, SystemKind, DEMO_MAP};

#[test]
fn demo_map_has_no_errors_and_no_warnings() {
    let diags = check_str(DEMO_MAP, "demo-map.yaml");
    let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert!(diags.is_empty(), "{}", text.join("\n"));
}

#[test]
fn demo_map_covers_every_system_kind() {
    let (map, _) = load_str(DEMO_MAP, "demo-map.yaml").unwrap();
    for kind in SystemKind::ALL {
        assert!(
            map.systems.iter().any(|s| s.kind == kind),
            "no {kind:?} system"
        );
    }
}
