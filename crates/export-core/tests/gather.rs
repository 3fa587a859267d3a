//! Gathering from the demo fixtures: the figures of each context checked against the records
//! computed independently here, and the refusals (missing, unprocessed, mixed sessions).

use std::collections::HashMap;

use chrono::{NaiveDate, TimeZone, Utc};
use export_core::gather::{self, GatherError};
use export_domain::{
    FullRecordInput, Practice, SessionNotesInput, SessionStatus, TreatmentSummaryInput,
};

fn practice() -> Practice {
    export_store::testing::fixture_practice()
}

fn patient_named(practice: &Practice, last_name: &str) -> String {
    practice
        .users
        .iter()
        .find(|u| u.last_name == last_name)
        .unwrap()
        .id
        .to_string()
}

#[test]
fn progress_report_figures_follow_the_records() {
    let practice = practice();
    let patient = patient_named(&practice, "Wójcik");
    let request = export_core::testing::progress_report_request(
        &patient,
        ("2025-03-01", "2025-08-31"),
        "pdf",
    );
    let context = gather::progress_report(
        &practice,
        &request,
        Utc.with_ymd_and_hms(2025, 9, 1, 9, 0, 0).unwrap(),
    )
    .unwrap();

    // Recompute the figures straight from the fixture rows.
    let (from, to) = (
        NaiveDate::from_ymd_opt(2025, 3, 1).unwrap(),
        NaiveDate::from_ymd_opt(2025, 8, 31).unwrap(),
    );
    let sessions: Vec<_> = practice
        .therapy_sessions
        .iter()
        .filter(|s| s.patient_id.to_string() == patient && s.status == SessionStatus::Processed)
        .filter(|s| (from..=to).contains(&s.session_date.date_naive()))
        .collect();
    assert!(sessions.len() > 5);
    assert_eq!(context.session_count, sessions.len());
    let mean = sessions
        .iter()
        .map(|s| s.duration_seconds as f64)
        .sum::<f64>()
        / sessions.len() as f64
        / 60.0;
    assert_eq!(context.avg_duration_minutes, (mean * 10.0).round() / 10.0);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for topic in sessions
        .iter()
        .flat_map(|s| &s.extracted_notes.as_ref().unwrap().key_topics)
    {
        *counts.entry(topic).or_default() += 1;
    }
    assert!(context.key_topics.len() <= 10 && !context.key_topics.is_empty());
    for pair in context.key_topics.windows(2) {
        assert!(
            counts[pair[0].as_str()] >= counts[pair[1].as_str()],
            "{pair:?} out of order"
        );
    }
    assert_eq!(context.header.patient_name, "Łukasz Wójcik");
    assert_eq!(
        context.header.period.as_deref(),
        Some("March 1, 2025 to August 31, 2025")
    );
    assert!(!context.header.prepared_by.is_empty());
    assert_eq!(
        context.assessments.len(),
        12,
        "PHQ-9 and GAD-7 monthly over six months"
    );
    assert!(context.assessments.iter().all(|a| a.severity.is_some()));
    assert_eq!(context.sections.len(), 7);
}

#[test]
fn an_insurance_summary_leaves_out_free_text_observations() {
    let practice = practice();
    let input = |purpose: &str| TreatmentSummaryInput {
        patient_id: patient_named(&practice, "Dubois"),
        format: "pdf".into(),
        purpose: purpose.into(),
        ..Default::default()
    };
    let at = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
    let records =
        gather::treatment_summary(&practice, &input("records").validate().unwrap(), at).unwrap();
    let insurance =
        gather::treatment_summary(&practice, &input("insurance").validate().unwrap(), at).unwrap();
    assert!(records.sections["clinical_observations"]);
    assert!(!insurance.sections["clinical_observations"]);
    assert_eq!(records.session_count, 25);
    assert!(!records.diagnoses.is_empty() && records.diagnoses[0].is_primary);
    assert!(!records.interventions.is_empty());
    assert!(!records.prognosis.is_empty());
}

#[test]
fn session_notes_refuse_missing_unprocessed_and_mixed_sessions() {
    let practice = practice();
    let at = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
    let request = |ids: Vec<String>| {
        SessionNotesInput {
            session_ids: ids,
            format: "pdf".into(),
            note_layout: Some("dap".into()),
            ..Default::default()
        }
        .validate()
        .unwrap()
    };
    let failed = practice
        .therapy_sessions
        .iter()
        .find(|s| s.status == SessionStatus::Failed)
        .unwrap();
    let processed: Vec<_> = practice
        .therapy_sessions
        .iter()
        .filter(|s| s.status == SessionStatus::Processed)
        .collect();
    let other = processed
        .iter()
        .find(|s| s.patient_id != processed[0].patient_id)
        .unwrap();

    let missing = uuid::Uuid::from_u128(42);
    assert_eq!(
        gather::session_notes(&practice, &request(vec![missing.to_string()]), at).unwrap_err(),
        GatherError::SessionNotFound(missing)
    );
    assert_eq!(
        gather::session_notes(&practice, &request(vec![failed.id.to_string()]), at)
            .unwrap_err()
            .to_string(),
        format!(
            "session {} is failed, and only processed sessions are exported",
            failed.id
        )
    );
    assert_eq!(
        gather::session_notes(
            &practice,
            &request(vec![processed[0].id.to_string(), other.id.to_string()]),
            at
        )
        .unwrap_err(),
        GatherError::MixedPatients(other.id)
    );
    let ok =
        gather::session_notes(&practice, &request(vec![processed[0].id.to_string()]), at).unwrap();
    assert_eq!(ok.sessions.len(), 1);
    assert_eq!(ok.sessions[0].note.as_ref().unwrap().title, "DAP Note");
    assert_eq!(
        ok.sessions[0].transcript, None,
        "the transcript stays out unless asked for"
    );
}

#[test]
fn full_record_covers_everything_in_the_range() {
    let practice = practice();
    let patient = patient_named(&practice, "כהן");
    let at = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
    let all = gather::full_record(
        &practice,
        &FullRecordInput {
            patient_id: patient.clone(),
            format: "json".into(),
            ..Default::default()
        }
        .validate()
        .unwrap(),
        at,
    )
    .unwrap();
    assert_eq!(all.sessions.len(), 25);
    assert_eq!(all.assessments.len(), 24);
    assert_eq!(all.treatment_plans.len(), 1);
    assert_eq!(all.demographics["Name"], "נועה כהן");
    let first_quarter = FullRecordInput {
        patient_id: patient,
        format: "json".into(),
        date_range: Some(export_domain::DateRangeInput {
            start: "2025-01-01".into(),
            end: "2025-03-31".into(),
        }),
        ..Default::default()
    };
    let part = gather::full_record(&practice, &first_quarter.validate().unwrap(), at).unwrap();
    assert!(part.sessions.len() < all.sessions.len() && !part.sessions.is_empty());
    assert_eq!(part.assessments.len(), 6);
    assert!(part.timeline.len() >= part.sessions.len());
}

#[test]
fn an_unknown_patient_is_named_by_id() {
    let practice = practice();
    let therapist = practice
        .users
        .iter()
        .find(|u| u.role == export_domain::Role::Therapist)
        .unwrap()
        .id;
    let request = FullRecordInput {
        patient_id: therapist.to_string(),
        format: "json".into(),
        ..Default::default()
    }
    .validate()
    .unwrap();
    let at = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
    assert_eq!(
        gather::full_record(&practice, &request, at).unwrap_err(),
        GatherError::NotAPatient(therapist)
    );
}
