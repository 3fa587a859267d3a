//! The engine's own records: export jobs, templates, scheduled reports and audit entries, as they
//! are stored and handed between layers.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::vocabulary::{
    AuditAction, AuditOutcome, DeliveryMethod, ExportFormat, ExportType, JobStatus, ScheduleType,
};

/// Rounds a timestamp down to microseconds, the finest precision both databases keep, so a record
/// reads back equal to what was written (and an audit entry hashes the same after a round trip).
pub fn to_storage_precision(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// One export, from request to file to expiry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportJob {
    pub id: Uuid,
    /// Who asked for the export and may download it.
    pub user_id: Uuid,
    pub patient_id: Option<Uuid>,
    pub template_id: Option<Uuid>,
    pub export_type: ExportType,
    pub format: ExportFormat,
    pub status: JobStatus,
    /// The validated request, as JSON.
    pub parameters: serde_json::Value,
    /// A client's key that makes resubmitting the same request return the same job.
    pub idempotency_key: Option<String>,
    /// Where the file lives in the file store; built from the job id only.
    pub file_key: Option<String>,
    pub file_size_bytes: Option<i64>,
    pub sha256: Option<String>,
    /// The file's own encryption key, wrapped by the master key; cleared when the file expires.
    pub wrapped_key: Option<String>,
    pub row_count: Option<i64>,
    pub error_message: Option<String>,
    pub progress_percent: i32,
    pub attempts: i32,
    pub max_attempts: i32,
    /// The worker holding the job, and until when.
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Not claimed before this instant (backoff after a failed attempt).
    pub run_after: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ExportJob {
    /// A job just submitted: pending, claimable from `now`, nothing produced yet.
    #[allow(clippy::too_many_arguments)]
    pub fn pending(
        id: Uuid,
        user_id: Uuid,
        patient_id: Option<Uuid>,
        export_type: ExportType,
        format: ExportFormat,
        parameters: serde_json::Value,
        max_attempts: i32,
        now: DateTime<Utc>,
    ) -> ExportJob {
        let now = to_storage_precision(now);
        ExportJob {
            id,
            user_id,
            patient_id,
            template_id: None,
            export_type,
            format,
            status: JobStatus::Pending,
            parameters,
            idempotency_key: None,
            file_key: None,
            file_size_bytes: None,
            sha256: None,
            wrapped_key: None,
            row_count: None,
            error_message: None,
            progress_percent: 0,
            attempts: 0,
            max_attempts,
            lease_owner: None,
            lease_expires_at: None,
            run_after: now,
            started_at: None,
            completed_at: None,
            expires_at: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A document template: minijinja (Jinja2) source that renders to the engine's HTML subset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExportTemplate {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub export_type: ExportType,
    pub format: ExportFormat,
    pub template_content: String,
    pub include_sections: BTreeMap<String, bool>,
    /// Shipped with the engine rather than written by a user; such templates have no creator.
    pub is_system: bool,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// When a scheduled report runs, in the owner's time zone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Local time of day, "HH:MM".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub time: Option<String>,
    /// 0 = Monday … 6 = Sunday, for weekly schedules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 6)]
    pub day_of_week: Option<u8>,
    /// 1 … 31, for monthly schedules; past a short month's end it runs on the last day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 31)]
    pub day_of_month: Option<u8>,
    /// A five-field cron expression, for cron schedules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
}

/// A report that runs by itself on a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduledReport {
    pub id: Uuid,
    pub user_id: Uuid,
    pub template_id: Uuid,
    pub patient_id: Option<Uuid>,
    pub schedule_type: ScheduleType,
    pub schedule_config: ScheduleConfig,
    /// IANA time zone the schedule's local times are in.
    pub timezone: String,
    /// The parameters as sent (see `ScheduleParameters`).
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    pub delivery_method: DeliveryMethod,
    pub email_recipients: Vec<String>,
    /// Attach the file to the email instead of sending only a link (audited as "shared").
    pub attach_file: bool,
    pub is_active: bool,
    pub last_run_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An audit entry before it joins the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewAuditEntry {
    pub id: Uuid,
    pub export_job_id: Option<Uuid>,
    /// The actor.
    pub user_id: Option<Uuid>,
    pub patient_id: Option<Uuid>,
    pub action: AuditAction,
    pub outcome: AuditOutcome,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// An audit entry in the chain: its place, the hash of the entry before it, and its own hash over
/// its content and that previous hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Place in the chain.
    pub sequence: i64,
    #[serde(flatten)]
    pub entry: NewAuditEntry,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub prev_hash: String,
    /// SHA-256 over `prev_hash`, `sequence` and the entry.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub entry_hash: String,
}

/// One due time of a scheduled report, and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleRun {
    pub id: Uuid,
    pub schedule_id: Uuid,
    pub due_at: DateTime<Utc>,
    /// Earlier due times missed (while no scheduler ran) and coalesced into this run.
    #[schema(minimum = 0)]
    pub skipped: i32,
    pub export_job_id: Option<Uuid>,
    pub status: crate::RunStatus,
    pub delivery_attempts: i32,
    pub next_delivery_at: Option<DateTime<Utc>>,
    /// Why the export was refused or the delivery failed; ids and SMTP codes only.
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Whether a user wants an email when one of their exports completes or fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NotificationPreference {
    pub user_id: Uuid,
    pub email: String,
    pub on_completed: bool,
    pub on_failed: bool,
    pub updated_at: DateTime<Utc>,
}

/// The email about one finished job, sent at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub export_job_id: Uuid,
    pub user_id: Uuid,
    pub status: crate::NotificationStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
