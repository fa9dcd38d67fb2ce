//! Building search documents from orders: configured names, typed values, blind indexes
//! only for sealed data, and refusal of plaintext where ciphertext belongs.

use std::collections::BTreeMap;

use oc_model::ext::{ExtTable, Sealed, Slot};
use oc_model::order::{
    Channel, Extension, Finance, LogisticsService, Marketing, Operation, OrderLine, OrderMain,
    Parties, Party,
};
use oc_model::ports::{SearchFields, SearchIndex};
use oc_model::search::{
    BlindIndex, ExtCondition, ExtFilter, ExtRange, PiiField, ScaledDecimal, SearchFieldKind,
    SearchFieldName, SearchFieldSpec, SearchQuery, SearchValue,
};
use oc_model::{
    BusinessDomain, BusinessIdentity, ColumnIndex, Currency, Decimal, ErrorCode, ExtValue,
    KvIdentifier, KvValue, Money, Order, OrderId, OrderType, PartyId, Protected, StatusCode,
    TenantId,
};
use oc_search::{CommitPolicy, TantivyConfig, TantivySearchIndex, document_from_order};
use time::OffsetDateTime;

fn sealed(tag: &str) -> Protected<String> {
    Protected::Sealed {
        sealed: Sealed {
            ciphertext: format!("AQAAAAE{tag}"),
            blind_index: Some(format!("bi{tag}")),
        },
    }
}

fn cny(minor: i64) -> Money {
    Money::new(minor, Currency::CNY)
}

/// A valid order in the shape of the store conformance fixture.
fn order() -> Order {
    let now = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
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
                blind_index: Some("bi-card".into()),
            },
        },
    );
    let mut line_ext = BTreeMap::new();
    line_ext.insert(
        ColumnIndex::new(2).unwrap(),
        Protected::Plain(ExtValue::Enum("frozen".into())),
    );
    let line = |line_no, name: &str, quantity, unit, payable, ext| OrderLine {
        line_no,
        sku: "sku-a".into(),
        product_name: name.into(),
        quantity,
        unit_price: cny(unit),
        unit_weight_grams: None,
        promotion_type: None,
        payable: cny(payable),
        ext,
    };
    let mut identifiers = vec![
        KvIdentifier::new(
            BusinessDomain::Logistics,
            "cold_box_id",
            KvValue::clear("BOX-1"),
        )
        .unwrap(),
        KvIdentifier::new(BusinessDomain::Order, "vip", KvValue::clear("true")).unwrap(),
        KvIdentifier::new(BusinessDomain::Product, "batch", KvValue::clear("B-7")).unwrap(),
    ];
    identifiers.sort();
    Order {
        main: OrderMain {
            id: OrderId::from_raw(448_135_112_458_240_001).unwrap(),
            tenant: TenantId::parse("acme").unwrap(),
            business_identity: BusinessIdentity::parse("cold-chain").unwrap(),
            order_type: OrderType::parse("standard").unwrap(),
            status: StatusCode::parse("pending_payment").unwrap(),
            version: 2,
            buyer_id: PartyId::parse("buyer-1").unwrap(),
            merchant_id: Some(PartyId::parse("merchant-9").unwrap()),
            external_ref: None,
            created_at: now,
            updated_at: now,
            pay_deadline: None,
        },
        lines: vec![
            line(1, "冻品 A", 2, 300, 500, line_ext),
            line(2, "Frozen Shrimp", 1, 200, 200, BTreeMap::new()),
        ],
        logistics: LogisticsService::default(),
        marketing: Marketing::default(),
        finance: Finance {
            currency: Currency::CNY,
            goods_total: cny(800),
            discount_total: cny(100),
            freight: cny(50),
            payable: cny(750),
            payments: vec![],
        },
        channel: Channel::default(),
        parties: Parties {
            shipper: None,
            receiver: Some(Party {
                name: sealed("n"),
                phone: sealed("p"),
                address: sealed("a"),
                region: Some("310000".into()),
            }),
        },
        operation: Operation::default(),
        extension: Extension {
            columns: order_ext,
            identifiers,
        },
    }
}

fn spec(name: &str, kind: SearchFieldKind) -> Option<SearchFieldSpec> {
    Some(SearchFieldSpec {
        name: SearchFieldName::parse(name).unwrap(),
        kind,
    })
}

/// The tenant config of the test, as a closure: which slot is which searchable field.
fn namer(_: &BusinessIdentity, _: &OrderType, slot: &Slot) -> Option<SearchFieldSpec> {
    match slot {
        Slot::Column { table, column } => match (table, column.get()) {
            (ExtTable::Order, 1) => spec("temperature_max", SearchFieldKind::Decimal),
            (ExtTable::Order, 20) => spec("delivery_day", SearchFieldKind::Date),
            (ExtTable::Order, 3) => spec("id_card", SearchFieldKind::BlindIndex),
            (ExtTable::Line, 2) => spec("storage", SearchFieldKind::Keyword),
            _ => None,
        },
        Slot::Kv { domain, key } => match (domain, key.as_str()) {
            (BusinessDomain::Logistics, "cold_box_id") => {
                spec("cold_box", SearchFieldKind::Keyword)
            }
            (BusinessDomain::Order, "vip") => spec("vip", SearchFieldKind::Bool),
            (BusinessDomain::Party, "passport") => spec("passport", SearchFieldKind::BlindIndex),
            _ => None,
        },
    }
}

/// A slot → field function as the tenant config's [`SearchFields`].
#[derive(Debug)]
struct Fields(fn(&BusinessIdentity, &OrderType, &Slot) -> Option<SearchFieldSpec>);

impl SearchFields for Fields {
    fn at_slot(
        &self,
        _: &TenantId,
        identity: &BusinessIdentity,
        order_type: &OrderType,
        slot: &Slot,
    ) -> Option<SearchFieldSpec> {
        (self.0)(identity, order_type, slot)
    }

    fn of_tenant(&self, _: &TenantId) -> Vec<SearchFieldSpec> {
        Vec::new()
    }
}

fn name(text: &str) -> SearchFieldName {
    SearchFieldName::parse(text).unwrap()
}

#[test]
fn document_has_configured_names_typed_values_and_only_blind_indexes() {
    let order = order();
    order.check_invariants().unwrap();
    let document = document_from_order(&order, &Fields(namer)).unwrap();
    assert_eq!(document.version, 2);
    assert_eq!(document.payable, cny(750));
    assert_eq!(document.product_names, ["冻品 A", "Frozen Shrimp"]);
    assert_eq!(document.skus, ["sku-a"], "deduplicated");
    let expected: BTreeMap<SearchFieldName, Vec<SearchValue>> = [
        (
            name("temperature_max"),
            vec![SearchValue::Decimal(
                ScaledDecimal::from_decimal("-18.5".parse().unwrap()).unwrap(),
            )],
        ),
        (
            name("delivery_day"),
            vec![SearchValue::Date(time::macros::date!(2026 - 12 - 01))],
        ),
        (
            name("id_card"),
            vec![SearchValue::BlindIndex(
                BlindIndex::parse("bi-card").unwrap(),
            )],
        ),
        (name("storage"), vec![SearchValue::Keyword("frozen".into())]),
        (name("cold_box"), vec![SearchValue::Keyword("BOX-1".into())]),
        (name("vip"), vec![SearchValue::Bool(true)]),
    ]
    .into_iter()
    .collect();
    assert_eq!(document.ext, expected);
    let blind = |text: &str| BlindIndex::parse(text).unwrap();
    assert_eq!(
        document.pii_blind,
        [
            (PiiField::ReceiverName, blind("bin")),
            (PiiField::ReceiverPhone, blind("bip")),
            (PiiField::ReceiverAddress, blind("bia")),
        ]
        .into_iter()
        .collect()
    );
    // no ciphertext and no unconfigured value anywhere in what an index receives
    let body = oc_search::elastic::request::document_body(&document).to_string();
    assert!(!body.contains("AQAAAAE"), "{body}");
    assert!(!body.contains("B-7"), "unconfigured identifiers stay out");
}

#[test]
fn plaintext_where_ciphertext_belongs_is_refused() {
    let mut leaked = order();
    leaked.parties.receiver.as_mut().unwrap().phone = Protected::Plain("13800000000".into());
    let error = document_from_order(&leaked, &Fields(namer)).unwrap_err();
    assert_eq!(error.code, ErrorCode::Internal);
    assert!(
        !error.message.contains("13800000000"),
        "the value is not echoed"
    );

    let mut plain_encrypted_ext = order();
    plain_encrypted_ext.extension.columns.insert(
        ColumnIndex::new(3).unwrap(),
        Protected::Plain(ExtValue::String("110101199001011234".into())),
    );
    let error = document_from_order(&plain_encrypted_ext, &Fields(namer)).unwrap_err();
    assert_eq!(error.code, ErrorCode::Internal);
    assert!(!error.message.contains("110101"));
}

#[test]
fn an_encrypted_identifier_contributes_only_its_blind_index() {
    let mut order = order();
    let sealed: Protected<ExtValue> = Protected::Sealed {
        sealed: Sealed {
            ciphertext: "AQAAAAEpass".into(),
            blind_index: Some("bi-passport".into()),
        },
    };
    order.extension.identifiers.push(
        KvIdentifier::new(
            BusinessDomain::Party,
            "passport",
            KvValue::from_stored(serde_json::to_string(&sealed).unwrap()),
        )
        .unwrap(),
    );
    let document = document_from_order(&order, &Fields(namer)).unwrap();
    assert_eq!(
        document.ext[&name("passport")],
        vec![SearchValue::BlindIndex(
            BlindIndex::parse("bi-passport").unwrap()
        )]
    );
    assert!(
        !format!("{document:?}").contains("AQAAAAEpass"),
        "no ciphertext in the index either"
    );

    // a plaintext value in an encrypted identifier is a bug upstream, refused without an echo
    let mut leaked = self::order();
    leaked.extension.identifiers.push(
        KvIdentifier::new(
            BusinessDomain::Party,
            "passport",
            KvValue::from_stored("E12345678"),
        )
        .unwrap(),
    );
    let error = document_from_order(&leaked, &Fields(namer)).unwrap_err();
    assert_eq!(error.code, ErrorCode::Internal);
    assert!(!error.message.contains("E12345678"));
}

#[test]
fn a_value_that_does_not_fit_its_kind_names_the_field() {
    let as_int = |_: &BusinessIdentity, _: &OrderType, slot: &Slot| match slot {
        Slot::Kv { key, .. } if key == "vip" => spec("vip", SearchFieldKind::Int),
        _ => None,
    };
    let error = document_from_order(&order(), &Fields(as_int)).unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidInput);
    assert!(
        error
            .field
            .as_deref()
            .unwrap()
            .starts_with("/extension/identifiers/"),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_order_is_found_by_its_fields_in_the_embedded_index() {
    let index = TantivySearchIndex::open(
        TantivyConfig {
            writer_memory_bytes: 15_000_000,
            ..TantivyConfig::in_memory()
        }
        .with_commit(CommitPolicy::EveryWrite),
    )
    .unwrap();
    let order = order();
    let document = document_from_order(&order, &Fields(namer)).unwrap();
    assert!(index.upsert(&document).await.unwrap());
    let tenant = order.main.tenant.clone();
    let queries = [
        SearchQuery {
            pii: vec![(PiiField::ReceiverPhone, BlindIndex::parse("bip").unwrap())],
            ..SearchQuery::default()
        },
        SearchQuery {
            product_text: Some("冻品".into()),
            ..SearchQuery::default()
        },
        SearchQuery {
            ext: vec![
                ExtFilter {
                    name: name("temperature_max"),
                    condition: ExtCondition::Range(ExtRange::Decimal {
                        min: None,
                        max: Some(ScaledDecimal::from_decimal("-18".parse().unwrap()).unwrap()),
                    }),
                },
                ExtFilter {
                    name: name("storage"),
                    condition: ExtCondition::Equals(SearchValue::Keyword("frozen".into())),
                },
            ],
            ..SearchQuery::default()
        },
    ];
    for query in queries {
        let page = index.search(&tenant, &query).await.unwrap();
        assert_eq!(page.order_ids(), vec![order.main.id], "{query:?}");
    }
}
