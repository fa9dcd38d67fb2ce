//! A test double of an HBase Thrift (v1) server, for the adapter's tests.
//!
//! It is the `hbase-thrift` crate's own generated `HbaseSyncProcessor`, served by the
//! `thrift` crate's `TServer` on 127.0.0.1, over an in-memory `BTreeMap` of rows. The client
//! and the server therefore speak the real Thrift wire protocol (binary or compact, buffered
//! or framed) with the real generated message types, and the calls the adapter makes are
//! answered with the semantics HBase documents for them:
//!
//! - rows sorted by unsigned bytes; scanners return `[start, stop)` (an empty stop means to
//!   the end), skip rows that have none of the asked columns, and page with `scannerGetList`;
//! - a column is `family:qualifier` and its family must exist (else `IOError`, as HBase's
//!   `NoSuchColumnFamilyException`);
//! - one visible version per cell (`VERSIONS => 1`): a put with an explicit timestamp older
//!   than the stored cell is masked, an equal timestamp replaces it;
//! - `checkAndPut` compares and writes under one lock; an empty expected value matches an
//!   absent (or empty) cell, as `HRegion.checkAndMutate` does; its put takes the server time;
//! - `mutateRow(s)(Ts)` apply all of a row's mutations atomically.
//!
//! It does not model what only a cluster has: region splits and moves, region-server
//! failover, WAL durability, memstore flushes and compactions, delete markers, TTLs, or
//! `checkAndPut` atomicity across real region servers. Calls the adapter does not use answer
//! an `UnknownMethod` application error.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hbase_thrift::hbase::{
    AlreadyExists, BatchMutation, Bytes, ColumnDescriptor, HbaseSyncHandler, HbaseSyncProcessor,
    IOError, IllegalArgument, Mutation, ScannerID, TAccessControlEntity, TAppend, TCell,
    TIncrement, TRegionInfo, TRowResult, TScan, TThriftServerType, Text,
};
use thrift::protocol::{
    TBinaryInputProtocolFactory, TBinaryOutputProtocolFactory, TCompactInputProtocolFactory,
    TCompactOutputProtocolFactory, TInputProtocolFactory, TOutputProtocolFactory,
};
use thrift::server::TServer;
use thrift::transport::{
    TBufferedReadTransportFactory, TFramedReadTransportFactory, TFramedWriteTransport,
    TReadTransportFactory, TWriteTransport, TWriteTransportFactory,
};
use thrift::{ApplicationError, ApplicationErrorKind};

/// Worker threads of the server: each open client connection holds one, so this must exceed
/// the adapter's `max_connections` in every test.
const WORKERS: usize = 16;

/// Transport and protocol of the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wire {
    pub framed: bool,
    pub compact: bool,
}

/// A running double. The server thread lives until the test process ends.
#[derive(Debug, Clone)]
pub struct HbaseDouble {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    tables: BTreeMap<Vec<u8>, Table>,
    scanners: HashMap<ScannerID, Scanner>,
    next_scanner: ScannerID,
    calls: BTreeMap<&'static str, u64>,
    /// When set, every call fails with an HBase `IOError` (a region server down).
    failing: bool,
}

#[derive(Debug, Default)]
struct Table {
    families: BTreeSet<Vec<u8>>,
    max_versions: BTreeMap<Vec<u8>, i32>,
    rows: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Cell>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub timestamp: i64,
    pub value: Vec<u8>,
}

#[derive(Debug)]
struct Scanner {
    table: Vec<u8>,
    /// The next row to return is the first row `>= next`.
    next: Vec<u8>,
    /// Exclusive; empty means no end.
    stop: Vec<u8>,
    columns: Vec<Vec<u8>>,
}

impl HbaseDouble {
    pub fn start() -> HbaseDouble {
        HbaseDouble::start_with(Wire::default())
    }

    /// Serve on a free loopback port. `TServer::listen` binds by itself, so a free port is
    /// found first and the start is retried if another process takes it in between.
    pub fn start_with(wire: Wire) -> HbaseDouble {
        let state = Arc::new(Mutex::new(State::default()));
        for _attempt in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free loopback port")
                .port();
            let address = SocketAddr::from(([127, 0, 0, 1], port));
            let handler = Handler {
                state: Arc::clone(&state),
            };
            let server = std::thread::Builder::new()
                .name(format!("hbase-double-{port}"))
                .spawn(move || serve(address, wire, handler))
                .expect("spawn the double's server thread");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && !server.is_finished() {
                if TcpStream::connect(address).is_ok() {
                    return HbaseDouble { address, state };
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("the hbase double could not start on loopback");
    }

    /// `host:port` for `HbaseConfig::new`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many times a Thrift method was called.
    pub fn calls(&self, method: &str) -> u64 {
        self.state().calls.get(method).copied().unwrap_or_default()
    }

    pub fn open_scanners(&self) -> usize {
        self.state().scanners.len()
    }

    /// Every row key of a table, in order.
    pub fn row_keys(&self, table: &str) -> Vec<Vec<u8>> {
        self.state()
            .tables
            .get(table.as_bytes())
            .map(|t| t.rows.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn cell(&self, table: &str, row: &[u8], column: &[u8]) -> Option<Cell> {
        self.state()
            .tables
            .get(table.as_bytes())?
            .rows
            .get(row)?
            .get(column)
            .cloned()
    }

    /// Write a cell directly (to stage states such as a writer that died half-way).
    pub fn put_cell(&self, table: &str, row: &[u8], column: &[u8], cell: Cell) {
        let mut state = self.state();
        let table = state
            .tables
            .get_mut(table.as_bytes())
            .expect("table exists");
        table
            .rows
            .entry(row.to_vec())
            .or_default()
            .insert(column.to_vec(), cell);
    }

    /// Column families of a table with their max versions.
    pub fn families(&self, table: &str) -> BTreeMap<Vec<u8>, i32> {
        self.state()
            .tables
            .get(table.as_bytes())
            .map(|t| t.max_versions.clone())
            .unwrap_or_default()
    }

    /// Make every call fail with an HBase `IOError` until called again with `false`.
    pub fn set_failing(&self, failing: bool) {
        self.state().failing = failing;
    }
}

fn serve(address: SocketAddr, wire: Wire, handler: Handler) -> thrift::Result<()> {
    let read: Box<dyn TReadTransportFactory> = if wire.framed {
        Box::new(TFramedReadTransportFactory::new())
    } else {
        Box::new(TBufferedReadTransportFactory::new())
    };
    let write = CoalescingWriteFactory {
        framed: wire.framed,
    };
    let (input, output): (
        Box<dyn TInputProtocolFactory>,
        Box<dyn TOutputProtocolFactory>,
    ) = if wire.compact {
        (
            Box::new(TCompactInputProtocolFactory::new()),
            Box::new(TCompactOutputProtocolFactory::new()),
        )
    } else {
        (
            Box::new(TBinaryInputProtocolFactory::new()),
            Box::new(TBinaryOutputProtocolFactory::new()),
        )
    };
    let processor = HbaseSyncProcessor::new(handler);
    let mut server = TServer::new(read, input, write, output, processor, WORKERS);
    server.listen(address)
}

/// Server-side write transports that hand each reply to the socket in one `write`.
///
/// `TServer` gives no way to set `TCP_NODELAY` on accepted sockets, and the thrift
/// transports write a reply in pieces (a frame header, then the body; or 4 KiB chunks, each
/// flushed). With
/// Nagle's algorithm on, the second piece waits for the client's delayed ACK (~40 ms on
/// Linux), which would make every multi-row scan reply slow for reasons that have nothing
/// to do with the adapter.
struct CoalescingWriteFactory {
    framed: bool,
}

impl TWriteTransportFactory for CoalescingWriteFactory {
    fn create(&self, channel: Box<dyn Write + Send>) -> Box<dyn TWriteTransport + Send> {
        let coalescing = CoalescingWrite {
            channel,
            pending: Vec::new(),
        };
        if self.framed {
            Box::new(TFramedWriteTransport::new(coalescing))
        } else {
            // unframed: the coalescing writer is the buffer (a TBufferedWriteTransport would
            // flush every 4 KiB)
            Box::new(coalescing)
        }
    }
}

struct CoalescingWrite {
    channel: Box<dyn Write + Send>,
    pending: Vec<u8>,
}

impl Write for CoalescingWrite {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.channel.write_all(&self.pending)?;
        self.pending.clear();
        self.channel.flush()
    }
}

fn io_error(message: impl Into<String>) -> thrift::Error {
    thrift::Error::User(Box::new(IOError {
        message: Some(message.into()),
        can_retry: Some(false),
    }))
}

fn illegal(message: impl Into<String>) -> thrift::Error {
    thrift::Error::User(Box::new(IllegalArgument {
        message: Some(message.into()),
    }))
}

fn unsupported<T>(method: &str) -> thrift::Result<T> {
    Err(thrift::Error::Application(ApplicationError::new(
        ApplicationErrorKind::UnknownMethod,
        format!("{method} is not implemented by the test double"),
    )))
}

fn server_now_ms() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(now.as_millis()).expect("ms fit in i64")
}

struct Handler {
    state: Arc<Mutex<State>>,
}

impl Handler {
    /// Lock the state for one call, counting it and failing it when asked to.
    fn call(&self, method: &'static str) -> thrift::Result<MutexGuard<'_, State>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state.calls.entry(method).or_default() += 1;
        if state.failing {
            return Err(thrift::Error::User(Box::new(IOError {
                message: Some("region server unavailable (injected)".into()),
                can_retry: Some(true),
            })));
        }
        Ok(state)
    }
}

impl Table {
    /// Validate `family:qualifier` against the table's families.
    fn check_column(&self, column: &[u8]) -> thrift::Result<()> {
        let Some(colon) = column.iter().position(|&b| b == b':') else {
            return Err(illegal(format!(
                "column {:?} is not family:qualifier",
                String::from_utf8_lossy(column)
            )));
        };
        if !self.families.contains(&column[..colon]) {
            return Err(io_error(format!(
                "NoSuchColumnFamilyException: {}",
                String::from_utf8_lossy(&column[..colon])
            )));
        }
        Ok(())
    }

    /// Apply one row's mutations atomically: validate all, then write all.
    fn mutate(
        &mut self,
        row: Vec<u8>,
        mutations: Vec<Mutation>,
        timestamp: i64,
    ) -> thrift::Result<()> {
        if row.is_empty() {
            return Err(illegal("empty row key"));
        }
        for mutation in &mutations {
            let column = mutation
                .column
                .as_deref()
                .ok_or_else(|| illegal("mutation without column"))?;
            self.check_column(column)?;
        }
        let cells = self.rows.entry(row.clone()).or_default();
        for mutation in mutations {
            let column = mutation.column.unwrap_or_default();
            if mutation.is_delete.unwrap_or(false) {
                cells.remove(&column);
                continue;
            }
            let cell = Cell {
                timestamp,
                value: mutation.value.unwrap_or_default(),
            };
            // one visible version: an older timestamp is masked by the newer cell
            match cells.get(&column) {
                Some(existing) if existing.timestamp > timestamp => {}
                _ => {
                    cells.insert(column, cell);
                }
            }
        }
        if cells.is_empty() {
            self.rows.remove(&row);
        }
        Ok(())
    }
}

impl State {
    fn table(&self, name: &[u8]) -> thrift::Result<&Table> {
        self.tables.get(name).ok_or_else(|| {
            io_error(format!(
                "TableNotFoundException: {}",
                String::from_utf8_lossy(name)
            ))
        })
    }

    fn table_mut(&mut self, name: &[u8]) -> thrift::Result<&mut Table> {
        self.tables.get_mut(name).ok_or_else(|| {
            io_error(format!(
                "TableNotFoundException: {}",
                String::from_utf8_lossy(name)
            ))
        })
    }

    fn scanner_rows(&mut self, id: ScannerID, count: usize) -> thrift::Result<Vec<TRowResult>> {
        let scanner = self
            .scanners
            .get(&id)
            .ok_or_else(|| illegal(format!("unknown scanner {id}")))?;
        let table = self.table(&scanner.table)?;
        let mut results = Vec::new();
        let mut last_row = None;
        for (row, cells) in table.rows.range(scanner.next.clone()..) {
            if !scanner.stop.is_empty() && row >= &scanner.stop {
                break;
            }
            if results.len() == count {
                break;
            }
            last_row = Some(row.clone());
            let columns: BTreeMap<Text, TCell> = cells
                .iter()
                .filter(|(column, _)| {
                    scanner.columns.is_empty()
                        || scanner.columns.iter().any(|wanted| wanted == *column)
                })
                .map(|(column, cell)| {
                    (
                        column.clone(),
                        TCell::new(cell.value.clone(), cell.timestamp),
                    )
                })
                .collect();
            if columns.is_empty() {
                continue;
            }
            results.push(TRowResult::new(row.clone(), columns, None));
        }
        if let Some(mut last_row) = last_row {
            // the smallest key after the last row looked at
            last_row.push(0);
            self.scanners.get_mut(&id).expect("checked above").next = last_row;
        }
        Ok(results)
    }
}

impl HbaseSyncHandler for Handler {
    fn handle_get_table_names(&self) -> thrift::Result<Vec<Text>> {
        let state = self.call("getTableNames")?;
        Ok(state.tables.keys().cloned().collect())
    }

    fn handle_is_table_enabled(&self, table_name: Bytes) -> thrift::Result<bool> {
        let state = self.call("isTableEnabled")?;
        Ok(state.tables.contains_key(&table_name))
    }

    fn handle_create_table(
        &self,
        table_name: Text,
        column_families: Vec<ColumnDescriptor>,
    ) -> thrift::Result<()> {
        let mut state = self.call("createTable")?;
        if state.tables.contains_key(&table_name) {
            return Err(thrift::Error::User(Box::new(AlreadyExists {
                message: Some(String::from_utf8_lossy(&table_name).into_owned()),
            })));
        }
        if column_families.is_empty() {
            return Err(illegal("a table needs at least one column family"));
        }
        let mut table = Table::default();
        for family in column_families {
            let name = family.name.unwrap_or_default();
            let Some(name) = name.strip_suffix(b":").filter(|n| !n.is_empty()) else {
                return Err(illegal("column family names must end in ':'"));
            };
            table.families.insert(name.to_vec());
            table
                .max_versions
                .insert(name.to_vec(), family.max_versions.unwrap_or(3));
        }
        state.tables.insert(table_name, table);
        Ok(())
    }

    fn handle_get(
        &self,
        table_name: Text,
        row: Text,
        column: Text,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<Vec<TCell>> {
        let state = self.call("get")?;
        let table = state.table(&table_name)?;
        table.check_column(&column)?;
        Ok(table
            .rows
            .get(&row)
            .and_then(|cells| cells.get(&column))
            .map(|cell| vec![TCell::new(cell.value.clone(), cell.timestamp)])
            .unwrap_or_default())
    }

    fn handle_mutate_row(
        &self,
        table_name: Text,
        row: Text,
        mutations: Vec<Mutation>,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<()> {
        let mut state = self.call("mutateRow")?;
        state
            .table_mut(&table_name)?
            .mutate(row, mutations, server_now_ms())
    }

    fn handle_mutate_row_ts(
        &self,
        table_name: Text,
        row: Text,
        mutations: Vec<Mutation>,
        timestamp: i64,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<()> {
        let mut state = self.call("mutateRowTs")?;
        if timestamp < 0 {
            return Err(illegal("negative timestamp"));
        }
        state
            .table_mut(&table_name)?
            .mutate(row, mutations, timestamp)
    }

    fn handle_mutate_rows(
        &self,
        table_name: Text,
        row_batches: Vec<BatchMutation>,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<()> {
        let mut state = self.call("mutateRows")?;
        let table = state.table_mut(&table_name)?;
        let now = server_now_ms();
        for batch in row_batches {
            table.mutate(
                batch.row.unwrap_or_default(),
                batch.mutations.unwrap_or_default(),
                now,
            )?;
        }
        Ok(())
    }

    fn handle_mutate_rows_ts(
        &self,
        table_name: Text,
        row_batches: Vec<BatchMutation>,
        timestamp: i64,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<()> {
        let mut state = self.call("mutateRowsTs")?;
        let table = state.table_mut(&table_name)?;
        for batch in row_batches {
            table.mutate(
                batch.row.unwrap_or_default(),
                batch.mutations.unwrap_or_default(),
                timestamp,
            )?;
        }
        Ok(())
    }

    fn handle_check_and_put(
        &self,
        table_name: Text,
        row: Text,
        column: Text,
        value: Text,
        mput: Mutation,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<bool> {
        let mut state = self.call("checkAndPut")?;
        let table = state.table_mut(&table_name)?;
        table.check_column(&column)?;
        let current = table.rows.get(&row).and_then(|cells| cells.get(&column));
        // HRegion.checkAndMutate: an empty expected value matches an absent or empty cell
        let matches = if value.is_empty() {
            current.is_none_or(|cell| cell.value.is_empty())
        } else {
            current.is_some_and(|cell| cell.value == value)
        };
        if !matches {
            return Ok(false);
        }
        if mput.is_delete.unwrap_or(false) {
            return Err(illegal("checkAndPut takes a put"));
        }
        table.mutate(row, vec![mput], server_now_ms())?;
        Ok(true)
    }

    fn handle_scanner_open_with_stop(
        &self,
        table_name: Text,
        start_row: Text,
        stop_row: Text,
        columns: Vec<Text>,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<ScannerID> {
        let mut state = self.call("scannerOpenWithStop")?;
        let table = state.table(&table_name)?;
        for column in &columns {
            table.check_column(column)?;
        }
        state.next_scanner += 1;
        let id = state.next_scanner;
        state.scanners.insert(
            id,
            Scanner {
                table: table_name,
                next: start_row,
                stop: stop_row,
                columns,
            },
        );
        Ok(id)
    }

    fn handle_scanner_get(&self, id: ScannerID) -> thrift::Result<Vec<TRowResult>> {
        let mut state = self.call("scannerGet")?;
        state.scanner_rows(id, 1)
    }

    fn handle_scanner_get_list(
        &self,
        id: ScannerID,
        nb_rows: i32,
    ) -> thrift::Result<Vec<TRowResult>> {
        let mut state = self.call("scannerGetList")?;
        if nb_rows < 1 {
            return Err(illegal("nbRows must be at least 1"));
        }
        state.scanner_rows(id, usize::try_from(nb_rows).unwrap_or(1))
    }

    fn handle_scanner_close(&self, id: ScannerID) -> thrift::Result<()> {
        let mut state = self.call("scannerClose")?;
        state
            .scanners
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| illegal(format!("unknown scanner {id}")))
    }

    // ---- the rest of the interface: not used by the adapter ----

    fn handle_enable_table(&self, _table_name: Bytes) -> thrift::Result<()> {
        unsupported("enable_table")
    }
    fn handle_disable_table(&self, _table_name: Bytes) -> thrift::Result<()> {
        unsupported("disable_table")
    }
    fn handle_compact(&self, _table_name_or_region_name: Bytes) -> thrift::Result<()> {
        unsupported("compact")
    }
    fn handle_major_compact(&self, _table_name_or_region_name: Bytes) -> thrift::Result<()> {
        unsupported("major_compact")
    }
    fn handle_get_table_names_with_is_table_enabled(&self) -> thrift::Result<BTreeMap<Text, bool>> {
        unsupported("get_table_names_with_is_table_enabled")
    }
    fn handle_get_column_descriptors(
        &self,
        _table_name: Text,
    ) -> thrift::Result<BTreeMap<Text, ColumnDescriptor>> {
        unsupported("get_column_descriptors")
    }
    fn handle_get_table_regions(&self, _table_name: Text) -> thrift::Result<Vec<TRegionInfo>> {
        unsupported("get_table_regions")
    }
    fn handle_delete_table(&self, _table_name: Text) -> thrift::Result<()> {
        unsupported("delete_table")
    }
    fn handle_get_ver(
        &self,
        _table_name: Text,
        _row: Text,
        _column: Text,
        _num_versions: i32,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<Vec<TCell>> {
        unsupported("get_ver")
    }
    fn handle_get_ver_ts(
        &self,
        _table_name: Text,
        _row: Text,
        _column: Text,
        _timestamp: i64,
        _num_versions: i32,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<Vec<TCell>> {
        unsupported("get_ver_ts")
    }
    fn handle_get_row(
        &self,
        _table_name: Text,
        _row: Text,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<Vec<TRowResult>> {
        unsupported("get_row")
    }
    fn handle_get_row_with_columns(
        &self,
        _table_name: Text,
        _row: Text,
        _columns: Vec<Text>,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<Vec<TRowResult>> {
        unsupported("get_row_with_columns")
    }
    fn handle_get_row_ts(
        &self,
        _table_name: Text,
        _row: Text,
        _timestamp: i64,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<Vec<TRowResult>> {
        unsupported("get_row_ts")
    }
    fn handle_get_row_with_columns_ts(
        &self,
        _table_name: Text,
        _row: Text,
        _columns: Vec<Text>,
        _timestamp: i64,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<Vec<TRowResult>> {
        unsupported("get_row_with_columns_ts")
    }
    fn handle_get_rows(
        &self,
        _table_name: Text,
        _rows: Vec<Text>,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<Vec<TRowResult>> {
        unsupported("get_rows")
    }
    fn handle_get_rows_with_columns(
        &self,
        _table_name: Text,
        _rows: Vec<Text>,
        _columns: Vec<Text>,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<Vec<TRowResult>> {
        unsupported("get_rows_with_columns")
    }
    fn handle_get_rows_ts(
        &self,
        _table_name: Text,
        _rows: Vec<Text>,
        _timestamp: i64,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<Vec<TRowResult>> {
        unsupported("get_rows_ts")
    }
    fn handle_get_rows_with_columns_ts(
        &self,
        _table_name: Text,
        _rows: Vec<Text>,
        _columns: Vec<Text>,
        _timestamp: i64,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<Vec<TRowResult>> {
        unsupported("get_rows_with_columns_ts")
    }
    fn handle_atomic_increment(
        &self,
        _table_name: Text,
        _row: Text,
        _column: Text,
        _value: i64,
    ) -> thrift::Result<i64> {
        unsupported("atomic_increment")
    }
    fn handle_delete_all(
        &self,
        _table_name: Text,
        _row: Text,
        _column: Text,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<()> {
        unsupported("delete_all")
    }
    fn handle_delete_all_ts(
        &self,
        _table_name: Text,
        _row: Text,
        _column: Text,
        _timestamp: i64,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<()> {
        unsupported("delete_all_ts")
    }
    fn handle_delete_all_row(
        &self,
        _table_name: Text,
        _row: Text,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<()> {
        unsupported("delete_all_row")
    }
    fn handle_increment(&self, _increment: TIncrement) -> thrift::Result<()> {
        unsupported("increment")
    }
    fn handle_increment_rows(&self, _increments: Vec<TIncrement>) -> thrift::Result<()> {
        unsupported("increment_rows")
    }
    fn handle_delete_all_row_ts(
        &self,
        _table_name: Text,
        _row: Text,
        _timestamp: i64,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<()> {
        unsupported("delete_all_row_ts")
    }
    fn handle_scanner_open_with_scan(
        &self,
        _table_name: Text,
        _scan: TScan,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<ScannerID> {
        unsupported("scanner_open_with_scan")
    }
    fn handle_scanner_open(
        &self,
        _table_name: Text,
        _start_row: Text,
        _columns: Vec<Text>,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<ScannerID> {
        unsupported("scanner_open")
    }
    fn handle_scanner_open_with_prefix(
        &self,
        _table_name: Text,
        _start_and_prefix: Text,
        _columns: Vec<Text>,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<ScannerID> {
        unsupported("scanner_open_with_prefix")
    }
    fn handle_scanner_open_ts(
        &self,
        _table_name: Text,
        _start_row: Text,
        _columns: Vec<Text>,
        _timestamp: i64,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<ScannerID> {
        unsupported("scanner_open_ts")
    }
    fn handle_scanner_open_with_stop_ts(
        &self,
        _table_name: Text,
        _start_row: Text,
        _stop_row: Text,
        _columns: Vec<Text>,
        _timestamp: i64,
        _attributes: BTreeMap<Text, Text>,
    ) -> thrift::Result<ScannerID> {
        unsupported("scanner_open_with_stop_ts")
    }
    fn handle_get_region_info(&self, _row: Text) -> thrift::Result<TRegionInfo> {
        unsupported("get_region_info")
    }
    fn handle_append(&self, _append: TAppend) -> thrift::Result<Vec<TCell>> {
        unsupported("append")
    }
    fn handle_get_thrift_server_type(&self) -> thrift::Result<TThriftServerType> {
        unsupported("get_thrift_server_type")
    }
    fn handle_get_cluster_id(&self) -> thrift::Result<String> {
        unsupported("get_cluster_id")
    }
    fn handle_grant(&self, _info: TAccessControlEntity) -> thrift::Result<bool> {
        unsupported("grant")
    }
    fn handle_revoke(&self, _info: TAccessControlEntity) -> thrift::Result<bool> {
        unsupported("revoke")
    }
}
