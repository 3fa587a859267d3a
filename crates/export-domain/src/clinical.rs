//! The clinical records exports are made from: users, therapist–patient relationships, therapy
//! sessions with their transcripts and extracted notes, goals, assessments, diagnoses and
//! treatment plans.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::vocabulary::{
    GoalStatus, RelationshipType, RiskSeverity, Role, SessionStatus, Speaker, StrategyStatus,
};

/// A person with an account: a therapist, a patient or an administrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
    pub date_of_birth: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
    /// What a clinician's name is printed with: licence and degree ("LCSW", "PsyD").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
}

impl User {
    /// First and last name, as printed in a document header.
    pub fn full_name(&self) -> String {
        full_name(&self.first_name, &self.last_name)
    }

    /// The name a clinician signs with: with their credentials when the record has them
    /// ("Margaret Holloway, LCSW").
    pub fn signed_name(&self) -> String {
        match self.credentials.as_deref().map(str::trim) {
            Some(credentials) if !credentials.is_empty() => {
                format!("{}, {credentials}", self.full_name())
            }
            _ => self.full_name(),
        }
    }
}

/// A therapist's care of a patient. A therapist may export a patient only while an active
/// relationship exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TherapistPatient {
    pub id: Uuid,
    pub therapist_id: Uuid,
    pub patient_id: Uuid,
    pub relationship_type: RelationshipType,
    pub is_active: bool,
    pub started_on: NaiveDate,
}

/// First and last name as `User::full_name` prints them: either alone when the other is empty.
pub fn full_name(first_name: &str, last_name: &str) -> String {
    match (first_name.is_empty(), last_name.is_empty()) {
        (false, false) => format!("{first_name} {last_name}"),
        (false, true) => first_name.to_owned(),
        _ => last_name.to_owned(),
    }
}

/// One recorded therapy session and what was extracted from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TherapySession {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub therapist_id: Uuid,
    pub session_date: DateTime<Utc>,
    pub duration_seconds: i32,
    pub status: SessionStatus,
    pub transcript_text: Option<String>,
    #[serde(default)]
    pub transcript_segments: Vec<TranscriptSegment>,
    pub therapist_summary: Option<String>,
    pub patient_summary: Option<String>,
    pub extracted_notes: Option<ExtractedNotes>,
    pub created_at: DateTime<Utc>,
}

/// A stretch of the transcript spoken by one person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptSegment {
    pub speaker: Speaker,
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub text: String,
}

/// The structured notes extracted from a session. Every field may be empty: the clinical note
/// auto-fill reports what is missing rather than refusing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExtractedNotes {
    pub topic_summary: String,
    pub key_topics: Vec<String>,
    pub session_mood: String,
    pub mood_trajectory: String,
    pub emotional_themes: Vec<String>,
    pub triggers: Vec<String>,
    pub strategies: Vec<Strategy>,
    pub action_items: Vec<ActionItem>,
    pub risk_flags: Vec<RiskFlag>,
    pub therapist_notes: String,
    pub treatment_goals: Vec<String>,
    pub follow_up_topics: Vec<String>,
    pub significant_quotes: Vec<String>,
    pub unresolved_concerns: Vec<String>,
}

/// A coping strategy or technique that came up in a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Strategy {
    pub name: String,
    #[serde(default)]
    pub category: String,
    pub status: StrategyStatus,
    #[serde(default)]
    pub context: String,
}

/// Something the patient agreed to do before the next session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionItem {
    pub task: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub details: String,
}

/// A risk noticed in a session, with the evidence for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskFlag {
    #[serde(rename = "type")]
    pub kind: String,
    pub severity: RiskSeverity,
    #[serde(default)]
    pub evidence: String,
}

/// A treatment goal with where the patient started and where they are now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub therapist_id: Uuid,
    pub description: String,
    pub baseline: String,
    pub current: String,
    pub progress_percentage: i32,
    pub status: GoalStatus,
    pub target_date: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
}

/// One administration of a standard instrument such as PHQ-9 or GAD-7.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub instrument: String,
    pub score: i32,
    pub administered_on: NaiveDate,
    pub notes: Option<String>,
}

/// The published severity bands of an instrument the engine knows, as (highest score, band) in
/// rising order: PHQ-9 from 0 to 27, GAD-7 from 0 to 21. Empty for any other instrument.
pub fn severity_bands(instrument: &str) -> &'static [(i32, &'static str)] {
    match instrument {
        "PHQ-9" => &[
            (4, "minimal"),
            (9, "mild"),
            (14, "moderate"),
            (19, "moderately severe"),
            (27, "severe"),
        ],
        "GAD-7" => &[
            (4, "minimal"),
            (9, "mild"),
            (14, "moderate"),
            (21, "severe"),
        ],
        _ => &[],
    }
}

impl Assessment {
    /// The published severity band of the score, for the instruments the engine knows.
    pub fn severity(&self) -> Option<&'static str> {
        severity_of(&self.instrument, self.score)
    }
}

/// The published severity band of `score` on `instrument`, for the instruments the engine
/// knows; none for a score outside the instrument's range.
pub fn severity_of(instrument: &str, score: i32) -> Option<&'static str> {
    if score < 0 {
        return None;
    }
    severity_bands(instrument)
        .iter()
        .find(|(top, _)| score <= *top)
        .map(|(_, band)| *band)
}

/// A diagnosis with its ICD-10 code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub icd10_code: String,
    pub description: String,
    pub is_primary: bool,
    pub diagnosed_on: NaiveDate,
}

/// How a patient is being treated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreatmentPlan {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub therapist_id: Uuid,
    pub modality: String,
    pub frequency: String,
    pub prognosis: String,
    pub summary: String,
    pub start_date: NaiveDate,
    pub review_date: Option<NaiveDate>,
    /// Why the treatment is medically necessary, in the clinician's words: what an insurer's
    /// summary must state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medical_necessity: Option<String>,
}

/// A whole practice's clinical records, as the demo fixtures hold them and as an import brings
/// them in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Practice {
    pub users: Vec<User>,
    pub therapist_patients: Vec<TherapistPatient>,
    pub therapy_sessions: Vec<TherapySession>,
    pub goals: Vec<Goal>,
    pub assessments: Vec<Assessment>,
    pub diagnoses: Vec<Diagnosis>,
    pub treatment_plans: Vec<TreatmentPlan>,
}

impl Practice {
    /// Everything about one patient: the patient, their therapists and relationships, and their
    /// sessions, goals, assessments, diagnoses and plans.
    pub fn of_patient(&self, patient_id: Uuid) -> Practice {
        let links: Vec<TherapistPatient> = self
            .therapist_patients
            .iter()
            .filter(|l| l.patient_id == patient_id)
            .cloned()
            .collect();
        Practice {
            users: self
                .users
                .iter()
                .filter(|u| u.id == patient_id || links.iter().any(|l| l.therapist_id == u.id))
                .cloned()
                .collect(),
            therapist_patients: links,
            therapy_sessions: self
                .therapy_sessions
                .iter()
                .filter(|s| s.patient_id == patient_id)
                .cloned()
                .collect(),
            goals: self
                .goals
                .iter()
                .filter(|g| g.patient_id == patient_id)
                .cloned()
                .collect(),
            assessments: self
                .assessments
                .iter()
                .filter(|a| a.patient_id == patient_id)
                .cloned()
                .collect(),
            diagnoses: self
                .diagnoses
                .iter()
                .filter(|d| d.patient_id == patient_id)
                .cloned()
                .collect(),
            treatment_plans: self
                .treatment_plans
                .iter()
                .filter(|t| t.patient_id == patient_id)
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_bands_follow_the_published_cut_offs() {
        let at = |instrument: &str, score| Assessment {
            id: Uuid::nil(),
            patient_id: Uuid::nil(),
            instrument: instrument.into(),
            score,
            administered_on: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
            notes: None,
        };
        let cases = [
            ("PHQ-9", 0, Some("minimal")),
            ("PHQ-9", 10, Some("moderate")),
            ("PHQ-9", 20, Some("severe")),
            ("PHQ-9", 28, None),
            ("GAD-7", 9, Some("mild")),
            ("GAD-7", 15, Some("severe")),
            ("BDI-II", 15, None),
        ];
        for (instrument, score, expected) in cases {
            assert_eq!(
                at(instrument, score).severity(),
                expected,
                "{instrument} {score}"
            );
        }
    }

    #[test]
    fn partial_extracted_notes_parse_with_empty_fields() {
        let notes: ExtractedNotes =
            serde_json::from_str(r#"{"key_topics": ["sleep"], "session_mood": "low"}"#).unwrap();
        assert_eq!(notes.key_topics, ["sleep"]);
        assert!(notes.strategies.is_empty());
        assert_eq!(notes.therapist_notes, "");
    }
}

/// Which sessions a listing holds and where its page starts: the sessions of `patients`, with
/// `status` if given, on UTC dates `from` through `to` (both ends optional and included), in
/// (session date, id) order, the first `limit` after `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionsPage<'a> {
    pub patients: &'a [Uuid],
    pub status: Option<SessionStatus>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// The session date and id of the last session of the previous page.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: usize,
}

/// A therapy session as a listing shows it: its patient's name beside it, its key topics, no
/// transcript and no other notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionListing {
    pub id: Uuid,
    pub patient_id: Uuid,
    /// Empty when the patient is not among the users.
    pub patient_name: String,
    pub therapist_id: Uuid,
    pub session_date: DateTime<Utc>,
    pub duration_seconds: i32,
    pub status: SessionStatus,
    /// The extracted notes' key topics; `None` for a session without extracted notes.
    pub key_topics: Option<Vec<String>>,
    pub therapist_summary: Option<String>,
}

impl SessionListing {
    /// The listing of `session` of the patient named `patient_name`.
    pub fn of(session: &TherapySession, patient_name: &str) -> SessionListing {
        SessionListing {
            id: session.id,
            patient_id: session.patient_id,
            patient_name: patient_name.to_owned(),
            therapist_id: session.therapist_id,
            session_date: session.session_date,
            duration_seconds: session.duration_seconds,
            status: session.status,
            key_topics: session
                .extracted_notes
                .as_ref()
                .map(|notes| notes.key_topics.clone()),
            therapist_summary: session.therapist_summary.clone(),
        }
    }
}

/// Which goals a listing holds and where its page starts: the goals of `patients`, with `status`
/// if given, in (created at, id) order, the first `limit` after `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoalsPage<'a> {
    pub patients: &'a [Uuid],
    pub status: Option<GoalStatus>,
    /// The creation time and id of the last goal of the previous page.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: usize,
}

/// A goal with its patient's name beside it (empty when the patient is not among the users).
#[derive(Debug, Clone, PartialEq)]
pub struct GoalListing {
    pub goal: Goal,
    pub patient_name: String,
}
