//! Measures the PDF renderer: `pdf_bench rows N OUT` renders N benchmark rows, `pdf_bench report S
//! OUT` a progress report of S sessions; each prints the time taken and the file size. Run it in
//! release under `/usr/bin/time -v` for the peak RSS.

// A command-line measurement tool: printing its figures is its job.
#![allow(clippy::print_stdout)]

use std::io::Cursor;
use std::time::Instant;

use export_render::{PdfRenderer, Renderer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map_or("rows", String::as_str);
    let count: u64 = args.get(2).map_or(Ok(10_000), |n| n.parse())?;
    let out_path = args.get(3);
    let renderer = PdfRenderer::with_system_fonts()?;
    let mut out = Cursor::new(Vec::new());
    let started = Instant::now();
    match what {
        "rows" => {
            let mut rows = export_render::bench::BenchRows::new(count);
            renderer.render_rows(&mut rows, &mut out)?;
        }
        "report" => {
            let document = export_render::bench::progress_report(count);
            let built = started.elapsed();
            renderer.render_document(&document, &mut out)?;
            println!(
                "document model built in {:.1} ms",
                built.as_secs_f64() * 1000.0
            );
        }
        other => return Err(format!("unknown measurement {other}; use rows or report").into()),
    }
    let elapsed = started.elapsed().as_secs_f64();
    let bytes = out.into_inner();
    println!(
        "{what} {count}: {:.1} ms, {:.0} per second, {} bytes",
        elapsed * 1000.0,
        count as f64 / elapsed,
        bytes.len()
    );
    if let Some(path) = out_path {
        std::fs::write(path, &bytes)?;
    }
    Ok(())
}
