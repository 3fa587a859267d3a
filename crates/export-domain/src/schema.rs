//! Schemas for the API document where a field's Rust type is looser than what is checked: a
//! text checked into one of an export type's formats, a map of section switches. Each is built
//! from the constants the checks use, so the document states the rules the checks apply.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};

use crate::vocabulary::{ExportFormat, ExportType, SummaryPurpose};

fn words<'a>(words: impl IntoIterator<Item = &'a str>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(words))
}

fn formats(export_type: ExportType) -> RefOr<Schema> {
    words(export_type.formats().iter().map(|f| f.as_str()))
        .description(Some(format!(
            "The formats a {export_type} export can be written in."
        )))
        .into()
}

/// The `include_sections` of `export_type`: a switch per section, each on unless turned off.
fn sections(export_type: ExportType) -> RefOr<Schema> {
    let object = export_type.section_keys().iter().fold(
        ObjectBuilder::new().schema_type(Type::Object),
        |object, key| {
            let switch = ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .default(Some(serde_json::Value::Bool(
                    export_type.section_default(key),
                )));
            object.property(*key, switch)
        },
    );
    object
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .description(Some(format!(
            "Which sections of a {export_type} to include; a section left out takes its \
             default (included, but for a full record's transcripts). An unknown key is refused \
             (422)."
        )))
        .into()
}

/// Sessions of one patient, each once.
pub fn session_ids() -> RefOr<Schema> {
    let id = ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)));
    ArrayBuilder::new()
        .items(id)
        .min_items(Some(1))
        .max_items(Some(crate::request::MAX_SESSION_IDS))
        .unique_items(true)
        .description(Some("Sessions of one patient, each once."))
        .into()
}

pub fn session_notes_formats() -> RefOr<Schema> {
    formats(ExportType::SessionNotes)
}

/// Progress reports and treatment summaries take the same formats.
pub fn report_formats() -> RefOr<Schema> {
    debug_assert_eq!(
        ExportType::ProgressReport.formats(),
        ExportType::TreatmentSummary.formats()
    );
    formats(ExportType::ProgressReport)
}

pub fn full_record_formats() -> RefOr<Schema> {
    formats(ExportType::FullRecord)
}

pub fn dataset_formats() -> RefOr<Schema> {
    formats(ExportType::Dataset)
}

pub fn progress_report_sections() -> RefOr<Schema> {
    sections(ExportType::ProgressReport)
}

pub fn treatment_summary_sections() -> RefOr<Schema> {
    sections(ExportType::TreatmentSummary)
}

pub fn full_record_sections() -> RefOr<Schema> {
    sections(ExportType::FullRecord)
}

/// The export types a template can be for ([`ExportType::takes_template`]).
pub fn template_export_types() -> RefOr<Schema> {
    words(
        ExportType::ALL
            .iter()
            .filter(|t| t.takes_template())
            .map(|t| t.as_str()),
    )
    .into()
}

/// The formats a template can lay out: the document formats.
pub fn template_formats() -> RefOr<Schema> {
    words(
        ExportFormat::ALL
            .iter()
            .filter(|f| f.is_document())
            .map(|f| f.as_str()),
    )
    .into()
}

/// What each run of a scheduled report covers, resolved at the run's due time. Other members
/// are kept but not used.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // a shape for the document only
pub struct ScheduleParameters {
    /// Progress reports: the report covers the last `period_days` days, ending on the due day.
    #[schema(minimum = 1, maximum = 366, default = 30)]
    period_days: Option<i64>,
    /// Treatment summaries: why the summary is written.
    #[schema(default = "records")]
    purpose: Option<SummaryPurpose>,
}

/// An email address as [`crate::is_email_address`] takes it.
#[derive(Debug)]
pub struct Email;

impl utoipa::PartialSchema for Email {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(crate::EMAIL_PATTERN))
            .max_length(Some(254))
            .description(Some(
                "An email address: dot-separated words before the `@`, a domain of two or more \
                 labels after it.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Email {}
