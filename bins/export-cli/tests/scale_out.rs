//! The scale-out drill: two `export-cli work` processes started as the README shows, without
//! `--name`, share a queue; one is stopped with SIGTERM while each holds a large job. The stopped
//! one hands back only its own job (the other's lease is untouched), every job then completes
//! exactly once and downloads, and after the expiry pass's sweep the stored files are exactly the
//! completed jobs' files. Runs on SQLite, and on PostgreSQL when EXPORT_TEST_POSTGRES_URL is set.
//! It waits on events (log lines, the jobs' state in the database), not on the machine's speed.

mod common;

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command};

use chrono::Utc;
use common::*;
use export_core::engine::{ExportRequest, RequestOrigin};
use export_core::storage::MasterKey;
use export_domain::{DatasetInput, ExportJob, JobStatus, ProgressReportInput};
use export_store::test_on_both_backends;
use export_store::testing::TestDatabase;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Sessions added to Zoë's record so that her sessions PDF takes seconds to render.
const EXTRA_SESSIONS: usize = 12_000;
/// Margaret's patient the small jobs are about (Zoë's record is made large).
const OTHER_PATIENT: &str = "54b440a5-f8fe-5f5d-bf49-e04fc5321bf1";
/// Small jobs queued behind the two large ones.
const SMALL_JOBS: usize = 20;

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
        let (child, lines) = worker(
            db,
            storage,
            master,
            &["--watch", "--lease-seconds", "30", "--grace-seconds", "0"],
        );
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

fn two_unnamed_workers_one_stopped_mid_job_leave_every_job_completed_once(db: &TestDatabase) {
    let practice = db.seed_fixtures();
    enlarge_zoe(db, &practice, EXTRA_SESSIONS, 0x5CA1_E000_0000);

    let storage = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    // The sweep at the end takes anything no completed job points to, however fresh.
    let engine = sweeping_engine(db, storage.path(), &master);
    let margaret = therapist(MARGARET);
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
                excel: false,
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
    let stored: HashSet<String> = stored_names(storage.path())
        .into_iter()
        .map(|name| format!("exports/{name}"))
        .collect();
    let live: HashSet<String> = done
        .iter()
        .map(|job| job.file_key.clone().unwrap())
        .collect();
    assert_eq!(stored, live, "stored files = completed jobs' files");
}
