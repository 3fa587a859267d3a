//! Tests of the PDF renderer through what a reader sees: text extracted with `pdftotext`, page
//! counts and metadata from `pdfinfo`, and a page rasterised with `pdftoppm` (poppler-utils,
//! installed by `scripts/install-fonts`).

use std::io::Cursor;
use std::path::Path;
use std::process::Command;

use chrono::{TimeZone, Utc};
use export_render::{
    Block, Document, DocumentMeta, Notice, NoticeKind, PageSize, PdfRenderer, RenderError,
    Renderer, Run, Table,
};

fn renderer() -> PdfRenderer {
    PdfRenderer::with_system_fonts().expect("fonts missing: run scripts/install-fonts")
}

fn meta(title: &str) -> DocumentMeta {
    DocumentMeta {
        subject: Some("Synthetic test document".to_owned()),
        ..DocumentMeta::new(
            title,
            "Dr. Test Author",
            Utc.with_ymd_and_hms(2025, 1, 15, 14, 30, 0).unwrap(),
        )
    }
}

fn render(document: &Document) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    renderer()
        .render_document(document, &mut out)
        .expect("document renders");
    out.into_inner()
}

/// Runs a poppler tool on the PDF bytes and returns its standard output.
fn poppler(tool: &str, pdf: &[u8], args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.pdf");
    std::fs::write(&path, pdf).unwrap();
    let output = Command::new(tool)
        .args(args)
        .arg(&path)
        .args(if tool == "pdftotext" {
            &["-"][..]
        } else {
            &[][..]
        })
        .output()
        .unwrap_or_else(|e| panic!("{tool} cannot run ({e}): run scripts/install-fonts"));
    assert!(output.status.success(), "{tool} failed: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

fn text_of(pdf: &[u8]) -> String {
    poppler("pdftotext", pdf, &["-enc", "UTF-8"])
}

fn info_field(pdf: &[u8], field: &str) -> String {
    poppler("pdfinfo", pdf, &[])
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("pdfinfo has no {field}"))
        .trim()
        .to_owned()
}

fn pages(pdf: &[u8]) -> usize {
    info_field(pdf, "Pages").parse().unwrap()
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn heading(level: u8, text: &str) -> Block {
    Block::Heading {
        level,
        runs: vec![Run::plain(text)],
    }
}

fn paragraph(text: &str) -> Block {
    Block::Paragraph {
        runs: vec![Run::plain(text)],
    }
}

/// The first and last names of the fixture users.
fn fixture_names() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/users.json");
    let users: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    users
        .iter()
        .map(|u| {
            (
                u["first_name"].as_str().unwrap().to_owned(),
                u["last_name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn names_document() -> Document {
    let names = fixture_names();
    let mut blocks = vec![heading(1, "Client list"), heading(2, "Names in a table")];
    blocks.push(Block::Table {
        table: Table {
            header: vec![vec![Run::bold("First name")], vec![Run::bold("Last name")]],
            rows: names
                .iter()
                .map(|(first, last)| vec![vec![Run::plain(first)], vec![Run::plain(last)]])
                .collect(),
        },
    });
    blocks.push(heading(2, "Names in running text"));
    for (first, last) in &names {
        blocks.push(Block::Paragraph {
            runs: vec![Run::bold("Client: "), Run::plain(format!("{first} {last}"))],
        });
    }
    Document {
        meta: meta("Client list"),
        blocks,
    }
}

#[test]
fn fixture_names_come_back_with_accents_hebrew_and_cjk() {
    let pdf = render(&names_document());
    // The Hebrew glyphs are drawn in visual (right-to-left) order; poppler reads them back in
    // logical order, wrapped in embedding marks (U+202B … U+202C), which we drop.
    let text: String = text_of(&pdf)
        .chars()
        .filter(|c| !('\u{202A}'..='\u{202E}').contains(c))
        .collect();
    for (first, last) in fixture_names() {
        assert!(text.contains(&first), "{first} missing from:\n{text}");
        assert!(text.contains(&last), "{last} missing from:\n{text}");
        assert!(
            text.contains(&format!("Client: {first} {last}")),
            "{first} {last} in running text"
        );
    }
    assert!(text.contains("Client: נועה כהן"));
    assert!(text.contains("Client: 美玲 王"));
    assert!(text.contains("Client: Ngọc Trần"));
    assert!(!text.contains('\u{FFFD}'), "a character did not map back");
}

#[test]
fn fonts_are_subset_so_files_stay_small() {
    let pdf = render(&names_document());
    // Whole DejaVu Sans (twice) and WenQuanYi Micro Hei would be over 5 MB.
    assert!(pdf.len() < 150_000, "{} bytes", pdf.len());
}

#[test]
fn a_page_rasterises_with_every_script() {
    let pdf = render(&names_document());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("names.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let prefix = dir.path().join("page");
    let status = Command::new("pdftoppm")
        .args(["-png", "-r", "60", "-f", "1", "-l", "1"])
        .arg(&path)
        .arg(&prefix)
        .status()
        .expect("pdftoppm runs");
    assert!(status.success());
    let png = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "png"))
        .expect("a PNG page");
    assert!(png.metadata().unwrap().len() > 1_000);
    if let Ok(keep) = std::env::var("PDF_TEST_PNG") {
        std::fs::copy(png.path(), keep).unwrap();
    }
}

#[test]
fn every_heading_is_present_and_nothing_else() {
    let document = Document {
        meta: meta("Headings"),
        blocks: vec![
            Block::Notice {
                notice: Notice {
                    kind: NoticeKind::Confidential,
                    text: "CONFIDENTIAL - PROTECTED HEALTH INFORMATION".to_owned(),
                },
            },
            heading(1, "Quarterly Summary"),
            paragraph("An opening paragraph that says what the summary covers."),
            heading(2, "Attendance"),
            Block::List {
                ordered: true,
                items: vec![
                    vec![Run::plain("First item")],
                    vec![Run::plain("Second item")],
                ],
            },
            Block::Rule,
            Block::Section {
                class: Some("session".to_owned()),
                blocks: vec![
                    heading(3, "Session Notes"),
                    paragraph("Kept together with its heading."),
                ],
            },
            Block::PageBreak,
            heading(2, "Outcome Measures"),
            Block::List {
                ordered: false,
                items: vec![vec![Run::plain("A bullet")]],
            },
            Block::Notice {
                notice: Notice {
                    kind: NoticeKind::Warning,
                    text: "A warning to read".to_owned(),
                },
            },
        ],
    };
    let pdf = render(&document);
    let text = text_of(&pdf);
    let plain = squash(&document.plain_text());
    for title in [
        "Quarterly Summary",
        "Attendance",
        "Session Notes",
        "Outcome Measures",
    ] {
        assert_eq!(text.matches(title).count(), 1, "{title}");
    }
    assert_eq!(pages(&pdf), 2, "the page break starts a page");
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        // The running header (banner, whose record and title) and footer of every page.
        let footer = line.starts_with("Generated on ")
            || line.starts_with("Page ")
            || line == "CONFIDENTIAL - PROTECTED HEALTH INFORMATION"
            || line == "Headings";
        // List markers are drawn, not part of the text; pdftotext puts them before the item.
        let item = line
            .strip_prefix("• ")
            .or_else(|| line.split_once(". ").map(|(_, item)| item))
            .unwrap_or(line);
        assert!(
            footer || plain.contains(&squash(line)) || plain.contains(&squash(item)),
            "{line:?} was not in the document"
        );
    }
}

#[test]
fn footer_numbers_pages_out_of_the_total_and_says_when() {
    let mut blocks = vec![heading(1, "Long document")];
    for n in 0..120 {
        blocks.push(paragraph(&format!(
            "Paragraph {n}: synthetic filler text long enough to take two lines of the page at eleven points."
        )));
    }
    let pdf = render(&Document {
        meta: meta("Long document"),
        blocks,
    });
    let total = pages(&pdf);
    assert!(total >= 3);
    let text = text_of(&pdf);
    for page in 1..=total {
        assert!(
            text.contains(&format!("Page {page} of {total}")),
            "page {page}"
        );
    }
    assert!(!text.contains(&format!("Page {} of", total + 1)));
    assert_eq!(
        text.matches("Generated on January 15, 2025 at 02:30 PM")
            .count(),
        total
    );
}

#[test]
fn metadata_comes_from_the_document_meta() {
    let pdf = render(&Document {
        meta: meta("Progress Report — Łukasz"),
        blocks: vec![paragraph("Body")],
    });
    assert_eq!(info_field(&pdf, "Title"), "Progress Report — Łukasz");
    assert_eq!(info_field(&pdf, "Author"), "Dr. Test Author");
    assert_eq!(info_field(&pdf, "Subject"), "Synthetic test document");
    assert!(info_field(&pdf, "CreationDate").contains("2025"));
}

#[test]
fn a_long_cell_wraps_inside_its_cell() {
    let long = "word ".repeat(400) + &"x".repeat(300);
    let pdf = render(&Document {
        meta: meta("Wrap"),
        blocks: vec![Block::Table {
            table: Table {
                header: vec![vec![Run::bold("Label")], vec![Run::bold("Detail")]],
                rows: vec![vec![
                    vec![Run::plain("short")],
                    vec![Run::plain(long.clone())],
                ]],
            },
        }],
    });
    let text = text_of(&pdf);
    let squashed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let expected: String = long.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(
        squashed.contains(&expected),
        "the long cell's text is all there"
    );
    assert!(text.contains("short"));
}

#[test]
fn a_table_spanning_pages_repeats_its_header() {
    let rows = (0..150)
        .map(|n| {
            vec![
                vec![Run::plain(format!("Row {n}"))],
                vec![Run::plain("Some cell text")],
            ]
        })
        .collect();
    let pdf = render(&Document {
        meta: meta("Long table"),
        blocks: vec![Block::Table {
            table: Table {
                header: vec![
                    vec![Run::bold("Alphaheader")],
                    vec![Run::bold("Betaheader")],
                ],
                rows,
            },
        }],
    });
    let total = pages(&pdf);
    assert!(total >= 3, "{total} pages");
    let text = text_of(&pdf);
    assert_eq!(text.matches("Alphaheader").count(), total);
    assert_eq!(text.matches("Betaheader").count(), total);
    assert!(text.contains("Row 149"));
}

#[test]
fn rows_render_as_a_table_of_canonical_text() {
    let mut out = Cursor::new(Vec::new());
    let outcome = renderer()
        .render_rows(&mut export_render::bench::BenchRows::new(300), &mut out)
        .unwrap();
    assert_eq!(outcome.rows, 300);
    let pdf = out.into_inner();
    let total = pages(&pdf);
    let text = text_of(&pdf);
    assert_eq!(text.matches("duration_minutes").count(), total);
    assert!(text.contains(&format!("Page {total} of {total}")));
    for expected in [
        "Patient 001",
        "2025-01-02",
        "3.7",
        "1.25",
        "0.0",
        "true",
        "false",
    ] {
        assert!(text.contains(expected), "{expected}");
    }
    assert!(squash(&text).contains(
        "Session 299: discussed coping strategies, reviewed homework and agreed next steps."
    ));
}

#[test]
fn too_many_rows_are_refused_before_writing() {
    let renderer = renderer().with_row_limit(100);
    let mut out = Cursor::new(Vec::new());
    let error = renderer
        .render_rows(&mut export_render::bench::BenchRows::new(101), &mut out)
        .unwrap_err();
    assert!(matches!(
        error,
        RenderError::TooManyRows {
            rows: 101,
            limit: 100,
            ..
        }
    ));
    assert!(out.get_ref().is_empty());

    // A source that does not say how many rows it has is stopped when it passes the limit.
    let error = renderer
        .render_rows(
            &mut export_render::bench::BenchRows::new(500).without_hint(),
            &mut out,
        )
        .unwrap_err();
    assert!(matches!(error, RenderError::TooManyRows { limit: 100, .. }));
    assert!(out.get_ref().is_empty());

    let mut rows = export_render::bench::BenchRows::new(100);
    assert_eq!(renderer.render_rows(&mut rows, &mut out).unwrap().rows, 100);
}

#[test]
fn progress_report_keeps_each_session_on_one_page() {
    let document = export_render::bench::progress_report(100);
    let pdf = render(&document);
    let total = pages(&pdf);
    let mut session_pages = Vec::new();
    for page in 1..=total {
        let page_text = poppler(
            "pdftotext",
            &pdf,
            &[
                "-enc",
                "UTF-8",
                "-f",
                &page.to_string(),
                "-l",
                &page.to_string(),
            ],
        );
        session_pages.push(page_text);
    }
    for k in 1..=100 {
        let title = format!("Session {k}\n");
        let notes = format!("Session {k} notes.");
        let page = session_pages
            .iter()
            .position(|t| t.contains(&title))
            .unwrap_or_else(|| panic!("session {k} heading"));
        assert!(
            session_pages[page].contains(&notes),
            "session {k} is split between pages"
        );
    }
}

#[test]
fn a4_pages_have_a4_size() {
    let mut document = names_document();
    document.meta.page_size = PageSize::A4;
    let pdf = render(&document);
    assert!(info_field(&pdf, "Page size").starts_with("595.2"));
}

#[test]
fn an_empty_document_is_one_numbered_page() {
    let pdf = render(&Document {
        meta: meta("Empty"),
        blocks: Vec::new(),
    });
    assert_eq!(pages(&pdf), 1);
    assert!(text_of(&pdf).contains("Page 1 of 1"));
}

#[test]
fn no_rows_is_a_header_only_table() {
    let mut out = Cursor::new(Vec::new());
    let outcome = renderer()
        .render_rows(&mut export_render::bench::BenchRows::new(0), &mut out)
        .unwrap();
    assert_eq!(outcome.rows, 0);
    let pdf = out.into_inner();
    assert_eq!(pages(&pdf), 1);
    let text = text_of(&pdf);
    assert!(text.contains("duration_minutes"));
    assert!(text.contains("Page 1 of 1"));
}

/// Integers that grow wider than the rows the column widths were taken from.
#[derive(Debug)]
struct GrowingIntegers {
    columns: Vec<export_render::Column>,
    next: i64,
}

impl export_render::RowSource for GrowingIntegers {
    fn columns(&self) -> &[export_render::Column] {
        &self.columns
    }

    fn next_row(&mut self, row: &mut export_render::RowBuffer) -> Result<bool, RenderError> {
        if self.next >= 100 {
            return Ok(false);
        }
        row.push_integer(if self.next < 99 { self.next } else { 1_234_567 });
        row.push_text("x");
        self.next += 1;
        Ok(true)
    }
}

#[test]
fn integers_wider_than_the_first_rows_do_not_wrap() {
    use export_render::{Column, ColumnKind};
    let mut source = GrowingIntegers {
        columns: vec![
            Column::new("n", ColumnKind::Integer),
            Column::new("label", ColumnKind::Text),
        ],
        next: 0,
    };
    let mut out = Cursor::new(Vec::new());
    renderer().render_rows(&mut source, &mut out).unwrap();
    let text = text_of(&out.into_inner());
    assert!(
        text.contains("1234567"),
        "the number is broken between lines"
    );
}
