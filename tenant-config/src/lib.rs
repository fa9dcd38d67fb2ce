// the tenant-config JSON Schema is one `json!` literal deeper than the default limit
#![recursion_limit = "256"]
#![doc = include_str!("../README.md")]

mod auth;
mod error;
mod load;
mod plan;
mod reload;
mod schema;
mod search_fields;
mod set;
mod slot;
mod types;
mod v1;

pub use auth::{Principal, hash_api_key};
pub use error::{ConfigError, ConfigErrors};
pub use load::CURRENT_VERSION;
pub use plan::{
    Change, Plan, Refusal, RefusalKind, Severity, WrittenSlot, plan, plan_against_written,
};
pub use reload::{ConfigHandle, ReloadError, ReloadGate};
pub use schema::{SCHEMA_ID_V1, json_schema, json_schema_v1};
pub use set::ConfigSet;
pub use slot::parse_slot;
pub use types::{
    AfterSalesConfig, ApiKeyConfig, BusinessIdentityConfig, Constraints, DataField, DataTarget,
    Endpoint, ExportPii, Exports, InventoryAccelerator, InventoryConfig, InventoryMode,
    OrderTypeConfig, PiiAccess, RateLimit, RateLimits, ResolvedField, Retention, RoleConfig,
    SearchMode, ShardKey, ShardPolicy, TenantConfig, TransitionConfig, UntrackedSkus,
};
