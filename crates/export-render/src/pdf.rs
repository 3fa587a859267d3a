//! The PDF renderer: `PdfRenderer` lays out a `Document` (or streams rows into a table) onto
//! pages and writes the file with subset, embedded fonts.
//!
//! Library choice, by measurement: `pdf-writer` writes the PDF objects, `ttf-parser` gives glyph
//! ids and advances, `subsetter` cuts each font down to the glyphs used (written as CIDFontType2,
//! Identity-H, with a ToUnicode map so text can be extracted), `miniz_oxide` compresses streams;
//! line breaking, right-to-left runs and pagination are our own (`pdf/text.rs`, `pdf/flow.rs`).
//! The design card's `genpdf` was measured at about 9.4k rows/s and embeds whole fonts (about
//! 3 MB a file); it and its fork `genpdfi` pull in crates `cargo deny` flags as unmaintained
//! (rusttype, stb_truetype, encoding, lzw, stdweb). This stack adds a few small crates, none
//! flagged. Measured with `examples/pdf_bench.rs` (release, the shared 2-core machine): 10,000
//! bench rows in about 0.23 s (≈42–45k rows/s), peak RSS about 14 MB, a 1.56 MB file of 500
//! Letter-landscape pages; 100,000 rows in 2.1 s, 41 MB peak RSS, 15.5 MB; a 100-session progress
//! report (26 pages, 70 KB) in about 7.5 ms.

mod canvas;
mod figure;
mod flow;
mod fonts;
mod layout;
mod rows;
mod table;
mod text;

use export_domain::ExportFormat;

pub use fonts::FontSet;

use crate::renderer::Output;
use crate::{Document, RenderError, RenderOutcome, Renderer, RowSource};

/// Size of the footer text in points.
const FOOTER_SIZE: f32 = 9.0;

/// Millimetres to points.
fn points(mm: f64) -> f32 {
    (mm * 72.0 / 25.4) as f32
}

/// The deflate level of every stream. Measured on the 10,000-row table (`export-cli bench --format
/// pdf --rows 10000`, release, 2 cores, 2026-12-07): level 6 35.7k rows/s and 1.56 MB, 5 45k and
/// 1.60 MB, 4 49k and 1.65 MB, 3 48k and 1.73 MB, 1 67k and 2.46 MB. Deflate was 45% of the
/// time at 6; 4 gives a third more speed for 6% more bytes.
const DEFLATE_LEVEL: u8 = 4;

/// Deflates a stream (zlib format, as `/FlateDecode` wants).
fn compress(data: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec_zlib(data, DEFLATE_LEVEL)
}

/// Writes PDF: documents on Letter or A4 with 1-inch margins, and tables of rows on Letter
/// landscape. Fonts are given (see [`FontSet`]) and embedded as subsets.
#[derive(Debug, Clone)]
pub struct PdfRenderer {
    fonts: FontSet,
    row_limit: u64,
}

impl PdfRenderer {
    /// Rows a tabular PDF holds at most unless told otherwise.
    pub const DEFAULT_ROW_LIMIT: u64 = 100_000;

    /// A renderer drawing with `fonts`.
    pub fn new(fonts: FontSet) -> PdfRenderer {
        PdfRenderer {
            fonts,
            row_limit: PdfRenderer::DEFAULT_ROW_LIMIT,
        }
    }

    /// A renderer with the fonts installed under `/usr/share/fonts` (`scripts/install-fonts`).
    pub fn with_system_fonts() -> Result<PdfRenderer, RenderError> {
        Ok(PdfRenderer::new(FontSet::system()?))
    }

    /// Sets how many rows `render_rows` accepts before refusing with `TooManyRows`.
    pub fn with_row_limit(mut self, limit: u64) -> PdfRenderer {
        self.row_limit = limit;
        self
    }

    pub fn row_limit(&self) -> u64 {
        self.row_limit
    }
}

impl Renderer for PdfRenderer {
    fn format(&self) -> ExportFormat {
        ExportFormat::Pdf
    }

    fn render_document(
        &self,
        document: &Document,
        out: &mut dyn Output,
    ) -> Result<RenderOutcome, RenderError> {
        let file = layout::render(&self.fonts, document)?;
        out.write_all(&file)?;
        out.flush()?;
        Ok(RenderOutcome { rows: 0 })
    }

    /// Lays the whole table out in memory first (compressed, page by page), so nothing is written
    /// when the source fails or has too many rows.
    fn render_rows(
        &self,
        rows: &mut dyn RowSource,
        out: &mut dyn Output,
    ) -> Result<RenderOutcome, RenderError> {
        let (file, count) = rows::render(&self.fonts, rows, self.row_limit)?;
        out.write_all(&file)?;
        out.flush()?;
        Ok(RenderOutcome { rows: count })
    }
}
