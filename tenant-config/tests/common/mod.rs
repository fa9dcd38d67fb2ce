//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use oc_model::{BusinessIdentity, OrderType, TenantId};
use oc_tenant_config::{ConfigSet, OrderTypeConfig, TenantConfig};

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn examples_dir() -> PathBuf {
    crate_dir().join("examples")
}

pub fn example(name: &str) -> String {
    std::fs::read_to_string(examples_dir().join(name)).unwrap()
}

pub fn examples() -> ConfigSet {
    ConfigSet::load_dir(&examples_dir()).unwrap_or_else(|errors| panic!("{errors}"))
}

/// Replace `from` (which must occur) by `to`.
pub fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "test setup: {from:?} not found");
    text.replacen(from, to, 1)
}

/// A config set from the two examples' texts (after edits).
pub fn set_of(express: &str, retail: &str) -> ConfigSet {
    let tenants = [("express.yaml", express), ("retail.yaml", retail)]
        .into_iter()
        .map(|(file, text)| ConfigSet::from_yaml_str(file, text).unwrap_or_else(|e| panic!("{e}")));
    ConfigSet::from_tenants(tenants).unwrap_or_else(|e| panic!("{e}"))
}

pub fn tenant<'a>(set: &'a ConfigSet, id: &str) -> &'a TenantConfig {
    set.tenant(&TenantId::parse(id).unwrap()).unwrap()
}

pub fn order_type<'a>(
    tenant: &'a TenantConfig,
    identity: &str,
    order_type: &str,
) -> &'a OrderTypeConfig {
    tenant
        .order_type(
            &BusinessIdentity::parse(identity).unwrap(),
            &OrderType::parse(order_type).unwrap(),
        )
        .unwrap()
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Example API keys (test credentials, documented in the example files).
pub const EXPRESS_BL_KEY: &str = "oc_test_express_bl_0001_7c1f4e9a2b6d8035e1a4";
pub const EXPRESS_CS_KEY: &str = "oc_test_express_cs_0001_3b8e0d52f9a6c1477d20";
pub const RETAIL_BL_KEY: &str = "oc_test_retail_bl_0001_e4b1279c5a3f0d86b7e9";
