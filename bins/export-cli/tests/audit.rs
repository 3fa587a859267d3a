//! `export-cli audit verify` on a real database: intact, then tampered with.

use std::process::Command;

use chrono::{TimeZone, Utc};
use export_domain::{AuditAction, AuditOutcome, NewAuditEntry};
use export_store::audit;
use export_store::testing::TestDatabase;
use uuid::Uuid;

fn verify(db: &TestDatabase) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_export-cli"))
        .args(["--database", &db.url, "audit", "verify"])
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap().trim().to_owned(),
    )
}

#[test]
fn verify_reports_an_intact_trail_then_the_edited_entry() {
    let db = TestDatabase::sqlite();
    let mut conn = db.store.connection().unwrap();
    for i in 0..3u128 {
        audit::append(
            &mut conn,
            NewAuditEntry {
                id: Uuid::from_u128(i + 1),
                export_job_id: None,
                user_id: Some(Uuid::from_u128(9)),
                patient_id: None,
                action: AuditAction::Downloaded,
                outcome: AuditOutcome::Success,
                ip_address: None,
                user_agent: None,
                request_id: None,
                metadata: serde_json::json!({}),
                created_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, i as u32).unwrap(),
            },
        )
        .unwrap();
    }
    drop(conn);
    let (code, out) = verify(&db);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with("audit trail intact: 3 entries, head hash "),
        "{out}"
    );

    db.execute("UPDATE export_audit_log SET action = 'deleted' WHERE sequence = 2");
    assert_eq!(
        verify(&db),
        (Some(1), "audit entry 2 was altered".to_owned())
    );
}
