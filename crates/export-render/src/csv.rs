//! CSV: RFC 4180 with `\n` line ends, fields quoted only when they hold a comma, quote or line
//! break (Python's QUOTE_MINIMAL), and text that a spreadsheet would run as a formula neutralised
//! with a leading apostrophe (see [`looks_like_formula`]). Written by hand into a reused buffer:
//! no allocation per row.

use export_domain::ExportFormat;

use crate::table::for_each_row;
use crate::text::write_cell_text;
use crate::{Cell, Output, RenderError, RenderOutcome, Renderer, RowSource};

/// Flush to the output once the buffer holds this much.
const FLUSH_AT: usize = 256 * 1024;

/// The bytes that make a field need quotes: comma, quote, line feed, carriage return.
const NEEDS_QUOTES: [bool; 256] = {
    let mut table = [false; 256];
    table[b',' as usize] = true;
    table[b'"' as usize] = true;
    table[b'\n' as usize] = true;
    table[b'\r' as usize] = true;
    table
};

/// Writes tables as CSV.
#[derive(Debug, Clone)]
pub struct CsvRenderer {
    /// Prefix text cells that [`looks_like_formula`] with `'` so spreadsheets show them as text
    /// (on by default; only exact-data consumers turn it off).
    pub neutralise_formulas: bool,
    /// Start the file with a UTF-8 byte order mark, which Excel needs to read it as UTF-8 (off
    /// by default: other readers take the mark for part of the first header).
    pub byte_order_mark: bool,
}

impl Default for CsvRenderer {
    fn default() -> Self {
        CsvRenderer {
            neutralise_formulas: true,
            byte_order_mark: false,
        }
    }
}

/// Whether a spreadsheet might read `text` as the start of a formula: it starts with `=`, `+`,
/// `-` or `@`, or their full-width forms `＝`, `＋`, `－`, `＠` (which spreadsheets with an East
/// Asian input method turn into the ASCII ones), after any run of leading blanks; or it starts
/// with a tab or a carriage return, whatever follows. Blanks are Unicode white space (space,
/// tab, line feed, carriage return, no-break space, ideographic space…) and the invisible zero
/// width space and byte order mark, which nobody sees in the cell.
pub fn looks_like_formula(text: &str) -> bool {
    match text.as_bytes().first() {
        None => false,
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => true,
        // The common case: a letter, digit or punctuation that is not a blank.
        Some(&b) if b.is_ascii() && !b.is_ascii_whitespace() && b != 0x0b => false,
        Some(_) => matches!(
            text.chars().find(|&c| !is_blank(c)),
            Some('=' | '+' | '-' | '@' | '\u{ff1d}' | '\u{ff0b}' | '\u{ff0d}' | '\u{ff20}')
        ),
    }
}

/// White space, and the zero-width characters a reader does not see.
fn is_blank(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{200b}' | '\u{feff}')
}

impl CsvRenderer {
    fn write_text(&self, buffer: &mut Vec<u8>, text: &str) {
        let prefix = self.neutralise_formulas && looks_like_formula(text);
        let quote = text.bytes().any(|b| NEEDS_QUOTES[b as usize]);
        if quote {
            buffer.push(b'"');
        }
        if prefix {
            buffer.push(b'\'');
        }
        if quote {
            for piece in text.split_inclusive('"') {
                buffer.extend_from_slice(piece.as_bytes());
                if piece.ends_with('"') {
                    buffer.push(b'"');
                }
            }
            buffer.push(b'"');
        } else {
            buffer.extend_from_slice(text.as_bytes());
        }
    }
}

/// Ends the record begun at `start`. A record of one empty field is written `""`, as Python's
/// csv module does: a bare empty line is no record to a reader, and the row would be lost.
fn end_record(buffer: &mut Vec<u8>, start: usize, fields: usize) {
    if fields == 1 && buffer.len() == start {
        buffer.extend_from_slice(b"\"\"");
    }
    buffer.push(b'\n');
}

impl Renderer for CsvRenderer {
    fn format(&self) -> ExportFormat {
        ExportFormat::Csv
    }

    fn render_rows(
        &self,
        rows: &mut dyn RowSource,
        out: &mut dyn Output,
    ) -> Result<RenderOutcome, RenderError> {
        let mut buffer = Vec::with_capacity(FLUSH_AT + 4096);
        if self.byte_order_mark {
            buffer.extend_from_slice("\u{feff}".as_bytes());
        }
        for (i, column) in rows.columns().iter().enumerate() {
            if i > 0 {
                buffer.push(b',');
            }
            self.write_text(&mut buffer, &column.name);
        }
        end_record(&mut buffer, 0, rows.columns().len());
        let written = for_each_row(rows, |_, row| {
            let start = buffer.len();
            let mut fields = 0;
            for (i, cell) in row.cells().enumerate() {
                if i > 0 {
                    buffer.push(b',');
                }
                match cell {
                    Cell::Text(text) => self.write_text(&mut buffer, text),
                    other => write_cell_text(&mut buffer, other),
                }
                fields += 1;
            }
            end_record(&mut buffer, start, fields);
            if buffer.len() >= FLUSH_AT {
                out.write_all(&buffer)?;
                buffer.clear();
            }
            Ok(())
        })?;
        out.write_all(&buffer)?;
        out.flush()?;
        Ok(RenderOutcome { rows: written })
    }
}
