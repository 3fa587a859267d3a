//! Repositories of the clinical source tables: users, therapist–patient relationships, therapy
//! sessions, goals, assessments, diagnoses and treatment plans.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use export_domain::{
    Assessment, Diagnosis, Goal, GoalListing, GoalsPage, Role, SessionListing, SessionStatus,
    SessionsPage, TherapistPatient, TherapySession, TreatmentPlan, User, full_name,
};
use uuid::Uuid;

use crate::convert::{id, json, naive, to_json, utc, word};
use crate::schema::{
    assessments, diagnoses, goals, therapist_patients, therapy_sessions, treatment_plans, users,
};
use crate::{DbConnection, StoreError};

fn insert_error(table: &'static str, err: diesel::result::Error) -> StoreError {
    StoreError::from_write(table, err, |constraint| {
        (constraint.contains("email"))
            .then_some(StoreError::Duplicate {
                table,
                what: "email",
            })
            .or_else(|| {
                (constraint.contains("pair") || constraint.contains("therapist_id")).then_some(
                    StoreError::Duplicate {
                        table,
                        what: "therapist and patient",
                    },
                )
            })
    })
}

// ---- users ----

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
struct UserRow {
    id: String,
    email: String,
    first_name: String,
    last_name: String,
    role: String,
    date_of_birth: Option<NaiveDate>,
    created_at: NaiveDateTime,
    credentials: Option<String>,
}

impl UserRow {
    fn of(user: &User) -> UserRow {
        UserRow {
            id: user.id.to_string(),
            email: user.email.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            role: user.role.as_str().to_owned(),
            date_of_birth: user.date_of_birth,
            created_at: naive(user.created_at),
            credentials: user.credentials.clone(),
        }
    }

    fn into_user(self) -> Result<User, StoreError> {
        Ok(User {
            id: id("users.id", &self.id)?,
            email: self.email,
            first_name: self.first_name,
            last_name: self.last_name,
            role: word("users.role", &self.role)?,
            date_of_birth: self.date_of_birth,
            created_at: utc(self.created_at),
            credentials: self.credentials,
        })
    }
}

/// Adds a user.
pub fn insert_user(conn: &mut DbConnection, user: &User) -> Result<(), StoreError> {
    diesel::insert_into(users::table)
        .values(UserRow::of(user))
        .execute(conn)
        .map_err(|err| insert_error("users", err))?;
    Ok(())
}

/// The user with this id, if any.
pub fn get_user(conn: &mut DbConnection, user_id: Uuid) -> Result<Option<User>, StoreError> {
    users::table
        .find(user_id.to_string())
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?
        .map(UserRow::into_user)
        .transpose()
}

/// Users, optionally only those with `role`, ordered by last then first name.
pub fn list_users(conn: &mut DbConnection, role: Option<Role>) -> Result<Vec<User>, StoreError> {
    let mut query = users::table.select(UserRow::as_select()).into_boxed();
    if let Some(role) = role {
        query = query.filter(users::role.eq(role.as_str()));
    }
    query
        .order((
            users::last_name.asc(),
            users::first_name.asc(),
            users::id.asc(),
        ))
        .load(conn)?
        .into_iter()
        .map(UserRow::into_user)
        .collect()
}

// ---- therapist_patients ----

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = therapist_patients)]
struct RelationshipRow {
    id: String,
    therapist_id: String,
    patient_id: String,
    relationship_type: String,
    is_active: bool,
    started_on: NaiveDate,
}

impl RelationshipRow {
    fn of(link: &TherapistPatient) -> RelationshipRow {
        RelationshipRow {
            id: link.id.to_string(),
            therapist_id: link.therapist_id.to_string(),
            patient_id: link.patient_id.to_string(),
            relationship_type: link.relationship_type.as_str().to_owned(),
            is_active: link.is_active,
            started_on: link.started_on,
        }
    }

    fn into_link(self) -> Result<TherapistPatient, StoreError> {
        Ok(TherapistPatient {
            id: id("therapist_patients.id", &self.id)?,
            therapist_id: id("therapist_patients.therapist_id", &self.therapist_id)?,
            patient_id: id("therapist_patients.patient_id", &self.patient_id)?,
            relationship_type: word(
                "therapist_patients.relationship_type",
                &self.relationship_type,
            )?,
            is_active: self.is_active,
            started_on: self.started_on,
        })
    }
}

/// Adds a therapist–patient relationship.
pub fn insert_relationship(
    conn: &mut DbConnection,
    link: &TherapistPatient,
) -> Result<(), StoreError> {
    diesel::insert_into(therapist_patients::table)
        .values(RelationshipRow::of(link))
        .execute(conn)
        .map_err(|err| insert_error("therapist_patients", err))?;
    Ok(())
}

/// The relationship between this therapist and this patient, active or not.
pub fn find_relationship(
    conn: &mut DbConnection,
    therapist_id: Uuid,
    patient_id: Uuid,
) -> Result<Option<TherapistPatient>, StoreError> {
    therapist_patients::table
        .filter(therapist_patients::therapist_id.eq(therapist_id.to_string()))
        .filter(therapist_patients::patient_id.eq(patient_id.to_string()))
        .select(RelationshipRow::as_select())
        .get_result(conn)
        .optional()?
        .map(RelationshipRow::into_link)
        .transpose()
}

/// Every relationship of a therapist (`of_therapist`) or of a patient, oldest first.
pub fn list_relationships(
    conn: &mut DbConnection,
    person_id: Uuid,
    of_therapist: bool,
) -> Result<Vec<TherapistPatient>, StoreError> {
    let person = person_id.to_string();
    let mut query = therapist_patients::table
        .select(RelationshipRow::as_select())
        .into_boxed();
    query = if of_therapist {
        query.filter(therapist_patients::therapist_id.eq(person))
    } else {
        query.filter(therapist_patients::patient_id.eq(person))
    };
    query
        .order((
            therapist_patients::started_on.asc(),
            therapist_patients::id.asc(),
        ))
        .load(conn)?
        .into_iter()
        .map(RelationshipRow::into_link)
        .collect()
}

// ---- therapy_sessions ----

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = therapy_sessions)]
struct SessionRow {
    id: String,
    patient_id: String,
    therapist_id: String,
    session_date: NaiveDateTime,
    duration_seconds: i32,
    status: String,
    transcript_text: Option<String>,
    transcript_segments: String,
    therapist_summary: Option<String>,
    patient_summary: Option<String>,
    extracted_notes: Option<String>,
    created_at: NaiveDateTime,
}

impl SessionRow {
    fn of(session: &TherapySession) -> SessionRow {
        SessionRow {
            id: session.id.to_string(),
            patient_id: session.patient_id.to_string(),
            therapist_id: session.therapist_id.to_string(),
            session_date: naive(session.session_date),
            duration_seconds: session.duration_seconds,
            status: session.status.as_str().to_owned(),
            transcript_text: session.transcript_text.clone(),
            transcript_segments: to_json(&session.transcript_segments),
            therapist_summary: session.therapist_summary.clone(),
            patient_summary: session.patient_summary.clone(),
            extracted_notes: session.extracted_notes.as_ref().map(to_json),
            created_at: naive(session.created_at),
        }
    }

    fn into_session(self) -> Result<TherapySession, StoreError> {
        Ok(TherapySession {
            id: id("therapy_sessions.id", &self.id)?,
            patient_id: id("therapy_sessions.patient_id", &self.patient_id)?,
            therapist_id: id("therapy_sessions.therapist_id", &self.therapist_id)?,
            session_date: utc(self.session_date),
            duration_seconds: self.duration_seconds,
            status: word("therapy_sessions.status", &self.status)?,
            transcript_text: self.transcript_text,
            transcript_segments: json(
                "therapy_sessions.transcript_segments",
                &self.transcript_segments,
            )?,
            therapist_summary: self.therapist_summary,
            patient_summary: self.patient_summary,
            extracted_notes: self
                .extracted_notes
                .map(|notes| json("therapy_sessions.extracted_notes", &notes))
                .transpose()?,
            created_at: utc(self.created_at),
        })
    }
}

/// Adds a therapy session.
pub fn insert_session(conn: &mut DbConnection, session: &TherapySession) -> Result<(), StoreError> {
    diesel::insert_into(therapy_sessions::table)
        .values(SessionRow::of(session))
        .execute(conn)
        .map_err(|err| insert_error("therapy_sessions", err))?;
    Ok(())
}

/// The sessions with these ids that exist, in session-date order.
pub fn get_sessions(
    conn: &mut DbConnection,
    session_ids: &[Uuid],
) -> Result<Vec<TherapySession>, StoreError> {
    let ids: Vec<String> = session_ids.iter().map(Uuid::to_string).collect();
    therapy_sessions::table
        .filter(therapy_sessions::id.eq_any(ids))
        .select(SessionRow::as_select())
        .order((
            therapy_sessions::session_date.asc(),
            therapy_sessions::id.asc(),
        ))
        .load(conn)?
        .into_iter()
        .map(SessionRow::into_session)
        .collect()
}

/// A patient's sessions in `[from, to)` (either end optional) with `status` if given, oldest
/// first.
pub fn list_patient_sessions(
    conn: &mut DbConnection,
    patient_id: Uuid,
    status: Option<SessionStatus>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Vec<TherapySession>, StoreError> {
    let mut query = therapy_sessions::table
        .filter(therapy_sessions::patient_id.eq(patient_id.to_string()))
        .select(SessionRow::as_select())
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(therapy_sessions::status.eq(status.as_str()));
    }
    if let Some(from) = from {
        query = query.filter(therapy_sessions::session_date.ge(naive(from)));
    }
    if let Some(to) = to {
        query = query.filter(therapy_sessions::session_date.lt(naive(to)));
    }
    query
        .order((
            therapy_sessions::session_date.asc(),
            therapy_sessions::id.asc(),
        ))
        .load(conn)?
        .into_iter()
        .map(SessionRow::into_session)
        .collect()
}

/// The columns of a session listing: no transcript.
#[derive(Queryable, Selectable)]
#[diesel(table_name = therapy_sessions)]
struct SessionListingRow {
    id: String,
    patient_id: String,
    therapist_id: String,
    session_date: NaiveDateTime,
    duration_seconds: i32,
    status: String,
    therapist_summary: Option<String>,
    extracted_notes: Option<String>,
}

/// Of the extracted notes, the one field a listing shows.
#[derive(serde::Deserialize)]
struct KeyTopics {
    #[serde(default)]
    key_topics: Vec<String>,
}

/// One page of a session listing (see `SessionsPage`), read by keyset: each page starts where
/// the last one ended, so reading every page costs one pass over the sessions, however many.
///
/// The (session date, id) index gives the order; the patient is tested on each entry (`||
/// ''` keeps the planner from reading every session of the patients and sorting them for each
/// page instead).
pub fn page_sessions(
    conn: &mut DbConnection,
    page: &SessionsPage<'_>,
) -> Result<Vec<SessionListing>, StoreError> {
    if page.patients.is_empty() || page.limit == 0 {
        return Ok(Vec::new());
    }
    let patients: Vec<String> = page.patients.iter().map(Uuid::to_string).collect();
    let mut query = therapy_sessions::table
        .left_join(users::table.on(users::id.eq(therapy_sessions::patient_id)))
        .filter(therapy_sessions::patient_id.concat("").eq_any(patients))
        .select((
            SessionListingRow::as_select(),
            users::first_name.nullable(),
            users::last_name.nullable(),
        ))
        .into_boxed();
    if let Some(status) = page.status {
        query = query.filter(therapy_sessions::status.eq(status.as_str()));
    }
    if let Some(from) = page.from {
        query = query.filter(therapy_sessions::session_date.ge(from.and_time(Default::default())));
    }
    if let Some(to) = page.to.and_then(|to| to.succ_opt()) {
        query = query.filter(therapy_sessions::session_date.lt(to.and_time(Default::default())));
    }
    if let Some((date, id)) = page.after {
        let (date, id) = (naive(date), id.to_string());
        query = query.filter(
            therapy_sessions::session_date.ge(date).and(
                therapy_sessions::session_date
                    .gt(date)
                    .or(therapy_sessions::id.gt(id)),
            ),
        );
    }
    let rows: Vec<(SessionListingRow, Option<String>, Option<String>)> = query
        .order((
            therapy_sessions::session_date.asc(),
            therapy_sessions::id.asc(),
        ))
        .limit(i64::try_from(page.limit).unwrap_or(i64::MAX))
        .load(conn)?;
    rows.into_iter()
        .map(|(row, first, last)| {
            Ok(SessionListing {
                id: id("therapy_sessions.id", &row.id)?,
                patient_id: id("therapy_sessions.patient_id", &row.patient_id)?,
                patient_name: full_name(
                    first.as_deref().unwrap_or_default(),
                    last.as_deref().unwrap_or_default(),
                ),
                therapist_id: id("therapy_sessions.therapist_id", &row.therapist_id)?,
                session_date: utc(row.session_date),
                duration_seconds: row.duration_seconds,
                status: word("therapy_sessions.status", &row.status)?,
                key_topics: row
                    .extracted_notes
                    .map(|notes| {
                        json::<KeyTopics>("therapy_sessions.extracted_notes", &notes)
                            .map(|n| n.key_topics)
                    })
                    .transpose()?,
                therapist_summary: row.therapist_summary,
            })
        })
        .collect()
}

/// How many sessions are in each status, in status order.
pub fn count_sessions_by_status(
    conn: &mut DbConnection,
) -> Result<Vec<(SessionStatus, i64)>, StoreError> {
    let rows: Vec<(String, i64)> = therapy_sessions::table
        .group_by(therapy_sessions::status)
        .select((therapy_sessions::status, diesel::dsl::count_star()))
        .load(conn)?;
    let mut counts = rows
        .into_iter()
        .map(|(status, n)| Ok((word("therapy_sessions.status", &status)?, n)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    counts.sort();
    Ok(counts)
}

// ---- goals ----

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = goals)]
struct GoalRow {
    id: String,
    patient_id: String,
    therapist_id: String,
    description: String,
    baseline: String,
    current: String,
    progress_percentage: i32,
    status: String,
    target_date: Option<NaiveDate>,
    created_at: NaiveDateTime,
}

impl GoalRow {
    fn of(goal: &Goal) -> GoalRow {
        GoalRow {
            id: goal.id.to_string(),
            patient_id: goal.patient_id.to_string(),
            therapist_id: goal.therapist_id.to_string(),
            description: goal.description.clone(),
            baseline: goal.baseline.clone(),
            current: goal.current.clone(),
            progress_percentage: goal.progress_percentage,
            status: goal.status.as_str().to_owned(),
            target_date: goal.target_date,
            created_at: naive(goal.created_at),
        }
    }

    fn into_goal(self) -> Result<Goal, StoreError> {
        Ok(Goal {
            id: id("goals.id", &self.id)?,
            patient_id: id("goals.patient_id", &self.patient_id)?,
            therapist_id: id("goals.therapist_id", &self.therapist_id)?,
            description: self.description,
            baseline: self.baseline,
            current: self.current,
            progress_percentage: self.progress_percentage,
            status: word("goals.status", &self.status)?,
            target_date: self.target_date,
            created_at: utc(self.created_at),
        })
    }
}

/// Adds a treatment goal.
pub fn insert_goal(conn: &mut DbConnection, goal: &Goal) -> Result<(), StoreError> {
    diesel::insert_into(goals::table)
        .values(GoalRow::of(goal))
        .execute(conn)
        .map_err(|err| insert_error("goals", err))?;
    Ok(())
}

/// A patient's goals, oldest first.
pub fn list_goals(conn: &mut DbConnection, patient_id: Uuid) -> Result<Vec<Goal>, StoreError> {
    goals::table
        .filter(goals::patient_id.eq(patient_id.to_string()))
        .select(GoalRow::as_select())
        .order((goals::created_at.asc(), goals::id.asc()))
        .load(conn)?
        .into_iter()
        .map(GoalRow::into_goal)
        .collect()
}

/// One page of a goal listing (see `GoalsPage`), read by keyset in (created at, id) order, as
/// `page_sessions` reads sessions.
pub fn page_goals(
    conn: &mut DbConnection,
    page: &GoalsPage<'_>,
) -> Result<Vec<GoalListing>, StoreError> {
    if page.patients.is_empty() || page.limit == 0 {
        return Ok(Vec::new());
    }
    let patients: Vec<String> = page.patients.iter().map(Uuid::to_string).collect();
    let mut query = goals::table
        .left_join(users::table.on(users::id.eq(goals::patient_id)))
        .filter(goals::patient_id.concat("").eq_any(patients))
        .select((
            GoalRow::as_select(),
            users::first_name.nullable(),
            users::last_name.nullable(),
        ))
        .into_boxed();
    if let Some(status) = page.status {
        query = query.filter(goals::status.eq(status.as_str()));
    }
    if let Some((created, id)) = page.after {
        let (created, id) = (naive(created), id.to_string());
        query = query.filter(
            goals::created_at
                .ge(created)
                .and(goals::created_at.gt(created).or(goals::id.gt(id))),
        );
    }
    let rows: Vec<(GoalRow, Option<String>, Option<String>)> = query
        .order((goals::created_at.asc(), goals::id.asc()))
        .limit(i64::try_from(page.limit).unwrap_or(i64::MAX))
        .load(conn)?;
    rows.into_iter()
        .map(|(row, first, last)| {
            Ok(GoalListing {
                goal: row.into_goal()?,
                patient_name: full_name(
                    first.as_deref().unwrap_or_default(),
                    last.as_deref().unwrap_or_default(),
                ),
            })
        })
        .collect()
}

// ---- assessments ----

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = assessments)]
struct AssessmentRow {
    id: String,
    patient_id: String,
    instrument: String,
    score: i32,
    administered_on: NaiveDate,
    notes: Option<String>,
}

impl AssessmentRow {
    fn of(assessment: &Assessment) -> AssessmentRow {
        AssessmentRow {
            id: assessment.id.to_string(),
            patient_id: assessment.patient_id.to_string(),
            instrument: assessment.instrument.clone(),
            score: assessment.score,
            administered_on: assessment.administered_on,
            notes: assessment.notes.clone(),
        }
    }

    fn into_assessment(self) -> Result<Assessment, StoreError> {
        Ok(Assessment {
            id: id("assessments.id", &self.id)?,
            patient_id: id("assessments.patient_id", &self.patient_id)?,
            instrument: self.instrument,
            score: self.score,
            administered_on: self.administered_on,
            notes: self.notes,
        })
    }
}

/// Adds an assessment.
pub fn insert_assessment(
    conn: &mut DbConnection,
    assessment: &Assessment,
) -> Result<(), StoreError> {
    diesel::insert_into(assessments::table)
        .values(AssessmentRow::of(assessment))
        .execute(conn)
        .map_err(|err| insert_error("assessments", err))?;
    Ok(())
}

/// A patient's assessments administered between `from` and `to` inclusive (either optional),
/// oldest first.
pub fn list_assessments(
    conn: &mut DbConnection,
    patient_id: Uuid,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<Vec<Assessment>, StoreError> {
    let mut query = assessments::table
        .filter(assessments::patient_id.eq(patient_id.to_string()))
        .select(AssessmentRow::as_select())
        .into_boxed();
    if let Some(from) = from {
        query = query.filter(assessments::administered_on.ge(from));
    }
    if let Some(to) = to {
        query = query.filter(assessments::administered_on.le(to));
    }
    query
        .order((
            assessments::administered_on.asc(),
            assessments::instrument.asc(),
        ))
        .load(conn)?
        .into_iter()
        .map(AssessmentRow::into_assessment)
        .collect()
}

// ---- diagnoses ----

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = diagnoses)]
struct DiagnosisRow {
    id: String,
    patient_id: String,
    icd10_code: String,
    description: String,
    is_primary: bool,
    diagnosed_on: NaiveDate,
}

impl DiagnosisRow {
    fn of(diagnosis: &Diagnosis) -> DiagnosisRow {
        DiagnosisRow {
            id: diagnosis.id.to_string(),
            patient_id: diagnosis.patient_id.to_string(),
            icd10_code: diagnosis.icd10_code.clone(),
            description: diagnosis.description.clone(),
            is_primary: diagnosis.is_primary,
            diagnosed_on: diagnosis.diagnosed_on,
        }
    }

    fn into_diagnosis(self) -> Result<Diagnosis, StoreError> {
        Ok(Diagnosis {
            id: id("diagnoses.id", &self.id)?,
            patient_id: id("diagnoses.patient_id", &self.patient_id)?,
            icd10_code: self.icd10_code,
            description: self.description,
            is_primary: self.is_primary,
            diagnosed_on: self.diagnosed_on,
        })
    }
}

/// Adds a diagnosis.
pub fn insert_diagnosis(conn: &mut DbConnection, diagnosis: &Diagnosis) -> Result<(), StoreError> {
    diesel::insert_into(diagnoses::table)
        .values(DiagnosisRow::of(diagnosis))
        .execute(conn)
        .map_err(|err| insert_error("diagnoses", err))?;
    Ok(())
}

/// A patient's diagnoses, the primary first, then by date.
pub fn list_diagnoses(
    conn: &mut DbConnection,
    patient_id: Uuid,
) -> Result<Vec<Diagnosis>, StoreError> {
    diagnoses::table
        .filter(diagnoses::patient_id.eq(patient_id.to_string()))
        .select(DiagnosisRow::as_select())
        .order((
            diagnoses::is_primary.desc(),
            diagnoses::diagnosed_on.asc(),
            diagnoses::id.asc(),
        ))
        .load(conn)?
        .into_iter()
        .map(DiagnosisRow::into_diagnosis)
        .collect()
}

// ---- treatment_plans ----

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = treatment_plans)]
struct PlanRow {
    id: String,
    patient_id: String,
    therapist_id: String,
    modality: String,
    frequency: String,
    prognosis: String,
    summary: String,
    start_date: NaiveDate,
    review_date: Option<NaiveDate>,
    medical_necessity: Option<String>,
}

impl PlanRow {
    fn of(plan: &TreatmentPlan) -> PlanRow {
        PlanRow {
            id: plan.id.to_string(),
            patient_id: plan.patient_id.to_string(),
            therapist_id: plan.therapist_id.to_string(),
            modality: plan.modality.clone(),
            frequency: plan.frequency.clone(),
            prognosis: plan.prognosis.clone(),
            summary: plan.summary.clone(),
            start_date: plan.start_date,
            review_date: plan.review_date,
            medical_necessity: plan.medical_necessity.clone(),
        }
    }

    fn into_plan(self) -> Result<TreatmentPlan, StoreError> {
        Ok(TreatmentPlan {
            id: id("treatment_plans.id", &self.id)?,
            patient_id: id("treatment_plans.patient_id", &self.patient_id)?,
            therapist_id: id("treatment_plans.therapist_id", &self.therapist_id)?,
            modality: self.modality,
            frequency: self.frequency,
            prognosis: self.prognosis,
            summary: self.summary,
            start_date: self.start_date,
            review_date: self.review_date,
            medical_necessity: self.medical_necessity,
        })
    }
}

/// Adds a treatment plan.
pub fn insert_treatment_plan(
    conn: &mut DbConnection,
    plan: &TreatmentPlan,
) -> Result<(), StoreError> {
    diesel::insert_into(treatment_plans::table)
        .values(PlanRow::of(plan))
        .execute(conn)
        .map_err(|err| insert_error("treatment_plans", err))?;
    Ok(())
}

/// A patient's treatment plans, oldest first.
pub fn list_treatment_plans(
    conn: &mut DbConnection,
    patient_id: Uuid,
) -> Result<Vec<TreatmentPlan>, StoreError> {
    treatment_plans::table
        .filter(treatment_plans::patient_id.eq(patient_id.to_string()))
        .select(PlanRow::as_select())
        .order((treatment_plans::start_date.asc(), treatment_plans::id.asc()))
        .load(conn)?
        .into_iter()
        .map(PlanRow::into_plan)
        .collect()
}
