//! The closed vocabularies of the engine (roles, session states, export types and formats, job
//! states, audit actions, schedules), each with one text spelling used in JSON and in the database.

use std::fmt;
use std::str::FromStr;

/// A text that names no variant of a vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}; expected one of {expected}")]
pub struct UnknownVariant {
    /// What the vocabulary is, in words ("export format").
    pub kind: &'static str,
    /// The text that was given.
    pub value: String,
    /// The accepted spellings, comma separated.
    pub expected: String,
}

macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident as $kind:literal {
            $($(#[$variant_meta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[derive(serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$variant_meta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// Every spelling, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text,)+];

            /// The spelling used in JSON, URLs and the database.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The accepted spellings, comma separated, for error messages.
            pub fn expected() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        /// In the API document: a string, one of the spellings.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some(Self::NAMES.iter().copied()))
                    .description(Some(concat!("A ", $kind, ".")))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant {
                        kind: $kind,
                        value: text.to_owned(),
                        expected: Self::expected(),
                    }),
                }
            }
        }
    };
}

vocabulary! {
    /// What a user is to the practice.
    pub enum Role as "role" {
        Therapist = "therapist",
        Patient = "patient",
        Admin = "admin",
    }
}

vocabulary! {
    /// How a therapist relates to a patient.
    pub enum RelationshipType as "relationship type" {
        Primary = "primary",
        Secondary = "secondary",
    }
}

vocabulary! {
    /// Where a recorded session is in its processing; only `Processed` sessions are exported.
    pub enum SessionStatus as "session status" {
        Uploading = "uploading",
        Transcribing = "transcribing",
        Transcribed = "transcribed",
        ExtractingNotes = "extracting_notes",
        Processed = "processed",
        Failed = "failed",
    }
}

vocabulary! {
    /// Who speaks in a transcript segment.
    pub enum Speaker as "speaker" {
        Therapist = "therapist",
        Patient = "patient",
    }
}

vocabulary! {
    /// What happened to a coping strategy in a session.
    pub enum StrategyStatus as "strategy status" {
        Introduced = "introduced",
        Practiced = "practiced",
        Reviewed = "reviewed",
        Assigned = "assigned",
    }
}

vocabulary! {
    /// How serious a risk flag is.
    pub enum RiskSeverity as "risk severity" {
        Low = "low",
        Medium = "medium",
        High = "high",
    }
}

vocabulary! {
    /// Where a treatment goal stands.
    pub enum GoalStatus as "goal status" {
        Active = "active",
        Achieved = "achieved",
        Paused = "paused",
    }
}

vocabulary! {
    /// What an export holds.
    pub enum ExportType as "export type" {
        SessionNotes = "session_notes",
        ProgressReport = "progress_report",
        TreatmentSummary = "treatment_summary",
        FullRecord = "full_record",
        Dataset = "dataset",
    }
}

vocabulary! {
    /// The file format of an export.
    pub enum ExportFormat as "export format" {
        Pdf = "pdf",
        Docx = "docx",
        Json = "json",
        Csv = "csv",
        Xlsx = "xlsx",
    }
}

vocabulary! {
    /// The life of an export job: pending → processing → completed | failed | cancelled, and a
    /// completed job later expired.
    pub enum JobStatus as "job status" {
        Pending = "pending",
        Processing = "processing",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
        Expired = "expired",
    }
}

vocabulary! {
    /// What an audit entry records.
    pub enum AuditAction as "audit action" {
        Requested = "requested",
        Created = "created",
        Downloaded = "downloaded",
        Deleted = "deleted",
        Expired = "expired",
        Shared = "shared",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

vocabulary! {
    /// Whether the audited action went through.
    pub enum AuditOutcome as "audit outcome" {
        Success = "success",
        Denied = "denied",
        Error = "error",
    }
}

vocabulary! {
    /// How often a scheduled report runs.
    pub enum ScheduleType as "schedule type" {
        Daily = "daily",
        Weekly = "weekly",
        Monthly = "monthly",
        Cron = "cron",
    }
}

vocabulary! {
    /// Where one due time of a scheduled report stands.
    pub enum RunStatus as "run status" {
        /// The due time is claimed; the job is being submitted.
        Submitting = "submitting",
        /// The export job exists (stored reports end here).
        Submitted = "submitted",
        /// The engine refused the export (the owner may no longer make it).
        Refused = "refused",
        /// The job is done or running; the email is still to go out.
        Delivering = "delivering",
        Delivered = "delivered",
        /// Every delivery attempt failed; `error_message` says why.
        DeliveryFailed = "delivery_failed",
    }
}

vocabulary! {
    /// Where an email notification stands.
    pub enum NotificationStatus as "notification status" {
        Pending = "pending",
        Sent = "sent",
        Failed = "failed",
    }
}

vocabulary! {
    /// Where a scheduled report goes.
    pub enum DeliveryMethod as "delivery method" {
        Storage = "storage",
        Email = "email",
    }
}

vocabulary! {
    /// A clinical note layout that session notes can be filled into.
    pub enum NoteLayout as "note layout" {
        Soap = "soap",
        Dap = "dap",
        Birp = "birp",
        ProgressNote = "progress_note",
    }
}

vocabulary! {
    /// Why a treatment summary is written; it changes what the summary includes.
    pub enum SummaryPurpose as "purpose" {
        Insurance = "insurance",
        Transfer = "transfer",
        Records = "records",
    }
}

impl ExportType {
    /// The formats an export of this type can be written in.
    pub const fn formats(self) -> &'static [ExportFormat] {
        use ExportFormat::*;
        match self {
            ExportType::SessionNotes => &[Pdf, Docx, Json, Csv, Xlsx],
            ExportType::ProgressReport | ExportType::TreatmentSummary => &[Pdf, Docx, Json],
            ExportType::FullRecord => &[Json, Pdf],
            ExportType::Dataset => &[Csv, Json, Xlsx, Pdf],
        }
    }

    /// Whether a document template can lay this type out: every type but datasets, which are
    /// tables.
    pub const fn takes_template(self) -> bool {
        !matches!(self, ExportType::Dataset)
    }

    /// Whether this type can be written in `format`.
    pub fn allows(self, format: ExportFormat) -> bool {
        self.formats().contains(&format)
    }

    /// The keys `include_sections` accepts for this type (empty where it has no sections).
    pub const fn section_keys(self) -> &'static [&'static str] {
        match self {
            ExportType::SessionNotes | ExportType::Dataset => &[],
            ExportType::ProgressReport => &[
                "patient_info",
                "treatment_goals",
                "goal_progress",
                "assessments",
                "session_summary",
                "clinical_observations",
                "recommendations",
            ],
            ExportType::TreatmentSummary => &[
                "patient_info",
                "diagnosis",
                "treatment_plan",
                "interventions",
                "session_statistics",
                "progress_metrics",
                "clinical_observations",
                "prognosis",
            ],
            ExportType::FullRecord => &[
                "demographics",
                "treatment_plans",
                "diagnoses",
                "goals",
                "sessions",
                "notes",
                "assessments",
                "timeline",
                "attachments",
                "transcripts",
            ],
        }
    }

    /// Whether section `key` is included when a request does not say: every section but the
    /// full record's transcripts, which are the most sensitive text a record holds and go only
    /// when asked for.
    pub fn section_default(self, key: &str) -> bool {
        !(matches!(self, ExportType::FullRecord) && key == "transcripts")
    }

    /// The path segment under `/api/v1/export/` that creates an export of this type.
    pub const fn path_segment(self) -> &'static str {
        match self {
            ExportType::SessionNotes => "session-notes",
            ExportType::ProgressReport => "progress-report",
            ExportType::TreatmentSummary => "treatment-summary",
            ExportType::FullRecord => "full-record",
            ExportType::Dataset => "datasets",
        }
    }
}

impl ExportFormat {
    /// The media type a download of this format is served with.
    pub const fn media_type(self) -> &'static str {
        match self {
            ExportFormat::Pdf => "application/pdf",
            ExportFormat::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            ExportFormat::Json => "application/json",
            ExportFormat::Csv => "text/csv",
            ExportFormat::Xlsx => {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            }
        }
    }

    /// Whether this format is a laid-out document (made from a template) rather than data.
    pub const fn is_document(self) -> bool {
        matches!(self, ExportFormat::Pdf | ExportFormat::Docx)
    }
}

impl JobStatus {
    /// Whether a job in this state will not change any more (except a completed job expiring).
    pub const fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Pending | JobStatus::Processing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_parses_back() {
        fn check<T: FromStr<Err = UnknownVariant> + Copy + PartialEq + fmt::Debug>(
            all: &[T],
            text: fn(T) -> &'static str,
        ) {
            for &v in all {
                assert_eq!(text(v).parse::<T>().unwrap(), v);
                let json = serde_json::to_string(&text(v)).unwrap();
                assert_eq!(json, format!("\"{}\"", text(v)));
            }
        }
        check(ExportType::ALL, ExportType::as_str);
        check(ExportFormat::ALL, ExportFormat::as_str);
        check(JobStatus::ALL, JobStatus::as_str);
        check(AuditAction::ALL, AuditAction::as_str);
        check(SessionStatus::ALL, SessionStatus::as_str);
        check(ScheduleType::ALL, ScheduleType::as_str);
        check(NoteLayout::ALL, NoteLayout::as_str);
        assert_eq!(
            serde_json::to_string(&SessionStatus::ExtractingNotes).unwrap(),
            "\"extracting_notes\""
        );
    }

    #[test]
    fn unknown_spelling_names_the_choices() {
        let err = "xml".parse::<ExportFormat>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown export format \"xml\"; expected one of pdf, docx, json, csv, xlsx"
        );
    }

    #[test]
    fn formats_per_type_follow_the_design_table() {
        assert!(ExportType::SessionNotes.allows(ExportFormat::Xlsx));
        assert!(!ExportType::ProgressReport.allows(ExportFormat::Csv));
        assert!(!ExportType::FullRecord.allows(ExportFormat::Docx));
        assert!(ExportType::Dataset.allows(ExportFormat::Pdf));
    }
}
