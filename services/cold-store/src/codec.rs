//! The stored value: the JSON of the full `Order`, exactly as given (PII stays sealed).

use oc_model::archive::ArchivedAfterSale;
use oc_model::{DomainError, DomainResult, HistoryEntry, Order, OrderId, TenantId};

/// Refuse an order with plaintext personal data: the cold store keeps what it is given for
/// years, so it must only ever be given ciphertext.
pub(crate) fn assert_sealed(order: &Order) -> DomainResult<()> {
    for party in [&order.parties.shipper, &order.parties.receiver]
        .into_iter()
        .flatten()
    {
        if party
            .pii_fields()
            .iter()
            .any(|(_, value)| !value.is_sealed())
        {
            return Err(DomainError::internal(
                "refusing to archive plaintext personal data",
            ));
        }
    }
    Ok(())
}

pub(crate) fn encode(order: &Order) -> DomainResult<Vec<u8>> {
    assert_sealed(order)?;
    serde_json::to_vec(order)
        .map_err(|error| DomainError::internal(format!("encode archived order: {error}")))
}

/// Decode a stored order and check it belongs to the key it was read under, so that a
/// corrupt or misplaced row can never answer for another tenant.
pub(crate) fn decode(bytes: &[u8], tenant: &TenantId, id: OrderId) -> DomainResult<Order> {
    let order: Order = serde_json::from_slice(bytes).map_err(|error| {
        tracing::error!(%tenant, order_id = %id, %error, "undecodable archived order");
        DomainError::internal("undecodable archived order")
    })?;
    if &order.main.tenant != tenant || order.main.id != id {
        tracing::error!(
            %tenant,
            order_id = %id,
            stored_tenant = %order.main.tenant,
            stored_id = %order.main.id,
            "archived order does not match its key"
        );
        return Err(DomainError::internal(
            "archived order does not match its key",
        ));
    }
    Ok(order)
}

/// The stored status history of an archived order: the JSON array of its entries.
pub(crate) fn encode_history(history: &[HistoryEntry]) -> DomainResult<Vec<u8>> {
    serde_json::to_vec(history)
        .map_err(|error| DomainError::internal(format!("encode archived history: {error}")))
}

/// Decode a stored history and check every entry belongs to the key it was read under.
pub(crate) fn decode_history(
    bytes: &[u8],
    tenant: &TenantId,
    id: OrderId,
) -> DomainResult<Vec<HistoryEntry>> {
    let history: Vec<HistoryEntry> = serde_json::from_slice(bytes).map_err(|error| {
        tracing::error!(%tenant, order_id = %id, %error, "undecodable archived history");
        DomainError::internal("undecodable archived history")
    })?;
    if history
        .iter()
        .any(|entry| &entry.tenant != tenant || entry.order_id != id)
    {
        tracing::error!(%tenant, order_id = %id, "archived history does not match its key");
        return Err(DomainError::internal(
            "archived history does not match its key",
        ));
    }
    Ok(history)
}

/// The stored after-sales of an archived order: the JSON array of their records.
pub(crate) fn encode_after_sales(after_sales: &[ArchivedAfterSale]) -> DomainResult<Vec<u8>> {
    serde_json::to_vec(after_sales)
        .map_err(|error| DomainError::internal(format!("encode archived after-sales: {error}")))
}

/// Decode stored after-sales and check every one belongs to the order it was read under.
pub(crate) fn decode_after_sales(
    bytes: &[u8],
    tenant: &TenantId,
    order_id: OrderId,
) -> DomainResult<Vec<ArchivedAfterSale>> {
    let after_sales: Vec<ArchivedAfterSale> = serde_json::from_slice(bytes).map_err(|error| {
        tracing::error!(%tenant, %order_id, %error, "undecodable archived after-sales");
        DomainError::internal("undecodable archived after-sales")
    })?;
    if after_sales.iter().any(|archived| {
        &archived.after_sale.tenant != tenant || archived.after_sale.order_id != order_id
    }) {
        tracing::error!(%tenant, %order_id, "archived after-sales do not match their key");
        return Err(DomainError::internal(
            "archived after-sales do not match their key",
        ));
    }
    Ok(after_sales)
}

/// The value of an after-sale's index entry: its order's id, 8 bytes big-endian.
pub(crate) fn decode_order_ref(bytes: &[u8]) -> DomainResult<OrderId> {
    let raw: [u8; 8] = bytes
        .try_into()
        .map_err(|_| DomainError::internal("malformed after-sale index entry in the cold store"))?;
    OrderId::from_raw(u64::from_be_bytes(raw))
        .map_err(|_| DomainError::internal("malformed after-sale index entry in the cold store"))
}
