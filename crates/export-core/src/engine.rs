//! The `ExportEngine`: submit an export on behalf of a user, let a worker produce it, and hand the
//! file back to its owner, with every step audited. Authorization lives here: a therapist exports
//! only patients they actively care for and sees only their own jobs; patients export nothing.
//! Document templates (`templates`) are managed through the engine too, and who a caller is
//! (`identity`) is decided from the records.

mod access;
mod ending;
mod identity;
mod run;
mod submit;
mod templates;

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
use crate::storage::{FileKey, FileStore, Listed, StorageError, Stored};
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

impl RequestOrigin {
    /// An audit entry of this request about nobody yet: the caller names the job, user and
    /// patient.
    fn entry(
        &self,
        action: AuditAction,
        outcome: AuditOutcome,
        now: DateTime<Utc>,
        metadata: serde_json::Value,
    ) -> NewAuditEntry {
        NewAuditEntry {
            id: Uuid::new_v4(),
            export_job_id: None,
            user_id: None,
            patient_id: None,
            action,
            outcome,
            ip_address: self.ip_address.clone(),
            user_agent: self.user_agent.clone(),
            request_id: self.request_id.clone(),
            metadata,
            created_at: now,
        }
    }
}

/// Why the engine refused or failed. Ids only.
#[derive(Debug, thiserror::Error)]
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
    /// An update would change a template's export type, which is fixed at creation.
    #[error(
        "a template's export type cannot change (it lays out {stored} exports); create a new template instead"
    )]
    TemplateTypeFixed { stored: export_domain::ExportType },
    /// The actor already has a template of this name.
    #[error("a template of this name exists")]
    TemplateNameTaken,
    /// No dataset of this name is registered.
    #[error("there is no dataset {name:?}; known: {known}")]
    DatasetNotFound { name: String, known: String },
    /// A scheduled report still uses the template, so it cannot be deleted.
    #[error("template {0} is used by a scheduled report; remove the schedule first")]
    TemplateInUse(Uuid),
    /// A stored template that cannot lay out a document: deleted after an export named it, or
    /// failing to render. The reason names lines, never values.
    #[error("template {id} cannot be used: {reason}")]
    TemplateUnusable { id: Uuid, reason: String },
    /// The `Idempotency-Key` already names a job of the caller's made from a different request.
    #[error("the Idempotency-Key {key:?} was used for a different request")]
    IdempotencyKeyReused { key: String },
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
    /// How long a stored file no completed job points to (or an unfinished write's temporary)
    /// is left alone before the expiry pass sweeps it away: long enough that no write or commit
    /// in progress is ever taken for a leftover.
    pub leftover_grace: Duration,
    /// The practice's name and address, printed in every page's footer of a laid-out document.
    pub practice: Option<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            retention: Duration::days(7),
            lease: Duration::minutes(5),
            max_attempts: 3,
            template_limits: TemplateLimits::default(),
            template_sandbox: None,
            leftover_grace: Duration::days(1),
            practice: None,
        }
    }
}

/// A signed download link from [`ExportEngine::sign_link`], not yet recorded as shared.
#[derive(Clone)]
pub struct SignedLink {
    /// The token for `?token=`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    /// The job as it was read when the link was signed.
    pub job: ExportJob,
}

impl std::fmt::Debug for SignedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedLink")
            .field("job", &self.job.id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What one expiry pass did (or, dry, would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// Jobs expired.
    pub expired: u64,
    /// The bytes of their files.
    pub bytes: u64,
    /// Jobs that could not be expired this pass (logged by id; tried again next pass).
    pub failed: u64,
    /// Leftovers removed: stored files no completed job points to and temporaries of
    /// unfinished writes, all older than `EngineConfig::leftover_grace`.
    pub swept: u64,
    /// Leftovers that could not be removed, or sweeps that could not list them (logged).
    pub sweep_failed: u64,
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
            export_job_id: Some(job.id),
            user_id: actor,
            patient_id: job.patient_id,
            ..origin.entry(action, outcome, now, metadata)
        }
    }

    /// What the worker records of `job` on its owner's behalf (created, failed): no request.
    fn worker_entry(
        job: &ExportJob,
        action: AuditAction,
        outcome: AuditOutcome,
        now: DateTime<Utc>,
        metadata: serde_json::Value,
    ) -> NewAuditEntry {
        let origin = RequestOrigin::default();
        Self::entry(
            Some(job.user_id),
            job,
            action,
            outcome,
            &origin,
            now,
            metadata,
        )
    }

    /// A request refused before it became a job: in the patient's trail, under no job.
    fn refused_request(
        actor: &Actor,
        job: &ExportJob,
        outcome: AuditOutcome,
        reason: &str,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> NewAuditEntry {
        let metadata = serde_json::json!({ "reason": reason });
        NewAuditEntry {
            export_job_id: None,
            ..Self::entry(
                Some(actor.user_id),
                job,
                AuditAction::Requested,
                outcome,
                origin,
                now,
                metadata,
            )
        }
    }

    fn dataset(&self, name: &str) -> Result<&std::sync::Arc<dyn Dataset>, EngineError> {
        self.datasets
            .get(name)
            .ok_or_else(|| EngineError::DatasetNotFound {
                name: name.to_owned(),
                known: self
                    .datasets
                    .iter()
                    .map(|d| d.name())
                    .collect::<Vec<_>>()
                    .join(", "),
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

    /// A job of `actor`'s.
    pub fn job(&self, actor: &Actor, job_id: Uuid) -> Result<ExportJob, EngineError> {
        let mut conn = self.store.connection()?;
        match jobs::get_job(&mut conn, job_id)? {
            Some(job) if job.user_id == actor.user_id => Ok(job),
            _ => Err(EngineError::JobNotFound(job_id)),
        }
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
}
