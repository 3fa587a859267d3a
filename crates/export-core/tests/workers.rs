//! The worker pool and the heartbeat, with a dataset of the test's own whose rows wait for the
//! test to open a gate, so a job is "running" exactly as long as the test wants: a pool finishes
//! what is submitted; a long job keeps its lease and records progress; shutdown lets a job finish
//! within the grace period, releases one that does not, and the released job's late result is
//! discarded; a job cancelled while it runs leaves no file. Every failure counts an attempt: a
//! file store that cannot store ends the job failed after `max_attempts` with its reason, a
//! panicking dataset fails its job and the worker goes on with the next, and a job whose workers
//! were all lost fails as such. Waits are on events (a gate, the pool's observer, a state the
//! database shows), never on the machine's speed.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use chrono::Utc;
use export_core::dataset::{Audience, Dataset, DatasetError, DatasetQuery, FilterSpec};
use export_core::engine::{Actor, EngineConfig, ExportEngine, ExportRequest, RequestOrigin};
use export_core::testing::*;
use export_core::worker::{WorkerConfig, WorkerPool};
use export_domain::{AuditAction, DatasetInput, ExportJob, JobStatus, Role};
use export_render::{Column, ColumnKind, RowSource, TextRows};
use export_store::testing::TestDatabase;
use export_store::{jobs, test_on_both_backends};
use uuid::Uuid;

/// A gate the test opens; `rows` waits at it.
#[derive(Debug, Default)]
struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }

    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.changed.wait(open).unwrap();
        }
    }
}

/// The host's own dataset: one row, made once the gate opens.
struct Gated(Arc<Gate>);

impl Dataset for Gated {
    fn name(&self) -> &str {
        "gated"
    }

    fn description(&self) -> &str {
        "a test dataset that waits"
    }

    fn audience(&self) -> Audience {
        Audience::Therapists
    }

    fn columns(&self) -> Vec<Column> {
        vec![Column::new("n", ColumnKind::Text)]
    }

    fn filters(&self) -> &[FilterSpec] {
        &[]
    }

    fn rows(&self, _query: &DatasetQuery<'_>) -> Result<Box<dyn RowSource + Send>, DatasetError> {
        self.0.wait();
        Ok(Box::new(TextRows::new(
            self.columns(),
            vec![vec![Some("1".into())]],
        )))
    }
}

struct Setup {
    engine: Arc<ExportEngine>,
    gate: Arc<Gate>,
    files: tempfile::TempDir,
    margaret: Actor,
}

fn setup(db: &TestDatabase, lease: chrono::Duration) -> Setup {
    db.seed_fixtures();
    let files = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate::default());
    let config = EngineConfig {
        lease,
        ..EngineConfig::default()
    };
    let engine = engine_in(db, files.path(), config).with_dataset(Arc::new(Gated(gate.clone())));
    Setup {
        engine: Arc::new(engine),
        gate,
        files,
        margaret: Actor {
            user_id: Uuid::parse_str(MARGARET).unwrap(),
            role: Role::Therapist,
        },
    }
}

fn submit(setup: &Setup, dataset: &str) -> ExportJob {
    let request = DatasetInput {
        format: "csv".into(),
        ..Default::default()
    }
    .validate(dataset)
    .unwrap();
    setup
        .engine
        .submit(
            &setup.margaret,
            ExportRequest::Dataset(request),
            None,
            &RequestOrigin::default(),
            Utc::now() - chrono::Duration::seconds(1),
        )
        .unwrap()
}

fn pool(setup: &Setup, name: &str, workers: usize, grace: Duration) -> WorkerPool {
    WorkerPool::start(
        setup.engine.clone(),
        WorkerConfig {
            workers,
            name: name.into(),
            idle_poll: Duration::from_millis(50),
            grace,
        },
    )
}

fn files_in(setup: &Setup) -> usize {
    std::fs::read_dir(setup.files.path().join("exports"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn created_entries(db: &TestDatabase, id: Uuid) -> usize {
    db.audit_of_job(id, AuditAction::Created).len()
}

test_on_both_backends! {
    a_pool_finishes_what_is_submitted_and_a_long_job_keeps_its_lease,
    shutdown_waits_for_the_grace_period_then_releases,
    a_job_cancelled_while_it_runs_leaves_no_file,
}

fn a_pool_finishes_what_is_submitted_and_a_long_job_keeps_its_lease(db: &TestDatabase) {
    let setup = setup(db, chrono::Duration::milliseconds(600));
    let quick: Vec<ExportJob> = (0..6).map(|_| submit(&setup, "goals")).collect();
    let slow = submit(&setup, "gated");
    let pool = pool(&setup, "pool", 2, Duration::from_secs(10));
    pool.wake();
    for job in &quick {
        wait_for_job(db, job.id, "a quick job", |j| {
            j.status == JobStatus::Completed
        });
    }
    // The slow job runs for more than three leases; its heartbeat keeps it and shows progress.
    let running = wait_for_job(db, slow.id, "the slow job to start", |j| {
        j.status == JobStatus::Processing
    });
    let first_lease = running.lease_expires_at.unwrap();
    let later = wait_for_job(db, slow.id, "the lease to be renewed past a lapse", |j| {
        j.lease_expires_at
            .is_some_and(|at| at > first_lease + chrono::Duration::seconds(1))
    });
    assert_eq!(later.status, JobStatus::Processing);
    assert_eq!(later.attempts, 1, "no one took the job over");
    assert!(later.lease_expires_at.unwrap() > first_lease + chrono::Duration::seconds(1));
    assert!(later.progress_percent > 0, "progress is recorded");
    setup.gate.open();
    let done = wait_for_job(db, slow.id, "the slow job", |j| {
        j.status == JobStatus::Completed
    });
    assert_eq!((done.attempts, done.progress_percent), (1, 100));
    let report = pool.shutdown();
    assert_eq!(report.jobs_run, 7);
    assert!(report.released.is_empty());
    assert_eq!(files_in(&setup), 7);
}

fn shutdown_waits_for_the_grace_period_then_releases(db: &TestDatabase) {
    // Within the grace period: the running job finishes.
    let setup = setup(db, chrono::Duration::seconds(30));
    let job = submit(&setup, "gated");
    let first = pool(&setup, "graceful", 1, Duration::from_secs(20));
    wait_for_job(db, job.id, "the job to start", |j| {
        j.status == JobStatus::Processing
    });
    // Asked to stop while the job runs: nothing new is claimed, the running job may finish.
    first.stop_claiming();
    let waiting = submit(&setup, "goals");
    setup.gate.open();
    let report = first.shutdown();
    assert_eq!((report.jobs_run, report.released.len()), (1, 0));
    assert_eq!(job_now(db, job.id).status, JobStatus::Completed);
    assert_eq!(job_now(db, waiting.id).status, JobStatus::Pending);
    let origin = RequestOrigin::default();
    let cancelled =
        (setup.engine).cancel_or_delete(&setup.margaret, waiting.id, &origin, Utc::now());
    assert_eq!(cancelled.unwrap().status, JobStatus::Cancelled);

    // Past the grace period: the job goes back to the queue, its attempt not counted.
    let setup = self::setup(db, chrono::Duration::seconds(30));
    let job = submit(&setup, "gated");
    let (finished, attempts) = std::sync::mpsc::channel();
    let second = WorkerPool::start_observed(
        setup.engine.clone(),
        WorkerConfig {
            workers: 1,
            name: "impatient".into(),
            idle_poll: Duration::from_millis(50),
            grace: Duration::from_millis(200),
        },
        move |job| finished.send(job.clone()).unwrap(),
    );
    wait_for_job(db, job.id, "the job to start", |j| {
        j.status == JobStatus::Processing
    });
    let report = second.shutdown();
    assert_eq!(report.released, vec![job.id]);
    let released = job_now(db, job.id);
    assert_eq!(
        (released.status, released.attempts, released.lease_owner),
        (JobStatus::Pending, 0, None)
    );
    // The old worker finishes late: its result is no longer wanted.
    setup.gate.open();
    let late = attempts.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!((late.id, late.status), (job.id, JobStatus::Pending));
    assert_eq!(job_now(db, job.id).status, JobStatus::Pending);
    assert_eq!(files_in(&setup), 0, "the late result was discarded");
    // The next start finishes it, once.
    let third = pool(&setup, "next", 1, Duration::from_secs(10));
    let done = wait_for_job(db, job.id, "the released job", |j| {
        j.status == JobStatus::Completed
    });
    assert_eq!(done.attempts, 1);
    third.shutdown();
    assert_eq!(files_in(&setup), 1);
    assert_eq!(created_entries(db, job.id), 1);
}

fn a_job_cancelled_while_it_runs_leaves_no_file(db: &TestDatabase) {
    let setup = setup(db, chrono::Duration::seconds(30));
    let job = submit(&setup, "gated");
    let pool = pool(&setup, "cancel", 1, Duration::from_secs(10));
    wait_for_job(db, job.id, "the job to start", |j| {
        j.status == JobStatus::Processing
    });
    let cancelled = setup
        .engine
        .cancel_or_delete(
            &setup.margaret,
            job.id,
            &RequestOrigin::default(),
            Utc::now(),
        )
        .unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    setup.gate.open();
    let report = pool.shutdown();
    assert_eq!(report.jobs_run, 1);
    let after = job_now(db, job.id);
    assert_eq!((after.status, after.file_key), (JobStatus::Cancelled, None));
    assert_eq!(files_in(&setup), 0);
    assert_eq!(created_entries(db, job.id), 0);
}

/// A file store whose disk is full: every file it is asked to create fails as a full disk does.
struct FullDisk;

impl export_core::storage::FileStore for FullDisk {
    fn create(
        &self,
        _key: &export_core::storage::FileKey,
    ) -> Result<Box<dyn export_core::storage::FileWriter>, export_core::storage::StorageError> {
        Err(std::io::Error::from(std::io::ErrorKind::StorageFull).into())
    }

    fn open(
        &self,
        key: &export_core::storage::FileKey,
        _wrapped_key: &str,
    ) -> Result<Box<dyn std::io::Read + Send>, export_core::storage::StorageError> {
        Err(export_core::storage::StorageError::NotFound(
            key.as_str().to_owned(),
        ))
    }

    fn delete(
        &self,
        _key: &export_core::storage::FileKey,
    ) -> Result<bool, export_core::storage::StorageError> {
        Ok(false)
    }
}

/// The host's own dataset whose rows panic, as a bug in a renderer or a dataset would.
struct Panicking;

impl Dataset for Panicking {
    fn name(&self) -> &str {
        "panicking"
    }

    fn description(&self) -> &str {
        "a test dataset with a bug"
    }

    fn audience(&self) -> Audience {
        Audience::Therapists
    }

    fn columns(&self) -> Vec<Column> {
        vec![Column::new("n", ColumnKind::Text)]
    }

    fn filters(&self) -> &[FilterSpec] {
        &[]
    }

    fn rows(&self, _query: &DatasetQuery<'_>) -> Result<Box<dyn RowSource + Send>, DatasetError> {
        panic!("a bug in the dataset");
    }
}

test_on_both_backends! {
    a_full_disk_fails_the_job_after_max_attempts_with_its_reason,
    a_panicking_dataset_fails_its_job_and_the_worker_goes_on,
    a_job_whose_workers_were_all_lost_fails_as_worker_lost,
}

fn a_full_disk_fails_the_job_after_max_attempts_with_its_reason(db: &TestDatabase) {
    let seeded = setup(db, chrono::Duration::minutes(5));
    let engine = engine_with(db, Arc::new(FullDisk), EngineConfig::default()); // max_attempts 3
    let start = Utc::now();
    let request = DatasetInput {
        format: "csv".into(),
        ..Default::default()
    }
    .validate("goals")
    .unwrap();
    let origin = RequestOrigin::default();
    let job = engine
        .submit(
            &seeded.margaret,
            ExportRequest::Dataset(request),
            None,
            &origin,
            start,
        )
        .unwrap();
    // The clock moves an hour between attempts, past any backoff.
    for attempt in 1..=3 {
        let at = start + chrono::Duration::hours(attempt);
        let after = engine.run_next("w", at).unwrap().unwrap();
        assert_eq!((after.id, after.attempts), (job.id, attempt as i32));
        let expected = if attempt < 3 {
            JobStatus::Pending
        } else {
            JobStatus::Failed
        };
        assert_eq!(after.status, expected, "after attempt {attempt}");
        assert!(after.lease_owner.is_none(), "never left processing");
        let reason = after.error_message.unwrap_or_default();
        assert!(reason.starts_with("storage unavailable"), "{reason}");
    }
    assert_eq!(
        engine
            .run_next("w", start + chrono::Duration::hours(9))
            .unwrap(),
        None
    );
    let failed = db.audit_of_job(job.id, AuditAction::Failed);
    assert_eq!(
        failed.len(),
        1,
        "one failure entry, when the job failed for good"
    );
    assert_eq!(failed[0].entry.outcome, export_domain::AuditOutcome::Error);
    assert_eq!(failed[0].entry.user_id, Some(seeded.margaret.user_id));
    assert_eq!(
        failed[0].entry.metadata,
        serde_json::json!({"reason": "storage", "attempts": 3}),
        "a kind, never an error text"
    );
}

fn a_panicking_dataset_fails_its_job_and_the_worker_goes_on(db: &TestDatabase) {
    let seeded = setup(db, chrono::Duration::minutes(5));
    let files = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        max_attempts: 1,
        ..EngineConfig::default()
    };
    let engine = engine_in(db, files.path(), config).with_dataset(Arc::new(Panicking));
    let submit = |dataset: &str| {
        let request = DatasetInput {
            format: "csv".into(),
            ..Default::default()
        }
        .validate(dataset)
        .unwrap();
        let origin = RequestOrigin::default();
        let at = Utc::now() - chrono::Duration::seconds(1);
        engine
            .submit(
                &seeded.margaret,
                ExportRequest::Dataset(request),
                None,
                &origin,
                at,
            )
            .unwrap()
    };
    let buggy = submit("panicking");
    let next = submit("goals");
    let (finished, attempts) = std::sync::mpsc::channel();
    let engine = Arc::new(engine);
    let pool = WorkerPool::start_observed(
        engine.clone(),
        WorkerConfig {
            workers: 1,
            name: "one".into(),
            idle_poll: Duration::from_millis(50),
            grace: Duration::from_secs(10),
        },
        move |job| finished.send(job.clone()).unwrap(),
    );
    let first = attempts.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!((first.id, first.status), (buggy.id, JobStatus::Failed));
    assert_eq!(
        first.error_message.as_deref(),
        Some("internal error while rendering")
    );
    // The same (only) worker thread lives on and produces the next job.
    let second = attempts.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!((second.id, second.status), (next.id, JobStatus::Completed));
    let report = pool.shutdown();
    assert_eq!((report.jobs_run, report.released.len()), (2, 0));
    let failed = db.audit_of_job(buggy.id, AuditAction::Failed);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].entry.metadata["reason"], "panic");
}

fn a_job_whose_workers_were_all_lost_fails_as_worker_lost(db: &TestDatabase) {
    let seeded = setup(db, chrono::Duration::minutes(5));
    let job = submit(&seeded, "goals");
    let lease = chrono::Duration::minutes(5);
    let start = Utc::now();
    // Three workers claim the job and die holding it.
    for attempt in 1..=3 {
        let mut conn = db.store.connection().unwrap();
        let at = start + chrono::Duration::minutes(10 * attempt);
        let claimed = jobs::claim_next(&mut conn, &format!("dead-{attempt}"), at, lease)
            .unwrap()
            .unwrap();
        assert_eq!(claimed.id, job.id);
    }
    let later = start + chrono::Duration::minutes(40);
    assert_eq!(
        seeded.engine.run_next("alive", later).unwrap(),
        None,
        "not claimed again"
    );
    let lost = seeded.engine.fail_lost_jobs(later).unwrap();
    assert_eq!(lost.len(), 1);
    assert_eq!((lost[0].id, lost[0].status), (job.id, JobStatus::Failed));
    assert_eq!(
        lost[0].error_message.as_deref(),
        Some("worker lost 3 times")
    );
    let failed = db.audit_of_job(job.id, AuditAction::Failed);
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].entry.metadata,
        serde_json::json!({"reason": "worker_lost", "attempts": 3})
    );
    assert!(seeded.engine.fail_lost_jobs(later).unwrap().is_empty());
}
