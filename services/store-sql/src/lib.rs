#![doc = include_str!("../README.md")]

mod codec;
mod error;
mod group_commit;
mod history;
mod key_reports;
mod migrate;
pub mod router;
mod statements;
mod stock;
mod stock_levels;
mod transitions;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row};

use oc_model::ports::{IdempotencyRecord, InsertOutcome, NewOrder, OrderStore, Page, PageRequest};
use oc_model::{
    Bucket, DomainError, DomainResult, ErrorCode, Order, OrderEvent, OrderId, OutboxEntry, PartyId,
    ShardId, TenantId,
};

use crate::codec::{assert_sealed, body_json, decode_order, encode_ext, unix_ms};
use crate::error::{convert, is_connection_lost, is_unique_violation};
pub use crate::group_commit::GroupCommit;
use crate::group_commit::{GroupError, Writers};
pub use crate::key_reports::KeyRingReport;
pub use crate::router::{BucketMap, BucketRange};

/// How many schema migrations this build applies to every shard.
pub fn migration_count() -> usize {
    migrate::count()
}

/// The SQL dialect of a shard, chosen by URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    MySql,
    Sqlite,
}

impl Dialect {
    pub fn of_url(url: &str) -> DomainResult<Dialect> {
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Ok(Dialect::MySql)
        } else if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            Err(DomainError::invalid(
                "/store/shards",
                format!("unsupported order store scheme {scheme:?}: use mysql:// or sqlite://"),
            ))
        }
    }
}

/// How to reach the shards.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// One URL per physical shard, in shard order (`mysql://…/oc_shard_0`, `sqlite://data/shard-0.db`).
    pub shard_urls: Vec<String>,
    /// Bucket ranges → shard; `None` spreads buckets evenly.
    pub bucket_map: Option<Vec<BucketRange>>,
    /// Connections per shard.
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// A pooled connection that sat idle at least this long is pinged before it is handed out
    /// (and replaced if the ping fails). Connections reused sooner are not: under load that
    /// saves a round trip per unit of work, and a connection the server dropped in between
    /// fails its first statement, which the store answers by taking another connection
    /// (every write and every read begins with `BEGIN`, which changes nothing, so this is safe).
    pub ping_idle_after: Duration,
    /// Creates of one shard that arrive while its writers are busy are written together, in
    /// one transaction (see [`GroupCommit`]); `None` writes every create in its own.
    pub group_commit: Option<GroupCommit>,
}

impl StoreConfig {
    pub fn new(shard_urls: Vec<String>) -> StoreConfig {
        StoreConfig {
            shard_urls,
            bucket_map: None,
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            ping_idle_after: Duration::from_secs(1),
            group_commit: Some(GroupCommit::default()),
        }
    }
}

/// The order store over N shards, MySQL/MariaDB or SQLite.
#[derive(Debug, Clone)]
pub struct SqlOrderStore {
    shards: Vec<AnyPool>,
    dialect: Dialect,
    map: BucketMap,
    /// The group-commit writers of every shard; `None` in the writers' own copy of the store
    /// (they write directly), and when group commit is off.
    group_commit: Option<Writers>,
}

impl SqlOrderStore {
    /// Connect to every shard and apply pending migrations.
    pub async fn connect(config: StoreConfig) -> DomainResult<SqlOrderStore> {
        sqlx::any::install_default_drivers();
        if config.shard_urls.is_empty() {
            return Err(DomainError::invalid(
                "/store/shards",
                "at least one shard is required",
            ));
        }
        let dialect = Dialect::of_url(&config.shard_urls[0])?;
        let shard_count = u16::try_from(config.shard_urls.len())
            .map_err(|_| DomainError::invalid("/store/shards", "too many shards"))?;
        let map = match &config.bucket_map {
            Some(ranges) => BucketMap::from_ranges(ranges, shard_count)?,
            None => BucketMap::even(shard_count)?,
        };
        let mut shards = Vec::with_capacity(config.shard_urls.len());
        let ping_idle_after = config.ping_idle_after;
        for (index, url) in config.shard_urls.iter().enumerate() {
            if Dialect::of_url(url)? != dialect {
                return Err(DomainError::invalid(
                    format!("/store/shards/{index}"),
                    "all shards must use the same database kind",
                ));
            }
            let pool = AnyPoolOptions::new()
                .max_connections(if dialect == Dialect::Sqlite { config.max_connections.min(8) } else { config.max_connections })
                .acquire_timeout(config.acquire_timeout)
                // sqlx pings every connection before handing it out by default: one more round
                // trip per transaction, the largest avoidable cost of a create (loadtest/PROFILE.md)
                .test_before_acquire(false)
                .before_acquire(move |connection, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= ping_idle_after {
                            connection.ping().await?;
                        }
                        Ok(true)
                    })
                })
                .after_connect(|connection, _| {
                    Box::pin(async move {
                        if connection.backend_name() == "SQLite" {
                            // WAL: readers never block the writer; FULL: a commit survives power loss;
                            // busy_timeout: writers queue instead of failing at once.
                            connection
                                .execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;")
                                .await?;
                        }
                        Ok(())
                    })
                })
                .connect(&sqlite_create_mode(url))
                .await
                .map_err(|e| {
                    tracing::error!(shard = index, error = %e, "cannot connect to order store shard");
                    DomainError::unavailable(format!("order store shard {index} unreachable"))
                })?;
            migrate::run(&pool, dialect).await.map_err(convert)?;
            shards.push(pool);
        }
        let mut store = SqlOrderStore {
            shards,
            dialect,
            map,
            group_commit: None,
        };
        if let Some(settings) = config.group_commit {
            store.group_commit = Some(Writers::spawn(&store, settings)?);
        }
        Ok(store)
    }

    /// (create transactions committed, creates in them) by the group-commit writers, `None`
    /// when group commit is off.
    pub fn group_commit_stats(&self) -> Option<(u64, u64)> {
        self.group_commit
            .as_ref()
            .map(|writers| writers.stats.snapshot())
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn bucket_map(&self) -> &BucketMap {
        &self.map
    }

    fn pool_for_bucket(&self, bucket: Bucket) -> &AnyPool {
        &self.shards[usize::from(self.map.shard_of(bucket).0)]
    }

    fn pool(&self, shard: ShardId) -> DomainResult<&AnyPool> {
        self.shards.get(usize::from(shard.0)).ok_or_else(|| {
            DomainError::invalid("/shard", format!("shard {} does not exist", shard.0))
        })
    }

    /// Raw access for tests and tools (reconciliation, backfill): the pool of one shard.
    pub fn shard_pool(&self, shard: ShardId) -> DomainResult<&AnyPool> {
        self.pool(shard)
    }

    /// Writes back an order whose sealed values were re-encrypted (key rotation), if and only
    /// if the stored row is still at `order.main.version`: `Ok(false)` when a concurrent write
    /// moved it on (that write wins; re-read and try again). The version is not bumped and no
    /// outbox event is written: the order did not change, only the key its personal data is
    /// encrypted under. The main row, lines and identifiers are replaced in one transaction
    /// that holds the main row's lock, as an update does.
    pub async fn rewrite_sealed(&self, order: &Order) -> DomainResult<bool> {
        order.check_invariants()?;
        assert_sealed(order)?;
        let pool = self.pool_for_bucket(order.main.id.bucket());
        let mut tx = begin(pool).await?;
        let main = &order.main;
        let mut query = sqlx::query(&statements::REWRITE_SEALED).bind(body_json(order)?);
        for value in encode_ext(&order.extension.columns)? {
            query = query.bind(value);
        }
        let updated = query
            .bind(main.tenant.as_str())
            .bind(main.id.as_i64())
            .bind(main.version as i64)
            .execute(&mut *tx)
            .await
            .map_err(convert)?;
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        replace_children(&mut tx, order).await?;
        tx.commit().await.map_err(convert)?;
        Ok(true)
    }

    /// Close every pool.
    pub async fn close(&self) {
        for pool in &self.shards {
            pool.close().await;
        }
    }

    /// One create in its own transaction, with every outcome told apart: an idempotency
    /// replay or conflict, a duplicate external reference, an order id collision.
    pub(crate) async fn insert_alone(&self, create: NewOrder) -> DomainResult<InsertOutcome> {
        let pool = self.pool_for_bucket(create.order.main.id.bucket());
        let mut tx = begin(pool).await?;
        match insert_idempotency(&mut tx, &[&create]).await {
            Ok(()) => {}
            Err(InsertError::Sql(e)) if is_unique_violation(&e) => {
                // someone committed this key first: answer with their order
                drop(tx);
                let record = create
                    .idempotency
                    .as_ref()
                    .ok_or_else(|| DomainError::internal("idempotency conflict without a key"))?;
                return self.find_idempotent(pool, &create.order, record).await;
            }
            Err(e) => return Err(e.into_domain()),
        }
        let order = &create.order;
        insert_orders(&mut tx, &[order])
            .await
            .map_err(|e| match e {
                // the external_ref index names its columns (SQLite) or itself (MySQL); the other
                // unique key is the primary key, (tenant, id): not the caller's doing
                InsertError::Sql(e)
                    if is_unique_violation(&e) && e.to_string().contains("external_ref") =>
                {
                    DomainError::new(
                        ErrorCode::AlreadyExists,
                        "an order with this external_ref exists already",
                    )
                    .under("/external_ref")
                }
                InsertError::Sql(e) if is_unique_violation(&e) => {
                    tracing::error!(
                        order = %order.main.id,
                        error = %e,
                        "order id generated twice: two nodes share an OC_NODE_ID"
                    );
                    DomainError::internal("order id collision")
                }
                other => other.into_domain(),
            })?;
        insert_lines(&mut tx, &[order]).await?;
        insert_identifiers(&mut tx, &[order]).await?;
        insert_outbox(&mut tx, &[&create.event]).await?;
        tx.commit().await.map_err(convert)?;
        Ok(InsertOutcome::Created(create.order))
    }

    /// Several creates of one shard in one transaction: one statement per table instead of one
    /// per table and order, one commit (one log flush) instead of one per order.
    pub(crate) async fn insert_together(
        &self,
        shard: ShardId,
        creates: &[NewOrder],
    ) -> Result<(), GroupError> {
        let pool = self.pool(shard).map_err(GroupError::BeforeCommit)?;
        let mut tx = begin(pool).await.map_err(GroupError::BeforeCommit)?;
        let before_commit = async {
            let all: Vec<&NewOrder> = creates.iter().collect();
            let orders: Vec<&Order> = creates.iter().map(|c| &c.order).collect();
            let events: Vec<&OrderEvent> = creates.iter().map(|c| &c.event).collect();
            insert_idempotency(&mut tx, &all)
                .await
                .map_err(InsertError::into_domain)?;
            insert_orders(&mut tx, &orders)
                .await
                .map_err(InsertError::into_domain)?;
            insert_lines(&mut tx, &orders).await?;
            insert_identifiers(&mut tx, &orders).await?;
            insert_outbox(&mut tx, &events).await
        };
        before_commit.await.map_err(GroupError::BeforeCommit)?;
        tx.commit()
            .await
            .map_err(|e| GroupError::AtCommit(convert(e)))
    }

    async fn load_children(
        &self,
        connection: &mut AnyConnection,
        tenant: &TenantId,
        ids: &[i64],
    ) -> DomainResult<(HashMap<i64, Vec<AnyRow>>, HashMap<i64, Vec<AnyRow>>)> {
        let mut lines: HashMap<i64, Vec<AnyRow>> = HashMap::new();
        let mut identifiers: HashMap<i64, Vec<AnyRow>> = HashMap::new();
        if ids.is_empty() {
            return Ok((lines, identifiers));
        }
        let line_sql = statements::select_lines(ids.len());
        let mut query = sqlx::query(&line_sql).bind(tenant.as_str());
        for id in ids {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *connection).await.map_err(convert)? {
            let order_id: i64 = row.try_get("order_id").map_err(codec::corrupt)?;
            lines.entry(order_id).or_default().push(row);
        }
        let identifier_sql = statements::select_identifiers(ids.len());
        let mut query = sqlx::query(&identifier_sql).bind(tenant.as_str());
        for id in ids {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *connection).await.map_err(convert)? {
            let order_id: i64 = row.try_get("order_id").map_err(codec::corrupt)?;
            identifiers.entry(order_id).or_default().push(row);
        }
        Ok((lines, identifiers))
    }

    async fn read_orders(
        &self,
        connection: &mut AnyConnection,
        tenant: &TenantId,
        rows: Vec<AnyRow>,
    ) -> DomainResult<Vec<Order>> {
        let ids: Vec<i64> = rows
            .iter()
            .map(|row| row.try_get::<i64, _>("id").map_err(codec::corrupt))
            .collect::<DomainResult<_>>()?;
        let (lines, identifiers) = self.load_children(connection, tenant, &ids).await?;
        rows.iter()
            .zip(&ids)
            .map(|(row, id)| {
                decode_order(
                    row,
                    lines.get(id).map(Vec::as_slice).unwrap_or_default(),
                    identifiers.get(id).map(Vec::as_slice).unwrap_or_default(),
                )
            })
            .collect()
    }

    async fn find_idempotent(
        &self,
        pool: &AnyPool,
        order: &Order,
        record: &IdempotencyRecord,
    ) -> DomainResult<InsertOutcome> {
        let row = sqlx::query("SELECT request_hash, order_id FROM idempotency WHERE tenant = ? AND buyer_id = ? AND idem_key = ?")
            .bind(order.main.tenant.as_str())
            .bind(order.main.buyer_id.as_str())
            .bind(record.key.as_str())
            .fetch_optional(pool)
            .await
            .map_err(convert)?
            .ok_or_else(|| DomainError::new(ErrorCode::Retryable, "idempotency record vanished, retry"))?;
        let stored_hash = codec::text(&row, "request_hash")?;
        if stored_hash != record.request_hash {
            return Err(DomainError::new(
                ErrorCode::Conflict,
                "this Idempotency-Key was used with a different request body",
            ));
        }
        let order_id: i64 = row.try_get("order_id").map_err(codec::corrupt)?;
        let first = self
            .get(
                &order.main.tenant,
                OrderId::from_raw(order_id as u64).map_err(codec::corrupt)?,
            )
            .await?
            .ok_or_else(|| DomainError::internal("idempotency record points at a missing order"))?;
        Ok(InsertOutcome::Replayed(first))
    }
}

/// SQLite URLs get `mode=rwc` so a shard file is created on first start.
fn sqlite_create_mode(url: &str) -> String {
    if url.starts_with("sqlite:") && !url.contains("mode=") && !url.contains(":memory:") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}mode=rwc")
    } else {
        url.to_owned()
    }
}

type AnyTx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// How many connections to try before a lost connection is the caller's error: every pooled
/// one may be dead (the server restarted), then one fresh.
fn connection_attempts(pool: &AnyPool) -> u32 {
    pool.size() + 1
}

/// A transaction on `pool`. A pooled connection that the server closed while it sat idle (a
/// restart, a failover, `wait_timeout`, a `KILL`) and that was not pinged (see
/// [`StoreConfig::ping_idle_after`]) fails here, at `BEGIN`: nothing was written, and sqlx drops
/// the connection from the pool when it comes back, so take the next one.
async fn begin(pool: &AnyPool) -> DomainResult<AnyTx<'static>> {
    let mut attempts = connection_attempts(pool);
    loop {
        match pool.begin().await {
            Ok(tx) => return Ok(tx),
            Err(e) if is_connection_lost(&e) && attempts > 1 => {
                attempts -= 1;
                tracing::debug!(error = %e, "pooled order store connection lost, taking another");
            }
            Err(e) => return Err(convert(e)),
        }
    }
}

/// A read-only transaction on `pool`, retried on a lost connection as [`begin`] is. An order
/// is three statements (main row, lines, identifiers); read outside a transaction, an update
/// committed between them would pair one version's main row with another's lines. In here
/// they all read one snapshot:
/// - MySQL/MariaDB: REPEATABLE READ (set for this transaction, whatever the server's default)
///   with a consistent snapshot taken at `START TRANSACTION`, read-only;
/// - SQLite: a deferred `BEGIN`; in WAL mode the first `SELECT` fixes the snapshot every later
///   one reads, and a reader never blocks the writer.
async fn begin_read(pool: &AnyPool, dialect: Dialect) -> DomainResult<AnyTx<'static>> {
    let statement = match dialect {
        Dialect::MySql => {
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"
        }
        Dialect::Sqlite => "BEGIN",
    };
    let mut attempts = connection_attempts(pool);
    loop {
        match pool.begin_with(statement).await {
            Ok(tx) => return Ok(tx),
            Err(e) if is_connection_lost(&e) && attempts > 1 => {
                attempts -= 1;
                tracing::debug!(error = %e, "pooled order store connection lost, taking another");
            }
            Err(e) => return Err(convert(e)),
        }
    }
}

/// Lines and identifiers are replaced as a whole on an update: an order has a handful of each.
async fn replace_children(tx: &mut AnyTx<'_>, order: &Order) -> DomainResult<()> {
    for sql in [
        "DELETE FROM order_lines WHERE tenant = ? AND order_id = ?",
        "DELETE FROM order_identifiers WHERE tenant = ? AND order_id = ?",
    ] {
        sqlx::query(sql)
            .bind(order.main.tenant.as_str())
            .bind(order.main.id.as_i64())
            .execute(&mut **tx)
            .await
            .map_err(convert)?;
    }
    insert_lines(tx, &[order]).await?;
    insert_identifiers(tx, &[order]).await
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

/// The main rows of `orders`, in one statement.
async fn insert_orders(tx: &mut AnyTx<'_>, orders: &[&Order]) -> Result<(), InsertError> {
    let sql = statements::insert_orders(orders.len());
    let mut query = sqlx::query(&sql);
    for order in orders {
        query = bind_order(query, order)?;
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

fn bind_order<'q>(query: AnyQuery<'q>, order: &'q Order) -> DomainResult<AnyQuery<'q>> {
    let main = &order.main;
    let mut query = query
        .bind(main.tenant.as_str())
        .bind(main.id.as_i64())
        .bind(i64::from(main.id.bucket().get()))
        .bind(main.buyer_id.as_str())
        .bind(main.merchant_id.as_ref().map(|m| m.as_str()))
        .bind(main.business_identity.as_str())
        .bind(main.order_type.as_str())
        .bind(main.status.as_str())
        .bind(main.version as i64)
        .bind(order.finance.currency.code())
        .bind(order.finance.goods_total.minor)
        .bind(order.finance.discount_total.minor)
        .bind(order.finance.freight.minor)
        .bind(order.finance.payable.minor)
        .bind(main.external_ref.as_deref())
        .bind(unix_ms(main.created_at))
        .bind(unix_ms(main.updated_at))
        .bind(main.pay_deadline.map(unix_ms))
        .bind(body_json(order)?);
    for value in encode_ext(&order.extension.columns)? {
        query = query.bind(value);
    }
    Ok(query)
}

/// The lines of `orders`, in one statement (none: nothing).
async fn insert_lines(tx: &mut AnyTx<'_>, orders: &[&Order]) -> DomainResult<()> {
    let rows: usize = orders.iter().map(|o| o.lines.len()).sum();
    if rows == 0 {
        return Ok(());
    }
    let sql = statements::insert_lines(rows);
    let mut query = sqlx::query(&sql);
    for order in orders {
        for line in &order.lines {
            query = query
                .bind(order.main.tenant.as_str())
                .bind(order.main.id.as_i64())
                .bind(i64::from(line.line_no))
                .bind(line.sku.as_str())
                .bind(line.product_name.as_str())
                .bind(i64::from(line.quantity))
                .bind(line.unit_price.minor)
                .bind(line.unit_weight_grams.map(i64::from))
                .bind(line.promotion_type.as_deref())
                .bind(line.payable.minor);
            for value in encode_ext(&line.ext)? {
                query = query.bind(value);
            }
        }
    }
    query.execute(&mut **tx).await.map_err(convert)?;
    Ok(())
}

/// The KV identifiers of `orders`, in one statement (none: nothing).
async fn insert_identifiers(tx: &mut AnyTx<'_>, orders: &[&Order]) -> DomainResult<()> {
    let rows: usize = orders.iter().map(|o| o.extension.identifiers.len()).sum();
    if rows == 0 {
        return Ok(());
    }
    let sql = statements::insert_identifiers(rows);
    let mut query = sqlx::query(&sql);
    for order in orders {
        for identifier in &order.extension.identifiers {
            query = query
                .bind(order.main.tenant.as_str())
                .bind(order.main.id.as_i64())
                .bind(identifier.domain.as_str())
                .bind(identifier.line_no.map(i64::from).unwrap_or(0))
                .bind(identifier.key.as_str())
                .bind(identifier.value.stored());
        }
    }
    query.execute(&mut **tx).await.map_err(|e| {
        if is_unique_violation(&e) {
            DomainError::invalid(
                "/extension/identifiers",
                "an identifier key appears twice in one domain",
            )
        } else {
            convert(e)
        }
    })?;
    Ok(())
}

/// The outbox rows of `events`, in one statement, in the given order (their `seq` order).
async fn insert_outbox(tx: &mut AnyTx<'_>, events: &[&OrderEvent]) -> DomainResult<()> {
    let sql = statements::insert_outbox(events.len());
    let mut query = sqlx::query(&sql);
    for event in events {
        let payload = serde_json::to_string(event)
            .map_err(|e| DomainError::internal(format!("encode event: {e}")))?;
        query = query
            .bind(event.tenant.as_str())
            .bind(event.order_id.as_i64())
            .bind(event.version as i64)
            .bind(payload)
            .bind(unix_ms(event.occurred_at));
    }
    query.execute(&mut **tx).await.map_err(convert)?;
    Ok(())
}

/// The idempotency claims of `creates` that carry a key, in one statement.
async fn insert_idempotency(tx: &mut AnyTx<'_>, creates: &[&NewOrder]) -> Result<(), InsertError> {
    let keyed: Vec<(&Order, &IdempotencyRecord)> = creates
        .iter()
        .filter_map(|c| c.idempotency.as_ref().map(|r| (&c.order, r)))
        .collect();
    if keyed.is_empty() {
        return Ok(());
    }
    let sql = statements::insert_idempotency(keyed.len());
    let mut query = sqlx::query(&sql);
    for (order, record) in keyed {
        query = query
            .bind(order.main.tenant.as_str())
            .bind(order.main.buyer_id.as_str())
            .bind(record.key.as_str())
            .bind(record.request_hash.as_str())
            .bind(order.main.id.as_i64())
            .bind(unix_ms(order.main.created_at));
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// A failed create statement: the database's own error (for the caller to classify a unique
/// violation) or one already converted.
enum InsertError {
    Sql(sqlx::Error),
    Domain(DomainError),
}

impl From<sqlx::Error> for InsertError {
    fn from(error: sqlx::Error) -> Self {
        InsertError::Sql(error)
    }
}

impl From<DomainError> for InsertError {
    fn from(error: DomainError) -> Self {
        InsertError::Domain(error)
    }
}

impl InsertError {
    fn into_domain(self) -> DomainError {
        match self {
            InsertError::Sql(e) => convert(e),
            InsertError::Domain(e) => e,
        }
    }
}

/// What every create must be before it is written, alone or with others.
fn check_new_order(create: &NewOrder) -> DomainResult<()> {
    create.order.check_invariants()?;
    assert_sealed(&create.order)?;
    check_event_matches(&create.order, &create.event)?;
    if create.order.main.version != 1 {
        return Err(DomainError::internal("a new order starts at version 1"));
    }
    Ok(())
}

fn check_event_matches(order: &Order, event: &OrderEvent) -> DomainResult<()> {
    if event.order_id != order.main.id
        || event.version != order.main.version
        || event.tenant != order.main.tenant
    {
        return Err(DomainError::internal(
            "outbox event does not describe the order being written",
        ));
    }
    Ok(())
}

fn encode_cursor(id: OrderId) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("o:{id}"))
}

fn decode_cursor(cursor: &str) -> DomainResult<i64> {
    let bad = || DomainError::invalid("/cursor", "malformed cursor");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let id: OrderId = text
        .strip_prefix("o:")
        .ok_or_else(bad)?
        .parse()
        .map_err(|_| bad())?;
    Ok(id.as_i64())
}

#[async_trait]
impl OrderStore for SqlOrderStore {
    async fn insert(&self, new_order: NewOrder) -> DomainResult<InsertOutcome> {
        check_new_order(&new_order)?;
        let shard = self.map.shard_of(new_order.order.main.id.bucket());
        match &self.group_commit {
            Some(writers) => writers.submit(shard, new_order).await,
            None => self.insert_alone(new_order).await,
        }
    }

    async fn get(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Option<Order>> {
        let pool = self.pool_for_bucket(id.bucket());
        let mut tx = begin_read(pool, self.dialect).await?;
        let row = sqlx::query(&statements::SELECT_ORDER)
            .bind(tenant.as_str())
            .bind(id.as_i64())
            .fetch_optional(&mut *tx)
            .await
            .map_err(convert)?;
        let order = match row {
            None => None,
            Some(row) => self.read_orders(&mut tx, tenant, vec![row]).await?.pop(),
        };
        tx.commit().await.map_err(convert)?;
        Ok(order)
    }

    async fn update(
        &self,
        expected_version: u64,
        order: Order,
        event: OrderEvent,
    ) -> DomainResult<Order> {
        order.check_invariants()?;
        assert_sealed(&order)?;
        check_event_matches(&order, &event)?;
        if order.main.version != expected_version + 1 {
            return Err(DomainError::internal(
                "an update bumps the version by exactly one",
            ));
        }
        let pool = self.pool_for_bucket(order.main.id.bucket());
        let mut tx = begin(pool).await?;
        let main = &order.main;
        let mut query = sqlx::query(&statements::UPDATE_ORDER)
            .bind(main.merchant_id.as_ref().map(|m| m.as_str().to_owned()))
            .bind(main.status.as_str())
            .bind(main.version as i64)
            .bind(order.finance.goods_total.minor)
            .bind(order.finance.discount_total.minor)
            .bind(order.finance.freight.minor)
            .bind(order.finance.payable.minor)
            .bind(unix_ms(main.updated_at))
            .bind(main.pay_deadline.map(unix_ms))
            .bind(body_json(&order)?);
        for value in encode_ext(&order.extension.columns)? {
            query = query.bind(value);
        }
        let updated = query
            .bind(main.tenant.as_str())
            .bind(main.id.as_i64())
            .bind(expected_version as i64)
            .execute(&mut *tx)
            .await
            .map_err(convert)?;
        if updated.rows_affected() != 1 {
            drop(tx);
            let exists = self.get(&main.tenant, main.id).await?;
            return Err(match exists {
                None => DomainError::not_found("order not found"),
                Some(current) => DomainError::new(
                    ErrorCode::PreconditionFailed,
                    format!(
                        "order is at version {}, not {expected_version}",
                        current.main.version
                    ),
                ),
            });
        }
        replace_children(&mut tx, &order).await?;
        insert_outbox(&mut tx, &[&event]).await?;
        tx.commit().await.map_err(convert)?;
        Ok(order)
    }

    async fn list_by_buyer(
        &self,
        tenant: &TenantId,
        buyer: &PartyId,
        page: PageRequest,
    ) -> DomainResult<Page<Order>> {
        let limit = page.limit.clamp(1, 200);
        let before = match &page.cursor {
            Some(cursor) => decode_cursor(cursor)?,
            None => i64::MAX,
        };
        let pool = self.pool_for_bucket(Bucket::of(tenant, buyer));
        let mut tx = begin_read(pool, self.dialect).await?;
        let rows = sqlx::query(&statements::SELECT_BUYER_PAGE)
            .bind(tenant.as_str())
            .bind(buyer.as_str())
            .bind(before)
            .bind(i64::from(limit) + 1)
            .fetch_all(&mut *tx)
            .await
            .map_err(convert)?;
        let mut orders = self.read_orders(&mut tx, tenant, rows).await?;
        tx.commit().await.map_err(convert)?;
        let next_cursor = if orders.len() > limit as usize {
            orders.truncate(limit as usize);
            orders.last().map(|o| encode_cursor(o.main.id))
        } else {
            None
        };
        Ok(Page {
            items: orders,
            next_cursor,
        })
    }

    fn shards(&self) -> Vec<ShardId> {
        (0..self.shards.len() as u16).map(ShardId).collect()
    }

    async fn health(&self) -> DomainResult<()> {
        for (index, pool) in self.shards.iter().enumerate() {
            sqlx::query("SELECT 1")
                .fetch_one(pool)
                .await
                .map_err(|e| DomainError::unavailable(format!("shard {index}: {e}")))?;
        }
        Ok(())
    }

    async fn pending_outbox(&self, shard: ShardId, limit: u32) -> DomainResult<Vec<OutboxEntry>> {
        let pool = self.pool(shard)?;
        let rows = sqlx::query(
            "SELECT seq, payload FROM outbox WHERE published_at_ms IS NULL ORDER BY seq LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        .map_err(convert)?;
        rows.iter()
            .map(|row| {
                let sequence: i64 = row.try_get("seq").map_err(codec::corrupt)?;
                let payload = codec::text(row, "payload")?;
                let event: OrderEvent = serde_json::from_str(&payload).map_err(codec::corrupt)?;
                Ok(OutboxEntry {
                    shard,
                    sequence: sequence as u64,
                    event,
                })
            })
            .collect()
    }

    async fn mark_published(&self, shard: ShardId, sequences: &[u64]) -> DomainResult<()> {
        if sequences.is_empty() {
            return Ok(());
        }
        let pool = self.pool(shard)?;
        let sql = format!(
            "UPDATE outbox SET published_at_ms = ? WHERE seq IN ({})",
            statements::placeholders(sequences.len())
        );
        let mut query = sqlx::query(&sql).bind(unix_ms(time::OffsetDateTime::now_utc()));
        for sequence in sequences {
            query = query.bind(*sequence as i64);
        }
        query.execute(pool).await.map_err(convert)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let id = OrderId::from_raw(123_456_789).unwrap();
        assert_eq!(decode_cursor(&encode_cursor(id)).unwrap(), 123_456_789);
        for bad in ["", "!!", "bzphYmM", "o:12"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dialect_by_scheme() {
        assert_eq!(Dialect::of_url("mysql://a/b").unwrap(), Dialect::MySql);
        assert_eq!(
            Dialect::of_url("sqlite://data/x.db").unwrap(),
            Dialect::Sqlite
        );
        assert!(Dialect::of_url("postgres://x").is_err());
        assert_eq!(
            sqlite_create_mode("sqlite://d/x.db"),
            "sqlite://d/x.db?mode=rwc"
        );
    }
}
