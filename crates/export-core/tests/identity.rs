//! Who a caller is comes from the records: `ExportEngine::identify` accepts a token's subject and
//! role claim only when the clinical source (here an embedding service's, in memory) knows the
//! user with that stored role, and says "unavailable" when the source cannot be reached.

use std::path::Path;
use std::sync::Arc;

use export_core::engine::{Actor, EngineConfig, EngineError, ExportEngine, IdentityError};
use export_core::source::{ClinicalSource, PracticeSource, SourceError};
use export_core::storage::{LocalFileStore, MasterKey};
use export_domain::{Practice, Role, TherapistPatient, User};
use export_store::testing::TestDatabase;
use uuid::Uuid;

const MARGARET: &str = "7d25348d-75bb-5e22-8073-05bfd9b3230c"; // a therapist
const HELEN: &str = "5c84fc77-b00f-59f3-b3f1-c41f6fb7eee9"; // the administrator

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
    let practice = export_store::seed::load_practice(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures"
    )))
    .unwrap();
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
