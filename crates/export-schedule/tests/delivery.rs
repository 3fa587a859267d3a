//! Scheduled reports delivered by email through a real SMTP server (`scripts/smtp-sink`), on
//! SQLite and PostgreSQL: the message reaches every recipient with the subject and a signed link
//! that opens the file, and carries no patient name or note text; attaching the file is audited
//! as shared; an SMTP outage is retried with backoff on a controllable clock and ends in a failed
//! delivery with its reason, as the API reads it; an owner who opted in is told when an export
//! completes.

mod common;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{Sink, free_port, monthly_email, settings_for};
use export_core::engine::{Actor, EngineConfig, ExportEngine, RequestOrigin};
use export_core::links::LinkSigner;
use export_core::storage::MasterKey;
use export_core::testing::*;
use export_domain::{
    AuditAction, ExportType, Role, RunStatus, ScheduledReportInput, TemplateInput,
};
use export_schedule::email::{MAX_DELIVERY_ATTEMPTS, Mailer};
use export_schedule::scheduler::{Delivery, Scheduler, checked};
use export_store::test_on_both_backends;
use export_store::testing::TestDatabase;
use uuid::Uuid;

/// What the report holds and no email may: the patient's name, words of her notes.
const PHI: [&str; 2] = ["Brontë", "Lefèvre"];

fn margaret() -> Actor {
    Actor {
        user_id: Uuid::parse_str(MARGARET).unwrap(),
        role: Role::Therapist,
    }
}

fn engine(db: &TestDatabase, files: &Path) -> Arc<ExportEngine> {
    db.seed_fixtures();
    let files = local_files(files, &MasterKey::generate());
    Arc::new(
        engine_with(db, files, EngineConfig::default())
            .with_link_signer(LinkSigner::new(b"test link secret".to_vec())),
    )
}

fn scheduler(db: &TestDatabase, engine: &Arc<ExportEngine>, smtp_port: u16) -> Scheduler {
    Scheduler::new(engine.clone(), db.store.clone()).with_delivery(Delivery {
        mailer: Mailer::new(&settings_for(smtp_port)).unwrap(),
        public_url: "https://exports.clinic.example".into(),
        link_lifetime: Duration::hours(72),
    })
}

/// A monthly progress report about Zoë, emailed to two people.
fn schedule(
    engine: &ExportEngine,
    scheduler: &Scheduler,
    attach: bool,
    now: DateTime<Utc>,
) -> Uuid {
    let template = engine
        .create_template(
            &margaret(),
            TemplateInput {
                name: format!("Monthly {attach}"),
                export_type: ExportType::ProgressReport.as_str().into(),
                format: "pdf".into(),
                template_content: "{% extends \"base.html\" %}{% block content %}\
                    <h1>{{ header.patient_name }}</h1><p>{{ session_count }} sessions</p>\
                    {% endblock content %}"
                    .into(),
                ..Default::default()
            }
            .validate()
            .unwrap(),
            now,
        )
        .unwrap();
    let input = ScheduledReportInput {
        parameters: [("period_days".to_owned(), serde_json::json!(400))]
            .into_iter()
            .collect(),
        ..monthly_email(
            template.id,
            ZOE,
            &["lead@clinic.example", "records@clinic.example"],
            attach,
        )
    };
    let mut request = checked(&input).unwrap();
    request.parameters = serde_json::json!({"period_days": 366});
    scheduler.create(&margaret(), request, now).unwrap().id
}

test_on_both_backends! {
    a_scheduled_report_is_emailed_with_a_link_and_no_phi,
    an_smtp_outage_is_retried_then_fails_visibly,
    no_attachment_is_emailed_once_the_care_relationship_has_ended,
}

fn a_scheduled_report_is_emailed_with_a_link_and_no_phi(db: &TestDatabase) {
    let Some(sink) = Sink::start("a_scheduled_report_is_emailed_with_a_link_and_no_phi") else {
        return;
    };
    let files = tempfile::tempdir().unwrap();
    let engine = engine(db, files.path());
    let scheduler = scheduler(db, &engine, sink.port);
    let now = Utc.with_ymd_and_hms(2026, 4, 1, 11, 30, 0).unwrap();
    let linked = schedule(&engine, &scheduler, false, now);
    let attached = schedule(&engine, &scheduler, true, now);
    scheduler
        .set_notifications(&margaret(), "margaret@clinic.example", true, true, now)
        .unwrap();

    let run = scheduler.run_now(&margaret(), linked, None, now).unwrap();
    assert_eq!(run.status, RunStatus::Delivering);
    scheduler.run_now(&margaret(), attached, None, now).unwrap();
    // Nothing to send before the jobs are done.
    assert_eq!(scheduler.deliver(now).unwrap().delivered, 0);
    while engine.run_next("worker", now).unwrap().is_some() {}
    // Two schedulers deliver at once: each email still goes out once.
    let other = self::scheduler(db, &engine, sink.port);
    let at = now + Duration::seconds(5);
    let (first, second) = std::thread::scope(|scope| {
        let a = scope.spawn(|| scheduler.deliver(at).unwrap());
        let b = scope.spawn(|| other.deliver(at).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(
        (
            first.delivered + second.delivered,
            first.notified + second.notified
        ),
        (2, 2),
        "{first:?} {second:?}"
    );

    let messages = sink.messages();
    assert_eq!(
        messages.len(),
        6,
        "two reports, each to two recipients, one message each, and two notifications"
    );
    for (message, _) in &messages {
        for phi in PHI {
            assert!(
                !message.contains(phi),
                "no patient data in any email:\n{message}"
            );
        }
        assert!(message.contains("Auto-Submitted: auto-generated"));
    }
    // Two schedulers sent them: find each by what it is. Each recipient has a message of their
    // own, naming no one else.
    let link_mails: Vec<_> = messages
        .iter()
        .filter(|(m, _)| m.contains("Subject: Your scheduled export is ready"))
        .collect();
    let mut link_recipients: Vec<&[String]> = link_mails.iter().map(|(_, to)| &to[..]).collect();
    link_recipients.sort();
    assert_eq!(
        link_recipients,
        [["lead@clinic.example"], ["records@clinic.example"]]
    );
    for (mail, to) in &link_mails {
        let other = if to[0].starts_with("lead") {
            "records@"
        } else {
            "lead@"
        };
        assert!(!mail.contains(other), "{other} is in:\n{mail}");
    }
    let (link_mail, _) = link_mails[0];
    assert!(
        link_mail.contains("Subject: Your scheduled export is ready"),
        "{link_mail}"
    );
    let url = link_mail
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Download: https://exports.clinic.example")
        })
        .unwrap_or_else(|| panic!("a link in the message:\n{link_mail}"))
        .to_owned();
    let token = url.split("token=").nth(1).unwrap();
    let (job, mut file) = engine
        .download_with_link(
            token,
            &RequestOrigin::default(),
            now + Duration::minutes(10),
        )
        .unwrap();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    assert_eq!(
        url,
        format!("/api/v1/export/download/{}?token={token}", job.id)
    );

    let attach_mails: Vec<_> = messages
        .iter()
        .filter(|(m, _)| m.contains("Subject: Your scheduled export is attached"))
        .collect();
    assert_eq!(attach_mails.len(), 2, "one per recipient");
    let (attach_mail, _) = attach_mails[0];
    assert!(attach_mail.contains("Content-Disposition: attachment"));
    let runs = scheduler.runs(&margaret(), attached, 5).unwrap();
    assert_eq!(runs[0].status, RunStatus::Delivered);
    let shared = db.audit_of_job(runs[0].export_job_id.unwrap(), AuditAction::Shared);
    // Attaching the file to the report's email, and the link in the owner's notification.
    let attached_shares: Vec<_> = shared
        .iter()
        .filter(|e| e.entry.metadata["attached"] == true)
        .collect();
    assert_eq!(
        attached_shares.len(),
        1,
        "attaching the file is audited as shared"
    );
    assert_eq!(attached_shares[0].entry.metadata["recipients"], 2);
    assert_eq!(shared.len(), 2);

    let notices: Vec<_> = messages
        .iter()
        .filter(|(_, to)| to == &["margaret@clinic.example"])
        .collect();
    assert_eq!(
        notices.len(),
        2,
        "the owner opted in: one notice per completed export"
    );
    // Told once: another pass sends nothing more.
    assert_eq!(
        scheduler
            .deliver(now + Duration::minutes(1))
            .unwrap()
            .notified,
        0
    );
    assert_eq!(sink.messages().len(), 6);
}

fn an_smtp_outage_is_retried_then_fails_visibly(db: &TestDatabase) {
    let files = tempfile::tempdir().unwrap();
    let engine = engine(db, files.path());
    let nobody = free_port(); // nothing listens here: the mail server is down
    let scheduler = scheduler(db, &engine, nobody);
    let mut now = Utc.with_ymd_and_hms(2026, 4, 1, 11, 30, 0).unwrap();
    let id = schedule(&engine, &scheduler, false, now);
    scheduler.run_now(&margaret(), id, None, now).unwrap();
    while engine.run_next("worker", now).unwrap().is_some() {}

    let mut retries = 0;
    for _ in 0..MAX_DELIVERY_ATTEMPTS {
        now += Duration::hours(2); // past any backoff
        let report = scheduler.deliver(now).unwrap();
        retries += report.retrying;
        let run = &scheduler.runs(&margaret(), id, 1).unwrap()[0];
        if run.status == RunStatus::DeliveryFailed {
            break;
        }
        assert_eq!(run.status, RunStatus::Delivering);
        assert!(run.next_delivery_at.unwrap() > now, "a retry waits");
    }
    assert_eq!(retries, MAX_DELIVERY_ATTEMPTS as usize - 1);
    let run = &scheduler.runs(&margaret(), id, 1).unwrap()[0];
    assert_eq!(run.status, RunStatus::DeliveryFailed);
    assert_eq!(run.delivery_attempts, MAX_DELIVERY_ATTEMPTS as i32);
    let reason = run.error_message.as_deref().unwrap();
    assert!(reason.starts_with("gave up after 8 attempts"), "{reason}");
    // A failed delivery stays failed.
    assert_eq!(
        scheduler.deliver(now + Duration::days(1)).unwrap().failed,
        0
    );
}

fn no_attachment_is_emailed_once_the_care_relationship_has_ended(db: &TestDatabase) {
    let Some(sink) = Sink::start("no_attachment_is_emailed_once_the_care_relationship_has_ended")
    else {
        return;
    };
    let files = tempfile::tempdir().unwrap();
    let engine = engine(db, files.path());
    let scheduler = scheduler(db, &engine, sink.port);
    let now = Utc.with_ymd_and_hms(2026, 4, 1, 11, 30, 0).unwrap();
    let attached = schedule(&engine, &scheduler, true, now);
    scheduler.run_now(&margaret(), attached, None, now).unwrap();
    while engine.run_next("worker", now).unwrap().is_some() {}
    // Between the report's making and its delivery, Margaret stops caring for Zoë.
    db.execute(&format!(
        "UPDATE therapist_patients SET is_active = false \
         WHERE therapist_id = '{MARGARET}' AND patient_id = '{ZOE}'"
    ));

    let report = scheduler.deliver(now + Duration::seconds(5)).unwrap();
    assert_eq!((report.delivered, report.failed), (0, 1), "{report:?}");
    assert!(sink.messages().is_empty(), "nothing was sent");
    let run = &scheduler.runs(&margaret(), attached, 1).unwrap()[0];
    assert_eq!(run.status, RunStatus::DeliveryFailed);
    assert!(
        run.error_message
            .as_deref()
            .is_some_and(|m| m.contains("no active care relationship")),
        "{run:?}"
    );
    let reads = db.audit_of_job(run.export_job_id.unwrap(), AuditAction::Downloaded);
    let refused: Vec<_> = reads
        .iter()
        .map(|e| {
            (
                e.entry.outcome.as_str(),
                e.entry.metadata["via"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [("denied", "email")],
        "the refused read is on record"
    );
}
