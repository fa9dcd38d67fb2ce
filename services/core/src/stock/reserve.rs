//! Reservations of an order's lines: taken before the order is written, every line or none,
//! and settled (confirmed or released) after the transitions that decide it.

use std::collections::BTreeMap;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use oc_model::stock::{GateOutcome, Hold, ReserveOutcome, Settle, StockGate, StockStore};
use oc_model::{
    DomainError, DomainResult, ErrorCode, Order, OrderId, Sku, StockEffect, StockLevel, TenantId,
};
use oc_tenant_config::{InventoryConfig, TenantConfig, UntrackedSkus};

/// How long a reservation holds when the order type declares no payment window.
const DEFAULT_HOLD: Duration = Duration::minutes(30);

/// Rounds of seeding missing gate counters from SQL before a placement goes to SQL alone
/// (each round seeds what is missing; two are enough unless counters vanish meanwhile).
const SEED_ROUNDS: usize = 3;

/// Takes and settles the reservations of orders.
#[derive(Debug, Clone)]
pub(crate) struct Reserver {
    pub(crate) store: Arc<dyn StockStore>,
    /// The admission gate for hot SKUs (identities with `accelerator: redis`), when the
    /// service has one.
    pub(crate) gate: Option<Arc<dyn StockGate>>,
}

/// A SKU an order reserved: what to give back if the order is not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Taken {
    sku: Sku,
    quantity: u64,
    /// Its units were also taken from the gate.
    gated: bool,
}

/// The units an order needs, per SKU (lines of the same SKU added up), with the index of
/// the first line naming it (for the problem's field).
fn needs(order: &Order) -> DomainResult<BTreeMap<Sku, (u64, usize)>> {
    let mut needs: BTreeMap<Sku, (u64, usize)> = BTreeMap::new();
    for (index, line) in order.lines.iter().enumerate() {
        let sku =
            Sku::parse(line.sku.as_str()).map_err(|e| e.under(&format!("/lines/{index}/sku")))?;
        let entry = needs.entry(sku).or_insert((0, index));
        entry.0 += u64::from(line.quantity);
    }
    Ok(needs)
}

fn out_of_stock(sku: &Sku, quantity: u64, available: Option<u64>, index: usize) -> DomainError {
    DomainError {
        code: ErrorCode::OutOfStock,
        message: match available {
            Some(available) => {
                format!("SKU {sku} is out of stock: {quantity} wanted, {available} available")
            }
            None => format!("SKU {sku} is out of stock: no stock was set for it"),
        },
        field: Some(format!("/lines/{index}/sku")),
        unsent: false,
    }
}

/// What the gate decided for an order's accelerated SKUs.
enum Admission {
    /// Their units were taken from the gate.
    Admitted,
    /// A SKU is sold out at the gate: refuse the order without touching SQL.
    Refused { sku: Sku, available: u64 },
    /// No answer from the gate (Redis down or slow, counters vanishing): SQL alone decides.
    Bypassed,
}

impl Reserver {
    /// Reserve every SKU of `order` until `now + window`, or none: on the first SKU short
    /// of units, what was taken is given back and the answer is `OutOfStock` naming the SKU
    /// (field: its first line). SKUs nobody set stock for are refused or sold without a
    /// reservation, as the tenant config says. The SKUs the config accelerates are first
    /// taken from the gate, all at once; SQL's conditional decrement still decides each.
    /// Returns what was reserved.
    pub(crate) async fn reserve_order(
        &self,
        order: &Order,
        window: Option<Duration>,
        inventory: &InventoryConfig,
        now: OffsetDateTime,
    ) -> DomainResult<Vec<Taken>> {
        let main = &order.main;
        let expires_at = now + window.unwrap_or(DEFAULT_HOLD);
        let needs = needs(order)?;
        let hot: Vec<(Sku, u64)> = needs
            .iter()
            .filter(|(sku, _)| inventory.accelerated(sku.as_str()))
            .map(|(sku, (quantity, _))| (sku.clone(), *quantity))
            .collect();
        let gated = match (&self.gate, hot.is_empty()) {
            (Some(gate), false) => match self.admit(gate.as_ref(), &main.tenant, &hot).await {
                Admission::Admitted => true,
                Admission::Refused { sku, available } => {
                    let (quantity, index) = needs.get(&sku).copied().unwrap_or_default();
                    return Err(out_of_stock(&sku, quantity, Some(available), index));
                }
                Admission::Bypassed => false,
            },
            _ => false,
        };
        // SKUs the gate did not admit: their levels in one read per shard, so that an
        // untracked SKU (most of a catalogue, often) or one already short costs no
        // transaction (begin, conditional update, read, rollback), nor on SQLite the
        // file's write lock. A level read as having enough goes on to the conditional
        // decrement, which alone decides; a refusal from this read is the level as of it,
        // as a placement a moment earlier would have found it.
        // the SKUs whose units the gate took (none when it was bypassed or not asked)
        let is_gated = |sku: &Sku| gated && hot.iter().any(|(hot, _)| hot == sku);
        let unadmitted: Vec<Sku> = needs.keys().filter(|sku| !is_gated(sku)).cloned().collect();
        let read: BTreeMap<Sku, Option<StockLevel>> = if unadmitted.is_empty() {
            BTreeMap::new()
        } else {
            match self.store.stock_levels(&main.tenant, &unadmitted).await {
                Ok(levels) => unadmitted.into_iter().zip(levels).collect(),
                Err(error) => {
                    // nothing is reserved yet: only the gate's units go back
                    for (sku, quantity) in hot.iter().filter(|_| gated) {
                        self.give_back(&main.tenant, sku, *quantity).await;
                    }
                    return Err(error);
                }
            }
        };
        let mut taken = Vec::new();
        for (sku, (quantity, index)) in &needs {
            let gated_here = is_gated(sku);
            let hold = Hold {
                tenant: main.tenant.clone(),
                order_id: main.id,
                sku: sku.clone(),
                quantity: *quantity,
                expires_at,
                created_at: now,
            };
            let outcome = match read.get(sku) {
                Some(None) => Ok(ReserveOutcome::Short(None)),
                Some(Some(level)) if level.available < *quantity => {
                    Ok(ReserveOutcome::Short(Some(level.clone())))
                }
                _ => self.store.reserve(&hold).await,
            };
            let refusal = match outcome {
                Ok(ReserveOutcome::Reserved) => {
                    taken.push(Taken {
                        sku: sku.clone(),
                        quantity: *quantity,
                        gated: gated_here,
                    });
                    continue;
                }
                Ok(ReserveOutcome::Short(None))
                    if inventory.untracked_skus == UntrackedSkus::Allow =>
                {
                    // sold without a reservation: the gate's units go back
                    if gated_here {
                        self.give_back(&main.tenant, sku, *quantity).await;
                    }
                    continue;
                }
                Ok(ReserveOutcome::Short(level)) => Err(out_of_stock(
                    sku,
                    *quantity,
                    level.map(|level| level.available),
                    *index,
                )),
                Err(error) => Err(error),
            };
            // the gate's units of the SKUs not reached yet (and of this one) go back too
            for (rest, (quantity, _)) in needs.range(sku.clone()..) {
                if is_gated(rest) {
                    self.give_back(&main.tenant, rest, *quantity).await;
                }
            }
            self.release(&main.tenant, main.id, &taken, now).await;
            return refusal;
        }
        Ok(taken)
    }

    /// Take `hot` from the gate, seeding missing counters from SQL's `available`.
    async fn admit(
        &self,
        gate: &dyn StockGate,
        tenant: &TenantId,
        hot: &[(Sku, u64)],
    ) -> Admission {
        for _ in 0..SEED_ROUNDS {
            let missing = match gate.admit(tenant, hot).await {
                Ok(GateOutcome::Admitted) => return Admission::Admitted,
                Ok(GateOutcome::Short { sku, available }) => {
                    return Admission::Refused { sku, available };
                }
                Ok(GateOutcome::Missing(missing)) => missing,
                Err(error) => {
                    tracing::warn!(error = %error.message, "stock gate unavailable: reserving in SQL alone");
                    return Admission::Bypassed;
                }
            };
            for sku in missing {
                // a SKU without stock has no counter: SQL refuses it (or sells it untracked)
                let available = match self.store.stock_level(tenant, &sku).await {
                    Ok(Some(level)) => level.available,
                    Ok(None) => return Admission::Bypassed,
                    Err(error) => {
                        tracing::warn!(%sku, error = %error.message, "reading stock to seed the gate failed");
                        return Admission::Bypassed;
                    }
                };
                if let Err(error) = gate.seed(tenant, &sku, available).await {
                    tracing::warn!(%sku, error = %error.message, "stock gate unavailable: reserving in SQL alone");
                    return Admission::Bypassed;
                }
            }
        }
        Admission::Bypassed
    }

    /// Return units to the gate; a failure is logged (the counter is rebuilt from SQL when
    /// it expires).
    async fn give_back(&self, tenant: &TenantId, sku: &Sku, quantity: u64) {
        if let Some(gate) = &self.gate
            && let Err(error) = gate.give_back(tenant, sku, quantity).await
        {
            tracing::warn!(%sku, error = %error.message, "giving units back to the stock gate failed");
        }
    }

    /// Units the reservation sweeper put back on sale in SQL (an orphaned reservation, or a
    /// release its order's history decided whose settling was lost) go back to the gate too,
    /// as a transition's release does; else the counter stays too low, refusing buyers SQL
    /// has units for, until it expires. An orphan has no order to name its business
    /// identity, so the units go back when any identity of the tenant accelerates the SKU:
    /// counters are per tenant and SKU, `give_back` only adds to a live counter, and a
    /// counter too high cannot oversell (SQL's decrement decides).
    pub(crate) async fn swept_release(
        &self,
        tenant: Option<&TenantConfig>,
        sku: &Sku,
        quantity: u64,
    ) {
        let Some(tenant) = tenant else { return };
        if tenant
            .business_identities()
            .values()
            .any(|identity| identity.inventory().accelerated(sku.as_str()))
        {
            self.give_back(tenant.id(), sku, quantity).await;
        }
    }

    /// The SKU's stock was set: its gate counter is rebuilt from SQL on the next placement.
    pub(crate) async fn forget(&self, tenant: &TenantId, sku: &Sku) {
        if let Some(gate) = &self.gate
            && let Err(error) = gate.forget(tenant, sku).await
        {
            tracing::warn!(%sku, error = %error.message, "dropping the stock gate's counter failed");
        }
    }

    /// Give back the reservations of `taken`. A failure is logged: the reservation stays
    /// until someone releases it again (release is idempotent).
    pub(crate) async fn release(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
        taken: &[Taken],
        now: OffsetDateTime,
    ) {
        for taken in taken {
            match self.store.release(tenant, order_id, &taken.sku, now).await {
                Ok(Settle::Done) if taken.gated => {
                    self.give_back(tenant, &taken.sku, taken.quantity).await;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(%order_id, sku = %taken.sku, error = %error.message, "releasing a reservation failed");
                }
            }
        }
    }

    /// Apply a transition's stock decision to every SKU of the order (idempotent: a
    /// reservation already settled, or never taken for an untracked SKU, is left alone).
    /// Units a release puts back on sale go back to the gate too for accelerated SKUs.
    pub(crate) async fn settle(
        &self,
        order: &Order,
        effect: StockEffect,
        inventory: &InventoryConfig,
        now: OffsetDateTime,
    ) -> DomainResult<()> {
        let main = &order.main;
        for (sku, (quantity, _)) in needs(order)? {
            match effect {
                StockEffect::None => return Ok(()),
                StockEffect::Confirm => {
                    self.store.confirm(&main.tenant, main.id, &sku, now).await?;
                }
                StockEffect::Release => {
                    let settle = self.store.release(&main.tenant, main.id, &sku, now).await?;
                    if settle == Settle::Done && inventory.accelerated(sku.as_str()) {
                        self.give_back(&main.tenant, &sku, quantity).await;
                    }
                }
            }
        }
        Ok(())
    }
}
