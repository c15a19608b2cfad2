//! Any valid map round-trips through JSON unchanged, and through our YAML
//! writer too.

use custos_map::{load_str, yaml, DataMap, DEMO_MAP};
use proptest::prelude::*;

fn demo() -> DataMap {
    load_str(DEMO_MAP, "demo-map.yaml").unwrap().0
}

/// Valid maps: the demo map with a random subset of systems, datasets and
/// fields removed and ids renamed — then kept only if it still validates.
fn valid_map() -> impl Strategy<Value = DataMap> {
    (
        proptest::collection::vec(any::<bool>(), 64),
        "[a-z][a-z0-9_]{0,8}",
    )
        .prop_filter_map("must stay valid", |(keep, suffix)| {
            let mut map = demo();
            let mut bits = keep.into_iter().cycle();
            for s in &mut map.systems {
                for d in &mut s.datasets {
                    let mut first = true;
                    d.fields.retain(|_| {
                        let k = first || bits.next().unwrap_or(true);
                        first = false;
                        k
                    });
                }
            }
            map.systems.retain(|_| bits.next().unwrap_or(true));
            map.organisation.controller = format!("Org {suffix}");
            // Keep only maps the validator still accepts.
            let text = yaml::to_yaml(&map);
            load_str(&text, "gen.yaml").ok().map(|(m, _)| m)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn json_round_trip(map in valid_map()) {
        let json = serde_json::to_string(&map).unwrap();
        let back: DataMap = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &map);
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    #[test]
    fn yaml_round_trip(map in valid_map()) {
        let text = yaml::to_yaml(&map);
        let (back, _) = load_str(&text, "gen.yaml").map_err(|d| TestCaseError::fail(format!("{d:?}")))?;
        prop_assert_eq!(back, map);
    }
}

#[test]
fn demo_round_trips_through_yaml_writer() {
    let map = demo();
    let text = yaml::to_yaml(&map);
    let (back, warnings) =
        load_str(&text, "demo-out.yaml").unwrap_or_else(|d| panic!("{text}\n{d:#?}"));
    assert!(warnings.is_empty());
    assert_eq!(back, map);
}
