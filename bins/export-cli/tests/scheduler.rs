//! The scheduler on a controllable clock: three `export-cli tick` processes tick the same
//! simulated ten days on one database at once and make exactly one job per due time; a scheduler
//! down for three periods makes one coalesced job when it comes back, and records the skip.
//! Runs on SQLite, and on PostgreSQL when EXPORT_TEST_POSTGRES_URL is set.

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use export_core::engine::EngineConfig;
use export_core::storage::MasterKey;
use export_core::testing::*;
use export_domain::{RunStatus, ScheduleConfigInput, ScheduledReportInput};
use export_schedule::Schedule;
use export_schedule::scheduler::{Scheduler, checked};
use export_store::testing::TestDatabase;
use export_store::{jobs, runs, test_on_both_backends};
use uuid::Uuid;

struct Setup {
    scheduler: Scheduler,
    schedule_id: Uuid,
    rule: Schedule,
    storage: tempfile::TempDir,
    master: MasterKey,
}

/// The demo practice, a template of Margaret's, and a daily 09:00 Berlin progress report about
/// Zoë, saved at `created`.
fn setup(db: &TestDatabase, created: DateTime<Utc>) -> Setup {
    db.seed_fixtures();
    let storage = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let files = local_files(storage.path(), &master);
    let engine = Arc::new(engine_with(db, files, EngineConfig::default()));
    let margaret = therapist(MARGARET);
    let template = engine
        .create_template(
            &margaret,
            export_store::testing::session_count_template("Daily check"),
            created,
        )
        .unwrap();
    let input = ScheduledReportInput {
        template_id: template.id.to_string(),
        patient_id: Some(ZOE.into()),
        schedule_type: "daily".into(),
        schedule_config: ScheduleConfigInput {
            time: Some("09:00".into()),
            ..Default::default()
        },
        timezone: Some("Europe/Berlin".into()),
        delivery_method: "storage".into(),
        ..Default::default()
    };
    let request = checked(&input).unwrap();
    let rule = Schedule::new(
        request.schedule_type,
        &request.schedule_config,
        &request.timezone,
    )
    .unwrap();
    let scheduler = Scheduler::new(engine, db.store.clone());
    let report = scheduler.create(&margaret, request, created).unwrap();
    Setup {
        scheduler,
        schedule_id: report.id,
        rule,
        storage,
        master,
    }
}

test_on_both_backends! {
    three_schedulers_make_one_job_per_due_time,
    missed_runs_are_coalesced_into_one_job,
}

fn three_schedulers_make_one_job_per_due_time(db: &TestDatabase) {
    let created = Utc.with_ymd_and_hms(2026, 3, 20, 12, 0, 0).unwrap();
    let setup = setup(db, created);
    // Ten simulated days across Berlin's spring-forward (29 March 2026), a tick every 20 minutes.
    let until = created + Duration::days(10);
    let expected: Vec<DateTime<Utc>> = setup
        .rule
        .preview(created, 20)
        .into_iter()
        .filter(|t| *t <= until)
        .collect();
    assert_eq!(expected.len(), 10);
    let schedulers: Vec<_> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_export-cli"))
                .args(["--database", &db.url, "tick", "--from"])
                .arg(created.to_rfc3339())
                .arg("--until")
                .arg(until.to_rfc3339())
                .args(["--step-minutes", "20"])
                .arg("--storage")
                .arg(setup.storage.path())
                .env("EXPORT_MASTER_KEY", setup.master.to_hex())
                .env("RUST_LOG", "warn")
                .spawn()
                .unwrap()
        })
        .collect();
    for mut scheduler in schedulers {
        assert!(scheduler.wait().unwrap().success());
    }

    let mut conn = db.store.connection().unwrap();
    let runs = runs::list_runs(&mut conn, setup.schedule_id, 100).unwrap();
    let mut due: Vec<DateTime<Utc>> = runs.iter().map(|r| r.due_at).collect();
    due.sort();
    assert_eq!(due, expected, "one run per due time, at the due times");
    assert!(
        runs.iter()
            .all(|r| r.status == RunStatus::Submitted && r.skipped == 0)
    );
    let job_ids: HashSet<Uuid> = runs.iter().filter_map(|r| r.export_job_id).collect();
    assert_eq!(job_ids.len(), expected.len(), "one job per run");
    let all_jobs = jobs::list_jobs(
        &mut conn,
        &jobs::JobFilter {
            limit: 1000,
            ..jobs::JobFilter::of_user(Uuid::parse_str(MARGARET).unwrap())
        },
    )
    .unwrap();
    assert_eq!(
        all_jobs.len(),
        expected.len(),
        "no job beyond one per due time"
    );
    // The local wall time holds across the change: 09:00 in Berlin is 08:00 UTC, then 07:00.
    assert_eq!(expected[0].format("%H:%M").to_string(), "08:00");
    assert_eq!(expected[9].format("%H:%M").to_string(), "07:00");
}

fn missed_runs_are_coalesced_into_one_job(db: &TestDatabase) {
    let created = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
    let setup = setup(db, created);
    let first_due = setup.rule.next_after(created).unwrap();
    let report = setup
        .scheduler
        .tick(first_due + Duration::minutes(1))
        .unwrap();
    assert_eq!((report.submitted, report.skipped), (1, 0));
    // Down for three periods: back after the fourth due time has passed.
    let back = first_due + Duration::days(3) + Duration::minutes(5);
    let report = setup.scheduler.tick(back).unwrap();
    assert_eq!(
        (report.submitted, report.skipped),
        (1, 2),
        "one job, two skipped"
    );
    // Ticking again at the same instant makes nothing.
    assert_eq!(setup.scheduler.tick(back).unwrap().submitted, 0);
    let mut conn = db.store.connection().unwrap();
    let runs = runs::list_runs(&mut conn, setup.schedule_id, 10).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].due_at, first_due + Duration::days(3));
    assert_eq!(runs[0].skipped, 2);
    let report = export_store::schedules::get_schedule(&mut conn, setup.schedule_id)
        .unwrap()
        .unwrap();
    assert_eq!(report.last_run_at, Some(first_due + Duration::days(3)));
    assert_eq!(report.next_run_at, Some(first_due + Duration::days(4)));
}
