//! Where clinical records come from: the `ClinicalSource` trait, implemented over the engine's
//! own tables (`StoreSource`) and over records held in memory (`PracticeSource`, for the fixtures
//! and for tests). An embedding service implements it over its own database.

use export_domain::{
    GoalListing, GoalsPage, Practice, Role, SessionListing, SessionStatus, SessionsPage,
    TherapistPatient, User,
};
use export_store::{Store, StoreError, clinical};
use uuid::Uuid;

/// Why records could not be read. Ids only.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source answered, but not with the records.
    #[error("the clinical source failed: {0}")]
    Failed(String),
    /// The source could not be reached (its database is down, refuses connections, or has no
    /// free connection): trying again later may succeed. The API answers 503.
    #[error("the clinical source is unavailable: {0}")]
    Unavailable(String),
}

impl SourceError {
    /// Whether trying again later may succeed because the source could not be reached.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, SourceError::Unavailable(_))
    }
}

/// The clinical records the engine reads.
pub trait ClinicalSource: Send + Sync {
    /// A user, if they exist.
    fn user(&self, user_id: Uuid) -> Result<Option<User>, SourceError>;
    /// The relationship between a therapist and a patient, active or not.
    fn relationship(
        &self,
        therapist_id: Uuid,
        patient_id: Uuid,
    ) -> Result<Option<TherapistPatient>, SourceError>;
    /// The patients a therapist actively cares for.
    fn patients_of(&self, therapist_id: Uuid) -> Result<Vec<Uuid>, SourceError>;
    /// The patient each of these sessions belongs to, for the sessions that exist.
    fn session_patients(&self, session_ids: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>, SourceError>;
    /// Everything about one patient: the patient, their therapists and relationships, sessions,
    /// goals, assessments, diagnoses and plans.
    fn patient_records(&self, patient_id: Uuid) -> Result<Practice, SourceError>;
    /// One page of the sessions of some patients (the `sessions` dataset reads them a page at a
    /// time). The default makes each page from every patient's `patient_records`, which costs a
    /// pass over all their records per page: a source over a database should read the page
    /// itself, by keyset, as `StoreSource` does.
    fn sessions_page(&self, page: &SessionsPage<'_>) -> Result<Vec<SessionListing>, SourceError> {
        let mut records = Vec::with_capacity(page.patients.len());
        for &patient_id in page.patients {
            records.push(self.patient_records(patient_id)?);
        }
        Ok(sessions_page_of(owned(page.patients, &records), page))
    }
    /// One page of the goals of some patients; the default is made as `sessions_page`'s is.
    fn goals_page(&self, page: &GoalsPage<'_>) -> Result<Vec<GoalListing>, SourceError> {
        let mut records = Vec::with_capacity(page.patients.len());
        for &patient_id in page.patients {
            records.push(self.patient_records(patient_id)?);
        }
        Ok(goals_page_of(owned(page.patients, &records), page))
    }
}

/// Each patient's records, with the patient whose records they are.
fn owned<'p>(
    patients: &'p [Uuid],
    records: &'p [Practice],
) -> impl Iterator<Item = (Option<Uuid>, &'p Practice)> {
    patients
        .iter()
        .map(Some)
        .zip(records)
        .map(|(patient, practice)| (patient.copied(), practice))
}

/// The name of `patient_id` among `practice`'s users; empty when they are not there.
fn patient_name(practice: &Practice, patient_id: Uuid) -> String {
    practice
        .users
        .iter()
        .find(|u| u.id == patient_id)
        .map(|u| u.full_name())
        .unwrap_or_default()
}

/// A page of sessions made from records in memory.
///
/// Each practice is one patient's records (only that patient's rows are taken from it) or, with
/// no patient, records of many (every row of a queried patient is).
fn sessions_page_of<'p>(
    practices: impl Iterator<Item = (Option<Uuid>, &'p Practice)>,
    page: &SessionsPage<'_>,
) -> Vec<SessionListing> {
    let mut listed: Vec<SessionListing> = Vec::new();
    for (owner, practice) in practices {
        for session in &practice.therapy_sessions {
            let date = session.session_date.date_naive();
            let wanted = owner.is_none_or(|p| p == session.patient_id)
                && page.patients.contains(&session.patient_id)
                && page.status.is_none_or(|want| session.status == want)
                && page.from.is_none_or(|from| date >= from)
                && page.to.is_none_or(|to| date <= to)
                && page
                    .after
                    .is_none_or(|after| (session.session_date, session.id) > after);
            if wanted {
                let name = patient_name(practice, session.patient_id);
                listed.push(SessionListing::of(session, &name));
            }
        }
    }
    listed.sort_by_key(|l| (l.session_date, l.id));
    listed.truncate(page.limit);
    listed
}

/// A page of goals made from records in memory.
///
/// Each practice is one patient's records (only that patient's rows are taken from it) or, with
/// no patient, records of many (every row of a queried patient is).
fn goals_page_of<'p>(
    practices: impl Iterator<Item = (Option<Uuid>, &'p Practice)>,
    page: &GoalsPage<'_>,
) -> Vec<GoalListing> {
    let mut listed: Vec<GoalListing> = Vec::new();
    for (owner, practice) in practices {
        for goal in &practice.goals {
            let wanted = owner.is_none_or(|p| p == goal.patient_id)
                && page.patients.contains(&goal.patient_id)
                && page.status.is_none_or(|want| goal.status == want)
                && page
                    .after
                    .is_none_or(|after| (goal.created_at, goal.id) > after);
            if wanted {
                listed.push(GoalListing {
                    goal: goal.clone(),
                    patient_name: patient_name(practice, goal.patient_id),
                });
            }
        }
    }
    listed.sort_by_key(|l| (l.goal.created_at, l.goal.id));
    listed.truncate(page.limit);
    listed
}

/// Records held in memory.
#[derive(Debug, Clone)]
pub struct PracticeSource(pub Practice);

impl ClinicalSource for PracticeSource {
    fn user(&self, user_id: Uuid) -> Result<Option<User>, SourceError> {
        Ok(self.0.users.iter().find(|u| u.id == user_id).cloned())
    }

    fn relationship(
        &self,
        therapist_id: Uuid,
        patient_id: Uuid,
    ) -> Result<Option<TherapistPatient>, SourceError> {
        Ok(self
            .0
            .therapist_patients
            .iter()
            .find(|l| l.therapist_id == therapist_id && l.patient_id == patient_id)
            .cloned())
    }

    fn patients_of(&self, therapist_id: Uuid) -> Result<Vec<Uuid>, SourceError> {
        Ok(self
            .0
            .therapist_patients
            .iter()
            .filter(|l| l.therapist_id == therapist_id && l.is_active)
            .map(|l| l.patient_id)
            .collect())
    }

    fn session_patients(&self, session_ids: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>, SourceError> {
        Ok(self
            .0
            .therapy_sessions
            .iter()
            .filter(|s| session_ids.contains(&s.id))
            .map(|s| (s.id, s.patient_id))
            .collect())
    }

    fn patient_records(&self, patient_id: Uuid) -> Result<Practice, SourceError> {
        Ok(self.0.of_patient(patient_id))
    }

    fn sessions_page(&self, page: &SessionsPage<'_>) -> Result<Vec<SessionListing>, SourceError> {
        Ok(sessions_page_of(std::iter::once((None, &self.0)), page))
    }

    fn goals_page(&self, page: &GoalsPage<'_>) -> Result<Vec<GoalListing>, SourceError> {
        Ok(goals_page_of(std::iter::once((None, &self.0)), page))
    }
}

/// Records in the engine's own clinical tables.
#[derive(Debug, Clone)]
pub struct StoreSource(pub Store);

fn failed(err: StoreError) -> SourceError {
    if err.is_unavailable() {
        SourceError::Unavailable(err.to_string())
    } else {
        SourceError::Failed(err.to_string())
    }
}

impl ClinicalSource for StoreSource {
    fn user(&self, user_id: Uuid) -> Result<Option<User>, SourceError> {
        let mut conn = self.0.connection().map_err(failed)?;
        clinical::get_user(&mut conn, user_id).map_err(failed)
    }

    fn relationship(
        &self,
        therapist_id: Uuid,
        patient_id: Uuid,
    ) -> Result<Option<TherapistPatient>, SourceError> {
        let mut conn = self.0.connection().map_err(failed)?;
        clinical::find_relationship(&mut conn, therapist_id, patient_id).map_err(failed)
    }

    fn patients_of(&self, therapist_id: Uuid) -> Result<Vec<Uuid>, SourceError> {
        let mut conn = self.0.connection().map_err(failed)?;
        Ok(clinical::list_relationships(&mut conn, therapist_id, true)
            .map_err(failed)?
            .into_iter()
            .filter(|l| l.is_active)
            .map(|l| l.patient_id)
            .collect())
    }

    fn session_patients(&self, session_ids: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>, SourceError> {
        let mut conn = self.0.connection().map_err(failed)?;
        Ok(clinical::get_sessions(&mut conn, session_ids)
            .map_err(failed)?
            .into_iter()
            .map(|s| (s.id, s.patient_id))
            .collect())
    }

    fn patient_records(&self, patient_id: Uuid) -> Result<Practice, SourceError> {
        let mut conn = self.0.connection().map_err(failed)?;
        let Some(patient) = clinical::get_user(&mut conn, patient_id).map_err(failed)? else {
            return Ok(Practice::default());
        };
        let links = clinical::list_relationships(&mut conn, patient_id, false).map_err(failed)?;
        let mut users = vec![patient];
        for link in &links {
            if let Some(therapist) =
                clinical::get_user(&mut conn, link.therapist_id).map_err(failed)?
                && therapist.role == Role::Therapist
                && !users.iter().any(|u| u.id == therapist.id)
            {
                users.push(therapist);
            }
        }
        Ok(Practice {
            users,
            therapist_patients: links,
            therapy_sessions: clinical::list_patient_sessions(
                &mut conn,
                patient_id,
                None::<SessionStatus>,
                None,
                None,
            )
            .map_err(failed)?,
            goals: clinical::list_goals(&mut conn, patient_id).map_err(failed)?,
            assessments: clinical::list_assessments(&mut conn, patient_id, None, None)
                .map_err(failed)?,
            diagnoses: clinical::list_diagnoses(&mut conn, patient_id).map_err(failed)?,
            treatment_plans: clinical::list_treatment_plans(&mut conn, patient_id)
                .map_err(failed)?,
        })
    }

    fn sessions_page(&self, page: &SessionsPage<'_>) -> Result<Vec<SessionListing>, SourceError> {
        let mut conn = self.0.connection().map_err(failed)?;
        clinical::page_sessions(&mut conn, page).map_err(failed)
    }

    fn goals_page(&self, page: &GoalsPage<'_>) -> Result<Vec<GoalListing>, SourceError> {
        let mut conn = self.0.connection().map_err(failed)?;
        clinical::page_goals(&mut conn, page).map_err(failed)
    }
}
