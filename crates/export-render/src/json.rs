//! JSON for tables: one array of objects, keys in column order, in the spacing of Python's
//! `json.dump` defaults (`", "` and `": "`), so figures and digests compare with the seed stack.
//! Numbers and booleans stay typed, dates are strings, non-finite floats are `null`.

use export_domain::ExportFormat;

use crate::table::for_each_row;
use crate::text::write_float;
use crate::{Cell, Output, RenderError, RenderOutcome, Renderer, RowSource};

const FLUSH_AT: usize = 256 * 1024;

/// Writes tables as a JSON array of objects.
#[derive(Debug, Clone, Default)]
pub struct JsonRenderer;

/// Appends `text` as a JSON string literal.
pub(crate) fn write_json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

impl Renderer for JsonRenderer {
    fn format(&self) -> ExportFormat {
        ExportFormat::Json
    }

    fn render_rows(
        &self,
        rows: &mut dyn RowSource,
        out: &mut dyn Output,
    ) -> Result<RenderOutcome, RenderError> {
        // Each key with its quotes and the ": " after it, escaped once.
        let keys: Vec<Vec<u8>> = rows
            .columns()
            .iter()
            .map(|column| {
                let mut key = Vec::new();
                write_json_string(&mut key, &column.name);
                key.extend_from_slice(b": ");
                key
            })
            .collect();
        let mut buffer = Vec::with_capacity(FLUSH_AT + 4096);
        buffer.push(b'[');
        let written = for_each_row(rows, |index, row| {
            buffer.extend_from_slice(if index == 0 { b"{" } else { b", {" });
            for (i, cell) in row.cells().enumerate() {
                if i > 0 {
                    buffer.extend_from_slice(b", ");
                }
                buffer.extend_from_slice(&keys[i]);
                match cell {
                    Cell::Null => buffer.extend_from_slice(b"null"),
                    Cell::Text(text) => write_json_string(&mut buffer, text),
                    Cell::Integer(v) => {
                        buffer.extend_from_slice(itoa::Buffer::new().format(v).as_bytes())
                    }
                    Cell::Float(v) if v.is_finite() => write_float(&mut buffer, v),
                    Cell::Float(_) => buffer.extend_from_slice(b"null"),
                    Cell::Bool(v) => buffer.extend_from_slice(if v { b"true" } else { b"false" }),
                    Cell::Date(_) | Cell::DateTime(_) => {
                        let mut text = Vec::new();
                        crate::text::write_cell_text(&mut text, cell);
                        buffer.push(b'"');
                        buffer.extend_from_slice(&text);
                        buffer.push(b'"');
                    }
                }
            }
            buffer.push(b'}');
            if buffer.len() >= FLUSH_AT {
                out.write_all(&buffer)?;
                buffer.clear();
            }
            Ok(())
        })?;
        buffer.push(b']');
        out.write_all(&buffer)?;
        out.flush()?;
        Ok(RenderOutcome { rows: written })
    }
}
