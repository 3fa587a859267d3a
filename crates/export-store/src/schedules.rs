//! Repository of scheduled reports: at most one active schedule per (owner, template, patient),
//! and the active ones due at a given instant.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use export_domain::ScheduledReport;
use uuid::Uuid;

use crate::convert::{id, json, naive, opt_id, opt_text, to_json, utc, word};
use crate::schema::scheduled_reports;
use crate::{DbConnection, StoreError};

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = scheduled_reports, treat_none_as_null = true)]
struct ScheduleRow {
    id: String,
    user_id: String,
    template_id: String,
    patient_id: Option<String>,
    schedule_type: String,
    schedule_config: String,
    timezone: String,
    parameters: String,
    delivery_method: String,
    email_recipients: String,
    attach_file: bool,
    is_active: bool,
    last_run_at: Option<NaiveDateTime>,
    next_run_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl ScheduleRow {
    fn of(report: &ScheduledReport) -> ScheduleRow {
        ScheduleRow {
            id: report.id.to_string(),
            user_id: report.user_id.to_string(),
            template_id: report.template_id.to_string(),
            patient_id: opt_text(report.patient_id),
            schedule_type: report.schedule_type.as_str().to_owned(),
            schedule_config: to_json(&report.schedule_config),
            timezone: report.timezone.clone(),
            parameters: to_json(&report.parameters),
            delivery_method: report.delivery_method.as_str().to_owned(),
            email_recipients: to_json(&report.email_recipients),
            attach_file: report.attach_file,
            is_active: report.is_active,
            last_run_at: report.last_run_at.map(naive),
            next_run_at: report.next_run_at.map(naive),
            created_at: naive(report.created_at),
            updated_at: naive(report.updated_at),
        }
    }

    fn into_report(self) -> Result<ScheduledReport, StoreError> {
        Ok(ScheduledReport {
            id: id("scheduled_reports.id", &self.id)?,
            user_id: id("scheduled_reports.user_id", &self.user_id)?,
            template_id: id("scheduled_reports.template_id", &self.template_id)?,
            patient_id: opt_id("scheduled_reports.patient_id", self.patient_id.as_deref())?,
            schedule_type: word("scheduled_reports.schedule_type", &self.schedule_type)?,
            schedule_config: json("scheduled_reports.schedule_config", &self.schedule_config)?,
            timezone: self.timezone,
            parameters: json("scheduled_reports.parameters", &self.parameters)?,
            delivery_method: word("scheduled_reports.delivery_method", &self.delivery_method)?,
            email_recipients: json("scheduled_reports.email_recipients", &self.email_recipients)?,
            attach_file: self.attach_file,
            is_active: self.is_active,
            last_run_at: self.last_run_at.map(utc),
            next_run_at: self.next_run_at.map(utc),
            created_at: utc(self.created_at),
            updated_at: utc(self.updated_at),
        })
    }
}

fn write_error(err: diesel::result::Error) -> StoreError {
    StoreError::from_write("scheduled_reports", err, |constraint| {
        // PostgreSQL names the index; SQLite names the expression index too.
        constraint
            .contains("one_active")
            .then_some(StoreError::ScheduleAlreadyActive)
    })
}

/// Adds a scheduled report; a second active one for the same owner, template and patient is
/// [`StoreError::ScheduleAlreadyActive`]; a missing template is [`StoreError::ForeignKey`].
pub fn insert_schedule(
    conn: &mut DbConnection,
    report: &ScheduledReport,
) -> Result<(), StoreError> {
    diesel::insert_into(scheduled_reports::table)
        .values(ScheduleRow::of(report))
        .execute(conn)
        .map_err(write_error)?;
    Ok(())
}

/// The scheduled report with this id, if any.
pub fn get_schedule(
    conn: &mut DbConnection,
    schedule_id: Uuid,
) -> Result<Option<ScheduledReport>, StoreError> {
    scheduled_reports::table
        .find(schedule_id.to_string())
        .select(ScheduleRow::as_select())
        .get_result(conn)
        .optional()?
        .map(ScheduleRow::into_report)
        .transpose()
}

/// A user's scheduled reports, oldest first.
pub fn list_schedules(
    conn: &mut DbConnection,
    user_id: Uuid,
) -> Result<Vec<ScheduledReport>, StoreError> {
    scheduled_reports::table
        .filter(scheduled_reports::user_id.eq(user_id.to_string()))
        .select(ScheduleRow::as_select())
        .order((
            scheduled_reports::created_at.asc(),
            scheduled_reports::id.asc(),
        ))
        .load(conn)?
        .into_iter()
        .map(ScheduleRow::into_report)
        .collect()
}

/// Active schedules whose next run is at or before `now`, earliest first.
pub fn list_due(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ScheduledReport>, StoreError> {
    scheduled_reports::table
        .filter(scheduled_reports::is_active.eq(true))
        .filter(scheduled_reports::next_run_at.le(naive(now)))
        .select(ScheduleRow::as_select())
        .order((
            scheduled_reports::next_run_at.asc(),
            scheduled_reports::id.asc(),
        ))
        .limit(limit.max(0))
        .load(conn)?
        .into_iter()
        .map(ScheduleRow::into_report)
        .collect()
}

/// Saves every field of an existing scheduled report; false when there is none.
pub fn update_schedule(
    conn: &mut DbConnection,
    report: &ScheduledReport,
) -> Result<bool, StoreError> {
    let changed = diesel::update(scheduled_reports::table.find(report.id.to_string()))
        .set(ScheduleRow::of(report))
        .execute(conn)
        .map_err(write_error)?;
    Ok(changed == 1)
}

/// Deletes a scheduled report; false when there was none.
/// Records that a schedule ran for `last_run_at` and next runs at `next_run_at`, leaving every
/// other field as it is (an owner may be pausing or editing it at the same moment).
pub fn advance_schedule(
    conn: &mut DbConnection,
    schedule_id: Uuid,
    last_run_at: DateTime<Utc>,
    next_run_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let changed = diesel::update(scheduled_reports::table.find(schedule_id.to_string()))
        .set((
            scheduled_reports::last_run_at.eq(naive(last_run_at)),
            scheduled_reports::next_run_at.eq(next_run_at.map(naive)),
            scheduled_reports::updated_at.eq(naive(now)),
        ))
        .execute(conn)?;
    Ok(changed == 1)
}

pub fn delete_schedule(conn: &mut DbConnection, schedule_id: Uuid) -> Result<bool, StoreError> {
    let deleted =
        diesel::delete(scheduled_reports::table.find(schedule_id.to_string())).execute(conn)?;
    Ok(deleted == 1)
}
