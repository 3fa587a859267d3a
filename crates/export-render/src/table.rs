//! The tabular row model: columns with a kind, and rows streamed one at a time through a reused
//! `RowBuffer`, so a million-row export allocates nothing per row.

use std::ops::Range;

use chrono::{DateTime, NaiveDate, Utc};

use crate::RenderError;

/// What a column holds; typed formats (XLSX, JSON) keep the type, text formats print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    Integer,
    Float,
    Bool,
    Date,
    DateTime,
}

/// A column of a table: its machine name (CSV and JSON keys), its kind, and what it means (a
/// workbook's data dictionary says it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
    pub meaning: Option<String>,
}

impl Column {
    pub fn new(name: impl Into<String>, kind: ColumnKind) -> Column {
        Column {
            name: name.into(),
            kind,
            meaning: None,
        }
    }

    /// The column with what it means.
    pub fn meaning(mut self, meaning: impl Into<String>) -> Column {
        self.meaning = Some(meaning.into());
        self
    }

    /// The header a person reads: the machine name in words, "id" in capitals
    /// ("patient_id" is "Patient ID", "duration_minutes" "Duration minutes").
    pub fn label(&self) -> String {
        let words: Vec<String> = self
            .name
            .split('_')
            .filter(|w| !w.is_empty())
            .enumerate()
            .map(|(index, word)| match word {
                "id" | "ip" | "url" => word.to_ascii_uppercase(),
                _ if index == 0 => {
                    let mut chars = word.chars();
                    chars
                        .next()
                        .map(|c| c.to_uppercase().chain(chars).collect())
                        .unwrap_or_default()
                }
                _ => word.to_owned(),
            })
            .collect();
        if words.is_empty() {
            self.name.clone()
        } else {
            words.join(" ")
        }
    }
}

impl ColumnKind {
    /// The kind in words, as a data dictionary gives it.
    pub const fn words(self) -> &'static str {
        match self {
            ColumnKind::Text => "text",
            ColumnKind::Integer => "whole number",
            ColumnKind::Float => "number",
            ColumnKind::Bool => "true or false",
            ColumnKind::Date => "date",
            ColumnKind::DateTime => "date and time (UTC)",
        }
    }
}

/// One cell of the current row, borrowing its text from the row buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Null,
    Text(&'a str),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Null,
    Text(u32, u32),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
}

/// The current row: cells whose text lives in one shared string, cleared and refilled for every
/// row without giving its memory back.
#[derive(Debug, Default)]
pub struct RowBuffer {
    text: String,
    slots: Vec<Slot>,
}

impl RowBuffer {
    pub fn new() -> RowBuffer {
        RowBuffer::default()
    }

    /// Empties the row, keeping its capacity.
    pub fn clear(&mut self) {
        self.text.clear();
        self.slots.clear();
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn push_null(&mut self) {
        self.slots.push(Slot::Null);
    }

    pub fn push_text(&mut self, text: &str) {
        self.push_text_with(|buffer| buffer.push_str(text));
    }

    /// Appends a text cell written straight into the row's buffer by `write`.
    pub fn push_text_with(&mut self, write: impl FnOnce(&mut String)) {
        let start = self.text.len();
        write(&mut self.text);
        self.slots
            .push(Slot::Text(start as u32, self.text.len() as u32));
    }

    pub fn push_integer(&mut self, value: i64) {
        self.slots.push(Slot::Integer(value));
    }

    pub fn push_float(&mut self, value: f64) {
        self.slots.push(Slot::Float(value));
    }

    pub fn push_bool(&mut self, value: bool) {
        self.slots.push(Slot::Bool(value));
    }

    /// Appends a cell held in memory.
    pub fn push_owned(&mut self, cell: OwnedCell) {
        match cell {
            OwnedCell::Null => self.push_null(),
            OwnedCell::Text(text) => self.push_text(&text),
            OwnedCell::Integer(v) => self.push_integer(v),
            OwnedCell::Float(v) => self.push_float(v),
            OwnedCell::Bool(v) => self.push_bool(v),
            OwnedCell::Date(v) => self.push_date(v),
            OwnedCell::DateTime(v) => self.push_datetime(v),
        }
    }

    pub fn push_date(&mut self, value: NaiveDate) {
        self.slots.push(Slot::Date(value));
    }

    pub fn push_datetime(&mut self, value: DateTime<Utc>) {
        self.slots.push(Slot::DateTime(value));
    }

    /// The cell at `index`; `Null` past the end.
    pub fn cell(&self, index: usize) -> Cell<'_> {
        match self.slots.get(index) {
            None | Some(Slot::Null) => Cell::Null,
            Some(&Slot::Text(start, end)) => Cell::Text(
                &self.text[Range {
                    start: start as usize,
                    end: end as usize,
                }],
            ),
            Some(&Slot::Integer(v)) => Cell::Integer(v),
            Some(&Slot::Float(v)) => Cell::Float(v),
            Some(&Slot::Bool(v)) => Cell::Bool(v),
            Some(&Slot::Date(v)) => Cell::Date(v),
            Some(&Slot::DateTime(v)) => Cell::DateTime(v),
        }
    }

    /// The cells in order.
    pub fn cells(&self) -> impl Iterator<Item = Cell<'_>> + '_ {
        (0..self.slots.len()).map(|i| self.cell(i))
    }
}

/// A table streamed row by row.
pub trait RowSource {
    /// The columns, fixed for the whole table.
    fn columns(&self) -> &[Column];

    /// Fills `row` (already cleared) with the next row; false when there are no more rows.
    fn next_row(&mut self, row: &mut RowBuffer) -> Result<bool, RenderError>;

    /// How many rows the source will yield, when it knows; renderers with row limits use it to
    /// refuse before starting.
    fn row_count_hint(&self) -> Option<u64> {
        None
    }
}

/// Drives `source` to the end, checking each row has one cell per column and calling `visit`.
pub(crate) fn for_each_row(
    source: &mut dyn RowSource,
    mut visit: impl FnMut(u64, &RowBuffer) -> Result<(), RenderError>,
) -> Result<u64, RenderError> {
    let expected = source.columns().len();
    let mut row = RowBuffer::new();
    let mut index = 0u64;
    loop {
        row.clear();
        if !source.next_row(&mut row)? {
            return Ok(index);
        }
        if row.len() != expected {
            return Err(RenderError::RowShape {
                row: index,
                got: row.len(),
                expected,
            });
        }
        visit(index, &row)?;
        index += 1;
    }
}

/// A cell of a table held in memory.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedCell {
    Null,
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
}

impl From<Option<String>> for OwnedCell {
    /// Text, or null for nothing.
    fn from(text: Option<String>) -> OwnedCell {
        text.map_or(OwnedCell::Null, OwnedCell::Text)
    }
}

impl From<Cell<'_>> for OwnedCell {
    fn from(cell: Cell<'_>) -> OwnedCell {
        match cell {
            Cell::Null => OwnedCell::Null,
            Cell::Text(text) => OwnedCell::Text(text.to_owned()),
            Cell::Integer(v) => OwnedCell::Integer(v),
            Cell::Float(v) => OwnedCell::Float(v),
            Cell::Bool(v) => OwnedCell::Bool(v),
            Cell::Date(v) => OwnedCell::Date(v),
            Cell::DateTime(v) => OwnedCell::DateTime(v),
        }
    }
}

/// A source whose first rows are read ahead, to be looked at before any is written (an XLSX's
/// column widths), and then yielded again, in order, before the rest.
pub(crate) struct ReadAhead<'s> {
    source: &'s mut dyn RowSource,
    pub(crate) ahead: std::collections::VecDeque<Vec<OwnedCell>>,
}

impl<'s> ReadAhead<'s> {
    /// Reads up to `count` rows of `source` ahead.
    pub(crate) fn new(source: &'s mut dyn RowSource, count: usize) -> Result<Self, RenderError> {
        let mut ahead = std::collections::VecDeque::with_capacity(count.min(1024));
        let mut row = RowBuffer::new();
        while ahead.len() < count {
            row.clear();
            if !source.next_row(&mut row)? {
                break;
            }
            ahead.push_back(row.cells().map(OwnedCell::from).collect());
        }
        Ok(ReadAhead { source, ahead })
    }
}

impl RowSource for ReadAhead<'_> {
    fn columns(&self) -> &[Column] {
        self.source.columns()
    }

    fn next_row(&mut self, row: &mut RowBuffer) -> Result<bool, RenderError> {
        let Some(cells) = self.ahead.pop_front() else {
            return self.source.next_row(row);
        };
        for cell in cells {
            row.push_owned(cell);
        }
        Ok(true)
    }

    fn row_count_hint(&self) -> Option<u64> {
        self.source.row_count_hint()
    }
}

/// A small table already in memory, each cell typed: for exports whose rows are few (a
/// session-notes CSV), not for datasets.
#[derive(Debug, Clone)]
pub struct MemoryRows {
    columns: Vec<Column>,
    rows: std::vec::IntoIter<Vec<OwnedCell>>,
    count: u64,
}

/// A table in memory whose cells are all text or empty.
pub type TextRows = MemoryRows;

impl MemoryRows {
    /// A table of text cells (`None` for an empty one).
    pub fn new(columns: Vec<Column>, rows: Vec<Vec<Option<String>>>) -> MemoryRows {
        let rows = rows
            .into_iter()
            .map(|row| row.into_iter().map(OwnedCell::from).collect())
            .collect();
        MemoryRows::typed(columns, rows)
    }

    /// A table of typed cells, each in its column's kind.
    pub fn typed(columns: Vec<Column>, rows: Vec<Vec<OwnedCell>>) -> MemoryRows {
        MemoryRows {
            count: rows.len() as u64,
            columns,
            rows: rows.into_iter(),
        }
    }
}

impl RowSource for MemoryRows {
    fn columns(&self) -> &[Column] {
        &self.columns
    }

    fn next_row(&mut self, row: &mut RowBuffer) -> Result<bool, RenderError> {
        let Some(cells) = self.rows.next() else {
            return Ok(false);
        };
        for cell in cells {
            row.push_owned(cell);
        }
        Ok(true)
    }

    fn row_count_hint(&self) -> Option<u64> {
        Some(self.count)
    }
}
