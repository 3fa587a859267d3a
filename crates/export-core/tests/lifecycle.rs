//! Every export type in every format it allows, and every built-in dataset, from request to
//! downloaded file on SQLite and PostgreSQL, each file read back by a real reader: pdftotext for
//! PDF, python-docx for DOCX, calamine for XLSX, the csv crate for CSV, serde_json for JSON.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use export_core::engine::{
    Actor, EngineConfig, EngineError, ExportEngine, ExportRequest, RequestOrigin,
};
use export_core::storage::{LocalFileStore, MasterKey};
use export_domain::{
    AuditAction, AuditOutcome, DatasetInput, ExportFormat, ExportType, FullRecordInput, JobStatus,
    ProgressReportInput, Role, SessionNotesInput, TreatmentSummaryInput,
};
use export_store::testing::TestDatabase;
use export_store::{audit, test_on_both_backends};
use uuid::Uuid;

mod common;
use common::*;

/// Text every export about Zoë carries.
const MARKER: &str = "Brontë-Lefèvre";

fn zoe_sessions(db: &TestDatabase) -> Vec<String> {
    let mut conn = db.store.connection().unwrap();
    export_store::clinical::list_patient_sessions(
        &mut conn,
        Uuid::parse_str(ZOE).unwrap(),
        Some(export_domain::SessionStatus::Processed),
        None,
        None,
    )
    .unwrap()
    .iter()
    .take(4)
    .map(|s| s.id.to_string())
    .collect()
}

fn request(export_type: ExportType, format: ExportFormat, sessions: &[String]) -> ExportRequest {
    let format = format.as_str().to_owned();
    match export_type {
        ExportType::SessionNotes => ExportRequest::SessionNotes(
            SessionNotesInput {
                session_ids: sessions.to_vec(),
                format,
                ..Default::default()
            }
            .validate()
            .unwrap(),
        ),
        ExportType::ProgressReport => ExportRequest::ProgressReport(
            ProgressReportInput {
                patient_id: ZOE.into(),
                start_date: "2024-01-01".into(),
                end_date: "2026-12-31".into(),
                format,
                ..Default::default()
            }
            .validate()
            .unwrap(),
        ),
        ExportType::TreatmentSummary => ExportRequest::TreatmentSummary(
            TreatmentSummaryInput {
                patient_id: ZOE.into(),
                format,
                purpose: "transfer".into(),
                ..Default::default()
            }
            .validate()
            .unwrap(),
        ),
        ExportType::FullRecord => ExportRequest::FullRecord(
            FullRecordInput {
                patient_id: ZOE.into(),
                format,
                ..Default::default()
            }
            .validate()
            .unwrap(),
        ),
        ExportType::Dataset => dataset("sessions", format.as_str(), &[("patient_id", ZOE)]),
    }
}

fn dataset(name: &str, format: &str, filters: &[(&str, &str)]) -> ExportRequest {
    ExportRequest::Dataset(
        DatasetInput {
            format: format.into(),
            filters: filters
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
                .collect::<BTreeMap<_, _>>(),
            excel: false,
        }
        .validate(name)
        .unwrap(),
    )
}

/// The text of a downloaded file as its format's reader sees it, and its data rows when tabular.
fn read_back(format: ExportFormat, bytes: &[u8]) -> (String, Option<usize>) {
    match format {
        ExportFormat::Pdf => (pdf_text(bytes), None),
        ExportFormat::Docx => (docx_text(bytes), None),
        ExportFormat::Json => {
            let value: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            let rows = value.as_array().map(Vec::len);
            (value.to_string(), rows)
        }
        ExportFormat::Csv => {
            let mut reader = csv::Reader::from_reader(bytes);
            let header = reader.headers().unwrap().clone();
            let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
            let mut text = header.iter().collect::<Vec<_>>().join(",");
            for record in &records {
                text.push('\n');
                text.push_str(&record.iter().collect::<Vec<_>>().join(","));
            }
            (text, Some(records.len()))
        }
        ExportFormat::Xlsx => {
            let rows = xlsx_rows(bytes);
            (rows.join("\n"), Some(rows.len() - 1))
        }
    }
}

fn download(engine: &ExportEngine, who: &Actor, job: Uuid) -> Vec<u8> {
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let (_, mut reader) = engine
        .download(who, job, &RequestOrigin::default(), now)
        .unwrap();
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).unwrap();
    bytes
}

test_on_both_backends! {
    every_type_in_every_format_goes_from_request_to_a_readable_file,
    datasets_show_only_what_their_requester_may_see,
    expired_files_move_to_the_archive_when_there_is_one,
}

fn every_type_in_every_format_goes_from_request_to_a_readable_file(db: &TestDatabase) {
    let files = tempfile::tempdir().unwrap();
    let engine = engine(db, files.path());
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
    let margaret = actor(MARGARET, Role::Therapist);
    let sessions = zoe_sessions(db);
    assert_eq!(
        sessions.len(),
        4,
        "the fixtures give Zoë processed sessions"
    );

    let mut submitted = Vec::new();
    for &export_type in ExportType::ALL {
        for &format in export_type.formats() {
            let job = engine
                .submit(
                    &margaret,
                    request(export_type, format, &sessions),
                    None,
                    &RequestOrigin::default(),
                    now,
                )
                .unwrap();
            submitted.push((export_type, format, job.id));
        }
    }
    assert_eq!(
        submitted.len(),
        17,
        "5 + 3 + 3 + 2 + 4 type and format pairs"
    );
    while engine.run_next("worker", now).unwrap().is_some() {}

    for (export_type, format, id) in submitted {
        let what = format!("{export_type} as {format}");
        let job = engine.job(&margaret, id).unwrap();
        assert_eq!(
            job.status,
            JobStatus::Completed,
            "{what}: {:?}",
            job.error_message
        );
        let bytes = download(&engine, &margaret, id);
        assert_eq!(job.file_size_bytes, Some(bytes.len() as i64), "{what}");
        let (text, rows) = read_back(format, &bytes);
        let notes_table = export_type == ExportType::SessionNotes
            && matches!(format, ExportFormat::Csv | ExportFormat::Xlsx);
        if notes_table || (export_type == ExportType::Dataset && format != ExportFormat::Pdf) {
            let rows = rows.unwrap_or_else(|| panic!("{what} has rows"));
            assert_eq!(
                Some(rows as i64),
                job.row_count,
                "{what}: row count on the job"
            );
        }
        // Tabular session notes carry dates and notes, not the patient's name.
        if !notes_table {
            assert!(
                text.contains(MARKER),
                "{what} names the patient:\n{text:.400}"
            );
        }
        if export_type == ExportType::SessionNotes {
            assert_eq!(
                job.row_count,
                Some(4),
                "{what}: the four requested sessions"
            );
        }
    }
    let _conn = db.store.connection().unwrap();
    let created = db.audit_of(AuditAction::Created);
    assert_eq!(created.len(), 17, "one created entry per file");
}

fn datasets_show_only_what_their_requester_may_see(db: &TestDatabase) {
    let files = tempfile::tempdir().unwrap();
    let engine = engine(db, files.path());
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
    let origin = RequestOrigin::default();
    let margaret = actor(MARGARET, Role::Therapist);
    let daniel = actor(DANIEL, Role::Therapist);
    let helen = actor(HELEN, Role::Admin);

    let all_sessions = engine
        .submit(
            &margaret,
            dataset("sessions", "csv", &[]),
            None,
            &origin,
            now,
        )
        .unwrap();
    assert_eq!(all_sessions.patient_id, None);
    let goals = engine
        .submit(&margaret, dataset("goals", "xlsx", &[]), None, &origin, now)
        .unwrap();
    let processed = engine
        .submit(
            &margaret,
            dataset(
                "sessions",
                "json",
                &[
                    ("status", "processed"),
                    ("from", "2025-01-01"),
                    ("to", "2025-03-31"),
                ],
            ),
            None,
            &origin,
            now,
        )
        .unwrap();
    let trail = engine
        .submit(
            &helen,
            dataset("audit", "csv", &[("action", "requested")]),
            None,
            &origin,
            now,
        )
        .unwrap();
    while engine.run_next("worker", now).unwrap().is_some() {}

    // Margaret's active patients, and their sessions and goals, as the database has them.
    let margaret_id = Uuid::parse_str(MARGARET).unwrap();
    let mut conn = db.store.connection().unwrap();
    let patients: Vec<Uuid> =
        export_store::clinical::list_relationships(&mut conn, margaret_id, true)
            .unwrap()
            .into_iter()
            .filter(|l| l.is_active)
            .map(|l| l.patient_id)
            .collect();
    let mut session_count = 0;
    let mut goal_count = 0;
    let mut processed_in_q1 = 0;
    for patient in &patients {
        let sessions =
            export_store::clinical::list_patient_sessions(&mut conn, *patient, None, None, None)
                .unwrap();
        session_count += sessions.len();
        processed_in_q1 += sessions
            .iter()
            .filter(|s| {
                s.status == export_domain::SessionStatus::Processed
                    && s.session_date.date_naive() >= "2025-01-01".parse().unwrap()
                    && s.session_date.date_naive() <= "2025-03-31".parse().unwrap()
            })
            .count();
        goal_count += export_store::clinical::list_goals(&mut conn, *patient)
            .unwrap()
            .len();
    }
    assert!(session_count > 0 && goal_count > 0 && processed_in_q1 > 0);

    let csv = download(&engine, &margaret, all_sessions.id);
    let mut reader = csv::Reader::from_reader(csv.as_slice());
    assert_eq!(&reader.headers().unwrap()[1], "patient_id");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), session_count);
    assert!(
        rows.iter()
            .all(|r| patients.contains(&Uuid::parse_str(&r[1]).unwrap())),
        "only Margaret's patients"
    );
    assert!(!rows.iter().any(|r| &r[1] == LUKASZ));

    let workbook = download(&engine, &margaret, goals.id);
    let (_, goal_rows) = read_back(ExportFormat::Xlsx, &workbook);
    assert_eq!(goal_rows, Some(goal_count));
    // The goals carry a series: the workbook draws each goal's progress as a native bar chart,
    // on a sheet of its own with the numbers it draws, with its alternative text.
    let mut charts = export_core::testing::xlsx_charts(&workbook);
    let last = goal_count + 1;
    // The numbers beside the chart are the goals' own.
    let cells = charts["charts"][0]["cells"].take();
    let mut drawn: Vec<(String, i64)> = cells.as_array().unwrap()[1..]
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().to_owned(),
                row[1].as_f64().unwrap() as i64,
            )
        })
        .collect();
    let mut goals_of_margaret: Vec<(String, i64)> = patients
        .iter()
        .flat_map(|p| export_store::clinical::list_goals(&mut conn, *p).unwrap())
        .map(|g| (g.description, i64::from(g.progress_percentage)))
        .collect();
    drawn.sort();
    goals_of_margaret.sort();
    assert_eq!(drawn, goals_of_margaret);
    charts["charts"][0].as_object_mut().unwrap().remove("cells");
    assert_eq!(
        charts["charts"],
        serde_json::json!([{
            "sheet": "Chart",
            "kind": "BarChart",
            "direction": "bar",
            "title": "Progress toward each goal",
            "categories": [format!("Chart!$A$2:$A${last}")],
            "values": [format!("Chart!$B$2:$B${last}")],
        }]),
        "{charts}"
    );
    assert!(
        charts["alt"][0]
            .as_str()
            .unwrap()
            .starts_with("Each goal's progress"),
        "{charts}"
    );

    let json: serde_json::Value =
        serde_json::from_slice(&download(&engine, &margaret, processed.id)).unwrap();
    let json = json.as_array().unwrap();
    assert_eq!(json.len(), processed_in_q1);
    assert!(json.iter().all(|r| r["status"] == "processed"));
    assert!(
        json[0]["duration_minutes"].is_i64(),
        "typed cells stay typed"
    );

    let trail_csv = download(&engine, &helen, trail.id);
    let mut reader = csv::Reader::from_reader(trail_csv.as_slice());
    let trail_rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(
        trail_rows.len(),
        4,
        "the four requests before the audit export"
    );
    assert!(trail_rows.iter().all(|r| &r[2] == "requested"));
    assert!(
        !String::from_utf8_lossy(&trail_csv).contains(MARKER),
        "the audit trail names no one"
    );

    // Refusals: audited as denied. Bad input: a field error, not audited.
    let refusals: Vec<(Actor, ExportRequest)> = vec![
        (helen, dataset("sessions", "csv", &[])),
        (margaret, dataset("audit", "csv", &[])),
        (actor(ZOE, Role::Patient), dataset("goals", "csv", &[])),
        (
            margaret,
            dataset("sessions", "csv", &[("patient_id", LUKASZ)]),
        ),
        (daniel, dataset("goals", "json", &[("patient_id", ZOE)])),
    ];
    let denied_before = denied(db);
    for (who, request) in refusals {
        let err = engine
            .submit(&who, request, None, &origin, now)
            .unwrap_err();
        assert!(matches!(err, EngineError::Forbidden(_)), "{err}");
    }
    assert_eq!(denied(db), denied_before + 5);

    match engine.submit(
        &margaret,
        dataset("caseload", "csv", &[]),
        None,
        &origin,
        now,
    ) {
        Err(EngineError::DatasetNotFound { name, known }) => {
            assert_eq!(
                (name.as_str(), known.as_str()),
                ("caseload", "audit, goals, sessions")
            );
        }
        other => panic!("expected no such dataset, got {other:?}"),
    }
    let invalid: Vec<(ExportRequest, &str)> = vec![
        (
            dataset("sessions", "csv", &[("from", "2025-13-01")]),
            "filters.from",
        ),
        (
            dataset(
                "sessions",
                "csv",
                &[("from", "2025-03-01"), ("to", "2025-01-01")],
            ),
            "filters.to",
        ),
        (
            dataset("sessions", "csv", &[("status", "done")]),
            "filters.status",
        ),
        (
            dataset("sessions", "csv", &[("colour", "red")]),
            "filters.colour",
        ),
        (
            dataset("goals", "csv", &[("patient_id", "../etc")]),
            "filters.patient_id",
        ),
    ];
    for (request, field) in invalid {
        match engine.submit(&margaret, request, None, &origin, now) {
            Err(EngineError::Invalid(problems)) => {
                assert_eq!(problems.errors[0].field, field, "{problems}");
            }
            other => panic!("{field}: expected a field error, got {other:?}"),
        }
    }
    assert_eq!(denied(db), denied_before + 5, "bad input is not a refusal");
}

fn denied(db: &TestDatabase) -> usize {
    let mut conn = db.store.connection().unwrap();
    audit::list(&mut conn, &audit::AuditFilter::default())
        .unwrap()
        .iter()
        .filter(|e| e.entry.outcome == AuditOutcome::Denied)
        .count()
}

fn expired_files_move_to_the_archive_when_there_is_one(db: &TestDatabase) {
    use export_core::storage::{FileKey, FileStore};
    use sha2::{Digest, Sha256};

    let (files, archive_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master = MasterKey::generate();
    let archive = Arc::new(LocalFileStore::new(archive_dir.path(), master.clone()).unwrap());
    engine(db, files.path()); // seeds the practice
    let engine = engine_with(
        db,
        local_files(files.path(), &master),
        EngineConfig::default(),
    )
    .with_archive(archive.clone());
    let margaret = actor(MARGARET, Role::Therapist);
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
    let job = engine
        .submit(
            &margaret,
            request(ExportType::FullRecord, ExportFormat::Json, &[]),
            None,
            &RequestOrigin::default(),
            now,
        )
        .unwrap();
    let done = engine.run_next("worker", now).unwrap().unwrap();
    let key = FileKey::parse(done.file_key.as_deref().unwrap()).unwrap();
    assert!(files.path().join(key.as_str()).exists());

    let report = engine
        .expire(now + chrono::Duration::days(8), false)
        .unwrap();
    assert_eq!((report.expired, report.failed), (1, 0));
    assert!(
        !files.path().join(key.as_str()).exists(),
        "gone from the primary store"
    );
    let mut conn = db.store.connection().unwrap();
    let (archived_key, wrapped) = export_store::jobs::archived_file(&mut conn, job.id)
        .unwrap()
        .expect("the archive is on record");
    assert_eq!(archived_key, key.as_str());
    let mut copy = Vec::new();
    archive
        .open(&key, &wrapped)
        .unwrap()
        .read_to_end(&mut copy)
        .unwrap();
    let digest: String = Sha256::digest(&copy)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(Some(digest), done.sha256, "the archived copy is the file");
    let expired = db.audit_of_job(job.id, AuditAction::Expired);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].entry.metadata["archived"], true);
    // Users cannot reach it any more.
    let gone = engine.download(
        &margaret,
        job.id,
        &RequestOrigin::default(),
        now + chrono::Duration::days(8),
    );
    assert!(matches!(gone, Err(EngineError::NotReady { .. })));
}
