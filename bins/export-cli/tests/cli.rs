//! The real `export-cli` binary against a real SQLite file: `demo` migrates, seeds and lists;
//! running it again adds nothing; a bad database URL is a clear error (exit status 2), not a panic.

use std::process::{Command, Output};

fn export_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_export-cli"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env("RUST_LOG", "warn")
        .env_remove("EXPORT_DATABASE_URL")
        .args(args)
        .output()
        .expect("export-cli runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn line_with<'a>(text: &'a str, start: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no line starting with {start:?} in:\n{text}"))
}

#[test]
fn demo_seeds_once_and_lists_the_practice() {
    let folder = tempfile::tempdir().unwrap();
    let database = folder.path().join("nested/export.db");
    let database = database.to_str().unwrap();

    let first = stdout(&export_cli(&["--database", database, "demo"]));
    // Every migration of the SQLite folder, the latest named by its version.
    let mut versions: Vec<String> = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../migrations/sqlite"
    ))
    .unwrap()
    .map(|e| {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        name.split('_').next().unwrap().replace('-', "")
    })
    .collect();
    versions.sort();
    let expected = format!(
        "is migrated: {} migrations, the latest {}",
        versions.len(),
        versions.last().unwrap()
    );
    assert!(
        versions.len() >= 5 && first.contains(&expected),
        "{expected}\n{first}"
    );
    let seeded = line_with(&first, "therapy_sessions");
    assert_eq!(
        seeded.split_whitespace().collect::<Vec<_>>(),
        [
            "therapy_sessions",
            "305",
            "inserted",
            "0",
            "already",
            "present"
        ]
    );
    assert_eq!(
        line_with(&first, "processed").split_whitespace().nth(1),
        Some("300")
    );
    assert!(first.contains("(primary, active)"), "{first}");
    assert!(first.contains("(primary, inactive)"), "{first}");
    assert!(first.contains("(secondary, active)"), "{first}");

    let second = stdout(&export_cli(&["--database", database, "seed"]));
    let again = line_with(&second, "therapy_sessions");
    assert_eq!(
        again.split_whitespace().collect::<Vec<_>>(),
        [
            "therapy_sessions",
            "0",
            "inserted",
            "305",
            "already",
            "present"
        ]
    );

    let listed = stdout(&export_cli(&[
        "--database",
        &format!("sqlite://{database}"),
        "list",
    ]));
    assert_eq!(
        line_with(&listed, "therapy_sessions")
            .split_whitespace()
            .nth(1),
        Some("305")
    );
}

#[test]
fn unsupported_database_url_is_a_clear_error() {
    let output = export_cli(&["--database", "mysql://localhost/x", "migrate"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unsupported database url"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn missing_fixtures_name_the_file() {
    let folder = tempfile::tempdir().unwrap();
    let database = folder.path().join("export.db");
    let output = export_cli(&[
        "--database",
        database.to_str().unwrap(),
        "seed",
        "--fixtures",
        folder.path().to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("users.json"), "{stderr}");
}

#[test]
fn master_key_with_sign_digits_is_a_clear_error() {
    // "+f" pair by pair was once 0x0f: this key was taken for 32 bytes of 0x0f.
    let folder = tempfile::tempdir().unwrap();
    let database = folder.path().join("export.db");
    let key = "+f".repeat(32);
    let output = Command::new(env!("CARGO_BIN_EXE_export-cli"))
        .env("RUST_LOG", "warn")
        .env("EXPORT_MASTER_KEY", &key)
        .args([
            "--database",
            database.to_str().unwrap(),
            "expire",
            "--dry-run",
        ])
        .arg("--storage")
        .arg(folder.path().join("files"))
        .output()
        .expect("export-cli runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "the master key must be 64 hex digits (32 bytes): it holds a character other than 0-9, a-f and A-F"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("+f+f"), "the key is not echoed: {stderr}");
}
