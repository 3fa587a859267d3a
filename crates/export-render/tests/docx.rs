//! DOCX renderer tests through what a reader sees: each output is opened with python-docx
//! (`tests/read_docx.py`, `pip install python-docx`) and its paragraphs, styles, tables, footer and
//! properties are compared with the input. Set `EXPORT_SKIP_PYTHON_DOCX=1` to skip the read-back
//! on a machine without python-docx; without it a missing python-docx fails the tests.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, NaiveDate, Utc};
use export_render::{
    Block, Color, Column, ColumnKind, Document, DocumentMeta, DocxRenderer, Notice, NoticeKind,
    PageSize, RenderError, Renderer, RowBuffer, RowSource, Run, Table,
};
use serde_json::Value;

use export_render::bench::BenchRows;

const CONFIDENTIAL: &str = "CONFIDENTIAL - PROTECTED HEALTH INFORMATION";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generated_at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-01-15T14:30:00Z")
        .expect("a valid timestamp")
        .with_timezone(&Utc)
}

fn meta(page_size: PageSize) -> DocumentMeta {
    DocumentMeta {
        title: "Client Progress Report".to_owned(),
        author: "Dr. A. Rivera, PsyD".to_owned(),
        subject: Some("Progress report".to_owned()),
        generated_at: generated_at(),
        page_size,
        patient: Some("Patient 042, born March 9, 1990".to_owned()),
        practice: Some("Riverside Counselling".to_owned()),
    }
}

/// Patients' display names from the fixtures: accented, Hebrew and CJK among them.
fn patient_names() -> Vec<String> {
    let path = manifest_dir().join("../../fixtures/users.json");
    let users: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixtures/users.json"))
            .expect("users.json is JSON");
    let names: Vec<String> = users
        .iter()
        .filter(|user| user["role"] == "patient")
        .map(|user| {
            format!(
                "{} {}",
                user["first_name"].as_str().expect("a first name"),
                user["last_name"].as_str().expect("a last name")
            )
        })
        .collect();
    assert!(names.iter().any(|name| name.contains("נועה")));
    assert!(names.iter().any(|name| name.contains("美玲")));
    names
}

fn render_document(document: &Document) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let outcome = DocxRenderer::new()
        .render_document(document, &mut out)
        .expect("the document renders");
    assert_eq!(outcome.rows, 0);
    out.into_inner()
}

fn render_rows(renderer: &DocxRenderer, rows: &mut dyn RowSource) -> (u64, Vec<u8>) {
    let mut out = Cursor::new(Vec::new());
    let outcome = renderer
        .render_rows(rows, &mut out)
        .expect("the rows render");
    (outcome.rows, out.into_inner())
}

fn skip_python_docx() -> bool {
    std::env::var("EXPORT_SKIP_PYTHON_DOCX").is_ok_and(|value| value == "1")
}

fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new()
        .suffix(".docx")
        .tempfile()
        .expect("a temporary file");
    std::fs::write(file.path(), bytes).expect("the docx is written");
    file
}

/// What python-docx reads from `bytes`; `None` only when `EXPORT_SKIP_PYTHON_DOCX=1`.
fn read_back(bytes: &[u8]) -> Option<Value> {
    if skip_python_docx() {
        return None;
    }
    let file = write_temp(bytes);
    let script = manifest_dir().join("tests/read_docx.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(file.path())
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run python3 ({error}): the DOCX tests read their output with python-docx; \
                 install python3 and `pip install python-docx`, or set EXPORT_SKIP_PYTHON_DOCX=1"
            )
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        Some(3) => panic!(
            "{}; or set EXPORT_SKIP_PYTHON_DOCX=1 to skip the read-back",
            stderr.trim()
        ),
        _ => panic!("python-docx could not read the DOCX: {stderr}"),
    }
    Some(serde_json::from_slice(&output.stdout).expect("read_docx.py prints JSON"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|item| item.as_str().expect("a string").to_owned())
        .collect()
}

/// The `field` of every item of `value`, an array of objects.
fn strings_of(value: &Value, field: &str) -> Vec<String> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|item| item[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn paragraph<'a>(read: &'a Value, text: &str) -> &'a Value {
    read["paragraphs"]
        .as_array()
        .expect("paragraphs")
        .iter()
        .find(|p| p["text"] == text)
        .unwrap_or_else(|| panic!("no paragraph reads {text:?}"))
}

fn cells(text: &[&str]) -> Vec<Vec<Run>> {
    text.iter().map(|t| vec![Run::plain(*t)]).collect()
}

const TOPIC_POOL: [&str; 8] = [
    "Anxiety management",
    "Work stress",
    "Sleep hygiene",
    "Relationships & family",
    "Grief processing",
    "Panic symptoms",
    "Avoidance behaviours",
    "Cognitive restructuring",
];

/// A progress report after shared/bench-dataset.md, with every kind of block and the fixture
/// patients' names.
fn progress_report(sessions: usize) -> Document {
    let mut blocks = vec![
        Block::Notice {
            notice: Notice {
                kind: NoticeKind::Confidential,
                text: CONFIDENTIAL.to_owned(),
            },
        },
        Block::Heading {
            level: 1,
            runs: vec![Run::plain("Client Progress Report")],
        },
        Block::Paragraph {
            runs: vec![Run::bold("Patient: "), Run::plain("Patient 042")],
        },
        Block::Paragraph {
            runs: vec![
                Run::bold("Clinician: "),
                Run {
                    text: "Dr. A. Rivera, PsyD".to_owned(),
                    italic: true,
                    color: Some(Color::GREY),
                    ..Run::default()
                },
            ],
        },
        Block::Rule,
        Block::Heading {
            level: 2,
            runs: vec![Run::plain("Treatment Goals")],
        },
        Block::Table {
            table: Table {
                header: cells(&["Goal", "Baseline", "Current", "Progress"]),
                rows: vec![
                    cells(&["Reduce panic attacks per week", "5", "2", "60%"]),
                    cells(&["Sleep 7+ hours per night", "3 nights", "5 nights", "67%"]),
                    cells(&["GAD-7 score < 10", "16", "11", "83%"]),
                ],
            },
        },
        Block::Heading {
            level: 2,
            runs: vec![Run::plain("Summary")],
        },
        Block::Paragraph {
            runs: vec![Run::plain(
                "The client has made steady progress, with improved sleep (from <6 h to 7+ h) & a \"gradual\" return to work.",
            )],
        },
        Block::Heading {
            level: 2,
            runs: vec![Run::plain("Patients seen")],
        },
    ];
    let names = patient_names();
    blocks.push(Block::Table {
        table: Table {
            header: cells(&["Patient", "Note"]),
            rows: names
                .iter()
                .map(|name| cells(&[name.as_str(), "seen"]))
                .collect(),
        },
    });
    for name in &names {
        blocks.push(Block::Paragraph {
            runs: vec![Run::plain("Patient: "), Run::plain(name.as_str())],
        });
    }
    blocks.push(Block::Heading {
        level: 2,
        runs: vec![Run::plain("Sessions")],
    });
    for k in 0..sessions {
        blocks.push(Block::Section {
            class: Some("session".to_owned()),
            blocks: vec![
                Block::Heading {
                    level: 3,
                    runs: vec![Run::plain(format!("Session {}", k + 1))],
                },
                Block::Paragraph {
                    runs: vec![Run::plain(format!("Duration: {} minutes", 30 + k % 60))],
                },
                Block::List {
                    ordered: false,
                    items: (0..3)
                        .map(|j| vec![Run::plain(TOPIC_POOL[(k + j) % 8])])
                        .collect(),
                },
            ],
        });
    }
    blocks.extend([
        Block::Heading {
            level: 2,
            runs: vec![Run::plain("Recommendations")],
        },
        Block::List {
            ordered: true,
            items: vec![
                vec![Run::plain("Continue weekly sessions")],
                vec![Run::plain("Reassess GAD-7 in 6 weeks")],
            ],
        },
        Block::Notice {
            notice: Notice {
                kind: NoticeKind::Warning,
                text: "Risk flag reviewed".to_owned(),
            },
        },
        Block::PageBreak,
        Block::Notice {
            notice: Notice {
                kind: NoticeKind::Info,
                text: "End of report".to_owned(),
            },
        },
    ]);
    Document {
        meta: meta(PageSize::Letter),
        blocks,
    }
}

#[test]
fn document_reads_back_in_order_with_its_text() {
    let document = progress_report(3);
    let Some(read) = read_back(&render_document(&document)) else {
        return;
    };
    // The confidentiality banner is in the header part, on every page, not in the body.
    let expected: Vec<String> = document
        .plain_text()
        .lines()
        .filter(|line| !line.is_empty() && *line != CONFIDENTIAL)
        .map(str::to_owned)
        .collect();
    assert_eq!(strings(&read["reading_order"]), expected);
}

#[test]
fn headings_use_word_heading_styles() {
    let Some(read) = read_back(&render_document(&progress_report(2))) else {
        return;
    };
    for (text, style) in [
        ("Client Progress Report", "Heading 1"),
        ("Treatment Goals", "Heading 2"),
        ("Session 1", "Heading 3"),
        ("Session 2", "Heading 3"),
    ] {
        assert_eq!(paragraph(&read, text)["style"], style, "{text}");
    }
    assert_eq!(paragraph(&read, "Patient: Patient 042")["style"], "Normal");
    assert_eq!(read["styles"]["Normal_pt"], 11.0);
}

#[test]
fn every_page_header_has_the_red_centred_banner_whose_record_and_the_title() {
    let Some(read) = read_back(&render_document(&progress_report(1))) else {
        return;
    };
    assert!(
        strings_of(&read["paragraphs"], "text")
            .iter()
            .all(|text| text != CONFIDENTIAL),
        "the banner is not repeated in the body"
    );
    let whose = &read["headers"][1];
    assert_eq!(
        whose["text"],
        "Patient 042, born March 9, 1990\tClient Progress Report"
    );
    assert_eq!(whose["runs"][0]["bold"], true);
    assert_eq!(whose["bottom_border"], true);
    let first = &read["headers"][0];
    assert_eq!(first["text"], CONFIDENTIAL);
    assert!(
        first["alignment"]
            .as_str()
            .is_some_and(|a| a.contains("CENTER")),
        "{first}"
    );
    for run in first["runs"].as_array().expect("runs") {
        assert_eq!(run["bold"], true);
        assert_eq!(run["color"], "C00000");
    }
}

#[test]
fn runs_keep_their_bold_italic_and_colour() {
    let Some(read) = read_back(&render_document(&progress_report(1))) else {
        return;
    };
    let runs = &paragraph(&read, "Clinician: Dr. A. Rivera, PsyD")["runs"];
    assert_eq!(runs[0]["bold"], true);
    assert_eq!(runs[0]["italic"], false);
    assert_eq!(runs[1]["bold"], false);
    assert_eq!(runs[1]["italic"], true);
    assert_eq!(runs[1]["color"], "595959");
    let warning = paragraph(&read, "Risk flag reviewed");
    assert_eq!(warning["runs"][0]["bold"], true);
    assert_eq!(paragraph(&read, "End of report")["runs"][0]["italic"], true);
}

#[test]
fn tables_have_a_repeating_shaded_bold_header() {
    let Some(read) = read_back(&render_document(&progress_report(1))) else {
        return;
    };
    let goals = &read["tables"][0];
    assert_eq!(goals["style"], "Table Grid");
    let rows = goals["rows"].as_array().expect("rows");
    assert_eq!(
        strings(&rows[0]["cells"]),
        ["Goal", "Baseline", "Current", "Progress"]
    );
    assert_eq!(rows[0]["repeat_header"], true);
    assert_eq!(rows[0]["first_cell_bold"], true);
    assert_eq!(rows[0]["first_cell_fill"], "D9E2F3");
    assert_eq!(
        strings(&rows[3]["cells"]),
        ["GAD-7 score < 10", "16", "11", "83%"]
    );
    assert_eq!(rows[3]["repeat_header"], false);
    assert_eq!(rows[3]["first_cell_bold"], false);
}

#[test]
fn lists_are_bulleted_and_numbered() {
    let Some(read) = read_back(&render_document(&progress_report(2))) else {
        return;
    };
    let items: Vec<(String, String)> = read["paragraphs"]
        .as_array()
        .expect("paragraphs")
        .iter()
        .filter(|p| p["numbered"] == true)
        .map(|p| {
            (
                p["style"].as_str().expect("a style").to_owned(),
                p["text"].as_str().expect("a text").to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("List Bullet", "Anxiety management"),
        ("List Bullet", "Work stress"),
        ("List Bullet", "Sleep hygiene"),
        ("List Bullet", "Work stress"),
        ("List Bullet", "Sleep hygiene"),
        ("List Bullet", "Relationships & family"),
        ("List Number", "Continue weekly sessions"),
        ("List Number", "Reassess GAD-7 in 6 weeks"),
    ]
    .iter()
    .map(|(style, text)| ((*style).to_owned(), (*text).to_owned()))
    .collect();
    assert_eq!(items, expected);
}

#[test]
fn sessions_keep_together_and_rules_and_page_breaks_survive() {
    let Some(read) = read_back(&render_document(&progress_report(2))) else {
        return;
    };
    assert_eq!(
        paragraph(&read, "Duration: 30 minutes")["keep_with_next"],
        true
    );
    let paragraphs = read["paragraphs"].as_array().expect("paragraphs");
    assert!(paragraphs.iter().any(|p| p["bottom_border"] == true));
    assert!(paragraphs.iter().any(|p| p["page_break"] == true));
}

#[test]
fn patient_names_survive_in_every_script_and_hebrew_runs_are_rtl() {
    let names = patient_names();
    let Some(read) = read_back(&render_document(&progress_report(1))) else {
        return;
    };
    let table = read["tables"][1]["rows"].as_array().expect("rows");
    for (index, name) in names.iter().enumerate() {
        let line = format!("Patient: {name}");
        let found = paragraph(&read, &line);
        let hebrew = name.contains("נועה");
        for run in found["runs"].as_array().expect("runs") {
            let text = run["text"].as_str().expect("a text");
            let is_hebrew = text.chars().any(|c| ('\u{0590}'..='\u{05FF}').contains(&c));
            assert_eq!(run["rtl"], is_hebrew, "{text}");
        }
        assert!(
            !hebrew
                || found["runs"]
                    .as_array()
                    .expect("runs")
                    .iter()
                    .any(|run| run["rtl"] == true)
        );
        assert_eq!(table[index + 1]["cells"][0], name.as_str());
    }
}

#[test]
fn text_is_escaped_and_invalid_characters_dropped() {
    let document = Document {
        meta: meta(PageSize::A4),
        blocks: vec![Block::Paragraph {
            runs: vec![Run::plain(
                "a < b & c > d \"quoted\" 'single' \u{1}\u{7}\u{1b}bell\r and </w:t> end",
            )],
        }],
    };
    let Some(read) = read_back(&render_document(&document)) else {
        return;
    };
    assert_eq!(
        read["paragraphs"][0]["text"],
        "a < b & c > d \"quoted\" 'single' bell and </w:t> end"
    );
}

#[test]
fn footer_properties_and_page_come_from_meta() {
    let letter = render_document(&progress_report(1));
    let a4 = render_document(&Document {
        meta: meta(PageSize::A4),
        blocks: vec![Block::Paragraph {
            runs: vec![Run::plain("A4")],
        }],
    });
    let (Some(letter), Some(a4)) = (read_back(&letter), read_back(&a4)) else {
        return;
    };
    let footer = strings(&letter["footers"]).join("\n");
    assert_eq!(
        footer,
        "Riverside Counselling \u{b7} Generated on January 15, 2025 at 02:30 PM UTC\tPage 1 of 1"
    );
    assert_eq!(letter["footer_xml_has"]["PAGE"], true);
    assert_eq!(letter["footer_xml_has"]["NUMPAGES"], true);
    assert_eq!(letter["core"]["title"], "Client Progress Report");
    assert_eq!(letter["core"]["author"], "Dr. A. Rivera, PsyD");
    // The language a screen reader reads it in.
    assert_eq!(letter["core"]["language"], "en-US");
    assert!(
        letter["core"]["created"]
            .as_str()
            .is_some_and(|c| c.starts_with("2025-01-15T14:30:00")),
        "{}",
        letter["core"]
    );
    assert_eq!(letter["page"]["width_in"], 8.5);
    assert_eq!(letter["page"]["height_in"], 11.0);
    for margin in letter["page"]["margins_in"].as_array().expect("margins") {
        assert_eq!(margin.as_f64(), Some(1.0));
    }
    let width = a4["page"]["width_in"].as_f64().expect("a width");
    assert!((width - 210.0 / 25.4).abs() < 0.01, "{width}");
}

#[test]
fn same_document_gives_same_bytes() {
    let document = progress_report(2);
    assert_eq!(render_document(&document), render_document(&document));
}

/// The canonical text of bench row `i`, column by column (shared/bench-dataset.md).
fn bench_row_text(i: u64) -> Vec<String> {
    let date = NaiveDate::from_ymd_opt(2025, 1, 1).expect("a date") + chrono::Days::new(i % 365);
    let k = i * 37 % 1000;
    let m = i * 5 % 2000;
    vec![
        i.to_string(),
        format!("Patient {:03}", i % 997),
        date.format("%Y-%m-%d").to_string(),
        (30 + i % 60).to_string(),
        ["positive", "neutral", "low"][(i % 3) as usize].to_owned(),
        format!("{}.{}", k / 10, k % 10),
        [
            "anxiety; work stress",
            "sleep; relationships",
            "grief",
            "panic; avoidance",
        ][(i % 4) as usize]
            .to_owned(),
        format!(
            "Session {i}: discussed coping strategies, reviewed homework and agreed next steps."
        ),
        i.is_multiple_of(2).to_string(),
        format!("{}{}", m / 4, [".0", ".25", ".5", ".75"][(m % 4) as usize]),
    ]
}

#[test]
fn bench_rows_become_a_table_with_canonical_cell_text() {
    let (written, bytes) = render_rows(&DocxRenderer::new(), &mut BenchRows::new(250));
    assert_eq!(written, 250);
    let Some(read) = read_back(&bytes) else {
        return;
    };
    let tables = read["tables"].as_array().expect("tables");
    assert_eq!(tables.len(), 1);
    let rows = tables[0]["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 251);
    assert_eq!(
        strings(&rows[0]["cells"]),
        [
            "id",
            "patient",
            "session_date",
            "duration_minutes",
            "mood",
            "score",
            "topics",
            "note",
            "completed",
            "fee"
        ]
    );
    assert_eq!(rows[0]["repeat_header"], true);
    assert_eq!(rows[0]["first_cell_bold"], true);
    for (i, row) in rows[1..].iter().enumerate() {
        assert_eq!(strings(&row["cells"]), bench_row_text(i as u64), "row {i}");
    }
    // Ten columns are laid out across a landscape Letter page.
    assert_eq!(read["page"]["width_in"], 11.0);
    assert_eq!(read["page"]["height_in"], 8.5);
    assert_eq!(strings(&read["footers"]), ["\tPage 1 of 1"]);
}

/// Rows of every cell kind, with the fixture names.
#[derive(Debug)]
struct MixedRows {
    columns: Vec<Column>,
    names: Vec<String>,
    next: usize,
}

impl RowSource for MixedRows {
    fn columns(&self) -> &[Column] {
        &self.columns
    }

    fn next_row(&mut self, row: &mut RowBuffer) -> Result<bool, RenderError> {
        let Some(name) = self.names.get(self.next) else {
            return Ok(false);
        };
        let i = self.next;
        self.next += 1;
        row.push_text(name);
        row.push_integer(-(i as i64));
        row.push_float(if i == 0 { 0.0 } else { 1.5e-3 });
        row.push_bool(i % 2 == 1);
        row.push_date(NaiveDate::from_ymd_opt(2025, 3, 9).expect("a date"));
        row.push_datetime(generated_at());
        row.push_null();
        Ok(true)
    }
}

#[test]
fn typed_cells_print_canonically_and_meta_adds_title_and_footer() {
    let names = patient_names();
    let mut rows = MixedRows {
        columns: vec![
            Column::new("name", ColumnKind::Text),
            Column::new("n", ColumnKind::Integer),
            Column::new("x", ColumnKind::Float),
            Column::new("ok", ColumnKind::Bool),
            Column::new("day", ColumnKind::Date),
            Column::new("at", ColumnKind::DateTime),
            Column::new("empty", ColumnKind::Text),
        ],
        names: names.clone(),
        next: 0,
    };
    let renderer = DocxRenderer::with_row_meta(meta(PageSize::A4));
    let (written, bytes) = render_rows(&renderer, &mut rows);
    assert_eq!(written, names.len() as u64);
    let Some(read) = read_back(&bytes) else {
        return;
    };
    assert_eq!(
        paragraph(&read, "Client Progress Report")["style"],
        "Heading 1"
    );
    let table = read["tables"][0]["rows"].as_array().expect("rows");
    assert_eq!(
        strings(&table[1]["cells"]),
        [
            names[0].as_str(),
            "0",
            "0.0",
            "false",
            "2025-03-09",
            "2025-01-15T14:30:00Z",
            ""
        ]
    );
    assert_eq!(strings(&table[2]["cells"])[1..4], ["-1", "0.0015", "true"]);
    let column: Vec<String> = table[1..]
        .iter()
        .map(|row| row["cells"][0].as_str().expect("a name").to_owned())
        .collect();
    assert_eq!(column, names);
    assert_eq!(
        strings(&read["footers"]),
        ["Riverside Counselling \u{b7} Generated on January 15, 2025 at 02:30 PM UTC\tPage 1 of 1"]
    );
    assert_eq!(read["core"]["title"], "Client Progress Report");
}

#[test]
fn too_many_rows_are_refused_before_writing() {
    let mut out = Cursor::new(Vec::new());
    let error = DocxRenderer::new()
        .render_rows(&mut BenchRows::new(DocxRenderer::ROW_LIMIT + 1), &mut out)
        .expect_err("over the limit");
    assert!(matches!(error, RenderError::TooManyRows { .. }), "{error}");
    assert!(out.into_inner().is_empty());
}

#[test]
fn a_row_of_the_wrong_shape_is_an_error_without_content() {
    #[derive(Debug)]
    struct Short(Vec<Column>);
    impl RowSource for Short {
        fn columns(&self) -> &[Column] {
            &self.0
        }
        fn next_row(&mut self, row: &mut RowBuffer) -> Result<bool, RenderError> {
            row.push_text("נועה כהן secret");
            Ok(true)
        }
    }
    let mut out = Cursor::new(Vec::new());
    let error = DocxRenderer::new()
        .render_rows(
            &mut Short(vec![
                Column::new("a", ColumnKind::Text),
                Column::new("b", ColumnKind::Text),
            ]),
            &mut out,
        )
        .expect_err("a short row");
    let message = error.to_string();
    assert!(
        matches!(error, RenderError::RowShape { row: 0, .. }),
        "{message}"
    );
    assert!(!message.contains("secret"));
}

fn libreoffice() -> Option<&'static str> {
    ["libreoffice", "soffice"].into_iter().find(|program| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success())
    })
}

fn pdf_text(pdf: &Path) -> String {
    let output = Command::new("pdftotext")
        .arg("-layout")
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext (apt install poppler-utils)");
    assert!(output.status.success(), "pdftotext failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
#[ignore = "needs LibreOffice and poppler-utils (apt install libreoffice-writer-nogui poppler-utils); run with --ignored"]
fn libreoffice_converts_the_report_to_pdf() {
    let program = libreoffice().expect("libreoffice on PATH");
    let docx = write_temp(&render_document(&progress_report(12)));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let profile = format!(
        "-env:UserInstallation=file://{}/profile",
        dir.path().display()
    );
    let status = Command::new(program)
        .args([
            profile.as_str(),
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
        ])
        .arg(dir.path())
        .arg(docx.path())
        .output()
        .expect("libreoffice runs");
    assert!(status.status.success(), "libreoffice failed: {status:?}");
    let stem = docx.path().file_stem().expect("a file name");
    let pdf = dir.path().join(stem).with_extension("pdf");
    assert!(
        std::fs::read(&pdf).is_ok_and(|bytes| bytes.starts_with(b"%PDF")),
        "no PDF came out"
    );
    let text = pdf_text(&pdf);
    for expected in [
        CONFIDENTIAL,
        "Client Progress Report",
        "Treatment Goals",
        "Session 12",
        "Generated on January 15, 2025 at 02:30 PM",
        "Page 1 of ",
        "美玲",
    ] {
        assert!(text.contains(expected), "the PDF lacks {expected:?}");
    }
    if let Ok(keep) = std::env::var("EXPORT_KEEP_PDF") {
        std::fs::copy(&pdf, keep).expect("the PDF is kept");
    }
}

#[test]
fn a_table_without_columns_is_an_empty_document() {
    #[derive(Debug)]
    struct NoColumns(u64);
    impl RowSource for NoColumns {
        fn columns(&self) -> &[Column] {
            &[]
        }
        fn next_row(&mut self, _row: &mut RowBuffer) -> Result<bool, RenderError> {
            self.0 = self.0.saturating_sub(1);
            Ok(self.0 > 0)
        }
    }
    let (written, bytes) = render_rows(&DocxRenderer::new(), &mut NoColumns(3));
    assert_eq!(written, 2);
    let Some(read) = read_back(&bytes) else {
        return;
    };
    assert_eq!(read["tables"].as_array().map(Vec::len), Some(0));
}

#[test]
fn table_widths_follow_the_content_and_only_tall_rows_split() {
    let cell = |text: &str| vec![Run::plain(text)];
    let summary = "Discussed avoidance, panic and anxiety; practised a breathing exercise. ";
    let rows: Vec<Vec<Vec<Run>>> = (1..=6)
        .map(|n| {
            // The last row's summary is long enough to fill most of a page.
            let text = summary.repeat(if n == 6 { 40 } else { 3 });
            vec![
                cell(&n.to_string()),
                cell("January 7, 2025"),
                cell("49"),
                cell(&text),
            ]
        })
        .collect();
    let document = Document {
        meta: meta(PageSize::Letter),
        blocks: vec![
            Block::Heading {
                level: 2,
                runs: vec![Run::plain("Sessions")],
            },
            Block::Table {
                table: Table {
                    header: vec![cell("#"), cell("Date"), cell("Minutes"), cell("Summary")],
                    rows,
                },
            },
        ],
    };
    let Some(read) = read_back(&render_document(&document)) else {
        return;
    };
    let table = &read["tables"][0];
    let widths: Vec<f64> = table["widths_in"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_f64().unwrap())
        .collect();
    let total: f64 = widths.iter().sum();
    assert!((total - 6.5).abs() < 0.05, "the text width: {widths:?}");
    assert!(
        widths[3] > 0.6 * total,
        "the summary takes the width: {widths:?}"
    );
    assert!(widths[0] < widths[2] && widths[2] < widths[1], "{widths:?}");
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows[0]["repeat_header"], true);
    for (index, row) in rows.iter().enumerate().skip(1) {
        assert_eq!(row["cant_split"], index != 6, "row {index}");
    }
    // Headings keep with what follows through their style.
    assert_eq!(paragraph(&read, "Sessions")["style_keeps_with_next"], true);
}

#[test]
fn a_danger_notice_is_framed_bold_and_red() {
    let text = "HIGH RISK: suicidal ideation. Disclosed a plan. (August 12, 2025)";
    let document = Document {
        meta: meta(PageSize::Letter),
        blocks: vec![Block::Notice {
            notice: export_render::Notice {
                kind: export_render::NoticeKind::Danger,
                text: text.to_owned(),
            },
        }],
    };
    let Some(read) = read_back(&render_document(&document)) else {
        return;
    };
    let callout = paragraph(&read, text);
    assert_eq!(callout["bottom_border"], true, "framed: {callout}");
    for run in callout["runs"].as_array().unwrap() {
        assert_eq!(run["bold"], true);
        assert_eq!(run["color"], "C00000");
    }
}
