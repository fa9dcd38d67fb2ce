//! The stock domain: a tenant admin sets a SKU's units for sale and reads its level; order
//! placement reserves every line's units before the order is written (all or nothing), and
//! the transitions the tenant config marks confirm (`pay`: sold) or release (`cancel`,
//! `timeout`: back on sale) them. Only business identities with `inventory: builtin` keep
//! stock; the truth is the `StockStore` port (SQL: conditional decrements, reservation rows
//! with an expiry). Identities with `accelerator: redis` put a `StockGate` (Redis admission
//! counters, rebuilt from SQL when missing) in front of it for hot SKUs: a sold-out SKU's
//! buyers are refused there, and SQL still decides every reservation the gate admits.
//!
//! | use case | file |
//! |---|---|
//! | set and read a SKU's level (admin) | `mod.rs` |
//! | reserve an order's lines, settle them after a transition | `reserve.rs` |

mod reserve;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use oc_model::stock::StockStore;
use oc_model::{DomainError, DomainResult, Sku, StockLevel};

use crate::caller::Caller;

pub(crate) use reserve::{Reserver, Taken};

/// `PUT /v1/stock/{sku}`: the units for sale.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetStockRequest {
    pub available: u64,
}

/// A SKU's level: `available + reserved + sold` is every unit the SKU has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockView {
    pub sku: String,
    pub available: u64,
    pub reserved: u64,
    pub sold: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<StockLevel> for StockView {
    fn from(level: StockLevel) -> StockView {
        StockView {
            sku: level.sku.to_string(),
            available: level.available,
            reserved: level.reserved,
            sold: level.sold,
            updated_at: level.updated_at,
        }
    }
}

/// Most units a SKU may be set to (fits every engine's signed 64-bit column with room).
pub const MAX_AVAILABLE: u64 = 1_000_000_000_000;

/// The stock domain's admin use cases. Built by [`crate::Core::builder`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct StockService {
    pub(crate) store: Arc<dyn StockStore>,
    pub(crate) clock: Arc<dyn oc_model::ports::Clock>,
    /// Drops a SKU's gate counter when its stock is set.
    pub(crate) reserver: Reserver,
}

fn sku_of(sku: &str) -> DomainResult<Sku> {
    Sku::parse(sku).map_err(|e| e.under("/path/sku"))
}

impl StockService {
    /// Set the units of `sku` for sale; reserved and sold units stay as they are.
    pub async fn set(
        &self,
        caller: &Caller,
        sku: &str,
        request: SetStockRequest,
    ) -> DomainResult<StockView> {
        let sku = sku_of(sku)?;
        if request.available > MAX_AVAILABLE {
            return Err(DomainError::invalid(
                "/available",
                format!("at most {MAX_AVAILABLE}"),
            ));
        }
        let level = self
            .store
            .set_available(&caller.tenant, &sku, request.available, self.clock.now())
            .await?;
        // the gate's counter (if any) is rebuilt from the new level on the next placement
        self.reserver.forget(&caller.tenant, &sku).await;
        Ok(level.into())
    }

    /// The level of `sku`; a SKU nobody set stock for is 404.
    pub async fn get(&self, caller: &Caller, sku: &str) -> DomainResult<StockView> {
        let sku = sku_of(sku)?;
        self.store
            .stock_level(&caller.tenant, &sku)
            .await?
            .map(StockView::from)
            .ok_or_else(|| DomainError::not_found(format!("no stock was set for SKU {sku}")))
    }
}
