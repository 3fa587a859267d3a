//! Who a caller is comes from the records: `ExportEngine::identify` accepts a token's subject and
//! role claim only when the clinical source (here an embedding service's, in memory) knows the
//! user with that stored role, and says "unavailable" when the source cannot be reached.

use std::path::Path;
use std::sync::Arc;

use export_core::engine::{Actor, EngineConfig, EngineError, ExportEngine, IdentityError};
use export_core::source::{ClinicalSource, PracticeSource, SourceError};
use export_core::storage::{LocalFileStore, MasterKey};
use export_core::testing::*;
use export_domain::{Practice, Role, TherapistPatient, User};
use export_store::testing::TestDatabase;
use uuid::Uuid;

/// A source whose database does not answer.
struct Unreachable;

impl ClinicalSource for Unreachable {
    fn user(&self, _: Uuid) -> Result<Option<User>, SourceError> {
        Err(SourceError::Unavailable("connection refused".into()))
    }
    fn relationship(&self, _: Uuid, _: Uuid) -> Result<Option<TherapistPatient>, SourceError> {
        Err(SourceError::Unavailable("connection refused".into()))
    }
    fn patients_of(&self, _: Uuid) -> Result<Vec<Uuid>, SourceError> {
        Err(SourceError::Unavailable("connection refused".into()))
    }
    fn session_patients(&self, _: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>, SourceError> {
        Err(SourceError::Unavailable("connection refused".into()))
    }
    fn patient_records(&self, _: Uuid) -> Result<Practice, SourceError> {
        Err(SourceError::Unavailable("connection refused".into()))
    }
}

fn engine_over(db: &TestDatabase, files: &Path, source: Arc<dyn ClinicalSource>) -> ExportEngine {
    let store = LocalFileStore::new(files, MasterKey::generate()).unwrap();
    ExportEngine::new(
        db.store.clone(),
        Arc::new(store),
        source,
        EngineConfig::default(),
    )
}

fn id(text: &str) -> Uuid {
    Uuid::parse_str(text).unwrap()
}

#[test]
fn the_callers_role_is_the_stored_role_and_a_claim_that_disagrees_is_refused() {
    let practice = export_store::testing::fixture_practice();
    let db = TestDatabase::sqlite();
    let files = tempfile::tempdir().unwrap();
    let engine = engine_over(&db, files.path(), Arc::new(PracticeSource(practice)));

    assert_eq!(
        engine.identify(id(MARGARET), Role::Therapist).unwrap(),
        Actor {
            user_id: id(MARGARET),
            role: Role::Therapist
        }
    );
    assert_eq!(
        engine.identify(id(HELEN), Role::Admin).unwrap().role,
        Role::Admin
    );
    for (user, claim) in [
        (MARGARET, Role::Admin),
        (MARGARET, Role::Patient),
        (HELEN, Role::Therapist),
    ] {
        match engine.identify(id(user), claim) {
            Err(EngineError::Unidentified(IdentityError::RoleMismatch)) => {}
            other => panic!("{user} claiming {claim}: {other:?}"),
        }
    }
    match engine.identify(Uuid::new_v4(), Role::Admin) {
        Err(err @ EngineError::Unidentified(IdentityError::UnknownUser)) => {
            assert_eq!(
                err.to_string(),
                "not identified: the token's subject is no known user"
            );
            assert!(!err.is_unavailable());
        }
        other => panic!("an unknown user: {other:?}"),
    }
}

#[test]
fn an_unreachable_source_is_unavailable_not_a_refusal() {
    let db = TestDatabase::sqlite();
    let files = tempfile::tempdir().unwrap();
    let engine = engine_over(&db, files.path(), Arc::new(Unreachable));
    let err = engine.identify(id(MARGARET), Role::Therapist).unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(!matches!(err, EngineError::Unidentified(_)), "{err}");
}

/// A source that answers, wrongly: its error text names a patient, as a host's might.
struct Broken;

impl ClinicalSource for Broken {
    fn user(&self, _: Uuid) -> Result<Option<User>, SourceError> {
        Err(SourceError::Failed(
            "row for Zoë Brontë-Lefèvre is malformed".into(),
        ))
    }
    fn relationship(&self, _: Uuid, _: Uuid) -> Result<Option<TherapistPatient>, SourceError> {
        Err(SourceError::Failed(
            "row for Zoë Brontë-Lefèvre is malformed".into(),
        ))
    }
    fn patients_of(&self, _: Uuid) -> Result<Vec<Uuid>, SourceError> {
        Err(SourceError::Failed(
            "row for Zoë Brontë-Lefèvre is malformed".into(),
        ))
    }
    fn session_patients(&self, _: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>, SourceError> {
        Err(SourceError::Failed(
            "row for Zoë Brontë-Lefèvre is malformed".into(),
        ))
    }
    fn patient_records(&self, _: Uuid) -> Result<Practice, SourceError> {
        Err(SourceError::Failed(
            "row for Zoë Brontë-Lefèvre is malformed".into(),
        ))
    }
}

#[test]
fn a_submit_the_source_cannot_answer_is_audited_as_error_without_its_text() {
    use export_core::engine::{ExportRequest, RequestOrigin};
    use export_domain::{AuditAction, AuditOutcome};

    for (source, what) in [
        (
            Arc::new(Unreachable) as Arc<dyn ClinicalSource>,
            "connection refused",
        ),
        (Arc::new(Broken), "Zoë"),
    ] {
        let db = TestDatabase::sqlite();
        let files = tempfile::tempdir().unwrap();
        let engine = engine_over(&db, files.path(), source);
        let request = progress_report_request(ZOE, ("2025-01-01", "2025-03-31"), "pdf");
        let margaret = Actor {
            user_id: id(MARGARET),
            role: Role::Therapist,
        };
        let refused = engine.submit(
            &margaret,
            ExportRequest::ProgressReport(request),
            None,
            &RequestOrigin::default(),
            chrono::Utc::now(),
        );
        assert!(
            refused.is_err(),
            "{what}: no job without the records' answer"
        );
        let mut conn = db.store.connection().unwrap();
        let entries =
            export_store::audit::list(&mut conn, &export_store::audit::AuditFilter::default())
                .unwrap();
        assert_eq!(entries.len(), 1, "{what}: {entries:?}");
        let entry = &entries[0].entry;
        assert_eq!(
            (entry.action, entry.outcome),
            (AuditAction::Requested, AuditOutcome::Error),
            "{what}: an internal failure is an error, not a decision"
        );
        assert_eq!(entry.metadata, serde_json::json!({"reason": "internal"}));
        assert!(
            !format!("{entries:?}").contains(what),
            "{what}: the error text is not kept: {entries:?}"
        );
    }
}
