//! Export, template and schedule requests as clients send them (`…Input`, loosely typed so every
//! problem can be reported at once) and as the engine accepts them (`…Request`, typed and checked).
//!
//! `validate` returns every problem found, each with the field it concerns, never just the first.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::records::ScheduleConfig;
use crate::vocabulary::{
    DeliveryMethod, ExportFormat, ExportType, NoteLayout, ScheduleType, SummaryPurpose,
    UnknownVariant,
};

/// The most sessions one session-notes export may name.
pub const MAX_SESSION_IDS: usize = 1000;
/// The longest template name, in characters.
pub const MAX_TEMPLATE_NAME_CHARS: usize = 100;
/// The longest template description, in characters.
pub const MAX_TEMPLATE_DESCRIPTION_CHARS: usize = 2000;
/// The largest template source, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;
/// The most email recipients of one scheduled report.
pub const MAX_EMAIL_RECIPIENTS: usize = 20;

/// One problem with a request: the field (a path such as `session_ids[2]` or
/// `schedule_config.time`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in a request; never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct ValidationErrors {
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

/// Collects problems while the typed request is built.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, ValidationErrors> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => Err(ValidationErrors { errors: self.0 }),
        }
    }

    fn required<'a>(&mut self, field: &str, text: &'a str) -> Option<&'a str> {
        let text = text.trim();
        if text.is_empty() {
            self.add(field, "is required");
            return None;
        }
        Some(text)
    }

    fn uuid(&mut self, field: &str, text: &str) -> Option<Uuid> {
        let text = self.required(field, text)?;
        match Uuid::parse_str(text) {
            Ok(id) => Some(id),
            Err(_) => {
                self.add(field, format!("{text:?} is not a valid UUID"));
                None
            }
        }
    }

    fn optional_uuid(&mut self, field: &str, text: Option<&str>) -> Result<Option<Uuid>, ()> {
        match text {
            None => Ok(None),
            Some(text) => self.uuid(field, text).map(Some).ok_or(()),
        }
    }

    fn date(&mut self, field: &str, text: &str) -> Option<NaiveDate> {
        let text = self.required(field, text)?;
        match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(date) => Some(date),
            Err(_) => {
                self.add(
                    field,
                    format!("{text:?} is not a valid date; expected YYYY-MM-DD"),
                );
                None
            }
        }
    }

    fn word<T: FromStr<Err = UnknownVariant>>(&mut self, field: &str, text: &str) -> Option<T> {
        let text = self.required(field, text)?;
        match text.parse() {
            Ok(value) => Some(value),
            Err(err) => {
                self.add(field, err.to_string());
                None
            }
        }
    }

    fn format_for(&mut self, export_type: ExportType, text: &str) -> Option<ExportFormat> {
        let format: ExportFormat = self.word("format", text)?;
        if !export_type.allows(format) {
            let allowed: Vec<&str> = export_type.formats().iter().map(|f| f.as_str()).collect();
            self.add(
                "format",
                format!(
                    "{export_type} exports cannot be {format}; expected one of {}",
                    allowed.join(", ")
                ),
            );
            return None;
        }
        Some(format)
    }

    fn date_range(&mut self, prefix: &str, start: &str, end: &str) -> Option<DateRange> {
        let start_field = format!(
            "{prefix}start{}",
            if prefix.is_empty() { "_date" } else { "" }
        );
        let end_field = format!(
            "{prefix}end{}",
            if prefix.is_empty() { "_date" } else { "" }
        );
        let start = self.date(&start_field, start);
        let end = self.date(&end_field, end);
        let (start, end) = (start?, end?);
        if start > end {
            self.add(start_field, format!("{start} is after {end_field} {end}"));
            return None;
        }
        Some(DateRange { start, end })
    }

    /// Every section of `export_type`, on unless the client turned it off.
    fn sections(
        &mut self,
        export_type: ExportType,
        given: &BTreeMap<String, bool>,
    ) -> BTreeMap<String, bool> {
        let known = export_type.section_keys();
        for key in given.keys() {
            if !known.contains(&key.as_str()) {
                self.add(
                    format!("include_sections.{key}"),
                    format!(
                        "unknown section for {export_type}; expected one of {}",
                        known.join(", ")
                    ),
                );
            }
        }
        known
            .iter()
            .map(|&key| {
                let included = given.get(key).copied();
                (
                    key.to_owned(),
                    included.unwrap_or(export_type.section_default(key)),
                )
            })
            .collect()
    }
}

/// A JSON number that is a whole number, as an `i64`: `27` and `27.0` alike (JSON Schema calls
/// both integers, and clients that hold every number as a double send the second).
pub fn whole_number(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        _ => None,
    }
}

/// Deserializes an optional whole number (see [`whole_number`]); another value is an error
/// naming what was expected.
pub fn optional_whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    let value: Option<serde_json::Value> = Option::deserialize(deserializer)?;
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value) => whole_number(&value).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!("invalid value {value}, expected a whole number"))
        }),
    }
}

/// An inclusive range of calendar dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateRange {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl DateRange {
    /// Whether `date` falls in the range.
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.start <= date && date <= self.end
    }
}

/// What a session-notes export includes besides the notes themselves. An unknown key is
/// refused (422).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionNoteOptions {
    #[schema(default = false)]
    #[serde(default)]
    pub include_transcript: bool,
    #[schema(default = true)]
    #[serde(default)]
    pub include_ai_notes: bool,
    #[schema(default = true)]
    #[serde(default)]
    pub include_action_items: bool,
}

impl SessionNoteOptions {
    const KEYS: [&'static str; 3] = [
        "include_transcript",
        "include_ai_notes",
        "include_action_items",
    ];
}

impl Default for SessionNoteOptions {
    /// The transcript is left out unless asked for: it is the most sensitive part of a session.
    fn default() -> Self {
        SessionNoteOptions {
            include_transcript: false,
            include_ai_notes: true,
            include_action_items: true,
        }
    }
}

/// A session-notes export as a client sends it. Unknown fields are refused (400 `invalid_field`); a missing required field is reported with the other problems (422).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionNotesInput {
    /// Sessions of one patient, each once.
    #[schema(required, schema_with = crate::schema::session_ids)]
    #[serde(default)]
    pub session_ids: Vec<String>,
    #[schema(required, schema_with = crate::schema::session_notes_formats)]
    #[serde(default)]
    pub format: String,
    /// A template (a system template or the caller's own, of this export type) that lays out
    /// pdf and docx output; ignored by the other formats.
    #[schema(value_type = Option<Uuid>)]
    #[serde(default)]
    pub template_id: Option<String>,
    #[schema(value_type = SessionNoteOptions)]
    #[serde(default)]
    pub options: BTreeMap<String, bool>,
    /// Fill the notes into this clinical note layout.
    #[schema(value_type = Option<NoteLayout>)]
    #[serde(default)]
    pub note_layout: Option<String>,
    /// CSV only: start the file with a UTF-8 byte order mark, so Excel opens Hebrew, Chinese and
    /// accented text correctly (other CSV readers skip it); ignored by the other formats.
    #[serde(default)]
    pub excel: bool,
}

/// A checked session-notes export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionNotesRequest {
    pub session_ids: Vec<Uuid>,
    pub format: ExportFormat,
    pub template_id: Option<Uuid>,
    pub options: SessionNoteOptions,
    pub note_layout: Option<NoteLayout>,
    /// A CSV that starts with a byte order mark, for Excel.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub excel: bool,
}

impl SessionNotesInput {
    pub fn validate(&self) -> Result<SessionNotesRequest, ValidationErrors> {
        let mut problems = Problems::default();
        let mut session_ids = Vec::with_capacity(self.session_ids.len());
        let mut seen: HashMap<Uuid, usize> = HashMap::new();
        if self.session_ids.is_empty() {
            problems.add("session_ids", "at least one session id is required");
        } else if self.session_ids.len() > MAX_SESSION_IDS {
            problems.add(
                "session_ids",
                format!(
                    "at most {MAX_SESSION_IDS} session ids are allowed in one export (got {})",
                    self.session_ids.len()
                ),
            );
        } else {
            for (index, text) in self.session_ids.iter().enumerate() {
                let field = format!("session_ids[{index}]");
                if let Some(id) = problems.uuid(&field, text) {
                    match seen.get(&id) {
                        Some(first) => {
                            problems.add(field, format!("duplicates session_ids[{first}]"))
                        }
                        None => {
                            seen.insert(id, index);
                            session_ids.push(id);
                        }
                    }
                }
            }
        }
        let format = problems.format_for(ExportType::SessionNotes, &self.format);
        let template_id = problems.optional_uuid("template_id", self.template_id.as_deref());
        let mut options = SessionNoteOptions::default();
        for (key, &on) in &self.options {
            match key.as_str() {
                "include_transcript" => options.include_transcript = on,
                "include_ai_notes" => options.include_ai_notes = on,
                "include_action_items" => options.include_action_items = on,
                _ => problems.add(
                    format!("options.{key}"),
                    format!(
                        "unknown option; expected one of {}",
                        SessionNoteOptions::KEYS.join(", ")
                    ),
                ),
            }
        }
        let note_layout = match &self.note_layout {
            None => Ok(None),
            Some(text) => problems.word("note_layout", text).map(Some).ok_or(()),
        };
        let request = match (format, template_id, note_layout) {
            (Some(format), Ok(template_id), Ok(note_layout)) => Some(SessionNotesRequest {
                session_ids,
                format,
                template_id,
                options,
                note_layout,
                excel: self.excel && format == ExportFormat::Csv,
            }),
            _ => None,
        };
        problems.finish(request)
    }
}

/// A progress-report export as a client sends it. Unknown fields are refused (400 `invalid_field`); a missing required field is reported with the other problems (422).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressReportInput {
    #[schema(required, value_type = Uuid)]
    #[serde(default)]
    pub patient_id: String,
    #[schema(required, value_type = chrono::NaiveDate)]
    #[serde(default)]
    pub start_date: String,
    /// Inclusive; not before `start_date`.
    #[schema(required, value_type = chrono::NaiveDate)]
    #[serde(default)]
    pub end_date: String,
    #[schema(required, schema_with = crate::schema::report_formats)]
    #[serde(default)]
    pub format: String,
    /// A template (a system template or the caller's own, of this export type) that lays out
    /// pdf and docx output; ignored by json.
    #[schema(value_type = Option<Uuid>)]
    #[serde(default)]
    pub template_id: Option<String>,
    #[schema(schema_with = crate::schema::progress_report_sections)]
    #[serde(default)]
    pub include_sections: BTreeMap<String, bool>,
}

/// A checked progress-report export: one patient over a date range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressReportRequest {
    pub patient_id: Uuid,
    pub period: DateRange,
    pub format: ExportFormat,
    pub template_id: Option<Uuid>,
    pub include_sections: BTreeMap<String, bool>,
}

impl ProgressReportInput {
    pub fn validate(&self) -> Result<ProgressReportRequest, ValidationErrors> {
        let mut problems = Problems::default();
        let patient_id = problems.uuid("patient_id", &self.patient_id);
        let period = problems.date_range("", &self.start_date, &self.end_date);
        let format = problems.format_for(ExportType::ProgressReport, &self.format);
        let template_id = problems.optional_uuid("template_id", self.template_id.as_deref());
        let include_sections =
            problems.sections(ExportType::ProgressReport, &self.include_sections);
        let request = match (patient_id, period, format, template_id) {
            (Some(patient_id), Some(period), Some(format), Ok(template_id)) => {
                Some(ProgressReportRequest {
                    patient_id,
                    period,
                    format,
                    template_id,
                    include_sections,
                })
            }
            _ => None,
        };
        problems.finish(request)
    }
}

/// A treatment-summary export as a client sends it. Unknown fields are refused (400 `invalid_field`); a missing required field is reported with the other problems (422).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TreatmentSummaryInput {
    #[schema(required, value_type = Uuid)]
    #[serde(default)]
    pub patient_id: String,
    #[schema(required, schema_with = crate::schema::report_formats)]
    #[serde(default)]
    pub format: String,
    #[schema(required, value_type = SummaryPurpose)]
    #[serde(default)]
    pub purpose: String,
    /// A template (a system template or the caller's own, of this export type) that lays out
    /// pdf and docx output; ignored by json.
    #[schema(value_type = Option<Uuid>)]
    #[serde(default)]
    pub template_id: Option<String>,
    #[schema(schema_with = crate::schema::treatment_summary_sections)]
    #[serde(default)]
    pub include_sections: BTreeMap<String, bool>,
}

/// A checked treatment-summary export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreatmentSummaryRequest {
    pub patient_id: Uuid,
    pub format: ExportFormat,
    pub purpose: SummaryPurpose,
    pub template_id: Option<Uuid>,
    pub include_sections: BTreeMap<String, bool>,
}

impl TreatmentSummaryInput {
    pub fn validate(&self) -> Result<TreatmentSummaryRequest, ValidationErrors> {
        let mut problems = Problems::default();
        let patient_id = problems.uuid("patient_id", &self.patient_id);
        let format = problems.format_for(ExportType::TreatmentSummary, &self.format);
        let purpose = problems.word("purpose", &self.purpose);
        let template_id = problems.optional_uuid("template_id", self.template_id.as_deref());
        let include_sections =
            problems.sections(ExportType::TreatmentSummary, &self.include_sections);
        let request = match (patient_id, format, purpose, template_id) {
            (Some(patient_id), Some(format), Some(purpose), Ok(template_id)) => {
                Some(TreatmentSummaryRequest {
                    patient_id,
                    format,
                    purpose,
                    template_id,
                    include_sections,
                })
            }
            _ => None,
        };
        problems.finish(request)
    }
}

/// An inclusive range of days as a client sends it. Unknown fields are refused (400).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DateRangeInput {
    #[schema(required, value_type = chrono::NaiveDate)]
    #[serde(default)]
    pub start: String,
    /// Inclusive; not before `start`.
    #[schema(required, value_type = chrono::NaiveDate)]
    #[serde(default)]
    pub end: String,
}

/// A full-record export as a client sends it. Unknown fields are refused (400 `invalid_field`); a missing required field is reported with the other problems (422).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FullRecordInput {
    #[schema(required, value_type = Uuid)]
    #[serde(default)]
    pub patient_id: String,
    #[schema(required, schema_with = crate::schema::full_record_formats)]
    #[serde(default)]
    pub format: String,
    #[schema(schema_with = crate::schema::full_record_sections)]
    #[serde(default)]
    pub include_sections: BTreeMap<String, bool>,
    /// Only records in this range of days; null or absent for all.
    #[serde(default)]
    pub date_range: Option<DateRangeInput>,
}

/// A checked full-record export: everything about one patient, optionally in a date range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FullRecordRequest {
    pub patient_id: Uuid,
    pub format: ExportFormat,
    pub include_sections: BTreeMap<String, bool>,
    pub date_range: Option<DateRange>,
}

impl FullRecordInput {
    pub fn validate(&self) -> Result<FullRecordRequest, ValidationErrors> {
        let mut problems = Problems::default();
        let patient_id = problems.uuid("patient_id", &self.patient_id);
        let format = problems.format_for(ExportType::FullRecord, &self.format);
        let include_sections = problems.sections(ExportType::FullRecord, &self.include_sections);
        let date_range = match &self.date_range {
            None => Ok(None),
            Some(range) => problems
                .date_range("date_range.", &range.start, &range.end)
                .map(Some)
                .ok_or(()),
        };
        let request = match (patient_id, format, date_range) {
            (Some(patient_id), Some(format), Ok(date_range)) => Some(FullRecordRequest {
                patient_id,
                format,
                include_sections,
                date_range,
            }),
            _ => None,
        };
        problems.finish(request)
    }
}

/// A tabular export of a named dataset as a client sends it; the dataset name comes from the
/// path. Unknown fields are refused (400 `invalid_field`); a missing required field is reported with the other problems (422).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetInput {
    #[schema(required, schema_with = crate::schema::dataset_formats)]
    #[serde(default)]
    pub format: String,
    /// Filters the dataset declares (see `GET /api/v1/export/datasets`), each a string in the
    /// filter's kind (a UUID, a YYYY-MM-DD day, one of its choices, text) or null for none;
    /// the dataset checks them (422 naming `filters.<name>`).
    #[schema(value_type = BTreeMap<String, Option<String>>)]
    #[serde(default)]
    pub filters: BTreeMap<String, serde_json::Value>,
    /// CSV only: start the file with a UTF-8 byte order mark, so Excel opens Hebrew, Chinese and
    /// accented text correctly (other CSV readers skip it); ignored by the other formats.
    #[serde(default)]
    pub excel: bool,
}

/// A checked dataset export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRequest {
    pub dataset: String,
    pub format: ExportFormat,
    pub filters: BTreeMap<String, serde_json::Value>,
    /// A CSV that starts with a byte order mark, for Excel.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub excel: bool,
}

impl DatasetInput {
    pub fn validate(&self, dataset: &str) -> Result<DatasetRequest, ValidationErrors> {
        let mut problems = Problems::default();
        let name_ok = !dataset.is_empty()
            && dataset.len() <= 64
            && dataset
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            problems.add("dataset", "must be 1 to 64 characters of a-z, 0-9 and _");
        }
        let format = problems.format_for(ExportType::Dataset, &self.format);
        let request = format.filter(|_| name_ok).map(|format| DatasetRequest {
            dataset: dataset.to_owned(),
            format,
            filters: self.filters.clone(),
            excel: self.excel && format == ExportFormat::Csv,
        });
        problems.finish(request)
    }
}

/// A document template as a client sends it. Unknown fields are refused (400 `invalid_field`); a missing required field is reported with the other problems (422).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    /// 1 to 100 characters, not all white space (the pattern: a character outside Unicode's
    /// White_Space, as Rust's `trim` reads it); unique among the caller's templates.
    #[schema(
        required,
        min_length = 1,
        max_length = 100,
        pattern = r"[^\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    )]
    #[serde(default)]
    pub name: String,
    #[schema(max_length = 2000)]
    #[serde(default)]
    pub description: Option<String>,
    #[schema(required, schema_with = crate::schema::template_export_types)]
    #[serde(default)]
    pub export_type: String,
    /// A document format the export type allows (full_record: pdf only).
    #[schema(required, schema_with = crate::schema::template_formats)]
    #[serde(default)]
    pub format: String,
    /// minijinja (Jinja2 syntax) source, at most 262144 bytes; it must render the sample data
    /// of its export type (422 with the line of the error otherwise); not all white space.
    #[schema(
        required,
        min_length = 1,
        pattern = r"[^\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    )]
    #[serde(default)]
    pub template_content: String,
    /// The sections proposed when the template is picked: the keys of the export type's
    /// `include_sections`.
    #[serde(default)]
    pub include_sections: BTreeMap<String, bool>,
}

/// A checked template. Whether its source is a valid template is the renderer's to say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateRequest {
    pub name: String,
    pub description: Option<String>,
    pub export_type: ExportType,
    pub format: ExportFormat,
    pub template_content: String,
    pub include_sections: BTreeMap<String, bool>,
}

impl TemplateInput {
    pub fn validate(&self) -> Result<TemplateRequest, ValidationErrors> {
        let mut problems = Problems::default();
        // The lengths are of the text as sent, as the API document states them; what is kept
        // is trimmed.
        let name = self.name.trim();
        let name_chars = self.name.chars().count();
        if name.is_empty() {
            problems.add("name", "is required");
        } else if name_chars > MAX_TEMPLATE_NAME_CHARS {
            problems.add(
                "name",
                format!("must be at most {MAX_TEMPLATE_NAME_CHARS} characters (got {name_chars})"),
            );
        }
        let description = self
            .description
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty());
        if let Some(chars) = self.description.as_deref().map(|d| d.chars().count())
            && chars > MAX_TEMPLATE_DESCRIPTION_CHARS
        {
            problems.add(
                "description",
                format!(
                    "must be at most {MAX_TEMPLATE_DESCRIPTION_CHARS} characters (got {chars})"
                ),
            );
        }
        let export_type: Option<ExportType> = problems.word("export_type", &self.export_type);
        let export_type = export_type.filter(|&t| {
            let documentable = t.takes_template();
            if !documentable {
                problems.add("export_type", "datasets are tables and take no template");
            }
            documentable
        });
        let format = export_type.and_then(|t| problems.format_for(t, &self.format));
        let format = format.filter(|f| {
            if !f.is_document() {
                problems.add(
                    "format",
                    format!(
                        "templates lay out documents; {f} is made from the data, use pdf or docx"
                    ),
                );
            }
            f.is_document()
        });
        if self.template_content.trim().is_empty() {
            problems.add("template_content", "is required");
        } else if self.template_content.len() > MAX_TEMPLATE_BYTES {
            problems.add(
                "template_content",
                format!(
                    "must be at most {MAX_TEMPLATE_BYTES} bytes (got {})",
                    self.template_content.len()
                ),
            );
        }
        let include_sections = export_type
            .map(|t| problems.sections(t, &self.include_sections))
            .unwrap_or_default();
        let request = match (export_type, format) {
            (Some(export_type), Some(format)) => Some(TemplateRequest {
                name: name.to_owned(),
                description: description.map(str::to_owned),
                export_type,
                format,
                template_content: self.template_content.clone(),
                include_sections,
            }),
            _ => None,
        };
        problems.finish(request)
    }
}

/// When a scheduled report runs, as a client sends it, in local time of `timezone`: `daily`
/// takes `time`, `weekly` `time` and `day_of_week`, `monthly` `time` and `day_of_month`, `cron`
/// only `cron`; a member the type does not use is refused (422). `hour` is the seed platform's
/// older spelling of `time` and means HH:00.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfigInput {
    /// Local time of day, HH:MM from 00:00 to 23:59.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    #[serde(default)]
    pub time: Option<String>,
    /// An older spelling of `time`: HH:00. Not with `time`.
    #[schema(minimum = 0, maximum = 23)]
    #[serde(default, deserialize_with = "optional_whole_number")]
    pub hour: Option<i64>,
    /// Weekly: 0 = Monday … 6 = Sunday.
    #[schema(minimum = 0, maximum = 6)]
    #[serde(default, deserialize_with = "optional_whole_number")]
    pub day_of_week: Option<i64>,
    /// Monthly: a day past the month's end means the month's last day.
    #[schema(minimum = 1, maximum = 31)]
    #[serde(default, deserialize_with = "optional_whole_number")]
    pub day_of_month: Option<i64>,
    /// Cron: five fields, `minute hour day-of-month month day-of-week` (see the "Scheduled
    /// reports" tag).
    #[serde(default)]
    pub cron: Option<String>,
}

/// A scheduled report as a client sends it. Unknown fields are refused (400 `invalid_field`); a missing required field is reported with the other problems (422).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduledReportInput {
    /// A progress_report, treatment_summary or full_record template the caller may use (a
    /// system template or their own).
    #[schema(required, value_type = Uuid)]
    #[serde(default)]
    pub template_id: String,
    /// The patient the report is about; the caller must have an active care relationship with
    /// them, when saving and at every run.
    #[schema(required, value_type = Uuid)]
    #[serde(default)]
    pub patient_id: Option<String>,
    #[schema(required, value_type = ScheduleType)]
    #[serde(default)]
    pub schedule_type: String,
    #[schema(required)]
    #[serde(default)]
    pub schedule_config: ScheduleConfigInput,
    /// The IANA time zone the schedule's times are in, e.g. `Europe/London`; UTC when absent or
    /// null. A name the server's time zone database does not know is refused (422).
    #[schema(pattern = "^[A-Za-z0-9/_+-]{1,64}$", max_length = 64, default = "UTC")]
    #[serde(default)]
    pub timezone: Option<String>,
    #[schema(value_type = crate::schema::ScheduleParameters)]
    #[serde(default)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    #[schema(required, value_type = DeliveryMethod)]
    #[serde(default)]
    pub delivery_method: String,
    /// Email delivery: 1 to 20 addresses (required then). Storage delivery: must be empty.
    #[schema(max_items = 20, value_type = Vec<crate::schema::Email>)]
    #[serde(default)]
    pub email_recipients: Vec<String>,
    /// Email delivery only: attach the file (up to 10 MB; larger ones go as a link) instead of
    /// sending a link.
    #[schema(default = false)]
    #[serde(default)]
    pub attach_file: bool,
}

/// A checked scheduled report. Whether the time zone exists and the cron expression parses is
/// the scheduler's to say; this checks their shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledReportRequest {
    pub template_id: Uuid,
    pub patient_id: Option<Uuid>,
    pub schedule_type: ScheduleType,
    pub schedule_config: ScheduleConfig,
    pub timezone: String,
    pub parameters: serde_json::Value,
    pub delivery_method: DeliveryMethod,
    pub email_recipients: Vec<String>,
    pub attach_file: bool,
}

impl ScheduledReportInput {
    pub fn validate(&self) -> Result<ScheduledReportRequest, ValidationErrors> {
        let mut problems = Problems::default();
        let template_id = problems.uuid("template_id", &self.template_id);
        let patient_id = problems.optional_uuid("patient_id", self.patient_id.as_deref());
        let schedule_type = problems.word("schedule_type", &self.schedule_type);
        let schedule_config =
            schedule_type.and_then(|t| check_schedule(&mut problems, t, &self.schedule_config));
        let timezone = self.timezone.as_deref().unwrap_or("UTC");
        let timezone_ok = !timezone.is_empty()
            && timezone.len() <= 64
            && timezone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b));
        if !timezone_ok {
            problems.add(
                "timezone",
                format!("{timezone:?} is not an IANA time zone name"),
            );
        }
        let delivery_method = problems.word("delivery_method", &self.delivery_method);
        match delivery_method {
            Some(DeliveryMethod::Email) => check_recipients(&mut problems, &self.email_recipients),
            Some(DeliveryMethod::Storage) => {
                if !self.email_recipients.is_empty() {
                    problems.add(
                        "email_recipients",
                        "is only used with delivery_method email",
                    );
                }
                if self.attach_file {
                    problems.add("attach_file", "is only used with delivery_method email");
                }
            }
            None => {}
        }
        let request = match (
            template_id,
            patient_id,
            schedule_type,
            schedule_config,
            delivery_method,
        ) {
            (
                Some(template_id),
                Ok(patient_id),
                Some(schedule_type),
                Some(schedule_config),
                Some(delivery_method),
            ) if timezone_ok => Some(ScheduledReportRequest {
                template_id,
                patient_id,
                schedule_type,
                schedule_config,
                timezone: timezone.to_owned(),
                parameters: serde_json::Value::Object(self.parameters.clone()),
                delivery_method,
                email_recipients: self.email_recipients.clone(),
                attach_file: self.attach_file,
            }),
            _ => None,
        };
        problems.finish(request)
    }
}

fn check_schedule(
    problems: &mut Problems,
    schedule_type: ScheduleType,
    input: &ScheduleConfigInput,
) -> Option<ScheduleConfig> {
    let before = problems.0.len();
    let mut config = ScheduleConfig::default();
    if schedule_type == ScheduleType::Cron {
        match input.cron.as_deref().map(str::trim) {
            None | Some("") => {
                problems.add("schedule_config.cron", "is required for cron schedules")
            }
            Some(cron) => {
                let fields = cron.split_whitespace().count();
                if fields != 5 {
                    problems.add(
                        "schedule_config.cron",
                        format!("must have 5 fields (minute hour day month weekday), got {fields}"),
                    );
                }
                config.cron = Some(cron.to_owned());
            }
        }
        for (field, given) in [
            ("time", input.time.is_some() || input.hour.is_some()),
            ("day_of_week", input.day_of_week.is_some()),
            ("day_of_month", input.day_of_month.is_some()),
        ] {
            if given {
                problems.add(
                    format!("schedule_config.{field}"),
                    "is not used by cron schedules",
                );
            }
        }
    } else {
        config.time = check_time(problems, input);
        if input.cron.is_some() {
            problems.add("schedule_config.cron", "is only used by cron schedules");
        }
        match (schedule_type, input.day_of_week) {
            (ScheduleType::Weekly, None) => problems.add(
                "schedule_config.day_of_week",
                "is required for weekly schedules",
            ),
            (ScheduleType::Weekly, Some(day @ 0..=6)) => config.day_of_week = Some(day as u8),
            (ScheduleType::Weekly, Some(day)) => problems.add(
                "schedule_config.day_of_week",
                format!("must be 0 (Monday) to 6 (Sunday), got {day}"),
            ),
            (_, Some(_)) => problems.add(
                "schedule_config.day_of_week",
                format!("is not used by {schedule_type} schedules"),
            ),
            (_, None) => {}
        }
        match (schedule_type, input.day_of_month) {
            (ScheduleType::Monthly, None) => problems.add(
                "schedule_config.day_of_month",
                "is required for monthly schedules",
            ),
            (ScheduleType::Monthly, Some(day @ 1..=31)) => config.day_of_month = Some(day as u8),
            (ScheduleType::Monthly, Some(day)) => problems.add(
                "schedule_config.day_of_month",
                format!("must be 1 to 31, got {day}"),
            ),
            (_, Some(_)) => problems.add(
                "schedule_config.day_of_month",
                format!("is not used by {schedule_type} schedules"),
            ),
            (_, None) => {}
        }
    }
    (problems.0.len() == before).then_some(config)
}

fn check_time(problems: &mut Problems, input: &ScheduleConfigInput) -> Option<String> {
    match (&input.time, input.hour) {
        (Some(_), Some(_)) => {
            problems.add("schedule_config.hour", "give time or hour, not both");
            None
        }
        (None, None) => {
            problems.add("schedule_config.time", "is required (HH:MM, local time)");
            None
        }
        (None, Some(hour @ 0..=23)) => Some(format!("{hour:02}:00")),
        (None, Some(hour)) => {
            problems.add(
                "schedule_config.hour",
                format!("must be 0 to 23, got {hour}"),
            );
            None
        }
        (Some(time), None) => {
            let parsed = time.split_once(':').and_then(|(h, m)| {
                let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
                if !two_digits(h) || !two_digits(m) {
                    return None;
                }
                let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
                (h < 24 && m < 60).then(|| format!("{h:02}:{m:02}"))
            });
            if parsed.is_none() {
                problems.add(
                    "schedule_config.time",
                    format!("{time:?} is not a time of day; expected HH:MM from 00:00 to 23:59"),
                );
            }
            parsed
        }
    }
}

fn check_recipients(problems: &mut Problems, recipients: &[String]) {
    if recipients.is_empty() {
        problems.add(
            "email_recipients",
            "at least one recipient is required for email delivery",
        );
        return;
    }
    if recipients.len() > MAX_EMAIL_RECIPIENTS {
        problems.add(
            "email_recipients",
            format!(
                "at most {MAX_EMAIL_RECIPIENTS} recipients are allowed (got {})",
                recipients.len()
            ),
        );
        return;
    }
    for (index, address) in recipients.iter().enumerate() {
        if !is_email_address(address) {
            problems.add(
                format!("email_recipients[{index}]"),
                "is not an email address",
            );
        }
    }
}

/// Whether `address` is an email address: a local part of dot-separated words of A-Z, a-z, 0-9
/// and ``!#$%&'*+/=?^_`{|}~-``; `@`; a domain of two or more dot-separated labels (each 1 to 63
/// of A-Z, a-z, 0-9 and `-`, not starting or ending with `-`); at most 254 characters in all.
/// Narrower than RFC 5321 on purpose (no quoted local parts, no address literals, no spaces
/// around it), and [`EMAIL_PATTERN`] says it exactly. The mail server has the last word: one that
/// refuses an address (a local part over 64 characters, say) fails the delivery, with its
/// reason.
pub fn is_email_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    let word_ok = |word: &str| {
        !word.is_empty()
            && word
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b))
    };
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    address.len() <= 254
        && local.split('.').all(word_ok)
        && domain.split('.').count() >= 2
        && domain.split('.').all(label_ok)
}

/// [`is_email_address`] as an ECMA-262 regular expression, for the API document.
pub const EMAIL_PATTERN: &str = "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$";
