//! A worker process killed with SIGKILL in the middle of a large export: while it rendered, its
//! heartbeat kept the lease, so a second worker did not take the job; once it died, the lease
//! lapsed, the second worker took the job over, and the job completed exactly once: one file,
//! one "created" audit entry, attempts = 2. Runs on SQLite, and on PostgreSQL when
//! EXPORT_TEST_POSTGRES_URL is set. It waits on events, not on the machine's speed: the job's
//! state and lease in the database, and the line the second worker prints once it is claiming.

mod common;

use std::path::Path;

use chrono::Utc;
use common::*;
use export_core::audit::{ChainReport, verify_store};
use export_core::engine::{ExportRequest, RequestOrigin};
use export_core::storage::MasterKey;
use export_domain::{AuditAction, DatasetInput, JobStatus};
use export_store::test_on_both_backends;
use export_store::testing::TestDatabase;
use uuid::Uuid;

/// Sessions added to Zoë's record so that her sessions PDF takes seconds to render.
const EXTRA_SESSIONS: usize = 12_000;
const LEASE_SECONDS: i64 = 1;

/// A worker process named `name`, leasing for `LEASE_SECONDS`.
fn named_worker(
    db: &TestDatabase,
    storage: &Path,
    master: &MasterKey,
    name: &str,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let lease = LEASE_SECONDS.to_string();
    worker(
        db,
        storage,
        master,
        &["--name", name, "--lease-seconds", &lease],
    )
}

test_on_both_backends! {
    a_killed_worker_s_job_completes_exactly_once_after_a_restart,
}

fn a_killed_worker_s_job_completes_exactly_once_after_a_restart(db: &TestDatabase) {
    let practice = db.seed_fixtures();
    let zoe = Uuid::parse_str(ZOE).unwrap();
    enlarge_zoe(db, &practice, EXTRA_SESSIONS, 0x00C0_FFEE_0000);

    let storage = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    // The sweep below takes anything no completed job points to, however fresh.
    let engine = sweeping_engine(db, storage.path(), &master);
    let margaret = therapist(MARGARET);
    let request = DatasetInput {
        format: "pdf".into(),
        filters: [("patient_id".to_owned(), serde_json::Value::from(ZOE))].into(),
        excel: false,
    }
    .validate("sessions")
    .unwrap();
    let job = engine
        .submit(
            &margaret,
            ExportRequest::Dataset(request),
            None,
            &RequestOrigin::default(),
            Utc::now() - chrono::Duration::seconds(1),
        )
        .unwrap();

    let (mut first, _first_log) = named_worker(db, storage.path(), &master, "first");
    wait_for_job(db, job.id, "the first worker claims the job", |job| {
        job.status != JobStatus::Pending
    });
    // The second worker runs alongside, claiming from the moment it says it started; the first
    // one's heartbeat must keep the job from it.
    let (mut second, second_log) = named_worker(db, storage.path(), &master, "second");
    wait_for_line(&second_log, "worker second started");
    let second_started = Utc::now();
    // A renewal that pushes the lease past `second_started` + 2 leases was made a full lease
    // after the second worker began claiming, every 200 ms: without the heartbeat the lease
    // would have lapsed in that time and the second worker taken the job.
    let lease = chrono::Duration::seconds(LEASE_SECONDS);
    let held = wait_for_job(
        db,
        job.id,
        "the first worker renews its lease a full lease after the second worker started",
        |job| {
            job.status != JobStatus::Processing
                || job.lease_owner.as_deref() != Some("first-0")
                || job
                    .lease_expires_at
                    .is_some_and(|until| until >= second_started + lease * 2)
        },
    );
    assert_eq!(
        (held.status, held.attempts, held.lease_owner.as_deref()),
        (JobStatus::Processing, 1, Some("first-0")),
        "a full lease after the second worker started, the first worker still holds the job; \
         if it completed, the export is too small for this test",
    );
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    assert!(second.wait().unwrap().success());
    let done = job_now(db, job.id);
    assert_eq!(
        done.status,
        JobStatus::Completed,
        "{:?}",
        done.error_message
    );
    assert_eq!(done.attempts, 2);
    assert_eq!(done.lease_owner, None);
    let fixture_sessions = practice
        .therapy_sessions
        .iter()
        .filter(|s| s.patient_id == zoe)
        .count();
    assert_eq!(
        done.row_count,
        Some((EXTRA_SESSIONS + fixture_sessions) as i64)
    );

    // The killed worker's unfinished write is left behind until the expiry pass sweeps it.
    let listed = |what: &str| -> Vec<String> {
        let names = stored_names(storage.path());
        assert!(
            names
                .iter()
                .any(|name| done.file_key.as_deref() == Some(&format!("exports/{name}"))),
            "{what}: the job's own file is there: {names:?}"
        );
        names
    };
    let before = listed("before the sweep");
    let report = engine.expire(Utc::now(), false).unwrap();
    assert_eq!(
        (
            report.expired,
            report.swept,
            report.failed,
            report.sweep_failed
        ),
        (0, before.len() as u64 - 1, 0, 0),
        "the sweep removes all but the job's file: {before:?}"
    );
    let files = listed("after the sweep");
    assert_eq!(files.len(), 1, "one file, no leftovers: {files:?}");
    let created = db.audit_of_job(job.id, AuditAction::Created);
    assert_eq!(created.len(), 1, "one created entry");
    assert!(matches!(
        verify_store(&db.store).unwrap(),
        ChainReport::Intact { .. }
    ));
    let (_, mut file) = engine
        .download(&margaret, job.id, &RequestOrigin::default(), Utc::now())
        .unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    assert_eq!(done.file_size_bytes, Some(bytes.len() as i64));
}
