//! `export-cli audit verify` on a real database, with the exit status a monitor reads: 0 when
//! the trail is intact, 1 when an entry was tampered with, 2 when the trail could not be checked
//! (a database nothing listens for, bad arguments), never a crash.

use std::process::{Command, Output};

use chrono::{TimeZone, Utc};
use export_domain::{AuditAction, AuditOutcome, NewAuditEntry};
use export_store::testing::TestDatabase;
use export_store::{audit, test_on_both_backends};
use uuid::Uuid;

fn export_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_export-cli"))
        .env("RUST_LOG", "warn")
        .env_remove("EXPORT_DATABASE_URL")
        .args(args)
        .output()
        .unwrap()
}

fn verify(url: &str) -> (Option<i32>, String) {
    let output = export_cli(&["--database", url, "audit", "verify"]);
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap().trim().to_owned(),
    )
}

test_on_both_backends! {
    verify_reports_an_intact_trail_then_the_edited_entry,
}

fn verify_reports_an_intact_trail_then_the_edited_entry(db: &TestDatabase) {
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
    let (code, out) = verify(&db.url);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with("audit trail intact: 3 entries, head hash "),
        "{out}"
    );

    db.execute("UPDATE export_audit_log SET action = 'deleted' WHERE sequence = 2");
    assert_eq!(
        verify(&db.url),
        (Some(1), "audit entry 2 was altered".to_owned())
    );
}

/// A port on this machine nothing listens on: bound once by the system's choice, then let go.
fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn verify_of_an_unreachable_database_is_status_2_not_a_verdict() {
    let url = format!("postgres://postgres@127.0.0.1:{}/test", unused_port());
    let output = export_cli(&["--database", &url, "audit", "verify"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot open the database at postgres://"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "",
        "no verdict printed"
    );
}

#[test]
fn verify_with_bad_arguments_is_status_2() {
    let output = export_cli(&["audit", "verify", "--entries", "3"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = export_cli(&["audit", "check"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn help_documents_the_exit_statuses() {
    for args in [&["--help"][..], &["audit", "verify", "--help"]] {
        let output = export_cli(args);
        assert_eq!(output.status.code(), Some(0));
        let help = String::from_utf8(output.stdout).unwrap();
        for line in [
            "Exit status:",
            "0  done (audit verify: the audit trail is intact)",
            "1  audit verify: the audit trail is broken",
            "2  the command could not do its work",
        ] {
            assert!(
                help.contains(line),
                "{args:?} --help lacks {line:?}:\n{help}"
            );
        }
    }
}
