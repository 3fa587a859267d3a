//! Roles apart on one PostgreSQL database: an API process and two worker processes share the
//! database and a storage folder; 200 jobs submitted over HTTP all complete exactly once although
//! one worker is killed with SIGKILL midway. Needs EXPORT_TEST_POSTGRES_URL (skipped loudly
//! without it).

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use export_core::audit::{ChainReport, verify_store};
use export_domain::{AuditAction, JobStatus};
use export_store::jobs;
use export_store::testing::TestDatabase;

const JOBS: usize = 200;

fn worker(url: &str, storage: &std::path::Path, log: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_export-server"))
        .args(["--role", "worker"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EXPORT_DATABASE_URL", url)
        .env("EXPORT_STORAGE_DIR", storage)
        .env("EXPORT_MASTER_KEY", MASTER_KEY)
        .env("EXPORT_TOKEN_SECRET", SECRET)
        .env("EXPORT_WORKERS", "2")
        .env("EXPORT_LEASE_SECONDS", "5")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn completed(db: &TestDatabase) -> i64 {
    let mut conn = db.store.connection().unwrap();
    jobs::count_jobs_by_status(&mut conn)
        .unwrap()
        .iter()
        .find(|(s, _)| *s == JobStatus::Completed)
        .map_or(0, |(_, c)| *c)
}

#[test]
fn an_api_process_and_two_workers_complete_every_job_once_though_one_is_killed() {
    let Some(db) = TestDatabase::postgres("an_api_process_and_two_workers") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let storage = shared.path().join("files");
    let storage_text = storage.display().to_string();
    let api = Server::start(
        &db,
        &[
            ("EXPORT_ROLE", "api"),
            ("EXPORT_STORAGE_DIR", &storage_text),
            ("EXPORT_EXPORTS_PER_HOUR", "10000"),
        ],
    );
    let margaret = token(MARGARET, "therapist");
    let body = serde_json::json!({"patient_id": ZOE, "start_date": "2024-01-01",
        "end_date": "2026-12-31", "format": "pdf"})
    .to_string();
    let mut ids = Vec::new();
    for _ in 0..JOBS {
        let reply = post(
            &api,
            "/api/v1/export/progress-report",
            Some(&margaret),
            &body,
        );
        assert_eq!(reply.status, 202, "{}", reply.text());
        ids.push(reply.json()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(completed(&db), 0, "the API process runs no workers");

    let mut first = worker(&db.url, &storage, &shared.path().join("first.log"));
    let mut second = worker(&db.url, &storage, &shared.path().join("second.log"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while completed(&db) < (JOBS / 4) as i64 {
        assert!(Instant::now() < deadline, "the workers made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap(); // SIGKILL, whatever it was doing
    first.wait().unwrap();
    let killed_at = completed(&db);
    assert!(killed_at < JOBS as i64, "the kill came midway");

    while completed(&db) < JOBS as i64 {
        assert!(
            Instant::now() < deadline,
            "not every job completed: {} of {JOBS}",
            completed(&db)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(terminate(&mut second).success(), "the worker stops cleanly");

    // Every job once: completed, one "created" entry each, one file each.
    let mut conn = db.store.connection().unwrap();
    let all: Vec<_> = ids
        .iter()
        .map(|id| {
            jobs::get_job(&mut conn, id.parse().unwrap())
                .unwrap()
                .unwrap()
        })
        .collect();
    assert!(all.iter().all(|j| j.status == JobStatus::Completed));
    let retried = all.iter().filter(|j| j.attempts > 1).count();
    assert!(
        retried <= 2,
        "only jobs the killed worker held ran again ({retried})"
    );
    let created = db.audit_of(AuditAction::Created);
    let created_jobs: HashSet<_> = created.iter().map(|e| e.entry.export_job_id).collect();
    assert_eq!((created.len(), created_jobs.len()), (JOBS, JOBS));
    let files: Vec<_> = std::fs::read_dir(storage.join("exports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".pdf"))
        .collect();
    let expected: HashSet<String> = all
        .iter()
        .map(|j| {
            j.file_key
                .clone()
                .unwrap()
                .trim_start_matches("exports/")
                .to_owned()
        })
        .collect();
    assert!(
        expected.iter().all(|f| files.contains(f)),
        "every completed job's file is there"
    );
    assert!(matches!(
        verify_store(&db.store).unwrap(),
        ChainReport::Intact { .. }
    ));
    // The API serves what the workers made.
    let file = get(
        &api,
        &format!("/api/v1/export/download/{}", ids[0]),
        Some(&margaret),
    );
    assert_eq!(file.status, 200);
    assert!(file.body.starts_with(b"%PDF-"));
    assert!(api.stop().success());
}
