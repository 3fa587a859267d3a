//! Scheduled reports: saving them (checked as a manual export would be, plus the schedule), and
//! the tick that turns due times into export jobs exactly once.
//!
//! Exactly once: a due time becomes a job only through a `schedule_runs` row, unique per
//! (schedule, due time), claimed before the job is submitted; the job is submitted with the
//! idempotency key `schedule:<id>:<due time>`, so a scheduler that died between the claim and the
//! submission is finished by the next tick and never makes a second job. Several schedulers may
//! tick on one database at once.
//!
//! Missed runs are coalesced: after downtime, a schedule makes one job for the most recent due
//! time it missed, and the run records how many earlier ones it skipped.
//!
//! A schedule runs as its owner: the engine checks at every run, as at saving, that the owner may
//! still export the patient (a relationship that ended makes the run `refused`).
//!
//! The tick lives in `tick`, the delivery pass (scheduled reports by email, and notifications)
//! in `delivery`; this module holds the `Scheduler`, its reports and the scheduled-report
//! operations.

mod delivery;
mod tick;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use export_core::engine::{Actor, EngineError, ExportEngine, ExportRequest, RequestOrigin};
use export_domain::{
    DeliveryMethod, ExportTemplate, ExportType, FieldError, FullRecordInput,
    NotificationPreference, ProgressReportInput, Role, RunStatus, ScheduleRun, ScheduledReport,
    ScheduledReportInput, ScheduledReportRequest, TreatmentSummaryInput, ValidationErrors,
};
use export_store::{Store, StoreError, runs, schedules};
use uuid::Uuid;

use crate::Schedule;
use crate::email::Mailer;

/// Why a scheduled-report operation was refused or failed. Ids only.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("invalid scheduled report: {0}")]
    Invalid(ValidationErrors),
    #[error("scheduled report {0} does not exist")]
    NotFound(Uuid),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The caller already has an active schedule of this template for this patient; `field` is
    /// the member of the request that made the clash.
    #[error("an active schedule of this template for this patient exists")]
    AlreadyActive { field: &'static str },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &str, message: impl Into<String>) -> ScheduleError {
    ScheduleError::Invalid(ValidationErrors {
        errors: vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }],
    })
}

/// The most days a `period_days` parameter may reach back.
pub const MAX_PERIOD_DAYS: i64 = 366;

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Runs this scheduler claimed and submitted.
    pub submitted: usize,
    /// Due times coalesced into those runs.
    pub skipped: usize,
    /// Runs the engine refused.
    pub refused: usize,
    /// Due times another scheduler had already claimed.
    pub lost_races: usize,
    /// Schedules and runs this tick could not handle (each logged with its ids); the next tick
    /// tries them again.
    pub errors: usize,
}

/// The scheduled runs due in a window, for the export statistics: everyone's for an
/// administrator, those of the caller's own scheduled reports for a therapist.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = ScheduledRunStats)]
pub struct RunStats {
    /// Due times that became a run.
    pub runs: usize,
    /// Due times missed and coalesced into those runs.
    pub skipped: usize,
    pub refused: usize,
    pub delivered: usize,
    pub delivery_failed: usize,
}

/// How email deliveries and notifications go out.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub mailer: Mailer,
    /// The address users reach the API at (`https://exports.example.org`), for links.
    pub public_url: String,
    /// How long a link sent by email stays valid.
    pub link_lifetime: Duration,
}

/// What a delivery pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: usize,
    pub retrying: usize,
    pub failed: usize,
    pub notified: usize,
    /// Runs and notifications this pass could not handle (each logged with its ids); the next
    /// pass tries them again.
    pub errors: usize,
}

/// Scheduled reports over an engine.
pub struct Scheduler {
    engine: Arc<ExportEngine>,
    store: Store,
    delivery: Option<Delivery>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").finish_non_exhaustive()
    }
}

/// The time zone, schedule and checks of a request, as a `Schedule`.
fn schedule_of(report: &ScheduledReportRequest) -> Result<Schedule, ScheduleError> {
    Schedule::new(
        report.schedule_type,
        &report.schedule_config,
        &report.timezone,
    )
    .map_err(|errors| ScheduleError::Invalid(ValidationErrors { errors }))
}

/// The schedule of a stored report.
fn stored_schedule(report: &ScheduledReport) -> Result<Schedule, ScheduleError> {
    Schedule::of_report(report)
        .map_err(|errors| ScheduleError::Invalid(ValidationErrors { errors }))
}

/// `period_days` of the parameters: how far back a run's report reaches (default 30).
fn period_days(parameters: &serde_json::Value) -> Result<i64, ScheduleError> {
    match parameters.get("period_days") {
        None | Some(serde_json::Value::Null) => Ok(30),
        Some(value) => export_domain::whole_number(value)
            .filter(|d| (1..=MAX_PERIOD_DAYS).contains(d))
            .ok_or_else(|| {
                invalid(
                    "parameters.period_days",
                    format!("must be a whole number of days from 1 to {MAX_PERIOD_DAYS}"),
                )
            }),
    }
}

/// The export a run of `template` makes at `due`, with the parameters resolved then: "the last
/// `period_days` days" ends on the due day.
pub fn request_for(
    template: &ExportTemplate,
    patient_id: Option<Uuid>,
    parameters: &serde_json::Value,
    due: DateTime<Utc>,
) -> Result<ExportRequest, ScheduleError> {
    let patient = patient_id
        .ok_or_else(|| {
            invalid(
                "patient_id",
                "this template's report is about one patient; name them",
            )
        })?
        .to_string();
    let days = period_days(parameters)?;
    let end = due.date_naive();
    let start = end - Duration::days(days - 1);
    let format = template.format.as_str().to_owned();
    let template_id = Some(template.id.to_string());
    let sections = template.include_sections.clone();
    let checked =
        |result: Result<ExportRequest, ValidationErrors>| result.map_err(ScheduleError::Invalid);
    match template.export_type {
        ExportType::ProgressReport => checked(
            ProgressReportInput {
                patient_id: patient,
                start_date: start.to_string(),
                end_date: end.to_string(),
                format,
                template_id,
                include_sections: sections,
            }
            .validate()
            .map(ExportRequest::ProgressReport),
        ),
        ExportType::TreatmentSummary => checked(
            TreatmentSummaryInput {
                patient_id: patient,
                format,
                purpose: parameters
                    .get("purpose")
                    .and_then(|p| p.as_str())
                    .unwrap_or("records")
                    .to_owned(),
                template_id,
                include_sections: sections,
            }
            .validate()
            .map(ExportRequest::TreatmentSummary),
        ),
        ExportType::FullRecord => checked(
            FullRecordInput {
                patient_id: patient,
                format,
                include_sections: sections,
                date_range: None,
            }
            .validate()
            .map(ExportRequest::FullRecord),
        ),
        other => Err(invalid(
            "template_id",
            format!(
                "{other} templates cannot be scheduled; use a progress report, treatment summary or full record template"
            ),
        )),
    }
}

/// The owner a schedule runs as. Schedules are made by therapists, and the engine checks the
/// relationship at every run.
fn owner(report: &ScheduledReport) -> Actor {
    Actor {
        user_id: report.user_id,
        role: Role::Therapist,
    }
}

fn scheduler_origin(report: &ScheduledReport) -> RequestOrigin {
    RequestOrigin {
        ip_address: None,
        user_agent: Some("export-scheduler".to_owned()),
        request_id: Some(format!("schedule-{}", report.id.simple())),
    }
}

impl Scheduler {
    pub fn new(engine: Arc<ExportEngine>, store: Store) -> Scheduler {
        Scheduler {
            engine,
            store,
            delivery: None,
        }
    }

    /// Lets the scheduler send email: scheduled reports delivered by email, and notifications.
    pub fn with_delivery(mut self, delivery: Delivery) -> Scheduler {
        self.delivery = Some(delivery);
        self
    }

    /// Sets `actor`'s notification preference: an email to `email` when one of their exports
    /// completes (`on_completed`) or fails (`on_failed`), from now on.
    pub fn set_notifications(
        &self,
        actor: &Actor,
        email: &str,
        on_completed: bool,
        on_failed: bool,
        now: DateTime<Utc>,
    ) -> Result<NotificationPreference, ScheduleError> {
        if actor.role == Role::Patient {
            return Err(ScheduleError::Forbidden(
                "patients have no exports to be told about",
            ));
        }
        if !export_domain::is_email_address(email) {
            return Err(invalid("email", "is not an email address"));
        }
        let preference = NotificationPreference {
            user_id: actor.user_id,
            email: email.to_owned(),
            on_completed,
            on_failed,
            updated_at: export_domain::to_storage_precision(now),
        };
        let mut conn = self.store.connection()?;
        runs::set_preference(&mut conn, &preference)?;
        Ok(preference)
    }

    /// `actor`'s notification preference, if set.
    pub fn notifications(
        &self,
        actor: &Actor,
    ) -> Result<Option<NotificationPreference>, ScheduleError> {
        let mut conn = self.store.connection()?;
        Ok(runs::get_preference(&mut conn, actor.user_id)?)
    }

    /// The scheduled runs due since `since`: everyone's for an administrator, a therapist's own.
    pub fn run_stats(
        &self,
        actor: &Actor,
        since: DateTime<Utc>,
    ) -> Result<RunStats, ScheduleError> {
        let owner = match actor.role {
            Role::Admin => None,
            Role::Therapist => Some(actor.user_id),
            Role::Patient => return Err(ScheduleError::Forbidden("patients schedule nothing")),
        };
        let mut conn = self.store.connection()?;
        let counts = runs::count_runs_since(&mut conn, since, owner)?;
        let count = |status: RunStatus| {
            counts
                .iter()
                .filter(|(s, _, _)| s == status.as_str())
                .map(|(_, runs, _)| usize::try_from(*runs).unwrap_or(0))
                .sum::<usize>()
        };
        Ok(RunStats {
            runs: counts
                .iter()
                .map(|(_, runs, _)| usize::try_from(*runs).unwrap_or(0))
                .sum(),
            skipped: counts
                .iter()
                .map(|(_, _, skipped)| usize::try_from(*skipped).unwrap_or(0))
                .sum(),
            refused: count(RunStatus::Refused),
            delivered: count(RunStatus::Delivered),
            delivery_failed: count(RunStatus::DeliveryFailed),
        })
    }

    /// Checks `request` for `actor` as saving it would, without saving: the schedule, the
    /// template, the export it makes, the owner's right to make it.
    pub fn check(
        &self,
        actor: &Actor,
        request: &ScheduledReportRequest,
        now: DateTime<Utc>,
    ) -> Result<Schedule, ScheduleError> {
        if actor.role != Role::Therapist {
            return Err(ScheduleError::Forbidden("only therapists schedule reports"));
        }
        let schedule = schedule_of(request)?;
        let template = match self.engine.template(actor, request.template_id) {
            Ok(template) => template,
            Err(EngineError::TemplateNotFound(_)) => {
                return Err(invalid("template_id", "there is no such template"));
            }
            Err(err) => return Err(err.into()),
        };
        period_days(&request.parameters)?;
        if request.delivery_method == DeliveryMethod::Email && request.email_recipients.is_empty() {
            return Err(invalid(
                "email_recipients",
                "email delivery needs at least one recipient",
            ));
        }
        let export = request_for(&template, request.patient_id, &request.parameters, now)?;
        match self.engine.check_export(actor, &export) {
            Ok(_) => Ok(schedule),
            Err(EngineError::Forbidden(reason)) => Err(ScheduleError::Forbidden(reason)),
            Err(err) => Err(err.into()),
        }
    }

    /// The next `count` run times of a schedule that is not saved yet.
    pub fn preview_request(
        &self,
        actor: &Actor,
        request: &ScheduledReportRequest,
        now: DateTime<Utc>,
        count: usize,
    ) -> Result<Vec<DateTime<Utc>>, ScheduleError> {
        let schedule = self.check(actor, request, now)?;
        Ok(schedule.preview(now, count))
    }

    /// Saves a scheduled report for `actor`, active, its next run computed.
    pub fn create(
        &self,
        actor: &Actor,
        request: ScheduledReportRequest,
        now: DateTime<Utc>,
    ) -> Result<ScheduledReport, ScheduleError> {
        let schedule = self.check(actor, &request, now)?;
        let now = export_domain::to_storage_precision(now);
        let report = ScheduledReport {
            id: Uuid::new_v4(),
            user_id: actor.user_id,
            template_id: request.template_id,
            patient_id: request.patient_id,
            schedule_type: request.schedule_type,
            schedule_config: request.schedule_config,
            timezone: request.timezone,
            parameters: request.parameters,
            delivery_method: request.delivery_method,
            email_recipients: request.email_recipients,
            attach_file: request.attach_file,
            is_active: true,
            last_run_at: None,
            next_run_at: schedule
                .next_after(now)
                .map(export_domain::to_storage_precision),
            created_at: now,
            updated_at: now,
        };
        let mut conn = self.store.connection()?;
        match schedules::insert_schedule(&mut conn, &report) {
            Ok(()) => Ok(report),
            Err(StoreError::ScheduleAlreadyActive) => Err(ScheduleError::AlreadyActive {
                field: "template_id",
            }),
            Err(err) => Err(err.into()),
        }
    }

    /// `actor`'s scheduled reports.
    pub fn list(&self, actor: &Actor) -> Result<Vec<ScheduledReport>, ScheduleError> {
        let mut conn = self.store.connection()?;
        Ok(schedules::list_schedules(&mut conn, actor.user_id)?)
    }

    /// One of `actor`'s scheduled reports; another user's does not exist for them.
    pub fn get(&self, actor: &Actor, id: Uuid) -> Result<ScheduledReport, ScheduleError> {
        let mut conn = self.store.connection()?;
        match schedules::get_schedule(&mut conn, id)? {
            Some(report) if report.user_id == actor.user_id => Ok(report),
            _ => Err(ScheduleError::NotFound(id)),
        }
    }

    /// A report's most recent runs, newest first.
    pub fn runs(
        &self,
        actor: &Actor,
        id: Uuid,
        limit: i64,
    ) -> Result<Vec<ScheduleRun>, ScheduleError> {
        self.get(actor, id)?;
        let mut conn = self.store.connection()?;
        Ok(runs::list_runs(&mut conn, id, limit)?)
    }

    /// Replaces a report's settings with `request` (checked as at creation) and, when given,
    /// pauses or resumes it. Resuming computes the next run from `now`: runs missed while paused
    /// are not made up.
    pub fn update(
        &self,
        actor: &Actor,
        id: Uuid,
        request: ScheduledReportRequest,
        active: Option<bool>,
        now: DateTime<Utc>,
    ) -> Result<ScheduledReport, ScheduleError> {
        let mut report = self.get(actor, id)?;
        let schedule = self.check(actor, &request, now)?;
        let resumed = active == Some(true) && !report.is_active;
        report.template_id = request.template_id;
        report.patient_id = request.patient_id;
        report.schedule_type = request.schedule_type;
        report.schedule_config = request.schedule_config;
        report.timezone = request.timezone;
        report.parameters = request.parameters;
        report.delivery_method = request.delivery_method;
        report.email_recipients = request.email_recipients;
        report.attach_file = request.attach_file;
        if let Some(active) = active {
            report.is_active = active;
        }
        let from = if resumed {
            now
        } else {
            report.last_run_at.unwrap_or(now).max(now)
        };
        report.next_run_at = schedule
            .next_after(from)
            .map(export_domain::to_storage_precision);
        report.updated_at = export_domain::to_storage_precision(now);
        let mut conn = self.store.connection()?;
        match schedules::update_schedule(&mut conn, &report) {
            Ok(_) => Ok(report),
            Err(StoreError::ScheduleAlreadyActive) => {
                Err(ScheduleError::AlreadyActive { field: "is_active" })
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Pauses a report: no check beyond ownership, so a report whose patient relationship has
    /// ended can still be stopped.
    pub fn pause(
        &self,
        actor: &Actor,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<ScheduledReport, ScheduleError> {
        let mut report = self.get(actor, id)?;
        report.is_active = false;
        report.updated_at = export_domain::to_storage_precision(now);
        let mut conn = self.store.connection()?;
        schedules::update_schedule(&mut conn, &report)?;
        Ok(report)
    }

    /// Deletes a report and its run history (its jobs stay, as any export).
    pub fn delete(&self, actor: &Actor, id: Uuid) -> Result<(), ScheduleError> {
        self.get(actor, id)?;
        let mut conn = self.store.connection()?;
        schedules::delete_schedule(&mut conn, id)?;
        Ok(())
    }

    /// The next `count` run times of a saved report.
    pub fn preview(
        &self,
        actor: &Actor,
        id: Uuid,
        now: DateTime<Utc>,
        count: usize,
    ) -> Result<Vec<DateTime<Utc>>, ScheduleError> {
        let report = self.get(actor, id)?;
        Ok(stored_schedule(&report)?.preview(now, count))
    }

    /// Runs a report now, outside its schedule (a paused one too): one run due `now`. A run made
    /// by hand is an export like any other and counts against `per_hour`, the owner's hourly
    /// limit (`None` or 0: none); a run refused by it is recorded as refused and answered with
    /// [`EngineError::TooManyExports`].
    pub fn run_now(
        &self,
        actor: &Actor,
        id: Uuid,
        per_hour: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<ScheduleRun, ScheduleError> {
        let report = self.get(actor, id)?;
        let due = export_domain::to_storage_precision(now);
        let mut run = new_run(&report, due, 0, now);
        let mut conn = self.store.connection()?;
        if !runs::claim_run(&mut conn, &run)? {
            return Err(invalid("id", "this report was already run at this instant"));
        }
        drop(conn);
        match self.submit(&report, &mut run, per_hour, now)? {
            Some(retry_after_seconds) => Err(ScheduleError::Engine(EngineError::TooManyExports {
                limit: per_hour.unwrap_or_default(),
                retry_after_seconds,
            })),
            None => Ok(run),
        }
    }
}

fn new_run(
    schedule: &ScheduledReport,
    due: DateTime<Utc>,
    skipped: i32,
    now: DateTime<Utc>,
) -> ScheduleRun {
    let now = export_domain::to_storage_precision(now);
    ScheduleRun {
        id: Uuid::new_v4(),
        schedule_id: schedule.id,
        due_at: export_domain::to_storage_precision(due),
        skipped,
        export_job_id: None,
        status: RunStatus::Submitting,
        delivery_attempts: 0,
        next_delivery_at: None,
        error_message: None,
        created_at: now,
        updated_at: now,
    }
}

/// The request a client sends to create or replace a scheduled report, checked.
pub fn checked(input: &ScheduledReportInput) -> Result<ScheduledReportRequest, ScheduleError> {
    input.validate().map_err(ScheduleError::Invalid)
}
