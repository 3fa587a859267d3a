//! Tables of the PDF renderer: column widths from the content, cells wrapped into lines, rows
//! drawn with a shaded bold header that is repeated on every page, and rows taller than a page
//! split between pages.

use std::ops::Range;

use super::flow::Flow;
use super::fonts::{FontBook, Style};
use super::text::{self, Glyph};

/// Lines a paragraph, or a split table row, leaves at least on each side of a page break.
pub(crate) const MIN_LINES: usize = 2;
/// A row taller than this share of a page is split between pages when it does not fit; a shorter
/// one moves whole to the next page.
const SPLIT_SHARE: f32 = 0.2;

/// A piece of styled text in a cell.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span<'s> {
    pub(crate) text: &'s str,
    pub(crate) style: Style,
    pub(crate) rgb: [u8; 3],
}

/// Where the columns are and how text sits in them.
#[derive(Debug, Clone)]
pub(crate) struct Geometry {
    pub(crate) xs: Vec<f32>,
    pub(crate) widths: Vec<f32>,
    pub(crate) right_aligned: Vec<bool>,
    pub(crate) size: f32,
    pub(crate) pad: f32,
    /// Line height as a multiple of the size.
    pub(crate) leading: f32,
}

impl Geometry {
    pub(crate) fn line_height(&self) -> f32 {
        self.size * self.leading
    }

    /// Columns laid out from `left` over `available` points from each column's (longest word,
    /// longest cell) extents, padding excluded, and the cells' natural widths row by row: see
    /// [`crate::widths::column_widths`].
    pub(crate) fn fit(
        left: f32,
        available: f32,
        size: f32,
        pad: f32,
        extents: &[(f32, f32)],
        cells: &[Vec<f32>],
        right_aligned: Vec<bool>,
    ) -> Geometry {
        let widths = crate::widths::column_widths(extents, cells, 2.0 * pad + 0.5, available);
        let mut xs = Vec::with_capacity(widths.len());
        let mut x = left;
        for width in &widths {
            xs.push(x);
            x += width;
        }
        Geometry {
            xs,
            widths,
            right_aligned,
            size,
            pad,
            leading: 1.25,
        }
    }
}

/// The narrowest (longest word) and natural (one line) width of `spans` in points.
pub(crate) fn extent<'s>(
    book: &mut FontBook<'_>,
    spans: impl IntoIterator<Item = Span<'s>>,
    size: f32,
    glyphs: &mut Vec<Glyph>,
) -> (f32, f32) {
    glyphs.clear();
    for span in spans {
        text::shape(book, span.text, span.style, span.rgb, glyphs);
    }
    let (mut word, mut longest, mut line, mut natural) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
    for glyph in glyphs.iter() {
        if glyph.ch == '\n' {
            natural = natural.max(line);
            longest = longest.max(word);
            line = 0.0;
            word = 0.0;
        } else if glyph.ch == ' ' {
            longest = longest.max(word);
            word = 0.0;
            line += glyph.advance;
        } else {
            word += glyph.advance;
            line += glyph.advance;
        }
    }
    let scale = size / 1000.0;
    (longest.max(word) * scale, natural.max(line) * scale)
}

/// One row shaped and wrapped, its buffers kept between rows.
#[derive(Debug, Default)]
pub(crate) struct RowLayout {
    glyphs: Vec<Vec<Glyph>>,
    lines: Vec<Vec<Range<usize>>>,
    cells: usize,
}

impl RowLayout {
    pub(crate) fn clear(&mut self) {
        self.cells = 0;
    }

    /// Adds the next cell.
    pub(crate) fn push_cell<'s>(
        &mut self,
        book: &mut FontBook<'_>,
        geometry: &Geometry,
        spans: impl IntoIterator<Item = Span<'s>>,
    ) {
        let index = self.cells;
        if self.glyphs.len() <= index {
            self.glyphs.push(Vec::new());
            self.lines.push(Vec::new());
        }
        let glyphs = &mut self.glyphs[index];
        glyphs.clear();
        for span in spans {
            text::shape(book, span.text, span.style, span.rgb, glyphs);
        }
        let width = geometry.widths.get(index).copied().unwrap_or(0.0) - 2.0 * geometry.pad;
        let lines = &mut self.lines[index];
        lines.clear();
        text::break_lines(glyphs, geometry.size, width.max(1.0), lines);
        self.cells += 1;
    }

    /// Lines of the tallest cell.
    pub(crate) fn line_count(&self) -> usize {
        self.lines[..self.cells]
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(1)
            .max(1)
    }

    pub(crate) fn height(&self, geometry: &Geometry) -> f32 {
        self.line_count() as f32 * geometry.line_height() + 2.0 * geometry.pad
    }

    /// Draws lines `from..to` of every cell in a row whose top is at `top`.
    fn draw(
        &self,
        flow: &mut Flow<'_>,
        geometry: &Geometry,
        top: f32,
        lines: Range<usize>,
        header: bool,
    ) {
        let height = (lines.end - lines.start) as f32 * geometry.line_height() + 2.0 * geometry.pad;
        let left = geometry.xs.first().copied().unwrap_or(0.0);
        let total: f32 = geometry.widths.iter().sum();
        let canvas = &mut flow.canvas;
        if header {
            canvas.fill_rect(left, top - height, total, height, 0.85);
        }
        canvas.stroke_rects(
            geometry
                .xs
                .iter()
                .zip(&geometry.widths)
                .map(|(x, w)| (*x, top - height, *w, height)),
            0.6,
        );
        let ascent = geometry.size * 0.93 + (geometry.line_height() - geometry.size * 1.16) / 2.0;
        for cell in 0..self.cells.min(geometry.xs.len()) {
            let glyphs = &self.glyphs[cell];
            for (n, range) in self.lines[cell]
                .iter()
                .enumerate()
                .skip(lines.start)
                .take(lines.end - lines.start)
            {
                let line = &glyphs[range.clone()];
                let y =
                    top - geometry.pad - ascent - (n - lines.start) as f32 * geometry.line_height();
                let x = if geometry.right_aligned[cell] {
                    geometry.xs[cell] + geometry.widths[cell]
                        - geometry.pad
                        - text::width(line, geometry.size)
                } else {
                    geometry.xs[cell] + geometry.pad
                };
                canvas.text(x, y, geometry.size, line);
            }
        }
    }
}

/// A table being flowed onto pages: its geometry and its header row.
#[derive(Debug)]
pub(crate) struct TableFlow {
    pub(crate) geometry: Geometry,
    pub(crate) header: RowLayout,
    /// False for a table without a header row: nothing is drawn or repeated.
    pub(crate) has_header: bool,
}

impl TableFlow {
    pub(crate) fn header_height(&self) -> f32 {
        if self.has_header {
            self.header.height(&self.geometry)
        } else {
            0.0
        }
    }

    /// Draws the header at the cursor.
    pub(crate) fn draw_header(&self, flow: &mut Flow<'_>) {
        if !self.has_header {
            return;
        }
        let height = self.header.height(&self.geometry);
        let top = flow.y;
        self.header
            .draw(flow, &self.geometry, top, 0..self.header.line_count(), true);
        flow.y -= height;
        flow.fresh = false;
    }

    /// The height that must share a page with the header: the first row whole, or, for a row tall
    /// enough to be split, its first lines.
    pub(crate) fn start_height(&self, first: Option<&RowLayout>, flow: &Flow<'_>) -> f32 {
        let pad = 2.0 * self.geometry.pad;
        let row = first.map_or(0.0, |row| {
            if self.splits(row, flow) {
                MIN_LINES as f32 * self.geometry.line_height() + pad
            } else {
                row.height(&self.geometry)
            }
        });
        self.header_height() + row
    }

    /// A row is split between pages (rather than moved whole to the next) when it is taller than
    /// this share of a page.
    fn splits(&self, row: &RowLayout, flow: &Flow<'_>) -> bool {
        row.line_count() >= 2 * MIN_LINES
            && row.height(&self.geometry) > SPLIT_SHARE * flow.body_height()
    }

    /// Starts the table: the header, on a new page unless the header and the start of the first
    /// row fit (a header row never ends a page).
    pub(crate) fn start(&self, flow: &mut Flow<'_>, first: Option<&RowLayout>) {
        let need = self.start_height(first, flow);
        if flow.y - need < flow.bottom - 0.01 && !flow.fresh {
            flow.new_page();
        }
        self.draw_header(flow);
    }

    /// Draws a row at the cursor. A row that does not fit goes to the next page (with the header
    /// repeated), unless it is tall (see [`splits`](Self::splits)): then it is split, with at
    /// least `MIN_LINES` lines on each side of the break.
    pub(crate) fn row(&self, flow: &mut Flow<'_>, row: &RowLayout) {
        let line_height = self.geometry.line_height();
        let pad = self.geometry.pad;
        let total = row.line_count();
        let splits = self.splits(row, flow);
        let mut from = 0;
        let mut after_break = false;
        loop {
            let available = ((flow.y - flow.bottom - 2.0 * pad + 0.01) / line_height).floor();
            let available = if available < 0.0 {
                0
            } else {
                available as usize
            };
            let rest = total - from;
            let count = if rest <= available {
                Some(rest)
            } else if splits && available >= MIN_LINES && rest >= 2 * MIN_LINES {
                // As much as fits, leaving at least MIN_LINES lines for the next page.
                Some(available.min(rest - MIN_LINES))
            } else if after_break {
                // Taller than a whole page and not splittable by the rules: as much as fits.
                Some(available.max(1).min(rest))
            } else {
                None
            };
            if let Some(count) = count {
                let top = flow.y;
                row.draw(flow, &self.geometry, top, from..from + count, false);
                flow.y -= count as f32 * line_height + 2.0 * pad;
                flow.fresh = false;
                from += count;
                if from == total {
                    return;
                }
            }
            flow.new_page();
            self.draw_header(flow);
            after_break = true;
        }
    }
}
