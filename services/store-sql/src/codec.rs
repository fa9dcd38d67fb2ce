//! Order ↔ rows. Indexed and reconciled fields are real columns; the remaining groups
//! (logistics, marketing, finance, channel, parties, operation) travel as one JSON body.
//! Parties hold sealed values only: a plaintext PII value never reaches a row.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::statements::EXT_COLUMNS;

use oc_model::order::ExtColumns;
use oc_model::order::{
    Channel, Extension, Finance, LogisticsService, Marketing, Operation, OrderLine, OrderMain,
    Parties,
};
use oc_model::{
    BusinessDomain, BusinessIdentity, ColumnIndex, Currency, DomainError, ExtValue, KvIdentifier,
    KvValue, Money, Order, OrderId, OrderType, PartyId, Protected, RESERVED_COLUMNS, StatusCode,
    TenantId,
};

/// The JSON body column.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Body {
    pub logistics: LogisticsService,
    pub marketing: Marketing,
    pub finance: Finance,
    pub channel: Channel,
    pub parties: Parties,
    pub operation: Operation,
}

/// Values for `ext_01..ext_NN`, `None` where the slot is empty.
pub(crate) fn encode_ext(columns: &ExtColumns) -> Result<Vec<Option<String>>, DomainError> {
    let mut out = vec![None; usize::from(RESERVED_COLUMNS)];
    for (column, value) in columns {
        let text = serde_json::to_string(value)
            .map_err(|e| DomainError::internal(format!("encode {column}: {e}")))?;
        out[usize::from(column.get() - 1)] = Some(text);
    }
    Ok(out)
}

pub(crate) fn decode_ext(row: &AnyRow) -> Result<ExtColumns, DomainError> {
    let mut columns = BTreeMap::new();
    for (index, name) in (1..=RESERVED_COLUMNS).zip(EXT_COLUMNS.iter()) {
        let raw = opt_text(row, name)?;
        if let Some(raw) = raw {
            let value: Protected<ExtValue> = serde_json::from_str(&raw)
                .map_err(|e| DomainError::internal(format!("corrupt {name}: {e}")))?;
            columns.insert(ColumnIndex::new(index)?, value);
        }
    }
    Ok(columns)
}

pub(crate) fn corrupt(error: impl std::fmt::Display) -> DomainError {
    DomainError::internal(format!("corrupt order row: {error}"))
}

pub(crate) fn unix_ms(time: OffsetDateTime) -> i64 {
    (time.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn from_unix_ms(ms: i64) -> Result<OffsetDateTime, DomainError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(corrupt)
}

pub(crate) fn assert_sealed(order: &Order) -> Result<(), DomainError> {
    for party in [&order.parties.shipper, &order.parties.receiver]
        .into_iter()
        .flatten()
    {
        if party.pii_fields().iter().any(|(_, v)| !v.is_sealed()) {
            return Err(DomainError::internal(
                "refusing to store plaintext personal data",
            ));
        }
    }
    Ok(())
}

pub(crate) fn body_json(order: &Order) -> Result<String, DomainError> {
    let body = Body {
        logistics: order.logistics.clone(),
        marketing: order.marketing.clone(),
        finance: order.finance.clone(),
        channel: order.channel.clone(),
        parties: order.parties.clone(),
        operation: order.operation.clone(),
    };
    serde_json::to_string(&body)
        .map_err(|e| DomainError::internal(format!("encode order body: {e}")))
}

/// A text column. MySQL reports columns with a binary collation (`utf8mb4_bin`, which we use
/// so that keys compare byte for byte) as BLOB, so bytes are accepted and checked as UTF-8.
pub(crate) fn text(row: &AnyRow, column: &str) -> Result<String, DomainError> {
    opt_text(row, column)?.ok_or_else(|| corrupt(format!("column {column} is NULL")))
}

pub(crate) fn opt_text(row: &AnyRow, column: &str) -> Result<Option<String>, DomainError> {
    match row.try_get::<Option<String>, _>(column) {
        Ok(value) => Ok(value),
        Err(sqlx::Error::ColumnDecode { .. }) => row
            .try_get::<Option<Vec<u8>>, _>(column)
            .map_err(corrupt)?
            .map(|bytes| String::from_utf8(bytes).map_err(corrupt))
            .transpose(),
        Err(other) => Err(corrupt(other)),
    }
}

fn int(row: &AnyRow, column: &str) -> Result<i64, DomainError> {
    row.try_get::<i64, _>(column).map_err(corrupt)
}

/// Rebuild an order from its main row, its line rows and its identifier rows.
pub(crate) fn decode_order(
    row: &AnyRow,
    lines: &[AnyRow],
    identifiers: &[AnyRow],
) -> Result<Order, DomainError> {
    let body: Body = serde_json::from_str(&text(row, "body")?).map_err(corrupt)?;
    let currency = Currency::parse(&text(row, "currency")?).map_err(corrupt)?;
    let main = OrderMain {
        id: OrderId::from_raw(int(row, "id")? as u64).map_err(corrupt)?,
        tenant: TenantId::parse(text(row, "tenant")?).map_err(corrupt)?,
        business_identity: BusinessIdentity::parse(text(row, "business_identity")?)
            .map_err(corrupt)?,
        order_type: OrderType::parse(text(row, "order_type")?).map_err(corrupt)?,
        status: StatusCode::parse(text(row, "status")?).map_err(corrupt)?,
        version: u64::try_from(int(row, "version")?).map_err(corrupt)?,
        buyer_id: PartyId::parse(text(row, "buyer_id")?).map_err(corrupt)?,
        merchant_id: opt_text(row, "merchant_id")?
            .map(PartyId::parse)
            .transpose()
            .map_err(corrupt)?,
        external_ref: opt_text(row, "external_ref")?,
        created_at: from_unix_ms(int(row, "created_at_ms")?)?,
        updated_at: from_unix_ms(int(row, "updated_at_ms")?)?,
        pay_deadline: row
            .try_get::<Option<i64>, _>("pay_deadline_ms")
            .map_err(corrupt)?
            .map(from_unix_ms)
            .transpose()?,
    };
    let mut decoded_lines = Vec::with_capacity(lines.len());
    for line in lines {
        decoded_lines.push(OrderLine {
            line_no: u32::try_from(int(line, "line_no")?).map_err(corrupt)?,
            sku: text(line, "sku")?,
            product_name: text(line, "product_name")?,
            quantity: u32::try_from(int(line, "quantity")?).map_err(corrupt)?,
            unit_price: Money::new(int(line, "unit_price")?, currency),
            unit_weight_grams: line
                .try_get::<Option<i64>, _>("unit_weight_grams")
                .map_err(corrupt)?
                .map(u32::try_from)
                .transpose()
                .map_err(corrupt)?,
            promotion_type: opt_text(line, "promotion_type")?,
            payable: Money::new(int(line, "payable")?, currency),
            ext: decode_ext(line)?,
        });
    }
    decoded_lines.sort_by_key(|l| l.line_no);
    let mut decoded_identifiers = Vec::with_capacity(identifiers.len());
    for identifier in identifiers {
        let domain: BusinessDomain =
            serde_json::from_value(serde_json::Value::String(text(identifier, "domain")?))
                .map_err(corrupt)?;
        let line_no = int(identifier, "line_no")?;
        decoded_identifiers.push(KvIdentifier {
            domain,
            key: text(identifier, "id_key")?,
            value: KvValue::from_stored(text(identifier, "id_value")?),
            line_no: if line_no == 0 {
                None
            } else {
                Some(u32::try_from(line_no).map_err(corrupt)?)
            },
        });
    }
    decoded_identifiers.sort();
    Ok(Order {
        main,
        lines: decoded_lines,
        logistics: body.logistics,
        marketing: body.marketing,
        finance: body.finance,
        channel: body.channel,
        parties: body.parties,
        operation: body.operation,
        extension: Extension {
            columns: decode_ext(row)?,
            identifiers: decoded_identifiers,
        },
    })
}
