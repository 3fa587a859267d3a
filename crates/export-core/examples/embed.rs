//! A host service embedding the export engine with its own `ClinicalSource`: its records live in
//! its own structures (here, a map), the engine keeps jobs in SQLite and files in a directory.
//! Run with `cargo run -p export-core --example embed`; CI runs it.

#![allow(clippy::print_stdout)] // an example shows its result

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use chrono::{NaiveDate, TimeZone, Utc};
use export_core::dataset::{Audience, Dataset, DatasetError, DatasetQuery, FilterSpec};
use export_core::engine::{Actor, EngineConfig, ExportEngine, ExportRequest, RequestOrigin};
use export_core::source::{ClinicalSource, SourceError};
use export_core::storage::{LocalFileStore, MasterKey};
use export_domain::{
    DatasetInput, ExtractedNotes, Practice, RelationshipType, Role, SessionNotesInput,
    SessionStatus, TherapistPatient, TherapySession, User,
};
use export_render::{Column, ColumnKind, RowSource, TextRows};
use uuid::Uuid;

/// The host's own records: one therapist, one patient, their sessions.
struct HostRecords {
    users: HashMap<Uuid, User>,
    sessions: Vec<TherapySession>,
    therapist: Uuid,
    patient: Uuid,
}

impl ClinicalSource for HostRecords {
    fn user(&self, user_id: Uuid) -> Result<Option<User>, SourceError> {
        Ok(self.users.get(&user_id).cloned())
    }

    fn relationship(
        &self,
        therapist_id: Uuid,
        patient_id: Uuid,
    ) -> Result<Option<TherapistPatient>, SourceError> {
        Ok(
            (therapist_id == self.therapist && patient_id == self.patient).then(|| {
                TherapistPatient {
                    id: Uuid::from_u128(99),
                    therapist_id,
                    patient_id,
                    relationship_type: RelationshipType::Primary,
                    is_active: true,
                    started_on: NaiveDate::from_ymd_opt(2025, 1, 1).expect("a date"),
                }
            }),
        )
    }

    fn patients_of(&self, therapist_id: Uuid) -> Result<Vec<Uuid>, SourceError> {
        Ok(if therapist_id == self.therapist {
            vec![self.patient]
        } else {
            Vec::new()
        })
    }

    fn session_patients(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>, SourceError> {
        Ok(self
            .sessions
            .iter()
            .filter(|s| ids.contains(&s.id))
            .map(|s| (s.id, s.patient_id))
            .collect())
    }

    fn patient_records(&self, patient_id: Uuid) -> Result<Practice, SourceError> {
        Ok(Practice {
            users: self.users.values().cloned().collect(),
            therapist_patients: self
                .relationship(self.therapist, patient_id)?
                .into_iter()
                .collect(),
            therapy_sessions: self
                .sessions
                .iter()
                .filter(|s| s.patient_id == patient_id)
                .cloned()
                .collect(),
            ..Practice::default()
        })
    }
}

/// A table of the host's own: minutes per session, for its billing team.
struct BillableMinutes(Vec<TherapySession>);

impl Dataset for BillableMinutes {
    fn name(&self) -> &str {
        "billable_minutes"
    }
    fn description(&self) -> &str {
        "Minutes per session of your patients"
    }
    fn audience(&self) -> Audience {
        Audience::Therapists
    }
    fn columns(&self) -> Vec<Column> {
        vec![
            Column::new("session_id", ColumnKind::Text),
            Column::new("minutes", ColumnKind::Text),
        ]
    }
    fn filters(&self) -> &[FilterSpec] {
        &[]
    }
    fn rows(&self, query: &DatasetQuery<'_>) -> Result<Box<dyn RowSource + Send>, DatasetError> {
        // Only the patients the engine says the requester may see.
        let rows = (self.0.iter())
            .filter(|s| query.patients.contains(&s.patient_id))
            .map(|s| {
                vec![
                    Some(s.id.to_string()),
                    Some((s.duration_seconds / 60).to_string()),
                ]
            })
            .collect();
        Ok(Box::new(TextRows::new(self.columns(), rows)))
    }
}

fn person(id: u128, role: Role, first: &str, last: &str) -> User {
    User {
        id: Uuid::from_u128(id),
        email: format!("{first}@example.org").to_lowercase(),
        first_name: first.into(),
        last_name: last.into(),
        role,
        date_of_birth: None,
        created_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        credentials: (role == Role::Therapist).then(|| "LCSW".to_owned()),
    }
}

fn main() -> anyhow::Result<()> {
    let (therapist, patient) = (
        person(1, Role::Therapist, "Ada", "Quill"),
        person(2, Role::Patient, "Ren", "Ito"),
    );
    let sessions = (0..3u32)
        .map(|i| TherapySession {
            id: Uuid::from_u128(10 + i as u128),
            patient_id: patient.id,
            therapist_id: therapist.id,
            session_date: Utc.with_ymd_and_hms(2025, 3, 3 + 7 * i, 14, 0, 0).unwrap(),
            duration_seconds: 3000,
            status: SessionStatus::Processed,
            transcript_text: None,
            transcript_segments: vec![],
            therapist_summary: Some(format!("Session {} went well.", i + 1)),
            patient_summary: None,
            extracted_notes: Some(ExtractedNotes {
                session_mood: "hopeful".into(),
                key_topics: vec!["sleep".into()],
                ..Default::default()
            }),
            created_at: Utc.with_ymd_and_hms(2025, 3, 3 + 7 * i, 15, 0, 0).unwrap(),
        })
        .collect::<Vec<_>>();
    let session_ids: Vec<String> = sessions.iter().map(|s| s.id.to_string()).collect();
    let source = HostRecords {
        users: [
            (therapist.id, therapist.clone()),
            (patient.id, patient.clone()),
        ]
        .into(),
        sessions: sessions.clone(),
        therapist: therapist.id,
        patient: patient.id,
    };

    // The engine: jobs in SQLite, encrypted files in a directory, records from the host.
    let folder = tempfile::tempdir()?;
    let store =
        export_store::Store::open(folder.path().join("exports.db").to_str().expect("UTF-8"))?;
    let files = LocalFileStore::new(folder.path().join("files"), MasterKey::generate())?;
    let engine = ExportEngine::new(
        store,
        Arc::new(files),
        Arc::new(source),
        EngineConfig::default(),
    )
    .with_dataset(Arc::new(BillableMinutes(sessions)));

    let actor = Actor {
        user_id: therapist.id,
        role: Role::Therapist,
    };
    let request = SessionNotesInput {
        session_ids,
        format: "csv".into(),
        ..Default::default()
    }
    .validate()
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = Utc::now();
    let job = engine.submit(
        &actor,
        ExportRequest::SessionNotes(request),
        None,
        &RequestOrigin::default(),
        now,
    )?;
    engine.run_next("host-worker", now)?;
    let (job, mut file) = engine.download(&actor, job.id, &RequestOrigin::default(), now)?;
    let mut csv = String::new();
    file.read_to_string(&mut csv)?;
    anyhow::ensure!(
        csv.lines().count() == 4,
        "expected a header and three sessions"
    );
    println!(
        "job {} is {}: {} bytes, sha256 {}",
        job.id,
        job.status,
        job.file_size_bytes.unwrap_or(0),
        job.sha256.unwrap_or_default()
    );
    print!("{csv}");

    // The host's own dataset, exported like any other.
    let request = DatasetInput {
        format: "json".into(),
        ..Default::default()
    }
    .validate("billable_minutes")
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let job = engine.submit(
        &actor,
        ExportRequest::Dataset(request),
        None,
        &RequestOrigin::default(),
        now,
    )?;
    engine.run_next("host-worker", now)?;
    let (_, mut file) = engine.download(&actor, job.id, &RequestOrigin::default(), now)?;
    let mut json = String::new();
    file.read_to_string(&mut json)?;
    println!("{json}");
    Ok(())
}
