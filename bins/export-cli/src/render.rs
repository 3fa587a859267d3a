//! `export-cli render`: one export made from the fixtures (or any practice folder) straight to a
//! file, with no database and no server: validate the request as the API would, gather the
//! context, render it.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use export_core::gather;
use export_domain::{
    ExportFormat, ExportType, FullRecordInput, Practice, ProgressReportInput, SessionNotesInput,
    TreatmentSummaryInput, ValidationErrors,
};
use export_render::{
    CsvRenderer, DocumentHeader, DocxRenderer, PdfRenderer, Renderer, TemplateEngine, XlsxRenderer,
    built_in_template,
};
use serde::Serialize;

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
    /// Sections to leave out, comma separated (e.g. assessments,recommendations).
    #[arg(long, value_delimiter = ',')]
    pub without: Vec<String>,
    #[arg(long)]
    pub out: PathBuf,
}

fn invalid(errors: ValidationErrors) -> anyhow::Error {
    anyhow::anyhow!("invalid request: {errors}")
}

fn write_document<C: Serialize>(
    export_type: ExportType,
    format: ExportFormat,
    context: &C,
    header: &DocumentHeader,
    generated_at: DateTime<Utc>,
    out: &mut File,
) -> anyhow::Result<()> {
    if format == ExportFormat::Json {
        serde_json::to_writer_pretty(&mut *out, context)?;
        return Ok(());
    }
    let renderer: Box<dyn Renderer> = match format {
        ExportFormat::Pdf => Box::new(PdfRenderer::with_system_fonts()?),
        ExportFormat::Docx => Box::new(DocxRenderer::default()),
        other => anyhow::bail!("{other} is not a document format"),
    };
    let template = built_in_template(export_type).context("this export type has no template")?;
    let document = TemplateEngine::new().render_document(
        template,
        context,
        gather::meta_for(header, generated_at),
    )?;
    renderer.render_document(&document, out)?;
    Ok(())
}

/// Renders one export as `args` says and returns a one-line summary.
pub fn render(args: &RenderArgs, generated_at: DateTime<Utc>) -> anyhow::Result<String> {
    let practice: Practice = export_store::seed::load_practice(&args.fixtures)
        .with_context(|| format!("cannot load the practice in {}", args.fixtures.display()))?;
    let sections: BTreeMap<String, bool> =
        args.without.iter().map(|s| (s.clone(), false)).collect();
    let patient = args.patient.clone().unwrap_or_default();
    // Written beside the target and moved into place only when complete: a failed render
    // leaves no file, and a reader never sees half of one.
    let folder = args
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut partial = tempfile::NamedTempFile::new_in(folder)
        .with_context(|| format!("cannot write in {}", folder.display()))?;
    let out = partial.as_file_mut();
    let format: ExportFormat;
    match args.export_type {
        ExportType::ProgressReport => {
            let request = ProgressReportInput {
                patient_id: patient,
                start_date: args.from.clone().unwrap_or_default(),
                end_date: args.to.clone().unwrap_or_default(),
                format: args.format.clone(),
                template_id: None,
                include_sections: sections,
            }
            .validate()
            .map_err(invalid)?;
            format = request.format;
            let context = gather::progress_report(&practice, &request, generated_at)?;
            write_document(
                args.export_type,
                format,
                &context,
                &context.header,
                generated_at,
                out,
            )?;
        }
        ExportType::TreatmentSummary => {
            let request = TreatmentSummaryInput {
                patient_id: patient,
                format: args.format.clone(),
                purpose: args.purpose.clone(),
                template_id: None,
                include_sections: sections,
            }
            .validate()
            .map_err(invalid)?;
            format = request.format;
            let context = gather::treatment_summary(&practice, &request, generated_at)?;
            write_document(
                args.export_type,
                format,
                &context,
                &context.header,
                generated_at,
                out,
            )?;
        }
        ExportType::FullRecord => {
            let date_range = match (&args.from, &args.to) {
                (None, None) => None,
                (from, to) => Some(export_domain::DateRangeInput {
                    start: from.clone().unwrap_or_default(),
                    end: to.clone().unwrap_or_default(),
                }),
            };
            let request = FullRecordInput {
                patient_id: patient,
                format: args.format.clone(),
                include_sections: sections,
                date_range,
            }
            .validate()
            .map_err(invalid)?;
            format = request.format;
            let context = gather::full_record(&practice, &request, generated_at)?;
            if format == ExportFormat::Json {
                // The printed record and the records behind it, so the file can be imported again.
                let data = gather::full_record_data(&practice, &request)?;
                serde_json::to_writer_pretty(
                    &mut *out,
                    &serde_json::json!({ "record": context, "data": data }),
                )?;
            } else {
                write_document(
                    args.export_type,
                    format,
                    &context,
                    &context.header,
                    generated_at,
                    out,
                )?;
            }
        }
        ExportType::SessionNotes => {
            let request = SessionNotesInput {
                session_ids: args.sessions.clone(),
                format: args.format.clone(),
                template_id: None,
                options: BTreeMap::from([("include_transcript".to_owned(), args.transcript)]),
                note_layout: args.layout.clone(),
            }
            .validate()
            .map_err(invalid)?;
            format = request.format;
            let context = gather::session_notes(&practice, &request, generated_at)?;
            match format {
                ExportFormat::Csv | ExportFormat::Xlsx => {
                    let renderer: Box<dyn Renderer> = if format == ExportFormat::Csv {
                        Box::new(CsvRenderer::default())
                    } else {
                        Box::new(XlsxRenderer {
                            sheet_name: "Session notes".to_owned(),
                        })
                    };
                    renderer.render_rows(&mut gather::session_notes_table(&context), out)?;
                }
                _ => write_document(
                    args.export_type,
                    format,
                    &context,
                    &context.header,
                    generated_at,
                    out,
                )?,
            }
        }
        ExportType::Dataset => anyhow::bail!("datasets are exported through the server"),
    }
    partial
        .persist(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let bytes = std::fs::metadata(&args.out)?.len();
    Ok(format!(
        "wrote {} ({} {}, {bytes} bytes)",
        args.out.display(),
        args.export_type,
        format
    ))
}
