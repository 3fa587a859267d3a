//! Tera templates to `Document`: the built-in templates of `templates/` (compiled in), custom
//! templates checked before they are accepted, and the HTML subset parsed into blocks.
//!
//! Templates reach no environment, file or network: the engine loads no files at run time, and
//! `get_env` is replaced by a function that refuses. Every value from the context is escaped
//! (auto-escaping is on for every template, built-in or custom).

use std::collections::HashMap;

use export_domain::ExportType;
use serde::Serialize;

use crate::context::{
    AssessmentLine, DiagnosisLine, DocumentHeader, FullRecordContext, GoalLine,
    ProgressReportContext, SessionLine, SessionNoteContext, SessionNotesContext,
    TreatmentSummaryContext,
};
use crate::markup::parse_markup;
use crate::{Document, DocumentMeta};

const BUILT_IN: [(&str, &str); 6] = [
    ("base.html", include_str!("../../../templates/base.html")),
    (
        "macros.html",
        include_str!("../../../templates/macros.html"),
    ),
    (
        "progress_report.html",
        include_str!("../../../templates/progress_report.html"),
    ),
    (
        "treatment_summary.html",
        include_str!("../../../templates/treatment_summary.html"),
    ),
    (
        "session_notes.html",
        include_str!("../../../templates/session_notes.html"),
    ),
    (
        "full_record.html",
        include_str!("../../../templates/full_record.html"),
    ),
];

/// The name a custom template is checked and rendered under.
const CUSTOM: &str = "custom.html";

/// Why a template could not be used: the line of the template source where it is known, and
/// the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct TemplateError {
    pub line: Option<usize>,
    pub message: String,
}

/// The built-in template of an export type that has one.
pub fn built_in_template(export_type: ExportType) -> Option<&'static str> {
    match export_type {
        ExportType::SessionNotes => Some("session_notes.html"),
        ExportType::ProgressReport => Some("progress_report.html"),
        ExportType::TreatmentSummary => Some("treatment_summary.html"),
        ExportType::FullRecord => Some("full_record.html"),
        ExportType::Dataset => None,
    }
}

/// The templates, compiled once.
#[derive(Debug)]
pub struct TemplateEngine {
    tera: tera::Tera,
}

fn refuse_get_env(_: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    Err(tera::Error::msg("templates cannot read the environment"))
}

/// Every message in Tera's error chain, most general first.
fn chain(err: &tera::Error) -> Vec<String> {
    let mut messages = vec![err.to_string()];
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        messages.push(inner.to_string());
        source = inner.source();
    }
    messages
}

/// A Tera parse error as `(line, "cause (column N)")`, from its `--> line:column` pointer and
/// its `= cause` line.
fn parse_error(messages: &[String]) -> (Option<usize>, String) {
    let detail = messages
        .iter()
        .find(|m| m.contains("--> "))
        .cloned()
        .unwrap_or_else(|| messages.join(": "));
    let position = detail
        .find("--> ")
        .map(|at| &detail[at + 4..])
        .and_then(|rest| {
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == ':'))
                .unwrap_or(rest.len());
            let (line, column) = rest[..end].split_once(':')?;
            Some((line.parse::<usize>().ok()?, column.to_owned()))
        });
    let cause = detail
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("= "))
        .unwrap_or(detail.trim())
        .to_owned();
    match position {
        Some((line, column)) => (Some(line), format!("{cause} (column {column})")),
        None => (None, cause),
    }
}

/// Tera tags that open a block, each closed by `end` + its name.
const BLOCK_TAGS: [&str; 6] = ["if", "for", "block", "macro", "filter", "raw"];

/// Checks that every `{% if %}`, `{% for %}`… is closed by its own end tag, naming the line of
/// the first that is not (Tera's own message for this points at the end of the file).
fn check_blocks(source: &str) -> Result<(), TemplateError> {
    let mut open: Vec<(&str, usize)> = Vec::new();
    let mut offset = 0;
    while let Some(start) = source[offset..].find("{%").map(|s| offset + s) {
        let Some(len) = source[start..].find("%}") else {
            break;
        };
        let tag =
            source[start + 2..start + len].trim_matches(|c: char| c == '-' || c.is_whitespace());
        let line = 1 + source[..start].matches('\n').count();
        let word = tag.split_whitespace().next().unwrap_or("");
        if let Some(&opened) = BLOCK_TAGS.iter().find(|t| **t == word) {
            open.push((opened, line));
        } else if let Some(closed) = word.strip_prefix("end").filter(|w| BLOCK_TAGS.contains(w)) {
            match open.pop() {
                Some((opened, _)) if opened == closed => {}
                Some((opened, at)) => {
                    return Err(TemplateError {
                        line: Some(line),
                        message: format!(
                            "{{% end{closed} %}} does not close the {{% {opened} %}} opened on line {at}"
                        ),
                    });
                }
                None => {
                    return Err(TemplateError {
                        line: Some(line),
                        message: format!("{{% end{closed} %}} has no {{% {closed} %}} to close"),
                    });
                }
            }
        }
        offset = start + len + 2;
    }
    match open.pop() {
        Some((opened, at)) => Err(TemplateError {
            line: Some(at),
            message: format!("{{% {opened} %}} is never closed; add {{% end{opened} %}}"),
        }),
        None => Ok(()),
    }
}

/// The first line of `source` that mentions the variable a render error names.
fn variable_line(source: &str, messages: &[String]) -> Option<usize> {
    let variable = messages.iter().find_map(|m| {
        let start = m.find("Variable `")? + 10;
        let end = start + m[start..].find('`')?;
        Some(m[start..end].to_owned())
    })?;
    source
        .lines()
        .position(|line| line.contains(&variable))
        .map(|i| i + 1)
}

impl TemplateEngine {
    /// Compiles the built-in templates.
    pub fn new() -> TemplateEngine {
        let mut tera = tera::Tera::default();
        tera.add_raw_templates(BUILT_IN)
            .expect("the built-in templates compile");
        tera.autoescape_on(vec![".html"]);
        tera.register_function("get_env", refuse_get_env);
        TemplateEngine { tera }
    }

    /// Renders a built-in template to markup.
    pub fn render_markup(
        &self,
        name: &str,
        context: &impl Serialize,
    ) -> Result<String, TemplateError> {
        let context = tera::Context::from_serialize(context).map_err(|err| TemplateError {
            line: None,
            message: format!("the context cannot be used: {err}"),
        })?;
        self.tera
            .render(name, &context)
            .map_err(|err| TemplateError {
                line: None,
                message: chain(&err).join(": "),
            })
    }

    /// Renders a built-in template into a document.
    pub fn render_document(
        &self,
        name: &str,
        context: &impl Serialize,
        meta: DocumentMeta,
    ) -> Result<Document, TemplateError> {
        let markup = self.render_markup(name, context)?;
        let blocks = parse_markup(&markup).map_err(|err| TemplateError {
            line: Some(err.line),
            message: err.message,
        })?;
        Ok(Document { meta, blocks })
    }

    /// Renders a custom template's `source` into a document.
    pub fn render_custom(
        &self,
        source: &str,
        context: &impl Serialize,
        meta: DocumentMeta,
    ) -> Result<Document, TemplateError> {
        check_blocks(source)?;
        let mut tera = self.tera.clone();
        tera.add_raw_template(CUSTOM, source).map_err(|err| {
            let (line, message) = parse_error(&chain(&err));
            TemplateError { line, message }
        })?;
        let context = tera::Context::from_serialize(context).map_err(|err| TemplateError {
            line: None,
            message: format!("the context cannot be used: {err}"),
        })?;
        let markup = tera.render(CUSTOM, &context).map_err(|err| {
            let messages = chain(&err);
            let cause = messages
                .iter()
                .skip(1)
                .cloned()
                .collect::<Vec<_>>()
                .join(": ");
            TemplateError {
                line: variable_line(source, &messages),
                message: if cause.is_empty() {
                    messages[0].clone()
                } else {
                    cause
                },
            }
        })?;
        let blocks = parse_markup(&markup).map_err(|err| TemplateError {
            // The markup line is the rendered output's; for templates without loops it is the
            // source line, and the message names the tag either way.
            line: Some(err.line),
            message: err.message,
        })?;
        Ok(Document { meta, blocks })
    }

    /// Checks a custom template for `export_type` before it is saved: it must compile, render
    /// against a sample context of that type without missing variables, and produce only the
    /// HTML subset.
    pub fn check_custom(&self, export_type: ExportType, source: &str) -> Result<(), TemplateError> {
        let meta = DocumentMeta {
            title: "template check".into(),
            author: "template check".into(),
            subject: None,
            generated_at: chrono::DateTime::UNIX_EPOCH,
            page_size: crate::PageSize::Letter,
        };
        self.render_sample(export_type, source, meta).map(|_| ())
    }

    /// Renders a custom template's `source` with the sample context of `export_type` (no one's
    /// records): what a template preview shows.
    pub fn render_sample(
        &self,
        export_type: ExportType,
        source: &str,
        meta: DocumentMeta,
    ) -> Result<Document, TemplateError> {
        match export_type {
            ExportType::ProgressReport => {
                self.render_custom(source, &samples::progress_report(), meta)
            }
            ExportType::TreatmentSummary => {
                self.render_custom(source, &samples::treatment_summary(), meta)
            }
            ExportType::SessionNotes => self.render_custom(source, &samples::session_notes(), meta),
            ExportType::FullRecord => self.render_custom(source, &samples::full_record(), meta),
            ExportType::Dataset => Err(TemplateError {
                line: None,
                message: "datasets are tables and take no template".into(),
            }),
        }
    }
}

impl Default for TemplateEngine {
    fn default() -> Self {
        TemplateEngine::new()
    }
}

/// Synthetic contexts with every field filled, for checking custom templates and for tests.
pub mod samples {
    use std::collections::BTreeMap;

    use export_domain::ExportType;

    use super::*;

    /// Every section of `export_type`, on.
    pub fn all_sections(export_type: ExportType) -> BTreeMap<String, bool> {
        export_type
            .section_keys()
            .iter()
            .map(|k| (k.to_string(), true))
            .collect()
    }

    pub fn header(title: &str) -> DocumentHeader {
        DocumentHeader {
            title: title.into(),
            patient_name: "Sample Patient".into(),
            patient_date_of_birth: Some("April 12, 1988".into()),
            period: Some("January 1, 2025 to March 31, 2025".into()),
            prepared_by: "Sample Therapist".into(),
            generated_on: "April 1, 2025 at 09:00 AM".into(),
        }
    }

    fn goal() -> GoalLine {
        GoalLine {
            description: "Fewer panic attacks".into(),
            baseline: "4 per week".into(),
            current: "1 per week".into(),
            progress_percentage: 75,
            status: "active".into(),
        }
    }

    fn assessment() -> AssessmentLine {
        AssessmentLine {
            instrument: "PHQ-9".into(),
            date: "March 3, 2025".into(),
            score: 8,
            severity: Some("mild".into()),
        }
    }

    fn session() -> SessionLine {
        SessionLine {
            number: 1,
            date: "March 3, 2025".into(),
            duration_minutes: 50,
            mood: "hopeful".into(),
            topics: vec!["sleep".into(), "work stress".into()],
            summary: "Reviewed the sleep diary.".into(),
        }
    }

    fn diagnosis() -> DiagnosisLine {
        DiagnosisLine {
            icd10_code: "F41.1".into(),
            description: "Generalized anxiety disorder".into(),
            is_primary: true,
            since: "January 6, 2025".into(),
        }
    }

    pub fn progress_report() -> ProgressReportContext {
        ProgressReportContext {
            header: header("Progress Report"),
            sections: all_sections(ExportType::ProgressReport),
            goals: vec![goal()],
            assessments: vec![assessment()],
            session_count: 1,
            avg_duration_minutes: 50.0,
            key_topics: vec!["sleep".into()],
            sessions: vec![session()],
            observations: vec!["Engaged and reflective.".into()],
            recommendations: vec!["Continue weekly sessions.".into()],
        }
    }

    pub fn treatment_summary() -> TreatmentSummaryContext {
        TreatmentSummaryContext {
            header: header("Treatment Summary"),
            purpose: "records".into(),
            sections: all_sections(ExportType::TreatmentSummary),
            diagnoses: vec![diagnosis()],
            modality: "Cognitive Behavioral Therapy".into(),
            frequency: "weekly".into(),
            plan_summary: "Exposure work and sleep hygiene.".into(),
            interventions: vec!["Thought record".into()],
            session_count: 1,
            avg_duration_minutes: 50.0,
            first_session: Some("January 6, 2025".into()),
            last_session: Some("March 3, 2025".into()),
            goals: vec![goal()],
            observations: vec!["Engaged and reflective.".into()],
            prognosis: "good".into(),
        }
    }

    pub fn session_notes() -> SessionNotesContext {
        SessionNotesContext {
            header: header("Session Notes"),
            include_ai_notes: true,
            include_action_items: true,
            include_transcript: true,
            sessions: vec![SessionNoteContext {
                date: "March 3, 2025".into(),
                duration_minutes: 50,
                therapist_summary: Some("Reviewed the sleep diary.".into()),
                mood: "hopeful".into(),
                key_topics: vec!["sleep".into()],
                strategies: vec!["Paced breathing (practiced)".into()],
                action_items: vec!["Keep a sleep diary".into()],
                risk_flags: vec![],
                transcript: Some("Therapist: How was the week?\nPatient: Better.".into()),
                note: None,
            }],
        }
    }

    pub fn full_record() -> FullRecordContext {
        FullRecordContext {
            header: header("Full Clinical Record"),
            sections: all_sections(ExportType::FullRecord),
            demographics: BTreeMap::from([("Email".to_owned(), "patient@example.com".to_owned())]),
            treatment_plans: vec!["Cognitive Behavioral Therapy, weekly".into()],
            diagnoses: vec![diagnosis()],
            goals: vec![goal()],
            sessions: vec![session()],
            assessments: vec![assessment()],
            timeline: vec!["January 6, 2025: first session".into()],
            attachments: vec![],
        }
    }
}
