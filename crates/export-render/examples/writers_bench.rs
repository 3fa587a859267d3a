//! Measures the hand-written CSV writer against the `csv` crate writing the same benchmark rows
//! (../shared/bench-dataset.md) to the same bytes: a hand-written writer stays only while it is
//! at least 1.5 times faster than the crate made for the job. `writers_bench [ROWS]` (default
//! 1,000,000) prints one JSON line: rows a second of each, best of three, their ratio and the
//! verdict, after checking the two outputs are byte-identical; then the rate of the JSON
//! renderer, serde_json's since the same race found the hand-written one no faster.

// A command-line measurement tool: printing its figures is its job.
#![allow(clippy::print_stdout)]

use std::io::Cursor;
use std::time::Instant;

use export_render::bench::BenchRows;
use export_render::{
    CsvRenderer, JsonRenderer, Renderer, RowBuffer, RowSource, looks_like_formula, write_cell_text,
};

/// The ratio a hand-written writer must beat its crate by to stay.
const KEEP_AT: f64 = 1.5;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The benchmark rows as CSV through the `csv` crate, with the same formula neutralisation.
fn csv_crate(count: u64) -> Result<Vec<u8>> {
    let mut rows = BenchRows::new(count);
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Necessary)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::with_capacity(256 * 1024));
    let mut field = Vec::new();
    let mut write = |writer: &mut csv::Writer<Vec<u8>>, text: &[u8]| -> Result<()> {
        field.clear();
        if std::str::from_utf8(text).is_ok_and(looks_like_formula) {
            field.push(b'\'');
        }
        field.extend_from_slice(text);
        writer.write_field(&field)?;
        Ok(())
    };
    for column in rows.columns().to_vec() {
        write(&mut writer, column.name.as_bytes())?;
    }
    writer.write_record(None::<&[u8]>)?;
    let mut row = RowBuffer::new();
    let mut text = Vec::new();
    while rows.next_row(&mut row)? {
        for cell in row.cells() {
            text.clear();
            write_cell_text(&mut text, cell);
            write(&mut writer, &text)?;
        }
        writer.write_record(None::<&[u8]>)?;
        row.clear();
    }
    Ok(writer.into_inner().map_err(|e| e.to_string())?)
}

/// The benchmark rows as a JSON array of objects through serde_json.
fn ours(renderer: &dyn Renderer, count: u64) -> Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::with_capacity(256 * 1024));
    renderer.render_rows(&mut BenchRows::new(count), &mut out)?;
    Ok(out.into_inner())
}

/// Rows a second of `write`, the best of three runs.
fn best_rate(count: u64, write: &dyn Fn(u64) -> Result<Vec<u8>>) -> Result<f64> {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let bytes = write(count)?;
        best = best.min(started.elapsed().as_secs_f64());
        std::hint::black_box(bytes);
    }
    Ok(count as f64 / best)
}

fn main() -> Result<()> {
    let count: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |n| n.parse())?;
    let hand = |n| ours(&CsvRenderer::default(), n);
    if hand(10_000)? != csv_crate(10_000)? {
        return Err("csv: the two writers disagree on the bytes".into());
    }
    let hand_rate = best_rate(count, &hand)?;
    let crate_rate = best_rate(count, &csv_crate)?;
    let ratio = hand_rate / crate_rate;
    println!(
        "{{\"bench\": \"writer_vs_crate\", \"format\": \"csv\", \"rows\": {count}, \
         \"hand_written_rows_per_second\": {hand_rate:.0}, \"crate_rows_per_second\": {crate_rate:.0}, \
         \"ratio\": {ratio:.2}, \"keep_hand_written\": {}}}",
        ratio >= KEEP_AT
    );
    // JSON is serde_json's since this race found the hand-written writer no faster (json.rs).
    let json_rate = best_rate(count, &|n| ours(&JsonRenderer, n))?;
    println!(
        "{{\"bench\": \"writer_vs_crate\", \"format\": \"json\", \"rows\": {count}, \
         \"serde_json_rows_per_second\": {json_rate:.0}}}"
    );
    Ok(())
}
