//! The example tenants: loading, the slot mapping both ways, value validation, authentication.

mod common;

use common::*;
use oc_model::{
    BusinessDomain, ColumnIndex, Decimal, ErrorCode, ExtTable, ExtValue, RoleName, Slot,
};
use oc_tenant_config::{ConfigSet, Endpoint, PiiAccess, SearchMode, ShardKey, hash_api_key};
use serde_json::json;

fn column(table: ExtTable, n: u8) -> Slot {
    Slot::Column {
        table,
        column: ColumnIndex::new(n).unwrap(),
    }
}

#[test]
fn examples_load_with_everything_resolved() {
    let set = examples();
    assert_eq!(set.counts(), (2, 5, 30));
    let express = tenant(&set, "express");
    assert_eq!(express.display_name(), "Express Logistics");
    assert_eq!(express.currency().code(), "CNY");
    assert_eq!(express.retention().hot_days, 90);
    assert_eq!(express.shard_policy().key, ShardKey::BuyerId);
    assert_eq!(express.rate_limits().per_second, 500);
    assert_eq!(express.rate_limits().for_key("bl-main").unwrap().burst, 600);
    assert!(express.rate_limits().for_key("cs-console").is_none());
    let cs = express
        .role(&RoleName::parse("customer_service").unwrap())
        .unwrap();
    assert_eq!(cs.pii, PiiAccess::Masked);
    assert!(cs.allows(Endpoint::OrdersSearch));
    assert!(!cs.allows(Endpoint::OrdersCreate));
    let machine = express
        .state_machine(&"cold-chain".parse().unwrap())
        .unwrap();
    assert_eq!(machine.initial().as_str(), "pending_payment");
    assert!(machine.is_terminal(&"rejected".parse().unwrap()));
    let cold = order_type(express, "cold-chain", "standard");
    assert_eq!(
        cold.retired_slots()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["order.ext_06"]
    );
    assert_eq!(
        cold.required_fields()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        [
            "temperature_min",
            "temperature_max",
            "cargo_category",
            "storage_band"
        ]
    );
}

#[test]
fn the_same_slot_means_different_fields_in_different_contexts() {
    let set = examples();
    let express = tenant(&set, "express");
    let retail = tenant(&set, "retail");
    let ext_01 = column(ExtTable::Order, 1);
    let meanings: Vec<(&str, oc_model::ExtFieldType)> = [
        order_type(express, "cold-chain", "standard"),
        order_type(express, "express", "standard"),
        order_type(express, "express", "return"),
        order_type(retail, "retail", "standard"),
        order_type(retail, "retail", "presale"),
    ]
    .iter()
    .map(|o| {
        let field = o.field_at(&ext_01).unwrap();
        (field.name.as_str(), field.field_type)
    })
    .collect();
    use oc_model::ExtFieldType as T;
    assert_eq!(
        meanings,
        [
            ("temperature_min", T::Decimal),
            ("insured_value", T::Decimal),
            ("original_waybill_no", T::String),
            ("gift_message", T::String),
            ("deposit_amount", T::Decimal),
        ]
    );
}

#[test]
fn mapping_goes_both_ways_for_columns_lines_and_kv() {
    let set = examples();
    let cold = order_type(tenant(&set, "express"), "cold-chain", "standard");
    for field in cold.fields() {
        assert_eq!(cold.field(&field.name).unwrap().slot, field.slot);
        assert_eq!(cold.field_at(&field.slot).unwrap().name, field.name);
    }
    assert_eq!(
        cold.field("batch_no").unwrap().slot,
        column(ExtTable::Line, 2)
    );
    let kv = Slot::Kv {
        domain: BusinessDomain::Logistics,
        key: "cold_box_id".into(),
    };
    assert_eq!(cold.field_at(&kv).unwrap().name, "cold_box_id");
    // the line table's ext_01 is not the order table's ext_01
    assert_eq!(
        cold.field_at(&column(ExtTable::Line, 1)).unwrap().name,
        "storage_band"
    );
    assert!(
        cold.field_at(&column(ExtTable::Order, 6)).is_none(),
        "retired slot holds no field"
    );
    assert!(cold.field("no_such_field").is_none());

    // the set-level mapping engine
    let tenant_id = "express".parse().unwrap();
    let identity = "express".parse().unwrap();
    let standard = "standard".parse().unwrap();
    let insured = set
        .resolve_field(&tenant_id, &identity, &standard, "insured_value")
        .unwrap();
    assert_eq!(insured.slot.to_string(), "order.ext_01");
    assert_eq!(
        set.field_at(&tenant_id, &identity, &standard, &insured.slot)
            .unwrap()
            .name,
        "insured_value"
    );
    assert!(
        set.resolve_field(
            &"nobody".parse().unwrap(),
            &identity,
            &standard,
            "insured_value"
        )
        .is_none()
    );
}

#[test]
fn encrypted_searchable_fields_resolve_to_a_blind_index() {
    let set = examples();
    let cold = order_type(tenant(&set, "express"), "cold-chain", "standard");
    let id_number = cold.field("consignee_id_number").unwrap();
    assert!(id_number.encrypted && id_number.searchable && id_number.is_pii());
    assert_eq!(id_number.search, SearchMode::EqualityBlind);
    assert_eq!(
        cold.field("cold_box_id").unwrap().search,
        SearchMode::Indexed
    );
    assert_eq!(
        cold.field("temperature_max").unwrap().search,
        SearchMode::None
    );
    let parcel = order_type(tenant(&set, "express"), "express", "standard");
    let sender = parcel.field("sender_id_number").unwrap();
    assert!(sender.encrypted && !sender.searchable);
    assert_eq!(sender.search, SearchMode::None);
}

#[test]
fn validate_types_enums_and_constraints() {
    let set = examples();
    let cold = order_type(tenant(&set, "express"), "cold-chain", "standard");
    let field = |name: &str| cold.field(name).unwrap();

    assert_eq!(
        field("temperature_min").validate(&json!("-18.5")).unwrap(),
        ExtValue::Decimal(Decimal {
            units: -185,
            scale: 1
        })
    );
    assert_eq!(
        field("temperature_min").validate(&json!(4)).unwrap(),
        ExtValue::Decimal(Decimal { units: 4, scale: 0 })
    );
    // type mismatch: floats are never exact
    let error = field("temperature_min").validate(&json!(2.5)).unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidInput);
    assert_eq!(error.field.as_deref(), Some(""));
    // constraint: one decimal place at most
    let error = field("temperature_min")
        .validate(&json!("2.55"))
        .unwrap_err();
    assert_eq!(error.field.as_deref(), Some(""));
    assert!(
        error.message.contains("does not match"),
        "{}",
        error.message
    );

    assert_eq!(
        field("cargo_category").validate(&json!("vaccine")).unwrap(),
        ExtValue::Enum("vaccine".into())
    );
    let error = field("cargo_category")
        .validate(&json!("toys"))
        .unwrap_err();
    assert!(
        error.message.contains("vaccine, fresh_food"),
        "{}",
        error.message
    );
    assert!(field("cargo_category").validate(&json!(1)).is_err());

    assert!(
        field("temperature_log_required")
            .validate(&json!(true))
            .is_ok()
    );
    assert!(
        field("temperature_log_required")
            .validate(&json!("yes"))
            .is_err()
    );
    assert!(field("expiry_date").validate(&json!("2027-01-31")).is_ok());
    assert!(field("expiry_date").validate(&json!("2027-02-31")).is_err());

    // a constraint violation inside a JSON value names the path inside it
    let profile = field("handling_profile");
    assert!(profile.validate(&json!({"pre_cool_minutes": 30})).is_ok());
    let error = profile
        .validate(&json!({"pre_cool_minutes": 500}))
        .unwrap_err();
    assert_eq!(error.field.as_deref(), Some("/pre_cool_minutes"));
    let error = profile.validate(&json!({"colour": "red"})).unwrap_err();
    assert_eq!(error.field.as_deref(), Some(""));
    // the caller prefixes the field's own path
    let prefixed = profile
        .validate(&json!({"pre_cool_minutes": 500}))
        .unwrap_err()
        .under("/extension/handling_profile");
    assert_eq!(
        prefixed.field.as_deref(),
        Some("/extension/handling_profile/pre_cool_minutes")
    );

    let parcel = order_type(tenant(&set, "express"), "express", "standard");
    let weight = parcel.field("parcel_weight_grams").unwrap();
    assert_eq!(weight.validate(&json!(1200)).unwrap(), ExtValue::Int(1200));
    assert!(
        weight.validate(&json!("1200")).is_err(),
        "no coercion from strings"
    );
    assert!(weight.validate(&json!(0)).is_err(), "minimum 1");

    // KV identifiers hold at most 512 characters
    let retail = order_type(tenant(&set, "retail"), "retail", "standard");
    let campaign = retail.field("campaign_id").unwrap();
    assert!(campaign.validate(&json!("spring-sale")).is_ok());
    let error = campaign.validate(&json!("x".repeat(513))).unwrap_err();
    assert!(error.message.contains("512"), "{}", error.message);
}

#[test]
fn authenticate_finds_the_key_of_its_own_tenant_only() {
    let set = examples();
    let principal = set.authenticate(EXPRESS_BL_KEY).unwrap();
    assert_eq!(principal.tenant.as_str(), "express");
    assert_eq!(principal.key_id, "bl-main");
    assert_eq!(principal.role.as_str(), "business_line");

    let cs = set.authenticate(EXPRESS_CS_KEY).unwrap();
    assert_eq!(cs.role.as_str(), "customer_service");

    // another tenant's key authenticates to that tenant, never to express
    let retail = set.authenticate(RETAIL_BL_KEY).unwrap();
    assert_eq!(retail.tenant.as_str(), "retail");
    assert_eq!(retail.key_id, "shop-api");

    for wrong in [
        "",
        "oc_test_express_bl_0001_7c1f4e9a2b6d8035e1a5",
        "OC_TEST_EXPRESS_BL_0001_7C1F4E9A2B6D8035E1A4",
        &format!("{EXPRESS_BL_KEY} "),
        // the stored hash itself is not a key
        &hash_api_key(EXPRESS_BL_KEY),
    ] {
        assert!(set.authenticate(wrong).is_none(), "{wrong:?}");
    }
    let stored = &tenant(&set, "express").api_keys()[0];
    assert_eq!(stored.sha256_hex(), hash_api_key(EXPRESS_BL_KEY));
    assert!(
        !format!("{stored:?}").contains(&stored.sha256_hex()),
        "Debug redacts the hash"
    );
}

#[test]
fn load_dir_reports_an_empty_or_missing_directory() {
    let empty = tempfile::tempdir().unwrap();
    let error = ConfigSet::load_dir(empty.path()).unwrap_err();
    assert!(
        error.to_string().contains("no tenant config files"),
        "{error}"
    );
    let error = ConfigSet::load_dir(&empty.path().join("missing")).unwrap_err();
    assert!(
        error.to_string().contains("cannot read config directory"),
        "{error}"
    );
}

#[test]
fn search_specs_follow_the_search_mode() {
    use oc_model::search::SearchFieldKind;
    let set = examples();
    let express = tenant(&set, "express");
    let cold_chain = express
        .order_type(&"cold-chain".parse().unwrap(), &"standard".parse().unwrap())
        .unwrap();
    let kind = |name: &str| {
        cold_chain
            .field(name)
            .unwrap()
            .search_spec()
            .map(|spec| spec.kind)
    };
    assert_eq!(kind("temperature_min"), Some(SearchFieldKind::Decimal));
    assert_eq!(kind("cargo_category"), Some(SearchFieldKind::Keyword));
    assert_eq!(
        kind("consignee_id_number"),
        Some(SearchFieldKind::BlindIndex)
    );
    assert_eq!(kind("temperature_max"), None, "not searchable");
    assert_eq!(kind("handling_profile"), None, "json is never indexed");
    let spec = cold_chain
        .field("cold_box_id")
        .unwrap()
        .search_spec()
        .unwrap();
    assert_eq!(spec.name.as_str(), "cold_box_id");
}

/// Issue 13 item 1: a searchable value the index cannot hold (a keyword longer than the
/// engine's term limit, a decimal outside the index's 64-bit scaled range) used to be stored
/// and then stalled or silently skipped the projection. It is refused at validation.
#[test]
fn searchable_values_must_fit_the_index() {
    let set = examples();
    let cold = order_type(tenant(&set, "express"), "cold-chain", "standard");
    let batch_no = cold.field("batch_no").unwrap();
    assert!(batch_no.searchable);
    assert!(batch_no.validate(&json!("B".repeat(100))).is_ok());
    let error = batch_no.validate(&json!("B".repeat(40_000))).unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidInput);
    assert!(error.message.contains("32766"), "{}", error.message);
    // the limit counts UTF-8 bytes, as the engine does: 11,000 three-byte characters exceed it
    assert!(batch_no.validate(&json!("批".repeat(11_000))).is_err());
    assert!(batch_no.validate(&json!("批".repeat(10_000))).is_ok());

    // a searchable decimal with no configured range
    let express = edit(
        &example("express.yaml"),
        "            constraints: { type: string, pattern: '^[0-9]{1,9}(\\.[0-9]{1,2})?$' }\n",
        "",
    );
    let set = set_of(&express, &example("retail.yaml"));
    let parcel = order_type(tenant(&set, "express"), "express", "standard");
    let insured = parcel.field("insured_value").unwrap();
    assert!(insured.searchable && insured.constraints.is_none());
    assert!(insured.validate(&json!("9000000000.5")).is_ok());
    for too_big in ["99999999999", "-9300000000"] {
        let error = insured.validate(&json!(too_big)).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidInput, "{too_big}");
        assert!(error.message.contains("search index"), "{}", error.message);
    }
}
