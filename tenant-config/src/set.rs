//! [`ConfigSet`]: every tenant, loaded from a directory, immutable once built.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use oc_model::{BusinessIdentity, OrderType, Slot, TenantId};

use crate::auth::{Principal, digest, digests_match};
use crate::error::{ConfigError, ConfigErrors};
use crate::load::load_tenant;
use crate::types::{ResolvedField, TenantConfig};

/// All tenants' configs. Cheap to share behind an `Arc`; replaced whole on reload.
#[derive(Debug, Clone)]
pub struct ConfigSet {
    tenants: BTreeMap<TenantId, Arc<TenantConfig>>,
    /// SHA-256 of a key → (tenant, index into its `api_keys`).
    keys: HashMap<[u8; 32], (TenantId, usize)>,
}

impl ConfigSet {
    /// Load every `*.yaml` / `*.yml` file of `dir` (not recursive), one tenant per file, in
    /// file-name order. All problems of all files are reported together.
    pub fn load_dir(dir: &Path) -> Result<ConfigSet, ConfigErrors> {
        let dir_name = dir.display().to_string();
        let entries = std::fs::read_dir(dir).map_err(|error| {
            ConfigErrors::single(
                &dir_name,
                "",
                format!("cannot read config directory: {error}"),
            )
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|error| {
                ConfigErrors::single(
                    &dir_name,
                    "",
                    format!("cannot read config directory: {error}"),
                )
            })?;
            let path = entry.path();
            let is_yaml = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "yaml" || e == "yml");
            if is_yaml && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(ConfigErrors::single(
                &dir_name,
                "",
                "no tenant config files (*.yaml) in this directory",
            ));
        }
        let mut errors = Vec::new();
        let mut tenants = Vec::new();
        for path in files {
            let file_name = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Err(error) => errors.push(ConfigError::new(
                    &file_name,
                    "",
                    format!("cannot read file: {error}"),
                )),
                Ok(text) => match load_tenant(&file_name, &text) {
                    Ok(tenant) => tenants.push(tenant),
                    Err(file_errors) => errors.extend(file_errors.into_vec()),
                },
            }
        }
        match ConfigSet::from_tenants(tenants) {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => {
                Err(ConfigErrors::from_vec(errors).unwrap_or_else(|| unreachable_errors(&dir_name)))
            }
            Err(cross) => {
                errors.extend(cross.into_vec());
                Err(ConfigErrors::from_vec(errors).unwrap_or_else(|| unreachable_errors(&dir_name)))
            }
        }
    }

    /// Load one tenant from YAML text; `file_name` names it in errors.
    pub fn from_yaml_str(file_name: &str, yaml: &str) -> Result<TenantConfig, ConfigErrors> {
        load_tenant(file_name, yaml)
    }

    /// Put loaded tenants together, checking what spans tenants: unique tenant ids and unique
    /// API key hashes.
    pub fn from_tenants(
        tenants: impl IntoIterator<Item = TenantConfig>,
    ) -> Result<ConfigSet, ConfigErrors> {
        let mut errors = Vec::new();
        let mut by_id: BTreeMap<TenantId, Arc<TenantConfig>> = BTreeMap::new();
        let mut keys: HashMap<[u8; 32], (TenantId, usize)> = HashMap::new();
        for tenant in tenants {
            if let Some(first) = by_id.get(tenant.id()) {
                errors.push(ConfigError::new(
                    tenant.source_file(),
                    "/tenant",
                    format!(
                        "tenant `{}` is already defined in {}",
                        tenant.id(),
                        first.source_file()
                    ),
                ));
                continue;
            }
            for (index, key) in tenant.api_keys().iter().enumerate() {
                if let Some((other_tenant, other_index)) = keys.get(&key.sha256) {
                    let other = &by_id[other_tenant];
                    errors.push(ConfigError::new(
                        tenant.source_file(),
                        format!("/api_keys/{index}/sha256"),
                        format!(
                            "key `{}` has the same hash as key `{}` of tenant `{other_tenant}` ({}): \
                             every key must be unique",
                            key.id,
                            other.api_keys()[*other_index].id,
                            other.source_file()
                        ),
                    ));
                } else {
                    keys.insert(key.sha256, (tenant.id().clone(), index));
                }
            }
            by_id.insert(tenant.id().clone(), Arc::new(tenant));
        }
        match ConfigErrors::from_vec(errors) {
            Some(errors) => Err(errors),
            None => Ok(ConfigSet {
                tenants: by_id,
                keys,
            }),
        }
    }

    pub fn tenant(&self, id: &TenantId) -> Option<&Arc<TenantConfig>> {
        self.tenants.get(id)
    }

    /// Tenants in id order.
    pub fn tenants(&self) -> impl Iterator<Item = &Arc<TenantConfig>> {
        self.tenants.values()
    }

    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    /// The principal an API key belongs to, or `None` for an unknown key.
    pub fn authenticate(&self, api_key: &str) -> Option<Principal> {
        let presented = digest(api_key);
        let (tenant_id, index) = self.keys.get(&presented)?;
        let tenant = self.tenants.get(tenant_id)?;
        let key = tenant.api_keys().get(*index)?;
        if !digests_match(&key.sha256, &presented) {
            return None;
        }
        Some(Principal {
            tenant: tenant_id.clone(),
            key_id: key.id.clone(),
            role: key.role.clone(),
            merchant: key.merchant.clone(),
        })
    }

    /// The mapping engine, forwards: (tenant, identity, order type, field name) → field and slot.
    pub fn resolve_field(
        &self,
        tenant: &TenantId,
        identity: &BusinessIdentity,
        order_type: &OrderType,
        name: &str,
    ) -> Option<&ResolvedField> {
        self.tenant(tenant)?
            .order_type(identity, order_type)?
            .field(name)
    }

    /// The mapping engine, backwards: (tenant, identity, order type, slot) → field.
    pub fn field_at(
        &self,
        tenant: &TenantId,
        identity: &BusinessIdentity,
        order_type: &OrderType,
        slot: &Slot,
    ) -> Option<&ResolvedField> {
        self.tenant(tenant)?
            .order_type(identity, order_type)?
            .field_at(slot)
    }

    /// (tenants, order types, fields), for summaries.
    pub fn counts(&self) -> (usize, usize, usize) {
        let order_types = self.tenants().flat_map(|t| t.order_types()).count();
        let fields = self
            .tenants()
            .flat_map(|t| t.order_types())
            .map(|o| o.fields().len())
            .sum();
        (self.tenants.len(), order_types, fields)
    }
}

fn unreachable_errors(dir: &str) -> ConfigErrors {
    ConfigErrors::single(dir, "", "invalid config")
}
