//! The `SearchIndex` conformance suite: every case a search adapter must pass, run by
//! [`search_index_conformance!`](crate::search_index_conformance) over a harness that opens
//! the adapter under test (tantivy in memory, on disk, committing every write, and
//! Elasticsearch on OpenSearch in `oc-search`; `Guarded<tantivy>` in `oc-resilience`).
//! The document and query fixtures ([`docs`]) serve the adapters' own tests too.

use std::future::Future;

use oc_model::ports::{SearchFields, SearchIndex};
use oc_model::search::{
    AmountRange, ExtCondition, ExtFilter, ExtRange, PiiField, SearchQuery, SearchSort, SearchValue,
    SortDirection, SortField, TimeRange,
};
use oc_model::search::{SearchFieldKind, SearchFieldSpec};
use oc_model::{BusinessIdentity, Currency, ErrorCode, OrderType, PartyId, StatusCode};

pub use after_sale_cases::*;
pub use archived_cases::*;
pub use cases::*;
pub use docs::*;

/// One adapter under test, opened fresh (empty) for one case.
pub trait SearchIndexHarness: Send {
    /// The index under test.
    fn index(&self) -> &dyn SearchIndex;
    /// Remove what the case left (directory, indices on the engine).
    fn finish(self) -> impl Future<Output = ()> + Send
    where
        Self: Sized;
}

/// Search documents and queries.
pub mod docs {
    use std::collections::{BTreeMap, BTreeSet};

    use oc_model::ports::SearchIndex;
    use oc_model::search::{
        BlindIndex, PiiField, ScaledDecimal, SearchDocument, SearchFieldName, SearchQuery,
        SearchValue,
    };
    use oc_model::{
        BusinessIdentity, Currency, Money, OrderId, OrderType, PartyId, StatusCode, TenantId,
    };
    use time::OffsetDateTime;

    pub fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    pub fn name(text: &str) -> SearchFieldName {
        SearchFieldName::parse(text).unwrap()
    }

    pub fn blind(text: &str) -> BlindIndex {
        BlindIndex::parse(text).unwrap()
    }

    pub fn id(raw: u64) -> OrderId {
        OrderId::from_raw(raw).unwrap()
    }

    pub fn decimal(text: &str) -> ScaledDecimal {
        ScaledDecimal::from_decimal(text.parse().unwrap()).unwrap()
    }

    /// 2026-09-21T22:13:20Z, a fixed base time.
    pub fn base_time() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_790_028_800).unwrap()
    }

    /// A plain document: pending, cold-chain/standard, buyer `buyer-1`, merchant `m-1`, payable
    /// 100.00 CNY, created `minutes` after the base time.
    pub fn doc(tenant_name: &str, raw_id: u64, version: u64) -> SearchDocument {
        let at = base_time();
        SearchDocument {
            tenant: tenant(tenant_name),
            order_id: id(raw_id),
            version,
            status: StatusCode::parse("pending_payment").unwrap(),
            business_identity: BusinessIdentity::parse("cold-chain").unwrap(),
            order_type: OrderType::parse("standard").unwrap(),
            buyer_id: PartyId::parse("buyer-1").unwrap(),
            merchant_id: Some(PartyId::parse("m-1").unwrap()),
            created_at: at,
            updated_at: at,
            payable: Money::new(10_000, Currency::CNY),
            product_names: vec!["plain goods".into()],
            skus: vec!["sku-plain".into()],
            ext: BTreeMap::new(),
            pii_blind: BTreeMap::new(),
            archived: false,
        }
    }

    /// The document `doc` with `ext` values.
    pub fn with_ext(
        mut document: SearchDocument,
        values: &[(&str, SearchValue)],
    ) -> SearchDocument {
        for (field, value) in values {
            document
                .ext
                .entry(name(field))
                .or_default()
                .push(value.clone());
        }
        document
    }

    pub fn with_pii(mut document: SearchDocument, field: PiiField, value: &str) -> SearchDocument {
        document.pii_blind.insert(field, blind(value));
        document
    }

    /// Every id matching `query`, walking all pages; panics on a duplicate.
    pub async fn all_ids(
        index: &dyn SearchIndex,
        tenant_name: &str,
        query: SearchQuery,
    ) -> Vec<u64> {
        let mut query = query;
        let mut seen = BTreeSet::new();
        let mut ids = Vec::new();
        for _ in 0..1000 {
            let page = index.search(&tenant(tenant_name), &query).await.unwrap();
            for hit in &page.hits {
                assert!(
                    seen.insert(hit.order_id.get()),
                    "duplicate {}",
                    hit.order_id
                );
                ids.push(hit.order_id.get());
            }
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return ids,
            }
        }
        panic!("pagination did not end");
    }

    /// The set of ids matching `query`.
    pub async fn id_set(
        index: &dyn SearchIndex,
        tenant_name: &str,
        query: SearchQuery,
    ) -> BTreeSet<u64> {
        all_ids(index, tenant_name, query)
            .await
            .into_iter()
            .collect()
    }

    pub fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }
}

/// The extension fields the cases use, as a tenant config would declare them searchable.
pub fn conformance_fields() -> Vec<SearchFieldSpec> {
    use SearchFieldKind as K;
    [
        ("cold_box", K::Keyword),
        ("batch", K::Keyword),
        ("pallets", K::Int),
        ("pallets_text", K::Keyword),
        ("temperature_max", K::Decimal),
        ("vip", K::Bool),
        ("delivery_day", K::Date),
        ("id_card", K::BlindIndex),
    ]
    .into_iter()
    .map(|(field, kind)| SearchFieldSpec {
        name: name(field),
        kind,
    })
    .collect()
}

/// [`conformance_fields`] as every tenant's searchable fields (the documents of the cases
/// are built with their names already, so no slot is asked for).
#[derive(Debug)]
pub struct ConformanceFields;

impl SearchFields for ConformanceFields {
    fn at_slot(
        &self,
        _: &oc_model::TenantId,
        _: &BusinessIdentity,
        _: &OrderType,
        _: &oc_model::Slot,
    ) -> Option<SearchFieldSpec> {
        None
    }

    fn of_tenant(&self, _: &oc_model::TenantId) -> Vec<SearchFieldSpec> {
        conformance_fields()
    }
}

pub fn query() -> SearchQuery {
    SearchQuery {
        limit: 100,
        ..SearchQuery::default()
    }
}

pub mod cases {
    pub use super::after_sale_cases::{
        after_sale_filters_match_the_reference, after_sale_pages_are_newest_first_without_gaps,
        after_sale_versions_only_move_forward, after_sales_are_tenant_scoped_and_apart_from_orders,
        bad_after_sale_queries_are_input_errors,
    };
    use time::Duration;

    use super::*;

    async fn put(index: &dyn SearchIndex, docs: Vec<oc_model::search::SearchDocument>) {
        for document in docs {
            assert!(
                index.upsert(&document).await.unwrap(),
                "{}",
                document.order_id
            );
        }
        index.refresh().await.unwrap();
    }

    pub async fn upsert_then_search_round_trip(index: &dyn SearchIndex) {
        let t = tenant("acme");
        assert_eq!(index.get_version(&t, id(7)).await.unwrap(), None);
        assert!(index.upsert(&doc("acme", 7, 1)).await.unwrap());
        assert_eq!(index.get_version(&t, id(7)).await.unwrap(), Some(1));
        index.refresh().await.unwrap();
        let page = index.search(&t, &query()).await.unwrap();
        assert_eq!(page.order_ids(), vec![id(7)]);
        assert_eq!(page.hits[0].version, 1);
        assert_eq!(page.next_cursor, None);
        assert_eq!(page.total.map(|t| t.value), Some(1));
        index.health().await.unwrap();
    }

    pub async fn stale_version_never_overwrites_newer(index: &dyn SearchIndex) {
        let t = tenant("acme");
        let mut newer = doc("acme", 7, 3);
        newer.status = StatusCode::parse("paid").unwrap();
        let older = doc("acme", 7, 2);
        assert!(index.upsert(&newer).await.unwrap());
        // before and after a commit, a stale or repeated write changes nothing
        assert!(!index.upsert(&older).await.unwrap(), "stale before commit");
        assert!(
            !index.upsert(&newer).await.unwrap(),
            "same version is a no-op"
        );
        index.refresh().await.unwrap();
        assert!(!index.upsert(&older).await.unwrap(), "stale after commit");
        assert!(!index.upsert(&newer).await.unwrap(), "repeat after commit");
        index.refresh().await.unwrap();
        assert_eq!(index.get_version(&t, id(7)).await.unwrap(), Some(3));
        let paid = SearchQuery {
            statuses: vec![StatusCode::parse("paid").unwrap()],
            ..query()
        };
        assert_eq!(id_set(index, "acme", paid).await, set(&[7]));
        let pending = SearchQuery {
            statuses: vec![StatusCode::parse("pending_payment").unwrap()],
            ..query()
        };
        assert!(id_set(index, "acme", pending).await.is_empty());
        let all = index.search(&t, &query()).await.unwrap();
        assert_eq!(all.hits.len(), 1, "one document per order");
        assert_eq!(all.hits[0].version, 3);

        let mut newest = doc("acme", 7, 4);
        newest.status = StatusCode::parse("shipped").unwrap();
        assert!(index.upsert(&newest).await.unwrap());
        assert_eq!(index.get_version(&t, id(7)).await.unwrap(), Some(4));
    }

    pub async fn filters_on_core_fields(index: &dyn SearchIndex) {
        let mut paid = doc("acme", 1, 1);
        paid.status = StatusCode::parse("paid").unwrap();
        let mut express = doc("acme", 2, 1);
        express.business_identity = BusinessIdentity::parse("express").unwrap();
        let mut b2b = doc("acme", 3, 1);
        b2b.order_type = OrderType::parse("b2b-contract").unwrap();
        let mut other_buyer = doc("acme", 4, 1);
        other_buyer.buyer_id = PartyId::parse("buyer-2").unwrap();
        let mut no_merchant = doc("acme", 5, 1);
        no_merchant.merchant_id = None;
        let mut other_sku = doc("acme", 6, 1);
        other_sku.skus = vec!["sku-x".into(), "sku-y".into()];
        put(
            index,
            vec![paid, express, b2b, other_buyer, no_merchant, other_sku],
        )
        .await;

        let all = set(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(id_set(index, "acme", query()).await, all);
        let cases: Vec<(SearchQuery, Vec<u64>)> = vec![
            (
                SearchQuery {
                    statuses: vec![StatusCode::parse("paid").unwrap()],
                    ..query()
                },
                vec![1],
            ),
            (
                SearchQuery {
                    statuses: vec![
                        StatusCode::parse("paid").unwrap(),
                        StatusCode::parse("pending_payment").unwrap(),
                    ],
                    ..query()
                },
                vec![1, 2, 3, 4, 5, 6],
            ),
            (
                SearchQuery {
                    business_identity: Some(BusinessIdentity::parse("express").unwrap()),
                    ..query()
                },
                vec![2],
            ),
            (
                SearchQuery {
                    order_type: Some(OrderType::parse("b2b-contract").unwrap()),
                    ..query()
                },
                vec![3],
            ),
            (
                SearchQuery {
                    buyer_id: Some(PartyId::parse("buyer-2").unwrap()),
                    ..query()
                },
                vec![4],
            ),
            (
                SearchQuery {
                    merchant_id: Some(PartyId::parse("m-1").unwrap()),
                    ..query()
                },
                vec![1, 2, 3, 4, 6],
            ),
            (
                SearchQuery {
                    sku: Some("sku-y".into()),
                    ..query()
                },
                vec![6],
            ),
            (
                SearchQuery {
                    business_identity: Some(BusinessIdentity::parse("cold-chain").unwrap()),
                    order_type: Some(OrderType::parse("standard").unwrap()),
                    buyer_id: Some(PartyId::parse("buyer-1").unwrap()),
                    statuses: vec![StatusCode::parse("pending_payment").unwrap()],
                    ..query()
                },
                vec![5, 6],
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(
                id_set(index, "acme", query.clone()).await,
                set(&expected),
                "{query:?}"
            );
        }
    }

    pub async fn filters_on_time_and_amount_ranges(index: &dyn SearchIndex) {
        let base = base_time();
        let mut docs = Vec::new();
        for (raw, minutes, minor) in [(1, 0, 500), (2, 10, 1_000), (3, 20, 1_500), (4, 30, 2_000)] {
            let mut document = doc("acme", raw, 1);
            document.created_at = base + Duration::minutes(minutes);
            document.payable = oc_model::Money::new(minor, Currency::CNY);
            docs.push(document);
        }
        let mut usd = doc("acme", 5, 1);
        usd.payable = oc_model::Money::new(1_000, Currency::USD);
        usd.created_at = base - Duration::days(1);
        docs.push(usd);
        put(index, docs).await;

        let window = |from: Option<i64>, to: Option<i64>| SearchQuery {
            created_at: TimeRange {
                from: from.map(|m| base + Duration::minutes(m)),
                to: to.map(|m| base + Duration::minutes(m)),
            },
            ..query()
        };
        assert_eq!(
            id_set(index, "acme", window(Some(10), Some(30))).await,
            set(&[2, 3])
        );
        assert_eq!(
            id_set(index, "acme", window(Some(10), None)).await,
            set(&[2, 3, 4])
        );
        assert_eq!(
            id_set(index, "acme", window(None, Some(10))).await,
            set(&[1, 5])
        );
        assert_eq!(
            id_set(index, "acme", window(Some(10), Some(10))).await,
            set(&[])
        );

        let amount = |currency: Currency, min: Option<i64>, max: Option<i64>| SearchQuery {
            payable: Some(AmountRange {
                currency,
                min_minor: min,
                max_minor: max,
            }),
            ..query()
        };
        assert_eq!(
            id_set(
                index,
                "acme",
                amount(Currency::CNY, Some(1_000), Some(1_500))
            )
            .await,
            set(&[2, 3]),
            "bounds are inclusive"
        );
        assert_eq!(
            id_set(index, "acme", amount(Currency::CNY, None, Some(999))).await,
            set(&[1])
        );
        assert_eq!(
            id_set(index, "acme", amount(Currency::CNY, Some(1_501), None)).await,
            set(&[4])
        );
        assert_eq!(
            id_set(index, "acme", amount(Currency::USD, None, None)).await,
            set(&[5]),
            "the currency alone filters"
        );
    }

    pub async fn filters_on_extension_fields(index: &dyn SearchIndex) {
        use SearchValue as V;
        let d = |raw| doc("acme", raw, 1);
        put(
            index,
            vec![
                with_ext(
                    d(1),
                    &[
                        ("cold_box", V::Keyword("BOX-1".into())),
                        ("pallets", V::Int(3)),
                        ("temperature_max", V::Decimal(decimal("-18.5"))),
                        ("vip", V::Bool(true)),
                        ("delivery_day", V::Date(time::macros::date!(2026 - 12 - 01))),
                    ],
                ),
                with_ext(
                    d(2),
                    &[
                        ("cold_box", V::Keyword("BOX-2".into())),
                        ("pallets", V::Int(-2)),
                        ("temperature_max", V::Decimal(decimal("4"))),
                        ("vip", V::Bool(false)),
                        ("delivery_day", V::Date(time::macros::date!(2027 - 01 - 15))),
                    ],
                ),
                // a line-level field with several values; a keyword that looks like a number
                with_ext(
                    d(3),
                    &[
                        ("batch", V::Keyword("B-7".into())),
                        ("batch", V::Keyword("B-9".into())),
                        ("pallets", V::Int(40)),
                        ("pallets_text", V::Keyword("3".into())),
                        ("temperature_max", V::Decimal(decimal("-18.49"))),
                    ],
                ),
                d(4),
            ],
        )
        .await;

        let filter = |field: &str, condition: ExtCondition| SearchQuery {
            ext: vec![ExtFilter {
                name: name(field),
                condition,
            }],
            ..query()
        };
        let eq = |field: &str, value: V| filter(field, ExtCondition::Equals(value));
        let range = |field: &str, range: ExtRange| filter(field, ExtCondition::Range(range));
        let date = |y, m, d| {
            time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap()
        };
        let cases: Vec<(SearchQuery, Vec<u64>)> = vec![
            (eq("cold_box", V::Keyword("BOX-1".into())), vec![1]),
            (eq("cold_box", V::Keyword("box-1".into())), vec![]),
            (eq("batch", V::Keyword("B-9".into())), vec![3]),
            (eq("pallets", V::Int(3)), vec![1]),
            (eq("pallets_text", V::Keyword("3".into())), vec![3]),
            (eq("vip", V::Bool(true)), vec![1]),
            (eq("vip", V::Bool(false)), vec![2]),
            (
                eq("temperature_max", V::Decimal(decimal("-18.50"))),
                vec![1],
            ),
            (eq("delivery_day", V::Date(date(2026, 12, 1))), vec![1]),
            (eq("unknown_field", V::Keyword("BOX-1".into())), vec![]),
            (
                range(
                    "pallets",
                    ExtRange::Int {
                        min: Some(-2),
                        max: Some(3),
                    },
                ),
                vec![1, 2],
            ),
            (
                range(
                    "pallets",
                    ExtRange::Int {
                        min: Some(0),
                        max: None,
                    },
                ),
                vec![1, 3],
            ),
            (
                range(
                    "pallets",
                    ExtRange::Int {
                        min: None,
                        max: Some(-1),
                    },
                ),
                vec![2],
            ),
            (
                range(
                    "temperature_max",
                    ExtRange::Decimal {
                        min: None,
                        max: Some(decimal("-18.5")),
                    },
                ),
                vec![1],
            ),
            (
                range(
                    "temperature_max",
                    ExtRange::Decimal {
                        min: Some(decimal("-18.5")),
                        max: Some(decimal("0")),
                    },
                ),
                vec![1, 3],
            ),
            (
                range(
                    "delivery_day",
                    ExtRange::Date {
                        min: Some(date(2027, 1, 1)),
                        max: None,
                    },
                ),
                vec![2],
            ),
            (
                range(
                    "delivery_day",
                    ExtRange::Date {
                        min: Some(date(2026, 1, 1)),
                        max: Some(date(2026, 12, 1)),
                    },
                ),
                vec![1],
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(
                id_set(index, "acme", query.clone()).await,
                set(&expected),
                "{query:?}"
            );
        }
        let both = SearchQuery {
            ext: vec![
                ExtFilter {
                    name: name("vip"),
                    condition: ExtCondition::Equals(V::Bool(true)),
                },
                ExtFilter {
                    name: name("pallets"),
                    condition: ExtCondition::Range(ExtRange::Int {
                        min: Some(4),
                        max: None,
                    }),
                },
            ],
            ..query()
        };
        assert!(
            id_set(index, "acme", both).await.is_empty(),
            "filters are ANDed"
        );
    }

    pub async fn blind_index_equality(index: &dyn SearchIndex) {
        put(
            index,
            vec![
                with_pii(doc("acme", 1, 1), PiiField::ReceiverPhone, "bi-phone-1"),
                with_pii(doc("acme", 2, 1), PiiField::ReceiverPhone, "bi-phone-2"),
                with_pii(doc("acme", 3, 1), PiiField::ShipperPhone, "bi-phone-1"),
                with_ext(
                    doc("acme", 4, 1),
                    &[("id_card", SearchValue::BlindIndex(blind("bi-card-9")))],
                ),
            ],
        )
        .await;
        let pii = |field, value: &str| SearchQuery {
            pii: vec![(field, blind(value))],
            ..query()
        };
        assert_eq!(
            id_set(index, "acme", pii(PiiField::ReceiverPhone, "bi-phone-1")).await,
            set(&[1]),
            "the same hash under another field does not match"
        );
        assert_eq!(
            id_set(index, "acme", pii(PiiField::ShipperPhone, "bi-phone-1")).await,
            set(&[3])
        );
        assert!(
            id_set(index, "acme", pii(PiiField::ReceiverName, "bi-phone-1"))
                .await
                .is_empty()
        );
        let card = SearchQuery {
            ext: vec![ExtFilter {
                name: name("id_card"),
                condition: ExtCondition::Equals(SearchValue::BlindIndex(blind("bi-card-9"))),
            }],
            ..query()
        };
        assert_eq!(id_set(index, "acme", card).await, set(&[4]));
    }

    pub async fn product_text_in_chinese_and_english(index: &dyn SearchIndex) {
        let named = |raw, names: &[&str]| {
            let mut document = doc("acme", raw, 1);
            document.product_names = names.iter().map(|n| n.to_string()).collect();
            document
        };
        put(
            index,
            vec![
                named(1, &["冻品 A", "冻品 B"]),
                named(2, &["速冻水饺 500g"]),
                named(3, &["Frozen Shrimp", "Ice pack"]),
                named(4, &["fresh milk"]),
                named(5, &["品冻"]),
            ],
        )
        .await;
        let text = |words: &str| SearchQuery {
            product_text: Some(words.into()),
            ..query()
        };
        let cases: Vec<(&str, Vec<u64>)> = vec![
            ("冻品", vec![1]),
            ("冻", vec![1, 2, 5]),
            ("水饺", vec![2]),
            ("速冻水饺", vec![2]),
            ("frozen", vec![3]),
            ("FROZEN shrimp", vec![3]),
            ("frozen milk", vec![]),
            ("milk", vec![4]),
            ("500g", vec![2]),
        ];
        for (words, expected) in cases {
            assert_eq!(
                id_set(index, "acme", text(words)).await,
                set(&expected),
                "{words}"
            );
        }
    }

    pub async fn sorts_ascending_and_descending(index: &dyn SearchIndex) {
        let base = base_time();
        let mut docs = Vec::new();
        // (id, created minute, updated minute, payable)
        for (raw, created, updated, minor) in [
            (10, 5, 50, 300),
            (11, 1, 10, 100),
            (12, 5, 20, 300),
            (13, 3, 40, 200),
        ] {
            let mut document = doc("acme", raw, 1);
            document.created_at = base + Duration::minutes(created);
            document.updated_at = base + Duration::minutes(updated);
            document.payable = oc_model::Money::new(minor, Currency::CNY);
            docs.push(document);
        }
        put(index, docs).await;
        let sorted = |field, direction| SearchQuery {
            sort: SearchSort { field, direction },
            ..query()
        };
        use SortDirection::{Asc, Desc};
        // ties (same created_at / payable) are broken by order id in the same direction
        let cases = [
            (SortField::CreatedAt, Desc, vec![12, 10, 13, 11]),
            (SortField::CreatedAt, Asc, vec![11, 13, 10, 12]),
            (SortField::UpdatedAt, Desc, vec![10, 13, 12, 11]),
            (SortField::UpdatedAt, Asc, vec![11, 12, 13, 10]),
            (SortField::Payable, Desc, vec![12, 10, 13, 11]),
            (SortField::Payable, Asc, vec![11, 13, 10, 12]),
        ];
        for (field, direction, expected) in cases {
            assert_eq!(
                all_ids(index, "acme", sorted(field, direction)).await,
                expected,
                "{field:?} {direction:?}"
            );
            let one_by_one = SearchQuery {
                limit: 1,
                ..sorted(field, direction)
            };
            assert_eq!(
                all_ids(index, "acme", one_by_one).await,
                expected,
                "{field:?} {direction:?} one per page"
            );
        }
    }

    pub async fn pagination_has_no_duplicates_or_gaps(index: &dyn SearchIndex) {
        let base = base_time();
        let mut docs = Vec::new();
        for raw in 1..=55u64 {
            let mut document = doc("acme", 1000 + raw, 1);
            // only 7 distinct times: pages cut through runs of equal keys
            document.created_at = base + Duration::minutes((raw % 7) as i64);
            document.payable = oc_model::Money::new((raw % 4) as i64 * 100, Currency::CNY);
            docs.push(document);
        }
        put(index, docs).await;
        for sort in [
            SearchSort::default(),
            SearchSort {
                field: SortField::CreatedAt,
                direction: SortDirection::Asc,
            },
            SearchSort {
                field: SortField::Payable,
                direction: SortDirection::Desc,
            },
        ] {
            let mut request = SearchQuery {
                limit: 10,
                sort,
                ..query()
            };
            let mut pages = Vec::new();
            loop {
                let page = index.search(&tenant("acme"), &request).await.unwrap();
                assert_eq!(
                    page.total.map(|t| t.value),
                    Some(55),
                    "total is of the whole query"
                );
                pages.push(page.order_ids().len());
                match page.next_cursor {
                    Some(cursor) => request.cursor = Some(cursor),
                    None => break,
                }
            }
            assert_eq!(pages, [10, 10, 10, 10, 10, 5], "{sort:?}");
            let ids = all_ids(
                index,
                "acme",
                SearchQuery {
                    limit: 10,
                    sort,
                    ..query()
                },
            )
            .await;
            let everything = all_ids(
                index,
                "acme",
                SearchQuery {
                    limit: 500,
                    sort,
                    ..query()
                },
            )
            .await;
            assert_eq!(ids.len(), 55);
            assert_eq!(
                ids, everything,
                "pages concatenate to the single-page order"
            );
        }
        // exactly one full page: no cursor pointing at an empty page
        let exact = SearchQuery {
            limit: 55,
            ..query()
        };
        let page = index.search(&tenant("acme"), &exact).await.unwrap();
        assert_eq!(page.hits.len(), 55);
        assert_eq!(page.next_cursor, None);
    }

    pub async fn tenants_are_isolated(index: &dyn SearchIndex) {
        put(index, vec![doc("acme", 1, 5), doc("globex", 2, 1)]).await;
        assert_eq!(id_set(index, "acme", query()).await, set(&[1]));
        assert_eq!(id_set(index, "globex", query()).await, set(&[2]));
        assert!(id_set(index, "initech", query()).await.is_empty());
        // another tenant cannot read, replace or delete acme's order 1
        assert_eq!(
            index.get_version(&tenant("globex"), id(1)).await.unwrap(),
            None
        );
        assert!(
            index.upsert(&doc("globex", 1, 1)).await.unwrap(),
            "its own document"
        );
        index.delete(&tenant("globex"), id(1)).await.unwrap();
        index.refresh().await.unwrap();
        assert_eq!(
            index.get_version(&tenant("acme"), id(1)).await.unwrap(),
            Some(5)
        );
        assert_eq!(id_set(index, "acme", query()).await, set(&[1]));
        // a cursor from one tenant's page leaks nothing into another's
        let acme_page = index
            .search(
                &tenant("acme"),
                &SearchQuery {
                    limit: 1,
                    ..query()
                },
            )
            .await
            .unwrap();
        assert_eq!(acme_page.next_cursor, None);
        // acme gets a second order, so its page of one has a cursor; that cursor, handed to
        // globex's search, must page through globex's orders only
        put(index, vec![doc("acme", 3, 1)]).await;
        let acme_first = index
            .search(
                &tenant("acme"),
                &SearchQuery {
                    limit: 1,
                    ..query()
                },
            )
            .await
            .unwrap();
        let acme_cursor = acme_first
            .next_cursor
            .clone()
            .expect("acme has a second page");
        let acme_second = index
            .search(
                &tenant("acme"),
                &SearchQuery {
                    limit: 1,
                    cursor: Some(acme_cursor.clone()),
                    ..query()
                },
            )
            .await
            .unwrap();
        let mut acme_ids = acme_first.order_ids();
        acme_ids.extend(acme_second.order_ids());
        acme_ids.sort();
        assert_eq!(acme_ids, vec![id(1), id(3)], "the cursor pages acme itself");
        let globex_with_acme_cursor = index
            .search(
                &tenant("globex"),
                &SearchQuery {
                    limit: 100,
                    cursor: Some(acme_cursor),
                    ..query()
                },
            )
            .await
            .unwrap();
        assert!(
            globex_with_acme_cursor
                .order_ids()
                .iter()
                .all(|order| *order == id(2)),
            "acme's cursor showed globex {:?}",
            globex_with_acme_cursor.order_ids()
        );
        let buyer_everywhere = SearchQuery {
            buyer_id: Some(PartyId::parse("buyer-1").unwrap()),
            ..query()
        };
        assert_eq!(id_set(index, "globex", buyer_everywhere).await, set(&[2]));
    }

    pub async fn delete_removes(index: &dyn SearchIndex) {
        let t = tenant("acme");
        put(index, vec![doc("acme", 1, 2), doc("acme", 2, 1)]).await;
        index.delete(&t, id(1)).await.unwrap();
        assert_eq!(
            index.get_version(&t, id(1)).await.unwrap(),
            None,
            "before commit"
        );
        index.delete(&t, id(99)).await.unwrap();
        index.refresh().await.unwrap();
        assert_eq!(index.get_version(&t, id(1)).await.unwrap(), None);
        assert_eq!(id_set(index, "acme", query()).await, set(&[2]));
    }

    pub async fn bad_queries_are_input_errors(index: &dyn SearchIndex) {
        let t = tenant("acme");
        put(index, vec![doc("acme", 1, 1), doc("acme", 2, 1)]).await;
        let zero = SearchQuery {
            limit: 0,
            ..query()
        };
        let error = index.search(&t, &zero).await.unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidInput);

        let first = index
            .search(
                &t,
                &SearchQuery {
                    limit: 1,
                    ..query()
                },
            )
            .await
            .unwrap();
        let cursor = first.next_cursor.expect("a second page");
        let other_sort = SearchQuery {
            limit: 1,
            cursor: Some(cursor),
            sort: SearchSort {
                field: SortField::Payable,
                direction: SortDirection::Asc,
            },
            ..query()
        };
        let error = index.search(&t, &other_sort).await.unwrap_err();
        assert_eq!(error.field.as_deref(), Some("/cursor"));

        let garbage = SearchQuery {
            cursor: Some("%%%".into()),
            ..query()
        };
        assert_eq!(
            index.search(&t, &garbage).await.unwrap_err().code,
            ErrorCode::InvalidInput
        );
        let punctuation = SearchQuery {
            product_text: Some(" ,. ".into()),
            ..query()
        };
        assert_eq!(
            index
                .search(&t, &punctuation)
                .await
                .unwrap_err()
                .field
                .as_deref(),
            Some("/product_text")
        );
    }
}

/// After-sale documents (issue #20 item 6): the same adapters, their own index.
pub mod after_sale_cases {
    use std::collections::BTreeSet;

    use oc_model::aftersale::listing::{AfterSaleDocument, AfterSaleQuery};
    use oc_model::aftersale::{AfterSaleChannel, AfterSaleId, AfterSaleType};
    use oc_model::search::TimeRange;
    use time::Duration;

    use super::*;

    pub fn as_id(raw: u64) -> AfterSaleId {
        AfterSaleId::from_raw(raw).unwrap()
    }

    /// A refund-only after-sale by the user channel, `applied`, of order 1000 + `raw_id`,
    /// merchant `m-1`, SKU `sku-a`, created `raw_id` minutes after the base time.
    pub fn as_doc(tenant_name: &str, raw_id: u64, version: u64) -> AfterSaleDocument {
        let at = base_time() + Duration::minutes(raw_id as i64);
        AfterSaleDocument {
            tenant: tenant(tenant_name),
            after_sale_id: as_id(raw_id),
            order_id: id(1000 + raw_id),
            version,
            status: StatusCode::parse("applied").unwrap(),
            kind: AfterSaleType::RefundOnly,
            channel: AfterSaleChannel::User,
            merchant_id: Some(PartyId::parse("m-1").unwrap()),
            skus: vec!["sku-a".into()],
            created_at: at,
            updated_at: at,
        }
    }

    pub fn as_query() -> AfterSaleQuery {
        AfterSaleQuery {
            limit: 100,
            ..AfterSaleQuery::default()
        }
    }

    async fn put(index: &dyn SearchIndex, docs: &[AfterSaleDocument]) {
        for document in docs {
            assert!(
                index.upsert_after_sale(document).await.unwrap(),
                "{}",
                document.after_sale_id
            );
        }
        index.refresh().await.unwrap();
    }

    /// Every id matching `query`, walking all pages; panics on a duplicate.
    pub async fn after_sale_ids(
        index: &dyn SearchIndex,
        tenant_name: &str,
        query: AfterSaleQuery,
    ) -> Vec<u64> {
        let mut query = query;
        let mut seen = BTreeSet::new();
        let mut ids = Vec::new();
        for _ in 0..1000 {
            let page = index
                .search_after_sales(&tenant(tenant_name), &query)
                .await
                .unwrap();
            for hit in &page.hits {
                let raw = hit.after_sale_id.get();
                assert!(seen.insert(raw), "duplicate {raw}");
                ids.push(raw);
            }
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return ids,
            }
        }
        panic!("pagination did not end");
    }

    pub async fn after_sale_versions_only_move_forward(index: &dyn SearchIndex) {
        let t = tenant("acme");
        assert_eq!(index.after_sale_version(&t, as_id(7)).await.unwrap(), None);
        let mut newer = as_doc("acme", 7, 3);
        newer.status = StatusCode::parse("approved").unwrap();
        assert!(index.upsert_after_sale(&newer).await.unwrap());
        // an event delivered late re-read an older row: it must not win
        assert!(
            !index
                .upsert_after_sale(&as_doc("acme", 7, 2))
                .await
                .unwrap()
        );
        assert!(!index.upsert_after_sale(&newer).await.unwrap(), "repeat");
        index.refresh().await.unwrap();
        assert!(
            !index
                .upsert_after_sale(&as_doc("acme", 7, 1))
                .await
                .unwrap()
        );
        index.refresh().await.unwrap();
        assert_eq!(
            index.after_sale_version(&t, as_id(7)).await.unwrap(),
            Some(3)
        );
        let page = index.search_after_sales(&t, &as_query()).await.unwrap();
        assert_eq!(page.ids(), vec![as_id(7)], "one document per after-sale");
        assert_eq!(page.hits[0].version, 3);
        let applied = AfterSaleQuery {
            statuses: vec![StatusCode::parse("applied").unwrap()],
            ..as_query()
        };
        assert!(after_sale_ids(index, "acme", applied).await.is_empty());
        let mut newest = as_doc("acme", 7, 4);
        newest.status = StatusCode::parse("refunded").unwrap();
        assert!(index.upsert_after_sale(&newest).await.unwrap());
        index.refresh().await.unwrap();
        let refunded = AfterSaleQuery {
            statuses: vec![StatusCode::parse("refunded").unwrap()],
            ..as_query()
        };
        assert_eq!(after_sale_ids(index, "acme", refunded).await, vec![7]);
    }

    pub async fn after_sale_filters_match_the_reference(index: &dyn SearchIndex) {
        let mut docs = Vec::new();
        for raw in 1..=12u64 {
            let mut doc = as_doc("acme", raw, 1);
            if raw % 2 == 0 {
                doc.status = StatusCode::parse("approved").unwrap();
            }
            if raw % 3 == 0 {
                doc.kind = AfterSaleType::ReturnAndRefund;
            }
            if raw % 4 == 0 {
                doc.kind = AfterSaleType::Exchange;
            }
            if raw % 5 == 0 {
                doc.channel = AfterSaleChannel::Merchant;
            }
            if raw == 7 {
                doc.channel = AfterSaleChannel::CustomerService;
            }
            if raw % 3 == 1 {
                doc.merchant_id = Some(PartyId::parse("m-2").unwrap());
            }
            if raw == 11 {
                doc.merchant_id = None;
            }
            if raw > 8 {
                doc.order_id = id(1001);
            }
            if raw % 2 == 1 {
                doc.skus = vec!["sku-a".into(), "sku-b".into()];
            }
            if raw == 6 {
                doc.skus = vec!["sku-c".into()];
            }
            docs.push(doc);
        }
        put(index, &docs).await;
        let at = |minutes: i64| base_time() + Duration::minutes(minutes);
        let status = |text: &str| StatusCode::parse(text).unwrap();
        let queries = vec![
            as_query(),
            AfterSaleQuery {
                statuses: vec![status("approved")],
                ..as_query()
            },
            AfterSaleQuery {
                statuses: vec![status("approved"), status("applied")],
                ..as_query()
            },
            AfterSaleQuery {
                kind: Some(AfterSaleType::ReturnAndRefund),
                ..as_query()
            },
            AfterSaleQuery {
                kind: Some(AfterSaleType::Repair),
                ..as_query()
            },
            AfterSaleQuery {
                channel: Some(AfterSaleChannel::Merchant),
                ..as_query()
            },
            AfterSaleQuery {
                channel: Some(AfterSaleChannel::CustomerService),
                ..as_query()
            },
            AfterSaleQuery {
                merchant_id: Some(PartyId::parse("m-2").unwrap()),
                ..as_query()
            },
            AfterSaleQuery {
                order_id: Some(id(1001)),
                ..as_query()
            },
            AfterSaleQuery {
                sku: Some("sku-b".into()),
                ..as_query()
            },
            AfterSaleQuery {
                sku: Some("sku-c".into()),
                ..as_query()
            },
            AfterSaleQuery {
                created_at: TimeRange {
                    from: Some(at(3)),
                    to: Some(at(9)),
                },
                ..as_query()
            },
            AfterSaleQuery {
                created_at: TimeRange {
                    from: Some(at(10)),
                    to: None,
                },
                ..as_query()
            },
            AfterSaleQuery {
                statuses: vec![status("approved")],
                merchant_id: Some(PartyId::parse("m-1").unwrap()),
                sku: Some("sku-a".into()),
                created_at: TimeRange {
                    from: None,
                    to: Some(at(9)),
                },
                ..as_query()
            },
        ];
        for query in queries {
            let mut expected: Vec<u64> = docs
                .iter()
                .filter(|doc| query.matches(doc))
                .map(|doc| doc.after_sale_id.get())
                .collect();
            expected.reverse(); // created one minute apart: newest first is highest first
            assert_eq!(
                after_sale_ids(index, "acme", query.clone()).await,
                expected,
                "{query:?}"
            );
        }
    }

    pub async fn after_sale_pages_are_newest_first_without_gaps(index: &dyn SearchIndex) {
        // 23 after-sales, three of each creation minute, so pages cut through ties
        let docs: Vec<AfterSaleDocument> = (1..=23u64)
            .map(|raw| {
                let mut doc = as_doc("acme", raw, 1);
                doc.created_at = base_time() + Duration::minutes((raw / 3) as i64);
                doc
            })
            .collect();
        put(index, &docs).await;
        let mut expected: Vec<(time::OffsetDateTime, u64)> = docs
            .iter()
            .map(|doc| (doc.created_at, doc.after_sale_id.get()))
            .collect();
        expected.sort();
        expected.reverse();
        let expected: Vec<u64> = expected.into_iter().map(|(_, raw)| raw).collect();
        for limit in [1, 4, 7, 23, 100] {
            let query = AfterSaleQuery {
                limit,
                ..as_query()
            };
            assert_eq!(
                after_sale_ids(index, "acme", query).await,
                expected,
                "limit {limit}"
            );
        }
        let last = index
            .search_after_sales(
                &tenant("acme"),
                &AfterSaleQuery {
                    limit: 23,
                    ..as_query()
                },
            )
            .await
            .unwrap();
        assert_eq!(last.next_cursor, None, "an exact last page says so");
    }

    pub async fn after_sales_are_tenant_scoped_and_apart_from_orders(index: &dyn SearchIndex) {
        put(index, &[as_doc("acme", 1, 1), as_doc("acme", 2, 1)]).await;
        put(index, &[as_doc("globex", 3, 1), as_doc("globex", 1, 5)]).await;
        // an order with the same raw id as an after-sale: another document type
        assert!(index.upsert(&doc("acme", 1, 9)).await.unwrap());
        index.refresh().await.unwrap();
        assert_eq!(after_sale_ids(index, "acme", as_query()).await, vec![2, 1]);
        assert_eq!(
            after_sale_ids(index, "globex", as_query()).await,
            vec![3, 1]
        );
        assert!(
            after_sale_ids(index, "initech", as_query())
                .await
                .is_empty()
        );
        assert_eq!(
            index
                .after_sale_version(&tenant("acme"), as_id(1))
                .await
                .unwrap(),
            Some(1),
            "same id in another tenant is another document"
        );
        assert_eq!(
            index.get_version(&tenant("acme"), id(1)).await.unwrap(),
            Some(9),
            "the order of the same id is untouched"
        );
        assert_eq!(id_set(index, "acme", query()).await, set(&[1]));
        assert_eq!(
            index
                .after_sale_version(&tenant("initech"), as_id(1))
                .await
                .unwrap(),
            None
        );
    }

    pub async fn bad_after_sale_queries_are_input_errors(index: &dyn SearchIndex) {
        let t = tenant("acme");
        put(index, &[as_doc("acme", 1, 1), as_doc("acme", 2, 1)]).await;
        for bad in [
            AfterSaleQuery {
                limit: 0,
                ..as_query()
            },
            AfterSaleQuery {
                cursor: Some("%%%".into()),
                ..as_query()
            },
        ] {
            let error = index.search_after_sales(&t, &bad).await.unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidInput, "{bad:?}");
        }
        // an order list's cursor of another sort is refused, not misread
        let orders = index
            .search(
                &t,
                &SearchQuery {
                    limit: 1,
                    sort: SearchSort {
                        field: SortField::Payable,
                        direction: SortDirection::Asc,
                    },
                    ..query()
                },
            )
            .await
            .unwrap();
        assert!(orders.hits.is_empty());
    }
}

pub mod archived_cases {
    use std::collections::BTreeSet;

    use oc_model::search::SearchDocument;

    use super::*;

    /// The cold copy of `doc(tenant, raw_id, hot_version)` as the projector indexes it.
    fn archived_copy(tenant_name: &str, raw_id: u64, hot_version: u64) -> SearchDocument {
        SearchDocument {
            status: StatusCode::parse("completed").unwrap(),
            archived: true,
            ..doc(tenant_name, raw_id, hot_version + 1)
        }
    }

    fn including(query: SearchQuery) -> SearchQuery {
        SearchQuery {
            include_archived: true,
            ..query
        }
    }

    async fn write(index: &dyn SearchIndex, document: &SearchDocument) {
        assert!(
            index.upsert(document).await.unwrap(),
            "{} v{}",
            document.order_id,
            document.version
        );
    }

    pub async fn archived_orders_are_left_out_unless_included(index: &dyn SearchIndex) {
        let t = tenant("acme");
        for raw in [1, 2, 3] {
            write(index, &doc("acme", raw, 1)).await;
        }
        write(index, &doc("other", 4, 1)).await;
        index.refresh().await.unwrap();
        // orders 2 and 3 are archived: their cold copies replace the hot documents
        write(index, &archived_copy("acme", 2, 1)).await;
        write(index, &archived_copy("acme", 3, 1)).await;
        write(index, &archived_copy("other", 4, 1)).await;
        index.refresh().await.unwrap();
        assert_eq!(index.get_version(&t, id(2)).await.unwrap(), Some(2));

        let hot = index.search(&t, &query()).await.unwrap();
        assert_eq!(hot.order_ids(), vec![id(1)], "archived orders are hidden");
        assert_eq!(hot.total.map(|total| total.value), Some(1));
        let all = index.search(&t, &including(query())).await.unwrap();
        assert_eq!(
            all.hits
                .iter()
                .map(|hit| hit.order_id.get())
                .collect::<BTreeSet<_>>(),
            set(&[1, 2, 3])
        );
        assert_eq!(all.total.map(|total| total.value), Some(3));
        let archived_hit = all.hits.iter().find(|hit| hit.order_id == id(2)).unwrap();
        assert_eq!(archived_hit.version, 2, "the archived copy's version");

        // the other filters still hold for archived orders
        let completed = SearchQuery {
            statuses: vec![StatusCode::parse("completed").unwrap()],
            ..query()
        };
        assert_eq!(id_set(index, "acme", completed.clone()).await, set(&[]));
        assert_eq!(
            id_set(index, "acme", including(completed)).await,
            set(&[2, 3])
        );
        let by_buyer = SearchQuery {
            buyer_id: Some(PartyId::parse("buyer-1").unwrap()),
            ..query()
        };
        assert_eq!(id_set(index, "acme", by_buyer.clone()).await, set(&[1]));
        assert_eq!(
            id_set(index, "acme", including(by_buyer)).await,
            set(&[1, 2, 3])
        );
        // another tenant's archived order is never listed, included or not
        assert_eq!(id_set(index, "other", query()).await, set(&[]));
        assert_eq!(id_set(index, "other", including(query())).await, set(&[4]));
        assert_eq!(
            id_set(index, "acme", including(query())).await,
            set(&[1, 2, 3])
        );
    }

    /// A late hot event (a version at or below the archived copy's) finds the archived copy
    /// newer and changes nothing: the order stays archived in the index.
    pub async fn a_hot_write_cannot_undo_an_archive(index: &dyn SearchIndex) {
        let t = tenant("acme");
        write(index, &doc("acme", 5, 3)).await;
        write(index, &archived_copy("acme", 5, 3)).await;
        // before and after a commit
        assert!(!index.upsert(&doc("acme", 5, 3)).await.unwrap());
        assert!(
            !index.upsert(&doc("acme", 5, 4)).await.unwrap(),
            "same version"
        );
        index.refresh().await.unwrap();
        assert!(!index.upsert(&doc("acme", 5, 2)).await.unwrap());
        assert!(!index.upsert(&doc("acme", 5, 4)).await.unwrap());
        index.refresh().await.unwrap();
        assert_eq!(index.get_version(&t, id(5)).await.unwrap(), Some(4));
        assert_eq!(id_set(index, "acme", query()).await, set(&[]));
        assert_eq!(id_set(index, "acme", including(query())).await, set(&[5]));
        // and an archived copy is not re-marked hot by a repeated archived write either
        assert!(!index.upsert(&archived_copy("acme", 5, 3)).await.unwrap());
    }

    /// Cursor pages over hot and archived orders mixed: every order once, in order; the
    /// default pages skip the archived ones without a gap among the hot.
    pub async fn pages_including_archived_orders_have_no_gaps(index: &dyn SearchIndex) {
        for raw in 1..=9u64 {
            let mut hot = doc("acme", raw, 1);
            hot.created_at += time::Duration::minutes(i64::try_from(raw).unwrap());
            write(index, &hot).await;
            if raw % 3 == 0 {
                let mut archived = archived_copy("acme", raw, 1);
                archived.created_at = hot.created_at;
                write(index, &archived).await;
            }
        }
        index.refresh().await.unwrap();
        let small = SearchQuery {
            limit: 2,
            ..SearchQuery::default()
        };
        assert_eq!(
            all_ids(index, "acme", including(small.clone())).await,
            vec![9, 8, 7, 6, 5, 4, 3, 2, 1]
        );
        assert_eq!(all_ids(index, "acme", small).await, vec![8, 7, 5, 4, 2, 1]);
    }
}

/// One `#[tokio::test]` per case in a module `$module`, each on a fresh harness from
/// `$open(label)` (an async fn taking the case's name, resolved beside the macro call);
/// `also: [name, …]` adds the adapter's own cases to the module, each an async fn
/// `name(&harness)` beside the macro call.
#[macro_export]
macro_rules! search_index_conformance {
    ($module:ident, $open:path $(, also: [$($extra:ident),* $(,)?])?) => {
        $crate::search_index_conformance!(@cases $module, $open, [$($($extra),*)?];
            upsert_then_search_round_trip,
            stale_version_never_overwrites_newer,
            filters_on_core_fields,
            filters_on_time_and_amount_ranges,
            filters_on_extension_fields,
            blind_index_equality,
            product_text_in_chinese_and_english,
            sorts_ascending_and_descending,
            pagination_has_no_duplicates_or_gaps,
            tenants_are_isolated,
            delete_removes,
            bad_queries_are_input_errors,
            after_sale_versions_only_move_forward,
            after_sale_filters_match_the_reference,
            after_sale_pages_are_newest_first_without_gaps,
            after_sales_are_tenant_scoped_and_apart_from_orders,
            bad_after_sale_queries_are_input_errors,
            archived_orders_are_left_out_unless_included,
            a_hot_write_cannot_undo_an_archive,
            pages_including_archived_orders_have_no_gaps,
        );
    };
    (@cases $module:ident, $open:path, [$($extra:ident),*]; $($case:ident),* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    use $crate::search::SearchIndexHarness as _;
                    let harness = $open(stringify!($case)).await;
                    $crate::search::$case(harness.index()).await;
                    harness.finish().await;
                }
            )*
            $(
                #[tokio::test]
                async fn $extra() {
                    use $crate::search::SearchIndexHarness as _;
                    let harness = $open(stringify!($extra)).await;
                    super::$extra(&harness).await;
                    harness.finish().await;
                }
            )*
        }
    };
}
