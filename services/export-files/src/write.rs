//! One partition's writer: rows buffered to a batch, the batch turned into Arrow arrays and
//! written as Parquet (lines nested) or CSV (lines in their own file).

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Int64Array, ListArray, RecordBatch, StringArray,
    StructArray, TimestampMillisecondArray,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use oc_model::DomainResult;
use oc_model::export::{
    Cell, Column, ColumnType, ExportFormat, ExportRow, ExportSchema, ExportedFile, Partition,
    PartitionWriter, io_error,
};

/// Rows buffered before they are turned into one record batch.
pub const BATCH_ROWS: usize = 2048;
/// Rows of one Parquet row group: the Parquet writer holds one row group's encoded pages
/// until it is flushed, so this caps its memory (the crate's default is about a million).
pub const ROW_GROUP_ROWS: usize = 16 * 1024;

const PART: &str = "part-00000";
const UTC: &str = "+00:00";

fn data_type(kind: ColumnType) -> DataType {
    match kind {
        ColumnType::Text => DataType::Utf8,
        ColumnType::Int => DataType::Int64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        // an offset, not a zone name: arrow-csv formats zone names only with chrono-tz,
        // which we leave out; Parquet marks either as UTC-adjusted
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into())),
    }
}

fn fields(columns: &[Column]) -> Vec<Field> {
    columns
        .iter()
        .map(|c| Field::new(&c.name, data_type(c.kind), true))
        .collect()
}

/// The Arrow array of one column from its cells (a cell of another type than the column's
/// is written as null; the core never makes one).
fn array<'a>(kind: ColumnType, cells: impl Iterator<Item = &'a Cell>) -> ArrayRef {
    match kind {
        ColumnType::Text => Arc::new(StringArray::from_iter(cells.map(|c| match c {
            Cell::Text(text) => Some(text.as_str()),
            _ => None,
        }))),
        ColumnType::Int => Arc::new(Int64Array::from_iter(cells.map(|c| match c {
            Cell::Int(value) => Some(*value),
            _ => None,
        }))),
        ColumnType::Bool => Arc::new(BooleanArray::from_iter(cells.map(|c| match c {
            Cell::Bool(value) => Some(*value),
            _ => None,
        }))),
        ColumnType::Date => Arc::new(Date32Array::from_iter(cells.map(|c| match c {
            Cell::Date(date) => Some(days_since_epoch(*date)),
            _ => None,
        }))),
        ColumnType::Timestamp => Arc::new(
            TimestampMillisecondArray::from_iter(cells.map(|c| match c {
                Cell::Timestamp(ms) => Some(ms.get()),
                _ => None,
            }))
            .with_timezone(UTC),
        ),
    }
}

/// Parquet/Arrow DATE: days since 1970-01-01.
fn days_since_epoch(date: time::Date) -> i32 {
    date.to_julian_day() - time::OffsetDateTime::UNIX_EPOCH.date().to_julian_day()
}

fn arrow_error(what: &str) -> impl Fn(arrow_schema::ArrowError) -> oc_model::DomainError + '_ {
    move |e| io_error(what, e)
}

// one sink per partition being written, inside its boxed writer: the size difference of the
// variants costs nothing worth an indirection
#[allow(clippy::large_enum_variant)]
enum Sink {
    Parquet(ArrowWriter<BufWriter<File>>),
    Csv {
        orders: arrow_csv::Writer<BufWriter<File>>,
        lines: arrow_csv::Writer<BufWriter<File>>,
    },
}

/// A file being written: its hidden name, its final name and its path in the report.
struct Pending {
    temporary: PathBuf,
    target: PathBuf,
    relative: String,
    rows: u64,
}

pub(crate) struct Writer {
    schema: ExportSchema,
    orders_schema: SchemaRef,
    lines_schema: SchemaRef,
    line_fields: Fields,
    sink: Sink,
    files: Vec<Pending>,
    buffer: Vec<ExportRow>,
}

fn pending(root: &Path, relative: PathBuf) -> DomainResult<Pending> {
    let target = root.join(&relative);
    let parent = target.parent().unwrap_or(root).to_path_buf();
    fs::create_dir_all(&parent).map_err(|e| io_error("partition dir", e))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Pending {
        temporary: parent.join(format!(".{name}.inprogress")),
        target,
        relative: relative.to_string_lossy().replace('\\', "/"),
        rows: 0,
    })
}

fn create(file: &Pending) -> DomainResult<BufWriter<File>> {
    File::create(&file.temporary)
        .map(BufWriter::new)
        .map_err(|e| io_error("create file", e))
}

impl Writer {
    pub(crate) fn open(
        dir: &Path,
        format: ExportFormat,
        schema: &ExportSchema,
        partition: &Partition,
    ) -> DomainResult<Writer> {
        let line_fields = Fields::from(fields(&schema.line));
        let lines_schema = Arc::new(Schema::new(line_fields.clone()));
        let mut order_fields = fields(&schema.order);
        let relative = partition.relative_dir();
        let (sink, files) = match format {
            ExportFormat::Parquet => {
                order_fields.push(Field::new(
                    "lines",
                    DataType::List(Arc::new(Field::new(
                        "item",
                        DataType::Struct(line_fields.clone()),
                        true,
                    ))),
                    true,
                ));
                let file = pending(dir, relative.join(format!("{PART}.parquet")))?;
                let properties = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                    .set_created_by("ordercenter export".to_owned())
                    .build();
                let writer = ArrowWriter::try_new(
                    create(&file)?,
                    Arc::new(Schema::new(order_fields.clone())),
                    Some(properties),
                )
                .map_err(|e| io_error("parquet", e))?;
                (Sink::Parquet(writer), vec![file])
            }
            ExportFormat::Csv => {
                let orders = pending(dir, relative.join(format!("{PART}.csv")))?;
                let lines = pending(
                    dir,
                    Path::new("lines")
                        .join(&relative)
                        .join(format!("{PART}.csv")),
                )?;
                let sink = Sink::Csv {
                    orders: arrow_csv::WriterBuilder::new()
                        .with_header(true)
                        .build(create(&orders)?),
                    lines: arrow_csv::WriterBuilder::new()
                        .with_header(true)
                        .build(create(&lines)?),
                };
                (sink, vec![orders, lines])
            }
        };
        Ok(Writer {
            schema: schema.clone(),
            orders_schema: Arc::new(Schema::new(order_fields)),
            lines_schema,
            line_fields,
            sink,
            files,
            buffer: Vec::with_capacity(BATCH_ROWS),
        })
    }

    fn flush(&mut self) -> DomainResult<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.buffer);
        let mut columns: Vec<ArrayRef> = self
            .schema
            .order
            .iter()
            .enumerate()
            .map(|(i, column)| array(column.kind, rows.iter().map(|row| &row.order[i])))
            .collect();
        let line_columns: Vec<ArrayRef> = self
            .schema
            .line
            .iter()
            .enumerate()
            .map(|(i, column)| {
                array(
                    column.kind,
                    rows.iter()
                        .flat_map(|row| row.lines.iter().map(move |line| &line[i])),
                )
            })
            .collect();
        let line_count: u64 = rows.iter().map(|row| row.lines.len() as u64).sum();
        match &mut self.sink {
            Sink::Parquet(writer) => {
                let values = StructArray::try_new(self.line_fields.clone(), line_columns, None)
                    .map_err(arrow_error("lines"))?;
                let offsets = OffsetBuffer::from_lengths(rows.iter().map(|row| row.lines.len()));
                let item = Arc::new(Field::new(
                    "item",
                    DataType::Struct(self.line_fields.clone()),
                    true,
                ));
                columns.push(Arc::new(
                    ListArray::try_new(item, offsets, Arc::new(values), None)
                        .map_err(arrow_error("lines"))?,
                ));
                let batch = RecordBatch::try_new(Arc::clone(&self.orders_schema), columns)
                    .map_err(arrow_error("batch"))?;
                writer.write(&batch).map_err(|e| io_error("parquet", e))?;
                self.files[0].rows += rows.len() as u64;
            }
            Sink::Csv { orders, lines } => {
                let batch = RecordBatch::try_new(Arc::clone(&self.orders_schema), columns)
                    .map_err(arrow_error("batch"))?;
                orders.write(&batch).map_err(arrow_error("csv"))?;
                let batch = RecordBatch::try_new(Arc::clone(&self.lines_schema), line_columns)
                    .map_err(arrow_error("lines batch"))?;
                lines.write(&batch).map_err(arrow_error("csv"))?;
                self.files[0].rows += rows.len() as u64;
                self.files[1].rows += line_count;
            }
        }
        self.buffer = rows;
        self.buffer.clear();
        Ok(())
    }
}

impl PartitionWriter for Writer {
    fn write(&mut self, row: ExportRow) -> DomainResult<()> {
        self.buffer.push(row);
        if self.buffer.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> DomainResult<Vec<ExportedFile>> {
        self.flush()?;
        let Writer { sink, files, .. } = *self;
        match sink {
            Sink::Parquet(writer) => {
                writer.close().map_err(|e| io_error("parquet", e))?;
            }
            Sink::Csv { orders, lines } => {
                for writer in [orders, lines] {
                    let mut inner = writer.into_inner();
                    std::io::Write::flush(&mut inner).map_err(|e| io_error("csv", e))?;
                }
            }
        }
        let mut done = Vec::with_capacity(files.len());
        for file in files {
            let bytes = fs::metadata(&file.temporary)
                .map_err(|e| io_error("file", e))?
                .len();
            fs::rename(&file.temporary, &file.target).map_err(|e| io_error("rename", e))?;
            done.push(ExportedFile {
                path: file.relative,
                rows: file.rows,
                bytes,
            });
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oc_model::TenantId;
    use oc_model::export::ExportFiles;

    #[test]
    fn a_date_is_its_days_since_1970() {
        assert_eq!(days_since_epoch(time::macros::date!(1970 - 01 - 01)), 0);
        assert_eq!(days_since_epoch(time::macros::date!(1969 - 12 - 31)), -1);
        assert_eq!(
            days_since_epoch(time::macros::date!(2026 - 11 - 01)),
            20_758
        );
    }

    #[test]
    fn a_partition_is_written_under_its_hive_path_and_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let schema = ExportSchema {
            order: vec![
                Column::new("order_id", ColumnType::Text),
                Column::new("amount", ColumnType::Int),
            ],
            line: vec![
                Column::new("order_id", ColumnType::Text),
                Column::new("sku", ColumnType::Text),
            ],
        };
        let partition = Partition {
            tenant: TenantId::parse("retail").unwrap(),
            date: time::macros::date!(2026 - 11 - 01),
        };
        for format in [ExportFormat::Parquet, ExportFormat::Csv] {
            let mut writer = crate::ArrowFiles
                .open(dir.path(), format, &schema, &partition)
                .unwrap();
            for i in 0..(BATCH_ROWS as i64 + 3) {
                writer
                    .write(ExportRow {
                        order: vec![Cell::Text(i.to_string()), Cell::Int(i)],
                        lines: vec![vec![Cell::Text(i.to_string()), Cell::Text("A".into())]; 2],
                    })
                    .unwrap();
            }
            let name = format!(
                "tenant=retail/date=2026-11-01/part-00000.{}",
                format.as_str()
            );
            assert!(!dir.path().join(&name).exists(), "visible before finish");
            let files = writer.finish().unwrap();
            assert_eq!(files[0].path, name);
            assert_eq!(files[0].rows, BATCH_ROWS as u64 + 3);
            assert!(dir.path().join(&name).exists());
            if format == ExportFormat::Csv {
                assert_eq!(
                    files[1].path,
                    "lines/tenant=retail/date=2026-11-01/part-00000.csv"
                );
                assert_eq!(files[1].rows, 2 * (BATCH_ROWS as u64 + 3));
            }
        }
    }
}
