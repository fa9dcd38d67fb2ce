//! Wire tests: the real `elasticsearch` client against a tiny loopback HTTP server that
//! records what the client sends (method, path, query, headers, body) and answers with
//! golden Elasticsearch responses. This checks the client wiring — URLs, methods,
//! `version_type=external`, `require_alias`, headers, bodies — over real HTTP. It does not
//! check Elasticsearch's behaviour: no Elasticsearch server runs here.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use oc_model::ErrorCode;
use oc_model::ports::{SearchFields, SearchIndex};
use oc_model::search::SearchQuery;
use oc_search::elastic::request;
use oc_search::{EsConfig, EsSearchIndex, MappedEsIndex};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use common::*;

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    body: Value,
}

/// A scripted HTTP/1.1 server on 127.0.0.1: answers requests in order with the given
/// `(status, body)` pairs and records each request.
struct FakeElasticsearch {
    url: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeElasticsearch {
    async fn start(answers: Vec<(u16, Value)>) -> FakeElasticsearch {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        let log = Arc::clone(&recorded);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = Arc::clone(&log);
                let answers = Arc::clone(&answers);
                tokio::spawn(serve(stream, log, answers));
            }
        });
        FakeElasticsearch {
            url,
            recorded,
            server,
        }
    }

    fn client(&self) -> EsSearchIndex {
        EsSearchIndex::connect(EsConfig::new(&self.url)).unwrap()
    }

    fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }
}

impl Drop for FakeElasticsearch {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Answers = Arc<Mutex<std::vec::IntoIter<(u16, Value)>>>;

async fn serve(stream: TcpStream, log: Arc<Mutex<Vec<Recorded>>>, answers: Answers) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let mut headers = BTreeMap::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
        let length: usize = headers
            .get("content-length")
            .map_or(0, |value| value.parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await.unwrap();
        let (path, query_text) = target.split_once('?').unwrap_or((&target, ""));
        let query = query_text
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (key.to_owned(), value.to_owned())
            })
            .collect();
        log.lock().unwrap().push(Recorded {
            method: method.clone(),
            path: path.to_owned(),
            query,
            headers,
            body: if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body).unwrap()
            },
        });
        let (status, answer) = answers
            .lock()
            .unwrap()
            .next()
            .unwrap_or((500, json!({"error": "no scripted answer"})));
        let payload = if method == "HEAD" || answer.is_null() {
            String::new()
        } else {
            answer.to_string()
        };
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            if method == "HEAD" { 0 } else { payload.len() }
        );
        let stream = reader.get_mut();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(payload.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
    }
}

fn golden(name: &str) -> Value {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn document() -> oc_model::search::SearchDocument {
    let mut document = with_ext(
        doc("acme", 448_135_112_458_240_001, 3),
        &[("pallets", oc_model::search::SearchValue::Int(3))],
    );
    document.product_names = vec!["冻品 A".into()];
    document
}

#[tokio::test]
async fn upsert_sends_the_golden_request_and_reads_written() {
    let server = FakeElasticsearch::start(vec![(201, golden("index_created_response.json"))]).await;
    let written = server.client().upsert(&document()).await.unwrap();
    assert!(written);
    let sent = &server.requests()[0];
    let expected = request::build_index_request(&EsConfig::new(&server.url), &document())
        .unwrap()
        .describe();
    assert_eq!(sent.method, expected["method"]);
    assert_eq!(sent.path, expected["path"]);
    assert_eq!(json!(sent.query), expected["query"]);
    assert_eq!(sent.body, expected["body"]);
    assert_eq!(sent.path, "/oc-orders-acme/_doc/448135112458240001");
    assert_eq!(sent.query["version_type"], "external");
    assert_eq!(sent.query["version"], "3");
    assert_eq!(sent.query["require_alias"], "true");
    assert_eq!(sent.headers["content-type"], "application/json");
}

#[tokio::test]
async fn upsert_reads_a_version_conflict_as_stale() {
    let server =
        FakeElasticsearch::start(vec![(409, golden("version_conflict_response.json"))]).await;
    assert!(!server.client().upsert(&document()).await.unwrap());
}

#[tokio::test]
async fn upsert_without_the_tenant_alias_is_an_error() {
    let server = FakeElasticsearch::start(vec![(404, golden("alias_missing_response.json"))]).await;
    let error = server.client().upsert(&document()).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
}

#[tokio::test]
async fn search_posts_the_body_to_the_tenant_alias() {
    let server = FakeElasticsearch::start(vec![(200, golden("search_response.json"))]).await;
    let query = SearchQuery {
        limit: 2,
        ..SearchQuery::default()
    };
    let page = server
        .client()
        .search(&tenant("acme"), &query)
        .await
        .unwrap();
    assert_eq!(page.hits.len(), 2);
    assert!(page.next_cursor.is_some());
    let sent = &server.requests()[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/oc-orders-acme/_search");
    assert_eq!(
        sent.body,
        request::build_search_body(&tenant("acme"), &query).unwrap()
    );
    assert_eq!(
        sent.body["query"]["bool"]["filter"][0],
        json!({"term": {"tenant": "acme"}})
    );

    // the next page carries the cursor as search_after
    let server = FakeElasticsearch::start(vec![(200, golden("search_response_gte.json"))]).await;
    let next = SearchQuery {
        cursor: page.next_cursor.clone(),
        ..query
    };
    server
        .client()
        .search(&tenant("acme"), &next)
        .await
        .unwrap();
    let sent = &server.requests()[0];
    assert_eq!(
        sent.body["search_after"],
        json!([1_790_028_800_000_i64, 448_135_112_458_240_002_u64])
    );
}

#[tokio::test]
async fn search_of_a_tenant_without_an_index_is_empty() {
    let server = FakeElasticsearch::start(vec![(404, golden("alias_missing_response.json"))]).await;
    let page = server
        .client()
        .search(&tenant("acme"), &SearchQuery::default())
        .await
        .unwrap();
    assert!(page.hits.is_empty());
}

#[tokio::test]
async fn get_version_and_delete_by_id() {
    let server = FakeElasticsearch::start(vec![
        (200, golden("get_response.json")),
        (404, golden("get_not_found_response.json")),
        (200, json!({"result": "deleted"})),
        (404, json!({"result": "not_found"})),
    ])
    .await;
    let client = server.client();
    let t = tenant("acme");
    assert_eq!(
        client
            .get_version(&t, id(448_135_112_458_240_001))
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(
        client
            .get_version(&t, id(448_135_112_458_240_099))
            .await
            .unwrap(),
        None
    );
    client
        .delete(&t, id(448_135_112_458_240_001))
        .await
        .unwrap();
    client
        .delete(&t, id(448_135_112_458_240_099))
        .await
        .unwrap();
    let sent = server.requests();
    assert_eq!(sent[0].method, "GET");
    assert_eq!(sent[0].path, "/oc-orders-acme/_doc/448135112458240001");
    assert_eq!(sent[0].query["_source"], "false");
    assert_eq!(sent[2].method, "DELETE");
    assert_eq!(sent[2].path, "/oc-orders-acme/_doc/448135112458240001");
}

/// With `refresh_ms` configured, a new index is created with that refresh interval and an
/// existing one is given it after its mapping (a dynamic setting): how soon a write becomes
/// searchable. Without it, no settings call is made (the previous test's three requests).
#[tokio::test]
async fn ensure_index_sets_the_configured_refresh_interval() {
    let exists = json!({
        "error": {"type": "resource_already_exists_exception", "index": "oc-orders-acme.v1"},
        "status": 400
    });
    let server = FakeElasticsearch::start(vec![
        (200, json!({"acknowledged": true, "shards_acknowledged": true, "index": "oc-orders-acme.v1"})),
        (400, exists),
        (200, json!({"acknowledged": true})),
        (200, json!({"acknowledged": true})),
    ])
    .await;
    let client = EsSearchIndex::connect(
        EsConfig::from_url(&format!("{}?refresh_ms=250", server.url)).unwrap(),
    )
    .unwrap();
    client.ensure_index(&tenant("acme"), &[]).await.unwrap();
    client.ensure_index(&tenant("acme"), &[]).await.unwrap();
    let sent = server.requests();
    assert_eq!(sent.len(), 4);
    assert_eq!(
        sent[0].body["settings"]["index"]["refresh_interval"],
        "250ms"
    );
    assert_eq!(
        (sent[3].method.as_str(), sent[3].path.as_str()),
        ("PUT", "/oc-orders-acme/_settings")
    );
    assert_eq!(
        sent[3].body,
        json!({"index": {"refresh_interval": "250ms"}})
    );
}

#[tokio::test]
async fn ensure_index_creates_or_extends_the_mapping() {
    let exists = json!({
        "error": {
            "type": "resource_already_exists_exception",
            "reason": "index [oc-orders-acme.v1/abc] already exists",
            "index": "oc-orders-acme.v1"
        },
        "status": 400
    });
    let server = FakeElasticsearch::start(vec![
        (200, json!({"acknowledged": true, "shards_acknowledged": true, "index": "oc-orders-acme.v1"})),
        (400, exists),
        (200, json!({"acknowledged": true})),
    ])
    .await;
    let client = server.client();
    let fields = vec![oc_model::search::SearchFieldSpec {
        name: name("pallets"),
        kind: oc_model::search::SearchFieldKind::Int,
    }];
    client.ensure_index(&tenant("acme"), &fields).await.unwrap();
    client.ensure_index(&tenant("acme"), &fields).await.unwrap();
    let sent = server.requests();
    assert_eq!(sent.len(), 3);
    assert_eq!(
        (sent[0].method.as_str(), sent[0].path.as_str()),
        ("PUT", "/oc-orders-acme.v1")
    );
    assert_eq!(
        sent[0].body,
        request::build_create_index_body(client.config(), &tenant("acme"), &fields).unwrap()
    );
    assert_eq!(
        (sent[2].method.as_str(), sent[2].path.as_str()),
        ("PUT", "/oc-orders-acme/_mapping")
    );
    assert_eq!(
        sent[2].body,
        request::build_put_mapping_body(&fields).unwrap()
    );
}

#[tokio::test]
async fn the_mapped_index_ensures_each_tenants_mapping_before_its_first_write_and_after_a_change() {
    let created =
        json!({"acknowledged": true, "shards_acknowledged": true, "index": "oc-orders-acme.v1"});
    let exists = json!({
        "error": {"type": "resource_already_exists_exception", "reason": "exists"},
        "status": 400
    });
    let server = FakeElasticsearch::start(vec![
        (200, created),
        (201, golden("index_created_response.json")),
        (201, golden("index_created_response.json")),
        (400, exists),
        (200, json!({"acknowledged": true})),
        (201, golden("index_created_response.json")),
    ])
    .await;
    let pallets = oc_model::search::SearchFieldSpec {
        name: name("pallets"),
        kind: oc_model::search::SearchFieldKind::Int,
    };
    let configured = Arc::new(Mutex::new(vec![pallets.clone()]));
    let source = Arc::clone(&configured);
    let index = MappedEsIndex::new(server.client(), Arc::new(Configured(source)));
    assert!(index.upsert(&document()).await.unwrap());
    assert!(index.upsert(&document()).await.unwrap());
    // a tenant config reload adds a searchable field
    let dock = oc_model::search::SearchFieldSpec {
        name: name("dock"),
        kind: oc_model::search::SearchFieldKind::Keyword,
    };
    configured.lock().unwrap().push(dock.clone());
    assert!(index.upsert(&document()).await.unwrap());

    let sent: Vec<(String, String)> = server
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    let doc_path = "/oc-orders-acme/_doc/448135112458240001".to_owned();
    assert_eq!(
        sent,
        vec![
            ("PUT".to_owned(), "/oc-orders-acme.v1".to_owned()),
            ("POST".to_owned(), doc_path.clone()),
            ("POST".to_owned(), doc_path.clone()),
            ("PUT".to_owned(), "/oc-orders-acme.v1".to_owned()),
            ("PUT".to_owned(), "/oc-orders-acme/_mapping".to_owned()),
            ("POST".to_owned(), doc_path),
        ],
        "create before the first write, nothing more while the fields stay, extend after a change"
    );
    let mapping = &server.requests()[4].body;
    let mut both = vec![dock, pallets];
    both.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    assert_eq!(mapping, &request::build_put_mapping_body(&both).unwrap());
}

#[tokio::test]
async fn refresh_and_health() {
    let server = FakeElasticsearch::start(vec![
        (
            200,
            json!({"_shards": {"total": 2, "successful": 1, "failed": 0}}),
        ),
        (200, Value::Null),
    ])
    .await;
    let client = server.client();
    client.refresh().await.unwrap();
    client.health().await.unwrap();
    let sent = server.requests();
    // the client sends a bodiless refresh as GET, which Elasticsearch accepts like POST
    assert_eq!(sent[0].method, "GET");
    // both families: orders and after-sales
    assert_eq!(
        sent[0].path.replace("%2A", "*").replace("%2C", ","),
        "/oc-orders-*,oc-after-sales-*/_refresh"
    );
    assert_eq!(
        (sent[1].method.as_str(), sent[1].path.as_str()),
        ("HEAD", "/")
    );
}

#[tokio::test]
async fn basic_auth_is_sent_and_never_printed() {
    let server = FakeElasticsearch::start(vec![(200, Value::Null)]).await;
    let config = EsConfig {
        basic_auth: Some(("indexer".into(), "s3cret".into())),
        ..EsConfig::new(&server.url)
    };
    assert!(!format!("{config:?}").contains("s3cret"));
    let client = EsSearchIndex::connect(config).unwrap();
    client.health().await.unwrap();
    assert_eq!(
        server.requests()[0].headers["authorization"],
        "Basic aW5kZXhlcjpzM2NyZXQ="
    );
}

#[tokio::test]
async fn an_unreachable_cluster_is_unavailable() {
    // a port that was just free: nothing listens there
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = EsSearchIndex::connect(EsConfig::new(url)).unwrap();
    let error = client.upsert(&document()).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    assert_eq!(
        client.health().await.unwrap_err().code,
        ErrorCode::Unavailable
    );
}

/// A tenant config whose searchable fields a test changes (a reload).
#[derive(Debug)]
struct Configured(Arc<Mutex<Vec<oc_model::search::SearchFieldSpec>>>);

impl SearchFields for Configured {
    fn at_slot(
        &self,
        _: &oc_model::TenantId,
        _: &oc_model::BusinessIdentity,
        _: &oc_model::OrderType,
        _: &oc_model::Slot,
    ) -> Option<oc_model::search::SearchFieldSpec> {
        None
    }

    fn of_tenant(&self, _: &oc_model::TenantId) -> Vec<oc_model::search::SearchFieldSpec> {
        self.0.lock().unwrap().clone()
    }
}

/// The first after-sale of a tenant finds no alias (`require_alias` refuses to auto-create an
/// index with a dynamic mapping): the adapter creates the after-sale index with its fixed
/// mapping, then writes again, externally versioned, to the after-sale alias.
#[tokio::test]
async fn the_first_after_sale_of_a_tenant_creates_its_index_then_writes() {
    use oc_model::aftersale::listing::AfterSaleDocument;
    use oc_model::aftersale::{AfterSaleChannel, AfterSaleId, AfterSaleType};
    let server = FakeElasticsearch::start(vec![
        (
            404,
            json!({"error": {"type": "index_not_found_exception", "reason": "no such index [oc-after-sales-acme]"}, "status": 404}),
        ),
        (200, json!({"acknowledged": true})),
        (201, json!({"result": "created", "_version": 2})),
    ])
    .await;
    let at = base_time();
    let document = AfterSaleDocument {
        tenant: tenant("acme"),
        after_sale_id: AfterSaleId::from_raw(77).unwrap(),
        order_id: id(7),
        version: 2,
        status: oc_model::StatusCode::parse("approved").unwrap(),
        kind: AfterSaleType::Exchange,
        channel: AfterSaleChannel::Merchant,
        merchant_id: None,
        skus: vec!["sku-a".into()],
        created_at: at,
        updated_at: at,
    };
    assert!(server.client().upsert_after_sale(&document).await.unwrap());
    let sent = server.requests();
    assert_eq!(sent.len(), 3);
    for write in [&sent[0], &sent[2]] {
        assert_eq!(write.path, "/oc-after-sales-acme/_doc/77");
        assert_eq!(write.query.get("version").map(String::as_str), Some("2"));
        assert_eq!(
            write.query.get("version_type").map(String::as_str),
            Some("external")
        );
        assert_eq!(
            write.query.get("require_alias").map(String::as_str),
            Some("true")
        );
        assert_eq!(write.body["kind"], "exchange");
        assert!(write.body.get("merchant_id").is_none());
    }
    assert_eq!(
        (sent[1].method.as_str(), sent[1].path.as_str()),
        ("PUT", "/oc-after-sales-acme.v1")
    );
    assert_eq!(sent[1].body["mappings"]["dynamic"], "strict");
    assert!(sent[1].body["aliases"]["oc-after-sales-acme"]["is_write_index"] == true);
}
