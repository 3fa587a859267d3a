//! `export-cli bench`: renders the synthetic rows of `../shared/bench-dataset.md` in one format
//! and prints one JSON line with the rows, seconds, rows per second, bytes and peak memory.

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use export_domain::ExportFormat;
use export_render::bench::BenchRows;
use export_render::{
    CsvRenderer, DocumentMeta, DocxRenderer, JsonRenderer, PageSize, PdfRenderer, Renderer,
    TemplateEngine, XlsxRenderer,
};

fn renderer(format: ExportFormat) -> anyhow::Result<Box<dyn Renderer>> {
    Ok(match format {
        ExportFormat::Csv => Box::new(CsvRenderer::default()),
        ExportFormat::Json => Box::new(JsonRenderer),
        ExportFormat::Xlsx => Box::new(XlsxRenderer {
            sheet_name: "Sessions".to_owned(),
        }),
        ExportFormat::Pdf => Box::new(PdfRenderer::with_system_fonts()?),
        ExportFormat::Docx => Box::new(DocxRenderer::default()),
    })
}

/// The JSON line of one benchmark run.
fn report_line(
    format: ExportFormat,
    key: &str,
    count: u64,
    seconds: f64,
    out: &Path,
) -> anyhow::Result<String> {
    let bytes = std::fs::metadata(out)?.len();
    let mut line = serde_json::json!({
        "format": format.as_str(),
        "seconds": (seconds * 1e4).round() / 1e4,
        "bytes": bytes,
        "peak_rss_mb": peak_rss_mb(),
    });
    line[key] = count.into();
    if key == "rows" {
        line["rows_per_s"] = (count as f64 / seconds).round().into();
    }
    Ok(line.to_string())
}

/// Renders `rows` bench rows as `format` into `out` and returns the JSON line to print.
pub fn bench_rows(format: ExportFormat, rows: u64, out: &Path) -> anyhow::Result<String> {
    let renderer = renderer(format)?;
    let mut file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let started = Instant::now();
    let outcome = renderer.render_rows(&mut BenchRows::new(rows), &mut file)?;
    // Rendering into the page cache; an export job adds its own fsync when it stores the file.
    let seconds = started.elapsed().as_secs_f64();
    report_line(format, "rows", outcome.rows, seconds, out)
}

/// Renders the progress-report model with `sessions` sessions through the built-in template as
/// `format` (pdf or docx) into `out`, timing template, layout and writing together.
pub fn bench_report(format: ExportFormat, sessions: u64, out: &Path) -> anyhow::Result<String> {
    anyhow::ensure!(
        format.is_document(),
        "the report benchmark renders pdf or docx, not {format}"
    );
    let renderer = renderer(format)?;
    let engine = TemplateEngine::new();
    let context = export_render::bench::progress_report_context(sessions);
    let meta = DocumentMeta {
        title: "Client Progress Report".into(),
        author: "Dr. A. Rivera, PsyD".into(),
        subject: None,
        generated_at: chrono::DateTime::from_timestamp(1_767_258_000, 0).unwrap_or_default(),
        page_size: PageSize::Letter,
    };
    let mut file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let started = Instant::now();
    let document = engine.render_document("progress_report.html", &context, meta)?;
    renderer.render_document(&document, &mut file)?;
    let seconds = started.elapsed().as_secs_f64();
    report_line(format, "sessions", sessions, seconds, out)
}

/// The process's peak resident memory in MiB, from /proc (Linux); null elsewhere.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kib / 1024.0 * 10.0).round() / 10.0)
}
