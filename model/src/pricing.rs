//! Price calculation: promotions and coupons spread over lines exactly, in minor units.
//!
//! Order of application (seed 003: "base price + promotions – coupons – points"):
//!
//! 1. each promotion is spread over its lines in proportion to their **gross** amount (what
//!    the lines cost before any discount), so a line's share of a promotion does not depend
//!    on which promotions came before it; a line an earlier promotion already took to zero
//!    gives its share to the promotion's other lines, again by gross;
//! 2. coupons are then spread over all lines in proportion to what remains;
//! 3. points last, one point redeeming one minor unit of the order's currency (100 points a
//!    yuan), spread over all lines in proportion to what remains.
//!
//! A discount larger than what its lines still hold is refused at its field. Every spread
//! uses [`Money::allocate`], so the line payables always add up to the order payable, to the
//! minor unit. Per-unit split amounts (what a refund of one unit gives back) come from
//! [`unit_split`].

use crate::error::{DomainError, DomainResult};
use crate::money::{Currency, Money};

/// The input of one line: unit price and quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineInput {
    pub unit_price: Money,
    pub quantity: u32,
}

/// A discount over a set of lines (0-based indexes; empty = every line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscountInput {
    pub amount: Money,
    pub lines: Vec<usize>,
}

/// The priced order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub line_gross: Vec<Money>,
    pub line_payable: Vec<Money>,
    pub goods_total: Money,
    pub discount_total: Money,
    pub payable: Money,
}

/// The money one point redeems: one minor unit.
pub fn points_value(points: u64, currency: Currency) -> DomainResult<Money> {
    i64::try_from(points)
        .map(|minor| Money::new(minor, currency))
        .map_err(|_| DomainError::invalid(POINTS, format!("at most {} points", i64::MAX)))
}

/// Where pricing names the points an order redeems.
pub const POINTS: &str = "/marketing/points_used";

/// Price an order: `points` are the points redeemed (see [`points_value`]). Errors name the
/// offending input by JSON Pointer.
pub fn price(
    currency: Currency,
    lines: &[LineInput],
    promotions: &[DiscountInput],
    coupons: &[Money],
    points: u64,
    freight: Money,
) -> DomainResult<Priced> {
    if lines.is_empty() {
        return Err(DomainError::invalid(
            "/lines",
            "an order needs at least one line",
        ));
    }
    let check = |path: String, money: Money| -> DomainResult<()> {
        if money.currency != currency {
            return Err(DomainError::invalid(
                path,
                format!(
                    "currency {} differs from the order's {currency}",
                    money.currency
                ),
            ));
        }
        if money.is_negative() {
            return Err(DomainError::invalid(path, "amount must not be negative"));
        }
        Ok(())
    };
    check("/freight".into(), freight)?;
    let mut line_gross = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        check(format!("/lines/{index}/unit_price"), line.unit_price)?;
        if line.quantity == 0 {
            return Err(DomainError::invalid(
                format!("/lines/{index}/quantity"),
                "quantity must be at least 1",
            ));
        }
        let gross = line
            .unit_price
            .checked_mul(i64::from(line.quantity))
            .map_err(|e| DomainError::invalid(format!("/lines/{index}"), e.to_string()))?;
        line_gross.push(gross);
    }
    let goods_total = Money::checked_sum(currency, &line_gross)
        .map_err(|e| DomainError::invalid("/lines", e.to_string()))?;
    let mut remaining: Vec<i64> = line_gross.iter().map(|m| m.minor).collect();

    for (index, promotion) in promotions.iter().enumerate() {
        let path = format!("/marketing/promotions/{index}/discount");
        check(path.clone(), promotion.amount)?;
        let targets: Vec<usize> = if promotion.lines.is_empty() {
            (0..lines.len()).collect()
        } else {
            promotion.lines.clone()
        };
        if let Some(bad) = targets.iter().find(|t| **t >= lines.len()) {
            return Err(DomainError::invalid(
                format!("/marketing/promotions/{index}/line_nos"),
                format!("line {} does not exist", bad + 1),
            ));
        }
        spread_by_gross(
            &mut remaining,
            &line_gross,
            &targets,
            promotion.amount,
            &path,
        )?;
    }
    let all: Vec<usize> = (0..lines.len()).collect();
    for (index, coupon) in coupons.iter().enumerate() {
        let path = format!("/marketing/coupons/{index}/discount");
        check(path.clone(), *coupon)?;
        spread(&mut remaining, &all, *coupon, &path)?;
    }
    spread(
        &mut remaining,
        &all,
        points_value(points, currency)?,
        POINTS,
    )?;

    let line_payable: Vec<Money> = remaining.iter().map(|m| Money::new(*m, currency)).collect();
    let after_discounts = Money::checked_sum(currency, &line_payable)
        .map_err(|e| DomainError::invalid("/lines", e.to_string()))?;
    let discount_total = goods_total
        .checked_sub(after_discounts)
        .map_err(|e| DomainError::invalid("/marketing", e.to_string()))?;
    let payable = after_discounts
        .checked_add(freight)
        .map_err(|e| DomainError::invalid("/freight", e.to_string()))?;
    Ok(Priced {
        line_gross,
        line_payable,
        goods_total,
        discount_total,
        payable,
    })
}

/// The distinct targets, in line order, and refuse an amount more than they still hold.
fn targets_holding(
    remaining: &[i64],
    targets: &[usize],
    amount: Money,
    path: &str,
) -> DomainResult<Vec<usize>> {
    let mut unique = targets.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let available: i128 = unique.iter().map(|t| i128::from(remaining[*t])).sum();
    if i128::from(amount.minor) > available {
        return Err(DomainError::invalid(
            path,
            "discount exceeds the amount of the lines it applies to",
        ));
    }
    Ok(unique)
}

/// Take `amount` off the `targets` lines in proportion to what each still has.
fn spread(remaining: &mut [i64], targets: &[usize], amount: Money, path: &str) -> DomainResult<()> {
    let unique = targets_holding(remaining, targets, amount, path)?;
    if amount.minor == 0 {
        return Ok(());
    }
    let weights: Vec<i64> = unique.iter().map(|t| remaining[*t]).collect();
    let shares = amount
        .allocate(&weights)
        .map_err(|e| DomainError::invalid(path, e.to_string()))?;
    for (target, share) in unique.iter().zip(shares) {
        remaining[*target] -= share.minor;
    }
    Ok(())
}

/// Take `amount` off the `targets` lines in proportion to their gross amounts. A line whose
/// share is more than it still holds gives what it holds, and the rest is spread again, by
/// gross, over the targets that still hold something; each round empties at least one line,
/// so this ends, and the amount was checked against what the targets hold.
fn spread_by_gross(
    remaining: &mut [i64],
    gross: &[Money],
    targets: &[usize],
    amount: Money,
    path: &str,
) -> DomainResult<()> {
    let unique = targets_holding(remaining, targets, amount, path)?;
    let mut left = amount;
    while left.minor > 0 {
        let holding: Vec<usize> = unique
            .iter()
            .copied()
            .filter(|t| remaining[*t] > 0)
            .collect();
        // a line holds something only if its gross is positive, so the weights are not all 0
        let weights: Vec<i64> = holding.iter().map(|t| gross[*t].minor).collect();
        let shares = left
            .allocate(&weights)
            .map_err(|e| DomainError::invalid(path, e.to_string()))?;
        let mut overflow = 0;
        for (target, share) in holding.iter().zip(shares) {
            let taken = share.minor.min(remaining[*target]);
            remaining[*target] -= taken;
            overflow += share.minor - taken;
        }
        left = Money::new(overflow, amount.currency);
    }
    Ok(())
}

/// Per-unit split of a line's payable amount: what refunding unit `k` gives back. Units that
/// absorb the remainder come first, so refunding units in order is deterministic and the
/// refunds of all units add up to the line payable exactly.
pub fn unit_split(line_payable: Money, quantity: u32) -> DomainResult<Vec<Money>> {
    line_payable
        .split_evenly(quantity as usize)
        .map_err(|e| DomainError::invalid("/quantity", e.to_string()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cny(minor: i64) -> Money {
        Money::new(minor, Currency::CNY)
    }

    fn line(price: i64, quantity: u32) -> LineInput {
        LineInput {
            unit_price: cny(price),
            quantity,
        }
    }

    #[test]
    fn seed_example_prices_exactly() {
        // two A at 3.00, one promoted A at 2.00, a 1.00 promotion on the first line, free freight
        let priced = price(
            Currency::CNY,
            &[line(300, 2), line(200, 1)],
            &[DiscountInput {
                amount: cny(100),
                lines: vec![0],
            }],
            &[],
            0,
            cny(0),
        )
        .unwrap();
        assert_eq!(priced.goods_total, cny(800));
        assert_eq!(priced.line_payable, vec![cny(500), cny(200)]);
        assert_eq!(priced.payable, cny(700));
        assert_eq!(
            unit_split(priced.line_payable[0], 2).unwrap(),
            vec![cny(250), cny(250)]
        );
        assert_eq!(
            unit_split(cny(100), 3).unwrap(),
            vec![cny(34), cny(33), cny(33)]
        );
    }

    #[test]
    fn refuses_bad_discounts_with_paths() {
        let err = price(Currency::CNY, &[line(100, 1)], &[], &[cny(101)], 0, cny(0)).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("/marketing/coupons/0/discount"));
        let err = price(
            Currency::CNY,
            &[line(100, 1)],
            &[DiscountInput {
                amount: cny(1),
                lines: vec![3],
            }],
            &[],
            0,
            cny(0),
        )
        .unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("/marketing/promotions/0/line_nos")
        );
        let err = price(Currency::CNY, &[line(100, 0)], &[], &[], 0, cny(0)).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("/lines/0/quantity"));
        let err = price(
            Currency::CNY,
            &[LineInput {
                unit_price: Money::new(1, Currency::USD),
                quantity: 1,
            }],
            &[],
            &[],
            0,
            cny(0),
        )
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("/lines/0/unit_price"));
        let err = price(Currency::CNY, &[line(i64::MAX, 2)], &[], &[], 0, cny(0)).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("/lines/0"));
    }

    proptest! {
        #[test]
        fn priced_amounts_always_add_up(
            lines in proptest::collection::vec((0i64..1_000_000, 1u32..50), 1..12),
            promotions in proptest::collection::vec((0i64..200_000, proptest::collection::vec(0usize..12, 0..4)), 0..4),
            coupons in proptest::collection::vec(0i64..100_000, 0..3),
            points in prop_oneof![Just(0u64), 0u64..2_000_000, Just(u64::MAX)],
            freight in 0i64..10_000,
        ) {
            let lines: Vec<LineInput> = lines.into_iter().map(|(p, q)| line(p, q)).collect();
            let promotions: Vec<DiscountInput> = promotions
                .into_iter()
                .map(|(a, targets)| DiscountInput { amount: cny(a), lines: targets.into_iter().filter(|t| *t < lines.len()).collect() })
                .collect();
            let coupons: Vec<Money> = coupons.into_iter().map(cny).collect();
            match price(Currency::CNY, &lines, &promotions, &coupons, points, cny(freight)) {
                Ok(priced) => {
                    let gross: i64 = priced.line_gross.iter().map(|m| m.minor).sum();
                    let payable: i64 = priced.line_payable.iter().map(|m| m.minor).sum();
                    prop_assert_eq!(gross, priced.goods_total.minor);
                    prop_assert_eq!(payable + freight, priced.payable.minor);
                    prop_assert_eq!(priced.goods_total.minor - priced.discount_total.minor + freight, priced.payable.minor);
                    // seed 003: base price + promotions - coupons - points (+ freight)
                    let requested: i64 = promotions.iter().map(|p| p.amount.minor).sum::<i64>()
                        + coupons.iter().map(|c| c.minor).sum::<i64>()
                        + i64::try_from(points).unwrap();
                    prop_assert_eq!(priced.discount_total.minor, requested, "every discount and the points are taken in full");
                    prop_assert_eq!(priced.payable.minor, priced.goods_total.minor - requested + freight);
                    for (g, p) in priced.line_gross.iter().zip(&priced.line_payable) {
                        prop_assert!(p.minor >= 0 && p.minor <= g.minor);
                    }
                    for (p, l) in priced.line_payable.iter().zip(&lines) {
                        let units = unit_split(*p, l.quantity).unwrap();
                        prop_assert_eq!(units.iter().map(|u| u.minor).sum::<i64>(), p.minor);
                    }
                }
                Err(error) => {
                    prop_assert!(error.field.is_some(), "pricing errors name a field");
                    // the only refusals of in-range amounts: discounts or points beyond what
                    // the lines hold
                    let total: i128 = lines.iter().map(|l| i128::from(l.unit_price.minor) * i128::from(l.quantity)).sum();
                    let asked: i128 = promotions.iter().map(|p| i128::from(p.amount.minor)).sum::<i128>()
                        + coupons.iter().map(|c| i128::from(c.minor)).sum::<i128>()
                        + i128::from(points);
                    prop_assert!(asked > 0 && (asked > total || promotions.iter().any(|p| !p.lines.is_empty())), "{:?} refused though {} <= {}", error, asked, total);
                }
            }
        }

        /// Each promotion is spread by the lines' gross amounts: as long as no line was
        /// taken to zero (the only case where a share moves to other lines), a line's
        /// promotion discount is within one minor unit per promotion of its exact gross share.
        #[test]
        fn promotions_are_spread_by_gross_amount(
            lines in proptest::collection::vec((1i64..100_000, 1u32..5), 1..6),
            promotions in proptest::collection::vec((0i64..50_000, proptest::collection::vec(0usize..6, 0..4)), 1..5),
        ) {
            let lines: Vec<LineInput> = lines.into_iter().map(|(p, q)| line(p, q)).collect();
            let promotions: Vec<DiscountInput> = promotions
                .into_iter()
                .map(|(a, targets)| {
                    let mut targets: Vec<usize> = targets.into_iter().filter(|t| *t < lines.len()).collect();
                    targets.sort_unstable();
                    targets.dedup();
                    DiscountInput { amount: cny(a), lines: targets }
                })
                .collect();
            let Ok(priced) = price(Currency::CNY, &lines, &promotions, &[], 0, cny(0)) else {
                return Ok(());
            };
            prop_assume!(priced.line_payable.iter().all(|p| p.minor > 0));
            for (index, (gross, payable)) in priced.line_gross.iter().zip(&priced.line_payable).enumerate() {
                let mut exact = 0f64;
                for promotion in &promotions {
                    let targets: Vec<usize> = if promotion.lines.is_empty() { (0..lines.len()).collect() } else { promotion.lines.clone() };
                    if targets.contains(&index) {
                        let weight: i64 = targets.iter().map(|t| priced.line_gross[*t].minor).sum();
                        exact += promotion.amount.minor as f64 * gross.minor as f64 / weight as f64;
                    }
                }
                let taken = (gross.minor - payable.minor) as f64;
                prop_assert!((taken - exact).abs() < promotions.len() as f64 + 1e-6,
                    "line {} gave {} of promotions, its gross share is {}", index, taken, exact);
            }
        }
    }

    #[test]
    fn promotions_spread_by_gross_and_points_are_deducted() {
        // lines of 1.00 and 3.00; 0.50 off the first line, then 1.00 off both: by gross the
        // second promotion takes 0.25 and 0.75 (by what remained it would be 0.14 and 0.86)
        let promotions = [
            DiscountInput {
                amount: cny(50),
                lines: vec![0],
            },
            DiscountInput {
                amount: cny(100),
                lines: vec![],
            },
        ];
        let lines = [line(100, 1), line(300, 1)];
        let priced = price(Currency::CNY, &lines, &promotions, &[], 0, cny(0)).unwrap();
        assert_eq!(priced.line_payable, vec![cny(25), cny(225)]);
        assert_eq!(priced.payable, cny(250));
        // 120 points redeem 1.20, after the promotions, by what remains (25 : 225)
        let priced = price(Currency::CNY, &lines, &promotions, &[], 120, cny(10)).unwrap();
        assert_eq!(priced.line_payable, vec![cny(13), cny(117)]);
        assert_eq!(priced.discount_total, cny(270));
        assert_eq!(priced.payable, cny(140));
        // a line an earlier promotion emptied passes its gross share on to the others
        let emptied = [
            DiscountInput {
                amount: cny(100),
                lines: vec![0],
            },
            DiscountInput {
                amount: cny(100),
                lines: vec![],
            },
        ];
        let priced = price(Currency::CNY, &lines, &emptied, &[], 0, cny(0)).unwrap();
        assert_eq!(priced.line_payable, vec![cny(0), cny(200)]);
        // more points than the lines hold, or than any amount can be, are refused at the field
        let err = price(Currency::CNY, &lines, &promotions, &[], 251, cny(0)).unwrap_err();
        assert_eq!(err.field.as_deref(), Some(POINTS));
        let err = price(Currency::CNY, &lines, &[], &[], u64::MAX, cny(0)).unwrap_err();
        assert_eq!(err.field.as_deref(), Some(POINTS));
        assert_eq!(
            price(Currency::CNY, &lines, &[], &[], 400, cny(0))
                .unwrap()
                .payable,
            cny(0)
        );
    }
}
