//! The `ExportEngine`: submit an export on behalf of a user, let a worker produce it, and hand the
//! file back to its owner, with every step audited. Authorization lives here: a therapist exports
//! only patients they actively care for and sees only their own jobs; patients export nothing.
//! Document templates (`templates`) are managed through the engine too, and who a caller is
//! (`identity`) is decided from the records.

mod access;
mod identity;
mod templates;

use std::io::Cursor;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};
use export_domain::{
    AuditAction, AuditOutcome, ExportJob, FieldError, JobStatus, NewAuditEntry, Role,
    ValidationErrors,
};
use export_render::{Sandbox, TemplateLimits};
use export_store::{Store, StoreError, audit, jobs};
use uuid::Uuid;

use crate::dataset::{
    Audience, Dataset, DatasetError, DatasetQuery, DatasetRegistry, PATIENT_FILTER, check_filters,
};
use crate::gather::GatherError;
use crate::links::{LinkError, LinkSigner};
pub use crate::produce::ExportRequest;
use crate::produce::{ProduceError, Producer};
use crate::source::{ClinicalSource, SourceError};
use crate::storage::{FileKey, FileStore, StorageError};
pub use access::{AuditTrailExport, ReadChannel};
pub use identity::IdentityError;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Uuid,
    pub role: Role,
}

/// Where a request came from, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct RequestOrigin {
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// Why the engine refused or failed. Ids only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A verified token that names no known user, or claims a role the records do not hold.
    #[error("not identified: {0}")]
    Unidentified(IdentityError),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("invalid request: {0}")]
    Invalid(#[from] ValidationErrors),
    #[error("export job {0} does not exist")]
    JobNotFound(Uuid),
    /// No such template, or one the actor may not see (another user's).
    #[error("template {0} does not exist")]
    TemplateNotFound(Uuid),
    /// A scheduled report still uses the template, so it cannot be deleted.
    #[error("template {0} is used by a scheduled report; remove the schedule first")]
    TemplateInUse(Uuid),
    /// A stored template that cannot lay out a document: deleted after an export named it, or
    /// failing to render. The reason names lines, never values.
    #[error("template {id} cannot be used: {reason}")]
    TemplateUnusable { id: Uuid, reason: String },
    #[error("export job {id} is {status}; only completed jobs can be downloaded")]
    NotReady { id: Uuid, status: JobStatus },
    /// The requester already asked for `limit` exports in the past hour; the next may come in
    /// `retry_after_seconds`.
    #[error("at most {limit} exports an hour may be requested")]
    TooManyExports {
        limit: u32,
        retry_after_seconds: u64,
    },
    #[error(transparent)]
    Gather(#[from] GatherError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("rendering failed: {0}")]
    Render(String),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
}

impl EngineError {
    /// Whether the engine's database or the clinical source could not be reached, so the same
    /// call may succeed later (see `StoreError::is_unavailable`).
    pub fn is_unavailable(&self) -> bool {
        match self {
            EngineError::Store(err) => err.is_unavailable(),
            EngineError::Source(err) => err.is_unavailable(),
            _ => false,
        }
    }
}

/// How long a job waits after failed attempt `attempts`: 10 s doubling with each attempt (up to
/// about three hours), spread by ±25% jitter so that jobs failing together do not retry together.
fn retry_backoff(attempts: i32) -> Duration {
    let base = 10_000i64 * 2i64.pow(attempts.clamp(1, 10) as u32 - 1);
    let spread = (Uuid::new_v4().as_u128() % 501) as i64 - 250; // -250..=250 thousandths
    Duration::milliseconds(base + base * spread / 1000)
}

fn invalid(field: &str, message: impl Into<String>) -> EngineError {
    EngineError::Invalid(ValidationErrors {
        errors: vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }],
    })
}

impl From<ProduceError> for EngineError {
    fn from(err: ProduceError) -> Self {
        match err {
            ProduceError::Gather(err) => EngineError::Gather(err),
            ProduceError::Render(reason) => EngineError::Render(reason),
            // The engine's message may quote a value of the records: keep only the line.
            ProduceError::CustomTemplate(err) => EngineError::Render(format!(
                "the custom template failed{}",
                err.line
                    .map(|l| format!(" at line {l}"))
                    .unwrap_or_default()
            )),
        }
    }
}

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long a completed file is kept.
    pub retention: Duration,
    /// How long a worker holds a job before another may take it over.
    pub lease: Duration,
    pub max_attempts: i32,
    /// What one render of a custom template may cost, at save, at preview and in an export.
    pub template_limits: TemplateLimits,
    /// The child process custom templates render in; `None` renders them in this process under
    /// fuel alone (see `export_render::sandbox` for what that leaves open).
    pub template_sandbox: Option<Sandbox>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            retention: Duration::days(7),
            lease: Duration::minutes(5),
            max_attempts: 3,
            template_limits: TemplateLimits::default(),
            template_sandbox: None,
        }
    }
}

/// The engine another service embeds.
pub struct ExportEngine {
    store: Store,
    files: Arc<dyn FileStore>,
    source: Arc<dyn ClinicalSource>,
    producer: Producer,
    /// Where the expiry pass moves files instead of deleting them, when set.
    archive: Option<Arc<dyn FileStore>>,
    datasets: DatasetRegistry,
    links: Option<LinkSigner>,
    config: EngineConfig,
}

impl std::fmt::Debug for ExportEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportEngine")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn render_error(err: impl std::fmt::Display) -> EngineError {
    EngineError::Render(err.to_string())
}

impl ExportEngine {
    /// An engine over `store`, keeping files in `files` and reading records from `source`. PDF
    /// output uses the system fonts when they are installed.
    pub fn new(
        store: Store,
        files: Arc<dyn FileStore>,
        source: Arc<dyn ClinicalSource>,
        config: EngineConfig,
    ) -> ExportEngine {
        ExportEngine {
            datasets: DatasetRegistry::built_in(source.clone(), store.clone()),
            store,
            files,
            source,
            producer: Producer::with_templates(&config),
            archive: None,
            links: None,
            config,
        }
    }

    /// Runs `work` in a transaction, again when a concurrent writer took the audit place it
    /// wanted (SQLite; PostgreSQL queues audit writers instead).
    fn transaction<T>(
        &self,
        work: impl Fn(&mut export_store::DbConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut attempt = 0;
        loop {
            match self.store.transaction(&work) {
                Err(StoreError::AuditSequenceTaken) if attempt < 16 => attempt += 1,
                Err(err) if err.is_busy() && attempt < 50 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(2 * attempt));
                }
                other => return other,
            }
        }
    }

    /// Appends one audit entry on its own.
    fn append(&self, entry: NewAuditEntry) -> Result<(), StoreError> {
        self.transaction(|conn| audit::append(conn, entry.clone()).map(|_| ()))
    }

    fn audit(
        &self,
        conn: &mut export_store::DbConnection,
        entry: NewAuditEntry,
    ) -> Result<(), StoreError> {
        audit::append(conn, entry).map(|_| ())
    }

    fn entry(
        actor: Option<Uuid>,
        job: &ExportJob,
        action: AuditAction,
        outcome: AuditOutcome,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
        metadata: serde_json::Value,
    ) -> NewAuditEntry {
        NewAuditEntry {
            id: Uuid::new_v4(),
            export_job_id: Some(job.id),
            user_id: actor,
            patient_id: job.patient_id,
            action,
            outcome,
            ip_address: origin.ip_address.clone(),
            user_agent: origin.user_agent.clone(),
            request_id: origin.request_id.clone(),
            metadata,
            created_at: now,
        }
    }

    /// The patient a request is about, if any, and whether `actor` may export it. Bad input is
    /// `Invalid`; a refusal is `Forbidden`.
    fn authorize(
        &self,
        actor: &Actor,
        request: &ExportRequest,
    ) -> Result<Option<Uuid>, EngineError> {
        let patient_id = match request {
            ExportRequest::Dataset(r) => {
                let dataset = self.dataset(&r.dataset)?;
                let audience = dataset.audience();
                match (audience, actor.role) {
                    (Audience::Therapists, Role::Therapist) | (Audience::Admins, Role::Admin) => {}
                    (Audience::Therapists, _) => {
                        return Err(EngineError::Forbidden(
                            "only therapists export this dataset",
                        ));
                    }
                    (Audience::Admins, _) => {
                        return Err(EngineError::Forbidden(
                            "only administrators export this dataset",
                        ));
                    }
                }
                let filters = check_filters(dataset.as_ref(), &r.filters)
                    .map_err(|errors| ValidationErrors { errors })?;
                match (audience, filters.uuid(PATIENT_FILTER)) {
                    (Audience::Therapists, Some(patient)) => patient,
                    (Audience::Admins, patient) => return Ok(patient),
                    (Audience::Therapists, None) => return Ok(None),
                }
            }
            _ if actor.role != Role::Therapist => {
                return Err(EngineError::Forbidden(
                    "only therapists export clinical records",
                ));
            }
            ExportRequest::SessionNotes(r) => {
                let owners = self.source.session_patients(&r.session_ids)?;
                let first = owners
                    .first()
                    .map(|(_, p)| *p)
                    .ok_or(EngineError::Forbidden("the sessions do not exist"))?;
                if owners.len() != r.session_ids.len() || owners.iter().any(|(_, p)| *p != first) {
                    return Err(EngineError::Forbidden(
                        "every session must exist and belong to one patient",
                    ));
                }
                first
            }
            ExportRequest::ProgressReport(r) => r.patient_id,
            ExportRequest::TreatmentSummary(r) => r.patient_id,
            ExportRequest::FullRecord(r) => r.patient_id,
        };
        match self.source.relationship(actor.user_id, patient_id)? {
            Some(link) if link.is_active => Ok(Some(patient_id)),
            _ => Err(EngineError::Forbidden(
                "no active care relationship with this patient",
            )),
        }
    }

    /// Whether `actor` may make the export `request` asks for, as `submit` would decide, without
    /// submitting or auditing anything: for checking a scheduled report when it is saved. Returns
    /// the patient the request is about, if any.
    pub fn check_export(
        &self,
        actor: &Actor,
        request: &ExportRequest,
    ) -> Result<Option<Uuid>, EngineError> {
        self.authorize(actor, request)
    }

    /// Records that `actor` shared their completed job outside the engine (an email with the file
    /// attached, say): an audit entry "shared" with `metadata`, which must hold no PHI.
    pub fn record_share(
        &self,
        actor: &Actor,
        job_id: Uuid,
        metadata: serde_json::Value,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let job = self.job(actor, job_id)?;
        self.append(Self::entry(
            Some(actor.user_id),
            &job,
            AuditAction::Shared,
            AuditOutcome::Success,
            origin,
            now,
            metadata,
        ))?;
        Ok(())
    }

    /// The registered dataset called `name`.
    fn dataset(&self, name: &str) -> Result<&std::sync::Arc<dyn Dataset>, EngineError> {
        self.datasets.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.datasets.iter().map(|d| d.name()).collect();
            invalid(
                "dataset",
                format!("there is no such dataset; known: {}", known.join(", ")),
            )
        })
    }

    /// Adds a dataset of the embedding service's, replacing a built-in one of the same name.
    pub fn with_dataset(mut self, dataset: std::sync::Arc<dyn Dataset>) -> ExportEngine {
        self.datasets.register(dataset);
        self
    }

    /// The datasets this engine offers.
    pub fn datasets(&self) -> &DatasetRegistry {
        &self.datasets
    }

    /// The engine's database, for the read-only queries in `queries`.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Submits `request` for `actor`: a pending job, or the job already submitted with the same
    /// idempotency key. A refusal is audited too. A `template_id` in the request must name a
    /// template `actor` may use (a system template or their own) of the request's export type,
    /// else the request is `Invalid` with field `template_id`; this holds for every format, though
    /// only PDF and DOCX are laid out by it.
    pub fn submit(
        &self,
        actor: &Actor,
        request: ExportRequest,
        idempotency_key: Option<&str>,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<ExportJob, EngineError> {
        self.submit_within(actor, request, idempotency_key, None, origin, now)
    }

    /// [`submit`](Self::submit), refusing with [`EngineError::TooManyExports`] (audited as
    /// denied) when `actor` already made `per_hour` granted requests in the hour before `now`
    /// (`None` or 0: no limit). The count and the new job's insert are one transaction, queued
    /// behind every other audit writer, so parallel requests at the limit never all pass. An
    /// idempotent replay is not a new request and is never refused.
    pub fn submit_within(
        &self,
        actor: &Actor,
        request: ExportRequest,
        idempotency_key: Option<&str>,
        per_hour: Option<u32>,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<ExportJob, EngineError> {
        let per_hour = per_hour.filter(|limit| *limit > 0);
        if let Some(key) = idempotency_key {
            let mut conn = self.store.connection()?;
            if let Some(job) = jobs::find_by_idempotency_key(&mut conn, actor.user_id, key)? {
                return Ok(job);
            }
        }
        let mut job = ExportJob::pending(
            Uuid::new_v4(),
            actor.user_id,
            None,
            request.export_type(),
            request.format(),
            serde_json::to_value(&request).map_err(render_error)?,
            self.config.max_attempts,
            now,
        );
        job.idempotency_key = idempotency_key.map(str::to_owned);
        job.template_id = request.template_id();
        let authorized = self.authorize(actor, &request).and_then(|patient_id| {
            self.check_request_template(actor, &request)?;
            Ok(patient_id)
        });
        match authorized {
            Err(EngineError::Invalid(problems)) => Err(EngineError::Invalid(problems)),
            // The records could not be read: nothing was decided, and the trail is out of reach.
            Err(err) if err.is_unavailable() => Err(err),
            Ok(patient_id) => {
                job.patient_id = patient_id;
                let limited = self
                    .transaction(|conn| {
                        if let Some(limit) = per_hour {
                            // The limit-th newest request of the hour: when there is one, the next
                            // may come an hour after it.
                            audit::queue_for_append(conn)?;
                            let since = now - Duration::hours(1);
                            let nth = audit::nth_latest_request_since(
                                conn,
                                actor.user_id,
                                since,
                                i64::from(limit),
                            )?;
                            if let Some(nth) = nth {
                                return Ok(Some((limit, nth)));
                            }
                        }
                        jobs::insert_job(conn, &job)?;
                        self.audit(
                            conn,
                            Self::entry(
                                Some(actor.user_id),
                                &job,
                                AuditAction::Requested,
                                AuditOutcome::Success,
                                origin,
                                now,
                                serde_json::json!({"format": job.format}),
                            ),
                        )?;
                        Ok(None)
                    })
                    .map_err(|err| match err {
                        // The template was deleted since it was checked.
                        StoreError::ForeignKey { .. } if job.template_id.is_some() => {
                            invalid("template_id", templates::NO_SUCH_TEMPLATE)
                        }
                        err => err.into(),
                    })?;
                let Some((limit, nth)) = limited else {
                    return Ok(job);
                };
                let wait = (nth + Duration::hours(1) - now).num_seconds().max(1) as u64;
                let refusal = EngineError::TooManyExports {
                    limit,
                    retry_after_seconds: wait,
                };
                self.append(NewAuditEntry {
                    export_job_id: None,
                    ..Self::entry(
                        Some(actor.user_id),
                        &job,
                        AuditAction::Requested,
                        AuditOutcome::Denied,
                        origin,
                        now,
                        serde_json::json!({"reason": refusal.to_string()}),
                    )
                })?;
                Err(refusal)
            }
            Err(refusal) => {
                // The patient asked about, so the refusal shows in that patient's trail.
                job.patient_id = request.patient_id();
                let entry = NewAuditEntry {
                    export_job_id: None,
                    ..Self::entry(
                        Some(actor.user_id),
                        &job,
                        AuditAction::Requested,
                        AuditOutcome::Denied,
                        origin,
                        now,
                        serde_json::json!({"reason": refusal.to_string()}),
                    )
                };
                self.append(entry)?;
                Err(refusal)
            }
        }
    }

    /// A job of `actor`'s.
    pub fn job(&self, actor: &Actor, job_id: Uuid) -> Result<ExportJob, EngineError> {
        let mut conn = self.store.connection()?;
        match jobs::get_job(&mut conn, job_id)? {
            Some(job) if job.user_id == actor.user_id => Ok(job),
            _ => Err(EngineError::JobNotFound(job_id)),
        }
    }

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

    /// `actor`'s jobs, newest first.
    pub fn list_jobs(
        &self,
        actor: &Actor,
        status: Option<JobStatus>,
        patient_id: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<ExportJob>, EngineError> {
        let mut conn = self.store.connection()?;
        let filter = jobs::JobFilter {
            status,
            patient_id,
            limit,
            ..jobs::JobFilter::of_user(actor.user_id)
        };
        Ok(jobs::list_jobs(&mut conn, &filter)?)
    }

    /// Cancels `actor`'s job if it has not finished, or deletes it and its file if it has; audited
    /// either way.
    pub fn cancel_or_delete(
        &self,
        actor: &Actor,
        job_id: Uuid,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<ExportJob, EngineError> {
        let job = self.job(actor, job_id)?;
        if !job.status.is_terminal() {
            let cancelled = self.transaction(|conn| {
                if !jobs::cancel_job(conn, job.id, now)? {
                    return Ok(false);
                }
                self.audit(
                    conn,
                    Self::entry(
                        Some(actor.user_id),
                        &job,
                        AuditAction::Cancelled,
                        AuditOutcome::Success,
                        origin,
                        now,
                        serde_json::json!({}),
                    ),
                )?;
                Ok(true)
            })?;
            if cancelled {
                return self.job(actor, job_id);
            }
        }
        let job = self.job(actor, job_id)?;
        if let Some(key) = job.file_key.as_deref() {
            self.files.delete(&FileKey::parse(key)?)?;
        }
        self.transaction(|conn| {
            jobs::delete_job(conn, job.id)?;
            self.audit(
                conn,
                Self::entry(
                    Some(actor.user_id),
                    &job,
                    AuditAction::Deleted,
                    AuditOutcome::Success,
                    origin,
                    now,
                    serde_json::json!({"status": job.status}),
                ),
            )
        })?;
        Ok(job)
    }

    /// Deletes the files of completed jobs whose expiry has passed, marks them expired and audits
    /// it; with `dry_run` only counts. Returns the jobs and bytes concerned.
    pub fn expire(&self, now: DateTime<Utc>, dry_run: bool) -> Result<(u64, u64), EngineError> {
        let mut conn = self.store.connection()?;
        let due = jobs::list_expired(&mut conn, now, i64::MAX)?;
        drop(conn);
        let bytes = due.iter().filter_map(|j| j.file_size_bytes).sum::<i64>() as u64;
        if dry_run {
            return Ok((due.len() as u64, bytes));
        }
        for job in &due {
            let key = job.file_key.as_deref().map(FileKey::parse).transpose()?;
            // With an archive, the file is copied there first (re-sealed with a key of its own),
            // and the primary copy is deleted only once the archive is on record.
            let archived = match (&self.archive, &key, job.wrapped_key.as_deref()) {
                (Some(archive), Some(key), Some(wrapped)) => {
                    let mut reader = self.files.open(key, wrapped)?;
                    Some(archive.put(key, &mut reader)?)
                }
                _ => None,
            };
            if archived.is_none()
                && let Some(key) = &key
            {
                self.files.delete(key)?;
            }
            self.transaction(|conn| {
                if jobs::mark_expired(conn, job.id, now)? {
                    if let (Some(stored), Some(key)) = (&archived, &key) {
                        jobs::record_archive(
                            conn,
                            job.id,
                            key.as_str(),
                            &stored.wrapped_key,
                            stored.size_bytes as i64,
                            now,
                        )?;
                    }
                    self.audit(
                        conn,
                        Self::entry(
                            None,
                            job,
                            AuditAction::Expired,
                            AuditOutcome::Success,
                            &RequestOrigin::default(),
                            now,
                            serde_json::json!({"bytes": job.file_size_bytes, "archived": archived.is_some()}),
                        ),
                    )?;
                }
                Ok(())
            })?;
            if archived.is_some()
                && let Some(key) = &key
            {
                self.files.delete(key)?;
            }
        }
        Ok((due.len() as u64, bytes))
    }

    /// Makes the expiry pass move expired files to `archive` (audited as expired, `archived`)
    /// instead of deleting them. Archived files are out of users' reach; `jobs::archived_file`
    /// names the copy for whoever must retrieve it.
    pub fn with_archive(mut self, archive: Arc<dyn FileStore>) -> ExportEngine {
        self.archive = Some(archive);
        self
    }
}
