//! The scheduler's background passes against bad rows and races, on SQLite and PostgreSQL,
//! through a real SMTP server (`scripts/smtp-sink`): a deleted job behind an email schedule stops
//! no other delivery and no notification; a schedule the host cannot check, or whose owner lost
//! access, stops no other schedule in a tick; a recovery racing the scheduler it took over from
//! on one idempotency key makes one job and the email still goes out, whichever wins; an attached
//! file is audited as shared once, after the SMTP server accepted it.

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{Sink, free_port, monthly_email, settings_for};
use export_core::engine::{Actor, EngineConfig, ExportEngine, RequestOrigin};
use export_core::links::LinkSigner;
use export_core::source::{ClinicalSource, SourceError, StoreSource};
use export_core::storage::{LocalFileStore, MasterKey};
use export_core::testing::*;
use export_domain::{
    AuditAction, AuditEntry, Practice, Role, RunStatus, ScheduleRun, TherapistPatient, User,
};
use export_schedule::email::Mailer;
use export_schedule::scheduler::{Delivery, Scheduler, checked};
use export_store::test_on_both_backends;
use export_store::testing::TestDatabase;
use uuid::Uuid;

const SECOND: &str = "8c9f7ed2-c5e0-5006-b595-2dde87a7cbda";
const THIRD: &str = "54b440a5-f8fe-5f5d-bf49-e04fc5321bf1";

fn margaret() -> Actor {
    Actor {
        user_id: Uuid::parse_str(MARGARET).unwrap(),
        role: Role::Therapist,
    }
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 1, 11, 30, 0).unwrap()
}

/// A release handed to the test by a caller held at the gate: sending on it lets the caller go.
type Release = mpsc::Sender<()>;

/// The host's clinical records (the engine's tables), which the test can make fail for one
/// patient, or hold at a gate: a caller asking about a care relationship while the gate is set
/// hands the test a [`Release`] and waits for it. The engine asks just before it inserts a job,
/// after it looked the idempotency key up, so two submitters held there have both found no job.
struct Host {
    records: StoreSource,
    failing: Mutex<Option<Uuid>>,
    gate: Mutex<Option<mpsc::Sender<Release>>>,
}

impl ClinicalSource for Host {
    fn user(&self, user_id: Uuid) -> Result<Option<User>, SourceError> {
        self.records.user(user_id)
    }

    fn relationship(
        &self,
        therapist_id: Uuid,
        patient_id: Uuid,
    ) -> Result<Option<TherapistPatient>, SourceError> {
        if *self.failing.lock().unwrap() == Some(patient_id) {
            return Err(SourceError::Failed(
                "the host could not read the record".into(),
            ));
        }
        let gate = self.gate.lock().unwrap().clone();
        if let Some(arrivals) = gate {
            let (release, released) = mpsc::channel();
            arrivals.send(release).expect("the test is at the gate");
            released.recv().expect("the test opens the gate");
        }
        self.records.relationship(therapist_id, patient_id)
    }

    fn patients_of(&self, therapist_id: Uuid) -> Result<Vec<Uuid>, SourceError> {
        self.records.patients_of(therapist_id)
    }

    fn session_patients(&self, session_ids: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>, SourceError> {
        self.records.session_patients(session_ids)
    }

    fn patient_records(&self, patient_id: Uuid) -> Result<Practice, SourceError> {
        self.records.patient_records(patient_id)
    }
}

struct Setup {
    engine: Arc<ExportEngine>,
    host: Arc<Host>,
    _files: tempfile::TempDir,
}

fn setup(db: &TestDatabase) -> Setup {
    db.seed_fixtures();
    let files = tempfile::tempdir().unwrap();
    let host = Arc::new(Host {
        records: StoreSource(db.store.clone()),
        failing: Mutex::new(None),
        gate: Mutex::new(None),
    });
    let engine = Arc::new(
        ExportEngine::new(
            db.store.clone(),
            Arc::new(LocalFileStore::new(files.path(), MasterKey::generate()).unwrap()),
            host.clone(),
            EngineConfig::default(),
        )
        .with_link_signer(LinkSigner::new(b"test link secret".to_vec())),
    );
    Setup {
        engine,
        host,
        _files: files,
    }
}

fn scheduler(db: &TestDatabase, engine: &Arc<ExportEngine>, smtp_port: u16) -> Scheduler {
    Scheduler::new(engine.clone(), db.store.clone()).with_delivery(Delivery {
        mailer: Mailer::new(&settings_for(smtp_port)).unwrap(),
        public_url: "https://exports.clinic.example".into(),
        link_lifetime: Duration::hours(72),
    })
}

/// A monthly progress report about `patient` (the 1st at 07:00 in New York), emailed to
/// `recipients`, the file attached or linked.
fn email_schedule(
    setup: &Setup,
    scheduler: &Scheduler,
    patient: &str,
    recipients: &[&str],
    attach: bool,
) -> Uuid {
    let template = setup
        .engine
        .create_template(
            &margaret(),
            export_store::testing::session_count_template(&format!(
                "Monthly {}",
                Uuid::new_v4().simple()
            )),
            start(),
        )
        .unwrap();
    let input = monthly_email(template.id, patient, recipients, attach);
    scheduler
        .create(&margaret(), checked(&input).unwrap(), start())
        .unwrap()
        .id
}

/// Produces every pending job.
fn work(engine: &ExportEngine, now: DateTime<Utc>) {
    while engine.run_next("worker", now).unwrap().is_some() {}
}

/// The only run of a schedule.
fn only_run(scheduler: &Scheduler, schedule: Uuid) -> ScheduleRun {
    let runs = scheduler.runs(&margaret(), schedule, 10).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.into_iter().next().unwrap()
}

/// The audit trail's `shared` entries for a job.
fn shares(db: &TestDatabase, job_id: Uuid) -> Vec<AuditEntry> {
    db.audit_of_job(job_id, AuditAction::Shared)
}

/// Who the sink's messages went to, sorted.
fn recipients(sink: &Sink) -> Vec<String> {
    let mut to: Vec<String> = sink.messages().into_iter().flat_map(|(_, to)| to).collect();
    to.sort();
    to
}

test_on_both_backends! {
    a_deleted_job_behind_an_email_schedule_stops_no_other_delivery,
    a_schedule_the_host_cannot_check_stops_no_other_schedule_in_a_tick,
    a_recovery_that_wins_the_key_race_still_gets_the_email_out,
    a_recovery_that_loses_the_key_race_still_gets_the_email_out,
    an_attached_file_is_audited_as_shared_once_the_server_accepted_it,
    an_emailed_link_is_audited_as_shared_once_the_server_accepted_it,
}

fn a_deleted_job_behind_an_email_schedule_stops_no_other_delivery(db: &TestDatabase) {
    let Some(sink) = Sink::start("a_deleted_job_behind_an_email_schedule_stops_no_other_delivery")
    else {
        return;
    };
    let setup = setup(db);
    let scheduler = scheduler(db, &setup.engine, sink.port);
    let now = start();
    let deleted = email_schedule(&setup, &scheduler, ZOE, &["lead@clinic.example"], false);
    let kept = email_schedule(
        &setup,
        &scheduler,
        SECOND,
        &["records@clinic.example"],
        true,
    );
    scheduler
        .set_notifications(&margaret(), "margaret@clinic.example", true, true, now)
        .unwrap();
    // The run whose job goes comes first in the pass (runs are taken by due time).
    scheduler.run_now(&margaret(), deleted, None, now).unwrap();
    scheduler
        .run_now(&margaret(), kept, None, now + Duration::seconds(1))
        .unwrap();
    work(&setup.engine, now + Duration::seconds(2));
    let gone = only_run(&scheduler, deleted).export_job_id.unwrap();
    setup
        .engine
        .cancel_or_delete(
            &margaret(),
            gone,
            &RequestOrigin::default(),
            now + Duration::seconds(3),
        )
        .unwrap();

    let report = scheduler.deliver(now + Duration::seconds(5)).unwrap();
    assert_eq!(
        (
            report.delivered,
            report.failed,
            report.notified,
            report.errors
        ),
        (1, 1, 1, 0),
        "{report:?}"
    );
    let failed = only_run(&scheduler, deleted);
    assert_eq!(failed.status, RunStatus::DeliveryFailed);
    assert_eq!(
        failed.error_message.as_deref(),
        Some("the export was deleted before it could be delivered")
    );
    assert_eq!(only_run(&scheduler, kept).status, RunStatus::Delivered);
    assert_eq!(
        recipients(&sink),
        ["margaret@clinic.example", "records@clinic.example"],
        "the other report and the owner's notification went out"
    );
    // The failed run stays failed, and later passes go on as before.
    let later = scheduler.deliver(now + Duration::hours(1)).unwrap();
    assert_eq!(later, Default::default());
    assert_eq!(sink.messages().len(), 2);
}

fn a_schedule_the_host_cannot_check_stops_no_other_schedule_in_a_tick(db: &TestDatabase) {
    let setup = setup(db);
    let scheduler = scheduler(db, &setup.engine, free_port());
    let unreadable = email_schedule(&setup, &scheduler, ZOE, &["a@clinic.example"], false);
    let no_access = email_schedule(&setup, &scheduler, SECOND, &["b@clinic.example"], false);
    let fine = email_schedule(&setup, &scheduler, THIRD, &["c@clinic.example"], false);
    let due = scheduler
        .get(&margaret(), fine)
        .unwrap()
        .next_run_at
        .unwrap();
    // After the schedules were saved: the host fails on Zoë's record, and Margaret stops
    // caring for the second patient.
    *setup.host.failing.lock().unwrap() = Some(Uuid::parse_str(ZOE).unwrap());
    db.execute(&format!(
        "UPDATE therapist_patients SET is_active = false \
         WHERE therapist_id = '{MARGARET}' AND patient_id = '{SECOND}'"
    ));

    let at = due + Duration::minutes(1);
    let report = scheduler.tick(at).unwrap();
    assert_eq!(
        (report.submitted, report.refused, report.errors),
        (2, 1, 1),
        "{report:?}"
    );
    let waiting = only_run(&scheduler, unreadable);
    assert_eq!(
        waiting.status,
        RunStatus::Submitting,
        "left for the next tick"
    );
    let refused = only_run(&scheduler, no_access);
    assert_eq!(refused.status, RunStatus::Refused);
    assert!(
        refused
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("no active care relationship")),
        "{refused:?}"
    );
    let submitted = only_run(&scheduler, fine);
    assert_eq!(submitted.status, RunStatus::Delivering);
    assert!(submitted.export_job_id.is_some());

    // The host answers again: a later tick finishes the run that was left.
    *setup.host.failing.lock().unwrap() = None;
    let report = scheduler.tick(at + Duration::minutes(2)).unwrap();
    assert_eq!(report.errors, 0, "{report:?}");
    let finished = only_run(&scheduler, unreadable);
    assert_eq!(finished.status, RunStatus::Delivering);
    assert!(finished.export_job_id.is_some());
}

fn a_recovery_that_wins_the_key_race_still_gets_the_email_out(db: &TestDatabase) {
    key_race(
        db,
        "a_recovery_that_wins_the_key_race_still_gets_the_email_out",
        Winner::Recovery,
    );
}

fn a_recovery_that_loses_the_key_race_still_gets_the_email_out(db: &TestDatabase) {
    key_race(
        db,
        "a_recovery_that_loses_the_key_race_still_gets_the_email_out",
        Winner::Original,
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Winner {
    /// The scheduler that claimed the due time inserts the job first.
    Original,
    /// The scheduler that took the stalled run over inserts it first.
    Recovery,
}

/// Scheduler A claims a due time and stalls inside the engine's submission; scheduler B, a
/// minute later by its clock, takes the run over and submits it too. Both have looked the
/// idempotency key up and found no job when the gate lets `winner` insert first and finish its
/// tick, then the other. One job, one run, and the email goes to each recipient once.
fn key_race(db: &TestDatabase, test: &str, winner: Winner) {
    let Some(sink) = Sink::start(test) else {
        return;
    };
    let setup = setup(db);
    let original = scheduler(db, &setup.engine, sink.port);
    let recovery = scheduler(db, &setup.engine, sink.port);
    let id = email_schedule(
        &setup,
        &original,
        ZOE,
        &["lead@clinic.example", "records@clinic.example"],
        true,
    );
    let due = original.get(&margaret(), id).unwrap().next_run_at.unwrap();
    let at = due + Duration::minutes(1);

    let (arrivals, arrived) = mpsc::channel::<Release>();
    *setup.host.gate.lock().unwrap() = Some(arrivals);
    let wait = std::time::Duration::from_secs(60); // a guard against hanging, never reached
    let (first, second) = std::thread::scope(|scope| {
        let a = scope.spawn(|| original.tick(at).unwrap());
        let release_a = arrived
            .recv_timeout(wait)
            .expect("A claims the run and submits it");
        let b = scope.spawn(|| recovery.tick(at + Duration::minutes(2)).unwrap());
        let release_b = arrived
            .recv_timeout(wait)
            .expect("B takes the stalled run over and submits it");
        *setup.host.gate.lock().unwrap() = None;
        let (first, then) = match winner {
            Winner::Original => ((release_a, a), (release_b, b)),
            Winner::Recovery => ((release_b, b), (release_a, a)),
        };
        first.0.send(()).unwrap();
        let first = first.1.join().unwrap();
        then.0.send(()).unwrap();
        (first, then.1.join().unwrap())
    });
    assert_eq!(first.errors + second.errors, 0, "{first:?} {second:?}");

    let jobs = setup.engine.list_jobs(&margaret(), None, None, 10).unwrap();
    assert_eq!(jobs.len(), 1, "one job for the due time: {jobs:?}");
    let run = only_run(&original, id);
    assert_eq!(run.export_job_id, Some(jobs[0].id));
    assert_eq!(run.status, RunStatus::Delivering, "{run:?}");

    work(&setup.engine, at + Duration::minutes(3));
    let report = original.deliver(at + Duration::minutes(4)).unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    assert_eq!(
        recipients(&sink),
        ["lead@clinic.example", "records@clinic.example"]
    );
    assert_eq!(only_run(&original, id).status, RunStatus::Delivered);
    assert_eq!(shares(db, jobs[0].id).len(), 1);
    // Neither scheduler sends it again.
    assert_eq!(
        recovery.deliver(at + Duration::hours(1)).unwrap().delivered,
        0
    );
    assert_eq!(sink.messages().len(), 2);
}

/// One emailed report with its file attached, and what the audit trail and the run say after
/// the first delivery pass and after the last.
struct ShareCase {
    recipients: &'static [&'static str],
    /// Run status and the recipient counts of the `shared` entries, after the first pass.
    first: (RunStatus, &'static [u64]),
    /// The same after passes past every backoff.
    last: (RunStatus, &'static [u64]),
}

const SHARE_CASES: &[ShareCase] = &[
    // Accepted at once: shared once.
    ShareCase {
        recipients: &["lead@clinic.example", "records@clinic.example"],
        first: (RunStatus::Delivered, &[2]),
        last: (RunStatus::Delivered, &[2]),
    },
    // Deferred, then accepted on the retry: nothing shared before, once after.
    ShareCase {
        recipients: &["defer-once-lead@clinic.example"],
        first: (RunStatus::Delivering, &[]),
        last: (RunStatus::Delivered, &[1]),
    },
    // Refused: nothing shared, and the run says why.
    ShareCase {
        recipients: &["reject-lead@clinic.example"],
        first: (RunStatus::DeliveryFailed, &[]),
        last: (RunStatus::DeliveryFailed, &[]),
    },
    // Accepted for one and refused for the other: shared with the one, once.
    ShareCase {
        recipients: &["lead@clinic.example", "reject-records@clinic.example"],
        first: (RunStatus::DeliveryFailed, &[1]),
        last: (RunStatus::DeliveryFailed, &[1]),
    },
];

fn an_attached_file_is_audited_as_shared_once_the_server_accepted_it(db: &TestDatabase) {
    shared_once_accepted(
        db,
        "an_attached_file_is_audited_as_shared_once_the_server_accepted_it",
        true,
    );
}

fn an_emailed_link_is_audited_as_shared_once_the_server_accepted_it(db: &TestDatabase) {
    shared_once_accepted(
        db,
        "an_emailed_link_is_audited_as_shared_once_the_server_accepted_it",
        false,
    );
}

/// The share cases, with the file attached or a link to it in the email.
fn shared_once_accepted(db: &TestDatabase, name: &str, attach: bool) {
    let Some(sink) = Sink::start(name) else {
        return;
    };
    let setup = setup(db);
    let scheduler = scheduler(db, &setup.engine, sink.port);
    let now = start();
    let schedules: Vec<Uuid> = SHARE_CASES
        .iter()
        .enumerate()
        .map(|(n, case)| {
            let patient = [ZOE, SECOND, THIRD][n % 3];
            let id = email_schedule(&setup, &scheduler, patient, case.recipients, attach);
            scheduler
                .run_now(&margaret(), id, None, now + Duration::seconds(n as i64))
                .unwrap();
            id
        })
        .collect();
    work(&setup.engine, now + Duration::seconds(10));
    let seen = |case: &ShareCase, id: Uuid| {
        let run = only_run(&scheduler, id);
        let shares = shares(db, run.export_job_id.unwrap());
        let counts: Vec<u64> = shares
            .iter()
            .map(|share| share.entry.metadata["recipients"].as_u64().unwrap_or(0))
            .collect();
        if run.status == RunStatus::DeliveryFailed {
            assert!(
                run.error_message
                    .as_deref()
                    .is_some_and(|m| m.contains("refused the message: 550")),
                "{:?}: {run:?}",
                case.recipients
            );
        }
        (run.status, counts, shares, run.id)
    };
    let check = |case: &ShareCase, id: Uuid, (status, counts): (RunStatus, &[u64]), when: &str| {
        let (seen_status, seen_counts, _, _) = seen(case, id);
        assert_eq!(
            (seen_status, seen_counts),
            (status, counts.to_vec()),
            "after the {when} pass: {:?}",
            case.recipients
        );
    };

    scheduler.deliver(now + Duration::minutes(1)).unwrap();
    for (case, id) in SHARE_CASES.iter().zip(&schedules) {
        check(case, *id, case.first, "first");
    }
    for hours in [3, 6] {
        scheduler.deliver(now + Duration::hours(hours)).unwrap();
    }
    for (case, id) in SHARE_CASES.iter().zip(&schedules) {
        check(case, *id, case.last, "last");
    }
    // Each entry says what was shared and names the run whose email it was.
    for (case, id) in SHARE_CASES.iter().zip(&schedules) {
        let (_, _, shares, run) = seen(case, *id);
        for share in shares {
            assert_eq!(share.entry.metadata["attached"], attach, "{share:?}");
            assert_eq!(share.entry.metadata["run"], run.to_string().as_str());
            assert_eq!(
                share.entry.metadata["link_expires_at"].is_string(),
                !attach,
                "{share:?}"
            );
        }
    }
    assert_eq!(
        recipients(&sink),
        [
            "defer-once-lead@clinic.example",
            "lead@clinic.example",
            "lead@clinic.example",
            "records@clinic.example",
        ],
        "each accepted recipient got it once"
    );
}
