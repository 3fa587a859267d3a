//! What the worker-process tests share: the seeded practice, a patient's record made large,
//! worker processes whose log is read as it comes, and waits on events (a log line, a job's state
//! in the database) with a deadline instead of sleeps.
#![allow(dead_code)] // not every test file uses every helper

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Instant;

use export_core::engine::{EngineConfig, ExportEngine};
use export_core::storage::MasterKey;
use export_domain::{Practice, SessionStatus};
use export_store::clinical;
use export_store::testing::TestDatabase;
use uuid::Uuid;

pub use export_core::testing::*;

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

/// An engine over `db` storing its files in `storage` under `master`, whose sweep takes any file
/// no completed job points to, however fresh: what the tests that count files left use.
pub fn sweeping_engine(db: &TestDatabase, storage: &Path, master: &MasterKey) -> ExportEngine {
    let config = EngineConfig {
        leftover_grace: chrono::Duration::zero(),
        ..EngineConfig::default()
    };
    engine_with(db, local_files(storage, master), config)
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

/// The file names in the store's `exports/` folder.
pub fn stored_names(storage: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(storage.join("exports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}
