//! The scale-out drill: two `export-cli work` processes started as the README shows, without
//! `--name`, share a queue; one is stopped with SIGTERM while each holds a large job. The stopped
//! one hands back only its own job (the other's lease is untouched), every job then completes
//! exactly once and downloads, and after the expiry pass's sweep the stored files are exactly the
//! completed jobs' files. Runs on SQLite, and on PostgreSQL when EXPORT_TEST_POSTGRES_URL is set.
//! It waits on events (log lines, the jobs' state in the database), not on the machine's speed.

use std::collections::HashSet;
use std::io::{BufRead, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use chrono::Utc;
use export_core::engine::{Actor, EngineConfig, ExportEngine, ExportRequest, RequestOrigin};
use export_core::source::StoreSource;
use export_core::storage::{LocalFileStore, MasterKey};
use export_domain::{DatasetInput, ExportJob, JobStatus, ProgressReportInput, Role, SessionStatus};
use export_store::testing::TestDatabase;
use export_store::{clinical, jobs, seed, test_on_both_backends};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const MARGARET: &str = "7d25348d-75bb-5e22-8073-05bfd9b3230c";
const ZOE: &str = "4333a588-c713-5117-85aa-6c9dc288e1df";
/// Sessions added to Zoë's record so that her sessions PDF takes seconds to render.
const EXTRA_SESSIONS: usize = 12_000;
/// Margaret's patient the small jobs are about (Zoë's record is made large).
const OTHER_PATIENT: &str = "54b440a5-f8fe-5f5d-bf49-e04fc5321bf1";
/// Small jobs queued behind the two large ones.
const SMALL_JOBS: usize = 20;
/// How long any one awaited event may take before the test fails: far more than it needs.
const PATIENCE: Duration = Duration::from_secs(120);

test_on_both_backends! {
    two_unnamed_workers_one_stopped_mid_job_leave_every_job_completed_once,
}

/// A worker process started without `--name`, and the name it reports in its log (stderr, read
/// to the end so the process never blocks on a full pipe).
struct Worker {
    child: Child,
    name: String,
}

impl Worker {
    fn start(db: &TestDatabase, storage: &Path, master: &MasterKey) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_export-cli"))
            .args(["--database", &db.url, "work", "--watch"])
            .args(["--lease-seconds", "30", "--grace-seconds", "0"])
            .arg("--storage")
            .arg(storage)
            .env("EXPORT_MASTER_KEY", master.to_hex())
            .env("RUST_LOG", "warn,export_cli=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let (line, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for text in stderr.lines().map_while(Result::ok) {
                let _ = line.send(text);
            }
        });
        let started = wait_for_line(&lines, " started with ");
        let name = started
            .split("worker ")
            .nth(1)
            .and_then(|rest| rest.split(" started with ").next())
            .unwrap_or_else(|| panic!("no name in {started:?}"))
            .to_owned();
        Worker { child, name }
    }

    /// The lease owner of its one worker thread.
    fn lease_owner(&self) -> String {
        format!("{}-0", self.name)
    }

    fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(
            exit.success(),
            "a worker stopped by SIGTERM exits 0: {exit:?}"
        );
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for the log line containing `text` and returns it.
fn wait_for_line(lines: &Receiver<String>, text: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(_) => {}
            Err(err) => panic!("no log line with {text:?} ({err})"),
        }
    }
}

fn job_now(db: &TestDatabase, id: Uuid) -> ExportJob {
    let mut conn = db.store.connection().unwrap();
    jobs::get_job(&mut conn, id).unwrap().unwrap()
}

/// Reads the job until `done` holds for it and returns it then; fails after `PATIENCE`.
fn wait_for_job(
    db: &TestDatabase,
    id: Uuid,
    what: &str,
    done: impl Fn(&ExportJob) -> bool,
) -> ExportJob {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let job = job_now(db, id);
        if done(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {PATIENCE:?}; the job is {:?}, attempt {}, lease {:?}",
            job.status,
            job.attempts,
            job.lease_owner,
        );
        // The interval between two reads of an observable state, not a guess at a duration.
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn two_unnamed_workers_one_stopped_mid_job_leave_every_job_completed_once(db: &TestDatabase) {
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
                session.id = Uuid::from_u128(0x5CA1_E000_0000 + i as u128);
                session.session_date -= chrono::Duration::hours(i as i64);
                clinical::insert_session(conn, &session)?;
            }
            Ok(())
        })
        .unwrap();

    let storage = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let files = Arc::new(LocalFileStore::new(storage.path(), master.clone()).unwrap());
    let engine = ExportEngine::new(
        db.store.clone(),
        files,
        Arc::new(StoreSource(db.store.clone())),
        EngineConfig {
            // The sweep at the end takes anything no completed job points to, however fresh.
            leftover_grace: chrono::Duration::zero(),
            ..EngineConfig::default()
        },
    );
    let margaret = Actor {
        user_id: Uuid::parse_str(MARGARET).unwrap(),
        role: Role::Therapist,
    };
    let submitted = |request: ExportRequest, offset: i64| {
        engine
            .submit(
                &margaret,
                request,
                None,
                &RequestOrigin::default(),
                // Queued in this order: the oldest is claimed first.
                Utc::now() - chrono::Duration::seconds(1000 - offset),
            )
            .unwrap()
    };
    let large = || {
        ExportRequest::Dataset(
            DatasetInput {
                format: "pdf".into(),
                filters: [("patient_id".to_owned(), serde_json::Value::from(ZOE))].into(),
            }
            .validate("sessions")
            .unwrap(),
        )
    };
    let first_large = submitted(large(), 0);
    let second_large = submitted(large(), 1);
    let small: Vec<ExportJob> = (0..SMALL_JOBS)
        .map(|i| {
            let request = ProgressReportInput {
                patient_id: OTHER_PATIENT.into(),
                start_date: "2025-01-01".into(),
                end_date: "2025-03-31".into(),
                format: if i % 2 == 0 { "json" } else { "docx" }.into(),
                ..Default::default()
            }
            .validate()
            .unwrap();
            submitted(ExportRequest::ProgressReport(request), 2 + i as i64)
        })
        .collect();

    // One worker takes the first large job; the second, started then, the next one.
    let mut a = Worker::start(db, storage.path(), &master);
    wait_for_job(
        db,
        first_large.id,
        "the first worker takes the first large job",
        |job| job.status == JobStatus::Processing,
    );
    let b = Worker::start(db, storage.path(), &master);
    assert_ne!(a.name, b.name, "unnamed workers have names of their own");
    for worker in [&a, &b] {
        assert!(
            worker.name.contains(&worker.child.id().to_string()),
            "a default name carries the process id: {}",
            worker.name
        );
    }
    let held = wait_for_job(
        db,
        second_large.id,
        "the second worker takes the second large job",
        |job| job.status == JobStatus::Processing,
    );
    assert_eq!(held.lease_owner, Some(b.lease_owner()));
    let first = job_now(db, first_large.id);
    assert_eq!(
        (first.status, first.lease_owner),
        (JobStatus::Processing, Some(a.lease_owner())),
        "the first large job is still rendering: if it completed, the export is too small for \
         this test"
    );

    // SIGTERM with no grace: the first worker hands back its job, and only its job.
    a.terminate();
    let released = job_now(db, first_large.id);
    assert_eq!(
        (released.status, released.lease_owner),
        (JobStatus::Pending, None),
        "the stopped worker's job is back in the queue"
    );
    let untouched = job_now(db, second_large.id);
    assert!(
        untouched.status == JobStatus::Completed
            || (untouched.status == JobStatus::Processing
                && untouched.lease_owner == Some(b.lease_owner())),
        "the other worker's job is still its own: {:?} {:?}",
        untouched.status,
        untouched.lease_owner
    );

    // The second worker finishes everything, the handed-back job included.
    let all: Vec<Uuid> = [first_large.id, second_large.id]
        .into_iter()
        .chain(small.iter().map(|job| job.id))
        .collect();
    let done: Vec<ExportJob> = all
        .iter()
        .map(|id| {
            wait_for_job(db, *id, "every job finishes", |job| {
                job.status.is_terminal()
            })
        })
        .collect();
    for job in &done {
        assert_eq!(
            job.status,
            JobStatus::Completed,
            "{}: {:?}",
            job.id,
            job.error_message
        );
        let (_, mut file) = engine
            .download(&margaret, job.id, &RequestOrigin::default(), Utc::now())
            .unwrap_or_else(|err| panic!("{} does not download: {err}", job.id));
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        assert_eq!(Some(bytes.len() as i64), job.file_size_bytes, "{}", job.id);
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            Some(digest),
            job.sha256,
            "{}: the file is the one recorded",
            job.id
        );
    }
    let mut b = b;
    b.terminate();

    // After the sweep, the stored files are the completed jobs' files, one each.
    let report = engine.expire(Utc::now(), false).unwrap();
    assert_eq!((report.failed, report.sweep_failed), (0, 0), "{report:?}");
    let stored: HashSet<String> = std::fs::read_dir(storage.path().join("exports"))
        .unwrap()
        .map(|e| format!("exports/{}", e.unwrap().file_name().into_string().unwrap()))
        .collect();
    let live: HashSet<String> = done
        .iter()
        .map(|job| job.file_key.clone().unwrap())
        .collect();
    assert_eq!(stored, live, "stored files = completed jobs' files");
}
