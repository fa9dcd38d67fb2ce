//! The opaque page cursor shared by both adapters: the last hit's sort key and order id
//! (`search_after`), plus the sort it belongs to, as base64url JSON.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oc_model::search::{SearchSort, SortDirection, SortField};
use oc_model::{DomainError, DomainResult, OrderId};
use serde::{Deserialize, Serialize};

/// Where the previous page ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "s")]
    pub sort: SearchSort,
    /// The sort key of the last hit: epoch milliseconds for times, minor units for amounts.
    #[serde(rename = "k")]
    pub key: i64,
    #[serde(rename = "id")]
    pub order_id: OrderId,
}

impl Cursor {
    pub fn encode(&self) -> String {
        // serialising a struct of plain fields cannot fail
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Decode a cursor from a client; it must belong to `sort` (a cursor of another sort
    /// would skip or repeat orders).
    pub fn decode(text: &str, sort: SearchSort) -> DomainResult<Cursor> {
        let bad = || DomainError::invalid("/cursor", "malformed page cursor");
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if cursor.sort != sort {
            return Err(DomainError::invalid(
                "/cursor",
                "page cursor belongs to another sort order",
            ));
        }
        Ok(cursor)
    }
}

/// The one order of after-sale lists, newest first: the key is `created_at` and the
/// cursor's id the after-sale's (same shape, so one cursor type serves both).
pub(crate) const AFTER_SALE_SORT: SearchSort = SearchSort {
    field: SortField::CreatedAt,
    direction: SortDirection::Desc,
};

/// The name both adapters give the sort key field.
pub(crate) fn sort_field_name(field: SortField) -> &'static str {
    match field {
        SortField::CreatedAt => "created_at",
        SortField::UpdatedAt => "updated_at",
        SortField::Payable => "payable_minor",
    }
}

pub(crate) fn direction_name(direction: SortDirection) -> &'static str {
    match direction {
        SortDirection::Asc => "asc",
        SortDirection::Desc => "desc",
    }
}

/// Epoch milliseconds, rounded down (both adapters index times at millisecond precision).
pub(crate) fn epoch_millis(at: time::OffsetDateTime) -> i64 {
    oc_model::UnixMillis::floor(at).get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_sorts() {
        let sort = SearchSort::default();
        let cursor = Cursor {
            sort,
            key: 1_790_000_000_123,
            order_id: OrderId::from_raw(42).unwrap(),
        };
        let text = cursor.encode();
        assert_eq!(Cursor::decode(&text, sort).unwrap(), cursor);
        let other = SearchSort {
            field: SortField::Payable,
            direction: SortDirection::Asc,
        };
        assert_eq!(
            Cursor::decode(&text, other).unwrap_err().field.as_deref(),
            Some("/cursor")
        );
        assert!(Cursor::decode("not base64!", sort).is_err());
        assert!(Cursor::decode("e30", sort).is_err(), "{{}} is not a cursor");
    }

    #[test]
    fn millis_round_down() {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(-1).unwrap();
        assert_eq!(epoch_millis(at), -1);
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(1_999_999).unwrap();
        assert_eq!(epoch_millis(at), 1);
    }
}
