//! Every load-time check, table-driven: one edit of a valid file, the path and the message.

mod common;

use common::*;
use oc_tenant_config::{ConfigError, ConfigSet, hash_api_key};

const HASH_A: &str = "a111111111111111111111111111111111111111111111111111111111111111";

/// A small valid file every case edits once.
fn base() -> String {
    format!(
        r#"version: 1
tenant: acme
currency: CNY
api_keys:
  - {{ id: k1, role: writer, sha256: {HASH_A} }}
roles:
  writer: {{ endpoints: [orders.create], pii: full }}
rate_limits: {{ per_second: 10, burst: 20 }}
shard_policy: {{ key: buyer_id, shard_group: default }}
retention: {{ hot_days: 30 }}
business_identities:
  shop:
    state_machine:
      initial: open
      states: [open]
      terminal: [done]
      transitions:
        - {{ from: open, event: finish, to: done }}
    order_types:
      standard:
        retired_slots: [order.ext_09]
        fields:
          - {{ name: color, type: enum, slot: order.ext_01, values: [red, blue] }}
          - {{ name: size, type: int, slot: order.ext_02 }}
          - {{ name: note, type: string, slot: line.ext_01 }}
"#
    )
}

const FIELDS: &str = "/business_identities/shop/order_types/standard/fields";

fn errors_of(text: &str) -> Vec<ConfigError> {
    match ConfigSet::from_yaml_str("acme.yaml", text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(errors) => errors.into_vec(),
    }
}

#[test]
fn the_base_file_is_valid() {
    let tenant = ConfigSet::from_yaml_str("acme.yaml", &base()).unwrap();
    assert_eq!(tenant.id().as_str(), "acme");
}

#[test]
fn each_check_names_the_file_the_path_and_the_problem() {
    let size = "{ name: size, type: int, slot: order.ext_02 }";
    let color = "{ name: color, type: enum, slot: order.ext_01, values: [red, blue] }";
    let cases: Vec<(&str, String, String, &str)> = vec![
        (
            "duplicate slot",
            size.into(),
            "{ name: size, type: int, slot: order.ext_01 }".into(),
            "already used by field `color`",
        ),
        (
            "duplicate slot written differently",
            size.into(),
            "{ name: size, type: int, slot: order.ext_1 }".into(),
            "slot order.ext_01 is already used",
        ),
        (
            "duplicate field name",
            size.into(),
            "{ name: color, type: int, slot: order.ext_02 }".into(),
            "duplicate field name `color`",
        ),
        (
            "ext_NN out of range",
            size.into(),
            "{ name: size, type: int, slot: order.ext_21 }".into(),
            "is not a reserved column (ext_01..ext_20)",
        ),
        (
            "unknown table",
            size.into(),
            "{ name: size, type: int, slot: header.ext_02 }".into(),
            "unknown table",
        ),
        (
            "unknown KV domain",
            size.into(),
            "{ name: size, type: int, slot: kv:warehouse/size }".into(),
            "unknown business domain",
        ),
        (
            "retired slot reused",
            size.into(),
            "{ name: size, type: int, slot: order.ext_09 }".into(),
            "is retired",
        ),
        (
            "enum without values",
            color.into(),
            "{ name: color, type: enum, slot: order.ext_01 }".into(),
            "needs `values`",
        ),
        (
            "values on a non-enum field",
            size.into(),
            "{ name: size, type: int, slot: order.ext_02, values: [a] }".into(),
            "only for enum fields",
        ),
        (
            "invalid JSON Schema constraints",
            size.into(),
            "{ name: size, type: int, slot: order.ext_02, constraints: { minimum: abc } }".into(),
            "invalid JSON Schema",
        ),
        (
            "constraints that no value of the type can meet",
            size.into(),
            "{ name: size, type: int, slot: order.ext_02, constraints: { type: string } }".into(),
            "constraints expect string",
        ),
        (
            "enum values not matching the constraints",
            color.into(),
            "{ name: color, type: enum, slot: order.ext_01, values: [red, blue], constraints: { pattern: '^r' } }".into(),
            "enum value `blue` does not satisfy",
        ),
        (
            "example not matching the constraints",
            size.into(),
            "{ name: size, type: int, slot: order.ext_02, constraints: { maximum: 10 }, examples: [5, 50] }".into(),
            "example does not validate",
        ),
        (
            "encrypted searchable bool",
            size.into(),
            "{ name: size, type: bool, slot: order.ext_02, encrypted: true, searchable: true }".into(),
            "searchable only by equality",
        ),
        (
            "encrypted searchable decimal",
            size.into(),
            "{ name: size, type: decimal, slot: order.ext_02, encrypted: true, searchable: true }".into(),
            "1.5 and 1.50",
        ),
        (
            "unknown key in a field",
            size.into(),
            "{ name: size, type: int, slot: order.ext_02, colour: red }".into(),
            "unknown key `colour`",
        ),
        (
            "bad field name",
            size.into(),
            "{ name: Size, type: int, slot: order.ext_02 }".into(),
            "field name",
        ),
        (
            "unknown field type",
            size.into(),
            "{ name: size, type: integer, slot: order.ext_02 }".into(),
            "is not one of",
        ),
    ];
    let field_index = |from: &str| if from == color { 0 } else { 1 };
    let expected_leaf = |name: &str| match name {
        "duplicate field name" | "bad field name" => "/name",
        "enum without values" | "values on a non-enum field" => "/values",
        "invalid JSON Schema constraints" => "/constraints",
        "constraints that no value of the type can meet" => "/constraints/type",
        "enum values not matching the constraints" => "/values/1",
        "example not matching the constraints" => "/examples/1",
        "encrypted searchable bool" | "encrypted searchable decimal" => "/searchable",
        "unknown key in a field" => "/colour",
        "unknown field type" => "/type",
        _ => "/slot",
    };
    for (name, from, to, message) in cases {
        let text = edit(&base(), &from, &to);
        let errors = errors_of(&text);
        let path = format!("{FIELDS}/{}{}", field_index(&from), expected_leaf(name));
        assert!(
            errors
                .iter()
                .any(|e| e.file == "acme.yaml" && e.path == path && e.message.contains(message)),
            "{name}: expected {path}: …{message}…, got:\n{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn tenant_level_checks_have_paths_too() {
    let cases: Vec<(&str, String, String, &str, &str)> = vec![
        ("version missing", "version: 1\n".into(), "".into(), "/version", "missing `version`"),
        ("wrong version", "version: 1\n".into(), "version: 2\n".into(), "/version", "unsupported config version 2"),
        ("unknown top-level key", "currency: CNY\n".into(), "currency: CNY\ncolour: red\n".into(), "/colour", "unknown key `colour`"),
        ("bad tenant id", "tenant: acme".into(), "tenant: Acme".into(), "/tenant", "tenant id must be"),
        ("unsupported currency", "currency: CNY".into(), "currency: XXX".into(), "/currency", "unsupported currency"),
        ("hash not 64 hex", HASH_A.into(), "abc123".into(), "/api_keys/0/sha256", "64 hex characters"),
        ("hash with non-hex", HASH_A.into(), "g".repeat(64), "/api_keys/0/sha256", "64 hex characters"),
        ("an unquoted all-digit hash", HASH_A.into(), "1".repeat(64), "/api_keys/0/sha256", "quote it"),
        ("role not defined", "role: writer".into(), "role: reader".into(), "/api_keys/0/role", "role `reader`, which is not defined"),
        (
            "duplicate key hash in one tenant",
            format!("  - {{ id: k1, role: writer, sha256: {HASH_A} }}\n"),
            format!("  - {{ id: k1, role: writer, sha256: {HASH_A} }}\n  - {{ id: k2, role: writer, sha256: {HASH_A} }}\n"),
            "/api_keys/1/sha256",
            "already configured at /api_keys/0",
        ),
        (
            "duplicate key id",
            format!("  - {{ id: k1, role: writer, sha256: {HASH_A} }}\n"),
            format!("  - {{ id: k1, role: writer, sha256: {HASH_A} }}\n  - {{ id: k1, role: writer, sha256: {} }}\n", hash_api_key("other")),
            "/api_keys/1/id",
            "duplicate key id `k1`",
        ),
        (
            "merchant-scoped key whose role lists buyers",
            format!("sha256: {HASH_A} }}\nroles:\n  writer: {{ endpoints: [orders.create]"),
            format!("sha256: {HASH_A}, merchant: m-1 }}\nroles:\n  writer: {{ endpoints: [orders.create, orders.list]"),
            "/api_keys/0/merchant",
            "grants orders.list",
        ),
        (
            "merchant id with a space",
            format!("sha256: {HASH_A} }}"),
            format!("sha256: {HASH_A}, merchant: \"m 1\" }}"),
            "/api_keys/0/merchant",
            "without spaces",
        ),
        ("unknown endpoint", "[orders.create]".into(), "[orders.create, orders.delete]".into(), "/roles/writer/endpoints/1", "is not one of"),
        ("unknown pii level", "pii: full".into(), "pii: some".into(), "/roles/writer/pii", "is not one of"),
        (
            "per-key limit for an unknown key",
            "burst: 20 }".into(),
            "burst: 20, per_key: { ghost: { per_second: 1, burst: 1 } } }".into(),
            "/rate_limits/per_key/ghost",
            "not under /api_keys",
        ),
        ("zero rate", "per_second: 10".into(), "per_second: 0".into(), "/rate_limits/per_second", "at least 1"),
        ("zero retention", "hot_days: 30".into(), "hot_days: 0".into(), "/retention/hot_days", "at least 1"),
        ("missing retention", "retention: { hot_days: 30 }\n".into(), "".into(), "", "\"retention\" is a required property"),
        ("bad identity name", "  shop:\n".into(), "  Shop!:\n".into(), "/business_identities/Shop!", "business identity must be"),
        (
            "state machine: undeclared state",
            "{ from: open, event: finish, to: done }".into(),
            "{ from: open, event: finish, to: nowhere }".into(),
            "/business_identities/shop/state_machine/transitions/0",
            "undeclared state nowhere",
        ),
        (
            "state machine: unreachable state",
            "states: [open]".into(),
            "states: [open, limbo]".into(),
            "/business_identities/shop/state_machine/states/1",
            "cannot be reached",
        ),
        (
            "state machine: unknown initial",
            "initial: open".into(),
            "initial: start".into(),
            "/business_identities/shop/state_machine/initial",
            "initial state start is not declared",
        ),
        (
            "state machine: ambiguous",
            "        - { from: open, event: finish, to: done }\n".into(),
            "        - { from: open, event: finish, to: done }\n        - { from: open, event: finish, to: open }\n".into(),
            "/business_identities/shop/state_machine/transitions/1",
            "two transitions for event finish",
        ),
        ("retired slot syntax", "[order.ext_09]".into(), "[order.ext_99]".into(), "/business_identities/shop/order_types/standard/retired_slots/0", "not a reserved column"),
        ("invalid YAML", "tenant: acme\n".into(), "tenant: [acme\n".into(), "", "invalid YAML"),
    ];
    for (name, from, to, path, message) in cases {
        let text = edit(&base(), &from, &to);
        let errors = errors_of(&text);
        assert!(
            errors
                .iter()
                .any(|e| e.file == "acme.yaml" && e.path == path && e.message.contains(message)),
            "{name}: expected {path}: …{message}…, got:\n{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn one_pass_reports_many_errors() {
    let mut text = base();
    text = edit(&text, "currency: CNY\n", "currency: CNY\ncolour: red\n");
    text = edit(&text, "role: writer", "role: reader");
    text = edit(&text, "slot: order.ext_02", "slot: order.ext_01");
    text = edit(&text, "slot: line.ext_01", "slot: line.ext_33");
    text = edit(&text, "to: done", "to: nowhere");
    let errors = errors_of(&text);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "/colour",
        "/api_keys/0/role",
        "/business_identities/shop/order_types/standard/fields/1/slot",
        "/business_identities/shop/order_types/standard/fields/2/slot",
        "/business_identities/shop/state_machine/transitions/0",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
    // the display is one `file:path: message` per line
    let count = paths.len();
    let shown = oc_tenant_config::ConfigErrors::from_vec(errors.clone())
        .unwrap()
        .to_string();
    assert_eq!(shown.lines().count(), count);
    assert!(
        shown.lines().all(|line| line.starts_with("acme.yaml:/")),
        "{shown}"
    );
}

#[test]
fn a_pattern_error_is_reported_once_with_the_clearer_message() {
    let text = edit(&base(), HASH_A, "abc");
    let errors = errors_of(&text);
    let at_hash: Vec<_> = errors
        .iter()
        .filter(|e| e.path == "/api_keys/0/sha256")
        .collect();
    assert_eq!(at_hash.len(), 1, "{errors:?}");
    assert!(at_hash[0].message.contains("never the key itself"));
}

#[test]
fn duplicate_key_hashes_across_tenants_are_refused() {
    let acme = ConfigSet::from_yaml_str("acme.yaml", &base()).unwrap();
    let other_text = edit(&base(), "tenant: acme", "tenant: other");
    let other = ConfigSet::from_yaml_str("other.yaml", &other_text).unwrap();
    let errors = ConfigSet::from_tenants([acme, other])
        .unwrap_err()
        .into_vec();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, "other.yaml");
    assert_eq!(errors[0].path, "/api_keys/0/sha256");
    assert!(
        errors[0].message.contains("tenant `acme` (acme.yaml)"),
        "{}",
        errors[0].message
    );
}

#[test]
fn duplicate_tenant_ids_across_files_are_refused() {
    let first = ConfigSet::from_yaml_str("a.yaml", &base()).unwrap();
    let second_text = edit(&base(), HASH_A, &hash_api_key("another key"));
    let second = ConfigSet::from_yaml_str("b.yaml", &second_text).unwrap();
    let errors = ConfigSet::from_tenants([first, second])
        .unwrap_err()
        .into_vec();
    assert_eq!(errors[0].file, "b.yaml");
    assert_eq!(errors[0].path, "/tenant");
    assert!(errors[0].message.contains("already defined in a.yaml"));
}

#[test]
fn load_dir_names_each_file_in_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.yaml"), base()).unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        edit(
            &edit(&base(), "tenant: acme", "tenant: bad"),
            HASH_A,
            "nothex",
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a config").unwrap();
    let errors = ConfigSet::load_dir(dir.path()).unwrap_err();
    let bad = dir.path().join("bad.yaml").display().to_string();
    assert_eq!(errors.len(), 1, "{errors}");
    assert_eq!(errors.errors()[0].file, bad);
    assert!(
        errors
            .to_string()
            .starts_with(&format!("{bad}:/api_keys/0/sha256: ")),
        "{errors}"
    );
}

#[test]
fn a_searchable_name_keeps_one_kind_across_order_types() {
    let with_presale = |size_type: &str| {
        edit(
            &edit(
                &base(),
                "{ name: size, type: int, slot: order.ext_02 }",
                "{ name: size, type: int, slot: order.ext_02, searchable: true }",
            ),
            "          - { name: note, type: string, slot: line.ext_01 }\n",
            &format!(
                "          - {{ name: note, type: string, slot: line.ext_01 }}\n      presale:\n        fields:\n          - {{ name: size, type: {size_type}, slot: order.ext_03, searchable: true }}\n"
            ),
        )
    };
    let same = ConfigSet::from_yaml_str("acme.yaml", &with_presale("int")).unwrap();
    let fields = same.search_fields();
    assert_eq!(fields.len(), 1, "one mapping entry per name: {fields:?}");
    assert_eq!(fields[0].name.as_str(), "size");

    let errors = errors_of(&with_presale("string"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, format!("{FIELDS}/1"));
    assert!(
        errors[0].message.contains("one search mapping"),
        "{}",
        errors[0].message
    );
}

/// The stock accelerator: opted in per business identity, optionally for listed SKUs only;
/// refused without builtin stock, `hot_skus` refused without an accelerator, bad or
/// repeated SKUs named by index.
#[test]
fn the_inventory_accelerator_is_opted_in_per_identity_and_sku() {
    let with = |inventory: &str| {
        edit(
            &base(),
            "  shop:\n",
            &format!("  shop:\n    inventory: {inventory}\n"),
        )
    };
    let all = ConfigSet::from_yaml_str("acme.yaml", &with("{ mode: builtin, accelerator: redis }"))
        .unwrap();
    let shop = all
        .business_identity(&oc_model::BusinessIdentity::parse("shop").unwrap())
        .unwrap();
    assert!(shop.inventory().accelerated("ANY-SKU"));
    let listed = ConfigSet::from_yaml_str(
        "acme.yaml",
        &with("{ mode: builtin, accelerator: redis, hot_skus: [KETTLE-1, TV-55] }"),
    )
    .unwrap();
    let shop = listed
        .business_identity(&oc_model::BusinessIdentity::parse("shop").unwrap())
        .unwrap();
    assert!(shop.inventory().accelerated("TV-55"));
    assert!(!shop.inventory().accelerated("ANY-SKU"));
    let plain = ConfigSet::from_yaml_str("acme.yaml", &with("{ mode: builtin }")).unwrap();
    let shop = plain
        .business_identity(&oc_model::BusinessIdentity::parse("shop").unwrap())
        .unwrap();
    assert!(!shop.inventory().accelerated("ANY-SKU"));

    const INVENTORY: &str = "/business_identities/shop/inventory";
    for (inventory, path, message) in [
        (
            "{ mode: none, accelerator: redis }",
            format!("{INVENTORY}/accelerator"),
            "applies to `mode: builtin` only",
        ),
        (
            "{ mode: builtin, hot_skus: [KETTLE-1] }",
            format!("{INVENTORY}/hot_skus"),
            "set `accelerator: redis` too",
        ),
        (
            "{ mode: builtin, accelerator: redis, hot_skus: [KETTLE-1, KETTLE-1] }",
            format!("{INVENTORY}/hot_skus/1"),
            "listed twice",
        ),
        (
            "{ mode: builtin, accelerator: redis, hot_skus: ['  '] }",
            format!("{INVENTORY}/hot_skus/0"),
            "not blank",
        ),
    ] {
        let errors = errors_of(&with(inventory));
        assert!(
            errors
                .iter()
                .any(|e| e.path == path && e.message.contains(message)),
            "{inventory}: expected {path}: …{message}…, got:\n{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
