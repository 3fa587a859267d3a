//! XLSX through rust_xlsxwriter in constant-memory mode: rows are flushed to a scratch file as
//! they are written (the one IO this crate allows itself, inside the library), so memory stays
//! flat however many rows there are. Numbers, booleans and dates stay typed; the header row is
//! bold and frozen; column widths follow the column kinds. Text is always written as a string
//! cell, so a value like `=SUM(A1)` shows as text and never runs as a formula.

use chrono::{Datelike, Timelike};
use export_domain::ExportFormat;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, XlsxError};

use crate::table::for_each_row;
use crate::{Cell, ColumnKind, Output, RenderError, RenderOutcome, Renderer, RowSource};

/// Data rows one sheet holds (Excel's 1,048,576 rows less the header).
pub const MAX_XLSX_ROWS: u64 = 1_048_575;

/// Writes tables as one-sheet workbooks.
#[derive(Debug, Clone)]
pub struct XlsxRenderer {
    /// The worksheet's name.
    pub sheet_name: String,
}

impl Default for XlsxRenderer {
    fn default() -> Self {
        XlsxRenderer {
            sheet_name: "Export".to_owned(),
        }
    }
}

fn writer_error(err: XlsxError) -> RenderError {
    RenderError::Writer {
        format: "xlsx",
        reason: err.to_string(),
    }
}

/// A width in characters that fits the header and typical values of the column.
fn column_width(name: &str, kind: ColumnKind) -> f64 {
    let typical = match kind {
        ColumnKind::Integer => 10,
        ColumnKind::Float => 12,
        ColumnKind::Bool => 8,
        ColumnKind::Date => 12,
        ColumnKind::DateTime => 20,
        ColumnKind::Text => 24,
    };
    (name.chars().count() + 2).max(typical).min(60) as f64
}

impl Renderer for XlsxRenderer {
    fn format(&self) -> ExportFormat {
        ExportFormat::Xlsx
    }

    fn render_rows(
        &self,
        rows: &mut dyn RowSource,
        out: &mut dyn Output,
    ) -> Result<RenderOutcome, RenderError> {
        if let Some(count) = rows.row_count_hint().filter(|&n| n > MAX_XLSX_ROWS) {
            return Err(RenderError::TooManyRows {
                format: "xlsx",
                rows: count,
                limit: MAX_XLSX_ROWS,
            });
        }
        let header = Format::new().set_bold();
        let date = Format::new().set_num_format("yyyy-mm-dd");
        let date_time = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
        let mut workbook = Workbook::new();
        let sheet = workbook
            .add_worksheet_with_constant_memory()
            .map_err(writer_error)?;
        sheet
            .set_name(self.sheet_name.as_str())
            .map_err(writer_error)?;
        for (col, column) in rows.columns().iter().enumerate() {
            let col = col as u16;
            sheet
                .set_column_width(col, column_width(&column.name, column.kind))
                .map_err(writer_error)?;
            sheet
                .write_string_with_format(0, col, column.name.as_str(), &header)
                .map_err(writer_error)?;
        }
        sheet.set_freeze_panes(1, 0).map_err(writer_error)?;
        let written = for_each_row(rows, |index, row| {
            if index >= MAX_XLSX_ROWS {
                return Err(RenderError::TooManyRows {
                    format: "xlsx",
                    rows: index + 1,
                    limit: MAX_XLSX_ROWS,
                });
            }
            let r = (index + 1) as u32;
            for (col, cell) in row.cells().enumerate() {
                let col = col as u16;
                let result = match cell {
                    Cell::Null => continue,
                    Cell::Text(text) => sheet.write_string(r, col, text),
                    Cell::Integer(v) => sheet.write_number(r, col, v as f64),
                    Cell::Float(v) => sheet.write_number(r, col, v),
                    Cell::Bool(v) => sheet.write_boolean(r, col, v),
                    Cell::Date(d) => {
                        let value = ExcelDateTime::from_ymd(
                            d.year() as u16,
                            d.month() as u8,
                            d.day() as u8,
                        )
                        .map_err(writer_error)?;
                        sheet.write_datetime_with_format(r, col, &value, &date)
                    }
                    Cell::DateTime(at) => {
                        let value = ExcelDateTime::from_ymd(
                            at.year() as u16,
                            at.month() as u8,
                            at.day() as u8,
                        )
                        .and_then(|d| d.and_hms(at.hour() as u16, at.minute() as u8, at.second()))
                        .map_err(writer_error)?;
                        sheet.write_datetime_with_format(r, col, &value, &date_time)
                    }
                };
                result.map_err(writer_error)?;
            }
            Ok(())
        })?;
        workbook.save_to_writer(&mut *out).map_err(writer_error)?;
        out.flush()?;
        Ok(RenderOutcome { rows: written })
    }
}
