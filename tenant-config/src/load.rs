//! Loading one tenant file: YAML → version check → JSON Schema (structure, all errors at once)
//! → typed version-1 structs (`deny_unknown_fields`) → semantic checks with paths → the
//! resolved [`TenantConfig`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use oc_model::aftersale::{AfterSaleMachines, AfterSaleType, Reviewer};
use oc_model::{
    BusinessIdentity, Currency, ExtFieldType, OrderType, PartyId, RoleName, Sku, Slot,
    StateMachine, StateMachineError, StatusCode, StockEffect, TenantId, TransitionDef,
    TransitionEvent,
};
use serde_json::Value;

use crate::error::{Collector, ConfigErrors, child};
use crate::schema::validator_v1;
use crate::slot::parse_slot;
use crate::types::{
    AfterSalesConfig, ApiKeyConfig, BusinessIdentityConfig, Constraints, DataField, DataTarget,
    Endpoint, Exports, InventoryAccelerator, InventoryConfig, InventoryMode, OrderTypeConfig,
    RateLimits, ResolvedField, Retention, RoleConfig, SearchMode, ShardPolicy, TenantConfig,
    TransitionConfig,
};
use crate::v1::{
    RawAfterSales, RawDataField, RawField, RawIdentity, RawInventory, RawOrderType,
    RawStateMachine, RawTenant,
};

/// Longest payment window: 30 days.
const MAX_PAYMENT_WINDOW_SECONDS: u32 = 30 * 24 * 3600;
/// The event the timeout worker fires when an order's payment window elapses.
const TIMEOUT_EVENT: &str = "timeout";

/// The format version this build writes and reads.
pub const CURRENT_VERSION: u64 = 1;

/// Load one tenant file's text. `file` names it in errors.
pub(crate) fn load_tenant(file: &str, yaml: &str) -> Result<TenantConfig, ConfigErrors> {
    let document: Value = serde_norway::from_str(yaml)
        .map_err(|error| ConfigErrors::single(file, "", format!("invalid YAML: {error}")))?;
    let Value::Object(top) = &document else {
        return Err(ConfigErrors::single(
            file,
            "",
            format!(
                "a tenant config is a YAML mapping with `version: {CURRENT_VERSION}` first, got {}",
                json_kind(&document)
            ),
        ));
    };
    match top.get("version") {
        None => {
            return Err(ConfigErrors::single(
                file,
                "/version",
                format!("missing `version` (this build reads version {CURRENT_VERSION})"),
            ));
        }
        Some(version) if version.as_u64() == Some(CURRENT_VERSION) => {}
        Some(other) => {
            return Err(ConfigErrors::single(
                file,
                "/version",
                format!(
                    "unsupported config version {other}: this build reads version {CURRENT_VERSION}"
                ),
            ));
        }
    }

    let mut collector = Collector::new(file);
    let mut unknown_keys = Vec::new();
    for error in validator_v1().iter_errors(&document) {
        let path = error.instance_path.to_string();
        match &error.kind {
            jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                for key in unexpected {
                    collector.push(child(&path, key), format!("unknown key `{key}`"));
                    unknown_keys.push((path.clone(), key.clone()));
                }
            }
            _ => {
                let mut message = error.to_string();
                let scalar = error.instance.is_number() || error.instance.is_boolean();
                if scalar && message.ends_with("is not of type \"string\"") {
                    message.push_str(
                        " (quote it: unquoted, YAML reads values like 1234 or true as numbers and booleans)",
                    );
                }
                collector.push(path, message)
            }
        }
    }
    // unknown keys are reported above; drop them so the checks below still see the rest of
    // the file and report its problems in the same pass
    let mut document = document;
    for (parent, key) in unknown_keys {
        if let Some(Value::Object(map)) = document.pointer_mut(&parent) {
            map.remove(&key);
        }
    }

    let raw: RawTenant = match serde_json::from_value(document) {
        Ok(raw) => raw,
        Err(error) => {
            if collector.errors.is_empty() {
                // the schema let through what the types refuse: report it rather than hide it
                collector.push("", error.to_string());
            }
            return Err(ConfigErrors::from_vec(collector.errors)
                .unwrap_or_else(|| ConfigErrors::single(file, "", "invalid config")));
        }
    };

    let mut semantic = Collector::new(file);
    let resolved = resolve_tenant(file, raw, &mut semantic);
    // one message per place: where the schema (e.g. a pattern) and a semantic check refuse the
    // same value, keep the semantic message, which says more
    let semantic_paths: BTreeSet<&str> = semantic.errors.iter().map(|e| e.path.as_str()).collect();
    let mut errors: Vec<_> = collector
        .errors
        .iter()
        .filter(|error| !semantic_paths.contains(error.path.as_str()))
        .cloned()
        .collect();
    errors.extend(semantic.errors);
    match (ConfigErrors::from_vec(errors), resolved) {
        (None, Some(tenant)) => Ok(tenant),
        (Some(errors), _) => Err(errors),
        (None, None) => Err(ConfigErrors::single(file, "", "invalid config")),
    }
}

/// The search index holds one mapping per tenant, so a searchable field name used by several
/// order types must be indexed the same way in all of them.
fn check_search_kinds(
    identities: &BTreeMap<BusinessIdentity, BusinessIdentityConfig>,
    c: &mut Collector<'_>,
) {
    let mut first: BTreeMap<String, (oc_model::search::SearchFieldKind, String)> = BTreeMap::new();
    for (identity, config) in identities {
        for (order_type, type_config) in config.order_types() {
            for (index, field) in type_config.fields().iter().enumerate() {
                let Some(spec) = field.search_spec() else {
                    continue;
                };
                let path = format!(
                    "/business_identities/{identity}/order_types/{order_type}/fields/{index}"
                );
                match first.get(spec.name.as_str()) {
                    Some((kind, at)) if *kind != spec.kind => c.push(
                        path,
                        format!(
                            "searchable field `{}` is indexed as {} here but as {kind} at {at}: \
                             a tenant has one search mapping, so a name keeps one type",
                            field.name, spec.kind
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        first.insert(spec.name.as_str().to_owned(), (spec.kind, path));
                    }
                }
            }
        }
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "an empty document",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Parse a code newtype, reporting its message at `path`.
fn code<'r, T>(
    collector: &mut Collector<'_>,
    path: &str,
    raw: &'r str,
    parse: impl FnOnce(&'r str) -> Result<T, oc_model::DomainError>,
) -> Option<T> {
    match parse(raw) {
        Ok(value) => Some(value),
        Err(error) => {
            collector.push(path, error.message);
            None
        }
    }
}

fn is_code(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && text.as_bytes()[0].is_ascii_alphanumeric()
}

fn is_field_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.as_bytes()[0].is_ascii_lowercase()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn resolve_tenant(file: &str, raw: RawTenant, c: &mut Collector<'_>) -> Option<TenantConfig> {
    let id = code(c, "/tenant", &raw.tenant, TenantId::parse);
    let currency = code(c, "/currency", &raw.currency, Currency::parse);
    if raw
        .display_name
        .as_deref()
        .is_some_and(|name| name.trim().is_empty())
    {
        c.push("/display_name", "display name is empty");
    }

    let mut roles = BTreeMap::new();
    for (name, role) in raw.roles {
        let path = child("/roles", &name);
        if let Some(role_name) = code(c, &path, &name, RoleName::parse) {
            roles.insert(
                role_name,
                RoleConfig {
                    endpoints: role.endpoints.into_iter().collect(),
                    pii: role.pii,
                    pii_filters: role.pii_filters,
                },
            );
        }
    }

    let mut api_keys = Vec::new();
    let mut key_ids: HashMap<String, usize> = HashMap::new();
    let mut key_hashes: HashMap<[u8; 32], usize> = HashMap::new();
    for (index, key) in raw.api_keys.into_iter().enumerate() {
        let path = child("/api_keys", index);
        if !is_code(&key.id) {
            c.push(
                child(&path, "id"),
                format!(
                    "key id {:?} must be 1 to 64 of a-z 0-9 _ -, starting with a letter or digit",
                    key.id
                ),
            );
        } else if let Some(first) = key_ids.insert(key.id.clone(), index) {
            c.push(
                child(&path, "id"),
                format!("duplicate key id `{}` (first at /api_keys/{first})", key.id),
            );
        }
        let role = code(c, &child(&path, "role"), &key.role, RoleName::parse);
        if let Some(role) = &role
            && !roles.contains_key(role)
        {
            c.push(
                child(&path, "role"),
                format!(
                    "key `{}` names role `{role}`, which is not defined under /roles",
                    key.id
                ),
            );
        }
        let digest = crate::auth::parse_hex_sha256(&key.sha256);
        match digest {
            None => c.push(
                child(&path, "sha256"),
                "sha256 must be the 64 hex characters of the key's SHA-256 (never the key itself)",
            ),
            Some(digest) => {
                if let Some(first) = key_hashes.insert(digest, index) {
                    c.push(
                        child(&path, "sha256"),
                        format!("the same key hash is already configured at /api_keys/{first}"),
                    );
                }
            }
        }
        let merchant =
            key.merchant
                .as_deref()
                .and_then(|merchant| match PartyId::parse(merchant) {
                    Ok(merchant) => Some(merchant),
                    Err(error) => {
                        c.push(child(&path, "merchant"), error.message);
                        None
                    }
                });
        if merchant.is_some()
            && let Some(granted) = role.as_ref().and_then(|role| roles.get(role))
            && granted.endpoints.contains(&Endpoint::OrdersList)
        {
            c.push(
                child(&path, "merchant"),
                format!(
                    "key `{}` is scoped to a merchant but its role grants orders.list, whose buyer lists span merchants: grant orders.search instead",
                    key.id
                ),
            );
        }
        if let (Some(role), Some(sha256)) = (role, digest) {
            api_keys.push(ApiKeyConfig {
                id: key.id,
                role,
                merchant,
                description: key.description,
                sha256,
            });
        }
    }

    for (key_id, limit) in &raw.rate_limits.per_key {
        let path = child("/rate_limits/per_key", key_id);
        if !key_ids.contains_key(key_id) {
            c.push(
                &path,
                format!("rate limit for key `{key_id}`, which is not under /api_keys"),
            );
        }
        check_rate(c, &path, limit.per_second, limit.burst);
    }
    check_rate(
        c,
        "/rate_limits",
        raw.rate_limits.per_second,
        raw.rate_limits.burst,
    );
    let rate_limits = RateLimits {
        per_second: raw.rate_limits.per_second,
        burst: raw.rate_limits.burst,
        per_key: raw.rate_limits.per_key,
    };

    if !is_code(&raw.shard_policy.shard_group) {
        c.push(
            "/shard_policy/shard_group",
            format!(
                "shard group {:?} must be 1 to 64 of a-z 0-9 _ -",
                raw.shard_policy.shard_group
            ),
        );
    }
    let shard_policy = ShardPolicy {
        key: raw.shard_policy.key,
        shard_group: raw.shard_policy.shard_group,
    };
    if raw.retention.hot_days == 0 {
        c.push("/retention/hot_days", "hot_days must be at least 1");
    }
    let retention = Retention {
        hot_days: raw.retention.hot_days,
    };

    let mut business_identities = BTreeMap::new();
    for (name, identity) in raw.business_identities {
        let path = child("/business_identities", &name);
        let parsed = code(c, &path, &name, BusinessIdentity::parse);
        let resolved = resolve_identity(&path, parsed.as_ref(), identity, c);
        if let (Some(parsed), Some(resolved)) = (parsed, resolved) {
            business_identities.insert(parsed, resolved);
        }
    }
    check_search_kinds(&business_identities, c);
    let after_sales = resolve_after_sales(raw.after_sales.unwrap_or_default(), c);

    Some(TenantConfig {
        source_file: file.to_owned(),
        id: id?,
        display_name: raw.display_name,
        currency: currency?,
        api_keys,
        roles,
        rate_limits,
        shard_policy,
        retention,
        exports: Exports {
            pii: raw.exports.pii,
        },
        business_identities,
        after_sales: after_sales?,
    })
}

/// `after_sales:`: each configured machine checked like an order machine (by the same code,
/// with the same paths) and then for what the after-sale core drives by name; the routing's
/// reviewers. What is left out keeps seed 000's default.
fn resolve_after_sales(raw: RawAfterSales, c: &mut Collector<'_>) -> Option<AfterSalesConfig> {
    let before = c.errors.len();
    let mut config = AfterSalesConfig::default();
    for (name, machine) in &raw.state_machines {
        let path = child("/after_sales/state_machines", name);
        let Some(kind) = AfterSaleType::parse(name) else {
            let known: Vec<&str> = AfterSaleType::ALL.iter().map(|t| t.as_str()).collect();
            c.push(
                path,
                format!(
                    "unknown after-sale type `{name}`; one of {}",
                    known.join(", ")
                ),
            );
            continue;
        };
        let Some((resolved, _)) = resolve_state_machine(&path, &machine.as_order_machine(), c)
        else {
            continue;
        };
        let gaps = AfterSaleMachines::gaps(kind, &resolved);
        if gaps.is_empty() {
            config.machines = config.machines.with(kind, resolved);
        }
        for gap in gaps {
            let at = child(&path, gap.at);
            // an event no route fires: point at the transition that names it
            let at = match gap
                .event
                .as_deref()
                .and_then(|event| machine.transitions.iter().position(|t| t.event == event))
            {
                Some(index) => child(&child(&at, index), "event"),
                None => at,
            };
            c.push(at, gap.message);
        }
    }
    if let Some(routing) = raw.review_routing {
        for (key, value, slot) in [
            ("user", routing.user, &mut config.routing.user),
            (
                "customer_service",
                routing.customer_service,
                &mut config.routing.customer_service,
            ),
        ] {
            let Some(value) = value else { continue };
            match Reviewer::parse(&value) {
                Some(reviewer @ (Reviewer::Merchant | Reviewer::CustomerService)) => {
                    *slot = reviewer;
                }
                _ => c.push(
                    child("/after_sales/review_routing", key),
                    format!(
                        "the reviewer of a {} application is `merchant` or `customer_service`, got {value:?} \
                         (only a merchant's own application is approved without review)",
                        key.replace('_', " ")
                    ),
                ),
            }
        }
    }
    (c.errors.len() == before).then_some(config)
}

fn check_rate(c: &mut Collector<'_>, path: &str, per_second: u32, burst: u32) {
    if per_second == 0 {
        c.push(child(path, "per_second"), "per_second must be at least 1");
    }
    if burst == 0 {
        c.push(child(path, "burst"), "burst must be at least 1");
    }
}

fn resolve_identity(
    path: &str,
    identity: Option<&BusinessIdentity>,
    raw: RawIdentity,
    c: &mut Collector<'_>,
) -> Option<BusinessIdentityConfig> {
    let machine_path = child(path, "state_machine");
    let resolved_machine = resolve_state_machine(&machine_path, &raw.state_machine, c);
    let inventory = resolve_inventory(&child(path, "inventory"), raw.inventory.as_ref(), c);
    // the timeout worker fires `timeout` at orders in their first state: a payment window
    // needs that transition to exist
    let times_out = resolved_machine.as_ref().is_some_and(|(machine, _)| {
        TransitionEvent::parse(TIMEOUT_EVENT)
            .is_ok_and(|timeout| machine.next(machine.initial(), &timeout).is_ok())
    });
    if raw.order_types.is_empty() {
        c.push(
            child(path, "order_types"),
            "a business identity needs at least one order type",
        );
    }
    let mut order_types = BTreeMap::new();
    for (name, order_type) in raw.order_types {
        let type_path = child(&child(path, "order_types"), &name);
        let parsed = code(c, &type_path, &name, OrderType::parse);
        let payment_window = resolve_payment_window(
            &child(&type_path, "payment_window_seconds"),
            order_type.payment_window_seconds,
            times_out || resolved_machine.is_none(),
            c,
        );
        let receiver_required = order_type.receiver_required;
        let partial_payments = order_type.partial_payments;
        let remark_encrypted = order_type.remark.encrypted;
        let resolved = resolve_order_type(&type_path, order_type, c);
        if let (Some(identity), Some(parsed), Some((description, fields, retired))) =
            (identity, parsed, resolved)
        {
            let mut config = OrderTypeConfig::new(
                identity.clone(),
                parsed.clone(),
                description,
                fields,
                retired,
            );
            config.payment_window = payment_window;
            config.receiver_required = receiver_required;
            config.partial_payments = partial_payments;
            config.remark_encrypted = remark_encrypted;
            order_types.insert(parsed, config);
        }
    }
    let (state_machine, transitions) = resolved_machine?;
    Some(BusinessIdentityConfig {
        description: raw.description,
        state_machine,
        transitions,
        order_types,
        inventory: inventory?,
    })
}

fn resolve_payment_window(
    path: &str,
    seconds: Option<u32>,
    machine_times_out: bool,
    c: &mut Collector<'_>,
) -> Option<time::Duration> {
    let seconds = seconds?;
    if seconds == 0 || seconds > MAX_PAYMENT_WINDOW_SECONDS {
        c.push(
            path,
            format!("a payment window is 1 to {MAX_PAYMENT_WINDOW_SECONDS} seconds"),
        );
        return None;
    }
    if !machine_times_out {
        c.push(
            path,
            format!(
                "a payment window needs a `{TIMEOUT_EVENT}` transition from the state machine's initial state: \
                 the timeout worker fires it when the window elapses"
            ),
        );
        return None;
    }
    Some(time::Duration::seconds(i64::from(seconds)))
}

fn resolve_inventory(
    path: &str,
    raw: Option<&RawInventory>,
    c: &mut Collector<'_>,
) -> Option<InventoryConfig> {
    let Some(raw) = raw else {
        return Some(InventoryConfig::default());
    };
    let before = c.errors.len();
    let defaults = InventoryConfig::default();
    let accelerator = raw.accelerator.unwrap_or(defaults.accelerator);
    let mut hot_skus = None;
    if let Some(skus) = &raw.hot_skus {
        if accelerator == InventoryAccelerator::None {
            c.push(
                child(path, "hot_skus"),
                "`hot_skus` names the SKUs of an accelerator: set `accelerator: redis` too"
                    .to_owned(),
            );
        }
        let mut set = BTreeSet::new();
        for (index, sku) in skus.iter().enumerate() {
            if let Err(error) = Sku::parse(sku.as_str()) {
                c.push(
                    format!("{}/{index}", child(path, "hot_skus")),
                    error.message,
                );
            } else if !set.insert(sku.clone()) {
                c.push(
                    format!("{}/{index}", child(path, "hot_skus")),
                    format!("SKU {sku} is listed twice"),
                );
            }
        }
        hot_skus = Some(set);
    }
    let config = InventoryConfig {
        mode: raw.mode,
        untracked_skus: raw.untracked_skus.unwrap_or(defaults.untracked_skus),
        accelerator,
        hot_skus,
    };
    if raw.mode == InventoryMode::None {
        for (key, set) in [
            ("untracked_skus", raw.untracked_skus.is_some()),
            ("accelerator", raw.accelerator.is_some()),
            ("hot_skus", raw.hot_skus.is_some()),
        ] {
            if set {
                c.push(
                    child(path, key),
                    format!("`{key}` applies to `mode: builtin` only"),
                );
            }
        }
    }
    (c.errors.len() == before).then_some(config)
}

type TransitionConfigs = BTreeMap<(StatusCode, TransitionEvent), TransitionConfig>;

/// The event type's shape: a CloudEvents type segment of ours.
fn is_event_type(text: &str) -> bool {
    is_field_name(text)
}

fn resolve_state_machine(
    path: &str,
    raw: &RawStateMachine,
    c: &mut Collector<'_>,
) -> Option<(StateMachine, TransitionConfigs)> {
    let before = c.errors.len();
    let initial = code(c, &child(path, "initial"), &raw.initial, StatusCode::parse);
    let states: Vec<Option<StatusCode>> = raw
        .states
        .iter()
        .enumerate()
        .map(|(i, s)| code(c, &child(&child(path, "states"), i), s, StatusCode::parse))
        .collect();
    let terminal: Vec<Option<StatusCode>> = raw
        .terminal
        .iter()
        .enumerate()
        .map(|(i, s)| code(c, &child(&child(path, "terminal"), i), s, StatusCode::parse))
        .collect();
    let mut transitions = Vec::new();
    let mut configs = Vec::new();
    for (i, t) in raw.transitions.iter().enumerate() {
        let t_path = child(&child(path, "transitions"), i);
        let from = code(c, &child(&t_path, "from"), &t.from, StatusCode::parse);
        let event = code(
            c,
            &child(&t_path, "event"),
            &t.event,
            TransitionEvent::parse,
        );
        let to = code(c, &child(&t_path, "to"), &t.to, StatusCode::parse);
        if let Some(event_type) = &t.event_type
            && !is_event_type(event_type)
        {
            c.push(
                child(&t_path, "event_type"),
                format!(
                    "event type {event_type:?} must be 1 to 64 of a-z 0-9 _, starting with a letter \
                     (it ends the CloudEvents type com.ordercenter.order.<event_type>)"
                ),
            );
        }
        let stock = match t.stock.as_deref() {
            None => event.as_ref().map(TransitionConfig::default_stock),
            Some(text) => match StockEffect::parse(text) {
                Some(effect) => Some(effect),
                None => {
                    c.push(
                        child(&t_path, "stock"),
                        format!("stock is one of none, confirm, release; got {text:?}"),
                    );
                    None
                }
            },
        };
        let data = resolve_data_fields(&child(&t_path, "data"), &t.data, c);
        if let Some(event) = &event
            && event.as_str() == TIMEOUT_EVENT
            && let Some(index) = t.data.iter().position(|field| field.required)
        {
            c.push(
                child(&child(&child(&t_path, "data"), index), "required"),
                "`timeout` is fired by the timeout worker, which sends no data: its data cannot be required",
            );
        }
        if let (Some(from), Some(event), Some(to), Some(stock)) = (from, event, to, stock) {
            transitions.push(TransitionDef {
                from: from.clone(),
                event: event.clone(),
                to: to.clone(),
            });
            configs.push(TransitionConfig {
                event_type: t.event_type.clone().unwrap_or_else(|| to.to_string()),
                from,
                event,
                to,
                stock,
                data,
            });
        }
    }
    if c.errors.len() > before {
        return None;
    }
    let initial = initial?;
    let states: Vec<StatusCode> = states.into_iter().flatten().collect();
    let terminal: Vec<StatusCode> = terminal.into_iter().flatten().collect();
    match StateMachine::new(
        initial,
        states.clone(),
        terminal.clone(),
        transitions.clone(),
    ) {
        Ok(machine) => Some((
            machine,
            configs
                .into_iter()
                .map(|config| ((config.from.clone(), config.event.clone()), config))
                .collect(),
        )),
        Err(error) => {
            let error_path =
                state_machine_error_path(path, &error, &states, &terminal, &transitions);
            c.push(error_path, format!("invalid state machine: {error}"));
            None
        }
    }
}

/// Point a state machine error at the entry that causes it.
fn state_machine_error_path(
    path: &str,
    error: &StateMachineError,
    states: &[StatusCode],
    terminal: &[StatusCode],
    transitions: &[TransitionDef],
) -> String {
    let state_path = |state: &StatusCode| {
        if let Some(i) = states.iter().position(|s| s == state) {
            child(&child(path, "states"), i)
        } else if let Some(i) = terminal.iter().position(|s| s == state) {
            child(&child(path, "terminal"), i)
        } else {
            path.to_owned()
        }
    };
    let transition_path = |from: &StatusCode, event: &TransitionEvent, last: bool| {
        let mut matching = transitions
            .iter()
            .enumerate()
            .filter(|(_, t)| &t.from == from && &t.event == event)
            .map(|(i, _)| i);
        let index = if last {
            matching.next_back()
        } else {
            matching.next()
        };
        index.map_or_else(
            || child(path, "transitions"),
            |i| child(&child(path, "transitions"), i),
        )
    };
    match error {
        StateMachineError::UnknownInitial(_) => child(path, "initial"),
        StateMachineError::UnknownState { from, event, .. } => transition_path(from, event, false),
        StateMachineError::Ambiguous { state, event } => transition_path(state, event, true),
        StateMachineError::TerminalHasExit { state, event } => transition_path(state, event, false),
        StateMachineError::Unreachable(state) | StateMachineError::DeadEnd(state) => {
            state_path(state)
        }
        StateMachineError::NoTerminal => child(path, "terminal"),
    }
}

type ResolvedOrderType = (Option<String>, Vec<ResolvedField>, BTreeSet<Slot>);

fn resolve_order_type(
    path: &str,
    raw: RawOrderType,
    c: &mut Collector<'_>,
) -> Option<ResolvedOrderType> {
    let before = c.errors.len();
    let mut retired = BTreeSet::new();
    for (index, text) in raw.retired_slots.iter().enumerate() {
        let slot_path = child(&child(path, "retired_slots"), index);
        match parse_slot(text) {
            Ok(slot) => {
                if !retired.insert(slot.clone()) {
                    c.push(slot_path, format!("slot {slot} is listed twice"));
                }
            }
            Err(message) => c.push(slot_path, message),
        }
    }

    let mut fields = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut slots: HashMap<Slot, (usize, String)> = HashMap::new();
    for (index, field) in raw.fields.into_iter().enumerate() {
        let field_path = child(&child(path, "fields"), index);
        if !is_field_name(&field.name) {
            c.push(
                child(&field_path, "name"),
                format!(
                    "field name {:?} must be 1 to 64 of a-z 0-9 _, starting with a letter",
                    field.name
                ),
            );
        } else if let Some(first) = names.insert(field.name.clone(), index) {
            c.push(
                child(&field_path, "name"),
                format!(
                    "duplicate field name `{}` (first at {path}/fields/{first})",
                    field.name
                ),
            );
        }
        let slot = match parse_slot(&field.slot) {
            Ok(slot) => Some(slot),
            Err(message) => {
                c.push(child(&field_path, "slot"), message);
                None
            }
        };
        if let Some(slot) = &slot {
            if retired.contains(slot) {
                c.push(
                    child(&field_path, "slot"),
                    format!(
                        "slot {slot} is retired (listed under retired_slots) and can never be reused"
                    ),
                );
            } else if let Some((first, owner)) = slots.get(slot) {
                c.push(
                    child(&field_path, "slot"),
                    format!(
                        "slot {slot} is already used by field `{owner}` ({path}/fields/{first}); \
                         a slot holds one field per order type"
                    ),
                );
            } else {
                slots.insert(slot.clone(), (index, field.name.clone()));
            }
        }
        if let Some(resolved) = resolve_field(&field_path, field, slot, c) {
            fields.push(resolved);
        }
    }
    if c.errors.len() > before {
        return None;
    }
    Some((raw.description, fields, retired))
}

/// The JSON type(s) a field's values take in their JSON form (what constraints see).
fn json_types_of(field_type: ExtFieldType) -> &'static [&'static str] {
    match field_type {
        ExtFieldType::String | ExtFieldType::Enum | ExtFieldType::Decimal | ExtFieldType::Date => {
            &["string"]
        }
        ExtFieldType::Int => &["integer", "number"],
        ExtFieldType::Bool => &["boolean"],
        ExtFieldType::Json => &[
            "null", "boolean", "integer", "number", "string", "array", "object",
        ],
    }
}

/// The value rules of a field (extension or transition data): its enum values and its
/// constraints, checked against each other and against the field's type.
fn resolve_value_rules(
    path: &str,
    field_type: ExtFieldType,
    values: Option<Vec<String>>,
    constraints: Option<Value>,
    c: &mut Collector<'_>,
) -> (Vec<String>, Option<Constraints>) {
    let mut enum_values = Vec::new();
    match (field_type, values) {
        (ExtFieldType::Enum, None) => c.push(
            child(path, "values"),
            "an enum field needs `values`: the list of allowed values",
        ),
        (ExtFieldType::Enum, Some(values)) => {
            if values.is_empty() {
                c.push(
                    child(path, "values"),
                    "an enum field needs at least one value",
                );
            }
            let mut seen = BTreeSet::new();
            for (index, value) in values.iter().enumerate() {
                if value.is_empty() {
                    c.push(
                        child(&child(path, "values"), index),
                        "enum values are not empty",
                    );
                } else if !seen.insert(value) {
                    c.push(
                        child(&child(path, "values"), index),
                        format!("enum value `{value}` is listed twice"),
                    );
                }
            }
            enum_values = values;
        }
        (other, Some(_)) => c.push(
            child(path, "values"),
            format!("`values` is only for enum fields; this field is {other}"),
        ),
        (_, None) => {}
    }

    let constraints = match constraints {
        None => None,
        Some(schema) => {
            let types = json_types_of(field_type);
            let declared: Vec<&str> = match schema.get("type") {
                Some(Value::String(t)) => vec![t.as_str()],
                Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !declared.is_empty() && !declared.iter().any(|t| types.contains(t)) {
                c.push(
                    child(&child(path, "constraints"), "type"),
                    format!(
                        "constraints expect {} but values of a {} field are checked as JSON {} \
                         (decimals and dates in their string form, e.g. \"12.50\")",
                        declared.join(" or "),
                        field_type,
                        types[0]
                    ),
                );
            }
            match Constraints::compile(schema) {
                Ok(compiled) => Some(compiled),
                Err(message) => {
                    c.push(
                        child(path, "constraints"),
                        format!("invalid JSON Schema: {message}"),
                    );
                    None
                }
            }
        }
    };

    if let Some(constraints) = &constraints {
        for (index, value) in enum_values.iter().enumerate() {
            if let Err((_, message)) = constraints.check(&Value::String(value.clone())) {
                c.push(
                    child(&child(path, "values"), index),
                    format!(
                        "enum value `{value}` does not satisfy the field's constraints: {message}"
                    ),
                );
            }
        }
    }
    (enum_values, constraints)
}

/// The data fields a transition's event accepts.
fn resolve_data_fields(path: &str, raw: &[RawDataField], c: &mut Collector<'_>) -> Vec<DataField> {
    let mut fields = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut targets: HashMap<DataTarget, usize> = HashMap::new();
    for (index, field) in raw.iter().enumerate() {
        let field_path = child(path, index);
        let before = c.errors.len();
        if !is_field_name(&field.name) {
            c.push(
                child(&field_path, "name"),
                format!(
                    "data field name {:?} must be 1 to 64 of a-z 0-9 _, starting with a letter",
                    field.name
                ),
            );
        } else if let Some(first) = names.insert(&field.name, index) {
            c.push(
                child(&field_path, "name"),
                format!(
                    "duplicate data field `{}` (first at {path}/{first})",
                    field.name
                ),
            );
        }
        let into = match field.into.as_deref() {
            None => None,
            Some(text) => match DataTarget::parse(text) {
                None => {
                    let known: Vec<&str> = DataTarget::ALL.iter().map(|t| t.as_str()).collect();
                    c.push(
                        child(&field_path, "into"),
                        format!("unknown target {text:?}; one of {}", known.join(", ")),
                    );
                    None
                }
                Some(target) => {
                    if !matches!(field.field_type, ExtFieldType::String | ExtFieldType::Enum) {
                        c.push(
                            child(&field_path, "into"),
                            format!(
                                "{target} holds text: only string and enum data can go there, this field is {}",
                                field.field_type
                            ),
                        );
                    }
                    if let Some(first) = targets.insert(target, index) {
                        c.push(
                            child(&field_path, "into"),
                            format!("{target} is already written by {path}/{first}"),
                        );
                    }
                    Some(target)
                }
            },
        };
        let (enum_values, constraints) = resolve_value_rules(
            &field_path,
            field.field_type,
            field.values.clone(),
            field.constraints.clone(),
            c,
        );
        if c.errors.len() == before {
            fields.push(DataField {
                name: field.name.clone(),
                field_type: field.field_type,
                required: field.required,
                enum_values,
                constraints,
                into,
                description: field.description.clone(),
            });
        }
    }
    fields
}

fn resolve_field(
    path: &str,
    raw: RawField,
    slot: Option<Slot>,
    c: &mut Collector<'_>,
) -> Option<ResolvedField> {
    let before = c.errors.len();
    let (enum_values, constraints) =
        resolve_value_rules(path, raw.field_type, raw.values, raw.constraints, c);

    if raw.encrypted && raw.searchable {
        let refused = match raw.field_type {
            ExtFieldType::Bool => Some(
                "a bool has two values: its blind index would reveal the plaintext by frequency",
            ),
            ExtFieldType::Json => Some("a JSON value has no canonical text to blind-index"),
            ExtFieldType::Decimal => Some(
                "equal decimals can differ in text (1.5 and 1.50), so a blind index would miss matches",
            ),
            _ => None,
        };
        if let Some(reason) = refused {
            c.push(
                child(path, "searchable"),
                format!(
                    "an encrypted field is searchable only by equality through a blind index, \
                     and a {} field cannot be: {reason}",
                    raw.field_type
                ),
            );
        }
    }

    if c.errors.len() > before {
        return None;
    }
    let search = match (raw.searchable, raw.encrypted) {
        (false, _) => SearchMode::None,
        (true, false) => SearchMode::Indexed,
        (true, true) => SearchMode::EqualityBlind,
    };
    let field = ResolvedField {
        name: raw.name,
        field_type: raw.field_type,
        slot: slot?,
        required: raw.required,
        encrypted: raw.encrypted,
        searchable: raw.searchable,
        search,
        enum_values,
        constraints,
        description: raw.description,
    };
    for (index, example) in raw.examples.iter().enumerate() {
        if let Err(error) = field.validate(example) {
            let inner = error.field.unwrap_or_default();
            c.push(
                format!("{}{inner}", child(&child(path, "examples"), index)),
                format!("example does not validate: {}", error.message),
            );
        }
    }
    if c.errors.len() > before {
        return None;
    }
    Some(field)
}
