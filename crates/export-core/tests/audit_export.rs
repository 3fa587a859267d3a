//! The audit trail exported as CSV through the engine, on SQLite and PostgreSQL: read a page at a
//! time (a trail of several pages comes out whole, in chain order), as it stood when the export
//! began (an entry appended meanwhile is not in it), for administrators by their stored role only,
//! and on the trail itself.

use chrono::{Duration, TimeZone, Utc};
use export_core::dataset::Filters;
use export_core::engine::{EngineError, RequestOrigin};
use export_domain::{AuditAction, AuditOutcome, NewAuditEntry, Role};
use export_store::testing::TestDatabase;
use export_store::{audit, test_on_both_backends};
use uuid::Uuid;

mod common;
use common::*;

test_on_both_backends! {
    the_audit_trail_exports_page_by_page_as_it_stood_when_the_export_began,
    a_therapist_claiming_to_be_an_administrator_cannot_export_the_audit_trail,
}

fn entry(n: i64) -> NewAuditEntry {
    NewAuditEntry {
        id: Uuid::new_v4(),
        export_job_id: Some(Uuid::new_v4()),
        user_id: Some(Uuid::parse_str(MARGARET).unwrap()),
        patient_id: None,
        action: AuditAction::Requested,
        outcome: AuditOutcome::Success,
        ip_address: None,
        user_agent: None,
        request_id: Some(format!("req-{n}")),
        metadata: serde_json::json!({}),
        created_at: Utc.with_ymd_and_hms(2026, 5, 1, 9, 0, 0).unwrap() + Duration::seconds(n),
    }
}

fn the_audit_trail_exports_page_by_page_as_it_stood_when_the_export_began(db: &TestDatabase) {
    let files = tempfile::tempdir().unwrap();
    let engine = engine(db, files.path());
    // Two and a half pages of trail.
    db.store
        .transaction(|conn| {
            for n in 0..2500 {
                audit::append(conn, entry(n))?;
            }
            Ok(())
        })
        .unwrap();
    let now = Utc.with_ymd_and_hms(2026, 5, 2, 9, 0, 0).unwrap();
    let export = engine
        .export_audit_trail(
            &actor(HELEN, Role::Admin),
            &Filters::default(),
            &RequestOrigin::default(),
            now,
        )
        .unwrap();
    // Appended after the export began: not in it.
    db.store
        .transaction(|conn| audit::append(conn, entry(9999)).map(|_| ()))
        .unwrap();
    let mut csv = Vec::new();
    let rows = export.write_csv(&mut csv).unwrap();

    let mut reader = csv::Reader::from_reader(csv.as_slice());
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (sequence, request_id) = (column("sequence"), column("request_id"));
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    // The 2,500 entries and the export's own record, which is written before the first row.
    assert_eq!((rows, records.len()), (2501, 2501));
    let sequences: Vec<i64> = records
        .iter()
        .map(|r| r[sequence].parse().unwrap())
        .collect();
    assert!(
        sequences.windows(2).all(|w| w[1] == w[0] + 1),
        "whole and in chain order"
    );
    assert!(records.iter().all(|r| &r[request_id] != "req-9999"));
    let last = records.last().unwrap();
    assert_eq!(&last[column("action")], "downloaded");
    assert!(last[column("metadata")].contains("audit_export"));
}

fn a_therapist_claiming_to_be_an_administrator_cannot_export_the_audit_trail(db: &TestDatabase) {
    let files = tempfile::tempdir().unwrap();
    let engine = engine(db, files.path());
    let now = Utc.with_ymd_and_hms(2026, 5, 2, 9, 0, 0).unwrap();
    // The role the caller claims is not the one on record: the record decides.
    let refused = engine.export_audit_trail(
        &actor(MARGARET, Role::Admin),
        &Filters::default(),
        &RequestOrigin::default(),
        now,
    );
    assert!(
        matches!(refused, Err(EngineError::Forbidden(_))),
        "{refused:?}"
    );
    let mut conn = db.store.connection().unwrap();
    let trail = audit::list(&mut conn, &audit::AuditFilter::default()).unwrap();
    let last = &trail.last().unwrap().entry;
    assert_eq!(
        (last.action, last.outcome, last.user_id),
        (
            AuditAction::Downloaded,
            AuditOutcome::Denied,
            Some(Uuid::parse_str(MARGARET).unwrap())
        )
    );
}
