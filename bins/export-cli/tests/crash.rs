//! A worker process killed with SIGKILL in the middle of a large export: while it rendered, its
//! heartbeat kept the lease, so a second worker did not take the job; once it died, the lease
//! lapsed, the second worker took the job over, and the job completed exactly once: one file,
//! one "created" audit entry, attempts = 2. Runs on SQLite, and on PostgreSQL when
//! EXPORT_TEST_POSTGRES_URL is set. It waits on events, not on the machine's speed: the job's
//! state and lease in the database, and the line the second worker prints once it is claiming.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use chrono::Utc;
use export_core::audit::{ChainReport, verify_store};
use export_core::engine::{Actor, EngineConfig, ExportEngine, ExportRequest, RequestOrigin};
use export_core::source::StoreSource;
use export_core::storage::{LocalFileStore, MasterKey};
use export_domain::{AuditAction, DatasetInput, JobStatus, Role, SessionStatus};
use export_store::testing::TestDatabase;
use export_store::{audit, clinical, jobs, seed, test_on_both_backends};
use uuid::Uuid;

const MARGARET: &str = "7d25348d-75bb-5e22-8073-05bfd9b3230c";
const ZOE: &str = "4333a588-c713-5117-85aa-6c9dc288e1df";
/// Sessions added to Zoë's record so that her sessions PDF takes seconds to render.
const EXTRA_SESSIONS: usize = 12_000;
const LEASE_SECONDS: i64 = 1;
/// How long any one awaited event may take before the test fails: far more than it needs.
const PATIENCE: Duration = Duration::from_secs(60);

/// A worker process and the lines of its log (stderr), read as they come.
fn worker(
    db: &TestDatabase,
    storage: &Path,
    master: &MasterKey,
    name: &str,
) -> (Child, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_export-cli"))
        .args(["--database", &db.url, "work", "--name", name])
        .args(["--lease-seconds", &LEASE_SECONDS.to_string()])
        .arg("--storage")
        .arg(storage)
        .env("EXPORT_MASTER_KEY", master.to_hex())
        // Its own info lines ("worker NAME started"), everything else's warnings.
        .env("RUST_LOG", "warn,export_cli=info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (line, lines) = std::sync::mpsc::channel();
    // Drained to the end, so the worker never blocks on a full pipe.
    std::thread::spawn(move || {
        for text in stderr.lines().map_while(Result::ok) {
            let _ = line.send(text);
        }
    });
    (child, lines)
}

/// Waits for the log line containing `text`.
fn wait_for_line(lines: &Receiver<String>, text: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return,
            Ok(_) => {}
            Err(err) => panic!("no log line with {text:?} ({err})"),
        }
    }
}

fn job_now(db: &TestDatabase, id: Uuid) -> export_domain::ExportJob {
    let mut conn = db.store.connection().unwrap();
    jobs::get_job(&mut conn, id).unwrap().unwrap()
}

/// Reads the job until `done` holds for it, and returns it then; fails after `PATIENCE`.
fn wait_for_job(
    db: &TestDatabase,
    id: Uuid,
    what: &str,
    mut done: impl FnMut(&export_domain::ExportJob) -> bool,
) -> export_domain::ExportJob {
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

test_on_both_backends! {
    a_killed_worker_s_job_completes_exactly_once_after_a_restart,
}

fn a_killed_worker_s_job_completes_exactly_once_after_a_restart(db: &TestDatabase) {
    let practice = seed::load_practice(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures"
    )))
    .unwrap();
    db.store
        .transaction(|conn| seed::seed_practice(conn, &practice))
        .unwrap();
    let zoe = Uuid::parse_str(ZOE).unwrap();
    let template = practice
        .therapy_sessions
        .iter()
        .find(|s| s.patient_id == zoe && s.status == SessionStatus::Processed)
        .unwrap()
        .clone();
    db.store
        .transaction(|conn| {
            for i in 0..EXTRA_SESSIONS {
                let mut session = template.clone();
                session.id = Uuid::from_u128(0x00C0_FFEE_0000 + i as u128);
                session.session_date -= chrono::Duration::hours(i as i64);
                clinical::insert_session(conn, &session)?;
            }
            Ok(())
        })
        .unwrap();

    let storage = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let engine = ExportEngine::new(
        db.store.clone(),
        Arc::new(LocalFileStore::new(storage.path(), master.clone()).unwrap()),
        Arc::new(StoreSource(db.store.clone())),
        EngineConfig {
            // The sweep below takes anything no completed job points to, however fresh.
            leftover_grace: chrono::Duration::zero(),
            ..EngineConfig::default()
        },
    );
    let margaret = Actor {
        user_id: Uuid::parse_str(MARGARET).unwrap(),
        role: Role::Therapist,
    };
    let request = DatasetInput {
        format: "pdf".into(),
        filters: [("patient_id".to_owned(), serde_json::Value::from(ZOE))].into(),
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

    let (mut first, _first_log) = worker(db, storage.path(), &master, "first");
    wait_for_job(db, job.id, "the first worker claims the job", |job| {
        job.status != JobStatus::Pending
    });
    // The second worker runs alongside, claiming from the moment it says it started; the first
    // one's heartbeat must keep the job from it.
    let (mut second, second_log) = worker(db, storage.path(), &master, "second");
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
        let names: Vec<_> = std::fs::read_dir(storage.path().join("exports"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
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
    let mut conn = db.store.connection().unwrap();
    let created = audit::list(
        &mut conn,
        &audit::AuditFilter {
            export_job_id: Some(job.id),
            action: Some(AuditAction::Created),
            ..Default::default()
        },
    )
    .unwrap();
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
