//! The slot ledger at work (#13 item 7): every order write first records, for each
//! extension slot it fills, which field of the live tenant config wrote it
//! ([`LedgeredStore`]); every process checks its tenant config against the ledger when it
//! starts ([`check`]) and before a reload goes live ([`gate`]), with the refusals and
//! messages of `ordercenter config plan`. A reload is planned against the live config as
//! well; a start has only the ledger to go by.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use oc_model::ports::{InsertOutcome, NewOrder, OrderStore, Page, PageRequest};
use oc_model::{
    BusinessIdentity, DomainError, DomainResult, ExtFieldType, ExtTable, Order, OrderEvent,
    OrderId, OrderType, OutboxEntry, PartyId, ShardId, Slot, TenantId,
};
use oc_store_sql::{SlotLedgerEntry, SqlOrderStore};
use oc_tenant_config::{ConfigHandle, ConfigSet, Plan, WrittenSlot, parse_slot};

/// The order store with the ledger kept: what the core writes through.
pub struct LedgeredStore {
    store: Arc<SqlOrderStore>,
    config: Arc<ConfigHandle>,
    /// (tenant, identity, order type, slot) this process has recorded already: one ledger
    /// write per slot and process, not one per order.
    recorded: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for LedgeredStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgeredStore")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl LedgeredStore {
    pub fn new(store: Arc<SqlOrderStore>, config: Arc<ConfigHandle>) -> LedgeredStore {
        LedgeredStore {
            store,
            config,
            recorded: Mutex::new(HashSet::new()),
        }
    }

    /// Record the slots `order` fills that this process has not recorded yet.
    async fn record(&self, order: &Order) -> DomainResult<()> {
        let main = &order.main;
        let config = self.config.current();
        let Some(order_type) = config
            .tenant(&main.tenant)
            .and_then(|tenant| tenant.order_type(&main.business_identity, &main.order_type))
        else {
            return Ok(()); // the core refuses such an order before it is written
        };
        let mut slots: Vec<Slot> = Vec::new();
        let column = |table, column| Slot::Column { table, column };
        slots.extend(
            order
                .extension
                .columns
                .keys()
                .map(|c| column(ExtTable::Order, *c)),
        );
        for line in &order.lines {
            slots.extend(line.ext.keys().map(|c| column(ExtTable::Line, *c)));
        }
        slots.extend(order.extension.identifiers.iter().map(|kv| Slot::Kv {
            domain: kv.domain,
            key: kv.key.clone(),
        }));
        let now_ms = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
        )
        .unwrap_or(i64::MAX);
        let mut entries = Vec::new();
        let mut keys = Vec::new();
        {
            let recorded = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
            for slot in slots {
                let Some(field) = order_type.field_at(&slot) else {
                    continue; // not a configured field's slot: nothing to name
                };
                let key = format!(
                    "{}/{}/{}/{slot}",
                    main.tenant, main.business_identity, main.order_type
                );
                if recorded.contains(&key) || keys.contains(&key) {
                    continue;
                }
                keys.push(key);
                entries.push(SlotLedgerEntry {
                    tenant: main.tenant.as_str().to_owned(),
                    business_identity: main.business_identity.as_str().to_owned(),
                    order_type: main.order_type.as_str().to_owned(),
                    slot: slot.to_string(),
                    field: field.name.clone(),
                    field_type: field.field_type.as_str().to_owned(),
                    encrypted: field.encrypted,
                    first_written_ms: now_ms,
                });
            }
        }
        if entries.is_empty() {
            return Ok(());
        }
        self.store.record_slots(main.id, &entries).await?;
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(keys);
        Ok(())
    }
}

#[async_trait]
impl OrderStore for LedgeredStore {
    async fn insert(&self, new_order: NewOrder) -> DomainResult<InsertOutcome> {
        self.record(&new_order.order).await?;
        self.store.insert(new_order).await
    }

    async fn get(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Option<Order>> {
        self.store.get(tenant, id).await
    }

    async fn get_many(&self, keys: &[(TenantId, OrderId)]) -> DomainResult<Vec<Option<Order>>> {
        self.store.get_many(keys).await
    }

    async fn update(
        &self,
        expected_version: u64,
        order: Order,
        event: OrderEvent,
    ) -> DomainResult<Order> {
        self.record(&order).await?;
        self.store.update(expected_version, order, event).await
    }

    async fn list_by_buyer(
        &self,
        tenant: &TenantId,
        buyer: &PartyId,
        page: PageRequest,
    ) -> DomainResult<Page<Order>> {
        self.store.list_by_buyer(tenant, buyer, page).await
    }

    fn shards(&self) -> Vec<ShardId> {
        self.store.shards()
    }

    async fn health(&self) -> DomainResult<()> {
        self.store.health().await
    }

    async fn pending_outbox(&self, shard: ShardId, limit: u32) -> DomainResult<Vec<OutboxEntry>> {
        self.store.pending_outbox(shard, limit).await
    }

    async fn mark_published(&self, shard: ShardId, sequences: &[u64]) -> DomainResult<()> {
        self.store.mark_published(shard, sequences).await
    }
}

/// The ledger's entries as the plan reads them.
fn written(entries: Vec<SlotLedgerEntry>) -> DomainResult<Vec<WrittenSlot>> {
    let corrupt = |what: String| DomainError::internal(format!("slot ledger: {what}"));
    entries
        .into_iter()
        .map(|entry| {
            Ok(WrittenSlot {
                tenant: TenantId::parse(entry.tenant).map_err(|e| corrupt(e.message))?,
                business_identity: BusinessIdentity::parse(entry.business_identity)
                    .map_err(|e| corrupt(e.message))?,
                order_type: OrderType::parse(entry.order_type).map_err(|e| corrupt(e.message))?,
                slot: parse_slot(&entry.slot).map_err(corrupt)?,
                field_type: serde_json::from_value::<ExtFieldType>(serde_json::Value::String(
                    entry.field_type.clone(),
                ))
                .map_err(|_| corrupt(format!("unknown field type {:?}", entry.field_type)))?,
                field: entry.field,
                encrypted: entry.encrypted,
            })
        })
        .collect()
}

/// `tenants` against the slots that hold data: the plan of what is refused.
pub async fn plan(store: &SqlOrderStore, tenants: &ConfigSet) -> DomainResult<Plan> {
    let written = written(store.slot_ledger().await?)?;
    Ok(oc_tenant_config::plan_against_written(&written, tenants))
}

/// At start: refuse a tenant config that gives a slot holding data another meaning.
pub async fn check(
    store: &SqlOrderStore,
    tenants: &ConfigSet,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let plan = plan(store, tenants)
        .await
        .map_err(|e| anyhow::anyhow!("reading the slot ledger: {}", e.message))?;
    if plan.is_safe() {
        return Ok(());
    }
    anyhow::bail!(
        "tenant config {} is refused: it re-maps extension slots that hold data (the store's slot ledger); restore the fields, or retire the slots:\n{}",
        dir.display(),
        refusals_only(plan)
    )
}

/// At reload (on the blocking pool, where the reloader runs): the same check.
pub fn gate(
    store: Arc<SqlOrderStore>,
    runtime: tokio::runtime::Handle,
) -> impl Fn(&ConfigSet) -> Result<(), String> + Send + Sync {
    move |tenants| {
        let plan = runtime
            .block_on(plan(&store, tenants))
            .map_err(|e| format!("reading the slot ledger: {}", e.message))?;
        if plan.is_safe() {
            Ok(())
        } else {
            Err(format!(
                "it re-maps extension slots that hold data (the store's slot ledger):\n{}",
                refusals_only(plan)
            ))
        }
    }
}

/// The plan's refusals in `plan`'s own words (its safe changes and warnings left out).
fn refusals_only(mut plan: Plan) -> Plan {
    plan.changes.clear();
    plan
}
