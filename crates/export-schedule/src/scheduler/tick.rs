//! The tick: due times turned into export jobs exactly once, runs left submitting taken over,
//! and the submission of a claimed run.

use super::*;

/// The idempotency key of a schedule's job for one due time.
fn run_key(schedule_id: Uuid, due: DateTime<Utc>) -> String {
    format!("schedule:{}:{}", schedule_id.simple(), due.timestamp())
}

impl Scheduler {
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
    pub(super) fn submit(
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
