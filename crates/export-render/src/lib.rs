//! Renderers of the export engine: the `Document` model that every laid-out format consumes, the
//! tabular row model that data formats stream, and one renderer per format behind the `Renderer`
//! trait.
//!
//! Architecture invariant: this crate does no IO of its own: no database, no clock, no network.
//! Inputs come in as values (the caller passes `generated_at`); output goes to the
//! `std::io::Write` the caller gives.

mod csv;
mod document;
mod error;
mod json;
mod notes;
mod renderer;
mod table;
mod text;
mod xlsx;

pub use csv::{CsvRenderer, looks_like_formula};
pub use document::{
    Block, Color, Document, DocumentMeta, Notice, NoticeKind, PageSize, Run, Table,
};
pub use error::RenderError;
pub use json::JsonRenderer;
pub use notes::{FieldValue, FilledNote, NoteField, NoteSection, fill_note};
pub use renderer::{Output, RenderOutcome, Renderer};
pub use table::{Cell, Column, ColumnKind, RowBuffer, RowSource};
pub use text::{cell_text, write_cell_text};
pub use xlsx::{MAX_XLSX_ROWS, XlsxRenderer};
