//! Seeding the demo practice from `fixtures/`, on SQLite and on PostgreSQL: the documented counts
//! arrive, and seeding again adds nothing.

use std::path::Path;

use export_domain::{Role, SessionStatus};
use export_store::testing::TestDatabase;
use export_store::{clinical, seed, test_on_both_backends};

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures"))
}

/// The counts fixtures/README.md documents, table by table.
const DOCUMENTED_COUNTS: [(&str, i64); 7] = [
    ("users", USERS),
    ("therapist_patients", RELATIONSHIPS),
    ("therapy_sessions", SESSIONS),
    ("goals", GOALS),
    ("assessments", ASSESSMENTS),
    ("diagnoses", DIAGNOSES),
    ("treatment_plans", PLANS),
];
const USERS: i64 = 16;
const RELATIONSHIPS: i64 = 14;
const SESSIONS: i64 = 305;
const GOALS: i64 = 32;
const ASSESSMENTS: i64 = 288;
const DIAGNOSES: i64 = 16;
const PLANS: i64 = 12;

test_on_both_backends! {
    seeding_loads_the_documented_counts_once,
}

fn seeding_loads_the_documented_counts_once(db: &TestDatabase) {
    let practice = seed::load_practice(fixtures()).unwrap();
    let first = db
        .store
        .transaction(|conn| seed::seed_practice(conn, &practice))
        .unwrap();
    for (table, count) in DOCUMENTED_COUNTS {
        assert_eq!(first.inserted[table] as i64, count, "{table} inserted");
        assert_eq!(first.already_present[table], 0, "{table} present");
    }
    let second = db
        .store
        .transaction(|conn| seed::seed_practice(conn, &practice))
        .unwrap();
    for (table, count) in DOCUMENTED_COUNTS {
        assert_eq!(second.inserted[table], 0, "{table} inserted twice");
        assert_eq!(
            second.already_present[table] as i64, count,
            "{table} present"
        );
    }

    let mut conn = db.store.connection().unwrap();
    assert_eq!(
        seed::count_clinical_rows(&mut conn).unwrap(),
        DOCUMENTED_COUNTS
    );
    assert_eq!(
        clinical::count_sessions_by_status(&mut conn).unwrap(),
        [
            (SessionStatus::Transcribing, 2),
            (SessionStatus::Processed, 300),
            (SessionStatus::Failed, 3)
        ]
    );
    let mut count = |role| clinical::list_users(&mut conn, Some(role)).unwrap().len();
    assert_eq!(
        (
            count(Role::Therapist),
            count(Role::Patient),
            count(Role::Admin)
        ),
        (3, 12, 1)
    );

    // What was stored reads back as what the fixture says, names in any script included.
    let patients = clinical::list_users(&mut conn, Some(Role::Patient)).unwrap();
    let scripts = |f: fn(char) -> bool| patients.iter().any(|p| p.full_name().chars().any(f));
    assert!(
        scripts(|c| ('\u{0590}'..='\u{05FF}').contains(&c)),
        "a Hebrew name"
    );
    assert!(
        scripts(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c)),
        "a CJK name"
    );
    let sample = &practice.therapy_sessions[17];
    let stored = clinical::get_sessions(&mut conn, &[sample.id]).unwrap();
    assert_eq!(stored, std::slice::from_ref(sample));
}
