//! The `Renderer` trait: one implementation per output format, each turning a `Document` or a
//! stream of rows into bytes on a writer it is given.

use std::io::{Seek, Write};

use export_domain::ExportFormat;

use crate::{Document, RenderError, RowSource};

/// Where a renderer writes: a file or an in-memory cursor. Zip-based formats (DOCX, XLSX) need
/// to seek back to finish their archive, so every output can seek.
pub trait Output: Write + Seek + Send {}

impl<T: Write + Seek + Send> Output for T {}

/// What a render produced, for the job record and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RenderOutcome {
    /// Data rows written (0 for documents).
    pub rows: u64,
}

/// A writer of one output format. Formats that cannot hold a kind of input say so with
/// [`RenderError::Unsupported`].
pub trait Renderer {
    /// The format this renderer writes.
    fn format(&self) -> ExportFormat;

    /// Writes a laid-out document.
    fn render_document(
        &self,
        document: &Document,
        out: &mut dyn Output,
    ) -> Result<RenderOutcome, RenderError> {
        let _ = (document, out);
        Err(RenderError::Unsupported {
            format: self.format().as_str(),
            what: "a laid-out document",
        })
    }

    /// Writes a table streamed from `rows`, holding no more than a row at a time where the format
    /// allows.
    fn render_rows(
        &self,
        rows: &mut dyn RowSource,
        out: &mut dyn Output,
    ) -> Result<RenderOutcome, RenderError> {
        let _ = (rows, out);
        Err(RenderError::Unsupported {
            format: self.format().as_str(),
            what: "a table of rows",
        })
    }
}
