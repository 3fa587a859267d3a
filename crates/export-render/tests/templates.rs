//! Templates, data-driven: every built-in template with the section combinations that matter,
//! a table of bad custom templates with the exact error each must produce, escaping of user data,
//! and golden HTML previews (regenerate with `UPDATE_GOLDEN=1 cargo test -p export-render`).

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use export_domain::ExportType;
use export_render::{
    Block, Document, DocumentMeta, NoticeKind, TemplateEngine, parse_markup, render_html_preview,
    samples,
};

fn meta(title: &str) -> DocumentMeta {
    DocumentMeta::new(
        title,
        "Sample Therapist",
        Utc.with_ymd_and_hms(2025, 4, 1, 14, 30, 0).unwrap(),
    )
}

/// The section headings (h2) of a document, in order.
fn section_headings(document: &Document) -> Vec<String> {
    fn walk(blocks: &[Block], out: &mut Vec<String>) {
        for block in blocks {
            match block {
                Block::Heading { level: 2, runs } => {
                    out.push(runs.iter().map(|r| r.text.as_str()).collect())
                }
                Block::Section { blocks, .. } => walk(blocks, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(&document.blocks, &mut out);
    out
}

fn render(engine: &TemplateEngine, export_type: ExportType, off: &[&str]) -> Document {
    macro_rules! with_sections {
        ($context:expr, $name:literal) => {{
            let mut context = $context;
            for key in off {
                *context.sections.get_mut(*key).expect("a known section") = false;
            }
            engine
                .render_document($name, &context, meta($name))
                .unwrap()
        }};
    }
    match export_type {
        ExportType::ProgressReport => {
            with_sections!(samples::progress_report(), "progress_report.html")
        }
        ExportType::TreatmentSummary => {
            with_sections!(samples::treatment_summary(), "treatment_summary.html")
        }
        ExportType::FullRecord => with_sections!(samples::full_record(), "full_record.html"),
        ExportType::SessionNotes => engine
            .render_document(
                "session_notes.html",
                &samples::session_notes(),
                meta("notes"),
            )
            .unwrap(),
        ExportType::Dataset => unreachable!(),
    }
}

#[test]
fn built_in_templates_show_exactly_the_sections_asked_for() {
    let engine = TemplateEngine::new();
    // Risk flags are always shown: no section key hides them.
    let all_progress = [
        "Patient Information",
        "Risk Flags",
        "Treatment Goals",
        "Goal Progress",
        "Assessments",
        "Session Summary",
        "Clinical Observations",
        "Recommendations",
    ];
    let all_summary = [
        "Patient Information",
        "Diagnosis",
        "Risk Flags",
        "Treatment Plan",
        "Interventions Used",
        "Session Statistics",
        "Progress",
        "Clinical Observations",
        "Prognosis",
        "Recommendations",
    ];
    let all_record = [
        "Demographics",
        "Diagnoses",
        "Treatment Plans",
        "Risk Flags",
        "Goals",
        "Sessions",
        "Session Notes",
        "Assessments",
        "Timeline",
        "Attachments",
    ];
    let cases: &[(ExportType, &[&str], Vec<&str>)] = &[
        (ExportType::ProgressReport, &[], all_progress.to_vec()),
        (
            ExportType::ProgressReport,
            &["assessments"],
            all_progress
                .iter()
                .copied()
                .filter(|h| *h != "Assessments")
                .collect(),
        ),
        (
            ExportType::ProgressReport,
            &["patient_info", "recommendations", "goal_progress"],
            vec![
                "Risk Flags",
                "Treatment Goals",
                "Assessments",
                "Session Summary",
                "Clinical Observations",
            ],
        ),
        // Every key the type accepts turned off leaves only the risk flags.
        (
            ExportType::ProgressReport,
            ExportType::ProgressReport.section_keys(),
            vec!["Risk Flags"],
        ),
        (ExportType::TreatmentSummary, &[], all_summary.to_vec()),
        (
            ExportType::TreatmentSummary,
            &["diagnosis", "prognosis"],
            all_summary
                .iter()
                .copied()
                .filter(|h| !["Diagnosis", "Prognosis"].contains(h))
                .collect(),
        ),
        (ExportType::FullRecord, &[], all_record.to_vec()),
        (
            ExportType::FullRecord,
            &["sessions", "notes", "timeline", "attachments"],
            vec![
                "Demographics",
                "Diagnoses",
                "Treatment Plans",
                "Risk Flags",
                "Goals",
                "Assessments",
            ],
        ),
        (
            ExportType::SessionNotes,
            &[],
            vec!["Session of March 3, 2025"],
        ),
    ];
    for (export_type, off, expected) in cases {
        let document = render(&engine, *export_type, off);
        let headings = section_headings(&document);
        assert_eq!(headings, *expected, "{export_type} without {off:?}");
        // Every document ends with the clinician's attestation, whatever the sections.
        let text = document.plain_text();
        let end = text.lines().rev().take(3).collect::<Vec<_>>();
        assert!(
            end[0].starts_with("Signature: ____") && end[0].contains("Date: ____"),
            "{export_type}: {end:?}"
        );
        assert_eq!(end[1], "Clinician: Sample Therapist", "{export_type}");
        assert!(
            end[2].starts_with("Attestation: I attest"),
            "{export_type}: {end:?}"
        );
        // Every document opens with the confidentiality notice and the header block.
        assert!(
            matches!(&document.blocks[0], Block::Notice { notice } if notice.kind == NoticeKind::Confidential && notice.text == "CONFIDENTIAL - PROTECTED HEALTH INFORMATION")
        );
        let text = document.plain_text();
        for line in ["Patient: Sample Patient", "Prepared by: Sample Therapist"] {
            assert!(
                text.contains(line),
                "{export_type}: {line} missing in\n{text}"
            );
        }
    }
}

#[test]
fn tables_keep_their_header_row_and_cells() {
    let document = render(&TemplateEngine::new(), ExportType::ProgressReport, &[]);
    let tables: Vec<_> = document
        .blocks
        .iter()
        .flat_map(|b| match b {
            Block::Section { blocks, .. } => blocks.clone(),
            other => vec![other.clone()],
        })
        .filter_map(|b| match b {
            Block::Table { table } => Some(table),
            _ => None,
        })
        .collect();
    let cells = |row: &Vec<Vec<export_render::Run>>| {
        row.iter()
            .map(|c| c.iter().map(|r| r.text.clone()).collect::<String>())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        cells(&tables[0].header),
        ["Date", "Severity", "Risk", "Evidence"],
        "the risk flags come first"
    );
    assert_eq!(
        cells(&tables[0].rows[0]),
        [
            "March 3, 2025",
            "Medium",
            "self harm",
            "Urges last week, none acted on"
        ]
    );
    let tables = &tables[1..];
    assert_eq!(
        cells(&tables[0].header),
        ["Goal", "Baseline", "Current", "Progress"]
    );
    assert_eq!(
        cells(&tables[0].rows[0]),
        ["Fewer panic attacks", "4 per week", "1 per week", "75%"]
    );
    // One goal in the sample context: one data row, nothing from the header duplicated into it.
    assert_eq!(tables[0].rows.len(), 1);
}

/// Checks `source` as a custom progress-report template: `Ok` or the exact error.
fn check_custom(source: &str, expected: Result<(), &str>) {
    let got = TemplateEngine::new()
        .check_custom(ExportType::ProgressReport, source)
        .map_err(|e| e.to_string());
    assert_eq!(
        got.as_ref().map(|_| ()).map_err(String::as_str),
        expected,
        "\n{source}"
    );
}

#[test]
fn bad_custom_templates_are_refused_with_line_and_cause() {
    check_custom(
        "<h1>{{ header.title }}</h1>\n<p>{{ header.patient_name }}</p>",
        Ok(()),
    );
    check_custom(
        "{% extends \"base.html\" %}\n{% block content %}<p>{{ session_count }} sessions</p>{% endblock content %}",
        Ok(()),
    );
    check_custom(
        "<h1>{{ header.title }}</h1>\n<p>ok</p>\n<script>alert(1)</script>",
        Err(
            "line 3: <script> is not allowed in a template; use one of h1, h2, h3, h4, p, strong, b, em, i, span, br, table, thead, tbody, tr, th, td, ul, ol, li, div, hr",
        ),
    );
    check_custom(
        "<p onclick=\"steal()\">hi</p>",
        Err("line 1: attribute \"onclick\" on <p> is not allowed; only class is"),
    );
    check_custom(
        "<h2>Goals</h2>\n<p>unclosed paragraph",
        Err("line 2: <p> is not closed"),
    );
    check_custom(
        "<h1>{{ header.title }}</h1>\n\n<p>{{ patient.nme }}</p>",
        Err("line 3: `patient.nme` is not defined"),
    );
    check_custom(
        "<h1>{{ header.title }}</h1>\n{% if session_count %}\n<p>x</p>",
        Err("line 2: {% if %} is never closed; add {% endif %}"),
    );
    check_custom("<p>{{ header.title </p>", Err(BAD_EXPRESSION));
    check_custom(
        "<p>{{ get_env(name=\"DATABASE_URL\") }}</p>",
        Err("line 1: there is no function `get_env`"),
    );
    check_custom(
        "{% for g in goals %}\n<p>{{ g.description }}</p>\n{% endif %}",
        Err("line 3: {% endif %} does not close the {% for %} opened on line 1"),
    );
    check_custom(
        "<table><tr><td>a</td></tr><p>b</p></table>",
        Err("line 1: <p> cannot stand directly in a <table>"),
    );
}

const BAD_EXPRESSION: &str = "line 1: unexpected `/` (column 21)";

#[test]
fn user_data_is_escaped_never_markup() {
    let mut context = samples::progress_report();
    context.header.patient_name = "<strong>Eve</strong> & \"Co\" <script>x</script>".into();
    context.observations = vec!["=SUM(A1) <br> is not a tag".into()];
    let document = TemplateEngine::new()
        .render_document("progress_report.html", &context, meta("x"))
        .unwrap();
    let text = document.plain_text();
    assert!(
        text.contains("Patient: <strong>Eve</strong> & \"Co\" <script>x</script>"),
        "{text}"
    );
    assert!(text.contains("=SUM(A1) <br> is not a tag"), "{text}");
}

#[test]
fn markup_entities_and_whitespace_follow_html() {
    let blocks = parse_markup("<p>  a &amp; b\n   <em>c&#x27;d</em>&nbsp;e<br>f </p>").unwrap();
    let Block::Paragraph { runs } = &blocks[0] else {
        panic!("{blocks:?}")
    };
    let texts: Vec<(&str, bool)> = runs.iter().map(|r| (r.text.as_str(), r.italic)).collect();
    assert_eq!(
        texts,
        [("a & b ", false), ("c'd", true), ("\u{a0}e\nf", false)]
    );
}

#[test]
fn character_references_with_a_sign_stay_text() {
    // `u32::from_str_radix("+41", 16)` is 65: a `+` once made `&#x+41;` an `A`.
    let check = |input: &str, expect: &str| {
        assert_eq!(export_render::decode_entities(input), expect, "{input}");
    };
    for (input, expect) in [
        ("&#x41;&#X41;&#65;", "AAA"),
        ("&#x+41;", "&#x+41;"),
        ("&#+65;", "&#+65;"),
        ("&#x-41;", "&#x-41;"),
        ("&#x;&#;", "&#x;&#;"),
        ("&#x 41;", "&#x 41;"),
    ] {
        check(input, expect);
    }
}

fn golden(name: &str, actual: &str) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "golden", name]
        .iter()
        .collect();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing; run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(
        actual, expected,
        "{name} differs; if intended, rerun with UPDATE_GOLDEN=1"
    );
}

#[test]
fn html_previews_match_the_golden_files() {
    let engine = TemplateEngine::new();
    for (export_type, file) in [
        (ExportType::ProgressReport, "progress_report.html"),
        (ExportType::TreatmentSummary, "treatment_summary.html"),
        (ExportType::SessionNotes, "session_notes.html"),
        (ExportType::FullRecord, "full_record.html"),
    ] {
        golden(
            file,
            &render_html_preview(&render(&engine, export_type, &[])),
        );
    }
}

#[test]
fn session_notes_lay_out_a_filled_note_and_flag_what_is_missing() {
    let session = export_domain::TherapySession {
        id: uuid::Uuid::from_u128(1),
        patient_id: uuid::Uuid::from_u128(2),
        therapist_id: uuid::Uuid::from_u128(3),
        session_date: Utc.with_ymd_and_hms(2025, 3, 3, 14, 0, 0).unwrap(),
        duration_seconds: 3000,
        status: export_domain::SessionStatus::Processed,
        transcript_text: None,
        transcript_segments: vec![],
        therapist_summary: None,
        patient_summary: None,
        extracted_notes: Some(export_domain::ExtractedNotes {
            session_mood: "hopeful".into(),
            key_topics: vec!["sleep".into(), "work".into()],
            ..Default::default()
        }),
        created_at: Utc.with_ymd_and_hms(2025, 3, 3, 15, 0, 0).unwrap(),
    };
    let mut context = samples::session_notes();
    context.sessions[0].note = Some(export_render::fill_note(
        export_domain::NoteLayout::Soap,
        &session,
    ));
    let document = TemplateEngine::new()
        .render_document("session_notes.html", &context, meta("notes"))
        .unwrap();
    let text = document.plain_text();
    for expected in [
        "SOAP Note",
        "Subjective (confidence 52%)",
        "Reported mood: hopeful",
        "Presenting issues: sleep; work",
        "Patient concerns: [to complete]",
        "Clinical impression: [to complete]",
    ] {
        assert!(text.contains(expected), "{expected:?} missing in\n{text}");
    }
}

/// The charts of a document, in order, with the section headings above them.
fn charts(document: &Document) -> Vec<&export_render::Chart> {
    fn walk<'d>(blocks: &'d [Block], out: &mut Vec<&'d export_render::Chart>) {
        for block in blocks {
            match block {
                Block::Chart { chart } => out.push(chart),
                Block::Section { blocks, .. } => walk(blocks, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(&document.blocks, &mut out);
    out
}

#[test]
fn reports_draw_assessment_trends_and_goal_progress() {
    use export_render::ChartKind;
    let engine = TemplateEngine::new();
    let report = render(&engine, ExportType::ProgressReport, &[]);
    let found: Vec<(ChartKind, &str, usize, &str)> = charts(&report)
        .into_iter()
        .map(|c| (c.kind, c.title.as_str(), c.bands.len(), c.unit.as_str()))
        .collect();
    // Goal progress as bars from 0 to 100%, then each instrument over its five PHQ-9 bands.
    assert_eq!(
        found,
        [
            (ChartKind::Bars, "", 0, "%"),
            (ChartKind::Line, "PHQ-9 total score", 5, ""),
        ]
    );
    let bars = charts(&report)[0];
    assert_eq!(bars.labels, ["Fewer panic attacks (active)"]);
    assert_eq!(bars.series[0].values, [Some(75.0)]);
    let trend = charts(&report)[1];
    assert_eq!(trend.labels, ["Jan 3, 2025", "Feb 3, 2025", "Mar 3, 2025"]);
    assert_eq!(trend.series[0].values, [Some(14.0), Some(11.0), Some(6.0)]);
    assert_eq!(
        trend.alt,
        "PHQ-9 total score on 3 dates from January 3, 2025 to March 3, 2025: from 14 (moderate) \
         to 6 (mild), a change of -8; lowest 6, highest 14."
    );
    // Sections left out take their charts with them.
    let without = render(
        &engine,
        ExportType::ProgressReport,
        &["assessments", "goal_progress"],
    );
    assert!(charts(&without).is_empty());
    // The treatment summary shows the outcome as the same trend.
    let summary = render(&engine, ExportType::TreatmentSummary, &[]);
    let titles: Vec<&str> = charts(&summary).iter().map(|c| c.title.as_str()).collect();
    assert_eq!(titles, ["PHQ-9 total score"]);
}

#[test]
fn custom_templates_place_charts_through_the_markup() {
    use export_render::ChartKind;
    // The built-in macros, and a chart written by hand from the context's numbers.
    let source = r#"{% import "macros.html" as m %}
<h1>{{ header.title }}</h1>
{%- for trend in trends %}
{{ m.trend_chart(trend=trend) }}
{%- endfor %}
<div class="chart bars percent">
<h4>Goals</h4>
<p>{{ goals | length }} goal{{ goals | length | pluralize }} by progress.</p>
<table><tr><th>Goal</th><th>Progress</th></tr>
{%- for g in goals %}<tr><td>{{ g.description }}</td><td>{{ g.progress_percentage }}%</td></tr>{% endfor %}
</table>
</div>"#;
    let engine = TemplateEngine::new();
    engine
        .check_custom(ExportType::ProgressReport, source)
        .expect("a custom template with charts is accepted");
    let document = engine
        .render_custom(source, &samples::progress_report(), meta("custom"))
        .unwrap();
    let found: Vec<(ChartKind, &str, &str)> = charts(&document)
        .into_iter()
        .map(|c| (c.kind, c.title.as_str(), c.alt.as_str()))
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].1, "PHQ-9 total score");
    assert_eq!(found[1], (ChartKind::Bars, "Goals", "1 goal by progress."));
    // A chart without what it shows in words is refused when the template is saved.
    let mute = "<div class=\"chart line\">\n<table><tr><th>Date</th><th>PHQ-9</th></tr>\
                <tr><td>Jan 6</td><td>{{ session_count }}</td></tr></table>\n</div>";
    check_custom(
        mute,
        Err("line 1: a chart needs a <p> saying what it shows, for readers who cannot see it"),
    );
}
