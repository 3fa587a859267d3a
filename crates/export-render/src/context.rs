//! What the document templates see: one context type per export type, with every value already
//! formatted for print ("January 15, 2025"). The same contexts are what a JSON export of a
//! document holds, so a JSON export and a PDF of the same request say the same things.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::FilledNote;

/// "January 15, 2025".
pub fn print_date(date: NaiveDate) -> String {
    date.format("%B %-d, %Y").to_string()
}

/// "January 15, 2025 at 02:30 PM" (UTC).
pub fn print_date_time(at: DateTime<Utc>) -> String {
    at.format("%B %-d, %Y at %I:%M %p").to_string()
}

/// The header block every document starts with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentHeader {
    pub title: String,
    pub patient_name: String,
    pub patient_date_of_birth: Option<String>,
    /// "January 1, 2025 to March 31, 2025", when the document covers a period.
    pub period: Option<String>,
    pub prepared_by: String,
    pub generated_on: String,
}

/// A risk flag as documents print it, in words as well as by severity: a high flag is
/// "HIGH RISK: suicidal ideation", never only a colour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskLine {
    /// The session's date, "August 12, 2025".
    pub date: String,
    /// "High", "Medium" or "Low".
    pub severity: String,
    pub high: bool,
    /// What the risk is: "suicidal ideation".
    pub risk: String,
    pub evidence: String,
    /// The whole flag as a sentence: "HIGH RISK: suicidal ideation. Disclosed thoughts …
    /// (August 12, 2025)"; "Medium risk: self-harm. … (date)".
    pub text: String,
}

impl RiskLine {
    /// `flag`, raised in the session of `date`.
    pub fn new(date: NaiveDate, flag: &export_domain::RiskFlag) -> RiskLine {
        use export_domain::RiskSeverity;
        let risk = flag.kind.trim().replace('_', " ");
        let high = flag.severity == RiskSeverity::High;
        let severity = match flag.severity {
            RiskSeverity::High => "High",
            RiskSeverity::Medium => "Medium",
            RiskSeverity::Low => "Low",
        };
        let label = if high {
            format!("HIGH RISK: {risk}")
        } else {
            format!("{severity} risk: {risk}")
        };
        let date = print_date(date);
        let evidence = flag.evidence.trim().to_owned();
        let text = match evidence.as_str() {
            "" => format!("{label} ({date})"),
            evidence => format!("{label}. {} ({date})", sentence(evidence)),
        };
        RiskLine {
            date,
            severity: severity.to_owned(),
            high,
            risk,
            evidence,
            text,
        }
    }
}

/// `text` ending with a full stop unless it ends with punctuation already.
pub fn sentence(text: &str) -> String {
    let text = text.trim();
    if text.ends_with(['.', '!', '?', '…']) {
        text.to_owned()
    } else {
        format!("{text}.")
    }
}

/// A goal row of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GoalLine {
    pub description: String,
    pub baseline: String,
    pub current: String,
    pub progress_percentage: i32,
    pub status: String,
}

/// One administration of an instrument.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssessmentLine {
    pub instrument: String,
    pub date: String,
    pub score: i32,
    pub severity: Option<String>,
}

/// Assessments as a table of dates by instruments: one row a date, one column an instrument
/// ("PHQ-9", "GAD-7"), each cell the score with its severity ("12 (moderate)") or empty.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct AssessmentTable {
    pub instruments: Vec<String>,
    pub rows: Vec<AssessmentRow>,
}

/// One date of an [`AssessmentTable`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssessmentRow {
    pub date: String,
    /// One cell per instrument, in the table's order.
    pub scores: Vec<String>,
}

impl AssessmentTable {
    /// `lines` (in date order) pivoted: instruments in the order first given.
    pub fn of(lines: &[AssessmentLine]) -> AssessmentTable {
        let mut table = AssessmentTable::default();
        for line in lines {
            if !table.instruments.contains(&line.instrument) {
                table.instruments.push(line.instrument.clone());
            }
        }
        for line in lines {
            let column = table
                .instruments
                .iter()
                .position(|i| *i == line.instrument)
                .unwrap_or_default();
            if table.rows.last().is_none_or(|row| row.date != line.date) {
                table.rows.push(AssessmentRow {
                    date: line.date.clone(),
                    scores: vec![String::new(); table.instruments.len()],
                });
            }
            if let Some(row) = table.rows.last_mut() {
                row.scores[column] = line.scored();
            }
        }
        table
    }
}

/// An instrument's scores over time, as a chart draws them over the instrument's severity bands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendLine {
    pub instrument: String,
    /// "PHQ-9 total score".
    pub title: String,
    /// What the chart shows, in words: its alternative text, with the first and latest scores.
    pub description: String,
    pub points: Vec<TrendPoint>,
    /// The severity bands from the lowest, as the chart markup writes them ("0-4 Minimal");
    /// none for an instrument without published bands.
    pub bands: Vec<String>,
}

/// One administration on a [`TrendLine`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    /// "Jan 6, 2025".
    pub date: String,
    pub score: i32,
}

impl TrendLine {
    /// The trend of `instrument` through `scores` (in date order); `None` without a score.
    pub fn new(instrument: &str, scores: &[(NaiveDate, i32)]) -> Option<TrendLine> {
        let (&(first_date, first), &(last_date, last)) = (scores.first()?, scores.last()?);
        let severity = |score: i32| scored(score, export_domain::severity_of(instrument, score));
        let title = format!("{instrument} total score");
        let description = if scores.len() == 1 {
            format!(
                "{title} on one date, {}: {}.",
                print_date(first_date),
                severity(first)
            )
        } else {
            let (low, high) = scores
                .iter()
                .fold((i32::MAX, i32::MIN), |(lo, hi), &(_, s)| {
                    (lo.min(s), hi.max(s))
                });
            let change = last - first;
            let change = if change > 0 {
                format!("+{change}")
            } else {
                change.to_string()
            };
            format!(
                "{title} on {} dates from {} to {}: from {} to {}, a change of {change}; lowest {low}, highest {high}.",
                scores.len(),
                print_date(first_date),
                print_date(last_date),
                severity(first),
                severity(last),
            )
        };
        let mut bottom = 0;
        let bands = export_domain::severity_bands(instrument)
            .iter()
            .map(|&(top, band)| {
                let line = format!("{bottom}-{top} {}", capitalized(band));
                bottom = top + 1;
                line
            })
            .collect();
        Some(TrendLine {
            instrument: instrument.to_owned(),
            title,
            description,
            points: scores
                .iter()
                .map(|&(date, score)| TrendPoint {
                    date: date.format("%b %-d, %Y").to_string(),
                    score,
                })
                .collect(),
            bands,
        })
    }
}

/// `text` with its first letter in capitals, as a value printed on its own reads: "Good".
pub fn capitalized(text: &str) -> String {
    let text = text.trim();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// How an instrument's score moved over the treatment: the first and the latest administration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutcomeLine {
    pub instrument: String,
    /// "20 (severe), January 8, 2025".
    pub first: String,
    /// "5 (mild), December 8, 2025".
    pub latest: String,
    /// The latest score less the first: "-15", "+2", "0".
    pub change: String,
}

impl AssessmentLine {
    /// The score with its severity, as a cell prints it: "12 (moderate)".
    pub fn scored(&self) -> String {
        scored(self.score, self.severity.as_deref())
    }
}

/// A score with its severity, as documents print it: "12 (moderate)", or "12" without one.
pub fn scored(score: i32, severity: Option<&str>) -> String {
    match severity {
        Some(severity) => format!("{score} ({severity})"),
        None => score.to_string(),
    }
}

/// A session as reports list it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionLine {
    pub number: usize,
    pub date: String,
    pub duration_minutes: i64,
    pub mood: String,
    pub topics: Vec<String>,
    pub summary: String,
}

/// The context of a progress report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgressReportContext {
    pub header: DocumentHeader,
    /// Which sections to show; every key of the export type is present.
    pub sections: BTreeMap<String, bool>,
    pub goals: Vec<GoalLine>,
    pub assessments: Vec<AssessmentLine>,
    /// The same assessments as a table of dates by instruments, as the report prints them.
    pub assessment_table: AssessmentTable,
    /// Each instrument's scores in the period, for its chart.
    pub trends: Vec<TrendLine>,
    pub session_count: usize,
    pub avg_duration_minutes: f64,
    pub key_topics: Vec<String>,
    pub sessions: Vec<SessionLine>,
    pub observations: Vec<String>,
    pub recommendations: Vec<String>,
    /// The period's risk flags, oldest first; always printed (none is said as such).
    pub risk_flags: Vec<RiskLine>,
}

/// A diagnosis line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiagnosisLine {
    pub icd10_code: String,
    pub description: String,
    pub is_primary: bool,
    pub since: String,
}

/// The context of a treatment summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TreatmentSummaryContext {
    pub header: DocumentHeader,
    /// `insurance`, `transfer` or `records`, for a template's decisions.
    pub purpose: String,
    /// The purpose as printed: "Insurance reimbursement", "Transfer of care", "Clinical records".
    pub purpose_label: String,
    pub sections: BTreeMap<String, bool>,
    pub diagnoses: Vec<DiagnosisLine>,
    pub modality: String,
    pub frequency: String,
    pub plan_summary: String,
    /// The plan's statement of medical necessity; empty when the plan states none.
    pub medical_necessity: String,
    pub interventions: Vec<String>,
    pub session_count: usize,
    pub avg_duration_minutes: f64,
    pub first_session: Option<String>,
    pub last_session: Option<String>,
    pub goals: Vec<GoalLine>,
    pub observations: Vec<String>,
    pub prognosis: String,
    /// The risk history: every flag of the treatment, oldest first.
    pub risk_flags: Vec<RiskLine>,
    /// First and latest score of each instrument given (PHQ-9, GAD-7, …).
    pub outcomes: Vec<OutcomeLine>,
    /// Each instrument's scores over the treatment, for its chart.
    pub trends: Vec<TrendLine>,
    /// The date of every session, oldest first: what an insurer calls the dates of service.
    pub dates_of_service: Vec<String>,
    /// From the latest session's follow-up topics, for whoever takes the treatment on.
    pub recommendations: Vec<String>,
}

/// A session with its notes, as session-notes exports print it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionNoteContext {
    pub date: String,
    pub duration_minutes: i64,
    pub therapist_summary: Option<String>,
    pub mood: String,
    pub key_topics: Vec<String>,
    pub strategies: Vec<String>,
    pub action_items: Vec<String>,
    pub risk_flags: Vec<RiskLine>,
    pub transcript: Option<String>,
    /// The session laid out as a clinical note, when a layout was asked for.
    pub note: Option<FilledNote>,
}

/// The context of a session-notes export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionNotesContext {
    pub header: DocumentHeader,
    pub include_ai_notes: bool,
    pub include_action_items: bool,
    pub include_transcript: bool,
    pub sessions: Vec<SessionNoteContext>,
}

/// The context of a full record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FullRecordContext {
    pub header: DocumentHeader,
    pub sections: BTreeMap<String, bool>,
    pub demographics: BTreeMap<String, String>,
    pub treatment_plans: Vec<String>,
    pub diagnoses: Vec<DiagnosisLine>,
    pub goals: Vec<GoalLine>,
    pub sessions: Vec<SessionLine>,
    /// Each session's notes (summary, topics, strategies, risk flags, action items, and the
    /// transcript only when the `transcripts` section asks for it), when the request includes
    /// them.
    pub notes: Vec<SessionNoteContext>,
    /// The risk history of the period: every flag, oldest first.
    pub risk_flags: Vec<RiskLine>,
    pub assessments: Vec<AssessmentLine>,
    /// Sessions, assessments, diagnoses, goals, treatment plans and their reviews, and risk
    /// flags, in date order.
    pub timeline: Vec<TimelineEntry>,
    pub attachments: Vec<String>,
}

/// One dated event of a full record's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    /// "January 6, 2025".
    pub date: String,
    /// What kind of event: "Session", "Assessment", "Diagnosis", "Goal", "Treatment plan",
    /// "Plan review", "Risk flag".
    pub kind: String,
    /// What happened: "PHQ-9 12 (moderate)".
    pub event: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trend_says_what_its_chart_shows() {
        let date = |month| NaiveDate::from_ymd_opt(2025, month, 6).expect("a date");
        let one = TrendLine::new("GAD-7", &[(date(2), 16)]).expect("a trend");
        assert_eq!(
            one.description,
            "GAD-7 total score on one date, February 6, 2025: 16 (severe)."
        );
        assert_eq!(
            one.bands,
            ["0-4 Minimal", "5-9 Mild", "10-14 Moderate", "15-21 Severe"]
        );
        // An instrument without published bands: scores only, no bands.
        let other = TrendLine::new("ORS", &[(date(1), 18), (date(3), 31)]).expect("a trend");
        assert_eq!(
            other.description,
            "ORS total score on 2 dates from January 6, 2025 to March 6, 2025: from 18 to 31, a \
             change of +13; lowest 18, highest 31."
        );
        assert!(other.bands.is_empty());
        assert_eq!(other.points[1].date, "Mar 6, 2025");
        assert!(TrendLine::new("PHQ-9", &[]).is_none());
    }
}
