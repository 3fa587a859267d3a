//! The canonical text of a cell, shared by every format that prints values as text (CSV, and the
//! table cells of PDF and DOCX): integers plain, floats in their shortest round-trip form with a
//! fractional part (`3.0`, `3.7`), booleans `true`/`false`, dates `YYYY-MM-DD`, date-times
//! RFC 3339 in UTC, null as nothing.

use chrono::SecondsFormat;

use crate::Cell;

/// Appends the canonical text of `cell` to `out`.
pub fn write_cell_text(out: &mut Vec<u8>, cell: Cell<'_>) {
    match cell {
        Cell::Null => {}
        Cell::Text(text) => out.extend_from_slice(text.as_bytes()),
        Cell::Integer(value) => out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes()),
        Cell::Float(value) => write_float(out, value),
        Cell::Bool(value) => out.extend_from_slice(if value { b"true" } else { b"false" }),
        Cell::Date(date) => {
            use std::io::Write;
            let _ = write!(out, "{}", date.format("%Y-%m-%d"));
        }
        Cell::DateTime(at) => {
            out.extend_from_slice(at.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes())
        }
    }
}

/// The canonical text of `cell` as a string.
pub fn cell_text(cell: Cell<'_>) -> String {
    let mut out = Vec::new();
    write_cell_text(&mut out, cell);
    String::from_utf8(out).expect("cell text is UTF-8")
}

/// Shortest round-trip form; `NaN` and infinities print as `NaN`, `inf`, `-inf`.
pub(crate) fn write_float(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
    } else if value.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if value > 0.0 {
        out.extend_from_slice(b"inf");
    } else {
        out.extend_from_slice(b"-inf");
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};

    use super::*;

    #[test]
    fn canonical_texts() {
        let cases = [
            (Cell::Integer(-42), "-42"),
            (Cell::Float(3.0), "3.0"),
            (Cell::Float(3.7), "3.7"),
            (Cell::Float(499.75), "499.75"),
            (Cell::Float(0.1 + 0.2), "0.30000000000000004"),
            (Cell::Bool(false), "false"),
            (Cell::Null, ""),
            (
                Cell::Date(NaiveDate::from_ymd_opt(2025, 1, 5).unwrap()),
                "2025-01-05",
            ),
            (
                Cell::DateTime(Utc.with_ymd_and_hms(2025, 1, 5, 14, 30, 0).unwrap()),
                "2025-01-05T14:30:00Z",
            ),
        ];
        for (cell, expected) in cases {
            assert_eq!(cell_text(cell), expected, "{cell:?}");
        }
    }
}
