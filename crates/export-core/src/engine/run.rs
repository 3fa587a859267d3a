//! Running a job: claim it under a lease, produce it while a heartbeat renews the lease, store
//! the file and complete the job, or count the failed attempt and back off.

use super::*;

/// How long a job waits after failed attempt `attempts`: 10 s doubling with each attempt (up to
/// about three hours), spread by ±25% jitter so that jobs failing together do not retry together.
fn retry_backoff(attempts: i32) -> Duration {
    let base = 10_000i64 * 2i64.pow(attempts.clamp(1, 10) as u32 - 1);
    let spread = (Uuid::new_v4().as_u128() % 501) as i64 - 250; // -250..=250 thousandths
    Duration::milliseconds(base + base * spread / 1000)
}

impl ExportEngine {
    /// Claims and produces the next job as `worker`; `None` when there is nothing to do. While it
    /// works, a heartbeat renews the lease every third of its length and records progress, so a
    /// long render keeps its job and a dead worker's job is taken over once the lease lapses.
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
        let started = std::time::Instant::now();
        // Times follow the caller's clock: `now` is when the job was claimed.
        let clock = || now + Duration::from_std(started.elapsed()).unwrap_or_default();
        let progress = AtomicI32::new(0);
        let finished = (Mutex::new(false), Condvar::new());
        let lost = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            scope.spawn(|| self.heartbeat(&job, worker, &clock, &progress, &finished, &lost));
            let result = self.produce(&job, &progress);
            *finished.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
            finished.1.notify_all();
            result
        });
        let now = clock();
        // A job the heartbeat found lost is not stored; one lost since is caught by
        // `complete_job`, which then leaves this attempt's file to be removed below.
        let still_held = !lost.load(Ordering::SeqCst);
        if !still_held {
            let mut conn = self.store.connection()?;
            return Ok(jobs::get_job(&mut conn, job.id)?);
        }
        match result {
            Ok((bytes, rows)) => {
                let key = FileKey::for_attempt(job.id, job.attempts, job.format);
                let stored = self.files.put(&key, &mut Cursor::new(bytes))?;
                let file = jobs::FinishedFile {
                    file_key: key.as_str().to_owned(),
                    size_bytes: stored.size_bytes as i64,
                    sha256: stored.sha256.clone(),
                    row_count: rows as i64,
                    wrapped_key: stored.wrapped_key,
                };
                let done = self.transaction(|conn| {
                    let Some(done) = jobs::complete_job(conn, job.id, worker, &file, now, now + self.config.retention)? else {
                        return Ok(None); // the lease was lost: the holder completes it
                    };
                    let metadata = serde_json::json!({"format": done.format, "bytes": file.size_bytes, "rows": rows, "attempts": done.attempts});
                    self.audit(conn, Self::entry(None, &done, AuditAction::Created, AuditOutcome::Success, &RequestOrigin::default(), now, metadata))?;
                    Ok(Some(done))
                })?;
                match done {
                    Some(done) => Ok(Some(done)),
                    None => {
                        // Cancelled, released or taken over between the last renewal and now:
                        // this attempt's file is nobody's.
                        self.files.delete(&key)?;
                        let mut conn = self.store.connection()?;
                        Ok(jobs::get_job(&mut conn, job.id)?)
                    }
                }
            }
            Err(err) => {
                let backoff = retry_backoff(job.attempts);
                // Another attempt does not bring a deleted template back, nor mend one that
                // fails on these records.
                let for_good = matches!(err, EngineError::TemplateUnusable { .. });
                let message = err.to_string();
                let failed = self.transaction(|conn| {
                    let after = if for_good {
                        jobs::fail_job(conn, job.id, worker, &message, now)?
                    } else {
                        jobs::fail_attempt(conn, job.id, worker, &message, now, now + backoff)?
                    };
                    if let Some(after) = after.as_ref().filter(|j| j.status == JobStatus::Failed) {
                        self.audit(
                            conn,
                            Self::entry(
                                None,
                                after,
                                AuditAction::Failed,
                                AuditOutcome::Error,
                                &RequestOrigin::default(),
                                now,
                                serde_json::json!({"error": message}),
                            ),
                        )?;
                    }
                    Ok(after)
                })?;
                Ok(failed.or(Some(job)))
            }
        }
    }

    /// Renders a claimed job into bytes; returns them with the row count.
    fn produce(
        &self,
        job: &ExportJob,
        progress: &AtomicI32,
    ) -> Result<(Vec<u8>, u64), EngineError> {
        let request: ExportRequest =
            serde_json::from_value(job.parameters.clone()).map_err(render_error)?;
        progress.store(10, Ordering::Relaxed);
        let mut out = Cursor::new(Vec::new());
        let rows = match &request {
            ExportRequest::Dataset(r) => self.produce_dataset(job, r, &mut out)?,
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
                    })?
            }
        };
        progress.store(90, Ordering::Relaxed);
        Ok((out.into_inner(), rows))
    }

    /// Renews `worker`'s lease on `job` every third of the lease until `finished`, recording
    /// progress; sets `lost` when the job is no longer this worker's (cancelled, released, or
    /// taken over after a lapse).
    fn heartbeat(
        &self,
        job: &ExportJob,
        worker: &str,
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
                        Ok(jobs::renew_lease(
                            &mut conn,
                            job.id,
                            worker,
                            until,
                            progress.load(Ordering::Relaxed),
                        )?)
                    });
            match renewed {
                Ok(true) => {}
                Ok(false) => {
                    log::info!("job {} is no longer held by worker {worker}", job.id);
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
                // A database hiccup: the next beat tries again, well within the lease.
                Err(err) => log::warn!("renewing the lease on job {} failed: {err}", job.id),
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
        out: &mut Cursor<Vec<u8>>,
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
        Ok(self
            .producer
            .write_rows(request.format, dataset.name(), rows.as_mut(), out)?)
    }
}
