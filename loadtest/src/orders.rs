//! Realistic generated orders for the example tenants: several lines, promotions, coupons,
//! extension fields, PII to seal.

use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// The example business-line key of tenant `retail` (a public test credential).
pub const RETAIL_KEY: &str = "oc_test_retail_bl_0001_e4b1279c5a3f0d86b7e9";

/// Order number `n` of `profile`; deterministic, buyers spread over many shards.
pub fn generate(profile: &str, n: u64) -> Value {
    let mut rng = rand::rngs::StdRng::seed_from_u64(n);
    let buyer = format!("buyer-{}", rng.gen_range(0..100_000));
    let line_count = rng.gen_range(1..=4);
    let phone = format!("13{:09}", rng.gen_range(0..1_000_000_000u64));
    match profile {
        "express" => {
            let lines: Vec<Value> = (0..line_count)
                .map(|i| json!({"sku": format!("VAC-{i}"), "product_name": "冷链疫苗", "quantity": rng.gen_range(1..5),
                                "unit_price_minor": rng.gen_range(1000..50_000),
                                "extension": {"storage_band": "chilled", "batch_no": format!("B{n}")}}))
                .collect();
            json!({
                "business_identity": "cold-chain", "order_type": "standard", "buyer_id": buyer,
                "lines": lines, "freight_minor": 1500,
                "receiver": {"name": "张三", "phone": phone, "address": "上海市浦东新区世纪大道100号", "region": "310115"},
                "extension": {"temperature_min": "2.0", "temperature_max": "8.0", "cargo_category": "vaccine",
                              "cold_box_id": format!("CB-{:08}", n % 100_000_000)}
            })
        }
        _ => {
            let lines: Vec<Value> = (0..line_count)
                .map(|i| json!({"sku": format!("SKU-{}", rng.gen_range(0..5000)), "product_name": format!("商品 {i}"),
                                "quantity": rng.gen_range(1..4), "unit_price_minor": rng.gen_range(500..30_000)}))
                .collect();
            let mut order = json!({
                "business_identity": "retail", "order_type": "standard", "buyer_id": buyer,
                "lines": lines, "freight_minor": 800,
                "receiver": {"name": "Li Lei", "phone": phone, "address": "1 Nanjing Road, Shanghai", "region": "310101"},
                "channel": {"source": "app"}
            });
            if rng.gen_bool(0.3) {
                order["coupons"] = json!([{"code": "NEW5", "discount_minor": 500}]);
            }
            order
        }
    }
}
