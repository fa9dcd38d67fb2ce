//! The `SearchIndex` conformance suite (its cases are `oc_conformance::search`, beside the
//! port; `oc-resilience` runs them over `Guarded<tantivy>` too). The same cases run against
//! every adapter, each with a live engine: the embedded tantivy index in memory, on disk, and committing after every
//! write; and the Elasticsearch adapter (through `MappedEsIndex`, as the binary wires it)
//! against the OpenSearch node of `deploy/local/services.sh` (`OC_TEST_SEARCH_URL`), with an
//! index prefix of its own per test. When that engine does not answer, the Elasticsearch
//! cases fail with a message that names it.

use std::sync::Arc;

use oc_model::ports::SearchIndex;
use oc_model::search::SearchQuery;
use oc_search::{
    CommitPolicy, EsConfig, EsSearchIndex, MappedEsIndex, TantivyConfig, TantivySearchIndex,
};
use oc_test_support::SearchPrefix;

use oc_conformance::search::*;

/// What a test's index leaves behind: a temporary directory, or indices on the engine.
enum Guard {
    Nothing,
    /// Kept only to delete the directory when the test ends.
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Engine(SearchPrefix),
}

/// An index under test and what it leaves behind.
struct Opened(Box<dyn SearchIndex>, Guard);

impl SearchIndexHarness for Opened {
    fn index(&self) -> &dyn SearchIndex {
        &*self.0
    }

    async fn finish(self) {
        self.1.finish().await;
    }
}

impl Opened {
    async fn tantivy_in_memory(_label: &str) -> Opened {
        let (index, guard) = tantivy_in_memory().await;
        Opened(index, guard)
    }

    async fn tantivy_on_disk(_label: &str) -> Opened {
        let (index, guard) = tantivy_on_disk().await;
        Opened(index, guard)
    }

    async fn tantivy_every_write(_label: &str) -> Opened {
        let (index, guard) = tantivy_every_write().await;
        Opened(index, guard)
    }

    async fn elasticsearch(_label: &str) -> Opened {
        let (index, guard) = elasticsearch().await;
        Opened(index, guard)
    }
}

impl Guard {
    async fn finish(self) {
        if let Guard::Engine(prefix) = self {
            prefix.cleanup().await.unwrap();
        }
    }
}

async fn tantivy_in_memory() -> (Box<dyn SearchIndex>, Guard) {
    let config = TantivyConfig {
        writer_memory_bytes: 15_000_000,
        ..TantivyConfig::in_memory().with_commit(CommitPolicy::Manual)
    };
    (
        Box::new(TantivySearchIndex::open(config).unwrap()),
        Guard::Nothing,
    )
}

async fn tantivy_on_disk() -> (Box<dyn SearchIndex>, Guard) {
    let dir = tempfile::tempdir().unwrap();
    let config = TantivyConfig {
        writer_memory_bytes: 15_000_000,
        ..TantivyConfig::on_disk(dir.path().join("index")).with_commit(CommitPolicy::Manual)
    };
    (
        Box::new(TantivySearchIndex::open(config).unwrap()),
        Guard::Dir(dir),
    )
}

async fn tantivy_every_write() -> (Box<dyn SearchIndex>, Guard) {
    let config = TantivyConfig {
        writer_memory_bytes: 15_000_000,
        ..TantivyConfig::in_memory().with_commit(CommitPolicy::EveryWrite)
    };
    (
        Box::new(TantivySearchIndex::open(config).unwrap()),
        Guard::Nothing,
    )
}

/// The Elasticsearch adapter on the test engine, default settings but for the index prefix
/// (one per test, removed afterwards), no replicas (one node) and a refresh interval (so
/// every case also shows the engine takes the index settings `refresh_ms` sends).
async fn elasticsearch() -> (Box<dyn SearchIndex>, Guard) {
    let prefix = SearchPrefix::new("search_conformance").await.unwrap();
    let config = EsConfig {
        index_prefix: prefix.prefix().to_owned(),
        number_of_replicas: 0,
        refresh_interval: Some(std::time::Duration::from_millis(500)),
        ..EsConfig::new(prefix.url())
    };
    let index = MappedEsIndex::new(
        EsSearchIndex::connect(config).unwrap(),
        Arc::new(ConformanceFields),
    );
    (Box::new(index), Guard::Engine(prefix))
}

// ---- the port's suite (`oc_conformance::search`) over every adapter ----

oc_conformance::search_index_conformance!(tantivy_memory, Opened::tantivy_in_memory);
oc_conformance::search_index_conformance!(tantivy_disk, Opened::tantivy_on_disk);
oc_conformance::search_index_conformance!(tantivy_commit_every_write, Opened::tantivy_every_write);
oc_conformance::search_index_conformance!(elasticsearch, Opened::elasticsearch);

/// Embedded-only: the index on disk survives a close and reopen, uncommitted writes
/// included (dropping the index commits).
#[tokio::test]
async fn tantivy_index_on_disk_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    let config = TantivyConfig {
        writer_memory_bytes: 15_000_000,
        ..TantivyConfig::on_disk(&path).with_commit(CommitPolicy::Manual)
    };
    {
        let index = TantivySearchIndex::open(config.clone()).unwrap();
        index.upsert(&doc("acme", 1, 3)).await.unwrap();
        index.refresh().await.unwrap();
        index.upsert(&doc("acme", 2, 1)).await.unwrap();
        // dropped here without a refresh
    }
    let index = TantivySearchIndex::open(config).unwrap();
    assert_eq!(
        index.get_version(&tenant("acme"), id(1)).await.unwrap(),
        Some(3)
    );
    assert_eq!(
        index.get_version(&tenant("acme"), id(2)).await.unwrap(),
        Some(1)
    );
    assert_eq!(id_set(&index, "acme", query()).await, set(&[1, 2]));
    assert!(
        !index.upsert(&doc("acme", 1, 2)).await.unwrap(),
        "versions survive too"
    );
}

/// Embedded-only: the interval policy makes writes searchable without a refresh.
#[tokio::test]
async fn tantivy_interval_commit_makes_writes_visible() {
    let config = TantivyConfig {
        writer_memory_bytes: 15_000_000,
        ..TantivyConfig::in_memory()
            .with_commit(CommitPolicy::Interval(std::time::Duration::from_millis(50)))
    };
    let index = TantivySearchIndex::open(config).unwrap();
    index.upsert(&doc("acme", 1, 1)).await.unwrap();
    // bounded wait (no assertion on speed: just long enough for several intervals)
    for _ in 0..200 {
        if !id_set(&index, "acme", query()).await.is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("write never became visible");
}

// ---------------------------------------------------------------------------------------
// Archived orders (issue #16): the projector writes an archived order's cold copy (one
// version above its last hot one) with `archived: true`; searches leave archived orders out
// unless `include_archived` asks. The cases are in the port's suite
// (`oc_conformance::search::archived_cases`); what follows are the upgrade tests of each
// engine.
// ---------------------------------------------------------------------------------------

/// The embedded index's schema as it was before archived orders were marked (a copy of
/// `Fields::new` then; the mark is a term of the existing `ext` field, so the schema did not
/// change).
fn tantivy_schema_before_archived() -> tantivy::schema::Schema {
    use tantivy::schema::{FAST, INDEXED, STRING};
    let mut builder = tantivy::schema::Schema::builder();
    for name in ["doc_key", "tenant"] {
        builder.add_text_field(name, STRING);
    }
    builder.add_u64_field("order_id", INDEXED | FAST);
    builder.add_u64_field("version", FAST);
    for name in [
        "status",
        "business_identity",
        "order_type",
        "buyer_id",
        "merchant_id",
    ] {
        builder.add_text_field(name, STRING);
    }
    for name in ["created_at", "updated_at", "payable_minor"] {
        builder.add_i64_field(name, INDEXED | FAST);
    }
    for name in ["currency", "product_terms", "sku", "ext", "pii_blind"] {
        builder.add_text_field(name, STRING);
    }
    builder.build()
}

/// Upgrade path of the embedded index: an index on disk written by the code before archived
/// orders were marked opens with this code as it is (no rebuild), its documents count as hot,
/// and an order archived afterwards is marked and hidden like any other.
#[tokio::test]
async fn tantivy_index_of_the_schema_before_archived_opens_and_counts_as_hot() {
    use tantivy::TantivyDocument;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    std::fs::create_dir_all(&path).unwrap();
    {
        let schema = tantivy_schema_before_archived();
        let old = tantivy::Index::create_in_dir(&path, schema.clone()).unwrap();
        let mut writer: tantivy::IndexWriter<TantivyDocument> = old.writer(15_000_000).unwrap();
        let field = |name: &str| schema.get_field(name).unwrap();
        let created = i64::try_from(base_time().unix_timestamp_nanos() / 1_000_000).unwrap();
        for raw in [1u64, 2] {
            // what the old `Fields::to_document` wrote for `doc("acme", raw, 1)`
            let mut document = TantivyDocument::new();
            document.add_text(field("doc_key"), format!("acme/{raw}"));
            document.add_text(field("tenant"), "acme");
            document.add_u64(field("order_id"), raw);
            document.add_u64(field("version"), 1);
            document.add_text(field("status"), "pending_payment");
            document.add_text(field("business_identity"), "cold-chain");
            document.add_text(field("order_type"), "standard");
            document.add_text(field("buyer_id"), "buyer-1");
            document.add_text(field("merchant_id"), "m-1");
            document.add_i64(field("created_at"), created + i64::try_from(raw).unwrap());
            document.add_i64(field("updated_at"), created);
            document.add_i64(field("payable_minor"), 10_000);
            document.add_text(field("currency"), "CNY");
            document.add_text(field("sku"), "sku-plain");
            writer.add_document(document).unwrap();
        }
        writer.commit().unwrap();
    }
    let config = TantivyConfig {
        writer_memory_bytes: 15_000_000,
        ..TantivyConfig::on_disk(&path).with_commit(CommitPolicy::Manual)
    };
    let index = TantivySearchIndex::open(config).expect("an index of the old schema opens");
    let t = tenant("acme");
    assert_eq!(index.get_version(&t, id(1)).await.unwrap(), Some(1));
    assert_eq!(
        id_set(&index, "acme", query()).await,
        set(&[1, 2]),
        "old documents are hot"
    );
    let including = SearchQuery {
        include_archived: true,
        ..query()
    };
    assert_eq!(
        id_set(&index, "acme", including.clone()).await,
        set(&[1, 2])
    );
    // order 2 archived now: its cold copy replaces the old document
    let archived = oc_model::search::SearchDocument {
        archived: true,
        ..doc("acme", 2, 2)
    };
    assert!(index.upsert(&archived).await.unwrap());
    index.refresh().await.unwrap();
    assert_eq!(id_set(&index, "acme", query()).await, set(&[1]));
    assert_eq!(id_set(&index, "acme", including).await, set(&[1, 2]));
}

/// Upgrade path of the OpenSearch adapter: a tenant index created with the mapping before
/// `archived` existed (strict), holding a document written then, keeps answering (the
/// default filter is `must_not archived: true`, so the unflagged document is hot, before and
/// after the field is mapped), and the first write of this code puts the field into the
/// existing index's mapping, so an archived copy can be written and is hidden.
#[tokio::test]
async fn opensearch_index_of_the_mapping_before_archived_gains_the_field() {
    let prefix = SearchPrefix::new("search_archived_upgrade").await.unwrap();
    let config = EsConfig {
        index_prefix: prefix.prefix().to_owned(),
        number_of_replicas: 0,
        ..EsConfig::new(prefix.url())
    };
    let t = tenant("acme");
    // the index as the code before this change created it: today's body without `archived`
    let mut old_body =
        oc_search::elastic::request::build_create_index_body(&config, &t, &conformance_fields())
            .unwrap();
    old_body["mappings"]["properties"]
        .as_object_mut()
        .unwrap()
        .remove("archived")
        .expect("the mapping declares archived");
    let physical = config.physical_index(&t, 1);
    let (status, body) = prefix
        .request("PUT", &format!("/{physical}"), Some(&old_body.to_string()))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    // a hot document as it was written then (a hot body has no `archived`)
    let written =
        oc_search::elastic::request::build_index_request(&config, &doc("acme", 1, 1)).unwrap();
    assert_eq!(written.body.get("archived"), None);
    let (status, body) = prefix
        .request(
            "PUT",
            &format!(
                "/{}/_doc/1?version=1&version_type=external&require_alias=true&refresh=true",
                config.alias(&t)
            ),
            Some(&written.body.to_string()),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let mapped = |properties: &str| {
        serde_json::from_str::<serde_json::Value>(properties).unwrap()[&physical]["mappings"]
            ["properties"]["archived"]
            .clone()
    };
    let (_, mapping) = prefix
        .request("GET", &format!("/{physical}/_mapping"), None)
        .await
        .unwrap();
    assert_eq!(mapped(&mapping), serde_json::Value::Null, "old mapping");

    let index = MappedEsIndex::new(
        EsSearchIndex::connect(config.clone()).unwrap(),
        Arc::new(ConformanceFields),
    );
    let including = SearchQuery {
        include_archived: true,
        ..query()
    };
    // searching an index without the field: the old document is hot
    assert_eq!(id_set(&index, "acme", query()).await, set(&[1]));
    assert_eq!(id_set(&index, "acme", including.clone()).await, set(&[1]));
    // the first write ensures the mapping; an archived copy is then accepted by the strict
    // mapping (it would be refused without the field)
    let archived = oc_model::search::SearchDocument {
        archived: true,
        ..doc("acme", 2, 2)
    };
    assert!(index.upsert(&doc("acme", 2, 1)).await.unwrap());
    assert!(index.upsert(&archived).await.unwrap());
    index.refresh().await.unwrap();
    let (_, mapping) = prefix
        .request("GET", &format!("/{physical}/_mapping"), None)
        .await
        .unwrap();
    assert_eq!(
        mapped(&mapping),
        serde_json::json!({"type": "boolean"}),
        "{mapping}"
    );
    assert_eq!(id_set(&index, "acme", query()).await, set(&[1]));
    assert_eq!(id_set(&index, "acme", including).await, set(&[1, 2]));
    prefix.cleanup().await.unwrap();
}
