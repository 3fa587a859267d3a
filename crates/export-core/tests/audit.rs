//! Tamper tests, on SQLite and PostgreSQL: editing or deleting one audit row behind the store's
//! back makes the verifier name exactly that entry.

use chrono::{Duration, TimeZone, Utc};
use export_core::audit::{ChainReport, verify_store};
use export_domain::{AuditAction, AuditOutcome, NewAuditEntry, chain_hash};
use export_store::testing::TestDatabase;
use export_store::{audit, test_on_both_backends};
use uuid::Uuid;

/// Five entries appended through the store.
fn trail(db: &TestDatabase) {
    let actions = [
        AuditAction::Requested,
        AuditAction::Created,
        AuditAction::Downloaded,
        AuditAction::Shared,
        AuditAction::Deleted,
    ];
    db.store
        .transaction(|conn| {
            for (i, action) in actions.into_iter().enumerate() {
                audit::append(
                    conn,
                    NewAuditEntry {
                        id: Uuid::from_u128(100 + i as u128),
                        export_job_id: Some(Uuid::from_u128(7)),
                        user_id: Some(Uuid::from_u128(1)),
                        patient_id: Some(Uuid::from_u128(2)),
                        action,
                        outcome: AuditOutcome::Success,
                        ip_address: Some("127.0.0.1".into()),
                        user_agent: Some("test".into()),
                        request_id: Some(format!("req-{i}")),
                        metadata: serde_json::json!({"bytes": 1000 + i}),
                        created_at: Utc.with_ymd_and_hms(2025, 5, 1, 9, 0, 0).unwrap()
                            + Duration::minutes(i as i64),
                    },
                )?;
            }
            Ok(())
        })
        .unwrap();
}

test_on_both_backends! {
    an_untouched_trail_is_intact,
    an_edited_row_is_named,
    a_deleted_row_is_named,
    an_edited_and_rehashed_row_is_named,
}

fn an_untouched_trail_is_intact(db: &TestDatabase) {
    assert!(matches!(
        verify_store(&db.store).unwrap(),
        ChainReport::Intact { entries: 0, .. }
    ));
    trail(db);
    let report = verify_store(&db.store).unwrap();
    let ChainReport::Intact { entries, head_hash } = &report else {
        panic!("{report}")
    };
    assert_eq!(*entries, 5);
    assert_eq!(head_hash.len(), 64);
    assert!(
        report
            .to_string()
            .starts_with("audit trail intact: 5 entries")
    );
}

fn an_edited_row_is_named(db: &TestDatabase) {
    trail(db);
    db.execute("UPDATE export_audit_log SET ip_address = '10.6.6.6' WHERE sequence = 3");
    let report = verify_store(&db.store).unwrap();
    assert_eq!(report, ChainReport::Altered { sequence: 3 });
    assert_eq!(report.to_string(), "audit entry 3 was altered");
}

fn a_deleted_row_is_named(db: &TestDatabase) {
    trail(db);
    db.execute("DELETE FROM export_audit_log WHERE sequence = 2");
    assert_eq!(
        verify_store(&db.store).unwrap(),
        ChainReport::Removed { sequence: 2 }
    );
}

fn an_edited_and_rehashed_row_is_named(db: &TestDatabase) {
    trail(db);
    // Someone who knows the scheme rewrites entry 4 and recomputes its hash: the link entry 5
    // holds still points at the old hash.
    let mut conn = db.store.connection().unwrap();
    let entries = audit::list(&mut conn, &audit::AuditFilter::default()).unwrap();
    let mut forged = entries[3].entry.clone();
    forged.outcome = AuditOutcome::Denied;
    let hash = chain_hash(&entries[3].prev_hash, 4, &forged);
    db.execute(&format!(
        "UPDATE export_audit_log SET outcome = 'denied', entry_hash = '{hash}' WHERE sequence = 4"
    ));
    assert_eq!(
        verify_store(&db.store).unwrap(),
        ChainReport::Altered { sequence: 4 }
    );
}
