//! Reservations of an order's lines: taken before the order is written, every line or none,
//! and settled (confirmed or released) after the transitions that decide it.

use std::collections::BTreeMap;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use oc_model::stock::{Hold, ReserveOutcome, StockStore};
use oc_model::{DomainError, DomainResult, ErrorCode, Order, OrderId, Sku, StockEffect, TenantId};
use oc_tenant_config::UntrackedSkus;

/// How long a reservation holds when the order type declares no payment window.
const DEFAULT_HOLD: Duration = Duration::minutes(30);

/// Takes and settles the reservations of orders.
#[derive(Debug, Clone)]
pub(crate) struct Reserver {
    pub(crate) store: Arc<dyn StockStore>,
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

impl Reserver {
    /// Reserve every SKU of `order` until `now + window`, or none: on the first SKU short
    /// of units, what was taken is given back and the answer is `OutOfStock` naming the SKU
    /// (field: its first line). SKUs nobody set stock for are refused or sold without a
    /// reservation, as the tenant config says. Returns the SKUs reserved.
    pub(crate) async fn reserve_order(
        &self,
        order: &Order,
        window: Option<Duration>,
        untracked: UntrackedSkus,
        now: OffsetDateTime,
    ) -> DomainResult<Vec<Sku>> {
        let main = &order.main;
        let expires_at = now + window.unwrap_or(DEFAULT_HOLD);
        let mut taken = Vec::new();
        for (sku, (quantity, index)) in needs(order)? {
            let hold = Hold {
                tenant: main.tenant.clone(),
                order_id: main.id,
                sku: sku.clone(),
                quantity,
                expires_at,
                created_at: now,
            };
            let refusal = match self.store.reserve(&hold).await {
                Ok(ReserveOutcome::Reserved) => {
                    taken.push(sku);
                    continue;
                }
                Ok(ReserveOutcome::Short(None)) if untracked == UntrackedSkus::Allow => continue,
                Ok(ReserveOutcome::Short(level)) => Err(DomainError {
                    code: ErrorCode::OutOfStock,
                    message: match level {
                        Some(level) => format!(
                            "SKU {sku} is out of stock: {quantity} wanted, {} available",
                            level.available
                        ),
                        None => format!("SKU {sku} is out of stock: no stock was set for it"),
                    },
                    field: Some(format!("/lines/{index}/sku")),
                }),
                Err(error) => Err(error),
            };
            self.release(&main.tenant, main.id, &taken, now).await;
            return refusal;
        }
        Ok(taken)
    }

    /// Give back the reservations of `skus`. A failure is logged: the reservation stays
    /// until someone releases it again (release is idempotent).
    pub(crate) async fn release(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
        skus: &[Sku],
        now: OffsetDateTime,
    ) {
        for sku in skus {
            if let Err(error) = self.store.release(tenant, order_id, sku, now).await {
                tracing::error!(%order_id, %sku, error = %error.message, "releasing a reservation failed");
            }
        }
    }

    /// Apply a transition's stock decision to every SKU of the order (idempotent: a
    /// reservation already settled, or never taken for an untracked SKU, is left alone).
    pub(crate) async fn settle(
        &self,
        order: &Order,
        effect: StockEffect,
        now: OffsetDateTime,
    ) -> DomainResult<()> {
        let main = &order.main;
        for sku in needs(order)?.into_keys() {
            match effect {
                StockEffect::None => return Ok(()),
                StockEffect::Confirm => {
                    self.store.confirm(&main.tenant, main.id, &sku, now).await?;
                }
                StockEffect::Release => {
                    self.store.release(&main.tenant, main.id, &sku, now).await?;
                }
            }
        }
        Ok(())
    }
}
