//! Per-unit refund split (issue #20 item 3, seed 001 "拆分数据"): what refunding each unit of
//! an order gives back, after promotions, coupons and points.
//!
//! Pricing spreads every discount over the lines once, at placement, and stores each line's
//! `payable` ([`crate::pricing`]); the split here only divides a stored line amount over its
//! units ([`crate::pricing::unit_split`], larger shares first), so a refund never recomputes a
//! promotion. A line's **refundable** amount is its payable less what a price-difference refund
//! (weighed goods found light at picking) already gave back.
//!
//! Units are found by the seed's key `sku + promotion type`, extended by the unit price (two
//! bundles selling A at different prices) and the unit weight (weighed goods): [`SplitKey`]
//! carries all four, and a request names as much of it as it needs to be unambiguous (or the
//! line number).
//!
//! Taking units: the units of a line are interchangeable except for their amount, and an
//! after-sale that is closed gives its units back, so "the next unit index" is not stable. The
//! split is therefore kept as two running totals per line: units taken (held by live
//! after-sales or already returned) and the amount they took. Taking `n` more units takes the
//! first `n` shares of the *rest* split evenly over the units left ([`LineSplit::take`]).
//! Without releases this is exactly unit `taken`, `taken + 1`, … of the stored split (an even
//! split, larger shares first, is stable under taking a prefix); with releases it stays
//! exact: whatever the order of applications and closures, taking every unit takes the line's
//! refundable amount to the minor unit, never more.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};
use crate::money::Money;
use crate::order::Order;

/// The key a unit's split is found by: `sku + promotion type + unit price + unit weight`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SplitKey {
    pub sku: String,
    /// `None`: sold at the regular price.
    pub promotion_type: Option<String>,
    pub unit_price: i64,
    pub unit_weight_grams: Option<u32>,
}

impl fmt::Display for SplitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.sku,
            self.promotion_type.as_deref().unwrap_or("regular"),
            self.unit_price
        )?;
        if let Some(grams) = self.unit_weight_grams {
            write!(f, "/{grams}g")?;
        }
        Ok(())
    }
}

/// One line's split: its key, the units bought and the amount refunding all of them gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineSplit {
    pub line_no: u32,
    pub key: SplitKey,
    pub bought: u32,
    /// The line's payable less price-difference refunds: what its units refund together.
    pub refundable: Money,
}

impl LineSplit {
    /// The refund of each unit, in unit order (`sku/promotion/0`, `/1`, …).
    pub fn units(&self) -> DomainResult<Vec<Money>> {
        crate::pricing::unit_split(self.refundable, self.bought)
    }

    /// What taking `count` more units refunds when `taken` units worth `taken_amount` are
    /// already held or returned: the first `count` shares of the rest, split evenly over the
    /// units left. Refused when fewer than `count` units are left.
    pub fn take(&self, taken: u32, taken_amount: Money, count: u32) -> DomainResult<Money> {
        let left = self.bought.saturating_sub(taken);
        if count == 0 || count > left {
            return Err(DomainError::invalid(
                "/quantity",
                format!(
                    "line {} ({}) has {left} unit(s) left, {count} asked",
                    self.line_no, self.key
                ),
            ));
        }
        let rest = self
            .refundable
            .checked_sub(taken_amount)
            .map_err(|e| DomainError::internal(e.to_string()))?;
        if rest.is_negative() {
            return Err(DomainError::internal(format!(
                "line {} took more than its refundable amount",
                self.line_no
            )));
        }
        let shares = crate::pricing::unit_split(rest, left)?;
        Money::checked_sum(rest.currency, &shares[..count as usize])
            .map_err(|e| DomainError::internal(e.to_string()))
    }
}

/// The split of a whole order, line by line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundSplit {
    pub lines: Vec<LineSplit>,
}

/// One line of an application as the caller names it: by line number, or by the split key
/// (the SKU and promotion type, plus the unit price and weight where those alone are
/// ambiguous).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_no: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_weight_grams: Option<u32>,
    pub quantity: u32,
}

impl RefundSplit {
    /// The split of an order as stored at placement: each line's payable over its units.
    pub fn of_order(order: &Order) -> RefundSplit {
        RefundSplit {
            lines: order
                .lines
                .iter()
                .map(|line| LineSplit {
                    line_no: line.line_no,
                    key: SplitKey {
                        sku: line.sku.clone(),
                        promotion_type: line.promotion_type.clone(),
                        unit_price: line.unit_price.minor,
                        unit_weight_grams: line.unit_weight_grams,
                    },
                    bought: line.quantity,
                    refundable: line.payable,
                })
                .collect(),
        }
    }

    /// Lower a line's refundable amount by a price-difference refund already paid to the
    /// buyer (seed 001: weighed goods found light at picking).
    pub fn with_difference_refund(mut self, line_no: u32, amount: Money) -> DomainResult<Self> {
        let line = self
            .lines
            .iter_mut()
            .find(|line| line.line_no == line_no)
            .ok_or_else(|| DomainError::invalid("/line_no", format!("no line {line_no}")))?;
        let rest = line
            .refundable
            .checked_sub(amount)
            .map_err(|e| DomainError::invalid("/amount", e.to_string()))?;
        if rest.is_negative() || amount.is_negative() {
            return Err(DomainError::invalid(
                "/amount",
                "a difference refund is between zero and the line's refundable amount",
            ));
        }
        line.refundable = rest;
        Ok(self)
    }

    pub fn line(&self, line_no: u32) -> Option<&LineSplit> {
        self.lines.iter().find(|line| line.line_no == line_no)
    }

    /// Resolve an application's lines to order lines and quantities, summing every request
    /// line that falls on the same order line (the seed's duplicate `skuA` attack) and adding
    /// what live and earlier after-sales took (`taken`, units by line number): a line asked
    /// for more than is left is refused at the request line that went over, by JSON Pointer
    /// (`/lines/{i}/quantity`). The answer is by line number, in line order.
    pub fn resolve(
        &self,
        requested: &[RequestedLine],
        taken: &BTreeMap<u32, u32>,
    ) -> DomainResult<BTreeMap<u32, u32>> {
        self.resolve_attributed(requested, taken)
            .map(|(asked, _)| asked)
    }

    /// [`RefundSplit::resolve`], and for each order line the index of the last request line
    /// that took units of it: the line a later refusal (the store's conditional update losing
    /// a race) names.
    pub fn resolve_attributed(
        &self,
        requested: &[RequestedLine],
        taken: &BTreeMap<u32, u32>,
    ) -> DomainResult<(BTreeMap<u32, u32>, BTreeMap<u32, usize>)> {
        if requested.is_empty() {
            return Err(DomainError::invalid(
                "/lines",
                "an after-sale needs at least one line",
            ));
        }
        let mut asked: BTreeMap<u32, u32> = BTreeMap::new();
        let mut asked_by: BTreeMap<u32, usize> = BTreeMap::new();
        for (index, request) in requested.iter().enumerate() {
            let path = format!("/lines/{index}");
            if request.quantity == 0 {
                return Err(DomainError::invalid(
                    format!("{path}/quantity"),
                    "quantity must be at least 1",
                ));
            }
            let candidates = self.candidates(request, &path)?;
            // several order lines with the very same key: their units are one pool, taken in
            // line order
            let mut wanted = request.quantity;
            for line in &candidates {
                let used = taken.get(&line.line_no).copied().unwrap_or(0)
                    + asked.get(&line.line_no).copied().unwrap_or(0);
                let free = line.bought.saturating_sub(used);
                let share = wanted.min(free);
                if share > 0 {
                    *asked.entry(line.line_no).or_default() += share;
                    asked_by.insert(line.line_no, index);
                    wanted -= share;
                }
                if wanted == 0 {
                    break;
                }
            }
            if wanted > 0 {
                let bought: u32 = candidates.iter().map(|line| line.bought).sum();
                let held: u32 = candidates
                    .iter()
                    .map(|line| {
                        taken.get(&line.line_no).copied().unwrap_or(0)
                            + asked.get(&line.line_no).copied().unwrap_or(0)
                    })
                    .sum();
                return Err(DomainError::invalid(
                    format!("{path}/quantity"),
                    format!(
                        "{} unit(s) of {} asked by this line, the lines before it and earlier after-sales; {bought} bought",
                        held + wanted,
                        candidates[0].key
                    ),
                ));
            }
        }
        Ok((asked, asked_by))
    }

    /// The order lines a request line names: all of one key, or refused (none, or several
    /// keys: the caller must add the price, the weight or the line number).
    fn candidates(&self, request: &RequestedLine, path: &str) -> DomainResult<Vec<&LineSplit>> {
        if let Some(line_no) = request.line_no {
            let line = self.line(line_no).ok_or_else(|| {
                DomainError::invalid(format!("{path}/line_no"), format!("no line {line_no}"))
            })?;
            if request.sku.as_ref().is_some_and(|sku| *sku != line.key.sku) {
                return Err(DomainError::invalid(
                    format!("{path}/sku"),
                    format!("line {line_no} is not of this sku"),
                ));
            }
            return Ok(vec![line]);
        }
        let Some(sku) = &request.sku else {
            return Err(DomainError::invalid(
                format!("{path}/sku"),
                "name the line by line_no or sku",
            ));
        };
        let matching: Vec<&LineSplit> = self
            .lines
            .iter()
            .filter(|line| {
                line.key.sku == *sku
                    && line.key.promotion_type == request.promotion_type
                    && request.unit_price.is_none_or(|p| p == line.key.unit_price)
                    && request
                        .unit_weight_grams
                        .is_none_or(|g| Some(g) == line.key.unit_weight_grams)
            })
            .collect();
        let Some(first) = matching.first() else {
            return Err(DomainError::invalid(
                path.to_owned(),
                format!(
                    "the order has no {sku} of promotion type {}",
                    request.promotion_type.as_deref().unwrap_or("regular")
                ),
            ));
        };
        if matching.iter().any(|line| line.key != first.key) {
            return Err(DomainError::invalid(
                path.to_owned(),
                format!(
                    "{sku} is on lines of different prices or weights: name unit_price, unit_weight_grams or line_no"
                ),
            ));
        }
        Ok(matching)
    }
}

#[cfg(test)]
mod tests;
