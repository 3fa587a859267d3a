//! `export-cli render` from the fixtures to real files, read back as a user would: PDF text via
//! pdftotext, JSON via serde_json, XLSX via calamine; a bad request names its fields and leaves
//! no file behind.

use std::io::Cursor;
use std::process::{Command, Output};

use calamine::{Reader, Xlsx};
use export_core::testing::*;

fn export_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_export-cli"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env("RUST_BACKTRACE", "0")
        .arg("render")
        .args(args)
        .output()
        .unwrap()
}

fn pdf_text(path: &std::path::Path) -> String {
    let out = Command::new("pdftotext")
        .arg("-layout")
        .arg(path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is installed");
    // pdftotext wraps right-to-left runs in direction marks; they are not part of the text.
    String::from_utf8(out.stdout)
        .unwrap()
        .replace(['\u{200e}', '\u{200f}'], "")
}

#[test]
fn progress_report_pdf_has_the_patient_and_only_the_sections_asked_for() {
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("report.pdf");
    let output = export_cli(&[
        "--type",
        "progress_report",
        "--patient",
        NOA,
        "--from",
        "2025-01-01",
        "--to",
        "2025-06-30",
        "--without",
        "recommendations,goal_progress",
        "--format",
        "pdf",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = pdf_text(&out);
    for expected in [
        "CONFIDENTIAL - PROTECTED HEALTH INFORMATION",
        "Progress Report",
        "נועה כהן",
        "January 1, 2025 to June 30, 2025",
        "Treatment Goals",
        "Assessments",
        "Session Summary",
        "Clinical Observations",
        "Page 1 of",
    ] {
        assert!(text.contains(expected), "{expected:?} missing in\n{text}");
    }
    for absent in ["Recommendations", "Goal Progress"] {
        assert!(
            !text.contains(absent),
            "{absent:?} was left out but appears"
        );
    }
}

#[test]
fn full_record_json_carries_the_record_and_imports_again() {
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("record.json");
    let output = export_cli(&[
        "--type",
        "full_record",
        "--patient",
        LUKASZ,
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(file["record"]["header"]["patient_name"], "Łukasz Wójcik");
    assert_eq!(file["record"]["sessions"].as_array().unwrap().len(), 25);
    assert_eq!(file["record"]["assessments"].as_array().unwrap().len(), 24);
    assert_eq!(
        file["data"]["therapy_sessions"].as_array().unwrap().len(),
        25
    );

    // Imported into an empty database, then again: the second time adds nothing.
    let database = folder.path().join("imported.db");
    let import = |expect: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_export-cli"))
            .args([
                "--database",
                database.to_str().unwrap(),
                "import",
                "--file",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with("therapy_sessions"))
            .unwrap();
        assert_eq!(
            line.split_whitespace().collect::<Vec<_>>().join(" "),
            expect
        );
    };
    import("therapy_sessions 25 inserted 0 already present");
    import("therapy_sessions 0 inserted 25 already present");
}

/// The ids of `patient`'s first `count` processed sessions in the fixtures.
fn processed_sessions(patient: &str, count: usize) -> Vec<String> {
    let sessions: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/therapy_sessions.json"
        ))
        .unwrap(),
    )
    .unwrap();
    sessions
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["patient_id"] == patient && s["status"] == "processed")
        .take(count)
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn session_notes_xlsx_has_one_row_per_session() {
    let ids = processed_sessions(LUKASZ, 4);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("notes.xlsx");
    let output = export_cli(&[
        "--type",
        "session_notes",
        "--sessions",
        &ids.join(","),
        "--format",
        "xlsx",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut workbook: Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(std::fs::read(&out).unwrap())).unwrap();
    let range = workbook.worksheet_range("Session notes").unwrap();
    assert_eq!(range.get_size().0, 5);
    let header: Vec<String> = (0..5)
        .map(|c| range.get((0, c)).unwrap().to_string())
        .collect();
    assert_eq!(
        header,
        [
            "Session ID",
            "Patient ID",
            "Patient name",
            "Session date",
            "Duration minutes"
        ]
    );
    // The machine names (the CSV's), kinds and meanings in the data dictionary.
    let entries: Vec<String> = xlsx_sheet(
        &std::fs::read(&out).unwrap(),
        Some(export_render::DICTIONARY_SHEET),
    )
    .iter()
    .map(|cells| cells.join("|"))
    .collect();
    assert!(
        entries.contains(
            &"Session date|session_date|date and time (UTC)|When the session started, in UTC"
                .to_owned()
        ),
        "{entries:?}"
    );
    assert_eq!(
        entries.len(),
        1 + range.get_size().1,
        "every column, and the header"
    );
    // Typed for machines: every row names the session and the patient, the session's start is
    // a date-time cell and its minutes a number.
    for row in 1..5 {
        assert!(ids.contains(&range.get((row, 0)).unwrap().to_string().as_str()));
        assert_eq!(range.get((row, 1)).unwrap().to_string(), LUKASZ);
        assert_eq!(range.get((row, 2)).unwrap().to_string(), "Łukasz Wójcik");
        assert!(
            matches!(range.get((row, 3)), Some(calamine::Data::DateTime(_))),
            "{:?}",
            range.get((row, 3))
        );
        assert!(matches!(range.get((row, 4)), Some(calamine::Data::Float(m)) if *m > 0.0));
    }
    // Set up to work with and to print: a filter over the header, the header frozen and
    // repeated on every landscape page a page wide, the summaries (column G) wrapped.
    let layout = xlsx_layout(&std::fs::read(&out).unwrap());
    let (_, columns) = range.get_size();
    let last = char::from(b'A' + columns as u8 - 1);
    assert_eq!(layout["filter"], format!("A1:{last}5"), "{layout}");
    assert_eq!(layout["frozen"], "A2");
    assert_eq!(layout["orientation"], "landscape");
    assert_eq!(layout["fit"], serde_json::json!([1, 0]));
    assert_eq!(layout["repeated"], "$1:$1");
    let wrapped: Vec<&str> = layout["wrapped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        ["G2", "G3", "G4", "G5"].iter().all(|c| wrapped.contains(c)),
        "{layout}"
    );
    assert!(!wrapped.contains(&"B2"), "a patient id is short: {layout}");
}

#[test]
fn a_bad_request_names_every_field_and_leaves_no_file() {
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("never.csv");
    let output = export_cli(&[
        "--type",
        "progress_report",
        "--patient",
        "nope",
        "--from",
        "2025-07-01",
        "--to",
        "2025-06-30",
        "--format",
        "csv",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for field in [
        "patient_id: \"nope\" is not a valid UUID",
        "start_date: 2025-07-01 is after end_date 2025-06-30",
        "format: progress_report exports cannot be csv",
    ] {
        assert!(stderr.contains(field), "{field:?} missing in {stderr}");
    }
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(folder.path()).unwrap().count(),
        0,
        "no temporary file left behind"
    );
}

#[test]
fn a_custom_template_lays_out_the_document_and_a_bad_one_is_refused_with_its_line() {
    let folder = tempfile::tempdir().unwrap();
    let template = folder.path().join("custom.html");
    std::fs::write(
        &template,
        "{% extends \"base.html\" %}\n{% block content %}\n<h2>Custom heading for Noa</h2>\n<p>{{ session_count }} sessions</p>\n{% endblock content %}",
    )
    .unwrap();
    let out = folder.path().join("report.pdf");
    let args = |template: &std::path::Path, out: &std::path::Path| {
        export_cli(&[
            "--type",
            "progress_report",
            "--patient",
            NOA,
            "--from",
            "2025-01-01",
            "--to",
            "2025-06-30",
            "--format",
            "pdf",
            "--template",
            template.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let output = args(&template, &out);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = pdf_text(&out);
    for expected in ["Custom heading for Noa", "נועה כהן", "sessions"] {
        assert!(text.contains(expected), "{expected:?} missing in\n{text}");
    }
    assert!(!text.contains("Treatment Goals"), "the built-in layout");

    let broken = folder.path().join("broken.html");
    std::fs::write(
        &broken,
        "<h1>{{ header.title }}</h1>\n{% if session_count %}\n<p>x</p>",
    )
    .unwrap();
    let never = folder.path().join("never.pdf");
    let output = args(&broken, &never);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 2: {% if %} is never closed"),
        "{stderr}"
    );
    assert!(!never.exists());
}

#[test]
fn a_session_notes_csv_for_excel_starts_with_a_byte_order_mark() {
    // נועה כהן's sessions: Hebrew, which Excel shows right only in a file marked UTF-8.
    let ids = processed_sessions(NOA, 2);
    let folder = tempfile::tempdir().unwrap();
    let csv = |excel: bool| {
        let out = folder.path().join(format!("notes-{excel}.csv"));
        let mut args = vec!["--type", "session_notes", "--format", "csv"];
        let joined = ids.join(",");
        args.extend(["--sessions", &joined, "--out", out.to_str().unwrap()]);
        if excel {
            args.push("--excel");
        }
        let output = export_cli(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::read(&out).unwrap()
    };
    let (plain, excel) = (csv(false), csv(true));
    assert!(plain.starts_with(b"session_id,patient_id,patient_name,session_date,"));
    assert_eq!(excel[..3], [0xEF, 0xBB, 0xBF]);
    assert_eq!(&excel[3..], plain.as_slice());
    let text = String::from_utf8(plain).unwrap();
    let row = text.lines().nth(1).unwrap();
    // ISO 8601 in UTC, the patient named in Hebrew, the minutes a plain number.
    assert!(row.contains(",נועה כהן,2025-"), "{row}");
    assert!(row.split(',').nth(3).unwrap().ends_with('Z'), "{row}");
    // A mark for Excel is a CSV's: an XLSX asked for one is an XLSX as ever (a zip).
    let out = folder.path().join("notes.xlsx");
    let joined = ids.join(",");
    let workbook = export_cli(&[
        "--type",
        "session_notes",
        "--format",
        "xlsx",
        "--sessions",
        &joined,
        "--excel",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        workbook.status.success(),
        "{}",
        String::from_utf8_lossy(&workbook.stderr)
    );
    assert!(std::fs::read(&out).unwrap().starts_with(b"PK"));
}
