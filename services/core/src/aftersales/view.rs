//! What the after-sale use cases answer, as the caller's role may see it.
//!
//! An after-sale's personal data is rendered by the code that renders an order's
//! ([`crate::orders`]' renderer), by the caller's `pii` view: the free-text reasons (the
//! applicant's and each history entry's: a buyer writes what they like there, phone numbers
//! included) like a sealed order remark (in full, masked keeping the first and last
//! character, or left out), and, on a single read of a type that sends goods back, the pickup
//! contact (the order's receiver, where the carrier collects the goods) like the order's
//! parties (in full, masked, or withheld).

use serde::Serialize;

use oc_model::aftersale::{AfterSale, AfterSaleHistoryEntry, AfterSaleRefund};
use oc_model::sealing::PartyRole;
use oc_model::{DomainResult, Order};

use crate::caller::Caller;
use crate::orders::output::PartyView;
use crate::orders::{Renderer, free_text};
use crate::sealing::Sealer;

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
    /// Where the goods are collected (the order's receiver), for a type that sends goods
    /// back, on a single read: by the caller's role, like the order's parties.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pickup_contact: Option<PartyView>,
}

impl AfterSaleView {
    /// The view as stored: every reason in the clear. Pass it through [`Self::shown_to`]
    /// before it leaves the core.
    pub fn of(
        after_sale: AfterSale,
        history: Vec<AfterSaleHistoryEntry>,
        refund: Option<AfterSaleRefund>,
    ) -> AfterSaleView {
        AfterSaleView {
            after_sale,
            history,
            refund,
            pickup_contact: None,
        }
    }

    /// The view as `caller`'s role may see it: each free-text reason in full, masked or left
    /// out (lists call this too: it needs no order).
    pub fn shown_to(mut self, caller: &Caller) -> AfterSaleView {
        let shown = |reason: &mut Option<String>| {
            *reason = reason
                .as_deref()
                .and_then(|text| free_text(caller.pii, text));
        };
        shown(&mut self.after_sale.reason);
        for entry in &mut self.history {
            shown(&mut entry.reason);
        }
        self
    }

    /// Add the pickup contact of a type that sends goods back: the order's receiver, opened
    /// and rendered for `caller` by the order renderer.
    pub(crate) fn with_pickup_contact(
        mut self,
        sealer: &Sealer,
        caller: &Caller,
        order: &Order,
    ) -> DomainResult<AfterSaleView> {
        if self.after_sale.kind.returns_goods() {
            self.pickup_contact = Renderer { sealer, caller }.party_view(
                order,
                PartyRole::Receiver,
                &order.parties.receiver,
            )?;
        }
        Ok(self)
    }
}
