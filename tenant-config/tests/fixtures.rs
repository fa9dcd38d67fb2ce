//! Frozen fixtures and the JSON Schema.
//!
//! CHANGING THE FILES UNDER `fixtures/v1/` IS FORBIDDEN: they are what tenant admins wrote
//! against format version 1, and every later build must keep loading them unchanged. A new
//! format version gets new fixtures (`fixtures/v2/`) next to these, never instead of them.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use oc_tenant_config::{ConfigSet, json_schema};
use serde_json::Value;

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn committed_schema_path() -> PathBuf {
    crate_dir().join("schema/tenant-config.v1.schema.json")
}

#[test]
fn v1_fixtures_load_forever() {
    let dir = crate_dir().join("fixtures/v1");
    let names: Vec<String> = yaml_files(&dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["express.yaml", "minimal.yaml", "retail.yaml"],
        "fixtures are never removed"
    );
    let set = ConfigSet::load_dir(&dir).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(set.counts(), (3, 6, 30));
    let minimal = tenant(&set, "minimal");
    assert_eq!(minimal.currency().code(), "USD");
    assert!(order_type(minimal, "basic", "default").fields().is_empty());
    assert!(
        set.authenticate("oc_test_minimal_0001_2f7b9e4c1a08d635b9e7")
            .is_some()
    );
}

#[test]
fn committed_schema_is_the_generated_one() {
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(committed_schema_path()).unwrap()).unwrap();
    assert!(
        committed == json_schema(),
        "schema/tenant-config.v1.schema.json is out of date; regenerate it with\n  \
         cargo run -p ordercenter -- config schema > tenant-config/schema/tenant-config.v1.schema.json"
    );
}

#[test]
fn every_example_and_fixture_validates_against_the_committed_schema() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(committed_schema_path()).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let files: Vec<PathBuf> = [examples_dir(), crate_dir().join("fixtures/v1")]
        .iter()
        .flat_map(|dir| yaml_files(dir))
        .collect();
    assert!(files.len() >= 5);
    for file in files {
        let document: Value =
            serde_norway::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&document)
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
    }
}

/// The loader enforces the schema before its typed pass, so the schema can never accept less
/// than the types; and every property the schema declares must appear in some example or
/// fixture (which the loader accepts), so the schema cannot declare keys the types refuse.
#[test]
fn every_schema_property_is_exercised_by_a_loadable_file() {
    let schema = json_schema();
    let mut declared = Vec::new();
    collect_properties(&schema, &mut declared);
    let mut used = std::collections::BTreeSet::new();
    for dir in [examples_dir(), crate_dir().join("fixtures/v1")] {
        for file in yaml_files(&dir) {
            let document: Value =
                serde_norway::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            collect_keys(&document, &mut used);
        }
    }
    let missing: Vec<&String> = declared.iter().filter(|p| !used.contains(*p)).collect();
    assert!(
        missing.is_empty(),
        "schema properties no example uses: {missing:?}"
    );
}

fn collect_properties(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get("properties") {
                out.extend(properties.keys().cloned());
            }
            for value in map.values() {
                collect_properties(value, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_properties(v, out)),
        _ => {}
    }
}

fn collect_keys(document: &Value, out: &mut std::collections::BTreeSet<String>) {
    match document {
        Value::Object(map) => {
            for (key, value) in map {
                out.insert(key.clone());
                collect_keys(value, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_keys(v, out)),
        _ => {}
    }
}
