//! The delivery pass: finished scheduled reports emailed to their recipients (a link or the file
//! attached, audited as shared once), and the notifications owners asked for, retried with backoff.

use super::*;

use export_core::engine::ReadChannel;
use export_domain::{AuditAction, JobStatus, Notification, NotificationStatus};
use export_store::audit;

use crate::email::{
    Attachment, DeliveryError, MAX_ATTACHMENT_BYTES, MAX_DELIVERY_ATTEMPTS, Notice,
    delivery_backoff,
};

/// One run's email as the audit trail records it.
struct EmailShare {
    run_id: Uuid,
    /// How many recipients the SMTP server accepted.
    recipients: usize,
    /// When the link in it expires; `None` when the file was attached.
    link_expires: Option<DateTime<Utc>>,
}

impl Scheduler {
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
        // Read through the engine, as the owner: their own jobs only.
        let owner = Actor {
            user_id: preference.user_id,
            role: Role::Therapist,
        };
        let mut finished = Vec::new();
        for status in [JobStatus::Completed, JobStatus::Failed] {
            finished.extend(
                self.engine
                    .list_jobs(&owner, Some(status), None, 500)?
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
