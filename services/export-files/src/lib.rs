#![doc = include_str!("../README.md")]
//! Export files for the [`ExportFiles`] port: Parquet through the `parquet` crate's
//! `ArrowWriter`, CSV through `arrow-csv`, one partition `tenant=<t>/date=<YYYY-MM-DD>` at a
//! time; and [`DirJobs`], export jobs recorded as JSON beside their files.
//!
//! Layout under an export's directory:
//! - Parquet: `tenant=<t>/date=<d>/part-00000.parquet`, one row per order, its lines a
//!   `lines` column of `list<struct<…>>`;
//! - CSV: `tenant=<t>/date=<d>/part-00000.csv` (orders) and
//!   `lines/tenant=<t>/date=<d>/part-00000.csv` (one row per line, starting with `order_id`),
//!   so a glob over the orders never reads lines.
//!
//! Memory: rows are buffered up to [`BATCH_ROWS`], turned into one Arrow record batch and
//! handed to the writer, whose row groups are capped at [`ROW_GROUP_ROWS`]: what a writer
//! holds does not depend on how many orders a partition has. A file is written under a
//! hidden name (`.part-00000.parquet.inprogress`, which Hive-style readers skip) and renamed
//! when complete.

mod jobs;
mod write;

pub use jobs::DirJobs;
pub use write::{BATCH_ROWS, ROW_GROUP_ROWS};

use std::path::Path;

use oc_model::DomainResult;
use oc_model::export::{ExportFiles, ExportFormat, ExportSchema, Partition, PartitionWriter};

/// The file writer: Parquet or CSV by the export's format.
#[derive(Debug, Clone, Copy, Default)]
pub struct ArrowFiles;

impl ExportFiles for ArrowFiles {
    fn open(
        &self,
        dir: &Path,
        format: ExportFormat,
        schema: &ExportSchema,
        partition: &Partition,
    ) -> DomainResult<Box<dyn PartitionWriter>> {
        Ok(Box::new(write::Writer::open(
            dir, format, schema, partition,
        )?))
    }
}
