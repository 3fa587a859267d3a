//! `export-cli render`: one export made from the fixtures (or any practice folder) straight to a
//! file, with no database and no server: validate the request as the API would, gather the
//! context, render it (through a custom template file with `--template`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use export_core::produce::{ExportRequest, Producer};
use export_domain::{
    ExportType, FullRecordInput, Practice, ProgressReportInput, SessionNotesInput,
    TreatmentSummaryInput, ValidationErrors,
};
use export_render::TemplateEngine;

/// What to render, as given on the command line.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Folder with the practice's JSON files.
    #[arg(long, default_value = "fixtures")]
    pub fixtures: PathBuf,
    /// session_notes, progress_report, treatment_summary or full_record.
    #[arg(long = "type")]
    pub export_type: ExportType,
    /// pdf, docx, json, csv or xlsx (as the type allows).
    #[arg(long)]
    pub format: String,
    #[arg(long)]
    pub patient: Option<String>,
    /// First day (YYYY-MM-DD) of a progress report or full record.
    #[arg(long)]
    pub from: Option<String>,
    /// Last day (YYYY-MM-DD) of a progress report or full record.
    #[arg(long)]
    pub to: Option<String>,
    /// Session ids for session notes, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub sessions: Vec<String>,
    /// Clinical note layout for session notes: soap, dap, birp or progress_note.
    #[arg(long)]
    pub layout: Option<String>,
    /// Treatment-summary purpose: insurance, transfer or records.
    #[arg(long, default_value = "records")]
    pub purpose: String,
    /// Include the transcript in session notes.
    #[arg(long)]
    pub transcript: bool,
    /// CSV only: start the file with a byte order mark, so Excel reads it as UTF-8.
    #[arg(long)]
    pub excel: bool,
    /// Sections to leave out, comma separated (e.g. assessments,recommendations).
    #[arg(long, value_delimiter = ',')]
    pub without: Vec<String>,
    /// A custom template (minijinja) to lay out a PDF or DOCX with instead of the built-in one; it is
    /// checked against the type's sample context first, as the engine checks a saved template.
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// The practice's name and address, for every page's footer (the demo practice's name when
    /// rendering the fixtures).
    #[arg(long, env = "EXPORT_PRACTICE")]
    pub practice: Option<String>,
    #[arg(long)]
    pub out: PathBuf,
}

fn invalid(errors: ValidationErrors) -> anyhow::Error {
    anyhow::anyhow!("invalid request: {errors}")
}

/// The request `args` describe, checked as the API would check it.
fn request(args: &RenderArgs) -> anyhow::Result<ExportRequest> {
    let sections: BTreeMap<String, bool> =
        args.without.iter().map(|s| (s.clone(), false)).collect();
    let patient = args.patient.clone().unwrap_or_default();
    Ok(match args.export_type {
        ExportType::ProgressReport => ExportRequest::ProgressReport(
            ProgressReportInput {
                patient_id: patient,
                start_date: args.from.clone().unwrap_or_default(),
                end_date: args.to.clone().unwrap_or_default(),
                format: args.format.clone(),
                template_id: None,
                include_sections: sections,
            }
            .validate()
            .map_err(invalid)?,
        ),
        ExportType::TreatmentSummary => ExportRequest::TreatmentSummary(
            TreatmentSummaryInput {
                patient_id: patient,
                format: args.format.clone(),
                purpose: args.purpose.clone(),
                template_id: None,
                include_sections: sections,
            }
            .validate()
            .map_err(invalid)?,
        ),
        ExportType::FullRecord => {
            let date_range = match (&args.from, &args.to) {
                (None, None) => None,
                (from, to) => Some(export_domain::DateRangeInput {
                    start: from.clone().unwrap_or_default(),
                    end: to.clone().unwrap_or_default(),
                }),
            };
            ExportRequest::FullRecord(
                FullRecordInput {
                    patient_id: patient,
                    format: args.format.clone(),
                    include_sections: sections,
                    date_range,
                }
                .validate()
                .map_err(invalid)?,
            )
        }
        ExportType::SessionNotes => ExportRequest::SessionNotes(
            SessionNotesInput {
                session_ids: args.sessions.clone(),
                format: args.format.clone(),
                template_id: None,
                options: BTreeMap::from([("include_transcript".to_owned(), args.transcript)]),
                note_layout: args.layout.clone(),
                excel: args.excel,
            }
            .validate()
            .map_err(invalid)?,
        ),
        ExportType::Dataset => anyhow::bail!("datasets are exported through the server"),
    })
}

/// Renders one export as `args` says and returns a one-line summary.
pub fn render(args: &RenderArgs, generated_at: DateTime<Utc>) -> anyhow::Result<String> {
    let request = request(args)?;
    let template = match &args.template {
        Some(path) => {
            let source = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the template {}", path.display()))?;
            TemplateEngine::new()
                .with_sandbox(crate::template_sandbox()?)
                .check_custom(args.export_type, &source)
                .with_context(|| format!("the template {} is not usable", path.display()))?;
            Some(source)
        }
        None => None,
    };
    let practice: Practice = export_store::seed::load_practice(&args.fixtures)
        .with_context(|| format!("cannot load the practice in {}", args.fixtures.display()))?;
    // Written beside the target and moved into place only when complete: a failed render
    // leaves no file, and a reader never sees half of one.
    let folder = args
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut partial = tempfile::NamedTempFile::new_in(folder)
        .with_context(|| format!("cannot write in {}", folder.display()))?;
    let named = args.practice.clone().or_else(|| {
        (args.fixtures == Path::new("fixtures"))
            .then(|| export_store::seed::DEMO_PRACTICE.to_owned())
    });
    Producer::with_templates(&export_core::engine::EngineConfig {
        template_sandbox: Some(crate::template_sandbox()?),
        practice: named,
        ..Default::default()
    })
    .produce(
        &practice,
        &request,
        template.as_deref(),
        generated_at,
        partial.as_file_mut(),
    )?;
    partial
        .persist(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let bytes = std::fs::metadata(&args.out)?.len();
    Ok(format!(
        "wrote {} ({} {}, {bytes} bytes)",
        args.out.display(),
        args.export_type,
        request.format()
    ))
}
