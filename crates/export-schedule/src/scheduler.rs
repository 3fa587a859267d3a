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

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use export_core::engine::{
    Actor, EngineError, ExportEngine, ExportRequest, ReadChannel, RequestOrigin,
};
use export_domain::{
    AuditAction, DeliveryMethod, ExportTemplate, ExportType, FieldError, FullRecordInput,
    JobStatus, Notification, NotificationPreference, NotificationStatus, ProgressReportInput, Role,
    RunStatus, ScheduleRun, ScheduledReport, ScheduledReportInput, ScheduledReportRequest,
    TreatmentSummaryInput, ValidationErrors,
};
use export_store::{Store, StoreError, audit, runs, schedules};
use uuid::Uuid;

use crate::Schedule;
use crate::email::{
    Attachment, DeliveryError, MAX_ATTACHMENT_BYTES, MAX_DELIVERY_ATTEMPTS, Mailer, Notice,
    delivery_backoff,
};

/// Why a scheduled-report operation was refused or failed. Ids only.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("invalid scheduled report: {0}")]
    Invalid(ValidationErrors),
    #[error("scheduled report {0} does not exist")]
    NotFound(Uuid),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
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

/// Scheduled runs in a window, for the export statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
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

/// One run's email as the audit trail records it.
struct EmailShare {
    run_id: Uuid,
    /// How many recipients the SMTP server accepted.
    recipients: usize,
    /// When the link in it expires; `None` when the file was attached.
    link_expires: Option<DateTime<Utc>>,
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
        Some(value) => value
            .as_i64()
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

/// The idempotency key of a schedule's job for one due time.
fn run_key(schedule_id: Uuid, due: DateTime<Utc>) -> String {
    format!("schedule:{}:{}", schedule_id.simple(), due.timestamp())
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
        email
            .parse::<lettre::Address>()
            .map_err(|_| invalid("email", "is not an email address"))?;
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

    /// Sends what is due: scheduled reports whose job finished, to their recipients, and the
    /// notifications owners asked for. Transient failures retry with backoff up to
    /// `MAX_DELIVERY_ATTEMPTS`; then the run or notification is failed with the reason.
    ///
    /// Each run and notification is handled on its own. One that can never go out (its job
    /// deleted, its owner no longer allowed to read it) is failed with a reason its owner can act
    /// on; one the database failed on is left for the next pass. Either way it is logged with its
    /// ids, the second counted in [`DeliveryReport::errors`], and the pass goes on: notifications
    /// go out whatever happened to the reports. An error comes back only when a list to work
    /// through could not be read, and only after the other half of the pass has run.
    pub fn deliver(&self, now: DateTime<Utc>) -> Result<DeliveryReport, ScheduleError> {
        let mut report = DeliveryReport::default();
        let Some(delivery) = &self.delivery else {
            return Ok(report);
        };
        let reports = self.deliver_reports(delivery, now, &mut report);
        let notifications = self.notify(delivery, now, &mut report);
        reports.and(notifications)?;
        Ok(report)
    }

    /// The scheduled reports half of [`deliver`](Self::deliver): each waiting run on its own.
    fn deliver_reports(
        &self,
        delivery: &Delivery,
        now: DateTime<Utc>,
        report: &mut DeliveryReport,
    ) -> Result<(), ScheduleError> {
        let waiting = {
            let mut conn = self.store.connection()?;
            runs::list_runs_in(&mut conn, RunStatus::Delivering, now, 100)?
        };
        for run in waiting {
            let (run_id, schedule_id) = (run.id, run.schedule_id);
            if let Err(err) = self.deliver_run(delivery, run, now, report) {
                report.errors += 1;
                log::warn!(
                    "delivery: run {run_id} of scheduled report {schedule_id} is left for the next pass: {err}"
                );
            }
        }
        Ok(())
    }

    /// Delivers one run if its job has finished, and records the outcome on the run.
    fn deliver_run(
        &self,
        delivery: &Delivery,
        mut run: ScheduleRun,
        now: DateTime<Utc>,
        report: &mut DeliveryReport,
    ) -> Result<(), ScheduleError> {
        let schedule = {
            let mut conn = self.store.connection()?;
            schedules::get_schedule(&mut conn, run.schedule_id)?
        };
        // A schedule is deleted with its runs: this one went meanwhile.
        let Some(schedule) = schedule else {
            return Ok(());
        };
        let owner = owner(&schedule);
        let job = match run.export_job_id {
            None => Err(Failure::Permanent("the run has no export job")),
            Some(job_id) => match self.engine.job(&owner, job_id) {
                Ok(job) if matches!(job.status, JobStatus::Pending | JobStatus::Processing) => {
                    return Ok(());
                }
                Ok(job) => Ok(job),
                Err(EngineError::JobNotFound(_)) => Err(Failure::Permanent(
                    "the export was deleted before it could be delivered",
                )),
                Err(err) => return Err(err.into()),
            },
        };
        // This attempt is ours alone for five minutes: another scheduler skips it.
        let claimed = {
            let mut conn = self.store.connection()?;
            runs::claim_delivery(&mut conn, run.id, now, now + Duration::minutes(5))?
        };
        if !claimed {
            return Ok(());
        }
        let outcome = job.and_then(|job| match job.status {
            JobStatus::Completed => self.send_report(delivery, &schedule, &run, &job, now),
            _ => Err(Failure::Permanent("the export was not produced")),
        });
        run.delivery_attempts += 1;
        match outcome {
            Ok(()) => {
                run.status = RunStatus::Delivered;
                run.next_delivery_at = None;
                run.error_message = None;
                report.delivered += 1;
            }
            // The attempt is not counted: the lease lapses and a later pass takes it again.
            Err(Failure::Unhandled(err)) => return Err(err),
            Err(Failure::Transient(reason))
                if (run.delivery_attempts as u32) < MAX_DELIVERY_ATTEMPTS =>
            {
                run.next_delivery_at = Some(export_domain::to_storage_precision(
                    now + Duration::from_std(delivery_backoff(run.delivery_attempts as u32))
                        .unwrap_or(Duration::minutes(1)),
                ));
                run.error_message = Some(reason);
                report.retrying += 1;
            }
            Err(Failure::Transient(reason)) => {
                run.status = RunStatus::DeliveryFailed;
                run.error_message = Some(format!(
                    "gave up after {} attempts: {reason}",
                    run.delivery_attempts
                ));
                report.failed += 1;
            }
            Err(Failure::Permanent(reason)) => {
                run.status = RunStatus::DeliveryFailed;
                run.error_message = Some(reason.to_owned());
                report.failed += 1;
            }
            Err(Failure::Refused(reason)) => {
                run.status = RunStatus::DeliveryFailed;
                run.error_message = Some(reason);
                report.failed += 1;
            }
        }
        run.updated_at = export_domain::to_storage_precision(now);
        let mut conn = self.store.connection()?;
        runs::update_run(&mut conn, &run)?;
        if run.status == RunStatus::DeliveryFailed {
            log::warn!(
                "delivery: run {} of scheduled report {} (job {}) failed",
                run.id,
                schedule.id,
                run.export_job_id
                    .map_or_else(|| "none".to_owned(), |id| id.to_string())
            );
        }
        Ok(())
    }

    /// Emails one finished scheduled report: a signed link or, when the schedule says so, the
    /// file attached (audited as downloaded when it is read). Either is audited as shared once
    /// the SMTP server has accepted the message, once per run however many attempts it took.
    fn send_report(
        &self,
        delivery: &Delivery,
        schedule: &ScheduledReport,
        run: &ScheduleRun,
        job: &export_domain::ExportJob,
        now: DateTime<Utc>,
    ) -> Result<(), Failure> {
        let owner = owner(schedule);
        let origin = scheduler_origin(schedule);
        let (notice, attachment, link_expires) = if schedule.attach_file {
            let (job, mut reader) = self
                .engine
                .download_by(&owner, job.id, ReadChannel::Email, &origin, now)
                .map_err(Failure::refused)?;
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(&mut reader, MAX_ATTACHMENT_BYTES as u64 + 1),
                &mut bytes,
            )
            .map_err(|_| Failure::Transient("the file could not be read".into()))?;
            if bytes.len() > MAX_ATTACHMENT_BYTES {
                return Err(Failure::Permanent("the file is too large to attach"));
            }
            let name = format!(
                "export-{}.{}",
                &job.id.simple().to_string()[..8],
                job.format
            );
            let attachment = Attachment::new(name, job.format.media_type(), bytes)
                .map_err(|e| Failure::Refused(e.to_string()))?;
            (
                Notice::scheduled_export_attached(job.id),
                Some(attachment),
                None,
            )
        } else {
            let (link, expires) = self.email_link(delivery, &owner, job, &origin, now)?;
            let notice = Notice::scheduled_export_ready(job.id, &link, expires)
                .map_err(|e| Failure::Refused(e.to_string()))?;
            (notice, None, Some(expires))
        };
        let sent = delivery
            .mailer
            .send(&schedule.email_recipients, &notice, attachment);
        // Who has the file now: everyone, or those the server accepted before one failed.
        let accepted = match &sent {
            Ok(()) => schedule.email_recipients.len(),
            Err(DeliveryError::PartlyDelivered { delivered, .. }) => *delivered,
            Err(_) => 0,
        };
        if accepted > 0 {
            // Recorded before the run is marked delivered: should this fail, the run is tried
            // again, the message resent, and the share recorded then, still once.
            let share = EmailShare {
                run_id: run.id,
                recipients: accepted,
                link_expires,
            };
            self.record_email_share(&owner, job, &share, &origin, now)
                .map_err(Failure::Unhandled)?;
        }
        sent.map_err(Failure::of)
    }

    /// Audits that run `share.run_id`'s email of `job` (the file attached, or a link to it)
    /// reached `share.recipients` people: once per run, however many attempts the run took (a
    /// retry finds the entry, which names the run, and adds none).
    fn record_email_share(
        &self,
        owner: &Actor,
        job: &export_domain::ExportJob,
        share: &EmailShare,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<(), ScheduleError> {
        let run = share.run_id.to_string();
        let mut metadata = serde_json::json!({"via": "email",
            "attached": share.link_expires.is_none(), "recipients": share.recipients, "run": run});
        if let Some(expires) = share.link_expires {
            metadata["link_expires_at"] = serde_json::json!(expires);
        }
        self.record_share_once(owner, job, metadata, "run", origin, now)
    }

    /// Audits that the owner's notification carrying a link to `job` was accepted by the SMTP
    /// server: once per job, as a job has one notification.
    fn record_notified_share(
        &self,
        owner: &Actor,
        job: &export_domain::ExportJob,
        link_expires: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), ScheduleError> {
        let metadata = serde_json::json!({"via": "email", "notification": true,
            "attached": false, "recipients": 1, "link_expires_at": link_expires});
        self.record_share_once(
            owner,
            job,
            metadata,
            "notification",
            &RequestOrigin::default(),
            now,
        )
    }

    /// Records `job` as shared with `metadata`, unless a `shared` entry of the job already holds
    /// the same value under `once_by`.
    fn record_share_once(
        &self,
        owner: &Actor,
        job: &export_domain::ExportJob,
        metadata: serde_json::Value,
        once_by: &str,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<(), ScheduleError> {
        let shares = {
            let mut conn = self.store.connection()?;
            audit::list(
                &mut conn,
                &audit::AuditFilter {
                    export_job_id: Some(job.id),
                    action: Some(AuditAction::Shared),
                    ..Default::default()
                },
            )?
        };
        if shares
            .iter()
            .any(|entry| entry.entry.metadata[once_by] == metadata[once_by])
        {
            return Ok(());
        }
        self.engine
            .record_share(owner, job, metadata, origin, now)?;
        Ok(())
    }

    /// A signed link to `job` for an email, as `actor` (a refusal audited by the engine; the share
    /// is recorded once the message is accepted), valid for the configured lifetime or until the
    /// file expires, whichever comes first.
    fn email_link(
        &self,
        delivery: &Delivery,
        actor: &Actor,
        job: &export_domain::ExportJob,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), Failure> {
        let expires = now + delivery.link_lifetime;
        let expires = job.expires_at.map_or(expires, |e| e.min(expires));
        let token = self
            .engine
            .sign_link(actor, job.id, expires - now, origin, now)
            .map_err(Failure::refused)?
            .token;
        let link = format!(
            "{}/api/v1/export/download/{}?token={token}",
            delivery.public_url.trim_end_matches('/'),
            job.id
        );
        Ok((link, expires))
    }

    /// The notifications half of [`deliver`](Self::deliver): claims the notifications owners
    /// asked for and sends those due, each on its own.
    fn notify(
        &self,
        delivery: &Delivery,
        now: DateTime<Utc>,
        report: &mut DeliveryReport,
    ) -> Result<(), ScheduleError> {
        let preferences = {
            let mut conn = self.store.connection()?;
            runs::list_preferences(&mut conn)?
        };
        for preference in &preferences {
            if let Err(err) = self.claim_notifications(preference, now) {
                report.errors += 1;
                log::warn!(
                    "notifications: the exports of user {} are left for the next pass: {err}",
                    preference.user_id
                );
            }
        }
        let pending = {
            let mut conn = self.store.connection()?;
            runs::list_pending_notifications(&mut conn, now, 100)?
        };
        for notification in pending {
            let job_id = notification.export_job_id;
            match self.send_notification(delivery, &preferences, notification, now) {
                Ok(true) => report.notified += 1,
                Ok(false) => {}
                Err(err) => {
                    report.errors += 1;
                    log::warn!(
                        "notifications: the notification of job {job_id} is left for the next pass: {err}"
                    );
                }
            }
        }
        Ok(())
    }

    /// Claims a notification for each of the user's recently finished jobs they want to hear
    /// about: one row per job, made once however many schedulers run.
    fn claim_notifications(
        &self,
        preference: &NotificationPreference,
        now: DateTime<Utc>,
    ) -> Result<(), ScheduleError> {
        // Jobs of the last day (and since the preference was set): bounded work per pass.
        let since = preference.updated_at.max(now - Duration::days(1));
        let mut finished = Vec::new();
        for status in [JobStatus::Completed, JobStatus::Failed] {
            let mut conn = self.store.connection()?;
            finished.extend(
                export_store::jobs::list_jobs(
                    &mut conn,
                    &export_store::jobs::JobFilter {
                        status: Some(status),
                        limit: 500,
                        ..export_store::jobs::JobFilter::of_user(preference.user_id)
                    },
                )?
                .into_iter()
                .filter(|j| j.created_at >= since),
            );
        }
        for job in &finished {
            let wanted = (job.status == JobStatus::Completed && preference.on_completed)
                || (job.status == JobStatus::Failed && preference.on_failed);
            if !wanted {
                continue;
            }
            let mut conn = self.store.connection()?;
            if runs::get_notification(&mut conn, job.id)?.is_some() {
                continue;
            }
            let at = export_domain::to_storage_precision(now);
            runs::claim_notification(
                &mut conn,
                &Notification {
                    export_job_id: job.id,
                    user_id: job.user_id,
                    status: NotificationStatus::Pending,
                    attempts: 0,
                    next_attempt_at: None,
                    error_message: None,
                    created_at: at,
                    updated_at: at,
                },
            )?;
        }
        Ok(())
    }

    /// Sends one pending notification if this scheduler wins its attempt, and records the
    /// outcome on it; true when it went out.
    fn send_notification(
        &self,
        delivery: &Delivery,
        preferences: &[NotificationPreference],
        mut notification: Notification,
        now: DateTime<Utc>,
    ) -> Result<bool, ScheduleError> {
        let claimed = {
            let mut conn = self.store.connection()?;
            runs::claim_notification_attempt(
                &mut conn,
                notification.export_job_id,
                now,
                now + Duration::minutes(5),
            )?
        };
        if !claimed {
            return Ok(false);
        }
        let actor = Actor {
            user_id: notification.user_id,
            role: Role::Therapist,
        };
        let preference = preferences
            .iter()
            .find(|p| p.user_id == notification.user_id);
        let outcome = match preference {
            // Left pending, it would come back in every pass, and take a place in its list.
            None => Err(Failure::Permanent(
                "notifications were turned off before it was sent",
            )),
            Some(preference) => match self.engine.job(&actor, notification.export_job_id) {
                Ok(job) if job.status == JobStatus::Completed => self
                    .email_link(delivery, &actor, &job, &RequestOrigin::default(), now)
                    .and_then(|(link, expires)| {
                        Notice::export_ready(job.id, &link, expires)
                            .map(|notice| (notice, Some((job, expires))))
                            .map_err(|e| Failure::Refused(e.to_string()))
                    }),
                Ok(job) => Notice::export_failed(job.id, "the export could not be produced")
                    .map(|notice| (notice, None))
                    .map_err(|e| Failure::Refused(e.to_string())),
                Err(EngineError::JobNotFound(_)) => Err(Failure::Permanent(
                    "the export was deleted before it could be notified",
                )),
                Err(err) => Err(Failure::refused(err)),
            }
            .and_then(|(notice, linked)| {
                delivery
                    .mailer
                    .send(std::slice::from_ref(&preference.email), &notice, None)
                    .map_err(Failure::of)?;
                // The link has left: recorded as shared now, once (a retry after a failure
                // here resends the notice and finds the entry).
                match linked {
                    Some((job, expires)) => self
                        .record_notified_share(&actor, &job, expires, now)
                        .map_err(Failure::Unhandled),
                    None => Ok(()),
                }
            }),
        };
        notification.attempts += 1;
        let sent = match outcome {
            Ok(()) => {
                notification.status = NotificationStatus::Sent;
                notification.error_message = None;
                true
            }
            // The attempt is not counted: the lease lapses and a later pass takes it again.
            Err(Failure::Unhandled(err)) => return Err(err),
            Err(Failure::Transient(reason))
                if (notification.attempts as u32) < MAX_DELIVERY_ATTEMPTS =>
            {
                notification.next_attempt_at = Some(export_domain::to_storage_precision(
                    now + Duration::from_std(delivery_backoff(notification.attempts as u32))
                        .unwrap_or(Duration::minutes(1)),
                ));
                notification.error_message = Some(reason);
                false
            }
            Err(failure) => {
                notification.status = NotificationStatus::Failed;
                notification.error_message = Some(failure.reason());
                log::warn!(
                    "notifications: the notification of job {} failed",
                    notification.export_job_id
                );
                false
            }
        };
        notification.updated_at = export_domain::to_storage_precision(now);
        let mut conn = self.store.connection()?;
        runs::update_notification(&mut conn, &notification)?;
        Ok(sent)
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
            Err(StoreError::ScheduleAlreadyActive) => Err(invalid(
                "template_id",
                "you already have an active schedule of this template for this patient",
            )),
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
            Err(StoreError::ScheduleAlreadyActive) => Err(invalid(
                "is_active",
                "you already have an active schedule of this template for this patient",
            )),
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

    /// Turns every due time up to `now` into export jobs, once: one job per schedule for the
    /// most recent due time it missed. Also finishes runs a scheduler claimed but died (or
    /// stalled) before submitting.
    ///
    /// Each schedule and run is handled on its own: one the engine refuses (the owner lost access
    /// to the patient, the template is gone) is recorded as a refused run with the reason; one the
    /// database fails on is logged with its ids, counted in [`TickReport::errors`] and tried
    /// again by the next tick, and the tick goes on with the others. An error comes back only
    /// when the list of due schedules could not be read.
    pub fn tick(&self, now: DateTime<Utc>) -> Result<TickReport, ScheduleError> {
        let mut report = TickReport::default();
        let due = {
            let mut conn = self.store.connection()?;
            schedules::list_due(&mut conn, now, 1000)?
        };
        for schedule in due {
            if let Err(err) = self.tick_schedule(&schedule, now, &mut report) {
                report.errors += 1;
                log::warn!(
                    "scheduler tick: scheduled report {} is left for the next tick: {err}",
                    schedule.id
                );
            }
        }
        // Runs claimed by a scheduler that died, or stalls, before it submitted.
        let stranded = {
            let mut conn = self.store.connection()?;
            runs::list_runs_in(&mut conn, RunStatus::Submitting, now, 100)
        };
        let stranded = match stranded {
            Ok(stranded) => stranded,
            Err(err) => {
                report.errors += 1;
                log::warn!("scheduler tick: runs left submitting could not be listed: {err}");
                Vec::new()
            }
        };
        for run in stranded
            .into_iter()
            .filter(|r| now - r.updated_at > STRANDED_AFTER)
        {
            let (run_id, schedule_id) = (run.id, run.schedule_id);
            if let Err(err) = self.recover_run(run, now) {
                report.errors += 1;
                log::warn!(
                    "scheduler tick: run {run_id} of scheduled report {schedule_id} is left for the next tick: {err}"
                );
            }
        }
        Ok(report)
    }

    /// Claims and submits the due time of one schedule, and moves the schedule on.
    fn tick_schedule(
        &self,
        schedule: &ScheduledReport,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<(), ScheduleError> {
        let Some(first_due) = schedule.next_run_at else {
            return Ok(());
        };
        let rule = stored_schedule(schedule)?;
        // The most recent due time not after `now`, and how many before it were missed.
        let due = rule.due_between(first_due - Duration::microseconds(1), now);
        let Some(due_at) = due.latest else {
            return Ok(());
        };
        let skipped = due.skipped as usize;
        let mut run = new_run(schedule, due_at, skipped as i32, now);
        let claimed = {
            let mut conn = self.store.connection()?;
            runs::claim_run(&mut conn, &run)?
        };
        let submitted = if claimed {
            if skipped > 0 {
                log::info!(
                    "scheduled report {}: {skipped} missed runs coalesced into the one due {due_at}",
                    schedule.id
                );
            }
            // A submission that failed leaves the run claimed; the recovery below finishes it
            // in a later tick, so the schedule still moves on.
            let submitted = self.submit(schedule, &mut run, None, now);
            if submitted.is_ok() {
                report.submitted += 1;
                report.skipped += skipped;
                if run.status == RunStatus::Refused {
                    report.refused += 1;
                }
            }
            submitted.map(|_| ())
        } else {
            report.lost_races += 1;
            Ok(())
        };
        // Every scheduler computes the same next run, so the race here is harmless; only
        // these two fields are written, so an owner pausing at this moment is not undone.
        let mut conn = self.store.connection()?;
        schedules::advance_schedule(
            &mut conn,
            schedule.id,
            due_at,
            due.next.map(export_domain::to_storage_precision),
            export_domain::to_storage_precision(now),
        )?;
        submitted
    }

    /// Finishes a run left submitting: takes it over (one scheduler at a time), then submits
    /// it. The job may exist already (its scheduler died after submitting, or is submitting it
    /// right now): the idempotency key names it, and the run takes that job.
    fn recover_run(&self, mut run: ScheduleRun, now: DateTime<Utc>) -> Result<(), ScheduleError> {
        let taken = {
            let mut conn = self.store.connection()?;
            runs::take_stranded_run(
                &mut conn,
                run.id,
                export_domain::to_storage_precision(now - STRANDED_AFTER),
                export_domain::to_storage_precision(now),
            )?
        };
        if !taken {
            return Ok(());
        }
        let schedule = {
            let mut conn = self.store.connection()?;
            schedules::get_schedule(&mut conn, run.schedule_id)?
        };
        let Some(schedule) = schedule else {
            return Ok(());
        };
        match self.submit(&schedule, &mut run, None, now) {
            Ok(_) => Ok(()),
            // Not a passing hiccup: after a day of trying, the run is refused with the reason,
            // so it stops coming back and its owner can see why.
            Err(err)
                if now - run.created_at > GIVE_UP_SUBMITTING_AFTER && !is_unavailable(&err) =>
            {
                log::warn!(
                    "scheduled report {}: run {} could not be submitted for a day; refused",
                    schedule.id,
                    run.id
                );
                run.status = RunStatus::Refused;
                run.error_message = Some(format!("the export could not be submitted: {err}"));
                run.updated_at = export_domain::to_storage_precision(now);
                let mut conn = self.store.connection()?;
                runs::record_submission(&mut conn, &run)?;
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Submits the job of a claimed run and records the outcome on the run; when the owner's
    /// hourly limit refused it, the seconds until the next may be made.
    ///
    /// Two schedulers may submit one run at once (a recovery and the scheduler it took over
    /// from): both use the run's idempotency key, so there is one job, and whichever records
    /// the outcome second finds the run recorded and takes it as it is. When the engine answers
    /// the loser of the race with an error instead of the job, the key still names the job, and
    /// the run takes it: an emailed report goes on to delivery either way.
    fn submit(
        &self,
        schedule: &ScheduledReport,
        run: &mut ScheduleRun,
        per_hour: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, ScheduleError> {
        let owner = owner(schedule);
        let key = run_key(schedule.id, run.due_at);
        let mut limited = None;
        let outcome = match self.engine.template(&owner, schedule.template_id) {
            Ok(template) => {
                match request_for(
                    &template,
                    schedule.patient_id,
                    &schedule.parameters,
                    run.due_at,
                ) {
                    Ok(request) => self
                        .engine
                        .submit_within(
                            &owner,
                            request,
                            Some(&key),
                            per_hour,
                            &scheduler_origin(schedule),
                            now,
                        )
                        .map_err(ScheduleError::from),
                    Err(err) => Err(err),
                }
            }
            Err(err) => Err(err.into()),
        };
        match outcome {
            Ok(job) => {
                run.export_job_id = Some(job.id);
                run.status = submitted_status(schedule);
            }
            Err(
                err @ (ScheduleError::Invalid(_)
                | ScheduleError::Forbidden(_)
                | ScheduleError::Engine(
                    EngineError::Forbidden(_)
                    | EngineError::Invalid(_)
                    | EngineError::TemplateNotFound(_),
                )),
            ) => {
                log::warn!(
                    "scheduled report {}: run {} refused: {err}",
                    schedule.id,
                    run.id
                );
                run.status = RunStatus::Refused;
                run.error_message = Some(err.to_string());
            }
            Err(ScheduleError::Engine(EngineError::TooManyExports {
                retry_after_seconds,
                ..
            })) => {
                // Refused for good, so no later tick submits it past the limit.
                run.status = RunStatus::Refused;
                run.error_message = Some("the hourly export limit was reached".to_owned());
                limited = Some(retry_after_seconds);
            }
            Err(err) => {
                // Another scheduler inserted the job between the engine's look-up of the key
                // and its own insert (`IdempotencyKeyTaken`, or whatever the engine answers a
                // key it lost to): the key names the run's job.
                let Some(job) = self.engine.job_by_idempotency_key(&owner, &key)? else {
                    // A database or storage hiccup: the run stays claimed and a later tick
                    // retries it.
                    return Err(err);
                };
                log::info!(
                    "scheduled report {}: run {} takes job {}, submitted by another scheduler",
                    schedule.id,
                    run.id,
                    job.id
                );
                run.export_job_id = Some(job.id);
                run.status = submitted_status(schedule);
            }
        }
        run.updated_at = export_domain::to_storage_precision(now);
        let mut conn = self.store.connection()?;
        if !runs::record_submission(&mut conn, run)? {
            // The other submitter recorded it first; never move a run back (a delivered report
            // to delivering again would be emailed twice).
            if let Some(recorded) = runs::get_run(&mut conn, run.id)? {
                *run = recorded;
            }
        }
        Ok(limited)
    }
}

/// How long a run may stay submitting before another scheduler takes it over.
const STRANDED_AFTER: Duration = Duration::seconds(60);

/// How long a run is retried when its submission fails for a reason other than an outage.
const GIVE_UP_SUBMITTING_AFTER: Duration = Duration::days(1);

/// Whether the database or the clinical source could not be reached, so trying later may work.
fn is_unavailable(err: &ScheduleError) -> bool {
    match err {
        ScheduleError::Engine(err) => err.is_unavailable(),
        ScheduleError::Store(err) => err.is_unavailable(),
        _ => false,
    }
}

/// Where a run goes once its job exists: stored reports end there; emailed ones are delivered.
fn submitted_status(schedule: &ScheduledReport) -> RunStatus {
    match schedule.delivery_method {
        DeliveryMethod::Storage => RunStatus::Submitted,
        DeliveryMethod::Email => RunStatus::Delivering,
    }
}

/// Why an email did not go out.
enum Failure {
    /// Worth another try later: the server was unreachable or deferred.
    Transient(String),
    /// Never going to work, in words we chose.
    Permanent(&'static str),
    /// Never going to work, with the reason of the part that refused (ids and codes only).
    Refused(String),
    /// Not decided: the database could not be reached or failed on this row. The attempt is not
    /// counted, and a later pass takes the row again.
    Unhandled(ScheduleError),
}

impl Failure {
    fn of(err: DeliveryError) -> Failure {
        if err.is_transient() {
            Failure::Transient(err.to_string())
        } else {
            Failure::Refused(err.to_string())
        }
    }

    /// The engine's answer as a failure: a refusal, unless the engine could not decide.
    fn refused(err: EngineError) -> Failure {
        if err.is_unavailable() {
            Failure::Unhandled(err.into())
        } else {
            Failure::Refused(err.to_string())
        }
    }

    fn reason(self) -> String {
        match self {
            Failure::Transient(reason) | Failure::Refused(reason) => reason,
            Failure::Permanent(reason) => reason.to_owned(),
            Failure::Unhandled(err) => err.to_string(),
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
