//! `export-cli bench`: renders the synthetic rows of `../shared/bench-dataset.md` in one format
//! and prints one JSON line with the rows, seconds, rows per second, bytes and peak memory.

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use export_domain::ExportFormat;
use export_render::bench::BenchRows;
use export_render::{
    CsvRenderer, DocumentMeta, DocxRenderer, JsonRenderer, PdfRenderer, Renderer, TemplateEngine,
    XlsxRenderer,
};

fn renderer(format: ExportFormat) -> anyhow::Result<Box<dyn Renderer>> {
    Ok(match format {
        ExportFormat::Csv => Box::new(CsvRenderer::default()),
        ExportFormat::Json => Box::new(JsonRenderer),
        ExportFormat::Xlsx => Box::new(XlsxRenderer {
            sheet_name: "Sessions".to_owned(),
            chart: None,
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
    let meta = DocumentMeta::new(
        "Client Progress Report",
        "Dr. A. Rivera, PsyD",
        chrono::DateTime::from_timestamp(1_767_258_000, 0).unwrap_or_default(),
    );
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

/// Pushes `jobs` small progress reports (one month, PDF) through the whole engine on a fresh
/// SQLite database and storage directory: submit, claim, gather, render, encrypt, store,
/// complete with audit. Also times gathering and rendering alone, to show the engine's overhead.
pub fn bench_engine(jobs: u64) -> anyhow::Result<String> {
    use std::sync::Arc;

    use export_core::engine::{Actor, EngineConfig, ExportEngine, ExportRequest, RequestOrigin};
    use export_core::source::StoreSource;
    use export_core::storage::{LocalFileStore, MasterKey};
    use export_domain::{ProgressReportInput, Role};

    const THERAPIST: &str = "7d25348d-75bb-5e22-8073-05bfd9b3230c";
    const PATIENT: &str = "54b440a5-f8fe-5f5d-bf49-e04fc5321bf1";
    let folder = tempfile::tempdir()?;
    let store = export_store::Store::open(
        folder
            .path()
            .join("bench.db")
            .to_str()
            .context("a UTF-8 path")?,
    )?;
    let practice = export_store::seed::load_practice(Path::new("fixtures"))?;
    store.transaction(|conn| export_store::seed::seed_practice(conn, &practice))?;
    let files = LocalFileStore::new(folder.path().join("files"), MasterKey::generate())?;
    let engine = ExportEngine::new(
        store.clone(),
        Arc::new(files),
        Arc::new(StoreSource(store)),
        EngineConfig::default(),
    );
    let actor = Actor {
        user_id: THERAPIST.parse()?,
        role: Role::Therapist,
    };
    let request = ProgressReportInput {
        patient_id: PATIENT.into(),
        start_date: "2025-03-01".into(),
        end_date: "2025-03-31".into(),
        format: "pdf".into(),
        ..Default::default()
    }
    .validate()
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = chrono::Utc::now();

    let started = Instant::now();
    for _ in 0..jobs {
        engine.submit(
            &actor,
            ExportRequest::ProgressReport(request.clone()),
            None,
            &RequestOrigin::default(),
            now,
        )?;
    }
    let submit_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut done = 0u64;
    while engine.run_next("bench", now)?.is_some() {
        done += 1;
    }
    let run_seconds = started.elapsed().as_secs_f64();

    // The same work without the engine: the Producer its workers use, into memory.
    let producer = export_core::produce::Producer::new();
    let patient_records = practice.of_patient(request.patient_id);
    let started = Instant::now();
    for _ in 0..jobs {
        let request = ExportRequest::ProgressReport(request.clone());
        producer.produce(
            &patient_records,
            &request,
            None,
            now,
            &mut std::io::Cursor::new(Vec::new()),
        )?;
    }
    let render_seconds = started.elapsed().as_secs_f64();
    let per = |s: f64| (s / jobs.max(1) as f64 * 1e5).round() / 100.0;
    Ok(serde_json::json!({
        "bench": "engine",
        "backend": "sqlite",
        "jobs": done,
        "submits_per_s": (jobs as f64 / submit_seconds).round(),
        "jobs_per_s": (done as f64 / run_seconds).round(),
        "ms_per_job": per(run_seconds),
        "render_ms_per_job": per(render_seconds),
        "overhead_ms_per_job": ((per(run_seconds) - per(render_seconds)) * 100.0).round() / 100.0,
        "peak_rss_mb": peak_rss_mb(),
    })
    .to_string())
}
