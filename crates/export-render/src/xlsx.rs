//! XLSX through rust_xlsxwriter in constant-memory mode: rows are flushed to a scratch file as
//! they are written (the one IO this crate allows itself, inside the library), so memory stays
//! flat however many rows there are. Numbers, booleans and dates stay typed; the header row is
//! the columns' labels ("Patient ID"), bold, frozen and filtered, and a "Data dictionary" sheet
//! gives each column's machine name, kind and meaning; column widths come from the header and the first 200 rows, and
//! wider text wraps; pages
//! print landscape, a page wide, the header repeated. Text is always written as a string
//! cell, so a value like `=SUM(A1)` shows as text and never runs as a formula.

use chrono::{Datelike, Timelike};
use export_domain::ExportFormat;
use rust_xlsxwriter::{
    Chart, ChartDataLabel, ChartType, ExcelDateTime, Format, FormatAlign, Workbook, XlsxError,
};

use crate::table::{OwnedCell, ReadAhead, for_each_row};
use crate::{Cell, Output, RenderError, RenderOutcome, Renderer, RowSource};

/// Data rows one sheet holds (Excel's 1,048,576 rows less the header).
pub const MAX_XLSX_ROWS: u64 = 1_048_575;

/// Writes tables as one-sheet workbooks.
#[derive(Debug, Clone)]
pub struct XlsxRenderer {
    /// The worksheet's name.
    pub sheet_name: String,
    /// A native chart of two of the table's columns, drawn beside the rows when there are few
    /// enough of them to read as a picture.
    pub chart: Option<XlsxChart>,
}

impl Default for XlsxRenderer {
    fn default() -> Self {
        XlsxRenderer {
            sheet_name: "Export".to_owned(),
            chart: None,
        }
    }
}

/// A bar chart of a workbook's own cells: one bar per row, labelled by one column, as long as
/// another (a goal's progress): an Excel chart over the sheet's ranges, so it follows edits.
#[derive(Debug, Clone, PartialEq)]
pub struct XlsxChart {
    pub title: String,
    /// What the chart shows, for a screen reader (the chart's alternative text).
    pub alt: String,
    /// The column whose cells label the bars.
    pub label_column: String,
    /// The column whose numbers the bars draw.
    pub value_column: String,
    /// The value axis's top (100 for percentages), or automatic.
    pub max: Option<f64>,
    /// Excel's number format of the values ("0\"%\"").
    pub num_format: String,
    /// The chart is drawn only for 1 to this many rows.
    pub most_rows: u64,
}

impl XlsxChart {
    /// The name of the sheet the chart and its numbers stand on.
    pub const SHEET: &'static str = "Chart";

    /// Adds a sheet with the chart and the `points` it draws (label, value), when there are any
    /// (the caller draws no chart over more than `most_rows` rows). The points are copied onto
    /// that sheet (a short table: the numbers behind the picture) because the data sheet is
    /// written in constant-memory mode, which keeps no cells for a chart to cache, and a chart
    /// without cached labels shows numbers for them in most readers.
    fn draw(
        &self,
        workbook: &mut Workbook,
        points: &[(String, Option<f64>)],
    ) -> Result<(), XlsxError> {
        if points.is_empty() {
            return Ok(());
        }
        let header = Format::new().set_bold();
        let sheet = workbook.add_worksheet();
        sheet.set_name(Self::SHEET)?;
        sheet.write_string_with_format(0, 0, self.label_column.as_str(), &header)?;
        sheet.write_string_with_format(0, 1, self.value_column.as_str(), &header)?;
        sheet.set_column_width(0, 48)?;
        sheet.set_column_width(1, 20)?;
        for (index, (label, value)) in points.iter().enumerate() {
            let row = index as u32 + 1;
            sheet.write_string(row, 0, label.as_str())?;
            if let Some(value) = value {
                sheet.write_number(row, 1, *value)?;
            }
        }
        let last = points.len() as u32;
        let mut chart = Chart::new(ChartType::Bar);
        chart
            .add_series()
            .set_name(self.value_column.as_str())
            .set_categories((Self::SHEET, 1, 0, last, 0))
            .set_values((Self::SHEET, 1, 1, last, 1))
            .set_data_label(ChartDataLabel::new().show_value());
        chart.title().set_name(self.title.as_str());
        chart.set_alt_text(self.alt.as_str());
        chart.legend().set_hidden();
        // The first row's bar at the top, as the rows read.
        chart.y_axis().set_reverse();
        let axis = chart.x_axis();
        axis.set_min(0).set_num_format(self.num_format.as_str());
        if let Some(max) = self.max {
            axis.set_max(max);
        }
        chart.set_width(640);
        chart.set_height(110 + 24 * last);
        sheet.insert_chart(0, 3, &chart)?;
        Ok(())
    }
}

fn writer_error(err: XlsxError) -> RenderError {
    RenderError::Writer {
        format: "xlsx",
        reason: err.to_string(),
    }
}

/// The name of the sheet that says what every column of the data sheet is.
pub const DICTIONARY_SHEET: &str = "Data dictionary";

/// Adds the data dictionary: for every column of the data, its header, its machine name (the
/// CSV's and JSON's), its kind and what it means.
fn dictionary(workbook: &mut Workbook, columns: &[crate::Column]) -> Result<(), XlsxError> {
    let header = Format::new().set_bold();
    let wrapped = Format::new().set_text_wrap().set_align(FormatAlign::Top);
    let sheet = workbook.add_worksheet();
    sheet.set_name(DICTIONARY_SHEET)?;
    for (col, (title, width)) in [("Header", 24), ("Name", 24), ("Type", 20), ("Meaning", 70)]
        .into_iter()
        .enumerate()
    {
        sheet.set_column_width(col as u16, width)?;
        sheet.write_string_with_format(0, col as u16, title, &header)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    for (index, column) in columns.iter().enumerate() {
        let row = index as u32 + 1;
        sheet.write_string(row, 0, column.label())?;
        sheet.write_string(row, 1, column.name.as_str())?;
        sheet.write_string(row, 2, column.kind.words())?;
        sheet.write_string_with_format(
            row,
            3,
            column.meaning.as_deref().unwrap_or(""),
            &wrapped,
        )?;
    }
    Ok(())
}

/// Rows read before the first is written, to size the columns by.
const MEASURED_ROWS: usize = 200;

/// A column's width in characters: its header's and the widest of its first rows' values (the
/// longest line of a text), between 8 and 60; wider text wraps.
fn column_width(name: &str, cells: impl Iterator<Item = usize>) -> usize {
    let widest = cells.max().unwrap_or(0);
    (name.chars().count() + 2).max(widest + 1).clamp(8, 60)
}

/// How many characters `cell` shows as.
fn shown_width(cell: &OwnedCell) -> usize {
    match cell {
        OwnedCell::Null => 0,
        OwnedCell::Text(text) => text.lines().map(|l| l.chars().count()).max().unwrap_or(0),
        OwnedCell::Integer(v) => v.to_string().len(),
        OwnedCell::Float(_) => 12,
        OwnedCell::Bool(_) => 5,
        OwnedCell::Date(_) => 10,
        OwnedCell::DateTime(_) => 19,
    }
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
        let mut rows = ReadAhead::new(rows, MEASURED_ROWS)?;
        let widths: Vec<usize> = (0..rows.columns().len())
            .map(|col| {
                let cells = rows
                    .ahead
                    .iter()
                    .filter_map(|row| row.get(col))
                    .map(shown_width);
                column_width(&rows.columns()[col].label(), cells)
            })
            .collect();
        let columns = rows.columns().to_vec();
        let rows: &mut dyn RowSource = &mut rows;
        for (col, column) in rows.columns().iter().enumerate() {
            let width = widths[col];
            let col = col as u16;
            sheet
                .set_column_width(col, width as f64)
                .map_err(writer_error)?;
            sheet
                .write_string_with_format(0, col, column.label().as_str(), &header)
                .map_err(writer_error)?;
        }
        sheet.set_freeze_panes(1, 0).map_err(writer_error)?;
        // Printed landscape, as wide as a page, the header row on every page.
        sheet.set_landscape().set_print_fit_to_pages(1, 0);
        sheet.set_repeat_rows(0, 0).map_err(writer_error)?;
        // Long text wraps inside its column rather than running under the next one.
        let wrapped = Format::new().set_text_wrap().set_align(FormatAlign::Top);
        // The cells a chart draws, kept while there may be few enough of them.
        let column = |name: &str| rows.columns().iter().position(|c| c.name == name);
        let chart_columns = self.chart.as_ref().and_then(|chart| {
            Some((
                chart,
                column(&chart.label_column)?,
                column(&chart.value_column)?,
            ))
        });
        let mut points: Vec<(String, Option<f64>)> = Vec::new();
        let written = for_each_row(rows, |index, row| {
            if index >= MAX_XLSX_ROWS {
                return Err(RenderError::TooManyRows {
                    format: "xlsx",
                    rows: index + 1,
                    limit: MAX_XLSX_ROWS,
                });
            }
            let r = (index + 1) as u32;
            if let Some((chart, label, value)) = chart_columns
                && index < chart.most_rows
            {
                let mut point = (String::new(), None);
                for (col, cell) in row.cells().enumerate() {
                    match cell {
                        Cell::Text(text) if col == label => point.0 = text.to_owned(),
                        Cell::Integer(v) if col == value => point.1 = Some(v as f64),
                        Cell::Float(v) if col == value => point.1 = Some(v),
                        _ => {}
                    }
                }
                points.push(point);
            }
            for (col, cell) in row.cells().enumerate() {
                let col = col as u16;
                let result = match cell {
                    Cell::Null => continue,
                    // Only text wider than its column needs wrapping (and its format).
                    Cell::Text(text)
                        if text.contains('\n')
                            || (text.len() > widths[usize::from(col)]
                                && text.chars().count() > widths[usize::from(col)]) =>
                    {
                        sheet.write_string_with_format(r, col, text, &wrapped)
                    }
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
        // A filter on every column of the header.
        let last_column = (rows.columns().len() as u16).saturating_sub(1);
        sheet
            .autofilter(0, 0, written as u32, last_column)
            .map_err(writer_error)?;
        if let Some((chart, _, _)) = chart_columns
            && written <= chart.most_rows
        {
            chart.draw(&mut workbook, &points).map_err(writer_error)?;
        }
        dictionary(&mut workbook, &columns).map_err(writer_error)?;
        workbook.save_to_writer(&mut *out).map_err(writer_error)?;
        out.flush()?;
        Ok(RenderOutcome { rows: written })
    }
}
