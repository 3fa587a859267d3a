//! The phrases the documents build, as a clinician reads them: a table of documents made from the
//! fixtures, with text each must say and text it must never say (joins, plurals, labels, values
//! as words, confidences as percentages, the right source for each note field).

use chrono::{TimeZone, Utc};
use export_core::gather;
use export_core::testing::{LUKASZ, ZOE, fixture_practice};
use export_domain::{
    NoteLayout, Practice, SessionNotesInput, SessionStatus, TherapySession, TreatmentSummaryInput,
};
use export_render::{DocumentHeader, TemplateEngine, built_in_template, fill_note};
use serde::Serialize;
use uuid::Uuid;

fn plain_text(header: &DocumentHeader, context: &impl Serialize, template: &str) -> String {
    let at = Utc.with_ymd_and_hms(2026, 1, 10, 9, 0, 0).unwrap();
    let document = TemplateEngine::new()
        .render_document(template, context, gather::meta_for(header, at))
        .unwrap();
    document.plain_text()
}

fn summary(practice: &Practice, patient: &str, purpose: &str) -> String {
    let request = TreatmentSummaryInput {
        patient_id: patient.into(),
        format: "pdf".into(),
        purpose: purpose.into(),
        ..Default::default()
    }
    .validate()
    .unwrap();
    let at = Utc.with_ymd_and_hms(2026, 1, 10, 9, 0, 0).unwrap();
    let context = gather::treatment_summary(practice, &request, at).unwrap();
    let name = built_in_template(export_domain::ExportType::TreatmentSummary).unwrap();
    plain_text(&context.header, &context, name)
}

fn first_session<'p>(practice: &'p Practice, patient: &str) -> &'p TherapySession {
    let patient = Uuid::parse_str(patient).unwrap();
    practice
        .therapy_sessions
        .iter()
        .filter(|s| s.patient_id == patient && s.status == SessionStatus::Processed)
        .min_by_key(|s| s.session_date)
        .unwrap()
}

fn notes(practice: &Practice, session: &TherapySession, layout: &str) -> String {
    let request = SessionNotesInput {
        session_ids: vec![session.id.to_string()],
        format: "pdf".into(),
        note_layout: Some(layout.into()),
        ..Default::default()
    }
    .validate()
    .unwrap();
    let at = Utc.with_ymd_and_hms(2026, 1, 10, 9, 0, 0).unwrap();
    let context = gather::session_notes(practice, &request, at).unwrap();
    let name = built_in_template(export_domain::ExportType::SessionNotes).unwrap();
    plain_text(&context.header, &context, name)
}

#[test]
fn documents_say_what_a_clinician_would_write() {
    let practice = fixture_practice();
    let zoe = first_session(&practice, ZOE);
    let zoe_notes = zoe.extracted_notes.as_ref().unwrap();
    let lukasz = first_session(&practice, LUKASZ);
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
    let documents = [
        ("insurance summary", summary(&practice, ZOE, "insurance")),
        ("transfer summary", summary(&practice, ZOE, "transfer")),
        ("records summary", summary(&practice, LUKASZ, "records")),
        ("SOAP note", notes(&practice, zoe, "soap")),
        ("SOAP note", notes(&practice, lukasz, "soap")),
        ("BIRP note", notes(&practice, lukasz, "birp")),
        ("DAP note", notes(&practice, zoe, "dap")),
        ("progress note", notes(&practice, lukasz, "progress_note")),
    ];
    // (document, what it says, what it never says)
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "insurance summary",
            &[
                "Purpose: Insurance reimbursement",
                "\nGood\n",
                "(1 session)",
            ],
            &["Purpose: insurance", "\ngood\n", "(1 sessions)"],
        ),
        (
            "transfer summary",
            &["Purpose: Transfer of care"],
            &["Purpose: transfer"],
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
    let session = first_session(&practice, ZOE);
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
    let cases = [
        (
            NoteLayout::Soap,
            "clinical_impression",
            n.therapist_notes.as_str(),
        ),
        (NoteLayout::Soap, "mood", n.session_mood.as_str()),
        (NoteLayout::Dap, "observations", n.topic_summary.as_str()),
        (
            NoteLayout::Birp,
            "patient_response",
            n.therapist_notes.as_str(),
        ),
        (
            NoteLayout::Birp,
            "mood_trajectory",
            n.mood_trajectory.as_str(),
        ),
        (
            NoteLayout::ProgressNote,
            "overview",
            n.topic_summary.as_str(),
        ),
        (
            NoteLayout::ProgressNote,
            "changes",
            n.mood_trajectory.as_str(),
        ),
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
