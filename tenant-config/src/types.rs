//! The resolved, checked config of one tenant. Built only by the loader, immutable afterwards.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use oc_model::aftersale::{AfterSaleMachines, ReviewRouting};
use oc_model::ext::MAX_KV_VALUE_LEN;
use oc_model::{
    BusinessIdentity, Currency, DomainError, ExtFieldType, ExtValue, OrderType, PartyId, RoleName,
    Slot, StateMachine, StatusCode, StockEffect, TenantId, TransitionEvent,
};
use serde::{Deserialize, Serialize};

/// An API operation a role may be granted. The wire names (`orders.create`) are what tenant
/// admins write under `roles.<name>.endpoints`; an unknown name is a load error, so a typo never
/// silently changes what a role may do. Add a variant here when a new endpoint ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Endpoint {
    #[serde(rename = "orders.create")]
    OrdersCreate,
    #[serde(rename = "orders.get")]
    OrdersGet,
    #[serde(rename = "orders.update")]
    OrdersUpdate,
    /// Apply a state machine event (pay, ship, receive, ...).
    #[serde(rename = "orders.transition")]
    OrdersTransition,
    #[serde(rename = "orders.cancel")]
    OrdersCancel,
    /// Buyer-scoped lists (served by the shard).
    #[serde(rename = "orders.list")]
    OrdersList,
    /// Filtered search over the search index (merchant and operations lists).
    #[serde(rename = "orders.search")]
    OrdersSearch,
    #[serde(rename = "after_sales.apply")]
    AfterSalesApply,
    #[serde(rename = "after_sales.get")]
    AfterSalesGet,
    #[serde(rename = "after_sales.list")]
    AfterSalesList,
    #[serde(rename = "after_sales.review")]
    AfterSalesReview,
    #[serde(rename = "exports.create")]
    ExportsCreate,
    /// Read the tenant's own config (keys are shown by id only).
    #[serde(rename = "admin.config")]
    AdminConfig,
    #[serde(rename = "admin.reconcile")]
    AdminReconcile,
    #[serde(rename = "admin.backfill")]
    AdminBackfill,
    /// Set and read the stock of a SKU (`PUT`/`GET /v1/stock/{sku}`).
    #[serde(rename = "admin.stock")]
    AdminStock,
    /// Refund a captured payment at its provider, and read the refunds raised for manual
    /// handling.
    #[serde(rename = "payments.refund")]
    PaymentsRefund,
}

impl Endpoint {
    pub const ALL: [Endpoint; 17] = [
        Endpoint::OrdersCreate,
        Endpoint::OrdersGet,
        Endpoint::OrdersUpdate,
        Endpoint::OrdersTransition,
        Endpoint::OrdersCancel,
        Endpoint::OrdersList,
        Endpoint::OrdersSearch,
        Endpoint::AfterSalesApply,
        Endpoint::AfterSalesGet,
        Endpoint::AfterSalesList,
        Endpoint::AfterSalesReview,
        Endpoint::ExportsCreate,
        Endpoint::AdminConfig,
        Endpoint::AdminReconcile,
        Endpoint::AdminBackfill,
        Endpoint::AdminStock,
        Endpoint::PaymentsRefund,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::OrdersCreate => "orders.create",
            Endpoint::OrdersGet => "orders.get",
            Endpoint::OrdersUpdate => "orders.update",
            Endpoint::OrdersTransition => "orders.transition",
            Endpoint::OrdersCancel => "orders.cancel",
            Endpoint::OrdersList => "orders.list",
            Endpoint::OrdersSearch => "orders.search",
            Endpoint::AfterSalesApply => "after_sales.apply",
            Endpoint::AfterSalesGet => "after_sales.get",
            Endpoint::AfterSalesList => "after_sales.list",
            Endpoint::AfterSalesReview => "after_sales.review",
            Endpoint::ExportsCreate => "exports.create",
            Endpoint::AdminConfig => "admin.config",
            Endpoint::AdminReconcile => "admin.reconcile",
            Endpoint::AdminBackfill => "admin.backfill",
            Endpoint::AdminStock => "admin.stock",
            Endpoint::PaymentsRefund => "payments.refund",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| format!("unknown endpoint {s:?}"))
    }
}

/// What a role sees of personal data (encrypted fields: parties and encrypted extension fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiAccess {
    /// Decrypted plaintext.
    Full,
    /// A mask (`138****5678`, `Z***`), never the plaintext.
    Masked,
    /// Nothing: the field is left out.
    None,
}

impl PiiAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            PiiAccess::Full => "full",
            PiiAccess::Masked => "masked",
            PiiAccess::None => "none",
        }
    }
}

impl fmt::Display for PiiAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role: which endpoints it may call and what it sees of PII.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleConfig {
    pub endpoints: BTreeSet<Endpoint>,
    pub pii: PiiAccess,
    /// Granted explicitly (`pii_filters: true`): the role may filter searches by personal
    /// data (a party's name or phone, an encrypted extension field) although it does not see
    /// PII in full. Such a filter confirms a guessed value, so without this grant only a
    /// `pii: full` role may use one.
    pub pii_filters: bool,
}

impl RoleConfig {
    pub fn allows(&self, endpoint: Endpoint) -> bool {
        self.endpoints.contains(&endpoint)
    }

    /// Whether the role may filter searches by personal data: it sees PII in full, or the
    /// tenant config grants it `pii_filters`.
    pub fn may_filter_by_pii(&self) -> bool {
        self.pii == PiiAccess::Full || self.pii_filters
    }
}

/// An API key as configured: its id (shown in logs), role and the SHA-256 of the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyConfig {
    pub id: String,
    pub role: RoleName,
    /// The merchant this key is scoped to: it sees and changes only that merchant's orders.
    pub merchant: Option<PartyId>,
    pub description: Option<String>,
    pub(crate) sha256: [u8; 32],
}

impl ApiKeyConfig {
    /// Lowercase hex of the SHA-256 of the key.
    pub fn sha256_hex(&self) -> String {
        crate::auth::to_hex(&self.sha256)
    }
}

impl fmt::Debug for ApiKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyConfig")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("merchant", &self.merchant)
            .field("sha256", &"<redacted>")
            .finish()
    }
}

/// Token-bucket limits (`per_second` refill, `burst` capacity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Per-tenant limits, with optional tighter or looser limits per API key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Whole-tenant refill rate.
    pub per_second: u32,
    /// Whole-tenant bucket capacity.
    pub burst: u32,
    pub per_key: BTreeMap<String, RateLimit>,
}

impl RateLimits {
    /// The whole-tenant limit.
    pub fn tenant(&self) -> RateLimit {
        RateLimit {
            per_second: self.per_second,
            burst: self.burst,
        }
    }

    /// The limit that applies to one key: its own when configured.
    pub fn for_key(&self, key_id: &str) -> Option<&RateLimit> {
        self.per_key.get(key_id)
    }
}

/// The party id hashed into the shard bucket together with the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardKey {
    BuyerId,
    MerchantId,
}

impl ShardKey {
    pub fn as_str(self) -> &'static str {
        match self {
            ShardKey::BuyerId => "buyer_id",
            ShardKey::MerchantId => "merchant_id",
        }
    }
}

/// How a tenant's orders are spread over shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPolicy {
    pub key: ShardKey,
    /// The named group of physical shards (mapped to databases in the service config).
    pub shard_group: String,
}

/// Hot-storage retention: completed orders older than this move to the cold store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub hot_days: u32,
}

/// What an analytics export writes in place of a personal-data field (a party's name,
/// phone and address, a sealed remark, an encrypted extension field) unless the caller's
/// role sees personal data in full and asks for plaintext.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportPii {
    /// The column is left out of the files.
    #[default]
    Dropped,
    /// The mask the API shows a masked role (`138****5678`).
    Masked,
    /// The value's blind-index token (an HMAC: equal values, equal tokens), so analysts can
    /// join on a phone without seeing it; empty where the field has no blind index
    /// (addresses, the remark, unsearchable extension fields).
    Token,
}

impl ExportPii {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportPii::Dropped => "dropped",
            ExportPii::Masked => "masked",
            ExportPii::Token => "token",
        }
    }
}

/// The tenant's export settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exports {
    pub pii: ExportPii,
}

/// How a field can be searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// Not indexed.
    None,
    /// Indexed in clear: equality, and ranges for int, decimal and date.
    Indexed,
    /// Encrypted field: equality only, through a keyed HMAC blind index (`oc-crypto`).
    EqualityBlind,
}

impl SearchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchMode::None => "none",
            SearchMode::Indexed => "indexed",
            SearchMode::EqualityBlind => "equality_blind",
        }
    }
}

/// A compiled JSON Schema constraint on a field's value (checked against `ExtValue::to_json`).
#[derive(Clone)]
pub struct Constraints {
    schema: serde_json::Value,
    validator: Arc<jsonschema::Validator>,
}

impl Constraints {
    pub(crate) fn compile(schema: serde_json::Value) -> Result<Constraints, String> {
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|error| error.to_string())?;
        Ok(Constraints {
            schema,
            validator: Arc::new(validator),
        })
    }

    /// The schema as written in the config.
    pub fn schema(&self) -> &serde_json::Value {
        &self.schema
    }

    /// The first violation as `(JSON Pointer inside the value, message)`.
    pub fn check(&self, instance: &serde_json::Value) -> Result<(), (String, String)> {
        match self.validator.iter_errors(instance).next() {
            None => Ok(()),
            Some(error) => Err((error.instance_path.to_string(), error.to_string())),
        }
    }
}

impl fmt::Debug for Constraints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Constraints").field(&self.schema).finish()
    }
}

impl PartialEq for Constraints {
    fn eq(&self, other: &Self) -> bool {
        self.schema == other.schema
    }
}

/// An extension field resolved to its slot: the unit of the mapping engine.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedField {
    pub name: String,
    pub field_type: ExtFieldType,
    pub slot: Slot,
    pub required: bool,
    pub encrypted: bool,
    pub searchable: bool,
    /// `searchable` resolved: `EqualityBlind` for encrypted fields, `Indexed` for clear ones.
    pub search: SearchMode,
    /// Allowed values of an `enum` field, in config order; empty for other types.
    pub enum_values: Vec<String>,
    pub constraints: Option<Constraints>,
    pub description: Option<String>,
}

impl ResolvedField {
    /// JSON from a request → typed value, checked against type, enum values and constraints.
    ///
    /// Errors are `InvalidInput` whose `field` is the JSON Pointer inside the value (`""` for the
    /// value itself); the caller prefixes `/extension/<name>` with [`DomainError::under`].
    pub fn validate(&self, json: &serde_json::Value) -> Result<ExtValue, DomainError> {
        let value = check_value(
            self.field_type,
            &self.enum_values,
            self.constraints.as_ref(),
            json,
        )?;
        if let Some(spec) = self.search_spec() {
            oc_model::search::check_indexable(spec.kind, &value)?;
        }
        if matches!(self.slot, Slot::Kv { .. }) {
            let length = value.canonical_text().chars().count();
            if length > MAX_KV_VALUE_LEN {
                return Err(DomainError::invalid(
                    "",
                    format!(
                        "value is {length} characters long; a KV identifier holds at most {MAX_KV_VALUE_LEN}"
                    ),
                ));
            }
        }
        Ok(value)
    }

    /// Whether the field holds personal data (encrypted fields are treated as PII: roles see
    /// them according to their `pii` access).
    pub fn is_pii(&self) -> bool {
        self.encrypted
    }

    /// How the search index holds this field: its configured name and index kind; `None`
    /// when it is not searchable (or a JSON field, which has no index kind).
    pub fn search_spec(&self) -> Option<oc_model::search::SearchFieldSpec> {
        if self.search == SearchMode::None {
            return None;
        }
        let kind = oc_model::search::SearchFieldKind::of(self.field_type, self.encrypted)?;
        let name = oc_model::search::SearchFieldName::parse(self.name.clone()).ok()?;
        Some(oc_model::search::SearchFieldSpec { name, kind })
    }
}

/// JSON → typed value, checked against the type, the allowed enum values and the constraints;
/// errors name the JSON Pointer inside the value (`""` for the value itself).
fn check_value(
    field_type: ExtFieldType,
    enum_values: &[String],
    constraints: Option<&Constraints>,
    json: &serde_json::Value,
) -> Result<ExtValue, DomainError> {
    let value = ExtValue::from_json(field_type, json)?;
    if let ExtValue::Enum(chosen) = &value
        && !enum_values.iter().any(|allowed| allowed == chosen)
    {
        return Err(DomainError::invalid(
            "",
            format!(
                "{chosen:?} is not one of the allowed values [{}]",
                enum_values.join(", ")
            ),
        ));
    }
    if let Some(constraints) = constraints
        && let Err((path, message)) = constraints.check(&value.to_json())
    {
        return Err(DomainError::invalid(path, message));
    }
    Ok(value)
}

/// Where a transition's data value is also written in the order (besides the history row
/// and the event, where every accepted value goes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DataTarget {
    LogisticsCarrier,
    LogisticsWaybillNo,
    LogisticsServiceProduct,
    OperationRemark,
}

impl DataTarget {
    pub const ALL: [DataTarget; 4] = [
        DataTarget::LogisticsCarrier,
        DataTarget::LogisticsWaybillNo,
        DataTarget::LogisticsServiceProduct,
        DataTarget::OperationRemark,
    ];

    /// The name tenant admins write under `into:`.
    pub fn as_str(self) -> &'static str {
        match self {
            DataTarget::LogisticsCarrier => "logistics.carrier",
            DataTarget::LogisticsWaybillNo => "logistics.waybill_no",
            DataTarget::LogisticsServiceProduct => "logistics.service_product",
            DataTarget::OperationRemark => "operation.remark",
        }
    }

    pub fn parse(text: &str) -> Option<DataTarget> {
        DataTarget::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// The longest text the target holds.
    pub fn max_len(self) -> usize {
        match self {
            DataTarget::OperationRemark => 512,
            _ => 64,
        }
    }
}

impl fmt::Display for DataTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value a transition's event accepts in its `data` (e.g. `ship`'s `carrier`).
#[derive(Debug, Clone, PartialEq)]
pub struct DataField {
    pub name: String,
    pub field_type: ExtFieldType,
    pub required: bool,
    /// Allowed values of an `enum` field; empty for other types.
    pub enum_values: Vec<String>,
    pub constraints: Option<Constraints>,
    /// Also written into this order field (text fields only).
    pub into: Option<DataTarget>,
    pub description: Option<String>,
}

impl DataField {
    /// JSON from a request → typed value; errors name the pointer inside the value.
    pub fn validate(&self, json: &serde_json::Value) -> Result<ExtValue, DomainError> {
        let value = check_value(
            self.field_type,
            &self.enum_values,
            self.constraints.as_ref(),
            json,
        )?;
        if let Some(target) = self.into {
            let text = value.canonical_text();
            if text.chars().count() > target.max_len() {
                return Err(DomainError::invalid(
                    "",
                    format!("{target} holds at most {} characters", target.max_len()),
                ));
            }
        }
        Ok(value)
    }
}

/// One transition of a state machine with what the tenant config says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionConfig {
    pub from: StatusCode,
    pub event: TransitionEvent,
    pub to: StatusCode,
    /// The CloudEvents type's last part (`com.ordercenter.order.<event_type>`): the target
    /// state unless the config names another.
    pub event_type: String,
    /// What the transition does to the order's stock: `pay` confirms, `cancel` and
    /// `timeout` release, anything else nothing, unless the config says otherwise.
    pub stock: StockEffect,
    /// The data its event accepts.
    pub data: Vec<DataField>,
}

impl TransitionConfig {
    /// The stock effect of an event when the config names none.
    pub fn default_stock(event: &TransitionEvent) -> StockEffect {
        match event.as_str() {
            "pay" => StockEffect::Confirm,
            "cancel" | "timeout" => StockEffect::Release,
            _ => StockEffect::None,
        }
    }

    pub fn data_field(&self, name: &str) -> Option<&DataField> {
        self.data.iter().find(|field| field.name == name)
    }
}

/// Whether orders of a business identity hold stock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InventoryMode {
    /// No stock: orders are placed without reservations (the behaviour before stock existed).
    #[default]
    None,
    /// Placement reserves every line's stock, `pay` sells it, `cancel`/`timeout` release it.
    Builtin,
}

impl InventoryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            InventoryMode::None => "none",
            InventoryMode::Builtin => "builtin",
        }
    }
}

/// What placement does with a SKU nobody ever set stock for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UntrackedSkus {
    /// Refuse the order (out of stock): every SKU sold must have stock.
    #[default]
    Refuse,
    /// Sell it without a reservation (made-to-order or virtual goods).
    Allow,
}

/// What stands in front of the SQL stock (the truth) for hot SKUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InventoryAccelerator {
    /// Every reservation goes straight to SQL's conditional decrement.
    #[default]
    None,
    /// A Redis admission counter per SKU (rebuilt from SQL when missing) refuses buyers of a
    /// sold-out SKU before they reach SQL; SQL's conditional decrement stays the truth. Needs
    /// the service's Redis (`OC_REDIS_URL`); without it reservations go to SQL alone.
    Redis,
}

impl InventoryAccelerator {
    pub fn as_str(self) -> &'static str {
        match self {
            InventoryAccelerator::None => "none",
            InventoryAccelerator::Redis => "redis",
        }
    }
}

/// A business identity's inventory settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryConfig {
    pub mode: InventoryMode,
    pub untracked_skus: UntrackedSkus,
    pub accelerator: InventoryAccelerator,
    /// The SKUs the accelerator serves; `None`: every SKU of the identity.
    pub hot_skus: Option<BTreeSet<String>>,
}

impl InventoryConfig {
    pub fn is_builtin(&self) -> bool {
        self.mode == InventoryMode::Builtin
    }

    /// Whether reservations of `sku` go through the accelerator first.
    pub fn accelerated(&self, sku: &str) -> bool {
        self.is_builtin()
            && self.accelerator != InventoryAccelerator::None
            && self.hot_skus.as_ref().is_none_or(|skus| skus.contains(sku))
    }
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig {
            mode: InventoryMode::None,
            untracked_skus: UntrackedSkus::Refuse,
            accelerator: InventoryAccelerator::None,
            hot_skus: None,
        }
    }
}

/// The extension fields of one (business identity, order type), with lookups both ways.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderTypeConfig {
    pub(crate) identity: BusinessIdentity,
    pub(crate) order_type: OrderType,
    pub(crate) description: Option<String>,
    pub(crate) fields: Vec<ResolvedField>,
    pub(crate) by_name: HashMap<String, usize>,
    pub(crate) by_slot: HashMap<Slot, usize>,
    pub(crate) retired_slots: BTreeSet<Slot>,
    pub(crate) payment_window: Option<time::Duration>,
    pub(crate) receiver_required: bool,
    pub(crate) partial_payments: bool,
    pub(crate) remark_encrypted: bool,
}

impl OrderTypeConfig {
    pub(crate) fn new(
        identity: BusinessIdentity,
        order_type: OrderType,
        description: Option<String>,
        fields: Vec<ResolvedField>,
        retired_slots: BTreeSet<Slot>,
    ) -> Self {
        let by_name = fields
            .iter()
            .enumerate()
            .map(|(index, field)| (field.name.clone(), index))
            .collect();
        let by_slot = fields
            .iter()
            .enumerate()
            .map(|(index, field)| (field.slot.clone(), index))
            .collect();
        OrderTypeConfig {
            identity,
            order_type,
            description,
            fields,
            by_name,
            by_slot,
            retired_slots,
            payment_window: None,
            receiver_required: false,
            partial_payments: false,
            remark_encrypted: false,
        }
    }

    /// How long an order of this type may wait for payment before the timeout cancels it;
    /// `None`: it waits until cancelled.
    pub fn payment_window(&self) -> Option<time::Duration> {
        self.payment_window
    }

    /// Whether an order of this type needs a receiver to be created (goods that are shipped
    /// do; a virtual good or a service may not).
    pub fn receiver_required(&self) -> bool {
        self.receiver_required
    }

    /// Whether an order of this type may be paid in parts (a pre-sale's deposit, then the
    /// balance): a payment may then ask for less than what is left to pay, and the order is
    /// paid when its captured payments reach its payable amount. Otherwise a payment is for
    /// everything left to pay.
    pub fn partial_payments(&self) -> bool {
        self.partial_payments
    }

    /// Whether the free-text `remark` of an order of this type is sealed (it often holds
    /// phone numbers). Applies to values written from then on: a stored remark says itself
    /// whether it is sealed, so turning this on or off never makes a stored one unreadable.
    pub fn remark_encrypted(&self) -> bool {
        self.remark_encrypted
    }

    pub fn identity(&self) -> &BusinessIdentity {
        &self.identity
    }

    pub fn order_type(&self) -> &OrderType {
        &self.order_type
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Fields in config order.
    pub fn fields(&self) -> &[ResolvedField] {
        &self.fields
    }

    /// Name → slot.
    pub fn field(&self, name: &str) -> Option<&ResolvedField> {
        self.by_name.get(name).map(|index| &self.fields[*index])
    }

    /// Slot → name (the reverse mapping, used to expose stored columns by their names).
    pub fn field_at(&self, slot: &Slot) -> Option<&ResolvedField> {
        self.by_slot.get(slot).map(|index| &self.fields[*index])
    }

    /// Slots that once held a field and stay reserved forever.
    pub fn retired_slots(&self) -> &BTreeSet<Slot> {
        &self.retired_slots
    }

    pub fn required_fields(&self) -> impl Iterator<Item = &ResolvedField> {
        self.fields.iter().filter(|field| field.required)
    }
}

/// A business identity: its state machine and its order types.
#[derive(Debug, Clone, PartialEq)]
pub struct BusinessIdentityConfig {
    pub(crate) description: Option<String>,
    pub(crate) state_machine: StateMachine,
    pub(crate) transitions: BTreeMap<(StatusCode, TransitionEvent), TransitionConfig>,
    pub(crate) order_types: BTreeMap<OrderType, OrderTypeConfig>,
    pub(crate) inventory: InventoryConfig,
}

impl BusinessIdentityConfig {
    /// The transition `event` takes from `from`, with its settings.
    pub fn transition(
        &self,
        from: &StatusCode,
        event: &TransitionEvent,
    ) -> Option<&TransitionConfig> {
        self.transitions.get(&(from.clone(), event.clone()))
    }

    /// Every transition, by (from, event).
    pub fn transitions(&self) -> impl Iterator<Item = &TransitionConfig> {
        self.transitions.values()
    }

    pub fn inventory(&self) -> &InventoryConfig {
        &self.inventory
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    pub fn state_machine(&self) -> &StateMachine {
        &self.state_machine
    }

    pub fn order_types(&self) -> &BTreeMap<OrderType, OrderTypeConfig> {
        &self.order_types
    }
}

/// A tenant's after-sales (`after_sales:`, issue #20): the state machine of each after-sale
/// type and who reviews an application from each channel. What a tenant leaves out is seed
/// 000's default ([`AfterSaleMachines::defaults`], [`ReviewRouting::default`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterSalesConfig {
    pub(crate) machines: AfterSaleMachines,
    pub(crate) routing: ReviewRouting,
}

impl Default for AfterSalesConfig {
    fn default() -> Self {
        AfterSalesConfig {
            machines: AfterSaleMachines::defaults(),
            routing: ReviewRouting::default(),
        }
    }
}

impl AfterSalesConfig {
    /// The machine of every after-sale type (the tenant's own where it configured one).
    pub fn machines(&self) -> &AfterSaleMachines {
        &self.machines
    }

    /// Who reviews a user's and a customer service's application.
    pub fn routing(&self) -> ReviewRouting {
        self.routing
    }
}

/// The checked config of one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantConfig {
    pub(crate) source_file: String,
    pub(crate) id: TenantId,
    pub(crate) display_name: Option<String>,
    pub(crate) currency: Currency,
    pub(crate) api_keys: Vec<ApiKeyConfig>,
    pub(crate) roles: BTreeMap<RoleName, RoleConfig>,
    pub(crate) rate_limits: RateLimits,
    pub(crate) shard_policy: ShardPolicy,
    pub(crate) retention: Retention,
    pub(crate) exports: Exports,
    pub(crate) business_identities: BTreeMap<BusinessIdentity, BusinessIdentityConfig>,
    pub(crate) after_sales: AfterSalesConfig,
}

impl TenantConfig {
    pub fn id(&self) -> &TenantId {
        &self.id
    }

    /// The file this tenant was loaded from.
    pub fn source_file(&self) -> &str {
        &self.source_file
    }

    pub fn display_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(self.id.as_str())
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn api_keys(&self) -> &[ApiKeyConfig] {
        &self.api_keys
    }

    pub fn role(&self, role: &RoleName) -> Option<&RoleConfig> {
        self.roles.get(role)
    }

    pub fn roles(&self) -> &BTreeMap<RoleName, RoleConfig> {
        &self.roles
    }

    pub fn business_identity(
        &self,
        identity: &BusinessIdentity,
    ) -> Option<&BusinessIdentityConfig> {
        self.business_identities.get(identity)
    }

    pub fn business_identities(&self) -> &BTreeMap<BusinessIdentity, BusinessIdentityConfig> {
        &self.business_identities
    }

    pub fn order_type(
        &self,
        identity: &BusinessIdentity,
        order_type: &OrderType,
    ) -> Option<&OrderTypeConfig> {
        self.business_identities
            .get(identity)?
            .order_types
            .get(order_type)
    }

    /// Every order type of every identity.
    /// Every searchable field of the tenant, once per name, sorted by name: the tenant's
    /// search mapping. Loading guarantees a name has one kind across order types.
    pub fn search_fields(&self) -> Vec<oc_model::search::SearchFieldSpec> {
        let mut fields: BTreeMap<String, oc_model::search::SearchFieldSpec> = BTreeMap::new();
        for field in self.order_types().flat_map(OrderTypeConfig::fields) {
            if let Some(spec) = field.search_spec() {
                fields.entry(spec.name.as_str().to_owned()).or_insert(spec);
            }
        }
        fields.into_values().collect()
    }

    pub fn order_types(&self) -> impl Iterator<Item = &OrderTypeConfig> {
        self.business_identities
            .values()
            .flat_map(|identity| identity.order_types.values())
    }

    pub fn state_machine(&self, identity: &BusinessIdentity) -> Option<&StateMachine> {
        self.business_identities
            .get(identity)
            .map(|identity| &identity.state_machine)
    }

    pub fn rate_limits(&self) -> &RateLimits {
        &self.rate_limits
    }

    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    /// Export settings (`exports:`; PII dropped when absent).
    pub fn exports(&self) -> &Exports {
        &self.exports
    }

    pub fn shard_policy(&self) -> &ShardPolicy {
        &self.shard_policy
    }

    /// After-sale machines and review routing (`after_sales:`; the defaults when absent).
    pub fn after_sales(&self) -> &AfterSalesConfig {
        &self.after_sales
    }
}
