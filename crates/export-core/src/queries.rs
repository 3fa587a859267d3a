//! Read-only questions a server asks the engine, each with its authorization: a page of the
//! caller's jobs, the audit trail (administrators only), export statistics (administrators see
//! everyone's, therapists their own), and whether the database answers.

use chrono::{DateTime, Duration, Utc};
use export_domain::{AuditEntry, ExportJob, JobStatus, Role};
use export_store::{audit, jobs};
use uuid::Uuid;

use crate::engine::{Actor, EngineError, ExportEngine};
use crate::metrics::{ExportStats, SLOWEST, stats_from};

/// Which of the caller's jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    pub status: Option<JobStatus>,
    pub patient_id: Option<Uuid>,
    /// 1 to 1000; the seed platform's default is 100.
    pub limit: i64,
    /// The `(created_at, id)` of the last job of the previous page.
    pub before: Option<(DateTime<Utc>, Uuid)>,
}

/// Which audit entries to read.
pub type AuditQuery = audit::AuditFilter;

impl ExportEngine {
    /// A page of `actor`'s jobs, newest first.
    pub fn jobs_page(
        &self,
        actor: &Actor,
        query: &JobQuery,
    ) -> Result<Vec<ExportJob>, EngineError> {
        let mut conn = self.store().connection()?;
        let filter = jobs::JobFilter {
            status: query.status,
            patient_id: query.patient_id,
            limit: query.limit.clamp(1, 1000),
            before: query.before,
            ..jobs::JobFilter::of_user(actor.user_id)
        };
        Ok(jobs::list_jobs(&mut conn, &filter)?)
    }

    /// Audit entries in chain order; administrators only.
    pub fn audit_entries(
        &self,
        actor: &Actor,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEntry>, EngineError> {
        if actor.role != Role::Admin {
            return Err(EngineError::Forbidden(
                "only administrators read the audit trail",
            ));
        }
        let mut conn = self.store().connection()?;
        Ok(audit::list(&mut conn, query)?)
    }

    /// Statistics of the jobs created in the `window` before `now`: everyone's for an
    /// administrator, a therapist's own for a therapist.
    pub fn stats(
        &self,
        actor: &Actor,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Result<ExportStats, EngineError> {
        let only = match actor.role {
            Role::Admin => None,
            Role::Therapist => Some(actor.user_id),
            Role::Patient => {
                return Err(EngineError::Forbidden("patients have no export statistics"));
            }
        };
        let since = now - window;
        let mut conn = self.store().connection()?;
        let aggregates = jobs::aggregate_created_since(&mut conn, since, only, SLOWEST)?;
        Ok(stats_from(since, aggregates))
    }

    /// Jobs by status across the queue, for metrics.
    pub fn queue_counts(&self) -> Result<Vec<(JobStatus, i64)>, EngineError> {
        let mut conn = self.store().connection()?;
        Ok(jobs::count_jobs_by_status(&mut conn)?)
    }

    /// Of `user_id`'s granted export requests since `since`, when the `n`th newest was made;
    /// `None` when there were fewer. From the append-only audit trail, so deleting jobs gives no
    /// request back.
    pub fn nth_latest_submission(
        &self,
        user_id: Uuid,
        since: DateTime<Utc>,
        n: i64,
    ) -> Result<Option<DateTime<Utc>>, EngineError> {
        let mut conn = self.store().connection()?;
        Ok(audit::nth_latest_request_since(
            &mut conn, user_id, since, n,
        )?)
    }

    /// The job `actor` submitted under idempotency `key`, if any.
    pub fn job_by_idempotency_key(
        &self,
        actor: &Actor,
        key: &str,
    ) -> Result<Option<ExportJob>, EngineError> {
        let mut conn = self.store().connection()?;
        Ok(jobs::find_by_idempotency_key(
            &mut conn,
            actor.user_id,
            key,
        )?)
    }

    /// Whether the database answers.
    pub fn check_ready(&self) -> Result<(), EngineError> {
        let mut conn = self.store().connection()?;
        jobs::count_jobs_by_status(&mut conn)?;
        Ok(())
    }
}
