//! [`AfterSaleListing`] over the shards: the degraded answer of an after-sale list when the
//! search index is unavailable (issue #20 item 6). Every shard is asked for its newest
//! `limit + 1` matching ids past the cursor, the answers are merged newest first, and the
//! page's after-sales are then read by primary key like any detail.
//!
//! The merchant is the order's (`orders.merchant_id`) and a SKU filter asks the after-sale's
//! lines; both are `EXISTS` subqueries on the same shard (an after-sale lives with its order).

use async_trait::async_trait;
use sqlx::Row as _;

use oc_model::aftersale::listing::{AfterSaleListing, AfterSaleQuery};
use oc_model::aftersale::{AfterSale, AfterSaleId};
use oc_model::ports::Page;
use oc_model::{DomainError, DomainResult, TenantId};

use crate::SqlOrderStore;
use crate::error::convert;
use crate::tables::after_sales;

/// The shards' page cursor: `as1.<created_at ms>.<id>` of the last after-sale shown.
fn encode_cursor(created_at_ms: i64, id: i64) -> String {
    format!("as1.{created_at_ms}.{id}")
}

fn decode_cursor(text: &str) -> DomainResult<(i64, i64)> {
    let bad = || {
        DomainError::invalid(
            "/cursor",
            "malformed page cursor (an index cursor is not valid while the index is unavailable: start again without one)",
        )
    };
    let mut parts = text.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("as1"), Some(ms), Some(id), None) => Ok((
            ms.parse().map_err(|_| bad())?,
            id.parse().map_err(|_| bad())?,
        )),
        _ => Err(bad()),
    }
}

#[async_trait]
impl AfterSaleListing for SqlOrderStore {
    async fn list_after_sales(
        &self,
        tenant: &TenantId,
        query: &AfterSaleQuery,
    ) -> DomainResult<Page<AfterSale>> {
        query.validate()?;
        let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
        let mut sql =
            String::from("SELECT a.id, a.created_at_ms FROM after_sales a WHERE a.tenant = ?");
        if !query.statuses.is_empty() {
            let marks = vec!["?"; query.statuses.len()].join(", ");
            sql.push_str(&format!(" AND a.status IN ({marks})"));
        }
        if query.kind.is_some() {
            sql.push_str(" AND a.kind = ?");
        }
        if query.channel.is_some() {
            sql.push_str(" AND a.channel = ?");
        }
        if query.order_id.is_some() {
            sql.push_str(" AND a.order_id = ?");
        }
        if query.created_at.from.is_some() {
            sql.push_str(" AND a.created_at_ms >= ?");
        }
        if query.created_at.to.is_some() {
            sql.push_str(" AND a.created_at_ms < ?");
        }
        if after.is_some() {
            sql.push_str(" AND (a.created_at_ms < ? OR (a.created_at_ms = ? AND a.id < ?))");
        }
        if query.merchant_id.is_some() {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM orders o WHERE o.tenant = a.tenant AND o.id = a.order_id AND o.merchant_id = ?)",
            );
        }
        if query.sku.is_some() {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM after_sale_lines l WHERE l.tenant = a.tenant AND l.after_sale_id = a.id AND l.sku = ?)",
            );
        }
        sql.push_str(" ORDER BY a.created_at_ms DESC, a.id DESC LIMIT ?");
        let limit = query.limit as usize;
        let millis = |at: time::OffsetDateTime| oc_model::UnixMillis::floor(at).get();

        let mut found: Vec<(i64, i64)> = Vec::new();
        for pool in self.shards.all() {
            let mut statement = sqlx::query(&sql).bind(tenant.as_str());
            for status in &query.statuses {
                statement = statement.bind(status.as_str());
            }
            if let Some(kind) = query.kind {
                statement = statement.bind(kind.as_str());
            }
            if let Some(channel) = query.channel {
                statement = statement.bind(channel.as_str());
            }
            if let Some(order) = query.order_id {
                statement = statement.bind(order.as_i64());
            }
            if let Some(from) = query.created_at.from {
                statement = statement.bind(millis(from));
            }
            if let Some(to) = query.created_at.to {
                statement = statement.bind(millis(to));
            }
            if let Some((ms, id)) = after {
                statement = statement.bind(ms).bind(ms).bind(id);
            }
            if let Some(merchant) = &query.merchant_id {
                statement = statement.bind(merchant.as_str());
            }
            if let Some(sku) = &query.sku {
                statement = statement.bind(sku.as_str());
            }
            let rows = statement
                .bind((limit + 1) as i64)
                .fetch_all(pool)
                .await
                .map_err(convert)?;
            for row in rows {
                let id: i64 = row.try_get(0).map_err(convert)?;
                let created_at_ms: i64 = row.try_get(1).map_err(convert)?;
                found.push((created_at_ms, id));
            }
        }
        // newest first across shards, the id breaking ties as in the index
        found.sort_unstable_by(|a, b| b.cmp(a));
        let more = found.len() > limit;
        found.truncate(limit);
        let mut items = Vec::with_capacity(found.len());
        for (_, raw) in &found {
            let id = AfterSaleId::from_raw(*raw as u64)?;
            // gone between the two reads (archived): skipped, as a list from the index does
            if let Some(after_sale) =
                after_sales::get(self.shards.for_bucket(id.bucket()), tenant, id).await?
            {
                items.push(after_sale);
            }
        }
        let next_cursor = match found.last() {
            Some((ms, id)) if more => Some(encode_cursor(*ms, *id)),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_others() {
        assert_eq!(
            decode_cursor(&encode_cursor(1_790_000_000_123, 42)).unwrap(),
            (1_790_000_000_123, 42)
        );
        for bad in [
            "",
            "as1.1",
            "as1.x.2",
            "as2.1.2",
            "as1.1.2.3",
            "eyJzIjp7fX0",
        ] {
            assert_eq!(
                decode_cursor(bad).unwrap_err().field.as_deref(),
                Some("/cursor"),
                "{bad}"
            );
        }
    }
}
