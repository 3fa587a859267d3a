//! A job's file streams from the renderer through encryption into the store: what is stored,
//! decrypted, is exactly what was rendered (local store and, with `EXPORT_TEST_S3_URL`, S3
//! multipart uploads), with that size and digest on the job; a render failing halfway leaves
//! nothing under the final key; the sessions dataset reads its rows a page at a time and keeps
//! their order across pages, on both backends.

use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Write};
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use export_core::dataset::{
    Audience, DATASET_PAGE, Dataset, DatasetError, DatasetQuery, FilterSpec,
};
use export_core::engine::{Actor, EngineConfig, ExportEngine, ExportRequest, RequestOrigin};
use export_core::storage::{FileKey, FileStore, LocalFileStore, MasterKey, StoreOutput};
use export_core::testing::*;
use export_domain::{DatasetInput, ExportFormat, ExportJob, JobStatus, Role, SessionStatus};
use export_render::bench::BenchRows;
use export_render::{Column, RenderError, RowBuffer, RowSource};
use export_store::test_on_both_backends;
use export_store::testing::TestDatabase;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Canonical CSV of 100,000 bench rows (`../shared/bench-dataset.md`).
const BENCH_100K_BYTES: u64 = 15_870_860;
const BENCH_100K_SHA256: &str = "a3e52cd0d2a9aa262c4272efd6b05e2b3ff9e72aeb74a728cd3edbb8c44818f9";

/// The bench rows as a dataset, failing after `fail_after` rows when given.
struct BenchDataset {
    rows: u64,
    fail_after: Option<u64>,
}

struct FailingRows {
    rows: BenchRows,
    left: u64,
}

impl RowSource for FailingRows {
    fn columns(&self) -> &[Column] {
        self.rows.columns()
    }

    fn next_row(&mut self, row: &mut RowBuffer) -> Result<bool, RenderError> {
        if self.left == 0 {
            return Err(RenderError::Source {
                row: 0,
                reason: "the source went away".into(),
            });
        }
        self.left -= 1;
        self.rows.next_row(row)
    }
}

impl Dataset for BenchDataset {
    fn name(&self) -> &str {
        "bench"
    }
    fn description(&self) -> &str {
        "the benchmark rows"
    }
    fn audience(&self) -> Audience {
        Audience::Therapists
    }
    fn columns(&self) -> Vec<Column> {
        BenchRows::new(0).columns().to_vec()
    }
    fn filters(&self) -> &[FilterSpec] {
        &[]
    }
    fn rows(&self, _: &DatasetQuery<'_>) -> Result<Box<dyn RowSource + Send>, DatasetError> {
        Ok(match self.fail_after {
            Some(left) => Box::new(FailingRows {
                rows: BenchRows::new(self.rows),
                left,
            }),
            None => Box::new(BenchRows::new(self.rows)),
        })
    }
}

fn request(name: &str, format: ExportFormat) -> ExportRequest {
    ExportRequest::Dataset(
        DatasetInput {
            format: format.as_str().into(),
            filters: BTreeMap::new(),
            excel: false,
        }
        .validate(name)
        .unwrap(),
    )
}

/// Submits `request` as Margaret and runs it to the end of its first attempt.
fn run(engine: &ExportEngine, request: ExportRequest) -> ExportJob {
    let actor = Actor {
        user_id: Uuid::parse_str(MARGARET).unwrap(),
        role: Role::Therapist,
    };
    let now = Utc::now();
    engine
        .submit(&actor, request, None, &RequestOrigin::default(), now)
        .unwrap();
    engine.run_next("streaming-test", now).unwrap().unwrap()
}

/// An engine with the bench dataset of 100,000 rows, failing after `fail_after` rows when given.
fn engine_over(
    db: &TestDatabase,
    files: Arc<dyn FileStore>,
    fail_after: Option<u64>,
) -> ExportEngine {
    let dataset = BenchDataset {
        rows: 100_000,
        fail_after,
    };
    engine_with(db, files, EngineConfig::default()).with_dataset(Arc::new(dataset))
}

/// The stored file of a completed job, decrypted, checked against the size and digest on the job.
fn stored(files: &dyn FileStore, job: &ExportJob) -> Vec<u8> {
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error_message);
    let key = FileKey::parse(job.file_key.as_deref().unwrap()).unwrap();
    let mut plain = Vec::new();
    files
        .open(&key, job.wrapped_key.as_deref().unwrap())
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(job.file_size_bytes, Some(plain.len() as i64));
    assert_eq!(job.sha256.as_deref(), Some(hex_sha256(&plain).as_str()));
    plain
}

fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every stored CSV is the canonical rendering; an XLSX (written through the spool) reads back
/// with every row.
fn check_stored_equals_rendered(files: Arc<dyn FileStore>) {
    let db = TestDatabase::sqlite();
    let engine = engine_over(&db, files.clone(), None);
    let job = run(&engine, request("bench", ExportFormat::Csv));
    let csv = stored(files.as_ref(), &job);
    assert_eq!(csv.len() as u64, BENCH_100K_BYTES);
    assert_eq!(hex_sha256(&csv), BENCH_100K_SHA256);
    assert_eq!(job.row_count, Some(100_000));

    let job = run(&engine, request("bench", ExportFormat::Xlsx));
    let xlsx = stored(files.as_ref(), &job);
    use calamine::{Data, Reader, Xlsx};
    let mut workbook = Xlsx::new(Cursor::new(xlsx)).unwrap();
    let sheet = workbook.worksheet_range("bench").unwrap();
    assert_eq!(sheet.height(), 100_001);
    let last = sheet.rows().next_back().unwrap();
    assert_eq!(last[0], Data::Float(99_999.0));
    assert_eq!(
        last[7],
        Data::String(
            "Session 99999: discussed coping strategies, reviewed homework and agreed next steps."
                .into()
        )
    );
}

#[test]
fn a_stored_file_is_exactly_what_was_rendered_in_the_local_store() {
    let root = tempfile::tempdir().unwrap();
    let files = LocalFileStore::new(root.path(), MasterKey::generate()).unwrap();
    check_stored_equals_rendered(Arc::new(files));
    let left: Vec<_> = std::fs::read_dir(root.path().join("exports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left.len(), 2, "the two files and nothing else: {left:?}");
    assert!(left.iter().all(|name| !name.starts_with(".partial")));
}

/// A render failing after 60,000 rows (about 9.5 MB, so sealed chunks are on disk and, on S3, a
/// multipart upload has begun) fails the attempt and leaves nothing under the final key.
fn check_failed_render_leaves_nothing(files: Arc<dyn FileStore>) -> ExportJob {
    let db = TestDatabase::sqlite();
    let engine = engine_over(&db, files.clone(), Some(60_000));
    let job = run(&engine, request("bench", ExportFormat::Csv));
    assert_eq!(job.status, JobStatus::Pending, "back in the queue");
    assert!(
        job.error_message
            .as_deref()
            .unwrap()
            .contains("the source went away")
    );
    assert_eq!(job.file_key, None);
    // Each attempt's key draws a random claim number: the local test below counts what is left.
    job
}

#[test]
fn a_render_failing_halfway_leaves_no_file_in_the_local_store() {
    let root = tempfile::tempdir().unwrap();
    let files = LocalFileStore::new(root.path(), MasterKey::generate()).unwrap();
    check_failed_render_leaves_nothing(Arc::new(files));
    let left = std::fs::read_dir(root.path().join("exports"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "not even the .partial temporary");
}

/// Dropping an unfinished writer abandons it; a renderer writing straight into the store may
/// ask where it is but not seek back.
#[test]
fn an_unfinished_writer_leaves_nothing_and_a_direct_output_cannot_seek_back() {
    use std::io::{Seek, SeekFrom};
    let root = tempfile::tempdir().unwrap();
    let files = LocalFileStore::new(root.path(), MasterKey::generate()).unwrap();
    let key = FileKey::for_job(Uuid::new_v4(), ExportFormat::Csv);
    let mut writer = files.create(&key).unwrap();
    writer.write_all(&vec![b'x'; 200_000]).unwrap();
    drop(writer);
    assert_eq!(
        std::fs::read_dir(root.path().join("exports"))
            .unwrap()
            .count(),
        0
    );

    let mut out = StoreOutput::for_format(files.create(&key).unwrap(), ExportFormat::Csv).unwrap();
    out.write_all(b"id\n1\n").unwrap();
    assert_eq!(out.stream_position().unwrap(), 5);
    let err = out.seek(SeekFrom::Start(0)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    let stored = out.into_writer().unwrap().finish().unwrap();
    assert_eq!(stored.size_bytes, 5);
    assert_eq!(stored.sha256, hex_sha256(b"id\n1\n"));
}

// ---- S3 ---------------------------------------------------------------------------------

#[cfg(feature = "s3")]
mod s3 {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use export_core::storage::{ObjectFileStore, S3Config};

    use super::*;

    /// A store in a fresh bucket of the test server, or `None` after saying loudly that the test
    /// is skipped.
    fn s3_store(test: &str) -> Option<ObjectFileStore> {
        let Some(url) = std::env::var("EXPORT_TEST_S3_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            let _ = writeln!(
                io::stderr(),
                "#### SKIPPED {test}: S3 test, set EXPORT_TEST_S3_URL (scripts/start-s3 serves \
                 http://127.0.0.1:9000) to run it ####"
            );
            return None;
        };
        let url = url.trim_end_matches('/');
        let bucket = format!("export-stream-{}", Uuid::new_v4().simple());
        let address = url.strip_prefix("http://").expect("an http:// test server");
        let mut stream = TcpStream::connect(address).unwrap();
        write!(
            stream,
            "PUT /{bucket} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let config = S3Config {
            bucket,
            endpoint: Some(url.to_owned()),
            region: "us-east-1".to_owned(),
            access_key_id: "export-test".to_owned(),
            secret_access_key: "export-test-secret".to_owned(),
            allow_http: true,
            key_prefix: Some("stream".to_owned()),
        };
        Some(ObjectFileStore::s3(&config, MasterKey::generate()).unwrap())
    }

    /// 15.9 MB of CSV goes up as a multipart upload of 5 MiB parts.
    #[test]
    fn s3_a_stored_file_is_exactly_what_was_rendered() {
        let Some(store) = s3_store("s3_a_stored_file_is_exactly_what_was_rendered") else {
            return;
        };
        check_stored_equals_rendered(Arc::new(store.with_part_size(5 * 1024 * 1024)));
    }

    #[test]
    fn s3_a_render_failing_halfway_leaves_no_object() {
        let Some(store) = s3_store("s3_a_render_failing_halfway_leaves_no_object") else {
            return;
        };
        check_failed_render_leaves_nothing(Arc::new(store.with_part_size(5 * 1024 * 1024)));
    }
}

// ---- paging ------------------------------------------------------------------------------

/// Margaret's patients get sessions enough for several pages, many at one instant so that
/// pages end inside a run of equal dates; the export lists every session once, in (date, id)
/// order, exactly as the in-memory source would.
fn sessions_keep_their_order_across_pages(db: &TestDatabase) {
    let practice = db.seed_fixtures();
    let margaret = Uuid::parse_str(MARGARET).unwrap();
    let patients: Vec<Uuid> = practice
        .therapist_patients
        .iter()
        .filter(|l| l.therapist_id == margaret && l.is_active)
        .map(|l| l.patient_id)
        .collect();
    let template = practice
        .therapy_sessions
        .iter()
        .find(|s| s.patient_id == patients[0])
        .unwrap()
        .clone();
    let extra = 2 * DATASET_PAGE + 345;
    let start = Utc.with_ymd_and_hms(2024, 6, 1, 9, 0, 0).unwrap();
    let mut all = practice.clone();
    db.store
        .transaction(|conn| {
            for i in 0..extra {
                let mut session = template.clone();
                session.id = Uuid::new_v4();
                session.patient_id = patients[i % patients.len()];
                // Seven sessions at each instant.
                session.session_date = start + Duration::minutes((i / 7) as i64);
                session.status = SessionStatus::Processed;
                export_store::clinical::insert_session(conn, &session)?;
                all.therapy_sessions.push(session);
            }
            Ok::<_, export_store::StoreError>(())
        })
        .unwrap();

    let root = tempfile::tempdir().unwrap();
    let files: Arc<dyn FileStore> =
        Arc::new(LocalFileStore::new(root.path(), MasterKey::generate()).unwrap());
    let from_store = engine_with(db, files.clone(), EngineConfig::default());
    let job = run(&from_store, request("sessions", ExportFormat::Csv));
    let csv = stored(files.as_ref(), &job);

    // The same export from the records in memory, rendered straight into a buffer.
    let in_memory = export_core::dataset::SessionsDataset(Arc::new(
        export_core::source::PracticeSource(all.clone()),
    ));
    let filters = export_core::dataset::Filters::default();
    let mut rows = in_memory
        .rows(&DatasetQuery {
            requested_by: margaret,
            patients: &patients,
            filters: &filters,
            generated_at: Utc::now(),
        })
        .unwrap();
    let mut expected = Cursor::new(Vec::new());
    export_core::produce::Producer::new()
        .write_rows(ExportFormat::Csv, "sessions", rows.as_mut(), &mut expected)
        .unwrap();
    let expected = expected.into_inner();
    assert_eq!(
        String::from_utf8_lossy(&csv),
        String::from_utf8_lossy(&expected)
    );

    let mut reader = csv::Reader::from_reader(csv.as_slice());
    let ids: Vec<String> = reader.records().map(|r| r.unwrap()[0].to_owned()).collect();
    let mut want: Vec<_> = all
        .therapy_sessions
        .iter()
        .filter(|s| patients.contains(&s.patient_id))
        .map(|s| (s.session_date, s.id))
        .collect();
    want.sort();
    assert!(want.len() > extra);
    assert_eq!(
        ids,
        want.iter()
            .map(|(_, id)| id.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(job.row_count, Some(want.len() as i64));
}

test_on_both_backends!(sessions_keep_their_order_across_pages);

test_on_both_backends!(a_full_disk_fails_the_job_after_max_attempts_and_leaves_nothing);

/// A 1 MiB tmpfs mounted for a test and unmounted after it.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount() -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "EXPORT_TEST_TMPFS is set but a tmpfs cannot be mounted"
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// The real thing rather than a fake store: the storage volume fills up (a 1 MiB tmpfs, a
/// 15.9 MB export). Every attempt fails with the disk's own words, the job ends failed after
/// `max_attempts` and nothing is left on the disk. Needs root to mount, so it runs when
/// EXPORT_TEST_TMPFS is set (CI sets it).
fn a_full_disk_fails_the_job_after_max_attempts_and_leaves_nothing(db: &TestDatabase) {
    if std::env::var_os("EXPORT_TEST_TMPFS").is_none() {
        eprintln!("SKIPPED: set EXPORT_TEST_TMPFS=1 (as root) to fill a real tmpfs");
        return;
    }
    let disk = Tmpfs::mount();
    let files = Arc::new(LocalFileStore::new(disk.0.path(), MasterKey::generate()).unwrap());
    let engine = engine_over(db, files, None);
    let actor = Actor {
        user_id: Uuid::parse_str(MARGARET).unwrap(),
        role: Role::Therapist,
    };
    let start = Utc::now();
    let job = engine
        .submit(
            &actor,
            request("bench", ExportFormat::Csv),
            None,
            &RequestOrigin::default(),
            start,
        )
        .unwrap();
    // The clock moves an hour between attempts, past any backoff.
    for attempt in 1..=3 {
        let after = engine
            .run_next("full-disk", start + Duration::hours(attempt))
            .unwrap()
            .unwrap();
        assert_eq!((after.id, after.attempts), (job.id, attempt as i32));
        let status = if attempt < 3 {
            JobStatus::Pending
        } else {
            JobStatus::Failed
        };
        assert_eq!(after.status, status, "after attempt {attempt}");
        let reason = after.error_message.unwrap_or_default();
        assert!(
            reason.starts_with("storage unavailable") && reason.contains("space"),
            "the reason says the disk is full: {reason}"
        );
        let left: Vec<_> = std::fs::read_dir(disk.0.path().join("exports"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "nothing left on the disk: {left:?}");
    }
    assert_eq!(
        engine
            .run_next("full-disk", start + Duration::hours(9))
            .unwrap(),
        None,
        "a failed job is not claimed again"
    );
}
