//! Tables of the PDF renderer: column widths from the content, cells wrapped into lines, rows
//! drawn with a shaded bold header that is repeated on every page, and rows taller than a page
//! split between pages.

use std::ops::Range;

use super::flow::Flow;
use super::fonts::{FontBook, Style};
use super::text::{self, Glyph};

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
}

impl Geometry {
    pub(crate) fn line_height(&self) -> f32 {
        self.size * 1.25
    }

    /// Columns laid out from `left` over `available` points, from the narrowest each column may
    /// be (its longest word) and its natural width (its longest cell on one line), padding
    /// excluded. Wide columns shrink first; words are broken only when even the narrowest widths
    /// do not fit.
    pub(crate) fn fit(
        left: f32,
        available: f32,
        size: f32,
        pad: f32,
        extents: &[(f32, f32)],
        right_aligned: Vec<bool>,
    ) -> Geometry {
        let count = extents.len().max(1);
        // A column whose longest word is wider than its fair share is broken inside words
        // rather than squeezing the other columns.
        let fair = available / count as f32;
        let padded: Vec<(f32, f32)> = extents
            .iter()
            .map(|(min, natural)| {
                let min = min + 2.0 * pad + 0.5;
                let natural = natural + 2.0 * pad + 0.5;
                (min.min(fair), natural.max(min.min(fair)))
            })
            .collect();
        let sum_min: f32 = padded.iter().map(|e| e.0).sum();
        let sum_nat: f32 = padded.iter().map(|e| e.1).sum();
        let widths: Vec<f32> = if padded.is_empty() {
            Vec::new()
        } else if sum_nat <= available {
            let extra = (available - sum_nat) / count as f32;
            padded.iter().map(|e| e.1 + extra).collect()
        } else if sum_min <= available {
            // Narrow columns keep their natural width; the widest give way down to a common cap.
            let width_at = |cap: f32| -> f32 { padded.iter().map(|e| cap.clamp(e.0, e.1)).sum() };
            let (mut low, mut high) = (0.0f32, padded.iter().map(|e| e.1).fold(0.0, f32::max));
            for _ in 0..40 {
                let middle = (low + high) / 2.0;
                if width_at(middle) > available {
                    high = middle;
                } else {
                    low = middle;
                }
            }
            let mut widths: Vec<f32> = padded.iter().map(|e| low.clamp(e.0, e.1)).collect();
            let spare = (available - widths.iter().sum::<f32>()).max(0.0);
            if let Some(widest) = widths.iter_mut().max_by(|a, b| a.total_cmp(b)) {
                *widest += spare;
            }
            widths
        } else {
            padded.iter().map(|e| available * e.0 / sum_min).collect()
        };
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

    /// Starts the table: the header, on a new page if the header and one line of a row do not fit.
    pub(crate) fn start(&self, flow: &mut Flow<'_>) {
        let need = self.header_height() + self.geometry.line_height() + 2.0 * self.geometry.pad;
        if flow.y - need < flow.bottom && !flow.fresh {
            flow.new_page();
        }
        self.draw_header(flow);
    }

    /// Draws a row at the cursor, going on to new pages (with the header repeated) when it does
    /// not fit, and splitting it between pages when it is taller than a page.
    pub(crate) fn row(&self, flow: &mut Flow<'_>, row: &RowLayout) {
        let line_height = self.geometry.line_height();
        let pad = self.geometry.pad;
        let total = row.line_count();
        let header_height = self.header_height();
        let capacity =
            (((flow.top - flow.bottom - header_height - 2.0 * pad) / line_height).floor() as usize)
                .max(1);
        let mut from = 0;
        let mut after_break = false;
        loop {
            let available = ((flow.y - flow.bottom - 2.0 * pad) / line_height).floor();
            let available = if available < 0.0 {
                0
            } else {
                available as usize
            };
            let rest = total - from;
            let fits = rest <= available;
            if fits || after_break || (rest > capacity && available >= 1) {
                // All that is left, or (too tall for any page) as much as fits, at least a line.
                let count = if fits { rest } else { available.max(1) };
                let top = flow.y;
                row.draw(flow, &self.geometry, top, from..from + count, false);
                flow.y -= count as f32 * line_height + 2.0 * pad;
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
