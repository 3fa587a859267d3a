//! Where clinical records come from: the `ClinicalSource` trait, implemented over the engine's
//! own tables (`StoreSource`) and over records held in memory (`PracticeSource`, for the fixtures
//! and for tests). An embedding service implements it over its own database.

use export_domain::{Practice, Role, SessionStatus, TherapistPatient, User};
use export_store::{Store, StoreError, clinical};
use uuid::Uuid;

/// Why records could not be read. Ids only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
}
