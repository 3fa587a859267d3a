//! `export-cli bench`: renders the synthetic rows of `../shared/bench-dataset.md` in one format
//! and prints one JSON line with the rows, seconds, rows per second, bytes and peak memory.

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use chrono::{Days, NaiveDate};
use export_domain::ExportFormat;
use export_render::{
    Column, ColumnKind, CsvRenderer, JsonRenderer, RenderError, Renderer, RowBuffer, RowSource,
    XlsxRenderer,
};

const MOODS: [&str; 3] = ["positive", "neutral", "low"];
const TOPICS: [&str; 4] = [
    "anxiety; work stress",
    "sleep; relationships",
    "grief",
    "panic; avoidance",
];

/// The benchmark rows: `rows(n)` of the dataset specification, generated on the fly.
#[derive(Debug)]
pub struct BenchRows {
    columns: Vec<Column>,
    dates: Vec<String>,
    next: u64,
    count: u64,
}

impl BenchRows {
    pub fn new(count: u64) -> BenchRows {
        let start = NaiveDate::from_ymd_opt(2025, 1, 1).expect("a valid date");
        let dates = (0..365)
            .map(|d| (start + Days::new(d)).format("%Y-%m-%d").to_string())
            .collect();
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
            dates,
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
        let i = self.next;
        if i >= self.count {
            return Ok(false);
        }
        self.next += 1;
        let mut digits = itoa::Buffer::new();
        row.push_integer(i as i64);
        row.push_text_with(|text| {
            let patient = i % 997;
            text.push_str("Patient ");
            if patient < 100 {
                text.push('0');
            }
            if patient < 10 {
                text.push('0');
            }
            text.push_str(digits.format(patient));
        });
        row.push_text(&self.dates[(i % 365) as usize]);
        row.push_integer(30 + (i % 60) as i64);
        row.push_text(MOODS[(i % 3) as usize]);
        row.push_float(((i * 37) % 1000) as f64 / 10.0);
        row.push_text(TOPICS[(i % 4) as usize]);
        row.push_text_with(|text| {
            text.push_str("Session ");
            text.push_str(digits.format(i));
            text.push_str(
                ": discussed coping strategies, reviewed homework and agreed next steps.",
            );
        });
        row.push_bool(i.is_multiple_of(2));
        row.push_float(((i * 5) % 2000) as f64 / 4.0);
        Ok(true)
    }

    fn row_count_hint(&self) -> Option<u64> {
        Some(self.count)
    }
}

/// Renders `rows` bench rows as `format` into `out` and returns the JSON line to print.
pub fn bench_rows(format: ExportFormat, rows: u64, out: &Path) -> anyhow::Result<String> {
    let renderer: Box<dyn Renderer> = match format {
        ExportFormat::Csv => Box::new(CsvRenderer::default()),
        ExportFormat::Json => Box::new(JsonRenderer),
        ExportFormat::Xlsx => Box::new(XlsxRenderer {
            sheet_name: "Sessions".to_owned(),
        }),
        other => anyhow::bail!("the row benchmark does not cover {other} yet"),
    };
    let mut file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let started = Instant::now();
    let outcome = renderer.render_rows(&mut BenchRows::new(rows), &mut file)?;
    // Rendering into the page cache; an export job adds its own fsync when it stores the file.
    let seconds = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(out)?.len();
    let line = serde_json::json!({
        "format": format.as_str(),
        "rows": outcome.rows,
        "seconds": (seconds * 1e4).round() / 1e4,
        "rows_per_s": (outcome.rows as f64 / seconds).round(),
        "bytes": bytes,
        "peak_rss_mb": peak_rss_mb(),
    });
    Ok(line.to_string())
}

/// The process's peak resident memory in MiB, from /proc (Linux); null elsewhere.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kib / 1024.0 * 10.0).round() / 10.0)
}
