//! Export metrics: what each finished job cost (duration, rows, bytes, throughput) and statistics
//! over a window, read from the jobs themselves so every process sees the same figures.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use export_domain::{ExportFormat, ExportJob, ExportType, JobStatus};
use export_store::{Store, StoreError, jobs};
use serde::Serialize;
use uuid::Uuid;

/// What one finished job cost.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobMetrics {
    pub job_id: Uuid,
    pub export_type: ExportType,
    pub format: ExportFormat,
    pub status: JobStatus,
    pub duration_seconds: f64,
    pub rows: i64,
    pub bytes: i64,
    pub rows_per_second: f64,
}

impl JobMetrics {
    /// The metrics of a job that ran to an end (completed, failed, expired); `None` otherwise.
    pub fn of(job: &ExportJob) -> Option<JobMetrics> {
        let (Some(started), Some(ended)) = (job.started_at, job.completed_at) else {
            return None;
        };
        let duration_seconds = (ended - started).num_milliseconds().max(0) as f64 / 1000.0;
        let rows = job.row_count.unwrap_or(0);
        Some(JobMetrics {
            job_id: job.id,
            export_type: job.export_type,
            format: job.format,
            status: job.status,
            duration_seconds,
            rows,
            bytes: job.file_size_bytes.unwrap_or(0),
            rows_per_second: if duration_seconds > 0.0 {
                rows as f64 / duration_seconds
            } else {
                0.0
            },
        })
    }
}

/// Statistics of the jobs created in a window.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ExportStats {
    pub since: DateTime<Utc>,
    pub total: usize,
    /// Jobs by export type.
    pub by_type: BTreeMap<String, usize>,
    /// Jobs by format.
    pub by_format: BTreeMap<String, usize>,
    /// Jobs by status.
    pub by_status: BTreeMap<String, usize>,
    /// Completed (or since expired) out of those that ended; null when none ended.
    #[schema(minimum = 0, maximum = 1)]
    pub success_rate: Option<f64>,
    pub average_duration_seconds: Option<f64>,
    pub average_rows_per_second: Option<f64>,
    pub average_bytes: Option<f64>,
    /// The five slowest finished jobs, slowest first.
    #[schema(max_items = 5)]
    pub slowest: Vec<JobMetrics>,
}

/// Statistics over the jobs created in the `window` before `now` (the seed platform used 7 days),
/// counted and averaged by the database.
pub fn stats(
    store: &Store,
    now: DateTime<Utc>,
    window: Duration,
) -> Result<ExportStats, StoreError> {
    let since = now - window;
    let mut conn = store.connection()?;
    let aggregates = jobs::aggregate_created_since(&mut conn, since, None, SLOWEST)?;
    Ok(stats_from(since, aggregates))
}

/// How many of the slowest finished jobs the statistics name.
pub const SLOWEST: i64 = 5;

/// Statistics from the database's aggregates of the jobs created since `since`.
pub fn stats_from(since: DateTime<Utc>, aggregates: jobs::JobAggregates) -> ExportStats {
    let mut by_type = BTreeMap::new();
    let mut by_format = BTreeMap::new();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    for (export_type, format, status, jobs) in aggregates.counts {
        let jobs = usize::try_from(jobs).unwrap_or(0);
        total += jobs;
        *by_type.entry(export_type).or_default() += jobs;
        *by_format.entry(format).or_default() += jobs;
        *by_status.entry(status).or_default() += jobs;
    }
    let count = |status: JobStatus| by_status.get(status.as_str()).copied().unwrap_or(0);
    let succeeded = count(JobStatus::Completed) + count(JobStatus::Expired);
    let ended = succeeded + count(JobStatus::Failed);
    ExportStats {
        since,
        total,
        by_type,
        by_format,
        success_rate: (ended > 0).then(|| succeeded as f64 / ended as f64),
        by_status,
        average_duration_seconds: aggregates.average_duration_seconds,
        average_rows_per_second: aggregates.average_rows_per_second,
        average_bytes: aggregates.average_bytes,
        slowest: aggregates
            .slowest
            .iter()
            .filter_map(JobMetrics::of)
            .collect(),
    }
}
