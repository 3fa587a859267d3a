//! The documents as a clinician reads them, made from the fixtures.
//!
//! Layout: every fixture patient's 2025 documents (the progress report, the three treatment
//! summaries, and their first sessions' notes plain and in each clinical layout) are rendered to
//! PDF, and pdftotext's word boxes are read back page by page: no page but the last is filled
//! less than 60%, no page ends with a heading or a table's header row, a 25-session progress
//! report takes at most 6 pages, and every page says whose record it is. Risk: a high flag is a
//! callout in words everywhere. Phrases: a table of text each document must say and never say.

use chrono::{DateTime, TimeZone, Utc};
use export_core::gather;
use export_core::testing::{LUKASZ, ZOE, fixture_practice, pdf_text, progress_report_request};

/// A practice with a long address, as `EXPORT_PRACTICE` may name it: every page's footer says it
/// whole, on its own line.
const PRACTICE: &str = "Bramblegate Counselling (synthetic), Suite 4, 1200 Orchard Row, \
                        Springfield, IL 62704, (555) 010-0199";

/// Mateus Conceição: the fixture whose treatment plan states no medical necessity.
const MATEUS: &str = "a6f7ac29-f06c-5074-9275-24837e87d259";
use export_domain::{
    DateRangeInput, ExportType, FullRecordInput, FullRecordRequest, NoteLayout, Practice,
    ProgressReportRequest, Role, SessionNotesInput, SessionNotesRequest, SessionStatus,
    TherapySession, TreatmentSummaryInput, TreatmentSummaryRequest,
};
use export_render::{
    Block, Document, DocumentHeader, PdfRenderer, Renderer, Run, TemplateEngine, built_in_template,
    fill_note,
};
use serde::Serialize;
use uuid::Uuid;

/// The body of a Letter page, in pdftotext's coordinates (points from the top): the running
/// header sits above it, the footer below.
const BODY_TOP: f32 = 72.0;
const BODY_BOTTOM: f32 = 720.0;
const BANNER: &str = "CONFIDENTIAL - PROTECTED HEALTH INFORMATION";

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 10, 9, 0, 0).unwrap()
}

/// A word pdftotext placed: its box and text.
#[derive(Debug, Clone)]
struct Word {
    x: f32,
    top: f32,
    bottom: f32,
    text: String,
}

/// The words of each page, from `pdftotext -bbox`.
fn pages_of(pdf: &[u8]) -> Vec<Vec<Word>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-bbox", "-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (scripts/install-fonts installs poppler-utils)");
    assert!(out.status.success());
    let html = String::from_utf8(out.stdout).unwrap();
    let attribute = |tag: &str, name: &str| -> f32 {
        let start = tag.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        let end = start + tag[start..].find('"').unwrap();
        tag[start..end].parse().unwrap()
    };
    let mut pages = Vec::new();
    for page in html.split("<page ").skip(1) {
        let mut words = Vec::new();
        for word in page.split("<word ").skip(1) {
            let (tag, rest) = word.split_once('>').unwrap();
            let text = rest.split_once("</word>").unwrap().0;
            words.push(Word {
                x: attribute(tag, "xMin"),
                top: attribute(tag, "yMin"),
                bottom: attribute(tag, "yMax"),
                text: text
                    .replace("&amp;", "&")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\"")
                    .replace("&#39;", "'"),
            });
        }
        pages.push(words);
    }
    pages
}

/// The body's visual lines of a page, top to bottom: words whose tops are within 2 points of
/// each other, left to right, joined by spaces.
fn body_lines(words: &[Word]) -> Vec<(f32, f32, String)> {
    let mut body: Vec<&Word> = words
        .iter()
        .filter(|w| w.top >= BODY_TOP - 8.0 && w.bottom <= BODY_BOTTOM + 4.0)
        .collect();
    body.sort_by(|a, b| a.top.total_cmp(&b.top).then(a.x.total_cmp(&b.x)));
    let mut lines: Vec<(f32, f32, Vec<&Word>)> = Vec::new();
    for word in body {
        match lines.last_mut() {
            Some((top, bottom, line)) if (word.top - *top).abs() < 2.0 => {
                *bottom = bottom.max(word.bottom);
                line.push(word);
            }
            _ => lines.push((word.top, word.bottom, vec![word])),
        }
    }
    lines
        .into_iter()
        .map(|(top, bottom, mut line)| {
            line.sort_by(|a, b| a.x.total_cmp(&b.x));
            let text: Vec<&str> = line.iter().map(|w| w.text.as_str()).collect();
            (top, bottom, text.join(" "))
        })
        .collect()
}

fn runs_text(runs: &[Run]) -> String {
    runs.iter().map(|r| r.text.as_str()).collect()
}

/// The texts a page must not end with: every heading, and every table's header row.
fn must_not_end_a_page(blocks: &[Block], out: &mut Vec<String>) {
    for block in blocks {
        match block {
            Block::Heading { runs, .. } => out.push(runs_text(runs)),
            Block::Table { table } if !table.header.is_empty() => {
                let cells: Vec<String> = table.header.iter().map(|c| runs_text(c)).collect();
                out.push(cells.join(" "));
            }
            Block::Section { blocks, .. } => must_not_end_a_page(blocks, out),
            _ => {}
        }
    }
}

/// One rendered document and what its pages must show.
struct Rendered {
    what: String,
    patient: String,
    document: Document,
    pdf: Vec<u8>,
}

/// What a document of the fixtures is made from.
enum Request {
    Report(ProgressReportRequest),
    Summary(TreatmentSummaryRequest),
    Notes(SessionNotesRequest),
    Record(FullRecordRequest),
}

/// The full record of `patient` over 2025, with the transcripts when `transcripts`.
fn record_2025(patient: &str, transcripts: bool) -> Request {
    let input = FullRecordInput {
        patient_id: patient.into(),
        format: "pdf".into(),
        include_sections: [("transcripts".to_owned(), transcripts)].into(),
        date_range: Some(DateRangeInput {
            start: "2025-01-01".into(),
            end: "2025-12-31".into(),
        }),
    };
    Request::Record(input.validate().unwrap())
}

/// The progress report of `patient` over 2025.
fn report_2025(patient: &str) -> Request {
    let year = ("2025-01-01", "2025-12-31");
    Request::Report(progress_report_request(patient, year, "pdf"))
}

/// The treatment summary of `patient` for `purpose`.
fn summary(patient: &str, purpose: &str) -> Request {
    let input = TreatmentSummaryInput {
        patient_id: patient.into(),
        format: "pdf".into(),
        purpose: purpose.into(),
        ..Default::default()
    };
    Request::Summary(input.validate().unwrap())
}

/// The notes of `sessions`, laid out in `layout` when one is given.
fn notes(sessions: Vec<String>, layout: Option<&str>) -> Request {
    let input = SessionNotesInput {
        session_ids: sessions,
        format: "pdf".into(),
        note_layout: layout.map(str::to_owned),
        ..Default::default()
    };
    Request::Notes(input.validate().unwrap())
}

/// The templates and the PDF renderer, made once.
struct Kit {
    templates: TemplateEngine,
    pdf: PdfRenderer,
}

impl Kit {
    fn new() -> Kit {
        Kit {
            templates: TemplateEngine::new(),
            pdf: PdfRenderer::with_system_fonts().expect("fonts (scripts/install-fonts)"),
        }
    }

    /// The document `request` asks for, laid out by its built-in template, and its PDF.
    fn make(&self, practice: &Practice, request: &Request, what: String) -> Rendered {
        match request {
            Request::Report(r) => {
                let context = gather::progress_report(practice, r, at()).unwrap();
                self.render(ExportType::ProgressReport, what, &context.header, &context)
            }
            Request::Summary(r) => {
                let context = gather::treatment_summary(practice, r, at()).unwrap();
                self.render(
                    ExportType::TreatmentSummary,
                    what,
                    &context.header,
                    &context,
                )
            }
            Request::Notes(r) => {
                let context = gather::session_notes(practice, r, at()).unwrap();
                self.render(ExportType::SessionNotes, what, &context.header, &context)
            }
            Request::Record(r) => {
                let context = gather::full_record(practice, r, at()).unwrap();
                self.render(ExportType::FullRecord, what, &context.header, &context)
            }
        }
    }

    fn render(
        &self,
        export_type: ExportType,
        what: String,
        header: &DocumentHeader,
        context: &impl Serialize,
    ) -> Rendered {
        let meta = export_render::DocumentMeta {
            practice: Some(PRACTICE.to_owned()),
            ..gather::meta_for(header, at())
        };
        let name = built_in_template(export_type).unwrap();
        let document = self.templates.render_document(name, context, meta).unwrap();
        let mut out = std::io::Cursor::new(Vec::new());
        self.pdf.render_document(&document, &mut out).unwrap();
        Rendered {
            what,
            patient: header.patient_name.clone(),
            document,
            pdf: out.into_inner(),
        }
    }
}

/// `patient`'s processed sessions, oldest first.
fn sessions_of(practice: &Practice, patient: Uuid) -> Vec<&TherapySession> {
    let mut sessions: Vec<_> = practice
        .therapy_sessions
        .iter()
        .filter(|s| s.patient_id == patient && s.status == SessionStatus::Processed)
        .collect();
    sessions.sort_by_key(|s| s.session_date);
    sessions
}

const LAYOUTS: [Option<&str>; 5] = [
    None,
    Some("soap"),
    Some("dap"),
    Some("birp"),
    Some("progress_note"),
];

/// Every fixture patient's 2025 documents.
fn documents(practice: &Practice) -> Vec<Rendered> {
    let kit = Kit::new();
    let mut rendered = Vec::new();
    for patient in practice.users.iter().filter(|u| u.role == Role::Patient) {
        let id = patient.id.to_string();
        let what = format!("progress report of {id}");
        rendered.push(kit.make(practice, &report_2025(&id), what));
        for purpose in ["insurance", "transfer", "records"] {
            let what = format!("{purpose} summary of {id}");
            rendered.push(kit.make(practice, &summary(&id, purpose), what));
        }
        let what = format!("full record of {id}");
        rendered.push(kit.make(practice, &record_2025(&id, false), what));
        let first: Vec<String> = sessions_of(practice, patient.id)
            .iter()
            .take(4)
            .map(|s| s.id.to_string())
            .collect();
        for layout in LAYOUTS {
            let what = format!("{} notes of {id}", layout.unwrap_or("plain"));
            rendered.push(kit.make(practice, &notes(first.clone(), layout), what));
        }
    }
    rendered
}

#[test]
fn pages_are_full_say_whose_they_are_and_never_end_with_a_heading() {
    let practice = fixture_practice();
    let mut problems = Vec::new();
    let mut reports = Vec::new();
    for rendered in documents(&practice) {
        let pages = pages_of(&rendered.pdf);
        let mut forbidden = Vec::new();
        must_not_end_a_page(&rendered.document.blocks, &mut forbidden);
        let what = &rendered.what;
        if what.starts_with("progress report") {
            reports.push(pages.len());
            if pages.len() > 6 {
                problems.push(format!("{what}: {} pages, more than 6", pages.len()));
            }
        }
        for (index, words) in pages.iter().enumerate() {
            let number = index + 1;
            let last = number == pages.len();
            let lines = body_lines(words);
            let filled = lines
                .last()
                .map_or(0.0, |l| (l.1 - BODY_TOP) / (BODY_BOTTOM - BODY_TOP));
            if !last && filled < 0.6 {
                problems.push(format!(
                    "{what}: page {number} is {:.0}% filled",
                    filled * 100.0
                ));
            }
            if let Some((_, _, text)) = lines.last()
                && !last
                && forbidden
                    .iter()
                    .any(|f| f == text || (f.len() > text.len() && f.ends_with(text.as_str())))
            {
                problems.push(format!("{what}: page {number} ends with {text:?}"));
            }
        }
        // Whose record, on every page (the text as a reader extracts it).
        let text = pdf_text(&rendered.pdf);
        for (index, page) in text
            .split('\u{c}')
            .filter(|p| !p.trim().is_empty())
            .enumerate()
        {
            let number = index + 1;
            if !page.contains(BANNER) {
                problems.push(format!("{what}: page {number} has no banner"));
            }
            if !page.contains(&rendered.patient) {
                problems.push(format!("{what}: page {number} does not name the patient"));
            }
            if !page.contains(PRACTICE) || !page.contains(&format!("Page {number} of ")) {
                problems.push(format!(
                    "{what}: page {number} lacks the practice or its number"
                ));
            }
        }
    }
    assert!(reports.len() >= 10, "the fixtures' patients: {reports:?}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Zoë's progress report, SOAP notes and insurance summary as PNGs, for a person to look at:
/// in `target/tmp/layout/` (the test checks that pdftoppm made every page).
#[test]
fn pages_to_look_at_are_written_as_png() {
    let practice = fixture_practice();
    let zoe = export_core::testing::ZOE;
    let folder = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("layout");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    for rendered in documents(&practice).into_iter().filter(|r| {
        r.what.ends_with(zoe)
            && ["progress report", "soap notes", "insurance summary"]
                .iter()
                .any(|what| r.what.starts_with(what))
    }) {
        let name = rendered
            .what
            .split(" of ")
            .next()
            .unwrap()
            .replace(' ', "-");
        let pdf = folder.join(format!("{name}.pdf"));
        std::fs::write(&pdf, &rendered.pdf).unwrap();
        let status = std::process::Command::new("pdftoppm")
            .args(["-r", "60", "-png"])
            .arg(&pdf)
            .arg(folder.join(&name))
            .status()
            .expect("pdftoppm (poppler-utils)");
        assert!(status.success());
        let pages = pages_of(&rendered.pdf).len();
        let pngs = std::fs::read_dir(&folder)
            .unwrap()
            .filter(|e| {
                let file = e.as_ref().unwrap().file_name().into_string().unwrap();
                file.starts_with(&format!("{name}-")) && file.ends_with(".png")
            })
            .count();
        assert_eq!(pngs, pages, "{name}: a PNG for every page");
    }
}

/// The texts of every notice of `kind` in `blocks`, sections included.
fn notices(blocks: &[Block], kind: export_render::NoticeKind, out: &mut Vec<String>) {
    for block in blocks {
        match block {
            Block::Notice { notice } if notice.kind == kind => out.push(notice.text.clone()),
            Block::Section { blocks, .. } => notices(blocks, kind, out),
            _ => {}
        }
    }
}

#[test]
fn a_high_risk_flag_is_a_framed_callout_in_words_in_every_layout_and_report() {
    use export_render::NoticeKind;
    let practice = fixture_practice();
    let kit = Kit::new();
    // Łukasz's session of August 12, 2025: a high suicidal-ideation flag and a medium one.
    let flagged = "8243af68-a500-58ea-bd14-59e97aa393ca";
    let high = "HIGH RISK: suicidal ideation. Disclosed thoughts of ending his life with a vague \
                plan after a relapse weekend; safety plan activated and crisis contacts \
                confirmed. (August 12, 2025)";
    let squash = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    for layout in LAYOUTS {
        let what = layout.unwrap_or("plain");
        let request = notes(vec![flagged.into()], layout);
        let rendered = kit.make(&practice, &request, what.into());
        let mut danger = Vec::new();
        notices(&rendered.document.blocks, NoticeKind::Danger, &mut danger);
        // Once among the session's flags, and once atop the note when there is one.
        let expected = if layout.is_some() { 2 } else { 1 };
        assert_eq!(danger, vec![high.to_owned(); expected], "{what}");
        let mut warnings = Vec::new();
        notices(
            &rendered.document.blocks,
            NoticeKind::Warning,
            &mut warnings,
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("Medium risk: substance use.")),
            "{what}: {warnings:?}"
        );
        assert!(
            squash(&pdf_text(&rendered.pdf)).contains(high),
            "{what}: the PDF says it"
        );
    }

    // A session without flags says so, and its risk field is not left "to complete".
    let quiet = practice
        .therapy_sessions
        .iter()
        .find(|s| {
            s.status == SessionStatus::Processed
                && s.extracted_notes
                    .as_ref()
                    .is_some_and(|n| n.risk_flags.is_empty())
        })
        .unwrap();
    let request = notes(vec![quiet.id.to_string()], Some("soap"));
    let text = kit
        .make(&practice, &request, "quiet".into())
        .document
        .plain_text();
    assert!(
        text.contains("Risk flags: No risk flags recorded in this session."),
        "{text}"
    );
    assert!(
        text.contains("Risk assessment: No risk flags recorded."),
        "{text}"
    );
    assert!(!text.contains("Risk assessment: [to complete]"), "{text}");

    // Łukasz's progress report over 2025 lists the period's flags by date and severity.
    let rendered = kit.make(&practice, &report_2025(LUKASZ), "report".into());
    let text = squash(&pdf_text(&rendered.pdf));
    assert!(text.contains("Risk Flags"), "the section");
    assert!(text.contains(high), "the high flag as a callout");
    assert!(
        text.contains("August 12, 2025 High suicidal ideation"),
        "its row: {text}"
    );
}

#[test]
fn documents_say_what_a_clinician_would_write() {
    let practice = fixture_practice();
    let kit = Kit::new();
    let text = |request: Request| {
        kit.make(&practice, &request, String::new())
            .document
            .plain_text()
    };
    let first = |patient: &str| sessions_of(&practice, Uuid::parse_str(patient).unwrap())[0];
    let zoe = first(ZOE);
    let zoe_notes = zoe.extracted_notes.as_ref().unwrap();
    let lukasz = first(LUKASZ);
    let birp_response = format!(
        "Patient response: {}",
        lukasz
            .extracted_notes
            .as_ref()
            .unwrap()
            .therapist_notes
            .trim()
    );
    let zoe_complaint = format!(
        "Chief complaint: {} Presenting as {}.",
        export_render::sentence(&zoe_notes.topic_summary),
        zoe_notes.session_mood.trim()
    );
    let note =
        |session: &TherapySession, layout| text(notes(vec![session.id.to_string()], Some(layout)));
    let necessity = |patient: &str| {
        let id = Uuid::parse_str(patient).unwrap();
        let plan = practice.treatment_plans.iter().find(|p| p.patient_id == id);
        plan.and_then(|p| p.medical_necessity.clone())
    };
    let zoe_necessity = format!(
        "Medical necessity: {}",
        necessity(ZOE).expect("Zoë's plan states its medical necessity")
    );
    assert_eq!(necessity(MATEUS), None, "the fixture without a statement");
    // The first line Łukasz said in 2025, in the transcript a full record carries only when asked.
    let lukasz_2025 = sessions_of(&practice, Uuid::parse_str(LUKASZ).unwrap())
        .into_iter()
        .find(|s| s.session_date.format("%Y").to_string() == "2025")
        .unwrap();
    let spoken = lukasz_2025
        .transcript_text
        .as_deref()
        .and_then(|t| t.lines().find(|l| l.starts_with("Patient: ")))
        .expect("a transcript")
        .to_owned();
    let documents = [
        ("insurance summary", text(summary(ZOE, "insurance"))),
        ("transfer summary", text(summary(ZOE, "transfer"))),
        ("records summary", text(summary(LUKASZ, "records"))),
        (
            "insurance summary without a statement",
            text(summary(MATEUS, "insurance")),
        ),
        ("full record", text(record_2025(LUKASZ, false))),
        (
            "full record with transcripts",
            text(record_2025(LUKASZ, true)),
        ),
        ("SOAP note", note(zoe, "soap")),
        ("SOAP note", note(lukasz, "soap")),
        ("BIRP note", note(lukasz, "birp")),
        ("DAP note", note(zoe, "dap")),
        ("progress note", note(lukasz, "progress_note")),
    ];
    // (document, what it says, what it never says)
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "insurance summary",
            &[
                "Purpose: Insurance reimbursement",
                "\nGood\n",
                "(1 session)",
                "Dates of service: January 7, 2025; January 15, 2025;",
                "Assessment Outcomes\nInstrument\nFirst\nLatest\nChange\nGAD-7\n",
                "Prepared by: Margaret Holloway, LCSW\n",
                "Clinician: Margaret Holloway, LCSW\nSignature: ",
                zoe_necessity.as_str(),
            ],
            &[
                "Purpose: insurance",
                "\ngood\n",
                "(1 sessions)",
                "\nRisk Flags\n",
                "\nRecommendations\n",
            ],
        ),
        (
            "transfer summary",
            &[
                "Purpose: Transfer of care",
                "\nRisk Flags\n",
                "\nRecommendations\n",
                "Signature: ",
            ],
            &[
                "Purpose: transfer",
                "Dates of service:",
                "Medical necessity:",
            ],
        ),
        (
            "insurance summary without a statement",
            &["Medical necessity: [to complete: the treatment plan states no medical necessity]"],
            &[],
        ),
        (
            "full record",
            &[
                "Prepared by: Daniel Okafor, PsyD\n",
                "\nRisk Flags\n",
                "\nSession Notes\n",
                "Risk flags: No risk flags recorded in this session.",
                "HIGH RISK: suicidal ideation.",
                "\nTimeline\nDate\nEvent\nDetail\n",
                "\nAssessment\nPHQ-9 ",
                "\nPlan review\nDialectical Behavior Therapy plan reviewed",
                "\nGoal\nSet: ",
                "\nRisk flag\nHigh suicidal ideation: ",
            ],
            &[spoken.as_str(), "\nTranscript\n"],
        ),
        (
            "full record with transcripts",
            &[spoken.as_str(), "\nTranscript\n"],
            &[],
        ),
        (
            "records summary",
            &["Purpose: Clinical records"],
            &["Purpose: records"],
        ),
        (
            "SOAP note",
            &["(confidence ", "%)"],
            &[".;", "(confidence 0.", "(confidence 1)"],
        ),
        (
            "SOAP note",
            &[zoe_complaint.as_str()],
            &[": hopeful: ", ": anxious: "],
        ),
        ("BIRP note", &[birp_response.as_str()], &[".;"]),
        ("DAP note", &["(confidence "], &[".;", "(confidence 0."]),
        (
            "progress note",
            &["(confidence "],
            &[".;", "(confidence 0."],
        ),
    ];
    let mut problems = Vec::new();
    for (name, says, never) in cases {
        let texts: Vec<&String> = documents
            .iter()
            .filter(|(what, _)| what == name)
            .map(|(_, text)| text)
            .collect();
        assert!(!texts.is_empty(), "{name}");
        for phrase in *says {
            if !texts.iter().any(|text| text.contains(phrase)) {
                problems.push(format!("{name} does not say {phrase:?}"));
            }
        }
        for phrase in *never {
            for text in &texts {
                if text.contains(phrase) {
                    problems.push(format!("{name} says {phrase:?}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_note_field_comes_from_its_source() {
    let practice = fixture_practice();
    let session = sessions_of(&practice, Uuid::parse_str(ZOE).unwrap())[0];
    let n = session.extracted_notes.as_ref().unwrap();
    let field = |layout: NoteLayout, key: &str| -> String {
        let note = fill_note(layout, session);
        let field = note
            .sections
            .iter()
            .flat_map(|s| &s.fields)
            .find(|f| f.key == key)
            .unwrap_or_else(|| panic!("{layout} has {key}"));
        serde_json::to_value(&field.value).unwrap().to_string()
    };
    // (layout, field, a text its value must carry)
    use NoteLayout::{Birp, Dap, ProgressNote, Soap};
    let (impression, mood) = (&n.therapist_notes, &n.session_mood);
    let (summary, trajectory) = (&n.topic_summary, &n.mood_trajectory);
    let cases = [
        (Soap, "clinical_impression", impression),
        (Soap, "mood", mood),
        (Dap, "observations", summary),
        (Birp, "patient_response", impression),
        (Birp, "mood_trajectory", trajectory),
        (ProgressNote, "overview", summary),
        (ProgressNote, "changes", trajectory),
    ];

    for (layout, key, source) in cases {
        let value = field(layout, key);
        assert!(
            value.contains(
                serde_json::to_string(source.trim())
                    .unwrap()
                    .trim_matches('"')
            ),
            "{layout}.{key} = {value}, not from {source:?}"
        );
    }
    let summary = session.patient_summary.clone().unwrap_or_default();
    assert!(
        summary.is_empty() || !field(NoteLayout::Birp, "patient_response").contains(&summary),
        "the BIRP response is the clinician's account, not the patient's summary"
    );
}
