//! `export-cli bench` against the reference digests of ../shared/bench-dataset.md: the CSV and
//! JSON it writes are byte-identical to the canonical forms, and the XLSX reads back typed.

use std::io::Cursor;
use std::process::Command;

use calamine::{Data, Reader, Xlsx};
use sha2::{Digest, Sha256};

/// Runs the bench for `rows` rows of `format` and returns the printed line and the file.
fn bench(format: &str, rows: u64) -> (serde_json::Value, Vec<u8>) {
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join(format!("bench.{format}"));
    let output = Command::new(env!("CARGO_BIN_EXE_export-cli"))
        .args([
            "bench",
            "--format",
            format,
            "--rows",
            &rows.to_string(),
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    (line, std::fs::read(out).unwrap())
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn csv_is_byte_identical_to_the_canonical_form() {
    for (rows, bytes, digest) in [
        (
            10,
            1_581,
            "4580e47f9dc87182d0f89b01624c4ad9015c9b791ed9f0bdb7dcad6edc602269",
        ),
        (
            1_000,
            154_746,
            "6246a053dbd42b20e4635d051deed5614c5825df2b98081057e78f712af924df",
        ),
    ] {
        let (line, file) = bench("csv", rows);
        assert_eq!(line["format"], "csv");
        assert_eq!(line["rows"], rows);
        assert_eq!(line["bytes"], bytes);
        assert!(line["rows_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(file.len(), bytes);
        assert_eq!(sha256(&file), digest, "{rows} rows");
    }
}

#[test]
fn json_is_byte_identical_to_the_reference_form() {
    let (line, file) = bench("json", 1_000);
    assert_eq!(line["bytes"], 282_668);
    assert_eq!(
        sha256(&file),
        "ef0e5ed851973ed9867d9c8a2cd087cb2e2d781878085f27f6660d8711845a5a"
    );
}

#[test]
fn xlsx_holds_the_rows_typed() {
    let (line, file) = bench("xlsx", 1_000);
    assert_eq!(line["rows"], 1_000);
    let mut workbook: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(file)).unwrap();
    let range = workbook.worksheet_range("Sessions").unwrap();
    assert_eq!(range.get_size(), (1_001, 10));
    assert_eq!(range.get((0, 7)), Some(&Data::String("Note".into())));
    // Row for i = 2: duration 32, score 7.4, completed true, fee 2.5, date as text.
    assert_eq!(range.get((3, 0)), Some(&Data::Float(2.0)));
    assert_eq!(range.get((3, 2)), Some(&Data::String("2025-01-03".into())));
    assert_eq!(range.get((3, 3)), Some(&Data::Float(32.0)));
    assert_eq!(range.get((3, 5)), Some(&Data::Float(7.4)));
    assert_eq!(range.get((3, 8)), Some(&Data::Bool(true)));
    assert_eq!(range.get((3, 9)), Some(&Data::Float(2.5)));
}

#[test]
fn formats_the_row_bench_does_not_cover_are_refused_clearly() {
    let output = Command::new(env!("CARGO_BIN_EXE_export-cli"))
        .args([
            "bench",
            "--format",
            "xml",
            "--rows",
            "1",
            "--out",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown export format \"xml\""), "{stderr}");
}

#[test]
fn pdf_rows_and_the_progress_report_render_through_the_real_renderer() {
    let (line, file) = bench("pdf", 120);
    assert_eq!(line["rows"], 120);
    assert!(file.starts_with(b"%PDF-"));

    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("report.pdf");
    let output = Command::new(env!("CARGO_BIN_EXE_export-cli"))
        .args([
            "bench",
            "--format",
            "pdf",
            "--report-sessions",
            "12",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(line["sessions"], 12);
    let text = Command::new("pdftotext")
        .arg(&out)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is installed");
    let text = String::from_utf8_lossy(&text.stdout);
    for expected in [
        "CONFIDENTIAL - PROTECTED HEALTH INFORMATION",
        "Client Progress Report",
        "Patient 042",
        "Treatment Goals",
        "12 sessions, averaging",
        "Page 1 of",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing in the report's text"
        );
    }
}

#[test]
fn the_engine_bench_pushes_every_job_through() {
    let output = Command::new(env!("CARGO_BIN_EXE_export-cli"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args(["bench-engine", "--jobs", "5"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(line["jobs"], 5);
    assert!(line["jobs_per_s"].as_f64().unwrap() > 0.0);
}
