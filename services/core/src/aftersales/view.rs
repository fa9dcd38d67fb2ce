//! What the after-sale use cases answer.

use serde::Serialize;

use oc_model::aftersale::{AfterSale, AfterSaleHistoryEntry, AfterSaleRefund};

/// An after-sale as the API shows it: the record, its status history (on a single read) and
/// its refund, if one was issued.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AfterSaleView {
    #[serde(flatten)]
    pub after_sale: AfterSale,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<AfterSaleHistoryEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund: Option<AfterSaleRefund>,
}

impl AfterSaleView {
    pub fn of(
        after_sale: AfterSale,
        history: Vec<AfterSaleHistoryEntry>,
        refund: Option<AfterSaleRefund>,
    ) -> AfterSaleView {
        AfterSaleView {
            after_sale,
            history,
            refund,
        }
    }
}
