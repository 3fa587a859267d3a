//! Renderers of the export engine: the `Document` model that every laid-out format consumes, the
//! tabular row model that data formats stream, and one renderer per format behind the `Renderer`
//! trait.
//!
//! Architecture invariant: this crate does no IO of its own: no database, no clock, no network.
//! Inputs come in as values (the caller passes `generated_at`); output goes to the
//! `std::io::Write` the caller gives.

pub mod bench;
mod chart;
mod context;
mod csv;
mod document;
mod docx;
mod error;
mod html;
mod json;
mod markup;
mod notes;
mod pdf;
mod renderer;
pub mod sandbox;
mod table;
mod templates;
mod text;
mod widths;
mod xlsx;

pub use context::{
    AssessmentLine, AssessmentRow, AssessmentTable, DiagnosisLine, DocumentHeader,
    FullRecordContext, GoalLine, OutcomeLine, ProgressReportContext, RiskLine, SessionLine,
    SessionNoteContext, SessionNotesContext, TimelineEntry, TreatmentSummaryContext, TrendLine,
    TrendPoint, capitalized, print_date, print_date_time, scored, sentence,
};
pub use csv::{CsvRenderer, looks_like_formula};
pub use document::{
    Band, Block, Chart, ChartKind, Color, Document, DocumentMeta, Notice, NoticeKind, PageSize,
    Run, Series, Table,
};
pub use docx::DocxRenderer;
pub use error::RenderError;
pub use html::{escape_html, render_html_preview};
pub use json::JsonRenderer;
pub use markup::{ALLOWED_TAGS, MarkupError, decode_entities, parse_markup};
pub use notes::{FieldValue, FilledNote, NoteField, NoteSection, fill_note};
pub use pdf::{FontSet, PdfRenderer};
pub use renderer::{Output, RenderOutcome, Renderer};
pub use sandbox::Sandbox;
pub use table::{Cell, Column, ColumnKind, MemoryRows, OwnedCell, RowBuffer, RowSource, TextRows};
pub use templates::{TemplateEngine, TemplateError, TemplateLimits, built_in_template, samples};
pub use text::{cell_text, write_cell_text};
pub use xlsx::{DICTIONARY_SHEET, MAX_XLSX_ROWS, XlsxChart, XlsxRenderer};
