//! Strategies shared by the crate's property tests.

use proptest::prelude::*;

/// Arbitrary JSON, biased towards objects with the request's member names so that the
/// parsers get past the first level.
pub fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        "\\PC{0,12}".prop_map(serde_json::Value::String),
    ];
    let names = prop_oneof![
        Just("lines".to_owned()),
        Just("buyer_id".to_owned()),
        Just("quantity".to_owned()),
        Just("extension".to_owned()),
        Just("receiver".to_owned()),
        Just("unit_price_minor".to_owned()),
        "[a-z_]{1,10}",
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(names.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
