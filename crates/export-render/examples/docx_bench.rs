//! Throughput of the DOCX renderer on the benchmark rows (shared/bench-dataset.md): renders N
//! rows (first argument, default 10,000) as one table to a file (second argument, default
//! `bench.docx` in the temp directory) and prints rows per second. Measure memory with
//! `/usr/bin/time -v target/release/examples/docx_bench 10000`.

#![allow(clippy::print_stdout, reason = "an example reports on stdout")]

use std::fs::File;
use std::io::BufWriter;
use std::time::Instant;

use export_render::{DocxRenderer, Renderer};

use export_render::bench::BenchRows;

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
