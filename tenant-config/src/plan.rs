//! Plan: what changes between the live config and a new one, and which changes are refused
//! because they could corrupt or orphan stored data.
//!
//! A field's identity is (tenant, business identity, order type, slot): stored values live in
//! the slot, so the slot is what must keep its meaning.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use oc_model::{
    BusinessIdentity, ExtFieldType, OrderType, Slot, StateMachine, StatusCode, TenantId,
    TransitionEvent,
};

use crate::set::ConfigSet;
use crate::types::{
    BusinessIdentityConfig, InventoryMode, OrderTypeConfig, ResolvedField, TenantConfig,
};

/// How much attention an accepted change deserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Nothing stored is affected.
    Safe,
    /// Accepted, but existing orders or clients notice (e.g. a field became required).
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Safe => "safe",
            Severity::Warning => "warning",
        }
    }
}

/// An accepted change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub severity: Severity,
    /// `tenant`, `tenant/identity` or `tenant/identity/order_type`.
    pub scope: String,
    pub message: String,
}

/// Why a refused change is unsafe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalKind {
    /// A slot that holds one field would hold another.
    SlotReused,
    /// A kept field's type changes in a way stored values may not survive.
    TypeNarrowed,
    /// A field that owns a slot disappears without retiring the slot.
    FieldRemoved,
    /// A field moves to another slot: its stored values stay behind.
    FieldMoved,
    /// `encrypted` flips: stored values would be unreadable (or plaintext would pass as sealed).
    EncryptionChanged,
    /// A slot leaves `retired_slots`: retired slots stay reserved forever.
    RetiredSlotReleased,
    TenantRemoved,
    BusinessIdentityRemoved,
    OrderTypeRemoved,
    /// A state disappears while orders may sit in it.
    StateRemoved,
    /// The shard key or group changes: existing orders would be looked for on the wrong shard.
    ShardPolicyChanged,
}

/// A refused change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub scope: String,
    pub message: String,
}

/// The result of comparing a live config with a new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub refusals: Vec<Refusal>,
}

impl Plan {
    /// No refusals: the new config may replace the live one.
    pub fn is_safe(&self) -> bool {
        self.refusals.is_empty()
    }

    /// Neither changes nor refusals.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.refusals.is_empty()
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|change| change.severity == Severity::Warning)
    }

    fn change(&mut self, severity: Severity, scope: &str, message: String) {
        self.changes.push(Change {
            severity,
            scope: scope.to_owned(),
            message,
        });
    }

    fn refuse(&mut self, kind: RefusalKind, scope: &str, message: String) {
        self.refusals.push(Refusal {
            kind,
            scope: scope.to_owned(),
            message,
        });
    }
}

impl fmt::Display for Plan {
    /// A summary line, then refusals, warnings and safe changes, one per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let warnings = self.warnings().count();
        write!(
            f,
            "plan: {} change(s) ({} warning(s)), {} refused",
            self.changes.len(),
            warnings,
            self.refusals.len()
        )?;
        for refusal in &self.refusals {
            write!(f, "\n  REFUSED  {}: {}", refusal.scope, refusal.message)?;
        }
        for severity in [Severity::Warning, Severity::Safe] {
            for change in self.changes.iter().filter(|c| c.severity == severity) {
                let label = match severity {
                    Severity::Warning => "warning",
                    Severity::Safe => "safe   ",
                };
                write!(f, "\n  {label}  {}: {}", change.scope, change.message)?;
            }
        }
        if self.is_empty() {
            write!(f, "\n  no changes")?;
        }
        Ok(())
    }
}

/// Compare the live config with a new one.
pub fn plan(live: &ConfigSet, new: &ConfigSet) -> Plan {
    let mut plan = Plan::default();
    for old_tenant in live.tenants() {
        match new.tenant(old_tenant.id()) {
            None => plan.refuse(
                RefusalKind::TenantRemoved,
                old_tenant.id().as_str(),
                format!(
                    "tenant `{}` is removed; its orders would lose their config",
                    old_tenant.id()
                ),
            ),
            Some(new_tenant) => plan_tenant(&mut plan, old_tenant, new_tenant),
        }
    }
    for new_tenant in new.tenants() {
        if live.tenant(new_tenant.id()).is_none() {
            plan.change(
                Severity::Safe,
                new_tenant.id().as_str(),
                format!("tenant `{}` added", new_tenant.id()),
            );
        }
    }
    plan
}

/// An entry of the store's slot ledger: the field whose values a slot holds, as the config
/// that first wrote it had it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenSlot {
    pub tenant: TenantId,
    pub business_identity: BusinessIdentity,
    pub order_type: OrderType,
    pub slot: Slot,
    pub field: String,
    pub field_type: ExtFieldType,
    pub encrypted: bool,
}

/// Check a config against the slots that hold data (the store's slot ledger), with the
/// refusals and messages of [`plan`]: what a reload plans against the live config, a start
/// plans against what was written, so a restart cannot bypass the plan. A slot no order
/// wrote may be re-mapped freely.
pub fn plan_against_written(written: &[WrittenSlot], new: &ConfigSet) -> Plan {
    let mut plan = Plan::default();
    let mut reported = BTreeSet::new();
    for entry in written {
        let tenant = entry.tenant.as_str();
        let Some(new_tenant) = new.tenant(&entry.tenant) else {
            if reported.insert(tenant.to_owned()) {
                plan.refuse(
                    RefusalKind::TenantRemoved,
                    tenant,
                    format!("tenant `{tenant}` is removed; its orders would lose their config"),
                );
            }
            continue;
        };
        let identity = &entry.business_identity;
        let identity_scope = format!("{tenant}/{identity}");
        let Some(new_identity) = new_tenant.business_identity(identity) else {
            if reported.insert(identity_scope.clone()) {
                plan.refuse(
                    RefusalKind::BusinessIdentityRemoved,
                    &identity_scope,
                    format!(
                        "business identity `{identity}` is removed; its orders would lose their config"
                    ),
                );
            }
            continue;
        };
        let order_type = &entry.order_type;
        let scope = format!("{identity_scope}/{order_type}");
        let Some(new_type) = new_identity.order_types().get(order_type) else {
            if reported.insert(scope.clone()) {
                plan.refuse(
                    RefusalKind::OrderTypeRemoved,
                    &scope,
                    format!(
                        "order type `{order_type}` of `{identity}` is removed; its orders would lose their config"
                    ),
                );
            }
            continue;
        };
        let held = Held {
            name: &entry.field,
            slot: &entry.slot,
            field_type: entry.field_type,
            encrypted: entry.encrypted,
        };
        if let Some(new_field) = plan_held_slot(&mut plan, &scope, &held, new_type) {
            plan_held_values(&mut plan, &scope, &held, new_field);
        }
    }
    plan
}

fn plan_tenant(plan: &mut Plan, old: &TenantConfig, new: &TenantConfig) {
    let scope = old.id().as_str();
    if old.display_name != new.display_name {
        plan.change(
            Severity::Safe,
            scope,
            format!(
                "display name: {:?} → {:?}",
                old.display_name(),
                new.display_name()
            ),
        );
    }
    if old.currency() != new.currency() {
        plan.change(
            Severity::Warning,
            scope,
            format!(
                "default currency {} → {}: existing orders keep their own currency, new orders default to {}",
                old.currency(),
                new.currency(),
                new.currency()
            ),
        );
    }
    if old.shard_policy() != new.shard_policy() {
        plan.refuse(
            RefusalKind::ShardPolicyChanged,
            scope,
            format!(
                "shard policy {}/{} → {}/{}: existing orders would be looked for on other shards; \
                 a shard policy changes only through a resharding migration",
                old.shard_policy().key.as_str(),
                old.shard_policy().shard_group,
                new.shard_policy().key.as_str(),
                new.shard_policy().shard_group
            ),
        );
    }
    if old.retention() != new.retention() {
        let severity = if new.retention().hot_days < old.retention().hot_days {
            Severity::Warning
        } else {
            Severity::Safe
        };
        plan.change(
            severity,
            scope,
            format!(
                "hot retention {} → {} days{}",
                old.retention().hot_days,
                new.retention().hot_days,
                if severity == Severity::Warning {
                    ": more completed orders move to cold storage on the next run"
                } else {
                    ""
                }
            ),
        );
    }
    if old.rate_limits() != new.rate_limits() {
        plan.change(Severity::Safe, scope, "rate limits changed".to_owned());
    }
    plan_keys_and_roles(plan, scope, old, new);

    for (identity, old_identity) in old.business_identities() {
        let identity_scope = format!("{scope}/{identity}");
        let Some(new_identity) = new.business_identity(identity) else {
            plan.refuse(
                RefusalKind::BusinessIdentityRemoved,
                &identity_scope,
                format!(
                    "business identity `{identity}` is removed; its orders would lose their config"
                ),
            );
            continue;
        };
        plan_state_machine(
            plan,
            &identity_scope,
            old_identity.state_machine(),
            new_identity.state_machine(),
        );
        plan_lifecycle(plan, &identity_scope, old_identity, new_identity);
        for (order_type, old_type) in old_identity.order_types() {
            let type_scope = format!("{identity_scope}/{order_type}");
            match new_identity.order_types().get(order_type) {
                None => plan.refuse(
                    RefusalKind::OrderTypeRemoved,
                    &type_scope,
                    format!(
                        "order type `{order_type}` of `{identity}` is removed; its orders would lose their config"
                    ),
                ),
                Some(new_type) => plan_order_type(plan, &type_scope, old_type, new_type),
            }
        }
        for order_type in new_identity.order_types().keys() {
            if !old_identity.order_types().contains_key(order_type) {
                plan.change(
                    Severity::Safe,
                    &identity_scope,
                    format!("order type `{order_type}` added"),
                );
            }
        }
    }
    for identity in new.business_identities().keys() {
        if old.business_identity(identity).is_none() {
            plan.change(
                Severity::Safe,
                scope,
                format!("business identity `{identity}` added"),
            );
        }
    }
    plan_after_sales(plan, scope, old, new);
}

/// After-sale machines are checked like order machines (a removed state may hold live
/// after-sales: refused); a routing change applies to new applications only, each stored
/// after-sale keeps the reviewer it was routed to.
fn plan_after_sales(plan: &mut Plan, scope: &str, old: &TenantConfig, new: &TenantConfig) {
    let (old, new) = (old.after_sales(), new.after_sales());
    for kind in oc_model::aftersale::AfterSaleType::ALL.iter().copied() {
        plan_state_machine(
            plan,
            &format!("{scope}/after_sales/{kind}"),
            old.machines().of(kind),
            new.machines().of(kind),
        );
    }
    let (old_routing, new_routing) = (old.routing(), new.routing());
    for (channel, was, now) in [
        ("user", old_routing.user, new_routing.user),
        (
            "customer_service",
            old_routing.customer_service,
            new_routing.customer_service,
        ),
    ] {
        if was != now {
            plan.change(
                Severity::Warning,
                &format!("{scope}/after_sales"),
                format!(
                    "a {channel} application is reviewed by {now} instead of {was}: new applications only, stored ones keep their reviewer"
                ),
            );
        }
    }
}

fn plan_keys_and_roles(plan: &mut Plan, scope: &str, old: &TenantConfig, new: &TenantConfig) {
    let old_keys: BTreeMap<&str, _> = old.api_keys().iter().map(|k| (k.id.as_str(), k)).collect();
    let new_keys: BTreeMap<&str, _> = new.api_keys().iter().map(|k| (k.id.as_str(), k)).collect();
    for (id, old_key) in &old_keys {
        match new_keys.get(id) {
            None => plan.change(
                Severity::Warning,
                scope,
                format!("API key `{id}` removed: clients using it get 401"),
            ),
            Some(new_key) => {
                if new_key.sha256 != old_key.sha256 {
                    plan.change(
                        Severity::Warning,
                        scope,
                        format!("API key `{id}` rotated: the old secret stops working"),
                    );
                }
                if new_key.role != old_key.role {
                    plan.change(
                        Severity::Warning,
                        scope,
                        format!("API key `{id}` role {} → {}", old_key.role, new_key.role),
                    );
                }
            }
        }
    }
    for id in new_keys.keys() {
        if !old_keys.contains_key(id) {
            plan.change(Severity::Safe, scope, format!("API key `{id}` added"));
        }
    }
    for (name, old_role) in old.roles() {
        match new.role(name) {
            None => plan.change(Severity::Warning, scope, format!("role `{name}` removed")),
            Some(new_role) if new_role != old_role => {
                let widened_pii =
                    new_role.pii < old_role.pii || (new_role.pii_filters && !old_role.pii_filters);
                plan.change(
                    if widened_pii {
                        Severity::Warning
                    } else {
                        Severity::Safe
                    },
                    scope,
                    format!(
                        "role `{name}` changed (endpoints {} → {}, pii {} → {}, pii_filters {} → {})",
                        old_role.endpoints.len(),
                        new_role.endpoints.len(),
                        old_role.pii,
                        new_role.pii,
                        old_role.pii_filters,
                        new_role.pii_filters
                    ),
                );
            }
            Some(_) => {}
        }
    }
    for name in new.roles().keys() {
        if old.role(name).is_none() {
            plan.change(Severity::Safe, scope, format!("role `{name}` added"));
        }
    }
}

fn transitions(machine: &StateMachine) -> BTreeMap<(StatusCode, TransitionEvent), StatusCode> {
    let mut table = BTreeMap::new();
    for state in machine.states() {
        for event in machine.events_from(state) {
            if let Ok(to) = machine.next(state, event) {
                table.insert((state.clone(), event.clone()), to.clone());
            }
        }
    }
    table
}

fn plan_state_machine(plan: &mut Plan, scope: &str, old: &StateMachine, new: &StateMachine) {
    let old_states: BTreeSet<&StatusCode> = old.states().collect();
    let new_states: BTreeSet<&StatusCode> = new.states().collect();
    for state in old_states.difference(&new_states) {
        plan.refuse(
            RefusalKind::StateRemoved,
            scope,
            format!(
                "state `{state}` is removed from the state machine; orders may sit in it \
                 (keep it, or migrate those orders first)"
            ),
        );
    }
    for state in new_states.difference(&old_states) {
        plan.change(Severity::Safe, scope, format!("state `{state}` added"));
    }
    if old.initial() != new.initial() {
        plan.change(
            Severity::Warning,
            scope,
            format!(
                "initial state `{}` → `{}`: new orders start elsewhere",
                old.initial(),
                new.initial()
            ),
        );
    }
    for state in old_states.intersection(&new_states) {
        if old.is_terminal(state) != new.is_terminal(state) {
            plan.change(
                Severity::Warning,
                scope,
                format!(
                    "state `{state}` becomes {}",
                    if new.is_terminal(state) {
                        "terminal"
                    } else {
                        "non-terminal"
                    }
                ),
            );
        }
    }
    let old_table = transitions(old);
    let new_table = transitions(new);
    for ((from, event), to) in &old_table {
        match new_table.get(&(from.clone(), event.clone())) {
            None => plan.change(
                Severity::Warning,
                scope,
                format!("transition `{from}` --{event}--> `{to}` removed: orders in `{from}` can no longer take it"),
            ),
            Some(new_to) if new_to != to => plan.change(
                Severity::Warning,
                scope,
                format!("transition `{from}` --{event}--> now leads to `{new_to}` instead of `{to}`"),
            ),
            Some(_) => {}
        }
    }
    for ((from, event), to) in &new_table {
        if !old_table.contains_key(&(from.clone(), event.clone())) {
            plan.change(
                Severity::Safe,
                scope,
                format!("transition `{from}` --{event}--> `{to}` added"),
            );
        }
    }
}

/// Inventory and what kept transitions do besides changing the status (event type, stock
/// effect, data).
fn plan_lifecycle(
    plan: &mut Plan,
    scope: &str,
    old: &BusinessIdentityConfig,
    new: &BusinessIdentityConfig,
) {
    let (old_inventory, new_inventory) = (old.inventory(), new.inventory());
    if old_inventory.mode != new_inventory.mode {
        let consequence = match new_inventory.mode {
            InventoryMode::Builtin => {
                "new orders reserve stock (set it first: PUT /v1/stock/{sku}); orders placed before hold no reservation"
            }
            InventoryMode::None => {
                "new orders hold no stock; reservations of open orders are settled by the sweeper when they expire, as their orders' history says"
            }
        };
        plan.change(
            Severity::Warning,
            scope,
            format!(
                "inventory {} → {}: {consequence}",
                old_inventory.mode.as_str(),
                new_inventory.mode.as_str()
            ),
        );
    } else if old_inventory != new_inventory {
        plan.change(
            Severity::Safe,
            scope,
            "inventory settings changed (untracked SKUs, accelerator, hot SKUs)".to_owned(),
        );
    }
    for old_transition in old.transitions() {
        let (from, event) = (&old_transition.from, &old_transition.event);
        let Some(new_transition) = new.transition(from, event) else {
            continue; // reported by the state machine plan
        };
        if old_transition.event_type != new_transition.event_type {
            plan.change(
                Severity::Warning,
                scope,
                format!(
                    "transition `{from}` --{event}--> is published as order.{} instead of order.{}: consumers of the old type stop seeing it",
                    new_transition.event_type, old_transition.event_type
                ),
            );
        }
        if old_transition.stock != new_transition.stock {
            plan.change(
                Severity::Warning,
                scope,
                format!(
                    "transition `{from}` --{event}--> stock effect {} → {}",
                    old_transition.stock, new_transition.stock
                ),
            );
        }
        if old_transition.data != new_transition.data {
            let newly_required = new_transition.data.iter().any(|field| {
                field.required
                    && !old_transition
                        .data_field(&field.name)
                        .is_some_and(|old_field| old_field.required)
            });
            plan.change(
                if newly_required {
                    Severity::Warning
                } else {
                    Severity::Safe
                },
                scope,
                format!(
                    "transition `{from}` --{event}--> data fields changed{}",
                    if newly_required {
                        ": a field became required, clients sending the event without it are refused"
                    } else {
                        ""
                    }
                ),
            );
        }
    }
}

fn plan_order_type(plan: &mut Plan, scope: &str, old: &OrderTypeConfig, new: &OrderTypeConfig) {
    if old.payment_window() != new.payment_window() {
        let seconds = |window: Option<time::Duration>| {
            window.map_or("none".to_owned(), |w| format!("{} s", w.whole_seconds()))
        };
        plan.change(
            Severity::Safe,
            scope,
            format!(
                "payment window {} → {}: new orders get the new deadline, existing orders keep theirs",
                seconds(old.payment_window()),
                seconds(new.payment_window())
            ),
        );
    }
    for retired in old.retired_slots() {
        if !new.retired_slots().contains(retired) {
            plan.refuse(
                RefusalKind::RetiredSlotReleased,
                scope,
                format!(
                    "slot {retired} of {scope} is retired and must stay under retired_slots forever \
                     (old values may still sit in it)"
                ),
            );
        }
    }
    for old_field in old.fields() {
        if let Some(new_field) = plan_held_slot(plan, scope, &Held::of(old_field), new) {
            plan_field(plan, scope, old_field, new_field);
        }
    }
    for new_field in new.fields() {
        if old.field_at(&new_field.slot).is_some() {
            continue;
        }
        if old.retired_slots().contains(&new_field.slot) {
            // also refused at load (a field cannot sit on a listed retired slot); reached only
            // when the new config dropped the slot from retired_slots, refused above
            continue;
        }
        let moved_here = old
            .field(&new_field.name)
            .is_some_and(|old_field| old_field.slot != new_field.slot);
        if moved_here {
            continue; // reported as FieldMoved
        }
        plan.change(
            if new_field.required {
                Severity::Warning
            } else {
                Severity::Safe
            },
            scope,
            format!(
                "field `{}` ({}) added on free slot {}{}",
                new_field.name,
                new_field.field_type,
                new_field.slot,
                if new_field.required {
                    "; it is required, and existing orders lack it"
                } else {
                    ""
                }
            ),
        );
    }
}

/// A slot that holds a field's values: a field of the live config, or an entry of the
/// store's slot ledger ([`WrittenSlot`]).
struct Held<'a> {
    name: &'a str,
    slot: &'a Slot,
    field_type: ExtFieldType,
    encrypted: bool,
}

impl<'a> Held<'a> {
    fn of(field: &'a ResolvedField) -> Held<'a> {
        Held {
            name: &field.name,
            slot: &field.slot,
            field_type: field.field_type,
            encrypted: field.encrypted,
        }
    }
}

/// What becomes of a held slot under the new order type: refused when another field takes
/// it, its field moves, or its field goes without retiring it. The new field when the same
/// field keeps the slot (the caller compares the two).
fn plan_held_slot<'n>(
    plan: &mut Plan,
    scope: &str,
    held: &Held<'_>,
    new: &'n OrderTypeConfig,
) -> Option<&'n ResolvedField> {
    let slot = held.slot;
    let name = held.name;
    match new.field_at(slot) {
        Some(new_field) if new_field.name != name => {
            plan.refuse(
                RefusalKind::SlotReused,
                scope,
                format!(
                    "slot {slot} of {scope} holds field `{name}`; the new config maps it to `{}`",
                    new_field.name
                ),
            );
            None
        }
        Some(new_field) => Some(new_field),
        None => {
            match new.field(name) {
                Some(moved) => plan.refuse(
                    RefusalKind::FieldMoved,
                    scope,
                    format!(
                        "field `{name}` of {scope} moves from slot {slot} to {}; its stored values stay \
                         in {slot} (moving a field needs a data migration)",
                        moved.slot
                    ),
                ),
                None if new.retired_slots().contains(slot) => plan.change(
                    Severity::Warning,
                    scope,
                    format!(
                        "field `{name}` removed; slot {slot} is retired: reserved forever, never reusable"
                    ),
                ),
                None => plan.refuse(
                    RefusalKind::FieldRemoved,
                    scope,
                    format!(
                        "field `{name}` is removed from {scope} but still owns slot {slot}; list {slot} \
                         under retired_slots of this order type to retire it (it then stays \
                         reserved forever and can never be reused)"
                    ),
                ),
            }
            None
        }
    }
}

/// A kept field's type and encryption against what its slot holds.
fn plan_held_values(plan: &mut Plan, scope: &str, held: &Held<'_>, new: &ResolvedField) {
    let name = held.name;
    let slot = held.slot;
    if held.field_type != new.field_type && !held.field_type.widens_to(new.field_type) {
        plan.refuse(
            RefusalKind::TypeNarrowed,
            scope,
            format!(
                "field `{name}` ({slot}) of {scope} changes type {} → {}: stored {} values \
                 would not be valid {} values",
                held.field_type, new.field_type, held.field_type, new.field_type
            ),
        );
    }
    if held.encrypted != new.encrypted {
        let consequence = if new.encrypted {
            "stored plaintext values would be read as ciphertext"
        } else {
            "stored ciphertext would be served as if it were plaintext"
        };
        plan.refuse(
            RefusalKind::EncryptionChanged,
            scope,
            format!(
                "field `{name}` ({slot}) of {scope} changes encrypted {} → {}: {consequence}; \
                 use a new field on a free slot and migrate",
                held.encrypted, new.encrypted
            ),
        );
    }
}

fn plan_field(plan: &mut Plan, scope: &str, old: &ResolvedField, new: &ResolvedField) {
    let name = &old.name;
    let slot = &old.slot;
    if old.field_type != new.field_type && old.field_type.widens_to(new.field_type) {
        plan.change(
            Severity::Safe,
            scope,
            format!(
                "field `{name}` ({slot}) widens {} → {}",
                old.field_type, new.field_type
            ),
        );
    }
    plan_held_values(plan, scope, &Held::of(old), new);
    if !old.required && new.required {
        plan.change(
            Severity::Warning,
            scope,
            format!("field `{name}` ({slot}) becomes required: existing orders may lack it"),
        );
    } else if old.required && !new.required {
        plan.change(
            Severity::Safe,
            scope,
            format!("field `{name}` ({slot}) becomes optional"),
        );
    }
    if old.search != new.search {
        let (severity, note) = if new.searchable && !old.searchable {
            (
                Severity::Warning,
                ": existing orders are found by it only after a search index backfill",
            )
        } else {
            (Severity::Safe, "")
        };
        plan.change(
            severity,
            scope,
            format!(
                "field `{name}` ({slot}) search {} → {}{note}",
                old.search.as_str(),
                new.search.as_str()
            ),
        );
    }
    let removed_values: Vec<&String> = old
        .enum_values
        .iter()
        .filter(|value| !new.enum_values.contains(value))
        .collect();
    let added_values: Vec<&String> = new
        .enum_values
        .iter()
        .filter(|value| !old.enum_values.contains(value))
        .collect();
    if !removed_values.is_empty() && new.field_type == oc_model::ExtFieldType::Enum {
        plan.change(
            Severity::Warning,
            scope,
            format!(
                "field `{name}` ({slot}) drops enum values [{}]: stored orders may hold them; \
                 they stay readable, but updates must pick an allowed value",
                join(&removed_values)
            ),
        );
    }
    if !added_values.is_empty() {
        plan.change(
            Severity::Safe,
            scope,
            format!(
                "field `{name}` ({slot}) allows new values [{}]",
                join(&added_values)
            ),
        );
    }
    if old.constraints != new.constraints {
        plan.change(
            Severity::Warning,
            scope,
            format!(
                "field `{name}` ({slot}) constraints changed: stored values are not re-validated"
            ),
        );
    }
}

fn join(values: &[&String]) -> String {
    values
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
