//! Making an export's file from a patient's records: gather the context of the request, then
//! render it in the requested format, through the type's built-in template or a custom one. The
//! engine's workers and `export-cli render` both come through here.

use chrono::{DateTime, Utc};
use export_domain::{
    DatasetRequest, ExportFormat, ExportType, FullRecordRequest, Practice, ProgressReportRequest,
    SessionNotesRequest, TreatmentSummaryRequest,
};
use export_render::{
    CsvRenderer, DocumentHeader, DocumentMeta, DocxRenderer, JsonRenderer, Output, PdfRenderer,
    Renderer, RowSource, TemplateEngine, TemplateError, XlsxRenderer, built_in_template,
};
use serde::{Deserialize, Serialize};

use crate::gather::{self, GatherError};

/// Why a file could not be made. Ids only.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error(transparent)]
    Gather(#[from] GatherError),
    #[error("rendering failed: {0}")]
    Render(String),
    /// The custom template did not render with this export's records. Its message comes from
    /// the template engine and may quote a value of the records; show it to the template's owner
    /// only, never log or store it.
    #[error("the custom template failed: {0}")]
    CustomTemplate(TemplateError),
}

fn render_error(err: impl std::fmt::Display) -> ProduceError {
    ProduceError::Render(err.to_string())
}

/// A checked export request: one of the four document types, or a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "export_type", rename_all = "snake_case")]
pub enum ExportRequest {
    SessionNotes(SessionNotesRequest),
    ProgressReport(ProgressReportRequest),
    TreatmentSummary(TreatmentSummaryRequest),
    FullRecord(FullRecordRequest),
    Dataset(DatasetRequest),
}

impl ExportRequest {
    pub fn export_type(&self) -> ExportType {
        match self {
            ExportRequest::SessionNotes(_) => ExportType::SessionNotes,
            ExportRequest::ProgressReport(_) => ExportType::ProgressReport,
            ExportRequest::TreatmentSummary(_) => ExportType::TreatmentSummary,
            ExportRequest::FullRecord(_) => ExportType::FullRecord,
            ExportRequest::Dataset(_) => ExportType::Dataset,
        }
    }

    pub fn format(&self) -> ExportFormat {
        match self {
            ExportRequest::SessionNotes(r) => r.format,
            ExportRequest::ProgressReport(r) => r.format,
            ExportRequest::TreatmentSummary(r) => r.format,
            ExportRequest::FullRecord(r) => r.format,
            ExportRequest::Dataset(r) => r.format,
        }
    }
}

impl ExportRequest {
    /// The custom template the request names, if any. Only the document types whose requests
    /// carry a `template_id` (session notes, progress reports, treatment summaries) have one.
    pub fn template_id(&self) -> Option<uuid::Uuid> {
        match self {
            ExportRequest::SessionNotes(r) => r.template_id,
            ExportRequest::ProgressReport(r) => r.template_id,
            ExportRequest::TreatmentSummary(r) => r.template_id,
            ExportRequest::FullRecord(_) | ExportRequest::Dataset(_) => None,
        }
    }

    /// The patient the request is about, when the request names one (session notes name
    /// sessions, datasets filter).
    pub fn patient_id(&self) -> Option<uuid::Uuid> {
        match self {
            ExportRequest::SessionNotes(_) | ExportRequest::Dataset(_) => None,
            ExportRequest::ProgressReport(r) => Some(r.patient_id),
            ExportRequest::TreatmentSummary(r) => Some(r.patient_id),
            ExportRequest::FullRecord(r) => Some(r.patient_id),
        }
    }
}

/// What a table of rows is called (the sheet's name in XLSX), and the chart a workbook of it
/// draws, if any.
#[derive(Debug, Clone)]
pub struct Table<'t> {
    pub title: &'t str,
    pub chart: Option<export_render::XlsxChart>,
    /// A CSV starts with a byte order mark, for Excel.
    pub excel: bool,
}

impl<'t> From<&'t str> for Table<'t> {
    /// A table called `title`, with no chart, its CSV without a byte order mark.
    fn from(title: &'t str) -> Table<'t> {
        Table {
            title,
            chart: None,
            excel: false,
        }
    }
}

/// Templates and renderers, built once and used for every export.
#[derive(Debug)]
pub struct Producer {
    templates: TemplateEngine,
    /// `None` when no fonts are installed: PDF requests then fail with a clear reason.
    pdf: Option<PdfRenderer>,
    /// The practice, for the footer of laid-out documents.
    practice: Option<String>,
}

impl Default for Producer {
    fn default() -> Self {
        Producer::new()
    }
}

impl Producer {
    /// The built-in templates and renderers; PDF output uses the system fonts.
    pub fn new() -> Producer {
        Producer {
            templates: TemplateEngine::new(),
            pdf: PdfRenderer::with_system_fonts().ok(),
            practice: None,
        }
    }

    /// The built-in templates and renderers; custom templates run under `config`'s limits, in
    /// its sandbox when it names one.
    pub fn with_templates(config: &crate::engine::EngineConfig) -> Producer {
        let mut templates = TemplateEngine::with_limits(config.template_limits);
        if let Some(sandbox) = &config.template_sandbox {
            templates = templates.with_sandbox(sandbox.clone());
        }
        Producer {
            templates,
            pdf: PdfRenderer::with_system_fonts().ok(),
            practice: config.practice.clone(),
        }
    }

    /// The template engine: the built-in templates, and the checks and sample renders of
    /// custom ones.
    pub fn templates(&self) -> &TemplateEngine {
        &self.templates
    }

    /// Writes the export `request` asks for, made from `practice`, to `out`; returns the number
    /// of rows (sessions) it holds. PDF and DOCX are laid out by `template`, a custom template's
    /// source, when one is given, otherwise by the type's built-in template; JSON, CSV and
    /// XLSX are made from the data and ignore `template`.
    pub fn produce(
        &self,
        practice: &Practice,
        request: &ExportRequest,
        template: Option<&str>,
        generated_at: DateTime<Utc>,
        out: &mut dyn Output,
    ) -> Result<u64, ProduceError> {
        let format = request.format();
        Ok(match request {
            ExportRequest::ProgressReport(r) => {
                let context = gather::progress_report(practice, r, generated_at)?;
                self.write(
                    request,
                    template,
                    &context,
                    &context.header,
                    generated_at,
                    out,
                )?;
                context.session_count as u64
            }
            ExportRequest::TreatmentSummary(r) => {
                let context = gather::treatment_summary(practice, r, generated_at)?;
                self.write(
                    request,
                    template,
                    &context,
                    &context.header,
                    generated_at,
                    out,
                )?;
                context.session_count as u64
            }
            ExportRequest::FullRecord(r) => {
                let context = gather::full_record(practice, r, generated_at)?;
                if format == ExportFormat::Json {
                    // The printed record and the records behind it, so the file imports again.
                    let data = gather::full_record_data(practice, r)?;
                    serde_json::to_writer(
                        &mut *out,
                        &serde_json::json!({"record": context, "data": data}),
                    )
                    .map_err(render_error)?;
                } else {
                    self.write(
                        request,
                        template,
                        &context,
                        &context.header,
                        generated_at,
                        out,
                    )?;
                }
                context.sessions.len() as u64
            }
            ExportRequest::SessionNotes(r) => {
                let context = gather::session_notes(practice, r, generated_at)?;
                match format {
                    ExportFormat::Csv | ExportFormat::Xlsx => {
                        let mut rows = gather::session_notes_table(practice, r)?;
                        let table = Table {
                            excel: r.excel,
                            ..Table::from("Session notes")
                        };
                        self.write_rows(format, table, &mut rows, out)?;
                    }
                    _ => self.write(
                        request,
                        template,
                        &context,
                        &context.header,
                        generated_at,
                        out,
                    )?,
                }
                context.sessions.len() as u64
            }
            ExportRequest::Dataset(r) => {
                return Err(ProduceError::Render(format!(
                    "dataset {} is not made from one patient's records",
                    r.dataset
                )));
            }
        })
    }

    /// Writes a table in a tabular format (CSV, JSON, XLSX) or as a PDF table; returns the rows.
    pub fn write_rows<'t>(
        &self,
        format: ExportFormat,
        table: impl Into<Table<'t>>,
        rows: &mut dyn RowSource,
        out: &mut dyn Output,
    ) -> Result<u64, ProduceError> {
        let table = table.into();
        let title = table.title;
        let outcome = match format {
            ExportFormat::Csv => CsvRenderer {
                byte_order_mark: table.excel,
                ..CsvRenderer::default()
            }
            .render_rows(rows, out),
            ExportFormat::Json => JsonRenderer.render_rows(rows, out),
            ExportFormat::Xlsx => XlsxRenderer {
                sheet_name: title.chars().take(31).collect(),
                chart: table.chart,
            }
            .render_rows(rows, out),
            ExportFormat::Pdf => self
                .pdf
                .as_ref()
                .ok_or(ProduceError::Render(
                    "no fonts for PDF output are installed".into(),
                ))?
                .render_rows(rows, out),
            ExportFormat::Docx => DocxRenderer::default().render_rows(rows, out),
        };
        Ok(outcome.map_err(render_error)?.rows)
    }

    /// Writes a document export of `request` from its context: JSON as is, PDF and DOCX through
    /// the custom `template` source if there is one, otherwise the type's built-in template.
    fn write<C: Serialize>(
        &self,
        request: &ExportRequest,
        template: Option<&str>,
        context: &C,
        header: &DocumentHeader,
        generated_at: DateTime<Utc>,
        out: &mut dyn Output,
    ) -> Result<(), ProduceError> {
        let format = request.format();
        if format == ExportFormat::Json {
            serde_json::to_writer(&mut *out, context).map_err(render_error)?;
            return out.flush().map_err(render_error);
        }
        let meta = DocumentMeta {
            practice: self.practice.clone(),
            ..gather::meta_for(header, generated_at)
        };
        let document = match template {
            Some(source) => self
                .templates
                .render_custom(source, context, meta)
                .map_err(ProduceError::CustomTemplate)?,
            None => {
                let name = built_in_template(request.export_type())
                    .ok_or(ProduceError::Render("no template".into()))?;
                self.templates
                    .render_document(name, context, meta)
                    .map_err(render_error)?
            }
        };
        match format {
            ExportFormat::Pdf => {
                let pdf = self.pdf.as_ref().ok_or(ProduceError::Render(
                    "no fonts for PDF output are installed".into(),
                ))?;
                pdf.render_document(&document, out).map_err(render_error)?;
            }
            ExportFormat::Docx => {
                DocxRenderer::default()
                    .render_document(&document, out)
                    .map_err(render_error)?;
            }
            other => {
                return Err(ProduceError::Render(format!(
                    "{other} is not a document format"
                )));
            }
        }
        Ok(())
    }
}
