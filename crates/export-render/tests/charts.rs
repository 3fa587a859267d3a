//! Charts through every renderer, read back by independent readers: the markup a template writes
//! parsed into a `Chart`; the PDF's vector paths as poppler's cairo backend redraws them
//! (`pdftocairo -svg`) and its text as `pdftotext` reads it; the DOCX's chart part as python-docx
//! finds it (an inline shape of type chart, its alternative text, the series in the part) and,
//! with `EXPORT_TEST_LIBREOFFICE=1` (CI sets it; `scripts/setup-machine` installs LibreOffice),
//! as LibreOffice draws it when it converts the file to PDF; the HTML preview's inline SVG.

use std::io::Cursor;
use std::process::Command;

use chrono::{TimeZone, Utc};
use export_render::{
    Block, Chart, ChartKind, Document, DocumentMeta, DocxRenderer, PdfRenderer, Renderer, Run,
    parse_markup, render_html_preview,
};

const ALT: &str = "PHQ-9 total score on 5 dates from January 6, 2025 to May 5, 2025: from 20 \
                   (severe) to 5 (mild), a change of -15; lowest 5, highest 20.";

/// A trend as the built-in macro writes it: five PHQ-9 scores over the published bands.
fn phq9_markup() -> String {
    let rows: String = [
        ("Jan 6, 2025", 20),
        ("Feb 3, 2025", 16),
        ("Mar 3, 2025", 12),
    ]
    .iter()
    .chain(&[("Apr 7, 2025", 9), ("May 5, 2025", 5)])
    .map(|(date, score)| format!("<tr><td>{date}</td><td>{score}</td></tr>\n"))
    .collect();
    format!(
        "<div class=\"chart line\">\n<h4>PHQ-9 total score</h4>\n<p>{ALT}</p>\n<table>\n\
         <thead><tr><th>Date</th><th>PHQ-9</th></tr></thead>\n<tbody>\n{rows}</tbody>\n</table>\n\
         <ul class=\"bands\"><li>0-4 Minimal</li><li>5-9 Mild</li><li>10-14 Moderate</li>\
         <li>15-19 Moderately severe</li><li>20-27 Severe</li></ul>\n</div>"
    )
}

const GOALS: &str = "<div class=\"chart bars percent\">\n<p>Progress toward 2 goals: Sleep 7 \
                     hours a night, 40% (active); Return to work, 100% (achieved).</p>\n<table>\n\
                     <tr><th>Goal</th><th>Progress</th></tr>\n<tr><td>Sleep 7 hours a night \
                     (active)</td><td>40%</td></tr>\n<tr><td>Return to work (achieved)</td>\
                     <td>100%</td></tr>\n</table>\n</div>";

fn chart_of(markup: &str) -> Chart {
    match parse_markup(markup)
        .expect("the chart markup parses")
        .as_slice()
    {
        [Block::Chart { chart }] => chart.clone(),
        other => panic!("one chart expected, got {other:?}"),
    }
}

fn document() -> Document {
    let mut blocks = vec![Block::Heading {
        level: 2,
        runs: vec![Run::plain("Assessments")],
    }];
    blocks.extend(parse_markup(&phq9_markup()).unwrap());
    blocks.push(Block::Heading {
        level: 2,
        runs: vec![Run::plain("Goal Progress")],
    });
    blocks.extend(parse_markup(GOALS).unwrap());
    Document {
        meta: DocumentMeta::new(
            "Progress Report",
            "Dr. Test Author",
            Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0).unwrap(),
        ),
        blocks,
    }
}

fn render(renderer: &dyn Renderer, document: &Document) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    renderer
        .render_document(document, &mut out)
        .expect("the document renders");
    out.into_inner()
}

/// Runs `program` on `bytes` written to `file` in a scratch folder, with `args` after the path;
/// returns its standard output.
fn run_on(program: &str, file: &str, bytes: &[u8], before: &[&str], after: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file);
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new(program)
        .args(before)
        .arg(&path)
        .args(after)
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|err| panic!("{program} cannot run ({err}): run scripts/setup-machine"));
    assert!(
        out.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn markup_places_a_chart_with_its_numbers_and_bands() {
    let chart = chart_of(&phq9_markup());
    assert_eq!(chart.kind, ChartKind::Line);
    assert_eq!(chart.title, "PHQ-9 total score");
    assert_eq!(chart.alt, ALT);
    assert_eq!(chart.category, "Date");
    assert_eq!(chart.labels.len(), 5);
    assert_eq!(chart.series.len(), 1);
    assert_eq!(chart.series[0].name, "PHQ-9");
    assert_eq!(
        chart.series[0].values,
        [20.0, 16.0, 12.0, 9.0, 5.0].map(Some)
    );
    // Whole-score bands meet halfway between their scores; the axis spans them.
    let edges: Vec<(f64, f64, &str)> = chart
        .bands
        .iter()
        .map(|b| (b.from, b.to, b.label.as_str()))
        .collect();
    assert_eq!(
        edges,
        [
            (0.0, 4.5, "Minimal"),
            (4.5, 9.5, "Mild"),
            (9.5, 14.5, "Moderate"),
            (14.5, 19.5, "Moderately severe"),
            (19.5, 27.0, "Severe"),
        ]
    );
    assert_eq!((chart.min, chart.max), (0.0, 27.0));
    assert_eq!(chart.ticks(), [0.0, 5.0, 10.0, 15.0, 20.0, 27.0]);

    let goals = chart_of(GOALS);
    assert_eq!(goals.kind, ChartKind::Bars);
    assert_eq!(
        goals.title, "",
        "a bar chart under its section heading needs no title"
    );
    assert_eq!(goals.unit, "%");
    assert_eq!((goals.min, goals.max), (0.0, 100.0));
    assert_eq!(goals.series[0].values, [Some(40.0), Some(100.0)]);
    assert_eq!(goals.print(40.0), "40%");
}

#[test]
fn chart_markup_mistakes_are_refused_at_their_line() {
    let table =
        "<table><tr><th>Date</th><th>PHQ-9</th></tr><tr><td>Jan 6</td><td>4</td></tr></table>";
    let cases: Vec<(String, usize, &str)> = vec![
        (
            format!("<p>intro</p>\n<div class=\"chart line\">\n{table}\n</div>"),
            2,
            "a chart needs a <p> saying what it shows",
        ),
        (
            "<div class=\"chart line\"><p>What it shows.</p></div>".to_owned(),
            1,
            "a chart needs a <table> of its numbers",
        ),
        (
            "<div class=\"chart line\">\n<p>What it shows.</p>\n<table><tr><th>Date</th><th>PHQ-9</th></tr>\
             <tr><td>Jan 6</td><td>many</td></tr></table>\n</div>"
                .to_owned(),
            3,
            "\"many\" in the chart's \"PHQ-9\" column is not a number",
        ),
        (
            format!(
                "<div class=\"chart line\"><p>What it shows.</p>{table}\n\
                 <ul class=\"bands\"><li>zero to four Minimal</li></ul></div>"
            ),
            2,
            "is not written as \"from-to label\"",
        ),
        (
            format!(
                "<div class=\"chart line\"><p>What it shows.</p>{table}\n\
                 <ul class=\"bands\"><li>0-9 Low</li><li>5-20 High</li></ul></div>"
            ),
            2,
            "overlaps the one before",
        ),
        (
            "<div class=\"chart bars\"><p>Two series.</p>\n<table><tr><th>Goal</th><th>A</th><th>B</th></tr>\
             <tr><td>x</td><td>1</td><td>2</td></tr></table></div>"
                .to_owned(),
            2,
            "a bar chart draws one series",
        ),
        (
            format!("<div class=\"chart line\"><p>What it shows.</p>{table}\n<hr></div>"),
            2,
            "<hr> cannot stand in a chart",
        ),
        (
            "<div class=\"chart line\"><p>No series.</p>\n<table><tr><th>Date</th></tr></table></div>"
                .to_owned(),
            2,
            "needs a header row naming the labels and at least one series",
        ),
    ];
    for (markup, line, message) in cases {
        let error = parse_markup(&markup).expect_err(&markup);
        assert!(
            error.message.contains(message),
            "{markup}\n gave {error}, expected {message:?}"
        );
        assert_eq!(error.line, line, "{markup}\n gave {error}");
    }
}

/// The colour of `key` (`fill`, `stroke`) in a style `pdftocairo -svg` wrote
/// (`stroke:rgb(12.156677%,30.587769%,47.450256%)`), as 0–255 channels.
fn colour(style: &str, key: &str) -> Option<[f64; 3]> {
    let start = style.find(&format!("{key}:rgb("))? + key.len() + 5;
    let end = start + style[start..].find(')')?;
    let mut channels = style[start..end].split(',').map(|p| {
        p.trim_end_matches('%')
            .parse::<f64>()
            .ok()
            .map(|v| v * 2.55)
    });
    Some([channels.next()??, channels.next()??, channels.next()??])
}

/// Whether `style` paints `key` in `rgb` (to within the rounding of the PDF's colour operands).
fn paints(style: &str, key: &str, rgb: [u8; 3]) -> bool {
    colour(style, key).is_some_and(|c| {
        c.iter()
            .zip(rgb)
            .all(|(a, b)| (a - f64::from(b)).abs() < 1.0)
    })
}

#[test]
fn a_pdf_chart_is_vector_paths_with_its_alt_text() {
    let renderer = PdfRenderer::with_system_fonts().expect("fonts: run scripts/install-fonts");
    let pdf = render(&renderer, &document());
    let svg = run_on("pdftocairo", "chart.pdf", &pdf, &["-svg"], &["-"]);
    // Paths drawn by the page (not glyph outlines in <symbol>s), with their styles.
    let paths: Vec<(&str, &str)> = svg
        .split("<path ")
        .skip(1)
        .filter_map(|p| {
            let style = p.split("style=\"").nth(1)?.split('"').next()?;
            let d = p.split(" d=\"").nth(1)?.split('"').next()?;
            Some((style, d))
        })
        .collect();
    // The series: one open path through the five points, falling with the scores (PDF y up).
    let line: Vec<&str> = paths
        .iter()
        .filter(|(style, _)| {
            style.contains("fill:none") && paints(style, "stroke", [0x1F, 0x4E, 0x79])
        })
        .map(|(_, d)| *d)
        .collect();
    assert_eq!(line.len(), 1, "one series line in {line:?}");
    let points: Vec<(f64, f64)> = line[0]
        .split(['M', 'L'])
        .filter_map(|p| {
            let mut xy = p.split_whitespace().map(|v| v.parse::<f64>().ok());
            Some((xy.next()??, xy.next()??))
        })
        .collect();
    assert_eq!(points.len(), 5, "{points:?}");
    assert!(
        points
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 > w[1].1),
        "{points:?}"
    );
    // The bands: five filled rectangles, from green at the bottom to red at the top.
    let tints = [
        [0xE3, 0xF2, 0xE3],
        [0xEE, 0xF5, 0xDC],
        [0xFD, 0xF3, 0xD6],
        [0xFC, 0xE5, 0xD2],
        [0xF9, 0xD9, 0xD6],
    ];
    for tint in tints {
        let filled = paths
            .iter()
            .filter(|(style, _)| paints(style, "fill", tint))
            .count();
        assert_eq!(filled, 1, "one band filled {tint:?}");
    }
    // The markers (five discs of Bézier curves) and the two bars with their tracks.
    let discs = paths
        .iter()
        .filter(|(_, d)| d.matches(" C ").count() == 4)
        .count();
    assert!(discs >= 5, "{discs} discs");
    // The words: the title, the bands' names, every value, the alternative text, the bars.
    let text = run_on("pdftotext", "chart.pdf", &pdf, &["-layout"], &["-"]);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for expected in [
        "PHQ-9 total score",
        "Moderately severe",
        "Minimal",
        "Jan 6, 2025",
        "from 20 (severe) to 5 (mild), a change of -15",
        "Sleep 7 hours a night (active)",
        "40%",
        "100%",
    ] {
        assert!(flat.contains(expected), "{expected:?} not in\n{text}");
    }
}

/// What python-docx reads of a DOCX's charts: each inline shape's type and alternative text, and
/// each chart part's series (names and values) from its XML.
const READ_CHARTS: &str = r#"
import json, sys
import docx
from docx.enum.shape import WD_INLINE_SHAPE
from lxml import etree
d = docx.Document(sys.argv[1])
C = "{http://schemas.openxmlformats.org/drawingml/2006/chart}"
shapes = [{"chart": s.type == WD_INLINE_SHAPE.CHART,
           "descr": s._inline.docPr.get("descr"), "title": s._inline.docPr.get("title"),
           "width_in": s.width.inches} for s in d.inline_shapes]
parts = []
for part in d.part.package.iter_parts():
    if part.content_type == "application/vnd.openxmlformats-officedocument.drawingml.chart+xml":
        root = etree.fromstring(part.blob)
        series = []
        for ser in root.iter(C + "ser"):
            name = ser.find(C + "tx/" + C + "v").text
            values = [float(v.text) for v in ser.iter(C + "v") if v.getparent().tag == C + "pt"
                      and v.getparent().getparent().tag == C + "numCache"]
            series.append({"name": name, "values": values})
        kinds = [el.tag.replace(C, "") for el in root.find(C + "chart/" + C + "plotArea")
                 if el.tag.endswith("Chart")]
        parts.append({"name": str(part.partname), "kinds": kinds, "series": series})
print(json.dumps({"shapes": shapes, "parts": parts}))
"#;

#[test]
fn a_docx_chart_is_a_chart_part_python_docx_and_libreoffice_read() {
    let docx = render(&DocxRenderer::default(), &document());
    let read = run_on("python3", "chart.docx", &docx, &["-c", READ_CHARTS], &[]);
    let read: serde_json::Value = serde_json::from_str(&read).expect("JSON from the reader");
    let shapes = read["shapes"].as_array().unwrap();
    assert_eq!(shapes.len(), 2, "{read}");
    assert!(shapes.iter().all(|s| s["chart"] == true), "{read}");
    assert_eq!(shapes[0]["descr"], ALT);
    assert_eq!(shapes[0]["title"], "PHQ-9 total score");
    assert!(
        shapes[1]["descr"]
            .as_str()
            .unwrap()
            .starts_with("Progress toward 2 goals")
    );
    // As wide as the text: 6.5 inches on Letter.
    assert!(
        (shapes[0]["width_in"].as_f64().unwrap() - 6.5).abs() < 0.01,
        "{read}"
    );
    let parts = read["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    // The line over the bands (a stacked area of the band widths), then the bars.
    assert_eq!(
        parts[0]["kinds"],
        serde_json::json!(["areaChart", "lineChart"])
    );
    let series = parts[0]["series"].as_array().unwrap();
    let named = |name: &str| series.iter().find(|s| s["name"] == name).cloned();
    assert_eq!(
        named("PHQ-9").expect("the PHQ-9 series")["values"],
        serde_json::json!([20.0, 16.0, 12.0, 9.0, 5.0])
    );
    assert_eq!(
        named("Moderately severe").expect("a band series")["values"],
        serde_json::json!([5.0, 5.0, 5.0, 5.0, 5.0])
    );
    assert_eq!(parts[1]["kinds"], serde_json::json!(["barChart"]));
    assert_eq!(
        parts[1]["series"][0]["values"],
        serde_json::json!([40.0, 100.0])
    );

    if std::env::var_os("EXPORT_TEST_LIBREOFFICE").is_none() {
        return;
    }
    // LibreOffice draws the charts when it converts the file: their titles, legends, axis and
    // data labels come out as text of the PDF it writes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chart.docx");
    std::fs::write(&path, &docx).unwrap();
    let status = Command::new("soffice")
        .args([
            "--headless",
            "--norestore",
            "--convert-to",
            "pdf",
            "--outdir",
        ])
        .arg(dir.path())
        .arg(&path)
        .env("HOME", dir.path())
        .output()
        .expect("soffice (scripts/setup-machine installs LibreOffice)");
    assert!(status.status.success(), "{status:?}");
    let converted = std::fs::read(dir.path().join("chart.pdf")).expect("LibreOffice wrote a PDF");
    let text = run_on("pdftotext", "lo.pdf", &converted, &[], &["-"]);
    // The caption paragraphs carry the titles and some numbers too; the band names and the bars'
    // labels as categories ("… (achieved)") only the charts draw.
    for expected in [
        "PHQ-9 total score",
        "Moderately severe",
        "Minimal",
        "20",
        "Return to work (achieved)",
        "Sleep 7 hours a night (active)",
        "100%",
    ] {
        assert!(
            text.contains(expected),
            "LibreOffice drew no {expected:?}:\n{text}"
        );
    }
    // Axis ticks, each a line of its own that no caption or date holds: a score of 15 (no point
    // has it) and 10% on the bars' axis.
    for tick in ["15", "10%"] {
        assert!(
            text.lines().any(|line| line.trim() == tick),
            "LibreOffice drew no tick {tick:?}:\n{text}"
        );
    }
}

#[test]
fn the_html_preview_draws_the_chart_as_svg_with_its_numbers() {
    let html = render_html_preview(&document());
    assert_eq!(html.matches("<svg ").count(), 2);
    assert!(html.contains("role=\"img\" aria-labelledby=\"chart-1-title chart-1-desc\""));
    assert!(html.contains("<title id=\"chart-1-title\">PHQ-9 total score</title>"));
    let desc = format!(
        "<desc id=\"chart-1-desc\">{}</desc>",
        ALT.replace('\'', "&#39;")
    );
    assert!(html.contains(&desc), "{html}");
    // The line through five points, a marker each, five bands and two bars on their tracks.
    let polyline = html
        .split("<polyline points=\"")
        .skip(1)
        .map(|p| p.split('"').next().unwrap())
        .find(|points| points.split_whitespace().count() == 5);
    assert!(polyline.is_some(), "a five-point series line in {html}");
    assert_eq!(html.matches("<circle ").count(), 5);
    assert!(html.matches("<rect ").count() >= 5 + 4);
    // The caption and the numbers behind the chart, in a table to open.
    assert!(html.contains(&format!(
        "<figcaption>{}</figcaption>",
        ALT.replace('\'', "&#39;")
    )));
    assert!(html.contains("<tr><td>Jan 6, 2025</td><td>20</td></tr>"));
    assert!(html.contains("<tr><td>Return to work (achieved)</td><td>100%</td></tr>"));
    // No script and no external reference: the preview stands alone.
    assert!(!html.contains("<script") && !html.contains("href="));
}

mod any_chart {
    use super::*;
    use export_render::{Band, Series};
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![
            Just(None),
            (-1.0e6..1.0e6f64).prop_map(Some),
            prop_oneof![Just(0.0), Just(f64::MAX), Just(-f64::MAX), Just(1.0e-300)].prop_map(Some),
        ]
    }

    fn chart() -> impl Strategy<Value = Chart> {
        (
            prop::bool::ANY,
            prop::collection::vec(("\\PC{0,40}", value()), 0..60),
            prop::collection::vec((-50.0..50.0f64, 0.0..40.0f64, "\\PC{0,20}"), 0..6),
            (-100.0..100.0f64, 0.0..200.0f64),
        )
            .prop_map(|(bars, points, bands, (min, span))| {
                let (labels, values): (Vec<String>, Vec<Option<f64>>) = points.into_iter().unzip();
                Chart {
                    kind: if bars {
                        ChartKind::Bars
                    } else {
                        ChartKind::Line
                    },
                    title: "Any".into(),
                    alt: "Any chart.".into(),
                    category: "Label".into(),
                    labels,
                    series: vec![Series {
                        name: "Value".into(),
                        values,
                    }],
                    bands: bands
                        .into_iter()
                        .map(|(from, width, label)| Band {
                            from,
                            to: from + width,
                            label,
                        })
                        .collect(),
                    min,
                    max: min + span,
                    unit: String::new(),
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the numbers (gaps, extremes, an empty axis, labels of any script), every
        /// renderer draws the chart without failing, and the PDF and DOCX still open.
        #[test]
        fn every_renderer_draws_any_chart(chart in chart()) {
            let document = Document {
                meta: DocumentMeta::new("Any", "Author", Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()),
                blocks: vec![Block::Chart { chart }],
            };
            let pdf = render(&PdfRenderer::with_system_fonts().unwrap(), &document);
            prop_assert!(pdf.starts_with(b"%PDF-"));
            let docx = render(&DocxRenderer::default(), &document);
            prop_assert!(docx.starts_with(b"PK"));
            let html = render_html_preview(&document);
            prop_assert!(html.contains("<svg "));
            // Every coordinate of the SVG a finite number.
            let svg = &html[html.find("<svg ").unwrap()..html.find("</svg>").unwrap()];
            for attribute in [" x=\"", " y=\"", " width=\"", " height=\"", " cx=\"", " cy=\"", " points=\""] {
                for value in svg.split(attribute).skip(1).map(|v| v.split('"').next().unwrap()) {
                    for number in value.split([' ', ',']).filter(|n| !n.is_empty()) {
                        let parsed: f64 = number.parse().map_err(|_| TestCaseError::fail(format!("{attribute}{number}")))?;
                        prop_assert!(parsed.is_finite(), "{}{}", attribute, number);
                    }
                }
            }
        }
    }
}
