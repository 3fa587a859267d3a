//! What the tests of this crate and the crates above it share, on top of the store's kit
//! (re-exported here): engines over a test database, the demo actors, the readers of rendered
//! files. Enabled by the `testing` feature.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use export_domain::{ExportJob, Role};
use export_store::jobs;
use uuid::Uuid;

use crate::engine::{Actor, EngineConfig, ExportEngine};
use crate::source::StoreSource;
use crate::storage::{FileStore, LocalFileStore, MasterKey};

pub use export_store::testing::*;

/// Margaret, the fixtures' therapist whose patients (Noa, Zoë) most tests export.
pub const MARGARET: &str = "7d25348d-75bb-5e22-8073-05bfd9b3230c";
/// Daniel, José's former therapist (the relationship is inactive).
pub const DANIEL: &str = "97b930e0-79af-5b44-83f0-6df6f68564d7";
/// Helen, the practice's administrator.
pub const HELEN: &str = "5c84fc77-b00f-59f3-b3f1-c41f6fb7eee9";
/// Margaret's patient with a Hebrew name.
pub const NOA: &str = "54b440a5-f8fe-5f5d-bf49-e04fc5321bf1";
/// Margaret's patient whose surname (Brontë-Lefèvre) tests look for.
pub const ZOE: &str = "4333a588-c713-5117-85aa-6c9dc288e1df";
/// Daniel's former patient.
pub const JOSE: &str = "8c9f7ed2-c5e0-5006-b595-2dde87a7cbda";
/// A patient who is not Margaret's.
pub const LUKASZ: &str = "94c319c2-8698-5dbc-bff1-889f6cb77255";

/// How long any one awaited event may take before a test fails: far more than it needs.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// The job `id` as the database holds it now.
pub fn job_now(db: &TestDatabase, id: Uuid) -> ExportJob {
    let mut conn = db.store.connection().expect("a connection");
    jobs::get_job(&mut conn, id)
        .expect("read the job")
        .expect("the job exists")
}

/// Reads the job until `done` holds for it and returns it then; fails after `PATIENCE`.
pub fn wait_for_job(
    db: &TestDatabase,
    id: Uuid,
    what: &str,
    mut done: impl FnMut(&ExportJob) -> bool,
) -> ExportJob {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let job = job_now(db, id);
        if done(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {PATIENCE:?}; the job is {:?}, attempt {}, lease {:?} until {:?}",
            job.status,
            job.attempts,
            job.lease_owner,
            job.lease_expires_at
        );
        // The interval between two reads of an observable state, not a guess at how long
        // anything takes.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An engine over `db`'s records (not seeded here) storing its files in `files`.
pub fn engine_with(
    db: &TestDatabase,
    files: Arc<dyn FileStore>,
    config: EngineConfig,
) -> ExportEngine {
    ExportEngine::new(
        db.store.clone(),
        files,
        Arc::new(StoreSource(db.store.clone())),
        config,
    )
}

/// An engine over `db`'s records (not seeded here) with `config`, storing its files in the
/// folder `files` under a fresh master key.
pub fn engine_in(db: &TestDatabase, files: &Path, config: EngineConfig) -> ExportEngine {
    engine_with(db, local_files(files, &MasterKey::generate()), config)
}

/// An engine over `db`, seeded with the fixtures, storing its files in the folder `files` under
/// a fresh master key.
pub fn engine(db: &TestDatabase, files: &Path) -> ExportEngine {
    db.seed_fixtures();
    engine_in(db, files, EngineConfig::default())
}

/// Encrypted files in the folder `dir` under `master`.
pub fn local_files(dir: &Path, master: &MasterKey) -> Arc<LocalFileStore> {
    Arc::new(LocalFileStore::new(dir, master.clone()).expect("a file store in the folder"))
}

/// A checked progress report of `patient` from `start` to `end` (`YYYY-MM-DD`) in `format`.
pub fn progress_report_request(
    patient: &str,
    (start, end): (&str, &str),
    format: &str,
) -> export_domain::ProgressReportRequest {
    export_domain::ProgressReportInput {
        patient_id: patient.into(),
        start_date: start.into(),
        end_date: end.into(),
        format: format.into(),
        ..Default::default()
    }
    .validate()
    .expect("a valid progress report request")
}

/// The user `id` acting as `role`.
pub fn actor(id: &str, role: Role) -> Actor {
    Actor {
        user_id: Uuid::parse_str(id).expect("a user id"),
        role,
    }
}

/// The user `id` acting as a therapist.
pub fn therapist(id: &str) -> Actor {
    actor(id, Role::Therapist)
}
