//! The reserved extension columns `ext_01` … `ext_NN` of `orders` and `order_lines`: each holds
//! the tagged JSON of a typed or sealed extension value; their meaning comes from tenant config.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use sqlx::any::AnyRow;

use oc_model::order::ExtColumns;
use oc_model::{ColumnIndex, DomainError, ExtValue, Protected, RESERVED_COLUMNS};

use super::opt_text;

/// `ext_01` … `ext_NN`.
pub(crate) static COLUMNS: LazyLock<Vec<String>> = LazyLock::new(|| {
    (1..=RESERVED_COLUMNS)
        .map(|index| format!("ext_{index:02}"))
        .collect()
});

/// Values for `ext_01..ext_NN`, `None` where the slot is empty.
pub(crate) fn encode(columns: &ExtColumns) -> Result<Vec<Option<String>>, DomainError> {
    let mut out = vec![None; usize::from(RESERVED_COLUMNS)];
    for (column, value) in columns {
        let text = serde_json::to_string(value)
            .map_err(|e| DomainError::internal(format!("encode {column}: {e}")))?;
        out[usize::from(column.get() - 1)] = Some(text);
    }
    Ok(out)
}

pub(crate) fn decode(row: &AnyRow) -> Result<ExtColumns, DomainError> {
    let mut columns = BTreeMap::new();
    for (index, name) in (1..=RESERVED_COLUMNS).zip(COLUMNS.iter()) {
        if let Some(raw) = opt_text(row, name)? {
            let value: Protected<ExtValue> = serde_json::from_str(&raw)
                .map_err(|e| DomainError::internal(format!("corrupt {name}: {e}")))?;
            columns.insert(ColumnIndex::new(index)?, value);
        }
    }
    Ok(columns)
}
