//! Golden tests of the Elasticsearch adapter's pure request builders and response readers.
//! No Elasticsearch server runs here: request bodies are compared with reviewed files under
//! `tests/golden/`, and responses are the shapes the Elasticsearch reference documents.
//!
//! Regenerate request goldens after an intended change with `UPDATE_GOLDEN=1 cargo test -p
//! oc-search --test golden`, then review the diff.

mod common;

use std::path::PathBuf;

use oc_model::search::{
    AmountRange, ExtCondition, ExtFilter, ExtRange, PiiField, SearchFieldKind, SearchFieldSpec,
    SearchHit, SearchQuery, SearchSort, SearchValue, SortDirection, SortField, TimeRange,
    TotalHits,
};
use oc_model::{BusinessIdentity, Currency, ErrorCode, OrderType, PartyId, StatusCode};
use oc_search::Cursor;
use oc_search::EsConfig;
use oc_search::elastic::{request, response};
use serde_json::{Value, json};
use time::Duration;

use common::*;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn read_golden(name: &str) -> Value {
    let text = std::fs::read_to_string(golden_path(name))
        .unwrap_or_else(|e| panic!("golden file {name}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Compare with the golden file (as JSON values, so formatting does not matter).
fn assert_golden(name: &str, actual: &Value) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
        std::fs::write(golden_path(name), text).unwrap();
        return;
    }
    let expected = read_golden(name);
    assert!(
        &expected == actual,
        "{name} differs from the golden file:\n{}",
        serde_json::to_string_pretty(actual).unwrap()
    );
}

fn config() -> EsConfig {
    EsConfig::new("http://127.0.0.1:9200")
}

pub fn specs() -> Vec<SearchFieldSpec> {
    [
        ("cold_box", SearchFieldKind::Keyword),
        ("pallets", SearchFieldKind::Int),
        ("temperature_max", SearchFieldKind::Decimal),
        ("vip", SearchFieldKind::Bool),
        ("delivery_day", SearchFieldKind::Date),
        ("id_card", SearchFieldKind::BlindIndex),
    ]
    .into_iter()
    .map(|(field, kind)| SearchFieldSpec {
        name: name(field),
        kind,
    })
    .collect()
}

pub fn full_document() -> oc_model::search::SearchDocument {
    let mut document = with_ext(
        doc("acme", 448_135_112_458_240_001, 3),
        &[
            ("cold_box", SearchValue::Keyword("BOX-1".into())),
            ("pallets", SearchValue::Int(3)),
            ("temperature_max", SearchValue::Decimal(decimal("-18.5"))),
            ("vip", SearchValue::Bool(true)),
            (
                "delivery_day",
                SearchValue::Date(time::macros::date!(2026 - 12 - 01)),
            ),
            ("id_card", SearchValue::BlindIndex(blind("Yy1jYXJkLWhtYWM"))),
        ],
    );
    document = with_pii(document, PiiField::ReceiverPhone, "cC1waG9uZS1obWFj");
    document.product_names = vec!["冻品 A".into(), "Frozen Shrimp".into()];
    document.skus = vec!["sku-a".into(), "sku-b".into()];
    document.updated_at = document.created_at + Duration::minutes(5);
    document
}

#[test]
fn index_request_uses_external_versioning_through_the_alias() {
    let request = request::build_index_request(&config(), &full_document()).unwrap();
    assert_golden("index_request.json", &request.describe());
    let mut zero = full_document();
    zero.version = 0;
    assert!(request::build_index_request(&config(), &zero).is_err());
    zero.version = u64::MAX;
    assert!(request::build_index_request(&config(), &zero).is_err());
}

#[test]
fn create_index_body_is_a_strict_mapping_per_tenant() {
    let body = request::build_create_index_body(&config(), &tenant("acme"), &specs()).unwrap();
    assert_golden("create_index.json", &body);
    assert_golden(
        "put_mapping.json",
        &request::build_put_mapping_body(&specs()[..2]).unwrap(),
    );
    let chinese = EsConfig {
        product_analyzer: "ik_smart".into(),
        ..config()
    };
    let body = request::build_create_index_body(&chinese, &tenant("acme"), &[]).unwrap();
    assert_eq!(
        body.pointer("/mappings/properties/product_names/analyzer"),
        Some(&json!("ik_smart"))
    );
}

#[test]
fn one_name_cannot_have_two_kinds() {
    let mut fields = specs();
    fields.push(SearchFieldSpec {
        name: name("pallets"),
        kind: SearchFieldKind::Keyword,
    });
    let error = request::build_put_mapping_body(&fields).unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidInput);
    assert_eq!(error.field.as_deref(), Some("/ext/pallets"));
}

/// An archived order's document carries `archived: true`; a hot one carries no flag at all
/// (its body is what it was before the flag existed). A search leaves out what is marked
/// archived (`must_not`, so a document without the flag is hot) unless it includes archived
/// orders; the mapping and the put-mapping of an existing index both declare the flag.
#[test]
fn archived_documents_are_marked_and_left_out_unless_asked() {
    let hot = request::document_body(&full_document());
    assert_eq!(hot.get("archived"), None);
    let archived = request::document_body(&oc_model::search::SearchDocument {
        archived: true,
        ..full_document()
    });
    assert_eq!(archived.get("archived"), Some(&json!(true)));

    let default = request::build_search_body(&tenant("acme"), &SearchQuery::default()).unwrap();
    assert_eq!(
        default.pointer("/query/bool/must_not"),
        Some(&json!([{"term": {"archived": true}}]))
    );
    let including = request::build_search_body(
        &tenant("acme"),
        &SearchQuery {
            include_archived: true,
            ..SearchQuery::default()
        },
    )
    .unwrap();
    assert_eq!(including.pointer("/query/bool/must_not"), None);

    let boolean = json!({"type": "boolean"});
    let create = request::build_create_index_body(&config(), &tenant("acme"), &[]).unwrap();
    assert_eq!(
        create.pointer("/mappings/properties/archived"),
        Some(&boolean)
    );
    let put = request::build_put_mapping_body(&[]).unwrap();
    assert_eq!(put.pointer("/properties/archived"), Some(&boolean));
}

#[test]
fn minimal_search_body_filters_by_tenant() {
    let body = request::build_search_body(&tenant("acme"), &SearchQuery::default()).unwrap();
    assert_golden("search_minimal.json", &body);
}

fn all_filters() -> SearchQuery {
    let base = base_time();
    SearchQuery {
        statuses: vec![
            StatusCode::parse("paid").unwrap(),
            StatusCode::parse("shipped").unwrap(),
        ],
        business_identity: Some(BusinessIdentity::parse("cold-chain").unwrap()),
        order_type: Some(OrderType::parse("standard").unwrap()),
        buyer_id: Some(PartyId::parse("buyer-1").unwrap()),
        merchant_id: Some(PartyId::parse("m-1").unwrap()),
        created_at: TimeRange {
            from: Some(base),
            to: Some(base + Duration::days(7)),
        },
        payable: Some(AmountRange {
            currency: Currency::CNY,
            min_minor: Some(1_000),
            max_minor: Some(50_000),
        }),
        sku: Some("sku-a".into()),
        include_archived: false,
        ext: vec![
            ExtFilter {
                name: name("cold_box"),
                condition: ExtCondition::Equals(SearchValue::Keyword("BOX-1".into())),
            },
            ExtFilter {
                name: name("pallets"),
                condition: ExtCondition::Range(ExtRange::Int {
                    min: Some(2),
                    max: None,
                }),
            },
            ExtFilter {
                name: name("temperature_max"),
                condition: ExtCondition::Range(ExtRange::Decimal {
                    min: Some(decimal("-20")),
                    max: Some(decimal("-18.5")),
                }),
            },
            ExtFilter {
                name: name("vip"),
                condition: ExtCondition::Equals(SearchValue::Bool(true)),
            },
            ExtFilter {
                name: name("delivery_day"),
                condition: ExtCondition::Range(ExtRange::Date {
                    min: Some(time::macros::date!(2026 - 12 - 01)),
                    max: Some(time::macros::date!(2026 - 12 - 31)),
                }),
            },
            ExtFilter {
                name: name("id_card"),
                condition: ExtCondition::Equals(SearchValue::BlindIndex(blind("Yy1jYXJkLWhtYWM"))),
            },
        ],
        pii: vec![(PiiField::ReceiverPhone, blind("cC1waG9uZS1obWFj"))],
        product_text: Some("冻品 frozen".into()),
        sort: SearchSort {
            field: SortField::Payable,
            direction: SortDirection::Asc,
        },
        cursor: None,
        limit: 50,
    }
}

#[test]
fn every_filter_in_one_search_body() {
    let body = request::build_search_body(&tenant("acme"), &all_filters()).unwrap();
    assert_golden("search_all_filters.json", &body);
}

#[test]
fn next_page_uses_search_after() {
    let sort = SearchSort::default();
    let cursor = Cursor {
        sort,
        key: 1_790_028_800_000,
        order_id: id(448_135_112_458_240_001),
    };
    let query = SearchQuery {
        cursor: Some(cursor.encode()),
        limit: 10,
        ..SearchQuery::default()
    };
    let body = request::build_search_body(&tenant("acme"), &query).unwrap();
    assert_golden("search_after.json", &body);
    assert_eq!(
        body["search_after"],
        json!([1_790_028_800_000_i64, 448_135_112_458_240_001_u64])
    );
}

#[test]
fn search_response_becomes_a_page_with_a_cursor() {
    let answer = read_golden("search_response.json");
    // the body asked for limit + 1 = 3 hits and got 3: there is a next page
    let sort = SearchSort::default();
    let page = response::parse_search_response(&answer, sort, 2).unwrap();
    assert_eq!(
        page.hits,
        vec![
            SearchHit {
                order_id: id(448_135_112_458_240_003),
                version: 5,
            },
            SearchHit {
                order_id: id(448_135_112_458_240_002),
                version: 1,
            },
        ]
    );
    assert_eq!(
        page.total,
        Some(TotalHits {
            value: 3,
            exact: true,
        })
    );
    let cursor = Cursor::decode(page.next_cursor.as_deref().unwrap(), sort).unwrap();
    assert_eq!(cursor.key, 1_790_028_800_000);
    assert_eq!(cursor.order_id, id(448_135_112_458_240_002));

    let last_page = response::parse_search_response(&answer, sort, 3).unwrap();
    assert_eq!(last_page.hits.len(), 3);
    assert_eq!(last_page.next_cursor, None);

    let lower_bound = read_golden("search_response_gte.json");
    let page = response::parse_search_response(&lower_bound, sort, 20).unwrap();
    assert_eq!(
        page.total,
        Some(TotalHits {
            value: 10_000,
            exact: false,
        })
    );
    assert!(page.hits.is_empty());
}

#[test]
fn index_answers_map_to_written_or_stale() {
    assert!(response::index_outcome(201, &read_golden("index_created_response.json")).unwrap());
    assert!(response::index_outcome(200, &read_golden("index_updated_response.json")).unwrap());
    assert!(
        !response::index_outcome(409, &read_golden("version_conflict_response.json")).unwrap(),
        "a version conflict under external versioning means stale: not an error"
    );
    let missing = response::index_outcome(404, &read_golden("alias_missing_response.json"));
    assert_eq!(missing.unwrap_err().code, ErrorCode::Unavailable);
    // a document the mapping refuses is refused for good; the others go in
    let rejected =
        response::index_outcome(400, &read_golden("strict_mapping_response.json")).unwrap_err();
    assert_eq!(rejected.code, ErrorCode::InvalidInput);
    assert!(!rejected.is_transient());
    let throttled = response::index_outcome(
        429,
        &json!({"error": {"type": "es_rejected_execution_exception", "reason": "rejected"}, "status": 429}),
    );
    assert_eq!(throttled.unwrap_err().code, ErrorCode::Unavailable);
}

/// What the projector does with a failed write depends on this: permanent failures of one
/// document are dead-lettered, transient ones (every document would fail) stall it.
#[test]
fn index_failures_are_permanent_for_the_document_or_transient_for_the_index() {
    let body = |kind: &str| json!({"error": {"type": kind, "reason": "r"}, "status": 0});
    let permanent = [
        (400, "mapper_parsing_exception"),
        (400, "document_parsing_exception"),
        (400, "illegal_argument_exception"),
        (400, "strict_dynamic_mapping_exception"),
        (413, "content_too_long_exception"),
    ];
    for (status, kind) in permanent {
        let error = response::index_outcome(status, &body(kind)).unwrap_err();
        assert!(!error.is_transient(), "{status} {kind}: {error}");
        assert_eq!(error.code, ErrorCode::InvalidInput, "{status} {kind}");
    }
    let transient = [
        (401, "security_exception"),
        (403, "cluster_block_exception"),
        (404, "index_not_found_exception"),
        (408, "timeout"),
        (429, "es_rejected_execution_exception"),
        (500, "null_pointer_exception"),
        (502, "bad gateway"),
        (503, "unavailable_shards_exception"),
    ];
    for (status, kind) in transient {
        let error = response::index_outcome(status, &body(kind)).unwrap_err();
        assert!(error.is_transient(), "{status} {kind}: {error}");
    }
    let unexpected = response::index_outcome(418, &body("teapot")).unwrap_err();
    assert_eq!(unexpected.code, ErrorCode::Internal);
    assert!(!unexpected.is_transient());
}

#[test]
fn get_answers_give_the_held_version() {
    assert_eq!(
        response::parse_get_version(200, &read_golden("get_response.json")).unwrap(),
        Some(3)
    );
    assert_eq!(
        response::parse_get_version(404, &read_golden("get_not_found_response.json")).unwrap(),
        None
    );
    assert!(response::delete_outcome(404, &read_golden("get_not_found_response.json")).is_ok());
}

#[test]
fn no_plaintext_pii_or_ciphertext_in_the_document_body() {
    let body = request::document_body(&full_document());
    let text = body.to_string();
    assert!(
        text.contains("cC1waG9uZS1obWFj"),
        "the blind index is indexed"
    );
    assert_eq!(
        body["pii_blind"],
        json!({"receiver_phone": "cC1waG9uZS1obWFj"})
    );
    let top_level: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mapped = read_golden("create_index.json");
    for key in top_level {
        assert!(
            mapped
                .pointer(&format!("/mappings/properties/{key}"))
                .is_some(),
            "{key} is in the strict mapping"
        );
    }
}
