//! Renderers of the export engine: the `Document` model that every laid-out format consumes, the
//! tabular row model that data formats stream, and one renderer per format behind the `Renderer`
//! trait.
//!
//! Architecture invariant: this crate does no IO of its own: no database, no clock, no network.
//! Inputs come in as values (the caller passes `generated_at`); output goes to the
//! `std::io::Write` the caller gives.

mod document;
mod docx;
mod error;
mod renderer;
mod table;

pub use document::{
    Block, Color, Document, DocumentMeta, Notice, NoticeKind, PageSize, Run, Table,
};
pub use docx::DocxRenderer;
pub use error::RenderError;
pub use renderer::{RenderOutcome, Renderer};
pub use table::{Cell, Column, ColumnKind, RowBuffer, RowSource};
