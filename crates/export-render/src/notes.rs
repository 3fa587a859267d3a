//! Clinical note auto-fill: a session's extracted notes laid out as a SOAP, DAP, BIRP or progress
//! note, each field and section with a confidence score, and the fields a clinician must still
//! complete.
//!
//! Confidence of a field: text empty 0.0, under 20 characters 0.5, under 100 0.8, longer 1.0; a
//! list empty 0.3, under 3 items 0.7, 3 or more 1.0. A section's confidence is the mean of its
//! fields'. A field is missing when it is empty.

use export_domain::{
    ExtractedNotes, NoteLayout, RiskFlag, Strategy, StrategyStatus, TherapySession,
};
use serde::Serialize;

/// What a field holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FieldValue {
    Text(String),
    List(Vec<String>),
}

impl FieldValue {
    /// The confidence rule of the seed platform.
    pub fn confidence(&self) -> f64 {
        match self {
            FieldValue::Text(text) => match text.trim().chars().count() {
                0 => 0.0,
                1..20 => 0.5,
                20..100 => 0.8,
                _ => 1.0,
            },
            FieldValue::List(items) => match items.len() {
                0 => 0.3,
                1..3 => 0.7,
                _ => 1.0,
            },
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            FieldValue::Text(text) => text.trim().is_empty(),
            FieldValue::List(items) => items.is_empty(),
        }
    }
}

/// One field of a note.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoteField {
    pub key: &'static str,
    pub label: &'static str,
    pub value: FieldValue,
    pub confidence: f64,
    /// What an empty value says, when empty is itself a finding ("No risk flags recorded."),
    /// instead of a field left for the clinician to complete.
    pub when_empty: Option<&'static str>,
}

/// One section of a note (Subjective, Data, Behavior…).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoteSection {
    pub key: &'static str,
    pub title: &'static str,
    pub fields: Vec<NoteField>,
    pub confidence: f64,
}

/// A note filled from extracted notes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilledNote {
    pub layout: NoteLayout,
    pub title: &'static str,
    pub sections: Vec<NoteSection>,
    /// The mean of the sections' confidences.
    pub confidence: f64,
    /// `section.field` of every empty field, for the clinician to complete.
    pub missing_fields: Vec<String>,
    /// The session's high-severity risk flags as callouts: "HIGH RISK: suicidal ideation.
    /// Evidence (date)".
    pub alerts: Vec<String>,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if count == 0 {
        0.0
    } else {
        ((sum / count as f64) * 1000.0).round() / 1000.0
    }
}

fn text(value: impl Into<String>) -> FieldValue {
    FieldValue::Text(value.into())
}

fn list<'a>(items: impl IntoIterator<Item = &'a String>) -> FieldValue {
    FieldValue::List(
        items
            .into_iter()
            .filter(|s| !s.trim().is_empty())
            .cloned()
            .collect(),
    )
}

fn strategies(notes: &ExtractedNotes, keep: impl Fn(&Strategy) -> bool) -> FieldValue {
    FieldValue::List(
        notes
            .strategies
            .iter()
            .filter(|s| keep(s))
            .map(|s| match s.context.trim() {
                "" => format!("{} ({})", s.name, s.status),
                context => format!("{} ({}): {context}", s.name, s.status),
            })
            .collect(),
    )
}

fn risks(flags: &[RiskFlag], date: chrono::NaiveDate) -> FieldValue {
    FieldValue::List(
        flags
            .iter()
            .map(|flag| crate::RiskLine::new(date, flag).text)
            .collect(),
    )
}

/// What an empty risk field says: the notes were read and held no flag.
const NO_RISK_FLAGS: &str = "No risk flags recorded.";

fn homework(notes: &ExtractedNotes) -> FieldValue {
    FieldValue::List(
        notes
            .action_items
            .iter()
            .map(|a| match a.details.trim() {
                "" => a.task.clone(),
                details => format!("{}: {details}", a.task),
            })
            .collect(),
    )
}

/// What the session was about, and how the patient presented: "Session focused on sleep.
/// Presenting as anxious." (the topic summary and the mood, each a sentence, no stacked labels).
fn chief_complaint(notes: &ExtractedNotes) -> String {
    let mut parts = Vec::new();
    if !notes.topic_summary.trim().is_empty() {
        parts.push(crate::sentence(&notes.topic_summary));
    }
    if !notes.session_mood.trim().is_empty() {
        parts.push(format!("Presenting as {}.", notes.session_mood.trim()));
    }
    parts.join(" ")
}

fn mood_line(notes: &ExtractedNotes) -> String {
    match (notes.session_mood.trim(), notes.mood_trajectory.trim()) {
        ("", "") => String::new(),
        (mood, "") => mood.to_owned(),
        ("", trajectory) => format!("trajectory {trajectory}"),
        (mood, trajectory) => format!("{mood}, {trajectory}"),
    }
}

fn presentation(notes: &ExtractedNotes) -> String {
    let themes = notes.emotional_themes.join(", ");
    match (notes.session_mood.trim(), themes.as_str()) {
        ("", "") => String::new(),
        (mood, "") => format!("Presented as {mood}."),
        ("", themes) => format!("Emotional themes: {themes}."),
        (mood, themes) => format!("Presented as {mood}; emotional themes: {themes}."),
    }
}

type FieldSpec = (&'static str, &'static str, FieldValue);

fn section(key: &'static str, title: &'static str, fields: Vec<FieldSpec>) -> NoteSection {
    let fields: Vec<NoteField> = fields
        .into_iter()
        .map(|(key, label, value)| NoteField {
            key,
            label,
            confidence: value.confidence(),
            when_empty: matches!(key, "risk_assessment" | "risk_flags").then_some(NO_RISK_FLAGS),
            value,
        })
        .collect();
    NoteSection {
        key,
        title,
        confidence: mean(fields.iter().map(|f| f.confidence)),
        fields,
    }
}

/// Fills `layout` from `session`'s extracted notes (empty notes when it has none).
pub fn fill_note(layout: NoteLayout, session: &TherapySession) -> FilledNote {
    let empty = ExtractedNotes::default();
    let n = session.extracted_notes.as_ref().unwrap_or(&empty);
    let date = session.session_date.date_naive();
    let (title, sections) = match layout {
        NoteLayout::Soap => (
            "SOAP Note",
            vec![
                section(
                    "subjective",
                    "Subjective",
                    vec![
                        (
                            "chief_complaint",
                            "Chief complaint",
                            text(chief_complaint(n)),
                        ),
                        ("mood", "Reported mood", text(n.session_mood.clone())),
                        (
                            "presenting_issues",
                            "Presenting issues",
                            list(&n.key_topics),
                        ),
                        (
                            "patient_concerns",
                            "Patient concerns",
                            list(&n.unresolved_concerns),
                        ),
                        (
                            "significant_statements",
                            "Significant statements",
                            list(&n.significant_quotes),
                        ),
                    ],
                ),
                section(
                    "objective",
                    "Objective",
                    vec![
                        ("presentation", "Presentation", text(presentation(n))),
                        ("mood_affect", "Mood and affect", text(mood_line(n))),
                        (
                            "triggers_identified",
                            "Triggers identified",
                            list(&n.triggers),
                        ),
                    ],
                ),
                section(
                    "assessment",
                    "Assessment",
                    vec![
                        (
                            "clinical_impression",
                            "Clinical impression",
                            text(n.therapist_notes.clone()),
                        ),
                        (
                            "strategies_reviewed",
                            "Strategies reviewed",
                            strategies(n, |s| s.status == StrategyStatus::Reviewed),
                        ),
                        (
                            "risk_assessment",
                            "Risk assessment",
                            risks(&n.risk_flags, date),
                        ),
                    ],
                ),
                section(
                    "plan",
                    "Plan",
                    vec![
                        ("interventions", "Interventions", strategies(n, |_| true)),
                        ("homework", "Homework", homework(n)),
                        ("follow_up", "Follow-up topics", list(&n.follow_up_topics)),
                    ],
                ),
            ],
        ),
        NoteLayout::Dap => (
            "DAP Note",
            vec![
                section(
                    "data",
                    "Data",
                    vec![
                        (
                            "observations",
                            "Observations",
                            text(n.topic_summary.clone()),
                        ),
                        ("topics_discussed", "Topics discussed", list(&n.key_topics)),
                        (
                            "emotional_presentation",
                            "Emotional presentation",
                            text(presentation(n)),
                        ),
                        ("triggers", "Triggers", list(&n.triggers)),
                    ],
                ),
                section(
                    "assessment",
                    "Assessment",
                    vec![
                        (
                            "clinical_impression",
                            "Clinical impression",
                            text(n.therapist_notes.clone()),
                        ),
                        (
                            "interventions_used",
                            "Interventions used",
                            strategies(n, |_| true),
                        ),
                        (
                            "risk_assessment",
                            "Risk assessment",
                            risks(&n.risk_flags, date),
                        ),
                    ],
                ),
                section(
                    "plan",
                    "Plan",
                    vec![
                        ("homework", "Homework", homework(n)),
                        (
                            "next_session_focus",
                            "Next session focus",
                            list(n.follow_up_topics.iter().take(3)),
                        ),
                    ],
                ),
            ],
        ),
        NoteLayout::Birp => (
            "BIRP Note",
            vec![
                section(
                    "behavior",
                    "Behavior",
                    vec![
                        ("presentation", "Presentation", text(presentation(n))),
                        (
                            "emotional_state",
                            "Emotional state",
                            text(n.session_mood.clone()),
                        ),
                        (
                            "triggers_exhibited",
                            "Triggers exhibited",
                            list(&n.triggers),
                        ),
                    ],
                ),
                section(
                    "intervention",
                    "Intervention",
                    vec![
                        (
                            "techniques",
                            "Techniques",
                            list(
                                &n.strategies
                                    .iter()
                                    .map(|s| s.name.clone())
                                    .collect::<Vec<_>>(),
                            ),
                        ),
                        (
                            "interventions_applied",
                            "Interventions applied",
                            strategies(n, |s| {
                                matches!(
                                    s.status,
                                    StrategyStatus::Practiced | StrategyStatus::Introduced
                                )
                            }),
                        ),
                    ],
                ),
                section(
                    "response",
                    "Response",
                    vec![
                        // The clinician's account of how the patient responded, not the summary
                        // written for the patient.
                        (
                            "patient_response",
                            "Patient response",
                            text(n.therapist_notes.clone()),
                        ),
                        (
                            "mood_trajectory",
                            "Mood trajectory",
                            text(n.mood_trajectory.clone()),
                        ),
                    ],
                ),
                section(
                    "plan",
                    "Plan",
                    vec![
                        ("next_steps", "Next steps", homework(n)),
                        (
                            "homework",
                            "Homework",
                            strategies(n, |s| s.status == StrategyStatus::Assigned),
                        ),
                    ],
                ),
            ],
        ),
        NoteLayout::ProgressNote => (
            "Progress Note",
            vec![
                section(
                    "session_summary",
                    "Session summary",
                    vec![
                        ("overview", "Overview", text(n.topic_summary.clone())),
                        ("topics_covered", "Topics covered", list(&n.key_topics)),
                    ],
                ),
                section(
                    "clinical_presentation",
                    "Clinical presentation",
                    vec![
                        ("mood_affect", "Mood and affect", text(mood_line(n))),
                        (
                            "emotional_themes",
                            "Emotional themes",
                            list(&n.emotional_themes),
                        ),
                    ],
                ),
                section(
                    "progress",
                    "Progress",
                    vec![
                        ("changes", "Changes", text(n.mood_trajectory.clone())),
                        (
                            "strategy_effectiveness",
                            "Strategy effectiveness",
                            strategies(n, |s| s.status == StrategyStatus::Reviewed),
                        ),
                    ],
                ),
                section(
                    "risk_assessment",
                    "Risk assessment",
                    vec![("risk_flags", "Risk flags", risks(&n.risk_flags, date))],
                ),
                section(
                    "plan",
                    "Plan",
                    vec![
                        ("next_steps", "Next steps", homework(n)),
                        ("follow_up", "Follow-up topics", list(&n.follow_up_topics)),
                    ],
                ),
            ],
        ),
    };
    let mut sections = sections;
    if session.extracted_notes.is_none() {
        // Nothing was read from the session: an empty risk field is not a finding but a gap.
        for field in sections.iter_mut().flat_map(|s| s.fields.iter_mut()) {
            field.when_empty = None;
        }
    }
    let missing_fields = sections
        .iter()
        .flat_map(|s| {
            s.fields
                .iter()
                .filter(|f| f.value.is_empty() && f.when_empty.is_none())
                .map(move |f| format!("{}.{}", s.key, f.key))
        })
        .collect();
    let alerts = n
        .risk_flags
        .iter()
        .filter(|flag| flag.severity == export_domain::RiskSeverity::High)
        .map(|flag| crate::RiskLine::new(date, flag).text)
        .collect();
    FilledNote {
        layout,
        title,
        confidence: mean(sections.iter().map(|s| s.confidence)),
        sections,
        missing_fields,
        alerts,
    }
}
