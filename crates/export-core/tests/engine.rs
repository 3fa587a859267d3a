//! The engine end to end on SQLite and PostgreSQL: the demo practice seeded into the database,
//! files in a real storage directory, every step audited, the audit chain intact at the end.

use std::io::Read;

use chrono::{TimeZone, Utc};
use export_core::audit::{ChainReport, verify_store};
use export_core::engine::{Actor, EngineConfig, EngineError, ExportRequest, RequestOrigin};
use export_domain::{
    AuditAction, AuditOutcome, FullRecordInput, JobStatus, Role, SessionNotesInput,
};
use export_store::testing::TestDatabase;
use export_store::{audit, test_on_both_backends};
use uuid::Uuid;

mod common;
use common::*;

fn progress_report(patient: &str, format: &str) -> ExportRequest {
    ExportRequest::ProgressReport(progress_report_request(
        patient,
        ("2025-01-01", "2025-06-30"),
        format,
    ))
}

fn origin() -> RequestOrigin {
    RequestOrigin {
        ip_address: Some("203.0.113.7".into()),
        user_agent: Some("tests".into()),
        request_id: Some("req-1".into()),
    }
}

fn read(reader: &mut dyn Read) -> Vec<u8> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).unwrap();
    bytes
}

test_on_both_backends! {
    exports_go_from_request_to_download_and_are_audited,
    refusals_are_refused_and_audited,
}

fn exports_go_from_request_to_download_and_are_audited(db: &TestDatabase) {
    let files = tempfile::tempdir().unwrap();
    let engine = engine(db, files.path());
    let now = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
    let margaret = therapist(MARGARET);

    let job = engine
        .submit(
            &margaret,
            progress_report(NOA, "docx"),
            Some("key-1"),
            &origin(),
            now,
        )
        .unwrap();
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.patient_id, Some(Uuid::parse_str(NOA).unwrap()));
    let again = engine
        .submit(
            &margaret,
            progress_report(NOA, "docx"),
            Some("key-1"),
            &origin(),
            now,
        )
        .unwrap();
    assert_eq!(
        again.id, job.id,
        "the same idempotency key returns the same job"
    );

    let notes = practice_sessions(db, NOA, 3);
    let csv = engine
        .submit(
            &margaret,
            ExportRequest::SessionNotes(
                SessionNotesInput {
                    session_ids: notes,
                    format: "csv".into(),
                    ..Default::default()
                }
                .validate()
                .unwrap(),
            ),
            None,
            &origin(),
            now,
        )
        .unwrap();
    let record = engine
        .submit(
            &margaret,
            ExportRequest::FullRecord(
                FullRecordInput {
                    patient_id: NOA.into(),
                    format: "json".into(),
                    ..Default::default()
                }
                .validate()
                .unwrap(),
            ),
            None,
            &origin(),
            now,
        )
        .unwrap();

    let mut done = Vec::new();
    while let Some(job) = engine.run_next("worker-1", now).unwrap() {
        done.push(job);
    }
    assert_eq!(done.len(), 3);
    assert!(
        done.iter()
            .all(|j| j.status == JobStatus::Completed && j.attempts == 1),
        "{done:?}"
    );
    assert!(done.iter().all(|j| j.completed_at.unwrap() >= now
        && j.expires_at.unwrap() - j.completed_at.unwrap() == chrono::Duration::days(7)));

    let (completed, mut reader) = engine.download(&margaret, job.id, &origin(), now).unwrap();
    let docx = read(&mut reader);
    assert_eq!(docx.len() as i64, completed.file_size_bytes.unwrap());
    assert!(docx.starts_with(b"PK"), "a zip archive");
    let (_, mut reader) = engine.download(&margaret, csv.id, &origin(), now).unwrap();
    let text = String::from_utf8(read(&mut reader)).unwrap();
    assert_eq!(
        text.lines().count(),
        4,
        "header and three sessions:\n{text}"
    );
    let (_, mut reader) = engine
        .download(&margaret, record.id, &origin(), now)
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&read(&mut reader)).unwrap();
    assert_eq!(json["record"]["header"]["patient_name"], "נועה כהן");
    assert_eq!(
        json["data"]["therapy_sessions"].as_array().unwrap().len(),
        25
    );

    // Nothing readable on disk: the files are encrypted.
    for entry in std::fs::read_dir(files.path().join("exports")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(bytes.starts_with(b"EXPENC01"));
    }

    let mut conn = db.store.connection().unwrap();
    let trail = audit::list(
        &mut conn,
        &audit::AuditFilter {
            export_job_id: Some(job.id),
            ..Default::default()
        },
    )
    .unwrap();
    let actions: Vec<AuditAction> = trail.iter().map(|e| e.entry.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::Requested,
            AuditAction::Created,
            AuditAction::Downloaded
        ]
    );
    assert_eq!(trail[2].entry.ip_address.as_deref(), Some("203.0.113.7"));
    assert!(matches!(
        verify_store(&db.store).unwrap(),
        ChainReport::Intact { entries: 9, .. }
    ));
}

fn practice_sessions(db: &TestDatabase, patient: &str, count: usize) -> Vec<String> {
    let mut conn = db.store.connection().unwrap();
    export_store::clinical::list_patient_sessions(
        &mut conn,
        Uuid::parse_str(patient).unwrap(),
        Some(export_domain::SessionStatus::Processed),
        None,
        None,
    )
    .unwrap()
    .into_iter()
    .take(count)
    .map(|s| s.id.to_string())
    .collect()
}

fn refusals_are_refused_and_audited(db: &TestDatabase) {
    let files = tempfile::tempdir().unwrap();
    let engine = engine(db, files.path());
    let now = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();

    // Another therapist's patient, a former therapist, a patient user.
    let refused = [
        (
            therapist(MARGARET),
            progress_report("40537465-5a5c-59c4-8835-51206662be6b", "pdf"),
        ),
        (therapist(DANIEL), progress_report(JOSE, "pdf")),
        (
            Actor {
                user_id: Uuid::parse_str(NOA).unwrap(),
                role: Role::Patient,
            },
            progress_report(NOA, "pdf"),
        ),
    ];
    for (actor, request) in refused {
        let err = engine
            .submit(&actor, request, None, &origin(), now)
            .unwrap_err();
        assert!(matches!(err, EngineError::Forbidden(_)), "{err}");
    }

    // Another user's job: not found for them, and the attempt is audited.
    let job = engine
        .submit(
            &therapist(MARGARET),
            progress_report(NOA, "json"),
            None,
            &origin(),
            now,
        )
        .unwrap();
    engine.run_next("w", now).unwrap().unwrap();
    let intruder = therapist(DANIEL);
    assert!(matches!(
        engine.job(&intruder, job.id),
        Err(EngineError::JobNotFound(_))
    ));
    assert!(matches!(
        engine.download(&intruder, job.id, &origin(), now),
        Err(EngineError::JobNotFound(_))
    ));

    let mut conn = db.store.connection().unwrap();
    let denied = audit::list(&mut conn, &audit::AuditFilter::default()).unwrap();
    let denied: Vec<_> = denied
        .iter()
        .filter(|e| e.entry.outcome == AuditOutcome::Denied)
        .map(|e| e.entry.action)
        .collect();
    assert_eq!(
        denied,
        [
            AuditAction::Requested,
            AuditAction::Requested,
            AuditAction::Requested,
            AuditAction::Downloaded
        ]
    );
    assert!(matches!(
        verify_store(&db.store).unwrap(),
        ChainReport::Intact { .. }
    ));
}

test_on_both_backends! {
    jobs_are_listed_cancelled_deleted_and_expired,
}

fn jobs_are_listed_cancelled_deleted_and_expired(db: &TestDatabase) {
    let files = tempfile::tempdir().unwrap();
    let engine = engine(db, files.path());
    let margaret = therapist(MARGARET);
    let t0 = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
    let minutes = |m| t0 + chrono::Duration::minutes(m);

    let kept = engine
        .submit(
            &margaret,
            progress_report(NOA, "json"),
            None,
            &origin(),
            minutes(0),
        )
        .unwrap();
    let deleted = engine
        .submit(
            &margaret,
            progress_report(NOA, "pdf"),
            None,
            &origin(),
            minutes(1),
        )
        .unwrap();
    let cancelled = engine
        .submit(
            &margaret,
            progress_report(NOA, "docx"),
            None,
            &origin(),
            minutes(2),
        )
        .unwrap();
    let listed: Vec<Uuid> = engine
        .list_jobs(&margaret, None, None, 10)
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, [cancelled.id, deleted.id, kept.id], "newest first");

    // Cancel before any worker gets to it: workers then find only the other two.
    let after = engine
        .cancel_or_delete(&margaret, cancelled.id, &origin(), minutes(3))
        .unwrap();
    assert_eq!(after.status, JobStatus::Cancelled);
    assert_eq!(
        engine.run_next("w", minutes(4)).unwrap().unwrap().id,
        kept.id
    );
    assert_eq!(
        engine.run_next("w", minutes(4)).unwrap().unwrap().id,
        deleted.id
    );
    assert!(engine.run_next("w", minutes(4)).unwrap().is_none());
    assert_eq!(
        engine
            .list_jobs(&margaret, Some(JobStatus::Completed), None, 10)
            .unwrap()
            .len(),
        2
    );

    // Delete a finished job: the row and the file go, the audit stays.
    let exports = files.path().join("exports");
    assert_eq!(std::fs::read_dir(&exports).unwrap().count(), 2);
    engine
        .cancel_or_delete(&margaret, deleted.id, &origin(), minutes(5))
        .unwrap();
    assert!(matches!(
        engine.job(&margaret, deleted.id),
        Err(EngineError::JobNotFound(_))
    ));
    assert_eq!(std::fs::read_dir(&exports).unwrap().count(), 1);

    // Expiry after seven days: a dry run counts, the real run deletes, marks and audits.
    let week = engine.job(&margaret, kept.id).unwrap().expires_at.unwrap();
    let size = engine
        .job(&margaret, kept.id)
        .unwrap()
        .file_size_bytes
        .unwrap() as u64;
    assert_eq!(
        engine
            .expire(week - chrono::Duration::seconds(1), true)
            .map(|r| (r.expired, r.bytes))
            .unwrap(),
        (0, 0)
    );
    assert_eq!(
        engine
            .expire(week, true)
            .map(|r| (r.expired, r.bytes))
            .unwrap(),
        (1, size)
    );
    assert_eq!(
        std::fs::read_dir(&exports).unwrap().count(),
        1,
        "a dry run deletes nothing"
    );
    assert_eq!(
        engine
            .expire(week, false)
            .map(|r| (r.expired, r.bytes))
            .unwrap(),
        (1, size)
    );
    assert_eq!(std::fs::read_dir(&exports).unwrap().count(), 0);
    let expired = engine.job(&margaret, kept.id).unwrap();
    assert_eq!(
        (expired.status, expired.wrapped_key),
        (JobStatus::Expired, None)
    );
    assert!(matches!(
        engine.download(&margaret, kept.id, &origin(), week),
        Err(EngineError::NotReady { .. })
    ));
    assert_eq!(
        engine
            .expire(week, false)
            .map(|r| (r.expired, r.bytes))
            .unwrap(),
        (0, 0),
        "expires once"
    );

    let mut conn = db.store.connection().unwrap();
    let actions: Vec<AuditAction> = audit::list(&mut conn, &audit::AuditFilter::default())
        .unwrap()
        .iter()
        .map(|e| e.entry.action)
        .collect();
    for action in [
        AuditAction::Cancelled,
        AuditAction::Deleted,
        AuditAction::Expired,
    ] {
        assert_eq!(
            actions.iter().filter(|a| **a == action).count(),
            1,
            "{action}"
        );
    }
    assert!(matches!(
        verify_store(&db.store).unwrap(),
        ChainReport::Intact { .. }
    ));
}

test_on_both_backends! {
    signed_links_reopen_the_file_while_their_user_still_may,
}

fn signed_links_reopen_the_file_while_their_user_still_may(db: &TestDatabase) {
    let files = tempfile::tempdir().unwrap();
    let engine = engine(db, files.path()).with_link_signer(export_core::links::LinkSigner::new(
        b"links secret for the tests, 32 bytes".to_vec(),
    ));
    let margaret = therapist(MARGARET);
    let now = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
    let job = engine
        .submit(
            &margaret,
            progress_report(NOA, "json"),
            None,
            &origin(),
            now,
        )
        .unwrap();
    engine.run_next("w", now).unwrap().unwrap();

    assert!(matches!(
        engine.issue_link(
            &therapist(DANIEL),
            job.id,
            chrono::Duration::minutes(15),
            &origin(),
            now
        ),
        Err(EngineError::JobNotFound(_))
    ));
    let token = engine
        .issue_link(
            &margaret,
            job.id,
            chrono::Duration::minutes(15),
            &origin(),
            now,
        )
        .unwrap();
    let (opened, mut reader) = engine
        .download_with_link(&token, &origin(), now + chrono::Duration::minutes(14))
        .unwrap();
    assert_eq!(opened.id, job.id);
    assert!(!read(&mut reader).is_empty());

    let Err(expired) =
        engine.download_with_link(&token, &origin(), now + chrono::Duration::minutes(15))
    else {
        panic!("an expired link opened the file")
    };
    assert!(
        matches!(
            expired,
            EngineError::Link(export_core::links::LinkError::Expired(_))
        ),
        "{expired}"
    );
    let forged = token.replace(
        &Uuid::parse_str(MARGARET).unwrap().simple().to_string(),
        &Uuid::parse_str(DANIEL).unwrap().simple().to_string(),
    );
    assert!(matches!(
        engine.download_with_link(&forged, &origin(), now),
        Err(EngineError::Link(
            export_core::links::LinkError::BadSignature
        ))
    ));

    // The care relationship ends: the link no longer opens the file.
    db.execute(&format!("UPDATE therapist_patients SET is_active = false WHERE therapist_id = '{MARGARET}' AND patient_id = '{NOA}'"));
    assert!(matches!(
        engine.download_with_link(&token, &origin(), now),
        Err(EngineError::Forbidden(_))
    ));

    let mut conn = db.store.connection().unwrap();
    let trail: Vec<(AuditAction, AuditOutcome)> =
        audit::list(&mut conn, &audit::AuditFilter::default())
            .unwrap()
            .iter()
            .filter(|e| {
                matches!(
                    e.entry.action,
                    AuditAction::Shared | AuditAction::Downloaded
                )
            })
            .map(|e| (e.entry.action, e.entry.outcome))
            .collect();
    assert_eq!(
        trail,
        [
            (AuditAction::Shared, AuditOutcome::Success),
            (AuditAction::Downloaded, AuditOutcome::Success),
            (AuditAction::Downloaded, AuditOutcome::Denied),
            (AuditAction::Downloaded, AuditOutcome::Denied),
            (AuditAction::Downloaded, AuditOutcome::Denied),
        ]
    );
    assert!(matches!(
        verify_store(&db.store).unwrap(),
        ChainReport::Intact { .. }
    ));
}

test_on_both_backends! {
    failures_end_in_failed_and_statistics_count_them,
}

fn failures_end_in_failed_and_statistics_count_them(db: &TestDatabase) {
    let files = tempfile::tempdir().unwrap();
    db.seed_fixtures();
    let config = EngineConfig {
        max_attempts: 1,
        ..EngineConfig::default()
    };
    let engine = engine_in(db, files.path(), config);
    let margaret = therapist(MARGARET);
    let now = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
    let ok = engine
        .submit(&margaret, progress_report(NOA, "pdf"), None, &origin(), now)
        .unwrap();
    let doomed = engine
        .submit(
            &margaret,
            progress_report(JOSE, "docx"),
            None,
            &origin(),
            now,
        )
        .unwrap();
    // The patient's records disappear between request and work: the job cannot be made.
    db.execute(&format!("DELETE FROM users WHERE id = '{JOSE}'"));
    let mut results = [
        engine.run_next("w", now).unwrap().unwrap(),
        engine.run_next("w", now).unwrap().unwrap(),
    ];
    results.sort_by_key(|j| j.id == doomed.id);
    assert_eq!(
        (results[0].id, results[0].status),
        (ok.id, JobStatus::Completed)
    );
    assert_eq!(
        (results[1].id, results[1].status),
        (doomed.id, JobStatus::Failed)
    );
    assert_eq!(
        results[1].error_message,
        Some(format!("patient {JOSE} does not exist"))
    );

    let stats = export_core::metrics::stats(
        &db.store,
        now + chrono::Duration::minutes(1),
        chrono::Duration::days(7),
    )
    .unwrap();
    assert_eq!(stats.total, 2);
    assert_eq!(stats.by_type["progress_report"], 2);
    assert_eq!((stats.by_format["pdf"], stats.by_format["docx"]), (1, 1));
    assert_eq!(
        (stats.by_status["completed"], stats.by_status["failed"]),
        (1, 1)
    );
    assert_eq!(stats.success_rate, Some(0.5));
    assert_eq!(stats.slowest.len(), 1);
    assert_eq!(stats.slowest[0].job_id, ok.id);
    assert!(
        stats.slowest[0].bytes > 0
            && stats.slowest[0].rows > 0
            && stats.average_duration_seconds.unwrap() > 0.0
    );
    let old = export_core::metrics::stats(
        &db.store,
        now + chrono::Duration::days(8),
        chrono::Duration::days(7),
    )
    .unwrap();
    assert_eq!((old.total, old.success_rate), (0, None));

    let failed = db.audit_of(AuditAction::Failed);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].entry.export_job_id, Some(doomed.id));
}
