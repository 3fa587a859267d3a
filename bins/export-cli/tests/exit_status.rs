//! `export-cli` ends with its own exit status, never a crash: 20 runs each of `token` and `audit
//! verify` all exit 0. On PostgreSQL they once died of SIGSEGV or SIGABRT in about one run in
//! two: the pool was still opening a spare (TLS) connection on its own thread while the process
//! exited and tore libpq and OpenSSL down. Runs on SQLite, and on PostgreSQL when
//! EXPORT_TEST_POSTGRES_URL is set (`scripts/test` sets it when the server answers).

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use export_core::testing::*;
use export_store::test_on_both_backends;
use export_store::testing::TestDatabase;

const RUNS: usize = 20;

fn export_cli(db: &TestDatabase, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_export-cli"))
        .args(["--database", &db.url])
        .args(args)
        .env("RUST_LOG", "warn")
        .env("EXPORT_TOKEN_SECRET", "a test secret of at least 32 bytes!")
        .output()
        .unwrap()
}

/// Runs `args` `RUNS` times and returns the stdout of each run, asserting that every run exited
/// with 0 (a run killed by a signal has no code; the signal is named).
fn run_every_time_with_0(db: &TestDatabase, args: &[&str]) -> Vec<String> {
    (0..RUNS)
        .map(|run| {
            let output = export_cli(db, args);
            assert_eq!(
                output.status.code(),
                Some(0),
                "{args:?}, run {} of {RUNS}: {:?} (signal {:?}); stderr: {}",
                run + 1,
                output.status,
                output.status.signal(),
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        })
        .collect()
}

test_on_both_backends! {
    token_and_audit_verify_exit_0_twenty_times_of_twenty,
}

fn token_and_audit_verify_exit_0_twenty_times_of_twenty(db: &TestDatabase) {
    db.seed_fixtures();

    for token in run_every_time_with_0(db, &["token", "--user", MARGARET]) {
        assert_eq!(token.trim().split('.').count(), 3, "a JWT: {token}");
    }
    for report in run_every_time_with_0(db, &["audit", "verify"]) {
        assert!(report.starts_with("audit trail intact: "), "{report}");
    }
}
