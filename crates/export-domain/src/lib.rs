//! Plain types of the export engine: the clinical records it reads, the vocabulary of exports
//! (types, formats, job states, audit actions, schedules), the persisted export records, and the
//! validated request types with the rules of the seed platform.
//!
//! Architecture invariant: this crate does no IO. No database, no files, no network and no clock:
//! every timestamp comes from the caller.

mod audit;
mod clinical;
pub mod random;
mod records;
mod request;
pub mod schema;
mod vocabulary;

pub use audit::{GENESIS_HASH, chain_hash, to_hex};
pub use clinical::{
    ActionItem, Assessment, Diagnosis, ExtractedNotes, Goal, GoalListing, GoalsPage, Practice,
    RiskFlag, SessionListing, SessionsPage, Strategy, TherapistPatient, TherapySession,
    TranscriptSegment, TreatmentPlan, User, full_name, severity_bands, severity_of,
};
pub use records::{
    AuditEntry, ExportJob, ExportTemplate, NewAuditEntry, Notification, NotificationPreference,
    ScheduleConfig, ScheduleRun, ScheduledReport, to_storage_precision,
};
pub use request::{
    DatasetInput, DatasetRequest, DateRange, DateRangeInput, EMAIL_PATTERN, FieldError,
    FullRecordInput, FullRecordRequest, ProgressReportInput, ProgressReportRequest,
    ScheduleConfigInput, ScheduledReportInput, ScheduledReportRequest, SessionNoteOptions,
    SessionNotesInput, SessionNotesRequest, TemplateInput, TemplateRequest, TreatmentSummaryInput,
    TreatmentSummaryRequest, ValidationErrors, is_email_address, optional_whole_number,
    whole_number,
};
pub use vocabulary::{
    AuditAction, AuditOutcome, DeliveryMethod, ExportFormat, ExportType, GoalStatus, JobStatus,
    NoteLayout, NotificationStatus, RelationshipType, RiskSeverity, Role, RunStatus, ScheduleType,
    SessionStatus, Speaker, StrategyStatus, SummaryPurpose, UnknownVariant,
};
