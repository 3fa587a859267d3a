//! Throughput of the DOCX renderer on the benchmark rows (shared/bench-dataset.md): renders N
//! rows (first argument, default 10,000) as one table to a file (second argument, default
//! `bench.docx` in the temp directory) and prints rows per second. Measure memory with
//! `/usr/bin/time -v target/release/examples/docx_bench 10000`.

#![allow(clippy::print_stdout, reason = "an example reports on stdout")]

use std::fs::File;
use std::io::BufWriter;
use std::time::Instant;

use chrono::{Days, NaiveDate};
use export_render::{
    Column, ColumnKind, DocxRenderer, RenderError, Renderer, RowBuffer, RowSource,
};

/// The benchmark rows `rows(n)`, with the typed columns of the dataset.
struct BenchRows {
    columns: Vec<Column>,
    next: u64,
    count: u64,
}

impl BenchRows {
    fn new(count: u64) -> BenchRows {
        let columns = [
            ("id", ColumnKind::Integer),
            ("patient", ColumnKind::Text),
            ("session_date", ColumnKind::Text),
            ("duration_minutes", ColumnKind::Integer),
            ("mood", ColumnKind::Text),
            ("score", ColumnKind::Float),
            ("topics", ColumnKind::Text),
            ("note", ColumnKind::Text),
            ("completed", ColumnKind::Bool),
            ("fee", ColumnKind::Float),
        ]
        .into_iter()
        .map(|(name, kind)| Column::new(name, kind))
        .collect();
        BenchRows {
            columns,
            next: 0,
            count,
        }
    }
}

impl RowSource for BenchRows {
    fn columns(&self) -> &[Column] {
        &self.columns
    }

    fn next_row(&mut self, row: &mut RowBuffer) -> Result<bool, RenderError> {
        use std::fmt::Write as _;
        if self.next == self.count {
            return Ok(false);
        }
        let i = self.next;
        self.next += 1;
        let start = NaiveDate::from_ymd_opt(2025, 1, 1).expect("a valid date");
        row.push_integer(i as i64);
        row.push_text_with(|s| {
            let _ = write!(s, "Patient {:03}", i % 997);
        });
        row.push_text_with(|s| {
            let date = start + Days::new(i % 365);
            let _ = write!(s, "{}", date.format("%Y-%m-%d"));
        });
        row.push_integer(30 + (i % 60) as i64);
        row.push_text(["positive", "neutral", "low"][(i % 3) as usize]);
        row.push_float(((i * 37) % 1000) as f64 / 10.0);
        row.push_text(
            [
                "anxiety; work stress",
                "sleep; relationships",
                "grief",
                "panic; avoidance",
            ][(i % 4) as usize],
        );
        row.push_text_with(|s| {
            let _ = write!(
                s,
                "Session {i}: discussed coping strategies, reviewed homework and agreed next steps."
            );
        });
        row.push_bool(i % 2 == 0);
        row.push_float(((i * 5) % 2000) as f64 / 4.0);
        Ok(true)
    }

    fn row_count_hint(&self) -> Option<u64> {
        Some(self.count)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: u64 = args.next().map_or(Ok(10_000), |n| n.parse())?;
    let path = args
        .next()
        .map_or_else(|| std::env::temp_dir().join("bench.docx"), Into::into);
    let mut out = BufWriter::new(File::create(&path)?);
    let started = Instant::now();
    let outcome = DocxRenderer::new().render_rows(&mut BenchRows::new(count), &mut out)?;
    drop(out);
    let seconds = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&path)?.len();
    println!(
        "{} rows in {:.3} s: {:.0} rows/s, {} bytes, {}",
        outcome.rows,
        seconds,
        outcome.rows as f64 / seconds,
        bytes,
        path.display()
    );
    Ok(())
}
