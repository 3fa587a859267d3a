//! Repository of export jobs: insert, read, list a user's history newest first, save, delete, and
//! find the completed jobs past their expiry.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use export_domain::{ExportJob, JobStatus};
use uuid::Uuid;

use crate::convert::{id, json, naive, opt_id, opt_text, to_json, utc, word};
use crate::schema::export_jobs;
use crate::{DbConnection, StoreError};

#[derive(Queryable, QueryableByName, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = export_jobs, treat_none_as_null = true)]
struct JobRow {
    id: String,
    user_id: String,
    patient_id: Option<String>,
    template_id: Option<String>,
    export_type: String,
    format: String,
    status: String,
    parameters: String,
    idempotency_key: Option<String>,
    file_key: Option<String>,
    file_size_bytes: Option<i64>,
    sha256: Option<String>,
    row_count: Option<i64>,
    error_message: Option<String>,
    progress_percent: i32,
    attempts: i32,
    max_attempts: i32,
    lease_owner: Option<String>,
    lease_expires_at: Option<NaiveDateTime>,
    run_after: NaiveDateTime,
    started_at: Option<NaiveDateTime>,
    completed_at: Option<NaiveDateTime>,
    expires_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    wrapped_key: Option<String>,
}

impl JobRow {
    fn of(job: &ExportJob) -> JobRow {
        JobRow {
            id: job.id.to_string(),
            user_id: job.user_id.to_string(),
            patient_id: opt_text(job.patient_id),
            template_id: opt_text(job.template_id),
            export_type: job.export_type.as_str().to_owned(),
            format: job.format.as_str().to_owned(),
            status: job.status.as_str().to_owned(),
            parameters: to_json(&job.parameters),
            idempotency_key: job.idempotency_key.clone(),
            file_key: job.file_key.clone(),
            file_size_bytes: job.file_size_bytes,
            sha256: job.sha256.clone(),
            row_count: job.row_count,
            error_message: job.error_message.clone(),
            progress_percent: job.progress_percent,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            lease_owner: job.lease_owner.clone(),
            lease_expires_at: job.lease_expires_at.map(naive),
            run_after: naive(job.run_after),
            started_at: job.started_at.map(naive),
            completed_at: job.completed_at.map(naive),
            expires_at: job.expires_at.map(naive),
            created_at: naive(job.created_at),
            updated_at: naive(job.updated_at),
            wrapped_key: job.wrapped_key.clone(),
        }
    }

    fn into_job(self) -> Result<ExportJob, StoreError> {
        Ok(ExportJob {
            id: id("export_jobs.id", &self.id)?,
            user_id: id("export_jobs.user_id", &self.user_id)?,
            patient_id: opt_id("export_jobs.patient_id", self.patient_id.as_deref())?,
            template_id: opt_id("export_jobs.template_id", self.template_id.as_deref())?,
            export_type: word("export_jobs.export_type", &self.export_type)?,
            format: word("export_jobs.format", &self.format)?,
            status: word("export_jobs.status", &self.status)?,
            parameters: json("export_jobs.parameters", &self.parameters)?,
            idempotency_key: self.idempotency_key,
            file_key: self.file_key,
            file_size_bytes: self.file_size_bytes,
            sha256: self.sha256,
            row_count: self.row_count,
            error_message: self.error_message,
            progress_percent: self.progress_percent,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            lease_owner: self.lease_owner,
            lease_expires_at: self.lease_expires_at.map(utc),
            run_after: utc(self.run_after),
            started_at: self.started_at.map(utc),
            completed_at: self.completed_at.map(utc),
            expires_at: self.expires_at.map(utc),
            created_at: utc(self.created_at),
            updated_at: utc(self.updated_at),
            wrapped_key: self.wrapped_key,
        })
    }
}

fn write_error(err: diesel::result::Error) -> StoreError {
    StoreError::from_write("export_jobs", err, |constraint| {
        constraint
            .contains("idempotency")
            .then_some(StoreError::IdempotencyKeyTaken)
    })
}

/// Which jobs [`list_jobs`] returns.
#[derive(Debug, Clone)]
pub struct JobFilter {
    pub user_id: Uuid,
    pub status: Option<JobStatus>,
    pub patient_id: Option<Uuid>,
    /// At most this many (the seed platform's default is 100).
    pub limit: i64,
    /// Only jobs older than this one in the newest-first order: the `(created_at, id)` of the last
    /// job of the previous page.
    pub before: Option<(DateTime<Utc>, Uuid)>,
}

impl JobFilter {
    /// The newest 100 jobs of a user.
    pub fn of_user(user_id: Uuid) -> JobFilter {
        JobFilter {
            user_id,
            status: None,
            patient_id: None,
            limit: 100,
            before: None,
        }
    }
}

/// Adds a job; an idempotency key the user already used is [`StoreError::IdempotencyKeyTaken`].
pub fn insert_job(conn: &mut DbConnection, job: &ExportJob) -> Result<(), StoreError> {
    diesel::insert_into(export_jobs::table)
        .values(JobRow::of(job))
        .execute(conn)
        .map_err(write_error)?;
    Ok(())
}

/// The job with this id, if any.
pub fn get_job(conn: &mut DbConnection, job_id: Uuid) -> Result<Option<ExportJob>, StoreError> {
    export_jobs::table
        .find(job_id.to_string())
        .select(JobRow::as_select())
        .get_result(conn)
        .optional()?
        .map(JobRow::into_job)
        .transpose()
}

/// The job a user submitted with this idempotency key, if any.
pub fn find_by_idempotency_key(
    conn: &mut DbConnection,
    user_id: Uuid,
    key: &str,
) -> Result<Option<ExportJob>, StoreError> {
    export_jobs::table
        .filter(export_jobs::user_id.eq(user_id.to_string()))
        .filter(export_jobs::idempotency_key.eq(key))
        .select(JobRow::as_select())
        .get_result(conn)
        .optional()?
        .map(JobRow::into_job)
        .transpose()
}

/// A user's jobs, newest first, filtered and paged as `filter` says.
pub fn list_jobs(
    conn: &mut DbConnection,
    filter: &JobFilter,
) -> Result<Vec<ExportJob>, StoreError> {
    let mut query = export_jobs::table
        .filter(export_jobs::user_id.eq(filter.user_id.to_string()))
        .select(JobRow::as_select())
        .into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(export_jobs::status.eq(status.as_str()));
    }
    if let Some(patient_id) = filter.patient_id {
        query = query.filter(export_jobs::patient_id.eq(patient_id.to_string()));
    }
    if let Some((created_at, job_id)) = filter.before {
        let created_at = naive(created_at);
        query = query.filter(
            export_jobs::created_at
                .lt(created_at)
                .or(export_jobs::created_at
                    .eq(created_at)
                    .and(export_jobs::id.lt(job_id.to_string()))),
        );
    }
    query
        .order((export_jobs::created_at.desc(), export_jobs::id.desc()))
        .limit(filter.limit.max(0))
        .load(conn)?
        .into_iter()
        .map(JobRow::into_job)
        .collect()
}

/// Saves every field of an existing job; false when there is no such job.
pub fn update_job(conn: &mut DbConnection, job: &ExportJob) -> Result<bool, StoreError> {
    let changed = diesel::update(export_jobs::table.find(job.id.to_string()))
        .set(JobRow::of(job))
        .execute(conn)
        .map_err(write_error)?;
    Ok(changed == 1)
}

/// Deletes a job row; false when there was none. Its audit entries stay.
pub fn delete_job(conn: &mut DbConnection, job_id: Uuid) -> Result<bool, StoreError> {
    let deleted = diesel::delete(export_jobs::table.find(job_id.to_string())).execute(conn)?;
    Ok(deleted == 1)
}

/// The file keys completed jobs point to: the files the sweep of leftovers keeps. One pass over
/// the jobs, once per sweep.
pub fn live_file_keys(
    conn: &mut DbConnection,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let keys: Vec<Option<String>> = export_jobs::table
        .filter(export_jobs::status.eq(JobStatus::Completed.as_str()))
        .select(export_jobs::file_key)
        .load(conn)?;
    Ok(keys.into_iter().flatten().collect())
}

/// Completed jobs whose expiry is at or before `now`, oldest expiry first.
pub fn list_expired(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ExportJob>, StoreError> {
    export_jobs::table
        .filter(export_jobs::status.eq(JobStatus::Completed.as_str()))
        .filter(export_jobs::expires_at.le(naive(now)))
        .select(JobRow::as_select())
        .order((export_jobs::expires_at.asc(), export_jobs::id.asc()))
        .limit(limit.max(0))
        .load(conn)?
        .into_iter()
        .map(JobRow::into_job)
        .collect()
}

/// How many jobs are in each status, in status order.
pub fn count_jobs_by_status(conn: &mut DbConnection) -> Result<Vec<(JobStatus, i64)>, StoreError> {
    let rows: Vec<(String, i64)> = export_jobs::table
        .group_by(export_jobs::status)
        .select((export_jobs::status, diesel::dsl::count_star()))
        .load(conn)?;
    let mut counts = rows
        .into_iter()
        .map(|(status, n)| Ok((word("export_jobs.status", &status)?, n)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    counts.sort();
    Ok(counts)
}

const CLAIM_POSTGRES: &str = "UPDATE export_jobs SET status = 'processing', lease_owner = $1, \
     lease_expires_at = $2, attempts = attempts + 1, started_at = COALESCE(started_at, $3), updated_at = $3 \
     WHERE id = (SELECT id FROM export_jobs \
                 WHERE (status = 'pending' AND run_after <= $3) \
                    OR (status = 'processing' AND lease_expires_at < $3 \
                        AND attempts < max_attempts) \
                 ORDER BY run_after, created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
     RETURNING *";

/// Claims the next runnable job for `worker` until `now + lease`: the oldest due pending job, or
/// one whose lease lapsed with attempts left (see [`fail_lost_jobs`] for those without). It
/// becomes `processing` with one more attempt; [`Lease::of`] names the claim. No two workers ever hold
/// the same job: PostgreSQL skips rows another claim has locked (`FOR UPDATE SKIP LOCKED`); SQLite
/// claims inside an immediate transaction, which admits one writer at a time.
///
/// Call it outside any other transaction on `conn`.
pub fn claim_next(
    conn: &mut DbConnection,
    worker: &str,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Option<ExportJob>, StoreError> {
    let (at, until) = (naive(now), naive(now + lease));
    let row: Option<JobRow> = match conn {
        DbConnection::Postgres(pg) => diesel::sql_query(CLAIM_POSTGRES)
            .bind::<diesel::sql_types::Text, _>(worker)
            .bind::<diesel::sql_types::Timestamp, _>(until)
            .bind::<diesel::sql_types::Timestamp, _>(at)
            .get_result::<JobRow>(pg)
            .optional()?,
        DbConnection::Sqlite(sqlite) => {
            sqlite.batch_execute("BEGIN IMMEDIATE")?;
            let claimed = (|| -> Result<Option<JobRow>, diesel::result::Error> {
                let due = export_jobs::status
                    .eq(JobStatus::Pending.as_str())
                    .and(export_jobs::run_after.le(at));
                let lapsed = export_jobs::status
                    .eq(JobStatus::Processing.as_str())
                    .and(export_jobs::lease_expires_at.lt(at))
                    .and(export_jobs::attempts.lt(export_jobs::max_attempts));
                let Some(mut row) = export_jobs::table
                    .filter(due.or(lapsed))
                    .order((
                        export_jobs::run_after.asc(),
                        export_jobs::created_at.asc(),
                        export_jobs::id.asc(),
                    ))
                    .select(JobRow::as_select())
                    .first::<JobRow>(sqlite)
                    .optional()?
                else {
                    return Ok(None);
                };
                row.status = JobStatus::Processing.as_str().to_owned();
                row.lease_owner = Some(worker.to_owned());
                row.lease_expires_at = Some(until);
                row.attempts += 1;
                row.started_at = row.started_at.or(Some(at));
                row.updated_at = at;
                diesel::update(export_jobs::table.find(&row.id))
                    .set(&row)
                    .execute(sqlite)?;
                Ok(Some(row))
            })();
            match claimed {
                Ok(row) => {
                    sqlite.batch_execute("COMMIT")?;
                    row
                }
                Err(err) => {
                    let _ = sqlite.batch_execute("ROLLBACK");
                    return Err(err.into());
                }
            }
        }
    };
    row.map(JobRow::into_job).transpose()
}

/// One claim of a job: the worker holding it and the attempt it is on. A worker changes a job it
/// claimed only through its lease, so once the lease has lapsed and been taken over, or been
/// released, it can neither renew, complete nor fail the attempt of whoever holds the job now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: Uuid,
    pub worker: String,
    pub attempt: i32,
}

impl Lease {
    /// The lease a just-claimed job is under; `None` for a job no worker holds.
    pub fn of(job: &ExportJob) -> Option<Lease> {
        (job.status == JobStatus::Processing)
            .then(|| job.lease_owner.clone())
            .flatten()
            .map(|worker| Lease {
                job_id: job.id,
                worker,
                attempt: job.attempts,
            })
    }
}

/// The job `lease` covers, while it still does.
macro_rules! leased {
    ($lease:expr) => {
        export_jobs::table
            .find($lease.job_id.to_string())
            .filter(export_jobs::status.eq(JobStatus::Processing.as_str()))
            .filter(export_jobs::lease_owner.eq(&$lease.worker))
            .filter(export_jobs::attempts.eq($lease.attempt))
    };
}

/// Extends a lease and records how far the attempt has got; false when the lease no longer holds
/// (it lapsed and another worker claimed the job, the job was cancelled, or it was released).
pub fn renew_lease(
    conn: &mut DbConnection,
    lease: &Lease,
    until: DateTime<Utc>,
    progress_percent: i32,
) -> Result<bool, StoreError> {
    let changed = diesel::update(leased!(lease))
        .set((
            export_jobs::lease_expires_at.eq(naive(until)),
            export_jobs::progress_percent.eq(progress_percent.clamp(0, 99)),
        ))
        .execute(conn)?;
    Ok(changed == 1)
}

/// Fails, for good, the jobs whose lease lapsed with no attempt left: their worker died (or lost
/// the database) on every attempt. Each becomes `failed` with "worker lost N times". Returns them,
/// for the audit trail.
pub fn fail_lost_jobs(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
) -> Result<Vec<ExportJob>, StoreError> {
    let lost = export_jobs::table
        .filter(export_jobs::status.eq(JobStatus::Processing.as_str()))
        .filter(export_jobs::lease_expires_at.lt(naive(now)))
        .filter(export_jobs::attempts.ge(export_jobs::max_attempts))
        .select(JobRow::as_select())
        .load::<JobRow>(conn)?;
    let mut failed = Vec::new();
    for row in lost {
        let job = row.into_job()?;
        let Some(lease) = Lease::of(&job) else {
            continue;
        };
        let message = format!("worker lost {} times", job.attempts);
        let changed =
            diesel::update(leased!(lease).filter(export_jobs::lease_expires_at.lt(naive(now))))
                .set((
                    export_jobs::status.eq(JobStatus::Failed.as_str()),
                    export_jobs::error_message.eq(&message),
                    export_jobs::lease_owner.eq(None::<String>),
                    export_jobs::lease_expires_at.eq(None::<NaiveDateTime>),
                    export_jobs::completed_at.eq(naive(now)),
                    export_jobs::updated_at.eq(naive(now)),
                ))
                .execute(conn)?;
        if changed == 1 {
            failed.extend(get_job(conn, job.id)?);
        }
    }
    Ok(failed)
}

/// Whether any job waits for [`fail_lost_jobs`]: a read, so idle workers need not write to ask.
pub fn any_lost_jobs(conn: &mut DbConnection, now: DateTime<Utc>) -> Result<bool, StoreError> {
    Ok(diesel::select(diesel::dsl::exists(
        export_jobs::table
            .filter(export_jobs::status.eq(JobStatus::Processing.as_str()))
            .filter(export_jobs::lease_expires_at.lt(naive(now)))
            .filter(export_jobs::attempts.ge(export_jobs::max_attempts)),
    ))
    .get_result(conn)?)
}

/// Hands every job `worker` holds back to the queue, as if it had never been claimed (the attempt
/// does not count): for a worker shutting down. Returns the jobs released.
pub fn release_worker_jobs(
    conn: &mut DbConnection,
    worker: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, StoreError> {
    let held = export_jobs::table
        .filter(export_jobs::status.eq(JobStatus::Processing.as_str()))
        .filter(export_jobs::lease_owner.eq(worker))
        .select(export_jobs::id)
        .load::<String>(conn)?;
    let mut released = Vec::new();
    for id in held {
        let changed = diesel::update(
            export_jobs::table
                .find(&id)
                .filter(export_jobs::status.eq(JobStatus::Processing.as_str()))
                .filter(export_jobs::lease_owner.eq(worker)),
        )
        .set((
            export_jobs::status.eq(JobStatus::Pending.as_str()),
            export_jobs::lease_owner.eq(None::<String>),
            export_jobs::lease_expires_at.eq(None::<NaiveDateTime>),
            export_jobs::attempts.eq(export_jobs::attempts - 1),
            export_jobs::progress_percent.eq(0),
            export_jobs::run_after.eq(naive(now)),
            export_jobs::updated_at.eq(naive(now)),
        ))
        .execute(conn)?;
        if changed == 1 {
            released.push(crate::convert::id("export_jobs.id", &id)?);
        }
    }
    Ok(released)
}

/// The file a finished job produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedFile {
    pub file_key: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub row_count: i64,
    pub wrapped_key: String,
}

/// Completes the job `lease` covers with its file, expiring at `expires_at`. Returns the job, or
/// `None` when the lease no longer holds (it lapsed and another worker took the job over, or the
/// job was cancelled or released): then nothing changes, and the caller must not audit a
/// completion. Run it in the same transaction as the "created" audit entry.
pub fn complete_job(
    conn: &mut DbConnection,
    lease: &Lease,
    file: &FinishedFile,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<Option<ExportJob>, StoreError> {
    let job_id = lease.job_id;
    let changed = diesel::update(leased!(lease))
        .set((
            export_jobs::status.eq(JobStatus::Completed.as_str()),
            export_jobs::file_key.eq(&file.file_key),
            export_jobs::file_size_bytes.eq(file.size_bytes),
            export_jobs::sha256.eq(&file.sha256),
            export_jobs::row_count.eq(file.row_count),
            export_jobs::wrapped_key.eq(&file.wrapped_key),
            export_jobs::progress_percent.eq(100),
            export_jobs::error_message.eq(None::<String>),
            export_jobs::lease_owner.eq(None::<String>),
            export_jobs::lease_expires_at.eq(None::<NaiveDateTime>),
            export_jobs::completed_at.eq(naive(now)),
            export_jobs::expires_at.eq(naive(expires_at)),
            export_jobs::updated_at.eq(naive(now)),
        ))
        .execute(conn)?;
    if changed == 0 {
        return Ok(None);
    }
    get_job(conn, job_id)
}

/// Records a failed attempt of the job `lease` covers: back to `pending` until `retry_at` while
/// attempts remain, otherwise `failed` with `error` (which must name no patient data). Returns the
/// job, or `None` when the lease no longer holds.
pub fn fail_attempt(
    conn: &mut DbConnection,
    lease: &Lease,
    error: &str,
    now: DateTime<Utc>,
    retry_at: DateTime<Utc>,
) -> Result<Option<ExportJob>, StoreError> {
    record_failure(conn, lease, error, now, Some(retry_at))
}

/// Fails the job `lease` covers for good, whatever attempts remain, with `error` (which must name
/// no patient data): for a failure another attempt cannot mend. Returns the job, or `None` when
/// the lease no longer holds.
pub fn fail_job(
    conn: &mut DbConnection,
    lease: &Lease,
    error: &str,
    now: DateTime<Utc>,
) -> Result<Option<ExportJob>, StoreError> {
    record_failure(conn, lease, error, now, None)
}

/// A failed attempt: retried at `retry_at` while attempts remain, failed when they do not or
/// when there is no `retry_at`.
fn record_failure(
    conn: &mut DbConnection,
    lease: &Lease,
    error: &str,
    now: DateTime<Utc>,
    retry_at: Option<DateTime<Utc>>,
) -> Result<Option<ExportJob>, StoreError> {
    let Some(job) = get_job(conn, lease.job_id)? else {
        return Ok(None);
    };
    if Lease::of(&job).as_ref() != Some(lease) {
        return Ok(None);
    }
    let retry_at = retry_at.filter(|_| job.attempts < job.max_attempts);
    let give_up = retry_at.is_none();
    let status = if give_up {
        JobStatus::Failed
    } else {
        JobStatus::Pending
    };
    let changed = diesel::update(leased!(lease))
        .set((
            export_jobs::status.eq(status.as_str()),
            export_jobs::error_message.eq(error),
            export_jobs::lease_owner.eq(None::<String>),
            export_jobs::lease_expires_at.eq(None::<NaiveDateTime>),
            export_jobs::run_after.eq(naive(retry_at.unwrap_or(now))),
            export_jobs::completed_at.eq(give_up.then(|| naive(now))),
            export_jobs::updated_at.eq(naive(now)),
        ))
        .execute(conn)?;
    if changed == 0 {
        return Ok(None);
    }
    get_job(conn, lease.job_id)
}

/// Cancels a job that has not finished: pending or processing becomes `cancelled` and any lease
/// ends (a worker still rendering it can no longer complete it). False when it had finished.
pub fn cancel_job(
    conn: &mut DbConnection,
    job_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let changed = diesel::update(export_jobs::table.find(job_id.to_string()).filter(
        export_jobs::status.eq_any([JobStatus::Pending.as_str(), JobStatus::Processing.as_str()]),
    ))
    .set((
        export_jobs::status.eq(JobStatus::Cancelled.as_str()),
        export_jobs::lease_owner.eq(None::<String>),
        export_jobs::lease_expires_at.eq(None::<NaiveDateTime>),
        export_jobs::completed_at.eq(naive(now)),
        export_jobs::updated_at.eq(naive(now)),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Marks a completed job expired and forgets its file key and wrapped key, which makes any copy
/// of the file undecryptable. False when it was not completed.
pub fn mark_expired(
    conn: &mut DbConnection,
    job_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let changed = diesel::update(
        export_jobs::table
            .find(job_id.to_string())
            .filter(export_jobs::status.eq(JobStatus::Completed.as_str())),
    )
    .set((
        export_jobs::status.eq(JobStatus::Expired.as_str()),
        export_jobs::wrapped_key.eq(None::<String>),
        export_jobs::updated_at.eq(naive(now)),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// What export statistics need of the jobs created since a moment, computed by the database so
/// a year of jobs is never loaded to count them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobAggregates {
    /// (export type, format, status, jobs).
    pub counts: Vec<(String, String, String, i64)>,
    /// Over the jobs that completed (or have since expired) with both times: the mean duration,
    /// the mean rows per second (0 for a job that took no time), the mean file size.
    pub average_duration_seconds: Option<f64>,
    pub average_rows_per_second: Option<f64>,
    pub average_bytes: Option<f64>,
    /// The longest-running of those, longest first.
    pub slowest: Vec<ExportJob>,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    export_type: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    format: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    jobs: i64,
}

#[derive(QueryableByName)]
struct AverageRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    average_duration_seconds: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    average_rows_per_second: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    average_bytes: Option<f64>,
}

/// Aggregates of the jobs created since `since`, of `user` only when given; the `slowest` longest
/// finished ones with them.
pub fn aggregate_created_since(
    conn: &mut DbConnection,
    since: DateTime<Utc>,
    user: Option<Uuid>,
    slowest: i64,
) -> Result<JobAggregates, StoreError> {
    // The one expression the two dialects write differently: seconds between two timestamps.
    let (filter, duration) = match conn {
        DbConnection::Postgres(_) => (
            "created_at >= $1 AND ($2::text IS NULL OR user_id = $2)",
            "GREATEST(CAST(EXTRACT(EPOCH FROM (completed_at - started_at)) AS DOUBLE PRECISION), 0)",
        ),
        DbConnection::Sqlite(_) => (
            "created_at >= ?1 AND (?2 IS NULL OR user_id = ?2)",
            "MAX((julianday(completed_at) - julianday(started_at)) * 86400.0, 0)",
        ),
    };
    let finished = "status IN ('completed', 'expired') \
        AND started_at IS NOT NULL AND completed_at IS NOT NULL";
    let at = naive(since);
    let user = user.map(|u| u.to_string());
    macro_rules! bound {
        ($sql:expr) => {
            diesel::sql_query($sql)
                .bind::<diesel::sql_types::Timestamp, _>(at)
                .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(user.clone())
        };
    }
    let counts: Vec<CountRow> = bound!(format!(
        "SELECT export_type, format, status, COUNT(*) AS jobs FROM export_jobs \
         WHERE {filter} GROUP BY export_type, format, status \
         ORDER BY export_type, format, status"
    ))
    .load(conn)?;
    let averages: AverageRow = bound!(format!(
        "SELECT CAST(AVG(d) AS DOUBLE PRECISION) AS average_duration_seconds, \
           CAST(AVG(CASE WHEN d > 0 THEN COALESCE(row_count, 0) / d ELSE 0 END) \
             AS DOUBLE PRECISION) AS average_rows_per_second, \
           CAST(AVG(COALESCE(file_size_bytes, 0)) AS DOUBLE PRECISION) AS average_bytes \
         FROM (SELECT {duration} AS d, row_count, file_size_bytes FROM export_jobs \
               WHERE {filter} AND {finished}) AS finished"
    ))
    .get_result(conn)?;
    let slowest: Vec<JobRow> = bound!(format!(
        "SELECT * FROM export_jobs WHERE {filter} AND {finished} \
         ORDER BY {duration} DESC, created_at ASC, id ASC LIMIT {}",
        slowest.max(0)
    ))
    .load(conn)?;
    Ok(JobAggregates {
        counts: counts
            .into_iter()
            .map(|r| (r.export_type, r.format, r.status, r.jobs))
            .collect(),
        average_duration_seconds: averages.average_duration_seconds,
        average_rows_per_second: averages.average_rows_per_second,
        average_bytes: averages.average_bytes,
        slowest: slowest
            .into_iter()
            .map(JobRow::into_job)
            .collect::<Result<_, _>>()?,
    })
}

/// Records where the expiry pass archived a job's file: its key in the archive store and the
/// copy's own key, wrapped.
pub fn record_archive(
    conn: &mut DbConnection,
    job_id: Uuid,
    file_key: &str,
    wrapped_key: &str,
    size_bytes: i64,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    use crate::schema::archived_files;
    diesel::insert_into(archived_files::table)
        .values((
            archived_files::export_job_id.eq(job_id.to_string()),
            archived_files::file_key.eq(file_key),
            archived_files::wrapped_key.eq(wrapped_key),
            archived_files::size_bytes.eq(size_bytes),
            archived_files::archived_at.eq(naive(at)),
        ))
        .execute(conn)
        .map_err(|err| StoreError::from_write("archived_files", err, |_| None))?;
    Ok(())
}

/// The archived copy of a job's file: its key in the archive store and its wrapped key.
pub fn archived_file(
    conn: &mut DbConnection,
    job_id: Uuid,
) -> Result<Option<(String, String)>, StoreError> {
    use crate::schema::archived_files;
    Ok(archived_files::table
        .find(job_id.to_string())
        .select((archived_files::file_key, archived_files::wrapped_key))
        .get_result::<(String, String)>(conn)
        .optional()?)
}
