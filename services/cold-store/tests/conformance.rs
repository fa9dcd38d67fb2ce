//! The cold-store conformance suite: the same cases run against the embedded redb adapter
//! (a fresh file per test) and the HBase adapter on the live HBase of
//! `deploy/local/services.sh` (its Thrift1 server, `OC_TEST_HBASE_ADDRESS`; a fresh table
//! per test, dropped afterwards). HBase-only checks follow the suite, on the live server too:
//! the row layout and cell timestamps, the repair of a writer that died after its claim, a
//! late stale write, the salt-count guard, a cut connection.
//!
//! The Thrift test double (`hbase_double`) stays only for what a live server cannot show:
//! which calls the adapter makes and how many, that every scanner is closed, an `IOError`
//! answer, and the framed + compact wire (the test server speaks the default buffered
//! binary wire).

mod hbase_double;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hbase_double::{HbaseDouble, Wire};
use oc_cold_store::hbase::{
    self as hb, COLUMN_CREATED, COLUMN_ORDER, COLUMN_STATUS, COLUMN_VERSION,
};
use oc_cold_store::{HbaseColdStore, HbaseConfig, RedbColdStore};
use oc_conformance::cold_store::{
    BASE_MS, ColdStoreHarness, at_ms, bad_cursor_is_invalid_input, id_at, order,
    reads_are_tenant_scoped, scan_all, scan_pages_a_time_window_in_id_order, tenant,
};
use oc_model::aftersale::AfterSaleId;
use oc_model::archive::ArchivedAfterSale;
use oc_model::ports::{ColdStore, PageRequest};
use oc_model::{ErrorCode, Order, OrderId, TenantId};
use oc_test_support::{HbaseTable, TcpProxy, hbase_address, with_hbase_client};
use time::OffsetDateTime;

// ---- harness ----

enum Backend {
    Redb { path: PathBuf },
    Hbase { table: HbaseTable },
    HbaseDouble { address: String, table: String },
}

struct Harness {
    store: Arc<dyn ColdStore>,
    backend: Backend,
}

fn unique_dir(label: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "oc-cold-store-{label}-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        OffsetDateTime::now_utc().unix_timestamp_nanos()
    ))
}

fn hbase_config(address: &str, table: &str) -> HbaseConfig {
    HbaseConfig {
        table: table.to_owned(),
        max_connections: 6,
        ..HbaseConfig::new(address)
    }
}

impl Harness {
    async fn redb(label: &str) -> Harness {
        let path = unique_dir(label).join("cold.redb");
        let store = RedbColdStore::open(&path).await.unwrap();
        Harness {
            store: Arc::new(store),
            backend: Backend::Redb { path },
        }
    }

    async fn hbase(label: &str) -> Harness {
        let table = HbaseTable::new(label).await.unwrap();
        let store = HbaseColdStore::connect(hbase_config(&hbase_address(), table.name()))
            .await
            .unwrap();
        Harness {
            store: Arc::new(store),
            backend: Backend::Hbase { table },
        }
    }

    /// The HBase adapter on a Thrift double, for what only the double can tell.
    async fn hbase_double(label: &str, double: &HbaseDouble) -> Harness {
        let address = double.address();
        let table = format!("oc_cold_{label}");
        let store = HbaseColdStore::connect(hbase_config(&address, &table))
            .await
            .unwrap();
        Harness {
            store: Arc::new(store),
            backend: Backend::HbaseDouble { address, table },
        }
    }
}

impl ColdStoreHarness for Harness {
    fn shared(&self) -> &Arc<dyn ColdStore> {
        &self.store
    }

    async fn reopen(&mut self) {
        // release the redb file lock before opening it again
        self.store = Arc::new(Unopened);
        self.store = match &self.backend {
            Backend::Redb { path } => Arc::new(RedbColdStore::open(path).await.unwrap()),
            Backend::Hbase { table } => Arc::new(
                HbaseColdStore::connect(hbase_config(&hbase_address(), table.name()))
                    .await
                    .unwrap(),
            ),
            Backend::HbaseDouble { address, table } => Arc::new(
                HbaseColdStore::connect(hbase_config(address, table))
                    .await
                    .unwrap(),
            ),
        };
    }

    async fn finish(self) {
        drop(self.store);
        match self.backend {
            Backend::Redb { path } => std::fs::remove_dir_all(path.parent().unwrap()).unwrap(),
            Backend::Hbase { table } => table.cleanup().await.unwrap(),
            Backend::HbaseDouble { .. } => {}
        }
    }
}

/// A placeholder while a store is reopened.
#[derive(Debug)]
struct Unopened;

#[async_trait::async_trait]
impl ColdStore for Unopened {
    async fn put(&self, _: &Order) -> oc_model::DomainResult<bool> {
        unreachable!()
    }
    async fn get(&self, _: &TenantId, _: OrderId) -> oc_model::DomainResult<Option<Order>> {
        unreachable!()
    }
    async fn scan(
        &self,
        _: &TenantId,
        _: OffsetDateTime,
        _: OffsetDateTime,
        _: PageRequest,
    ) -> oc_model::DomainResult<oc_model::ports::Page<Order>> {
        unreachable!()
    }
    async fn put_history(
        &self,
        _: &TenantId,
        _: OrderId,
        _: &[oc_model::HistoryEntry],
    ) -> oc_model::DomainResult<()> {
        unreachable!()
    }
    async fn history(
        &self,
        _: &TenantId,
        _: OrderId,
    ) -> oc_model::DomainResult<Option<Vec<oc_model::HistoryEntry>>> {
        unreachable!()
    }
    async fn put_after_sales(
        &self,
        _: &TenantId,
        _: OrderId,
        _: &[ArchivedAfterSale],
    ) -> oc_model::DomainResult<()> {
        unreachable!()
    }
    async fn after_sales(
        &self,
        _: &TenantId,
        _: OrderId,
    ) -> oc_model::DomainResult<Option<Vec<ArchivedAfterSale>>> {
        unreachable!()
    }
    async fn after_sale_order(
        &self,
        _: &TenantId,
        _: AfterSaleId,
    ) -> oc_model::DomainResult<Option<OrderId>> {
        unreachable!()
    }
}

// ---- the port's suite (`oc_conformance::cold_store`) over both adapters ----

oc_conformance::cold_store_conformance!(redb, Harness::redb);
oc_conformance::cold_store_conformance!(hbase, Harness::hbase);

// ---- HBase only, on the live server: the row layout, races and failures ----

/// A store on a fresh table of the live server (default salt count, 16).
async fn live_store(label: &str) -> (HbaseColdStore, HbaseTable) {
    let table = HbaseTable::new(label).await.unwrap();
    let store = HbaseColdStore::connect(hbase_config(&hbase_address(), table.name()))
        .await
        .unwrap();
    (store, table)
}

/// The cells of one row, read over Thrift: column → (value, timestamp).
async fn live_row(table: &HbaseTable, row: &[u8]) -> BTreeMap<Vec<u8>, (Vec<u8>, i64)> {
    let (table, row) = (table.name().as_bytes().to_vec(), row.to_vec());
    let rows = with_hbase_client("getRow", move |client| {
        use hbase_thrift::hbase::THbaseSyncClient;
        client.get_row(table, row, BTreeMap::new())
    })
    .await
    .unwrap();
    rows.into_iter()
        .flat_map(|result| result.columns.unwrap_or_default())
        .map(|(column, cell)| {
            (
                column,
                (
                    cell.value.unwrap_or_default(),
                    cell.timestamp.unwrap_or_default(),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn hbase_rows_follow_the_documented_layout() {
    let (store, table) = live_store("layout").await;
    let acme = tenant("acme");
    let id = id_at(37, BASE_MS);
    let stored = order(&acme, id, 5);
    assert!(store.put(&stored).await.unwrap());

    let name = table.name().as_bytes().to_vec();
    let families = with_hbase_client("getColumnDescriptors", move |client| {
        use hbase_thrift::hbase::THbaseSyncClient;
        client.get_column_descriptors(name)
    })
    .await
    .unwrap();
    let families: BTreeMap<Vec<u8>, i32> = families
        .into_iter()
        .map(|(family, descriptor)| (family, descriptor.max_versions.unwrap_or_default()))
        .collect();
    assert_eq!(
        families,
        BTreeMap::from([(b"d:".to_vec(), 1)]),
        "family d, one version"
    );
    let row = hb::row_key(16, &acme, id);
    assert_eq!(row[0], 37 % 16, "salt = bucket % salt_buckets");
    assert_eq!(
        &row[1..],
        [b"acme\0".as_slice(), &id.get().to_be_bytes()].concat()
    );
    let cells = live_row(&table, &row).await;
    assert!(!cells.is_empty(), "the row is stored under that key");

    let (json, json_timestamp) = &cells[COLUMN_ORDER];
    assert_eq!(
        *json_timestamp, 5,
        "data cells carry the version as timestamp"
    );
    assert_eq!(serde_json::from_slice::<Order>(json).unwrap(), stored);
    let (version, _server_time) = &cells[COLUMN_VERSION];
    assert_eq!(version.as_slice(), 5u64.to_be_bytes());
    let (status, status_timestamp) = &cells[COLUMN_STATUS];
    assert_eq!(
        (*status_timestamp, status.as_slice()),
        (5, b"status-v5".as_slice())
    );
    let (created, _) = &cells[COLUMN_CREATED];
    assert_eq!(created.as_slice(), (BASE_MS as i64).to_be_bytes());
    drop(store);
    table.cleanup().await.unwrap();
}

#[tokio::test]
async fn hbase_same_version_repairs_a_writer_that_died_after_its_claim() {
    let (store, table) = live_store("repair").await;
    let acme = tenant("acme");
    let id = id_at(2, BASE_MS);
    store.put(&order(&acme, id, 1)).await.unwrap();
    // a writer of version 2 claimed d:v (a put at server time, as its checkAndPut does) and
    // died before its data cells
    let row = hb::row_key(16, &acme, id);
    let (name, claimed_row) = (table.name().as_bytes().to_vec(), row.clone());
    with_hbase_client("mutateRow", move |client| {
        use hbase_thrift::hbase::{Mutation, THbaseSyncClient};
        let claim = Mutation::new(
            false,
            COLUMN_VERSION.to_vec(),
            2u64.to_be_bytes().to_vec(),
            true,
        );
        client.mutate_row(name, claimed_row, vec![claim], BTreeMap::new())
    })
    .await
    .unwrap();
    assert_eq!(store.get(&acme, id).await.unwrap().unwrap().main.version, 1);
    // redelivery of version 2 writes nothing new but repairs the data
    assert!(!store.put(&order(&acme, id, 2)).await.unwrap());
    assert_eq!(
        store.get(&acme, id).await.unwrap().unwrap(),
        order(&acme, id, 2)
    );
    drop(store);
    table.cleanup().await.unwrap();
}

#[tokio::test]
async fn hbase_a_late_stale_data_write_stays_hidden() {
    let (store, table) = live_store("late").await;
    let acme = tenant("acme");
    let id = id_at(2, BASE_MS);
    store.put(&order(&acme, id, 3)).await.unwrap();
    // the race the cell timestamps close: a writer of version 2 claimed d:v before version 3
    // did, and its data write arrives last, over the wire, with timestamp 2
    let row = hb::row_key(16, &acme, id);
    let stale = serde_json::to_vec(&order(&acme, id, 2)).unwrap();
    let name = table.name().as_bytes().to_vec();
    with_hbase_client("mutateRowTs", move |client| {
        use hbase_thrift::hbase::{Mutation, THbaseSyncClient};
        let mutation = Mutation::new(false, COLUMN_ORDER.to_vec(), stale, true);
        client.mutate_row_ts(name, row, vec![mutation], 2, BTreeMap::new())
    })
    .await
    .unwrap();
    assert_eq!(
        store.get(&acme, id).await.unwrap().unwrap(),
        order(&acme, id, 3)
    );
    assert!(!store.put(&order(&acme, id, 2)).await.unwrap());
    drop(store);
    table.cleanup().await.unwrap();
}

#[tokio::test]
async fn hbase_salt_count_cannot_change_for_a_table() {
    let (store, table) = live_store("salted").await;
    drop(store);
    let error = HbaseColdStore::connect(HbaseConfig {
        salt_buckets: 8,
        ..hbase_config(&hbase_address(), table.name())
    })
    .await
    .unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidInput);
    assert_eq!(error.field.as_deref(), Some("/cold_store/salt_buckets"));
    // same count: fine (how often createTable is called is counted on the double, below)
    HbaseColdStore::connect(hbase_config(&hbase_address(), table.name()))
        .await
        .unwrap();
    table.cleanup().await.unwrap();
}

#[tokio::test]
async fn hbase_missing_table_is_refused_when_creation_is_off() {
    let table = HbaseTable::new("absent").await.unwrap();
    let error = HbaseColdStore::connect(HbaseConfig {
        create_table: false,
        ..hbase_config(&hbase_address(), table.name())
    })
    .await
    .unwrap_err();
    assert_eq!(error.field.as_deref(), Some("/cold_store/table"));
    table.cleanup().await.unwrap();
}

#[tokio::test]
async fn hbase_a_cut_connection_is_unavailable_and_the_store_recovers() {
    let table = HbaseTable::new("cut").await.unwrap();
    let proxy = TcpProxy::start(hbase_address()).await.unwrap();
    let store = HbaseColdStore::connect(HbaseConfig {
        io_timeout: std::time::Duration::from_secs(2),
        connect_timeout: std::time::Duration::from_secs(1),
        ..hbase_config(&proxy.host_port(), table.name())
    })
    .await
    .unwrap();
    let acme = tenant("acme");
    let first = order(&acme, id_at(1, BASE_MS), 1);
    assert!(store.put(&first).await.unwrap());

    proxy.block();
    let second = order(&acme, id_at(2, BASE_MS + 1), 1);
    let error = store.put(&second).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    let error = store.get(&acme, first.main.id).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);

    proxy.restore();
    assert!(
        store.put(&second).await.unwrap(),
        "a new connection works once the server is reachable again"
    );
    assert_eq!(store.get(&acme, first.main.id).await.unwrap(), Some(first));
    drop(store);
    table.cleanup().await.unwrap();
}

/// Found by the soak (tests/soak.rs in `ordercenter`): a cut kills every idle pooled
/// connection, and each one used to fail a call of its own after the server came back; the
/// projector then took an order failing right after others went through for a bad order
/// and dead-lettered it. The first failure on the wire now drops the idle ones too.
#[tokio::test]
async fn hbase_after_a_cut_no_call_fails_on_a_dead_idle_connection() {
    let table = HbaseTable::new("cut_idle").await.unwrap();
    let proxy = TcpProxy::start(hbase_address()).await.unwrap();
    let store = std::sync::Arc::new(
        HbaseColdStore::connect(HbaseConfig {
            io_timeout: std::time::Duration::from_secs(2),
            connect_timeout: std::time::Duration::from_secs(1),
            max_connections: 8,
            ..hbase_config(&proxy.host_port(), table.name())
        })
        .await
        .unwrap(),
    );
    let acme = tenant("acme");
    // several connections at once, all back in the pool afterwards
    let puts: Vec<_> = (0..8u64)
        .map(|n| {
            let store = std::sync::Arc::clone(&store);
            let order = order(&acme, id_at(10 + n as u16, BASE_MS + n), 1);
            tokio::spawn(async move { store.put(&order).await })
        })
        .collect();
    for put in puts {
        assert!(put.await.unwrap().unwrap());
    }
    assert!(proxy.forwarded() >= 2, "the pool holds several connections");

    proxy.block();
    let error = store.get(&acme, id_at(10, BASE_MS)).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    proxy.restore();
    for n in 0..4u64 {
        let order = order(&acme, id_at(30 + n as u16, BASE_MS + 100 + n), 1);
        assert!(
            store.put(&order).await.unwrap(),
            "call {n} after the restore failed"
        );
    }
    drop(store);
    table.cleanup().await.unwrap();
}

#[tokio::test]
async fn cold_store_urls_open_both_adapters() {
    let table = HbaseTable::new("by_url").await.unwrap();
    let store = oc_cold_store::ColdStoreConfig::parse(&format!(
        "hbase://{}?table={}&salt_buckets=4",
        hbase_address(),
        table.name()
    ))
    .unwrap()
    .open()
    .await
    .unwrap();
    let acme = tenant("acme");
    let stored = order(&acme, id_at(6, BASE_MS), 1);
    assert!(store.put(&stored).await.unwrap());
    let row = hb::row_key(4, &acme, stored.main.id);
    assert_eq!(row[0], 6 % 4);
    assert!(
        !live_row(&table, &row).await.is_empty(),
        "stored under the 4-salt key"
    );
    drop(store);
    table.cleanup().await.unwrap();

    let dir = unique_dir("url");
    let url = format!("redb://{}", dir.join("cold.redb").display());
    let store = oc_cold_store::ColdStoreConfig::parse(&url)
        .unwrap()
        .open()
        .await
        .unwrap();
    assert!(store.put(&stored).await.unwrap());
    drop(store);
    std::fs::remove_dir_all(dir).unwrap();
}

// ---- HBase only, on the Thrift double: what a live server cannot show ----

async fn hbase_store(double: &HbaseDouble, table: &str) -> HbaseColdStore {
    HbaseColdStore::connect(hbase_config(&double.address(), table))
        .await
        .unwrap()
}

/// Which calls a put makes, and that a second connect does not create the table again.
#[tokio::test]
async fn hbase_double_counts_the_calls_of_a_put_and_of_a_reconnect() {
    let double = HbaseDouble::start();
    let store = hbase_store(&double, "layout").await;
    let acme = tenant("acme");
    let stored = order(&acme, id_at(37, BASE_MS), 5);
    assert!(store.put(&stored).await.unwrap());
    assert_eq!(
        double.calls("checkAndPut"),
        2,
        "salt meta row + the version claim"
    );
    assert_eq!(double.calls("mutateRowTs"), 1);
    hbase_store(&double, "layout").await;
    assert_eq!(double.calls("createTable"), 1);
}

/// Every scanner a scan opens is closed, also after a bad cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hbase_double_sees_every_scanner_closed() {
    let double = HbaseDouble::start();
    for (label, case) in [("scan", 0), ("tenants", 1), ("cursor", 2)] {
        let mut harness = Harness::hbase_double(label, &double).await;
        match case {
            0 => scan_pages_a_time_window_in_id_order(&mut harness).await,
            1 => reads_are_tenant_scoped(&mut harness).await,
            _ => bad_cursor_is_invalid_input(&mut harness).await,
        }
        assert_eq!(double.open_scanners(), 0, "every scanner closed ({label})");
        harness.finish().await;
    }
}

#[tokio::test]
async fn hbase_framed_compact_wire_and_unsalted_keys_work() {
    let double = HbaseDouble::start_with(Wire {
        framed: true,
        compact: true,
    });
    let store = HbaseColdStore::connect(HbaseConfig {
        framed: true,
        compact: true,
        salt_buckets: 1,
        ..hbase_config(&double.address(), "framed")
    })
    .await
    .unwrap();
    let acme = tenant("acme");
    let orders: Vec<Order> = (0..30u64)
        .map(|i| order(&acme, id_at((i * 101 % 1024) as u16, BASE_MS + i * 10), 1))
        .collect();
    for order in &orders {
        assert!(store.put(order).await.unwrap());
    }
    let scanned = scan_all(&store, &acme, at_ms(BASE_MS), at_ms(BASE_MS + 300), 4).await;
    assert_eq!(scanned, orders);
    assert!(
        double
            .row_keys("framed")
            .iter()
            .all(|row| row[0] == 0 || row[0] == 0xff)
    );
}

#[tokio::test]
async fn hbase_failures_are_unavailable() {
    let double = HbaseDouble::start();
    let store = hbase_store(&double, "failing").await;
    let acme = tenant("acme");
    let stored = order(&acme, id_at(1, BASE_MS), 1);
    double.set_failing(true);
    let error = store.put(&stored).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    let error = store.get(&acme, stored.main.id).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    double.set_failing(false);
    assert!(
        store.put(&stored).await.unwrap(),
        "the pooled connection still works"
    );

    // nothing listening: refused connections are Unavailable too
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let error = HbaseColdStore::connect(HbaseConfig::new(closed.to_string()))
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
}

/// A row over the live HBase's cell size limit (`hbase.client.keyvalue.maxsize`, 10 MB by
/// default) is refused with `IllegalArgument`: permanent for that order (the projector
/// dead-letters it), not "HBase is down" (the projector would stall on it forever). The next
/// order goes in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hbase_refuses_an_oversized_row_for_good_and_takes_the_next() {
    let harness = Harness::hbase("oversized").await;
    let acme = tenant("acme");
    let mut huge = order(&acme, id_at(3, BASE_MS), 1);
    huge.lines[0].product_name = "x".repeat(11 * 1024 * 1024);
    let error = harness.store.put(&huge).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidInput, "{error}");
    assert!(!error.is_transient());
    assert!(error.message.contains("KeyValue size too large"), "{error}");
    assert!(
        !error.message.contains('\n'),
        "the server's stack trace is not kept: {error}"
    );
    let fine = order(&acme, id_at(4, BASE_MS), 1);
    assert!(harness.store.put(&fine).await.unwrap());
    harness.finish().await;
}
