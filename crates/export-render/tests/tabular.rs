//! The tabular renderers read back by real readers: CSV through the `csv` crate, JSON through
//! serde_json, XLSX through calamine. Formula-looking text comes back as text everywhere.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};
use chrono::{NaiveDate, TimeZone, Utc};
use export_render::{
    Column, ColumnKind, CsvRenderer, JsonRenderer, RenderError, Renderer, RowBuffer, RowSource,
    XlsxChart, XlsxRenderer,
};

#[derive(Debug, Clone)]
enum Value {
    Null,
    Text(&'static str),
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(NaiveDate),
}

/// A table held in memory, streamed like any other source.
struct Rows {
    columns: Vec<Column>,
    rows: Vec<Vec<Value>>,
    next: usize,
    hint: Option<u64>,
}

impl RowSource for Rows {
    fn columns(&self) -> &[Column] {
        &self.columns
    }

    fn next_row(&mut self, row: &mut RowBuffer) -> Result<bool, RenderError> {
        let Some(values) = self.rows.get(self.next) else {
            return Ok(false);
        };
        self.next += 1;
        for value in values {
            match value {
                Value::Null => row.push_null(),
                Value::Text(t) => row.push_text(t),
                Value::Int(v) => row.push_integer(*v),
                Value::Float(v) => row.push_float(*v),
                Value::Bool(v) => row.push_bool(*v),
                Value::Date(d) => row.push_date(*d),
            }
        }
        Ok(true)
    }

    fn row_count_hint(&self) -> Option<u64> {
        self.hint
    }
}

fn sample() -> Rows {
    let columns = vec![
        Column::new("id", ColumnKind::Integer),
        Column::new("patient", ColumnKind::Text),
        Column::new("note", ColumnKind::Text),
        Column::new("score", ColumnKind::Float),
        Column::new("done", ColumnKind::Bool),
        Column::new("on", ColumnKind::Date),
    ];
    let day = |d| NaiveDate::from_ymd_opt(2025, 3, d).unwrap();
    let rows = vec![
        vec![
            Value::Int(1),
            Value::Text("Łukasz Wójcik"),
            Value::Text("said \"fine\", then left\nearly"),
            Value::Float(3.5),
            Value::Bool(true),
            Value::Date(day(1)),
        ],
        vec![
            Value::Int(2),
            Value::Text("נועה כהן"),
            Value::Text("=SUM(A1) is what my boss calls me"),
            Value::Float(0.0),
            Value::Bool(false),
            Value::Date(day(2)),
        ],
        vec![
            Value::Int(-3),
            Value::Text("美玲 王"),
            Value::Text("+1 more"),
            Value::Null,
            Value::Bool(true),
            Value::Null,
        ],
        vec![
            Value::Int(4),
            Value::Text("@handle"),
            Value::Text("-2 points\tand a tab"),
            Value::Float(99.9),
            Value::Bool(false),
            Value::Date(day(4)),
        ],
    ];
    Rows {
        columns,
        rows,
        next: 0,
        hint: None,
    }
}

fn render(renderer: &dyn Renderer, mut rows: Rows) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let outcome = renderer.render_rows(&mut rows, &mut out).unwrap();
    assert_eq!(outcome.rows, 4);
    out.into_inner()
}

#[test]
fn csv_reads_back_with_formulas_neutralised() {
    let bytes = render(&CsvRenderer::default(), sample());
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["id", "patient", "note", "score", "done", "on"]
    );
    let records: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(
        records[0],
        [
            "1",
            "Łukasz Wójcik",
            "said \"fine\", then left\nearly",
            "3.5",
            "true",
            "2025-03-01"
        ]
    );
    assert_eq!(
        records[1],
        [
            "2",
            "נועה כהן",
            "'=SUM(A1) is what my boss calls me",
            "0.0",
            "false",
            "2025-03-02"
        ]
    );
    assert_eq!(records[2], ["-3", "美玲 王", "'+1 more", "", "true", ""]);
    assert_eq!(
        records[3],
        [
            "4",
            "'@handle",
            "'-2 points\tand a tab",
            "99.9",
            "false",
            "2025-03-04"
        ]
    );
    // Numbers are never prefixed, even negative ones.
    assert!(String::from_utf8(bytes).unwrap().contains("\n-3,"));
}

#[test]
fn csv_without_neutralising_keeps_exact_text() {
    let bytes = render(
        &CsvRenderer {
            neutralise_formulas: false,
            ..CsvRenderer::default()
        },
        sample(),
    );
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.contains("\n2,נועה כהן,=SUM(A1) is what my boss calls me,0.0,"),
        "{text}"
    );
}

#[test]
fn csv_for_excel_starts_with_a_byte_order_mark_the_csv_crate_skips() {
    let plain = render(&CsvRenderer::default(), sample());
    assert!(plain.starts_with(b"id,"), "no mark unless asked");
    let excel = render(
        &CsvRenderer {
            byte_order_mark: true,
            ..CsvRenderer::default()
        },
        sample(),
    );
    assert!(excel.starts_with(&[0xEF, 0xBB, 0xBF]));
    assert_eq!(
        &excel[3..],
        plain.as_slice(),
        "the same file after the mark"
    );
    // A reader that knows the mark (the csv crate does) sees the same header.
    let mut reader = csv::Reader::from_reader(excel.as_slice());
    assert_eq!(&reader.headers().unwrap()[0], "id");
}

#[test]
fn json_reads_back_typed() {
    let bytes = render(&JsonRenderer, sample());
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let rows = value.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[0],
        serde_json::json!({"id": 1, "patient": "Łukasz Wójcik", "note": "said \"fine\", then left\nearly", "score": 3.5, "done": true, "on": "2025-03-01"})
    );
    assert_eq!(rows[1]["note"], "=SUM(A1) is what my boss calls me");
    assert_eq!(rows[2]["score"], serde_json::Value::Null);
    assert_eq!(rows[3]["note"], "-2 points\tand a tab");
    let keys: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 6);
}

#[test]
fn json_of_no_rows_is_an_empty_array() {
    let rows = Rows {
        rows: vec![],
        ..sample()
    };
    let mut out = Cursor::new(Vec::new());
    JsonRenderer.render_rows(&mut { rows }, &mut out).unwrap();
    assert_eq!(out.into_inner(), b"[]");
}

/// The rows of `sheet`, each its cells as text joined by `|`.
fn sheet_lines(workbook: &mut Xlsx<Cursor<Vec<u8>>>, sheet: &str) -> Vec<String> {
    let range = workbook.worksheet_range(sheet).unwrap();
    range
        .rows()
        .map(|r| {
            r.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

#[test]
fn xlsx_reads_back_typed_with_header() {
    let bytes = render(
        &XlsxRenderer {
            sheet_name: "Sessions".into(),
            ..XlsxRenderer::default()
        },
        sample(),
    );
    let mut workbook: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes)).unwrap();
    assert_eq!(workbook.sheet_names(), ["Sessions", "Data dictionary"]);
    let range = workbook.worksheet_range("Sessions").unwrap();
    assert_eq!(range.get_size(), (5, 6));
    let header: Vec<String> = (0..6)
        .map(|c| range.get((0, c)).unwrap().to_string())
        .collect();
    // Headers for people; the machine names, kinds and meanings in the data dictionary.
    assert_eq!(header, ["ID", "Patient", "Note", "Score", "Done", "On"]);
    let entries = sheet_lines(&mut workbook, "Data dictionary");
    assert_eq!(
        entries,
        [
            "Header|Name|Type|Meaning",
            "ID|id|whole number|",
            "Patient|patient|text|",
            "Note|note|text|",
            "Score|score|number|",
            "Done|done|true or false|",
            "On|on|date|",
        ]
    );
    assert_eq!(range.get((1, 0)), Some(&Data::Float(1.0)));
    assert_eq!(
        range.get((1, 1)),
        Some(&Data::String("Łukasz Wójcik".into()))
    );
    assert_eq!(range.get((1, 3)), Some(&Data::Float(3.5)));
    assert_eq!(range.get((1, 4)), Some(&Data::Bool(true)));
    assert!(
        matches!(range.get((1, 5)), Some(Data::DateTime(_))),
        "{:?}",
        range.get((1, 5))
    );
    // A formula-looking text is a plain string cell, not a formula.
    assert_eq!(
        range.get((2, 2)),
        Some(&Data::String("=SUM(A1) is what my boss calls me".into()))
    );
    assert_eq!(range.get((3, 3)), Some(&Data::Empty));
    assert_eq!(range.get((4, 1)), Some(&Data::String("@handle".into())));
}

#[test]
fn a_row_with_the_wrong_number_of_cells_is_refused() {
    let mut rows = sample();
    rows.rows[2].pop();
    let mut out = Cursor::new(Vec::new());
    let err = CsvRenderer::default()
        .render_rows(&mut rows, &mut out)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "row 2 has 5 cells but the table has 6 columns"
    );
}

#[test]
fn xlsx_refuses_more_rows_than_a_sheet_holds_before_writing() {
    let rows = Rows {
        hint: Some(2_000_000),
        ..sample()
    };
    let mut out = Cursor::new(Vec::new());
    let err = XlsxRenderer::default()
        .render_rows(&mut { rows }, &mut out)
        .unwrap_err();
    assert!(
        matches!(
            err,
            RenderError::TooManyRows {
                rows: 2_000_000,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "2000000 rows are more than one xlsx export can hold (1048575 at most); use csv for larger tables"
    );
    assert!(out.into_inner().is_empty());
}

#[test]
fn renderers_say_what_they_cannot_make() {
    let document = export_render::Document {
        meta: export_render::DocumentMeta::new(
            "t",
            "a",
            Utc.with_ymd_and_hms(2025, 1, 15, 14, 30, 0).unwrap(),
        ),
        blocks: vec![],
    };
    let mut out = Cursor::new(Vec::new());
    let err = CsvRenderer::default()
        .render_document(&document, &mut out)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "csv cannot be made from a laid-out document"
    );
}

/// Text that might run as a formula and text that cannot: (cell text, neutralised in CSV).
/// Every one is a string cell in XLSX and comes back unchanged from JSON.
const FORMULA_CASES: &[(&str, bool)] = &[
    ("=1+1", true),
    ("+1", true),
    ("-1", true),
    ("@SUM(A1)", true),
    ("\tplain", true),
    ("\rplain", true),
    // Full-width forms, which spreadsheets with an East Asian input method read as ASCII.
    ("\u{ff1d}1+1", true),
    ("\u{ff0b}1", true),
    ("\u{ff0d}1", true),
    ("\u{ff20}SUM(A1)", true),
    // A run of blanks before the formula character.
    (" =1+1", true),
    ("   +1", true),
    ("\t @SUM(A1)", true),
    ("\n=1+1", true),
    ("\r\n-1", true),
    ("\u{a0}=1+1", true),
    ("\u{3000}\u{ff1d}1+1", true),
    ("\u{2003}@SUM(A1)", true),
    ("\u{feff}=1+1", true),
    ("\u{200b}-1", true),
    ("\u{0b}=1+1", true),
    // Nothing to run.
    ("plain", false),
    (" plain", false),
    ("a=1", false),
    ("1-2", false),
    ("   ", false),
    ("\nline", false),
    ("\u{a0}x", false),
    ("\u{ff21}=1", false),
    ("'=1", false),
];

/// Renders `cases` as a one-column table in CSV, XLSX and JSON and reads each back.
fn check_formula_neutralising(cases: &[(&'static str, bool)]) {
    let rows = || Rows {
        columns: vec![Column::new("note", ColumnKind::Text)],
        rows: cases
            .iter()
            .map(|(text, _)| vec![Value::Text(text)])
            .collect(),
        next: 0,
        hint: None,
    };
    let render = |renderer: &dyn Renderer| {
        let mut out = Cursor::new(Vec::new());
        renderer.render_rows(&mut rows(), &mut out).unwrap();
        out.into_inner()
    };

    let csv_bytes = render(&CsvRenderer::default());
    let read: Vec<String> = csv::Reader::from_reader(csv_bytes.as_slice())
        .records()
        .map(|r| r.unwrap()[0].to_owned())
        .collect();
    assert_eq!(read.len(), cases.len());
    for ((text, neutralised), got) in cases.iter().zip(&read) {
        let expected = if *neutralised {
            format!("'{text}")
        } else {
            (*text).to_owned()
        };
        assert_eq!(got, &expected, "csv of {text:?}");
        assert_eq!(
            export_render::looks_like_formula(text),
            *neutralised,
            "{text:?}"
        );
    }

    let mut workbook: Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(render(&XlsxRenderer::default()))).unwrap();
    let values = workbook.worksheet_range("Export").unwrap();
    let formulas = workbook.worksheet_formula("Export").unwrap();
    for (i, (text, _)) in cases.iter().enumerate() {
        let at = (i as u32 + 1, 0);
        assert_eq!(
            values.get_value(at),
            Some(&Data::String((*text).to_owned())),
            "xlsx of {text:?}"
        );
        assert!(
            formulas.get_value(at).is_none_or(String::is_empty),
            "xlsx of {text:?} is a formula: {:?}",
            formulas.get_value(at)
        );
    }

    let json: serde_json::Value = serde_json::from_slice(&render(&JsonRenderer)).unwrap();
    for (i, (text, _)) in cases.iter().enumerate() {
        assert_eq!(json[i]["note"], *text, "json of {text:?}");
    }
}

#[test]
fn full_width_and_blank_led_formulas_are_neutralised() {
    check_formula_neutralising(FORMULA_CASES);
}

#[test]
fn an_xlsx_chart_is_drawn_only_over_few_rows_of_columns_it_has() {
    let chart = |value: &str, most_rows| XlsxChart {
        title: "Scores".into(),
        alt: "Each patient's score.".into(),
        label_column: "patient".into(),
        value_column: value.into(),
        max: None,
        num_format: "0.0".into(),
        most_rows,
    };
    let sheets = |chart: XlsxChart| {
        let renderer = XlsxRenderer {
            sheet_name: "Scores".into(),
            chart: Some(chart),
        };
        let bytes = render(&renderer, sample());
        let mut workbook: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes)).unwrap();
        let names = workbook.sheet_names();
        let chart_cells = names
            .contains(&"Chart".to_owned())
            .then(|| sheet_lines(&mut workbook, "Chart"));
        (names, chart_cells)
    };
    // Four rows, a numeric column: the chart's sheet holds the labels and values it draws (a
    // missing value stays empty).
    let (names, cells) = sheets(chart("score", 10));
    assert_eq!(names, ["Scores", "Chart", "Data dictionary"]);
    assert_eq!(
        cells.unwrap(),
        [
            "patient|score",
            "Łukasz Wójcik|3.5",
            "נועה כהן|0",
            "美玲 王|",
            "@handle|99.9"
        ]
    );
    // More rows than a chart reads well with, or a column the table does not have: no chart.
    assert_eq!(sheets(chart("score", 3)).0, ["Scores", "Data dictionary"]);
    assert_eq!(sheets(chart("weight", 10)).0, ["Scores", "Data dictionary"]);
}
