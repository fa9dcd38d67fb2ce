//! Reads of whole orders: by id, and a buyer's page. An order is its main row, its lines and
//! its identifiers, read in one snapshot (see [`crate::shards::begin_read`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine as _;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use oc_model::ports::{Page, PageRequest};
use oc_model::{Bucket, DomainError, DomainResult, Order, OrderId, PartyId, ShardId, TenantId};

use crate::error::convert;
use crate::shards::{Shards, begin_read};
use crate::tables::{currency_of, order_identifiers, order_lines, orders};

/// The order `id` of `tenant`, if it exists.
pub(crate) async fn get(
    shards: &Shards,
    tenant: &TenantId,
    id: OrderId,
) -> DomainResult<Option<Order>> {
    let pool = shards.for_bucket(id.bucket());
    let mut tx = begin_read(pool, shards.dialect).await?;
    let order = match orders::select_one(&mut tx, tenant, id).await? {
        None => None,
        Some(row) => read_orders(&mut tx, tenant, vec![row]).await?.pop(),
    };
    tx.commit().await.map_err(convert)?;
    Ok(order)
}

/// Most orders one statement of [`get_many`] names (one bound value each).
const MANY_PER_STATEMENT: usize = 500;

/// See `OrderStore::get_many`: per shard one read transaction (one snapshot), in it per tenant
/// three statements (main rows, lines, identifiers) instead of three per order.
pub(crate) async fn get_many(
    shards: &Shards,
    keys: &[(TenantId, OrderId)],
) -> DomainResult<Vec<Option<Order>>> {
    let mut by_shard: BTreeMap<ShardId, BTreeMap<&TenantId, BTreeSet<i64>>> = BTreeMap::new();
    for (tenant, id) in keys {
        by_shard
            .entry(shards.shard_of(id.bucket()))
            .or_default()
            .entry(tenant)
            .or_default()
            .insert(id.as_i64());
    }
    let mut found: HashMap<(&TenantId, i64), Order> = HashMap::new();
    for (shard, tenants) in by_shard {
        let mut tx = begin_read(shards.pool(shard)?, shards.dialect).await?;
        for (tenant, ids) in tenants {
            let ids: Vec<i64> = ids.into_iter().collect();
            for chunk in ids.chunks(MANY_PER_STATEMENT) {
                let rows = orders::select_many(&mut tx, tenant, chunk).await?;
                for order in read_orders(&mut tx, tenant, rows).await? {
                    found.insert((tenant, order.main.id.as_i64()), order);
                }
            }
        }
        tx.commit().await.map_err(convert)?;
    }
    Ok(keys
        .iter()
        .map(|(tenant, id)| found.get(&(tenant, id.as_i64())).cloned())
        .collect())
}

/// A buyer's orders, newest first, from the buyer's one shard.
pub(crate) async fn list_by_buyer(
    shards: &Shards,
    tenant: &TenantId,
    buyer: &PartyId,
    page: PageRequest,
) -> DomainResult<Page<Order>> {
    let limit = page.limit.clamp(1, 200);
    let before = match &page.cursor {
        Some(cursor) => decode_cursor(cursor)?,
        None => i64::MAX,
    };
    let pool = shards.for_bucket(Bucket::of(tenant, buyer));
    let mut tx = begin_read(pool, shards.dialect).await?;
    let rows = orders::select_buyer_page(&mut tx, tenant, buyer, before, limit + 1).await?;
    let mut orders = read_orders(&mut tx, tenant, rows).await?;
    tx.commit().await.map_err(convert)?;
    let next_cursor = if orders.len() > limit as usize {
        orders.truncate(limit as usize);
        orders.last().map(|o| encode_cursor(o.main.id))
    } else {
        None
    };
    Ok(Page {
        items: orders,
        next_cursor,
    })
}

/// Whole orders from their main rows: the lines and identifiers of all of them in one
/// statement each.
async fn read_orders(
    connection: &mut AnyConnection,
    tenant: &TenantId,
    rows: Vec<AnyRow>,
) -> DomainResult<Vec<Order>> {
    let ids: Vec<i64> = rows
        .iter()
        .map(orders::id_of)
        .collect::<DomainResult<_>>()?;
    let mut lines = order_lines::select_of(connection, tenant, &ids).await?;
    let mut identifiers = order_identifiers::select_of(connection, tenant, &ids).await?;
    rows.iter()
        .zip(&ids)
        .map(|(row, id)| {
            let currency = currency_of(row)?;
            let lines = order_lines::decode_all(&lines.remove(id).unwrap_or_default(), currency)?;
            let identifiers =
                order_identifiers::decode_all(&identifiers.remove(id).unwrap_or_default())?;
            orders::decode(row, lines, identifiers)
        })
        .collect()
}

fn encode_cursor(id: OrderId) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("o:{id}"))
}

fn decode_cursor(cursor: &str) -> DomainResult<i64> {
    let bad = || DomainError::invalid("/cursor", "malformed cursor");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let id: OrderId = text
        .strip_prefix("o:")
        .ok_or_else(bad)?
        .parse()
        .map_err(|_| bad())?;
    Ok(id.as_i64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let id = OrderId::from_raw(123_456_789).unwrap();
        assert_eq!(decode_cursor(&encode_cursor(id)).unwrap(), 123_456_789);
        for bad in ["", "!!", "bzphYmM", "o:12"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
