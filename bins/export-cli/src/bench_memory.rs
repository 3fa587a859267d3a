//! `export-bench-memory`: the bounded-memory benchmark of `make bench`. A worker produces the
//! `sessions` dataset from a seeded SQLite database into an encrypted local store (1,000,000
//! rows as CSV and XLSX, 100,000 as PDF), and the renderer alone renders the same rows, read
//! the same way, into a sink. Each case runs in a child process of its own, so its peak resident
//! memory (VmHWM) is its own; one JSON line per case and one per format comparing the two.

use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use export_core::dataset::{Dataset, DatasetQuery, SessionsDataset, check_filters};
use export_core::engine::{Actor, EngineConfig, ExportEngine, ExportRequest, RequestOrigin};
use export_core::produce::Producer;
use export_core::source::StoreSource;
use export_core::storage::{LocalFileStore, MasterKey};
use export_domain::{
    DatasetRequest, ExportFormat, ExtractedNotes, RelationshipType, Role, SessionStatus,
    TherapistPatient, TherapySession, User,
};
use export_store::{Store, clinical};
use uuid::Uuid;

/// Patients of the one therapist; each has a tenth of the sessions, so a `patient_id` filter
/// picks 100,000 of 1,000,000.
const PATIENTS: u64 = 10;
const THERAPIST: Uuid = Uuid::from_u128(0x7d25_348d_75bb_5e22_8073_05bf_d9b3_230c);

fn patient(index: u64) -> Uuid {
    Uuid::from_u128(0x54b4_40a5_f8fe_5f5d_bf49_0000_0000_0000 + u128::from(index))
}

const TOPICS: [&[&str]; 4] = [
    &["anxiety", "work stress"],
    &["sleep", "relationships"],
    &["grief"],
    &["panic", "avoidance"],
];

/// Session `i` of the benchmark, after the rows of `../shared/bench-dataset.md`.
fn session(i: u64) -> TherapySession {
    let start = DateTime::<Utc>::from_timestamp(1_735_725_600, 0).unwrap_or_default();
    let at = start + Duration::days((i % 365) as i64) + Duration::seconds((i / 365) as i64);
    TherapySession {
        id: Uuid::from_u128(0x5e55_0000_0000_4000_8000_0000_0000_0000 + u128::from(i)),
        patient_id: patient(i % PATIENTS),
        therapist_id: THERAPIST,
        session_date: at,
        duration_seconds: (30 + (i % 60) as i32) * 60,
        status: SessionStatus::Processed,
        transcript_text: None,
        transcript_segments: Vec::new(),
        therapist_summary: Some(format!(
            "Session {i}: discussed coping strategies, reviewed homework and agreed next steps."
        )),
        patient_summary: None,
        extracted_notes: Some(ExtractedNotes {
            key_topics: TOPICS[(i % 4) as usize]
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
            session_mood: ["positive", "neutral", "low"][(i % 3) as usize].to_owned(),
            ..ExtractedNotes::default()
        }),
        created_at: at,
    }
}

/// A database of `sessions` sessions of one therapist's patients, in `dir`.
fn seed(dir: &Path, sessions: u64) -> anyhow::Result<()> {
    let store = open(dir)?;
    let created = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    let user = |id, role, first: String| User {
        id,
        email: format!("{id}@bench.invalid"),
        first_name: first,
        last_name: "Bench".into(),
        role,
        date_of_birth: None,
        created_at: created,
        credentials: None,
    };
    store.transaction(|conn| {
        clinical::insert_user(conn, &user(THERAPIST, Role::Therapist, "Therapist".into()))?;
        for p in 0..PATIENTS {
            clinical::insert_user(
                conn,
                &user(patient(p), Role::Patient, format!("Patient {p:03}")),
            )?;
            clinical::insert_relationship(
                conn,
                &TherapistPatient {
                    id: Uuid::from_u128(0x11ab_0000_0000_4000_8000_0000_0000_0000 + u128::from(p)),
                    therapist_id: THERAPIST,
                    patient_id: patient(p),
                    relationship_type: RelationshipType::Primary,
                    is_active: true,
                    started_on: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default(),
                },
            )?;
        }
        for i in 0..sessions {
            clinical::insert_session(conn, &session(i))?;
        }
        Ok::<_, export_store::StoreError>(())
    })?;
    Ok(())
}

fn open(dir: &Path) -> anyhow::Result<Store> {
    let path = dir.join("bench.db");
    Ok(Store::open(path.to_str().context("a UTF-8 path")?)?)
}

/// The dataset request of a case: every session, or one patient's (100,000 of 1,000,000).
fn request(format: ExportFormat, rows: u64) -> DatasetRequest {
    let mut filters = std::collections::BTreeMap::new();
    if rows < 1_000_000 {
        filters.insert("patient_id".to_owned(), patient(0).to_string().into());
    }
    DatasetRequest {
        dataset: "sessions".into(),
        format,
        filters,
        excel: false,
    }
}

/// Discards what is written, remembering only where it is, so zip writers may seek in it.
#[derive(Debug, Default)]
struct SeekableSink {
    position: u64,
    len: u64,
}

impl Write for SeekableSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.position += bytes.len() as u64;
        self.len = self.len.max(self.position);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for SeekableSink {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let base = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::Current(by) => self.position.checked_add_signed(by),
            SeekFrom::End(by) => self.len.checked_add_signed(by),
        };
        self.position = base.ok_or_else(|| io::Error::other("seek before the start"))?;
        Ok(self.position)
    }
}

/// The renderer alone: the dataset's rows, read from the database as the worker reads them,
/// rendered into a sink.
fn run_render(dir: &Path, format: ExportFormat, rows: u64) -> anyhow::Result<serde_json::Value> {
    let store = open(dir)?;
    let dataset = SessionsDataset(Arc::new(StoreSource(store)));
    let request = request(format, rows);
    let filters =
        check_filters(&dataset, &request.filters).map_err(|e| anyhow::anyhow!("filters: {e:?}"))?;
    let patients: Vec<Uuid> = (0..PATIENTS)
        .map(patient)
        .filter(|p| filters.uuid("patient_id").is_none_or(|only| only == *p))
        .collect();
    let producer = Producer::new();
    let started = Instant::now();
    let mut source = dataset.rows(&DatasetQuery {
        requested_by: THERAPIST,
        patients: &patients,
        filters: &filters,
        generated_at: Utc::now(),
    })?;
    let mut sink = SeekableSink::default();
    let written = producer.write_rows(format, "Sessions", source.as_mut(), &mut sink)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(serde_json::json!({"rows": written, "seconds": seconds, "bytes": sink.len}))
}

/// A worker: submit the export, claim it, render, encrypt and store it, complete it.
fn run_worker(dir: &Path, format: ExportFormat, rows: u64) -> anyhow::Result<serde_json::Value> {
    let store = open(dir)?;
    let files_dir = tempfile::tempdir_in(dir)?;
    let engine = ExportEngine::new(
        store.clone(),
        Arc::new(LocalFileStore::new(
            files_dir.path(),
            MasterKey::generate(),
        )?),
        Arc::new(StoreSource(store)),
        EngineConfig::default(),
    );
    let actor = Actor {
        user_id: THERAPIST,
        role: Role::Therapist,
    };
    let now = Utc::now();
    engine.submit(
        &actor,
        ExportRequest::Dataset(request(format, rows)),
        None,
        &RequestOrigin::default(),
        now,
    )?;
    let started = Instant::now();
    let job = engine
        .run_next("bench-memory", now)?
        .context("the job was not claimed")?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        job.status == export_domain::JobStatus::Completed && job.row_count == Some(rows as i64),
        "the job did not complete with {rows} rows: {:?} {:?}",
        job.status,
        job.error_message
    );
    Ok(serde_json::json!({"rows": rows, "seconds": seconds, "bytes": job.file_size_bytes}))
}

/// The process's peak resident memory in MiB, from /proc (Linux).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kib / 1024.0 * 10.0).round() / 10.0)
}

/// Runs one case in a child process and returns its JSON line.
fn child(
    dir: &Path,
    mode: &str,
    format: ExportFormat,
    rows: u64,
) -> anyhow::Result<serde_json::Value> {
    let output = Command::new(std::env::current_exe()?)
        .args(["--case", mode, "--format", format.as_str(), "--rows"])
        .arg(rows.to_string())
        .arg("--dir")
        .arg(dir)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "case {mode} {format} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

#[allow(clippy::print_stdout)] // the benchmark's report is its output
fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(mode) = arg(&args, "--case") {
        let format: ExportFormat = arg(&args, "--format")
            .context("--format")?
            .parse()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let rows: u64 = arg(&args, "--rows").context("--rows")?.parse()?;
        let dir = PathBuf::from(arg(&args, "--dir").context("--dir")?);
        let mut line = match mode {
            "render" => run_render(&dir, format, rows)?,
            "worker" => run_worker(&dir, format, rows)?,
            other => anyhow::bail!("unknown case {other}"),
        };
        line["peak_rss_mb"] = peak_rss_mb().into();
        println!("{line}");
        return Ok(());
    }
    let only: Option<ExportFormat> = arg(&args, "--format")
        .map(|f| f.parse().map_err(|e| anyhow::anyhow!("{e}")))
        .transpose()?;
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    seed(dir.path(), 1_000_000)?;
    eprintln!(
        "seeded 1,000,000 sessions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let cases = [
        (ExportFormat::Csv, 1_000_000),
        (ExportFormat::Xlsx, 1_000_000),
        (ExportFormat::Pdf, 100_000),
    ];
    for (format, rows) in cases {
        if only.is_some_and(|f| f != format) {
            continue;
        }
        let render = child(dir.path(), "render", format, rows)?;
        let worker = child(dir.path(), "worker", format, rows)?;
        let per_s = |line: &serde_json::Value| {
            line["rows"].as_f64().unwrap_or(0.0) / line["seconds"].as_f64().unwrap_or(f64::MAX)
        };
        let round = |x: f64, places: i32| (x * 10f64.powi(places)).round() / 10f64.powi(places);
        println!(
            "{}",
            serde_json::json!({
                "bench": "memory",
                "format": format.as_str(),
                "rows": rows,
                "worker_rows_per_s": per_s(&worker).round(),
                "worker_seconds": round(worker["seconds"].as_f64().unwrap_or(0.0), 3),
                "worker_peak_rss_mb": worker["peak_rss_mb"],
                "stored_bytes": worker["bytes"],
                "render_rows_per_s": per_s(&render).round(),
                "render_seconds": round(render["seconds"].as_f64().unwrap_or(0.0), 3),
                "render_peak_rss_mb": render["peak_rss_mb"],
                "worker_vs_render": round(per_s(&worker) / per_s(&render), 2),
            })
        );
    }
    Ok(())
}
