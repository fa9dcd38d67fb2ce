//! Analytics exports: the rows an export writes, the port that writes them to files
//! (Parquet or CSV, partitioned Hive-style by tenant and date), and the durable record of an
//! export job.
//!
//! The core turns orders into [`ExportRow`]s under an [`ExportSchema`] it derives from the
//! tenant config; an adapter of [`ExportFiles`] owns the file format. Memory: a writer holds
//! at most one batch of rows (its row group) at a time, whatever the window holds.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};
use crate::ids::TenantId;
use crate::millis::UnixMillis;

/// The type of one exported column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Text,
    Int,
    Bool,
    /// A calendar date (Parquet DATE).
    Date,
    /// Milliseconds since the epoch, UTC (Parquet TIMESTAMP(MILLIS, UTC)).
    Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ColumnType,
}

impl Column {
    pub fn new(name: impl Into<String>, kind: ColumnType) -> Column {
        Column {
            name: name.into(),
            kind,
        }
    }
}

/// One value of a row; its variant matches its column's [`ColumnType`] (or is `Null`).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
    Date(time::Date),
    Timestamp(UnixMillis),
}

/// The columns of an export: an order's, and a line's (a nested list in Parquet, a second
/// file in CSV; a line row starts with its order's id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSchema {
    pub order: Vec<Column>,
    pub line: Vec<Column>,
}

/// One order: its cells in [`ExportSchema::order`] order, and each line's cells in
/// [`ExportSchema::line`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow {
    pub order: Vec<Cell>,
    pub lines: Vec<Vec<Cell>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    Parquet,
    Csv,
}

impl ExportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Parquet => "parquet",
            ExportFormat::Csv => "csv",
        }
    }

    pub fn parse(text: &str) -> Option<ExportFormat> {
        match text {
            "parquet" => Some(ExportFormat::Parquet),
            "csv" => Some(ExportFormat::Csv),
            _ => None,
        }
    }
}

/// One Hive partition: `tenant=<t>/date=<YYYY-MM-DD>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub tenant: TenantId,
    pub date: time::Date,
}

impl Partition {
    /// `tenant=<t>/date=<YYYY-MM-DD>`, relative to the export's directory.
    pub fn relative_dir(&self) -> PathBuf {
        let (year, month, day) = (
            self.date.year(),
            u8::from(self.date.month()),
            self.date.day(),
        );
        PathBuf::from(format!("tenant={}", self.tenant.as_str()))
            .join(format!("date={year:04}-{month:02}-{day:02}"))
    }
}

/// A file an export wrote, relative to its directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedFile {
    pub path: String,
    /// Order rows (or line rows, for a CSV lines file).
    pub rows: u64,
    pub bytes: u64,
}

/// Writes export files. Files appear under their final names only when complete: a writer
/// dropped before [`PartitionWriter::finish`] (a crash, an error) leaves no file a reader
/// would take for a whole partition.
pub trait ExportFiles: Send + Sync + Debug + 'static {
    fn open(
        &self,
        dir: &Path,
        format: ExportFormat,
        schema: &ExportSchema,
        partition: &Partition,
    ) -> DomainResult<Box<dyn PartitionWriter>>;
}

/// The writer of one partition's files.
pub trait PartitionWriter: Send {
    fn write(&mut self, row: ExportRow) -> DomainResult<()>;
    /// Flush, close and move the files to their final names.
    fn finish(self: Box<Self>) -> DomainResult<Vec<ExportedFile>>;
}

/// An I/O failure of an export as a domain error.
pub fn io_error(what: &str, error: impl std::fmt::Display) -> DomainError {
    DomainError::internal(format!("export {what}: {error}"))
}

/// Where an export job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Succeeded,
    /// Failed, or interrupted (the process running it stopped): its files are incomplete;
    /// create a new export.
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgress {
    pub days_total: u32,
    pub days_done: u32,
    pub rows: u64,
}

/// An export job as it is recorded: who asked, what for, under which PII policy, and how
/// far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportJob {
    pub id: String,
    pub tenant: TenantId,
    /// The API key (or `cli:<user>`) that asked.
    pub requested_by: String,
    pub role: String,
    /// The policy applied to personal data: `dropped`, `masked`, `token` or `plain`.
    pub pii: String,
    pub format: ExportFormat,
    /// The window of creation dates `[from, to)`, UTC.
    pub from: String,
    pub to: String,
    pub status: JobStatus,
    pub progress: JobProgress,
    pub files: Vec<ExportedFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at_ms: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<UnixMillis>,
}

/// The durable record of export jobs.
pub trait ExportJobs: Send + Sync + Debug + 'static {
    /// Where job `id` writes its files.
    fn dir(&self, id: &str) -> PathBuf;
    /// Record the job (replacing what was recorded, atomically).
    fn save(&self, job: &ExportJob) -> DomainResult<()>;
    fn load(&self, id: &str) -> DomainResult<Option<ExportJob>>;
    /// Every recorded job still `running`: at start, none of them has a process any more.
    fn running(&self) -> DomainResult<Vec<ExportJob>>;
}
