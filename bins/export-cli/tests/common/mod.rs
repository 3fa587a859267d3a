//! What the worker-process tests share: the seeded practice, a patient's record made large,
//! worker processes whose log is read as it comes, and waits on events (a log line, a job's state
//! in the database) with a deadline instead of sleeps.
#![allow(dead_code)] // not every test file uses every helper

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use export_core::storage::MasterKey;
use export_domain::{ExportJob, Practice, SessionStatus};
use export_store::testing::TestDatabase;
use export_store::{clinical, jobs};
use uuid::Uuid;

pub const MARGARET: &str = "7d25348d-75bb-5e22-8073-05bfd9b3230c";
/// Margaret's patient whose record the tests make large.
pub const ZOE: &str = "4333a588-c713-5117-85aa-6c9dc288e1df";
/// How long any one awaited event may take before a test fails: far more than it needs.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Adds `count` copies of one of Zoë's processed sessions, an hour apart, so that her sessions
/// PDF takes seconds to render; their ids start at `first_id`.
pub fn enlarge_zoe(db: &TestDatabase, practice: &Practice, count: usize, first_id: u128) {
    let zoe = Uuid::parse_str(ZOE).unwrap();
    let template = practice
        .therapy_sessions
        .iter()
        .find(|s| s.patient_id == zoe && s.status == SessionStatus::Processed)
        .unwrap()
        .clone();
    db.store
        .transaction(|conn| {
            for i in 0..count {
                let mut session = template.clone();
                session.id = Uuid::from_u128(first_id + i as u128);
                session.session_date -= chrono::Duration::hours(i as i64);
                clinical::insert_session(conn, &session)?;
            }
            Ok(())
        })
        .unwrap();
}

/// An `export-cli work` process with `args` after `work`, and the lines of its log (stderr),
/// drained to the end so it never blocks on a full pipe.
pub fn worker(
    db: &TestDatabase,
    storage: &Path,
    master: &MasterKey,
    args: &[&str],
) -> (Child, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_export-cli"))
        .args(["--database", &db.url, "work"])
        .args(args)
        .arg("--storage")
        .arg(storage)
        .env("EXPORT_MASTER_KEY", master.to_hex())
        // Its own info lines ("worker NAME started"), everything else's warnings.
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
    (child, lines)
}

/// Waits for the log line containing `text` and returns it.
pub fn wait_for_line(lines: &Receiver<String>, text: &str) -> String {
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

pub fn job_now(db: &TestDatabase, id: Uuid) -> ExportJob {
    let mut conn = db.store.connection().unwrap();
    jobs::get_job(&mut conn, id).unwrap().unwrap()
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

/// The file names in the store's `exports/` folder.
pub fn stored_names(storage: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(storage.join("exports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}
