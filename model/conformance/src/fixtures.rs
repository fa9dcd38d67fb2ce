//! The order fixtures of every test suite: [`OrderBuilder`] starts from one of two valid
//! orders, [`OrderBuilder::full`] (two lines, one with a line extension column; order
//! extension columns, plain and sealed; KV identifiers, one of them per line; sealed
//! receiver PII) or [`OrderBuilder::minimal`] (one line, no parties, no extensions), and
//! sets what a suite needs (identity, version, status, extension values…); [`order`] is the
//! full one as it is. Sealed values are fake ciphertexts: adapters store them, never open
//! them.

use std::collections::BTreeMap;

use oc_model::ext::Sealed;
use oc_model::order::{
    Channel, Extension, Finance, LogisticsService, Marketing, Operation, OrderLine, OrderMain,
    Parties, Party,
};
use oc_model::{
    Bucket, BusinessDomain, BusinessIdentity, ColumnIndex, Currency, Decimal, ExtValue,
    KvIdentifier, KvValue, Money, Order, OrderId, OrderIdGenerator, OrderType, PartyId, Protected,
    StatusCode, TenantId, UnixMillis,
};
use time::OffsetDateTime;

/// A tenant id from a valid code.
pub fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

/// A sealed value whose fake ciphertext and blind index derive from `tag`.
pub fn sealed<T>(tag: &str) -> Protected<T> {
    Protected::Sealed {
        sealed: Sealed {
            ciphertext: format!("AQAAAAE{tag}"),
            blind_index: Some(format!("bi{tag}")),
        },
    }
}

/// Minor units of CNY.
pub fn cny(minor: i64) -> Money {
    Money::new(minor, Currency::CNY)
}

static IDS: std::sync::LazyLock<OrderIdGenerator> =
    std::sync::LazyLock::new(|| OrderIdGenerator::new(1).unwrap());

/// A valid, fully populated order for `buyer`: [`OrderBuilder::full`] as it is.
pub fn order(tenant_id: &TenantId, buyer: &str) -> Order {
    OrderBuilder::full(tenant_id, buyer).build()
}

/// Builds a test order from a valid starting point; every setter keeps it valid as long as
/// what it is given is (the finance totals are the caller's to keep in step with the lines).
#[derive(Debug, Clone)]
pub struct OrderBuilder {
    order: Order,
}

impl OrderBuilder {
    /// The fully populated order of `buyer` (see the module), created at a fixed time
    /// (2026-09-21) with an id of now.
    pub fn full(tenant_id: &TenantId, buyer: &str) -> OrderBuilder {
        OrderBuilder {
            order: full_order(tenant_id, buyer),
        }
    }

    /// A minimal valid `retail/standard` order of `buyer`, version 1, created when its id
    /// says (now): one line, no parties, no extension values, no merchant.
    pub fn minimal(tenant_id: &TenantId, buyer: &str) -> OrderBuilder {
        let buyer = PartyId::parse(buyer).unwrap();
        let id = IDS.next(Bucket::of(tenant_id, &buyer), UnixMillis::now().as_u64());
        // ids embed the creation millisecond
        let created = UnixMillis::new(id.unix_ms() as i64).to_datetime().unwrap();
        OrderBuilder {
            order: Order {
                main: OrderMain {
                    id,
                    tenant: tenant_id.clone(),
                    business_identity: BusinessIdentity::parse("retail").unwrap(),
                    order_type: OrderType::parse("standard").unwrap(),
                    status: StatusCode::parse("pending_payment").unwrap(),
                    version: 1,
                    buyer_id: buyer,
                    merchant_id: None,
                    external_ref: None,
                    created_at: created,
                    updated_at: created,
                    pay_deadline: None,
                },
                lines: vec![OrderLine {
                    line_no: 1,
                    sku: "sku-1".into(),
                    product_name: "thing".into(),
                    quantity: 2,
                    unit_price: cny(300),
                    unit_weight_grams: None,
                    promotion_type: None,
                    payable: cny(500),
                    ext: BTreeMap::new(),
                }],
                logistics: LogisticsService::default(),
                marketing: Marketing::default(),
                finance: Finance {
                    currency: Currency::CNY,
                    goods_total: cny(600),
                    discount_total: cny(100),
                    freight: cny(50),
                    payable: cny(550),
                    payments: vec![],
                },
                channel: Channel::default(),
                parties: Parties::default(),
                operation: Operation::default(),
                extension: Extension::default(),
            },
        }
    }

    pub fn id(mut self, id: OrderId) -> OrderBuilder {
        self.order.main.id = id;
        self
    }

    /// Created (and last changed) at `at`.
    pub fn created_at(mut self, at: OffsetDateTime) -> OrderBuilder {
        self.order.main.created_at = at;
        self.order.main.updated_at = at;
        self
    }

    pub fn version(mut self, version: u64) -> OrderBuilder {
        self.order.main.version = version;
        self
    }

    pub fn status(mut self, status: &str) -> OrderBuilder {
        self.order.main.status = StatusCode::parse(status).unwrap();
        self
    }

    pub fn business_identity(mut self, identity: &str) -> OrderBuilder {
        self.order.main.business_identity = BusinessIdentity::parse(identity).unwrap();
        self
    }

    pub fn merchant(mut self, merchant: &str) -> OrderBuilder {
        self.order.main.merchant_id = Some(PartyId::parse(merchant).unwrap());
        self
    }

    /// A receiver whose name, phone and address are sealed (tags `n`, `p`, `a`).
    pub fn sealed_receiver(mut self) -> OrderBuilder {
        self.order.parties.receiver = Some(Party {
            name: sealed("n"),
            phone: sealed("p"),
            address: sealed("a"),
            region: Some("310000".into()),
        });
        self
    }

    /// Order extension column `column` (1-based) set to `value`.
    pub fn ext(mut self, column: u8, value: Protected<ExtValue>) -> OrderBuilder {
        self.order
            .extension
            .columns
            .insert(ColumnIndex::new(column).unwrap(), value);
        self
    }

    /// Extension column `column` of line `line_no` set to `value`.
    pub fn line_ext(
        mut self,
        line_no: u32,
        column: u8,
        value: Protected<ExtValue>,
    ) -> OrderBuilder {
        let line = self
            .order
            .lines
            .iter_mut()
            .find(|line| line.line_no == line_no)
            .expect("the order has that line");
        line.ext.insert(ColumnIndex::new(column).unwrap(), value);
        self
    }

    /// One more KV identifier, kept in the order's (sorted) order.
    pub fn identifier(mut self, domain: BusinessDomain, key: &str, value: &str) -> OrderBuilder {
        let identifiers = &mut self.order.extension.identifiers;
        identifiers.push(KvIdentifier::new(domain, key, KvValue::clear(value)).unwrap());
        identifiers.sort();
        self
    }

    /// Anything else, in place.
    pub fn with(mut self, change: impl FnOnce(&mut Order)) -> OrderBuilder {
        change(&mut self.order);
        self
    }

    pub fn build(self) -> Order {
        self.order
    }
}

fn full_order(tenant_id: &TenantId, buyer: &str) -> Order {
    let buyer = PartyId::parse(buyer).unwrap();
    let now = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    let id = IDS.next(
        Bucket::of(tenant_id, &buyer),
        (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64,
    );
    let mut order_ext = BTreeMap::new();
    order_ext.insert(
        ColumnIndex::new(1).unwrap(),
        Protected::Plain(ExtValue::Decimal(Decimal {
            units: -185,
            scale: 1,
        })),
    );
    order_ext.insert(
        ColumnIndex::new(20).unwrap(),
        Protected::Plain(ExtValue::Date(time::macros::date!(2026 - 12 - 01))),
    );
    order_ext.insert(
        ColumnIndex::new(3).unwrap(),
        Protected::Sealed {
            sealed: Sealed {
                ciphertext: "AQAAAAEcipher".into(),
                blind_index: None,
            },
        },
    );
    let mut line_ext = BTreeMap::new();
    line_ext.insert(
        ColumnIndex::new(2).unwrap(),
        Protected::Plain(ExtValue::Enum("frozen".into())),
    );
    let lines = vec![
        OrderLine {
            line_no: 1,
            sku: "sku-a".into(),
            product_name: "冻品 A".into(),
            quantity: 2,
            unit_price: cny(300),
            unit_weight_grams: Some(500),
            promotion_type: Some("full-price".into()),
            payable: cny(500),
            ext: line_ext,
        },
        OrderLine {
            line_no: 2,
            sku: "sku-a".into(),
            product_name: "冻品 A".into(),
            quantity: 1,
            unit_price: cny(200),
            unit_weight_grams: None,
            promotion_type: Some("bundle".into()),
            payable: cny(200),
            ext: BTreeMap::new(),
        },
    ];
    let mut identifiers = vec![
        KvIdentifier::new(
            BusinessDomain::Logistics,
            "cold_box_id",
            KvValue::clear("BOX-1"),
        )
        .unwrap(),
        KvIdentifier::new(BusinessDomain::Order, "vip", KvValue::clear("true")).unwrap(),
    ];
    let mut per_line =
        KvIdentifier::new(BusinessDomain::Product, "batch", KvValue::clear("B-7")).unwrap();
    per_line.line_no = Some(1);
    identifiers.push(per_line);
    identifiers.sort();
    Order {
        main: OrderMain {
            id,
            tenant: tenant_id.clone(),
            business_identity: BusinessIdentity::parse("cold-chain").unwrap(),
            order_type: OrderType::parse("standard").unwrap(),
            status: StatusCode::parse("pending_payment").unwrap(),
            version: 1,
            buyer_id: buyer,
            merchant_id: Some(PartyId::parse("merchant-9").unwrap()),
            external_ref: None,
            created_at: now,
            updated_at: now,
            pay_deadline: Some(now + time::Duration::minutes(30)),
        },
        lines,
        logistics: LogisticsService {
            service_product: Some("cold-chain-2-8c".into()),
            ..Default::default()
        },
        marketing: Marketing {
            points_used: 10,
            ..Default::default()
        },
        finance: Finance {
            currency: Currency::CNY,
            goods_total: cny(800),
            discount_total: cny(100),
            freight: cny(50),
            payable: cny(750),
            payments: vec![],
        },
        channel: Channel {
            source: Some("app".into()),
            customer_channel: None,
        },
        parties: Parties {
            shipper: None,
            receiver: Some(Party {
                name: sealed("n"),
                phone: sealed("p"),
                address: sealed("a"),
                region: Some("310000".into()),
            }),
        },
        operation: Operation {
            created_by: Some("bl-main".into()),
            ..Default::default()
        },
        extension: Extension {
            columns: order_ext,
            identifiers,
        },
    }
}

/// Run a store call until it stops answering `Retryable` (SQLite's "busy" under concurrent
/// writers), panicking on any other error: for test set-up that must succeed.
pub async fn retrying<T, F, Fut>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = oc_model::DomainResult<T>>,
{
    loop {
        match call().await {
            Ok(value) => return value,
            Err(error) if error.code == oc_model::ErrorCode::Retryable => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err(error) => panic!("{error}"),
        }
    }
}

/// `order` at `version`.
pub fn at_version(order: &Order, version: u64) -> Order {
    let mut order = order.clone();
    order.main.version = version;
    order
}

/// A shuffled `1..=n`, from a xorshift seeded by the clock; returns the seed for messages.
pub fn shuffled(n: u64) -> (Vec<u64>, u64) {
    let seed = (OffsetDateTime::now_utc().unix_timestamp_nanos() as u64) | 1;
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut values: Vec<u64> = (1..=n).collect();
    for i in (1..values.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        values.swap(i, j);
    }
    (values, seed)
}

/// The body of a create request (`POST /v1/orders`) for the example tenants' config
/// (`tenant-config/examples`): the HTTP suites' one way to write an order.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    body: serde_json::Value,
}

impl CreateRequest {
    /// A `standard` order of `identity` for `buyer`, without lines yet.
    pub fn new(identity: &str, buyer: &str) -> CreateRequest {
        CreateRequest {
            body: serde_json::json!({
                "business_identity": identity,
                "order_type": "standard",
                "buyer_id": buyer,
                "lines": [],
            }),
        }
    }

    /// A `retail/standard` order of one `TEA-1` "Tea set" at 88.00 for `buyer`.
    pub fn retail(buyer: &str) -> CreateRequest {
        CreateRequest::new("retail", buyer).line("TEA-1", "Tea set", 1, 8800)
    }

    pub fn order_type(self, order_type: &str) -> CreateRequest {
        self.set("order_type", order_type)
    }

    /// One more line.
    pub fn line(
        mut self,
        sku: &str,
        product_name: &str,
        quantity: u32,
        unit_price_minor: i64,
    ) -> CreateRequest {
        self.body["lines"]
            .as_array_mut()
            .expect("lines is an array")
            .push(serde_json::json!({
                "sku": sku,
                "product_name": product_name,
                "quantity": quantity,
                "unit_price_minor": unit_price_minor,
            }));
        self
    }

    /// Extension field `name` of the last line set to `value`.
    pub fn line_extension(
        mut self,
        name: &str,
        value: impl Into<serde_json::Value>,
    ) -> CreateRequest {
        let line = self.body["lines"]
            .as_array_mut()
            .and_then(|lines| lines.last_mut())
            .expect("a line to extend");
        if line.get("extension").is_none() {
            line["extension"] = serde_json::json!({});
        }
        line["extension"][name] = value.into();
        self
    }

    /// The SKU of the first line.
    pub fn sku(mut self, sku: &str) -> CreateRequest {
        self.body["lines"][0]["sku"] = sku.into();
        self
    }

    pub fn receiver(self, name: &str, phone: &str, address: &str) -> CreateRequest {
        self.set(
            "receiver",
            serde_json::json!({"name": name, "phone": phone, "address": address}),
        )
    }

    /// The receiver most suites use: Li Lei, 13900001111, 1 Nanjing Road.
    pub fn li_lei(self) -> CreateRequest {
        self.receiver("Li Lei", "13900001111", "1 Nanjing Road")
    }

    /// Extension field `name` (by its configured name) set to `value`.
    pub fn extension(mut self, name: &str, value: impl Into<serde_json::Value>) -> CreateRequest {
        if self.body.get("extension").is_none() {
            self.body["extension"] = serde_json::json!({});
        }
        self.body["extension"][name] = value.into();
        self
    }

    /// Any other top-level member (`merchant_id`, `coupons`, `promotions`, …).
    pub fn set(mut self, member: &str, value: impl Into<serde_json::Value>) -> CreateRequest {
        self.body[member] = value.into();
        self
    }

    pub fn json(self) -> serde_json::Value {
        self.body
    }

    /// The body as text.
    pub fn body(&self) -> String {
        self.body.to_string()
    }
}
