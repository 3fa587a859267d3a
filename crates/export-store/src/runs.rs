//! Repository of schedule runs (one row per due time of a scheduled report: the claim that makes
//! a due time one job), notification preferences, and notifications (one per finished job).

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use export_domain::{
    Notification, NotificationPreference, NotificationStatus, RunStatus, ScheduleRun,
};
use uuid::Uuid;

use crate::convert::{id, naive, opt_id, opt_text, utc, word};
use crate::schema::{notification_preferences, notifications, schedule_runs};
use crate::{DbConnection, StoreError};

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = schedule_runs, treat_none_as_null = true)]
struct RunRow {
    id: String,
    schedule_id: String,
    due_at: NaiveDateTime,
    skipped: i32,
    export_job_id: Option<String>,
    status: String,
    delivery_attempts: i32,
    next_delivery_at: Option<NaiveDateTime>,
    error_message: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl RunRow {
    fn of(run: &ScheduleRun) -> RunRow {
        RunRow {
            id: run.id.to_string(),
            schedule_id: run.schedule_id.to_string(),
            due_at: naive(run.due_at),
            skipped: run.skipped,
            export_job_id: opt_text(run.export_job_id),
            status: run.status.as_str().to_owned(),
            delivery_attempts: run.delivery_attempts,
            next_delivery_at: run.next_delivery_at.map(naive),
            error_message: run.error_message.clone(),
            created_at: naive(run.created_at),
            updated_at: naive(run.updated_at),
        }
    }

    fn into_run(self) -> Result<ScheduleRun, StoreError> {
        Ok(ScheduleRun {
            id: id("schedule_runs.id", &self.id)?,
            schedule_id: id("schedule_runs.schedule_id", &self.schedule_id)?,
            due_at: utc(self.due_at),
            skipped: self.skipped,
            export_job_id: opt_id("schedule_runs.export_job_id", self.export_job_id.as_deref())?,
            status: word("schedule_runs.status", &self.status)?,
            delivery_attempts: self.delivery_attempts,
            next_delivery_at: self.next_delivery_at.map(utc),
            error_message: self.error_message,
            created_at: utc(self.created_at),
            updated_at: utc(self.updated_at),
        })
    }
}

/// Claims a due time: adds the run, or returns false when a run for this schedule and due time
/// already exists (another scheduler claimed it).
pub fn claim_run(conn: &mut DbConnection, run: &ScheduleRun) -> Result<bool, StoreError> {
    match diesel::insert_into(schedule_runs::table)
        .values(RunRow::of(run))
        .execute(conn)
    {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(false),
        Err(err) => Err(StoreError::from_write("schedule_runs", err, |_| None)),
    }
}

/// Writes every field of a run back.
pub fn update_run(conn: &mut DbConnection, run: &ScheduleRun) -> Result<(), StoreError> {
    diesel::update(schedule_runs::table.find(run.id.to_string()))
        .set(RunRow::of(run))
        .execute(conn)?;
    Ok(())
}

/// Records what came of a run's submission (its job, its next status), only while the run is
/// still being submitted: false when another scheduler recorded it first (a recovery and the
/// scheduler it took over from both submitting), so a late writer never moves a run back.
pub fn record_submission(conn: &mut DbConnection, run: &ScheduleRun) -> Result<bool, StoreError> {
    let changed = diesel::update(
        schedule_runs::table
            .find(run.id.to_string())
            .filter(schedule_runs::status.eq(RunStatus::Submitting.as_str())),
    )
    .set(RunRow::of(run))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Takes over a run left in `submitting` since `stale_before` or earlier (its scheduler died, or
/// stalls): true when this caller won it, marking it taken at `now` so that other schedulers
/// leave it alone for as long as it was left.
pub fn take_stranded_run(
    conn: &mut DbConnection,
    run_id: Uuid,
    stale_before: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let changed = diesel::update(
        schedule_runs::table
            .find(run_id.to_string())
            .filter(schedule_runs::status.eq(RunStatus::Submitting.as_str()))
            .filter(schedule_runs::updated_at.le(naive(stale_before))),
    )
    .set(schedule_runs::updated_at.eq(naive(now)))
    .execute(conn)?;
    Ok(changed == 1)
}

/// The run with this id, if any.
pub fn get_run(conn: &mut DbConnection, run_id: Uuid) -> Result<Option<ScheduleRun>, StoreError> {
    schedule_runs::table
        .find(run_id.to_string())
        .select(RunRow::as_select())
        .get_result(conn)
        .optional()?
        .map(RunRow::into_run)
        .transpose()
}

/// Takes the next delivery attempt of a run for `until` (a lease): true when this caller won it,
/// false when another scheduler has it or it is not due. Makes each email go out once however
/// many schedulers deliver.
pub fn claim_delivery(
    conn: &mut DbConnection,
    run_id: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let changed = diesel::update(
        schedule_runs::table
            .find(run_id.to_string())
            .filter(schedule_runs::status.eq(RunStatus::Delivering.as_str()))
            .filter(
                schedule_runs::next_delivery_at
                    .is_null()
                    .or(schedule_runs::next_delivery_at.le(naive(now))),
            ),
    )
    .set(schedule_runs::next_delivery_at.eq(naive(until)))
    .execute(conn)?;
    Ok(changed == 1)
}

/// A schedule's runs, newest due time first, at most `limit`.
pub fn list_runs(
    conn: &mut DbConnection,
    schedule_id: Uuid,
    limit: i64,
) -> Result<Vec<ScheduleRun>, StoreError> {
    schedule_runs::table
        .filter(schedule_runs::schedule_id.eq(schedule_id.to_string()))
        .order(schedule_runs::due_at.desc())
        .limit(limit)
        .select(RunRow::as_select())
        .load(conn)?
        .into_iter()
        .map(RunRow::into_run)
        .collect()
}

/// Runs in `status` whose next delivery attempt is due at `now` (or that have none set).
pub fn list_runs_in(
    conn: &mut DbConnection,
    status: RunStatus,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ScheduleRun>, StoreError> {
    schedule_runs::table
        .filter(schedule_runs::status.eq(status.as_str()))
        .filter(
            schedule_runs::next_delivery_at
                .is_null()
                .or(schedule_runs::next_delivery_at.le(naive(now))),
        )
        .order(schedule_runs::due_at.asc())
        .limit(limit)
        .select(RunRow::as_select())
        .load(conn)?
        .into_iter()
        .map(RunRow::into_run)
        .collect()
}

#[derive(QueryableByName)]
struct RunCountRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    runs: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    skipped: i64,
}

/// The runs due since `since`, of `owner`'s schedules only when given, counted by the database:
/// (status, runs, due times skipped into them).
pub fn count_runs_since(
    conn: &mut DbConnection,
    since: DateTime<Utc>,
    owner: Option<Uuid>,
) -> Result<Vec<(String, i64, i64)>, StoreError> {
    let filter = match conn {
        DbConnection::Postgres(_) => "r.due_at >= $1 AND ($2::text IS NULL OR s.user_id = $2)",
        DbConnection::Sqlite(_) => "r.due_at >= ?1 AND (?2 IS NULL OR s.user_id = ?2)",
    };
    let rows: Vec<RunCountRow> = diesel::sql_query(format!(
        "SELECT r.status AS status, COUNT(*) AS runs, \
           CAST(COALESCE(SUM(CASE WHEN r.skipped > 0 THEN r.skipped ELSE 0 END), 0) AS BIGINT) \
             AS skipped \
         FROM schedule_runs r JOIN scheduled_reports s ON s.id = r.schedule_id \
         WHERE {filter} GROUP BY r.status ORDER BY r.status"
    ))
    .bind::<diesel::sql_types::Timestamp, _>(naive(since))
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(owner.map(|o| o.to_string()))
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| (r.status, r.runs, r.skipped))
        .collect())
}

/// Every run due at or after `since`, for statistics.
pub fn list_runs_since(
    conn: &mut DbConnection,
    since: DateTime<Utc>,
) -> Result<Vec<ScheduleRun>, StoreError> {
    schedule_runs::table
        .filter(schedule_runs::due_at.ge(naive(since)))
        .order(schedule_runs::due_at.asc())
        .select(RunRow::as_select())
        .load(conn)?
        .into_iter()
        .map(RunRow::into_run)
        .collect()
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = notification_preferences)]
struct PreferenceRow {
    user_id: String,
    email: String,
    on_completed: bool,
    on_failed: bool,
    updated_at: NaiveDateTime,
}

/// Sets a user's notification preference, replacing any earlier one.
pub fn set_preference(
    conn: &mut DbConnection,
    preference: &NotificationPreference,
) -> Result<(), StoreError> {
    let row = PreferenceRow {
        user_id: preference.user_id.to_string(),
        email: preference.email.clone(),
        on_completed: preference.on_completed,
        on_failed: preference.on_failed,
        updated_at: naive(preference.updated_at),
    };
    conn.transaction(|conn| {
        let changed = diesel::update(notification_preferences::table.find(&row.user_id))
            .set(&row)
            .execute(conn)?;
        if changed == 0 {
            diesel::insert_into(notification_preferences::table)
                .values(&row)
                .execute(conn)?;
        }
        Ok(())
    })
}

/// Every notification preference that asks for any email.
pub fn list_preferences(
    conn: &mut DbConnection,
) -> Result<Vec<NotificationPreference>, StoreError> {
    notification_preferences::table
        .filter(
            notification_preferences::on_completed
                .eq(true)
                .or(notification_preferences::on_failed.eq(true)),
        )
        .select(PreferenceRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|row| {
            Ok(NotificationPreference {
                user_id: id("notification_preferences.user_id", &row.user_id)?,
                email: row.email,
                on_completed: row.on_completed,
                on_failed: row.on_failed,
                updated_at: utc(row.updated_at),
            })
        })
        .collect()
}

/// A user's notification preference, if they set one.
pub fn get_preference(
    conn: &mut DbConnection,
    user_id: Uuid,
) -> Result<Option<NotificationPreference>, StoreError> {
    notification_preferences::table
        .find(user_id.to_string())
        .select(PreferenceRow::as_select())
        .get_result(conn)
        .optional()?
        .map(|row| {
            Ok(NotificationPreference {
                user_id: id("notification_preferences.user_id", &row.user_id)?,
                email: row.email,
                on_completed: row.on_completed,
                on_failed: row.on_failed,
                updated_at: utc(row.updated_at),
            })
        })
        .transpose()
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = notifications, treat_none_as_null = true)]
struct NotificationRow {
    export_job_id: String,
    user_id: String,
    status: String,
    attempts: i32,
    next_attempt_at: Option<NaiveDateTime>,
    error_message: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl NotificationRow {
    fn of(n: &Notification) -> NotificationRow {
        NotificationRow {
            export_job_id: n.export_job_id.to_string(),
            user_id: n.user_id.to_string(),
            status: n.status.as_str().to_owned(),
            attempts: n.attempts,
            next_attempt_at: n.next_attempt_at.map(naive),
            error_message: n.error_message.clone(),
            created_at: naive(n.created_at),
            updated_at: naive(n.updated_at),
        }
    }

    fn into_notification(self) -> Result<Notification, StoreError> {
        Ok(Notification {
            export_job_id: id("notifications.export_job_id", &self.export_job_id)?,
            user_id: id("notifications.user_id", &self.user_id)?,
            status: word::<NotificationStatus>("notifications.status", &self.status)?,
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at.map(utc),
            error_message: self.error_message,
            created_at: utc(self.created_at),
            updated_at: utc(self.updated_at),
        })
    }
}

/// Records that a finished job is to be notified; false when it already was (at most once).
pub fn claim_notification(
    conn: &mut DbConnection,
    notification: &Notification,
) -> Result<bool, StoreError> {
    match diesel::insert_into(notifications::table)
        .values(NotificationRow::of(notification))
        .execute(conn)
    {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(false),
        Err(err) => Err(StoreError::from_write("notifications", err, |_| None)),
    }
}

/// Takes the next attempt of a pending notification for `until` (a lease), as
/// [`claim_delivery`] does for runs.
pub fn claim_notification_attempt(
    conn: &mut DbConnection,
    job_id: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let changed = diesel::update(
        notifications::table
            .find(job_id.to_string())
            .filter(notifications::status.eq(NotificationStatus::Pending.as_str()))
            .filter(
                notifications::next_attempt_at
                    .is_null()
                    .or(notifications::next_attempt_at.le(naive(now))),
            ),
    )
    .set(notifications::next_attempt_at.eq(naive(until)))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Writes every field of a notification back.
pub fn update_notification(
    conn: &mut DbConnection,
    notification: &Notification,
) -> Result<(), StoreError> {
    diesel::update(notifications::table.find(notification.export_job_id.to_string()))
        .set(NotificationRow::of(notification))
        .execute(conn)?;
    Ok(())
}

/// Pending notifications whose next attempt is due at `now`.
pub fn list_pending_notifications(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Notification>, StoreError> {
    notifications::table
        .filter(notifications::status.eq(NotificationStatus::Pending.as_str()))
        .filter(
            notifications::next_attempt_at
                .is_null()
                .or(notifications::next_attempt_at.le(naive(now))),
        )
        .order(notifications::created_at.asc())
        .limit(limit)
        .select(NotificationRow::as_select())
        .load(conn)?
        .into_iter()
        .map(NotificationRow::into_notification)
        .collect()
}

/// The notification of a job, if any.
pub fn get_notification(
    conn: &mut DbConnection,
    job_id: Uuid,
) -> Result<Option<Notification>, StoreError> {
    notifications::table
        .find(job_id.to_string())
        .select(NotificationRow::as_select())
        .get_result(conn)
        .optional()?
        .map(NotificationRow::into_notification)
        .transpose()
}
