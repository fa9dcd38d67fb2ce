//! The cluster adapter: HBase through its Thrift (v1) server, with the `hbase-thrift`
//! crate's synchronous client run on tokio's blocking pool. The row key, columns and the
//! "only if newer" protocol are described in the crate README.

mod client;
mod config;
mod error;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use hbase_thrift::hbase::{
    BatchMutation, ColumnDescriptor, Mutation, ScannerID, THbaseSyncClient, TRowResult,
};
use oc_model::aftersale::AfterSaleId;
use oc_model::archive::ArchivedAfterSale;
use oc_model::ports::{ColdStore, Page, PageRequest};
use oc_model::{
    DomainError, DomainResult, ErrorCode, HistoryEntry, Order, OrderId, TenantId, UnixMillis,
};
use time::OffsetDateTime;

use crate::codec;
use crate::key::{self, IdRange};
use client::{Client, Pool};
pub use config::{HbaseConfig, MAX_SALT_BUCKETS};
use error::{CallError, is_already_exists};

/// The one column family. `d:` in Thrift v1 column-descriptor syntax.
pub const FAMILY: &[u8] = b"d";
/// Full order JSON; cell timestamp = order version.
pub const COLUMN_ORDER: &[u8] = b"d:o";
/// Order version, 8 bytes big-endian: the compare-and-set cell (server timestamp).
pub const COLUMN_VERSION: &[u8] = b"d:v";
/// Status code, UTF-8; cell timestamp = order version.
pub const COLUMN_STATUS: &[u8] = b"d:s";
/// `created_at` in Unix milliseconds, 8 bytes big-endian signed; cell timestamp = version.
pub const COLUMN_CREATED: &[u8] = b"d:t";
/// The status history JSON of an archived order, in the order's row.
pub const COLUMN_HISTORY: &[u8] = b"d:h";
/// The after-sales JSON of an archived order, in the order's row.
pub const COLUMN_AFTER_SALES: &[u8] = b"d:a";
/// An archived after-sale's order id (8 bytes big-endian), in the after-sale's index row
/// ([`after_sale_row_key`]).
pub const COLUMN_AFTER_SALE_ORDER: &[u8] = b"d:r";
/// The row that records the table's salt count. Starts with `0xff`, above every salt.
pub const META_ROW: &[u8] = b"\xff\xffoc-cold-store-meta";
/// The meta column holding the salt count (one byte).
pub const META_SALT_COLUMN: &[u8] = b"d:salt_buckets";

/// Compare-and-set attempts before a put gives up with `Retryable`. Each failed attempt means
/// another writer moved the version forward, so this bounds contention, not latency.
const MAX_CAS_ATTEMPTS: usize = 64;
/// Rows fetched by a salt's first `scannerGetList`; doubled on each refill up to the max.
const MIN_SCAN_BATCH: i32 = 4;
const MAX_SCAN_BATCH: i32 = 512;

/// The row key of an order: `{salt}{tenant}\0{id big-endian u64}`, where
/// `salt = bucket(id) % salt_buckets`. The salt comes from the id alone, so a point get needs
/// only `(tenant, id)`.
pub fn row_key(salt_buckets: u8, tenant: &TenantId, id: OrderId) -> Vec<u8> {
    salted(
        salt_of(salt_buckets, id),
        &key::tenant_key(tenant, id.get()),
    )
}

/// The salt byte of an order id.
pub fn salt_of(salt_buckets: u8, id: OrderId) -> u8 {
    // salt_buckets is 1..=128 (validated), so the remainder fits in u8
    (id.bucket().get() % u16::from(salt_buckets.max(1))) as u8
}

/// The index row of an archived after-sale: `{salt}{tenant}\x01{after-sale id}`, salted by
/// the after-sale id as an order's row is by its id; outside every tenant's order range, so
/// scans never meet it.
pub fn after_sale_row_key(salt_buckets: u8, tenant: &TenantId, id: AfterSaleId) -> Vec<u8> {
    let salt = (id.bucket().get() % u16::from(salt_buckets.max(1))) as u8;
    salted(salt, &key::after_sale_key(tenant, id.get()))
}

fn salted(salt: u8, tenant_key: &[u8]) -> Vec<u8> {
    let mut row = Vec::with_capacity(1 + tenant_key.len());
    row.push(salt);
    row.extend_from_slice(tenant_key);
    row
}

/// The cold store in one HBase table, every key tenant-scoped.
#[derive(Debug, Clone)]
pub struct HbaseColdStore {
    pool: Arc<Pool>,
}

impl HbaseColdStore {
    /// Validate the config, reach the server, make sure the table exists (creating it when
    /// `create_table` is set) and check that it was written with the same salt count.
    pub async fn connect(config: HbaseConfig) -> DomainResult<HbaseColdStore> {
        config.validate()?;
        let pool = Pool::new(config);
        pool.run(prepare_table).await?;
        Ok(HbaseColdStore { pool })
    }

    pub fn config(&self) -> &HbaseConfig {
        self.pool.config()
    }
}

#[async_trait]
impl ColdStore for HbaseColdStore {
    async fn put(&self, order: &Order) -> DomainResult<bool> {
        let json = codec::encode(order)?;
        let version = order.main.version;
        let timestamp = i64::try_from(version)
            .map_err(|_| DomainError::invalid("/main/version", "version out of range"))?;
        let created_ms = UnixMillis::floor(order.main.created_at).get();
        let row = row_key(
            self.config().salt_buckets,
            &order.main.tenant,
            order.main.id,
        );
        let data = vec![
            put_mutation(COLUMN_ORDER, json),
            put_mutation(
                COLUMN_STATUS,
                order.main.status.as_str().as_bytes().to_vec(),
            ),
            put_mutation(COLUMN_CREATED, created_ms.to_be_bytes().to_vec()),
        ];
        self.pool
            .run(move |client, config| {
                put_if_newer(client, &config.table, row, version, timestamp, data)
            })
            .await
    }

    async fn get(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Option<Order>> {
        let row = row_key(self.config().salt_buckets, tenant, id);
        let tenant = tenant.clone();
        self.pool
            .run(move |client, config| {
                read_cell(client, config.table.as_bytes(), &row, COLUMN_ORDER)?
                    .map(|json| Ok(codec::decode(&json, &tenant, id)?))
                    .transpose()
            })
            .await
    }

    async fn scan(
        &self,
        tenant: &TenantId,
        from: OffsetDateTime,
        to: OffsetDateTime,
        page: PageRequest,
    ) -> DomainResult<Page<Order>> {
        let range = IdRange::new(from, to, page.cursor.as_deref())?;
        let limit = key::page_limit(&page);
        if range.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        let tenant = tenant.clone();
        self.pool
            .run(move |client, config| scan_page(client, config, &tenant, range, limit))
            .await
    }

    async fn put_history(
        &self,
        tenant: &TenantId,
        id: OrderId,
        history: &[HistoryEntry],
    ) -> DomainResult<()> {
        let json = codec::encode_history(history)?;
        let row = row_key(self.config().salt_buckets, tenant, id);
        self.pool
            .run(move |client, config| {
                client.mutate_row(
                    config.table.as_bytes().to_vec(),
                    row,
                    vec![put_mutation(COLUMN_HISTORY, json)],
                    BTreeMap::new(),
                )?;
                Ok(())
            })
            .await
    }

    async fn history(
        &self,
        tenant: &TenantId,
        id: OrderId,
    ) -> DomainResult<Option<Vec<HistoryEntry>>> {
        let row = row_key(self.config().salt_buckets, tenant, id);
        let tenant = tenant.clone();
        self.pool
            .run(move |client, config| {
                read_cell(client, config.table.as_bytes(), &row, COLUMN_HISTORY)?
                    .map(|json| Ok(codec::decode_history(&json, &tenant, id)?))
                    .transpose()
            })
            .await
    }

    async fn put_after_sales(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
        after_sales: &[ArchivedAfterSale],
    ) -> DomainResult<()> {
        let json = codec::encode_after_sales(after_sales)?;
        let salt_buckets = self.config().salt_buckets;
        let mut rows = vec![BatchMutation {
            row: Some(row_key(salt_buckets, tenant, order_id)),
            mutations: Some(vec![put_mutation(COLUMN_AFTER_SALES, json)]),
        }];
        rows.extend(after_sales.iter().map(|archived| BatchMutation {
            row: Some(after_sale_row_key(
                salt_buckets,
                tenant,
                archived.after_sale.id,
            )),
            mutations: Some(vec![put_mutation(
                COLUMN_AFTER_SALE_ORDER,
                order_id.get().to_be_bytes().to_vec(),
            )]),
        }));
        // not atomic across rows: the archive reads every row back before it deletes
        self.pool
            .run(move |client, config| {
                client.mutate_rows(config.table.as_bytes().to_vec(), rows, BTreeMap::new())?;
                Ok(())
            })
            .await
    }

    async fn after_sales(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
    ) -> DomainResult<Option<Vec<ArchivedAfterSale>>> {
        let row = row_key(self.config().salt_buckets, tenant, order_id);
        let tenant = tenant.clone();
        self.pool
            .run(move |client, config| {
                read_cell(client, config.table.as_bytes(), &row, COLUMN_AFTER_SALES)?
                    .map(|json| Ok(codec::decode_after_sales(&json, &tenant, order_id)?))
                    .transpose()
            })
            .await
    }

    async fn after_sale_order(
        &self,
        tenant: &TenantId,
        id: AfterSaleId,
    ) -> DomainResult<Option<OrderId>> {
        let row = after_sale_row_key(self.config().salt_buckets, tenant, id);
        self.pool
            .run(move |client, config| {
                read_cell(
                    client,
                    config.table.as_bytes(),
                    &row,
                    COLUMN_AFTER_SALE_ORDER,
                )?
                .map(|value| Ok(codec::decode_order_ref(&value)?))
                .transpose()
            })
            .await
    }
}

fn put_mutation(column: &[u8], value: Vec<u8>) -> Mutation {
    Mutation {
        is_delete: Some(false),
        column: Some(column.to_vec()),
        value: Some(value),
        write_to_w_a_l: Some(true),
    }
}

/// Create the table if asked and absent; record or check the salt count in the meta row.
fn prepare_table(client: &mut Client, config: &HbaseConfig) -> Result<(), CallError> {
    let table = config.table.as_bytes().to_vec();
    let exists = client.get_table_names()?.contains(&table);
    if !exists {
        if !config.create_table {
            return Err(DomainError::invalid(
                "/cold_store/table",
                format!("hbase table {:?} does not exist", config.table),
            )
            .into());
        }
        let family = ColumnDescriptor {
            name: Some(b"d:".to_vec()),
            // latest wins: the version is the cell timestamp, so one version is all a read needs
            max_versions: Some(1),
            compression: Some("NONE".to_owned()),
            in_memory: Some(false),
            bloom_filter_type: Some("ROW".to_owned()),
            bloom_filter_vector_size: Some(0),
            bloom_filter_nb_hashes: Some(0),
            block_cache_enabled: Some(true),
            // no TTL, ever: cell timestamps are order versions, not wall-clock times
            time_to_live: Some(i32::MAX),
        };
        match client.create_table(table.clone(), vec![family]) {
            Ok(()) => tracing::info!(table = %config.table, "created hbase cold store table"),
            Err(error) if is_already_exists(&error) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let salt = vec![config.salt_buckets];
    let recorded = client.check_and_put(
        table.clone(),
        META_ROW.to_vec(),
        META_SALT_COLUMN.to_vec(),
        Vec::new(),
        put_mutation(META_SALT_COLUMN, salt.clone()),
        BTreeMap::new(),
    )?;
    if recorded {
        return Ok(());
    }
    let cells = client.get(
        table,
        META_ROW.to_vec(),
        META_SALT_COLUMN.to_vec(),
        BTreeMap::new(),
    )?;
    let stored = cells.into_iter().next().and_then(|cell| cell.value);
    if stored.as_deref() != Some(salt.as_slice()) {
        return Err(DomainError::invalid(
            "/cold_store/salt_buckets",
            format!(
                "hbase table {:?} was written with salt_buckets {:?}, configured {}; \
                 the salt count is part of every row key and cannot change",
                config.table,
                stored.as_deref().unwrap_or_default(),
                config.salt_buckets
            ),
        )
        .into());
    }
    Ok(())
}

/// The "only if newer" protocol (see the README): read `d:v`; stop if it is newer; else claim
/// the version with `checkAndPut` on `d:v` (expected = the value just read, empty = absent)
/// and, once claimed, write the data cells with cell timestamp = version. A lost claim
/// means another writer moved `d:v`: read again.
fn put_if_newer(
    client: &mut Client,
    table: &str,
    row: Vec<u8>,
    version: u64,
    timestamp: i64,
    data: Vec<Mutation>,
) -> Result<bool, CallError> {
    let table = table.as_bytes().to_vec();
    for _attempt in 0..MAX_CAS_ATTEMPTS {
        let stored = read_version(client, &table, &row)?;
        match stored {
            Some(stored) if stored > version => return Ok(false),
            Some(stored) if stored == version => {
                // Same version again (at-least-once delivery). Rewrite the data cells: this
                // repairs a writer that claimed the version and died before writing them,
                // and is a no-op otherwise (same timestamp, same bytes).
                client.mutate_row_ts(table, row, data, timestamp, BTreeMap::new())?;
                return Ok(false);
            }
            _ => {}
        }
        let expected = stored.map(|v| v.to_be_bytes().to_vec()).unwrap_or_default();
        let claimed = client.check_and_put(
            table.clone(),
            row.clone(),
            COLUMN_VERSION.to_vec(),
            expected,
            put_mutation(COLUMN_VERSION, version.to_be_bytes().to_vec()),
            BTreeMap::new(),
        )?;
        if claimed {
            client.mutate_row_ts(table, row, data, timestamp, BTreeMap::new())?;
            return Ok(true);
        }
    }
    Err(DomainError::new(
        ErrorCode::Retryable,
        "cold store version kept moving, retry",
    )
    .into())
}

/// The newest value of one cell of a row, if the row has it.
fn read_cell(
    client: &mut Client,
    table: &[u8],
    row: &[u8],
    column: &[u8],
) -> Result<Option<Vec<u8>>, CallError> {
    let cells = client.get(
        table.to_vec(),
        row.to_vec(),
        column.to_vec(),
        BTreeMap::new(),
    )?;
    Ok(cells.into_iter().next().and_then(|cell| cell.value))
}

fn read_version(client: &mut Client, table: &[u8], row: &[u8]) -> Result<Option<u64>, CallError> {
    let Some(value) = read_cell(client, table, row, COLUMN_VERSION)? else {
        return Ok(None);
    };
    let bytes: [u8; 8] = value
        .as_slice()
        .try_into()
        .map_err(|_| DomainError::internal("malformed version cell in the cold store"))?;
    Ok(Some(u64::from_be_bytes(bytes)))
}

/// One salt's share of a scan: an open scanner and the rows fetched but not yet merged.
struct SaltStream {
    scanner: Option<ScannerID>,
    /// `{salt}{tenant}\0`, stripped from each row key to get the id.
    prefix: Vec<u8>,
    buffered: VecDeque<(u64, Vec<u8>)>,
    batch: i32,
}

impl SaltStream {
    fn next(&mut self, client: &mut Client) -> Result<Option<(u64, Vec<u8>)>, CallError> {
        if self.buffered.is_empty() {
            self.refill(client)?;
        }
        Ok(self.buffered.pop_front())
    }

    fn refill(&mut self, client: &mut Client) -> Result<(), CallError> {
        let Some(scanner) = self.scanner else {
            return Ok(());
        };
        let rows = client.scanner_get_list(scanner, self.batch)?;
        if rows.is_empty() {
            self.scanner = None;
            client.scanner_close(scanner)?;
            return Ok(());
        }
        self.batch = (self.batch * 2).min(MAX_SCAN_BATCH);
        for row in rows {
            self.buffered.push_back(self.decode_row(row)?);
        }
        Ok(())
    }

    fn decode_row(&self, row: TRowResult) -> Result<(u64, Vec<u8>), CallError> {
        let malformed = || DomainError::internal("malformed row in the cold store");
        let key = row.row.ok_or_else(malformed)?;
        let id = key::id_after_prefix(&key, &self.prefix).ok_or_else(malformed)?;
        let json = row
            .columns
            .and_then(|mut columns| columns.remove(COLUMN_ORDER))
            .and_then(|cell| cell.value)
            .ok_or_else(malformed)?;
        Ok((id, json))
    }
}

/// One page of a tenant's orders in `[lo, hi)`: one scanner per salt, merged by id.
fn scan_page(
    client: &mut Client,
    config: &HbaseConfig,
    tenant: &TenantId,
    range: IdRange,
    limit: usize,
) -> Result<Page<Order>, CallError> {
    let table = config.table.as_bytes().to_vec();
    let tenant_start = key::tenant_key(tenant, range.lo);
    let tenant_stop = key::tenant_key(tenant, range.hi);
    let tenant_prefix = key::tenant_prefix(tenant);
    let mut streams = Vec::with_capacity(usize::from(config.salt_buckets));
    let opened = (|| {
        for salt in 0..config.salt_buckets {
            let scanner = client.scanner_open_with_stop(
                table.clone(),
                salted(salt, &tenant_start),
                salted(salt, &tenant_stop),
                vec![COLUMN_ORDER.to_vec()],
                BTreeMap::new(),
            )?;
            streams.push(SaltStream {
                scanner: Some(scanner),
                prefix: salted(salt, &tenant_prefix),
                buffered: VecDeque::new(),
                batch: batch_size(limit, config.salt_buckets),
            });
        }
        merge(client, &mut streams, tenant, limit)
    })();
    // Close what is still open even after a failure: a scanner holds server memory until its
    // lease expires. After a wire failure these calls fail fast and are ignored.
    for stream in &mut streams {
        if let Some(scanner) = stream.scanner.take() {
            let _ = client.scanner_close(scanner);
        }
    }
    opened
}

fn batch_size(limit: usize, salt_buckets: u8) -> i32 {
    let share = limit / usize::from(salt_buckets.max(1)) + 1;
    i32::try_from(share)
        .unwrap_or(MAX_SCAN_BATCH)
        .clamp(MIN_SCAN_BATCH, MAX_SCAN_BATCH)
}

fn merge(
    client: &mut Client,
    streams: &mut [SaltStream],
    tenant: &TenantId,
    limit: usize,
) -> Result<Page<Order>, CallError> {
    let mut heads: Vec<Option<Vec<u8>>> = vec![None; streams.len()];
    let mut heap = BinaryHeap::with_capacity(streams.len());
    for (index, stream) in streams.iter_mut().enumerate() {
        if let Some((id, json)) = stream.next(client)? {
            heads[index] = Some(json);
            heap.push(Reverse((id, index)));
        }
    }
    let mut items = Vec::with_capacity(limit.min(64));
    while items.len() < limit {
        let Some(Reverse((raw_id, index))) = heap.pop() else {
            break;
        };
        let json = heads[index]
            .take()
            .ok_or_else(|| DomainError::internal("scan merge lost a row"))?;
        let id = OrderId::from_raw(raw_id)
            .map_err(|_| DomainError::internal("malformed row key in the cold store"))?;
        items.push(codec::decode(&json, tenant, id)?);
        if let Some((next_id, next_json)) = streams[index].next(client)? {
            heads[index] = Some(next_json);
            heap.push(Reverse((next_id, index)));
        }
    }
    let more = !heap.is_empty();
    let next_cursor = more
        .then(|| {
            items
                .last()
                .map(|order: &Order| key::encode_cursor(order.main.id))
        })
        .flatten();
    Ok(Page { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use oc_model::{Bucket, OrderIdGenerator};

    use super::*;

    #[test]
    fn row_keys_are_salt_tenant_separator_id() {
        let tenant = TenantId::parse("acme").unwrap();
        let id = OrderIdGenerator::new(0)
            .unwrap()
            .next(Bucket::new(37).unwrap(), 1_790_000_000_000);
        let row = row_key(16, &tenant, id);
        assert_eq!(row[0], 37 % 16);
        assert_eq!(&row[1..5], b"acme");
        assert_eq!(row[5], 0);
        assert_eq!(&row[6..], &id.get().to_be_bytes());
        assert_eq!(
            row_key(1, &tenant, id)[0],
            0,
            "one salt bucket is no salting"
        );
        assert!(META_ROW > row_key(MAX_SALT_BUCKETS, &tenant, id).as_slice());
    }

    #[test]
    fn salts_spread_the_buckets_evenly() {
        let mut counts = [0u32; 16];
        for bucket in 0..oc_model::BUCKET_COUNT {
            let id =
                OrderId::compose(1_790_000_000_000, Bucket::new(bucket).unwrap(), 0, 0).unwrap();
            counts[usize::from(salt_of(16, id))] += 1;
        }
        assert!(counts.iter().all(|&count| count == 64), "{counts:?}");
    }

    #[test]
    fn scan_batches_stay_in_bounds() {
        assert_eq!(batch_size(1, 16), MIN_SCAN_BATCH);
        assert_eq!(batch_size(100, 16), 7);
        assert_eq!(batch_size(1000, 1), MAX_SCAN_BATCH);
    }
}
