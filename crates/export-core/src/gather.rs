//! Gathering: from a practice's clinical records (`Practice`, held in memory: the demo fixtures,
//! or what a `ClinicalSource` loads for one patient) to the context of each document type, with
//! the figures the seed platform defined: processed sessions only, session count, average
//! duration to one decimal, the ten most frequent key topics, goals with progress, assessments
//! over the period.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use export_domain::{
    FullRecordRequest, Practice, ProgressReportRequest, RelationshipType, Role,
    SessionNotesRequest, SessionStatus, SummaryPurpose, TherapySession, TreatmentSummaryRequest,
    User,
};
use export_render::{
    AssessmentLine, AssessmentTable, DiagnosisLine, DocumentHeader, DocumentMeta,
    FullRecordContext, GoalLine, OutcomeLine, PageSize, ProgressReportContext, RiskLine,
    SessionLine, SessionNoteContext, SessionNotesContext, TimelineEntry, TreatmentSummaryContext,
    TrendLine, capitalized, fill_note, print_date, print_date_time, scored,
};
use uuid::Uuid;

/// Why a context could not be gathered. Ids only: no names, no notes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatherError {
    #[error("patient {0} does not exist")]
    PatientNotFound(Uuid),
    #[error("user {0} is not a patient")]
    NotAPatient(Uuid),
    #[error("session {0} does not exist")]
    SessionNotFound(Uuid),
    #[error("session {id} is {status}, and only processed sessions are exported")]
    SessionNotProcessed { id: Uuid, status: SessionStatus },
    #[error("session {0} belongs to another patient than the first session")]
    MixedPatients(Uuid),
}

/// How many key topics a progress report lists.
pub const TOP_TOPICS: usize = 10;

fn find_patient(practice: &Practice, patient_id: Uuid) -> Result<&User, GatherError> {
    let user = practice
        .users
        .iter()
        .find(|u| u.id == patient_id)
        .ok_or(GatherError::PatientNotFound(patient_id))?;
    if user.role != Role::Patient {
        return Err(GatherError::NotAPatient(patient_id));
    }
    Ok(user)
}

/// The patient's active primary therapist, if any.
fn primary_therapist(practice: &Practice, patient_id: Uuid) -> Option<&User> {
    let link = practice.therapist_patients.iter().find(|l| {
        l.patient_id == patient_id
            && l.is_active
            && l.relationship_type == RelationshipType::Primary
    })?;
    practice.users.iter().find(|u| u.id == link.therapist_id)
}

fn header(
    practice: &Practice,
    patient: &User,
    title: &str,
    period: Option<String>,
    generated_at: DateTime<Utc>,
) -> DocumentHeader {
    DocumentHeader {
        title: title.to_owned(),
        patient_name: patient.full_name(),
        patient_date_of_birth: patient.date_of_birth.map(print_date),
        period,
        prepared_by: primary_therapist(practice, patient.id)
            .map(User::signed_name)
            .unwrap_or_default(),
        generated_on: print_date_time(generated_at),
    }
}

/// The document metadata that goes with a header.
pub fn meta_for(header: &DocumentHeader, generated_at: DateTime<Utc>) -> DocumentMeta {
    DocumentMeta {
        title: header.title.clone(),
        author: header.prepared_by.clone(),
        subject: Some(header.title.clone()),
        generated_at,
        page_size: PageSize::Letter,
        patient: Some(match &header.patient_date_of_birth {
            Some(born) => format!("{}, born {born}", header.patient_name),
            None => header.patient_name.clone(),
        }),
        practice: None,
    }
}

/// The patient's processed sessions whose date falls in `[from, to]` (either end open), oldest first.
fn processed_sessions(
    practice: &Practice,
    patient_id: Uuid,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Vec<&TherapySession> {
    let mut sessions: Vec<&TherapySession> = practice
        .therapy_sessions
        .iter()
        .filter(|s| s.patient_id == patient_id && s.status == SessionStatus::Processed)
        .filter(|s| {
            let day = s.session_date.date_naive();
            from.is_none_or(|f| day >= f) && to.is_none_or(|t| day <= t)
        })
        .collect();
    sessions.sort_by_key(|s| (s.session_date, s.id));
    sessions
}

fn minutes(session: &TherapySession) -> i64 {
    (session.duration_seconds as i64 + 30) / 60
}

/// Mean duration in minutes, to one decimal.
pub fn average_minutes(sessions: &[&TherapySession]) -> f64 {
    if sessions.is_empty() {
        return 0.0;
    }
    let total: i64 = sessions.iter().map(|s| s.duration_seconds as i64).sum();
    (total as f64 / 60.0 / sessions.len() as f64 * 10.0).round() / 10.0
}

/// The `limit` most frequent key topics, most frequent first, ties alphabetically.
pub fn top_topics(sessions: &[&TherapySession], limit: usize) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for topic in sessions
        .iter()
        .filter_map(|s| s.extracted_notes.as_ref())
        .flat_map(|n| &n.key_topics)
    {
        *counts.entry(topic.as_str()).or_default() += 1;
    }
    let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ranked
        .into_iter()
        .take(limit)
        .map(|(topic, _)| topic.to_owned())
        .collect()
}

fn session_line(number: usize, session: &TherapySession) -> SessionLine {
    let notes = session.extracted_notes.as_ref();
    SessionLine {
        number,
        date: print_date(session.session_date.date_naive()),
        duration_minutes: minutes(session),
        mood: notes.map(|n| n.session_mood.clone()).unwrap_or_default(),
        topics: notes.map(|n| n.key_topics.clone()).unwrap_or_default(),
        summary: session
            .therapist_summary
            .clone()
            .or_else(|| notes.map(|n| n.topic_summary.clone()))
            .unwrap_or_default(),
    }
}

fn goal_lines(practice: &Practice, patient_id: Uuid) -> Vec<GoalLine> {
    practice
        .goals
        .iter()
        .filter(|g| g.patient_id == patient_id)
        .map(|g| GoalLine {
            description: g.description.clone(),
            baseline: g.baseline.clone(),
            current: g.current.clone(),
            progress_percentage: g.progress_percentage,
            status: g.status.to_string(),
        })
        .collect()
}

/// `patient_id`'s assessments between `from` and `to`, by date, then instrument.
fn assessments_in(
    practice: &Practice,
    patient_id: Uuid,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Vec<&export_domain::Assessment> {
    let mut assessments: Vec<_> = practice
        .assessments
        .iter()
        .filter(|a| a.patient_id == patient_id)
        .filter(|a| {
            from.is_none_or(|f| a.administered_on >= f) && to.is_none_or(|t| a.administered_on <= t)
        })
        .collect();
    assessments.sort_by(|a, b| {
        (a.administered_on, &a.instrument).cmp(&(b.administered_on, &b.instrument))
    });
    assessments
}

fn assessment_lines(
    practice: &Practice,
    patient_id: Uuid,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Vec<AssessmentLine> {
    assessments_in(practice, patient_id, from, to)
        .into_iter()
        .map(|a| AssessmentLine {
            instrument: a.instrument.clone(),
            date: print_date(a.administered_on),
            score: a.score,
            severity: a.severity().map(str::to_owned),
        })
        .collect()
}

/// Each instrument's trend through `patient_id`'s assessments between `from` and `to`,
/// instruments by name.
fn trend_lines(
    practice: &Practice,
    patient_id: Uuid,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Vec<TrendLine> {
    // In date order: each instrument's scores come out oldest first.
    let mut given: BTreeMap<&str, Vec<(NaiveDate, i32)>> = BTreeMap::new();
    for a in assessments_in(practice, patient_id, from, to) {
        given
            .entry(a.instrument.as_str())
            .or_default()
            .push((a.administered_on, a.score));
    }
    given
        .into_iter()
        .filter_map(|(instrument, scores)| TrendLine::new(instrument, &scores))
        .collect()
}

fn diagnosis_lines(practice: &Practice, patient_id: Uuid) -> Vec<DiagnosisLine> {
    let mut diagnoses: Vec<_> = practice
        .diagnoses
        .iter()
        .filter(|d| d.patient_id == patient_id)
        .collect();
    diagnoses.sort_by_key(|d| (!d.is_primary, d.diagnosed_on));
    diagnoses
        .into_iter()
        .map(|d| DiagnosisLine {
            icd10_code: d.icd10_code.clone(),
            description: d.description.clone(),
            is_primary: d.is_primary,
            since: print_date(d.diagnosed_on),
        })
        .collect()
}

/// The therapist's notes of the most recent sessions, newest first.
fn observations(sessions: &[&TherapySession], count: usize) -> Vec<String> {
    sessions
        .iter()
        .rev()
        .filter_map(|s| s.extracted_notes.as_ref())
        .map(|n| n.therapist_notes.trim().to_owned())
        .filter(|n| !n.is_empty())
        .take(count)
        .collect()
}

/// The risk flags of `sessions` in their order, the most severe first within a session.
fn risk_lines(sessions: &[&TherapySession]) -> Vec<RiskLine> {
    sessions
        .iter()
        .flat_map(|session| {
            let date = session.session_date.date_naive();
            let mut flags: Vec<&export_domain::RiskFlag> = session
                .extracted_notes
                .iter()
                .flat_map(|notes| &notes.risk_flags)
                .collect();
            flags.sort_by_key(|flag| std::cmp::Reverse(flag.severity));
            flags.into_iter().map(move |flag| RiskLine::new(date, flag))
        })
        .collect()
}

/// The context of a progress report: one patient over the requested period.
pub fn progress_report(
    practice: &Practice,
    request: &ProgressReportRequest,
    generated_at: DateTime<Utc>,
) -> Result<ProgressReportContext, GatherError> {
    let patient = find_patient(practice, request.patient_id)?;
    let (from, to) = (request.period.start, request.period.end);
    let sessions = processed_sessions(practice, patient.id, Some(from), Some(to));
    let period = format!("{} to {}", print_date(from), print_date(to));
    let recommendations = recommendations(&sessions);
    let assessments = assessment_lines(practice, patient.id, Some(from), Some(to));
    Ok(ProgressReportContext {
        header: header(
            practice,
            patient,
            "Progress Report",
            Some(period),
            generated_at,
        ),
        sections: request.include_sections.clone(),
        goals: goal_lines(practice, patient.id),
        assessment_table: AssessmentTable::of(&assessments),
        trends: trend_lines(practice, patient.id, Some(from), Some(to)),
        assessments,
        session_count: sessions.len(),
        avg_duration_minutes: average_minutes(&sessions),
        key_topics: top_topics(&sessions, TOP_TOPICS),
        sessions: sessions
            .iter()
            .enumerate()
            .map(|(i, s)| session_line(i + 1, s))
            .collect(),
        observations: observations(&sessions, 5),
        recommendations,
        risk_flags: risk_lines(&sessions),
    })
}

/// The context of a treatment summary. An insurer gets the minimum necessary: no clinical
/// observations in free text.
pub fn treatment_summary(
    practice: &Practice,
    request: &TreatmentSummaryRequest,
    generated_at: DateTime<Utc>,
) -> Result<TreatmentSummaryContext, GatherError> {
    let patient = find_patient(practice, request.patient_id)?;
    let sessions = processed_sessions(practice, patient.id, None, None);
    let plan = practice
        .treatment_plans
        .iter()
        .filter(|p| p.patient_id == patient.id)
        .max_by_key(|p| p.start_date);
    let mut strategy_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for strategy in sessions
        .iter()
        .filter_map(|s| s.extracted_notes.as_ref())
        .flat_map(|n| &n.strategies)
    {
        *strategy_counts.entry(strategy.name.as_str()).or_default() += 1;
    }
    let mut interventions: Vec<(&str, usize)> = strategy_counts.into_iter().collect();
    interventions.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut sections = request.include_sections.clone();
    if request.purpose == SummaryPurpose::Insurance {
        sections.insert("clinical_observations".into(), false);
    }
    let title = match request.purpose {
        SummaryPurpose::Insurance => "Treatment Summary for Insurance",
        SummaryPurpose::Transfer => "Treatment Summary for Transfer of Care",
        SummaryPurpose::Records => "Treatment Summary",
    };
    Ok(TreatmentSummaryContext {
        header: header(practice, patient, title, None, generated_at),
        purpose: request.purpose.to_string(),
        purpose_label: match request.purpose {
            SummaryPurpose::Insurance => "Insurance reimbursement",
            SummaryPurpose::Transfer => "Transfer of care",
            SummaryPurpose::Records => "Clinical records",
        }
        .to_owned(),
        sections,
        diagnoses: diagnosis_lines(practice, patient.id),
        modality: plan.map(|p| p.modality.clone()).unwrap_or_default(),
        frequency: plan.map(|p| p.frequency.clone()).unwrap_or_default(),
        plan_summary: plan.map(|p| p.summary.clone()).unwrap_or_default(),
        medical_necessity: plan
            .and_then(|p| p.medical_necessity.as_deref())
            .map(|text| text.trim().to_owned())
            .unwrap_or_default(),
        interventions: interventions
            .into_iter()
            .map(|(name, n)| format!("{name} ({n} session{})", if n == 1 { "" } else { "s" }))
            .collect(),
        session_count: sessions.len(),
        avg_duration_minutes: average_minutes(&sessions),
        first_session: sessions
            .first()
            .map(|s| print_date(s.session_date.date_naive())),
        last_session: sessions
            .last()
            .map(|s| print_date(s.session_date.date_naive())),
        goals: goal_lines(practice, patient.id),
        observations: observations(&sessions, 3),
        prognosis: plan.map(|p| capitalized(&p.prognosis)).unwrap_or_default(),
        risk_flags: risk_lines(&sessions),
        outcomes: outcomes(practice, patient.id),
        trends: trend_lines(practice, patient.id, None, None),
        dates_of_service: sessions
            .iter()
            .map(|s| print_date(s.session_date.date_naive()))
            .collect(),
        recommendations: recommendations(&sessions),
    })
}

/// What the latest of `sessions` left to work on, as recommendations.
fn recommendations(sessions: &[&TherapySession]) -> Vec<String> {
    sessions
        .last()
        .and_then(|s| s.extracted_notes.as_ref())
        .map(|n| {
            n.follow_up_topics
                .iter()
                .map(|t| format!("Continue work on {t}."))
                .collect()
        })
        .unwrap_or_default()
}

/// The first and latest score of each instrument `patient` was given, instruments by name.
fn outcomes(practice: &Practice, patient: Uuid) -> Vec<OutcomeLine> {
    // In date order: the first of an instrument's lines is its first administration.
    let mut given: BTreeMap<String, Vec<AssessmentLine>> = BTreeMap::new();
    for line in assessment_lines(practice, patient, None, None) {
        given.entry(line.instrument.clone()).or_default().push(line);
    }
    let score = |line: &AssessmentLine| format!("{}, {}", line.scored(), line.date);
    given
        .into_iter()
        .filter_map(|(instrument, lines)| {
            let (first, latest) = (lines.first()?, lines.last()?);
            let change = latest.score - first.score;
            Some(OutcomeLine {
                instrument,
                first: score(first),
                latest: score(latest),
                change: if change > 0 {
                    format!("+{change}")
                } else {
                    change.to_string()
                },
            })
        })
        .collect()
}

/// A session as its notes print: the summary, mood, topics, strategies, action items and risk
/// flags, the note `layout` filled when one is asked for, the transcript when `transcript`.
fn note_context(
    s: &TherapySession,
    transcript: bool,
    layout: Option<export_domain::NoteLayout>,
) -> SessionNoteContext {
    let notes = s.extracted_notes.clone().unwrap_or_default();
    SessionNoteContext {
        date: print_date(s.session_date.date_naive()),
        duration_minutes: minutes(s),
        therapist_summary: s.therapist_summary.clone(),
        mood: notes.session_mood.clone(),
        key_topics: notes.key_topics.clone(),
        strategies: notes
            .strategies
            .iter()
            .map(|st| format!("{} ({})", st.name, st.status))
            .collect(),
        action_items: notes.action_items.iter().map(|a| a.task.clone()).collect(),
        risk_flags: risk_lines(std::slice::from_ref(&s)),
        transcript: transcript.then(|| s.transcript_text.clone()).flatten(),
        note: layout.map(|layout| fill_note(layout, s)),
    }
}

/// The sessions a session-notes request names, in date order, which must exist, be processed and
/// belong to one patient; and that patient.
fn requested_sessions<'p>(
    practice: &'p Practice,
    request: &SessionNotesRequest,
) -> Result<(Vec<&'p TherapySession>, &'p User), GatherError> {
    let mut sessions = Vec::with_capacity(request.session_ids.len());
    for &id in &request.session_ids {
        let session = practice
            .therapy_sessions
            .iter()
            .find(|s| s.id == id)
            .ok_or(GatherError::SessionNotFound(id))?;
        if session.status != SessionStatus::Processed {
            return Err(GatherError::SessionNotProcessed {
                id,
                status: session.status,
            });
        }
        if sessions
            .first()
            .is_some_and(|first: &&TherapySession| first.patient_id != session.patient_id)
        {
            return Err(GatherError::MixedPatients(id));
        }
        sessions.push(session);
    }
    sessions.sort_by_key(|s| (s.session_date, s.id));
    let patient_id = sessions.first().map(|s| s.patient_id).unwrap_or_default();
    Ok((sessions, find_patient(practice, patient_id)?))
}

/// The context of a session-notes export: the requested sessions, which must exist, be
/// processed and belong to one patient.
pub fn session_notes(
    practice: &Practice,
    request: &SessionNotesRequest,
    generated_at: DateTime<Utc>,
) -> Result<SessionNotesContext, GatherError> {
    let (sessions, patient) = requested_sessions(practice, request)?;
    let period = match (sessions.first(), sessions.last()) {
        (Some(first), Some(last)) if first.id != last.id => Some(format!(
            "{} to {}",
            print_date(first.session_date.date_naive()),
            print_date(last.session_date.date_naive())
        )),
        _ => None,
    };
    let options = request.options;
    Ok(SessionNotesContext {
        header: header(practice, patient, "Session Notes", period, generated_at),
        include_ai_notes: options.include_ai_notes,
        include_action_items: options.include_action_items,
        include_transcript: options.include_transcript,
        sessions: sessions
            .iter()
            .map(|s| note_context(s, options.include_transcript, request.note_layout))
            .collect(),
    })
}

/// A full record's timeline between `from` and `to`: every session (with its mood), assessment
/// (score and severity), diagnosis, goal set and goal target, treatment plan start and review, and
/// risk flag, in date order (and by kind within a day, in that order).
fn timeline(
    practice: &Practice,
    patient_id: Uuid,
    sessions: &[&TherapySession],
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Vec<TimelineEntry> {
    let within = |day: NaiveDate| from.is_none_or(|f| day >= f) && to.is_none_or(|t| day <= t);
    // (day, rank of the kind within a day, kind, event)
    let mut events: Vec<(NaiveDate, u8, &str, String)> = Vec::new();
    for session in sessions {
        let day = session.session_date.date_naive();
        let mood = session
            .extracted_notes
            .as_ref()
            .map(|n| n.session_mood.trim())
            .filter(|m| !m.is_empty());
        let event = match mood {
            Some(mood) => format!("{} minutes, mood {mood}", minutes(session)),
            None => format!("{} minutes", minutes(session)),
        };
        events.push((day, 3, "Session", event));
        for flag in risk_lines(std::slice::from_ref(session)) {
            events.push((
                day,
                4,
                "Risk flag",
                format!(
                    "{} {}: {}",
                    capitalized(&flag.severity),
                    flag.risk,
                    flag.evidence
                ),
            ));
        }
    }
    for a in assessments_in(practice, patient_id, from, to) {
        let scored = format!("{} {}", a.instrument, scored(a.score, a.severity()));
        events.push((a.administered_on, 5, "Assessment", scored));
    }
    for d in practice
        .diagnoses
        .iter()
        .filter(|d| d.patient_id == patient_id && within(d.diagnosed_on))
    {
        let primary = if d.is_primary { " (primary)" } else { "" };
        events.push((
            d.diagnosed_on,
            0,
            "Diagnosis",
            format!("{} {}{primary}", d.icd10_code, d.description),
        ));
    }
    for plan in practice
        .treatment_plans
        .iter()
        .filter(|p| p.patient_id == patient_id)
    {
        if within(plan.start_date) {
            events.push((
                plan.start_date,
                1,
                "Treatment plan",
                format!("{}, {}: started", plan.modality, plan.frequency),
            ));
        }
        if let Some(review) = plan.review_date.filter(|&day| within(day)) {
            events.push((
                review,
                6,
                "Plan review",
                format!(
                    "{} plan reviewed (prognosis {})",
                    plan.modality,
                    plan.prognosis.trim()
                ),
            ));
        }
    }
    for goal in practice.goals.iter().filter(|g| g.patient_id == patient_id) {
        let set = goal.created_at.date_naive();
        if within(set) {
            events.push((
                set,
                2,
                "Goal",
                format!("Set: {} (baseline: {})", goal.description, goal.baseline),
            ));
        }
        if let Some(target) = goal.target_date.filter(|&day| within(day)) {
            events.push((
                target,
                7,
                "Goal",
                format!(
                    "Target date: {} ({}% now, {})",
                    goal.description, goal.progress_percentage, goal.status
                ),
            ));
        }
    }
    events.sort_by_key(|a| (a.0, a.1));
    events
        .into_iter()
        .map(|(day, _, kind, event)| TimelineEntry {
            date: print_date(day),
            kind: kind.to_owned(),
            event,
        })
        .collect()
}

/// The context of a full record: everything about one patient, optionally in a date range.
pub fn full_record(
    practice: &Practice,
    request: &FullRecordRequest,
    generated_at: DateTime<Utc>,
) -> Result<FullRecordContext, GatherError> {
    let patient = find_patient(practice, request.patient_id)?;
    let (from, to) = match request.date_range {
        Some(range) => (Some(range.start), Some(range.end)),
        None => (None, None),
    };
    let sessions = processed_sessions(practice, patient.id, from, to);
    let period = request
        .date_range
        .map(|r| format!("{} to {}", print_date(r.start), print_date(r.end)));
    let mut demographics = BTreeMap::from([
        ("Name".to_owned(), patient.full_name()),
        ("Email".to_owned(), patient.email.clone()),
    ]);
    if let Some(born) = patient.date_of_birth {
        demographics.insert("Date of birth".to_owned(), print_date(born));
    }
    let timeline = timeline(practice, patient.id, &sessions, from, to);
    let include = |key: &str| request.include_sections.get(key).copied().unwrap_or(false);
    let transcripts = include("transcripts");
    Ok(FullRecordContext {
        header: header(
            practice,
            patient,
            "Full Clinical Record",
            period,
            generated_at,
        ),
        sections: request.include_sections.clone(),
        demographics,
        treatment_plans: practice
            .treatment_plans
            .iter()
            .filter(|p| p.patient_id == patient.id)
            .map(|p| {
                format!(
                    "{}, {}, from {}: {}",
                    p.modality,
                    p.frequency,
                    print_date(p.start_date),
                    p.summary
                )
            })
            .collect(),
        diagnoses: diagnosis_lines(practice, patient.id),
        goals: goal_lines(practice, patient.id),
        sessions: sessions
            .iter()
            .enumerate()
            .map(|(i, s)| session_line(i + 1, s))
            .collect(),
        notes: if include("notes") {
            sessions
                .iter()
                .map(|s| note_context(s, transcripts, None))
                .collect()
        } else {
            Vec::new()
        },
        risk_flags: risk_lines(&sessions),
        assessments: assessment_lines(practice, patient.id, from, to),
        timeline,
        attachments: Vec::new(),
    })
}

/// Items joined with "; ", or an empty cell for none.
fn joined<'i>(items: impl Iterator<Item = &'i String>) -> export_render::OwnedCell {
    let text = items.map(String::as_str).collect::<Vec<_>>().join("; ");
    export_render::OwnedCell::from(Some(text).filter(|t| !t.is_empty()))
}

/// A session-notes export as a table (for csv and xlsx): one row per session, typed for machines:
/// the session's and the patient's ids and the patient's name on every row, the session's start
/// as a UTC date-time, its minutes as a number, lists joined with "; ".
pub fn session_notes_table(
    practice: &Practice,
    request: &SessionNotesRequest,
) -> Result<export_render::MemoryRows, GatherError> {
    use export_render::{Column, ColumnKind, OwnedCell};
    let (sessions, patient) = requested_sessions(practice, request)?;
    let options = request.options;
    let mut columns = vec![
        Column::new("session_id", ColumnKind::Text).meaning("The session's id"),
        Column::new("patient_id", ColumnKind::Text).meaning("The patient's id"),
        Column::new("patient_name", ColumnKind::Text).meaning("The patient's first and last name"),
        Column::new("session_date", ColumnKind::DateTime)
            .meaning("When the session started, in UTC"),
        Column::new("duration_minutes", ColumnKind::Integer)
            .meaning("How long the session lasted, in whole minutes"),
        Column::new("mood", ColumnKind::Text).meaning("The patient's mood in the session"),
        Column::new("summary", ColumnKind::Text).meaning("The therapist's summary of the session"),
    ];
    // The columns the options add: name, meaning, whether asked for, and the cell of a note.
    type Cell = fn(&SessionNoteContext) -> OwnedCell;
    let optional: [(&str, &str, bool, Cell); 5] = [
        (
            "key_topics",
            "The topics the notes list, joined with \"; \"",
            options.include_ai_notes,
            |n| joined(n.key_topics.iter()),
        ),
        (
            "strategies",
            "The strategies worked on, each with what was done (introduced, practiced …)",
            options.include_ai_notes,
            |n| joined(n.strategies.iter()),
        ),
        (
            "risk_flags",
            "Every risk flag of the session, its severity in words, with its evidence",
            options.include_ai_notes,
            |n| joined(n.risk_flags.iter().map(|f| &f.text)),
        ),
        (
            "action_items",
            "What the patient is to do before the next session",
            options.include_action_items,
            |n| joined(n.action_items.iter()),
        ),
        (
            "transcript",
            "What was said, line by line (only when the export asks for it)",
            options.include_transcript,
            |n| OwnedCell::from(n.transcript.clone()),
        ),
    ];
    let optional: Vec<_> = optional.into_iter().filter(|o| o.2).collect();
    columns.extend(
        optional
            .iter()
            .map(|(name, meaning, _, _)| Column::new(*name, ColumnKind::Text).meaning(*meaning)),
    );
    let rows = sessions
        .iter()
        .map(|s| {
            let note = note_context(s, options.include_transcript, None);
            let mut row = vec![
                OwnedCell::Text(s.id.to_string()),
                OwnedCell::Text(patient.id.to_string()),
                OwnedCell::Text(patient.full_name()),
                OwnedCell::DateTime(s.session_date),
                OwnedCell::Integer(note.duration_minutes),
                OwnedCell::from(Some(note.mood.clone()).filter(|m| !m.is_empty())),
                OwnedCell::from(note.therapist_summary.clone()),
            ];
            row.extend(optional.iter().map(|(_, _, _, cell)| cell(&note)));
            row
        })
        .collect();
    Ok(export_render::MemoryRows::typed(columns, rows))
}

/// The records behind a full record, as a practice of one patient: the patient, their
/// therapists and relationships, and their sessions, goals, assessments, diagnoses and plans
/// (sessions and assessments limited to the date range, when there is one). A full-record JSON
/// export carries it so the record can be imported again (`export-cli import`).
pub fn full_record_data(
    practice: &Practice,
    request: &FullRecordRequest,
) -> Result<Practice, GatherError> {
    let patient = find_patient(practice, request.patient_id)?;
    let in_range = |day: NaiveDate| request.date_range.is_none_or(|r| r.contains(day));
    let mut data = practice.of_patient(patient.id);
    data.therapy_sessions
        .retain(|s| in_range(s.session_date.date_naive()));
    data.assessments.retain(|a| in_range(a.administered_on));
    Ok(data)
}
