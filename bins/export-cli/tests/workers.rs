//! Several `export-cli work` processes sharing one database and 500 jobs: every job completes
//! exactly once (one attempt, one file, one "created" audit entry) and the audit chain stays
//! intact. Runs on SQLite, and on PostgreSQL when EXPORT_TEST_POSTGRES_URL is set.

use std::collections::HashSet;
use std::process::Command;

use chrono::Utc;
use export_core::audit::{ChainReport, verify_store};
use export_core::engine::{EngineConfig, ExportRequest, RequestOrigin};
use export_core::storage::MasterKey;
use export_core::testing::*;
use export_domain::{AuditAction, JobStatus};
use export_store::testing::TestDatabase;
use export_store::{jobs, test_on_both_backends};

const JOBS: usize = 500;
const WORKERS: usize = 3;

test_on_both_backends! {
    worker_processes_complete_every_job_exactly_once,
}

fn worker_processes_complete_every_job_exactly_once(db: &TestDatabase) {
    db.seed_fixtures();
    let storage = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let engine = engine_with(
        db,
        local_files(storage.path(), &master),
        EngineConfig::default(),
    );
    let actor = therapist(MARGARET);
    let request = progress_report_request(NOA, ("2025-01-01", "2025-03-31"), "json");
    let now = Utc::now() - chrono::Duration::seconds(5);
    for _ in 0..JOBS {
        engine
            .submit(
                &actor,
                ExportRequest::ProgressReport(request.clone()),
                None,
                &RequestOrigin::default(),
                now,
            )
            .unwrap();
    }

    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            Command::new(env!("CARGO_BIN_EXE_export-cli"))
                .args([
                    "--database",
                    &db.url,
                    "work",
                    "--name",
                    &format!("worker-{w}"),
                ])
                .arg("--storage")
                .arg(storage.path())
                .env("EXPORT_MASTER_KEY", master.to_hex())
                .env("RUST_LOG", "warn")
                .spawn()
                .unwrap()
        })
        .collect();
    for mut worker in workers {
        let status = worker.wait().unwrap();
        assert!(status.success(), "a worker process ended {status:?}");
    }

    let mut conn = db.store.connection().unwrap();
    assert_eq!(
        jobs::count_jobs_by_status(&mut conn).unwrap(),
        [(JobStatus::Completed, JOBS as i64)]
    );
    let all = jobs::list_jobs(
        &mut conn,
        &jobs::JobFilter {
            limit: 1000,
            ..jobs::JobFilter::of_user(actor.user_id)
        },
    )
    .unwrap();
    assert!(
        all.iter().all(|j| j.attempts == 1),
        "a job was claimed twice"
    );
    let created = db.audit_of(AuditAction::Created);
    let created_jobs: HashSet<_> = created.iter().map(|e| e.entry.export_job_id).collect();
    assert_eq!(
        (created.len(), created_jobs.len()),
        (JOBS, JOBS),
        "one created entry per job"
    );
    assert_eq!(
        std::fs::read_dir(storage.path().join("exports"))
            .unwrap()
            .count(),
        JOBS
    );
    assert!(matches!(
        verify_store(&db.store).unwrap(),
        ChainReport::Intact { .. }
    ));
}
