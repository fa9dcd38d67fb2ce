//! Realistic generated traffic for the example tenants of `tenant-config/examples`: orders
//! of every configured business identity and order type (extension fields per the tenant's
//! configured fields, 1–5 lines, promotions and coupons that fit the line amounts so the
//! pricing validates), buyers drawn from a Zipf-shaped hot set, and search queries with the
//! filters a business line uses.
//!
//! Everything is deterministic in the request number `n`, so a run can be repeated.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

/// The example business-line key of tenant `retail` (a public test credential).
pub const RETAIL_KEY: &str = "oc_test_retail_bl_0001_e4b1279c5a3f0d86b7e9";
/// The example business-line key of tenant `express` (a public test credential).
pub const EXPRESS_KEY: &str = "oc_test_express_bl_0001_7c1f4e9a2b6d8035e1a4";

/// The order shapes configured in the example tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// retail / retail / standard
    RetailStandard,
    /// retail / retail / presale
    RetailPresale,
    /// express / cold-chain / standard
    ColdChain,
    /// express / express / standard
    Parcel,
    /// express / express / return
    ParcelReturn,
}

/// One example tenant: its business-line key and its mix of order shapes (weights in %).
#[derive(Debug, Clone, Copy)]
pub struct TenantProfile {
    pub name: &'static str,
    pub key: &'static str,
    pub shapes: &'static [(u32, Shape)],
    /// Share of this tenant in the multi-tenant scenario, in %.
    pub traffic: u32,
}

/// The example tenants. Retail is the busier business line.
pub const TENANTS: &[TenantProfile] = &[
    TenantProfile {
        name: "retail",
        key: RETAIL_KEY,
        shapes: &[(85, Shape::RetailStandard), (15, Shape::RetailPresale)],
        traffic: 65,
    },
    TenantProfile {
        name: "express",
        key: EXPRESS_KEY,
        shapes: &[
            (60, Shape::Parcel),
            (30, Shape::ColdChain),
            (10, Shape::ParcelReturn),
        ],
        traffic: 35,
    },
];

/// The profile called `name` (`retail` or `express`).
pub fn tenant(name: &str) -> Option<&'static TenantProfile> {
    TENANTS.iter().find(|t| t.name == name)
}

/// The tenant of multi-tenant request `n`, by the tenants' traffic shares.
pub fn tenant_of_request(n: u64) -> &'static TenantProfile {
    let mut rng = rng(n, 0x7e4a);
    let total: u32 = TENANTS.iter().map(|t| t.traffic).sum();
    let mut pick = rng.gen_range(0..total);
    for tenant in TENANTS {
        if pick < tenant.traffic {
            return tenant;
        }
        pick -= tenant.traffic;
    }
    &TENANTS[0]
}

fn rng(n: u64, salt: u64) -> StdRng {
    StdRng::seed_from_u64(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt)
}

/// Zipf-distributed ranks `0..n` (rank 0 the most frequent): `P(k) ∝ 1 / (k + 1)^s`.
#[derive(Debug, Clone)]
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut total = 0.0;
        let cumulative = (0..n.max(1))
            .map(|k| {
                total += 1.0 / ((k + 1) as f64).powf(s);
                total
            })
            .collect::<Vec<_>>();
        let cumulative = cumulative.iter().map(|c| c / total).collect();
        Zipf { cumulative }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.r#gen();
        self.cumulative
            .partition_point(|c| *c < u)
            .min(self.cumulative.len() - 1)
    }
}

/// Buyers: 80% of orders come from a hot set of 1,000 buyers with Zipf(1.1) popularity, the
/// rest uniformly from 100,000 others. A buyer keeps one phone number and member level.
#[derive(Debug, Clone)]
pub struct Buyers {
    hot: Zipf,
}

impl Default for Buyers {
    fn default() -> Self {
        Buyers {
            hot: Zipf::new(HOT_BUYERS, 1.1),
        }
    }
}

const HOT_BUYERS: usize = 1_000;
const COLD_BUYERS: u64 = 100_000;

impl Buyers {
    /// A buyer number; below [`HOT_BUYERS`] for the hot set.
    pub fn pick(&self, rng: &mut impl Rng) -> u64 {
        if rng.gen_bool(0.8) {
            self.hot.sample(rng) as u64
        } else {
            HOT_BUYERS as u64 + rng.gen_range(0..COLD_BUYERS)
        }
    }

    /// A hot buyer, as a business line looks one up.
    pub fn pick_hot(&self, rng: &mut impl Rng) -> u64 {
        self.hot.sample(rng) as u64
    }
}

pub fn buyer_id(buyer: u64) -> String {
    format!("buyer-{buyer}")
}

/// The buyer's phone: fixed per buyer, so a receiver-phone search finds their orders.
pub fn buyer_phone(buyer: u64) -> String {
    format!("139{:08}", (buyer * 7_919) % 100_000_000)
}

fn member_level(buyer: u64) -> &'static str {
    [
        "regular", "regular", "regular", "silver", "silver", "gold", "platinum",
    ][(buyer % 7) as usize]
}

/// Orders and queries for the example tenants.
#[derive(Debug, Clone, Default)]
pub struct Generator {
    pub buyers: Buyers,
}

fn pick_shape(tenant: &TenantProfile, rng: &mut impl Rng) -> Shape {
    let total: u32 = tenant.shapes.iter().map(|(w, _)| w).sum();
    let mut pick = rng.gen_range(0..total);
    for (weight, shape) in tenant.shapes {
        if pick < *weight {
            return *shape;
        }
        pick -= weight;
    }
    tenant.shapes[0].1
}

const RETAIL_PRODUCTS: &[(&str, i64)] = &[
    ("T恤 纯棉", 9_900),
    ("运动鞋", 45_900),
    ("保温杯 500ml", 12_800),
    ("蓝牙耳机", 29_900),
    ("Phone case", 3_900),
    ("Wool scarf", 15_900),
    ("咖啡豆 1kg", 16_800),
    ("Desk lamp", 21_900),
];

const COLD_PRODUCTS: &[(&str, i64, &str)] = &[
    ("流感疫苗", 12_000, "chilled"),
    ("胰岛素注射液", 8_600, "chilled"),
    ("冷冻虾仁 2kg", 15_800, "frozen"),
    ("鲜牛奶 12瓶", 9_600, "chilled"),
    ("抗生素 片剂", 4_200, "controlled_room"),
];

fn date_in_days(days: i64) -> String {
    // a fixed base keeps the generator deterministic; 2026-12-01 plus `days`
    let base = 20_788; // days from 1970-01-01 to 2026-12-01
    civil_from_days(base + days)
}

/// Days since 1970-01-01 → `YYYY-MM-DD` (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> String {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{:02}-{:02}", y + i64::from(m <= 2), m, d)
}

impl Generator {
    /// Order number `n` of `tenant` (a create request body), and its buyer number.
    pub fn order(&self, tenant: &TenantProfile, n: u64) -> (Value, u64) {
        let mut rng = rng(n, 0x0dde);
        let buyer = self.buyers.pick(&mut rng);
        let shape = pick_shape(tenant, &mut rng);
        (self.order_of_shape(shape, buyer, n, &mut rng), buyer)
    }

    fn order_of_shape(&self, shape: Shape, buyer: u64, n: u64, rng: &mut StdRng) -> Value {
        let line_count = rng.gen_range(1..=5usize);
        let receiver = json!({
            "name": (["李雷", "韩梅梅", "Wang Fang", "Zhang Wei"][(buyer % 4) as usize]),
            "phone": buyer_phone(buyer),
            "address": format!("上海市浦东新区世纪大道{}号 {}室", buyer % 2000 + 1, buyer % 30 + 101),
            "region": "310115",
        });
        let mut lines = Vec::with_capacity(line_count);
        let mut gross = Vec::with_capacity(line_count);
        let mut extension = Map::new();
        let (identity, order_type) = match shape {
            Shape::RetailStandard | Shape::RetailPresale => {
                for _ in 0..line_count {
                    let (name, price) = RETAIL_PRODUCTS[rng.gen_range(0..RETAIL_PRODUCTS.len())];
                    let quantity = rng.gen_range(1..=3u32);
                    let mut line = json!({
                        "sku": format!("SKU-{:05}", rng.gen_range(0..5_000)),
                        "product_name": name, "quantity": quantity, "unit_price_minor": price,
                    });
                    if shape == Shape::RetailStandard {
                        let mut ext = Map::new();
                        if rng.gen_bool(0.4) {
                            ext.insert(
                                "warranty_months".into(),
                                json!(([0, 6, 12, 24, 36][rng.gen_range(0..5)])),
                            );
                        }
                        if rng.gen_bool(0.1) {
                            ext.insert(
                                "engraving_text".into(),
                                json!(format!("For {}", buyer % 1000)),
                            );
                        }
                        line["extension"] = Value::Object(ext);
                    }
                    gross.push(price * i64::from(quantity));
                    lines.push(line);
                }
                if shape == Shape::RetailStandard {
                    extension.insert("member_level".into(), json!(member_level(buyer)));
                    extension.insert("buyer_phone_tail".into(), json!(&buyer_phone(buyer)[7..]));
                    if rng.gen_bool(0.2) {
                        extension.insert("gift_message".into(), json!("生日快乐! Happy birthday"));
                    }
                    if rng.gen_bool(0.3) {
                        extension.insert("invoice_title".into(), json!("上海某某科技有限公司"));
                    }
                    if rng.gen_bool(0.5) {
                        extension.insert(
                            "campaign_id".into(),
                            json!(format!("CAMP-{}", rng.gen_range(1..=20))),
                        );
                    }
                    ("retail", "standard")
                } else {
                    extension.insert(
                        "deposit_amount".into(),
                        json!(format!("{}.00", rng.gen_range(10..200))),
                    );
                    extension.insert(
                        "final_payment_due".into(),
                        json!(date_in_days(rng.gen_range(5..40))),
                    );
                    extension.insert("member_level".into(), json!(member_level(buyer)));
                    extension.insert(
                        "presale_batch".into(),
                        json!(format!("PS-2026-{:02}", rng.gen_range(1..=12))),
                    );
                    ("retail", "presale")
                }
            }
            Shape::ColdChain => {
                for _ in 0..line_count {
                    let (name, price, band) = COLD_PRODUCTS[rng.gen_range(0..COLD_PRODUCTS.len())];
                    let quantity = rng.gen_range(1..=20u32);
                    let mut ext = json!({"storage_band": band, "batch_no": format!("B{}", 100_000 + n % 900_000)});
                    if rng.gen_bool(0.7) {
                        ext["expiry_date"] = json!(date_in_days(rng.gen_range(30..400)));
                    }
                    lines.push(json!({
                        "sku": format!("COLD-{:04}", rng.gen_range(0..800)), "product_name": name,
                        "quantity": quantity, "unit_price_minor": price,
                        "unit_weight_grams": rng.gen_range(100..3_000), "extension": ext,
                    }));
                    gross.push(price * i64::from(quantity));
                }
                let (min, max, cargo) = [
                    ("2.0", "8.0", "vaccine"),
                    ("-25", "-18", "frozen"),
                    ("0.0", "4.0", "fresh_food"),
                    ("15", "25", "pharmaceutical"),
                ][rng.gen_range(0..4)];
                extension.insert("temperature_min".into(), json!(min));
                extension.insert("temperature_max".into(), json!(max));
                extension.insert("cargo_category".into(), json!(cargo));
                extension.insert(
                    "cold_box_id".into(),
                    json!(format!("CB-{:08}", n % 100_000_000)),
                );
                extension.insert(
                    "temperature_log_required".into(),
                    json!(cargo != "fresh_food"),
                );
                if cargo == "vaccine" || cargo == "pharmaceutical" {
                    extension.insert(
                        "consignee_id_number".into(),
                        json!(format!("3101151990{:07}X", buyer % 10_000_000)),
                    );
                }
                if rng.gen_bool(0.5) {
                    extension.insert("handling_profile".into(), json!({"pre_cool_minutes": rng.gen_range(0..=240), "stack_limit": rng.gen_range(1..8)}));
                }
                ("cold-chain", "standard")
            }
            Shape::Parcel | Shape::ParcelReturn => {
                for i in 0..line_count {
                    let price = rng.gen_range(1_000..80_000);
                    let mut line = json!({
                        "sku": format!("PCL-{:04}", rng.gen_range(0..2_000)), "product_name": format!("包裹 {}", i + 1),
                        "quantity": 1, "unit_price_minor": price,
                    });
                    if shape == Shape::Parcel {
                        line["extension"] =
                            json!({"parcel_weight_grams": rng.gen_range(50..30_000)});
                    }
                    gross.push(price);
                    lines.push(line);
                }
                if shape == Shape::Parcel {
                    extension.insert("signature_required".into(), json!(rng.gen_bool(0.3)));
                    extension.insert(
                        "delivery_window".into(),
                        json!((["morning", "afternoon", "evening"][rng.gen_range(0..3)])),
                    );
                    extension.insert(
                        "pickup_date".into(),
                        json!(date_in_days(rng.gen_range(0..7))),
                    );
                    if rng.gen_bool(0.4) {
                        extension.insert(
                            "insured_value".into(),
                            json!(format!(
                                "{}.{:02}",
                                rng.gen_range(100..5_000),
                                rng.gen_range(0..100)
                            )),
                        );
                    }
                    if rng.gen_bool(0.3) {
                        extension.insert(
                            "sender_id_number".into(),
                            json!(format!("4403051985{:07}1", buyer % 10_000_000)),
                        );
                    }
                    if rng.gen_bool(0.2) {
                        extension.insert("fragile".into(), json!(true));
                    }
                    ("express", "standard")
                } else {
                    extension.insert("original_waybill_no".into(), json!(format!("SF{:012}", n)));
                    extension.insert(
                        "return_reason".into(),
                        json!((["damaged", "wrong_item", "refused", "other"][rng.gen_range(0..4)])),
                    );
                    ("express", "return")
                }
            }
        };
        let mut order = json!({
            "business_identity": identity, "order_type": order_type, "buyer_id": buyer_id(buyer),
            "lines": lines, "receiver": receiver, "extension": extension,
            "channel": {"source": (["app", "mini_program", "web"][rng.gen_range(0..3)])},
        });
        let goods: i64 = gross.iter().sum();
        order["freight_minor"] = json!(if goods >= 9_900 { 0 } else { 800 });
        // discounts that fit: a line promotion of at most 20% of its line, an order-wide
        // promotion of at most 10% of the rest, a coupon of at most a quarter of what remains
        let mut remaining = goods;
        let mut promotions = Vec::new();
        if rng.gen_bool(0.3) {
            let line = rng.gen_range(0..gross.len());
            let discount = gross[line] * rng.gen_range(5..=20) / 100;
            if discount > 0 {
                promotions.push(json!({"code": "LINE-SALE", "promotion_type": "line_discount", "discount_minor": discount, "line_nos": [line + 1]}));
                order["lines"][line]["promotion_type"] = json!("line_discount");
                remaining -= discount;
            }
        }
        if rng.gen_bool(0.2) {
            let discount = remaining * rng.gen_range(1..=10) / 100;
            if discount > 0 {
                promotions.push(json!({"code": "FULL-REDUCE", "promotion_type": "full_reduction", "discount_minor": discount}));
                remaining -= discount;
            }
        }
        if !promotions.is_empty() {
            order["promotions"] = Value::Array(promotions);
        }
        if rng.gen_bool(0.25) {
            let discount = (remaining / 4).min(2_000);
            if discount > 0 {
                order["coupons"] = json!([{"code": format!("CPN-{}", rng.gen_range(100..999)), "discount_minor": discount}]);
            }
        }
        if rng.gen_bool(0.1) {
            order["remark"] = json!("请工作日送货 / weekdays only");
        }
        order
    }

    /// A search query string (without `?`) with the filters `tenant`'s business line uses.
    pub fn search_query(&self, tenant: &TenantProfile, n: u64) -> String {
        let mut rng = rng(n, 0x5ea7);
        let buyer = self.buyers.pick_hot(&mut rng);
        let buyer_id = buyer_id(buyer);
        let kind = rng.gen_range(0..5);
        match (tenant.name, kind) {
            (_, 0) => format!("buyer_id={buyer_id}&limit=20"),
            (_, 1) => format!("buyer_id={buyer_id}&status=pending_payment,paid&limit=10"),
            (_, 2) => format!("receiver_phone={}&limit=10", buyer_phone(buyer)),
            ("express", 3) => "business_identity=cold-chain&order_type=standard&ext.cargo_category=vaccine&status=pending_payment&limit=20".to_owned(),
            ("express", _) => format!(
                "business_identity=express&order_type=standard&ext.delivery_window=morning&ext.pickup_date.min={}&ext.pickup_date.max={}&limit=20",
                date_in_days(0),
                date_in_days(3)
            ),
            (_, 3) => format!(
                "business_identity=retail&order_type=standard&ext.member_level={}&status=pending_payment&sort=-payable&limit=20",
                member_level(buyer)
            ),
            _ => format!(
                "ext.campaign_id=CAMP-{}&payable_min=5000&payable_max=200000&limit=20",
                rng.gen_range(1..=20)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_puts_most_weight_on_the_first_ranks() {
        let zipf = Zipf::new(1_000, 1.1);
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = vec![0u32; 1_000];
        for _ in 0..100_000 {
            counts[zipf.sample(&mut rng)] += 1;
        }
        assert!(
            counts[0] > counts[1] && counts[1] > counts[9],
            "{:?}",
            &counts[..10]
        );
        let top_10: u32 = counts[..10].iter().sum();
        assert!(top_10 > 30_000, "top 10 of 1000 carry {top_10} of 100000");
        assert!(counts.iter().filter(|c| **c > 0).count() > 500);
    }

    #[test]
    fn dates_are_calendar_dates() {
        assert_eq!(civil_from_days(0), "1970-01-01");
        assert_eq!(date_in_days(0), "2026-12-01");
        assert_eq!(date_in_days(31), "2027-01-01");
        assert_eq!(civil_from_days(19_782), "2024-02-29");
    }

    #[test]
    fn discounts_never_exceed_the_goods() {
        let generator = Generator::default();
        for tenant in TENANTS {
            for n in 0..2_000 {
                let (order, _) = generator.order(tenant, n);
                let lines = order["lines"].as_array().unwrap();
                assert!((1..=5).contains(&lines.len()));
                let goods: i64 = lines
                    .iter()
                    .map(|l| {
                        l["unit_price_minor"].as_i64().unwrap() * l["quantity"].as_i64().unwrap()
                    })
                    .collect::<Vec<_>>()
                    .iter()
                    .sum();
                let promotions: i64 = order["promotions"]
                    .as_array()
                    .map(|p| {
                        p.iter()
                            .map(|p| p["discount_minor"].as_i64().unwrap())
                            .sum()
                    })
                    .unwrap_or(0);
                let coupons: i64 = order["coupons"]
                    .as_array()
                    .map(|c| {
                        c.iter()
                            .map(|c| c["discount_minor"].as_i64().unwrap())
                            .sum()
                    })
                    .unwrap_or(0);
                assert!(promotions + coupons < goods, "{order}");
            }
        }
    }

    #[test]
    fn every_configured_shape_is_generated() {
        let generator = Generator::default();
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..500 {
            let tenant = tenant_of_request(n);
            let (order, _) = generator.order(tenant, n);
            seen.insert(format!(
                "{}/{}/{}",
                tenant.name,
                order["business_identity"].as_str().unwrap(),
                order["order_type"].as_str().unwrap()
            ));
        }
        let expected = [
            "express/cold-chain/standard",
            "express/express/return",
            "express/express/standard",
            "retail/retail/presale",
            "retail/retail/standard",
        ];
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), expected);
    }
}
