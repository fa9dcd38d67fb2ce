//! The worked examples of `AFTERSALES.md` §1–§4 with their exact amounts, and the split's
//! properties: the units of a line sum to the line, and taking every unit of an order (in any
//! number of after-sales, some closed and applied again) refunds exactly what was paid.

use proptest::prelude::*;

use super::*;
use crate::money::Currency;
use crate::pricing::{DiscountInput, LineInput, price};

fn cny(minor: i64) -> Money {
    Money::new(minor, Currency::CNY)
}

fn line(line_no: u32, sku: &str, promotion: Option<&str>, price: i64, bought: u32) -> LineSplit {
    LineSplit {
        line_no,
        key: SplitKey {
            sku: sku.into(),
            promotion_type: promotion.map(str::to_owned),
            unit_price: price,
            unit_weight_grams: None,
        },
        bought,
        refundable: cny(price * i64::from(bought)),
    }
}

fn ask(sku: &str, promotion: Option<&str>, quantity: u32) -> RequestedLine {
    RequestedLine {
        sku: Some(sku.into()),
        promotion_type: promotion.map(str::to_owned),
        quantity,
        ..RequestedLine::default()
    }
}

/// Take what `resolved` asks from `split`, as the store does, updating `taken` (units and
/// amounts per line); the refund of the after-sale.
fn take_all(
    split: &RefundSplit,
    resolved: &BTreeMap<u32, u32>,
    taken: &mut BTreeMap<u32, (u32, i64)>,
) -> i64 {
    let mut total = 0;
    for (line_no, count) in resolved {
        let line = split.line(*line_no).unwrap();
        let (units, amount) = taken.get(line_no).copied().unwrap_or((0, 0));
        let refund = line.take(units, cny(amount), *count).unwrap().minor;
        taken.insert(*line_no, (units + count, amount + refund));
        total += refund;
    }
    total
}

fn units_of(taken: &BTreeMap<u32, (u32, i64)>) -> BTreeMap<u32, u32> {
    taken
        .iter()
        .map(|(line, (units, _))| (*line, *units))
        .collect()
}

#[test]
fn example_1_a_second_application_takes_the_next_unit_of_each_key() {
    // 3 regular A at 1,000 and 1 promotional A paid 600
    let mut promo = line(2, "A", Some("promo"), 800, 1);
    promo.refundable = cny(600);
    let split = RefundSplit {
        lines: vec![line(1, "A", None, 1_000, 3), promo],
    };
    let mut taken = BTreeMap::new();

    let first = split
        .resolve(&[ask("A", None, 1)], &units_of(&taken))
        .unwrap();
    assert_eq!(first, BTreeMap::from([(1, 1)]));
    assert_eq!(take_all(&split, &first, &mut taken), 1_000);

    let second = split
        .resolve(
            &[ask("A", None, 1), ask("A", Some("promo"), 1)],
            &units_of(&taken),
        )
        .unwrap();
    assert_eq!(second, BTreeMap::from([(1, 1), (2, 1)]));
    assert_eq!(take_all(&split, &second, &mut taken), 1_600);

    // only A/regular/2 is left
    let third = split
        .resolve(&[ask("A", None, 3)], &units_of(&taken))
        .unwrap_err();
    assert_eq!(third.field.as_deref(), Some("/lines/0/quantity"));
    assert_eq!(
        split
            .resolve(&[ask("A", None, 1)], &units_of(&taken))
            .unwrap(),
        BTreeMap::from([(1, 1)])
    );
}

#[test]
fn example_2_same_sku_and_promotion_at_different_prices_is_told_apart_by_price() {
    // bundle A+B sells A at 300, bundle A+C sells A at 200
    let split = RefundSplit {
        lines: vec![
            line(1, "A", Some("bundle"), 300, 1),
            line(2, "B", Some("bundle"), 500, 1),
            line(3, "A", Some("bundle"), 200, 1),
            line(4, "C", Some("bundle"), 400, 1),
        ],
    };
    // `sku + promotion type` alone is ambiguous: refused rather than refunding 300 twice
    let ambiguous = split
        .resolve(&[ask("A", Some("bundle"), 1)], &BTreeMap::new())
        .unwrap_err();
    assert_eq!(ambiguous.field.as_deref(), Some("/lines/0"));

    let mut taken = BTreeMap::new();
    let mut total = 0;
    for price in [300, 200] {
        let request = RequestedLine {
            unit_price: Some(price),
            ..ask("A", Some("bundle"), 1)
        };
        let resolved = split.resolve(&[request], &units_of(&taken)).unwrap();
        let refund = take_all(&split, &resolved, &mut taken);
        assert_eq!(refund, price);
        total += refund;
    }
    assert_eq!(total, 500, "the two A were paid 500 together");
}

#[test]
fn example_3_weighed_goods_refund_what_is_left_after_a_difference_refund() {
    // 500 g of apples at 2,000; 450 g found at picking, 200 refunded before delivery
    let mut apples = line(1, "apples", None, 2_000, 1);
    apples.key.unit_weight_grams = Some(500);
    let split = RefundSplit {
        lines: vec![apples],
    }
    .with_difference_refund(1, cny(200))
    .unwrap();
    let request = RequestedLine {
        unit_weight_grams: Some(500),
        ..ask("apples", None, 1)
    };
    let resolved = split.resolve(&[request], &BTreeMap::new()).unwrap();
    let mut taken = BTreeMap::new();
    assert_eq!(take_all(&split, &resolved, &mut taken), 1_800);
    assert_eq!(split.line(1).unwrap().units().unwrap(), vec![cny(1_800)]);
    assert!(
        RefundSplit {
            lines: vec![line(1, "apples", None, 2_000, 1)]
        }
        .with_difference_refund(1, cny(2_001))
        .is_err()
    );
}

#[test]
fn example_4_a_sku_named_twice_is_summed_and_refused_at_the_line_that_went_over() {
    // 1 × A at 1,000 and 2 × B at 1,500
    let split = RefundSplit {
        lines: vec![
            line(1, "skuA", Some("1"), 1_000, 1),
            line(2, "skuB", Some("1"), 1_500, 2),
        ],
    };
    let attack = [ask("skuA", Some("1"), 1), ask("skuA", Some("1"), 1)];
    let refused = split.resolve(&attack, &BTreeMap::new()).unwrap_err();
    assert_eq!(refused.field.as_deref(), Some("/lines/1/quantity"));
    assert!(refused.message.contains("2 unit(s)"), "{}", refused.message);

    // the same request split over two calls: the second sees the first's unit taken
    let first = split.resolve(&attack[..1], &BTreeMap::new()).unwrap();
    assert_eq!(first, BTreeMap::from([(1, 1)]));
    let second = split.resolve(&attack[1..], &first).unwrap_err();
    assert_eq!(second.field.as_deref(), Some("/lines/0/quantity"));
}

#[test]
fn requests_naming_no_line_or_nothing_are_refused_at_their_field() {
    let split = RefundSplit {
        lines: vec![line(1, "A", None, 100, 1)],
    };
    let none = BTreeMap::new();
    let cases: Vec<(Vec<RequestedLine>, &str)> = vec![
        (vec![], "/lines"),
        (vec![ask("A", None, 0)], "/lines/0/quantity"),
        (vec![ask("Z", None, 1)], "/lines/0"),
        (vec![ask("A", Some("promo"), 1)], "/lines/0"),
        (
            vec![RequestedLine {
                quantity: 1,
                ..RequestedLine::default()
            }],
            "/lines/0/sku",
        ),
        (
            vec![RequestedLine {
                line_no: Some(9),
                quantity: 1,
                ..RequestedLine::default()
            }],
            "/lines/0/line_no",
        ),
    ];
    for (request, field) in cases {
        let error = split.resolve(&request, &none).unwrap_err();
        assert_eq!(error.field.as_deref(), Some(field), "{request:?}");
    }
}

#[test]
fn lines_of_the_very_same_key_are_one_pool_taken_in_line_order() {
    let split = RefundSplit {
        lines: vec![line(1, "A", None, 100, 1), line(2, "A", None, 100, 2)],
    };
    let resolved = split
        .resolve(&[ask("A", None, 2)], &BTreeMap::from([(2, 1)]))
        .unwrap();
    assert_eq!(resolved, BTreeMap::from([(1, 1), (2, 1)]));
}

proptest! {
    #[test]
    fn the_units_of_a_line_sum_to_the_line_and_taking_them_one_by_one_gives_the_same_units(
        refundable in 0i64..10_000_000, bought in 1u32..40,
    ) {
        let mut split = line(1, "A", None, 1, bought);
        split.refundable = cny(refundable);
        let units = split.units().unwrap();
        prop_assert_eq!(units.len(), bought as usize);
        prop_assert_eq!(units.iter().map(|m| m.minor).sum::<i64>(), refundable);
        let mut taken_amount = 0;
        for (index, unit) in units.iter().enumerate() {
            let one = split.take(index as u32, cny(taken_amount), 1).unwrap();
            prop_assert_eq!(one, *unit);
            taken_amount += one.minor;
        }
        prop_assert!(split.take(bought, cny(taken_amount), 1).is_err());
    }

    /// Random orders priced with promotions, coupons and points; their units taken by a
    /// random sequence of after-sales, some of them closed (their units given back) and
    /// taken again: once every unit is taken, the refunds add up to what the buyer paid for
    /// the goods, and no after-sale ever took more than was left.
    #[test]
    fn refunding_every_unit_of_an_order_returns_exactly_what_was_paid(
        lines in prop::collection::vec((1i64..50_000, 1u32..8), 1..6),
        promotion in 0i64..1_000_000,
        coupon in 0i64..1_000_000,
        points in 0u64..1_000_000,
        plan in prop::collection::vec((0usize..6, 1u32..4, any::<bool>()), 0..40),
    ) {
        let inputs: Vec<LineInput> = lines
            .iter()
            .map(|(unit, quantity)| LineInput { unit_price: cny(*unit), quantity: *quantity })
            .collect();
        let goods: i64 = lines.iter().map(|(unit, quantity)| unit * i64::from(*quantity)).sum();
        let promotion = promotion % (goods / 2 + 1);
        let coupon = coupon % ((goods - promotion) / 2 + 1);
        let points = points % ((goods - promotion - coupon) as u64 + 1);
        let priced = price(
            Currency::CNY,
            &inputs,
            &[DiscountInput { amount: cny(promotion), lines: vec![0] }],
            &[cny(coupon)],
            points,
            cny(0),
        );
        // a promotion on line 0 larger than line 0 is refused by pricing: nothing to split
        let Ok(priced) = priced else { return Ok(()) };
        let split = RefundSplit {
            lines: lines
                .iter()
                .enumerate()
                .map(|(index, (unit, quantity))| LineSplit {
                    line_no: index as u32 + 1,
                    key: SplitKey {
                        sku: format!("sku-{index}"),
                        promotion_type: None,
                        unit_price: *unit,
                        unit_weight_grams: None,
                    },
                    bought: *quantity,
                    refundable: priced.line_payable[index],
                })
                .collect(),
        };
        let mut taken: BTreeMap<u32, (u32, i64)> = BTreeMap::new();
        let mut refunded = 0i64;
        for (pick, count, closed) in plan {
            let line = &split.lines[pick % split.lines.len()];
            let (units, amount) = taken.get(&line.line_no).copied().unwrap_or((0, 0));
            let Ok(refund) = line.take(units, cny(amount), count) else { continue };
            prop_assert!(refund.minor <= line.refundable.minor - amount);
            if closed {
                // closed before its refund: the units and amount go back
                continue;
            }
            taken.insert(line.line_no, (units + count, amount + refund.minor));
            refunded += refund.minor;
        }
        for line in &split.lines {
            let (units, amount) = taken.get(&line.line_no).copied().unwrap_or((0, 0));
            if units < line.bought {
                refunded += line.take(units, cny(amount), line.bought - units).unwrap().minor;
            }
        }
        prop_assert_eq!(refunded, priced.payable.minor);
        prop_assert_eq!(refunded, goods - priced.discount_total.minor);
    }
}
