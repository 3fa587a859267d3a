//! Tabular PDF of the PDF renderer: rows streamed from a `RowSource` into one table on Letter
//! landscape pages, column widths taken from the first rows, the header repeated on every page.

use std::fmt::Write as _;

use export_domain::ExportFormat;

use super::canvas::{Canvas, Decor, Info};
use super::flow::Flow;
use super::fonts::{FontBook, FontSet, Style};
use super::table::{self, Geometry, RowLayout, Span, TableFlow};
use super::text::BLACK;
use super::{FOOTER_SIZE, points};
use crate::table::for_each_row;
use crate::{Cell, Column, ColumnKind, RenderError, RowBuffer, RowSource};

const MARGIN: f32 = 36.0;
const MARGIN_BOTTOM: f32 = 48.0;
const SIZE: f32 = 8.0;
const PAD: f32 = 2.5;
/// Rows read before the column widths are fixed.
const SAMPLE_ROWS: usize = 64;

/// The canonical text of a cell, as the CSV form writes it before quoting.
pub(crate) fn canonical(cell: Cell<'_>, out: &mut String) {
    match cell {
        Cell::Null => {}
        Cell::Text(text) => out.push_str(text),
        Cell::Integer(value) => {
            let _ = write!(out, "{value}");
        }
        Cell::Float(value) => {
            let _ = write!(out, "{value:?}");
        }
        Cell::Bool(value) => out.push_str(if value { "true" } else { "false" }),
        Cell::Date(value) => {
            let _ = write!(out, "{}", value.format("%Y-%m-%d"));
        }
        Cell::DateTime(value) => {
            out.push_str(&value.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
    }
}

/// A value as wide as the widest a column of `kind` is expected to hold.
fn reserve_for(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Text => "",
        ColumnKind::Integer => "0000000",
        ColumnKind::Float => "000000.00",
        ColumnKind::Bool => "false",
        ColumnKind::Date => "0000-00-00",
        ColumnKind::DateTime => "0000-00-00T00:00:00Z",
    }
}

/// Streams `source` into a tabular PDF and returns the file and the number of rows.
pub(crate) fn render(
    fonts: &FontSet,
    source: &mut dyn RowSource,
    limit: u64,
) -> Result<(Vec<u8>, u64), RenderError> {
    let too_many = |rows: u64| RenderError::TooManyRows {
        format: ExportFormat::Pdf.as_str(),
        rows,
        limit,
    };
    if let Some(hint) = source.row_count_hint()
        && hint > limit
    {
        return Err(too_many(hint));
    }
    let columns = source.columns().to_vec();
    let book = FontBook::new(fonts)?;
    // US Letter, landscape: ten columns fit without wrapping every cell.
    let canvas = Canvas::new(book, points(279.4), points(215.9));
    let mut writer = RowsWriter {
        flow: Flow::new(canvas, MARGIN, MARGIN, MARGIN_BOTTOM),
        columns,
        sample: Vec::new(),
        table: None,
        row: RowLayout::default(),
        text: String::new(),
    };
    let count = for_each_row(source, |index, row| {
        if index >= limit {
            return Err(too_many(index + 1));
        }
        writer.row(row);
        Ok(())
    })?;
    writer.flush_sample();
    let info = Info::default();
    let file = writer.flow.canvas.finish(
        &Decor {
            margin: MARGIN,
            size: FOOTER_SIZE,
            footer_y: MARGIN_BOTTOM / 2.0,
            ..Decor::default()
        },
        &info,
    )?;
    Ok((file, count))
}

struct RowsWriter<'f> {
    flow: Flow<'f>,
    columns: Vec<Column>,
    /// The first rows as text, until the column widths are fixed.
    sample: Vec<Vec<String>>,
    table: Option<TableFlow>,
    row: RowLayout,
    text: String,
}

impl RowsWriter<'_> {
    fn row(&mut self, row: &RowBuffer) {
        if self.table.is_none() {
            let cells = row
                .cells()
                .map(|cell| {
                    let mut text = String::new();
                    canonical(cell, &mut text);
                    text
                })
                .collect();
            self.sample.push(cells);
            if self.sample.len() >= SAMPLE_ROWS {
                self.flush_sample();
            }
            return;
        }
        let Some(table) = &self.table else { return };
        self.row.clear();
        for cell in row.cells() {
            self.text.clear();
            canonical(cell, &mut self.text);
            let span = Span {
                text: &self.text,
                style: Style::Regular,
                rgb: BLACK,
            };
            self.row.push_cell(
                &mut self.flow.canvas.book,
                &table.geometry,
                std::iter::once(span),
            );
        }
        table.row(&mut self.flow, &self.row);
    }

    /// Fixes the column widths from the header and the rows read so far, starts the table and
    /// draws those rows.
    fn flush_sample(&mut self) {
        if self.table.is_some() {
            return;
        }
        let (left, width) = (self.flow.left, self.flow.width());
        let book = &mut self.flow.canvas.book;
        let mut glyphs = Vec::new();
        let extents: Vec<(f32, f32)> = self
            .columns
            .iter()
            .enumerate()
            .map(|(index, column)| {
                let header = Span {
                    text: &column.name,
                    style: Style::Bold,
                    rgb: BLACK,
                };
                let mut extent = table::extent(book, [header], SIZE, &mut glyphs);
                // Room for values wider than the first rows' (ids grow), so numbers do not wrap.
                let reserve = Span {
                    text: reserve_for(column.kind),
                    style: Style::Regular,
                    rgb: BLACK,
                };
                let (reserved, _) = table::extent(book, [reserve], SIZE, &mut glyphs);
                extent.0 = extent.0.max(reserved);
                extent.1 = extent.1.max(reserved);
                for row in &self.sample {
                    let span = Span {
                        text: row.get(index).map_or("", String::as_str),
                        style: Style::Regular,
                        rgb: BLACK,
                    };
                    let (min, natural) = table::extent(book, [span], SIZE, &mut glyphs);
                    extent.0 = extent.0.max(min);
                    extent.1 = extent.1.max(natural);
                }
                extent
            })
            .collect();
        let right_aligned = self
            .columns
            .iter()
            .map(|c| matches!(c.kind, ColumnKind::Integer | ColumnKind::Float))
            .collect();
        let geometry = Geometry::fit(left, width, SIZE, PAD, &extents, &[], right_aligned);
        let mut header = RowLayout::default();
        for column in &self.columns {
            let span = Span {
                text: &column.name,
                style: Style::Bold,
                rgb: BLACK,
            };
            header.push_cell(book, &geometry, [span]);
        }
        let table = TableFlow {
            geometry,
            header,
            has_header: !self.columns.is_empty(),
        };
        let mut started = false;
        for cells in std::mem::take(&mut self.sample) {
            self.row.clear();
            for text in &cells {
                let span = Span {
                    text,
                    style: Style::Regular,
                    rgb: BLACK,
                };
                self.row
                    .push_cell(&mut self.flow.canvas.book, &table.geometry, [span]);
            }
            if !started {
                // The header starts a page only with the first row beside it.
                table.start(&mut self.flow, Some(&self.row));
                started = true;
            }
            table.row(&mut self.flow, &self.row);
        }
        if !started {
            table.start(&mut self.flow, None);
        }
        self.table = Some(table);
    }
}
