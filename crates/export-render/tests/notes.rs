//! Note auto-fill, data-driven: for each layout, the confidence of every section and the exact
//! list of fields a clinician must still complete.

use chrono::{TimeZone, Utc};
use export_domain::{
    ActionItem, ExtractedNotes, NoteLayout, RiskFlag, RiskSeverity, SessionStatus, Strategy,
    StrategyStatus, TherapySession,
};
use export_render::{FieldValue, fill_note};
use uuid::Uuid;

fn session(notes: Option<ExtractedNotes>, patient_summary: Option<&str>) -> TherapySession {
    TherapySession {
        id: Uuid::from_u128(1),
        patient_id: Uuid::from_u128(2),
        therapist_id: Uuid::from_u128(3),
        session_date: Utc.with_ymd_and_hms(2025, 3, 4, 14, 0, 0).unwrap(),
        duration_seconds: 3000,
        status: SessionStatus::Processed,
        transcript_text: None,
        transcript_segments: vec![],
        therapist_summary: None,
        patient_summary: patient_summary.map(str::to_owned),
        extracted_notes: notes,
        created_at: Utc.with_ymd_and_hms(2025, 3, 4, 15, 0, 0).unwrap(),
    }
}

/// A session whose notes fill some fields and leave others empty.
fn partial() -> TherapySession {
    let strategy = |name: &str, status| Strategy {
        name: name.into(),
        category: "cognitive".into(),
        status,
        context: String::new(),
    };
    session(
        Some(ExtractedNotes {
            topic_summary: "Work stress and poor sleep since the reorganisation at the office."
                .into(),
            key_topics: vec!["work stress".into(), "sleep".into(), "anxiety".into()],
            session_mood: "anxious".into(),
            mood_trajectory: "improving".into(),
            emotional_themes: vec!["overwhelm".into()],
            strategies: vec![
                strategy("Thought record", StrategyStatus::Reviewed),
                strategy("Paced breathing", StrategyStatus::Practiced),
                strategy("Sleep window", StrategyStatus::Assigned),
            ],
            action_items: vec![ActionItem {
                task: "Keep a sleep diary".into(),
                category: "tracking".into(),
                details: String::new(),
            }],
            risk_flags: vec![RiskFlag {
                kind: "self_harm".into(),
                severity: RiskSeverity::Low,
                evidence: String::new(),
            }],
            therapist_notes: "Engaged; insight improving.".into(),
            follow_up_topics: vec![
                "boundaries".into(),
                "sleep".into(),
                "workload".into(),
                "family".into(),
            ],
            ..ExtractedNotes::default()
        }),
        None,
    )
}

/// Checks a layout: (section, confidence) pairs in order, then the missing fields.
fn check(layout: NoteLayout, session: &TherapySession, sections: &[(&str, f64)], missing: &[&str]) {
    let note = fill_note(layout, session);
    let got: Vec<(&str, f64)> = note
        .sections
        .iter()
        .map(|s| (s.key, s.confidence))
        .collect();
    assert_eq!(got, sections, "{layout} sections");
    assert_eq!(note.missing_fields, missing, "{layout} missing");
}

#[test]
fn confidence_follows_the_seed_rule() {
    let cases = [
        (FieldValue::Text(String::new()), 0.0),
        (FieldValue::Text("   ".into()), 0.0),
        (FieldValue::Text("a".repeat(19)), 0.5),
        (FieldValue::Text("a".repeat(20)), 0.8),
        (FieldValue::Text("a".repeat(99)), 0.8),
        (FieldValue::Text("a".repeat(100)), 1.0),
        (FieldValue::List(vec![]), 0.3),
        (FieldValue::List(vec!["x".into(); 2]), 0.7),
        (FieldValue::List(vec!["x".into(); 3]), 1.0),
    ];
    for (value, expected) in cases {
        assert_eq!(value.confidence(), expected, "{value:?}");
    }
}

#[test]
fn partial_notes_per_layout() {
    let s = partial();
    check(
        NoteLayout::Soap,
        &s,
        // subjective: 0.8 (mood: summary, 75 chars) 0.5 1.0 0.3 0.3; objective: 0.8 0.5 0.3;
        // assessment: 0.8 0.7 0.7; plan: 1.0 0.7 1.0
        &[
            ("subjective", 0.58),
            ("objective", 0.533),
            ("assessment", 0.733),
            ("plan", 0.9),
        ],
        &[
            "subjective.patient_concerns",
            "subjective.significant_statements",
            "objective.triggers_identified",
        ],
    );
    check(
        NoteLayout::Dap,
        &s,
        &[("data", 0.725), ("assessment", 0.833), ("plan", 0.85)],
        &["data.triggers"],
    );
    check(
        NoteLayout::Birp,
        &s,
        &[
            ("behavior", 0.533),
            ("intervention", 0.85),
            // The clinician's notes (27 characters, 0.8) and the trajectory (0.5).
            ("response", 0.65),
            ("plan", 0.7),
        ],
        &["behavior.triggers_exhibited"],
    );
    check(
        NoteLayout::ProgressNote,
        &s,
        &[
            ("session_summary", 0.9),
            ("clinical_presentation", 0.6),
            ("progress", 0.6),
            ("risk_assessment", 0.7),
            ("plan", 0.85),
        ],
        &[],
    );
}

#[test]
fn a_session_without_notes_has_every_field_missing() {
    for layout in NoteLayout::ALL {
        let note = fill_note(*layout, &session(None, None));
        let fields: usize = note.sections.iter().map(|s| s.fields.len()).sum();
        assert_eq!(note.missing_fields.len(), fields, "{layout}");
        assert!(note.confidence < 0.31, "{layout}: {}", note.confidence);
    }
}

#[test]
fn strategies_are_sorted_into_the_fields_their_status_says() {
    let note = fill_note(NoteLayout::Birp, &partial());
    let field = |section: &str, key: &str| {
        note.sections
            .iter()
            .find(|s| s.key == section)
            .unwrap()
            .fields
            .iter()
            .find(|f| f.key == key)
            .unwrap()
            .value
            .clone()
    };
    assert_eq!(
        field("intervention", "interventions_applied"),
        FieldValue::List(vec!["Paced breathing (practiced)".into()])
    );
    assert_eq!(
        field("plan", "homework"),
        FieldValue::List(vec!["Sleep window (assigned)".into()])
    );
    assert_eq!(
        field("plan", "next_steps"),
        FieldValue::List(vec!["Keep a sleep diary".into()])
    );
}
