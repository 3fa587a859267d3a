//! Export metrics: what each finished job cost (duration, rows, bytes, throughput) and statistics
//! over a window, read from the jobs themselves so every process sees the same figures.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use export_domain::{ExportFormat, ExportJob, ExportType, JobStatus};
use export_store::{Store, StoreError, jobs};
use serde::Serialize;
use uuid::Uuid;

/// What one job cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportStats {
    pub since: DateTime<Utc>,
    pub total: usize,
    pub by_type: BTreeMap<String, usize>,
    pub by_format: BTreeMap<String, usize>,
    pub by_status: BTreeMap<String, usize>,
    /// Completed (or since expired) out of those that ended; `None` when none ended.
    pub success_rate: Option<f64>,
    pub average_duration_seconds: Option<f64>,
    pub average_rows_per_second: Option<f64>,
    pub average_bytes: Option<f64>,
    /// The five slowest finished jobs, slowest first.
    pub slowest: Vec<JobMetrics>,
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Statistics over the jobs created in the `window` before `now` (the seed platform used 7 days).
pub fn stats(
    store: &Store,
    now: DateTime<Utc>,
    window: Duration,
) -> Result<ExportStats, StoreError> {
    let since = now - window;
    let mut conn = store.connection()?;
    let jobs = jobs::list_created_since(&mut conn, since)?;
    Ok(stats_of(since, &jobs))
}

/// Statistics of `jobs`, created since `since`.
pub fn stats_of(since: DateTime<Utc>, jobs: &[ExportJob]) -> ExportStats {
    let mut by_type = BTreeMap::new();
    let mut by_format = BTreeMap::new();
    let mut by_status = BTreeMap::new();
    for job in jobs {
        *by_type.entry(job.export_type.to_string()).or_default() += 1;
        *by_format.entry(job.format.to_string()).or_default() += 1;
        *by_status.entry(job.status.to_string()).or_default() += 1;
    }
    let succeeded = |s: JobStatus| matches!(s, JobStatus::Completed | JobStatus::Expired);
    let ended: Vec<&ExportJob> = jobs
        .iter()
        .filter(|j| succeeded(j.status) || j.status == JobStatus::Failed)
        .collect();
    let success_rate = (!ended.is_empty())
        .then(|| ended.iter().filter(|j| succeeded(j.status)).count() as f64 / ended.len() as f64);
    let mut finished: Vec<JobMetrics> = jobs
        .iter()
        .filter(|j| succeeded(j.status))
        .filter_map(JobMetrics::of)
        .collect();
    let durations: Vec<f64> = finished.iter().map(|m| m.duration_seconds).collect();
    let throughputs: Vec<f64> = finished.iter().map(|m| m.rows_per_second).collect();
    let sizes: Vec<f64> = finished.iter().map(|m| m.bytes as f64).collect();
    finished.sort_by(|a, b| b.duration_seconds.total_cmp(&a.duration_seconds));
    finished.truncate(5);
    ExportStats {
        since,
        total: jobs.len(),
        by_type,
        by_format,
        by_status,
        success_rate,
        average_duration_seconds: mean(&durations),
        average_rows_per_second: mean(&throughputs),
        average_bytes: mean(&sizes),
        slowest: finished,
    }
}
