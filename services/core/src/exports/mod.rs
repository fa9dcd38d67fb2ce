//! Analytics exports: a tenant's orders created in a window of days, written as Parquet or
//! CSV files partitioned `tenant=<t>/date=<YYYY-MM-DD>`, one day at a time.
//!
//! # Every order exactly once
//!
//! An order lives in its shard while hot and in the cold store once archived; the cold store
//! also holds a projected copy of most hot orders (the projector writes every order there),
//! possibly behind the shard. For each day, the cold store's stream of the day
//! ([`ColdStore::scan_stream`], in id order) is merged with every shard's `(id, version)`
//! listing of the day ([`ShardScan::versions_created`], in id order). For each id:
//! - only in the cold store: the cold copy (an archived order);
//! - only in a shard (not yet projected): the order read from its shard;
//! - in both: **the higher version wins**, the cold copy on a tie (the same order). An
//!   archived order's cold copy is at `v + 1` (see `oc_model::archive`), so while the archive
//!   has copied but not yet deleted it, the archived copy wins; a hot order changed since
//!   it was projected is read from its shard.
//!
//! An order the listing named but that is gone from its shard when read (archived in
//! between) is read from the cold store instead. Memory: one page of the cold stream and
//! one page of versions per shard, and the writer's batch, whatever the window holds.
//!
//! # Jobs
//!
//! `POST /v1/exports` records a job ([`ExportJobs`], beside its files), runs it in the
//! background and records its progress after each day and its end. A job is not resumed
//! after a crash: at start, [`Exporter::fail_interrupted`] marks every job still `running`
//! failed ("interrupted"), and its files, written under hidden names until complete, are
//! left for the caller to discard; a new export starts over.

mod row;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt as _;
use time::Date;

use oc_model::export::{
    ExportFiles, ExportFormat, ExportJob, ExportJobs, ExportedFile, JobProgress, JobStatus,
    Partition,
};
use oc_model::ports::{ColdStore, CreatedWindow, ShardScan};
use oc_model::{DomainError, DomainResult, ErrorCode, Order, OrderId, ShardId, UnixMillis};

use crate::Core;
use crate::caller::{Caller, PiiView};
use crate::sealing::Sealer;

pub use row::PiiPolicy;

/// The longest window one export covers.
pub const MAX_DAYS: i64 = 366;
/// Orders asked of the cold store, and versions of each shard, per page.
const PAGE: u32 = 500;

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// First day (UTC), included.
    pub from: Date,
    /// Last day (UTC), excluded.
    pub to: Date,
    pub format: ExportFormat,
    /// Ask for plaintext personal data (a role with `pii: full` only).
    pub plaintext: bool,
}

impl ExportRequest {
    /// `from`/`to` as `YYYY-MM-DD`; errors name the field (`/from`, `/to`, `/format`).
    pub fn parse(from: &str, to: &str, format: &str, plaintext: bool) -> DomainResult<Self> {
        let date = |text: &str, field: &str| {
            Date::parse(
                text,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .map_err(|_| DomainError::invalid(field, "a date YYYY-MM-DD is expected"))
        };
        let from = date(from, "/from")?;
        let to = date(to, "/to")?;
        if to <= from {
            return Err(DomainError::invalid(
                "/to",
                "to must be after from (to is excluded)",
            ));
        }
        if (to - from).whole_days() > MAX_DAYS {
            return Err(DomainError::invalid(
                "/to",
                format!("a window of at most {MAX_DAYS} days is exported at once"),
            ));
        }
        let format = ExportFormat::parse(format)
            .ok_or_else(|| DomainError::invalid("/format", "format is parquet or csv"))?;
        Ok(ExportRequest {
            from,
            to,
            format,
            plaintext,
        })
    }

    fn days(&self) -> u32 {
        (self.to - self.from).whole_days() as u32
    }
}

/// The exporter. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Exporter {
    shards: Arc<dyn ShardScan>,
    cold: Arc<dyn ColdStore>,
    files: Arc<dyn ExportFiles>,
    jobs: Option<Arc<dyn ExportJobs>>,
    sealer: Sealer,
    clock: Arc<dyn oc_model::ports::Clock>,
}

impl Core {
    /// An exporter of this core's orders: hot ones through `shards` (the SQL order store),
    /// archived ones from `cold`; jobs of `POST /v1/exports` recorded in `jobs`.
    pub fn exporter(
        &self,
        shards: Arc<dyn ShardScan>,
        cold: Arc<dyn ColdStore>,
        files: Arc<dyn ExportFiles>,
        jobs: Option<Arc<dyn ExportJobs>>,
    ) -> Exporter {
        Exporter {
            shards,
            cold,
            files,
            jobs,
            sealer: self.orders.sealer.clone(),
            clock: Arc::clone(&self.orders.clock),
        }
    }
}

/// Progress as the export goes: after each day and every [`PROGRESS_ROWS`] rows.
pub type ProgressFn<'a> = &'a (dyn Fn(&JobProgress, Date) + Send + Sync);
pub const PROGRESS_ROWS: u64 = 5_000;

/// The policy for `caller`'s export: plaintext when asked and its role sees PII in full
/// (asked by another role: 403), else the tenant's `exports.pii`.
pub fn policy(caller: &Caller, plaintext: bool) -> DomainResult<PiiPolicy> {
    if plaintext {
        if caller.pii != PiiView::Full {
            return Err(DomainError::new(
                ErrorCode::Forbidden,
                format!(
                    "role {} does not see personal data in full: it may not export it in plaintext",
                    caller.role
                ),
            )
            .under("/pii"));
        }
        return Ok(PiiPolicy::Plain);
    }
    Ok(caller.tenant_config().exports().pii.into())
}

/// A shard's `(id, version)` listing of one day, a page at a time.
struct ShardCursor {
    shard: ShardId,
    buffered: VecDeque<(OrderId, u64)>,
    after: Option<OrderId>,
    done: bool,
}

impl Exporter {
    /// Export `request` for `caller` into `dir`; `progress` hears of each day and of every
    /// [`PROGRESS_ROWS`] rows. Returns the files written and the final counts.
    pub async fn run(
        &self,
        caller: &Caller,
        request: &ExportRequest,
        dir: &Path,
        progress: ProgressFn<'_>,
    ) -> DomainResult<(Vec<ExportedFile>, JobProgress)> {
        let policy = policy(caller, request.plaintext)?;
        let tenant = caller.tenant_config();
        let layout = row::Layout::of(tenant, policy);
        let mut counts = JobProgress {
            days_total: request.days(),
            days_done: 0,
            rows: 0,
        };
        let mut files = Vec::new();
        let mut day = request.from;
        while day < request.to {
            let partition = Partition {
                tenant: caller.tenant.clone(),
                date: day,
            };
            let mut writer = None;
            let mut orders = self.day(&caller.tenant, day);
            while let Some(order) = orders.next().await {
                let order = order?;
                if !caller.sees(&order) {
                    continue;
                }
                let row = layout.row(tenant, &self.sealer, &order)?;
                let writer = match &mut writer {
                    Some(writer) => writer,
                    None => writer.insert(self.files.open(
                        dir,
                        request.format,
                        &layout.schema,
                        &partition,
                    )?),
                };
                writer.write(row)?;
                counts.rows += 1;
                if counts.rows.is_multiple_of(PROGRESS_ROWS) {
                    progress(&counts, day);
                }
            }
            if let Some(writer) = writer {
                files.extend(writer.finish()?);
            }
            counts.days_done += 1;
            progress(&counts, day);
            day = day.next_day().unwrap_or(request.to);
        }
        Ok((files, counts))
    }

    /// The orders of `tenant` created on `day`, each once, in id order (see the module
    /// documentation for which copy).
    fn day<'a>(
        &'a self,
        tenant: &'a oc_model::TenantId,
        day: Date,
    ) -> futures_util::stream::BoxStream<'a, DomainResult<Order>> {
        let start = day.midnight().assume_utc();
        let end = start + time::Duration::days(1);
        let window = CreatedWindow {
            tenant: tenant.clone(),
            from: UnixMillis::from(start),
            to: UnixMillis::from(end),
        };
        let cold = self.cold.scan_stream(tenant, start, end, PAGE).peekable();
        let shards: Vec<ShardCursor> = self
            .shards
            .shards()
            .into_iter()
            .map(|shard| ShardCursor {
                shard,
                buffered: VecDeque::new(),
                after: None,
                done: false,
            })
            .collect();
        // try_unfold ends the stream after the first error it yields
        futures_util::stream::try_unfold(
            (cold, shards, window),
            move |(mut cold, mut shards, window)| async move {
                let next = self.next_of_day(&mut cold, &mut shards, &window).await?;
                Ok(next.map(|order| (order, (cold, shards, window))))
            },
        )
        .boxed()
    }

    async fn fill(&self, cursor: &mut ShardCursor, window: &CreatedWindow) -> DomainResult<()> {
        if cursor.buffered.is_empty() && !cursor.done {
            let page = self
                .shards
                .versions_created(cursor.shard, window, cursor.after, PAGE)
                .await?;
            cursor.done = page.len() < PAGE as usize;
            cursor.after = page.last().map(|(id, _)| *id).or(cursor.after);
            cursor.buffered.extend(page);
        }
        Ok(())
    }

    async fn next_of_day(
        &self,
        cold: &mut futures_util::stream::Peekable<
            futures_util::stream::BoxStream<'_, DomainResult<Order>>,
        >,
        shards: &mut [ShardCursor],
        window: &CreatedWindow,
    ) -> DomainResult<Option<Order>> {
        for cursor in shards.iter_mut() {
            self.fill(cursor, window).await?;
        }
        let hot = shards
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.buffered.front().map(|head| (i, *head)))
            .min_by_key(|(_, (id, _))| *id);
        let cold_head = match std::pin::Pin::new(&mut *cold).peek().await {
            None => None,
            Some(Ok(order)) => Some((order.main.id, order.main.version)),
            Some(Err(_)) => {
                return match cold.next().await {
                    Some(Err(error)) => Err(error),
                    _ => Err(DomainError::internal("cold stream")),
                };
            }
        };
        match (cold_head, hot) {
            (None, None) => Ok(None),
            (Some(_), None) => cold.next().await.transpose(),
            (Some((cold_id, _)), Some((_, (hot_id, _)))) if cold_id < hot_id => {
                cold.next().await.transpose()
            }
            (cold_head, Some((shard, (hot_id, hot_version)))) => {
                shards[shard].buffered.pop_front();
                if let Some((cold_id, cold_version)) = cold_head
                    && cold_id == hot_id
                {
                    let cold_copy = cold.next().await.transpose()?;
                    if cold_version >= hot_version {
                        return Ok(cold_copy);
                    }
                }
                self.read_hot(&window.tenant, hot_id).await.map(Some)
            }
        }
    }

    /// A hot order by id; one archived since it was listed is read from the cold store.
    async fn read_hot(&self, tenant: &oc_model::TenantId, id: OrderId) -> DomainResult<Order> {
        if let Some(order) = self.shards.get(tenant, id).await? {
            return Ok(order);
        }
        self.cold.get(tenant, id).await?.ok_or_else(|| {
            DomainError::new(
                ErrorCode::Unavailable,
                format!(
                    "order {id} left its shard during the export and is not in the cold store yet"
                ),
            )
        })
    }

    fn jobs(&self) -> DomainResult<&Arc<dyn ExportJobs>> {
        self.jobs
            .as_ref()
            .ok_or_else(|| DomainError::new(ErrorCode::Unavailable, "exports are not configured"))
    }

    fn now_ms(&self) -> UnixMillis {
        UnixMillis::from(self.clock.now())
    }

    /// The record of `caller`'s export of `request` as job `id`, `running`: who asked, under
    /// which PII policy (403 at `/pii` for plaintext asked by a role that may not see it).
    /// `POST /v1/exports` and `ordercenter export` record their exports alike.
    pub fn new_job(
        &self,
        id: String,
        caller: &Caller,
        request: &ExportRequest,
    ) -> DomainResult<ExportJob> {
        let policy = policy(caller, request.plaintext)?;
        Ok(ExportJob {
            id,
            tenant: caller.tenant.clone(),
            requested_by: caller.key_id.clone(),
            role: caller.role.to_string(),
            pii: policy.as_str().to_owned(),
            format: request.format,
            from: request.from.to_string(),
            to: request.to.to_string(),
            status: JobStatus::Running,
            progress: JobProgress {
                days_total: request.days(),
                ..JobProgress::default()
            },
            files: Vec::new(),
            error: None,
            created_at_ms: self.now_ms(),
            finished_at_ms: None,
        })
    }

    /// Record the end of `job` from the outcome of [`Exporter::run`]: succeeded with its
    /// files and counts, or failed with the error's message.
    pub fn finish(
        &self,
        job: &mut ExportJob,
        outcome: DomainResult<(Vec<ExportedFile>, JobProgress)>,
    ) {
        job.finished_at_ms = Some(self.now_ms());
        match outcome {
            Ok((files, counts)) => {
                job.status = JobStatus::Succeeded;
                job.progress = counts;
                job.files = files;
            }
            Err(error) => {
                job.status = JobStatus::Failed;
                job.error = Some(error.message);
            }
        }
    }

    /// Record a job for `caller`'s export and run it in the background; the job as recorded.
    pub fn start_job(&self, caller: &Caller, request: ExportRequest) -> DomainResult<ExportJob> {
        let jobs = Arc::clone(self.jobs()?);
        let job = self.new_job(uuid::Uuid::new_v4().to_string(), caller, &request)?;
        jobs.save(&job)?;
        let exporter = self.clone();
        let caller = caller.clone();
        let started = job.clone();
        tokio::spawn(async move {
            let dir = jobs.dir(&started.id);
            let live = std::sync::Mutex::new(started);
            let record = |counts: &JobProgress, _: Date| {
                let mut job = live.lock().unwrap_or_else(|e| e.into_inner());
                job.progress = counts.clone();
                if let Err(error) = jobs.save(&job) {
                    tracing::warn!(job = %job.id, %error, "export progress not recorded");
                }
            };
            let outcome = exporter.run(&caller, &request, &dir, &record).await;
            let mut job = live.into_inner().unwrap_or_else(|e| e.into_inner());
            if let Err(error) = &outcome {
                tracing::warn!(job = %job.id, %error, "export failed");
            }
            exporter.finish(&mut job, outcome);
            if let Err(error) = jobs.save(&job) {
                tracing::error!(job = %job.id, %error, "export outcome not recorded");
            }
        });
        Ok(job)
    }

    /// Job `id` of the caller's tenant; another tenant's is as unknown as a missing one.
    pub fn job(&self, caller: &Caller, id: &str) -> DomainResult<ExportJob> {
        match self.jobs()?.load(id)? {
            Some(job) if job.tenant == caller.tenant => Ok(job),
            _ => Err(DomainError::not_found("export not found")),
        }
    }

    /// Mark every job recorded `running` failed: called at start, when no process runs any
    /// of them any more. Returns how many.
    pub fn fail_interrupted(&self) -> DomainResult<usize> {
        let jobs = self.jobs()?;
        let running = jobs.running()?;
        for mut job in running.iter().cloned() {
            job.status = JobStatus::Failed;
            job.error = Some(
                "interrupted: the server stopped while this export ran; its files are incomplete, create a new export"
                    .to_owned(),
            );
            job.finished_at_ms = Some(self.now_ms());
            jobs.save(&job)?;
        }
        Ok(running.len())
    }
}
