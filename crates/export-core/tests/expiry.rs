//! The expiry pass on SQLite and PostgreSQL: one job whose file cannot be archived is logged,
//! counted and left for the next pass while the others expire; the sweep removes stored files no
//! completed job points to and unfinished writes' temporaries, once they are older than the
//! grace, and never a live job's file.

use std::io::Read;
use std::sync::{Arc, Mutex};

use chrono::{Duration, TimeZone, Utc};
use export_core::engine::{Actor, EngineConfig, ExportEngine, ExportRequest, RequestOrigin};
use export_core::storage::{
    FileKey, FileStore, FileWriter, LocalFileStore, MasterKey, StorageError,
};
use export_core::testing::*;
use export_domain::{AuditAction, ExportFormat, ExportJob, FullRecordInput, JobStatus, Role};
use export_store::test_on_both_backends;
use export_store::testing::TestDatabase;
use uuid::Uuid;

test_on_both_backends! {
    a_file_that_cannot_be_archived_does_not_stop_the_expiry_pass,
    the_sweep_removes_leftovers_past_the_grace_and_keeps_live_files,
}

fn margaret() -> Actor {
    Actor {
        user_id: Uuid::parse_str(MARGARET).unwrap(),
        role: Role::Therapist,
    }
}

/// Submits and runs `count` full-record exports of Zoë's, as JSON.
fn completed(engine: &ExportEngine, count: usize, now: chrono::DateTime<Utc>) -> Vec<ExportJob> {
    (0..count)
        .map(|_| {
            let request = FullRecordInput {
                patient_id: ZOE.into(),
                format: "json".into(),
                ..Default::default()
            }
            .validate()
            .unwrap();
            engine
                .submit(
                    &margaret(),
                    ExportRequest::FullRecord(request),
                    None,
                    &RequestOrigin::default(),
                    now,
                )
                .unwrap();
            let done = engine.run_next("worker", now).unwrap().unwrap();
            assert_eq!(
                done.status,
                JobStatus::Completed,
                "{:?}",
                done.error_message
            );
            done
        })
        .collect()
}

/// A local store whose writes under one key fail, as a full or broken archive volume would.
struct Refusing {
    inner: LocalFileStore,
    refused: Mutex<Option<FileKey>>,
}

impl FileStore for Refusing {
    fn create(&self, key: &FileKey) -> Result<Box<dyn FileWriter>, StorageError> {
        if self.refused.lock().unwrap().as_ref() == Some(key) {
            return Err(StorageError::Io(std::io::Error::other("no space left")));
        }
        self.inner.create(key)
    }
    fn open(&self, key: &FileKey, wrapped: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        self.inner.open(key, wrapped)
    }
    fn delete(&self, key: &FileKey) -> Result<bool, StorageError> {
        self.inner.delete(key)
    }
}

fn a_file_that_cannot_be_archived_does_not_stop_the_expiry_pass(db: &TestDatabase) {
    db.seed_fixtures();
    let (files, archive_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master = MasterKey::generate();
    let archive = Arc::new(Refusing {
        inner: LocalFileStore::new(archive_dir.path(), master.clone()).unwrap(),
        refused: Mutex::new(None),
    });
    let engine = engine_with(
        db,
        local_files(files.path(), &master),
        EngineConfig::default(),
    )
    .with_archive(archive.clone());
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
    let jobs = completed(&engine, 3, now);
    // The first job due is the one whose copy fails.
    let stuck = &jobs[0];
    let stuck_key = FileKey::parse(stuck.file_key.as_deref().unwrap()).unwrap();
    *archive.refused.lock().unwrap() = Some(stuck_key.clone());

    let later = now + Duration::days(8);
    let report = engine.expire(later, false).unwrap();
    assert_eq!((report.expired, report.failed), (2, 1), "{report:?}");
    let status = |job: &ExportJob| engine.job(&margaret(), job.id).unwrap().status;
    assert_eq!(
        status(stuck),
        JobStatus::Completed,
        "left for the next pass"
    );
    assert!(
        files.path().join(stuck_key.as_str()).exists(),
        "its file is kept"
    );
    for job in &jobs[1..] {
        assert_eq!(status(job), JobStatus::Expired);
    }
    let conn = db.store.connection().unwrap();
    let expired = db.audit_of(AuditAction::Expired);
    assert_eq!(expired.len(), 2, "the failed one is not audited as expired");
    drop(conn);

    // Once the archive takes it, the next pass expires it.
    *archive.refused.lock().unwrap() = None;
    let report = engine.expire(later, false).unwrap();
    assert_eq!((report.expired, report.failed), (1, 0), "{report:?}");
    assert_eq!(status(stuck), JobStatus::Expired);
    assert!(!files.path().join(stuck_key.as_str()).exists());
}

fn the_sweep_removes_leftovers_past_the_grace_and_keeps_live_files(db: &TestDatabase) {
    db.seed_fixtures();
    let files_dir = tempfile::tempdir().unwrap();
    let files = local_files(files_dir.path(), &MasterKey::generate());
    let engine = engine_with(db, files.clone(), EngineConfig::default());
    let now = Utc::now();
    let jobs = completed(&engine, 2, now);
    // Leftovers of every kind: a second attempt's file beside a live job's, the file of a job
    // that is gone, and a temporary a crash left.
    let beside = FileKey::for_attempt(jobs[0].id, 2, 0xdead_beef, ExportFormat::Json);
    let orphan = FileKey::for_attempt(Uuid::new_v4(), 1, 7, ExportFormat::Pdf);
    for key in [&beside, &orphan] {
        files.put(key, &mut &b"left over"[..]).unwrap();
    }
    let exports = files_dir.path().join("exports");
    std::fs::write(exports.join(".partial-Ab3dE9"), b"half").unwrap();
    // Not this engine's: never touched.
    std::fs::write(exports.join("notes.txt"), b"someone else's").unwrap();
    let names = || {
        let mut names: Vec<String> = std::fs::read_dir(&exports)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names().len(), 6);

    // Within the grace (a day by default) nothing is swept.
    let report = engine.expire(now, false).unwrap();
    assert_eq!((report.expired, report.swept), (0, 0), "{report:?}");
    assert_eq!(names().len(), 6);

    // Past it, a dry run counts and removes nothing; the real pass removes the three.
    let later = now + Duration::days(2);
    let report = engine.expire(later, true).unwrap();
    assert_eq!((report.expired, report.swept), (0, 3), "{report:?}");
    assert_eq!(names().len(), 6);
    let report = engine.expire(later, false).unwrap();
    assert_eq!((report.swept, report.sweep_failed), (3, 0), "{report:?}");
    let mut expected: Vec<String> = jobs
        .iter()
        .map(|job| {
            job.file_key
                .as_deref()
                .unwrap()
                .trim_start_matches("exports/")
                .to_owned()
        })
        .chain(["notes.txt".to_owned()])
        .collect();
    expected.sort();
    assert_eq!(names(), expected, "the live files and the stranger stay");
    for job in &jobs {
        let (_, mut file) = engine
            .download(&margaret(), job.id, &RequestOrigin::default(), later)
            .unwrap();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes.len() as i64, job.file_size_bytes.unwrap());
    }
    let report = engine.expire(later, false).unwrap();
    assert_eq!(report.swept, 0, "swept once");
}
