//! The single-node adapter: one redb file (an ordered, crash-safe, copy-on-write B-tree).
//!
//! One table `orders`: key `{tenant}\0{id big-endian}`, value `(version, order JSON)`. redb
//! runs one write transaction at a time, so "write unless a newer version is stored" is a
//! read and an insert inside one write transaction, with no retry loop. Every commit is
//! durable (fsync) before `put` returns. Puts that arrive while a commit runs wait for the
//! next one and share it (group commit: one fsync for the group, each put its own answer):
//! a put per order and transaction was two thirds of a single node's fsyncs at a steady
//! rate (loadtest/PROFILE.md). redb is synchronous: every call runs on tokio's blocking
//! pool. Beside it, tables for archived orders only: `history`, `after_sales`
//! (same key as `orders`) and `after_sale_orders` (an after-sale's id → its order's id).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use oc_model::aftersale::AfterSaleId;
use oc_model::archive::ArchivedAfterSale;
use oc_model::ports::{ColdStore, Page, PageRequest};
use oc_model::{DomainError, DomainResult, HistoryEntry, Order, OrderId, TenantId};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use time::OffsetDateTime;

use crate::codec;
use crate::key::{self, IdRange};

/// key: `{tenant}\0{id big-endian}`; value: `(version, order JSON)`.
const ORDERS: TableDefinition<&[u8], (u64, &[u8])> = TableDefinition::new("orders");

/// key: as in `orders`; value: the status history JSON of an archived order.
const HISTORY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("history");

/// key: as in `orders`; value: the JSON array of an archived order's after-sales.
const AFTER_SALES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("after_sales");

/// key: `{tenant}\0{after-sale id big-endian}`; value: its order's id (GET by after-sale id).
const AFTER_SALE_ORDERS: TableDefinition<&[u8], u64> = TableDefinition::new("after_sale_orders");

/// The cold store in one redb file.
#[derive(Clone)]
pub struct RedbColdStore {
    db: Arc<redb::Database>,
    path: Arc<PathBuf>,
    puts: Arc<Mutex<PutQueue>>,
}

/// Puts waiting for a commit. The put that finds no committer running becomes it: on the
/// blocking pool it writes everything queued in one write transaction, answers each put,
/// and goes on while more were queued meanwhile.
#[derive(Default)]
struct PutQueue {
    waiting: Vec<QueuedPut>,
    committing: bool,
}

struct QueuedPut {
    key: Vec<u8>,
    version: u64,
    value: Vec<u8>,
    answer: tokio::sync::oneshot::Sender<DomainResult<bool>>,
}

impl std::fmt::Debug for RedbColdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbColdStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbColdStore {
    /// Open (or create) the store file at `path`, creating its parent directories. One
    /// process may hold the file at a time; a second open of the same file fails with
    /// `Unavailable` until the first store is dropped.
    pub async fn open(path: impl AsRef<Path>) -> DomainResult<RedbColdStore> {
        let path = path.as_ref().to_path_buf();
        let opened_path = path.clone();
        let db = blocking(move || {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|error| {
                    tracing::error!(path = %parent.display(), %error, "cannot create cold store directory");
                    DomainError::unavailable("cannot create the cold store directory")
                })?;
            }
            let db = redb::Database::create(&path).map_err(convert)?;
            // create the table once, so that readers never meet a missing table
            let transaction = db.begin_write().map_err(convert)?;
            transaction.open_table(ORDERS).map_err(convert)?;
            transaction.open_table(HISTORY).map_err(convert)?;
            transaction.open_table(AFTER_SALES).map_err(convert)?;
            transaction.open_table(AFTER_SALE_ORDERS).map_err(convert)?;
            transaction.commit().map_err(convert)?;
            Ok(db)
        })
        .await?;
        Ok(RedbColdStore {
            db: Arc::new(db),
            path: Arc::new(opened_path),
            puts: Arc::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl ColdStore for RedbColdStore {
    async fn put(&self, order: &Order) -> DomainResult<bool> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let queued = QueuedPut {
            key: key::tenant_key(&order.main.tenant, order.main.id.get()),
            version: order.main.version,
            value: codec::encode(order)?,
            answer,
        };
        let commit_here = {
            let mut queue = self.puts.lock().unwrap_or_else(PoisonError::into_inner);
            queue.waiting.push(queued);
            !std::mem::replace(&mut queue.committing, true)
        };
        if commit_here {
            let db = Arc::clone(&self.db);
            let puts = Arc::clone(&self.puts);
            tokio::task::spawn_blocking(move || commit_queued(db, &puts));
        }
        answered.await.map_err(|_| {
            tracing::error!("cold store committer stopped before answering a put");
            DomainError::internal("cold store task failed")
        })?
    }

    async fn get(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Option<Order>> {
        let key = key::tenant_key(tenant, id.get());
        let tenant = tenant.clone();
        let db = Arc::clone(&self.db);
        blocking(move || {
            let transaction = db.begin_read().map_err(convert)?;
            let table = transaction.open_table(ORDERS).map_err(convert)?;
            let Some(guard) = table.get(key.as_slice()).map_err(convert)? else {
                return Ok(None);
            };
            let (_version, json) = guard.value();
            codec::decode(json, &tenant, id).map(Some)
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
        let db = Arc::clone(&self.db);
        blocking(move || {
            let prefix = key::tenant_prefix(&tenant);
            let start = key::tenant_key(&tenant, range.lo);
            let stop = key::tenant_key(&tenant, range.hi);
            let transaction = db.begin_read().map_err(convert)?;
            let table = transaction.open_table(ORDERS).map_err(convert)?;
            let mut items = Vec::with_capacity(limit.min(64));
            let mut more = false;
            for entry in table
                .range::<&[u8]>(start.as_slice()..stop.as_slice())
                .map_err(convert)?
            {
                let (stored_key, stored_value) = entry.map_err(convert)?;
                if items.len() == limit {
                    more = true;
                    break;
                }
                let raw_id = key::id_after_prefix(stored_key.value(), &prefix)
                    .ok_or_else(|| DomainError::internal("malformed key in the cold store"))?;
                let id = OrderId::from_raw(raw_id)
                    .map_err(|_| DomainError::internal("malformed key in the cold store"))?;
                let (_version, json) = stored_value.value();
                items.push(codec::decode(json, &tenant, id)?);
            }
            let next_cursor = more
                .then(|| {
                    items
                        .last()
                        .map(|order: &Order| key::encode_cursor(order.main.id))
                })
                .flatten();
            Ok(Page { items, next_cursor })
        })
        .await
    }

    async fn put_history(
        &self,
        tenant: &TenantId,
        id: OrderId,
        history: &[HistoryEntry],
    ) -> DomainResult<()> {
        let value = codec::encode_history(history)?;
        let key = key::tenant_key(tenant, id.get());
        let db = Arc::clone(&self.db);
        blocking(move || {
            let transaction = db.begin_write().map_err(convert)?;
            {
                let mut table = transaction.open_table(HISTORY).map_err(convert)?;
                table
                    .insert(key.as_slice(), value.as_slice())
                    .map_err(convert)?;
            }
            transaction.commit().map_err(convert)
        })
        .await
    }

    async fn history(
        &self,
        tenant: &TenantId,
        id: OrderId,
    ) -> DomainResult<Option<Vec<HistoryEntry>>> {
        let key = key::tenant_key(tenant, id.get());
        let tenant = tenant.clone();
        let db = Arc::clone(&self.db);
        blocking(move || {
            let transaction = db.begin_read().map_err(convert)?;
            let table = transaction.open_table(HISTORY).map_err(convert)?;
            let Some(guard) = table.get(key.as_slice()).map_err(convert)? else {
                return Ok(None);
            };
            codec::decode_history(guard.value(), &tenant, id).map(Some)
        })
        .await
    }

    async fn put_after_sales(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
        after_sales: &[ArchivedAfterSale],
    ) -> DomainResult<()> {
        let value = codec::encode_after_sales(after_sales)?;
        let key = key::tenant_key(tenant, order_id.get());
        let index: Vec<Vec<u8>> = after_sales
            .iter()
            .map(|archived| key::tenant_key(tenant, archived.after_sale.id.get()))
            .collect();
        let db = Arc::clone(&self.db);
        blocking(move || {
            // the after-sales and their index entries in one transaction
            let transaction = db.begin_write().map_err(convert)?;
            {
                let mut table = transaction.open_table(AFTER_SALES).map_err(convert)?;
                table
                    .insert(key.as_slice(), value.as_slice())
                    .map_err(convert)?;
                let mut orders = transaction.open_table(AFTER_SALE_ORDERS).map_err(convert)?;
                for entry in &index {
                    orders
                        .insert(entry.as_slice(), order_id.get())
                        .map_err(convert)?;
                }
            }
            transaction.commit().map_err(convert)
        })
        .await
    }

    async fn after_sales(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
    ) -> DomainResult<Option<Vec<ArchivedAfterSale>>> {
        let key = key::tenant_key(tenant, order_id.get());
        let tenant = tenant.clone();
        let db = Arc::clone(&self.db);
        blocking(move || {
            let transaction = db.begin_read().map_err(convert)?;
            let table = transaction.open_table(AFTER_SALES).map_err(convert)?;
            let Some(guard) = table.get(key.as_slice()).map_err(convert)? else {
                return Ok(None);
            };
            codec::decode_after_sales(guard.value(), &tenant, order_id).map(Some)
        })
        .await
    }

    async fn after_sale_order(
        &self,
        tenant: &TenantId,
        id: AfterSaleId,
    ) -> DomainResult<Option<OrderId>> {
        let key = key::tenant_key(tenant, id.get());
        let db = Arc::clone(&self.db);
        blocking(move || {
            let transaction = db.begin_read().map_err(convert)?;
            let table = transaction.open_table(AFTER_SALE_ORDERS).map_err(convert)?;
            let Some(guard) = table.get(key.as_slice()).map_err(convert)? else {
                return Ok(None);
            };
            OrderId::from_raw(guard.value()).map(Some).map_err(|_| {
                DomainError::internal("malformed after-sale index entry in the cold store")
            })
        })
        .await
    }
}

/// The committer: writes the queued puts, a group per write transaction, until none wait.
fn commit_queued(db: Arc<redb::Database>, puts: &Mutex<PutQueue>) {
    let Some(mut group) = next_group(puts) else {
        return;
    };
    loop {
        // a panic inside redb answers this group with an error instead of leaving the
        // queue marked as committing with no committer (every later put would wait forever)
        let written =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write_group(&db, &group)))
                .unwrap_or_else(|_| {
                    tracing::error!("cold store commit panicked");
                    Err(DomainError::internal("cold store task failed"))
                });
        match next_group(puts) {
            Some(next) => {
                answer(std::mem::replace(&mut group, next), written);
            }
            None => {
                // the file is let go before the last answers: a caller that drops the
                // store after its put and opens the file again must find it free
                drop(db);
                answer(group, written);
                return;
            }
        }
    }
}

/// The puts queued since the last group, or `None` (and the committer stops) when none are.
fn next_group(puts: &Mutex<PutQueue>) -> Option<Vec<QueuedPut>> {
    let mut queue = puts.lock().unwrap_or_else(PoisonError::into_inner);
    if queue.waiting.is_empty() {
        queue.committing = false;
        None
    } else {
        Some(std::mem::take(&mut queue.waiting))
    }
}

fn answer(group: Vec<QueuedPut>, written: DomainResult<Vec<bool>>) {
    match written {
        Ok(written) => {
            for (put, written) in group.into_iter().zip(written) {
                let _ = put.answer.send(Ok(written));
            }
        }
        // the group shares its transaction: it failed for all, each caller retries
        Err(error) => {
            for put in group {
                let _ = put.answer.send(Err(error.clone()));
            }
        }
    }
}

/// One write transaction for `group`, in order (a later put of the same order sees the
/// earlier one): per put whether it was written, "unless a newer version is stored".
fn write_group(db: &redb::Database, group: &[QueuedPut]) -> DomainResult<Vec<bool>> {
    let transaction = db.begin_write().map_err(convert)?;
    let written = {
        let mut table = transaction.open_table(ORDERS).map_err(convert)?;
        let mut written = Vec::with_capacity(group.len());
        for put in group {
            let stored_version = table
                .get(put.key.as_slice())
                .map_err(convert)?
                .map(|guard| guard.value().0);
            let newer = stored_version.is_none_or(|stored| stored < put.version);
            if newer {
                table
                    .insert(put.key.as_slice(), (put.version, put.value.as_slice()))
                    .map_err(convert)?;
            }
            written.push(newer);
        }
        written
    };
    if written.contains(&true) {
        transaction.commit().map_err(convert)?;
    } else {
        transaction.abort().map_err(convert)?;
    }
    Ok(written)
}

/// Run redb work on the blocking pool; a panic there is an internal error, not a crash.
async fn blocking<T, F>(work: F) -> DomainResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> DomainResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|error| {
        tracing::error!(%error, "cold store task failed");
        DomainError::internal("cold store task failed")
    })?
}

/// redb errors → domain errors: a file held by another process or an I/O failure is
/// `Unavailable`; corruption and everything else is `Internal`.
fn convert(error: impl Into<redb::Error>) -> DomainError {
    let error: redb::Error = error.into();
    match &error {
        redb::Error::DatabaseAlreadyOpen | redb::Error::Io(_) | redb::Error::PreviousIo => {
            tracing::warn!(%error, "embedded cold store unavailable");
            DomainError::unavailable("embedded cold store unavailable")
        }
        _ => {
            tracing::error!(%error, "embedded cold store error");
            DomainError::internal("embedded cold store error")
        }
    }
}
