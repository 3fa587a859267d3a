//! Running a job: claim it under a lease, produce it while a heartbeat renews the lease, store
//! the file and complete the job, or count the failed attempt and back off.

use super::*;

/// How long a job waits after failed attempt `attempts`: 10 s doubling with each attempt (up to
/// about three hours), spread by ±25% jitter so that jobs failing together do not retry together.
fn retry_backoff(attempts: i32) -> Duration {
    let base = 10_000i64 * 2i64.pow(attempts.clamp(1, 10) as u32 - 1);
    Duration::milliseconds(export_domain::random::jittered_ms(base, 250))
}

/// Why an attempt failed, as the job and the audit trail say it: `reason` is what the user reads
/// in the job's `error_message` (ids and causes, never record contents); `kind` is the closed word
/// the audit entry keeps instead of any error text.
struct Failure {
    reason: String,
    kind: &'static str,
    /// Another attempt cannot mend it: the job fails now, whatever attempts remain.
    for_good: bool,
}

impl Failure {
    fn of(err: &EngineError) -> Failure {
        let (kind, reason) = match err {
            // Another attempt does not bring a deleted template back, nor mend one that fails on
            // these records.
            EngineError::TemplateUnusable { .. } => {
                return Failure {
                    reason: err.to_string(),
                    kind: "template",
                    for_good: true,
                };
            }
            EngineError::Storage(StorageError::Io(io)) => {
                ("storage", format!("storage unavailable: {io}"))
            }
            EngineError::Storage(_) => ("storage", "storage unavailable".to_owned()),
            EngineError::Store(_) => (
                "database",
                "the database could not record the result".to_owned(),
            ),
            EngineError::Source(_) => (
                "records",
                "the clinical records could not be read".to_owned(),
            ),
            EngineError::Forbidden(_) | EngineError::Unidentified(_) | EngineError::Link(_) => {
                ("forbidden", err.to_string())
            }
            EngineError::Gather(_)
            | EngineError::Render(_)
            | EngineError::Dataset(_)
            | EngineError::DatasetNotFound { .. }
            | EngineError::Invalid(_) => ("render", err.to_string()),
            // Answers to a request, which a job being produced does not meet.
            EngineError::JobNotFound(_)
            | EngineError::TemplateNotFound(_)
            | EngineError::TemplateInUse(_)
            | EngineError::TemplateNameTaken
            | EngineError::TemplateTypeFixed { .. }
            | EngineError::IdempotencyKeyReused { .. }
            | EngineError::NotReady { .. }
            | EngineError::TooManyExports { .. } => ("internal", err.to_string()),
        };
        Failure {
            reason,
            kind,
            for_good: false,
        }
    }

    fn panicked() -> Failure {
        Failure {
            reason: "internal error while rendering".to_owned(),
            kind: "panic",
            for_good: false,
        }
    }
}

/// Tells the heartbeat to stop when dropped: when the render returns, and when it unwinds.
struct StopHeartbeat<'a>(&'a (Mutex<bool>, Condvar));

impl Drop for StopHeartbeat<'_> {
    fn drop(&mut self) {
        *self.0.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.0.1.notify_all();
    }
}

/// A random number that tells this attempt's file from any other's (see `FileKey::for_attempt`).
fn claim_number() -> u32 {
    export_domain::random::random_u32()
}

impl ExportEngine {
    /// Claims and produces the next job as `worker`; `None` when there is nothing to do. While it
    /// works, a heartbeat renews the lease every third of its length and records progress, so a
    /// long render keeps its job and a dead worker's job is taken over once the lease lapses.
    ///
    /// Every way an attempt can fail counts it against `max_attempts`: an error or a panic while
    /// rendering, a file that cannot be stored, a result the database cannot record. The job
    /// then backs off and retries, or fails with a reason its owner can read.
    pub fn run_next(
        &self,
        worker: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ExportJob>, EngineError> {
        let claimed = {
            let mut conn = self.store.connection()?;
            let _turn = self.store.write_turn();
            jobs::claim_next(&mut conn, worker, now, self.config.lease)?
        };
        let Some(job) = claimed else { return Ok(None) };
        let Some(lease) = jobs::Lease::of(&job) else {
            return Ok(Some(job));
        };
        let key = FileKey::for_attempt(job.id, job.attempts, claim_number(), job.format);
        let started = std::time::Instant::now();
        // Times follow the caller's clock: `now` is when the job was claimed.
        let clock = || now + Duration::from_std(started.elapsed()).unwrap_or_default();
        let progress = AtomicI32::new(0);
        let finished = (Mutex::new(false), Condvar::new());
        let lost = AtomicBool::new(false);
        let rendered = std::thread::scope(|scope| {
            let _stop = StopHeartbeat(&finished);
            scope.spawn(|| self.heartbeat(&lease, &clock, &progress, &finished, &lost));
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.produce(&job, &key, &progress)
            }))
        });
        let now = clock();
        // A job the heartbeat found lost is not stored; one lost since is caught by
        // `complete_job`, which then leaves this attempt's file to be removed below.
        if lost.load(Ordering::SeqCst) {
            let mut conn = self.store.connection()?;
            return Ok(jobs::get_job(&mut conn, job.id)?);
        }
        let outcome = match rendered {
            Ok(Ok((written, rows))) => self.store_result(&job, &lease, &key, written, rows, now),
            Ok(Err(err)) => Err(Failure::of(&err)),
            Err(_) => {
                log::error!("job {}: the render panicked", job.id);
                Err(Failure::panicked())
            }
        };
        match outcome {
            Ok(after) => Ok(Some(after)),
            Err(failure) => self.fail(&job, &lease, &failure, now).map(Some),
        }
    }

    /// Stores a rendered file under this attempt's own key and completes the job with it, audited
    /// as created on behalf of its requester. Returns the job as it now is: completed, or, when
    /// the lease was lost meanwhile, as its new holder left it (and this attempt's file removed).
    fn store_result(
        &self,
        job: &ExportJob,
        lease: &jobs::Lease,
        key: &FileKey,
        written: Box<dyn crate::storage::FileWriter>,
        rows: u64,
        now: DateTime<Utc>,
    ) -> Result<ExportJob, Failure> {
        let stored = written.finish().map_err(|err| Failure::of(&err.into()))?;
        let file = jobs::FinishedFile {
            file_key: key.as_str().to_owned(),
            size_bytes: stored.size_bytes as i64,
            sha256: stored.sha256.clone(),
            row_count: rows as i64,
            wrapped_key: stored.wrapped_key,
        };
        let done = self.transaction(|conn| {
            let expires = now + self.config.retention;
            let Some(done) = jobs::complete_job(conn, lease, &file, now, expires)? else {
                return Ok(None); // the lease was lost: the holder completes it
            };
            let metadata = serde_json::json!({
                "format": done.format, "bytes": file.size_bytes, "rows": rows,
                "attempts": done.attempts,
            });
            let entry = Self::worker_entry(
                &done,
                AuditAction::Created,
                AuditOutcome::Success,
                now,
                metadata,
            );
            self.audit(conn, entry)?;
            Ok(Some(done))
        });
        let done = match done {
            Ok(Some(done)) => return Ok(done),
            Ok(None) => None,
            Err(err) => Some(err),
        };
        // Not recorded (the lease was lost, or the commit failed): this attempt's file is
        // nobody's, and only this attempt knows its key.
        if let Err(err) = self.files.delete(key) {
            log::warn!("job {}: removing the unrecorded file failed: {err}", job.id);
        }
        match done {
            Some(err) => Err(Failure::of(&err.into())),
            None => {
                let mut conn = self
                    .store
                    .connection()
                    .map_err(|e| Failure::of(&e.into()))?;
                jobs::get_job(&mut conn, job.id)
                    .map_err(|e| Failure::of(&e.into()))?
                    .ok_or_else(|| Failure::of(&EngineError::JobNotFound(job.id)))
            }
        }
    }

    /// Counts a failed attempt: the job backs off for another, or fails for good (audited as an
    /// error, with the failure's kind and never its text). Returns the job as it now is.
    fn fail(
        &self,
        job: &ExportJob,
        lease: &jobs::Lease,
        failure: &Failure,
        now: DateTime<Utc>,
    ) -> Result<ExportJob, EngineError> {
        log::warn!(
            "job {}: attempt {} failed ({})",
            job.id,
            job.attempts,
            failure.kind
        );
        let backoff = retry_backoff(job.attempts);
        let failed = self.transaction(|conn| {
            let after = if failure.for_good {
                jobs::fail_job(conn, lease, &failure.reason, now)?
            } else {
                jobs::fail_attempt(conn, lease, &failure.reason, now, now + backoff)?
            };
            if let Some(after) = after.as_ref().filter(|j| j.status == JobStatus::Failed) {
                let metadata = serde_json::json!({
                    "reason": failure.kind, "attempts": after.attempts,
                });
                let entry = Self::worker_entry(
                    after,
                    AuditAction::Failed,
                    AuditOutcome::Error,
                    now,
                    metadata,
                );
                self.audit(conn, entry)?;
            }
            Ok(after)
        })?;
        Ok(failed.unwrap_or_else(|| job.clone()))
    }

    /// Fails, for good and audited, the jobs whose worker was lost on every attempt (their lease
    /// lapsed with no attempt left, so no worker will claim them again). Returns them, for the
    /// pool's observers. A read first, so idle workers polling do not write to find nothing.
    pub fn fail_lost_jobs(&self, now: DateTime<Utc>) -> Result<Vec<ExportJob>, EngineError> {
        {
            let mut conn = self.store.connection()?;
            if !jobs::any_lost_jobs(&mut conn, now)? {
                return Ok(Vec::new());
            }
        }
        let failed = self.transaction(|conn| {
            let failed = jobs::fail_lost_jobs(conn, now)?;
            for job in &failed {
                let metadata = serde_json::json!({
                    "reason": "worker_lost", "attempts": job.attempts,
                });
                let entry = Self::worker_entry(
                    job,
                    AuditAction::Failed,
                    AuditOutcome::Error,
                    now,
                    metadata,
                );
                self.audit(conn, entry)?;
            }
            Ok(failed)
        })?;
        for job in &failed {
            log::warn!("job {}: failed, worker lost {} times", job.id, job.attempts);
        }
        Ok(failed)
    }

    /// Renders a claimed job straight into this attempt's file in the store, never holding it
    /// whole; returns the file written but not finished (so not yet visible: dropping it leaves
    /// nothing under its key) with the row count.
    fn produce(
        &self,
        job: &ExportJob,
        key: &FileKey,
        progress: &AtomicI32,
    ) -> Result<(Box<dyn crate::storage::FileWriter>, u64), EngineError> {
        let request: ExportRequest =
            serde_json::from_value(job.parameters.clone()).map_err(render_error)?;
        progress.store(10, Ordering::Relaxed);
        let mut out =
            crate::storage::StoreOutput::for_format(self.files.create(key)?, request.format())?;
        let rendered = (|| match &request {
            ExportRequest::Dataset(r) => self.produce_dataset(job, r, &mut out),
            _ => {
                let patient_id = job
                    .patient_id
                    .ok_or(EngineError::Forbidden("the job names no patient"))?;
                // JSON, CSV and XLSX are made from the data: a template lays out documents only.
                let template = match request.template_id() {
                    Some(id) if request.format().is_document() => {
                        Some((id, self.job_template(job, id)?))
                    }
                    _ => None,
                };
                let practice = self.source.patient_records(patient_id)?;
                progress.store(30, Ordering::Relaxed);
                self.producer
                    .produce(
                        &practice,
                        &request,
                        template.as_ref().map(|(_, source)| source.as_str()),
                        job.created_at,
                        &mut out,
                    )
                    .map_err(|err| match (err, &template) {
                        (ProduceError::CustomTemplate(err), Some((id, _))) => {
                            templates::failed_to_render(*id, &err)
                        }
                        (err, _) => err.into(),
                    })
            }
        })();
        // A render stopped by the store refusing its bytes (a full disk, say) failed for the
        // storage's reason, not the render's.
        let rows = rendered.map_err(|err| out.failure().map_or(err, EngineError::Storage))?;
        let written = out.into_writer()?;
        progress.store(90, Ordering::Relaxed);
        Ok((written, rows))
    }

    /// Renews `lease` every third of the lease's length until `finished`, recording progress;
    /// sets `lost` when the job is no longer this attempt's (cancelled, released, or taken over
    /// after a lapse).
    fn heartbeat(
        &self,
        lease: &jobs::Lease,
        clock: &dyn Fn() -> DateTime<Utc>,
        progress: &AtomicI32,
        finished: &(Mutex<bool>, Condvar),
        lost: &AtomicBool,
    ) {
        let every = (self.config.lease / 3)
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(1))
            .max(std::time::Duration::from_millis(100));
        let mut done = finished.0.lock().unwrap_or_else(PoisonError::into_inner);
        while !*done {
            let (guard, wait) = finished
                .1
                .wait_timeout(done, every)
                .unwrap_or_else(PoisonError::into_inner);
            done = guard;
            if *done || !wait.timed_out() {
                continue;
            }
            let until = clock() + self.config.lease;
            let renewed =
                self.store
                    .connection()
                    .map_err(EngineError::from)
                    .and_then(|mut conn| {
                        let progress = progress.load(Ordering::Relaxed);
                        Ok(jobs::renew_lease(&mut conn, lease, until, progress)?)
                    });
            match renewed {
                Ok(true) => {}
                Ok(false) => {
                    log::info!(
                        "job {} is no longer held by worker {}",
                        lease.job_id,
                        lease.worker
                    );
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
                // A database hiccup: the next beat tries again, well within the lease.
                Err(err) => log::warn!("renewing the lease on job {} failed: {err}", lease.job_id),
            }
        }
    }

    /// Hands the jobs `worker` still holds back to the queue without counting the attempt: for a
    /// worker shutting down whose jobs did not finish in time.
    pub fn release_worker(
        &self,
        worker: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, EngineError> {
        let mut conn = self.store.connection()?;
        Ok(jobs::release_worker_jobs(&mut conn, worker, now)?)
    }

    /// Writes a dataset export, narrowing a therapist dataset to the patients its requester cares
    /// for now (a relationship may have ended since the request).
    fn produce_dataset(
        &self,
        job: &ExportJob,
        request: &export_domain::DatasetRequest,
        out: &mut crate::storage::StoreOutput,
    ) -> Result<u64, EngineError> {
        let dataset = self.dataset(&request.dataset)?;
        let filters = check_filters(dataset.as_ref(), &request.filters)
            .map_err(|errors| ValidationErrors { errors })?;
        let patients = match dataset.audience() {
            Audience::Admins => {
                let user = self.source.user(job.user_id)?;
                if user.is_none_or(|u| u.role != Role::Admin) {
                    return Err(EngineError::Forbidden(
                        "only administrators export this dataset",
                    ));
                }
                Vec::new()
            }
            Audience::Therapists => {
                let mut patients = self.source.patients_of(job.user_id)?;
                if let Some(only) = filters.uuid(PATIENT_FILTER) {
                    patients.retain(|p| *p == only);
                }
                patients
            }
        };
        let query = DatasetQuery {
            requested_by: job.user_id,
            patients: &patients,
            filters: &filters,
            generated_at: job.created_at,
        };
        let mut rows = dataset.rows(&query)?;
        let table = crate::produce::Table {
            title: dataset.name(),
            chart: dataset.chart(),
            excel: request.excel,
        };
        Ok(self
            .producer
            .write_rows(request.format, table, rows.as_mut(), out)?)
    }
}
