//! One reservation held past its expiry: released when its order was never written, settled
//! as its order's history decided when a transition committed but its stock update did not
//! happen, else left to the order (its timeout, its payment, its cancel).

use time::OffsetDateTime;

use oc_model::lifecycle::settled_stock;
use oc_model::stock::Reservation;
use oc_model::{DomainResult, StockEffect};

use super::Scheduler;

/// What the sweeper did with one expired reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Swept {
    /// Its order does not exist: the units went back on sale.
    OrphanReleased,
    /// Its order's history decided (released or confirmed) and the reservation had not
    /// followed: it did now.
    Settled,
    /// Nothing to do (the order still waits, or the move was made meanwhile by someone
    /// else, or the reservation is too young to call orphaned).
    Left,
}

impl Swept {
    pub fn as_str(self) -> &'static str {
        match self {
            Swept::OrphanReleased => "orphan_released",
            Swept::Settled => "settled",
            Swept::Left => "left",
        }
    }
}

impl Scheduler {
    pub(crate) async fn sweep(
        &self,
        reservation: &Reservation,
        now: OffsetDateTime,
    ) -> DomainResult<Swept> {
        let (tenant, order_id, sku) = (&reservation.tenant, reservation.order_id, &reservation.sku);
        let exists = self.schedule.order_exists(tenant, order_id).await?;
        if !exists {
            // a create in flight writes its order right after reserving: only a reservation
            // older than any create may be called orphaned
            if reservation.created_at + self.settings.orphan_grace > now {
                return Ok(Swept::Left);
            }
            // the order is written on another shard than the reservation, with no
            // transaction spanning both: the order is read first, and a create that still
            // wrote it after the grace would find its reservation gone (its payment then
            // confirms nothing), which the grace makes as unlikely as a create outliving
            // its request timeout many times over
            let settle = self.stock.release(tenant, order_id, sku, now).await?;
            return Ok(if settle == oc_model::stock::Settle::Done {
                tracing::info!(%order_id, %sku, quantity = reservation.quantity, "released an orphaned reservation");
                self.gate_release(reservation).await;
                Swept::OrphanReleased
            } else {
                Swept::Left
            });
        }
        let history = self.transitions.store.history(tenant, order_id).await?;
        let settle = match settled_stock(&history) {
            StockEffect::None => return Ok(Swept::Left),
            StockEffect::Release => {
                let settle = self.stock.release(tenant, order_id, sku, now).await?;
                if settle == oc_model::stock::Settle::Done {
                    self.gate_release(reservation).await;
                }
                settle
            }
            StockEffect::Confirm => self.stock.confirm(tenant, order_id, sku, now).await?,
        };
        Ok(if settle == oc_model::stock::Settle::Done {
            Swept::Settled
        } else {
            Swept::Left
        })
    }

    /// The units of a reservation the sweeper released go back to the stock gate too.
    async fn gate_release(&self, reservation: &Reservation) {
        let config = self.config.current();
        self.transitions
            .orders
            .reserver
            .swept_release(
                config.tenant(&reservation.tenant).map(|t| &**t),
                &reservation.sku,
                reservation.quantity,
            )
            .await;
    }
}
